//! What a source prints: the layer list `oci-merge` reads, or the resolved
//! image as JSON for scripts, and what a source holds ([`super::inventory`])
//! as a table for people or JSON for scripts. `oci-layers` and `oci-fetch`
//! print the same thing for the same image, so both render it here.

use super::inventory::{ListedImage, ListedManifest};
use super::ResolvedImage;
use crate::blob::digest::Digest;
use crate::error::Result;
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

/// The images of a source for people: a header, then a line per image
/// manifest, columns aligned. An image that is an index has a line of its
/// own (platform `index`) and its manifests' lines under it. Names are
/// shown as docker shows them (`alpine:3`, not `docker.io/library/...`),
/// one a line down the NAME column; an unnamed image is named by `@N`,
/// which selects it. Digests are shortened to 12 hex digits, as `docker
/// images` shows them (`--json` has them whole).
pub fn inventory_table(images: &[ListedImage]) -> Vec<u8> {
    let mut rows = vec![["NAME", "DIGEST", "PLATFORM", "LAYERS", "SIZE"].map(str::to_owned)];
    for image in images {
        let first = rows.len();
        if image.is_index() {
            let digest = short(image.digest.as_ref());
            rows.push([
                String::new(),
                digest,
                "index".into(),
                String::new(),
                String::new(),
            ]);
        }
        for manifest in &image.manifests {
            rows.push(manifest_row(manifest));
        }
        // Names come from the image: nothing in them may break a line.
        let names: Vec<String> = match image.names.as_slice() {
            [] => vec![format!("@{}", image.position)],
            names => names
                .iter()
                .map(|n| crate::text::one_line(super::tags::familiar(n)))
                .collect(),
        };
        for (at, name) in names.into_iter().enumerate() {
            match rows.get_mut(first + at) {
                Some(row) => row[0] = name,
                None => rows.push([
                    name,
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
        }
    }
    aligned(&rows)
}

/// A manifest's line, its NAME left for the caller.
fn manifest_row(manifest: &ListedManifest) -> [String; 5] {
    let (layers, size) = match &manifest.contents {
        Some(c) => (c.layers.to_string(), crate::text::human_size(c.size)),
        None => ("?".into(), "?".into()),
    };
    let platform = manifest
        .platform
        .as_ref()
        .map_or("-".into(), |p| crate::text::one_line(&p.to_string()));
    let digest = short(manifest.digest.as_ref());
    [String::new(), digest, platform, layers, size]
}

/// The images of a source for scripts: an array of objects (see
/// `oci-layers --help`).
pub fn inventory_json(images: &[ListedImage]) -> Result<Vec<u8>> {
    let digest = |d: Option<&Digest>| d.map(ToString::to_string);
    let value: Vec<_> = images
        .iter()
        .map(|image| {
            let manifests: Vec<_> = image
                .manifests
                .iter()
                .map(|m| {
                    let contents = m.contents.as_ref();
                    json!({
                        "digest": digest(m.digest.as_ref()),
                        "platform": m.platform.as_ref().map(ToString::to_string),
                        "config": digest(contents.map(|c| &c.config)),
                        "layerCount": contents.map(|c| c.layers),
                        "size": contents.map(|c| c.size),
                    })
                })
                .collect();
            json!({
                "index": image.position,
                "names": image.names,
                "digest": digest(image.digest.as_ref()),
                "mediaType": image.media_type,
                "manifests": manifests,
            })
        })
        .collect();
    let mut out = serde_json::to_vec_pretty(&value)?;
    out.push(b'\n');
    Ok(out)
}

/// A repository's tags for scripts, as `skopeo list-tags` prints them
/// (`{"Repository": ..., "Tags": [...]}`, indented by four spaces), so
/// either tool's output can be read the same way.
pub fn tags_json(repository: &str, tags: &[String]) -> Result<Vec<u8>> {
    use serde::Serialize;
    let value = json!({ "Repository": repository, "Tags": tags });
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    out.push(b'\n');
    Ok(out)
}

/// A repository's tags for people: one a line.
pub fn tag_lines(tags: &[String]) -> Vec<u8> {
    tags.iter()
        .flat_map(|tag| format!("{tag}\n").into_bytes())
        .collect()
}

/// The first 12 hex digits of a digest, `-` for none.
fn short(digest: Option<&Digest>) -> String {
    digest.map_or_else(|| "-".to_owned(), |d| d.hex().chars().take(12).collect())
}

/// Rows as lines, each column as wide as its widest cell, two spaces
/// apart; the last two (counts and sizes) aligned right.
fn aligned(rows: &[[String; 5]]) -> Vec<u8> {
    let width = |column: usize| {
        rows.iter()
            .map(|r| r[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let mut out = String::new();
    for row in rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.into_bytes()
}
