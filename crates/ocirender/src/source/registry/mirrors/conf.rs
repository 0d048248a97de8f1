//! One registries.conf file: its TOML read into checked `[[registry]]`
//! entries, as containers/image checks them (`postProcessRegistries`,
//! `loadConfigFile`), each error naming the file and line.
//!
//! Only what a pull uses is read: `[[registry]]` tables (and the v1
//! `[registries.*]` lists they replace). Short-name settings
//! (`unqualified-search-registries`, `[aliases]`, `short-name-mode`) and
//! `credential-helpers` are looked at only to tell v1 from v2: names here
//! are always fully qualified the way docker reads them. Unknown keys are
//! ignored, as containers/image ignores them.

use super::location::{Location, Mirror, PullFromMirror};
use crate::error::{bail, err, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Which prefixes a `[[registry]]` table applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// A repository name and what is below it: `example.com/foo` matches
    /// `example.com/foo` and `example.com/foo/bar`.
    Name(String),
    /// `*.example.com`: every host under that domain (not the domain
    /// itself), with any port; holds `.example.com`.
    Wildcard(String),
}

impl Prefix {
    /// The prefix as written, which is also the key later files replace
    /// entries by.
    pub fn text(&self) -> String {
        match self {
            Prefix::Name(name) => name.clone(),
            Prefix::Wildcard(domain) => format!("*{domain}"),
        }
    }
}

/// One `[[registry]]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// What it matches.
    pub prefix: Prefix,
    /// Where the images it matches are pulled from; `None` only for a
    /// wildcard prefix without a location (the name is kept).
    pub location: Option<Location>,
    /// Plain HTTP is allowed for the location (see [`Location`]).
    pub insecure: bool,
    /// Pulling a matching name is refused.
    pub blocked: bool,
    /// Mirrors are used for pulls by digest only.
    pub mirror_by_digest_only: bool,
    /// Tried in order before the location.
    pub mirrors: Vec<Mirror>,
    /// `FILE:LINE` of the table, for messages.
    pub origin: String,
}

/// Whether a file is the main one (where v1 is converted) or a drop-in
/// (v2 only, as containers/image requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// registries.conf itself.
    Main,
    /// A file of a registries.conf.d directory.
    DropIn,
}

