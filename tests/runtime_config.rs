//! `oci-runtime-config` against `umoci unpack`: the same images, built by
//! umoci with every form of `Config.User`, unpacked by umoci and by the
//! pipeline (`oci-layers | oci-merge | tar2dir` then `oci-runtime-config`),
//! their `config.json` compared field by field; then the bundles run under
//! runc and crun, as root and rootless.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::fixtures::{fixture, run, sample_layout};
use support::{bin, cmd, run_with_stdin, stderr, Scratch};

/// The images of the test layout: tag, `umoci config` arguments. Tags
/// starting with `bare` are built on a root filesystem without `/etc`.
const IMAGES: &[(&str, &[&str])] = &[
    ("default", &[]),
    (
        "typical",
        &[
            "--config.user=app",
            "--config.env=PATH=/usr/bin:/bin",
            "--config.env=FOO=bar",
            "--config.env=HOME=/custom",
            "--config.entrypoint=sh",
            "--config.entrypoint=-c",
            "--config.cmd=env; pwd; id",
            "--config.workingdir=/srv",
            "--config.exposedports=8080/tcp",
            "--config.exposedports=53/udp",
            "--config.exposedports=443",
            "--config.volume=/var/log",
            "--config.volume=/data",
            "--config.stopsignal=SIGTERM",
            "--config.label=maintainer=x",
            "--config.label=org.opencontainers.image.os=fromlabel",
            "--author=Jane <j@x>",
        ],
    ),
    (
        "root",
        &[
            "--config.user=root",
            "--config.entrypoint=sh",
            "--config.entrypoint=-c",
            "--config.cmd=env; pwd; id",
        ],
    ),
    ("uid", &["--config.user=1000"]),
    ("name-group", &["--config.user=app:staff"]),
    ("uid-gid", &["--config.user=1000:50"]),
    ("uid-group", &["--config.user=1000:audio"]),
    ("name-gid", &["--config.user=app:99"]),
    ("group-only", &["--config.user=:10"]),
    ("uid-without-entry", &["--config.user=123"]),
    ("unknown-user", &["--config.user=nobody"]),
    ("unknown-group", &["--config.user=app:nogroup"]),
    ("bare-ids", &["--config.user=1234:5678"]),
    ("bare-default", &[]),
    ("bare-name", &["--config.user=app"]),
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      bin:x:1:1:bin:/bin:/sbin/nologin\n\
                      app:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:root\nbin:x:1:root,bin\nwheel:x:10:root,app\n\
                     app:x:1000:\naudio:x:29:app\nstaff:x:50:\n";

/// busybox's applets the images use, as links to it.
const APPLETS: &[&str] = &["sh", "env", "id", "cat", "pwd"];

/// The layout of [`IMAGES`], built once (keyed by their description).
fn layout() -> PathBuf {
    let key = format!(
        "runtime-config-{:016x}",
        hash(&format!("{IMAGES:?}{PASSWD}{GROUP}{APPLETS:?}"))
    );
    fixture(&key, |out| {
        let image = |tag: &str| format!("{}:{tag}", out.display());
        run(Command::new("umoci").args(["init", "--layout"]).arg(out));
        for (base, with_etc) in [("base", true), ("bare", false)] {
            run(Command::new("umoci").args(["new", "--image", &image(base)]));
            let work = tempfile::tempdir().unwrap();
            let bundle = work.path().join("bundle");
            run(Command::new("umoci")
                .args(["unpack", "--image", &image(base)])
                .arg(&bundle));
            populate(&bundle.join("rootfs"), with_etc);
            run(Command::new("umoci")
                .args(["repack", "--image", &image(base)])
                .arg(&bundle));
        }
        for (tag, args) in IMAGES {
            let base = if tag.starts_with("bare") {
                "bare"
            } else {
                "base"
            };
            run(Command::new("umoci")
                .args(["config", "--image", &image(base), "--tag", tag])
                .args(*args));
        }
        run(Command::new("umoci").args(["gc", "--layout"]).arg(out));
    })
}

/// A busybox system: the static busybox of Debian's busybox-static, its
/// applets, and (`with_etc`) the users of [`PASSWD`] and [`GROUP`].
fn populate(rootfs: &Path, with_etc: bool) {
    let busybox = Path::new("/bin/busybox");
    let described = Command::new("file")
        .arg("-L")
        .arg(busybox)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&described.stdout).contains("statically linked"),
        "/bin/busybox must be static: scripts/install-deps installs busybox-static"
    );
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    for dir in ["srv", "home/app", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    if with_etc {
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(rootfs.join("etc/group"), GROUP).unwrap();
    }
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The image config blob of `tag`: index.json, its manifest, its config.
fn config_blob(layout: &Path, tag: &str) -> PathBuf {
    let blob = |digest: &Value| {
        let digest = digest.as_str().unwrap();
        let (algorithm, hex) = digest.split_once(':').unwrap();
        layout.join("blobs").join(algorithm).join(hex)
    };
    let index = read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()));
    let manifest = read_json(&blob(&entry["digest"]));
    blob(&manifest["config"]["digest"])
}

