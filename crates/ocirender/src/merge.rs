//! The streaming overlay merge: many layer tars in, one tar out.
//!
//! Layers are read newest first. The first time a path is seen is then its
//! final version, so it can be written at once and the output streams while
//! older layers are still being decoded. What a newer layer did to older
//! content is recorded in the [`Tree`] as it goes:
//!
//! * an entry *claims* its path, so older versions are dropped;
//! * a `.wh.NAME` whiteout hides NAME and everything below it, an opaque
//!   marker hides a directory's children, and any non-directory hides the
//!   subtree an older directory had at its path. These *masks* act on lower
//!   layers only, so they are staged while their layer is read and committed
//!   after it;
//! * parents that an entry needs but whose own entry is older are claimed as
//!   implicit directories; a lower directory entry gives them metadata, and
//!   those no layer describes get `0755 root:root`;
//! * directory entries carry no data, so they are kept and written last,
//!   parents first, where extractors apply their metadata after the
//!   contents (see `write_directories`);
//! * hard links wait in groups for the inode they name (see [`crate::links`]).

use crate::chunk_pipe::ProducerError;
use crate::decode::{DecodedLayer, Prefetcher};
use crate::layer_ref::LayerRef;
use crate::links::{GroupId, Links, Wait};
use crate::meta::{self, Kind, Member, Meta};
use crate::path::{self, display};
use crate::tar_writer::TarWriter;
use crate::tree::{Claim, LayerVersion, NodeId, Tree, ROOT};
use crate::whiteout::{self, Marker};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};

/// Tuning of a merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Layers decoded at once (the current one included).
    pub read_ahead: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions { read_ahead: 2 }
    }
}

/// Counts describing a finished merge.
#[derive(Debug, Clone, Default)]
pub struct MergeStats {
    /// Layers merged.
    pub layers: usize,
    /// Tar members read from all layers.
    pub members_read: u64,
    /// Entries written to the output.
    pub entries_written: u64,
    /// Bytes of output, end-of-archive marker included.
    pub bytes_written: u64,
    /// Bytes of layer blobs read (compressed, as stored).
    pub stored_bytes_read: u64,
    /// Warnings issued.
    pub warnings: u64,
    /// Distinct paths seen.
    pub paths: usize,
}

/// Merges `layers` (base first) into one tar written to `out`.
///
/// Warnings (one line each, without a program prefix) go to `warn`. On
/// error, `out` holds a prefix of the archive without its end-of-archive
/// marker.
pub fn merge<W: Write>(
    layers: &[LayerRef],
    out: W,
    options: &MergeOptions,
    warn: &mut dyn FnMut(&str),
) -> Result<(W, MergeStats)> {
    if layers.is_empty() {
        bail!("no layers to merge: the layer list is empty");
    }
    let mut merger = Merger::new(layers, out, warn);
    match merger.merge_all(options) {
        Ok(()) => merger.finish(),
        Err(err) => {
            merger.out.abandon();
            Err(err)
        }
    }
}

/// Errors from the layer's bytes (I/O, decompression, digest) speak for
/// themselves; anything else the tar reader reports is a malformed tar.
fn tar_stream_error(err: std::io::Error, ordinal: u32) -> anyhow::Error {
    if ProducerError::is_in(&err) {
        anyhow::Error::new(err)
    } else {
        anyhow::Error::new(err).context(format!("invalid tar stream after {ordinal} members"))
    }
}

/// Mask kinds staged during a layer.
#[derive(Debug, Clone, Copy)]
enum Mask {
    /// Hide the path and everything below it.
    Whiteout(NodeId),
    /// Hide everything below the path.
    Children(NodeId),
}

/// Whether an entry makes it into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Visible,
    Hidden,
    /// A conflicting second entry for a path in one layer: ignored entirely.
    Duplicate,
}

/// What the walk down an entry's path found (see `Merger::walk`).
struct Walk {
    /// The entry's node.
    id: NodeId,
    /// How many of the shallowest parents in `Merger::parents` no newer
    /// layer removed; the deeper ones are removed.
    kept: usize,
    /// A newer layer removed the entry itself.
    masked: bool,
    /// A parent is a non-directory claimed by this same layer: the entry
    /// conflicts with it.
    under_same_layer_file: bool,
}

