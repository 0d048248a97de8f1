//! Which image of an archive the user means: names, `--tag`, and the
//! refusal to guess.
//!
//! Names come in several spellings. An OCI layout's `ref.name` is a tag
//! (`1.0`) or a whole reference; Docker 25+ and containerd keep only the
//! tag there and the full name (`docker.io/library/alpine:latest`) in
//! `io.containerd.image.name`; a docker-save `manifest.json` lists familiar
//! names (`alpine:latest`) in `RepoTags`. A full name matches a tag the way
//! `docker` reads one: `docker.io/library/` and `:latest` are implied.
//!
//! `docker save alpine busybox` holds two images whose `ref.name` are both
//! `latest`. So an image is identified by its full name, and when several
//! distinct images are left to choose from (no `--tag`, or a tag naming
//! more than one) the choice is an error that lists them, never a guess.

use crate::error::{bail, ErrorKind, Result};
use crate::source::spec::{self, Descriptor, DockerSaveEntry};
use std::fmt;
use std::path::{Path, PathBuf};

/// One image a user may choose.
pub(super) struct Candidate<T> {
    /// Its names, for messages.
    names: Vec<String>,
    /// Whether the requested tag names it (always, when none was requested).
    tagged: bool,
    /// What it is: candidates with equal contents are one image under
    /// several names (`docker save alpine:latest alpine:3.19`).
    content: Vec<String>,
    /// What the caller resolves if this one is chosen.
    item: T,
}

impl<T> Candidate<T> {
    /// How messages name it: its names, or its content for an untagged one.
    fn labels(&self) -> Vec<String> {
        if self.names.is_empty() {
            let what = self.content.first().map_or("", String::as_str);
            return vec![format!("untagged {what}")];
        }
        self.names.clone()
    }
}

/// No image carries the requested tag, or there is no image at all. Typed,
/// so that a caller holding another list of names (a docker save's
/// `manifest.json`) may look there, while any other failure stays an error.
#[derive(Debug)]
pub struct NoSuchImage {
    root: PathBuf,
    tag: Option<String>,
    names: Vec<String>,
}

impl fmt::Display for NoSuchImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.root.display();
        match &self.tag {
            Some(tag) => write!(
                f,
                "{root}: no image tagged {tag:?} (tags: {})",
                list_or_none(&self.names)
            ),
            None => write!(f, "{root}: holds no images"),
        }
    }
}

impl std::error::Error for NoSuchImage {}

impl From<NoSuchImage> for crate::error::Error {
    fn from(missing: NoSuchImage) -> Self {
        let kind = crate::error::ErrorKind::NoSuchImage {
            requested: missing.tag.clone(),
            available: missing.names.clone(),
        };
        crate::error::Error::new(kind, missing)
    }
}

impl NoSuchImage {
    /// No image of `root`, whose images are named `names`, is tagged `tag`.
    pub(super) fn new(root: &Path, tag: Option<&str>, names: Vec<String>) -> NoSuchImage {
        NoSuchImage {
            root: root.to_path_buf(),
            tag: tag.map(str::to_owned),
            names: unique(names),
        }
    }
}

/// The one image `tag` (or, without a tag, the archive) names.
pub(super) fn choose<T>(
    root: &Path,
    tag: Option<&str>,
    candidates: Vec<Candidate<T>>,
) -> Result<T> {
    let all_names = unique(candidates.iter().flat_map(|c| c.names.clone()));
    let tagged: Vec<Candidate<T>> = candidates.into_iter().filter(|c| c.tagged).collect();
    let labels = unique(tagged.iter().flat_map(Candidate::labels));
    let mut distinct: Vec<Candidate<T>> = Vec::new();
    for candidate in tagged {
        if distinct.iter().all(|d| d.content != candidate.content) {
            distinct.push(candidate);
        }
    }
    let root_name = root.display();
    match (distinct.len(), tag) {
        (1, _) => Ok(distinct.remove(0).item),
        (0, _) => Err(NoSuchImage::new(root, tag, all_names).into()),
        (_, None) => bail!(
            kind = ErrorKind::AmbiguousImage {
                choices: labels.clone()
            },
            "{root_name}: holds several images; choose one with --tag: {}",
            labels.join(", ")
        ),
        (_, Some(tag)) => bail!(
            kind = ErrorKind::AmbiguousImage {
                choices: labels.clone()
            },
            "{root_name}: {tag:?} names several images; choose one with --tag and a full name: {}",
            labels.join(", ")
        ),
    }
}

