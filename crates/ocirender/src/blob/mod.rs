//! Reading one layer blob: where it is ([`layer_ref`]), what compression its
//! bytes use ([`compression`]; gzip has its own engines, [`gzip`]), decoding it on background threads into
//! recycled buffers ([`decode`], [`chunk_pipe`]), and checking it against its
//! digest while it streams ([`digest`]).

pub mod chunk_pipe;
pub mod counter;
pub mod compression;
pub mod decode;
pub mod digest;
pub mod gzip;
pub mod layer_ref;
pub mod served;
