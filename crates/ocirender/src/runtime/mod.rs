//! An image's run configuration as an OCI runtime bundle's `config.json`
//! (`oci-runtime-config`): the image config's `Env`, `Entrypoint`/`Cmd`,
//! `WorkingDir`, `User`, exposed ports, volumes and labels, converted by
//! the image spec's `conversion.md` onto a default sandbox.
//!
//! * `image`: the image config read (OCI or Docker; Linux only);
//! * `user`: `Config.User` resolved as runc resolves it, against the
//!   files `etc_files` reads inside the root filesystem;
//! * `template`: the default runtime config (umoci's, which runc and crun
//!   run); `convert` applies the image to it; `rootless` adapts it for
//!   an unprivileged user; `spec` writes it.
//!
//! The result matches `umoci unpack` 0.4.7 (Debian 12's) field for field,
//! except where umoci breaks `conversion.md` or where a bundle run by
//! scripts wants otherwise:
//!
//! * labels win over the annotations derived from the image (umoci sets
//!   `org.opencontainers.image.os` and the like over a label of that key;
//!   the spec says the label wins);
//! * a derived annotation with no value is left out (umoci writes `""`
//!   for a missing author, stop signal or port list, and
//!   `0001-01-01T00:00:00Z` for a missing `created`); `created` is copied
//!   as the image has it (umoci re-formats it, which changes only
//!   timestamps Go did not write); `variant`, `os.version` and
//!   `os.features` (comma-joined) are annotated too, as the spec now asks;
//! * an image's own `HOME` is kept (umoci overwrites it with the user's
//!   home from `/etc/passwd`);
//! * volumes are mounted in sorted order (umoci's order is random);
//! * `process.terminal` is false, for a bundle run by scripts with its
//!   output piped (umoci: true); `--terminal` asks for one, and with it
//!   comes `TERM=xterm` unless the image sets `TERM` (umoci always adds
//!   it), as `docker run -t` does;
//! * `hostname` is `container` (umoci: `umoci-default`);
//! * a relative `WorkingDir` or volume is refused (the runtime spec needs
//!   absolute paths; runc refuses a relative `cwd`);
//! * `/etc/passwd` and `/etc/group` are read inside the root filesystem,
//!   symlinks included (umoci follows their symlinks on the host); one
//!   that exists but is no regular file of at most 4 MiB, or cannot be
//!   read, is an error (umoci reads it as empty, or as absent); their `#`
//!   comments are skipped, an entry's id that no uid_t holds is refused
//!   (umoci wraps it) and so is a home directory that is not UTF-8 (see
//!   `user` and `etc_files`);
//! * `--rootless`: see `rootless`.
//!
//! Like umoci, a bare numeric user that has an `/etc/passwd` entry gets its
//! supplementary groups, as `config.md` and runc have it (`conversion.md`
//! says it should not), and an image with neither `Entrypoint` nor `Cmd`
//! runs `sh`.
//!
//! The output is JSON indented with tabs and ends in a newline. Keys are
//! in the runtime spec's order; annotations are sorted. Unlike Go, `<`,
//! `>` and `&` are not escaped in strings: the same JSON values.

mod convert;
mod error;
mod etc_files;
mod image;
mod rootless;
mod spec;
mod template;
mod user;

pub use error::{Error, UserError};
pub use etc_files::MAX_ETC_FILE;
pub use image::{read_image_config, MAX_IMAGE_CONFIG};

use std::path::{Path, PathBuf};

/// How to make the runtime config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The root filesystem: its `/etc/passwd` and `/etc/group` resolve the
    /// user, and its last path component is `root.path` (the bundle's
    /// `config.json` sits next to it).
    pub rootfs: PathBuf,
    /// Ask the runtime for a terminal (and set `TERM=xterm`).
    pub terminal: bool,
    /// A config for an unprivileged user (see the `rootless` module).
    pub rootless: bool,
    /// Read the rootfs's files without `openat2` (for tests).
    pub force_walk: bool,
}

/// The `config.json` for the image config `image_config` (its JSON bytes).
pub fn runtime_config(image_config: &[u8], options: &Options) -> Result<Vec<u8>, Error> {
    let image = image::ImageConfig::parse(image_config)?;
    let mut spec = template::template(root_path(&options.rootfs)?);
    let files = etc_files::read_etc_files(&options.rootfs, options.force_walk)?;
    let user_spec = image.exec().user.unwrap_or_default();
    let user = user::resolve(&user_spec, files.passwd.as_deref(), files.group.as_deref()).map_err(
        |problem| Error::User {
            spec: user_spec.clone(),
            problem,
        },
    )?;
    convert::apply_image(&mut spec, &image, &user, options.terminal)?;
    if options.rootless {
        rootless::make_rootless(&mut spec, &rootless::Host::current()?)?;
    }
    Ok(spec.to_json())
}

/// `root.path`: the rootfs's last component, since runtimes resolve it
/// from the bundle directory, where `config.json` is.
fn root_path(rootfs: &Path) -> Result<String, Error> {
    rootfs
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::RootfsName(rootfs.to_owned()))
}

#[cfg(test)]
mod tests;
