//! Real registries for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry 2.8) started on 127.0.0.1 with storage in a
//! temporary directory, anonymous, with htpasswd basic auth, or with token
//! auth behind a token issuer that runs in the test process, in plain HTTP
//! or in HTTPS with a self-signed certificate; images pushed with
//! `skopeo`; and `registry-proxy` (crates/bench-tools) in front of a
//! plain-HTTP one to inject faults. Everything a test starts here is stopped when its
//! value is dropped, also when the test panics, and dies with the test
//! process if that is killed (`PR_SET_PDEATHSIG`).

use super::{bin, fixtures};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a registry authenticates its clients.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// htpasswd basic auth with one account, needed for everything.
    Basic {
        /// The account's name.
        user: String,
        /// Its password.
        password: String,
    },
    /// Bearer tokens from a [`TokenIssuer`] with this policy.
    Token(TokenPolicy),
}

impl Auth {
    /// Basic auth for `user:password`.
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Token auth with [`TokenPolicy::new`].
    pub fn token(user: &str, password: &str) -> Auth {
        Auth::Token(TokenPolicy::new(user, password))
    }
}

/// Who gets which access from the token issuer, as a public registry
/// (Docker Hub, ghcr.io) decides it.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// Repositories anyone may pull without credentials: names starting
    /// with one of these.
    pub public_prefixes: Vec<String>,
    /// The one account; it may pull and push every repository.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Wrong credentials get a 401 from the issuer (as Docker Hub answers)
    /// instead of an anonymous token (as a lenient issuer gives).
    pub reject_wrong_credentials: bool,
}

impl TokenPolicy {
    /// `user:password` may do everything; repositories under `public/` may
    /// be pulled by anyone; wrong credentials are treated as none.
    pub fn new(user: &str, password: &str) -> TokenPolicy {
        TokenPolicy {
            public_prefixes: vec!["public/".to_owned()],
            user: user.to_owned(),
            password: password.to_owned(),
            reject_wrong_credentials: false,
        }
    }

    /// The actions of `scope` (`repository:NAME:pull,push`) granted to a
    /// client that proved to be the account (`authenticated`) or not.
    fn grant(&self, scope: &str, authenticated: bool) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let public = kind == "repository"
            && self
                .public_prefixes
                .iter()
                .any(|prefix| name.starts_with(prefix.as_str()));
        let granted: Vec<String> = actions
            .split(',')
            .filter(|action| authenticated || (public && *action == "pull"))
            .map(str::to_owned)
            .collect();
        (!granted.is_empty()).then(|| Access {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: granted,
        })
    }
}

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Access {
    /// `repository` (or `registry` for the catalog).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name.
    pub name: String,
    /// `pull`, `push`, ...
    pub actions: Vec<String>,
}

