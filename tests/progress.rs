//! `oci-merge --progress`: what a person sees on a real terminal (a
//! pseudo-terminal driven by tmux, its screen captured and its raw output
//! recorded) and what a program reads (`--progress=json`), and that nothing
//! is shown when stderr is not a terminal unless asked.
//!
//! Merges of the small sample image end before the line would appear, so
//! each test adds a top layer of 12 MiB that a shell loop feeds into a named
//! pipe, 256 KiB every 40 ms (about two seconds), listed with `size=N` as
//! `oci-fetch` lists its pipes: the line is drawn and redrawn many times.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use support::fixtures::sample_layout;
use support::terminal::{watch, Watched};
use support::{bin, sh, stderr, Scratch};
use testkit::{noise, Layer};

/// Bytes of the slow top layer, and the piece the feeding loop writes.
const SLOW_LAYER: usize = 12 << 20;
const PIECE: usize = 256 << 10;

/// A scratch directory holding the slow layer (`slow.tar`), the named pipe
/// it is fed through (`fifo`), the layer list (`list`: the sample image's
/// layers, then the pipe) and `feed`, a script that feeds the pipe slowly.
struct Setup {
    scratch: Scratch,
    /// Every layer's stored size, base first.
    sizes: Vec<u64>,
}

impl Setup {
    fn new() -> Setup {
        let scratch = Scratch::new();
        let layout = sample_layout();
        let out = Command::new(bin("oci-layers"))
            .arg(&layout)
            .output()
            .unwrap();
        assert!(out.status.success(), "oci-layers: {}", stderr(&out));
        let mut list = String::from_utf8(out.stdout).unwrap();
        let mut sizes: Vec<u64> = list
            .lines()
            .map(|line| std::fs::metadata(line).unwrap().len())
            .collect();
        let slow = Layer::new()
            .dir("big")
            .file("big/noise", &noise(7, SLOW_LAYER - 3 * 512))
            .tar();
        scratch.write("slow.tar", &slow);
        let fifo = scratch.path("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo failed");
        list.push_str(&format!("{}\tsize={}\n", fifo.display(), slow.len()));
        sizes.push(slow.len() as u64);
        scratch.write("list", list.as_bytes());
        let pieces = slow.len().div_ceil(PIECE);
        scratch.write(
            "feed",
            format!(
                "for ((i = 0; i < {pieces}; i++)); do\n\
                 \x20   dd if=slow.tar bs={PIECE} skip=$i count=1 status=none\n\
                 \x20   sleep 0.04\n\
                 done > fifo\n"
            )
            .as_bytes(),
        );
        Setup { scratch, sizes }
    }

    fn dir(&self) -> &Path {
        self.scratch.0.path()
    }

    fn total(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// Runs `oci-merge FLAGS < list > out.tar` while the pipe is fed, stderr
    /// captured (so not a terminal).
    fn merge(&self, flags: &str) -> Output {
        sh(
            self.dir(),
            &format!("bash feed & oci-merge {flags} < list > out.tar; wait"),
        )
    }
}

// ---------------------------------------------------------------------------
// Not a terminal.

#[test]
fn without_a_terminal_nothing_is_drawn() {
    let setup = Setup::new();
    let out = setup.merge("");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "progress on a non-terminal");
}

#[test]
fn without_a_terminal_stats_print_one_line() {
    let setup = Setup::new();
    let out = setup.merge("--stats");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_summary(err.trim_end());
}

/// Asked for, the line is drawn on whatever stderr is, redrawn in place and
/// cleared at the end.
#[test]
fn without_a_terminal_always_draws_the_line() {
    let setup = Setup::new();
    let out = setup.merge("--progress=always");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.matches("oci-merge: layer 4/4 [").count() >= 2,
        "{err:?}"
    );
    assert!(err.contains(" ETA "), "{err:?}");
    assert!(
        !err.contains('\n'),
        "scrolled, not redrawn in place: {err:?}"
    );
    assert!(
        err.ends_with("\r\x1b[2K"),
        "not cleared at the end: {err:?}"
    );
}

