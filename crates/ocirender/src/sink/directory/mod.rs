//! Unpacking a tar stream into a new directory, safely (`tar2dir`).
//!
//! * Every entry is admitted to a [`Listing`] first, the rules every sink
//!   applies, so the tree is the one `tar2sqfs` and `tar2erofs` build from
//!   the same stream, or the stream is refused: nothing is ever listed
//!   where something else is, and no path goes through a symlink.
//! * Every path resolves inside the destination, enforced by the kernel
//!   (see [`root`]), as a second line of defence; entries are created
//!   relative to their parent's descriptor, never replacing anything.
//! * Per entry: data, owner, mode (after the owner, since chown clears
//!   setuid bits), xattrs (after the owner, which clears file
//!   capabilities), times. Directories get their metadata last, deepest
//!   first, so a read-only directory does not block its own contents: a
//!   listed one its last entry's, one the stream never lists
//!   `0755 root:root` and [`UnpackOptions::dir_time`], as in the images.
//! * The destination must be new or empty, unless replacing it was asked
//!   for. The tree is built in a hidden sibling and renamed into place
//!   (exchanged with the old tree, which is then removed, when replacing)
//!   only when the whole stream, end marker included, has been applied; on
//!   any failure it is removed.
//! * Without root, what only root may do (foreign ownership, device nodes,
//!   `security.*`/`trusted.*` xattrs) is skipped and counted.

mod input;
mod metadata;

use crate::error::{bail, err, Context, ErrorKind, Result};
use crate::fs::root::{c_path, existing_type, Root};
use crate::fs::staged::Staged;
use crate::sink::listing::{hard_link_target, Listing};
use crate::tar::entry::{entry_label, read_member, EntryMeta, Kind, Member};
use crate::tar::path::display;
use crate::tar::path_tree::Order;
use input::SharedInput;
use metadata::{creation_umask, our_ids, set_metadata, Target};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

const COPY_BUFFER: usize = 256 << 10;

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Fail instead of skipping what an unprivileged user cannot do.
    pub strict: bool,
    /// Use the component-walk resolver even where `openat2` exists.
    pub force_walk: bool,
    /// The mtime of directories the stream does not list (the image
    /// builders' reproducible time: `SOURCE_DATE_EPOCH`, or 0).
    pub dir_time: u64,
    /// Replace an existing, non-empty destination directory (exchanged
    /// with the new tree on success, then removed).
    pub replace: bool,
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
/// an empty directory (or, with [`UnpackOptions::replace`], may be any
/// directory). Nothing changes at `dest` unless everything worked.
pub fn unpack_to_new_dir(dest: &Path, input: File, options: &UnpackOptions) -> Result<UnpackStats> {
    check_destination(dest, options.replace)?;
    let staged = Staged::dir(dest, "tar2dir")?;
    let stats = unpack(staged.path(), dest, input, options)?;
    if options.replace {
        staged.commit_replacing()?;
    } else {
        staged.commit()?;
    }
    Ok(stats)
}

/// Refuses a `dest` that is not a directory, or (unless `replace`) one
/// that is not empty, before any input is read. The error is of kind
/// [`ErrorKind::Io`]`(AlreadyExists)`.
pub fn check_destination(dest: &Path, replace: bool) -> Result<()> {
    let exists = |message: &str| {
        err!(
            kind = ErrorKind::Io(io::ErrorKind::AlreadyExists),
            "{}: {message}",
            dest.display()
        )
    };
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err!(e).context(format!("{}: cannot inspect", dest.display()))),
        Ok(meta) if !meta.is_dir() => Err(exists("exists and is not a directory")),
        Ok(_) if replace => Ok(()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dest)
                .with_context(|| format!("{}: cannot read", dest.display()))?;
            match entries.next() {
                Some(_) => Err(exists(
                    "already exists and is not empty (--force replaces it)",
                )),
                None => Ok(()),
            }
        }
    }
}

/// Unpacks into an existing, empty directory (no atomic rename).
pub fn unpack_into(dir: &Path, input: File, options: &UnpackOptions) -> Result<UnpackStats> {
    unpack(dir, dir, input, options)
}

/// Unpacks into `dir`, which messages call `shown` (the destination the
/// user named, not its temporary stand-in).
fn unpack(dir: &Path, shown: &Path, input: File, options: &UnpackOptions) -> Result<UnpackStats> {
    let root = Root::open(dir, options.force_walk)
        .with_context(|| format!("{}: cannot open", shown.display()))?;
    creation_umask(); // Read before any file is created.
    let mut unpacker = Unpacker {
        root,
        privileged: rustix::process::geteuid().is_root(),
        listing: Listing::new(),
        stats: UnpackStats::default(),
        buffer: vec![0; COPY_BUFFER],
        input: None,
    };
    let input = SharedInput::new(input);
    unpacker.input = Some(input.clone());
    let read = unpacker.apply_entries(&mut tar::Archive::new(input.clone()));
    let read = read.and_then(|count| {
        check_end_marker(&input)?;
        Ok(count)
    });
    match read {
        Err(err) if unpacker.stats.entries == 0 => return Err(input.explain_start(err)),
        Err(err) => return Err(err),
        Ok(_) => {}
    }
    input.drain().context("cannot read the rest of the input")?;
    unpacker.finish_directories(options.dir_time)?;
    unpacker.finish_root(dir)?;
    if options.strict {
        if let Some(summary) = unpacker.stats.skipped_summary() {
            bail!("{summary}; --strict forbids that");
        }
    }
    Ok(unpacker.stats)
}

/// The tar reader stops at the first zero block, or at the end of the
/// input; the end marker is two zero blocks.
fn check_end_marker(input: &SharedInput) -> Result<()> {
    if input.hit_eof()
        || !input
            .zero_block_follows()
            .context("cannot read the input")?
    {
        bail!("the tar stream ends without its end-of-archive marker: the input is truncated or its producer failed");
    }
    Ok(())
}

