//! A client for the OCI distribution API: manifests and blobs of one
//! repository, pulled the way real registries need.
//!
//! * [`reference`]: `debian:12` → `docker.io/library/debian:12`;
//! * [`credentials`]: the logins users already have (Docker's and
//!   containers' auth files, credential helpers); [`auth_file`] and
//!   [`login`]: `oci-login` storing one, checked with the registry first;
//! * `auth`: answering `401`s with basic auth or cached bearer tokens;
//! * `transport`: one HTTP agent per registry (TLS, proxies, timeouts),
//!   one-line errors; `redirect`: redirects followed, `Authorization` kept
//!   only to the same origin; `origin`: where credentials may go;
//!   `retry`: retries with backoff, and the deadline of small documents;
//! * `blob`: [`BlobReader`], a layer streamed, resumed with `Range` when
//!   the connection drops, verified against its digest;
//! * [`mirrors`]: what `containers-registries.conf(5)` says about a
//!   reference (mirrors, a rewritten location, a block);
//! * `endpoints`: [`Endpoints`], one pull tried on the mirrors, then on
//!   the registry, each with its own client.
//!
//! Everything the registry sends is checked: a manifest against its digest
//! (the one asked for, or the one the registry claims), a blob against its
//! digest and size. Nothing it sends may take unbounded memory or time: a
//! manifest or config is at most [`MAX_DOCUMENT`] bytes and, like a token,
//! must arrive whole within [`ClientOptions::deadline`].

pub mod auth_file;
pub mod credentials;
pub mod login;
pub mod mirrors;

// Public, hidden, for the fuzz targets (fuzz/) only: its parsers of
// `WWW-Authenticate` and token answers.
#[doc(hidden)]
pub mod auth;
mod blob;
mod endpoints;
mod origin;
mod redirect;
mod retry;
pub mod tag_list;
mod transport;

#[cfg(test)]
mod test_server;

pub use blob::{BlobReader, Resume};
pub use endpoints::{Endpoints, Warn};
pub use retry::RetryNotice;

use crate::blob::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind};
pub use crate::source::spec::MAX_DOCUMENT;

use crate::error::{bail, err, Context, Result};
use crate::source::reference::{self, Reference};
use crate::source::spec::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use auth::Auth;
use retry::Retry;
use serde::Deserialize;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use transport::Transport;

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP, never HTTPS. Without it, a registry on this machine
    /// (loopback) is tried with HTTPS first and gets plain HTTP if it does
    /// not speak TLS; any other gets HTTPS only.
    pub plain_http: bool,
    /// Plain HTTP is allowed (registries.conf's `insecure = true`): the
    /// registry is treated as one on this machine is, tried with HTTPS
    /// first and spoken to in plain HTTP if it does not speak TLS at all.
    /// Certificates are checked all the same.
    pub insecure: bool,
    /// `--authfile`: the only file credentials are read from.
    pub authfile: Option<PathBuf>,
    /// How long a connection may send nothing before it counts as
    /// dropped; also the longest one attempt at a manifest, config or token
    /// may take (ureq bounds a request only as a whole).
    pub stall_timeout: Duration,
    /// How long a manifest, index, config or token may take to arrive
    /// whole, retries and redirects included (a registry sending a byte a
    /// second never stalls).
    pub deadline: Duration,
    /// How many times a failed request, or a blob download that stopped
    /// making progress, is tried again.
    pub retries: u32,
    /// The first wait before a retry; it doubles with each failure.
    pub backoff: Duration,
    /// Told once per registry when a connection first fails and is
    /// retried (not for a mirror: giving it up is warned about).
    pub retry_notice: RetryNotice,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: false,
            insecure: false,
            authfile: None,
            stall_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(60),
            retries: 5,
            backoff: Duration::from_millis(250),
            retry_notice: RetryNotice::default(),
        }
    }
}

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its media type (from `Content-Type`, else its `mediaType` field).
    pub media_type: String,
    /// Its digest, verified.
    pub digest: Digest,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A client for one repository of one registry; cheap to clone (shared
/// inside), `Send + Sync`, shared by download threads, which also share
/// its cached tokens.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    reference: Reference,
    transport: Transport,
    auth: Auth,
}

