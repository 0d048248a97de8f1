//! Layers described by their members, for structure-aware fuzzing.
//!
//! An input decoded with `arbitrary` says what a layer holds: members with
//! long and deep names (in the header, as GNU long names or PAX records),
//! large PAX records and xattrs, GNU and PAX (0.0, 0.1, 1.0) sparse maps,
//! hard links and symlinks, whiteouts and opaque markers, duplicates. It is
//! rendered to a valid tar, so the fuzzer's mutations change a size, a
//! count or a kind, never a checksum: they reach what a reader does with a
//! gigabyte name, a path 60,000 components deep or a map of ten million
//! regions, which random bytes never get past a header checksum to reach.
//!
//! Sizes and counts are [`Size`]s: small from most bytes, up to gigabytes
//! from a few, so random inputs stay fast and mutations still reach the
//! large ones. Rendering streams: repeated bytes are [`Pattern`]s and maps
//! are written region by region, so a gigabyte name costs the renderer no
//! memory, only the reader under test.

use arbitrary::Arbitrary;
use std::io::{self, Write};
use tar::{EntryType, GnuExtSparseHeader, Header};

const BLOCK: u64 = 512;
/// The most bytes a name or a PAX record's value may render to: far beyond
/// any limit a reader should have.
const MAX_PIECE: u64 = 512 << 20;
/// The most bytes of a file's data, stored or (holes expanded) real: data
/// is streamed by every reader, so a large file finds nothing a small one
/// does not, and only slows the fuzzer.
const MAX_DATA: u64 = 4 << 20;
/// The most bytes one layer may render to; members beyond are left out.
pub const MAX_LAYER: u64 = 1 << 30;
/// The most regions a sparse map may have: 100,000 took the merge 8.5 s
/// when it read them in quadratic time.
const MAX_REGIONS: u64 = 1 << 20;
/// The most components a deep name may have.
const MAX_DEPTH: u64 = 1 << 17;
/// Names longer than this are not materialised (for whiteouts of them).
const MAX_MATERIALISED: u64 = 1 << 20;

/// A size or a count: `mantissa << shift`, where the shift is below 8 for
/// 31 of 32 `scale` bytes and 10 to 31 for the rest.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Size {
    mantissa: u8,
    scale: u8,
}

impl Size {
    /// The value, at most `max`.
    pub fn value(self, max: u64) -> u64 {
        let shift = if self.scale >= 0xf8 {
            10 + 3 * u32::from(self.scale & 0x07)
        } else {
            u32::from(self.scale % 8)
        };
        (u64::from(self.mantissa) << shift).min(max)
    }
}

/// Bytes given literally, or a unit repeated.
#[derive(Arbitrary, Debug)]
pub enum Text {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `unit`, `times` times.
    Repeat {
        /// What is repeated.
        unit: Vec<u8>,
        /// How often.
        times: Size,
    },
}

impl Text {
    /// Its bytes, at most about `max` of them.
    fn pattern(&self, max: u64) -> Pattern {
        match self {
            Text::Bytes(bytes) => Pattern::of(bytes),
            Text::Repeat { unit, times } => {
                let max = max / (unit.len() as u64).max(1);
                Pattern::repeat(unit, times.value(max))
            }
        }
    }
}

/// A member's name.
#[derive(Arbitrary, Debug)]
pub enum Name {
    /// These bytes.
    Literal(Vec<u8>),
    /// `component/component/...`, `depth` components.
    Deep {
        /// Each component.
        component: Text,
        /// How many.
        depth: Size,
    },
    /// The name of an earlier member (a duplicate).
    Earlier(u8),
    /// A whiteout of an earlier member: `dir/.wh.base`.
    Whiteout(u8),
    /// An opaque marker in an earlier member's directory.
    Opaque(u8),
}

/// Where a name longer than a header's field goes.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    /// Cut to the header's 100 bytes.
    Header,
    /// A GNU `L` (or `K`) member before the header.
    Gnu,
    /// A PAX `path` (or `linkpath`) record.
    Pax,
}

