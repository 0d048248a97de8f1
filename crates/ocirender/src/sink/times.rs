//! An entry's times as every sink reads them: a PAX record when there is
//! one (sub-second, before 1970, or past the header field's range), else
//! the header's whole seconds.

use crate::tar::entry::EntryMeta;

/// A point in time: `seconds` since 1970 (negative before), plus
/// `nanoseconds` towards the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Whole seconds, rounded down.
    pub seconds: i64,
    /// The fraction, 0 to 999,999,999.
    pub nanoseconds: u32,
}

/// The entry's modification time.
pub fn modification_time(meta: &EntryMeta) -> Time {
    pax_time(meta, b"mtime").unwrap_or(Time {
        seconds: i64::try_from(meta.mtime).unwrap_or(i64::MAX),
        nanoseconds: 0,
    })
}

/// The entry's access time, if it records one.
pub fn access_time(meta: &EntryMeta) -> Option<Time> {
    pax_time(meta, b"atime")
}

/// A PAX time record (`1600000000.123456789`, possibly negative).
fn pax_time(meta: &EntryMeta, key: &[u8]) -> Option<Time> {
    let record = meta.pax.iter().find(|r| r.key == key)?;
    let text = std::str::from_utf8(&record.value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let negative = secs.starts_with('-');
    let seconds: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanoseconds: u32 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(if negative && nanoseconds > 0 {
        Time {
            seconds: seconds - 1,
            nanoseconds: 1_000_000_000 - nanoseconds,
        }
    } else {
        Time {
            seconds,
            nanoseconds,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::entry::PaxRecord;

    #[test]
    fn pax_times_keep_nanoseconds_and_the_header_whole_seconds() {
        let mut meta = EntryMeta {
            mtime: 77,
            ..EntryMeta::implicit_dir()
        };
        assert_eq!(
            modification_time(&meta),
            Time {
                seconds: 77,
                nanoseconds: 0
            }
        );
        assert_eq!(access_time(&meta), None);
        meta.pax.push(PaxRecord {
            key: b"mtime".to_vec(),
            value: b"1600000000.5".to_vec(),
        });
        meta.pax.push(PaxRecord {
            key: b"atime".to_vec(),
            value: b"-1.25".to_vec(),
        });
        assert_eq!(
            modification_time(&meta),
            Time {
                seconds: 1_600_000_000,
                nanoseconds: 500_000_000
            }
        );
        assert_eq!(
            access_time(&meta),
            Some(Time {
                seconds: -2,
                nanoseconds: 750_000_000
            })
        );
    }
}
