//! `--store DIR`: an OCI image layout that many images share.
//!
//! Blobs are named by digest, so an image that shares layers with one
//! already stored fetches only what is new. A blob is written under a
//! temporary name beside its final one, checked, flushed, and renamed: a
//! blob under its real name is complete and verified, whatever killed a
//! download. Two processes fetching the same blob both write it and
//! rename the same bytes into place. `index.json` is rewritten under an
//! exclusive lock (`.oci-fetch.lock`, an extra file the layout spec
//! permits) by write-and-rename, so concurrent runs add their references
//! without losing another's and readers never see half a file.

use crate::blob::digest::{Digest, Hasher};
use crate::image::spec;
use crate::temporaries;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An OCI image layout directory used as a shared cache.
#[derive(Debug, Clone)]
pub struct LayoutStore {
    root: PathBuf,
}

impl LayoutStore {
    /// Opens the layout at `root`, creating it (and `oci-layout`) if needed.
    pub fn open(root: &Path) -> Result<LayoutStore> {
        let root = std::path::absolute(root)
            .with_context(|| format!("{}: cannot open", root.display()))?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("{}: cannot create the store", root.display()))?;
        let store = LayoutStore { root };
        let marker = store.root.join("oci-layout");
        if !marker.exists() {
            store.write_atomically(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(store)
    }

    /// The layout's directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or will be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.layout_path())
    }

    /// Whether the store holds `digest` with the expected size. Content is
    /// checked when read: `oci-merge` verifies every layer it streams.
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Stores a blob already in memory (an index, manifest or config).
    pub fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        if self.has(digest, bytes.len() as u64) {
            return Ok(());
        }
        self.put(digest, bytes.len() as u64, &mut &bytes[..])
    }

    /// Stores a blob streamed from `reader`, checking its size and digest
    /// before it becomes visible.
    pub fn put(&self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<()> {
        let path = self.blob_path(digest);
        let dir = path.parent().expect("a blob path has a parent");
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", digest.hex()))
            .suffix(".partial")
            .permissions(readable_by_all())
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
        let _registration = temporaries::register(temp.path());
        let mut hasher = Hasher::new(digest.algorithm());
        let written = copy_hashing(reader, temp.as_file_mut(), &mut hasher)
            .with_context(|| format!("{}: cannot store", path.display()))?;
        let actual = hasher.finish();
        if written != size {
            bail!("{digest}: size mismatch: expected {size} bytes, got {written}");
        }
        if &actual != digest {
            bail!("{digest}: digest mismatch: content has {actual}");
        }
        temp.as_file()
            .sync_data()
            .with_context(|| format!("{}: cannot flush", temp.path().display()))?;
        temp.persist(&path)
            .with_context(|| format!("{}: cannot rename into place", path.display()))?;
        Ok(())
    }

    /// Records `descriptor` in `index.json` under `name` (replacing an
    /// entry of that name: a tag that moved), so that `oci-layers --tag
    /// NAME DIR` finds it offline.
    pub fn record(&self, name: &str, descriptor: Value) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.root.join("index.json");
        let mut index = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .with_context(|| format!("{}: malformed JSON", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({
                "schemaVersion": 2,
                "mediaType": spec::OCI_INDEX,
                "manifests": [],
            }),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        };
        let Some(manifests) = index.get_mut("manifests").and_then(Value::as_array_mut) else {
            bail!("{}: no manifests array", path.display());
        };
        manifests.retain(|entry| {
            entry
                .pointer("/annotations")
                .and_then(|a| a.get(spec::REF_NAME))
                .and_then(Value::as_str)
                != Some(name)
        });
        manifests.push(descriptor);
        let mut bytes = serde_json::to_vec_pretty(&index)?;
        bytes.push(b'\n');
        self.write_atomically(&path, &bytes)
    }

    /// Holds the store's lock until dropped.
    fn lock(&self) -> Result<File> {
        let path = self.root.join(".oci-fetch.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("{}: cannot lock", path.display()))?;
        Ok(file)
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().expect("store files have a parent");
        let mut temp = tempfile::Builder::new()
            .prefix(".oci-fetch.")
            .permissions(readable_by_all())
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_data())
            .with_context(|| format!("{}: cannot write", temp.path().display()))?;
        temp.persist(path)
            .with_context(|| format!("{}: cannot rename into place", path.display()))?;
        Ok(())
    }
}

/// Blobs are shared content, readable as any file the user creates (the
/// umask applies), not private like a temporary file.
fn readable_by_all() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

/// Copies `reader` into `out`, hashing; returns the byte count.
fn copy_hashing(reader: &mut dyn Read, out: &mut File, hasher: &mut Hasher) -> Result<u64> {
    let mut buf = vec![0; 256 << 10];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).context("cannot write")?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::digest::Algorithm;

    #[test]
    fn a_blob_appears_only_complete_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open(dir.path()).unwrap();
        let data = b"layer bytes".repeat(1000);
        let digest = Digest::of_bytes(Algorithm::Sha256, &data);
        let err = store
            .put(&digest, data.len() as u64, &mut &data[..100])
            .unwrap_err();
        assert!(format!("{err:#}").contains("size mismatch"), "{err:#}");
        let mut wrong = data.clone();
        wrong[7] ^= 1;
        let err = store
            .put(&digest, data.len() as u64, &mut &wrong[..])
            .unwrap_err();
        assert!(format!("{err:#}").contains("digest mismatch"), "{err:#}");
        assert!(!store.has(&digest, data.len() as u64));
        let leftovers: Vec<_> = std::fs::read_dir(store.blob_path(&digest).parent().unwrap())
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        store.put_bytes(&digest, &data).unwrap();
        assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), data);
    }

    #[test]
    fn recording_a_name_again_replaces_its_entry_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open(dir.path()).unwrap();
        let entry = |name: &str, digest: &str| {
            json!({"mediaType": spec::OCI_MANIFEST, "digest": digest, "size": 1,
                   "annotations": {spec::REF_NAME: name}})
        };
        store.record("a:1", entry("a:1", "sha256:aa")).unwrap();
        store.record("b:1", entry("b:1", "sha256:bb")).unwrap();
        store.record("a:1", entry("a:1", "sha256:cc")).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let digests: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, ["sha256:bb", "sha256:cc"]);
    }
}
