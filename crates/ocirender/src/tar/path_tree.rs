//! A set of canonical paths with a value at each, stored as a tree.
//!
//! One node per distinct path, in a flat vector, found through a hash
//! table keyed by (parent, name); names live in one shared byte arena. A
//! node costs a few dozen bytes however deep it sits, so a stream of paths
//! n components deep costs memory in proportion to n, never n² (keying a
//! map by whole paths stores every prefix of a deep path in full: a chain
//! 2048 deep holds two million components that way).
//!
//! The merge keeps what each layer did to a path here
//! ([`crate::merge::tree`]), and the sinks the tree a stream lists
//! ([`crate::sink::listing`]).

use hashbrown::HashTable;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Index of a node.
pub type NodeId = u32;
/// The root directory's node (the empty path).
pub const ROOT: NodeId = 0;

/// The order [`PathTree::depth_first`] visits nodes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Parents before their children, siblings in byte order of their
    /// names (component-wise: `a`, `a/b`, `a-c`), in which an extractor
    /// can create every path.
    ParentsFirst,
    /// The reverse: children before their parents, in which an extractor
    /// sets a directory's times once nothing more is written inside it.
    ChildrenFirst,
}

struct Slot<T> {
    parent: NodeId,
    name_start: u32,
    name_len: u32,
    value: T,
}

/// Canonical paths (`a/b/c`, no leading or trailing slash; the root is
/// the empty path), each with a `T`.
pub struct PathTree<T> {
    slots: Vec<Slot<T>>,
    names: Vec<u8>,
    index: HashTable<NodeId>,
    hasher: foldhash::fast::RandomState,
}

