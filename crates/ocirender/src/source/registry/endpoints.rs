//! The endpoints of one pull, tried in order: the mirrors
//! ([`super::mirrors`]), then the registry itself.
//!
//! How endpoints are chosen (containers/image's rule, made finer): the
//! manifest or index the reference names comes from the first endpoint
//! that serves it. Everything after it (the manifest chosen from an index,
//! the config, the layers) is asked of that same endpoint first; a mirror
//! that fails a request (connection refused, 5xx once retries are spent,
//! not found, access refused, or bytes that do not match their digest) is
//! given up for the rest of the pull, with one warning, and the request
//! goes to the next endpoint, the registry last. Mirrors that failed the
//! manifest are never asked again, so a pull through a cache that is down
//! pays for finding out once.
//!
//! Every manifest and blob is verified against its digest whichever
//! endpoint sends it, so a mirror can withhold an image but not change it.
//! A tag is what no one can verify: a mirror's answer for a tag is trusted
//! as the registry's would be, and its digest then pins everything else.
//! A layer streamed to a reader cannot be taken back: if its digest turns
//! out wrong at its end, the pull fails (the reader sees it too) instead
//! of trying the next endpoint, which `--store` does.
//!
//! Each endpoint is a [`Registry`] client of its own, with the scheme,
//! proxy, tokens and credentials of its own host: the registry's
//! credentials are never sent to a mirror, nor a mirror's to the registry.

use super::mirrors::Plan;
use super::{BlobReader, ClientOptions, Fetched, Registry, Resume, RetryNotice};
use crate::blob::digest::Digest;
use crate::error::Result;
use crate::source::reference::Reference;
use std::cell::Cell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Opens the blob at one endpoint (see [`Endpoints::read_blob_from`]).
pub type Opener<'a> = dyn FnMut(Option<Resume>) -> Result<(Box<dyn Read + 'a>, u64)> + 'a;

/// Where warnings go (one line each).
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// The endpoints of one image's pull; cheap to clone (shared inside), so
/// download threads share which mirrors were given up.
#[derive(Clone)]
pub struct Endpoints {
    inner: Arc<Inner>,
}

struct Inner {
    /// The reference's name, for messages.
    name: String,
    /// Mirrors first, the registry last.
    endpoints: Vec<Endpoint>,
    warn: Warn,
}

struct Endpoint {
    client: Registry,
    /// The mirror's location as configured; `None` for the registry.
    mirror: Option<String>,
    given_up: AtomicBool,
}

