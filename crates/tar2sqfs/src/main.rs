//! `tar2sqfs OUT`: build a squashfs image from a tar stream on stdin.

use anyhow::{Context, Result};
use clap::Parser;
use ocirender::sink::builder::timestamp_from_env;
use ocirender::sink::squashfs::{inode_count, write_squashfs, SquashOptions, MKSQUASHFS};
use ocirender_cli as cli;
use std::ffi::OsString;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

const PROGRAM: &str = "tar2sqfs";

const AFTER_HELP: &str = concat!(
    "\
DEFAULTS
  zstd (level 3), no fragments, no appending, the root directory and
  directories the tar does not describe 0755 root:root, numeric ownership
  (user and group names in the stream are ignored), and reproducible
  times: the filesystem and root directory get SOURCE_DATE_EPOCH (or 0),
  files keep the times in the tar. The same stream gives the same image.

OUTPUT
  Nothing on success: mksquashfs's report is captured and dropped (it is
  shown, on one line, only when mksquashfs fails, since it explains why).
  --stats prints one line instead: image size, inodes, the file data that
  went in and the compression ratio (file data / image size). --progress
  lets mksquashfs print on stderr as it does alone (in -tar mode,
  mksquashfs 4.6 draws no bar, since it cannot know the total, but it
  prints its banner and its report).

SAFETY
  The stream is checked as it is forwarded: a bad header or a missing
  end-of-archive marker (a truncated stream, a failed producer) fails the
  run, and so does a time squashfs cannot hold (before 1970 or after
  4294967295 s, early 2106), which mksquashfs would store as another. The
  image is built beside OUT and renamed over it only on success; on
  failure OUT is left exactly as it was.

",
    ocirender::tree_rules_help!(),
    "\
EXIT STATUS
  0 when the image was built and renamed into place; 1 on any error (one
  line on stderr), with OUT left as it was; 128+N when killed by signal N
  (mksquashfs is killed and the temporary image removed first).

ENVIRONMENT
  SOURCE_DATE_EPOCH  the filesystem and root directory time (default 0)
  PATH               where mksquashfs (4.6 or newer) is looked for

EXAMPLES
  oci-layers IMAGE | oci-merge | tar2sqfs rootfs.sqfs
  tar2sqfs --comp xz rootfs.sqfs < rootfs.tar
  tar2sqfs rootfs.sqfs -- -processors 1 < rootfs.tar"
);

/// Build a squashfs image from a tar stream on stdin.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    /// The image to write (replaced only on success).
    out: PathBuf,
    /// The mksquashfs to run (default: the one on PATH; 4.6 or newer).
    #[arg(long, value_name = "PATH")]
    mksquashfs: Option<PathBuf>,
    /// Compressor: zstd, gzip, xz, lz4, lzo, lzma.
    #[arg(long = "comp", default_value = "zstd")]
    compressor: String,
    /// Compression level (zstd 1-22, gzip and lzo 1-9).
    #[arg(long)]
    level: Option<u32>,
    /// Block size, e.g. 131072, 128K, 1M.
    #[arg(long, value_name = "SIZE")]
    block_size: Option<String>,
    /// Let mksquashfs print its progress and report on stderr.
    #[arg(long)]
    progress: bool,
    /// On success, print one line: image size, inodes, compression ratio.
    #[arg(long, short = 'v')]
    stats: bool,
    /// Options passed to mksquashfs unchanged.
    #[arg(last = true, value_name = "MKSQUASHFS-OPTIONS")]
    extra: Vec<OsString>,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    ocirender::process::remove_on_signal().context("cannot install signal handlers")?;
    cli::refuse_terminal_stdin("oci-layers IMAGE | oci-merge | tar2sqfs OUT")?;
    let stdin = std::io::stdin();
    let tool = MKSQUASHFS.find(args.mksquashfs.as_deref())?;
    let options = SquashOptions {
        compressor: args.compressor,
        level: args.level,
        block_size: args.block_size,
        timestamp: timestamp_from_env()?,
        progress: args.progress,
        extra: args.extra,
    };
    let mut input = BufReader::with_capacity(1 << 20, stdin.lock());
    let built = write_squashfs(&args.out, &mut input, &tool, &options)?;
    if args.stats {
        let inodes = inode_count(&args.out)?;
        cli::note(PROGRAM, &built.summary(&args.out, inodes));
    }
    Ok(())
}
