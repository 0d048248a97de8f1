//! End-to-end tests of `oci-merge`: the built binary driven as a user
//! drives it (layer paths as arguments, a layer list on stdin, pipes, a
//! terminal), its output checked with the `tar` crate and with GNU tar.

mod support;

use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use support::{cmd, line, run_with_stdin, sh, stderr, Scratch};
use tar::EntryType;
use testkit::{has_end_marker, noise, read_tar, Layer};

// ---------------------------------------------------------------------------
// Layers and what merging them must give.

/// A file large enough that splitting or cutting a compressed stream in its
/// middle lands inside entry data.
fn big_text() -> Vec<u8> {
    (0..2000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect()
}

/// The base layer: a directory tree, a file the upper layer replaces and
/// one it whites out, and parents (`usr/`, `usr/share/`) no entry describes.
fn base_layer() -> Layer {
    Layer::new()
        .dir("etc")
        .file("etc/os-release", b"base\n")
        .file("etc/removed", b"old\n")
        .dir("bin")
        .file_mode("bin/sh", b"#!sh\n", 0o755)
        .symlink("bin/bash", "sh")
        .file("usr/share/data", &big_text())
}

/// The upper layer: replaces a file, whites one out, adds one.
fn top_layer() -> Layer {
    Layer::new()
        .file("etc/os-release", b"top\n")
        .whiteout("etc/removed")
        .file("usr/bin/tool", b"tool\n")
}

/// A short, comparable description of an entry's type and content.
fn describe(kind: EntryType, link: &str, data: &[u8]) -> String {
    match kind {
        EntryType::Directory => "dir".to_owned(),
        EntryType::Symlink => format!("symlink -> {link}"),
        EntryType::Regular if data.len() > 64 => {
            format!("file of {} bytes, sha256 {}", data.len(), sha256_hex(data))
        }
        EntryType::Regular => format!("file {:?}", String::from_utf8_lossy(data)),
        other => format!("{other:?}"),
    }
}

fn file(data: &[u8]) -> String {
    describe(EntryType::Regular, "", data)
}

fn expected(entries: &[(&str, String)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(path, what)| ((*path).to_owned(), what.clone()))
        .collect()
}

/// What `base_layer` alone merges to.
fn expected_base() -> BTreeMap<String, String> {
    expected(&[
        ("bin", "dir".into()),
        ("bin/bash", "symlink -> sh".into()),
        ("bin/sh", file(b"#!sh\n")),
        ("etc", "dir".into()),
        ("etc/os-release", file(b"base\n")),
        ("etc/removed", file(b"old\n")),
        ("usr", "dir".into()),
        ("usr/share", "dir".into()),
        ("usr/share/data", file(&big_text())),
    ])
}

/// What `base_layer` under `top_layer` merges to.
fn expected_stack() -> BTreeMap<String, String> {
    expected(&[
        ("bin", "dir".into()),
        ("bin/bash", "symlink -> sh".into()),
        ("bin/sh", file(b"#!sh\n")),
        ("etc", "dir".into()),
        ("etc/os-release", file(b"top\n")),
        ("usr", "dir".into()),
        ("usr/bin", "dir".into()),
        ("usr/bin/tool", file(b"tool\n")),
        ("usr/share", "dir".into()),
        ("usr/share/data", file(&big_text())),
    ])
}

/// The merged archive as path -> description, read with the `tar` crate
/// (which also requires the end-of-archive marker). Each path must appear once.
fn tree(archive: &[u8]) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for entry in read_tar(archive) {
        let path = entry.path.trim_end_matches('/').to_owned();
        let what = describe(entry.kind, &entry.link, &entry.data);
        assert!(
            tree.insert(path.clone(), what).is_none(),
            "{path} appears twice in the output"
        );
    }
    tree
}

// ---------------------------------------------------------------------------
// GNU tar as the consumer.

fn gnu_tar(args: &[&str], archive: &[u8]) -> Output {
    let mut command = Command::new("tar");
    command.args(args);
    run_with_stdin(command, archive)
}

