//! Platforms (`os/arch[/variant]`) and how a request matches an index entry.
//!
//! Names are normalised the way containerd does: `x86_64` is `amd64`,
//! `aarch64` is `arm64`, and `arm64` without a variant means `arm64/v8`.
//! A request without a variant accepts any variant, preferring an entry
//! that matches exactly.

use crate::error::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A platform as index entries and image configs describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// CPU variant, e.g. `v7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => bail!("bad platform {text:?}: expected os/arch or os/arch/variant"),
        };
        if os.is_empty() || architecture.is_empty() || variant == Some("") {
            bail!("bad platform {text:?}: empty component");
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
        .normalized())
    }

    /// The platform of this machine.
    pub fn host() -> Platform {
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: std::env::consts::ARCH.to_owned(),
            variant: None,
        }
        .normalized()
    }

    /// Canonical names: `x86_64` -> `amd64`, `aarch64` -> `arm64`,
    /// `arm64` implies variant `v8`.
    pub fn normalized(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        self.architecture = match self.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            "i386" | "i686" => "386".to_owned(),
            "armhf" => "arm".to_owned(),
            other => other.to_owned(),
        };
        if self.architecture == "arm64" && self.variant.is_none() {
            self.variant = Some("v8".to_owned());
        }
        self
    }

    /// True for the `unknown/unknown` platform that BuildKit gives
    /// attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// What the user asked for: a platform, and whether they asked explicitly
/// (an image that only declares another platform is then an error).
#[derive(Debug, Clone)]
pub struct PlatformRequest {
    /// The wanted platform, normalised.
    pub platform: Platform,
    /// True if the variant was part of the request (otherwise any variant
    /// matches, an exact match preferred).
    pub variant_given: bool,
    /// True if the user named the platform (rather than defaulting to the
    /// host's).
    pub explicit: bool,
}

/// The platform as the user asked for it: without the variant
/// normalising implied (`linux/arm64`, not `linux/arm64/v8`).
impl fmt::Display for PlatformRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let platform = &self.platform;
        write!(f, "{}/{}", platform.os, platform.architecture)?;
        match &platform.variant {
            Some(variant) if self.variant_given => write!(f, "/{variant}"),
            _ => Ok(()),
        }
    }
}

impl PlatformRequest {
    /// A request for `text`, or for the host when `None`.
    pub fn new(text: Option<&str>) -> Result<PlatformRequest> {
        Ok(match text {
            Some(text) => PlatformRequest {
                platform: Platform::parse(text)?,
                variant_given: text.split('/').count() == 3,
                explicit: true,
            },
            None => PlatformRequest {
                platform: Platform::host(),
                variant_given: false,
                explicit: false,
            },
        })
    }

    /// Picks the first candidate matching exactly; failing that (when no
    /// variant was requested), the first with the right os and arch.
    /// Candidates without a platform match anything.
    pub fn choose<'a, T>(&self, candidates: &'a [(Option<Platform>, T)]) -> Option<&'a T> {
        let wanted = &self.platform;
        let exact = candidates.iter().find(|(p, _)| match p {
            None => true,
            Some(p) => {
                let p = p.clone().normalized();
                p.os == wanted.os
                    && p.architecture == wanted.architecture
                    && p.variant == wanted.variant
            }
        });
        if let Some((_, item)) = exact {
            return Some(item);
        }
        if self.variant_given {
            return None;
        }
        candidates
            .iter()
            .find(|(p, _)| {
                p.as_ref().is_some_and(|p| {
                    let p = p.clone().normalized();
                    p.os == wanted.os && p.architecture == wanted.architecture
                })
            })
            .map(|(_, item)| item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Option<Platform> {
        Some(Platform::parse(text).unwrap())
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/arm/v7/x").is_err());
        assert!(Platform::parse("linux//v7").is_err());
    }

    #[test]
    fn arm64_equals_arm64_v8() {
        let req = PlatformRequest::new(Some("linux/arm64")).unwrap();
        let candidates = [(p("linux/amd64"), 1), (p("linux/arm64/v8"), 2)];
        assert_eq!(req.choose(&candidates), Some(&2));
        let raw = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        assert_eq!(req.choose(&[(Some(raw), 3)]), Some(&3));
    }

    #[test]
    fn missing_variant_matches_any_preferring_exact() {
        let req = PlatformRequest::new(Some("linux/arm")).unwrap();
        let candidates = [(p("linux/arm/v6"), 1), (p("linux/arm/v7"), 2)];
        assert_eq!(req.choose(&candidates), Some(&1));
        let exact = [(p("linux/arm/v6"), 1), (p("linux/arm"), 2)];
        assert_eq!(req.choose(&exact), Some(&2));
        let strict = PlatformRequest::new(Some("linux/arm/v7")).unwrap();
        assert_eq!(strict.choose(&[(p("linux/arm/v6"), 1)]), None);
    }

    #[test]
    fn entries_without_platform_match() {
        let req = PlatformRequest::new(Some("linux/s390x")).unwrap();
        assert_eq!(req.choose(&[(None, 7)]), Some(&7));
        assert_eq!(req.choose(&[(p("linux/amd64"), 7)]), None);
    }
}
