//! Decoding layer blobs on background threads with bounded read-ahead.
//!
//! Decompression dominates the cost of a merge, and the merge itself (tar
//! parsing, bookkeeping, copying to stdout) is light. So each layer is
//! read, hashed and decompressed on its own thread, handing fixed-size
//! chunks to the merging thread through a channel. A layer's thread can run
//! ahead only as far as its small pool of chunk buffers allows, which bounds
//! memory no matter how large the layer is; the buffers are recycled so the
//! steady state allocates nothing.

use crate::compression::{self, Compression};
use crate::digest::{Digest, HashingReader};
use crate::layer_ref::LayerRef;
use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// Size of one decoded chunk handed between threads.
const CHUNK_SIZE: usize = 1 << 20;
/// Chunks a layer's thread may hold before it waits for the merge.
const CHUNKS_PER_LAYER: usize = 4;
/// Read size for compressed input.
const INPUT_BUFFER: usize = 256 << 10;

/// What a fully read layer turned out to be.
#[derive(Debug, Clone)]
pub struct LayerSummary {
    /// The sniffed compression.
    pub compression: Compression,
    /// Bytes of the blob as stored.
    pub stored_bytes: u64,
    /// The verified digest, when one was declared.
    pub digest: Option<Digest>,
}

enum Message {
    Data(Vec<u8>),
    End(Result<LayerSummary>),
}

/// A failure to read or decode a layer's stored bytes (as opposed to a
/// problem with the tar inside them), carried through `io::Error`.
#[derive(Debug)]
pub struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// True if `err` carries a `DecodeError`.
    pub fn is_in(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<DecodeError>())
    }
}

/// The decoded bytes of one layer, readable as a stream. Errors from the
/// background thread (I/O, corrupt data, digest mismatch) surface as read
/// errors carrying the full message.
pub struct DecodedLayer {
    messages: Receiver<Message>,
    free_buffers: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// Decoded bytes consumed so far (read or skipped).
    position: u64,
    summary: Option<LayerSummary>,
}

impl DecodedLayer {
    /// Starts decoding `layer` on a new thread.
    pub fn spawn(layer: &LayerRef) -> Self {
        let (message_tx, messages) = bounded(CHUNKS_PER_LAYER + 1);
        let (free_buffers, free_rx) = bounded(CHUNKS_PER_LAYER + 1);
        let layer = layer.clone();
        std::thread::spawn(move || {
            let result = decode_to_channel(&layer, &message_tx, &free_rx);
            // The merge may have stopped listening; nothing left to tell it then.
            let _ = message_tx.send(Message::End(result));
        });
        DecodedLayer {
            messages,
            free_buffers,
            current: Vec::new(),
            pos: 0,
            position: 0,
            summary: None,
        }
    }

    /// Reads (and discards) the rest of the layer, then reports how the
    /// whole blob checked out. The digest is only known once every byte has
    /// been read, so this is what makes a layer count as verified.
    pub fn finish(mut self) -> Result<LayerSummary> {
        while self.summary.is_none() {
            self.current.clear();
            self.pos = 0;
            self.next_chunk().map_err(anyhow::Error::from)?;
        }
        Ok(self.summary.take().expect("summary set at end"))
    }

    /// Skips `n` decoded bytes without copying them anywhere.
    pub fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while n > 0 {
            if self.pos == self.current.len() && !self.next_chunk()? {
                break;
            }
            let step = (self.current.len() - self.pos).min(n.min(usize::MAX as u64) as usize);
            self.pos += step;
            self.position += step as u64;
            n -= step as u64;
            skipped += step as u64;
        }
        Ok(skipped)
    }

    /// Replaces the exhausted chunk with the next; `false` at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.summary.is_some() {
            return Ok(false);
        }
        let used = std::mem::take(&mut self.current);
        if used.capacity() > 0 {
            let _ = self.free_buffers.try_send(used);
        }
        self.pos = 0;
        match self.messages.recv() {
            Ok(Message::Data(chunk)) => {
                self.current = chunk;
                Ok(true)
            }
            Ok(Message::End(Ok(summary))) => {
                self.summary = Some(summary);
                Ok(false)
            }
            Ok(Message::End(Err(err))) => Err(io::Error::other(DecodeError(format!("{err:#}")))),
            Err(_) => Err(io::Error::other(DecodeError(
                "layer decoder thread died".into(),
            ))),
        }
    }
}