impl Endpoints {
    /// Clients for the endpoints `plan` lists for `reference` (no network
    /// I/O). `--plain-http` applies to the registry itself; a mirror
    /// speaks plain HTTP only if it is marked insecure or is on this
    /// machine. The mirrors the plan skipped are warned about here.
    pub fn new(
        reference: &Reference,
        plan: &Plan,
        options: &ClientOptions,
        warn: Warn,
    ) -> Result<Endpoints> {
        for skipped in &plan.skipped {
            warn(skipped);
        }
        let endpoints = plan
            .endpoints
            .iter()
            .map(|planned| {
                let options = ClientOptions {
                    plain_http: options.plain_http && planned.mirror.is_none(),
                    insecure: planned.insecure,
                    // A mirror given up gets its own warning.
                    retry_notice: match planned.mirror {
                        Some(_) => RetryNotice::default(),
                        None => options.retry_notice.clone(),
                    },
                    ..options.clone()
                };
                Ok(Endpoint {
                    client: Registry::new(&planned.reference, &options)?,
                    mirror: planned.mirror.clone(),
                    given_up: AtomicBool::new(false),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        assert!(
            endpoints.last().is_some_and(|e| e.mirror.is_none()),
            "a plan ends with the registry itself"
        );
        Ok(Endpoints {
            inner: Arc::new(Inner {
                name: reference.name(),
                endpoints,
                warn,
            }),
        })
    }

    /// `registry/repository` of the reference, for messages.
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// Fetches a manifest or index by tag or digest (see
    /// `Registry::manifest`), with the name of the endpoint that served
    /// it (`registry/repository` there).
    pub fn manifest_and_source(&self, tag_or_digest: &str) -> Result<(Fetched, String)> {
        let (index, fetched) = self.first(&mut |client| client.manifest(tag_or_digest))?;
        Ok((fetched, self.inner.endpoints[index].client.name()))
    }

    /// Fetches a manifest or index by tag or digest.
    pub fn manifest(&self, tag_or_digest: &str) -> Result<Fetched> {
        Ok(self.manifest_and_source(tag_or_digest)?.0)
    }

    /// The tags of the repository (see `Registry::tags`), from the first
    /// endpoint that lists them.
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(self.first(&mut |client| client.tags())?.1)
    }

    /// Fetches a small blob (a config) into memory, verified.
    pub fn blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        Ok(self.first(&mut |client| client.blob(digest, size))?.1)
    }

    /// Starts streaming a blob from the first endpoint that answers for
    /// it (see `Registry::blob_reader`); a failure after that is the
    /// reader's.
    pub fn blob_reader(&self, digest: &Digest, size: u64) -> Result<BlobReader> {
        Ok(self
            .first(&mut |client| client.blob_reader(digest, size))?
            .1)
    }

    /// Streams a blob into `consume`, from the next endpoint if reading it
    /// fails (a dropped mirror, a digest mismatch). A failure of
    /// `consume`'s own (a full disk) is returned as it is.
    pub fn read_blob(
        &self,
        digest: &Digest,
        size: u64,
        consume: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        self.read_blob_from(digest, size, &mut |open| {
            let (mut blob, _) = open(None)?;
            consume(&mut blob)
        })
    }

    /// [`Endpoints::read_blob`] for a consumer that may resume a download:
    /// `consume` gets an opener of the blob at the current endpoint, from
    /// its start or (given a `Resume`) after bytes it already has, which
    /// returns the reader and the offset its bytes really start at (0 from
    /// a registry that ignores `Range`; see `BlobReader::start`). If
    /// opening or reading fails, the endpoint is given up and `consume`
    /// runs again with the next endpoint's opener; a failure of
    /// `consume`'s own is returned as it is.
    pub fn read_blob_from(
        &self,
        digest: &Digest,
        size: u64,
        consume: &mut dyn FnMut(&mut Opener<'_>) -> Result<()>,
    ) -> Result<()> {
        let (_, outcome) = self.first(&mut |client| {
            let failed = Cell::new(false);
            let mut open = |resume: Option<Resume>| {
                let opened = match resume {
                    Some(resume) => client.blob_reader_from(digest, size, resume),
                    None => client.blob_reader(digest, size),
                };
                let blob = opened.inspect_err(|_| failed.set(true))?;
                let start = blob.start();
                let reader: Box<dyn Read + '_> = Box::new(ReadFailures {
                    blob,
                    failed: &failed,
                });
                Ok((reader, start))
            };
            match consume(&mut open) {
                Err(e) if failed.get() => Err(e),
                outcome => Ok(outcome),
            }
        })?;
        outcome
    }

    /// The first success of `attempt` among the endpoints not given up,
    /// with the endpoint's index; the registry's error if every one fails.
    fn first<T>(&self, attempt: &mut dyn FnMut(&Registry) -> Result<T>) -> Result<(usize, T)> {
        let endpoints = &self.inner.endpoints;
        let last = endpoints.len() - 1;
        for (index, endpoint) in endpoints.iter().enumerate() {
            if index < last && endpoint.given_up.load(Ordering::SeqCst) {
                continue;
            }
            match attempt(&endpoint.client) {
                Ok(value) => return Ok((index, value)),
                Err(e) if index == last => return Err(e),
                Err(e) => self.give_up(index, &e),
            }
        }
        unreachable!("the registry itself, last, answers or fails")
    }

    /// Gives up the mirror at `index`, warning once (threads that find it
    /// failing at the same time say nothing more).
    fn give_up(&self, index: usize, error: &crate::error::Error) {
        let endpoints = &self.inner.endpoints;
        let endpoint = &endpoints[index];
        if endpoint.given_up.swap(true, Ordering::SeqCst) {
            return;
        }
        let next = endpoints[index + 1..]
            .iter()
            .find(|e| e.mirror.is_none() || !e.given_up.load(Ordering::SeqCst))
            .expect("the registry itself is last");
        let next = match &next.mirror {
            Some(location) => format!("the next mirror, {location}"),
            None => format!("the registry, {}", next.client.name()),
        };
        let mirror = endpoint.mirror.as_deref().unwrap_or_default();
        (self.inner.warn)(&format!(
            "mirror {mirror} failed ({error:#}), trying {next}"
        ));
    }
}

/// A blob being read, remembering whether reading it failed.
struct ReadFailures<'f> {
    blob: BlobReader,
    failed: &'f Cell<bool>,
}

