//! The tree a stream lists: what every sink admits, so that `tar2dir`,
//! `tar2sqfs` and `tar2erofs` build the same tree from a stream or all
//! refuse it.
//!
//! Left to themselves they disagree wherever a stream is ambiguous:
//! mksquashfs keeps the first of two entries for a path, mkfs.erofs and a
//! directory unpack the last; mksquashfs drops a hard link to a directory
//! and crashes on one to a later entry; a directory unpack follows a
//! symlink in the middle of a path where both builders refuse. A stream
//! check cannot make mksquashfs keep the last of two files without holding
//! the first one's data, so the rules are the ones all three can follow:
//!
//! * a directory may be listed any number of times: one directory, with
//!   the children of every entry and the metadata of the last (a sink
//!   applies it once the stream has ended);
//! * any other path is listed once, and never where a directory is, listed
//!   or implied by an earlier entry's path;
//! * every parent of an entry is a directory: a path through a file or a
//!   symlink is refused;
//! * a hard link names an earlier entry that is not a directory, by the
//!   path it was listed under (so never through a symlink), and not itself;
//! * a device's numbers fit Linux's (12-bit major, 20-bit minor: larger
//!   ones are silently cut, each sink differently), and a symlink has a
//!   target (Linux makes none without one).
//!
//! A listing holds a node per path in a [`PathTree`] (so a deep path costs
//! memory in proportion to its depth, not its depth squared) and the
//! metadata of each listed directory, whose PAX records count against
//! [`Limit::HeldDirectoryRecords`], as the merge does: memory grows with the
//! number of paths, never with file sizes. Paths are canonical
//! ([`crate::tar::path`]).

/// The rules, as the sinks' `--help` states them (a macro, so that
/// `concat!` can put them in a constant): the `THE TREE` section, ending
/// with a blank line.
#[macro_export]
macro_rules! tree_rules_help {
    () => {
        "THE TREE
  tar2dir, tar2sqfs and tar2erofs build the same tree from a stream, or
  all refuse it: a path that is not a directory is listed once, and never
  where a directory is; a directory may be listed again (its last
  entry's metadata wins); no path goes through a file or a symlink; a
  hard link names an earlier entry that is not a directory, by the path
  it was listed under; device numbers fit Linux's (major 0 to 4095, minor
  0 to 1048575); a symlink has a target. overlayfs's own attributes
  (trusted.overlay.*, user.overlay.*) are escaped as overlayfs escapes
  them (trusted.overlay.overlay.*), so the tree can be an overlay's lower
  layer; security.selinux, system.nfs4_acl, and user.* attributes on
  anything but files and directories are dropped. Directories the
  stream does not describe are 0755 root:root, with SOURCE_DATE_EPOCH's
  time (or 0).

"
    };
}

use crate::tar::entry::{EntryMeta, Kind};
#[cfg(doc)]
use crate::tar::limits::Limit;
use crate::tar::held_records::HeldRecords;
use crate::tar::limits::LimitError;
use crate::tar::path::{self, display, PathError};
use crate::tar::path_tree::{NodeId, Order, PathTree, ROOT};
use std::fmt;

/// The largest device major number Linux holds (12 bits).
pub const MAX_DEVICE_MAJOR: u32 = (1 << 12) - 1;
/// The largest device minor number Linux holds (20 bits).
pub const MAX_DEVICE_MINOR: u32 = (1 << 20) - 1;

/// Why an entry cannot be part of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingError {
    /// A non-directory at a path listed before.
    ListedTwice,
    /// A non-directory where a directory was listed or implied.
    OverDirectory,
    /// An ancestor of the entry is not a directory.
    UnderNonDirectory {
        /// The ancestor.
        parent: Vec<u8>,
        /// What it is.
        kind: Kind,
    },
    /// A hard link to its own path.
    LinkToItself,
    /// A hard link to a directory (the root included).
    LinkToDirectory(Vec<u8>),
    /// A hard link to a path no earlier entry listed.
    LinkToNoEarlierEntry(Vec<u8>),
    /// A hard link target that is not a path inside the tree.
    LinkTarget(PathError),
    /// Device numbers Linux cannot hold.
    DeviceOutOfRange(u32, u32),
    /// A symlink without a target.
    EmptySymlink,
    /// The directories' metadata held to the end pass their limit.
    Held(LimitError),
}

