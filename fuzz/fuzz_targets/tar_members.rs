//! Structure-aware: one or two layers described member by member (see
//! `ocirender_fuzz::members`: long and deep names, large PAX records, GNU
//! and PAX sparse maps, links, whiteouts, opaque markers, duplicates),
//! rendered to tars, merged, and each streamed through the check
//! `tar2sqfs` and `tar2erofs` put in front of their builders.
//!
//! Input: decoded with `arbitrary`: a flags byte (bit 4: the layers
//! declare their digests; bit 7: one layer decoded at a time, no shared
//! read-ahead), the base layer, and optionally an upper layer.
//!
//! Properties: no panic, and what the budgets of `fuzz/run` catch: a
//! reader that takes gigabytes or many seconds over a layer whose size it
//! could have refused. The merge's output is checked as in `merge_one`;
//! the stream check's as in `tar2sqfs_stream` (on success a complete tar,
//! on failure none), when small enough to keep.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocirender::blob::digest::Digest;
use ocirender::blob::layer_ref::LayerRef;
use ocirender::sink::stream_check::forward_for_mksquashfs;
use ocirender_fuzz::members::{LayerSpec, Renderer};
use ocirender_fuzz::merge::{merge_and_check, Flags};
use ocirender_fuzz::{check_forwarded, Kept, Scratch};
use sha2::Digest as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Arbitrary, Debug)]
struct Input {
    flags: u8,
    base: LayerSpec,
    upper: Option<LayerSpec>,
}

thread_local! {
    // On disk: a rendered layer may be a gigabyte, too much for tmpfs.
    static SCRATCH: Scratch = Scratch::on_disk("members");
}

fuzz_target!(|input: Input| {
    SCRATCH.with(|scratch| run(scratch.path(), &input));
});

fn run(dir: &Path, input: &Input) {
    let mut renderer = Renderer::default();
    let specs = std::iter::once(&input.base).chain(&input.upper);
    let mut refs = Vec::new();
    for (i, spec) in specs.enumerate() {
        let path = dir.join(format!("layer{i}.tar"));
        let digest = write_layer(&mut renderer, spec, &path);
        refs.push(LayerRef {
            digest: (input.flags & 0x10 != 0).then_some(digest),
            ..LayerRef::file(path)
        });
    }
    for layer in &refs {
        check_stream(&layer.path);
    }
    merge_and_check(Flags(input.flags & 0x80), &refs);
}

/// Renders `spec` into `path` (uncompressed: compressing a gigabyte with
/// an instrumented deflate takes longer than the budget allows); returns
/// the file's digest.
fn write_layer(renderer: &mut Renderer, spec: &LayerSpec, path: &PathBuf) -> Digest {
    let file = io::BufWriter::new(std::fs::File::create(path).expect("create layer"));
    let mut hashed = Hashed {
        inner: file,
        hasher: sha2::Sha256::new(),
    };
    renderer.render(spec, &mut hashed).expect("write layer");
    hashed.inner.flush().expect("write layer");
    let hex: String = hashed
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}").parse().expect("a digest")
}

/// The stream check on the layer at `path`: on success, a complete tar;
/// on failure, none.
fn check_stream(path: &Path) {
    let file = std::fs::File::open(path).expect("open layer");
    let mut input = io::BufReader::new(file);
    let mut output = Kept::default();
    let result = forward_for_mksquashfs(&mut input, &mut output, 0);
    if let Some(out) = output.kept() {
        check_forwarded(&result, out);
    }
}

/// A writer that hashes what passes through it.
struct Hashed<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
