//! The image reference parser of `oci-fetch`
//! (`ocirender::source::reference`), on fuzzed text.
//!
//! Properties: no panic; whatever parses prints (`Display`) to a reference
//! that parses back to the same value and prints the same (the printed
//! form is canonical); it names a registry and a repository, and a tag or
//! a digest; `looks_like_reference` holds for every printed reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::source::reference::{looks_like_reference, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = looks_like_reference(text);
    let Ok(reference) = text.parse::<Reference>() else {
        return;
    };
    let printed = reference.to_string();
    let again: Reference = printed.parse().unwrap_or_else(|e| {
        panic!("{text:?} parses, and prints as {printed:?}, which does not: {e:#}")
    });
    assert_eq!(again, reference, "{text:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed, "the printed form is canonical");
    assert!(!reference.registry.is_empty() && !reference.repository.is_empty());
    assert!(!reference.api_host().is_empty());
    assert!(reference.name().ends_with(&reference.repository));
    assert!(!reference.tag_or_digest().is_empty());
    let _ = reference.is_loopback();
    assert!(
        looks_like_reference(&printed),
        "{printed:?} does not look like a reference"
    );
});