/// The layout of a sparse file: `regions` data regions of `chunk` bytes,
/// `gap` bytes of hole before each, `tail` bytes of hole at the end.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct SparseMap {
    regions: Size,
    gap: Size,
    chunk: Size,
    tail: Size,
}

/// The PAX sparse formats GNU tar writes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum PaxSparse {
    /// `GNU.sparse.offset`/`numbytes` record pairs.
    V00,
    /// One `GNU.sparse.map` record.
    V01,
    /// The map at the start of the data.
    V10,
}

/// What a member is.
#[derive(Arbitrary, Debug)]
pub enum Kind {
    /// A regular file with this data.
    File(Text),
    /// A directory.
    Dir,
    /// A symlink to this target.
    Symlink(Name),
    /// A hard link to this target.
    HardLink(Name),
    /// A FIFO.
    Fifo,
    /// A character device.
    CharDevice,
    /// A GNU `S` sparse member.
    GnuSparse(SparseMap),
    /// A PAX sparse member.
    PaxSparse(SparseMap, PaxSparse),
}

/// An extra PAX record.
#[derive(Arbitrary, Debug)]
pub enum Pax {
    /// `SCHILY.xattr.<key>`.
    Xattr(Vec<u8>, Text),
    /// Any key.
    Record(Vec<u8>, Text),
    /// A `size` record (which may disagree with the data).
    Size(Size),
}

/// One member of a layer.
#[derive(Arbitrary, Debug)]
pub struct Member {
    name: Name,
    form: NameForm,
    kind: Kind,
    mode: u16,
    uid: u16,
    pax: Vec<Pax>,
}

/// How a layer ends.
#[derive(Arbitrary, Debug)]
pub enum End {
    /// Two zero blocks.
    Marker,
    /// Nothing.
    Nothing,
    /// These bytes.
    Garbage(Vec<u8>),
}

/// A layer: its members, and how it ends.
#[derive(Arbitrary, Debug)]
pub struct LayerSpec {
    members: Vec<Member>,
    end: End,
}

/// Bytes as parts, each a unit repeated.
#[derive(Debug, Clone, Default)]
pub struct Pattern {
    parts: Vec<(Vec<u8>, u64)>,
}

impl Pattern {
    fn of(bytes: &[u8]) -> Pattern {
        Pattern::repeat(bytes, 1)
    }

    fn repeat(unit: &[u8], times: u64) -> Pattern {
        let mut pattern = Pattern::default();
        pattern.push(unit, times);
        pattern
    }

    fn push(&mut self, unit: &[u8], times: u64) {
        if !unit.is_empty() && times > 0 {
            self.parts.push((unit.to_vec(), times));
        }
    }

    fn append(&mut self, other: &Pattern) {
        self.parts.extend(other.parts.iter().cloned());
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|(unit, times)| (unit.len() as u64).saturating_mul(*times))
            .fold(0, u64::saturating_add)
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Its first `n` bytes (or all, if shorter).
    fn prefix(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (unit, times) in &self.parts {
            for _ in 0..*times {
                if out.len() >= n {
                    return out;
                }
                let take = unit.len().min(n - out.len());
                out.extend_from_slice(&unit[..take]);
            }
        }
        out
    }

    /// All its bytes, if there are at most `max`.
    fn materialise(&self, max: u64) -> Option<Vec<u8>> {
        (self.len() <= max).then(|| self.prefix(max as usize))
    }

    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        for (unit, times) in &self.parts {
            // Whole units in about 64 KiB, written as often as they fit.
            let per_chunk = ((64 << 10) / unit.len()).max(1) as u64;
            let chunk = unit.repeat(per_chunk.min(*times) as usize);
            let mut left = *times;
            while left >= per_chunk {
                out.write_all(&chunk)?;
                left -= per_chunk;
            }
            out.write_all(&chunk[..left as usize * unit.len()])?;
        }
        Ok(())
    }
}

