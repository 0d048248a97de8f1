//! The names users type (`oci:`, `oci-archive:`, `docker-archive:`,
//! `docker://`), listing what a source holds (`--list`, `--list-tags`) and
//! the verified config (`--config`), end to end: images made by umoci and
//! skopeo, a real registry (Debian's `docker-registry`), and what skopeo
//! itself says about the same images as the reference.

mod support;

use serde_json::Value;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use support::fixtures::{
    docker_archive, multi_platform_layout, oci_archive, run as run_tool, sample_derived,
    sample_layout, skopeo_copy,
};
use support::registry::{Auth, Registry};
use support::{cmd, stderr, Scratch};

fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let mut command = cmd(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run")
}

/// stdout of a run that must succeed quietly.
fn ok(program: &str, args: &[&str]) -> Vec<u8> {
    ok_in(program, args, None)
}

fn ok_in(program: &str, args: &[&str], dir: Option<&Path>) -> Vec<u8> {
    let out = output(program, args, dir);
    assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
    assert!(
        out.stderr.is_empty(),
        "{program} {args:?}: {}",
        stderr(&out)
    );
    out.stdout
}

fn ok_json(program: &str, args: &[&str]) -> Value {
    serde_json::from_slice(&ok(program, args)).expect("JSON")
}

