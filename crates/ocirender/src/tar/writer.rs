//! Writing the merged tar stream.
//!
//! Headers are POSIX ustar with PAX extended headers wherever a value does
//! not fit (long names and link targets, large ids and sizes) and for the
//! records carried over from the layers. User and group names are left
//! blank so every consumer uses the numeric ids.
//!
//! The writer never writes the end-of-archive marker on its own: only
//! [`TarWriter::finish`] does, after a fully successful merge. This is also
//! why the `tar` crate's `Builder`, which finishes the archive when dropped,
//! is not used here.
//!
//! A missing marker alone does not make a failed merge look failed: GNU
//! tar, bsdtar, busybox tar, Python's `tarfile` and the `tar` crate all
//! accept a stream that stops at a member boundary. So a writer that is
//! abandoned ([`TarWriter::abandon`]) ends its stream with a trailer that
//! every one of them refuses, wherever the failure struck:
//!
//! * the member being written is completed first: its missing data with
//!   zeros (up to [`FILL_LIMIT`] bytes), and its padding;
//! * then a valid PAX extended header (a `comment` saying the archive is
//!   incomplete), so that the next block belongs to a member;
//! * then a block that is no valid header (its checksum is letters).
//!
//! Every reader fails on the PAX header's member being invalid, and Python's
//! `tarfile`, which takes an invalid header after the first as the end of
//! the archive, fails too because a PAX header must be followed by its
//! member. Were the trailer written inside the cut member's data instead,
//! the readers would take it as data and accept the archive.
//!
//! When more than [`FILL_LIMIT`] bytes of the member are missing, nothing is
//! written: the stream then ends inside the member's declared data, which
//! every reader that reads the data refuses. Readers that seek over data
//! without reading it (busybox `tar -t` on a file, the `tar` crate's
//! `entries_with_seek`) see a clean end there; no writer can tell them
//! otherwise short of writing the missing bytes.

use super::BLOCK;
use crate::tar::entry::{EntryMeta, Kind};
use std::borrow::Cow;
use std::io::{self, Read, Write};
use tar::{EntryType, Header};

const NAME_FIELD: usize = 100;
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
/// Output is staged in a buffer of this size and written in large writes.
const STAGING: usize = 1 << 20;
/// An abandoned writer completes the member it was cut in with at most this
/// many zero bytes (see the module's documentation): enough for nearly
/// every file of a real image, and cheap to write once on a failure.
pub const FILL_LIMIT: u64 = 64 << 20;
/// The PAX record of the trailer an abandoned writer leaves.
const INCOMPLETE_KEY: &[u8] = b"comment";
const INCOMPLETE_TEXT: &[u8] = b"ocirender: INCOMPLETE ARCHIVE: the program writing it failed";

/// Streams tar entries to `W`.
///
/// The writer does its own buffering: entry data is read straight into the
/// staging buffer, so each byte is copied once on its way from the decoder
/// to the output (a `BufWriter` on top of a read buffer would copy twice).
pub struct TarWriter<W: Write> {
    out: W,
    staging: Box<[u8]>,
    staged: usize,
    bytes_written: u64,
    /// The member whose data is being written: its declared size, and how
    /// much of it has not been written yet (0 between members).
    data_size: u64,
    data_left: u64,
}

