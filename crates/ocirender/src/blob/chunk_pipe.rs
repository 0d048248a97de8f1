//! A bounded, recycling pipe of byte chunks between two threads.
//!
//! The producer fills fixed-size buffers and sends them; the consumer reads
//! them as a stream (`Read`/`BufRead`, plus skipping without copying) and
//! hands emptied buffers back. The number of buffers is fixed, which bounds
//! both memory and how far the producer runs ahead; recycling them means
//! the steady state allocates nothing. When the producer is done it sends
//! its result, which the consumer gets after the last byte.
//!
//! Pipes may also draw on a [`Budget`] shared between them: buffers beyond
//! their own few, handed back to the budget (memory and all, for any pipe
//! to reuse) as soon as they have been read. That is how a merge lets the
//! layers it decodes ahead use as much memory as the user allows, in total,
//! whichever layer needs it.

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

enum Message<T> {
    Data(Vec<u8>),
    End(crate::error::Result<T>),
}

/// Buffers that pipes may use beyond their own, shared between all the
/// pipes made with it; cloning shares it. Each is allocated when first
/// needed and, once read, goes back to the budget for any pipe to reuse:
/// handing memory from pipe to pipe instead of freeing and allocating it
/// again spares the page faults and zeroing of fresh memory.
#[derive(Clone)]
pub struct Budget {
    give: Sender<Vec<u8>>,
    take: Receiver<Vec<u8>>,
}

impl Budget {
    /// A budget of `buffers` buffers (none allocated yet).
    pub fn new(buffers: usize) -> Budget {
        let (give, take) = bounded(buffers.max(1));
        for _ in 0..buffers {
            give.send(Vec::new())
                .expect("the budget holds its own receiver");
        }
        Budget { give, take }
    }

    fn give_back(&self, buf: Vec<u8>) {
        let _ = self.give.try_send(buf);
    }
}

/// How many of a budget's buffers one pipe holds. Both ends share it; when
/// the pipe is gone, the budget gets back as many as it still held (their
/// memory went with the pipe).
struct Borrowed {
    budget: Budget,
    count: AtomicUsize,
}

impl Borrowed {
    /// Counts a buffer taken from the budget.
    fn took_one(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Gives `buf` to the budget if the pipe holds any of its buffers;
    /// otherwise hands it back for the pipe's own free list.
    fn give_back_one(&self, buf: Vec<u8>) -> Option<Vec<u8>> {
        let owed = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !owed {
            return Some(buf);
        }
        self.budget.give_back(buf);
        None
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        for _ in 0..*self.count.get_mut() {
            self.budget.give_back(Vec::new());
        }
    }
}

/// Creates a pipe of `buffers` chunks of `chunk_size` bytes. It needs at
/// least two: the consumer keeps the chunk it last read from until the next
/// one arrives (see [`ChunkReader::consumed_tail`]).
pub fn chunk_pipe<T>(chunk_size: usize, buffers: usize) -> (ChunkWriter<T>, ChunkReader<T>) {
    chunk_pipe_on_budget(chunk_size, buffers, None)
}

/// Like [`chunk_pipe`], with more buffers than its own when `budget` has
/// some to spare.
pub fn chunk_pipe_on_budget<T>(
    chunk_size: usize,
    buffers: usize,
    budget: Option<Budget>,
) -> (ChunkWriter<T>, ChunkReader<T>) {
    assert!(buffers >= 2, "a chunk pipe needs two buffers");
    let borrowed = budget.map(|budget| {
        Arc::new(Borrowed {
            budget,
            count: AtomicUsize::new(0),
        })
    });
    // Unbounded channels: the buffers in circulation bound what they hold,
    // however many a budget adds.
    let (messages_tx, messages_rx) = unbounded();
    let (free_tx, free_rx) = unbounded();
    let writer = ChunkWriter {
        messages: messages_tx,
        free: free_rx,
        chunk_size,
        allocated: 0,
        limit: buffers,
        borrowed: borrowed.clone(),
    };
    let reader = ChunkReader {
        messages: messages_rx,
        free: free_tx,
        borrowed,
        current: Vec::new(),
        pos: 0,
        position: 0,
        result: None,
    };
    (writer, reader)
}

/// The consumer went away: the producer should stop.
#[derive(Debug)]
pub struct Closed;

/// The producing end.
pub struct ChunkWriter<T> {
    messages: Sender<Message<T>>,
    free: Receiver<Vec<u8>>,
    chunk_size: usize,
    allocated: usize,
    limit: usize,
    borrowed: Option<Arc<Borrowed>>,
}

impl<T> ChunkWriter<T> {
    /// A buffer of `chunk_size` capacity to fill, waiting for the consumer
    /// to return one if all are in flight. Its contents are garbage (a
    /// recycled buffer is not cleared, to spare a memset per chunk).
    pub fn buffer(&mut self) -> Result<Vec<u8>, Closed> {
        if let Ok(buf) = self.free.try_recv() {
            return Ok(buf);
        }
        if self.allocated < self.limit {
            self.allocated += 1;
            return Ok(Vec::with_capacity(self.chunk_size));
        }
        let Some(borrowed) = &self.borrowed else {
            return self.free.recv().map_err(|_| Closed);
        };
        // Whichever comes first: a buffer back from the consumer, or one
        // from the budget.
        select! {
            recv(self.free) -> buf => buf.map_err(|_| Closed),
            recv(borrowed.budget.take) -> buf => {
                let mut buf = buf.expect("the budget holds its own sender");
                borrowed.took_one();
                if buf.capacity() < self.chunk_size {
                    buf.reserve_exact(self.chunk_size - buf.len());
                }
                Ok(buf)
            }
        }
    }

