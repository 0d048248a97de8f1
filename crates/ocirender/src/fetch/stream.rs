//! Streaming: layers go from the registry to the reader through named
//! pipes, never touching the disk.
//!
//! `oci-fetch` makes a private directory (mode 0700, in
//! `$XDG_RUNTIME_DIR` or else `$TMPDIR`) holding one named pipe per layer
//! of the list, and prints their paths. A thread per pipe waits for the
//! reader to open it, then downloads the blob into it while the reader
//! consumes it, so a layer is fetched when, and as fast as, `oci-merge`
//! wants it: newest first, a few at a time (its read-ahead), and again if
//! it opens the pipe a second time. Each line carries the blob's digest, so
//! a download that fails or is corrupt makes the reader fail: `oci-merge`
//! checks every layer's digest, and writes no end-of-archive marker.

use super::readers::OutputPipe;
use crate::blob::digest::Digest;
use crate::image::ResolvedImage;
use crate::registry::Registry;
use crate::temporaries::{self, Registration};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How much of a blob is moved per read and write.
const CHUNK: usize = 256 << 10;

/// The private directory of pipes, removed when dropped (and on a signal).
pub struct PipeDir {
    dir: tempfile::TempDir,
    _registration: Registration,
}

impl PipeDir {
    /// Creates the directory: in `$XDG_RUNTIME_DIR` (a private tmpfs),
    /// else in `$TMPDIR` or `/tmp`.
    pub fn create() -> Result<PipeDir> {
        let parent = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        // tempfile creates directories with mode 0700: only this user can
        // open the pipes, and so see the layers.
        let dir = tempfile::Builder::new()
            .prefix("oci-fetch.")
            .tempdir_in(&parent)
            .with_context(|| format!("{}: cannot create a directory", parent.display()))?;
        let registration = temporaries::register(dir.path());
        Ok(PipeDir {
            dir,
            _registration: registration,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Where the layer at `position` (0 = base) of the list is served.
pub fn pipe_path(dir: &Path, position: usize) -> PathBuf {
    dir.join(format!("layer-{position:03}"))
}

/// The download threads serving an image's pipes.
pub struct Server {
    failed: Receiver<anyhow::Error>,
}

impl Server {
    /// Creates a pipe for every layer of `image` (at the paths its layer
    /// refs name) and a thread serving each: all before the list that
    /// names them is printed, so the reader never looks for one too soon.
    pub fn start(registry: &Registry, image: &ResolvedImage) -> Result<Server> {
        let (errors, failed) = crossbeam_channel::unbounded();
        let total = image.layers.len();
        for (position, layer) in image.layers.iter().enumerate() {
            let path = &layer.layer.path;
            make_pipe(path)?;
            let server = LayerServer {
                registry: registry.clone(),
                path: path.clone(),
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
        Ok(Server { failed })
    }

    /// Serves until the reader of `output` has exited; the first download
    /// error ends the wait early and is returned.
    pub fn wait(self, output: OutputPipe) -> Result<()> {
        let mut error = None;
        output.wait_for_readers(Duration::from_millis(100), &mut || {
            if error.is_none() {
                error = self.failed.try_recv().ok();
            }
            error.is_some()
        });
        error
            .or_else(|| self.failed.try_recv().ok())
            .map_or(Ok(()), Err)
    }
}

/// Creates a named pipe only this user may open.
fn make_pipe(path: &Path) -> Result<()> {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("{}: cannot create a named pipe", path.display()))
}

/// One layer's pipe and what to serve on it.
struct LayerServer {
    registry: Registry,
    path: PathBuf,
    digest: Digest,
    size: u64,
    label: String,
}

impl LayerServer {
    /// Serves the blob each time the pipe is opened, until a download
    /// fails or the pipe is removed.
    fn run(self, errors: &Sender<anyhow::Error>) {
        loop {
            // Blocks until a reader opens the pipe.
            let mut pipe = match OpenOptions::new().write(true).open(&self.path) {
                Ok(pipe) => pipe,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    let _ = errors.send(anyhow!("{}: cannot open: {e}", self.path.display()));
                    return;
                }
            };
            crate::cli::enlarge_pipe(pipe.as_fd());
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
    fn replace_pipe(&self) -> Result<()> {
        let mut next = self.path.clone().into_os_string();
        next.push(".next");
        let next = PathBuf::from(next);
        make_pipe(&next)?;
        std::fs::rename(&next, &self.path)
            .with_context(|| format!("{}: cannot replace the named pipe", self.path.display()))
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
                Err(e) => return Err(anyhow::Error::new(e)),
            };
            match pipe.write_all(&buf[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("cannot write to the pipe")),
            }
        }
    }
}
