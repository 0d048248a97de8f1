//! A blob's download file in the store, kept when a download stops so
//! that the next run resumes it.
//!
//! Each blob has one, named after its digest (`blobs/ALG/.HEX.partial`),
//! so the next run finds the bytes a dropped connection, Ctrl-C or
//! `kill -9` left, and asks the registry only for the rest. Nothing in it
//! is trusted: the store hashes the kept bytes again with the new ones and
//! renames the file into place only if the whole blob has its size and
//! digest.
//!
//! A run locks the file while it writes it (`flock`, exclusive, never
//! waiting), so two runs never write one file and housekeeping never
//! removes one being written. The lock is taken on the open file and then
//! the name is checked to still be that file: one renamed into place or
//! removed in between is not used. When the digest's own file cannot be
//! used (another run holds it; it is not a regular file, or not this
//! user's, or others may write it, or it has another link), the blob goes
//! to a fresh file under a random name (`.HEX.RANDOM.partial`), as every
//! download did before resuming existed. Waiting for the other run instead
//! would tie this one to a process that may be stopped or stalled for
//! hours. No later run could find that fresh file, so it is removed when
//! its download ends, however it ends (a signal included).

use crate::blob::digest::{Algorithm, Digest};
use crate::fs::nofollow;
use crate::fs::temporaries;
use rustix::fs::{self as rfs, FileType, FlockOperation, OFlags, Stat};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::BorrowedFd;
use std::path::Path;

const SUFFIX: &str = ".partial";

/// How often a name found moved under a just-locked file is tried again.
const CLAIM_ATTEMPTS: usize = 3;

/// The name of `digest`'s own download file, the one a later run resumes.
pub fn resumable_name(digest: &Digest) -> String {
    format!(".{}{SUFFIX}", digest.hex())
}

/// The blob whose download file `name` is, in the directory of
/// `algorithm`'s blobs, if it is one `oci-fetch` makes: `.HEX.partial` or
/// `.HEX.RANDOM.partial`.
pub fn partial_digest(algorithm: Algorithm, name: &[u8]) -> Option<Digest> {
    let stem = std::str::from_utf8(name)
        .ok()?
        .strip_prefix('.')?
        .strip_suffix(SUFFIX)?;
    let hex = match stem.split_once('.') {
        Some((hex, random)) if nofollow::is_unique_part(random) => hex,
        Some(_) => return None,
        None => stem,
    };
    Digest::new(algorithm, hex).ok()
}

/// Takes the lock of a download file, without waiting; `Ok(false)` if
/// another open file holds it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match rfs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the entry `name` of `dir` is still the file `stat` describes.
pub fn still_named(dir: BorrowedFd<'_>, name: &[u8], stat: &Stat) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(name);
    rfs::statat(dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|now| (now.st_dev, now.st_ino) == (stat.st_dev, stat.st_ino))
}

/// A blob's download file, locked by this run.
pub struct Partial {
    name: String,
    file: File,
    /// Whether it is the digest's own file, which the next run resumes.
    resumable: bool,
    /// A fresh file is removed on a signal: no later run could use it.
    _registration: Option<temporaries::Registration>,
}

/// Why the digest's own download file is not used.
enum Unusable {
    /// Another run is writing it.
    Busy,
    /// Its name went to another file (or none) before it was locked.
    Moved,
    /// It may not be trusted with the blob's bytes, for this reason.
    Untrusted(String),
}

impl Partial {
    /// The download file of `digest` in `dir` (at `dir_path`, for
    /// messages), locked: the digest's own file, or a fresh one when that
    /// cannot be used; why it cannot, unless another run holds it, goes
    /// to `warn`.
    pub fn claim(
        dir: BorrowedFd<'_>,
        dir_path: &Path,
        digest: &Digest,
        warn: &dyn Fn(&str),
    ) -> io::Result<Partial> {
        let name = resumable_name(digest);
        for _ in 0..CLAIM_ATTEMPTS {
            match open_own(dir, &name) {
                Ok(file) => {
                    return Ok(Partial {
                        name,
                        file,
                        resumable: true,
                        _registration: None,
                    })
                }
                Err(Unusable::Moved) => continue,
                Err(Unusable::Busy) => break,
                Err(Unusable::Untrusted(why)) => {
                    warn(&format!(
                        "{}: {why}; not resumed, the blob is downloaded beside it",
                        dir_path.join(&name).display()
                    ));
                    break;
                }
            }
        }
        Partial::fresh(dir, dir_path, digest)
    }

