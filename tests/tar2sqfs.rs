//! End-to-end tests of the built `tar2sqfs`: handmade tars on stdin (and
//! `oci-merge` pipelines), the images inspected with `unsquashfs`
//! (`-stat`, `-lln`, `-mkfs-time`, and extraction as root).
//!
//! `real_images.rs` already checks that real images come out with the same
//! tree as `umoci raw unpack`; this file covers the rest: reproducibility,
//! defaults, options, and failures that must leave OUT as it was.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::mounted::Mounted;
use support::tree_rules;
use support::{bin, run_with_stdin, sh, stderr};
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

/// A small valid tar: the previous image that failed runs must keep.
fn small_layer() -> Layer {
    Layer::new()
        .dir("old")
        .file("old/file", b"previous image\n")
}

/// Data that does not compress, `len` bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
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

/// A good image to leave in place before a failing run.
fn previous_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = scratch();
        std::fs::read(build(dir.path(), &[OUT], &small_layer().tar())).unwrap()
    })
}

/// Runs a failing scenario twice, in fresh directories: with OUT absent
/// (it must stay absent) and with OUT a previous good image (it must stay
/// byte-identical, the same file). `run` gets the directory and runs
/// `tar2sqfs OUT` there; returns the first run's stderr.
fn assert_fails_cleanly(what: &str, needles: &[&str], run: impl Fn(&Path) -> Output) -> String {
    let absent = scratch();
    let out = run(absent.path());
    assert_failed(&format!("{what} (no previous OUT)"), &out, needles);
    assert!(
        !absent.path().join(OUT).exists(),
        "{what}: a failed run created OUT"
    );
    assert_no_temporary_files(absent.path());

    let present = scratch();
    let image = present.path().join(OUT);
    std::fs::write(&image, previous_image()).unwrap();
    let inode = image.metadata().unwrap().ino();
    let again = run(present.path());
    assert_failed(&format!("{what} (previous OUT)"), &again, needles);
    assert!(
        std::fs::read(&image).unwrap() == previous_image(),
        "{what}: a failed run changed the previous image"
    );
    assert_eq!(
        image.metadata().unwrap().ino(),
        inode,
        "{what}: a failed run replaced the previous image"
    );
    assert_no_temporary_files(present.path());
    stderr(&out)
}

/// `tar2sqfs ARGS` on `stdin` in `dir`.
fn run_tar2sqfs(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(tar2sqfs(dir, args), stdin)
}

/// An executable script at `dir/name`, installed by a child process so no
/// thread of this test binary holds it open for writing when it runs
/// (which would make exec fail with ETXTBSY).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!("{name}.source"));
    std::fs::write(&source, format!("#!/bin/sh\n{body}")).unwrap();
    let path = dir.join(name);
    let status = Command::new("install")
        .args(["-m", "0755"])
        .arg(&source)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// A fake `mksquashfs` in `dir/fake/`: `-version` prints `banner`, any
/// other call runs `body`.
fn fake_mksquashfs(dir: &Path, banner: &str, body: &str) -> PathBuf {
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    script(
        &fake,
        "mksquashfs",
        &format!("if [ \"$1\" = -version ]; then echo '{banner}'; exit 0; fi\n{body}\n"),
    )
}

