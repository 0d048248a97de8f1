//! `tar2sqfs OUT`: build a squashfs image from a tar stream on stdin.

use clap::Parser;
use ocirender::sink::builder_options::BadOption;
use ocirender::sink::image_builder::ImageBuilder;
use ocirender::sink::squashfs::{SquashOptions, COMPRESSORS, DEFAULT_COMPRESSOR};
use ocirender_cli as cli;
use ocirender_cli::image_sink::{compressor_names, ImageSink, SinkArgs};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
  --stats prints one line instead (at most 80 columns): image size,
  inodes, the file data that went in and the compression ratio (file
  data / image size). --progress (auto: when stderr is a terminal) shows
  one line once the stream has ended, while mksquashfs finishes the
  image (tar2sqfs: building OUT with mksquashfs... 12 s), cleared when
  OUT is in place; --progress json prints a `building` event then, and a
  `done` event once OUT exists (image_bytes, inodes, entries,
  data_bytes, elapsed_ms).

SAFETY
  The stream is checked as it is forwarded: a bad header or a missing
  end-of-archive marker (a truncated stream, a failed producer) fails the
  run, and so does a time squashfs cannot hold (before 1970 or after
  4294967295 s, early 2106), which mksquashfs would store as another. The
  image is built beside OUT and renamed over it only on success; on
  failure OUT is left exactly as it was. An existing OUT is refused
  unless --force is given. Option values (--comp, --level, --block-size)
  are checked before the stream is read.

",
    ocirender::tree_rules_help!(),
    "\
EXIT STATUS
  0 when the image was built and renamed into place; 2 for a bad option
  value or an existing OUT without --force, before anything is read; 1 on
  any other error (one line on stderr), with OUT left as it was; 128+N when killed by signal N
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
#[command(name = "tar2sqfs", version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    #[command(flatten)]
    sink: SinkArgs,
    /// The mksquashfs to run (default: the one on PATH; 4.6 or newer).
    #[arg(long, value_name = "PATH")]
    mksquashfs: Option<PathBuf>,
    /// Compressor.
    #[arg(long = "comp", default_value = DEFAULT_COMPRESSOR,
          value_parser = compressor_names(COMPRESSORS))]
    compressor: String,
    /// Compression level (zstd 1-22, gzip and lzo 1-9).
    #[arg(long)]
    level: Option<u32>,
    /// Block size, a power of two from 4K to 1M: 131072, 128K, 1M.
    #[arg(long, value_name = "SIZE")]
    block_size: Option<String>,
    /// Options passed to mksquashfs unchanged.
    #[arg(last = true, value_name = "MKSQUASHFS-OPTIONS")]
    extra: Vec<OsString>,
}

impl ImageSink for Args {
    const PROGRAM: &'static str = "tar2sqfs";

    fn sink(&self) -> &SinkArgs {
        &self.sink
    }

    fn tool_path(&self) -> Option<&Path> {
        self.mksquashfs.as_deref()
    }

    fn builder(&self, timestamp: u64) -> Result<Box<dyn ImageBuilder>, BadOption> {
        let options = SquashOptions::new(
            &self.compressor,
            self.level,
            self.block_size.as_deref(),
            timestamp,
            self.extra.clone(),
        )?;
        Ok(Box::new(options))
    }
}

fn main() -> ExitCode {
    cli::image_sink::main::<Args>()
}
