//! Model-based property test of the merge.
//!
//! Random stacks of layers over a small path alphabet are applied oldest
//! first to an in-memory tree, the obvious forward reading of the OCI
//! image-spec, and the result is compared with the tree that the streaming
//! merge's output describes: the same paths, types, contents, modes, and
//! the same grouping of paths into hard-linked inodes.
//!
//! Set PROPTEST_CASES to run more cases than the default 2,000.

mod common;

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tar::EntryType;
use testkit::{Layer, Raw};

/// Names that may be directories or not.
const STRUCTURAL: &[&str] = &["a", "b", "a/x", "b/x", "a/x/y"];
/// Names that are never directories (hard links only target these).
const LEAVES: &[&str] = &["f", "a/f", "a/g", "b/f", "a/x/f", "b/x/f", "a/x/y/f"];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o711];
const FILE_MODES: &[u32] = &[0o644, 0o600, 0o4755];

#[derive(Debug, Clone)]
enum Op {
    Dir(&'static str, u32),
    File(&'static str, u32),
    Symlink(&'static str),
    Link(&'static str, &'static str),
    Whiteout(&'static str),
    Opaque(&'static str),
}

impl Op {
    /// The path an entry occupies (None for markers).
    fn entry_path(&self) -> Option<&'static str> {
        match self {
            Op::Dir(p, _) | Op::File(p, _) | Op::Symlink(p) | Op::Link(p, _) => Some(p),
            Op::Whiteout(_) | Op::Opaque(_) => None,
        }
    }

    /// The path of the tar member itself (markers live inside a directory).
    fn member_parent(&self) -> &'static str {
        match self {
            Op::Dir(p, _) | Op::File(p, _) | Op::Symlink(p) | Op::Link(p, _) | Op::Whiteout(p) => {
                parent(p)
            }
            Op::Opaque(d) => d,
        }
    }

    fn is_non_dir_entry(&self) -> bool {
        matches!(self, Op::File(..) | Op::Symlink(_) | Op::Link(..))
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
    prop_oneof![
        3 => (structural.clone(), prop::sample::select(DIR_MODES)).prop_map(|(p, m)| Op::Dir(p, m)),
        3 => (any_name.clone(), prop::sample::select(FILE_MODES)).prop_map(|(p, m)| Op::File(p, m)),
        1 => any_name.clone().prop_map(Op::Symlink),
        3 => (leaf.clone(), leaf).prop_map(|(p, t)| Op::Link(p, t)),
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

fn build_layer(layer: usize, ops: &[Op]) -> Layer {
    ops.iter()
        .enumerate()
        .fold(Layer::new(), |l, (i, op)| match op {
            Op::Dir(p, mode) => l.dir_mode(p, *mode),
            Op::File(p, mode) => l.file_mode(p, content(layer, i).as_bytes(), *mode),
            Op::Symlink(p) => l.symlink(p, &content(layer, i)),
            Op::Link(p, t) => l.raw(
                p.as_bytes(),
                Raw {
                    kind: EntryType::Link,
                    link: t.as_bytes(),
                    mode: 0o600,
                    ..Raw::default()
                },
            ),
            Op::Whiteout(p) => l.whiteout(p),
            Op::Opaque(d) => l.opaque(d),
        })
}

// ---- the forward model ---------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inode {
    File { content: String, mode: u32 },
    Symlink { target: String },
}

#[derive(Debug, Clone)]
enum Obj {
    Dir {
        mode: u32,
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

    /// Parents must be directories: missing ones are created, and a
    /// non-directory in the way is replaced (overlayfs: the directory wins).
    fn ensure_parents(&mut self, path: &str) {
        for a in ancestors(path) {
            match self.tree.get(a) {
                Some(Obj::Dir { .. }) => {}
                _ => {
                    self.remove_subtree(a, false);
                    self.tree.insert(a.to_owned(), Obj::Dir { mode: 0o755 });
                }
            }
        }
    }

    fn apply(&mut self, layer: usize, ops: &[Op]) {
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
                Op::Dir(_, mode) => {
                    if let Some(Obj::Dir { mode: m }) = self.tree.get_mut(path) {
                        *m = *mode;
                    } else {
                        self.remove_subtree(path, false);
                        self.tree.insert(path.to_owned(), Obj::Dir { mode: *mode });
                    }
                }
                Op::File(_, mode) => self.put(
                    path,
                    Inode::File {
                        content: content(layer, i),
                        mode: *mode,
                    },
                ),
                Op::Symlink(_) => self.put(
                    path,
                    Inode::Symlink {
                        target: content(layer, i),
                    },
                ),
                Op::Link(_, target) => {
                    self.remove_subtree(path, false);
                    self.tree.insert(path.to_owned(), Obj::Pending { target });
                    pending.push(path);
                }
                _ => unreachable!(),
            }
        }
        for path in pending {
            let resolved = self.resolve(path, 0);
            match resolved {
                Some(inode) => {
                    self.tree.insert(path.to_owned(), Obj::NonDir { inode });
                }
                None => {
                    self.tree.remove(path);
                }
            }
        }
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

    /// The inode a pending link shares, following links of the same layer.
    fn resolve(&self, path: &str, depth: usize) -> Option<usize> {
        let Some(Obj::Pending { target }) = self.tree.get(path) else {
            unreachable!()
        };
        if depth > 8 || *target == path {
            return None;
        }
        match self.tree.get(*target)? {
            Obj::NonDir { inode } => Some(*inode),
            Obj::Pending { .. } => self.resolve(target, depth + 1),
            Obj::Dir { .. } => panic!("leaves are never directories"),
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
                    Obj::Dir { mode } => (format!("dir {mode:o}"), path.clone()),
                    Obj::NonDir { inode } => {
                        let what = match &self.inodes[*inode] {
                            Inode::File { content, mode } => format!("file {content} {mode:o}"),
                            Inode::Symlink { target } => format!("symlink {target}"),
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

/// The same description, read from the merged tar.
fn describe_output(entries: &[testkit::Entry]) -> BTreeMap<String, (String, String)> {
    let mut inode_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for e in entries {
        let path = e.path.trim_end_matches('/').to_owned();
        let value = match e.kind {
            EntryType::Directory => (format!("dir {:o}", e.mode), path.clone()),
            EntryType::Regular => (
                format!("file {} {:o}", String::from_utf8_lossy(&e.data), e.mode),
                path.clone(),
            ),
            EntryType::Symlink => (format!("symlink {}", e.link), path.clone()),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: common::proptest_cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn streaming_merge_matches_forward_model(stack in stack_strategy()) {
        let mut model = Model::default();
        for (i, ops) in stack.iter().enumerate() {
            model.apply(i, ops);
        }
        let layers: Vec<Layer> = stack.iter().enumerate().map(|(i, ops)| build_layer(i, ops)).collect();
        let outcome = common::merge_layers(&layers);
        let entries = outcome.entries();
        prop_assert_eq!(describe_output(&entries), model.describe());
    }
}
