//! Where a merged tar ends up when it is not a directory: image builders
//! ([`squashfs`], [`erofs`]) run through what they share ([`builder`]:
//! version checks, the stream checked while forwarded, captured output),
//! and what every sink shares: outputs [`staged`] beside their destination
//! and renamed on success, and removed when a signal interrupts
//! ([`crate::temporaries`]).

pub mod builder;
pub mod erofs;
pub mod squashfs;
pub mod staged;
