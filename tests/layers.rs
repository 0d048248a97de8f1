//! End-to-end tests of `oci-layers`: the built binary run on images made by
//! hand here (OCI layouts with OCI and Docker media types, nested indexes,
//! multi-platform and multi-tag images, legacy and Docker 25+ `docker save`
//! directories, and all of them packed as tar files), its layer list fed to
//! `oci-merge` and the merged tree checked, and every kind of broken image
//! checked for one clear error line and an empty stdout.

mod support;

use serde_json::{json, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{cmd, sh, stderr, Scratch};
use tar::EntryType;
use testkit::{read_tar, Layer};

// ---------------------------------------------------------------------------
// Media types.

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const FOREIGN_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

// ---------------------------------------------------------------------------
// Layers and the trees they merge to.

/// The base layer: directories, a file the top layer replaces and one it
/// whites out, a symlink, and parents no entry describes.
fn base_layer() -> Layer {
    Layer::new()
        .dir("etc")
        .file("etc/os-release", b"base\n")
        .file("etc/removed", b"old\n")
        .dir("bin")
        .file_mode("bin/sh", b"#!sh\n", 0o755)
        .symlink("bin/bash", "sh")
}

/// The top layer: replaces a file, whites one out, adds one.
fn top_layer() -> Layer {
    Layer::new()
        .file("etc/os-release", b"top\n")
        .whiteout("etc/removed")
        .file("usr/bin/tool", b"tool\n")
}

/// A one-file layer telling which image it came from.
fn marker_layer(name: &str) -> Layer {
    Layer::new().file("image", name.as_bytes())
}

fn tree_of(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(path, what)| ((*path).to_owned(), (*what).to_owned()))
        .collect()
}

/// What `base_layer` under `top_layer` merges to.
fn expected_stack() -> BTreeMap<String, String> {
    tree_of(&[
        ("bin", "dir"),
        ("bin/bash", "symlink -> sh"),
        ("bin/sh", "file \"#!sh\\n\""),
        ("etc", "dir"),
        ("etc/os-release", "file \"top\\n\""),
        ("usr", "dir"),
        ("usr/bin", "dir"),
        ("usr/bin/tool", "file \"tool\\n\""),
    ])
}

/// What base, top, base again merge to: the repeated base restores its
/// files over the top layer's.
fn expected_repeated() -> BTreeMap<String, String> {
    let mut tree = expected_stack();
    tree.insert("etc/os-release".into(), "file \"base\\n\"".into());
    tree.insert("etc/removed".into(), "file \"old\\n\"".into());
    tree
}

/// The merged archive as path -> short description; each path once.
fn tree(archive: &[u8]) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for entry in read_tar(archive) {
        let path = entry.path.trim_end_matches('/').to_owned();
        let what = match entry.kind {
            EntryType::Directory => "dir".to_owned(),
            EntryType::Symlink => format!("symlink -> {}", entry.link),
            EntryType::Regular => format!("file {:?}", String::from_utf8_lossy(&entry.data)),
            other => format!("{other:?}"),
        };
        assert!(
            tree.insert(path.clone(), what).is_none(),
            "{path} appears twice in the output"
        );
    }
    tree
}

// ---------------------------------------------------------------------------
// Digests.

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

// ---------------------------------------------------------------------------
// OCI layouts.

/// A layer as an image stores it.
#[derive(Clone)]
struct Blob {
    media_type: String,
    bytes: Vec<u8>,
    /// The digest of the uncompressed tar.
    diff_id: String,
}

impl Blob {
    fn gzip(layer: &Layer) -> Blob {
        Blob {
            media_type: OCI_GZIP.into(),
            bytes: layer.gzip(),
            diff_id: digest_of(&layer.tar()),
        }
    }

    fn plain(layer: &Layer) -> Blob {
        Blob {
            media_type: OCI_TAR.into(),
            bytes: layer.tar(),
            diff_id: digest_of(&layer.tar()),
        }
    }

    fn typed(self, media_type: &str) -> Blob {
        Blob {
            media_type: media_type.into(),
            ..self
        }
    }
}

/// What `Layout::image` wrote.
struct Written {
    /// The manifest's descriptor, for an index.
    manifest: Value,
    config: String,
    layers: Vec<String>,
}

/// An OCI image layout under construction.
struct Layout {
    root: PathBuf,
}

impl Layout {
    /// An empty layout: the `oci-layout` marker and no blobs yet.
    fn new(root: &Path) -> Layout {
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(
            root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout {
            root: root.to_path_buf(),
        }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    /// Stores a blob under its digest and returns its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = digest_of(bytes);
        fs::write(self.blob_path(&digest), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    fn json_blob(&self, media_type: &str, doc: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(doc).unwrap())
    }

    /// Writes an image (layers, config, manifest) and returns what it wrote.
    /// `manifest_type` picks OCI or Docker media types throughout.
    fn image(&self, manifest_type: &str, platform: Option<&str>, layers: &[Blob]) -> Written {
        let config_type = if manifest_type == DOCKER_MANIFEST {
            DOCKER_CONFIG
        } else {
            OCI_CONFIG
        };
        let config = self.json_blob(config_type, &config_doc(platform, layers));
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|l| self.blob(&l.media_type, &l.bytes))
            .collect();
        let doc = manifest_doc(manifest_type, &config, &layer_descs);
        Written {
            manifest: self.json_blob(manifest_type, &doc),
            config: config["digest"].as_str().unwrap().to_owned(),
            layers: layer_descs
                .iter()
                .map(|d| d["digest"].as_str().unwrap().to_owned())
                .collect(),
        }
    }

    /// Writes `index.json` listing `manifests`.
    fn index_json(&self, manifests: &[Value]) {
        let doc = index_doc(OCI_INDEX, manifests);
        fs::write(
            self.root.join("index.json"),
            serde_json::to_vec(&doc).unwrap(),
        )
        .unwrap();
    }

    /// The line `oci-layers` prints for a blob of this layout.
    fn line(&self, digest: &str) -> String {
        self.blob_path(digest).to_str().unwrap().to_owned()
    }

    /// Replaces a blob's bytes without renaming it.
    fn overwrite(&self, digest: &str, bytes: &[u8]) {
        fs::write(self.blob_path(digest), bytes).unwrap();
    }
}

fn config_doc(platform: Option<&str>, layers: &[Blob]) -> Value {
    let mut doc = json!({
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
    });
    if let Some(platform) = platform {
        for (key, value) in ["os", "architecture", "variant"]
            .into_iter()
            .zip(platform.split('/'))
        {
            doc[key] = json!(value);
        }
    }
    doc
}

fn manifest_doc(media_type: &str, config: &Value, layers: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": layers,
    })
}

fn index_doc(media_type: &str, manifests: &[Value]) -> Value {
    json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})
}

/// A descriptor with a `platform` (`os/arch[/variant]`).
fn on(platform: &str, mut descriptor: Value) -> Value {
    let parts: Vec<&str> = platform.split('/').collect();
    let mut p = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(variant) = parts.get(2) {
        p["variant"] = json!(variant);
    }
    descriptor["platform"] = p;
    descriptor
}

/// A descriptor with an annotation.
fn annotated(key: &str, value: &str, mut descriptor: Value) -> Value {
    descriptor["annotations"][key] = json!(value);
    descriptor
}

/// A single-image layout of `layers` at `root`.
fn single_image(root: &Path, layers: &[Blob]) -> (Layout, Written) {
    let layout = Layout::new(root);
    let written = layout.image(OCI_MANIFEST, Some("linux/amd64"), layers);
    layout.index_json(std::slice::from_ref(&written.manifest));
    (layout, written)
}

fn base_and_top() -> Vec<Blob> {
    vec![Blob::gzip(&base_layer()), Blob::gzip(&top_layer())]
}

fn base_top_base() -> Vec<Blob> {
    vec![
        Blob::plain(&base_layer()),
        Blob::plain(&top_layer()),
        Blob::plain(&base_layer()),
    ]
}

// ---------------------------------------------------------------------------
// `docker save` directories.

/// One image of a `docker save`.
struct Saved<'a> {
    tags: &'a [&'a str],
    platform: &'a str,
    layers: Vec<Layer>,
}