/// The paths `tar -tvf -` lists, sorted, without trailing `/` or link targets.
fn gnu_tar_paths(archive: &[u8]) -> Vec<String> {
    let out = gnu_tar(&["-tvf", "-"], archive);
    assert!(out.status.success(), "tar -tvf failed: {}", stderr(&out));
    let mut paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            // mode owner size date time name [-> target]
            let name = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            let name = name.split(" -> ").next().unwrap_or_default();
            name.trim_end_matches('/').to_owned()
        })
        .collect();
    paths.sort();
    paths
}

/// One file's content as `tar -xO` extracts it.
fn gnu_tar_extract(archive: &[u8], path: &str) -> Vec<u8> {
    let out = gnu_tar(&["-xOf", "-", path], archive);
    assert!(
        out.status.success(),
        "tar -xO {path} failed: {}",
        stderr(&out)
    );
    out.stdout
}

/// Checks a merge of `base_layer` under `top_layer` with both readers.
fn check_stack_output(archive: &[u8]) {
    let expected = expected_stack();
    assert_eq!(tree(archive), expected);
    let listed = gnu_tar_paths(archive);
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    assert!(
        listed.iter().all(|p| !p.contains(".wh.")),
        "a whiteout was emitted: {listed:?}"
    );
    assert_eq!(gnu_tar_extract(archive, "etc/os-release"), b"top\n");
    assert_eq!(gnu_tar_extract(archive, "usr/share/data"), big_text());
}

// ---------------------------------------------------------------------------
// Compression formats.

#[derive(Debug, Clone, Copy)]
enum Codec {
    Plain,
    Gzip,
    /// Two gzip members, the tar split between them off a block boundary.
    GzipMembers,
    /// gzip followed by zero padding.
    GzipPadded,
    Zstd,
    /// A skippable frame, then two zstd frames with another skippable frame
    /// between them.
    ZstdFrames,
    Xz,
    Bzip2,
}

const CODECS: [Codec; 8] = [
    Codec::Plain,
    Codec::Gzip,
    Codec::GzipMembers,
    Codec::GzipPadded,
    Codec::Zstd,
    Codec::ZstdFrames,
    Codec::Xz,
    Codec::Bzip2,
];

impl Codec {
    fn encode(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Codec::Plain => tar.to_vec(),
            Codec::Gzip => testkit::gzip(tar),
            Codec::GzipMembers => {
                let (first, second) = tar.split_at(split_point(tar));
                let blob = [testkit::gzip(first), testkit::gzip(second)].concat();
                // A single-member reader stops after the first member, so
                // this blob really does need multi-member decoding.
                let mut one = Vec::new();
                flate2::read::GzDecoder::new(&blob[..])
                    .read_to_end(&mut one)
                    .unwrap();
                assert_eq!(one, first);
                blob
            }
            Codec::GzipPadded => [testkit::gzip(tar), vec![0; 1000]].concat(),
            Codec::Zstd => zstd_frame(tar),
            Codec::ZstdFrames => {
                let (first, second) = tar.split_at(split_point(tar));
                [
                    zstd_skippable_frame(b"leading metadata"),
                    zstd_frame(first),
                    zstd_skippable_frame(b""),
                    zstd_frame(second),
                ]
                .concat()
            }
            Codec::Xz => liblzma::encode_all(tar, 1).unwrap(),
            Codec::Bzip2 => {
                let mut encoder =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                encoder.write_all(tar).unwrap();
                encoder.finish().unwrap()
            }
        }
    }
}

/// A point near the middle of `tar` that is not on a 512-byte boundary.
fn split_point(tar: &[u8]) -> usize {
    let at = tar.len() / 2 / 512 * 512 + 300;
    assert!(at < tar.len());
    at
}