struct Unpacker {
    root: Root,
    privileged: bool,
    /// The tree so far, with the metadata of its directories.
    listing: Listing,
    stats: UnpackStats,
    buffer: Vec<u8>,
    /// The input, for copying large files without the tar reader.
    input: Option<SharedInput>,
}

impl Unpacker {
    /// Applies every entry of `archive`; returns how many members it read.
    fn apply_entries(&mut self, archive: &mut tar::Archive<SharedInput>) -> Result<usize> {
        let mut count = 0;
        for entry in archive
            .entries_with_seek()
            .context("cannot read the tar stream")?
        {
            let mut entry =
                entry.with_context(|| format!("invalid tar stream after {count} entries"))?;
            count += 1;
            if let Member::Entry {
                path,
                meta,
                storage,
            } = read_member(&mut entry)?
            {
                let direct = storage.is_contiguous();
                self.apply(&path, &meta, &mut storage.contents(&mut entry), direct)
                    .with_context(|| entry_label(&path))?;
            }
        }
        Ok(count)
    }

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
        self.listing.admit(&path, meta)?;
        let (parent, name) = crate::tar::path::split_parent(&path);
        self.stats.entries += 1;
        match meta.kind {
            Kind::Directory => self.make_dir(parent, name),
            Kind::Regular => self.make_file(parent, name, meta, data, direct),
            Kind::Symlink => self.make_symlink(parent, name, meta),
            Kind::HardLink => self.make_hard_link(parent, name, meta),
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => self.make_node(parent, name, meta),
        }
    }

    /// Makes a directory, unless an earlier entry did (the listing has
    /// admitted it, so nothing else is there); its metadata comes at the
    /// end.
    fn make_dir(&mut self, parent: &[u8], name: &[u8]) -> Result<()> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        match rfs::mkdirat(dir, c_path(name), Mode::from_raw_mode(0o700)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if existing_type(dir, name) == Ok(Some(FileType::Directory)) => {
                Ok(())
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn make_file(
        &mut self,
        parent: &[u8],
        name: &[u8],
        meta: &EntryMeta,
        data: &mut dyn Read,
        direct: bool,
    ) -> Result<()> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        let fd = rfs::openat(dir, c_path(name), flags, mode).map_err(io_err)?;
        let mut file = File::from(fd);
        match &self.input {
            Some(shared) if direct && meta.size >= input::DIRECT_COPY_MIN => shared
                .copy_direct(&mut file, meta.size)
                .context("cannot copy entry data")?,
            _ => copy_exact(data, &mut file, meta.size, &mut self.buffer)?,
        }
        self.stats.bytes += meta.size;
        let (privileged, stats) = (self.privileged, &mut self.stats);
        set_metadata(Target::Fd(file.as_fd()), meta, privileged, stats, true)
    }

    fn make_symlink(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<()> {
        let dir = self.root.dir(parent).map_err(io_err)?;
        rfs::symlinkat(c_path(&meta.link_target), dir, c_path(name)).map_err(io_err)?;
        let target = Target::At {
            dir,
            name,
            symlink: true,
        };
        set_metadata(target, meta, self.privileged, &mut self.stats, true)
    }

    /// Links to the target, which the listing has checked is an earlier
    /// entry, not a directory, reached without a symlink.
    fn make_hard_link(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<()> {
        let target = hard_link_target(meta)?;
        let (target_parent, target_name) = crate::tar::path::split_parent(&target);
        let target_dir = self
            .root
            .dir(target_parent)
            .map_err(io_err)?
            .try_clone_to_owned()?;
        let dir = self.root.dir(parent).map_err(io_err)?;
        rfs::linkat(
            &target_dir,
            c_path(target_name),
            dir,
            c_path(name),
            AtFlags::empty(),
        )
        .map_err(io_err)
        .with_context(|| format!("cannot link to {:?}", display(&target)))
    }

    fn make_node(&mut self, parent: &[u8], name: &[u8], meta: &EntryMeta) -> Result<()> {
        let file_type = match meta.kind {
            Kind::CharDevice => FileType::CharacterDevice,
            Kind::BlockDevice => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let is_device = file_type != FileType::Fifo;
        if is_device && !self.privileged {
            self.stats.skipped_devices += 1;
            return Ok(());
        }
        let dir = self.root.dir(parent).map_err(io_err)?;
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
        set_metadata(target, meta, self.privileged, &mut self.stats, true)
    }

    /// Directory metadata, once everything is in place, children before
    /// their parents: a listed directory gets its last entry's, as in any
    /// tar extraction; one the stream never lists gets `0755`, the time
    /// `dir_time` and root as its owner (the unpacking user without root).
    fn finish_directories(&mut self, dir_time: u64) -> Result<()> {
        let (uid, gid) = if self.privileged { (0, 0) } else { our_ids() };
        let implicit = EntryMeta {
            mtime: dir_time,
            uid,
            gid,
            ..EntryMeta::implicit_dir()
        };
        let (root, privileged, stats) = (&self.root, self.privileged, &mut self.stats);
        self.listing
            .directories(&implicit, Order::ChildrenFirst, |path, meta| {
                let context = || format!("directory {:?}", display(path));
                let fd = root
                    .open_dir_for_metadata(path)
                    .map_err(io_err)
                    .with_context(context)?;
                set_metadata(Target::Fd(fd.as_fd()), meta, privileged, stats, false)
                    .with_context(context)
            })
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

pub(super) fn io_err(errno: Errno) -> crate::error::Error {
    crate::error::Error::from(io::Error::from(errno))
}
