//! The two gzip inflate engines against each other: ISA-L (what the
//! binaries use) and flate2 over zlib-rs.
//!
//! Input: a byte choosing the read size the input arrives in (1 to 256
//! bytes, or whole), then the gzip stream.
//!
//! Properties: no panic, no memory error (ISA-L is C and assembly, driven
//! through raw pointers). Both engines accept the same streams, and give
//! the same bytes for them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::blob::gzip::{isal::IsalMembers, zlib_rs::ZlibRsMembers};
use std::io::{BufReader, Read};

/// Caps the decoded size: a tiny stream can inflate a thousandfold.
const MAX_OUTPUT: u64 = 64 << 20;

fn decode(engine: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    engine
        .take(MAX_OUTPUT)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, blob)) = data.split_first() else {
        return;
    };
    let chunk = if size == 0 { blob.len().max(1) } else { size as usize };
    let isal = decode(IsalMembers::new(BufReader::with_capacity(chunk, blob)));
    let zlib = decode(ZlibRsMembers::new(BufReader::with_capacity(chunk, blob)));
    if std::env::var_os("OCIRENDER_FUZZ_VERBOSE").is_some() {
        eprintln!("ISA-L: {:?}", isal.as_ref().map(Vec::len));
        eprintln!("zlib-rs: {:?}", zlib.as_ref().map(Vec::len));
    }
    match (&isal, &zlib) {
        (Ok(a), Ok(b)) => assert!(a == b, "the engines decoded different bytes"),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("only ISA-L accepted the stream; zlib-rs said: {e}"),
        (Err(e), Ok(_)) => panic!("only zlib-rs accepted the stream; ISA-L said: {e}"),
    }
});
