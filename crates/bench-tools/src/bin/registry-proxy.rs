//! `registry-proxy --upstream HOST:PORT [FAULT] [--rate BYTES_PER_SEC]`: a
//! plain-HTTP reverse proxy in front of a registry that misbehaves on
//! purpose, so `oci-fetch`'s retries, resumes, redirects and timeouts are
//! tested against real bytes from a real registry, and so `scripts/bench`
//! can measure streaming behind a bandwidth-limited link.
//!
//! Every request is forwarded as it came (method, target, headers including
//! `Authorization` and `Range`, body) on a fresh upstream connection, and
//! the response is streamed back; the client's connection is kept alive
//! when the response is framed. Faults apply to one kind of request only
//! (blob GETs on the main listener by default; `--fault-on` picks manifest
//! GETs or the token realm instead), so a test knows exactly what it
//! broke. A threads-and-`std::net` program on purpose: a test tool should
//! be easy to read when a test fails.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const PROGRAM: &str = "registry-proxy";

const AFTER_HELP: &str = "\
OUTPUT
  Once listening, the bound port on stdout (and in --port-file). It runs
  until killed. Not a request line at all (a client trying TLS first) gets
  400 and the connection closed, as the registry itself answers.

FAULTS (at most one; on the requests --fault-on names)
  --fault-on blobs (the default): blob GETs of the main listener;
  manifests: manifest GETs of the main listener; realm: token requests
  on the realm listener (see --realm-host). Each fault applies to the
  first N of them (--times, default 1; `all` for every one); the body
  faults (--cut-after, --stall, --trickle) count only responses the
  upstream answered with 2xx, so a 401 before a token does not use one.
  --flip-byte applies to every response holding that offset (an offset
  in the blob, also for 206 answers to Range requests). --cut-after closes
  the connection (FIN) short of Content-Length; --stall sends half the
  body (at most 64 KiB) and then nothing until the client closes;
  --trickle sends one byte a second until the client closes, from the
  first byte of the response (head) or after the head (body).
  --ignore-range (with any fault or none) forwards those requests without
  their Range header: the registry answers 200 with the whole blob, as a
  server that ignores ranges does; the log still shows the range asked.

REDIRECTS
  --redirect[=WHERE] answers 307 to SAME-PATH?proxy-ticket=N elsewhere:
  other-host (the default) at http://localhost:PORT2, a second listener
  (another host name, as a CDN would be); other-port at
  http://127.0.0.1:PORT2, the same host on another port; same-port at
  http://127.0.0.1:PORT, this listener. Like a presigned URL, the ticket
  lets the second listener fetch the blob from the registry with the
  Authorization of the redirected request, so a client that rightly sends
  no Authorization there still gets the blob. Log lines say whether the
  client sent one anyway; a request back on this listener is forwarded
  with what the client sent, and gets no second redirect.

