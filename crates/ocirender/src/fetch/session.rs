//! How a streaming `oci-fetch` and the `oci-merge` reading its layers know
//! that the other is still there, whoever and wherever each runs.
//!
//! Beside the layer pipes, the private directory holds one more named
//! pipe, `session`, that `oci-fetch` keeps open for reading as long as it
//! lives. Every line of the layer list names it (`server=PATH`). A reader
//! of the list:
//! * opens it for writing, without blocking, before its first layer: that
//!   fails at once (`ENXIO`) if no process holds the read end, that is if
//!   the `oci-fetch` serving the list has exited, however it died;
//! * writes one byte (hello) and keeps it open until it exits;
//! * opens each layer pipe without blocking (`O_NONBLOCK` open of a FIFO
//!   for reading succeeds at once) and polls it for its first byte
//!   together with the session pipe, which reports `POLLERR` the moment
//!   its reader, `oci-fetch`, is gone. Once data (or the end) arrives the
//!   layer is read normally; a server killed mid-layer then ends it short,
//!   which the declared size and digest catch.
//!
//! On its side, `oci-fetch` polls the read end: the hello says a reader
//! has started on the list, and `POLLHUP` says every reader that wrote one
//! has closed its end, that is has exited. The kernel closes those
//! descriptors whatever ends a process, in any pid namespace and for any
//! user that could open the pipes at all, which is what `/proc` cannot
//! tell (see [`super::lifetime`]).

use super::nofollow;
use super::pipe_dir::Identity;
use super::readers::timespec;
use crate::unpack::root::c_path;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The session pipe's name in the directory of layer pipes.
const NAME: &str = "session";

/// The session pipe of the layers served from `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

/// Whether `dir` holds a session pipe: set up completely by a server.
pub fn exists_in(dir: BorrowedFd<'_>) -> bool {
    crate::unpack::root::existing_type(dir, NAME.as_bytes()) == Ok(Some(FileType::Fifo))
}

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

/// The sessions this process has joined, by path: each is joined once and
/// held until the process exits (the kernel then closes it, which is how
/// the server learns this reader is done).
static JOINED: Mutex<Option<HashMap<PathBuf, Arc<OwnedFd>>>> = Mutex::new(None);

/// Joins the session of the server at `path` (once per process).
fn join(path: &Path) -> io::Result<Arc<OwnedFd>> {
    let mut joined = JOINED.lock().unwrap_or_else(|e| e.into_inner());
    let joined = joined.get_or_insert_with(HashMap::new);
    if let Some(fd) = joined.get(path) {
        return Ok(Arc::clone(fd));
    }
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::open(path, flags, Mode::empty()).map_err(|e| match e {
        Errno::NXIO | Errno::NOENT => server_gone(path),
        Errno::ACCESS => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: permission denied: the pipes of oci-fetch are private to the user \
                 running it",
                path.display()
            ),
        ),
        e => io::Error::from(e),
    })?;
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::Fifo {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a named pipe", path.display()),
        ));
    }
    match rustix::io::write(&fd, b"h") {
        Ok(_) | Err(Errno::AGAIN) => {}
        Err(Errno::PIPE) => return Err(server_gone(path)),
        Err(e) => return Err(e.into()),
    }
    let fd = Arc::new(fd);
    joined.insert(path.to_path_buf(), Arc::clone(&fd));
    Ok(fd)
}

/// Opens the layer pipe `path` served by the `oci-fetch` whose session
/// pipe is `server`, waiting for the layer's first byte (or its end) as
/// long as that server lives, and no longer.
pub fn open_served(path: &Path, server: &Path) -> io::Result<File> {
    let session = join(server)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rfs::open(path, flags, Mode::empty())?);
    if FileType::from_raw_mode(rfs::fstat(&file)?.st_mode) == FileType::Fifo {
        wait_for_writer(&file, &session, server)?;
    }
    let flags = rfs::fcntl_getfl(&file)?;
    rfs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

/// Waits until the pipe `layer` has data or has been closed by its
/// writer, failing if the server's `session` loses its reader first.
fn wait_for_writer(layer: &File, session: &OwnedFd, server: &Path) -> io::Result<()> {
    loop {
        let mut fds = [
            PollFd::new(layer, PollFlags::IN),
            PollFd::new(session, PollFlags::empty()),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if !fds[0].revents().is_empty() {
            return Ok(());
        }
        if fds[1].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
            return Err(server_gone(server));
        }
    }
}

fn server_gone(server: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!(
            "the oci-fetch serving this layer has exited ({} has no reader)",
            server.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
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
