//! ocirender: OCI and Docker container images flattened into one root
//! filesystem (a tar stream, a directory, a squashfs or an EROFS image),
//! streaming, without extracting layers to disk.
//!
//! This is the library under the `oci-layers`, `oci-fetch`, `oci-merge`
//! and `tar2*` programs. It has no terminal code and parses no command
//! lines; it reports through typed [`Error`]s and [`progress`] events.
//!
//! # Flatten an image
//!
//! An image on disk (an OCI layout, a `docker save` archive, as a
//! directory or a tar file, or a containers-transports name) to a tar, and
//! to a directory:
//!
//! ```no_run
//! use ocirender::image::{self, Selection};
//! use ocirender::merge::Merge;
//! use ocirender::sink::{self, UnpackOptions};
//!
//! # fn main() -> ocirender::Result<()> {
//! let image = image::open("oci:./layout:latest", &Selection::default())?;
//! let layers = image.layer_refs();
//!
//! let tar = std::fs::File::create("rootfs.tar")?;
//! Merge::new(&layers).write_to(tar)?;
//!
//! let options = UnpackOptions::default();
//! Merge::new(&layers).into_sink(|tar| sink::unpack_to_new_dir("rootfs".as_ref(), tar, &options))?;
//! # Ok(()) }
//! ```
//!
//! The merge checks each layer's digest as it streams; a merge that fails
//! never ends its tar cleanly (no tar reader takes what it wrote for a
//! whole archive), and [`sink::unpack_to_new_dir`] builds the directory
//! beside its destination and renames it into place only on success.
//!
//! # Layers that are still downloading
//!
//! A caller that downloads layers knows them (path, size, digest) from the
//! manifest before their bytes arrive. It starts the merge at once and
//! feeds each layer as its download finishes; the merge reads newest first
//! and waits only for the layer it needs next:
//!
//! ```
//! use ocirender::layer::LayerRef;
//! use ocirender::merge::{layer_feed, Merge};
//! # fn layer(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
//! #     let path = dir.join(name);
//! #     let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
//! #     let mut header = tar::Header::new_ustar();
//! #     header.set_size(2);
//! #     header.set_mode(0o644);
//! #     header.set_uid(0);
//! #     header.set_gid(0);
//! #     header.set_mtime(0);
//! #     header.set_cksum();
//! #     tar.append_data(&mut header, name, &b"hi"[..]).unwrap();
//! #     tar.finish().unwrap();
//! #     path
//! # }
//!
//! # fn main() -> ocirender::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! // Where the downloads will land, base first.
//! let layers = vec![
//!     LayerRef::file(dir.path().join("base")),
//!     LayerRef::file(dir.path().join("top")),
//! ];
//! let (feed, arrivals) = layer_feed(layers.len());
//! let downloads = std::thread::spawn(move || {
//!     # layer(dir.path(), "top");
//!     feed.arrived(1)?; // the top layer finished first
//!     # layer(dir.path(), "base");
//!     feed.arrived(0)?;
//!     # std::mem::forget(dir);
//!     Ok::<(), ocirender::Error>(())
//! });
//! let (tar, stats) = Merge::new(&layers).arriving(arrivals).write_to(Vec::new())?;
//! downloads.join().unwrap()?;
//! assert_eq!(stats.layers, 2);
//! # assert!(tar.len() > 1024);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every fallible function returns [`Result`], whose [`Error`] has a
//! [`kind`](Error::kind) to match on ([`ErrorKind`]: a digest mismatch
//! naming the blob, a path that is not an image, no such platform with the
//! choices, a builder that failed with what it said, registry errors by
//! kind, I/O errors by [`std::io::ErrorKind`]), the layer and byte offset
//! a merge failed at ([`Error::layer`]), and the error it came from as its
//! [`std::error::Error::source`].
//!
//! # Stability
//!
//! The public API is what this page lists: the modules below and the
//! items they re-export. Until 1.0, a minor release (0.x to 0.x+1) may
//! change it and says so in its notes; a patch release does not.
//! [`ErrorKind`] and [`progress::Event`] are `#[non_exhaustive]`: new
//! kinds and events come in minor releases, so match them with a wildcard
//! arm. Everything else in the crate is private and may change at any time.