/// Writes a legacy `docker save` directory: `manifest.json`, `<hex>.json`
/// configs, `<id>/layer.tar` uncompressed, and for a layer already saved
/// the symlink `<id>/layer.tar -> ../<first id>/layer.tar` Docker writes.
/// Returns the config file names.
fn legacy_save(root: &Path, images: &[Saved]) -> Vec<String> {
    fs::create_dir_all(root).unwrap();
    let mut first_dir: BTreeMap<String, String> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut configs = Vec::new();
    let mut repositories = json!({});
    for (n, image) in images.iter().enumerate() {
        let blobs: Vec<Blob> = image.layers.iter().map(Blob::plain).collect();
        let config = serde_json::to_vec(&config_doc(Some(image.platform), &blobs)).unwrap();
        let config_name = format!("{}.json", sha256_hex(&config));
        fs::write(root.join(&config_name), &config).unwrap();
        let mut layer_paths = Vec::new();
        for (i, blob) in blobs.iter().enumerate() {
            let id = sha256_hex(format!("{n}/{i}/{}", blob.diff_id).as_bytes());
            let dir = root.join(&id);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("VERSION"), "1.0").unwrap();
            fs::write(dir.join("json"), format!(r#"{{"id":"{id}"}}"#)).unwrap();
            match first_dir.get(&blob.diff_id) {
                Some(first) => std::os::unix::fs::symlink(
                    format!("../{first}/layer.tar"),
                    dir.join("layer.tar"),
                )
                .unwrap(),
                None => {
                    fs::write(dir.join("layer.tar"), &blob.bytes).unwrap();
                    first_dir.insert(blob.diff_id.clone(), id.clone());
                }
            }
            layer_paths.push(format!("{id}/layer.tar"));
        }
        for tag in image.tags {
            let (repo, version) = tag.rsplit_once(':').unwrap();
            repositories[repo][version] = json!(layer_paths.last().unwrap());
        }
        entries.push(json!({"Config": config_name, "RepoTags": image.tags, "Layers": layer_paths}));
        configs.push(config_name);
    }
    fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(&entries).unwrap(),
    )
    .unwrap();
    fs::write(
        root.join("repositories"),
        serde_json::to_vec(&repositories).unwrap(),
    )
    .unwrap();
    configs
}

/// Writes the Docker 25+ form of `docker save` of one image: an OCI layout
/// (uncompressed layers) whose `manifest.json` names the blobs.
fn docker25_save(root: &Path, tag: &str, layers: &[Layer]) -> (Layout, Written) {
    let image = Saved {
        tags: &[tag],
        platform: "linux/amd64",
        layers: layers.to_vec(),
    };
    let (layout, mut written) = docker25_save_all(root, &[image]);
    (layout, written.remove(0))
}

/// Writes what Docker 25+ `docker save` writes for `images`: each image's
/// blobs (layers uncompressed, stored once), one index.json entry per tag
/// with the entry's platform and Docker's two annotations (the full name in
/// `io.containerd.image.name`, only the tag in the OCI `ref.name`), and the
/// legacy `manifest.json` (familiar names in `RepoTags`) and `repositories`.
fn docker25_save_all(root: &Path, images: &[Saved]) -> (Layout, Vec<Written>) {
    let layout = Layout::new(root);
    let blob = |d: &str| format!("blobs/sha256/{}", hex_of(d));
    let (mut entries, mut manifest, mut repositories) = (Vec::new(), Vec::new(), json!({}));
    let mut all = Vec::new();
    for image in images {
        let blobs: Vec<Blob> = image.layers.iter().map(Blob::plain).collect();
        let written = layout.image(OCI_MANIFEST, Some(image.platform), &blobs);
        for tag in image.tags {
            let (repo, version) = tag.rsplit_once(':').unwrap();
            let descriptor = on(image.platform, written.manifest.clone());
            let descriptor = annotated(REF_NAME, version, descriptor);
            entries.push(annotated(
                CONTAINERD_NAME,
                &docker_full_name(tag),
                descriptor,
            ));
            repositories[repo][version] = json!(hex_of(written.layers.last().unwrap()));
        }
        manifest.push(json!({
            "Config": blob(&written.config),
            "RepoTags": image.tags,
            "Layers": written.layers.iter().map(|d| blob(d)).collect::<Vec<_>>(),
        }));
        all.push(written);
    }
    layout.index_json(&entries);
    fs::write(root.join("manifest.json"), json!(manifest).to_string()).unwrap();
    fs::write(root.join("repositories"), repositories.to_string()).unwrap();
    (layout, all)
}

/// The full name Docker gives a familiar one: `alpine:latest` is
/// `docker.io/library/alpine:latest`, `team/app:1` is `docker.io/team/app:1`.
fn docker_full_name(familiar: &str) -> String {
    match familiar.split_once('/') {
        None => format!("docker.io/library/{familiar}"),
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => familiar.into(),
        Some(_) => format!("docker.io/{familiar}"),
    }
}

/// How `pack_as` writes an archive's members.
#[derive(Clone, Copy, PartialEq)]
enum Packing {
    /// Names as `docker save` writes them; symlinks stay symlinks.
    Docker,
    /// Symlinks become hard-link members naming the file they resolve to
    /// (as tar does for a file linked twice).
    HardLinks,
    /// Every name starts with `./`, as `tar -C dir .` and skopeo write them
    /// (raw headers: the `tar` crate strips a leading `./`).
    DotSlash,
}

/// Packs a directory into a tar file the way `docker save -o` does: every
/// file, directory and symlink (kept as a symlink member), sorted.
fn pack(dir: &Path, archive: &Path) {
    pack_as(dir, archive, Packing::Docker)
}

fn pack_as(dir: &Path, archive: &Path, packing: Packing) {
    let mut builder = tar::Builder::new(fs::File::create(archive).unwrap());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<PathBuf> = fs::read_dir(dir.join(&rel))
            .unwrap()
            .map(|e| rel.join(e.unwrap().file_name()))
            .collect();
        children.sort();
        for child in children.into_iter().rev() {
            let full = dir.join(&child);
            let meta = fs::symlink_metadata(&full).unwrap();
            if meta.is_dir() {
                stack.push(child.clone());
            }
            match packing {
                Packing::HardLinks if meta.file_type().is_symlink() => {
                    let target = fs::canonicalize(&full).unwrap();
                    let root = fs::canonicalize(dir).unwrap();
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    header.set_mode(0o644);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_mtime(0);
                    let target = target.strip_prefix(root).unwrap();
                    builder.append_link(&mut header, &child, target).unwrap();
                }
                Packing::DotSlash => {
                    assert!(!meta.file_type().is_symlink(), "not for symlinks");
                    let mut header = tar::Header::new_ustar();
                    header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
                    let name = format!("./{}", child.to_str().unwrap());
                    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                    header.set_cksum();
                    let data = if meta.is_file() {
                        fs::read(&full).unwrap()
                    } else {
                        Vec::new()
                    };
                    builder.append(&header, &data[..]).unwrap();
                }
                _ => builder.append_path_with_name(&full, &child).unwrap(),
            }
        }
    }
    builder.into_inner().unwrap();
}

// ---------------------------------------------------------------------------
// Runs.

fn oci_layers(image: &Path, flags: &[&str]) -> Output {
    cmd("oci-layers")
        .args(flags)
        .arg(image)
        .output()
        .expect("run oci-layers")
}

/// Asserts success without a word on stderr; returns the printed lines.
fn lines(what: &str, out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{what}: oci-layers failed ({}): {}",
        out.status,
        stderr(out)
    );
    assert_eq!(stderr(out), "", "{what}: unexpected stderr");
    let text = String::from_utf8(out.stdout.clone()).expect("UTF-8 output");
    assert!(
        text.ends_with('\n'),
        "{what}: output {text:?} lacks a final newline"
    );
    text.lines().map(str::to_owned).collect()
}

/// Runs `oci-layers FLAGS IMAGE` and returns its lines.
fn layer_lines(image: &Path, flags: &[&str]) -> Vec<String> {
    lines(
        &format!("{flags:?} {}", image.display()),
        &oci_layers(image, flags),
    )
}

/// Asserts a failure: non-zero exit, no layer on stdout (at most the
/// `#failed` line a failed list ends with, see tests/newcomer.rs), and one
/// stderr line starting `oci-layers: ` that contains every needle.
fn assert_fails(what: &str, out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: oci-layers succeeded: {err}");
    assert!(
        out.stdout.is_empty() || out.stdout == b"#failed\n",
        "{what}: a failed run printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        err_lines.len(),
        1,
        "{what}: expected one line on stderr: {err}"
    );
    assert!(
        err_lines[0].starts_with("oci-layers: ") && !err_lines[0].contains(": warning:"),
        "{what}: not an oci-layers error line: {err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "{what}: {needle:?} not in: {err}");
    }
}

/// `oci-layers IMAGE | oci-merge` in the scratch directory, with pipefail;
/// returns the merged tree.
fn merged(s: &Scratch, image: &str) -> BTreeMap<String, String> {
    let out = sh(s.0.path(), &format!("oci-layers '{image}' | oci-merge"));
    assert!(
        out.status.success(),
        "oci-layers {image} | oci-merge failed: {}",
        stderr(&out)
    );
    tree(&out.stdout)
}

/// What the `image` marker file of a merged tree says.
fn marker(tree: &BTreeMap<String, String>) -> &str {
    tree.get("image").map(String::as_str).unwrap_or("no marker")
}