/// A run that must fail with exit 1, nothing on stdout, and one line on
/// stderr, `PROGRAM: error: ...`, holding each of `words`.
fn refused(program: &str, args: &[&str], words: &[&str]) -> String {
    let out = output(program, args, None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{program} {args:?}: {err}");
    // A layer list that failed ends in `#failed` (tests/newcomer.rs); a
    // listing prints nothing.
    let listing = args
        .iter()
        .any(|a| ["--list", "--list-tags", "--config", "--json"].contains(a));
    let expected: &[u8] = if listing {
        b""
    } else {
        b"#failed
"
    };
    assert_eq!(out.stdout, expected, "{program} {args:?} printed");
    assert_eq!(err.lines().count(), 1, "{program} {args:?}: {err}");
    assert!(
        err.starts_with(&format!("{program}: error: ")),
        "{program} {args:?}: {err}"
    );
    for word in words {
        assert!(
            err.contains(word),
            "{program} {args:?}: {word:?} not in {err}"
        );
    }
    err
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The sample image as a `docker save` archive under two tags
/// (`sample:v1`, `sample:v2`), written by skopeo.
fn two_tag_docker_archive() -> PathBuf {
    sample_derived("docker-two-tags.tar", |src, out| {
        skopeo_copy(
            &["--additional-tag", "sample:v2"],
            &format!("oci:{}:sample", src.display()),
            &format!("docker-archive:{}:sample:v1", out.display()),
        )
    })
}

/// skopeo's reading of an image: `skopeo inspect` JSON.
fn skopeo_inspect(name: &str) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A blob of an OCI layout, by digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs").join(digest.replacen(':', "/", 1))).unwrap()
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

fn index_entries(layout: &Path) -> Vec<Value> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

// ----------------------------------------------------------------------
// Transport names

/// Each name of an image gives the layer list and config the plain path
/// gives, byte for byte.
fn assert_same_as_plain(plain: &[&str], names: &[&[&str]]) {
    let list = ok("oci-layers", plain);
    let config = ok("oci-layers", &[&["--config"], plain].concat());
    assert!(!list.is_empty());
    for name in names {
        assert_eq!(ok("oci-layers", name), list, "{name:?}");
        let config_of = ok("oci-layers", &[&["--config"], *name].concat());
        assert_eq!(config_of, config, "{name:?}");
    }
}

#[test]
fn every_transport_name_reads_what_the_plain_path_reads() {
    let layout = text(&sample_layout());
    assert_same_as_plain(
        &[&layout],
        &[
            &[&format!("oci:{layout}")],
            &[&format!("oci:{layout}:")],
            &[&format!("oci:{layout}:sample")],
            &[&format!("oci:{layout}:@0")],
            &["--tag", "sample", &format!("oci:{layout}:sample")],
            &["--tag", "sample", &format!("oci:{layout}")],
        ],
    );
    let oci_tar = text(&oci_archive());
    assert_same_as_plain(
        &[&oci_tar],
        &[
            &[&format!("oci-archive:{oci_tar}")],
            &[&format!("oci-archive:{oci_tar}:sample")],
        ],
    );
    let docker_tar = text(&two_tag_docker_archive());
    assert_same_as_plain(
        &[&docker_tar],
        &[
            &[&format!("docker-archive:{docker_tar}")],
            &[&format!("docker-archive:{docker_tar}:sample:v1")],
            &[&format!(
                "docker-archive:{docker_tar}:docker.io/library/sample:v2"
            )],
            &[&format!("docker-archive:{docker_tar}:@0")],
        ],
    );
    let one_tag = text(&docker_archive());
    assert_same_as_plain(
        &[&one_tag],
        &[&[&format!("docker-archive:{one_tag}:sample")]],
    );
}

/// A multi-platform layout by name: the REF picks the index, --platform
/// the manifest, as --tag does.
#[test]
fn a_transport_reference_selects_like_tag() {
    let layout = text(&multi_platform_layout());
    for platform in ["linux/amd64", "linux/arm64"] {
        let by_tag = ok(
            "oci-layers",
            &["--platform", platform, "--tag", "multi", &layout],
        );
        let by_name = ok(
            "oci-layers",
            &["--platform", platform, &format!("oci:{layout}:multi")],
        );
        assert_eq!(by_name, by_tag, "{platform}");
    }
    let position = index_entries(Path::new(&layout))
        .iter()
        .position(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "arm")
        .unwrap();
    assert_eq!(
        ok("oci-layers", &[&format!("oci:{layout}:@{position}")]),
        ok("oci-layers", &["--tag", "arm", &layout]),
    );
}

/// A path holding a colon that exists on disk is that path, even when it
/// reads like a transport name.
#[test]
fn an_existing_path_wins_over_a_transport() {
    let scratch = Scratch::new();
    let copy = scratch.path("oci:sample");
    run_tool(Command::new("cp").arg("-a").arg(sample_layout()).arg(&copy));
    let plain = String::from_utf8(ok("oci-layers", &[&text(&copy)])).unwrap();
    let listed = ok_in("oci-layers", &["oci:sample"], Some(scratch.0.path()));
    assert_eq!(String::from_utf8(listed).unwrap(), plain);
    assert!(plain.contains("/oci:sample/blobs/"), "{plain}");
    let out = output("oci-layers", &["oci:missing"], Some(scratch.0.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing: cannot open"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mismatched_transports_and_conflicting_tags_are_refused_with_one_line() {
    let layout = text(&sample_layout());
    let oci_tar = text(&oci_archive());
    let docker_tar = text(&docker_archive());
    for (name, words) in [
        (
            format!("oci-archive:{layout}"),
            vec!["an OCI layout directory, not an archive", "name it oci:"],
        ),
        (
            format!("docker-archive:{layout}"),
            vec!["an OCI layout directory, not an archive"],
        ),
        (
            format!("oci:{oci_tar}"),
            vec!["an OCI archive, not a directory", "name it oci-archive:"],
        ),
        (
            format!("docker-archive:{oci_tar}"),
            vec![
                "an OCI archive, with no manifest.json",
                "name it oci-archive:",
            ],
        ),
        (
            format!("oci-archive:{docker_tar}"),
            vec![
                "a docker save archive, with no index.json",
                "name it docker-archive:",
            ],
        ),
        (
            format!("oci:{layout}:nope"),
            vec!["no image tagged \"nope\"", "sample"],
        ),
        (
            format!("docker-archive:{docker_tar}:other"),
            vec!["no image tagged \"other\""],
        ),
        (
            format!("oci:{layout}:@3"),
            vec!["no @3", "index.json has 1 entry"],
        ),
        (format!("oci:{layout}:@x"), vec!["invalid source index @x"]),
        (format!("oci-archive:{oci_tar}:@0"), vec!["not an @index"]),
        (
            "docker://127.0.0.1:1/a/b:1".to_owned(),
            vec![
                "a registry reference",
                "use `oci-fetch docker://127.0.0.1:1/a/b:1`",
            ],
        ),
        (
            "dir:/tmp".to_owned(),
            vec!["the dir: transport is not supported"],
        ),
    ] {
        refused("oci-layers", &[&name], &words);
        if !name.starts_with("docker://") {
            refused("oci-layers", &["--list", &name], &words);
        }
    }
    refused(
        "oci-layers",
        &["--tag", "other", &format!("oci:{layout}:sample")],
        &["the name says \"sample\" and --tag says \"other\"; give only one"],
    );
    for name in [
        format!("oci:{layout}"),
        format!("oci-archive:{oci_tar}:sample"),
        format!("docker-archive:{docker_tar}:sample"),
    ] {
        let words = ["an image on disk", &format!("use `oci-layers {name}`")];
        refused("oci-fetch", &[&name], &words);
        refused("oci-fetch", &["--list", &name], &words);
    }
}

// ----------------------------------------------------------------------
// Listing what a source holds

/// The table's rows, split into columns (a NAME cell left empty under
/// an index is kept as ""; a line holding only a further name is that).
fn table_rows(table: &[u8]) -> Vec<Vec<String>> {
    let table = String::from_utf8(table.to_vec()).unwrap();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("NAME "), "{table}");
    for line in table.lines() {
        assert!(line.len() <= 80, "over 80 columns: {line:?}");
    }
    let digest_at = header.find("DIGEST").unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let name = line.get(..digest_at).unwrap_or(line).trim().to_owned();
            let mut cells = vec![name];
            let rest = line.get(digest_at..).unwrap_or_default();
            cells.extend(rest.split_whitespace().map(str::to_owned));
            // A size is a number and a unit.
            if cells.len() == 6 {
                let unit = cells.pop().unwrap();
                let number = cells.pop().unwrap();
                cells.push(format!("{number} {unit}"));
            }
            cells
        })
        .collect()
}

/// `3.7 MiB` is about `bytes`.
fn assert_size(cell: &str, bytes: u64) {
    let (number, unit) = cell.split_once(' ').unwrap();
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other}"),
    };
    let shown = number.parse::<f64>().unwrap() * scale;
    assert!(
        (shown - bytes as f64).abs() <= 0.05 * scale.max(1.0) + 0.001 * bytes as f64,
        "{cell} for {bytes} bytes"
    );
}

