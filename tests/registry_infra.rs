//! The registry test infrastructure itself (tests/support/registry.rs and
//! `registry-proxy`), proven against real clients before `oci-fetch`'s
//! tests rely on it: `skopeo` pushes and pulls through every kind of
//! registry, and plain HTTP requests see each fault the proxy injects.
//! When an `oci-fetch` test fails, these say whether the fault is in the
//! test bench or in `oci-fetch`.

mod support;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::fixtures::sample_layout;
use support::registry::{Auth, Proxy, Registry, TokenPolicy};
use support::{stderr, Scratch};

/// The sample image as a skopeo source.
fn sample() -> String {
    format!("oci:{}:sample", sample_layout().display())
}

/// A blob of the sample layout, by digest.
fn blob_path(digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    sample_layout().join("blobs/sha256").join(hex)
}

/// The digest of the manifest tagged `sample` in the layout.
fn sample_manifest_digest() -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(sample_layout().join("index.json")).unwrap())
            .unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "sample")
        .expect("a manifest tagged sample")["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The digest and size of the sample's largest layer: what the blob
/// faults are tried on.
fn largest_layer() -> (String, u64) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob_path(&sample_manifest_digest())).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_owned(),
                l["size"].as_u64().unwrap(),
            )
        })
        .max_by_key(|(_, size)| *size)
        .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// `skopeo inspect --raw` of `docker://HOST/NAME`, with `creds` (or none).
fn inspect_raw(host: &str, name: &str, creds: Option<&str>) -> Output {
    let mut command = Command::new("skopeo");
    command.args(["inspect", "--raw", "--tls-verify=false", "--retry-times=0"]);
    match creds {
        Some(creds) => command.arg(format!("--creds={creds}")),
        None => command.arg("--no-creds"),
    };
    command
        .arg(format!("docker://{host}/{name}"))
        .output()
        .expect("skopeo")
}

/// Asserts that `out` is the sample's manifest, byte for byte.
fn assert_sample_manifest(out: &Output) {
    assert!(out.status.success(), "skopeo inspect: {}", stderr(out));
    assert_eq!(sha256(&out.stdout), sample_manifest_digest());
}

/// Asserts that skopeo was refused for want of credentials.
fn assert_refused(out: &Output) {
    assert!(!out.status.success(), "skopeo inspect succeeded");
    let err = stderr(out).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "not an authentication failure: {err}"
    );
}

/// A GET of the sample's blob `digest` at `host`, with optional headers.
fn get_blob(host: &str, digest: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(2))
        .redirects(0)
        .build();
    let mut request = agent.get(&format!("http://{host}/v2/sample/blobs/{digest}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = request.call().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok(body)
}

/// An anonymous registry holding the sample as `sample:1`.
fn registry_with_sample() -> Registry {
    let registry = Registry::start(Auth::None);
    registry.push(&sample(), "sample:1");
    registry
}

#[test]
fn anonymous_registry_serves_the_pushed_image_unchanged() {
    let registry = registry_with_sample();
    // --preserve-digests: the registry holds the layout's very manifest.
    assert_sample_manifest(&inspect_raw(&registry.host(), "sample:1", None));
    let (digest, _) = largest_layer();
    let blob = get_blob(&registry.host(), &digest, &[]).unwrap();
    assert_eq!(blob, std::fs::read(blob_path(&digest)).unwrap());
    let by_digest = format!("sample@{}", sample_manifest_digest());
    assert_sample_manifest(&inspect_raw(&registry.host(), &by_digest, None));
}

#[test]
fn proxy_cuts_the_first_blob_get_and_serves_the_second() {
    let registry = registry_with_sample();
    let proxy = Proxy::start(&registry.host(), &["--cut-after", "100"]);
    let (digest, size) = largest_layer();
    assert!(size > 100, "the largest layer has {size} bytes");
    let err = get_blob(&proxy.host(), &digest, &[]).unwrap_err();
    assert!(err.contains("reading the body"), "{err}");
    let blob = get_blob(&proxy.host(), &digest, &[]).unwrap();
    assert_eq!(blob, std::fs::read(blob_path(&digest)).unwrap());
    // A resume from the cut: the Range header reaches the registry.
    let tail = get_blob(&proxy.host(), &digest, &[("Range", "bytes=100-")]).unwrap();
    assert_eq!(tail, blob[100..]);
    // Manifests are never faulted, and skopeo gets everything through.
    assert_sample_manifest(&inspect_raw(&proxy.host(), "sample:1", None));

    let gets = proxy.blob_gets();
    assert_eq!(gets[0]["fault"], "cut-after");
    assert_eq!(gets[0]["status"], 200);
    assert!(gets[1..].iter().all(|g| g["fault"].is_null()), "{gets:?}");
    assert_eq!(gets[2]["range"], "bytes=100-");
    assert_eq!(gets[2]["status"], 206);
    assert!(proxy.log().iter().all(|l| l["listener"] == "main"));
}

#[test]
fn proxy_relays_a_push_and_a_pull() {
    // Pushes send chunked request bodies (PATCH of an upload), and the
    // registry's upload URLs must point back at the proxy.
    let registry = Registry::start(Auth::None);
    let proxy = Proxy::start(&registry.host(), &[]);
    support::fixtures::skopeo_copy(
        &["--dest-tls-verify=false", "--preserve-digests"],
        &sample(),
        &format!("docker://{}/sample:1", proxy.host()),
    );
    assert_sample_manifest(&inspect_raw(&registry.host(), "sample:1", None));
    let out = Scratch::new();
    let dest = out.path("copy");
    support::fixtures::skopeo_copy(
        &["--src-tls-verify=false"],
        &format!("docker://{}/sample:1", proxy.host()),
        &format!("oci:{}:copy", dest.display()),
    );
    let (digest, _) = largest_layer();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(dest.join("blobs/sha256").join(hex)).unwrap(),
        std::fs::read(blob_path(&digest)).unwrap()
    );
    let methods: Vec<String> = proxy
        .log()
        .iter()
        .map(|l| l["method"].as_str().unwrap().to_owned())
        .collect();
    assert!(methods.iter().any(|m| m == "PATCH"), "{methods:?}");
    assert!(methods.iter().any(|m| m == "PUT"), "{methods:?}");
    assert!(proxy.stderr().is_empty(), "{}", proxy.stderr());
}

