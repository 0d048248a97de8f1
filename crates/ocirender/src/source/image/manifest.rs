//! The selection policy, for any [`BlobSource`]: from index entries down
//! through nested indexes to one image manifest for the wanted platform,
//! then its config and layers. Every blob read is checked against its
//! descriptor's size and digest before it is parsed.

use super::platform::Platform;
use super::source::BlobSource;
use super::{ResolvedImage, ResolvedLayer, Selection};
use crate::blob::digest::Digest;
use crate::error::{bail, err, Context, Error, ErrorKind, Result};
use crate::source::spec::{self, Config, Descriptor, Index, Manifest};
use serde::de::DeserializeOwned;

/// Nested indexes followed before giving up (a loop would never end).
const MAX_INDEX_DEPTH: usize = 8;

/// Resolves the image that `entries` (index entries, already narrowed to
/// the wanted name) hold for the selected platform.
pub fn resolve_entries(
    source: &dyn BlobSource,
    entries: &[&Descriptor],
    selection: &Selection,
) -> Result<ResolvedImage> {
    let mut candidates = Vec::new();
    for entry in entries {
        collect_manifests(source, entry, 0, &mut candidates)?;
    }
    if candidates.is_empty() {
        bail!("{}: no image manifest in the index", source.name());
    }
    let Some(chosen) = selection.platform.choose(&candidates) else {
        let available: Vec<String> = candidates
            .iter()
            .filter_map(|(p, _)| p.as_ref().map(Platform::to_string))
            .collect();
        let requested = selection.platform.to_string();
        bail!(
            kind = ErrorKind::NoSuchPlatform {
                requested: requested.clone(),
                available: available.clone(),
            },
            "{}: no manifest for platform {requested} (available: {})",
            source.name(),
            available.join(", ")
        );
    };
    resolve_manifest(source, chosen, selection)
}

/// Parses JSON read from `what` (named in the message).
pub(super) fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| err!("{what}: malformed JSON: {e}"))
}

/// Rejects a schema version other than 2.
pub(super) fn check_schema(what: &str, version: u32) -> Result<()> {
    if version != 2 {
        bail!("{what}: unknown schemaVersion {version} (expected 2)");
    }
    Ok(())
}

/// The digest a descriptor (`what`, for the message) names.
pub(super) fn descriptor_digest(
    source: &dyn BlobSource,
    descriptor: &Descriptor,
    what: &str,
) -> Result<Digest> {
    descriptor
        .digest
        .parse()
        .with_context(|| format!("{}: bad {what} digest", source.name()))
}

/// Reads the blob a descriptor names, checking its size and digest; one
/// that says it is over [`spec::MAX_DOCUMENT`] is refused unread.
pub fn read_blob(source: &dyn BlobSource, descriptor: &Descriptor) -> Result<(Digest, Vec<u8>)> {
    let digest = descriptor_digest(source, descriptor, "descriptor")?;
    let kind = spec::document_kind(descriptor.media_type.as_deref().unwrap_or_default());
    spec::check_document_size(&source.describe(&digest), kind, descriptor.size)?;
    let bytes = source.fetch(descriptor, &digest)?;
    let read = bytes.len() as u64;
    if read != descriptor.size {
        // A source reads one byte past the size at most.
        let has = if read > descriptor.size {
            format!("more than {}", descriptor.size)
        } else {
            read.to_string()
        };
        bail!(
            "{}: size mismatch: the descriptor says {} bytes, the blob has {has}",
            source.describe(&digest),
            descriptor.size,
        );
    }
    let actual = Digest::of_bytes(digest.algorithm(), &bytes);
    if actual != digest {
        return Err(Error::digest_mismatch(
            source.describe(&digest),
            &digest,
            &actual,
        ));
    }
    Ok((digest, bytes))
}

/// True for an index entry that is an image or an index of images.
/// Anything else is ignored wherever it appears, as image-spec requires of
/// unknown media types: artifacts, signatures, and BuildKit's attestation
/// manifests (which are image manifests, but label themselves).
pub(super) fn is_image(descriptor: &Descriptor) -> bool {
    let media_type = descriptor.media_type.as_deref().unwrap_or_default();
    let attestation = descriptor
        .platform
        .as_ref()
        .is_some_and(Platform::is_unknown)
        || descriptor
            .annotations
            .get(spec::DOCKER_REFERENCE_TYPE)
            .is_some_and(|t| t == "attestation-manifest");
    (spec::is_manifest(media_type) || spec::is_index(media_type))
        && !attestation
        && descriptor.artifact_type.is_none()
}

