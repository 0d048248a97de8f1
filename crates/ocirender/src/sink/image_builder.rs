//! The sink contract, once: what an image builder program (`mksquashfs`,
//! `mkfs.erofs`) must say about itself for [`crate::sink::builder`] to
//! run it as every image sink is run.
//!
//! An implementation is a typed, validated set of options (made from what
//! a user typed, refusing a bad value with a
//! [`crate::sink::builder_options::BadOption`] before any input is read)
//! that knows its program, that program's oldest usable version, its
//! argument list and how the stream must be checked on its way to it.
//! Everything else is written once, in [`crate::sink::builder`]: finding
//! the program and checking its version, staging the image beside OUT,
//! feeding it the checked stream with only the standard descriptors,
//! capturing what it says, renaming the image into place only on success,
//! removing it on a signal, and the summary of what was built.

use crate::error::Result;
use crate::sink::builder::ToolSpec;
use crate::sink::stream_check::ForwardOptions;
use std::ffi::OsString;
use std::path::Path;

/// An image builder program with validated options.
pub trait ImageBuilder {
    /// The program, its oldest usable version and what to install.
    fn tool(&self) -> &'static ToolSpec;
    /// The program's arguments to build the image at `image` from the tar
    /// stream on its stdin.
    fn arguments(&self, image: &Path) -> Vec<OsString>;
    /// How the stream is checked and normalised on its way to the program.
    fn stream_check(&self) -> ForwardOptions;
    /// The number of inodes of a built image, from its superblock.
    fn inode_count(&self, image: &Path) -> Result<u64>;
}
