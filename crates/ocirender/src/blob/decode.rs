//! Decoding layer blobs on background threads with bounded read-ahead.
//!
//! Decompression dominates the cost of a merge, and the merge itself (tar
//! parsing, bookkeeping, copying to stdout) is light. So each layer runs as
//! a small pipeline of its own:
//!
//! ```text
//! reader thread:  file -> SHA-256 ----chunks----> decoder thread: gunzip/zstd/...
//!                                                       |
//!                             merging thread <--chunks--+
//! ```
//!
//! Hashing on its own thread keeps it off the decompressor's critical
//! path. Every stage can run ahead only as far as its small, fixed pool of
//! buffers allows (see [`crate::blob::chunk_pipe`]), which bounds memory however
//! large the layer is. Decoded data may also run ahead on a shared
//! [`Budget`]: a merge decodes older layers while it merges the current one,
//! and the more of them it can hold, the more decoding overlaps.

use crate::blob::chunk_pipe::{
    chunk_pipe, chunk_pipe_on_budget, Budget, ChunkReader, ChunkWriter, Closed,
};
use crate::blob::compression::Compression;
use crate::blob::digest::{Digest, Hasher};
use crate::blob::layer_ref::LayerRef;
use crate::error::ErrorKind;
use crate::error::{bail, err, Context, Result};
use crate::blob::counter::ByteCounter;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::sync::{Arc, OnceLock};

/// Chunks of decoded data handed to the merge. Every chunk but the last is
/// full, and a whole number of tar blocks, so no tar header straddles two
/// chunks (see [`DecodedLayer::last_block`]).
const DECODED_CHUNK: usize = 512 << 10;
const _: () = assert!(DECODED_CHUNK.is_multiple_of(crate::tar::BLOCK));
const DECODED_BUFFERS: usize = 4;
/// Chunks of stored (compressed) data handed to the decoder.
const STORED_CHUNK: usize = 256 << 10;
const STORED_BUFFERS: usize = 4;

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

/// What the reader thread reports once the stored bytes are all read.
struct Stored {
    bytes: u64,
    digest: Option<Digest>,
}

/// The decoded bytes of one layer, readable as a stream. Errors from the
/// background threads (I/O, corrupt data, digest mismatch) surface as read
/// errors carrying the producing thread's [`crate::Error`].
pub struct DecodedLayer {
    decoded: ChunkReader<LayerSummary>,
    /// The sniffed compression, set before the first decoded byte is sent.
    compression: Arc<OnceLock<Compression>>,
}

impl DecodedLayer {
    /// Starts reading and decoding `layer` on new threads.
    pub fn spawn(layer: &LayerRef) -> Self {
        DecodedLayer::spawn_with(layer, None, None)
    }

    /// Like [`DecodedLayer::spawn`], adding the stored bytes to `counter` as
    /// they are read, and running ahead of the reader by more than a few
    /// chunks when `budget` has buffers to spare.
    pub fn spawn_with(
        layer: &LayerRef,
        counter: Option<ByteCounter>,
        budget: Option<Budget>,
    ) -> Self {
        DecodedLayer::spawn_gated(layer, counter, budget, None)
    }

    /// Like [`DecodedLayer::spawn_with`], the reader thread first passing
    /// `gate` (waiting until the layer's bytes are there).
    pub(crate) fn spawn_gated(
        layer: &LayerRef,
        counter: Option<ByteCounter>,
        budget: Option<Budget>,
        gate: Option<Gate>,
    ) -> Self {
        let (stored_tx, stored_rx) = chunk_pipe(STORED_CHUNK, STORED_BUFFERS);
        let (decoded_tx, decoded_rx) = chunk_pipe_on_budget(DECODED_CHUNK, DECODED_BUFFERS, budget);
        let compression = Arc::new(OnceLock::new());
        let for_reader = layer.clone();
        std::thread::spawn(move || read_stored(&for_reader, gate, counter, stored_tx));
        let for_decoder = layer.clone();
        let sniffed = Arc::clone(&compression);
        std::thread::spawn(move || decode(&for_decoder, &sniffed, stored_rx, decoded_tx));
        DecodedLayer {
            decoded: decoded_rx,
            compression,
        }
    }

