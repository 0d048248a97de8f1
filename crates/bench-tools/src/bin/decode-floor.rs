//! `decode-floor [--verify] [--sequential]`: decompress every layer of a
//! layer list (stdin, as `oci-layers` prints it) to nowhere, with the
//! decoders `oci-merge` uses, all layers in parallel. Nothing a merge does
//! can be faster than this, so `scripts/bench` reports the pipeline's times
//! as ratios to it. Without `--verify` the digests are not computed (pure
//! decompression); with `--sequential` the layers are decoded one after
//! another, as a merge that streams newest-first with bounded memory must.

use anyhow::{Context, Result};
use ocirender::layer::parse_list;
use ocirender::layer::DecodedLayer;
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    ocirender_cli::run("decode-floor", run)
}

fn run() -> Result<()> {
    let verify = std::env::args().any(|a| a == "--verify");
    let sequential = std::env::args().any(|a| a == "--sequential");
    let mut list = Vec::new();
    std::io::stdin()
        .read_to_end(&mut list)
        .context("cannot read the layer list")?;
    let mut layers = parse_list(&list)?;
    if !verify {
        for layer in &mut layers {
            layer.digest = None;
        }
    }
    if sequential {
        return Ok(layers
            .iter()
            .try_for_each(|layer| DecodedLayer::spawn(layer).finish().map(drop))?);
    }
    Ok(std::thread::scope(|scope| {
        let drains: Vec<_> = layers
            .iter()
            .map(|layer| scope.spawn(move || DecodedLayer::spawn(layer).finish()))
            .collect();
        drains
            .into_iter()
            .try_for_each(|d| d.join().expect("drain thread").map(drop))
    })?)
}