fn zstd_frame(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

fn zstd_skippable_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x50, 0x2a, 0x4d, 0x18];
    frame.extend((payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

// ---------------------------------------------------------------------------
// Files and runs.

/// Writes a blob into an OCI-layout-like `blobs/<alg>/<hex>`.
fn write_blob(s: &Scratch, algorithm: &str, hex: &str, bytes: &[u8]) -> String {
    s.write(&format!("layout/blobs/{algorithm}/{hex}"), bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn sha512_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha512::digest(bytes))
}

/// How the layer list reaches `oci-merge`.
#[derive(Debug, Clone, Copy)]
enum Via {
    Args,
    Stdin,
}

const VIAS: [Via; 2] = [Via::Args, Via::Stdin];

/// Runs `oci-merge FLAGS` with `lines` (base first) as arguments or on stdin.
fn oci_merge(via: Via, lines: &[String], flags: &[&str]) -> Output {
    let mut command = cmd("oci-merge");
    command.args(flags);
    let stdin = match via {
        Via::Args => {
            command.args(lines);
            Vec::new()
        }
        Via::Stdin => lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect(),
    };
    run_with_stdin(command, &stdin)
}

/// Asserts a successful, complete merge and returns the archive.
fn succeeded(out: &Output) -> &[u8] {
    assert!(
        out.status.success(),
        "oci-merge failed ({}): {}",
        out.status,
        stderr(out)
    );
    assert!(
        has_end_marker(&out.stdout),
        "successful merge lacks its end-of-archive marker"
    );
    &out.stdout
}

/// Asserts a failed merge: non-zero exit, one `oci-merge: ` line on stderr
/// containing every needle, and no end-of-archive marker on stdout.
fn assert_failed(what: &str, out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: oci-merge succeeded: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line on stderr: {err}");
    assert!(
        lines[0].starts_with("oci-merge: ") && !lines[0].starts_with("oci-merge: warning:"),
        "{what}: not an oci-merge error line: {err}"
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {needle:?} not in: {err}"
        );
    }
    assert!(
        !has_end_marker(&out.stdout),
        "{what}: the output of a failed merge ends with an end-of-archive marker"
    );
}

// ---------------------------------------------------------------------------
// 1. Compression formats.

#[test]
fn one_layer_in_every_format_merges_like_the_plain_tar() {
    let s = Scratch::new();
    let tar = base_layer().tar();
    let reference = oci_merge(Via::Args, &[s.write("plain.tar", &tar)], &[]);
    let reference = succeeded(&reference);
    assert_eq!(tree(reference), expected_base());
    for codec in CODECS {
        let layer = s.write(&format!("{codec:?}.layer"), &codec.encode(&tar));
        for via in VIAS {
            let out = oci_merge(via, std::slice::from_ref(&layer), &[]);
            assert!(
                succeeded(&out) == reference,
                "{codec:?} via {via:?}: output differs from the plain tar's merge"
            );
        }
    }
}

#[test]
fn two_layer_stacks_mixing_formats_apply_the_upper_layer() {
    let s = Scratch::new();
    let (base, top) = (base_layer().tar(), top_layer().tar());
    let plain = [s.write("base.tar", &base), s.write("top.tar", &top)];
    let reference = oci_merge(Via::Args, &plain, &[]);
    let reference = succeeded(&reference);
    check_stack_output(reference);
    // Every format appears once as the base and once as the upper layer,
    // each time with a different partner.
    for (i, base_codec) in CODECS.into_iter().enumerate() {
        let top_codec = CODECS[(i + 3) % CODECS.len()];
        let layers = [
            s.write(
                &format!("{i}-base.{base_codec:?}"),
                &base_codec.encode(&base),
            ),
            s.write(&format!("{i}-top.{top_codec:?}"), &top_codec.encode(&top)),
        ];
        for via in VIAS {
            let out = oci_merge(via, &layers, &[]);
            let archive = succeeded(&out);
            assert!(
                archive == reference,
                "{base_codec:?} under {top_codec:?} via {via:?}: output differs from the plain merge"
            );
        }
    }
}

/// gzip as real tools write it: GNU gzip and ISA-L's igzip storing the file
/// name, and a chain of thousands of tiny members whose headers carry every
/// optional field (name, comment, extra, header CRC), so that member
/// headers and trailers fall across every read boundary of the decoder.
/// Whatever inflate engine this build has must give the plain tar's merge.
#[test]
fn gzip_from_real_tools_and_many_small_members_merge_like_the_plain_tar() {
    let s = Scratch::new();
    let tar = Layer::new()
        .file("data/noise", &noise(7, 3 << 20))
        .file("data/text", &big_text())
        .tar();
    let plain = s.write("layer.tar", &tar);
    let reference = oci_merge(Via::Args, &[plain], &[]);
    let reference = succeeded(&reference);

    let mut blobs = Vec::new();
    for tool in ["gzip", "igzip"] {
        let out = sh(&s.path(""), &format!("{tool} -c layer.tar"));
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        assert!(out.stdout[3] & 0x08 != 0, "{tool} stored no file name");
        blobs.push((tool.to_owned(), out.stdout));
    }
    let mut chain = Vec::new();
    let mut rest = &tar[..];
    for size in (1..=509).step_by(13).cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.min(rest.len()));
        let mut member = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("one of many")
            .extra(vec![b'S', b'C', 2, 0, 1, 2])
            .write(Vec::new(), flate2::Compression::fast());
        member.write_all(piece).unwrap();
        let mut member = member.finish().unwrap();
        // FHCRC: the low 16 bits of the header's CRC-32, after the header.
        let header_len = 10 + 2 + 6 + b"layer.tar\0".len() + b"one of many\0".len();
        member[3] |= 0x02;
        let mut crc = flate2::Crc::new();
        crc.update(&member[..header_len]);
        let hcrc = (crc.sum() as u16).to_le_bytes();
        member.splice(header_len..header_len, hcrc);
        chain.extend(member);
        rest = after;
    }
    chain.extend([0u8; 333]);
    blobs.push(("a chain of small members".to_owned(), chain));

    for (what, blob) in blobs {
        let layer = s.write("layer.gz", &blob);
        let out = oci_merge(Via::Args, &[layer], &[]);
        assert!(
            succeeded(&out) == reference,
            "{what}: output differs from the plain tar's merge"
        );
    }
}

