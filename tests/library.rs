//! The library as an embedder uses it: its examples run end to end on a
//! real image and give what the binaries give, and its errors can be
//! matched on by kind.

mod support;

use ocirender::image::{self, Selection};
use ocirender::layer::LayerRef;
use ocirender::merge::{layer_feed, Merge};
use ocirender::ErrorKind;
use std::process::Command;
use support::fixtures::{multi_platform_layout, sample_layout};
use support::snapshot::{assert_same_tree, snapshot, Compare};
use support::{bin, sh, Scratch};

/// The tar `oci-layers IMAGE | oci-merge` writes.
fn pipeline_tar(image: &std::path::Path) -> Vec<u8> {
    let out = sh(
        image.parent().unwrap(),
        &format!("oci-layers '{}' | oci-merge", image.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the library's example `name` with `args`, which must succeed.
fn example(name: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(bin(&format!("examples/{name}")))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_flatten_example_writes_the_tar_the_pipeline_writes() {
    let layout = sample_layout();
    let out = example("flatten", &[layout.as_os_str()]);
    assert!(out.stdout == pipeline_tar(&layout), "the tars differ");
}

#[test]
fn the_unpack_example_builds_the_tree_tar2dir_builds() {
    let layout = sample_layout();
    let scratch = Scratch::new();
    let from_example = scratch.0.path().join("example");
    example("unpack", &[layout.as_os_str(), from_example.as_os_str()]);
    let out = sh(
        scratch.0.path(),
        &format!(
            "oci-layers '{}' | oci-merge | tar2dir pipeline",
            layout.display()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(
        &snapshot(&from_example, Compare::EXACT),
        &snapshot(&scratch.0.path().join("pipeline"), Compare::EXACT),
        "unpack example against tar2dir",
    );
}

/// Layers fed as they "arrive", top first and from another thread, merge
/// to the same bytes as layers that were all there.
#[test]
fn a_merge_fed_layers_as_they_arrive_writes_the_same_tar() {
    let layout = sample_layout();
    let image = image::open(layout.to_str().unwrap(), &Selection::default()).unwrap();
    let layers = image.layer_refs();
    assert!(layers.len() > 1, "the sample has several layers");
    let (feed, arrivals) = layer_feed(layers.len());
    let count = layers.len();
    let downloads = std::thread::spawn(move || {
        for index in (0..count).rev() {
            std::thread::sleep(std::time::Duration::from_millis(30));
            feed.arrived(index).unwrap();
        }
    });
    let (tar, stats) = Merge::new(&layers)
        .arriving(arrivals)
        .write_to(Vec::new())
        .unwrap();
    downloads.join().unwrap();
    assert_eq!(stats.layers, count);
    assert!(tar == pipeline_tar(&layout), "the tars differ");
}

#[test]
fn a_layer_that_never_arrives_fails_the_merge_with_its_reason() {
    let layout = sample_layout();
    let image = image::open(layout.to_str().unwrap(), &Selection::default()).unwrap();
    let layers = image.layer_refs();
    let (feed, arrivals) = layer_feed(layers.len());
    let lost = layers.len() - 2;
    for index in (0..layers.len()).filter(|&i| i != lost) {
        feed.arrived(index).unwrap();
    }
    feed.failed(lost, "HTTP 503 from the registry").unwrap();
    drop(feed);
    let err = Merge::new(&layers)
        .arriving(arrivals)
        .write_to(Vec::new())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("layer {}/{}", lost + 1, layers.len())),
        "{message}"
    );
    assert!(
        message.contains("never arrived: HTTP 503 from the registry"),
        "{message}"
    );
}

#[test]
fn errors_are_matched_by_kind() {
    let scratch = Scratch::new();
    let err = image::open(scratch.0.path().to_str().unwrap(), &Selection::default()).unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::NotAnImage {
            path: scratch.0.path().to_owned()
        },
        "{err}"
    );

    let layout = multi_platform_layout();
    let s390 = Selection::default()
        .for_platform("linux/s390x")
        .unwrap()
        .tagged("multi");
    let err = image::open(layout.to_str().unwrap(), &s390).unwrap_err();
    match err.kind() {
        ErrorKind::NoSuchPlatform {
            requested,
            available,
        } => {
            assert_eq!(requested, "linux/s390x");
            assert!(
                available.iter().any(|p| p == "linux/amd64"),
                "{available:?}"
            );
        }
        other => panic!("{other:?}: {err}"),
    }
}

#[test]
fn a_layer_with_other_bytes_is_a_digest_mismatch_naming_it() {
    let layout = sample_layout();
    let image = image::open(layout.to_str().unwrap(), &Selection::default()).unwrap();
    let scratch = Scratch::new();
    let mut layers = image.layer_refs();
    // The base layer's place holds another layer: a whole, readable tar,
    // but not the bytes its digest names.
    let copy = scratch.0.path().join("layer");
    std::fs::copy(&layers[1].path, &copy).unwrap();
    let expected = layers[0]
        .digest
        .clone()
        .expect("a layout names its layers by digest");
    layers[0] = LayerRef {
        path: copy.clone(),
        ..layers[0].clone()
    };
    let err = Merge::new(&layers).write_to(Vec::new()).unwrap_err();
    match err.kind() {
        ErrorKind::DigestMismatch {
            blob,
            expected: said,
            actual,
        } => {
            assert_eq!(said, &expected);
            assert_eq!(Some(actual), layers[1].digest.as_ref());
            assert!(blob.contains("layer"), "{blob}");
        }
        other => panic!("{other:?}: {err:#}"),
    }
    let position = err.layer().expect("the error names its layer");
    assert_eq!((position.index, position.layers), (0, layers.len()));
}

#[test]
fn a_malformed_layer_error_has_its_layer_and_offset() {
    let scratch = Scratch::new();
    let layer = scratch.0.path().join("layer.tar");
    let mut tar = vec![0u8; 512];
    tar[..5].copy_from_slice(b"hello");
    tar[100..107].copy_from_slice(b"garbage"); // no valid mode field or checksum
    tar.extend_from_slice(&[0; 1024]);
    std::fs::write(&layer, &tar).unwrap();
    let err = Merge::new(&[LayerRef::file(&layer)])
        .write_to(Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Invalid, "{err:#}");
    let position = err.layer().expect("the error names its layer");
    assert_eq!(
        (position.index, position.layers, position.offset),
        (0, 1, Some(0))
    );
}

#[test]
fn corrupt_compressed_data_is_invalid_input_in_its_layer() {
    let layout = sample_layout();
    let image = image::open(layout.to_str().unwrap(), &Selection::default()).unwrap();
    let scratch = Scratch::new();
    let copy = scratch.0.path().join("layer");
    let mut bytes = std::fs::read(&image.layer_refs()[0].path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the gzip trailer's size: caught by gzip before the digest
    std::fs::write(&copy, bytes).unwrap();
    let err = Merge::new(&[LayerRef::file(&copy)])
        .write_to(Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Invalid, "{err:#}");
    assert!(
        err.to_string().contains("corrupt or truncated gzip data"),
        "{err}"
    );
    assert_eq!(err.layer().map(|p| p.index), Some(0));
}