/// The position a tag of the form `@N` names: the N-th entry (from 0) of
/// `index.json` or `manifest.json`, as containers-transports write it
/// (`oci:DIR:@1`). No name has that form: a `ref.name` and a docker
/// reference both start with a letter or digit.
pub(super) fn position(tag: Option<&str>) -> Result<Option<usize>> {
    let Some(index) = tag.and_then(|tag| tag.strip_prefix('@')) else {
        return Ok(None);
    };
    match index.parse::<usize>() {
        Ok(n) if index.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => bail!("invalid source index @{index}: not a non-negative integer"),
    }
}

/// The item at `position` of `items`, the entries of `file`.
pub(super) fn at_position<'a, T>(
    root: &Path,
    file: &str,
    items: &'a [T],
    position: usize,
) -> Result<&'a T> {
    items.get(position).ok_or_else(|| {
        crate::error::err!(
            "{}: no @{position}: {file} has {} {}, from @0",
            root.display(),
            items.len(),
            if items.len() == 1 { "entry" } else { "entries" }
        )
    })
}

/// The images of an index: its entries grouped by name, since the entries
/// of one multi-platform image share it (and unnamed entries are taken
/// for the platforms of one image, as a plain multi-platform layout has
/// them). Each candidate holds its entries that `tag` names.
pub(super) fn index_candidates<'a>(
    entries: &'a [Descriptor],
    tag: Option<&str>,
) -> Vec<Candidate<Vec<&'a Descriptor>>> {
    let mut keys: Vec<Option<&str>> = Vec::new();
    let mut candidates: Vec<Candidate<Vec<&Descriptor>>> = Vec::new();
    for entry in entries {
        let key = entry_name(entry);
        let at = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            candidates.push(Candidate {
                names: key.map(str::to_owned).into_iter().collect(),
                tagged: false,
                content: Vec::new(),
                item: Vec::new(),
            });
            candidates.len() - 1
        });
        let candidate = &mut candidates[at];
        candidate.content.push(entry.digest.clone());
        if tag.is_none_or(|tag| entry_tagged(entry, tag)) {
            candidate.tagged = true;
            candidate.item.push(entry);
        }
    }
    candidates
}

/// The images of a docker-save `manifest.json`, named by their `RepoTags`.
pub(super) fn save_candidates<'a>(
    entries: &'a [DockerSaveEntry],
    tag: Option<&str>,
) -> Vec<Candidate<&'a DockerSaveEntry>> {
    entries
        .iter()
        .map(|entry| {
            let names = entry.repo_tags.clone().unwrap_or_default();
            Candidate {
                tagged: tag.is_none_or(|tag| names.iter().any(|n| docker_tag_matches(n, tag))),
                names,
                content: std::iter::once(&entry.config)
                    .chain(&entry.layers)
                    .cloned()
                    .collect(),
                item: entry,
            }
        })
        .collect()
}

/// The name an index entry is known by: its full name where Docker and
/// containerd keep it, else its `ref.name`.
pub(super) fn entry_name(descriptor: &Descriptor) -> Option<&str> {
    let annotations = &descriptor.annotations;
    annotations
        .get(spec::CONTAINERD_NAME)
        .or_else(|| annotations.get(spec::REF_NAME))
        .map(String::as_str)
}

/// Whether `tag` names an index entry: its `ref.name` exactly, or a full
/// name (in `ref.name` or `io.containerd.image.name`) as Docker reads it.
pub(super) fn entry_tagged(descriptor: &Descriptor, tag: &str) -> bool {
    let annotations = &descriptor.annotations;
    let ref_name = annotations.get(spec::REF_NAME);
    // A bare tag (`latest`, `1.0`) is not a repository: `alpine` must not
    // match `latest` by way of the implied `:latest`.
    let is_reference = |name: &&String| name.contains(['/', ':']);
    ref_name.is_some_and(|name| name == tag)
        || ref_name
            .filter(is_reference)
            .is_some_and(|name| docker_tag_matches(name, tag))
        || annotations
            .get(spec::CONTAINERD_NAME)
            .is_some_and(|name| docker_tag_matches(name, tag))
}

/// `alpine` means `alpine:latest`; `docker.io/library/` is implied.
pub(super) fn docker_tag_matches(repo_tag: &str, wanted: &str) -> bool {
    let strip = |t: &str| familiar(t).to_owned();
    let with_latest = |t: String| {
        if t.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            t
        } else {
            t + ":latest"
        }
    };
    with_latest(strip(repo_tag)) == with_latest(strip(wanted))
}

/// A name as docker shows it: `docker.io/` and `library/` left implied
/// (`docker.io/library/alpine:3` is `alpine:3`).
pub(super) fn familiar(name: &str) -> &str {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name)
}

