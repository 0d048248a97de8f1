//! The server's end of the session pipe that tells a streaming
//! `oci-fetch` and the `oci-merge` reading its layers that the other is
//! still there: the protocol, and the reader's end, are
//! [`crate::blob::served`]'s.

use super::pipe_dir::Identity;
use super::readers::timespec;
use crate::blob::served::NAME;
use crate::fs::nofollow;
use crate::fs::root::c_path;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The server's end: the session pipe, held open for reading.
pub struct Session {
    read_end: OwnedFd,
    /// A reader has said hello since the server started.
    greeted: bool,
    /// The last look found no writer (after one had come): POLLHUP, which
    /// stays set until a writer comes back.
    hung_up: bool,
}

impl Session {
    /// Makes the session pipe in `dir` and holds it open. It appears
    /// under its name only once held, so a `session` pipe without a reader
    /// always means a server that has exited.
    pub fn create(dir: BorrowedFd<'_>) -> io::Result<Session> {
        let temporary = format!("{NAME}.new");
        let made = super::pipe_dir::make_pipe(dir, &temporary)?;
        let read_end = open_read_end(dir, &temporary)?;
        if Identity::of(&rfs::fstat(&read_end)?) != made {
            return Err(io::Error::other("the session pipe was replaced"));
        }
        nofollow::rename(dir, &temporary, NAME.as_bytes())?;
        Ok(Session {
            read_end,
            greeted: false,
            hung_up: false,
        })
    }

    /// The descriptor to wait on for a reader's hello, while no hangup is
    /// pending (a pending one would end every wait at once).
    pub fn fd_to_wait_on(&self) -> Option<BorrowedFd<'_>> {
        (!self.hung_up).then(|| self.read_end.as_fd())
    }

    /// Looks again (without waiting): takes in hellos, and whether any
    /// writer is left.
    pub fn refresh(&mut self) -> io::Result<()> {
        let mut fds = [PollFd::new(&self.read_end, PollFlags::IN)];
        match poll(&mut fds, Some(&timespec(Duration::ZERO))) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let events = fds[0].revents();
        if events.contains(PollFlags::IN) {
            let mut buf = [0u8; 64];
            while matches!(rustix::io::read(&self.read_end, &mut buf), Ok(1..)) {
                self.greeted = true;
            }
        }
        self.hung_up = events.contains(PollFlags::HUP);
        Ok(())
    }

    /// Whether any reader has started on the list (said hello).
    pub fn greeted(&self) -> bool {
        self.greeted
    }

    /// Whether readers that said hello may still be there: once a writer
    /// has come, the kernel reports a hangup whenever none is left.
    pub fn open(&self) -> bool {
        self.greeted && !self.hung_up
    }
}

fn open_read_end(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(
        dir,
        c_path(name.as_bytes()),
        flags,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::served::{open_served, path_in};
    use std::io::{Read, Write};
    use std::time::Instant;

    fn private_dir() -> (tempfile::TempDir, OwnedFd) {
        let tmp = tempfile::tempdir().unwrap();
        let fd = rfs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        (tmp, fd)
    }

    /// A reader waiting for a layer that no writer will ever open fails as
    /// soon as the server's session is gone; a served layer is read.
    #[test]
    fn a_reader_fails_at_once_when_the_server_goes_and_reads_while_it_lives() {
        let (tmp, dir) = private_dir();
        let session = Session::create(dir.as_fd()).unwrap();
        let server = path_in(tmp.path());
        let layer = tmp.path().join("layer");
        super::super::pipe_dir::make_pipe(dir.as_fd(), "layer").unwrap();
        let writer = {
            let layer = layer.clone();
            std::thread::spawn(move || {
                let mut pipe = std::fs::OpenOptions::new().write(true).open(layer).unwrap();
                pipe.write_all(b"bytes").unwrap();
            })
        };
        let mut read = String::new();
        open_served(&layer, &server)
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        writer.join().unwrap();
        assert_eq!(read, "bytes");

        let waiting = {
            let (layer, server) = (layer.clone(), server.clone());
            std::thread::spawn(move || open_served(&layer, &server).map(drop))
        };
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        drop(session);
        let err = waiting.join().unwrap().unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(
            err.to_string()
                .contains("oci-fetch serving this layer has exited"),
            "{err}"
        );
    }

    /// The server sees a reader's hello, then its end when it closes, and
    /// the next one.
    #[test]
    fn the_server_sees_readers_come_and_go() {
        let (tmp, dir) = private_dir();
        let mut session = Session::create(dir.as_fd()).unwrap();
        session.refresh().unwrap();
        assert!(!session.greeted() && !session.open());
        assert!(session.fd_to_wait_on().is_some());
        for _ in 0..2 {
            let reader = rfs::open(
                path_in(tmp.path()),
                OFlags::WRONLY | OFlags::NONBLOCK,
                Mode::empty(),
            )
            .unwrap();
            rustix::io::write(&reader, b"h").unwrap();
            session.refresh().unwrap();
            assert!(session.greeted() && session.open());
            drop(reader);
            session.refresh().unwrap();
            assert!(session.greeted() && !session.open());
            assert!(session.fd_to_wait_on().is_none(), "the hangup is pending");
        }
    }
}
