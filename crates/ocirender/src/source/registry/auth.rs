//! Answering a registry's `401 Unauthorized`.
//!
//! Registries say how to authenticate in `WWW-Authenticate`: `Basic`
//! (send the credentials) or, far more often, `Bearer realm=…,service=…,
//! scope=…`: fetch a short-lived token from the realm (anonymously, with
//! basic credentials, or by exchanging an OAuth2 refresh token) and send
//! that. Tokens are cached per (realm, service, scope) until they expire,
//! so the parallel downloads of one image share one token instead of each
//! asking the token service; a token the registry rejects is replaced once.
//!
//! Credentials are looked up only when a registry asks for them, so pulling
//! a public image never runs a credential helper. They go to a token
//! service only where [`origin::credentials_may_go_to`] allows (HTTPS,
//! loopback, or the plain-HTTP registry itself); anywhere else the token is
//! asked for anonymously, and a refusal then says the credentials were
//! withheld. Nothing secret is ever formatted: [`Authorization`] has no
//! visible `Debug`, and errors name the user and the file the credentials
//! came from, nothing more.

use super::credentials::{self, Found, Secret};
use super::origin;
use super::transport::{lock, read_capped, url_host, Transport};
use crate::error::{bail, err, Result};
use crate::source::reference::Reference;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token lifetime the distribution spec assumes when none is given,
/// and the shortest one honoured.
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so that a token is not
/// sent just as it runs out.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The longest token lifetime honoured: a token service's `expires_in`
/// may say anything.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest token service answer read (containers/image's limit).
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// The value of an `Authorization` header. It is never shown.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Authorization(Arc<str>);

impl Authorization {
    /// The header value, to send and never to print.
    pub(super) fn header_value(&self) -> &str {
        &self.0
    }

    fn basic(username: &str, password: &str) -> Authorization {
        let encoded = STANDARD.encode(format!("{username}:{password}"));
        Authorization(format!("Basic {encoded}").into())
    }

    fn bearer(token: &str) -> Authorization {
        Authorization(format!("Bearer {token}").into())
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

/// A registry or its token service refused access (401 or 403) whatever
/// credentials there were: the error a caller can tell from a failure to
/// reach it. Its text says whose credentials, from where, never a secret.
#[derive(Debug)]
pub(super) struct AccessDenied(String);

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AccessDenied {}

impl From<AccessDenied> for crate::error::Error {
    fn from(denied: AccessDenied) -> Self {
        crate::error::Error::new(
            crate::error::ErrorKind::Registry(crate::error::RegistryErrorKind::AccessDenied),
            denied,
        )
    }
}

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Fetch a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send user and password.
    Basic,
}

/// Which token: the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: Option<String>,
    scope: String,
}

/// How requests are currently authenticated, learnt from the last 401.
#[derive(Debug, Clone)]
enum Scheme {
    Anonymous,
    Basic(Authorization),
    Bearer(TokenKey),
}

pub struct Token {
    authorization: Authorization,
    renew_at: Instant,
}

#[derive(Default)]
struct Credentials {
    found: Option<Found>,
    files: Vec<PathBuf>,
}

/// Authentication state shared by every clone of a registry client.
pub(super) struct Auth {
    reference: Reference,
    authfile: Option<PathBuf>,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<TokenKey, Token>>,
    /// Held while a token is fetched, so parallel requests fetch one.
    fetching: Mutex<()>,
    credentials: Mutex<Option<Arc<Credentials>>>,
    /// The token service (`scheme://host[:port]`) the credentials were
    /// last withheld from, for the error if access is then refused.
    withheld: Mutex<Option<String>>,
}

impl Auth {
    pub(super) fn new(reference: &Reference, authfile: Option<PathBuf>) -> Auth {
        Auth {
            reference: reference.clone(),
            authfile,
            scheme: Mutex::new(Scheme::Anonymous),
            tokens: Mutex::default(),
            fetching: Mutex::default(),
            credentials: Mutex::default(),
            withheld: Mutex::default(),
        }
    }