    /// Bytes of decoded data consumed so far.
    pub fn position(&self) -> u64 {
        self.decoded.position()
    }

    /// The compression the layer's bytes turned out to have, once any
    /// decoded byte (or the end) has been read.
    pub fn compression(&self) -> Option<Compression> {
        self.compression.get().copied()
    }

    /// The tar block the last consumed byte belongs to: its offset in the
    /// decoded stream and the bytes of it consumed (fewer than a block if
    /// the data ends inside it). Where a tar reader stopped on a bad header,
    /// this is that header. `None` before the first byte.
    pub fn last_block(&self) -> Option<(u64, &[u8])> {
        let position = self.position();
        let start = position.checked_sub(1)? / crate::tar::BLOCK as u64 * crate::tar::BLOCK as u64;
        let bytes = self.decoded.consumed_tail((position - start) as usize)?;
        Some((start, bytes))
    }

    /// Reads (and discards) the rest of the layer, then reports how the
    /// whole blob checked out. The digest is only known once every byte has
    /// been read, so this is what makes a layer count as verified.
    pub fn finish(self) -> Result<LayerSummary> {
        self.decoded.finish()
    }
}

impl Read for DecodedLayer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoded.read(buf)
    }
}

/// Forward-only seeking, so that `tar` skips unwanted entry data without
/// copying it. Seeking past the end is an error: the data is truncated.
impl Seek for DecodedLayer {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let position = self.decoded.position();
        let target = match pos {
            SeekFrom::Current(delta) if delta >= 0 => position + delta as u64,
            SeekFrom::Start(offset) if offset >= position => offset,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "decoded layers only seek forward",
                ))
            }
        };
        let wanted = target - position;
        if self.decoded.skip(wanted)? < wanted {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar data ends inside an entry",
            ));
        }
        Ok(target)
    }
}

