//! Unpacking a tar stream into a new directory, safely (`tar2dir`).
//!
//! * Every path resolves inside the destination, enforced by the kernel
//!   (see [`root`]); entries are created relative to their parent's
//!   descriptor and never through an existing symlink: whatever is in the
//!   way is removed first.
//! * Per entry: data, owner, mode (after the owner, since chown clears
//!   setuid bits), xattrs (after the owner, which clears file
//!   capabilities), times. Directories get their metadata last, deepest
//!   first, so a read-only directory does not block its own contents.
//! * The destination must be new or empty. The tree is built in a hidden
//!   sibling and renamed into place only when the whole stream, end marker
//!   included, has been applied; on any failure it is removed.
//! * Without root, what only root may do (foreign ownership, device nodes,
//!   `security.*`/`trusted.*` xattrs) is skipped and counted.

mod input;
pub mod root;
pub mod xattrs;

use crate::sink::staged::Staged;
use crate::tar::entry::{entry_label, read_member, EntryMeta, Kind, Member};
use crate::tar::path::display;
use anyhow::{anyhow, bail, Context, Result};
use input::SharedInput;
use root::{c_path, existing_type, remove, Root};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

const COPY_BUFFER: usize = 256 << 10;

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Fail instead of skipping what an unprivileged user cannot do.
    pub strict: bool,
    /// Use the component-walk resolver even where `openat2` exists.
    pub force_walk: bool,
}

/// What an unpack did.
#[derive(Debug, Clone, Default)]
pub struct UnpackStats {
    /// Entries applied.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Ownership changes skipped (not root).
    pub skipped_ownership: u64,
    /// Device nodes skipped (not root).
    pub skipped_devices: u64,
    /// Extended attributes that could not be set.
    pub skipped_xattrs: u64,
}

impl UnpackStats {
    /// A one-line summary of what was skipped, if anything was.
    pub fn skipped_summary(&self) -> Option<String> {
        let parts: Vec<String> = [
            (self.skipped_ownership, "ownership changes"),
            (self.skipped_devices, "device nodes"),
            (self.skipped_xattrs, "extended attributes"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        (!parts.is_empty()).then(|| format!("skipped {} (not permitted here)", parts.join(", ")))
    }
}

/// Unpacks the tar stream `input` into `dest`, which must not exist or be
/// an empty directory. Nothing is left at `dest` unless everything worked.
pub fn unpack_to_new_dir(dest: &Path, input: File, options: &UnpackOptions) -> Result<UnpackStats> {
    check_destination(dest)?;
    let staged = Staged::dir(dest, "tar2dir")?;
    let stats = unpack_into(staged.path(), input, options)?;
    staged.commit()?;
    Ok(stats)
}

fn check_destination(dest: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!(e).context(format!("{}: cannot inspect", dest.display()))),
        Ok(meta) if !meta.is_dir() => bail!(
            "{}: exists and is not a directory; refusing to replace it",
            dest.display()
        ),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dest)
                .with_context(|| format!("{}: cannot read", dest.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{}: directory is not empty; refusing to unpack over it",
                    dest.display()
                );
            }
            Ok(())
        }
    }
}

