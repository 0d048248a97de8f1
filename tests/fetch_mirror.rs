//! `oci-fetch` through mirrors, end to end: a second `docker-registry` as
//! the mirror (a pull-through cache, as sites run it, or a copy pushed
//! with skopeo), configured in registries.conf or with
//! `--registry-mirror`, the origin stopped; `registry-proxy` in front of a
//! mirror to see what it is asked and to corrupt what it sends.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use support::fixtures::sample_layout;
use support::registry::{auths_json, Auth, Proxy, Registry};
use support::{sh_env, stderr, Scratch};

/// A test's directory: HOME (so `~/.config/containers` is its own), TMPDIR
/// and the files it writes.
struct Workdir(Scratch);

impl Workdir {
    fn new() -> Workdir {
        Workdir(Scratch::new())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }

    /// Writes `name` (creating its directories); returns its path.
    fn write(&self, name: &str, text: &str) -> String {
        self.0.write(name, text.as_bytes())
    }

    fn sh(&self, env: &[(&str, &str)], script: &str) -> Output {
        let tmp = self.0 .0.path().to_str().unwrap().to_owned();
        let mut all = vec![("TMPDIR", tmp.as_str())];
        all.extend_from_slice(env);
        sh_env(self.0 .0.path(), &all, script)
    }

    /// Runs `script`, which must succeed; returns stdout and stderr.
    fn ok(&self, script: &str) -> (Vec<u8>, String) {
        let out = self.sh(&[], script);
        assert!(out.status.success(), "{script}: {}", stderr(&out));
        let stderr = stderr(&out);
        (out.stdout, stderr)
    }
}

fn oci_sample() -> String {
    format!("oci:{}:sample", sample_layout().display())
}

/// A registry holding the sample as `name:1`.
fn registry_with_sample(auth: Auth, name: &str) -> Registry {
    let registry = Registry::start(auth);
    registry.push(&oci_sample(), &format!("{name}:1"));
    registry
}

/// The digests of the sample's manifest, config and layers, and its
/// config's and largest layer's sizes, from the layout.
struct Sample {
    manifest: String,
    blobs: Vec<String>,
    config_size: u64,
    largest_layer: u64,
}

fn sample() -> Sample {
    let layout = sample_layout();
    let read = |digest: &str| -> serde_json::Value {
        let path = layout.join("blobs").join(digest.replacen(':', "/", 1));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = read_json(&layout.join("index.json"));
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let document = read(&manifest);
    let layers = document["layers"].as_array().unwrap();
    let digest = |d: &serde_json::Value| d["digest"].as_str().unwrap().to_owned();
    Sample {
        blobs: std::iter::once(&document["config"])
            .chain(layers)
            .map(digest)
            .collect(),
        manifest,
        config_size: document["config"]["size"].as_u64().unwrap(),
        largest_layer: layers
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .max()
            .unwrap(),
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// registries.conf: `location` with these mirrors (and their settings).
fn conf(location: &str, mirrors: &[(&str, &str)]) -> String {
    let mut text = format!("[[registry]]\nlocation = \"{location}\"\n");
    for (mirror, settings) in mirrors {
        text += &format!("[[registry.mirror]]\nlocation = \"{mirror}\"\n{settings}\n");
    }
    text
}

/// The merged tar of a fetch from `reference` with `flags`.
fn merged(work: &Workdir, flags: &str, reference: &str) -> (Vec<u8>, String) {
    work.ok(&format!("oci-fetch {flags} {reference} | oci-merge"))
}

fn assert_same(fetched: &[u8], before: &[u8], what: &str) {
    assert!(
        fetched == before,
        "{what}: the merge differs from the origin's ({} vs {} bytes)",
        fetched.len(),
        before.len()
    );
}

/// The warnings on stderr.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("oci-fetch: warning: "))
        .collect()
}

/// `127.0.0.1:PORT` where nothing listens: a mirror that is down.
fn dead_mirror() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// An anonymous registry holding the sample as `sample:1`, that reference,
/// and the merged tar a fetch from it gives: what every mirror must give.
fn origin(work: &Workdir) -> (Registry, String, Vec<u8>) {
    let registry = registry_with_sample(Auth::None, "sample");
    let reference = format!("{}/sample:1", registry.host());
    let (before, _) = merged(work, "", &reference);
    (registry, reference, before)
}

/// The requests `proxy` logged as `(path, authorization)`.
fn requests(proxy: &Proxy) -> Vec<(String, bool)> {
    proxy
        .log()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["authorization"] == true,
            )
        })
        .collect()
}

