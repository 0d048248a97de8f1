//! End-to-end tests of the built `tar2sqfs`: handmade tars on stdin (and
//! `oci-merge` pipelines), the images inspected with `unsquashfs`
//! (`-stat`, `-lln`, `-mkfs-time`, and extraction as root).
//!
//! `real_images.rs` already checks that real images come out with the same
//! tree as `umoci raw unpack`, and `image_sinks.rs` what every image sink
//! promises (failures that leave OUT as it was, byte-identical images,
//! option checks, `--force`, `--stats`, progress); this file covers what
//! only tar2sqfs does: its times, defaults and mksquashfs's options.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::mounted::Mounted;
use support::tree_rules;
use support::{bin, run_with_stdin, script, stderr};
use tar::{EntryType, Header};
use testkit::{Layer, Raw};

/// The image every test writes, inside its scratch directory.
const OUT: &str = "out.sqfs";
/// A file time later than [`EPOCH`]: mksquashfs given SOURCE_DATE_EPOCH
/// would clamp it, tar2sqfs must not.
const LATE: u64 = 1_750_000_000;
/// The SOURCE_DATE_EPOCH the reproducibility tests use.
const EPOCH: u64 = 1_700_000_000;
/// A `security.capability` value (v2, permitted: cap_net_bind_service and
/// cap_net_raw, and in the high word cap_mac_override and cap_wake_alarm):
/// binary, with NULs and a newline byte (0x0a), which a PAX parser that
/// splits records at newlines breaks on.
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

// ---------------------------------------------------------------------------
// Inputs.

/// Every kind of entry, all directories explicit: files, a setuid file, a
/// symlink, a hard link, a char device, a FIFO, a user xattr, a binary
/// `security.capability`, and times before and after [`EPOCH`].
fn rich_layer() -> Layer {
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
            b"late",
            Raw {
                kind: EntryType::Directory,
                mode: 0o750,
                mtime: LATE,
                ..Raw::default()
            },
        )
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

/// One entry whose header has both ids and names (names this host maps to
/// other ids); `gnu` picks the GNU header form over ustar.
fn named_entry(path: &str, gnu: bool) -> Layer {
    let mut header = if gnu {
        Header::new_gnu()
    } else {
        Header::new_ustar()
    };
    header.set_path(path).unwrap();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o640);
    header.set_uid(1234);
    header.set_gid(5678);
    header.set_mtime(1_600_000_000);
    header.set_username("nobody").unwrap();
    header.set_groupname("daemon").unwrap();
    header.set_size(6);
    header.set_cksum();
    let mut data = b"owned\n".to_vec();
    data.resize(512, 0);
    Layer::new()
        .append_bytes(header.as_bytes())
        .append_bytes(&data)
}

/// Entries carrying user and group names (`nobody`/`daemon`, which this
/// host maps to other ids) but uid 1234 and gid 5678.
fn named_owners_tar() -> Vec<u8> {
    let pax_named = Layer::new().raw(
        b"pax-named",
        Raw {
            data: b"pax\n",
            uid: 1234,
            gid: 5678,
            uname: "nobody",
            pax: vec![("uname", b"nobody"), ("gname", b"daemon")],
            ..Raw::default()
        },
    );
    let mut tar = pax_named.tar_without_end();
    tar.extend(named_entry("ustar-named", false).tar_without_end());
    tar.extend(named_entry("gnu-named", true).tar());
    tar
}

// ---------------------------------------------------------------------------
// Running tar2sqfs and inspecting images.

