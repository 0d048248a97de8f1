//! `oci-fetch`: a registry image as a layer list, streamed or stored.
//!
//! The reference's manifest or index is fetched, then the image is
//! selected by the same policy as a local one ([`crate::image::manifest`]),
//! through [`source::RegistrySource`]. Then either
//! * [`stream`]: the list names named pipes that are fed from the network
//!   while `oci-merge` reads them (nothing on disk), or
//! * [`store`]: the blobs are downloaded into a shared OCI layout and the
//!   list names the files, as `oci-layers` would print for that layout.
//!
//! [`prune`] (`--store DIR --prune`) removes from such a layout what no
//! image recorded in it needs.

pub mod lifetime;
pub mod nofollow;
mod partial;
pub mod pipe_dir;
pub mod prune;
pub mod readers;
pub mod session;
pub mod source;
pub mod store;
pub mod stream;

use crate::blob::digest::Hasher;
use crate::image::spec::{self, Descriptor};
use crate::image::{listing, manifest, ResolvedImage, Selection};
use crate::registry::reference::Reference;
use crate::registry::{Fetched, Registry, Resume};
use anyhow::{bail, Context, Result};
use serde_json::json;
use source::{LayerPlace, RegistrySource};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use store::LayoutStore;

/// What to fetch and how.
pub struct Request {
    /// The image.
    pub reference: Reference,
    /// The platform (tags come from the reference).
    pub selection: Selection,
    /// Print the resolved image as JSON instead of the layer list.
    pub json: bool,
    /// Keep blobs in this layout instead of streaming.
    pub store: Option<PathBuf>,
    /// Downloads at once into a store.
    pub jobs: usize,
}

/// Streams `request`'s image: prints the list of pipes with `print`,
/// then serves them until no reader can ask for a layer any more
/// ([`lifetime`]). With `json`, only describes the image.
pub fn stream(
    registry: &Registry,
    request: &Request,
    print: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let top = fetch_top(registry, &request.reference)?;
    if request.json {
        let image = resolve(registry, &top, &LayerPlace::Nowhere, &request.selection)?;
        return print(&listing::json(&image, false)?);
    }
    let output = readers::OutputPipe::of_stdout()?;
    let pipes = pipe_dir::PipeDir::create()?;
    let session = session::Session::create(pipes.fd().as_fd())
        .with_context(|| format!("{}: cannot create the session pipe", pipes.path().display()))?;
    let place = LayerPlace::Pipes(pipes.path().to_path_buf());
    let image = resolve(registry, &top, &place, &request.selection)?;
    let server = stream::Server::start(registry, &image, &pipes)?;
    print(&listing::layer_lines(&image)?)?;
    // The end-of-list line lets oci-merge start even if a wrapper
    // (`timeout`, `time`) holds this stdout open after it is closed.
    let mut end_list = || {
        let mut end = crate::blob::layer_ref::END_OF_LIST.to_vec();
        end.push(b'\n');
        print(&end)?;
        close_stdout()
    };
    lifetime::serve(output, session, server, &mut end_list)
}

/// Fetches `request`'s image into its store, records the reference there,
/// and prints the list (or JSON) naming the stored blobs. A stored blob
/// found damaged is reported through `warn` and fetched again.
pub fn store(
    registry: &Registry,
    request: &Request,
    dir: &std::path::Path,
    print: &mut dyn FnMut(&[u8]) -> Result<()>,
    warn: store::Warn,
) -> Result<()> {
    let store = LayoutStore::open(dir, warn)?;
    let top = fetch_top(registry, &request.reference)?;
    let place = LayerPlace::Store(store.clone());
    let image = resolve(registry, &top, &place, &request.selection)?;
    download_layers(registry, &store, &image, request.jobs)?;
    store.put_bytes(&top.digest, &top.bytes)?;
    let name = request.reference.to_string();
    store.record(&name, store_entry(&top, &name))?;
    print(&if request.json {
        listing::json(&image, true)?
    } else {
        listing::layer_lines(&image)?
    })
}

/// The manifest or index the reference names: by digest if it has one
/// (verified by the client), else by tag.
fn fetch_top(registry: &Registry, reference: &Reference) -> Result<Fetched> {
    let wanted = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_owned(),
    };
    let mut top = registry.manifest(&wanted)?;
    if top.media_type.is_empty() {
        top.media_type = declared_media_type(&top.bytes);
    }
    if !spec::is_manifest(&top.media_type) && !spec::is_index(&top.media_type) {
        bail!(
            "{reference}: not a container image (media type {:?})",
            top.media_type
        );
    }
    Ok(top)
}

/// A manifest's media type from its own `mediaType` field, for a registry
/// that sent no Content-Type; an index has `manifests`.
fn declared_media_type(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match value.get("mediaType").and_then(|v| v.as_str()) {
        Some(media_type) => media_type.to_owned(),
        None if value.get("manifests").is_some() => spec::OCI_INDEX.to_owned(),
        None => spec::OCI_MANIFEST.to_owned(),
    }
}

fn resolve(
    registry: &Registry,
    top: &Fetched,
    place: &LayerPlace,
    selection: &Selection,
) -> Result<ResolvedImage> {
    let source = RegistrySource {
        registry,
        top,
        place,
    };
    let descriptor = Descriptor {
        media_type: Some(top.media_type.clone()),
        digest: top.digest.to_string(),
        size: top.bytes.len() as u64,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
        platform: None,
        artifact_type: None,
    };
    manifest::resolve_entries(&source, &[&descriptor], selection)
}

/// The `index.json` entry naming the fetched image.
fn store_entry(top: &Fetched, name: &str) -> serde_json::Value {
    json!({
        "mediaType": top.media_type,
        "digest": top.digest.to_string(),
        "size": top.bytes.len(),
        "annotations": {
            spec::REF_NAME: name,
            spec::CONTAINERD_NAME: name,
        },
    })
}

/// Downloads the layers the store lacks, `jobs` at a time; those it has
/// are verified on the same threads (and fetched again if bad).
fn download_layers(
    registry: &Registry,
    store: &LayoutStore,
    image: &ResolvedImage,
    jobs: usize,
) -> Result<()> {
    let mut wanted: Vec<_> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    wanted.sort_by_key(|(digest, _)| digest.to_string());
    wanted.dedup();
    let queue = std::sync::Mutex::new(wanted.into_iter());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((digest, size)) = next else {
                            return Ok(());
                        };
                        if store.has(&digest, size)? {
                            continue;
                        }
                        store
                            .download(&digest, size, &mut from_registry(registry, &digest, size))
                            .with_context(|| format!("{}@{digest}", registry.name()))?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| bail!("a download thread panicked"))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

/// The blob `digest` of `registry` as the store's [`store::Origin`]: from
/// any offset, with `Range`.
fn from_registry<'a>(
    registry: &'a Registry,
    digest: &'a crate::blob::digest::Digest,
    size: u64,
) -> impl FnMut(u64, &Hasher) -> Result<(Box<dyn std::io::Read + 'a>, u64)> + 'a {
    move |offset, prefix| {
        let prefix = prefix.clone();
        let blob = registry.blob_reader_from(digest, size, Resume { offset, prefix })?;
        let start = blob.start();
        Ok((Box::new(blob), start))
    }
}

/// Closes stdout (pointing it at /dev/null), so the reader sees the end
/// of the list while this process stays to serve the pipes.
fn close_stdout() -> Result<()> {
    let null = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .context("cannot open /dev/null")?;
    rustix::stdio::dup2_stdout(&null).context("cannot close stdout")?;
    Ok(())
}
