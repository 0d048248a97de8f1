//! `Config.User` to the uid, gid, supplementary gids and home directory a
//! container process runs with, looked up in the root filesystem's
//! `/etc/passwd` and `/etc/group` as runc's `libcontainer/user`
//! (`GetExecUser`) does, which umoci, containerd and Docker use:
//!
//! * The forms are `user`, `uid`, `user:group`, `uid:gid`, `uid:group`,
//!   `user:gid` (more `:` fields are ignored). A field is numeric when it
//!   parses as Go's `Atoi` parses (an optional sign, then digits).
//! * The user: an empty one is the entry with uid 0; a numeric one the
//!   first entry with that uid, else that uid itself (no gid from
//!   anywhere: 0); a name the first entry with that name, else an error.
//!   A matched entry gives uid, gid and home.
//! * An explicit group: the first entry with that gid (numeric) or name,
//!   else the number itself, else an error; it replaces the gid and leaves
//!   no supplementary groups.
//! * Without one, a matched user's supplementary groups are every group
//!   listing its name as a member, in file order: so a bare numeric uid
//!   that has an entry gets them too (as `config.md` says and runc does;
//!   `conversion.md` says it should not).
//! * A numeric id given in `Config.User` must be in 0-2147483647.
//! * A missing file has no entries: numeric ids still resolve, names do
//!   not.
//!
//! Departures, all for files runc reads wrongly: lines starting with `#`
//! are comments (as glibc reads them; runc would match `#x:x:0:0:...` as a
//! user named `#x`); `/etc/group` lines are trimmed of surrounding white
//! space as `/etc/passwd` lines are (runc keeps a CRLF file's `\r` in the
//! last member's name, so that member never matches); an entry's id outside
//! 0-4294967295 is an error (runc wraps it into a uid_t); and so is a home
//! directory that is not UTF-8, which `HOME` in JSON cannot hold.

use super::error::UserError;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The matched entry's home directory, if it has one.
    pub home: Option<String>,
}

/// The largest uid or gid `Config.User` may give as a number (runc's).
const MAX_REQUESTED_ID: i64 = (1 << 31) - 1;

/// Resolves `spec` against the two files' contents (`None`: no such file).
pub(crate) fn resolve(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<ExecUser, UserError> {
    let mut fields = spec.split(':');
    let user_arg = fields.next().unwrap_or("");
    let group_arg = fields.next().unwrap_or("");
    let uid_arg = go_atoi(user_arg);

    let entry = lines(passwd).map(PasswdEntry::parse).find(|entry| {
        if user_arg.is_empty() {
            entry.uid == 0
        } else if let Some(uid) = uid_arg {
            entry.uid == uid
        } else {
            entry.name == user_arg.as_bytes()
        }
    });
    let mut user = ExecUser::default();
    let mut matched_name: &[u8] = b"";
    match entry {
        Some(entry) => {
            user.uid = entry_id("/etc/passwd", entry.name, entry.uid)?;
            user.gid = entry_id("/etc/passwd", entry.name, entry.gid)?;
            user.home = home(&entry)?;
            matched_name = entry.name;
        }
        None if user_arg.is_empty() => {}
        None => match uid_arg {
            Some(uid) => user.uid = requested_id(uid)?,
            None => {
                return Err(UserError::NoSuchUser {
                    name: user_arg.to_owned(),
                    no_file: passwd.is_none(),
                })
            }
        },
    }

    if !group_arg.is_empty() {
        user.gid = explicit_group(group_arg, group)?;
    } else if !matched_name.is_empty() {
        user.additional_gids = supplementary_groups(matched_name, group)?;
    }
    Ok(user)
}

/// The gid of an explicit group field.
fn explicit_group(group_arg: &str, group: Option<&[u8]>) -> Result<u32, UserError> {
    let gid_arg = go_atoi(group_arg);
    let entry = lines(group)
        .map(GroupEntry::parse)
        .find(|entry| match gid_arg {
            Some(gid) => entry.gid == gid,
            None => entry.name == group_arg.as_bytes(),
        });
    match (entry, gid_arg) {
        (Some(entry), _) => entry_id("/etc/group", entry.name, entry.gid),
        (None, Some(gid)) => requested_id(gid),
        (None, None) => Err(UserError::NoSuchGroup {
            name: group_arg.to_owned(),
            no_file: group.is_none(),
        }),
    }
}

/// The gids of the groups that list `name` as a member, in file order.
fn supplementary_groups(name: &[u8], group: Option<&[u8]>) -> Result<Vec<u32>, UserError> {
    lines(group)
        .map(GroupEntry::parse)
        .filter(|entry| entry.has_member(name))
        .map(|entry| entry_id("/etc/group", entry.name, entry.gid))
        .collect()
}

/// The entries of a file: lines trimmed, blank lines and comments skipped.
fn lines(file: Option<&[u8]>) -> impl Iterator<Item = &[u8]> {
    file.unwrap_or_default()
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
}

/// The `:`-separated fields of a line.
struct Fields<'a>(Vec<&'a [u8]>);

