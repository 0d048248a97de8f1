//! Resolving an image to its ordered layer blobs.
//!
//! Accepted forms: an OCI image layout directory, an extracted `docker
//! save` directory (legacy `<id>/layer.tar`, or Docker 25+ which is also an
//! OCI layout), and either one as a tar file. Every index, manifest and
//! config read is checked against its descriptor's digest and size; layer
//! blobs are only located here and are verified by `oci-merge` as it
//! streams them, except a compressed legacy `docker save` `layer.tar`,
//! whose only digest is the uncompressed one (see `legacy_layer_digest`).

pub mod inventory;
pub mod listing;
pub mod manifest;
pub mod name;
pub mod platform;
pub mod source;
pub mod store;
pub mod tags;

use crate::blob::compression::Compression;
use crate::blob::digest::{Algorithm, Digest, Hasher};
use crate::blob::layer_ref::LayerRef;
use crate::error::{bail, Context, Error, ErrorKind, Result};
use crate::source::spec::{self, Config, Descriptor, DockerSaveEntry, Index, LayoutMarker};
use manifest::{check_platform, check_schema, diff_ids, is_image, parse_json};
use name::{ImageName, Transport};
use platform::{Platform, PlatformRequest};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use store::Store;

/// Which image to pick.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The platform wanted.
    pub platform: PlatformRequest,
    /// A tag (`org.opencontainers.image.ref.name`, or a `RepoTags` name),
    /// or `@N`: the N-th entry (from 0) of `index.json` or
    /// `manifest.json`, as containers-transports write it.
    pub tag: Option<String>,
}

/// An image resolved to its layers.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The manifest's digest (absent for legacy `docker save` archives,
    /// which have no manifest blob).
    pub manifest: Option<Digest>,
    /// The config's digest.
    pub config: Digest,
    /// The config, exactly as stored: its bytes were checked against
    /// `config`.
    pub config_bytes: Vec<u8>,
    /// The platform, from the index entry or else the config.
    pub platform: Option<Platform>,
    /// The layers, base first.
    pub layers: Vec<ResolvedLayer>,
}

/// One layer of a resolved image.
#[derive(Debug, Clone)]
pub struct ResolvedLayer {
    /// Digest of the stored blob.
    pub digest: Digest,
    /// The layer's media type.
    pub media_type: String,
    /// Size of the stored blob.
    pub size: u64,
    /// The uncompressed digest from the config, when given.
    pub diff_id: Option<Digest>,
    /// Where `oci-merge` reads it.
    pub layer: LayerRef,
}

impl Default for Selection {
    /// The image for this machine's platform, when the source holds one
    /// image (or one per platform).
    fn default() -> Selection {
        Selection {
            platform: PlatformRequest::new(None).expect("the host platform parses"),
            tag: None,
        }
    }
}

impl Selection {
    /// The image for `platform` (`os/arch[/variant]`): no other will do.
    pub fn for_platform(mut self, platform: &str) -> Result<Selection> {
        self.platform = PlatformRequest::new(Some(platform))?;
        Ok(self)
    }

    /// The image tagged `tag` (a `ref.name`, a `RepoTags` name, or `@N`).
    pub fn tagged(mut self, tag: impl Into<String>) -> Selection {
        self.tag = Some(tag.into());
        self
    }
}

impl ResolvedImage {
    /// The layers as a merge reads them, base first.
    pub fn layer_refs(&self) -> Vec<LayerRef> {
        self.layers.iter().map(|l| l.layer.clone()).collect()
    }
}

/// Opens the image a user names, as `oci-layers` does: a path (an OCI
/// layout, a `docker save`, as a directory or a tar file) or a
/// containers-transports name (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
/// `docker-archive:FILE[:NAME]`). A reference in the name is the tag, and
/// must agree with the selection's.
pub fn open(name: &str, selection: &Selection) -> Result<ResolvedImage> {
    let parsed = ImageName::from_arg(name)?;
    let tag = parsed.tag(selection.tag.clone())?;
    let selection = Selection {
        platform: selection.platform.clone(),
        tag,
    };
    resolve_name(&parsed, &selection)
}

