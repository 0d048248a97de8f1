//! `ocirender::sink::stream_check::forward_for_mksquashfs`, the stream check
//! `tar2sqfs` puts in front of `mksquashfs -tar`, on fuzzed bytes.
//!
//! Properties: no panic. On success: the whole input was read; the output
//! is a complete tar (read as GNU tar does, every header and all data
//! there, two zero blocks where a header is due) with well-formed PAX
//! records; user and group names are blank, in headers and PAX records;
//! every parent directory of an entry has a directory entry of its own.
//! On failure: the output has no end-of-archive marker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::sink::stream_check::forward_for_mksquashfs;
use ocirender_fuzz::check_forwarded;
use std::collections::HashSet;
use tar::EntryType;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut output = Vec::new();
    let result = forward_for_mksquashfs(&mut input, &mut output, 0);
    let entries = check_forwarded(&result, &output);
    if let (Ok(stats), Some(entries)) = (result, entries) {
        assert_eq!(
            stats.bytes_in,
            data.len() as u64,
            "the input is read to its end"
        );
        let mut dirs = HashSet::new();
        let mut parents = Vec::new();
        for entry in &entries {
            let shown = String::from_utf8_lossy(&entry.path);
            assert!(entry.uname.is_empty(), "{shown}: user name kept");
            assert!(entry.gname.is_empty(), "{shown}: group name kept");
            assert!(
                !entry.pax_malformed,
                "{shown}: malformed PAX records in the output"
            );
            for key in &entry.pax_keys {
                assert!(
                    key != b"uname" && key != b"gname",
                    "{shown}: PAX {} kept",
                    String::from_utf8_lossy(key)
                );
            }
            let Ok(path) = ocirender::tar::path::normalize(&entry.path) else {
                continue;
            };
            if entry.kind == EntryType::Directory {
                dirs.insert(path.clone());
            }
            let mut parent = ocirender::tar::path::split_parent(&path).0;
            while !parent.is_empty() {
                parents.push((parent.to_vec(), shown.clone().into_owned()));
                parent = ocirender::tar::path::split_parent(parent).0;
            }
        }
        for (parent, child) in parents {
            assert!(
                dirs.contains(&parent),
                "{child}: parent {} has no directory entry",
                String::from_utf8_lossy(&parent)
            );
        }
    }
});
