//! End-to-end tests of `tar2dir`: the built binary fed hostile, truncated
//! and faithful tar streams on stdin.
//!
//! Every hostile stream runs twice, with the `openat2(RESOLVE_IN_ROOT)`
//! resolver and with the component walk (`--no-openat2`), in an arena that
//! holds sentinel trees where an escape would land:
//!
//! ```text
//! outer/                      (a fresh temporary directory)
//!   sentinel/{keep, dir/}     reached by `../../sentinel` from the tree's root
//!   scratch/
//!     sentinel/{keep, dir/}   reached by `../sentinel`
//!     dest                    what tar2dir creates (via .dest.tar2dir-*)
//! ```
//!
//! After each run the sentinels must be unchanged (content, mode, owner,
//! times, xattrs, inode change time, link count), `outer/` and `scratch/`
//! must hold nothing new besides `dest` (no leftover temporary directory),
//! `/etc/passwd` must be untouched and no probe file may exist in `/`,
//! `/tmp` or the arena's parent. Each case states the outcome it expects
//! from each resolver, a tree confined to `dest` with the content the case
//! names or a clean failure that leaves nothing, and why it fails.

mod support;

use sha2::Digest as _;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};
use support::snapshot::{assert_same_tree, snapshot, Compare};
use support::tree_rules;
use support::{bin, cmd, run_with_stdin, sh, stderr};
use tar::EntryType;
use testkit::{noise, Layer, Raw};

/// The name hostile entries try to create outside the tree.
const PROBE: &str = "t2d-escape-probe";
/// What the sentinel files hold.
const KEEP: &[u8] = b"sentinel bytes: keep me\n";
/// What hostile entries try to write.
const EVIL: &[u8] = b"EVIL\n";

// ---------------------------------------------------------------------------
// Running tar2dir.

#[derive(Debug, Clone, Copy)]
enum Resolver {
    Openat2,
    Walk,
}

const RESOLVERS: [Resolver; 2] = [Resolver::Openat2, Resolver::Walk];

impl Resolver {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Resolver::Openat2 => &[],
            Resolver::Walk => &["--no-openat2"],
        }
    }
}

/// Runs `tar2dir FLAGS DEST` with `tar` on stdin.
fn tar2dir(dest: &Path, flags: &[&str], tar: &[u8]) -> Output {
    let mut command = cmd("tar2dir");
    command.args(flags).arg(dest);
    run_with_stdin(command, tar)
}

/// Runs tar2dir as `nobody` (65534:65534, no supplementary groups).
fn tar2dir_as_nobody(dest: &Path, flags: &[&str], tar: &[u8]) -> Output {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin("tar2dir"))
        .args(flags)
        .arg(dest);
    run_with_stdin(command, tar)
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// These tests chown, mknod and switch users (setpriv): they need root,
/// and fail rather than skip without it. `scripts/test` and CI run as root.
fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root: run the tests as root (scripts/test does)"
    );
}

/// The running test's name (test threads are named after their test).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("tar2dir test")
        .to_owned()
}

/// Asserts a failed run: non-zero exit and exactly one `tar2dir: error:`
/// line on stderr.
fn assert_error_line(what: &str, out: &Output) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: tar2dir succeeded: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("tar2dir: error: "),
        "{what}: expected one `tar2dir: error:` line on stderr, got {err:?}"
    );
}

/// Asserts a successful run: exit 0 and at most one warning line.
fn assert_success(what: &str, out: &Output) {
    let err = stderr(out);
    assert!(
        out.status.success(),
        "{what}: tar2dir failed ({}): {err}",
        out.status
    );
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() <= 1 && lines.iter().all(|l| l.starts_with("tar2dir: warning: ")),
        "{what}: unexpected stderr {err:?}"
    );
}

/// Sorted names in a directory.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// The arena and what must not change in it.

struct Arena {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
}

impl Arena {
    fn new() -> Arena {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().canonicalize().unwrap();
        make_sentinel(&outer.join("sentinel"));
        std::fs::create_dir(outer.join("scratch")).unwrap();
        make_sentinel(&outer.join("scratch/sentinel"));
        let arena = Arena { _tmp: tmp, outer };
        for probe in arena.probes() {
            assert!(
                std::fs::symlink_metadata(&probe).is_err(),
                "{} exists before the test: an earlier run escaped?",
                probe.display()
            );
        }
        arena
    }

    fn scratch(&self) -> PathBuf {
        self.outer.join("scratch")
    }

    fn dest(&self) -> PathBuf {
        self.scratch().join("dest")
    }

    /// Where a `PROBE` entry lands if it escapes through `..` or `/`.
    fn probes(&self) -> Vec<PathBuf> {
        let parent = self.outer.parent().unwrap();
        [Path::new("/"), Path::new("/tmp"), parent]
            .iter()
            .map(|dir| dir.join(PROBE))
            .collect()
    }

    /// Everything outside `dest` that an escape could change.
    fn outside(&self) -> BTreeMap<String, String> {
        let mut state = BTreeMap::new();
        for (label, dir) in [
            ("outer", self.outer.join("sentinel")),
            ("scratch", self.scratch().join("sentinel")),
        ] {
            for (path, what) in snapshot(&dir, Compare::ALL) {
                state.insert(format!("{label} sentinel/{path}"), what);
            }
            for rel in ["", "keep", "dir"] {
                state.insert(
                    format!("{label} sentinel/{rel} (stat)"),
                    stamp(&dir.join(rel)),
                );
            }
        }
        state.insert("outer/ holds".into(), names(&self.outer).join(" "));
        let passwd = Path::new("/etc/passwd");
        let content = std::fs::read(passwd).unwrap();
        state.insert(
            "/etc/passwd".into(),
            format!(
                "{} sha256 {:x}",
                stamp(passwd),
                sha2::Sha256::digest(&content)
            ),
        );
        for probe in self.probes() {
            let exists = std::fs::symlink_metadata(&probe).is_ok();
            state.insert(probe.display().to_string(), format!("exists {exists}"));
        }
        state
    }
}