#[test]
fn proxy_injects_status_faults_once() {
    let registry = registry_with_sample();
    let (digest, _) = largest_layer();
    let expected = std::fs::read(blob_path(&digest)).unwrap();

    let proxy = Proxy::start(&registry.host(), &["--status-429", "7", "--times", "2"]);
    let agent = ureq::agent();
    let url = format!("http://{}/v2/sample/blobs/{digest}", proxy.host());
    for _ in 0..2 {
        match agent.get(&url).call() {
            Err(ureq::Error::Status(429, response)) => {
                assert_eq!(response.header("Retry-After"), Some("7"));
            }
            other => panic!("not a 429: {other:?}"),
        }
    }
    assert_eq!(get_blob(&proxy.host(), &digest, &[]).unwrap(), expected);
    let faults: Vec<Value> = proxy
        .blob_gets()
        .iter()
        .map(|g| g["fault"].clone())
        .collect();
    assert_eq!(
        faults,
        [json!("status-429"), json!("status-429"), Value::Null]
    );

    let proxy = Proxy::start(&registry.host(), &["--status-500"]);
    let err = get_blob(&proxy.host(), &digest, &[]).unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert_eq!(get_blob(&proxy.host(), &digest, &[]).unwrap(), expected);
}

#[test]
fn proxy_flips_a_byte_every_time() {
    let registry = registry_with_sample();
    let (digest, size) = largest_layer();
    let expected = std::fs::read(blob_path(&digest)).unwrap();
    let offset = size / 2;
    let proxy = Proxy::start(&registry.host(), &["--flip-byte", &offset.to_string()]);
    for _ in 0..2 {
        let blob = get_blob(&proxy.host(), &digest, &[]).unwrap();
        let differing: Vec<usize> = (0..blob.len())
            .filter(|&i| blob[i] != expected[i])
            .collect();
        assert_eq!(differing, [offset as usize]);
    }
    // The offset is the blob's, also in a range: a corrupted registry.
    let from = offset - 10;
    let range = format!("bytes={from}-");
    let tail = get_blob(&proxy.host(), &digest, &[("Range", &range)]).unwrap();
    assert_ne!(tail, expected[from as usize..]);
    assert_eq!(tail[..10], expected[from as usize..offset as usize]);
    let range = format!("bytes={}-", offset + 1);
    let tail = get_blob(&proxy.host(), &digest, &[("Range", &range)]).unwrap();
    assert_eq!(tail, expected[offset as usize + 1..]);
    let faults: Vec<Value> = proxy
        .blob_gets()
        .iter()
        .map(|g| g["fault"].clone())
        .collect();
    let flip = json!("flip-byte");
    assert_eq!(faults, [flip.clone(), flip.clone(), flip, Value::Null]);
}

#[test]
fn proxy_stalls_a_blob_until_the_client_gives_up() {
    let registry = registry_with_sample();
    let (digest, _) = largest_layer();
    let proxy = Proxy::start(&registry.host(), &["--stall"]);
    let started = Instant::now();
    // get_blob's read timeout is 2 s.
    let err = get_blob(&proxy.host(), &digest, &[]).unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2), "{err}");
    assert!(err.contains("reading the body"), "{err}");
    assert_eq!(proxy.blob_gets()[0]["fault"], "stall");
    let blob = get_blob(&proxy.host(), &digest, &[]).unwrap();
    assert_eq!(blob, std::fs::read(blob_path(&digest)).unwrap());
}

