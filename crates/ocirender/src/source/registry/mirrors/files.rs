//! Which registries.conf files are read, and how they add up, as
//! containers/image decides it (`newConfigWrapperWithHomeDir`,
//! `tryUpdatingCache`):
//!
//! 1. `--registries-conf FILE`: that file only (it must exist), like
//!    `--authfile` for credentials: a test or a site script gets exactly
//!    what it wrote;
//! 2. else `$CONTAINERS_REGISTRIES_CONF` (as podman honours it; it must
//!    exist) as the main file, with the drop-ins of 4;
//! 3. else, if `$HOME/.config/containers/registries.conf` exists, it is the
//!    main file and `$HOME/.config/containers/registries.conf.d` the only
//!    drop-in directory: the system's files are not read at all;
//! 4. else `/etc/containers/registries.conf` (missing: nothing configured),
//!    then the drop-ins of `/etc/containers/registries.conf.d` and
//!    `$HOME/.config/containers/registries.conf.d`.
//!
//! Drop-ins are the `*.conf` files of a directory in byte order of their
//! names (subdirectories are not entered). A later file's `[[registry]]`
//! replaces an earlier one with the same prefix whole, mirrors included.

use super::conf::{self, FileKind, RegistryEntry};
use crate::error::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest registries.conf file read (a real one is a few KiB).
pub const MAX_FILE: u64 = 1 << 20;
/// The most drop-in files read from one directory.
pub const MAX_DROP_INS: usize = 1000;

const SYSTEM_FILE: &str = "/etc/containers/registries.conf";
const SYSTEM_DIR: &str = "/etc/containers/registries.conf.d";
const USER_FILE: &str = ".config/containers/registries.conf";
const USER_DIR: &str = ".config/containers/registries.conf.d";

/// The variables the choice depends on.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `CONTAINERS_REGISTRIES_CONF`.
    pub containers_registries_conf: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// From this process's environment; an empty variable counts as unset.
    pub fn from_process() -> Environment {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Environment {
            containers_registries_conf: var("CONTAINERS_REGISTRIES_CONF").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
        }
    }
}

/// The files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The main file.
    pub main: PathBuf,
    /// Whether it was named by the user, and so must exist.
    pub required: bool,
    /// The drop-in directories, in order.
    pub dirs: Vec<PathBuf>,
}

impl Sources {
    /// The files to read given `--registries-conf` (`explicit`), the
    /// environment, and which files exist.
    pub fn choose(
        explicit: Option<&Path>,
        env: &Environment,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Sources {
        let user_dir = env.home.as_ref().map(|home| home.join(USER_DIR));
        if let Some(file) = explicit {
            return Sources {
                main: file.to_owned(),
                required: true,
                dirs: Vec::new(),
            };
        }
        let system_and_user_dirs = || {
            std::iter::once(PathBuf::from(SYSTEM_DIR))
                .chain(user_dir.clone())
                .collect()
        };
        if let Some(file) = &env.containers_registries_conf {
            return Sources {
                main: file.clone(),
                required: true,
                dirs: system_and_user_dirs(),
            };
        }
        if let Some(home) = &env.home {
            let user_file = home.join(USER_FILE);
            if exists(&user_file) {
                return Sources {
                    main: user_file,
                    required: false,
                    dirs: user_dir.into_iter().collect(),
                };
            }
        }
        Sources {
            main: PathBuf::from(SYSTEM_FILE),
            required: false,
            dirs: system_and_user_dirs(),
        }
    }
}

/// Reads and merges the files: the `[[registry]]` entries in force, sorted
/// by prefix.
pub fn load(sources: &Sources) -> Result<Vec<RegistryEntry>> {
    let mut merged: BTreeMap<String, RegistryEntry> = BTreeMap::new();
    let mut add = |file: &Path, kind: FileKind, required: bool| -> Result<()> {
        if let Some(text) = read_capped(file, required)? {
            for entry in conf::parse(&text, file, kind)? {
                merged.insert(entry.prefix.text(), entry);
            }
        }
        Ok(())
    };
    add(&sources.main, FileKind::Main, sources.required)?;
    for dir in &sources.dirs {
        for file in drop_ins(dir)? {
            add(&file, FileKind::DropIn, false)?;
        }
    }
    Ok(merged.into_values().collect())
}

/// The text of `file`, at most [`MAX_FILE`] bytes; `None` if it does not
/// exist and was not asked for by name.
fn read_capped(file: &Path, required: bool) -> Result<Option<String>> {
    let name = file.display();
    let opened = match std::fs::File::open(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => return Ok(None),
        opened => opened.with_context(|| format!("{name}: cannot open"))?,
    };
    let metadata = opened
        .metadata()
        .with_context(|| format!("{name}: cannot stat"))?;
    if metadata.is_dir() {
        bail!("{name}: is a directory, not a registries.conf file");
    }
    let too_large = || crate::error::err!("{name}: larger than {} KiB, refused", MAX_FILE >> 10);
    if metadata.is_file() && metadata.len() > MAX_FILE {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: cannot read"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| crate::error::err!("{name}: not UTF-8 text"))
}

/// The `*.conf` files of `dir` in byte order of their names; none if it
/// does not exist.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        listing => listing.with_context(|| format!("{}: cannot list", dir.display()))?,
    };
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name();
        if is_dir || !name.as_encoded_bytes().ends_with(b".conf") {
            continue;
        }
        if names.len() == MAX_DROP_INS {
            bail!(
                "{}: more than {MAX_DROP_INS} drop-in files, refused",
                dir.display()
            );
        }
        names.push(name);
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(conf: Option<&str>, home: Option<&str>) -> Environment {
        Environment {
            containers_registries_conf: conf.map(PathBuf::from),
            home: home.map(PathBuf::from),
        }
    }

