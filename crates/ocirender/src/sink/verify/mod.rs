//! Verifying an output against the merged tar it was built from, without
//! building it again: a directory from `tar2dir`, a squashfs image from
//! `tar2sqfs`, an EROFS image from `tar2erofs` ([`output_kind`]).
//!
//! The stream is read once, as the sinks read it: every entry admitted to
//! a `Listing` (a stream the sinks would
//! refuse cannot match any output, and is an error), then compared with
//! what the output holds at its path ([`checker`]), under the rules the
//! sinks store it by ([`compare`]): extended attributes dropped or
//! escaped as `crate::sink::xattrs` says, symlinks 0777, times at the
//! precision the output keeps (whole seconds in squashfs), directories
//! with their last entry's metadata, those the stream only implies
//! `0755 root:root` at the sinks' reproducible time, hard links as shared
//! inodes ([`hard_links`]). File data is compared by SHA-256 digest as it
//! streams by ([`content`]); memory grows with the number of paths (the
//! listing), never with file sizes.
//!
//! An image is read without mounting it: extracted into a private
//! temporary directory by the image's own tools ([`extract`]).
//!
//! Every difference is reported as it is found, one [`Difference`] each.

pub mod checker;
pub mod compare;
pub mod content;
pub mod difference;
pub mod extract;
pub mod found;
pub mod hard_links;
pub mod output_kind;
pub mod words;

use crate::error::Result;
use crate::sink::stream_check::{check_end_marker, drain, each_entry};
use crate::tar::entry::EntryMeta;
use checker::{Checker, Report};
pub use difference::{Difference, DifferenceKind};
pub use extract::ExtractOptions;
use found::OutputTree;
pub use output_kind::OutputKind;
use std::io::{BufReader, Read};
use std::path::Path;

const INPUT_BUFFER: usize = 1 << 20;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// How to read an image.
    pub extract: ExtractOptions,
    /// The time of directories the stream does not describe (the sinks'
    /// `SOURCE_DATE_EPOCH`, or 0).
    pub dir_time: u64,
}

/// What a verification compared.
#[derive(Debug, Clone, Default)]
pub struct VerifyStats {
    /// Entries of the stream (not counting the root's).
    pub entries: u64,
    /// Bytes of file data compared.
    pub data_bytes: u64,
    /// Differences reported.
    pub differences: u64,
}

/// Compares the output at `output` with the tree the tar stream `input`
/// describes, calling `report` with each difference as it is found.
/// Errors (an unreadable output, a malformed stream, a stream the sinks
/// refuse) end the comparison.
pub fn verify(
    output: &Path,
    input: &mut dyn Read,
    options: &VerifyOptions,
    report: Report<'_>,
) -> Result<(OutputKind, VerifyStats)> {
    let kind = output_kind::detect(output)?;
    let extracted = match kind {
        OutputKind::Directory => None,
        image => Some(extract::extract(image, output, &options.extract)?),
    };
    let dir = extracted
        .as_ref()
        .map_or(output.to_path_buf(), |e| e.path());
    let mut tree = OutputTree::open(&dir)?;
    if let Some(xattrs) = extracted.as_ref().and_then(|e| e.xattr_path()) {
        tree = tree.with_xattrs_from(&xattrs)?;
    }
    let mut checker = Checker::new(tree, kind.keeps_nanoseconds(), report);
    let mut source = BufReader::with_capacity(INPUT_BUFFER, input);
    each_entry(&mut tar::Archive::new(&mut source), |path, meta, data| {
        checker.entry(path, meta, data)
    })?;
    check_end_marker(&mut source)?;
    drain(&mut source)?;
    let implicit = EntryMeta {
        mtime: options.dir_time,
        ..EntryMeta::implicit_dir()
    };
    Ok((kind, checker.finish(&implicit)?))
}
