//! ocirender: turn OCI and Docker image layers into one flat root
//! filesystem, streaming, without extracting layers to disk.
//!
//! The crate is the shared core of the `oci-*` and `tar2*` binaries. Its
//! folders follow the pipeline, left to right:
//!
//! * [`image`]: resolving an image (OCI layout, `docker save`) to its layers,
//!   by one selection policy over any [`image::source::BlobSource`];
//! * [`registry`]: the distribution API client: references, credentials,
//!   token auth, retries, resumable verified blob streams;
//! * [`fetch`]: `oci-fetch`, a registry image served to `oci-merge` through
//!   named pipes, or kept in a shared layout store;
//! * [`blob`]: reading one layer: the layer-list line that names it,
//!   compression sniffed from its bytes, decoding on background threads,
//!   its digest verified while it streams;
//! * [`merge`]: the overlay: which version of each path survives the layers
//!   above it (whiteouts, opaque directories, type changes, hard links);
//! * [`progress`]: a merge's progress on stderr, as a redrawn line or JSON;
//! * [`tar`]: entries in and out: one reader (sparse members included), one
//!   writer, entry names, and the checked forwarding the image builders get;
//! * [`unpack`]: a merged tar into a directory, confined by the kernel;
//! * [`runtime`]: an image's run configuration as a runtime bundle's
//!   `config.json` (`Env`, `Cmd`, `User` resolved in the unpacked tree);
//! * [`sink`]: image builders (`mksquashfs -tar`, `mkfs.erofs --tar=f`)
//!   and the staged outputs every sink writes: built beside the
//!   destination, renamed on success, removed on failure or a signal;
//! * [`cli`]: what every binary shares (messages, exit codes, pipes), and
//!   [`generate`]: its man page and shell completions;
//! * [`temporaries`]: what a signal must remove (staged outputs, `oci-fetch`'s
//!   pipes and partial blobs).

#![deny(missing_docs)]

pub mod blob;
pub mod error;
pub mod fs;
pub mod merge;
pub mod progress;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod tar;
pub mod text;

pub use error::{Error, ErrorKind, InputMistake, LayerPosition, RegistryErrorKind, Result};

/// The library's version and the gzip inflate engine it was built with
/// (`0.1.0 (gzip inflate: ISA-L)`), for a program's `--version`.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (gzip inflate: ",
    crate::blob::gzip::inflate_engine!(),
    ")"
);
