//! Layer references: the one-per-line contract between `oci-layers` and
//! `oci-merge`.
//!
//! A line is either a plain path to a blob file, or a path followed by
//! tab-separated `key=value` fields:
//!
//! ```text
//! /img/blobs/sha256/4f1c…9a
//! /img.tar<TAB>offset=1536<TAB>size=29150720<TAB>digest=sha256:4f1c…9a
//! /tmp/oci-fetch.x/layer-003<TAB>size=29150720<TAB>digest=sha256:4f1c…9a<TAB>server=/tmp/oci-fetch.x/session
//! ```
//!
//! * `offset=N` and `size=N`: the layer is the byte range `[N, N+size)` of
//!   the file, e.g. a layer stored inside a `docker save` or `oci-archive`
//!   tar. Reading a range avoids copying the archive.
//! * `size=N` alone: the whole file is the layer, and it is `N` bytes long.
//!   For a file that cannot tell its length, such as the named pipes
//!   `oci-fetch` streams through, so that `oci-merge` can show progress
//!   against a total; the bytes read must then be exactly `N`. (`offset`
//!   without `size` is an error.)
//! * `digest=ALG:HEX`: the digest the layer's bytes must have. Without it, a
//!   path shaped like a layout blob (`.../sha256/<hex>`) declares its own.
//! * `server=PATH`: the layer is a named pipe served by a running process
//!   (`oci-fetch`) that holds the named pipe PATH open while it lives; the
//!   reader waits for the layer only as long as it does (see
//!   [`crate::blob::served`]).
//!
//! Paths are bytes and may hold anything but a newline or a tab; those two
//! cannot be represented and are refused when a line is written.

use crate::blob::digest::Digest;
use crate::error::{bail, Context, Error, ErrorKind, InputMistake, Result};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Where a layer's bytes are and what they must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The file holding the layer.
    pub path: PathBuf,
    /// A byte range of that file (offset, length); `None` for the whole file.
    pub range: Option<(u64, u64)>,
    /// The length of the whole file, declared (`size=N` without `offset`)
    /// for a file that cannot tell, such as a named pipe. Reading more or
    /// fewer bytes is an error. `None` with a range.
    pub size: Option<u64>,
    /// The digest the bytes must have, when known.
    pub digest: Option<Digest>,
    /// The session pipe of the process serving the layer through a named
    /// pipe, if one does.
    pub server: Option<PathBuf>,
}

