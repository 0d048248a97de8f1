//! HTTP as registries need it: one `ureq` agent per registry and scheme,
//! retries with backoff, and errors a person can act on.
//!
//! ureq 2 is used for its per-read socket timeout (`timeout_read`): a
//! layer download may legitimately take an hour, but a connection that
//! sends nothing for `stall_timeout` is dead, and only a per-read timeout
//! tells the two apart. A small document (manifest, config, token) also
//! has an overall deadline (see [`super::retry`]): each attempt gets a
//! ureq timeout of the time left, at most the stall timeout, so that a
//! registry sending a byte a second cannot hold it for weeks. Redirects
//! are followed in [`super::redirect`], with `Authorization` kept only to
//! the same origin, because registries send blobs from a CDN or an object
//! store that must never see the registry's credentials. ureq has no
//! `NO_PROXY`, so the proxy is chosen here, once per scheme, for the
//! registry's host.
//!
//! The scheme is Docker's: HTTPS, or plain HTTP with `--plain-http`. A
//! registry on this machine (`localhost`, 127.0.0.0/8, `::1`), or one
//! registries.conf marks `insecure`, is tried with HTTPS first and spoken
//! to in plain HTTP if it does not speak TLS at all (it answers the TLS hello with something that is not TLS, or
//! drops the connection during the handshake; or, without a port, nothing
//! listens on 443); the first request finds out, once per registry for
//! the whole process. A certificate problem is an error, never a reason
//! to fall back.

use super::redirect;
use super::retry::{Deadline, Retry, RetryNotice, RetryPolicy};
use super::ClientOptions;
use crate::error::{bail, err, Result};
use crate::source::reference::{split_host_port, Reference};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Longest `Retry-After` honoured; a registry asking for more is treated
/// as asking for this much.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an error body read for the registry's message.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// The longest an error body is read for (a layer request has no
/// deadline, and 64 KiB at a byte a second would take 18 hours); what came
/// by then is not worth more.
const ERROR_BODY_TIME: Duration = Duration::from_secs(5);

/// How a registry is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// The scheme of one registry: known from the start, or learnt by the
/// first request to a loopback registry.
#[derive(Default)]
struct SchemeChoice {
    chosen: OnceLock<Scheme>,
    /// Held by the request finding out, so that requests made meanwhile
    /// wait for its answer instead of trying HTTPS too.
    probing: Mutex<()>,
}

impl SchemeChoice {
    fn fixed(scheme: Scheme) -> Arc<SchemeChoice> {
        Arc::new(SchemeChoice {
            chosen: OnceLock::from(scheme),
            probing: Mutex::default(),
        })
    }

    /// The choice for the loopback registry at `host` (`host[:port]`),
    /// shared by every client of it in this process.
    fn learnt(host: &str) -> Arc<SchemeChoice> {
        static LEARNT: LazyLock<Mutex<HashMap<String, Arc<SchemeChoice>>>> =
            LazyLock::new(Mutex::default);
        lock(&LEARNT)
            .entry(host.to_ascii_lowercase())
            .or_default()
            .clone()
    }
}

/// The agents for one registry, and the retry policy.
pub(super) struct Transport {
    /// `host[:port]` of the registry API.
    host: String,
    /// The agent for HTTPS, if the registry may be spoken to in HTTPS.
    https: Option<ureq::Agent>,
    /// The agent for plain HTTP, if allowed (its proxy may differ).
    http: Option<ureq::Agent>,
    scheme: Arc<SchemeChoice>,
    /// The host has no port, so HTTPS and HTTP have different ones (443
    /// and 80): a refused HTTPS connection is a reason to try HTTP.
    default_ports: bool,
    policy: RetryPolicy,
    stall_timeout: Duration,
    /// The time a manifest, config or token has to arrive whole.
    deadline: Duration,
    retry_notice: RetryNotice,
    /// Whether the notice was given (once per registry).
    noticed: AtomicBool,
}

impl Transport {
    /// The agent for `reference`'s registry; proxy variables are read from
    /// the process environment.
    pub(super) fn new(reference: &Reference, options: &ClientOptions) -> Result<Transport> {
        Transport::with_env(reference, options, &|name| std::env::var(name).ok())
    }

