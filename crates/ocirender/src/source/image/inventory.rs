//! What an image source holds, to see before converting it
//! (`oci-layers --list`, `oci-fetch --list`): every image, and for each
//! every platform's manifest with its config, layer count and size.
//!
//! It is read by the walk that resolves an image, and checked as that
//! checks it (every index, manifest and config against its descriptor,
//! every layer blob present at its size), so an image listed is one that
//! converts, and a broken one is an error here too. What selection ignores
//! is not listed: attestation manifests, artifacts and unknown entries,
//! which no `--tag` or `--platform` can choose, so every line of a listing
//! is something a user can convert.

use super::manifest::{self, collect_manifests, descriptor_digest, is_image};
use super::name::ImageName;
use super::platform::{Platform, PlatformRequest};
use super::source::BlobSource;
use super::store::Store;
use super::{catalog, image_at, read_index, read_save_manifest, resolve_saved, tags, Catalog};
use super::{ResolvedImage, Selection};
use crate::blob::digest::Digest;
use crate::error::Result;
use crate::source::spec::Descriptor;

/// One image of a source: an entry of `index.json` or `manifest.json`, or
/// what a registry reference names.
#[derive(Debug, Clone)]
pub struct ListedImage {
    /// Its position in `index.json` or `manifest.json`, which `@N`
    /// selects (0 for a registry reference).
    pub position: usize,
    /// Its names: `ref.name` or full name, `RepoTags`, or the reference.
    pub names: Vec<String>,
    /// The digest of the manifest or index the entry names (none for a
    /// docker save, whose images have no manifest).
    pub digest: Option<Digest>,
    /// The entry's media type (none for a docker save).
    pub media_type: Option<String>,
    /// Its image manifests, one per platform, in order.
    pub manifests: Vec<ListedManifest>,
}

/// One image manifest of a listed image.
#[derive(Debug, Clone)]
pub struct ListedManifest {
    /// Its digest (none in a docker save).
    pub digest: Option<Digest>,
    /// Its platform: the index entry's, else the config's.
    pub platform: Option<Platform>,
    /// What it holds; `None` for one not read (past a cap).
    pub contents: Option<Contents>,
}

/// What an image manifest holds.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The config's digest.
    pub config: Digest,
    /// How many layers.
    pub layers: usize,
    /// Their total size as stored (compressed, for compressed layers).
    pub size: u64,
}

impl ListedImage {
    /// True for an index (of several platforms), false for one manifest.
    pub fn is_index(&self) -> bool {
        let single = self.manifests.len() == 1
            && self.digest.is_some()
            && self.manifests[0].digest == self.digest;
        self.digest.is_some() && !single
    }
}

/// Every image the source `name` holds, or with a tag (`--tag`, or the
/// name's reference) those it names: none named is an error.
pub fn list(name: &ImageName, tag: Option<&str>) -> Result<Vec<ListedImage>> {
    let store = name.open()?;
    let position = tags::position(tag)?;
    let (images, names) = match catalog(&store, name.transport)? {
        Catalog::Layout => list_layout(&store, tag, position)?,
        Catalog::Save => list_save(&store, tag, position)?,
    };
    if images.is_empty() && tag.is_some() {
        return Err(tags::NoSuchImage::new(store.root(), tag, names).into());
    }
    Ok(images)
}

/// The image an index entry (or a registry's top manifest) holds: every
/// manifest it leads to, each read and checked; past the first `cap`
/// only what the index says of them, unread.
pub fn list_entry(
    source: &dyn BlobSource,
    entry: &Descriptor,
    position: usize,
    names: Vec<String>,
    cap: Option<usize>,
) -> Result<ListedImage> {
    let mut found = Vec::new();
    collect_manifests(source, entry, 0, &mut found)?;
    let any = any_platform()?;
    let mut manifests = Vec::new();
    for (n, (platform, descriptor)) in found.iter().enumerate() {
        if cap.is_some_and(|cap| n >= cap) {
            manifests.push(ListedManifest {
                digest: Some(descriptor_digest(source, descriptor, "manifest")?),
                platform: platform.clone().map(Platform::normalized),
                contents: None,
            });
            continue;
        }
        let image = manifest::resolve_manifest(source, descriptor, &any)?;
        manifests.push(listed(image));
    }
    Ok(ListedImage {
        position,
        names,
        digest: Some(descriptor_digest(source, entry, "descriptor")?),
        media_type: entry.media_type.clone(),
        manifests,
    })
}

