//! A layer streamed from a registry: resumed when the connection drops,
//! verified before its end is reported.
//!
//! Layers are large and connections to registries and their CDNs do drop,
//! so a download that stops midway asks again for the rest
//! (`Range: bytes=N-`) instead of starting over, and a server that ignores
//! the range has its first N bytes skipped. The digest covers every byte
//! exactly once either way. The last bytes are handed out only once the
//! digest matches, so a reader never reaches a clean end of a corrupted
//! blob: it gets an error instead.
//!
//! A download may also pick up bytes an earlier run kept ([`Resume`]: how
//! many, and their hash): the first request then asks for the rest, and
//! the digest checked at the end covers the kept bytes and the new ones.
//! A server that ignores that first range sends the whole blob, which is
//! then handed out from its start ([`BlobReader::start`]), so the caller
//! starts over rather than keep bytes it cannot check until the end.

use super::retry::{GiveUp, Retry};
use super::transport::{describe_io, is_timeout, url_host};
use super::{content_length, Registry};
use crate::blob::digest::{Digest, Hasher};
use crate::error::{bail, Result};
use std::io::{self, Read};

/// Bytes of a blob already at hand, from an earlier download.
pub struct Resume {
    /// How many: the download asks for the bytes from this offset on.
    pub offset: u64,
    /// Their hash.
    pub prefix: Hasher,
}

/// A blob being downloaded; implements [`Read`].
///
/// A dropped or stalled connection is resumed after a backoff; the retry
/// budget starts over whenever bytes arrive, so only `retries` failures in
/// a row end the download (or, for a config, its deadline). Errors are
/// `io::Error`s whose message names the blob; a digest mismatch is
/// [`io::ErrorKind::InvalidData`], a deadline [`io::ErrorKind::TimedOut`].
pub struct BlobReader {
    registry: Registry,
    digest: Digest,
    size: u64,
    /// The blob in messages: `registry/repository: blob sha256:…`.
    what: String,
    body: Option<Box<dyn Read + Send + Sync>>,
    /// Where the current body comes from (a CDN after a redirect).
    body_host: String,
    hasher: Hasher,
    received: u64,
    /// Bytes at the start of the current body already received before: a
    /// server that answers a range request with the whole blob.
    skip: u64,
    retry: Retry,
    /// The offset in the blob of the first byte handed out.
    start: u64,
    /// Whether a whole blob sent in answer to the range of a [`Resume`]
    /// may start the download over: only before any byte is handed out.
    may_start_over: bool,
    /// Whether the digest was checked and matched.
    verified: bool,
    /// Set once the download ended in an error: every later read repeats it.
    failed: Option<(io::ErrorKind, String)>,
}

impl BlobReader {
    /// Makes the first request, so that refusals and unknown blobs are
    /// reported before reading starts; `retry` is the budget (and for a
    /// small blob the deadline) of the whole download.
    pub(super) fn open(
        registry: Registry,
        digest: Digest,
        size: u64,
        retry: Retry,
    ) -> Result<BlobReader> {
        BlobReader::open_from(registry, digest, size, retry, None)
    }

    /// As [`BlobReader::open`], picking up the bytes `resume` describes.
    pub(super) fn open_from(
        registry: Registry,
        digest: Digest,
        size: u64,
        retry: Retry,
        resume: Option<Resume>,
    ) -> Result<BlobReader> {
        let what = format!("{}: blob {digest}", registry.name());
        let (received, hasher) = match resume {
            Some(Resume { offset, .. }) if offset > size => {
                bail!("{what}: cannot resume at byte {offset} of {size}")
            }
            Some(Resume { offset, prefix }) => (offset, prefix),
            None => (0, Hasher::new(digest.algorithm())),
        };
        let mut reader = BlobReader {
            hasher,
            registry,
            digest,
            size,
            what,
            body: None,
            body_host: String::new(),
            received,
            skip: 0,
            retry,
            start: received,
            may_start_over: true,
            verified: false,
            failed: None,
        };
        // Kept bytes that are the whole blob need only their check.
        if received == 0 || received < size {
            reader.connect()?;
        }
        reader.may_start_over = false;
        Ok(reader)
    }

    /// The offset in the blob of the first byte this reader hands out:
    /// the [`Resume`] offset, or 0 if the registry ignored the range and
    /// the download started over.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// How many bytes of the blob have been read so far.
    pub fn bytes_read(&self) -> u64 {
        self.received
    }

