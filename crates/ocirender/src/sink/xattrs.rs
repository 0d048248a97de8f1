//! Which extended attributes a tree receives, and under what name: one
//! rule for every sink, so a directory unpack and both images carry the
//! same attributes.
//!
//! * `security.selinux` labels and NFSv4 ACLs describe the machine that
//!   built the image, not the one using it, and are skipped;
//! * `user.*` attributes exist only on regular files and directories
//!   (xattr(7)): Linux neither sets nor reads them on a symlink, a device
//!   or a FIFO, so they are skipped there (an image that stored them would
//!   list names no one can read);
//! * overlayfs keeps its own state in `trusted.overlay.*` and
//!   `user.overlay.*` (an "opaque" directory hides what lies below it, a
//!   "redirect" sends lookups elsewhere): an image's attributes of that
//!   name are escaped the way overlayfs escapes them
//!   (`trusted.overlay.overlay.*`), so the tree can serve as a lower layer
//!   and overlayfs shows them under their own names.

use crate::tar::entry::Kind;

/// The name under which an entry of kind `kind` keeps the xattr `name`
/// from the archive, or `None` to skip it.
pub fn stored_name(name: &[u8], kind: Kind) -> Option<Vec<u8>> {
    if name == b"security.selinux" || name == b"system.nfs4_acl" {
        return None;
    }
    if name.starts_with(b"user.") && !matches!(kind, Kind::Regular | Kind::Directory) {
        return None;
    }
    for prefix in [&b"trusted.overlay."[..], b"user.overlay."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return Some([prefix, b"overlay.", rest].concat());
        }
    }
    Some(name.to_vec())
}

/// True for namespaces only a privileged process may write.
pub fn needs_privilege(name: &[u8]) -> bool {
    name.starts_with(b"security.") || name.starts_with(b"trusted.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_host_specific_and_escapes_overlay() {
        let file = |name: &[u8]| stored_name(name, Kind::Regular);
        assert_eq!(file(b"security.selinux"), None);
        assert_eq!(file(b"system.nfs4_acl"), None);
        assert_eq!(
            file(b"security.capability").unwrap(),
            b"security.capability"
        );
        assert_eq!(
            file(b"trusted.overlay.opaque").unwrap(),
            b"trusted.overlay.overlay.opaque"
        );
        assert_eq!(
            file(b"user.overlay.redirect").unwrap(),
            b"user.overlay.overlay.redirect"
        );
        assert_eq!(file(b"user.comment").unwrap(), b"user.comment");
    }

    #[test]
    fn user_attributes_only_on_files_and_directories() {
        for (kind, kept) in [
            (Kind::Regular, true),
            (Kind::Directory, true),
            (Kind::Symlink, false),
            (Kind::CharDevice, false),
            (Kind::BlockDevice, false),
            (Kind::Fifo, false),
        ] {
            assert_eq!(stored_name(b"user.a", kind).is_some(), kept, "{kind:?}");
            assert_eq!(
                stored_name(b"user.overlay.a", kind).is_some(),
                kept,
                "{kind:?}"
            );
            assert_eq!(
                stored_name(b"trusted.overlay.origin", kind).unwrap(),
                b"trusted.overlay.overlay.origin",
                "{kind:?}"
            );
        }
    }
}
