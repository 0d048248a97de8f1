//! From a reference to the endpoints a pull tries, in order: the mirrors
//! that serve this kind of pull, then the registry itself (or its
//! `location`), as containers/image's `FindRegistry` and
//! `PullSourcesFromReference` decide it.
//!
//! A reference's name (`docker.io/library/debian`, no tag or digest) is
//! matched to the `[[registry]]` with the longest prefix. A name prefix
//! matches the name itself or what lies below it (`example.com/foo`
//! matches `example.com/foo/bar`, not `example.com/foobar`); unlike
//! containers/image, `example.com` does not match `example.com:5000/...`
//! (another port is another registry). `*.example.com` matches every
//! host under that domain, with any port. A prefix with a tag or digest
//! never matches (a pull is matched by its name alone).

use super::conf::{Prefix, RegistryEntry};
use super::files::{self, Environment, Sources};
use super::location::{Mirror, PullFromMirror};
use crate::error::{bail, Result};
use crate::source::reference::{split_host_port, Reference};
use std::path::Path;

/// The `[[registry]]` entries in force.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    entries: Vec<RegistryEntry>,
}

/// One endpoint of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEndpoint {
    /// The image there.
    pub reference: Reference,
    /// Plain HTTP is allowed (`insecure = true`, or `--registry-mirror
    /// http://...`).
    pub insecure: bool,
    /// The mirror's location as configured, for messages; `None` for the
    /// registry itself (the last endpoint).
    pub mirror: Option<String>,
}

/// The endpoints of one pull: mirrors first, the registry itself last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In the order they are tried.
    pub endpoints: Vec<PlannedEndpoint>,
    /// Mirrors left out because their own location is blocked: one
    /// warning each.
    pub skipped: Vec<String>,
}

impl RegistriesConf {
    /// Reads the files `Sources::choose` picks for `--registries-conf`
    /// (`explicit`) and this process's environment.
    pub fn load(explicit: Option<&Path>) -> Result<RegistriesConf> {
        let sources = Sources::choose(explicit, &Environment::from_process(), &|p| p.exists());
        Ok(RegistriesConf {
            entries: files::load(&sources)?,
        })
    }

    /// The endpoints to pull `reference` from: `flag_mirrors`
    /// (`--registry-mirror`, for every pull, the reference's repository
    /// under their path) first, then the mirrors of the matching entry
    /// that serve this kind of pull (by digest or by tag), then the
    /// registry or its `location`. A blocked name is refused.
    pub fn plan(&self, reference: &Reference, flag_mirrors: &[Mirror]) -> Result<Plan> {
        let name = reference.name();
        let matched = self.find(&name);
        if let Some((entry, _)) = matched.filter(|(entry, _)| entry.blocked) {
            bail!("{}", blocked(&name, entry));
        }
        let by_digest = reference.digest.is_some();
        let below_registry = format!("/{}", reference.repository);
        let mut mirrors = Vec::new();
        for mirror in flag_mirrors {
            mirrors.push((mirror, mirror.location.serving(reference, &below_registry)?));
        }
        let primary = match matched {
            None => PlannedEndpoint {
                reference: reference.clone(),
                insecure: false,
                mirror: None,
            },
            Some((entry, length)) => {
                let rest = &name[length..];
                for mirror in entry.mirrors.iter().filter(|m| serves(entry, m, by_digest)) {
                    mirrors.push((mirror, mirror.location.serving(reference, rest)?));
                }
                let reference = match &entry.location {
                    Some(location) => location.serving(reference, rest)?,
                    None => reference.clone(),
                };
                PlannedEndpoint {
                    reference,
                    insecure: entry.insecure,
                    mirror: None,
                }
            }
        };
        if let Some(entry) = self.blocking(&primary.reference) {
            bail!("{}", blocked(&primary.reference.name(), entry));
        }
        let mut plan = Plan {
            endpoints: Vec::new(),
            skipped: Vec::new(),
        };
        for (mirror, reference) in mirrors {
            let label = mirror.location.text();
            if let Some(entry) = self.blocking(&reference) {
                plan.skipped.push(format!(
                    "mirror {label} skipped: {}",
                    blocked(&reference.name(), entry)
                ));
                continue;
            }
            let repeated = plan.endpoints.iter().any(|e| e.reference == reference);
            if !repeated && reference != primary.reference {
                plan.endpoints.push(PlannedEndpoint {
                    reference,
                    insecure: mirror.insecure,
                    mirror: Some(label.to_owned()),
                });
            }
        }
        plan.endpoints.push(primary);
        Ok(plan)
    }

    /// The entry with the longest prefix matching `name`, and the length of
    /// `name` it matched.
    fn find(&self, name: &str) -> Option<(&RegistryEntry, usize)> {
        self.entries
            .iter()
            .filter_map(|entry| Some((entry, matched_length(&entry.prefix, name)?)))
            .max_by_key(|(entry, _)| entry.prefix.text().len())
    }

