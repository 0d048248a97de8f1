//! `--store DIR`: an OCI image layout that many images share.
//!
//! Blobs are named by digest, so an image that shares layers with one
//! already stored fetches only what is new. A blob is written under a
//! temporary name beside its final one, checked, flushed, and renamed: a
//! blob under its real name was complete and verified when it was put
//! there, whatever killed a download (a temporary `.HEX.*.partial` left by
//! `kill -9` is never read). Two processes fetching the same blob both
//! write it and rename the same bytes into place. `index.json` is
//! rewritten under an exclusive lock (`.oci-fetch.lock`, an extra file the
//! layout spec permits) by write-and-rename, so concurrent runs add their
//! references without losing another's and readers never see half a file.
//!
//! What is in the store is not trusted blindly: a blob may have been
//! zeroed, truncated, or replaced by a symlink since. The first time a run
//! uses a stored blob it is read and hashed again (one pass of SHA-2, far
//! cheaper than the download it saves); one that does not match is
//! reported in one warning, fetched again and renamed over the bad one.
//! Hashing once per run is simpler and safer than a "verified" marker,
//! which whoever can damage a blob could keep or forge.
//!
//! The store may be shared, so nothing in it is followed: every file is
//! opened relative to the directory's descriptor with `O_NOFOLLOW`
//! ([`super::nofollow`]). A symlink planted as `.oci-fetch.lock` or
//! `index.json` is refused; one planted as a blob is a bad blob, replaced.
//! `index.json` is read and checked when the store is opened, before
//! anything is downloaded.

use super::nofollow;
use crate::blob::digest::{Algorithm, Digest, Hasher};
use crate::image::spec;
use crate::image::store::MAX_SMALL_BLOB;
use crate::temporaries;
use anyhow::{bail, Context, Result};
use rustix::fs::OFlags;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const INDEX: &[u8] = b"index.json";
const LOCK: &[u8] = b".oci-fetch.lock";
const LAYOUT_MARKER: &[u8] = b"oci-layout";

/// Where warnings about the store's content go (one line each).
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// An OCI image layout directory used as a shared cache.
#[derive(Clone)]
pub struct LayoutStore {
    shared: Arc<Shared>,
}

struct Shared {
    root: PathBuf,
    dir: OwnedFd,
    /// What each stored blob this run looked at turned out to be, so a
    /// blob is hashed (and a bad one reported) once per run.
    checked: Mutex<HashMap<Digest, Checked>>,
    warn: Warn,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Checked {
    Good,
    Bad,
}

impl LayoutStore {
    /// Opens the layout at `root`, creating it (and `oci-layout`) if
    /// needed, and checks its `index.json`.
    pub fn open(root: &Path, warn: Warn) -> Result<LayoutStore> {
        let root = std::path::absolute(root)
            .with_context(|| format!("{}: cannot open", root.display()))?;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("{}: cannot create the store", root.display()))?;
        // The directory the user named is theirs to point anywhere;
        // nothing inside it is followed.
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("{}: cannot open the store", root.display()))?;
        let store = LayoutStore {
            shared: Arc::new(Shared {
                root,
                dir,
                checked: Mutex::new(HashMap::new()),
                warn,
            }),
        };
        store.read_index()?;
        let marker = nofollow::read_file(store.dir(), LAYOUT_MARKER, MAX_SMALL_BLOB)
            .with_context(|| store.describe(LAYOUT_MARKER))?;
        if marker.is_none() {
            store.write_atomically(LAYOUT_MARKER, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(store)
    }

    /// The layout's directory (absolute).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Where the blob `digest` is (or will be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root().join(digest.layout_path())
    }

    /// Whether the store holds `digest`, `size` bytes, as its digest says:
    /// hashed the first time this run asks. A blob that is there but bad
    /// is reported (once) and counts as absent, to be fetched again.
    pub fn has(&self, digest: &Digest, size: u64) -> Result<bool> {
        if let Some(checked) = self.checked(digest) {
            return Ok(checked == Checked::Good);
        }
        let Some(file) = self.open_blob(digest)? else {
            return Ok(false);
        };
        Ok(self.judge(digest, verify(&file, digest, size, None)))
    }

    /// The bytes of a small stored blob (an index, manifest or config),
    /// verified; `None` if absent or bad (reported).
    pub fn read(&self, digest: &Digest, size: u64) -> Result<Option<Vec<u8>>> {
        if size > MAX_SMALL_BLOB || self.checked(digest) == Some(Checked::Bad) {
            return Ok(None);
        }
        let Some(file) = self.open_blob(digest)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        let outcome = verify(&file, digest, size, Some(&mut bytes));
        Ok(self.judge(digest, outcome).then_some(bytes))
    }