/// A byte-range line's fields: (path, offset, size, digest).
fn range_fields(line: &str) -> (String, u64, u64, String) {
    let fields: Vec<&str> = line.split('\t').collect();
    let [path, offset, size, digest] = fields.as_slice() else {
        panic!("not a path with offset, size and digest: {line:?}");
    };
    let number = |field: &str, key: &str| -> u64 {
        field
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("{field:?} is not {key}N in {line:?}"))
            .parse()
            .unwrap()
    };
    (
        (*path).to_owned(),
        number(offset, "offset="),
        number(size, "size="),
        digest
            .strip_prefix("digest=")
            .unwrap_or_else(|| panic!("no digest field in {line:?}"))
            .to_owned(),
    )
}

/// Checks every line names a byte range of `archive` whose bytes hash to
/// its digest; returns the digests.
fn check_ranges(archive: &Path, lines: &[String]) -> Vec<String> {
    let bytes = fs::read(archive).unwrap();
    lines
        .iter()
        .map(|line| {
            let (path, offset, size, digest) = range_fields(line);
            assert_eq!(Path::new(&path), archive, "{line}");
            let range = &bytes[offset as usize..(offset + size) as usize];
            assert_eq!(
                digest_of(range),
                digest,
                "{line}: the range has other bytes"
            );
            digest
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Single images.

#[test]
fn single_image_prints_layer_blobs_base_first_and_merges() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("img"), &base_and_top());
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    // Given a relative path, the lines are still absolute, so the list
    // works from any directory.
    let out = sh(s.0.path(), "oci-layers img");
    let absolute: Vec<String> = written
        .layers
        .iter()
        .map(|d| format!("{}/img/blobs/sha256/{}", s.0.path().display(), hex_of(d)))
        .collect();
    assert_eq!(lines("relative path", &out), absolute);
    assert_eq!(merged(&s, "img"), expected_stack());
}

#[test]
fn a_blob_listed_twice_is_printed_twice() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("img"), &base_top_base());
    assert_eq!(written.layers[0], written.layers[2]);
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    assert_eq!(merged(&s, "img"), expected_repeated());
}

#[test]
fn docker_media_types_and_unlabelled_entries_resolve() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let blobs: Vec<Blob> = base_and_top()
        .into_iter()
        .map(|b| b.typed(DOCKER_GZIP))
        .collect();
    // No platform in the config or the index entry.
    let written = layout.image(DOCKER_MANIFEST, None, &blobs);
    layout.index_json(&[written.manifest]);
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    assert_eq!(
        layer_lines(&layout.root, &["--platform", "linux/s390x"]),
        expected,
        "an image that declares no platform suits any"
    );
    assert_eq!(merged(&s, "img"), expected_stack());
}

// ---------------------------------------------------------------------------
// 2. Nested indexes.

#[test]
fn nested_indexes_of_both_kinds_are_followed() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let amd = layout.image(
        DOCKER_MANIFEST,
        Some("linux/amd64"),
        &[Blob::gzip(&marker_layer("amd64")).typed(DOCKER_GZIP)],
    );
    let arm = layout.image(
        DOCKER_MANIFEST,
        Some("linux/arm64/v8"),
        &[Blob::gzip(&marker_layer("arm64")).typed(DOCKER_GZIP)],
    );
    // Entries that are not images are ignored: an unknown type (its blob
    // absent), and an artifact.
    let unknown = json!({
        "mediaType": "application/vnd.example.unknown+json",
        "digest": digest_of(b"absent"),
        "size": 6,
    });
    let mut artifact = layout.json_blob(OCI_MANIFEST, &json!({"schemaVersion": 2}));
    artifact["artifactType"] = json!("application/vnd.example.sbom");
    let list = layout.json_blob(
        DOCKER_LIST,
        &index_doc(
            DOCKER_LIST,
            &[
                unknown,
                artifact,
                on("linux/arm64/v8", arm.manifest.clone()),
                on("linux/amd64", amd.manifest.clone()),
            ],
        ),
    );
    let index = layout.json_blob(OCI_INDEX, &index_doc(OCI_INDEX, &[list]));
    layout.index_json(&[index]);

    assert_eq!(
        layer_lines(&layout.root, &[]),
        [layout.line(&amd.layers[0])]
    );
    assert_eq!(
        layer_lines(&layout.root, &["--platform", "linux/arm64"]),
        [layout.line(&arm.layers[0])]
    );
    assert_eq!(marker(&merged(&s, "img")), "file \"amd64\"");
}

/// image-spec: an entry of an unknown media type MUST NOT be an error. At
/// the top of index.json too, and without a platform (which would match
/// any): it is neither another image to choose from nor a tagged image.
#[test]
fn unknown_top_level_entries_are_ignored() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let image = layout.image(
        OCI_MANIFEST,
        Some("linux/amd64"),
        &[Blob::gzip(&marker_layer("real"))],
    );
    let unknown = json!({
        "mediaType": "application/vnd.example.sbom+json",
        "digest": digest_of(b"absent"),
        "size": 6,
    });
    let tagged = annotated(REF_NAME, "1.0", on("linux/amd64", image.manifest));
    let expected = [layout.line(&image.layers[0])];
    for (unknown, flags) in [
        (unknown.clone(), &[][..]),
        (unknown.clone(), &["--tag", "1.0"][..]),
        (annotated(REF_NAME, "sbom", unknown.clone()), &[][..]),
        (
            annotated(REF_NAME, "1.0", unknown.clone()),
            &["--tag", "1.0"][..],
        ),
    ] {
        layout.index_json(&[unknown.clone(), tagged.clone()]);
        assert_eq!(
            layer_lines(&layout.root, flags),
            expected,
            "{unknown} {flags:?}"
        );
    }
    layout.index_json(&[annotated(REF_NAME, "sbom", unknown), tagged]);
    let out = oci_layers(&layout.root, &["--tag", "sbom"]);
    assert_fails("--tag of an unknown entry", &out, &["sbom", "1.0"]);
}

#[test]
fn indexes_nested_too_deep_are_an_error() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let mut entry = layout
        .image(OCI_MANIFEST, None, &[Blob::gzip(&marker_layer("deep"))])
        .manifest;
    for _ in 0..12 {
        entry = layout.json_blob(OCI_INDEX, &index_doc(OCI_INDEX, &[entry]));
    }
    layout.index_json(&[entry]);
    assert_fails(
        "12 nested indexes",
        &oci_layers(&layout.root, &[]),
        &["img", "nested"],
    );
}

// ---------------------------------------------------------------------------
// 3. Platforms.

/// A layout whose index lists one marker image per platform, in order;
/// returns it and each platform's layer line.
fn multi_platform(root: &Path, platforms: &[&str]) -> (Layout, BTreeMap<String, String>) {
    let layout = Layout::new(root);
    let mut lines = BTreeMap::new();
    let mut entries = Vec::new();
    for platform in platforms {
        let written = layout.image(
            OCI_MANIFEST,
            Some(platform),
            &[Blob::gzip(&marker_layer(platform))],
        );
        lines.insert(platform.to_string(), layout.line(&written.layers[0]));
        entries.push(on(platform, written.manifest));
    }
    layout.index_json(&entries);
    (layout, lines)
}

#[test]
fn platform_selection_follows_the_matching_rules() {
    let s = Scratch::new();
    let platforms = [
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/amd64",
        "linux/arm/v6",
    ];
    let (layout, line) = multi_platform(&s.path("img"), &platforms);
    let cases: &[(Option<&str>, &str)] = &[
        (None, "linux/amd64"), // this machine (x86_64)
        (Some("linux/amd64"), "linux/amd64"),
        (Some("linux/x86_64"), "linux/amd64"),
        (Some("linux/arm64"), "linux/arm64/v8"),
        (Some("linux/aarch64"), "linux/arm64/v8"),
        (Some("linux/arm64/v8"), "linux/arm64/v8"),
        (Some("linux/arm"), "linux/arm/v7"), // no variant: the first arm entry
        (Some("linux/arm/v7"), "linux/arm/v7"),
        (Some("linux/arm/v6"), "linux/arm/v6"),
    ];
    for (request, want) in cases {
        let flags: Vec<&str> = request.iter().flat_map(|r| ["--platform", r]).collect();
        assert_eq!(
            layer_lines(&layout.root, &flags),
            [line[*want].clone()],
            "--platform {request:?} should pick {want}"
        );
    }
    for request in ["linux/s390x", "linux/arm/v5", "windows/amd64"] {
        assert_fails(
            request,
            &oci_layers(&layout.root, &["--platform", request]),
            &[
                "img",
                request,
                "linux/arm64/v8",
                "linux/arm/v7",
                "linux/amd64",
                "linux/arm/v6",
            ],
        );
    }
    assert_fails(
        "malformed platform",
        &oci_layers(&layout.root, &["--platform", "linux"]),
        &["\"linux\""],
    );
}

