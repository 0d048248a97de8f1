//! A merge that fails part-way must leave a stream that every common tar
//! reader refuses, wherever in a layer the failure strikes: inside a
//! header, a GNU long-name or PAX record, member data or padding, or
//! between members. Each case runs the real `oci-merge` on a layer cut at
//! one point (declared with the digest of the whole layer, so that a cut
//! at a member boundary fails too) and feeds what it wrote to the readers:
//! the `tar` crate and Python's `tarfile` at every cut point, GNU tar,
//! bsdtar, busybox tar, `python3 -m tarfile` and `mksquashfs -tar` at one
//! or two cut points of each kind.

mod support;

use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{cmd, fixtures, run_with_stdin, stderr, Scratch};
use tar::{EntryType, Header};
use testkit::{Layer, Raw};

const BLOCK: usize = 512;

/// What the first missing byte of a cut layer is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The first byte of a header: the layer stops between members.
    Boundary,
    Header,
    LongNameHeader,
    LongName,
    PaxHeader,
    PaxRecords,
    Data,
    Padding,
    EndMarker,
}

/// The parts of a tar, in order: (start, end, kind of its bytes).
fn regions(tar: &[u8]) -> Vec<(usize, usize, Kind)> {
    let mut regions = Vec::new();
    let mut pos = 0;
    while pos + BLOCK <= tar.len() {
        let block = &tar[pos..pos + BLOCK];
        if block.iter().all(|&b| b == 0) {
            regions.push((pos, tar.len(), Kind::EndMarker));
            break;
        }
        let header = Header::from_byte_slice(block);
        let size = header.entry_size().unwrap() as usize;
        let (header_kind, data_kind) = match header.entry_type() {
            EntryType::GNULongName => (Kind::LongNameHeader, Kind::LongName),
            EntryType::XHeader => (Kind::PaxHeader, Kind::PaxRecords),
            _ => (Kind::Header, Kind::Data),
        };
        regions.push((pos, pos + BLOCK, header_kind));
        pos += BLOCK;
        let padded = size.div_ceil(BLOCK) * BLOCK;
        if size > 0 {
            regions.push((pos, pos + size, data_kind));
        }
        if padded > size {
            regions.push((pos + size, pos + padded, Kind::Padding));
        }
        pos += padded;
    }
    regions
}

/// The points to cut `tar` at, each with the kind of the first byte lost:
/// every block boundary; every byte of the first part of each kind in
/// `every_byte`; the first, second, middle and last byte of every other
/// part.
fn cut_points(tar: &[u8], every_byte: &[Kind]) -> BTreeMap<usize, Kind> {
    let regions = regions(tar);
    let kind_at = |offset: usize| {
        let &(start, _, kind) = regions
            .iter()
            .find(|&&(start, end, _)| (start..end).contains(&offset))
            .unwrap();
        let header = matches!(
            kind,
            Kind::Header | Kind::LongNameHeader | Kind::PaxHeader | Kind::EndMarker
        );
        if header && offset == start {
            Kind::Boundary
        } else {
            kind
        }
    };
    let mut offsets: BTreeSet<usize> = (0..tar.len()).step_by(BLOCK).collect();
    let mut seen: BTreeSet<Kind> = BTreeSet::new();
    for &(start, end, kind) in &regions {
        if every_byte.contains(&kind) && seen.insert(kind) {
            offsets.extend(start..end);
        } else {
            offsets.extend([start, start + 1, (start + end) / 2, end - 1]);
        }
    }
    offsets
        .into_iter()
        .filter(|&o| o < tar.len())
        .map(|o| (o, kind_at(o)))
        .collect()
}

/// A layer written for this test: a directory, a symlink and a hard link,
/// a GNU long name, a PAX header with a long name and an xattr, data of
/// one block, of several blocks and of part of one (padding), a whiteout.
fn crafted_layer() -> Vec<u8> {
    let long = |c: &str| format!("srv/{}", c.repeat(150));
    let data: Vec<u8> = (0..1300u32).map(|i| (i % 251) as u8 + 1).collect();
    Layer::new()
        .dir("srv")
        .file("srv/a", b"hello")
        .raw(
            long("g").as_bytes(),
            Raw {
                data: &data[..700],
                gnu_long_name: true,
                ..Raw::default()
            },
        )
        .raw(
            long("p").as_bytes(),
            Raw {
                data: &data[..1024],
                pax: vec![("SCHILY.xattr.user.origin", b"ocirender test")],
                ..Raw::default()
            },
        )
        .symlink("srv/link", "a")
        .hardlink("srv/hard", "srv/a")
        .file("srv/block", &data[..512])
        .whiteout("srv/gone")
        .file("srv/z", &data)
        .tar()
}

