//! A tiny scripted HTTP/1.1 server for the client's tests: every
//! connection carries one request and gets one answer chosen by the test,
//! written as raw bytes so that tests can also send broken answers (a body
//! cut short, a stall). Requests are recorded for assertions. A TLS hello
//! (the client trying HTTPS first) is counted and refused as a plain HTTP
//! server refuses it. [`TlsServer`] is the other side: a real TLS server
//! with a certificate nobody trusts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A request as received.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What to answer.
pub(super) enum Reply {
    /// These bytes, then close.
    Send(Vec<u8>),
    /// These bytes, then nothing for a while, then close.
    Stall(Vec<u8>, Duration),
    /// The first bytes at once, then the rest one at a time, `interval`
    /// apart, until the client closes.
    Trickle {
        at_once: Vec<u8>,
        trickled: Vec<u8>,
        interval: Duration,
    },
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// What a plain server does with a TLS hello.
#[derive(Debug, Clone, Copy)]
pub(super) enum OnTls {
    /// Answers `400 Bad Request` in plain HTTP, as Go's HTTP server (the
    /// distribution registry's) answers a line it cannot parse.
    Refuse,
    /// Closes the connection without a word.
    Close,
}

/// A server on a loopback address; its threads end with the test process.
pub(super) struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    tls_hellos: Arc<AtomicUsize>,
}

impl Server {
    /// A server on 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_on("127.0.0.1", handler)
    }

    /// A server on another loopback address (127.0.0.2 is "another host").
    pub fn start_on(
        ip: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start_with(ip, OnTls::Refuse, handler)
    }

    /// A server on `ip` that does `on_tls` with TLS hellos.
    pub fn start_with(
        ip: &str,
        on_tls: OnTls,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tls_hellos = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (recorded, hellos) = (requests.clone(), tls_hellos.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (handler, recorded, hellos) =
                    (handler.clone(), recorded.clone(), hellos.clone());
                std::thread::spawn(move || {
                    if starts_with_tls(&stream) {
                        hellos.fetch_add(1, Ordering::SeqCst);
                        refuse_tls(&mut stream, on_tls);
                    } else {
                        serve(stream, &*handler, &recorded);
                    }
                });
            }
        });
        Server {
            addr,
            requests,
            tls_hellos,
        }
    }

    /// `ip:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// How many connections began with a TLS hello.
    pub fn tls_hellos(&self) -> usize {
        self.tls_hellos.load(Ordering::SeqCst)
    }
}

/// Whether a connection's first byte starts a TLS handshake record.
fn starts_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8];
    matches!(stream.peek(&mut first), Ok(1) if first[0] == TLS_HANDSHAKE)
}

/// Reads the hello's record (so that closing sends no reset) and refuses.
pub(super) fn refuse_tls(stream: &mut TcpStream, on_tls: OnTls) {
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_ok() {
        let length = u16::from_be_bytes([header[3], header[4]]);
        let _ = std::io::copy(&mut (&*stream).take(length.into()), &mut std::io::sink());
    }
    if let OnTls::Refuse = on_tls {
        let _ = stream.write_all(&response("400 Bad Request", &[], b"400 Bad Request"));
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// A TLS server on 127.0.0.1 with a self-signed certificate for
/// 127.0.0.1 and localhost (made by the `openssl` command) that no client
/// trusts: every handshake fails on the client's side. It counts the
/// handshakes it saw and the connections that spoke plain HTTP instead.
pub(super) struct TlsServer {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    plain: Arc<AtomicUsize>,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        self_signed(&cert, &key);
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_file(&cert).unwrap()],
                PrivateKeyDer::from_pem_file(&key).unwrap(),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let plain = Arc::new(AtomicUsize::new(0));
        let (counted, plain_counted) = (handshakes.clone(), plain.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if !starts_with_tls(&stream) {
                    plain_counted.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut connection = rustls::ServerConnection::new(config).unwrap();
                    while connection.is_handshaking() {
                        if connection.complete_io(&mut stream).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TlsServer {
            addr,
            handshakes,
            plain,
        }
    }

    /// `ip:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// How many TLS handshakes were begun.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// How many connections spoke something other than TLS.
    pub fn plain_connections(&self) -> usize {
        self.plain.load(Ordering::SeqCst)
    }
}

/// A self-signed ECDSA certificate for 127.0.0.1 and localhost, and its
/// key, as PEM files: a server's certificate (not a CA's), so that a
/// client would accept it as its own trust anchor; the client here has
/// not been told to, so it sees an unknown issuer.
fn self_signed(cert: &Path, key: &Path) {
    let config = cert.with_extension("cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
         [dn]\nCN = ocirender unit-test server\n\
         [ext]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&config)
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("cannot run openssl");
    assert!(status.success(), "openssl req failed");
}

fn serve(stream: TcpStream, handler: &Handler, recorded: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    recorded.lock().unwrap().push(request.clone());
    let mut stream = stream;
    match handler(&request) {
        Reply::Send(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Reply::Stall(bytes, duration) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            std::thread::sleep(duration);
        }
        Reply::Trickle {
            at_once,
            trickled,
            interval,
        } => {
            let _ = stream.write_all(&at_once);
            for byte in trickled {
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(interval);
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .map_or(0, |l| l.parse().unwrap());
    request.body.resize(length, 0);
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// A complete answer: status line, `headers`, a `Content-Length` of `body`
/// (unless `headers` has one), `Connection: close`, and `body`.
pub(super) fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
