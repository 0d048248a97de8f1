//! Images read back through the kernel: a read-only loop mount (as root),
//! which is what a user of the image sees.

use std::path::Path;
use std::process::Command;

/// An image mounted read-only through a loop device; unmounted when
/// dropped, also when the test fails.
pub struct Mounted {
    dir: tempfile::TempDir,
}

impl Mounted {
    /// Mounts `image`, a `fs_type` (`squashfs`, `erofs`) image.
    pub fn new(fs_type: &str, image: &Path) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", fs_type, "-o", "ro,loop"])
            .arg(image)
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t {fs_type} -o ro,loop {} failed (root and a {fs_type} kernel needed): {}",
            image.display(),
            super::stderr(&out)
        );
        Mounted { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Metadata of a path in the image.
    pub fn meta(&self, path: impl AsRef<Path>) -> std::fs::Metadata {
        std::fs::symlink_metadata(self.path().join(path)).unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(self.dir.path()).output();
        if !matches!(&out, Ok(o) if o.status.success()) && !std::thread::panicking() {
            panic!("umount {} failed: {out:?}", self.dir.path().display());
        }
    }
}
