//! `oci-layers`: resolve an image and print its layer blobs, base first,
//! one per line, in the form `oci-merge` reads; or list what an image
//! source holds (`--list`), or print an image's config (`--config`).

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocirender::image::PlatformRequest;
use ocirender::image::{inventory, listing, resolve_name, Selection};
use ocirender::image::{ImageName, Transport};
use ocirender::registry::{looks_like_reference, Reference};
use ocirender_cli as cli;
use std::io::Write;
use std::process::ExitCode;

const PROGRAM: &str = "oci-layers";

const AFTER_HELP: &str = "\
IMAGE FORMS
  An OCI image layout directory (oci-layout, index.json, blobs/), an
  extracted `docker save` directory (manifest.json; legacy <id>/layer.tar
  or Docker 25+), or either of them as a tar file (docker save -o img.tar,
  skopeo copy ... oci-archive:img.tar). Layers inside an archive are
  printed as byte ranges of it; nothing is unpacked.

IMAGE NAMES
  A path, or a name as skopeo and podman write it (containers-transports):
    oci:DIR[:REF]             an OCI layout directory; REF a ref.name
    oci-archive:FILE[:REF]    an OCI layout in a tar file
    docker-archive:FILE[:NAME]
                              a docker save tar file; NAME one of its
                              RepoTags, read as docker does (alpine =
                              alpine:latest); it reads manifest.json, also
                              in a Docker 25+ archive
  REF or NAME may also be @N: the N-th entry, from @0, of index.json (oci:)
  or manifest.json (docker-archive:), as `--list` shows unnamed images.
  The path ends at the first colon after the transport (oci:/a:b:c is
  directory /a, REF b:c). A name that exists on disk as typed is always
  that path, so paths with colons keep working (and ./oci:x is a path).
  The transport must fit what is found: oci: a layout directory,
  oci-archive: a tar file holding index.json, docker-archive: a tar file
  holding manifest.json. A REF and --tag together must be the same.
  docker://REF names a registry image: that is `oci-fetch REF`.

OUTPUT
  One layer reference a line, base layer first (see `oci-merge --help` for
  the format). A layer listed twice in the manifest is printed twice.
  Nothing is printed unless the whole image resolves.
  --json prints the manifest and config digests, the platform, and per
  layer its digest, mediaType, size, diffId, path and offset (the start
  of its bytes inside an archive, null for a whole file).

--config
  Prints the selected image's config blob exactly as stored, its bytes
  checked against the config digest of the manifest (for a legacy docker
  save, which has no manifest, the config file as stored, checked against
  the digest its name declares), instead of the layer list. At most 4 MiB.

--list
  Lists every image the source holds, without choosing one: a table
  (NAME, DIGEST, PLATFORM, LAYERS, SIZE), a line per image manifest; an
  index has a line of its own (PLATFORM `index`), its platforms' lines
  under it. Unnamed images are named @N. DIGEST is the first 12 hex
  digits; SIZE the layers' total as stored (compressed). Everything is
  read and checked as when converting (indexes, manifests, configs,
  layer blobs present at their size), so a listed image converts.
  Attestation manifests and artifacts are not images and are not listed
  (no --tag or --platform can choose them). With --tag, or a REF in the
  name, only the images it names. With --json, an array, one object per
  image: index (its @N), names, digest and mediaType of its entry (null
  in a docker save), and manifests: per platform, digest, platform,
  config, layerCount and size.

EXIT STATUS
  0 when the image resolved and its list was printed; 1 on any error, with
  one line on stderr and nothing on stdout; 141 when the reader of stdout
  went away (as if killed by SIGPIPE).

EXAMPLES
  oci-layers ./layout | oci-merge | tar2sqfs rootfs.sqfs
  oci-layers --platform linux/arm64 --tag 1.2 ./layout
  oci-layers oci:./layout:1.2 | oci-merge | tar2dir rootfs/
  oci-layers docker-archive:app.tar:app:1 | oci-merge > rootfs.tar
  oci-layers --list oci-archive:img.tar
  oci-layers --list --json ./layout | jq -r '.[].names[]'
  oci-layers --config oci:./layout:1.2 | jq .config.Env
  oci-layers --json img.tar | jq -r '.layers[].digest'";

