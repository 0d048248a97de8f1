//! The layer-list line format (`ocirender::blob::layer_ref`), which joins
//! `oci-layers` to `oci-merge`.
//!
//! Properties: parsing never panics; whatever parses is printed back by
//! `to_line` (unless its path or server field holds a newline, the one
//! byte a line cannot carry that `parse_line` lets through) and parses again to the same
//! value; `to_line` is canonical (printing a reparsed line gives the same
//! bytes); a list parses to one reference per non-empty line, each as
//! `parse_line` gives it, and round-trips through `to_line` joined by
//! newlines; a `#end` line ends a list; digests print and parse back to
//! themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::blob::digest::Digest;
use ocirender::blob::layer_ref::{parse_list, LayerRef, END_OF_LIST};
use std::os::unix::ffi::OsStrExt;

fuzz_target!(|data: &[u8]| {
    check_line(data);
    check_list(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(digest) = text.parse::<Digest>() {
            let printed = digest.to_string();
            assert_eq!(printed, text, "a digest prints as it was written");
            assert_eq!(printed.parse::<Digest>().unwrap(), digest);
        }
    }
});

fn check_line(line: &[u8]) {
    let Ok(layer) = LayerRef::parse_line(line) else {
        return;
    };
    let path = layer.path.as_os_str().as_bytes();
    assert!(!path.is_empty(), "an empty path parsed: {line:?}");
    assert!(!path.contains(&b'\t'), "a path with a tab parsed: {line:?}");
    if let Some((offset, size)) = layer.range {
        assert!(
            offset.checked_add(size).is_some(),
            "overflowing range parsed"
        );
    }
    let server = layer.server.as_ref().map(|s| s.as_os_str().as_bytes());
    let printed = match layer.to_line() {
        Ok(printed) => printed,
        Err(_) => {
            assert!(
                path.contains(&b'\n') || server.is_some_and(|s| s.contains(&b'\n')),
                "to_line refused {layer:?}, whose path and server have no newline or tab"
            );
            return;
        }
    };
    assert!(!printed.contains(&b'\n'), "a printed line holds a newline");
    let reparsed = LayerRef::parse_line(&printed).unwrap_or_else(|e| {
        panic!("to_line printed {printed:?} for {layer:?}, which does not parse: {e:#}")
    });
    assert_eq!(reparsed, layer, "round trip through {printed:?}");
    let again = reparsed.to_line().expect("printed once, prints again");
    assert_eq!(again, printed, "to_line is not canonical");
}

fn check_list(input: &[u8]) {
    let Ok(list) = parse_list(input) else {
        return;
    };
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .take_while(|l| *l != END_OF_LIST)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        list.len(),
        lines.len(),
        "one reference per non-empty line before #end"
    );
    for (layer, line) in list.iter().zip(&lines) {
        assert_eq!(&LayerRef::parse_line(line).unwrap(), layer);
    }
    let printed: Vec<Vec<u8>> = list
        .iter()
        .map(|l| l.to_line().expect("a listed path has no newline"))
        .collect();
    let joined = printed.join(&b'\n');
    assert_eq!(parse_list(&joined).expect("a printed list parses"), list);
}
