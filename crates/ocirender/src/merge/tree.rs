//! The set of paths the merge has seen, with what each layer did to them.
//!
//! One node per distinct path, stored in a flat vector and found through a
//! hash table keyed by (parent, name). Names live in one shared byte arena,
//! so a node costs a few dozen bytes however deep it sits; memory grows with
//! the number of paths, never with file sizes.
//!
//! The tree records facts; the rules that read them live in `merge` and
//! `links`.

use hashbrown::HashTable;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Index of a node.
pub type NodeId = u32;
/// The root directory's node.
pub const ROOT: NodeId = 0;
/// "No layer": a mask or claim that is absent. Compares above every layer.
pub const NO_LAYER: u32 = u32::MAX;

/// Who owns a path in the merged output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nothing yet: a lower layer may still provide it.
    Unclaimed,
    /// A directory that some newer entry needs as a parent, but whose own
    /// entry (and metadata) has not been seen yet.
    ImplicitDir,
    /// A directory entry has been written.
    Dir,
    /// A non-directory owns the path (written, or pending as a hard link).
    NonDir,
}

/// What a path holds within one layer, for hard links that name it later in
/// the same layer.
///
/// Named for the layer it belongs to (not just `Version`, which is also
/// `squashfs::Version`, a program's version) because it only ever describes
/// the layer being read when it was recorded: homes and groups are
/// numbered per layer, so [`Node::version_in`] hands it out only for that
/// layer, and a value left over from a newer layer means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerVersion {
    /// Its data was written to the output: entry `.0` of the layer's table
    /// of written inodes (see `links::Links`).
    Home(u32),
    /// Shares the inode of a pending hard-link group.
    Group(u32),
    /// A file whose data was skipped; it is the layer's member number `.0`.
    Skipped(u32),
    /// A directory (a hard link to it is an error).
    Dir,
    /// A hard link whose target does not exist.
    Dangling,
}

/// Everything known about one path.
///
/// Each fact is set through one method, which writes the layer it belongs
/// to together with it: a claim, mask or version without its layer would
/// be misread.
#[derive(Debug, Clone)]
pub struct Node {
    parent: NodeId,
    name_start: u32,
    name_len: u32,
    /// Who owns the path in the output.
    claim: Claim,
    /// The layer that made the claim.
    claim_layer: u32,
    /// Lowest layer with a `.wh.` whiteout of this path (hides it and all
    /// below it in layers under that one), or `NO_LAYER`.
    whiteout_layer: u32,
    /// Lowest layer that hides this path's descendants (an opaque marker, or
    /// a non-directory at this path), or `NO_LAYER`.
    children_masked_layer: u32,
    /// The layer `version` describes, or `NO_LAYER`.
    version_layer: u32,
    /// What the path holds in `version_layer`.
    version: LayerVersion,
    /// The last layer read in which an entry lived below this path, making
    /// it a directory there even without an entry of its own (a hard link
    /// naming it later in that layer names a directory), or `NO_LAYER`.
    implied_layer: u32,
}

impl Node {
    fn new(parent: NodeId, name_start: u32, name_len: u32) -> Node {
        Node {
            parent,
            name_start,
            name_len,
            claim: Claim::Unclaimed,
            claim_layer: NO_LAYER,
            whiteout_layer: NO_LAYER,
            children_masked_layer: NO_LAYER,
            version_layer: NO_LAYER,
            version: LayerVersion::Dangling,
            implied_layer: NO_LAYER,
        }
    }

    /// Who owns the path in the output.
    pub fn claim(&self) -> Claim {
        self.claim
    }

    /// The layer that made the claim (`NO_LAYER` if unclaimed).
    pub fn claim_layer(&self) -> u32 {
        self.claim_layer
    }

    /// Records that an entry of `layer` owns the path as `claim`.
    pub fn claim_by(&mut self, claim: Claim, layer: u32) {
        self.claim = claim;
        self.claim_layer = layer;
    }

    /// True if a committed `.wh.` whiteout hides the path (and all below).
    pub fn whited_out(&self) -> bool {
        self.whiteout_layer != NO_LAYER
    }

    /// True if a committed mask hides the path's descendants.
    pub fn children_hidden(&self) -> bool {
        self.children_masked_layer != NO_LAYER
    }

    /// A whiteout in `layer` hides the path in the layers below it. Layers
    /// are read newest first, so the last call holds the lowest layer.
    pub fn white_out(&mut self, layer: u32) {
        self.whiteout_layer = layer;
    }

