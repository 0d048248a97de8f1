//! Streams whose tree the three sinks (`tar2dir`, `tar2sqfs`, `tar2erofs`)
//! must all refuse, each with the words its one-line error must contain;
//! every sink's tests run the whole table, so they refuse alike.
//!
//! Left alone, mksquashfs, mkfs.erofs and a directory unpack disagree on
//! each of these (the first entry wins, the last wins, a crash, a silent
//! drop, a link through a symlink resolved or refused), and no rule could
//! make the image builders keep the last of two files without holding the
//! first one's data: so a non-directory is listed once, every parent is a
//! directory, and a hard link names an earlier non-directory by the path
//! it was listed under.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;
use tar::{EntryType, Header};
use testkit::{Layer, Raw};

/// A stream every sink must refuse.
pub struct Refused {
    /// What is wrong with it.
    pub what: &'static str,
    /// The tar.
    pub tar: Vec<u8>,
    /// The entry the error must name, as the stream spells it.
    pub entry: &'static str,
    /// Words the error must contain.
    pub reason: &'static str,
}

const LISTED_TWICE: &str = "listed twice";
const OVER_A_DIRECTORY: &str = "is a directory already";
const UNDER_A_NON_DIRECTORY: &str = "not a directory";
const NO_EARLIER_ENTRY: &str = "not an earlier entry";
const TO_A_DIRECTORY: &str = "hard link to the directory";

/// The table.
pub fn refused_streams() -> Vec<Refused> {
    let refused = |what, layer: Layer, entry, reason| Refused {
        what,
        tar: layer.tar(),
        entry,
        reason,
    };
    vec![
        refused(
            "a file listed twice",
            Layer::new().file("a", b"first").file("a", b"second"),
            "a",
            LISTED_TWICE,
        ),
        refused(
            "a file listed twice under two spellings",
            Layer::new().file("./a", b"first").file("a", b"second"),
            "a",
            LISTED_TWICE,
        ),
        refused(
            "a file over a symlink",
            Layer::new().symlink("a", "b").file("a", b"x"),
            "a",
            LISTED_TWICE,
        ),
        refused(
            "a directory over a file",
            Layer::new().file("a", b"x").dir("a").file("a/f", b"y"),
            "a",
            LISTED_TWICE,
        ),
        refused(
            "a file over a directory",
            Layer::new().dir("a").file("a/f", b"y").file("a", b"x"),
            "a",
            OVER_A_DIRECTORY,
        ),
        refused(
            "a file over a directory its child implied",
            Layer::new().file("a/f", b"y").file("a", b"x"),
            "a",
            OVER_A_DIRECTORY,
        ),
        refused(
            "a file under a file",
            Layer::new().file("a", b"x").file("a/f", b"y"),
            "a/f",
            UNDER_A_NON_DIRECTORY,
        ),
        refused(
            "a file under a symlink to a directory",
            Layer::new().dir("d").symlink("l", "d").file("l/f", b"y"),
            "l/f",
            UNDER_A_NON_DIRECTORY,
        ),
        refused(
            "a directory under a symlink",
            Layer::new().dir("d").symlink("l", "d").dir("l/sub/"),
            "l/sub/",
            UNDER_A_NON_DIRECTORY,
        ),
        refused(
            "a hard link to a later file",
            Layer::new().hardlink("h", "f").file("f", b"x"),
            "h",
            NO_EARLIER_ENTRY,
        ),
        refused(
            "a hard link to nothing",
            Layer::new().file("f", b"x").hardlink("h", "missing"),
            "h",
            NO_EARLIER_ENTRY,
        ),
        refused(
            "a hard link to itself",
            Layer::new().hardlink("h", "./h"),
            "h",
            "hard link to itself",
        ),
        refused(
            "a hard link to a directory",
            Layer::new().dir("d").hardlink("h", "d"),
            "h",
            TO_A_DIRECTORY,
        ),
        refused(
            "a hard link to a directory a child implied",
            Layer::new().file("d/f", b"x").hardlink("h", "d/"),
            "h",
            TO_A_DIRECTORY,
        ),
        refused(
            "a hard link to the root",
            Layer::new().file("f", b"x").hardlink("h", "./"),
            "h",
            TO_A_DIRECTORY,
        ),
        refused(
            "a hard link through a symlink",
            Layer::new()
                .dir("d")
                .file("d/f", b"x")
                .symlink("l", "d")
                .hardlink("h", "l/f"),
            "h",
            NO_EARLIER_ENTRY,
        ),
        refused(
            "a hard link listed twice",
            Layer::new()
                .file("f", b"x")
                .hardlink("h", "f")
                .hardlink("h", "f"),
            "h",
            LISTED_TWICE,
        ),
        refused(
            "a device whose major number Linux cannot hold",
            device(Layer::new(), "dev/big", 4096, 1),
            "dev/big",
            "outside Linux's range",
        ),
        refused(
            "a device whose minor number Linux cannot hold",
            device(Layer::new(), "dev/big", 1, 1 << 20),
            "dev/big",
            "outside Linux's range",
        ),
        refused(
            "a symlink with an empty target",
            Layer::new().symlink("s", ""),
            "s",
            "empty target",
        ),
    ]
}

