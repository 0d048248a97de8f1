//! `oci-fetch --store DIR --prune`: removes from a store what no image in
//! it needs, so a cache that survives between jobs does not only grow.
//!
//! Mark: every descriptor `index.json` holds is a root, and everything a
//! marked blob references is marked in turn: the manifests of an index
//! (nested ones too), a manifest's config and layers, its `subject`,
//! Docker schema 1's `blobSum`s. Indexes and manifests must be read: one
//! that is missing or unreadable stops the prune before anything is
//! removed, since what it references cannot be known. A blob of another
//! or no media type (an artifact, a config) is read if it is a small JSON
//! document, and every descriptor found in it anywhere is marked: nothing
//! that any blob references is removed. Layers are not read.
//!
//! Sweep: under `blobs/sha256` and `blobs/sha512`, regular files named by
//! a digest that is not marked; download files (`.HEX.partial`) no run is
//! writing (their lock is free); and in the top directory the temporaries
//! `index.json` and `oci-layout` are written under. Nothing else is
//! touched: not other files, directories or symlinks, not other
//! algorithms' directories, not `index.json` or `oci-layout`.
//!
//! Concurrency: all of it happens under the store's lock, exclusive,
//! which every fetch holds shared from opening the store until it has
//! recorded its reference ([`super::store`]): a prune waits for running
//! fetches, and a fetch that starts waits for the prune. Writers that do
//! not take the lock (skopeo, umoci, an older `oci-fetch`) are protected
//! only by the grace period: nothing modified more recently than that is
//! removed. And `index.json` is read again after the sweep is planned: if
//! it changed, the marking starts over.

use super::partial::{partial_digest, still_named, try_lock};
use super::store::{self, is_temporary_name, INDEX, LOCK};
use crate::blob::digest::{Algorithm, Digest};
use crate::error::{bail, Context, Result};
use crate::fs::nofollow;
use crate::fs::root::c_path;
use crate::source::image::store::MAX_SMALL_BLOB;
use crate::source::spec::{self, MAX_DOCUMENT};
use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, OFlags, Stat};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the marking starts over because `index.json` changed.
const MARK_ATTEMPTS: usize = 3;

/// The algorithms whose blob directories are swept.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// The media type of Docker's schema 1 manifests (signed or not).
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+";

/// What to remove, and whether to.
pub struct Options {
    /// Nothing modified less than this long ago is removed.
    pub grace: Duration,
    /// Only report what would be removed.
    pub dry_run: bool,
}

/// What a removed file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A blob nothing references.
    Blob,
    /// A download file no run is writing.
    Partial,
    /// A temporary `index.json` or `oci-layout` was written under.
    Temporary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Blob => "blob",
            Kind::Partial => "partial",
            Kind::Temporary => "temporary",
        }
    }
}

/// One file removed (or, in a dry run, to be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Where it was.
    pub path: PathBuf,
    /// What it was.
    pub kind: Kind,
    /// The blob it was, or was being downloaded as.
    pub digest: Option<Digest>,
    /// Its size in bytes.
    pub size: u64,
    /// Its directory, and name there.
    place: Place,
    name: Vec<u8>,
}

/// The directory of the store a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Blobs(Algorithm),
}

/// What a prune removed.
pub struct Report {
    /// The files, by path.
    pub removed: Vec<Removal>,
    /// Whether nothing was actually removed.
    pub dry_run: bool,
}

