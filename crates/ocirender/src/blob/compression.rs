//! Compression formats of layer blobs, recognised by their magic bytes.
//!
//! Media types and file names are labels that tools get wrong (Docker's
//! `.tar.gzip`, uncompressed layers labelled `+gzip`), so the bytes decide.
//! Every format is decoded to its very end: all gzip members (eStargz is a
//! chain of them), all zstd frames including skippable ones, all xz streams
//! and all bzip2 streams.

use std::fmt;
use std::io::{self, BufRead, Read};

const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// Largest zstd window accepted: what `zstd --long=31` produces.
const ZSTD_WINDOW_LOG_MAX: u32 = 31;

/// A layer blob's compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
    /// xz, possibly several streams.
    Xz,
    /// bzip2, possibly several streams.
    Bzip2,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        })
    }
}

impl Compression {
    /// Recognises a format from the first bytes of a blob (at least six
    /// bytes, when the blob has them).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(crate::blob::gzip::MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) || is_zstd_skippable(head) {
            Compression::Zstd
        } else if head.starts_with(XZ_MAGIC) {
            Compression::Xz
        } else if head.starts_with(BZIP2_MAGIC) {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    /// Wraps `input` in a decoder for this format.
    pub fn decoder<'a, R: BufRead + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => crate::blob::gzip::decoder(input),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(decoder)
            }
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    u64::MAX,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::bufread::XzDecoder::new_stream(input, stream))
            }
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        })
    }
}

/// Skippable frames (magic 0x184D2A50..=0x184D2A5F, little endian) may lead a
/// zstd stream; the decoder passes over them.
fn is_zstd_skippable(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Write};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(blob: &[u8]) -> io::Result<Vec<u8>> {
        let c = Compression::sniff(blob);
        let mut out = Vec::new();
        c.decoder(BufReader::new(blob))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sniffs_magic_numbers() {
        assert_eq!(Compression::sniff(&gzip(b"x")), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&zstd::encode_all(&b"x"[..], 1).unwrap()),
            Compression::Zstd
        );
        assert_eq!(
            Compression::sniff(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(XZ_MAGIC), Compression::Xz);
        assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(Compression::sniff(b"usr/\0\0\0"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
    }

    #[test]
    fn reads_all_zstd_frames_and_skippable_frames() {
        let mut blob = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        blob.extend(zstd::encode_all(&b"hello "[..], 3).unwrap());
        blob.extend([0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        blob.extend(zstd::encode_all(&b"world"[..], 3).unwrap());
        assert_eq!(decode(&blob).unwrap(), b"hello world");
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let blob = zstd::encode_all(&vec![7u8; 100_000][..], 3).unwrap();
        assert!(decode(&blob[..blob.len() - 3]).is_err());
    }

    #[test]
    fn reads_concatenated_xz_and_bzip2() {
        let xz = |d: &[u8]| {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        let bz = |d: &[u8]| {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(decode(&[xz(b"ab"), xz(b"cd")].concat()).unwrap(), b"abcd");
        assert_eq!(decode(&[bz(b"ab"), bz(b"cd")].concat()).unwrap(), b"abcd");
        let x = xz(&vec![1u8; 50_000]);
        assert!(decode(&x[..x.len() - 5]).is_err());
        let b = bz(&vec![1u8; 50_000]);
        assert!(decode(&b[..b.len() - 5]).is_err());
    }
}
