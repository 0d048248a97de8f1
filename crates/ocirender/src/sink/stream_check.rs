//! Forwarding a tar stream entry by entry, checking and normalising it.
//!
//! `tar2sqfs` and `tar2erofs` feed their image builders (`mksquashfs -tar`,
//! `mkfs.erofs --tar=f`) through this. The stream is read with
//! the reader the merge uses (`tar::Archive` and `read_member`) and
//! written again with `TarWriter`, so one piece of code knows the format:
//!
//! * every header checksum is verified, and the stream must end with its
//!   end-of-archive marker (a truncated stream is an error, though
//!   mksquashfs would accept it);
//! * entries come out with numeric owners only: mksquashfs 4.6 maps user
//!   and group *names* through the host's passwd database, which would give
//!   files the ids of whatever machine builds the image;
//! * sparse members (GNU `S`, PAX `GNU.sparse.*`) come out as plain files,
//!   holes as zeros: mksquashfs 4.6.1 misreads many of them;
//! * PAX global headers are consumed, other PAX records (xattrs,
//!   sub-second times) are kept;
//! * every entry is admitted to a `Listing` first, so both builders
//!   build the tree `tar2dir` builds, or the stream is refused: a path
//!   listed twice, a path through a non-directory, a hard link to anything
//!   but an earlier non-directory (mksquashfs would keep the first of two
//!   entries, drop such a link, or crash on it);
//! * directories come out at the end, once each, with their last entry's
//!   metadata (mksquashfs keeps the first entry's, mkfs.erofs merges their
//!   xattrs), parents first; those the stream never describes get
//!   `0755 root:root` and a given time (mksquashfs would otherwise stamp
//!   them with the build time, and the image would not be reproducible);
//! * extended attributes are renamed or dropped as every sink does it
//!   (`stored_name`): overlayfs's own attributes are escaped, so an
//!   image used as an overlay lower layer does not act on them; symlinks
//!   are 0777, as Linux makes them;
//! * with [`ForwardOptions::max_time`] (squashfs), a time the image cannot
//!   hold is refused: mksquashfs would cut it to 32 bits;
//! * the root directory's own entries are dropped; on request one root
//!   entry (`./`, `0755 root:root`, the same time) comes first, for
//!   builders that take the root from the stream (mkfs.erofs would
//!   otherwise make it 0777, owned by whoever runs it, stamped with the
//!   build time).

use crate::error::{bail, Context, Result};
use crate::sink::listing::{hard_link_target, Listing};
use crate::sink::times::modification_time;
use crate::sink::wrong_input::FirstBlock;
use crate::sink::xattrs::stored_name;
use crate::tar::entry::{
    entry_label, read_member, EntryMeta, Kind, Member, PaxRecord, XATTR_PREFIX,
};
use crate::tar::path;
use crate::tar::path_tree::Order;
use crate::tar::writer::TarWriter;
use crate::tar::BLOCK;
use std::borrow::Cow;
use std::io::{self, BufReader, Read, Write};

const INPUT_BUFFER: usize = 1 << 20;
/// The mode of every symlink on Linux.
const SYMLINK_MODE: u32 = 0o777;

/// What was forwarded.
#[derive(Debug, Clone, Default)]
pub struct ForwardStats {
    /// Entries read (not counting extension headers).
    pub entries: u64,
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes of regular-file data forwarded (sparse members expanded).
    pub data_bytes: u64,
}

/// What the forwarded stream adds to the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// The mtime of the directories it describes.
    pub dir_time: u64,
    /// Whether to begin with an entry for the root directory.
    pub describe_root: bool,
    /// The latest modification time the image can hold, in seconds after
    /// 1970, if it cannot hold every time (and none before 1970): an entry
    /// outside is refused, where the builder would store another time.
    pub max_time: Option<u64>,
}

/// The latest time squashfs holds: its times are unsigned 32-bit seconds
/// (early 2106). mksquashfs 4.6.1 cuts a later one in a header to its low
/// 32 bits, and stores a negative one in a PAX record as this.
pub const SQUASHFS_MAX_TIME: u64 = u32::MAX as u64;

/// [`forward`] as `mksquashfs -tar` wants it: without a root entry (it
/// takes the root directory from its options), times it can hold only.
pub fn forward_for_mksquashfs(
    input: &mut dyn Read,
    output: &mut dyn Write,
    dir_time: u64,
) -> Result<ForwardStats> {
    let options = ForwardOptions {
        dir_time,
        describe_root: false,
        max_time: Some(SQUASHFS_MAX_TIME),
    };
    forward(input, output, &options)
}

