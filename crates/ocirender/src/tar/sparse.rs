//! Sparse members: a file stored as its data regions plus a map of where
//! they sit; the holes between them read as zeros.
//!
//! Two families of archives hold them:
//!
//! * GNU `S` headers (`tar --format=gnu --sparse`). The `tar` crate reads
//!   their map, extension headers included, validates it, and yields the
//!   expanded contents: the only trap left is copying the stored bytes raw.
//! * PAX `GNU.sparse.*` records (`tar --format=posix --sparse`), in three
//!   versions: 0.0 (repeated `GNU.sparse.offset`/`GNU.sparse.numbytes`
//!   records), 0.1 (one `GNU.sparse.map` record) and 1.0 (the map at the
//!   start of the data, as decimal lines padded to a block). The `tar`
//!   crate sees a regular file whose data is the regions back to back;
//!   [`PaxSparse`] gathers the records, [`SparseMap`] checks the map and
//!   [`Expanded`] turns the stored bytes back into the file, streaming.
//!
//! A map is checked before a byte of data is used: regions in order, not
//! overlapping, inside the real size, and describing exactly the stored
//! data. A hostile map is an error, never a file with wrong bytes.

use super::limits::{Limit, LimitError};
use super::BLOCK;
use std::fmt;
use std::io::{self, Read};

/// One run of stored data in the expanded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Where the run starts in the expanded file.
    pub offset: u64,
    /// Its length.
    pub length: u64,
}

/// Why a sparse map was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparseError {
    /// A region starts before the previous one ends.
    Overlap {
        /// The region's index in the map.
        index: usize,
    },
    /// A region ends past the real size of the file.
    PastEnd {
        /// The region's index in the map.
        index: usize,
        /// The file's real size.
        real_size: u64,
    },
    /// The regions hold a different amount of data than the member stores.
    DataMismatch {
        /// Bytes the map describes.
        mapped: u64,
        /// Bytes the member stores.
        stored: u64,
    },
    /// A record or map line is not what the format says.
    Malformed(String),
    /// The map has more regions than [`Limit::SparseRegions`] allows.
    TooManyRegions(LimitError),
}

impl fmt::Display for SparseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SparseError::Overlap { index } => write!(
                f,
                "sparse map region {index} overlaps or precedes the one before it"
            ),
            SparseError::PastEnd { index, real_size } => write!(
                f,
                "sparse map region {index} runs past the file's real size ({real_size} bytes)"
            ),
            SparseError::DataMismatch { mapped, stored } => write!(
                f,
                "sparse map describes {mapped} bytes of data but the member stores {stored}"
            ),
            SparseError::Malformed(what) => write!(f, "malformed sparse map: {what}"),
            SparseError::TooManyRegions(over) => over.fmt(f),
        }
    }
}

impl std::error::Error for SparseError {}
crate::error::invalid_input_errors!(SparseError);

/// A checked map: regions in order, inside `real_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    regions: Vec<Region>,
    real_size: u64,
}

impl SparseMap {
    /// Checks `regions` against `real_size` and the `stored` data length.
    pub fn new(regions: Vec<Region>, real_size: u64, stored: u64) -> Result<Self, SparseError> {
        check_region_count(regions.len() as u64)?;
        let mut end = 0u64;
        let mut mapped = 0u64;
        for (index, region) in regions.iter().enumerate() {
            if region.offset < end {
                return Err(SparseError::Overlap { index });
            }
            end = match region.offset.checked_add(region.length) {
                Some(end) if end <= real_size => end,
                _ => return Err(SparseError::PastEnd { index, real_size }),
            };
            mapped += region.length; // cannot overflow: bounded by `end`
        }
        if mapped != stored {
            return Err(SparseError::DataMismatch { mapped, stored });
        }
        Ok(SparseMap { regions, real_size })
    }

    /// The size of the expanded file.
    pub fn real_size(&self) -> u64 {
        self.real_size
    }

