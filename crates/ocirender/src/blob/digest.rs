//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and their verification.
//!
//! An OCI layout names every blob by the digest of its bytes, so a file at
//! `blobs/sha256/<hex>` carries its own checksum. Verifying while streaming
//! costs one pass of SHA-2 over the compressed bytes, which is cheap next to
//! decompression, and it is the only thing standing between a corrupted or
//! tampered blob and a silently wrong root filesystem.

use sha2::Digest as _;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, the algorithm every registry uses.
    Sha256,
    /// SHA-512, allowed by the image-spec.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and layout directories.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A parsed, validated digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a usable digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    Malformed(String),
    /// Well formed, but not an algorithm we verify.
    UnsupportedAlgorithm(String),
    /// The hex part has the wrong length or characters.
    BadHex(String),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Malformed(s) => write!(f, "malformed digest {s:?}"),
            DigestError::UnsupportedAlgorithm(s) => {
                write!(
                    f,
                    "unsupported digest algorithm {s:?} (sha256 and sha512 are supported)"
                )
            }
            DigestError::BadHex(s) => write!(f, "malformed digest {s:?}: bad hex encoding"),
        }
    }
}

impl std::error::Error for DigestError {}
crate::error::invalid_input_errors!(DigestError);

impl Digest {
    /// Builds a digest from an algorithm and its lowercase hex encoding.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        let valid = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadHex(format!("{}:{hex}", algorithm.name())));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of a byte slice.
    pub fn of_bytes(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The digest a blob path declares through its name, when the path has
    /// the layout shape `.../<algorithm>/<hex>`; `None` for any other name.
    pub fn from_blob_path(path: &Path) -> Option<Digest> {
        let hex = path.file_name()?.to_str()?;
        let algorithm = path.parent()?.file_name()?.to_str()?;
        Digest::new(Algorithm::from_name(algorithm)?, hex).ok()
    }

    /// The relative path of this blob inside an OCI layout (`blobs/<alg>/<hex>`).
    pub fn layout_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, DigestError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_owned()))?;
        let algorithm = Algorithm::from_name(algorithm)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(algorithm.to_owned()))?;
        Digest::new(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hash of either supported algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints() {
        let d: Digest = format!("sha256:{EMPTY_SHA256}").parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY_SHA256}"));
        assert_eq!(d.layout_path(), format!("blobs/sha256/{EMPTY_SHA256}"));
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            "sha256".parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "sha256:abc".parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
        let upper = EMPTY_SHA256.to_uppercase();
        assert!(matches!(
            format!("sha256:{upper}").parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
    }

    #[test]
    fn hashes_bytes() {
        assert_eq!(Digest::of_bytes(Algorithm::Sha256, b"").hex(), EMPTY_SHA256);
        let d = Digest::of_bytes(Algorithm::Sha512, b"abc");
        assert!(d.hex().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn blob_paths_declare_digests() {
        let p = format!("/x/blobs/sha256/{EMPTY_SHA256}");
        assert_eq!(
            Digest::from_blob_path(Path::new(&p)).unwrap().hex(),
            EMPTY_SHA256
        );
        assert!(Digest::from_blob_path(Path::new("/x/layer.tar")).is_none());
        assert!(Digest::from_blob_path(Path::new("/x/md5/abc")).is_none());
    }
}