/// A sparse map's regions, resolved: `(offset, length)` of region `i` and
/// the file's real size.
#[derive(Debug, Clone, Copy)]
struct Regions {
    count: u64,
    gap: u64,
    chunk: u64,
    real_size: u64,
}

impl Regions {
    fn of(map: SparseMap) -> Regions {
        let count = map.regions.value(MAX_REGIONS);
        // Whole blocks, as GNU tar stores them (readers refuse a region
        // that leaves the stored data unaligned).
        let chunk = map.chunk.value(MAX_DATA / BLOCK / count.max(1)) * BLOCK;
        let gap = map.gap.value(MAX_DATA / count.max(1));
        let tail = map.tail.value(MAX_DATA);
        Regions {
            count,
            gap,
            chunk,
            real_size: count * (gap + chunk) + tail,
        }
    }

    fn region(&self, i: u64) -> (u64, u64) {
        (i * (self.gap + self.chunk) + self.gap, self.chunk)
    }

    fn data_len(&self) -> u64 {
        self.count * self.chunk
    }
}

/// How a map is written as text.
#[derive(Debug, Clone, Copy)]
enum MapText {
    /// `offset,size,offset,size` (PAX 0.1's `GNU.sparse.map`).
    Commas,
    /// `count\noffset\nsize\n...` (PAX 1.0's data prefix).
    Lines,
}

/// A part of a rendered layer.
#[derive(Debug, Clone)]
enum Piece {
    Bytes(Vec<u8>),
    Pattern(Pattern),
    Zeros(u64),
    Map(Regions, MapText),
    /// A GNU sparse header's extension blocks for regions 4 and on.
    GnuExtensions(Regions),
    /// PAX 0.0's `GNU.sparse.offset` and `numbytes` records, a pair a region.
    RecordPairs(Regions),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::Pattern(pattern) => pattern.len(),
            Piece::Zeros(n) => *n,
            Piece::Map(regions, form) => map_text_len(regions, *form),
            Piece::GnuExtensions(regions) => gnu_extension_blocks(regions.count) * BLOCK,
            Piece::RecordPairs(regions) => (0..regions.count)
                .map(|i| {
                    let (offset, len) = regions.region(i);
                    record_len(OFFSET_KEY.len() as u64, digits(offset))
                        + record_len(NUMBYTES_KEY.len() as u64, digits(len))
                })
                .sum(),
        }
    }

    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Piece::Bytes(bytes) => out.write_all(bytes),
            Piece::Pattern(pattern) => pattern.write_to(out),
            Piece::Zeros(n) => Pattern::repeat(&[0], *n).write_to(out),
            Piece::Map(regions, form) => write_map_text(regions, *form, out),
            Piece::GnuExtensions(regions) => write_gnu_extensions(regions, out),
            Piece::RecordPairs(regions) => write_record_pairs(regions, out),
        }
    }
}

fn digits(n: u64) -> u64 {
    n.checked_ilog10().unwrap_or(0) as u64 + 1
}

fn map_text_len(regions: &Regions, form: MapText) -> u64 {
    let numbers: u64 = (0..regions.count)
        .map(|i| {
            let (offset, len) = regions.region(i);
            digits(offset) + digits(len) + 2
        })
        .sum();
    match form {
        MapText::Commas => numbers.saturating_sub(1),
        MapText::Lines => digits(regions.count) + 1 + numbers,
    }
}

fn write_map_text(regions: &Regions, form: MapText, out: &mut dyn Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    if let MapText::Lines = form {
        writeln!(out, "{}", regions.count)?;
    }
    for i in 0..regions.count {
        let (offset, len) = regions.region(i);
        match form {
            MapText::Commas if i == 0 => write!(out, "{offset},{len}")?,
            MapText::Commas => write!(out, ",{offset},{len}")?,
            MapText::Lines => write!(out, "{offset}\n{len}\n")?,
        }
    }
    out.flush()
}

/// A GNU sparse header holds 4 regions, each extension block 21.
fn gnu_extension_blocks(count: u64) -> u64 {
    count.saturating_sub(4).div_ceil(21)
}