#[test]
fn a_pull_through_cache_serves_the_image_with_the_origin_stopped() {
    let sample = sample();
    let work = Workdir::new();
    let (origin, reference, before) = origin(&work);
    let mirror = Registry::start_pull_through(&origin.host(), Auth::None);
    // Warm the cache through it, as a first pull at the site would.
    work.ok(&format!(
        "oci-fetch --store warm {}/sample:1 >/dev/null",
        mirror.host()
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sample.blobs.iter().all(|digest| mirror.holds_blob(digest)) {
        assert!(
            Instant::now() < deadline,
            "the cache did not keep the blobs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let conf = work.write(
        "registries.conf",
        &conf(&origin.host(), &[(&mirror.host(), "")]),
    );
    drop(origin);

    let from_conf = format!("--registries-conf {conf}");
    let from_flag = format!(
        "--registries-conf /dev/null --registry-mirror {}",
        mirror.host()
    );
    let pinned = reference.replace(":1", &format!("@{}", sample.manifest));
    for (flags, reference) in [
        (from_conf.clone(), &reference),
        (format!("{from_conf} --store store"), &reference),
        (from_flag.clone(), &reference),
        (from_conf.clone(), &pinned),
    ] {
        let (fetched, stderr) = merged(&work, &flags, reference);
        assert_same(&fetched, &before, &format!("{flags} {reference}"));
        assert!(stderr.is_empty(), "{flags}: {stderr}");
    }
    let (json, _) = work.ok(&format!("oci-fetch {from_flag} --json {reference}"));
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["endpoint"], format!("{}/sample", mirror.host()));
    assert_eq!(json["manifest"], sample.manifest);
}

#[test]
fn a_mirror_that_is_down_gets_one_warning_and_the_origin_serves() {
    let work = Workdir::new();
    let (origin, reference, before) = origin(&work);
    let down = dead_mirror();
    let conf = work.write("registries.conf", &conf(&origin.host(), &[(&down, "")]));
    for flags in [
        format!("--registries-conf /dev/null --registry-mirror {down}"),
        format!("--registries-conf {conf} --store store"),
    ] {
        let (fetched, stderr) = merged(&work, &flags, &reference);
        assert_same(&fetched, &before, &flags);
        let warnings = warnings(&stderr);
        assert_eq!(warnings.len(), 1, "{flags}: {stderr}");
        let expected_start = format!("oci-fetch: warning: mirror {down} failed (");
        let expected_end = format!("), trying the registry, {}/sample", origin.host());
        assert!(
            warnings[0].starts_with(&expected_start)
                && warnings[0].contains("connection refused")
                && warnings[0].ends_with(&expected_end),
            "{}",
            warnings[0]
        );
    }
    let (json, _) = work.ok(&format!(
        "oci-fetch --registries-conf {conf} --json {reference} 2>/dev/null"
    ));
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["endpoint"], format!("{}/sample", origin.host()));
}

#[test]
fn a_mirror_sending_corrupt_layers_is_caught_by_their_digests() {
    let sample = sample();
    assert!(sample.largest_layer > sample.config_size + 1);
    let work = Workdir::new();
    let (origin, reference, before) = origin(&work);
    let copy = registry_with_sample(Auth::None, "sample");
    // Flips a byte past the end of the config: the layers larger than the
    // config are corrupt, the config never is.
    let offset = sample.config_size.to_string();
    let corrupting = Proxy::start(&copy.host(), &["--flip-byte", &offset, "--times", "all"]);
    let conf = work.write(
        "registries.conf",
        &conf(&origin.host(), &[(&corrupting.host(), "")]),
    );

    // Streamed: bytes already handed to oci-merge cannot be taken back, so
    // the pull fails on the digest; no wrong image comes out.
    let out = work.sh(
        &[],
        &format!("oci-fetch --registries-conf {conf} {reference} | oci-merge > merged.tar"),
    );
    assert!(!out.status.success(), "a corrupt layer merged");
    // oci-merge stops at the first bad byte it can tell (a gzip stream
    // that does not inflate), else at the digest.
    let errors = stderr(&out);
    assert!(
        errors.contains("oci-merge: error: layer ")
            && (errors.contains("corrupt") || errors.contains("digest mismatch")),
        "{errors}"
    );
    assert!(
        std::fs::read(work.path("merged.tar")).unwrap() != before,
        "a failed merge ended like a good one"
    );

    // Stored: the blob is fetched again from the origin, with a warning.
    let (fetched, stderr) = merged(
        &work,
        &format!("--registries-conf {conf} --store store"),
        &reference,
    );
    assert_same(&fetched, &before, "--store through a corrupting mirror");
    let warnings = warnings(&stderr);
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "oci-fetch: warning: mirror {} failed (",
            corrupting.host()
        )) && warnings[0].contains("digest mismatch"),
        "{}",
        warnings[0]
    );
    // The mirror was asked, and sent corrupt bytes.
    let layer_gets = corrupting
        .blob_gets()
        .iter()
        .filter(|g| g["fault"] != serde_json::Value::Null)
        .count();
    assert!(layer_gets >= 1, "{:?}", corrupting.log());
}