impl Registry {
    /// A client for `reference`'s repository. No network I/O happens here.
    pub fn new(reference: &Reference, options: &ClientOptions) -> Result<Registry> {
        let transport = Transport::new(reference, options)
            .with_context(|| format!("setting up HTTP for {}", reference.registry))?;
        Ok(Registry::with_transport(reference, options, transport))
    }

    fn with_transport(
        reference: &Reference,
        options: &ClientOptions,
        transport: Transport,
    ) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                reference: reference.clone(),
                transport,
                auth: Auth::new(reference, options.authfile.clone()),
            }),
        }
    }

    /// `registry/repository`, for messages (`docker.io/library/debian`).
    pub fn name(&self) -> String {
        self.inner.reference.name()
    }

    /// Fetches a manifest or an index by tag or digest. Asked by digest,
    /// the bytes are verified against it; by tag, against the registry's
    /// `Docker-Content-Digest` when it sends one (the digest is sha256 of
    /// the bytes otherwise).
    pub fn manifest(&self, tag_or_digest: &str) -> Result<Fetched> {
        let (expected, separator) = if tag_or_digest.contains(':') {
            let digest = tag_or_digest
                .parse::<Digest>()
                .with_context(|| format!("{}: bad manifest digest", self.name()))?;
            (Some(digest), '@')
        } else {
            reference::check_tag(tag_or_digest)
                .with_context(|| format!("{}: bad tag", self.name()))?;
            (None, ':')
        };
        let what = format!("{}{separator}{tag_or_digest}", self.name());
        let path = format!("manifests/{tag_or_digest}");
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let mut retry = self.inner.transport.retry_within("manifest");
        let until = retry.deadline().map(|deadline| deadline.at());
        let (response, bytes) = loop {
            let response = self.get(&what, &path, &[("Accept", accept.clone())], &mut retry)?;
            let headers = (
                response.header("content-type").map(str::to_owned),
                response.header("docker-content-digest").map(str::to_owned),
            );
            if let Some(length) = content_length(&response) {
                spec::check_document_size(&what, "manifest", length)?;
            }
            match transport::read_capped(response.into_reader(), MAX_DOCUMENT, until) {
                Ok(Some(bytes)) => break (headers, bytes),
                Ok(None) => return Err(spec::document_too_large(&what, "manifest", None)),
                Err(e) => retry.wait(None).map_err(|gave_up| {
                    let problem = format!("{what}: {}", transport::describe_io(&e));
                    err!(gave_up.message(&what, &problem))
                })?,
            }
        };
        let (content_type, claimed) = response;
        let digest = verify_manifest(&what, &bytes, expected, claimed.as_deref())?;
        Ok(Fetched {
            media_type: media_type(content_type.as_deref(), &bytes),
            digest,
            bytes,
        })
    }

    /// Fetches a small blob (an image config) into memory: exactly `size`
    /// bytes, verified against `digest`, at most [`MAX_DOCUMENT`] (refused
    /// before any request if `size` is larger), within the deadline.
    pub fn blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let what = format!("{}@{digest}", self.name());
        spec::check_document_size(&what, "config", size)?;
        let retry = self.inner.transport.retry_within("config");
        let mut reader = BlobReader::open(self.clone(), digest.clone(), size, retry)?;
        let mut bytes = Vec::with_capacity(size as usize);
        reader.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Starts streaming a blob (a layer); see [`BlobReader`]. The first
    /// request is made here, so an unknown blob or a refusal is reported
    /// before any byte is read.
    pub fn blob_reader(&self, digest: &Digest, size: u64) -> Result<BlobReader> {
        let retry = self.inner.transport.retry();
        BlobReader::open(self.clone(), digest.clone(), size, retry)
    }

    /// Every tag of the repository, in the registry's order, its pages
    /// followed and bounded as [`tag_list`] says.
    pub fn tags(&self) -> Result<Vec<String>> {
        let what = format!("{}: tag list", self.name());
        let mut pages = tag_list::Pages::new(&self.inner.reference.repository);
        while let Some(path) = pages.next_path(&what)? {
            let mut retry = self.inner.transport.retry_within("tag list");
            let until = retry.deadline().map(|deadline| deadline.at());
            let (link, body) = loop {
                let response = self.get(&what, &path, &[], &mut retry)?;
                let link = response.header("link").map(str::to_owned);
                match transport::read_capped(response.into_reader(), MAX_DOCUMENT, until) {
                    Ok(Some(body)) => break (link, body),
                    Ok(None) => bail!(
                        "{what}: a page is over the {} MiB limit",
                        MAX_DOCUMENT >> 20
                    ),
                    Err(e) => retry.wait(None).map_err(|gave_up| {
                        let problem = format!("{what}: {}", transport::describe_io(&e));
                        err!(gave_up.message(&what, &problem))
                    })?,
                }
            };
            pages.add(&what, &body, link.as_deref())?;
        }
        Ok(pages.into_tags())
    }

    /// As [`Registry::blob_reader`], for a download that picks up the
    /// bytes an earlier one kept: see [`Resume`] and [`BlobReader::start`].
    pub fn blob_reader_from(
        &self,
        digest: &Digest,
        size: u64,
        resume: Resume,
    ) -> Result<BlobReader> {
        let retry = self.inner.transport.retry();
        BlobReader::open_from(self.clone(), digest.clone(), size, retry, Some(resume))
    }

    /// GETs `/v2/<repository>/<path>`, authenticating as the registry asks,
    /// and returns a 2xx answer; anything else becomes the error to report.
    fn get(
        &self,
        what: &str,
        path: &str,
        headers: &[(&str, String)],
        retry: &mut Retry,
    ) -> Result<ureq::Response> {
        let Inner {
            reference,
            transport,
            auth,
        } = &*self.inner;
        let repository = &reference.repository;
        let mut authorization = auth.authorization(transport)?;
        let mut answered = false;
        loop {
            let response = transport.call(what, retry, None, &|agent, base_url| {
                let mut request = agent.get(&format!("{base_url}/v2/{repository}/{path}"));
                for (name, value) in headers {
                    request = request.set(name, value);
                }
                if let Some(authorization) = &authorization {
                    request = request.set("Authorization", authorization.header_value());
                }
                request
            })?;
            match response.status() {
                200..=299 => return Ok(response),
                401 if !answered => {
                    authorization =
                        Some(auth.answer(transport, &response, authorization.as_ref())?);
                    answered = true;
                }
                status @ (401 | 403) => return Err(auth.refused(status)),
                404 => bail!("{what}: not found{}", transport::registry_message(response)),
                status => bail!(
                    "{what}: HTTP {status} {} from {}{}",
                    transport::one_line(response.status_text()),
                    transport::url_host(response.get_url()),
                    transport::registry_message(response)
                ),
            }
        }
    }

    fn transport(&self) -> &Transport {
        &self.inner.transport
    }
}