    /// Requests the blob, or the rest of it.
    fn connect(&mut self) -> Result<()> {
        let mut headers = Vec::new();
        if self.received > 0 {
            headers.push(("Range", format!("bytes={}-", self.received)));
        }
        let path = format!("blobs/{}", self.digest);
        let response = self
            .registry
            .get(&self.what, &path, &headers, &mut self.retry)?;
        let expected = if response.status() == 206 && self.received > 0 {
            self.check_range(response.header("content-range"))?;
            self.skip = 0;
            self.size - self.received
        } else if self.may_start_over && self.received > 0 {
            self.start_over();
            self.size
        } else {
            self.skip = self.received;
            self.size
        };
        if let Some(length) = content_length(&response) {
            if length != expected {
                bail!(
                    "{}: the registry sends {length} bytes where {expected} are expected",
                    self.what
                );
            }
        }
        self.body_host = url_host(response.get_url());
        self.body = Some(response.into_reader());
        Ok(())
    }

    /// Forgets the bytes a [`Resume`] brought: what the registry sends is
    /// the blob from its first byte.
    fn start_over(&mut self) {
        self.received = 0;
        self.start = 0;
        self.skip = 0;
        self.hasher = Hasher::new(self.digest.algorithm());
    }

    /// A 206 must continue exactly where the download stopped.
    fn check_range(&self, content_range: Option<&str>) -> Result<()> {
        let start = content_range
            .and_then(|r| r.trim().strip_prefix("bytes "))
            .and_then(|r| r.split_once('-'))
            .and_then(|(start, _)| start.trim().parse::<u64>().ok());
        if start != Some(self.received) {
            bail!(
                "{}: asked for the bytes from {}, the registry sent a range starting at {}",
                self.what,
                self.received,
                content_range.unwrap_or("no Content-Range")
            );
        }
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.received == self.size {
                // Only an empty blob gets here unverified.
                self.verify()?;
                return Ok(0);
            }
            let Some(body) = self.body.as_mut() else {
                self.connect()
                    .map_err(|e| io::Error::other(format!("{e:#}")))?;
                continue;
            };
            let n = match body.read(buf) {
                Ok(0) => {
                    let problem = format!(
                        "connection closed after {} of {} bytes",
                        self.received, self.size
                    );
                    self.dropped(io::ErrorKind::UnexpectedEof, problem)?;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let problem = if is_timeout(e.kind()) {
                        self.registry.transport().stalled(&self.body_host)
                    } else {
                        format!("{} from {}", describe_io(&e), self.body_host)
                    };
                    self.dropped(e.kind(), problem)?;
                    continue;
                }
            };
            let skipped = self.skip.min(n as u64) as usize;
            self.skip -= skipped as u64;
            if skipped < n {
                buf.copy_within(skipped..n, 0);
                return self.accept(&buf[..n - skipped]);
            }
        }
    }

    /// New bytes: counted, hashed, and, when they complete the blob,
    /// handed out only if the digest matches.
    fn accept(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len() as u64;
        if self.received + n > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: more than the expected {} bytes", self.what, self.size),
            ));
        }
        self.hasher.update(bytes);
        self.received += n;
        self.retry.progress();
        if self.received == self.size {
            self.verify()?;
        }
        Ok(bytes.len())
    }

    fn verify(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        self.body = None;
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(self.digest.algorithm()));
        let actual = hasher.finish();
        if actual != self.digest {
            let mismatch = crate::error::Error::digest_mismatch(&self.what, &self.digest, &actual);
            return Err(mismatch.into());
        }
        self.verified = true;
        Ok(())
    }

    /// The connection failed: wait and go on, or give up when the retry
    /// budget is spent.
    fn dropped(&mut self, kind: io::ErrorKind, problem: String) -> io::Result<()> {
        self.body = None;
        self.retry.wait(None).map_err(|gave_up| {
            // A read timeout is `WouldBlock` on Unix, which a caller could
            // take for "try again"; the download is over, so say it timed
            // out.
            let kind = match gave_up {
                GiveUp::Deadline(_) => io::ErrorKind::TimedOut,
                GiveUp::Retries(_) if is_timeout(kind) => io::ErrorKind::TimedOut,
                GiveUp::Retries(_) => kind,
            };
            let problem = format!("{}: {problem}", self.what);
            io::Error::new(kind, gave_up.message(&self.what, &problem))
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_some(buf).inspect_err(|e| {
            self.failed = Some((e.kind(), e.to_string()));
        })
    }
}