struct Merger<'a, W: Write> {
    layers: &'a [LayerRef],
    tree: Tree,
    links: Links,
    out: TarWriter<W>,
    staged: Vec<Mask>,
    implicit_dirs: Vec<NodeId>,
    /// Directory entries, written at the end (see `write_directories`).
    directories: Vec<(NodeId, Meta)>,
    /// The parents of the entry being claimed, shallowest first; reused
    /// from entry to entry so that claiming allocates nothing.
    parents: Vec<NodeId>,
    warn: &'a mut dyn FnMut(&str),
    stats: MergeStats,
    reserved_skipped: u64,
}

impl<'a, W: Write> Merger<'a, W> {
    fn new(layers: &'a [LayerRef], out: W, warn: &'a mut dyn FnMut(&str)) -> Self {
        Merger {
            layers,
            tree: Tree::new(),
            links: Links::default(),
            out: TarWriter::new(out),
            staged: Vec::new(),
            implicit_dirs: Vec::new(),
            directories: Vec::new(),
            parents: Vec::new(),
            warn,
            stats: MergeStats {
                layers: layers.len(),
                ..MergeStats::default()
            },
            reserved_skipped: 0,
        }
    }

    fn label(&self, layer: u32) -> String {
        format!(
            "layer {}/{} ({})",
            layer + 1,
            self.layers.len(),
            self.layers[layer as usize].describe()
        )
    }

    fn warn(&mut self, message: String) {
        self.stats.warnings += 1;
        (self.warn)(&message);
    }

    fn warn_in(&mut self, layer: u32, message: String) {
        let label = self.label(layer);
        self.warn(format!("{label}: {message}"));
    }

    fn merge_all(&mut self, options: &MergeOptions) -> Result<()> {
        let layers = self.layers;
        let mut prefetch = Prefetcher::new(layers.iter().rev().cloned(), options.read_ahead);
        for index in (0..layers.len() as u32).rev() {
            let stream = prefetch.next_layer().expect("one stream per layer");
            let label = self.label(index);
            self.merge_layer(index, stream).context(label)?;
            self.commit_masks(index);
        }
        self.drop_unresolved_links();
        self.reread_promotions()?;
        self.write_directories()
    }

    fn merge_layer(&mut self, layer: u32, stream: DecodedLayer) -> Result<()> {
        let mut archive = tar::Archive::new(stream);
        let mut ordinal = 0u32;
        for entry in archive
            .entries_with_seek()
            .context("cannot read tar stream")?
        {
            let mut entry = entry.map_err(|err| tar_stream_error(err, ordinal))?;
            if let Member::Entry {
                path,
                meta,
                storage,
            } = meta::read_member(&mut entry)?
            {
                self.apply(
                    layer,
                    ordinal,
                    &path,
                    meta,
                    &mut storage.contents(&mut entry),
                )
                .with_context(|| meta::entry_label(&path))?;
            }
            ordinal += 1;
        }
        self.stats.members_read += u64::from(ordinal);
        let summary = archive.into_inner().finish()?;
        self.stats.stored_bytes_read += summary.stored_bytes;
        if self.reserved_skipped > 0 {
            let n = std::mem::take(&mut self.reserved_skipped);
            self.warn_in(
                layer,
                format!("skipped {n} AUFS metadata entries (.wh..wh.*)"),
            );
        }
        Ok(())
    }

    /// Applies the masks a layer staged, so they act on the layers below.
    fn commit_masks(&mut self, layer: u32) {
        for mask in std::mem::take(&mut self.staged) {
            match mask {
                Mask::Whiteout(id) => self.tree.node_mut(id).white_out(layer),
                Mask::Children(id) => self.tree.node_mut(id).hide_children(layer),
            }
        }
    }

    fn apply(
        &mut self,
        layer: u32,
        ordinal: u32,
        raw: &[u8],
        meta: Meta,
        data: &mut dyn Read,
    ) -> Result<()> {
        let path = path::normalize(raw)?;
        if path.is_empty() {
            if !meta.kind.is_dir() {
                self.warn_in(
                    layer,
                    format!("ignored a {:?} entry for the root directory", meta.kind),
                );
            }
            return Ok(());
        }
        match whiteout::classify(&path)? {
            Marker::Whiteout(hidden) => {
                let id = self.tree.lookup(&hidden);
                self.staged.push(Mask::Whiteout(id));
            }
            Marker::Opaque(dir) => {
                let id = self.tree.lookup(dir);
                self.staged.push(Mask::Children(id));
            }
            Marker::Reserved => self.reserved_skipped += 1,
            Marker::None => match meta.kind {
                Kind::Directory => self.apply_dir(layer, &path, &meta)?,
                Kind::HardLink => self.apply_hard_link(layer, &path, &meta)?,
                _ => self.apply_file(layer, ordinal, &path, &meta, data)?,
            },
        }
        Ok(())
    }