/// Copies a tar stream from `input` to `output`, verifying it, leaving
/// owners numeric, expanding sparse members, and describing undescribed
/// parent directories (and the root, if asked) with mtime
/// `options.dir_time`. Fails on a bad header, truncated data, or a missing
/// end-of-archive marker; `output` then ends with a block no tar reader
/// accepts.
pub fn forward(
    input: &mut dyn Read,
    output: &mut dyn Write,
    options: &ForwardOptions,
) -> Result<ForwardStats> {
    let mut source = Counted::new(BufReader::with_capacity(INPUT_BUFFER, input));
    let mut forwarder = Forwarder {
        out: TarWriter::new(output),
        entries: 0,
        data_bytes: 0,
        listing: Listing::new(),
        max_time: options.max_time,
    };
    if options.describe_root {
        if let Err(err) = forwarder.describe_root(options.dir_time) {
            forwarder.out.abandon();
            return Err(err);
        }
    }
    let read = forwarder.forward_entries(&mut tar::Archive::new(&mut source));
    let result = read
        .and_then(|()| check_end_marker(&mut source))
        .map_err(|err| match forwarder.entries {
            0 => source.first_block.explain(source.explain(err)),
            _ => source.explain(err),
        })
        .and_then(|()| forwarder.write_directories(options.dir_time));
    let entries = forwarder.entries;
    let data_bytes = forwarder.data_bytes;
    match result {
        Ok(()) => {
            forwarder.out.finish().context("cannot write")?;
            drain(&mut source)?;
            Ok(ForwardStats {
                entries,
                bytes_in: source.bytes,
                data_bytes,
            })
        }
        Err(err) => {
            forwarder.out.abandon();
            Err(err)
        }
    }
}

struct Forwarder<'a> {
    out: TarWriter<&'a mut dyn Write>,
    entries: u64,
    data_bytes: u64,
    /// The tree so far, with the metadata of its directories.
    listing: Listing,
    /// [`ForwardOptions::max_time`].
    max_time: Option<u64>,
}

impl Forwarder<'_> {
    fn forward_entries<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<()> {
        each_entry(archive, |path, meta, data| {
            self.forward(path, meta, data)?;
            self.entries += 1;
            Ok(())
        })
    }

    fn forward(&mut self, raw: &[u8], meta: &EntryMeta, data: &mut dyn Read) -> Result<()> {
        let path = path::normalize(raw)?;
        if path.is_empty() {
            // The root: the builder takes it from its options, or from the
            // entry [`Forwarder::describe_root`] wrote.
            return Ok(());
        }
        if let Some(max) = self.max_time {
            check_time(meta, max)?;
        }
        self.listing.admit(&path, meta)?;
        if meta.kind == Kind::Regular {
            self.data_bytes += meta.size;
        }
        let meta = as_stored(meta);
        let written = match meta.kind {
            // Written once the stream has ended, with its last metadata.
            Kind::Directory => return Ok(()),
            Kind::HardLink => self
                .out
                .write_hard_link(&path, &hard_link_target(&meta)?, &meta),
            _ => self.out.write_entry(&path, &meta, data),
        };
        // The io::Error stays in the chain: a broken pipe to mksquashfs
        // must stay recognisable.
        written.context("cannot forward the entry")
    }

    /// Writes the root directory's entry, `./`.
    fn describe_root(&mut self, dir_time: u64) -> Result<()> {
        let meta = EntryMeta {
            mtime: dir_time,
            ..EntryMeta::implicit_dir()
        };
        self.out.write_empty(b".", &meta).context("cannot write")
    }

    /// Writes every directory, parents first: with its last entry's
    /// metadata, or as an implicit directory stamped `dir_time` when the
    /// stream only named things inside it.
    fn write_directories(&mut self, dir_time: u64) -> Result<()> {
        let implicit = EntryMeta {
            mtime: dir_time,
            ..EntryMeta::implicit_dir()
        };
        let out = &mut self.out;
        self.listing
            .directories(&implicit, Order::ParentsFirst, |dir, meta| {
                out.write_empty(dir, &as_stored(meta))
            })
            .context("cannot write")
    }
}

