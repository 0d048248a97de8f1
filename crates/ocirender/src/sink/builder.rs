//! What the image-builder sinks share: an external program (`mksquashfs`,
//! `mkfs.erofs`) fed the checked tar stream on its stdin.
//!
//! * [`ToolSpec::find`] finds the program and refuses a version too old,
//!   saying what to install;
//! * [`build_image`] runs it on a temporary sibling of the destination
//!   (`Staged`), with only stdin, stdout and stderr open, without
//!   `SOURCE_DATE_EPOCH` (both builders would clamp every file time to it;
//!   the sinks pass the build time explicitly) and with `TMPDIR` beside the
//!   destination (whatever the builder spills goes there, not to a small
//!   `/tmp`); it forwards the stream through [`crate::sink::stream_check`],
//!   captures what the builder prints, and renames the image into place
//!   only when both the stream and the builder succeeded;
//! * when both fail, the input's error wins: a truncated stream makes any
//!   builder fail too, and what it says about that explains nothing;
//! * a signal kills the builder and removes the temporary
//!   (`crate::fs::temporaries`);
//! * on success the builder's output is dropped (it is a report of block
//!   sizes and of owners mapped through this host's passwd, which says
//!   nothing true about the image); on failure its own explanation (its
//!   stderr, else the end of its stdout) is part of the one error line.

use crate::error::{bail, err, Context, Error, ErrorKind, Result};
use crate::fs::staged::Staged;
use crate::sink::image_builder::ImageBuilder;
use crate::sink::stream_check::{forward, ForwardStats};
use crate::text::human_size as human;
use std::fmt;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// How much of a builder's output is kept for an error report, per stream.
const OUTPUT_TAIL: usize = 16 << 10;
/// How many lines of it an error report quotes.
const REPORT_LINES: usize = 6;

/// A program's version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Reads the version number that follows the first `marker` in
    /// `banner` (`"version "` in `mksquashfs version 4.6.1 (2023/03/25)`).
    pub fn parse_after(banner: &str, marker: &str) -> Option<Version> {
        let rest = &banner[banner.find(marker)? + marker.len()..];
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

/// An image builder program, and what it takes to use it.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// Its name, on PATH and in messages (`mksquashfs`).
    pub program: &'static str,
    /// The option that prints its version (`-version`).
    pub version_option: &'static str,
    /// What precedes the number in that output (`"version "`).
    pub version_marker: &'static str,
    /// The oldest usable version.
    pub minimum: Version,
    /// What to install, for every message about a missing or unusable one.
    pub how_to_get: &'static str,
}

/// A usable image builder.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Its name in messages.
    pub program: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
}

impl ToolSpec {
    /// Finds the program (`explicit`, else on PATH) and checks its version.
    pub fn find(&self, explicit: Option<&Path>) -> Result<Tool> {
        let how = self.how_to_get;
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => find_on_path(self.program)
                .ok_or_else(|| err!("{} is not on PATH: {how}", self.program))?,
        };
        let output = Command::new(&path)
            .arg(self.version_option)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("{}: cannot run: {how}", path.display()))?;
        let banner = String::from_utf8_lossy(&output.stdout);
        let version = Version::parse_after(&banner, self.version_marker).ok_or_else(|| {
            err!(
                "{}: cannot tell its version from `{}`: {how}",
                path.display(),
                self.version_option
            )
        })?;
        if version < self.minimum {
            bail!(
                "{}: {} {version} is too old: {how}",
                path.display(),
                self.program
            );
        }
        Ok(Tool {
            program: self.program,
            path,
            version,
        })
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

/// The reproducible build time: `SOURCE_DATE_EPOCH` if set, else 0.
pub fn timestamp_from_env() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds")),
        Err(_) => Ok(0),
    }
}

/// What a successful build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// What was forwarded.
    pub forwarded: ForwardStats,
    /// The size of the image.
    pub image_bytes: u64,
}

