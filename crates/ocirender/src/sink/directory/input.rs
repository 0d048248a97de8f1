//! The tar stream being unpacked, shared by the tar reader and the data
//! copier so that large file contents can bypass user space.
//!
//! Headers are parsed by the `tar` crate, reading through a buffer. A
//! large file's data, though, goes from the input descriptor straight into
//! the new file: `splice` when the input is a pipe (the usual
//! `oci-merge | tar2dir`), `copy_file_range` when it is a file, a plain
//! buffered copy otherwise. Bytes taken that way are counted, and the next
//! forward seek the tar reader makes to reach the following header is
//! shortened by them, which keeps its view of the stream position right.

use crate::error::Error;
use crate::sink::wrong_input::FirstBlock;
use crate::tar::BLOCK;
use rustix::io::Errno;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::rc::Rc;

/// Files at least this large are copied by the kernel.
pub const DIRECT_COPY_MIN: u64 = 64 << 10;
const INPUT_BUFFER: usize = 1 << 20;

struct State {
    reader: BufReader<File>,
    /// Every byte consumed, however.
    position: u64,
    /// Bytes consumed by direct copies since the tar reader last seeked.
    bypassed: u64,
    hit_eof: bool,
    /// `None` until a direct copy was tried; then whether the kernel can do it.
    direct: Option<Direct>,
    /// To tell what a stream that is no tar is instead.
    first_block: FirstBlock,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direct {
    Splice,
    CopyFileRange,
    Unavailable,
}

/// A cloneable handle on the input stream.
#[derive(Clone)]
pub struct SharedInput(Rc<RefCell<State>>);

impl SharedInput {
    /// Wraps the input file (usually a duplicate of stdin).
    pub fn new(file: File) -> Self {
        SharedInput(Rc::new(RefCell::new(State {
            reader: BufReader::with_capacity(INPUT_BUFFER, file),
            position: 0,
            bypassed: 0,
            hit_eof: false,
            direct: None,
            first_block: FirstBlock::default(),
        })))
    }

    /// True if some read found the end of the input. The tar reader stops
    /// either at a zero block (the end marker) or at the end of the input:
    /// only the first is a complete archive.
    pub fn hit_eof(&self) -> bool {
        self.0.borrow().hit_eof
    }

    /// The error to report instead of `err` when the stream failed before
    /// its first entry: what it is instead of a tar, if that shows.
    pub fn explain_start(&self, err: Error) -> Error {
        self.0.borrow().first_block.explain(err)
    }

    /// Reads one block and tells whether it is all zeros (the second half
    /// of the end marker); `false` at the end of the input.
    pub fn zero_block_follows(&self) -> io::Result<bool> {
        let mut block = [0u8; BLOCK];
        let mut state = self.0.borrow_mut();
        match state.reader.read_exact(&mut block) {
            Ok(()) => {
                state.position += BLOCK as u64;
                Ok(block.iter().all(|&b| b == 0))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads and discards the rest of the input (record padding).
    pub fn drain(&self) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        io::copy(&mut state.reader, &mut io::sink()).map(drop)
    }

    /// Copies the next `size` bytes of the input into `out` without
    /// passing them through user space where the kernel allows. Fails if
    /// the input ends first.
    pub fn copy_direct(&self, out: &mut File, size: u64) -> io::Result<()> {
        let mut state = self.0.borrow_mut();
        let mut left = size;
        // What the buffer already holds goes first.
        let buffered = state.reader.buffer();
        let n = buffered.len().min(left as usize);
        out.write_all(&buffered[..n])?;
        state.reader.consume(n);
        state.account(n as u64);
        left -= n as u64;
        while left > 0 {
            let n = match state.direct {
                Some(Direct::Unavailable) => state.copy_buffered(out, left)?,
                _ => match state.copy_kernel(out, left) {
                    Ok(n) => n,
                    Err(
                        Errno::INVAL | Errno::NOSYS | Errno::XDEV | Errno::OPNOTSUPP | Errno::BADF,
                    ) if state.direct.is_none() => {
                        state.direct = Some(Direct::Unavailable);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            if n == 0 {
                state.hit_eof = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("entry data ends after {} of {size} bytes", size - left),
                ));
            }
            state.account(n as u64);
            left -= n as u64;
        }
        Ok(())
    }
}

impl State {
    fn account(&mut self, n: u64) {
        self.position += n;
        self.bypassed += n;
    }

    /// One `splice` or `copy_file_range` call; learns which one works.
    fn copy_kernel(&mut self, out: &mut File, left: u64) -> Result<usize, Errno> {
        let chunk = left.min(1 << 30) as usize;
        let input = self.reader.get_ref().as_fd();
        let try_splice = matches!(self.direct, None | Some(Direct::Splice));
        if try_splice {
            match rustix::pipe::splice(
                input,
                None,
                out.as_fd(),
                None,
                chunk,
                rustix::pipe::SpliceFlags::MORE,
            ) {
                Ok(n) => {
                    self.direct = Some(Direct::Splice);
                    return Ok(n);
                }
                Err(Errno::INVAL) if self.direct.is_none() => {} // not a pipe: try the next
                Err(e) => return Err(e),
            }
        }
        let n = rustix::fs::copy_file_range(input, None, out.as_fd(), None, chunk)?;
        self.direct = Some(Direct::CopyFileRange);
        Ok(n)
    }

    /// The fallback: through the buffer.
    fn copy_buffered(&mut self, out: &mut File, left: u64) -> io::Result<usize> {
        let available = self.reader.fill_buf()?;
        let n = available.len().min(left as usize);
        out.write_all(&available[..n])?;
        self.reader.consume(n);
        Ok(n)
    }
}

impl Read for SharedInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.0.borrow_mut();
        let n = state.reader.read(buf)?;
        state.first_block.record(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            state.hit_eof = true;
        }
        state.position += n as u64;
        Ok(n)
    }
}

/// The tar reader only seeks forward, to skip to the next header; bytes it
/// did not see because they were copied directly are already behind us.
impl Seek for SharedInput {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let mut state = self.0.borrow_mut();
        let SeekFrom::Current(delta) = pos else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the input only seeks forward",
            ));
        };
        let delta = u64::try_from(delta).map_err(|_| {
            io::Error::new(io::ErrorKind::Unsupported, "the input only seeks forward")
        })?;
        let skip = delta
            .checked_sub(std::mem::take(&mut state.bypassed))
            .ok_or_else(|| {
                io::Error::other("tar reader and direct copies disagree on the position")
            })?;
        let skipped = io::copy(&mut (&mut state.reader).take(skip), &mut io::sink())?;
        state.position += skipped;
        if skipped < skip {
            state.hit_eof = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar data ends inside an entry",
            ));
        }
        Ok(state.position)
    }
}
