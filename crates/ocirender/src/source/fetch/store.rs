//! `--store DIR`: an OCI image layout that many images share.
//!
//! Blobs are named by digest, so an image that shares layers with one
//! already stored fetches only what is new. A blob is written to its
//! download file beside its final name (`partial.rs`), checked,
//! flushed, and renamed: a blob under its real name was complete and
//! verified when it was put there, whatever killed a download. A download
//! that stops (a dropped connection, Ctrl-C, `kill -9`) leaves its file,
//! and the next run resumes it: the kept bytes are hashed again, the rest
//! is asked for with `Range`, and the whole must match the digest; kept
//! bytes that do not are reported in one warning and the blob is
//! downloaded again from its start. `index.json` is rewritten by
//! write-and-rename, so readers never see half a file.
//!
//! Two locks (`flock`, extra files the layout spec permits) let runs share
//! the store and housekeeping ([`super::prune`]) clean it:
//! * `.oci-fetch.lock`, the store's: every run holds it shared from the
//!   moment it opens the store (before it looks at a single blob) until
//!   its reference is recorded; housekeeping holds it exclusive. So no
//!   blob a run found or wrote can be removed before `index.json` names
//!   it. (Earlier versions took it exclusive to record: they still
//!   exclude, and are excluded by, everything here.)
//! * `.oci-fetch.index.lock`: held exclusive while `index.json` is read,
//!   changed and replaced, so concurrent runs add their references
//!   without losing another's.
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
//! ([`crate::fs::nofollow`]). A symlink planted as a lock or `index.json` is
//! refused; one planted as a blob is a bad blob, replaced; one planted as
//! a download file is not used. `index.json` is read and checked when the
//! store is opened, before anything is downloaded.

use super::partial::Partial;
use crate::blob::digest::{Algorithm, Digest, Hasher};
use crate::error::{bail, err, Context, Error, Result};
use crate::fs::nofollow;
use crate::source::image::store::MAX_SMALL_BLOB;
use crate::source::spec;
use rustix::fs::{FlockOperation, OFlags};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(super) const INDEX: &[u8] = b"index.json";
/// The store's lock: shared by runs that fetch, exclusive for housekeeping.
pub(super) const LOCK: &[u8] = b".oci-fetch.lock";
/// The lock of `index.json`'s read-change-replace.
const INDEX_LOCK: &[u8] = b".oci-fetch.index.lock";
const LAYOUT_MARKER: &[u8] = b"oci-layout";
/// The prefix of the temporary names `index.json` and `oci-layout` are
/// written under.
const TEMPORARY_PREFIX: &str = ".oci-fetch.";