    /// An opaque marker or a non-directory in `layer` hides the path's
    /// descendants in the layers below it (the lowest layer wins, as for
    /// [`Node::white_out`]).
    pub fn hide_children(&mut self, layer: u32) {
        self.children_masked_layer = layer;
    }

    /// What the path holds in `layer`, if that is the layer it was last
    /// recorded for.
    pub fn version_in(&self, layer: u32) -> Option<LayerVersion> {
        (self.version_layer == layer).then_some(self.version)
    }

    /// Records what the path holds in `layer`.
    pub fn set_version(&mut self, layer: u32, version: LayerVersion) {
        self.version_layer = layer;
        self.version = version;
    }

    /// Records that an entry of `layer` lives below the path.
    pub fn imply_dir(&mut self, layer: u32) {
        self.implied_layer = layer;
    }

    /// True if an entry of `layer` read so far lives below the path.
    pub fn implied_in(&self, layer: u32) -> bool {
        self.implied_layer == layer
    }
}

/// The path tree.
pub struct Tree {
    nodes: Vec<Node>,
    names: Vec<u8>,
    index: HashTable<NodeId>,
    hasher: foldhash::fast::RandomState,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root, which is always a directory.
    pub fn new() -> Self {
        let mut tree = Tree {
            nodes: Vec::new(),
            names: Vec::new(),
            index: HashTable::new(),
            hasher: Default::default(),
        };
        tree.nodes.push(Node {
            claim: Claim::Dir,
            version: LayerVersion::Dir,
            ..Node::new(ROOT, 0, 0)
        });
        tree
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The node for a canonical path, created (with its ancestors) if new.
    pub fn lookup(&mut self, path: &[u8]) -> NodeId {
        if path.is_empty() {
            return ROOT;
        }
        path.split(|&b| b == b'/')
            .fold(ROOT, |parent, name| self.child(parent, name))
    }

    /// The node for `name` inside `parent`, created if new.
    pub fn child(&mut self, parent: NodeId, name: &[u8]) -> NodeId {
        let hash = self.hasher.hash_one((parent, name));
        let (nodes, names) = (&self.nodes, &self.names);
        let found = self.index.find(hash, |&id| {
            let node = &nodes[id as usize];
            node.parent == parent && node_name(names, node) == name
        });
        if let Some(&id) = found {
            return id;
        }
        let id = NodeId::try_from(self.nodes.len()).expect("fewer than 2^32 paths");
        let name_start = u32::try_from(self.names.len()).expect("path names under 4 GiB");
        let name_len = name.len() as u32;
        self.names.extend_from_slice(name);
        self.nodes.push(Node::new(parent, name_start, name_len));
        let (nodes, names, hasher) = (&self.nodes, &self.names, &self.hasher);
        self.index.insert_unique(hash, id, |&id| {
            let node = &nodes[id as usize];
            hasher.hash_one((node.parent, node_name(names, node)))
        });
        id
    }

    /// A node's state.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// A node's state, for updating.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// A node's parent (the root is its own parent).
    pub fn parent(&self, id: NodeId) -> NodeId {
        self.nodes[id as usize].parent
    }

    /// The canonical path of a node.
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let node = &self.nodes[cur as usize];
            parts.push(node_name(&self.names, node));
            cur = node.parent;
        }
        let mut path = Vec::new();
        for (i, part) in parts.iter().rev().enumerate() {
            if i > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(part);
        }
        path
    }

    /// Calls `visit` with the path and value of each node of `wanted`,
    /// parents first and siblings in byte order of their names: the order
    /// of [`crate::tar::path::parents_first`]. Each path is built from its
    /// parent's in one buffer, so however deep the nodes, memory grows
    /// with their number, not with the lengths of their paths (building
    /// every path of a chain n deep holds n²/2 components).
    pub fn depth_first<T, E>(
        &self,
        wanted: &HashMap<NodeId, T, impl BuildHasher>,
        mut visit: impl FnMut(&[u8], &T) -> Result<(), E>,
    ) -> Result<(), E> {
        let children = self.children_of(wanted.keys().copied());
        let mut path = Vec::new();
        // (node, length of its parent's path)
        let mut stack: Vec<(NodeId, usize)> = Vec::new();
        let push_children = |stack: &mut Vec<(NodeId, usize)>, id, len| {
            let kids = children.get(&id).into_iter().flatten().rev();
            stack.extend(kids.map(|&kid| (kid, len)));
        };
        push_children(&mut stack, ROOT, 0);
        while let Some((id, parent_len)) = stack.pop() {
            path.truncate(parent_len);
            if parent_len > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(node_name(&self.names, &self.nodes[id as usize]));
            if let Some(value) = wanted.get(&id) {
                visit(&path, value)?;
            }
            push_children(&mut stack, id, path.len());
        }
        Ok(())
    }

    /// The children of each node on the way from the root to the nodes
    /// `wanted`, sorted by name.
    fn children_of(
        &self,
        wanted: impl Iterator<Item = NodeId>,
    ) -> HashMap<NodeId, Vec<NodeId>, foldhash::fast::RandomState> {
        let mut children: HashMap<NodeId, Vec<NodeId>, _> = HashMap::default();
        let mut linked = HashSet::<NodeId, foldhash::fast::RandomState>::default();
        for id in wanted {
            let mut cur = id;
            while cur != ROOT && linked.insert(cur) {
                let parent = self.parent(cur);
                children.entry(parent).or_default().push(cur);
                cur = parent;
            }
        }
        let name = |id: &NodeId| node_name(&self.names, &self.nodes[*id as usize]);
        for siblings in children.values_mut() {
            siblings.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        }
        children
    }

    /// True if a mask from a layer at or below `view` hides `id`: a
    /// whiteout of it or of an ancestor, or an ancestor whose children are
    /// hidden. This is how the tree looked to an entry of layer `view`,
    /// seen from a layer below it.
    pub fn masked_at_or_below(&self, id: NodeId, view: u32) -> bool {
        let node = &self.nodes[id as usize];
        if node.whiteout_layer <= view {
            return true;
        }
        if id == ROOT {
            return false;
        }
        let mut cur = node.parent;
        loop {
            let ancestor = &self.nodes[cur as usize];
            if ancestor.whiteout_layer <= view || ancestor.children_masked_layer <= view {
                return true;
            }
            if cur == ROOT {
                return false;
            }
            cur = ancestor.parent;
        }
    }
}

