//! Streaming: layers go from the registry to the reader through named
//! pipes, never touching the disk.
//!
//! `oci-fetch` makes a private directory ([`super::pipe_dir`]) holding
//! one named pipe per layer of the list, and prints their paths. A thread per pipe waits for the
//! reader to open it, then downloads the blob into it while the reader
//! consumes it, so a layer is fetched when, and as fast as, `oci-merge`
//! wants it: newest first, a few at a time (its read-ahead), and again if
//! it opens the pipe a second time. Each line carries the blob's digest, so
//! a download that fails or is corrupt makes the reader fail: `oci-merge`
//! checks every layer's digest, and writes no end-of-archive marker.

use super::pipe_dir::{self, Identity, PipeDir};
use crate::blob::digest::Digest;
use crate::error::{err, Context, Result};
use crate::source::image::ResolvedImage;
use crate::source::registry::Endpoints;
use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How much of a blob is moved per read and write.
const CHUNK: usize = 256 << 10;

/// The name of the pipe serving the layer at `position` (0 = base).
fn pipe_name(position: usize) -> String {
    format!("layer-{position:03}")
}

/// Where the layer at `position` (0 = base) of the list is served.
pub fn pipe_path(dir: &Path, position: usize) -> PathBuf {
    dir.join(pipe_name(position))
}

/// The download threads serving an image's pipes.
pub struct Server {
    failed: Receiver<crate::error::Error>,
    sending: Arc<AtomicUsize>,
}

impl Server {
    /// Creates a pipe in `pipes` for every layer of `image` (at the paths
    /// its layer refs name) and a thread serving each: all before the list
    /// that names them is printed, so the reader never looks for one too
    /// soon.
    pub fn start(registry: &Endpoints, image: &ResolvedImage, pipes: &PipeDir) -> Result<Server> {
        let (errors, failed) = crossbeam_channel::unbounded();
        let sending = Arc::new(AtomicUsize::new(0));
        let total = image.layers.len();
        for (position, layer) in image.layers.iter().enumerate() {
            let name = pipe_name(position);
            let path = pipes.path().join(&name);
            let dir = pipes.fd();
            let made = pipe_dir::make_pipe(dir.as_fd(), &name)
                .with_context(|| format!("{}: cannot create a named pipe", path.display()))?;
            let server = LayerServer {
                registry: registry.clone(),
                dir,
                name,
                path,
                made,
                sending: Arc::clone(&sending),
                digest: layer.digest.clone(),
                size: layer.size,
                label: format!("layer {}/{total} ({})", position + 1, layer.digest),
            };
            let errors = errors.clone();
            std::thread::Builder::new()
                .name(format!("layer-{position}"))
                .spawn(move || server.run(&errors))
                .context("cannot start a download thread")?;
        }
        Ok(Server { failed, sending })
    }

    /// The first error a serving thread met, if any has.
    pub fn failed(&self) -> Option<crate::error::Error> {
        self.failed.try_recv().ok()
    }

    /// Whether no layer is being sent: stopping now cuts nothing.
    pub fn idle(&self) -> bool {
        self.sending.load(Ordering::SeqCst) == 0
    }

    /// Stops serving: the outcome is the first error a thread met.
    pub fn finish(self) -> Result<()> {
        self.failed().map_or(Ok(()), Err)
    }
}

/// One layer being sent, counted while it lives.
struct Sending(Arc<AtomicUsize>);

impl Sending {
    fn count(sending: &Arc<AtomicUsize>) -> Sending {
        sending.fetch_add(1, Ordering::SeqCst);
        Sending(Arc::clone(sending))
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One layer's pipe and what to serve on it.
struct LayerServer {
    registry: Endpoints,
    /// The private directory, which the pipe is opened relative to.
    dir: Arc<OwnedFd>,
    name: String,
    /// For messages.
    path: PathBuf,
    /// The pipe now under `name`.
    made: Identity,
    /// How many layers are being sent, across the threads.
    sending: Arc<AtomicUsize>,
    digest: Digest,
    size: u64,
    label: String,
}

impl LayerServer {
    /// Serves the blob each time the pipe is opened, until a download
    /// fails or the pipe is removed.
    fn run(mut self, errors: &Sender<crate::error::Error>) {
        loop {
            // Blocks until a reader opens the pipe.
            let mut pipe = match pipe_dir::open_pipe(self.dir.as_fd(), &self.name, self.made) {
                Ok(pipe) => pipe,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    let _ = errors
                        .send(err!("{}: {e}", self.path.display()).context(self.label.clone()));
                    return;
                }
            };
            let _sending = Sending::count(&self.sending);
            crate::fs::pipe::enlarge_pipe(pipe.as_fd());
            if let Err(e) = self.replace_pipe().and_then(|()| self.send(&mut pipe)) {
                let _ = errors.send(e.context(self.label.clone()));
                return;
            }
        }
    }

    /// Puts a fresh pipe under the path once a reader has opened this one.
    /// The reader sees the end of the layer only when every writer has
    /// closed, and a writer that reopened the same pipe while the reader
    /// still drained it would append a second copy. A new pipe renamed over
    /// the path (atomically, so an open never finds nothing) keeps each
    /// opening of the path to exactly one copy of the blob.
    fn replace_pipe(&mut self) -> Result<()> {
        let next = format!("{}.next", self.name);
        let dir = self.dir.as_fd();
        crate::fs::nofollow::remove_file(dir, next.as_bytes());
        let made = pipe_dir::make_pipe(dir, &next)
            .and_then(|made| {
                crate::fs::nofollow::rename(dir, &next, self.name.as_bytes()).map(|()| made)
            })
            .with_context(|| format!("{}: cannot replace the named pipe", self.path.display()))?;
        self.made = made;
        Ok(())
    }

    /// Downloads the blob into `pipe`. A reader that closes the pipe early
    /// (a second read that found what it wanted, or a reader that died)
    /// ends this serving without an error; the download is dropped.
    fn send(&self, pipe: &mut impl Write) -> Result<()> {
        let mut blob = self.registry.blob_reader(&self.digest, self.size)?;
        let mut buf = vec![0; CHUNK];
        loop {
            let n = match blob.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::error::Error::from(e)),
            };
            match pipe.write_all(&buf[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => {
                    return Err(crate::error::Error::from(e).context("cannot write to the pipe"))
                }
            }
        }
    }
}