impl<'a> Fields<'a> {
    fn of(line: &'a [u8]) -> Self {
        Fields(line.split(|&b| b == b':').collect())
    }

    /// Field `i`; a missing one reads as empty.
    fn get(&self, i: usize) -> &'a [u8] {
        self.0.get(i).copied().unwrap_or_default()
    }
}

/// `name:password:uid:gid:gecos:home:shell`. Missing fields are empty and
/// ids that are not numbers are 0, as runc reads them.
struct PasswdEntry<'a> {
    name: &'a [u8],
    uid: i64,
    gid: i64,
    home: &'a [u8],
}

impl<'a> PasswdEntry<'a> {
    fn parse(line: &'a [u8]) -> Self {
        let fields = Fields::of(line);
        PasswdEntry {
            name: fields.get(0),
            uid: entry_number(fields.get(2)),
            gid: entry_number(fields.get(3)),
            home: fields.get(5),
        }
    }
}

/// `name:password:gid:member,member,...`.
struct GroupEntry<'a> {
    name: &'a [u8],
    gid: i64,
    members: &'a [u8],
}

impl<'a> GroupEntry<'a> {
    fn parse(line: &'a [u8]) -> Self {
        let fields = Fields::of(line);
        GroupEntry {
            name: fields.get(0),
            gid: entry_number(fields.get(2)),
            members: fields.get(3),
        }
    }

    fn has_member(&self, name: &[u8]) -> bool {
        !self.members.is_empty() && self.members.split(|&b| b == b',').any(|m| m == name)
    }
}

fn home(entry: &PasswdEntry<'_>) -> Result<Option<String>, UserError> {
    if entry.home.is_empty() {
        return Ok(None);
    }
    match std::str::from_utf8(entry.home) {
        Ok(home) => Ok(Some(home.to_owned())),
        Err(_) => Err(UserError::HomeNotUtf8(lossy(entry.name))),
    }
}

/// An id field of a file entry; runc ignores a parse error (0).
fn entry_number(field: &[u8]) -> i64 {
    std::str::from_utf8(field)
        .ok()
        .and_then(go_atoi)
        .unwrap_or(0)
}

/// An entry's id as a uid_t; runc would wrap a negative one.
fn entry_id(file: &'static str, name: &[u8], id: i64) -> Result<u32, UserError> {
    u32::try_from(id).map_err(|_| UserError::EntryOutOfRange {
        file,
        name: lossy(name),
        id,
    })
}

/// A numeric id `Config.User` gives without a file entry.
fn requested_id(id: i64) -> Result<u32, UserError> {
    if !(0..=MAX_REQUESTED_ID).contains(&id) {
        return Err(UserError::OutOfRange(id));
    }
    Ok(id as u32)
}

