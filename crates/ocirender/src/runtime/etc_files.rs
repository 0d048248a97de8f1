//! `/etc/passwd` and `/etc/group` of a root filesystem, read as the
//! container will see them: every symlink on the way is resolved inside
//! the root filesystem (`openat2(RESOLVE_IN_ROOT)`: an absolute target or a
//! `..` stops at its top, as under `chroot`), never on the host. umoci
//! 0.4.7 opens `ROOTFS/etc/passwd` as a host path, so an image whose
//! `/etc/passwd` links to `/etc/passwd` resolves its user from the host's.
//!
//! On a kernel without `openat2` (before 5.6), the path is walked one
//! component at a time by [`Root`], which refuses symlinks: such an image
//! gets an error rather than a guess.
//!
//! Each file must be a regular file of at most [`MAX_ETC_FILE`] bytes; one
//! that does not exist (nor its directory) is absent, which `Config.User`
//! resolution allows for numeric ids.

use super::error::Error;
use crate::fs::nofollow::regular_size;
use crate::fs::root::{c_path, existing_type, Root};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// The largest `/etc/passwd` or `/etc/group` read.
pub const MAX_ETC_FILE: u64 = 4 << 20;

/// The two files, `None` where absent.
#[derive(Debug, Default)]
pub(crate) struct EtcFiles {
    pub passwd: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
}

/// Reads both files of the root filesystem at `rootfs`; `force_walk`
/// takes the no-`openat2` path (for tests).
pub(crate) fn read_etc_files(rootfs: &Path, force_walk: bool) -> Result<EtcFiles, Error> {
    let rootfs_error = |source: io::Error| Error::Rootfs {
        path: rootfs.to_owned(),
        source,
    };
    let root = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| rootfs_error(e.into()))?;
    let read = |name: &'static str| {
        read_in_root(root.as_fd(), rootfs, name, force_walk)
            .map_err(|source| Error::EtcFile { path: name, source })
    };
    Ok(EtcFiles {
        passwd: read("/etc/passwd")?,
        group: read("/etc/group")?,
    })
}

/// The file at absolute `path` in the root, if it exists.
fn read_in_root(
    root: BorrowedFd<'_>,
    rootfs: &Path,
    path: &str,
    force_walk: bool,
) -> io::Result<Option<Vec<u8>>> {
    let relative = path.trim_start_matches('/');
    let walk = force_walk || matches!(open_in_root(root, ""), Err(Errno::NOSYS));
    let opened = match walk {
        false => open_in_root(root, relative),
        true => open_by_walk(rootfs, relative),
    };
    let file = match opened {
        Ok(file) => file,
        Err(Errno::LOOP | Errno::NOTDIR) if walk && through_symlink(root, relative) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is reached through a symlink, which this kernel (no openat2) \
                 cannot follow inside the rootfs",
            ))
        }
        // No file, or no directory where /etc should be.
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(errno) => return Err(errno.into()),
    };
    read_bounded(file, MAX_ETC_FILE).map(Some)
}

