//! Where an image's files live: a directory, or a tar archive of one.
//!
//! `docker save` and skopeo's `oci-archive:` write an image as one tar.
//! Such archives are uncompressed, so every member is a contiguous byte
//! range of the file: the store indexes the members once (seeking over
//! their data) and hands layers on as byte ranges, never copying them.
//!
//! Both kinds keep every path inside the image, with the same rules: a
//! file may be a symlink (or, in an archive, a hard link) to another file
//! of the image, which is how `docker save` stores a repeated layer; a link
//! that leads out of the image, or a directory that is a link, is refused.
//! In a directory this is enforced by the kernel: every lookup starts from
//! the image directory's descriptor and opens each component with
//! `O_NOFOLLOW`, and a layer is handed on under the path of the file a
//! link leads to, so `oci-merge` opens no link at all.

use crate::blob::compression::Compression;
use crate::blob::digest::Digest;
use crate::blob::layer_ref::LayerRef;
use crate::error::{bail, err, Context, ErrorKind, Result};
use crate::fs::root::c_path;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The largest index, manifest or config read into memory.
pub const MAX_SMALL_BLOB: u64 = 32 << 20;
/// Symlink hops followed inside an archive before giving up.
const MAX_LINK_HOPS: usize = 16;

/// An image directory or archive.
pub enum Store {
    /// An unpacked layout or `docker save` directory.
    Dir(PathBuf),
    /// A tar file holding one.
    Archive(ArchiveIndex),
}

/// The members of an archive, by canonical path.
pub struct ArchiveIndex {
    path: PathBuf,
    members: HashMap<Vec<u8>, ArchivedFile>,
}

#[derive(Debug, Clone)]
enum ArchivedFile {
    File { offset: u64, size: u64 },
    Link(Vec<u8>),
    Unusable(&'static str),
}

impl Store {
    /// Opens `path`, a directory or an archive file.
    /// Layer references name absolute paths, so a layer list works from
    /// any directory (a script may `cd` between the two commands).
    pub fn open(path: &Path) -> Result<Store> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let path = std::path::absolute(path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        if meta.is_dir() {
            return Ok(Store::Dir(path));
        }
        Ok(Store::Archive(ArchiveIndex::build(&path)?))
    }

    /// The image's location, for messages.
    pub fn root(&self) -> &Path {
        match self {
            Store::Dir(root) => root,
            Store::Archive(index) => &index.path,
        }
    }

