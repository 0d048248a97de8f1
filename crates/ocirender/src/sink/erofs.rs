//! Building EROFS images with `mkfs.erofs --tar=f` (erofs-utils 1.9+).
//!
//! Running it is [`crate::sink::builder`]'s, as for squashfs: the stream is
//! checked on its way, the image is built beside the destination and
//! renamed over it only on success. This module knows mkfs.erofs's options
//! and its traps in tar mode:
//!
//! * `-T N` alone stamps every inode with N; `-T N --mkfs-time` sets only
//!   the build time, and file times come from the tar;
//! * the root directory it makes is 0777, owned by whoever runs it, with
//!   the build time: the stream gets a `./` entry (0755 root:root, the
//!   reproducible time) first;
//! * the filesystem UUID is random unless given: a fixed one is;
//! * the block size defaults to the page size of the host: it is 4096 here,
//!   which every kernel mounts;
//! * `SOURCE_DATE_EPOCH` in its environment would clamp every file time
//!   (the builder never passes it on).
//!
//! File data is staged before it is compressed: mkfs.erofs writes it into
//! the image file itself, past 1 TiB (a sparse region, cut off at the end),
//! or, where the filesystem cannot hold so large a file, into an unlinked
//! temporary file in `TMPDIR`, which the builder points beside the image.
//! Either way it is gone on every exit path. With `--comp none` nothing
//! needs staging: data goes straight to its place (`--sort=none`).

use crate::error::{bail, Result};
pub use crate::sink::builder::Version;
use crate::sink::builder::{self, build_image, Built, Run, Tool, ToolSpec};
use crate::sink::stream_check::ForwardOptions;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

/// The oldest erofs-utils whose `--tar=f` mode has no known faults.
pub const MINIMUM: Version = Version(1, 9, 0);

/// mkfs.erofs, and what to install when it is missing or too old.
pub const MKFS_EROFS: ToolSpec = ToolSpec {
    program: "mkfs.erofs",
    version_option: "--version",
    version_marker: "(erofs-utils) ",
    minimum: MINIMUM,
    how_to_get: "tar2erofs needs erofs-utils 1.9 or newer for `mkfs.erofs --tar=f` \
     (older releases have known faults in this mode; Debian 12 ships 1.5 and Debian 13 1.8.6: \
     run scripts/install-deps, which builds it from Debian unstable's source package), \
     or point --mkfs-erofs at one",
};

/// The filesystem UUID of every image, so the same stream gives the same
/// bytes (`-- -Urandom` asks for a random one).
pub const FIXED_UUID: &str = "6f636972-656e-4465-b200-65726f667321";

/// The compressor used when none is given: lz4 decompresses fastest and
/// lz4hc packs it tighter at build time; the kernel reads lz4 in big
/// clusters since Linux 5.13 (zstd needs 6.10).
pub const DEFAULT_COMPRESSOR: &str = "lz4hc";
/// The lz4hc level used when none is given: on a 1 GB root filesystem,
/// level 4 made an image 1.2 % larger than mkfs.erofs's default 9 in half
/// the CPU time.
pub const DEFAULT_LZ4HC_LEVEL: u32 = 4;
/// The physical cluster size used when none is given, in bytes.
pub const DEFAULT_CLUSTER_SIZE: u64 = 64 << 10;
/// The filesystem block size.
pub const BLOCK_SIZE: u64 = 4096;

/// The compressors mkfs.erofs knows, and whether each takes a level.
const COMPRESSORS: &[(&str, bool)] = &[
    ("lz4", false),
    ("lz4hc", true),
    ("lzma", true),
    ("deflate", true),
    ("zstd", true),
    ("none", false),
];

/// How to build the image.
#[derive(Debug, Clone)]
pub struct ErofsOptions {
    /// Compressor name (`-z`), or `none`.
    pub compressor: String,
    /// Compression level, for compressors that have one.
    pub level: Option<u32>,
    /// Largest physical cluster (`-C`) in bytes, a multiple of the block
    /// size.
    pub cluster_size: u64,
    /// Filesystem and root directory time.
    pub timestamp: u64,
    /// Let mkfs.erofs print its progress on our stderr.
    pub progress: bool,
    /// More mkfs.erofs arguments, passed unchanged after ours.
    pub extra: Vec<OsString>,
}

impl ErofsOptions {
    /// The defaults, with the given timestamp.
    pub fn new(timestamp: u64) -> ErofsOptions {
        ErofsOptions {
            compressor: DEFAULT_COMPRESSOR.to_owned(),
            level: None,
            cluster_size: DEFAULT_CLUSTER_SIZE,
            timestamp,
            progress: false,
            extra: Vec::new(),
        }
    }