/// `openat2` with `RESOLVE_IN_ROOT`, non-blocking so that a FIFO planted
/// there cannot hang the open.
fn open_in_root(root: BorrowedFd<'_>, relative: &str) -> Result<File, Errno> {
    rfs::openat2(
        root,
        c_path(relative.as_bytes()),
        read_flags(),
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map(File::from)
}

/// The parent walked by [`Root`] (no symlinks), then the file itself
/// opened without following a symlink.
fn open_by_walk(rootfs: &Path, relative: &str) -> Result<File, Errno> {
    let (parent, name) = crate::tar::path::split_parent(relative.as_bytes());
    let root =
        Root::open(rootfs, true).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    let dir = root.open_dir_for_metadata(parent)?;
    rfs::openat(
        &dir,
        c_path(name),
        read_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map(File::from)
}

fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// True if a component of `relative` is a symlink (looked at in order, so
/// each lookup's parents are real directories).
fn through_symlink(root: BorrowedFd<'_>, relative: &str) -> bool {
    let ends = relative
        .match_indices('/')
        .map(|(at, _)| at)
        .chain([relative.len()]);
    for end in ends {
        match existing_type(root, &relative.as_bytes()[..end]) {
            Ok(Some(FileType::Symlink)) => return true,
            Ok(Some(FileType::Directory)) => continue,
            _ => return false,
        }
    }
    false
}

/// A regular file's bytes, refused past `limit` before any is read.
fn read_bounded(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let size = regular_size(&file)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        )
    };
    if size > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    // It may have grown since its size was read.
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root filesystem and, beside it, a "host" file it must not reach.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            let tree = Tree {
                dir: tempfile::tempdir().unwrap(),
            };
            std::fs::create_dir_all(tree.rootfs().join("etc")).unwrap();
            std::fs::create_dir_all(tree.rootfs().join("usr/lib")).unwrap();
            std::fs::write(tree.dir.path().join("host-passwd"), "host:x:4242:0::/:\n").unwrap();
            tree
        }

        fn rootfs(&self) -> std::path::PathBuf {
            self.dir.path().join("rootfs")
        }

        fn host_file(&self) -> std::path::PathBuf {
            self.dir.path().join("host-passwd")
        }

        fn passwd(&self, force_walk: bool) -> Result<Option<String>, String> {
            read_etc_files(&self.rootfs(), force_walk)
                .map(|files| files.passwd.map(|b| String::from_utf8(b).unwrap()))
                .map_err(|e| format!("{:#}", crate::error::Error::from(e)))
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs_never_on_the_host() {
        let inside = "inside:x:1:1::/:\n";
        // (how /etc/passwd is made, what it reads as)
        type Setup = fn(&Tree);
        let cases: Vec<(&str, Setup, Option<&str>)> = vec![
            (
                "a plain file",
                |t| std::fs::write(t.rootfs().join("etc/passwd"), "inside:x:1:1::/:\n").unwrap(),
                Some(inside),
            ),
            ("absent", |_| {}, None),
            (
                "an absolute link to a host path",
                |t| symlink(t.host_file(), t.rootfs().join("etc/passwd")).unwrap(),
                None,
            ),
            (
                "a relative link climbing out",
                |t| {
                    let up = "../".repeat(t.rootfs().components().count() + 2);
                    symlink(format!("{up}host-passwd"), t.rootfs().join("etc/passwd")).unwrap()
                },
                None,
            ),
            (
                "an absolute link to a file of the rootfs",
                |t| {
                    std::fs::write(t.rootfs().join("usr/lib/passwd"), "inside:x:1:1::/:\n")
                        .unwrap();
                    symlink("/usr/lib/passwd", t.rootfs().join("etc/passwd")).unwrap()
                },
                Some(inside),
            ),
            (
                "a /etc that is a file",
                |t| {
                    std::fs::remove_dir_all(t.rootfs().join("etc")).unwrap();
                    std::fs::write(t.rootfs().join("etc"), "").unwrap()
                },
                None,
            ),
        ];
        for (what, setup, expected) in cases {
            let tree = Tree::new();
            setup(&tree);
            let got = tree.passwd(false).unwrap();
            assert_eq!(got.as_deref(), expected, "/etc/passwd as {what}");
        }
    }

    #[test]
    fn without_openat2_a_symlink_is_refused_and_a_file_read() {
        let tree = Tree::new();
        symlink(tree.host_file(), tree.rootfs().join("etc/passwd")).unwrap();
        let err = tree.passwd(true).unwrap_err();
        assert!(
            err.starts_with(
                "cannot read /etc/passwd of the rootfs: it is reached through a symlink"
            ),
            "{err}"
        );

        let tree = Tree::new();
        std::fs::write(tree.rootfs().join("etc/passwd"), "a:x:1:1::/:\n").unwrap();
        assert_eq!(tree.passwd(true).unwrap().as_deref(), Some("a:x:1:1::/:\n"));
        let tree = Tree::new();
        assert_eq!(tree.passwd(true).unwrap(), None);
    }

    #[test]
    fn what_is_no_regular_file_or_too_large_is_an_error() {
        let tree = Tree::new();
        std::fs::create_dir(tree.rootfs().join("etc/passwd")).unwrap();
        let err = tree.passwd(false).unwrap_err();
        assert_eq!(
            err,
            "cannot read /etc/passwd of the rootfs: not a regular file"
        );

        let tree = Tree::new();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tree.rootfs().join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = tree.passwd(false).unwrap_err();
        assert_eq!(
            err,
            "cannot read /etc/passwd of the rootfs: not a regular file"
        );

        let tree = Tree::new();
        let file = File::create(tree.rootfs().join("etc/group")).unwrap();
        file.set_len(MAX_ETC_FILE + 1).unwrap();
        let err = read_etc_files(&tree.rootfs(), false).unwrap_err();
        let err = format!("{:#}", crate::error::Error::from(err));
        assert_eq!(
            err,
            format!("cannot read /etc/group of the rootfs: larger than {MAX_ETC_FILE} bytes")
        );
        let file = File::create(tree.rootfs().join("etc/group")).unwrap();
        file.set_len(MAX_ETC_FILE).unwrap();
        assert_eq!(
            read_etc_files(&tree.rootfs(), false)
                .unwrap()
                .group
                .unwrap()
                .len() as u64,
            MAX_ETC_FILE
        );
    }

    #[test]
    fn a_missing_rootfs_is_an_error_naming_it() {
        let tree = Tree::new();
        let missing = tree.dir.path().join("nope");
        let err = read_etc_files(&missing, false).unwrap_err();
        assert_eq!(
            format!("{:#}", crate::error::Error::from(err)),
            format!(
                "cannot open the rootfs {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}