fn write_gnu_extensions(regions: &Regions, out: &mut dyn Write) -> io::Result<()> {
    let blocks = gnu_extension_blocks(regions.count);
    let mut out = io::BufWriter::new(out);
    for block in 0..blocks {
        let mut ext = GnuExtSparseHeader::new();
        for (slot, entry) in ext.sparse.iter_mut().enumerate() {
            let i = 4 + block * 21 + slot as u64;
            if i < regions.count {
                let (offset, len) = regions.region(i);
                entry.set_offset(offset);
                entry.set_length(len);
            }
        }
        ext.set_is_extended(block + 1 < blocks);
        out.write_all(ext.as_bytes())?;
    }
    out.flush()
}

fn padding(len: u64) -> Piece {
    Piece::Zeros(len.div_ceil(BLOCK) * BLOCK - len)
}

const OFFSET_KEY: &str = "GNU.sparse.offset";
const NUMBYTES_KEY: &str = "GNU.sparse.numbytes";

/// The length of a PAX record, which counts its own digits.
fn record_len(key_len: u64, value_len: u64) -> u64 {
    let rest = key_len + value_len + 3;
    let mut len = rest + 1;
    while len != rest + digits(len) {
        len = rest + digits(len);
    }
    len
}

fn write_record_pairs(regions: &Regions, out: &mut dyn Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for i in 0..regions.count {
        let (offset, len) = regions.region(i);
        for (key, value) in [(OFFSET_KEY, offset), (NUMBYTES_KEY, len)] {
            let record = record_len(key.len() as u64, digits(value));
            writeln!(out, "{record} {key}={value}")?;
        }
    }
    out.flush()
}

/// One PAX record: `"<len> <key>=<value>\n"`, `<len>` counting itself.
fn pax_record(key: &[u8], value: Piece, pieces: &mut Vec<Piece>) {
    let len = record_len(key.len() as u64, value.len());
    let mut head = format!("{len} ").into_bytes();
    head.extend_from_slice(key);
    head.push(b'=');
    pieces.push(Piece::Bytes(head));
    pieces.push(value);
    pieces.push(Piece::Bytes(b"\n".to_vec()));
}

/// A header of `kind` whose data is `size` bytes.
fn header(kind: EntryType, size: u64, name: &[u8], link: &[u8], gnu: bool) -> Header {
    let mut header = if gnu {
        Header::new_gnu()
    } else {
        Header::new_ustar()
    };
    header.set_entry_type(kind);
    let n = name.len().min(100);
    header.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    header.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header
}

fn finish(mut header: Header) -> Piece {
    header.set_cksum();
    Piece::Bytes(header.as_bytes().to_vec())
}

/// A member with `data` (its pieces) as the data of one extension header.
fn extension(kind: EntryType, data: Vec<Piece>, gnu: bool, out: &mut Vec<Piece>) {
    let len: u64 = data.iter().map(Piece::len).sum();
    let name: &[u8] = if gnu { b"././@LongLink" } else { b"PaxHeader" };
    out.push(finish(header(kind, len, name, b"", gnu)));
    out.extend(data);
    out.push(padding(len));
}

/// Renders layers, remembering the names given so far.
#[derive(Default)]
pub struct Renderer {
    names: Vec<Pattern>,
    written: u64,
}

impl Renderer {
    /// Writes `spec` as a tar to `out`; returns the bytes written.
    pub fn render(&mut self, spec: &LayerSpec, out: &mut dyn Write) -> io::Result<u64> {
        let start = self.written;
        for member in &spec.members {
            let pieces = self.member(member);
            let len: u64 = pieces.iter().map(Piece::len).sum();
            if self.written + len > MAX_LAYER {
                continue;
            }
            for piece in &pieces {
                piece.write_to(out)?;
            }
            self.written += len;
        }
        let end = match &spec.end {
            End::Marker => vec![0; 1024],
            End::Nothing => Vec::new(),
            End::Garbage(bytes) => bytes.clone(),
        };
        out.write_all(&end)?;
        self.written += end.len() as u64;
        Ok(self.written - start)
    }

