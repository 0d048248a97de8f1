//! The portable engine: flate2's gzip decoder over zlib-rs, one member at a
//! time.

use super::{after_member, AfterMember};
use flate2::bufread::GzDecoder;
use std::io::{self, BufRead, Read};

/// Decodes every gzip member of a stream with flate2 (zlib-rs).
pub struct ZlibRsMembers<R: BufRead> {
    /// The member being read; `None` once the stream has ended.
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> ZlibRsMembers<R> {
    /// Starts decoding at the first member of `input`.
    pub fn new(input: R) -> Self {
        ZlibRsMembers {
            member: Some(GzDecoder::new(input)),
        }
    }

    /// Called at the end of a member: starts the next one, or finishes.
    fn next_member(&mut self) -> io::Result<bool> {
        let Some(member) = self.member.take() else {
            return Ok(false);
        };
        let mut input = member.into_inner();
        if after_member(&mut input)? == AfterMember::End {
            return Ok(false);
        }
        self.member = Some(GzDecoder::new(input));
        Ok(true)
    }
}

impl<R: BufRead> Read for ZlibRsMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = &mut self.member else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.next_member()? {
                return Ok(0);
            }
        }
    }
}
