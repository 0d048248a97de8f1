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
//! a public image never runs a credential helper. Nothing secret is ever
//! formatted: [`Authorization`] has no visible `Debug`, and errors name
//! the user and the file the credentials came from, nothing more.

use super::credentials::{self, Found, Secret};
use super::reference::Reference;
use super::transport::{is_loopback_url, lock, url_host, Transport};
use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token lifetime the distribution spec assumes when none is given,
/// and the shortest one honoured.
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so that a token is not
/// sent just as it runs out.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The largest token service answer read.
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
        }
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
        let challenges = parse_challenges(&response.all("www-authenticate"));
        let bearer = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }));
        match bearer.or(challenges.first()) {
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
                self.reference.name()
            ),
        }
    }

    /// The error for a 401 or 403 that authenticating did not fix.
    pub(super) fn refused(&self, status: u16) -> anyhow::Error {
        let credentials = match self.credentials() {
            Ok(credentials) => credentials,
            Err(e) => return e,
        };
        let name = self.reference.name();
        let files = || match credentials.files.as_slice() {
            [] => "no file".to_owned(),
            files => files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        match &credentials.found {
            None if status == 401 => anyhow!(
                "authentication required for {name} (credentials looked for in: {})",
                files()
            ),
            None => anyhow!(
                "access denied to {name} without credentials (credentials looked for in: {})",
                files()
            ),
            Some(found) => match found.secret.username() {
                Some(user) => anyhow!(
                    "access denied to {name} for user {user} (credentials from {})",
                    found.source
                ),
                None => anyhow!(
                    "access denied to {name} for the identity token from {}",
                    found.source
                ),
            },
        }
    }

    fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.reference.repository)
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

    /// Asks the token service: a GET (with basic credentials when there
    /// are any) or, for an identity token, the OAuth2 refresh-token POST.
    fn fetch_token(&self, transport: &Transport, key: &TokenKey) -> Result<Token> {
        let credentials = self.credentials()?;
        let secret = credentials.found.as_ref().map(|f| &f.secret);
        let host = url_host(&key.realm);
        // Plain HTTP to this machine stays on this machine.
        if secret.is_some()
            && key.realm.starts_with("http://")
            && !is_loopback_url(&key.realm)
            && transport.uses_https()
        {
            bail!(
                "{}: refusing to send credentials to the plain-HTTP token service at {host}",
                self.reference.name()
            );
        }
        let what = format!("{}: token from {host}", self.reference.name());
        let mut retry = transport.retry();
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
                let mut request = agent.get(&key.realm).query("scope", &key.scope);
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
        match response.status() {
            200..=299 => parse_token(response).map_err(|problem| anyhow!("{what}: {problem}")),
            status @ (401 | 403) => Err(self.refused(status)),
            status => bail!("{what}: HTTP {status}"),
        }
    }
}

/// The token in a token service's JSON answer (`token`, or OAuth2's
/// `access_token`). Errors never quote the answer: it holds the token.
pub fn parse_token(response: ureq::Response) -> Result<Token, &'static str> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_TOKEN_RESPONSE)
        .read_to_end(&mut body)
        .map_err(|_| "the connection dropped while reading the token")?;
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|_| "the token service's answer is not JSON")?;
    let token = [answer.token, answer.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or("the token service's answer has no token")?;
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(0)).max(MIN_TOKEN_LIFETIME);
    Ok(Token {
        authorization: Authorization::bearer(&token),
        renew_at: Instant::now() + lifetime - TOKEN_MARGIN,
    })
}

/// The Bearer and Basic challenges in `WWW-Authenticate` header values;
/// other schemes, and a Bearer challenge without a realm, are skipped.
pub fn parse_challenges(headers: &[&str]) -> Vec<Challenge> {
    let mut challenges = Vec::new();
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
                    challenges.push(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                    });
                }
            } else if challenge.scheme.eq_ignore_ascii_case("basic") {
                challenges.push(Challenge::Basic);
            }
        }
    }
    challenges
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
        let cases: Vec<(Vec<&str>, Vec<Challenge>)> = vec![
            (
                vec![
                    r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
                ],
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/debian:pull"),
                )],
            ),
            (
                vec![r#"bearer REALM="https://ghcr.io/token", service="ghcr.io""#],
                vec![bearer("https://ghcr.io/token", Some("ghcr.io"), None)],
            ),
            (
                vec![r#"Basic realm="Registry Realm""#],
                vec![Challenge::Basic],
            ),
            (
                vec![r#"Negotiate abc=1, Basic realm="r""#, r#"Bearer realm="t""#],
                vec![Challenge::Basic, bearer("t", None, None)],
            ),
            (
                vec![r#"Bearer realm="a\"b",scope="repository:x:pull,push""#],
                vec![bearer("a\"b", None, Some("repository:x:pull,push"))],
            ),
            (vec![r#"Bearer service="no-realm""#], vec![]),
            // A syntax error ends the header; the challenge it is in is lost.
            (vec![r#"Basic realm="x", garbage ("#], vec![]),
            (vec![""], vec![]),
        ];
        for (headers, expected) in cases {
            assert_eq!(parse_challenges(&headers), expected, "{headers:?}");
        }
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