/// A sentinel tree: `keep` (known bytes and an xattr) and `dir/`, with
/// owner, modes and times no unpack would produce.
fn make_sentinel(dir: &Path) {
    std::fs::create_dir_all(dir.join("dir")).unwrap();
    std::fs::write(dir.join("keep"), KEEP).unwrap();
    xattr::set(dir.join("keep"), "user.sentinel", b"1").unwrap();
    for (path, mode) in [
        (dir.join("keep"), 0o640),
        (dir.join("dir"), 0o750),
        (dir.to_path_buf(), 0o755),
    ] {
        std::os::unix::fs::chown(&path, Some(4321), Some(8765)).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        File::open(&path)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .unwrap();
    }
}

/// What `stat` says, change time and link count included.
fn stamp(path: &Path) -> String {
    let m = std::fs::symlink_metadata(path).unwrap();
    format!(
        "mode {:o} {}:{} size {} mtime {}.{} ctime {}.{} nlink {} ino {}",
        m.mode(),
        m.uid(),
        m.gid(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.nlink(),
        m.ino()
    )
}

// ---------------------------------------------------------------------------
// Hostile streams.

/// What a hostile stream must do.
#[derive(Clone, Copy)]
enum Expect {
    /// Succeed; the check looks inside the unpacked tree.
    Unpacked(fn(&Path)),
    /// Fail cleanly.
    Refused,
    /// Fail cleanly, with this text in the error message.
    RefusedWith(&'static str),
}

/// How the listing every sink shares (`sink/listing.rs`) refuses a path.
const PARENT_IS_A_SYMLINK: &str = "is a symlink, not a directory";
const LISTED_TWICE: &str = "listed twice";
const DIRECTORY_ALREADY: &str = "is a directory already";
const NO_EARLIER_ENTRY: &str = "is not an earlier entry";

/// Runs `tar2dir scratch/dest` on the stream `tar(scratch)` (`scratch` is
/// absolute, for absolute symlinks) with both resolvers, each in a fresh
/// arena, and checks confinement and the outcome, the same for both.
fn hostile(expect: Expect, tar: impl Fn(&Path) -> Vec<u8>) {
    require_root("hostile stream");
    let case = test_name();
    for resolver in RESOLVERS {
        let what = format!("{case} [{resolver:?}]");
        let arena = Arena::new();
        let before = arena.outside();
        let out = tar2dir(&arena.dest(), resolver.flags(), &tar(&arena.scratch()));
        assert_same_tree(&arena.outside(), &before, &format!("{what}: outside dest"));
        let unpacked = out.status.success();
        eprintln!(
            "{what}: {} {}",
            if unpacked { "unpacked" } else { "refused" },
            stderr(&out).trim_end()
        );
        if unpacked {
            assert_success(&what, &out);
            assert_eq!(names(&arena.scratch()), ["dest", "sentinel"], "{what}");
            let root = std::fs::symlink_metadata(arena.dest()).unwrap();
            assert!(root.is_dir(), "{what}: dest is not a directory");
            assert_eq!(
                (root.mode() & 0o7777, root.uid(), root.gid()),
                (0o755, 0, 0),
                "{what}: dest's own mode and owner"
            );
        } else {
            assert_error_line(&what, &out);
            assert_eq!(
                names(&arena.scratch()),
                ["sentinel"],
                "{what}: the failure left something behind"
            );
        }
        match (expect, unpacked) {
            (Expect::Unpacked(check), true) => check(&arena.dest()),
            (Expect::Refused, false) => {}
            (Expect::RefusedWith(reason), false) => assert!(
                stderr(&out).contains(reason),
                "{what}: refused, but not with {reason:?}: {}",
                stderr(&out)
            ),
            (Expect::Unpacked(_), false) => panic!("{what}: expected success: {}", stderr(&out)),
            (Expect::Refused | Expect::RefusedWith(_), true) => {
                panic!("{what}: expected a refusal, but it unpacked")
            }
        }
    }
}

fn assert_file(path: &Path, content: &[u8]) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    assert_eq!(std::fs::read(path).unwrap(), content, "{}", path.display());
}

fn assert_symlink(path: &Path, target: &str) {
    let link = std::fs::read_link(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(link, Path::new(target), "{}", path.display());
}

fn abs(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// A raw entry of `kind` with `link` and extra PAX records.
fn entry<'a>(kind: EntryType, link: &'a [u8], pax: Vec<(&'a str, &'a [u8])>) -> Raw<'a> {
    Raw {
        kind,
        link,
        pax,
        mode: if kind == EntryType::Symlink {
            0o777
        } else {
            0o644
        },
        ..Raw::default()
    }
}

// -- `..` and absolute names.

#[test]
fn dotdot_file_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new()
            .file("ok", b"ok")
            .file(&format!("../{PROBE}"), EVIL)
            .tar()
    });
}

#[test]
fn dotdot_inside_a_path_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new()
            .dir("a")
            .file(&format!("a/../../{PROBE}"), EVIL)
            .tar()
    });
}

#[test]
fn absolute_name_lands_inside() {
    hostile(
        Expect::Unpacked(|d| assert_file(&d.join(PROBE).join("file"), EVIL)),
        |_| Layer::new().file(&format!("/{PROBE}/file"), EVIL).tar(),
    );
}

#[test]
fn pax_path_with_dotdot_overriding_a_harmless_name_is_refused() {
    hostile(Expect::Refused, |_| {
        let path = format!("../{PROBE}");
        Layer::new()
            .raw(
                b"harmless",
                Raw {
                    data: EVIL,
                    pax: vec![("path", path.as_bytes())],
                    ..Raw::default()
                },
            )
            .tar()
    });
}

#[test]
fn gnu_long_name_with_dotdot_is_refused() {
    hostile(Expect::Refused, |_| {
        let name = format!("../{}/{PROBE}", "d".repeat(110));
        Layer::new()
            .raw(
                name.as_bytes(),
                Raw {
                    data: EVIL,
                    gnu_long_name: true,
                    ..Raw::default()
                },
            )
            .tar()
    });
}

#[test]
fn device_node_named_dotdot_null_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new()
            .raw(b"../null", entry(EntryType::Char, b"", vec![]))
            .tar()
    });
}