impl Built {
    /// The `--stats` line (after the program's name), at most 80 columns
    /// with it: OUT, the image size, inodes (as the image's superblock
    /// counts them), the file data that went in and the compression ratio
    /// (file data over image size). A long OUT is cut to its file name,
    /// then shortened from the left, so the numbers always fit.
    pub fn summary(&self, out: &Path, inodes: u64, room: usize) -> String {
        let data = self.forwarded.data_bytes;
        let ratio = if self.image_bytes == 0 {
            "n/a".to_owned()
        } else {
            format!("{:.2}", data as f64 / self.image_bytes as f64)
        };
        let numbers = format!(
            ": {}, {inodes} inodes, {} of file data, ratio {ratio}",
            human(self.image_bytes),
            human(data),
        );
        let name = fit_name(out, room.saturating_sub(numbers.chars().count()));
        format!("{name}{numbers}")
    }
}

/// `out` as it was given if it fits in `room` characters, else its file
/// name, else the end of that after an ellipsis.
fn fit_name(out: &Path, room: usize) -> String {
    let whole = out.display().to_string();
    if whole.chars().count() <= room {
        return whole;
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(whole);
    let length = name.chars().count();
    if length <= room {
        return name;
    }
    let keep = room.saturating_sub(1);
    let tail: String = name.chars().skip(length - keep).collect();
    format!("\u{2026}{tail}")
}

/// Builds `out` from the tar stream `input` with `tool`, run as
/// `builder` says; `stream_ended` is told what was forwarded once the
/// whole stream has been, while the program still works. On failure `out` is
/// untouched. What the program prints is captured, never shown on
/// success: a progress line of its own would fight the caller's.
pub fn build_image(
    out: &Path,
    input: &mut dyn Read,
    tool: &Tool,
    builder: &dyn ImageBuilder,
    stream_ended: &mut dyn FnMut(&ForwardStats),
) -> Result<Built> {
    let name = tool.program;
    let staged = Staged::file(out)?;
    let beside = staged
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut command = Command::new(&tool.path);
    command
        .args(builder.arguments(staged.path()))
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TMPDIR", &beside)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    only_standard_descriptors();
    let mut child = command
        .spawn()
        .with_context(|| format!("{}: cannot start", tool.path.display()))?;
    let _child_registration = crate::fs::temporaries::register_child(child.id());
    let output = Captured::collect(&mut child, name);
    let child_stdin = child.stdin.take().expect("piped stdin");
    crate::fs::pipe::enlarge_pipe(std::os::fd::AsFd::as_fd(&child_stdin));
    let mut stdin = BufWriter::with_capacity(1 << 20, child_stdin);
    let forwarded = forward(input, &mut stdin, &builder.stream_check());
    let closed = drop_flushed(stdin);
    let forwarded = match forwarded {
        Ok(stats) => {
            closed.with_context(|| format!("cannot finish writing to {name}"))?;
            stats
        }
        Err(err) if crate::fs::pipe::is_broken_pipe(&err) => {
            // The builder stopped reading: its own report explains why.
            let status = child.wait()?;
            return Err(output.failed(status, " while reading the stream"));
        }
        Err(err) => {
            // The input is at fault; that error wins over whatever the
            // builder says about its stream ending early.
            let _ = child.kill();
            let _ = child.wait();
            return Err(err.context("input"));
        }
    };
    stream_ended(&forwarded);
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {name}"))?;
    if !status.success() {
        return Err(output.failed(status, ""));
    }
    drop(output);
    let image_bytes = staged
        .path()
        .metadata()
        .with_context(|| format!("{}: cannot stat", staged.path().display()))?
        .len();
    staged.commit()?;
    Ok(Built {
        forwarded,
        image_bytes,
    })
}

fn drop_flushed(writer: BufWriter<ChildStdin>) -> std::io::Result<()> {
    writer.into_inner().map(drop).map_err(|e| e.into_error())
}

/// What the builder printed, gathered on background threads so a chatty
/// child never blocks on a full pipe; only the last bytes of each stream
/// are kept.
struct Captured {
    program: &'static str,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Captured {
    fn collect(child: &mut Child, program: &'static str) -> Captured {
        Captured {
            program,
            stdout: child.stdout.take().map(tail),
            stderr: child.stderr.take().map(tail),
        }
    }

    /// What the builder said (its stderr, else its stdout) flattened to
    /// one line, empty when it said nothing. A long message (a usage text)
    /// is cut after its first lines, which say what went wrong.
    fn said(self) -> String {
        let lines = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
            let bytes = reader.and_then(|r| r.join().ok()).unwrap_or_default();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|line| !line.is_empty())
                .collect::<Vec<String>>()
        };
        let (stdout, stderr) = (lines(self.stdout), lines(self.stderr));
        let said = if stderr.is_empty() { stdout } else { stderr };
        let mut text = said[..said.len().min(REPORT_LINES)].join(" ");
        if said.len() > REPORT_LINES {
            text += &format!(" [{} more lines]", said.len() - REPORT_LINES);
        }
        text
    }

    /// The error for a builder that exited with `status`: `PROGRAM failed
    /// (STATUS)WHILE: PROGRAM said: ...`.
    fn failed(self, status: std::process::ExitStatus, while_doing: &str) -> Error {
        let program = self.program;
        let said = self.said();
        let report = if said.is_empty() {
            String::new()
        } else {
            format!(": {program} said: {said}")
        };
        let message = format!("{program} failed ({status}){while_doing}{report}");
        let kind = ErrorKind::BuilderFailed {
            program: program.to_owned(),
            said,
        };
        Error::new(kind, message)
    }
}

