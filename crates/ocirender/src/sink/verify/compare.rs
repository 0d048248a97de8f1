//! One path's metadata, as the sinks store an entry, against what the
//! output holds: type (and device numbers), mode, owner, time at the
//! output's precision, and extended attributes under the names the sinks
//! give them (`stored_name`: some dropped, overlayfs's escaped).

use super::difference::{Difference, DifferenceKind};
use super::found::{Found, Xattrs};
use super::words;
use crate::sink::times::{modification_time, Time};
use crate::sink::xattrs::stored_name;
use crate::tar::entry::{EntryMeta, Kind};
use rustix::fs::FileType;

/// The mode of every symlink on Linux, whatever the stream says.
const SYMLINK_MODE: u32 = 0o777;

/// The file type an entry makes (a hard link: its target's, checked
/// apart).
pub fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Regular | Kind::HardLink => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::CharDevice => FileType::CharacterDevice,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::Directory => FileType::Directory,
        Kind::Fifo => FileType::Fifo,
    }
}

/// `kind` in words, as a difference line shows it.
pub fn expected_words(meta: &EntryMeta) -> String {
    words::file_type(file_type(meta.kind), meta.device)
}

/// A type difference, if the output has another type (or other device
/// numbers) at `path`.
pub fn file_types(path: &[u8], meta: &EntryMeta, found: &Found) -> Option<Difference> {
    let expected = file_type(meta.kind);
    let is_device = matches!(meta.kind, Kind::CharDevice | Kind::BlockDevice);
    let same = found.file_type == expected && (!is_device || found.device == meta.device);
    (!same).then(|| Difference {
        path: path.to_vec(),
        kind: DifferenceKind::Type,
        expected: expected_words(meta),
        found: words::file_type(found.file_type, found.device),
    })
}

/// Mode, owner, time and extended attributes (the type being the same).
pub fn attributes(
    path: &[u8],
    meta: &EntryMeta,
    found: &Found,
    found_xattrs: &Xattrs,
    keeps_nanoseconds: bool,
) -> Vec<Difference> {
    let difference = |kind, expected: String, found: String| Difference {
        path: path.to_vec(),
        kind,
        expected,
        found,
    };
    let mut differences = Vec::new();
    let mode = match meta.kind {
        Kind::Symlink => SYMLINK_MODE,
        _ => meta.mode & 0o7777,
    };
    if mode != found.mode {
        let (expected, found) = (words::mode(mode), words::mode(found.mode));
        differences.push(difference(DifferenceKind::Mode, expected, found));
    }
    if (meta.uid, meta.gid) != (found.uid, found.gid) {
        let expected = words::owner(meta.uid, meta.gid);
        let found = words::owner(found.uid, found.gid);
        differences.push(difference(DifferenceKind::Owner, expected, found));
    }
    let expected_time = at_precision(modification_time(meta), keeps_nanoseconds);
    let found_time = at_precision(found.mtime, keeps_nanoseconds);
    if expected_time != found_time {
        let (expected, found) = (words::time(expected_time), words::time(found_time));
        differences.push(difference(DifferenceKind::Mtime, expected, found));
    }
    for (name, expected, found) in xattr_differences(&stored_xattrs(meta), found_xattrs) {
        let expected = words::xattr(&name, expected);
        let found = words::xattr(&name, found);
        differences.push(difference(DifferenceKind::Xattr, expected, found));
    }
    differences
}

/// The attributes the sinks store for the entry, under their stored names.
pub fn stored_xattrs(meta: &EntryMeta) -> Xattrs {
    meta.xattrs()
        .filter_map(|(name, value)| Some((stored_name(name, meta.kind)?, value.to_vec())))
        .collect()
}

/// An attribute's name, the value expected and the value found.
type XattrDifference<'a> = (Vec<u8>, Option<&'a [u8]>, Option<&'a [u8]>);

