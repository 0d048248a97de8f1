//! Finding registry credentials where users already keep them.
//!
//! Nobody should have to log in again for this tool: `docker login`,
//! `podman login` and `skopeo login` have already written credentials into
//! one of a few well-known files, or into a credential helper those files
//! name. This module reads the same files in the same order as podman and
//! skopeo (containers' `auth.json` first, then Docker's `config.json`), and
//! remembers where each credential came from so an "access denied" can say
//! which file or helper to fix. Secrets never reach a `Debug` or an error.

use crate::error::{bail, err, Context, Result};
use crate::source::reference::Reference;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker uses for Docker Hub in config files and helpers.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A user name and password (or a personal access token), sent as basic
    /// auth to the registry or its token service.
    Basic {
        /// The user name, safe to show.
        username: String,
        /// The password; never shown.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged for access
    /// tokens at the token service; never shown.
    IdentityToken(String),
}

impl Secret {
    /// The user name, when the credential has one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Secret::Basic { username, .. } => Some(username),
            Secret::IdentityToken(_) => None,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Secret::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// A credential and where it was found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The credential.
    pub secret: Secret,
    /// The file it was read from, or `docker-credential-NAME`.
    pub source: String,
}

/// Looks up credentials for `reference`'s registry and repository.
///
/// With `authfile` (`--authfile`) only that file is read; otherwise the
/// usual files in the usual order (see `candidate_files`). Returns the
/// first credential found and every file looked for, found or not, so a
/// refusal can tell the user where credentials were expected.
pub fn lookup(
    reference: &Reference,
    authfile: Option<&Path>,
) -> Result<(Option<Found>, Vec<PathBuf>)> {
    Environment::from_process().lookup(reference, authfile)
}

/// The file `oci-login` writes without `--authfile`: `REGISTRY_AUTH_FILE`,
/// else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/UID/auth.json` (the first file [`lookup`] reads).
pub fn login_file() -> Result<PathBuf> {
    Environment::from_process().login_file()
}

/// The environment variables the lookup depends on, captured so tests can
/// give their own without touching the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// The real user id, for `/run/containers/UID/auth.json`, where
    /// podman and skopeo keep credentials when `XDG_RUNTIME_DIR` is unset
    /// (a login over `su` or from cron); `None` in tests.
    pub uid: Option<u32>,
    pub xdg_config_home: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// `PATH`, where `docker-credential-*` helpers are looked for.
    pub path: Option<OsString>,
}

impl Environment {
    fn from_process() -> Environment {
        // An empty variable counts as unset, as in the Go tools.
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Environment {
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            uid: Some(rustix::process::getuid().as_raw()),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            path: var("PATH"),
        }
    }

    pub(crate) fn lookup(
        &self,
        reference: &Reference,
        authfile: Option<&Path>,
    ) -> Result<(Option<Found>, Vec<PathBuf>)> {
        let files = match authfile {
            Some(file) => vec![file.to_owned()],
            None => self.candidate_files(),
        };
        for file in &files {
            if let Some(found) = self.lookup_in_file(reference, file)? {
                return Ok((Some(found), files));
            }
        }
        Ok((None, files))
    }

