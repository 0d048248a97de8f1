//! The newcomer's path (issue 21): the usual first mistakes, each answered
//! by one line that says what happened and what to run instead, never by
//! a parser's internals; and the flags every tool spells the same.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::fixtures::{docker_archive, oci_archive, sample_layout};
use support::{cmd, run_with_stdin, sh, stderr, Scratch};

/// Runs `script` (bash, pipefail) in `dir` and returns its output.
fn pipeline(dir: &Path, script: &str) -> Output {
    sh(dir, script)
}

/// The layout path as the shell sees it.
fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// stderr of a run that must fail with status `code`.
fn failure(output: &Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    stderr(output)
}

/// A small tar archive holding one file.
fn small_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("hello").unwrap();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    builder.append(&header, &b"hi\n"[..]).unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------
// Set-up: documentation stays inside the repository.

#[test]
fn help_and_man_pages_point_to_docs_design_md() {
    for program in [
        "oci-merge",
        "oci-layers",
        "tar2dir",
        "oci-fetch",
        "oci-login",
    ] {
        for args in [&["--help"][..], &["--generate", "man"][..]] {
            let output = cmd(program).args(args).output().unwrap();
            assert!(output.status.success(), "{program} {args:?}");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                !text.contains("DESIGN.md") && !text.contains("../shared"),
                "{program} {args:?} points outside the repository:\n{text}"
            );
        }
    }
    let help = cmd("oci-merge").arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("docs/design.md"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(!readme.contains("DESIGN.md") && !readme.contains("../shared"));
    assert!(readme.contains("docs/design.md"));
}

// ---------------------------------------------------------------------------
// The wrong thing on stdin.

#[test]
fn a_layer_list_piped_into_tar2dir_asks_for_oci_merge() {
    let scratch = Scratch::new();
    let output = pipeline(
        scratch.0.path(),
        &format!("oci-layers {} | tar2dir out", quoted(&sample_layout())),
    );
    assert_eq!(
        failure(&output, 1),
        "tar2dir: error: stdin is a layer list, not a tar: put oci-merge between them \
         (oci-layers IMAGE | oci-merge | tar2dir DIR)\n"
    );
    assert!(!scratch.path("out").exists());
}

#[test]
fn a_layer_list_piped_into_tar2sqfs_asks_for_oci_merge() {
    let scratch = Scratch::new();
    let output = pipeline(
        scratch.0.path(),
        &format!("oci-layers {} | tar2sqfs o.sqfs", quoted(&sample_layout())),
    );
    assert_eq!(
        failure(&output, 1),
        "tar2sqfs: error: stdin is a layer list, not a tar: put oci-merge between them \
         (oci-layers IMAGE | oci-merge | tar2sqfs OUT)\n"
    );
    assert!(!scratch.path("o.sqfs").exists());
}

#[test]
fn a_gzip_compressed_tar_into_tar2dir_says_so() {
    let scratch = Scratch::new();
    let mut command = cmd("tar2dir");
    command.arg(scratch.path("out"));
    let output = run_with_stdin(command, &gzip(&small_tar()));
    assert_eq!(
        failure(&output, 1),
        "tar2dir: error: stdin is gzip-compressed, not a tar: decompress it first \
         (gzip -dc FILE | tar2dir DIR)\n"
    );
}

#[test]
fn a_zstd_compressed_tar_into_tar2sqfs_says_so() {
    let scratch = Scratch::new();
    let compressed = zstd::encode_all(&small_tar()[..], 3).unwrap();
    let mut command = cmd("tar2sqfs");
    command.arg(scratch.path("o.sqfs"));
    let output = run_with_stdin(command, &compressed);
    assert_eq!(
        failure(&output, 1),
        "tar2sqfs: error: stdin is zstd-compressed, not a tar: decompress it first \
         (zstd -dc FILE | tar2sqfs OUT)\n"
    );
}

// ---------------------------------------------------------------------------
// The wrong thing as an argument.