    fn earlier(&self, i: u8) -> Pattern {
        match self.names.len() {
            0 => Pattern::of(b"none"),
            n => self.names[usize::from(i) % n].clone(),
        }
    }

    fn name(&self, name: &Name) -> Pattern {
        match name {
            Name::Literal(bytes) => Pattern::of(bytes),
            Name::Deep { component, depth } => {
                let mut unit = component.pattern(MAX_PIECE);
                unit.push(b"/", 1);
                match unit.materialise(4 << 10) {
                    Some(unit) => {
                        let max = MAX_DEPTH.min(MAX_PIECE / unit.len() as u64);
                        Pattern::repeat(&unit, depth.value(max))
                    }
                    // A long component: a few of them.
                    None => {
                        let mut name = Pattern::default();
                        for _ in 0..depth.value(16) {
                            name.append(&unit);
                        }
                        name
                    }
                }
            }
            Name::Earlier(i) => self.earlier(*i),
            Name::Whiteout(i) | Name::Opaque(i) => {
                let earlier = self.earlier(*i).materialise(MAX_MATERIALISED);
                let earlier = earlier.unwrap_or_else(|| b"big".to_vec());
                let trimmed = earlier.strip_suffix(b"/").unwrap_or(&earlier);
                let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
                    Some(slash) => (&trimmed[..=slash], &trimmed[slash + 1..]),
                    None => (&b""[..], trimmed),
                };
                let marker = match name {
                    Name::Whiteout(_) => [dir, b".wh.", base].concat(),
                    _ => [trimmed, b"/.wh..wh..opq"].concat(),
                };
                Pattern::of(&marker)
            }
        }
    }

    /// A name (or link target) too long for its field goes where `form`
    /// says; returns what the header's field holds.
    fn long(
        name: &Pattern,
        form: NameForm,
        gnu_kind: EntryType,
        pax_key: &[u8],
        extensions: &mut Vec<Piece>,
        records: &mut Vec<Piece>,
    ) -> Vec<u8> {
        match form {
            NameForm::Gnu if name.len() > 100 => {
                let data = vec![Piece::Pattern(name.clone()), Piece::Bytes(vec![0])];
                extension(gnu_kind, data, true, extensions);
            }
            NameForm::Pax => pax_record(pax_key, Piece::Pattern(name.clone()), records),
            _ => {}
        }
        name.prefix(100)
    }

    fn member(&mut self, member: &Member) -> Vec<Piece> {
        let name = self.name(&member.name);
        let mut extensions = Vec::new();
        let mut records = Vec::new();
        let name_field = Self::long(
            &name,
            member.form,
            EntryType::GNULongName,
            b"path",
            &mut extensions,
            &mut records,
        );
        for pax in &member.pax {
            match pax {
                Pax::Xattr(key, value) => {
                    let key = [&b"SCHILY.xattr."[..], key].concat();
                    pax_record(&key, Piece::Pattern(value.pattern(MAX_PIECE)), &mut records);
                }
                Pax::Record(key, value) => {
                    pax_record(key, Piece::Pattern(value.pattern(MAX_PIECE)), &mut records)
                }
                Pax::Size(size) => {
                    let value = size.value(MAX_PIECE).to_string().into_bytes();
                    pax_record(b"size", Piece::Bytes(value), &mut records)
                }
            }
        }
        let mut link = Pattern::default();
        let mut data = Vec::new();
        let mut gnu = false;
        let kind = match &member.kind {
            Kind::File(text) => {
                data.push(Piece::Pattern(text.pattern(MAX_DATA)));
                EntryType::Regular
            }
            Kind::Dir => EntryType::Directory,
            Kind::Symlink(target) | Kind::HardLink(target) => {
                link = self.name(target);
                match member.kind {
                    Kind::Symlink(_) => EntryType::Symlink,
                    _ => EntryType::Link,
                }
            }
            Kind::Fifo => EntryType::Fifo,
            Kind::CharDevice => EntryType::Char,
            Kind::GnuSparse(map) => {
                gnu = true;
                let regions = Regions::of(*map);
                data.push(Piece::GnuExtensions(regions));
                data.push(Piece::Pattern(Pattern::repeat(b"s", regions.data_len())));
                EntryType::GNUSparse
            }
            Kind::PaxSparse(map, version) => {
                let regions = Regions::of(*map);
                pax_sparse(regions, *version, &name, &mut records, &mut data);
                EntryType::Regular
            }
        };
        let link_field = if link.is_empty() {
            Vec::new()
        } else {
            Self::long(
                &link,
                member.form,
                EntryType::GNULongLink,
                b"linkpath",
                &mut extensions,
                &mut records,
            )
        };
        if !records.is_empty() {
            extension(EntryType::XHeader, records, false, &mut extensions);
        }
        let data_len: u64 = data.iter().map(Piece::len).sum();
        let extension_len = match &member.kind {
            Kind::GnuSparse(map) => gnu_extension_blocks(Regions::of(*map).count) * BLOCK,
            _ => 0,
        };
        let mut header = header(
            kind,
            data_len - extension_len,
            &name_field,
            &link_field,
            gnu,
        );
        header.set_mode(u32::from(member.mode) & 0o7777);
        header.set_uid(u64::from(member.uid));
        if let Kind::CharDevice = member.kind {
            let _ = header.set_device_major(1);
            let _ = header.set_device_minor(3);
        }
        if let Kind::GnuSparse(map) = &member.kind {
            gnu_sparse_header(&mut header, Regions::of(*map));
        }
        self.names.push(name);
        let mut pieces = extensions;
        pieces.push(finish(header));
        pieces.extend(data);
        pieces.push(padding(data_len - extension_len));
        pieces
    }
}