#[test]
fn exact_platform_matches_win_over_the_first_variant() {
    let s = Scratch::new();
    // v6 first, then an arm entry without a variant, then arm64 without its
    // implied v8.
    let layout = Layout::new(&s.path("img"));
    let mut entries = Vec::new();
    let mut line = BTreeMap::new();
    for (label, platform) in [
        ("v6", "linux/arm/v6"),
        ("plain", "linux/arm"),
        ("arm64", "linux/arm64"),
    ] {
        let written = layout.image(OCI_MANIFEST, None, &[Blob::gzip(&marker_layer(label))]);
        line.insert(label, layout.line(&written.layers[0]));
        entries.push(on(platform, written.manifest));
    }
    layout.index_json(&entries);
    for (request, want) in [
        ("linux/arm", "plain"),
        ("linux/arm/v6", "v6"),
        ("linux/arm64/v8", "arm64"),
        ("linux/aarch64", "arm64"),
    ] {
        assert_eq!(
            layer_lines(&layout.root, &["--platform", request]),
            [line[want].clone()],
            "--platform {request} should pick {want}"
        );
    }
    assert_fails(
        "arm/v7 absent",
        &oci_layers(&layout.root, &["--platform", "linux/arm/v7"]),
        &["linux/arm/v7", "linux/arm/v6"],
    );
}

#[test]
fn single_image_must_suit_an_explicit_platform() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    // The index entry has no platform; the config says arm64.
    let written = layout.image(
        OCI_MANIFEST,
        Some("linux/arm64"),
        &[Blob::gzip(&marker_layer("arm64"))],
    );
    layout.index_json(&[written.manifest]);
    let line = layout.line(&written.layers[0]);
    for request in ["linux/arm64", "linux/arm64/v8", "linux/aarch64"] {
        assert_eq!(
            layer_lines(&layout.root, &["--platform", request]),
            std::slice::from_ref(&line)
        );
    }
    assert_fails(
        "explicit amd64",
        &oci_layers(&layout.root, &["--platform", "linux/amd64"]),
        &["img", "linux/arm64", "linux/amd64"],
    );
}

/// A single image without platform labels (an unlabelled layout, a
/// `docker save`) matches any platform unless one is asked for explicitly:
/// converting an arm64 image on an x86_64 machine needs no flag.
#[test]
fn single_image_of_another_platform_resolves_without_a_platform_request() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let written = layout.image(
        OCI_MANIFEST,
        Some("linux/arm64"),
        &[Blob::gzip(&marker_layer("arm64"))],
    );
    layout.index_json(&[written.manifest]);
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["arm:latest"],
            platform: "linux/arm64/v8",
            layers: vec![marker_layer("arm64")],
        }],
    );
    let (from_layout, from_save) = (oci_layers(&layout.root, &[]), oci_layers(&saved, &[]));
    assert!(
        from_layout.status.success() && from_save.status.success(),
        "layout: {}docker save: {}",
        stderr(&from_layout),
        stderr(&from_save)
    );
    assert_eq!(
        lines("layout", &from_layout),
        [layout.line(&written.layers[0])]
    );
    assert_eq!(lines("docker save", &from_save).len(), 1);
}

// ---------------------------------------------------------------------------
// 4. Attestations.

#[test]
fn attestation_manifests_listed_first_are_skipped() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let in_toto = Blob {
        media_type: "application/vnd.in-toto+json".into(),
        bytes: br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec(),
        diff_id: digest_of(b"not a layer"),
    };
    let attestation = layout.image(OCI_MANIFEST, None, &[in_toto]);
    let image = layout.image(
        OCI_MANIFEST,
        Some("linux/amd64"),
        &[Blob::gzip(&marker_layer("real"))],
    );
    let reference = |d: Value| {
        annotated(
            "vnd.docker.reference.digest",
            image.manifest["digest"].as_str().unwrap(),
            annotated("vnd.docker.reference.type", "attestation-manifest", d),
        )
    };
    let expected = [layout.line(&image.layers[0])];
    // As BuildKit writes it: platform unknown/unknown and the annotation.
    layout.index_json(&[
        on("unknown/unknown", reference(attestation.manifest.clone())),
        on("linux/amd64", image.manifest.clone()),
    ]);
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    // Only the annotation: an entry without platform would match anything.
    layout.index_json(&[
        reference(attestation.manifest.clone()),
        on("linux/amd64", image.manifest.clone()),
    ]);
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    // Only unknown/unknown, ahead of an image entry without platform.
    layout.index_json(&[on("unknown/unknown", attestation.manifest), image.manifest]);
    assert_eq!(layer_lines(&layout.root, &[]), expected);
}

// ---------------------------------------------------------------------------
// 5. Tags.

#[test]
fn tags_choose_among_the_images_of_a_layout() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let one = layout.image(OCI_MANIFEST, None, &[Blob::gzip(&marker_layer("1.0"))]);
    let two = layout.image(OCI_MANIFEST, None, &[Blob::gzip(&marker_layer("2.0"))]);
    layout.index_json(&[
        annotated(REF_NAME, "1.0", one.manifest),
        annotated(REF_NAME, "2.0", two.manifest),
    ]);
    assert_fails(
        "no --tag",
        &oci_layers(&layout.root, &[]),
        &["img", "--tag", "1.0", "2.0"],
    );
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "2.0"]),
        [layout.line(&two.layers[0])]
    );
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "1.0"]),
        [layout.line(&one.layers[0])]
    );
    assert_fails(
        "--tag 3.0",
        &oci_layers(&layout.root, &["--tag", "3.0"]),
        &["img", "3.0", "1.0", "2.0"],
    );
}

#[test]
fn a_tag_on_several_platform_entries_then_picks_the_platform() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let mut entries = Vec::new();
    let mut line = BTreeMap::new();
    for (tag, platform) in [
        ("1.0", "linux/arm64/v8"),
        ("1.0", "linux/amd64"),
        ("2.0", "linux/amd64"),
    ] {
        let name = format!("{tag} {platform}");
        let written = layout.image(OCI_MANIFEST, None, &[Blob::gzip(&marker_layer(&name))]);
        line.insert(name, layout.line(&written.layers[0]));
        entries.push(annotated(REF_NAME, tag, on(platform, written.manifest)));
    }
    layout.index_json(&entries);
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "1.0"]),
        [line["1.0 linux/amd64"].clone()]
    );
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "1.0", "--platform", "linux/arm64"]),
        [line["1.0 linux/arm64/v8"].clone()]
    );
    assert_fails(
        "2.0 for arm64",
        &oci_layers(&layout.root, &["--tag", "2.0", "--platform", "linux/arm64"]),
        &["linux/arm64", "linux/amd64"],
    );
}

#[test]
fn tags_choose_among_the_images_of_a_docker_save() {
    let s = Scratch::new();
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[
            Saved {
                tags: &["alpine:latest"],
                platform: "linux/amd64",
                layers: vec![marker_layer("latest")],
            },
            Saved {
                tags: &["alpine:3.19", "example.com/team/alpine:3.19"],
                platform: "linux/amd64",
                layers: vec![marker_layer("3.19")],
            },
        ],
    );
    pack(&saved, &s.path("saved.tar"));
    for image in ["saved", "saved.tar"] {
        let path = s.path(image);
        assert_fails(
            &format!("{image} without --tag"),
            &oci_layers(&path, &[]),
            &[image, "--tag", "alpine:latest", "alpine:3.19"],
        );
        for (tag, want) in [
            ("alpine", "latest"),
            ("alpine:latest", "latest"),
            ("docker.io/library/alpine", "latest"),
            ("alpine:3.19", "3.19"),
            ("example.com/team/alpine:3.19", "3.19"),
        ] {
            let out = sh(
                s.0.path(),
                &format!("oci-layers --tag '{tag}' {image} | oci-merge"),
            );
            assert!(out.status.success(), "--tag {tag}: {}", stderr(&out));
            assert_eq!(
                marker(&tree(&out.stdout)),
                format!("file {want:?}"),
                "{image} --tag {tag}"
            );
        }
        assert_fails(
            &format!("{image} --tag alpine:3.20"),
            &oci_layers(&path, &["--tag", "alpine:3.20"]),
            &[image, "alpine:3.20", "alpine:latest", "alpine:3.19"],
        );
    }
}

/// `docker save alpine:latest busybox:latest` with Docker 25+: each
/// index.json entry's `ref.name` is just the tag, so both images read
/// `latest`; only the full names (`io.containerd.image.name`, `RepoTags`)
/// tell them apart. Several images and no `--tag` naming exactly one is an
/// error listing the full names.
#[test]
fn a_docker25_save_of_several_images_needs_a_tag_naming_one() {
    let s = Scratch::new();
    docker25_save_all(
        &s.path("saved"),
        &[
            marked_image(&["alpine:latest"], "alpine"),
            marked_image(&["busybox:latest"], "busybox"),
        ],
    );
    pack(&s.path("saved"), &s.path("saved.tar"));
    let names = [
        "docker.io/library/alpine:latest",
        "docker.io/library/busybox:latest",
    ];
    for archive in ["saved", "saved.tar"] {
        let path = s.path(archive);
        for (what, flags) in [
            ("no --tag", &[][..]),
            ("--tag latest", &["--tag", "latest"]),
        ] {
            assert_fails(
                &format!("{archive} {what}"),
                &oci_layers(&path, flags),
                &[&[archive, "several images", "--tag"][..], &names].concat(),
            );
        }
        // No image in index.json has the tag, so manifest.json is searched
        // too, and the error lists the names it knows (RepoTags).
        assert_fails(
            &format!("{archive} --tag alpine:3.20"),
            &oci_layers(&path, &["--tag", "alpine:3.20"]),
            &[archive, "alpine:3.20", "alpine:latest", "busybox:latest"],
        );
        for (tag, want) in [
            ("alpine", "alpine"),
            ("alpine:latest", "alpine"),
            ("docker.io/library/alpine", "alpine"),
            ("busybox", "busybox"),
            ("busybox:latest", "busybox"),
            ("docker.io/library/busybox:latest", "busybox"),
        ] {
            assert_eq!(merged_tag(&s, archive, tag), want, "{archive} --tag {tag}");
        }
    }
}