/// `umoci unpack --image LAYOUT:TAG DEST`: its config.json, or its error.
fn umoci_unpack(layout: &Path, tag: &str, dest: &Path, flags: &[&str]) -> Result<Value, String> {
    let out = Command::new("umoci")
        .arg("unpack")
        .args(flags)
        .args(["--image", &format!("{}:{tag}", layout.display())])
        .arg(dest)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(read_json(&dest.join("config.json"))),
        false => Err(stderr(&out)),
    }
}

/// The pipeline's rootfs at `bundle/rootfs`.
fn our_rootfs(layout: &Path, tag: &str, bundle: &Path) {
    std::fs::create_dir_all(bundle).unwrap();
    let script = format!(
        "oci-layers --tag {tag} '{}' | oci-merge | tar2dir '{}/rootfs'",
        layout.display(),
        bundle.display()
    );
    let out = support::sh(bundle, &script);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
}

/// `oci-runtime-config ARGS` run in `dir`.
fn runtime_config(dir: &Path, args: &[&str]) -> Output {
    cmd("oci-runtime-config")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The pipeline's bundle of `tag` in `bundle`, as a user makes it:
/// `oci-runtime-config --rootfs bundle/rootfs CONFIG > bundle/config.json`.
fn our_bundle(layout: &Path, tag: &str, bundle: &Path, flags: &[&str]) -> Value {
    our_rootfs(layout, tag, bundle);
    let config = config_blob(layout, tag);
    let rootfs = bundle.join("rootfs");
    let mut args = vec!["--rootfs", rootfs.to_str().unwrap()];
    args.extend(flags);
    args.push(config.to_str().unwrap());
    let out = runtime_config(bundle, &args);
    assert!(out.status.success(), "{tag}: {}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{tag}: quiet: {}", stderr(&out));
    std::fs::write(bundle.join("config.json"), &out.stdout).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.ends_with("}\n") && text.starts_with("{\n\t\"ociVersion\""),
        "{text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// Both bundles of `tag`, and the image config they come from.
struct Compared {
    ours: Value,
    umoci: Value,
    image: Value,
}

fn compare(layout: &Path, tag: &str, scratch: &Scratch, flags: &[&str]) -> Compared {
    let umoci = umoci_unpack(layout, tag, &scratch.path("umoci"), &[])
        .unwrap_or_else(|e| panic!("umoci unpack {tag}: {e}"));
    let ours = our_bundle(layout, tag, &scratch.path("ours"), flags);
    let image = read_json(&config_blob(layout, tag));
    Compared { ours, umoci, image }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The environment umoci would have written but for its departures from
/// conversion.md: no TERM without a terminal, and the image's own HOME.
fn expected_env(umoci: &Value, image: &Value, terminal: bool) -> Vec<String> {
    let image_env = strings(&image["config"]["Env"]);
    let image_home = image_env.iter().find(|e| e.starts_with("HOME="));
    strings(&umoci["process"]["env"])
        .into_iter()
        .filter(|e| terminal || e != "TERM=xterm")
        .map(|e| match image_home {
            Some(home) if e.starts_with("HOME=") => home.clone(),
            _ => e,
        })
        .collect()
}

/// umoci's annotations but for its departures: no empty ones, and the
/// labels over the derived ones.
fn expected_annotations(umoci: &Value, image: &Value) -> BTreeMap<String, String> {
    let mut expected: BTreeMap<String, String> = umoci["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if let Some(labels) = image["config"]["Labels"].as_object() {
        for (key, value) in labels {
            expected.insert(key.clone(), value.as_str().unwrap().to_owned());
        }
    }
    expected
}

/// Every field of our config.json against umoci's: equal, or the value
/// conversion.md asks for where umoci departs from it, or the documented
/// difference (terminal, hostname).
fn assert_like_umoci(tag: &str, c: &Compared, terminal: bool) {
    let (ours, umoci) = (&c.ours, &c.umoci);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(ours), keys(umoci), "{tag}: top-level fields");
    assert_eq!(
        keys(&ours["process"]),
        keys(&umoci["process"]),
        "{tag}: process fields"
    );
    for field in ["ociVersion", "root", "linux"] {
        assert_eq!(ours[field], umoci[field], "{tag}: {field}");
    }
    for field in [
        "user",
        "args",
        "cwd",
        "capabilities",
        "rlimits",
        "noNewPrivileges",
    ] {
        assert_eq!(
            ours["process"][field], umoci["process"][field],
            "{tag}: process.{field}"
        );
    }
    assert_eq!(
        strings(&ours["process"]["env"]),
        expected_env(umoci, &c.image, terminal),
        "{tag}: process.env"
    );
    assert_eq!(
        ours["process"]["terminal"], terminal,
        "{tag}: no terminal unless asked"
    );
    assert_eq!(umoci["process"]["terminal"], true);
    assert_eq!(ours["hostname"], "container");

    let template = 7;
    let (our_mounts, umoci_mounts) = (
        ours["mounts"].as_array().unwrap(),
        umoci["mounts"].as_array().unwrap(),
    );
    assert_eq!(
        our_mounts[..template],
        umoci_mounts[..template],
        "{tag}: the template's mounts"
    );
    let mut volumes = umoci_mounts[template..].to_vec();
    volumes.sort_by_key(|m| m["destination"].as_str().unwrap().to_owned());
    assert_eq!(
        our_mounts[template..],
        volumes[..],
        "{tag}: the volumes, sorted"
    );

    let annotations: BTreeMap<String, String> =
        serde_json::from_value(ours["annotations"].clone()).unwrap();
    assert_eq!(
        annotations,
        expected_annotations(umoci, &c.image),
        "{tag}: annotations"
    );
}

#[test]
fn every_user_form_resolves_as_umoci_resolves_it() {
    let layout = layout();
    // tag: uid, gid, additionalGids, HOME (as umoci 0.4.7 resolves them)
    type Resolved<'a> = (u32, u32, &'a [u32], Option<&'a str>);
    let cases: &[(&str, Resolved)] = &[
        ("default", (0, 0, &[0, 1, 10], Some("/root"))),
        ("root", (0, 0, &[0, 1, 10], Some("/root"))),
        ("uid", (1000, 1000, &[10, 29], Some("/home/app"))),
        ("name-group", (1000, 50, &[], Some("/home/app"))),
        ("uid-gid", (1000, 50, &[], Some("/home/app"))),
        ("uid-group", (1000, 29, &[], Some("/home/app"))),
        ("name-gid", (1000, 99, &[], Some("/home/app"))),
        ("group-only", (0, 10, &[], Some("/root"))),
        ("uid-without-entry", (123, 0, &[], None)),
        ("bare-ids", (1234, 5678, &[], None)),
        ("bare-default", (0, 0, &[], None)),
    ];
    for (tag, (uid, gid, additional_gids, home)) in cases {
        let scratch = Scratch::new();
        let compared = compare(&layout, tag, &scratch, &[]);
        assert_like_umoci(tag, &compared, false);
        let user = &compared.ours["process"]["user"];
        assert_eq!(
            (user["uid"].as_u64(), user["gid"].as_u64()),
            (Some(*uid as u64), Some(*gid as u64)),
            "{tag}"
        );
        let gids: Vec<u32> =
            serde_json::from_value(user["additionalGids"].clone()).unwrap_or_default();
        assert_eq!(gids, *additional_gids, "{tag}");
        let env = strings(&compared.ours["process"]["env"]);
        let our_home = env.iter().find_map(|e| e.strip_prefix("HOME="));
        assert_eq!(our_home, *home, "{tag}");
    }
}

#[test]
fn users_and_groups_the_rootfs_lacks_fail_as_in_umoci_naming_the_config() {
    let layout = layout();
    let cases = [
        (
            "unknown-user",
            "Config.User \"nobody\": no user \"nobody\" in /etc/passwd",
        ),
        (
            "unknown-group",
            "Config.User \"app:nogroup\": no group \"nogroup\" in /etc/group",
        ),
        (
            "bare-name",
            "Config.User \"app\": no user \"app\" in /etc/passwd (the rootfs has no such file)",
        ),
    ];
    for (tag, problem) in cases {
        let scratch = Scratch::new();
        let umoci = umoci_unpack(&layout, tag, &scratch.path("umoci"), &[]);
        assert!(
            umoci
                .as_ref()
                .is_err_and(|e| e.contains("cannot parse user spec")),
            "{tag}: {umoci:?}"
        );
        our_rootfs(&layout, tag, &scratch.path("ours"));
        let config = config_blob(&layout, tag);
        let out = runtime_config(
            scratch.0.path(),
            &["--rootfs", "ours/rootfs", config.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{tag}");
        assert!(out.stdout.is_empty(), "{tag}: nothing on stdout");
        assert_eq!(
            stderr(&out),
            format!(
                "oci-runtime-config: error: {}: {problem}\n",
                config.display()
            ),
            "{tag}"
        );
    }
}

#[test]
fn the_typical_image_is_umocis_config_with_conversion_md_where_umoci_departs() {
    let layout = layout();
    let scratch = Scratch::new();
    let compared = compare(&layout, "typical", &scratch, &[]);
    assert_like_umoci("typical", &compared, false);
    let (ours, umoci) = (&compared.ours, &compared.umoci);
    // The departures, as values: the label wins, the image's HOME stays,
    // no TERM without a terminal, no empty annotation, volumes sorted.
    assert_eq!(umoci["annotations"]["org.opencontainers.image.os"], "linux");
    assert_eq!(
        ours["annotations"]["org.opencontainers.image.os"],
        "fromlabel"
    );
    assert!(strings(&umoci["process"]["env"]).contains(&"HOME=/home/app".to_owned()));
    assert_eq!(
        strings(&ours["process"]["env"]),
        ["PATH=/usr/bin:/bin", "FOO=bar", "HOME=/custom"]
    );
    assert_eq!(ours["process"]["args"], json!(["sh", "-c", "env; pwd; id"]));
    assert_eq!(ours["process"]["cwd"], "/srv");
    assert_eq!(
        ours["annotations"]["org.opencontainers.image.exposedPorts"],
        "443,53/udp,8080/tcp"
    );
    assert_eq!(
        ours["annotations"]["org.opencontainers.image.author"],
        "Jane <j@x>"
    );
    let destinations: Vec<&str> = ours["mounts"].as_array().unwrap()[7..]
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(destinations, ["/data", "/var/log"]);

    // --terminal: umoci's terminal and TERM.
    let scratch = Scratch::new();
    let compared = compare(&layout, "typical", &scratch, &["--terminal"]);
    assert_like_umoci("typical --terminal", &compared, true);
    assert_eq!(
        strings(&compared.ours["process"]["env"]),
        [
            "PATH=/usr/bin:/bin",
            "TERM=xterm",
            "FOO=bar",
            "HOME=/custom"
        ]
    );
}

#[test]
fn the_sample_image_is_umocis_config_but_for_the_documented_departures() {
    let layout = sample_layout();
    let scratch = Scratch::new();
    let compared = compare(&layout, "sample", &scratch, &[]);
    assert_like_umoci("sample", &compared, false);
    // umoci writes the empty annotations conversion.md has no value for.
    let umoci_empty: Vec<&String> = compared.umoci["annotations"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| *v == "")
        .map(|(k, _)| k)
        .collect();
    assert!(!umoci_empty.is_empty());
    for key in umoci_empty {
        assert!(compared.ours["annotations"].get(key).is_none(), "{key}");
    }
}

#[test]
fn a_passwd_symlink_resolves_inside_the_rootfs_never_on_the_host() {
    let scratch = Scratch::new();
    let host_passwd = scratch.path("host-passwd");
    std::fs::write(&host_passwd, "evil:x:4242:4242::/evilhome:/bin/sh\n").unwrap();
    let rootfs = scratch.path("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink(&host_passwd, rootfs.join("etc/passwd")).unwrap();
    let image = r#"{"architecture": "amd64", "os": "linux", "config": {"User": "evil"}}"#;
    std::fs::write(scratch.path("image.json"), image).unwrap();
    for flags in [&[][..], &["--no-openat2"]] {
        let mut args = vec!["--rootfs", "bundle/rootfs", "image.json"];
        args.extend(flags);
        let out = runtime_config(scratch.0.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let expected = match flags.is_empty() {
            true => "no user \"evil\" in /etc/passwd (the rootfs has no such file)",
            false => "cannot read /etc/passwd of the rootfs: it is reached through a symlink",
        };
        assert!(
            stderr(&out).contains(expected),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    // The same link to a file inside the rootfs is followed there.
    std::fs::write(
        rootfs.join("usr/lib/passwd"),
        "evil:x:7:8::/inside:/bin/sh\n",
    )
    .unwrap();
    std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/passwd", rootfs.join("etc/passwd")).unwrap();
    let out = runtime_config(
        scratch.0.path(),
        &["--rootfs", "bundle/rootfs", "image.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["process"]["user"], json!({"uid": 7, "gid": 8}));
    assert!(strings(&spec["process"]["env"]).contains(&"HOME=/inside".to_owned()));
}

#[test]
fn bad_input_is_one_line_naming_the_input_and_nothing_on_stdout() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("rootfs")).unwrap();
    let layout = sample_layout();
    let index = layout.join("index.json");
    let files: &[(&str, &[u8])] = &[
        ("garbage.json", b"\x00not json"),
        (
            "windows.json",
            br#"{"architecture": "amd64", "os": "windows"}"#,
        ),
        (
            "noeq.json",
            br#"{"architecture": "amd64", "os": "linux", "config": {"Env": ["NOEQ"]}}"#,
        ),
        (
            "relative.json",
            br#"{"architecture": "amd64", "os": "linux", "config": {"WorkingDir": "srv"}}"#,
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(scratch.path(name), bytes).unwrap();
    }
    let index_arg = index.to_str().unwrap();
    let cases: &[(&[&str], String)] = &[
        (
            &["garbage.json"],
            "garbage.json: not JSON: expected value at line 1 column 1".into(),
        ),
        (
            &[index_arg],
            format!(
                "{index_arg}: not an image config: missing field `architecture` at line 1 column"
            ),
        ),
        (
            &["windows.json"],
            "windows.json: the image is for os \"windows\": a runtime bundle needs a linux image"
                .into(),
        ),
        (
            &["noeq.json"],
            "noeq.json: Config.Env entry \"NOEQ\" is not NAME=VALUE with a non-empty NAME".into(),
        ),
        (
            &["relative.json"],
            "relative.json: Config.WorkingDir \"srv\" is not an absolute path".into(),
        ),
        (
            &["missing.json"],
            "missing.json: No such file or directory".into(),
        ),
        (
            &["--rootfs", "nowhere", "windows.json"],
            "windows.json: the image is for os \"windows\"".into(),
        ),
        (
            &["--rootfs", "nowhere", "noeq.json"],
            "noeq.json: cannot open the rootfs nowhere: No such file or directory".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = runtime_config(scratch.0.path(), args);
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {message}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            message.starts_with(&format!("oci-runtime-config: error: {expected}")),
            "{args:?}: {message}"
        );
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
    }
    // stdin is named as such; `-` is stdin too.
    for args in [&[][..], &["-"]] {
        let mut command = cmd("oci-runtime-config");
        command.args(args).current_dir(scratch.0.path());
        let out = run_with_stdin(command, b"[]");
        assert_eq!(
            stderr(&out),
            "oci-runtime-config: error: stdin: not an image config: the JSON is not an object\n"
        );
    }
}

#[test]
fn the_default_rootfs_is_rootfs_in_the_current_directory() {
    let layout = layout();
    let scratch = Scratch::new();
    our_rootfs(&layout, "uid", &scratch.path("bundle"));
    let config = config_blob(&layout, "uid");
    let mut command = cmd("oci-runtime-config");
    command.current_dir(scratch.path("bundle"));
    let out = run_with_stdin(command, &std::fs::read(&config).unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["user"]["uid"], 1000, "resolved in ./rootfs");
}

/// `runtime run --bundle BUNDLE NAME`, with the runtime's state kept in
/// `state`, as `user` ("" for root).
fn run_container(runtime: &str, bundle: &Path, state: &Path, as_user: &[&str]) -> Output {
    let name = format!("ocirender-test-{}", std::process::id());
    let mut script = format!(
        "exec {} {runtime} --root '{}' run --bundle '{}' {name}",
        as_user.join(" "),
        state.display(),
        bundle.display()
    );
    if runtime == "crun" {
        // crun 1.8 refuses a host whose cgroup v2 hierarchy has controllers
        // beside v1 ones ("cgroups in hybrid mode not supported"), as this
        // test machine's is: in a mount namespace of its own, it sees v1
        // only. runc runs there as it is.
        script = format!(
            "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; {script}"
        );
        return Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
    }
    Command::new("sh").args(["-c", &script]).output().unwrap()
}

fn require_root(what: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{what} needs root: run the tests as root (scripts/test does)"
    );
}

#[test]
fn the_bundle_runs_under_runc_and_crun_with_the_images_environment_directory_and_user() {
    require_root("running containers");
    let layout = layout();
    for runtime in ["runc", "crun"] {
        let scratch = Scratch::new();
        let bundle = scratch.path("bundle");
        our_bundle(&layout, "typical", &bundle, &[]);
        let out = run_container(runtime, &bundle, &scratch.path("state"), &[]);
        assert!(out.status.success(), "{runtime}: {}", stderr(&out));
        let printed = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        for expected in ["PATH=/usr/bin:/bin", "FOO=bar", "HOME=/custom"] {
            assert!(
                lines.contains(&expected),
                "{runtime}: {expected} in\n{printed}"
            );
        }
        assert!(
            !printed.contains("TERM="),
            "{runtime}: no TERM without a terminal:\n{printed}"
        );
        let tail: Vec<&str> = lines.iter().rev().take(2).rev().copied().collect();
        assert_eq!(
            tail,
            [
                "/srv",
                "uid=1000(app) gid=1000(app) groups=10(wheel),29(audio)"
            ],
            "{runtime}: pwd, then id:\n{printed}"
        );
    }
}

#[test]
fn a_rootless_bundle_is_umocis_rootless_config_and_runs_as_nobody() {
    require_root("switching to nobody");
    let layout = layout();
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.0.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // umoci's, as root: its maps are 0:0:1.
    let umoci = umoci_unpack(&layout, "root", &scratch.path("umoci"), &["--rootless"]).unwrap();
    let ours = our_bundle(&layout, "root", &scratch.path("ours"), &["--rootless"]);
    for field in ["ociVersion", "root"] {
        assert_eq!(ours[field], umoci[field], "{field}");
    }
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(ours["annotations"].clone()).unwrap();
    let image = read_json(&config_blob(&layout, "root"));
    assert_eq!(annotations, expected_annotations(&umoci, &image));
    let mut our_process = ours["process"].clone();
    let mut umoci_process = umoci["process"].clone();
    for process in [&mut our_process, &mut umoci_process] {
        process.as_object_mut().unwrap().remove("terminal");
        process.as_object_mut().unwrap().remove("env");
    }
    assert_eq!(our_process, umoci_process);
    assert_eq!(ours["linux"], umoci["linux"]);
    assert!(ours["linux"]["uidMappings"].is_array());
    // Mounts: the same, but resolv.conf's locked flags, of which umoci
    // misses relatime (it tests MS_RELATIME against statfs's ST_ flags).
    let (ours_mounts, umoci_mounts) = (
        ours["mounts"].as_array().unwrap(),
        umoci["mounts"].as_array().unwrap(),
    );
    assert_eq!(ours_mounts.len(), umoci_mounts.len());
    let last = ours_mounts.len() - 1;
    assert_eq!(ours_mounts[..last], umoci_mounts[..last]);
    assert_eq!(ours_mounts[last]["destination"], "/etc/resolv.conf");
    let mut our_flags = strings(&ours_mounts[last]["options"]);
    our_flags.retain(|f| f != "relatime");
    let mut umoci_flags = strings(&umoci_mounts[last]["options"]);
    our_flags.sort();
    umoci_flags.sort();
    assert_eq!(our_flags, umoci_flags);

    // Made and run by nobody: the only id mapped is nobody's, as root.
    // Its rootfs is nobody's, as a user's own unpack makes it (tar2dir
    // skips the image's ownership, with a warning): the layout, root's,
    // is read by root.
    let as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let bundle = scratch.path("nobody");
    std::fs::create_dir(&bundle).unwrap();
    std::os::unix::fs::chown(&bundle, Some(65534), Some(65534)).unwrap();
    let script = format!(
        "oci-layers --tag root '{}' | oci-merge | {} tar2dir rootfs",
        layout.display(),
        as_nobody.join(" ")
    );
    let out = support::sh(&bundle, &script);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    // The layout is root's: the config reaches nobody on stdin.
    let config = std::fs::read(config_blob(&layout, "root")).unwrap();
    let mut command = Command::new(as_nobody[0]);
    command
        .args(&as_nobody[1..])
        .arg(bin("oci-runtime-config"))
        .args(["--rootless", "--rootfs"])
        .arg(bundle.join("rootfs"));
    let out = run_with_stdin(command, &config);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 65534, "size": 1}])
    );
    std::fs::write(bundle.join("config.json"), &out.stdout).unwrap();
    let state = scratch.path("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    for runtime in ["runc", "crun"] {
        let out = run_container(runtime, &bundle, &state.join(runtime), &as_nobody);
        assert!(out.status.success(), "{runtime}: {}", stderr(&out));
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(
            printed.lines().any(|l| l == "HOME=/root"),
            "{runtime}:\n{printed}"
        );
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with("uid=0(root) gid=0(root)")),
            "{runtime}:\n{printed}"
        );
    }

    // An image that runs as a user the single mapping lacks is refused.
    let out = runtime_config(
        scratch.0.path(),
        &[
            "--rootless",
            "--rootfs",
            "ours/rootfs",
            config_blob(&layout, "uid").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(
            "the image runs as 1000:1000, but --rootless maps only your own uid and gid, to 0:0\n"
        ),
        "{}",
        stderr(&out)
    );
}