/// Resolves the image at `path`.
pub fn resolve(path: &Path, selection: &Selection) -> Result<ResolvedImage> {
    resolve_name(&ImageName::path(path), selection)
}

/// Resolves the image a user named (see `name`): a transport's
/// reference is the tag, and the transport must fit what is found.
pub fn resolve_name(name: &ImageName, selection: &Selection) -> Result<ResolvedImage> {
    let store = name.open()?;
    match catalog(&store, name.transport)? {
        Catalog::Layout => {
            match resolve_oci(&store, selection) {
                // Docker 25+ archives are also docker saves: their RepoTags
                // may name an image index.json does not name, and an image
                // saved by ID has no index.json entry at all. Only then is
                // manifest.json read instead (for a plain path, which
                // names both); a broken image is an error however it is
                // named.
                Err(e)
                    if matches!(e.kind(), crate::error::ErrorKind::NoSuchImage { .. })
                        && name.transport == Transport::Path
                        && store.exists("manifest.json") =>
                {
                    resolve_docker_save(&store, selection)
                }
                oci => oci,
            }
        }
        Catalog::Save => resolve_docker_save(&store, selection),
    }
}

/// The file that lists a store's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Catalog {
    /// `index.json`, of an OCI layout.
    Layout,
    /// `manifest.json`, of a docker save.
    Save,
}

/// Which file lists the images: the one the transport names
/// (`docker-archive:` reads `manifest.json`, as `docker load` does, even
/// in a Docker 25+ archive that is also a layout); for a plain path,
/// `index.json` when there is one.
pub(crate) fn catalog(store: &Store, transport: Transport) -> Result<Catalog> {
    Ok(match transport {
        Transport::DockerArchive => Catalog::Save,
        Transport::Oci | Transport::OciArchive => Catalog::Layout,
        _ if store.exists("index.json") => Catalog::Layout,
        _ if store.exists("manifest.json") => Catalog::Save,
        _ => bail!(
            kind = ErrorKind::NotAnImage {
                path: store.root().to_owned()
            },
            "{}: not an image: no index.json (OCI layout) or manifest.json (docker save)",
            store.root().display()
        ),
    })
}

fn check_layout_marker(store: &Store) -> Result<()> {
    if !store.exists("oci-layout") {
        bail!(
            kind = ErrorKind::NotAnImage {
                path: store.root().to_owned()
            },
            "{}: not an OCI layout: the oci-layout file is missing",
            store.root().display()
        );
    }
    let marker: LayoutMarker =
        parse_json(&store.describe("oci-layout"), &store.read("oci-layout")?)?;
    if !marker.image_layout_version.starts_with("1.") {
        bail!(
            "{}: unsupported image layout version {:?}",
            store.describe("oci-layout"),
            marker.image_layout_version
        );
    }
    Ok(())
}

fn resolve_oci(store: &Store, selection: &Selection) -> Result<ResolvedImage> {
    let index = read_index(store)?;
    let tag = selection.tag.as_deref();
    // Only images may be chosen or named: an entry of another type
    // (unknown, an artifact, an attestation) is not a second image.
    let images: Vec<Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_image(d))
        .cloned()
        .collect();
    let entries = match tags::position(tag)? {
        Some(position) => vec![image_at(store, &index.manifests, position)?],
        None => tags::choose(store.root(), tag, tags::index_candidates(&images, tag))?,
    };
    manifest::resolve_entries(store, &entries, selection)
}

/// A layout's `index.json`, checked (and its `oci-layout` marker).
pub(crate) fn read_index(store: &Store) -> Result<Index> {
    check_layout_marker(store)?;
    let what = store.describe("index.json");
    let index: Index = parse_json(&what, &store.read("index.json")?)?;
    check_schema(&what, index.schema_version)?;
    Ok(index)
}

