//! Hostile tar headers through every reader: `oci-merge`, `tar2dir`,
//! `tar2sqfs` and `tar2erofs`.
//!
//! A layer of a few hundred bytes can describe a path of 60,000
//! components, a name of megabytes, a sparse map of hundreds of thousands
//! of regions, or an owner `chown` reads as "unchanged". Each reader must
//! refuse it with one line naming the limit, exit non-zero, leave nothing
//! behind as if it were good, and stay small while it does (its peak
//! memory, as GNU time measures it, under [`MEMORY_CEILING_KIB`]). What sits
//! exactly at each limit must go through all of them.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use support::{bin, Scratch};
use testkit::{Layer, Raw};

/// Peak resident memory any reader may reach on these layers (they were
/// 3.7 to 5.3 GB before the limits).
const MEMORY_CEILING_KIB: u64 = 200 << 10;
/// How long a reader may take on one of them (a 200,000-region map took
/// 71 s before).
const TIME_CEILING: Duration = Duration::from_secs(30);

/// How a reader ended, and the most memory it (and the children it
/// waited for: mksquashfs, mkfs.erofs) held.
struct Measured {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    max_rss_kib: u64,
    took: Duration,
}

/// Runs `program ARGS` with `stdin` under GNU time (`-f %M`, the peak
/// RSS from `wait4`), killed past [`TIME_CEILING`]. Not `wait4` here: a
/// child spawned from this test process inherits its high-water mark
/// (the layers it holds) until it execs, and `ru_maxrss` keeps it; GNU
/// time forks its child from its own small image.
fn measure(program: &Path, args: &[&OsStr], stdin: &[u8]) -> Measured {
    let rss = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M", "-o"])
        .arg(rss.path())
        // --foreground: timeout kills the reader alone and waits for it,
        // so its peak still counts.
        .args(["timeout", "--foreground", "-s", "KILL"])
        .arg(TIME_CEILING.as_secs().to_string())
        .arg(program)
        .args(args);
    let start = Instant::now();
    let out = support::run_with_stdin(command, stdin);
    let took = start.elapsed();
    // With a failing child, time writes "Command exited with ..." first.
    let report = std::fs::read_to_string(rss.path()).unwrap();
    let max_rss_kib = report
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time (scripts/install-deps) said {report:?}"));
    Measured {
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        max_rss_kib,
        took,
    }
}

// ---------------------------------------------------------------------------
// The readers.

/// One reader, run on a layer tar in `scratch`.
#[derive(Debug, Clone, Copy)]
enum Reader {
    Merge,
    Dir,
    Squashfs,
    Erofs,
}

const READERS: [Reader; 4] = [Reader::Merge, Reader::Dir, Reader::Squashfs, Reader::Erofs];

impl Reader {
    fn program(self) -> &'static str {
        match self {
            Reader::Merge => "oci-merge",
            Reader::Dir => "tar2dir",
            Reader::Squashfs => "tar2sqfs",
            Reader::Erofs => "tar2erofs",
        }
    }

    /// Its file in `scratch`: the layer the merge reads (it writes to
    /// stdout), or what the others make.
    fn file(self, scratch: &Scratch) -> PathBuf {
        scratch.path(match self {
            Reader::Merge => "layer.tar.gz",
            Reader::Dir => "rootfs",
            Reader::Squashfs => "rootfs.sqfs",
            Reader::Erofs => "rootfs.erofs",
        })
    }

    /// Runs it on `tar`: the merge reads it as a gzipped layer file, the
    /// others as a stream on stdin.
    fn run(self, scratch: &Scratch, tar: &[u8]) -> Measured {
        let file = self.file(scratch);
        let stdin = match self {
            Reader::Merge => {
                std::fs::write(&file, testkit::gzip(tar)).unwrap();
                &[][..]
            }
            _ => tar,
        };
        measure(&bin(self.program()), &[file.as_os_str()], stdin)
    }
}

// ---------------------------------------------------------------------------
// Over the limits.

