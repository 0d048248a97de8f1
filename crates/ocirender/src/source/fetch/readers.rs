//! Who reads `oci-fetch`'s output, and when they are gone, as far as
//! `/proc` tells.
//!
//! The processes holding the read end of the pipe on stdout (a pipeline's
//! next command, and any subshell or wrapper around it) are found in
//! `/proc` and watched through pidfds until each has exited; a reader that
//! forks is found again after each wave. `/proc` shows only what this user
//! may see in this pid namespace: a reader run by another user (root, for
//! a user's `oci-fetch`), in a pid namespace this process does not see, or
//! behind a named FIFO is invisible here, and the session pipe
//! ([`crate::blob::served`]) speaks for it. What is seen is also checked: a
//! reader of another (non-root) user could not open this user's private
//! pipes, so serving it is refused up front.

use crate::error::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::FileType;
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// How often to look whether the list has been read.
const LIST_READ_TICK: Duration = Duration::from_millis(10);

/// The pipe on our stdout, identified by its inode.
#[derive(Debug, Clone, Copy)]
pub struct OutputPipe {
    inode: u64,
}

/// A process holding the read end of our stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// Its pid (in this namespace).
    pub pid: Pid,
    /// Its effective user.
    pub uid: u32,
}

impl OutputPipe {
    /// The pipe stdout is, or an error saying why streaming needs one.
    pub fn of_stdout() -> Result<OutputPipe> {
        let stat = rustix::fs::fstat(std::io::stdout()).context("cannot stat stdout")?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo {
            bail!(
                "stdout is not a pipe: streaming serves layers to the command reading \
                 the list as it runs (oci-fetch REF | oci-merge); to keep the layers \
                 and print their paths, use --store DIR"
            );
        }
        Ok(OutputPipe { inode: stat.st_ino })
    }

    /// Waits until everything written to stdout has been read (true), or
    /// until no process holds its read end any more (false): stdout's
    /// write end reports `POLLERR` then, whoever the readers were.
    pub fn wait_until_read(&self) -> Result<bool> {
        let stdout = std::io::stdout();
        let tick = timespec(LIST_READ_TICK);
        loop {
            let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
            let _ = poll(&mut fds, Some(&tick));
            if fds[0].revents().contains(PollFlags::ERR) {
                return Ok(false);
            }
            let unread = rustix::io::ioctl_fionread(&stdout).context("cannot watch stdout")?;
            if unread == 0 {
                return Ok(true);
            }
        }
    }

    /// The processes other than this one with the pipe open for reading,
    /// as far as `/proc` shows them.
    pub fn readers(&self) -> Vec<Reader> {
        if !proc_is_this_pid_namespace() {
            return Vec::new();
        }
        let me = std::process::id();
        let link = format!("pipe:[{}]", self.inode);
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && holds_read_end(pid, &link))
            .filter_map(|pid| {
                let uid = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
                Some(Reader {
                    pid: Pid::from_raw(pid as i32)?,
                    uid,
                })
            })
            .collect()
    }
}

/// Whether `/proc` belongs to this process's pid namespace: its pids
/// then mean what `pidfd_open` takes. In a new pid namespace with the old
/// `/proc` (unshare --pid without --mount-proc), they do not.
fn proc_is_this_pid_namespace() -> bool {
    std::fs::read_link("/proc/self")
        .is_ok_and(|pid| pid.as_os_str() == std::process::id().to_string().as_str())
}

/// Whether process `pid` has a descriptor to `link` open read-only.
/// Processes of other users are unreadable and skipped.
fn holds_read_end(pid: u32, link: &str) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == link)
            && opened_read_only(pid, &fd.file_name().to_string_lossy())
    })
}

/// A pipe's two ends look alike in `/proc/PID/fd`; the access mode in
/// `fdinfo` tells them apart (a shell may hold a write end too).
fn opened_read_only(pid: u32, fd: &str) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 == 0)
}

/// The visible readers of the output, watched until they are gone.
pub struct Watched {
    output: OutputPipe,
    readers: Vec<(Reader, OwnedFd)>,
    /// When the last reader that was seen turned out gone.
    gone_since: Option<Instant>,
}

impl Watched {
    /// Finds the readers of `output` now, refusing any of another user.
    pub fn find(output: OutputPipe) -> Result<Watched> {
        let mut watched = Watched {
            output,
            readers: Vec::new(),
            gone_since: None,
        };
        watched.rescan()?;
        Ok(watched)
    }

    /// Drops the readers that have exited; once a whole wave has, looks
    /// again (a reader may have forked).
    pub fn refresh(&mut self) -> Result<()> {
        if self.readers.is_empty() {
            return Ok(());
        }
        let mut fds: Vec<PollFd<'_>> = self
            .readers
            .iter()
            .map(|(_, fd)| PollFd::new(fd, PollFlags::IN))
            .collect();
        let _ = poll(&mut fds, Some(&timespec(Duration::ZERO)));
        let exited: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        let mut exited = exited.into_iter();
        self.readers.retain(|_| !exited.next().unwrap_or(false));
        if self.readers.is_empty() {
            self.rescan()?;
            if self.readers.is_empty() {
                self.gone_since = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Whether no visible reader is left.
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// How long ago the readers that were seen were all gone; `None`
    /// while some are left, or if none was ever seen.
    pub fn gone_for(&self) -> Option<Duration> {
        self.gone_since.map(|since| since.elapsed())
    }

    /// The pidfds to wait on (readable once the process exits).
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.readers.iter().map(|(_, fd)| fd.as_fd())
    }

    fn rescan(&mut self) -> Result<()> {
        let me = rustix::process::geteuid().as_raw();
        for reader in self.output.readers() {
            if reader.uid != me && reader.uid != 0 {
                bail!(
                    "the reader of the layer list (pid {}) runs as uid {}, which cannot open \
                     the private pipes of uid {me}: run both as the same user, or use --store DIR",
                    reader.pid.as_raw_nonzero(),
                    reader.uid
                );
            }
            // A process that exited between the scan and here is simply done.
            if let Ok(fd) = pidfd_open(reader.pid, PidfdFlags::empty()) {
                self.readers.push((reader, fd));
            }
        }
        Ok(())
    }
}

/// A duration as poll takes it.
pub fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: duration.as_secs() as i64,
        tv_nsec: i64::from(duration.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A child reading a pipe we write is found, with its user, and
    /// watched until it exits.
    #[test]
    fn finds_and_watches_the_reader_of_a_pipe() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let inode = rustix::fs::fstat(&write).unwrap().st_ino;
        let mut child = Command::new("sleep")
            .arg("0.3")
            .stdin(Stdio::from(read))
            .spawn()
            .unwrap();
        let output = OutputPipe { inode };
        let readers = output.readers();
        assert_eq!(readers.len(), 1, "{readers:?}");
        assert_eq!(readers[0].pid.as_raw_nonzero().get() as u32, child.id());
        assert_eq!(readers[0].uid, rustix::process::geteuid().as_raw());
        let start = Instant::now();
        let mut watched = Watched::find(output).unwrap();
        assert!(!watched.is_empty() && watched.gone_for().is_none());
        while !watched.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
            watched.refresh().unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(watched.gone_for().is_some());
        // The child is a zombie until reaped, but no longer holds the pipe.
        assert!(output.readers().is_empty());
        child.wait().unwrap();
        drop(write);
    }
}