    /// As [`Auth::new`], with the credentials given instead of looked up
    /// (a login checking them before it stores them).
    pub(super) fn with_credentials(reference: &Reference, found: Found) -> Auth {
        let auth = Auth::new(reference, None);
        *lock(&auth.credentials) = Some(Arc::new(Credentials {
            found: Some(found),
            files: Vec::new(),
        }));
        auth
    }

    /// The `Authorization` for the next request: none until a registry
    /// asked, then basic credentials or a valid (maybe renewed) token.
    pub(super) fn authorization(&self, transport: &Transport) -> Result<Option<Authorization>> {
        let scheme = lock(&self.scheme).clone();
        match scheme {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic(authorization) => Ok(Some(authorization)),
            Scheme::Bearer(key) => self.token(transport, &key, None).map(Some),
        }
    }

    /// Answers a 401 to a request sent with `sent`: the `Authorization` to
    /// send the request again with, or the error to report.
    pub(super) fn answer(
        &self,
        transport: &Transport,
        response: &ureq::Response,
        sent: Option<&Authorization>,
    ) -> Result<Authorization> {
        match parse_challenges(&response.all("www-authenticate")) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let key = TokenKey {
                    realm: realm.clone(),
                    service: service.clone(),
                    scope: scope.clone().unwrap_or_else(|| self.pull_scope()),
                };
                *lock(&self.scheme) = Scheme::Bearer(key.clone());
                self.token(transport, &key, sent)
            }
            Some(Challenge::Basic) => {
                let credentials = self.credentials()?;
                let authorization = match credentials.found.as_ref().map(|f| &f.secret) {
                    Some(Secret::Basic { username, password }) => {
                        Authorization::basic(username, password)
                    }
                    _ => return Err(self.refused(401)),
                };
                if sent == Some(&authorization) {
                    return Err(self.refused(401));
                }
                *lock(&self.scheme) = Scheme::Basic(authorization.clone());
                Ok(authorization)
            }
            None => bail!(
                "{}: the registry requires authentication but sent no \
                 Bearer or Basic challenge",
                self.name()
            ),
        }
    }

    /// The error for a 401 or 403 that authenticating did not fix: an
    /// [`AccessDenied`].
    pub(super) fn refused(&self, status: u16) -> crate::error::Error {
        match self.credentials() {
            Ok(credentials) => AccessDenied(self.refusal(&credentials, status)).into(),
            Err(e) => e,
        }
    }

    /// What [`Auth::refused`] says: whose credentials were refused, or
    /// withheld, or where none were found.
    fn refusal(&self, credentials: &Credentials, status: u16) -> String {
        let name = self.name();
        let files = || match credentials.files.as_slice() {
            [] => "no file".to_owned(),
            files => files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        if let (Some(found), Some(realm)) = (&credentials.found, &*lock(&self.withheld)) {
            let whose = match found.secret.username() {
                Some(user) => format!("user {user}'s"),
                None => "the identity token's".to_owned(),
            };
            return format!(
                "access denied to {name}: {whose} credentials (from {}) were withheld from \
                 the plain-HTTP token service at {realm} (plain HTTP gets them only on \
                 localhost, 127.0.0.0/8, ::1, or at the registry itself)",
                found.source
            );
        }
        match &credentials.found {
            None if status == 401 => format!(
                "authentication required for {name} (credentials looked for in: {})",
                files()
            ),
            None => format!(
                "access denied to {name} without credentials (credentials looked for in: {})",
                files()
            ),
            Some(found) => match found.secret.username() {
                Some(user) => format!(
                    "access denied to {name} for user {user} (credentials from {})",
                    found.source
                ),
                None => format!(
                    "access denied to {name} for the identity token from {}",
                    found.source
                ),
            },
        }
    }

    /// What messages call the client's repository: `registry/repository`,
    /// or the registry alone for a client of none (a login).
    fn name(&self) -> String {
        if self.reference.repository.is_empty() {
            return self.reference.registry.clone();
        }
        self.reference.name()
    }

    /// The scope a challenge without one is answered with: pulling the
    /// repository, or none for a client of no repository (a login's
    /// `GET /v2/`, where a token only proves who the user is).
    fn pull_scope(&self) -> String {
        if self.reference.repository.is_empty() {
            return String::new();
        }
        format!("repository:{}:pull", self.reference.repository)
    }

    /// The token service the credentials were withheld from (see
    /// [`origin::credentials_may_go_to`]), if they were.
    pub(super) fn withheld(&self) -> Option<String> {
        lock(&self.withheld).clone()
    }

    /// The credentials, looked up once (a helper may be slow or prompt).
    fn credentials(&self) -> Result<Arc<Credentials>> {
        let mut cached = lock(&self.credentials);
        if let Some(credentials) = &*cached {
            return Ok(credentials.clone());
        }
        let (found, files) = credentials::lookup(&self.reference, self.authfile.as_deref())?;
        let credentials = Arc::new(Credentials { found, files });
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// A valid token for `key` other than `rejected`: the cached one, or a
    /// new one fetched by exactly one of the threads asking at once.
    fn token(
        &self,
        transport: &Transport,
        key: &TokenKey,
        rejected: Option<&Authorization>,
    ) -> Result<Authorization> {
        if let Some(token) = self.cached_token(key, rejected) {
            return Ok(token);
        }
        let _fetching = lock(&self.fetching);
        if let Some(token) = self.cached_token(key, rejected) {
            return Ok(token);
        }
        let token = self.fetch_token(transport, key)?;
        let authorization = token.authorization.clone();
        lock(&self.tokens).insert(key.clone(), token);
        Ok(authorization)
    }

    fn cached_token(
        &self,
        key: &TokenKey,
        rejected: Option<&Authorization>,
    ) -> Option<Authorization> {
        let tokens = lock(&self.tokens);
        let token = tokens.get(key)?;
        let usable = Instant::now() < token.renew_at && Some(&token.authorization) != rejected;
        usable.then(|| token.authorization.clone())
    }

    /// The credentials that may go to the token service at `realm`:
    /// none if there are none, or if it is plain HTTP off this machine
    /// (then recorded, for the error a refusal gives).
    fn credentials_for(&self, transport: &Transport, realm: &str) -> Result<Option<Secret>> {
        let credentials = self.credentials()?;
        let Some(found) = &credentials.found else {
            return Ok(None);
        };
        let (Ok(realm), Ok(registry)) = (
            url::Url::parse(realm),
            url::Url::parse(&transport.base_url()),
        ) else {
            bail!("{}: the registry's token service is not a URL", self.name());
        };
        let may_go = origin::credentials_may_go_to(&realm, &registry);
        *lock(&self.withheld) = (!may_go).then(|| origin::origin_text(&realm));
        Ok(may_go.then(|| found.secret.clone()))
    }

    /// Asks the token service: a GET (with basic credentials when they may
    /// go there) or, for an identity token, the OAuth2 refresh-token POST;
    /// the answer must arrive whole within the deadline.
    fn fetch_token(&self, transport: &Transport, key: &TokenKey) -> Result<Token> {
        let secret = self.credentials_for(transport, &key.realm)?;
        let secret = secret.as_ref();
        let host = url_host(&key.realm);
        let what = format!("{}: token from {host}", self.name());
        let mut retry = transport.retry_within("token");
        let response = match secret {
            Some(Secret::IdentityToken(refresh_token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("scope", key.scope.as_str()),
                    ("client_id", "ocirender"),
                    ("refresh_token", refresh_token.as_str()),
                ];
                form.extend(key.service.as_deref().map(|s| ("service", s)));
                transport.call(&what, &mut retry, Some(&form), &|agent, _| {
                    agent.post(&key.realm)
                })?
            }
            _ => transport.call(&what, &mut retry, None, &|agent, _| {
                let mut request = agent.get(&key.realm);
                if !key.scope.is_empty() {
                    request = request.query("scope", &key.scope);
                }
                if let Some(service) = &key.service {
                    request = request.query("service", service);
                }
                if let Some(Secret::Basic { username, password }) = secret {
                    let authorization = Authorization::basic(username, password);
                    request = request
                        .query("account", username)
                        .set("Authorization", authorization.header_value());
                }
                request
            })?,
        };
        let until = retry.deadline().map(|deadline| deadline.at());
        match response.status() {
            200..=299 => parse_token(response, until).map_err(|problem| match retry.expired() {
                Some(deadline) => err!(deadline.message(&what)),
                None => err!("{what}: {problem}"),
            }),
            status @ (401 | 403) => Err(self.refused(status)),
            status => bail!("{what}: HTTP {status}"),
        }
    }
}

/// The token in a token service's JSON answer (`token`, or OAuth2's
/// `access_token`), read by `until`. Errors never quote the answer: it
/// holds the token.
pub fn parse_token(
    response: ureq::Response,
    until: Option<Instant>,
) -> Result<Token, &'static str> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let body = read_capped(response.into_reader(), MAX_TOKEN_RESPONSE, until)
        .map_err(|_| "the connection dropped while reading the token")?
        .ok_or("the token service's answer is over the 1 MiB limit")?;
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|_| "the token service's answer is not JSON")?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or("the token service's answer has no token")?;
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(0))
        .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
    Ok(Token {
        authorization: Authorization::bearer(&token),
        renew_at: Instant::now() + lifetime - TOKEN_MARGIN,
    })
}

