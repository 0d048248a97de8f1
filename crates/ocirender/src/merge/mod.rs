//! The streaming overlay merge: many layer tars in, one tar out.
//!
//! Layers are read newest first. The first time a path is seen is then its
//! final version, so it can be written at once and the output streams while
//! older layers are still being decoded. What a newer layer did to older
//! content is recorded in the `Tree` as it goes:
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
//! * hard links wait in groups for the inode they name: `crate::merge::links`
//!   decides what to write for them, this module writes it, and
//!   `crate::merge::reread` fetches the data of links promoted from a target
//!   that was skipped in their own layer.

pub mod feed;
mod image_archive;
mod job;
internal!(links, reread, tree, whiteout);

pub use feed::{layer_feed, Arrivals, LayerFeed};
pub use job::Merge;

use crate::blob::compression::Compression;
use crate::blob::decode::{DecodedLayer, Prefetcher};
use crate::blob::layer_ref::LayerRef;
use crate::error::{bail, err, Context, Error, ErrorKind, LayerPosition, Result};
use crate::merge::links::{Action, DirectorySeen, Inode, LinkToDirectory, Links, Noticed};
use crate::merge::tree::{Claim, LayerVersion, NodeId, Tree, ROOT};
pub use crate::progress::MergeStats;
use crate::progress::{ByteCounter, Event, LayerDone, Observer};
use crate::tar::entry::{entry_label, read_member, EntryMeta, Kind, Member};
use crate::tar::header_problem;
use crate::tar::held_records::HeldRecords;
use crate::tar::path::{self, display};
use crate::tar::writer::TarWriter;
use image_archive::ImageArchiveSigns;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};
use whiteout::Marker;

/// Tuning of a merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Layers decoded at once (the current one included).
    pub parallel_layers: usize,
    /// Bytes of decoded data the layers may hold ahead of the merge, in
    /// total, beyond each one's 2 MiB of its own.
    pub read_ahead_bytes: usize,
}

/// The read-ahead a merge has unless told otherwise: where the curve of
/// wall time against memory flattens on the benchmark images (see
/// BENCHMARKS.md, "read-ahead").
pub const DEFAULT_READ_AHEAD_MIB: usize = 64;

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            parallel_layers: 2,
            read_ahead_bytes: DEFAULT_READ_AHEAD_MIB << 20,
        }
    }
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
    merge_with_progress(layers, out, options, warn, None)
}

/// [`merge`], telling `observer` what it does (see [`Event`]): the stored
/// bytes its reader threads read (not those of a second read, see
/// `reread`), each layer as it starts and finishes, and the end of a
/// merge that succeeded.
pub fn merge_with_progress<W: Write>(
    layers: &[LayerRef],
    out: W,
    options: &MergeOptions,
    warn: &mut dyn FnMut(&str),
    observer: Option<&dyn Observer>,
) -> Result<(W, MergeStats)> {
    merge_arriving(layers, out, options, warn, observer, None)
}

/// [`merge_with_progress`], each layer read only once `arrivals` says it
/// is there.
fn merge_arriving<W: Write>(
    layers: &[LayerRef],
    out: W,
    options: &MergeOptions,
    warn: &mut dyn FnMut(&str),
    observer: Option<&dyn Observer>,
    arrivals: Option<&Arrivals>,
) -> Result<(W, MergeStats)> {
    let refusal = if layers.is_empty() {
        Some(err!(
            kind = ErrorKind::Invalid,
            "no layers to merge: the layer list is empty"
        ))
    } else {
        arrivals
            .filter(|arrivals| arrivals.len() != layers.len())
            .map(|arrivals| {
                err!(
                    "the layer feed was made for {} layers, the merge has {}",
                    arrivals.len(),
                    layers.len()
                )
            })
    };
    if let Some(refusal) = refusal {
        // A merge that fails before its first entry leaves what any failed
        // merge leaves, so whatever reads `out` knows.
        let mut out = out;
        crate::tar::writer::write_abandoned(&mut out);
        return Err(refusal);
    }
    let mut merger = Merger::new(layers, out, warn);
    merger.observer = observer;
    merger.arrivals = arrivals;
    match merger.merge_all(options) {
        Ok(()) => {
            let (out, stats) = merger.finish()?;
            if let Some(observer) = observer {
                observer.event(Event::Done(&stats));
            }
            Ok((out, stats))
        }
        Err(err) => {
            merger.out.abandon();
            Err(err)
        }
    }
}

