//! Hard-link groups: links waiting for the inode they share.
//!
//! Reading newest layer first, a hard link is usually seen before its
//! target. Links that share one inode form a group. A group waits for its
//! target (path and the layer it was seen from), or, when its target was
//! an earlier member of the same layer whose data was already skipped, for
//! a second read of that layer. Once the inode's data has been written
//! somewhere (its "home"), every member becomes a hard link to that home.
//!
//! [`Links`] only decides. Each time the merge meets an entry that matters
//! to links it asks `Links`, which answers with the [`LayerVersion`] to
//! record for the entry and appends [`Action`]s (write this entry's data
//! there, write a link here, warn that a link is dropped) for the merge to
//! carry out in order. Actions name nodes, never paths: the merge turns
//! them into paths, writes the tar and counts what it wrote.

use crate::merge::tree::{LayerVersion, NodeId, Tree, NO_LAYER};
use crate::tar::entry::EntryMeta;
use std::collections::HashMap;

/// Index of a group.
pub type GroupId = u32;

/// Index of an inode written while one layer is read (the payload of
/// [`LayerVersion::Home`]).
pub type HomeId = u32;

/// An inode whose data is in the output: where, and the header fields a
/// hard link to it repeats.
///
/// A link header carries ownership, mode and time, but extractors take the
/// inode (and so all of these) from the target; the merge writes the
/// target's values in every link header so that the tar says what an
/// extractor does, whatever the link's own header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    /// The node whose entry holds the data.
    pub home: NodeId,
    /// Permission bits.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time in whole seconds.
    pub mtime: u64,
}

impl Inode {
    /// The inode described by `meta`, written at `home`.
    pub fn at(home: NodeId, meta: &EntryMeta) -> Inode {
        Inode {
            home,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
        }
    }
}

/// Something the merge must do for links, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write the data of the entry being applied at `home`: the entry's own
    /// node, or, when a newer layer hides the entry, the first link to it
    /// that is in the output (the link is promoted to a regular file).
    WriteData {
        /// Where the data goes.
        home: NodeId,
    },
    /// Write a hard link at `link` to `inode`, whose data is written.
    WriteLink {
        /// The link's node.
        link: NodeId,
        /// What it links to.
        inode: Inode,
    },
    /// Warn that the link at `link`, naming `target`, is dropped: the
    /// target does not exist as the link's layer sees the tree.
    DropLink {
        /// The link's node.
        link: NodeId,
        /// The node the link names.
        target: NodeId,
        /// When that was found, which the warning says.
        noticed: Noticed,
    },
}

/// When a dangling hard link was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    /// While reading its own layer (`.0`): the target was already known
    /// not to exist there.
    InItsLayer(u32),
    /// Later: the layers below had no target, or the link's own layer had
    /// deleted it.
    Below,
}

/// A hard link names a directory, so the layer holding it cannot be
/// applied; `dir` is the directory's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkToDirectory {
    /// The directory.
    pub dir: NodeId,
    /// How the directory showed itself.
    pub seen: DirectorySeen,
}

/// How a directory that a hard link names was found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectorySeen {
    /// By its own entry, earlier in the link's layer.
    Entry,
    /// By entries below it, earlier in the link's layer.
    Implied,
    /// While the link waited for its target: by the directory's entry or
    /// entries below it, later in the link's layer or in a lower one.
    Later,
}

/// What to record for a hard link entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkVersions {
    /// The link's own version in its layer.
    pub link: LayerVersion,
    /// The target's new version, when the link made a skipped file of its
    /// layer into a group waiting for a second read.
    pub target: Option<LayerVersion>,
}

/// A group waiting for a second read of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reread {
    /// The layer to read again.
    pub layer: u32,
    /// The member of it that holds the group's data.
    pub ordinal: u32,
    /// The group.
    pub group: GroupId,
}

/// What a group waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
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
struct Group {
    /// Visible link paths not yet written, in the order they were seen.
    members: Vec<NodeId>,
    /// The inode, once its data is written.
    home: Option<Inode>,
    /// What the group is waiting for.
    wait: Wait,
    /// The group this one was merged into (its links turned out to share
    /// that group's inode), if any.
    merged_into: Option<GroupId>,
}

