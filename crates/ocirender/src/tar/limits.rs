//! The bounds every tar reader puts on a header, checked before anything
//! the header describes is allocated.
//!
//! A layer of a few hundred bytes can describe a path of a million
//! components, a gigabyte-long name or a sparse map of millions of regions;
//! reading one whole costs memory and time out of all proportion to the
//! layer. Every reader (the merge, the image builders' stream check,
//! `tar2dir`) goes through [`crate::tar::entry::read_member`], which checks
//! what it returns against these limits, and through the vendored `tar`
//! crate, which enforces the two it must check before it reads:
//! [`Limit::ExtensionBytes`] and [`Limit::SparseRegions`].
//!
//! Every limit is far above what a real image holds, and most are the
//! limits of the Linux file systems the trees end up on: a name or link
//! the kernel would refuse is refused here, by every reader alike, instead
//! of being cut short by one image builder and refused by another.

use std::fmt;
use std::io;

/// Linux's `PATH_MAX`: a path, with its terminating NUL, fits in this.
const PATH_MAX: u64 = 4096;

/// One of the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Components of a path (`.` and empty ones not counted): 2048, the
    /// most a path within [`Limit::PathBytes`] can have (one-byte names
    /// and their slashes). Checked before the length, so that a deep path
    /// is called deep; the merge keeps a node per component.
    PathDepth,
    /// Bytes of a path once `.` and empty components are dropped: 4095,
    /// `PATH_MAX` less its NUL.
    PathBytes,
    /// Bytes of one component of a path: 255, Linux's `NAME_MAX`.
    NameBytes,
    /// Bytes of a symlink's target: 4095, `PATH_MAX` less its NUL, the
    /// longest target `symlink(2)` takes. (A hard link's target is a path,
    /// and has a path's limits.)
    SymlinkTargetBytes,
    /// Bytes of a GNU long name or long link member, or of a PAX extended
    /// header: 1 MiB (enforced by the vendored `tar` crate).
    ExtensionBytes,
    /// Regions in a sparse member's map, GNU `S` and PAX `GNU.sparse.*`
    /// alike: 65,536 (enforced for GNU maps by the vendored `tar` crate).
    SparseRegions,
    /// A numeric user or group id: at most 4294967294. 4294967295 is the
    /// `(uid_t)-1` that `chown(2)` reads as "leave unchanged", and larger
    /// ids do not fit Linux's 32-bit ids.
    Id,
    /// Bytes of an extended attribute's name (after `SCHILY.xattr.`): 255,
    /// Linux's `XATTR_NAME_MAX`.
    XattrNameBytes,
    /// Bytes of an extended attribute's value: 65,536, Linux's
    /// `XATTR_SIZE_MAX`. Both image formats would store a larger one that
    /// no kernel can read back, and a directory unpack could not set it.
    XattrValueBytes,
    /// Bytes of PAX records (xattrs, mostly) that the directories of one
    /// stream carry in all: 64 MiB. Directory entries are applied last
    /// (their times and modes only once nothing more is written inside
    /// them), so every reader holds them to the end of its stream; real
    /// images carry a few dozen bytes a directory (an SELinux label).
    HeldDirectoryRecords,
}

impl Limit {
    /// Every limit, in the order `--help` lists them.
    pub const ALL: [Limit; 10] = [
        Limit::PathBytes,
        Limit::PathDepth,
        Limit::NameBytes,
        Limit::SymlinkTargetBytes,
        Limit::ExtensionBytes,
        Limit::SparseRegions,
        Limit::Id,
        Limit::XattrNameBytes,
        Limit::XattrValueBytes,
        Limit::HeldDirectoryRecords,
    ];

    /// The largest value allowed.
    pub const fn max(self) -> u64 {
        match self {
            Limit::PathDepth => PATH_MAX / 2,
            Limit::PathBytes | Limit::SymlinkTargetBytes => PATH_MAX - 1,
            Limit::NameBytes => 255,
            Limit::ExtensionBytes => tar::MAX_EXTENSION_SIZE,
            Limit::SparseRegions => tar::MAX_SPARSE_REGIONS,
            Limit::Id => u32::MAX as u64 - 1,
            Limit::XattrNameBytes => 255,
            Limit::XattrValueBytes => 65536,
            Limit::HeldDirectoryRecords => 64 << 20,
        }
    }

    /// Fails with this limit's error if `found` is over it.
    pub fn check(self, subject: &'static str, found: u64) -> Result<(), LimitError> {
        if found > self.max() {
            return Err(LimitError {
                limit: self,
                subject,
                found,
            });
        }
        Ok(())
    }
}

/// A header that goes over a [`Limit`]; an `io::Error` of kind
/// `InvalidData` when one is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// The limit.
    pub limit: Limit,
    /// What went over it: `path`, `hard link target`, `uid`...
    pub subject: &'static str,
    /// Its size, count or value (for [`Limit::SparseRegions`], the count
    /// at which reading stopped, one over the limit).
    pub found: u64,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LimitError {
            limit,
            subject,
            found,
        } = self;
        let max = limit.max();
        match limit {
            Limit::PathDepth => write!(f, "{subject} has {found} components"),
            Limit::PathBytes
            | Limit::SymlinkTargetBytes
            | Limit::ExtensionBytes
            | Limit::XattrNameBytes
            | Limit::XattrValueBytes => write!(f, "{subject} is {found} bytes long"),
            Limit::HeldDirectoryRecords => write!(
                f,
                "{subject}, held until the end of the stream, pass {found} bytes"
            ),
            Limit::NameBytes => write!(f, "{subject} has a component of {found} bytes"),
            // Reading stops at the first region over the limit: how many
            // more there are is not known.
            Limit::SparseRegions => {
                return write!(f, "{subject} has more regions than the limit of {max}")
            }
            Limit::Id => write!(f, "{subject} {found} is out of range"),
        }?;
        write!(f, ", more than the limit of {max}")
    }
}