    /// Stores a blob already in memory (an index, manifest or config),
    /// unless a good copy is there.
    pub fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        if self.has(digest, bytes.len() as u64)? {
            return Ok(());
        }
        self.put(digest, bytes.len() as u64, &mut &bytes[..])
    }

    /// Stores a blob streamed from `reader`, checking its size and digest
    /// before it becomes visible; it replaces whatever was under its name.
    pub fn put(&self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<()> {
        let path = self.blob_path(digest);
        let dir = self.blob_dir(digest.algorithm())?;
        let (temp, mut file) = nofollow::create_unique(
            dir.as_fd(),
            &format!(".{}.", digest.hex()),
            ".partial",
            0o644,
        )
        .with_context(|| format!("{}: cannot create a temporary file", path.display()))?;
        let _registration = temporaries::register(&path.with_file_name(&temp));
        let stored = (|| {
            let mut hasher = Hasher::new(digest.algorithm());
            let written = copy_hashing(reader, &mut file, &mut hasher)
                .with_context(|| format!("{}: cannot store", path.display()))?;
            let actual = hasher.finish();
            if written != size {
                bail!("{digest}: size mismatch: expected {size} bytes, got {written}");
            }
            if &actual != digest {
                bail!("{digest}: digest mismatch: content has {actual}");
            }
            file.sync_data()
                .with_context(|| format!("{}: cannot flush", path.display()))?;
            nofollow::rename(dir.as_fd(), &temp, digest.hex().as_bytes())
                .with_context(|| format!("{}: cannot rename into place", path.display()))
        })();
        if stored.is_err() {
            nofollow::remove_file(dir.as_fd(), temp.as_bytes());
        } else {
            self.remember(digest, Checked::Good);
        }
        stored
    }

    /// Records `descriptor` in `index.json` under `name` (replacing an
    /// entry of that name: a tag that moved), so that `oci-layers --tag
    /// NAME DIR` finds it offline.
    pub fn record(&self, name: &str, descriptor: Value) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .expect("read_index checks the manifests array");
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
        self.write_atomically(INDEX, &bytes)
    }

    /// `index.json`, checked to be an index (an empty one if absent).
    fn read_index(&self) -> Result<Value> {
        let path = self.describe(INDEX);
        let Some(bytes) =
            nofollow::read_file(self.dir(), INDEX, MAX_SMALL_BLOB).with_context(|| path.clone())?
        else {
            return Ok(json!({
                "schemaVersion": 2,
                "mediaType": spec::OCI_INDEX,
                "manifests": [],
            }));
        };
        let index: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{path}: malformed JSON"))?;
        if !index.get("manifests").is_some_and(Value::is_array) {
            bail!("{path}: not an image index (no manifests array)");
        }
        Ok(index)
    }

    /// Holds the store's lock until dropped.
    fn lock(&self) -> Result<File> {
        let path = self.describe(LOCK);
        // Non-blocking: a FIFO planted under the name fails instead of
        // hanging the open; a symlink fails too (no-follow).
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK;
        let file = nofollow::open_file(self.dir(), LOCK, flags, 0o644)
            .and_then(|file| nofollow::regular_size(&file).map(|_| file))
            .with_context(|| format!("{path}: cannot open"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("{path}: cannot lock"))?;
        Ok(file)
    }

    /// Replaces the file `name` of the store's top directory with `bytes`.
    fn write_atomically(&self, name: &[u8], bytes: &[u8]) -> Result<()> {
        let path = self.describe(name);
        let (temp, mut file) = nofollow::create_unique(self.dir(), ".oci-fetch.", "", 0o644)
            .with_context(|| format!("{path}: cannot create a temporary file"))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_data())
            .and_then(|()| nofollow::rename(self.dir(), &temp, name));
        if written.is_err() {
            nofollow::remove_file(self.dir(), temp.as_bytes());
        }
        written.with_context(|| format!("{path}: cannot write"))
    }

    /// The directory of `algorithm`'s blobs, created if needed.
    fn blob_dir(&self, algorithm: Algorithm) -> Result<OwnedFd> {
        let path = self.root().join("blobs").join(algorithm.name());
        nofollow::make_dir(self.dir(), b"blobs", 0o755)
            .and_then(|blobs| nofollow::make_dir(blobs.as_fd(), algorithm.name().as_bytes(), 0o755))
            .with_context(|| format!("{}: cannot create", path.display()))
    }

    /// The stored blob `digest`, open for reading; `None` if absent. What
    /// cannot be opened (a symlink, no permission) is reported as bad.
    fn open_blob(&self, digest: &Digest) -> Result<Option<File>> {
        let dir = self.blob_dir(digest.algorithm())?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK;
        match nofollow::open_file(dir.as_fd(), digest.hex().as_bytes(), flags, 0) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                self.judge(digest, Err(e.to_string()));
                Ok(None)
            }
        }
    }

    /// Records how a stored blob checked out, reporting a bad one the
    /// first time; true if it is good.
    fn judge(&self, digest: &Digest, outcome: Result<(), String>) -> bool {
        let Err(why) = outcome else {
            self.remember(digest, Checked::Good);
            return true;
        };
        if self.remember(digest, Checked::Bad) != Some(Checked::Bad) {
            (self.shared.warn)(&format!(
                "{}: {why}; fetching it again",
                self.blob_path(digest).display()
            ));
        }
        false
    }

    fn checked(&self, digest: &Digest) -> Option<Checked> {
        let checked = self
            .shared
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        checked.get(digest).copied()
    }

    /// Records `state`; returns what was recorded before.
    fn remember(&self, digest: &Digest, state: Checked) -> Option<Checked> {
        let mut checked = self
            .shared
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        checked.insert(digest.clone(), state)
    }

    fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.dir.as_fd()
    }

    fn describe(&self, name: &[u8]) -> String {
        self.root()
            .join(std::ffi::OsStr::from_bytes(name))
            .display()
            .to_string()
    }
}