#[test]
fn pax_path_with_a_nul_byte_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new()
            .raw(
                b"harmless",
                Raw {
                    data: EVIL,
                    pax: vec![("path", b"a\0/../../x")],
                    ..Raw::default()
                },
            )
            .tar()
    });
}

#[test]
fn root_entries_as_symlinks_to_slash_are_ignored() {
    hostile(
        Expect::Unpacked(|d| {
            assert_file(&d.join("tmp").join(PROBE), EVIL);
            assert_eq!(names(d), ["tmp"]);
        }),
        |_| {
            Layer::new()
                .symlink(".", "/")
                .symlink("./", "/")
                .raw(b"/", entry(EntryType::Symlink, b"/tmp", vec![]))
                .file(&format!("tmp/{PROBE}"), EVIL)
                .tar()
        },
    );
}

#[test]
fn name_with_newline_and_non_utf8_bytes_lands_inside() {
    const NAME: &[u8] = b"new\nline\xff\xfe/\x80name\n";
    hostile(
        Expect::Unpacked(|d| assert_file(&d.join(OsStr::from_bytes(NAME)), EVIL)),
        |_| {
            Layer::new()
                .raw(
                    NAME,
                    Raw {
                        data: EVIL,
                        ..Raw::default()
                    },
                )
                .tar()
        },
    );
}

// -- Writing through symlinks in a parent path.
//
// Both image builders refuse an entry whose parent is a symlink, so
// tar2dir does too (the listing every sink shares), before either
// resolver sees the path: the component walk would refuse it anyway
// (ENOTDIR), and `openat2(RESOLVE_IN_ROOT)` would follow it as if the tree
// were `/`. Each stream runs as is (the symlink's target does not exist
// inside the tree) and after a decoy `sentinel/{dir/}` inside the tree,
// where following the symlink would have landed.

/// Runs `hostile` on `entries(scratch, base)` with an empty base and with
/// the decoy: refused each time, for the symlink in the parent path.
fn through_symlink(entries: impl Fn(&Path, Layer) -> Layer) {
    let refused = Expect::RefusedWith(PARENT_IS_A_SYMLINK);
    hostile(refused, |s| entries(s, Layer::new()).tar());
    let base = Layer::new().dir("sentinel").dir("sentinel/dir");
    hostile(refused, |s| entries(s, base.clone()).tar());
}

#[test]
fn file_through_a_relative_symlink_to_the_sentinel() {
    through_symlink(|_, l| l.symlink("x", "../../sentinel").file("x/keep", EVIL));
}

#[test]
fn file_through_a_chain_of_symlinks() {
    through_symlink(|_, l| {
        l.symlink("a", "b")
            .symlink("b", "c")
            .symlink("c", "../sentinel")
            .file("a/keep", EVIL)
    });
}

#[test]
fn file_through_a_symlink_climbing_past_the_root() {
    through_symlink(|_, l| l.symlink("x", "../../..").file(&format!("x/{PROBE}"), EVIL));
}

#[test]
fn file_through_a_symlink_to_slash() {
    through_symlink(|_, l| l.symlink("x", "/").file(&format!("x/tmp/{PROBE}"), EVIL));
}

#[test]
fn file_through_an_absolute_symlink_to_the_sentinel() {
    through_symlink(|scratch, l| {
        l.symlink("x", &abs(&scratch.join("sentinel")))
            .file("x/keep", EVIL)
    });
    through_symlink(|_, l| l.symlink("x", "/sentinel").file("x/keep", EVIL));
}

#[test]
fn file_through_a_proc_magic_link() {
    through_symlink(|scratch, l| {
        let target = format!("/proc/self/root{}", abs(&scratch.join("sentinel")));
        l.symlink("x", &target).file("x/keep", EVIL)
    });
    through_symlink(|_, l| {
        l.symlink("x", "/proc/self/cwd/sentinel")
            .file("x/keep", EVIL)
    });
}

#[test]
fn file_through_a_symlink_loop() {
    through_symlink(|_, l| l.symlink("a", "b").symlink("b", "a").file("a/keep", EVIL));
}

#[test]
fn file_through_a_pax_linkpath_symlink() {
    through_symlink(|_, l| {
        l.raw(
            b"x",
            entry(
                EntryType::Symlink,
                b"harmless",
                vec![("linkpath", b"../../sentinel")],
            ),
        )
        .file("x/keep", EVIL)
    });
}

#[test]
fn directory_through_a_symlink() {
    through_symlink(|_, l| {
        l.symlink("x", "../sentinel/dir")
            .dir_mode("x/sub", 0o777)
            .file("x/sub/f", EVIL)
    });
}

#[test]
fn symlink_through_a_symlink() {
    through_symlink(|_, l| {
        l.symlink("x", "../sentinel/dir")
            .symlink("x/evil", "/etc/passwd")
    });
}

#[test]
fn fifo_through_a_symlink() {
    through_symlink(|_, l| {
        l.symlink("x", "../sentinel/dir")
            .raw(b"x/fifo", entry(EntryType::Fifo, b"", vec![]))
    });
}

#[test]
fn hard_link_named_through_a_symlink() {
    through_symlink(|_, l| {
        l.file("f", EVIL)
            .symlink("x", "../sentinel/dir")
            .hardlink("x/link", "f")
    });
}

#[test]
fn hard_link_target_through_a_symlink() {
    // The stream makes `sentinel/keep` itself, so `x/keep` would resolve
    // inside the tree; a hard link names its target as it was listed.
    for base in [
        Layer::new(),
        Layer::new().dir("sentinel").dir("sentinel/dir"),
    ] {
        hostile(Expect::RefusedWith(NO_EARLIER_ENTRY), |_| {
            base.clone()
                .file("sentinel/keep", EVIL)
                .symlink("x", "../sentinel")
                .hardlink("h", "x/keep")
                .tar()
        });
    }
}

// -- Listing something where a symlink pointing outside is: refused, as
// the image builders cannot follow tar2dir in replacing it (mksquashfs
// keeps the first entry for a path), so nothing is ever written through
// or over it.