TOKEN REALM (--realm-host HOST)
  The realm of every Bearer challenge the registry sends,
  realm=\"http://ISSUER/PATH\", becomes realm=\"http://HOST:PORT3/PATH\": a
  third listener, bound where HOST resolves (127.0.0.1 for 0.0.0.0), that
  relays token requests to ISSUER as they came, Authorization included,
  and logs them (listener realm). HOST is a name or address that reaches
  this machine without looking like it (0.0.0.0, the machine's name).

LOG (--log FILE)
  One JSON object per request, written when the status is known (before
  the body): listener (main|redirect|realm), method, path (without query),
  range (the Range header or null), authorization (true if the request
  carried one), redirected (true if it follows a --redirect), status,
  fault (the fault applied, or null).

EXAMPLES
  registry-proxy --upstream 127.0.0.1:5000 --port-file port --cut-after 1000
  registry-proxy --upstream 127.0.0.1:5000 --status-429 2 --times 3
  registry-proxy --upstream 127.0.0.1:5000 --fault-on manifests --trickle body
  registry-proxy --upstream 127.0.0.1:5000 --redirect=other-port --times all
  registry-proxy --upstream 127.0.0.1:5000 --rate 50000000 --port-file port";

/// A fault-injecting reverse proxy for a registry, for tests and benchmarks.
#[derive(Parser)]
#[command(name = PROGRAM, after_help = AFTER_HELP)]
struct Args {
    /// The registry to forward to, as HOST:PORT (plain HTTP).
    #[arg(long, value_name = "HOST:PORT")]
    upstream: String,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: String,
    /// Write the bound port here (atomically) once listening.
    #[arg(long, value_name = "FILE")]
    port_file: Option<PathBuf>,
    /// Append one JSON line per request to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// How many matching requests get the fault: a number, or `all`.
    #[arg(long, default_value = "1", value_name = "N|all", value_parser = parse_times)]
    times: Times,
    /// Send the headers and BYTES of the body, then close the connection.
    #[arg(long, value_name = "BYTES", group = "fault")]
    cut_after: Option<u64>,
    /// Flip the byte at this offset of the blob, in every response holding it.
    #[arg(long, value_name = "OFFSET", group = "fault")]
    flip_byte: Option<u64>,
    /// Answer 429 Too Many Requests with `Retry-After: SECONDS`.
    #[arg(long = "status-429", value_name = "SECONDS", group = "fault")]
    status_429: Option<u64>,
    /// Answer 500 Internal Server Error.
    #[arg(long = "status-500", group = "fault")]
    status_500: bool,
    /// Send the headers and part of the body, then hang without closing.
    #[arg(long, group = "fault")]
    stall: bool,
    /// Answer 307 to the same blob elsewhere (see REDIRECTS).
    #[arg(long, group = "fault", value_enum, value_name = "WHERE", num_args = 0..=1,
          default_missing_value = "other-host")]
    redirect: Option<RedirectTo>,
    /// Send the response one byte a second, from its head or its body.
    #[arg(long, group = "fault", value_enum, value_name = "FROM")]
    trickle: Option<TrickleFrom>,
    /// The requests a fault applies to.
    #[arg(long, value_enum, default_value = "blobs", value_name = "WHAT")]
    fault_on: FaultOn,
    /// Rewrite Bearer realms to a listener at HOST (see TOKEN REALM).
    #[arg(long, value_name = "HOST")]
    realm_host: Option<String>,
    /// Limit all response bodies together to this many bytes a second.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Forward the requests --fault-on names without their Range header,
    /// so the registry answers 200 with the whole blob, as a server that
    /// ignores ranges does.
    #[arg(long)]
    ignore_range: bool,
}

/// How many matching requests a fault applies to (`None`: all of them).
#[derive(Clone, Copy)]
struct Times(Option<u64>);

fn parse_times(s: &str) -> Result<Times, String> {
    if s == "all" {
        return Ok(Times(None));
    }
    s.parse()
        .map(|n| Times(Some(n)))
        .map_err(|_| format!("expected a number or `all`, not {s:?}"))
}

/// Where `--redirect` sends the client.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum RedirectTo {
    /// `localhost` on the second listener's port: another host.
    OtherHost,
    /// `127.0.0.1` on the second listener's port: the same host.
    OtherPort,
    /// This very listener: the same origin.
    SamePort,
}

/// Where `--trickle` starts sending one byte a second.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum TrickleFrom {
    /// The first byte of the status line.
    Head,
    /// The first byte of the body (the head goes at once).
    Body,
}

/// The requests faults apply to.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum FaultOn {
    /// `GET /v2/NAME/blobs/sha256:...` on the main listener.
    Blobs,
    /// `GET /v2/NAME/manifests/REF` on the main listener.
    Manifests,
    /// Every request on the realm listener.
    Realm,
}

/// The pause between two bytes of a trickled response.
const TRICKLE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    CutAfter(u64),
    FlipByte(u64),
    Status429(u64),
    Status500,
    Stall,
    Redirect(RedirectTo),
    Trickle(TrickleFrom),
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::CutAfter(_) => "cut-after",
            Fault::FlipByte(_) => "flip-byte",
            Fault::Status429(_) => "status-429",
            Fault::Status500 => "status-500",
            Fault::Stall => "stall",
            Fault::Redirect(_) => "redirect",
            Fault::Trickle(_) => "trickle",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Listener {
    Main,
    Redirect,
    Realm,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Main => "main",
            Listener::Redirect => "redirect",
            Listener::Realm => "realm",
        }
    }
}