/// Resolve an image and print its layer blobs, base first.
///
/// oci-layers reads an image on disk (an OCI layout, a docker save, either
/// as a directory or a tar file), picks one image by --platform and --tag,
/// verifies every index, manifest and config against its digest, and
/// prints its layers one a line, in the form oci-merge reads; nothing is
/// unpacked. --list shows what a source holds, --config the image's
/// config. See docs/design.md.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = AFTER_HELP)]
struct Args {
    /// The image: a layout or docker-save directory, such an archive, or
    /// oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME].
    image: String,
    /// Platform os/arch[/variant] (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Pick the image by tag: its org.opencontainers.image.ref.name, or its
    /// full name (io.containerd.image.name, RepoTags) read as docker does
    /// (alpine = docker.io/library/alpine:latest); or @N, the N-th entry.
    #[arg(long, value_name = "NAME")]
    tag: Option<String>,
    /// Print the resolved image (with --list: the listing) as JSON.
    #[arg(long)]
    json: bool,
    /// List every image the source holds, with its platforms, digests,
    /// layer counts and sizes, instead of the layer list.
    #[arg(long, conflicts_with_all = ["config", "platform"])]
    list: bool,
    /// Print the image's config blob, verified, instead of the layer list.
    #[arg(long, conflicts_with = "json")]
    config: bool,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    // Only a layer list ends in `#failed`: JSON and a config stay as they
    // are, empty on failure.
    if args.json || args.list || args.config {
        return cli::run(PROGRAM, || run(args));
    }
    cli::run_source(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    let name = ImageName::from_arg(&args.image)?;
    if name.transport == Transport::Path {
        refuse_registry_reference(&args.image)?;
    }
    let tag = name.tag(args.tag)?;
    let output = if args.list {
        let images = inventory::list(&name, tag.as_deref())?;
        if args.json {
            listing::inventory_json(&images)?
        } else {
            listing::inventory_table(&images)
        }
    } else {
        let selection = Selection {
            platform: PlatformRequest::new(args.platform.as_deref())?,
            tag,
        };
        let image = resolve_name(&name, &selection)?;
        if args.config {
            image.config_bytes
        } else if args.json {
            listing::json(&image, true)?
        } else {
            listing::layer_lines(&image)?
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&output)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(())
}

/// A reference like `ghcr.io/org/app:1` or `debian:12` that names no
/// file is meant for the registry source: say so, rather than "no such
/// file". (`docker://` names are refused when they are opened.)
fn refuse_registry_reference(text: &str) -> Result<()> {
    if std::fs::symlink_metadata(text).is_ok() {
        return Ok(());
    }
    refuse_tagged_path(text)?;
    let registry_like =
        looks_like_reference(text) || (!text.contains('/') && text.parse::<Reference>().is_ok());
    if registry_like {
        bail!("{text}: no such file or directory; to read an image from a registry, use `oci-fetch {text}`");
    }
    Ok(())
}

/// `layout:1.2`, a path that exists and a tag, as docker names images:
/// say how a tag is given here (a transport name), rather than point at
/// the registry.
fn refuse_tagged_path(text: &str) -> Result<()> {
    let Some((path, tag)) = text.rsplit_once(':') else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if tag.is_empty() {
        return Ok(());
    }
    if meta.is_dir() {
        bail!(
            "{text}: no such file or directory; for the image tagged {tag} in the layout \
             directory {path}, use oci:{path}:{tag}"
        );
    }
    bail!(
        "{text}: no such file or directory; for the image tagged {tag} in the archive {path}, \
         use oci-archive:{path}:{tag} or docker-archive:{path}:{tag}"
    );
}
