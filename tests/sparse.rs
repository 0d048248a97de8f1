//! Sparse members through every tool: archives made by GNU tar in each of
//! its sparse formats, and handmade hostile maps.
//!
//! What must hold: `oci-merge` writes every sparse member out as a plain
//! regular file with the holes as zeros (its output never holds a sparse
//! member); `tar2dir` unpacks the right bytes; `tar2sqfs` builds an image
//! with the right bytes. A hostile map is a clean failure everywhere:
//! non-zero exit, one message, nothing written as if it were good.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{bin, cmd, run_with_stdin, stderr, Scratch};
use tar::{EntryType, Header};

/// The sparse formats GNU tar writes, as `tar` arguments.
const FORMATS: &[(&str, &[&str])] = &[
    ("gnu", &["--format=gnu"]),
    ("pax-0.0", &["--format=posix", "--sparse-version=0.0"]),
    ("pax-0.1", &["--format=posix", "--sparse-version=0.1"]),
    ("pax-1.0", &["--format=posix", "--sparse-version=1.0"]),
];

/// Writes `len` bytes of `fill` at each offset of a file of `size` bytes
/// whose other bytes are holes.
fn holey_file(path: &Path, size: u64, runs: &[(u64, usize)]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(path).unwrap();
    for (i, &(offset, len)) in runs.iter().enumerate() {
        f.seek(SeekFrom::Start(offset)).unwrap();
        let fill: Vec<u8> = (0..len).map(|j| (i * 31 + j % 251) as u8 | 1).collect();
        f.write_all(&fill).unwrap();
    }
    f.set_len(size).unwrap();
}

/// The files every format is tried on: a few holes, many regions (GNU
/// needs extension headers past four), all hole, and a hole at the end.
fn make_sources(dir: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(dir).unwrap();
    holey_file(
        &dir.join("holey"),
        4 << 20,
        &[(1_000_000, 5), (4_194_000, 3)],
    );
    let many: Vec<(u64, usize)> = (0..40).map(|i| (i * 65536 + 512, 700)).collect();
    holey_file(&dir.join("many"), 40 * 65536 + 100, &many);
    holey_file(&dir.join("all-hole"), 1 << 20, &[]);
    holey_file(&dir.join("tail-hole"), 300_000, &[(0, 70_000)]);
    vec!["holey", "many", "all-hole", "tail-hole"]
}

/// GNU tar's sparse archive of `files` in `src`.
fn gnu_tar(src: &Path, args: &[&str], files: &[&str], out: &Path) {
    let status = Command::new("tar")
        .args(args)
        .arg("--sparse")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(src)
        .args(files)
        .status()
        .unwrap();
    assert!(status.success());
}

fn sparse_members(tar: &[u8]) -> usize {
    // A sparse member in the merged tar would be a GNU `S` header or PAX
    // `GNU.sparse.*` records.
    let mut archive = tar::Archive::new(tar);
    let mut count = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let gnu = entry.header().entry_type() == EntryType::GNUSparse;
        let pax = entry.pax_extensions().unwrap().is_some_and(|mut records| {
            records.any(|r| r.unwrap().key_bytes().starts_with(b"GNU.sparse"))
        });
        count += usize::from(gnu || pax);
    }
    count
}

fn assert_same_files(dir: &Path, src: &Path, files: &[&str], what: &str) {
    for file in files {
        let got = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{what}: {file}: {e}"));
        let want = std::fs::read(src.join(file)).unwrap();
        assert!(got == want, "{what}: {file} differs from the source");
    }
}