    /// As [`Transport::new`], with the environment given (tests).
    pub(super) fn with_env(
        reference: &Reference,
        options: &ClientOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Transport> {
        let host = reference.api_host();
        let agent = |scheme: Scheme| -> Result<ureq::Agent> {
            let mut builder = ureq::AgentBuilder::new()
                .user_agent(concat!("ocirender/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(CONNECT_TIMEOUT)
                .timeout_read(options.stall_timeout)
                .timeout_write(options.stall_timeout)
                // A pooled connection has no read timeout until a response
                // head arrives on it (ureq 2 clears it on return to the
                // pool): a registry silent there would hold a layer
                // request forever. A handful of handshakes per image is
                // the price of a fresh connection, timed from its first
                // byte, for every request.
                .max_idle_connections(0)
                .redirects(0);
            if let Some((variable, url)) = proxy_for(scheme.name(), host, env) {
                builder = builder.proxy(parse_proxy(variable, &url)?);
            }
            Ok(builder.build())
        };
        let (https, http, scheme) = if options.plain_http {
            (
                None,
                Some(agent(Scheme::Http)?),
                SchemeChoice::fixed(Scheme::Http),
            )
        } else if reference.is_loopback() || options.insecure {
            (
                Some(agent(Scheme::Https)?),
                Some(agent(Scheme::Http)?),
                SchemeChoice::learnt(host),
            )
        } else {
            (
                Some(agent(Scheme::Https)?),
                None,
                SchemeChoice::fixed(Scheme::Https),
            )
        };
        Ok(Transport {
            host: host.to_owned(),
            https,
            http,
            scheme,
            default_ports: split_host_port(host).1.is_none(),
            policy: RetryPolicy {
                retries: options.retries,
                backoff: options.backoff,
            },
            stall_timeout: options.stall_timeout,
            deadline: options.deadline,
            retry_notice: options.retry_notice.clone(),
            noticed: AtomicBool::new(false),
        })
    }

    /// `scheme://host[:port]` of the registry API: HTTPS until a loopback
    /// registry turned out to speak plain HTTP.
    pub(super) fn base_url(&self) -> String {
        format!("{}://{}", self.scheme().name(), self.host)
    }

    /// The scheme requests use now.
    fn scheme(&self) -> Scheme {
        self.scheme.chosen.get().copied().unwrap_or(Scheme::Https)
    }

    /// Whether requests go (or will first try to go) over HTTPS.
    #[cfg(test)]
    pub(super) fn uses_https(&self) -> bool {
        self.scheme() == Scheme::Https
    }

    /// The scheme for the next request, and the lock to hold while it
    /// finds out whether a loopback registry speaks TLS (none once known).
    fn next_scheme(&self) -> (Scheme, Option<MutexGuard<'_, ()>>) {
        if let Some(scheme) = self.scheme.chosen.get() {
            return (*scheme, None);
        }
        let probing = lock(&self.scheme.probing);
        match self.scheme.chosen.get() {
            Some(scheme) => (*scheme, None),
            None => (Scheme::Https, Some(probing)),
        }
    }

    fn agent(&self, scheme: Scheme) -> &ureq::Agent {
        let agent = match scheme {
            Scheme::Https => self.https.as_ref(),
            Scheme::Http => self.http.as_ref(),
        };
        agent.expect("a scheme is only chosen among those with an agent")
    }

    /// A fresh retry budget for one request (or one layer download).
    pub(super) fn retry(&self) -> Retry {
        Retry::new(self.policy, None)
    }

    /// A fresh retry budget for fetching a small `document` (`manifest`,
    /// `config`, `token`), which must arrive whole by the deadline.
    pub(super) fn retry_within(&self, document: &'static str) -> Retry {
        let deadline = Deadline::new(self.deadline, self.stall_timeout, document);
        Retry::new(self.policy, Some(deadline))
    }

    /// Sends the request `build` makes (given the agent and the registry's
    /// current `scheme://host[:port]`), with `form` as its body if any,
    /// until it gets an answer that is not worth retrying, then returns
    /// that answer, whatever its status: the caller decides what a 401 or a
    /// 404 means. Transport errors and 429/5xx are retried while `retry`
    /// allows, and redirects followed; `what` names the request in the
    /// final error. The first request to a loopback registry finds out
    /// whether it speaks TLS. With a deadline, every attempt gets the time
    /// left (at most the stall timeout), and none starts after it.
    pub(super) fn call(
        &self,
        what: &str,
        retry: &mut Retry,
        form: Option<&[(&str, &str)]>,
        build: &dyn Fn(&ureq::Agent, &str) -> ureq::Request,
    ) -> Result<ureq::Response> {
        loop {
            if let Some(deadline) = retry.expired() {
                bail!(deadline.message(what));
            }
            let (scheme, probing) = self.next_scheme();
            let base_url = format!("{}://{}", scheme.name(), self.host);
            let agent = self.agent(scheme);
            let sent = redirect::follow(agent, build(agent, &base_url), form, retry.deadline());
            let sent = match sent {
                Ok(sent) => sent,
                Err(problem) => match retry.expired() {
                    Some(deadline) => bail!(deadline.message(what)),
                    None => bail!("{what}: {problem}"),
                },
            };
            if let Some(_probing) = probing {
                let learnt = match &sent {
                    Err(ureq::Error::Transport(error)) if self.speaks_no_tls(error) => {
                        Some(Scheme::Http)
                    }
                    Err(ureq::Error::Transport(error)) => is_tls(error).then_some(Scheme::Https),
                    _ => Some(Scheme::Https),
                };
                if let Some(learnt) = learnt {
                    let _ = self.scheme.chosen.set(learnt);
                }
                if learnt == Some(Scheme::Http) {
                    continue;
                }
            }
            let (problem, retry_after) = match sent {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(status, response)) => {
                    if !retryable_status(status) {
                        return Ok(response);
                    }
                    let problem = format!(
                        "{what}: HTTP {status} {} from {}",
                        one_line(response.status_text()),
                        url_host(response.get_url())
                    );
                    let retry_after = retry_after(&response);
                    (problem + &registry_message(response), retry_after)
                }
                Err(ureq::Error::Transport(error)) => {
                    if let Some(deadline) = retry.expired() {
                        bail!(deadline.message(what));
                    }
                    let problem = format!("{what}: {}", self.describe(&error));
                    if !retryable_transport(&error) {
                        bail!(problem);
                    }
                    // A registry that is down is a long silence; one that
                    // answers 5xx or 429 is usually back within a retry.
                    self.notice_retry(&problem);
                    (problem, None)
                }
            };
            retry
                .wait(retry_after)
                .map_err(|gave_up| err!(gave_up.message(what, &problem)))?;
        }
    }

    /// Says, the first time a connection to this registry fails, that it
    /// is retried: the backoff adds up to many seconds of silence.
    fn notice_retry(&self, problem: &str) {
        let retries = self.policy.retries;
        if retries > 0 && !self.noticed.swap(true, Ordering::Relaxed) {
            let times = match retries {
                1 => "once".to_owned(),
                n => format!("up to {n} times"),
            };
            self.retry_notice
                .say(&format!("{problem}; retrying ({times})"));
        }
    }

    /// One line saying what went wrong, naming the host, never a URL's
    /// query (a token service's) or any header.
    pub(super) fn describe(&self, error: &ureq::Transport) -> String {
        let host = error.url().map_or_else(|| self.host.clone(), host_of);
        let io_error = io_source(error);
        if let Some(kind) = io_error.map(io::Error::kind) {
            if is_timeout(kind) {
                return self.stalled(&host);
            }
        }
        match error.kind() {
            ureq::ErrorKind::Dns => format!("cannot resolve host {host}"),
            ureq::ErrorKind::ConnectionFailed if answers_no_tls(error) => {
                format!(
                    "TLS problem with {host}: {} (it does not answer in TLS; a registry \
                     that speaks plain HTTP needs --plain-http)",
                    io_error.map_or_else(
                        || "handshake failed".to_owned(),
                        |e| one_line(&e.to_string())
                    )
                )
            }
            ureq::ErrorKind::ConnectionFailed if is_tls(error) => format!(
                "TLS/certificate problem with {host}: {} (the system trust store is used; \
                 SSL_CERT_FILE or SSL_CERT_DIR selects other CA certificates)",
                io_error.map_or_else(
                    || "handshake failed".to_owned(),
                    |e| one_line(&e.to_string())
                )
            ),
            ureq::ErrorKind::ConnectionFailed => format!(
                "cannot connect to {host}: {}",
                io_error.map_or_else(|| "connection failed".to_owned(), describe_io)
            ),
            ureq::ErrorKind::ProxyConnect | ureq::ErrorKind::ProxyUnauthorized => {
                format!("the proxy refused to connect to {host}: {}", error.kind())
            }
            _ => format!(
                "{host}: {}",
                io_error.map_or_else(|| one_line(&error.kind().to_string()), describe_io)
            ),
        }
    }

    /// Whether a failed HTTPS request shows that the registry does not
    /// speak TLS at all: its answer to the TLS hello is not TLS, or it
    /// drops the connection during the handshake, or (with no port, where
    /// HTTP has another one) nothing listens for HTTPS. A certificate
    /// problem or a TLS alert is an answer in TLS; a stall is a stall.
    fn speaks_no_tls(&self, error: &ureq::Transport) -> bool {
        if error.kind() != ureq::ErrorKind::ConnectionFailed {
            return false;
        }
        let Some(kind) = io_source(error).map(io::Error::kind) else {
            return false;
        };
        if in_handshake(error) {
            answers_no_tls(error) || (is_dropped(kind) && !is_timeout(kind))
        } else {
            self.default_ports && kind == io::ErrorKind::ConnectionRefused
        }
    }

    /// The stall timeout's message.
    pub(super) fn stalled(&self, host: &str) -> String {
        format!(
            "no data from {host} for {} s (stall timeout)",
            self.stall_timeout.as_secs_f64()
        )
    }
}

/// The whole of `body` if it is at most `limit` bytes, `None` if it is
/// longer (found out after reading `limit + 1` bytes, never more). Once
/// `until` has passed, a `TimedOut` error: the clock is read between
/// reads, each of which the socket's timeout bounds.
pub(super) fn read_capped(
    mut body: impl Read,
    limit: u64,
    until: Option<Instant>,
) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if until.is_some_and(|until| Instant::now() >= until) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let n = match body.read(&mut chunk) {
            Ok(0) => return Ok(Some(bytes)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if (bytes.len() + n) as u64 > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The registry's own explanation, from the distribution spec's error body
/// `{"errors":[{"code":…,"message":…}]}`, as ` (CODE: message; …)`.
pub(super) fn registry_message(response: ureq::Response) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let until = Instant::now() + ERROR_BODY_TIME;
    let Ok(Some(body)) = read_capped(response.into_reader(), MAX_ERROR_BODY, Some(until)) else {
        return String::new();
    };
    let Ok(errors) = serde_json::from_slice::<Errors>(&body) else {
        // Go's answer to plain HTTP on a TLS port (`--plain-http` given
        // for a registry that speaks HTTPS).
        if String::from_utf8_lossy(&body).contains("HTTP request to an HTTPS server") {
            return " (it speaks HTTPS, not plain HTTP: leave out --plain-http)".to_owned();
        }
        return String::new();
    };
    let text: Vec<String> = errors
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (false, true) => e.code.clone(),
            _ => e.message.clone(),
        })
        .filter(|t| !t.is_empty())
        .collect();
    if text.is_empty() {
        return String::new();
    }
    format!(" ({})", one_line(&text.join("; ")))
}

/// `host[:port]` of a URL, for messages.
pub(super) fn url_host(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "the registry".to_owned(), |url| host_of(&url))
}

