//! The sink contract, run for every image-builder sink: one test body per
//! promise, run under each sink's configuration (the [`SINKS`] table and
//! the [`contract!`] macro make `tar2sqfs::NAME` and `tar2erofs::NAME` of
//! each body). Adding a sink is one row here.
//!
//! The promises (docs/design.md, "The sink contract"): a stream that is
//! truncated, corrupt or abandoned by a failing merge fails the run and
//! blames the input; a missing or too-old builder says what to install; a
//! builder that fails (a full disk too) is reported in its own words; a
//! signal kills the builder and leaves nothing; the builder gets only
//! stdin, stdout and stderr; the same stream gives the same bytes; on any
//! failure OUT is left exactly as it was; option values are refused
//! before stdin is read; an existing OUT needs `--force`; `--stats` is one
//! line of at most 80 columns; progress is one line for the builder phase
//! (never the builder's own output, never a temporary name) or JSON
//! events ending in `done` once OUT exists.
//!
//! What only one builder does stays in tests/tar2sqfs.rs and
//! tests/tar2erofs.rs.

mod support;

use rustix::process::{kill_process, Pid, Signal};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::terminal::Tmux;
use support::{bin, run_with_stdin, script, sh, stderr};
use testkit::{noise, Layer, Raw};

/// The image every test writes, inside its scratch directory.
const OUT: &str = "out.img";
/// The SOURCE_DATE_EPOCH of the reproducibility test.
const EPOCH: u64 = 1_700_000_000;