/// A GNU sparse member whose map lists `count` empty regions a byte
/// apart (each costs a reader what a region of data does).
fn gnu_sparse_map(count: u64) -> Vec<u8> {
    let regions: Vec<(u64, u64)> = (0..count).map(|i| (i, 0)).collect();
    Layer::new().gnu_sparse("f", count - 1, &regions, b"").tar()
}

/// Each hostile layer, and the words its error must end with.
fn hostile_layers() -> Vec<(&'static str, Vec<u8>, String)> {
    let big = vec![b'a'; 2 << 20];
    let over = |what: &str, found: &str, limit: u64| {
        format!("{what} {found}, more than the limit of {limit}")
    };
    vec![
        (
            "a path of 60,000 components",
            Layer::new().file(&("a/".repeat(59_999) + "f"), b"").tar(),
            over("path has", "60000 components", 2048),
        ),
        (
            "a 2 MiB GNU long name",
            Layer::new()
                .raw(
                    &big,
                    Raw {
                        gnu_long_name: true,
                        ..Raw::default()
                    },
                )
                .tar(),
            over("GNU long name is", "2097153 bytes", 1 << 20),
        ),
        (
            "a 2 MiB PAX header",
            Layer::new()
                .raw(
                    b"f",
                    Raw {
                        pax: vec![("comment", &big)],
                        ..Raw::default()
                    },
                )
                .tar(),
            over("PAX extended header is", "2097169 bytes", 1 << 20),
        ),
        (
            "a GNU sparse map of 200,000 regions",
            gnu_sparse_map(200_000),
            "sparse map has more regions than the limit of 65536".to_owned(),
        ),
        (
            "a 256-byte name",
            Layer::new()
                .file(&format!("d/{}", "n".repeat(256)), b"")
                .tar(),
            over("path has a component of", "256 bytes", 255),
        ),
        (
            "a 4096-byte symlink target",
            Layer::new().symlink("l", &"t".repeat(4096)).tar(),
            over("symlink target is", "4096 bytes long", 4095),
        ),
        (
            "uid 4294967295",
            Layer::new()
                .raw(
                    b"f",
                    Raw {
                        uid: 4_294_967_295,
                        ..Raw::default()
                    },
                )
                .tar(),
            over("uid 4294967295 is", "out of range", 4_294_967_294),
        ),
        (
            "gid 2^32 in a PAX record",
            Layer::new()
                .raw(
                    b"f",
                    Raw {
                        pax: vec![("gid", b"4294967296")],
                        ..Raw::default()
                    },
                )
                .tar(),
            over("gid 4294967296 is", "out of range", 4_294_967_294),
        ),
        (
            "a 256-byte xattr name",
            Layer::new()
                .raw(
                    b"f",
                    Raw {
                        pax: vec![(&format!("SCHILY.xattr.user.{}", "n".repeat(251)), b"v")],
                        ..Raw::default()
                    },
                )
                .tar(),
            over("xattr name is", "256 bytes long", 255),
        ),
        (
            "a 65,537-byte xattr value",
            Layer::new()
                .raw(
                    b"f",
                    Raw {
                        pax: vec![("SCHILY.xattr.user.big", &[b'v'; 65_537])],
                        ..Raw::default()
                    },
                )
                .tar(),
            over("xattr value is", "65537 bytes long", 65_536),
        ),
    ]
}

/// The failure every reader must give: non-zero, one short line that
/// names the limit, small and quick.
fn assert_refused(what: &str, reader: Reader, run: &Measured, want: &str) {
    let program = reader.program();
    let context = format!("{what}: {program}");
    assert!(!run.status.success(), "{context}: exit 0");
    assert_eq!(run.status.code(), Some(1), "{context}: {:?}", run.status);
    let line = run.stderr.trim_end();
    assert_eq!(
        line.lines().count(),
        1,
        "{context}: not one line: {line:.2000}"
    );
    assert!(
        line.starts_with(&format!("{program}: error: ")) && line.ends_with(want),
        "{context}: {line:.2000}"
    );
    assert!(line.len() < 400, "{context}: a {} byte message", line.len());
    assert!(
        run.max_rss_kib < MEMORY_CEILING_KIB,
        "{context}: {} MiB at the peak",
        run.max_rss_kib >> 10
    );
    assert!(run.took < TIME_CEILING, "{context}: took {:?}", run.took);
}

