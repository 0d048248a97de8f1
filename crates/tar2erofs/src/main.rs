//! `tar2erofs OUT`: build an EROFS image from a tar stream on stdin.

use clap::Parser;
use ocirender::sink::builder_options::BadOption;
use ocirender::sink::erofs::{ErofsOptions, COMPRESSORS, DEFAULT_COMPRESSOR};
use ocirender::sink::image_builder::ImageBuilder;
use ocirender_cli as cli;
use ocirender_cli::image_sink::{compressor_names, ImageSink, SinkArgs};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const AFTER_HELP: &str = concat!(
    "\
DEFAULTS
  lz4hc level 4 in clusters of up to 64 KiB, 4 KiB blocks: lz4 is the
  fastest to read, and the kernel mounts it in big clusters since Linux
  5.13 (zstd needs 6.10). On a 1 GB Debian root filesystem (38,837
  entries) mkfs.erofs made 455 MB in 21 CPU-seconds this way; lz4hc level
  9: 450 MB in 38 s; lz4 in 4 KiB clusters: 577 MB in 5 s; zstd in 64 KiB
  clusters: 458 MB in 38 s; tar2sqfs's zstd: 348 MB in 8 s. Smaller
  still, for newer kernels: -- -Eztailpacking (423 MB, Linux 5.17) or
  -- -Eztailpacking,fragments (381 MB, Linux 6.1).
  The root directory and directories the tar does not describe are 0755
  root:root, ownership is numeric (user and group names in the stream are
  ignored), xattrs (file capabilities too), hard links and device nodes
  are kept. Reproducible: a fixed filesystem UUID (-- -Urandom for a
  random one), the build time and root directory time from
  SOURCE_DATE_EPOCH (or 0), file times from the tar. The same stream gives
  the same image.

TEMPORARY SPACE
  mkfs.erofs stages the file data of the stream before compressing it:
  inside the new image file itself (a sparse region past 1 TiB, cut off
  at the end), so beside OUT, about as large as the uncompressed data.
  Where the filesystem cannot hold so large a file, it uses an unlinked
  file in TMPDIR, which tar2erofs points beside OUT too. Either way it is
  gone when tar2erofs ends, however it ends. For the 1 GB Debian root
  filesystem: 1.0 GiB staged beside a 0.4 GiB image, 1.5 GiB at the peak.
  --comp none stages nothing (and makes a 1.05 GB image).

OUTPUT
  Nothing on success: what mkfs.erofs prints is captured and dropped (it
  is shown, on one line, only when mkfs.erofs fails). --stats prints one
  line instead (at most 80 columns): image size, inodes, the file data
  that went in and the compression ratio (file data / image size).
  --progress (auto: when stderr is a terminal) shows one line once the
  stream has ended, while mkfs.erofs finishes the image (tar2erofs:
  building OUT with mkfs.erofs... 12 s), cleared when OUT is in place;
  --progress json prints a `building` event then, and a `done` event
  once OUT exists (image_bytes, inodes, entries, data_bytes, elapsed_ms).

SAFETY
  The stream is checked as it is forwarded: a bad header or a missing
  end-of-archive marker (a truncated stream, a failed producer) fails the
  run. The image is built beside OUT and renamed over it only on success;
  on failure OUT is left exactly as it was. An existing OUT is refused
  unless --force is given. Option values (--comp, --level,
  --cluster-size) are checked before the stream is read.

",
    ocirender::tree_rules_help!(),
    "\
EXIT STATUS
  0 when the image was built and renamed into place; 2 for a bad option
  value or an existing OUT without --force, before anything is read; 1 on
  any other error (one line on stderr), with OUT left as it was; 128+N when killed by signal N
  (mkfs.erofs is killed and the temporary image removed first).

ENVIRONMENT
  SOURCE_DATE_EPOCH  the build time and root directory time (default 0);
                     never passed to mkfs.erofs, which would clamp every
                     file time to it
  PATH               where mkfs.erofs is looked for (or --mkfs-erofs)

EXAMPLES
  oci-layers IMAGE | oci-merge | tar2erofs rootfs.erofs
  tar2erofs --comp zstd --level 9 rootfs.erofs < rootfs.tar
  tar2erofs rootfs.erofs -- -Efragments,ztailpacking < rootfs.tar"
);

/// Build an EROFS image from a tar stream on stdin.
#[derive(Parser)]
#[command(name = "tar2erofs", version, long_version = cli::LONG_VERSION, after_help = cli::with_limits(AFTER_HELP))]
struct Args {
    #[command(flatten)]
    sink: SinkArgs,
    /// The mkfs.erofs to run (default: the one on PATH; 1.9 or newer).
    #[arg(long = "mkfs-erofs", value_name = "PATH")]
    mkfs_erofs: Option<PathBuf>,
    /// Compressor (none: store file data as it is).
    #[arg(long = "comp", default_value = DEFAULT_COMPRESSOR,
          value_parser = compressor_names(COMPRESSORS))]
    compressor: String,
    /// Compression level (lz4hc 0-12, default 4; zstd 1-22; lzma 0-9;
    /// deflate 0-9).
    #[arg(long)]
    level: Option<u32>,
    /// Largest compressed cluster, a multiple of 4 KiB up to 1 MiB: 4K,
    /// 64K (the default), 1M.
    #[arg(long, value_name = "SIZE")]
    cluster_size: Option<String>,
    /// Options passed to mkfs.erofs unchanged (after tar2erofs's own).
    #[arg(last = true, value_name = "MKFS-EROFS-OPTIONS")]
    extra: Vec<OsString>,
}

impl ImageSink for Args {
    const PROGRAM: &'static str = "tar2erofs";

    fn sink(&self) -> &SinkArgs {
        &self.sink
    }

    fn tool_path(&self) -> Option<&Path> {
        self.mkfs_erofs.as_deref()
    }

    fn builder(&self, timestamp: u64) -> Result<Box<dyn ImageBuilder>, BadOption> {
        let options = ErofsOptions::new(
            &self.compressor,
            self.level,
            self.cluster_size.as_deref(),
            timestamp,
            self.extra.clone(),
        )?;
        Ok(Box::new(options))
    }
}

fn main() -> ExitCode {
    cli::image_sink::main::<Args>()
}
