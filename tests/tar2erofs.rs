//! End-to-end tests of the built `tar2erofs`: every form of the sample
//! image and handmade tars through `tar2erofs`, the images read back
//! through the kernel (a read-only loop mount, as root) and compared with
//! `umoci raw unpack` or GNU tar's extraction of the same tar; then its
//! times, defaults and options. What every image sink promises (failures
//! that leave OUT as it was, byte-identical images, option checks,
//! `--force`, `--stats`, progress) is tests/image_sinks.rs's.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::fixtures::{sample_forms, sample_reference_rootfs};
use support::mounted::Mounted;
use support::snapshot::{assert_same_tree, snapshot, Compare};
use support::tree_rules;
use support::{bin, run_with_stdin, sh, stderr};
use tar::EntryType;
use testkit::{noise, Layer, Raw};

/// The image every test writes, inside its scratch directory.
const OUT: &str = "out.erofs";
/// A file time later than [`EPOCH`]: mkfs.erofs given SOURCE_DATE_EPOCH
/// would clamp it, tar2erofs must not.
const LATE: u64 = 1_750_000_000;
/// The SOURCE_DATE_EPOCH the reproducibility tests use.
const EPOCH: u64 = 1_700_000_000;
/// A binary `security.capability` value (v2) with NULs and a newline byte.
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];
/// A name that is not UTF-8.
const LATIN1_NAME: &[u8] = b"etc/caf\xe9";

// ---------------------------------------------------------------------------
// Inputs.

/// A long path: a 120-byte directory name and a 200-byte file name.
fn long_path() -> (String, String) {
    let dir = "d".repeat(120);
    (dir.clone(), format!("{dir}/{}", "f".repeat(200)))
}

/// Every kind of entry, all directories explicit: files, a setuid file, a
/// symlink, hard links, a char device, a FIFO, a user xattr, a binary
/// `security.capability`, a long name, a non-UTF-8 name, owners other than
/// root, and times before and after [`EPOCH`].
fn rich_layer() -> Layer {
    let (long_dir, long_file) = long_path();
    Layer::new()
        .dir("etc")
        .raw(
            b"etc/config",
            Raw {
                data: b"key=value\n",
                mtime: LATE,
                pax: vec![("SCHILY.xattr.user.note", b"hello")],
                ..Raw::default()
            },
        )
        .raw(
            LATIN1_NAME,
            Raw {
                data: b"latin-1\n",
                ..Raw::default()
            },
        )
        .dir("bin")
        .raw(
            b"bin/tool",
            Raw {
                data: b"#!/bin/sh\necho tool\n",
                mode: 0o4755,
                ..Raw::default()
            },
        )
        .hardlink("bin/same", "bin/tool")
        .hardlink("bin/again", "bin/tool")
        .symlink("bin/alias", "tool")
        .raw(
            b"bin/ping",
            Raw {
                data: b"ping\n",
                mode: 0o755,
                pax: vec![("SCHILY.xattr.security.capability", CAPABILITY)],
                ..Raw::default()
            },
        )
        .dir("dev")
        .raw(
            b"dev/null",
            Raw {
                kind: EntryType::Char,
                mode: 0o666,
                ..Raw::default()
            },
        )
        .dir("run")
        .raw(
            b"run/pipe",
            Raw {
                kind: EntryType::Fifo,
                mode: 0o600,
                ..Raw::default()
            },
        )
        .raw(
            b"home",
            Raw {
                kind: EntryType::Directory,
                mode: 0o750,
                uid: 1000,
                gid: 1000,
                mtime: LATE,
                ..Raw::default()
            },
        )
        .raw(
            b"home/big",
            Raw {
                data: &b"a compressible line of text\n".repeat(12_000),
                uid: 1000,
                gid: 100,
                mode: 0o640,
                ..Raw::default()
            },
        )
        .dir(&long_dir)
        .file(&long_file, b"long\n")
}

/// A file whose parents `a/` and `a/b/` no entry describes, owned by
/// someone else so the parents cannot inherit from it by accident.
fn implicit_parents_layer() -> Layer {
    Layer::new().raw(
        b"a/b/f",
        Raw {
            data: b"f\n",
            uid: 1000,
            gid: 1000,
            mode: 0o600,
            ..Raw::default()
        },
    )
}

// ---------------------------------------------------------------------------
// Running tar2erofs and reading images back.

