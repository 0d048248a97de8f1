//! `ocirender::merge::merge` on two fuzzed layers, so whiteouts, opaque
//! directories, hard links and replacements act across layers.
//!
//! Input: a flags byte (see `ocirender_fuzz::merge::Flags`), then the base
//! layer's tar, `ocirender_fuzz::SEPARATOR`, and the upper layer's tar
//! (without a separator the rest is cut in the middle).
//!
//! Properties: those of `merge_one`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::merge::{run, Flags};
use ocirender_fuzz::{find, SEPARATOR};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (base, upper) = match find(rest, SEPARATOR) {
        Some(i) => (&rest[..i], &rest[i + SEPARATOR.len()..]),
        None => rest.split_at(rest.len() / 2),
    };
    run(Flags(flags), &[base, upper]);
});
