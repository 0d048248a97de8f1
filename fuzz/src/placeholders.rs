//! Digests in fuzzed image documents. The fuzzer cannot guess a SHA-256,
//! so documents name the blobs a target stores through placeholders
//! (`$CD` a digest `sha256:<hex>`, `$CH` its bare hex, `$CS` the size),
//! which the target replaces with the real values before using them.

use crate::{replace, sha256_hex};

/// A blob a target stores, and its digest.
pub struct Blob {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its SHA-256, in hex.
    pub hex: String,
}

impl Blob {
    /// A blob of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Blob {
        let hex = sha256_hex(&bytes);
        Blob { bytes, hex }
    }

    /// Its placeholders and their values: `$<prefix>D`, `H` and `S`.
    pub fn values(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("${prefix}D"), format!("sha256:{}", self.hex)),
            (format!("${prefix}H"), self.hex.clone()),
            (format!("${prefix}S"), self.bytes.len().to_string()),
        ]
    }
}

/// `piece` with every placeholder of `values` replaced.
pub fn substitute(piece: &[u8], values: &[(String, String)]) -> Vec<u8> {
    let mut out = piece.to_vec();
    for (from, to) in values {
        out = replace(&out, from.as_bytes(), to.as_bytes());
    }
    out
}
