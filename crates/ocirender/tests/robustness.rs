//! Hostile and damaged input never panics, hangs or yields half an archive.
//!
//! Valid layers (every entry kind, PAX records, long names, hard links,
//! whiteouts) are damaged at random — bytes flipped, the stream cut,
//! garbage spliced in, compressed or not — and fed to the merge, to the
//! stream checker that guards `tar2sqfs`, and to the unpacker behind
//! `tar2dir`. Each must either succeed with a complete result or fail with
//! an error whose output does not pass for a complete archive; a panic
//! (also on a background decoding thread) fails the test, and the unpacker
//! must never touch anything outside its directory. The merge runs twice:
//! on plain paths (no digest: decoding and parsing are all that can catch
//! damage) and on layout blobs that declare the undamaged bytes' digests,
//! where any damage must fail the merge, on the digest if nothing else. A
//! fuzzer-lite that runs on stable Rust in every CI run.

mod common;

use ocirender::layer::LayerRef;
use ocirender::layer::{Algorithm, Digest};
use ocirender::sink::stream_check::forward_for_mksquashfs;
use ocirender::sink::{unpack_to_new_dir, UnpackOptions};
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
        let stored = if compress { gzip(&good) } else { good.clone() };
        // Damage the compressed bytes too, as a registry or disk would.
        let damaged = apply(stored.clone(), &damages);
        let sha256 = |bytes: &[u8]| Some(Digest::of_bytes(Algorithm::Sha256, bytes));
        // Each layer with the digest of its undamaged bytes.
        let (layers, digests) = if on_top {
            (vec![good.clone(), damaged.clone()], vec![sha256(&good), sha256(&stored)])
        } else {
            (vec![damaged.clone(), good.clone()], vec![sha256(&stored), sha256(&good)])
        };

        // Plain paths: nothing declares a digest, so only decoding and
        // parsing can catch the damage.
        let unverified = common::merge_blobs(&layers);
        assert_no_panic(&unverified);
        match &unverified.result {
            Ok(bytes) => prop_assert!(common::is_complete_archive(bytes)),
            Err(_) => prop_assert!(!common::is_complete_archive(&unverified.output)),
        }

        // Layout blobs named by the digests of the undamaged bytes: every
        // change to the bytes must make the merge fail, and damage that
        // decodes and parses anyway must fail on the digest.
        let verified = common::merge_blobs_verified(&layers, &digests);
        assert_no_panic(&verified);
        if damaged == stored {
            // Damages that cancel out (the same flip twice).
            prop_assert_eq!(&verified.result, &unverified.result);
            prop_assert!(verified.result.is_ok());
        } else {
            prop_assert!(verified.result.is_err(), "a damaged layer merged although its digest is declared");
            let error = verified.error();
            prop_assert!(!common::is_complete_archive(&verified.output));
            if unverified.result.is_ok() {
                prop_assert!(error.contains("digest mismatch"), "{}", error);
            }
        }
    }

    #[test]
    fn damaged_streams_are_forwarded_completely_or_refused(
        damages in prop::collection::vec(damage_strategy(), 1..4),
    ) {
        let damaged = apply(sample_layer(), &damages);
        let mut out = Vec::new();
        match forward_for_mksquashfs(&mut &damaged[..], &mut out, 0) {
            Ok(_) => {
                prop_assert!(has_end_marker(&out));
                prop_assert!(common::is_complete_archive(&out));
            }
            // What was forwarded before the failure must not pass for a
            // whole archive: no end-of-archive marker after its last entry.
            Err(_) => prop_assert!(!common::is_complete_archive(&out)),
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

/// Damage that decodes and parses cleanly is caught by the digest alone:
/// the merge fails, says so, and leaves no end-of-archive marker.
#[test]
fn damage_that_still_decodes_fails_on_the_digest() {
    let good = sample_layer();
    // A byte of file data ("alpha" -> "alphb"): no header checksum covers it.
    let at = good.windows(5).position(|w| w == b"alpha").unwrap() + 4;
    let mut flipped = good.clone();
    flipped[at] ^= 3;
    // Zeros after a gzip member: the decoder tolerates them as padding.
    let mut padded = gzip(&good);
    let stored = padded.clone();
    padded.extend([0; 512]);
    let sha256 = |bytes: &[u8]| Digest::of_bytes(Algorithm::Sha256, bytes);
    let base = Layer::new().file("base", b"base").tar();
    let expected = common::merge_blobs(&[base.clone(), good.clone()]);
    assert!(common::is_complete_archive(
        expected.result.as_ref().unwrap()
    ));
    for (what, damaged, digest) in [
        ("flipped data byte", &flipped, sha256(&good)),
        ("padded gzip", &padded, sha256(&stored)),
    ] {
        // It decodes: without a digest, it merges.
        let unverified = common::merge_blobs(&[base.clone(), damaged.clone()]);
        assert!(unverified.result.is_ok(), "{what}: {}", unverified.error());
        // Declared as a layout blob's name.
        let verified = common::merge_blobs_verified(
            &[base.clone(), damaged.clone()],
            &[None, Some(digest.clone())],
        );
        assert!(
            verified
                .error()
                .contains(&format!("digest mismatch: expected {digest}")),
            "{what}: {}",
            verified.error()
        );
        assert!(!common::is_complete_archive(&verified.output), "{what}");
        assert!(!has_end_marker(&verified.output), "{what}");
        // Declared with the `digest=` field of a layer list line.
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("base"), dir.path().join("layer"));
        std::fs::write(&lower, &base).unwrap();
        std::fs::write(&upper, damaged).unwrap();
        let line = format!("{}\tdigest={digest}", upper.display());
        let refs = [
            LayerRef::file(&lower),
            LayerRef::parse_line(line.as_bytes()).unwrap(),
        ];
        let listed = common::merge_refs(&refs);
        assert!(
            listed.error().contains("digest mismatch"),
            "{what}: {}",
            listed.error()
        );
        assert!(!common::is_complete_archive(&listed.output), "{what}");
    }
    // The right digests merge the undamaged layers to the same bytes.
    let verified = common::merge_blobs_verified(&[base, good.clone()], &[]);
    assert_eq!(verified.result, expected.result);
}
