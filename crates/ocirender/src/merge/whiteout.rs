//! Whiteout markers (OCI image-spec, layer.md).
//!
//! A layer deletes lower content with marker files rather than by
//! omission: `DIR/.wh.NAME` removes `DIR/NAME` and everything under it, and
//! `DIR/.wh..wh..opq` removes every child of `DIR`. Both act on lower layers
//! only. Other `.wh..wh.*` names are AUFS bookkeeping (`.wh..wh.plnk/` holds
//! AUFS's hard-link stash) and carry no meaning for an OCI consumer.

use std::fmt;

/// The prefix that marks a whiteout.
pub const PREFIX: &[u8] = b".wh.";
/// The name of the opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of AUFS metadata names (the opaque marker starts with it too).
pub const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// What a canonical entry path means to the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker<'a> {
    /// An ordinary entry (not a marker at all).
    Plain,
    /// A whiteout hiding this canonical path (and all below it).
    Whiteout(Vec<u8>),
    /// An opaque marker: every child of this directory in lower layers is hidden.
    Opaque(&'a [u8]),
    /// AUFS metadata, or an entry inside a directory with a reserved name:
    /// skipped with a warning.
    Reserved,
}

/// A whiteout name that cannot mean anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareWhiteout;

impl fmt::Display for BareWhiteout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whiteout names nothing (`.wh.` or `.wh..`)")
    }
}

impl std::error::Error for BareWhiteout {}
crate::error::invalid_input_errors!(BareWhiteout);

/// Classifies a canonical (non-root) path.
pub fn classify(path: &[u8]) -> Result<Marker<'_>, BareWhiteout> {
    let (parent, name) = crate::tar::path::split_parent(path);
    if parent
        .split(|&b| b == b'/')
        .any(|component| component.starts_with(PREFIX))
    {
        return Ok(Marker::Reserved);
    }
    if !name.starts_with(PREFIX) {
        return Ok(Marker::Plain);
    }
    if name == OPAQUE {
        return Ok(Marker::Opaque(parent));
    }
    if name.starts_with(AUFS_META_PREFIX) {
        return Ok(Marker::Reserved);
    }
    match &name[PREFIX.len()..] {
        b"" | b"." | b".." => Err(BareWhiteout),
        hidden => Ok(Marker::Whiteout(crate::tar::path::join(parent, hidden))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_not_markers() {
        assert_eq!(classify(b"a/b"), Ok(Marker::Plain));
        assert_eq!(classify(b"a/wh.b"), Ok(Marker::Plain));
        assert_eq!(classify(b"a/x.wh.b"), Ok(Marker::Plain));
    }

    #[test]
    fn whiteout_names_its_sibling() {
        assert_eq!(classify(b"a/.wh.b"), Ok(Marker::Whiteout(b"a/b".to_vec())));
        assert_eq!(classify(b".wh.top"), Ok(Marker::Whiteout(b"top".to_vec())));
        assert_eq!(classify(b".wh...x"), Ok(Marker::Whiteout(b"..x".to_vec())));
    }

    #[test]
    fn opaque_marker_names_its_directory() {
        assert_eq!(
            classify(b"a/b/.wh..wh..opq"),
            Ok(Marker::Opaque(&b"a/b"[..]))
        );
        assert_eq!(classify(b".wh..wh..opq"), Ok(Marker::Opaque(&b""[..])));
    }

    #[test]
    fn aufs_metadata_is_reserved() {
        assert_eq!(classify(b".wh..wh.plnk"), Ok(Marker::Reserved));
        assert_eq!(classify(b".wh..wh.plnk/123.456"), Ok(Marker::Reserved));
        assert_eq!(classify(b"a/.wh..wh.aufs"), Ok(Marker::Reserved));
        assert_eq!(classify(b".wh.dir/file"), Ok(Marker::Reserved));
    }

    #[test]
    fn bare_whiteouts_are_errors() {
        assert_eq!(classify(b"a/.wh."), Err(BareWhiteout));
        assert_eq!(classify(b".wh.."), Err(BareWhiteout));
        assert_eq!(classify(b".wh..."), Err(BareWhiteout));
    }
}