fn host_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// One line, at most 300 characters: a server's text may contain anything.
pub(super) fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}

/// An io error in words, without the OS error numbers.
pub(super) fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed early".to_owned(),
        _ => one_line(&error.to_string()),
    }
}

/// Whether a read error is the stall timeout firing (a socket read timeout
/// is `WouldBlock` on Unix).
pub(super) fn is_timeout(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn io_source(error: &ureq::Transport) -> Option<&io::Error> {
    std::error::Error::source(error)?.downcast_ref::<io::Error>()
}

/// Whether a connection failed in the TLS handshake (ureq's message for
/// it is "tls connection init failed").
fn in_handshake(error: &ureq::Transport) -> bool {
    error.message().is_some_and(|m| m.contains("tls"))
}

/// A TLS handshake that failed on the certificate or the protocol, as
/// opposed to a connection dropped during the handshake.
fn is_tls(error: &ureq::Transport) -> bool {
    in_handshake(error) && !io_source(error).is_some_and(|e| is_dropped(e.kind()))
}

/// A TLS handshake answered with bytes that are not TLS records (an HTTP
/// server's `400 Bad Request` to the hello): rustls's `InvalidMessage`.
fn answers_no_tls(error: &ureq::Transport) -> bool {
    in_handshake(error)
        && io_source(error)
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|e| matches!(e, rustls::Error::InvalidMessage(_)))
}