/// The text of a credentials file (docker `config.json` or containers
/// `auth.json`: both read `auths`) holding `user:password` for each host.
pub fn auths_json(auths: &[(&str, &str, &str)]) -> String {
    let auths: serde_json::Map<String, serde_json::Value> = auths
        .iter()
        .map(|(host, user, password)| {
            let auth = BASE64.encode(format!("{user}:{password}"));
            (host.to_string(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}

/// A registry process with its storage, stopped on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
    issuer: Option<TokenIssuer>,
    /// The certificate it serves HTTPS with, if it does.
    certificate: Option<PathBuf>,
}

impl Registry {
    /// Starts a plain-HTTP registry on a free port of 127.0.0.1 and waits
    /// until it answers `GET /v2/`.
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(auth, false, "")
    }

    /// An anonymous registry holding the sample image as `sample:1` and
    /// the sample plus a big noise layer as `big:1`.
    pub fn with_sample_and_big() -> Registry {
        let registry = Registry::start(Auth::None);
        let push = |layout: &Path, tag: &str, name: &str| {
            registry.push(&format!("oci:{}:{tag}", layout.display()), name);
        };
        push(&fixtures::sample_layout(), "sample", "sample:1");
        push(&fixtures::big_layout(), "big", "big:1");
        registry
    }

    /// As [`Registry::start`], serving HTTPS only, with a self-signed
    /// certificate for IP 127.0.0.1 and DNS localhost that nothing trusts
    /// unless told to: [`Registry::ca_file`] is that certificate, for
    /// `SSL_CERT_FILE`.
    pub fn start_tls(auth: Auth) -> Registry {
        Registry::start_with(auth, true, "")
    }

    /// As [`Registry::start`], as a pull-through cache of the plain-HTTP
    /// registry at `upstream` (`HOST:PORT`): distribution's `proxy:
    /// remoteurl`, what sites run as a mirror. It serves what it holds,
    /// fetching the rest from upstream: a manifest is kept as it is
    /// served, a blob in the background after ([`Registry::holds_blob`]).
    /// It takes no pushes.
    pub fn start_pull_through(upstream: &str, auth: Auth) -> Registry {
        let proxy = format!("proxy:\n  remoteurl: http://{upstream}\n");
        Registry::start_with(auth, false, &proxy)
    }

    /// `extra` is appended to the configuration (top-level sections).
    fn start_with(auth: Auth, tls: bool, extra: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let (tls_config, certificate) = if tls {
            let (certificate, key) = server_certificate(dir.path());
            let config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            );
            (config, Some(certificate))
        } else {
            (String::new(), None)
        };
        let (auth_config, credentials, issuer) = match auth {
            Auth::None => (String::new(), None, None),
            Auth::Basic { user, password } => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", &user, &password])
                    .output()
                    .expect("cannot run htpasswd (scripts/install-deps installs apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                std::fs::write(&htpasswd, out.stdout).unwrap();
                let config = format!(
                    "auth:\n  htpasswd:\n    realm: ocirender-test\n    path: {}\n",
                    htpasswd.display()
                );
                (config, Some((user, password)), None)
            }
            Auth::Token(policy) => {
                let credentials = Some((policy.user.clone(), policy.password.clone()));
                let issuer = TokenIssuer::start(dir.path(), policy);
                let config = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    issuer.realm(),
                    TokenIssuer::SERVICE,
                    TokenIssuer::ISSUER,
                    issuer.certificate.display(),
                );
                (config, credentials, Some(issuer))
            }
        };

        let config_path = dir.path().join("config.yml");
        let log_path = dir.path().join("registry.log");
        // Another process may take the port between our probe and the
        // registry's bind: then try another one.
        for _attempt in 0..10 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: ocirender-test-secret\n\
                 {tls_config}{auth_config}{extra}",
                storage.display()
            );
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut command = Command::new("docker-registry");
            command
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            let mut child = spawn_tied(&mut command)
                .expect("cannot run docker-registry (scripts/install-deps installs it)");
            let deadline = Instant::now() + Duration::from_secs(20);
            let outcome = loop {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                // It logs this right after its bind succeeded: from then on
                // the port is surely its own, not another test's server.
                if log.contains(&format!("listening on {addr}")) {
                    break Startup::Listening;
                }
                if log.contains("address already in use") {
                    break Startup::PortTaken;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break Startup::Failed(format!(
                        "docker-registry exited ({status}) while starting"
                    ));
                }
                if Instant::now() > deadline {
                    break Startup::Failed("docker-registry did not listen within 20 s".to_owned());
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if let Startup::Listening = outcome {
                let registry = Registry {
                    child,
                    port,
                    dir,
                    credentials,
                    issuer,
                    certificate,
                };
                registry.wait_ready(deadline);
                return registry;
            }
            let _ = child.kill();
            let _ = child.wait();
            if let Startup::Failed(message) = outcome {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "{message}\n--- end of the registry log ---\n{}",
                    tail(&log, 40)
                );
            }
        }
        panic!("docker-registry lost its port to another process 10 times");
    }

    /// Polls `GET /v2/` until it answers 200 (anonymous) or 401 (auth);
    /// in plain HTTP (the tests' ureq has no TLS), so an HTTPS registry
    /// shows that it serves by its 400 to a plain-HTTP request.
    fn wait_ready(&self, deadline: Instant) {
        let url = format!("http://{}/v2/", self.host());
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let tls = self.certificate.is_some();
        loop {
            let answer = agent.get(&url).call();
            let ready = match &answer {
                Ok(_) | Err(ureq::Error::Status(401, _)) => !tls,
                Err(ureq::Error::Status(400, _)) => tls,
                Err(_) => false,
            };
            if ready {
                return;
            }
            if Instant::now() > deadline {
                let answer = answer.map_or_else(|e| e.to_string(), |r| r.status().to_string());
                self.fail(&format!(
                    "GET {url} did not answer as expected within 20 s: {answer}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The certificate an HTTPS registry serves (self-signed: it is its
    /// own CA), for `SSL_CERT_FILE`; `None` for a plain-HTTP registry.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.certificate.clone()
    }

    /// `user:password` for a registry that needs credentials.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The token issuer of an [`Auth::Token`] registry.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The directory the registry stores its blobs and repositories in.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Whether the blob `digest` (`sha256:...`) is in the registry's own
    /// storage.
    pub fn holds_blob(&self, digest: &str) -> bool {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
            .exists()
    }

    /// Everything the registry logged (errors and one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes an image to `NAME:TAG` here with `skopeo copy --all
    /// --preserve-digests` (so the registry holds the layout's very bytes:
    /// manifests, configs and layers keep their digests), with the
    /// registry's credentials if it has some. `src` is a skopeo source,
    /// for example `oci:/path/layout:tag`.
    pub fn push(&self, src: &str, name: &str) {
        let mut command = Command::new("skopeo");
        command.args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ]);
        match self.credentials() {
            Some((user, password)) => command.arg(format!("--dest-creds={user}:{password}")),
            None => command.arg("--dest-no-creds"),
        };
        command
            .arg(src)
            .arg(format!("docker://{}/{name}", self.host()));
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run skopeo: {e}"));
        if !out.status.success() {
            self.fail(&format!(
                "pushing {src} to {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }

    /// Pushes the one image of the OCI layout at `layout` to `NAME:TAG`
    /// through the distribution API itself (monolithic blob uploads, then
    /// the manifest), byte for byte: for images skopeo refuses to copy,
    /// such as one whose config is over containers/image's 4 MiB limit.
    /// Anonymous registries only.
    pub fn push_raw(&self, layout: &Path, name: &str, tag: &str) {
        assert!(self.credentials.is_none(), "push_raw needs no auth");
        let read_json = |path: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
        };
        let blob_path = |digest: &str| layout.join("blobs").join(digest.replacen(':', "/", 1));
        let index = read_json(layout.join("index.json"));
        let top = &index["manifests"][0];
        let top_digest = top["digest"].as_str().unwrap();
        let manifest_bytes = std::fs::read(blob_path(top_digest)).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let base = format!("http://{}/v2/{name}", self.host());
        let blobs =
            std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
        for descriptor in blobs {
            let digest = descriptor["digest"].as_str().unwrap();
            let started = ureq::post(&format!("{base}/blobs/uploads/"))
                .call()
                .unwrap_or_else(|e| self.fail(&format!("starting an upload: {e}")));
            let location = started.header("location").expect("an upload location");
            let url = url_join(&format!("http://{}", self.host()), location);
            let separator = if url.contains('?') { '&' } else { '?' };
            ureq::put(&format!("{url}{separator}digest={digest}"))
                .set("Content-Type", "application/octet-stream")
                .send_bytes(&std::fs::read(blob_path(digest)).unwrap())
                .unwrap_or_else(|e| self.fail(&format!("uploading {digest}: {e}")));
        }
        ureq::put(&format!("{base}/manifests/{tag}"))
            .set("Content-Type", top["mediaType"].as_str().unwrap())
            .send_bytes(&manifest_bytes)
            .unwrap_or_else(|e| self.fail(&format!("putting the manifest {name}:{tag}: {e}")));
    }

    /// Panics with `message` and the end of the registry's log.
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- end of the registry log ---\n{}",
            tail(&self.log(), 40)
        );
    }
}

/// Makes a self-signed server certificate for IP 127.0.0.1 and DNS
/// localhost, and its key, in `dir` with the `openssl` command. It is a
/// server's certificate (`CA:FALSE`, `serverAuth`): rustls takes such a
/// certificate, self-signed, as its own trust anchor, but refuses a CA's
/// certificate used as a server's, which is what `openssl req -x509` makes
/// by default. Its subject is unique, so it cannot be mistaken for a
/// certificate of the machine's trust store.
fn server_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("tls.cnf");
    let certificate = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
         [dn]\nCN = ocirender test registry\n\
         [ext]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    super::fixtures::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "2", "-config"])
            .arg(&config)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate),
    );
    (certificate, key)
}

