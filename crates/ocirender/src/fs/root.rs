//! A directory that paths cannot escape.
//!
//! Every path is resolved by the kernel relative to the root's file
//! descriptor: with `openat2(RESOLVE_IN_ROOT)` where the kernel has it
//! (Linux 5.6+), which makes `..` and absolute symlinks stop at the root the
//! way `chroot` would; elsewhere by a walk one component at a time with
//! `O_NOFOLLOW`, which refuses symlinks in the middle of a path outright.
//! Entries are then created relative to their parent's descriptor, so no
//! later step re-resolves a path that an earlier entry could have changed.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Directories kept open for reuse.
const DIR_CACHE: usize = 16;

/// How paths are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_IN_ROOT`.
    Openat2,
    /// Component-by-component `openat` with `O_NOFOLLOW`.
    Walk,
}

/// The root of an unpack.
pub struct Root {
    fd: OwnedFd,
    resolver: Resolver,
    /// Recently resolved directories, most recent last: tar streams list a
    /// directory's entries together, and come back to a few parents often.
    cached: Vec<(Vec<u8>, OwnedFd)>,
}

impl Root {
    /// Opens `dir` as a root. `force_walk` selects the fallback resolver
    /// (for tests; it is also chosen when the kernel lacks `openat2`).
    pub fn open(dir: &Path, force_walk: bool) -> std::io::Result<Root> {
        let fd = rfs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let resolver = if force_walk || !openat2_works(&fd) {
            Resolver::Walk
        } else {
            Resolver::Openat2
        };
        Ok(Root {
            fd,
            resolver,
            cached: Vec::new(),
        })
    }

    /// The directory at canonical `path` ("" is the root), creating missing
    /// directories (mode 0755) on the way.
    pub fn dir(&mut self, path: &[u8]) -> Result<BorrowedFd<'_>, Errno> {
        if let Some(i) = self.cached.iter().rposition(|(cached, _)| cached == path) {
            let hit = self.cached.remove(i);
            self.cached.push(hit);
        } else {
            let fd = match self.resolve_dir(path) {
                Err(Errno::NOENT) => self.create_dirs(path)?,
                other => other?,
            };
            if self.cached.len() == DIR_CACHE {
                self.cached.remove(0);
            }
            self.cached.push((path.to_vec(), fd));
        }
        Ok(self.cached.last().expect("just cached").1.as_fd())
    }

    /// Opens an existing directory without following a symlink in its last
    /// component, for setting its metadata (`O_RDONLY`, as `fsetxattr`
    /// needs a real descriptor).
    pub fn open_dir_for_metadata(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match self.resolver {
            Resolver::Openat2 => {
                rfs::openat2(&self.fd, c_path(path), flags, Mode::empty(), in_root())
            }
            Resolver::Walk => {
                let (parent, name) = crate::tar::path::split_parent(path);
                let parent = walk(&self.fd, parent)?;
                rfs::openat(&parent, c_path(name), flags, Mode::empty())
            }
        }
    }

    fn resolve_dir(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        match self.resolver {
            Resolver::Openat2 => rfs::openat2(
                &self.fd,
                c_path(path),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                in_root(),
            ),
            Resolver::Walk => walk(&self.fd, path),
        }
    }

    /// Creates each missing directory of `path`, resolving from the root
    /// again after every step.
    fn create_dirs(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        // Usually only the last component is missing: try the parent first,
        // and go further up only when it is missing too.
        let (parent, name) = crate::tar::path::split_parent(path);
        let parent_fd = match self.resolve_dir(parent) {
            Err(Errno::NOENT) if !parent.is_empty() => self.create_dirs(parent)?,
            other => other?,
        };
        match rfs::mkdirat(&parent_fd, c_path(name), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        // Resolve again from the root: what now exists at `name` may be a
        // symlink, which must be resolved inside the root like any other.
        self.resolve_dir(path)
    }
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

fn openat2_works(fd: &OwnedFd) -> bool {
    !matches!(
        rfs::openat2(
            fd,
            c".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            in_root()
        ),
        Err(Errno::NOSYS)
    )
}

/// Walks `path` from `root` one component at a time, refusing symlinks.
fn walk(root: &OwnedFd, path: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rfs::openat(root, c".", flags, Mode::empty())?;
    for name in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        cur = rfs::openat(&cur, c_path(name), flags, Mode::empty())?;
    }
    Ok(cur)
}

/// Byte paths to C strings; the merge guarantees no NUL bytes, and an empty
/// path means "this directory".
pub fn c_path(path: &[u8]) -> std::ffi::CString {
    if path.is_empty() {
        return c".".to_owned();
    }
    std::ffi::CString::new(path).unwrap_or_else(|_| c"\u{fffd}".to_owned())
}

/// What exists at `name` in `dir`, without following a symlink.
pub fn existing_type(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileType>, Errno> {
    match rfs::statat(dir, c_path(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory, never
/// following symlinks. Directories are made accessible first, so trees
/// with mode 000 directories (rootless unpacks) can be removed.
pub fn remove(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match existing_type(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let _ = rfs::chmodat(
                dir,
                c_path(name),
                Mode::from_raw_mode(0o700),
                AtFlags::empty(),
            );
            let sub = rfs::openat(
                dir,
                c_path(name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut children = Vec::new();
            for entry in rfs::Dir::read_from(&sub)? {
                let entry = entry?;
                let child = entry.file_name().to_bytes();
                if child != b"." && child != b".." {
                    children.push(child.to_vec());
                }
            }
            for child in children {
                remove(sub.as_fd(), &child)?;
            }
            rfs::unlinkat(dir, c_path(name), AtFlags::REMOVEDIR)
        }
        Some(_) => rfs::unlinkat(dir, c_path(name), AtFlags::empty()),
    }
}