impl fmt::Display for ListingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListingError::ListedTwice => {
                f.write_str("the path is listed twice (only a directory may be)")
            }
            ListingError::OverDirectory => f.write_str(
                "the path is a directory already (listed, or the parent of an earlier entry); \
                 only a directory may list it again",
            ),
            ListingError::UnderNonDirectory { parent, kind } => write!(
                f,
                "its parent {:?} is {}, not a directory",
                display(parent),
                kind_in_words(*kind)
            ),
            ListingError::LinkToItself => f.write_str("hard link to itself"),
            ListingError::LinkToDirectory(target) => {
                write!(f, "hard link to the directory {:?}", display(target))
            }
            ListingError::LinkToNoEarlierEntry(target) => write!(
                f,
                "hard link target {:?} is not an earlier entry of the stream (a hard link names \
                 an earlier file by the path it was listed under, never through a symlink)",
                display(target)
            ),
            ListingError::LinkTarget(err) => write!(f, "bad hard link target: {err}"),
            ListingError::DeviceOutOfRange(major, minor) => write!(
                f,
                "device number {major}:{minor} is outside Linux's range \
                 (major 0 to {MAX_DEVICE_MAJOR}, minor 0 to {MAX_DEVICE_MINOR})"
            ),
            ListingError::EmptySymlink => f.write_str("symlink with an empty target"),
            ListingError::Held(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ListingError {}
crate::error::invalid_input_errors!(ListingError);

fn kind_in_words(kind: Kind) -> &'static str {
    match kind {
        Kind::Regular => "a file",
        Kind::HardLink => "a hard link",
        Kind::Symlink => "a symlink",
        Kind::CharDevice | Kind::BlockDevice => "a device",
        Kind::Directory => "a directory",
        Kind::Fifo => "a FIFO",
    }
}

/// What a path is.
#[derive(Debug, Default)]
enum Node {
    /// Not listed, nor the parent of anything listed: a node the tree made
    /// on the way to another.
    #[default]
    Absent,
    /// A directory, and the metadata of its last entry (none if it is only
    /// the parent of others).
    Directory(Option<Box<EntryMeta>>),
    /// Anything else: listed once, never changed.
    Other(Kind),
}

/// The paths a stream listed so far.
#[derive(Debug)]
pub struct Listing {
    nodes: PathTree<Node>,
    held: HeldRecords,
}

impl Default for Listing {
    fn default() -> Self {
        Listing::new()
    }
}

impl Listing {
    /// An empty listing: the root only, which is a directory.
    pub fn new() -> Listing {
        Listing {
            nodes: PathTree::new(Node::Directory(None)),
            held: HeldRecords::default(),
        }
    }

    /// Adds the entry at `path` (canonical, not the root) to the tree, or
    /// says why the sinks cannot all build it.
    pub fn admit(&mut self, path: &[u8], meta: &EntryMeta) -> Result<(), ListingError> {
        check_node(meta)?;
        if meta.kind == Kind::HardLink {
            self.check_link(path, &hard_link_target(meta)?)?;
        }
        let (parent_path, name) = path::split_parent(path);
        let parent = self.admit_parents(parent_path)?;
        let id = self.nodes.child(parent, name);
        match (self.nodes.get_mut(id), meta.kind) {
            (Node::Other(_), _) => return Err(ListingError::ListedTwice),
            (Node::Directory(_), kind) if kind != Kind::Directory => {
                return Err(ListingError::OverDirectory)
            }
            (node, Kind::Directory) => {
                self.held.hold(&meta.pax).map_err(ListingError::Held)?;
                *node = Node::Directory(Some(Box::new(meta.clone())));
            }
            (node, kind) => *node = Node::Other(kind),
        }
        Ok(())
    }

    /// Calls `visit` with every directory and the metadata it gets: its
    /// last entry's, or `implicit` for one the stream never listed; in
    /// `order` (parents first to write them, children first to set their
    /// times).
    pub fn directories<E>(
        &self,
        implicit: &EntryMeta,
        order: Order,
        mut visit: impl FnMut(&[u8], &EntryMeta) -> Result<(), E>,
    ) -> Result<(), E> {
        let directories = (1..self.nodes.len() as NodeId)
            .filter(|&id| matches!(self.nodes.get(id), Node::Directory(_)));
        self.nodes
            .depth_first(directories, order, |path, id| match self.nodes.get(id) {
                Node::Directory(meta) => visit(path, meta.as_deref().unwrap_or(implicit)),
                _ => unreachable!("only directories are visited"),
            })
    }

