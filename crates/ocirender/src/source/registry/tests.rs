//! The client against scripted servers on loopback addresses: retries,
//! `Retry-After`, resumed blobs, digest checks, redirects, tokens and the
//! errors people see.

use super::test_server::{response, OnTls, Reply, Request, Server, TlsServer};
use super::*;
use crate::blob::digest::Hasher;
use std::fmt::Display;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

fn options() -> ClientOptions {
    ClientOptions {
        retries: 3,
        backoff: Duration::from_millis(1),
        stall_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// A client for `test/repo` on `server`, ignoring the process's proxy
/// variables.
fn registry_with(server: &Server, options: &ClientOptions) -> Registry {
    let reference: Reference = format!("{}/test/repo", server.authority()).parse().unwrap();
    let transport = Transport::with_env(&reference, options, &|_| None).unwrap();
    Registry::with_transport(&reference, options, transport)
}

fn registry(server: &Server) -> Registry {
    registry_with(server, &options())
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of_bytes(Algorithm::Sha256, bytes)
}

/// The error's whole text, which must be one line.
fn text(error: impl Display) -> String {
    let text = format!("{error:#}");
    assert!(!text.contains('\n'), "multi-line error: {text}");
    text
}

fn ok(body: &[u8]) -> Reply {
    Reply::Send(response("200 OK", &[], body))
}

/// Answers the n-th request (from 0) with `replies[n]`, the last one after.
fn scripted(replies: Vec<Vec<u8>>) -> impl Fn(&Request) -> Reply {
    let count = AtomicUsize::new(0);
    move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst).min(replies.len() - 1);
        Reply::Send(replies[n].clone())
    }
}

fn authfile(dir: &tempfile::TempDir, registry: &str, entry: serde_json::Value) -> PathBuf {
    let path = dir.path().join("auth.json");
    let config = serde_json::json!({ "auths": { registry: entry } });
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn clients_and_readers_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Registry>();
    send::<BlobReader>();
}

/// A registry on this machine that does not speak TLS: the first request
/// tries HTTPS, gets a plain-HTTP answer (as the distribution registry
/// answers), and from then on every request of every clone, thread and
/// client of that registry in the process is plain HTTP.
#[test]
fn a_plain_http_loopback_registry_is_probed_once_then_spoken_to_in_http() {
    let digest = sha256(MANIFEST).to_string();
    let server = Server::start(move |_| {
        let headers = [("Docker-Content-Digest", digest.as_str())];
        Reply::Send(response("200 OK", &headers, MANIFEST))
    });
    let registry = registry(&server);
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (registry, barrier) = (registry.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                registry.manifest("t").map(|m| m.bytes)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), MANIFEST);
    }
    assert_eq!(
        server.tls_hellos(),
        1,
        "one probe for four requests at once"
    );
    assert!(!registry.transport().uses_https());
    // Another client of the same registry remembers it.
    registry_with(&server, &options()).manifest("t").unwrap();
    assert_eq!(server.tls_hellos(), 1);
    assert_eq!(server.requests().len(), 5);
}

/// A peer that drops the connection during the handshake does not speak
/// TLS either.
#[test]
fn a_handshake_dropped_by_a_loopback_registry_falls_back_to_http() {
    let server = Server::start_with("127.0.0.1", OnTls::Close, |_| ok(MANIFEST));
    let registry = registry(&server);
    assert_eq!(registry.manifest("t").unwrap().bytes, MANIFEST);
    registry.manifest("t").unwrap();
    assert_eq!(server.tls_hellos(), 1);
    assert_eq!(server.requests().len(), 2);
}

/// `--plain-http` never tries HTTPS.
#[test]
fn plain_http_is_never_probed() {
    let server = Server::start(|_| ok(MANIFEST));
    let options = ClientOptions {
        plain_http: true,
        ..options()
    };
    registry_with(&server, &options).manifest("t").unwrap();
    assert_eq!(server.tls_hellos(), 0);
    assert_eq!(server.requests().len(), 1);
}

