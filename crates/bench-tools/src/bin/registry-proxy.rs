//! `registry-proxy --upstream HOST:PORT [FAULT] [--rate BYTES_PER_SEC]`: a
//! plain-HTTP reverse proxy in front of a registry that misbehaves on
//! purpose, so `oci-fetch`'s retries, resumes, redirects and timeouts are
//! tested against real bytes from a real registry, and so `scripts/bench`
//! can measure streaming behind a bandwidth-limited link.
//!
//! Every request is forwarded as it came (method, target, headers including
//! `Authorization` and `Range`, body) on a fresh upstream connection, and
//! the response is streamed back; the client's connection is kept alive
//! when the response is framed. Faults apply only to blob GETs on the main
//! listener (`GET /v2/NAME/blobs/sha256:...`), never to manifests, so a
//! test knows exactly what it broke. A threads-and-`std::net` program on
//! purpose: a test tool should be easy to read when a test fails.

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

FAULTS (at most one; on blob GETs of the main listener only)
  Each applies to the first N blob GETs (--times, default 1; `all` for
  every one); the body faults (--cut-after, --stall) count only responses
  the registry answered with 2xx, so a 401 before a token does not use one.
  --flip-byte applies to every response holding that offset (an offset
  in the blob, also for 206 answers to Range requests). --cut-after closes
  the connection (FIN) short of Content-Length; --stall sends half the
  body (at most 64 KiB) and then nothing until the client closes.

REDIRECTS
  --redirect answers 307 to http://localhost:PORT2/SAME-PATH?proxy-ticket=N,
  a second listener (another host name, as a CDN would be). Like a
  presigned URL, the ticket lets it fetch the blob from the registry with
  the Authorization of the redirected request, so a client that rightly
  sends no Authorization there still gets the blob. Its log lines say
  whether the client sent one anyway.

LOG (--log FILE)
  One JSON object per request, written when the status is known (before
  the body): listener (main|redirect), method, path (without query), range
  (the Range header or null), authorization (true if the request carried
  one), status, fault (the fault applied, or null).

EXAMPLES
  registry-proxy --upstream 127.0.0.1:5000 --port-file port --cut-after 1000
  registry-proxy --upstream 127.0.0.1:5000 --status-429 2 --times 3
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
    /// Answer 307 to the same blob on a second listener at localhost.
    #[arg(long, group = "fault")]
    redirect: bool,
    /// Limit all response bodies together to this many bytes a second.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
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

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    CutAfter(u64),
    FlipByte(u64),
    Status429(u64),
    Status500,
    Stall,
    Redirect,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::CutAfter(_) => "cut-after",
            Fault::FlipByte(_) => "flip-byte",
            Fault::Status429(_) => "status-429",
            Fault::Status500 => "status-500",
            Fault::Stall => "stall",
            Fault::Redirect => "redirect",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Listener {
    Main,
    Redirect,
}

/// What every connection thread shares.
struct Proxy {
    upstream: String,
    fault: Option<Fault>,
    times: Times,
    /// Faults applied so far (against `times`).
    used: AtomicU64,
    throttle: Option<Throttle>,
    log: Option<Mutex<File>>,
    redirect_port: OnceLock<u16>,
    /// Redirect tickets: the `Authorization` of the request redirected.
    tickets: Mutex<HashMap<u64, Option<Vec<u8>>>>,
    next_ticket: AtomicU64,
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

    fn log(&self, listener: Listener, req: &Request, status: u16, fault: Option<Fault>) {
        let Some(log) = &self.log else { return };
        let line = json!({
            "listener": match listener { Listener::Main => "main", Listener::Redirect => "redirect" },
            "method": req.method,
            "path": req.path(),
            "range": req.header("range").map(|v| String::from_utf8_lossy(v).into_owned()),
            "authorization": req.header("authorization").is_some(),
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
    ocirender::cli::run(PROGRAM, run)
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
    } else if args.redirect {
        Some(Fault::Redirect)
    } else {
        None
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
    let proxy = Arc::new(Proxy {
        upstream: args.upstream,
        fault,
        times: args.times,
        used: AtomicU64::new(0),
        throttle: args.rate.map(|rate| Throttle {
            rate,
            next: Mutex::new(Instant::now()),
        }),
        log,
        redirect_port: OnceLock::new(),
        tickets: Mutex::new(HashMap::new()),
        next_ticket: AtomicU64::new(1),
    });

    let main = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let port = main.local_addr()?.port();
    if fault == Some(Fault::Redirect) {
        // `localhost`, not the main listener's address: the client must see
        // another host, and must not send the registry's credentials there.
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
                    ocirender::cli::warn(PROGRAM, &format!("{err:#}"));
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

    /// `GET /v2/NAME/blobs/sha256:HEX`: what faults apply to.
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
    let blob_get = listener == Listener::Main && req.is_blob_get();

    // Faults that answer instead of the registry.
    if blob_get {
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
            Some(fault @ Fault::Redirect) if proxy.take_fault() => {
                let ticket = proxy.next_ticket.fetch_add(1, Ordering::SeqCst);
                proxy
                    .tickets
                    .lock()
                    .unwrap()
                    .insert(ticket, req.header("authorization").map(<[u8]>::to_vec));
                let separator = if req.target.contains('?') { '&' } else { '?' };
                let location = format!(
                    "http://localhost:{}{}{separator}proxy-ticket={ticket}",
                    proxy.redirect_port.get().expect("redirect listener"),
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
    // credentials, never with what the client sent it.
    let mut target = req.target.clone();
    let mut authorization = req.header("authorization").map(<[u8]>::to_vec);
    if listener == Listener::Redirect {
        if let Some((path, query)) = req.target.split_once('?') {
            let mut ticket = None;
            let rest: Vec<&str> = query
                .split('&')
                .filter(|kv| match kv.strip_prefix("proxy-ticket=") {
                    Some(n) => {
                        ticket = n.parse::<u64>().ok();
                        false
                    }
                    None => true,
                })
                .collect();
            target = if rest.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", rest.join("&"))
            };
            authorization =
                ticket.and_then(|t| proxy.tickets.lock().unwrap().get(&t).cloned().flatten());
        } else {
            authorization = None;
        }
    }

    let upstream = match TcpStream::connect(&proxy.upstream) {
        Ok(stream) => stream,
        Err(err) => {
            proxy.log(listener, req, 502, None);
            let message = format!("cannot reach the registry {}: {err}", proxy.upstream);
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
    let resp = parse_response(&head)?;
    let no_body =
        req.method == "HEAD" || resp.status / 100 == 1 || resp.status == 204 || resp.status == 304;
    let resp_body = if no_body {
        Framing::None
    } else {
        framing(&resp.headers)?.unwrap_or(Framing::UntilClose)
    };

    // Faults on the body.
    let mut fault = None;
    if blob_get && (200..300).contains(&resp.status) {
        if let Framing::Length(len) = resp_body {
            fault = match proxy.fault {
                Some(f @ Fault::CutAfter(n)) if n < len && proxy.take_fault() => Some(f),
                Some(f @ Fault::Stall) if len > 0 && proxy.take_fault() => Some(f),
                Some(f @ Fault::FlipByte(offset)) => {
                    let start = range_start(&resp.headers);
                    (offset >= start && offset - start < len).then_some(f)
                }
                _ => None,
            };
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
