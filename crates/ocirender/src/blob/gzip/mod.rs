//! gzip layers: every member of a stream, through the fastest inflate this
//! build has.
//!
//! Layers are often several gzip members end to end (eStargz is a chain of
//! them, and so is anything appended to with `cat`), and some registries and
//! tape-minded tools pad the last one with zero bytes. Both are read to the
//! end; any other data after the last member is an error rather than
//! silently ignored, since it means the blob is not what its producer wrote.
//!
//! Two inflate engines implement that policy over the same [`after_member`]
//! rule:
//!
//! - [`isal`]: Intel's ISA-L (`igzip`), about 1.5 x faster than zlib-rs on
//!   real layers. Built from source by `isal-sys` when the `isal` cargo
//!   feature is on (the default; it needs nasm and autotools at build time).
//! - [`zlib_rs`]: flate2 over zlib-rs, pure Rust, for builds without ISA-L.
//!
//! [`decoder`] picks the one this build has; `inflate_engine!` names it
//! for `--version` (see [`crate::BUILD`]).

use std::io::{self, BufRead, Read};

#[cfg(feature = "isal")]
mod header;
#[cfg(feature = "isal")]
pub mod isal;
// The portable engine is dead code in an ISA-L build but for the tests,
// which check both engines agree.
#[cfg_attr(feature = "isal", allow(dead_code))]
pub mod zlib_rs;

/// The first byte of every gzip member.
pub(crate) const MAGIC: &[u8] = &[0x1f, 0x8b];

/// The name of the inflate engine this build has, as a literal (for
/// `concat!`, see [`crate::BUILD`]).
#[cfg(feature = "isal")]
macro_rules! inflate_engine {
    () => {
        "ISA-L"
    };
}
/// The name of the inflate engine this build has, as a literal (for
/// `concat!`, see [`crate::BUILD`]).
#[cfg(not(feature = "isal"))]
macro_rules! inflate_engine {
    () => {
        "zlib-rs"
    };
}
pub(crate) use inflate_engine;

/// Decodes every gzip member of `input`, with the engine
/// `inflate_engine!` names.
pub fn decoder<'a, R: BufRead + 'a>(input: R) -> Box<dyn Read + 'a> {
    #[cfg(feature = "isal")]
    return Box::new(isal::IsalMembers::new(input));
    #[cfg(not(feature = "isal"))]
    return Box::new(zlib_rs::ZlibRsMembers::new(input));
}

/// What follows the end of a gzip member.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterMember {
    /// Another member starts here.
    Another,
    /// The stream ends (possibly after zero padding, now consumed).
    End,
}

/// Looks at what follows a member: another member, the end (after any zero
/// padding), or trailing data, which is an error.
pub(crate) fn after_member<R: BufRead>(input: &mut R) -> io::Result<AfterMember> {
    let head = input.fill_buf()?;
    match head.first() {
        None => Ok(AfterMember::End),
        Some(&byte) if byte == MAGIC[0] => Ok(AfterMember::Another),
        Some(0) => {
            expect_zeros_to_end(input)?;
            Ok(AfterMember::End)
        }
        Some(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected data after the end of the gzip stream",
        )),
    }
}

fn expect_zeros_to_end<R: BufRead>(input: &mut R) -> io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        if chunk.iter().any(|&b| b != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected data after the zero padding that ends the gzip stream",
            ));
        }
        let n = chunk.len();
        input.consume(n);
    }
}

#[cfg(test)]
mod tests;