    /// Names a file of the image for messages.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Store::Dir(root) => root.join(rel).display().to_string(),
            Store::Archive(index) => format!("{}:{rel}", index.path.display()),
        }
    }

    /// True if the image holds a regular file at `rel`.
    pub fn exists(&self, rel: &str) -> bool {
        matches!(self.check(rel), Ok(true))
    }

    /// Whether the image holds a regular file at `rel`: `Ok(false)` if it
    /// is simply absent, an error if the path may not be used at all (it
    /// leaves the image, or names an unusable archive member).
    pub fn check(&self, rel: &str) -> Result<bool> {
        let result = match self.find(rel) {
            Ok(_) => Ok(true),
            Err(Find::Absent) => Ok(false),
            Err(Find::Unusable(why)) => Err(why),
        };
        result.with_context(|| self.describe(rel))
    }

    /// Where the regular file at `rel` is, links followed inside the image.
    fn find(&self, rel: &str) -> Result<Located, Find> {
        match self {
            Store::Dir(root) => find_in_dir(root, rel).map(Located::InDir),
            Store::Archive(index) => index
                .find(rel)
                .map(|(offset, size)| Located::Range(offset, size)),
        }
    }

    /// Reads a small file (an index, manifest or config) whole.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.read_inner(rel).with_context(|| self.describe(rel))
    }

    fn read_inner(&self, rel: &str) -> Result<Vec<u8>> {
        let (mut reader, size) = self.open_inner(rel)?;
        if size > MAX_SMALL_BLOB {
            bail!("{size} bytes is too large for an index, manifest or config");
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes).context("cannot read")?;
        Ok(bytes)
    }

    /// Opens the file at `rel` for streaming.
    pub fn open_file(&self, rel: &str) -> Result<Box<dyn Read>> {
        let (reader, _) = self.open_inner(rel).with_context(|| self.describe(rel))?;
        Ok(reader)
    }

    fn open_inner(&self, rel: &str) -> Result<(Box<dyn Read>, u64)> {
        Ok(match (self, self.find(rel).map_err(Find::into_error)?) {
            (Store::Dir(root), Located::InDir(key)) => {
                let file = open_in_dir(root, &key)?;
                let size = file.metadata().context("cannot stat")?.len();
                (Box::new(file), size)
            }
            (Store::Archive(index), Located::Range(offset, size)) => {
                let mut file = File::open(&index.path).context("cannot open the archive")?;
                file.seek(SeekFrom::Start(offset)).context("cannot seek")?;
                (Box::new(file.take(size)), size)
            }
            _ => unreachable!("a store finds its own kind of location"),
        })
    }

    /// A reference to a layer blob at `rel` that `oci-merge` can read: in
    /// a directory, the path of the file itself (a link resolved), in an
    /// archive its byte range.
    pub fn layer(&self, rel: &str, digest: Option<Digest>) -> Result<LayerRef> {
        let located = self
            .find(rel)
            .map_err(Find::into_error)
            .with_context(|| self.describe(rel))?;
        Ok(match (self, located) {
            (Store::Dir(root), Located::InDir(key)) => {
                let mut layer = LayerRef::file(root.join(OsStr::from_bytes(&key)));
                if digest.is_some() {
                    layer.digest = digest;
                }
                layer
            }
            (Store::Archive(index), Located::Range(offset, size)) => LayerRef {
                path: index.path.clone(),
                range: Some((offset, size)),
                size: None,
                digest,
                server: None,
            },
            _ => unreachable!("a store finds its own kind of location"),
        })
    }
}

/// Where a file of an image is.
enum Located {
    /// This path (canonical, relative, no links) of the image directory.
    InDir(Vec<u8>),
    /// This byte range (offset, size) of the archive.
    Range(u64, u64),
}

/// Finds the regular file at `rel` in the image directory `root` the way
/// an archive's members are found: a symlink in the file's place is
/// followed to another file of the image, never out of it and never
/// through a symlinked directory. Returns the path it leads to.
fn find_in_dir(root: &Path, rel: &str) -> Result<Vec<u8>, Find> {
    let root = open_root(root)?;
    let mut key = canonical(rel).map_err(Find::Unusable)?;
    for _ in 0..MAX_LINK_HOPS {
        let (dir, name) = crate::tar::path::split_parent(&key);
        let parent = open_dir_beneath(&root, dir)?;
        match lookup(&parent, name)? {
            None => return Err(Find::Absent),
            Some(FileType::RegularFile) => return Ok(key),
            Some(FileType::Symlink) => key = link_target(&parent, dir, name)?,
            // A directory, device or pipe is no blob.
            Some(_) => return Err(Find::Absent),
        }
    }
    Err(Find::Unusable(err!("too many levels of links")))
}

/// Opens a file `find_in_dir` found, with the same no-follow walk, so
/// what is read is the file that was found.
fn open_in_dir(root: &Path, key: &[u8]) -> Result<File> {
    let root = open_root(root).map_err(Find::into_error)?;
    let (dir, name) = crate::tar::path::split_parent(key);
    let parent = open_dir_beneath(&root, dir).map_err(Find::into_error)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(&parent, c_path(name), flags, Mode::empty()).context("cannot open")?;
    Ok(File::from(fd))
}

fn open_root(root: &Path) -> Result<OwnedFd, Find> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rfs::open(root, flags, Mode::empty()).map_err(|e| failed("cannot open the image", e))
}