#[test]
fn file_over_a_symlink_to_the_sentinel_is_refused() {
    hostile(Expect::RefusedWith(LISTED_TWICE), |_| {
        Layer::new()
            .symlink("l", "../../sentinel/keep")
            .file("l", EVIL)
            .tar()
    });
    hostile(Expect::RefusedWith(LISTED_TWICE), |scratch| {
        Layer::new()
            .symlink("m", &abs(&scratch.join("sentinel/keep")))
            .file_mode("m", EVIL, 0o4755)
            .tar()
    });
}

#[test]
fn directory_over_a_symlink_to_the_sentinel_is_refused() {
    hostile(Expect::RefusedWith(LISTED_TWICE), |_| {
        Layer::new()
            .symlink("d", "../../sentinel/dir")
            .dir_mode("d", 0o700)
            .file("d/new", EVIL)
            .tar()
    });
}

#[test]
fn symlink_over_a_directory_is_refused() {
    hostile(Expect::RefusedWith(DIRECTORY_ALREADY), |_| {
        Layer::new()
            .dir("d")
            .file("d/a", EVIL)
            .symlink("d", "../sentinel/dir")
            .dir("d")
            .file("d/b", EVIL)
            .tar()
    });
}

#[test]
fn fifo_over_a_symlink_to_the_sentinel_is_refused() {
    hostile(Expect::RefusedWith(LISTED_TWICE), |_| {
        Layer::new()
            .symlink("f", "../sentinel/keep")
            .raw(
                b"f",
                Raw {
                    kind: EntryType::Fifo,
                    mode: 0o1600,
                    uid: 1234,
                    ..Raw::default()
                },
            )
            .tar()
    });
}

#[test]
fn metadata_of_a_symlink_to_the_sentinel_stays_on_the_symlink() {
    hostile(
        Expect::Unpacked(|d| {
            assert_symlink(&d.join("l"), "../sentinel/keep");
            let meta = std::fs::symlink_metadata(d.join("l")).unwrap();
            assert_eq!((meta.uid(), meta.gid(), meta.mtime()), (1234, 5678, 5));
        }),
        |_| {
            Layer::new()
                .raw(
                    b"l",
                    Raw {
                        kind: EntryType::Symlink,
                        link: b"../sentinel/keep",
                        mode: 0o7777,
                        uid: 1234,
                        gid: 5678,
                        mtime: 5,
                        pax: vec![
                            ("SCHILY.xattr.user.foo", b"bar"),
                            ("SCHILY.xattr.trusted.foo", b"bar"),
                        ],
                        ..Raw::default()
                    },
                )
                .tar()
        },
    );
}

// A directory's metadata is applied at the end: a symlink listed later
// where the directory, or one of its ancestors, is would have redirected
// it. Refused.

#[test]
fn a_symlink_over_a_directory_with_deferred_metadata_is_refused() {
    hostile(Expect::RefusedWith(DIRECTORY_ALREADY), |_| {
        Layer::new()
            .raw(
                b"x/",
                Raw {
                    kind: EntryType::Directory,
                    mode: 0o777,
                    uid: 1234,
                    mtime: 5,
                    pax: vec![("SCHILY.xattr.user.foo", b"bar")],
                    ..Raw::default()
                },
            )
            .symlink("x", "../sentinel/dir")
            .tar()
    });
}

#[test]
fn a_symlink_over_the_ancestor_of_a_directory_is_refused() {
    hostile(Expect::RefusedWith(DIRECTORY_ALREADY), |_| {
        Layer::new()
            .dir("a")
            .raw(
                b"a/dir/",
                Raw {
                    kind: EntryType::Directory,
                    mode: 0o777,
                    uid: 1234,
                    mtime: 5,
                    ..Raw::default()
                },
            )
            .symlink("a", "../sentinel")
            .tar()
    });
}

// -- Hard links.

#[test]
fn hard_link_to_etc_passwd_stays_inside() {
    // The tree has no etc/passwd, and the host's is out of reach.
    hostile(
        Expect::RefusedWith("\"etc/passwd\" is not an earlier entry"),
        |_| Layer::new().hardlink("h", "/etc/passwd").tar(),
    );
}

#[test]
fn hard_link_to_an_absolute_name_links_inside() {
    hostile(
        Expect::Unpacked(|d| {
            assert_file(&d.join("h"), EVIL);
            let (h, p) = (
                std::fs::metadata(d.join("h")).unwrap(),
                std::fs::metadata(d.join("etc/passwd")).unwrap(),
            );
            assert_eq!((h.ino(), h.nlink()), (p.ino(), 2));
        }),
        |_| {
            Layer::new()
                .file("etc/passwd", EVIL)
                .hardlink("h", "/etc/passwd")
                .tar()
        },
    );
}

#[test]
fn hard_link_to_dotdot_sentinel_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new().hardlink("h", "../sentinel/keep").tar()
    });
}

#[test]
fn hard_link_to_dotdot_is_refused() {
    hostile(Expect::Refused, |_| Layer::new().hardlink("h", "../").tar());
}

#[test]
fn hard_link_to_the_root_or_a_directory_is_refused() {
    hostile(Expect::Refused, |_| Layer::new().hardlink("h", "./").tar());
    hostile(Expect::Refused, |_| {
        Layer::new().dir("d").hardlink("h", "d").tar()
    });
}

#[test]
fn hard_link_with_an_escaping_pax_linkpath_is_refused() {
    hostile(Expect::Refused, |_| {
        Layer::new()
            .file("harmless", b"harmless")
            .raw(
                b"h",
                entry(
                    EntryType::Link,
                    b"harmless",
                    vec![("linkpath", b"../sentinel/keep")],
                ),
            )
            .tar()
    });
}

#[test]
fn hard_link_through_a_symlink_to_the_sentinel() {
    hostile(Expect::RefusedWith(NO_EARLIER_ENTRY), |_| {
        Layer::new()
            .symlink("x", "../sentinel")
            .hardlink("h", "x/keep")
            .tar()
    });
}

