//! Test helpers shared by ocirender's crates.
//!
//! [`Layer`] writes layer tars byte by byte, so tests can say exactly what
//! a hostile or quirky layer contains (`..` names, bare whiteouts, binary
//! xattrs, GNU long names, a missing end-of-archive marker), which the
//! `tar` crate's `Builder` refuses to produce. [`read_tar`] parses an
//! output archive into plain values to assert on.

#![deny(missing_docs)]

use std::io::{Read, Write};
use tar::{EntryType, GnuExtSparseHeader, GnuSparseHeader, Header};

/// A layer tar under construction.
#[derive(Default, Clone)]
pub struct Layer {
    bytes: Vec<u8>,
}

/// Options of one raw entry.
#[derive(Clone)]
pub struct Raw<'a> {
    /// The entry type.
    pub kind: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// Link target (symlinks, hard links).
    pub link: &'a [u8],
    /// Data (regular files).
    pub data: &'a [u8],
    /// Extra PAX records.
    pub pax: Vec<(&'a str, &'a [u8])>,
    /// Write the name as a GNU `L` long-name member instead of PAX.
    pub gnu_long_name: bool,
    /// User name to put in the header (the merge must blank it).
    pub uname: &'a str,
}

impl Default for Raw<'_> {
    fn default() -> Self {
        Raw {
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: b"",
            data: b"",
            pax: Vec::new(),
            gnu_long_name: false,
            uname: "",
        }
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory, mode 0755.
    pub fn dir(self, path: &str) -> Self {
        self.dir_mode(path, 0o755)
    }

    /// A directory with the given mode.
    pub fn dir_mode(self, path: &str, mode: u32) -> Self {
        self.raw(
            path.as_bytes(),
            Raw {
                kind: EntryType::Directory,
                mode,
                ..Raw::default()
            },
        )
    }

    /// A regular file.
    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.raw(
            path.as_bytes(),
            Raw {
                data,
                ..Raw::default()
            },
        )
    }

    /// A regular file with a mode.
    pub fn file_mode(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.raw(
            path.as_bytes(),
            Raw {
                data,
                mode,
                ..Raw::default()
            },
        )
    }

    /// A symbolic link.
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(
            path.as_bytes(),
            Raw {
                kind: EntryType::Symlink,
                mode: 0o777,
                link: target.as_bytes(),
                ..Raw::default()
            },
        )
    }

    /// A hard link to `target`.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(
            path.as_bytes(),
            Raw {
                kind: EntryType::Link,
                link: target.as_bytes(),
                ..Raw::default()
            },
        )
    }

    /// A whiteout hiding `path` (writes `dir/.wh.name`).
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let marker = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&marker, b"")
    }

    /// An opaque marker for `dir` ("" for the root).
    pub fn opaque(self, dir: &str) -> Self {
        let marker = if dir.is_empty() {
            ".wh..wh..opq".to_owned()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        self.file(&marker, b"")
    }

    /// Any entry, with the name given as raw bytes.
    pub fn raw(mut self, name: &[u8], raw: Raw<'_>) -> Self {
        let mut pax: Vec<(&str, &[u8])> = raw.pax.clone();
        let mut header = Header::new_ustar();
        if name.len() > 100 {
            if raw.gnu_long_name {
                self.gnu_long_name(name);
            } else {
                pax.push(("path", name));
            }
        }
        let n = name.len().min(100);
        header.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = raw.link.len().min(100);
        header.as_old_mut().linkname[..l].copy_from_slice(&raw.link[..l]);
        if raw.link.len() > 100 {
            pax.push(("linkpath", raw.link));
        }
        header.set_entry_type(raw.kind);
        header.set_mode(raw.mode);
        header.set_uid(raw.uid);
        header.set_gid(raw.gid);
        header.set_mtime(raw.mtime);
        header.set_size(raw.data.len() as u64);
        if !raw.uname.is_empty() {
            header.set_username(raw.uname).unwrap();
        }
        if matches!(raw.kind, EntryType::Char | EntryType::Block) {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        if !pax.is_empty() {
            self.pax_header(&pax);
        }
        self.bytes.extend_from_slice(header.as_bytes());
        self.data(raw.data);
        self
    }

    /// A GNU sparse (`S`) member: a file of `real_size` bytes whose data
    /// regions, (offset, length) each, hold `stored` back to back. The
    /// first four regions go in the header, the rest in extension headers
    /// of 21, as GNU tar writes them.
    pub fn gnu_sparse(
        mut self,
        path: &str,
        real_size: u64,
        regions: &[(u64, u64)],
        stored: &[u8],
    ) -> Self {
        let mut header = Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_entry_type(EntryType::GNUSparse);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(stored.len() as u64);
        let (first, rest) = regions.split_at(regions.len().min(4));
        let gnu = header.as_gnu_mut().unwrap();
        octal(&mut gnu.realsize, real_size);
        fill_sparse_slots(&mut gnu.sparse, first);
        gnu.isextended[0] = u8::from(!rest.is_empty());
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        let mut chunks = rest.chunks(21).peekable();
        while let Some(chunk) = chunks.next() {
            let mut extension = GnuExtSparseHeader::new();
            fill_sparse_slots(&mut extension.sparse, chunk);
            extension.isextended[0] = u8::from(chunks.peek().is_some());
            self.bytes.extend_from_slice(extension.as_bytes());
        }
        self.data(stored);
        self
    }

    /// Appends raw bytes (for truncation and garbage tests).
    pub fn append_bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn gnu_long_name(&mut self, name: &[u8]) {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(EntryType::GNULongName);
        header.set_mode(0o644);
        header.set_size(name.len() as u64 + 1);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        let mut data = name.to_vec();
        data.push(0);
        self.data(&data);
    }

    fn pax_header(&mut self, records: &[(&str, &[u8])]) {
        let mut data = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut header = Header::new_ustar();
        header.as_old_mut().name[..9].copy_from_slice(b"PaxHeader");
        header.set_entry_type(EntryType::XHeader);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self.data(&data);
    }

    fn data(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0, pad));
    }

    /// The finished tar, with its end-of-archive marker.
    pub fn tar(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes.extend([0; 1024]);
        bytes
    }

    /// The tar without an end-of-archive marker.
    pub fn tar_without_end(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The tar, gzip-compressed.
    pub fn gzip(&self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

/// Writes (offset, length) pairs into a sparse header's slots.
fn fill_sparse_slots(slots: &mut [GnuSparseHeader], regions: &[(u64, u64)]) {
    for (slot, &(offset, length)) in slots.iter_mut().zip(regions) {
        octal(&mut slot.offset, offset);
        octal(&mut slot.numbytes, length);
    }
}

/// A 12-byte numeric field in octal, as GNU tar writes it.
fn octal(field: &mut [u8; 12], value: u64) {
    field[..11].copy_from_slice(format!("{value:011o}").as_bytes());
    field[11] = 0;
}

/// Deterministic pseudo-random bytes (xorshift64): incompressible test data
/// that is the same on every run.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// gzip-compresses bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// One entry of a parsed archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as stored (long-name aware), lossy UTF-8.
    pub path: String,
    /// The name's raw bytes.
    pub path_bytes: Vec<u8>,
    /// The entry type.
    pub kind: EntryType,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// User name field.
    pub uname: Vec<u8>,
    /// Link target, lossy UTF-8.
    pub link: String,
    /// Data.
    pub data: Vec<u8>,
    /// All PAX records.
    pub pax: Vec<(String, Vec<u8>)>,
}

/// Parses a complete archive, failing if it has no end-of-archive marker.
pub fn read_tar(bytes: &[u8]) -> Vec<Entry> {
    assert!(
        has_end_marker(bytes),
        "archive lacks its end-of-archive marker"
    );
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path_bytes = e.path_bytes().into_owned();
            let pax = e
                .pax_extensions()
                .unwrap()
                .map(|records| {
                    records
                        .map(|r| {
                            let r = r.unwrap();
                            (
                                String::from_utf8_lossy(r.key_bytes()).into_owned(),
                                r.value_bytes().to_vec(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let h = e.header().clone();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Entry {
                path: String::from_utf8_lossy(&path_bytes).into_owned(),
                path_bytes,
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: e.header().uid().unwrap(),
                gid: e.header().gid().unwrap(),
                mtime: h.mtime().unwrap(),
                uname: h.username_bytes().unwrap_or_default().to_vec(),
                link,
                data,
                pax,
            }
        })
        .collect()
}

/// True if the archive ends with two zero blocks after its last entry.
pub fn has_end_marker(bytes: &[u8]) -> bool {
    bytes.len() >= 1024
        && bytes.len().is_multiple_of(512)
        && bytes[bytes.len() - 1024..].iter().all(|&b| b == 0)
}