    /// A new download file under a random name.
    fn fresh(dir: BorrowedFd<'_>, dir_path: &Path, digest: &Digest) -> io::Result<Partial> {
        let prefix = format!(".{}.", digest.hex());
        let (name, file) = nofollow::create_unique(dir, &prefix, SUFFIX, 0o644)?;
        let registration = temporaries::register(&dir_path.join(&name));
        // New and unpredictably named, so no one else holds it: locked so
        // that housekeeping sees it is being written.
        try_lock(&file)?;
        Ok(Partial {
            name,
            file,
            resumable: false,
            _registration: Some(registration),
        })
    }

    /// Its name in the blobs' directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a later run would resume it.
    pub fn resumable(&self) -> bool {
        self.resumable
    }

    /// The open file, to read what it holds and write after it.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// How many bytes it holds.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Empties it, to write the blob from its first byte.
    pub fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        Ok(())
    }

    /// Flushes it and renames it to `blob_name`, the blob's own name.
    pub fn complete(&self, dir: BorrowedFd<'_>, blob_name: &[u8]) -> io::Result<()> {
        self.file.sync_data()?;
        // While it is locked no cooperating process renames or removes
        // it; something else that did must not get its file renamed in.
        let stat = rfs::fstat(&self.file)?;
        if !still_named(dir, self.name.as_bytes(), &stat) {
            return Err(io::Error::other(format!(
                "{}: replaced while it was being written",
                self.name
            )));
        }
        nofollow::rename(dir, &self.name, blob_name)
    }

    /// Removes it: its bytes are no use.
    pub fn discard(self, dir: BorrowedFd<'_>) {
        nofollow::remove_file(dir, self.name.as_bytes());
    }
}

/// The digest's own download file `name` in `dir`, created if absent,
/// locked, if it can be used.
fn open_own(dir: BorrowedFd<'_>, name: &str) -> Result<File, Unusable> {
    // Non-blocking: a FIFO planted under the name fails instead of
    // hanging the open; a symlink fails too (no-follow).
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NONBLOCK;
    let file = nofollow::open_file(dir, name.as_bytes(), flags, 0o644)
        .map_err(|e| Unusable::Untrusted(format!("cannot open: {e}")))?;
    let stat = rfs::fstat(&file).map_err(|e| Unusable::Untrusted(e.to_string()))?;
    if let Some(why) = distrust(&stat) {
        return Err(Unusable::Untrusted(why.to_owned()));
    }
    match try_lock(&file) {
        Ok(true) => {}
        Ok(false) => return Err(Unusable::Busy),
        Err(e) => return Err(Unusable::Untrusted(format!("cannot lock: {e}"))),
    }
    if !still_named(dir, name.as_bytes(), &stat) {
        return Err(Unusable::Moved);
    }
    Ok(file)
}

