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

use crate::error::Result;
pub use crate::sink::builder::Version;
use crate::sink::builder::{self, ToolSpec};
use crate::sink::builder_options::{BadOption, Compressor, SizeRule};
use crate::sink::image_builder::ImageBuilder;
use crate::sink::stream_check::ForwardOptions;
use std::ffi::OsString;
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

/// The largest physical cluster mkfs.erofs makes.
pub const MAX_CLUSTER_SIZE: u64 = 1 << 20;

/// The cluster sizes it takes (`-C`): whole blocks, up to 1 MiB.
pub const CLUSTER_SIZE: SizeRule = SizeRule {
    option: "--cluster-size",
    min: BLOCK_SIZE,
    max: MAX_CLUSTER_SIZE,
    power_of_two: false,
};

/// The compressors mkfs.erofs knows, the default first, and the levels
/// each takes; `none` stores file data as it is.
pub static COMPRESSORS: &[Compressor] = &[
    Compressor {
        name: "lz4hc",
        levels: Some(0..=12),
        default_level: Some(DEFAULT_LZ4HC_LEVEL),
    },
    Compressor {
        name: "lz4",
        levels: None,
        default_level: None,
    },
    Compressor {
        name: "zstd",
        levels: Some(1..=22),
        default_level: None,
    },
    Compressor {
        name: "lzma",
        levels: Some(0..=9),
        default_level: None,
    },
    Compressor {
        name: "deflate",
        levels: Some(0..=9),
        default_level: None,
    },
    Compressor {
        name: "none",
        levels: None,
        default_level: None,
    },
];

/// How to build the image, checked.
#[derive(Debug, Clone)]
pub struct ErofsOptions {
    compressor: &'static Compressor,
    level: Option<u32>,
    cluster_size: u64,
    timestamp: u64,
    extra: Vec<OsString>,
}

impl ErofsOptions {
    /// Options from what a user gave: a compressor name (or `none`), a
    /// level, the largest physical cluster (`64K`, `1M`; the default when
    /// `None`), the build and root directory time, and more mkfs.erofs
    /// arguments passed unchanged after ours. A value mkfs.erofs would
    /// refuse, or a level it would ignore, is refused here.
    pub fn new(
        compressor: &str,
        level: Option<u32>,
        cluster_size: Option<&str>,
        timestamp: u64,
        extra: Vec<OsString>,
    ) -> Result<ErofsOptions, BadOption> {
        let compressor = Compressor::named(COMPRESSORS, compressor)?;
        let cluster_size = match cluster_size {
            Some(text) => CLUSTER_SIZE.parse(text)?,
            None => DEFAULT_CLUSTER_SIZE,
        };
        Ok(ErofsOptions {
            compressor,
            level: compressor.level(level)?,
            cluster_size,
            timestamp,
            extra,
        })
    }

    /// The defaults, with the given timestamp.
    pub fn defaults(timestamp: u64) -> ErofsOptions {
        ErofsOptions::new(DEFAULT_COMPRESSOR, None, None, timestamp, Vec::new())
            .expect("the defaults are valid")
    }

    /// The mkfs.erofs arguments before the image path.
    fn options(&self) -> Vec<OsString> {
        let mut args: Vec<String> = vec![
            "--tar=f".into(),
            format!("-b{BLOCK_SIZE}"),
            format!("-T{}", self.timestamp),
            "--mkfs-time".into(),
            format!("-U{FIXED_UUID}"),
        ];
        if self.compressor.name == "none" {
            // Nothing to compress, so nothing to stage: each file's data
            // goes straight to its place, in the order of the stream.
            args.push("--sort=none".into());
            args.push("-Enoinline_data".into());
        } else {
            let mut z = format!("-z{}", self.compressor.name);
            if let Some(level) = self.level {
                z += &format!(",level={level}");
            }
            args.push(z);
            args.push(format!("-C{}", self.cluster_size));
        }
        let mut args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        args.extend(self.extra.iter().cloned());
        args
    }
}

impl ImageBuilder for ErofsOptions {
    fn tool(&self) -> &'static ToolSpec {
        &MKFS_EROFS
    }

    fn arguments(&self, image: &Path) -> Vec<OsString> {
        let mut args = self.options();
        args.push(image.into());
        args
    }

    fn stream_check(&self) -> ForwardOptions {
        ForwardOptions {
            dir_time: self.timestamp,
            describe_root: true,
            max_time: None,
        }
    }

    /// From the superblock (at 1024): `inos`, 64 bits at offset 16.
    fn inode_count(&self, image: &Path) -> Result<u64> {
        builder::read_le::<8>(image, 1024 + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &ErofsOptions) -> Vec<String> {
        options
            .arguments(Path::new("out"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn options(comp: &str, level: Option<u32>, cluster: Option<&str>) -> ErofsOptions {
        ErofsOptions::new(comp, level, cluster, 0, vec![]).unwrap()
    }

    #[test]
    fn defaults_are_reproducible_and_compressed() {
        let got = args(&ErofsOptions::defaults(1234));
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
        assert_eq!(got.last().unwrap(), "out", "the image path comes last");
    }

    #[test]
    fn levels_apply_only_where_they_mean_something() {
        assert!(args(&options("zstd", Some(9), None)).contains(&"-zzstd,level=9".to_owned()));
        for (comp, level) in [("lz4", 5), ("zstd", 99), ("lz4hc", 13), ("none", 1)] {
            let bad = ErofsOptions::new(comp, Some(level), None, 0, vec![]).unwrap_err();
            assert_eq!(bad.option, "--level", "{comp} {level}");
        }
        let err = ErofsOptions::new("bogus", None, None, 0, vec![])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--comp bogus: expected one of lz4hc, lz4, zstd, lzma, deflate, none"
        );
    }

    #[test]
    fn no_compression_writes_data_in_place() {
        let got = args(&options("none", None, None));
        assert!(got.contains(&"--sort=none".to_owned()), "{got:?}");
        assert!(!got
            .iter()
            .any(|a| a.starts_with("-z") || a.starts_with("-C")));
    }

    #[test]
    fn cluster_sizes_are_whole_blocks() {
        assert!(args(&options("lz4hc", None, Some("128K"))).contains(&"-C131072".to_owned()));
        assert!(args(&options("lz4hc", None, Some("1M"))).contains(&"-C1048576".to_owned()));
        for bad in ["5000", "0", "2M", "lots"] {
            let err = ErofsOptions::new("lz4hc", None, Some(bad), 0, vec![]).unwrap_err();
            assert_eq!(err.option, "--cluster-size", "{bad}");
            assert!(err.to_string().contains("4096"), "{err}");
        }
    }
}