/// Names once each, in order.
fn unique(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A list for messages.
pub(super) fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags_match_with_implied_parts() {
        for (repo_tag, wanted, matches) in [
            ("alpine:latest", "alpine", true),
            ("alpine:latest", "docker.io/library/alpine:latest", true),
            ("quay.io/x/y:1", "quay.io/x/y:1", true),
            ("alpine:3.19", "alpine", false),
            ("localhost:5000/img", "localhost:5000/img:latest", true),
            ("docker.io/team/app:1", "team/app:1", true),
            ("docker.io/library/alpine:latest", "latest", false),
        ] {
            assert_eq!(
                docker_tag_matches(repo_tag, wanted),
                matches,
                "{repo_tag} ~ {wanted}"
            );
        }
    }

    fn entry(annotations: &[(&str, &str)]) -> Descriptor {
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        serde_json::from_value(serde_json::json!({
            "mediaType": spec::OCI_MANIFEST,
            "digest": "sha256:00",
            "size": 1,
            "annotations": annotations,
        }))
        .unwrap()
    }

    #[test]
    fn tags_name_entries_by_ref_name_or_full_name() {
        let docker = entry(&[
            (spec::REF_NAME, "latest"),
            (spec::CONTAINERD_NAME, "docker.io/library/alpine:latest"),
        ]);
        let bare = entry(&[(spec::REF_NAME, "1.0")]);
        let full = entry(&[(spec::REF_NAME, "example.com/app:2")]);
        for (descriptor, tag, tagged) in [
            (&docker, "latest", true),
            (&docker, "alpine", true),
            (&docker, "alpine:latest", true),
            (&docker, "docker.io/library/alpine:latest", true),
            (&docker, "busybox", false),
            (&bare, "1.0", true),
            (&bare, "1", false),
            (&bare, "1.0:latest", false),
            (&full, "example.com/app:2", true),
            (&full, "2", false),
        ] {
            assert_eq!(
                entry_tagged(descriptor, tag),
                tagged,
                "{tag} ~ {:?}",
                descriptor.annotations
            );
        }
        assert_eq!(entry_name(&docker), Some("docker.io/library/alpine:latest"));
        assert_eq!(entry_name(&bare), Some("1.0"));
        assert_eq!(entry_name(&entry(&[])), None);
    }

    fn candidate(names: &[&str], tagged: bool, content: &str) -> Candidate<String> {
        Candidate {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            tagged,
            content: vec![content.to_owned()],
            item: content.to_owned(),
        }
    }

    /// A tag, the candidates, and the chosen candidate's content or words
    /// of the error.
    type Case = (
        Option<&'static str>,
        Vec<Candidate<String>>,
        Result<&'static str, &'static [&'static str]>,
    );

    #[test]
    fn choosing_refuses_to_guess() {
        let root = Path::new("/img");
        let pick = |tag, candidates| choose(root, tag, candidates).map_err(|e| e.to_string());
        let cases: Vec<Case> = vec![
            (None, vec![candidate(&["a"], true, "1")], Ok("1")),
            (
                None,
                vec![candidate(&["a"], true, "1"), candidate(&["b"], true, "1")],
                Ok("1"),
            ),
            (
                None,
                vec![candidate(&["a"], true, "1"), candidate(&[], true, "2")],
                Err(&["several images", "a", "untagged 2"]),
            ),
            (
                Some("x"),
                vec![candidate(&["a"], false, "1"), candidate(&["b"], true, "2")],
                Ok("2"),
            ),
            (
                Some("x"),
                vec![candidate(&["a"], true, "1"), candidate(&["b"], true, "2")],
                Err(&["\"x\" names several images", "a, b"]),
            ),
            (
                Some("x"),
                vec![candidate(&["a"], false, "1"), candidate(&["b"], false, "2")],
                Err(&["no image tagged \"x\"", "a, b"]),
            ),
        ];
        for (tag, candidates, expected) in cases {
            let got = pick(tag, candidates);
            match expected {
                Ok(content) => assert_eq!(got.as_deref(), Ok(content), "{tag:?}"),
                Err(words) => {
                    let err = got.expect_err("an error");
                    for word in words {
                        assert!(err.contains(word), "{word:?} not in {err:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn no_such_image_is_typed() {
        let untagged = || vec![candidate(&["a"], false, "1")];
        for (tag, candidates) in [(Some("x"), untagged()), (None, Vec::new())] {
            let err = choose(Path::new("/img"), tag, candidates).unwrap_err();
            let kind = crate::error::ErrorKind::NoSuchImage {
                requested: tag.map(str::to_owned),
                available: if tag.is_some() {
                    vec!["a".to_owned()]
                } else {
                    Vec::new()
                },
            };
            assert_eq!(err.kind(), &kind, "{err}");
        }
    }
}
