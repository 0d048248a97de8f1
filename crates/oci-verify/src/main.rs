//! `oci-verify OUTPUT`: check that what tar2dir, tar2sqfs or tar2erofs
//! made holds exactly the tree of the tar stream on stdin.

mod progress;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use ocirender::progress::ByteCounter;
use ocirender::sink::builder::timestamp_from_env;
use ocirender::sink::verify::{verify, Difference, ExtractOptions, VerifyOptions};
use ocirender_cli as cli;
use progress::{Counted, Progress, Shown};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const PROGRAM: &str = "oci-verify";

/// Exit status when OUTPUT differs from the stream.
const EXIT_DIFFERENT: u8 = 1;
/// Exit status on an error (clap's usage errors exit 2 as well).
const EXIT_ERROR: u8 = 2;

const AFTER_HELP: &str = concat!(
    "\
OUTPUT
  A directory (tar2dir), or an image file told by its superblock's magic
  number: squashfs (tar2sqfs) or EROFS (tar2erofs). OUTPUT is only read.

WHAT IS COMPARED
  Every path the stream lists against what OUTPUT holds there, under the
  rules the sinks store it by (see THE TREE): file type and device
  numbers, file data (by SHA-256, streamed: no file is held in memory),
  size, mode, numeric owner, modification time at the precision OUTPUT
  keeps (nanoseconds in a directory and EROFS, whole seconds rounded
  down in squashfs), extended attributes under their stored names,
  symlink targets, hard links as shared inodes; directories with their
  last entry's metadata; and every path OUTPUT holds that the stream does
  not list. The root directory's own metadata is not compared (each sink
  sets it alike, whatever the stream says).

MEMORY
  Grows with the number of paths the stream lists (as in the sinks) and
  of hard-linked files in OUTPUT, and with the largest directory of
  OUTPUT (its names are sorted); never with file sizes.

OUTPUT FORMAT
  One line per difference on stdout, quiet when there is none:
    PATH: KIND: expected X, found Y
  KIND is one of missing, extra, type, content, size, mode, owner, mtime,
  xattr, link-target, hardlink. With --json, one JSON object a line:
    {\"path\":..,\"kind\":..,\"expected\":..,\"found\":..}

IMAGES
  An image is read without mounting it: extracted by unsquashfs (4.6+) or
  fsck.erofs --extract (1.9+) into a private temporary directory in
  TMPDIR (or --tmpdir), which needs as much free space as the image holds
  uncompressed (its files' total size; twice that for EROFS, whose
  extraction clears file capabilities when it sets owners, so it runs
  again without owners for the attributes), and is removed at the end, also
  on a signal. Only root extracts owners, devices and trusted.*
  attributes, so verifying an image needs root.

",
    ocirender::tree_rules_help!(),
    "\
EXIT STATUS
  0 when OUTPUT holds exactly the stream's tree; 1 when it differs (the
  differences on stdout); 2 on an error: a malformed or truncated stream,
  a stream the sinks refuse, an unreadable OUTPUT, a failed extraction,
  bad options (one line on stderr); 128+N when killed by signal N.

ENVIRONMENT
  SOURCE_DATE_EPOCH  the time expected of directories the stream does not
                     describe (default 0), as the sinks stamp them
  TMPDIR             where an image is extracted (default /tmp)

EXAMPLES
  oci-layers IMAGE | oci-merge | oci-verify rootfs/
  oci-layers IMAGE | oci-merge | oci-verify rootfs.sqfs
  oci-verify --json rootfs.erofs < merged.tar"
);

/// When to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressWhen {
    /// A line on stderr only when stderr is a terminal.
    Auto,
    /// A line on stderr.
    Always,
    /// No progress.
    Never,
    /// JSON objects on stderr, ending with a `done` event.
    Json,
}