/// How messages name layer `index` of `layers` (base first, counted from
/// one).
pub(crate) fn layer_label(layers: &[LayerRef], index: u32) -> String {
    format!(
        "layer {}/{} ({})",
        index + 1,
        layers.len(),
        layers[index as usize].describe()
    )
}

/// Errors from the layer's bytes (I/O, decompression, digest) speak for
/// themselves; anything else the tar reader reports is a malformed tar.
/// Where it stopped on a block that is no tar header, that is said in
/// words, and at the start of the layer it means the layer is no tar at
/// all: the `tar` crate's own message would quote the bytes it tried to
/// parse as a checksum.
fn tar_stream_error(err: std::io::Error, ordinal: u32, stream: &DecodedLayer) -> Error {
    if crate::error::carries_ours(&err) {
        return Error::from(err);
    }
    // Running out of data inside an entry is not a header's fault (that
    // error is the stream's own, see `DecodedLayer::seek`), nor is a long
    // name, PAX header or sparse map over a limit (the `tar` crate's
    // `InvalidData`): the block it stopped on may be a sparse map's.
    let header_at_fault = !matches!(
        err.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
    );
    let bad_header = header_at_fault
        .then(|| stream.last_block())
        .flatten()
        .and_then(|(offset, block)| Some((offset, header_problem(block)?)));
    match bad_header {
        Some((0, _)) => {
            let decoded = match stream.compression() {
                Some(Compression::None) | None => String::new(),
                Some(compression) => format!(" of the {compression}-decompressed data"),
            };
            err!(
                kind = ErrorKind::Invalid,
                "not a tar archive (no valid header at byte 0{decoded})"
            )
        }
        Some((offset, problem)) => err!(
            kind = ErrorKind::Invalid,
            "invalid tar stream after {}: no valid header at byte {offset} ({problem})",
            members(ordinal)
        ),
        None => malformed(Error::from(err))
            .context(format!("invalid tar stream after {}", members(ordinal))),
    }
}

/// What the tar reader reports on its own about a layer's bytes (a short
/// stream, a field that is no number, a header over a limit) is the
/// layer's fault: [`ErrorKind::Invalid`], not an I/O error.
fn malformed(err: Error) -> Error {
    use std::io::ErrorKind::{InvalidData, Other, UnexpectedEof};
    match err.io_kind() {
        Some(InvalidData | Other | UnexpectedEof) => err.with_kind(ErrorKind::Invalid),
        _ => err,
    }
}

