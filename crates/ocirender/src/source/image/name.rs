//! The names users type for an image: a path, or the containers-transports
//! syntax skopeo, podman and buildah take (`containers-transports(5)`):
//!
//! * `oci:DIR[:REF]`: an OCI layout directory; REF is a `ref.name`, or
//!   `@N`, the N-th entry (from 0) of its `index.json`;
//! * `oci-archive:FILE[:REF]`: an OCI layout in a tar file (no `@N`, as in
//!   containers/image);
//! * `docker-archive:FILE[:NAME]`: a `docker save` tar file; NAME is one of
//!   its `RepoTags` read as docker does (`alpine` = `alpine:latest`), or
//!   `@N`, the N-th item of its `manifest.json`;
//! * `docker://REF`: a registry reference, which a tool reading images on
//!   disk sends to `oci-fetch`.
//!
//! As in containers/image, the path ends at the first colon after the
//! transport: `oci:/a:b:c` is directory `/a`, reference `b:c`. So a path
//! holding a colon is written plain, never with a transport: a name that
//! exists on disk as it is typed is always that path (see
//! [`ImageName::from_arg`]), and `./oci:x` is a path however it looks.

use super::store::Store;
use crate::error::{bail, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// How an image is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A plain path: a layout, docker-save directory, or either as a tar.
    Path,
    /// `oci:`: an OCI layout directory.
    Oci,
    /// `oci-archive:`: an OCI layout in a tar file.
    OciArchive,
    /// `docker-archive:`: a `docker save` tar file.
    DockerArchive,
    /// `docker://`: a registry reference.
    Docker,
}

impl Transport {
    /// The prefix that names it (empty for a plain path).
    pub fn prefix(self) -> &'static str {
        match self {
            Transport::Path => "",
            Transport::Oci => "oci:",
            Transport::OciArchive => "oci-archive:",
            Transport::DockerArchive => "docker-archive:",
            Transport::Docker => "docker://",
        }
    }
}

/// containers/image transports that name images no tool here reads.
const UNSUPPORTED: &[&str] = &[
    "containers-storage",
    "dir",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

/// An image name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// How it was named.
    pub transport: Transport,
    /// The path (the registry reference, for [`Transport::Docker`]).
    pub location: String,
    /// The image within: a `ref.name`, a `RepoTags` name or `@N`, as
    /// `--tag` takes it.
    pub reference: Option<String>,
}

impl ImageName {
    /// A plain path.
    pub fn path(path: &Path) -> ImageName {
        ImageName {
            transport: Transport::Path,
            location: path.to_string_lossy().into_owned(),
            reference: None,
        }
    }

    /// The name a user typed: a path if one exists on disk under exactly
    /// that name (so every path that worked before transports still
    /// does), else [`ImageName::parse`]'s reading.
    pub fn from_arg(text: &str) -> Result<ImageName> {
        if std::fs::symlink_metadata(text).is_ok() {
            return Ok(ImageName::path(Path::new(text)));
        }
        ImageName::parse(text)
    }

    /// Parses `text` without looking at the disk.
    pub fn parse(text: &str) -> Result<ImageName> {
        let Some((prefix, rest)) = text.split_once(':') else {
            return Ok(ImageName::path(Path::new(text)));
        };
        let transport = match prefix {
            "oci" => Transport::Oci,
            "oci-archive" => Transport::OciArchive,
            "docker-archive" => Transport::DockerArchive,
            "docker" => return docker(text, rest),
            other if UNSUPPORTED.contains(&other) => bail!(
                "{text}: the {other}: transport is not supported; \
                 name an image with oci:, oci-archive:, docker-archive: or a path"
            ),
            _ => return Ok(ImageName::path(Path::new(text))),
        };
        let (location, reference) = match rest.split_once(':') {
            Some((location, reference)) => (location, Some(reference)),
            None => (rest, None),
        };
        if location.is_empty() {
            bail!("{text}: no path after {}", transport.prefix());
        }
        let reference = check_reference(text, transport, reference)?;
        Ok(ImageName {
            transport,
            location: location.to_owned(),
            reference,
        })
    }

    /// The tag to select with: the name's reference, or `--tag`'s; both
    /// only when they agree.
    pub fn tag(&self, flag: Option<String>) -> Result<Option<String>> {
        match (&self.reference, flag) {
            (Some(named), Some(flag)) if *named != flag => {
                bail!("{self}: the name says {named:?} and --tag says {flag:?}; give only one")
            }
            (Some(named), _) => Ok(Some(named.clone())),
            (None, flag) => Ok(flag),
        }
    }

    /// Opens the image, refusing a registry reference and a transport that
    /// does not fit what is there (`oci-archive:` on a directory,
    /// `docker-archive:` on an archive without `manifest.json`).
    pub fn open(&self) -> Result<Store> {
        if self.transport == Transport::Docker {
            bail!("{self}: a registry reference; oci-layers reads images on disk: use `oci-fetch {self}`");
        }
        let store = Store::open(Path::new(&self.location))?;
        let found = Found::of(&store);
        if !found.fits(self.transport) {
            bail!("{self}: {}", found.mismatch(self.transport, &self.location));
        }
        Ok(store)
    }