    #[test]
    fn which_files_are_read() {
        let user_file = Path::new("/h/.config/containers/registries.conf");
        let user_dir = PathBuf::from("/h/.config/containers/registries.conf.d");
        let system_dir = PathBuf::from(SYSTEM_DIR);
        let cases = [
            // flag, env var, HOME, user file exists: main, required, dirs
            (
                Some("/f.conf"),
                Some("/e.conf"),
                Some("/h"),
                true,
                ("/f.conf", true, vec![]),
            ),
            (
                None,
                Some("/e.conf"),
                Some("/h"),
                true,
                ("/e.conf", true, vec![system_dir.clone(), user_dir.clone()]),
            ),
            (
                None,
                None,
                Some("/h"),
                true,
                (user_file.to_str().unwrap(), false, vec![user_dir.clone()]),
            ),
            (
                None,
                None,
                Some("/h"),
                false,
                (
                    SYSTEM_FILE,
                    false,
                    vec![system_dir.clone(), user_dir.clone()],
                ),
            ),
            (
                None,
                None,
                None,
                false,
                (SYSTEM_FILE, false, vec![system_dir]),
            ),
        ];
        for (flag, var, home, user_exists, (main, required, dirs)) in cases {
            let exists = |path: &Path| user_exists && path == user_file;
            let sources = Sources::choose(flag.map(Path::new), &env(var, home), &exists);
            assert_eq!(
                sources,
                Sources {
                    main: PathBuf::from(main),
                    required,
                    dirs
                },
                "{flag:?} {var:?} {home:?} {user_exists}"
            );
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn registry(location: &str, mirror: &str) -> String {
        format!("[[registry]]\nlocation = \"{location}\"\n[[registry.mirror]]\nlocation = \"{mirror}\"\n")
    }

    #[test]
    fn drop_ins_replace_whole_tables_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let main = write(
            tmp.path(),
            "registries.conf",
            &format!(
                "{}{}",
                registry("quay.io", "main.lan"),
                registry("ghcr.io", "main.lan")
            ),
        );
        let system = tmp.path().join("system.d");
        let user = tmp.path().join("user.d");
        write(&system, "9-b.conf", &registry("quay.io", "nine.lan"));
        write(&system, "10-a.conf", &registry("quay.io", "ten.lan"));
        write(&system, "zz.conf.bak", &registry("quay.io", "ignored.lan"));
        write(
            &system,
            "sub.conf/x.conf",
            &registry("quay.io", "ignored.lan"),
        );
        write(
            &user,
            "1.conf",
            "[[registry]]\nlocation = \"ghcr.io\"\nblocked = true\n",
        );
        let sources = Sources {
            main,
            required: true,
            dirs: vec![system, user, tmp.path().join("missing.d")],
        };
        let entries = load(&sources).unwrap();
        let summary: Vec<_> = entries
            .iter()
            .map(|e| {
                let mirrors: Vec<_> = e.mirrors.iter().map(|m| m.location.text()).collect();
                (e.prefix.text(), e.blocked, mirrors.join(","))
            })
            .collect();
        assert_eq!(
            summary,
            [
                // The user's table replaced the main file's, mirror and all.
                ("ghcr.io".to_owned(), true, String::new()),
                // "9-b.conf" sorts after "10-a.conf".
                ("quay.io".to_owned(), false, "nine.lan".to_owned()),
            ]
        );
    }

    #[test]
    fn missing_large_and_broken_files() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.conf");
        let load_main = |main: &Path, required: bool| {
            load(&Sources {
                main: main.to_owned(),
                required,
                dirs: vec![],
            })
        };
        assert!(load_main(&missing, false).unwrap().is_empty());
        let e = format!("{:#}", load_main(&missing, true).unwrap_err());
        assert!(
            e.starts_with(&format!("{}: cannot open", missing.display())),
            "{e}"
        );
        let large = write(tmp.path(), "large.conf", &"#".repeat(MAX_FILE as usize + 1));
        let e = load_main(&large, false).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: larger than 1024 KiB, refused", large.display())
        );
        let fits = write(tmp.path(), "fits.conf", &"#".repeat(MAX_FILE as usize));
        assert!(load_main(&fits, true).unwrap().is_empty());
        let binary = tmp.path().join("binary.conf");
        std::fs::write(&binary, b"\xff\xfe").unwrap();
        let e = load_main(&binary, true).unwrap_err().to_string();
        assert!(e.ends_with("not UTF-8 text"), "{e}");
        let e = load_main(tmp.path(), true).unwrap_err().to_string();
        assert!(
            e.ends_with("is a directory, not a registries.conf file"),
            "{e}"
        );
        // A drop-in that is broken names itself and its line.
        let dir = tmp.path().join("d");
        write(
            &dir,
            "a.conf",
            "[[registry]]\nlocation = \"q.io\"\n\nlocation = 2\n",
        );
        let e = load(&Sources {
            main: missing,
            required: false,
            dirs: vec![dir.clone()],
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!("{}:4: ", dir.join("a.conf").display())),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // /dev/null is an empty configuration.
        assert!(load_main(Path::new("/dev/null"), true).unwrap().is_empty());
    }
}