/// Each attribute whose value differs.
fn xattr_differences<'a>(expected: &'a Xattrs, found: &'a Xattrs) -> Vec<XattrDifference<'a>> {
    let names: std::collections::BTreeSet<&Vec<u8>> = expected.keys().chain(found.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let want = expected.get(name).map(Vec::as_slice);
            let have = found.get(name).map(Vec::as_slice);
            (want != have).then(|| (name.clone(), want, have))
        })
        .collect()
}

/// `time` as an output keeping whole seconds stores it: rounded down.
fn at_precision(time: Time, keeps_nanoseconds: bool) -> Time {
    match keeps_nanoseconds {
        true => time,
        false => Time {
            nanoseconds: 0,
            ..time
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::entry::PaxRecord;

    fn found(meta: &EntryMeta) -> Found {
        Found {
            file_type: file_type(meta.kind),
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: modification_time(meta),
            size: meta.size,
            inode: (1, 1),
            links: 1,
            device: meta.device,
        }
    }

    fn file() -> EntryMeta {
        EntryMeta {
            kind: Kind::Regular,
            mode: 0o644,
            mtime: 100,
            ..EntryMeta::implicit_dir()
        }
    }

    fn kinds(differences: &[Difference]) -> Vec<&'static str> {
        differences.iter().map(|d| d.kind.name()).collect()
    }

    #[test]
    fn what_each_output_keeps_of_a_time() {
        let mut meta = file();
        meta.pax.push(PaxRecord {
            key: b"mtime".to_vec(),
            value: b"100.5".to_vec(),
        });
        let whole_seconds = Found {
            mtime: Time {
                seconds: 100,
                nanoseconds: 0,
            },
            ..found(&meta)
        };
        let none = Xattrs::new();
        assert!(attributes(b"f", &meta, &whole_seconds, &none, false).is_empty());
        let differences = attributes(b"f", &meta, &whole_seconds, &none, true);
        assert_eq!(
            differences[0].to_string(),
            "f: mtime: expected 100.500000000, found 100"
        );
    }

    #[test]
    fn attributes_compare_under_their_stored_names() {
        let mut meta = file();
        for (name, value) in [
            ("security.selinux", "label"),
            ("trusted.overlay.opaque", "y"),
        ] {
            meta.pax.push(PaxRecord {
                key: format!("SCHILY.xattr.{name}").into_bytes(),
                value: value.as_bytes().to_vec(),
            });
        }
        let stored: Xattrs = [(b"trusted.overlay.overlay.opaque".to_vec(), b"y".to_vec())].into();
        assert!(attributes(b"f", &meta, &found(&meta), &stored, true).is_empty());
        let differences = attributes(b"f", &meta, &found(&meta), &Xattrs::new(), true);
        assert_eq!(
            differences[0].to_string(),
            "f: xattr: expected trusted.overlay.overlay.opaque=\"y\", found no trusted.overlay.overlay.opaque"
        );
    }

    #[test]
    fn each_attribute_is_its_own_difference() {
        let meta = file();
        let other = Found {
            mode: 0o600,
            uid: 1,
            mtime: Time {
                seconds: 5,
                nanoseconds: 0,
            },
            ..found(&meta)
        };
        let differences = attributes(b"f", &meta, &other, &Xattrs::new(), true);
        assert_eq!(kinds(&differences), ["mode", "owner", "mtime"]);
        let symlink = EntryMeta {
            kind: Kind::Symlink,
            mode: 0o644,
            ..file()
        };
        let linux_symlink = Found {
            mode: 0o777,
            ..found(&symlink)
        };
        assert!(attributes(b"l", &symlink, &linux_symlink, &Xattrs::new(), true).is_empty());
        let device = EntryMeta {
            kind: Kind::CharDevice,
            device: (1, 3),
            ..file()
        };
        let other_numbers = Found {
            device: (1, 5),
            ..found(&device)
        };
        assert_eq!(
            file_types(b"d", &device, &other_numbers)
                .unwrap()
                .to_string(),
            "d: type: expected a character device 1:3, found a character device 1:5"
        );
    }
}