/// The entries of one file, in its order, without duplicate prefixes
/// (the first table with a prefix wins, as in containers/image).
pub fn parse(text: &str, file: &Path, kind: FileKind) -> Result<Vec<RegistryEntry>> {
    let at = |span: Range<usize>| format!("{}:{}", file.display(), line_of(text, span.start));
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span.start));
        err!("{}:{line}: {}", file.display(), one_line(e.message()))
    })?;
    let v1 = raw.registries.as_ref().filter(|v1| !v1.is_empty());
    let entries = match v1 {
        None => raw
            .registry
            .iter()
            .map(|table| {
                let origin = at(table.span());
                entry(table.get_ref(), &origin).map_err(|e| err!("{origin}: {e:#}"))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) if kind == FileKind::DropIn => bail!(
            "{}: a drop-in must use the v2 format ([[registry]] tables), not v1 \
             ([registries.search], [registries.insecure], [registries.block])",
            file.display()
        ),
        Some(_) if raw.has_v2_keys() => bail!(
            "{}: mixing the v1 format ([registries.*]) and the v2 format \
             ([[registry]], unqualified-search-registries, ...) is not supported",
            file.display()
        ),
        Some(v1) => v1.convert(&file.display().to_string())?,
    };
    check_conflicts(&entries)?;
    let mut seen = std::collections::HashSet::new();
    Ok(entries
        .into_iter()
        .filter(|entry| seen.insert(entry.prefix.text()))
        .collect())
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The parser's message on one line (it may span several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks one `[[registry]]` table and makes it an entry.
fn entry(raw: &RawRegistry, origin: &str) -> Result<RegistryEntry> {
    if raw.pull_from_mirror.is_some() {
        bail!("pull-from-mirror must not be set for a non-mirror registry, only in [[registry.mirror]]");
    }
    let location = raw
        .location
        .as_deref()
        .map(trim_slashes)
        .filter(|l| !l.is_empty())
        .map(Location::parse)
        .transpose()?;
    let prefix_text = raw
        .prefix
        .as_deref()
        .map(trim_slashes)
        .filter(|p| !p.is_empty());
    let prefix = match (prefix_text, &location) {
        (None, None) => bail!("both location and prefix are unset"),
        (Some(prefix), _) if prefix.starts_with("*.") => Prefix::Wildcard(wildcard(prefix)?),
        (Some(_), None) => {
            bail!("location is unset and prefix is not of the form *.example.com")
        }
        (Some(prefix), Some(_)) => Prefix::Name(no_scheme(prefix)?.to_owned()),
        (None, Some(location)) => Prefix::Name(location.text().to_owned()),
    };
    if raw.mirror_by_digest_only && raw.mirror.iter().any(|m| m.pull_from_mirror.is_some()) {
        bail!("mirror-by-digest-only (for the registry) and pull-from-mirror (per mirror) cannot be set together");
    }
    let mirrors = raw
        .mirror
        .iter()
        .map(RawMirror::checked)
        .collect::<Result<Vec<_>>>()?;
    Ok(RegistryEntry {
        prefix,
        location,
        insecure: raw.insecure,
        blocked: raw.blocked,
        mirror_by_digest_only: raw.mirror_by_digest_only,
        mirrors,
        origin: origin.to_owned(),
    })
}

/// containers/image trims trailing slashes of prefixes and locations.
fn trim_slashes(text: &str) -> &str {
    text.trim_end_matches('/')
}

/// `*.example.com` → `.example.com`: a domain, without a path, digest or
/// port.
fn wildcard(prefix: &str) -> Result<String> {
    let domain = &prefix[1..];
    if domain.len() < 2 || domain.contains(['/', '@', ':', '*']) {
        bail!("wildcarded prefix {prefix:?} is not of the form *.example.com");
    }
    Ok(domain.to_ascii_lowercase())
}

fn no_scheme(text: &str) -> Result<&str> {
    if text.starts_with("http://") || text.starts_with("https://") {
        bail!("prefix {text:?}: URI schemes are not supported");
    }
    Ok(text)
}

/// The same location (or wildcard) must not be both insecure and not, or
/// blocked and not, within a file.
fn check_conflicts(entries: &[RegistryEntry]) -> Result<()> {
    let mut seen: BTreeMap<String, &RegistryEntry> = BTreeMap::new();
    for entry in entries {
        let key = match &entry.location {
            Some(location) => location.text().to_owned(),
            None => entry.prefix.text(),
        };
        if let Some(earlier) = seen.get(&key) {
            for (setting, a, b) in [
                ("insecure", earlier.insecure, entry.insecure),
                ("blocked", earlier.blocked, entry.blocked),
            ] {
                if a != b {
                    bail!(
                        "{}: registry {key:?} is defined again (first at {}) with a conflicting \
                         {setting} setting",
                        entry.origin,
                        earlier.origin
                    );
                }
            }
        }
        seen.entry(key).or_insert(entry);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    registry: Vec<Spanned<RawRegistry>>,
    /// The v1 format.
    registries: Option<RawV1>,
    // The other v2 keys, only to tell whether a file mixes formats.
    unqualified_search_registries: Option<toml::Value>,
    short_name_mode: Option<toml::Value>,
    aliases: Option<toml::Value>,
    credential_helpers: Option<toml::Value>,
}

impl RawFile {
    fn has_v2_keys(&self) -> bool {
        !self.registry.is_empty()
            || self.unqualified_search_registries.is_some()
            || self.short_name_mode.is_some()
            || self.aliases.is_some()
            || self.credential_helpers.is_some()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

impl RawMirror {
    fn checked(&self) -> Result<Mirror> {
        let Some(location) = self
            .location
            .as_deref()
            .map(trim_slashes)
            .filter(|l| !l.is_empty())
        else {
            bail!("a [[registry.mirror]] has no location");
        };
        let pull_from_mirror = match self.pull_from_mirror.as_deref() {
            None | Some("" | "all") => PullFromMirror::All,
            Some("digest-only") => PullFromMirror::DigestOnly,
            Some("tag-only") => PullFromMirror::TagOnly,
            Some(other) => bail!(
                "unsupported pull-from-mirror value {other:?} for mirror {location:?} \
                 (all, digest-only or tag-only)"
            ),
        };
        Ok(Mirror {
            location: Location::parse(location)?,
            insecure: self.insecure,
            pull_from_mirror,
        })
    }
}

/// `[registries.search]`, `[registries.insecure]`, `[registries.block]`,
/// each with `registries = [hosts]`.
#[derive(Deserialize)]
struct RawV1 {
    search: Option<V1List>,
    insecure: Option<V1List>,
    block: Option<V1List>,
}

#[derive(Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

impl RawV1 {
    fn list(list: &Option<V1List>) -> &[String] {
        list.as_ref().map_or(&[], |l| &l.registries)
    }

    /// A table whose lists are all empty counts as unset.
    fn is_empty(&self) -> bool {
        [&self.search, &self.insecure, &self.block]
            .iter()
            .all(|list| RawV1::list(list).is_empty())
    }

    /// containers/image's `ConvertToV2`: one entry per host blocked or
    /// insecure (search registries only serve short names, unused here).
    fn convert(&self, file: &str) -> Result<Vec<RegistryEntry>> {
        let mut entries: Vec<RegistryEntry> = Vec::new();
        let flagged = RawV1::list(&self.insecure)
            .iter()
            .map(|host| (host, true, false))
            .chain(RawV1::list(&self.block).iter().map(|h| (h, false, true)));
        for (host, insecure, blocked) in flagged {
            let host = trim_slashes(host);
            let origin = format!("{file} (v1 [registries.*])");
            let location = Location::parse(host).map_err(|e| err!("{origin}: {e:#}"))?;
            match entries
                .iter_mut()
                .find(|e| e.location.as_ref() == Some(&location))
            {
                Some(entry) => {
                    entry.insecure |= insecure;
                    entry.blocked |= blocked;
                }
                None => entries.push(RegistryEntry {
                    prefix: Prefix::Name(host.to_owned()),
                    location: Some(location),
                    insecure,
                    blocked,
                    mirror_by_digest_only: false,
                    mirrors: Vec::new(),
                    origin,
                }),
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_main(text: &str) -> Result<Vec<RegistryEntry>> {
        parse(text, Path::new("r.conf"), FileKind::Main)
    }

    fn error(text: &str, kind: FileKind) -> String {
        format!("{:#}", parse(text, Path::new("r.conf"), kind).unwrap_err())
    }

    #[test]
    fn a_full_entry() {
        let entries = parse_main(
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.com/foo/"
location = "localhost:5111/ns"
insecure = true
[[registry.mirror]]
location = "mirror.lan:5000/cache"
[[registry.mirror]]
location = "other.lan"
insecure = true
pull-from-mirror = "tag-only"
"#,
        )
        .unwrap();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(entry.prefix, Prefix::Name("example.com/foo".into()));
        assert_eq!(entry.location.as_ref().unwrap().text(), "localhost:5111/ns");
        assert!(entry.insecure && !entry.blocked && !entry.mirror_by_digest_only);
        assert_eq!(entry.origin, "r.conf:3");
        let mirrors: Vec<_> = entry
            .mirrors
            .iter()
            .map(|m| (m.location.text(), m.insecure, m.pull_from_mirror))
            .collect();
        assert_eq!(
            mirrors,
            [
                ("mirror.lan:5000/cache", false, PullFromMirror::All),
                ("other.lan", true, PullFromMirror::TagOnly),
            ]
        );
    }

    #[test]
    fn prefix_defaults_to_location_and_wildcards_need_none() {
        let entries = parse_main(
            "[[registry]]\nlocation = \"quay.io\"\n\
             [[registry]]\nprefix = \"*.Example.com\"\nblocked = true\n",
        )
        .unwrap();
        assert_eq!(entries[0].prefix, Prefix::Name("quay.io".into()));
        assert_eq!(entries[1].prefix, Prefix::Wildcard(".example.com".into()));
        assert_eq!(entries[1].location, None);
        assert!(entries[1].blocked);
    }

    #[test]
    fn the_first_table_of_a_prefix_wins_within_a_file() {
        let entries = parse_main(
            "[[registry]]\nlocation = \"quay.io\"\nblocked = true\n\
             [[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\nblocked = true\n\
             [[registry.mirror]]\nlocation = \"m.lan\"\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].mirrors.is_empty());
    }

    #[test]
    fn what_is_refused_and_where() {
        let cases = [
            (
                "[[registry]]\nlocation = \"quay.io\"\n[registry",
                "r.conf:3: ",
            ),
            ("x = 1\n[[registry]]\ninsecure = \"yes\"\n", "r.conf:3: "),
            (
                "\n[[registry]]\ninsecure = true\n",
                "r.conf:2: both location and prefix are unset",
            ),
            (
                "[[registry]]\nprefix = \"example.com\"\n",
                "r.conf:1: location is unset and prefix is not of the form *.example.com",
            ),
            (
                "[[registry]]\nlocation = \"https://quay.io\"\n",
                "r.conf:1: location \"https://quay.io\": URI schemes are not supported",
            ),
            (
                "[[registry]]\nprefix = \"*.example.com/foo\"\n",
                "r.conf:1: wildcarded prefix \"*.example.com/foo\"",
            ),
            (
                "[[registry]]\nlocation = \"q.io\"\npull-from-mirror = \"all\"\n",
                "r.conf:1: pull-from-mirror must not be set for a non-mirror registry",
            ),
            (
                "[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\ninsecure = true\n",
                "r.conf:1: a [[registry.mirror]] has no location",
            ),
            (
                "[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\n\
                 pull-from-mirror = \"sometimes\"\n",
                "r.conf:1: unsupported pull-from-mirror value \"sometimes\" for mirror \"m.io\"",
            ),
            (
                "[[registry]]\nlocation = \"q.io\"\nmirror-by-digest-only = true\n\
                 [[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"all\"\n",
                "r.conf:1: mirror-by-digest-only (for the registry) and pull-from-mirror",
            ),
            (
                "[[registry]]\nlocation = \"q.io\"\n[[registry]]\nprefix = \"q.io/a\"\n\
                 location = \"q.io\"\ninsecure = true\n",
                "r.conf:3: registry \"q.io\" is defined again (first at r.conf:1) with a \
                 conflicting insecure setting",
            ),
            (
                "[[registry]]\nlocation = \"Bad_Host\"\n",
                "r.conf:1: location \"Bad_Host\": bad registry host",
            ),
        ];
        for (text, expected) in cases {
            let e = error(text, FileKind::Main);
            assert!(e.starts_with(expected), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn v1_is_converted_in_the_main_file_only() {
        let v1 = "[registries.search]\nregistries = [\"docker.io\"]\n\
                  [registries.insecure]\nregistries = [\"r.lan:5000\", \"both.lan\"]\n\
                  [registries.block]\nregistries = [\"bad.io\", \"both.lan\"]\n";
        let entries = parse_main(v1).unwrap();
        let flags: Vec<_> = entries
            .iter()
            .map(|e| (e.prefix.text(), e.insecure, e.blocked))
            .collect();
        assert_eq!(
            flags,
            [
                ("r.lan:5000".to_owned(), true, false),
                ("both.lan".to_owned(), true, true),
                ("bad.io".to_owned(), false, true),
            ]
        );
        let e = error(v1, FileKind::DropIn);
        assert!(
            e.starts_with("r.conf: a drop-in must use the v2 format"),
            "{e}"
        );
        let mixed = format!("{v1}[[registry]]\nlocation = \"q.io\"\n");
        let e = error(&mixed, FileKind::Main);
        assert!(e.starts_with("r.conf: mixing the v1 format"), "{e}");
        // Empty v1 lists count as unset: not a mix.
        let empty_v1 = "[registries.search]\nregistries = []\n[[registry]]\nlocation = \"q.io\"\n";
        assert_eq!(parse_main(empty_v1).unwrap().len(), 1);
    }

    #[test]
    fn short_name_settings_and_unknown_keys_are_accepted() {
        let text = "short-name-mode = \"enforcing\"\nfuture-key = 1\n\
                    [aliases]\n\"alpine\" = \"docker.io/library/alpine\"\n";
        assert!(parse_main(text).unwrap().is_empty());
        assert!(parse(text, Path::new("d.conf"), FileKind::DropIn)
            .unwrap()
            .is_empty());
    }
}
