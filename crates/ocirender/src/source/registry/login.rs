//! Checking credentials before they are stored, as `podman login` does:
//! `GET /v2/` without credentials, to learn how the registry wants them
//! (its challenge), then again with them, as Basic auth or as a bearer
//! token asked for from the challenge's realm with them (no scope: the
//! token only proves who the user is). The registry's 200 accepts them; a
//! 401 or 403, from it or its token service, refuses them.
//!
//! The same client as every pull does this (`super::auth`,
//! `super::transport`), so the same rules hold: plain HTTP only to a
//! loopback registry or with `--plain-http`, and credentials only to a
//! token service they may go to (`super::origin`). A token service they
//! may not go to is not asked anonymously instead: that would check
//! nothing, so it is an error.

use super::auth::{Auth, Authorization};
use super::auth_file::Key;
use super::credentials::{Found, Secret};
use super::transport::{self, Transport};
use super::ClientOptions;
use crate::error::{bail, err, Context, ErrorKind, RegistryErrorKind, Result};
use std::fmt;
use std::io::Read;

/// The longest password read from stdin (registry tokens used as
/// passwords, such as a cloud's short-lived ones, are a few KiB).
pub const MAX_PASSWORD: u64 = 64 << 10;

/// What the registry said of the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It asked for credentials and accepted these.
    Accepted,
    /// It answers `GET /v2/` without asking for any, so it cannot judge
    /// them (a registry open to all, or one that asks only per
    /// repository).
    NotAsked,
}

/// The registry or its token service refused the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The user name tried.
    pub username: String,
    /// The registry (`host[:port]`).
    pub registry: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access denied for user {} at {}",
            self.username, self.registry
        )
    }
}

impl std::error::Error for Denied {}

impl From<Denied> for crate::error::Error {
    fn from(denied: Denied) -> Self {
        crate::error::Error::new(ErrorKind::Registry(RegistryErrorKind::AccessDenied), denied)
    }
}

/// Asks `key`'s registry whether it accepts `username` and `password`.
/// A refusal is a [`Denied`] error; any other failure (the registry cannot
/// be reached, answers something else) is another error.
pub fn verify(
    key: &Key,
    username: &str,
    password: &str,
    options: &ClientOptions,
) -> Result<Verdict> {
    let reference = key.registry_reference();
    let transport = Transport::new(&reference, options)
        .with_context(|| format!("setting up HTTP for {}", key.registry()))?;
    let secret = Secret::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let found = Found {
        secret,
        source: "the login".to_owned(),
    };
    let auth = Auth::with_credentials(&reference, found);
    let denied = || Denied {
        username: username.to_owned(),
        registry: key.registry().to_owned(),
    };
    let what = format!("{}: GET /v2/", key.registry());
    let mut retry = transport.retry();
    let mut authorization: Option<Authorization> = None;
    loop {
        let response = transport.call(&what, &mut retry, None, &|agent, base_url| {
            let request = agent.get(&format!("{base_url}/v2/"));
            match &authorization {
                Some(authorization) => request.set("Authorization", authorization.header_value()),
                None => request,
            }
        })?;
        let status = response.status();
        match (status, &authorization) {
            (200..=299, None) => return Ok(Verdict::NotAsked),
            (200..=299, Some(_)) => return accepted(&auth, username, key),
            (401, None) => match auth.answer(&transport, &response, None) {
                Ok(answer) => authorization = Some(answer),
                Err(e) if e.kind() == &ErrorKind::Registry(RegistryErrorKind::AccessDenied) => {
                    return Err(refused(&auth, username, key, denied()))
                }
                Err(e) => return Err(e),
            },
            (401 | 403, Some(_)) => return Err(refused(&auth, username, key, denied())),
            _ => bail!(
                "{what}: HTTP {status} {} from {}{}",
                transport::one_line(response.status_text()),
                transport::url_host(response.get_url()),
                transport::registry_message(response)
            ),
        }
    }
}

