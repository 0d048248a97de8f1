//! The fast engine: ISA-L's `isal_inflate`, one member at a time, fed
//! straight from the input's buffer.
//!
//! Not isal-rs's `read::GzipDecoder`: it reads its input through `Read`
//! into a buffer of its own, so what follows a member (more members, zero
//! padding or garbage) is out of reach, and it cannot tell a stream cut
//! short from one that ended. Driving `isal_inflate` over `BufRead` keeps
//! both exact: ISA-L reports how much of the buffer it used, and a member
//! counts as read only when ISA-L has checked its CRC-32 and length.
//!
//! The member header is read by [`super::header`], and ISA-L runs in its
//! `ISAL_GZIP_NO_HDR_VER` mode (deflate data, then the trailer it checks).

use super::{after_member, header, AfterMember};
use isal_sys::igzip_lib as ffi;
use std::io::{self, BufRead, Read};

/// Decodes every gzip member of a stream with ISA-L.
pub struct IsalMembers<R: BufRead> {
    input: R,
    /// ISA-L's state: about 66 KiB (its own history and output buffers),
    /// boxed so that moving the reader moves a pointer.
    state: Box<ffi::inflate_state>,
    phase: Phase,
}

/// Where in the stream the reader is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At the start of a member.
    Header,
    /// In a member's deflate data or trailer.
    InMember,
    /// A member has ended, trailer checked; what follows is not yet known.
    BetweenMembers,
    /// The stream has ended.
    Ended,
}

impl<R: BufRead> IsalMembers<R> {
    /// Starts decoding at the first member of `input`.
    pub fn new(input: R) -> Self {
        // SAFETY: inflate_state is a plain C struct (integers, arrays and
        // raw pointers), for which all-zero bytes are a valid value;
        // isal_inflate_init then sets it up as ISA-L wants.
        let mut state = Box::new(unsafe { std::mem::zeroed::<ffi::inflate_state>() });
        // SAFETY: `state` points to a live, writable inflate_state.
        unsafe { ffi::isal_inflate_init(&mut *state) };
        IsalMembers {
            input,
            state,
            phase: Phase::Header,
        }
    }

    /// Runs `isal_inflate` once over the input's buffer into `out`, and
    /// returns the bytes it wrote.
    fn inflate_once(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let input = self.input.fill_buf()?;
        if input.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the gzip data ends inside a member",
            ));
        }
        // ISA-L counts in u32; a shorter slice is simply used in turns.
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = out.len().min(u32::MAX as usize);
        let state = &mut *self.state;
        // ISA-L only reads through next_in, whatever the pointer's type.
        state.next_in = input.as_ptr().cast_mut();
        state.avail_in = in_len as u32;
        state.next_out = out.as_mut_ptr();
        state.avail_out = out_len as u32;
        // SAFETY: next_in/avail_in describe `input` and next_out/avail_out
        // describe `out`, both live and unaliased for the whole call; ISA-L
        // reads and writes only within them and its own state.
        let code = unsafe { ffi::isal_inflate(state) };
        let left = state.avail_in as usize;
        let unwritten = state.avail_out as usize;
        // No pointer into buffers this call does not own outlives it.
        state.next_in = std::ptr::null_mut();
        state.avail_in = 0;
        state.next_out = std::ptr::null_mut();
        state.avail_out = 0;
        if code < 0 {
            // After an error ISA-L's counts need not add up; the stream is
            // dead anyway.
            return Err(io::Error::new(io::ErrorKind::InvalidData, describe(code)));
        }
        let (Some(consumed), Some(produced)) =
            (in_len.checked_sub(left), out_len.checked_sub(unwritten))
        else {
            return Err(io::Error::other(
                "ISA-L reported more room than it was given",
            ));
        };
        self.input.consume(consumed);
        if state.block_state == ffi::isal_block_state_ISAL_BLOCK_FINISH {
            self.phase = Phase::BetweenMembers;
        } else if consumed == 0 && produced == 0 {
            // ISA-L buffers any input it cannot decode yet, so a call that
            // takes nothing and gives nothing would repeat forever.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the gzip decoder made no progress",
            ));
        }
        Ok(produced)
    }

    /// Reads a member's header and readies ISA-L for its deflate data.
    fn start_member(&mut self) -> io::Result<()> {
        header::skip_header(&mut self.input)?;
        // SAFETY: `state` points to a live inflate_state.
        unsafe { ffi::isal_inflate_reset(&mut *self.state) };
        self.state.crc_flag = ffi::ISAL_GZIP_NO_HDR_VER;
        self.phase = Phase::InMember;
        Ok(())
    }

    /// At the end of a member: another one follows, or the stream ends.
    fn next_member(&mut self) -> io::Result<()> {
        self.phase = match after_member(&mut self.input)? {
            AfterMember::Another => Phase::Header,
            AfterMember::End => Phase::Ended,
        };
        Ok(())
    }
}

impl<R: BufRead> Read for IsalMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.phase {
                Phase::Ended => return Ok(0),
                Phase::Header => self.start_member()?,
                Phase::BetweenMembers => self.next_member()?,
                Phase::InMember => {
                    let n = self.inflate_once(buf)?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

/// ISA-L's error codes in words.
fn describe(code: i32) -> String {
    match code {
        ffi::ISAL_INVALID_BLOCK => "invalid deflate block".into(),
        ffi::ISAL_INVALID_SYMBOL => "invalid deflate symbol".into(),
        ffi::ISAL_INVALID_LOOKBACK => {
            "invalid deflate distance (before the start of the data)".into()
        }
        ffi::ISAL_INVALID_WRAPPER => "invalid gzip header".into(),
        ffi::ISAL_UNSUPPORTED_METHOD => "unsupported gzip compression method".into(),
        ffi::ISAL_INCORRECT_CHECKSUM => "gzip checksum mismatch (CRC-32 or length)".into(),
        other => format!("ISA-L inflate error {other}"),
    }
}
