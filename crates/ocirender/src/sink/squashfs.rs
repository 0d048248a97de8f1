//! Building squashfs images with `mksquashfs -tar` (squashfs-tools 4.6+).
//!
//! The tar stream is checked and normalised on its way to mksquashfs (see
//! [`crate::tar::forward`]), the image is written to a temporary file beside
//! the destination and renamed over it only when both the stream and
//! mksquashfs succeeded, so a failed run leaves the destination as it was.
//! Defaults suit container root filesystems: zstd, no fragments (files stay
//! contiguous for fast random access), a root-owned 0755 root directory,
//! and reproducible timestamps.

use crate::sink::staged::Staged;
use crate::tar::forward::{forward_for_mksquashfs, ForwardStats};
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::OsString;
use std::fmt;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The oldest squashfs-tools with `-tar`.
pub const MINIMUM: Version = Version(4, 6, 0);
/// How much of mksquashfs's output is kept for an error report.
const OUTPUT_TAIL: usize = 16 << 10;

/// A squashfs-tools version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Reads the version from `mksquashfs -version` output
    /// (`mksquashfs version 4.6.1 (2023/03/25)`).
    pub fn parse_banner(banner: &str) -> Option<Version> {
        let rest = banner.split("version ").nth(1)?;
        let number = rest
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version(major, minor, patch))
    }
}

/// A usable mksquashfs.
#[derive(Debug, Clone)]
pub struct Mksquashfs {
    /// Its path.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
}

const HOW_TO_GET: &str = "tar2sqfs needs squashfs-tools 4.6 or newer for `mksquashfs -tar` \
     (Debian 13, Ubuntu 24.04 and Fedora 38 ship it; on Debian 12 run scripts/install-deps, \
     which builds 4.6.1 from Debian's source package), or point --mksquashfs at one";

impl Mksquashfs {
    /// Finds mksquashfs (`explicit`, else on PATH) and checks its version.
    pub fn find(explicit: Option<&Path>) -> Result<Mksquashfs> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => find_on_path("mksquashfs")
                .ok_or_else(|| anyhow!("mksquashfs is not on PATH: {HOW_TO_GET}"))?,
        };
        let output = Command::new(&path)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("{}: cannot run: {HOW_TO_GET}", path.display()))?;
        let banner = String::from_utf8_lossy(&output.stdout);
        let version = Version::parse_banner(&banner).ok_or_else(|| {
            anyhow!(
                "{}: cannot tell its version from `-version`: {HOW_TO_GET}",
                path.display()
            )
        })?;
        if version < MINIMUM {
            bail!(
                "{}: mksquashfs {version} is too old: {HOW_TO_GET}",
                path.display()
            );
        }
        Ok(Mksquashfs { path, version })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

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
    /// Let mksquashfs draw its progress bar on our stderr.
    pub progress: bool,
    /// More mksquashfs arguments, passed unchanged after ours.
    pub extra: Vec<OsString>,
}

/// The compression level used when none is given, for zstd: fast to build,
/// and still a good ratio for root filesystems.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

impl SquashOptions {
    /// The reproducible timestamp: `SOURCE_DATE_EPOCH` if set, else 0.
    pub fn timestamp_from_env() -> Result<u64> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) => value
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds")),
            Err(_) => Ok(0),
        }
    }

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
        if !self.progress {
            args.extend(["-quiet".into(), "-no-progress".into()]);
        }
        args.extend(self.extra.iter().cloned());
        Ok(args)
    }
}

