//! The metadata of one tar entry, as the merge and the writers need it.
//!
//! The `tar` crate parses headers and folds GNU long names and PAX
//! `path`/`linkpath`/`size`/`uid`/`gid` into the entry. What it leaves is
//! kept here in a writer-neutral form: numeric ids only (user and group
//! names would be mapped through the *host's* passwd by mksquashfs and
//! tar), and the PAX records worth carrying over verbatim, such as
//! `SCHILY.xattr.*` (file capabilities, SELinux labels) and sub-second
//! `mtime`.

use crate::error::{bail, Context, Result};
use crate::tar::limits::{self, Limit};
use crate::tar::path::abbreviate;
use crate::tar::sparse::{Expanded, PaxSparse, SparseMap};
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

/// Derived PAX keys whose value the `tar` crate folds into the header
/// only if it parses: one that does not would be silently replaced by the
/// header's own field (an owner of 0, say), so it is an error.
const NUMERIC_KEYS: &[&[u8]] = &[b"size", b"uid", b"gid"];

fn check_number(key: &[u8], value: &[u8]) -> Result<()> {
    let parsed = std::str::from_utf8(value)
        .ok()
        .filter(|text| text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok());
    if parsed.is_none() {
        bail!(
            "PAX {} record {:?} is not a number below 2^64",
            String::from_utf8_lossy(key),
            abbreviate(value)
        );
    }
    Ok(())
}

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

/// Reads the metadata of the member `entry` points at, held to the
/// [`limits`] every reader shares. Errors name the entry.
pub fn read_member<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Member> {
    read_fields(entry).with_context(|| entry_label(&entry.path_bytes()))
}

/// How messages name an entry: `entry "a/b"` (lossy UTF-8, escaped, a
/// long name shortened in the middle).
pub fn entry_label(raw_path: &[u8]) -> String {
    format!("entry {:?}", abbreviate(raw_path))
}

