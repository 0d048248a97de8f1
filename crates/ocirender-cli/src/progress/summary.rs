//! The one-line summary of a finished merge (`oci-merge --stats`), which
//! takes the progress line's place: at most 80 columns with the
//! `oci-merge: ` prefix, whatever the numbers.

use indicatif::HumanBytes;
use ocirender::progress::MergeStats;
use std::time::Duration;

/// The columns a summary may take after `oci-merge: `.
pub const SUMMARY_WIDTH: usize = 80 - "oci-merge: ".len();

/// `4 layers, 9.74 MiB in 10.2 s (975.29 KiB/s), 41 entries, 108 paths`,
/// then the warnings if there were any. What does not fit in
/// [`SUMMARY_WIDTH`] is left out from the end: the paths, then the rate.
pub fn summary(stats: &MergeStats, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = stats.stored_bytes_read as f64 / seconds.max(0.001);
    let read = format!(
        "{}, {} in {seconds:.1} s",
        counted(stats.layers as u64, "layer"),
        HumanBytes(stats.stored_bytes_read)
    );
    let rate = format!(" ({}/s)", HumanBytes(rate as u64));
    let entries = format!(", {}", counted(stats.entries_written, "entry"));
    let paths = format!(", {}", counted(stats.paths as u64, "path"));
    let warnings = match stats.warnings {
        0 => String::new(),
        n => format!(", {}", counted(n, "warning")),
    };
    let fits = |parts: &[&str]| {
        let line = parts.concat();
        (line.len() <= SUMMARY_WIDTH).then_some(line)
    };
    fits(&[&read, &rate, &entries, &paths, &warnings])
        .or_else(|| fits(&[&read, &rate, &entries, &warnings]))
        .or_else(|| fits(&[&read, &entries, &warnings]))
        .unwrap_or_else(|| [read, entries, warnings].concat())
}

/// `1 layer`, `2 layers`; `1 entry`, `2 entries`.
fn counted(n: u64, word: &str) -> String {
    match (n, word.strip_suffix('y')) {
        (1, _) => format!("1 {word}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(layers: usize, read: u64, entries: u64, warnings: u64) -> MergeStats {
        MergeStats {
            layers,
            members_read: entries + 10,
            entries_written: entries,
            bytes_written: read * 2,
            stored_bytes_read: read,
            warnings,
            paths: entries as usize + 1,
        }
    }

    #[test]
    fn the_summary_fits_80_columns_leaving_out_what_does_not() {
        let cases = [
            (
                stats(3, 3_915_705, 40, 0),
                2.0,
                "3 layers, 3.73 MiB in 2.0 s (1.87 MiB/s), 40 entries, 41 paths",
            ),
            (
                stats(4, 376_112_562, 52_087, 2),
                73.6,
                "4 layers, 358.69 MiB in 73.6 s, 52087 entries, 2 warnings",
            ),
            (
                stats(1, 1, 1, 1),
                0.0,
                "1 layer, 1 B in 0.0 s (1000 B/s), 1 entry, 2 paths, 1 warning",
            ),
            (
                stats(127, 1 << 40, 99_999_999, 99_999),
                99_999.9,
                "127 layers, 1.00 TiB in 99999.9 s, 99999999 entries, 99999 warnings",
            ),
        ];
        for (stats, seconds, line) in cases {
            let summary = summary(&stats, Duration::from_secs_f64(seconds));
            assert_eq!(summary, line);
            assert!(format!("oci-merge: {summary}").len() <= 80, "{summary}");
        }
    }
}