/// The images of a layout's `index.json` that `tag` or `position` name
/// (all without either), and the names of all.
fn list_layout(
    store: &Store,
    tag: Option<&str>,
    position: Option<usize>,
) -> Result<(Vec<ListedImage>, Vec<String>)> {
    let index = read_index(store)?;
    let chosen: Vec<(usize, &Descriptor)> = match position {
        Some(position) => vec![(position, image_at(store, &index.manifests, position)?)],
        None => index
            .manifests
            .iter()
            .enumerate()
            .filter(|(_, entry)| is_image(entry))
            .filter(|(_, entry)| tag.is_none_or(|tag| tags::entry_tagged(entry, tag)))
            .collect(),
    };
    let names_of = |entry: &Descriptor| -> Vec<String> {
        tags::entry_name(entry)
            .map(str::to_owned)
            .into_iter()
            .collect()
    };
    let images = chosen
        .into_iter()
        .map(|(at, entry)| list_entry(store, entry, at, names_of(entry), None))
        .collect::<Result<_>>()?;
    Ok((images, index.manifests.iter().flat_map(names_of).collect()))
}

/// The images of a docker save's `manifest.json` that `tag` or
/// `position` name (all without either), and the names of all.
fn list_save(
    store: &Store,
    tag: Option<&str>,
    position: Option<usize>,
) -> Result<(Vec<ListedImage>, Vec<String>)> {
    let entries = read_save_manifest(store)?;
    if let Some(position) = position {
        tags::at_position(store.root(), "manifest.json", &entries, position)?;
    }
    let any = any_platform()?;
    let mut images = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let names = entry.repo_tags.clone().unwrap_or_default();
        let chosen = match (position, tag) {
            (Some(position), _) => position == at,
            (None, Some(tag)) => names.iter().any(|n| tags::docker_tag_matches(n, tag)),
            (None, None) => true,
        };
        if chosen {
            let image = resolve_saved(store, entry, &any)?;
            images.push(ListedImage {
                position: at,
                names,
                digest: None,
                media_type: None,
                manifests: vec![listed(image)],
            });
        }
    }
    let names = entries
        .iter()
        .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
        .collect();
    Ok((images, names))
}

/// A selection every manifest passes: listing chooses nothing.
fn any_platform() -> Result<Selection> {
    Ok(Selection {
        platform: PlatformRequest::new(None)?,
        tag: None,
    })
}

fn listed(image: ResolvedImage) -> ListedManifest {
    ListedManifest {
        digest: image.manifest,
        platform: image.platform,
        contents: Some(Contents {
            config: image.config,
            layers: image.layers.len(),
            size: image.layers.iter().map(|l| l.size).sum(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::digest::Algorithm;
    use crate::source::spec;
    use serde_json::json;

    /// Past the cap, a manifest is listed from the index alone: its
    /// digest and platform, nothing read (here it is not even there).
    #[test]
    fn manifests_past_the_cap_are_listed_unread() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8], media_type: &str| {
            let digest = Digest::of_bytes(Algorithm::Sha256, bytes);
            std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
        };
        let config = put(
            br#"{"os":"linux","architecture":"amd64"}"#,
            spec::OCI_CONFIG,
        );
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": []});
        let mut first = put(manifest.to_string().as_bytes(), spec::OCI_MANIFEST);
        first["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let absent = json!({
            "mediaType": spec::OCI_MANIFEST,
            "digest": format!("sha256:{}", "0".repeat(64)),
            "size": 10,
            "platform": {"os": "linux", "architecture": "arm64"},
        });
        let index = json!({"schemaVersion": 2, "manifests": [first, absent]});
        let entry: Descriptor =
            serde_json::from_value(put(index.to_string().as_bytes(), spec::OCI_INDEX)).unwrap();
        let store = Store::open(dir.path()).unwrap();

        let listed = list_entry(&store, &entry, 3, vec!["x".into()], Some(1)).unwrap();
        assert!(listed.is_index());
        assert_eq!(listed.position, 3);
        let platforms: Vec<String> = listed
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        let contents = listed.manifests[0].contents.as_ref().unwrap();
        assert_eq!((contents.layers, contents.size), (0, 0));
        assert!(listed.manifests[1].contents.is_none());
        // Without the cap, the missing manifest is an error, as resolving it would be.
        let err = list_entry(&store, &entry, 3, Vec::new(), None).unwrap_err();
        assert!(format!("{err:#}").contains("blob is missing"), "{err:#}");
    }
}