/// A manifest's layer count and total size, from its own JSON.
fn layers_of(manifest: &Value) -> (u64, u64) {
    let layers = manifest["layers"].as_array().unwrap();
    let size = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    (layers.len() as u64, size)
}

/// One listed manifest against the layout's blob of that digest.
fn check_listed_manifest(layout: &Path, listed: &Value, platform: &str) {
    let digest = listed["digest"].as_str().unwrap();
    let manifest = blob_json(layout, digest);
    let (count, size) = layers_of(&manifest);
    assert_eq!(listed["platform"], platform, "{listed}");
    assert_eq!(listed["layerCount"], count, "{listed}");
    assert_eq!(listed["size"], size, "{listed}");
    assert_eq!(listed["config"], manifest["config"]["digest"], "{listed}");
}

/// A layout with two tagged images and an index of both (tag `multi`):
/// every entry listed with its digest, each platform of the index with
/// its manifest's, as index.json and the blobs say, and as skopeo reads
/// the tagged images.
#[test]
fn listing_a_layout_shows_every_image_and_every_platform_of_an_index() {
    let layout = multi_platform_layout();
    let name = text(&layout);
    let listed = ok_json("oci-layers", &["--list", "--json", &name]);
    let listed = listed.as_array().unwrap();
    let entries = index_entries(&layout);
    assert_eq!(listed.len(), entries.len());
    for (image, entry) in listed.iter().zip(&entries) {
        let tag = entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        assert_eq!(image["names"], serde_json::json!([tag]));
        assert_eq!(image["digest"], entry["digest"]);
        assert_eq!(image["mediaType"], entry["mediaType"]);
        let manifests = image["manifests"].as_array().unwrap();
        if tag == "multi" {
            let nested = blob_json(&layout, entry["digest"].as_str().unwrap());
            let children = nested["manifests"].as_array().unwrap();
            assert_eq!(manifests.len(), 2);
            for (listed, child) in manifests.iter().zip(children) {
                assert_eq!(listed["digest"], child["digest"]);
                // Listed as --platform reads it: arm64 is arm64/v8.
                let platform = match child["platform"]["architecture"].as_str().unwrap() {
                    "arm64" => "linux/arm64/v8".to_owned(),
                    other => format!("linux/{other}"),
                };
                check_listed_manifest(&layout, listed, &platform);
            }
        } else {
            let inspect = skopeo_inspect(&format!("oci:{name}:{tag}"));
            assert_eq!(manifests.len(), 1);
            assert_eq!(manifests[0]["digest"], inspect["Digest"]);
            assert_eq!(
                manifests[0]["layerCount"],
                inspect["Layers"].as_array().unwrap().len()
            );
            let platform = format!(
                "{}/{}",
                inspect["Os"].as_str().unwrap(),
                inspect["Architecture"].as_str().unwrap()
            );
            let platform = platform.replace("arm64", "arm64/v8");
            check_listed_manifest(&layout, &manifests[0], &platform);
        }
    }

    let rows = table_rows(&ok("oci-layers", &["--list", &name]));
    let mut expected = Vec::new();
    for image in listed {
        let short = |v: &Value| v.as_str().unwrap()[7..19].to_owned();
        let names = image["names"][0].as_str().unwrap().to_owned();
        let manifests = image["manifests"].as_array().unwrap();
        if image["mediaType"] == "application/vnd.oci.image.index.v1+json" {
            expected.push(vec![names, short(&image["digest"]), "index".to_owned()]);
            for m in manifests {
                expected.push(vec![
                    String::new(),
                    short(&m["digest"]),
                    m["platform"].as_str().unwrap().to_owned(),
                ]);
            }
        } else {
            let m = &manifests[0];
            expected.push(vec![
                names,
                short(&m["digest"]),
                m["platform"].as_str().unwrap().to_owned(),
            ]);
        }
    }
    let manifests: Vec<&Value> = listed
        .iter()
        .flat_map(|i| i["manifests"].as_array().unwrap())
        .collect();
    let mut next_manifest = manifests.iter();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, want) in rows.iter().zip(&expected) {
        assert_eq!(&row[..3], &want[..], "{rows:?}");
        if want[2] == "index" {
            assert_eq!(row.len(), 3, "{row:?}");
        } else {
            let m = next_manifest.next().unwrap();
            assert_eq!(row[3], m["layerCount"].to_string());
            assert_size(&row[4], m["size"].as_u64().unwrap());
        }
    }

    // A name selects: only the images it names are listed.
    let multi = ok_json(
        "oci-layers",
        &["--list", "--json", &format!("oci:{name}:multi")],
    );
    assert_eq!(multi.as_array().unwrap().len(), 1);
    assert_eq!(multi[0]["names"], serde_json::json!(["multi"]));
}