/// Nothing left that looks like a result: no end-of-archive marker on
/// the merge's stdout, no image or directory, no staged leftovers.
fn assert_nothing_left(what: &str, reader: Reader, scratch: &Scratch, run: &Measured) {
    let context = format!("{what}: {}", reader.program());
    match reader {
        Reader::Merge => {
            assert!(
                !testkit::has_end_marker(&run.stdout),
                "{context}: a whole tar"
            )
        }
        _ => assert!(!reader.file(scratch).exists(), "{context}: left its output"),
    }
    let left: Vec<_> = std::fs::read_dir(scratch.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "layer.tar.gz")
        .collect();
    assert!(left.is_empty(), "{context}: left {left:?}");
}

#[test]
fn every_reader_refuses_headers_over_a_limit_quickly_and_small() {
    for (what, tar, want) in hostile_layers() {
        for reader in READERS {
            let scratch = Scratch::new();
            let run = reader.run(&scratch, &tar);
            assert_refused(what, reader, &run, &want);
            assert_nothing_left(what, reader, &scratch, &run);
        }
    }
}

/// A long name in a message is its start and end, whatever its length.
#[test]
fn a_deep_name_is_quoted_shortened() {
    let tar = Layer::new().file(&("a/".repeat(59_999) + "f"), b"").tar();
    let shortened = format!("\"{}…/{}f\"", "a/".repeat(32), "a/".repeat(15));
    for reader in READERS {
        let run = reader.run(&Scratch::new(), &tar);
        assert!(
            run.stderr.contains(&shortened),
            "{:?}: {}",
            reader,
            run.stderr
        );
    }
}

/// Every reader holds the xattrs of directories until the end of its
/// stream (the merge writes directories last, the sinks set their
/// metadata last): 64 MiB of them in all, not a gigabyte.
#[test]
fn every_reader_refuses_more_directory_xattrs_than_it_may_hold() {
    let value = vec![b'v'; 60_000];
    let layer = (0..1200).fold(Layer::new(), |layer, i| {
        layer.raw(
            format!("d{i:04}").as_bytes(),
            Raw {
                kind: tar::EntryType::Directory,
                mode: 0o755,
                pax: vec![("SCHILY.xattr.user.big", &value)],
                ..Raw::default()
            },
        )
    });
    let tar = layer.tar();
    let what = "72 MB of directory xattrs";
    for reader in READERS {
        let scratch = Scratch::new();
        let run = reader.run(&scratch, &tar);
        assert_refused(what, reader, &run, "more than the limit of 67108864");
        assert!(
            run.stderr.contains(
                "the directories' PAX records (xattrs), held until the end of the stream, pass"
            ),
            "{what}: {}: {}",
            reader.program(),
            run.stderr
        );
        assert_nothing_left(what, reader, &scratch, &run);
    }
}

/// Paths within the limits can still be deep: a hundred chains 2047
/// directories deep (a 6 KB layer) once took the merge to 600 MB, as it
/// built the path of every directory to sort them. Its memory is the
/// table of paths now; the 700 MB of directory entries it writes stream.
#[test]
fn the_merge_of_deep_paths_within_the_limits_stays_small() {
    let chain = "a/".repeat(2045) + "f";
    let layer = (0..100).fold(Layer::new(), |layer, i| {
        layer.file(&format!("c{i:02}/{chain}"), b"")
    });
    let scratch = Scratch::new();
    let file = Reader::Merge.file(&scratch);
    std::fs::write(&file, testkit::gzip(&layer.tar())).unwrap();
    let merge = bin("oci-merge");
    let discard = ["-c", "exec \"$0\" \"$1\" > /dev/null"].map(OsStr::new);
    let args = [&discard[..], &[merge.as_os_str(), file.as_os_str()]].concat();
    let run = measure(Path::new("/bin/sh"), &args, b"");
    assert!(run.status.success(), "oci-merge: {}", run.stderr);
    assert!(
        run.max_rss_kib < MEMORY_CEILING_KIB,
        "oci-merge: {} MiB at the peak",
        run.max_rss_kib >> 10
    );
}

