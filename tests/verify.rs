//! End-to-end tests of `oci-verify`: the sample image merged
//! (`oci-layers | oci-merge`, plus a layer with a hard link), built by
//! each sink, then checked against the merged tar. A fresh output has no
//! difference; every kind of difference planted in a `tar2dir` tree, or
//! built into an image from a tar of such a tree, is reported with its
//! exact line. Runs as root (owners, a device node, image extraction).

mod support;

use sha2::Digest as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::tree_rules;
use support::{cmd, fixtures, sh, stderr, Scratch};
use tar::EntryType;
use testkit::{Layer, Raw};

/// The sample image merged, with a last layer that adds a hard link
/// (the sample's own are gone by its last layer).
fn merged_tar(scratch: &Scratch) -> PathBuf {
    let linked = Layer::new()
        .file("srv/linked", b"shared data\n")
        .hardlink("srv/linked-too", "srv/linked");
    let layer = scratch.write("linked.tar", &linked.tar());
    let merged = scratch.path("merged.tar");
    let out = sh(
        scratch.0.path(),
        &format!(
            "{{ oci-layers --tag sample '{}'; echo '{layer}'; }} | oci-merge > '{}'",
            fixtures::sample_layout().display(),
            merged.display()
        ),
    );
    assert!(out.status.success(), "merge: {}", stderr(&out));
    merged
}

/// Runs `program OUTPUT < tar`.
fn build(program: &str, tar: &Path, output: &Path) {
    let out = cmd(program)
        .arg(output)
        .stdin(std::fs::File::open(tar).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{program}: {}", stderr(&out));
}

/// `oci-verify ARGS OUTPUT < tar`.
fn verify(output: &Path, tar: &Path, args: &[&str]) -> Output {
    cmd("oci-verify")
        .args(args)
        .arg(output)
        .stdin(std::fs::File::open(tar).unwrap())
        .output()
        .unwrap()
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

const SINKS: [(&str, &str); 3] = [
    ("tar2dir", "rootfs"),
    ("tar2sqfs", "rootfs.sqfs"),
    ("tar2erofs", "rootfs.erofs"),
];

#[test]
fn a_fresh_output_of_each_sink_has_no_difference() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    for (program, name) in SINKS {
        let output = scratch.path(name);
        build(program, &tar, &output);
        let out = verify(&output, &tar, &[]);
        assert_eq!(out.status.code(), Some(0), "{program}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{program}: {:?}", stdout_lines(&out));
        assert!(out.stderr.is_empty(), "{program}: {}", stderr(&out));
        let out = verify(&output, &tar, &["--stats"]);
        let summary = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{program}: {summary}");
        assert_eq!(summary.lines().count(), 1, "{program}: {summary}");
        assert!(summary.starts_with("oci-verify: "), "{summary}");
        assert!(summary.contains(" 0 differences"), "{summary}");
        assert!(summary.trim_end().len() <= 80, "{summary}");
    }
}

/// A path's modification time, as `touch -d @…` takes it and a
/// difference line shows it.
fn mtime_of(path: &Path) -> String {
    let meta = std::fs::symlink_metadata(path).unwrap();
    match meta.mtime_nsec() {
        0 => meta.mtime().to_string(),
        ns => format!("{}.{ns:09}", meta.mtime()),
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", stderr(&out));
}

fn touch(path: &Path, time: &str) {
    run(Command::new("touch")
        .args(["-h", "-d"])
        .arg(format!("@{time}"))
        .arg(path));
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Plants one difference of each kind in the tree at `root` (a `tar2dir`
/// output), leaving every other time as it was; returns the lines
/// `oci-verify` must print, in its order (the stream's, then directories').
fn plant_every_difference(root: &Path) -> Vec<String> {
    let at = |path: &str| root.join(path);
    let parents = ["etc", "srv", "var/lib/app", "usr/bin"];
    let parent_times: Vec<String> = parents.iter().map(|p| mtime_of(&at(p))).collect();

    // content: same size, other bytes.
    let passwd = std::fs::read(at("etc/passwd")).unwrap();
    let mut edited = passwd.clone();
    edited[0] = b'R';
    let passwd_time = mtime_of(&at("etc/passwd"));
    std::fs::write(at("etc/passwd"), &edited).unwrap();
    touch(&at("etc/passwd"), &passwd_time);
    // size
    let group = std::fs::read(at("etc/group")).unwrap();
    let group_time = mtime_of(&at("etc/group"));
    std::fs::write(at("etc/group"), [&group[..], b"x:x:5:\n"].concat()).unwrap();
    touch(&at("etc/group"), &group_time);
    // mode, owner, mtime, xattr
    run(Command::new("chmod").arg("0700").arg(at("usr/bin/env")));
    run(Command::new("chown")
        .arg("1:2")
        .arg(at("var/lib/app/version")));
    let conf_time = mtime_of(&at("etc/app.conf"));
    touch(&at("etc/app.conf"), "1000000000");
    run(Command::new("setfattr")
        .args(["-x", "user.origin"])
        .arg(at("etc/os-release")));
    // link-target
    let lib64_time = mtime_of(&at("lib64"));
    run(Command::new("ln")
        .args(["-sfn", "usr/lib"])
        .arg(at("lib64")));
    touch(&at("lib64"), &lib64_time);
    // hardlink: a copy where a link was
    run(Command::new("cp")
        .args(["-a", "--remove-destination"])
        .arg(at("srv/linked"))
        .arg(at("srv/linked-too")));
    // extra, missing, type
    std::fs::write(at("etc/planted"), b"x").unwrap();
    std::fs::remove_file(at("srv/data")).unwrap();
    let fifo_time = mtime_of(&at("var/lib/app/fifo"));
    std::fs::remove_file(at("var/lib/app/fifo")).unwrap();
    std::fs::write(at("var/lib/app/fifo"), b"").unwrap();
    touch(&at("var/lib/app/fifo"), &fifo_time);

    for (parent, time) in parents.iter().zip(&parent_times) {
        touch(&at(parent), time);
    }
    let mut lines = vec![
        format!("etc/app.conf: mtime: expected {conf_time}, found 1000000000"),
        "var/lib/app/version: owner: expected 0:0, found 1:2".to_owned(),
        format!(
            "etc/group: size: expected {} bytes, found {} bytes",
            group.len(),
            group.len() + 7
        ),
        "etc/os-release: xattr: expected user.origin=\"ocirender sample\", found no user.origin"
            .to_owned(),
        format!(
            "etc/passwd: content: expected {}, found {}",
            sha256(&passwd),
            sha256(&edited)
        ),
        "lib64: link-target: expected \"usr/lib64\", found \"usr/lib\"".to_owned(),
        "srv/data: missing: expected a file, found nothing".to_owned(),
        "usr/bin/env: mode: expected 0755, found 0700".to_owned(),
        "var/lib/app/fifo: type: expected a FIFO, found a file".to_owned(),
        "srv/linked-too: hardlink: expected a hard link to srv/linked, found a file of its own"
            .to_owned(),
        "etc/planted: extra: expected nothing, found a file".to_owned(),
    ];
    lines.sort();
    lines
}

/// The lines, sorted: the order follows the stream's, which the test does
/// not restate.
fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn every_difference_planted_in_a_directory_is_reported() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let rootfs = scratch.path("rootfs");
    build("tar2dir", &tar, &rootfs);
    let expected = plant_every_difference(&rootfs);
    let out = verify(&rootfs, &tar, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(sorted(stdout_lines(&out)), expected);
}

#[test]
fn every_difference_built_into_an_image_is_reported() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let planted = scratch.path("planted");
    build("tar2dir", &tar, &planted);
    let expected = plant_every_difference(&planted);
    let planted_tar = scratch.path("planted.tar");
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--format=pax",
        ])
        .arg("-C")
        .arg(&planted)
        .arg("-cf")
        .arg(&planted_tar)
        .arg("."));
    for (program, name) in &SINKS[1..] {
        let image = scratch.path(name);
        build(program, &planted_tar, &image);
        let out = verify(&image, &tar, &[]);
        assert_eq!(out.status.code(), Some(1), "{program}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{program}: {}", stderr(&out));
        assert_eq!(sorted(stdout_lines(&out)), expected, "{program}");
    }
}

