//! Writing the containers `auth.json`: the credentials `oci-login` stores
//! and removes.
//!
//! The file is the one [`super::credentials`] reads first, in the format
//! podman and skopeo write (`{"auths": {KEY: {"auth": base64("user:pass")}}}`,
//! tab-indented, keys sorted), so each tool reads what the other wrote.
//! Unlike them, everything else in the file is kept as it was: other
//! entries, and fields this module does not know (a Docker config's
//! `credsStore`, `credHelpers`, `HttpHeaders`), since the file may be the
//! user's `~/.docker/config.json`.
//!
//! The file holds passwords and may live in a shared directory
//! (`--authfile /tmp/…`), so it is handled as `crate::fs::nofollow`
//! handles shared files: read through a descriptor of its directory with
//! no-follow, and only if it is a regular file of this user's; never
//! written in place, but replaced whole by a new file of mode 0600 made
//! beside it, synced, then renamed over it, so that a reader never sees
//! half a file and a failure leaves the old one as it was. Directories
//! made for it are 0700 whatever the umask.

use super::credentials::{normalize_key, Secret};
use crate::error::{bail, err, Context, Result};
use crate::fs::nofollow;
use crate::fs::root::c_path;
use crate::source::reference::{self, Reference};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The largest auth file read (a real one is a few hundred bytes per
/// registry).
pub const MAX_AUTH_FILE: u64 = 1 << 20;

/// Where credentials are stored in `auths`: a registry (`quay.io`,
/// `localhost:5000`, `docker.io`) or a namespace in one (`quay.io/org`),
/// spelled as the readers look keys up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    registry: String,
    namespace: Option<String>,
}

impl Key {
    /// Reads what a user types after `login`: `host[:port]`, a URL of one
    /// (`https://index.docker.io/v1/`: its path is an API version, not a
    /// namespace), or `host[:port]/namespace` (as podman and skopeo allow).
    /// Docker Hub's other names (`index.docker.io`, `registry-1.docker.io`)
    /// become `docker.io`; hosts are lowercased. A tag or digest, or a
    /// first component that image references would not read as a host
    /// (`myhost/app` is Docker Hub's `myhost/app`), is an error.
    pub fn parse(text: &str) -> Result<Key> {
        let trimmed = text.trim();
        let without_docker = trimmed.strip_prefix("docker://").unwrap_or(trimmed);
        let url_host = without_docker
            .strip_prefix("https://")
            .or_else(|| without_docker.strip_prefix("http://"))
            .map(|rest| rest.split('/').next().unwrap_or(rest));
        let name = url_host.unwrap_or_else(|| without_docker.trim_end_matches('/'));
        let (host, namespace) = match name.split_once('/') {
            Some((host, namespace)) => (host, Some(namespace)),
            None => (name, None),
        };
        if name.contains('@') || namespace.is_some_and(|n| n.contains(':')) {
            bail!(
                "{text:?} names an image (a tag or a digest): give a registry or a \
                 namespace, host[:port][/namespace]"
            );
        }
        if host.is_empty() {
            bail!("{text:?} names no registry: give host[:port][/namespace]");
        }
        if !reference::looks_like_host(host) {
            bail!(
                "{host:?} is not a registry host: image references read a first component \
                 without a '.' or a ':port' (other than localhost) as a Docker Hub \
                 namespace; give host:port or a full host name"
            );
        }
        // Read as an image reference would be, so that the key is one a
        // reference reaches; "/x" stands for the repository under it.
        let parsed = match format!("{name}/x").parse::<Reference>() {
            Ok(parsed) => parsed,
            Err(e) => match format!("{host}/x").parse::<Reference>() {
                Ok(_) => bail!(
                    "invalid namespace {:?} in {text:?}: lowercase letters and digits, \
                     separated by '.', '_', '__' or '-', in components separated by '/'",
                    namespace.unwrap_or_default()
                ),
                Err(_) => bail!("invalid registry {host:?}: {}", e.root_cause()),
            },
        };
        let namespace = namespace.map(|_| {
            let repository = parsed.repository.as_str();
            repository
                .strip_suffix("/x")
                .unwrap_or(repository)
                .to_owned()
        });
        Ok(Key {
            registry: parsed.registry,
            namespace,
        })
    }

    /// The registry: `docker.io`, `quay.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// A reference to the registry and no repository, for a client that
    /// speaks to the registry as a whole (`GET /v2/`).
    pub(crate) fn registry_reference(&self) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: String::new(),
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{namespace}", self.registry),
            None => f.write_str(&self.registry),
        }
    }
}

/// What a login or a logout changes in the file.
#[derive(Debug, Clone)]
pub enum Change {
    /// Stores a user name and password for a key, replacing the entry of
    /// that very key (an identity token in it too: it would win over the
    /// new password).
    Store(Key, Secret),
    /// Removes the entries of a key, under every spelling the readers take
    /// for it (`docker.io`, `index.docker.io`, `https://index.docker.io/v1/`).
    Remove(Key),
    /// Removes every `auths` entry; `credHelpers` and `credsStore` stay
    /// (they are the user's configuration, not stored credentials).
    RemoveAll,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Entries removed (a login replaces at most one).
    pub removed: usize,
    /// Whether the file was written (it is not when nothing changed).
    pub written: bool,
}

