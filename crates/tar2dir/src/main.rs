//! `tar2dir DIR`: unpack a tar stream from stdin into a new directory.

use anyhow::{Context, Result};
use clap::Parser;
use ocirender::sink::builder::timestamp_from_env;
use ocirender::sink::{check_destination, unpack_to_new_dir, UnpackOptions};
use ocirender_cli as cli;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const PROGRAM: &str = "tar2dir";

const AFTER_HELP: &str = concat!(
    "\
SAFETY
  Every path is resolved inside DIR by the kernel (openat2 RESOLVE_IN_ROOT,
  or a component walk that refuses symlinks): no entry, symlink or hard link
  can create, write or change anything outside DIR. No entry may stand
  where an earlier one is, or below a symlink (see THE TREE), so nothing is
  ever written through or over what the stream made.

ATOMICITY
  DIR must not exist, or be empty; with --force, an existing DIR is
  replaced. The tree is built in a hidden sibling directory and renamed to
  DIR (with --force, exchanged with the old DIR, which is then removed)
  only after the whole stream, including its end-of-archive marker, has
  been applied; on any failure it is removed and DIR is left as it was.

WITHOUT ROOT
  Ownership, device nodes and security.*/trusted.* xattrs cannot be set;
  they are skipped with one summary warning, or refused with --strict.
  Directories the stream does not describe are then owned by the user
  running tar2dir.

",
    ocirender::tree_rules_help!(),
    "\
EXIT STATUS
  0 when the whole stream was unpacked and DIR renamed into place; 1 on any
  error (one line on stderr), with DIR left as it was; 2 on a usage error
  (a bad flag, or DIR exists and is not empty, without --force); 128+N
  when killed by signal N (the hidden sibling is removed first).

ENVIRONMENT
  SOURCE_DATE_EPOCH  the time of directories the stream does not describe
                     (default 0), as in tar2sqfs and tar2erofs

EXAMPLES
  oci-layers IMAGE | oci-merge | tar2dir rootfs/
  tar2dir rootfs/ < rootfs.tar"
);

/// Unpack a tar stream from stdin into a new directory, safely.
///
/// tar2dir reads the tar oci-merge writes (or any tar) and builds the tree
/// it describes in DIR: every path resolved inside DIR by the kernel, the
/// tree built beside DIR and renamed into place only once the whole
/// stream, end marker included, has been applied. It builds the tree
/// tar2sqfs and tar2erofs build from the same stream, or refuses it as
/// they do. See docs/design.md.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    /// The directory to create (it must not exist, or be empty).
    dir: PathBuf,
    /// Fail instead of skipping what this user may not do (ownership, devices).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    force: cli::args::Force,
    #[command(flatten)]
    stats: cli::args::Stats,
    #[command(flatten)]
    quiet: cli::args::Quiet,
    /// Resolve paths by walking components even where openat2 exists (for testing).
    #[arg(long, hide = true)]
    no_openat2: bool,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    ocirender::process::remove_on_signal().context("cannot install signal handlers")?;
    cli::refuse_terminal_stdin("oci-layers IMAGE | oci-merge | tar2dir DIR")?;
    check_destination(&args.dir, args.force.force).map_err(|e| cli::UsageError(e.to_string()))?;
    // A descriptor of our own, so large files can be spliced from it.
    let stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let options = UnpackOptions {
        strict: args.strict,
        force_walk: args.no_openat2,
        dir_time: timestamp_from_env()?,
        replace: args.force.force,
    };
    let started = Instant::now();
    let stats = unpack_to_new_dir(&args.dir, stdin, &options)?;
    match stats.skipped_summary() {
        Some(summary) if !args.quiet.quiet => cli::warn(
            PROGRAM,
            &format!("{summary}; use --strict to make this an error"),
        ),
        _ => {}
    }
    if args.stats.stats {
        let seconds = started.elapsed().as_secs_f64();
        let line = format!(
            "{} entries, {} bytes of file data in {seconds:.1} s",
            stats.entries, stats.bytes
        );
        cli::note(PROGRAM, &line);
    }
    Ok(())
}