#[test]
fn json_lines_carry_the_same_differences() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let rootfs = scratch.path("rootfs");
    build("tar2dir", &tar, &rootfs);
    plant_every_difference(&rootfs);
    let text = stdout_lines(&verify(&rootfs, &tar, &[]));
    let out = verify(&rootfs, &tar, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json = stdout_lines(&out);
    assert_eq!(json.len(), text.len());
    for (json, text) in json.iter().zip(&text) {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let field = |name: &str| value[name].as_str().unwrap().to_owned();
        let line = format!(
            "{}: {}: expected {}, found {}",
            field("path"),
            field("kind"),
            field("expected"),
            field("found")
        );
        assert_eq!(&line, text);
    }
}

#[test]
fn progress_as_json_ends_with_a_done_event() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let rootfs = scratch.path("rootfs");
    build("tar2dir", &tar, &rootfs);
    let planted = plant_every_difference(&rootfs).len();
    let out = verify(&rootfs, &tar, &["--progress", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let done = events.last().expect("a done event");
    assert_eq!(done["event"], "done", "{events:?}");
    assert_eq!(done["output_kind"], "directory");
    assert_eq!(done["differences"], planted as u64);
    let listed = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let entries = String::from_utf8(listed.stdout).unwrap().lines().count();
    assert_eq!(done["entries"], entries as u64);
    let bad = verify(&rootfs, &tar, &["--progress", "sometimes"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("'--progress <WHEN>'"),
        "{}",
        stderr(&bad)
    );
    assert!(bad.stdout.is_empty());
}

#[test]
fn a_malformed_stream_is_a_one_line_error() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let rootfs = scratch.path("rootfs");
    build("tar2dir", &tar, &rootfs);
    let whole = std::fs::read(&tar).unwrap();
    let mut garbage = vec![0x55u8; 4096];
    garbage[..5].copy_from_slice(b"hello");
    let cases: [(&str, &[u8]); 3] = [
        ("truncated", &whole[..whole.len() / 2]),
        ("without its end marker", &whole[..whole.len() - 1024]),
        ("not a tar", &garbage),
    ];
    for (what, input) in cases {
        let mut child = cmd("oci-verify")
            .arg(&rootfs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {message}");
        assert_eq!(message.lines().count(), 1, "{what}: {message}");
        assert!(
            message.starts_with("oci-verify: error: "),
            "{what}: {message}"
        );
    }
    let out = verify(&scratch.path("absent"), &tar, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("absent: cannot inspect"),
        "{}",
        stderr(&out)
    );
}

/// A file and a directory with sub-second times and a host-specific
/// label (which every sink drops), under a parent the stream only
/// implies.
fn fine_times_and_labels() -> Layer {
    let entry = |kind, time: &'static [u8]| Raw {
        kind,
        data: b"data",
        pax: vec![
            ("mtime", time),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:etc_t:s0",
            ),
        ],
        ..Raw::default()
    };
    Layer::new()
        .raw(b"implied/d", entry(EntryType::Directory, b"1600000000.75"))
        .raw(b"implied/d/f", entry(EntryType::Regular, b"1600000000.25"))
}

