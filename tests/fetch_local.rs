//! `oci-fetch` against the other users and processes of the same machine:
//! the private directory of pipes, the `--store` layout, and how long a
//! streaming `oci-fetch` lives, whoever and wherever its reader is. Real
//! registry (`docker-registry`), real users (`nobody` through `setpriv`),
//! real pid namespaces (`unshare`). These tests switch users and make
//! namespaces: they need root, and fail rather than skip without it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::fixtures::sample_layout;
use support::registry::{Auth, Proxy, Registry};
use support::{sh_env, stderr, Scratch};

/// A test's directory: HOME, TMPDIR (`tmp`, where streaming makes its
/// pipes) and outputs. `nobody` may enter it and write in `tmp`, as in a
/// real /tmp (sticky, world-writable).
struct Work {
    scratch: Scratch,
}

impl Work {
    fn new() -> Work {
        let scratch = Scratch::new();
        let tmp = scratch.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, PermissionsExt::from_mode(0o1777)).unwrap();
        std::fs::set_permissions(scratch.0.path(), PermissionsExt::from_mode(0o755)).unwrap();
        Work { scratch }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }

    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// Runs a bash script here, with TMPDIR inside.
    fn sh(&self, script: &str) -> Output {
        let tmp = self.tmp().display().to_string();
        sh_env(self.scratch.0.path(), &[("TMPDIR", &tmp)], script)
    }
}

fn sample_registry() -> Registry {
    let registry = Registry::start(Auth::None);
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "sample:1",
    );
    registry
}

/// The merged tar of the local copy of the sample.
fn local_merge() -> Vec<u8> {
    let work = Work::new();
    let out = work.sh(&format!(
        "oci-layers --tag sample '{}' | oci-merge",
        sample_layout().display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

fn assert_same_tar(fetched: &[u8], what: &str) {
    let local = local_merge();
    assert!(
        fetched == local,
        "{what}: the fetched merge differs from the local one ({} vs {} bytes)",
        fetched.len(),
        local.len()
    );
}

/// The lines of a program's stderr.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

/// Asserts that `message` (what a program wrote on stderr) is one error
/// line of `program` that holds each of `needles`.
fn assert_error_line(message: &str, program: &str, needles: &[&str]) {
    let lines = lines(message);
    assert_eq!(lines.len(), 1, "{message}");
    let prefix = format!("{program}: error: ");
    assert!(
        lines[0].starts_with(&prefix) && needles.iter().all(|n| lines[0].contains(n)),
        "expected {prefix}... with {needles:?}: {message}"
    );
}

// ---------------------------------------------------------------------------
// The --store layout.

#[test]
fn a_planted_lock_symlink_is_not_followed() {
    let registry = sample_registry();
    let work = Work::new();
    std::fs::create_dir(work.path("store")).unwrap();
    let target = work.path("created-through-the-link");
    std::os::unix::fs::symlink(&target, work.path("store/.oci-fetch.lock")).unwrap();
    let out = work.sh(&format!(
        "oci-fetch --store store {}/sample:1",
        registry.host()
    ));
    assert!(
        !target.exists(),
        "the lock was created through the planted link"
    );
    assert!(!out.status.success());
    assert_error_line(&stderr(&out), "oci-fetch", &[".oci-fetch.lock"]);
}

fn blob(work: &Work, digest: &str) -> PathBuf {
    work.path(&format!(
        "store/blobs/sha256/{}",
        digest.trim_start_matches("sha256:")
    ))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Blobs of the right size but the wrong bytes (zeroed, or a symlink to
/// zeros) are found on their next use, fetched again and replaced, each
/// with one warning; the merge then succeeds.
#[test]
fn bad_blobs_of_the_right_size_are_detected_and_fetched_again() {
    let registry = sample_registry();
    let work = Work::new();
    let reference = format!("{}/sample:1", registry.host());
    let first = work.sh(&format!("oci-fetch --store store {reference}"));
    assert!(first.status.success(), "{}", stderr(&first));
    let layers: Vec<PathBuf> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(layers.len(), 3);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path("store/index.json")).unwrap()).unwrap();
    let manifest = blob(&work, index["manifests"][0]["digest"].as_str().unwrap());

    let zero = |path: &Path| {
        let size = std::fs::metadata(path).unwrap().len() as usize;
        std::fs::write(path, vec![0u8; size]).unwrap();
    };
    zero(&layers[0]);
    zero(&manifest);
    let zeros = work.path("zeros");
    std::fs::write(
        &zeros,
        vec![0u8; std::fs::metadata(&layers[1]).unwrap().len() as usize],
    )
    .unwrap();
    std::fs::remove_file(&layers[1]).unwrap();
    std::os::unix::fs::symlink(&zeros, &layers[1]).unwrap();

    let out = work.sh(&format!(
        "oci-fetch --store store {reference} | oci-merge > merged.tar"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tar(&std::fs::read(work.path("merged.tar")).unwrap(), "repaired");
    let message = stderr(&out);
    let warnings = lines(&message);
    assert_eq!(warnings.len(), 3, "{message}");
    for bad in [&layers[0], &layers[1], &manifest] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.starts_with("oci-fetch: warning: ") && w.contains(name))
                .count(),
            1,
            "{name}: {message}"
        );
        let meta = std::fs::symlink_metadata(bad).unwrap();
        assert!(meta.is_file(), "{name} is a regular file again");
        assert_eq!(sha256_hex(&std::fs::read(bad).unwrap()), name);
    }
    assert!(std::fs::read(&zeros).unwrap().iter().all(|&b| b == 0));
    // The repaired store serves offline too.
    let offline = work.sh(&format!("oci-layers --tag {reference} store | oci-merge"));
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_same_tar(&offline.stdout, "offline");
    // And a good store is used quietly.
    let again = work.sh(&format!("oci-fetch --store store {reference}"));
    assert!(
        again.status.success() && again.stderr.is_empty(),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_corrupt_index_is_refused_before_any_download() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Work::new();
    std::fs::create_dir(work.path("store")).unwrap();
    std::fs::write(work.path("store/index.json"), b"{\"manifests\": [").unwrap();
    let out = work.sh(&format!(
        "oci-fetch --store store {}/sample:1",
        proxy.host()
    ));
    assert!(!out.status.success());
    assert_error_line(&stderr(&out), "oci-fetch", &["index.json"]);
    assert!(
        proxy.blob_gets().is_empty(),
        "blobs were downloaded first: {:#?}",
        proxy.blob_gets()
    );
}