/// `tar2sqfs ARGS` run in `dir`, without SOURCE_DATE_EPOCH from the
/// environment of the test.
fn tar2sqfs(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin("tar2sqfs"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// Runs `tar2sqfs ARGS` in `dir` on `tar`, asserting success and silence;
/// returns the image `dir/OUT`.
fn build(dir: &Path, args: &[&str], tar: &[u8]) -> PathBuf {
    build_with(tar2sqfs(dir, args), dir, tar)
}

/// [`build`] with SOURCE_DATE_EPOCH set.
fn build_at_epoch(dir: &Path, epoch: u64, tar: &[u8]) -> PathBuf {
    let mut command = tar2sqfs(dir, &[OUT]);
    command.env("SOURCE_DATE_EPOCH", epoch.to_string());
    build_with(command, dir, tar)
}

fn build_with(command: Command, dir: &Path, tar: &[u8]) -> PathBuf {
    let out = run_with_stdin(command, tar);
    assert!(out.status.success(), "tar2sqfs failed: {}", stderr(&out));
    assert!(out.stderr.is_empty(), "tar2sqfs said: {}", stderr(&out));
    let image = dir.join(OUT);
    assert!(image.is_file(), "no image at {}", image.display());
    assert_no_temporary_files(dir);
    image
}

/// `unsquashfs ARGS IMAGE`, which must succeed; its stdout.
fn unsquashfs(args: &[&str], image: &Path) -> String {
    let out = Command::new("unsquashfs")
        .args(args)
        .arg(image)
        .env("TZ", "UTC")
        .output()
        .expect("run unsquashfs (squashfs-tools 4.6: scripts/install-deps)");
    assert!(
        out.status.success(),
        "unsquashfs {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `unsquashfs -stat`.
fn stat(image: &Path) -> String {
    unsquashfs(&["-stat"], image)
}

fn assert_stat_says(image: &Path, lines: &[&str]) {
    let stat = stat(image);
    for line in lines {
        assert!(
            stat.lines().any(|l| l.trim() == *line),
            "unsquashfs -stat lacks {line:?}:\n{stat}"
        );
    }
}

/// The superblock time, `unsquashfs -mkfs-time`.
fn mkfs_time(image: &Path) -> u64 {
    unsquashfs(&["-mkfs-time"], image).trim().parse().unwrap()
}

/// One line of `unsquashfs -lln -full -UTC`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// `drwxr-xr-x` and the like.
    perms: String,
    /// `uid/gid`.
    owner: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    time: String,
}

/// `path -> (perms, owner, time)` from `unsquashfs -lln`; the root is "".
fn listing(image: &Path) -> BTreeMap<String, Listed> {
    const ROOT: &str = "squashfs-root";
    unsquashfs(&["-lln", "-full", "-UTC"], image)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with(ROOT))?;
            let path = words[at].strip_prefix(ROOT)?.trim_start_matches('/');
            Some((
                path.to_owned(),
                Listed {
                    perms: words[0].to_owned(),
                    owner: words[1].to_owned(),
                    time: format!("{} {}", words[at - 2], words[at - 1]),
                },
            ))
        })
        .collect()
}

fn listed(listing: &BTreeMap<String, Listed>, path: &str) -> Listed {
    listing
        .get(path)
        .unwrap_or_else(|| panic!("{path:?} is not in the image: {listing:#?}"))
        .clone()
}

/// How `unsquashfs -lln -full -UTC` shows a time.
fn utc(epoch: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .unwrap();
    assert!(out.status.success(), "date: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Extracts the image as root (owners, xattrs, device nodes) into a new
/// directory `dir/tree`.
fn extract(dir: &Path, image: &Path) -> PathBuf {
    let tree = dir.join("tree");
    unsquashfs(
        &["-quiet", "-no-progress", "-d", tree.to_str().unwrap()],
        image,
    );
    tree
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------
// Failures.

/// Temporary siblings tar2sqfs may leave behind (it must not).
fn assert_no_temporary_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{OUT}.tmp-")))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// A failed run: non-zero exit and exactly one `tar2sqfs: ` line on stderr,
/// mentioning every needle (case-insensitively).
fn assert_failed(what: &str, out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: tar2sqfs succeeded: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("tar2sqfs: "),
        "{what}: expected one `tar2sqfs: ` line, got: {err:?}"
    );
    for needle in needles {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{what}: error does not mention {needle:?}: {err}"
        );
    }
}

/// `tar2sqfs ARGS` on `stdin` in `dir`.
fn run_tar2sqfs(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(tar2sqfs(dir, args), stdin)
}

// ---------------------------------------------------------------------------
// 1. Reproducibility.

#[test]
fn source_date_epoch_sets_filesystem_and_root_times_but_not_file_times() {
    let dir = scratch();
    let image = build_at_epoch(dir.path(), EPOCH, &rich_layer().tar());
    assert_eq!(mkfs_time(&image), EPOCH, "filesystem creation time");
    assert_stat_says(
        &image,
        &["Creation or last append time Tue Nov 14 22:13:20 2023"],
    );
    let list = listing(&image);
    assert_eq!(listed(&list, "").time, utc(EPOCH), "root directory time");
    // Not clamped to SOURCE_DATE_EPOCH: the times in the tar.
    for path in ["etc/config", "late"] {
        assert_eq!(listed(&list, path).time, utc(LATE), "{path}");
    }
    for path in ["etc", "bin/tool", "bin/ping", "dev/null", "run/pipe"] {
        assert_eq!(listed(&list, path).time, utc(1_600_000_000), "{path}");
    }
}

#[test]
fn without_source_date_epoch_filesystem_and_root_times_are_zero() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &rich_layer().tar());
    assert_eq!(mkfs_time(&image), 0, "filesystem creation time");
    assert_stat_says(
        &image,
        &["Creation or last append time Thu Jan  1 00:00:00 1970"],
    );
    let list = listing(&image);
    assert_eq!(listed(&list, "").time, utc(0), "root directory time");
    assert_eq!(listed(&list, "etc/config").time, utc(LATE));
}