#[test]
fn proxy_limits_the_bandwidth() {
    let registry = registry_with_sample();
    let (digest, size) = largest_layer();
    // About a second for the blob.
    let proxy = Proxy::start(&registry.host(), &["--rate", &size.to_string()]);
    let started = Instant::now();
    let blob = get_blob(&proxy.host(), &digest, &[]).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(blob.len() as u64, size);
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(5),
        "{size} bytes at {size} B/s took {elapsed:?}"
    );
}

#[test]
fn basic_auth_registry_needs_its_credentials() {
    let registry = Registry::start(Auth::basic("alice", "secret"));
    registry.push(&sample(), "sample:1");
    assert_refused(&inspect_raw(&registry.host(), "sample:1", None));
    assert_refused(&inspect_raw(
        &registry.host(),
        "sample:1",
        Some("alice:wrong"),
    ));
    assert_sample_manifest(&inspect_raw(
        &registry.host(),
        "sample:1",
        Some("alice:secret"),
    ));
}

#[test]
fn token_auth_registry_follows_the_issuers_policy() {
    let registry = Registry::start(Auth::token("bob", "hunter2"));
    registry.push(&sample(), "public/sample:1");
    registry.push(&sample(), "private/sample:1");
    let issuer = registry.token_issuer().unwrap();
    let pushes = issuer.requests();
    assert!(!pushes.is_empty());
    assert!(pushes.iter().all(|r| r.authenticated), "{pushes:?}");
    assert!(
        pushes
            .iter()
            .flat_map(|r| &r.granted)
            .any(|a| a.name == "private/sample" && a.actions.iter().any(|x| x == "push")),
        "{pushes:?}"
    );

    let host = registry.host();
    assert_sample_manifest(&inspect_raw(&host, "public/sample:1", None));
    let anonymous = issuer.requests()[pushes.len()..].to_vec();
    assert!(anonymous.iter().all(|r| r.user.is_none()), "{anonymous:?}");
    assert!(
        anonymous
            .iter()
            .flat_map(|r| &r.granted)
            .any(|a| a.name == "public/sample" && a.actions == ["pull"]),
        "{anonymous:?}"
    );

    let before = issuer.token_requests();
    assert_refused(&inspect_raw(&host, "private/sample:1", None));
    assert_refused(&inspect_raw(&host, "private/sample:1", Some("bob:wrong")));
    let refused = issuer.requests()[before..].to_vec();
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|r| r.granted.is_empty()), "{refused:?}");
    assert!(refused
        .iter()
        .any(|r| r.user.as_deref() == Some("bob") && !r.authenticated));

    assert_sample_manifest(&inspect_raw(&host, "private/sample:1", Some("bob:hunter2")));
}

#[test]
fn token_issuer_can_reject_wrong_credentials() {
    let mut policy = TokenPolicy::new("bob", "hunter2");
    policy.reject_wrong_credentials = true;
    let registry = Registry::start(Auth::Token(policy));
    registry.push(&sample(), "public/sample:1");
    let out = inspect_raw(&registry.host(), "public/sample:1", Some("bob:wrong"));
    assert!(!out.status.success());
    let issuer = registry.token_issuer().unwrap();
    assert_eq!(issuer.requests().last().unwrap().status, 401);
}

#[test]
fn proxy_redirects_blobs_to_another_host_with_the_registrys_credentials() {
    // A private repository: the redirect listener gets the blob only with
    // the credentials the redirected request carried (a presigned URL),
    // not with what the client sends to the other host.
    let registry = Registry::start(Auth::token("bob", "hunter2"));
    registry.push(&sample(), "private/sample:1");
    let proxy = Proxy::start(&registry.host(), &["--redirect", "--times", "all"]);
    let out = Scratch::new();
    let dest = out.path("copy");
    support::fixtures::skopeo_copy(
        &["--src-tls-verify=false", "--src-creds=bob:hunter2"],
        &format!("docker://{}/private/sample:1", proxy.host()),
        &format!("oci:{}:copy", dest.display()),
    );
    let (digest, _) = largest_layer();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(dest.join("blobs/sha256").join(hex)).unwrap(),
        std::fs::read(blob_path(&digest)).unwrap()
    );
    let log = proxy.log();
    let redirected: Vec<&Value> = log.iter().filter(|l| l["fault"] == "redirect").collect();
    let served: Vec<&Value> = log.iter().filter(|l| l["listener"] == "redirect").collect();
    assert!(!redirected.is_empty(), "{log:?}");
    assert_eq!(redirected.len(), served.len(), "{log:?}");
    assert!(redirected
        .iter()
        .all(|l| l["status"] == 307 && l["authorization"] == true));
    // Go's HTTP client (skopeo) drops Authorization on a cross-host redirect.
    assert!(served
        .iter()
        .all(|l| l["status"] == 200 && l["authorization"] == false));
}