/// The entry `@position` names, which must be an image.
fn image_at<'a>(
    store: &Store,
    entries: &'a [Descriptor],
    position: usize,
) -> Result<&'a Descriptor> {
    let entry = tags::at_position(store.root(), "index.json", entries, position)?;
    if !is_image(entry) {
        bail!(
            "{}: @{position} is not an image (media type {:?})",
            store.describe("index.json"),
            entry.media_type.as_deref().unwrap_or_default()
        );
    }
    Ok(entry)
}

pub(super) fn stored_size(layer: &LayerRef) -> Result<u64> {
    Ok(match layer.range {
        Some((_, size)) => size,
        None => std::fs::metadata(&layer.path)
            .with_context(|| layer.describe())?
            .len(),
    })
}

fn resolve_docker_save(store: &Store, selection: &Selection) -> Result<ResolvedImage> {
    let entries = read_save_manifest(store)?;
    let tag = selection.tag.as_deref();
    let chosen = match tags::position(tag)? {
        Some(position) => tags::at_position(store.root(), "manifest.json", &entries, position)?,
        None => tags::choose(store.root(), tag, tags::save_candidates(&entries, tag))?,
    };
    resolve_saved(store, chosen, selection)
}

/// A docker save's `manifest.json`, which must list an image.
pub(crate) fn read_save_manifest(store: &Store) -> Result<Vec<DockerSaveEntry>> {
    let entries: Vec<DockerSaveEntry> = parse_json(
        &store.describe("manifest.json"),
        &store.read("manifest.json")?,
    )?;
    if entries.is_empty() {
        bail!(
            "{}: manifest.json lists no images",
            store.describe("manifest.json")
        );
    }
    Ok(entries)
}

/// Resolves one image of a docker save.
pub(crate) fn resolve_saved(
    store: &Store,
    chosen: &DockerSaveEntry,
    selection: &Selection,
) -> Result<ResolvedImage> {
    let config_bytes = read_saved_config(store, &chosen.config)?;
    let config_digest = Digest::of_bytes(Algorithm::Sha256, &config_bytes);
    if let Some(declared) = declared_digest(&chosen.config) {
        if declared != config_digest {
            let blob = store.describe(&chosen.config);
            return Err(Error::digest_mismatch(blob, &declared, &config_digest));
        }
    }
    let config: Config = parse_json(&store.describe(&chosen.config), &config_bytes)?;
    check_platform(
        &store.root().display().to_string(),
        true,
        &config,
        selection,
    )?;
    let diff_ids = diff_ids(
        &store.describe(&chosen.config),
        &config,
        chosen.layers.len(),
    )?;
    if diff_ids.len() != chosen.layers.len() {
        bail!(
            "{}: the config lists no diff_ids",
            store.describe(&chosen.config)
        );
    }
    let layers = chosen
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(rel, diff_id)| resolve_saved_layer(store, rel, diff_id))
        .collect::<Result<_>>()?;
    Ok(ResolvedImage {
        manifest: None,
        config: config_digest,
        config_bytes,
        platform: config.platform(),
        layers,
    })
}

/// The config of a docker save, which no descriptor sizes: read up to
/// [`spec::MAX_DOCUMENT`], and refused if it goes on.
fn read_saved_config(store: &Store, rel: &str) -> Result<Vec<u8>> {
    let bytes = spec::read_at_most(store.open_file(rel)?, spec::MAX_DOCUMENT)
        .with_context(|| store.describe(rel))?;
    if bytes.len() as u64 > spec::MAX_DOCUMENT {
        return Err(spec::document_too_large(
            &store.describe(rel),
            "config",
            None,
        ));
    }
    Ok(bytes)
}