/// Two tags of one image (one manifest, two index.json entries) are one
/// image: no `--tag` is needed, and either tag names it.
#[test]
fn a_docker25_save_of_one_image_under_two_tags_needs_no_tag() {
    let s = Scratch::new();
    let (layout, written) = docker25_save_all(
        &s.path("saved"),
        &[
            marked_image(&["alpine:latest", "alpine:3.19"], "alpine"),
            marked_image(&["busybox:1.36"], "busybox"),
        ],
    );
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "alpine"]),
        [layout.line(&written[0].layers[0])]
    );
    for tag in ["3.19", "alpine:3.19", "latest"] {
        assert_eq!(merged_tag(&s, "saved", tag), "alpine", "--tag {tag}");
    }
    let (layout, written) = docker25_save_all(
        &s.path("one"),
        &[marked_image(&["alpine:latest", "alpine:3.19"], "alpine")],
    );
    assert_eq!(
        layer_lines(&layout.root, &[]),
        [layout.line(&written[0].layers[0])]
    );
}

/// An amd64 image of one marker layer saying `name`.
fn marked_image<'a>(tags: &'a [&'a str], name: &str) -> Saved<'a> {
    Saved {
        tags,
        platform: "linux/amd64",
        layers: vec![marker_layer(name)],
    }
}

/// `oci-layers --tag TAG IMAGE | oci-merge`; what its marker file says.
fn merged_tag(s: &Scratch, image: &str, tag: &str) -> String {
    let out = sh(
        s.0.path(),
        &format!("oci-layers --tag '{tag}' {image} | oci-merge"),
    );
    assert!(
        out.status.success(),
        "{image} --tag {tag}: {}",
        stderr(&out)
    );
    let tree = tree(&out.stdout);
    let marker = marker(&tree);
    marker
        .strip_prefix("file \"")
        .and_then(|m| m.strip_suffix('"'))
        .unwrap_or(marker)
        .to_owned()
}

// ---------------------------------------------------------------------------
// 6. JSON.

fn json_output(image: &Path, flags: &[&str]) -> Value {
    let out = oci_layers(image, &[&["--json"], flags].concat());
    assert!(out.status.success(), "--json failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("--json prints valid JSON")
}

/// Checks the JSON layers against the config's diff_ids and the plain
/// lines: `path` names the file a line names, `offset` the start of its
/// byte range (null for a whole file), and with `size` and `digest` they
/// say all a line says.
fn check_json_layers(json: &Value, lines: &[String], diff_ids: &[String]) {
    let layers = json["layers"].as_array().expect("a layers array");
    assert_eq!(layers.len(), lines.len());
    for ((layer, line), diff_id) in layers.iter().zip(lines).zip(diff_ids) {
        assert!(
            layer.get("ref").is_none(),
            "a layer's location is `path`: {layer}"
        );
        let mut fields = line.split('\t');
        assert_eq!(layer["path"], json!(fields.next().unwrap()), "{line}");
        let field = |key: &str| fields.clone().find_map(|f| f.strip_prefix(key));
        let number =
            |key: &str| field(key).map_or(Value::Null, |n| json!(n.parse::<u64>().unwrap()));
        assert_eq!(layer["offset"], number("offset="), "{line}");
        if let Some(size) = field("size=") {
            assert_eq!(layer["size"], json!(size.parse::<u64>().unwrap()), "{line}");
        }
        if let Some(digest) = field("digest=") {
            assert_eq!(layer["digest"], json!(digest), "{line}");
        }
        assert_eq!(layer["diffId"], json!(diff_id));
        assert!(layer["mediaType"].is_string(), "{layer}");
        assert!(layer["size"].is_u64(), "{layer}");
        assert!(layer["digest"].is_string(), "{layer}");
    }
}

#[test]
fn json_describes_the_resolved_image() {
    let s = Scratch::new();
    let mut blobs = base_and_top();
    blobs.push(Blob::plain(&marker_layer("plain")));
    let (layout, written) = single_image(&s.path("img"), &blobs);
    let json = json_output(&layout.root, &[]);
    assert_eq!(json["manifest"], written.manifest["digest"]);
    assert_eq!(json["config"], json!(written.config));
    assert_eq!(json["platform"], json!("linux/amd64"));
    let lines = layer_lines(&layout.root, &[]);
    let config: Value =
        serde_json::from_slice(&fs::read(layout.blob_path(&written.config)).unwrap()).unwrap();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        diff_ids,
        blobs.iter().map(|b| b.diff_id.clone()).collect::<Vec<_>>()
    );
    check_json_layers(&json, &lines, &diff_ids);
    for ((layer, blob), digest) in json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&blobs)
        .zip(&written.layers)
    {
        assert_eq!(layer["digest"], json!(digest));
        assert_eq!(layer["mediaType"], json!(blob.media_type));
        assert_eq!(layer["size"], json!(blob.bytes.len()));
    }

    // The same image as an archive: refs are byte ranges.
    pack(&layout.root, &s.path("img.tar"));
    let json = json_output(&s.path("img.tar"), &[]);
    check_json_layers(&json, &layer_lines(&s.path("img.tar"), &[]), &diff_ids);
    assert_eq!(json["manifest"], written.manifest["digest"]);
}

#[test]
fn json_of_a_legacy_docker_save_has_no_manifest() {
    let s = Scratch::new();
    let saved = s.path("saved");
    let configs = legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer(), top_layer()],
        }],
    );
    let json = json_output(&saved, &[]);
    assert_eq!(json["manifest"], Value::Null);
    assert_eq!(
        json["config"],
        json!(format!("sha256:{}", configs[0].trim_end_matches(".json")))
    );
    assert_eq!(json["platform"], json!("linux/amd64"));
    let diff_ids = [
        digest_of(&base_layer().tar()),
        digest_of(&top_layer().tar()),
    ];
    check_json_layers(&json, &layer_lines(&saved, &[]), &diff_ids);
    for (layer, diff_id) in json["layers"].as_array().unwrap().iter().zip(&diff_ids) {
        assert_eq!(
            &layer["digest"], diff_id,
            "an uncompressed layer's digest is its diff_id"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. Archives and docker save.

#[test]
fn layout_archive_prints_verified_byte_ranges_and_merges_the_same() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("img"), &base_top_base());
    let archive = s.path("img.tar");
    pack(&layout.root, &archive);
    let lines = layer_lines(&archive, &[]);
    assert_eq!(check_ranges(&archive, &lines), written.layers);
    assert_eq!(merged(&s, "img.tar"), merged(&s, "img"));
    assert_eq!(merged(&s, "img.tar"), expected_repeated());
}

#[test]
fn legacy_docker_save_directory_and_archive_merge_like_the_layout() {
    let s = Scratch::new();
    single_image(&s.path("img"), &base_top_base());
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["repeat:latest"],
            platform: "linux/amd64",
            layers: vec![base_layer(), top_layer(), base_layer()],
        }],
    );
    // The repeated layer is Docker's relative symlink to the first copy:
    // the line names that copy, so oci-merge opens no link.
    let listed: Vec<String> = layer_lines(&saved, &[]);
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2], listed[0]);
    let layer_dirs: Vec<PathBuf> = fs::read_dir(&saved)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(
        layer_dirs
            .iter()
            .any(|d| fs::symlink_metadata(d.join("layer.tar"))
                .unwrap()
                .file_type()
                .is_symlink()),
        "the save holds a symlinked layer.tar"
    );
    let diff_ids = [
        digest_of(&base_layer().tar()),
        digest_of(&top_layer().tar()),
        digest_of(&base_layer().tar()),
    ];
    for (line, diff_id) in listed.iter().zip(&diff_ids) {
        assert!(
            line.ends_with(&format!("/layer.tar\tdigest={diff_id}")),
            "{line}"
        );
    }
    pack(&saved, &s.path("saved.tar"));
    pack_as(&saved, &s.path("hardlinked.tar"), Packing::HardLinks);
    for (archive, kind) in [
        ("saved.tar", EntryType::Symlink),
        ("hardlinked.tar", EntryType::Link),
    ] {
        let members = read_tar(&fs::read(s.path(archive)).unwrap());
        assert_eq!(
            members.iter().filter(|m| m.kind == kind).count(),
            1,
            "{archive} holds the repeated layer as a {kind:?} member"
        );
        let in_archive = layer_lines(&s.path(archive), &[]);
        assert_eq!(check_ranges(&s.path(archive), &in_archive), diff_ids);
        // The repeated layer is the first one's bytes, not a copy.
        assert_eq!(in_archive[0], in_archive[2], "{archive}");
        assert_eq!(merged(&s, archive), expected_repeated(), "{archive}");
    }
    assert_eq!(merged(&s, "saved"), expected_repeated());
    assert_eq!(merged(&s, "img"), expected_repeated());
}

