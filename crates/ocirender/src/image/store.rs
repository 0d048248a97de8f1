//! Where an image's files live: a directory, or a tar archive of one.
//!
//! `docker save` and skopeo's `oci-archive:` write an image as one tar.
//! Such archives are uncompressed, so every member is a contiguous byte
//! range of the file: the store indexes the members once (seeking over
//! their data) and hands layers on as byte ranges, never copying them.

use crate::compression::Compression;
use crate::digest::Digest;
use crate::layer_ref::LayerRef;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
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
    members: HashMap<Vec<u8>, Member>,
}

#[derive(Debug, Clone)]
enum Member {
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
        let result = match self {
            Store::Dir(root) => canonical(rel).map(|_| root.join(rel).is_file()),
            Store::Archive(index) => match index.find(rel) {
                Ok(_) => Ok(true),
                Err(Find::Absent) => Ok(false),
                Err(Find::Unusable(why)) => Err(why),
            },
        };
        result.with_context(|| self.describe(rel))
    }

    /// Reads a small file (an index, manifest or config) whole.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.read_inner(rel).with_context(|| self.describe(rel))
    }

    fn read_inner(&self, rel: &str) -> Result<Vec<u8>> {
        canonical(rel)?;
        let (mut reader, size): (Box<dyn Read>, u64) = match self {
            Store::Dir(root) => {
                let file = File::open(root.join(rel)).context("cannot open")?;
                let size = file.metadata().context("cannot stat")?.len();
                (Box::new(file), size)
            }
            Store::Archive(index) => {
                let (offset, size) = index.find(rel).map_err(Find::into_error)?;
                let mut file = File::open(&index.path).context("cannot open the archive")?;
                file.seek(SeekFrom::Start(offset)).context("cannot seek")?;
                (Box::new(file.take(size)), size)
            }
        };
        if size > MAX_SMALL_BLOB {
            bail!("{size} bytes is too large for an index, manifest or config");
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes).context("cannot read")?;
        Ok(bytes)
    }

    /// A reference to a layer blob at `rel` that `oci-merge` can read.
    pub fn layer(&self, rel: &str, digest: Option<Digest>) -> Result<LayerRef> {
        canonical(rel).with_context(|| self.describe(rel))?;
        match self {
            Store::Dir(root) => {
                let path = root.join(rel);
                if !path.is_file() {
                    bail!("{}: layer blob is missing", path.display());
                }
                let mut layer = LayerRef::file(path);
                if digest.is_some() {
                    layer.digest = digest;
                }
                Ok(layer)
            }
            Store::Archive(index) => {
                let (offset, size) = index
                    .find(rel)
                    .map_err(Find::into_error)
                    .with_context(|| self.describe(rel))?;
                Ok(LayerRef {
                    path: index.path.clone(),
                    range: Some((offset, size)),
                    digest,
                })
            }
        }
    }
}

/// A relative path from an image's metadata, checked to stay inside it.
fn canonical(rel: &str) -> Result<Vec<u8>> {
    if rel.starts_with('/') {
        bail!("absolute path {rel:?} in image metadata");
    }
    let path = crate::path::normalize(rel.as_bytes())
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
        let members = index_members(file)
            .with_context(|| format!("{}: not a readable tar archive", describe()))?;
        if members.is_empty() {
            bail!(
                "{}: not an image: the file is empty or not a tar archive",
                describe()
            );
        }
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
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => key = target.clone(),
                Some(Member::Unusable(why)) => return Err(Find::Unusable(anyhow::anyhow!(*why))),
            }
        }
        Err(Find::Unusable(anyhow::anyhow!("too many levels of links")))
    }
}

/// Why an archive member cannot be read.
enum Find {
    Absent,
    Unusable(anyhow::Error),
}

impl Find {
    fn into_error(self) -> anyhow::Error {
        match self {
            Find::Absent => anyhow::anyhow!("not in the archive"),
            Find::Unusable(why) => why,
        }
    }
}

fn index_members(file: File) -> Result<HashMap<Vec<u8>, Member>> {
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let Ok(path) = crate::path::normalize(&entry.path_bytes()) else {
            continue;
        };
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            tar::EntryType::GNUSparse => {
                Member::Unusable("a sparse archive member cannot be read in place")
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let (dir, _) = crate::path::split_parent(&path);
                match resolve_inside(dir, &target) {
                    Some(target) => Member::Link(target),
                    None => Member::Unusable("a symlink pointing outside the archive"),
                }
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                match resolve_inside(b"", &target) {
                    Some(target) => Member::Link(target),
                    None => Member::Unusable("a hard link pointing outside the archive"),
                }
            }
            _ => continue,
        };
        members.insert(path, member);
    }
    Ok(members)
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

    #[test]
    fn metadata_paths_must_stay_inside() {
        assert!(canonical("blobs/sha256/ab").is_ok());
        assert!(canonical("../x").is_err());
        assert!(canonical("/etc/passwd").is_err());
        assert!(canonical("").is_err());
    }
}