/// Success, unless the credentials never reached the token service (then
/// the token that got in proves nothing about them).
fn accepted(auth: &Auth, username: &str, key: &Key) -> Result<Verdict> {
    match auth.withheld() {
        Some(realm) => Err(withheld(username, key, &realm)),
        None => Ok(Verdict::Accepted),
    }
}

/// The error for a refusal: [`Denied`], unless the credentials were
/// withheld from the token service (then nothing was said of them).
fn refused(auth: &Auth, username: &str, key: &Key, denied: Denied) -> crate::error::Error {
    match auth.withheld() {
        Some(realm) => withheld(username, key, &realm),
        None => denied.into(),
    }
}

fn withheld(username: &str, key: &Key, realm: &str) -> crate::error::Error {
    err!(
        "user {username}'s credentials cannot be checked at {}: its token service \
         {realm} is plain HTTP off this machine, which credentials are never sent to",
        key.registry()
    )
}

/// The password piped in for `--password-stdin`, as podman reads it:
/// its lines joined without their line ends (`"pw\n"` is `pw`). At most
/// [`MAX_PASSWORD`] bytes, UTF-8, not empty. Errors never quote it.
pub fn read_password(input: impl Read) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the password from stdin")?;
    if bytes.len() as u64 > MAX_PASSWORD {
        bail!("the password on stdin is longer than {MAX_PASSWORD} bytes");
    }
    let text = String::from_utf8(bytes).map_err(|_| err!("the password on stdin is not UTF-8"))?;
    let password: String = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::registry::test_server::{response, Reply, Server};

    /// Errors from the token service name the registry, not an empty
    /// repository of it (`host/`).
    #[test]
    fn a_failing_token_service_is_named_with_the_registry() {
        let server = Server::start(|request| match request.path() {
            "/v2/" => {
                let port = request.header("host").unwrap_or_default().to_owned();
                let challenge = format!("Bearer realm=\"http://{port}/token\",service=\"s\"");
                Reply::Send(response(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", &challenge)],
                    b"",
                ))
            }
            _ => Reply::Send(response("500 Internal Server Error", &[], b"")),
        });
        let key = Key::parse(&server.authority()).unwrap();
        let options = ClientOptions {
            plain_http: true,
            retries: 0,
            ..ClientOptions::default()
        };
        let e = verify(&key, "alice", "pw", &options)
            .unwrap_err()
            .to_string();
        let authority = server.authority();
        assert_eq!(
            e,
            format!(
                "{authority}: token from {authority}: HTTP 500 Internal Server Error \
                 from {authority}"
            ),
            "{e}"
        );
    }

    #[test]
    fn passwords_from_stdin_lose_their_line_ends() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (b"s3cret", Some("s3cret")),
            (b"s3cret\n", Some("s3cret")),
            (b"s3cret\r\n", Some("s3cret")),
            (b"a\nb\n", Some("ab")),
            (b" spaced: kept \n", Some(" spaced: kept ")),
            ("pässwörd\n".as_bytes(), Some("pässwörd")),
            (b"\n", None),
            (b"", None),
            (b"\xff\xfe", None),
        ];
        for (input, expected) in cases {
            let got = read_password(input).ok();
            assert_eq!(got.as_deref(), expected, "{input:?}");
        }
        let long = vec![b'x'; MAX_PASSWORD as usize + 1];
        let e = read_password(long.as_slice()).unwrap_err().to_string();
        assert!(e.contains("longer than 65536 bytes"), "{e}");
        let e = read_password(&b"\xffsecret"[..]).unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_refusal_names_the_user_and_the_registry() {
        let denied = Denied {
            username: "alice".into(),
            registry: "127.0.0.1:5000".into(),
        };
        assert_eq!(
            denied.to_string(),
            "access denied for user alice at 127.0.0.1:5000"
        );
    }
}
