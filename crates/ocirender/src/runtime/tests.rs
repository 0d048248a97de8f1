//! The whole conversion, bytes in and bytes out.

use super::*;
use std::fs;

/// The image of research note 1.4, whose `umoci unpack` output (umoci
/// 0.4.7) `testdata/typical-config.json` is, with this module's documented
/// departures applied: no terminal and no `TERM`, the image's `HOME`
/// kept, hostname `container`, the label's `org.opencontainers.image.os`,
/// `<` and `>` unescaped.
const TYPICAL_IMAGE: &str = r#"{
  "created": "2024-03-05T06:07:08.123456789Z",
  "author": "Jane <j@x>",
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "User": "app",
    "Env": ["PATH=/usr/bin:/bin", "FOO=bar", "HOME=/custom"],
    "Entrypoint": ["/bin/ep", "-x"],
    "Cmd": ["arg1", "arg 2"],
    "WorkingDir": "/srv",
    "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "443": {}},
    "Volumes": {"/var/log": {}, "/data": {}},
    "StopSignal": "SIGTERM",
    "Labels": {"maintainer": "x", "org.opencontainers.image.os": "fromlabel"}
  },
  "rootfs": {"type": "layers", "diff_ids": []}
}"#;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      bin:x:1:1:bin:/bin:/sbin/nologin\n\
                      app:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:root\nbin:x:1:root,bin\nwheel:x:10:root,app\n\
                     app:x:1000:\naudio:x:29:app\n";

fn rootfs_with_users() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
    fs::write(dir.path().join("rootfs/etc/passwd"), PASSWD).unwrap();
    fs::write(dir.path().join("rootfs/etc/group"), GROUP).unwrap();
    dir
}

fn options(rootfs: PathBuf) -> Options {
    Options {
        rootfs,
        ..Options::default()
    }
}

#[test]
fn the_typical_image_gives_umocis_config_with_the_documented_departures() {
    let dir = rootfs_with_users();
    let got = runtime_config(
        TYPICAL_IMAGE.as_bytes(),
        &options(dir.path().join("rootfs")),
    )
    .unwrap();
    let expected = include_str!("testdata/typical-config.json");
    assert_eq!(String::from_utf8(got).unwrap(), expected);
}

#[test]
fn both_resolvers_give_the_same_bytes() {
    let dir = rootfs_with_users();
    let mut walked = options(dir.path().join("rootfs"));
    walked.force_walk = true;
    let by_openat2 = runtime_config(
        TYPICAL_IMAGE.as_bytes(),
        &options(dir.path().join("rootfs")),
    );
    assert_eq!(
        runtime_config(TYPICAL_IMAGE.as_bytes(), &walked).unwrap(),
        by_openat2.unwrap()
    );
}

#[test]
fn root_path_is_the_rootfs_directory_name() {
    let dir = rootfs_with_users();
    fs::rename(dir.path().join("rootfs"), dir.path().join("tree")).unwrap();
    let cases: Vec<(PathBuf, Result<&str, ()>)> = vec![
        (dir.path().join("tree"), Ok("tree")),
        (dir.path().join("tree/"), Ok("tree")),
        (dir.path().join("tree/etc/.."), Err(())),
        (dir.path().join("tree/."), Ok("tree")),
    ];
    for (rootfs, expected) in cases {
        let got = runtime_config(TYPICAL_IMAGE.as_bytes(), &options(rootfs.clone()));
        match expected {
            Ok(name) => {
                let spec: serde_json::Value = serde_json::from_slice(&got.unwrap()).unwrap();
                assert_eq!(spec["root"]["path"], name, "{}", rootfs.display());
            }
            Err(()) => assert!(
                matches!(got, Err(Error::RootfsName(_))),
                "{}: {got:?}",
                rootfs.display()
            ),
        }
    }
}

#[test]
fn an_unknown_user_names_itself_and_the_file() {
    let dir = rootfs_with_users();
    let image = TYPICAL_IMAGE.replace(r#""User": "app""#, r#""User": "nobody""#);
    let err = runtime_config(image.as_bytes(), &options(dir.path().join("rootfs"))).unwrap_err();
    assert_eq!(
        format!("{:#}", crate::error::Error::from(err)),
        "Config.User \"nobody\": no user \"nobody\" in /etc/passwd"
    );
}

#[test]
fn rootless_refuses_a_user_it_cannot_map_and_maps_root() {
    let dir = rootfs_with_users();
    let mut rootless = options(dir.path().join("rootfs"));
    rootless.rootless = true;
    let err = runtime_config(TYPICAL_IMAGE.as_bytes(), &rootless).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RootlessUser {
                uid: 1000,
                gid: 1000
            }
        ),
        "{err}"
    );

    let image = TYPICAL_IMAGE.replace(r#""User": "app""#, r#""User": "root""#);
    let json = runtime_config(image.as_bytes(), &rootless).unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let uid = rustix::process::geteuid().as_raw();
    assert_eq!(
        spec["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        spec["process"]["user"],
        serde_json::json!({"uid": 0, "gid": 0})
    );
}