    /// The files podman/skopeo read, then Docker's: `REGISTRY_AUTH_FILE`,
    /// the session's auth file ([`Environment::runtime_auth_file`]),
    /// `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`),
    /// `$DOCKER_CONFIG/config.json` (default `~/.docker`).
    pub(crate) fn candidate_files(&self) -> Vec<PathBuf> {
        let home = |relative: &str| self.home.as_ref().map(|home| home.join(relative));
        let config_home = self.xdg_config_home.clone().or_else(|| home(".config"));
        let docker = self.docker_config.clone().or_else(|| home(".docker"));
        [
            self.registry_auth_file.clone(),
            self.runtime_auth_file(),
            config_home.map(|dir| dir.join("containers/auth.json")),
            docker.map(|dir| dir.join("config.json")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The auth file of the login session, where podman and skopeo log in
    /// by default: `$XDG_RUNTIME_DIR/containers/auth.json`, or, without
    /// `XDG_RUNTIME_DIR`, `/run/containers/UID/auth.json`.
    fn runtime_auth_file(&self) -> Option<PathBuf> {
        match (&self.xdg_runtime_dir, self.uid) {
            (Some(dir), _) => Some(dir.join("containers/auth.json")),
            (None, Some(uid)) => Some(PathBuf::from(format!("/run/containers/{uid}/auth.json"))),
            (None, None) => None,
        }
    }

    /// The file a login writes when no `--authfile` is given: the first
    /// one [`Environment::lookup`] reads, as podman and skopeo choose it.
    /// An `XDG_RUNTIME_DIR` that does not exist is an error, as there:
    /// the directory is the session's, made by the login manager, and
    /// one made here would not be cleaned at logout.
    pub(crate) fn login_file(&self) -> Result<PathBuf> {
        if let Some(file) = &self.registry_auth_file {
            return Ok(file.clone());
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            if !dir.is_dir() {
                bail!(
                    "XDG_RUNTIME_DIR ({}) is not a directory: create it, unset \
                     XDG_RUNTIME_DIR, or give --authfile",
                    dir.display()
                );
            }
        }
        self.runtime_auth_file()
            .ok_or_else(|| err!("no auth file: give --authfile"))
    }

    /// One file: a registry's `credHelpers` entry, then `auths` from the
    /// most specific key, then the `credsStore` default helper. A missing
    /// file has nothing; an unreadable or malformed one is an error, as in
    /// Docker, since silently ignoring it would hide the user's mistake.
    fn lookup_in_file(&self, reference: &Reference, file: &Path) -> Result<Option<Found>> {
        let text = match std::fs::read(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let config: ConfigFile = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a valid auth file", file.display()))?;
        let helpers = normalize_keys(&config.cred_helpers);
        if let Some(helper) = helpers.get(reference.registry.as_str()) {
            return self.run_helper(helper, reference, file);
        }
        let auths = normalize_keys(&config.auths);
        for key in keys_for(reference) {
            if let Some(entry) = auths.get(key.as_str()) {
                let source = file.display().to_string();
                if let Some(secret) = entry.secret(&source, &key)? {
                    return Ok(Some(Found { secret, source }));
                }
            }
        }
        match &config.creds_store {
            Some(store) if !store.is_empty() => self.run_helper(store, reference, file),
            _ => Ok(None),
        }
    }

    /// Runs `docker-credential-NAME get` with the registry's server name on
    /// stdin, Docker's credential helper protocol.
    fn run_helper(&self, name: &str, reference: &Reference, file: &Path) -> Result<Option<Found>> {
        let program = format!("docker-credential-{name}");
        let path = self.find_program(&program).ok_or_else(|| {
            err!(
                "credential helper {program} (named in {}) is not installed in PATH",
                file.display()
            )
        })?;
        let output = run_with_stdin(&path, helper_server(reference))
            .with_context(|| format!("running credential helper {program}"))?;
        if !output.status.success() {
            let said = first_line(&output.stdout, &output.stderr);
            if said.to_ascii_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            bail!(
                "credential helper {program} (named in {}) failed ({}): {said}",
                file.display(),
                output.status
            );
        }
        let reply: HelperReply = serde_json::from_slice(&output.stdout)
            .map_err(|_| err!("credential helper {program} printed no valid credential JSON"))?;
        let secret = if reply.username == "<token>" {
            Secret::IdentityToken(reply.secret)
        } else {
            Secret::Basic {
                username: reply.username,
                password: reply.secret,
            }
        };
        Ok(Some(Found {
            secret,
            source: program,
        }))
    }

    /// `PATH` search done here, so the `PATH` used is the captured one.
    fn find_program(&self, program: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|dir| dir.join(program))
            .find(|candidate| {
                candidate
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }
}

fn run_with_stdin(program: &Path, input: &str) -> std::io::Result<std::process::Output> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A helper that exits without reading makes this a broken pipe; its
    // exit status says more, so that error is not the one reported.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output()
}

/// The helper's first line of output (stdout, else stderr), for errors.
fn first_line(stdout: &[u8], stderr: &[u8]) -> String {
    let text = if stdout.iter().any(|b| !b.is_ascii_whitespace()) {
        stdout
    } else {
        stderr
    };
    let text = String::from_utf8_lossy(text);
    let line = text.trim().lines().next().unwrap_or("no output");
    line.chars().take(200).collect()
}

/// The server name a helper is asked about: Docker Hub's historical URL,
/// or the registry host.
fn helper_server(reference: &Reference) -> &str {
    if reference.registry == "docker.io" {
        DOCKER_HUB_SERVER
    } else {
        &reference.registry
    }
}

/// `auths` keys to try, most specific first: `registry/ns/repo`, …,
/// `registry`.
fn keys_for(reference: &Reference) -> Vec<String> {
    let full = reference.name();
    let mut keys = vec![full.clone()];
    let mut rest = full.as_str();
    while let Some((parent, _)) = rest.rsplit_once('/') {
        keys.push(parent.to_owned());
        rest = parent;
    }
    keys
}

/// Keys as written (`https://index.docker.io/v1/`, `http://host:5000`,
/// `host/ns`) in the form [`keys_for`] produces; when two keys normalize to
/// the same name, the one written without a URL scheme wins.
fn normalize_keys<T>(map: &HashMap<String, T>) -> HashMap<String, &T> {
    let mut sorted: Vec<_> = map.iter().collect();
    // URL-form keys first, so plain keys overwrite them.
    sorted.sort_by_key(|(key, _)| (!key.contains("://"), key.as_str()));
    sorted
        .into_iter()
        .map(|(key, value)| (normalize_key(key), value))
        .collect()
}

pub(super) fn normalize_key(key: &str) -> String {
    let key = key.trim();
    let (key, is_url) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (rest, true),
        None => (key, false),
    };
    // A URL names a registry; its path is an API version (`/v1/`), not a
    // repository, as in Docker's `ConvertToHostname`.
    let key = if is_url {
        key.split('/').next().unwrap_or(key)
    } else {
        key.trim_end_matches('/')
    };
    let key = key.to_ascii_lowercase();
    let (host, path) = key.split_once('/').unwrap_or((&key, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        host => host,
    };
    if path.is_empty() {
        host.to_owned()
    } else {
        format!("{host}/{path}")
    }
}

/// The parts of `config.json` / `auth.json` this module reads.
#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl AuthEntry {
    /// The entry's credential: an identity token, base64 `user:password`
    /// in `auth`, or separate `username` and `password`. An empty entry
    /// (Docker Desktop writes those next to `credsStore`) has none.
    fn secret(&self, source: &str, key: &str) -> Result<Option<Secret>> {
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        if let Some(token) = non_empty(&self.identitytoken) {
            return Ok(Some(Secret::IdentityToken(token)));
        }
        if let Some(auth) = non_empty(&self.auth) {
            return decode_auth(&auth)
                .map(Some)
                .with_context(|| format!("{source}: bad \"auth\" value for {key:?}"));
        }
        match (non_empty(&self.username), non_empty(&self.password)) {
            (Some(username), Some(password)) => Ok(Some(Secret::Basic { username, password })),
            _ => Ok(None),
        }
    }
}

/// Base64 `user:password`, padded or not. The error never quotes the value.
fn decode_auth(auth: &str) -> Result<Secret> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = LENIENT
        .decode(auth.trim())
        .map_err(|_| err!("not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| err!("not UTF-8 once decoded"))?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| err!("not \"user:password\" once decoded"))?;
    Ok(Secret::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// What a `docker-credential-*` helper prints for `get`.
#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use std::fs;

    fn reference(text: &str) -> Reference {
        text.parse().unwrap()
    }

    fn basic(user: &str, password: &str) -> Secret {
        Secret::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    fn auth(user_password: &str) -> String {
        STANDARD.encode(user_password)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// An environment whose every location is inside `dir`.
    fn environment(dir: &Path) -> Environment {
        Environment {
            home: Some(dir.join("home")),
            path: Some(dir.join("bin").into_os_string()),
            ..Environment::default()
        }
    }

    fn write_helper(dir: &Path, name: &str, script: &str) {
        let path = dir.join("bin").join(format!("docker-credential-{name}"));
        write(&path, &format!("#!/bin/sh\n{script}\n"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn matches_auths_keys_most_specific_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let config = serde_json::json!({"auths": {
            "quay.io": {"auth": auth("registry-user:p1")},
            "quay.io/org": {"auth": auth("org-user:p2")},
            "quay.io/org/app": {"auth": auth("app-user:p:3")},
            "https://index.docker.io/v1/": {"auth": auth("hub:p4")},
            "http://localhost:5000": {"auth": auth("local:p5")},
            "ghcr.io": {"identitytoken": "refresh"},
            "registry.example": {"username": "u", "password": "p6"},
            "empty.example": {},
        }});
        write(&file, &config.to_string());
        let env = Environment::default();
        let cases = [
            ("quay.io/org/app", Some(basic("app-user", "p:3"))),
            ("quay.io/org/other", Some(basic("org-user", "p2"))),
            ("quay.io/elsewhere/x", Some(basic("registry-user", "p1"))),
            ("debian", Some(basic("hub", "p4"))),
            ("localhost:5000/a", Some(basic("local", "p5"))),
            ("localhost:5001/a", None),
            ("ghcr.io/a/b", Some(Secret::IdentityToken("refresh".into()))),
            ("registry.example/a", Some(basic("u", "p6"))),
            ("empty.example/a", None),
        ];
        for (input, expected) in cases {
            let (found, files) = env.lookup(&reference(input), Some(&file)).unwrap();
            assert_eq!(
                found.as_ref().map(|f| &f.secret),
                expected.as_ref(),
                "{input}"
            );
            assert_eq!(files, vec![file.clone()]);
            if let Some(found) = found {
                assert_eq!(found.source, file.display().to_string());
            }
        }
    }

    #[test]
    fn reads_files_in_podman_then_docker_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = environment(dir.path());
        env.xdg_runtime_dir = Some(dir.path().join("run"));
        let runtime = dir.path().join("run/containers/auth.json");
        let config_home = dir.path().join("home/.config/containers/auth.json");
        let docker = dir.path().join("home/.docker/config.json");
        let one = |user: &str| {
            serde_json::json!({"auths": {"quay.io": {"auth": auth(&format!("{user}:pw"))}}})
                .to_string()
        };
        write(&docker, &one("docker"));
        let r = reference("quay.io/a/b");
        let (found, files) = env.lookup(&r, None).unwrap();
        assert_eq!(
            files,
            vec![runtime.clone(), config_home.clone(), docker.clone()]
        );
        assert_eq!(found.unwrap().secret.username(), Some("docker"));

        write(&config_home, &one("config-home"));
        let (found, _) = env.lookup(&r, None).unwrap();
        assert_eq!(found.unwrap().secret.username(), Some("config-home"));

        write(&runtime, &one("runtime"));
        let (found, _) = env.lookup(&r, None).unwrap();
        assert_eq!(found.unwrap().secret.username(), Some("runtime"));

        let explicit = dir.path().join("registry-auth-file.json");
        write(&explicit, &one("explicit"));
        env.registry_auth_file = Some(explicit.clone());
        let (found, files) = env.lookup(&r, None).unwrap();
        assert_eq!(files[0], explicit);
        assert_eq!(found.unwrap().secret.username(), Some("explicit"));

        // --authfile is the only file read.
        let (found, files) = env.lookup(&r, Some(&dir.path().join("none"))).unwrap();
        assert!(found.is_none());
        assert_eq!(files, vec![dir.path().join("none")]);

        env.docker_config = Some(dir.path().join("dc"));
        env.xdg_config_home = Some(dir.path().join("xdg"));
        env.registry_auth_file = None;
        let files = env.candidate_files();
        assert_eq!(files[1], dir.path().join("xdg/containers/auth.json"));
        assert_eq!(files[2], dir.path().join("dc/config.json"));
    }

    /// Where a login writes: the first file read, chosen as podman does.
    #[test]
    fn the_login_file_is_the_first_file_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Environment {
            uid: Some(1234),
            ..environment(dir.path())
        };
        let session = PathBuf::from("/run/containers/1234/auth.json");
        assert_eq!(env.candidate_files()[0], session);
        assert_eq!(env.login_file().unwrap(), session);

        env.xdg_runtime_dir = Some(dir.path().to_owned());
        let runtime = dir.path().join("containers/auth.json");
        assert_eq!(env.candidate_files()[0], runtime);
        assert_eq!(env.login_file().unwrap(), runtime);

        env.xdg_runtime_dir = Some(dir.path().join("gone"));
        let e = env.login_file().unwrap_err().to_string();
        assert!(e.contains("XDG_RUNTIME_DIR") && e.contains("gone"), "{e}");

        env.registry_auth_file = Some(dir.path().join("explicit.json"));
        assert_eq!(env.candidate_files()[0], dir.path().join("explicit.json"));
        assert_eq!(env.login_file().unwrap(), dir.path().join("explicit.json"));
    }

    #[test]
    fn malformed_files_are_errors_that_hide_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let r = reference("quay.io/a");
        write(&file, "{not json");
        let e = Environment::default().lookup(&r, Some(&file)).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid auth file"), "{e:#}");

        write(
            &file,
            r#"{"auths": {"quay.io": {"auth": "c2VjcmV0LXdpdGhvdXQtY29sb24="}}}"#,
        );
        let e = format!(
            "{:#}",
            Environment::default().lookup(&r, Some(&file)).unwrap_err()
        );
        assert!(e.contains("bad \"auth\" value"), "{e}");
        assert!(
            !e.contains("c2VjcmV0") && !e.contains("secret-without"),
            "{e}"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!(
            "{:?} {:?}",
            basic("alice", "hunter2"),
            Secret::IdentityToken("refresh-me".into())
        );
        assert!(shown.contains("alice"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("refresh-me"),
            "{shown}"
        );
    }

    #[test]
    fn runs_credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let env = environment(dir.path());
        let file = dir.path().join("config.json");
        // The helper echoes the server it was asked about as the user name.
        write_helper(
            dir.path(),
            "echo",
            r#"read server; printf '{"ServerURL":"%s","Username":"%s","Secret":"s3cret"}' "$server" "$server""#,
        );
        write_helper(
            dir.path(),
            "token",
            r#"echo '{"Username":"<token>","Secret":"rt"}'"#,
        );
        write_helper(
            dir.path(),
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        write_helper(dir.path(), "broken", "echo 'keychain locked' >&2; exit 3");
        let config = serde_json::json!({
            "credHelpers": {"quay.io": "echo", "ghcr.io": "token", "none.example": "none",
                            "broken.example": "broken", "missing.example": "missing"},
            "credsStore": "echo",
            "auths": {"none.example": {"auth": auth("fallback:pw")}},
        });
        write(&file, &config.to_string());

        let found = |input: &str| env.lookup(&reference(input), Some(&file)).unwrap().0;
        let quay = found("quay.io/a/b").unwrap();
        assert_eq!(quay.secret, basic("quay.io", "s3cret"));
        assert_eq!(quay.source, "docker-credential-echo");
        // credsStore for everything else; Docker Hub is asked by its URL.
        let hub = found("debian").unwrap();
        assert_eq!(hub.secret.username(), Some(DOCKER_HUB_SERVER));
        let port = found("localhost:5000/a").unwrap();
        assert_eq!(port.secret.username(), Some("localhost:5000"));
        assert_eq!(
            found("ghcr.io/a").unwrap().secret,
            Secret::IdentityToken("rt".into())
        );
        // A helper's "not found" is no credential, even with an auths entry
        // (credHelpers decide for their registry, as in Docker).
        assert!(found("none.example/a").is_none());

        let error = |input: &str| {
            format!(
                "{:#}",
                env.lookup(&reference(input), Some(&file)).unwrap_err()
            )
        };
        let broken = error("broken.example/a");
        assert!(
            broken.contains("docker-credential-broken") && broken.contains("keychain locked"),
            "{broken}"
        );
        let missing = error("missing.example/a");
        assert!(
            missing.contains("docker-credential-missing") && missing.contains("not installed"),
            "{missing}"
        );
    }

    #[test]
    fn normalizes_keys() {
        let cases = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io/library/x", "docker.io/library/x"),
            ("http://localhost:5000/v2/", "localhost:5000"),
            ("Quay.io/org/", "quay.io/org"),
            ("docker.io", "docker.io"),
        ];
        for (key, normalized) in cases {
            assert_eq!(normalize_key(key), normalized, "{key}");
        }
        let r = reference("host:5000/a/b/c");
        assert_eq!(
            keys_for(&r),
            [
                "host:5000/a/b/c",
                "host:5000/a/b",
                "host:5000/a",
                "host:5000"
            ]
        );
    }
}
