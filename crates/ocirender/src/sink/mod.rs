//! Where a merged tar ends up: a directory ([`unpack_to_new_dir`]), or an
//! image built by an external program ([`squashfs`], [`erofs`]), each an
//! [`image_builder::ImageBuilder`] with options checked before any input
//! is read ([`builder_options`]), all run through what they share
//! ([`builder`]: version checks, the stream checked while forwarded,
//! captured output). Every sink, the directory included, shares the tree a
//! stream may list, the extended attributes it keeps and how its times
//! read, so all three build the same tree or refuse alike; outputs are
//! staged beside their destination and renamed on success, and removed
//! when a signal interrupts.

pub mod builder;
pub mod builder_options;
pub(crate) mod directory;
pub mod erofs;
pub mod image_builder;
pub mod squashfs;
pub mod stream_check;
pub mod verify;
pub mod wrong_input;
internal!(listing, times, xattrs);

pub use directory::{
    check_destination, unpack_into, unpack_to_new_dir, UnpackOptions, UnpackStats,
};