    /// The regions, in order.
    #[cfg(test)]
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
}

/// The `GNU.sparse.*` records of one PAX header, gathered as they come.
#[derive(Debug, Default)]
pub struct PaxSparse {
    seen: bool,
    version: Option<(u64, u64)>,
    real_size: Option<u64>,
    name: Option<Vec<u8>>,
    /// Offsets and lengths, alternating (versions 0.0 and 0.1).
    numbers: Vec<u64>,
    declared_regions: Option<u64>,
}

impl PaxSparse {
    /// Takes `key = value` if it is a sparse record; `Ok(false)` if not.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> Result<bool, SparseError> {
        let Some(field) = key.strip_prefix(b"GNU.sparse.") else {
            return Ok(false);
        };
        self.seen = true;
        match field {
            b"major" => self.version.get_or_insert((0, 0)).0 = number(value)?,
            b"minor" => self.version.get_or_insert((0, 0)).1 = number(value)?,
            b"size" | b"realsize" => self.real_size = Some(number(value)?),
            b"name" => self.name = Some(value.to_vec()),
            b"numblocks" => self.declared_regions = Some(number(value)?),
            b"offset" | b"numbytes" => {
                let expect_offset = self.numbers.len().is_multiple_of(2);
                if expect_offset != (field == b"offset") {
                    return Err(malformed("GNU.sparse.offset and numbytes out of turn"));
                }
                self.push(number(value)?)?;
            }
            b"map" => {
                for item in value.split(|&b| b == b',').filter(|s| !s.is_empty()) {
                    self.push(number(item)?)?;
                }
            }
            _ => {} // Unknown sparse records carry nothing we need.
        }
        Ok(true)
    }

    /// True if the header had sparse records.
    pub fn is_sparse(&self) -> bool {
        self.seen
    }

    /// The real name (`GNU.sparse.name`): the header's own name is a
    /// made-up `GNUSparseFile.NNN/...` path.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    fn push(&mut self, n: u64) -> Result<(), SparseError> {
        check_region_count(self.numbers.len() as u64 / 2 + 1)?;
        self.numbers.push(n);
        Ok(())
    }

    /// Reads the map (from the start of `data` for version 1.0) and checks
    /// it against the `stored` bytes of the member. Afterwards `data`
    /// yields the regions back to back.
    pub fn into_map(self, data: &mut dyn Read, stored: u64) -> Result<SparseMap, SparseError> {
        let real_size = self
            .real_size
            .ok_or_else(|| malformed("no GNU.sparse.size or GNU.sparse.realsize record"))?;
        let (numbers, stored) = match self.version {
            Some((1, 0)) => read_v1_map(data, stored)?,
            Some((0, _)) | None => {
                if let Some(n) = self.declared_regions {
                    if n.checked_mul(2) != Some(self.numbers.len() as u64) {
                        return Err(malformed("GNU.sparse.numblocks disagrees with the map"));
                    }
                }
                (self.numbers, stored)
            }
            Some((major, minor)) => {
                return Err(malformed(&format!(
                    "unknown PAX sparse version {major}.{minor}"
                )))
            }
        };
        if !numbers.len().is_multiple_of(2) {
            return Err(malformed("an offset without a length"));
        }
        let regions = numbers
            .chunks_exact(2)
            .map(|pair| Region {
                offset: pair[0],
                length: pair[1],
            })
            .collect();
        SparseMap::new(regions, real_size, stored)
    }
}

/// A map is held in memory while its member is read: its size is bounded.
fn check_region_count(regions: u64) -> Result<(), SparseError> {
    Limit::SparseRegions
        .check("sparse map", regions)
        .map_err(SparseError::TooManyRegions)
}

fn malformed(what: &str) -> SparseError {
    SparseError::Malformed(what.to_owned())
}

