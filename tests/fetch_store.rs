//! `oci-fetch --store` looking after itself, end to end against a real
//! registry (`docker-registry`, images pushed by skopeo from umoci-built
//! layouts) behind `registry-proxy`: a download cut short resumes on the
//! next run with `Range`, verified whole, and `--prune` removes exactly
//! what no recorded image needs, never what a running fetch is about to
//! record.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use support::fixtures::{big_layout, sample_layout, BIG_LAYER};
use support::registry::{Proxy, Registry};
use support::{sh_env, stderr, Scratch};

/// The rate (bytes a second) that throttled downloads get.
const THROTTLE: &str = "1000000";

/// A test's directory: the store is `store` in it.
struct Work {
    scratch: Scratch,
}

impl Work {
    fn new() -> Work {
        Work {
            scratch: Scratch::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    fn sh(&self, script: &str) -> Output {
        let tmp = self.path("");
        sh_env(&tmp, &[("TMPDIR", tmp.to_str().unwrap())], script)
    }

    /// Runs a pipeline that must succeed quietly; its stdout.
    fn ok(&self, script: &str) -> Vec<u8> {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{script}: {}", stderr(&out));
        out.stdout
    }

    /// `oci-fetch` with `args`, started in the background.
    fn spawn(&self, args: &[&str]) -> Child {
        support::cmd("oci-fetch")
            .args(args)
            .current_dir(self.path(""))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The file of `digest` (hex) in the store, and its download file.
    fn blob(&self, hex: &str) -> PathBuf {
        self.store().join("blobs/sha256").join(hex)
    }

    fn partial(&self, hex: &str) -> PathBuf {
        self.store().join(format!("blobs/sha256/.{hex}.partial"))
    }

    /// Every `.partial` file in the store.
    fn partials(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.store().join("blobs/sha256")) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".partial"))
            .collect()
    }
}