impl Report {
    /// The bytes freed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.size).sum()
    }

    /// The removed files' paths, one a line.
    pub fn lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for removal in &self.removed {
            out.extend_from_slice(removal.path.as_os_str().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The report as JSON, for scripts.
    pub fn json(&self) -> Result<Vec<u8>> {
        let removed: Vec<Value> = self
            .removed
            .iter()
            .map(|r| {
                json!({
                    "path": r.path.to_string_lossy(),
                    "kind": r.kind.name(),
                    "digest": r.digest.as_ref().map(ToString::to_string),
                    "size": r.size,
                })
            })
            .collect();
        let value = json!({
            "dryRun": self.dry_run,
            "removed": removed,
            "bytes": self.bytes(),
        });
        let mut out = serde_json::to_vec_pretty(&value)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// `--grace`: `0`, or a number with `s`, `m`, `h` or `d` (seconds if
/// none).
pub fn parse_grace(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: expected a number and s, m, h or d")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: expected a number and s, m, h or d"))
}

/// Prunes the store at `root` (which must be an image layout with an
/// `index.json`), waiting for the fetches that hold its lock.
pub fn prune(root: &Path, options: &Options) -> Result<Report> {
    let store = Store::open(root)?;
    let _lock = store::lock(
        store.dir(),
        &store.root,
        LOCK,
        FlockOperation::LockExclusive,
    )?;
    for _ in 0..MARK_ATTEMPTS {
        let index = store.index()?;
        let marked = mark(&store.describe(INDEX), &index.1, &|digest, limit| {
            store.read_blob(digest, limit)
        })?;
        let mut plan = store.plan(&marked, options.grace)?;
        if store.index()?.0 != index.0 {
            continue;
        }
        if !options.dry_run {
            plan = store.remove(plan)?;
        }
        plan.sort_by(|a, b| a.path.cmp(&b.path));
        return Ok(Report {
            removed: plan,
            dry_run: options.dry_run,
        });
    }
    bail!(
        "{}: changed while the store was being marked, {MARK_ATTEMPTS} times (a tool that does \
         not take {} is writing it); nothing removed",
        store.describe(INDEX),
        store.describe(LOCK)
    )
}

/// Reads a blob whole if it is at most `limit` bytes: `None` if absent, an
/// error if larger or unreadable.
type ReadBlob<'a> = dyn Fn(&Digest, u64) -> io::Result<Option<Vec<u8>>> + 'a;

/// How a descriptor's blob is looked into while marking.
#[derive(Debug, PartialEq)]
enum Walk {
    /// An index or manifest: it must be read.
    Required,
    /// Something else: read if it is a small JSON document.
    IfDocument,
    /// A layer: never read.
    Leaf,
}

fn walk_of(media_type: Option<&str>) -> Walk {
    match media_type {
        Some(t) if spec::is_index(t) || spec::is_manifest(t) || t.starts_with(DOCKER_SCHEMA1) => {
            Walk::Required
        }
        Some(t) if spec::is_tar_layer(t) || t.contains(".layer.") => Walk::Leaf,
        _ => Walk::IfDocument,
    }
}

/// Every digest `index` (read from `index_path`) reaches, reading blobs
/// with `read`.
fn mark(index_path: &str, index: &Value, read: &ReadBlob<'_>) -> Result<HashSet<Digest>> {
    let mut marked = HashSet::new();
    let mut pending: Vec<(Digest, Option<String>, String)> = references(index)
        .into_iter()
        .map(|(digest, media_type)| (digest, media_type, index_path.to_owned()))
        .collect();
    while let Some((digest, media_type, referrer)) = pending.pop() {
        if !marked.insert(digest.clone()) {
            continue;
        }
        let walk = walk_of(media_type.as_deref());
        let Some(document) = look_into(&digest, &walk, read)
            .with_context(|| format!("{referrer} references {digest}"))?
        else {
            continue;
        };
        let here = digest.to_string();
        pending.extend(
            references(&document)
                .into_iter()
                .map(|(digest, media_type)| (digest, media_type, here.clone())),
        );
    }
    Ok(marked)
}

/// The JSON document blob `digest` is, if it is to be looked into; an
/// error if it must be (an index or manifest) and cannot.
fn look_into(digest: &Digest, walk: &Walk, read: &ReadBlob<'_>) -> Result<Option<Value>> {
    match walk {
        Walk::Leaf => Ok(None),
        Walk::IfDocument => {
            let bytes = read(digest, MAX_DOCUMENT).ok().flatten();
            Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
        }
        Walk::Required => {
            let Some(bytes) = read(digest, MAX_SMALL_BLOB).context("cannot read it")? else {
                bail!("which is missing; nothing removed (fetch the image again, or remove its entry from index.json)");
            };
            let document =
                serde_json::from_slice(&bytes).context("which is not JSON; nothing removed")?;
            Ok(Some(document))
        }
    }
}

/// Every descriptor in `value`, however deep: objects with a `digest`
/// (or schema 1's `blobSum`) that is one, with their `mediaType`.
fn references(value: &Value) -> Vec<(Digest, Option<String>)> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                for key in ["digest", "blobSum"] {
                    let digest = map.get(key).and_then(Value::as_str);
                    if let Some(digest) = digest.and_then(|d| d.parse::<Digest>().ok()) {
                        let media_type = map.get("mediaType").and_then(Value::as_str);
                        found.push((digest, media_type.map(str::to_owned)));
                    }
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
}

/// A store's directory, opened for pruning.
struct Store {
    root: PathBuf,
    dir: OwnedFd,
}

impl Store {
    /// Opens the store at `root`, which must have an `index.json`: a
    /// directory without one is refused, lest all its blobs go.
    fn open(root: &Path) -> Result<Store> {
        let root = std::path::absolute(root)
            .with_context(|| format!("{}: cannot open", root.display()))?;
        // The directory the user named is theirs to point anywhere;
        // nothing inside it is followed.
        let dir = rfs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rfs::Mode::empty(),
        )
        .with_context(|| format!("{}: cannot open the store", root.display()))?;
        let store = Store { root, dir };
        store.index()?;
        Ok(store)
    }

    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    fn describe(&self, name: &[u8]) -> String {
        self.root
            .join(std::ffi::OsStr::from_bytes(name))
            .display()
            .to_string()
    }

    /// `index.json`'s bytes, and what they say.
    fn index(&self) -> Result<(Vec<u8>, Value)> {
        let path = self.describe(INDEX);
        let bytes = nofollow::read_file(self.dir(), INDEX, MAX_SMALL_BLOB)
            .with_context(|| path.clone())?
            .with_context(|| {
                format!("{path}: absent: not an image layout, or not one oci-fetch made; nothing removed")
            })?;
        let index = store::parse_index(&path, &bytes)?;
        Ok((bytes, index))
    }

    /// The directory of `place`; `None` if it does not exist.
    fn open_place(&self, place: Place) -> Result<Option<OwnedFd>> {
        let Place::Blobs(algorithm) = place else {
            return Ok(Some(nofollow::open_dir(self.dir(), b"")?));
        };
        let path = self.root.join("blobs").join(algorithm.name());
        let opened = nofollow::open_dir(self.dir(), b"blobs")
            .and_then(|blobs| nofollow::open_dir(blobs.as_fd(), algorithm.name().as_bytes()));
        match opened {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("{}: cannot open", path.display())),
        }
    }

    fn path_of(&self, place: Place, name: &[u8]) -> PathBuf {
        let dir = match place {
            Place::Top => self.root.clone(),
            Place::Blobs(algorithm) => self.root.join("blobs").join(algorithm.name()),
        };
        dir.join(std::ffi::OsStr::from_bytes(name))
    }

    fn read_blob(&self, digest: &Digest, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(dir) = self
            .open_place(Place::Blobs(digest.algorithm()))
            .map_err(io::Error::other)?
        else {
            return Ok(None);
        };
        nofollow::read_file(dir.as_fd(), digest.hex().as_bytes(), limit)
    }

    /// What to remove: every file of the kinds swept that is not marked,
    /// not locked, and older than `grace`.
    fn plan(&self, marked: &HashSet<Digest>, grace: Duration) -> Result<Vec<Removal>> {
        let now = SystemTime::now();
        let places = std::iter::once(Place::Top).chain(ALGORITHMS.map(Place::Blobs));
        let mut plan = Vec::new();
        for place in places {
            let Some(dir) = self.open_place(place)? else {
                continue;
            };
            let entries = rfs::Dir::read_from(&dir)
                .with_context(|| format!("{}: cannot list", self.path_of(place, b"").display()))?;
            for entry in entries {
                let entry = entry.with_context(|| {
                    format!("{}: cannot list", self.path_of(place, b"").display())
                })?;
                let name = entry.file_name().to_bytes();
                let Some((kind, digest)) = classify(place, name) else {
                    continue;
                };
                if kind == Kind::Blob && digest.as_ref().is_some_and(|d| marked.contains(d)) {
                    continue;
                }
                let Some(stat) = stale_file(dir.as_fd(), name, now, grace) else {
                    continue;
                };
                if kind == Kind::Partial && being_written(dir.as_fd(), name) {
                    continue;
                }
                plan.push(Removal {
                    path: self.path_of(place, name),
                    kind,
                    digest,
                    size: stat.st_size as u64,
                    place,
                    name: name.to_vec(),
                });
            }
        }
        Ok(plan)
    }

    /// Removes what `plan` lists, except download files a run has started
    /// writing since; returns what was removed.
    fn remove(&self, plan: Vec<Removal>) -> Result<Vec<Removal>> {
        let mut removed = Vec::new();
        for removal in plan {
            let Some(dir) = self.open_place(removal.place)? else {
                continue;
            };
            // Held while the file is removed, so no run starts on it.
            let _locked = match removal.kind {
                Kind::Partial => match lock_unused(dir.as_fd(), &removal.name) {
                    Some(file) => Some(file),
                    None => continue,
                },
                Kind::Blob | Kind::Temporary => None,
            };
            match rfs::unlinkat(dir.as_fd(), c_path(&removal.name), AtFlags::empty()) {
                Ok(()) => removed.push(removal),
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => {
                    return Err(io::Error::from(e))
                        .with_context(|| format!("{}: cannot remove", removal.path.display()))
                }
            }
        }
        Ok(removed)
    }
}

