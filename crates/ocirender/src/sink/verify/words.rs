//! How values read in a difference line: a mode in octal, an owner as
//! `uid:gid`, a time as seconds since 1970 (with nanoseconds when the
//! output keeps them), a file type in words.

use super::difference::printable;
use crate::sink::times::Time;
use rustix::fs::FileType;

/// `0644`.
pub fn mode(mode: u32) -> String {
    format!("{mode:04o}")
}

/// `1000:1000`.
pub fn owner(uid: u64, gid: u64) -> String {
    format!("{uid}:{gid}")
}

/// `1600000000`, or `1600000000.500000000` with a fraction.
pub fn time(time: Time) -> String {
    match time.nanoseconds {
        0 => time.seconds.to_string(),
        ns => format!("{}.{ns:09}", time.seconds),
    }
}

/// `a file`, `a character device 1:3`.
pub fn file_type(file_type: FileType, device: (u32, u32)) -> String {
    let words = match file_type {
        FileType::RegularFile => "a file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "a file of unknown type",
    };
    match file_type {
        FileType::CharacterDevice | FileType::BlockDevice => {
            format!("{words} {}:{}", device.0, device.1)
        }
        _ => words.to_owned(),
    }
}

/// An attribute as `name="value"` (printable text) or `name=0x…` (binary,
/// as getfattr shows it), or `no name` when absent.
pub fn xattr(name: &[u8], value: Option<&[u8]>) -> String {
    let name = printable(name);
    match value {
        None => format!("no {name}"),
        Some(value) if is_text(value) => format!("{name}={:?}", String::from_utf8_lossy(value)),
        Some(value) => {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            format!("{name}=0x{hex}")
        }
    }
}

/// A symlink target, quoted.
pub fn link_target(target: &[u8]) -> String {
    format!("\"{}\"", printable(target))
}

fn is_text(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| !text.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_words() {
        let cases = [
            (mode(0o4755), "4755"),
            (mode(0o644), "0644"),
            (owner(0, 1000), "0:1000"),
            (
                time(Time {
                    seconds: 7,
                    nanoseconds: 0,
                }),
                "7",
            ),
            (
                time(Time {
                    seconds: 7,
                    nanoseconds: 5,
                }),
                "7.000000005",
            ),
            (
                file_type(FileType::CharacterDevice, (1, 3)),
                "a character device 1:3",
            ),
            (file_type(FileType::Symlink, (1, 3)), "a symlink"),
            (xattr(b"user.a", Some(b"hi")), "user.a=\"hi\""),
            (
                xattr(b"security.capability", Some(&[1, 0, 0x0a])),
                "security.capability=0x01000a",
            ),
            (xattr(b"user.a", None), "no user.a"),
            (link_target(b"../a\nb"), "\"../a\\nb\""),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
