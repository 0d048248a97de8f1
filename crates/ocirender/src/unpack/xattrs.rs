//! Which extended attributes an unpacked tree receives, and under what name.
//!
//! `security.selinux` labels and NFSv4 ACLs describe the machine that built
//! the image, not the one unpacking it, and are skipped. overlayfs keeps
//! its own state in `trusted.overlay.*` / `user.overlay.*`; an image's
//! attributes of that name are escaped the way overlayfs escapes them
//! (`trusted.overlay.overlay.*`), so the tree can serve as a lower layer.

/// The name to set for an xattr from the archive, or `None` to skip it.
pub fn host_name(name: &[u8]) -> Option<Vec<u8>> {
    if name == b"security.selinux" || name == b"system.nfs4_acl" {
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
        assert_eq!(host_name(b"security.selinux"), None);
        assert_eq!(host_name(b"system.nfs4_acl"), None);
        assert_eq!(
            host_name(b"security.capability").unwrap(),
            b"security.capability"
        );
        assert_eq!(
            host_name(b"trusted.overlay.opaque").unwrap(),
            b"trusted.overlay.overlay.opaque"
        );
        assert_eq!(
            host_name(b"user.overlay.redirect").unwrap(),
            b"user.overlay.overlay.redirect"
        );
        assert_eq!(host_name(b"user.comment").unwrap(), b"user.comment");
    }
}