/// A layer of a docker save. Saved layers are uncompressed tars, so the
/// digest oci-merge checks is the diff_id, unless the path itself names the
/// blob (Docker 25+).
fn resolve_saved_layer(store: &Store, rel: &str, diff_id: Digest) -> Result<ResolvedLayer> {
    if !store.check(rel)? {
        bail!("{}: layer file is missing", store.describe(rel));
    }
    let (digest, compression) = match declared_digest(rel) {
        Some(digest) => (digest, Compression::None),
        None => legacy_layer_digest(store, rel, &diff_id)?,
    };
    let layer = store.layer(rel, Some(digest.clone()))?;
    Ok(ResolvedLayer {
        digest,
        media_type: legacy_media_type(compression),
        size: stored_size(&layer)?,
        diff_id: Some(diff_id),
        layer,
    })
}

/// The digest oci-merge is to check a legacy `<id>/layer.tar` against,
/// and how it is compressed. Uncompressed, that is its diff_id, which
/// oci-merge checks as it streams. But `docker load` accepts a compressed
/// one too, and then nothing in the image gives the digest of the stored
/// bytes, while a layer list line carries only that one digest. So such a
/// layer is read here, once: its diff_id checked over the decompressed
/// bytes, and the digest of the stored bytes, computed in the same pass,
/// handed on so oci-merge reads exactly what was checked. One extra read
/// of a layer, for legacy archives only, which are rarely compressed.
fn legacy_layer_digest(
    store: &Store,
    rel: &str,
    diff_id: &Digest,
) -> Result<(Digest, Compression)> {
    let describe = || store.describe(rel);
    let mut file = BufReader::new(store.open_file(rel)?);
    let compression = Compression::sniff(file.fill_buf().with_context(describe)?);
    if compression == Compression::None {
        return Ok((diff_id.clone(), compression));
    }
    let mut stored = HashingReader::new(file, diff_id.algorithm());
    let mut decoder = compression
        .decoder(BufReader::new(&mut stored))
        .with_context(describe)?;
    let uncompressed = digest_of_stream(&mut decoder, diff_id.algorithm())
        .with_context(|| format!("{}: corrupt or truncated {compression} data", describe()))?;
    drop(decoder);
    // Bytes after the end of the compressed data still count for its digest.
    std::io::copy(&mut stored, &mut std::io::sink()).with_context(describe)?;
    if &uncompressed != diff_id {
        bail!(
            "{}: diff_id mismatch: the config says {diff_id}, the uncompressed layer has {uncompressed}",
            describe()
        );
    }
    Ok((stored.finish(), compression))
}

/// Docker's media type for a saved layer: `...rootfs.diff.tar`, and for a
/// compressed one the same with the compression (`.tar.gzip`, as Docker
/// names gzip layers, `.tar.zstd` as containerd names zstd ones).
fn legacy_media_type(compression: Compression) -> String {
    match compression {
        Compression::None => spec::DOCKER_LAYER_TAR.to_owned(),
        other => format!("{}.{other}", spec::DOCKER_LAYER_TAR),
    }
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
        }
    }

    fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The digest of everything `reader` yields.
fn digest_of_stream(reader: &mut dyn Read, algorithm: Algorithm) -> std::io::Result<Digest> {
    let mut hashing = HashingReader::new(reader, algorithm);
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    Ok(hashing.finish())
}

