//! `oci-fetch`: a registry image as a layer list, streamed or stored.
//!
//! The reference's manifest or index is fetched (from the first of its
//! endpoints that serves it, mirrors first: [`crate::source::registry::Endpoints`]),
//! then the image is selected by the same policy as a local one
//! (`crate::source::image::manifest`), through `source::RegistrySource`. Then
//! either
//! * [`stream`]: the list names named pipes that are fed from the network
//!   while `oci-merge` reads them (nothing on disk), or
//! * [`store`]: the blobs are downloaded into a shared OCI layout and the
//!   list names the files, as `oci-layers` would print for that layout.
//!
//! [`prune`] (`--store DIR --prune`) removes from such a layout what no
//! image recorded in it needs.

mod counted;
pub(crate) mod lifetime;
mod partial;
pub(crate) mod pipe_dir;
pub mod prune;
pub(crate) mod readers;
pub(crate) mod session;
pub(crate) mod source;
pub(crate) mod store;
pub(crate) mod stream;

use crate::blob::digest::{Digest, Hasher};
use crate::error::{bail, Context, Result};
use crate::progress::{ByteCounter, DownloadEvent, DownloadObserver};
use crate::source::image::inventory::{self, ListedImage};
use crate::source::image::{listing, manifest, ResolvedImage, Selection};
use crate::source::reference::Reference;
use crate::source::registry::{Endpoints, Fetched, Resume};
use crate::source::spec::{self, Descriptor};
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
/// (`lifetime`). With `json`, only describes the image.
pub fn stream(
    registry: &Endpoints,
    request: &Request,
    print: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let (top, source) = fetch_top(registry, &request.reference)?;
    if request.json {
        let image = resolve(registry, &top, &LayerPlace::Nowhere, &request.selection)?;
        return print(&json_with_source(&image, false, &source)?);
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
/// found damaged is reported through `warn` and fetched again. The
/// downloads are told to `observer`, which is done with them before
/// anything is printed.
pub fn store(
    registry: &Endpoints,
    request: &Request,
    dir: &std::path::Path,
    print: &mut dyn FnMut(&[u8]) -> Result<()>,
    warn: store::Warn,
    observer: Option<&dyn DownloadObserver>,
) -> Result<()> {
    let store = LayoutStore::open(dir, warn)?;
    let (top, source) = fetch_top(registry, &request.reference)?;
    let place = LayerPlace::Store(store.clone());
    let image = resolve(registry, &top, &place, &request.selection)?;
    download_layers(registry, &store, &image, request.jobs, observer)?;
    store.put_bytes(&top.digest, &top.bytes)?;
    let name = request.reference.to_string();
    store.record(&name, store_entry(&top, &name))?;
    print(&if request.json {
        json_with_source(&image, true, &source)?
    } else {
        listing::layer_lines(&image)?
    })
}

/// The manifest or index the reference names: by digest if it has one
/// (verified by the client), else by tag; and which endpoint (a mirror or
/// the registry) served it.
fn fetch_top(registry: &Endpoints, reference: &Reference) -> Result<(Fetched, String)> {
    let wanted = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_owned(),
    };
    let (mut top, source) = registry.manifest_and_source(&wanted)?;
    if top.media_type.is_empty() {
        top.media_type = declared_media_type(&top.bytes);
    }
    if !spec::is_manifest(&top.media_type) && !spec::is_index(&top.media_type) {
        bail!(
            "{reference}: not a container image (media type {:?})",
            top.media_type
        );
    }
    Ok((top, source))
}

/// The resolved image as JSON ([`listing::json`]) with `endpoint`: the
/// `registry/repository` the manifest came from (a mirror or the registry).
fn json_with_source(image: &ResolvedImage, locations: bool, source: &str) -> Result<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(&listing::json(image, locations)?)?;
    value["endpoint"] = json!(source);
    let mut out = serde_json::to_vec_pretty(&value)?;
    out.push(b'\n');
    Ok(out)
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
    registry: &Endpoints,
    top: &Fetched,
    place: &LayerPlace,
    selection: &Selection,
) -> Result<ResolvedImage> {
    let source = RegistrySource {
        registry,
        top,
        place,
    };
    manifest::resolve_entries(&source, &[&top_descriptor(top)], selection)
}

