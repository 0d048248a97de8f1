//! `tar2dir DIR`: unpack a tar stream from stdin into a new directory.

use anyhow::{Context, Result};
use clap::Parser;
use ocirender::sink::builder::timestamp_from_env;
use ocirender::sink::{unpack_to_new_dir, UnpackOptions};
use ocirender_cli as cli;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

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
  DIR must not exist, or be empty. The tree is built in a hidden sibling
  directory and renamed to DIR only after the whole stream, including its
  end-of-archive marker, has been applied; on any failure it is removed and
  DIR is left as it was.

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
  error (one line on stderr), with DIR left as it was; 128+N when killed by
  signal N (the hidden sibling is removed first).

ENVIRONMENT
  SOURCE_DATE_EPOCH  the time of directories the stream does not describe
                     (default 0), as in tar2sqfs and tar2erofs

EXAMPLES
  oci-layers IMAGE | oci-merge | tar2dir rootfs/
  tar2dir rootfs/ < rootfs.tar"
);

/// Unpack a tar stream from stdin into a new directory, safely.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    /// The directory to create (it must not exist, or be empty).
    dir: PathBuf,
    /// Fail instead of skipping what this user may not do (ownership, devices).
    #[arg(long)]
    strict: bool,
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
    // A descriptor of our own, so large files can be spliced from it.
    let stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let options = UnpackOptions {
        strict: args.strict,
        force_walk: args.no_openat2,
        dir_time: timestamp_from_env()?,
    };
    let stats = unpack_to_new_dir(&args.dir, stdin, &options)?;
    if let Some(summary) = stats.skipped_summary() {
        cli::warn(
            PROGRAM,
            &format!("{summary}; use --strict to make this an error"),
        );
    }
    Ok(())
}
