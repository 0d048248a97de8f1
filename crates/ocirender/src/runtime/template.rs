//! The runtime config an image's own settings are applied to: umoci
//! 0.4.7's default (`oci/config/convert/default.go`, `Example`), which runs
//! under runc and crun, with two changes: `process.terminal` is false and
//! `hostname` is `container` (see the module docs of [`super`]).
//!
//! It is a modest sandbox: its own pid, network, ipc, uts and mount
//! namespaces; three capabilities; no new privileges; 1024 open files;
//! every device denied but the runtime's defaults; the usual `/proc` and
//! `/sys` paths masked or read-only.

use super::spec::{
    Capabilities, DeviceRule, Linux, Mount, Namespace, Process, Resources, Rlimit, Root, Spec, User,
};
use std::collections::BTreeMap;

/// The runtime spec version written: every field used is in 1.0.0, and
/// it is what umoci writes.
const OCI_VERSION: &str = "1.0.0";

/// `PATH` when the image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `TERM` when the process has a terminal and the image sets none.
pub(crate) const DEFAULT_TERM: &str = "TERM=xterm";

/// The command when the image has neither `Entrypoint` nor `Cmd`.
const DEFAULT_ARGS: &[&str] = &["sh"];

const HOSTNAME: &str = "container";

const CAPABILITIES: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

const NAMESPACES: &[&str] = &["pid", "network", "ipc", "uts", "mount"];

const MASKED_PATHS: &[&str] = &[
    "/proc/kcore",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The mounts every container gets: destination, type, source, options.
const MOUNTS: &[(&str, &str, &str, &[&str])] = &[
    ("/proc", "proc", "proc", &[]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
    (
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ),
];

/// The default runtime config, its root at `root_path`.
pub(crate) fn template(root_path: String) -> Spec {
    Spec {
        oci_version: OCI_VERSION.to_owned(),
        process: Process {
            terminal: false,
            user: User {
                uid: 0,
                gid: 0,
                additional_gids: Vec::new(),
            },
            args: strings(DEFAULT_ARGS),
            env: vec![DEFAULT_PATH.to_owned()],
            cwd: "/".to_owned(),
            capabilities: Capabilities {
                bounding: strings(CAPABILITIES),
                effective: strings(CAPABILITIES),
                inheritable: strings(CAPABILITIES),
                permitted: strings(CAPABILITIES),
                ambient: strings(CAPABILITIES),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".to_owned(),
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: true,
        },
        root: Root { path: root_path },
        hostname: HOSTNAME.to_owned(),
        mounts: MOUNTS
            .iter()
            .map(|(destination, kind, source, options)| mount(destination, kind, source, options))
            .collect(),
        annotations: BTreeMap::new(),
        linux: Linux {
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
            resources: Some(Resources {
                devices: vec![DeviceRule {
                    allow: false,
                    access: "rwm".to_owned(),
                }],
            }),
            namespaces: NAMESPACES.iter().map(|kind| namespace(kind)).collect(),
            masked_paths: strings(MASKED_PATHS),
            readonly_paths: strings(READONLY_PATHS),
        },
    }
}

/// A mount entry.
pub(crate) fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.to_owned(),
        kind: kind.to_owned(),
        source: source.to_owned(),
        options: strings(options),
    }
}

/// A namespace entry.
pub(crate) fn namespace(kind: &str) -> Namespace {
    Namespace {
        kind: kind.to_owned(),
    }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
