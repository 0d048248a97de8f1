//! Model-based property test of the merge.
//!
//! Random stacks of layers over a small path alphabet are applied oldest
//! first to an in-memory tree, the obvious forward reading of the OCI
//! image-spec and of DESIGN.md section 2, and the result is compared with
//! the tree that the streaming merge's output describes: the same paths,
//! types, contents, modes, owners, modification times (sub-second ones in
//! PAX records too), xattrs (PAX `SCHILY.xattr.*`), and the same grouping of
//! paths into hard-linked inodes. The output's order is checked as well:
//! every hard link after its target, every directory entry after all other
//! entries, and among directories each after its parent.
//!
//! Hard links name anything: files, symlinks (the link shares the symlink),
//! directories with an entry of their own, directories that exist only as
//! the parents of other entries, and nothing at all. A link whose target is
//! a directory, in the tree as it stands once the link's own layer is
//! applied, fails the whole merge, whatever newer layers do to the link.
//!
//! Set PROPTEST_CASES to run more cases than the default 2,000.

mod common;

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tar::EntryType;
use testkit::{Layer, Raw};

/// Names that may be directories or not.
const STRUCTURAL: &[&str] = &["a", "b", "a/x", "b/x", "a/x/y"];
/// Names that are never directories.
const LEAVES: &[&str] = &["f", "a/f", "a/g", "b/f", "a/x/f", "b/x/f", "a/x/y/f"];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o711];
const FILE_MODES: &[u32] = &[0o644, 0o600, 0o4755];
/// Owners; the last does not fit the octal header field and needs PAX.
const IDS: &[u64] = &[0, 1000, 3_000_000];
/// Header time and PAX `mtime` record: sub-second times, the epoch, and a
/// time past the octal field's range (binary in the input, PAX in output).
const MTIMES: &[(u64, Option<&str>)] = &[
    (1_600_000_000, None),
    (0, None),
    (1 << 34, None),
    (1_600_000_000, Some("1600000000.25")),
    (7, Some("7.000000001")),
];
const XATTR_NAMES: &[&str] = &["user.a", "user.b", "security.capability"];
/// Binary values too, with the bytes that trip naive PAX parsers: a
/// newline (records are split by length, not at newlines), `=` and NUL.
const XATTR_VALUES: &[&[u8]] = &[b"1", b"two", &[1, 0, 0, 2, b'\n', b'=', 0xff]];

/// Owner, time and xattrs of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attrs {
    uid: u64,
    gid: u64,
    mtime: (u64, Option<&'static str>),
    /// Sorted by name, each name once.
    xattrs: Vec<(&'static str, &'static [u8])>,
}

impl Attrs {
    /// The metadata description of an entry with these attributes.
    fn describe(&self, mode: u32) -> String {
        let mtime = match self.mtime {
            (_, Some(pax)) => pax.to_owned(),
            (secs, None) => secs.to_string(),
        };
        let xattrs: Vec<(String, Vec<u8>)> = self
            .xattrs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_vec()))
            .collect();
        describe_meta(mode, self.uid, self.gid, &mtime, &xattrs)
    }
}

/// Metadata as text: mode, owner, time (as the PAX record gives it, or the
/// header's whole seconds), xattrs sorted by name.
fn describe_meta(
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: &str,
    xattrs: &[(String, Vec<u8>)],
) -> String {
    let xattrs: Vec<String> = xattrs
        .iter()
        .map(|(name, value)| format!("{name}={}", value.escape_ascii()))
        .collect();
    format!(
        "{mode:o} {uid}:{gid} mtime {mtime} xattrs [{}]",
        xattrs.join(" ")
    )
}

/// What a directory that no layer describes gets.
fn implicit_dir_meta() -> String {
    describe_meta(0o755, 0, 0, "0", &[])
}

fn attrs_strategy() -> impl Strategy<Value = Attrs> {
    (
        prop::sample::select(IDS),
        prop::sample::select(IDS),
        prop::sample::select(MTIMES),
        prop::collection::btree_map(
            prop::sample::select(XATTR_NAMES),
            prop::sample::select(XATTR_VALUES),
            0..=2,
        ),
    )
        .prop_map(|(uid, gid, mtime, xattrs)| Attrs {
            uid,
            gid,
            mtime,
            xattrs: xattrs.into_iter().collect(),
        })
}

