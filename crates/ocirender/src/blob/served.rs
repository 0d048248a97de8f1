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
//! tell (see `oci-fetch`'s `source::fetch::lifetime`).

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The session pipe's name in the directory of layer pipes.
pub const NAME: &str = "session";

/// The session pipe of the layers served from `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

/// Whether `dir` holds a session pipe: set up completely by a server.
pub fn exists_in(dir: BorrowedFd<'_>) -> bool {
    crate::fs::root::existing_type(dir, NAME.as_bytes()) == Ok(Some(FileType::Fifo))
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