#[test]
fn oci_layers_on_a_text_file_says_it_is_not_an_image() {
    let scratch = Scratch::new();
    let file = scratch.write("passwd", b"root:x:0:0:root:/root:/bin/bash\n");
    let output = cmd("oci-layers").arg(&file).output().unwrap();
    assert_eq!(
        failure(&output, 1),
        format!(
            "oci-layers: error: {file}: not an image: neither an OCI layout nor a docker \
             save, as a directory or a tar file\n"
        )
    );
}

/// `oci-merge ARCHIVE` refuses the image archive and names the command
/// that was meant.
fn assert_image_archive_refused(archive: &Path) {
    let output = cmd("oci-merge")
        .arg(archive)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let path = archive.display();
    assert_eq!(
        failure(&output, 1),
        format!(
            "oci-merge: error: layer 1/1 ({path}): this is an image archive, not a layer: \
             use oci-layers {path} | oci-merge\n"
        )
    );
}

#[test]
fn oci_merge_of_a_docker_save_refuses_the_image_archive() {
    assert_image_archive_refused(&docker_archive());
}

#[test]
fn oci_merge_of_an_oci_archive_refuses_the_image_archive() {
    assert_image_archive_refused(&oci_archive());
}

#[test]
fn transport_names_resolve_and_a_tag_on_a_bare_path_gets_a_hint() {
    let scratch = Scratch::new();
    let layout = sample_layout();
    let plain = cmd("oci-layers").arg(&layout).output().unwrap();
    let named = cmd("oci-layers")
        .arg(format!("oci:{}:sample", layout.display()))
        .output()
        .unwrap();
    assert!(named.status.success(), "{}", stderr(&named));
    assert_eq!(named.stdout, plain.stdout);
    std::os::unix::fs::symlink(&layout, scratch.path("layout")).unwrap();
    let output = Command::new(support::bin("oci-layers"))
        .arg("layout:sample")
        .current_dir(scratch.0.path())
        .output()
        .unwrap();
    assert_eq!(
        failure(&output, 1),
        "oci-layers: error: layout:sample: no such file or directory; for the image tagged \
         sample in the layout directory layout, use oci:layout:sample\n"
    );
}

// ---------------------------------------------------------------------------
// Messages: the program's prefix, no internals.

#[test]
fn a_usage_error_is_prefixed_with_the_program_name() {
    let output = cmd("oci-merge").arg("--bogus").output().unwrap();
    assert_eq!(
        failure(&output, 2),
        "oci-merge: error: unexpected argument '--bogus' found\n\
         Usage: oci-merge [OPTIONS] [LAYERS]...\n"
    );
}

