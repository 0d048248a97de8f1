//! Tar entries in and out. One reader ([`entry::read_member`] over
//! `tar::Archive`, with [`sparse`] members expanded) serves the merge,
//! `tar2dir` and the image builders; one [`writer`] writes the merged stream
//! and what `tar2sqfs` and `tar2erofs` [`forward`]; [`path`] turns entry
//! names into canonical paths; [`limits`] bounds what a header may describe.

pub mod entry;
pub mod held_records;
pub mod limits;
pub mod path;
pub mod path_tree;
pub mod sparse;
pub mod writer;

/// The tar block size: headers are one block, data is padded to whole
/// blocks, and the end-of-archive marker is two zero blocks.
pub const BLOCK: usize = 512;

/// Why `block` is not a tar header, in words; `None` if it is one (or the
/// all-zero block that ends an archive). The checks are the ones the `tar`
/// crate makes before it trusts a header: a whole block, and a checksum
/// field of octal digits that matches the block. When they fail, its errors
/// quote the raw bytes it tried to parse, which say nothing to a person who
/// passed a file that is not a tar at all.
pub fn header_problem(block: &[u8]) -> Option<String> {
    if block.len() < BLOCK {
        return Some(format!("the data ends {} bytes into it", block.len()));
    }
    let block = &block[..BLOCK];
    if block.iter().all(|&b| b == 0) {
        return None;
    }
    let field = &block[148..156];
    let field = field.split(|&b| b == 0).next().unwrap_or_default();
    let recorded = std::str::from_utf8(field)
        .ok()
        .and_then(|text| u32::from_str_radix(text.trim(), 8).ok());
    let Some(recorded) = recorded else {
        return Some("its checksum field is not an octal number".to_owned());
    };
    let actual = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    (recorded != actual).then(|| "its checksum does not match its contents".to_owned())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_problems_in_words() {
        let tar = testkit::Layer::new().file("etc/hostname", b"x\n").tar();
        assert_eq!(header_problem(&tar[..BLOCK]), None);
        assert_eq!(header_problem(&[0; BLOCK]), None);
        assert_eq!(
            header_problem(&tar[..100]).as_deref(),
            Some("the data ends 100 bytes into it")
        );
        assert_eq!(
            header_problem(b"hello").as_deref(),
            Some("the data ends 5 bytes into it")
        );
        let mut bad = tar[..BLOCK].to_vec();
        bad[0] ^= 1;
        assert_eq!(
            header_problem(&bad).as_deref(),
            Some("its checksum does not match its contents")
        );
        bad[150] = 0xff;
        assert_eq!(
            header_problem(&bad).as_deref(),
            Some("its checksum field is not an octal number")
        );
        assert!(header_problem(&[b'x'; BLOCK]).is_some());
    }
}