#[derive(Debug, Clone)]
enum Op {
    Dir(&'static str, u32, Attrs),
    File(&'static str, u32, Attrs),
    Symlink(&'static str, Attrs),
    /// A hard link and its target; the attributes are the link header's
    /// own, which the merge must ignore (the inode is the target's).
    Link(&'static str, &'static str, Attrs),
    Whiteout(&'static str),
    Opaque(&'static str),
}

impl Op {
    /// The path an entry occupies (None for markers).
    fn entry_path(&self) -> Option<&'static str> {
        match self {
            Op::Dir(p, ..) | Op::File(p, ..) | Op::Symlink(p, _) | Op::Link(p, ..) => Some(p),
            Op::Whiteout(_) | Op::Opaque(_) => None,
        }
    }

    /// The path of the tar member itself (markers live inside a directory).
    fn member_parent(&self) -> &'static str {
        match self {
            Op::Dir(p, ..)
            | Op::File(p, ..)
            | Op::Symlink(p, _)
            | Op::Link(p, ..)
            | Op::Whiteout(p) => parent(p),
            Op::Opaque(d) => d,
        }
    }

    fn is_non_dir_entry(&self) -> bool {
        matches!(self, Op::File(..) | Op::Symlink(..) | Op::Link(..))
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn ancestors(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut p = parent(path);
    while !p.is_empty() {
        out.push(p);
        p = parent(p);
    }
    out.reverse();
    out
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/')
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let structural = prop::sample::select(STRUCTURAL);
    let leaf = prop::sample::select(LEAVES);
    let any_name = prop::sample::select([STRUCTURAL, LEAVES].concat());
    // Links mostly name leaves, so that most stacks merge; the rest name
    // structural paths, which may be directories (explicit or implicit),
    // files, symlinks or nothing by then.
    let link_target = prop_oneof![3 => leaf, 1 => structural.clone()];
    prop_oneof![
        3 => (structural, prop::sample::select(DIR_MODES), attrs_strategy())
            .prop_map(|(p, m, a)| Op::Dir(p, m, a)),
        3 => (any_name.clone(), prop::sample::select(FILE_MODES), attrs_strategy())
            .prop_map(|(p, m, a)| Op::File(p, m, a)),
        1 => (any_name.clone(), attrs_strategy()).prop_map(|(p, a)| Op::Symlink(p, a)),
        3 => (any_name.clone(), link_target, attrs_strategy())
            .prop_map(|(p, t, a)| Op::Link(p, t, a)),
        2 => any_name.prop_map(Op::Whiteout),
        1 => prop::sample::select([&[""][..], STRUCTURAL].concat()).prop_map(Op::Opaque),
    ]
}

/// A layer as real tools write them: each path once, nothing inside a
/// non-directory of the same layer. Order is shuffled afterwards.
fn sanitize(ops: Vec<Op>) -> Vec<Op> {
    let mut taken = BTreeSet::new();
    let mut kept: Vec<Op> = ops
        .into_iter()
        .filter(|op| op.entry_path().is_none_or(|p| taken.insert(p)))
        .collect();
    let non_dirs: Vec<&str> = kept
        .iter()
        .filter(|op| op.is_non_dir_entry())
        .filter_map(Op::entry_path)
        .collect();
    kept.retain(|op| {
        let member_dir = op.member_parent();
        !non_dirs
            .iter()
            .any(|nd| *nd == member_dir || is_under(member_dir, nd))
    });
    let mut seen_markers = BTreeSet::new();
    kept.retain(|op| match op {
        Op::Whiteout(p) => seen_markers.insert(format!("w{p}")),
        Op::Opaque(p) => seen_markers.insert(format!("o{p}")),
        _ => true,
    });
    kept
}

fn layer_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(), 0..8)
        .prop_map(sanitize)
        .prop_shuffle()
}

fn stack_strategy() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(layer_strategy(), 1..=5)
}

fn content(layer: usize, index: usize) -> String {
    format!("L{layer}E{index}")
}

/// A member with `attrs` in its header and PAX records.
fn with_attrs(l: Layer, path: &str, raw: Raw<'_>, attrs: &Attrs) -> Layer {
    let keys: Vec<String> = attrs
        .xattrs
        .iter()
        .map(|(name, _)| format!("SCHILY.xattr.{name}"))
        .collect();
    let mut pax: Vec<(&str, &[u8])> = keys
        .iter()
        .zip(&attrs.xattrs)
        .map(|(key, (_, value))| (key.as_str(), *value))
        .collect();
    if let (_, Some(mtime)) = attrs.mtime {
        pax.push(("mtime", mtime.as_bytes()));
    }
    l.raw(
        path.as_bytes(),
        Raw {
            uid: attrs.uid,
            gid: attrs.gid,
            mtime: attrs.mtime.0,
            pax,
            ..raw
        },
    )
}

fn build_layer(layer: usize, ops: &[Op]) -> Layer {
    ops.iter()
        .enumerate()
        .fold(Layer::new(), |l, (i, op)| match op {
            Op::Dir(p, mode, attrs) => {
                let raw = Raw {
                    kind: EntryType::Directory,
                    mode: *mode,
                    ..Raw::default()
                };
                with_attrs(l, p, raw, attrs)
            }
            Op::File(p, mode, attrs) => {
                let data = content(layer, i);
                let raw = Raw {
                    data: data.as_bytes(),
                    mode: *mode,
                    ..Raw::default()
                };
                with_attrs(l, p, raw, attrs)
            }
            Op::Symlink(p, attrs) => {
                let target = content(layer, i);
                let raw = Raw {
                    kind: EntryType::Symlink,
                    link: target.as_bytes(),
                    mode: 0o777,
                    ..Raw::default()
                };
                with_attrs(l, p, raw, attrs)
            }
            Op::Link(p, t, attrs) => {
                let raw = Raw {
                    kind: EntryType::Link,
                    link: t.as_bytes(),
                    mode: 0o600,
                    ..Raw::default()
                };
                with_attrs(l, p, raw, attrs)
            }
            Op::Whiteout(p) => l.whiteout(p),
            Op::Opaque(d) => l.opaque(d),
        })
}

// ---- the forward model ---------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inode {
    File { content: String, meta: String },
    Symlink { target: String, meta: String },
}

#[derive(Debug, Clone)]
enum Obj {
    Dir {
        meta: String,
    },
    NonDir {
        inode: usize,
    },
    /// A hard link of the layer being applied, resolved at its end.
    Pending {
        target: &'static str,
    },
}

#[derive(Default)]
struct Model {
    tree: BTreeMap<String, Obj>,
    inodes: Vec<Inode>,
}

impl Model {
    fn remove_subtree(&mut self, path: &str, keep_self: bool) {
        let doomed: Vec<String> = self
            .tree
            .keys()
            .filter(|k| (!keep_self && k.as_str() == path) || is_under(k, path))
            .cloned()
            .collect();
        for k in doomed {
            self.tree.remove(&k);
        }
    }

