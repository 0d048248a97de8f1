//! The JSON documents of OCI layouts and `docker save` archives, and the
//! media types that tell them apart.

use crate::error::{err, Result};
use crate::source::image::platform::Platform;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{self, Read};

/// The largest index, manifest or config read into memory, wherever it
/// comes from (a registry, a layout, an archive): 4 MiB, the limit
/// containerd and the distribution registry put on manifests and
/// containers/image (Podman, skopeo) on configs. Real ones are a few KiB;
/// a larger one is refused before it is read.
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list (the index of Docker's schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The media type reported for the uncompressed layers of a legacy
/// `docker save` archive, which has no descriptors of its own.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Annotation naming an index entry (OCI image-layout).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker 25+ use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Annotation BuildKit puts on attestation manifests.
pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// True for index media types.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// True for image manifest media types.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// True for image config media types.
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// What a descriptor's media type names, for messages.
pub fn document_kind(media_type: &str) -> &'static str {
    if is_index(media_type) {
        "index"
    } else if is_manifest(media_type) {
        "manifest"
    } else if is_image_config(media_type) {
        "config"
    } else {
        "document"
    }
}

/// Refuses a `kind` of document that `what` names, declared `size` bytes
/// long, if that is over [`MAX_DOCUMENT`]: before any of it is read.
pub fn check_document_size(what: &str, kind: &str, size: u64) -> Result<()> {
    if size > MAX_DOCUMENT {
        return Err(document_too_large(what, kind, Some(size)));
    }
    Ok(())
}

/// The error for a document over [`MAX_DOCUMENT`], of `size` bytes if
/// that is known.
pub fn document_too_large(what: &str, kind: &str, size: Option<u64>) -> crate::error::Error {
    let size = size.map_or_else(String::new, |size| format!(" {size} bytes,"));
    err!(
        "{what}: the {kind} is{size} over the {} MiB limit for indexes, manifests and configs",
        MAX_DOCUMENT >> 20
    )
}

/// At most `limit + 1` bytes of `reader`: all of it if it is no longer
/// than `limit`, else enough to tell that it is longer.
pub fn read_at_most(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// True for layer media types that name a tar (compressed or not,
/// distributable or not): `...tar`, `...tar+gzip`, `...tar.gzip`, ...
pub fn is_tar_layer(media_type: &str) -> bool {
    media_type.ends_with(".tar") || media_type.contains(".tar+") || media_type.contains(".tar.")
}

/// True for layer types that registries may refuse to carry, whose blobs
/// are often absent from a saved image.
pub fn is_foreign(media_type: &str) -> bool {
    media_type.contains("nondistributable") || media_type.contains("foreign")
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    #[serde(default)]
    pub media_type: Option<String>,
    /// `algorithm:hex`.
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// Where else the content may be fetched (foreign layers).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Set on artifact manifests.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

/// An image index, or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Must be 2.
    pub schema_version: u32,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Must be 2.
    pub schema_version: u32,
    /// The manifest's own media type, if stated.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config this tool needs.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Config {
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// CPU variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// The uncompressed layer digests.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

impl Config {
    /// The platform the config declares, if it declares os and arch.
    pub fn platform(&self) -> Option<Platform> {
        Some(
            Platform {
                os: self.os.clone()?,
                architecture: self.architecture.clone()?,
                variant: self.variant.clone(),
            }
            .normalized(),
        )
    }
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RootFs {
    /// Digests of the uncompressed layer tars, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One image of a `docker save` `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct DockerSaveEntry {
    /// Path of the config file.
    #[serde(rename = "Config")]
    pub config: String,
    /// Names of the image.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, base first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// The `oci-layout` marker file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutMarker {
    /// `1.0.0` for every layout in use.
    pub image_layout_version: String,
}
