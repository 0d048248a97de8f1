//! `oci-layers`: resolve an image and print its layer blobs, base first,
//! one per line, in the form `oci-merge` reads.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocirender::cli;
use ocirender::image::platform::PlatformRequest;
use ocirender::image::{listing, resolve, Selection};
use ocirender::registry::reference::{looks_like_reference, Reference};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const PROGRAM: &str = "oci-layers";

const AFTER_HELP: &str = "\
IMAGE FORMS
  An OCI image layout directory (oci-layout, index.json, blobs/), an
  extracted `docker save` directory (manifest.json; legacy <id>/layer.tar
  or Docker 25+), or either of them as a tar file (docker save -o img.tar,
  skopeo copy ... oci-archive:img.tar). Layers inside an archive are
  printed as byte ranges of it; nothing is unpacked.

OUTPUT
  One layer reference a line, base layer first (see `oci-merge --help` for
  the format). A layer listed twice in the manifest is printed twice.
  Nothing is printed unless the whole image resolves.
  --json prints the manifest and config digests, the platform, and per
  layer its digest, mediaType, size, diffId, path and offset (the start
  of its bytes inside an archive, null for a whole file).

EXIT STATUS
  0 when the image resolved and its list was printed; 1 on any error, with
  one line on stderr and nothing on stdout; 141 when the reader of stdout
  went away (as if killed by SIGPIPE).

EXAMPLES
  oci-layers ./layout | oci-merge | tar2sqfs rootfs.sqfs
  oci-layers --platform linux/arm64 --tag 1.2 ./layout
  oci-layers --json img.tar | jq -r '.layers[].digest'";

/// Resolve an image and print its layer blobs, base first.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = AFTER_HELP)]
struct Args {
    /// The image: a layout or docker-save directory, or such an archive.
    image: PathBuf,
    /// Platform os/arch[/variant] (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Pick the image by tag: its org.opencontainers.image.ref.name, or its
    /// full name (io.containerd.image.name, RepoTags) read as docker does
    /// (alpine = docker.io/library/alpine:latest).
    #[arg(long, value_name = "NAME")]
    tag: Option<String>,
    /// Print the resolved image as JSON instead of the layer list.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = ocirender::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    let selection = Selection {
        platform: PlatformRequest::new(args.platform.as_deref())?,
        tag: args.tag,
    };
    refuse_registry_reference(&args.image)?;
    let image = resolve(&args.image, &selection)?;
    let output = if args.json {
        listing::json(&image, true)?
    } else {
        listing::layer_lines(&image)?
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&output)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(())
}

/// A reference like `docker://debian:12` or `ghcr.io/org/app:1` that names
/// no file is meant for the registry source: say so, rather than
/// "no such file".
fn refuse_registry_reference(image: &Path) -> Result<()> {
    let text = image.to_string_lossy();
    let registry_like =
        looks_like_reference(&text) || (!text.contains('/') && text.parse::<Reference>().is_ok());
    if registry_like && std::fs::symlink_metadata(image).is_err() {
        bail!("{text}: no such file or directory; to read an image from a registry, use `oci-fetch {text}`");
    }
    Ok(())
}