fn tar_x(tar: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn run(mut command: Command, stdin: &Path) -> Output {
    command
        .stdin(std::fs::File::open(stdin).unwrap())
        .output()
        .unwrap()
}

/// The source files, and GNU tar's archive of them in each sparse format.
struct SparseArchives {
    scratch: Scratch,
    src: PathBuf,
    files: Vec<&'static str>,
    archives: Vec<(&'static str, PathBuf)>,
}

fn sparse_archives() -> SparseArchives {
    let scratch = Scratch::new();
    let src = scratch.path("src");
    let files = make_sources(&src);
    let archives = FORMATS
        .iter()
        .map(|(name, args)| {
            let layer = scratch.path(&format!("{name}.tar"));
            gnu_tar(&src, args, &files, &layer);
            (*name, layer)
        })
        .collect();
    SparseArchives {
        scratch,
        src,
        files,
        archives,
    }
}

#[test]
fn oci_merge_writes_every_sparse_form_as_plain_files() {
    let SparseArchives {
        scratch,
        src,
        files,
        archives,
    } = sparse_archives();
    for (name, layer) in &archives {
        let out = cmd("oci-merge").arg(layer).output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(sparse_members(&out.stdout), 0, "{name}: sparse member left");
        let merged = scratch.path(&format!("{name}.merged.tar"));
        std::fs::write(&merged, &out.stdout).unwrap();
        let unpacked = scratch.path(&format!("{name}.x"));
        tar_x(&merged, &unpacked);
        assert_same_files(&unpacked, &src, &files, &format!("oci-merge {name}"));
        let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        let mut want: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "{name}: real names, not GNUSparseFile.N");
    }
}

#[test]
fn tar2dir_unpacks_every_sparse_form() {
    let SparseArchives {
        scratch,
        src,
        files,
        archives,
    } = sparse_archives();
    for (name, layer) in &archives {
        let dest = scratch.path(&format!("{name}.dir"));
        let out = run(tool("tar2dir", &dest), layer);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_same_files(&dest, &src, &files, &format!("tar2dir {name}"));
    }
}

#[test]
fn tar2sqfs_builds_images_of_every_sparse_form() {
    let SparseArchives {
        scratch,
        src,
        files,
        archives,
    } = sparse_archives();
    for (name, layer) in &archives {
        let image = scratch.path(&format!("{name}.sqfs"));
        let out = run(tool("tar2sqfs", &image), layer);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let dest = scratch.path(&format!("{name}.unsquashed"));
        let status = Command::new("unsquashfs")
            .arg("-q")
            .arg("-d")
            .arg(&dest)
            .arg(&image)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_same_files(&dest, &src, &files, &format!("tar2sqfs {name}"));
    }
}

/// `tool ARG`, one of the workspace binaries.
fn tool(name: &str, arg: &Path) -> Command {
    let mut command = Command::new(bin(name));
    command.arg(arg);
    command
}

// ---------------------------------------------------------------------------
// Handmade maps.

/// A GNU `S` member: `regions` (offset, length) of a file of `real_size`
/// bytes, storing `stored` bytes of data. More than four regions go to
/// extension headers, as GNU tar writes them.
fn gnu_sparse_member(name: &str, real_size: u64, regions: &[(u64, u64)], stored: &[u8]) -> Vec<u8> {
    testkit::Layer::new()
        .gnu_sparse(name, real_size, regions, stored)
        .tar_without_end()
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A PAX sparse member (format 1.0 when `map_in_data`, else 0.1).
fn pax_sparse_member(
    name: &str,
    real_size: u64,
    regions: &[(u64, u64)],
    stored: &[u8],
    map_in_data: bool,
) -> Vec<u8> {
    let numbers: Vec<String> = regions
        .iter()
        .flat_map(|&(o, l)| [o.to_string(), l.to_string()])
        .collect();
    let mut records: Vec<(String, String)> = vec![("GNU.sparse.name".into(), name.into())];
    let mut data = Vec::new();
    if map_in_data {
        records.push(("GNU.sparse.major".into(), "1".into()));
        records.push(("GNU.sparse.minor".into(), "0".into()));
        records.push(("GNU.sparse.realsize".into(), real_size.to_string()));
        let map = format!("{}\n{}\n", regions.len(), numbers.join("\n"));
        push_padded(&mut data, map.as_bytes());
    } else {
        records.push(("GNU.sparse.major".into(), "0".into()));
        records.push(("GNU.sparse.minor".into(), "1".into()));
        records.push(("GNU.sparse.size".into(), real_size.to_string()));
        records.push(("GNU.sparse.numblocks".into(), regions.len().to_string()));
        records.push(("GNU.sparse.map".into(), numbers.join(",")));
    }
    data.extend_from_slice(stored);
    let mut pax = Vec::new();
    for (key, value) in &records {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        pax.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    let mut out = Vec::new();
    let mut x = ustar("PaxHeaders/f", EntryType::XHeader, pax.len() as u64);
    x.set_cksum();
    out.extend_from_slice(x.as_bytes());
    push_padded(&mut out, &pax);
    let mut h = ustar("GNUSparseFile.0/f", EntryType::Regular, data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    push_padded(&mut out, &data);
    out
}

fn ustar(name: &str, kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

fn with_end(mut member: Vec<u8>) -> Vec<u8> {
    member.extend_from_slice(&[0; 1024]);
    member
}

fn stored_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8 | 1).collect()
}

/// The expanded file of `regions` over `stored`.
fn expanded(real_size: u64, regions: &[(u64, u64)], stored: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; real_size as usize];
    let mut at = 0;
    for &(offset, length) in regions {
        let (o, l) = (offset as usize, length as usize);
        out[o..o + l].copy_from_slice(&stored[at..at + l]);
        at += l;
    }
    out
}

/// The map the review crafted: 64 KiB of data at 0, 100 bytes at 65586,
/// real size 65686 (a 50-byte hole between).
#[test]
fn a_crafted_map_with_a_hole_unpacks_with_the_hole() {
    let regions = [(0, 65536), (65586, 100)];
    let stored = stored_bytes(65636);
    let want = expanded(65686, &regions, &stored);
    for (form, member) in [
        ("gnu", gnu_sparse_member("f", 65686, &regions, &stored)),
        (
            "pax-0.1",
            pax_sparse_member("f", 65686, &regions, &stored, false),
        ),
        (
            "pax-1.0",
            pax_sparse_member("f", 65686, &regions, &stored, true),
        ),
    ] {
        let scratch = Scratch::new();
        let dest = scratch.path("out");
        let out = run_with_stdin(tool("tar2dir", &dest), &with_end(member.clone()));
        assert!(out.status.success(), "{form}: {}", stderr(&out));
        assert!(
            std::fs::read(dest.join("f")).unwrap() == want,
            "{form}: tar2dir wrote wrong bytes"
        );
        let layer = scratch.path("layer.tar");
        std::fs::write(&layer, with_end(member)).unwrap();
        let out = cmd("oci-merge").arg(&layer).output().unwrap();
        assert!(out.status.success(), "{form}: {}", stderr(&out));
        let mut archive = tar::Archive::new(&out.stdout[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().entry_type(), EntryType::Regular, "{form}");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        assert!(data == want, "{form}: oci-merge wrote wrong bytes");
    }
}

#[test]
fn many_regions_in_gnu_extension_headers() {
    // GNU tar ends a map whose file ends in a hole with an empty region at
    // the real size.
    let mut regions: Vec<(u64, u64)> = (0..60).map(|i| (i * 4096, 512)).collect();
    regions.push((60 * 4096 + 7, 0));
    let stored = stored_bytes(60 * 512);
    let want = expanded(60 * 4096 + 7, &regions, &stored);
    let member = with_end(gnu_sparse_member("f", 60 * 4096 + 7, &regions, &stored));
    let scratch = Scratch::new();
    let dest = scratch.path("out");
    let out = run_with_stdin(tool("tar2dir", &dest), &member);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(dest.join("f")).unwrap() == want);
    let image = scratch.path("f.sqfs");
    let out = run_with_stdin(tool("tar2sqfs", &image), &member);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("unsquashfs")
        .arg("-cat")
        .arg(&image)
        .arg("f")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == want, "tar2sqfs wrote wrong bytes");
}

/// Hostile maps: each is refused by every tool, with nothing left behind.
#[test]
fn hostile_maps_fail_cleanly_everywhere() {
    let data = stored_bytes(1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "gnu overlapping",
            gnu_sparse_member("f", 4096, &[(0, 512), (256, 512)], &data),
        ),
        (
            "gnu past the real size",
            gnu_sparse_member("f", 600, &[(0, 512), (512, 512)], &data),
        ),
        (
            "gnu map longer than the data",
            gnu_sparse_member("f", 8192, &[(0, 512), (1024, 512), (4096, 512)], &data),
        ),
        (
            "pax-0.1 overlapping",
            pax_sparse_member("f", 4096, &[(0, 512), (256, 512)], &data, false),
        ),
        (
            "pax-0.1 past the real size",
            pax_sparse_member("f", 600, &[(0, 512), (512, 512)], &data, false),
        ),
        (
            "pax-1.0 map longer than the data",
            pax_sparse_member(
                "f",
                8192,
                &[(0, 512), (1024, 512), (4096, 512)],
                &data,
                true,
            ),
        ),
        (
            "pax-1.0 past the real size",
            pax_sparse_member("f", 600, &[(0, 512), (512, 512)], &data, true),
        ),
    ];
    for (what, member) in cases {
        let tar = with_end(member);
        let scratch = Scratch::new();
        // tar2dir: fails, and DEST does not appear.
        let dest = scratch.path("dest");
        let out = run_with_stdin(tool("tar2dir", &dest), &tar);
        assert_clean_failure(what, "tar2dir", &out);
        assert!(!dest.exists(), "{what}: tar2dir left {}", dest.display());
        // tar2sqfs: fails, and OUT does not appear.
        let image = scratch.path("out.sqfs");
        let out = run_with_stdin(tool("tar2sqfs", &image), &tar);
        assert_clean_failure(what, "tar2sqfs", &out);
        assert!(!image.exists(), "{what}: tar2sqfs left an image");
        // oci-merge: fails, and its output has no end-of-archive marker.
        let layer = scratch.path("layer.tar");
        std::fs::write(&layer, &tar).unwrap();
        let out = cmd("oci-merge").arg(&layer).output().unwrap();
        assert_clean_failure(what, "oci-merge", &out);
        assert!(
            !out.stdout.ends_with(&[0; 1024]),
            "{what}: oci-merge ended its output cleanly"
        );
        assert_only_leftovers(scratch.0.path(), &["layer.tar"]);
    }
}

fn assert_clean_failure(what: &str, tool: &str, out: &Output) {
    let message = stderr(out);
    assert!(!out.status.success(), "{what}: {tool} succeeded");
    assert!(
        message.starts_with(&format!("{tool}: ")) && message.trim_end().lines().count() == 1,
        "{what}: {tool} should say one line: {message}"
    );
    assert!(message.contains("sparse"), "{what}: {tool}: {message}");
}

fn assert_only_leftovers(dir: &Path, allowed: &[&str]) {
    let left: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !allowed.iter().any(|a| p.ends_with(a)))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
