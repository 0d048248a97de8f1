//! A bounded, recycling pipe of byte chunks between two threads.
//!
//! The producer fills fixed-size buffers and sends them; the consumer reads
//! them as a stream (`Read`/`BufRead`, plus skipping without copying) and
//! hands emptied buffers back. The number of buffers is fixed, which bounds
//! both memory and how far the producer runs ahead; recycling them means
//! the steady state allocates nothing. When the producer is done it sends
//! its result, which the consumer gets after the last byte.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::fmt;
use std::io::{self, BufRead, Read};

enum Message<T> {
    Data(Vec<u8>),
    End(anyhow::Result<T>),
}

/// A failure reported by the producer (I/O, corrupt data, digest
/// mismatch), carried through `io::Error` to the consumer.
#[derive(Debug)]
pub struct ProducerError(String);

impl fmt::Display for ProducerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProducerError {}

impl ProducerError {
    /// True if `err` carries a producer's failure.
    pub fn is_in(err: &io::Error) -> bool {
        err.get_ref()
            .is_some_and(|inner| inner.is::<ProducerError>())
    }
}

/// Creates a pipe of `buffers` chunks of `chunk_size` bytes. It needs at
/// least two: the consumer keeps the chunk it last read from until the next
/// one arrives (see [`ChunkReader::consumed_tail`]).
pub fn chunk_pipe<T>(chunk_size: usize, buffers: usize) -> (ChunkWriter<T>, ChunkReader<T>) {
    assert!(buffers >= 2, "a chunk pipe needs two buffers");
    let (messages_tx, messages_rx) = bounded(buffers + 1);
    let (free_tx, free_rx) = bounded(buffers + 1);
    let writer = ChunkWriter {
        messages: messages_tx,
        free: free_rx,
        chunk_size,
        allocated: 0,
        limit: buffers,
    };
    let reader = ChunkReader {
        messages: messages_rx,
        free: free_tx,
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
        self.free.recv().map_err(|_| Closed)
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
    pub fn finish(self, result: anyhow::Result<T>) {
        // A consumer that has gone away no longer needs the result.
        let _ = self.messages.send(Message::End(result));
    }
}

/// The consuming end: the bytes as a stream.
pub struct ChunkReader<T> {
    messages: Receiver<Message<T>>,
    free: Sender<Vec<u8>>,
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
    pub fn finish(mut self) -> anyhow::Result<T> {
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
                if used.capacity() > 0 {
                    let _ = self.free.try_send(used);
                }
                self.pos = 0;
                Ok(true)
            }
            Ok(Message::End(Ok(result))) => {
                self.result = Some(result);
                Ok(false)
            }
            Ok(Message::End(Err(err))) => Err(io::Error::other(ProducerError(format!("{err:#}")))),
            Err(_) => Err(io::Error::other(ProducerError(
                "the producing thread died".into(),
            ))),
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

    #[test]
    fn producer_errors_surface_as_read_errors() {
        let (w, mut r) = chunk_pipe::<()>(4, 2);
        w.finish(Err(anyhow::anyhow!("corrupt")));
        let err = r.read(&mut [0; 4]).unwrap_err();
        assert!(ProducerError::is_in(&err));
        assert_eq!(err.to_string(), "corrupt");
    }
}