fn read_fields<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Member> {
    let entry_type = entry.header().entry_type();
    let Some(kind) = kind_of(entry_type)? else {
        return Ok(Member::GlobalHeader);
    };
    let raw_path = entry.path_bytes();
    limits::check_path("path", &raw_path)?;
    let mut path = raw_path.into_owned();
    let (pax, sparse) = carried_pax_records(entry)?;
    let (size, storage) = match kind {
        Kind::Regular if sparse.is_sparse() => {
            if entry_type == EntryType::GNUSparse {
                bail!("PAX sparse records on a GNU sparse entry");
            }
            if let Some(name) = sparse.name() {
                limits::check_path("path", name)?;
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
    Limit::Id.check("uid", uid)?;
    Limit::Id.check("gid", gid)?;
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
        Kind::HardLink | Kind::Symlink => link_target(entry, kind)?,
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

/// A link's target, checked: a symlink's is stored as it is, a hard
/// link's names a path.
fn link_target<R: Read>(entry: &tar::Entry<'_, R>, kind: Kind) -> Result<Vec<u8>> {
    let target = entry.link_name_bytes().unwrap_or_default();
    match kind {
        Kind::Symlink => limits::check_symlink_target(&target)?,
        _ => limits::check_path("hard link target", &target)?,
    }
    Ok(target.into_owned())
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
        if NUMERIC_KEYS.contains(&key) {
            check_number(key, record.value_bytes())?;
        }
        if sparse.record(key, record.value_bytes())? || DERIVED_KEYS.contains(&key) {
            continue;
        }
        if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
            limits::check_xattr(name, record.value_bytes())?;
        }
        kept.push(PaxRecord {
            key: key.to_vec(),
            value: record.value_bytes().to_vec(),
        });
    }
    Ok((kept, sparse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::{Layer, Raw};

    /// Reads every member of `tar` as the readers do (headers, then data to
    /// its end); the first error, in full, if there is one.
    fn first_error(tar: &[u8]) -> Option<String> {
        let mut archive = tar::Archive::new(tar);
        let mut read_all = || -> Result<()> {
            for entry in archive.entries()? {
                let mut entry = entry?;
                if let Member::Entry { storage, .. } = read_member(&mut entry)? {
                    std::io::copy(&mut storage.contents(&mut entry), &mut std::io::sink())?;
                }
            }
            Ok(())
        };
        read_all().err().map(|err| format!("{err:#}"))
    }

    fn with_raw(name: &[u8], raw: Raw<'_>) -> Vec<u8> {
        Layer::new().raw(name, raw).tar()
    }

    #[test]
    fn headers_over_a_limit_are_refused_naming_it() {
        let deep = "a/".repeat(60000) + "f";
        let big = vec![b'a'; 2 << 20];
        let target = "t".repeat(4096);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "deep path",
                Layer::new().file(&deep, b"").tar(),
                "path has 60001 components, more than the limit of 2048",
            ),
            (
                "long name component",
                Layer::new().file(&"n".repeat(256), b"").tar(),
                "path has a component of 256 bytes, more than the limit of 255",
            ),
            (
                "2 MiB GNU long name",
                with_raw(
                    &big,
                    Raw {
                        gnu_long_name: true,
                        ..Raw::default()
                    },
                ),
                "GNU long name is 2097153 bytes, more than the limit of 1048576",
            ),
            (
                "2 MiB PAX header",
                with_raw(
                    b"f",
                    Raw {
                        pax: vec![("comment", &big)],
                        ..Raw::default()
                    },
                ),
                "PAX extended header is 2097169 bytes, more than the limit of 1048576",
            ),
            (
                "long symlink target",
                Layer::new().symlink("l", &target).tar(),
                "symlink target is 4096 bytes long, more than the limit of 4095",
            ),
            (
                "deep hard link target",
                Layer::new().hardlink("l", &deep).tar(),
                "hard link target has 60001 components, more than the limit of 2048",
            ),
            (
                "uid -1",
                with_raw(
                    b"f",
                    Raw {
                        uid: 4294967295,
                        ..Raw::default()
                    },
                ),
                "uid 4294967295 is out of range, more than the limit of 4294967294",
            ),
            (
                "PAX gid over 32 bits",
                with_raw(
                    b"f",
                    Raw {
                        pax: vec![("gid", b"4294967296")],
                        ..Raw::default()
                    },
                ),
                "gid 4294967296 is out of range, more than the limit of 4294967294",
            ),
            (
                "PAX uid that is no number",
                with_raw(
                    b"f",
                    Raw {
                        pax: vec![("uid", b"99999999999999999999")],
                        ..Raw::default()
                    },
                ),
                "PAX uid record \"99999999999999999999\" is not a number below 2^64",
            ),
        ];
        for (what, tar, want) in cases {
            let got = first_error(&tar).unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(got.ends_with(want), "{what}: {got}");
            assert!(got.len() < 200, "{what}: a long message: {got}");
        }
    }

    #[test]
    fn headers_at_each_limit_are_read() {
        let deepest = "a/".repeat(2047) + "f";
        let longest = vec!["n".repeat(255); 16].join("/");
        let target = "t".repeat(4095);
        let layer = Layer::new()
            .file(&deepest, b"x")
            .file(&longest, b"y")
            .symlink("l", &target)
            .hardlink("h", &longest)
            .raw(
                b"u",
                Raw {
                    uid: 4294967294,
                    gid: 4294967294,
                    ..Raw::default()
                },
            );
        assert_eq!(first_error(&layer.tar()), None);
    }

    #[test]
    fn an_oversized_extension_is_refused_from_its_header_alone() {
        // A long name declared as 1 GiB with none of its bytes present:
        // refused on the size, not read until the data runs out.
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(1 << 30);
        header.set_cksum();
        let got = first_error(header.as_bytes()).expect("refused");
        assert!(got.ends_with("more than the limit of 1048576"), "{got}");
    }
}
