//! What a sink says when its stdin is not a tar stream but what users
//! pipe in by mistake: the layer list of `oci-layers` (oci-merge left
//! out), a compressed tar, or nothing at all (the program before it
//! failed). The tar reader would only report a bad first header, quoting
//! its bytes; this looks at the first block it was given and names the
//! mistake.

use crate::blob::compression::Compression;
use crate::error::{Error, ErrorKind, InputMistake};
use crate::tar::BLOCK;

/// The first block of a stream, kept as it is read, to explain a stream
/// that fails before its first entry.
#[derive(Debug, Default)]
pub struct FirstBlock {
    bytes: Vec<u8>,
}

impl FirstBlock {
    /// Keeps what of `read` (the next bytes of the stream) falls in the
    /// first block.
    pub fn record(&mut self, read: &[u8]) {
        let room = BLOCK.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&read[..room.min(read.len())]);
    }

    /// The error to report instead of `err`, when the stream's start shows
    /// a mistake; `err` otherwise (also for an empty stream: the sinks'
    /// own message, a stream without its end marker, already says its
    /// producer may have failed).
    pub fn explain(&self, err: Error) -> Error {
        match mistake(&self.bytes) {
            Some(InputMistake::Empty) | None => err,
            Some(mistake) => wrong_input(mistake),
        }
    }
}

/// What the first bytes of a stream that is no tar show it to be.
pub fn mistake(head: &[u8]) -> Option<InputMistake> {
    if head.is_empty() {
        return Some(InputMistake::Empty);
    }
    match Compression::sniff(head) {
        Compression::None if is_text(head) => Some(InputMistake::LayerList),
        Compression::None => None,
        compression => Some(InputMistake::Compressed(compression.to_string())),
    }
}

/// Lines of text: no NUL (every tar header has one in its first block)
/// nor other control character but tab and line ends.
fn is_text(head: &[u8]) -> bool {
    head.iter()
        .all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || !b.is_ascii_control())
}

/// The error for `mistake`, in words that name stdin.
pub fn wrong_input(mistake: InputMistake) -> Error {
    let message = match &mistake {
        InputMistake::Empty => {
            "stdin is empty (if a program before it in the pipeline failed, its message says why)"
                .to_owned()
        }
        InputMistake::LayerList => {
            "stdin is a layer list, not a tar: put oci-merge between them".to_owned()
        }
        InputMistake::Compressed(format) => {
            format!("stdin is {format}-compressed, not a tar: decompress it first")
        }
        InputMistake::SourceFailed => "the program before it in the pipeline failed".to_owned(),
    };
    Error::new(ErrorKind::WrongInput(mistake), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_blocks_name_their_mistake() {
        let mut header = [0u8; BLOCK];
        header[..5].copy_from_slice(b"hello");
        let cases: [(&[u8], Option<InputMistake>); 6] = [
            (b"", Some(InputMistake::Empty)),
            (
                b"/img/blobs/sha256/4f1c\n/img.tar\toffset=1536\n#end\n",
                Some(InputMistake::LayerList),
            ),
            (
                &[0x1f, 0x8b, 8, 0, 0, 0],
                Some(InputMistake::Compressed("gzip".into())),
            ),
            (
                &[0x28, 0xb5, 0x2f, 0xfd, 0, 0],
                Some(InputMistake::Compressed("zstd".into())),
            ),
            (&header, None),
            (&[0xff, 0x00, 0x12], None),
        ];
        for (head, expected) in cases {
            assert_eq!(mistake(head), expected, "{head:?}");
        }
    }

    #[test]
    fn only_the_first_block_is_kept() {
        let mut first = FirstBlock::default();
        first.record(&[b'a'; 300]);
        first.record(&[0; 300]);
        first.record(&[0; 10]);
        assert_eq!(first.bytes.len(), BLOCK);
        assert!(first.bytes[..300].iter().all(|&b| b == b'a'));
    }
}
