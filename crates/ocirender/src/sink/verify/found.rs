//! The output's side: what is at a path of the tree being verified,
//! reached without following a symlink anywhere on the way (a symlink
//! where the stream has a directory is a difference, not a way out of the
//! tree).

use crate::error::{Context, Result};
use crate::fs::nofollow;
use crate::fs::root::c_path;
use crate::sink::times::Time;
use crate::tar::path::split_parent;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// What `lstat` says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The file type.
    pub file_type: FileType,
    /// Permission bits, with setuid, setgid and sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time.
    pub mtime: Time,
    /// Size in bytes.
    pub size: u64,
    /// Device and inode number: the same for two hard links.
    pub inode: (u64, u64),
    /// Hard links to the inode.
    pub links: u64,
    /// A device node's numbers.
    pub device: (u32, u32),
}

/// Extended attributes by name.
pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

/// The tree being verified.
pub struct OutputTree {
    root: OwnedFd,
    /// The last parent directory looked up: a stream lists a directory's
    /// entries together.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// The same tree, to read extended attributes from instead (see
    /// [`super::extract`]).
    xattr_source: Option<Box<OutputTree>>,
}

impl OutputTree {
    /// Opens the directory `dir`.
    pub fn open(dir: &Path) -> Result<OutputTree> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rfs::open(dir, flags, Mode::empty())
            .map_err(errno)
            .with_context(|| format!("{}: cannot open", dir.display()))?;
        Ok(OutputTree {
            root,
            parent: None,
            xattr_source: None,
        })
    }

    /// Reads extended attributes from the tree at `dir` instead.
    pub fn with_xattrs_from(self, dir: &Path) -> Result<OutputTree> {
        Ok(OutputTree {
            xattr_source: Some(Box::new(OutputTree::open(dir)?)),
            ..self
        })
    }

    /// What is at canonical `path` (the root if empty), or `None`.
    pub fn stat(&mut self, path: &[u8]) -> Result<Option<Found>> {
        let found = if path.is_empty() {
            rfs::fstat(&self.root)
        } else {
            let (parent, name) = split_parent(path);
            let Some(dir) = self.parent(parent)? else {
                return Ok(None);
            };
            rfs::statat(dir, c_path(name), AtFlags::SYMLINK_NOFOLLOW)
        };
        match found {
            Ok(stat) => Ok(Some(from_stat(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno(e)),
        }
    }

    /// The target of the symlink at `path`.
    pub fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>> {
        let (parent, name) = split_parent(path);
        let dir = self.existing_parent(parent)?;
        let target = rfs::readlinkat(dir, c_path(name), Vec::new()).map_err(errno)?;
        Ok(target.into_bytes())
    }

    /// Opens the regular file at `path` for reading.
    pub fn open_file(&mut self, path: &[u8]) -> Result<File> {
        let (parent, name) = split_parent(path);
        let dir = self.existing_parent(parent)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rfs::openat(dir, c_path(name), flags, Mode::empty()).map_err(errno)?;
        Ok(File::from(fd))
    }

    /// The extended attributes of what is at `path`, not following a
    /// symlink (through `/proc/self/fd`: no descriptor-based call reads a
    /// symlink's).
    pub fn xattrs(&mut self, path: &[u8]) -> Result<Xattrs> {
        if let Some(source) = &mut self.xattr_source {
            return source.xattrs(path);
        }
        let at = if path.is_empty() {
            format!("/proc/self/fd/{}", self.root.as_raw_fd()).into_bytes()
        } else {
            let (parent, name) = split_parent(path);
            let dir = self.existing_parent(parent)?;
            [
                format!("/proc/self/fd/{}/", dir.as_raw_fd()).as_bytes(),
                name,
            ]
            .concat()
        };
        read_xattrs(&at).map_err(errno)
    }

    /// The names in the directory at `path`, sorted.
    pub fn names(&mut self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let dir = if path.is_empty() {
            self.root.try_clone()?
        } else {
            let (parent, name) = split_parent(path);
            let parent = self.existing_parent(parent)?;
            nofollow::open_dir(parent, name)?
        };
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(&dir).map_err(errno)? {
            let name = entry.map_err(errno)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn existing_parent(&mut self, parent: &[u8]) -> Result<BorrowedFd<'_>> {
        self.parent(parent)?.ok_or_else(|| errno(Errno::NOENT))
    }

    /// The directory at canonical `parent`, or `None` where a component is
    /// missing or not a directory.
    fn parent(&mut self, parent: &[u8]) -> Result<Option<BorrowedFd<'_>>> {
        if parent.is_empty() {
            return Ok(Some(self.root.as_fd()));
        }
        if self
            .parent
            .as_ref()
            .is_none_or(|(cached, _)| cached != parent)
        {
            let Some(fd) = self.walk(parent)? else {
                return Ok(None);
            };
            self.parent = Some((parent.to_vec(), fd));
        }
        Ok(self.parent.as_ref().map(|(_, fd)| fd.as_fd()))
    }

    fn walk(&self, path: &[u8]) -> Result<Option<OwnedFd>> {
        let mut current: Option<OwnedFd> = None;
        for name in path.split(|&b| b == b'/') {
            let dir = current.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            match nofollow::open_dir(dir, name) {
                Ok(fd) => current = Some(fd),
                Err(e) if is_not_there(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(current)
    }
}

/// A lookup's "nothing (or no directory) there".
fn is_not_there(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)
    )
}

fn from_stat(stat: &rfs::Stat) -> Found {
    Found {
        file_type: FileType::from_raw_mode(stat.st_mode),
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid.into(),
        gid: stat.st_gid.into(),
        mtime: Time {
            seconds: stat.st_mtime,
            nanoseconds: stat.st_mtime_nsec as u32,
        },
        size: stat.st_size as u64,
        inode: (stat.st_dev, stat.st_ino),
        links: stat.st_nlink,
        device: (rfs::major(stat.st_rdev), rfs::minor(stat.st_rdev)),
    }
}

/// Linux's largest attribute list, and largest value (XATTR_LIST_MAX,
/// XATTR_SIZE_MAX): buffers of these sizes read any attribute.
const XATTR_MAX: usize = 64 << 10;

/// Every attribute of `path` (a symlink itself, not its target).
fn read_xattrs(path: &[u8]) -> Result<Xattrs, Errno> {
    let path = c_path(path);
    let mut list = vec![0u8; XATTR_MAX];
    let length = rfs::llistxattr(&path, &mut list[..])?;
    let mut value = vec![0u8; XATTR_MAX];
    let mut xattrs = Xattrs::new();
    for name in list[..length].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let length = rfs::lgetxattr(&path, c_path(name), &mut value[..])?;
        xattrs.insert(name.to_vec(), value[..length].to_vec());
    }
    Ok(xattrs)
}

fn errno(errno: Errno) -> crate::error::Error {
    io::Error::from(errno).into()
}
