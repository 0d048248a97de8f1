//! `oci-login REGISTRY`: store registry credentials, checked with the
//! registry first, in the containers `auth.json` that `oci-fetch`, podman
//! and skopeo read; `--logout` removes them.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocirender::registry::auth_file::{AuthFile, Change, Key};
use ocirender::registry::credentials::{self, Secret};
use ocirender::registry::login::{self, Verdict};
use ocirender::registry::ClientOptions;
use ocirender_cli as cli;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const PROGRAM: &str = "oci-login";

const AFTER_HELP: &str = "\
REGISTRY
  host[:port], a URL of one (https://index.docker.io/v1/: the path is
  ignored), or host[:port]/namespace to keep credentials for part of a
  registry (quay.io/org: used for quay.io/org/... before any for quay.io).
  Docker Hub's names (docker.io, index.docker.io, registry-1.docker.io)
  are all stored as docker.io. A first component without a '.' or a
  ':port' (other than localhost) is refused: image references read it as
  a Docker Hub namespace, so credentials stored for it would never be used.

WHERE
  In --authfile FILE if given; else $REGISTRY_AUTH_FILE; else
  $XDG_RUNTIME_DIR/containers/auth.json (XDG_RUNTIME_DIR must exist);
  else /run/containers/UID/auth.json: where podman login and skopeo login
  write, and the first file oci-fetch reads. The format is theirs
  ({\"auths\": {REGISTRY: {\"auth\": base64(user:password)}}}), so each tool
  reads what the other wrote. Every other entry and field of the file is
  kept (a Docker config.json's credsStore and credHelpers too); a registry
  that the file's credHelpers names is refused, since its helper would be
  asked instead.

THE PASSWORD
  Only from stdin (--password-stdin; its lines are joined without their
  line ends, as podman does, so printf '%s\\n' works too), or typed at a
  terminal with echo off. There is no option for it: a password on the
  command line shows in ps. --username is needed unless stdin is a
  terminal, where it is asked for. Neither the password nor the stored
  auth value is ever printed.

CHECKING
  Before anything is written, the registry is asked: GET /v2/, then again
  with the credentials, as Basic auth or as a token from the token service
  its challenge names (asked with the credentials, for no repository).
  Wrong credentials: \"access denied for user USER at REGISTRY\", nothing
  written, exit 1. The same rules as oci-fetch's hold: HTTPS, or plain
  HTTP to a registry on this machine that does not speak TLS, or with
  --plain-http; credentials go to a token service only over HTTPS, on
  this machine, or at the plain-HTTP registry itself, and a login whose
  token service they may not go to fails unchecked. A registry that asks
  for no credentials at /v2/ cannot check them: they are stored with a
  warning. A token service that hands wrong credentials an anonymous token
  instead of refusing them (some do) cannot be told from one that accepts
  them. --no-verify stores without asking.

FILE SAFETY
  The file is never written in place: a new one (mode 0600) is written
  beside it, synced and renamed over it, so readers see the old file or
  the new one, and a failure leaves the old one. Directories made for it
  are mode 0700. It is opened without following a symlink: a symlink at
  its path, a file of another user, or a directory where any user may
  replace files (mode o+w without the sticky bit) is refused.

LIMITS
  The auth file is read up to 1 MiB, the password up to 64 KiB; over
  that is an error. Checking the credentials: the token service's answer
  must arrive whole within --deadline seconds; a connection silent for
  --timeout seconds is retried.

ENVIRONMENT
  REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR
                  which file is written (WHERE above)
  SSL_CERT_FILE, SSL_CERT_DIR
                  trusted certificates, instead of the system's
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (and lower case)
                  proxies, and the hosts reached without one

EXIT STATUS
  0 when the credentials were checked (unless --no-verify) and stored, or
  removed; 1 on any error, with one line on stderr and the file as it was.
  Quiet on success; -v says what was done, on one line.

EXAMPLES
  printf '%s' \"$TOKEN\" | oci-login --username ci --password-stdin ghcr.io
  oci-login quay.io                      # asks for user and password
  oci-login --authfile ./auth.json -u me --password-stdin localhost:5000 < pw
  oci-login --logout ghcr.io
  oci-login --logout --all";

/// Store registry credentials, checked with the registry first, in the
/// containers auth.json that oci-fetch, podman and skopeo read.
///
/// oci-login reads the password (or token) on stdin, never as an
/// argument, asks the registry whether it is accepted, and only then
/// writes it to auth.json, where oci-fetch finds it; --logout removes it.
/// Secrets are never printed. See docs/design.md.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = AFTER_HELP)]
struct Args {
    /// host[:port][/namespace] to log in to (or out of, with --logout).
    #[arg(required_unless_present = "all", value_name = "REGISTRY")]
    registry: Option<String>,
    /// The user name (asked for if stdin is a terminal and it is not given).
    #[arg(long, short = 'u', value_name = "USER")]
    username: Option<String>,
    /// Read the password from stdin (needs --username).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Write this file instead of the default (see WHERE).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Store the credentials without asking the registry whether they work.
    #[arg(long)]
    no_verify: bool,
    /// Speak plain HTTP to the registry, never HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// Seconds without data before a connection counts as stalled and is
    /// retried.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Seconds the token service's answer has to arrive whole, retries
    /// included.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    deadline: u64,
    /// Remove REGISTRY's stored credentials instead (under each name the
    /// readers take for it).
    #[arg(long, conflicts_with_all = ["username", "password_stdin", "no_verify", "plain_http"])]
    logout: bool,
    /// With --logout: remove every registry's stored credentials
    /// (credHelpers and credsStore stay).
    #[arg(long, requires = "logout", conflicts_with = "registry")]
    all: bool,
    /// Say what was done, on one line.
    #[arg(long, short = 'v')]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    let path = match &args.authfile {
        Some(path) => path.clone(),
        None => credentials::login_file()?,
    };
    let file = AuthFile::new(&path)?;
    let key = args.registry.as_deref().map(Key::parse).transpose()?;
    let said = match (&key, args.logout) {
        (Some(key), false) => log_in(&args, &file, key)?,
        (Some(key), true) => log_out(&file, Change::Remove(key.clone()), &key.to_string())?,
        (None, _) => log_out(&file, Change::RemoveAll, "every registry")?,
    };
    if args.verbose {
        cli::note(PROGRAM, &format!("{said} ({})", path.display()));
    }
    Ok(())
}

/// Checks the file, asks for the credentials, checks them with the
/// registry, stores them; what was done, for -v.
fn log_in(args: &Args, file: &AuthFile, key: &Key) -> Result<String> {
    // The file is checked before a password is asked for or sent, with a
    // stand-in credential: a login that could not be stored fails first.
    let stand_in = Secret::Basic {
        username: String::new(),
        password: String::new(),
    };
    file.check(&Change::Store(key.clone(), stand_in))?;
    let username = username(args)?;
    let password = password(args)?;
    if !args.no_verify {
        let options = ClientOptions {
            plain_http: args.plain_http,
            stall_timeout: Duration::from_secs(args.timeout),
            deadline: Duration::from_secs(args.deadline),
            ..ClientOptions::default()
        };
        if login::verify(key, &username, &password, &options)? == Verdict::NotAsked {
            cli::warn(
                PROGRAM,
                &format!(
                    "{} asks for no credentials at /v2/, so it cannot check them: \
                     stored unchecked",
                    key.registry()
                ),
            );
        }
    }
    let said = format!("logged in to {key} as {username}");
    file.apply(&Change::Store(
        key.clone(),
        Secret::Basic { username, password },
    ))?;
    Ok(said)
}

fn log_out(file: &AuthFile, change: Change, what: &str) -> Result<String> {
    let applied = file.apply(&change)?;
    Ok(format!(
        "removed {} stored credential{} for {what}",
        applied.removed,
        if applied.removed == 1 { "" } else { "s" }
    ))
}

/// --username, or asked for on a terminal.
fn username(args: &Args) -> Result<String> {
    let username = match &args.username {
        Some(username) => username.clone(),
        None if std::io::stdin().is_terminal() => {
            // On stderr, where messages go: stdout stays free for data.
            let _ = std::io::stderr().write_all(b"Username: ");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the user name")?;
            line.trim().to_owned()
        }
        None => bail!("give --username (stdin is not a terminal to ask on)"),
    };
    if username.is_empty() {
        bail!("the user name is empty");
    }
    if username.contains(':') {
        bail!("a user name cannot contain ':' (the stored value is \"user:password\")");
    }
    Ok(username)
}

/// The password from stdin (--password-stdin), or typed on a terminal
/// with echo off.
fn password(args: &Args) -> Result<String> {
    if args.password_stdin {
        return Ok(login::read_password(std::io::stdin().lock())?);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password: pipe it in with --password-stdin (there is no option for \
             it: a password on the command line shows in ps)"
        );
    }
    let password = rpassword::prompt_password("Password: ")
        .context("cannot read the password from the terminal")?;
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}