/// A loopback registry that speaks TLS with a certificate nobody trusts:
/// an error saying so, never a retry in plain HTTP.
#[test]
fn a_certificate_problem_is_no_reason_for_plain_http() {
    let server = TlsServer::start();
    let reference: Reference = format!("{}/test/repo", server.authority()).parse().unwrap();
    let transport = Transport::with_env(&reference, &options(), &|_| None).unwrap();
    let registry = Registry::with_transport(&reference, &options(), transport);
    for _ in 0..2 {
        let e = text(registry.manifest("t").unwrap_err());
        assert!(
            e.contains(&format!(
                ":t: TLS/certificate problem with {}: ",
                server.authority()
            )),
            "{e}"
        );
        assert!(
            e.contains("UnknownIssuer") && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
    }
    assert_eq!(server.handshakes(), 2, "not retried");
    assert_eq!(server.plain_connections(), 0);
    assert!(registry.transport().uses_https());
}

#[test]
fn manifest_by_tag_is_checked_against_the_registry_digest() {
    let digest = sha256(MANIFEST).to_string();
    let server = Server::start(move |r| {
        let claimed = if r.path().ends_with("/good") {
            digest.clone()
        } else {
            sha256(b"other").to_string()
        };
        let headers = [
            ("Content-Type", OCI_MANIFEST),
            ("Docker-Content-Digest", claimed.as_str()),
        ];
        Reply::Send(response("200 OK", &headers, MANIFEST))
    });
    let registry = registry(&server);
    let fetched = registry.manifest("good").unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    assert_eq!(fetched.digest, sha256(MANIFEST));
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    let request = &server.requests()[0];
    assert_eq!(request.path(), "/v2/test/repo/manifests/good");
    let accept = request.header("accept").unwrap();
    for media_type in [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ] {
        assert!(accept.contains(media_type), "{accept}");
    }
    assert!(request
        .header("user-agent")
        .unwrap()
        .starts_with("ocirender/"));
    assert!(request.header("accept-encoding").is_none());

    let e = text(registry.manifest("bad").unwrap_err());
    assert!(
        e.contains(":bad: digest mismatch: the registry says"),
        "{e}"
    );
}

#[test]
fn manifest_by_digest_is_verified() {
    let server = Server::start(|_| ok(MANIFEST));
    let registry = registry(&server);
    let digest = sha256(MANIFEST);
    assert_eq!(
        registry.manifest(&digest.to_string()).unwrap().digest,
        digest
    );
    let wrong = sha256(b"something else");
    let e = text(registry.manifest(&wrong.to_string()).unwrap_err());
    assert!(
        e.contains(&format!(
            "/test/repo@{wrong}: digest mismatch: content has {digest}"
        )),
        "{e}"
    );
    assert!(registry.manifest("../x").is_err());
}

#[test]
fn media_type_falls_back_to_the_document() {
    let server = Server::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[("Content-Type", "application/json; charset=utf-8")],
            MANIFEST,
        ))
    });
    let fetched = registry(&server).manifest("t").unwrap();
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    assert_eq!(
        media_type(Some("text/plain"), b"{}"),
        "text/plain",
        "without a mediaType the header is all there is"
    );
}