fn number(text: &[u8]) -> Result<u64, SparseError> {
    std::str::from_utf8(text)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            malformed(&format!(
                "{:?} is not a decimal number",
                String::from_utf8_lossy(text)
            ))
        })
}

/// Version 1.0 keeps the map in the data: the count of regions, then an
/// offset and a length per region, one decimal number a line, padded with
/// zeros to a block. Returns the numbers and the data left after the map.
fn read_v1_map(data: &mut dyn Read, stored: u64) -> Result<(Vec<u64>, u64), SparseError> {
    let mut lines = MapLines {
        data,
        block: [0; BLOCK],
        pos: BLOCK,
        consumed: 0,
        stored,
    };
    let count = lines.next_number()?;
    check_region_count(count)?;
    // Each number needs at least two bytes of the stored data: a count the
    // data cannot hold is refused before anything is reserved for it.
    if count.saturating_mul(4) > stored {
        return Err(malformed("the map is longer than the member's data"));
    }
    let mut numbers = Vec::with_capacity(2 * count as usize);
    for _ in 0..2 * count {
        numbers.push(lines.next_number()?);
    }
    Ok((numbers, stored - lines.consumed))
}

/// Decimal lines read a block at a time, so that the map's padding is
/// consumed and the data that follows is left untouched.
struct MapLines<'a> {
    data: &'a mut dyn Read,
    block: [u8; BLOCK],
    pos: usize,
    consumed: u64,
    stored: u64,
}

impl MapLines<'_> {
    fn next_number(&mut self) -> Result<u64, SparseError> {
        let mut digits = Vec::new();
        loop {
            if self.pos == BLOCK {
                self.next_block()?;
            }
            let byte = self.block[self.pos];
            self.pos += 1;
            match byte {
                b'\n' => return number(&digits),
                b'0'..=b'9' if digits.len() < 20 => digits.push(byte),
                _ => return Err(malformed("bad character in the map")),
            }
        }
    }

    fn next_block(&mut self) -> Result<(), SparseError> {
        if self.consumed + BLOCK as u64 > self.stored {
            return Err(malformed("the map is longer than the member's data"));
        }
        self.data.read_exact(&mut self.block).map_err(|e| {
            SparseError::Malformed(format!("cannot read the map from the data: {e}"))
        })?;
        self.consumed += BLOCK as u64;
        self.pos = 0;
        Ok(())
    }
}

/// The expanded contents of a sparse member: zeros for the holes, the
/// stored bytes for the regions. Memory does not depend on the file.
pub struct Expanded<R> {
    inner: R,
    map: SparseMap,
    /// The next region to reach or finish.
    next: usize,
    /// Position in the expanded file.
    pos: u64,
}

impl<R: Read> Expanded<R> {
    /// Expands the stored regions that `inner` yields according to `map`.
    pub fn new(inner: R, map: SparseMap) -> Self {
        Expanded {
            inner,
            map,
            next: 0,
            pos: 0,
        }
    }
}

