//! Both engines against the same rules: every member, zero padding, no
//! trailing garbage, no truncation, no corruption that goes unnoticed. The
//! input arrives through buffers of many sizes, down to one byte, so that
//! member boundaries, headers and trailers fall across reads.

use super::*;
use flate2::{Compression as Level, GzBuilder};
use proptest::prelude::*;
use std::io::{BufReader, Write};

type Engine = fn(BufReader<&[u8]>) -> Box<dyn Read + '_>;

fn engines() -> Vec<(&'static str, Engine)> {
    vec![
        ("zlib-rs", |input| {
            Box::new(zlib_rs::ZlibRsMembers::new(input))
        }),
        #[cfg(feature = "isal")]
        ("ISA-L", |input| Box::new(isal::IsalMembers::new(input))),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), Level::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Decodes `blob` with `engine`, reading it `chunk` bytes at a time, and
/// reading the output in 4 KiB pieces.
fn decode_with(engine: Engine, blob: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
    let mut decoder = engine(BufReader::with_capacity(chunk, blob));
    let mut out = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        match decoder.read(&mut piece)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&piece[..n]),
        }
    }
}

/// Checks that every engine, at every chunk size, gives `expected`.
fn assert_decodes(blob: &[u8], expected: &[u8]) {
    for (name, engine) in engines() {
        for chunk in [1, 3, 8, 61, 4096, 1 << 20] {
            let out = decode_with(engine, blob, chunk)
                .unwrap_or_else(|e| panic!("{name}, {chunk}-byte reads: {e}"));
            assert!(out == expected, "{name}, {chunk}-byte reads: wrong output");
        }
    }
}

/// Checks that every engine, at every chunk size, refuses `blob`.
fn assert_refused(blob: &[u8], what: &str) {
    for (name, engine) in engines() {
        for chunk in [1, 8, 4096] {
            assert!(
                decode_with(engine, blob, chunk).is_err(),
                "{name}, {chunk}-byte reads, accepted {what}"
            );
        }
    }
}

/// Data that compresses somewhat, like files in a layer.
fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * i / 7 % 251) as u8).collect()
}

#[test]
fn reads_every_member_and_zero_padding() {
    let mut blob = gzip(b"hello ");
    blob.extend(gzip(b""));
    blob.extend(gzip(b"world"));
    blob.extend([0u8; 700]);
    assert_decodes(&blob, b"hello world");
}

#[test]
fn reads_header_fields_and_a_header_crc() {
    let data = sample(100_000);
    let mut e = GzBuilder::new()
        .filename("layer.tar")
        .comment("made by a test")
        .extra(vec![b'A', b'B', 3, 0, 1, 2, 3])
        .mtime(1_700_000_000)
        .write(Vec::new(), Level::best());
    e.write_all(&data).unwrap();
    let blob = e.finish().unwrap();
    assert_decodes(&blob, &data);
}

#[test]
fn refuses_data_after_the_last_member() {
    let mut blob = gzip(b"hello");
    blob.extend(b"garbage");
    assert_refused(&blob, "garbage after the stream");
    let mut blob = gzip(b"hello");
    blob.extend([0, 0, 1]);
    assert_refused(&blob, "garbage after the zero padding");
}

#[test]
fn refuses_every_truncation() {
    let blob = gzip(&sample(3000));
    for cut in 0..blob.len() {
        // An empty input is no gzip stream at all; the caller sniffs first.
        if cut > 0 {
            assert_refused(&blob[..cut], &format!("the stream cut at {cut}"));
        }
    }
    let mut two = gzip(b"first");
    let first = two.len();
    two.extend(gzip(b"second"));
    for cut in first + 1..two.len() {
        assert_refused(&two[..cut], &format!("a second member cut at {cut}"));
    }
}

#[test]
fn refuses_a_wrong_crc_or_length() {
    let good = gzip(&sample(10_000));
    let n = good.len();
    for (at, what) in [(n - 8, "a wrong CRC-32"), (n - 4, "a wrong length")] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert_refused(&bad, what);
    }
}

#[test]
fn a_large_member_streams_through_small_buffers() {
    let data = sample(5 << 20);
    let blob = gzip(&data);
    for (name, engine) in engines() {
        let out = decode_with(engine, &blob, 8192).unwrap();
        assert!(out == data, "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any split of any data into members, with or without padding, reads
    /// back whole through every engine and buffer size.
    #[test]
    fn members_read_back(
        data in proptest::collection::vec(0u8..4, 0..20_000),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        padding in 0usize..600,
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut blob = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            blob.extend(gzip(&data[start..cut]));
            start = cut;
        }
        blob.extend(vec![0u8; padding]);
        assert_decodes(&blob, &data);
    }

    /// A damaged stream never decodes to wrong bytes: every engine either
    /// refuses it or (where the damage hit a field nothing checks, such as
    /// the modification time) returns the original data.
    #[test]
    fn damage_is_refused_or_harmless(
        data in proptest::collection::vec(0u8..8, 1..5_000),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut blob = gzip(&data);
        for (at, mask) in flips {
            let at = at.index(blob.len());
            blob[at] ^= mask;
        }
        for (name, engine) in engines() {
            if let Ok(out) = decode_with(engine, &blob, 61) {
                prop_assert!(out == data, "{} decoded damaged data to wrong bytes", name);
            }
        }
    }
}