/// What `oci-layers --json` says of a local image: its manifest, config
/// and layer digests (hex).
fn image_blobs(layout: &Path, tag: &str) -> BTreeSet<String> {
    let work = Work::new();
    let json = work.ok(&format!(
        "oci-layers --json --tag {tag} '{}'",
        layout.display()
    ));
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut digests = vec![value["manifest"].clone(), value["config"].clone()];
    digests.extend(
        value["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone()),
    );
    digests
        .iter()
        .map(|d| d.as_str().unwrap().trim_start_matches("sha256:").to_owned())
        .collect()
}

/// The big image's noise layer (hex), and its bytes from the local layout.
fn big_layer() -> (String, Vec<u8>) {
    let big = image_blobs(&big_layout(), "big");
    let sample = image_blobs(&sample_layout(), "sample");
    let layout = big_layout();
    let hex = big
        .difference(&sample)
        .find(|hex| {
            std::fs::metadata(layout.join("blobs/sha256").join(hex))
                .is_ok_and(|m| m.len() > BIG_LAYER as u64)
        })
        .expect("the big layer")
        .clone();
    let bytes = std::fs::read(layout.join("blobs/sha256").join(&hex)).unwrap();
    (hex, bytes)
}

/// The merged tar of `reference` fetched afresh, streamed.
fn fresh_merge(reference: &str) -> Vec<u8> {
    Work::new().ok(&format!("oci-fetch {reference} | oci-merge"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The blob GETs of the big layer `proxy` saw: (range asked, status).
fn layer_gets(proxy: &Proxy, hex: &str) -> Vec<(Option<String>, u64)> {
    proxy
        .blob_gets()
        .iter()
        .filter(|g| g["path"].as_str().unwrap().ends_with(hex))
        .map(|g| {
            let range = g["range"].as_str().map(str::to_owned);
            (range, g["status"].as_u64().unwrap())
        })
        .collect()
}

/// Writes `bytes` as a download file left in the store by an earlier run
/// (the store made by a first fetch).
fn leave_partial(work: &Work, hex: &str, bytes: &[u8]) {
    std::fs::write(work.partial(hex), bytes).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(work.partial(hex), mode).unwrap();
}

// ---------------------------------------------------------------------------
// Resuming.

#[test]
fn an_interrupted_fetch_resumes_from_its_partial_with_a_range_request() {
    let registry = Registry::with_sample_and_big();
    let (hex, layer) = big_layer();
    let throttled = Proxy::start(&registry.host(), &["--rate", THROTTLE]);
    let work = Work::new();
    let reference = format!("{}/big:1", throttled.host());
    let mut first = work.spawn(&["--store", "store", &reference]);
    wait_until("the big layer to be half downloaded", || {
        std::fs::metadata(work.partial(&hex)).is_ok_and(|m| m.len() > (BIG_LAYER / 3) as u64)
    });
    first.kill().unwrap(); // SIGKILL: no handler runs.
    first.wait().unwrap();
    let kept = std::fs::metadata(work.partial(&hex)).unwrap().len();
    assert!(
        !work.blob(&hex).exists(),
        "a partial blob is never in place"
    );

    let proxy = Proxy::start(&registry.host(), &[]);
    let resumed = work.ok(&format!(
        "oci-fetch --store store {}/big:1 | oci-merge",
        proxy.host()
    ));
    assert_eq!(
        layer_gets(&proxy, &hex),
        [(Some(format!("bytes={kept}-")), 206)],
        "only the rest is asked for"
    );
    assert_big_stored(&registry, &work, &layer, &resumed);
}

/// A store holding the sample, and a download file of the big layer (hex,
/// bytes) whose first MiB has a flipped bit, as a disk can leave it.
fn damaged_partial() -> (Registry, Work, String, Vec<u8>) {
    let registry = Registry::with_sample_and_big();
    let (hex, bytes) = big_layer();
    let work = Work::new();
    work.ok(&format!(
        "oci-fetch --store store {}/sample:1",
        registry.host()
    ));
    let mut kept = bytes[..1 << 20].to_vec();
    kept[1000] ^= 1;
    leave_partial(&work, &hex, &kept);
    (registry, work, hex, bytes)
}

/// The big layer is stored right, no download file is left, and `merged`
/// (the big image, merged) is what a fresh fetch gives.
fn assert_big_stored(registry: &Registry, work: &Work, layer: &[u8], merged: &[u8]) {
    let (hex, _) = big_layer();
    assert!(std::fs::read(work.blob(&hex)).unwrap() == layer);
    assert!(work.partials().is_empty(), "{:?}", work.partials());
    assert!(merged == fresh_merge(&format!("{}/big:1", registry.host())));
}

#[test]
fn damaged_kept_bytes_get_one_warning_and_the_blob_downloaded_from_the_start() {
    let (registry, work, hex, bytes) = damaged_partial();

    let proxy = Proxy::start(&registry.host(), &[]);
    let out = work.sh(&format!(
        "oci-fetch --store store {}/big:1 | oci-merge > merged.tar",
        proxy.host()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<&str> = std::str::from_utf8(&out.stderr).unwrap().lines().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("oci-fetch: warning: ")
            && warnings[0].contains(&work.partial(&hex).display().to_string())
            && warnings[0].contains("the 1048576 bytes kept from an earlier download")
            && warnings[0].contains("digest mismatch")
            && warnings[0].ends_with("downloading it again from the start"),
        "{warnings:?}"
    );
    assert_eq!(
        layer_gets(&proxy, &hex),
        [(Some("bytes=1048576-".to_owned()), 206), (None, 200)],
        "resumed, then downloaded again from the start"
    );
    let merged = std::fs::read(work.path("merged.tar")).unwrap();
    assert_big_stored(&registry, &work, &bytes, &merged);
}

/// A registry answering the range with the whole blob: the download starts
/// over with what it sends. The kept bytes are damaged, so had they been
/// used (the start of the answer skipped instead), the digest would fail,
/// with a warning and a second download.
#[test]
fn a_registry_ignoring_the_range_gets_the_download_started_over() {
    let (registry, work, hex, bytes) = damaged_partial();

    let proxy = Proxy::start(&registry.host(), &["--ignore-range"]);
    let merged = work.ok(&format!(
        "oci-fetch --store store {}/big:1 | oci-merge",
        proxy.host()
    ));
    assert_eq!(
        layer_gets(&proxy, &hex),
        [(Some("bytes=1048576-".to_owned()), 200)],
        "asked for the rest, got the whole, used it"
    );
    assert_big_stored(&registry, &work, &bytes, &merged);
}

// ---------------------------------------------------------------------------
// Housekeeping.

/// The store of `work` with `sample:1` and `big:1` fetched, then big:1's
/// entry removed from index.json (as a user untags it), every file made
/// two hours old; and download files: a stale one, a fresh one, and one
/// locked by a run writing it (the returned file holds the lock).
fn untagged_store(work: &Work, registry: &Registry) -> (std::fs::File, [PathBuf; 3]) {
    for name in ["sample:1", "big:1"] {
        work.ok(&format!(
            "oci-fetch --store store {}/{name}",
            registry.host()
        ));
    }
    let index_path = work.store().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    entries.retain(|e| {
        let name = e["annotations"]["org.opencontainers.image.ref.name"].as_str();
        !name.unwrap().ends_with("/big:1")
    });
    assert_eq!(entries.len(), 1);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let hex = |seed: &[u8]| sha256_hex(seed);
    let (stale, fresh, locked) = (hex(b"stale"), hex(b"fresh"), hex(b"locked"));
    leave_partial(work, &stale, b"stale bytes");
    leave_partial(work, &locked, b"being written");
    work.ok("find store -type f -exec touch -d '2 hours ago' {} +");
    leave_partial(work, &fresh, b"fresh bytes");
    let held = std::fs::File::open(work.partial(&locked)).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    (
        held,
        [
            work.partial(&stale),
            work.partial(&fresh),
            work.partial(&locked),
        ],
    )
}

/// What a prune of [`untagged_store`] must remove: the blobs only big:1
/// used, and the stale download file, sorted.
fn expected_removals(work: &Work, stale_partial: &Path) -> Vec<PathBuf> {
    let only_big: BTreeSet<String> = image_blobs(&big_layout(), "big")
        .difference(&image_blobs(&sample_layout(), "sample"))
        .cloned()
        .collect();
    assert_eq!(only_big.len(), 3, "a manifest, a config and a layer");
    let mut paths: Vec<PathBuf> = only_big.iter().map(|hex| work.blob(hex)).collect();
    paths.push(stale_partial.to_path_buf());
    paths.sort();
    paths
}

#[test]
fn a_prune_removes_exactly_the_blobs_only_the_untagged_image_used() {
    let registry = Registry::with_sample_and_big();
    let work = Work::new();
    let (_held, [stale, fresh, locked]) = untagged_store(&work, &registry);
    let expected = expected_removals(&work, &stale);
    let size: u64 = expected
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();

    let report = work.ok("oci-fetch --store store --prune --json");
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    let removed: Vec<PathBuf> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| PathBuf::from(r["path"].as_str().unwrap()))
        .collect();
    assert_eq!(removed, expected);
    assert_eq!(report["bytes"], size);
    assert_eq!(report["dryRun"], false);
    assert!(expected.iter().all(|p| !p.exists()));
    assert!(fresh.exists() && locked.exists());

    // What sample:1 needs is all there, shared layers included.
    let reference = format!("{}/sample:1", registry.host());
    let merged = work.ok(&format!("oci-layers --tag {reference} store | oci-merge"));
    assert!(merged == fresh_merge(&reference));
    for hex in image_blobs(&sample_layout(), "sample") {
        assert!(work.blob(&hex).exists(), "{hex}");
    }
    // Quiet by default, and nothing more to remove.
    assert!(work.ok("oci-fetch --store store --prune").is_empty());
    let again = work.ok("oci-fetch --store store --prune --dry-run");
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
}

#[test]
fn a_dry_run_removes_nothing_and_lists_what_a_prune_removes() {
    let registry = Registry::with_sample_and_big();
    let work = Work::new();
    let (_held, [stale, ..]) = untagged_store(&work, &registry);
    let expected = expected_removals(&work, &stale);
    let before = work.ok("find store | sort");

    let listed = work.ok("oci-fetch --store store --prune --dry-run");
    let listed: Vec<PathBuf> = String::from_utf8(listed)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(listed, expected);
    let json = work.ok("oci-fetch --store store --prune --dry-run --json");
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["dryRun"], true);
    assert_eq!(work.ok("find store | sort"), before, "nothing removed");

    let pruned = work.ok("oci-fetch --store store --prune --json");
    let pruned: serde_json::Value = serde_json::from_slice(&pruned).unwrap();
    assert_eq!(pruned["removed"], json["removed"]);
    assert_eq!(pruned["bytes"], json["bytes"]);
    assert!(listed.iter().all(|p| !p.exists()));
}

/// A prune started while a fetch is downloading: the fetch has already
/// found the layers it shares with an unreferenced image in the store, and
/// has not recorded its reference yet. With no grace period, only the
/// store's lock keeps those layers: the prune waits for the fetch.
#[test]
fn a_prune_during_a_fetch_never_removes_what_the_fetch_records() {
    let registry = Registry::with_sample_and_big();
    let work = Work::new();
    work.ok(&format!(
        "oci-fetch --store store {}/sample:1",
        registry.host()
    ));
    std::fs::write(
        work.store().join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let (hex, _) = big_layer();
    let proxy = Proxy::start(&registry.host(), &["--rate", THROTTLE]);
    let reference = format!("{}/big:1", proxy.host());
    let fetch = work.spawn(&["--store", "store", "--jobs", "4", &reference]);
    wait_until("the big layer's download", || {
        !layer_gets(&proxy, &hex).is_empty()
    });
    // The other layers are the sample's, found in the store at once.
    std::thread::sleep(Duration::from_millis(500));
    let mut fetch = fetch;
    assert!(
        fetch.try_wait().unwrap().is_none(),
        "the fetch is still downloading"
    );
    let prune = work.spawn(&["--store", "store", "--prune", "--grace", "0", "--json"]);

    let fetched = fetch.wait_with_output().unwrap();
    assert!(fetched.status.success(), "{}", stderr(&fetched));
    let pruned = prune.wait_with_output().unwrap();
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    let report: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    let removed: BTreeSet<String> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .collect();
    let only_sample: BTreeSet<String> = image_blobs(&sample_layout(), "sample")
        .difference(&image_blobs(&big_layout(), "big"))
        .cloned()
        .collect();
    assert_eq!(
        removed, only_sample,
        "the sample's manifest and config only"
    );

    // Everything the fetch recorded is there and whole.
    for hex in image_blobs(&big_layout(), "big") {
        let stored = std::fs::read(work.blob(&hex)).unwrap();
        assert_eq!(sha256_hex(&stored), hex);
    }
    let merged = work.ok(&format!("oci-layers --tag {reference} store | oci-merge"));
    assert!(merged == fresh_merge(&format!("{}/big:1", registry.host())));
}
