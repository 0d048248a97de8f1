//! `--rootless`: a runtime config an unprivileged user can run, as umoci's
//! `ToRootless` makes it (with its `--uid-map`/`--gid-map` defaults):
//!
//! * a user namespace mapping the invoking user's uid and gid (when
//!   `oci-runtime-config` runs) to 0 in the container, one id each;
//! * no network namespace (an unprivileged user cannot configure one: the
//!   container shares the host's network), and no supplementary groups
//!   (`setgroups` is denied in such a namespace);
//! * no `uid=`/`gid=` mount options (the ids are not mapped); `/sys` and
//!   the mounts under it bound from the host instead of a new sysfs
//!   (which needs a network namespace of one's own), read-only;
//! * the host's `/etc/resolv.conf` bound read-only, keeping the flags of
//!   its mount that the kernel locks in a user namespace;
//! * no cgroup resources.
//!
//! Departures from umoci 0.4.7: mounts under `/sys` are dropped by path
//! (umoci drops any destination starting with the string `/sys`, so a
//! volume `/sysdata` too); the locked flags come in a fixed order and
//! include `relatime` when set (umoci tests them in Go map order and
//! against the wrong constant for `relatime`); a host without
//! `/etc/resolv.conf` gets no such mount (umoci 0.4.7 fails, later umoci
//! skips it); and an image whose user is not root is refused, since the
//! only id mapped is 0 (umoci writes a config the runtime then fails on).

use super::error::Error;
use super::spec::{IdMapping, Spec};
use super::template::{mount, namespace};

/// What the host contributes to a rootless config.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub uid: u32,
    pub gid: u32,
    /// The locked mount flags of `/etc/resolv.conf`, `None` if it is absent.
    pub resolv_conf_flags: Option<Vec<&'static str>>,
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// `statfs` flags (`ST_*`, not `MS_*`: they differ for `relatime`) that a
/// user namespace may not clear on a bind mount, with their mount options.
const LOCKED_FLAGS: &[(u64, &str)] = &[
    (1, "ro"),            // ST_RDONLY
    (4, "nodev"),         // ST_NODEV
    (8, "noexec"),        // ST_NOEXEC
    (2, "nosuid"),        // ST_NOSUID
    (1024, "noatime"),    // ST_NOATIME
    (4096, "relatime"),   // ST_RELATIME
    (2048, "nodiratime"), // ST_NODIRATIME
];

impl Host {
    /// The invoking user and this machine's `/etc/resolv.conf`.
    pub fn current() -> Result<Host, Error> {
        let resolv_conf_flags = match rustix::fs::statvfs(RESOLV_CONF) {
            Ok(stat) => Some(locked_flags(stat.f_flag.bits())),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(Error::HostResolvConf(e.into())),
        };
        Ok(Host {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            resolv_conf_flags,
        })
    }
}

fn locked_flags(bits: u64) -> Vec<&'static str> {
    LOCKED_FLAGS
        .iter()
        .filter(|(flag, _)| bits & flag == *flag)
        .map(|(_, option)| *option)
        .collect()
}

/// Makes `spec` rootless for `host`.
pub(crate) fn make_rootless(spec: &mut Spec, host: &Host) -> Result<(), Error> {
    let user = &mut spec.process.user;
    if user.uid != 0 || user.gid != 0 {
        return Err(Error::RootlessUser {
            uid: user.uid,
            gid: user.gid,
        });
    }
    user.additional_gids.clear();

    let linux = &mut spec.linux;
    linux.uid_mappings = vec![single_mapping(host.uid)];
    linux.gid_mappings = vec![single_mapping(host.gid)];
    linux
        .namespaces
        .retain(|ns| ns.kind != "network" && ns.kind != "user");
    linux.namespaces.push(namespace("user"));
    linux.resources = None;

    spec.mounts.retain(|m| !is_under_sys(&m.destination));
    for m in &mut spec.mounts {
        m.options
            .retain(|o| !o.starts_with("uid=") && !o.starts_with("gid="));
    }
    spec.mounts.push(mount(
        "/sys",
        "bind",
        "/sys",
        &["rbind", "nosuid", "noexec", "nodev", "ro"],
    ));
    if let Some(flags) = &host.resolv_conf_flags {
        let options: Vec<&str> = flags.iter().copied().chain(["rbind", "ro"]).collect();
        spec.mounts
            .push(mount(RESOLV_CONF, "bind", RESOLV_CONF, &options));
    }
    Ok(())
}

