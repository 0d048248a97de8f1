//! Hostile and damaged input never panics, hangs or yields half an archive.
//!
//! Valid layers (every entry kind, PAX records, long names, hard links,
//! whiteouts) are damaged at random — bytes flipped, the stream cut,
//! garbage spliced in, compressed or not — and fed to the merge, to the
//! stream checker that guards `tar2sqfs`, and to the unpacker behind
//! `tar2dir`. Each must either succeed with a complete result or fail with
//! an error; a panic (also on a background decoding thread) fails the test,
//! and the unpacker must never touch anything outside its directory. A
//! fuzzer-lite that runs on stable Rust in every CI run.

mod common;

use ocirender::tar_stream::forward_for_mksquashfs;
use ocirender::unpack::{unpack_to_new_dir, UnpackOptions};
use proptest::prelude::*;
use tar::EntryType;
use testkit::{gzip, has_end_marker, Layer, Raw};

fn sample_layer() -> Vec<u8> {
    let long = format!("dir/{}", "n".repeat(150));
    Layer::new()
        .dir("dir")
        .file("dir/a", b"alpha")
        .file(&long, b"long")
        .hardlink("dir/link", "dir/a")
        .symlink("dir/sym", "a")
        .whiteout("old")
        .opaque("dir")
        .raw(
            b"dir/caps",
            Raw {
                data: b"elf",
                pax: vec![
                    ("SCHILY.xattr.security.capability", &[1, 0, 0, 2][..]),
                    ("mtime", b"1.5"),
                ],
                ..Raw::default()
            },
        )
        .raw(
            b"dev/null",
            Raw {
                kind: EntryType::Char,
                ..Raw::default()
            },
        )
        .tar()
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Splice { at: usize, garbage: Vec<u8> },
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..600))
            .prop_map(|(at, garbage)| Damage::Splice { at, garbage }),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for damage in damages {
        if bytes.is_empty() {
            break;
        }
        match damage {
            Damage::Flip { at, mask } => {
                let i = at % bytes.len();
                bytes[i] ^= mask;
            }
            Damage::Cut { at } => bytes.truncate(at % bytes.len()),
            Damage::Splice { at, garbage } => {
                let i = at % bytes.len();
                bytes.splice(i..i, garbage.iter().copied());
            }
        }
    }
    bytes
}

fn assert_no_panic(outcome: &common::Outcome) {
    if let Err(e) = &outcome.result {
        assert!(
            !e.contains("thread died") && !e.contains("panicked"),
            "a thread panicked: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::proptest_cases(500), ..ProptestConfig::default() })]

    #[test]
    fn damaged_layers_merge_completely_or_fail(
        damages in prop::collection::vec(damage_strategy(), 1..4),
        compress in any::<bool>(),
        on_top in any::<bool>(),
    ) {
        let good = sample_layer();
        let mut damaged = apply(good.clone(), &damages);
        if compress {
            // Damage the compressed bytes too, as a registry or disk would.
            damaged = apply(gzip(&good), &damages);
        }
        let layers = if on_top { vec![good, damaged] } else { vec![damaged, good] };
        let outcome = common::merge_blobs(&layers);
        assert_no_panic(&outcome);
        match &outcome.result {
            Ok(bytes) => prop_assert!(has_end_marker(bytes)),
            Err(_) => prop_assert!(!has_end_marker(&outcome.output)),
        }
    }

    #[test]
    fn damaged_streams_are_forwarded_completely_or_refused(
        damages in prop::collection::vec(damage_strategy(), 1..4),
    ) {
        let damaged = apply(sample_layer(), &damages);
        let mut out = Vec::new();
        if forward_for_mksquashfs(&mut &damaged[..], &mut out, 0).is_ok() {
            prop_assert!(has_end_marker(&out));
            let mut archive = tar::Archive::new(&out[..]);
            for entry in archive.entries().unwrap() {
                prop_assert!(entry.is_ok());
            }
        }
    }

    #[test]
    fn damaged_streams_unpack_inside_their_directory_or_not_at_all(
        damages in prop::collection::vec(damage_strategy(), 1..4),
    ) {
        let scratch = tempfile::tempdir().unwrap();
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        let input = scratch.path().join("input.tar");
        std::fs::write(&input, apply(sample_layer(), &damages)).unwrap();
        let dest = scratch.path().join("dest");
        let result = unpack_to_new_dir(&dest, std::fs::File::open(&input).unwrap(), &UnpackOptions::default());
        let mut names: Vec<String> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected: &[&str] = if result.is_ok() { &["dest", "input.tar", "outside"] } else { &["input.tar", "outside"] };
        prop_assert_eq!(names, expected);
        prop_assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        prop_assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
    }
}