/// "1 member", "2 members".
fn members(n: u32) -> String {
    match n {
        1 => "1 member".to_owned(),
        n => format!("{n} members"),
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

/// The entry whose link actions are being carried out.
#[derive(Default)]
struct Source<'e> {
    /// Its node and path, when it has them: spares building a path the
    /// caller already holds (`Tree::path` allocates).
    own: Option<(NodeId, &'e [u8])>,
    /// Its metadata and data, for a [`Action::WriteData`].
    data: Option<(&'e EntryMeta, &'e mut dyn Read)>,
}

struct Merger<'a, W: Write> {
    layers: &'a [LayerRef],
    tree: Tree,
    links: Links,
    out: TarWriter<W>,
    staged: Vec<Mask>,
    implicit_dirs: Vec<NodeId>,
    /// Directory entries, written at the end (see `write_directories`).
    directories: Vec<(NodeId, EntryMeta)>,
    /// Their PAX records, within [`crate::tar::limits::Limit::HeldDirectoryRecords`].
    directory_records: HeldRecords,
    /// The parents of the entry being claimed, shallowest first; reused
    /// from entry to entry so that claiming allocates nothing.
    parents: Vec<NodeId>,
    /// What `links` decided and is not carried out yet; reused.
    actions: Vec<Action>,
    warn: &'a mut dyn FnMut(&str),
    observer: Option<&'a dyn Observer>,
    /// Where layers still arriving are waited for, if any are.
    arrivals: Option<&'a Arrivals>,
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
            directory_records: HeldRecords::default(),
            parents: Vec::new(),
            actions: Vec::new(),
            warn,
            observer: None,
            arrivals: None,
            stats: MergeStats {
                layers: layers.len(),
                ..MergeStats::default()
            },
            reserved_skipped: 0,
        }
    }

    fn label(&self, layer: u32) -> String {
        layer_label(self.layers, layer)
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
        let counter = self.observer.map(|observer| {
            let counter = ByteCounter::default();
            observer.started(layers, &counter);
            counter
        });
        let newest_first = layers.iter().enumerate().rev().map(|(index, layer)| {
            let gate = self.arrivals.map(|arrivals| arrivals.gate(index));
            (layer.clone(), gate)
        });
        let mut prefetch = Prefetcher::gated(newest_first, options.parallel_layers)
            .counting(counter)
            .read_ahead(options.read_ahead_bytes);
        for index in (0..layers.len() as u32).rev() {
            let stream = prefetch.next_layer().expect("one stream per layer");
            if let Some(observer) = self.observer {
                observer.event(Event::LayerStarted {
                    layer: index as usize + 1,
                    layers: layers.len(),
                    source: &layers[index as usize],
                });
            }
            let before = self.stats.clone();
            let label = self.label(index);
            let position = LayerPosition {
                index: index as usize,
                layers: layers.len(),
                offset: None,
            };
            self.merge_layer(index, stream)
                .map_err(|err| err.in_layer(position).context(label))?;
            self.commit_masks(index);
            if let Some(observer) = self.observer {
                observer.event(Event::LayerFinished {
                    layer: index as usize + 1,
                    layers: layers.len(),
                    done: LayerDone {
                        stored_bytes: self.stats.stored_bytes_read - before.stored_bytes_read,
                        members_read: self.stats.members_read - before.members_read,
                        entries_written: self.stats.entries_written - before.entries_written,
                    },
                });
            }
        }
        self.links.drop_unresolved(&mut self.actions);
        self.carry_out(Source::default())?;
        self.reread_promotions()?;
        self.write_directories()
    }

    fn merge_layer(&mut self, layer: u32, stream: DecodedLayer) -> Result<()> {
        let mut archive = tar::Archive::new(stream);
        let mut ordinal = 0u32;
        let mut signs = ImageArchiveSigns::default();
        let mut entries = archive
            .entries_with_seek()
            .context("cannot read tar stream")?;
        let failed = loop {
            let mut entry = match entries.next() {
                None => break None,
                Some(Err(err)) => break Some(err),
                Some(Ok(entry)) => entry,
            };
            let at_header = LayerPosition {
                index: layer as usize,
                layers: self.layers.len(),
                offset: Some(entry.raw_header_position()),
            };
            let Member::Entry {
                path,
                meta,
                storage,
            } = read_member(&mut entry).map_err(|err| malformed(err).in_layer(at_header))?
            else {
                ordinal += 1;
                continue;
            };
            signs.note(&path);
            self.apply(
                layer,
                ordinal,
                &path,
                meta,
                &mut storage.contents(&mut entry),
            )
            .map_err(|err| err.in_layer(at_header))
            .with_context(|| entry_label(&path))?;
            ordinal += 1;
        };
        let stream = archive.into_inner();
        if let Some(err) = failed {
            let err = tar_stream_error(err, ordinal, &stream);
            let offset = stream.last_block().map(|(offset, _)| offset);
            return Err(err.in_layer(LayerPosition {
                index: layer as usize,
                layers: self.layers.len(),
                offset,
            }));
        }
        if signs.is_image() {
            bail!(
                kind = ErrorKind::Invalid,
                "this is an image archive, not a layer: use oci-layers {} | oci-merge",
                self.layers[layer as usize].path.display()
            );
        }
        self.stats.members_read += u64::from(ordinal);
        let summary = stream.finish()?;
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
        meta: EntryMeta,
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
            Marker::Plain => match meta.kind {
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
            self.tree.node_mut(parent).imply_dir(layer);
            self.directory_arrives(parent)?;
            if depth < kept && self.tree.node(parent).claim() == Claim::Unclaimed {
                self.tree
                    .node_mut(parent)
                    .claim_by(Claim::ImplicitDir, layer);
                self.implicit_dirs.push(parent);
            }
        }
        Ok(())
    }

    /// A directory turned up at `id` (its entry, or entries below it): hard
    /// links waiting on it name a directory.
    fn directory_arrives(&mut self, id: NodeId) -> Result<()> {
        let decided = self
            .links
            .directory_arrives(&self.tree, id, &mut self.actions);
        self.carry_out(Source::default())?;
        decided.map_err(|err| self.link_to_directory(err))
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
        self.directories.push((id, EntryMeta::implicit_dir()));
        self.tree.node_mut(id).claim_by(Claim::Dir, newer);
        Ok(())
    }

    fn apply_dir(&mut self, layer: u32, path: &[u8], meta: &EntryMeta) -> Result<()> {
        let (id, visibility) = self.claim(layer, path, true)?;
        if visibility == Visibility::Duplicate {
            return Ok(());
        }
        self.directory_arrives(id)?;
        self.tree.node_mut(id).set_version(layer, LayerVersion::Dir);
        if visibility == Visibility::Visible {
            self.hold_directory(id, meta)?;
        }
        Ok(())
    }

    /// Keeps a directory's entry for the end, within
    /// [`crate::tar::limits::Limit::HeldDirectoryRecords`].
    fn hold_directory(&mut self, id: NodeId, meta: &EntryMeta) -> Result<()> {
        self.directory_records.hold(&meta.pax)?;
        self.directories.push((id, meta.clone()));
        Ok(())
    }

    /// Regular files, symlinks, devices and FIFOs.
    fn apply_file(
        &mut self,
        layer: u32,
        ordinal: u32,
        path: &[u8],
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<()> {
        let (id, visibility) = self.claim(layer, path, false)?;
        if visibility == Visibility::Duplicate {
            return Ok(());
        }
        self.staged.push(Mask::Children(id));
        let version = self.links.file_arrives(
            &self.tree,
            (layer, ordinal),
            id,
            visibility == Visibility::Visible,
            meta,
            &mut self.actions,
        );
        self.tree.node_mut(id).set_version(layer, version);
        self.carry_out(Source {
            own: Some((id, path)),
            data: Some((meta, data)),
        })
    }

    fn apply_hard_link(&mut self, layer: u32, path: &[u8], meta: &EntryMeta) -> Result<()> {
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
        let decided = self.links.link_arrives(
            &self.tree,
            layer,
            id,
            target_id,
            visibility == Visibility::Visible,
            &mut self.actions,
        );
        let versions = decided.map_err(|err| self.link_to_directory(err))?;
        if let Some(version) = versions.target {
            self.tree.node_mut(target_id).set_version(layer, version);
        }
        self.tree.node_mut(id).set_version(layer, versions.link);
        self.carry_out(Source {
            own: Some((id, path)),
            data: None,
        })
    }

    /// The error for a hard link naming a directory.
    fn link_to_directory(&self, err: LinkToDirectory) -> crate::error::Error {
        let dir = display(&self.tree.path(err.dir));
        match err.seen {
            DirectorySeen::Entry => err!("hard link to the directory {dir:?}"),
            DirectorySeen::Implied => {
                err!("hard link to the directory {dir:?} (implied by entries below it)")
            }
            DirectorySeen::Later => err!("a hard link names the directory {dir:?}"),
        }
    }

    /// Carries out, in order, the actions `links` decided for `source`.
    fn carry_out(&mut self, mut source: Source<'_>) -> Result<()> {
        if self.actions.is_empty() {
            return Ok(());
        }
        let mut actions = std::mem::take(&mut self.actions);
        let done = actions
            .drain(..)
            .try_for_each(|action| self.act(action, &mut source));
        self.actions = actions;
        done
    }

    /// Carries out one action: writes (paths built from node ids, or taken
    /// from `source` when they are its own) and counts, or warns.
    fn act(&mut self, action: Action, source: &mut Source<'_>) -> Result<()> {
        match action {
            Action::WriteData { home } => {
                let (meta, data) = source
                    .data
                    .as_mut()
                    .expect("only a file's own decisions write its data");
                let home = path_of(&self.tree, home, source.own);
                self.out.write_entry(&home, meta, *data)?;
                self.stats.entries_written += 1;
            }
            Action::WriteLink { link, inode } => {
                let path = path_of(&self.tree, link, source.own);
                let home = path_of(&self.tree, inode.home, source.own);
                self.out
                    .write_hard_link(&path, &home, &link_header(&inode))?;
                self.stats.entries_written += 1;
            }
            Action::DropLink {
                link,
                target,
                noticed,
            } => {
                let (link, target) = (self.tree.path(link), self.tree.path(target));
                let (link, target) = (display(&link), display(&target));
                match noticed {
                    Noticed::InItsLayer(layer) => self.warn_in(
                        layer,
                        format!("hard link {link:?} names {target:?}, which does not exist; dropped"),
                    ),
                    Noticed::Below => self.warn(format!(
                        "hard link {link:?} names {target:?}, which does not exist in the link's layer; dropped"
                    )),
                }
            }
        }
        Ok(())
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
            .map(|id| (id, EntryMeta::implicit_dir()));
        let metas: HashMap<NodeId, EntryMeta, foldhash::fast::RandomState> =
            std::mem::take(&mut self.directories)
                .into_iter()
                .chain(implicit)
                .collect();
        let (out, stats) = (&mut self.out, &mut self.stats);
        self.tree.depth_first(&metas, |path, meta| {
            out.write_empty(path, meta)?;
            stats.entries_written += 1;
            Ok(())
        })
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
    /// first link's name: see [`crate::merge::reread`].
    fn reread_promotions(&mut self) -> Result<()> {
        let wanted = self.links.rereads();
        let layers = self.layers;
        reread::reread(layers, &wanted, &mut |group, meta, data| {
            self.links.reread_arrives(group, meta, &mut self.actions);
            self.carry_out(Source {
                own: None,
                data: Some((meta, data)),
            })
        })
    }
}

/// The path of `id`, borrowed from `own` when that is the node's.
fn path_of<'p>(tree: &Tree, id: NodeId, own: Option<(NodeId, &'p [u8])>) -> Cow<'p, [u8]> {
    match own {
        Some((own, path)) if own == id => Cow::Borrowed(path),
        _ => Cow::Owned(tree.path(id)),
    }
}

/// The header of a hard link to `inode`: the inode's ownership, mode and
/// time, whatever the link's own header said (see [`Inode`]).
fn link_header(inode: &Inode) -> EntryMeta {
    EntryMeta {
        kind: Kind::HardLink,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        mtime: inode.mtime,
        size: 0,
        link_target: Vec::new(),
        device: (0, 0),
        pax: Vec::new(),
    }
}