    /// What the stream lists at canonical `path` (a directory also when
    /// only implied by a deeper path; the root is a directory), or `None`.
    pub fn listed(&self, path: &[u8]) -> Option<Kind> {
        if path.is_empty() {
            return Some(Kind::Directory);
        }
        match self.nodes.get(self.nodes.find(path)?) {
            Node::Absent => None,
            Node::Directory(_) => Some(Kind::Directory),
            Node::Other(kind) => Some(*kind),
        }
    }

    /// Makes every component of `parent` (canonical; the root if empty) a
    /// directory, implied if it is not listed yet, and returns its node.
    fn admit_parents(&mut self, parent: &[u8]) -> Result<NodeId, ListingError> {
        if parent.is_empty() {
            return Ok(ROOT);
        }
        let mut id = ROOT;
        let mut walked = 0;
        for name in parent.split(|&b| b == b'/') {
            walked += name.len() + usize::from(walked > 0);
            id = self.nodes.child(id, name);
            match self.nodes.get_mut(id) {
                Node::Directory(_) => {}
                node @ Node::Absent => *node = Node::Directory(None),
                Node::Other(kind) => {
                    return Err(ListingError::UnderNonDirectory {
                        parent: parent[..walked].to_vec(),
                        kind: *kind,
                    })
                }
            }
        }
        Ok(id)
    }

    fn check_link(&self, path: &[u8], target: &[u8]) -> Result<(), ListingError> {
        if target == path {
            return Err(ListingError::LinkToItself);
        }
        match self.nodes.find(target).map(|id| self.nodes.get(id)) {
            _ if target.is_empty() => Err(ListingError::LinkToDirectory(Vec::new())),
            Some(Node::Other(_)) => Ok(()),
            Some(Node::Directory(_)) => Err(ListingError::LinkToDirectory(target.to_vec())),
            Some(Node::Absent) | None => Err(ListingError::LinkToNoEarlierEntry(target.to_vec())),
        }
    }
}

/// The canonical path a hard link names.
pub fn hard_link_target(meta: &EntryMeta) -> Result<Vec<u8>, ListingError> {
    path::normalize(&meta.link_target).map_err(ListingError::LinkTarget)
}