#[test]
fn a_hard_link_to_an_outside_symlink_is_kept_and_never_written_over() {
    hostile(
        Expect::Unpacked(|d| {
            assert_symlink(&d.join("s"), "../../sentinel/keep");
            assert_symlink(&d.join("h"), "../../sentinel/keep");
            assert_eq!(meta(d, "h").ino(), meta(d, "s").ino());
        }),
        |_| {
            Layer::new()
                .symlink("s", "../../sentinel/keep")
                .raw(
                    b"h",
                    Raw {
                        kind: EntryType::Link,
                        link: b"s",
                        mode: 0o4777,
                        uid: 1234,
                        pax: vec![("SCHILY.xattr.user.foo", b"bar")],
                        ..Raw::default()
                    },
                )
                .tar()
        },
    );
    let linked = Layer::new()
        .symlink("s", "../../sentinel/keep")
        .hardlink("h", "s");
    for over in [
        linked.clone().file("h", EVIL),
        linked.clone().dir("h").file("h/new", EVIL),
    ] {
        hostile(Expect::RefusedWith(LISTED_TWICE), |_| over.tar());
    }
}

// -- Permissions.

#[test]
fn mode_000_directory_with_files_unpacks() {
    hostile(
        Expect::Unpacked(|d| {
            let meta = std::fs::metadata(d.join("locked")).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0);
            assert_file(&d.join("locked/sub/f"), EVIL);
        }),
        |_| {
            Layer::new()
                .dir_mode("locked", 0)
                .dir_mode("locked/sub", 0)
                .file("locked/sub/f", EVIL)
                .tar()
        },
    );
}

// ---------------------------------------------------------------------------
// Faithfulness.

/// A version 2 `security.capability` value: CAP_DAC_OVERRIDE, CAP_FOWNER
/// and CAP_NET_BIND_SERVICE permitted. The first permitted byte is 0x0a, a
/// newline, which a PAX parser that splits records at newlines breaks on.
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn owned<'a>(kind: EntryType, mode: u32, mtime: u64) -> Raw<'a> {
    Raw {
        kind,
        mode,
        uid: 1234,
        gid: 5678,
        mtime,
        ..Raw::default()
    }
}

fn faithful_tar() -> Vec<u8> {
    Layer::new()
        .raw(b"./", owned(EntryType::Directory, 0o700, 7))
        // Children before their directory, as oci-merge writes them.
        .file("sub/f", b"in sub\n")
        .raw(b"sub/", owned(EntryType::Directory, 0o750, 1_500_000_000))
        .raw(
            b"suid",
            Raw {
                data: b"#!/bin/true\n",
                ..owned(EntryType::Regular, 0o4755, 1_600_000_001)
            },
        )
        .file_mode("sgid", b"sgid\n", 0o2711)
        .dir_mode("sticky", 0o1777)
        .dir_mode("sgid-dir", 0o2775)
        .raw(
            b"nanos",
            Raw {
                data: b"nanos\n",
                pax: vec![("mtime", b"1600000000.123456789")],
                ..Raw::default()
            },
        )
        .raw(
            b"link",
            Raw {
                link: b"suid",
                ..owned(EntryType::Symlink, 0o777, 1_234_567_890)
            },
        )
        .file_mode("h1", b"linked\n", 0o640)
        .hardlink("h2", "h1")
        .hardlink("sub/h3", "h1")
        .raw(b"fifo", owned(EntryType::Fifo, 0o640, 1_600_000_002))
        .raw(b"null", owned(EntryType::Char, 0o666, 1_600_000_003))
        .raw(
            b"caps",
            Raw {
                mode: 0o755,
                data: b"caps\n",
                pax: vec![
                    ("SCHILY.xattr.user.foo", b"bar"),
                    ("SCHILY.xattr.security.capability", CAPABILITY),
                    (
                        "SCHILY.xattr.security.selinux",
                        b"system_u:object_r:evil_t:s0\0",
                    ),
                ],
                ..Raw::default()
            },
        )
        .raw(
            b"opq/",
            Raw {
                kind: EntryType::Directory,
                mode: 0o755,
                pax: vec![("SCHILY.xattr.trusted.overlay.opaque", b"y")],
                ..Raw::default()
            },
        )
        .tar()
}

