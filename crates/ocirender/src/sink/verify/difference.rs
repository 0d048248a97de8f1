//! One way an output differs from the tree its stream describes, as one
//! line a person or a script can read.

use std::fmt;

/// What differs at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The stream lists the path; the output has nothing there.
    Missing,
    /// The output has a path the stream does not list.
    Extra,
    /// Another file type (or other device numbers).
    Type,
    /// Regular-file data of the same size, other bytes.
    Content,
    /// Regular-file data of another size.
    Size,
    /// Permission bits, setuid, setgid and sticky included.
    Mode,
    /// Numeric owner and group.
    Owner,
    /// Modification time, at the precision the output keeps.
    Mtime,
    /// One extended attribute: absent, extra, or another value.
    Xattr,
    /// A symlink's target.
    LinkTarget,
    /// A hard link that is a separate file, or a file that is a hard link.
    HardLink,
}

impl DifferenceKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [DifferenceKind; 11] = [
        DifferenceKind::Missing,
        DifferenceKind::Extra,
        DifferenceKind::Type,
        DifferenceKind::Content,
        DifferenceKind::Size,
        DifferenceKind::Mode,
        DifferenceKind::Owner,
        DifferenceKind::Mtime,
        DifferenceKind::Xattr,
        DifferenceKind::LinkTarget,
        DifferenceKind::HardLink,
    ];

    /// The kind's name in a difference line.
    pub fn name(self) -> &'static str {
        match self {
            DifferenceKind::Missing => "missing",
            DifferenceKind::Extra => "extra",
            DifferenceKind::Type => "type",
            DifferenceKind::Content => "content",
            DifferenceKind::Size => "size",
            DifferenceKind::Mode => "mode",
            DifferenceKind::Owner => "owner",
            DifferenceKind::Mtime => "mtime",
            DifferenceKind::Xattr => "xattr",
            DifferenceKind::LinkTarget => "link-target",
            DifferenceKind::HardLink => "hardlink",
        }
    }
}

/// One difference: `PATH: KIND: expected X, found Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The canonical path (`""` is the root).
    pub path: Vec<u8>,
    /// What differs.
    pub kind: DifferenceKind,
    /// What the stream describes.
    pub expected: String,
    /// What the output holds.
    pub found: String,
}

impl Difference {
    /// The path as the line shows it: `/` for the root, control characters
    /// escaped so that a difference stays one line.
    pub fn path_text(&self) -> String {
        if self.path.is_empty() {
            "/".to_owned()
        } else {
            printable(&self.path)
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, found {}",
            self.path_text(),
            self.kind.name(),
            self.expected,
            self.found
        )
    }
}

/// Bytes as text on one line: lossy UTF-8, with control characters and
/// backslashes escaped (`\n`, `\x01`, `\\`).
pub fn printable(bytes: &[u8]) -> String {
    let mut text = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\t' => text.push_str("\\t"),
            c if c.is_control() => text.push_str(&format!("\\x{:02x}", c as u32)),
            c => text.push(c),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_one_line() {
        let cases = [
            (&b"etc/passwd"[..], "etc/passwd"),
            (b"", "/"),
            (b"a\nb\\c\x01", "a\\nb\\\\c\\x01"),
        ];
        for (path, shown) in cases {
            let difference = Difference {
                path: path.to_vec(),
                kind: DifferenceKind::Mode,
                expected: "0644".into(),
                found: "0600".into(),
            };
            assert_eq!(
                difference.to_string(),
                format!("{shown}: mode: expected 0644, found 0600")
            );
        }
    }

    #[test]
    fn kinds_have_distinct_names() {
        let mut names: Vec<_> = DifferenceKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DifferenceKind::ALL.len());
    }
}
