//! Building squashfs images with `mksquashfs -tar` (squashfs-tools 4.6+).
//!
//! Running it is [`crate::sink::builder`]'s: the tar stream is checked and
//! normalised on its way to mksquashfs, the image is written to a temporary
//! file beside the destination and renamed over it only when both the
//! stream and mksquashfs succeeded, so a failed run leaves the destination
//! as it was. This module knows mksquashfs's options. Defaults suit container root filesystems: zstd, no fragments (files stay
//! contiguous for fast random access), a root-owned 0755 root directory,
//! and reproducible timestamps.

use crate::error::Result;
pub use crate::sink::builder::Version;
use crate::sink::builder::{self, ToolSpec};
use crate::sink::builder_options::{BadOption, Compressor, SizeRule};
use crate::sink::image_builder::ImageBuilder;
use crate::sink::stream_check::{ForwardOptions, SQUASHFS_MAX_TIME};
use std::ffi::OsString;
use std::path::Path;

/// The oldest squashfs-tools with `-tar`.
pub const MINIMUM: Version = Version(4, 6, 0);

/// mksquashfs, and what to install when it is missing or too old.
pub const MKSQUASHFS: ToolSpec = ToolSpec {
    program: "mksquashfs",
    version_option: "-version",
    version_marker: "version ",
    minimum: MINIMUM,
    how_to_get: "tar2sqfs needs squashfs-tools 4.6 or newer for `mksquashfs -tar` \
     (Debian 13, Ubuntu 24.04 and Fedora 38 ship it; on Debian 12 run scripts/install-deps, \
     which builds 4.6.1 from Debian's source package), or point --mksquashfs at one",
};

/// The compression level used when none is given, for zstd: fast to build,
/// and still a good ratio for root filesystems.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

/// The compressors mksquashfs 4.6 knows, the default first, and the levels
/// each takes (`-Xcompression-level`).
pub static COMPRESSORS: &[Compressor] = &[
    Compressor {
        name: "zstd",
        levels: Some(1..=22),
        default_level: Some(DEFAULT_ZSTD_LEVEL),
    },
    Compressor {
        name: "gzip",
        levels: Some(1..=9),
        default_level: None,
    },
    Compressor {
        name: "xz",
        levels: None,
        default_level: None,
    },
    Compressor {
        name: "lz4",
        levels: None,
        default_level: None,
    },
    Compressor {
        name: "lzo",
        levels: Some(1..=9),
        default_level: None,
    },
    Compressor {
        name: "lzma",
        levels: None,
        default_level: None,
    },
];

/// The compressor used when none is given.
pub const DEFAULT_COMPRESSOR: &str = "zstd";

/// The block sizes squashfs holds (`-b`): powers of two, 4 KiB to 1 MiB.
pub const BLOCK_SIZE: SizeRule = SizeRule {
    option: "--block-size",
    min: 4 << 10,
    max: 1 << 20,
    power_of_two: true,
};

/// How to build the image, checked.
#[derive(Debug, Clone)]
pub struct SquashOptions {
    compressor: &'static Compressor,
    level: Option<u32>,
    block_size: Option<u64>,
    timestamp: u64,
    extra: Vec<OsString>,
}

impl SquashOptions {
    /// Options from what a user gave: a compressor name, a level, a block
    /// size (`131072`, `128K`, `1M`; mksquashfs's default when `None`),
    /// the filesystem and root directory time, and more mksquashfs
    /// arguments passed unchanged after ours. A value mksquashfs would
    /// refuse, or a level it would ignore, is refused here.
    pub fn new(
        compressor: &str,
        level: Option<u32>,
        block_size: Option<&str>,
        timestamp: u64,
        extra: Vec<OsString>,
    ) -> Result<SquashOptions, BadOption> {
        let compressor = Compressor::named(COMPRESSORS, compressor)?;
        Ok(SquashOptions {
            compressor,
            level: compressor.level(level)?,
            block_size: block_size.map(|s| BLOCK_SIZE.parse(s)).transpose()?,
            timestamp,
            extra,
        })
    }