#[test]
fn a_bad_option_value_names_the_allowed_values_on_one_line() {
    let output = cmd("oci-merge")
        .args(["--progress", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(
        failure(&output, 2),
        "oci-merge: error: invalid value 'sometimes' for '--progress <WHEN>' \
         [possible values: auto, always, never, json]\n"
    );
}

#[test]
fn a_missing_layer_is_reported_without_an_os_error_number() {
    let scratch = Scratch::new();
    let missing = scratch.path("missing.tar");
    let output = cmd("oci-merge")
        .arg(&missing)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        failure(&output, 1),
        format!(
            "oci-merge: error: layer 1/1 ({}): cannot open: No such file or directory\n",
            missing.display()
        )
    );
}

#[test]
fn tar2dir_names_the_users_directory_not_its_temporary_sibling() {
    let mut command = cmd("tar2dir");
    command.arg("/proc/newcomer-out");
    let output = run_with_stdin(command, &small_tar());
    assert_eq!(
        failure(&output, 1),
        "tar2dir: error: /proc/newcomer-out: cannot create: No such file or directory\n"
    );
}

#[test]
fn a_platform_is_echoed_as_typed() {
    let output = cmd("oci-layers")
        .args(["--platform", "linux/arm64"])
        .arg(sample_layout())
        .output()
        .unwrap();
    assert_eq!(
        failure(&output, 1),
        format!(
            "oci-layers: error: {}: the image is for linux/amd64, not linux/arm64 \
             (choose with --platform)\n",
            sample_layout().display()
        )
    );
}

#[test]
fn a_refused_registry_connection_says_once_that_it_is_retried() {
    let port = unused_port();
    let output = cmd("oci-fetch")
        .arg(format!("127.0.0.1:{port}/x:1"))
        .output()
        .unwrap();
    let text = failure(&output, 1);
    let refused =
        format!("127.0.0.1:{port}/x:1: cannot connect to 127.0.0.1:{port}: connection refused");
    assert_eq!(
        text,
        format!(
            "oci-fetch: warning: {refused}; retrying (up to 5 times)\n\
             oci-fetch: error: {refused} (gave up after 5 retries)\n"
        )
    );
}

/// A local port nothing listens on.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// Flags every tool shares.

#[test]
fn tar2dir_refuses_an_existing_directory_without_force() {
    let scratch = Scratch::new();
    scratch.write("out/old", b"old\n");
    let mut command = cmd("tar2dir");
    command.arg(scratch.path("out"));
    let output = run_with_stdin(command, &small_tar());
    assert_eq!(
        failure(&output, 2),
        format!(
            "tar2dir: error: {}: already exists and is not empty (--force replaces it)\n",
            scratch.path("out").display()
        )
    );
    assert_eq!(std::fs::read(scratch.path("out/old")).unwrap(), b"old\n");
}

#[test]
fn tar2dir_force_replaces_an_existing_directory_only_on_success() {
    let scratch = Scratch::new();
    scratch.write("out/old", b"old\n");
    let out = scratch.path("out");
    let mut truncated = small_tar();
    truncated.truncate(1024);
    let mut command = cmd("tar2dir");
    command.arg("--force").arg(&out);
    failure(&run_with_stdin(command, &truncated), 1);
    assert_eq!(std::fs::read(out.join("old")).unwrap(), b"old\n");
    let mut command = cmd("tar2dir");
    command.arg("--force").arg(&out);
    let output = run_with_stdin(command, &small_tar());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!out.join("old").exists());
    assert_eq!(std::fs::read(out.join("hello")).unwrap(), b"hi\n");
    let names: Vec<_> = std::fs::read_dir(scratch.0.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing left beside out: {names:?}");
}

#[test]
fn tar2dir_stats_prints_one_summary_line() {
    let scratch = Scratch::new();
    let mut command = cmd("tar2dir");
    command.arg("--stats").arg(scratch.path("out"));
    let output = run_with_stdin(command, &small_tar());
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("tar2dir: 1 entries, 3 bytes of file data"),
        "{text}"
    );
    assert!(lines[0].len() <= 80, "{text}");
}

#[test]
fn oci_merge_takes_jobs_and_still_parallel() {
    let scratch = Scratch::new();
    let layout = quoted(&sample_layout());
    let script = format!(
        "oci-layers {layout} | oci-merge --jobs 3 > a.tar\n\
         oci-layers {layout} | oci-merge --parallel 3 > b.tar\n\
         cmp a.tar b.tar"
    );
    let output = pipeline(scratch.0.path(), &script);
    assert!(output.status.success(), "{}", stderr(&output));
    let help = cmd("oci-merge").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("--jobs <N>") && !help.contains("--parallel"),
        "{help}"
    );
}

