//! Progress as typed events, for whoever wants to show it.
//!
//! A merge tells an [`Observer`] what it does: it starts (with a
//! [`ByteCounter`] its reader threads add the stored bytes they read to),
//! each layer starts and finishes, and the merge is done. Drawing a line
//! on a terminal or printing JSON is the caller's (the binaries' is in
//! `ocirender-cli`); the library has no terminal code.
//!
//! The hot path only counts: each layer's reader thread adds the size of
//! every stored chunk it reads (256 KiB) to the counter, one relaxed
//! atomic add, so a merge does the same work observed or not. An observer
//! that wants a rate or an ETA samples the counter on a timer of its own.
//!
//! `oci-fetch --store` downloads blobs before any merge starts; it tells a
//! [`DownloadObserver`] the same way ([`DownloadEvent`]), the bytes in
//! place counted by a [`ByteCounter`].

pub use crate::blob::counter::ByteCounter;
use crate::blob::digest::Digest;
use crate::blob::layer_ref::LayerRef;

/// What a finished layer contributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerDone {
    /// Its bytes as stored (compressed).
    pub stored_bytes: u64,
    /// Its tar members.
    pub members_read: u64,
    /// Entries written to the output while it was read (directories are
    /// written at the very end).
    pub entries_written: u64,
}

/// Counts describing a finished merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Layers merged.
    pub layers: usize,
    /// Tar members read from all layers.
    pub members_read: u64,
    /// Entries written to the output.
    pub entries_written: u64,
    /// Bytes of output, end-of-archive marker included.
    pub bytes_written: u64,
    /// Bytes of layer blobs read (compressed, as stored).
    pub stored_bytes_read: u64,
    /// Warnings issued.
    pub warnings: u64,
    /// Distinct paths seen.
    pub paths: usize,
}

/// One thing a merge did. Layers are numbered base first, from 1, as in
/// messages; a merge reads the newest first, so the number counts down.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The merge starts reading layer `layer` of `layers`.
    LayerStarted {
        /// Its number, base first, from 1.
        layer: usize,
        /// How many layers the merge has.
        layers: usize,
        /// Where it is read from.
        source: &'a LayerRef,
    },
    /// The merge is done with layer `layer`.
    LayerFinished {
        /// Its number, base first, from 1.
        layer: usize,
        /// How many layers the merge has.
        layers: usize,
        /// What it contributed.
        done: LayerDone,
    },
    /// The merge succeeded: its output ends with its end-of-archive
    /// marker. A failed merge sends no `Done`.
    Done(&'a MergeStats),
}

/// Receives a merge's [`Event`]s, on the merging thread, in order.
pub trait Observer {
    /// The merge of `layers` (base first) starts; its reader threads add
    /// the stored bytes they read to `read`.
    fn started(&self, layers: &[LayerRef], read: &ByteCounter) {
        let _ = (layers, read);
    }

    /// Something happened.
    fn event(&self, event: Event<'_>);
}

/// One thing the downloads into a store did.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// Downloads start: `blobs` blobs of `bytes` bytes in all. `done`
    /// counts the bytes in place: blobs already stored, bytes kept from
    /// an earlier download, bytes received.
    Started {
        /// The blobs wanted (layers; each distinct one once).
        blobs: usize,
        /// Their sizes, summed.
        bytes: u64,
        /// The bytes in place so far.
        done: &'a ByteCounter,
    },
    /// A blob is in the store, verified.
    BlobDone {
        /// Its digest.
        digest: &'a Digest,
        /// Its size.
        size: u64,
        /// Whether it was downloaded (not already stored).
        fetched: bool,
    },
    /// Every blob is in the store. Failed downloads send no `Done`.
    Done {
        /// The blobs wanted.
        blobs: usize,
        /// Of which downloaded (the rest were already stored).
        fetched: usize,
        /// Their sizes, summed.
        bytes: u64,
    },
}

/// Receives the [`DownloadEvent`]s of downloads into a store. `BlobDone`
/// comes from the download threads (so in no particular order), the rest
/// from the thread that started them.
pub trait DownloadObserver: Sync {
    /// Something happened.
    fn download(&self, event: DownloadEvent<'_>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared() {
        let counter = ByteCounter::default();
        let other = counter.clone();
        other.add(5);
        counter.add(7);
        assert_eq!(counter.get(), 12);
        other.take_back(2);
        assert_eq!(counter.get(), 10);
    }
}