    /// The blocked entry `reference`'s name matches, if it does.
    fn blocking(&self, reference: &Reference) -> Option<&RegistryEntry> {
        self.find(&reference.name())
            .map(|(entry, _)| entry)
            .filter(|entry| entry.blocked)
    }
}

fn blocked(name: &str, entry: &RegistryEntry) -> String {
    format!(
        "{name}: pulling from {:?} is blocked by {}",
        entry.prefix.text(),
        entry.origin
    )
}

/// How much of `name` (`registry/repository`) `prefix` matches: all of a
/// name prefix, or the registry for a wildcard.
fn matched_length(prefix: &Prefix, name: &str) -> Option<usize> {
    match prefix {
        Prefix::Name(prefix) => {
            let rest = name.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
        }
        Prefix::Wildcard(domain) => {
            let registry = name.split('/').next()?;
            let host = split_host_port(registry).0;
            (host.len() > domain.len() && host.ends_with(domain.as_str())).then_some(registry.len())
        }
    }
}

/// Whether `mirror` of `entry` serves a pull by digest (or by tag).
fn serves(entry: &RegistryEntry, mirror: &Mirror, by_digest: bool) -> bool {
    if entry.mirror_by_digest_only {
        return by_digest;
    }
    match mirror.pull_from_mirror {
        PullFromMirror::All => true,
        PullFromMirror::DigestOnly => by_digest,
        PullFromMirror::TagOnly => !by_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::super::conf::{self, FileKind};
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        RegistriesConf {
            entries: conf::parse(text, Path::new("r.conf"), FileKind::Main).unwrap(),
        }
    }

    /// The endpoints of a pull, as `name:tag (insecure)` strings.
    fn endpoints(conf: &RegistriesConf, reference: &str, flags: &[&str]) -> Vec<String> {
        let flags: Vec<Mirror> = flags
            .iter()
            .map(|f| Mirror::from_flag(f).unwrap())
            .collect();
        let plan = conf.plan(&reference.parse().unwrap(), &flags).unwrap();
        plan.endpoints
            .iter()
            .map(|e| {
                let what = e.mirror.as_deref().map_or("origin", |_| "mirror");
                let insecure = if e.insecure { " insecure" } else { "" };
                format!("{what} {}{insecure}", e.reference)
            })
            .collect()
    }

    #[test]
    fn the_longest_prefix_wins() {
        let conf = conf(
            r#"
[[registry]]
prefix = "example.com"
location = "all.lan"
[[registry]]
prefix = "example.com/foo"
location = "foo.lan/x"
[[registry]]
prefix = "*.example.com"
location = "sub.lan"
[[registry]]
prefix = "*.b.example.com"
insecure = true
"#,
        );
        let cases = [
            ("example.com/img:1", "origin all.lan/img:1"),
            ("example.com/foo:1", "origin foo.lan/x:1"),
            ("example.com/foo/img:1", "origin foo.lan/x/img:1"),
            ("example.com/foobar:1", "origin all.lan/foobar:1"),
            // Another port is another registry.
            ("example.com:5000/foo:1", "origin example.com:5000/foo:1"),
            ("a.example.com/foo:1", "origin sub.lan/foo:1"),
            ("a.example.com:5000/foo:1", "origin sub.lan/foo:1"),
            (
                "x.b.example.com/foo:1",
                "origin x.b.example.com/foo:1 insecure",
            ),
            ("notexample.com/foo:1", "origin notexample.com/foo:1"),
            ("quay.io/foo:1", "origin quay.io/foo:1"),
        ];
        for (reference, expected) in cases {
            assert_eq!(endpoints(&conf, reference, &[]), [expected], "{reference}");
        }
    }

    #[test]
    fn docker_hub_names_are_matched_normalized() {
        let conf = conf(
            "[[registry]]\nprefix = \"docker.io/library/alpine\"\nlocation = \"m.lan/hub/alpine\"\n\
             [[registry]]\nprefix = \"docker.io/alpine\"\nlocation = \"never.lan\"\n",
        );
        assert_eq!(
            endpoints(&conf, "alpine:3", &[]),
            ["origin m.lan/hub/alpine:3"]
        );
    }

    #[test]
    fn mirrors_come_first_and_serve_their_kind_of_pull() {
        let digest = format!("sha256:{}", "e".repeat(64));
        let text = |registry_setting: &str, mirror_setting: &str| {
            format!(
                "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"o.lan/ns\"\n\
                 {registry_setting}\n\
                 [[registry.mirror]]\nlocation = \"m1.lan\"\n{mirror_setting}\n\
                 [[registry.mirror]]\nlocation = \"m2.lan/c\"\ninsecure = true\n"
            )
        };
        let m1 = |pin: &str| format!("mirror m1.lan/img{pin}");
        let m2 = |pin: &str| format!("mirror m2.lan/c/img{pin} insecure");
        let origin = |pin: &str| format!("origin o.lan/ns/img{pin}");
        let tag = ":1".to_owned();
        let pin = format!("@{digest}");
        let cases = [
            // registry setting, mirror 1 setting, by digest, endpoints
            ("", "", false, vec![m1(&tag), m2(&tag), origin(&tag)]),
            ("", "", true, vec![m1(&pin), m2(&pin), origin(&pin)]),
            (
                "",
                "pull-from-mirror = \"digest-only\"",
                false,
                vec![m2(&tag), origin(&tag)],
            ),
            (
                "",
                "pull-from-mirror = \"digest-only\"",
                true,
                vec![m1(&pin), m2(&pin), origin(&pin)],
            ),
            (
                "",
                "pull-from-mirror = \"tag-only\"",
                false,
                vec![m1(&tag), m2(&tag), origin(&tag)],
            ),
            (
                "",
                "pull-from-mirror = \"tag-only\"",
                true,
                vec![m2(&pin), origin(&pin)],
            ),
            (
                "",
                "pull-from-mirror = \"all\"",
                true,
                vec![m1(&pin), m2(&pin), origin(&pin)],
            ),
            (
                "mirror-by-digest-only = true",
                "",
                false,
                vec![origin(&tag)],
            ),
            (
                "mirror-by-digest-only = true",
                "",
                true,
                vec![m1(&pin), m2(&pin), origin(&pin)],
            ),
        ];
        for (registry_setting, mirror_setting, by_digest, expected) in cases {
            let conf = conf(&text(registry_setting, mirror_setting));
            let reference = if by_digest {
                format!("example.com/foo/img@{digest}")
            } else {
                "example.com/foo/img:1".to_owned()
            };
            assert_eq!(
                endpoints(&conf, &reference, &[]),
                expected,
                "{registry_setting:?} {mirror_setting:?} {reference}"
            );
        }
    }

    #[test]
    fn flag_mirrors_come_before_the_configured_ones() {
        let conf = conf(
            "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"o.lan/ns\"\n\
             mirror-by-digest-only = true\n\
             [[registry.mirror]]\nlocation = \"m.lan/foo\"\n",
        );
        let digest = format!("sha256:{}", "e".repeat(64));
        assert_eq!(
            endpoints(
                &conf,
                &format!("example.com/foo/img@{digest}"),
                &["http://cache.lan:5000/site", "m.lan"]
            ),
            [
                format!("mirror cache.lan:5000/site/foo/img@{digest} insecure"),
                // The flag's and the file's mirror are one endpoint: once.
                format!("mirror m.lan/foo/img@{digest}"),
                format!("origin o.lan/ns/img@{digest}"),
            ]
        );
        // Flag mirrors serve tags too; the file's is digest-only here.
        assert_eq!(
            endpoints(&conf, "example.com/foo/img:1", &["cache.lan"]),
            ["mirror cache.lan/foo/img:1", "origin o.lan/ns/img:1"]
        );
        // Without any entry, for any registry.
        assert_eq!(
            endpoints(&RegistriesConf::default(), "debian:12", &["cache.lan"]),
            [
                "mirror cache.lan/library/debian:12",
                "origin docker.io/library/debian:12"
            ]
        );
    }

    #[test]
    fn blocked_names_are_refused_and_blocked_mirrors_skipped() {
        let conf = conf(
            "[[registry]]\nprefix = \"example.com/bad\"\nlocation = \"example.com/bad\"\nblocked = true\n\
             [[registry]]\nprefix = \"*.blocked.lan\"\nblocked = true\n\
             [[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n\
             [[registry.mirror]]\nlocation = \"m.blocked.lan\"\n\
             [[registry.mirror]]\nlocation = \"ok.lan\"\n\
             [[registry]]\nprefix = \"redirected.io\"\nlocation = \"x.blocked.lan\"\n",
        );
        let refused = |reference: &str| {
            let reference: Reference = reference.parse().unwrap();
            conf.plan(&reference, &[]).unwrap_err().to_string()
        };
        assert_eq!(
            refused("example.com/bad/img:1"),
            "example.com/bad/img: pulling from \"example.com/bad\" is blocked by r.conf:1"
        );
        assert_eq!(
            refused("a.blocked.lan/img:1"),
            "a.blocked.lan/img: pulling from \"*.blocked.lan\" is blocked by r.conf:5"
        );
        // Rewritten to a blocked place.
        assert_eq!(
            refused("redirected.io/img:1"),
            "x.blocked.lan/img: pulling from \"*.blocked.lan\" is blocked by r.conf:5"
        );
        let plan = conf.plan(&"quay.io/img:1".parse().unwrap(), &[]).unwrap();
        let names: Vec<_> = plan
            .endpoints
            .iter()
            .map(|e| e.reference.to_string())
            .collect();
        assert_eq!(names, ["ok.lan/img:1", "quay.io/img:1"]);
        assert_eq!(
            plan.skipped,
            [
                "mirror m.blocked.lan skipped: m.blocked.lan/img: pulling from \"*.blocked.lan\" \
              is blocked by r.conf:5"
            ]
        );
        // Below a blocked prefix only.
        assert!(conf
            .plan(&"example.com/good:1".parse().unwrap(), &[])
            .is_ok());
    }
}