    /// Decides whether the entry at `path` of `layer` is the final version of
    /// its path, and claims the path if so. Whatever the entry's fate, its
    /// parents existed in its layer: those no newer layer removed are
    /// claimed as (implicit) directories.
    fn claim(&mut self, layer: u32, path: &[u8], is_dir: bool) -> Result<(NodeId, Visibility)> {
        let walk = self.walk(layer, path);
        let node = self.tree.node(walk.id);
        if node.version_in(layer).is_some()
            || (node.claim() == Claim::ImplicitDir && node.claim_layer() == layer && !is_dir)
            || walk.under_same_layer_file
        {
            let message = format!(
                "duplicate or conflicting entry {:?}; keeping the first",
                display(path)
            );
            self.warn_in(layer, message);
            return Ok((walk.id, Visibility::Duplicate));
        }
        self.claim_parents(layer, walk.kept)?;
        if walk.masked {
            return Ok((walk.id, Visibility::Hidden));
        }
        let visible = match (self.tree.node(walk.id).claim(), is_dir) {
            (Claim::Unclaimed, _) | (Claim::ImplicitDir, true) => true,
            (Claim::ImplicitDir, false) => {
                self.directory_wins(layer, walk.id, path)?;
                false
            }
            (Claim::Dir | Claim::NonDir, _) => false,
        };
        if !visible {
            return Ok((walk.id, Visibility::Hidden));
        }
        let claim = if is_dir { Claim::Dir } else { Claim::NonDir };
        self.tree.node_mut(walk.id).claim_by(claim, layer);
        Ok((walk.id, Visibility::Visible))
    }

    /// Walks from the root to `path`'s node, creating nodes as needed, and
    /// notes its parents in `self.parents` and what newer layers did to
    /// them. A mask hides everything below it, so once one parent is
    /// removed all deeper ones are: the removed parents are the deepest.
    fn walk(&mut self, layer: u32, path: &[u8]) -> Walk {
        self.parents.clear();
        let mut walk = Walk {
            id: ROOT,
            kept: 0,
            masked: false,
            under_same_layer_file: false,
        };
        let mut components = path.split(|&b| b == b'/').peekable();
        while let Some(name) = components.next() {
            walk.masked |= self.tree.node(walk.id).children_hidden();
            walk.id = self.tree.child(walk.id, name);
            let node = self.tree.node(walk.id);
            walk.masked |= node.whited_out();
            if components.peek().is_none() {
                break;
            }
            if node.claim() == Claim::NonDir {
                walk.masked = true;
                walk.under_same_layer_file |= node.claim_layer() == layer;
            }
            walk.kept += usize::from(!walk.masked);
            self.parents.push(walk.id);
        }
        walk
    }

    /// Claims the `kept` shallowest parents that `walk` noted as implicit
    /// directories; a newer layer removed the deeper ones. Every parent,
    /// removed or not, is a directory in this layer: links waiting on one
    /// name a directory. Deepest first: of several parents that waiting
    /// links name, the error names the deepest.
    fn claim_parents(&mut self, layer: u32, kept: usize) -> Result<()> {
        for depth in (0..self.parents.len()).rev() {
            let parent = self.parents[depth];
            self.imply_dir(layer, parent)?;
            if depth < kept && self.tree.node(parent).claim() == Claim::Unclaimed {
                self.tree
                    .node_mut(parent)
                    .claim_by(Claim::ImplicitDir, layer);
                self.implicit_dirs.push(parent);
            }
        }
        Ok(())
    }

    /// Records that `id` is a directory in `layer` because an entry lives
    /// below it.
    fn imply_dir(&mut self, layer: u32, id: NodeId) -> Result<()> {
        self.tree.node_mut(id).imply_dir(layer);
        self.check_no_link_to_dir(id)
    }