/// PATH with `first` before the test's own PATH.
fn path_with_first(first: &Path) -> String {
    format!(
        "{}:{}",
        first.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

// ---------------------------------------------------------------------------
// 1. Reproducibility.

#[test]
fn the_same_tar_gives_byte_identical_images() {
    let tar = rich_layer().tar();
    let (one, two) = (scratch(), scratch());
    let first = std::fs::read(build(one.path(), &[OUT], &tar)).unwrap();
    let second = std::fs::read(build(two.path(), &[OUT], &tar)).unwrap();
    assert!(first == second, "two runs on the same tar differ");

    let (three, four) = (scratch(), scratch());
    let dated = std::fs::read(build_at_epoch(three.path(), EPOCH, &tar)).unwrap();
    let again = std::fs::read(build_at_epoch(four.path(), EPOCH, &tar)).unwrap();
    assert!(
        dated == again,
        "two runs with SOURCE_DATE_EPOCH={EPOCH} differ"
    );
    assert!(
        dated != first,
        "SOURCE_DATE_EPOCH made no difference to the image"
    );
}

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
    let gzip9 = build(dir.path(), &["--comp", "gzip", "--level", "9", OUT], &tar);
    assert_stat_says(&gzip9, &["Compression gzip"]);
    let gzip1 = build(dir.path(), &["--comp", "gzip", "--level", "1", OUT], &tar);
    assert_stat_says(&gzip1, &["Compression gzip", "compression-level 1"]);
    let zstd19 = build(dir.path(), &["--level", "19", OUT], &tar);
    assert_stat_says(&zstd19, &["Compression zstd", "compression-level 19"]);
}

#[test]
fn a_level_for_a_compressor_without_levels_is_an_error() {
    let tar = rich_layer().tar();
    assert_fails_cleanly("--comp xz --level 5", &["level", "xz"], |dir| {
        run_tar2sqfs(dir, &["--comp", "xz", "--level", "5", OUT], &tar)
    });
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

#[test]
fn options_mksquashfs_rejects_fail_cleanly() {
    let tar = rich_layer().tar();
    let stderr = assert_fails_cleanly("--comp bogus", &["mksquashfs"], |dir| {
        run_tar2sqfs(dir, &["--comp", "bogus", OUT], &tar)
    });
    assert!(stderr.contains("bogus"), "{stderr}");
    assert_fails_cleanly("-- -no-such-option", &["mksquashfs"], |dir| {
        run_tar2sqfs(dir, &[OUT, "--", "-no-such-option"], &tar)
    });
}

// ---------------------------------------------------------------------------
// 4. Failures leave OUT as it was.

/// A tar with a PAX header, a file of several blocks, a directory and a
/// last file; and the offsets to cut it at, with what each cut hits.
fn truncation_cases() -> (Vec<u8>, Vec<(usize, &'static str)>) {
    let layer = Layer::new()
        .raw(
            b"first",
            Raw {
                data: &noise(3000),
                pax: vec![("SCHILY.xattr.user.k", b"v")],
                ..Raw::default()
            },
        )
        .dir("d")
        .file("d/last", b"last\n");
    let tar = layer.tar();
    let entries_end = layer.tar_without_end().len();
    // PAX header 0..512, its records 512..1024, `first` 1024..1536, its
    // data 1536..4608, `d/` 4608..5120, `d/last` 5120..5632, data ..6144.
    assert_eq!(entries_end, 6144);
    let cuts = vec![
        (0, "empty"),
        (100, "inside the first header"),
        (512, "after the PAX header, before its records"),
        (700, "inside the PAX records"),
        (1024, "at the header of the first file"),
        (1300, "inside the header of the first file"),
        (2000, "inside the data of the first file"),
        (4608, "at an entry boundary after the data"),
        (5632 + 3, "inside the data of the last file"),
        (
            entries_end,
            "at the end of the entries, before the end marker",
        ),
        (entries_end + 100, "inside the end-of-archive marker"),
    ];
    (tar, cuts)
}

#[test]
fn truncated_tars_fail_and_leave_out_as_it_was() {
    let (tar, cuts) = truncation_cases();
    for (cut, what) in cuts {
        assert_fails_cleanly(&format!("cut at {cut} ({what})"), &["input"], |dir| {
            run_tar2sqfs(dir, &[OUT], &tar[..cut])
        });
    }
}

#[test]
fn a_producer_that_stops_early_fails() {
    let (tar, _) = truncation_cases();
    let stderr = assert_fails_cleanly("head -c 3000 | tar2sqfs", &["input", "truncated"], |dir| {
        std::fs::write(dir.join("full.tar"), &tar).unwrap();
        sh(
            dir,
            &format!("head -c 3000 full.tar | tar2sqfs {OUT}; exit \"${{PIPESTATUS[1]}}\""),
        )
    });
    assert!(stderr.contains("3000"), "{stderr}");
}

#[test]
fn a_corrupt_header_fails() {
    let (mut tar, _) = truncation_cases();
    tar[4608 + 20] ^= 0x55; // the name of `d/`, whose header ends at 5120
    assert_fails_cleanly("corrupt header", &["input", "header", "5120"], |dir| {
        run_tar2sqfs(dir, &[OUT], &tar)
    });
}

#[test]
fn empty_or_closed_stdin_fails_and_writes_nothing() {
    assert_fails_cleanly("empty stdin", &["input", "end-of-archive"], |dir| {
        run_tar2sqfs(dir, &[OUT], b"")
    });
    assert_fails_cleanly("closed stdin", &["input"], |dir| {
        sh(dir, &format!("tar2sqfs {OUT} <&-"))
    });
    assert_fails_cleanly("stdin from /dev/null", &["input"], |dir| {
        sh(dir, &format!("tar2sqfs {OUT} </dev/null"))
    });
}

/// `oci-merge` with a corrupt base layer streams the good upper layer, then
/// fails: tar2sqfs must blame its input, not report what mksquashfs says
/// about a stream that ended early.
#[test]
fn a_merge_failing_mid_stream_fails_and_blames_the_input() {
    let base = Layer::new()
        .dir("usr")
        .file("usr/data", &vec![b'x'; 1 << 20])
        .file("usr/more", &noise(256 << 10));
    let mut corrupt = base.gzip();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16]
        .iter_mut()
        .for_each(|b| *b ^= 0xa5);
    let top = Layer::new()
        .dir("opt")
        .file("opt/big", &noise(2 << 20))
        .file("opt/small", b"small\n")
        .tar();
    let stderr = assert_fails_cleanly("oci-merge bad.tgz good.tar", &["input"], |dir| {
        std::fs::write(dir.join("bad.tgz"), &corrupt).unwrap();
        std::fs::write(dir.join("good.tar"), &top).unwrap();
        let out = sh(
            dir,
            &format!(
                "set +e; oci-merge bad.tgz good.tar 2>merge.err | tar2sqfs {OUT}\n\
                 status=(\"${{PIPESTATUS[@]}}\"); echo \"${{status[0]}}\" >merge.status; exit \"${{status[1]}}\""
            ),
        );
        let merge = std::fs::read_to_string(dir.join("merge.status")).unwrap();
        assert_ne!(merge.trim(), "0", "oci-merge succeeded on a corrupt layer");
        out
    });
    assert!(
        !stderr.contains("mksquashfs"),
        "the error should be about the input, not mksquashfs: {stderr}"
    );
    assert!(
        ["header", "truncated", "producer"]
            .iter()
            .any(|w| stderr.contains(w)),
        "the error does not say what is wrong with the input: {stderr}"
    );
}

#[test]
fn missing_mksquashfs_says_what_to_install() {
    let tar = small_layer().tar();
    let needles = [
        "squashfs-tools 4.6 or newer",
        "install-deps",
        "--mksquashfs",
    ];
    // Nothing on PATH at all (tar2sqfs itself is run by its full path).
    assert_fails_cleanly("no mksquashfs on PATH", &needles, |dir| {
        let empty = dir.join("empty-path");
        std::fs::create_dir_all(&empty).unwrap();
        let mut command = tar2sqfs(dir, &[OUT]);
        command.env("PATH", &empty);
        run_with_stdin(command, &tar)
    });
    let stderr = assert_fails_cleanly("--mksquashfs /nonexistent", &needles, |dir| {
        run_tar2sqfs(dir, &["--mksquashfs", "/nonexistent", OUT], &tar)
    });
    assert!(stderr.contains("/nonexistent"), "{stderr}");
}

#[test]
fn an_old_mksquashfs_is_refused() {
    let tar = small_layer().tar();
    let banner = "mksquashfs version 4.5.1 (2022/03/17)";
    // Any call but -version would "succeed" without writing an image.
    let body = "cat >/dev/null; exit 0";
    let needles = ["4.5.1", "4.6"];
    assert_fails_cleanly("4.5.1 first on PATH", &needles, |dir| {
        let fake = fake_mksquashfs(dir, banner, body);
        let mut command = tar2sqfs(dir, &[OUT]);
        command.env("PATH", path_with_first(fake.parent().unwrap()));
        run_with_stdin(command, &tar)
    });
    assert_fails_cleanly("--mksquashfs 4.5.1", &needles, |dir| {
        let fake = fake_mksquashfs(dir, banner, body);
        run_tar2sqfs(dir, &["--mksquashfs", fake.to_str().unwrap(), OUT], &tar)
    });
    assert_fails_cleanly("no version banner", &["version", "4.6"], |dir| {
        let fake = fake_mksquashfs(dir, "squashfs tools, who knows", body);
        run_tar2sqfs(dir, &["--mksquashfs", fake.to_str().unwrap(), OUT], &tar)
    });
}

#[test]
fn a_failing_mksquashfs_is_reported_with_its_own_message() {
    let banner = "mksquashfs version 4.6.1 (2023/03/25)";
    let small = small_layer().tar();
    // Reads the whole stream, writes half an image, then fails.
    let after_reading =
        "cat >/dev/null; echo junk >\"$2\"; echo 'FATAL: something bad' >&2; exit 1";
    assert_fails_cleanly(
        "mksquashfs fails after reading",
        &["mksquashfs", "FATAL: something bad"],
        |dir| {
            let fake = fake_mksquashfs(dir, banner, after_reading);
            let mut command = tar2sqfs(dir, &[OUT]);
            command.env("PATH", path_with_first(fake.parent().unwrap()));
            run_with_stdin(command, &small)
        },
    );
    // Fails at once, with more input than a pipe holds still to come.
    let big = Layer::new().file("big", &noise(4 << 20)).tar();
    let at_once = "echo 'FATAL: cannot start' >&2; exit 1";
    assert_fails_cleanly(
        "mksquashfs fails without reading",
        &["mksquashfs", "FATAL: cannot start"],
        |dir| {
            let fake = fake_mksquashfs(dir, banner, at_once);
            run_tar2sqfs(dir, &["--mksquashfs", fake.to_str().unwrap(), OUT], &big)
        },
    );
}

#[test]
fn out_that_is_a_directory_or_in_a_missing_directory_fails() {
    let dir = scratch();
    std::fs::create_dir(dir.path().join(OUT)).unwrap();
    let out = run_tar2sqfs(dir.path(), &[OUT], &small_layer().tar());
    assert_failed("OUT is a directory", &out, &[OUT, "directory"]);
    assert!(dir.path().join(OUT).is_dir(), "the directory is gone");
    assert_eq!(
        std::fs::read_dir(dir.path().join(OUT)).unwrap().count(),
        0,
        "something was written into the directory"
    );
    assert_no_temporary_files(dir.path());

    let out = run_tar2sqfs(dir.path(), &["missing/out.sqfs"], &small_layer().tar());
    assert_failed("OUT in a missing directory", &out, &["missing"]);
    assert!(!dir.path().join("missing").exists());
}

/// The image is built in a private temporary file, but ends up with the
/// mode any new file gets (0666 & ~umask), like mksquashfs's own output.
#[test]
fn the_image_gets_the_usual_file_mode() {
    let dir = scratch();
    std::fs::write(dir.path().join("in.tar"), small_layer().tar()).unwrap();
    let out = sh(dir.path(), &format!("umask 022; tar2sqfs {OUT} < in.tar"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = dir.path().join(OUT).metadata().unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o644, "mode {mode:o} of a new image under umask 022");
}

// ---------------------------------------------------------------------------
// 5. What it prints: nothing on success, one line with --stats, and
// mksquashfs's own explanation when it fails.

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
}

/// The numbers of a `--stats` line: image bytes, inodes, file data bytes,
/// compression ratio.
fn stats_numbers(line: &str) -> (u64, u64, u64, f64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |word: &str| -> &str {
        let at = words
            .iter()
            .position(|w| w.trim_end_matches(',') == word)
            .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
        words[at - 1]
    };
    let ratio = words
        .last()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no ratio at the end of {line:?}"));
    assert!(line.contains("compression ratio"), "{line}");
    let image: u64 = before("bytes").parse().unwrap();
    let inodes: u64 = before("inodes").parse().unwrap();
    let data_at = words.iter().rposition(|w| *w == "bytes").unwrap();
    let data: u64 = words[data_at - 1].parse().unwrap();
    (image, inodes, data, ratio)
}

#[test]
fn stats_print_one_line_with_size_inodes_and_ratio() {
    let tar = rich_layer().tar();
    for flag in ["--stats", "-v"] {
        let dir = scratch();
        let out = run_tar2sqfs(dir.path(), &[flag, OUT], &tar);
        let err = stderr(&out);
        assert!(out.status.success(), "{flag}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with(&format!("tar2sqfs: {OUT}: ")),
            "{flag}: expected one line, got {err:?}"
        );
        let (image, inodes, data, ratio) = stats_numbers(lines[0]);
        let image_path = dir.path().join(OUT);
        assert_eq!(image, image_path.metadata().unwrap().len(), "{flag}: size");
        assert!(
            stat(&image_path)
                .lines()
                .any(|l| l.trim() == format!("Number of inodes {inodes}")),
            "{flag}: {inodes} inodes is not what unsquashfs -stat says"
        );
        // etc/config, bin/tool (and its link), bin/ping: the file data.
        assert_eq!(data, 10 + 20 + 5, "{flag}: file data");
        let want = data as f64 / image as f64;
        assert!(
            (ratio - want).abs() < 0.01,
            "{flag}: ratio {ratio}, want {want}"
        );
    }
}

#[test]
fn progress_lets_mksquashfs_print_on_stderr() {
    let banner = "mksquashfs version 4.6.1 (2023/03/25)";
    let body = "echo \"$*\" >args; cat >/dev/null; echo 'PROGRESS BAR'; echo image >\"$2\"";
    let dir = scratch();
    let fake = fake_mksquashfs(dir.path(), banner, body);
    let fake = fake.to_str().unwrap();
    let out = run_tar2sqfs(
        dir.path(),
        &["--mksquashfs", fake, "--progress", OUT],
        &small_layer().tar(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "PROGRESS BAR\n");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(
        !args.contains("-quiet") && !args.contains("-no-progress"),
        "with --progress: {args}"
    );

    let out = run_tar2sqfs(
        dir.path(),
        &["--mksquashfs", fake, OUT],
        &small_layer().tar(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "",
        "the bar reached stderr without --progress"
    );
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.contains("-no-progress"), "without --progress: {args}");
}

/// mksquashfs prints its banner on stdout before it fails: the error line
/// carries what it said on stderr, not that chatter.
#[test]
fn a_failure_shows_what_mksquashfs_said_on_stderr() {
    let banner = "mksquashfs version 4.6.1 (2023/03/25)";
    let body = "cat >/dev/null; echo 'Parallel mksquashfs: Using 2 processors'; \
                echo 'FATAL ERROR: Failed to write to output filesystem' >&2; exit 1";
    let stderr = assert_fails_cleanly(
        "mksquashfs fails with a report",
        &["mksquashfs failed", "FATAL ERROR: Failed to write"],
        |dir| {
            let fake = fake_mksquashfs(dir, banner, body);
            run_tar2sqfs(
                dir,
                &["--mksquashfs", fake.to_str().unwrap(), OUT],
                &small_layer().tar(),
            )
        },
    );
    assert!(!stderr.contains("Parallel"), "{stderr}");
    // The real mksquashfs, failing on an option it does not know: what it
    // says first, not the 200-line usage text after it.
    let stderr = assert_fails_cleanly(
        "-- -bogus-option",
        &["mksquashfs", "invalid option", "more lines"],
        |dir| run_tar2sqfs(dir, &[OUT, "--", "-bogus-option"], &rich_layer().tar()),
    );
    assert!(stderr.len() < 1000, "{stderr}");
}

// ---------------------------------------------------------------------------
// 6. What survives into the image.

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

#[test]
fn mksquashfs_gets_only_stdin_stdout_and_stderr() {
    // A descriptor the caller left open without close-on-exec, as a shell's
    // `7<FILE` does, must not reach mksquashfs.
    let dir = scratch();
    let canary = dir.path().join("leak-canary");
    std::fs::write(&canary, "secret").unwrap();
    let banner = "mksquashfs version 4.6.1 (2023/03/25)";
    let body = "for fd in /proc/$$/fd/*; do
  case $(readlink \"$fd\") in *leak-canary*) echo \"inherited $fd\" >&2; exit 1;; esac
done
cat >/dev/null; echo image >\"$2\"";
    let fake = fake_mksquashfs(dir.path(), banner, body);
    let mut command = Command::new("sh");
    command
        .args(["-c", "exec 7<\"$0\"; exec \"$@\""])
        .arg(&canary)
        .arg(bin("tar2sqfs"))
        .args(["--mksquashfs", fake.to_str().unwrap(), OUT])
        .current_dir(dir.path());
    let out = run_with_stdin(command, &small_layer().tar());
    assert!(out.status.success(), "tar2sqfs failed: {}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join(OUT)).unwrap(), b"image\n");
}

// ---------------------------------------------------------------------------
// 7. The tree tar2dir and tar2erofs build from the same stream, or the same
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