fn meta(dest: &Path, rel: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(dest.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (mode bits, uid, gid, mtime seconds).
fn mode_owner_mtime(dest: &Path, rel: &str) -> (u32, u32, u32, i64) {
    let m = meta(dest, rel);
    (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime())
}

#[test]
fn unpacks_contents_modes_owners_times_links_devices_and_xattrs() {
    require_root("faithfulness");
    for resolver in RESOLVERS {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("rootfs");
        let out = tar2dir(&dest, resolver.flags(), &faithful_tar());
        assert_success(&format!("{resolver:?}"), &out);
        assert_eq!(stderr(&out), "", "{resolver:?}: no warnings as root");
        let d = dest.as_path();
        let root = meta(d, "");
        assert_eq!(
            (root.mode() & 0o7777, root.uid(), root.gid()),
            (0o755, 0, 0)
        );
        assert_eq!(
            mode_owner_mtime(d, "sub"),
            (0o750, 1234, 5678, 1_500_000_000)
        );
        assert_file(&d.join("sub/f"), b"in sub\n");
        assert_eq!(
            mode_owner_mtime(d, "suid"),
            (0o4755, 1234, 5678, 1_600_000_001)
        );
        assert_file(&d.join("suid"), b"#!/bin/true\n");
        assert_eq!(mode_owner_mtime(d, "sgid").0, 0o2711);
        assert_eq!(mode_owner_mtime(d, "sticky").0, 0o1777);
        assert_eq!(mode_owner_mtime(d, "sgid-dir").0, 0o2775);
        let nanos = meta(d, "nanos");
        assert_eq!(
            (nanos.mtime(), nanos.mtime_nsec()),
            (1_600_000_000, 123_456_789)
        );
        assert_symlink(&d.join("link"), "suid");
        let link = meta(d, "link");
        assert_eq!(
            (link.uid(), link.gid(), link.mtime()),
            (1234, 5678, 1_234_567_890)
        );
        let h1 = meta(d, "h1");
        assert_eq!((h1.nlink(), h1.mode() & 0o7777), (3, 0o640));
        for other in ["h2", "sub/h3"] {
            assert_eq!(meta(d, other).ino(), h1.ino(), "{other} is not h1's inode");
        }
        assert!(meta(d, "fifo").file_type().is_fifo());
        assert_eq!(
            mode_owner_mtime(d, "fifo"),
            (0o640, 1234, 5678, 1_600_000_002)
        );
        let null = meta(d, "null");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc_makedev(1, 3));
        assert_eq!(
            mode_owner_mtime(d, "null"),
            (0o666, 1234, 5678, 1_600_000_003)
        );
        let caps = d.join("caps");
        assert_eq!(xattr::get(&caps, "user.foo").unwrap().unwrap(), b"bar");
        assert_eq!(
            xattr::get(&caps, "security.capability").unwrap().unwrap(),
            CAPABILITY
        );
        assert_ne!(
            xattr::get(&caps, "security.selinux").unwrap().as_deref(),
            Some(&b"system_u:object_r:evil_t:s0\0"[..]),
            "security.selinux from the archive was applied"
        );
        let opq = d.join("opq");
        assert_eq!(
            xattr::get(&opq, "trusted.overlay.overlay.opaque")
                .unwrap()
                .unwrap(),
            b"y"
        );
        assert_eq!(xattr::get(&opq, "trusted.overlay.opaque").unwrap(), None);
        assert_eq!(names(scratch.path()), ["rootfs"]);
    }
}

/// glibc's `makedev`.
fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

// ---------------------------------------------------------------------------
// Truncation.

/// A valid multi-entry tar of a few hundred KB and the byte offsets worth
/// cutting it at (named), all before its end-of-archive marker.
fn truncation_subject() -> (Vec<u8>, Vec<(&'static str, usize)>) {
    let long_name = format!("data/{}", "long-".repeat(30));
    let mut layer = Layer::new().dir("data");
    let after_dir = layer.tar_without_end().len();
    layer = layer.file("data/a", &noise(1, 100_037));
    let after_a = layer.tar_without_end().len();
    layer = layer.raw(
        long_name.as_bytes(),
        Raw {
            data: &noise(2, 150_000),
            pax: vec![("SCHILY.xattr.user.foo", b"bar")],
            ..Raw::default()
        },
    );
    layer = layer
        .symlink("data/l", "a")
        .hardlink("data/h", "data/a")
        .file("data/c", &noise(3, 200_000));
    let end = layer.tar_without_end().len();
    let cuts = vec![
        ("empty input", 0),
        ("inside the first header", 100),
        ("at the entry boundary after the first entry", after_dir),
        ("inside the header of data/a", after_dir + 300),
        ("at the start of data/a's data", after_dir + 512),
        ("in the middle of data/a's data", after_dir + 512 + 50_000),
        ("inside data/a's padding", after_dir + 512 + 100_037 + 10),
        ("inside the PAX header of the long name", after_a + 512 + 20),
        ("inside the last file's data", end - 100_000),
        ("at the entry boundary before the end marker", end),
        ("inside the first zero block of the end marker", end + 100),
    ];
    (layer.tar(), cuts)
}

/// Runs tar2dir on `tar` in a fresh scratch dir and asserts a clean failure.
fn assert_refused_leaving_nothing(what: &str, tar: &[u8]) {
    let scratch = tempfile::tempdir().unwrap();
    let out = tar2dir(&scratch.path().join("dest"), &[], tar);
    assert_error_line(what, &out);
    assert!(
        names(scratch.path()).is_empty(),
        "{what}: left {:?} behind",
        names(scratch.path())
    );
}

#[test]
fn truncated_streams_are_refused_and_leave_nothing() {
    let (tar, cuts) = truncation_subject();
    assert!(tar.len() > 400_000);
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    assert_success("the whole tar", &tar2dir(&dest, &[], &tar));
    assert_file(&dest.join("data/c"), &noise(3, 200_000));
    for (what, at) in cuts {
        assert_refused_leaving_nothing(&format!("cut {what} (byte {at})"), &tar[..at]);
    }
}

// A stream cut after the first zero block of the end-of-archive marker (or
// anywhere in the second one) is incomplete: the `tar` crate stops reading
// at the first zero block, so tar2dir must check the second itself.
#[test]
fn stream_cut_inside_the_second_zero_block_is_refused() {
    let (tar, _) = truncation_subject();
    let end = tar.len() - 1024;
    for (what, at) in [
        ("after the first zero block", end + 512),
        ("in the middle of the second zero block", end + 600),
        ("one byte short", end + 1023),
    ] {
        assert_refused_leaving_nothing(&format!("cut {what} (byte {at})"), &tar[..at]);
    }
}

#[test]
fn stream_ending_with_a_failed_merge_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let good = Layer::new()
        .file("etc/os-release", b"top\n")
        .file("usr/bin/tool", &noise(4, 50_000));
    let bad = Layer::new().file("base", &noise(5, 100_000)).gzip();
    std::fs::write(s.join("good.tar"), good.tar()).unwrap();
    std::fs::write(s.join("bad.tar.gz"), &bad[..bad.len() / 2]).unwrap();
    let out = sh(
        s,
        "set +o pipefail; oci-merge bad.tar.gz good.tar | tar2dir dest",
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "the pipeline succeeded: {err}");
    assert!(
        err.lines().any(|l| l.starts_with("oci-merge: ")),
        "oci-merge did not fail: {err}"
    );
    // The merge said why; tar2dir, reading its abandoned tar, fails with no
    // line of its own (one failure, one line) and leaves nothing behind.
    assert_eq!(err.lines().count(), 1, "one line for one failure: {err}");
    assert_eq!(names(s), ["bad.tar.gz", "good.tar"]);
}

// ---------------------------------------------------------------------------
// Input: a regular file or a pipe on stdin.
//
// Files of 64 KiB and more go from stdin to disk in the kernel
// (`unpack/input.rs`): `copy_file_range` when stdin is a regular file,
// `splice` when it is a pipe, after whatever the 1 MiB read buffer already
// holds. The reader's position must stay right across both, so small
// entries and hard links follow the large files.

/// Regular files (name, content) around and well above 64 KiB, with small
/// ones and odd sizes between them, in a tar of several MiB.
fn large_files() -> Vec<(String, Vec<u8>)> {
    [
        ("small-1", 1),
        ("just-below", 64 * 1024 - 1),
        ("exactly-64k", 64 * 1024),
        ("just-above", 64 * 1024 + 1),
        ("small-511", 511),
        ("odd-100003", 100_003),
        ("small-512", 512),
        ("dir/past-the-buffer", (1 << 20) + 1),
        ("dir/three-mib", 3 * (1 << 20) + 17),
        ("small-after", 700),
        ("last-large", 200_001),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(name, size))| (name.to_owned(), noise(100 + i as u64, size)))
    .collect()
}

