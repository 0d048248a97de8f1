//! ocirender: turn OCI and Docker image layers into one flat root
//! filesystem, streaming, without extracting layers to disk.
//!
//! The crate is the shared core of the `oci-*` and `tar2*` binaries:
//!
//! * [`merge`]: the overlay merge of layer tars into one tar;
//! * [`decode`], [`chunk_pipe`], [`compression`], [`digest`]: reading blobs on background
//!   threads, sniffing their compression, verifying their digests;
//! * [`path`], [`whiteout`], [`tree`], [`links`]: the pieces of OCI layer
//!   semantics the merge is built from;
//! * [`meta`], [`sparse`], [`tar_writer`], [`tar_stream`]: tar entries in and out;
//! * [`image`]: resolving OCI layouts and `docker save` archives to layers;
//! * [`layer_ref`]: the line format that joins `oci-layers` to `oci-merge`;
//! * [`unpack`]: unpacking a tar into a directory, safely;
//! * [`squashfs`]: building squashfs images with `mksquashfs -tar`;
//! * [`staged`], [`temporaries`]: outputs built beside their destination, renamed
//!   on success, removed on failure or when a signal interrupts;
//! * [`cli`]: what every binary shares (messages, exit codes, pipes).

#![deny(missing_docs)]

pub mod chunk_pipe;
pub mod cli;
pub mod compression;
pub mod decode;
pub mod digest;
pub mod image;
pub mod layer_ref;
pub mod links;
pub mod merge;
pub mod meta;
pub mod path;
pub mod reread;
pub mod sparse;
pub mod squashfs;
pub mod staged;
pub mod tar_stream;
pub mod tar_writer;
pub mod temporaries;
pub mod tree;
pub mod unpack;
pub mod whiteout;
