//! The comparison itself: each entry of the stream against the output, as
//! it is read (a file's data is digested on the fly, never held), then
//! each directory with the metadata its last entry gave it, and whatever
//! the output holds that the stream does not list.

use super::compare::{self, expected_words};
use super::content;
use super::difference::printable;
use super::difference::{Difference, DifferenceKind};
use super::found::{Found, OutputTree};
use super::hard_links::HardLinks;
use super::words;
use super::VerifyStats;
use crate::error::Result;
use crate::sink::listing::{hard_link_target, Listing};
use crate::tar::entry::{EntryMeta, Kind};
use crate::tar::path;
use crate::tar::path_tree::Order;
use std::io::Read;

/// Where differences go, one at a time, as they are found.
pub type Report<'r> = &'r mut dyn FnMut(&Difference) -> Result<()>;

/// The state of one comparison.
pub struct Checker<'r> {
    tree: OutputTree,
    /// The tree the stream lists so far, as every sink admits it.
    listing: Listing,
    links: HardLinks,
    keeps_nanoseconds: bool,
    buffer: Vec<u8>,
    report: Report<'r>,
    stats: VerifyStats,
}

impl<'r> Checker<'r> {
    /// A comparison against `tree`.
    pub fn new(tree: OutputTree, keeps_nanoseconds: bool, report: Report<'r>) -> Checker<'r> {
        Checker {
            tree,
            listing: Listing::new(),
            links: HardLinks::default(),
            keeps_nanoseconds,
            buffer: content::buffer(),
            report,
            stats: VerifyStats::default(),
        }
    }

    /// Compares the entry `raw` (its data in `data`), unless it is a
    /// directory: those wait for their last entry.
    pub fn entry(&mut self, raw: &[u8], meta: &EntryMeta, data: &mut dyn Read) -> Result<()> {
        let path = path::normalize(raw)?;
        if path.is_empty() {
            return Ok(()); // The root's own entries: every sink drops them.
        }
        self.listing.admit(&path, meta)?;
        self.stats.entries += 1;
        match meta.kind {
            Kind::Directory => Ok(()),
            Kind::HardLink => self.hard_link(&path, meta),
            _ => self.non_directory(&path, meta, data),
        }
    }

    /// Compares every directory, listed or implied (`implicit` the
    /// metadata of the latter), and looks for what the stream does not
    /// list.
    pub fn finish(mut self, implicit: &EntryMeta) -> Result<VerifyStats> {
        let listing = std::mem::take(&mut self.listing);
        self.extras(&listing, b"")?;
        listing.directories(implicit, Order::ParentsFirst, |path, meta| {
            if let Some(found) = self.present(path, meta)? {
                self.attributes(path, meta, &found)?;
                self.extras(&listing, path)?;
            }
            Ok::<_, crate::error::Error>(())
        })?;
        Ok(self.stats)
    }

    fn non_directory(&mut self, path: &[u8], meta: &EntryMeta, data: &mut dyn Read) -> Result<()> {
        let Some(found) = self.present(path, meta)? else {
            return Ok(());
        };
        if let Some(first) = self.links.claim(path, &found) {
            let found = format!("a hard link to {}", printable(&first));
            self.emit(
                path,
                DifferenceKind::HardLink,
                "a file of its own".into(),
                found,
            )?;
        }
        self.attributes(path, meta, &found)?;
        match meta.kind {
            Kind::Symlink => self.link_target(path, meta),
            Kind::Regular => self.data(path, meta, &found, data),
            _ => Ok(()),
        }
    }

    /// A hard link is its target's inode; the target itself was compared.
    fn hard_link(&mut self, path: &[u8], meta: &EntryMeta) -> Result<()> {
        let target = hard_link_target(meta)?;
        let expected = format!("a hard link to {}", printable(&target));
        let Some(found) = self.tree.stat(path)? else {
            return self.emit(path, DifferenceKind::Missing, expected, "nothing".into());
        };
        let target_inode = self.tree.stat(&target)?.map(|t| t.inode);
        if target_inode != Some(found.inode) {
            let found = format!(
                "{} of its own",
                words::file_type(found.file_type, found.device)
            );
            self.emit(path, DifferenceKind::HardLink, expected, found)?;
        }
        Ok(())
    }

    /// What is at `path` if it has the entry's type; else reports it
    /// missing or of another type.
    fn present(&mut self, path: &[u8], meta: &EntryMeta) -> Result<Option<Found>> {
        let Some(found) = self.tree.stat(path)? else {
            let expected = expected_words(meta);
            self.emit(path, DifferenceKind::Missing, expected, "nothing".into())?;
            return Ok(None);
        };
        match compare::file_types(path, meta, &found) {
            Some(difference) => self.report(difference).map(|()| None),
            None => Ok(Some(found)),
        }
    }

    fn attributes(&mut self, path: &[u8], meta: &EntryMeta, found: &Found) -> Result<()> {
        let xattrs = self.tree.xattrs(path)?;
        for difference in compare::attributes(path, meta, found, &xattrs, self.keeps_nanoseconds) {
            self.report(difference)?;
        }
        Ok(())
    }

    fn link_target(&mut self, path: &[u8], meta: &EntryMeta) -> Result<()> {
        let target = self.tree.read_link(path)?;
        if target != meta.link_target {
            let expected = words::link_target(&meta.link_target);
            let found = words::link_target(&target);
            self.emit(path, DifferenceKind::LinkTarget, expected, found)?;
        }
        Ok(())
    }

    /// Size first; the bytes only when the sizes agree.
    fn data(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        found: &Found,
        data: &mut dyn Read,
    ) -> Result<()> {
        if found.size != meta.size {
            let expected = format!("{} bytes", meta.size);
            let found = format!("{} bytes", found.size);
            return self.emit(path, DifferenceKind::Size, expected, found);
        }
        let expected = content::entry_digest(data, meta.size, &mut self.buffer)?;
        let mut file = self.tree.open_file(path)?;
        let found = content::file_digest(&mut file, &mut self.buffer)?;
        self.stats.data_bytes += meta.size;
        if expected != found {
            self.emit(path, DifferenceKind::Content, expected, found)?;
        }
        Ok(())
    }

    /// Reports each name in the directory `dir` that the stream does not
    /// list (an extra directory once, not what it holds).
    fn extras(&mut self, listing: &Listing, dir: &[u8]) -> Result<()> {
        for name in self.tree.names(dir)? {
            let child = path::join(dir, &name);
            if listing.listed(&child).is_some() {
                continue;
            }
            if let Some(found) = self.tree.stat(&child)? {
                let found = words::file_type(found.file_type, found.device);
                self.emit(&child, DifferenceKind::Extra, "nothing".into(), found)?;
            }
        }
        Ok(())
    }

    fn emit(
        &mut self,
        path: &[u8],
        kind: DifferenceKind,
        expected: String,
        found: String,
    ) -> Result<()> {
        self.report(Difference {
            path: path.to_vec(),
            kind,
            expected,
            found,
        })
    }

    fn report(&mut self, difference: Difference) -> Result<()> {
        self.stats.differences += 1;
        (self.report)(&difference)
    }
}
