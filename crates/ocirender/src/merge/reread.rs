//! The second read of a layer, for promoted hard links.
//!
//! A hard link whose target came earlier in its own layer, but whose
//! target a newer layer replaced or deleted, needs the target's data under
//! the link's name. By the time the link is seen that data has streamed
//! past, and holding every skipped file in case a link names it later
//! would cost memory with file sizes. So the merge notes which members it
//! needs ([`crate::merge::links::Links::rereads`]) and, once every layer is read,
//! reads each such layer once more, from its start, picking those members.

use crate::blob::decode::DecodedLayer;
use crate::blob::layer_ref::LayerRef;
use crate::error::{Context, Result};
use crate::merge::layer_label;
use crate::merge::links::{GroupId, Reread};
use crate::tar::entry::{read_member, EntryMeta, Kind, Member};
use std::io::Read;

/// Reads every layer that `wanted` names once more (`wanted` sorted by
/// layer, then member, as [`crate::merge::links::Links::rereads`] gives it) and
/// hands each wanted member to `found`, with its group, its metadata and
/// its data, in that order.
pub fn reread(
    layers: &[LayerRef],
    wanted: &[Reread],
    found: &mut dyn FnMut(GroupId, &EntryMeta, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    for one_layer in wanted.chunk_by(|a, b| a.layer == b.layer) {
        let layer = one_layer[0].layer;
        reread_layer(&layers[layer as usize], one_layer, found)
            .with_context(|| format!("{}: second read", layer_label(layers, layer)))?;
    }
    Ok(())
}

/// Reads `layer` again for the members `wanted` (all of it, in order),
/// which must still be the files the first read found there.
fn reread_layer(
    layer: &LayerRef,
    wanted: &[Reread],
    found: &mut dyn FnMut(GroupId, &EntryMeta, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let changed = || crate::error::err!("the layer changed between reads");
    let mut archive = tar::Archive::new(DecodedLayer::spawn(layer));
    let mut wanted = wanted.iter().peekable();
    for (ordinal, entry) in archive.entries_with_seek()?.enumerate() {
        let Some(&&Reread {
            ordinal: want,
            group,
            ..
        }) = wanted.peek()
        else {
            break;
        };
        if want as usize != ordinal {
            continue;
        }
        wanted.next();
        let mut entry = entry?;
        let Member::Entry { meta, storage, .. } = read_member(&mut entry)? else {
            return Err(changed());
        };
        if matches!(meta.kind, Kind::Directory | Kind::HardLink) {
            return Err(changed());
        }
        found(group, &meta, &mut storage.contents(&mut entry))?;
    }
    if wanted.peek().is_some() {
        return Err(changed());
    }
    archive.into_inner().finish()?;
    Ok(())
}
