//! The image config, as far as a runtime config is made from it: the
//! fields `conversion.md` maps, in the OCI and Docker schemas (which agree
//! on them).

use super::error::Error;
use crate::source::image::store::MAX_SMALL_BLOB;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;

/// The largest image config read: the limit on every config, manifest and
/// index read into memory (`MAX_SMALL_BLOB`).
pub const MAX_IMAGE_CONFIG: u64 = MAX_SMALL_BLOB;

/// Reads an image config's bytes, refusing more than [`MAX_IMAGE_CONFIG`].
pub fn read_image_config(input: impl Read) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    input
        .take(MAX_IMAGE_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Read)?;
    if bytes.len() as u64 > MAX_IMAGE_CONFIG {
        return Err(Error::TooLarge {
            limit: MAX_IMAGE_CONFIG,
        });
    }
    Ok(bytes)
}

/// An image config (`application/vnd.oci.image.config.v1+json`, or
/// Docker's `application/vnd.docker.container.image.v1+json`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ImageConfig {
    /// Required by the image spec; a manifest or an index has neither
    /// `architecture` nor `os`, which is how they are told apart.
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    #[serde(rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    pub created: Option<String>,
    pub author: Option<String>,
    /// Absent, or `null`, is an image with no run configuration.
    pub config: Option<ExecConfig>,
}

/// `config` of an image config: how the image means to be run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecConfig {
    pub user: Option<String>,
    /// Keys `port/proto`; the values are empty objects.
    pub exposed_ports: Option<BTreeMap<String, IgnoredAny>>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Keys are paths; the values are empty objects.
    pub volumes: Option<BTreeMap<String, IgnoredAny>>,
    pub working_dir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
}

impl ImageConfig {
    /// Parses an image config, refusing any but a Linux image's.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, Error> {
        let classify = |e: serde_json::Error| match e.is_data() {
            true => Error::NotImageConfig(e),
            false => Error::NotJson(e),
        };
        // serde reads a struct from an array of its fields too.
        if !bytes.trim_ascii_start().starts_with(b"{") {
            serde_json::from_slice::<IgnoredAny>(bytes).map_err(classify)?;
            let not_object = serde::de::Error::custom("the JSON is not an object");
            return Err(Error::NotImageConfig(not_object));
        }
        let image: ImageConfig = serde_json::from_slice(bytes).map_err(classify)?;
        if image.os != "linux" {
            return Err(Error::UnsupportedOs(image.os));
        }
        Ok(image)
    }

    /// The run configuration; an image without one runs with defaults.
    pub fn exec(&self) -> ExecConfig {
        self.config.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_over_the_limit_is_refused_before_parsing() {
        let limit = MAX_IMAGE_CONFIG as usize;
        assert_eq!(
            read_image_config(&vec![b' '; limit][..]).unwrap().len(),
            limit
        );
        let err = read_image_config(std::io::repeat(b' ')).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: l } if l == MAX_IMAGE_CONFIG));
    }

    #[test]
    fn what_is_not_a_linux_image_config_is_refused_by_kind() {
        let cases: &[(&str, &str)] = &[
            ("", "not JSON"),
            ("{\"os\": ", "not JSON"),
            ("[1, 2]", "not an image config"),
            (
                r#"{"schemaVersion": 2, "config": {}, "layers": []}"#,
                "not an image config",
            ),
            (r#"{"architecture": "amd64"}"#, "not an image config"),
            // serde would read a struct from an array of its fields.
            (
                r#"["amd64", "linux", null, null, null, null, null, null]"#,
                "not an image config",
            ),
            (
                r#"{"architecture": "amd64", "os": "linux", "config": {"Env": "A=1"}}"#,
                "not an image config",
            ),
            (
                r#"{"architecture": "amd64", "os": "windows"}"#,
                "the image is for os \"windows\": a runtime bundle needs a linux image",
            ),
        ];
        for (input, expected) in cases {
            let err = ImageConfig::parse(input.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), *expected, "{input}");
        }
    }

    #[test]
    fn null_and_absent_fields_are_the_same() {
        let absent = ImageConfig::parse(br#"{"architecture": "amd64", "os": "linux"}"#).unwrap();
        let null = ImageConfig::parse(
            br#"{"architecture": "amd64", "os": "linux", "config":
                 {"Env": null, "Cmd": null, "Labels": null, "ExposedPorts": null}}"#,
        )
        .unwrap();
        for image in [absent, null] {
            let exec = image.exec();
            assert!(exec.env.is_none() && exec.cmd.is_none() && exec.labels.is_none());
        }
    }

    #[test]
    fn a_docker_config_reads_like_an_oci_one() {
        let image = ImageConfig::parse(
            br#"{"architecture": "amd64", "os": "linux", "docker_version": "24.0.7",
                 "container_config": {"Cmd": ["ignored"]},
                 "config": {"Cmd": ["nginx"], "ExposedPorts": {"80/tcp": {}},
                            "Volumes": {"/data": {}}, "WorkingDir": "/srv",
                            "StopSignal": "SIGQUIT", "User": "www"}}"#,
        )
        .unwrap();
        let exec = image.exec();
        assert_eq!(exec.cmd.unwrap(), ["nginx"]);
        assert_eq!(
            exec.exposed_ports.unwrap().keys().collect::<Vec<_>>(),
            ["80/tcp"]
        );
        assert_eq!(exec.volumes.unwrap().keys().collect::<Vec<_>>(), ["/data"]);
        assert_eq!(exec.working_dir.as_deref(), Some("/srv"));
        assert_eq!(exec.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(exec.user.as_deref(), Some("www"));
    }
}