impl Read for ReadFailures<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.blob.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::mirrors::PlannedEndpoint;
    use super::super::test_server::{response, Reply, Request, Server};
    use super::*;
    use crate::blob::digest::Algorithm;
    use std::sync::Mutex;
    use std::time::Duration;

    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    const BLOB: &[u8] = b"the bytes of a blob";

    fn sha256(bytes: &[u8]) -> Digest {
        Digest::of_bytes(Algorithm::Sha256, bytes)
    }

    /// A registry serving the manifest (unless `manifest` is false) and
    /// the blob, with its first byte changed if `corrupt`.
    fn server(manifest: bool, corrupt: bool) -> Server {
        Server::start(move |request: &Request| {
            let body = if request.path().contains("/manifests/") {
                manifest.then_some(MANIFEST.to_vec())
            } else {
                let mut blob = BLOB.to_vec();
                blob[0] ^= u8::from(corrupt);
                Some(blob)
            };
            Reply::Send(match body {
                Some(body) => response("200 OK", &[], &body),
                None => response("404 Not Found", &[], b""),
            })
        })
    }

    /// Endpoints for `test/repo` on each server (the last one the
    /// registry), and the warnings they give.
    fn endpoints(servers: &[&Server]) -> (Endpoints, Arc<Mutex<Vec<String>>>) {
        let planned = |server: &Server, mirror: bool| PlannedEndpoint {
            reference: format!("{}/test/repo:1", server.authority())
                .parse()
                .unwrap(),
            insecure: false,
            mirror: mirror.then(|| server.authority()),
        };
        let (registry, mirrors) = servers.split_last().unwrap();
        let plan = Plan {
            endpoints: mirrors
                .iter()
                .map(|s| planned(s, true))
                .chain([planned(registry, false)])
                .collect(),
            skipped: Vec::new(),
        };
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let recorded = warnings.clone();
        let warn: Warn = Arc::new(move |line: &str| recorded.lock().unwrap().push(line.to_owned()));
        let options = ClientOptions {
            retries: 1,
            backoff: Duration::from_millis(1),
            ..ClientOptions::default()
        };
        let reference = "example.com/test/repo:1".parse().unwrap();
        let endpoints = Endpoints::new(&reference, &plan, &options, warn).unwrap();
        (endpoints, warnings)
    }

    fn blob_requests(server: &Server) -> usize {
        server
            .requests()
            .iter()
            .filter(|r| r.path().contains("/blobs/"))
            .count()
    }

    #[test]
    fn the_manifest_comes_from_the_first_endpoint_that_has_it() {
        let (lacking, having, registry) = (
            server(false, false),
            server(true, false),
            server(true, false),
        );
        let (endpoints, warnings) = endpoints(&[&lacking, &having, &registry]);
        let (fetched, source) = endpoints.manifest_and_source("1").unwrap();
        assert_eq!(fetched.bytes, MANIFEST);
        assert_eq!(source, format!("{}/test/repo", having.authority()));
        assert!(registry.requests().is_empty());
        let warnings = warnings.lock().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("mirror {} failed (", lacking.authority()))
                && warnings[0].contains(": not found")
                && warnings[0]
                    .ends_with(&format!("trying the next mirror, {}", having.authority())),
            "{}",
            warnings[0]
        );
        // The blob comes from the mirror that served the manifest.
        assert_eq!(
            endpoints.blob(&sha256(BLOB), BLOB.len() as u64).unwrap(),
            BLOB
        );
        assert_eq!(blob_requests(&lacking), 0);
        assert_eq!(blob_requests(&having), 1);
    }

    #[test]
    fn a_mirror_sending_wrong_bytes_is_given_up_once_and_the_registry_serves() {
        let (corrupt, registry) = (server(true, true), server(true, false));
        let (endpoints, warnings) = endpoints(&[&corrupt, &registry]);
        let digest = sha256(BLOB);
        let size = BLOB.len() as u64;
        assert_eq!(endpoints.blob(&digest, size).unwrap(), BLOB);
        let mut stored = Vec::new();
        endpoints
            .read_blob(&digest, size, &mut |blob| {
                Ok(blob.read_to_end(&mut stored).map(drop)?)
            })
            .unwrap();
        assert_eq!(stored, BLOB);
        // Once given up, the mirror is not asked again.
        assert_eq!(blob_requests(&corrupt), 1);
        assert_eq!(blob_requests(&registry), 2);
        let warnings = warnings.lock().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("digest mismatch")
                && warnings[0].ends_with(&format!(
                    "trying the registry, {}/test/repo",
                    registry.authority()
                )),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_failure_of_the_consumer_is_no_reason_to_ask_another_endpoint() {
        let (mirror, registry) = (server(true, false), server(true, false));
        let (endpoints, warnings) = endpoints(&[&mirror, &registry]);
        let e = endpoints
            .read_blob(&sha256(BLOB), BLOB.len() as u64, &mut |_| {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full").into())
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert!(warnings.lock().unwrap().is_empty());
        assert_eq!(blob_requests(&registry), 0);
    }

    #[test]
    fn the_registry_error_is_the_one_returned() {
        let (mirror, registry) = (server(false, false), server(false, false));
        let (endpoints, warnings) = endpoints(&[&mirror, &registry]);
        let e = format!("{:#}", endpoints.manifest("1").unwrap_err());
        assert!(
            e.starts_with(&format!("{}/test/repo:1: not found", registry.authority())),
            "{e}"
        );
        assert_eq!(warnings.lock().unwrap().len(), 1);
    }
}
