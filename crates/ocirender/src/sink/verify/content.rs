//! File data compared by digest: SHA-256 of the stream's bytes and of the
//! output's file, each read in fixed-size pieces, so neither side is held
//! in memory whatever its size, and a difference names both digests.

use crate::error::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;

const PIECE: usize = 256 << 10;

/// `sha256:<hex>` of exactly `size` bytes of an entry's data (an error if
/// the stream ends first).
pub fn entry_digest(data: &mut dyn Read, size: u64, buffer: &mut [u8]) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut done = 0;
    while done < size {
        let want = (size - done).min(buffer.len() as u64) as usize;
        let n = crate::tar::read_entry_data(data, &mut buffer[..want], done, size)
            .context("cannot read entry data")?;
        hasher.update(&buffer[..n]);
        done += n as u64;
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// `sha256:<hex>` of everything `file` holds.
pub fn file_digest(file: &mut dyn Read, buffer: &mut [u8]) -> Result<String> {
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => return Ok(format!("sha256:{:x}", hasher.finalize())),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(crate::error::Error::from(e).context("cannot read")),
        }
    }
}

/// A buffer for either.
pub fn buffer() -> Vec<u8> {
    vec![0; PIECE]
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn both_sides_digest_alike_and_short_data_is_an_error() {
        let mut buffer = vec![0; 3];
        let data = b"0123456789";
        let entry = entry_digest(&mut &data[..], 10, &mut buffer).unwrap();
        assert_eq!(entry, file_digest(&mut &data[..], &mut buffer).unwrap());
        assert_eq!(entry_digest(&mut &b""[..], 0, &mut buffer).unwrap(), EMPTY);
        let short = entry_digest(&mut &data[..], 11, &mut buffer).unwrap_err();
        assert!(
            format!("{short:#}").contains("after 10 of 11 bytes"),
            "{short:#}"
        );
    }
}