// ---------------------------------------------------------------------------
// At the limits.

const DEEPEST: usize = 2048;

fn longest_name() -> String {
    "n".repeat(255)
}

fn longest_target() -> String {
    "t".repeat(4095)
}

/// 2048 components in 4095 bytes: at the depth and length limits at once.
fn deepest_path() -> String {
    "a/".repeat(DEEPEST - 1) + "f"
}

/// One entry at each limit.
fn layer_at_the_limits() -> Vec<u8> {
    let sparse_regions: Vec<(u64, u64)> = (0..1 << 16).map(|i| (i, 0)).collect();
    Layer::new()
        .file(&longest_name(), b"name")
        .symlink("l", &longest_target())
        .file(&deepest_path(), b"deep")
        .raw(
            b"u",
            Raw {
                uid: 4_294_967_294,
                gid: 4_294_967_294,
                ..Raw::default()
            },
        )
        .gnu_sparse("s", (1 << 16) - 1, &sparse_regions, b"")
        .tar()
}

/// What each limit-sized entry must be in a tree rooted at `root`.
fn assert_tree_at_the_limits(what: &str, root: &Path) {
    use rustix::fs::{openat, statat, AtFlags, Mode, OFlags, CWD};
    let entry = |name: &str| std::fs::symlink_metadata(root.join(name));
    let name = entry(&longest_name()).unwrap_or_else(|e| panic!("{what}: the long name: {e}"));
    assert!(name.is_file() && name.len() == 4, "{what}: {name:?}");
    let target = std::fs::read_link(root.join("l")).unwrap();
    assert_eq!(target.as_os_str().len(), 4095, "{what}: the symlink target");
    let owned = entry("u").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (owned.uid(), owned.gid()),
        (4_294_967_294, 4_294_967_294),
        "{what}"
    );
    assert_eq!(
        entry("s").unwrap().len(),
        (1 << 16) - 1,
        "{what}: the sparse file"
    );
    // The deepest file is past PATH_MAX from here: walk down to it.
    let mut dir = openat(CWD, root, OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..DEEPEST - 1 {
        dir = openat(
            &dir,
            "a",
            OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap_or_else(|e| panic!("{what}: the deep path: {e}"));
    }
    let deep = statat(&dir, "f", AtFlags::SYMLINK_NOFOLLOW).unwrap();
    assert_eq!(deep.st_size, 4, "{what}: the deepest file");
}

/// An image mounted read-only through a loop device while `check` runs.
fn with_mounted(image: &Path, fstype: &str, check: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let mount = Command::new("mount")
        .args(["-t", fstype, "-o", "ro,loop"])
        .arg(image)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        mount.status.success(),
        "mount (root needed): {}",
        support::stderr(&mount)
    );
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(dir.path())));
    let umount = Command::new("umount").arg(dir.path()).status().unwrap();
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
    assert!(umount.success(), "umount {}", dir.path().display());
}

