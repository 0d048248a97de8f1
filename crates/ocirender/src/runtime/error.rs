//! Why an image config could not become a runtime config.
//!
//! Each message says what is wrong; the cause (the JSON parser's
//! position, an I/O error with its kind) is the error's `source`, which
//! `{:#}` appends.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why `oci-runtime-config` refuses.
#[derive(Debug)]
pub enum Error {
    /// The input is not JSON at all.
    NotJson(serde_json::Error),
    /// JSON, but not an image config: a required field is missing or has
    /// the wrong type (a manifest or an index has no `os`).
    NotImageConfig(serde_json::Error),
    /// The input cannot be read.
    Read(io::Error),
    /// The input is larger than an image config is allowed to be.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// An image for another operating system: a Linux runtime cannot run it.
    UnsupportedOs(String),
    /// A `Config.Env` entry without `=`, or with an empty name.
    BadEnv(String),
    /// A path that the runtime spec wants absolute is not.
    RelativePath {
        /// The image config field (`Config.WorkingDir`, `Config.Volumes`).
        field: &'static str,
        /// Its value.
        path: String,
    },
    /// `Config.User` cannot be resolved in the root filesystem.
    User {
        /// `Config.User` as the image has it.
        spec: String,
        /// What is wrong with it.
        problem: UserError,
    },
    /// The root filesystem cannot be opened.
    Rootfs {
        /// The directory given.
        path: PathBuf,
        /// Why it cannot be opened.
        source: io::Error,
    },
    /// The root filesystem's path has no last component to name it by in
    /// `root.path` (`.`, `..`, `/`).
    RootfsName(PathBuf),
    /// `/etc/passwd` or `/etc/group` of the root filesystem cannot be read
    /// (it exists but is not a regular file, is too large, or is unreadable).
    EtcFile {
        /// The file, as the container sees it (`/etc/passwd`).
        path: &'static str,
        /// Why it cannot be read.
        source: io::Error,
    },
    /// `--rootless` maps only the invoking user, to root, but the image
    /// runs as another user.
    RootlessUser {
        /// The user the image runs as.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// `--rootless` binds the host's `/etc/resolv.conf`, which cannot be
    /// inspected.
    HostResolvConf(io::Error),
}

/// Why `Config.User` names nobody the container has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// A user name with no `/etc/passwd` entry.
    NoSuchUser {
        /// The name.
        name: String,
        /// True when the root filesystem has no `/etc/passwd` at all.
        no_file: bool,
    },
    /// A group name with no `/etc/group` entry.
    NoSuchGroup {
        /// The name.
        name: String,
        /// True when the root filesystem has no `/etc/group` at all.
        no_file: bool,
    },
    /// A numeric uid or gid outside 0-2147483647 (runc's range).
    OutOfRange(i64),
    /// An `/etc/passwd` or `/etc/group` entry with an id that is no uid_t.
    EntryOutOfRange {
        /// `/etc/passwd` or `/etc/group`.
        file: &'static str,
        /// The entry's name.
        name: String,
        /// Its id.
        id: i64,
    },
    /// The user's home directory in `/etc/passwd` is not UTF-8, so it
    /// cannot be written to `HOME` in JSON.
    HomeNotUtf8(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotJson(_) => write!(f, "not JSON"),
            Error::NotImageConfig(_) => write!(f, "not an image config"),
            Error::Read(_) => write!(f, "cannot read the image config"),
            Error::TooLarge { limit } => {
                write!(f, "larger than {limit} bytes: not an image config")
            }
            Error::UnsupportedOs(os) => write!(
                f,
                "the image is for os {os:?}: a runtime bundle needs a linux image"
            ),
            Error::BadEnv(entry) => write!(
                f,
                "Config.Env entry {entry:?} is not NAME=VALUE with a non-empty NAME"
            ),
            Error::RelativePath { field, path } => {
                write!(f, "{field} {path:?} is not an absolute path")
            }
            Error::User { spec, .. } => write!(f, "Config.User {spec:?}"),
            Error::Rootfs { path, .. } => {
                write!(f, "cannot open the rootfs {}", path.display())
            }
            Error::RootfsName(path) => write!(
                f,
                "--rootfs {} does not end in a directory name (UTF-8) to write as root.path",
                path.display()
            ),
            Error::EtcFile { path, .. } => write!(f, "cannot read {path} of the rootfs"),
            Error::RootlessUser { uid, gid } => write!(
                f,
                "the image runs as {uid}:{gid}, but --rootless maps only your own \
                 uid and gid, to 0:0"
            ),
            Error::HostResolvConf(_) => {
                write!(f, "--rootless: cannot inspect the host's /etc/resolv.conf")
            }
        }
    }
}

impl From<Error> for crate::error::Error {
    fn from(err: Error) -> Self {
        let io_kind = match &err {
            Error::Read(e) | Error::HostResolvConf(e) => Some(e.kind()),
            Error::Rootfs { source, .. } | Error::EtcFile { source, .. } => Some(source.kind()),
            _ => None,
        };
        let kind = io_kind.map_or(
            crate::error::ErrorKind::Invalid,
            crate::error::ErrorKind::Io,
        );
        crate::error::Error::from_source(kind, err)
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::NoSuchUser { name, no_file } => {
                write!(f, "no user {name:?} in /etc/passwd")?;
                missing_file(f, *no_file)
            }
            UserError::NoSuchGroup { name, no_file } => {
                write!(f, "no group {name:?} in /etc/group")?;
                missing_file(f, *no_file)
            }
            UserError::OutOfRange(id) => {
                write!(f, "id {id} is not in the range 0-2147483647")
            }
            UserError::EntryOutOfRange { file, name, id } => {
                write!(f, "{file} gives {name:?} the id {id}, which is no valid id")
            }
            UserError::HomeNotUtf8(name) => {
                write!(
                    f,
                    "the home directory of {name:?} in /etc/passwd is not UTF-8"
                )
            }
        }
    }
}

fn missing_file(f: &mut fmt::Formatter<'_>, no_file: bool) -> fmt::Result {
    if no_file {
        write!(f, " (the rootfs has no such file)")?;
    }
    Ok(())
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::NotJson(e) | Error::NotImageConfig(e) => Some(e),
            Error::Rootfs { source, .. } | Error::EtcFile { source, .. } => Some(source),
            Error::HostResolvConf(e) | Error::Read(e) => Some(e),
            Error::User { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

impl std::error::Error for UserError {}
