//! Forwarding a tar stream block by block, checking and normalising it.
//!
//! `tar2sqfs` feeds `mksquashfs -tar` through this. On the way:
//!
//! * every header checksum is verified, and the stream must end with its
//!   end-of-archive marker (a truncated stream is an error, though
//!   mksquashfs would accept it);
//! * user and group *names* are blanked, in headers and in PAX records:
//!   mksquashfs 4.6 maps names through the host's passwd database, which
//!   would give files the ids of whatever machine builds the image;
//! * parent directories the stream never describes get an entry at the end
//!   (`0755 root:root` and a given time): mksquashfs would otherwise stamp
//!   them with the build time, and the image would not be reproducible.

use crate::meta::Meta;
use crate::tar_writer::{push_pax_record, TarWriter};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use tar::{EntryType, Header};

const BLOCK: usize = 512;
/// Largest PAX extended header accepted (they hold names and xattrs).
const MAX_PAX_HEADER: u64 = 64 << 20;
/// Largest GNU long name accepted.
const MAX_LONG_NAME: u64 = 1 << 20;
const COPY_BUFFER: usize = 1 << 20;

/// What was forwarded.
#[derive(Debug, Clone, Default)]
pub struct ForwardStats {
    /// Entries (not counting extension headers).
    pub entries: u64,
    /// Bytes read from the input.
    pub bytes_in: u64,
}

/// Copies a tar stream from `input` to `output`, verifying it, blanking
/// user and group names, and describing undescribed parent directories
/// (with mtime `dir_time`). Fails on a bad header, truncated data, or a
/// missing end-of-archive marker; `output` then has no end marker.
pub fn forward_for_mksquashfs(
    input: &mut dyn Read,
    output: &mut dyn Write,
    dir_time: u64,
) -> Result<ForwardStats> {
    let mut forwarder = Forwarder {
        input,
        output,
        stats: ForwardStats::default(),
        buffer: vec![0; COPY_BUFFER],
        declared_dirs: HashSet::new(),
        parent_dirs: HashSet::new(),
        dir_time,
    };
    forwarder.run()?;
    Ok(forwarder.stats)
}

struct Forwarder<'a> {
    input: &'a mut dyn Read,
    output: &'a mut dyn Write,
    stats: ForwardStats,
    buffer: Vec<u8>,
    /// Directories with an entry of their own.
    declared_dirs: HashSet<Vec<u8>>,
    /// Directories some entry lives in.
    parent_dirs: HashSet<Vec<u8>>,
    dir_time: u64,
}

