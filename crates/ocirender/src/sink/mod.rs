//! Where a merged tar ends up when it is not a directory: image builders
//! ([`squashfs`], [`erofs`]) run through what they share ([`builder`]:
//! version checks, the stream checked while forwarded, captured output),
//! and what every sink, `tar2dir` included, shares: the tree a stream may
//! list ([`listing`]), the extended attributes it keeps ([`xattrs`]) and
//! how its times read ([`times`]), so all three build the same tree or
//! refuse alike; outputs [`staged`]
//! beside their destination and renamed on success, and removed when a
//! signal interrupts ([`crate::fs::temporaries`]).

pub mod builder;
pub mod directory;
pub mod erofs;
pub mod listing;
pub mod squashfs;
pub mod stream_check;
pub mod times;
pub mod wrong_input;
pub mod xattrs;