#[test]
fn listing_an_oci_archive_agrees_with_skopeo() {
    let archive = text(&oci_archive());
    let inspect = skopeo_inspect(&format!("oci-archive:{archive}:sample"));
    for name in [archive.clone(), format!("oci-archive:{archive}")] {
        let listed = ok_json("oci-layers", &["--list", "--json", &name]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        let image = &listed[0];
        assert_eq!(image["names"], serde_json::json!(["sample"]));
        assert_eq!(image["digest"], inspect["Digest"]);
        let manifest = &image["manifests"][0];
        assert_eq!(manifest["digest"], inspect["Digest"]);
        assert_eq!(
            manifest["layerCount"],
            inspect["Layers"].as_array().unwrap().len()
        );
        assert_eq!(manifest["platform"], "linux/amd64");
        // The digest and sizes of the layout skopeo copied it from.
        check_listed_manifest(&sample_layout(), manifest, "linux/amd64");
    }
}

/// A docker save of one image under two tags: one image, both names,
/// no manifest digest (a docker save has none), the config and layers
/// skopeo reads.
#[test]
fn listing_a_docker_archive_with_two_tags_agrees_with_skopeo() {
    let archive = text(&two_tag_docker_archive());
    let tags = Command::new("skopeo")
        .args(["list-tags", &format!("docker-archive:{archive}")])
        .output()
        .unwrap();
    assert!(tags.status.success(), "{}", stderr(&tags));
    let tags: Value = serde_json::from_slice(&tags.stdout).unwrap();
    let inspect = skopeo_inspect(&format!("docker-archive:{archive}:sample:v1"));
    let config = Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            "--raw",
            &format!("docker-archive:{archive}:sample:v1"),
        ])
        .output()
        .unwrap();
    assert!(config.status.success(), "{}", stderr(&config));
    for name in [archive.clone(), format!("docker-archive:{archive}")] {
        let listed = ok_json("oci-layers", &["--list", "--json", &name]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        let image = &listed[0];
        let mut names: Vec<String> = serde_json::from_value(image["names"].clone()).unwrap();
        let mut theirs: Vec<String> = serde_json::from_value(tags["Tags"].clone()).unwrap();
        names.sort();
        theirs.sort();
        assert_eq!(names.len(), 2);
        assert_eq!(names, theirs);
        assert_eq!(image["digest"], Value::Null);
        let manifest = &image["manifests"][0];
        assert_eq!(manifest["digest"], Value::Null);
        assert_eq!(manifest["config"], sha256(&config.stdout));
        assert_eq!(
            manifest["layerCount"],
            inspect["Layers"].as_array().unwrap().len()
        );
        assert_eq!(manifest["platform"], "linux/amd64");

        // One name a line, as docker shows them.
        let rows = table_rows(&ok("oci-layers", &["--list", &name]));
        assert_eq!(rows.len(), 2, "{rows:?}");
        let familiar: Vec<String> = image["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n.as_str()
                    .unwrap()
                    .trim_start_matches("docker.io/library/")
                    .to_owned()
            })
            .collect();
        assert_eq!(familiar, ["sample:v1", "sample:v2"]);
        assert_eq!(rows[0][0], familiar[0]);
        assert_eq!(rows[1], [familiar[1].clone()]);
        assert_eq!(rows[0][1], "-");
        assert_eq!(rows[0][2], "linux/amd64");
        assert_eq!(rows[0][3], manifest["layerCount"].to_string());
        assert_size(&rows[0][4], manifest["size"].as_u64().unwrap());
    }
}

