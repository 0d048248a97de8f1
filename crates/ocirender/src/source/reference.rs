//! Image references as people type them: `debian`, `debian:12`,
//! `ghcr.io/org/app@sha256:…`, `localhost:5000/a/b:tag`, `docker://…`.
//!
//! The rules are Docker's (`distribution/reference`), because every user
//! and every other tool (podman, skopeo, Apptainer's `docker://`) already
//! expects them: the first path component is a registry only when it looks
//! like a host (it has a `.` or a `:`, or is `localhost`); otherwise the
//! registry is Docker Hub, where one-component names live under `library/`.
//! Names are normalized once here, so a reference prints the same canonical
//! form whatever the user typed.

use crate::blob::digest::Digest;
use crate::error::{bail, Context, Result};
use std::fmt;
use std::str::FromStr;

/// The name of Docker Hub in references.
const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is actually served.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The accepted URL-like prefix (Apptainer, skopeo).
const DOCKER_SCHEME: &str = "docker://";
/// The longest repository name the distribution spec allows.
const MAX_NAME_LEN: usize = 255;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry as written, normalized: `docker.io` for Docker Hub, a
    /// host with an optional port otherwise (`[::1]:5000` for IPv6).
    pub registry: String,
    /// The repository path inside the registry (`library/debian`).
    pub repository: String,
    /// The tag: `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// The digest; it wins over the tag for fetching.
    pub digest: Option<Digest>,
}

impl Reference {
    /// The host (and port) serving the registry API: Docker Hub's
    /// `docker.io` is served at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Whether the registry is on this machine (`localhost`, 127.0.0.0/8,
    /// `::1`), where plain HTTP is the norm and safe.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(split_host_port(&self.registry).0)
    }

    /// `registry/repository`, the name used in messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same tag and digest in `repository` of `registry` (`host[:port]`,
    /// checked and normalized as in a reference): where a mirror, or the
    /// `location` of a registries.conf entry, serves this image.
    pub(crate) fn elsewhere(&self, registry: &str, repository: String) -> Result<Reference> {
        check_registry(registry)?;
        check_repository(&repository)?;
        Ok(Reference {
            registry: normalize_registry(registry),
            repository,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_owned(),
        }
    }
}

/// Whether `text` is written like a registry reference rather than a path:
/// a `docker://` prefix, or a reference whose first component names a
/// registry host. Whether a path of that name exists is the caller's call.
pub fn looks_like_reference(text: &str) -> bool {
    if text.starts_with(DOCKER_SCHEME) {
        return true;
    }
    match text.split_once('/') {
        Some((first, _)) => looks_like_host(first) && text.parse::<Reference>().is_ok(),
        None => false,
    }
}

/// Splits `host[:port]` or `[v6]:port` into the host (without brackets)
/// and the port, if any.
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// Docker's test for "this first component is a registry".
pub(crate) fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

impl FromStr for Reference {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> Result<Reference> {
        parse(text).with_context(|| format!("invalid image reference {text:?}"))
    }
}

fn parse(text: &str) -> Result<Reference> {
    let text = text.strip_prefix(DOCKER_SCHEME).unwrap_or(text);
    let (name_tag, digest) = match text.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest.parse::<Digest>()?)),
        None => (text, None),
    };
    let (name, tag) = split_tag(name_tag);
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let (registry, repository) = split_registry(name)?;
    check_repository(&repository)?;
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// `name:tag` → (`name`, `tag`); a `:` before the last `/` is a port.
fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    let last_component = name_tag.rfind('/').map_or(0, |slash| slash + 1);
    match name_tag[last_component..].rfind(':') {
        Some(colon) => {
            let colon = last_component + colon;
            (&name_tag[..colon], Some(&name_tag[colon + 1..]))
        }
        None => (name_tag, None),
    }
}

/// The registry (normalized) and the repository (with Docker Hub's
/// `library/` added to one-component names).
fn split_registry(name: &str) -> Result<(String, String)> {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => {
            check_registry(first)?;
            (normalize_registry(first), rest)
        }
        _ => (DOCKER_HUB.to_owned(), name),
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_owned()
    };
    Ok((registry, repository))
}