/// What every connection thread shares.
struct Proxy {
    upstream: String,
    fault: Option<Fault>,
    fault_on: FaultOn,
    times: Times,
    /// Faults applied so far (against `times`).
    used: AtomicU64,
    throttle: Option<Throttle>,
    ignore_range: bool,
    log: Option<Mutex<File>>,
    main_port: OnceLock<u16>,
    redirect_port: OnceLock<u16>,
    /// Redirect tickets: the `Authorization` of the request redirected.
    tickets: Mutex<HashMap<u64, Option<Vec<u8>>>>,
    next_ticket: AtomicU64,
    /// `--realm-host`, and the realm listener's port.
    realm: Option<(String, u16)>,
    /// `HOST:PORT` of the token issuer the registry's challenges name.
    realm_upstream: OnceLock<String>,
}

impl Proxy {
    /// Whether the fault may be applied once more; counts it if so.
    fn take_fault(&self) -> bool {
        match self.times.0 {
            None => true,
            Some(limit) => self
                .used
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                    (used < limit).then_some(used + 1)
                })
                .is_ok(),
        }
    }

    /// Whether faults apply to `req`, received on `listener`.
    fn targets(&self, listener: Listener, req: &Request) -> bool {
        match self.fault_on {
            FaultOn::Blobs => listener == Listener::Main && req.is_blob_get(),
            FaultOn::Manifests => listener == Listener::Main && req.is_manifest_get(),
            FaultOn::Realm => listener == Listener::Realm,
        }
    }

    fn log(&self, listener: Listener, req: &Request, status: u16, fault: Option<Fault>) {
        let Some(log) = &self.log else { return };
        let line = json!({
            "listener": listener.name(),
            "method": req.method,
            "path": req.path(),
            "range": req.header("range").map(|v| String::from_utf8_lossy(v).into_owned()),
            "authorization": req.header("authorization").is_some(),
            "redirected": req.ticket().is_some(),
            "status": status,
            "fault": fault.map(Fault::name),
        });
        let mut file = log.lock().unwrap();
        // One write per line, flushed at once: tests read the log while the
        // proxy runs.
        let _ = file.write_all(format!("{line}\n").as_bytes());
        let _ = file.flush();
    }
}

/// A shared token bucket: all response bodies together get `rate` bytes a
/// second, as on one congested link.
struct Throttle {
    rate: u64,
    next: Mutex<Instant>,
}

impl Throttle {
    /// The largest write that keeps the pacing smooth (1/20 s of traffic).
    fn chunk(&self) -> usize {
        (self.rate / 20).clamp(1, 64 * 1024) as usize
    }

    /// Waits for the slot in which `n` bytes may be sent.
    fn pace(&self, n: usize) {
        let start = {
            let mut next = self.next.lock().unwrap();
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
            start
        };
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
    }
}

fn main() -> ExitCode {
    ocirender_cli::run(PROGRAM, run)
}