/// An image sink and what differs from one to the other.
struct Sink {
    program: &'static str,
    /// The builder program, as the sink names it.
    builder: &'static str,
    /// The flag that points at another builder.
    tool_flag: &'static str,
    /// What the builder prints for its version, and its option to.
    version_option: &'static str,
    banner: &'static str,
    /// Too-old banners, and what the refusal must mention.
    too_old: &'static [(&'static str, &'static [&'static str])],
    /// What the message about a missing builder must mention.
    install: &'static [&'static str],
    /// Shell that writes `image` to the image path, given the builder's
    /// arguments in "$@".
    write_image: &'static str,
    /// Option values refused before stdin is read, and what the one line
    /// must mention.
    bad_options: &'static [(&'static [&'static str], &'static [&'static str])],
    /// The number of inodes of an image, as the builder's own tools read it.
    inodes: fn(&Path) -> u64,
    /// Every `--comp` value, in the order the sink lists them.
    compressors: &'static [&'static str],
    /// An option of the builder's own (after `--`) that it refuses, and
    /// what the error line must then say.
    refused_extra: (&'static str, &'static [&'static str]),
}

const TAR2SQFS: Sink = Sink {
    program: "tar2sqfs",
    builder: "mksquashfs",
    tool_flag: "--mksquashfs",
    version_option: "-version",
    banner: "mksquashfs version 4.6.1 (2023/03/25)",
    too_old: &[
        ("mksquashfs version 4.5.1 (2022/03/17)", &["4.5.1", "4.6"]),
        ("squashfs tools, who knows", &["version", "4.6"]),
    ],
    install: &[
        "squashfs-tools 4.6 or newer",
        "install-deps",
        "--mksquashfs",
    ],
    write_image: "echo image >\"$2\"",
    bad_options: &[
        (
            &["--comp", "zstdd"],
            &["--comp zstdd", "zstd, gzip, xz, lz4, lzo, lzma"],
        ),
        (
            &["--comp", "bogus"],
            &["bogus", "zstd, gzip, xz, lz4, lzo, lzma"],
        ),
        (&["--level", "99"], &["--level 99", "1-22", "zstd"]),
        (&["--comp", "xz", "--level", "5"], &["--level 5", "xz"]),
        (&["--comp", "gzip", "--level", "10"], &["1-9", "gzip"]),
        (&["--block-size", "3K"], &["--block-size 3K", "4K", "1M"]),
        (
            &["--block-size", "2M"],
            &["--block-size 2M", "power of two"],
        ),
        (&["--level", "high"], &["--level", "high"]),
        (
            &["--progress", "sometimes"],
            &["--progress sometimes", "auto, always, never, json"],
        ),
    ],
    inodes: squashfs_inodes,
    compressors: &["zstd", "gzip", "xz", "lz4", "lzo", "lzma"],
    // What mksquashfs says first, not the 200-line usage text after it.
    refused_extra: (
        "-bogus-option",
        &["mksquashfs failed", "invalid option", "more lines"],
    ),
};

const TAR2EROFS: Sink = Sink {
    program: "tar2erofs",
    builder: "mkfs.erofs",
    tool_flag: "--mkfs-erofs",
    version_option: "--version",
    banner: "mkfs.erofs (erofs-utils) 1.9.4",
    too_old: &[
        (
            "mkfs.erofs (erofs-utils) 1.8.6",
            &["1.8.6", "1.9", "too old"],
        ),
        ("mkfs.erofs 1.5", &["version", "1.9"]),
    ],
    install: &["erofs-utils 1.9 or newer", "install-deps", "--mkfs-erofs"],
    write_image: "for a; do last=$a; done; echo image >\"$last\"",
    bad_options: &[
        (
            &["--comp", "bogus"],
            &["--comp bogus", "lz4hc, lz4, zstd, lzma, deflate, none"],
        ),
        (&["--comp", "lz4", "--level", "5"], &["level", "lz4"]),
        (
            &["--comp", "zstd", "--level", "99"],
            &["--level 99", "1-22"],
        ),
        (&["--level", "13"], &["--level 13", "0-12", "lz4hc"]),
        (&["--cluster-size", "5000"], &["cluster-size", "4096"]),
        (&["--cluster-size", "2M"], &["cluster-size 2M", "1M"]),
        (
            &["--progress", "sometimes"],
            &["--progress sometimes", "auto, always, never, json"],
        ),
    ],
    inodes: erofs_inodes,
    compressors: &["lz4hc", "lz4", "zstd", "lzma", "deflate", "none"],
    refused_extra: (
        "--no-such-option",
        &["mkfs.erofs failed", "mkfs.erofs said"],
    ),
};

/// Every sink the contract holds for.
const SINKS: &[&Sink] = &[&TAR2SQFS, &TAR2EROFS];

/// One `#[test]` per body and sink: `tar2sqfs::NAME`, `tar2erofs::NAME`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod tar2sqfs {
            $(#[test] fn $case() { super::$case(&super::TAR2SQFS) })*
        }
        mod tar2erofs {
            $(#[test] fn $case() { super::$case(&super::TAR2EROFS) })*
        }
    };
}

contract!(
    truncated_streams_fail_and_leave_out_as_it_was,
    a_producer_that_stops_early_fails,
    a_corrupt_header_fails,
    empty_or_closed_stdin_fails_and_writes_nothing,
    a_merge_failing_mid_stream_fails_quietly_after_the_merges_line,
    a_missing_builder_says_what_to_install,
    a_builder_too_old_is_refused,
    a_failing_builder_is_reported_in_its_own_words,
    an_option_the_builder_refuses_is_reported_in_its_words,
    a_full_disk_fails_cleanly,
    a_signal_kills_the_builder_and_leaves_out_as_it_was,
    the_builder_gets_only_stdin_stdout_and_stderr,
    the_callers_tmpdir_is_not_used,
    the_same_tar_gives_byte_identical_images,
    out_that_is_a_directory_or_in_a_missing_directory_fails,
    the_image_gets_the_usual_file_mode,
    bad_option_values_are_refused_before_stdin_is_read,
    an_existing_out_is_refused_without_force,
    force_replaces_out_only_when_the_new_image_is_complete,
    stats_print_one_short_line_with_size_inodes_and_ratio,
    progress_shows_one_line_for_the_builder_phase_never_its_output,
    progress_json_ends_with_done_once_out_exists,
    a_terminal_sees_one_line_while_the_builder_works_then_nothing,
    completions_offer_every_compressor,
);

#[test]
fn every_sink_is_in_the_table() {
    let names: Vec<&str> = SINKS.iter().map(|s| s.program).collect();
    assert_eq!(names, ["tar2sqfs", "tar2erofs"]);
}

// ---------------------------------------------------------------------------
// Inputs.

/// Files of 10, 20 and 5 bytes (35 bytes of file data), a directory, a
/// symlink, a hard link and an xattr, with a time later than [`EPOCH`].
fn rich_layer() -> Layer {
    Layer::new()
        .dir("etc")
        .raw(
            b"etc/config",
            Raw {
                data: b"config=1\n\n",
                mtime: 1_750_000_000,
                pax: vec![("SCHILY.xattr.user.note", b"hello")],
                ..Raw::default()
            },
        )
        .dir("bin")
        .file("bin/tool", b"#!/bin/sh\necho tool\n")
        .hardlink("bin/tool-link", "bin/tool")
        .symlink("bin/sh", "tool")
        .file("bin/ping", b"ping\n")
}

/// A small valid tar: the previous image that failed runs must keep.
fn small_layer() -> Layer {
    Layer::new()
        .dir("old")
        .file("old/file", b"previous image\n")
}

/// A tar with a PAX header, a file of several blocks, a directory and a
/// last file; and the offsets to cut it at, with what each cut hits.
fn truncation_cases() -> (Vec<u8>, Vec<(usize, &'static str)>) {
    let layer = Layer::new()
        .raw(
            b"first",
            Raw {
                data: &noise(1, 3000),
                pax: vec![("SCHILY.xattr.user.k", b"v")],
                ..Raw::default()
            },
        )
        .dir("d")
        .file("d/last", b"last\n");
    let tar = layer.tar();
    let entries_end = layer.tar_without_end().len();
    // PAX header 0..512, its records 512..1024, `first` 1024..1536, its
    // data 1536..4608, `d/` 4608..5120, `d/last` 5120..5632, data ..6144.
    assert_eq!(entries_end, 6144);
    let cuts = vec![
        (0, "empty"),
        (100, "inside the first header"),
        (512, "after the PAX header, before its records"),
        (700, "inside the PAX records"),
        (1024, "at the header of the first file"),
        (1300, "inside the header of the first file"),
        (2000, "inside the data of the first file"),
        (4608, "at an entry boundary after the data"),
        (5632 + 3, "inside the data of the last file"),
        (
            entries_end,
            "at the end of the entries, before the end marker",
        ),
        (entries_end + 100, "inside the end-of-archive marker"),
    ];
    (tar, cuts)
}

// ---------------------------------------------------------------------------
// Running a sink.

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

impl Sink {
    /// `PROGRAM ARGS` run in `dir`, without SOURCE_DATE_EPOCH from the
    /// environment of the test.
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(bin(self.program));
        command
            .args(args)
            .current_dir(dir)
            .env_remove("SOURCE_DATE_EPOCH");
        command
    }

    /// `PROGRAM ARGS` on `stdin` in `dir`.
    fn run(&self, dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(self.command(dir, args), stdin)
    }

    /// Runs `PROGRAM ARGS` in `dir` on `tar`, asserting success and
    /// silence; returns the image `dir/OUT`.
    fn build(&self, dir: &Path, args: &[&str], tar: &[u8]) -> PathBuf {
        self.build_with(self.command(dir, args), dir, tar)
    }

    fn build_with(&self, command: Command, dir: &Path, tar: &[u8]) -> PathBuf {
        let out = run_with_stdin(command, tar);
        let program = self.program;
        assert!(out.status.success(), "{program} failed: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{program} said: {}", stderr(&out));
        let image = dir.join(OUT);
        assert!(image.is_file(), "no image at {}", image.display());
        assert_no_temporary_files(dir);
        image
    }

    /// A fake builder in `dir/fake/`: its version option prints `banner`,
    /// any other call runs `body`.
    fn fake(&self, dir: &Path, banner: &str, body: &str) -> PathBuf {
        let fake = dir.join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        script(
            &fake,
            self.builder,
            &format!(
                "if [ \"$1\" = {} ]; then echo '{banner}'; exit 0; fi\n{body}\n",
                self.version_option
            ),
        )
    }

    /// A fake builder of a usable version that reads the stream, runs
    /// `then` and writes `image` as the image.
    fn fake_writing(&self, dir: &Path, then: &str) -> PathBuf {
        let body = format!("cat >/dev/null; {then}\n{}", self.write_image);
        self.fake(dir, self.banner, &body)
    }

    /// A good image of its own to leave in place before a failing run.
    fn previous_image(&self) -> Vec<u8> {
        let dir = scratch();
        std::fs::read(self.build(dir.path(), &[OUT], &small_layer().tar())).unwrap()
    }

    /// A failed run: non-zero exit and exactly one `PROGRAM: ` line on
    /// stderr, mentioning every needle (case-insensitively).
    fn assert_failed(&self, what: &str, out: &Output, needles: &[&str]) {
        let err = stderr(out);
        let program = self.program;
        assert!(!out.status.success(), "{what}: {program} succeeded: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with(&format!("{program}: ")),
            "{what}: expected one `{program}: ` line, got: {err:?}"
        );
        for needle in needles {
            assert!(
                err.to_lowercase().contains(&needle.to_lowercase()),
                "{what}: error does not mention {needle:?}: {err}"
            );
        }
    }

    /// Runs a failing scenario twice, in fresh directories: with OUT absent
    /// (it must stay absent) and with OUT a previous good image, replaced
    /// only on success (`--force`): it must stay byte-identical, the same
    /// file. `run` gets the directory and the flags to pass before OUT
    /// (none, or `--force`); returns the first run's stderr.
    fn assert_fails_cleanly(
        &self,
        what: &str,
        needles: &[&str],
        run: impl Fn(&Path, &[&str]) -> Output,
    ) -> String {
        let absent = scratch();
        let out = run(absent.path(), &[]);
        self.assert_failed(&format!("{what} (no previous OUT)"), &out, needles);
        assert!(
            !absent.path().join(OUT).exists(),
            "{what}: a failed run created OUT"
        );
        assert_no_temporary_files(absent.path());

        let present = scratch();
        let previous = self.previous_image();
        let image = present.path().join(OUT);
        std::fs::write(&image, &previous).unwrap();
        let inode = image.metadata().unwrap().ino();
        let again = run(present.path(), &["--force"]);
        self.assert_failed(&format!("{what} (previous OUT)"), &again, needles);
        assert_unchanged(what, &image, &previous, inode);
        assert_no_temporary_files(present.path());
        stderr(&out)
    }
}

/// `flags` then `rest`, as one argument list.
fn with(flags: &[&str], rest: &[&str]) -> Vec<String> {
    flags.iter().chain(rest).map(|s| s.to_string()).collect()
}

fn assert_unchanged(what: &str, image: &Path, previous: &[u8], inode: u64) {
    assert!(
        std::fs::read(image).unwrap() == previous,
        "{what}: a failed run changed the previous image"
    );
    assert_eq!(
        image.metadata().unwrap().ino(),
        inode,
        "{what}: a failed run replaced the previous image"
    );
}

/// Temporary siblings a sink (or its builder) may leave behind: it must not.
fn assert_no_temporary_files(dir: &Path) {
    let left = temporaries(dir);
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{OUT}.tmp-")) || name.starts_with("tmp."))
        .collect()
}

/// PATH with `first` before the test's own PATH.
fn path_with_first(first: &Path) -> String {
    format!(
        "{}:{}",
        first.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn squashfs_inodes(image: &Path) -> u64 {
    let out = Command::new("unsquashfs")
        .arg("-stat")
        .arg(image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Number of inodes "))
        .unwrap_or_else(|| panic!("unsquashfs -stat has no inode count: {text}"))
        .parse()
        .unwrap()
}

fn erofs_inodes(image: &Path) -> u64 {
    let out = Command::new("dump.erofs")
        .arg("-s")
        .arg(image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Filesystem inode count:"))
        .unwrap_or_else(|| panic!("dump.erofs -s has no inode count: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A sink started on a stdin pipe that the test holds open and writes
/// nothing to, so that it can only end without reading its input.
fn start_on_open_stdin(
    sink: &Sink,
    dir: &Path,
    args: &[String],
) -> (Child, std::process::ChildStdin) {
    let mut child = sink
        .command(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Waits for `child` to end on its own within a few seconds.
fn ends_soon(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running: it waits for stdin");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

// ---------------------------------------------------------------------------
// Bad input: the stream.

fn truncated_streams_fail_and_leave_out_as_it_was(sink: &Sink) {
    let (tar, cuts) = truncation_cases();
    for (cut, what) in cuts {
        sink.assert_fails_cleanly(
            &format!("cut at {cut} ({what})"),
            &["input"],
            |dir, flags| sink.run(dir, &args(flags, &[OUT]), &tar[..cut]),
        );
    }
}

fn a_producer_that_stops_early_fails(sink: &Sink) {
    let (tar, _) = truncation_cases();
    let program = sink.program;
    let stderr = sink.assert_fails_cleanly(
        &format!("head -c 3000 | {program}"),
        &["input", "truncated"],
        |dir, flags| {
            std::fs::write(dir.join("full.tar"), &tar).unwrap();
            sh(
                dir,
                &format!(
                    "head -c 3000 full.tar | {program} {} {OUT}; exit \"${{PIPESTATUS[1]}}\"",
                    flags.join(" ")
                ),
            )
        },
    );
    assert!(stderr.contains("3000"), "{stderr}");
}

fn a_corrupt_header_fails(sink: &Sink) {
    let (mut tar, _) = truncation_cases();
    tar[4608 + 20] ^= 0x55; // the name of `d/`, whose header ends at 5120
    sink.assert_fails_cleanly(
        "corrupt header",
        &["input", "header", "5120"],
        |dir, flags| sink.run(dir, &args(flags, &[OUT]), &tar),
    );
}

/// `flags` then `rest`, borrowed.
fn args<'a>(flags: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    flags.iter().chain(rest).copied().collect()
}

fn empty_or_closed_stdin_fails_and_writes_nothing(sink: &Sink) {
    let program = sink.program;
    sink.assert_fails_cleanly("empty stdin", &["input", "end-of-archive"], |dir, flags| {
        sink.run(dir, &args(flags, &[OUT]), b"")
    });
    sink.assert_fails_cleanly("closed stdin", &["input"], |dir, flags| {
        sh(dir, &format!("{program} {} {OUT} <&-", flags.join(" ")))
    });
    sink.assert_fails_cleanly("stdin from /dev/null", &["input"], |dir, flags| {
        sh(
            dir,
            &format!("{program} {} {OUT} </dev/null", flags.join(" ")),
        )
    });
}

/// `oci-merge` with a corrupt base layer streams the good upper layer, then
/// fails (it abandons the stream): the sink must blame its input, not
/// report what its builder says about a stream that ended early.
fn a_merge_failing_mid_stream_fails_quietly_after_the_merges_line(sink: &Sink) {
    let base = Layer::new()
        .dir("usr")
        .file("usr/data", &vec![b'x'; 1 << 20])
        .file("usr/more", &noise(2, 256 << 10));
    let mut corrupt = base.gzip();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16]
        .iter_mut()
        .for_each(|b| *b ^= 0xa5);
    let top = Layer::new()
        .dir("opt")
        .file("opt/big", &noise(3, 2 << 20))
        .file("opt/small", b"small\n")
        .tar();
    let program = sink.program;
    let run = |dir: &Path, flags: &[&str]| {
        std::fs::write(dir.join("bad.tgz"), &corrupt).unwrap();
        std::fs::write(dir.join("good.tar"), &top).unwrap();
        sh(
            dir,
            &format!(
                "set +e; oci-merge bad.tgz good.tar | {program} {} {OUT}\n\
                 status=(\"${{PIPESTATUS[@]}}\"); echo \"${{status[*]}}\" >status; exit \"${{status[1]}}\"",
                flags.join(" ")
            ),
        )
    };
    // The merge's line says what is wrong with the input; the sink, which
    // reads the merge's abandoned tar, fails without a line of its own.
    let check = |what: &str, out: &Output, dir: &Path| {
        let err = stderr(out);
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        assert_eq!(status.trim(), "1 1", "{what}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {err}");
        assert!(
            lines[0].starts_with("oci-merge: error: layer 1/2 (bad.tgz)"),
            "{what}: {err}"
        );
        assert_no_temporary_files(dir);
    };
    let absent = scratch();
    let out = run(absent.path(), &[]);
    check("no previous OUT", &out, absent.path());
    assert!(
        !absent.path().join(OUT).exists(),
        "a failed run created OUT"
    );

    let present = scratch();
    let previous = sink.previous_image();
    let image = present.path().join(OUT);
    std::fs::write(&image, &previous).unwrap();
    let inode = image.metadata().unwrap().ino();
    let again = run(present.path(), &["--force"]);
    check("previous OUT", &again, present.path());
    assert_unchanged("a failed merge", &image, &previous, inode);
}

// ---------------------------------------------------------------------------
// The builder: missing, too old, failing.

fn a_missing_builder_says_what_to_install(sink: &Sink) {
    let tar = small_layer().tar();
    // Nothing on PATH at all (the sink itself is run by its full path).
    sink.assert_fails_cleanly(
        &format!("no {} on PATH", sink.builder),
        sink.install,
        |dir, flags| {
            let empty = dir.join("empty-path");
            std::fs::create_dir_all(&empty).unwrap();
            let mut command = sink.command(dir, &args(flags, &[OUT]));
            command.env("PATH", &empty);
            run_with_stdin(command, &tar)
        },
    );
    let stderr = sink.assert_fails_cleanly(
        &format!("{} /nonexistent", sink.tool_flag),
        sink.install,
        |dir, flags| {
            sink.run(
                dir,
                &args(flags, &[sink.tool_flag, "/nonexistent", OUT]),
                &tar,
            )
        },
    );
    assert!(stderr.contains("/nonexistent"), "{stderr}");
}

fn a_builder_too_old_is_refused(sink: &Sink) {
    let tar = small_layer().tar();
    // Any call but the version's would "succeed" without writing an image.
    let body = "cat >/dev/null; exit 0";
    for (banner, needles) in sink.too_old {
        sink.assert_fails_cleanly(&format!("{banner} first on PATH"), needles, |dir, flags| {
            let fake = sink.fake(dir, banner, body);
            let mut command = sink.command(dir, &args(flags, &[OUT]));
            command.env("PATH", path_with_first(fake.parent().unwrap()));
            run_with_stdin(command, &tar)
        });
        sink.assert_fails_cleanly(
            &format!("{} {banner}", sink.tool_flag),
            needles,
            |dir, flags| {
                let fake = sink.fake(dir, banner, body);
                let fake = fake.to_str().unwrap();
                sink.run(dir, &args(flags, &[sink.tool_flag, fake, OUT]), &tar)
            },
        );
    }
}

/// What the builder says on stderr is the error; its chatter on stdout
/// (a banner, a report) is not.
fn a_failing_builder_is_reported_in_its_own_words(sink: &Sink) {
    let small = small_layer().tar();
    // Reads the whole stream, writes half an image, then fails.
    let after_reading = format!(
        "cat >/dev/null; {}; echo 'Processing: chatter'; echo 'FATAL: something bad' >&2; exit 1",
        sink.write_image
    );
    let failed = format!("{} failed", sink.builder);
    let stderr = sink.assert_fails_cleanly(
        "fails after reading",
        &[
            &failed,
            &format!("{} said", sink.builder),
            "FATAL: something bad",
        ],
        |dir, flags| {
            let fake = sink.fake(dir, sink.banner, &after_reading);
            let mut command = sink.command(dir, &args(flags, &[OUT]));
            command.env("PATH", path_with_first(fake.parent().unwrap()));
            run_with_stdin(command, &small)
        },
    );
    assert!(!stderr.contains("chatter"), "{stderr}");
    // Fails at once, with more input than a pipe holds still to come.
    let big = Layer::new().file("big", &noise(4, 4 << 20)).tar();
    let at_once = "echo 'FATAL: cannot start' >&2; exit 1";
    sink.assert_fails_cleanly(
        "fails without reading",
        &[&failed, "FATAL: cannot start"],
        |dir, flags| {
            let fake = sink.fake(dir, sink.banner, at_once);
            let fake = fake.to_str().unwrap();
            sink.run(dir, &args(flags, &[sink.tool_flag, fake, OUT]), &big)
        },
    );
}

/// Options after `--` are the builder's to refuse, in its own words, on
/// one short line.
fn an_option_the_builder_refuses_is_reported_in_its_words(sink: &Sink) {
    let (option, needles) = sink.refused_extra;
    let tar = rich_layer().tar();
    let stderr = sink.assert_fails_cleanly(&format!("-- {option}"), needles, |dir, flags| {
        sink.run(dir, &args(flags, &[OUT, "--", option]), &tar)
    });
    assert!(stderr.len() < 1000, "{stderr}");
}

/// A full disk: the builder cannot write, and says so.
fn a_full_disk_fails_cleanly(sink: &Sink) {
    let dir = scratch();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount tmpfs: {}", stderr(&out));
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let tar = Layer::new().file("big", &noise(4, 4 << 20)).tar();
    let out = sink.run(&small, &[OUT], &tar);
    sink.assert_failed("a full disk", &out, &[sink.builder]);
    assert!(!small.join(OUT).exists());
    assert_no_temporary_files(&small);
}

/// A signal mid-stream kills the builder, removes the temporary image and
/// leaves a previous OUT as it was; the sink dies of the signal.
fn a_signal_kills_the_builder_and_leaves_out_as_it_was(sink: &Sink) {
    let tar = (0..8)
        .fold(Layer::new(), |l, i| {
            l.file(&format!("data/f{i}"), &noise(i, 1 << 20))
        })
        .tar();
    let previous = sink.previous_image();
    for signal in [Signal::TERM, Signal::INT, Signal::HUP] {
        let dir = scratch();
        let image = dir.path().join(OUT);
        std::fs::write(&image, &previous).unwrap();
        let inode = image.metadata().unwrap().ino();
        let (mut child, mut stdin) =
            start_on_open_stdin(sink, dir.path(), &with(&["--force"], &[OUT]));
        stdin.write_all(&tar[..tar.len() / 2]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while temporaries(dir.path()).is_empty() {
            assert!(Instant::now() < deadline, "no temporary image appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        kill_process(pid, signal).unwrap();
        let status = child.wait().unwrap();
        drop(stdin);
        assert_eq!(
            status.signal(),
            Some(signal.as_raw()),
            "{signal:?}: {status:?}"
        );
        // Give a killed builder no chance to write anything late.
        std::thread::sleep(Duration::from_millis(300));
        assert_no_temporary_files(dir.path());
        assert_unchanged(&format!("{signal:?}"), &image, &previous, inode);
    }
}

/// A descriptor the caller left open without close-on-exec, as a shell's
/// `7<FILE` does, must not reach the builder.
fn the_builder_gets_only_stdin_stdout_and_stderr(sink: &Sink) {
    let dir = scratch();
    let canary = dir.path().join("leak-canary");
    std::fs::write(&canary, "secret").unwrap();
    let body = format!(
        "for fd in /proc/$$/fd/*; do
  case $(readlink \"$fd\") in *leak-canary*) echo \"inherited $fd\" >&2; exit 1;; esac
done
cat >/dev/null; {}",
        sink.write_image
    );
    let fake = sink.fake(dir.path(), sink.banner, &body);
    let mut command = Command::new("sh");
    command
        .args(["-c", "exec 7<\"$0\"; exec \"$@\""])
        .arg(&canary)
        .arg(bin(sink.program))
        .args([sink.tool_flag, fake.to_str().unwrap(), OUT])
        .current_dir(dir.path());
    let out = run_with_stdin(command, &small_layer().tar());
    assert!(
        out.status.success(),
        "{} failed: {}",
        sink.program,
        stderr(&out)
    );
    assert_eq!(std::fs::read(dir.path().join(OUT)).unwrap(), b"image\n");
}

/// Whatever the builder spills goes beside OUT: the caller's TMPDIR is
/// never used (here it does not even exist).
fn the_callers_tmpdir_is_not_used(sink: &Sink) {
    let dir = scratch();
    let mut command = sink.command(dir.path(), &[OUT]);
    command.env("TMPDIR", "/nonexistent/tmp");
    sink.build_with(command, dir.path(), &rich_layer().tar());
}

// ---------------------------------------------------------------------------
// OUT.

fn the_same_tar_gives_byte_identical_images(sink: &Sink) {
    let tar = rich_layer().tar();
    let (one, two) = (scratch(), scratch());
    let first = std::fs::read(sink.build(one.path(), &[OUT], &tar)).unwrap();
    let second = std::fs::read(sink.build(two.path(), &[OUT], &tar)).unwrap();
    assert!(first == second, "two runs on the same tar differ");

    let dated = |dir: &Path| {
        let mut command = sink.command(dir, &[OUT]);
        command.env("SOURCE_DATE_EPOCH", EPOCH.to_string());
        std::fs::read(sink.build_with(command, dir, &tar)).unwrap()
    };
    let (three, four) = (scratch(), scratch());
    let (dated_one, dated_two) = (dated(three.path()), dated(four.path()));
    assert!(
        dated_one == dated_two,
        "two runs with SOURCE_DATE_EPOCH={EPOCH} differ"
    );
    assert!(
        dated_one != first,
        "SOURCE_DATE_EPOCH made no difference to the image"
    );
}

fn out_that_is_a_directory_or_in_a_missing_directory_fails(sink: &Sink) {
    let dir = scratch();
    std::fs::create_dir(dir.path().join(OUT)).unwrap();
    for flags in [&[][..], &["--force"]] {
        let out = sink.run(dir.path(), &args(flags, &[OUT]), &small_layer().tar());
        sink.assert_failed("OUT is a directory", &out, &[OUT, "directory"]);
        assert!(dir.path().join(OUT).is_dir(), "the directory is gone");
        assert_eq!(
            std::fs::read_dir(dir.path().join(OUT)).unwrap().count(),
            0,
            "something was written into the directory"
        );
        assert_no_temporary_files(dir.path());
    }
    let out = sink.run(dir.path(), &["missing/out.img"], &small_layer().tar());
    sink.assert_failed("OUT in a missing directory", &out, &["missing"]);
    assert!(!dir.path().join("missing").exists());
}

/// The image is built in a private temporary file, but ends up with the
/// mode any new file gets (0666 & ~umask), like the builder's own output.
fn the_image_gets_the_usual_file_mode(sink: &Sink) {
    let dir = scratch();
    std::fs::write(dir.path().join("in.tar"), small_layer().tar()).unwrap();
    let program = sink.program;
    let out = sh(dir.path(), &format!("umask 022; {program} {OUT} < in.tar"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = dir.path().join(OUT).metadata().unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o644, "mode {mode:o} of a new image under umask 022");
}

/// Each bad value: exit 2 at once, though stdin never ends, with one line
/// naming the option and everything it takes (the whole list, however
/// narrow the terminal); OUT is not created.
fn bad_option_values_are_refused_before_stdin_is_read(sink: &Sink) {
    for (bad, needles) in sink.bad_options {
        let what = bad.join(" ");
        let dir = scratch();
        let (child, _stdin) = start_on_open_stdin(sink, dir.path(), &with(bad, &[OUT]));
        let out = ends_soon(child, &what);
        sink.assert_failed(&what, &out, needles);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(!dir.path().join(OUT).exists(), "{what}: OUT was created");
    }
}

fn an_existing_out_is_refused_without_force(sink: &Sink) {
    let dir = scratch();
    let previous = sink.previous_image();
    let image = dir.path().join(OUT);
    std::fs::write(&image, &previous).unwrap();
    let inode = image.metadata().unwrap().ino();
    let (child, _stdin) = start_on_open_stdin(sink, dir.path(), &with(&[], &[OUT]));
    let out = ends_soon(child, "existing OUT");
    sink.assert_failed("existing OUT", &out, &[OUT, "exists", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_unchanged("existing OUT", &image, &previous, inode);
}

fn force_replaces_out_only_when_the_new_image_is_complete(sink: &Sink) {
    let dir = scratch();
    let previous = sink.previous_image();
    let image = dir.path().join(OUT);
    std::fs::write(&image, &previous).unwrap();
    let inode = image.metadata().unwrap().ino();
    let tar = rich_layer().tar();
    sink.build(dir.path(), &["--force", OUT], &tar);
    let fresh = scratch();
    let want = std::fs::read(sink.build(fresh.path(), &[OUT], &tar)).unwrap();
    assert!(
        std::fs::read(&image).unwrap() == want,
        "--force did not replace OUT"
    );
    assert_ne!(
        image.metadata().unwrap().ino(),
        inode,
        "OUT was rewritten in place"
    );
}

// ---------------------------------------------------------------------------
// What it prints.

/// `human_size` of the library: `35 B`, `4.0 KiB`.
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", units[unit]),
    }
}

fn stats_print_one_short_line_with_size_inodes_and_ratio(sink: &Sink) {
    let tar = rich_layer().tar();
    let long_dir = "a-directory-with-a-name-long-enough-to-push-the-line-past-eighty-columns";
    for (flag, out_path) in [
        ("--stats", OUT.to_owned()),
        ("-v", OUT.to_owned()),
        ("--stats", format!("{long_dir}/{OUT}")),
    ] {
        let dir = scratch();
        std::fs::create_dir_all(dir.path().join(long_dir)).unwrap();
        let out = sink.run(dir.path(), &[flag, &out_path], &tar);
        let err = stderr(&out);
        assert!(out.status.success(), "{flag}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{flag}: expected one line, got {err:?}");
        let line = lines[0];
        assert!(
            line.chars().count() <= 80,
            "{flag}: over 80 columns: {line:?}"
        );
        let image = dir.path().join(&out_path);
        // A path too long for the line gives way to OUT's file name.
        let size = image.metadata().unwrap().len();
        let inodes = (sink.inodes)(&image);
        // etc/config, bin/tool (and its link), bin/ping: the file data.
        let want = format!(
            "{}: {OUT}: {}, {inodes} inodes, 35 B of file data, ratio {:.2}",
            sink.program,
            human(size),
            35.0 / size as f64
        );
        assert_eq!(line, want, "{flag} {out_path}");
    }
}

/// Not at a terminal, `--progress always` still draws the line (what a
/// terminal would show, `\r` and all): it names OUT and the builder,
/// never the temporary image; what the builder prints never shows.
fn progress_shows_one_line_for_the_builder_phase_never_its_output(sink: &Sink) {
    let dir = scratch();
    let fake = sink.fake_writing(
        dir.path(),
        "echo 'BUILDER OUTPUT'; echo 'BUILDER ERROR' >&2; sleep 1.5",
    );
    let fake = fake.to_str().unwrap();
    let tar = small_layer().tar();
    let out = sink.run(
        dir.path(),
        &["--progress", "always", sink.tool_flag, fake, OUT],
        &tar,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = format!(
        "{}: building {OUT} with {}\u{2026} 1 s",
        sink.program, sink.builder
    );
    assert!(
        err.contains(&format!("\r{line}\x1b[K")),
        "no line {line:?} in {err:?}"
    );
    assert!(
        err.ends_with("\r\x1b[K"),
        "the line was not cleared: {err:?}"
    );
    for never in ["BUILDER", ".tmp-", "\n"] {
        assert!(!err.contains(never), "{never:?} in {err:?}");
    }
    for when in ["never", "auto"] {
        std::fs::remove_file(dir.path().join(OUT)).unwrap();
        let out = sink.run(
            dir.path(),
            &["--progress", when, sink.tool_flag, fake, OUT],
            &tar,
        );
        assert!(out.status.success(), "{when}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "",
            "--progress {when} with stderr not a terminal"
        );
    }
}

/// `--progress json`: a `building` event once the stream has ended, and a
/// `done` event once OUT is in place (a reader of the events finds it).
fn progress_json_ends_with_done_once_out_exists(sink: &Sink) {
    let dir = scratch();
    std::fs::write(dir.path().join("in.tar"), rich_layer().tar()).unwrap();
    let program = sink.program;
    let out = sh(
        dir.path(),
        &format!(
            "{program} --progress json {OUT} <in.tar 2> >(tee events | while read -r line; do \
               case $line in *'\"event\":\"done\"'*) test -f {OUT} && echo yes >out-existed;; esac; done)\n\
             wait"
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The reader runs on after the sink ends: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.path().join("out-existed").exists() {
        assert!(Instant::now() < deadline, "no done event saw OUT");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(dir.path().join("events")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["building", "done"], "{text}");
    assert!(text.lines().all(|l| l.starts_with("{\"event\":")), "{text}");
    let image = dir.path().join(OUT);
    let done = &events[1];
    assert_eq!(done["out"], OUT);
    assert_eq!(done["image_bytes"], image.metadata().unwrap().len());
    assert_eq!(done["inodes"], (sink.inodes)(&image));
    assert_eq!(done["data_bytes"], 35);
    assert_eq!(events[0]["builder"], sink.builder);
    assert_eq!(events[0]["entries"], done["entries"]);
}

/// At a terminal (tmux), with the default `--progress auto`: while the
/// builder works after the stream has ended, one line that counts the
/// seconds; once OUT is in place, nothing: the line is cleared.
fn a_terminal_sees_one_line_while_the_builder_works_then_nothing(sink: &Sink) {
    let dir = scratch();
    let fake = sink.fake_writing(dir.path(), "echo 'BUILDER OUTPUT'; sleep 2.5");
    std::fs::write(dir.path().join("in.tar"), small_layer().tar()).unwrap();
    let program = bin(sink.program);
    // The window's wrapper writes the sink's exit status to `status`.
    let script = format!(
        "{} {} {} {OUT} <in.tar",
        program.display(),
        sink.tool_flag,
        fake.display()
    );
    let tmux = Tmux::start(dir.path(), 100, &script);
    let raw = dir.path().join("raw.log");
    let screen = || tmux.screen(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<Vec<String>> = Vec::new();
    while !dir.path().join("status").exists() {
        assert!(Instant::now() < deadline, "{} did not end", sink.program);
        let now = screen();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = std::fs::read_to_string(dir.path().join("status")).unwrap();
    assert_eq!(status.trim(), "0", "{seen:#?}");
    let label = format!(
        "{}: building {OUT} with {}\u{2026}",
        sink.program, sink.builder
    );
    let drawn: Vec<&Vec<String>> = seen.iter().filter(|s| !s.is_empty()).collect();
    assert!(!drawn.is_empty(), "no line was drawn");
    for screen in &drawn {
        assert_eq!(screen.len(), 1, "more than one line: {seen:#?}");
        let seconds = screen[0]
            .strip_prefix(&format!("{label} "))
            .and_then(|s| s.strip_suffix(" s"));
        assert!(
            seconds.is_some_and(|s| s.parse::<u64>().is_ok()),
            "not the builder line: {:?}",
            screen[0]
        );
    }
    assert!(
        drawn.iter().any(|s| s[0].ends_with(" 2 s")),
        "the seconds did not move on: {seen:#?}"
    );
    assert!(screen().is_empty(), "the line stayed: {:?}", screen());
    assert!(dir.path().join(OUT).exists());
    let raw = std::fs::read_to_string(&raw).unwrap_or_default();
    assert!(
        !raw.contains("BUILDER") && !raw.contains(".tmp-"),
        "{raw:?}"
    );
}

/// Shell completions offer `--comp`'s values, as `--help` lists them.
fn completions_offer_every_compressor(sink: &Sink) {
    let listed = sink.compressors.join(" ");
    for shell in ["bash", "zsh"] {
        let out = Command::new(bin(sink.program))
            .args(["--generate", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains(&listed),
            "{shell}: no {listed:?} in:\n{script}"
        );
    }
    let help = Command::new(bin(sink.program))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let values = format!("[possible values: {}]", sink.compressors.join(", "));
    let joined = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(joined.contains(&values), "--help lacks {values}:\n{help}");
}
