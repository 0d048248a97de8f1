//! Test images made by real tools, built once and shared by every test
//! process (nextest runs each test in its own process).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory shared fixtures live in (under the cargo target dir).
fn fixtures_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap();
    target.join("e2e-fixtures")
}

/// A fixture at `fixtures/<name>`, built by `build(path)` if absent. Builds
/// happen in a private directory renamed into place, so concurrent test
/// processes never see a half-built fixture.
pub fn fixture(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let dir = fixtures_dir();
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = tempfile::tempdir_in(&dir).unwrap();
    let built = scratch.path().join(name);
    build(&built);
    assert!(built.exists(), "building fixture {name} produced nothing");
    // Losing the race to another process is fine: its copy is identical.
    let _ = std::fs::rename(&built, &path);
    path
}

/// Runs a command, panicking with its stderr if it fails.
pub fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The sample image of `scripts/make-sample-image` (an OCI layout built
/// with umoci, tag `sample`). Keyed by the script's content so edits rebuild.
pub fn sample_layout() -> PathBuf {
    let script = repo_root().join("scripts/make-sample-image");
    let content = std::fs::read(&script).unwrap();
    let key = format!("sample-{:016x}", fnv(&content));
    fixture(&key, |out| {
        run(Command::new(&script).arg(out));
    })
}

/// A fixture derived from the sample image, named `<sample>-<name>`.
pub fn sample_derived(name: &str, build: impl FnOnce(&Path, &Path)) -> PathBuf {
    let layout = sample_layout();
    let key = format!("{}-{name}", layout.file_name().unwrap().to_string_lossy());
    fixture(&key, |out| build(&layout, out))
}

/// `skopeo copy SRC DST` with extra flags.
pub fn skopeo_copy(extra: &[&str], src: &str, dst: &str) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .args(extra)
        .args([src, dst]));
}

/// `oci:LAYOUT:sample`, skopeo's name for the sample image in a layout.
fn oci(layout: &Path) -> String {
    format!("oci:{}:sample", layout.display())
}

/// The sample image with zstd layers (skopeo).
pub fn zstd_layout() -> PathBuf {
    sample_derived("zstd", |src, out| {
        skopeo_copy(&["--dest-compress-format", "zstd"], &oci(src), &oci(out))
    })
}

/// The sample image with uncompressed layers. skopeo only writes
/// uncompressed OCI layers from a `dir:` copy whose layers were
/// decompressed.
pub fn uncompressed_layout() -> PathBuf {
    sample_derived("uncompressed", |src, out| {
        let dir = tempfile::tempdir().unwrap();
        let plain = format!("dir:{}", dir.path().join("plain").display());
        skopeo_copy(&["--dest-decompress"], &oci(src), &plain);
        skopeo_copy(
            &["--dest-oci-accept-uncompressed-layers"],
            &plain,
            &oci(out),
        );
    })
}

/// The sample image as a `docker save` archive (skopeo's docker-archive).
pub fn docker_archive() -> PathBuf {
    sample_derived("docker.tar", |src, out| {
        skopeo_copy(
            &[],
            &oci(src),
            &format!("docker-archive:{}:sample:latest", out.display()),
        )
    })
}

/// The sample image as an OCI layout in a tar (skopeo's oci-archive).
pub fn oci_archive() -> PathBuf {
    sample_derived("oci.tar", |src, out| {
        skopeo_copy(
            &[],
            &oci(src),
            &format!("oci-archive:{}:sample", out.display()),
        )
    })
}

/// Every form of the sample image that `oci-layers` reads, named: they
/// all merge to the tree of [`sample_reference_rootfs`].
pub fn sample_forms() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("umoci layout", sample_layout()),
        ("zstd layout", zstd_layout()),
        ("uncompressed layout", uncompressed_layout()),
        ("docker-archive tar", docker_archive()),
        ("docker-archive directory", extracted(&docker_archive())),
        ("oci-archive tar", oci_archive()),
        ("oci-archive directory", extracted(&oci_archive())),
    ]
}

/// Unpacks an archive fixture into a directory fixture.
pub fn extracted(archive: &Path) -> PathBuf {
    let key = format!(
        "{}-extracted",
        archive.file_name().unwrap().to_string_lossy()
    );
    fixture(&key, |out| {
        std::fs::create_dir(out).unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(out)
            .arg("-xf")
            .arg(archive));
    })
}

/// `umoci raw unpack` of the sample image: the reference root filesystem.
pub fn sample_reference_rootfs() -> PathBuf {
    let layout = sample_layout();
    let key = format!(
        "{}-umoci-rootfs",
        layout.file_name().unwrap().to_string_lossy()
    );
    fixture(&key, |out| {
        run(Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:sample", layout.display()))
            .arg(out));
    })
}

/// The sample image for two platforms under tag `multi`: an index nested
/// in the layout's index, amd64 the sample itself, arm64 the sample plus a
/// layer holding `/arch-arm64`.
pub fn multi_platform_layout() -> PathBuf {
    sample_derived("multi", |src, out| {
        run(Command::new("cp").arg("-a").arg(src).arg(out));
        let layer = tempfile::tempdir().unwrap();
        let tar = layer.path().join("arm.tar");
        std::fs::write(
            &tar,
            testkit::Layer::new().file("arch-arm64", b"arm64\n").tar(),
        )
        .unwrap();
        let image = |tag: &str| format!("{}:{tag}", out.display());
        run(Command::new("umoci").args([
            "config",
            "--image",
            &image("sample"),
            "--tag",
            "arm",
            "--architecture",
            "arm64",
        ]));
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &image("arm")])
            .arg(&tar));
        nest_in_index(out, &[("sample", "amd64"), ("arm", "arm64")], "multi");
    })
}

/// Adds to `layout` an index blob listing the manifests tagged `tags`
/// (with their architectures), tagged `name`.
pub fn nest_in_index(layout: &Path, tags: &[(&str, &str)], name: &str) {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let nested: Vec<serde_json::Value> = tags
        .iter()
        .map(|(tag, arch)| {
            let entry = entries
                .iter()
                .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == *tag)
                .unwrap_or_else(|| panic!("no tag {tag}"));
            serde_json::json!({
                "mediaType": entry["mediaType"],
                "digest": entry["digest"],
                "size": entry["size"],
                "platform": {"os": "linux", "architecture": arch},
            })
        })
        .collect();
    let blob = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": nested,
    }))
    .unwrap();
    let hex = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    std::fs::write(layout.join("blobs/sha256").join(&hex), &blob).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": blob.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The size of the noise layer the `big` image adds to the sample: large
/// enough that a throttled download of it takes seconds.
pub const BIG_LAYER: usize = 6 << 20;

/// The sample image plus a layer of incompressible noise, tag `big`.
pub fn big_layout() -> PathBuf {
    sample_derived("big-layer", |src, out| {
        run(Command::new("cp").arg("-a").arg(src).arg(out));
        let layer = tempfile::tempdir().unwrap();
        let tar = layer.path().join("noise.tar");
        let noise = testkit::noise(22, BIG_LAYER);
        std::fs::write(&tar, testkit::Layer::new().file("noise", &noise).tar()).unwrap();
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image"])
            .arg(format!("{}:sample", out.display()))
            .args(["--tag", "big"])
            .arg(&tar));
    })
}