/// Calls `each` with every entry of `archive` (its path as stored, its
/// metadata, its data, sparse members expanded), skipping extension
/// members; an error names the entry, or says after how many entries the
/// stream broke. `oci-verify` reads a stream the way this module does.
pub(crate) fn each_entry<R: Read>(
    archive: &mut tar::Archive<R>,
    mut each: impl FnMut(&[u8], &EntryMeta, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut count = 0u64;
    for entry in archive.entries().context("cannot read the tar stream")? {
        let mut entry = entry.map_err(|err| {
            crate::error::Error::from(err)
                .context(format!("invalid tar header after {count} entries"))
        })?;
        let Member::Entry {
            path,
            meta,
            storage,
        } = read_member(&mut entry)?
        else {
            continue;
        };
        each(&path, &meta, &mut storage.contents(&mut entry))
            .with_context(|| entry_label(&path))?;
        count += 1;
    }
    Ok(())
}

/// Refuses an entry whose time is before 1970 or after `max` seconds.
fn check_time(meta: &EntryMeta, max: u64) -> Result<()> {
    let seconds = modification_time(meta).seconds;
    if u64::try_from(seconds).map_or(true, |s| s > max) {
        bail!(
            "its modification time ({seconds} s after 1970) is outside what the image can hold \
             (0 to {max} s)"
        );
    }
    Ok(())
}

/// `meta` as every sink stores it: xattr records renamed or dropped, and
/// a symlink's mode 0777 (Linux gives every symlink that mode, but
/// mkfs.erofs would keep the entry's).
fn as_stored(meta: &EntryMeta) -> Cow<'_, EntryMeta> {
    let xattrs_unchanged = meta
        .xattrs()
        .all(|(name, _)| stored_name(name, meta.kind).as_deref() == Some(name));
    let mode = match meta.kind {
        Kind::Symlink => SYMLINK_MODE,
        _ => meta.mode,
    };
    if xattrs_unchanged && mode == meta.mode {
        return Cow::Borrowed(meta);
    }
    let pax = meta
        .pax
        .iter()
        .filter_map(|record| match record.key.strip_prefix(XATTR_PREFIX) {
            None => Some(record.clone()),
            Some(name) => stored_name(name, meta.kind).map(|stored| PaxRecord {
                key: [XATTR_PREFIX, &stored].concat(),
                value: record.value.clone(),
            }),
        })
        .collect();
    Cow::Owned(EntryMeta {
        mode,
        pax,
        ..meta.clone()
    })
}

/// The tar reader stops at the first zero block, or at the end of the
/// input: only two zero blocks make a complete archive.
pub(crate) fn check_end_marker(source: &mut impl Read) -> Result<()> {
    let mut block = [0u8; BLOCK];
    match source.read_exact(&mut block) {
        Ok(()) if block.iter().all(|&b| b == 0) => Ok(()),
        Ok(()) => bail!(
            "the tar stream has a single zero block where its end-of-archive marker should be"
        ),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            bail!("the tar stream ends without its end-of-archive marker")
        }
        Err(e) => Err(crate::error::Error::from(e).context("cannot read input")),
    }
}

/// Reads the rest of the input (record padding), so the producer never
/// sees a broken pipe after a complete archive.
pub(crate) fn drain(source: &mut impl Read) -> Result<()> {
    io::copy(source, &mut io::sink())
        .map(drop)
        .context("cannot read input")
}

/// The input, counting what was consumed and noting where it ended.
struct Counted<R> {
    inner: R,
    bytes: u64,
    ended: bool,
    /// To tell what a stream that is no tar is instead.
    first_block: FirstBlock,
}

impl<R: Read> Counted<R> {
    fn new(inner: R) -> Self {
        Counted {
            inner,
            bytes: 0,
            ended: false,
            first_block: FirstBlock::default(),
        }
    }

