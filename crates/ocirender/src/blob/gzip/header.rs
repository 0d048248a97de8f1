//! The gzip member header (RFC 1952, section 2.3), read and checked so that
//! an inflate engine only sees the deflate data and trailer after it.
//!
//! ISA-L can parse headers itself, but its streaming parser loses its place
//! when a header with two or more of the optional name, comment and extra
//! fields arrives over several reads, and then reports a valid member as an
//! invalid deflate block. Member boundaries fall anywhere in a multi-member
//! layer, so headers do arrive split; reading them here keeps that exact.
//! The optional fields are skipped as they stream by, never stored, so a
//! hostile header cannot make memory grow.

use flate2::Crc;
use std::io::{self, BufRead};

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const RESERVED: u8 = 0b1110_0000;
/// The only compression method gzip defines.
const DEFLATE: u8 = 8;

/// Reads one member header from `input`, leaving it at the first byte of
/// the deflate data.
pub fn skip_header<R: BufRead>(input: &mut R) -> io::Result<()> {
    let mut crc = Crc::new();
    let mut fixed = [0u8; 10];
    read_exact(input, &mut fixed, &mut crc)?;
    if fixed[..2] != super::MAGIC[..] {
        return Err(invalid("not a gzip member header"));
    }
    if fixed[2] != DEFLATE {
        return Err(invalid("unsupported gzip compression method"));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(invalid("reserved gzip header flags are set"));
    }
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        read_exact(input, &mut len, &mut crc)?;
        skip_bytes(input, u16::from_le_bytes(len).into(), &mut crc)?;
    }
    if flags & FNAME != 0 {
        skip_through_nul(input, &mut crc)?;
    }
    if flags & FCOMMENT != 0 {
        skip_through_nul(input, &mut crc)?;
    }
    if flags & FHCRC != 0 {
        let expected = crc.sum() as u16;
        let mut stored = [0u8; 2];
        read_exact(input, &mut stored, &mut Crc::new())?;
        if u16::from_le_bytes(stored) != expected {
            return Err(invalid("gzip header checksum mismatch"));
        }
    }
    Ok(())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the gzip data ends inside a member header",
    )
}

fn read_exact<R: BufRead>(input: &mut R, buf: &mut [u8], crc: &mut Crc) -> io::Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => cut_short(),
        _ => e,
    })?;
    crc.update(buf);
    Ok(())
}

fn skip_bytes<R: BufRead>(input: &mut R, mut count: usize, crc: &mut Crc) -> io::Result<()> {
    while count > 0 {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Err(cut_short());
        }
        let n = available.len().min(count);
        crc.update(&available[..n]);
        input.consume(n);
        count -= n;
    }
    Ok(())
}

/// Skips a zero-terminated field, the terminator included.
fn skip_through_nul<R: BufRead>(input: &mut R, crc: &mut Crc) -> io::Result<()> {
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Err(cut_short());
        }
        let (n, done) = match available.iter().position(|&b| b == 0) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        crc.update(&available[..n]);
        input.consume(n);
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// A header with the given flags and fields, then `rest`.
    fn header(flags: u8, fields: &[&[u8]], rest: &[u8]) -> Vec<u8> {
        let mut h = vec![0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3];
        for field in fields {
            h.extend_from_slice(field);
        }
        if flags & FHCRC != 0 {
            let mut crc = Crc::new();
            crc.update(&h);
            h.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
        }
        h.extend_from_slice(rest);
        h
    }

    /// What `skip_header` says, and the bytes it left, reading one byte at
    /// a time.
    fn skip(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut input = BufReader::with_capacity(1, bytes);
        skip_header(&mut input).map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        input.read_to_end(&mut rest).unwrap();
        Ok(rest)
    }

    #[test]
    fn skips_every_combination_of_fields() {
        let extra: &[u8] = &[4, 0, b'A', b'B', 0, 0];
        for flags in 0..32u8 {
            let mut fields = Vec::new();
            if flags & FEXTRA != 0 {
                fields.push(extra);
            }
            if flags & FNAME != 0 {
                fields.push(b"layer.tar\0");
            }
            if flags & FCOMMENT != 0 {
                fields.push(b"a comment\0");
            }
            let bytes = header(flags, &fields, b"DEFLATE");
            assert_eq!(
                skip(&bytes).as_deref(),
                Ok(&b"DEFLATE"[..]),
                "flags {flags:#07b}"
            );
        }
    }

    #[test]
    fn refuses_bad_headers() {
        let mut wrong_crc = header(FHCRC, &[], b"x");
        wrong_crc[10] ^= 1;
        let mut not_deflate = header(0, &[], b"x");
        not_deflate[2] = 7;
        let mut cut_crc = header(FHCRC, &[], b"");
        cut_crc.truncate(11);
        let cases: &[(&str, Vec<u8>, &str)] = &[
            (
                "wrong magic",
                b"\x1f\x8c\x08\0\0\0\0\0\0\x03x".to_vec(),
                "not a gzip member header",
            ),
            (
                "method 7",
                not_deflate,
                "unsupported gzip compression method",
            ),
            (
                "reserved flag",
                header(0x20, &[], b"x"),
                "reserved gzip header flags are set",
            ),
            ("header CRC", wrong_crc, "gzip header checksum mismatch"),
            (
                "cut in the fixed part",
                header(0, &[], b"")[..6].to_vec(),
                "ends inside a member header",
            ),
            (
                "cut in extra",
                header(FEXTRA, &[&[9, 0, 1]], b""),
                "ends inside a member header",
            ),
            (
                "unterminated name",
                header(FNAME, &[b"name"], b""),
                "ends inside a member header",
            ),
            ("cut before the CRC", cut_crc, "ends inside a member header"),
        ];
        for (what, bytes, message) in cases {
            let err = skip(bytes).expect_err(what);
            assert!(err.contains(message), "{what}: {err}");
        }
    }
}
