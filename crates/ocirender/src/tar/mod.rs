//! Tar entries in and out. One reader ([`entry::read_member`] over
//! `tar::Archive`, with [`sparse`] members expanded) serves the merge,
//! `tar2dir` and `tar2sqfs`; one [`writer`] writes the merged stream and what
//! `tar2sqfs` [`forward`]s; [`path`] turns entry names into canonical paths.

pub mod entry;
pub mod forward;
pub mod path;
pub mod sparse;
pub mod writer;

/// The tar block size: headers are one block, data is padded to whole
/// blocks, and the end-of-archive marker is two zero blocks.
pub const BLOCK: usize = 512;

/// Reads entry data into `buf`, retrying when a signal interrupts. Data
/// that ends before `size` bytes (`done` read so far) is an error saying so:
/// a tar stream cut inside an entry.
pub fn read_entry_data(
    data: &mut dyn std::io::Read,
    buf: &mut [u8],
    done: u64,
    size: u64,
) -> std::io::Result<usize> {
    use std::io::ErrorKind;
    loop {
        match data.read(buf) {
            Ok(0) if !buf.is_empty() => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("entry data ends after {done} of {size} bytes"),
                ))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