fn large_files_tar() -> Vec<u8> {
    let mut layer = Layer::new().dir("dir");
    for (i, (name, data)) in large_files().iter().enumerate() {
        layer = layer.file(name, data);
        if i == 8 {
            // A hard link and a symlink right after the largest file.
            layer = layer
                .hardlink("dir/link-to-three-mib", "dir/three-mib")
                .symlink("dir/sym", "three-mib");
        }
    }
    layer.tar()
}

/// Asserts that `dest` holds exactly the files of `large_files()`, byte for
/// byte, and the two links.
fn assert_large_files(what: &str, dest: &Path) {
    for (name, data) in large_files() {
        let got = std::fs::read(dest.join(&name)).unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
        if let Some(at) = got.iter().zip(&data).position(|(a, b)| a != b) {
            panic!("{what}: {name} differs from byte {at} on");
        }
        assert_eq!(got.len(), data.len(), "{what}: {name}: length");
    }
    let (big, link) = (
        meta(dest, "dir/three-mib"),
        meta(dest, "dir/link-to-three-mib"),
    );
    assert_eq!(
        (link.ino(), big.nlink()),
        (big.ino(), 2),
        "{what}: hard link"
    );
    assert_symlink(&dest.join("dir/sym"), "three-mib");
    let mut expected: Vec<String> = large_files()
        .into_iter()
        .filter_map(|(name, _)| (!name.starts_with("dir/")).then_some(name))
        .chain(["dir".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(names(dest), expected, "{what}");
    assert_eq!(names(&dest.join("dir")).len(), 4, "{what}: dir/");
}

#[test]
fn unpacks_large_files_from_a_regular_file_on_stdin() {
    let tar = large_files_tar();
    assert!(tar.len() > 4 << 20);
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("input.tar");
    std::fs::write(&input, &tar).unwrap();
    let dest = scratch.path().join("from-file");
    let out = cmd("tar2dir")
        .arg(&dest)
        .stdin(File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_success("stdin a regular file", &out);
    assert_eq!(stderr(&out), "");
    assert_large_files("stdin a regular file", &dest);
    // The same stream through a pipe gives the same tree.
    let piped = scratch.path().join("from-pipe");
    assert_success("stdin a pipe", &tar2dir(&piped, &[], &tar));
    assert_same_tree(
        &snapshot(&dest, Compare::ALL),
        &snapshot(&piped, Compare::ALL),
        "a regular file and a pipe on stdin",
    );
}

#[test]
fn unpacks_large_files_from_a_pipe() {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    let out = tar2dir(&dest, &[], &large_files_tar());
    assert_success("stdin a pipe", &out);
    assert_eq!(stderr(&out), "");
    assert_large_files("stdin a pipe", &dest);
}

// ---------------------------------------------------------------------------
// Never clobber.

fn small_tar() -> Vec<u8> {
    Layer::new().dir("etc").file("etc/hostname", b"box\n").tar()
}

#[test]
fn refuses_a_non_empty_destination_and_leaves_it_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("precious"), b"mine\n").unwrap();
    let before = snapshot(scratch.path(), Compare::ALL);
    assert_error_line("non-empty dest", &tar2dir(&dest, &[], &small_tar()));
    assert_same_tree(
        &snapshot(scratch.path(), Compare::ALL),
        &before,
        "after refusing a non-empty dest",
    );
}

#[test]
fn refuses_a_destination_that_is_a_file_or_a_symlink() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    std::fs::write(s.join("file"), b"mine\n").unwrap();
    std::fs::create_dir(s.join("empty")).unwrap();
    std::os::unix::fs::symlink("empty", s.join("link")).unwrap();
    let before = snapshot(s, Compare::ALL);
    for name in ["file", "link"] {
        assert_error_line(name, &tar2dir(&s.join(name), &[], &small_tar()));
        assert_same_tree(&snapshot(s, Compare::ALL), &before, name);
    }
}

#[test]
fn replaces_an_empty_destination_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::set_permissions(&dest, Permissions::from_mode(0o700)).unwrap();
    assert_success("empty dest", &tar2dir(&dest, &[], &small_tar()));
    assert_file(&dest.join("etc/hostname"), b"box\n");
    assert_eq!(meta(&dest, "").mode() & 0o7777, 0o755);
    assert_eq!(names(scratch.path()), ["dest"]);
}

// ---------------------------------------------------------------------------
// Without root.

/// A scratch directory `nobody` may write in.
fn world_writable_scratch() -> tempfile::TempDir {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), Permissions::from_mode(0o777)).unwrap();
    scratch
}

/// A tar with one foreign-owned file, one device and one privileged xattr;
/// everything else belongs to nobody.
fn rootless_tar() -> Vec<u8> {
    let nobody = |kind, mode| Raw {
        kind,
        mode,
        uid: 65534,
        gid: 65534,
        ..Raw::default()
    };
    Layer::new()
        .raw(b"locked/", nobody(EntryType::Directory, 0))
        .raw(b"locked/sub/", nobody(EntryType::Directory, 0))
        .raw(
            b"locked/sub/f",
            Raw {
                data: b"deep\n",
                ..nobody(EntryType::Regular, 0o600)
            },
        )
        .raw(
            b"foreign",
            Raw {
                data: b"foreign\n",
                ..owned(EntryType::Regular, 0o644, 1_600_000_000)
            },
        )
        .raw(b"null", nobody(EntryType::Char, 0o666))
        .raw(
            b"caps",
            Raw {
                data: b"caps\n",
                pax: vec![("SCHILY.xattr.security.capability", CAPABILITY)],
                ..nobody(EntryType::Regular, 0o755)
            },
        )
        .tar()
}

