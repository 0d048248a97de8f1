//! The metadata of one tar entry, as the merge and the writers need it.
//!
//! The `tar` crate parses headers and folds GNU long names and PAX
//! `path`/`linkpath`/`size`/`uid`/`gid` into the entry. What it leaves is
//! kept here in a writer-neutral form: numeric ids only (user and group
//! names would be mapped through the *host's* passwd by mksquashfs and
//! tar), and the PAX records worth carrying over verbatim, such as
//! `SCHILY.xattr.*` (file capabilities, SELinux labels) and sub-second
//! `mtime`.

use crate::tar::sparse::{Expanded, PaxSparse, SparseMap};
use anyhow::{bail, Context, Result};
use std::io::Read;
use tar::EntryType;

/// The file type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file with data.
    Regular,
    /// A hard link to an earlier entry.
    HardLink,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A directory.
    Directory,
    /// A named pipe.
    Fifo,
}

impl Kind {
    /// True for directories, which merge across layers instead of replacing.
    pub fn is_dir(self) -> bool {
        self == Kind::Directory
    }
}

/// One PAX extended-header record (`key=value`), kept as raw bytes because
/// xattr values are binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxRecord {
    /// The record's key, e.g. `SCHILY.xattr.security.capability`.
    pub key: Vec<u8>,
    /// The record's value.
    pub value: Vec<u8>,
}

/// An entry's metadata: everything about it but its name and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// The file type.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time in whole seconds (a PAX `mtime` record, if kept,
    /// carries the fraction).
    pub mtime: u64,
    /// Data length; zero for everything but regular files.
    pub size: u64,
    /// Symlink target, or the hard link's target name; empty otherwise.
    pub link_target: Vec<u8>,
    /// Device numbers (major, minor) for device nodes.
    pub device: (u32, u32),
    /// PAX records to carry into the output unchanged.
    pub pax: Vec<PaxRecord>,
}

impl EntryMeta {
    /// A directory that no layer describes: `0755 root:root`, time zero.
    pub fn implicit_dir() -> EntryMeta {
        EntryMeta {
            kind: Kind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            link_target: Vec::new(),
            device: (0, 0),
            pax: Vec::new(),
        }
    }

    /// The xattrs this entry carries, as (name, value) pairs.
    pub fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pax.iter().filter_map(|r| {
            r.key
                .strip_prefix(XATTR_PREFIX)
                .map(|name| (name, r.value.as_slice()))
        })
    }
}

/// Key prefix of xattr records (the form GNU tar, Go and libarchive write).
pub const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// PAX keys the reader folds into the header, or that the writer derives
/// itself; copying them would duplicate or contradict the header.
const DERIVED_KEYS: &[&[u8]] = &[
    b"path",
    b"linkpath",
    b"size",
    b"uid",
    b"gid",
    b"uname",
    b"gname",
];

/// How an entry's data is stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `size` bytes back to back: they may be copied straight from the
    /// input.
    Contiguous,
    /// A GNU `S` member: the `tar` crate expands its holes as it reads.
    GnuSparse,
    /// A PAX `GNU.sparse.*` member: the stored bytes are this map's regions.
    PaxSparse(SparseMap),
}

impl Storage {
    /// True if the stored bytes are the file's contents as they are.
    pub fn is_contiguous(&self) -> bool {
        *self == Storage::Contiguous
    }

    /// The file's contents, given the entry's stored data.
    pub fn contents<R: Read>(self, stored: R) -> Contents<R> {
        match self {
            Storage::PaxSparse(map) => Contents::Expanded(Expanded::new(stored, map)),
            Storage::Contiguous | Storage::GnuSparse => Contents::AsStored(stored),
        }
    }
}

/// An entry's contents: what [`Storage::contents`] returns.
pub enum Contents<R> {
    /// The stored bytes are the contents.
    AsStored(R),
    /// The stored bytes are the regions of a sparse file.
    Expanded(Expanded<R>),
}

impl<R: Read> Read for Contents<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Contents::AsStored(r) => r.read(buf),
            Contents::Expanded(r) => r.read(buf),
        }
    }
}