/// Opens the directory `dir` of the image one component at a time, never
/// following a symlink.
fn open_dir_beneath(root: &OwnedFd, dir: &[u8]) -> Result<OwnedFd, Find> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rfs::openat(root, c".", flags, Mode::empty())
        .map_err(|e| failed("cannot open the image", e))?;
    for name in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        match lookup(&cur, name)? {
            Some(FileType::Directory) => {}
            Some(FileType::Symlink) => {
                return Err(Find::Unusable(err!(
                    "a symlinked directory on the way (only a file may be a link, to another file of the image)"
                )))
            }
            _ => return Err(Find::Absent),
        }
        // O_NOFOLLOW: a link swapped in since the lookup fails here.
        cur = rfs::openat(&cur, c_path(name), flags, Mode::empty())
            .map_err(|e| failed("cannot open a directory on the way", e))?;
    }
    Ok(cur)
}

/// What `name` in `dir` is, without following a symlink; `None` if absent.
fn lookup(dir: &OwnedFd, name: &[u8]) -> Result<Option<FileType>, Find> {
    match rfs::statat(dir, c_path(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(failed("cannot look up", e)),
    }
}

/// Where the symlink `name` in `dir` leads, as a path of the image.
fn link_target(parent: &OwnedFd, dir: &[u8], name: &[u8]) -> Result<Vec<u8>, Find> {
    let target = rfs::readlinkat(parent, c_path(name), Vec::new())
        .map_err(|e| failed("cannot read the symlink", e))?;
    let target = target.as_bytes();
    // An absolute link names a host path; honest images link relatively.
    if target.starts_with(b"/") {
        return Err(Find::Unusable(err!(
            "a symlink to an absolute path, outside the image"
        )));
    }
    resolve_inside(dir, target)
        .ok_or_else(|| Find::Unusable(err!("a symlink pointing outside the image")))
}

fn failed(what: &str, errno: Errno) -> Find {
    Find::Unusable(crate::error::Error::from(std::io::Error::from(errno)).context(what.to_owned()))
}

/// A relative path from an image's metadata, checked to stay inside it.
fn canonical(rel: &str) -> Result<Vec<u8>> {
    if rel.starts_with('/') {
        bail!("absolute path {rel:?} in image metadata");
    }
    let path = crate::tar::path::normalize(rel.as_bytes())
        .with_context(|| format!("bad path {rel:?} in image metadata"))?;
    if path.is_empty() {
        bail!("bad path {rel:?} in image metadata");
    }
    Ok(path)
}

impl ArchiveIndex {
    /// Indexes the members of the tar file at `path`.
    pub fn build(path: &Path) -> Result<ArchiveIndex> {
        let describe = || format!("{}", path.display());
        let mut file = File::open(path).with_context(|| format!("{}: cannot open", describe()))?;
        let mut head = [0u8; 6];
        let n = file.read(&mut head).with_context(describe)?;
        let compression = Compression::sniff(&head[..n]);
        if compression != Compression::None {
            bail!(
                "{}: a {compression}-compressed file, not an image archive; decompress it first",
                describe()
            );
        }
        file.rewind().with_context(describe)?;
        let mut members = HashMap::new();
        let indexed = index_members(file, &mut members);
        if members.is_empty() {
            // No tar header at the start: some other file, whose bytes
            // the tar reader's message would quote.
            bail!(
                kind = ErrorKind::NotAnImage {
                    path: path.to_owned()
                },
                "{}: not an image: neither an OCI layout nor a docker save, as a directory \
                 or a tar file",
                describe()
            );
        }
        indexed.with_context(|| format!("{}: not a readable tar archive", describe()))?;
        Ok(ArchiveIndex {
            path: path.to_path_buf(),
            members,
        })
    }

    /// The byte range of the regular file at `rel`, following links.
    fn find(&self, rel: &str) -> Result<(u64, u64), Find> {
        let mut key = canonical(rel).map_err(Find::Unusable)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&key) {
                None => return Err(Find::Absent),
                Some(ArchivedFile::File { offset, size }) => return Ok((*offset, *size)),
                Some(ArchivedFile::Link(target)) => key = target.clone(),
                Some(ArchivedFile::Unusable(why)) => {
                    return Err(Find::Unusable(crate::error::err!(*why)))
                }
            }
        }
        Err(Find::Unusable(crate::error::err!(
            "too many levels of links"
        )))
    }
}

/// Why a file of an image cannot be read.
enum Find {
    Absent,
    Unusable(crate::error::Error),
}