    /// The chunk size buffers are made with.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Sends a filled buffer.
    pub fn send(&mut self, chunk: Vec<u8>) -> Result<(), Closed> {
        self.messages.send(Message::Data(chunk)).map_err(|_| Closed)
    }

    /// Sends the producer's result; nothing may follow.
    pub fn finish(self, result: crate::error::Result<T>) {
        // A consumer that has gone away no longer needs the result.
        let _ = self.messages.send(Message::End(result));
    }
}

/// The consuming end: the bytes as a stream.
pub struct ChunkReader<T> {
    messages: Receiver<Message<T>>,
    free: Sender<Vec<u8>>,
    borrowed: Option<Arc<Borrowed>>,
    current: Vec<u8>,
    pos: usize,
    position: u64,
    result: Option<T>,
}

impl<T> ChunkReader<T> {
    /// Bytes consumed so far (read or skipped).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads (and discards) whatever is left, then returns the producer's
    /// result.
    pub fn finish(mut self) -> crate::error::Result<T> {
        while self.result.is_none() {
            self.pos = self.current.len();
            self.next_chunk()?;
        }
        Ok(self.result.take().expect("result set at end"))
    }

    /// Skips up to `n` bytes without copying them; returns how many.
    pub fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while n > 0 {
            if self.pos == self.current.len() && !self.next_chunk()? {
                break;
            }
            let step = (self.current.len() - self.pos).min(n.min(usize::MAX as u64) as usize);
            self.consume(step);
            n -= step as u64;
            skipped += step as u64;
        }
        Ok(skipped)
    }

    /// The last `n` bytes consumed, if they are all in the chunk being
    /// read (which stays after the last byte, until the next chunk comes).
    pub fn consumed_tail(&self, n: usize) -> Option<&[u8]> {
        let start = self.pos.checked_sub(n)?;
        Some(&self.current[start..self.pos])
    }

    /// Replaces the exhausted chunk with the next; `false` at the end,
    /// where the exhausted chunk stays.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.result.is_some() {
            return Ok(false);
        }
        match self.messages.recv() {
            Ok(Message::Data(chunk)) => {
                let used = std::mem::replace(&mut self.current, chunk);
                let own = match &self.borrowed {
                    Some(borrowed) => borrowed.give_back_one(used),
                    None => Some(used),
                };
                if let Some(used) = own.filter(|used| used.capacity() > 0) {
                    let _ = self.free.try_send(used);
                }
                self.pos = 0;
                Ok(true)
            }
            Ok(Message::End(Ok(result))) => {
                self.result = Some(result);
                Ok(false)
            }
            // The producer's error, whole (kind, source, layer), carried
            // through `io::Error`: `Error::from` gets it back.
            Ok(Message::End(Err(err))) => Err(err.into()),
            Err(_) => Err(crate::error::err!("the producing thread died").into()),
        }
    }
}

impl<T> Read for ChunkReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<T> BufRead for ChunkReader<T> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.current.len() {
            if !self.next_chunk()? {
                return Ok(&[]);
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
        self.position += amt as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bytes_and_result_in_bounded_buffers() {
        let (mut w, mut r) = chunk_pipe::<u32>(4, 2);
        let producer = std::thread::spawn(move || {
            for piece in [&b"abcd"[..], b"efgh", b"ij"] {
                let mut buf = w.buffer().unwrap();
                buf.clear();
                buf.extend_from_slice(piece);
                w.send(buf).unwrap();
            }
            w.finish(Ok(7));
        });
        let mut first = [0u8; 3];
        r.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"abc");
        assert_eq!(r.skip(4).unwrap(), 4);
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "hij");
        // The last bytes stay readable after the end, as far as their chunk.
        assert_eq!(r.consumed_tail(2), Some(&b"ij"[..]));
        assert_eq!(r.consumed_tail(3), None);
        assert_eq!(r.finish().unwrap(), 7);
        producer.join().unwrap();
    }

    /// Two pipes on a budget of three: the first, unread, runs ahead by its
    /// own two buffers and all three of the budget's; the second gets one
    /// only once the first's have been read and handed back.
    #[test]
    fn pipes_share_a_budget_and_pay_it_back_as_they_are_read() {
        let budget = Budget::new(3);
        let (mut w1, mut r1) = chunk_pipe_on_budget::<()>(4, 2, Some(budget.clone()));
        let mut held = Vec::new();
        for _ in 0..5 {
            let mut buf = w1.buffer().unwrap();
            buf.clear();
            buf.extend_from_slice(b"abcd");
            held.push(buf);
        }
        assert!(
            budget.take.is_empty(),
            "all three of the budget's buffers are in use"
        );
        for buf in held {
            w1.send(buf).unwrap();
        }
        w1.finish(Ok(()));
        let (mut w2, r2) = chunk_pipe_on_budget::<()>(4, 2, Some(budget.clone()));
        let _own = [w2.buffer().unwrap(), w2.buffer().unwrap()];
        let mut first = [0u8; 4 * 4];
        r1.read_exact(&mut first).unwrap();
        // Reading the fourth chunk freed the third: three read, all handed back.
        assert_eq!(budget.take.len(), 3);
        let _extra = w2.buffer().unwrap();
        assert_eq!(budget.take.len(), 2);
        r1.finish().unwrap();
        drop((w2, r2));
        assert_eq!(budget.take.len(), 3, "a finished pipe returns what it held");
    }

    #[test]
    fn producer_errors_surface_as_read_errors() {
        let (w, mut r) = chunk_pipe::<()>(4, 2);
        w.finish(Err(crate::error::err!("corrupt")));
        let err = r.read(&mut [0; 4]).unwrap_err();
        assert!(crate::error::carries_ours(&err));
        assert_eq!(err.to_string(), "corrupt");
        assert_eq!(crate::error::Error::from(err).to_string(), "corrupt");
    }
}