/// What the entry itself must be, wherever it is.
fn check_node(meta: &EntryMeta) -> Result<(), ListingError> {
    match meta.kind {
        Kind::CharDevice | Kind::BlockDevice => {
            let (major, minor) = meta.device;
            if major > MAX_DEVICE_MAJOR || minor > MAX_DEVICE_MINOR {
                return Err(ListingError::DeviceOutOfRange(major, minor));
            }
        }
        Kind::Symlink if meta.link_target.is_empty() => return Err(ListingError::EmptySymlink),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind, link: &str) -> EntryMeta {
        EntryMeta {
            kind,
            link_target: link.as_bytes().to_vec(),
            ..EntryMeta::implicit_dir()
        }
    }

    fn dir() -> EntryMeta {
        meta(Kind::Directory, "")
    }

    fn file() -> EntryMeta {
        meta(Kind::Regular, "")
    }

    /// Entries to admit in order, and what admitting the last one gives.
    type Case = (Vec<(&'static str, EntryMeta)>, Result<(), ListingError>);

    /// Admits `entries` in order; the result of the last.
    fn admit_all(entries: &[(&str, EntryMeta)]) -> Result<(), ListingError> {
        let mut listing = Listing::new();
        let (last, earlier) = entries.split_last().unwrap();
        for (path, meta) in earlier {
            listing.admit(path.as_bytes(), meta).unwrap();
        }
        listing.admit(last.0.as_bytes(), &last.1)
    }

    #[test]
    fn what_a_path_may_be_listed_after() {
        use ListingError::*;
        let under_file = UnderNonDirectory {
            parent: b"a".to_vec(),
            kind: Kind::Regular,
        };
        let under_symlink = UnderNonDirectory {
            parent: b"a/l".to_vec(),
            kind: Kind::Symlink,
        };
        let cases: Vec<Case> = vec![
            (vec![("a", dir()), ("a", dir())], Ok(())),
            (vec![("a/f", file()), ("a", dir())], Ok(())),
            (vec![("a", file()), ("a", file())], Err(ListedTwice)),
            (vec![("a", file()), ("a", dir())], Err(ListedTwice)),
            (vec![("a", dir()), ("a", file())], Err(OverDirectory)),
            (vec![("a/f", file()), ("a", file())], Err(OverDirectory)),
            (vec![("a", file()), ("a/b/f", file())], Err(under_file)),
            (
                vec![("a/l", meta(Kind::Symlink, "d")), ("a/l/f", dir())],
                Err(under_symlink),
            ),
        ];
        for (entries, want) in cases {
            assert_eq!(admit_all(&entries), want, "{entries:?}");
        }
    }

    #[test]
    fn what_a_hard_link_may_name() {
        use ListingError::*;
        let link = |target| meta(Kind::HardLink, target);
        let cases: Vec<Case> = vec![
            (vec![("f", file()), ("h", link("./f"))], Ok(())),
            (
                vec![("f", file()), ("h", link("f")), ("i", link("h"))],
                Ok(()),
            ),
            (
                vec![("s", meta(Kind::Symlink, "x")), ("h", link("s"))],
                Ok(()),
            ),
            (vec![("h", link("h"))], Err(LinkToItself)),
            (
                vec![("h", link("f"))],
                Err(LinkToNoEarlierEntry(b"f".to_vec())),
            ),
            (
                vec![
                    ("d", dir()),
                    ("l", meta(Kind::Symlink, "d")),
                    ("h", link("l/f")),
                ],
                Err(LinkToNoEarlierEntry(b"l/f".to_vec())),
            ),
            (
                vec![("d/f", file()), ("h", link("d"))],
                Err(LinkToDirectory(b"d".to_vec())),
            ),
            (
                vec![("f", file()), ("h", link("/"))],
                Err(LinkToDirectory(Vec::new())),
            ),
            (
                vec![("h", link("../f"))],
                Err(LinkTarget(PathError::DotDot)),
            ),
        ];
        for (entries, want) in cases {
            assert_eq!(admit_all(&entries), want, "{entries:?}");
        }
    }

    #[test]
    fn devices_fit_linux_and_symlinks_have_targets() {
        let device = |major, minor| EntryMeta {
            device: (major, minor),
            ..meta(Kind::BlockDevice, "")
        };
        let fits = device(MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR);
        assert_eq!(admit_all(&[("d", fits)]), Ok(()));
        for (major, minor) in [(MAX_DEVICE_MAJOR + 1, 0), (0, MAX_DEVICE_MINOR + 1)] {
            assert_eq!(
                admit_all(&[("d", device(major, minor))]),
                Err(ListingError::DeviceOutOfRange(major, minor))
            );
        }
        assert_eq!(
            admit_all(&[("s", meta(Kind::Symlink, ""))]),
            Err(ListingError::EmptySymlink)
        );
    }

    #[test]
    fn directories_get_their_last_metadata_parents_first() {
        let mut listing = Listing::new();
        let first = EntryMeta {
            mode: 0o700,
            ..dir()
        };
        let last = EntryMeta {
            mode: 0o711,
            ..dir()
        };
        listing.admit(b"a-b", &dir()).unwrap();
        listing.admit(b"a/b/f", &file()).unwrap();
        listing.admit(b"a", &first).unwrap();
        listing.admit(b"a", &last).unwrap();
        let implicit = EntryMeta { mtime: 7, ..dir() };
        let mut got: Vec<(Vec<u8>, u32, u64)> = Vec::new();
        listing
            .directories(&implicit, Order::ParentsFirst, |path, meta| {
                got.push((path.to_vec(), meta.mode, meta.mtime));
                Ok::<_, ()>(())
            })
            .unwrap();
        let want = [
            (b"a".to_vec(), 0o711, 0),
            (b"a/b".to_vec(), 0o755, 7),
            (b"a-b".to_vec(), 0o755, 0),
        ];
        assert_eq!(got, want);
        got.clear();
        listing
            .directories(&implicit, Order::ChildrenFirst, |path, meta| {
                got.push((path.to_vec(), meta.mode, meta.mtime));
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(got, want.into_iter().rev().collect::<Vec<_>>());
    }
}
