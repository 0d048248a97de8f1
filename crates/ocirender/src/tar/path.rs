//! Canonical entry paths.
//!
//! Layer tars name the same file in many spellings (`./a//b/`, `/a/b`,
//! `a/b`). Every decision the merge makes compares paths, so they are
//! brought to one form first: relative, no `.` or empty components, no
//! trailing slash. The root itself becomes the empty path.
//!
//! `..` is refused rather than resolved: resolving it would let a layer
//! name a path outside the tree, and no honest layer tool writes one.

use std::fmt;

/// Why an entry name cannot be turned into a canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The name is the empty string.
    Empty,
    /// The name contains a `..` component.
    DotDot,
    /// The name contains a NUL byte (only possible through PAX records).
    Nul,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "empty entry name",
            PathError::DotDot => "path contains a `..` component",
            PathError::Nul => "path contains a NUL byte",
        })
    }
}

impl std::error::Error for PathError {}
crate::error::invalid_input_errors!(PathError);

/// Normalises a raw tar name: strips leading `/`, drops `.` and empty
/// components. Returns the empty vector for the root (`/`, `.`, `./`).
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => continue,
            b".." => return Err(PathError::DotDot),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(out)
}

/// Splits a canonical path into its parent and final component.
/// The parent of a top-level name is the root (empty path).
pub fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Joins a canonical parent path and one component.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 1 + name.len());
    out.extend_from_slice(parent);
    if !parent.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Renders a path for messages: lossy UTF-8, shortened like
/// [`abbreviate`], with the root shown as `/`.
pub fn display(path: &[u8]) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        abbreviate(path)
    }
}

/// Bytes of a name that messages quote from its start, and from its end
/// (where the file's own name is), when it is too long to quote whole.
const QUOTED_HEAD: usize = 64;
const QUOTED_TAIL: usize = 32;

/// A name as messages quote it: lossy UTF-8, and when longer than a line
/// can hold, its start and end with `…` between. A hostile layer's name
/// may be a megabyte; a message stays one short line.
pub fn abbreviate(raw: &[u8]) -> String {
    if raw.len() <= QUOTED_HEAD + QUOTED_TAIL {
        return String::from_utf8_lossy(raw).into_owned();
    }
    // Cut between characters: a UTF-8 continuation byte starts none.
    let starts_char = |i: usize| raw[i] & 0xc0 != 0x80;
    let head_end = (QUOTED_HEAD - 3..=QUOTED_HEAD)
        .rev()
        .find(|&i| starts_char(i))
        .unwrap_or(QUOTED_HEAD);
    let tail_start = (raw.len() - QUOTED_TAIL..raw.len() - QUOTED_TAIL + 4)
        .find(|&i| i < raw.len() && starts_char(i))
        .unwrap_or(raw.len() - QUOTED_TAIL);
    format!(
        "{}…{}",
        String::from_utf8_lossy(&raw[..head_end]),
        String::from_utf8_lossy(&raw[tail_start..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> Result<String, PathError> {
        normalize(raw.as_bytes()).map(|p| String::from_utf8(p).unwrap())
    }

    #[test]
    fn strips_leading_slash_dots_and_empty_components() {
        assert_eq!(n("./a//b/").unwrap(), "a/b");
        assert_eq!(n("/a/./b").unwrap(), "a/b");
        assert_eq!(n("a/b").unwrap(), "a/b");
        assert_eq!(n("a/b/.").unwrap(), "a/b");
    }

    #[test]
    fn root_spellings_become_empty() {
        for root in ["/", ".", "./", "//", "./."] {
            assert_eq!(n(root).unwrap(), "", "{root}");
        }
    }

    #[test]
    fn refuses_dotdot_empty_and_nul() {
        assert_eq!(n("a/../b"), Err(PathError::DotDot));
        assert_eq!(n("../x"), Err(PathError::DotDot));
        assert_eq!(n(".."), Err(PathError::DotDot));
        assert_eq!(n(""), Err(PathError::Empty));
        assert_eq!(normalize(b"a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn keeps_dotdot_lookalikes_and_non_utf8_bytes() {
        assert_eq!(n("a/..b/...").unwrap(), "a/..b/...");
        assert_eq!(normalize(b"a/\xff\xfe").unwrap(), b"a/\xff\xfe");
    }

    #[test]
    fn long_names_are_abbreviated_in_the_middle() {
        let deep = "a/".repeat(60000) + "file";
        let cases: &[(&[u8], &str)] = &[
            (b"etc/passwd", "etc/passwd"),
            (b"", ""),
            (
                deep.as_bytes(),
                &format!("{}…{}", "a/".repeat(32), "a/".repeat(14) + "file"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(abbreviate(raw), *want);
        }
        // Never cut inside a character: 'é' is two bytes.
        let accents = "é".repeat(200);
        let short = abbreviate(accents.as_bytes());
        assert!(!short.contains('\u{fffd}'), "{short}");
        assert_eq!(short, format!("{}…{}", "é".repeat(32), "é".repeat(16)));
        assert_eq!(display(b""), "/");
    }

    #[test]
    fn split_and_join_round_trip() {
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_parent(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(join(b"", b"c"), b"c");
    }
}
