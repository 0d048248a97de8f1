//! What a source prints: the layer list `oci-merge` reads, or the resolved
//! image as JSON for scripts. `oci-layers` and `oci-fetch` print the same
//! thing for the same image, so both render it here.

use super::ResolvedImage;
use anyhow::Result;
use serde_json::json;

/// One layer reference a line, base first.
pub fn layer_lines(image: &ResolvedImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for layer in &image.layers {
        out.extend(layer.layer.to_line()?);
        out.push(b'\n');
    }
    Ok(out)
}

/// The resolved image for scripts. A layer's location is `path` (the file
/// to read) and `offset` (where its `size` bytes start inside that file, for
/// a layer inside an archive; null for a whole file): with `digest`, all a
/// layer list line says. Without `locations` (a registry image that is not
/// stored anywhere), `path` and `offset` are null.
pub fn json(image: &ResolvedImage, locations: bool) -> Result<Vec<u8>> {
    let layers: Vec<_> = image
        .layers
        .iter()
        .map(|l| {
            let path = locations.then(|| l.layer.path.to_string_lossy());
            let offset = l
                .layer
                .range
                .filter(|_| locations)
                .map(|(offset, _)| offset);
            json!({
                "digest": l.digest.to_string(),
                "mediaType": l.media_type,
                "size": l.size,
                "diffId": l.diff_id.as_ref().map(ToString::to_string),
                "path": path,
                "offset": offset,
            })
        })
        .collect();
    let value = json!({
        "manifest": image.manifest.as_ref().map(ToString::to_string),
        "config": image.config.to_string(),
        "platform": image.platform.as_ref().map(ToString::to_string),
        "layers": layers,
    });
    let mut out = serde_json::to_vec_pretty(&value)?;
    out.push(b'\n');
    Ok(out)
}
