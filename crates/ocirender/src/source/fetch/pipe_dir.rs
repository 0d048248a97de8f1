//! The private directory of named pipes a streaming `oci-fetch` serves
//! layers from, and the pipes in it.
//!
//! It lives in `$XDG_RUNTIME_DIR` (a private tmpfs) or else `$TMPDIR` or
//! `/tmp`, which other users share. So nothing about it is taken on trust:
//! * it is made with `mkdir(0700)` under a random name, opened with
//!   `O_NOFOLLOW`, given mode 0700 explicitly (the umask could leave it
//!   open to all, or take the owner's own bits away), and checked through
//!   that descriptor to be a directory this user owns with mode 0700;
//! * every pipe is made, opened and replaced relative to that descriptor;
//!   a pipe is opened with `O_NOFOLLOW` and then checked to be the very
//!   FIFO that was made (device and inode, recorded when it was made), so
//!   a symlink or another file put in its place (only root could, in a
//!   0700 directory) is refused, never written to.
//!
//! The directory is removed when `oci-fetch` ends, or on a signal; only
//! `SIGKILL` (or a crash) leaves it behind. So the server holds an
//! exclusive `flock` on the directory for as long as it lives, and each
//! run first removes the `oci-fetch.*` directories in the same place that
//! are this user's, hold a session pipe ([`crate::blob::served`], made after
//! the lock was taken, so a directory still being set up is never
//! mistaken for an abandoned one) and can be locked: their server is gone,
//! since the kernel drops a lock only with its last holder. Another user's
//! directories are never touched, and nothing in them is followed.

use crate::error::{bail, Context, Result};
use crate::fs::nofollow;
use crate::fs::root::c_path;
use crate::fs::temporaries::{self, Registration};
use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The prefix of the directory's name.
const PREFIX: &str = "oci-fetch.";

/// The private directory, removed when dropped (and on a signal).
pub struct PipeDir {
    path: PathBuf,
    parent: OwnedFd,
    name: String,
    dir: Arc<OwnedFd>,
    _registration: Registration,
}

impl PipeDir {
    /// Creates the directory: in `$XDG_RUNTIME_DIR`, else in `$TMPDIR` or
    /// `/tmp`.
    pub fn create() -> Result<PipeDir> {
        let parent_path = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let parent = rfs::open(
            &parent_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("{}: cannot open", parent_path.display()))?;
        remove_abandoned(parent.as_fd());
        let (name, dir) = make_private_dir(parent.as_fd())
            .with_context(|| format!("{}: cannot create a directory", parent_path.display()))?;
        let path = parent_path.join(&name);
        let registration = temporaries::register(&path);
        let pipes = PipeDir {
            path,
            parent,
            name,
            dir: Arc::new(dir),
            _registration: registration,
        };
        pipes.check_private()?;
        Ok(pipes)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's descriptor, which every pipe is made and opened
    /// relative to.
    pub fn fd(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.dir)
    }

    /// Fails unless the directory is this user's and no one else's.
    fn check_private(&self) -> Result<()> {
        let stat = rfs::fstat(&*self.dir)
            .with_context(|| format!("{}: cannot stat", self.path.display()))?;
        let mode = stat.st_mode & 0o7777;
        let owner = stat.st_uid;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory
            || owner != rustix::process::geteuid().as_raw()
            || mode != 0o700
        {
            bail!(
                "{}: not a private directory (owner uid {owner}, mode {mode:04o}); refusing \
                 to serve layers from it",
                self.path.display()
            );
        }
        Ok(())
    }
}

impl Drop for PipeDir {
    fn drop(&mut self) {
        let _ = crate::fs::root::remove(self.parent.as_fd(), self.name.as_bytes());
    }
}