/// All groups, an index from target path to the groups waiting on it, and
/// the inodes written in the layer being read.
pub struct Links {
    groups: Vec<Group>,
    waiting_on: HashMap<NodeId, Vec<GroupId>, foldhash::fast::RandomState>,
    /// Inodes written while reading `homes_layer`, indexed by
    /// [`LayerVersion::Home`]. Only links of the same layer can name them
    /// through a version, so the table is emptied when the next layer
    /// starts: it grows with one layer's files, not the image's.
    homes: Vec<Inode>,
    homes_layer: u32,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            groups: Vec::new(),
            waiting_on: HashMap::default(),
            homes: Vec::new(),
            homes_layer: NO_LAYER,
        }
    }
}

impl Links {
    /// A directory at `id`: its entry, or entries below it. Links waiting
    /// on `id` that see it name a directory, an error even when a newer
    /// layer hides every one of them (the layer holding them cannot be
    /// applied); those whose layer deleted it dangle.
    pub fn directory_arrives(
        &mut self,
        tree: &Tree,
        id: NodeId,
        actions: &mut Vec<Action>,
    ) -> Result<(), LinkToDirectory> {
        // Checked first: this runs for every parent of every entry.
        if !self.waiting_on.contains_key(&id) {
            return Ok(());
        }
        if self.resolve(tree, id, actions).is_empty() {
            return Ok(());
        }
        Err(LinkToDirectory {
            dir: id,
            seen: DirectorySeen::Later,
        })
    }

    /// A regular file, symlink, device or FIFO: member `ordinal` of `layer`
    /// at `id`, described by `meta`, in the output if `visible`. Its data
    /// is written if it or a link to it is in the output; otherwise links
    /// to it that later entries of this layer add wait for a second read.
    pub fn file_arrives(
        &mut self,
        tree: &Tree,
        (layer, ordinal): (u32, u32),
        id: NodeId,
        visible: bool,
        meta: &EntryMeta,
        actions: &mut Vec<Action>,
    ) -> LayerVersion {
        let groups = self.resolve(tree, id, actions);
        let home = if visible {
            Some(id)
        } else {
            groups
                .iter()
                .find_map(|&g| self.groups[g as usize].members.first().copied())
        };
        let Some(home) = home else {
            return self.await_second_read(layer, ordinal, &groups, actions);
        };
        let inode = Inode::at(home, meta);
        self.write_data(inode, &groups, actions);
        LayerVersion::Home(self.add_home(layer, inode))
    }

    /// A hard link at `id` in `layer` naming `target`, in the output if
    /// `visible`. Older links that named `id` share whatever it shares.
    pub fn link_arrives(
        &mut self,
        tree: &Tree,
        layer: u32,
        id: NodeId,
        target: NodeId,
        visible: bool,
        actions: &mut Vec<Action>,
    ) -> Result<LinkVersions, LinkToDirectory> {
        let versions = self.reference(tree, layer, id, target)?;
        let chained = self.resolve(tree, id, actions);
        for g in chained {
            match versions.link {
                LayerVersion::Home(h) => self.settle(g, self.homes[h as usize], actions),
                LayerVersion::Group(into) => self.merge_groups(into, g, actions),
                _ => self.drop_group(g, target, Noticed::Below, actions),
            }
        }
        if visible {
            match versions.link {
                LayerVersion::Home(h) => actions.push(Action::WriteLink {
                    link: id,
                    inode: self.homes[h as usize],
                }),
                LayerVersion::Group(g) => self.add_member(g, id, actions),
                _ => actions.push(Action::DropLink {
                    link: id,
                    target,
                    noticed: Noticed::InItsLayer(layer),
                }),
            }
        }
        Ok(versions)
    }