/// `layer` with a character device `name`, numbers `major:minor`, 0600.
pub fn device(layer: Layer, name: &str, major: u32, minor: u32) -> Layer {
    let mut header = Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_entry_type(EntryType::Char);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_size(0);
    header.set_device_major(major).unwrap();
    header.set_device_minor(minor).unwrap();
    header.set_cksum();
    layer.append_bytes(header.as_bytes())
}

/// Runs every stream of the table through `run`, which runs `program` in
/// the given empty directory with its output there (`what` names it in
/// messages), and asserts each is refused as the table says, leaving the
/// directory empty.
pub fn assert_all_refused(program: &str, what: &str, run: impl Fn(&Path, &[u8]) -> Output) {
    for case in refused_streams() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), &case.tar);
        let what = format!("{what}, {}", case.what);
        assert_refused(program, &what, &case, &out);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what}: left {left:?} behind");
    }
}

/// Asserts that `out` failed with one line from `program` that names the
/// case's entry and gives its reason.
fn assert_refused(program: &str, what: &str, case: &Refused, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with(&format!("{program}: ")),
        "{what}: not one `{program}: ` line: {stderr:?}"
    );
    let named = format!("entry {:?}", case.entry);
    for needle in [named.as_str(), case.reason] {
        assert!(
            stderr.contains(needle),
            "{what}: the error does not say {needle:?}: {stderr}"
        );
    }
}

/// A directory listed twice, with different metadata and a child after
/// each entry: the sinks keep both children and the last entry's
/// metadata (mode, owner, time and xattrs), as tar does.
pub fn repeated_directory() -> Layer {
    let dir = |mode, id, mtime, xattr| Raw {
        kind: EntryType::Directory,
        mode,
        uid: id,
        gid: id + 1,
        mtime,
        pax: vec![(xattr, &b"1"[..])],
        ..Raw::default()
    };
    Layer::new()
        .raw(b"d", dir(0o700, 1, 5, "SCHILY.xattr.user.first"))
        .file("d/a", b"a")
        .raw(b"./d/", dir(0o750, 2, 9, "SCHILY.xattr.user.last"))
        .file("d/b", b"b")
}

/// Checks the tree at `root` holds [`repeated_directory`] as it should.
pub fn assert_repeated_directory_merged(root: &Path, what: &str) {
    let meta = std::fs::symlink_metadata(root.join("d")).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime()),
        (0o750, 2, 3, 9),
        "{what}: the directory's mode, owner and time are not its last entry's"
    );
    assert_eq!(
        xattr_names(&root.join("d")),
        ["user.last"],
        "{what}: the directory's xattrs are not its last entry's"
    );
    let mut children: Vec<String> = std::fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    children.sort();
    assert_eq!(children, ["a", "b"], "{what}: children of both entries");
}