fn is_dropped(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
    ) || is_timeout(kind)
}

/// Locks a mutex; a panic in another download thread does not make what
/// it guards (cached tokens, a learnt scheme) wrong, so a poisoned lock is
/// used as it is.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 429 and the 5xx answers of an overloaded or restarting registry.
fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Connection failures and dropped or stalled connections are worth
/// another try; a bad URL, a name that does not resolve, a certificate
/// problem or a redirect loop are not.
fn retryable_transport(error: &ureq::Transport) -> bool {
    match error.kind() {
        ureq::ErrorKind::ConnectionFailed => !is_tls(error),
        ureq::ErrorKind::Io | ureq::ErrorKind::BadStatus | ureq::ErrorKind::ProxyConnect => true,
        _ => false,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for registries and
/// falls back to the usual backoff).
fn retry_after(response: &ureq::Response) -> Option<Duration> {
    let seconds: u64 = response.header("retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The proxy for a request to `host` by `scheme`, as `(variable, url)`:
/// `HTTPS_PROXY` for https, `HTTP_PROXY` for http, then `ALL_PROXY`
/// (either case), unless `NO_PROXY` (either case) matches the host.
fn proxy_for(
    scheme: &str,
    authority: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(&'static str, String)> {
    let names: [&'static str; 4] = if scheme == "https" {
        ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    let found = names
        .into_iter()
        .find_map(|name| Some((name, env(name).filter(|v| !v.trim().is_empty())?)))?;
    let no_proxy = env("NO_PROXY")
        .or_else(|| env("no_proxy"))
        .unwrap_or_default();
    let (host, port) = split_host_port(authority);
    let port = port.unwrap_or(if scheme == "https" { "443" } else { "80" });
    (!no_proxy_matches(&no_proxy, host, port)).then_some(found)
}

/// Whether a `NO_PROXY` list (comma or space separated) exempts `host`:
/// `*` matches everything; `example.com`, `.example.com` and
/// `*.example.com` match the domain and its subdomains; an entry with a
/// port matches that port only; IPv6 entries may be bracketed.
fn no_proxy_matches(no_proxy: &str, host: &str, port: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split([',', ' '])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            let (name, entry_port) = if entry.parse::<std::net::Ipv6Addr>().is_ok() {
                (entry.as_str(), None)
            } else {
                split_host_port(&entry)
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let domain = name.trim_start_matches('*').trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

/// A proxy URL from the environment; ureq 2 speaks only to HTTP proxies
/// without the `socks-proxy` feature. The URL may hold a password, so the
/// error names the variable, not the value.
fn parse_proxy(variable: &str, url: &str) -> Result<ureq::Proxy> {
    let url = url.trim();
    let scheme = url.split_once("://").map_or("http", |(scheme, _)| scheme);
    if !scheme.eq_ignore_ascii_case("http") {
        bail!("{variable}: only http:// proxies are supported, not {scheme}://");
    }
    ureq::Proxy::new(url).map_err(|_| err!("{variable}: not a valid proxy URL"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn no_proxy_matching() {
        let cases = [
            // NO_PROXY, host, port, exempt
            ("", "quay.io", "443", false),
            ("*", "quay.io", "443", true),
            ("quay.io", "quay.io", "443", true),
            ("QUAY.IO", "Quay.io", "443", true),
            ("quay.io", "cdn.quay.io", "443", true),
            ("quay.io", "notquay.io", "443", false),
            (".quay.io", "quay.io", "443", true),
            (".quay.io", "cdn.quay.io", "443", true),
            ("*.quay.io", "cdn.quay.io", "443", true),
            ("example.com, quay.io", "quay.io", "443", true),
            ("example.com quay.io", "quay.io", "443", true),
            ("quay.io:443", "quay.io", "443", true),
            ("quay.io:5000", "quay.io", "443", false),
            ("localhost", "localhost", "5000", true),
            ("127.0.0.1", "127.0.0.1", "5000", true),
            ("127.0.0.1:5000", "127.0.0.1", "5000", true),
            ("127.0.0.1:5001", "127.0.0.1", "5000", false),
            ("::1", "::1", "5000", true),
            ("[::1]", "::1", "5000", true),
            ("[::1]:5000", "::1", "5000", true),
            ("[::1]:5001", "::1", "5000", false),
        ];
        for (no_proxy, host, port, exempt) in cases {
            assert_eq!(
                no_proxy_matches(no_proxy, host, port),
                exempt,
                "NO_PROXY={no_proxy:?} host={host} port={port}"
            );
        }
    }

    #[test]
    fn proxy_selection() {
        let env_of = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        let env = env_of(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "http://plain:3128"),
            ("NO_PROXY", "internal.example,localhost"),
        ]);
        let cases = [
            (
                "https",
                "quay.io",
                Some(("HTTPS_PROXY", "http://secure:3128")),
            ),
            (
                "http",
                "quay.io:5000",
                Some(("http_proxy", "http://plain:3128")),
            ),
            ("https", "r.internal.example", None),
            ("http", "localhost:5000", None),
            // NO_PROXY decides even for loopback addresses.
            (
                "http",
                "127.0.0.1:5000",
                Some(("http_proxy", "http://plain:3128")),
            ),
        ];
        for (scheme, host, expected) in cases {
            let got = proxy_for(scheme, host, &env);
            let got = got.as_ref().map(|(v, u)| (*v, u.as_str()));
            assert_eq!(got, expected, "{scheme}://{host}");
        }
        let all = env_of(&[("all_proxy", "http://all:1"), ("no_proxy", "[::1]")]);
        assert_eq!(
            proxy_for("https", "quay.io", &all),
            Some(("all_proxy", "http://all:1".to_owned()))
        );
        assert_eq!(proxy_for("http", "[::1]:5000", &all), None);
        assert_eq!(
            proxy_for("https", "quay.io", &env_of(&[("HTTPS_PROXY", " ")])),
            None
        );
    }

    #[test]
    fn proxy_errors_hide_the_url() {
        let e = parse_proxy("HTTPS_PROXY", "socks5://user:pw@host:1080").unwrap_err();
        assert!(e.to_string().contains("only http:// proxies"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(parse_proxy("HTTPS_PROXY", "http://user:pw@host:3128").is_ok());
        assert!(parse_proxy("HTTPS_PROXY", "host:3128").is_ok());
    }

    #[test]
    fn scheme_and_proxy_follow_the_registry() {
        let options = ClientOptions::default();
        let env = |name: &str| (name == "HTTPS_PROXY").then(|| "socks5://x".to_owned());
        let quay: Reference = "quay.io/a".parse().unwrap();
        assert!(Transport::with_env(&quay, &options, &env).is_err());
        let t = Transport::with_env(&quay, &options, &|_| None).unwrap();
        assert_eq!(t.base_url(), "https://quay.io");
        let hub: Reference = "debian".parse().unwrap();
        let t = Transport::with_env(&hub, &options, &|_| None).unwrap();
        assert_eq!(t.base_url(), "https://registry-1.docker.io");
        // Loopback: HTTPS first, so HTTPS_PROXY must parse too.
        let local: Reference = "[::1]:5000/a".parse().unwrap();
        assert!(Transport::with_env(&local, &options, &env).is_err());
        let t = Transport::with_env(&local, &options, &|_| None).unwrap();
        assert_eq!(t.base_url(), "https://[::1]:5000");
        assert!(t.https.is_some() && t.http.is_some());
        let plain = ClientOptions {
            plain_http: true,
            ..ClientOptions::default()
        };
        let t = Transport::with_env(&quay, &plain, &|_| None).unwrap();
        assert_eq!(t.base_url(), "http://quay.io");
        assert!(t.https.is_none());
        // --plain-http never reads HTTPS_PROXY.
        let t = Transport::with_env(&local, &plain, &env).unwrap();
        assert_eq!(t.base_url(), "http://[::1]:5000");
        // insecure (registries.conf): probed as a loopback registry is.
        let insecure = ClientOptions {
            insecure: true,
            ..ClientOptions::default()
        };
        let t = Transport::with_env(&quay, &insecure, &|_| None).unwrap();
        assert_eq!(t.base_url(), "https://quay.io");
        assert!(t.https.is_some() && t.http.is_some());
        let t = Transport::with_env(&quay, &options, &|_| None).unwrap();
        assert!(t.http.is_none());
    }

    /// A registry that is not on this machine gets HTTPS only: a server
    /// answering the TLS hello in plain HTTP is an error, with a hint.
    #[test]
    fn a_remote_plain_http_server_is_an_error_not_a_fallback() {
        use std::io::Write;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // A server that answers a TLS handshake in plain HTTP.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let reference: Reference = "tls.test/a".parse().unwrap();
        let options = ClientOptions {
            backoff: Duration::from_millis(1),
            ..ClientOptions::default()
        };
        let transport = Transport::with_env(&reference, &options, &|_| None).unwrap();
        let url = format!("https://{authority}/v2/");
        let e = transport
            .call("probe", &mut transport.retry(), None, &|agent, _| {
                agent.get(&url)
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("probe: TLS problem with {authority}: ")),
            "{e}"
        );
        assert!(e.contains("--plain-http") && !e.contains('\n'), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert!(transport.uses_https());
    }
}