#![deny(missing_docs)]

/// Modules private to the crate, but public with the `fuzzing` feature so
/// the fuzz targets can reach internals (not part of the API, not covered
/// by its stability promise).
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "fuzzing")]
        #[doc(hidden)]
        #[allow(missing_docs)]
        pub mod $name;
        #[cfg(not(feature = "fuzzing"))]
        pub(crate) mod $name;
    )*};
}
internal!(blob, fs, source, tar, text);
mod error;
pub mod merge;
pub mod progress;
pub mod runtime;
pub mod sink;

pub use error::{Error, ErrorKind, InputMistake, LayerPosition, RegistryErrorKind, Result};

/// The library's version and the gzip inflate engine it was built with
/// (`0.1.0 (gzip inflate: ISA-L)`), for a program's `--version`.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (gzip inflate: ",
    crate::blob::gzip::inflate_engine!(),
    ")"
);

pub mod image {
    //! Images on disk: an OCI image layout, a `docker save` archive (either
    //! as a directory or a tar file), named by path or by a
    //! containers-transports name (`oci:DIR[:REF]`,
    //! `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME]`).
    //!
    //! [`open`] resolves a name and a [`Selection`] (platform, tag) to one
    //! image's layers, checking every index, manifest and config against
    //! its digest on the way; the layers' own digests are checked as a
    //! merge streams them.
    //!
    //! ```no_run
    //! use ocirender::image::{self, Selection};
    //!
    //! # fn main() -> ocirender::Result<()> {
    //! let arm = Selection::default().for_platform("linux/arm64")?;
    //! let image = image::open("ubuntu.tar", &arm)?;
    //! for layer in &image.layers {
    //!     println!("{} {} bytes", layer.digest, layer.size);
    //! }
    //! # Ok(()) }
    //! ```
    pub use crate::source::image::name::{ImageName, Transport};
    pub use crate::source::image::platform::{Platform, PlatformRequest};
    pub use crate::source::image::{
        inventory, listing, open, resolve, resolve_name, ResolvedImage, ResolvedLayer, Selection,
    };
}

pub mod registry {
    //! Registries: references, credentials (`auth.json`, as the containers
    //! tools keep them), mirrors (`registries.conf`), token auth, and
    //! `oci-fetch`'s two ways of getting an image's layers to a merge (named
    //! pipes served while the merge reads them, or a verified layout store).
    pub use crate::source::fetch;
    pub use crate::source::reference::{looks_like_reference, Reference};
    pub use crate::source::registry::{auth_file, credentials, login, mirrors};
    pub use crate::source::registry::{ClientOptions, Endpoints, RetryNotice, Warn};
}

pub mod layer {
    //! One layer as a merge reads it: the line of a layer list that names
    //! it ([`LayerRef`]: a path, an optional byte range, size and digest),
    //! and its bytes decoded and verified as they stream ([`DecodedLayer`]).
    pub use crate::blob::compression::Compression;
    pub use crate::blob::decode::{DecodedLayer, LayerSummary};
    pub use crate::blob::digest::{Algorithm, Digest};
    pub use crate::blob::layer_ref::{parse_list, read_list, LayerRef, END_OF_LIST, SOURCE_FAILED};
}

pub mod limits {
    //! The limits every tar reader here holds a header to (a path's length
    //! and depth, a long name or PAX header's size, a sparse map's regions,
    //! an extended attribute): checked before anything is allocated for it.
    pub use crate::tar::limits::{Limit, LimitError};
}

pub mod process {
    //! What a program built on this library owes its user when a signal
    //! comes or its reader goes: the temporaries (staged outputs, pipes,
    //! partial downloads) removed on SIGINT, SIGTERM and SIGHUP, and pipes
    //! made large and their breakage recognised.
    pub use crate::fs::pipe::{enlarge_pipe, is_broken_pipe};
    pub use crate::fs::temporaries::{interrupted, remove_on_signal};
    pub use crate::tar::writer::{is_abandoned_stream_error, write_abandoned};
    pub use crate::text::{human_size, one_line};
}
