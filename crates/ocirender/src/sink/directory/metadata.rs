//! Applying an entry's metadata to what the unpacker made: owner, mode,
//! xattrs and times, in that order (a chown clears setuid bits, and the
//! times must come last), skipping what an unprivileged run cannot do.

use super::{io_err, UnpackStats};
use crate::error::{Context, Result};
use crate::fs::root::c_path;
use crate::sink::{times, xattrs};
use crate::tar::entry::EntryMeta;
use crate::tar::path::display;
use rustix::fs::{self as rfs, AtFlags, Mode, Timespec, Timestamps};
use rustix::io::Errno;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Where to apply metadata: an open file, or a name in a directory (for
/// symlinks and nodes that cannot be opened for writing).
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At {
        dir: BorrowedFd<'a>,
        name: &'a [u8],
        symlink: bool,
    },
}

/// Owner, mode, xattrs, times, in that order. `fresh` means the object was
/// just created by us (owned by our uid/gid, with its mode already set).
pub(super) fn set_metadata(
    target: Target<'_>,
    meta: &EntryMeta,
    privileged: bool,
    stats: &mut UnpackStats,
    fresh: bool,
) -> Result<()> {
    let wants_owner = (meta.uid, meta.gid) != our_ids();
    let mut chowned = false;
    if wants_owner || !fresh {
        match set_owner(target, meta.uid, meta.gid) {
            Ok(()) => chowned = true,
            Err(Errno::PERM | Errno::INVAL) if !privileged => stats.skipped_ownership += 1,
            Err(e) => return Err(io_err(e)).context("cannot set owner"),
        }
    }
    let is_symlink = matches!(target, Target::At { symlink: true, .. });
    // A fresh object was created with the entry's permission bits, less
    // the umask; the special bits and whatever the umask took need a chmod.
    let creation_lost_bits = meta.mode & (0o7000 | creation_umask()) != 0;
    if !is_symlink && (chowned || !fresh || creation_lost_bits) {
        set_mode(target, meta.mode & 0o7777)
            .map_err(io_err)
            .context("cannot set mode")?;
    }
    for (name, value) in meta.xattrs() {
        let Some(host_name) = xattrs::stored_name(name, meta.kind) else {
            continue;
        };
        match set_xattr(target, &host_name, value) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::ACCESS)
                if !privileged || !xattrs::needs_privilege(&host_name) =>
            {
                stats.skipped_xattrs += 1
            }
            Err(Errno::OPNOTSUPP) => stats.skipped_xattrs += 1,
            Err(e) => {
                return Err(io_err(e))
                    .with_context(|| format!("cannot set xattr {:?}", display(&host_name)))
            }
        }
    }
    set_times(target, meta)
        .map_err(io_err)
        .context("cannot set times")
}

/// The umask new files are created under, read once: the process's
/// umask is left alone, and modes it masks are restored by a chmod.
pub(super) fn creation_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(crate::fs::staged::current_umask)
}

/// Our effective uid and gid, which new files get without a chown.
pub(super) fn our_ids() -> (u64, u64) {
    static IDS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| {
        (
            u64::from(rustix::process::geteuid().as_raw()),
            u64::from(rustix::process::getegid().as_raw()),
        )
    })
}

fn set_owner(target: Target<'_>, uid: u64, gid: u64) -> Result<(), Errno> {
    let uid = rustix::fs::Uid::from_raw(u32::try_from(uid).map_err(|_| Errno::INVAL)?);
    let gid = rustix::fs::Gid::from_raw(u32::try_from(gid).map_err(|_| Errno::INVAL)?);
    match target {
        Target::Fd(fd) => rfs::fchown(fd, Some(uid), Some(gid)),
        Target::At { dir, name, .. } => rfs::chownat(
            dir,
            c_path(name),
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        ),
    }
}

fn set_mode(target: Target<'_>, mode: u32) -> Result<(), Errno> {
    let mode = Mode::from_raw_mode(mode);
    match target {
        Target::Fd(fd) => rfs::fchmod(fd, mode),
        // Only for nodes we just created inside our private directory.
        Target::At { dir, name, .. } => rfs::chmodat(dir, c_path(name), mode, AtFlags::empty()),
    }
}

fn set_xattr(target: Target<'_>, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    let name = c_path(name);
    match target {
        Target::Fd(fd) => rfs::fsetxattr(fd, &name, value, rfs::XattrFlags::empty()),
        // No descriptor-based call exists for a symlink or a device node:
        // go through its parent directory's descriptor, not following the
        // last component.
        Target::At {
            dir, name: entry, ..
        } => {
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(entry);
            rfs::lsetxattr(c_path(&path), &name, value, rfs::XattrFlags::empty())
        }
    }
}

fn set_times(target: Target<'_>, meta: &EntryMeta) -> Result<(), Errno> {
    let mtime = timespec(times::modification_time(meta));
    let atime = times::access_time(meta).map_or(mtime, timespec);
    let times = Timestamps {
        last_access: atime,
        last_modification: mtime,
    };
    match target {
        Target::Fd(fd) => rfs::futimens(fd, &times),
        Target::At { dir, name, .. } => {
            rfs::utimensat(dir, c_path(name), &times, AtFlags::SYMLINK_NOFOLLOW)
        }
    }
}

fn timespec(time: times::Time) -> Timespec {
    Timespec {
        tv_sec: time.seconds,
        tv_nsec: time.nanoseconds.into(),
    }
}