/// A registry reference: the platforms of its index, each manifest read,
/// as the layout it was pushed from (digests preserved) lists them; a
/// tag naming one manifest: that manifest.
#[test]
fn listing_a_registry_reference_shows_its_platforms() {
    let layout = multi_platform_layout();
    let registry = Registry::start(Auth::None);
    registry.push(&format!("oci:{}:multi", layout.display()), "multi:1");
    registry.push(&format!("oci:{}:sample", layout.display()), "sample:1");
    let local = ok_json(
        "oci-layers",
        &["--list", "--json", "--tag", "multi", &text(&layout)],
    );
    for name in [
        format!("{}/multi:1", registry.host()),
        format!("docker://{}/multi:1", registry.host()),
    ] {
        let listed = ok_json("oci-fetch", &["--list", "--json", &name]);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["digest"], local[0]["digest"]);
        assert_eq!(listed[0]["manifests"], local[0]["manifests"]);
        assert_eq!(
            listed[0]["names"],
            serde_json::json!([format!("{}/multi:1", registry.host())])
        );
    }
    let rows = table_rows(&ok(
        "oci-fetch",
        &["--list", &format!("{}/multi:1", registry.host())],
    ));
    let platforms: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(platforms, ["index", "linux/amd64", "linux/arm64/v8"]);

    let single = ok_json(
        "oci-fetch",
        &["--list", "--json", &format!("{}/sample:1", registry.host())],
    );
    let inspect = skopeo_inspect(&format!("docker://{}/sample:1", registry.host()));
    assert_eq!(single[0]["digest"], inspect["Digest"]);
    assert_eq!(single[0]["manifests"][0]["digest"], inspect["Digest"]);
    assert_eq!(
        single[0]["manifests"][0]["layerCount"],
        inspect["Layers"].as_array().unwrap().len()
    );
}