/// Docker Hub's other spellings become `docker.io`; hosts are lowercased.
pub(super) fn normalize_registry(registry: &str) -> String {
    let registry = registry.to_ascii_lowercase();
    match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        _ => registry,
    }
}

/// A host name, an IPv4 address or a bracketed IPv6 address, and an
/// optional numeric port.
pub(super) fn check_registry(registry: &str) -> Result<()> {
    let (host, port) = split_host_port(registry);
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            bail!("bad port {port:?} in registry {registry:?}");
        }
    }
    let host_ok = if registry.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    if !host_ok {
        bail!("bad registry host {registry:?}");
    }
    Ok(())
}

/// Each component is `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
pub(super) fn check_repository(repository: &str) -> Result<()> {
    if repository.len() > MAX_NAME_LEN {
        bail!("repository name longer than {MAX_NAME_LEN} characters");
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        bail!("repository name {repository:?} must be lowercase");
    }
    for component in repository.split('/') {
        if !valid_component(component) {
            bail!(
                "bad repository name component {component:?} \
                 (lowercase letters and digits, separated by '.', '_', '__' or '-')"
            );
        }
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: exactly ".", "_" or "__", or any run of "-".
    let mut separator = String::new();
    for &b in bytes {
        if alnum(b) {
            if !matches!(separator.as_str(), "" | "." | "_" | "__")
                && !separator.bytes().all(|s| s == b'-')
            {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<()> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = matches!(tag.as_bytes().first(), Some(&b) if word(b))
        && tag.len() <= 128
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if !valid {
        bail!("bad tag {tag:?} (letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-')");
    }
    Ok(())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `host` (a name, an IPv4 address, or an IPv6 address with or
/// without brackets) is loopback by its text: `localhost`, 127.0.0.0/8,
/// `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_docker_forms() {
        let at = format!("@sha256:{HEX}");
        let cases: Vec<(String, &str, &str, Option<&str>, bool)> = vec![
            // input, registry, repository, tag, has digest
            (
                "debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
            ),
            (
                "debian:12".into(),
                "docker.io",
                "library/debian",
                Some("12"),
                false,
            ),
            (
                "docker://debian:12".into(),
                "docker.io",
                "library/debian",
                Some("12"),
                false,
            ),
            (
                "user/app".into(),
                "docker.io",
                "user/app",
                Some("latest"),
                false,
            ),
            (
                "docker.io/debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
            ),
            (
                "index.docker.io/library/debian".into(),
                "docker.io",
                "library/debian",
                Some("latest"),
                false,
            ),
            (
                "ghcr.io/org/app:v1.2".into(),
                "ghcr.io",
                "org/app",
                Some("v1.2"),
                false,
            ),
            (
                "localhost/app".into(),
                "localhost",
                "app",
                Some("latest"),
                false,
            ),
            (
                "localhost:5000/a/b".into(),
                "localhost:5000",
                "a/b",
                Some("latest"),
                false,
            ),
            (
                "127.0.0.1:5000/a/b:t".into(),
                "127.0.0.1:5000",
                "a/b",
                Some("t"),
                false,
            ),
            (
                "[::1]:5000/a/b:t".into(),
                "[::1]:5000",
                "a/b",
                Some("t"),
                false,
            ),
            ("[::1]/a".into(), "[::1]", "a", Some("latest"), false),
            (
                "Quay.IO/org/app".into(),
                "quay.io",
                "org/app",
                Some("latest"),
                false,
            ),
            (format!("quay.io/a/b{at}"), "quay.io", "a/b", None, true),
            (
                format!("quay.io/a/b:1{at}"),
                "quay.io",
                "a/b",
                Some("1"),
                true,
            ),
            (format!("host:5000/a{at}"), "host:5000", "a", None, true),
            (
                "a/b.c_d__e--f/g-h".into(),
                "docker.io",
                "a/b.c_d__e--f/g-h",
                Some("latest"),
                false,
            ),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e:#}"));
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repository, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.is_some(), digest, "{input}");
        }
    }

    #[test]
    fn prints_canonical_form() {
        let cases = [
            ("debian:12", "docker.io/library/debian:12".to_owned()),
            ("debian", "docker.io/library/debian:latest".to_owned()),
            (
                &format!("host:5000/a/b@sha256:{HEX}"),
                format!("host:5000/a/b@sha256:{HEX}"),
            ),
            (
                &format!("docker://x/y:t@sha256:{HEX}"),
                format!("docker.io/x/y:t@sha256:{HEX}"),
            ),
        ];
        for (input, printed) in cases {
            let r: Reference = input.parse().unwrap();
            assert_eq!(r.to_string(), printed);
            assert_eq!(r.to_string().parse::<Reference>().unwrap(), r);
        }
    }

    #[test]
    fn rejects_bad_references() {
        let cases = [
            ("Debian", "must be lowercase"),
            ("docker.io/Library/debian", "must be lowercase"),
            ("debian:", "bad tag"),
            ("debian:-x", "bad tag"),
            (&format!("debian:{}", "a".repeat(129)), "bad tag"),
            ("debian@sha256:abc", "bad hex"),
            ("debian@md5:abc", "unsupported digest algorithm"),
            ("a//b", "bad repository name component"),
            ("a/b_", "bad repository name component"),
            ("a/b___c", "bad repository name component"),
            ("a/b..c", "bad repository name component"),
            ("", "bad repository name component"),
            ("host:99999/a", "bad port"),
            ("host:x/a", "bad port"),
            ("ho_st.io/a", "bad registry host"),
            ("[zz]:5000/a", "bad registry host"),
            (&format!("x/{}", "a".repeat(256)), "longer than 255"),
        ];
        for (input, message) in cases {
            let e = input.parse::<Reference>().expect_err(input);
            let text = format!("{e:#}");
            assert!(text.contains(message), "{input}: {text}");
            assert!(text.contains("invalid image reference"), "{text}");
        }
    }

    #[test]
    fn api_hosts_and_loopback() {
        let cases = [
            ("debian", "registry-1.docker.io", false),
            ("quay.io/a/b", "quay.io", false),
            ("localhost/a", "localhost", true),
            ("localhost:5000/a", "localhost:5000", true),
            ("127.0.0.1/a", "127.0.0.1", true),
            ("127.1.2.3:80/a", "127.1.2.3:80", true),
            ("[::1]:5000/a", "[::1]:5000", true),
            ("[::2]:5000/a", "[::2]:5000", false),
            ("10.0.0.1:5000/a", "10.0.0.1:5000", false),
            ("localhost.example.com/a", "localhost.example.com", false),
        ];
        for (input, host, loopback) in cases {
            let r: Reference = input.parse().unwrap();
            assert_eq!(r.api_host(), host, "{input}");
            assert_eq!(r.is_loopback(), loopback, "{input}");
        }
    }

    #[test]
    fn tag_or_digest_prefers_the_digest() {
        let r: Reference = format!("a/b:1@sha256:{HEX}").parse().unwrap();
        assert_eq!(r.tag_or_digest(), format!("sha256:{HEX}"));
        let r: Reference = "a/b".parse().unwrap();
        assert_eq!(r.tag_or_digest(), "latest");
    }

    #[test]
    fn tells_references_from_paths() {
        let cases = [
            ("docker://debian", true),
            ("ghcr.io/org/app:1", true),
            ("localhost:5000/a", true),
            ("localhost/a", true),
            ("debian", false),
            ("debian:12", false),
            ("./image", false),
            ("images/debian", false),
            ("/tmp/x.tar", false),
            ("my.dir/Sub", false),
        ];
        for (input, expected) in cases {
            assert_eq!(looks_like_reference(input), expected, "{input}");
        }
    }

    #[test]
    fn splits_hosts_and_ports() {
        assert_eq!(split_host_port("h:1"), ("h", Some("1")));
        assert_eq!(split_host_port("h"), ("h", None));
        assert_eq!(split_host_port("[::1]:5"), ("::1", Some("5")));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
    }
}