    /// A newer layer needs `path` as a directory (it has contents there) but
    /// this layer has a non-directory at it. As in overlayfs, the directory
    /// wins; it is a new directory, so it gets no metadata from below this
    /// layer and gets the defaults.
    fn directory_wins(&mut self, layer: u32, id: NodeId, path: &[u8]) -> Result<()> {
        let newer = self.tree.node(id).claim_layer();
        let message = format!(
            "{:?} is a directory in {} (implied by its contents) and a non-directory here; the directory wins",
            display(path),
            self.label(newer)
        );
        self.warn_in(layer, message);
        self.directories.push((id, Meta::implicit_dir()));
        self.tree.node_mut(id).claim_by(Claim::Dir, newer);
        Ok(())
    }

    fn set_version(&mut self, id: NodeId, layer: u32, version: LayerVersion) {
        self.tree.node_mut(id).set_version(layer, version);
    }

    fn apply_dir(&mut self, layer: u32, path: &[u8], meta: &Meta) -> Result<()> {
        let (id, visibility) = self.claim(layer, path, true)?;
        if visibility == Visibility::Duplicate {
            return Ok(());
        }
        self.check_no_link_to_dir(id)?;
        self.set_version(id, layer, LayerVersion::Dir);
        if visibility == Visibility::Visible {
            self.directories.push((id, meta.clone()));
        }
        Ok(())
    }

    /// Links waiting on a path that turns out to be a directory are an error.
    fn check_no_link_to_dir(&mut self, id: NodeId) -> Result<()> {
        if !self.links.has_waiting(id) {
            return Ok(());
        }
        let (resolved, dangling) = self.take_resolving(id);
        self.drop_dangling(id, &dangling);
        // An error even when a newer layer hides every link of the group:
        // the layer that holds them cannot be applied.
        if !resolved.is_empty() {
            bail!(
                "a hard link names the directory {:?}",
                display(&self.tree.path(id))
            );
        }
        Ok(())
    }

    /// Regular files, symlinks, devices and FIFOs.
    fn apply_file(
        &mut self,
        layer: u32,
        ordinal: u32,
        path: &[u8],
        meta: &Meta,
        data: &mut dyn Read,
    ) -> Result<()> {
        let (id, visibility) = self.claim(layer, path, false)?;
        if visibility == Visibility::Duplicate {
            return Ok(());
        }
        self.staged.push(Mask::Children(id));
        let (groups, dangling) = self.take_resolving(id);
        self.drop_dangling(id, &dangling);
        let home = if visibility == Visibility::Visible {
            Some(id)
        } else {
            groups
                .iter()
                .find_map(|&g| self.links.group(g).members.first().copied())
        };
        let Some(home) = home else {
            // Nobody needs the data yet, but links waiting on this inode may
            // still gain members from later entries of this layer: make them
            // one group that a second read of this entry can settle.
            let version = match groups.split_first() {
                Some((&first, rest)) => {
                    self.links.group_mut(first).wait = Wait::Reread { layer, ordinal };
                    for &g in rest {
                        self.merge_groups(first, g, meta)?;
                    }
                    LayerVersion::Group(first)
                }
                None => LayerVersion::Skipped(ordinal),
            };
            self.set_version(id, layer, version);
            return Ok(());
        };
        let home_path = if home == id {
            path.to_vec()
        } else {
            self.tree.path(home)
        };
        self.out.write_entry(&home_path, meta, data)?;
        self.stats.entries_written += 1;
        self.set_version(id, layer, LayerVersion::Home(home));
        for g in groups {
            self.settle_group(g, home, &home_path, meta)?;
        }
        Ok(())
    }