/// Fills a GNU `S` header's four regions and real size.
fn gnu_sparse_header(header: &mut Header, regions: Regions) {
    let gnu = header.as_gnu_mut().expect("a GNU header");
    for (i, entry) in gnu.sparse.iter_mut().enumerate() {
        if (i as u64) < regions.count {
            let (offset, len) = regions.region(i as u64);
            entry.set_offset(offset);
            entry.set_length(len);
        }
    }
    gnu.set_is_extended(regions.count > 4);
    gnu.set_real_size(regions.real_size);
}

/// A PAX sparse member's records and data, as GNU tar writes `version`.
fn pax_sparse(
    regions: Regions,
    version: PaxSparse,
    name: &Pattern,
    records: &mut Vec<Piece>,
    data: &mut Vec<Piece>,
) {
    let number = |n: u64| Piece::Bytes(n.to_string().into_bytes());
    match version {
        PaxSparse::V00 => {
            pax_record(b"GNU.sparse.size", number(regions.real_size), records);
            pax_record(b"GNU.sparse.numblocks", number(regions.count), records);
            records.push(Piece::RecordPairs(regions));
        }
        PaxSparse::V01 => {
            pax_record(b"GNU.sparse.size", number(regions.real_size), records);
            pax_record(b"GNU.sparse.numblocks", number(regions.count), records);
            let map = Piece::Map(regions, MapText::Commas);
            pax_record(b"GNU.sparse.map", map, records);
        }
        PaxSparse::V10 => {
            pax_record(b"GNU.sparse.major", number(1), records);
            pax_record(b"GNU.sparse.minor", number(0), records);
            pax_record(b"GNU.sparse.name", Piece::Pattern(name.clone()), records);
            pax_record(b"GNU.sparse.realsize", number(regions.real_size), records);
            let map = Piece::Map(regions, MapText::Lines);
            let map_len = map.len();
            data.push(map);
            data.push(padding(map_len));
        }
    }
    data.push(Piece::Pattern(Pattern::repeat(b"s", regions.data_len())));
}