impl Find {
    fn into_error(self) -> crate::error::Error {
        match self {
            Find::Absent => err!("not in the image"),
            Find::Unusable(why) => why,
        }
    }
}

/// Indexes the members of the tar `file` into `members`, as far as it
/// can be read.
fn index_members(file: File, members: &mut HashMap<Vec<u8>, ArchivedFile>) -> Result<()> {
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let Ok(path) = crate::tar::path::normalize(&entry.path_bytes()) else {
            continue;
        };
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => ArchivedFile::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            tar::EntryType::GNUSparse => {
                ArchivedFile::Unusable("a sparse archive member cannot be read in place")
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let (dir, _) = crate::tar::path::split_parent(&path);
                match resolve_inside(dir, &target) {
                    Some(target) => ArchivedFile::Link(target),
                    None => ArchivedFile::Unusable("a symlink pointing outside the archive"),
                }
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                match resolve_inside(b"", &target) {
                    Some(target) => ArchivedFile::Link(target),
                    None => ArchivedFile::Unusable("a hard link pointing outside the archive"),
                }
            }
            _ => continue,
        };
        members.insert(path, member);
    }
    Ok(())
}

/// Resolves a link target relative to `dir`, with `..` allowed as long as
/// it stays inside the archive. Absolute targets start at the archive root.
fn resolve_inside(dir: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let mut stack: Vec<&[u8]> = Vec::new();
    if !target.starts_with(b"/") {
        stack.extend(dir.split(|&b| b == b'/').filter(|c| !c.is_empty()));
    }
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                stack.pop()?;
            }
            name => stack.push(name),
        }
    }
    (!stack.is_empty()).then(|| stack.join(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_resolve_inside_the_archive() {
        assert_eq!(
            resolve_inside(b"abc", b"../def/layer.tar"),
            Some(b"def/layer.tar".to_vec())
        );
        assert_eq!(resolve_inside(b"a/b", b"/x/y"), Some(b"x/y".to_vec()));
        assert_eq!(resolve_inside(b"abc", b"../../etc/passwd"), None);
        assert_eq!(resolve_inside(b"", b"./x"), Some(b"x".to_vec()));
    }

    /// Links in an image directory resolve as in an archive: to another
    /// file, through chains, never out, never through a linked directory.
    #[test]
    fn directory_links_resolve_inside_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("img");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/file"), b"x").unwrap();
        std::fs::write(dir.path().join("outside"), b"x").unwrap();
        for (link, target) in [
            ("a/same", "b/file"),
            ("a/chain", "same"),
            ("up", "a/b/../b/file"),
            ("out", "../outside"),
            ("abs", "/etc/passwd"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("linked", "a/b"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        let store = Store::open(&root).unwrap();
        for (rel, expected) in [
            ("a/b/file", Ok("a/b/file")),
            ("a/same", Ok("a/b/file")),
            ("a/chain", Ok("a/b/file")),
            ("up", Ok("a/b/file")),
            ("absent", Err("not in the image")),
            ("a", Err("not in the image")),
            ("out", Err("outside the image")),
            ("abs", Err("absolute path")),
            ("loop1", Err("too many levels")),
            ("linked/file", Err("symlinked directory")),
        ] {
            let found = store.find(rel).map_err(|e| e.into_error().to_string());
            match (found, expected) {
                (Ok(Located::InDir(key)), Ok(want)) => assert_eq!(key, want.as_bytes(), "{rel}"),
                (Err(err), Err(want)) => assert!(err.contains(want), "{rel}: {err}"),
                (Ok(_), want) => panic!("{rel}: found, expected {want:?}"),
                (Err(err), want) => panic!("{rel}: {err}, expected {want:?}"),
            }
        }
        let layer = store.layer("a/chain", None).unwrap();
        assert_eq!(layer.path, root.join("a/b/file"));
        assert_eq!(store.read("up").unwrap(), b"x");
    }

    #[test]
    fn metadata_paths_must_stay_inside() {
        assert!(canonical("blobs/sha256/ab").is_ok());
        assert!(canonical("../x").is_err());
        assert!(canonical("/etc/passwd").is_err());
        assert!(canonical("").is_err());
    }
}