fn run() -> Result<()> {
    let args = Args::parse();
    let fault = if let Some(n) = args.cut_after {
        Some(Fault::CutAfter(n))
    } else if let Some(offset) = args.flip_byte {
        Some(Fault::FlipByte(offset))
    } else if let Some(seconds) = args.status_429 {
        Some(Fault::Status429(seconds))
    } else if args.status_500 {
        Some(Fault::Status500)
    } else if args.stall {
        Some(Fault::Stall)
    } else if let Some(to) = args.redirect {
        Some(Fault::Redirect(to))
    } else {
        args.trickle.map(Fault::Trickle)
    };
    let log = match &args.log {
        Some(path) => Some(Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log {}", path.display()))?,
        )),
        None => None,
    };
    let realm_listener = match &args.realm_host {
        Some(host) => Some((host.clone(), bind_where_resolved(host)?)),
        None => None,
    };
    let proxy = Arc::new(Proxy {
        upstream: args.upstream,
        fault,
        fault_on: args.fault_on,
        times: args.times,
        used: AtomicU64::new(0),
        throttle: args.rate.map(|rate| Throttle {
            rate,
            next: Mutex::new(Instant::now()),
        }),
        ignore_range: args.ignore_range,
        log,
        main_port: OnceLock::new(),
        redirect_port: OnceLock::new(),
        tickets: Mutex::new(HashMap::new()),
        next_ticket: AtomicU64::new(1),
        realm: match &realm_listener {
            Some((host, listener)) => Some((host.clone(), listener.local_addr()?.port())),
            None => None,
        },
        realm_upstream: OnceLock::new(),
    });
    if let Some((_, listener)) = realm_listener {
        spawn_accept(listener, Listener::Realm, &proxy);
    }

    let main = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let port = main.local_addr()?.port();
    proxy.main_port.set(port).unwrap();
    if matches!(
        fault,
        Some(Fault::Redirect(
            RedirectTo::OtherHost | RedirectTo::OtherPort
        ))
    ) {
        // A client must send the registry's credentials to neither: not to
        // `localhost` (another host), nor to another port of 127.0.0.1.
        let redirect = TcpListener::bind("127.0.0.1:0").context("cannot listen for redirects")?;
        let redirect_port = redirect.local_addr()?.port();
        // `localhost` may resolve to ::1 first; serve there too if we can.
        if let Ok(v6) = TcpListener::bind(("::1", redirect_port)) {
            spawn_accept(v6, Listener::Redirect, &proxy);
        }
        proxy.redirect_port.set(redirect_port).unwrap();
        spawn_accept(redirect, Listener::Redirect, &proxy);
    }
    if let Some(path) = &args.port_file {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, format!("{port}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write the port file {}", path.display()))?;
    }
    println!("{port}");
    io::stdout().flush()?;
    accept(main, Listener::Main, &proxy);
    Ok(())
}

/// A listener where `host` (a name, or an address, IPv6 in brackets)
/// resolves, on a free port; an unspecified address (0.0.0.0, which a
/// client's connect reaches this machine by) binds loopback instead.
fn bind_where_resolved(host: &str) -> Result<TcpListener> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut addr = (bare, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the realm host {host}"))?
        .next()
        .with_context(|| format!("the realm host {host} has no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for the realm"))
}

fn spawn_accept(listener: TcpListener, which: Listener, proxy: &Arc<Proxy>) {
    let proxy = Arc::clone(proxy);
    std::thread::spawn(move || accept(listener, which, &proxy));
}

fn accept(listener: TcpListener, which: Listener, proxy: &Arc<Proxy>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let proxy = Arc::clone(proxy);
        std::thread::spawn(move || {
            if let Err(err) = serve(&proxy, which, client) {
                if !is_disconnect(&err) {
                    ocirender_cli::warn(PROGRAM, &format!("{err:#}"));
                }
            }
        });
    }
}

/// A client that went away (often on purpose, after a fault) is no news.
fn is_disconnect(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            )
        })
    })
}

