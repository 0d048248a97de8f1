//! `ocirender::merge::merge` on one fuzzed layer.
//!
//! Input: a flags byte (see `ocirender_fuzz::merge::Flags`: plain, gzip or
//! zstd storage, right or wrong declared digest, byte range of a larger
//! file, read-ahead), then the layer's tar bytes.
//!
//! Properties: no panic. On success: the output is a complete tar (read as
//! GNU tar does, every header and all data there, two zero blocks where a
//! header is due) with well-formed PAX records;
//! every path is canonical and appears once; hard links name an earlier
//! non-directory entry; no sparse member, whiteout or extension type is
//! left; the stats match the output; a wrong declared digest never
//! succeeds. On failure: the output has no end-of-archive marker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::merge::{run, Flags};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, layer)) = data.split_first() else {
        return;
    };
    run(Flags(flags), &[layer]);
});