impl Forwarder<'_> {
    fn run(&mut self) -> Result<()> {
        let mut pax_size: Option<u64> = None;
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let offset = self.stats.bytes_in;
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                bail!("the tar stream ends without its end-of-archive marker (truncated at byte {offset})");
            }
            if block.iter().all(|&b| b == 0) {
                return self.finish_at_end_marker();
            }
            let header = Header::from_byte_slice(&block);
            check_checksum(header)
                .with_context(|| format!("invalid tar header at byte {offset}"))?;
            let stored = header
                .entry_size()
                .with_context(|| format!("invalid tar header at byte {offset}"))?;
            match header.entry_type() {
                EntryType::XHeader | EntryType::XGlobalHeader => {
                    let local = header.entry_type() == EntryType::XHeader;
                    let (size, path) = self.forward_pax(header.clone(), stored, offset)?;
                    if local {
                        pax_size = size;
                        long_name = path.or(long_name);
                    }
                }
                EntryType::GNULongName => {
                    long_name = Some(self.forward_long_name(&block, stored, offset)?);
                }
                EntryType::GNULongLink => {
                    self.write(&block)?;
                    self.copy_data(stored)?;
                }
                kind => {
                    let path = long_name
                        .take()
                        .unwrap_or_else(|| header.path_bytes().into_owned());
                    self.note_directories(&path, kind == EntryType::Directory);
                    let mut header = header.clone();
                    blank_names(&mut header);
                    self.write(header.as_bytes())?;
                    self.copy_data(pax_size.take().unwrap_or(stored))?;
                    self.stats.entries += 1;
                }
            }
        }
    }

    /// Records which directories an entry declares and needs.
    fn note_directories(&mut self, raw: &[u8], is_dir: bool) {
        let Ok(path) = crate::path::normalize(raw) else {
            return;
        };
        let mut parent = crate::path::split_parent(&path).0;
        while !parent.is_empty() && self.parent_dirs.insert(parent.to_vec()) {
            parent = crate::path::split_parent(parent).0;
        }
        if is_dir && !path.is_empty() {
            self.declared_dirs.insert(path);
        }
    }

    fn forward_long_name(
        &mut self,
        block: &[u8; BLOCK],
        size: u64,
        offset: u64,
    ) -> Result<Vec<u8>> {
        if size > MAX_LONG_NAME {
            bail!("GNU long name at byte {offset} is implausibly large ({size} bytes)");
        }
        let mut name = vec![0; size as usize];
        self.read_exact_data(&mut name)?;
        self.skip_padding(size)?;
        self.write(block)?;
        self.write(&name)?;
        self.write_padding(size)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.truncate(end);
        Ok(name)
    }

    /// Rewrites a PAX header without `uname`/`gname` records; returns the
    /// `size` and `path` records it carries, if any.
    fn forward_pax(
        &mut self,
        mut header: Header,
        size: u64,
        offset: u64,
    ) -> Result<(Option<u64>, Option<Vec<u8>>)> {
        if size > MAX_PAX_HEADER {
            bail!("PAX header at byte {offset} is implausibly large ({size} bytes)");
        }
        let mut data = vec![0; size as usize];
        self.read_exact_data(&mut data)?;
        self.skip_padding(size)?;
        let mut kept = Vec::with_capacity(data.len());
        let mut entry_size = None;
        let mut path = None;
        for record in tar::PaxExtensions::new(&data) {
            let record =
                record.with_context(|| format!("malformed PAX record at byte {offset}"))?;
            match record.key_bytes() {
                b"uname" | b"gname" => continue,
                b"size" => {
                    entry_size = std::str::from_utf8(record.value_bytes())
                        .ok()
                        .and_then(|v| v.parse().ok())
                }
                b"path" => path = Some(record.value_bytes().to_vec()),
                _ => {}
            }
            push_pax_record(&mut kept, record.key_bytes(), record.value_bytes());
        }
        header.set_size(kept.len() as u64);
        header.set_cksum();
        self.write(header.as_bytes())?;
        self.write(&kept)?;
        self.write_padding(kept.len() as u64)?;
        Ok((entry_size, path))
    }

    /// After the first zero block: check the second, describe the
    /// undescribed directories, write the end marker and read the rest of
    /// the input (record padding).
    fn finish_at_end_marker(&mut self) -> Result<()> {
        let mut second = [0u8; BLOCK];
        if !self.read_block(&mut second)? || second.iter().any(|&b| b != 0) {
            bail!("the tar stream ends without its end-of-archive marker (only one zero block)");
        }
        let mut missing: Vec<&Vec<u8>> = self.parent_dirs.difference(&self.declared_dirs).collect();
        missing.sort_by(|a, b| a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/')));
        let meta = Meta {
            mtime: self.dir_time,
            ..Meta::implicit_dir()
        };
        let mut writer = TarWriter::new(&mut *self.output);
        for dir in missing {
            writer.write_empty(dir, &meta).context("cannot write")?;
        }
        writer.finish().context("cannot write")?;
        loop {
            let n = retry(|| self.input.read(&mut self.buffer)).context("cannot read input")?;
            if n == 0 {
                break;
            }
            self.stats.bytes_in += n as u64;
        }
        self.output.flush().context("cannot write")?;
        Ok(())
    }

    fn copy_data(&mut self, size: u64) -> Result<()> {
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut left = padded;
        while left > 0 {
            let want = left.min(self.buffer.len() as u64) as usize;
            let n =
                retry(|| self.input.read(&mut self.buffer[..want])).context("cannot read input")?;
            if n == 0 {
                bail!(
                    "the tar stream is truncated inside an entry's data (at byte {})",
                    self.stats.bytes_in
                );
            }
            self.stats.bytes_in += n as u64;
            self.output
                .write_all(&self.buffer[..n])
                .context("cannot write")?;
            left -= n as u64;
        }
        Ok(())
    }

    fn read_exact_data(&mut self, data: &mut [u8]) -> Result<()> {
        self.input.read_exact(data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!("the tar stream is truncated inside a PAX header")
            } else {
                anyhow::Error::new(e).context("cannot read input")
            }
        })?;
        self.stats.bytes_in += data.len() as u64;
        Ok(())
    }

    fn skip_padding(&mut self, size: u64) -> Result<()> {
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        let mut padding = [0u8; BLOCK];
        self.read_exact_data(&mut padding[..pad])
    }

    fn write_padding(&mut self, size: u64) -> Result<()> {
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.write(&[0; BLOCK][..pad])
    }

    /// Reads one block; `false` on a clean end of input before it.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            let n = retry(|| self.input.read(&mut block[filled..])).context("cannot read input")?;
            if n == 0 {
                if filled == 0 {
                    return Ok(false);
                }
                bail!(
                    "the tar stream is truncated inside a header (at byte {})",
                    self.stats.bytes_in + filled as u64
                );
            }
            filled += n;
        }
        self.stats.bytes_in += BLOCK as u64;
        Ok(true)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.output.write_all(bytes).context("cannot write")
    }
}