/// The sample image's layers (umoci), uncompressed, smallest first.
fn sample_layers() -> Vec<(Vec<u8>, Vec<u8>)> {
    let blobs = fixtures::sample_layout().join("blobs/sha256");
    let mut layers: Vec<(Vec<u8>, Vec<u8>)> = std::fs::read_dir(blobs)
        .unwrap()
        .filter_map(|entry| {
            let stored = std::fs::read(entry.unwrap().path()).unwrap();
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&stored[..])
                .read_to_end(&mut tar)
                .ok()?;
            Some((stored, tar))
        })
        .collect();
    layers.sort_by_key(|(_, tar)| tar.len());
    layers
}

/// The smallest umoci layer with a PAX header.
fn umoci_layer_with_pax() -> Vec<u8> {
    sample_layers()
        .into_iter()
        .map(|(_, tar)| tar)
        .find(|tar| regions(tar).iter().any(|r| r.2 == Kind::PaxHeader))
        .expect("the sample image has a layer with a PAX header")
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// One abandoned stream: what `oci-merge` wrote for a layer that failed.
struct Abandoned {
    /// What the case is, for messages.
    what: String,
    /// The merged output, in a file.
    output: PathBuf,
    /// The kind of cut, or `None` for a case of its own.
    kind: Option<Kind>,
}

/// Runs `oci-merge` on `stored` declared as a layer of `digest`, checks
/// that it fails, and keeps its output as `name`.
fn merge_failing(s: &Scratch, name: &str, stored: &[u8], digest: &str) -> PathBuf {
    let layer = s.write(&format!("{name}.layer"), stored);
    let line = format!("{layer}\tdigest=sha256:{digest}\n");
    let out = run_with_stdin(cmd("oci-merge"), line.as_bytes());
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: oci-merge: {message}");
    assert!(
        message.starts_with("oci-merge: error: layer 1/1") && message.lines().count() == 1,
        "{name}: {message}"
    );
    let output = s.path(&format!("{name}.out"));
    std::fs::write(&output, &out.stdout).unwrap();
    output
}

/// Cuts `tar` at each point and merges what is left.
fn merge_cuts(s: &Scratch, label: &str, tar: &[u8], every_byte: &[Kind]) -> Vec<Abandoned> {
    let digest = sha256_hex(tar);
    cut_points(tar, every_byte)
        .into_iter()
        .map(|(offset, kind)| Abandoned {
            what: format!("{label} cut at byte {offset} ({kind:?})"),
            output: merge_failing(s, &format!("{label}-{offset}"), &tar[..offset], &digest),
            kind: Some(kind),
        })
        .collect()
}

/// Why the `tar` crate refuses `bytes`, or `None` if it reads them to a
/// clean end, reading every member's data (or skipping it with seeks).
fn tar_crate_error(bytes: &[u8], seek: bool) -> Option<String> {
    let mut archive = tar::Archive::new(std::io::Cursor::new(bytes));
    let entries = if seek {
        archive.entries_with_seek()
    } else {
        archive.entries()
    };
    let result = entries.and_then(|entries| {
        for entry in entries {
            let mut entry = entry?;
            if !seek {
                std::io::copy(&mut entry, &mut std::io::sink())?;
            }
        }
        Ok(())
    });
    result.err().map(|e| e.to_string())
}

/// Python's `tarfile` on many archives at once: lists each (`r`, seeking
/// over data), reads every member (`r`), and reads it as a stream (`r|`).
/// Prints `ACCEPTED MODE PATH` for each way that raised nothing.
const PYTHON_READER: &str = r#"
import sys, tarfile
def read(path, mode, data):
    with tarfile.open(path, mode) as archive:
        for member in archive:
            if data and member.isreg():
                archive.extractfile(member).read()
for path in sys.stdin.read().splitlines():
    for mode, data in (("r", False), ("r", True), ("r|", True)):
        try:
            read(path, mode, data)
        except Exception:
            continue
        print("ACCEPTED", mode, "data" if data else "list", path)
"#;

fn python_acceptances(outputs: &[&Path]) -> String {
    let list: String = outputs
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    let mut python = Command::new(PYTHON);
    python.args(["-c", PYTHON_READER]);
    let out = run_with_stdin(python, list.as_bytes());
    assert!(out.status.success(), "python3: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Debian's Python (a `python3` first on PATH may be another).
const PYTHON: &str = "/usr/bin/python3";

/// The external readers, each a shell command on `$1` (the archive) run in
/// an empty directory; each must exit with an error status.
const EXTERNAL_READERS: &[(&str, &str)] = &[
    ("GNU tar -t", "tar -tf \"$1\""),
    ("GNU tar -x", "tar -xf \"$1\""),
    ("GNU tar -x from a pipe", "tar -xf - < \"$1\""),
    ("bsdtar -t", "bsdtar -tf \"$1\""),
    ("bsdtar -x", "bsdtar -xf \"$1\""),
    ("busybox tar -t", "busybox tar -tf \"$1\""),
    ("busybox tar -x", "busybox tar -xf \"$1\""),
    ("busybox tar -x from a pipe", "busybox tar -xf - < \"$1\""),
    (
        "python3 -m tarfile -l",
        "/usr/bin/python3 -m tarfile -l \"$1\"",
    ),
    (
        "python3 -m tarfile -e",
        "/usr/bin/python3 -m tarfile -e \"$1\" out",
    ),
    (
        "mksquashfs -tar",
        "mksquashfs - img.sqfs -tar -noappend -quiet -no-progress < \"$1\"",
    ),
];

/// The readers that skip member data by seeking on a file, and so cannot
/// see that a stream ends inside a member's data.
const SEEKING_READERS: &[&str] = &["busybox tar -t"];

/// Runs every external reader on `case`; returns the ones that exited 0
/// (or were killed by a signal, which is a crash, not a refusal).
fn external_acceptances(case: &Abandoned) -> Vec<String> {
    EXTERNAL_READERS
        .iter()
        .filter_map(|&(name, script)| {
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new("bash")
                .args(["-c", script, "reader"])
                .arg(&case.output)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
            assert_ne!(out.status.code(), Some(127), "{name} is not installed");
            let refused = out.status.code().is_some_and(|c| c != 0);
            (!refused).then(|| format!("{name}: {}", case.what))
        })
        .collect()
}

/// One or two cases of each kind of cut: the first and the middle one.
fn representatives(cases: &[Abandoned]) -> Vec<&Abandoned> {
    let mut by_kind: BTreeMap<Kind, Vec<&Abandoned>> = BTreeMap::new();
    for case in cases {
        by_kind.entry(case.kind.unwrap()).or_default().push(case);
    }
    let mut chosen: Vec<&Abandoned> = Vec::new();
    for of_kind in by_kind.values() {
        chosen.push(of_kind[0]);
        if of_kind.len() > 2 {
            chosen.push(of_kind[of_kind.len() / 2]);
        }
    }
    chosen
}

/// Every reader refuses every stream `cases` left.
fn assert_every_reader_refuses(cases: &[Abandoned], external: &[&Abandoned]) {
    let mut accepted = Vec::new();
    for case in cases {
        let bytes = std::fs::read(&case.output).unwrap();
        for seek in [false, true] {
            if tar_crate_error(&bytes, seek).is_none() {
                accepted.push(format!("the tar crate (seek: {seek}): {}", case.what));
            }
        }
    }
    let outputs: Vec<&Path> = cases.iter().map(|c| c.output.as_path()).collect();
    let python = python_acceptances(&outputs);
    accepted.extend(python.lines().map(str::to_owned));
    for case in external {
        accepted.extend(external_acceptances(case));
    }
    assert!(
        accepted.is_empty(),
        "{} acceptances of an abandoned stream, e.g.:\n{}",
        accepted.len(),
        accepted[..accepted.len().min(30)].join("\n")
    );
}

#[test]
fn a_layer_written_for_the_test_cut_anywhere() {
    let s = Scratch::new();
    let tar = crafted_layer();
    let every_byte = [
        Kind::Header,
        Kind::LongNameHeader,
        Kind::LongName,
        Kind::PaxHeader,
        Kind::PaxRecords,
    ];
    let cases = merge_cuts(&s, "crafted", &tar, &every_byte);
    let kinds: BTreeSet<Kind> = cases.iter().filter_map(|c| c.kind).collect();
    assert_eq!(kinds.len(), 9, "every kind of cut is tried: {kinds:?}");
    assert!(cases.len() > 1500, "{} cut points", cases.len());
    assert_every_reader_refuses(&cases, &representatives(&cases));
}

#[test]
fn a_umoci_layer_cut_anywhere() {
    let s = Scratch::new();
    let tar = umoci_layer_with_pax();
    let cases = merge_cuts(&s, "umoci", &tar, &[Kind::PaxHeader, Kind::PaxRecords]);
    assert!(cases.iter().any(|c| c.kind == Some(Kind::PaxRecords)));
    assert_every_reader_refuses(&cases, &representatives(&cases));
}

/// What a registry blob with one flipped byte, or cut short, gives: the
/// gzip stream fails (or the digest does) somewhere inside the largest
/// layer of the sample image.
#[test]
fn a_damaged_compressed_layer() {
    let s = Scratch::new();
    let (stored, _) = sample_layers().pop().unwrap();
    let digest = sha256_hex(&stored);
    let mut cases = Vec::new();
    for (name, at) in [("flipped-middle", 2), ("flipped-late", 4)] {
        let mut damaged = stored.clone();
        let i = damaged.len() * (at - 1) / at;
        damaged[i] ^= 0x20;
        let output = merge_failing(&s, name, &damaged, &digest);
        cases.push(Abandoned {
            what: format!("a byte flipped at {i} of {}", stored.len()),
            output,
            kind: None,
        });
    }
    for at in [3, 2] {
        let cut = stored.len() / at;
        let name = format!("compressed-cut-{cut}");
        let output = merge_failing(&s, &name, &stored[..cut], &digest);
        cases.push(Abandoned {
            what: format!("the gzip blob cut at byte {cut} of {}", stored.len()),
            output,
            kind: None,
        });
    }
    let all: Vec<&Abandoned> = cases.iter().collect();
    assert_every_reader_refuses(&cases, &all);
}

/// A cut with more of the member missing than the writer completes: the
/// stream then ends inside the member's declared data, which every reader
/// that reads data refuses. Readers that seek past data on a file (busybox
/// `tar -t`, the `tar` crate's `entries_with_seek`) cannot see it there:
/// they are left out here.
#[test]
fn a_cut_in_a_member_too_large_to_complete() {
    let s = Scratch::new();
    let declared = 1u64 << 30;
    let mut header = Header::new_ustar();
    header.set_path("big").unwrap();
    header.set_mode(0o644);
    header.set_size(declared);
    header.set_cksum();
    let given = 1 << 20;
    let tar = Layer::new()
        .file("a", b"hello")
        .append_bytes(header.as_bytes())
        .append_bytes(&testkit::noise(1, given))
        .tar_without_end();
    let output = merge_failing(&s, "big", &tar, &sha256_hex(b"a whole layer"));
    let bytes = std::fs::read(&output).unwrap();
    assert!(bytes.len() < 2 * given, "{} bytes written", bytes.len());
    let case = Abandoned {
        what: format!("a {declared}-byte member cut after {given} bytes"),
        output,
        kind: None,
    };
    assert!(tar_crate_error(&bytes, false).is_some());
    assert_eq!(python_acceptances(&[&case.output]), "");
    let accepted: Vec<String> = external_acceptances(&case)
        .into_iter()
        .filter(|a| {
            !SEEKING_READERS
                .iter()
                .any(|r| a.starts_with(&format!("{r}:")))
        })
        .collect();
    assert!(accepted.is_empty(), "{accepted:?}");
}

/// The readers are not refusing everything: a complete merge of the same
/// layers is read by each of them.
#[test]
fn the_readers_accept_a_complete_merge() {
    let s = Scratch::new();
    let mut cases = Vec::new();
    for (name, tar) in [
        ("crafted", crafted_layer()),
        ("umoci", umoci_layer_with_pax()),
    ] {
        let layer = s.write(&format!("{name}.tar"), &tar);
        let line = format!("{layer}\tdigest=sha256:{}\n", sha256_hex(&tar));
        let out = run_with_stdin(cmd("oci-merge"), line.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        let output = s.path(&format!("{name}.out"));
        std::fs::File::create(&output)
            .unwrap()
            .write_all(&out.stdout)
            .unwrap();
        assert_eq!(tar_crate_error(&out.stdout, false), None);
        assert_eq!(tar_crate_error(&out.stdout, true), None);
        cases.push(Abandoned {
            what: name.to_owned(),
            output,
            kind: None,
        });
    }
    let outputs: Vec<&Path> = cases.iter().map(|c| c.output.as_path()).collect();
    let accepted = python_acceptances(&outputs);
    assert_eq!(accepted.lines().count(), 3 * cases.len(), "{accepted}");
    for case in &cases {
        let accepted = external_acceptances(case);
        assert_eq!(accepted.len(), EXTERNAL_READERS.len(), "{accepted:?}");
    }
}