/// mksquashfs 4.6.1 gives directories the tar does not describe the time of
/// the build (it has no `-default-mtime`), which would make a tar with
/// implicit parents give a different image every second; tar2sqfs describes
/// them itself, with the reproducible time (SOURCE_DATE_EPOCH, else 0).
#[test]
fn implicit_directories_get_the_reproducible_time() {
    let tar = implicit_parents_layer().tar();
    for epoch in [None, Some(EPOCH)] {
        let dir = scratch();
        let image = match epoch {
            None => build(dir.path(), &[OUT], &tar),
            Some(epoch) => build_at_epoch(dir.path(), epoch, &tar),
        };
        let list = listing(&image);
        let want = utc(epoch.unwrap_or(0));
        for path in ["a", "a/b"] {
            assert_eq!(
                listed(&list, path).time,
                want,
                "time of implicit directory {path} (SOURCE_DATE_EPOCH {epoch:?})"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Defaults.

#[test]
fn defaults_are_zstd_without_fragments_and_a_root_owned_0755_root() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &rich_layer().tar());
    assert_stat_says(
        &image,
        &[
            "Compression zstd",
            "compression-level 3",
            "Block size 131072",
            "Fragments are not stored",
            "Number of fragments 0",
        ],
    );
    let root = listed(&listing(&image), "");
    assert_eq!(
        (root.perms.as_str(), root.owner.as_str()),
        ("drwxr-xr-x", "0/0")
    );
}

#[test]
fn implicit_directories_are_0755_root_owned() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &implicit_parents_layer().tar());
    let list = listing(&image);
    for path in ["", "a", "a/b"] {
        let entry = listed(&list, path);
        assert_eq!(
            (entry.perms.as_str(), entry.owner.as_str()),
            ("drwxr-xr-x", "0/0"),
            "directory {path:?}"
        );
    }
    let file = listed(&list, "a/b/f");
    assert_eq!(
        (file.perms.as_str(), file.owner.as_str()),
        ("-rw-------", "1000/1000")
    );
}

#[test]
fn ownership_is_numeric_whatever_the_names_say() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &named_owners_tar());
    let list = listing(&image);
    for path in ["pax-named", "ustar-named", "gnu-named"] {
        assert_eq!(listed(&list, path).owner, "1234/5678", "{path}");
    }
    let tree = extract(dir.path(), &image);
    assert_eq!(
        std::fs::read(tree.join("ustar-named")).unwrap(),
        b"owned\n",
        "the data after a rewritten header"
    );
}

#[test]
fn file_modes_and_setuid_survive() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &rich_layer().tar());
    let list = listing(&image);
    for (path, perms) in [
        ("bin/tool", "-rwsr-xr-x"),
        ("etc/config", "-rw-r--r--"),
        ("late", "drwxr-x---"),
        ("bin/alias", "lrwxrwxrwx"),
        ("dev/null", "crw-rw-rw-"),
        ("run/pipe", "prw-------"),
    ] {
        assert_eq!(listed(&list, path).perms, perms, "{path}");
    }
}

// ---------------------------------------------------------------------------
// 3. Options.