/// What the entry `name` of `place` is, if it is of a kind swept, and the
/// blob it is (or is being downloaded as).
fn classify(place: Place, name: &[u8]) -> Option<(Kind, Option<Digest>)> {
    match place {
        Place::Top => is_temporary_name(name).then_some((Kind::Temporary, None)),
        Place::Blobs(algorithm) => {
            let hex = std::str::from_utf8(name).ok()?;
            if let Ok(digest) = Digest::new(algorithm, hex) {
                return Some((Kind::Blob, Some(digest)));
            }
            partial_digest(algorithm, name).map(|digest| (Kind::Partial, Some(digest)))
        }
    }
}

/// The status of `name` in `dir` if it is a regular file last modified at
/// least `grace` before `now`.
fn stale_file(dir: BorrowedFd<'_>, name: &[u8], now: SystemTime, grace: Duration) -> Option<Stat> {
    let stat = rfs::statat(dir, c_path(name), AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return None;
    }
    let modified = UNIX_EPOCH
        + Duration::from_secs(stat.st_mtime.max(0) as u64)
        + Duration::from_nanos(stat.st_mtime_nsec as u64);
    // A time in the future is no age at all.
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    (age >= grace).then_some(stat)
}

/// Whether a run holds the lock of the download file `name` of `dir`.
fn being_written(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    lock_unused(dir, name).is_none()
}

