//! A registry repository as a [`BlobSource`], so registry images are
//! selected by exactly the policy local images are.

use super::store::LayoutStore;
use crate::blob::digest::Digest;
use crate::blob::layer_ref::LayerRef;
use crate::error::Result;
use crate::source::image::source::BlobSource;
use crate::source::registry::{Endpoints, Fetched};
use crate::source::spec::{self, Descriptor};
use std::path::PathBuf;

/// Where the layers of a registry image will be read from.
pub enum LayerPlace {
    /// Named pipes in this directory, one per position of the list.
    Pipes(PathBuf),
    /// Blob files of a layout store.
    Store(LayoutStore),
    /// Nowhere: the image is only described (`--json` while streaming).
    Nowhere,
}

/// One repository of a registry, with the manifest or index its reference
/// named already fetched.
pub struct RegistrySource<'a> {
    /// The repository.
    pub registry: &'a Endpoints,
    /// The manifest or index the reference named.
    pub top: &'a Fetched,
    /// Where layers are read.
    pub place: &'a LayerPlace,
}

impl RegistrySource<'_> {
    fn fetch_remote(&self, descriptor: &Descriptor, digest: &Digest) -> Result<Vec<u8>> {
        if *digest == self.top.digest {
            return Ok(self.top.bytes.clone());
        }
        let media_type = descriptor.media_type.as_deref().unwrap_or_default();
        if spec::is_manifest(media_type) || spec::is_index(media_type) {
            Ok(self.registry.manifest(&digest.to_string())?.bytes)
        } else {
            self.registry.blob(digest, descriptor.size)
        }
    }
}

impl BlobSource for RegistrySource<'_> {
    fn name(&self) -> String {
        self.registry.name()
    }

    fn describe(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.registry.name())
    }

    fn fetch(&self, descriptor: &Descriptor, digest: &Digest) -> Result<Vec<u8>> {
        let LayerPlace::Store(store) = self.place else {
            return self.fetch_remote(descriptor, digest);
        };
        // What the store has, by digest, needs no network.
        if let Some(bytes) = store.read(digest, descriptor.size)? {
            return Ok(bytes);
        }
        let bytes = self.fetch_remote(descriptor, digest)?;
        store.put_bytes(digest, &bytes)?;
        Ok(bytes)
    }

    fn layer(&self, position: usize, descriptor: &Descriptor, digest: &Digest) -> Result<LayerRef> {
        let path = match self.place {
            LayerPlace::Pipes(dir) => super::stream::pipe_path(dir, position),
            LayerPlace::Store(store) => store.blob_path(digest),
            LayerPlace::Nowhere => PathBuf::new(),
        };
        let served_from = match self.place {
            LayerPlace::Pipes(dir) => Some(dir),
            _ => None,
        };
        Ok(LayerRef {
            path,
            range: None,
            size: served_from.map(|_| descriptor.size),
            digest: Some(digest.clone()),
            server: served_from.map(|dir| crate::blob::served::path_in(dir)),
        })
    }
}