/// Unpacks into an existing, empty directory (no atomic rename).
pub fn unpack_into(dir: &Path, input: File, options: &UnpackOptions) -> Result<UnpackStats> {
    let root = Root::open(dir, options.force_walk)
        .with_context(|| format!("{}: cannot open", dir.display()))?;
    creation_umask(); // Read before any file is created.
    let mut unpacker = Unpacker {
        root,
        privileged: rustix::process::geteuid().is_root(),
        directories: Vec::new(),
        stats: UnpackStats::default(),
        buffer: vec![0; COPY_BUFFER],
        input: None,
    };
    let input = SharedInput::new(input);
    unpacker.input = Some(input.clone());
    let mut archive = tar::Archive::new(input.clone());
    for (count, entry) in archive
        .entries_with_seek()
        .context("cannot read the tar stream")?
        .enumerate()
    {
        let mut entry =
            entry.with_context(|| format!("invalid tar stream after {count} entries"))?;
        if let Member::Entry {
            path,
            meta,
            storage,
        } = read_member(&mut entry)?
        {
            let direct = storage.is_contiguous();
            unpacker
                .apply(&path, &meta, &mut storage.contents(&mut entry), direct)
                .with_context(|| entry_label(&path))?;
        }
    }
    // The tar reader stops at the first zero block, or at the end of the
    // input; the end marker is two zero blocks.
    if input.hit_eof()
        || !input
            .zero_block_follows()
            .context("cannot read the input")?
    {
        bail!("the tar stream ends without its end-of-archive marker: the input is truncated or its producer failed");
    }
    input.drain().context("cannot read the rest of the input")?;
    unpacker.finish_directories()?;
    unpacker.finish_root(dir)?;
    if options.strict {
        if let Some(summary) = unpacker.stats.skipped_summary() {
            bail!("{summary}; --strict forbids that");
        }
    }
    Ok(unpacker.stats)
}

/// Where to apply metadata: an open file, or a name in a directory (for
/// symlinks and nodes that cannot be opened for writing).
#[derive(Clone, Copy)]
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At {
        dir: BorrowedFd<'a>,
        name: &'a [u8],
        symlink: bool,
    },
}

/// A directory entry whose metadata is applied at the end.
struct DirectoryEntry {
    path: Vec<u8>,
    meta: EntryMeta,
    /// (device, inode) of the directory the entry made or kept.
    id: (u64, u64),
}

struct Unpacker {
    root: Root,
    privileged: bool,
    directories: Vec<DirectoryEntry>,
    stats: UnpackStats,
    buffer: Vec<u8>,
    /// The input, for copying large files without the tar reader.
    input: Option<SharedInput>,
}