#[test]
fn docker25_save_directory_and_archive_resolve() {
    let s = Scratch::new();
    let saved = s.path("saved");
    let (layout, written) = docker25_save(
        &saved,
        "alpine:latest",
        &[base_layer(), top_layer(), base_layer()],
    );
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    pack(&saved, &s.path("saved.tar"));
    for flags in [&[][..], &["--tag", "alpine"], &["--tag", "latest"]] {
        assert_eq!(layer_lines(&saved, flags), expected, "{flags:?}");
        let in_archive = layer_lines(&s.path("saved.tar"), flags);
        assert_eq!(
            check_ranges(&s.path("saved.tar"), &in_archive),
            written.layers
        );
    }
    assert_eq!(merged(&s, "saved"), expected_repeated());
    assert_eq!(merged(&s, "saved.tar"), expected_repeated());
}

/// A Docker 25+ save is an OCI layout and a docker save at once. A broken
/// image is an error whatever names it: `--tag` must not get around a
/// corrupt manifest by reading the image through manifest.json instead.
#[test]
fn a_corrupt_docker25_image_is_an_error_with_a_tag_too() {
    let s = Scratch::new();
    let (layout, written) = docker25_save(
        &s.path("saved"),
        "alpine:latest",
        &[base_layer(), top_layer()],
    );
    let manifest = written.manifest["digest"].as_str().unwrap();
    let text = fs::read_to_string(layout.blob_path(manifest)).unwrap();
    // Same size, still JSON; only the digest can tell.
    let tampered = text.replace("\"schemaVersion\":2", "\"schemaVersion\":3");
    assert_eq!(tampered.len(), text.len());
    layout.overwrite(manifest, tampered.as_bytes());
    for flags in [&["--tag", "alpine"][..], &["--tag", "latest"], &[]] {
        assert_fails(
            &format!("{flags:?}"),
            &oci_layers(&layout.root, flags),
            &[hex_of(manifest), "digest mismatch"],
        );
    }
}

/// manifest.json is read when index.json names no image the tag names (a
/// layout without name annotations, whose `RepoTags` do name it), or lists
/// no image at all (`docker save IMAGE-ID` writes no index.json entry).
#[test]
fn repo_tags_name_what_index_json_does_not() {
    let s = Scratch::new();
    let (layout, written) = docker25_save(
        &s.path("saved"),
        "alpine:latest",
        &[base_layer(), top_layer()],
    );
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    edit_index(&layout, |i| {
        i["manifests"][0]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    });
    assert_eq!(
        layer_lines(&layout.root, &["--tag", "alpine:latest"]),
        expected
    );
    assert_fails(
        "--tag busybox",
        &oci_layers(&layout.root, &["--tag", "busybox"]),
        &["busybox", "alpine:latest"],
    );
    edit_index(&layout, |i| i["manifests"] = json!([]));
    let manifest_json = layout.root.join("manifest.json");
    let mut doc: Value = serde_json::from_slice(&fs::read(&manifest_json).unwrap()).unwrap();
    doc[0]["RepoTags"] = Value::Null;
    fs::write(&manifest_json, doc.to_string()).unwrap();
    assert_eq!(layer_lines(&layout.root, &[]), expected);
}

#[test]
fn archive_members_named_with_a_dot_slash_prefix_are_found() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("img"), &base_and_top());
    let archive = s.path("dot.tar");
    pack_as(&layout.root, &archive, Packing::DotSlash);
    let names: Vec<String> = read_tar(&fs::read(&archive).unwrap())
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.iter().any(|n| n == "./index.json"), "{names:?}");
    let lines = layer_lines(&archive, &[]);
    assert_eq!(check_ranges(&archive, &lines), written.layers);
    assert_eq!(merged(&s, "dot.tar"), expected_stack());
}

#[test]
fn a_tampered_legacy_layer_fails_the_merge() {
    let s = Scratch::new();
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer(), top_layer()],
        }],
    );
    let lines = layer_lines(&saved, &[]);
    let top = lines[1].split('\t').next().unwrap().to_owned();
    fs::write(&top, Layer::new().file("evil", b"x").tar()).unwrap();
    // oci-layers does not read layers; oci-merge checks them against diff_ids.
    assert_eq!(layer_lines(&saved, &[]), lines);
    let out = sh(s.0.path(), "oci-layers saved | oci-merge > /dev/null");
    assert!(!out.status.success(), "a tampered layer merged");
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
}

/// `docker load` accepts a compressed legacy `<id>/layer.tar`, whose config
/// `diff_id` is the digest of the uncompressed tar. Nothing in the image
/// gives the digest of its stored bytes, so oci-layers checks the diff_id
/// itself, over the decompressed bytes, and hands oci-merge the digest of
/// the stored bytes it checked.
#[test]
fn a_compressed_legacy_layer_is_checked_against_its_diff_id() {
    let s = Scratch::new();
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer(), top_layer()],
        }],
    );
    let lines = layer_lines(&saved, &[]);
    let top = PathBuf::from(lines[1].split('\t').next().unwrap());
    let gzip = top_layer().gzip();
    fs::write(&top, &gzip).unwrap();
    pack(&saved, &s.path("saved.tar"));
    for image in ["saved", "saved.tar"] {
        assert_eq!(merged(&s, image), expected_stack(), "{image}");
        let json = json_output(&s.path(image), &[]);
        let layer = &json["layers"][1];
        assert_eq!(layer["digest"], json!(digest_of(&gzip)), "{image}");
        assert_eq!(layer["diffId"], json!(digest_of(&top_layer().tar())));
        assert_eq!(layer["mediaType"], json!(DOCKER_GZIP), "{image}");
        assert_eq!(layer["size"], json!(gzip.len()), "{image}");
    }
    // Other content, or a broken stream, under the same diff_id.
    let evil = Layer::new().file("evil", b"x").gzip();
    let truncated = gzip[..gzip.len() - 9].to_vec();
    for (what, bytes, needle) in [
        ("other content", evil, "diff_id mismatch"),
        ("truncated gzip", truncated, "gzip"),
    ] {
        fs::write(&top, &bytes).unwrap();
        pack(&saved, &s.path("broken.tar"));
        for image in ["saved", "broken.tar"] {
            assert_fails(
                &format!("{what} in {image}"),
                &oci_layers(&s.path(image), &[]),
                &[image, "layer.tar", needle],
            );
        }
    }
}

#[test]
fn a_compressed_archive_is_refused() {
    let s = Scratch::new();
    let (layout, _) = single_image(&s.path("img"), &base_and_top());
    pack(&layout.root, &s.path("img.tar"));
    let gz = s.path("img.tar.gz");
    fs::write(&gz, testkit::gzip(&fs::read(s.path("img.tar")).unwrap())).unwrap();
    assert_fails(
        "gzip archive",
        &oci_layers(&gz, &[]),
        &["img.tar.gz", "compressed"],
    );
}

// ---------------------------------------------------------------------------
// 8. Bad input.

/// A good single-image layout at `s/img` for a test to break.
fn breakable(s: &Scratch) -> (Layout, Written) {
    single_image(&s.path("img"), &base_and_top())
}