/// An auth file to change.
#[derive(Debug, Clone)]
pub struct AuthFile {
    path: PathBuf,
    dir: PathBuf,
    name: String,
}

impl AuthFile {
    /// The file at `path`; nothing is read yet.
    pub fn new(path: &Path) -> Result<AuthFile> {
        let name = match path.components().next_back() {
            Some(Component::Normal(name)) => name.to_str(),
            _ => None,
        };
        let Some(name) = name else {
            bail!("{}: not a file name", path.display());
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(AuthFile {
            path: path.to_owned(),
            dir,
            name: name.to_owned(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `change` applies (the file, if there, is this user's,
    /// valid, and allows it) without writing anything: done before the
    /// registry is asked, so that a login fails before it sends a
    /// password it could not store.
    pub fn check(&self, change: &Change) -> Result<()> {
        let dir = self.open_dir(false)?;
        let mut document = self.read(dir.as_ref())?;
        self.edit(&mut document, change).map(drop)
    }

    /// Applies `change`: reads the file (none is an empty one), edits it,
    /// and replaces it if that changed anything. A store makes the
    /// directories it needs; a removal from no file removes nothing.
    pub fn apply(&self, change: &Change) -> Result<Applied> {
        let creating = matches!(change, Change::Store(..));
        let dir = self.open_dir(creating)?;
        let mut document = self.read(dir.as_ref())?;
        let before = document.clone();
        let removed = self.edit(&mut document, change)?;
        let written = match &dir {
            Some(dir) if document != before => {
                self.replace(dir, &document)?;
                true
            }
            _ => false,
        };
        Ok(Applied { removed, written })
    }

    /// The file's directory, made (mode 0700) if `create`; `None` if it
    /// does not exist and is not to be made.
    fn open_dir(&self, create: bool) -> Result<Option<OwnedFd>> {
        let dir = if create {
            make_dirs(&self.dir)
        } else {
            match open_existing_dir(&self.dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                other => other,
            }
        };
        let dir =
            dir.with_context(|| format!("{}: cannot open its directory", self.dir.display()))?;
        let stat = rfs::fstat(&dir)?;
        let shared = stat.st_mode & 0o002 != 0 && stat.st_mode & 0o1000 == 0;
        if shared {
            bail!(
                "{}: every user may replace files in this directory (mode {:04o}, not \
                 sticky): refusing to keep credentials there",
                self.dir.display(),
                stat.st_mode & 0o7777
            );
        }
        Ok(Some(dir))
    }

    /// The file's JSON: an empty object if there is no file. The file must
    /// be a regular file (not a symlink), this user's, at most
    /// [`MAX_AUTH_FILE`], and a JSON object.
    fn read(&self, dir: Option<&OwnedFd>) -> Result<Map<String, Value>> {
        let Some(dir) = dir else {
            return Ok(Map::new());
        };
        let Some(bytes) = self.read_bytes(dir)? else {
            return Ok(Map::new());
        };
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(document)) => Ok(document),
            Ok(_) => bail!(
                "{}: not an auth file (not a JSON object)",
                self.path.display()
            ),
            Err(e) => bail!("{}: not valid JSON: {e}", self.path.display()),
        }
    }

    fn read_bytes(&self, dir: &OwnedFd) -> Result<Option<Vec<u8>>> {
        let path = self.path.display();
        match rfs::statat(dir, c_path(self.name.as_bytes()), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(io::Error::from(e)).with_context(|| format!("{path}: cannot stat"))
            }
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => bail!(
                "{path}: a symbolic link; refusing to read or replace credentials through \
                 it (give the file it points to with --authfile)"
            ),
            Ok(_) => {}
        }
        let file = nofollow::open_file(
            dir.as_fd(),
            self.name.as_bytes(),
            OFlags::RDONLY | OFlags::NONBLOCK,
            0,
        )
        .with_context(|| format!("{path}: cannot open"))?;
        let size = nofollow::regular_size(&file).with_context(|| format!("{path}"))?;
        let owner = rfs::fstat(&file)?.st_uid;
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            bail!("{path}: owned by uid {owner}, not by this user (uid {me}); refusing to use it");
        }
        if size > MAX_AUTH_FILE {
            bail!("{path}: {size} bytes, more than the {MAX_AUTH_FILE} an auth file may have");
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&file)
            .take(MAX_AUTH_FILE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{path}: cannot read"))?;
        if bytes.len() as u64 > MAX_AUTH_FILE {
            bail!("{path}: grew past the {MAX_AUTH_FILE} bytes an auth file may have");
        }
        Ok(Some(bytes))
    }

    /// Applies `change` to the document; the number of entries removed.
    fn edit(&self, document: &mut Map<String, Value>, change: &Change) -> Result<usize> {
        apply_change(document, change).map_err(|e| err!("{}: {e}", self.path.display()))
    }

    /// Replaces the file with `document`: a new file, mode 0600, written
    /// and synced beside it, renamed over it, the directory synced.
    fn replace(&self, dir: &OwnedFd, document: &Map<String, Value>) -> Result<()> {
        let path = self.path.display();
        let bytes = to_json(document);
        let prefix = format!(".{}.", self.name);
        let (temp, mut file) = nofollow::create_unique(dir.as_fd(), &prefix, ".tmp", 0o600)
            .with_context(|| format!("{path}: cannot create a file beside it"))?;
        let written = rfs::fchmod(&file, Mode::from_raw_mode(0o600))
            .map_err(io::Error::from)
            .and_then(|()| file.write_all(&bytes))
            .and_then(|()| file.sync_all())
            .and_then(|()| nofollow::rename(dir.as_fd(), &temp, self.name.as_bytes()));
        if let Err(e) = written {
            nofollow::remove_file(dir.as_fd(), temp.as_bytes());
            return Err(e).with_context(|| format!("{path}: cannot write"));
        }
        rfs::fsync(dir).with_context(|| format!("{path}: cannot sync its directory"))
    }
}

/// What [`Change`] does to a document: the number of entries removed, or
/// why it cannot be done (a message without the path).
fn apply_change(document: &mut Map<String, Value>, change: &Change) -> Result<usize, String> {
    let creating = matches!(change, Change::Store(..));
    if !creating && !document.contains_key("auths") {
        return match change {
            Change::Remove(key) => Err(format!("not logged in to {key}")),
            _ => Ok(0),
        };
    }
    if let Change::Store(key, _) = change {
        refuse_helper_registry(document, key)?;
    }
    let auths = document
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err("\"auths\" is not a JSON object".to_owned());
    };
    match change {
        Change::Store(key, secret) => {
            let Secret::Basic { username, password } = secret else {
                return Err("only a user name and password can be stored".to_owned());
            };
            let auth = STANDARD.encode(format!("{username}:{password}"));
            let entry = serde_json::json!({ "auth": auth });
            Ok(usize::from(auths.insert(key.to_string(), entry).is_some()))
        }
        Change::Remove(key) => {
            let wanted = normalize_key(&key.to_string());
            let before = auths.len();
            auths.retain(|written, _| normalize_key(written) != wanted);
            match before - auths.len() {
                0 => Err(format!("not logged in to {key}")),
                removed => Ok(removed),
            }
        }
        Change::RemoveAll => {
            let removed = auths.len();
            auths.clear();
            Ok(removed)
        }
    }
}

/// A `credHelpers` entry for the key's registry is asked before `auths`
/// (by this tool and by Docker): an entry stored beside it would never be
/// used.
fn refuse_helper_registry(document: &Map<String, Value>, key: &Key) -> Result<(), String> {
    let Some(Value::Object(helpers)) = document.get("credHelpers") else {
        return Ok(());
    };
    let helper = helpers
        .iter()
        .find(|(registry, _)| normalize_key(registry) == key.registry());
    match helper {
        Some((_, name)) => Err(format!(
            "{}'s credentials are kept by the credential helper {} (credHelpers), which \
             is asked first: log in with that helper's tool, or remove its credHelpers entry",
            key.registry(),
            name.as_str()
                .map_or_else(|| name.to_string(), |n| format!("docker-credential-{n}"))
        )),
        None => Ok(()),
    }
}

/// The file's bytes as podman and skopeo write them: indented with tabs,
/// keys sorted, no newline at the end.
fn to_json(document: &Map<String, Value>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(document, &mut serializer)
        .expect("a JSON value serializes into memory");
    bytes
}

/// Opens an existing directory, following symlinks as any path does (the
/// user's `~/.docker` may be one).
fn open_existing_dir(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rfs::open(dir, flags, Mode::empty()).map_err(io::Error::from)
}

/// Opens `dir`, first making each missing directory of it with mode
/// 0700 (whatever the umask). A made directory is made and opened
/// relative to its parent's descriptor with no-follow, so nothing planted
/// meanwhile redirects the ones after it.
fn make_dirs(dir: &Path) -> io::Result<OwnedFd> {
    match open_existing_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return open_existing_dir(dir);
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let parent = make_dirs(parent)?;
    let name = name.as_encoded_bytes();
    match rfs::mkdirat(&parent, c_path(name), Mode::from_raw_mode(0o700)) {
        Ok(()) => {
            let made = nofollow::open_dir(parent.as_fd(), name)?;
            rfs::fchmod(&made, Mode::from_raw_mode(0o700))?;
            Ok(made)
        }
        // Made meanwhile by someone else: used as any existing one.
        Err(Errno::EXIST) => open_existing_dir(dir),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
