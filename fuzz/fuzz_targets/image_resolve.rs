//! `ocirender::source::image::resolve` on fuzzed image metadata.
//!
//! Input: a flags byte, then pieces separated by `ocirender_fuzz::SEPARATOR`:
//!
//! 0. the top document: `index.json` (OCI forms) or `manifest.json`
//!    (docker-save forms);
//! 1. an image manifest, stored as a blob;
//! 2. an image config, stored as a blob (and as `<hex>.json`);
//! 3. a nested index, stored as a blob;
//! 4. the `oci-layout` file (only with flag bit 4; otherwise a valid one);
//! 5. symlink members for archive forms, one `NAME<TAB>TARGET` a line;
//! 6. a `manifest.json` beside an OCI form's `index.json` (Docker 25+).
//!
//! Blobs are stored under their real SHA-256, so digests verify. The
//! fuzzer cannot guess digests, so placeholders in the pieces are replaced
//! with real values before writing: `$CD`, `$CH`, `$CS` (config digest
//! `sha256:<hex>`, bare hex, size), `$MD`/`$MH`/`$MS` (manifest), `$XD`/
//! `$XH`/`$XS` (nested index), and `$0D`/`$0H`/`$0S`, `$1D`/`$1H`/`$1S`
//! for two fixed layer blobs (a plain and a gzipped tar; `$1U` is the
//! gzipped one's diff_id). Each piece sees the values of those stored
//! before it: layers, config, manifest, nested index, top document.
//!
//! Flags: bits 0-1 the form (0 OCI layout directory, 1 docker-save
//! directory, 2 and 3 the same as tar archives); bit 2 ask for tag
//! `sample`; bit 3 ask explicitly for `linux/amd64` (else the host,
//! implicitly); bit 4 use piece 4 as `oci-layout`; bit 5 prefix archive
//! members with `./`.
//!
//! Layer files also exist outside the image (`../outside/layer.tar`) to
//! tempt path escapes.
//!
//! Properties: no panic. On success: every layer lies inside the image (a
//! directory's layers are regular files under it, symlinks resolved; an
//! archive's are byte ranges within the archive file); each layer's
//! reference carries the layer's digest and its size; the manifest and
//! config digests are those of files the image holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::source::image::platform::PlatformRequest;
use ocirender::source::image::{resolve, Selection};
use ocirender_fuzz::placeholders::{substitute, Blob};
use ocirender_fuzz::{empty_dir, sha256_hex, split, Scratch, Storage};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

struct Layers {
    plain: Blob,
    gzip: Blob,
    gzip_diff_id: String,
}

fn layers() -> &'static Layers {
    static LAYERS: OnceLock<Layers> = OnceLock::new();
    LAYERS.get_or_init(|| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(6);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello", &b"hello\n"[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let gzip = Storage::Gzip.store(&tar);
        Layers {
            gzip_diff_id: format!("sha256:{}", sha256_hex(&tar)),
            plain: Blob::new(tar),
            gzip: Blob::new(gzip),
        }
    })
}

thread_local! {
    static SCRATCH: Scratch = Scratch::new("image");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    SCRATCH.with(|scratch| run(scratch.path(), flags, rest));
});

