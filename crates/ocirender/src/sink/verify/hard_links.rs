//! Hard links as shared inodes: a link entry must be the inode of its
//! target, and a file the stream lists on its own must not be a link to
//! another listed file. Only inodes with more than one link are
//! remembered, so memory grows with the output's hard-linked files, not
//! with its size.

use super::found::Found;
use std::collections::HashMap;

/// The first listed file of each shared inode.
#[derive(Debug, Default)]
pub struct HardLinks {
    first: HashMap<(u64, u64), Vec<u8>>,
}

impl HardLinks {
    /// Records that the stream lists `path` on its own, found as `found`;
    /// returns the earlier listed path `found` is a hard link to, if any.
    pub fn claim(&mut self, path: &[u8], found: &Found) -> Option<Vec<u8>> {
        if found.links < 2 {
            return None;
        }
        match self.first.entry(found.inode) {
            std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(path.to_vec());
                None
            }
        }
    }
}