/// The challenge to answer in `WWW-Authenticate` header values: the first
/// Bearer one (tokens are what registries prefer), else Basic if offered;
/// other schemes, and a Bearer challenge without a realm, are skipped.
/// Nothing is collected: a registry may send 10 MB of challenges (ureq's
/// limit on headers), and only one is ever answered.
pub fn parse_challenges(headers: &[&str]) -> Option<Challenge> {
    let mut basic = None;
    for header in headers {
        // A syntax error ends the header: challenges the parser finished
        // before it still count.
        for challenge in http_auth::parser::ChallengeParser::new(header).map_while(Result::ok) {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.to_unescaped())
            };
            if challenge.scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = param("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                    });
                }
            } else if challenge.scheme.eq_ignore_ascii_case("basic") {
                basic = Some(Challenge::Basic);
            }
        }
    }
    basic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn parses_challenges() {
        let cases: Vec<(Vec<&str>, Option<Challenge>)> = vec![
            (
                vec![
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
                ],
                Some(bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/debian:pull"),
                )),
            ),
            (
                vec![r#"bearer REALM="https://ghcr.io/token", service="ghcr.io""#],
                Some(bearer("https://ghcr.io/token", Some("ghcr.io"), None)),
            ),
            (
                vec![r#"Basic realm="Registry Realm""#],
                Some(Challenge::Basic),
            ),
            // Bearer is preferred, wherever it comes.
            (
                vec![r#"Negotiate abc=1, Basic realm="r""#, r#"Bearer realm="t""#],
                Some(bearer("t", None, None)),
            ),
            (
                vec![r#"Bearer realm="first", Bearer realm="second""#],
                Some(bearer("first", None, None)),
            ),
            (
                vec![r#"Bearer realm="a\"b",scope="repository:x:pull,push""#],
                Some(bearer("a\"b", None, Some("repository:x:pull,push"))),
            ),
            (vec![r#"Bearer service="no-realm""#], None),
            // A syntax error ends the header; the challenge it is in is lost.
            (vec![r#"Basic realm="x", garbage ("#], None),
            (vec![""], None),
        ];
        for (headers, expected) in cases {
            assert_eq!(parse_challenges(&headers), expected, "{headers:?}");
        }
    }

    /// The most ureq lets through (100 headers of 100 KiB) takes well under
    /// a second and no memory per challenge.
    #[test]
    fn ten_megabytes_of_challenges_are_scanned_not_collected() {
        let basics = "Basic realm=\"x\", ".repeat(100 << 10 >> 4);
        let headers: Vec<&str> = std::iter::repeat_n(basics.as_str(), 100).collect();
        let start = Instant::now();
        assert_eq!(parse_challenges(&headers), Some(Challenge::Basic));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn authorization_is_never_shown() {
        let a = Authorization::basic("user", "secret");
        assert_eq!(a.header_value(), "Basic dXNlcjpzZWNyZXQ=");
        assert!(!format!("{a:?}").contains("dXNl"));
        assert_eq!(
            format!("{:?}", Scheme::Basic(a)),
            "Basic(Authorization(<redacted>))"
        );
    }
}
