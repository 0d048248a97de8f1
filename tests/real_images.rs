//! The pipeline on images made by real tools: a three-layer image built
//! with umoci, converted by skopeo into every form `oci-layers` reads.
//! Each form must merge to the same root filesystem as `umoci raw unpack`
//! of the original, whether the merged tar is unpacked by GNU tar, by
//! `tar2dir`, or built into a squashfs image by `tar2sqfs` and unpacked by
//! `unsquashfs`: paths, types, contents, owners, modes, times, xattrs (file
//! capabilities included), hard-link groups and device numbers.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use support::fixtures::{
    docker_archive, extracted, oci_archive, sample_layout, sample_reference_rootfs,
    uncompressed_layout, zstd_layout,
};
use support::snapshot::{assert_same_tree, snapshot, Compare};
use support::{sh, stderr};

/// How the merged stream becomes a directory `rootfs`.
const GNU_TAR: &str =
    "(mkdir rootfs && tar -C rootfs --numeric-owner --xattrs --xattrs-include='*' -xpf -)";
const TAR2DIR: &str = "tar2dir rootfs";
/// unsquashfs, as root, restores owners, xattrs and device nodes.
const TAR2SQFS: &str =
    "tar2sqfs rootfs.sqfs && unsquashfs -quiet -no-progress -d rootfs rootfs.sqfs >/dev/null";

/// Runs `oci-layers IMAGE | oci-merge | <consumer>` and describes the
/// `rootfs` directory it leaves. Our own tools must stay silent.
fn merged_with(image: &Path, consumer: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("oci-layers '{}' | oci-merge | {consumer}", image.display());
    let out = sh(dir.path(), &script);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "`{script}` failed or complained: {}",
        stderr(&out)
    );
    snapshot(&dir.path().join("rootfs"), Compare::ALL)
}

/// `tar -t` of the merged stream: every path exactly once.
fn listed(image: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = sh(
        dir.path(),
        &format!("oci-layers '{}' | oci-merge | tar -t", image.display()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    let count = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), count, "a path was written twice");
    paths
}

fn check_form(name: &str, image: &Path) {
    let expected = snapshot(&sample_reference_rootfs(), Compare::ALL);
    assert!(
        expected.len() > 30,
        "the reference tree is suspiciously small"
    );
    for (consumer, label) in [
        (GNU_TAR, "GNU tar"),
        (TAR2DIR, "tar2dir"),
        (TAR2SQFS, "tar2sqfs"),
    ] {
        let tree = merged_with(image, consumer);
        assert_same_tree(&tree, &expected, &format!("{name} ({label})"));
    }
    assert_eq!(
        listed(image),
        expected.keys().cloned().collect::<Vec<_>>(),
        "{name}: tar -t listing"
    );
}

#[test]
fn umoci_layout_with_gzip_layers() {
    check_form("umoci layout", &sample_layout());
}

#[test]
fn skopeo_layout_with_zstd_layers() {
    check_form("zstd layout", &zstd_layout());
}

#[test]
fn skopeo_layout_with_uncompressed_layers() {
    check_form("uncompressed layout", &uncompressed_layout());
}

#[test]
fn docker_archive_file() {
    check_form("docker-archive tar", &docker_archive());
}

#[test]
fn docker_archive_extracted() {
    check_form("docker-archive directory", &extracted(&docker_archive()));
}

#[test]
fn oci_archive_file() {
    check_form("oci-archive tar", &oci_archive());
}

#[test]
fn oci_archive_extracted() {
    check_form("oci-archive directory", &extracted(&oci_archive()));
}

#[test]
fn every_form_merges_to_byte_identical_tars() {
    let forms = [
        sample_layout(),
        zstd_layout(),
        uncompressed_layout(),
        docker_archive(),
        oci_archive(),
        extracted(&docker_archive()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let digests: Vec<String> = forms
        .iter()
        .map(|image| {
            let out = sh(
                dir.path(),
                &format!("oci-layers '{}' | oci-merge | sha256sum", image.display()),
            );
            assert!(out.status.success(), "{}", stderr(&out));
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:#?}");
}

#[test]
fn archive_layers_are_read_in_place_as_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let archive = docker_archive();
    let out = sh(dir.path(), &format!("oci-layers '{}'", archive.display()));
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    for line in lines.lines() {
        assert!(
            line.starts_with(&format!("{}\toffset=", archive.display())),
            "{line}"
        );
        assert!(line.contains("\tdigest=sha256:"), "{line}");
    }
}