/// A parsed request head.
struct Request {
    method: String,
    /// Path and query, as sent.
    target: String,
    /// HTTP/1.x minor version.
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The redirect ticket in the query, if the request follows a redirect.
    fn ticket(&self) -> Option<u64> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("proxy-ticket=")?.parse().ok())
    }

    /// The target without the redirect ticket.
    fn target_without_ticket(&self) -> String {
        let Some((path, query)) = self.target.split_once('?') else {
            return self.target.clone();
        };
        let rest: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.starts_with("proxy-ticket="))
            .collect();
        if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", rest.join("&"))
        }
    }

    /// `GET /v2/NAME/manifests/REF`.
    fn is_manifest_get(&self) -> bool {
        self.method == "GET"
            && self.path().starts_with("/v2/")
            && self
                .path()
                .rsplit_once("/manifests/")
                .is_some_and(|(_, reference)| !reference.is_empty() && !reference.contains('/'))
    }

    /// `GET /v2/NAME/blobs/sha256:HEX`.
    fn is_blob_get(&self) -> bool {
        self.method == "GET"
            && self.path().starts_with("/v2/")
            && self
                .path()
                .rsplit_once("/blobs/")
                .is_some_and(|(_, digest)| digest.starts_with("sha256:") && !digest.contains('/'))
    }

    fn keep_alive(&self) -> bool {
        let connection = self
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
        match connection.as_deref() {
            Some(c) if c.contains("close") => false,
            Some(c) if c.contains("keep-alive") => true,
            _ => self.version >= 1,
        }
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// How a message body is delimited.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

fn framing(headers: &[(String, Vec<u8>)]) -> Result<Option<Framing>> {
    if let Some(te) = header(headers, "transfer-encoding") {
        if String::from_utf8_lossy(te)
            .to_ascii_lowercase()
            .contains("chunked")
        {
            return Ok(Some(Framing::Chunked));
        }
    }
    match header(headers, "content-length") {
        Some(v) => {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .context("bad Content-Length")?;
            Ok(Some(Framing::Length(n)))
        }
        None => Ok(None),
    }
}

/// Reads a message head (through the blank line); `None` at a clean end
/// of the connection before any byte of it.
fn read_head(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            if head.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(None);
            }
            bail!("connection closed in the middle of a message head");
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                // Stray line breaks between messages are allowed.
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
        if head.len() > 256 * 1024 {
            bail!("message head too large");
        }
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

fn parse_request(head: &[u8]) -> Result<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head).context("bad request head")? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => bail!("incomplete request head"),
    }
    Ok(Request {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        version: req.version.unwrap_or(1),
        headers: owned_headers(req.headers),
    })
}

/// A parsed response head.
struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
}

fn parse_response(head: &[u8]) -> Result<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head).context("bad response head")? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => bail!("incomplete response head"),
    }
    Ok(Response {
        status: resp.code.unwrap_or(502),
        reason: resp.reason.unwrap_or_default().to_owned(),
        headers: owned_headers(resp.headers),
    })
}

