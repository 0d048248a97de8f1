//! The options every image builder reads the same way, checked here
//! rather than by the builder program: a compressor from the builder's
//! table, a level in that compressor's range, a size in bytes (`128K`,
//! `1M`). A value out of range is a [`BadOption`] naming the option, the
//! value and every value it takes, found before any input is read: the
//! builder program would see it only after the whole stream had been
//! read, and would explain it in its own words (or, for a level, clamp
//! it silently).

use std::fmt;
use std::ops::RangeInclusive;

/// An option value a builder cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOption {
    /// The option (`--comp`).
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What the option takes, in full (`one of zstd, gzip, xz`).
    pub expected: String,
}

impl fmt::Display for BadOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: expected {}",
            self.option, self.value, self.expected
        )
    }
}

impl std::error::Error for BadOption {}

impl From<BadOption> for crate::error::Error {
    fn from(bad: BadOption) -> Self {
        crate::error::Error::new(crate::error::ErrorKind::Invalid, bad.to_string())
    }
}

/// A compressor a builder offers, and the levels it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressor {
    /// Its name, as `--comp` takes it and the builder program reads it.
    pub name: &'static str,
    /// The levels it takes, if it takes one.
    pub levels: Option<RangeInclusive<u32>>,
    /// The level passed when none is given, if not the program's own.
    pub default_level: Option<u32>,
}

impl Compressor {
    /// The compressor of `table` named `name`.
    pub fn named(
        table: &'static [Compressor],
        name: &str,
    ) -> Result<&'static Compressor, BadOption> {
        table
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| BadOption {
                option: "--comp",
                value: name.to_owned(),
                expected: format!("one of {}", Compressor::names(table).join(", ")),
            })
    }

    /// The names of `table`, in its order.
    pub fn names(table: &[Compressor]) -> Vec<&'static str> {
        table.iter().map(|c| c.name).collect()
    }

    /// The level to pass: `level` if this compressor takes it, else its
    /// default.
    pub fn level(&self, level: Option<u32>) -> Result<Option<u32>, BadOption> {
        let Some(level) = level else {
            return Ok(self.default_level);
        };
        let refused = |expected: String| BadOption {
            option: "--level",
            value: level.to_string(),
            expected,
        };
        match &self.levels {
            None => Err(refused(format!("no level: {} has none", self.name))),
            Some(range) if !range.contains(&level) => Err(refused(format!(
                "{}-{} for {}",
                range.start(),
                range.end(),
                self.name
            ))),
            Some(_) => Ok(Some(level)),
        }
    }
}

/// A size option: its name and the sizes it takes.
#[derive(Debug, Clone, Copy)]
pub struct SizeRule {
    /// The option (`--block-size`).
    pub option: &'static str,
    /// The smallest size.
    pub min: u64,
    /// The largest size.
    pub max: u64,
    /// Whether it must be a power of two (else a multiple of `min`).
    pub power_of_two: bool,
}

impl SizeRule {
    /// Reads `text`: bytes, or with a `K`, `M` or `G` suffix (powers of
    /// 1024), held to the rule.
    pub fn parse(&self, text: &str) -> Result<u64, BadOption> {
        let shape = if self.power_of_two {
            "a power of two".to_owned()
        } else {
            format!("a multiple of {} bytes", self.min)
        };
        let refused = || BadOption {
            option: self.option,
            value: text.to_owned(),
            expected: format!(
                "{shape} from {} to {} (bytes, or with K, M or G)",
                short_size(self.min),
                short_size(self.max)
            ),
        };
        let size = parse_size(text).ok_or_else(refused)?;
        let shaped = if self.power_of_two {
            size.is_power_of_two()
        } else {
            size.is_multiple_of(self.min)
        };
        if !(self.min..=self.max).contains(&size) || !shaped {
            return Err(refused());
        }
        Ok(size)
    }
}

/// `text` as bytes: a number, or with a `K`, `M` or `G` suffix.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 10),
        Some((at, 'm' | 'M')) => (&text[..at], 20),
        Some((at, 'g' | 'G')) => (&text[..at], 30),
        _ => (text, 0),
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `4K`, `1M`: a size as the options take it.
fn short_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: &[Compressor] = &[
        Compressor {
            name: "zstd",
            levels: Some(1..=22),
            default_level: Some(3),
        },
        Compressor {
            name: "xz",
            levels: None,
            default_level: None,
        },
    ];

    #[test]
    fn unknown_compressors_are_refused_with_the_whole_list() {
        assert_eq!(Compressor::named(TABLE, "xz").unwrap().name, "xz");
        let bad = Compressor::named(TABLE, "zstdd").unwrap_err();
        assert_eq!(bad.to_string(), "--comp zstdd: expected one of zstd, xz");
    }

    #[test]
    fn levels_are_checked_against_the_compressor() {
        let zstd = Compressor::named(TABLE, "zstd").unwrap();
        let xz = Compressor::named(TABLE, "xz").unwrap();
        for (compressor, level, want) in [
            (zstd, None, Ok(Some(3))),
            (zstd, Some(22), Ok(Some(22))),
            (zstd, Some(99), Err("--level 99: expected 1-22 for zstd")),
            (zstd, Some(0), Err("--level 0: expected 1-22 for zstd")),
            (xz, None, Ok(None)),
            (
                xz,
                Some(5),
                Err("--level 5: expected no level: xz has none"),
            ),
        ] {
            let got = compressor.level(level).map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map_err(str::to_owned),
                "{} {level:?}",
                compressor.name
            );
        }
    }

    #[test]
    fn sizes_are_held_to_their_rule() {
        let block = SizeRule {
            option: "--block-size",
            min: 4 << 10,
            max: 1 << 20,
            power_of_two: true,
        };
        let cluster = SizeRule {
            option: "--cluster-size",
            power_of_two: false,
            ..block
        };
        for (rule, text, want) in [
            (block, "128K", Some(128 << 10)),
            (block, "1M", Some(1 << 20)),
            (block, "4096", Some(4096)),
            (block, "3K", None),
            (block, "2M", None),
            (block, "lots", None),
            (cluster, "12K", Some(12 << 10)),
            (cluster, "5000", None),
            (cluster, "0", None),
        ] {
            assert_eq!(rule.parse(text).ok(), want, "{} {text}", rule.option);
        }
        assert_eq!(
            block.parse("3K").unwrap_err().to_string(),
            "--block-size 3K: expected a power of two from 4K to 1M (bytes, or with K, M or G)"
        );
    }
}