#[test]
fn entries_at_each_limit_go_through_every_reader() {
    let layer = layer_at_the_limits();
    let scratch = Scratch::new();
    let merged = Reader::Merge.run(&scratch, &layer);
    assert!(merged.status.success(), "oci-merge: {}", merged.stderr);
    let entries = testkit::read_tar(&merged.stdout);
    let find = |path: &str| entries.iter().find(|e| e.path == path);
    assert!(
        find(&longest_name()).is_some(),
        "oci-merge lost the long name"
    );
    assert_eq!(find("l").unwrap().link, longest_target());
    assert!(
        find(&deepest_path()).is_some(),
        "oci-merge lost the deep path"
    );
    assert_eq!(
        find("u").map(|e| (e.uid, e.gid)),
        Some((4_294_967_294, 4_294_967_294))
    );
    for reader in [Reader::Dir, Reader::Squashfs, Reader::Erofs] {
        let scratch = Scratch::new();
        let run = reader.run(&scratch, &merged.stdout);
        let what = reader.program();
        assert!(run.status.success(), "{what}: {}", run.stderr);
        assert!(
            run.max_rss_kib < MEMORY_CEILING_KIB,
            "{what}: {} KiB",
            run.max_rss_kib
        );
        let output = reader.file(&scratch);
        match reader {
            Reader::Squashfs => with_mounted(&output, "squashfs", |root| {
                assert_tree_at_the_limits(what, root)
            }),
            Reader::Erofs => with_mounted(&output, "erofs", |root| {
                assert_tree_at_the_limits(what, root)
            }),
            _ => assert_tree_at_the_limits(what, &output),
        }
    }
}

// ---------------------------------------------------------------------------
// The limits are stated.

#[test]
fn every_reader_states_the_limits_in_its_help() {
    for reader in READERS {
        let out = Command::new(bin(reader.program()))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let limits = help
            .find("\nLIMITS\n")
            .unwrap_or_else(|| panic!("{}: no LIMITS section in --help", reader.program()));
        assert!(limits < help.find("\nEXIT STATUS\n").unwrap(), "{help}");
        let section = &help[limits..];
        for value in ["4095", "2048", "255", "1048576", "65536", "4294967294"] {
            assert!(
                section.contains(value),
                "{}: {value} not stated",
                reader.program()
            );
        }
    }
}

/// The sinks keep the tree a stream lists (to build the same tree, or
/// refuse alike): a node per path, not every prefix in full. Keyed by
/// whole paths, ten chains 2046 deep held 42 MB of prefixes (and two
/// hundred took tar2sqfs to 2 GB); as a tree they hold a few megabytes.
/// The image builders are stand-ins that read the stream and make an
/// empty image: what mksquashfs and mkfs.erofs hold of such a tree (a
/// few hundred megabytes) is theirs, not the stream check's.
#[test]
fn the_sinks_hold_deep_paths_within_the_limits_small() {
    const CEILING_KIB: u64 = 32 << 10;
    let chain = "a/".repeat(2045) + "f";
    let tar = (0..10)
        .fold(Layer::new(), |layer, i| {
            layer.file(&format!("c{i:02}/{chain}"), b"")
        })
        .tar();
    let scratch = Scratch::new();
    let builder = stand_in_builder(&scratch);
    let runs = [
        ("tar2dir", None),
        ("tar2sqfs", Some("--mksquashfs")),
        ("tar2erofs", Some("--mkfs-erofs")),
    ];
    for (program, builder_option) in runs {
        let out = scratch.path(&format!("{program}.out"));
        let mut args = vec![out.as_os_str()];
        if let Some(option) = builder_option {
            args.extend([OsStr::new(option), builder.as_os_str()]);
        }
        let run = measure(&bin(program), &args, &tar);
        assert!(run.status.success(), "{program}: {}", run.stderr);
        assert!(
            run.max_rss_kib < CEILING_KIB,
            "{program}: {} MiB at the peak",
            run.max_rss_kib >> 10
        );
    }
}

/// A stand-in for mksquashfs and mkfs.erofs: answers their version
/// options, reads the stream to its end and makes each path argument in
/// an existing directory an empty file (the image it was asked for).
fn stand_in_builder(scratch: &Scratch) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.path("builder");
    let script = r#"#!/bin/sh
case "$1" in
-version) echo 'mksquashfs version 4.6.1 (2023/03/25)'; exit 0 ;;
--version) echo 'mkfs.erofs (erofs-utils) 1.9.4'; exit 0 ;;
esac
cat > /dev/null
for arg; do
    case "$arg" in -*) ;; */*) [ -d "${arg%/*}" ] && : > "$arg" ;; esac
done
"#;
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