    /// The mksquashfs arguments after `- OUTPUT`.
    fn options(&self) -> Vec<OsString> {
        let time = self.timestamp.to_string();
        let mut args: Vec<OsString> = [
            "-tar",
            "-noappend",
            "-no-fragments",
            "-exit-on-error",
            "-comp",
            self.compressor.name,
            "-mkfs-time",
            &time,
            "-root-time",
            &time,
            "-root-mode",
            "0755",
            "-root-uid",
            "0",
            "-root-gid",
            "0",
            "-default-mode",
            "0755",
            "-default-uid",
            "0",
            "-default-gid",
            "0",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if let Some(level) = self.level {
            args.extend(["-Xcompression-level".into(), level.to_string().into()]);
        }
        if let Some(size) = self.block_size {
            args.extend(["-b".into(), size.to_string().into()]);
        }
        // mksquashfs's report is captured and shown only if it fails; its
        // progress bar would fight the sink's own line (in -tar mode 4.6.1
        // draws none, since the total is unknown, but later ones may).
        args.push("-no-progress".into());
        args.extend(self.extra.iter().cloned());
        args
    }
}

impl ImageBuilder for SquashOptions {
    fn tool(&self) -> &'static ToolSpec {
        &MKSQUASHFS
    }

    fn arguments(&self, image: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-".into(), image.into()];
        args.extend(self.options());
        args
    }

    fn stream_check(&self) -> ForwardOptions {
        ForwardOptions {
            dir_time: self.timestamp,
            describe_root: false,
            max_time: Some(SQUASHFS_MAX_TIME),
        }
    }

    /// From the superblock: `inodes`, a 32-bit field after the magic.
    fn inode_count(&self, image: &Path) -> Result<u64> {
        builder::read_le::<4>(image, 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &SquashOptions) -> Vec<String> {
        options
            .arguments(Path::new("out"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn has_pair(args: &[String], first: &str, second: &str) -> bool {
        args.windows(2).any(|w| w[0] == first && w[1] == second)
    }

    #[test]
    fn levels_apply_only_where_they_mean_something() {
        let zstd = SquashOptions::new("zstd", None, None, 0, vec![]).unwrap();
        assert!(has_pair(&args(&zstd), "-Xcompression-level", "3"));
        let xz = SquashOptions::new("xz", None, None, 0, vec![]).unwrap();
        assert!(!args(&xz).iter().any(|a| a == "-Xcompression-level"));
        let gzip = SquashOptions::new("gzip", Some(9), None, 0, vec![]).unwrap();
        assert!(has_pair(&args(&gzip), "-Xcompression-level", "9"));
        for (comp, level) in [("xz", 9), ("zstd", 99), ("gzip", 0)] {
            let bad = SquashOptions::new(comp, Some(level), None, 0, vec![]).unwrap_err();
            assert_eq!(bad.option, "--level", "{comp} {level}");
        }
    }

    #[test]
    fn compressors_and_block_sizes_are_checked_before_mksquashfs_runs() {
        let bad = SquashOptions::new("zstdd", None, None, 0, vec![]).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "--comp zstdd: expected one of zstd, gzip, xz, lz4, lzo, lzma"
        );
        let bad = SquashOptions::new("zstd", None, Some("3K"), 0, vec![]).unwrap_err();
        assert_eq!(bad.option, "--block-size");
        let ok = SquashOptions::new("zstd", None, Some("1M"), 0, vec![]).unwrap();
        assert!(has_pair(&args(&ok), "-b", "1048576"));
    }

    #[test]
    fn mksquashfs_never_draws_its_own_progress() {
        let options = SquashOptions::new("zstd", None, None, 7, vec!["-x".into()]).unwrap();
        let got = args(&options);
        assert_eq!(&got[..3], ["-", "out", "-tar"]);
        assert!(got.contains(&"-no-progress".to_owned()), "{got:?}");
        assert_eq!(got.last().unwrap(), "-x", "extra options come last");
        assert!(has_pair(&got, "-mkfs-time", "7"));
    }
}
