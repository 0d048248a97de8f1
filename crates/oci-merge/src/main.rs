//! `oci-merge`: apply OCI layer semantics to a list of layer blobs and write
//! the flattened root filesystem as one tar on stdout.

use anyhow::{Context, Result};
use clap::Parser;
use ocirender::layer::{self as layer_ref, LayerRef};
use ocirender::merge::{merge_with_progress, MergeOptions, DEFAULT_READ_AHEAD_MIB};
use ocirender::progress::Observer;
use ocirender::sink::wrong_input::wrong_input;
use ocirender::InputMistake;
use ocirender_cli as cli;
use ocirender_cli::progress::{summary, Progress};
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const PROGRAM: &str = "oci-merge";

const AFTER_HELP: &str = "\
LAYER LIST
  One layer a line, base layer first (the order of a manifest's `layers`),
  on stdin or as arguments. A line is a path to a blob, optionally followed
  by tab-separated key=value fields:

    /img/blobs/sha256/4f1c...
    /img.tar<TAB>offset=1536<TAB>size=29150720<TAB>digest=sha256:4f1c...

  offset=N size=N   the layer is that byte range of the file (a layer inside
                    a docker-save or oci-archive tar)
  size=N            (without offset) the whole file is the layer and is N
                    bytes long: for a file that cannot tell, like the named
                    pipes of oci-fetch, so progress knows the total
  digest=ALG:HEX    the digest the stored bytes must have (sha256, sha512)
  server=PATH       the layer is a named pipe served by a running oci-fetch,
                    which holds the named pipe PATH open while it lives:
                    oci-merge joins it before its first layer and waits for
                    a layer only while the server lives, failing at once
                    (one line) if it is gone

  A path shaped like a layout blob (.../sha256/<hex>) declares its own
  digest. Paths cannot contain a newline or a tab. The same layer may be
  listed twice; it is applied twice. A line `#end` ends the list before the
  end of stdin (oci-fetch ends its list so, since it keeps serving layers).
  A line `#failed` is what a failed source leaves: oci-merge then fails
  without a message of its own (the source said why).

BEHAVIOUR
  Compression (gzip, zstd, xz, bzip2, none) is recognised from the bytes.
  Every blob is read to its end and checked against its digest. Whiteouts,
  opaque directories, hard links and PAX records follow the OCI image-spec;
  see docs/design.md for the exact rules. On any error the output ends without
  the end-of-archive marker, so consumers see a truncated tar.

PROGRESS
  --progress=auto (the default) draws one line on stderr when stderr is a
  terminal, and nothing otherwise: the layer being merged (numbered base
  first, as in messages; the merge reads the newest first, so the number
  counts down), the stored (compressed) bytes read of all layers' total,
  throughput, elapsed time and ETA. It is cleared at the end; --stats
  prints its summary in its place. Throughput and ETA are measured over the
  last 3 seconds. In a pipeline, one tool draws at a time: oci-fetch
  --store draws its downloads and clears its line before it prints the
  list oci-merge waits for; then oci-merge draws (it knows the totals).
  --progress=always draws the line even when stderr is not a terminal;
  --progress=never draws nothing.

  --progress=json prints one JSON object a line on stderr instead, for
  programs driving the pipeline (other lines on stderr, warnings and
  errors, are the usual `oci-merge: ...` text). Every object has `event`:

  layer_started   layer (number, base first, from 1), layers (how many),
                  path, offset (null for a whole file), digest (null if
                  none declared), size (stored bytes; null if unknown)
  bytes           read (stored bytes read so far, all layers, read-ahead
                  included; never decreases), total (sum of the layers'
                  sizes; null if one is unknown). At most four a second,
                  only when read changed; the last, just before done,
                  has the final count.
  layer_finished  layer, layers, stored_bytes (the layer's), members_read,
                  entries_written (while the layer was read; directories
                  are written at the end)
  done            layers, stored_bytes, members_read, entries_written,
                  bytes_written (the output, end marker included), paths,
                  warnings, elapsed_ms

  A failed merge prints no done, only its error line.

EXIT STATUS
  0 when every layer was read to its end, verified, and the merged tar
  written with its end-of-archive marker; 1 on any error (one line on
  stderr), the output then ending without the marker; 141 when the reader
  of stdout went away (as if killed by SIGPIPE).

EXAMPLES
  oci-layers IMAGE | oci-merge > rootfs.tar
  oci-layers IMAGE | oci-merge | tar2sqfs rootfs.sqfs
  oci-merge base.tar.gz top.tar.zst | tar -t";

/// Merge OCI layer blobs into one flattened tar on stdout.
///
/// oci-merge reads the layer list oci-layers or oci-fetch prints (or
/// layer paths as arguments), applies the OCI layer rules (whiteouts,
/// opaque directories, hard links) and writes the root filesystem as one
/// tar, for tar2dir, tar2sqfs or tar2erofs. Layers are read newest first,
/// so each path's final version is written as soon as it is seen; memory
/// grows with the number of paths, never with file sizes. Every layer is
/// checked against its digest while it streams, and a failed merge ends
/// its tar without the end-of-archive marker. The rules in full are in
/// docs/design.md.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    /// Layer references, base first; read from stdin, one per line, if none are given.
    layers: Vec<OsString>,
    /// Memory in MiB for decoded data held ahead of the merge, shared by the layers decoding
    /// ahead; more lets more decoding overlap. Peak memory is about this plus 20 to 40 MiB
    /// (decoders, buffers), plus the table of the image's paths, plus the xattrs of its
    /// directories, held to the end (at most 64 MiB: more is an error).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_READ_AHEAD_MIB as u32,
          value_parser = clap::value_parser!(u32).range(0..=1 << 20))]
    read_ahead: u32,
    #[command(flatten)]
    jobs: cli::args::Jobs,
    #[command(flatten)]
    quiet: cli::args::Quiet,
    #[command(flatten)]
    stats: cli::args::Stats,
    #[command(flatten)]
    progress: cli::args::Progress,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    let layers = match read_layer_list(&args.layers) {
        Ok(layers) => layers,
        Err(err) => {
            // The sink reading this says nothing more: this error is the
            // pipeline's one line.
            abandon_stdout();
            return Err(err);
        }
    };
    cli::refuse_terminal_stdout("a tar archive")?;
    let out = cli::stdout_file().context("cannot open stdout")?;
    let options = MergeOptions {
        parallel_layers: usize::from(args.jobs.jobs),
        read_ahead_bytes: (args.read_ahead as usize) << 20,
    };
    let progress = args
        .progress
        .style()
        .map(|style| Progress::new(PROGRAM, style));
    let quiet = args.quiet.quiet;
    let mut warn = |message: &str| {
        if !quiet {
            match &progress {
                Some(progress) => progress.suspend(|| cli::warn(PROGRAM, message)),
                None => cli::warn(PROGRAM, message),
            }
        }
    };
    let started = std::time::Instant::now();
    let observer = progress.as_ref().map(|p| p as &dyn Observer);
    let (_, stats) = merge_with_progress(&layers, out, &options, &mut warn, observer)?;
    if args.stats.stats {
        cli::note(PROGRAM, &summary(&stats, started.elapsed()));
    }
    Ok(())
}

/// Leaves on stdout what a failed merge leaves, unless a person reads it.
fn abandon_stdout() {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        ocirender::process::write_abandoned(stdout.lock());
    }
}

fn read_layer_list(args: &[OsString]) -> Result<Vec<LayerRef>> {
    if !args.is_empty() {
        return args
            .iter()
            .map(|arg| {
                LayerRef::parse_line(arg.as_bytes()).with_context(|| format!("argument {arg:?}"))
            })
            .collect();
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!("no layers given: pass layer paths as arguments or pipe a layer list (e.g. from oci-layers) to stdin");
    }
    let mut stdin = stdin.lock();
    if stdin.fill_buf().context("stdin")?.is_empty() {
        // Nothing at all, most often because the program before it in
        // the pipeline failed: say so, rather than "no layers".
        return Err(wrong_input(InputMistake::Empty).into());
    }
    layer_ref::read_list(stdin).context("stdin")
}
