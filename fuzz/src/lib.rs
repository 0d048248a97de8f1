//! Helpers shared by the fuzz targets: a strict reading of tar archives
//! (the `tar` crate ends an archive at EOF or at one zero block, and splits
//! PAX records at newlines; these checks want the end-of-archive marker
//! and read PAX records by their length, as GNU tar does), compression of
//! fuzzed layers, splitting inputs into pieces, and scratch directories.

use sha2::Digest as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use tar::EntryType;

/// What a target learns about one tar entry (extension headers folded in).
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// The name, after PAX `path` and GNU long names.
    pub path: Vec<u8>,
    /// The header's type.
    pub kind: EntryType,
    /// The link target, after PAX `linkpath` and GNU long links.
    pub link: Option<Vec<u8>>,
    /// The keys of the entry's PAX records.
    pub pax_keys: Vec<Vec<u8>>,
    /// Whether a PAX header before it was malformed (records that do
    /// not add up to their length prefixes).
    pub pax_malformed: bool,
    /// User and group names as stored in the header.
    pub uname: Vec<u8>,
    /// See `uname`.
    pub gname: Vec<u8>,
}

impl EntryInfo {
    /// A GNU sparse member, either kind: type `S`, or PAX `GNU.sparse.*`.
    pub fn is_sparse(&self) -> bool {
        self.kind == EntryType::GNUSparse
            || self.pax_keys.iter().any(|k| k.starts_with(b"GNU.sparse."))
    }
}

/// Parses PAX records by their length prefix, as POSIX says (a value may
/// hold a newline; the `tar` crate's own parser splits at newlines, so it
/// is not the reference here). `None` if malformed.
pub fn parse_pax(mut data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=')?;
        records.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Some(records)
}

fn block_at(bytes: &[u8], pos: usize, what: &str) -> Result<[u8; 512], String> {
    match bytes.get(pos..pos + 512) {
        Some(block) => Ok(block.try_into().unwrap()),
        None if pos >= bytes.len() => Err(format!(
            "no end-of-archive marker: the archive ends at byte {} where {what} is due",
            bytes.len()
        )),
        None => Err(format!("truncated {what} at byte {pos}")),
    }
}

fn data_at<'a>(bytes: &'a [u8], pos: usize, size: u64) -> Result<&'a [u8], String> {
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| pos.checked_add(size))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| format!("entry data truncated: {size} bytes at byte {pos}"))?;
    Ok(&bytes[pos..end])
}

fn padded(size: u64) -> u64 {
    size.div_ceil(512) * 512
}

/// Reads `bytes` as a tar archive the way GNU tar does and insists on the
/// end-of-archive marker: two zero blocks where a header is due. Headers
/// must have valid checksums and size fields, and the data (with GNU
/// sparse extension blocks) must be all there. PAX records are parsed by
/// their length; a PAX `size` record sets the data length. Returns the
/// entries (extension headers folded in), or why the archive is not
/// complete.
pub fn read_complete_tar(bytes: &[u8]) -> Result<Vec<EntryInfo>, String> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let mut pax: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
    let mut pax_malformed = false;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    loop {
        let block = block_at(bytes, pos, "a header")?;
        if block.iter().all(|&b| b == 0) {
            let second = block_at(bytes, pos + 512, "the second zero block")
                .map_err(|e| format!("only one zero block at byte {pos}: {e}"))?;
            if second.iter().any(|&b| b != 0) {
                return Err(format!("only one zero block at byte {pos}"));
            }
            return Ok(entries);
        }
        let header = tar::Header::from_byte_slice(&block);
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum::<u32>()
            + 8 * 32;
        match header.cksum() {
            Ok(stored) if stored == sum => {}
            _ => return Err(format!("bad header checksum at byte {pos}")),
        }
        let header_size = header
            .entry_size()
            .map_err(|e| format!("bad size field at byte {pos}: {e}"))?;
        let kind = header.entry_type();
        let data_pos = pos + 512;
        match kind {
            EntryType::XHeader | EntryType::XGlobalHeader => {
                let data = data_at(bytes, data_pos, header_size)?;
                let records = parse_pax(data);
                if kind == EntryType::XHeader {
                    pax_malformed = records.is_none();
                    pax = records;
                } else if records.is_none() {
                    pax_malformed = true;
                }
                pos = data_pos + padded(header_size) as usize;
                continue;
            }
            EntryType::GNULongName | EntryType::GNULongLink => {
                let data = data_at(bytes, data_pos, header_size)?;
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                if kind == EntryType::GNULongName {
                    long_name = Some(data[..end].to_vec());
                } else {
                    long_link = Some(data[..end].to_vec());
                }
                pos = data_pos + padded(header_size) as usize;
                continue;
            }
            _ => {}
        }
        let records = pax.take().unwrap_or_default();
        let record = |key: &[u8]| {
            records
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut size = header_size;
        if let Some(value) = record(b"size") {
            size = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad PAX size record before byte {pos}"))?;
        }
        let path = record(b"path")
            .or(long_name.take())
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = record(b"linkpath")
            .or(long_link.take())
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        let mut data_pos = data_pos;
        if kind == EntryType::GNUSparse && block[482] == 1 {
            // GNU sparse extension blocks follow the header.
            loop {
                let ext = block_at(bytes, data_pos, "a sparse extension block")?;
                data_pos += 512;
                if ext[504] != 1 {
                    break;
                }
            }
        }
        data_at(bytes, data_pos, size)?;
        if bytes.len() < data_pos + padded(size) as usize {
            return Err(format!("entry data padding truncated at byte {data_pos}"));
        }
        entries.push(EntryInfo {
            path,
            kind,
            link,
            pax_keys: records.iter().map(|(k, _)| k.clone()).collect(),
            pax_malformed: std::mem::take(&mut pax_malformed),
            uname: header.username_bytes().unwrap_or_default().to_vec(),
            gname: header.groupname_bytes().unwrap_or_default().to_vec(),
        });
        pos = data_pos + padded(size) as usize;
    }
}

