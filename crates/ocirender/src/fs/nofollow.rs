//! Files in directories that other users may reach, handled so that no
//! symlink or swapped entry redirects them.
//!
//! `oci-fetch` writes into a `--store` that may be shared, and serves
//! layers from a directory under `/tmp`. Each operation here is relative to
//! a directory's descriptor (opened once, `O_NOFOLLOW`) and names a single
//! entry of it, opened with `O_NOFOLLOW`: a symlink planted under a name
//! fails the open (`ELOOP`) instead of leading elsewhere, and a directory
//! renamed or replaced after it was opened does not move what follows.
//! Files are created with `O_EXCL`, so an existing entry is never reused.

use crate::fs::root::c_path;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Opens the directory `name` of `dir` for lookups and listing, refusing a
/// symlink.
pub fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, c_path(name), flags, Mode::empty()).map_err(|errno| {
        // With O_DIRECTORY, a symlink fails as "not a directory".
        let is_link =
            crate::fs::root::existing_type(dir, name).is_ok_and(|t| t == Some(FileType::Symlink));
        explain(if is_link { Errno::LOOP } else { errno })
    })
}

/// Opens the directory `name` of `dir`, creating it with `mode` if absent.
pub fn make_dir(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<OwnedFd> {
    match rfs::mkdirat(dir, c_path(name), Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => open_dir(dir, name),
        Err(e) => Err(e.into()),
    }
}

/// Opens the entry `name` of `dir` with `flags` (plus no-follow and
/// close-on-exec); `mode` applies if `flags` create it.
pub fn open_file(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags, mode: u32) -> io::Result<File> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, c_path(name), flags, Mode::from_raw_mode(mode))
        .map(File::from)
        .map_err(explain)
}

/// Reads the regular file `name` of `dir` whole if it exists and is at
/// most `limit` bytes; `None` if absent.
pub fn read_file(dir: BorrowedFd<'_>, name: &[u8], limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match open_file(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = regular_size(&file)?;
    if size > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes, more than the {limit} allowed"),
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    io::Read::read_to_end(&mut io::Read::take(&file, limit + 1), &mut bytes)?;
    Ok(Some(bytes))
}

/// The size of an open regular file; an error for anything else (a FIFO,
/// a device or a directory planted under a file's name).
pub fn regular_size(file: &File) -> io::Result<u64> {
    let stat = rfs::fstat(file)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(stat.st_size as u64)
}

/// A new file in `dir` under a name no one else has (`prefix`, random
/// characters, `suffix`), created exclusively with `mode` (less the umask).
/// Returns its name and the file, open for writing.
pub fn create_unique(
    dir: BorrowedFd<'_>,
    prefix: &str,
    suffix: &str,
    mode: u32,
) -> io::Result<(String, File)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
    loop {
        let name = unique_name(prefix, suffix);
        match open_file(dir, name.as_bytes(), flags, mode) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How many random characters [`unique_name`] puts in a name.
const UNIQUE_LEN: usize = 12;

/// `prefix`, twelve random letters and digits, `suffix`: unpredictable, so
/// another user cannot plant an entry under the name first.
pub fn unique_name(prefix: &str, suffix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    // RandomState's keys come from the OS's random source (once per
    // thread, then varied per instance); the time separates retries.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let state = std::collections::hash_map::RandomState::new();
    let mut bits = u128::from(state.hash_one(nanos)) << 64 | u128::from(state.hash_one(!nanos));
    let mut name = String::from(prefix);
    for _ in 0..UNIQUE_LEN {
        name.push(char::from(
            ALPHABET[(bits % ALPHABET.len() as u128) as usize],
        ));
        bits /= ALPHABET.len() as u128;
    }
    name.push_str(suffix);
    name
}

/// Whether `part` is what [`unique_name`] puts between its prefix and
/// suffix.
pub fn is_unique_part(part: &str) -> bool {
    part.len() == UNIQUE_LEN && part.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Renames `from` to `to` in `dir`, replacing what `to` was (a symlink is
/// replaced, not followed).
pub fn rename(dir: BorrowedFd<'_>, from: &str, to: &[u8]) -> io::Result<()> {
    rfs::renameat(dir, c_path(from.as_bytes()), dir, c_path(to)).map_err(io::Error::from)
}

/// Removes the file `name` of `dir`, if it is there.
pub fn remove_file(dir: BorrowedFd<'_>, name: &[u8]) {
    let _ = rfs::unlinkat(dir, c_path(name), AtFlags::empty());
}

/// Errors with the reason a user can act on: `ELOOP` from `O_NOFOLLOW`
/// means a symlink stands where a file or directory should be.
fn explain(errno: Errno) -> io::Error {
    if errno == Errno::LOOP {
        return io::Error::new(
            io::ErrorKind::InvalidData,
            "a symlink, which is not followed",
        );
    }
    io::Error::from(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_are_refused_and_unique_names_differ() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", tmp.path().join("file")).unwrap();
        let root = rfs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let err = open_dir(root.as_fd(), b"dir").unwrap_err();
        assert!(err.to_string().contains("a symlink"), "{err}");
        let err = read_file(root.as_fd(), b"file", 100).unwrap_err();
        assert!(err.to_string().contains("a symlink"), "{err}");
        assert!(read_file(root.as_fd(), b"absent", 100).unwrap().is_none());
        let (a, _) = create_unique(root.as_fd(), ".x.", ".tmp", 0o600).unwrap();
        let (b, _) = create_unique(root.as_fd(), ".x.", ".tmp", 0o600).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(".x.") && a.ends_with(".tmp") && a.len() == 3 + 12 + 4);
        assert!(is_unique_part(&a[3..15]));
        assert!(!is_unique_part("lock") && !is_unique_part("index.lock12"));
    }
}