    /// Parents must be directories: missing ones are created with the
    /// defaults, and a non-directory in the way is replaced (overlayfs: the
    /// directory wins, as a new directory).
    fn ensure_parents(&mut self, path: &str) {
        for a in ancestors(path) {
            match self.tree.get(a) {
                Some(Obj::Dir { .. }) => {}
                _ => {
                    self.remove_subtree(a, false);
                    self.tree.insert(
                        a.to_owned(),
                        Obj::Dir {
                            meta: implicit_dir_meta(),
                        },
                    );
                }
            }
        }
    }

    /// Applies one layer; a hard link naming a directory is an error.
    fn apply(&mut self, layer: usize, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            match op {
                Op::Whiteout(p) => self.remove_subtree(p, false),
                Op::Opaque(d) => self.remove_subtree(d, true),
                _ => {}
            }
        }
        let mut pending = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(path) = op.entry_path() else {
                continue;
            };
            self.ensure_parents(path);
            match op {
                Op::Dir(_, mode, attrs) => {
                    let meta = attrs.describe(*mode);
                    if let Some(Obj::Dir { meta: m }) = self.tree.get_mut(path) {
                        *m = meta;
                    } else {
                        self.remove_subtree(path, false);
                        self.tree.insert(path.to_owned(), Obj::Dir { meta });
                    }
                }
                Op::File(_, mode, attrs) => self.put(
                    path,
                    Inode::File {
                        content: content(layer, i),
                        meta: attrs.describe(*mode),
                    },
                ),
                Op::Symlink(_, attrs) => self.put(
                    path,
                    Inode::Symlink {
                        target: content(layer, i),
                        meta: attrs.describe(0o777),
                    },
                ),
                Op::Link(_, target, _) => {
                    self.remove_subtree(path, false);
                    self.tree.insert(path.to_owned(), Obj::Pending { target });
                    pending.push(path);
                }
                _ => unreachable!(),
            }
        }
        let mut resolved = Vec::new();
        for &path in &pending {
            resolved.push(self.resolve(path, 0)?);
        }
        for (path, inode) in pending.into_iter().zip(resolved) {
            match inode {
                Some(inode) => {
                    self.tree.insert(path.to_owned(), Obj::NonDir { inode });
                }
                None => {
                    self.tree.remove(path);
                }
            }
        }
        Ok(())
    }

    fn put(&mut self, path: &str, inode: Inode) {
        self.remove_subtree(path, false);
        self.inodes.push(inode);
        self.tree.insert(
            path.to_owned(),
            Obj::NonDir {
                inode: self.inodes.len() - 1,
            },
        );
    }

    /// The inode a pending link shares, following links of the same layer;
    /// `None` if it names nothing (dropped), an error if a directory.
    fn resolve(&self, path: &str, depth: usize) -> Result<Option<usize>, String> {
        let Some(Obj::Pending { target }) = self.tree.get(path) else {
            unreachable!()
        };
        if depth > 8 || *target == path {
            return Ok(None);
        }
        match self.tree.get(*target) {
            None => Ok(None),
            Some(Obj::NonDir { inode }) => Ok(Some(*inode)),
            Some(Obj::Pending { .. }) => self.resolve(target, depth + 1),
            Some(Obj::Dir { .. }) => {
                Err(format!("the hard link {path} names the directory {target}"))
            }
        }
    }

    /// path -> (description, representative of its inode group)
    fn describe(&self) -> BTreeMap<String, (String, String)> {
        let mut first_path_of_inode: BTreeMap<usize, String> = BTreeMap::new();
        for (path, obj) in &self.tree {
            if let Obj::NonDir { inode } = obj {
                first_path_of_inode
                    .entry(*inode)
                    .or_insert_with(|| path.clone());
            }
        }
        self.tree
            .iter()
            .map(|(path, obj)| {
                let value = match obj {
                    Obj::Dir { meta } => (format!("dir {meta}"), path.clone()),
                    Obj::NonDir { inode } => {
                        let what = match &self.inodes[*inode] {
                            Inode::File { content, meta } => format!("file {content} {meta}"),
                            Inode::Symlink { target, meta } => format!("symlink {target} {meta}"),
                        };
                        (what, first_path_of_inode[inode].clone())
                    }
                    Obj::Pending { .. } => unreachable!(),
                };
                (path.clone(), value)
            })
            .collect()
    }
}