/// Whether the open blob `file` is a regular file of `size` bytes with
/// `digest`, keeping its bytes in `keep` if given; why not otherwise.
fn verify(
    file: &File,
    digest: &Digest,
    size: u64,
    mut keep: Option<&mut Vec<u8>>,
) -> Result<(), String> {
    let len = nofollow::regular_size(file).map_err(|e| e.to_string())?;
    if len != size {
        return Err(format!("{len} bytes, not the {size} of its descriptor"));
    }
    let mut hasher = Hasher::new(digest.algorithm());
    let mut buf = vec![0; 256 << 10];
    let mut reader = file.take(size);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        hasher.update(&buf[..n]);
        if let Some(keep) = keep.as_deref_mut() {
            keep.extend_from_slice(&buf[..n]);
        }
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(format!("digest mismatch: content has {actual}"));
    }
    Ok(())
}

/// Copies `reader` into `out`, hashing; returns the byte count.
fn copy_hashing(reader: &mut dyn Read, out: &mut File, hasher: &mut Hasher) -> Result<u64> {
    let mut buf = vec![0; 256 << 10];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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

    /// A store whose warnings are collected.
    fn open_collecting(dir: &Path) -> (LayoutStore, Arc<Mutex<Vec<String>>>) {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&warnings);
        let warn: Warn = Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_owned()));
        (LayoutStore::open(dir, warn).unwrap(), warnings)
    }

    #[test]
    fn a_blob_appears_only_complete_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open_collecting(dir.path());
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
        assert!(!store.has(&digest, data.len() as u64).unwrap());
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
        let (store, _) = open_collecting(dir.path());
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

    /// Each way a stored blob can be wrong is found on first use, reported
    /// once, and repaired by the next put.
    #[test]
    fn bad_stored_blobs_are_reported_once_and_replaced() {
        let data = b"blob".repeat(100);
        let digest = Digest::of_bytes(Algorithm::Sha256, &data);
        let size = data.len() as u64;
        type Damage = fn(&Path, &[u8]);
        let cases: [(&str, Damage, &str); 4] = [
            (
                "zeroed",
                |p, d| std::fs::write(p, vec![0; d.len()]).unwrap(),
                "digest mismatch",
            ),
            (
                "short",
                |p, d| std::fs::write(p, &d[1..]).unwrap(),
                "399 bytes, not the 400",
            ),
            (
                "symlink",
                |p, d| {
                    std::fs::write(p.with_extension("real"), d).unwrap();
                    std::os::unix::fs::symlink(p.with_extension("real"), p).unwrap();
                },
                "a symlink",
            ),
            (
                "directory",
                |p, _| std::fs::create_dir(p).unwrap(),
                "not a regular file",
            ),
        ];
        for (what, damage, reason) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (store, warnings) = open_collecting(dir.path());
            let path = store.blob_path(&digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            damage(&path, &data);
            assert!(!store.has(&digest, size).unwrap(), "{what}");
            assert_eq!(store.read(&digest, size).unwrap(), None, "{what}");
            let warnings = warnings.lock().unwrap().clone();
            assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
            assert!(
                warnings[0].contains(digest.hex()) && warnings[0].contains(reason),
                "{what}: {warnings:?}"
            );
            if what == "directory" {
                assert!(store.put_bytes(&digest, &data).is_err(), "{what}");
                continue;
            }
            store.put_bytes(&digest, &data).unwrap();
            assert!(
                std::fs::symlink_metadata(&path).unwrap().is_file(),
                "{what}"
            );
            assert_eq!(
                store.read(&digest, size).unwrap().as_deref(),
                Some(&data[..]),
                "{what}"
            );
        }
    }

    #[test]
    fn a_malformed_index_or_a_planted_lock_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.json"), b"{}").unwrap();
        let warn: Warn = Arc::new(|_: &str| {});
        let err = LayoutStore::open(dir.path(), Arc::clone(&warn))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("no manifests array"), "{err:#}");
        std::fs::remove_file(dir.path().join("index.json")).unwrap();
        let target = dir.path().join("target");
        std::os::unix::fs::symlink(&target, dir.path().join(".oci-fetch.lock")).unwrap();
        let store = LayoutStore::open(dir.path(), warn).unwrap();
        let err = store.record("a", json!({})).unwrap_err();
        assert!(
            format!("{err:#}").contains(".oci-fetch.lock: cannot open: a symlink"),
            "{err:#}"
        );
        assert!(!target.exists());
    }
}