fn run(scratch: &Path, flags: u8, rest: &[u8]) {
    let pieces = split(rest);
    let piece = |i: usize| pieces.get(i).copied();
    let docker = flags & 1 != 0;
    let archive = flags & 2 != 0;

    let img = scratch.join("img");
    let outside = scratch.join("outside");
    let _ = std::fs::create_dir(&img);
    empty_dir(&img);
    let layers = layers();

    // Values each later piece may use.
    let mut values = layers.plain.values("0");
    values.extend(layers.gzip.values("1"));
    values.push(("$1U".into(), layers.gzip_diff_id.clone()));
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let blob = |files: &mut Vec<(String, Vec<u8>)>, bytes: Vec<u8>| -> Blob {
        let blob = Blob::new(bytes);
        files.push((format!("blobs/sha256/{}", blob.hex), blob.bytes.clone()));
        blob
    };
    blob(&mut files, layers.plain.bytes.clone());
    blob(&mut files, layers.gzip.bytes.clone());
    files.push(("l0/layer.tar".into(), layers.plain.bytes.clone()));
    if let Some(config) = piece(2) {
        let config = blob(&mut files, substitute(config, &values));
        files.push((format!("{}.json", config.hex), config.bytes.clone()));
        values.extend(config.values("C"));
    }
    if let Some(manifest) = piece(1) {
        let manifest = blob(&mut files, substitute(manifest, &values));
        values.extend(manifest.values("M"));
    }
    if let Some(index) = piece(3) {
        let index = blob(&mut files, substitute(index, &values));
        values.extend(index.values("X"));
    }
    let top = substitute(piece(0).unwrap_or_default(), &values);
    if docker {
        files.push(("manifest.json".into(), top));
    } else {
        files.push(("index.json".into(), top));
        if let Some(extra) = piece(6) {
            files.push(("manifest.json".into(), substitute(extra, &values)));
        }
    }
    let layout = match piece(4) {
        Some(custom) if flags & 0x10 != 0 => custom.to_vec(),
        _ => OCI_LAYOUT.to_vec(),
    };
    files.push(("oci-layout".into(), layout));

    // Digests of every file the image holds: resolved digests must be
    // among them (what an archive's symlinks name is among them too).
    let held: HashSet<String> = files
        .iter()
        .map(|(_, bytes)| format!("sha256:{}", sha256_hex(bytes)))
        .collect();

    if !outside.exists() {
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("layer.tar"), &layers.plain.bytes).unwrap();
    }

    let target = if archive {
        let path = scratch.join("img.tar");
        write_archive(&path, &files, piece(5), flags & 0x20 != 0);
        path
    } else {
        for (rel, bytes) in &files {
            let path = img.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        img.clone()
    };

    let selection = Selection {
        platform: PlatformRequest::new((flags & 8 != 0).then_some("linux/amd64")).unwrap(),
        tag: (flags & 4 != 0).then(|| "sample".to_owned()),
    };
    let result = resolve(&target, &selection);
    ocirender_fuzz::show_resolved(&result);
    let Ok(image) = result else {
        return;
    };

    if let Some(manifest) = &image.manifest {
        assert!(
            held.contains(&manifest.to_string()),
            "manifest {manifest} is no file of the image"
        );
    }
    assert!(
        held.contains(&image.config.to_string()),
        "config {} is no file of the image",
        image.config
    );
    let archive_len = archive.then(|| std::fs::metadata(&target).unwrap().len());
    let img_real = std::fs::canonicalize(&img).unwrap();
    for layer in &image.layers {
        let r = &layer.layer;
        assert_eq!(
            r.digest.as_ref(),
            Some(&layer.digest),
            "the reference carries the digest"
        );
        match archive_len {
            Some(len) => {
                assert_eq!(
                    r.path, target,
                    "an archive's layer is read from the archive"
                );
                let (offset, size) = r.range.expect("an archive's layer is a byte range");
                assert!(
                    offset.checked_add(size).is_some_and(|end| end <= len),
                    "layer range {offset}+{size} outside the {len}-byte archive"
                );
                assert_eq!(size, layer.size, "size");
            }
            None => {
                assert_eq!(r.range, None, "a directory's layer is a whole file");
                assert!(
                    r.path.starts_with(&img),
                    "layer {} outside {}",
                    r.path.display(),
                    img.display()
                );
                let real = std::fs::canonicalize(&r.path)
                    .unwrap_or_else(|e| panic!("layer {}: {e}", r.path.display()));
                assert!(
                    real.starts_with(&img_real),
                    "layer {} resolves to {}, outside the image",
                    r.path.display(),
                    real.display()
                );
                let meta = std::fs::metadata(&real).unwrap();
                assert!(
                    meta.is_file(),
                    "layer {} is not a regular file",
                    real.display()
                );
                assert_eq!(meta.len(), layer.size, "size");
                if !docker {
                    assert_eq!(
                        r.path,
                        img.join(layer.digest.layout_path()),
                        "OCI layer path"
                    );
                }
            }
        }
    }
}

fn write_archive(path: &PathBuf, files: &[(String, Vec<u8>)], links: Option<&[u8]>, dot: bool) {
    let prefix = if dot { "./" } else { "" };
    let mut builder = tar::Builder::new(Vec::new());
    for (rel, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{prefix}{rel}"), &bytes[..])
            .unwrap();
    }
    for line in links.unwrap_or_default().split(|&b| b == b'\n') {
        let Some(tab) = line.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let (name, target) = (&line[..tab], &line[tab + 1..]);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        // Raw names, as hostile archives have them: no checks by the builder.
        if name.is_empty() || name.len() > 100 || target.len() > 100 {
            continue;
        }
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        header.set_cksum();
        builder.append(&header, &[][..]).unwrap();
    }
    std::fs::write(path, builder.into_inner().unwrap()).unwrap();
}