/// `location` (absolute, or a path as the registry sends it) against `base`.
fn url_join(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// How a registry's start went.
enum Startup {
    Listening,
    /// Another process bound the port first.
    PortTaken,
    Failed(String),
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- end of the log of the registry at {} ---\n{}",
                self.host(),
                tail(&self.log(), 40)
            );
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port()
}

/// Spawns a server that the kernel kills when the test dies, so a test
/// killed by a timeout (no unwinding, no `Drop`) leaves nothing running.
/// The signal follows the spawning *thread*: spawn from the test's thread.
fn spawn_tied(command: &mut Command) -> std::io::Result<Child> {
    // SAFETY: the closure runs between fork and exec and only makes one
    // system call (prctl), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            Ok(())
        });
    }
    command.spawn()
}

// ---------------------------------------------------------------------------
// Token issuer.

/// What one request to the token issuer asked and got.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The user name of the basic credentials it carried, if any.
    pub user: Option<String>,
    /// Whether those credentials were right.
    pub authenticated: bool,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Every `scope` parameter, as sent.
    pub scopes: Vec<String>,
    /// What the token it got allows (empty for a refused request).
    pub granted: Vec<Access>,
    /// The HTTP status of the answer (200, or 401 for rejected credentials).
    pub status: u16,
}

