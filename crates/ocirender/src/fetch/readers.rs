//! Who reads `oci-fetch`'s output, and when they are gone.
//!
//! In streaming mode `oci-fetch` must outlive its reader: `oci-merge`
//! opens the layer pipes only after it has read the whole list, opens
//! them one after another, and opens some a second time at the very end
//! (promoted hard links). But the list ends only when `oci-fetch` closes
//! its stdout, and after that a pipe tells the writer nothing more. So
//! before closing, `oci-fetch` notes the pipe's inode, finds the processes
//! holding its read end in `/proc` (a pipeline's next command, and any
//! subshell around it), and waits on a pidfd for each until every one has
//! exited. Whatever else the reader does (finish, fail, be killed), that is
//! the moment no layer can be asked for again.

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::FileType;
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How long to look for a reader that has not started yet: the shell
/// forks a pipeline's commands one after another.
const FIND_READERS_FOR: Duration = Duration::from_secs(1);

/// The pipe on our stdout, identified by its inode.
#[derive(Debug, Clone, Copy)]
pub struct OutputPipe {
    inode: u64,
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

    /// Waits until no other process holds the pipe's read end, looking
    /// again after each wave has exited (a reader may have forked).
    /// `stop` is checked every `tick`; when it returns true, waiting ends.
    pub fn wait_for_readers(&self, tick: Duration, stop: &mut dyn FnMut() -> bool) {
        let mut readers = self.find_readers_patiently(stop);
        while !readers.is_empty() {
            if wait_all(&mut readers, tick, stop) {
                return;
            }
            readers = self.pidfds(&self.readers());
        }
    }

    /// The readers, waiting a moment for one to appear.
    fn find_readers_patiently(&self, stop: &mut dyn FnMut() -> bool) -> Vec<OwnedFd> {
        let start = Instant::now();
        loop {
            let readers = self.pidfds(&self.readers());
            if !readers.is_empty() || start.elapsed() > FIND_READERS_FOR || stop() {
                return readers;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pidfds(&self, pids: &[Pid]) -> Vec<OwnedFd> {
        // A process that exited between the scan and here is simply done.
        pids.iter()
            .filter_map(|&pid| pidfd_open(pid, PidfdFlags::empty()).ok())
            .collect()
    }

    /// Processes other than this one with the pipe open for reading.
    pub fn readers(&self) -> Vec<Pid> {
        let me = std::process::id();
        let link = format!("pipe:[{}]", self.inode);
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && holds_read_end(pid, &link))
            .filter_map(|pid| Pid::from_raw(pid as i32))
            .collect()
    }
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

/// Waits until every pidfd reports its process gone; true if `stop` asked
/// to end first.
fn wait_all(pidfds: &mut Vec<OwnedFd>, tick: Duration, stop: &mut dyn FnMut() -> bool) -> bool {
    let timeout = rustix::event::Timespec {
        tv_sec: tick.as_secs() as i64,
        tv_nsec: i64::from(tick.subsec_nanos()),
    };
    while !pidfds.is_empty() {
        if stop() {
            return true;
        }
        let mut fds: Vec<PollFd<'_>> = pidfds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        if poll(&mut fds, Some(&timeout)).is_err() {
            continue; // EINTR: look again
        }
        let gone: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        let mut gone = gone.into_iter();
        pidfds.retain(|_| !gone.next().unwrap_or(false));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A child reading a pipe we write is found, and waited for.
    #[test]
    fn finds_and_waits_for_the_reader_of_a_pipe() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let inode = rustix::fs::fstat(&write).unwrap().st_ino;
        let mut child = Command::new("sleep")
            .arg("0.3")
            .stdin(Stdio::from(read))
            .spawn()
            .unwrap();
        let pipe = OutputPipe { inode };
        let readers = pipe.readers();
        assert_eq!(readers.len(), 1, "{readers:?}");
        assert_eq!(readers[0].as_raw_nonzero().get() as u32, child.id());
        let start = Instant::now();
        pipe.wait_for_readers(Duration::from_millis(50), &mut || false);
        assert!(start.elapsed() >= Duration::from_millis(200));
        // The child is a zombie until reaped, but no longer holds the pipe.
        assert!(pipe.readers().is_empty());
        child.wait().unwrap();
        drop(write);
    }
}