/// Go's `strconv.Atoi` on a 64-bit machine: an optional sign, then one or
/// more ASCII digits, within `i64`.
fn go_atoi(field: &str) -> Option<i64> {
    let digits = field.strip_prefix(['+', '-']).unwrap_or(field);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of research table 1.3, observed against umoci 0.4.7.
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          bin:x:1:1:bin:/bin:/sbin/nologin\n\
                          app:x:1000:1000:App:/home/app:/bin/sh\n\
                          nohome:x:1001:1001::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:root\n\
                         bin:x:1:root,bin\n\
                         wheel:x:10:root,app\n\
                         app:x:1000:\n\
                         audio:x:29:app\n\
                         staff:x:50:\n";

    type Resolved = Result<ExecUser, UserError>;

    fn ok(uid: u32, gid: u32, additional_gids: &[u32], home: Option<&str>) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
            home: home.map(str::to_owned),
        }
    }

    fn no_user(name: &str, no_file: bool) -> UserError {
        UserError::NoSuchUser {
            name: name.to_owned(),
            no_file,
        }
    }

    fn no_group(name: &str, no_file: bool) -> UserError {
        UserError::NoSuchGroup {
            name: name.to_owned(),
            no_file,
        }
    }

    #[test]
    fn every_form_resolves_as_umoci_resolves_it() {
        let cases: Vec<(&str, Result<ExecUser, UserError>)> = vec![
            ("", Ok(ok(0, 0, &[0, 1, 10], Some("/root")))),
            ("root", Ok(ok(0, 0, &[0, 1, 10], Some("/root")))),
            ("0", Ok(ok(0, 0, &[0, 1, 10], Some("/root")))),
            ("1000", Ok(ok(1000, 1000, &[10, 29], Some("/home/app")))),
            ("app", Ok(ok(1000, 1000, &[10, 29], Some("/home/app")))),
            ("app:staff", Ok(ok(1000, 50, &[], Some("/home/app")))),
            ("app:50", Ok(ok(1000, 50, &[], Some("/home/app")))),
            ("app:99", Ok(ok(1000, 99, &[], Some("/home/app")))),
            ("1000:audio", Ok(ok(1000, 29, &[], Some("/home/app")))),
            (":10", Ok(ok(0, 10, &[], Some("/root")))),
            ("nohome", Ok(ok(1001, 1001, &[], Some("/")))),
            ("123", Ok(ok(123, 0, &[], None))),
            ("+1000", Ok(ok(1000, 1000, &[10, 29], Some("/home/app")))),
            (
                "app:staff:ignored",
                Ok(ok(1000, 50, &[], Some("/home/app"))),
            ),
            ("nobody", Err(no_user("nobody", false))),
            ("app:nogroup", Err(no_group("nogroup", false))),
            ("-1", Err(UserError::OutOfRange(-1))),
            ("99999999999", Err(UserError::OutOfRange(99999999999))),
            ("app:-5", Err(UserError::OutOfRange(-5))),
            ("0x10", Err(no_user("0x10", false))),
        ];
        for (spec, expected) in cases {
            let got = resolve(spec, Some(PASSWD.as_bytes()), Some(GROUP.as_bytes()));
            assert_eq!(got, expected, "Config.User {spec:?}");
        }
    }

    #[test]
    fn missing_files_leave_numbers_and_refuse_names() {
        let cases: Vec<(&str, Option<&str>, Option<&str>, Resolved)> = vec![
            ("1234:5678", None, None, Ok(ok(1234, 5678, &[], None))),
            ("", None, None, Ok(ok(0, 0, &[], None))),
            ("app", None, None, Err(no_user("app", true))),
            ("5:wheel", None, None, Err(no_group("wheel", true))),
            (
                "app",
                Some(PASSWD),
                None,
                Ok(ok(1000, 1000, &[], Some("/home/app"))),
            ),
            (
                "app:wheel",
                Some(PASSWD),
                None,
                Err(no_group("wheel", true)),
            ),
            (
                "app:7",
                Some(PASSWD),
                None,
                Ok(ok(1000, 7, &[], Some("/home/app"))),
            ),
        ];
        for (spec, passwd, group, expected) in cases {
            let got = resolve(spec, passwd.map(str::as_bytes), group.map(str::as_bytes));
            assert_eq!(got, expected, "{spec:?} passwd {passwd:?} group {group:?}");
        }
    }

    #[test]
    fn odd_lines_read_as_runc_reads_them_but_comments() {
        let cases: Vec<(&str, &str, &str, Result<ExecUser, UserError>)> = vec![
            // A comment is no user (runc would take HOME=/nope from it).
            (
                "",
                "#c:x:0:0::/nope:\nroot:x:0:0:root:/root:/bin/sh\n",
                "",
                Ok(ok(0, 0, &[], Some("/root"))),
            ),
            // Leading blanks, blank lines, CRLF.
            (
                "app",
                "\n  app:x:7:8::/a:/bin/sh  \r\n",
                "g:x:9:app\r\n",
                Ok(ok(7, 8, &[9], Some("/a"))),
            ),
            // Missing fields are empty, bad numbers 0, the first match wins.
            (
                "short",
                "short\nshort:x:5:5::/s:\n",
                "",
                Ok(ok(0, 0, &[], None)),
            ),
            (
                "bad",
                "bad:x:abc:1x::/b:\n",
                "",
                Ok(ok(0, 0, &[], Some("/b"))),
            ),
            // A member list is matched whole: no prefix matches.
            (
                "app",
                "app:x:1:1::/:\n",
                "g:x:9:application,ap\n",
                Ok(ok(1, 1, &[], Some("/"))),
            ),
            // The same group twice counts twice, as runc counts it.
            (
                "app",
                "app:x:1:1::/:\n",
                "g:x:9:app\nh:x:9:x,app\n",
                Ok(ok(1, 1, &[9, 9], Some("/"))),
            ),
            // An id no uid_t can hold.
            (
                "neg",
                "neg:x:-2:-2::/:\n",
                "",
                Err(UserError::EntryOutOfRange {
                    file: "/etc/passwd",
                    name: "neg".to_owned(),
                    id: -2,
                }),
            ),
            (
                "app:big",
                "app:x:1:1::/:\n",
                "big:x:4294967296:\n",
                Err(UserError::EntryOutOfRange {
                    file: "/etc/group",
                    name: "big".to_owned(),
                    id: 4294967296,
                }),
            ),
            // Entries may have ids above runc's range for Config.User.
            (
                "nfs",
                "nfs:x:4294967294:4294967294::/:\n",
                "",
                Ok(ok(4294967294, 4294967294, &[], Some("/"))),
            ),
        ];
        for (spec, passwd, group, expected) in cases {
            let got = resolve(spec, Some(passwd.as_bytes()), Some(group.as_bytes()));
            assert_eq!(got, expected, "{spec:?} in {passwd:?} / {group:?}");
        }
    }

    #[test]
    fn a_home_that_is_not_utf8_is_refused_not_mangled() {
        let passwd = b"app:x:1:1::/home/\xff:/bin/sh\n";
        assert_eq!(
            resolve("app", Some(passwd), None),
            Err(UserError::HomeNotUtf8("app".to_owned()))
        );
        // Other fields may hold anything (a Latin-1 GECOS).
        let passwd = b"app:x:1:1:Jos\xe9:/home/app:/bin/sh\n";
        assert_eq!(
            resolve("app", Some(passwd), None),
            Ok(ok(1, 1, &[], Some("/home/app")))
        );
    }

    #[test]
    fn go_atoi_takes_a_sign_and_digits_only() {
        let cases = [
            ("0", Some(0)),
            ("+5", Some(5)),
            ("-1", Some(-1)),
            ("007", Some(7)),
            ("", None),
            ("+", None),
            (" 1", None),
            ("1 ", None),
            ("0x1", None),
            ("1e3", None),
            ("99999999999999999999", None),
        ];
        for (field, expected) in cases {
            assert_eq!(go_atoi(field), expected, "{field:?}");
        }
    }
}