    /// Groups waiting for a second read, in the order their layers and
    /// members come (layers base first).
    pub fn rereads(&self) -> Vec<Reread> {
        let mut out: Vec<_> = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(id, g)| match g.wait {
                Wait::Reread { layer, ordinal } if !g.members.is_empty() => Some(Reread {
                    layer,
                    ordinal,
                    group: id as GroupId,
                }),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The second read found the data of `group`, described by `meta`: it
    /// goes to the group's first link, the others link to that.
    pub fn reread_arrives(&mut self, group: GroupId, meta: &EntryMeta, actions: &mut Vec<Action>) {
        let home = self.groups[group as usize].members[0];
        self.write_data(Inode::at(home, meta), &[group], actions);
    }

    /// At the end of the merge: links whose target never showed up are
    /// dropped.
    pub fn drop_unresolved(&mut self, actions: &mut Vec<Action>) {
        let mut all: Vec<GroupId> = self.waiting_on.drain().flat_map(|(_, ids)| ids).collect();
        all.sort_unstable();
        for g in all {
            if let Wait::Target { target, .. } = self.groups[g as usize].wait {
                self.drop_group(g, target, Noticed::Below, actions);
            }
        }
    }

    /// The inode a hard link at `id` in `layer` shares: its target's
    /// version in this layer if the target came earlier, else a group
    /// waiting for the target in the layers below.
    fn reference(
        &mut self,
        tree: &Tree,
        layer: u32,
        id: NodeId,
        target: NodeId,
    ) -> Result<LinkVersions, LinkToDirectory> {
        let shares = |link| LinkVersions { link, target: None };
        if target == id {
            return Ok(shares(LayerVersion::Dangling));
        }
        let node = tree.node(target);
        let directory = |seen| LinkToDirectory { dir: target, seen };
        if node.implied_in(layer) {
            return Err(directory(DirectorySeen::Implied));
        }
        let Some(version) = node.version_in(layer) else {
            let g = self.await_target(target, layer);
            return Ok(shares(LayerVersion::Group(g)));
        };
        Ok(match version {
            LayerVersion::Group(g) => shares(LayerVersion::Group(self.find(g))),
            LayerVersion::Skipped(ordinal) => {
                let g = push_group(&mut self.groups, Wait::Reread { layer, ordinal });
                LinkVersions {
                    link: LayerVersion::Group(g),
                    target: Some(LayerVersion::Group(g)),
                }
            }
            LayerVersion::Dir => return Err(directory(DirectorySeen::Entry)),
            other => shares(other),
        })
    }

    /// The group waiting for `target` as seen from layer `view`, created if
    /// none exists yet (links of one layer to one target share a group).
    fn await_target(&mut self, target: NodeId, view: u32) -> GroupId {
        let wait = Wait::Target { target, view };
        let waiting = self.waiting_on.entry(target).or_default();
        let groups = &self.groups;
        if let Some(&id) = waiting.iter().find(|&&id| groups[id as usize].wait == wait) {
            return id;
        }
        let id = push_group(&mut self.groups, wait);
        waiting.push(id);
        id
    }

    /// No link in the output needs a file's data yet, but the `groups`
    /// waiting on it may still gain members from later entries of its
    /// layer: they become one group that a second read of the file
    /// settles.
    fn await_second_read(
        &mut self,
        layer: u32,
        ordinal: u32,
        groups: &[GroupId],
        actions: &mut Vec<Action>,
    ) -> LayerVersion {
        let Some((&first, rest)) = groups.split_first() else {
            return LayerVersion::Skipped(ordinal);
        };
        self.groups[first as usize].wait = Wait::Reread { layer, ordinal };
        for &g in rest {
            self.merge_groups(first, g, actions);
        }
        LayerVersion::Group(first)
    }

    /// Removes the groups waiting on `id` and returns those for which the
    /// entry at `id` is the target they name; those whose view of the tree
    /// had the target deleted dangle and are dropped.
    fn resolve(&mut self, tree: &Tree, id: NodeId, actions: &mut Vec<Action>) -> Vec<GroupId> {
        let mut resolved = Vec::new();
        for g in self.waiting_on.remove(&id).unwrap_or_default() {
            let Wait::Target { view, .. } = self.groups[g as usize].wait else {
                continue;
            };
            self.groups[g as usize].wait = Wait::Done;
            if tree.masked_at_or_below(id, view) {
                self.drop_group(g, id, Noticed::Below, actions);
            } else {
                resolved.push(g);
            }
        }
        resolved
    }

    /// Writes the data at `inode.home` and settles `groups` on it.
    fn write_data(&mut self, inode: Inode, groups: &[GroupId], actions: &mut Vec<Action>) {
        actions.push(Action::WriteData { home: inode.home });
        for &g in groups {
            self.settle(g, inode, actions);
        }
    }

    /// Drops the links of a group whose target does not exist.
    fn drop_group(
        &mut self,
        g: GroupId,
        target: NodeId,
        noticed: Noticed,
        actions: &mut Vec<Action>,
    ) {
        let group = &mut self.groups[g as usize];
        group.wait = Wait::Done;
        for link in std::mem::take(&mut group.members) {
            actions.push(Action::DropLink {
                link,
                target,
                noticed,
            });
        }
    }

    /// The inode of group `g` is written: its members become links to it.
    fn settle(&mut self, g: GroupId, inode: Inode, actions: &mut Vec<Action>) {
        let group = &mut self.groups[g as usize];
        group.home = Some(inode);
        group.wait = Wait::Done;
        for link in std::mem::take(&mut group.members) {
            if link != inode.home {
                actions.push(Action::WriteLink { link, inode });
            }
        }
    }

    /// Group `from` turned out to share group `into`'s inode.
    fn merge_groups(&mut self, into: GroupId, from: GroupId, actions: &mut Vec<Action>) {
        let (into, from) = (self.find(into), self.find(from));
        if into == from {
            return;
        }
        let group = &mut self.groups[from as usize];
        group.merged_into = Some(into);
        group.wait = Wait::Done;
        for member in std::mem::take(&mut group.members) {
            self.add_member(into, member, actions);
        }
    }

    /// A link at `member` shares group `g`'s inode: it is written at once
    /// if the inode is, else it waits with the group.
    fn add_member(&mut self, g: GroupId, member: NodeId, actions: &mut Vec<Action>) {
        let g = self.find(g);
        let group = &mut self.groups[g as usize];
        match group.home {
            Some(inode) => actions.push(Action::WriteLink {
                link: member,
                inode,
            }),
            None => group.members.push(member),
        }
    }

    /// The group that stands for `id` now, following merges.
    fn find(&self, mut id: GroupId) -> GroupId {
        while let Some(next) = self.groups[id as usize].merged_into {
            id = next;
        }
        id
    }

    /// Records an inode written while reading `layer`.
    fn add_home(&mut self, layer: u32, inode: Inode) -> HomeId {
        if self.homes_layer != layer {
            self.homes.clear();
            self.homes_layer = layer;
        }
        let id = HomeId::try_from(self.homes.len()).expect("fewer than 2^32 files in a layer");
        self.homes.push(inode);
        id
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::entry::Kind;

    fn file(mode: u32) -> EntryMeta {
        EntryMeta {
            kind: Kind::Regular,
            mode,
            uid: 1,
            gid: 2,
            mtime: 3,
            size: 0,
            link_target: Vec::new(),
            device: (0, 0),
            pax: Vec::new(),
        }
    }

    #[test]
    fn a_link_waits_for_its_target_then_follows_its_data() {
        let (mut tree, mut links, mut actions) = (Tree::new(), Links::default(), Vec::new());
        let (l, t) = (tree.lookup(b"l"), tree.lookup(b"t"));
        let versions = links.link_arrives(&tree, 0, l, t, true, &mut actions);
        assert!(matches!(
            versions,
            Ok(LinkVersions {
                link: LayerVersion::Group(_),
                target: None
            })
        ));
        assert_eq!(actions, [], "nothing to write before the data");
        let meta = file(0o640);
        let version = links.file_arrives(&tree, (0, 1), t, true, &meta, &mut actions);
        assert_eq!(version, LayerVersion::Home(0));
        let inode = Inode::at(t, &meta);
        assert_eq!(
            actions,
            [
                Action::WriteData { home: t },
                Action::WriteLink { link: l, inode }
            ]
        );
    }

    #[test]
    fn a_hidden_target_is_written_at_its_first_link() {
        let (mut tree, mut links, mut actions) = (Tree::new(), Links::default(), Vec::new());
        let (a, b, t) = (tree.lookup(b"a"), tree.lookup(b"b"), tree.lookup(b"t"));
        for link in [a, b] {
            links
                .link_arrives(&tree, 1, link, t, true, &mut actions)
                .unwrap();
        }
        let meta = file(0o600);
        links.file_arrives(&tree, (0, 0), t, false, &meta, &mut actions);
        let inode = Inode::at(a, &meta);
        assert_eq!(
            actions,
            [
                Action::WriteData { home: a },
                Action::WriteLink { link: b, inode }
            ]
        );
    }

    #[test]
    fn a_link_to_a_directory_of_its_layer_is_refused() {
        let (mut tree, mut links, mut actions) = (Tree::new(), Links::default(), Vec::new());
        let (l, d) = (tree.lookup(b"l"), tree.lookup(b"d"));
        tree.node_mut(d).set_version(0, LayerVersion::Dir);
        let refused = links.link_arrives(&tree, 0, l, d, true, &mut actions);
        assert_eq!(
            refused,
            Err(LinkToDirectory {
                dir: d,
                seen: DirectorySeen::Entry
            })
        );
    }
}