    /// The path, for messages.
    pub fn path_buf(&self) -> PathBuf {
        PathBuf::from(&self.location)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.transport.prefix(), self.location)?;
        match &self.reference {
            Some(reference) => write!(f, ":{reference}"),
            None => Ok(()),
        }
    }
}

/// `docker://REF`; `docker:` without the slashes is a mistake to name.
fn docker(text: &str, rest: &str) -> Result<ImageName> {
    let Some(reference) = rest.strip_prefix("//").filter(|r| !r.is_empty()) else {
        bail!("{text}: a registry reference is written docker://REFERENCE");
    };
    Ok(ImageName {
        transport: Transport::Docker,
        location: reference.to_owned(),
        reference: None,
    })
}

/// The reference part, checked as containers/image checks it. Empty is
/// none for `oci:` and `oci-archive:` (`oci:dir:` = `oci:dir`) and an
/// error for `docker-archive:`.
fn check_reference(
    text: &str,
    transport: Transport,
    reference: Option<&str>,
) -> Result<Option<String>> {
    let Some(reference) = reference else {
        return Ok(None);
    };
    if reference.starts_with('@') {
        if transport == Transport::OciArchive {
            bail!("{text}: oci-archive: takes a ref.name, not an @index");
        }
        super::tags::position(Some(reference)).map_err(|e| crate::error::err!("{text}: {e}"))?;
        return Ok(Some(reference.to_owned()));
    }
    match transport {
        Transport::DockerArchive => check_docker_name(text, reference)?,
        _ if reference.is_empty() => return Ok(None),
        _ if !is_ref_name(reference) => bail!(
            "{text}: invalid reference {reference:?} (an image-spec ref.name: \
             letters and digits, joined by one of -._:@+ or --, components separated by /)"
        ),
        _ => {}
    }
    Ok(Some(reference.to_owned()))
}

/// A `docker-archive:` NAME: a docker reference with no digest.
fn check_docker_name(text: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("{text}: no name after the path (docker-archive:FILE[:NAME])");
    }
    let parsed: crate::source::reference::Reference = name
        .parse()
        .map_err(|e| crate::error::err!("{text}: {e:#}"))?;
    if parsed.digest.is_some() {
        bail!("{text}: docker-archive: takes a name and tag, not a digest");
    }
    Ok(())
}

/// The image-spec `ref.name` grammar containers/image checks:
/// `component(/component)*`, a component being alphanumeric runs joined by
/// one of `-._:@+` or by `--`.
fn is_ref_name(name: &str) -> bool {
    name.split('/').all(is_ref_component)
}

fn is_ref_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    let bytes = component.as_bytes();
    // Starting and ending with a run, what lies between runs is exactly
    // the separators.
    bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && component
            .split(|c: char| c.is_ascii_alphanumeric())
            .filter(|separator| !separator.is_empty())
            .all(|separator| {
                separator == "--" || (separator.len() == 1 && "-._:@+".contains(separator))
            })
}

/// What a path turned out to hold.
struct Found {
    archive: bool,
    layout: bool,
    save: bool,
}

impl Found {
    fn of(store: &Store) -> Found {
        Found {
            archive: matches!(store, Store::Archive(_)),
            layout: store.exists("index.json"),
            save: store.exists("manifest.json"),
        }
    }

    /// Whether a transport may name it. A plain path names anything (and
    /// what is not an image is reported when it is read).
    fn fits(&self, transport: Transport) -> bool {
        match transport {
            Transport::Path => true,
            Transport::Oci => !self.archive && self.layout,
            Transport::OciArchive => self.archive && self.layout,
            Transport::DockerArchive => self.archive && self.save,
            Transport::Docker => false,
        }
    }

    /// What it is, why `transport` does not fit it, and how to name it.
    fn mismatch(&self, transport: Transport, path: &str) -> String {
        let what = match (self.archive, self.layout, self.save) {
            (false, true, _) => "an OCI layout directory",
            (false, false, true) => "an extracted docker save directory",
            (false, false, false) => "a directory holding no image",
            (true, true, true) => "a docker save archive that is also an OCI archive",
            (true, false, true) => "a docker save archive",
            (true, true, false) => "an OCI archive",
            (true, false, false) => "an archive holding no image",
        };
        let why = match (transport, self.archive) {
            (Transport::Oci, true) => ", not a directory",
            (Transport::Oci, false) => ", with no index.json",
            (_, false) => ", not an archive (a tar file)",
            (Transport::OciArchive, true) => ", with no index.json",
            (_, true) => ", with no manifest.json",
        };
        let name = match (self.archive, self.layout, self.save) {
            (false, true, _) => format!("oci:{path}"),
            (true, _, true) => format!("docker-archive:{path}"),
            (true, true, false) => format!("oci-archive:{path}"),
            _ => return format!("{what}{why}; give its path alone"),
        };
        format!("{what}{why}; name it {name} or give its path alone")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Transport, String, Option<String>) {
        let name = ImageName::parse(text).unwrap_or_else(|e| panic!("{text}: {e:#}"));
        (name.transport, name.location, name.reference)
    }

