//! `oci-fetch` end to end, against a real registry (Debian's
//! `docker-registry`) started by the tests, with images pushed by skopeo
//! from umoci-built layouts: what it streams into `oci-merge` must be what
//! `oci-layers` gives for the local copy, byte for byte; auth as users set
//! it up; and the faults real networks have, injected by `registry-proxy`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::fixtures::{
    fixture, multi_platform_layout, sample_derived, sample_layout, skopeo_copy,
};
use support::registry::{auths_json, Auth, Proxy, Registry};
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

    fn tmp(&self) -> String {
        self.path("tmp").display().to_string()
    }

    /// Runs a bash pipeline here with TMPDIR inside, and `env`.
    fn sh(&self, env: &[(&str, &str)], script: &str) -> Output {
        let tmp = self.tmp();
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

fn oci(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}

/// The merged tar `oci-layers` gives for a local image.
fn local_merge(layout: &Path, flags: &str) -> Vec<u8> {
    let work = Workdir::new();
    work.ok(
        &[],
        &format!("oci-layers {flags} '{}' | oci-merge", layout.display()),
    )
}

fn zstd_layout() -> PathBuf {
    sample_derived("zstd", |src, out| {
        skopeo_copy(
            &["--dest-compress-format", "zstd"],
            &oci(src, "sample"),
            &oci(out, "sample"),
        )
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An anonymous registry holding the sample as `sample:1`.
fn sample_registry() -> Registry {
    let registry = Registry::start(Auth::None);
    registry.push(&oci(&sample_layout(), "sample"), "sample:1");
    registry
}

fn assert_same_tar(fetched: &[u8], local: &[u8], what: &str) {
    assert!(
        fetched == local,
        "{what}: the fetched merge differs from the local one ({} vs {} bytes)",
        fetched.len(),
        local.len()
    );
}

// ---------------------------------------------------------------------------
// Streaming and storing give what oci-layers gives for the local copy.

#[test]
fn streaming_a_gzip_image_gives_the_local_merge_byte_for_byte() {
    let registry = sample_registry();
    let work = Workdir::new();
    let fetched = work.ok(
        &[],
        &format!("oci-fetch {}/sample:1 | oci-merge", registry.host()),
    );
    assert_same_tar(
        &fetched,
        &local_merge(&sample_layout(), "--tag sample"),
        "gzip",
    );
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

#[test]
fn a_zstd_image_streamed_or_stored_gives_the_local_merge_byte_for_byte() {
    let registry = Registry::start(Auth::None);
    registry.push(&oci(&zstd_layout(), "sample"), "zstd:1");
    let work = Workdir::new();
    let local = local_merge(&zstd_layout(), "--tag sample");
    for flags in ["", "--store store"] {
        let fetched = work.ok(
            &[],
            &format!(
                "oci-fetch {flags} docker://{}/zstd:1 | oci-merge",
                registry.host()
            ),
        );
        assert_same_tar(&fetched, &local, &format!("zstd {flags}"));
    }
}

#[test]
fn a_multi_platform_index_is_selected_as_oci_layers_selects_it() {
    let layout = multi_platform_layout();
    let registry = Registry::start(Auth::None);
    registry.push(&oci(&layout, "multi"), "multi:1");
    let work = Workdir::new();
    for (arch, store) in [("amd64", ""), ("arm64", ""), ("arm64", "--store store")] {
        let flags = format!("--platform linux/{arch}");
        let fetched = work.ok(
            &[],
            &format!(
                "oci-fetch {store} {flags} {}/multi:1 | oci-merge",
                registry.host()
            ),
        );
        let local = local_merge(&layout, &format!("{flags} --tag multi"));
        assert_same_tar(&fetched, &local, arch);
        let has_marker = testkit::read_tar(&fetched)
            .iter()
            .any(|e| e.path == "arch-arm64");
        assert_eq!(has_marker, arch == "arm64", "{arch}");
    }
    let json = work.ok(
        &[],
        &format!(
            "oci-fetch --json --platform linux/arm64 {}/multi:1",
            registry.host()
        ),
    );
    let local_json = work.ok(
        &[],
        &format!(
            "oci-layers --json --platform linux/arm64 --tag multi '{}'",
            layout.display()
        ),
    );
    let strip = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        for layer in v["layers"].as_array_mut().unwrap() {
            layer["path"] = serde_json::Value::Null;
        }
        v
    };
    // oci-fetch also says where the index came from.
    let mut fetched = strip(&json);
    let endpoint = fetched.as_object_mut().unwrap().remove("endpoint");
    assert_eq!(endpoint, Some(format!("{}/multi", registry.host()).into()));
    assert_eq!(fetched, strip(&local_json));
    let out = work.sh(
        &[],
        &format!(
            "oci-fetch --platform linux/s390x {}/multi:1",
            registry.host()
        ),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no manifest for platform linux/s390x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_digest_reference_pins_the_content() {
    let registry = sample_registry();
    let work = Workdir::new();
    let json = work.ok(
        &[],
        &format!("oci-fetch --json {}/sample:1", registry.host()),
    );
    let manifest = serde_json::from_slice::<serde_json::Value>(&json).unwrap()["manifest"]
        .as_str()
        .unwrap()
        .to_owned();
    let fetched = work.ok(
        &[],
        &format!(
            "oci-fetch {}/sample@{manifest} | oci-merge",
            registry.host()
        ),
    );
    assert_same_tar(
        &fetched,
        &local_merge(&sample_layout(), "--tag sample"),
        "by digest",
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = work.sh(
        &[],
        &format!("oci-fetch {}/sample@{wrong}", registry.host()),
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// A hard link whose target a newer layer replaces is promoted: oci-merge
/// opens the base layer's pipe a second time, and it is served (downloaded)
/// again.
#[test]
fn a_second_read_of_a_layer_downloads_it_again() {
    let layout = promoted_link_layout();
    let registry = Registry::start(Auth::None);
    registry.push(&oci(&layout, "links"), "links:1");
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Workdir::new();
    let fetched = work.ok(
        &[],
        &format!("oci-fetch {}/links:1 | oci-merge", proxy.host()),
    );
    assert_same_tar(&fetched, &local_merge(&layout, "--tag links"), "reread");
    let linked = testkit::read_tar(&fetched);
    let b = linked
        .iter()
        .find(|e| e.path == "b")
        .expect("b is in the merge");
    assert_eq!(b.data, b"original a\n", "b keeps the base layer's data");
    let base = layer_digest(&layout, "--tag links", 0);
    let gets = proxy.blob_gets();
    let base_gets = gets
        .iter()
        .filter(|g| g["path"].as_str().unwrap().ends_with(&base))
        .count();
    assert_eq!(base_gets, 2, "{gets:#?}");
}

/// An OCI layout (tag `links`) of two gzip layers: the base holds `a` and
/// `b`, a hard link to it; the top replaces `a`.
fn promoted_link_layout() -> PathBuf {
    fixture("promoted-link-layout", |out| {
        let base = testkit::Layer::new()
            .file("a", b"original a\n")
            .hardlink("b", "a");
        let top = testkit::Layer::new().file("a", b"replaced a\n");
        write_layout(out, "links", &[base.tar(), top.tar()], 0);
    })
}

/// Writes an OCI layout holding one image of these (uncompressed) layer
/// tars, gzipped, under `tag`; its config carries a label of
/// `config_padding` bytes when that is not 0.
fn write_layout(out: &Path, tag: &str, layers: &[Vec<u8>], config_padding: usize) {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        serde_json::json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(layer)));
        let mut d = put(&testkit::gzip(layer));
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        descriptors.push(d);
    }
    let mut config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if config_padding > 0 {
        config["config"] = serde_json::json!({"Labels": {"padding": "x".repeat(config_padding)}});
    }
    let mut config_d = put(&serde_json::to_vec(&config).unwrap());
    config_d["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_d, "layers": descriptors,
    });
    let mut manifest_d = put(&serde_json::to_vec(&manifest).unwrap());
    manifest_d["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    manifest_d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(
        out.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [manifest_d]}))
            .unwrap(),
    )
    .unwrap();
    std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The digest (hex) of layer `index` of a local image.
fn layer_digest(layout: &Path, flags: &str, index: usize) -> String {
    let work = Workdir::new();
    let json = work.ok(
        &[],
        &format!("oci-layers --json {flags} '{}'", layout.display()),
    );
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["layers"][index]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned()
}

#[test]
fn a_store_lists_blob_files_as_oci_layers_does_and_fetches_each_once() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Workdir::new();
    let reference = format!("{}/sample:1", proxy.host());
    let listed = work.ok(&[], &format!("oci-fetch --store store {reference}"));
    let offline = work.ok(&[], &format!("oci-layers --tag {reference} store"));
    assert_eq!(
        String::from_utf8_lossy(&listed),
        String::from_utf8_lossy(&offline)
    );
    let fetched = work.ok(
        &[],
        &format!("oci-fetch --store store {reference} | oci-merge"),
    );
    assert_same_tar(
        &fetched,
        &local_merge(&sample_layout(), "--tag sample"),
        "store",
    );
    let layer_gets = proxy.blob_gets().len();
    // Three layers and a config, each fetched by the first run only.
    assert_eq!(layer_gets, 4, "{:#?}", proxy.blob_gets());
    let partials: Vec<_> = walk(&work.path("store"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn two_processes_can_fill_one_store_at_once() {
    let registry = sample_registry();
    registry.push(&oci(&zstd_layout(), "sample"), "zstd:1");
    let work = Workdir::new();
    let host = registry.host();
    work.ok(
        &[],
        &format!(
            "oci-fetch --store store {host}/sample:1 > a & a=$!; \
             oci-fetch --store store {host}/zstd:1 > b & b=$!; \
             oci-fetch --store store {host}/sample:1 > c & c=$!; \
             wait $a && wait $b && wait $c"
        ),
    );
    for (name, layout) in [("sample", sample_layout()), ("zstd", zstd_layout())] {
        let merged = work.ok(
            &[],
            &format!("oci-layers --tag {host}/{name}:1 store | oci-merge"),
        );
        assert_same_tar(&merged, &local_merge(&layout, "--tag sample"), name);
    }
}

#[test]
fn a_blob_killed_mid_download_never_appears_in_the_store() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &["--stall", "--times", "100"]);
    let work = Workdir::new();
    let mut child = Command::new(support::bin("oci-fetch"))
        .args(["--store", "store", "--timeout", "60"])
        .arg(format!("{}/sample:1", proxy.host()))
        .current_dir(work.path(""))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(|| !proxy.blob_gets().is_empty(), "a blob download to start");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let blobs: Vec<String> = std::fs::read_dir(work.path("store/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for layer in layer_digests() {
        assert!(!blobs.contains(&layer), "{layer} appeared: {blobs:?}");
    }
    // The next run completes the store.
    let fetched = work.ok(
        &[],
        &format!(
            "oci-fetch --store store {}/sample:1 | oci-merge",
            registry.host()
        ),
    );
    assert_same_tar(
        &fetched,
        &local_merge(&sample_layout(), "--tag sample"),
        "after kill",
    );
}

fn layer_digests() -> Vec<String> {
    let work = Workdir::new();
    let json = work.ok(
        &[],
        &format!(
            "oci-layers --json --tag sample '{}'",
            sample_layout().display()
        ),
    );
    serde_json::from_slice::<serde_json::Value>(&json).unwrap()["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .collect()
}

fn wait_until(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// The streaming process's lifetime.

#[test]
fn a_reader_that_exits_early_leaves_nothing_behind() {
    let registry = sample_registry();
    let work = Workdir::new();
    let host = registry.host();
    let start = Instant::now();
    // A reader that reads nothing, or only part of the list: oci-fetch
    // ends quietly, with 141 if its list could not be written (a
    // SIGPIPE's status, as every tool here), never hanging.
    for reader in ["true", "head -n 1 > /dev/null"] {
        let out = work.sh(
            &[],
            &format!("set +e; oci-fetch {host}/sample:1 | {reader}; echo ${{PIPESTATUS[0]}}"),
        );
        let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(status == "0" || status == "141", "{reader}: {status}");
        assert!(stderr(&out).is_empty(), "{reader}: {}", stderr(&out));
    }
    // A merge cut short by its own reader.
    let out = work.sh(
        &[],
        &format!("oci-fetch {host}/sample:1 | oci-merge | head -c 1000 > /dev/null"),
    );
    assert!(!out.status.success(), "pipefail sees oci-merge's SIGPIPE");
    assert!(
        !stderr(&out).contains("oci-fetch"),
        "oci-fetch ends quietly: {}",
        stderr(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

/// A wrapper that keeps its own copy of oci-fetch's stdout (`timeout`,
/// `time`, a subshell) would keep oci-merge waiting for the end of the list
/// forever; the list's end-of-list line lets it start anyway.
#[test]
fn a_wrapper_holding_stdout_open_does_not_hang_the_pipeline() {
    let registry = sample_registry();
    let work = Workdir::new();
    let host = registry.host();
    let local = local_merge(&sample_layout(), "--tag sample");
    for wrapped in [
        format!("timeout 60 oci-fetch {host}/sample:1"),
        format!("(oci-fetch {host}/sample:1; true)"),
    ] {
        let start = Instant::now();
        let merged = work.ok(&[], &format!("{wrapped} | timeout 60 oci-merge"));
        assert_same_tar(&merged, &local, &wrapped);
        assert!(start.elapsed() < Duration::from_secs(30), "{wrapped}");
    }
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

#[test]
fn streaming_refuses_a_stdout_that_is_not_a_pipe() {
    let registry = sample_registry();
    let work = Workdir::new();
    let out = work.sh(
        &[],
        &format!("oci-fetch {}/sample:1 > list", registry.host()),
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.starts_with("oci-fetch: ") && message.contains("--store"),
        "{message}"
    );
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

#[test]
fn an_interrupt_removes_the_pipes() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &["--stall", "--times", "100"]);
    let work = Workdir::new();
    let mut fetch = Command::new(support::bin("oci-fetch"))
        .arg(format!("{}/sample:1", proxy.host()))
        .env("TMPDIR", work.tmp())
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let merge = Command::new(support::bin("oci-merge"))
        .stdin(fetch.stdout.take().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(|| !proxy.blob_gets().is_empty(), "a download to start");
    assert_eq!(
        work.leftovers().len(),
        1,
        "the pipe directory exists meanwhile"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&fetch),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = fetch.wait().unwrap();
    assert!(!status.success());
    let mut merge = merge;
    assert!(
        !merge.wait().unwrap().success(),
        "the merge fails, never short"
    );
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

// ---------------------------------------------------------------------------
// Faults between the registry and oci-fetch.

/// Streams the sample through a proxy with `flags`; returns the outcome and
/// the proxy for its log.
fn through_proxy(flags: &[&str], fetch_flags: &str) -> (Output, Proxy, Workdir, Registry) {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), flags);
    let work = Workdir::new();
    let out = work.sh(
        &[],
        &format!(
            "oci-fetch {fetch_flags} {}/sample:1 | oci-merge > merged.tar",
            proxy.host()
        ),
    );
    (out, proxy, work, registry)
}

fn assert_recovered(flags: &[&str], fetch_flags: &str) -> Proxy {
    let (out, proxy, work, _registry) = through_proxy(flags, fetch_flags);
    assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "quiet on success: {}",
        stderr(&out)
    );
    let merged = std::fs::read(work.path("merged.tar")).unwrap();
    assert_same_tar(
        &merged,
        &local_merge(&sample_layout(), "--tag sample"),
        &format!("{flags:?}"),
    );
    assert!(
        proxy.log().iter().any(|e| !e["fault"].is_null()),
        "the fault happened: {:#?}",
        proxy.log()
    );
    proxy
}

#[test]
fn a_connection_cut_mid_blob_is_resumed_with_a_range_request() {
    let proxy = assert_recovered(&["--cut-after", "100000"], "");
    assert!(
        proxy.blob_gets().iter().any(|g| g["range"]
            .as_str()
            .is_some_and(|r| r.starts_with("bytes=100000-"))),
        "{:#?}",
        proxy.blob_gets()
    );
}

#[test]
fn too_many_requests_waits_as_retry_after_says() {
    let start = Instant::now();
    assert_recovered(&["--status-429", "2"], "");
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn a_server_error_is_retried() {
    assert_recovered(&["--status-500", "--times", "2"], "");
}

#[test]
fn a_stalled_connection_times_out_and_is_resumed() {
    assert_recovered(&["--stall"], "--timeout 2");
}

#[test]
fn a_stall_that_never_ends_fails_the_merge_cleanly() {
    let (out, _proxy, work, _registry) =
        through_proxy(&["--stall", "--times", "1000"], "--timeout 1");
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("oci-fetch: error:"), "{message}");
    let merged = std::fs::read(work.path("merged.tar")).unwrap();
    assert!(
        !testkit::has_end_marker(&merged),
        "no end marker on failure"
    );
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

#[test]
fn a_flipped_byte_fails_the_merge_and_nothing_is_written_as_good() {
    let (out, _proxy, work, _registry) = through_proxy(&["--flip-byte", "5000"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    let merged = std::fs::read(work.path("merged.tar")).unwrap();
    assert!(!testkit::has_end_marker(&merged));
    // Through to a directory: nothing appears.
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &["--flip-byte", "5000", "--times", "100"]);
    let out = work.sh(
        &[],
        &format!(
            "oci-fetch {}/sample:1 | oci-merge | tar2dir rootfs",
            proxy.host()
        ),
    );
    assert!(!out.status.success());
    assert!(!work.path("rootfs").exists());
    // Into a store: the corrupt blob is never stored.
    let out = work.sh(
        &[],
        &format!("oci-fetch --store store {}/sample:1", proxy.host()),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
}

#[test]
fn a_blob_redirect_to_another_host_gets_no_authorization() {
    let registry = Registry::start(Auth::basic("alice", "s3cret-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "sample:1");
    let proxy = Proxy::start(&registry.host(), &["--redirect", "--times", "100"]);
    let work = Workdir::new();
    let config = docker_config(&work, &[(&proxy.host(), "alice", "s3cret-pass")]);
    let fetched = work.ok(
        &[("DOCKER_CONFIG", &config)],
        &format!("oci-fetch {}/sample:1 | oci-merge", proxy.host()),
    );
    assert_same_tar(
        &fetched,
        &local_merge(&sample_layout(), "--tag sample"),
        "redirect",
    );
    let log = proxy.log();
    let redirected: Vec<_> = log.iter().filter(|e| e["listener"] == "redirect").collect();
    assert!(!redirected.is_empty(), "{log:#?}");
    assert!(
        redirected.iter().all(|e| e["authorization"] == false),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|e| e["listener"] == "main" && e["authorization"] == true),
        "{log:#?}"
    );
}

/// HTTP_PROXY sends requests through a proxy (registry-proxy relays the
/// absolute-form requests a forward proxy receives); NO_PROXY exempts a host.
#[test]
fn proxy_variables_are_honoured() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Workdir::new();
    let proxy_url = format!("http://{}", proxy.host());
    let script = format!(
        "oci-fetch --plain-http {}/sample:1 | oci-merge",
        registry.host()
    );
    let local = local_merge(&sample_layout(), "--tag sample");
    assert_same_tar(
        &work.ok(&[("HTTP_PROXY", &proxy_url)], &script),
        &local,
        "proxied",
    );
    let proxied = proxy.log().len();
    assert!(
        proxied >= 4,
        "manifest, config and layers went through: {:#?}",
        proxy.log()
    );
    let exempt = work.ok(
        &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")],
        &script,
    );
    assert_same_tar(&exempt, &local, "NO_PROXY");
    assert_eq!(proxy.log().len(), proxied, "NO_PROXY bypassed the proxy");
}

// ---------------------------------------------------------------------------
// Authentication.

/// Writes `DIR/docker/config.json` with `auths` for (host, user, password);
/// returns DOCKER_CONFIG.
fn docker_config(work: &Workdir, auths: &[(&str, &str, &str)]) -> String {
    let dir = work.path("docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), auths_json(auths)).unwrap();
    dir.display().to_string()
}

fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    for secret in secrets {
        assert!(!text.contains(secret), "a secret was printed: {text}");
    }
}

#[test]
fn basic_auth_credentials_come_from_docker_config_auth_json_or_authfile() {
    let registry = Registry::start(Auth::basic("alice", "s3cret-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "sample:1");
    let host = registry.host();
    let work = Workdir::new();
    let local = local_merge(&sample_layout(), "--tag sample");
    let script = format!("oci-fetch {host}/sample:1 | oci-merge");

    let config = docker_config(&work, &[(&host, "alice", "s3cret-pass")]);
    assert_same_tar(
        &work.ok(&[("DOCKER_CONFIG", &config)], &script),
        &local,
        "config.json",
    );

    let auth_json = work.path("docker/config.json").display().to_string();
    assert_same_tar(
        &work.ok(&[("REGISTRY_AUTH_FILE", &auth_json)], &script),
        &local,
        "REGISTRY_AUTH_FILE",
    );
    assert_same_tar(
        &work.ok(
            &[],
            &format!("oci-fetch --authfile '{auth_json}' {host}/sample:1 | oci-merge"),
        ),
        &local,
        "--authfile",
    );
    let runtime = work.path("run");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    std::fs::copy(&auth_json, runtime.join("containers/auth.json")).unwrap();
    assert_same_tar(
        &work.ok(&[("XDG_RUNTIME_DIR", runtime.to_str().unwrap())], &script),
        &local,
        "XDG_RUNTIME_DIR/containers/auth.json",
    );

    // No credentials: refused, saying where it looked.
    let out = work.sh(&[], &script);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("authentication required"), "{message}");
    assert!(message.contains("config.json"), "{message}");
    // Wrong ones: denied, never echoed.
    let wrong = docker_config(&work, &[(&host, "alice", "not-the-pass")]);
    let out = work.sh(&[("DOCKER_CONFIG", &wrong)], &script);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("access denied") && stderr(&out).contains("alice"),
        "{}",
        stderr(&out)
    );
    assert_no_secret(&out, &["not-the-pass", "s3cret-pass"]);
}

#[test]
fn a_credential_helper_supplies_credentials() {
    let registry = Registry::start(Auth::basic("bob", "helper-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "sample:1");
    let host = registry.host();
    let work = Workdir::new();
    let bin = work.path("helpers");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-testing");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             [ \"$server\" = '{host}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"{host}\",\"Username\":\"bob\",\"Secret\":\"helper-pass\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = work.path("docker");
    std::fs::create_dir_all(&dir).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config = dir.display().to_string();
    for config_json in [
        serde_json::json!({"credHelpers": {&host: "testing"}}),
        serde_json::json!({"credsStore": "testing"}),
    ] {
        std::fs::write(dir.join("config.json"), config_json.to_string()).unwrap();
        let out = work.sh(
            &[("DOCKER_CONFIG", &config), ("PATH", &path)],
            &format!("oci-fetch {host}/sample:1 | oci-merge"),
        );
        assert!(out.status.success(), "{config_json}: {}", stderr(&out));
        assert_same_tar(
            &out.stdout,
            &local_merge(&sample_layout(), "--tag sample"),
            "helper",
        );
        assert_no_secret(&out, &["helper-pass"]);
    }
}

#[test]
fn token_auth_anonymous_for_public_credentials_for_private_refused_without() {
    let registry = Registry::start(Auth::token("carol", "token-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "public/sample:1");
    registry.push(&oci(&sample_layout(), "sample"), "private/sample:1");
    let host = registry.host();
    let work = Workdir::new();
    let local = local_merge(&sample_layout(), "--tag sample");
    let issuer = registry.token_issuer().unwrap();

    let before = issuer.token_requests();
    let anonymous = work.ok(
        &[],
        &format!("oci-fetch {host}/public/sample:1 | oci-merge"),
    );
    assert_same_tar(&anonymous, &local, "anonymous token");
    // One token for the manifest, config and every layer (and the second read).
    assert!(
        issuer.token_requests() - before <= 2,
        "tokens are reused: {:?}",
        issuer.requests()
    );

    let config = docker_config(&work, &[(&host, "carol", "token-pass")]);
    let out = work.sh(
        &[("DOCKER_CONFIG", &config)],
        &format!("oci-fetch {host}/private/sample:1 | oci-merge"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tar(&out.stdout, &local, "credentialed token");
    assert_no_secret(&out, &["token-pass"]);

    let out = work.sh(
        &[],
        &format!("oci-fetch {host}/private/sample:1 | oci-merge"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// Errors a person understands.

#[test]
fn errors_name_the_image_and_the_problem_on_one_line() {
    let registry = sample_registry();
    let host = registry.host();
    let work = Workdir::new();
    let cases: Vec<(String, &str)> = vec![
        (format!("{host}/sample:nope"), "nope"),
        (format!("{host}/nothing:1"), "nothing"),
        ("127.0.0.1:9/sample:1".to_owned(), "127.0.0.1:9"),
        ("Upper/Case".to_owned(), "Upper/Case"),
    ];
    for (reference, named) in cases {
        let out = work.sh(&[], &format!("oci-fetch --json {reference}"));
        assert!(!out.status.success(), "{reference}");
        let message = stderr(&out);
        // A refused connection is also announced as retried, once.
        let message = message
            .lines()
            .filter(|line| !line.ends_with("; retrying (up to 5 times)"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(message.lines().count(), 1, "{reference}: {message}");
        assert!(message.starts_with("oci-fetch: error: "), "{message}");
        assert!(message.contains(named), "{reference}: {message}");
    }
    let out = work.sh(&[], &format!("oci-layers docker://{host}/sample:1"));
    assert!(stderr(&out).contains("oci-fetch"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// A hostile registry: credentials stay home, time and memory stay bounded.

/// A name of this machine that resolves to a loopback address, if it has
/// one (Debian's /etc/hosts maps the host name so): such a name does not
/// make a token service trustworthy.
fn machine_name_on_loopback() -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let loopback = (name, 80)
        .to_socket_addrs()
        .ok()?
        .next()?
        .ip()
        .is_loopback();
    (loopback && name != "localhost").then(|| name.to_owned())
}

/// A token registry behind a proxy that moves its realm, over plain HTTP,
/// to a host that reaches this machine without being a loopback address
/// (0.0.0.0, and the machine's name when that resolves to loopback): the
/// user's credentials must not go there, though an anonymous token may be
/// asked for, and a refusal says the credentials were withheld. To a
/// loopback address they do go (the control: the realm listener relays
/// what it gets).
#[test]
fn credentials_go_to_no_plain_http_realm_off_loopback() {
    let registry = Registry::start(Auth::token("carol", "token-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "public/sample:1");
    registry.push(&oci(&sample_layout(), "sample"), "private/sample:1");
    let issuer = registry.token_issuer().unwrap();
    let local = local_merge(&sample_layout(), "--tag sample");
    let work = Workdir::new();
    let mut hosts = vec!["0.0.0.0".to_owned()];
    hosts.extend(machine_name_on_loopback());
    for host in hosts {
        let pushed = issuer.requests().len();
        let proxy = Proxy::start(&registry.host(), &["--realm-host", &host]);
        let config = docker_config(&work, &[(&proxy.host(), "carol", "token-pass")]);
        let env = [("DOCKER_CONFIG", config.as_str())];
        let out = work.sh(
            &env,
            &format!("oci-fetch --json {}/private/sample:1", proxy.host()),
        );
        assert!(!out.status.success(), "{host}: {}", stderr(&out));
        let message = stderr(&out);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            message.contains("carol") && message.contains("withheld") && message.contains(&host),
            "{host}: {message}"
        );
        assert_no_secret(&out, &["token-pass"]);
        // A public image needs no credentials: the anonymous token works.
        let public = work.ok(
            &env,
            &format!("oci-fetch {}/public/sample:1 | oci-merge", proxy.host()),
        );
        assert_same_tar(&public, &local, &host);
        let realm: Vec<_> = proxy
            .log()
            .into_iter()
            .filter(|e| e["listener"] == "realm")
            .collect();
        assert!(!realm.is_empty(), "{host}: the realm was asked");
        assert!(
            realm.iter().all(|e| e["authorization"] == false),
            "{host}: credentials reached the realm: {realm:#?}"
        );
        let asked = &issuer.requests()[pushed..];
        assert!(asked.iter().all(|r| r.user.is_none()), "{host}: {asked:?}");
    }
    let proxy = Proxy::start(&registry.host(), &["--realm-host", "127.0.0.1"]);
    let config = docker_config(&work, &[(&proxy.host(), "carol", "token-pass")]);
    let private = work.ok(
        &[("DOCKER_CONFIG", &config)],
        &format!("oci-fetch {}/private/sample:1 | oci-merge", proxy.host()),
    );
    assert_same_tar(&private, &local, "loopback realm");
    assert!(proxy
        .log()
        .iter()
        .any(|e| e["listener"] == "realm" && e["authorization"] == true));
}

/// A blob redirect keeps `Authorization` only to the same scheme, host
/// and port: another port of the same address is another server.
#[test]
fn a_blob_redirect_keeps_authorization_only_to_the_same_origin() {
    let registry = Registry::start(Auth::basic("alice", "s3cret-pass"));
    registry.push(&oci(&sample_layout(), "sample"), "sample:1");
    let local = local_merge(&sample_layout(), "--tag sample");
    let work = Workdir::new();
    for (to, kept) in [("other-port", false), ("same-port", true)] {
        let proxy = Proxy::start(
            &registry.host(),
            &[&format!("--redirect={to}"), "--times", "all"],
        );
        let config = docker_config(&work, &[(&proxy.host(), "alice", "s3cret-pass")]);
        let fetched = work.ok(
            &[("DOCKER_CONFIG", &config)],
            &format!("oci-fetch {}/sample:1 | oci-merge", proxy.host()),
        );
        assert_same_tar(&fetched, &local, to);
        let log = proxy.log();
        let redirected: Vec<_> = log.iter().filter(|e| e["redirected"] == true).collect();
        assert!(redirected.len() >= 2, "{to}: {log:#?}");
        let listener = if kept { "main" } else { "redirect" };
        assert!(
            redirected
                .iter()
                .all(|e| e["listener"] == listener && e["authorization"] == kept),
            "{to}: {log:#?}"
        );
    }
}

/// Runs `oci-fetch --deadline 2 --json` against a proxy with `flags` and
/// returns its one-line error and how long it took; a run that outlives
/// the deadline by far is cut at 60 s and fails the test.
fn fetch_against(registry: &Registry, flags: &[&str], image: &str) -> (String, Duration) {
    let proxy = Proxy::start(&registry.host(), flags);
    let work = Workdir::new();
    let start = Instant::now();
    let out = work.sh(
        &[],
        &format!(
            "timeout 60 oci-fetch --deadline 2 --json {}/{image}",
            proxy.host()
        ),
    );
    let took = start.elapsed();
    assert!(
        proxy.log().iter().any(|e| e["fault"] == "trickle"),
        "{flags:?}: the trickle happened: {:#?}",
        proxy.log()
    );
    assert!(!out.status.success(), "{flags:?}");
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{flags:?}: {message}");
    assert!(message.contains(&proxy.host()), "{message}");
    (message, took)
}

/// A registry that sends a byte a second never trips the stall timeout,
/// so manifests, configs and tokens have an overall deadline: oci-fetch
/// fails within it, naming what it was reading and the limit.
#[test]
fn a_trickling_manifest_config_or_token_fails_at_the_deadline() {
    let registry = sample_registry();
    let cases = [
        (
            &["--fault-on", "manifests", "--trickle", "body"][..],
            "manifest",
        ),
        (
            &["--fault-on", "manifests", "--trickle", "head"][..],
            "manifest",
        ),
        // The config is the first blob read.
        (&["--fault-on", "blobs", "--trickle", "body"][..], "config"),
    ];
    for (flags, what) in cases {
        let (message, took) = fetch_against(&registry, flags, "sample:1");
        assert!(
            message.contains(&format!(
                "{what} not received whole within the 2 s deadline"
            )),
            "{flags:?}: {message}"
        );
        assert!(took < Duration::from_secs(10), "{flags:?}: {took:?}");
    }
    let tokens = Registry::start(Auth::token("carol", "token-pass"));
    tokens.push(&oci(&sample_layout(), "sample"), "public/sample:1");
    let flags = [
        "--realm-host",
        "127.0.0.1",
        "--fault-on",
        "realm",
        "--trickle",
        "head",
    ];
    let (message, took) = fetch_against(&tokens, &flags, "public/sample:1");
    assert!(
        message.contains("token not received whole within the 2 s deadline"),
        "{message}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// An image (tag `big`) whose config is 16 MiB: under the local reader's
/// old 32 MiB limit, over containers/image's 4 MiB one (skopeo refuses to
/// copy it).
fn big_config_layout() -> PathBuf {
    fixture("big-config-layout", |out| {
        let layer = testkit::Layer::new().file("a", b"a\n");
        write_layout(out, "big", &[layer.tar()], 16 << 20);
    })
}

/// The peak RSS in KiB of a shell command run with GNU time; its output.
fn peak_rss(work: &Workdir, script: &str) -> (u64, Output) {
    let out = work.sh(&[], &format!("/usr/bin/time -f %M -o rss {script}"));
    let rss = std::fs::read_to_string(work.path("rss")).unwrap();
    let kib = rss.lines().last().unwrap().trim().parse().unwrap();
    (kib, out)
}

/// A config is a small document: one over 4 MiB is refused from its
/// descriptor, before a byte of it is read, by oci-fetch (the proxy sees
/// no request for it) and by oci-layers alike.
#[test]
fn a_config_over_the_limit_is_refused_before_it_is_read() {
    let layout = big_config_layout();
    let registry = Registry::start(Auth::None);
    registry.push_raw(&layout, "big", "1");
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Workdir::new();
    let (kib, out) = peak_rss(&work, &format!("oci-fetch --json {}/big:1", proxy.host()));
    assert!(!out.status.success());
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("config is 16777") && message.contains("over the 4 MiB limit"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}/big@sha256:", proxy.host())),
        "{message}"
    );
    assert!(
        proxy.blob_gets().is_empty(),
        "the config was asked for: {:#?}",
        proxy.blob_gets()
    );
    assert!(kib < 16 << 10, "peak RSS {kib} KiB");

    let out = work.sh(&[], &format!("oci-layers '{}'", layout.display()));
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("config is 16777") && message.contains("over the 4 MiB limit"),
        "{message}"
    );
}