/// A manifest over 4 MiB is refused: by its declared length before it is
/// read, or, with no length, after 4 MiB and one byte.
#[test]
fn manifest_larger_than_the_cap_is_refused() {
    let big = vec![b' '; MAX_DOCUMENT as usize + 1];
    let declared = response("200 OK", &[], &big);
    let undeclared = [&b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"[..], &big].concat();
    for (reply, size) in [(declared, " 4194305 bytes,"), (undeclared, "")] {
        let server = Server::start(move |_| Reply::Send(reply.clone()));
        let e = text(registry(&server).manifest("t").unwrap_err());
        assert!(
            e.ends_with(&format!(
                "/test/repo:t: the manifest is{size} over the 4 MiB limit for indexes, \
                 manifests and configs"
            )),
            "{e}"
        );
    }
}

#[test]
fn not_found_quotes_the_registry() {
    let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nosuch"}}]}"#;
    let server = Server::start(|_| Reply::Send(response("404 Not Found", &[], body)));
    let e = text(registry(&server).manifest("nosuch").unwrap_err());
    assert!(
        e.ends_with("/test/repo:nosuch: not found (MANIFEST_UNKNOWN: manifest unknown)"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn server_errors_are_retried() {
    let server = Server::start(scripted(vec![
        response("500 Internal Server Error", &[], b"oops"),
        response("502 Bad Gateway", &[], b""),
        response("200 OK", &[], MANIFEST),
    ]));
    assert_eq!(registry(&server).manifest("t").unwrap().bytes, MANIFEST);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let server = Server::start(scripted(vec![
        response("429 Too Many Requests", &[("Retry-After", "1")], b""),
        response("200 OK", &[], MANIFEST),
    ]));
    let start = Instant::now();
    registry(&server).manifest("t").unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn retries_run_out() {
    let body = br#"{"errors":[{"code":"UNAVAILABLE","message":"try\nlater"}]}"#;
    let server = Server::start(|_| Reply::Send(response("503 Service Unavailable", &[], body)));
    let options = ClientOptions {
        retries: 2,
        ..options()
    };
    let e = text(registry_with(&server, &options).manifest("t").unwrap_err());
    assert!(
        e.ends_with(&format!(
            ":t: HTTP 503 Service Unavailable from {} (UNAVAILABLE: try later) \
             (gave up after 2 retries)",
            server.authority()
        )),
        "{e}"
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let server = Server::start(|_| Reply::Send(response("400 Bad Request", &[], b"")));
    let e = text(registry(&server).manifest("t").unwrap_err());
    assert!(e.contains(":t: HTTP 400 Bad Request from"), "{e}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_registry_that_is_not_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reference: Reference = format!("127.0.0.1:{port}/a").parse().unwrap();
    let options = ClientOptions {
        retries: 1,
        ..options()
    };
    let transport = Transport::with_env(&reference, &options, &|_| None).unwrap();
    let registry = Registry::with_transport(&reference, &options, transport);
    let e = text(registry.manifest("t").unwrap_err());
    assert!(
        e.ends_with(&format!(
            "cannot connect to 127.0.0.1:{port}: connection refused (gave up after 1 retry)"
        )),
        "{e}"
    );
}

#[test]
fn a_stalled_blob_times_out() {
    let blob = b"0123456789".to_vec();
    let digest = sha256(&blob);
    let server = Server::start(move |_| {
        let head = response("200 OK", &[("Content-Length", "10")], &blob[..4]);
        Reply::Stall(head, Duration::from_secs(2))
    });
    let options = ClientOptions {
        retries: 0,
        stall_timeout: Duration::from_millis(200),
        ..options()
    };
    let mut reader = registry_with(&server, &options)
        .blob_reader(&digest, 10)
        .unwrap();
    let start = Instant::now();
    let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let e = text(e);
    assert!(
        e.ends_with(&format!(
            "blob {digest}: no data from {} for 0.2 s (stall timeout)",
            server.authority()
        )),
        "{e}"
    );
    // The failure is sticky.
    assert_eq!(
        reader.read(&mut [0; 4]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
}

/// A blob whose first answer is cut after 4 bytes; `second` answers the
/// request that follows.
fn cut_blob_server(blob: &'static [u8], second: fn(&Request, &[u8]) -> Vec<u8>) -> Server {
    let count = AtomicUsize::new(0);
    Server::start(move |request| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            let length = blob.len().to_string();
            Reply::Send(response(
                "200 OK",
                &[("Content-Length", &length)],
                &blob[..4],
            ))
        } else {
            Reply::Send(second(request, blob))
        }
    })
}

#[test]
fn a_cut_blob_resumes_with_a_range_request() {
    const BLOB: &[u8] = b"a layer, in two parts";
    let server = cut_blob_server(BLOB, |request, blob| {
        assert_eq!(request.header("range"), Some("bytes=4-"));
        let range = format!("bytes 4-{}/{}", blob.len() - 1, blob.len());
        response(
            "206 Partial Content",
            &[("Content-Range", &range)],
            &blob[4..],
        )
    });
    let registry = registry(&server);
    let mut reader = registry
        .blob_reader(&sha256(BLOB), BLOB.len() as u64)
        .unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, BLOB);
    assert_eq!(reader.bytes_read(), BLOB.len() as u64);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path(),
        format!("/v2/test/repo/blobs/{}", sha256(BLOB))
    );
    assert_eq!(requests[0].header("range"), None);
}

#[test]
fn a_server_without_ranges_has_the_start_skipped() {
    const BLOB: &[u8] = b"a layer, sent whole again";
    let server = cut_blob_server(BLOB, |_, blob| response("200 OK", &[], blob));
    let bytes = registry(&server)
        .blob(&sha256(BLOB), BLOB.len() as u64)
        .unwrap();
    assert_eq!(bytes, BLOB);
}

#[test]
fn a_wrong_range_is_an_error() {
    const BLOB: &[u8] = b"a layer, resumed at the wrong place";
    let server = cut_blob_server(BLOB, |_, blob| {
        response(
            "206 Partial Content",
            &[("Content-Range", "bytes 0-3/35")],
            &blob[..4],
        )
    });
    let e = registry(&server)
        .blob(&sha256(BLOB), BLOB.len() as u64)
        .unwrap_err();
    assert!(text(e).contains("asked for the bytes from 4"));
}

/// A download that picks up `kept` bytes of `BLOB` an earlier run kept
/// (claimed to be `prefix`), from a server answering with `reply`.
fn resumed(
    prefix: &[u8],
    reply: fn(&Request) -> Vec<u8>,
) -> (Server, std::io::Result<Vec<u8>>, u64) {
    let server = Server::start(move |request| Reply::Send(reply(request)));
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(prefix);
    let resume = Resume {
        offset: prefix.len() as u64,
        prefix: hasher,
    };
    let mut reader = registry(&server)
        .blob_reader_from(&sha256(RESUMED), RESUMED.len() as u64, resume)
        .unwrap();
    let start = reader.start();
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes).map(|_| bytes);
    (server, read, start)
}

const RESUMED: &[u8] = b"a layer an earlier run began";

fn rest_from_12(request: &Request) -> Vec<u8> {
    assert_eq!(request.header("range"), Some("bytes=12-"));
    let range = format!("bytes 12-{}/{}", RESUMED.len() - 1, RESUMED.len());
    response(
        "206 Partial Content",
        &[("Content-Range", &range)],
        &RESUMED[12..],
    )
}

#[test]
fn a_download_resumed_from_kept_bytes_asks_for_the_rest_and_checks_the_whole() {
    let (server, read, start) = resumed(&RESUMED[..12], rest_from_12);
    assert_eq!(read.unwrap(), &RESUMED[12..]);
    assert_eq!(start, 12);
    assert_eq!(server.requests().len(), 1);

    // Kept bytes that are wrong fail the digest at the end.
    let (_, read, _) = resumed(b"a LAYER an e", rest_from_12);
    let e = read.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(text(e).contains("digest mismatch"));
}

#[test]
fn a_server_ignoring_the_first_range_starts_the_download_over() {
    // Kept bytes that are wrong do not matter then: they are not used.
    let (_, read, start) = resumed(b"a LAYER an e", |_| response("200 OK", &[], RESUMED));
    assert_eq!(read.unwrap(), RESUMED);
    assert_eq!(start, 0);
}

#[test]
fn kept_bytes_that_are_the_whole_blob_are_only_checked() {
    let (server, read, start) = resumed(RESUMED, |_| unreachable!("no request"));
    assert_eq!(read.unwrap(), b"");
    assert_eq!(start, RESUMED.len() as u64);
    assert!(server.requests().is_empty());
    let mut wrong = RESUMED.to_vec();
    wrong[0] ^= 1;
    let (_, read, _) = resumed(&wrong, |_| unreachable!("no request"));
    assert_eq!(read.unwrap_err().kind(), ErrorKind::InvalidData);
}

#[test]
fn a_corrupted_blob_never_ends_cleanly() {
    let good = b"the real content".to_vec();
    let digest = sha256(&good);
    let mut bad = good.clone();
    bad[3] ^= 1;
    let actual = sha256(&bad);
    let server = Server::start(move |_| ok(&bad));
    let mut reader = registry(&server).blob_reader(&digest, 16).unwrap();
    let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    let e = text(e);
    assert!(
        e.ends_with(&format!(
            "blob {digest}: digest mismatch: content has {actual}"
        )),
        "{e}"
    );
    assert_eq!(
        reader.read(&mut [0; 4]).unwrap_err().kind(),
        ErrorKind::InvalidData
    );
}

#[test]
fn a_blob_of_the_wrong_size_is_an_error() {
    const BLOB: &[u8] = b"twelve bytes";
    let server = Server::start(|_| ok(BLOB));
    let registry = registry(&server);
    let e = text(registry.blob(&sha256(BLOB), 11).unwrap_err());
    assert!(
        e.contains("the registry sends 12 bytes where 11 are expected"),
        "{e}"
    );

    // Without a Content-Length, the extra bytes are seen while reading.
    let close_delimited = Server::start(|_| {
        Reply::Send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ntwelve bytes".to_vec())
    });
    let mut reader = registry_with(&close_delimited, &options())
        .blob_reader(&sha256(b"twelve"), 6)
        .unwrap();
    let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(text(e).contains("more than the expected 6 bytes"));
}

#[test]
fn an_empty_blob_is_verified_too() {
    let server = Server::start(|_| ok(b""));
    let registry = registry(&server);
    assert!(registry.blob(&sha256(b""), 0).unwrap().is_empty());
    let e = registry.blob(&sha256(b"x"), 0).unwrap_err();
    assert!(text(e).contains("digest mismatch"));
}

#[test]
fn redirects_leave_the_authorization_behind() {
    const BLOB: &[u8] = b"served by a CDN";
    let cdn = Server::start_on("127.0.0.2", |_| ok(BLOB));
    let location = format!("http://{}/signed/blob?sig=1", cdn.authority());
    let server = Server::start(move |request| match request.header("authorization") {
        None => Reply::Send(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="test""#)],
            b"",
        )),
        Some(_) => Reply::Send(response(
            "307 Temporary Redirect",
            &[("Location", &location)],
            b"",
        )),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = authfile(
        &dir,
        &server.authority(),
        serde_json::json!({"auth": "YWxpY2U6aHVudGVyMg=="}),
    );
    let options = ClientOptions {
        authfile: Some(file),
        ..options()
    };
    let bytes = registry_with(&server, &options)
        .blob(&sha256(BLOB), BLOB.len() as u64)
        .unwrap();
    assert_eq!(bytes, BLOB);
    let sent = server.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].header("authorization"),
        Some("Basic YWxpY2U6aHVudGVyMg==")
    );
    let at_cdn = cdn.requests();
    assert_eq!(at_cdn.len(), 1);
    assert_eq!(at_cdn[0].target, "/signed/blob?sig=1");
    assert_eq!(at_cdn[0].header("authorization"), None);
}

/// A registry that accepts `Bearer <accepted token>` and otherwise
/// challenges with its own `/token` endpoint, which `token` answers.
fn token_registry(
    accepted: &'static [&'static str],
    token: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
) -> Server {
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let challenge_realm = realm.clone();
    let server = Server::start(move |request| {
        if request.path() == "/token" {
            return Reply::Send(token(request));
        }
        let authorized = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| accepted.contains(&t));
        if authorized {
            return ok(MANIFEST);
        }
        let challenge = format!(
            r#"Bearer realm="{}",service="test-registry",scope="repository:test/repo:pull""#,
            challenge_realm.get().unwrap()
        );
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        Reply::Send(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", &challenge)],
            body,
        ))
    });
    realm
        .set(format!("http://{}/token", server.authority()))
        .unwrap();
    server
}

