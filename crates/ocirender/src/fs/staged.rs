//! Outputs built beside their destination and moved into place only when
//! complete.
//!
//! Every sink promises that a failed run leaves its destination as it was:
//! absent, or the previous image. So each builds into a temporary sibling
//! (same directory, hence same filesystem, so the final `rename` is atomic)
//! that is registered for removal if a signal ends the process, removed if
//! the run fails, and renamed over the destination only by
//! [`Staged::commit`]. Dropping a [`Staged`] without committing removes it,
//! so no error path can forget to.

use crate::error::{err, Context, Result};
use crate::fs::temporaries::{self, Registration};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A temporary file or directory standing in for `dest` until committed.
pub struct Staged {
    temp: PathBuf,
    dest: PathBuf,
    is_file: bool,
    committed: bool,
    _registration: Registration,
}

impl Staged {
    /// A temporary file `DEST.tmp-XXXXXX` beside `dest`, for an image.
    pub fn file(dest: &Path) -> Result<Staged> {
        if dest.is_dir() {
            crate::error::bail!("{}: is a directory", dest.display());
        }
        let (dir, name) = split(dest)?;
        let temp = tempfile::Builder::new()
            .prefix(&format!("{}.tmp-", name.to_string_lossy()))
            .tempfile_in(&dir)
            .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?
            .into_temp_path()
            .keep()
            .context("cannot keep the temporary file")?;
        Ok(Staged::new(temp, dest, true))
    }

    /// A hidden temporary directory `.DEST.TOOL-XXXXXX` beside `dest`, for
    /// a tree.
    pub fn dir(dest: &Path, tool: &str) -> Result<Staged> {
        let (dir, name) = split(dest)?;
        // tempfile's error names the temporary; the user named `dest`.
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.{tool}-", name.to_string_lossy()))
            .tempdir_in(&dir)
            .map_err(without_path)
            .with_context(|| format!("{}: cannot create", dest.display()))?
            .keep();
        Ok(Staged::new(temp, dest, false))
    }

    fn new(temp: PathBuf, dest: &Path, is_file: bool) -> Staged {
        let registration = temporaries::register(&temp);
        Staged {
            temp,
            dest: dest.to_path_buf(),
            is_file,
            committed: false,
            _registration: registration,
        }
    }

    /// Where to build.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Moves the finished output into place. A file gets the mode any new
    /// file would (the temporary was private, 0600).
    pub fn commit(mut self) -> Result<()> {
        if self.is_file {
            let mode = 0o666 & !current_umask();
            std::fs::set_permissions(&self.temp, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("{}: cannot set the mode", self.temp.display()))?;
        }
        std::fs::rename(&self.temp, &self.dest)
            .map_err(|e| err!(e))
            .with_context(|| {
                format!("{}: cannot move the output into place", self.dest.display())
            })?;
        self.committed = true;
        Ok(())
    }

    /// Moves the finished directory into place over an existing one: the
    /// two are exchanged in one step (`renameat2(RENAME_EXCHANGE)`), so
    /// `dest` is always a whole tree, then the old one is removed.
    pub fn commit_replacing(mut self) -> Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, &self.temp, CWD, &self.dest, RenameFlags::EXCHANGE) {
            // Nothing to exchange with (it is gone), or a filesystem
            // without exchange: a plain rename, which fails on a
            // non-empty directory rather than lose it.
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => self.commit(),
            Err(e) => Err(err!(e)).with_context(|| {
                format!("{}: cannot move the output into place", self.dest.display())
            }),
            Ok(()) => {
                // The temporary's name now holds the old tree: dropping
                // `self` uncommitted removes it.
                temporaries::remove_path(&self.temp);
                self.committed = true;
                Ok(())
            }
        }
    }
}

/// An I/O error without the path tempfile adds to its words (`... at
/// path "/x/.d.tar2dir-c1HtqT"`): its cause stays private, so only its
/// words can be cut. The kind is kept.
fn without_path(e: std::io::Error) -> std::io::Error {
    let words = e.to_string();
    match words.split_once(" at path \"") {
        Some((cause, _)) => std::io::Error::new(e.kind(), cause.to_owned()),
        None => e,
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            temporaries::remove_path(&self.temp);
        }
    }
}

/// The directory `dest` is in, and its name.
fn split(dest: &Path) -> Result<(PathBuf, &OsStr)> {
    let name = dest
        .file_name()
        .with_context(|| format!("{}: not a usable name", dest.display()))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// The process's umask. Reading it means setting it: it is put straight
/// back.
pub fn current_umask() -> u32 {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.as_raw_mode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_outputs_replace_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("image");
        std::fs::write(&dest, "previous").unwrap();
        let staged = Staged::file(&dest).unwrap();
        std::fs::write(staged.path(), "new").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_outputs_vanish_and_leave_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("image");
        std::fs::write(&dest, "previous").unwrap();
        let staged = Staged::file(&dest).unwrap();
        std::fs::write(staged.path(), "half").unwrap();
        drop(staged);
        let tree = Staged::dir(&dir.path().join("tree"), "test").unwrap();
        std::fs::create_dir_all(tree.path().join("a/b")).unwrap();
        drop(tree);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
