//! Where an image's blobs come from.
//!
//! One selection policy serves every source: the walk in
//! [`super::manifest`] (nested indexes, platforms, attestations, digest
//! and size checks) asks a [`BlobSource`] for bytes and layer locations,
//! and knows nothing of directories, archives or registries.

use super::store::Store;
use crate::blob::digest::Digest;
use crate::blob::layer_ref::LayerRef;
use crate::error::{bail, Context, Result};
use crate::source::spec::{read_at_most, Descriptor};

/// A place holding an image's blobs: a layout on disk, or a registry.
pub trait BlobSource {
    /// The image's name for messages: a path, or a registry repository.
    fn name(&self) -> String;

    /// Names one blob for messages.
    fn describe(&self, digest: &Digest) -> String;

    /// The bytes of a small blob (an index, manifest or config), which the
    /// caller checks against the descriptor's size and digest.
    fn fetch(&self, descriptor: &Descriptor, digest: &Digest) -> Result<Vec<u8>>;

    /// Where `oci-merge` will read the layer at `position` (0 = base) of
    /// the chosen manifest, checked as far as the source can.
    fn layer(&self, position: usize, descriptor: &Descriptor, digest: &Digest) -> Result<LayerRef>;
}

impl BlobSource for Store {
    fn name(&self) -> String {
        self.root().display().to_string()
    }

    fn describe(&self, digest: &Digest) -> String {
        Store::describe(self, &digest.layout_path())
    }

    fn fetch(&self, descriptor: &Descriptor, digest: &Digest) -> Result<Vec<u8>> {
        let rel = digest.layout_path();
        if !self.check(&rel)? {
            bail!("{}: blob is missing", Store::describe(self, &rel));
        }
        // No more than the descriptor promises (and the caller checked
        // against the limit), however large the file.
        read_at_most(self.open_file(&rel)?, descriptor.size)
            .with_context(|| Store::describe(self, &rel))
    }

    fn layer(&self, _: usize, descriptor: &Descriptor, digest: &Digest) -> Result<LayerRef> {
        let rel = digest.layout_path();
        if !self.check(&rel)? {
            let media_type = descriptor.media_type.as_deref().unwrap_or_default();
            let hint = if super::spec::is_foreign(media_type) || !descriptor.urls.is_empty() {
                format!(
                    " (a foreign layer, to be fetched from: {})",
                    super::tags::list_or_none(&descriptor.urls)
                )
            } else {
                String::new()
            };
            bail!(
                "{}: layer blob is missing{hint}",
                Store::describe(self, &rel)
            );
        }
        let layer = Store::layer(self, &rel, Some(digest.clone()))?;
        let size = super::stored_size(&layer)?;
        if size != descriptor.size {
            bail!(
                "{}: size mismatch: the descriptor says {} bytes, the blob has {size}",
                Store::describe(self, &rel),
                descriptor.size
            );
        }
        Ok(layer)
    }
}