#[test]
fn json_events_carry_the_documented_fields() {
    let setup = Setup::new();
    let out = setup.merge("--progress=json");
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<Value> = stderr(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    let name = |e: &Value| e["event"].as_str().unwrap().to_owned();
    let total = setup.total();
    let layers = setup.sizes.len() as u64;

    // Layers are read newest first, and numbered base first from 1.
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| name(e) == "layer_started")
        .collect();
    let numbers: Vec<u64> = started
        .iter()
        .map(|e| e["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    for e in &started {
        let index = e["layer"].as_u64().unwrap() as usize - 1;
        assert_eq!(e["layers"], layers, "{e}");
        assert_eq!(e["size"], setup.sizes[index], "{e}");
        assert!(e["path"].is_string(), "{e}");
        assert!(e["offset"].is_null(), "{e}");
        if index < 3 {
            assert!(e["digest"].as_str().unwrap().starts_with("sha256:"), "{e}");
        } else {
            assert!(e["digest"].is_null(), "{e}");
        }
    }

    // Bytes read: several updates over the slow layer, never decreasing,
    // ending at the total.
    let bytes: Vec<&Value> = events.iter().filter(|e| name(e) == "bytes").collect();
    assert!(bytes.len() >= 3, "too few bytes events: {bytes:?}");
    let read: Vec<u64> = bytes.iter().map(|e| e["read"].as_u64().unwrap()).collect();
    assert!(read.windows(2).all(|w| w[0] < w[1]), "{read:?}");
    assert_eq!(*read.last().unwrap(), total);
    assert!(bytes.iter().all(|e| e["total"] == total), "{bytes:?}");

    // Each layer finishes after it starts, with its own size.
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| name(e) == "layer_finished")
        .collect();
    assert_eq!(finished.len(), 4);
    for e in &finished {
        let layer = e["layer"].as_u64().unwrap();
        let index = layer as usize - 1;
        assert_eq!(e["stored_bytes"], setup.sizes[index], "{e}");
        assert_eq!(e["layers"], layers, "{e}");
        assert!(e["members_read"].as_u64().unwrap() > 0, "{e}");
        assert!(e["entries_written"].is_u64(), "{e}");
        let position = |event: &str| {
            events
                .iter()
                .position(|x| name(x) == event && x["layer"] == layer)
                .unwrap()
        };
        assert!(position("layer_started") < position("layer_finished"));
    }

    // Done, last, with the totals.
    let done = events.last().unwrap();
    assert_eq!(name(done), "done", "{done}");
    assert_eq!(done["layers"], layers);
    assert_eq!(done["stored_bytes"], total);
    let written = std::fs::metadata(setup.dir().join("out.tar"))
        .unwrap()
        .len();
    assert_eq!(done["bytes_written"], written);
    for field in [
        "members_read",
        "entries_written",
        "paths",
        "warnings",
        "elapsed_ms",
    ] {
        assert!(done[field].is_u64(), "{field}: {done}");
    }
    // At most four bytes events a second (and the last one).
    let seconds = done["elapsed_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!(
        bytes.len() as f64 <= seconds * 4.0 + 2.0,
        "{} bytes events in {seconds} s",
        bytes.len()
    );

    // --help documents every event and field.
    let help = Command::new(bin("oci-merge"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for word in [
        "layer_started",
        "bytes",
        "layer_finished",
        "done",
        "offset",
        "digest",
        "size",
        "read",
        "total",
        "stored_bytes",
        "members_read",
        "entries_written",
        "bytes_written",
        "paths",
        "warnings",
        "elapsed_ms",
    ] {
        assert!(help.contains(word), "--help does not mention {word}");
    }
}

// ---------------------------------------------------------------------------
// A terminal.

/// The `--stats` line: one line of at most 80 columns.
fn assert_summary(line: &str) {
    let rest = line
        .strip_prefix("oci-merge: 4 layers, ")
        .unwrap_or_else(|| panic!("not the summary: {line:?}"));
    assert!(
        rest.contains(" MiB in ") && rest.contains(" entries"),
        "not the summary: {line:?}"
    );
    assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
}

/// The progress line, as it was seen: one line (never two, never scrolled),
/// redrawn in place at least twice, with what it promises.
fn assert_drawn_in_place(watched: &Watched) {
    let drawn: Vec<&String> = watched
        .screens
        .iter()
        .filter_map(|screen| {
            let bars: Vec<&String> = screen
                .iter()
                .filter(|l| l.contains("oci-merge: layer"))
                .collect();
            assert!(
                bars.len() <= 1 && screen.len() <= 1,
                "more than the one line: {screen:#?}"
            );
            bars.first().copied()
        })
        .collect();
    assert!(
        drawn.len() >= 2,
        "the line was not redrawn: {:#?}",
        watched.screens
    );
    for line in &drawn {
        assert!(
            line.starts_with("oci-merge: layer ")
                && line.contains("/4 [")
                && line.contains(" MiB/s ")
                && line.contains(" ETA "),
            "{line:?}"
        );
    }
    // Only the summary's newline ever reached the terminal: the line was
    // redrawn, never scrolled.
    assert_eq!(
        watched.raw.matches('\n').count(),
        1,
        "raw output: {:?}",
        watched.raw
    );
}

/// Prints a screen from the middle of the run and the last one (seen with
/// `--no-capture`).
fn show(watched: &Watched) {
    let drawn: Vec<&Vec<String>> = watched.screens.iter().filter(|s| !s.is_empty()).collect();
    if let Some(screen) = drawn.get(drawn.len() / 2) {
        eprintln!("while merging:\n{}", screen.join("\n"));
    }
    eprintln!("at the end:\n{}", watched.last.join("\n"));
}

/// The final screen: the summary line alone, no escape sequence left.
fn assert_only_the_summary(watched: &Watched) {
    assert_eq!(watched.status.trim(), "0", "{:#?}", watched.last);
    assert_eq!(watched.last.len(), 1, "stray lines: {:#?}", watched.last);
    assert_summary(&watched.last[0]);
    assert_eq!(watched.last_with_escapes, watched.last);
    // After the line was cleared, the terminal got the summary and nothing
    // else.
    let after = watched.raw.rsplit("\x1b[2K").next().unwrap();
    assert!(
        after.starts_with("oci-merge: 4 layers, ") && after.ends_with(" paths\r\n"),
        "after the last clear: {after:?}"
    );
    assert!(!after.contains('\x1b'), "{after:?}");
}

#[test]
fn a_terminal_sees_one_line_redrawn_then_only_the_summary() {
    let setup = Setup::new();
    let watched = watch(
        setup.dir(),
        120,
        "bash feed & cat list | oci-merge --stats > out.tar",
    );
    assert_drawn_in_place(&watched);
    assert_only_the_summary(&watched);
    show(&watched);
}

#[test]
fn the_pipeline_to_squashfs_shows_one_line_then_only_the_summary() {
    let setup = Setup::new();
    let layout = sample_layout();
    let watched = watch(
        setup.dir(),
        120,
        &format!(
            "bash feed & {{ oci-layers {}; tail -n 1 list; }} | oci-merge --stats | tar2sqfs out.sqfs",
            layout.display()
        ),
    );
    assert_drawn_in_place(&watched);
    assert_only_the_summary(&watched);
    assert!(setup.dir().join("out.sqfs").exists());
    show(&watched);
}

#[test]
fn a_terminal_sees_nothing_with_progress_never() {
    let setup = Setup::new();
    let watched = watch(
        setup.dir(),
        120,
        "bash feed & cat list | oci-merge --progress=never > out.tar",
    );
    assert_eq!(watched.status.trim(), "0");
    assert!(
        watched.screens.iter().all(Vec::is_empty) && watched.last.is_empty(),
        "{watched:#?}"
    );
    assert_eq!(watched.raw, "");
}

#[test]
fn a_failed_merge_clears_the_line_for_its_error() {
    let setup = Setup::new();
    // The pipe ends a piece short of the size the list declares.
    let script = "sed -i 's/i < \\([0-9]*\\)/i < \\1 - 1/' feed\n\
                  bash feed & cat list | oci-merge > out.tar";
    let watched = watch(setup.dir(), 120, script);
    assert_ne!(watched.status.trim(), "0");
    assert_eq!(watched.last.len(), 1, "stray lines: {:#?}", watched.last);
    let error = &watched.last[0];
    assert!(
        error.starts_with("oci-merge: error: layer 4/4 (")
            && error.contains("truncated: the layer ends after"),
        "{error:?}"
    );
    assert_eq!(watched.last_with_escapes, watched.last);
}