/// Makes a directory of mode 0700 under a fresh random name in `parent`;
/// its name and descriptor.
fn make_private_dir(parent: BorrowedFd<'_>) -> io::Result<(String, OwnedFd)> {
    loop {
        let name = nofollow::unique_name(PREFIX, "");
        match rfs::mkdirat(parent, c_path(name.as_bytes()), Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
        let dir = nofollow::open_dir(parent, name.as_bytes())?;
        // Held while this process lives: see remove_abandoned.
        rfs::flock(&dir, FlockOperation::NonBlockingLockExclusive)?;
        // mkdir's mode passes through the umask, which may have removed
        // the owner's own bits.
        rfs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
        return Ok((name, dir));
    }
}

/// Removes the directories killed servers of this user left in `parent`
/// (see the module docs). Best effort: what cannot be removed stays.
fn remove_abandoned(parent: BorrowedFd<'_>) {
    let Ok(entries) = rfs::Dir::read_from(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_bytes();
        if !name.starts_with(PREFIX.as_bytes()) {
            continue;
        }
        if let Some(_locked) = abandoned(parent, name) {
            let _ = crate::fs::root::remove(parent, name);
        }
    }
}

/// The directory `name` of `parent`, locked, if its server is gone.
fn abandoned(parent: BorrowedFd<'_>, name: &[u8]) -> Option<OwnedFd> {
    let dir = nofollow::open_dir(parent, name).ok()?;
    let owner = rfs::fstat(&dir).ok()?.st_uid;
    if owner != rustix::process::geteuid().as_raw() {
        return None;
    }
    rfs::flock(&dir, FlockOperation::NonBlockingLockExclusive).ok()?;
    crate::blob::served::exists_in(dir.as_fd()).then_some(dir)
}

/// Which file a pipe is: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of the file `stat` describes.
    pub fn of(stat: &rfs::Stat) -> Identity {
        Identity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// Makes the named pipe `name` in `dir`, for this user only; returns which
/// file it is.
pub fn make_pipe(dir: BorrowedFd<'_>, name: &str) -> io::Result<Identity> {
    rfs::mkfifoat(dir, c_path(name.as_bytes()), Mode::from_raw_mode(0o600))?;
    let stat = rfs::statat(dir, c_path(name.as_bytes()), AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo {
        return Err(not_the_pipe("another file is in its place"));
    }
    if stat.st_mode & 0o777 != 0o600 {
        // The umask took bits away (the owner's own, to open it).
        rfs::chmodat(
            dir,
            c_path(name.as_bytes()),
            Mode::from_raw_mode(0o600),
            AtFlags::empty(),
        )?;
    }
    Ok(Identity::of(&stat))
}

/// Opens the pipe `name` of `dir` for writing (waiting for a reader) if it
/// is still the pipe `made`: a symlink is not followed, and anything else
/// under the name is closed unwritten.
pub fn open_pipe(dir: BorrowedFd<'_>, name: &str, made: Identity) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rfs::openat(dir, c_path(name.as_bytes()), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Err(not_the_pipe("a symlink is in its place")),
        Err(e) => return Err(e.into()),
    };
    let stat = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo || Identity::of(&stat) != made {
        return Err(not_the_pipe("another file is in its place"));
    }
    Ok(File::from(fd))
}

fn not_the_pipe(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not the named pipe oci-fetch made ({why}); refusing to write to it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_fd(dir: &Path) -> OwnedFd {
        rfs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn the_directory_and_its_pipes_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let (name, dir) = make_private_dir(tmp_fd(parent.path()).as_fd()).unwrap();
        make_pipe(dir.as_fd(), "p").unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode();
        let path = parent.path().join(&name);
        assert!(name.starts_with(PREFIX), "{name}");
        assert_eq!(mode(&path) & 0o7777, 0o700);
        assert_eq!(mode(&path.join("p")) & 0o7777, 0o600);
    }

    /// A pipe swapped for a symlink or for another file, even another
    /// FIFO, is refused; the one that was made opens.
    #[test]
    fn only_the_pipe_that_was_made_is_opened() {
        let parent = tempfile::tempdir().unwrap();
        let dir = tmp_fd(parent.path());
        let victim = parent.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        for swap in ["symlink", "hard link", "fifo"] {
            let made = make_pipe(dir.as_fd(), "p").unwrap();
            let path = parent.path().join("p");
            // Held open, the pipe that was made keeps its inode number
            // from being reused by the one swapped in.
            let _made = rfs::openat(&dir, c"p", OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty());
            std::fs::remove_file(&path).unwrap();
            match swap {
                "symlink" => std::os::unix::fs::symlink(&victim, &path).unwrap(),
                "hard link" => std::fs::hard_link(&victim, &path).unwrap(),
                _ => drop(make_pipe(dir.as_fd(), "p").unwrap()),
            }
            // A reader, so that opening a FIFO does not wait.
            let reader = rfs::openat(&dir, c"p", OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty());
            let err = open_pipe(dir.as_fd(), "p", made).unwrap_err();
            assert!(
                err.to_string().contains("not the named pipe"),
                "{swap}: {err}"
            );
            drop(reader);
            std::fs::remove_file(&path).unwrap();
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let made = make_pipe(dir.as_fd(), "p").unwrap();
        let _reader = rfs::openat(&dir, c"p", OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty());
        open_pipe(dir.as_fd(), "p", made).unwrap();
    }
}