/// The length a response declares, if it declares one.
pub(super) fn content_length(response: &ureq::Response) -> Option<u64> {
    response.header("content-length")?.trim().parse().ok()
}

/// The digest of a manifest, checked against the one asked for or the one
/// the registry claims.
fn verify_manifest(
    what: &str,
    bytes: &[u8],
    expected: Option<Digest>,
    claimed: Option<&str>,
) -> Result<Digest> {
    if let Some(expected) = expected {
        let actual = Digest::of_bytes(expected.algorithm(), bytes);
        if actual != expected {
            return Err(Error::digest_mismatch(what, &expected, &actual));
        }
        return Ok(expected);
    }
    let Some(claimed) = claimed else {
        return Ok(Digest::of_bytes(Algorithm::Sha256, bytes));
    };
    let claimed: Digest = claimed
        .trim()
        .parse()
        .with_context(|| format!("{what}: the registry's Docker-Content-Digest"))?;
    let actual = Digest::of_bytes(claimed.algorithm(), bytes);
    if actual != claimed {
        let kind = ErrorKind::DigestMismatch {
            blob: what.to_owned(),
            expected: claimed.clone(),
            actual: actual.clone(),
        };
        bail!(
            kind = kind,
            "{what}: digest mismatch: the registry says {claimed}, content has {actual}"
        );
    }
    Ok(claimed)
}

/// `Content-Type` when it names a manifest type; otherwise (a registry
/// sending `application/json`, or nothing) the document's `mediaType`.
fn media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct MediaType {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .unwrap_or_default();
    if content_type.starts_with("application/vnd.") {
        return content_type;
    }
    serde_json::from_slice::<MediaType>(bytes)
        .ok()
        .and_then(|m| m.media_type)
        .unwrap_or(content_type)
}

#[cfg(test)]
mod tests;
