//! Hard-link groups: links waiting for the inode they share.
//!
//! Reading newest layer first, a hard link is usually seen before its
//! target. Links that share one inode form a group. A group waits for its
//! target (path and the layer it was seen from), or, when its target was
//! an earlier member of the same layer whose data was already skipped, for
//! a second read of that layer. Once the inode's data has been written
//! somewhere (its "home"), every member becomes a hard link to that home.

use crate::tree::NodeId;
use std::collections::HashMap;

/// Index of a group.
pub type GroupId = u32;

/// What a group waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The first version of `target` found at or below layer `view`.
    Target {
        /// The path the links name.
        target: NodeId,
        /// The layer of the links: the target is looked up as the tree
        /// stood once this layer was applied.
        view: u32,
    },
    /// Member number `ordinal` of layer `layer`, read again at the end.
    Reread {
        /// The layer to read again.
        layer: u32,
        /// Which member of it.
        ordinal: u32,
    },
    /// Nothing: resolved, dropped or merged into another group.
    Done,
}

/// Links sharing one inode.
#[derive(Debug, Clone)]
pub struct Group {
    /// Visible link paths not yet written, in the order they were seen.
    pub members: Vec<NodeId>,
    /// Where the inode's data was written, once it has been.
    pub home: Option<NodeId>,
    /// What the group is waiting for.
    pub wait: Wait,
    /// The group this one was merged into (its links turned out to share
    /// that group's inode), if any.
    merged_into: Option<GroupId>,
}

/// All groups, and an index from target path to the groups waiting on it.
#[derive(Default)]
pub struct Links {
    groups: Vec<Group>,
    waiting_on: HashMap<NodeId, Vec<GroupId>, foldhash::fast::RandomState>,
}

impl Links {
    /// The group waiting for `target` as seen from layer `view`, created if
    /// none exists yet (links of one layer to one target share a group).
    pub fn await_target(&mut self, target: NodeId, view: u32) -> GroupId {
        let waiting = self.waiting_on.entry(target).or_default();
        let groups = &self.groups;
        if let Some(&id) = waiting
            .iter()
            .find(|&&id| groups[id as usize].wait == (Wait::Target { target, view }))
        {
            return id;
        }
        let id = push_group(&mut self.groups, Wait::Target { target, view });
        waiting.push(id);
        id
    }

    /// A group whose inode is member `ordinal` of layer `layer`.
    pub fn await_reread(&mut self, layer: u32, ordinal: u32) -> GroupId {
        push_group(&mut self.groups, Wait::Reread { layer, ordinal })
    }

    /// Removes and returns the groups waiting on `target`, oldest first.
    pub fn take_waiting(&mut self, target: NodeId) -> Vec<GroupId> {
        self.waiting_on.remove(&target).unwrap_or_default()
    }

    /// True if some group waits on `target`.
    pub fn has_waiting(&self, target: NodeId) -> bool {
        self.waiting_on.contains_key(&target)
    }

    /// Every group still waiting on a target, for the end of the merge.
    pub fn take_all_waiting(&mut self) -> Vec<GroupId> {
        let mut all: Vec<GroupId> = self.waiting_on.drain().flat_map(|(_, ids)| ids).collect();
        all.sort_unstable();
        all
    }

    /// The group that stands for `id` now, following merges.
    pub fn find(&self, mut id: GroupId) -> GroupId {
        while let Some(next) = self.groups[id as usize].merged_into {
            id = next;
        }
        id
    }

    /// Moves the members of `from` into `into` and forwards `from` to it.
    /// Returns the moved members, which the caller must add to `into`.
    pub fn merge(&mut self, into: GroupId, from: GroupId) -> Vec<NodeId> {
        let (into, from) = (self.find(into), self.find(from));
        if into == from {
            return Vec::new();
        }
        let group = &mut self.groups[from as usize];
        group.merged_into = Some(into);
        group.wait = Wait::Done;
        std::mem::take(&mut group.members)
    }

    /// A group.
    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id as usize]
    }

    /// A group, for updating.
    pub fn group_mut(&mut self, id: GroupId) -> &mut Group {
        &mut self.groups[id as usize]
    }

    /// Groups waiting for a second read, in a stable order.
    pub fn rereads(&self) -> Vec<(u32, u32, GroupId)> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(id, g)| match g.wait {
                Wait::Reread { layer, ordinal } if !g.members.is_empty() => {
                    Some((layer, ordinal, id as GroupId))
                }
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out
    }
}

fn push_group(groups: &mut Vec<Group>, wait: Wait) -> GroupId {
    let id = GroupId::try_from(groups.len()).expect("fewer than 2^32 link groups");
    groups.push(Group {
        members: Vec::new(),
        home: None,
        wait,
        merged_into: None,
    });
    id
}