#[test]
fn other_compressors_and_levels() {
    let tar = rich_layer().tar();
    let dir = scratch();
    let xz = build(dir.path(), &[OUT, "--comp", "xz"], &tar);
    assert_stat_says(&xz, &["Compression xz"]);
    // Each build replaces the last one's OUT.
    let gzip9 = build(
        dir.path(),
        &["--force", "--comp", "gzip", "--level", "9", OUT],
        &tar,
    );
    assert_stat_says(&gzip9, &["Compression gzip"]);
    let gzip1 = build(
        dir.path(),
        &["--force", "--comp", "gzip", "--level", "1", OUT],
        &tar,
    );
    assert_stat_says(&gzip1, &["Compression gzip", "compression-level 1"]);
    let zstd19 = build(dir.path(), &["--force", "--level", "19", OUT], &tar);
    assert_stat_says(&zstd19, &["Compression zstd", "compression-level 19"]);
}

#[test]
fn block_size() {
    let dir = scratch();
    let image = build(
        dir.path(),
        &["--block-size", "1M", OUT],
        &rich_layer().tar(),
    );
    assert_stat_says(&image, &["Block size 1048576"]);
}

#[test]
fn extra_options_pass_through_to_mksquashfs() {
    let tar = rich_layer().tar();
    let with = scratch();
    let image = build(with.path(), &[OUT], &tar);
    assert_stat_says(&image, &["Xattrs are compressed"]);
    let tree = extract(with.path(), &image);
    assert_eq!(
        xattr::get(tree.join("etc/config"), "user.note").unwrap(),
        Some(b"hello".to_vec())
    );

    let without = scratch();
    let image = build(without.path(), &[OUT, "--", "-no-xattrs"], &tar);
    assert_stat_says(&image, &["Xattrs are not stored"]);
    let tree = extract(without.path(), &image);
    for path in ["etc/config", "bin/ping"] {
        let names: Vec<_> = xattr::list(tree.join(path)).unwrap().collect();
        assert!(names.is_empty(), "{path} kept xattrs: {names:?}");
    }
}

// ---------------------------------------------------------------------------
// 4. What it prints: nothing on success, and mksquashfs's own explanation
// when it fails.

/// A `mksquashfs` in `dir/wrap/` that runs the real one with the same
/// arguments, appends them to `dir/args` and copies what it prints on
/// stdout to `dir/report`.
fn recording_mksquashfs(dir: &Path) -> PathBuf {
    let real = Command::new("sh")
        .args(["-c", "command -v mksquashfs"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap();
    let wrap = dir.join("wrap");
    std::fs::create_dir_all(&wrap).unwrap();
    script(
        &wrap,
        "mksquashfs",
        &format!(
            "echo \"$*\" >>'{args}'\n'{real}' \"$@\" >'{out}'\nstatus=$?\n\
             cat '{out}'; cat '{out}' >>'{report}'\nexit $status\n",
            args = dir.join("args").display(),
            out = dir.join("stdout").display(),
            report = dir.join("report").display(),
            real = real.trim(),
        ),
    )
}

#[test]
fn success_prints_nothing_though_mksquashfs_reported() {
    let dir = scratch();
    let wrapper = recording_mksquashfs(dir.path());
    let tar = rich_layer().tar();
    build(
        dir.path(),
        &["--mksquashfs", wrapper.to_str().unwrap(), OUT],
        &tar,
    );
    let report = std::fs::read_to_string(dir.path().join("report")).unwrap();
    assert!(
        report.contains("Number of inodes") && report.lines().count() > 20,
        "mksquashfs printed no report to capture: {report}"
    );
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    let build_args = args.lines().last().unwrap();
    assert!(
        build_args.contains("-no-progress") && !build_args.contains("-quiet"),
        "{build_args}"
    );
    // With a progress line of our own, mksquashfs still draws none.
    std::fs::remove_file(dir.path().join(OUT)).unwrap();
    let wrapper = wrapper.to_str().unwrap();
    let args = ["--progress", "always", "--mksquashfs", wrapper, OUT];
    let out = run_tar2sqfs(dir.path(), &args, &tar);
    assert!(out.status.success(), "{}", stderr(&out));
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    let build_args = args.lines().last().unwrap();
    assert!(build_args.contains("-no-progress"), "{build_args}");
}

// ---------------------------------------------------------------------------
// 5. What survives into the image.

#[test]
fn hard_links_devices_fifos_and_capabilities_survive() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &rich_layer().tar());
    let tree = extract(dir.path(), &image);
    let meta = |path: &str| std::fs::symlink_metadata(tree.join(path)).unwrap();

    let (tool, same) = (meta("bin/tool"), meta("bin/same"));
    assert_eq!(tool.ino(), same.ino(), "hard link is a separate inode");
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        std::fs::read(tree.join("bin/same")).unwrap(),
        b"#!/bin/sh\necho tool\n"
    );
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid after extraction");

    let null = meta("dev/null");
    assert!(
        null.file_type().is_char_device(),
        "dev/null is not a char device"
    );
    assert_eq!(
        null.rdev(),
        libc_makedev(1, 3),
        "device numbers of dev/null"
    );
    assert!(
        meta("run/pipe").file_type().is_fifo(),
        "run/pipe is not a FIFO"
    );
    assert_eq!(
        std::fs::read_link(tree.join("bin/alias")).unwrap(),
        Path::new("tool")
    );

    assert_eq!(
        xattr::get(tree.join("bin/ping"), "security.capability").unwrap(),
        Some(CAPABILITY.to_vec()),
        "binary security.capability"
    );
    assert_eq!(
        xattr::get(tree.join("etc/config"), "user.note").unwrap(),
        Some(b"hello".to_vec())
    );
    for (path, uid) in [("bin/tool", 0), ("etc/config", 0)] {
        assert_eq!(meta(path).uid(), uid, "{path}");
    }
}