#[test]
fn version_names_the_gzip_inflate_engine() {
    let out = cmd("oci-merge").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let engine = if cfg!(feature = "isal") {
        "ISA-L"
    } else {
        "zlib-rs"
    };
    assert!(
        version.starts_with("oci-merge ") && version.contains(&format!("(gzip inflate: {engine})")),
        "{version}"
    );
}

// ---------------------------------------------------------------------------
// 2. Digest verification.

#[test]
fn layout_blobs_named_by_their_digest_are_accepted() {
    let s = Scratch::new();
    let base = base_layer().gzip();
    let top = Codec::Zstd.encode(&top_layer().tar());
    let layers = [
        write_blob(&s, "sha256", &sha256_hex(&base), &base),
        write_blob(&s, "sha512", &sha512_hex(&top), &top),
    ];
    for via in VIAS {
        let out = oci_merge(via, &layers, &[]);
        check_stack_output(succeeded(&out));
    }
}

#[test]
fn layout_blob_with_a_wrong_digest_name_fails() {
    let s = Scratch::new();
    let base = base_layer().gzip();
    let top = s.write("top.tar", &top_layer().tar());
    let other = b"some other blob";
    for (algorithm, wrong) in [("sha256", sha256_hex(other)), ("sha512", sha512_hex(other))] {
        let bad = write_blob(&s, algorithm, &wrong, &base);
        let out = oci_merge(Via::Args, &[bad.clone(), top.clone()], &[]);
        assert_failed(algorithm, &out, &[&bad, "digest mismatch"]);
    }
}

#[test]
fn explicit_digest_field_is_checked() {
    let s = Scratch::new();
    let base = base_layer().gzip();
    let path = s.write("base.tar.gz", &base);
    let top = s.write("top.tar", &top_layer().tar());
    let right = format!("{path}\tdigest=sha256:{}", sha256_hex(&base));
    let wrong = format!("{path}\tdigest=sha256:{}", sha256_hex(b"other"));
    for via in VIAS {
        let out = oci_merge(via, &[right.clone(), top.clone()], &[]);
        check_stack_output(succeeded(&out));
        let out = oci_merge(via, &[wrong.clone(), top.clone()], &[]);
        assert_failed(&format!("{via:?}"), &out, &[&path, "digest mismatch"]);
    }
}

// ---------------------------------------------------------------------------
// 3. Byte ranges of a file.

