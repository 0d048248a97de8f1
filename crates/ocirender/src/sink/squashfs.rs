//! Building squashfs images with `mksquashfs -tar` (squashfs-tools 4.6+).
//!
//! Running it is [`crate::sink::builder`]'s: the tar stream is checked and
//! normalised on its way to mksquashfs, the image is written to a temporary
//! file beside the destination and renamed over it only when both the
//! stream and mksquashfs succeeded, so a failed run leaves the destination
//! as it was. This module knows mksquashfs's options. Defaults suit container root filesystems: zstd, no fragments (files stay
//! contiguous for fast random access), a root-owned 0755 root directory,
//! and reproducible timestamps.

use crate::error::{bail, Result};
pub use crate::sink::builder::Version;
use crate::sink::builder::{self, build_image, Built, Run, Tool, ToolSpec};
use crate::sink::stream_check::{ForwardOptions, SQUASHFS_MAX_TIME};
use std::ffi::OsString;
use std::io::Read;
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

/// How to build the image.
#[derive(Debug, Clone)]
pub struct SquashOptions {
    /// Compressor name (`-comp`).
    pub compressor: String,
    /// Compression level, for compressors that have one.
    pub level: Option<u32>,
    /// Block size (`-b`), as mksquashfs reads it (`131072`, `128K`, `1M`).
    pub block_size: Option<String>,
    /// Filesystem and root directory time.
    pub timestamp: u64,
    /// Let mksquashfs print on our stderr as it would alone: its progress
    /// and its report.
    pub progress: bool,
    /// More mksquashfs arguments, passed unchanged after ours.
    pub extra: Vec<OsString>,
}

/// The compression level used when none is given, for zstd: fast to build,
/// and still a good ratio for root filesystems.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

impl SquashOptions {
    /// The mksquashfs arguments after `- OUTPUT`.
    pub fn arguments(&self) -> Result<Vec<OsString>> {
        let time = self.timestamp.to_string();
        let mut args: Vec<OsString> = [
            "-tar",
            "-noappend",
            "-no-fragments",
            "-exit-on-error",
            "-comp",
            self.compressor.as_str(),
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
        let level = match (self.compressor.as_str(), self.level) {
            ("zstd", None) => Some(DEFAULT_ZSTD_LEVEL),
            (_, None) => None,
            ("zstd" | "gzip" | "lzo", Some(level)) => Some(level),
            (other, Some(_)) => bail!("--level does not apply to the {other} compressor"),
        };
        if let Some(level) = level {
            args.extend(["-Xcompression-level".into(), level.to_string().into()]);
        }
        if let Some(size) = &self.block_size {
            args.extend(["-b".into(), size.into()]);
        }
        // Without progress, mksquashfs still prints its report, which is
        // captured and shown only if it fails. With it, mksquashfs prints
        // as it would alone (in -tar mode 4.6.1 draws no bar, since the
        // total is unknown, but it shows its banner and its report).
        if !self.progress {
            args.push("-no-progress".into());
        }
        args.extend(self.extra.iter().cloned());
        Ok(args)
    }
}

/// Builds `out` from the tar stream `input`. On failure `out` is untouched.
pub fn write_squashfs(
    out: &Path,
    input: &mut dyn Read,
    tool: &Tool,
    options: &SquashOptions,
) -> Result<Built> {
    let arguments = options.arguments()?;
    let run = Run {
        forwarding: ForwardOptions {
            dir_time: options.timestamp,
            describe_root: false,
            max_time: Some(SQUASHFS_MAX_TIME),
        },
        progress: options.progress,
    };
    build_image(out, input, tool, &run, |image| {
        let mut args: Vec<OsString> = vec!["-".into(), image.into()];
        args.extend(arguments);
        args
    })
}

/// The number of inodes in the squashfs image at `path`, from its
/// superblock (`inodes`, a 32-bit field after the magic).
pub fn inode_count(path: &Path) -> Result<u64> {
    builder::read_le::<4>(path, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_apply_only_where_they_mean_something() {
        let mut o = SquashOptions {
            compressor: "zstd".into(),
            level: None,
            block_size: None,
            timestamp: 0,
            progress: false,
            extra: vec![],
        };
        let args = o.arguments().unwrap();
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-Xcompression-level" && w[1] == "3"));
        o.compressor = "xz".into();
        assert!(!o
            .arguments()
            .unwrap()
            .iter()
            .any(|a| a == "-Xcompression-level"));
        o.level = Some(9);
        assert!(o.arguments().is_err());
    }
}