/// `makedev` for small numbers (glibc's encoding).
fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff)
}

// ---------------------------------------------------------------------------
// 6. The tree tar2dir and tar2erofs build from the same stream, or the same
// refusal (tests/support/tree_rules.rs; tests/differential.rs compares the
// three on generated streams).

/// The tree in `image`, mounted.
fn mounted(image: &Path) -> Mounted {
    Mounted::new("squashfs", image)
}

#[test]
fn streams_the_sinks_would_build_differently_are_refused() {
    tree_rules::assert_all_refused("tar2sqfs", "tar2sqfs", |dir, tar| {
        run_tar2sqfs(dir, &[OUT], tar)
    });
}

#[test]
fn a_directory_listed_twice_takes_its_last_entrys_metadata() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::repeated_directory().tar());
    tree_rules::assert_repeated_directory_merged(mounted(&image).path(), "tar2sqfs");
}

#[test]
fn overlay_attributes_are_escaped_as_overlayfs_escapes_them() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::overlay_attributes().tar());
    tree_rules::assert_overlay_attributes_escaped(mounted(&image).path(), "tar2sqfs");
}

#[test]
fn user_attributes_stay_only_on_files_and_directories() {
    let dir = scratch();
    let tar = tree_rules::user_attributes_on_special_files().tar();
    let image = build(dir.path(), &[OUT], &tar);
    tree_rules::assert_user_attributes_only_on_files(mounted(&image).path(), "tar2sqfs");
}

#[test]
fn times_squashfs_cannot_hold_are_refused() {
    // Unsigned 32-bit seconds: mksquashfs 4.6.1 would store 5 for the first
    // and 4294967295 for the second, and exit 0.
    let after_2106 = Raw {
        mtime: (1 << 32) + 5,
        ..Raw::default()
    };
    let before_1970 = Raw {
        pax: vec![("mtime", b"-1.5")],
        ..Raw::default()
    };
    for (what, raw) in [("after 2106", after_2106), ("before 1970", before_1970)] {
        let dir = scratch();
        let tar = Layer::new().file("ok", b"x").raw(b"f", raw).tar();
        let out = run_tar2sqfs(dir.path(), &[OUT], &tar);
        assert_failed(what, &out, &["entry \"f\"", "modification time"]);
        assert!(!dir.path().join(OUT).exists(), "{what}: wrote OUT");
    }
}

#[test]
fn symlinks_are_0777_whatever_their_entry_says() {
    let dir = scratch();
    let image = build(dir.path(), &[OUT], &tree_rules::symlink_with_a_mode().tar());
    tree_rules::assert_symlink_is_0777(mounted(&image).path(), "tar2sqfs");
}