/// Rewrites `index.json` through `edit`.
fn edit_index(layout: &Layout, edit: impl FnOnce(&mut Value)) {
    let path = layout.root.join("index.json");
    let mut doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

/// Replaces the image's manifest by `edit`ed copy (stored under its new
/// digest) and points index.json at it; returns the new manifest digest.
fn edit_manifest(layout: &Layout, written: &Written, edit: impl FnOnce(&mut Value)) -> String {
    let old = written.manifest["digest"].as_str().unwrap();
    let mut doc: Value = serde_json::from_slice(&fs::read(layout.blob_path(old)).unwrap()).unwrap();
    edit(&mut doc);
    let descriptor = layout.json_blob(OCI_MANIFEST, &doc);
    layout.index_json(std::slice::from_ref(&descriptor));
    descriptor["digest"].as_str().unwrap().to_owned()
}

/// Replaces a JSON blob with other bytes under a new digest, re-pointing
/// the manifest's config at it; returns its digest.
fn replace_config(layout: &Layout, written: &Written, bytes: &[u8]) -> String {
    let config = layout.blob(OCI_CONFIG, bytes);
    edit_manifest(layout, written, |m| m["config"] = config.clone());
    config["digest"].as_str().unwrap().to_owned()
}

#[test]
fn not_an_image() {
    let s = Scratch::new();
    let empty = s.path("empty");
    fs::create_dir(&empty).unwrap();
    fs::write(empty.join("README"), "nothing here").unwrap();
    assert_fails(
        "empty directory",
        &oci_layers(&empty, &[]),
        &["empty", "not an image", "index.json", "manifest.json"],
    );
    assert_fails(
        "nonexistent path",
        &oci_layers(&s.path("absent"), &[]),
        &["absent"],
    );
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(s.path("noise.tar"), noise).unwrap();
    assert_fails(
        "random bytes",
        &oci_layers(&s.path("noise.tar"), &[]),
        &["noise.tar", "tar"],
    );
    fs::write(s.path("empty.tar"), b"").unwrap();
    assert_fails(
        "empty file",
        &oci_layers(&s.path("empty.tar"), &[]),
        &["empty.tar"],
    );
    // A tar of something else.
    fs::write(s.path("other.tar"), Layer::new().file("hello", b"hi").tar()).unwrap();
    assert_fails(
        "tar of something else",
        &oci_layers(&s.path("other.tar"), &[]),
        &["other.tar", "not an image"],
    );
}

#[test]
fn missing_oci_layout_marker() {
    let s = Scratch::new();
    let (layout, _) = breakable(&s);
    fs::remove_file(layout.root.join("oci-layout")).unwrap();
    assert_fails(
        "no oci-layout",
        &oci_layers(&layout.root, &[]),
        &["img", "oci-layout"],
    );
}

#[test]
fn malformed_json_is_named_by_file() {
    let garbage = b"{\"schemaVersion\": 2, \"manifests\": [";
    // index.json
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    fs::write(layout.root.join("index.json"), garbage).unwrap();
    assert_fails(
        "index.json",
        &oci_layers(&layout.root, &[]),
        &["index.json", "malformed JSON"],
    );
    // A manifest (stored under its digest, so only its JSON is wrong).
    layout.index_json(&[layout.blob(OCI_MANIFEST, garbage)]);
    assert_fails(
        "manifest",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&digest_of(garbage)), "malformed JSON"],
    );
    // A config.
    let config = replace_config(&layout, &written, b"{\"rootfs\": ");
    assert_fails(
        "config",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&config), "malformed JSON"],
    );
    // A docker-save manifest.json.
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer()],
        }],
    );
    fs::write(saved.join("manifest.json"), b"[{\"Config\": ").unwrap();
    assert_fails(
        "manifest.json",
        &oci_layers(&saved, &[]),
        &["manifest.json", "malformed JSON"],
    );
    // Well-formed JSON of the wrong shape.
    fs::write(saved.join("manifest.json"), br#"{"Config": "x.json"}"#).unwrap();
    assert_fails(
        "manifest.json not a list",
        &oci_layers(&saved, &[]),
        &["manifest.json"],
    );
}

#[test]
fn schema_version_1_is_refused() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    edit_index(&layout, |i| i["schemaVersion"] = json!(1));
    assert_fails(
        "index.json schemaVersion 1",
        &oci_layers(&layout.root, &[]),
        &["index.json", "schemaVersion 1"],
    );
    let digest = edit_manifest(&layout, &written, |m| m["schemaVersion"] = json!(1));
    assert_fails(
        "manifest schemaVersion 1",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&digest), "schemaVersion 1"],
    );
}

#[test]
fn missing_blobs() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    let manifest = written.manifest["digest"].as_str().unwrap();
    fs::rename(layout.blob_path(manifest), s.path("aside")).unwrap();
    assert_fails(
        "manifest blob",
        &oci_layers(&layout.root, &[]),
        &[hex_of(manifest), "missing"],
    );
    fs::rename(s.path("aside"), layout.blob_path(manifest)).unwrap();

    fs::remove_file(layout.blob_path(&written.config)).unwrap();
    assert_fails(
        "config blob",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&written.config), "missing"],
    );
}

#[test]
fn missing_layer_blobs_plain_and_foreign() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    fs::remove_file(layout.blob_path(&written.layers[1])).unwrap();
    let out = oci_layers(&layout.root, &[]);
    assert_fails(
        "plain layer",
        &out,
        &[hex_of(&written.layers[1]), "missing"],
    );
    assert!(!stderr(&out).contains("foreign"), "{}", stderr(&out));

    // A non-distributable base layer with urls, its blob never saved.
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let foreign = Blob::gzip(&marker_layer("windows base")).typed(FOREIGN_GZIP);
    let top = Blob::gzip(&top_layer());
    let written = layout.image(OCI_MANIFEST, None, &[foreign, top]);
    fs::remove_file(layout.blob_path(&written.layers[0])).unwrap();
    let url = "https://mcr.example.com/base.tar.gz";
    let digest = edit_manifest(&layout, &written, |m| {
        m["layers"][0]["urls"] = json!([url]);
    });
    assert_ne!(digest, written.manifest["digest"].as_str().unwrap());
    assert_fails(
        "foreign layer",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&written.layers[0]), "foreign", url],
    );
}

#[test]
fn content_that_does_not_match_its_digest() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    let manifest = written.manifest["digest"].as_str().unwrap();
    let path = layout.blob_path(manifest);
    let text = fs::read_to_string(&path).unwrap();
    // Same size, still JSON; only the digest can tell.
    let tampered = text.replace("\"schemaVersion\":2", "\"schemaVersion\":3");
    assert_ne!(tampered, text);
    assert_eq!(tampered.len(), text.len());
    layout.overwrite(manifest, tampered.as_bytes());
    assert_fails(
        "tampered manifest",
        &oci_layers(&layout.root, &[]),
        &[hex_of(manifest), "digest mismatch"],
    );
    // The same for a config.
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    let config = fs::read(layout.blob_path(&written.config)).unwrap();
    let mut tampered = config.clone();
    let at = tampered.iter().position(|&b| b == b'/').unwrap();
    tampered[at] = b'_';
    layout.overwrite(&written.config, &tampered);
    assert_fails(
        "tampered config",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&written.config), "digest mismatch"],
    );
}

#[test]
fn descriptor_sizes_are_checked() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    edit_index(&layout, |i| {
        let size = i["manifests"][0]["size"].as_u64().unwrap();
        i["manifests"][0]["size"] = json!(size + 1);
    });
    assert_fails(
        "manifest size",
        &oci_layers(&layout.root, &[]),
        &[
            hex_of(written.manifest["digest"].as_str().unwrap()),
            "size mismatch",
        ],
    );
    edit_manifest(&layout, &written, |m| {
        let size = m["layers"][0]["size"].as_u64().unwrap();
        m["layers"][0]["size"] = json!(size - 1);
    });
    assert_fails(
        "layer size",
        &oci_layers(&layout.root, &[]),
        &[hex_of(&written.layers[0]), "size mismatch"],
    );
}

#[test]
fn unsupported_digest_algorithms() {
    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    edit_index(&layout, |i| {
        i["manifests"][0]["digest"] = json!("md5:d41d8cd98f00b204e9800998ecf8427e");
    });
    assert_fails(
        "md5 manifest",
        &oci_layers(&layout.root, &[]),
        &["img", "md5", "unsupported"],
    );
    edit_manifest(&layout, &written, |m| {
        m["layers"][1]["digest"] = json!("md5:d41d8cd98f00b204e9800998ecf8427e");
    });
    assert_fails(
        "md5 layer",
        &oci_layers(&layout.root, &[]),
        &["img", "md5", "unsupported"],
    );
}

#[test]
fn non_filesystem_layers_and_configs_are_refused() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let in_toto = Blob {
        media_type: "application/vnd.in-toto+json".into(),
        bytes: br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec(),
        diff_id: digest_of(b"whatever"),
    };
    let written = layout.image(OCI_MANIFEST, None, &[Blob::gzip(&base_layer()), in_toto]);
    layout.index_json(std::slice::from_ref(&written.manifest));
    assert_fails(
        "in-toto layer",
        &oci_layers(&layout.root, &[]),
        &["application/vnd.in-toto+json", hex_of(&written.layers[1])],
    );

    let s = Scratch::new();
    let (layout, written) = breakable(&s);
    let helm = "application/vnd.cncf.helm.config.v1+json";
    let config = layout.json_blob(helm, &json!({"name": "chart", "version": "1.0.0"}));
    let digest = edit_manifest(&layout, &written, |m| m["config"] = config);
    assert_fails(
        "helm config",
        &oci_layers(&layout.root, &[]),
        &[helm, hex_of(&digest)],
    );
}