impl<R: Read> Read for Expanded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (hole_end, data_end) = match self.map.regions.get(self.next) {
                Some(r) => (r.offset, r.offset + r.length),
                None => (self.map.real_size, self.map.real_size),
            };
            if buf.is_empty() || self.pos == self.map.real_size {
                return Ok(0);
            }
            if self.pos < hole_end {
                let n = (hole_end - self.pos).min(buf.len() as u64) as usize;
                buf[..n].fill(0);
                self.pos += n as u64;
                return Ok(n);
            }
            if self.pos < data_end {
                let want = (data_end - self.pos).min(buf.len() as u64) as usize;
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "sparse member data ends early",
                    ));
                }
                self.pos += n as u64;
                return Ok(n);
            }
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(offset: u64, length: u64) -> Region {
        Region { offset, length }
    }

    #[test]
    fn maps_are_checked() {
        let cases: &[(&[Region], u64, u64, Option<SparseError>)] = &[
            (&[r(0, 10), r(20, 5)], 30, 15, None),
            (&[r(30, 0)], 30, 0, None),
            (&[], 30, 0, None),
            (
                &[r(0, 10), r(5, 10)],
                30,
                20,
                Some(SparseError::Overlap { index: 1 }),
            ),
            (
                &[r(20, 5), r(0, 5)],
                30,
                10,
                Some(SparseError::Overlap { index: 1 }),
            ),
            (
                &[r(25, 10)],
                30,
                10,
                Some(SparseError::PastEnd {
                    index: 0,
                    real_size: 30,
                }),
            ),
            (
                &[r(u64::MAX, 2)],
                30,
                2,
                Some(SparseError::PastEnd {
                    index: 0,
                    real_size: 30,
                }),
            ),
            (
                &[r(0, 10)],
                30,
                11,
                Some(SparseError::DataMismatch {
                    mapped: 10,
                    stored: 11,
                }),
            ),
        ];
        for (regions, real, stored, want) in cases {
            let got = SparseMap::new(regions.to_vec(), *real, *stored).err();
            assert_eq!(&got, want, "{regions:?} in {real}, {stored} stored");
        }
    }

    fn expand(regions: &[Region], real: u64, stored: &[u8]) -> io::Result<Vec<u8>> {
        let map = SparseMap::new(regions.to_vec(), real, stored.len() as u64).unwrap();
        let mut out = Vec::new();
        // Tiny reads too, so every boundary is crossed mid-buffer.
        let mut reader = Expanded::new(stored, map);
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn expands_holes_as_zeros() {
        assert_eq!(
            expand(&[r(2, 3), r(7, 1)], 10, b"abcd").unwrap(),
            b"\0\0abc\0\0d\0\0"
        );
        assert_eq!(expand(&[r(10, 0)], 10, b"").unwrap(), [0; 10]);
        assert_eq!(expand(&[], 4, b"").unwrap(), [0; 4]);
        assert_eq!(expand(&[r(0, 4)], 4, b"full").unwrap(), b"full");
    }

    #[test]
    fn short_data_is_an_error() {
        let map = SparseMap::new(vec![r(0, 4)], 4, 4).unwrap();
        let mut out = Vec::new();
        let err = Expanded::new(&b"ab"[..], map)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    fn pax(records: &[(&str, &str)]) -> PaxSparse {
        let mut sparse = PaxSparse::default();
        for (k, v) in records {
            assert!(sparse.record(k.as_bytes(), v.as_bytes()).unwrap());
        }
        sparse
    }

    #[test]
    fn pax_versions_0_0_and_0_1() {
        let v00 = pax(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "10"),
            ("GNU.sparse.offset", "50"),
            ("GNU.sparse.numbytes", "5"),
        ]);
        let v01 = pax(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.map", "0,10,50,5"),
            ("GNU.sparse.name", "dir/file"),
        ]);
        assert_eq!(v01.name(), Some(&b"dir/file"[..]));
        for sparse in [v00, v01] {
            let map = sparse.into_map(&mut io::empty(), 15).unwrap();
            assert_eq!(map.regions(), [r(0, 10), r(50, 5)]);
            assert_eq!(map.real_size(), 100);
        }
    }

    fn v1_data(map: &str, data: &[u8]) -> Vec<u8> {
        let mut out = map.as_bytes().to_vec();
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out.extend_from_slice(data);
        out
    }

    fn v1() -> PaxSparse {
        pax(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "100"),
        ])
    }

    #[test]
    fn pax_version_1_0_reads_its_map_from_the_data() {
        let stored = v1_data("2\n0\n3\n90\n2\n", b"abcyz");
        let mut data = &stored[..];
        let map = v1().into_map(&mut data, stored.len() as u64).unwrap();
        assert_eq!(map.regions(), [r(0, 3), r(90, 2)]);
        assert_eq!(data, b"abcyz", "the data after the map is left");
    }

    #[test]
    fn hostile_pax_maps_are_refused() {
        let cases: &[(&str, &[u8])] = &[
            ("2\n0\n3\n", b"abc"),                    // map longer than the data
            ("1\n0\n3\n", b"ab"),                     // less data than mapped
            ("1\n99\n3\n", b"abc"),                   // past the real size
            ("2\n10\n3\n5\n3\n", b"abcdef"),          // out of order
            ("1\nx\n3\n", b"abc"),                    // not a number
            ("99999999999\n", b""),                   // more regions than data
            ("1\n0\n99999999999999999999999\n", b""), // overflowing number
        ];
        for (map, data) in cases {
            let stored = v1_data(map, data);
            let result = v1().into_map(&mut &stored[..], stored.len() as u64);
            assert!(result.is_err(), "{map:?} accepted");
        }
        let stored = b"1\n0\n3\n".to_vec(); // the map's block is cut short
        assert!(v1().into_map(&mut &stored[..], 6).is_err());
        let unknown = pax(&[("GNU.sparse.major", "2"), ("GNU.sparse.size", "1")]);
        assert!(unknown.into_map(&mut io::empty(), 0).is_err());
        let no_size = pax(&[("GNU.sparse.map", "0,1")]);
        assert!(no_size.into_map(&mut io::empty(), 1).is_err());
        let odd = pax(&[("GNU.sparse.size", "9"), ("GNU.sparse.map", "0,1,5")]);
        assert!(odd.into_map(&mut io::empty(), 1).is_err());
    }

    /// A GNU sparse member whose map lists `count` empty regions, one a
    /// byte apart: each costs the reader what a region of data does.
    fn gnu_map_of(count: u64) -> Vec<u8> {
        let regions: Vec<(u64, u64)> = (0..count).map(|i| (i, 0)).collect();
        testkit::Layer::new()
            .gnu_sparse("f", count - 1, &regions, b"")
            .tar()
    }

    /// Reads every member to its end; how long it took, or the error.
    fn read_timed(tar: &[u8]) -> (std::time::Duration, io::Result<u64>) {
        let start = std::time::Instant::now();
        let read = || -> io::Result<u64> {
            let mut total = 0;
            for entry in tar::Archive::new(tar).entries()? {
                total += io::copy(&mut entry?, &mut io::sink())?;
            }
            Ok(total)
        };
        let outcome = read();
        (start.elapsed(), outcome)
    }

    #[test]
    fn a_gnu_map_at_the_limit_reads_in_linear_time() {
        let (took, read) = read_timed(&gnu_map_of(Limit::SparseRegions.max()));
        assert_eq!(read.unwrap(), Limit::SparseRegions.max() - 1);
        assert!(took.as_millis() < 1000, "took {took:?}");
    }

    #[test]
    fn a_gnu_map_over_the_limit_is_refused_quickly() {
        for count in [Limit::SparseRegions.max() + 1, 200_000] {
            let (took, read) = read_timed(&gnu_map_of(count));
            let err = read.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{count}: {err}");
            assert_eq!(
                err.to_string(),
                "GNU sparse map has more regions than the limit of 65536"
            );
            assert!(took.as_millis() < 1000, "{count}: took {took:?}");
        }
    }

    #[test]
    fn pax_maps_share_the_region_limit() {
        let over = Limit::SparseRegions.max() + 1;
        let map: Vec<String> = (0..over)
            .flat_map(|i| [i.to_string(), "0".into()])
            .collect();
        let mut v01 = pax(&[("GNU.sparse.size", "1")]);
        let err = v01
            .record(b"GNU.sparse.map", map.join(",").as_bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sparse map has more regions than the limit of 65536"
        );
        let stored = v1_data(&format!("{over}\n"), &[0; 1 << 19]);
        let err = v1()
            .into_map(&mut &stored[..], stored.len() as u64)
            .unwrap_err();
        assert!(matches!(err, SparseError::TooManyRegions(_)), "{err}");
    }
}