fn token_requests(server: &Server) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/token")
        .collect()
}

#[test]
fn one_bearer_token_serves_every_clone() {
    let server = token_registry(&["tok"], |_| {
        response("200 OK", &[], br#"{"token":"tok","expires_in":300}"#)
    });
    let registry = registry(&server);
    registry.manifest("a").unwrap();
    let clone = registry.clone();
    std::thread::spawn(move || clone.manifest("b").unwrap())
        .join()
        .unwrap();
    registry.manifest("c").unwrap();
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 1);
    let query = &tokens[0].target;
    assert!(query.contains("service=test-registry"), "{query}");
    assert!(
        query.contains("scope=repository%3Atest%2Frepo%3Apull"),
        "{query}"
    );
    assert_eq!(tokens[0].header("authorization"), None, "anonymous");
    // One 401, then the token on every request.
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn a_rejected_token_is_replaced_once() {
    let count = AtomicUsize::new(0);
    let server = token_registry(&["second"], move |_| {
        let token = match count.fetch_add(1, Ordering::SeqCst) {
            0 => "first",
            _ => "second",
        };
        response(
            "200 OK",
            &[],
            format!(r#"{{"access_token":"{token}"}}"#).as_bytes(),
        )
    });
    // The first token is refused, a second one fetched; that one works.
    let registry = registry(&server);
    let e = text(registry.manifest("a").unwrap_err());
    assert!(e.starts_with("authentication required for"), "{e}");
    registry.manifest("a").unwrap();
    assert_eq!(token_requests(&server).len(), 2);
}

#[test]
fn without_credentials_the_refusal_says_where_they_were_looked_for() {
    let server = token_registry(&[], |_| {
        response("200 OK", &[], br#"{"token":"anon-token"}"#)
    });
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let options = ClientOptions {
        authfile: Some(missing.clone()),
        ..options()
    };
    let e = text(registry_with(&server, &options).manifest("a").unwrap_err());
    assert_eq!(
        e,
        format!(
            "authentication required for {}/test/repo (credentials looked for in: {})",
            server.authority(),
            missing.display()
        )
    );
}

#[test]
fn refused_credentials_name_the_user_and_their_source() {
    let server = token_registry(&[], |request| {
        assert_eq!(
            request.header("authorization"),
            Some("Basic YWxpY2U6aHVudGVyMg==")
        );
        assert!(request.target.contains("account=alice"));
        response("401 Unauthorized", &[], b"")
    });
    let dir = tempfile::tempdir().unwrap();
    let file = authfile(
        &dir,
        &server.authority(),
        serde_json::json!({"auth": "YWxpY2U6aHVudGVyMg=="}),
    );
    let options = ClientOptions {
        authfile: Some(file.clone()),
        ..options()
    };
    let e = text(registry_with(&server, &options).manifest("a").unwrap_err());
    assert_eq!(
        e,
        format!(
            "access denied to {}/test/repo for user alice (credentials from {})",
            server.authority(),
            file.display()
        )
    );
    assert!(!e.contains("hunter2") && !e.contains("YWxp"));
}

#[test]
fn identity_tokens_are_exchanged_by_post() {
    let server = token_registry(&["access"], |request| {
        assert_eq!(request.method, "POST");
        let form = String::from_utf8(request.body.clone()).unwrap();
        for field in [
            "grant_type=refresh_token",
            "refresh_token=refresh-me",
            "client_id=ocirender",
            "service=test-registry",
            "scope=repository%3Atest%2Frepo%3Apull",
        ] {
            assert!(form.contains(field), "{form}");
        }
        response(
            "200 OK",
            &[],
            br#"{"access_token":"access","expires_in":60}"#,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let file = authfile(
        &dir,
        &server.authority(),
        serde_json::json!({"identitytoken": "refresh-me"}),
    );
    let options = ClientOptions {
        authfile: Some(file),
        ..options()
    };
    registry_with(&server, &options).manifest("a").unwrap();
    assert_eq!(token_requests(&server).len(), 1);
}

#[test]
fn a_token_service_without_a_token_is_an_error_without_its_body() {
    let server = token_registry(&[], |_| response("200 OK", &[], b"secret-ish garbage"));
    let e = text(registry(&server).manifest("a").unwrap_err());
    assert!(e.contains("not JSON") && !e.contains("garbage"), "{e}");
}

// ---------------------------------------------------------------------------
// A hostile registry: credentials stay home, time and memory stay bounded.

/// A registry on 127.0.0.1 redirecting every blob GET to `location(n)`
/// (n counts the redirects) unless it carries no `Authorization`, in which
/// case it challenges for Basic credentials.
fn redirecting_registry(location: impl Fn(usize) -> String + Send + Sync + 'static) -> Server {
    let count = AtomicUsize::new(0);
    Server::start(move |request| match request.header("authorization") {
        None => Reply::Send(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="test""#)],
            b"",
        )),
        Some(_) => {
            let n = count.fetch_add(1, Ordering::SeqCst);
            Reply::Send(response(
                "307 Temporary Redirect",
                &[("Location", &location(n))],
                b"",
            ))
        }
    })
}

/// `at_once`, then `trickled` a byte every `millis` milliseconds.
fn trickle(at_once: Vec<u8>, trickled: Vec<u8>, millis: u64) -> Reply {
    Reply::Trickle {
        at_once,
        trickled,
        interval: Duration::from_millis(millis),
    }
}

fn with_alice(server: &Server, dir: &tempfile::TempDir) -> ClientOptions {
    let file = authfile(
        dir,
        &server.authority(),
        serde_json::json!({"auth": "YWxpY2U6aHVudGVyMg=="}),
    );
    ClientOptions {
        authfile: Some(file),
        ..options()
    }
}

/// ureq keeps `Authorization` on a redirect to the same host name on
/// another port; the client does not: another port is another server.
#[test]
fn a_redirect_to_another_port_of_the_same_host_loses_the_authorization() {
    const BLOB: &[u8] = b"served on another port";
    let other = Server::start(|_| ok(BLOB));
    let location = format!("http://{}/blob", other.authority());
    let server = redirecting_registry(move |_| location.clone());
    let dir = tempfile::tempdir().unwrap();
    let bytes = registry_with(&server, &with_alice(&server, &dir))
        .blob(&sha256(BLOB), BLOB.len() as u64)
        .unwrap();
    assert_eq!(bytes, BLOB);
    let at_other = other.requests();
    assert_eq!(at_other.len(), 1);
    assert_eq!(at_other[0].header("authorization"), None);
}

/// To the same scheme, host and port it is kept; a redirect loop ends
/// after 5 hops with a one-line error.
#[test]
fn a_redirect_to_the_same_origin_keeps_it_and_loops_end() {
    let server = Arc::new(std::sync::OnceLock::<String>::new());
    let authority = server.clone();
    let registry =
        redirecting_registry(move |n| format!("http://{}/hop/{n}", authority.get().unwrap()));
    server.set(registry.authority()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = ClientOptions {
        retries: 0,
        ..with_alice(&registry, &dir)
    };
    let e = text(
        registry_with(&registry, &options)
            .blob(&sha256(b"x"), 1)
            .unwrap_err(),
    );
    assert!(
        e.ends_with(&format!(
            "more than 5 redirects from {}",
            registry.authority()
        )),
        "{e}"
    );
    let hops: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.path().starts_with("/hop/"))
        .collect();
    assert_eq!(hops.len(), 5);
    assert!(hops
        .iter()
        .all(|r| r.header("authorization") == Some("Basic YWxpY2U6aHVudGVyMg==")));
}

/// A realm in plain HTTP off loopback (0.0.0.0 reaches this machine but
/// is no loopback address) gets an anonymous request; the refusal then
/// says the credentials were withheld, and shows no secret.
#[test]
fn credentials_are_withheld_from_a_plain_http_realm_off_loopback() {
    let tokens = Server::start(|_| ok(br#"{"token":"anonymous"}"#));
    let port = tokens.authority().rsplit_once(':').unwrap().1.to_owned();
    let realm = format!("http://0.0.0.0:{port}/token");
    let server = Server::start(move |_| {
        let challenge = format!(r#"Bearer realm="{realm}",service="s""#);
        Reply::Send(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", &challenge)],
            b"",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let options = with_alice(&server, &dir);
    let e = text(registry_with(&server, &options).manifest("t").unwrap_err());
    assert!(
        e.starts_with(&format!(
            "access denied to {}/test/repo: user alice's credentials (from {}) were withheld \
             from the plain-HTTP token service at http://0.0.0.0:{port} (",
            server.authority(),
            options.authfile.unwrap().display()
        )),
        "{e}"
    );
    assert!(!e.contains("hunter2") && !e.contains("YWxp"), "{e}");
    let asked = tokens.requests();
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|r| r.header("authorization").is_none()));
    assert!(asked.iter().all(|r| !r.target.contains("account=")));
}

/// A manifest sent a byte at a time, or a `Retry-After` of an hour, ends
/// at the deadline, not weeks (or an hour) later.
#[test]
fn a_manifest_has_a_deadline() {
    let trickle = Server::start(|_| trickle(Vec::new(), response("200 OK", &[], MANIFEST), 100));
    let patient = Server::start(|_| {
        Reply::Send(response(
            "429 Too Many Requests",
            &[("Retry-After", "3600")],
            b"",
        ))
    });
    let options = ClientOptions {
        deadline: Duration::from_millis(700),
        stall_timeout: Duration::from_secs(5),
        ..options()
    };
    for server in [&trickle, &patient] {
        let start = Instant::now();
        let e = text(registry_with(server, &options).manifest("t").unwrap_err());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(
            e.ends_with(&format!(
                "{}/test/repo:t: manifest not received whole within the 0.7 s deadline \
                 (--deadline)",
                server.authority()
            )),
            "{e}"
        );
    }
    assert_eq!(patient.requests().len(), 1, "no hour-long wait, no retry");
}

/// A config trickled, or a token answer trickled after its head: the
/// same deadline, as a `TimedOut` error for the config.
#[test]
fn a_config_and_a_token_have_a_deadline() {
    let options = ClientOptions {
        deadline: Duration::from_millis(500),
        ..options()
    };
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let digest = sha256(&config);
    let size = config.len() as u64;
    let server = Server::start(move |_| trickle(Vec::new(), response("200 OK", &[], &config), 50));
    let start = Instant::now();
    let e = text(
        registry_with(&server, &options)
            .blob(&digest, size)
            .unwrap_err(),
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        e.ends_with(&format!(
            "blob {digest}: config not received whole within the 0.5 s deadline (--deadline)"
        )),
        "{e}"
    );
    let slow = Server::start(|_| {
        let body = br#"{"token":"tok"}"#;
        let answer = response("200 OK", &[], body);
        let head = answer.len() - body.len();
        trickle(answer[..head].to_vec(), body.to_vec(), 50)
    });
    let realm = format!("http://{}/token", slow.authority());
    let registry_server = Server::start(move |request| {
        if request.header("authorization").is_some() {
            return ok(MANIFEST);
        }
        let challenge = format!(r#"Bearer realm="{realm}""#);
        Reply::Send(response(
            "401 Unauthorized",
            &[("WWW-Authenticate", &challenge)],
            b"",
        ))
    });
    let start = Instant::now();
    let e = text(
        registry_with(&registry_server, &options)
            .manifest("t")
            .unwrap_err(),
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        e.ends_with(&format!(
            "token from {}: token not received whole within the 0.5 s deadline (--deadline)",
            slow.authority()
        )),
        "{e}"
    );
}

/// A layer has no deadline, but the text of its error answer is read for
/// 5 s at most.
#[test]
fn an_error_body_is_read_for_a_few_seconds_at_most() {
    let body = format!(
        r#"{{"errors":[{{"code":"BLOB_UNKNOWN","message":"{}"}}]}}"#,
        "x".repeat(100)
    );
    let server = Server::start(move |_| {
        let head = response(
            "404 Not Found",
            &[("Content-Length", &body.len().to_string())],
            b"",
        );
        trickle(head, body.as_bytes().to_vec(), 100)
    });
    let start = Instant::now();
    let e = match registry(&server).blob_reader(&sha256(b"x"), 1) {
        Ok(_) => panic!("a 404 opened a blob"),
        Err(e) => text(e),
    };
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "{took:?}"
    );
    assert!(e.ends_with(": not found"), "{e}");
}

/// A config that says it is over 4 MiB is refused before any request.
#[test]
fn a_config_over_the_limit_is_refused_unasked() {
    let server = Server::start(|_| ok(b"{}"));
    let digest = sha256(b"{}");
    let e = text(
        registry(&server)
            .blob(&digest, MAX_DOCUMENT + 1)
            .unwrap_err(),
    );
    assert!(
        e.ends_with(&format!(
            "/test/repo@{digest}: the config is 4194305 bytes, over the 4 MiB limit for \
             indexes, manifests and configs"
        )),
        "{e}"
    );
    assert!(server.requests().is_empty());
}

/// A token service's answer over 1 MiB is refused as such; a lifetime of
/// 2^64-1 seconds is a day, not an overflow.
#[test]
fn token_answers_are_bounded() {
    let huge = format!(r#"{{"token":"{}"}}"#, "t".repeat(1 << 20));
    let server = token_registry(&[], move |_| response("200 OK", &[], huge.as_bytes()));
    let e = text(registry(&server).manifest("a").unwrap_err());
    assert!(
        e.ends_with("the token service's answer is over the 1 MiB limit"),
        "{e}"
    );
    let server = token_registry(&["forever"], |_| {
        response(
            "200 OK",
            &[],
            br#"{"token":"forever","expires_in":18446744073709551615}"#,
        )
    });
    let registry = registry(&server);
    registry.manifest("a").unwrap();
    registry.manifest("b").unwrap();
    assert_eq!(token_requests(&server).len(), 1);
}

/// Within the deadline, a stalled attempt at a small document is still
/// given up after the stall timeout and tried again.
#[test]
fn a_stalled_manifest_is_retried_within_its_deadline() {
    let count = AtomicUsize::new(0);
    let server = Server::start(move |_| match count.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::Stall(Vec::new(), Duration::from_secs(10)),
        _ => ok(MANIFEST),
    });
    let options = ClientOptions {
        stall_timeout: Duration::from_millis(300),
        deadline: Duration::from_secs(5),
        ..options()
    };
    let start = Instant::now();
    let fetched = registry_with(&server, &options).manifest("t").unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

/// A server that keeps its first connection open after answering its
/// first request with `first`, and answers nothing more on it; every
/// other connection gets `rest`, one request each.
fn silent_after_first(first: Vec<u8>, rest: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            let (first, rest) = (first.clone(), rest.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                let mut line = String::new();
                // Through the blank line ending the request head.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(if n == 0 { &first } else { &rest });
                // Kept alive, and silent from now on.
                std::thread::sleep(Duration::from_secs(10));
            });
        }
    });
    authority
}

/// ureq clears a pooled connection's read timeout and sets it again only
/// once a response head has arrived: a request on a reused connection that
/// the registry leaves silent would wait forever (a layer has no deadline).
/// No connection is reused, so every request has the stall timeout from
/// its first byte.
#[test]
fn a_silent_kept_alive_connection_is_not_reused() {
    const BLOB: &[u8] = b"a layer";
    let keep_alive = |body: &[u8]| {
        let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        answer.push_str(std::str::from_utf8(body).unwrap());
        answer.into_bytes()
    };
    let authority = silent_after_first(keep_alive(MANIFEST), keep_alive(BLOB));
    let reference: Reference = format!("{authority}/test/repo").parse().unwrap();
    let options = ClientOptions {
        plain_http: true,
        stall_timeout: Duration::from_millis(300),
        retries: 0,
        ..options()
    };
    let transport = Transport::with_env(&reference, &options, &|_| None).unwrap();
    let registry = Registry::with_transport(&reference, &options, transport);
    assert_eq!(registry.manifest("t").unwrap().bytes, MANIFEST);
    let start = Instant::now();
    let mut blob = Vec::new();
    registry
        .blob_reader(&sha256(BLOB), BLOB.len() as u64)
        .and_then(|mut reader| Ok(reader.read_to_end(&mut blob)?))
        .unwrap();
    assert_eq!(blob, BLOB);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