    fn apply_hard_link(&mut self, layer: u32, path: &[u8], meta: &Meta) -> Result<()> {
        let target = path::normalize(&meta.link_target).context("bad hard link target")?;
        if target.is_empty() {
            bail!("hard link to the root directory");
        }
        let (id, visibility) = self.claim(layer, path, false)?;
        if visibility == Visibility::Duplicate {
            return Ok(());
        }
        self.staged.push(Mask::Children(id));
        let target_id = self.tree.lookup(&target);
        let shared = self.link_reference(layer, id, target_id)?;
        // Older links that named this path share whatever this link shares.
        let (chained, dangling) = self.take_resolving(id);
        self.drop_dangling(id, &dangling);
        match shared {
            LayerVersion::Home(home) => {
                let home_path = self.tree.path(home);
                for g in chained {
                    self.settle_group(g, home, &home_path, meta)?;
                }
            }
            LayerVersion::Group(into) => {
                for g in chained {
                    self.merge_groups(into, g, meta)?;
                }
            }
            _ => {
                for g in chained {
                    self.drop_group(g, &target);
                }
            }
        }
        self.set_version(id, layer, shared);
        if visibility != Visibility::Visible {
            return Ok(());
        }
        match shared {
            LayerVersion::Home(home) => {
                let home_path = self.tree.path(home);
                self.out.write_hard_link(path, &home_path, meta)?;
                self.stats.entries_written += 1;
            }
            LayerVersion::Group(g) => self.add_member(g, id, meta)?,
            _ => self.warn_in(
                layer,
                format!(
                    "hard link {:?} names {:?}, which does not exist; dropped",
                    display(path),
                    display(&target)
                ),
            ),
        }
        Ok(())
    }

    /// The inode a hard link at `id` in `layer` shares: its target's version
    /// in this layer if the target came earlier, else a group waiting for
    /// the target in the layers below.
    fn link_reference(&mut self, layer: u32, id: NodeId, target: NodeId) -> Result<LayerVersion> {
        if target == id {
            return Ok(LayerVersion::Dangling);
        }
        let node = self.tree.node(target);
        if node.implied_in(layer) {
            bail!(
                "hard link to the directory {:?} (implied by entries below it)",
                display(&self.tree.path(target))
            );
        }
        let Some(version) = node.version_in(layer) else {
            return Ok(LayerVersion::Group(self.links.await_target(target, layer)));
        };
        Ok(match version {
            LayerVersion::Group(g) => LayerVersion::Group(self.links.find(g)),
            LayerVersion::Skipped(ordinal) => {
                let g = self.links.await_reread(layer, ordinal);
                self.set_version(target, layer, LayerVersion::Group(g));
                LayerVersion::Group(g)
            }
            LayerVersion::Dir => bail!(
                "hard link to the directory {:?}",
                display(&self.tree.path(target))
            ),
            other => other,
        })
    }

    /// Removes the groups waiting on `id`, split into those for which this
    /// layer's entry is the target they name, and those whose view of the
    /// tree had the target deleted (their links dangle).
    fn take_resolving(&mut self, id: NodeId) -> (Vec<GroupId>, Vec<GroupId>) {
        let mut resolved = Vec::new();
        let mut dangling = Vec::new();
        for g in self.links.take_waiting(id) {
            let Wait::Target { view, .. } = self.links.group(g).wait else {
                continue;
            };
            self.links.group_mut(g).wait = Wait::Done;
            if self.tree.masked_at_or_below(id, view) {
                dangling.push(g);
            } else {
                resolved.push(g);
            }
        }
        (resolved, dangling)
    }

    fn drop_dangling(&mut self, target: NodeId, groups: &[GroupId]) {
        if groups.is_empty() {
            return;
        }
        let target = self.tree.path(target);
        for &g in groups {
            self.drop_group(g, &target);
        }
    }

    /// Drops the links of a group whose target does not exist.
    fn drop_group(&mut self, g: GroupId, target: &[u8]) {
        let members = std::mem::take(&mut self.links.group_mut(g).members);
        self.links.group_mut(g).wait = Wait::Done;
        for member in members {
            let path = self.tree.path(member);
            self.warn(format!(
                "hard link {:?} names {:?}, which does not exist in the link's layer; dropped",
                display(&path),
                display(target)
            ));
        }
    }

    /// The inode of group `g` now lives at `home`: write its members as
    /// links to it.
    fn settle_group(
        &mut self,
        g: GroupId,
        home: NodeId,
        home_path: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let group = self.links.group_mut(g);
        group.home = Some(home);
        group.wait = Wait::Done;
        let members = std::mem::take(&mut group.members);
        for member in members.into_iter().filter(|&m| m != home) {
            let path = self.tree.path(member);
            self.out.write_hard_link(&path, home_path, meta)?;
            self.stats.entries_written += 1;
        }
        Ok(())
    }

    /// Group `from` turned out to share group `into`'s inode.
    fn merge_groups(&mut self, into: GroupId, from: GroupId, meta: &Meta) -> Result<()> {
        let into = self.links.find(into);
        for member in self.links.merge(into, from) {
            self.add_member(into, member, meta)?;
        }
        Ok(())
    }