fn retry(mut f: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn check_checksum(header: &Header) -> Result<()> {
    let bytes = header.as_bytes();
    let sum: u32 = bytes[..148]
        .iter()
        .chain(&bytes[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * 32;
    let stored = header
        .cksum()
        .context("not a tar header (unreadable checksum field)")?;
    if sum != stored {
        bail!(
            "not a tar header (checksum mismatch): the stream is corrupt, or its producer failed"
        );
    }
    Ok(())
}

fn blank_names(header: &mut Header) {
    if let Some(ustar) = header.as_ustar_mut() {
        ustar.uname = [0; 32];
        ustar.gname = [0; 32];
    } else if let Some(gnu) = header.as_gnu_mut() {
        gnu.uname = [0; 32];
        gnu.gname = [0; 32];
    } else {
        return;
    }
    header.set_cksum();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(1000);
        h.set_username("alice").unwrap();
        h.set_groupname("staff").unwrap();
        h.set_cksum();
        b.append_pax_extensions([("uname", &b"alice"[..]), ("SCHILY.xattr.user.x", b"1")])
            .unwrap();
        b.append(&h, &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn blanks_names_and_keeps_everything_else() {
        let input = named_tar();
        let mut out = Vec::new();
        let stats = forward_for_mksquashfs(&mut &input[..], &mut out, 0).unwrap();
        assert_eq!(stats.entries, 1);
        let mut archive = tar::Archive::new(&out[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().username_bytes(), Some(&b""[..]));
        assert_eq!(entry.header().uid().unwrap(), 1000);
        let keys: Vec<Vec<u8>> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| r.unwrap().key_bytes().to_vec())
            .collect();
        assert_eq!(keys, [b"SCHILY.xattr.user.x".to_vec()]);
        let mut data = String::new();
        entry.read_to_string(&mut data).unwrap();
        assert_eq!(data, "abc");
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let input = named_tar();
        let end = input.len() - 1024;
        for cut in [0, 100, 512, 700, 1024, 1536, 1600, end] {
            let mut out = Vec::new();
            assert!(
                forward_for_mksquashfs(&mut &input[..cut], &mut out, 0).is_err(),
                "cut at {cut}"
            );
        }
        let mut out = Vec::new();
        assert!(
            forward_for_mksquashfs(&mut &input[..end + 512], &mut out, 0).is_err(),
            "one zero block is not an end marker"
        );
        let mut out = Vec::new();
        assert!(
            forward_for_mksquashfs(&mut &input[..end + 1024], &mut out, 0).is_ok(),
            "the full marker ends it"
        );
    }

    #[test]
    fn undescribed_parents_get_entries_at_the_end() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_ustar();
        h.set_size(1);
        h.set_mode(0o600);
        h.set_mtime(99);
        b.append_data(&mut h, "a/b/f", &b"x"[..]).unwrap();
        let mut d = Header::new_ustar();
        d.set_entry_type(EntryType::Directory);
        d.set_mode(0o700);
        d.set_size(0);
        d.set_mtime(0);
        b.append_data(&mut d, "a/", &[][..]).unwrap();
        let input = b.into_inner().unwrap();
        let mut out = Vec::new();
        forward_for_mksquashfs(&mut &input[..], &mut out, 1234).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("a/b/f".to_owned(), 0o600, 99),
                ("a/".to_owned(), 0o700, 0),
                ("a/b/".to_owned(), 0o755, 1234)
            ]
        );
    }

    #[test]
    fn corrupt_header_is_an_error() {
        let mut input = named_tar();
        input[1024 + 10] ^= 0xff;
        let mut out = Vec::new();
        let err = forward_for_mksquashfs(&mut &input[..], &mut out, 0).unwrap_err();
        assert!(format!("{err:#}").contains("checksum"), "{err:#}");
    }
}