/// Builds `out` from the tar stream `input`. On failure `out` is untouched.
pub fn write_squashfs(
    out: &Path,
    input: &mut dyn Read,
    tool: &Mksquashfs,
    options: &SquashOptions,
) -> Result<ForwardStats> {
    let staged = Staged::file(out)?;
    let mut command = Command::new(&tool.path);
    command
        .arg("-")
        .arg(staged.path())
        .args(options.arguments()?);
    // mksquashfs 4.6 would clamp every file time to SOURCE_DATE_EPOCH; the
    // filesystem and root times are given explicitly instead.
    command
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::piped());
    if options.progress {
        command.stdout(std::io::stderr()).stderr(Stdio::inherit());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    only_standard_descriptors();
    let mut child = command
        .spawn()
        .with_context(|| format!("{}: cannot start", tool.path.display()))?;
    let _child_registration = crate::temporaries::register_child(child.id());
    let output = OutputTail::collect(&mut child);
    let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped stdin"));
    let forwarded = forward_for_mksquashfs(input, &mut stdin, options.timestamp);
    let closed = drop_flushed(stdin);
    let stats = match forwarded {
        Ok(stats) => {
            closed.context("cannot finish writing to mksquashfs")?;
            stats
        }
        Err(err) if crate::cli::is_broken_pipe(&err) => {
            // mksquashfs stopped reading: its own report explains why.
            let status = child.wait()?;
            bail!(
                "mksquashfs failed ({status}) while reading the stream{}",
                output.report()
            );
        }
        Err(err) => {
            // The input is at fault; that error wins over whatever
            // mksquashfs says about its stream ending early.
            let _ = child.kill();
            let _ = child.wait();
            return Err(err.context("input"));
        }
    };
    let status = child.wait().context("cannot wait for mksquashfs")?;
    if !status.success() {
        bail!("mksquashfs failed ({status}){}", output.report());
    }
    staged.commit()?;
    Ok(stats)
}

fn drop_flushed(writer: BufWriter<std::process::ChildStdin>) -> std::io::Result<()> {
    writer.into_inner().map(drop).map_err(|e| e.into_error())
}

/// The last bytes mksquashfs printed, gathered on background threads so a
/// chatty child never blocks on a full pipe.
struct OutputTail {
    readers: Vec<std::thread::JoinHandle<Vec<u8>>>,
}

impl OutputTail {
    fn collect(child: &mut Child) -> OutputTail {
        let mut readers = Vec::new();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for mut pipe in pipes.into_iter().flatten() {
            readers.push(std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&chunk[..n]);
                    if all.len() > 2 * OUTPUT_TAIL {
                        all.drain(..all.len() - OUTPUT_TAIL);
                    }
                }
                all
            }));
        }
        OutputTail { readers }
    }

    /// `": <output>"` flattened to one line, or nothing.
    fn report(self) -> String {
        let text: Vec<String> = self
            .readers
            .into_iter()
            .filter_map(|r| r.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect();
        let joined = text.join(" ");
        let words: Vec<&str> = joined.split_whitespace().collect();
        if words.is_empty() {
            String::new()
        } else {
            format!(": mksquashfs said: {}", words.join(" "))
        }
    }
}

/// Marks every descriptor above stderr close-on-exec, so that a child gets
/// stdin, stdout and stderr only. A caller may leave descriptors open
/// without close-on-exec (a shell's `7<FILE`); they must not reach the
/// image builder. Marking closes nothing, and the descriptors this process
/// opens itself are close-on-exec already.
pub(crate) fn only_standard_descriptors() {
    close_fds::CloseFdsBuilder::new().cloexecfrom(3);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_banners() {
        assert_eq!(
            Version::parse_banner("mksquashfs version 4.6.1 (2023/03/25)\ncopyright"),
            Some(Version(4, 6, 1))
        );
        assert_eq!(
            Version::parse_banner("mksquashfs version 4.5.1 (2022/03/17)"),
            Some(Version(4, 5, 1))
        );
        assert_eq!(
            Version::parse_banner("mksquashfs version 4.7 (2025/06/01)"),
            Some(Version(4, 7, 0))
        );
        assert_eq!(Version::parse_banner("nonsense"), None);
        assert!(Version(4, 5, 1) < MINIMUM && Version(4, 6, 1) >= MINIMUM);
    }

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