/// The digest a path declares: `blobs/<alg>/<hex>` or legacy `<hex>.json`.
fn declared_digest(rel: &str) -> Option<Digest> {
    if let Some(digest) = Digest::from_blob_path(Path::new(rel)) {
        return Some(digest);
    }
    let name = Path::new(rel).file_name()?.to_str()?;
    Digest::new(Algorithm::Sha256, name.strip_suffix(".json")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compressed(compression: Compression, data: &[u8]) -> Vec<u8> {
        match compression {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// A legacy layer.tar in any compression is checked against its
    /// diff_id over the decompressed bytes; oci-merge gets the digest of
    /// the stored bytes (trailing padding included), or for an
    /// uncompressed one the diff_id itself.
    #[test]
    fn legacy_layers_are_checked_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("id")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = b"a layer tar, as far as digests go".repeat(100);
        let diff_id = Digest::of_bytes(Algorithm::Sha256, &tar);
        for (compression, padding) in [
            (Compression::None, 0),
            (Compression::Gzip, 0),
            (Compression::Gzip, 512),
            (Compression::Zstd, 0),
            (Compression::Xz, 0),
            (Compression::Bzip2, 0),
        ] {
            let mut stored = compressed(compression, &tar);
            stored.resize(stored.len() + padding, 0);
            std::fs::write(dir.path().join("id/layer.tar"), &stored).unwrap();
            let (digest, found) = legacy_layer_digest(&store, "id/layer.tar", &diff_id).unwrap();
            assert_eq!(found, compression);
            let want = match compression {
                Compression::None => diff_id.clone(),
                _ => Digest::of_bytes(Algorithm::Sha256, &stored),
            };
            assert_eq!(digest, want, "{compression} + {padding}");
            let other = Digest::of_bytes(Algorithm::Sha256, b"other");
            if compression != Compression::None {
                let err = legacy_layer_digest(&store, "id/layer.tar", &other).unwrap_err();
                assert!(format!("{err:#}").contains("diff_id mismatch"), "{err:#}");
            }
        }
        assert_eq!(
            legacy_media_type(Compression::Gzip),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }

    /// A config over the 4 MiB limit: refused from its descriptor in a
    /// layout, after 4 MiB and a byte in a docker save (which has no
    /// descriptor), never read whole.
    #[test]
    fn configs_over_the_limit_are_refused() {
        let big = format!(r#"{{"os":"linux","pad":"{}"}}"#, "x".repeat(5 << 20));
        let save = tempfile::tempdir().unwrap();
        std::fs::write(save.path().join("cfg.json"), &big).unwrap();
        std::fs::write(
            save.path().join("manifest.json"),
            r#"[{"Config":"cfg.json","Layers":[]}]"#,
        )
        .unwrap();
        let selection = Selection {
            platform: PlatformRequest::new(None).unwrap(),
            tag: None,
        };
        let e = format!("{:#}", resolve(save.path(), &selection).unwrap_err());
        assert!(
            e.ends_with(
                "cfg.json: the config is over the 4 MiB limit for indexes, manifests and configs"
            ),
            "{e}"
        );

        let layout = tempfile::tempdir().unwrap();
        let blobs = layout.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let digest = Digest::of_bytes(Algorithm::Sha256, bytes);
            std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
            serde_json::json!({"digest": digest.to_string(), "size": bytes.len()})
        };
        let mut config = put(big.as_bytes());
        config["mediaType"] = spec::OCI_CONFIG.into();
        let manifest = serde_json::json!({"schemaVersion": 2, "config": config, "layers": []});
        let mut entry = put(manifest.to_string().as_bytes());
        entry["mediaType"] = spec::OCI_MANIFEST.into();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
        std::fs::write(layout.path().join("index.json"), index.to_string()).unwrap();
        std::fs::write(
            layout.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let e = format!("{:#}", resolve(layout.path(), &selection).unwrap_err());
        assert!(
            e.contains(&format!(
                "the config is {} bytes, over the 4 MiB limit for indexes, manifests and configs",
                big.len()
            )),
            "{e}"
        );
    }

    #[test]
    fn media_types() {
        assert!(spec::is_tar_layer("application/vnd.oci.image.layer.v1.tar"));
        assert!(spec::is_tar_layer(
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ));
        assert!(spec::is_tar_layer(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        ));
        assert!(spec::is_tar_layer(
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        ));
        assert!(!spec::is_tar_layer("application/vnd.in-toto+json"));
        assert!(!spec::is_tar_layer("application/octet-stream"));
    }
}