impl Read for DecodedLayer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.current.len() && !self.next_chunk()? {
            return Ok(0);
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        self.position += n as u64;
        Ok(n)
    }
}

/// Forward-only seeking, so that `tar` skips unwanted entry data without
/// copying it. Seeking past the end is an error: the data is truncated.
impl Seek for DecodedLayer {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Current(delta) if delta >= 0 => self.position + delta as u64,
            SeekFrom::Start(offset) if offset >= self.position => offset,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "decoded layers only seek forward",
                ))
            }
        };
        let wanted = target - self.position;
        if self.skip(wanted)? < wanted {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar data ends inside an entry",
            ));
        }
        Ok(self.position)
    }
}

/// Opens a layer's bytes: the whole file, or its byte range.
fn open_stored(layer: &LayerRef) -> Result<Box<dyn Read + Send>> {
    let mut file = File::open(&layer.path).context("cannot open")?;
    let Some((offset, size)) = layer.range else {
        return Ok(Box::new(file));
    };
    let len = file.metadata().context("cannot stat")?.len();
    if offset.saturating_add(size) > len {
        bail!("byte range {offset}+{size} runs past the end of the file ({len} bytes): truncated archive");
    }
    file.seek(SeekFrom::Start(offset)).context("cannot seek")?;
    Ok(Box::new(file.take(size)))
}

fn decode_to_channel(
    layer: &LayerRef,
    out: &Sender<Message>,
    free: &Receiver<Vec<u8>>,
) -> Result<LayerSummary> {
    let stored = open_stored(layer)?;
    let mut hashing = HashingReader::new(stored, layer.digest.as_ref().map(Digest::algorithm));
    let mut input = BufReader::with_capacity(INPUT_BUFFER, &mut hashing);
    let head = compression::peek(&mut input, 6).context("cannot read")?;
    let compression = Compression::sniff(&head);
    let mut decoder = compression
        .decoder(&mut input)
        .with_context(|| format!("{compression} decoder"))?;
    let mut allocated = 0;
    loop {
        let mut buf = match free.try_recv() {
            Ok(buf) => buf,
            Err(_) if allocated < CHUNKS_PER_LAYER => {
                allocated += 1;
                Vec::with_capacity(CHUNK_SIZE)
            }
            Err(_) => match free.recv() {
                Ok(buf) => buf,
                Err(_) => bail!("merge stopped reading"),
            },
        };
        let n = fill(&mut decoder, &mut buf)
            .with_context(|| format!("corrupt or truncated {compression} data"))?;
        if n == 0 {
            break;
        }
        if out.send(Message::Data(buf)).is_err() {
            bail!("merge stopped reading");
        }
    }
    drop(decoder);
    io::copy(&mut input, &mut io::sink()).context("cannot read")?;
    drop(input);
    let stored_bytes = hashing.bytes_read();
    let actual = hashing.finish().context("cannot read")?;
    if let (Some(expected), Some(actual)) = (&layer.digest, &actual) {
        if expected != actual {
            bail!("digest mismatch: expected {expected}, content has {actual}");
        }
    }
    Ok(LayerSummary {
        compression,
        stored_bytes,
        digest: actual,
    })
}

/// Reads into `buf`'s spare capacity until it is full or the input ends.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    buf.resize(CHUNK_SIZE, 0);
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(filled)
}

/// Hands out decoded layers in a fixed order while keeping the next few
/// decoding in the background.
pub struct Prefetcher {
    pending: VecDeque<LayerRef>,
    started: VecDeque<DecodedLayer>,
    depth: usize,
}

impl Prefetcher {
    /// Decodes `layers` in the given order, at most `depth` at a time (at
    /// least one).
    pub fn new(layers: impl IntoIterator<Item = LayerRef>, depth: usize) -> Self {
        Prefetcher {
            pending: layers.into_iter().collect(),
            started: VecDeque::new(),
            depth: depth.max(1),
        }
    }

    /// The next layer's stream, with decoding of the following ones started.
    pub fn next_layer(&mut self) -> Option<DecodedLayer> {
        self.top_up();
        let layer = self.started.pop_front();
        self.top_up();
        layer
    }

    fn top_up(&mut self) {
        while self.started.len() < self.depth {
            let Some(layer) = self.pending.pop_front() else {
                break;
            };
            self.started.push_back(DecodedLayer::spawn(&layer));
        }
    }
}