#[test]
fn what_the_sinks_normalise_is_no_difference() {
    let streams = [
        ("fine times and labels", fine_times_and_labels()),
        ("a directory listed twice", tree_rules::repeated_directory()),
        ("overlay attributes", tree_rules::overlay_attributes()),
        (
            "user.* on special files",
            tree_rules::user_attributes_on_special_files(),
        ),
        ("a symlink with a mode", tree_rules::symlink_with_a_mode()),
    ];
    for (what, layer) in streams {
        let scratch = Scratch::new();
        let tar = scratch.path("stream.tar");
        std::fs::write(&tar, layer.tar()).unwrap();
        for (program, name) in SINKS {
            let output = scratch.path(name);
            build(program, &tar, &output);
            let out = verify(&output, &tar, &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}, {program}: {}",
                stderr(&out)
            );
            assert!(
                out.stdout.is_empty(),
                "{what}, {program}: {:?}",
                stdout_lines(&out)
            );
        }
    }
}

#[test]
fn a_directory_keeps_nanoseconds_so_they_are_compared() {
    let scratch = Scratch::new();
    let tar = scratch.path("stream.tar");
    std::fs::write(&tar, fine_times_and_labels().tar()).unwrap();
    let rootfs = scratch.path("rootfs");
    build("tar2dir", &tar, &rootfs);
    touch(&rootfs.join("implied/d/f"), "1600000000");
    touch(&rootfs.join("implied/d"), "1600000000.75");
    let out = verify(&rootfs, &tar, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout_lines(&out),
        ["implied/d/f: mtime: expected 1600000000.250000000, found 1600000000"]
    );
}

#[test]
fn a_damaged_image_is_a_one_line_error_and_leaves_no_temporary() {
    let scratch = Scratch::new();
    let tar = merged_tar(&scratch);
    let temporaries = scratch.path("tmp");
    std::fs::create_dir(&temporaries).unwrap();
    let mut erofs = vec![0u8; 8192];
    erofs[1024..1028].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
    let images: [(&str, Vec<u8>, &str); 2] = [
        (
            "damaged.sqfs",
            [&b"hsqs"[..], &[0; 8192]].concat(),
            "unsquashfs failed",
        ),
        ("damaged.erofs", erofs, "fsck.erofs failed"),
    ];
    for (name, bytes, said) in images {
        let image = scratch.path(name);
        std::fs::write(&image, bytes).unwrap();
        let out = cmd("oci-verify")
            .arg(&image)
            .env("TMPDIR", &temporaries)
            .stdin(std::fs::File::open(&tar).unwrap())
            .output()
            .unwrap();
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {message}");
        assert_eq!(message.lines().count(), 1, "{name}: {message}");
        assert!(
            message.starts_with(&format!(
                "oci-verify: error: {}: cannot extract",
                image.display()
            )),
            "{name}: {message}"
        );
        assert!(message.contains(said), "{name}: {message}");
        let left: Vec<_> = std::fs::read_dir(&temporaries).unwrap().collect();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

#[test]
fn a_signal_removes_the_extracted_tree() {
    use rustix::process::{kill_process, Pid, Signal};
    use std::os::unix::process::ExitStatusExt;
    let scratch = Scratch::new();
    let tar = scratch.path("stream.tar");
    std::fs::write(&tar, fine_times_and_labels().tar()).unwrap();
    let image = scratch.path("rootfs.erofs");
    build("tar2erofs", &tar, &image);
    let temporaries = scratch.path("tmp");
    std::fs::create_dir(&temporaries).unwrap();
    // The image is extracted before the stream is read: an open stdin
    // with nothing on it holds the comparison with its tree in place.
    let mut child = cmd("oci-verify")
        .arg(&image)
        .env("TMPDIR", &temporaries)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let extracted = || {
        std::fs::read_dir(&temporaries)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|dir| dir.join("xattrs/implied").exists())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while extracted().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the image was not extracted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(Signal::TERM.as_raw()), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(&temporaries).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
