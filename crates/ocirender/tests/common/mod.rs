//! Running the merge on layers built in memory.

#![allow(dead_code)]

use ocirender::layer::LayerRef;
use ocirender::layer::{Algorithm, Digest};
use ocirender::merge::{merge, MergeOptions};
use std::collections::BTreeMap;
use tar::EntryType;
use testkit::{read_tar, Entry, Layer};

/// The outcome of a merge: output bytes (or the error) and warnings.
pub struct Outcome {
    pub result: Result<Vec<u8>, String>,
    /// What was written, complete or not.
    pub output: Vec<u8>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn entries(&self) -> Vec<Entry> {
        match &self.result {
            Ok(bytes) => read_tar(bytes),
            Err(e) => panic!("merge failed: {e}"),
        }
    }

    /// `path -> description` of the output, asserting each path once.
    pub fn tree(&self) -> BTreeMap<String, String> {
        let mut tree = BTreeMap::new();
        for e in self.entries() {
            let path = e.path.trim_end_matches('/').to_owned();
            let what = describe(&e);
            assert!(
                tree.insert(path.clone(), what).is_none(),
                "{path} written twice"
            );
        }
        tree
    }

    pub fn error(&self) -> String {
        self.result
            .as_ref()
            .err()
            .cloned()
            .expect("merge should fail")
    }

    pub fn warned(&self, needle: &str) -> bool {
        self.warnings.iter().any(|w| w.contains(needle))
    }
}

pub fn describe(e: &Entry) -> String {
    match e.kind {
        EntryType::Directory => format!("dir {:o}", e.mode),
        EntryType::Regular => format!("file {}", String::from_utf8_lossy(&e.data)),
        EntryType::Symlink => format!("symlink {}", e.link),
        EntryType::Link => format!("hardlink {}", e.link),
        other => format!("{other:?}"),
    }
}

/// Merges raw blobs (base first).
pub fn merge_blobs(blobs: &[Vec<u8>]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<LayerRef> = blobs
        .iter()
        .enumerate()
        .map(|(i, blob)| {
            let path = dir.path().join(format!("layer{i}"));
            std::fs::write(&path, blob).unwrap();
            LayerRef::file(path)
        })
        .collect();
    merge_refs(&refs)
}

/// Merges raw blobs (base first), each stored the way an OCI layout
/// stores it, at `.../blobs/sha256/<hex>`, so that the merge verifies it.
/// The name is `declared[i]` when given (the digest the blob should have),
/// else the digest of the blob itself.
pub fn merge_blobs_verified(blobs: &[Vec<u8>], declared: &[Option<Digest>]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<LayerRef> = blobs
        .iter()
        .enumerate()
        .map(|(i, blob)| {
            let digest = declared
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Digest::of_bytes(Algorithm::Sha256, blob));
            // One layout per layer: two layers may declare one digest.
            let path = dir
                .path()
                .join(format!("layer{i}"))
                .join(digest.layout_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, blob).unwrap();
            let layer = LayerRef::file(path);
            assert_eq!(
                layer.digest.as_ref(),
                Some(&digest),
                "a layout blob path declares its digest"
            );
            layer
        })
        .collect();
    merge_refs(&refs)
}

pub fn merge_refs(refs: &[LayerRef]) -> Outcome {
    let mut warnings = Vec::new();
    let mut warn = |w: &str| warnings.push(w.to_owned());
    let mut out = Vec::new();
    let result = merge(refs, &mut out, &MergeOptions::default(), &mut warn);
    let result = match result {
        Ok(_) => Ok(out.clone()),
        Err(e) => Err(format!("{e:#}")),
    };
    Outcome {
        result,
        output: out,
        warnings,
    }
}

/// Merges layers (base first), uncompressed.
pub fn merge_layers(layers: &[Layer]) -> Outcome {
    merge_blobs(&layers.iter().map(Layer::tar).collect::<Vec<_>>())
}

/// Builds an expected tree from `(path, description)` pairs.
pub fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, d)| (p.to_string(), d.to_string()))
        .collect()
}

/// Property-test cases to run: `PROPTEST_CASES` if set, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// True if `bytes` is a complete archive: the `tar` crate reads every entry
/// and all its data, and what follows the last entry is the end-of-archive
/// marker (at least two zero blocks, nothing else). A stream cut at an entry
/// boundary reads cleanly with the `tar` crate, which does not insist on the
/// marker, but is not complete; one cut inside data, or one whose last
/// entry's data merely ends in zeros, is not complete either.
pub fn is_complete_archive(bytes: &[u8]) -> bool {
    let mut end = 0u64;
    let mut archive = tar::Archive::new(bytes);
    let Ok(entries) = archive.entries() else {
        return false;
    };
    for entry in entries {
        let Ok(mut entry) = entry else {
            return false;
        };
        let size = entry.size();
        match std::io::copy(&mut entry, &mut std::io::sink()) {
            Ok(n) if n == size => {}
            _ => return false,
        }
        end = entry.raw_file_position() + size.div_ceil(512) * 512;
    }
    let rest = &bytes[(end as usize).min(bytes.len())..];
    rest.len() >= 1024 && rest.len().is_multiple_of(512) && rest.iter().all(|&b| b == 0)
}