impl LayerRef {
    /// A reference to a whole file whose digest, if any, comes from its name.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let digest = Digest::from_blob_path(&path);
        LayerRef {
            path,
            range: None,
            size: None,
            digest,
            server: None,
        }
    }

    /// Parses one input line (without its newline).
    pub fn parse_line(line: &[u8]) -> Result<Self> {
        let mut fields = line.split(|&b| b == b'\t');
        let path = fields.next().unwrap_or_default();
        if path.is_empty() {
            bail!("empty layer path");
        }
        if path == END_OF_LIST || path == SOURCE_FAILED {
            bail!(
                "a layer path cannot be {:?}, a marker line (write ./{0})",
                String::from_utf8_lossy(path)
            );
        }
        let mut layer = LayerRef::file(PathBuf::from(OsStr::from_bytes(path)));
        let (mut offset, mut size) = (None, None);
        for field in fields {
            let (key, value) = split_field(field)?;
            if key == "server" {
                layer.server = Some(PathBuf::from(OsStr::from_bytes(value)));
                continue;
            }
            let value =
                std::str::from_utf8(value).with_context(|| format!("field {key:?} is not text"))?;
            match key {
                "offset" => offset = Some(parse_number("offset", value)?),
                "size" => size = Some(parse_number("size", value)?),
                "digest" => layer.digest = Some(value.parse().context("bad digest field")?),
                key => bail!("unknown field {key:?}"),
            }
        }
        match (offset, size) {
            (Some(offset), Some(size)) => {
                offset.checked_add(size).context("byte range overflows")?;
                layer.range = Some((offset, size));
            }
            (None, size) => layer.size = size,
            (Some(_), None) => bail!("`offset` needs a `size`"),
        }
        Ok(layer)
    }

    /// Renders the line `parse_line` reads back. Fails for paths holding a
    /// newline or a tab, and for the path `#end`, which the format cannot
    /// carry.
    pub fn to_line(&self) -> Result<Vec<u8>> {
        let bytes = self.path.as_os_str().as_bytes();
        let server = self.server.as_ref().map(|s| s.as_os_str().as_bytes());
        let unfit = |b: &[u8]| b.iter().any(|&b| b == b'\n' || b == b'\t');
        let marker = bytes == END_OF_LIST || bytes == SOURCE_FAILED;
        if unfit(bytes) || server.is_some_and(unfit) || marker {
            bail!(
                "{}: path contains a newline or tab, which a layer list cannot carry",
                self.path.display()
            );
        }
        let mut fields = String::new();
        if let Some((offset, size)) = self.range {
            write!(fields, "\toffset={offset}\tsize={size}").unwrap();
        } else if let Some(size) = self.size {
            write!(fields, "\tsize={size}").unwrap();
        }
        if let Some(digest) = &self.digest {
            if self.range.is_some() || Digest::from_blob_path(&self.path).as_ref() != Some(digest) {
                write!(fields, "\tdigest={digest}").unwrap();
            }
        }
        let server = server
            .map(|s| [b"\tserver=", s].concat())
            .unwrap_or_default();
        Ok([bytes, fields.as_bytes(), &server].concat())
    }

    /// How many bytes the layer is, as stored, when that is known before
    /// reading it: its range, its declared size, or the length of a
    /// regular file.
    pub fn stored_size(&self) -> Option<u64> {
        if let Some((_, size)) = self.range {
            return Some(size);
        }
        self.size.or_else(|| {
            let meta = std::fs::metadata(&self.path).ok()?;
            meta.is_file().then_some(meta.len())
        })
    }

    /// A short human name for messages: the path, and the range if any.
    pub fn describe(&self) -> String {
        match self.range {
            Some((offset, size)) => format!("{} (bytes {offset}+{size})", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

/// A `key=value` field: the key as text, the value as bytes (a path may
/// be any bytes).
fn split_field(field: &[u8]) -> Result<(&str, &[u8])> {
    let malformed = || {
        format!(
            "malformed field {:?} (expected key=value)",
            String::from_utf8_lossy(field)
        )
    };
    let equals = field
        .iter()
        .position(|&b| b == b'=')
        .with_context(malformed)?;
    let key = std::str::from_utf8(&field[..equals])
        .ok()
        .with_context(malformed)?;
    Ok((key, &field[equals + 1..]))
}

fn parse_number(key: &str, value: &str) -> Result<u64> {
    value
        .parse()
        .with_context(|| format!("bad {key} {value:?}: not a non-negative integer"))
}

/// A line that ends a layer list before the end of its stream. A source
/// that must keep its stdout open after printing the list (`oci-fetch`,
/// which serves the layers it lists, under a wrapper such as `timeout` that
/// holds the pipe too) ends the list with it, so the reader need not wait
/// for an end of file that would come only after the reader is done.
pub const END_OF_LIST: &[u8] = b"#end";

/// The line a source prints instead of (or after part of) its list when
/// it fails: it has said why on its stderr, so the reader fails too
/// without a message of its own, and the pipeline says what went wrong
/// once.
pub const SOURCE_FAILED: &[u8] = b"#failed";

/// Parses a whole layer list: one reference a line; blank lines are
/// ignored; an [`END_OF_LIST`] line ends it.
pub fn parse_list(input: &[u8]) -> Result<Vec<LayerRef>> {
    read_list(input)
}

/// Reads a layer list up to its end of file or its [`END_OF_LIST`] line,
/// whichever comes first; nothing after that line is read.
pub fn read_list(mut input: impl std::io::BufRead) -> Result<Vec<LayerRef>> {
    let mut layers = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read the layer list")?
            == 0
        {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line == END_OF_LIST {
            break;
        }
        if line == SOURCE_FAILED {
            return Err(Error::new(
                ErrorKind::WrongInput(InputMistake::SourceFailed),
                "the program that wrote the layer list failed (its message says why)",
            ));
        }
        if !line.is_empty() {
            layers.push(
                LayerRef::parse_line(&line).with_context(|| format!("layer list line {number}"))?,
            );
        }
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed source's `#failed` line fails the list, as a mistake of
    /// its own kind the reader reports by saying nothing more.
    #[test]
    fn a_failed_line_fails_the_list_and_a_path_cannot_be_a_marker() {
        let err = parse_list(b"/a\n#failed\n").unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::WrongInput(InputMistake::SourceFailed)
        );
        assert!(LayerRef::parse_line(b"#failed").is_err());
        assert!(LayerRef::file("#failed").to_line().is_err());
        assert_eq!(
            LayerRef::parse_line(b"./#failed").unwrap(),
            LayerRef::file("./#failed")
        );
    }

    /// The end-of-list line stops reading: what follows is never looked at,
    /// so a reader need not wait for the stream's end.
    #[test]
    fn an_end_of_list_line_ends_the_list() {
        let layers = parse_list(b"/a\n\n/b\n#end\nnot a line\tbogus=1\n").unwrap();
        assert_eq!(layers, [LayerRef::file("/a"), LayerRef::file("/b")]);
        struct Endless;
        impl std::io::Read for Endless {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                panic!("read past the end-of-list line");
            }
        }
        use std::io::Read as _;
        let input =
            std::io::BufReader::new(std::io::Cursor::new(b"/a\n#end\n".to_vec()).chain(Endless));
        assert_eq!(read_list(input).unwrap(), [LayerRef::file("/a")]);
    }

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn plain_path_takes_digest_from_layout_name() {
        let l = LayerRef::parse_line(format!("/i/blobs/sha256/{HEX}").as_bytes()).unwrap();
        assert_eq!(l.digest.unwrap().hex(), HEX);
        assert_eq!(l.range, None);
        let l = LayerRef::parse_line(b"relative/layer.tar").unwrap();
        assert_eq!(l.digest, None);
        assert_eq!(l.path, PathBuf::from("relative/layer.tar"));
    }

    #[test]
    fn range_and_digest_fields_round_trip() {
        let line = format!("/x/img.tar\toffset=1536\tsize=10\tdigest=sha256:{HEX}");
        let l = LayerRef::parse_line(line.as_bytes()).unwrap();
        assert_eq!(l.range, Some((1536, 10)));
        assert_eq!(l.to_line().unwrap(), line.as_bytes());
        let plain = LayerRef::file(format!("/i/blobs/sha256/{HEX}"));
        assert_eq!(
            plain.to_line().unwrap(),
            format!("/i/blobs/sha256/{HEX}").as_bytes()
        );
    }

    #[test]
    fn size_alone_declares_the_whole_file_length() {
        let line = format!("/tmp/pipes/0\tsize=29\tdigest=sha256:{HEX}");
        let l = LayerRef::parse_line(line.as_bytes()).unwrap();
        assert_eq!((l.range, l.size), (None, Some(29)));
        assert_eq!(l.stored_size(), Some(29));
        assert_eq!(l.to_line().unwrap(), line.as_bytes());
        // Lines without it read as before, and a range's size is the range's.
        let l = LayerRef::parse_line(b"x\toffset=3\tsize=4").unwrap();
        assert_eq!((l.range, l.size), (Some((3, 4)), None));
        assert_eq!(l.stored_size(), Some(4));
        assert_eq!(LayerRef::parse_line(b"x").unwrap().size, None);
    }

    #[test]
    fn a_server_field_round_trips_with_any_bytes() {
        let line = b"/tmp/d/layer-000\tsize=3\tserver=/tmp/d\xff/session".to_vec();
        let l = LayerRef::parse_line(&line).unwrap();
        assert_eq!(
            l.server.as_deref().unwrap().as_os_str().as_bytes(),
            b"/tmp/d\xff/session"
        );
        assert_eq!(l.to_line().unwrap(), line);
        assert_eq!(LayerRef::parse_line(b"x").unwrap().server, None);
        let mut bad = LayerRef::file("x");
        bad.server = Some(PathBuf::from("a\tb"));
        assert!(bad.to_line().is_err());
        assert!(LayerRef::parse_line(b"x\tsize=\xff").is_err());
    }

    #[test]
    fn stored_size_of_a_plain_file_is_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer");
        std::fs::write(&path, [0u8; 1000]).unwrap();
        assert_eq!(LayerRef::file(&path).stored_size(), Some(1000));
        assert_eq!(LayerRef::file(dir.path().join("none")).stored_size(), None);
        assert_eq!(LayerRef::file(dir.path()).stored_size(), None);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(LayerRef::parse_line(b"x\toffset=1").is_err());
        assert!(LayerRef::parse_line(b"x\tsize=1\tsize=x").is_err());
        assert!(LayerRef::parse_line(b"x\toffset=-1\tsize=2").is_err());
        assert!(LayerRef::parse_line(b"x\tcolour=red").is_err());
        assert!(LayerRef::parse_line(b"x\tdigest=md5:00").is_err());
        assert!(LayerRef::parse_line(b"x\tnonsense").is_err());
        assert!(
            LayerRef::parse_line(format!("x\toffset={}\tsize=2", u64::MAX).as_bytes()).is_err()
        );
        assert!(LayerRef::file("a\nb").to_line().is_err());
        assert!(LayerRef::file("a\tb").to_line().is_err());
    }

    #[test]
    fn lists_skip_blank_lines_and_name_bad_lines() {
        let list = parse_list(b"a\n\nb\n").unwrap();
        assert_eq!(list.len(), 2);
        let err = parse_list(b"a\nb\toffset=1\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