fn node_name<'a>(names: &'a [u8], node: &Node) -> &'a [u8] {
    &names[node.name_start as usize..(node.name_start + node.name_len) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_interns_paths() {
        let mut t = Tree::new();
        let abc = t.lookup(b"a/b/c");
        assert_eq!(t.lookup(b"a/b/c"), abc);
        assert_eq!(t.len(), 4);
        assert_eq!(t.path(abc), b"a/b/c");
        assert_eq!(t.path(t.parent(abc)), b"a/b");
        assert_eq!(t.lookup(b""), ROOT);
        let other = t.lookup(b"b/b/c");
        assert_ne!(other, abc);
        assert_eq!(t.path(other), b"b/b/c");
    }

    #[test]
    fn depth_first_visits_parents_first_in_name_order() {
        let mut t = Tree::new();
        let paths: &[&[u8]] = &[b"b", b"a-c", b"a/b/c", b"a", b"a/b", b"z/y", b"a/a"];
        let wanted: HashMap<NodeId, &[u8]> = paths.iter().map(|&p| (t.lookup(p), p)).collect();
        t.lookup(b"unwanted/x");
        let mut seen = Vec::new();
        t.depth_first(&wanted, |path, &value| {
            assert_eq!(path, value);
            seen.push(path.to_vec());
            Ok::<_, ()>(())
        })
        .unwrap();
        let mut want: Vec<&[u8]> = paths.to_vec();
        want.sort_by(|a, b| crate::tar::path::parents_first(a, b));
        assert_eq!(seen, want, "z/y's parent z is passed through, not visited");
    }

    #[test]
    fn depth_first_stops_at_the_first_error() {
        let mut t = Tree::new();
        let wanted: HashMap<NodeId, ()> = [(t.lookup(b"a"), ()), (t.lookup(b"b"), ())].into();
        let mut visits = 0;
        let outcome = t.depth_first(&wanted, |_, _| {
            visits += 1;
            Err("full")
        });
        assert_eq!((outcome, visits), (Err("full"), 1));
    }

    #[test]
    fn masks_apply_by_layer() {
        let mut t = Tree::new();
        let a = t.lookup(b"a");
        let f = t.lookup(b"a/f");
        t.node_mut(a).hide_children(3);
        assert!(t.masked_at_or_below(f, 3));
        assert!(t.masked_at_or_below(f, 7));
        assert!(!t.masked_at_or_below(f, 2));
        assert!(
            !t.masked_at_or_below(a, 7),
            "a mask on children spares the directory"
        );
        t.node_mut(ROOT).hide_children(1);
        assert!(t.masked_at_or_below(a, 1));
    }
}