// ----------------------------------------------------------------------
// Tags of a repository

/// Gives `name` (pushed as `:first`) `count - 1` more tags through the
/// distribution API: the same manifest put under each.
fn add_tags(registry: &Registry, name: &str, first: &str, tags: &[String]) {
    let base = format!("http://{}/v2/{name}/manifests", registry.host());
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let response = ureq::get(&format!("{base}/{first}"))
        .set("Accept", accept)
        .call()
        .unwrap();
    let media_type = response.header("content-type").unwrap().to_owned();
    let mut manifest = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut manifest).unwrap();
    for tag in tags {
        ureq::put(&format!("{base}/{tag}"))
            .set("Content-Type", &media_type)
            .send_bytes(&manifest)
            .unwrap_or_else(|e| registry.fail(&format!("tagging {tag}: {e}")));
    }
}

/// In front of a registry, answers `GET /v2/<name>/tags/list` in pages of
/// at most `page` tags with a `Link` to the next, as distribution 3 and
/// Docker Hub do: distribution 2.8 (`docker-registry`) ignores `n` and
/// sends every tag at once. The tags are the registry's, read from it for
/// every page, in its order.
struct TagPager {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl TagPager {
    fn start(upstream: String, page: usize) -> TagPager {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let url = request.url().to_owned();
                log.lock().unwrap().push(url.clone());
                let _ = request.respond(Self::answer(&upstream, &url, page));
            }
        });
        TagPager { port, asked }
    }

    fn answer(
        upstream: &str,
        url: &str,
        page: usize,
    ) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let all = ureq::get(&format!("http://{upstream}{path}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let all: Value = serde_json::from_str(&all).unwrap();
        let tags: Vec<String> = serde_json::from_value(all["tags"].clone()).unwrap();
        let mut n = page;
        let mut start = 0;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "n" => n = n.min(value.parse().unwrap()),
                "last" => start = tags.iter().position(|t| *t == value).unwrap() + 1,
                _ => {}
            }
        }
        let end = (start + n).min(tags.len());
        let body = serde_json::json!({"name": all["name"], "tags": &tags[start..end]});
        let mut response = tiny_http::Response::from_string(body.to_string());
        if end < tags.len() {
            let link = format!("<{path}?n={n}&last={}>; rel=\"next\"", tags[end - 1]);
            response = response.with_header(tiny_http::Header::from_bytes("Link", link).unwrap());
        }
        response
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// 120 tags: read in one answer from the registry itself (which pages
/// nothing), and in pages of 50 behind a paging front (Link followed,
/// three pages); the same tags in the registry's order either way, and
/// the JSON byte for byte what `skopeo list-tags` prints.
#[test]
fn tags_of_a_repository_are_listed_across_pages() {
    let registry = Registry::start(Auth::None);
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "names:t000",
    );
    let more: Vec<String> = (1..120).map(|i| format!("t{i:03}")).collect();
    add_tags(&registry, "names", "t000", &more);
    let repository = format!("{}/names", registry.host());

    let skopeo = Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repository}"),
        ])
        .output()
        .unwrap();
    assert!(skopeo.status.success(), "{}", stderr(&skopeo));
    let ours = ok("oci-fetch", &["--list-tags", "--json", &repository]);
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&skopeo.stdout)
    );
    let theirs: Value = serde_json::from_slice(&skopeo.stdout).unwrap();
    let order: Vec<String> = serde_json::from_value(theirs["Tags"].clone()).unwrap();
    let mut sorted = order.clone();
    sorted.sort();
    let mut expected: Vec<String> = more.clone();
    expected.insert(0, "t000".to_owned());
    assert_eq!(sorted, expected);

    let lines = ok(
        "oci-fetch",
        &["--list-tags", &format!("docker://{repository}")],
    );
    let lines: Vec<String> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines, order);

    let pager = TagPager::start(registry.host(), 50);
    let paged = ok_json(
        "oci-fetch",
        &[
            "--plain-http",
            "--list-tags",
            "--json",
            &format!("{}/names", pager.host()),
        ],
    );
    assert_eq!(paged["Repository"], format!("{}/names", pager.host()));
    assert_eq!(paged["Tags"], theirs["Tags"]);
    let asked = pager.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            "/v2/names/tags/list?n=1000".to_owned(),
            format!("/v2/names/tags/list?n=50&last={}", order[49]),
            format!("/v2/names/tags/list?n=50&last={}", order[99]),
        ]
    );

    refused(
        "oci-fetch",
        &["--list-tags", &format!("{repository}:t000")],
        &["--list-tags takes a repository, without a tag or digest"],
    );
    refused(
        "oci-fetch",
        &["--list-tags", &format!("{}/absent", registry.host())],
        &["absent: tag list: not found"],
    );
}