    /// The mkfs.erofs arguments before the image path.
    pub fn arguments(&self) -> Result<Vec<OsString>> {
        let Some(&(_, has_level)) = COMPRESSORS
            .iter()
            .find(|(name, _)| *name == self.compressor)
        else {
            let known: Vec<&str> = COMPRESSORS.iter().map(|(name, _)| *name).collect();
            bail!(
                "unknown compressor {:?} (known: {})",
                self.compressor,
                known.join(", ")
            );
        };
        if self.level.is_some() && !has_level {
            bail!(
                "--level does not apply to the {} compressor",
                self.compressor
            );
        }
        if self.cluster_size == 0 || !self.cluster_size.is_multiple_of(BLOCK_SIZE) {
            bail!(
                "--cluster-size {} is not a multiple of the {BLOCK_SIZE}-byte block",
                self.cluster_size
            );
        }
        let mut args: Vec<String> = vec![
            "--tar=f".into(),
            format!("-b{BLOCK_SIZE}"),
            format!("-T{}", self.timestamp),
            "--mkfs-time".into(),
            format!("-U{FIXED_UUID}"),
        ];
        if self.compressor == "none" {
            // Nothing to compress, so nothing to stage: each file's data
            // goes straight to its place, in the order of the stream.
            args.push("--sort=none".into());
            args.push("-Enoinline_data".into());
        } else {
            let mut z = format!("-z{}", self.compressor);
            let level = match (self.compressor.as_str(), self.level) {
                ("lz4hc", None) => Some(DEFAULT_LZ4HC_LEVEL),
                (_, level) => level,
            };
            if let Some(level) = level {
                z += &format!(",level={level}");
            }
            args.push(z);
            args.push(format!("-C{}", self.cluster_size));
        }
        let mut args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        args.extend(self.extra.iter().cloned());
        Ok(args)
    }
}

/// Builds `out` from the tar stream `input`. On failure `out` is untouched.
pub fn write_erofs(
    out: &Path,
    input: &mut dyn Read,
    tool: &Tool,
    options: &ErofsOptions,
) -> Result<Built> {
    let arguments = options.arguments()?;
    let run = Run {
        forwarding: ForwardOptions {
            dir_time: options.timestamp,
            describe_root: true,
            max_time: None,
        },
        progress: options.progress,
    };
    build_image(out, input, tool, &run, |image| {
        let mut args = arguments;
        args.push(image.into());
        args
    })
}

/// The number of inodes in the EROFS image at `path`, from its superblock
/// (at 1024; `inos`, 64 bits at offset 16).
pub fn inode_count(path: &Path) -> Result<u64> {
    builder::read_le::<8>(path, 1024 + 16)
}

/// Reads a size: bytes, or with a `K`, `M` or `G` suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 10),
        Some((at, 'm' | 'M')) => (&text[..at], 20),
        Some((at, 'g' | 'G')) => (&text[..at], 30),
        _ => (text, 0),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is not a size (bytes, or with K, M or G)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &ErofsOptions) -> Vec<String> {
        options
            .arguments()
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn defaults_are_reproducible_and_compressed() {
        let got = args(&ErofsOptions::new(1234));
        for want in [
            "--tar=f",
            "-b4096",
            "-T1234",
            "--mkfs-time",
            "-U6f636972-656e-4465-b200-65726f667321",
            "-zlz4hc,level=4",
            "-C65536",
        ] {
            assert!(got.iter().any(|a| a == want), "{want} missing from {got:?}");
        }
        assert!(!got.iter().any(|a| a.starts_with("--sort")), "{got:?}");
    }

    #[test]
    fn levels_apply_only_where_they_mean_something() {
        let mut o = ErofsOptions::new(0);
        o.compressor = "zstd".into();
        o.level = Some(9);
        assert!(args(&o).contains(&"-zzstd,level=9".to_owned()));
        o.compressor = "lz4".into();
        assert!(o.arguments().is_err());
        o.compressor = "bogus".into();
        o.level = None;
        let err = o.arguments().unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("lz4hc"), "{err}");
    }

    #[test]
    fn no_compression_writes_data_in_place() {
        let mut o = ErofsOptions::new(0);
        o.compressor = "none".into();
        let got = args(&o);
        assert!(got.contains(&"--sort=none".to_owned()), "{got:?}");
        assert!(!got
            .iter()
            .any(|a| a.starts_with("-z") || a.starts_with("-C")));
    }

    #[test]
    fn cluster_sizes_are_whole_blocks() {
        let mut o = ErofsOptions::new(0);
        o.cluster_size = 131072;
        assert!(args(&o).contains(&"-C131072".to_owned()));
        o.cluster_size = 5000;
        assert!(o.arguments().is_err());
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
    }
}