fn single_mapping(host_id: u32) -> IdMapping {
    IdMapping {
        container_id: 0,
        host_id,
        size: 1,
    }
}

fn is_under_sys(destination: &str) -> bool {
    let path = destination.trim_end_matches('/');
    path == "/sys" || path.starts_with("/sys/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::template::template;

    fn host(resolv_conf_flags: Option<Vec<&'static str>>) -> Host {
        Host {
            uid: 1234,
            gid: 5678,
            resolv_conf_flags,
        }
    }

    fn destinations(spec: &Spec) -> Vec<&str> {
        spec.mounts.iter().map(|m| m.destination.as_str()).collect()
    }

    #[test]
    fn the_template_becomes_umocis_rootless_config() {
        let mut spec = template("rootfs".to_owned());
        spec.process.user.additional_gids = vec![0, 1, 10];
        spec.mounts
            .push(mount("/sysdata", "tmpfs", "none", &["rw"]));
        spec.mounts
            .push(mount("/sys/kernel/x/", "tmpfs", "none", &["rw"]));
        make_rootless(&mut spec, &host(Some(vec!["nosuid", "relatime"]))).unwrap();

        assert!(spec.process.user.additional_gids.is_empty());
        let kinds: Vec<_> = spec
            .linux
            .namespaces
            .iter()
            .map(|n| n.kind.as_str())
            .collect();
        assert_eq!(kinds, ["pid", "ipc", "uts", "mount", "user"]);
        assert_eq!(spec.linux.uid_mappings, [single_mapping(1234)]);
        assert_eq!(spec.linux.gid_mappings, [single_mapping(5678)]);
        assert_eq!(spec.linux.resources, None);
        assert_eq!(
            destinations(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sysdata",
                "/sys",
                "/etc/resolv.conf"
            ]
        );
        let pts = &spec.mounts[2];
        assert_eq!(
            pts.options,
            [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ]
        );
        assert_eq!(
            spec.mounts[6],
            mount(
                "/sys",
                "bind",
                "/sys",
                &["rbind", "nosuid", "noexec", "nodev", "ro"]
            )
        );
        assert_eq!(
            spec.mounts[7],
            mount(
                "/etc/resolv.conf",
                "bind",
                "/etc/resolv.conf",
                &["nosuid", "relatime", "rbind", "ro"]
            )
        );
    }

    #[test]
    fn no_resolv_conf_on_the_host_is_no_mount_of_it() {
        let mut spec = template("rootfs".to_owned());
        make_rootless(&mut spec, &host(None)).unwrap();
        assert_eq!(destinations(&spec).last(), Some(&"/sys"));
    }

    #[test]
    fn a_user_other_than_root_cannot_be_mapped() {
        for (uid, gid) in [(1000, 0), (0, 5), (1000, 1000)] {
            let mut spec = template("rootfs".to_owned());
            spec.process.user.uid = uid;
            spec.process.user.gid = gid;
            let err = make_rootless(&mut spec, &host(None)).unwrap_err();
            assert!(matches!(err, Error::RootlessUser { uid: u, gid: g } if u == uid && g == gid));
        }
    }

    #[test]
    fn locked_flags_are_read_from_statfs_bits_in_a_fixed_order() {
        let cases: &[(u64, &[&str])] = &[
            (0, &[]),
            (1 | 2 | 4 | 8, &["ro", "nodev", "noexec", "nosuid"]),
            (4096, &["relatime"]),
            (1 << 21, &[]), // MS_RELATIME is not a statfs flag
            (1024 | 2048 | 32, &["noatime", "nodiratime"]),
        ];
        for (bits, expected) in cases {
            assert_eq!(locked_flags(*bits), *expected, "{bits:#x}");
        }
    }
}