/// Reads `pipe` to its end on a new thread, keeping the last bytes.
fn tail(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
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
    })
}

/// Marks every descriptor above stderr close-on-exec, so that a child gets
/// stdin, stdout and stderr only. A caller may leave descriptors open
/// without close-on-exec (a shell's `7<FILE`); they must not reach the
/// image builder. Marking closes nothing, and the descriptors this process
/// opens itself are close-on-exec already.
pub(crate) fn only_standard_descriptors() {
    close_fds::CloseFdsBuilder::new().cloexecfrom(3);
}

/// Reads a little-endian number of `N` bytes at `offset` of the image at
/// `path` (a superblock field).
pub fn read_le<const N: usize>(path: &Path, offset: u64) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut bytes = [0u8; N];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .with_context(|| format!("{}: cannot read its superblock", path.display()))?;
    Ok(bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_banners() {
        let squashfs = |b: &str| Version::parse_after(b, "version ");
        assert_eq!(
            squashfs("mksquashfs version 4.6.1 (2023/03/25)\ncopyright"),
            Some(Version(4, 6, 1))
        );
        assert_eq!(
            squashfs("mksquashfs version 4.7 (2025/06/01)"),
            Some(Version(4, 7, 0))
        );
        assert_eq!(squashfs("nonsense"), None);
        let erofs = |b: &str| Version::parse_after(b, "(erofs-utils) ");
        assert_eq!(
            erofs("mkfs.erofs (erofs-utils) 1.9.4\navailable compressors: lz4"),
            Some(Version(1, 9, 4))
        );
        assert_eq!(
            erofs("mkfs.erofs (erofs-utils) 1.8.6-dirty"),
            Some(Version(1, 8, 6))
        );
        assert_eq!(erofs("mkfs.erofs 1.5"), None);
        assert!(Version(1, 8, 10) < Version(1, 9, 0));
    }

    #[test]
    fn summaries_say_size_inodes_and_ratio() {
        let built = Built {
            forwarded: ForwardStats {
                entries: 3,
                bytes_in: 10_240,
                data_bytes: 3 << 20,
            },
            image_bytes: 1 << 20,
        };
        assert_eq!(
            built.summary(Path::new("dir/out.img"), 4, 70),
            "dir/out.img: 1.0 MiB, 4 inodes, 3.0 MiB of file data, ratio 3.00"
        );
        // A long OUT gives way to the numbers: its file name, then its end.
        let deep = format!("{}/out.img", "d".repeat(60));
        assert_eq!(
            built.summary(Path::new(&deep), 4, 70),
            "out.img: 1.0 MiB, 4 inodes, 3.0 MiB of file data, ratio 3.00"
        );
        let long = format!("{}.img", "n".repeat(60));
        let line = built.summary(Path::new(&long), 4, 70);
        assert_eq!(line.chars().count(), 70, "{line}");
        assert!(
            line.starts_with("\u{2026}nnn") && line.ends_with("ratio 3.00"),
            "{line}"
        );
    }

    #[test]
    fn reads_little_endian_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        std::fs::write(&path, [0, 1, 0x34, 0x12, 0, 0, 9]).unwrap();
        assert_eq!(read_le::<4>(&path, 2).unwrap(), 0x1234);
        assert_eq!(read_le::<2>(&path, 1).unwrap(), 0x3401);
        assert!(read_le::<8>(&path, 2).is_err());
    }
}