/// Opens a layer's bytes: the whole file, or its byte range. A layer
/// served through a named pipe is waited for only while its server lives.
fn open_stored(layer: &LayerRef) -> Result<Box<dyn Read + Send>> {
    let mut file = match &layer.server {
        Some(server) => crate::blob::served::open_served(&layer.path, server),
        None => File::open(&layer.path),
    }
    .context("cannot open")?;
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

/// The reader thread: stored bytes in chunks, hashed and counted on the
/// way.
fn read_stored(
    layer: &LayerRef,
    gate: Option<Gate>,
    counter: Option<ByteCounter>,
    mut out: ChunkWriter<Stored>,
) {
    let result = (|| {
        if let Some(gate) = gate {
            gate()?;
        }
        let mut input = open_stored(layer)?;
        let mut hasher = layer.digest.as_ref().map(|d| Hasher::new(d.algorithm()));
        let mut bytes = 0;
        loop {
            let mut buf = out.buffer().map_err(|Closed| err!("the decoder stopped"))?;
            let n = fill(&mut *input, &mut buf, out.chunk_size()).context("cannot read")?;
            if n == 0 {
                break;
            }
            if let Some(hasher) = &mut hasher {
                hasher.update(&buf);
            }
            bytes += n as u64;
            if let Some(counter) = &counter {
                counter.add(n as u64);
            }
            out.send(buf)
                .map_err(|Closed| err!("the decoder stopped"))?;
        }
        let expected = layer.range.map(|(_, size)| size).or(layer.size);
        match expected {
            Some(size) if bytes < size => {
                bail!("truncated: the layer ends after {bytes} of its {size} bytes")
            }
            Some(size) if bytes > size => {
                bail!("the layer has {bytes} bytes, more than the {size} the layer list says")
            }
            _ => {}
        }
        Ok(Stored {
            bytes,
            digest: hasher.map(Hasher::finish),
        })
    })();
    out.finish(result);
}

/// The decoder thread: stored chunks in, decoded chunks out; checks the
/// digest once the reader has seen every stored byte.
fn decode(
    layer: &LayerRef,
    sniffed: &OnceLock<Compression>,
    mut stored: ChunkReader<Stored>,
    mut out: ChunkWriter<LayerSummary>,
) {
    let result = (|| {
        let compression = Compression::sniff(stored.fill_buf().map_err(crate::error::Error::from)?);
        let _ = sniffed.set(compression);
        let mut decoder = compression
            .decoder(&mut stored)
            .with_context(|| format!("{compression} decoder"))?;
        loop {
            let mut buf = out
                .buffer()
                .map_err(|Closed| err!("the merge stopped reading"))?;
            let n = fill(&mut *decoder, &mut buf, DECODED_CHUNK)
                .map_err(|e| stored_or_decode_error(e, compression))?;
            if n == 0 {
                break;
            }
            out.send(buf)
                .map_err(|Closed| err!("the merge stopped reading"))?;
        }
        drop(decoder);
        // Trailing bytes the decoder did not need still count for the digest.
        let read = stored.finish()?;
        if let (Some(expected), Some(actual)) = (&layer.digest, &read.digest) {
            if expected != actual {
                let kind = ErrorKind::DigestMismatch {
                    blob: layer.describe(),
                    expected: expected.clone(),
                    actual: actual.clone(),
                };
                bail!(
                    kind = kind,
                    "digest mismatch: expected {expected}, content has {actual}"
                );
            }
        }
        Ok(LayerSummary {
            compression,
            stored_bytes: read.bytes,
            digest: read.digest,
        })
    })();
    out.finish(result);
}

/// A read error from the stored stream speaks for itself; anything else
/// the decoder reports means the compressed data is bad.
fn stored_or_decode_error(err: io::Error, compression: Compression) -> crate::error::Error {
    if crate::error::carries_ours(&err) {
        crate::error::Error::from(err)
    } else {
        crate::error::Error::from(err)
            .with_kind(ErrorKind::Invalid)
            .context(format!("corrupt or truncated {compression} data"))
    }
}

/// Reads into `buf` until it holds `size` bytes or the input ends. A
/// recycled buffer already has the length, so nothing is zeroed twice.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, size: usize) -> io::Result<usize> {
    if buf.len() < size {
        buf.resize(size, 0);
    }
    let mut filled = 0;
    while filled < size {
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

/// What a layer's reader thread passes before it opens the layer: a wait
/// for a layer that is still arriving (see [`crate::merge::feed`]).
pub(crate) type Gate = Box<dyn FnOnce() -> Result<()> + Send>;

/// Hands out decoded layers in a fixed order while keeping the next few
/// decoding in the background.
pub struct Prefetcher {
    pending: VecDeque<(LayerRef, Option<Gate>)>,
    started: VecDeque<DecodedLayer>,
    depth: usize,
    counter: Option<ByteCounter>,
    budget: Option<Budget>,
}

impl Prefetcher {
    /// Decodes `layers` in the given order, at most `depth` at a time (at
    /// least one), each layer's reader thread passing its gate, if it has
    /// one, before it opens the layer.
    pub(crate) fn gated(
        layers: impl IntoIterator<Item = (LayerRef, Option<Gate>)>,
        depth: usize,
    ) -> Self {
        Prefetcher {
            pending: layers.into_iter().collect(),
            started: VecDeque::new(),
            depth: depth.max(1),
            counter: None,
            budget: None,
        }
    }

    /// Lets the layers decode ahead into up to `bytes` of buffers beyond
    /// their own few, shared between them.
    pub fn read_ahead(mut self, bytes: usize) -> Self {
        let buffers = bytes / DECODED_CHUNK;
        self.budget = (buffers > 0).then(|| Budget::new(buffers));
        self
    }

    /// Adds the stored bytes of every layer to `counter` as they are read.
    pub fn counting(mut self, counter: Option<ByteCounter>) -> Self {
        self.counter = counter;
        self
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
            let Some((layer, gate)) = self.pending.pop_front() else {
                break;
            };
            let decoded = DecodedLayer::spawn_gated(
                &layer,
                self.counter.clone(),
                self.budget.clone(),
                gate,
            );
            self.started.push_back(decoded);
        }
    }
}