/// What reading an archive member produced.
pub enum Member {
    /// A file-system entry: its raw (unnormalised) name and metadata.
    Entry {
        /// The name as the archive spells it (long-name and PAX aware).
        path: Vec<u8>,
        /// Its metadata.
        meta: EntryMeta,
        /// How its data is stored: read it through [`Storage::contents`].
        storage: Storage,
    },
    /// A PAX global header, consumed and never re-emitted.
    GlobalHeader,
}

/// Reads the metadata of the member `entry` points at. Errors name the
/// entry.
pub fn read_member<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Member> {
    read_fields(entry).with_context(|| entry_label(&entry.path_bytes()))
}

/// How messages name an entry: `entry "a/b"` (lossy UTF-8, escaped).
pub fn entry_label(raw_path: &[u8]) -> String {
    format!("entry {:?}", String::from_utf8_lossy(raw_path))
}

fn read_fields<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Member> {
    let entry_type = entry.header().entry_type();
    let Some(kind) = kind_of(entry_type)? else {
        return Ok(Member::GlobalHeader);
    };
    let mut path = entry.path_bytes().into_owned();
    let (pax, sparse) = carried_pax_records(entry)?;
    let (size, storage) = match kind {
        Kind::Regular if sparse.is_sparse() => {
            if entry_type == EntryType::GNUSparse {
                bail!("PAX sparse records on a GNU sparse entry");
            }
            if let Some(name) = sparse.name() {
                path = name.to_vec();
            }
            let stored = entry.size();
            let map = sparse.into_map(entry, stored)?;
            (map.real_size(), Storage::PaxSparse(map))
        }
        _ if sparse.is_sparse() => bail!("PAX sparse records on a {kind:?} entry"),
        Kind::Regular if entry_type == EntryType::GNUSparse => (entry.size(), Storage::GnuSparse),
        Kind::Regular => (entry.size(), Storage::Contiguous),
        _ => (0, Storage::Contiguous),
    };
    let header = entry.header();
    let mode = header.mode().context("bad mode field")? & 0o7777;
    let uid = header.uid().context("bad uid field")?;
    let gid = header.gid().context("bad gid field")?;
    let mtime = header.mtime().context("bad mtime field")?;
    let device = match kind {
        Kind::CharDevice | Kind::BlockDevice => (
            header
                .device_major()
                .context("bad device major")?
                .unwrap_or(0),
            header
                .device_minor()
                .context("bad device minor")?
                .unwrap_or(0),
        ),
        _ => (0, 0),
    };
    let link_target = match kind {
        Kind::HardLink | Kind::Symlink => entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Member::Entry {
        storage,
        path,
        meta: EntryMeta {
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            link_target,
            device,
            pax,
        },
    })
}

/// The kind of file an entry type makes; `None` for a PAX global header,
/// which describes no file.
fn kind_of(entry_type: EntryType) -> Result<Option<Kind>> {
    Ok(Some(match entry_type {
        EntryType::XGlobalHeader => return Ok(None),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::Regular,
        EntryType::Link => Kind::HardLink,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Char => Kind::CharDevice,
        EntryType::Block => Kind::BlockDevice,
        EntryType::Directory => Kind::Directory,
        EntryType::Fifo => Kind::Fifo,
        other => bail!("unsupported entry type {:?}", other.as_byte() as char),
    }))
}

/// The PAX records to carry over, and the sparse ones, set apart.
fn carried_pax_records<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<(Vec<PaxRecord>, PaxSparse)> {
    let mut kept = Vec::new();
    let mut sparse = PaxSparse::default();
    let Some(records) = entry.pax_extensions().context("bad PAX header")? else {
        return Ok((kept, sparse));
    };
    for record in records {
        let record = record.context("malformed PAX record")?;
        let key = record.key_bytes();
        if sparse.record(key, record.value_bytes())? || DERIVED_KEYS.contains(&key) {
            continue;
        }
        kept.push(PaxRecord {
            key: key.to_vec(),
            value: record.value_bytes().to_vec(),
        });
    }
    Ok((kept, sparse))
}
