//! One blob's bytes in place, counted for a
//! [`DownloadObserver`](crate::progress::DownloadObserver) as they are
//! downloaded into a store.

use crate::progress::ByteCounter;
use std::cell::Cell;
use std::io::{self, Read};

/// Where one blob's download stands in the count shared by all blobs. A
/// source that sends the blob from byte N puts the blob's share at N
/// (kept bytes count as in place; a source that starts again from byte 0
/// takes back what an abandoned attempt counted), then each byte read
/// adds one.
pub(super) struct BlobCount<'a> {
    counter: Option<&'a ByteCounter>,
    counted: Cell<u64>,
}

impl<'a> BlobCount<'a> {
    /// A blob with nothing counted yet (none counted without `counter`).
    pub(super) fn new(counter: Option<&'a ByteCounter>) -> BlobCount<'a> {
        BlobCount {
            counter,
            counted: Cell::new(0),
        }
    }

    /// The blob's bytes in place are `position`.
    pub(super) fn set(&self, position: u64) {
        let Some(counter) = self.counter else { return };
        let counted = self.counted.replace(position);
        if position >= counted {
            counter.add(position - counted);
        } else {
            counter.take_back(counted - position);
        }
    }

    /// `reader`, each byte read through it counted.
    pub(super) fn reading<'r>(&'r self, reader: Box<dyn Read + 'r>) -> Box<dyn Read + 'r> {
        Box::new(Counting {
            inner: reader,
            count: self,
        })
    }
}

struct Counting<'r> {
    inner: Box<dyn Read + 'r>,
    count: &'r BlobCount<'r>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.counted.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_takes_back_what_was_counted_and_reads_add() {
        let counter = ByteCounter::default();
        let count = BlobCount::new(Some(&counter));
        // Kept bytes, then a source that sends the rest.
        count.set(10);
        let mut reader = count.reading(Box::new(&[0u8; 5][..]));
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert_eq!(counter.get(), 15);
        drop(reader);
        // A source that ignores the range starts again from byte 0.
        count.set(0);
        assert_eq!(counter.get(), 0);
        count.set(20);
        assert_eq!(counter.get(), 20);
    }
}