/// Why a download file may not be trusted with a blob's bytes, if not:
/// only this user may have written it, and writing it must not change
/// any other file.
fn distrust(stat: &Stat) -> Option<&'static str> {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        Some("not a regular file")
    } else if stat.st_uid != rustix::process::geteuid().as_raw() {
        Some("owned by another user")
    } else if stat.st_mode & 0o022 != 0 {
        Some("writable by other users")
    } else if stat.st_nlink != 1 {
        Some("another link to it exists")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::digest::Algorithm::{Sha256, Sha512};
    use std::os::fd::AsFd;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn partial_names_are_the_digests_own_or_random() {
        let digest = Digest::new(Sha256, HEX).unwrap();
        assert_eq!(resumable_name(&digest), format!(".{HEX}.partial"));
        assert_eq!(
            partial_digest(Sha256, resumable_name(&digest).as_bytes()),
            Some(digest)
        );
        let cases: [(Algorithm, String, bool); 9] = [
            (Sha256, format!(".{HEX}.partial"), true),
            (Sha256, format!(".{HEX}.AbCdEf012345.partial"), true),
            (Sha512, format!(".{HEX}.partial"), false),
            (Sha256, format!("{HEX}.partial"), false),
            (Sha256, format!(".{HEX}.short.partial"), false),
            (Sha256, format!(".{HEX}.AbCdEf01234!.partial"), false),
            (Sha256, format!(".{}.partial", &HEX[1..]), false),
            (Sha256, format!(".{HEX}"), false),
            (Sha256, ".oci-fetch.AbCdEf012345".to_owned(), false),
        ];
        for (algorithm, name, expected) in cases {
            assert_eq!(
                partial_digest(algorithm, name.as_bytes()).is_some(),
                expected,
                "{name}"
            );
        }
    }

    fn open_dir(path: &Path) -> std::os::fd::OwnedFd {
        rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, rfs::Mode::empty()).unwrap()
    }

    fn write_mode(path: &Path, mode: u32) {
        std::fs::write(path, b"kept").unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(mode);
        std::fs::set_permissions(path, mode).unwrap();
    }

    /// The file a claim gets: the digest's own unless it is busy or may
    /// not be trusted (then a fresh one, with a warning if untrusted).
    #[test]
    fn the_own_file_is_claimed_unless_busy_or_untrusted() {
        let digest = Digest::new(Sha256, HEX).unwrap();
        let own = resumable_name(&digest);
        type Setup = fn(&Path) -> Option<File>;
        let cases: [(&str, Setup, bool, &str); 6] = [
            ("absent", |_| None, true, ""),
            (
                "kept",
                |p| {
                    write_mode(p, 0o644);
                    None
                },
                true,
                "",
            ),
            (
                "busy",
                |p| {
                    let file = File::create(p).unwrap();
                    assert!(try_lock(&file).unwrap());
                    Some(file)
                },
                false,
                "",
            ),
            (
                "symlink",
                |p| {
                    std::os::unix::fs::symlink("/etc/passwd", p).unwrap();
                    None
                },
                false,
                "a symlink",
            ),
            (
                "world-writable",
                |p| {
                    write_mode(p, 0o666);
                    None
                },
                false,
                "writable by other users",
            ),
            (
                "hard link",
                |p| {
                    write_mode(&p.with_file_name("elsewhere"), 0o644);
                    std::fs::hard_link(p.with_file_name("elsewhere"), p).unwrap();
                    None
                },
                false,
                "another link to it exists",
            ),
        ];
        for (what, setup, resumable, warning) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let _held = setup(&tmp.path().join(&own));
            let dir = open_dir(tmp.path());
            let warnings = std::cell::RefCell::new(Vec::new());
            let warn = |m: &str| warnings.borrow_mut().push(m.to_owned());
            let partial = Partial::claim(dir.as_fd(), tmp.path(), &digest, &warn).unwrap();
            assert_eq!(partial.resumable(), resumable, "{what}");
            assert_eq!(partial.name() == own, resumable, "{what}");
            let named = partial_digest(Sha256, partial.name().as_bytes());
            assert_eq!(named.as_ref(), Some(&digest), "{what}");
            let warnings = warnings.into_inner();
            if warning.is_empty() {
                assert!(warnings.is_empty(), "{what}: {warnings:?}");
            } else {
                assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
                assert!(warnings[0].contains(warning), "{what}: {warnings:?}");
            }
            // Whatever it got, it holds its lock.
            let again = File::open(tmp.path().join(partial.name())).unwrap();
            assert!(!try_lock(&again).unwrap(), "{what}");
        }
    }
}
