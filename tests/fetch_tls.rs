//! `oci-fetch` and TLS, end to end: a real `docker-registry` serving
//! HTTPS with a self-signed certificate is refused until `SSL_CERT_FILE`
//! trusts it, then gives the very merge `oci-layers` gives for the local
//! copy; a plain-HTTP registry on this machine is found out and used with
//! no flag (HTTPS is tried first, as Docker does); `--plain-http` against
//! an HTTPS registry fails cleanly.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::fixtures::sample_layout;
use support::registry::{Auth, Registry};
use support::{sh_env, stderr, Scratch};

/// A test's working directory: HOME, TMPDIR (where streaming puts its
/// pipes) and outputs all inside it.
struct Workdir {
    scratch: Scratch,
}

impl Workdir {
    fn new() -> Workdir {
        let scratch = Scratch::new();
        std::fs::create_dir(scratch.path("tmp")).unwrap();
        Workdir { scratch }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }

    /// Runs a bash pipeline here with TMPDIR inside, and `env`.
    fn sh(&self, env: &[(&str, &str)], script: &str) -> Output {
        let tmp = self.path("tmp").display().to_string();
        let mut all = vec![("TMPDIR", tmp.as_str())];
        all.extend_from_slice(env);
        sh_env(self.scratch.0.path(), &all, script)
    }

    /// Runs a pipeline that must succeed; returns its stdout.
    fn ok(&self, env: &[(&str, &str)], script: &str) -> Vec<u8> {
        let out = self.sh(env, script);
        assert!(
            out.status.success(),
            "{script}: {:?}\n{}",
            out.status,
            stderr(&out)
        );
        out.stdout
    }

    /// What streaming left behind in TMPDIR: nothing, after every run.
    fn leftovers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

/// A registry (HTTPS or not) holding the sample as `sample:1`.
fn with_sample(registry: Registry) -> Registry {
    let layout = format!("oci:{}:sample", sample_layout().display());
    registry.push(&layout, "sample:1");
    registry
}

/// The merged tar `oci-layers` gives for the sample's local copy.
fn local_merge() -> Vec<u8> {
    Workdir::new().ok(
        &[],
        &format!(
            "oci-layers --tag sample '{}' | oci-merge",
            sample_layout().display()
        ),
    )
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

/// Runs `oci-fetch FLAGS REF | oci-merge > merged.tar`, which must fail:
/// returns oci-fetch's one error line, after checking that it is the only
/// thing oci-fetch said, that the merge wrote no end-of-archive marker
/// and that nothing was left behind.
fn failed_fetch(work: &Workdir, env: &[(&str, &str)], args: &str) -> String {
    let out = work.sh(env, &format!("oci-fetch {args} | oci-merge > merged.tar"));
    assert!(!out.status.success(), "oci-fetch {args} succeeded");
    let message = stderr(&out);
    let from_fetch: Vec<&str> = message
        .lines()
        .filter(|line| line.starts_with("oci-fetch"))
        .collect();
    assert_eq!(from_fetch.len(), 1, "{message}");
    assert!(from_fetch[0].starts_with("oci-fetch: error: "), "{message}");
    let merged = std::fs::read(work.path("merged.tar")).unwrap();
    assert!(
        !testkit::has_end_marker(&merged),
        "an end-of-archive marker after a failed fetch"
    );
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
    from_fetch[0].to_owned()
}

fn ca_file(registry: &Registry) -> String {
    let path = registry.ca_file().expect("an HTTPS registry");
    assert!(Path::new(&path).is_file());
    path.display().to_string()
}

#[test]
fn an_untrusted_certificate_fails_with_one_line_and_no_end_marker() {
    let registry = with_sample(Registry::start_tls(Auth::None));
    let work = Workdir::new();
    let host = registry.host();
    let line = failed_fetch(&work, &[], &format!("{host}/sample:1"));
    assert!(
        line.contains(&format!("TLS/certificate problem with {host}")),
        "{line}"
    );
    assert!(line.contains("SSL_CERT_FILE"), "{line}");
    // Not retried in plain HTTP: that would have ended in the registry's
    // refusal of plain HTTP (see the --plain-http test below).
    assert!(!line.contains("HTTP 400"), "{line}");
}

#[test]
fn ssl_cert_file_trusts_the_registry_and_the_merge_is_byte_identical() {
    let registry = with_sample(Registry::start_tls(Auth::None));
    let work = Workdir::new();
    let ca = ca_file(&registry);
    let localhost = registry.host().replace("127.0.0.1", "localhost");
    for host in [registry.host(), localhost] {
        let fetched = work.ok(
            &[("SSL_CERT_FILE", &ca)],
            &format!("oci-fetch {host}/sample:1 | oci-merge"),
        );
        assert_same_tar(&fetched, &host);
        assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
    }
}

#[test]
fn a_plain_http_loopback_registry_works_with_no_flag() {
    let registry = with_sample(Registry::start(Auth::None));
    let work = Workdir::new();
    let fetched = work.ok(
        &[],
        &format!("oci-fetch {}/sample:1 | oci-merge", registry.host()),
    );
    assert_same_tar(&fetched, "HTTPS tried, plain HTTP used");
    let fetched = work.ok(
        &[],
        &format!(
            "oci-fetch --plain-http {}/sample:1 | oci-merge",
            registry.host()
        ),
    );
    assert_same_tar(&fetched, "--plain-http");
}

#[test]
fn plain_http_against_an_https_registry_fails_cleanly() {
    let registry = with_sample(Registry::start_tls(Auth::None));
    let work = Workdir::new();
    let ca = ca_file(&registry);
    let line = failed_fetch(
        &work,
        &[("SSL_CERT_FILE", &ca)],
        &format!("--plain-http {}/sample:1", registry.host()),
    );
    assert!(line.contains("HTTP 400"), "{line}");
    assert!(line.contains("leave out --plain-http"), "{line}");
}

/// Token auth over HTTPS, with the token issuer in plain HTTP on this
/// machine (the tests' issuer): the credentials go to it, since plain HTTP
/// to loopback stays on this machine.
#[test]
fn token_auth_over_https_with_a_loopback_plain_http_realm() {
    use base64::Engine as _;
    let registry = Registry::start_tls(Auth::token("dave", "tls-token-pass"));
    let layout = format!("oci:{}:sample", sample_layout().display());
    registry.push(&layout, "private/sample:1");
    let issuer = registry.token_issuer().unwrap();
    assert!(issuer.realm().starts_with("http://127.0.0.1:"));
    let pushed = issuer.requests().len();
    let work = Workdir::new();
    let docker = work.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("dave:tls-token-pass");
    let config = serde_json::json!({ "auths": { registry.host(): { "auth": auth } } });
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let docker = docker.display().to_string();
    let ca = ca_file(&registry);
    let out = work.sh(
        &[("SSL_CERT_FILE", &ca), ("DOCKER_CONFIG", &docker)],
        &format!("oci-fetch {}/private/sample:1 | oci-merge", registry.host()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tar(&out.stdout, "token auth over HTTPS");
    let fetched = &issuer.requests()[pushed..];
    assert!(fetched.iter().any(|r| r.authenticated), "{fetched:?}");
    assert!(!stderr(&out).contains("tls-token-pass"));
}