/// The download file `name` of `dir`, locked, unless a run holds its lock
/// (or it is gone or replaced).
fn lock_unused(dir: BorrowedFd<'_>, name: &[u8]) -> Option<std::fs::File> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK;
    let file = nofollow::open_file(dir, name, flags, 0).ok()?;
    if !try_lock(&file).ok()? {
        return None;
    }
    let stat = rfs::fstat(&file).ok()?;
    still_named(dir, name, &stat).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::of_bytes(Algorithm::Sha256, bytes)
    }

    /// Blobs in memory, by digest.
    #[derive(Default)]
    struct Blobs(HashMap<Digest, Vec<u8>>);

    impl Blobs {
        /// Adds a JSON document; its descriptor with `media_type`.
        fn document(&mut self, media_type: &str, value: Value) -> Value {
            self.raw(media_type, serde_json::to_vec(&value).unwrap())
        }

        fn raw(&mut self, media_type: &str, bytes: Vec<u8>) -> Value {
            let digest = digest_of(&bytes);
            let descriptor = json!({
                "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len(),
            });
            self.0.insert(digest, bytes);
            descriptor
        }

        /// A manifest of a config and `layers` (their contents).
        fn manifest(&mut self, media_type: &str, config: &str, layers: &[&str]) -> Value {
            let config = self.raw(spec::OCI_CONFIG, config.as_bytes().to_vec());
            let layers: Vec<Value> = layers
                .iter()
                .map(|l| {
                    self.raw(
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                        l.as_bytes().to_vec(),
                    )
                })
                .collect();
            self.document(
                media_type,
                json!({"schemaVersion": 2, "config": config, "layers": layers}),
            )
        }

        fn marked(&self, roots: &[&Value]) -> Result<HashSet<Digest>> {
            let index = json!({"schemaVersion": 2, "manifests": roots});
            mark("index.json", &index, &|digest, limit| {
                let bytes = self.0.get(digest).cloned();
                assert!(bytes.as_ref().is_none_or(|b| b.len() as u64 <= limit));
                Ok(bytes)
            })
        }
    }

    fn digests(descriptors: &[&Value]) -> HashSet<Digest> {
        descriptors
            .iter()
            .map(|d| d["digest"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// Blobs of every kind of reference, with the set each root marks.
    #[test]
    fn marking_reaches_every_referenced_blob_and_nothing_else() {
        let mut blobs = Blobs::default();
        let amd64 = blobs.manifest(spec::OCI_MANIFEST, "amd64 config", &["base", "amd64 top"]);
        let arm64 = blobs.manifest(spec::OCI_MANIFEST, "arm64 config", &["base", "arm64 top"]);
        let nested = blobs.document(spec::OCI_INDEX, json!({"manifests": [arm64]}));
        let index = blobs.document(spec::OCI_INDEX, json!({"manifests": [amd64, nested]}));
        let docker = blobs.manifest(spec::DOCKER_MANIFEST, "docker config", &["docker layer"]);
        let list = blobs.document(spec::DOCKER_MANIFEST_LIST, json!({"manifests": [docker]}));
        let signature = blobs.raw("application/vnd.example.signature", b"sig".to_vec());
        let referrer = blobs.document(
            spec::OCI_MANIFEST,
            json!({"config": signature, "layers": [], "subject": amd64}),
        );
        let layer = blobs.raw("application/vnd.example.blob", b"artifact".to_vec());
        let artifact = blobs.document(
            "application/vnd.example.unknown+json",
            json!({"deep": [{"inside": {"mediaType": "x", "digest": layer["digest"], "size": 8}}]}),
        );
        let old_layer = blobs.raw("", b"schema 1 layer".to_vec());
        let schema1 = blobs.document(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            json!({"fsLayers": [{"blobSum": old_layer["digest"]}]}),
        );
        let unreferenced = blobs.manifest(spec::OCI_MANIFEST, "old config", &["old layer"]);
        let of = |manifest: &Value| -> Vec<Value> {
            let bytes = &blobs.0[&manifest["digest"]
                .as_str()
                .unwrap()
                .parse::<Digest>()
                .unwrap()];
            let value: Value = serde_json::from_slice(bytes).unwrap();
            let mut all = vec![manifest.clone(), value["config"].clone()];
            all.extend(value["layers"].as_array().unwrap().iter().cloned());
            all
        };
        let cases: Vec<(&str, Vec<&Value>, Vec<Value>)> = vec![
            ("an image", vec![&amd64], of(&amd64)),
            (
                "a nested index",
                vec![&index],
                [vec![index.clone(), nested.clone()], of(&amd64), of(&arm64)].concat(),
            ),
            (
                "docker types",
                vec![&list],
                [vec![list.clone()], of(&docker)].concat(),
            ),
            (
                "a referrer keeps its subject",
                vec![&referrer],
                [vec![referrer.clone(), signature.clone()], of(&amd64)].concat(),
            ),
            (
                "an unknown type",
                vec![&artifact],
                vec![artifact.clone(), layer.clone()],
            ),
            (
                "schema 1",
                vec![&schema1],
                vec![schema1.clone(), old_layer.clone()],
            ),
        ];
        for (what, roots, expected) in cases {
            let marked = blobs.marked(&roots).unwrap();
            let expected: Vec<&Value> = expected.iter().collect();
            assert_eq!(marked, digests(&expected), "{what}");
            let unreferenced = digests(&[&unreferenced]);
            assert!(marked.is_disjoint(&unreferenced), "{what}");
        }
    }

    #[test]
    fn an_index_or_manifest_that_cannot_be_read_stops_the_marking() {
        let mut blobs = Blobs::default();
        let missing_layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest_of(b"gone").to_string(), "size": 4});
        let missing_config = json!({"mediaType": spec::OCI_CONFIG,
            "digest": digest_of(b"gone too").to_string(), "size": 8});
        let fine = blobs.document(
            spec::OCI_MANIFEST,
            json!({"config": missing_config, "layers": [missing_layer]}),
        );
        assert_eq!(
            blobs.marked(&[&fine]).unwrap().len(),
            3,
            "absent leaves are fine"
        );
        let missing = json!({"mediaType": spec::OCI_MANIFEST,
            "digest": digest_of(b"no manifest").to_string(), "size": 11});
        let garbled = blobs.raw(spec::OCI_INDEX, b"not json".to_vec());
        let traversal = json!({"mediaType": spec::OCI_MANIFEST,
            "digest": "sha256:../../../etc/passwd", "size": 1});
        assert!(blobs.marked(&[&traversal]).unwrap().is_empty());
        for (root, problem) in [
            (&missing, "which is missing"),
            (&garbled, "which is not JSON"),
        ] {
            let err = format!("{:#}", blobs.marked(&[&fine, root]).unwrap_err());
            assert!(
                err.starts_with(&format!(
                    "index.json references {}: {problem}",
                    root["digest"].as_str().unwrap()
                )) && err.contains("nothing removed"),
                "{err}"
            );
        }
    }

    #[test]
    fn grace_periods_read_as_people_write_them() {
        let cases = [
            ("0", Some(0)),
            ("90", Some(90)),
            ("30s", Some(30)),
            ("10m", Some(600)),
            ("1h", Some(3600)),
            ("2d", Some(172_800)),
            ("", None),
            ("h", None),
            ("1w", None),
            ("-1h", None),
            ("1.5h", None),
            ("99999999999999999999d", None),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_grace(text).ok(),
                seconds.map(Duration::from_secs),
                "{text}"
            );
        }
    }

    /// A store on disk: what a prune removes, keeps, and leaves alone.
    #[test]
    fn a_prune_removes_exactly_the_stale_unreferenced_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let old = SystemTime::now() - Duration::from_secs(7200);
        let write = |path: &Path, bytes: &[u8], modified: SystemTime| {
            std::fs::write(path, bytes).unwrap();
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(modified).unwrap();
        };
        let blob = |bytes: &[u8], modified| {
            let digest = digest_of(bytes);
            write(&blobs.join(digest.hex()), bytes, modified);
            digest
        };
        let layer = blob(b"layer", old);
        let config = blob(b"{}", old);
        let manifest_bytes = serde_json::to_vec(&json!({
            "config": {"mediaType": spec::OCI_CONFIG, "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer.to_string(), "size": 5}],
        }))
        .unwrap();
        let manifest = blob(&manifest_bytes, old);
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": spec::OCI_MANIFEST,
            "digest": manifest.to_string(), "size": manifest_bytes.len()}]});
        std::fs::write(root.join("index.json"), index.to_string()).unwrap();
        let stale = blob(b"unreferenced", old);
        let fresh = blob(b"unreferenced but new", SystemTime::now());
        let partial = |digest: &Digest, suffix: &str, modified| {
            let path = blobs.join(format!(".{}{suffix}", digest.hex()));
            write(&path, b"half", modified);
            path
        };
        let old_partial = partial(&digest_of(b"a"), ".partial", old);
        let old_fresh_named = partial(&digest_of(b"b"), ".AbCdEf012345.partial", old);
        let new_partial = partial(&digest_of(b"c"), ".partial", SystemTime::now());
        let locked_partial = partial(&digest_of(b"d"), ".partial", old);
        let lock = std::fs::File::open(&locked_partial).unwrap();
        assert!(try_lock(&lock).unwrap());
        let temporary = root.join(".oci-fetch.AbCdEf012345");
        write(&temporary, b"{}", old);
        // Not the store's to remove, however old.
        let junk = [
            blobs.join("not-a-digest"),
            blobs.join(format!("{}.tmp", stale.hex())),
            root.join("blobs/sha384-not-swept"),
            root.join("oci-layout"),
        ];
        for path in &junk {
            write(path, b"junk", old);
        }
        std::os::unix::fs::symlink("/etc/passwd", blobs.join(digest_of(b"link").hex())).unwrap();
        std::fs::create_dir(blobs.join(digest_of(b"dir").hex())).unwrap();

        let expected: Vec<PathBuf> = {
            let mut all = vec![
                blobs.join(stale.hex()),
                old_partial,
                old_fresh_named,
                temporary,
            ];
            all.sort();
            all
        };
        let grace = Duration::from_secs(3600);
        let dry = prune(
            root,
            &Options {
                grace,
                dry_run: true,
            },
        )
        .unwrap();
        let listed: Vec<PathBuf> = dry.removed.iter().map(|r| r.path.clone()).collect();
        assert_eq!(listed, expected);
        assert!(
            expected.iter().all(|p| p.exists()),
            "a dry run removes nothing"
        );
        let real = prune(
            root,
            &Options {
                grace,
                dry_run: false,
            },
        )
        .unwrap();
        assert_eq!(real.removed, dry.removed);
        assert_eq!(real.bytes(), 12 + 4 + 4 + 2);
        assert!(expected.iter().all(|p| !p.exists()));
        for kept in [&layer, &config, &manifest, &fresh] {
            assert!(blobs.join(kept.hex()).exists());
        }
        assert!(new_partial.exists() && locked_partial.exists());
        assert!(junk.iter().all(|p| p.exists()));
        let again = prune(
            root,
            &Options {
                grace,
                dry_run: false,
            },
        )
        .unwrap();
        assert!(again.removed.is_empty());
        drop(lock);
    }

    #[test]
    fn a_directory_without_index_json_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("blobs/sha256")).unwrap();
        let blob = tmp.path().join("blobs/sha256").join(digest_of(b"x").hex());
        std::fs::write(&blob, b"x").unwrap();
        let options = Options {
            grace: Duration::ZERO,
            dry_run: false,
        };
        let err = format!("{:#}", prune(tmp.path(), &options).err().unwrap());
        assert!(
            err.contains("index.json: absent") && err.contains("nothing removed"),
            "{err}"
        );
        assert!(blob.exists());
    }
}
