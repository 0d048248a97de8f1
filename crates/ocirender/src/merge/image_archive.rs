//! A whole image given as a layer: `oci-merge img.tar` with a `docker
//! save` or OCI archive, where `oci-layers img.tar | oci-merge` was meant.
//! Its members are a valid tar, so the merge would write a root
//! filesystem of `manifest.json`, `blobs/` and layer tarballs and succeed;
//! the top-level names give it away.

use crate::tar::path;

/// The top-level names of a layer that only image archives have.
#[derive(Debug, Default)]
pub(super) struct ImageArchiveSigns {
    manifest_json: bool,
    blobs: bool,
    legacy_layer_tar: bool,
    index_json: bool,
    oci_layout: bool,
}

impl ImageArchiveSigns {
    /// Notes the entry at `raw` (as the tar stores it).
    pub(super) fn note(&mut self, raw: &[u8]) {
        let Ok(normalized) = path::normalize(raw) else {
            return;
        };
        let mut components = normalized.split(|&b| b == b'/');
        let first = components.next().unwrap_or_default();
        let second = components.next();
        match (first, second) {
            (b"manifest.json", None) => self.manifest_json = true,
            (b"index.json", None) => self.index_json = true,
            (b"oci-layout", None) => self.oci_layout = true,
            (b"blobs", _) => self.blobs = true,
            (_, Some(b"layer.tar")) => self.legacy_layer_tar = true,
            _ => {}
        }
    }

    /// True when the names seen are an image archive's: a docker save
    /// (manifest.json with blobs, or legacy `<id>/layer.tar`), or an OCI
    /// layout (oci-layout with index.json).
    pub(super) fn is_image(&self) -> bool {
        (self.manifest_json && (self.blobs || self.legacy_layer_tar))
            || (self.oci_layout && self.index_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_archives_are_told_from_layers() {
        let cases: [(&[&str], bool); 6] = [
            (
                &["abc/layer.tar", "abc/json", "manifest.json", "repositories"],
                true,
            ),
            (
                &[
                    "blobs/",
                    "blobs/sha256/aa",
                    "index.json",
                    "manifest.json",
                    "oci-layout",
                ],
                true,
            ),
            (&["./blobs/sha256/aa", "./index.json", "./oci-layout"], true),
            (&["etc/manifest.json", "etc/blobs/x", "usr/"], false),
            (&["manifest.json", "srv/app/"], false),
            (&["index.json", "blobs/x"], false),
        ];
        for (names, expected) in cases {
            let mut signs = ImageArchiveSigns::default();
            for name in names {
                signs.note(name.as_bytes());
            }
            assert_eq!(signs.is_image(), expected, "{names:?}");
        }
    }
}