#[test]
fn rootless_unpack_skips_what_it_cannot_do_with_one_warning() {
    require_root("rootless (setpriv)");
    let scratch = world_writable_scratch();
    let dest = scratch.path().join("dest");
    let out = tar2dir_as_nobody(&dest, &[], &rootless_tar());
    let err = stderr(&out);
    assert!(out.status.success(), "rootless unpack failed: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one warning line: {err:?}");
    for needle in [
        "tar2dir: warning: ",
        "1 ownership",
        "1 device",
        "1 extended attribute",
    ] {
        assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
    }
    let d = dest.as_path();
    assert_eq!(mode_owner_mtime(d, "").0, 0o755);
    assert_eq!(meta(d, "").uid(), 65534);
    assert_eq!(mode_owner_mtime(d, "locked").0, 0);
    assert_eq!(mode_owner_mtime(d, "locked/sub").0, 0);
    assert_file(&d.join("locked/sub/f"), b"deep\n");
    assert_eq!(
        mode_owner_mtime(d, "foreign"),
        (0o644, 65534, 65534, 1_600_000_000)
    );
    assert_file(&d.join("caps"), b"caps\n");
    assert_eq!(
        xattr::get(d.join("caps"), "security.capability").unwrap(),
        None
    );
    assert!(std::fs::symlink_metadata(d.join("null")).is_err());
    assert_eq!(names(scratch.path()), ["dest"]);
}

#[test]
fn rootless_strict_unpack_fails_and_leaves_nothing() {
    require_root("rootless (setpriv)");
    let scratch = world_writable_scratch();
    let out = tar2dir_as_nobody(&scratch.path().join("dest"), &["--strict"], &rootless_tar());
    assert_error_line("--strict as nobody", &out);
    assert!(
        names(scratch.path()).is_empty(),
        "{:?}",
        names(scratch.path())
    );
}

#[test]
fn rootless_mode_000_directories_unpack_without_warnings() {
    require_root("rootless (setpriv)");
    let scratch = world_writable_scratch();
    let dest = scratch.path().join("dest");
    let tar = Layer::new()
        .raw(
            b"locked/",
            Raw {
                kind: EntryType::Directory,
                mode: 0,
                uid: 65534,
                gid: 65534,
                ..Raw::default()
            },
        )
        .raw(
            b"locked/f",
            Raw {
                data: b"inside\n",
                uid: 65534,
                gid: 65534,
                ..Raw::default()
            },
        )
        .tar();
    let out = tar2dir_as_nobody(&dest, &[], &tar);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(mode_owner_mtime(&dest, "locked").0, 0);
    assert_file(&dest.join("locked/f"), b"inside\n");
}

// ---------------------------------------------------------------------------
// The tree tar2sqfs and tar2erofs build from the same stream, or the same
// refusal (tests/support/tree_rules.rs; tests/differential.rs compares the
// three on generated streams).

#[test]
fn streams_the_sinks_would_build_differently_are_refused() {
    require_root("the shared tree rules");
    for resolver in RESOLVERS {
        let what = format!("tar2dir [{resolver:?}]");
        tree_rules::assert_all_refused("tar2dir", &what, |dir, tar| {
            tar2dir(&dir.join("dest"), resolver.flags(), tar)
        });
    }
}

/// Unpacks `tar` as root with each resolver into a fresh directory, which
/// `check` inspects; no warning is allowed.
fn unpacks_cleanly(tar: &[u8], check: impl Fn(&Path, &str)) {
    require_root("unpacking");
    for resolver in RESOLVERS {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("dest");
        let what = format!("tar2dir [{resolver:?}]");
        let out = tar2dir(&dest, resolver.flags(), tar);
        assert_success(&what, &out);
        assert_eq!(stderr(&out), "", "{what}: no warnings as root");
        check(&dest, &what);
    }
}

#[test]
fn a_directory_listed_twice_takes_its_last_entrys_metadata() {
    let tar = tree_rules::repeated_directory().tar();
    unpacks_cleanly(&tar, tree_rules::assert_repeated_directory_merged);
}

#[test]
fn overlay_attributes_are_escaped_as_overlayfs_escapes_them() {
    let tar = tree_rules::overlay_attributes().tar();
    unpacks_cleanly(&tar, tree_rules::assert_overlay_attributes_escaped);
}

#[test]
fn user_attributes_stay_only_on_files_and_directories() {
    let tar = tree_rules::user_attributes_on_special_files().tar();
    unpacks_cleanly(&tar, tree_rules::assert_user_attributes_only_on_files);
}

#[test]
fn symlinks_are_0777_whatever_their_entry_says() {
    let tar = tree_rules::symlink_with_a_mode().tar();
    unpacks_cleanly(&tar, tree_rules::assert_symlink_is_0777);
}

/// Directories the stream never lists (the parents of `a/b/f`) are made
/// as the image builders make them: 0755 root:root, with
/// SOURCE_DATE_EPOCH's time or 0, whatever the umask and a setgid
/// directory above them would give.
#[test]
fn directories_the_stream_does_not_list_are_0755_root_owned_at_source_date_epoch() {
    require_root("ownership");
    let tar = Layer::new()
        .raw(b"top/", owned(EntryType::Directory, 0o2775, 1_500_000_000))
        .file("top/a/b/f", b"f")
        .tar();
    for (epoch, mtime) in [(Some("1700000000"), 1_700_000_000), (None, 0)] {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("dest");
        let mut command = Command::new("sh");
        command
            .args(["-c", "umask 077; exec \"$@\"", "sh"])
            .arg(bin("tar2dir"))
            .arg(&dest)
            .env_remove("SOURCE_DATE_EPOCH");
        if let Some(epoch) = epoch {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        let out = run_with_stdin(command, &tar);
        assert_success("implicit directories", &out);
        for dir in ["top/a", "top/a/b"] {
            assert_eq!(
                mode_owner_mtime(&dest, dir),
                (0o755, 0, 0, mtime),
                "{dir} with SOURCE_DATE_EPOCH {epoch:?}"
            );
        }
    }
}