/// overlayfs's own attributes (`trusted.overlay.*`, `user.overlay.*`) on
/// a directory, a file and a symlink: each sink must escape them as
/// overlayfs does (`trusted.overlay.overlay.*`), or the tree, used as an
/// overlay's lower layer, would hide what lies below an "opaque"
/// directory or redirect lookups.
pub fn overlay_attributes() -> Layer {
    Layer::new()
        .raw(
            b"d",
            with(
                EntryType::Directory,
                b"",
                vec![
                    ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                    ("SCHILY.xattr.user.overlay.origin", b"o"),
                    ("SCHILY.xattr.user.kept", b"k"),
                ],
            ),
        )
        .raw(
            b"d/f",
            with(
                EntryType::Regular,
                b"",
                vec![("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere")],
            ),
        )
        .raw(
            b"s",
            with(
                EntryType::Symlink,
                b"d",
                vec![("SCHILY.xattr.trusted.overlay.origin", b"x")],
            ),
        )
}

/// Checks the tree at `root` holds [`overlay_attributes`], escaped.
pub fn assert_overlay_attributes_escaped(root: &Path, what: &str) {
    for (path, names) in [
        (
            "d",
            &[
                "trusted.overlay.overlay.opaque",
                "user.kept",
                "user.overlay.overlay.origin",
            ][..],
        ),
        ("d/f", &["trusted.overlay.overlay.redirect"][..]),
        ("s", &["trusted.overlay.overlay.origin"][..]),
    ] {
        assert_eq!(xattr_names(&root.join(path)), names, "{what}: {path}");
    }
    assert_eq!(
        xattr::get(root.join("d"), "trusted.overlay.overlay.opaque").unwrap(),
        Some(b"y".to_vec()),
        "{what}: the escaped value"
    );
}

/// `user.*` attributes on a symlink and a FIFO, where Linux keeps none
/// (it neither sets nor reads them there; an image that stored them would
/// list names no one can read), beside the ones it keeps.
pub fn user_attributes_on_special_files() -> Layer {
    Layer::new()
        .raw(
            b"s",
            with(
                EntryType::Symlink,
                b"f",
                vec![
                    ("SCHILY.xattr.user.dropped", b"1"),
                    ("SCHILY.xattr.trusted.kept", b"2"),
                ],
            ),
        )
        .raw(
            b"p",
            with(
                EntryType::Fifo,
                b"",
                vec![("SCHILY.xattr.user.dropped", b"1")],
            ),
        )
        .raw(
            b"f",
            with(
                EntryType::Regular,
                b"",
                vec![("SCHILY.xattr.user.kept", b"3")],
            ),
        )
}

/// Checks the tree at `root` holds [`user_attributes_on_special_files`]
/// with the `user.*` attributes of the symlink and FIFO dropped.
pub fn assert_user_attributes_only_on_files(root: &Path, what: &str) {
    for (path, names) in [
        ("s", &["trusted.kept"][..]),
        ("p", &[][..]),
        ("f", &["user.kept"][..]),
    ] {
        assert_eq!(xattr_names(&root.join(path)), names, "{what}: {path}");
    }
}

/// An entry of `kind` with a link target and PAX records.
fn with<'a>(kind: EntryType, link: &'a [u8], pax: Vec<(&'a str, &'a [u8])>) -> Raw<'a> {
    Raw {
        kind,
        link,
        pax,
        ..Raw::default()
    }
}

/// The xattr names of `path` (not following a symlink), sorted, without
/// `security.selinux` (which a host may add).
pub fn xattr_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = xattr::list(path)
        .unwrap()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "security.selinux")
        .collect();
    names.sort();
    names
}

/// A symlink whose entry says mode 0644: Linux gives every symlink 0777
/// (and ignores it), so each sink must.
pub fn symlink_with_a_mode() -> Layer {
    Layer::new().raw(
        b"s",
        Raw {
            mode: 0o644,
            ..with(EntryType::Symlink, b"target", Vec::new())
        },
    )
}

/// Checks the symlink of [`symlink_with_a_mode`] is 0777.
pub fn assert_symlink_is_0777(root: &Path, what: &str) {
    let meta = std::fs::symlink_metadata(root.join("s")).unwrap();
    assert!(meta.file_type().is_symlink(), "{what}: not a symlink");
    assert_eq!(meta.mode() & 0o7777, 0o777, "{what}: the symlink's mode");
}
