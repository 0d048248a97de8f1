//! [`Merge`]: one merge, described and then run into a writer or a sink.

use super::{merge_arriving, Arrivals, MergeOptions, MergeStats};
use crate::blob::layer_ref::LayerRef;
use crate::error::{Error, Result};
use crate::progress::Observer;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

/// A merge of layers (base first) into one tar, with the guarantees the
/// `oci-merge` binary gives: every layer's digest is checked as it
/// streams, and a merge that fails never writes the tar's end marker (its
/// last block is one no tar reader accepts), so what it wrote cannot pass
/// for a whole archive.
///
/// ```no_run
/// use ocirender::merge::Merge;
/// use ocirender::{image, sink};
///
/// # fn main() -> ocirender::Result<()> {
/// let image = image::open("oci:./layout:latest", &image::Selection::default())?;
/// // To a tar file:
/// let tar = std::fs::File::create("rootfs.tar")?;
/// Merge::new(&image.layer_refs()).write_to(tar)?;
/// // To a directory, created by the merge:
/// let options = sink::UnpackOptions::default();
/// Merge::new(&image.layer_refs())
///     .into_sink(|tar| sink::unpack_to_new_dir("rootfs".as_ref(), tar, &options))?;
/// # Ok(()) }
/// ```
pub struct Merge<'a> {
    layers: &'a [LayerRef],
    options: MergeOptions,
    observer: Option<&'a dyn Observer>,
    warn: Box<dyn FnMut(&str) + 'a>,
    arrivals: Option<Arrivals>,
}

impl<'a> Merge<'a> {
    /// A merge of `layers`, base first, with the default options, ignoring
    /// warnings.
    pub fn new(layers: &'a [LayerRef]) -> Merge<'a> {
        Merge {
            layers,
            options: MergeOptions::default(),
            observer: None,
            warn: Box::new(|_| {}),
            arrivals: None,
        }
    }

    /// Tunes how many layers decode at once and how far ahead.
    pub fn options(mut self, options: MergeOptions) -> Self {
        self.options = options;
        self
    }

    /// Tells `observer` what the merge does (see [`crate::progress::Event`]).
    pub fn observer(mut self, observer: &'a dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Hands each warning (one line, about something the merge skipped or
    /// repaired) to `warn`.
    pub fn on_warning(mut self, warn: impl FnMut(&str) + 'a) -> Self {
        self.warn = Box::new(warn);
        self
    }

    /// Reads each layer only once `arrivals` says it is there: the caller
    /// feeds layers as its downloads finish (see [`crate::merge::feed`]).
    pub fn arriving(mut self, arrivals: Arrivals) -> Self {
        self.arrivals = Some(arrivals);
        self
    }

    /// Runs the merge, writing the tar to `out`. On error, `out` has a
    /// prefix of the tar that ends in a block no tar reader accepts.
    pub fn write_to<W: Write>(mut self, out: W) -> Result<(W, MergeStats)> {
        merge_arriving(
            self.layers,
            out,
            &self.options,
            &mut *self.warn,
            self.observer,
            self.arrivals.as_ref(),
        )
    }

    /// Runs the merge into a sink that reads a tar stream (a directory, a
    /// squashfs or EROFS builder, a checker): `sink` runs on a thread of
    /// its own and reads the tar from the read end of a pipe, which ends
    /// the way [`Merge::write_to`] ends it. The merge's error wins, unless
    /// it is only that the sink stopped reading.
    pub fn into_sink<T: Send>(
        self,
        sink: impl FnOnce(File) -> Result<T> + Send,
    ) -> Result<(T, MergeStats)> {
        let (reader, writer) = std::io::pipe()?;
        let reader = File::from(OwnedFd::from(reader));
        std::thread::scope(|scope| {
            let sink = scope.spawn(move || sink(reader));
            let merged = self.write_to(writer).map(|(writer, stats)| {
                drop(writer);
                stats
            });
            let sunk = sink
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            match (merged, sunk) {
                (Ok(stats), Ok(value)) => Ok((value, stats)),
                (Err(merge), Err(sink)) if stopped_reading(&merge) => Err(sink),
                (Err(merge), _) => Err(merge),
                (Ok(_), Err(sink)) => Err(sink),
            }
        })
    }
}

/// Whether a merge failed only because its reader went away.
fn stopped_reading(err: &Error) -> bool {
    err.io_kind() == Some(std::io::ErrorKind::BrokenPipe) || crate::fs::pipe::is_broken_pipe(err)
}