// ----------------------------------------------------------------------
// The config, verified

/// `--config` prints the config blob the manifest names, byte for byte,
/// whose sha256 is the manifest's config digest: from a layout, each
/// archive and a registry (with docker:// too).
#[test]
fn config_is_the_blob_the_manifest_names() {
    let layout = sample_layout();
    let manifest_digest = index_entries(&layout)[0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifest = blob_json(&layout, &manifest_digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = blob(&layout, config_digest);
    assert_eq!(sha256(&config), config_digest);

    let registry = Registry::start(Auth::None);
    registry.push(&format!("oci:{}:sample", layout.display()), "sample:1");
    let reference = format!("{}/sample:1", registry.host());
    for (program, name) in [
        ("oci-layers", text(&layout)),
        ("oci-layers", format!("oci:{}:sample", layout.display())),
        (
            "oci-layers",
            format!("oci-archive:{}", oci_archive().display()),
        ),
        (
            "oci-layers",
            format!("docker-archive:{}", docker_archive().display()),
        ),
        ("oci-fetch", reference.clone()),
        ("oci-fetch", format!("docker://{reference}")),
    ] {
        let printed = ok(program, &["--config", &name]);
        assert!(printed == config, "{program} {name}: not the config blob");
    }
    // docker:// in oci-fetch is the plain reference.
    assert_eq!(
        ok("oci-fetch", &["--json", &format!("docker://{reference}")]),
        ok("oci-fetch", &["--json", &reference])
    );
}

/// A config blob that is not what the manifest's digest says: an error
/// naming it, and nothing printed.
#[test]
fn a_config_that_fails_its_digest_is_not_printed() {
    let scratch = Scratch::new();
    let copy = scratch.path("layout");
    run_tool(Command::new("cp").arg("-a").arg(sample_layout()).arg(&copy));
    let entry = &index_entries(&copy)[0];
    let manifest = blob_json(&copy, entry["digest"].as_str().unwrap());
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let path = copy.join("blobs").join(config_digest.replacen(':', "/", 1));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    refused(
        "oci-layers",
        &["--config", &text(&copy)],
        &[&config_digest[7..], "digest mismatch"],
    );
    refused(
        "oci-layers",
        &["--list", &text(&copy)],
        &["digest mismatch"],
    );
}