#[test]
fn completions_offer_values_and_hide_testing_flags() {
    let output = cmd("tar2dir")
        .args(["--generate", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!script.contains("--no-openat2"), "{script}");
    let output = cmd("oci-merge")
        .args(["--generate", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(script.contains("auto always never json"), "{script}");
    let output = cmd("oci-layers")
        .args(["--generate", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(script.contains("linux/amd64 linux/arm64"), "{script}");
}

#[test]
fn man_pages_describe_and_refer_to_the_other_tools() {
    let output = cmd("oci-merge")
        .args(["--generate", "man"])
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&output.stdout).into_owned();
    let description = page.split(".SH DESCRIPTION").nth(1).unwrap_or("");
    assert!(description.contains("newest first"), "{page}");
    let see_also = page
        .split(".SH \"SEE ALSO\"")
        .nth(1)
        .expect("a SEE ALSO section");
    for tool in [
        "oci-layers",
        "oci-fetch",
        "tar2dir",
        "tar2sqfs",
        "tar2erofs",
    ] {
        let roff = tool.replace('-', "\\-");
        assert!(see_also.contains(&format!("{roff}(1)")), "{tool}: {page}");
    }
    let synopsis = page.split(".SH SYNOPSIS").nth(1).unwrap_or("");
    let synopsis = synopsis.split(".SH").next().unwrap();
    assert!(
        synopsis.contains("[\\fB\\-\\-progress\\fR \\fIWHEN\\fR]"),
        "{synopsis}"
    );
}

/// A merge that fails says why once: the sink reading its abandoned tar
/// fails too (every stage exits non-zero, nothing is left behind) but adds
/// no line of its own, whether the merge failed before its first entry or
/// inside a layer.
#[test]
fn a_failed_merge_is_one_line_through_the_sink() {
    let scratch = Scratch::new();
    let dir = scratch.0.path();
    std::fs::write(dir.join("notalayer.gz"), &gzip(b"not a tar, and cut")[..12]).unwrap();
    for merge in [
        "oci-merge ./no-such-layer",
        "oci-merge ./notalayer.gz",
        "oci-merge < /dev/null",
    ] {
        for sink in ["tar2dir rootfs", "tar2sqfs out.sqfs", "tar2erofs out.erofs"] {
            let output = pipeline(
                dir,
                &format!("set +e; {merge} | {sink}; echo \"${{PIPESTATUS[*]}}\" > status; exit 1"),
            );
            let said = stderr(&output);
            assert_eq!(said.lines().count(), 1, "{merge} | {sink}:\n{said}");
            assert!(
                said.starts_with("oci-merge: error: "),
                "{merge} | {sink}:\n{said}"
            );
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            assert_eq!(status.trim(), "1 1", "{merge} | {sink}");
            for out in ["rootfs", "out.sqfs", "out.erofs"] {
                assert!(!dir.join(out).exists(), "{out} was left behind");
            }
        }
    }
}

/// A pipeline whose source fails says so once: the source's line, and
/// nothing from the merge or the sink, which fail too (every stage exits
/// non-zero) and leave nothing behind.
#[test]
fn a_failed_source_is_one_line_through_the_whole_pipeline() {
    let scratch = Scratch::new();
    let dir = scratch.0.path();
    for (source, said) in [
        (
            "oci-layers ./no-such-image",
            "oci-layers: error: ./no-such-image: cannot open: No such file or directory",
        ),
        ("oci-fetch 'Not A Reference!'", "oci-fetch: error: "),
    ] {
        for sink in ["tar2dir rootfs", "tar2sqfs out.sqfs", "tar2erofs out.erofs"] {
            let output = pipeline(
                dir,
                &format!(
                    "set +e; {source} | oci-merge | {sink}; \
                     echo \"${{PIPESTATUS[*]}}\" > status; exit 1"
                ),
            );
            let said_here = stderr(&output);
            assert_eq!(
                said_here.lines().count(),
                1,
                "{source} | oci-merge | {sink}:\n{said_here}"
            );
            assert!(
                said_here.starts_with(said),
                "{source} | oci-merge | {sink}:\n{said_here}"
            );
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            assert_eq!(status.trim(), "1 1 1", "{source} | oci-merge | {sink}");
            for out in ["rootfs", "out.sqfs", "out.erofs"] {
                assert!(!dir.join(out).exists(), "{out} was left behind");
            }
        }
    }
}

/// The `#failed` line ends only a layer list: asked for JSON, a listing or
/// a config, a failing source writes nothing on stdout; and a `#failed`
/// line that reaches a person's terminal is not printed at all.
#[test]
fn a_failed_source_marks_only_a_layer_list() {
    let listed = cmd("oci-layers").arg("./no-such-image").output().unwrap();
    assert_eq!(listed.status.code(), Some(1));
    assert_eq!(listed.stdout, b"#failed\n");
    for flag in ["--json", "--config", "--list"] {
        let other = cmd("oci-layers")
            .args([flag, "./no-such-image"])
            .output()
            .unwrap();
        assert_eq!(other.status.code(), Some(1), "{flag}");
        assert!(other.stdout.is_empty(), "{flag}: {:?}", other.stdout);
    }
    let fetched = cmd("oci-fetch").arg("Not A Reference!").output().unwrap();
    assert_eq!(fetched.status.code(), Some(1));
    assert_eq!(fetched.stdout, b"#failed\n");
}
