//! Counting the stored bytes the layers' reader threads read, for whoever
//! samples the count (a progress line).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Stored (compressed) bytes read so far, shared by the reader threads of
/// every layer and whoever samples it.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Counts `n` more bytes.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back `n` bytes counted earlier: a download that starts a blob
    /// again from an earlier byte.
    pub fn take_back(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