/// The claims distribution's `auth: token` checks.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [Access],
}

/// A token server in the test process speaking the distribution token
/// protocol (`GET realm?service=S&scope=repository:NAME:pull,push`, with
/// or without basic credentials) as Docker Hub's does, so clients are
/// tested against the same challenge-and-token dance as in real life.
///
/// Tokens are ES256 JWTs signed with a key made for this issuer, whose
/// self-signed certificate is the registry's `rootcertbundle`; the token
/// header carries that certificate in `x5c`, which is how distribution 2.8
/// finds the signing key (it verifies the chain against the bundle).
pub struct TokenIssuer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
    certificate: PathBuf,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenIssuer {
    /// The registry's `service` name (the tokens' audience).
    pub const SERVICE: &'static str = "ocirender-test-registry";
    /// The tokens' issuer name.
    pub const ISSUER: &'static str = "ocirender-test-issuer";
    /// How long a token lives, in seconds.
    pub const EXPIRES_IN: u64 = 300;

    /// Makes a key and certificate in `dir` and starts serving tokens.
    fn start(dir: &Path, policy: TokenPolicy) -> TokenIssuer {
        let key = dir.join("issuer-key.pem");
        let certificate = dir.join("issuer-cert.pem");
        super::fixtures::run(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec"])
                .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
                .args(["-nodes", "-days", "2", "-subj", "/CN=ocirender-test-issuer"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&certificate),
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&certificate)
            .output()
            .expect("cannot run openssl");
        assert!(der.status.success(), "openssl x509 failed");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5c = Some(vec![BASE64.encode(&der.stdout)]);
        let signing_key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&key).unwrap())
            .expect("openssl's EC key as PKCS#8");

        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("token server"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                let mut serial = 0u64;
                for request in server.incoming_requests() {
                    serial += 1;
                    let (response, record) =
                        answer(&request, &policy, &header, &signing_key, serial);
                    if let Some(record) = record {
                        requests.lock().unwrap().push(record);
                    }
                    let _ = request.respond(response);
                }
            })
        };
        TokenIssuer {
            server,
            thread: Some(thread),
            port,
            certificate,
            requests,
        }
    }

    /// The URL of the token endpoint (the registry's `realm`).
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// How many token requests it answered so far.
    pub fn token_requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Every token request it answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Answer = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn json_response(status: u16, body: &serde_json::Value) -> Answer {
    tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            "Content-Type: application/json"
                .parse::<tiny_http::Header>()
                .unwrap(),
        )
}