/// `tar2erofs ARGS` run in `dir`, without SOURCE_DATE_EPOCH from the
/// environment of the test.
fn tar2erofs(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin("tar2erofs"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// `tar2erofs ARGS` on `stdin` in `dir`.
fn run_tar2erofs(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(tar2erofs(dir, args), stdin)
}

/// Runs `tar2erofs ARGS` in `dir` on `tar`, asserting success and silence;
/// returns the image `dir/OUT`.
fn build(dir: &Path, args: &[&str], tar: &[u8]) -> PathBuf {
    build_with(tar2erofs(dir, args), dir, tar)
}

/// [`build`] with SOURCE_DATE_EPOCH set.
fn build_at_epoch(dir: &Path, epoch: u64, tar: &[u8]) -> PathBuf {
    let mut command = tar2erofs(dir, &[OUT]);
    command.env("SOURCE_DATE_EPOCH", epoch.to_string());
    build_with(command, dir, tar)
}

fn build_with(command: Command, dir: &Path, tar: &[u8]) -> PathBuf {
    let out = run_with_stdin(command, tar);
    assert!(out.status.success(), "tar2erofs failed: {}", stderr(&out));
    assert!(out.stderr.is_empty(), "tar2erofs said: {}", stderr(&out));
    let image = dir.join(OUT);
    assert!(image.is_file(), "no image at {}", image.display());
    assert_no_temporary_files(dir);
    image
}

/// The tree in `image`, as the kernel shows it.
fn tree_of(image: &Path) -> BTreeMap<String, String> {
    let mounted = Mounted::new("erofs", image);
    snapshot(mounted.path(), Compare::ALL)
}

/// The tree GNU tar extracts from `tar` (as root: owners, xattrs, devices).
fn gnu_tar_tree(tar: &[u8]) -> BTreeMap<String, String> {
    let dir = scratch();
    std::fs::write(dir.path().join("in.tar"), tar).unwrap();
    let out = sh(
        dir.path(),
        "mkdir rootfs && tar -C rootfs --numeric-owner --xattrs --xattrs-include='*' -xpf in.tar",
    );
    assert!(out.status.success(), "GNU tar: {}", stderr(&out));
    snapshot(&dir.path().join("rootfs"), Compare::ALL)
}

/// `dump.erofs ARGS IMAGE`, which must succeed; its stdout.
fn dump(args: &[&str], image: &Path) -> String {
    let out = Command::new("dump.erofs")
        .args(args)
        .arg(image)
        .output()
        .expect("run dump.erofs (erofs-utils 1.9: scripts/install-deps)");
    assert!(out.status.success(), "dump.erofs failed: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `Filesystem FIELD:` in `dump.erofs -s`.
fn superblock_field(image: &Path, field: &str) -> String {
    let text = dump(&["-s"], image);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("Filesystem {field}:")))
        .unwrap_or_else(|| panic!("dump.erofs -s has no {field:?}:\n{text}"))
        .trim()
        .to_owned()
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------
// 1. Real images: every form of the sample image, read back by the kernel.

fn check_form(name: &str, image: &Path) {
    let expected = snapshot(&sample_reference_rootfs(), Compare::ALL);
    let dir = scratch();
    let script = format!(
        "oci-layers '{}' | oci-merge | tar2erofs {OUT}",
        image.display()
    );
    let out = sh(dir.path(), &script);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "`{script}` failed or complained: {}",
        stderr(&out)
    );
    let image = dir.path().join(OUT);
    assert_same_tree(&tree_of(&image), &expected, &format!("{name} (tar2erofs)"));
    let fsck = Command::new("fsck.erofs").arg(&image).output().unwrap();
    assert!(fsck.status.success(), "fsck.erofs: {}", stderr(&fsck));
}

#[test]
fn every_form_of_the_sample_image_unpacks_like_umoci() {
    let reference = snapshot(&sample_reference_rootfs(), Compare::ALL);
    assert!(
        reference.len() > 30,
        "the reference tree is suspiciously small"
    );
    assert!(
        reference
            .values()
            .any(|d| d.contains("security.capability")),
        "the sample image has no file capabilities to check"
    );
    for (name, image) in sample_forms() {
        check_form(name, &image);
    }
}

#[test]
fn every_form_gives_the_same_image() {
    let dir = scratch();
    let digests: Vec<String> = sample_forms()
        .iter()
        .map(|(name, image)| {
            let out = sh(
                dir.path(),
                &format!(
                    "oci-layers '{}' | oci-merge | tar2erofs --force {OUT} && sha256sum <{OUT}",
                    image.display()
                ),
            );
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:#?}");
}

// ---------------------------------------------------------------------------
// 2. Handmade tars: what survives into the image.

#[test]
fn every_kind_of_entry_reads_back_as_gnu_tar_extracts_it() {
    let tar = rich_layer().tar();
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tar);
    let tree = tree_of(&image);
    assert_same_tree(&tree, &gnu_tar_tree(&tar), "tar2erofs vs GNU tar");
    // What the snapshot shows, spelled out.
    let entry = |path: &str| {
        tree.get(path)
            .unwrap_or_else(|| panic!("{path} missing: {tree:#?}"))
            .clone()
    };
    assert!(
        entry("bin/same").contains("inode-of bin/again"),
        "{tree:#?}"
    );
    assert!(
        entry("bin/tool").contains("inode-of bin/again"),
        "{tree:#?}"
    );
    assert!(entry("bin/tool").contains("mode 4755"));
    assert!(entry("dev/null").starts_with("char 1:3"));
    assert!(entry("run/pipe").starts_with("fifo"));
    assert!(entry("bin/ping").contains("xattr security.capability=010000020024"));
    assert!(entry("etc/config").contains(&format!("mtime {LATE}")));
    assert!(entry("home/big").contains("1000:100 mode 640"));
    let latin1 = String::from_utf8_lossy(LATIN1_NAME).into_owned();
    assert!(tree.contains_key(&latin1), "{tree:#?}");
    assert!(tree.contains_key(&long_path().1), "{tree:#?}");
}

#[test]
fn the_root_is_0755_root_owned_with_the_reproducible_time() {
    for epoch in [None, Some(EPOCH)] {
        let dir = scratch();
        let tar = implicit_parents_layer().tar();
        let image = match epoch {
            None => build(dir.path(), &[OUT], &tar),
            Some(epoch) => build_at_epoch(dir.path(), epoch, &tar),
        };
        let mounted = Mounted::new("erofs", &image);
        let want = epoch.unwrap_or(0) as i64;
        for path in ["", "a", "a/b"] {
            let meta = mounted.meta(path);
            assert_eq!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime()),
                (0o755, 0, 0, want),
                "directory {path:?} (SOURCE_DATE_EPOCH {epoch:?})"
            );
        }
        let file = mounted.meta("a/b/f");
        assert_eq!(
            (file.mode() & 0o7777, file.uid(), file.gid()),
            (0o600, 1000, 1000)
        );
    }
}

/// A stream that describes the root itself (`tar -C dir .` does) gets the
/// same root: 0755 root:root, the reproducible time.
#[test]
fn a_root_entry_in_the_stream_does_not_change_the_root() {
    let tar = Layer::new()
        .raw(
            b"./",
            Raw {
                kind: EntryType::Directory,
                mode: 0o700,
                uid: 1000,
                gid: 1000,
                mtime: LATE,
                ..Raw::default()
            },
        )
        .file("./f", b"f\n")
        .tar();
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tar);
    let root = Mounted::new("erofs", &image).meta("");
    assert_eq!(
        (root.mode() & 0o7777, root.uid(), root.gid(), root.mtime()),
        (0o755, 0, 0, 0)
    );
}