/// Junk, then the gzip base layer, then junk; returns (path, offset, size,
/// blob).
fn archive_with_embedded_layer(s: &Scratch) -> (String, usize, usize, Vec<u8>) {
    let blob = base_layer().gzip();
    let (head, tail) = (noise(1, 1000), noise(2, 777));
    let path = s.write("archive.bin", &[&head[..], &blob, &tail].concat());
    (path, head.len(), blob.len(), blob)
}

#[test]
fn byte_range_merges_just_that_range() {
    let s = Scratch::new();
    let (path, offset, size, blob) = archive_with_embedded_layer(&s);
    let top = s.write("top.tar", &top_layer().tar());
    let direct = oci_merge(
        Via::Args,
        &[s.write("base.tar.gz", &blob), top.clone()],
        &[],
    );
    let direct = succeeded(&direct);
    let range = format!("{path}\toffset={offset}\tsize={size}");
    let with_digest = format!("{range}\tdigest=sha256:{}", sha256_hex(&blob));
    for via in VIAS {
        for layer in [&range, &with_digest] {
            let out = oci_merge(via, &[layer.clone(), top.clone()], &[]);
            let archive = succeeded(&out);
            check_stack_output(archive);
            assert!(
                archive == direct,
                "{layer:?} via {via:?}: differs from the blob's merge"
            );
        }
    }
}

#[test]
fn byte_range_with_a_wrong_digest_fails() {
    let s = Scratch::new();
    let (path, offset, size, _) = archive_with_embedded_layer(&s);
    let top = s.write("top.tar", &top_layer().tar());
    let wrong = format!(
        "{path}\toffset={offset}\tsize={size}\tdigest=sha256:{}",
        sha256_hex(b"other")
    );
    let out = oci_merge(Via::Stdin, &[wrong, top], &[]);
    assert_failed("wrong range digest", &out, &[&path, "digest mismatch"]);
}

#[test]
fn byte_range_past_the_end_of_the_file_fails() {
    let s = Scratch::new();
    let (path, offset, _, _) = archive_with_embedded_layer(&s);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let top = s.write("top.tar", &top_layer().tar());
    let past = format!("{path}\toffset={offset}\tsize={}", len - offset + 1);
    let out = oci_merge(Via::Stdin, &[past, top], &[]);
    assert_failed("range past EOF", &out, &[&path]);
}

// ---------------------------------------------------------------------------
// 4. Bad input.

/// A broken base layer.
enum Bad {
    Bytes(Vec<u8>),
    Missing,
    Directory,
}

/// Broken base layers: (file name, content, what the error must mention
/// besides the path).
fn bad_base_layers() -> Vec<(&'static str, Bad, &'static [&'static str])> {
    let gzip = base_layer().gzip();
    let zstd = Codec::Zstd.encode(&base_layer().tar());
    let mut corrupt = gzip.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16]
        .iter_mut()
        .for_each(|b| *b ^= 0xa5);
    vec![
        (
            "truncated.tar.gz",
            Bad::Bytes(gzip[..gzip.len() / 2].to_vec()),
            &[],
        ),
        ("corrupt.tar.gz", Bad::Bytes(corrupt), &[]),
        (
            "truncated.tar.zst",
            Bad::Bytes(zstd[..zstd.len() / 2].to_vec()),
            &[],
        ),
        ("garbage.bin", Bad::Bytes(noise(3, 8192)), &[]),
        (
            "dotdot.tar",
            Bad::Bytes(Layer::new().file("ok", b"1").file("../x", b"2").tar()),
            &["../x"],
        ),
        (
            "bare-whiteout.tar",
            Bad::Bytes(Layer::new().file("ok", b"1").file(".wh.", b"").tar()),
            &[".wh."],
        ),
        ("missing.tar", Bad::Missing, &[]),
        ("a-directory", Bad::Directory, &[]),
    ]
}