impl<T: std::fmt::Debug> std::fmt::Debug for PathTree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathTree")
            .field("nodes", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for PathTree<T> {
    fn default() -> Self {
        PathTree::new(T::default())
    }
}

impl<T> PathTree<T> {
    /// A tree holding only the root, with `root` as its value.
    pub fn new(root: T) -> Self {
        PathTree {
            slots: vec![Slot {
                parent: ROOT,
                name_start: 0,
                name_len: 0,
                value: root,
            }],
            names: Vec::new(),
            index: HashTable::new(),
            hasher: Default::default(),
        }
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The node for `name` inside `parent`, if there is one.
    pub fn find_child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let hash = self.hasher.hash_one((parent, name));
        self.index
            .find(hash, |&id| {
                let slot = &self.slots[id as usize];
                slot.parent == parent && self.name_of(slot) == name
            })
            .copied()
    }

    /// The node of a canonical path, if there is one.
    pub fn find(&self, path: &[u8]) -> Option<NodeId> {
        if path.is_empty() {
            return Some(ROOT);
        }
        path.split(|&b| b == b'/')
            .try_fold(ROOT, |parent, name| self.find_child(parent, name))
    }

    /// The node for `name` inside `parent`, created with `T::default()` if
    /// new.
    pub fn child(&mut self, parent: NodeId, name: &[u8]) -> NodeId
    where
        T: Default,
    {
        if let Some(id) = self.find_child(parent, name) {
            return id;
        }
        let id = NodeId::try_from(self.slots.len()).expect("fewer than 2^32 paths");
        let name_start = u32::try_from(self.names.len()).expect("path names under 4 GiB");
        self.names.extend_from_slice(name);
        self.slots.push(Slot {
            parent,
            name_start,
            name_len: name.len() as u32,
            value: T::default(),
        });
        let hash = self.hasher.hash_one((parent, name));
        let (slots, names, hasher) = (&self.slots, &self.names, &self.hasher);
        self.index.insert_unique(hash, id, |&id| {
            let slot = &slots[id as usize];
            hasher.hash_one((slot.parent, name_in(names, slot)))
        });
        id
    }

    /// The node of a canonical path, created (with its ancestors) if new.
    pub fn lookup(&mut self, path: &[u8]) -> NodeId
    where
        T: Default,
    {
        if path.is_empty() {
            return ROOT;
        }
        path.split(|&b| b == b'/')
            .fold(ROOT, |parent, name| self.child(parent, name))
    }

    /// A node's value.
    pub fn get(&self, id: NodeId) -> &T {
        &self.slots[id as usize].value
    }

    /// A node's value, for updating.
    pub fn get_mut(&mut self, id: NodeId) -> &mut T {
        &mut self.slots[id as usize].value
    }

    /// A node's parent (the root is its own parent).
    pub fn parent(&self, id: NodeId) -> NodeId {
        self.slots[id as usize].parent
    }

    /// The canonical path of a node.
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let slot = &self.slots[cur as usize];
            parts.push(self.name_of(slot));
            cur = slot.parent;
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

    /// Calls `visit` with the path and id of each node of `wanted` (the
    /// root never), in `order`. Each path is built from its parent's in one
    /// buffer, so however deep the nodes, memory grows with their number,
    /// not with the lengths of their paths. Stops at the first error.
    pub fn depth_first<E>(
        &self,
        wanted: impl IntoIterator<Item = NodeId>,
        order: Order,
        mut visit: impl FnMut(&[u8], NodeId) -> Result<(), E>,
    ) -> Result<(), E> {
        let wanted: HashSet<NodeId, foldhash::fast::RandomState> = wanted.into_iter().collect();
        let children = self.children_of(wanted.iter().copied());
        let mut path = Vec::new();
        // (node, length of its parent's path, whether its children are
        // done: a node is pushed twice when children come first)
        let mut stack: Vec<(NodeId, usize, bool)> = Vec::new();
        let push_children = |stack: &mut Vec<(NodeId, usize, bool)>, id, len| {
            let kids = children.get(&id).into_iter().flatten();
            match order {
                // Popped in name order.
                Order::ParentsFirst => stack.extend(kids.rev().map(|&kid| (kid, len, false))),
                // Popped in reverse name order, each after its own children.
                Order::ChildrenFirst => stack.extend(kids.map(|&kid| (kid, len, false))),
            }
        };
        push_children(&mut stack, ROOT, 0);
        while let Some((id, parent_len, children_done)) = stack.pop() {
            path.truncate(parent_len);
            if parent_len > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(self.name_of(&self.slots[id as usize]));
            match order {
                Order::ParentsFirst => {
                    if wanted.contains(&id) {
                        visit(&path, id)?;
                    }
                    push_children(&mut stack, id, path.len());
                }
                Order::ChildrenFirst if children_done => {
                    if wanted.contains(&id) {
                        visit(&path, id)?;
                    }
                }
                Order::ChildrenFirst => {
                    stack.push((id, parent_len, true));
                    push_children(&mut stack, id, path.len());
                }
            }
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
        let name = |id: &NodeId| self.name_of(&self.slots[*id as usize]);
        for siblings in children.values_mut() {
            siblings.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        }
        children
    }

    fn name_of(&self, slot: &Slot<T>) -> &[u8] {
        name_in(&self.names, slot)
    }
}

fn name_in<'a, T>(names: &'a [u8], slot: &Slot<T>) -> &'a [u8] {
    &names[slot.name_start as usize..(slot.name_start + slot.name_len) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_interns_paths_and_find_only_finds() {
        let mut t: PathTree<u8> = PathTree::default();
        assert_eq!(t.find(b"a/b/c"), None);
        let abc = t.lookup(b"a/b/c");
        assert_eq!(t.lookup(b"a/b/c"), abc);
        assert_eq!(t.find(b"a/b/c"), Some(abc));
        assert_eq!(t.find(b"a/b"), Some(t.parent(abc)));
        assert_eq!(t.find(b"a/c"), None);
        assert_eq!(t.len(), 4);
        assert_eq!(t.path(abc), b"a/b/c");
        assert_eq!(t.path(t.parent(abc)), b"a/b");
        assert_eq!(t.lookup(b""), ROOT);
        assert_eq!(t.find(b""), Some(ROOT));
        let other = t.lookup(b"b/b/c");
        assert_ne!(other, abc);
        assert_eq!(t.path(other), b"b/b/c");
        *t.get_mut(abc) = 7;
        assert_eq!((*t.get(abc), *t.get(other)), (7, 0));
    }

    /// The paths `depth_first` visits of `paths`, in `order`.
    fn visited(paths: &[&[u8]], order: Order) -> Vec<Vec<u8>> {
        let mut t: PathTree<()> = PathTree::default();
        let wanted: Vec<NodeId> = paths.iter().map(|&p| t.lookup(p)).collect();
        t.lookup(b"unwanted/x");
        let mut seen = Vec::new();
        t.depth_first(wanted, order, |path, id| {
            assert_eq!(path, t.path(id));
            seen.push(path.to_vec());
            Ok::<_, ()>(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn depth_first_visits_parents_first_in_name_order_or_the_reverse() {
        let paths: &[&[u8]] = &[b"b", b"a-c", b"a/b/c", b"a", b"a/b", b"z/y", b"a/a"];
        let mut want: Vec<Vec<u8>> = paths.iter().map(|p| p.to_vec()).collect();
        want.sort_by(|a, b| a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/')));
        assert_eq!(
            visited(paths, Order::ParentsFirst),
            want,
            "z/y's parent z is passed through, not visited"
        );
        want.reverse();
        assert_eq!(visited(paths, Order::ChildrenFirst), want);
    }

    #[test]
    fn depth_first_stops_at_the_first_error() {
        let mut t: PathTree<()> = PathTree::default();
        let wanted = [t.lookup(b"a"), t.lookup(b"b")];
        for order in [Order::ParentsFirst, Order::ChildrenFirst] {
            let mut visits = 0;
            let outcome = t.depth_first(wanted, order, |_, _| {
                visits += 1;
                Err("full")
            });
            assert_eq!((outcome, visits), (Err("full"), 1));
        }
    }

    #[test]
    fn a_deep_chain_costs_memory_in_proportion_to_its_depth() {
        let mut t: PathTree<()> = PathTree::default();
        let deep: Vec<u8> = b"ab/".repeat(2047).into_iter().chain(*b"ab").collect();
        let leaf = t.lookup(&deep);
        assert_eq!(t.len(), 2049);
        assert_eq!(t.names.len(), 2 * 2048, "each name stored once");
        let mut visits = 0;
        t.depth_first([leaf], Order::ParentsFirst, |path, _| {
            assert_eq!(path, deep.as_slice());
            visits += 1;
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(visits, 1);
    }
}