#[test]
fn a_digest_only_mirror_is_never_asked_for_a_tag() {
    let sample = sample();
    let work = Workdir::new();
    let (origin, reference, before) = origin(&work);
    let copy = registry_with_sample(Auth::None, "sample");
    let pinned = format!("{}/sample@{}", origin.host(), sample.manifest);
    let mut watched = Vec::new();
    for (name, registry_setting, mirror_setting) in [
        ("per-mirror", "", "pull-from-mirror = \"digest-only\""),
        ("per-registry", "mirror-by-digest-only = true", ""),
    ] {
        let proxy = Proxy::start(&copy.host(), &[]);
        let text = conf(&origin.host(), &[(&proxy.host(), mirror_setting)]).replacen(
            '\n',
            &format!("\n{registry_setting}\n"),
            1,
        );
        let conf = work.write(&format!("{name}.conf"), &text);
        let (fetched, _) = merged(&work, &format!("--registries-conf {conf}"), &reference);
        assert_same(&fetched, &before, name);
        assert!(proxy.log().is_empty(), "{name}: {:?}", requests(&proxy));
        watched.push((proxy, conf));
    }
    drop(origin);
    for (proxy, conf) in &watched {
        let (fetched, stderr) = merged(&work, &format!("--registries-conf {conf}"), &pinned);
        assert_same(&fetched, &before, conf);
        assert!(stderr.is_empty(), "{stderr}");
        let paths: Vec<_> = requests(proxy).into_iter().map(|(path, _)| path).collect();
        assert!(
            paths.contains(&format!("/v2/sample/manifests/{}", sample.manifest)),
            "{paths:?}"
        );
    }
}

