//! A comparable description of a directory tree: what a root filesystem
//! is, as far as a container runtime can tell.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What to compare besides paths, types and contents.
#[derive(Clone, Copy)]
pub struct Compare {
    /// Owner, group and mode bits.
    pub ownership_and_modes: bool,
    /// Modification times of files and directories.
    pub mtimes: bool,
    /// Modes and modification times of symlinks too (some unpackers leave
    /// their times; Linux ignores their modes).
    pub symlinks: bool,
    /// Extended attributes.
    pub xattrs: bool,
}

impl Compare {
    /// Everything but the modes and times of symlinks.
    pub const ALL: Compare = Compare {
        ownership_and_modes: true,
        mtimes: true,
        symlinks: false,
        xattrs: true,
    };

    /// Everything.
    pub const EXACT: Compare = Compare {
        symlinks: true,
        ..Compare::ALL
    };
}

/// `relative path -> description` of every entry under `root` (not `root`
/// itself). Hard links show up as the first path of their inode.
pub fn snapshot(root: &Path, compare: Compare) -> BTreeMap<String, String> {
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut first_path_of_inode: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (rel, path) in entries {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let mut d = if ft.is_dir() {
            "dir".to_owned()
        } else if ft.is_symlink() {
            format!(
                "symlink -> {}",
                std::fs::read_link(&path).unwrap().display()
            )
        } else if ft.is_file() {
            let data = std::fs::read(&path).unwrap();
            format!(
                "file {} bytes sha256 {:x}",
                data.len(),
                Sha256::digest(&data)
            )
        } else if ft.is_fifo() {
            "fifo".to_owned()
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() { "char" } else { "block" };
            let rdev = meta.rdev();
            format!("{kind} {}:{}", libc_major(rdev), libc_minor(rdev))
        } else {
            "socket".to_owned()
        };
        if compare.ownership_and_modes {
            d += &format!(" {}:{}", meta.uid(), meta.gid());
            if compare.symlinks || !ft.is_symlink() {
                d += &format!(" mode {:o}", meta.mode() & 0o7777);
            }
        }
        if compare.mtimes && (compare.symlinks || !ft.is_symlink()) {
            d += &format!(" mtime {}", meta.mtime());
        }
        if compare.xattrs {
            // A squashfs image without any xattr says so (EOPNOTSUPP).
            let mut names: Vec<_> = match xattr::list(&path) {
                Ok(names) => names.collect(),
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Vec::new(),
                Err(e) => panic!("{}: cannot list xattrs: {e}", path.display()),
            };
            names.sort();
            for name in names.into_iter().filter(|n| n != "security.selinux") {
                let value = xattr::get(&path, &name).unwrap().unwrap_or_default();
                d += &format!(" xattr {}={}", name.to_string_lossy(), hex(&value));
            }
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let first = first_path_of_inode
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| rel.clone());
            d += &format!(" inode-of {first}");
        }
        out.insert(rel, d);
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let is_dir = entry.file_type().unwrap().is_dir();
        out.push((rel, path.clone()));
        if is_dir {
            walk(root, &path, out);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Asserts two snapshots are equal, showing only the differences.
pub fn assert_same_tree(
    actual: &BTreeMap<String, String>,
    expected: &BTreeMap<String, String>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => diffs.push(format!("missing {path}: {want}")),
            Some(got) if got != want => {
                diffs.push(format!("differs {path}:\n    got  {got}\n    want {want}"))
            }
            _ => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            diffs.push(format!("extra {path}: {got}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