    /// Says where in the input things went wrong; when the input ended
    /// early, every error comes down to that.
    fn explain(&self, err: crate::error::Error) -> crate::error::Error {
        let at = self.bytes;
        if self.ended {
            err.context(format!(
                "the tar stream is truncated: the input ends at byte {at}"
            ))
        } else {
            err.context(format!("in the input before byte {at}"))
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.first_block.record(&buf[..n]);
        self.bytes += n as u64;
        self.ended |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::{EntryType, Header};

    /// A ustar header with every numeric field set, as real archivers write.
    fn header() -> Header {
        let mut h = Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    fn named_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header();
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
        let mut h = header();
        h.set_size(1);
        h.set_mode(0o600);
        h.set_mtime(99);
        b.append_data(&mut h, "a/b/f", &b"x"[..]).unwrap();
        let mut d = header();
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
    fn a_root_entry_comes_first_when_asked_and_replaces_the_streams() {
        let mut b = tar::Builder::new(Vec::new());
        let mut root = header();
        root.set_entry_type(EntryType::Directory);
        root.set_mode(0o700);
        root.set_uid(1000);
        root.set_size(0);
        b.append_data(&mut root, "./", &[][..]).unwrap();
        let mut f = header();
        f.set_size(3);
        f.set_mode(0o644);
        b.append_data(&mut f, "f", &b"abc"[..]).unwrap();
        let input = b.into_inner().unwrap();
        let options = ForwardOptions {
            dir_time: 77,
            describe_root: true,
            max_time: None,
        };
        let mut out = Vec::new();
        let stats = forward(&mut &input[..], &mut out, &options).unwrap();
        assert_eq!((stats.entries, stats.data_bytes), (2, 3), "entries read");
        let mut archive = tar::Archive::new(&out[..]);
        let entries: Vec<(Vec<u8>, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path_bytes().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [(b"./".to_vec(), 0o755, 0, 77), (b"f".to_vec(), 0o644, 0, 0)]
        );
    }

    /// (path, mode, xattr names) of each entry `forward_for_mksquashfs`
    /// writes for `input`.
    fn forwarded(input: &[u8]) -> Result<Vec<(String, u32, Vec<String>)>> {
        let mut out = Vec::new();
        forward_for_mksquashfs(&mut &input[..], &mut out, 0)?;
        let mut archive = tar::Archive::new(&out[..]);
        let entries = archive.entries().unwrap().map(|e| {
            let mut e = e.unwrap();
            let xattrs = match e.pax_extensions().unwrap() {
                Some(records) => records
                    .map(|r| r.unwrap().key().unwrap().to_owned())
                    .collect(),
                None => Vec::new(),
            };
            let path = e.path().unwrap().display().to_string();
            (path, e.header().mode().unwrap(), xattrs)
        });
        Ok(entries.collect())
    }

    #[test]
    fn directories_come_last_once_with_their_last_metadata_and_escaped_xattrs() {
        let dir = |mode, xattr| testkit::Raw {
            kind: EntryType::Directory,
            mode,
            pax: vec![(xattr, &b"y"[..])],
            ..testkit::Raw::default()
        };
        let input = testkit::Layer::new()
            .raw(b"d", dir(0o700, "SCHILY.xattr.user.first"))
            .file("d/f", b"x")
            .raw(b"./d/", dir(0o711, "SCHILY.xattr.trusted.overlay.opaque"))
            .symlink("s", "d")
            .raw(
                b"p",
                testkit::Raw {
                    kind: EntryType::Fifo,
                    pax: vec![("SCHILY.xattr.user.x", b"1")],
                    ..testkit::Raw::default()
                },
            )
            .tar();
        let names = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(
            forwarded(&input).unwrap(),
            [
                ("d/f".to_owned(), 0o644, names(&[])),
                ("s".to_owned(), 0o777, names(&[])),
                ("p".to_owned(), 0o644, names(&[])),
                (
                    "d/".to_owned(),
                    0o711,
                    names(&["SCHILY.xattr.trusted.overlay.overlay.opaque"])
                ),
            ]
        );
    }

    #[test]
    fn what_the_listing_refuses_is_an_error_naming_the_entry() {
        let input = testkit::Layer::new()
            .file("a", b"1")
            .file("./a", b"2")
            .tar();
        let err = format!("{:#}", forwarded(&input).unwrap_err());
        assert!(
            err.contains("entry \"./a\": the path is listed twice"),
            "{err}"
        );
    }

    #[test]
    fn times_squashfs_cannot_hold_are_refused() {
        for (mtime, pax) in [(1 << 32, None), (0, Some(&b"-0.5"[..]))] {
            let input = testkit::Layer::new()
                .raw(
                    b"f",
                    testkit::Raw {
                        mtime,
                        pax: pax.map(|value| ("mtime", value)).into_iter().collect(),
                        ..testkit::Raw::default()
                    },
                )
                .tar();
            let err = format!("{:#}", forwarded(&input).unwrap_err());
            assert!(err.contains("modification time"), "{mtime} {pax:?}: {err}");
        }
        let latest = testkit::Raw {
            mtime: SQUASHFS_MAX_TIME,
            ..testkit::Raw::default()
        };
        let input = testkit::Layer::new().raw(b"f", latest).tar();
        assert!(forwarded(&input).is_ok());
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