/// The metadata description of an output entry: its header, with the time
/// of a PAX `mtime` record if it has one, and its `SCHILY.xattr.*` records.
fn output_meta(e: &testkit::Entry) -> String {
    let mut mtime = e.mtime.to_string();
    let mut xattrs = Vec::new();
    for (key, value) in &e.pax {
        if key == "mtime" {
            mtime = String::from_utf8_lossy(value).into_owned();
        } else if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            xattrs.push((name.to_owned(), value.clone()));
        }
    }
    xattrs.sort();
    describe_meta(e.mode, e.uid, e.gid, &mtime, &xattrs)
}

/// The same description, read from the merged tar.
fn describe_output(entries: &[testkit::Entry]) -> BTreeMap<String, (String, String)> {
    let mut inode_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for e in entries {
        let path = e.path.trim_end_matches('/').to_owned();
        let value = match e.kind {
            EntryType::Directory => (format!("dir {}", output_meta(e)), path.clone()),
            EntryType::Regular => (
                format!(
                    "file {} {}",
                    String::from_utf8_lossy(&e.data),
                    output_meta(e)
                ),
                path.clone(),
            ),
            EntryType::Symlink => (
                format!("symlink {} {}", e.link, output_meta(e)),
                path.clone(),
            ),
            EntryType::Link => inode_of
                .get(&e.link)
                .cloned()
                .unwrap_or_else(|| panic!("{path} links to unwritten {}", e.link)),
            other => panic!("unexpected entry type {other:?}"),
        };
        if e.kind != EntryType::Directory {
            inode_of.insert(path.clone(), value.clone());
        }
        assert!(
            out.insert(path.clone(), value).is_none(),
            "{path} written twice"
        );
    }
    // Name each inode group by its first path in sorted order, as the model does.
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for (path, (_, group)) in &out {
        first.entry(group.clone()).or_insert_with(|| path.clone());
    }
    out.into_iter()
        .map(|(p, (what, group))| (p, (what, first[&group].clone())))
        .collect()
}

