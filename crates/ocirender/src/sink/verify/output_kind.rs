//! What an output is: a directory (`tar2dir`), or an image file told by
//! its superblock's magic number (`tar2sqfs`, `tar2erofs`), and what each
//! keeps of a time.

use crate::error::{bail, err, Context, ErrorKind, Result};
use std::io::Read;
use std::path::Path;

/// squashfs's magic, at the start of the image ("hsqs").
const SQUASHFS_MAGIC: &[u8] = b"hsqs";
/// EROFS's magic (0xE0F5E1E2, little-endian), 1024 bytes in.
const EROFS_MAGIC: &[u8] = &[0xe2, 0xe1, 0xf5, 0xe0];
const EROFS_MAGIC_AT: usize = 1024;

/// The kinds of output the sinks make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A directory, as `tar2dir` makes it.
    Directory,
    /// A squashfs image (`tar2sqfs`).
    Squashfs,
    /// An EROFS image (`tar2erofs`).
    Erofs,
}

impl OutputKind {
    /// The kind's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Directory => "directory",
            OutputKind::Squashfs => "squashfs",
            OutputKind::Erofs => "EROFS",
        }
    }

    /// Whether the output keeps sub-second times: squashfs keeps whole
    /// seconds (a time is stored rounded down), a directory and EROFS
    /// nanoseconds.
    pub fn keeps_nanoseconds(self) -> bool {
        self != OutputKind::Squashfs
    }
}

/// Tells what `path` is (following a symlink to it, as a user naming it
/// means).
pub fn detect(path: &Path) -> Result<OutputKind> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot inspect", path.display()))?;
    if meta.is_dir() {
        return Ok(OutputKind::Directory);
    }
    if !meta.is_file() {
        bail!(
            kind = ErrorKind::Invalid,
            "{}: neither a directory nor an image file",
            path.display()
        );
    }
    let mut head = Vec::with_capacity(EROFS_MAGIC_AT + EROFS_MAGIC.len());
    std::fs::File::open(path)
        .and_then(|file| file.take(head.capacity() as u64).read_to_end(&mut head))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    from_magic(&head).ok_or_else(|| {
        err!(
            kind = ErrorKind::Invalid,
            "{}: neither a squashfs nor an EROFS image (no superblock magic)",
            path.display()
        )
    })
}

/// The image kind whose magic `head` (the file's first bytes) holds.
fn from_magic(head: &[u8]) -> Option<OutputKind> {
    if head.starts_with(SQUASHFS_MAGIC) {
        return Some(OutputKind::Squashfs);
    }
    let erofs = head.get(EROFS_MAGIC_AT..EROFS_MAGIC_AT + EROFS_MAGIC.len());
    (erofs == Some(EROFS_MAGIC)).then_some(OutputKind::Erofs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_told_by_their_magic() {
        let mut erofs = vec![0u8; 2048];
        erofs[1024..1028].copy_from_slice(EROFS_MAGIC);
        let cases: [(&[u8], Option<OutputKind>); 5] = [
            (b"hsqs\0\0\0\0", Some(OutputKind::Squashfs)),
            (&erofs, Some(OutputKind::Erofs)),
            (&erofs[..1027], None),
            (b"ustar", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(from_magic(head), want, "{:?}", &head[..head.len().min(8)]);
        }
    }
}
