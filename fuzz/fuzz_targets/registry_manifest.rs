//! The manifests and indexes a registry sends, through the selection
//! `oci-fetch` applies to them (`ocirender::source::image::manifest::
//! resolve_entries` over a registry-like source: blobs fetched by digest,
//! layers streamed through pipes of a declared size).
//!
//! Input: a flags byte, then pieces separated by `SEPARATOR`:
//!
//! 0. the document the reference names (an index or a manifest);
//! 1. an image manifest; 2. an image config; 3. a nested index.
//!
//! Each piece is served under its real SHA-256; placeholders in the pieces
//! (`$CD`/`$CH`/`$CS` config, `$MD`/`$MH`/`$MS` manifest, `$XD`/`$XH`/`$XS`
//! nested index, `$0D`/`$0H`/`$0S` and `$1D`/`$1H`/`$1S` two layers, `$1U`
//! a diff_id; see `ocirender_fuzz::placeholders`) are replaced first, so
//! `image_resolve`'s seeds serve here too. Flags: bits 0-1 the
//! media type the registry sends for piece 0 (OCI index, OCI manifest,
//! Docker manifest, Docker manifest list); bit 2 ask explicitly for
//! `linux/amd64` (else the host, implicitly).
//!
//! Properties: no panic; on success the manifest and config are documents
//! the registry served, and every layer is streamed with the digest and
//! size its descriptor declares.
#![no_main]

use ocirender::{Error, Result};
use libfuzzer_sys::fuzz_target;
use ocirender::blob::digest::Digest;
use ocirender::blob::layer_ref::LayerRef;
use ocirender::source::image::manifest::resolve_entries;
use ocirender::source::image::platform::PlatformRequest;
use ocirender::source::image::source::BlobSource;
use ocirender::source::spec::{self, Descriptor};
use ocirender::source::image::Selection;
use ocirender_fuzz::placeholders::{substitute, Blob};
use ocirender_fuzz::split;
use std::collections::HashMap;
use std::path::PathBuf;

const MEDIA_TYPES: [&str; 4] = [
    spec::OCI_INDEX,
    spec::OCI_MANIFEST,
    spec::DOCKER_MANIFEST,
    spec::DOCKER_MANIFEST_LIST,
];

/// A registry's repository, in memory.
struct Served {
    blobs: HashMap<String, Vec<u8>>,
}

impl BlobSource for Served {
    fn name(&self) -> String {
        "registry.test/fuzz".to_owned()
    }

    fn describe(&self, digest: &Digest) -> String {
        format!("registry.test/fuzz@{digest}")
    }

    fn fetch(&self, _: &Descriptor, digest: &Digest) -> Result<Vec<u8>> {
        self.blobs
            .get(&digest.to_string())
            .cloned()
            .ok_or_else(|| Error::msg(format!("{}: not found", self.describe(digest))))
    }

    fn layer(&self, position: usize, descriptor: &Descriptor, digest: &Digest) -> Result<LayerRef> {
        Ok(LayerRef {
            size: Some(descriptor.size),
            digest: Some(digest.clone()),
            ..LayerRef::file(PathBuf::from(format!("/pipes/layer-{position:03}")))
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let pieces = split(rest);
    let piece = |i: usize| pieces.get(i).copied();
    let mut values = Blob::new(b"a layer".to_vec()).values("0");
    let gzipped = Blob::new(b"another layer".to_vec());
    values.extend(gzipped.values("1"));
    values.push(("$1U".to_owned(), format!("sha256:{}", gzipped.hex)));
    let mut blobs = HashMap::new();
    for (i, prefix) in [(2, "C"), (1, "M"), (3, "X")] {
        if let Some(bytes) = piece(i) {
            let blob = Blob::new(substitute(bytes, &values));
            values.extend(blob.values(prefix));
            blobs.insert(format!("sha256:{}", blob.hex), blob.bytes);
        }
    }
    let top = Blob::new(substitute(piece(0).unwrap_or_default(), &values));
    let descriptor = Descriptor {
        media_type: Some(MEDIA_TYPES[usize::from(flags & 3)].to_owned()),
        digest: format!("sha256:{}", top.hex),
        size: top.bytes.len() as u64,
        urls: Vec::new(),
        annotations: Default::default(),
        platform: None,
        artifact_type: None,
    };
    blobs.insert(descriptor.digest.clone(), top.bytes);
    let served = Served { blobs };
    let selection = Selection {
        platform: PlatformRequest::new((flags & 4 != 0).then_some("linux/amd64")).unwrap(),
        tag: None,
    };
    let result = resolve_entries(&served, &[&descriptor], &selection);
    ocirender_fuzz::show_resolved(&result);
    let Ok(image) = result else {
        return;
    };
    let served_digest = |d: &Digest| served.blobs.contains_key(&d.to_string());
    if let Some(manifest) = &image.manifest {
        assert!(
            served_digest(manifest),
            "manifest {manifest} was not served"
        );
    }
    assert!(served_digest(&image.config), "config was not served");
    for layer in &image.layers {
        let r = &layer.layer;
        assert_eq!(r.digest.as_ref(), Some(&layer.digest), "digest");
        assert_eq!(r.size, Some(layer.size), "size");
    }
});
