//! Where images are pulled from: a registries.conf `location`, a
//! `[[registry.mirror]]`, or a `--registry-mirror`.

use crate::error::{bail, Context, Result};
use crate::source::reference::{check_registry, check_repository, Reference};

/// `host[:port][/path]`: a registry and a repository path inside it under
/// which the rest of an image's name goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// As written (trailing slashes trimmed), for messages.
    text: String,
    /// `host[:port]`.
    registry: String,
    /// The path inside the registry, `""` for none.
    path: String,
}

impl Location {
    /// Checks `host[:port][/path]`: a valid host or address, a numeric port,
    /// repository-name components; no `http://`.
    pub fn parse(text: &str) -> Result<Location> {
        let text = text.trim_end_matches('/');
        if text.starts_with("http://") || text.starts_with("https://") {
            bail!("location {text:?}: URI schemes are not supported (write host[:port][/path])");
        }
        let (registry, path) = text.split_once('/').unwrap_or((text, ""));
        check_registry(registry)
            .and_then(|()| match path {
                "" => Ok(()),
                path => check_repository(path),
            })
            .with_context(|| format!("location {text:?}"))?;
        Ok(Location {
            text: text.to_owned(),
            registry: registry.to_owned(),
            path: path.to_owned(),
        })
    }

    /// As written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `reference` (its tag and digest) here, with `rest` (`""` or
    /// `/more/path`, what follows the matched prefix of its name) appended
    /// to the path.
    pub fn serving(&self, reference: &Reference, rest: &str) -> Result<Reference> {
        let repository = match (self.path.as_str(), rest.strip_prefix('/')) {
            (path, None) => path.to_owned(),
            ("", Some(rest)) => rest.to_owned(),
            (path, Some(rest)) => format!("{path}/{rest}"),
        };
        if repository.is_empty() {
            bail!(
                "{}: no repository is left once rewritten to {:?}",
                reference.name(),
                self.text
            );
        }
        reference
            .elsewhere(&self.registry, repository)
            .with_context(|| format!("{}: rewritten to {:?}", reference.name(), self.text))
    }
}

/// Which pulls a mirror serves (`pull-from-mirror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFromMirror {
    /// Every pull (`all`, the default).
    All,
    /// Pulls by digest (`digest-only`): a tag on a mirror may lag.
    DigestOnly,
    /// Pulls by tag (`tag-only`).
    TagOnly,
}

/// One mirror of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Where it is.
    pub location: Location,
    /// Plain HTTP is allowed for it.
    pub insecure: bool,
    /// Which pulls it serves.
    pub pull_from_mirror: PullFromMirror,
}

impl Mirror {
    /// A `--registry-mirror`: `[http://]HOST[:PORT][/PATH]`, serving every
    /// pull; `http://` allows plain HTTP (`insecure` in registries.conf),
    /// `https://` is accepted and changes nothing.
    pub fn from_flag(text: &str) -> Result<Mirror> {
        let (insecure, location) = match text.split_once("://") {
            Some(("http", rest)) => (true, rest),
            Some(("https", rest)) => (false, rest),
            Some((scheme, _)) => {
                bail!("--registry-mirror {text:?}: {scheme}:// is not a registry scheme")
            }
            None => (false, text),
        };
        Ok(Mirror {
            location: Location::parse(location).context("--registry-mirror")?,
            insecure,
            pull_from_mirror: PullFromMirror::All,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_rewrite_the_rest_of_the_name() {
        let reference: Reference = "example.com/foo/img:a".parse().unwrap();
        let cases = [
            // location, rest, result
            ("localhost:5111/ns", "/img", "localhost:5111/ns/img:a"),
            ("localhost:5111/ns/", "/img", "localhost:5111/ns/img:a"),
            ("mirror.lan", "/foo/img", "mirror.lan/foo/img:a"),
            ("mirror.lan/cache/x", "", "mirror.lan/cache/x:a"),
            ("Index.Docker.IO/library", "/img", "docker.io/library/img:a"),
            ("[::1]:5000", "/foo/img", "[::1]:5000/foo/img:a"),
        ];
        for (location, rest, expected) in cases {
            let moved = Location::parse(location)
                .unwrap()
                .serving(&reference, rest)
                .unwrap();
            assert_eq!(moved.to_string(), expected, "{location} {rest}");
        }
        let pinned: Reference = format!("example.com/foo/img@sha256:{}", "a".repeat(64))
            .parse()
            .unwrap();
        let moved = Location::parse("m.lan")
            .unwrap()
            .serving(&pinned, "/x")
            .unwrap();
        assert_eq!(moved.digest, pinned.digest);
        assert_eq!(moved.tag, None);
        let e = Location::parse("m.lan").unwrap().serving(&reference, "");
        assert!(e.unwrap_err().to_string().contains("no repository is left"));
    }

    #[test]
    fn bad_locations() {
        for (text, expected) in [
            ("http://m.lan", "URI schemes are not supported"),
            ("m_lan", "bad registry host"),
            ("m.lan:port", "bad port"),
            ("m.lan/UPPER", "must be lowercase"),
            ("m.lan//x", "bad repository name component"),
        ] {
            let e = format!("{:#}", Location::parse(text).unwrap_err());
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn mirror_flags() {
        let cases = [
            ("m.lan:5000", "m.lan:5000", false),
            ("http://m.lan:5000/cache", "m.lan:5000/cache", true),
            ("https://m.lan/", "m.lan", false),
        ];
        for (flag, location, insecure) in cases {
            let mirror = Mirror::from_flag(flag).unwrap();
            assert_eq!(mirror.location.text(), location, "{flag}");
            assert_eq!(mirror.insecure, insecure, "{flag}");
            assert_eq!(mirror.pull_from_mirror, PullFromMirror::All);
        }
        let e = format!("{:#}", Mirror::from_flag("ftp://m.lan").unwrap_err());
        assert!(e.contains("ftp:// is not a registry scheme"), "{e}");
        let e = format!("{:#}", Mirror::from_flag("m.lan/A").unwrap_err());
        assert!(
            e.starts_with("--registry-mirror: location \"m.lan/A\""),
            "{e}"
        );
    }
}