/// How a fuzzed layer is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As given (which also lets the fuzzer write compressed bytes itself).
    Plain,
    /// Compressed with gzip here.
    Gzip,
    /// Compressed with zstd here.
    Zstd,
}

impl Storage {
    /// Two bits of a flags byte.
    pub fn from_bits(bits: u8) -> Storage {
        match bits & 3 {
            1 => Storage::Gzip,
            2 => Storage::Zstd,
            _ => Storage::Plain,
        }
    }

    /// The stored form of `data`.
    pub fn store(self, data: &[u8]) -> Vec<u8> {
        match self {
            Storage::Plain => data.to_vec(),
            Storage::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(data).unwrap();
                enc.finish().unwrap()
            }
            Storage::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }
}

/// The separator between pieces of an input (see `split`).
pub const SEPARATOR: &[u8] = b"\n%%OCIRENDER-FUZZ%%\n";

/// Splits `data` at every `SEPARATOR`.
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while let Some(i) = find(rest, SEPARATOR) {
        pieces.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    pieces.push(rest);
    pieces
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces every `from` in `data` by `to`.
pub fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = sha2::Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scratch directory for one fuzzing process, on tmpfs when there is
/// one (fast, and nothing lingers on disk). Removed when the process ends
/// normally; libFuzzer's `-max_total_time` exits through `exit`, which
/// skips destructors, so `Scratch::new` also removes what earlier runs of
/// the same target left behind.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch directory whose name starts with `ocirender-fuzz-NAME-`.
    pub fn new(name: &str) -> Scratch {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Scratch::in_base(name, base)
    }

    /// [`Scratch::new`] in the temporary directory, never on tmpfs: for
    /// files too large to hold in memory.
    pub fn on_disk(name: &str) -> Scratch {
        Scratch::in_base(name, std::env::temp_dir())
    }

    fn in_base(name: &str, base: PathBuf) -> Scratch {
        let prefix = format!("ocirender-fuzz-{name}-");
        remove_stale(&base, &prefix);
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&base)
            .expect("cannot create a scratch directory");
        // Record the owner, so a later run only removes dead processes' dirs.
        std::fs::write(dir.path().join(".pid"), std::process::id().to_string())
            .expect("cannot write to the scratch directory");
        Scratch { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn remove_stale(base: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let pid = std::fs::read_to_string(entry.path().join(".pid")).unwrap_or_default();
        let alive = !pid.is_empty() && Path::new("/proc").join(pid.trim()).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes everything in `dir` but keeps `dir`.
pub fn empty_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read scratch dir").flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let result = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    }
}

/// The sorted names in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// At most this much of an output is kept for checking.
pub const KEPT_OUTPUT: u64 = 64 << 20;

/// A sink that keeps the first [`KEPT_OUTPUT`] bytes written to it and
/// counts all of them.
#[derive(Default)]
pub struct Kept {
    bytes: Vec<u8>,
    /// Bytes written.
    pub total: u64,
}

impl Kept {
    /// Everything written, unless it was more than [`KEPT_OUTPUT`].
    pub fn kept(&self) -> Option<&[u8]> {
        (self.total <= KEPT_OUTPUT).then_some(&self.bytes[..])
    }
}

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len() as u64;
        let room = KEPT_OUTPUT.saturating_sub(self.bytes.len() as u64) as usize;
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The merge targets' common part: layers made from fuzzed bytes, merged,
/// and the output checked.
pub mod members;
pub mod placeholders;

pub mod merge {
    use super::*;
    use ocirender::blob::digest::{Algorithm, Digest};
    use ocirender::blob::layer_ref::LayerRef;
    use ocirender::merge::{merge, MergeOptions};
    use std::collections::HashMap;

    /// How the layers are presented, from a flags byte:
    ///
    /// * bits 0-1, 2-3: storage of the first and second layer (`Storage`);
    /// * bit 4: each layer declares its correct digest;
    /// * bit 5: each layer declares a wrong digest (the merge must fail);
    /// * bit 6: each layer is a byte range of a larger file;
    /// * bit 7: one layer decoded at a time instead of two, and no shared
    ///   read-ahead.
    #[derive(Debug, Clone, Copy)]
    pub struct Flags(pub u8);

    impl Flags {
        fn storage(self, layer: usize) -> Storage {
            Storage::from_bits(self.0 >> (2 * layer.min(1)))
        }
        fn right_digest(self) -> bool {
            self.0 & 0x10 != 0
        }
        fn wrong_digest(self) -> bool {
            self.0 & 0x20 != 0
        }
        fn ranged(self) -> bool {
            self.0 & 0x40 != 0
        }
        fn options(self) -> MergeOptions {
            if self.0 & 0x80 != 0 {
                MergeOptions {
                    parallel_layers: 1,
                    read_ahead_bytes: 0,
                }
            } else {
                MergeOptions::default()
            }
        }
    }

    thread_local! {
        static SCRATCH: Scratch = Scratch::new("merge");
    }

    /// Merges `layers` (raw tars, base first) presented as `flags` says,
    /// and checks the output.
    pub fn run(flags: Flags, layers: &[&[u8]]) {
        SCRATCH.with(|scratch| run_in(scratch.path(), flags, layers));
    }

    fn run_in(dir: &Path, flags: Flags, layers: &[&[u8]]) {
        let mut refs = Vec::new();
        for (i, raw) in layers.iter().enumerate() {
            let stored = flags.storage(i).store(raw);
            let path = dir.join(format!("layer{i}"));
            let (file_bytes, range) = if flags.ranged() {
                // Junk on both sides that a reader overrunning the range
                // would trip over: a tar header-ish block and zeros.
                let prefix = vec![b'x'; 1000 + i];
                let mut bytes = prefix.clone();
                bytes.extend_from_slice(&stored);
                bytes.extend_from_slice(&[0xff; 700]);
                (bytes, Some((prefix.len() as u64, stored.len() as u64)))
            } else {
                (stored.clone(), None)
            };
            std::fs::write(&path, &file_bytes).expect("write layer");
            let digest = if flags.wrong_digest() {
                let mut wrong = stored.clone();
                wrong.push(b'!');
                Some(Digest::of_bytes(Algorithm::Sha256, &wrong))
            } else if flags.right_digest() {
                Some(Digest::of_bytes(Algorithm::Sha256, &stored))
            } else {
                None
            };
            refs.push(LayerRef {
                path,
                range,
                size: None,
                digest,
                server: None,
            });
        }
        merge_and_check(flags, &refs);
    }

    /// Merges `refs` (base first) with the options `flags` gives, and
    /// checks the output. Output beyond [`KEPT_OUTPUT`] bytes is counted,
    /// not kept (a fuzzed layer may hold a gigabyte): then only the
    /// counts are checked.
    pub fn merge_and_check(flags: Flags, refs: &[LayerRef]) {
        let options = flags.options();
        let mut warnings = 0u64;
        let mut warn = |_: &str| warnings += 1;
        let mut sink = Kept::default();
        let result = merge(refs, &mut sink, &options, &mut warn).map(|(_, stats)| stats);
        if verbose() {
            match &result {
                Ok(stats) => eprintln!("merge: ok: {stats:?}"),
                Err(e) => eprintln!("merge: error: {e:#}"),
            }
        }
        let Some(out) = sink.kept() else {
            if let Ok(stats) = &result {
                assert_eq!(stats.bytes_written, sink.total, "bytes_written");
            }
            return;
        };
        match result {
            Ok(stats) => {
                assert!(
                    !flags.wrong_digest(),
                    "the merge succeeded although every layer declares a wrong digest"
                );
                assert_eq!(stats.bytes_written, out.len() as u64, "bytes_written");
                assert_eq!(stats.layers, refs.len(), "layers");
                assert_eq!(stats.warnings, warnings, "warnings counted");
                let entries = read_complete_tar(out).unwrap_or_else(|why| {
                    panic!("the merge succeeded but its output is not a complete tar: {why}")
                });
                check_entries(&entries, stats.entries_written);
            }
            Err(err) => {
                if let Ok(entries) = read_complete_tar(out) {
                    panic!(
                        "the merge failed ({err:#}) but its output is a complete tar of {} entries",
                        entries.len()
                    );
                }
            }
        }
    }

    fn check_entries(entries: &[EntryInfo], written: u64) {
        let real: Vec<&EntryInfo> = entries.iter().collect();
        assert_eq!(real.len() as u64, written, "entries_written");
        // Canonical path -> is a directory.
        let mut seen: HashMap<Vec<u8>, EntryType> = HashMap::new();
        for entry in real {
            let shown = String::from_utf8_lossy(&entry.path);
            assert!(
                !entry.is_sparse(),
                "a sparse member in the merged output: {shown}"
            );
            let canonical = ocirender::tar::path::normalize(&entry.path)
                .unwrap_or_else(|e| panic!("non-canonical path {shown:?} in the output: {e}"));
            assert!(!canonical.is_empty(), "an entry for the root: {shown:?}");
            let expected = if entry.kind == EntryType::Directory {
                [&canonical[..], b"/"].concat()
            } else {
                canonical.clone()
            };
            assert_eq!(entry.path, expected, "path written as {shown:?}");
            let base = canonical.rsplit(|&b| b == b'/').next().unwrap();
            assert!(
                !base.starts_with(b".wh."),
                "a whiteout in the output: {shown}"
            );
            match entry.kind {
                EntryType::Regular
                | EntryType::Directory
                | EntryType::Symlink
                | EntryType::Link
                | EntryType::Char
                | EntryType::Block
                | EntryType::Fifo => {}
                other => panic!("entry {shown} has type {other:?}"),
            }
            if entry.kind == EntryType::Link {
                let link = entry.link.as_deref().unwrap_or_default();
                let target = ocirender::tar::path::normalize(link).unwrap_or_else(|e| {
                    panic!(
                        "hard link {shown} names a bad path {:?}: {e}",
                        String::from_utf8_lossy(link)
                    )
                });
                match seen.get(&target) {
                    None => panic!(
                        "hard link {shown} names {:?}, which is not an earlier entry",
                        String::from_utf8_lossy(&target)
                    ),
                    Some(EntryType::Directory) => {
                        panic!("hard link {shown} names a directory")
                    }
                    Some(_) => {}
                }
            }
            if seen.insert(canonical, entry.kind).is_some() {
                panic!("{shown} appears twice in the output");
            }
        }
    }
}

/// The stream check's (`tar::forward`) output against its result: on
/// success a complete tar, whose entries are returned; on failure, no
/// complete tar. Printed first when verbose.
pub fn check_forwarded(
    result: &ocirender::Result<ocirender::sink::stream_check::ForwardStats>,
    output: &[u8],
) -> Option<Vec<EntryInfo>> {
    if verbose() {
        match result {
            Ok(stats) => eprintln!("forward: ok: {stats:?}"),
            Err(e) => eprintln!("forward: error: {e:#}"),
        }
    }
    match result {
        Ok(_) => Some(read_complete_tar(output).unwrap_or_else(|why| {
            panic!("the stream check passed, but its output is not a complete tar: {why}")
        })),
        Err(err) => {
            if let Ok(entries) = read_complete_tar(output) {
                panic!(
                    "the stream check failed ({err:#}) but its output is a complete tar of {} entries",
                    entries.len()
                );
            }
            None
        }
    }
}

/// Prints what resolving an image gave, when verbose.
pub fn show_resolved(result: &ocirender::Result<ocirender::source::image::ResolvedImage>) {
    if verbose() {
        match result {
            Ok(image) => eprintln!("resolve: ok: {} layers", image.layers.len()),
            Err(e) => eprintln!("resolve: error: {e:#}"),
        }
    }
}

/// True when `OCIRENDER_FUZZ_VERBOSE=1`: targets then print each result
/// (to check what seeds reach; far too slow for fuzzing).
pub fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("OCIRENDER_FUZZ_VERBOSE").is_some_and(|v| v == "1"))
}