impl Unpacker {
    /// Makes the entry `raw`. `direct`: its data may be copied straight
    /// from the input (false for sparse members, whose stored bytes are not
    /// the file's contents).
    fn apply(
        &mut self,
        raw: &[u8],
        meta: &EntryMeta,
        data: &mut dyn Read,
        direct: bool,
    ) -> Result<()> {
        let path = crate::tar::path::normalize(raw)?;
        if path.is_empty() {
            return Ok(()); // The root's own entry: the destination is ours.
        }
        let (parent, name) = crate::tar::path::split_parent(&path);
        self.stats.entries += 1;
        let removed_dir = match meta.kind {
            Kind::Directory => self.make_dir(parent, name, &path, meta)?,
            Kind::Regular => self.make_file(parent, name, meta, data, direct)?,
            Kind::Symlink => self.make_symlink(parent, name, meta)?,
            Kind::HardLink => self.make_hard_link(parent, name, meta)?,
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                self.make_node(parent, name, meta)?
            }
        };
        if removed_dir {
            self.root.invalidate();
        }
        Ok(())
    }

    fn make_dir(
        &mut self,
        parent: &[u8],
        name: &[u8],
        path: &[u8],
        meta: &EntryMeta,
    ) -> Result<bool> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        let removed = match existing_type(dir, name).map_err(io_err)? {
            Some(FileType::Directory) => false,
            existing => {
                let removed = existing.is_some();
                if removed {
                    remove(dir, name)
                        .map_err(io_err)
                        .context("cannot remove what is in the way")?;
                }
                rfs::mkdirat(dir, c_path(name), Mode::from_raw_mode(0o700)).map_err(io_err)?;
                removed
            }
        };
        let id = root::identity(dir, name).map_err(io_err)?;
        self.directories.push(DirectoryEntry {
            path: path.to_vec(),
            meta: meta.clone(),
            id,
        });
        Ok(removed)
    }

    fn make_file(
        &mut self,
        parent: &[u8],
        name: &[u8],
        meta: &EntryMeta,
        data: &mut dyn Read,
        direct: bool,
    ) -> Result<bool> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let (fd, removed) = match rfs::openat(dir, c_path(name), flags, mode) {
            Ok(fd) => (fd, false),
            Err(Errno::EXIST) => {
                let was_dir =
                    existing_type(dir, name).map_err(io_err)? == Some(FileType::Directory);
                remove(dir, name)
                    .map_err(io_err)
                    .context("cannot remove what is in the way")?;
                (
                    rfs::openat(dir, c_path(name), flags, mode).map_err(io_err)?,
                    was_dir,
                )
            }
            Err(e) => return Err(io_err(e)),
        };
        let mut file = File::from(fd);
        match &self.input {
            Some(shared) if direct && meta.size >= input::DIRECT_COPY_MIN => shared
                .copy_direct(&mut file, meta.size)
                .context("cannot copy entry data")?,
            _ => copy_exact(data, &mut file, meta.size, &mut self.buffer)?,
        }
        self.stats.bytes += meta.size;
        let (privileged, stats) = (self.privileged, &mut self.stats);
        set_metadata(Target::Fd(file.as_fd()), meta, privileged, stats, true)?;
        Ok(removed)
    }

    fn make_symlink(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<bool> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        let removed = clear_slot(dir, name)?;
        rfs::symlinkat(c_path(&meta.link_target), dir, c_path(name)).map_err(io_err)?;
        let target = Target::At {
            dir,
            name,
            symlink: true,
        };
        set_metadata(target, meta, self.privileged, &mut self.stats, true)?;
        Ok(removed)
    }

    fn make_hard_link(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<bool> {
        let target =
            crate::tar::path::normalize(&meta.link_target).context("bad hard link target")?;
        let (target_parent, target_name) = crate::tar::path::split_parent(&target);
        if target.is_empty() || target_parent == parent && target_name == name {
            bail!("hard link to itself or to the root");
        }
        let target_dir = self
            .root
            .dir(target_parent)
            .map_err(io_err)?
            .try_clone_to_owned()?;
        if existing_type(target_dir.as_fd(), target_name)
            .map_err(io_err)?
            .is_none()
        {
            bail!("hard link target {:?} does not exist", display(&target));
        }
        let dir = self.root.dir(parent).map_err(io_err)?;
        let removed = clear_slot(dir, name)?;
        rfs::linkat(
            &target_dir,
            c_path(target_name),
            dir,
            c_path(name),
            AtFlags::empty(),
        )
        .map_err(io_err)
        .with_context(|| format!("cannot link to {:?}", display(&target)))?;
        Ok(removed)
    }

    fn make_node(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<bool> {
        let file_type = match meta.kind {
            Kind::CharDevice => FileType::CharacterDevice,
            Kind::BlockDevice => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let is_device = file_type != FileType::Fifo;
        if is_device && !self.privileged {
            self.stats.skipped_devices += 1;
            return Ok(false);
        }
        let dir = self.root.dir(parent).map_err(io_err)?;
        let removed = clear_slot(dir, name)?;
        let dev = rfs::makedev(meta.device.0, meta.device.1);
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        rfs::mknodat(
            dir,
            c_path(name),
            file_type,
            mode,
            if is_device { dev } else { 0 },
        )
        .map_err(io_err)?;
        let target = Target::At {
            dir,
            name,
            symlink: false,
        };
        set_metadata(target, meta, self.privileged, &mut self.stats, true)?;
        Ok(removed)
    }

    /// Directory metadata, deepest first, once everything is in place. The
    /// last entry for a path wins, as in any tar extraction.
    fn finish_directories(&mut self) -> Result<()> {
        let mut directories = std::mem::take(&mut self.directories);
        directories.reverse();
        let mut seen = std::collections::HashSet::new();
        directories.retain(|d| seen.insert(d.path.clone()));
        directories
            .sort_by_key(|d| std::cmp::Reverse(d.path.iter().filter(|&&b| b == b'/').count()));
        for DirectoryEntry { path, meta, id } in &directories {
            let fd = match self.root.open_dir_for_metadata(path) {
                Ok(fd) => fd,
                // Replaced by a later non-directory entry: nothing to do.
                Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => continue,
                Err(e) => {
                    return Err(io_err(e)).with_context(|| format!("directory {:?}", display(path)))
                }
            };
            // A later entry replaced an ancestor (say, by a symlink to
            // another directory): this path no longer names the directory
            // the entry described, which is gone.
            let stat = rfs::fstat(&fd).map_err(io_err)?;
            if (stat.st_dev, stat.st_ino) != *id {
                continue;
            }
            set_metadata(
                Target::Fd(fd.as_fd()),
                meta,
                self.privileged,
                &mut self.stats,
                false,
            )
            .with_context(|| format!("directory {:?}", display(path)))?;
        }
        Ok(())
    }

    /// The destination itself: 0755, and root-owned when we are root.
    fn finish_root(&mut self, dir: &Path) -> Result<()> {
        let fd = rfs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        if self.privileged {
            rfs::fchown(
                &fd,
                Some(rustix::fs::Uid::ROOT),
                Some(rustix::fs::Gid::ROOT),
            )
            .map_err(io_err)?;
        }
        rfs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(io_err)?;
        Ok(())
    }
}

/// Removes whatever occupies `name`; returns true if it was a directory.
fn clear_slot(dir: BorrowedFd<'_>, name: &[u8]) -> Result<bool> {
    let existing = existing_type(dir, name).map_err(io_err)?;
    if existing.is_some() {
        remove(dir, name)
            .map_err(io_err)
            .context("cannot remove what is in the way")?;
    }
    Ok(existing == Some(FileType::Directory))
}

fn copy_exact(data: &mut dyn Read, out: &mut File, size: u64, buffer: &mut [u8]) -> Result<()> {
    let mut left = size;
    while left > 0 {
        let want = left.min(buffer.len() as u64) as usize;
        let n = crate::tar::read_entry_data(data, &mut buffer[..want], size - left, size)
            .context("cannot read entry data")?;
        out.write_all(&buffer[..n]).context("cannot write")?;
        left -= n as u64;
    }
    Ok(())
}

/// Owner, mode, xattrs, times, in that order. `fresh` means the object was
/// just created by us (owned by our uid/gid, with its mode already set).
fn set_metadata(
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
        let Some(host_name) = xattrs::host_name(name) else {
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
fn creation_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(crate::sink::staged::current_umask)
}

/// Our effective uid and gid, which new files get without a chown.
fn our_ids() -> (u64, u64) {
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
    let mtime = pax_time(meta, b"mtime").unwrap_or(Timespec {
        tv_sec: meta.mtime as i64,
        tv_nsec: 0,
    });
    let atime = pax_time(meta, b"atime").unwrap_or(mtime);
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

/// A PAX time record (`1600000000.123456789`, possibly negative).
fn pax_time(meta: &EntryMeta, key: &[u8]) -> Option<Timespec> {
    let record = meta.pax.iter().find(|r| r.key == key)?;
    let text = std::str::from_utf8(&record.value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(if negative && nanos > 0 {
        Timespec {
            tv_sec: secs - 1,
            tv_nsec: (1_000_000_000 - nanos) as _,
        }
    } else {
        Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        }
    })
}

fn io_err(errno: Errno) -> anyhow::Error {
    anyhow::Error::new(io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::entry::PaxRecord;

    #[test]
    fn pax_times_keep_nanoseconds() {
        let mut meta = EntryMeta::implicit_dir();
        meta.pax.push(PaxRecord {
            key: b"mtime".to_vec(),
            value: b"1600000000.5".to_vec(),
        });
        meta.pax.push(PaxRecord {
            key: b"atime".to_vec(),
            value: b"-1.25".to_vec(),
        });
        let m = pax_time(&meta, b"mtime").unwrap();
        assert_eq!((m.tv_sec, m.tv_nsec), (1_600_000_000, 500_000_000));
        let a = pax_time(&meta, b"atime").unwrap();
        assert_eq!((a.tv_sec, a.tv_nsec), (-2, 750_000_000));
    }
}