#[test]
fn ownership_is_numeric_whatever_the_names_say() {
    let tar = Layer::new()
        .raw(
            b"named",
            Raw {
                data: b"owned\n",
                uid: 1234,
                gid: 5678,
                uname: "nobody",
                pax: vec![("uname", b"nobody"), ("gname", b"daemon")],
                ..Raw::default()
            },
        )
        .tar();
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tar);
    let meta = Mounted::new("erofs", &image).meta("named");
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
}

// ---------------------------------------------------------------------------
// 3. Reproducibility and defaults.

/// SOURCE_DATE_EPOCH sets the build and root times, and clamps no file
/// time (tests/image_sinks.rs checks the bytes are reproducible).
#[test]
fn source_date_epoch_sets_the_root_time_but_not_file_times() {
    let dir = scratch();
    let image = build_at_epoch(dir.path(), EPOCH, &rich_layer().tar());
    let mounted = Mounted::new("erofs", &image);
    assert_eq!(mounted.meta("etc/config").mtime(), LATE as i64);
    assert_eq!(mounted.meta("").mtime(), EPOCH as i64);
}

/// mkfs.erofs compresses with as many workers as the host has cores, in
/// segments of 16 MiB: the image must not depend on how many there are.
#[test]
fn the_number_of_workers_does_not_change_the_image() {
    let mut data = b"a compressible line of text\n".repeat(400_000);
    data.extend(noise(5, 12 << 20));
    let tar = Layer::new().file("big", &data).file("small", b"s\n").tar();
    let images: Vec<Vec<u8>> = ["--workers=1", "--workers=3"]
        .iter()
        .map(|workers| {
            let dir = scratch();
            std::fs::read(build(dir.path(), &[OUT, "--", workers], &tar)).unwrap()
        })
        .collect();
    assert!(
        images[0] == images[1],
        "1 and 3 workers made different images"
    );
}