    fn add_member(&mut self, g: GroupId, member: NodeId, meta: &Meta) -> Result<()> {
        let g = self.links.find(g);
        match self.links.group(g).home {
            Some(home) => {
                let (path, home_path) = (self.tree.path(member), self.tree.path(home));
                self.out.write_hard_link(&path, &home_path, meta)?;
                self.stats.entries_written += 1;
            }
            None => self.links.group_mut(g).members.push(member),
        }
        Ok(())
    }

    /// Links whose target never showed up are dropped.
    fn drop_unresolved_links(&mut self) {
        for g in self.links.take_all_waiting() {
            if let Wait::Target { target, .. } = self.links.group(g).wait {
                let target = self.tree.path(target);
                self.drop_group(g, &target);
            }
        }
    }

    /// Writes every directory entry after all other entries, in depth-first
    /// order. Reading newest layer first, a directory's contents are spread
    /// over the whole stream; extractors such as GNU tar set a directory's
    /// time once they move past it, so an early entry would get its time
    /// clobbered by later children. Last and depth-first, nothing enters a
    /// directory after its entry is done. The directories no layer
    /// described get `0755 root:root`.
    fn write_directories(&mut self) -> Result<()> {
        let implicit = std::mem::take(&mut self.implicit_dirs)
            .into_iter()
            .filter(|&id| self.tree.node(id).claim() == Claim::ImplicitDir)
            .map(|id| (id, Meta::implicit_dir()));
        let mut all: Vec<(Vec<u8>, Meta)> = std::mem::take(&mut self.directories)
            .into_iter()
            .chain(implicit)
            .map(|(id, meta)| (self.tree.path(id), meta))
            .collect();
        all.sort_by(|(a, _), (b, _)| path::parents_first(a, b));
        for (path, meta) in all {
            self.out.write_empty(&path, &meta)?;
            self.stats.entries_written += 1;
        }
        Ok(())
    }

    /// Ends the archive after a fully successful merge.
    fn finish(mut self) -> Result<(W, MergeStats)> {
        self.stats.paths = self.tree.len() - 1;
        let bytes_written = self.out.bytes_written() + 1024;
        let out = self
            .out
            .finish()
            .context("cannot write the end of the archive")?;
        self.stats.bytes_written = bytes_written;
        Ok((out, self.stats))
    }

    /// Hard links whose target was skipped earlier in the same layer, and
    /// replaced or deleted by a newer one, need the target's data under the
    /// first link's name. The layer is read again for them, once.
    fn reread_promotions(&mut self) -> Result<()> {
        let wanted = self.links.rereads();
        let mut i = 0;
        while i < wanted.len() {
            let layer = wanted[i].0;
            let end = wanted[i..]
                .iter()
                .position(|w| w.0 != layer)
                .map_or(wanted.len(), |n| i + n);
            let label = self.label(layer);
            self.reread_layer(layer, &wanted[i..end])
                .with_context(|| format!("{label}: second read"))?;
            i = end;
        }
        Ok(())
    }

    fn reread_layer(&mut self, layer: u32, wanted: &[(u32, u32, GroupId)]) -> Result<()> {
        let changed = || anyhow::anyhow!("the layer changed between reads");
        let stream = DecodedLayer::spawn(&self.layers[layer as usize]);
        let mut archive = tar::Archive::new(stream);
        let mut wanted = wanted.iter().peekable();
        for (ordinal, entry) in archive.entries_with_seek()?.enumerate() {
            let Some(&&(_, want, g)) = wanted.peek() else {
                break;
            };
            if want as usize != ordinal {
                continue;
            }
            wanted.next();
            let mut entry = entry?;
            let Member::Entry { meta, storage, .. } = meta::read_member(&mut entry)? else {
                return Err(changed());
            };
            if matches!(meta.kind, Kind::Directory | Kind::HardLink) {
                return Err(changed());
            }
            let home = self.links.group(g).members[0];
            let home_path = self.tree.path(home);
            self.out
                .write_entry(&home_path, &meta, &mut storage.contents(&mut entry))?;
            self.stats.entries_written += 1;
            self.settle_group(g, home, &home_path, &meta)?;
        }
        if wanted.peek().is_some() {
            return Err(changed());
        }
        archive.into_inner().finish()?;
        Ok(())
    }
}
