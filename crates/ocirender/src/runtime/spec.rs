//! The runtime spec's `config.json`, as far as this crate writes it.
//!
//! Typed structs rather than a JSON map, so the keys come out in the
//! order of the runtime spec's own Go types (`specs-go/config.go`, which
//! runc, crun's `spec` and umoci write): a stable order a person can diff.
//! Annotations are a sorted map. Fields the runtime spec marks
//! `omitempty` are left out when empty, as Go leaves them out.

use serde::Serialize;
use std::collections::BTreeMap;

/// A runtime config (`config.json` of a bundle).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec {
    pub(crate) oci_version: String,
    pub(crate) process: Process,
    pub(crate) root: Root,
    pub(crate) hostname: String,
    pub(crate) mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) linux: Linux,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Process {
    /// Always written, false included: whether a bundle wants a terminal
    /// is worth stating.
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

/// `root`: its `readonly` is false, which Go leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Root {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Linux {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    pub namespaces: Vec<Namespace>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Resources {
    pub devices: Vec<DeviceRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub access: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
}

impl Spec {
    /// The `config.json` bytes: indented with tabs (as runc, crun and
    /// umoci indent it), ending in a newline.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.serialize(&mut serializer)
            .expect("strings and numbers always serialize");
        out.push(b'\n');
        out
    }
}