/// Opens a blob's bytes from an offset on: given the offset and the hash
/// of the bytes before it, a reader and the offset its bytes really start
/// at (the one asked for, or 0 from a source that sends the whole blob
/// whatever was asked). See [`LayoutStore::download`].
pub type Origin<'a> = dyn FnMut(u64, &Hasher) -> Result<(Box<dyn Read + 'a>, u64)> + 'a;

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
    /// The store's lock, held shared while this value lives.
    _lock: File,
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
    /// needed, takes the store's lock shared (waiting while housekeeping
    /// holds it), and checks its `index.json`.
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
        let lock = lock(dir.as_fd(), &root, LOCK, FlockOperation::LockShared)?;
        let store = LayoutStore {
            shared: Arc::new(Shared {
                root,
                dir,
                _lock: lock,
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
        self.download(digest, bytes.len() as u64, &mut |_, _| {
            Ok((Box::new(bytes) as Box<dyn Read>, 0))
        })
    }

    /// Stores the blob `digest`, `size` bytes, read from `origin`, after
    /// the bytes an earlier run kept in its download file. It becomes
    /// visible only complete and verified, replacing whatever was under
    /// its name. If the download stops, its file keeps what arrived, for
    /// the next run; if the bytes are wrong, it is removed.
    pub fn download(&self, digest: &Digest, size: u64, origin: &mut Origin<'_>) -> Result<()> {
        let path = self.blob_path(digest);
        let dir_path = path.parent().expect("a blob path has a directory");
        let dir = self.blob_dir(digest.algorithm())?;
        let warn = |message: &str| (self.shared.warn)(message);
        let mut partial = Partial::claim(dir.as_fd(), dir_path, digest, &warn)
            .with_context(|| format!("{}: cannot create a temporary file", path.display()))?;
        let stored = self
            .fill(&mut partial, dir_path, digest, size, origin)
            .and_then(|()| {
                partial
                    .complete(dir.as_fd(), digest.hex().as_bytes())
                    .with_context(|| format!("{}: cannot rename into place", path.display()))
                    .map_err(Failure::Stopped)
            });
        match stored {
            Ok(()) => {
                self.remember(digest, Checked::Good);
                Ok(())
            }
            Err(Failure::Stopped(e)) if partial.resumable() => Err(e),
            Err(Failure::Stopped(e) | Failure::Bad(e)) => {
                partial.discard(dir.as_fd());
                Err(e)
            }
        }
    }

    /// Completes the blob in `partial`, resuming after what it holds;
    /// kept bytes that turn out wrong are reported and the blob is
    /// downloaded again from its start.
    fn fill(
        &self,
        partial: &mut Partial,
        dir_path: &Path,
        digest: &Digest,
        size: u64,
        origin: &mut Origin<'_>,
    ) -> Result<(), Failure> {
        let partial_path = dir_path.join(partial.name());
        let mut kept = partial.len().map_err(Failure::stopped)?;
        if kept > size {
            self.warn_restart(
                &partial_path,
                &format!("{kept} bytes, more than the blob's {size}"),
            );
            partial.restart().map_err(Failure::stopped)?;
            kept = 0;
        }
        let before = kept;
        let filled = match fill_after(partial, &mut kept, digest, size, origin) {
            // Unless the source sent the whole blob again (kept is then 0).
            Err(Failure::Bad(e)) if kept > 0 => {
                let why = format!(
                    "the {before} bytes kept from an earlier download do not make the blob ({})",
                    e.root_cause()
                );
                self.warn_restart(&partial_path, &why);
                partial.restart().map_err(Failure::stopped)?;
                fill_after(partial, &mut 0, digest, size, origin)
            }
            filled => filled,
        };
        let blob_path = dir_path.join(digest.hex());
        filled.map_err(|failure| failure.context(&blob_path))
    }

    fn warn_restart(&self, partial_path: &Path, why: &str) {
        (self.shared.warn)(&format!(
            "{}: {why}; downloading it again from the start",
            partial_path.display()
        ));
    }

    /// Records `descriptor` in `index.json` under `name` (replacing an
    /// entry of that name: a tag that moved), so that `oci-layers --tag
    /// NAME DIR` finds it offline.
    pub fn record(&self, name: &str, descriptor: Value) -> Result<()> {
        let _lock = lock(
            self.dir(),
            self.root(),
            INDEX_LOCK,
            FlockOperation::LockExclusive,
        )?;
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
        parse_index(&path, &bytes)
    }

    /// Replaces the file `name` of the store's top directory with `bytes`.
    fn write_atomically(&self, name: &[u8], bytes: &[u8]) -> Result<()> {
        let path = self.describe(name);
        let (temp, mut file) = nofollow::create_unique(self.dir(), TEMPORARY_PREFIX, "", 0o644)
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

/// `index.json`'s bytes (read from `path`) as an index: an error unless
/// they are JSON with a `manifests` array.
pub(super) fn parse_index(path: &str, bytes: &[u8]) -> Result<Value> {
    let index: Value =
        serde_json::from_slice(bytes).with_context(|| format!("{path}: malformed JSON"))?;
    if !index.get("manifests").is_some_and(Value::is_array) {
        bail!("{path}: not an image index (no manifests array)");
    }
    Ok(index)
}

/// Whether `name`, in the store's top directory, is a temporary file that
/// `index.json` or `oci-layout` was being written under.
pub(super) fn is_temporary_name(name: &[u8]) -> bool {
    std::str::from_utf8(name)
        .ok()
        .and_then(|name| name.strip_prefix(TEMPORARY_PREFIX))
        .is_some_and(nofollow::is_unique_part)
}

/// Takes the lock `name` of the store `dir` (at `root`, for messages) as
/// `operation` says, waiting for it; held until the file is dropped.
pub(super) fn lock(
    dir: BorrowedFd<'_>,
    root: &Path,
    name: &[u8],
    operation: FlockOperation,
) -> Result<File> {
    let path = root.join(std::ffi::OsStr::from_bytes(name));
    // Non-blocking: a FIFO planted under the name fails instead of
    // hanging the open; a symlink fails too (no-follow).
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK;
    let file = nofollow::open_file(dir, name, flags, 0o644)
        .and_then(|file| nofollow::regular_size(&file).map(|_| file))
        .with_context(|| format!("{}: cannot open", path.display()))?;
    rustix::fs::flock(&file, operation)
        .with_context(|| format!("{}: cannot lock", path.display()))?;
    Ok(file)
}

/// How a download into a blob's file ended, if not with the blob.
enum Failure {
    /// The bytes are wrong (their size or digest): the file is no use.
    Bad(crate::error::Error),
    /// The download stopped: the file keeps what arrived, to resume.
    Stopped(crate::error::Error),
}

impl Failure {
    fn stopped(e: io::Error) -> Failure {
        Failure::Stopped(e.into())
    }

    /// The same failure, its error naming the file `path`.
    fn context(self, path: &Path) -> Failure {
        let name = |e: crate::error::Error| e.context(format!("{}: cannot store", path.display()));
        match self {
            Failure::Bad(e) => Failure::Bad(name(e)),
            Failure::Stopped(e) => Failure::Stopped(name(e)),
        }
    }
}

/// Completes the blob in `partial`, whose first `kept` bytes are taken as
/// its start (`kept` drops to 0 if `origin` sends the whole blob), and
/// checks its size and digest.
fn fill_after(
    partial: &mut Partial,
    kept: &mut u64,
    digest: &Digest,
    size: u64,
    origin: &mut Origin<'_>,
) -> Result<(), Failure> {
    let algorithm = digest.algorithm();
    let file = partial.file();
    let mut hasher = Hasher::new(algorithm);
    file.seek(SeekFrom::Start(0)).map_err(Failure::stopped)?;
    let hashed = hash_through(&mut (&*file).take(*kept), &mut hasher, &mut |_| Ok(()))
        .map_err(|stop| Failure::Stopped(stop.into_error()))?;
    if hashed != *kept {
        return Err(Failure::Stopped(err!(
            "{hashed} bytes read of the {kept} kept"
        )));
    }
    let mut total = *kept;
    // Kept bytes that are the whole blob need only their check.
    if *kept == 0 || *kept < size {
        let (mut reader, start) = origin(*kept, &hasher).map_err(Failure::Stopped)?;
        if start != *kept {
            if start != 0 {
                return Err(Failure::Bad(err!(
                    "the source sent the blob from byte {start}, not {kept}"
                )));
            }
            partial.restart().map_err(Failure::stopped)?;
            (*kept, total, hasher) = (0, 0, Hasher::new(algorithm));
        }
        let file = partial.file();
        total += hash_through(&mut reader, &mut hasher, &mut |chunk| file.write_all(chunk))
            .map_err(Stop::into_failure)?;
    }
    if total != size {
        return Err(Failure::Bad(err!(
            "{digest}: size mismatch: expected {size} bytes, got {total}"
        )));
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(Failure::Bad(Error::digest_mismatch(
            digest, digest, &actual,
        )));
    }
    Ok(())
}

/// Where a stream being hashed stopped short.
enum Stop {
    /// Reading it failed.
    Read(io::Error),
    /// Handing a chunk on failed.
    Write(io::Error),
}

impl Stop {
    fn into_error(self) -> crate::error::Error {
        match self {
            Stop::Read(e) => err!(e),
            Stop::Write(e) => err!(e).context("cannot write"),
        }
    }

    /// A source's bytes that are wrong (its own digest check, or more
    /// than the blob) are bad; anything else stopped the download.
    fn into_failure(self) -> Failure {
        match self {
            Stop::Read(e) if e.kind() == io::ErrorKind::InvalidData => Failure::Bad(e.into()),
            stop => Failure::Stopped(stop.into_error()),
        }
    }
}

/// Reads `reader` to its end, hashing, and hands each chunk to `each`;
/// returns the byte count.
fn hash_through(
    reader: &mut dyn Read,
    hasher: &mut Hasher,
    each: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64, Stop> {
    let mut buf = vec![0; 256 << 10];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Read(e)),
        };
        hasher.update(&buf[..n]);
        each(&buf[..n]).map_err(Stop::Write)?;
        total += n as u64;
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
    hash_through(&mut file.take(size), &mut hasher, &mut |chunk| {
        if let Some(keep) = keep.as_deref_mut() {
            keep.extend_from_slice(chunk);
        }
        Ok(())
    })
    .map_err(|stop| format!("cannot read: {}", stop.into_error()))?;
    let actual = hasher.finish();
    if &actual != digest {
        return Err(format!("digest mismatch: content has {actual}"));
    }
    Ok(())
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
        let put = |bytes: &[u8]| {
            store.download(&digest, data.len() as u64, &mut |_, _| {
                Ok((Box::new(bytes) as Box<dyn Read>, 0))
            })
        };
        let err = put(&data[..100]).unwrap_err();
        assert!(format!("{err:#}").contains("size mismatch"), "{err:#}");
        let mut wrong = data.clone();
        wrong[7] ^= 1;
        let err = put(&wrong).unwrap_err();
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
        let store_lock = dir.path().join(".oci-fetch.lock");
        std::fs::remove_file(&store_lock).unwrap();
        std::os::unix::fs::symlink(&target, &store_lock).unwrap();
        let err = LayoutStore::open(dir.path(), Arc::clone(&warn))
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains(".oci-fetch.lock: cannot open: a symlink"),
            "{err:#}"
        );
        std::fs::remove_file(&store_lock).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(".oci-fetch.index.lock")).unwrap();
        let store = LayoutStore::open(dir.path(), warn).unwrap();
        let err = store.record("a", json!({})).unwrap_err();
        assert!(
            format!("{err:#}").contains(".oci-fetch.index.lock: cannot open: a symlink"),
            "{err:#}"
        );
        assert!(!target.exists());
    }

    /// A blob of 1000 bytes, its download file, and a store to put it in.
    struct Resuming {
        _dir: tempfile::TempDir,
        store: LayoutStore,
        warnings: Arc<Mutex<Vec<String>>>,
        data: Vec<u8>,
        digest: Digest,
    }

    impl Resuming {
        fn new() -> Resuming {
            let dir = tempfile::tempdir().unwrap();
            let (store, warnings) = open_collecting(dir.path());
            let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
            let digest = Digest::of_bytes(Algorithm::Sha256, &data);
            std::fs::create_dir_all(store.blob_path(&digest).parent().unwrap()).unwrap();
            Resuming {
                _dir: dir,
                store,
                warnings,
                data,
                digest,
            }
        }

        fn partial(&self) -> PathBuf {
            let name = super::super::partial::resumable_name(&self.digest);
            self.store.blob_path(&self.digest).with_file_name(name)
        }

        /// Downloads from a source that honours offsets (or, if `whole`,
        /// sends the whole blob whatever is asked); the offsets asked.
        fn download(&self, whole: bool) -> (Result<()>, Vec<u64>) {
            let mut asked = Vec::new();
            let data = &self.data;
            let result = self
                .store
                .download(&self.digest, data.len() as u64, &mut |offset, _| {
                    asked.push(offset);
                    let start = if whole { 0 } else { offset };
                    Ok((Box::new(&data[start as usize..]) as Box<dyn Read>, start))
                });
            (result, asked)
        }

        fn warnings(&self) -> Vec<String> {
            self.warnings.lock().unwrap().clone()
        }

        fn assert_stored(&self, what: &str) {
            let path = self.store.blob_path(&self.digest);
            assert_eq!(std::fs::read(&path).unwrap(), self.data, "{what}");
            assert!(!self.partial().exists(), "{what}");
        }
    }

    /// What an earlier run may have left, and what the next download asks
    /// for and warns about.
    #[test]
    fn a_download_resumes_after_kept_bytes_and_restarts_when_they_are_wrong() {
        type Leave = fn(&[u8]) -> Vec<u8>;
        let cases: [(&str, Leave, bool, &[u64], &str); 6] = [
            ("nothing", |_| Vec::new(), false, &[0], ""),
            ("a good start", |d| d[..400].to_vec(), false, &[400], ""),
            ("the whole blob", |d| d.to_vec(), false, &[], ""),
            (
                "a damaged start",
                |d| {
                    let mut kept = d[..400].to_vec();
                    kept[17] ^= 1;
                    kept
                },
                false,
                &[400, 0],
                "the 400 bytes kept from an earlier download do not make the blob (",
            ),
            (
                "more than the blob",
                |d| [d, b"more"].concat(),
                false,
                &[0],
                "1004 bytes, more than the blob's 1000",
            ),
            (
                "a good start, to a source ignoring ranges",
                |d| d[..400].to_vec(),
                true,
                &[400],
                "",
            ),
        ];
        for (what, leave, whole, expected_asks, warning) in cases {
            let t = Resuming::new();
            let kept = leave(&t.data);
            if !kept.is_empty() {
                std::fs::write(t.partial(), kept).unwrap();
                let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
                std::fs::set_permissions(t.partial(), mode).unwrap();
            }
            let (result, asked) = t.download(whole);
            result.unwrap();
            assert_eq!(asked, expected_asks, "{what}");
            t.assert_stored(what);
            let warnings = t.warnings();
            if warning.is_empty() {
                assert!(warnings.is_empty(), "{what}: {warnings:?}");
            } else {
                assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
                assert!(
                    warnings[0].contains(&t.partial().display().to_string())
                        && warnings[0].contains(warning)
                        && warnings[0].ends_with("downloading it again from the start"),
                    "{what}: {warnings:?}"
                );
            }
        }
    }

    /// A download that stops keeps what arrived in the digest's own file,
    /// for the next run; in a fresh file (the own one busy) it keeps nothing.
    #[test]
    fn a_stopped_download_keeps_its_bytes_for_the_next_run_only_in_its_own_file() {
        let t = Resuming::new();
        let data = &t.data;
        let mut cut = |offset: u64, _: &Hasher| {
            let reader = (&data[offset as usize..500]).chain(Failing);
            Ok((Box::new(reader) as Box<dyn Read>, offset))
        };
        let err = t.store.download(&t.digest, 1000, &mut cut).unwrap_err();
        assert!(format!("{err:#}").contains("connection reset"), "{err:#}");
        assert_eq!(std::fs::read(t.partial()).unwrap(), &data[..500]);
        assert!(!t.store.blob_path(&t.digest).exists());

        // Another run holds the own file: this one downloads beside it.
        let held = File::open(t.partial()).unwrap();
        assert!(super::super::partial::try_lock(&held).unwrap());
        let err = t.store.download(&t.digest, 1000, &mut cut).unwrap_err();
        assert!(format!("{err:#}").contains("connection reset"), "{err:#}");
        let dir = t.partial().parent().unwrap().to_path_buf();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [t.partial().file_name().unwrap()],
            "nothing beside it"
        );
        let (result, asked) = t.download(false);
        result.unwrap();
        assert_eq!(asked, [0], "not resumed while another run holds it");
        assert_eq!(std::fs::read(t.partial()).unwrap(), &data[..500]);
        drop(held);

        // Once free, the next download resumes the kept bytes.
        std::fs::remove_file(t.store.blob_path(&t.digest)).unwrap();
        let (result, asked) = t.download(false);
        result.unwrap();
        assert_eq!(asked, [500]);
    }

    /// A fresh download file (the own one busy) whose blob cannot be
    /// renamed into place (a directory is there) is not left behind.
    #[test]
    fn a_fresh_download_file_goes_when_the_blob_cannot_be_put_in_place() {
        let t = Resuming::new();
        std::fs::create_dir(t.store.blob_path(&t.digest)).unwrap();
        std::fs::write(t.partial(), b"").unwrap();
        let held = File::open(t.partial()).unwrap();
        assert!(super::super::partial::try_lock(&held).unwrap());
        let (result, _) = t.download(false);
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("cannot rename into place"), "{err}");
        let dir = t.partial().parent().unwrap().to_path_buf();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let blob = t.store.blob_path(&t.digest);
        assert_eq!(
            names,
            [t.partial().file_name().unwrap(), blob.file_name().unwrap()]
        );
    }

    /// A read that fails as a dropped connection does.
    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset",
            ))
        }
    }
}