    #[test]
    fn names_split_at_the_first_colon_after_the_transport() {
        let some = |s: &str| Some(s.to_owned());
        for (text, transport, location, reference) in [
            ("img", Transport::Path, "img", None),
            ("./oci:x", Transport::Path, "./oci:x", None),
            ("my:image.tar", Transport::Path, "my:image.tar", None),
            ("/abs/img.tar", Transport::Path, "/abs/img.tar", None),
            ("oci:dir", Transport::Oci, "dir", None),
            ("oci:dir:", Transport::Oci, "dir", None),
            ("oci:dir:tag", Transport::Oci, "dir", some("tag")),
            ("oci:dir:a:b", Transport::Oci, "dir", some("a:b")),
            ("oci:/abs/dir:ref", Transport::Oci, "/abs/dir", some("ref")),
            ("oci:./rel", Transport::Oci, "./rel", None),
            ("oci:dir:@0", Transport::Oci, "dir", some("@0")),
            ("oci:dir:@12", Transport::Oci, "dir", some("@12")),
            (
                "oci:d:example.com/ns/img:1.0",
                Transport::Oci,
                "d",
                some("example.com/ns/img:1.0"),
            ),
            ("oci:d:V1.0", Transport::Oci, "d", some("V1.0")),
            ("oci-archive:f.tar", Transport::OciArchive, "f.tar", None),
            (
                "oci-archive:f.tar:latest",
                Transport::OciArchive,
                "f.tar",
                some("latest"),
            ),
            (
                "docker-archive:f.tar",
                Transport::DockerArchive,
                "f.tar",
                None,
            ),
            (
                "docker-archive:f.tar:busybox",
                Transport::DockerArchive,
                "f.tar",
                some("busybox"),
            ),
            (
                "docker-archive:f.tar:localhost:5000/img:tag",
                Transport::DockerArchive,
                "f.tar",
                some("localhost:5000/img:tag"),
            ),
            (
                "docker-archive:f.tar:@1",
                Transport::DockerArchive,
                "f.tar",
                some("@1"),
            ),
            ("docker://alpine", Transport::Docker, "alpine", None),
            (
                "docker://quay.io/a/b:1",
                Transport::Docker,
                "quay.io/a/b:1",
                None,
            ),
        ] {
            assert_eq!(
                parsed(text),
                (transport, location.to_owned(), reference),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for (text, reason) in [
            ("oci:", "no path after oci:"),
            ("oci::tag", "no path after oci:"),
            ("oci:dir:@-1", "invalid source index @-1"),
            ("oci:dir:@x", "invalid source index @x"),
            ("oci:dir:@", "invalid source index @"),
            ("oci:dir:@99999999999999999999999", "invalid source index"),
            ("oci:dir:@+1", "invalid source index @+1"),
            ("oci:dir:-x", "invalid reference \"-x\""),
            ("oci:dir:a//b", "invalid reference"),
            ("oci:dir:a..b", "invalid reference"),
            ("oci:dir:a b", "invalid reference"),
            ("oci-archive:f.tar:@0", "takes a ref.name, not an @index"),
            ("docker-archive:", "no path after docker-archive:"),
            ("docker-archive:f.tar:", "no name after the path"),
            ("docker-archive:f.tar:Alpine", "must be lowercase"),
            (
                "docker-archive:f.tar:x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "not a digest",
            ),
            ("docker:alpine", "written docker://REFERENCE"),
            ("docker://", "written docker://REFERENCE"),
            ("dir:/tmp/x", "the dir: transport is not supported"),
            ("containers-storage:alpine", "not supported"),
        ] {
            let err = ImageName::parse(text).expect_err(text).to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.starts_with(text), "{text}: {err}");
        }
    }

    #[test]
    fn ref_names_follow_the_image_spec_grammar() {
        for (name, valid) in [
            ("latest", true),
            ("v1.0", true),
            ("a--b", true),
            ("a---b", false),
            ("a_b", true),
            ("a__b", false),
            ("a+b@c:d", true),
            ("ns/img", true),
            ("/img", false),
            ("img/", false),
            ("-x", false),
            ("x-", false),
            ("", false),
        ] {
            assert_eq!(is_ref_name(name), valid, "{name:?}");
        }
    }

    #[test]
    fn a_reference_and_tag_must_agree() {
        let named = ImageName::parse("oci:d:a").unwrap();
        assert_eq!(named.tag(None).unwrap().as_deref(), Some("a"));
        assert_eq!(named.tag(Some("a".into())).unwrap().as_deref(), Some("a"));
        let err = named.tag(Some("b".into())).unwrap_err().to_string();
        assert_eq!(
            err,
            "oci:d:a: the name says \"a\" and --tag says \"b\"; give only one"
        );
        let plain = ImageName::parse("d").unwrap();
        assert_eq!(plain.tag(Some("b".into())).unwrap().as_deref(), Some("b"));
    }
}