#[test]
fn a_flag_mirror_is_tried_first_with_the_repository_below_its_path() {
    let work = Workdir::new();
    let (origin, reference, before) = origin(&work);
    let cache = registry_with_sample(Auth::None, "site/cache/sample");
    let down = dead_mirror();
    let conf = work.write("registries.conf", &conf(&origin.host(), &[(&down, "")]));
    drop(origin);
    let (fetched, stderr) = merged(
        &work,
        &format!(
            "--registries-conf {conf} --registry-mirror {}/site/cache",
            cache.host()
        ),
        &reference,
    );
    assert_same(&fetched, &before, "--registry-mirror HOST/PATH");
    // The file's mirror, down, was never needed.
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn a_blocked_registry_is_refused_before_any_request_whichever_file_says_so() {
    let origin = registry_with_sample(Auth::None, "sample");
    let proxy = Proxy::start(&origin.host(), &[]);
    let work = Workdir::new();
    let reference = format!("{}/sample:1", proxy.host());
    let v2 = format!(
        "[[registry]]\nprefix = \"{}/sample\"\nlocation = \"{}/sample\"\nblocked = true\n",
        proxy.host(),
        proxy.host()
    );
    let v1 = format!("[registries.block]\nregistries = [\"{}\"]\n", proxy.host());
    let flag_file = work.write("flag.conf", &v2);
    let env_file = work.write("env.conf", &v1);
    let home_file = work.path(".config/containers/registries.conf");
    let cases = [
        (
            format!("--registries-conf {flag_file}"),
            None,
            format!("{flag_file}:1"),
        ),
        (
            String::new(),
            Some(env_file.clone()),
            format!("{env_file} (v1 [registries.*])"),
        ),
        (String::new(), None, format!("{}:1", home_file.display())),
    ];
    work.write(".config/containers/registries.conf", &v2);
    for (flags, env, origin_of_block) in cases {
        let env: Vec<(&str, &str)> = env
            .iter()
            .map(|file| ("CONTAINERS_REGISTRIES_CONF", file.as_str()))
            .collect();
        let out = work.sh(&env, &format!("oci-fetch {flags} {reference}"));
        assert_eq!(out.status.code(), Some(1), "{flags} {env:?}");
        let prefix = match env.is_empty() {
            true => format!("{}/sample", proxy.host()),
            false => proxy.host(),
        };
        assert_eq!(
            stderr(&out),
            format!(
                "oci-fetch: error: {}/sample: pulling from \"{prefix}\" is blocked by \
                 {origin_of_block}\n",
                proxy.host()
            ),
            "{flags} {env:?}"
        );
    }
    assert!(proxy.log().is_empty(), "{:?}", requests(&proxy));
}

#[test]
fn a_malformed_registries_conf_is_one_line_naming_file_and_line() {
    let work = Workdir::new();
    let user_file = work.path(".config/containers/registries.conf");
    for (text, line, problem) in [
        (
            "[[registry]]\nlocation = \"q.io\"\n[registry",
            3,
            "unclosed table",
        ),
        (
            "[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\ninsecure = true\n",
            1,
            "a [[registry.mirror]] has no location",
        ),
    ] {
        work.write(".config/containers/registries.conf", text);
        let out = work.sh(&[], "oci-fetch 127.0.0.1:1/sample:1");
        assert_eq!(out.status.code(), Some(1));
        let expected = format!("oci-fetch: error: {}:{line}: ", user_file.display());
        let stderr = stderr(&out);
        assert!(
            stderr.starts_with(&expected) && stderr.contains(problem),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn each_endpoint_gets_the_credentials_of_its_own_host() {
    let origin = registry_with_sample(Auth::basic("alice", "origin-secret"), "sample");
    let copy = registry_with_sample(Auth::basic("bob", "mirror-secret"), "sample");
    let mirror = Proxy::start(&copy.host(), &[]);
    let work = Workdir::new();
    let reference = format!("{}/sample:1", origin.host());
    let origin_only = work.write(
        "origin.json",
        &auths_json(&[(&origin.host(), "alice", "origin-secret")]),
    );
    let both = work.write(
        "both.json",
        &auths_json(&[
            (&origin.host(), "alice", "origin-secret"),
            (&mirror.host(), "bob", "mirror-secret"),
        ]),
    );
    let flags = |authfile: &str| {
        format!(
            "--registries-conf /dev/null --registry-mirror {} --authfile {authfile}",
            mirror.host()
        )
    };

    // No credentials for the mirror: it refuses, and never gets the origin's.
    let (before, stderr) = merged(&work, &flags(&origin_only), &reference);
    let warnings = warnings(&stderr);
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "oci-fetch: warning: mirror {} failed (",
            mirror.host()
        )),
        "{}",
        warnings[0]
    );
    let asked = requests(&mirror);
    assert!(
        !asked.is_empty() && asked.iter().all(|(_, authorized)| !authorized),
        "{asked:?}"
    );

    // The mirror's own credentials: it serves, the origin stopped.
    drop(origin);
    let (fetched, stderr) = merged(&work, &flags(&both), &reference);
    assert_same(&fetched, &before, "through the mirror with its credentials");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(requests(&mirror).iter().any(|(_, authorized)| *authorized));
}