#[test]
fn docker_save_paths_never_leave_the_image() {
    let s = Scratch::new();
    // The image sits at s/a/b/saved; `../../etc/passwd` from there is
    // s/a/etc/passwd, a valid layer with the right diff_id, so reading it
    // would succeed.
    let saved = s.path("a/b/saved");
    let layer = base_layer();
    let configs = legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![layer.clone()],
        }],
    );
    fs::create_dir_all(s.path("a/etc")).unwrap();
    fs::write(s.path("a/etc/passwd"), layer.tar()).unwrap();
    let manifest_path = saved.join("manifest.json");
    let good = fs::read_to_string(&manifest_path).unwrap();
    let escapes = [
        ("Layers", "../../etc/passwd"),
        ("Layers", "/etc/passwd"),
        ("Config", "../../etc/passwd"),
    ];
    for (key, escape) in escapes {
        let mut doc: Value = serde_json::from_str(&good).unwrap();
        doc[0][key] = if key == "Layers" {
            json!([escape])
        } else {
            json!(escape)
        };
        if key == "Config" {
            // Make the outside file a valid config so only the path is wrong.
            fs::copy(saved.join(&configs[0]), s.path("a/etc/passwd")).unwrap();
        }
        fs::write(&manifest_path, doc.to_string()).unwrap();
        assert_fails(
            &format!("{key} {escape} (directory)"),
            &oci_layers(&saved, &[]),
            &[escape],
        );
        pack(&saved, &s.path("saved.tar"));
        assert_fails(
            &format!("{key} {escape} (archive)"),
            &oci_layers(&s.path("saved.tar"), &[]),
            &[escape],
        );
    }
}

/// An archive member that cannot be used (a symlink out of the archive)
/// is reported as such, not as missing, and nothing outside is read.
#[test]
fn archive_symlinks_never_leave_the_archive() {
    let s = Scratch::new();
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer()],
        }],
    );
    let lines = layer_lines(&saved, &[]);
    let layer = PathBuf::from(lines[0].split('\t').next().unwrap());
    fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", &layer).unwrap();
    pack(&saved, &s.path("saved.tar"));
    assert_fails(
        "symlink out of the archive",
        &oci_layers(&s.path("saved.tar"), &[]),
        &["saved.tar", "layer.tar", "outside"],
    );
}

/// How `link_out` replaces a file of an image by a symlink.
#[derive(Clone, Copy, Debug)]
enum LinkOut {
    /// The file, by a relative symlink out of the image to its moved copy.
    Relative,
    /// The file, by an absolute symlink to its moved copy.
    Absolute,
    /// Its directory, by a symlink to the moved directory.
    Directory,
}

/// Moves `file` (or its directory) of the image at `root` out to `outside`
/// and leaves a symlink in its place: the content is still valid, only the
/// link leaves the image.
fn link_out(root: &Path, file: &Path, outside: &Path, how: LinkOut) {
    let (from, to) = match how {
        LinkOut::Directory => (file.parent().unwrap(), outside.to_path_buf()),
        _ => (file, outside.join(file.file_name().unwrap())),
    };
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::rename(from, &to).unwrap();
    let target = match how {
        LinkOut::Absolute => to.clone(),
        _ => {
            let depth = from.strip_prefix(root).unwrap().components().count();
            let up = "../".repeat(depth);
            let rel = to.strip_prefix(root.parent().unwrap()).unwrap();
            PathBuf::from(format!("{up}{}", rel.display()))
        }
    };
    std::os::unix::fs::symlink(&target, from).unwrap();
    assert_eq!(
        fs::canonicalize(from).unwrap(),
        fs::canonicalize(&to).unwrap()
    );
}

/// An image directory's files never lead out of it through a symlink, as
/// an archive's members never do: a blob, the manifest, the config, a
/// legacy `layer.tar`, or a directory on the way, each linked to a valid
/// copy outside, is refused, where following the link would have worked.
#[test]
fn directory_symlinks_never_leave_the_image() {
    type Pick = fn(&Written) -> String;
    let blobs: [(&str, Pick); 3] = [
        ("manifest", |w| {
            w.manifest["digest"].as_str().unwrap().to_owned()
        }),
        ("config", |w| w.config.clone()),
        ("layer", |w| w.layers[1].clone()),
    ];
    for how in [LinkOut::Relative, LinkOut::Absolute, LinkOut::Directory] {
        for (what, pick) in blobs {
            // A linked blobs/sha256 fails at the first blob read.
            if matches!(how, LinkOut::Directory) && what != "manifest" {
                continue;
            }
            let s = Scratch::new();
            let (layout, written) = breakable(&s);
            let digest = pick(&written);
            link_out(
                &layout.root,
                &layout.blob_path(&digest),
                &s.path("elsewhere"),
                how,
            );
            assert_fails(
                &format!("{what} {how:?}"),
                &oci_layers(&layout.root, &[]),
                &[hex_of(&digest), "symlink"],
            );
        }
        let s = Scratch::new();
        let saved = s.path("saved");
        legacy_save(
            &saved,
            &[Saved {
                tags: &["x:1"],
                platform: "linux/amd64",
                layers: vec![base_layer()],
            }],
        );
        let line = layer_lines(&saved, &[]).remove(0);
        let layer = PathBuf::from(line.split('\t').next().unwrap());
        link_out(&saved, &layer, &s.path("elsewhere"), how);
        assert_fails(
            &format!("legacy layer.tar {how:?}"),
            &oci_layers(&saved, &[]),
            &["layer.tar", "symlink"],
        );
    }
}

/// A symlink to another file of the image is followed, as in an archive
/// (`docker save` links a repeated layer to its first copy), and the line
/// names the file it leads to, so that `oci-merge` opens no link.
#[test]
fn directory_symlinks_inside_the_image_are_resolved_in_the_layer_list() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("img"), &base_and_top());
    let blob = layout.blob_path(&written.layers[1]);
    fs::create_dir(layout.root.join("store")).unwrap();
    fs::rename(&blob, layout.root.join("store/top.tar.gz")).unwrap();
    std::os::unix::fs::symlink("../../store/top.tar.gz", &blob).unwrap();
    let lines = layer_lines(&layout.root, &[]);
    assert_eq!(
        lines,
        [
            layout.line(&written.layers[0]),
            format!(
                "{}\tdigest={}",
                layout.root.join("store/top.tar.gz").display(),
                written.layers[1]
            ),
        ]
    );
    assert_eq!(merged(&s, "img"), expected_stack());
}

/// A docker-save `Layers` path with a `..` component or an absolute path
/// is refused as a bad path, never read.
#[test]
fn escaping_layer_paths_are_reported_as_bad_paths() {
    let s = Scratch::new();
    let saved = s.path("saved");
    legacy_save(
        &saved,
        &[Saved {
            tags: &["x:1"],
            platform: "linux/amd64",
            layers: vec![base_layer()],
        }],
    );
    let manifest_path = saved.join("manifest.json");
    let mut doc: Value = serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    for escape in ["../../etc/passwd", "/etc/passwd"] {
        doc[0]["Layers"] = json!([escape]);
        fs::write(&manifest_path, doc.to_string()).unwrap();
        let out = oci_layers(&saved, &[]);
        assert_fails(escape, &out, &[escape, "path"]);
        assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));
    }
}

#[test]
fn image_paths_with_spaces_work_and_newlines_are_refused() {
    let s = Scratch::new();
    let (layout, written) = single_image(&s.path("my image"), &base_and_top());
    let expected: Vec<String> = written.layers.iter().map(|d| layout.line(d)).collect();
    assert_eq!(layer_lines(&layout.root, &[]), expected);
    assert_eq!(merged(&s, "my image"), expected_stack());
    pack(&layout.root, &s.path("my image.tar"));
    assert_eq!(merged(&s, "my image.tar"), expected_stack());
    // A layer list cannot carry these: nothing is printed.
    for name in ["new\nline", "tab\there"] {
        let (layout, _) = single_image(&s.path(name), &base_and_top());
        assert_fails(
            &format!("{name:?}"),
            &oci_layers(&layout.root, &[]),
            &["newline or tab"],
        );
    }
}

/// The "choose one with --tag" message names each tag once, even when
/// entries with the same tag are not adjacent.
#[test]
fn the_tag_list_names_each_tag_once() {
    let s = Scratch::new();
    let layout = Layout::new(&s.path("img"));
    let mut entries = Vec::new();
    for (tag, platform) in [
        ("1.0", "linux/arm64/v8"),
        ("2.0", "linux/amd64"),
        ("1.0", "linux/amd64"),
    ] {
        let written = layout.image(
            OCI_MANIFEST,
            None,
            &[Blob::gzip(&marker_layer(&format!("{tag} {platform}")))],
        );
        entries.push(annotated(REF_NAME, tag, on(platform, written.manifest)));
    }
    layout.index_json(&entries);
    let out = oci_layers(&layout.root, &[]);
    assert_fails("no --tag", &out, &["--tag", "1.0", "2.0"]);
    assert_eq!(stderr(&out).matches("1.0").count(), 1, "{}", stderr(&out));
    let out = oci_layers(&layout.root, &["--tag", "3.0"]);
    assert_fails("--tag 3.0", &out, &["3.0", "1.0", "2.0"]);
    assert_eq!(stderr(&out).matches("1.0").count(), 1, "{}", stderr(&out));
}