/// Headers that describe one hop, not the message: never forwarded.
fn is_hop_by_hop(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "expect"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether the client's connection can serve another request.
#[derive(PartialEq)]
enum After {
    KeepAlive,
    Close,
}

fn serve(proxy: &Proxy, listener: Listener, client: TcpStream) -> Result<()> {
    client.set_nodelay(true)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        // Not a request line (a TLS ClientHello, from a client trying
        // HTTPS first): refuse at once, as the registry itself would,
        // rather than wait for a line that never comes.
        let first = reader.fill_buf()?.first().copied();
        match first {
            None => return Ok(()),
            Some(b) if b.is_ascii_alphabetic() || b == b'\r' || b == b'\n' => {}
            Some(_) => {
                let refusal =
                    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
                writer.write_all(refusal.as_bytes())?;
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let req = parse_request(&head)?;
        let after = handle(proxy, listener, &req, &mut reader, &mut writer)?;
        if after == After::Close || !req.keep_alive() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn handle(
    proxy: &Proxy,
    listener: Listener,
    req: &Request,
    reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
) -> Result<After> {
    let body = framing(&req.headers)?.unwrap_or(Framing::None);
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    // A request answered here leaves its body unread: then close.
    let unread = if body == Framing::None {
        After::KeepAlive
    } else {
        After::Close
    };
    // A request back from a same-port redirect gets no second one.
    let targeted = proxy.targets(listener, req) && req.ticket().is_none();

    // Faults that answer instead of the registry.
    if targeted {
        match proxy.fault {
            Some(fault @ Fault::Status429(seconds)) if proxy.take_fault() => {
                proxy.log(listener, req, 429, Some(fault));
                let retry_after = seconds.to_string();
                respond(
                    client,
                    429,
                    "Too Many Requests",
                    &[("Retry-After", &retry_after)],
                    &error_body("TOOMANYREQUESTS", "too many requests (injected)"),
                )?;
                return Ok(unread);
            }
            Some(fault @ Fault::Status500) if proxy.take_fault() => {
                proxy.log(listener, req, 500, Some(fault));
                respond(
                    client,
                    500,
                    "Internal Server Error",
                    &[],
                    &error_body("UNKNOWN", "internal server error (injected)"),
                )?;
                return Ok(unread);
            }
            Some(fault @ Fault::Redirect(to)) if proxy.take_fault() => {
                let ticket = proxy.next_ticket.fetch_add(1, Ordering::SeqCst);
                proxy
                    .tickets
                    .lock()
                    .unwrap()
                    .insert(ticket, req.header("authorization").map(<[u8]>::to_vec));
                let separator = if req.target.contains('?') { '&' } else { '?' };
                let origin = match to {
                    RedirectTo::OtherHost => format!(
                        "localhost:{}",
                        proxy.redirect_port.get().expect("redirect listener")
                    ),
                    RedirectTo::OtherPort => format!(
                        "127.0.0.1:{}",
                        proxy.redirect_port.get().expect("redirect listener")
                    ),
                    RedirectTo::SamePort => {
                        format!(
                            "127.0.0.1:{}",
                            proxy.main_port.get().expect("main listener")
                        )
                    }
                };
                let location = format!(
                    "http://{origin}{}{separator}proxy-ticket={ticket}",
                    req.target,
                );
                proxy.log(listener, req, 307, Some(fault));
                respond(
                    client,
                    307,
                    "Temporary Redirect",
                    &[("Location", &location)],
                    b"",
                )?;
                return Ok(unread);
            }
            _ => {}
        }
    }

    // The redirect listener fetches with the redirected request's
    // credentials, never with what the client sent it; the main listener
    // forwards what the client sent.
    let target = req.target_without_ticket();
    let authorization = match listener {
        Listener::Redirect => req
            .ticket()
            .and_then(|t| proxy.tickets.lock().unwrap().get(&t).cloned().flatten()),
        Listener::Main | Listener::Realm => req.header("authorization").map(<[u8]>::to_vec),
    };

    let upstream_addr = match listener {
        Listener::Realm => proxy
            .realm_upstream
            .get()
            .context("a token request before any challenge named the realm")?,
        Listener::Main | Listener::Redirect => &proxy.upstream,
    };
    let upstream = match TcpStream::connect(upstream_addr) {
        Ok(stream) => stream,
        Err(err) => {
            proxy.log(listener, req, 502, None);
            let message = format!("cannot reach the upstream {upstream_addr}: {err}");
            respond(
                client,
                502,
                "Bad Gateway",
                &[],
                &error_body("UNAVAILABLE", &message),
            )?;
            return Ok(unread);
        }
    };
    upstream.set_nodelay(true)?;
    let mut up_writer = BufWriter::new(upstream.try_clone()?);
    let mut up_reader = BufReader::with_capacity(64 * 1024, upstream);

    // Forward the request: one request per upstream connection.
    write!(up_writer, "{} {} HTTP/1.1\r\n", req.method, target)?;
    for (name, value) in &req.headers {
        if is_hop_by_hop(name) || name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        if proxy.ignore_range && targeted && name.eq_ignore_ascii_case("range") {
            continue;
        }
        write_header(&mut up_writer, name, value)?;
    }
    if let Some(value) = &authorization {
        write_header(&mut up_writer, "Authorization", value)?;
    }
    up_writer.write_all(b"Connection: close\r\n\r\n")?;
    relay(reader, &mut up_writer, body, None)?;
    up_writer.flush()?;

    // The response.
    let head = read_head(&mut up_reader)?.context("the registry closed without answering")?;
    let mut resp = parse_response(&head)?;
    if listener == Listener::Main && resp.status == 401 {
        if let Some((host, port)) = &proxy.realm {
            rewrite_realms(&mut resp.headers, host, *port, &proxy.realm_upstream);
        }
    }
    let no_body =
        req.method == "HEAD" || resp.status / 100 == 1 || resp.status == 204 || resp.status == 304;
    let resp_body = if no_body {
        Framing::None
    } else {
        framing(&resp.headers)?.unwrap_or(Framing::UntilClose)
    };

    // Faults on the body.
    let mut fault = None;
    if targeted && (200..300).contains(&resp.status) {
        if let Some(f @ Fault::Trickle(_)) = proxy.fault {
            fault = proxy.take_fault().then_some(f);
        }
        if let Framing::Length(len) = resp_body {
            fault = fault.or(match proxy.fault {
                Some(f @ Fault::CutAfter(n)) if n < len && proxy.take_fault() => Some(f),
                Some(f @ Fault::Stall) if len > 0 && proxy.take_fault() => Some(f),
                Some(f @ Fault::FlipByte(offset)) => {
                    let start = range_start(&resp.headers);
                    (offset >= start && offset - start < len).then_some(f)
                }
                _ => None,
            });
        }
    }
    proxy.log(listener, req, resp.status, fault);

    let mut out = io::Cursor::new(Vec::new());
    write!(out, "HTTP/1.1 {} {}\r\n", resp.status, resp.reason)?;
    for (name, value) in &resp.headers {
        if !is_hop_by_hop(name) {
            write_header(&mut out, name, value)?;
        }
    }
    let after = if resp_body == Framing::UntilClose {
        out.write_all(b"Connection: close\r\n")?;
        After::Close
    } else {
        After::KeepAlive
    };
    out.write_all(b"\r\n")?;
    if let Some(Fault::Trickle(from)) = fault {
        // Until the client gives up: a broken pipe ends the thread.
        if from == TrickleFrom::Head {
            trickle(client, out.get_ref())?;
        } else {
            client.write_all(out.get_ref())?;
        }
        let mut sink = Trickle {
            inner: &mut *client,
        };
        relay(&mut up_reader, &mut sink, resp_body, None)?;
        return Ok(After::Close);
    }
    client.write_all(out.get_ref())?;

    let mut sink = Paced {
        inner: &mut *client,
        throttle: proxy.throttle.as_ref(),
    };
    match (fault, resp_body) {
        (Some(Fault::CutAfter(n)), _) => {
            relay(&mut up_reader, &mut sink, Framing::Length(n), None)?;
            sink.flush()?;
            // Abruptly: the body is shorter than its Content-Length.
            let _ = client.shutdown(Shutdown::Both);
            Ok(After::Close)
        }
        (Some(Fault::Stall), Framing::Length(len)) => {
            let part = (len / 2).min(64 * 1024);
            relay(&mut up_reader, &mut sink, Framing::Length(part), None)?;
            sink.flush()?;
            // Hang until the client gives up (or ten minutes, for a client
            // that never does: the test fails on its own timeout first).
            client.set_read_timeout(Some(Duration::from_secs(600)))?;
            let mut byte = [0u8; 1];
            while matches!(reader.read(&mut byte), Ok(n) if n > 0) {}
            Ok(After::Close)
        }
        (Some(Fault::FlipByte(offset)), _) => {
            let flip = offset - range_start(&resp.headers);
            relay(&mut up_reader, &mut sink, resp_body, Some(flip))?;
            sink.flush()?;
            Ok(after)
        }
        _ => {
            relay(&mut up_reader, &mut sink, resp_body, None)?;
            sink.flush()?;
            Ok(after)
        }
    }
}

/// Points every `realm="http://ISSUER/PATH"` of Bearer challenges at the
/// realm listener (`http://HOST:PORT/PATH`), remembering ISSUER.
fn rewrite_realms(
    headers: &mut [(String, Vec<u8>)],
    host: &str,
    port: u16,
    upstream: &OnceLock<String>,
) {
    const REALM: &str = "realm=\"http://";
    for (name, value) in headers.iter_mut() {
        if !name.eq_ignore_ascii_case("www-authenticate") {
            continue;
        }
        let text = String::from_utf8_lossy(value).into_owned();
        let Some(start) = text.find(REALM).map(|i| i + REALM.len()) else {
            continue;
        };
        let rest = &text[start..];
        let end = rest.find(['/', '"']).unwrap_or(rest.len());
        let _ = upstream.set(rest[..end].to_owned());
        *value = format!("{}{host}:{port}{}", &text[..start], &rest[end..]).into_bytes();
    }
}

/// Writes `bytes` one a second.
fn trickle(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    Trickle { inner: out }.write_all(bytes)
}

/// A writer that passes on one byte a second.
struct Trickle<'a, W: Write> {
    inner: &'a mut W,
}

impl<W: Write> Write for Trickle<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(byte) = buf.first() else {
            return Ok(0);
        };
        self.inner.write_all(std::slice::from_ref(byte))?;
        self.inner.flush()?;
        std::thread::sleep(TRICKLE_INTERVAL);
        Ok(1)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_header(out: &mut impl Write, name: &str, value: &[u8]) -> io::Result<()> {
    out.write_all(name.as_bytes())?;
    out.write_all(b": ")?;
    out.write_all(value)?;
    out.write_all(b"\r\n")
}

/// A response made here, framed by its length.
fn respond(
    client: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    client.write_all(out.as_bytes())?;
    client.write_all(body)
}

/// An error body in the distribution spec's format.
fn error_body(code: &str, message: &str) -> Vec<u8> {
    json!({"errors": [{"code": code, "message": message, "detail": null}]})
        .to_string()
        .into_bytes()
}

/// The blob offset a response body starts at (`Content-Range: bytes S-E/T`).
fn range_start(headers: &[(String, Vec<u8>)]) -> u64 {
    header(headers, "content-range")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A writer whose bytes go out at the throttle's pace.
struct Paced<'a, W: Write> {
    inner: &'a mut W,
    throttle: Option<&'a Throttle>,
}

impl<W: Write> Write for Paced<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.throttle {
            None => self.inner.write(buf),
            Some(throttle) => {
                let n = buf.len().min(throttle.chunk());
                throttle.pace(n);
                self.inner.write_all(&buf[..n])?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies one message body as framed, verbatim (a chunked body keeps its
/// chunks), flipping the byte at `flip` of a length-framed body.
fn relay(
    src: &mut impl BufRead,
    dst: &mut impl Write,
    framing: Framing,
    flip: Option<u64>,
) -> Result<()> {
    match framing {
        Framing::None => Ok(()),
        Framing::Length(len) => copy_exact(src, dst, len, flip),
        Framing::UntilClose => {
            io::copy(src, dst)?;
            Ok(())
        }
        Framing::Chunked => {
            let mut line = Vec::new();
            loop {
                line.clear();
                if src.read_until(b'\n', &mut line)? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
                dst.write_all(&line)?;
                let size = match httparse::parse_chunk_size(&line) {
                    Ok(httparse::Status::Complete((_, size))) => size,
                    _ => bail!("bad chunk size line"),
                };
                if size == 0 {
                    // Trailers, through the blank line.
                    loop {
                        line.clear();
                        if src.read_until(b'\n', &mut line)? == 0 {
                            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                        }
                        dst.write_all(&line)?;
                        if line == b"\r\n" || line == b"\n" {
                            return Ok(());
                        }
                    }
                }
                // The data and its CRLF.
                copy_exact(src, dst, size + 2, None)?;
            }
        }
    }
}

fn copy_exact(
    src: &mut impl BufRead,
    dst: &mut impl Write,
    len: u64,
    flip: Option<u64>,
) -> Result<()> {
    let mut done = 0u64;
    while done < len {
        let buf = src.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let n = buf
            .len()
            .min(usize::try_from(len - done).unwrap_or(usize::MAX));
        match flip {
            Some(at) if at >= done && at - done < n as u64 => {
                let mut chunk = buf[..n].to_vec();
                chunk[(at - done) as usize] ^= 0xff;
                dst.write_all(&chunk)?;
            }
            _ => dst.write_all(&buf[..n])?,
        }
        src.consume(n);
        done += n as u64;
    }
    Ok(())
}
