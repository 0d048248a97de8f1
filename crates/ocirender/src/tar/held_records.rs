//! What a reader holds until the end of its stream: the PAX records of
//! directory entries, which are written (or applied) last.

use crate::tar::entry::PaxRecord;
use crate::tar::limits::{Limit, LimitError};

/// The PAX records of the directory entries a reader holds until the end
/// of its stream, counted against [`Limit::HeldDirectoryRecords`].
#[derive(Debug, Default)]
pub struct HeldRecords {
    bytes: u64,
}

impl HeldRecords {
    /// Counts the records of one more directory entry held, failing once
    /// all of them pass the limit. An entry replaced later still counts:
    /// the count only grows, so a stream cannot cycle past it.
    pub fn hold(&mut self, records: &[PaxRecord]) -> Result<(), LimitError> {
        let size = std::mem::size_of::<PaxRecord>();
        self.bytes += records
            .iter()
            .map(|r| (size + r.key.len() + r.value.len()) as u64)
            .sum::<u64>();
        Limit::HeldDirectoryRecords.check("the directories' PAX records (xattrs)", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_records_count_up_to_their_limit() {
        let record = |len| PaxRecord {
            key: b"SCHILY.xattr.user.x".to_vec(),
            value: vec![0; len],
        };
        let mut held = HeldRecords::default();
        for _ in 0..63 {
            held.hold(&[record(1 << 20)]).unwrap();
        }
        let err = held.hold(&[record(1 << 20)]).unwrap_err();
        assert_eq!(err.limit, Limit::HeldDirectoryRecords);
        assert!(
            err.to_string().contains("more than the limit of 67108864"),
            "{err}"
        );
    }
}
