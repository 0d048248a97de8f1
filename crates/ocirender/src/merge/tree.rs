//! The set of paths the merge has seen, with what each layer did to them.
//!
//! One node per distinct path, in a [`PathTree`]: a node costs a few dozen
//! bytes however deep it sits, and memory grows with the number of paths,
//! never with file sizes.
//!
//! The tree records facts; the rules that read them live in `merge` and
//! `links`.

pub use crate::tar::path_tree::{NodeId, ROOT};
use crate::tar::path_tree::{Order, PathTree};
use std::collections::HashMap;
use std::hash::BuildHasher;
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

impl Default for Node {
    fn default() -> Node {
        Node {
            claim: Claim::Unclaimed,
            claim_layer: NO_LAYER,
            whiteout_layer: NO_LAYER,
            children_masked_layer: NO_LAYER,
            version_layer: NO_LAYER,
            version: LayerVersion::Dangling,
            implied_layer: NO_LAYER,
        }
    }
}

impl Node {
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
    paths: PathTree<Node>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root, which is always a directory.
    pub fn new() -> Self {
        Tree {
            paths: PathTree::new(Node {
                claim: Claim::Dir,
                version: LayerVersion::Dir,
                ..Node::default()
            }),
        }
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// The node for a canonical path, created (with its ancestors) if new.
    pub fn lookup(&mut self, path: &[u8]) -> NodeId {
        self.paths.lookup(path)
    }

    /// The node for `name` inside `parent`, created if new.
    pub fn child(&mut self, parent: NodeId, name: &[u8]) -> NodeId {
        self.paths.child(parent, name)
    }

    /// A node's state.
    pub fn node(&self, id: NodeId) -> &Node {
        self.paths.get(id)
    }

    /// A node's state, for updating.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.paths.get_mut(id)
    }

    /// A node's parent (the root is its own parent).
    pub fn parent(&self, id: NodeId) -> NodeId {
        self.paths.parent(id)
    }

    /// The canonical path of a node.
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        self.paths.path(id)
    }

    /// Calls `visit` with the path and value of each node of `wanted`,
    /// parents first and siblings in byte order of their names (see
    /// [`PathTree::depth_first`]).
    pub fn depth_first<T, E>(
        &self,
        wanted: &HashMap<NodeId, T, impl BuildHasher>,
        mut visit: impl FnMut(&[u8], &T) -> Result<(), E>,
    ) -> Result<(), E> {
        self.paths
            .depth_first(wanted.keys().copied(), Order::ParentsFirst, |path, id| {
                visit(path, &wanted[&id])
            })
    }

    /// True if a mask from a layer at or below `view` hides `id`: a
    /// whiteout of it or of an ancestor, or an ancestor whose children are
    /// hidden. This is how the tree looked to an entry of layer `view`,
    /// seen from a layer below it.
    pub fn masked_at_or_below(&self, id: NodeId, view: u32) -> bool {
        if self.node(id).whiteout_layer <= view {
            return true;
        }
        if id == ROOT {
            return false;
        }
        let mut cur = self.parent(id);
        loop {
            let ancestor = self.node(cur);
            if ancestor.whiteout_layer <= view || ancestor.children_masked_layer <= view {
                return true;
            }
            if cur == ROOT {
                return false;
            }
            cur = self.parent(cur);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