/// Runs `oci-merge BAD TOP` for every broken base layer; returns each case's
/// name, path, extra needles and output.
fn merge_bad_bases() -> Vec<(&'static str, String, &'static [&'static str], Output)> {
    let s = Scratch::new();
    let top = s.write("top.tar", &top_layer().tar());
    bad_base_layers()
        .into_iter()
        .map(|(name, bad, needles)| {
            let path = match bad {
                Bad::Bytes(bytes) => s.write(name, &bytes),
                Bad::Missing => line(&s.path(name)),
                Bad::Directory => {
                    std::fs::create_dir(s.path(name)).unwrap();
                    line(&s.path(name))
                }
            };
            let out = oci_merge(Via::Args, &[path.clone(), top.clone()], &[]);
            (name, path, needles, out)
        })
        .collect()
}

#[test]
fn bad_base_layer_fails_after_the_upper_layer_was_streamed() {
    for (name, path, needles, out) in merge_bad_bases() {
        let mut all = vec![path.as_str()];
        all.extend_from_slice(needles);
        assert_failed(name, &out, &all);
        assert!(
            !out.stdout.is_empty(),
            "{name}: the upper layer should have been streamed before the error"
        );
    }
}

/// GNU tar does not require the end-of-archive marker, so a failed merge
/// that stopped at an entry boundary would read as a complete, smaller
/// archive; `oci-merge | tar -x` without pipefail would extract a partial
/// root filesystem. The failed stream must end in a way GNU tar rejects.
#[test]
fn gnu_tar_rejects_the_output_of_a_failed_merge() {
    let accepted: Vec<&str> = merge_bad_bases()
        .iter()
        .filter(|(_, _, _, out)| gnu_tar(&["-tf", "-"], &out.stdout).status.success())
        .map(|(name, _, _, _)| *name)
        .collect();
    assert!(
        accepted.is_empty(),
        "GNU tar accepted the truncated output of the failed merge with these base layers: {accepted:?}"
    );
}

/// Errors reported by the `tar` crate quote the raw bytes of a hostile
/// header ("... when getting cksum for <name>"): a layer must not be able to
/// send terminal escape sequences to the user's terminal through stderr.
#[test]
fn error_messages_carry_no_control_characters_from_the_layer() {
    let s = Scratch::new();
    let mut header = [0u8; 512];
    let name = b"\x1b]0;owned\x07\x1b[31mred";
    header[..name.len()].copy_from_slice(name);
    let bad = s.write("escape.tar", &header);
    let top = s.write("top.tar", &top_layer().tar());
    let out = oci_merge(Via::Args, &[bad.clone(), top], &[]);
    assert_failed("escape sequence", &out, &[&bad]);
    let err = stderr(&out);
    assert!(
        !err.trim_end_matches('\n').chars().any(char::is_control),
        "stderr carries control characters from the layer: {err:?}"
    );
}

/// Something that is not a tar is called that, in words: never the raw
/// bytes the tar reader tried to parse as a header's checksum. Compressed,
/// the message says the decompressed data is what is not a tar; with the
/// compression's magic but not its format, that the compressed data is
/// corrupt.
#[test]
fn a_layer_that_is_not_a_tar_says_so_in_words() {
    let s = Scratch::new();
    let text = b"hello, this is not a tar archive\n".repeat(40);
    let not_tar = "not a tar archive (no valid header at byte 0)";
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("noise.bin", noise(5, 8192), not_tar.to_owned()),
        ("short.txt", b"hello\n".to_vec(), not_tar.to_owned()),
        ("text.txt", text.clone(), not_tar.to_owned()),
        (
            "text.gz",
            testkit::gzip(&text),
            "not a tar archive (no valid header at byte 0 of the gzip-decompressed data)".into(),
        ),
        (
            "noise.gz",
            testkit::gzip(&noise(6, 8192)),
            "not a tar archive (no valid header at byte 0 of the gzip-decompressed data)".into(),
        ),
        (
            "text.zst",
            zstd::encode_all(&text[..], 3).unwrap(),
            "not a tar archive (no valid header at byte 0 of the zstd-decompressed data)".into(),
        ),
        (
            "bad-magic.gz",
            [&[0x1f, 0x8b][..], &noise(7, 4096)].concat(),
            "corrupt or truncated gzip data: ".into(),
        ),
        (
            "bad-magic.zst",
            [&[0x28, 0xb5, 0x2f, 0xfd][..], &noise(8, 4096)].concat(),
            "corrupt or truncated zstd data: ".into(),
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = s.write(name, &bytes);
        let out = oci_merge(Via::Args, std::slice::from_ref(&path), &[]);
        assert_failed(name, &out, &[&path]);
        let err = stderr(&out);
        let want = format!("oci-merge: error: layer 1/1 ({path}): {expected}");
        if expected.ends_with(": ") {
            assert!(err.starts_with(&want), "{name}: {err:?}");
        } else {
            assert_eq!(err, format!("{want}\n"), "{name}");
        }
        assert!(
            !err.contains('\u{fffd}'),
            "{name}: raw bytes quoted: {err:?}"
        );
    }
}

/// A bad header inside a layer is named by its offset and what is wrong
/// with it.
#[test]
fn a_bad_header_inside_a_layer_is_named_by_its_offset() {
    let s = Scratch::new();
    // Two members of 1000 bytes: the second header is at byte 1536.
    let tar = Layer::new()
        .file("a", &[b'a'; 1000])
        .file("b", &[b'b'; 1000])
        .tar();
    let mut flipped = tar.clone();
    flipped[1536 + 10] ^= 0x55;
    let cases = [
        (
            "flipped.tar",
            flipped,
            "invalid tar stream after 1 member: no valid header at byte 1536 (its checksum does not match its contents)",
        ),
        (
            "cut.tar",
            tar[..1536 + 100].to_vec(),
            "invalid tar stream after 1 member: no valid header at byte 1536 (the data ends 100 bytes into it)",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = s.write(name, &bytes);
        let out = oci_merge(Via::Args, std::slice::from_ref(&path), &[]);
        assert_failed(name, &out, &[&path]);
        assert_eq!(
            stderr(&out),
            format!("oci-merge: error: layer 1/1 ({path}): {expected}\n"),
            "{name}"
        );
    }
}

/// `size=N` without `offset` declares a file's length (what `oci-fetch`
/// lists for its named pipes): a layer of another length is an error.
#[test]
fn a_declared_size_must_match() {
    let s = Scratch::new();
    let tar = top_layer().tar();
    let path = s.write("top.tar", &tar);
    let len = tar.len();
    let out = oci_merge(Via::Stdin, &[format!("{path}\tsize={len}")], &[]);
    succeeded(&out);
    let out = oci_merge(Via::Stdin, &[format!("{path}\tsize={}", len + 1)], &[]);
    assert_failed(
        "longer",
        &out,
        &[
            &path,
            &format!(
                "truncated: the layer ends after {len} of its {} bytes",
                len + 1
            ),
        ],
    );
    let out = oci_merge(Via::Stdin, &[format!("{path}\tsize={}", len - 1)], &[]);
    assert_failed(
        "shorter",
        &out,
        &[
            &path,
            &format!(
                "the layer has {len} bytes, more than the {} the layer list says",
                len - 1
            ),
        ],
    );
}

#[test]
fn empty_layer_list_is_an_error() {
    for list in [&b""[..], b"\n\n"] {
        let out = run_with_stdin(cmd("oci-merge"), list);
        assert_failed(&format!("list {list:?}"), &out, &["empty"]);
        // What a failed merge leaves: no tar, and the sink reading it
        // recognises its producer failed (tests/newcomer.rs).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ocirender: INCOMPLETE ARCHIVE"),
            "list {list:?}: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Warnings.

#[test]
fn duplicate_entry_warns_unless_quiet() {
    let s = Scratch::new();
    let layer = s.write(
        "dup.tar",
        &Layer::new()
            .file("etc/duplicated", b"first")
            .file("etc/duplicated", b"second")
            .tar(),
    );
    let loud = oci_merge(Via::Args, std::slice::from_ref(&layer), &[]);
    let archive = succeeded(&loud);
    assert_eq!(tree(archive)["etc/duplicated"], file(b"first"));
    let err = stderr(&loud);
    assert!(
        err.lines()
            .any(|l| l.starts_with("oci-merge: warning: ") && l.contains("etc/duplicated")),
        "no warning naming the duplicate: {err:?}"
    );
    let quiet = oci_merge(Via::Args, &[layer], &["--quiet"]);
    assert!(succeeded(&quiet) == archive, "--quiet changed the output");
    assert_eq!(stderr(&quiet), "", "--quiet printed something");
}

// ---------------------------------------------------------------------------
// 6. Unix filter behaviour.

#[test]
fn closed_stdout_stops_quietly_with_status_141() {
    let s = Scratch::new();
    let big = noise(4, 8 << 20);
    s.write("big.tar", &Layer::new().file("big", &big).tar());
    let out = sh(
        s.0.path(),
        "set +e; oci-merge big.tar 2>err.txt | head -c 100 >/dev/null; echo \"${PIPESTATUS[0]}\"",
    );
    assert!(out.status.success(), "shell failed: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "141");
    assert_eq!(std::fs::read_to_string(s.path("err.txt")).unwrap(), "");
}

#[test]
fn refuses_to_write_to_a_terminal() {
    let s = Scratch::new();
    let layer = s.write("layer.tar", &base_layer().tar());
    let command = format!("'{}' '{layer}'", support::bin("oci-merge").display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `script` (util-linux, Debian package bsdutils) to give oci-merge a terminal: {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "oci-merge wrote to a terminal: {text:?}"
    );
    assert!(
        text.contains("terminal"),
        "no message about the terminal: {text:?}"
    );
    assert!(!text.contains("ustar"), "tar data reached the terminal");
}

/// Peak RSS (KiB) of `oci-merge FLAGS LAYERS` writing into a pipe whose
/// reader waits two seconds before it reads: the layers decode ahead as far
/// as oci-merge lets them.
fn peak_kib_behind_a_slow_reader(dir: &std::path::Path, flags: &str, layers: &str) -> u64 {
    let out = sh(
        dir,
        &format!(
            "/usr/bin/time -f %M -o rss oci-merge {flags} {layers} | (sleep 2; cat > /dev/null)"
        ),
    );
    assert!(out.status.success(), "{flags}: {}", stderr(&out));
    std::fs::read_to_string(dir.join("rss"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `--read-ahead MIB` bounds what the layers decode ahead of the merge:
/// 300 MiB of layer data, held back by a slow reader, take about as much
/// memory as the flag allows, not as much as the data.
#[test]
fn read_ahead_bounds_the_memory_of_decoding_ahead() {
    let s = Scratch::new();
    let zeros = vec![0u8; 300 << 20];
    s.write("base.tar.gz", &Layer::new().file("big", &zeros).gzip());
    s.write("top.tar.gz", &Layer::new().file("small", b"x").gzip());
    let layers = "base.tar.gz top.tar.gz";
    let none = peak_kib_behind_a_slow_reader(&s.path(""), "--read-ahead 0", layers);
    let some = peak_kib_behind_a_slow_reader(&s.path(""), "--read-ahead 100", layers);
    assert!(none < 48 << 10, "--read-ahead 0 peaked at {none} KiB");
    assert!(
        some > 100 << 10 && some < 148 << 10,
        "--read-ahead 100 peaked at {some} KiB, not about 100 MiB more than with 0 ({none} KiB)"
    );
}

// ---------------------------------------------------------------------------
// 7. Determinism, 8. help.

#[test]
fn the_same_merge_is_byte_identical() {
    let s = Scratch::new();
    let layers = [
        s.write("base.tar.gz", &base_layer().gzip()),
        s.write("top.tar.zst", &Codec::Zstd.encode(&top_layer().tar())),
        s.write(
            "third.tar",
            &Layer::new().file("usr/bin/tool", b"v2").opaque("bin").tar(),
        ),
    ];
    let first = oci_merge(Via::Args, &layers, &[]);
    let first = succeeded(&first);
    for flags in [
        &[][..],
        &["--parallel", "1", "--read-ahead", "0"],
        &["--parallel", "8", "--read-ahead", "1"],
        &["--parallel", "3", "--read-ahead", "1024"],
    ] {
        let again = oci_merge(Via::Stdin, &layers, flags);
        assert!(succeeded(&again) == first, "{flags:?}: output differs");
    }
}

#[test]
fn help_documents_the_layer_line_format() {
    let out = cmd("oci-merge").arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for field in ["offset=", "size=", "digest="] {
        assert!(help.contains(field), "--help does not mention {field}");
    }
}