impl std::error::Error for LimitError {}

impl From<LimitError> for crate::error::Error {
    fn from(err: LimitError) -> crate::error::Error {
        crate::error::Error::new(crate::error::ErrorKind::Limit(err.limit), &err)
    }
}

impl From<LimitError> for io::Error {
    fn from(err: LimitError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

/// Checks an entry's name, or a hard link's target (`subject`), as the
/// path it becomes: its depth, its length and each component, counted
/// without `.` and empty components, and without allocating.
pub fn check_path(subject: &'static str, raw: &[u8]) -> Result<(), LimitError> {
    let mut depth = 0u64;
    let mut bytes = 0u64;
    let mut longest = 0u64;
    for name in raw.split(|&b| b == b'/') {
        if name.is_empty() || name == b"." {
            continue;
        }
        depth += 1;
        bytes += name.len() as u64 + u64::from(depth > 1);
        longest = longest.max(name.len() as u64);
    }
    Limit::PathDepth.check(subject, depth)?;
    Limit::PathBytes.check(subject, bytes)?;
    Limit::NameBytes.check(subject, longest)
}

/// Checks an extended attribute's name and value.
pub fn check_xattr(name: &[u8], value: &[u8]) -> Result<(), LimitError> {
    Limit::XattrNameBytes.check("xattr name", name.len() as u64)?;
    Limit::XattrValueBytes.check("xattr value", value.len() as u64)
}

/// Checks a symlink's target, which is stored as it is.
pub fn check_symlink_target(target: &[u8]) -> Result<(), LimitError> {
    Limit::SymlinkTargetBytes.check("symlink target", target.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_error(raw: &[u8]) -> Option<(Limit, u64)> {
        check_path("path", raw).err().map(|e| (e.limit, e.found))
    }

    #[test]
    fn paths_at_and_over_each_limit() {
        let deep_at = "a/".repeat(2047) + "a"; // 2048 components, 4095 bytes
        let deep_over = "a/".repeat(60000) + "a";
        let long_at = vec!["x".repeat(255); 16].join("/"); // 4095 bytes
        let long_over = long_at.clone() + "y";
        let dotted = "./".repeat(5000) + &"n".repeat(255);
        let name_over = "d/".to_owned() + &"n".repeat(256);
        let cases: &[(&str, Option<(Limit, u64)>)] = &[
            ("a/b/c", None),
            (&deep_at, None),
            (&long_at, None),
            (&dotted, None), // `.` and empty components are not counted
            (&deep_over, Some((Limit::PathDepth, 60001))),
            (&long_over, Some((Limit::PathBytes, 4096))),
            (&name_over, Some((Limit::NameBytes, 256))),
        ];
        for (raw, want) in cases {
            assert_eq!(path_error(raw.as_bytes()), *want, "{:.40}", raw);
        }
    }

    #[test]
    fn xattrs_at_and_over_their_limits() {
        assert!(check_xattr(&[b'n'; 255], &[0; 65536]).is_ok());
        let name = check_xattr(&[b'n'; 256], b"").unwrap_err();
        assert_eq!((name.limit, name.found), (Limit::XattrNameBytes, 256));
        let value = check_xattr(b"user.x", &[0; 65537]).unwrap_err();
        assert_eq!((value.limit, value.found), (Limit::XattrValueBytes, 65537));
    }

    #[test]
    fn symlink_targets_and_ids() {
        assert!(check_symlink_target(&[b't'; 4095]).is_ok());
        let over = check_symlink_target(&[b't'; 4096]).unwrap_err();
        assert_eq!((over.limit, over.found), (Limit::SymlinkTargetBytes, 4096));
        assert!(Limit::Id.check("uid", 4294967294).is_ok());
        for id in [4294967295, 4294967296, u64::MAX] {
            assert!(Limit::Id.check("uid", id).is_err(), "{id}");
        }
    }

    #[test]
    fn messages_name_the_limit() {
        let cases = [
            (
                Limit::PathDepth,
                "path",
                60001,
                "path has 60001 components, more than the limit of 2048",
            ),
            (
                Limit::PathBytes,
                "path",
                5000,
                "path is 5000 bytes long, more than the limit of 4095",
            ),
            (
                Limit::NameBytes,
                "path",
                256,
                "path has a component of 256 bytes, more than the limit of 255",
            ),
            (
                Limit::SymlinkTargetBytes,
                "symlink target",
                4096,
                "symlink target is 4096 bytes long, more than the limit of 4095",
            ),
            (
                Limit::SparseRegions,
                "sparse map",
                65537,
                "sparse map has more regions than the limit of 65536",
            ),
            (
                Limit::Id,
                "gid",
                4294967295,
                "gid 4294967295 is out of range, more than the limit of 4294967294",
            ),
        ];
        for (limit, subject, found, want) in cases {
            let err = limit.check(subject, found).unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
        }
    }
}