impl<W: Write> TarWriter<W> {
    /// A writer emitting to `out`, which need not be buffered.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            staging: vec![0; STAGING].into_boxed_slice(),
            staged: 0,
            bytes_written: 0,
            data_size: 0,
            data_left: 0,
        }
    }

    /// Bytes of archive written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Writes an entry at `path` (canonical, non-empty) whose data, for a
    /// regular file, is the next `meta.size` bytes of `data`.
    pub fn write_entry(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.write_header(path, meta, &meta.link_target, entry_type(meta.kind))?;
        if meta.kind == Kind::Regular {
            self.copy_data(data, meta.size)?;
        }
        Ok(())
    }

    /// Writes an entry with no data (anything but a regular file, or a
    /// regular file of size zero).
    pub fn write_empty(&mut self, path: &[u8], meta: &EntryMeta) -> io::Result<()> {
        self.write_entry(path, meta, &mut io::empty())
    }

    /// Writes a hard link at `path` to the earlier entry `target`.
    /// The header repeats `meta`'s ownership and times as GNU tar does;
    /// readers take the inode from the target.
    pub fn write_hard_link(
        &mut self,
        path: &[u8],
        target: &[u8],
        meta: &EntryMeta,
    ) -> io::Result<()> {
        let link = EntryMeta {
            kind: Kind::HardLink,
            size: 0,
            device: (0, 0),
            pax: Vec::new(),
            ..meta.clone()
        };
        self.write_header(path, &link, target, EntryType::Link)
    }

    /// Writes the end-of-archive marker and flushes; returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_all(&[0; 2 * BLOCK])?;
        self.flush_staging()?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Marks the archive as broken after a failure, so that every tar
    /// reader fails on it: completes the member being written and adds a
    /// trailer no reader accepts (see the module's documentation), or, when
    /// too much of the member is missing, writes nothing more. Best effort:
    /// the sink may be gone.
    pub fn abandon(&mut self) {
        let _ = self.write_trailer();
        let _ = self.flush_staging();
        let _ = self.out.flush();
    }

    fn write_trailer(&mut self) -> io::Result<()> {
        if self.data_left > FILL_LIMIT {
            // The stream ends inside the member's declared data.
            return Ok(());
        }
        if self.data_left > 0 {
            self.fill(self.data_left)?;
            self.pad(self.data_size)?;
        }
        let mut record = Vec::new();
        push_pax_record(&mut record, INCOMPLETE_KEY, INCOMPLETE_TEXT);
        self.write_pax_header(&record)?;
        self.write_all(&invalid_header())
    }

    /// Writes `len` zero bytes of the current member's data.
    fn fill(&mut self, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let n = len.min(BLOCK as u64);
            self.write_all(&[0; BLOCK][..n as usize])?;
            self.data_left -= n;
            len -= n;
        }
        Ok(())
    }

    fn write_header(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        link: &[u8],
        kind: EntryType,
    ) -> io::Result<()> {
        let name: Cow<[u8]> = if meta.kind == Kind::Directory {
            Cow::Owned([path, b"/"].concat())
        } else {
            Cow::Borrowed(path)
        };
        let mut pax = Vec::new();
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        set_name_field(&mut header.as_old_mut().name, &name, b"path", &mut pax);
        set_name_field(
            &mut header.as_old_mut().linkname,
            link,
            b"linkpath",
            &mut pax,
        );
        header.set_mode(meta.mode);
        header.set_uid(fit_or_pax(meta.uid, MAX_OCTAL_7, b"uid", &mut pax));
        header.set_gid(fit_or_pax(meta.gid, MAX_OCTAL_7, b"gid", &mut pax));
        header.set_size(fit_or_pax(meta.size, MAX_OCTAL_11, b"size", &mut pax));
        let has_mtime_record = meta.pax.iter().any(|r| r.key == b"mtime");
        header.set_mtime(if meta.mtime <= MAX_OCTAL_11 {
            meta.mtime
        } else {
            if !has_mtime_record {
                push_pax_record(&mut pax, b"mtime", meta.mtime.to_string().as_bytes());
            }
            0
        });
        if matches!(meta.kind, Kind::CharDevice | Kind::BlockDevice) {
            header.set_device_major(meta.device.0)?;
            header.set_device_minor(meta.device.1)?;
        }
        for record in &meta.pax {
            push_pax_record(&mut pax, &record.key, &record.value);
        }
        if !pax.is_empty() {
            self.write_pax_header(&pax)?;
        }
        header.set_cksum();
        self.write_all(header.as_bytes())
    }

    fn write_pax_header(&mut self, records: &[u8]) -> io::Result<()> {
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.as_old_mut().name[..14].copy_from_slice(b"././@PaxHeader");
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(records.len() as u64);
        header.set_cksum();
        self.write_all(header.as_bytes())?;
        self.write_all(records)?;
        self.pad(records.len() as u64)
    }

    fn copy_data(&mut self, data: &mut dyn Read, size: u64) -> io::Result<()> {
        self.data_size = size;
        self.data_left = size;
        while self.data_left > 0 {
            if self.staged == self.staging.len() {
                self.flush_staging()?;
            }
            let room = self.staging.len() - self.staged;
            let want = self.data_left.min(room as u64) as usize;
            let buf = &mut self.staging[self.staged..self.staged + want];
            let n = super::read_entry_data(data, buf, size - self.data_left, size)?;
            self.staged += n;
            self.bytes_written += n as u64;
            self.data_left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_all(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.staging.len() - self.staged < bytes.len() {
            self.flush_staging()?;
        }
        if bytes.len() > self.staging.len() {
            self.out.write_all(bytes)?;
        } else {
            self.staging[self.staged..self.staged + bytes.len()].copy_from_slice(bytes);
            self.staged += bytes.len();
        }
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    fn flush_staging(&mut self) -> io::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        self.out.write_all(&self.staging[..staged])
    }
}

/// Writes what a writer that failed before its first entry leaves: a
/// stream no tar reader takes for an archive, which ours recognise as one
/// whose producer failed (and said why), see [`is_abandoned_stream_error`].
pub fn write_abandoned(out: impl Write) {
    TarWriter::new(out).abandon();
}

/// Whether `err` is a tar reader's complaint about the last block of an
/// abandoned stream: the producer failed and said why, so the reader has
/// nothing to add. The marker's text is ours and sits in the block's name
/// field, which is what the tar reader quotes.
pub fn is_abandoned_stream_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let marker = String::from_utf8_lossy(INCOMPLETE_TEXT);
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.to_string().contains(&*marker) {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A block no tar reader takes for a header: the checksum field must hold
/// octal digits, and here holds letters. Its text says why it is there.
fn invalid_header() -> [u8; BLOCK] {
    let mut block = [b' '; BLOCK];
    let text = [INCOMPLETE_TEXT, b"\n"].concat();
    block[..text.len()].copy_from_slice(&text);
    block[148..156].copy_from_slice(b"INVALID!");
    block
}

fn entry_type(kind: Kind) -> EntryType {
    match kind {
        Kind::Regular => EntryType::Regular,
        Kind::HardLink => EntryType::Link,
        Kind::Symlink => EntryType::Symlink,
        Kind::CharDevice => EntryType::Char,
        Kind::BlockDevice => EntryType::Block,
        Kind::Directory => EntryType::Directory,
        Kind::Fifo => EntryType::Fifo,
    }
}

/// Stores `value` in a 100-byte name field, or, when it does not fit, a
/// truncated copy there and the whole value as a PAX record.
fn set_name_field(field: &mut [u8; NAME_FIELD], value: &[u8], key: &[u8], pax: &mut Vec<u8>) {
    let n = value.len().min(NAME_FIELD);
    field[..n].copy_from_slice(&value[..n]);
    if value.len() > NAME_FIELD {
        push_pax_record(pax, key, value);
    }
}

/// Returns `value` if an octal field holds it, else records it in PAX and
/// returns 0 for the header field.
fn fit_or_pax(value: u64, max: u64, key: &[u8], pax: &mut Vec<u8>) -> u64 {
    if value <= max {
        value
    } else {
        push_pax_record(pax, key, value.to_string().as_bytes());
        0
    }
}

/// Appends one `"<len> <key>=<value>\n"` record, where `<len>` counts the
/// whole record including its own digits.
pub fn push_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::entry::PaxRecord;

    fn file(size: u64) -> EntryMeta {
        EntryMeta {
            kind: Kind::Regular,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            mtime: 1,
            size,
            ..EntryMeta::implicit_dir()
        }
    }

    fn read_back(bytes: &[u8]) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path_bytes().into_owned();
                let uid = e.header().uid().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, uid, data)
            })
            .collect()
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for (key, value, expect) in [
            (&b"path"[..], &b"x"[..], &b"9 path=x\n"[..]),
            (b"k", &[b'v'; 5], b"11 k=vvvvv\n"),
            (
                b"k",
                &[b'v'; 94],
                &[&b"101 k="[..], &[b'v'; 94], b"\n"].concat(),
            ),
        ] {
            let mut out = Vec::new();
            push_pax_record(&mut out, key, value);
            assert_eq!(out, expect);
        }
    }

    #[test]
    fn long_names_large_ids_and_records_round_trip() {
        let long = vec![b'n'; 300];
        let mut meta = file(3);
        meta.uid = 1 << 40;
        meta.pax.push(PaxRecord {
            key: b"SCHILY.xattr.security.capability".to_vec(),
            value: vec![1, 0, 0xff, 2],
        });
        let mut w = TarWriter::new(Vec::new());
        w.write_entry(&long, &meta, &mut &b"abc"[..]).unwrap();
        w.write_empty(b"dir", &EntryMeta::implicit_dir()).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let entries = read_back(&bytes);
        assert_eq!(entries[0], (long, 1 << 40, b"abc".to_vec()));
        assert_eq!(entries[1].0, b"dir/");
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut first = archive.entries().unwrap().next().unwrap().unwrap();
        let xattr = first
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| r.unwrap())
            .find(|r| r.key_bytes().starts_with(b"SCHILY"));
        assert_eq!(xattr.unwrap().value_bytes(), &[1, 0, 0xff, 2]);
    }

    #[test]
    fn short_data_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        assert!(w.write_entry(b"f", &file(10), &mut &b"abc"[..]).is_err());
    }

    /// Where the last entry's data (with its padding) ends, as the `tar`
    /// crate parses `bytes`; 0 when it finds no entry.
    fn end_of_last_entry(bytes: &[u8]) -> u64 {
        let mut archive = tar::Archive::new(bytes);
        let mut end = 0;
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        }
        end
    }

    /// True if the last two blocks of `bytes` are zero blocks.
    fn ends_with_two_zero_blocks(bytes: &[u8]) -> bool {
        bytes.len() >= 2 * BLOCK && bytes[bytes.len() - 2 * BLOCK..].iter().all(|&b| b == 0)
    }

    /// Writes a directory `d` and a file `d/f` of `size` non-zero bytes.
    fn two_entries<W: Write>(w: &mut TarWriter<W>, size: usize) {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 + 1).collect();
        w.write_empty(b"d", &EntryMeta::implicit_dir()).unwrap();
        w.write_entry(b"d/f", &file(size as u64), &mut &data[..])
            .unwrap();
    }

    /// Runs GNU tar with `args` on the archive `bytes`; true if it succeeds.
    fn gnu_tar_accepts(bytes: &[u8], args: &[&str]) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive.tar");
        std::fs::write(&archive, bytes).unwrap();
        let out = std::process::Command::new("tar")
            .args(args)
            .arg(&archive)
            .current_dir(dir.path())
            .output()
            .expect("GNU tar is needed (scripts/install-deps installs it)");
        out.status.success()
    }

    /// Whether the `tar` crate reads `bytes` to a clean end, reading every
    /// member's data (`seek`: skipping it with seeks, as a file allows).
    fn tar_crate_accepts(bytes: &[u8], seek: bool) -> bool {
        let mut archive = tar::Archive::new(io::Cursor::new(bytes));
        let entries = if seek {
            archive.entries_with_seek()
        } else {
            archive.entries()
        };
        entries.is_ok_and(|entries| {
            entries.into_iter().all(|entry| {
                entry.is_ok_and(|mut e| seek || io::copy(&mut e, &mut io::sink()).is_ok())
            })
        })
    }

    /// The trailer an abandoned writer ends with at a member boundary.
    fn trailer() -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        w.abandon();
        std::mem::take(&mut w.out)
    }

    /// Where a writer is abandoned: in the data of a member declaring the
    /// first number of bytes and given the second, or between members.
    type Cut = Option<(u64, usize)>;

    /// A writer abandoned after two entries, where `cut` says.
    fn abandoned(cut: Cut) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        two_entries(&mut w, 700);
        if let Some((declared, given)) = cut {
            let data = vec![7; given];
            let cut_short = w.write_entry(b"cut", &file(declared), &mut &data[..]);
            assert!(cut_short.is_err());
        }
        w.abandon();
        std::mem::take(&mut w.out)
    }

    #[test]
    fn an_abandoned_trailer_is_a_pax_header_and_an_invalid_block() {
        let bytes = trailer();
        assert_eq!(bytes.len(), 3 * BLOCK);
        let pax = Header::from_byte_slice(&bytes[..BLOCK]);
        assert_eq!(pax.entry_type(), EntryType::XHeader);
        assert!(pax.cksum().unwrap() > 0);
        let mut record = Vec::new();
        push_pax_record(&mut record, b"comment", INCOMPLETE_TEXT);
        assert_eq!(&bytes[BLOCK..BLOCK + record.len()], record);
        assert!(bytes[2 * BLOCK..].starts_with(b"ocirender: INCOMPLETE ARCHIVE"));
        assert!(Header::from_byte_slice(&bytes[2 * BLOCK..])
            .cksum()
            .is_err());
    }

    #[test]
    fn abandoned_archives_fail_to_read_wherever_the_cut() {
        let two_entries_len = 4 * BLOCK;
        // (where, the cut member's declared and given sizes, the length
        // of the output, whether seeking readers can tell).
        let cases: [(&str, Cut, usize, bool); 4] = [
            ("between members", None, two_entries_len + 3 * BLOCK, true),
            (
                "in data, block-aligned",
                Some((1500, 1024)),
                two_entries_len + 7 * BLOCK,
                true,
            ),
            (
                "in data",
                Some((1500, 300)),
                two_entries_len + 7 * BLOCK,
                true,
            ),
            (
                "in data, more missing than the fill limit",
                Some((FILL_LIMIT + 300, 100)),
                two_entries_len + BLOCK + 100,
                false,
            ),
        ];
        for (what, cut, len, seekers_see_it) in cases {
            let bytes = abandoned(cut);
            assert_eq!(bytes.len(), len, "{what}");
            assert!(!ends_with_two_zero_blocks(&bytes), "{what}");
            if seekers_see_it {
                assert_eq!(bytes[len - 3 * BLOCK..], trailer(), "{what}");
            }
            assert!(
                !tar_crate_accepts(&bytes, false),
                "{what}: the tar crate read it"
            );
            assert_eq!(
                tar_crate_accepts(&bytes, true),
                !seekers_see_it,
                "{what}: the tar crate, seeking"
            );
            assert!(
                !gnu_tar_accepts(&bytes, &["-tf"]),
                "{what}: GNU tar listed it"
            );
            assert!(
                !gnu_tar_accepts(&bytes, &["-xf"]),
                "{what}: GNU tar extracted it"
            );
        }
        // The same entries, finished, are accepted by both.
        let mut w = TarWriter::new(Vec::new());
        two_entries(&mut w, 700);
        let finished = w.finish().unwrap();
        assert_eq!(
            finished[..two_entries_len],
            abandoned(None)[..two_entries_len]
        );
        assert!(tar_crate_accepts(&finished, false) && tar_crate_accepts(&finished, true));
        assert!(gnu_tar_accepts(&finished, &["-tf"]));
        assert!(gnu_tar_accepts(&finished, &["-xf"]));
        assert_eq!(read_back(&finished).len(), 2);
    }

    #[test]
    fn no_end_marker_without_finish() {
        // What reaches the sink before `finish` is whole entries and nothing
        // after them: the archive's end is exactly the last entry's end.
        let mut w = TarWriter::new(Vec::new());
        two_entries(&mut w, 700);
        assert_eq!(w.bytes_written(), 4 * BLOCK as u64);
        w.flush_staging().unwrap();
        let unfinished = std::mem::take(&mut w.out);
        assert_eq!(unfinished.len(), 4 * BLOCK);
        assert_eq!(end_of_last_entry(&unfinished), unfinished.len() as u64);
        assert!(!ends_with_two_zero_blocks(&unfinished));
        // `finish` adds exactly the two zero blocks, after the same bytes.
        let mut w = TarWriter::new(Vec::new());
        two_entries(&mut w, 700);
        let finished = w.finish().unwrap();
        assert_eq!(finished[..unfinished.len()], unfinished[..]);
        assert_eq!(finished[unfinished.len()..], [0; 2 * BLOCK]);
        assert_eq!(end_of_last_entry(&finished), unfinished.len() as u64);

        // A large entry is flushed as it is written; a writer dropped in
        // the middle of it leaves a prefix cut inside the data, which ends
        // in no marker and which the tar crate refuses to read to the end.
        let mut sink = Vec::new();
        let mut w = TarWriter::new(&mut sink);
        two_entries(&mut w, STAGING * 5 / 2);
        drop(w);
        assert!(!sink.is_empty() && sink.len() < STAGING * 5 / 2);
        assert!(!ends_with_two_zero_blocks(&sink));
        let mut archive = tar::Archive::new(&sink[..]);
        let mut failed = false;
        for entry in archive.entries().unwrap() {
            match entry {
                Ok(mut entry) => failed |= io::copy(&mut entry, &mut io::sink()).is_err(),
                Err(_) => failed = true,
            }
        }
        assert!(failed, "the tar crate read a cut archive to a clean end");
    }
}