/// Directories come last, each after its parent's entry: every directory
/// entry after every other entry, and among directories, parents first.
fn check_order(entries: &[testkit::Entry]) -> Result<(), String> {
    let mut dirs_written = BTreeSet::new();
    for e in entries {
        let path = e.path.trim_end_matches('/');
        if e.kind == EntryType::Directory {
            let p = parent(path);
            if !p.is_empty() && !dirs_written.contains(p) {
                return Err(format!("directory {path} comes before its parent {p}"));
            }
            dirs_written.insert(path);
        } else if let Some(dir) = dirs_written.last() {
            return Err(format!("{path} comes after the directory entry {dir}"));
        }
    }
    Ok(())
}

/// Applies a stack, base first, to an empty model.
fn model_of(stack: &[Vec<Op>]) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut model = Model::default();
    for (i, ops) in stack.iter().enumerate() {
        model.apply(i, ops)?;
    }
    Ok(model.describe())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::proptest_cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn streaming_merge_matches_forward_model(stack in stack_strategy()) {
        let layers: Vec<Layer> = stack.iter().enumerate().map(|(i, ops)| build_layer(i, ops)).collect();
        let outcome = common::merge_layers(&layers);
        match (model_of(&stack), &outcome.result) {
            (Ok(expected), Ok(_)) => {
                let entries = outcome.entries();
                if let Err(why) = check_order(&entries) {
                    prop_assert!(false, "{}", why);
                }
                prop_assert_eq!(describe_output(&entries), expected);
            }
            (Err(why), Err(error)) => {
                prop_assert!(error.contains("directory"), "model: {}; merge: {}", why, error);
                prop_assert!(!common::is_complete_archive(&outcome.output));
            }
            (Err(why), Ok(_)) => prop_assert!(
                false,
                "the merge succeeded, but {}; warnings {:?}",
                why,
                outcome.warnings
            ),
            (Ok(_), Err(error)) => prop_assert!(false, "the merge failed: {}", error),
        }
    }
}

/// DESIGN.md: PAX records are kept, `SCHILY.xattr.*` including binary
/// values such as `security.capability`. A capability (a v3 one with root
/// id 10, or the bits of CAP_DAC_OVERRIDE and CAP_FOWNER) or an IMA
/// signature can hold a 0x0a byte, and so can a long name.
#[test]
fn binary_xattr_with_a_newline_byte_survives_the_merge() {
    const CAPABILITY_V3: &[u8] = &[
        0x01, 0x00, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
        0x00, 0x00, 0x00,
    ];
    let long_name = format!("dir/new\nline-{}", "n".repeat(120));
    let layer = Layer::new()
        .raw(
            b"caps",
            Raw {
                data: b"elf",
                pax: vec![("SCHILY.xattr.security.capability", CAPABILITY_V3)],
                ..Raw::default()
            },
        )
        .file(&long_name, b"long");
    let outcome = common::merge_layers(&[layer]);
    let entries = match &outcome.result {
        Ok(_) => outcome.entries(),
        Err(e) => panic!("the merge failed: {e}"),
    };
    let caps = entries.iter().find(|e| e.path == "caps").unwrap();
    assert!(caps.pax.contains(&(
        "SCHILY.xattr.security.capability".to_owned(),
        CAPABILITY_V3.to_vec()
    )));
    assert!(entries
        .iter()
        .any(|e| e.path == long_name && e.data == b"long"));
}

#[test]
fn order_check_rejects_misplaced_directories() {
    let entry = |path: &str, kind| testkit::Entry {
        path: path.to_owned(),
        path_bytes: path.as_bytes().to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        uname: Vec::new(),
        link: String::new(),
        data: Vec::new(),
        pax: Vec::new(),
    };
    let (dir, file) = (EntryType::Directory, EntryType::Regular);
    let good = [entry("a/f", file), entry("a/", dir), entry("a/x/", dir)];
    assert_eq!(check_order(&good), Ok(()));
    let file_after_dir = [entry("a/", dir), entry("b", file)];
    assert!(check_order(&file_after_dir).is_err());
    let child_first = [entry("a/f", file), entry("a/x/", dir), entry("a/", dir)];
    assert!(check_order(&child_first).is_err());
    let no_parent = [entry("a/x/", dir)];
    assert!(check_order(&no_parent).is_err());
}