#[test]
fn defaults_are_lz4hc_in_64k_clusters_4k_blocks_and_a_fixed_uuid() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &rich_layer().tar());
    assert_eq!(superblock_field(&image, "blocksize"), "4096");
    assert_eq!(
        superblock_field(&image, "UUID"),
        "6f636972-656e-4465-b200-65726f667321"
    );
    assert_eq!(
        superblock_field(&image, "created"),
        "Thu Jan  1 00:00:00 1970"
    );
    assert_eq!(superblock_field(&image, "compr_algs"), "lz4");
    let features = superblock_field(&image, "incompatible features");
    assert!(features.contains("big_pcluster"), "features: {features}");
    // What a runtime's kernel needs: lz4 in big clusters, Linux 5.13.
    let needs = dump(&["-s"], &image);
    assert!(
        needs.contains("Required upstream Linux kernel version:       5.13"),
        "{needs}"
    );
    let big = dump(&["--path=/home/big"], &image);
    assert!(
        big.contains("Layout: 3 "),
        "home/big is not compressed:\n{big}"
    );
}

// ---------------------------------------------------------------------------
// 4. Options.

#[test]
fn other_compressors_levels_and_cluster_sizes() {
    let tar = rich_layer().tar();
    let expected = gnu_tar_tree(&tar);
    for args in [
        &["--comp", "zstd", "--level", "9"][..],
        &["--comp", "lz4"],
        &["--comp", "lzma"],
        &["--comp", "lz4hc", "--level", "12", "--cluster-size", "4K"],
        &["--cluster-size", "1M"],
        &["--comp", "none"],
    ] {
        let dir = scratch();
        let mut all = args.to_vec();
        all.push(OUT);
        let image = build(dir.path(), &all, &tar);
        assert_same_tree(&tree_of(&image), &expected, &format!("{args:?}"));
        let algorithms = dump(&["-s"], &image)
            .lines()
            .find_map(|l| l.strip_prefix("Filesystem compr_algs:"))
            .map(|a| a.trim().to_owned());
        let want = match args {
            ["--comp", "none"] => None,
            ["--comp", "zstd", ..] => Some("zstd"),
            ["--comp", "lzma"] => Some("lzma"),
            // lz4 in single blocks needs no configuration record: the
            // original EROFS format, which names no algorithm.
            [.., "--cluster-size", "4K"] => None,
            _ => Some("lz4"),
        };
        assert_eq!(algorithms.as_deref(), want, "{args:?}");
        // Layouts 1 and 3 are compressed, 0 and 2 plain (2 with an inline
        // tail, which --comp none does not use).
        let big = dump(&["--path=/home/big"], &image);
        let layout = if args == ["--comp", "none"] { "0" } else { "3" };
        assert!(
            big.contains(&format!("Layout: {layout} ")),
            "{args:?}: {big}"
        );
    }
}

#[test]
fn extra_options_pass_through_to_mkfs_erofs() {
    let tar = rich_layer().tar();
    let dir = scratch();
    let image = build(dir.path(), &[OUT, "--", "--all-root", "-Urandom"], &tar);
    assert_ne!(
        superblock_field(&image, "UUID"),
        "6f636972-656e-4465-b200-65726f667321",
        "-Urandom after the fixed UUID wins"
    );
    let mounted = Mounted::new("erofs", &image);
    let home = mounted.meta("home/big");
    assert_eq!((home.uid(), home.gid()), (0, 0), "--all-root");
}

/// Temporary siblings tar2erofs may leave behind (it must not).
fn assert_no_temporary_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{OUT}.tmp-")) || name.starts_with("tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

// ---------------------------------------------------------------------------
// The tree tar2dir and tar2sqfs build from the same stream, or the same
// refusal (tests/support/tree_rules.rs; tests/differential.rs compares the
// three on generated streams).

#[test]
fn streams_the_sinks_would_build_differently_are_refused() {
    tree_rules::assert_all_refused("tar2erofs", "tar2erofs", |dir, tar| {
        run_tar2erofs(dir, &[OUT], tar)
    });
}

#[test]
fn a_directory_listed_twice_takes_its_last_entrys_metadata() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::repeated_directory().tar());
    let mounted = Mounted::new("erofs", &image);
    tree_rules::assert_repeated_directory_merged(mounted.path(), "tar2erofs");
}

#[test]
fn overlay_attributes_are_escaped_as_overlayfs_escapes_them() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::overlay_attributes().tar());
    let mounted = Mounted::new("erofs", &image);
    tree_rules::assert_overlay_attributes_escaped(mounted.path(), "tar2erofs");
}

#[test]
fn user_attributes_stay_only_on_files_and_directories() {
    let dir = scratch();
    let tar = tree_rules::user_attributes_on_special_files().tar();
    let image = build(dir.path(), &[OUT], &tar);
    let mounted = Mounted::new("erofs", &image);
    tree_rules::assert_user_attributes_only_on_files(mounted.path(), "tar2erofs");
}

#[test]
fn symlinks_are_0777_whatever_their_entry_says() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::symlink_with_a_mode().tar());
    let mounted = Mounted::new("erofs", &image);
    tree_rules::assert_symlink_is_0777(mounted.path(), "tar2erofs");
}