/// Check an output of tar2dir, tar2sqfs or tar2erofs against the tar on stdin.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    /// The output to check: a directory, a squashfs or an EROFS image.
    output: PathBuf,
    /// Print each difference as a JSON object, one a line.
    #[arg(long)]
    json: bool,
    /// At the end, print one summary line on stderr.
    #[arg(long)]
    stats: bool,
    /// No warnings, only errors.
    #[arg(short, long)]
    quiet: bool,
    /// Show progress: auto, always, never or json.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    progress: ProgressWhen,
    /// Where to extract an image (default: TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
    /// The unsquashfs to extract squashfs images with.
    #[arg(long, value_name = "PATH", default_value = "unsquashfs")]
    unsquashfs: PathBuf,
    /// The fsck.erofs to extract EROFS images with.
    #[arg(long, value_name = "PATH", default_value = "fsck.erofs")]
    fsck_erofs: PathBuf,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    let mut different = false;
    let code = cli::run(PROGRAM, || run(args, &mut different));
    if code == ExitCode::FAILURE {
        ExitCode::from(EXIT_ERROR)
    } else if code == ExitCode::SUCCESS && different {
        ExitCode::from(EXIT_DIFFERENT)
    } else {
        code
    }
}

fn run(args: Args, different: &mut bool) -> Result<()> {
    let started = Instant::now();
    ocirender::process::remove_on_signal().context("cannot install signal handlers")?;
    cli::refuse_terminal_stdin("oci-layers IMAGE | oci-merge | oci-verify OUTPUT")?;
    let options = VerifyOptions {
        extract: ExtractOptions {
            unsquashfs: args.unsquashfs.clone(),
            fsck_erofs: args.fsck_erofs.clone(),
            temp_dir: args.tmpdir.clone(),
        },
        dir_time: timestamp_from_env()?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let json = args.json;
    let mut report = |difference: &Difference| {
        let line = match json {
            true => as_json(difference),
            false => difference.to_string(),
        };
        writeln!(out, "{line}").map_err(ocirender::Error::from)
    };
    let counter = ByteCounter::default();
    let mut input = Counted {
        inner: std::io::stdin().lock(),
        counter: counter.clone(),
    };
    let progress = shown(args.progress).map(|shown| Progress::start(PROGRAM, shown, counter));
    let verified = verify(&args.output, &mut input, &options, &mut report);
    if let Some(progress) = progress {
        progress.finish();
    }
    let (kind, stats) = verified?;
    out.flush().context("cannot write to stdout")?;
    *different = stats.differences > 0;
    let elapsed = started.elapsed();
    if args.progress == ProgressWhen::Json {
        progress::event(serde_json::json!({
            "event": "done",
            "output_kind": kind.name(),
            "entries": stats.entries,
            "data_bytes": stats.data_bytes,
            "differences": stats.differences,
            "elapsed_ms": elapsed.as_millis() as u64,
        }));
    }
    if args.stats {
        cli::note(
            PROGRAM,
            &format!(
                "{}: {} entries, {} MB compared, {} differences in {:.1} s",
                kind.name(),
                stats.entries,
                stats.data_bytes / 1_000_000,
                stats.differences,
                elapsed.as_secs_f64()
            ),
        );
    }
    Ok(())
}

/// What `--progress` shows here.
fn shown(when: ProgressWhen) -> Option<Shown> {
    match when {
        ProgressWhen::Auto if cli::stderr_is_a_terminal() => Some(Shown::Line),
        ProgressWhen::Always => Some(Shown::Line),
        ProgressWhen::Json => Some(Shown::Json),
        ProgressWhen::Auto | ProgressWhen::Never => None,
    }
}

/// `{"path":…,"kind":…,"expected":…,"found":…}`.
fn as_json(difference: &Difference) -> String {
    serde_json::json!({
        "path": difference.path_text(),
        "kind": difference.kind.name(),
        "expected": difference.expected,
        "found": difference.found,
    })
    .to_string()
}