/// The issuer's answer to one request, and what to record of it.
fn answer(
    request: &tiny_http::Request,
    policy: &TokenPolicy,
    header: &jsonwebtoken::Header,
    key: &jsonwebtoken::EncodingKey,
    serial: u64,
) -> (Answer, Option<TokenRequest>) {
    let url = request.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if *request.method() != tiny_http::Method::Get || path != "/token" {
        let body = serde_json::json!({"details": "not found"});
        return (json_response(404, &body), None);
    }
    let mut service = None;
    let mut scopes = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "service" => service = Some(value.into_owned()),
            "scope" => scopes.extend(value.split(' ').map(str::to_owned)),
            _ => {}
        }
    }
    let basic = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Basic "))
        .and_then(|b64| BASE64.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    let authenticated = basic
        .as_ref()
        .is_some_and(|(user, password)| *user == policy.user && *password == policy.password);
    let mut record = TokenRequest {
        user: basic.as_ref().map(|(user, _)| user.clone()),
        authenticated,
        service: service.clone(),
        scopes: scopes.clone(),
        granted: Vec::new(),
        status: 200,
    };
    if basic.is_some() && !authenticated && policy.reject_wrong_credentials {
        record.status = 401;
        let body = serde_json::json!({"details": "incorrect username or password"});
        return (json_response(401, &body), Some(record));
    }
    record.granted = scopes
        .iter()
        .filter_map(|scope| policy.grant(scope, authenticated))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let subject = if authenticated {
        policy.user.as_str()
    } else {
        ""
    };
    let claims = Claims {
        iss: TokenIssuer::ISSUER,
        sub: subject,
        aud: service.as_deref().unwrap_or(TokenIssuer::SERVICE),
        exp: now + TokenIssuer::EXPIRES_IN,
        // A little slack: the registry and the issuer share a clock, but
        // `nbf` in the future would make a fresh token fail.
        nbf: now.saturating_sub(10),
        iat: now,
        jti: format!("ocirender-test-{serial}"),
        access: &record.granted,
    };
    let token = jsonwebtoken::encode(header, &claims, key).expect("signing a token");
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TokenIssuer::EXPIRES_IN,
    });
    (json_response(200, &body), Some(record))
}

// ---------------------------------------------------------------------------
// Fault-injecting proxy.

/// `registry-proxy` (crates/bench-tools) in front of a registry, stopped on
/// drop. See `registry-proxy --help` for the fault flags.
pub struct Proxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts the proxy in front of `upstream` (`HOST:PORT`) with extra
    /// flags (`["--cut-after", "100"]`) and waits until it listens.
    pub fn start(upstream: &str, flags: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut command = Command::new(bin("registry-proxy"));
        command
            .args(["--upstream", upstream, "--port-file"])
            .arg(&port_file)
            .arg("--log")
            .arg(dir.path().join("log.jsonl"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = spawn_tied(&mut command).expect("cannot run registry-proxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port number");
            }
            let failed = match child.try_wait() {
                Ok(Some(status)) => Some(format!("registry-proxy exited ({status})")),
                _ if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some("registry-proxy did not listen within 10 s".to_owned())
                }
                _ => None,
            };
            if let Some(failed) = failed {
                let mut stderr = String::new();
                let _ = std::fs::File::open(dir.path().join("stderr"))
                    .and_then(|mut f| f.read_to_string(&mut stderr));
                panic!("{failed}: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Proxy { child, port, dir }
    }

    /// `127.0.0.1:PORT`, to use in place of the registry's host.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests it served so far, one JSON object each (`listener`,
    /// `method`, `path`, `range`, `authorization`, `status`, `fault`).
    pub fn log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }

    /// The log lines of blob GETs (what faults apply to).
    pub fn blob_gets(&self) -> Vec<serde_json::Value> {
        self.log()
            .into_iter()
            .filter(|entry| {
                entry["method"] == "GET"
                    && entry["path"]
                        .as_str()
                        .is_some_and(|path| path.contains("/blobs/sha256:"))
            })
            .collect()
    }

    /// What the proxy printed on stderr (connection errors it did not expect).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- registry-proxy at {} ---\nstderr: {}\nlog:\n{}",
                self.host(),
                self.stderr(),
                tail(
                    &std::fs::read_to_string(self.dir.path().join("log.jsonl")).unwrap_or_default(),
                    40
                )
            );
        }
    }
}