/// The fetched manifest or index, as an index entry naming it would.
fn top_descriptor(top: &Fetched) -> Descriptor {
    Descriptor {
        media_type: Some(top.media_type.clone()),
        digest: top.digest.to_string(),
        size: top.bytes.len() as u64,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
        platform: None,
        artifact_type: None,
    }
}

/// The most platform manifests of one index `--list` reads (each is two
/// requests, its manifest and config); the others are listed with what
/// the index says of them.
pub const MAX_LISTED_MANIFESTS: usize = 32;

/// The config of the image `reference` names for `selection`, exactly as
/// the registry sent it (verified against its digest).
pub fn config(
    registry: &Endpoints,
    reference: &Reference,
    selection: &Selection,
) -> Result<Vec<u8>> {
    let (top, _) = fetch_top(registry, reference)?;
    Ok(resolve(registry, &top, &LayerPlace::Nowhere, selection)?.config_bytes)
}

/// What `reference` names: its manifest, or each platform's manifest of
/// its index (at most [`MAX_LISTED_MANIFESTS`] read), each checked.
pub fn list(registry: &Endpoints, reference: &Reference) -> Result<ListedImage> {
    let (top, _) = fetch_top(registry, reference)?;
    let source = RegistrySource {
        registry,
        top: &top,
        place: &LayerPlace::Nowhere,
    };
    let names = vec![reference.to_string()];
    let cap = Some(MAX_LISTED_MANIFESTS);
    inventory::list_entry(&source, &top_descriptor(&top), 0, names, cap)
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
    registry: &Endpoints,
    store: &LayoutStore,
    image: &ResolvedImage,
    jobs: usize,
    observer: Option<&dyn DownloadObserver>,
) -> Result<()> {
    let mut wanted: Vec<_> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    wanted.sort_by_key(|(digest, _)| digest.to_string());
    wanted.dedup();
    let blobs = wanted.len();
    let bytes = wanted.iter().map(|(_, size)| size).sum();
    let done = ByteCounter::default();
    if let Some(observer) = observer {
        observer.download(DownloadEvent::Started {
            blobs,
            bytes,
            done: &done,
        });
    }
    let counter = observer.map(|_| &done);
    let queue = std::sync::Mutex::new(wanted.into_iter());
    let fetched = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((digest, size)) = next else {
                            return Ok(());
                        };
                        let count = counted::BlobCount::new(counter);
                        let was_stored = store.has(&digest, size)?;
                        if !was_stored {
                            download_blob(registry, store, &digest, size, &count)?;
                            fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        count.set(size);
                        if let Some(observer) = observer {
                            observer.download(DownloadEvent::BlobDone {
                                digest: &digest,
                                size,
                                fetched: !was_stored,
                            });
                        }
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
    if let Some(observer) = observer {
        observer.download(DownloadEvent::Done {
            blobs,
            fetched: fetched.into_inner(),
            bytes,
        });
    }
    Ok(())
}

/// Downloads one blob into the store, resuming what an earlier run kept,
/// its bytes in place counted by `count`.
fn download_blob(
    registry: &Endpoints,
    store: &LayoutStore,
    digest: &Digest,
    size: u64,
    count: &counted::BlobCount<'_>,
) -> Result<()> {
    registry
        .read_blob_from(digest, size, &mut |open| {
            store.download(digest, size, &mut |offset, prefix: &Hasher| {
                let prefix = prefix.clone();
                let (reader, start) = open(Some(Resume { offset, prefix }))?;
                count.set(start);
                Ok((count.reading(reader), start))
            })
        })
        .with_context(|| format!("{}@{digest}", registry.name()))
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