/// Walks an index entry down to image manifests, in order.
pub(crate) fn collect_manifests(
    source: &dyn BlobSource,
    descriptor: &Descriptor,
    depth: usize,
    out: &mut Vec<(Option<Platform>, Descriptor)>,
) -> Result<()> {
    if !is_image(descriptor) {
        return Ok(());
    }
    let media_type = descriptor.media_type.as_deref().unwrap_or_default();
    if spec::is_manifest(media_type) {
        out.push((descriptor.platform.clone(), descriptor.clone()));
    } else if spec::is_index(media_type) {
        if depth >= MAX_INDEX_DEPTH {
            bail!(
                "{}: indexes nested more than {MAX_INDEX_DEPTH} deep",
                source.name()
            );
        }
        let (digest, bytes) = read_blob(source, descriptor)?;
        let what = source.describe(&digest);
        let index: Index = parse_json(&what, &bytes)?;
        check_schema(&what, index.schema_version)?;
        for entry in &index.manifests {
            collect_manifests(source, entry, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Resolves one image manifest: its config and layers, each checked.
pub(crate) fn resolve_manifest(
    source: &dyn BlobSource,
    descriptor: &Descriptor,
    selection: &Selection,
) -> Result<ResolvedImage> {
    let (digest, bytes) = read_blob(source, descriptor)?;
    let what = source.describe(&digest);
    let manifest: Manifest = parse_json(&what, &bytes)?;
    check_schema(&what, manifest.schema_version)?;
    if let Some(media_type) = &manifest.media_type {
        if !spec::is_manifest(media_type) {
            bail!("{what}: not an image manifest (media type {media_type})");
        }
    }
    let config_type = manifest.config.media_type.as_deref().unwrap_or_default();
    if !spec::is_image_config(config_type) {
        bail!("{what}: not a container image: the config has media type {config_type:?}");
    }
    let (config_digest, config_bytes) = read_blob(source, &manifest.config)?;
    let config_what = source.describe(&config_digest);
    let config: Config = parse_json(&config_what, &config_bytes)?;
    let platform = descriptor
        .platform
        .clone()
        .map(Platform::normalized)
        .or_else(|| config.platform());
    check_platform(
        &source.name(),
        descriptor.platform.is_none(),
        &config,
        selection,
    )?;
    let diff_ids = diff_ids(&config_what, &config, manifest.layers.len())?;
    let mut layers = Vec::new();
    for (position, layer) in manifest.layers.iter().enumerate() {
        layers.push(resolve_layer(
            source,
            position,
            layer,
            diff_ids.get(position).cloned(),
        )?);
    }
    Ok(ResolvedImage {
        manifest: Some(digest),
        config: config_digest,
        config_bytes,
        platform,
        layers,
    })
}

/// A manifest reached without platform information (a single-image
/// layout, a docker-save archive, a registry tag naming a manifest)
/// matches any platform, as an unlabelled index entry does; but if the user
/// asked for a platform explicitly, the config must not contradict it.
pub(super) fn check_platform(
    name: &str,
    unlabelled: bool,
    config: &Config,
    selection: &Selection,
) -> Result<()> {
    let explicit = selection.platform.explicit;
    let (Some(declared), true, true) = (config.platform(), unlabelled, explicit) else {
        return Ok(());
    };
    if selection
        .platform
        .choose(&[(Some(declared.clone()), ())])
        .is_none()
    {
        let requested = selection.platform.to_string();
        bail!(
            kind = ErrorKind::NoSuchPlatform {
                requested: requested.clone(),
                available: vec![declared.to_string()],
            },
            "{name}: the image is for {declared}, not {requested} (choose with --platform)"
        );
    }
    Ok(())
}

/// The config's diff_ids, which must be one per layer when present.
pub(super) fn diff_ids(what: &str, config: &Config, layers: usize) -> Result<Vec<Digest>> {
    let ids = config
        .rootfs
        .as_ref()
        .map(|r| r.diff_ids.as_slice())
        .unwrap_or_default();
    if !ids.is_empty() && ids.len() != layers {
        bail!(
            "{what}: the config lists {} diff_ids for {layers} layers",
            ids.len()
        );
    }
    ids.iter()
        .map(|id| id.parse().with_context(|| format!("{what}: bad diff_id")))
        .collect()
}

fn resolve_layer(
    source: &dyn BlobSource,
    position: usize,
    descriptor: &Descriptor,
    diff_id: Option<Digest>,
) -> Result<ResolvedLayer> {
    let media_type = descriptor.media_type.clone().unwrap_or_default();
    if !spec::is_tar_layer(&media_type) {
        bail!(
            "{}: layer {} has media type {media_type:?}, which is not a filesystem layer",
            source.name(),
            descriptor.digest
        );
    }
    let digest = descriptor_digest(source, descriptor, "layer descriptor")?;
    let layer = source.layer(position, descriptor, &digest)?;
    Ok(ResolvedLayer {
        digest,
        media_type,
        size: descriptor.size,
        diff_id,
        layer,
    })
}
