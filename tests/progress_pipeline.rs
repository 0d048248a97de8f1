//! Progress through a whole pipeline, on a real terminal (tmux): `oci-fetch
//! --store` draws its downloads on one line and clears it before the list
//! is printed, so that `oci-merge`, which starts on that list, draws its
//! own: never two lines at once, and at the end the `--stats` summary
//! alone, within 80 columns. For programs, `--progress=json` events. And
//! the ETA follows the rate of the last seconds, not the run's average.
//!
//! Downloads go through `registry-proxy --rate` (1 MB/s) from a real
//! `docker-registry` holding the sample image and the sample plus a 6 MiB
//! noise layer (`big:1`).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::registry::{Proxy, Registry};
use support::terminal::{watch, Watched};
use support::{stderr, Scratch};
use testkit::{noise, Layer};

/// The rate (bytes a second) downloads get through the proxy.
const THROTTLE: &str = "1000000";

/// The progress lines of a screen.
fn progress_lines(screen: &[String]) -> Vec<&String> {
    screen
        .iter()
        .filter(|l| l.starts_with("oci-fetch: blobs ") || l.starts_with("oci-merge: layer "))
        .collect()
}

/// The ETA a progress line shows (`ETA 7s`, `ETA 1m05s`), if any.
fn eta_of(line: &str) -> Option<Duration> {
    let text = line.rsplit_once(" ETA ")?.1.trim();
    let (minutes, seconds) = match text.split_once('m') {
        Some((minutes, seconds)) => (minutes.parse::<u64>().ok()?, seconds),
        None => (0, text),
    };
    let seconds: u64 = seconds.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs(minutes * 60 + seconds))
}

/// The ETA shown nearest `fraction` of the time the lines starting with
/// `prefix` were drawn, and when.
fn eta_near(watched: &Watched, prefix: &str, fraction: f64) -> (Duration, Duration) {
    let drawn: Vec<(Duration, Duration)> = watched
        .screens
        .iter()
        .zip(&watched.seen_at)
        .filter_map(|(screen, at)| {
            let line = screen.iter().find(|l| l.starts_with(prefix))?;
            Some((*at, eta_of(line)?))
        })
        .collect();
    let (first, last) = (drawn.first().unwrap().0, drawn.last().unwrap().0);
    let target = first.as_secs_f64() + (last - first).as_secs_f64() * fraction;
    *drawn
        .iter()
        .min_by(|a, b| {
            let distance = |at: Duration| (at.as_secs_f64() - target).abs();
            distance(a.0).total_cmp(&distance(b.0))
        })
        .unwrap()
}

/// Every screen held at most one progress line, and nothing else while
/// one was drawn; none wrapped in a `columns`-wide window.
fn assert_one_line_at_a_time(watched: &Watched, columns: usize) {
    for screen in &watched.screens {
        let lines = progress_lines(screen);
        assert!(
            lines.len() <= 1 && (lines.is_empty() || screen.len() == 1),
            "more than one line: {screen:#?}"
        );
        for line in lines {
            let drawn = line.trim_end().chars().count();
            assert!(drawn < columns, "wider than the window: {line:?}");
        }
    }
}

/// The final screen is the summary alone, at most 80 columns, and only its
/// newline reached the terminal: every line before it was redrawn in
/// place and cleared.
fn assert_only_the_summary(watched: &Watched) {
    assert_eq!(watched.status.trim(), "0", "{:#?}", watched.last);
    assert_eq!(watched.last.len(), 1, "stray lines: {:#?}", watched.last);
    let summary = &watched.last[0];
    assert!(summary.starts_with("oci-merge: 4 layers, "), "{summary:?}");
    assert!(
        summary.chars().count() <= 80,
        "over 80 columns: {summary:?}"
    );
    assert_eq!(watched.raw.matches('\n').count(), 1, "{:?}", watched.raw);
}

#[test]
fn a_store_fetch_draws_its_downloads_then_the_merge_draws_never_both() {
    let registry = Registry::with_sample_and_big();
    let proxy = Proxy::start(&registry.host(), &["--rate", THROTTLE]);
    let scratch = Scratch::new();
    // The reader takes the tar slowly (256 KiB every 50 ms), as a slow
    // image builder would: the merge runs long enough to draw.
    let slow_reader = "while [ \"$(dd bs=256K count=1 iflag=fullblock status=none \
                       | tee -a out.tar | wc -c)\" -gt 0 ]; do sleep 0.05; done";
    let script = format!(
        "oci-fetch --store store {}/big:1 | oci-merge --stats | {slow_reader}",
        proxy.host()
    );
    let watched = watch(scratch.0.path(), 100, &script);
    assert_one_line_at_a_time(&watched, 100);
    let first_with = |prefix: &str| {
        watched
            .screens
            .iter()
            .position(|s| progress_lines(s).iter().any(|l| l.starts_with(prefix)))
    };
    let last_download = watched.screens.iter().rposition(|s| {
        progress_lines(s)
            .iter()
            .any(|l| l.starts_with("oci-fetch: "))
    });
    let first_download = first_with("oci-fetch: blobs ").expect("no download line");
    let first_merge = first_with("oci-merge: layer ").expect("no merge line");
    assert!(
        first_download < first_merge && last_download < Some(first_merge),
        "the merge's line came before the downloads ended: {:#?}",
        watched.screens
    );
    let downloading = progress_lines(&watched.screens[first_download])[0].clone();
    assert!(
        downloading.contains("/4 [") && downloading.contains(" ETA "),
        "{downloading:?}"
    );
    assert_only_the_summary(&watched);
}

/// The blobs a `--store` list names, by hex digest, with their sizes.
fn listed_blobs(dir: &Path, list: &str) -> Vec<(String, u64)> {
    list.lines()
        .map(|line| {
            let path = dir.join(line.split('\t').next().unwrap());
            let hex = path.file_name().unwrap().to_string_lossy().into_owned();
            (hex, std::fs::metadata(&path).unwrap().len())
        })
        .collect()
}

/// Runs `oci-fetch ARGS` in `dir`: its stdout, and its stderr as JSON
/// events (every line must be one).
fn fetch_events(dir: &Path, args: &[&str]) -> (String, Vec<Value>) {
    let out = Command::new(support::bin("oci-fetch"))
        .current_dir(dir)
        .env("TMPDIR", dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let events = stderr(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    (String::from_utf8(out.stdout).unwrap(), events)
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

#[test]
fn json_events_count_the_downloads_and_end_with_done() {
    let registry = Registry::with_sample_and_big();
    let scratch = Scratch::new();
    let dir = scratch.0.path();
    let reference = format!("{}/big:1", registry.host());
    let args = ["--store", "store", "--progress=json", reference.as_str()];
    let (list, events) = fetch_events(dir, &args);
    let blobs = listed_blobs(dir, &list);
    let bytes: u64 = blobs.iter().map(|(_, size)| size).sum();
    assert_eq!(blobs.len(), 4);

    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{events:#?}");
    assert_eq!((&done["blobs"], &done["fetched"]), (&4.into(), &4.into()));
    assert_eq!(done["bytes"], bytes);
    assert!(done["elapsed_ms"].is_u64());
    let mut stored: Vec<(String, u64)> = named(&events, "blob")
        .iter()
        .map(|e| {
            assert_eq!(e["fetched"], true, "{e}");
            let digest = e["digest"].as_str().unwrap();
            let hex = digest.strip_prefix("sha256:").unwrap().to_owned();
            (hex, e["size"].as_u64().unwrap())
        })
        .collect();
    stored.sort();
    let mut expected = blobs.clone();
    expected.sort();
    assert_eq!(stored, expected);
    let counts = named(&events, "download");
    let done_bytes: Vec<u64> = counts
        .iter()
        .map(|e| e["bytes_done"].as_u64().unwrap())
        .collect();
    assert!(
        done_bytes.windows(2).all(|w| w[0] <= w[1]),
        "{done_bytes:?}"
    );
    let last = counts.last().unwrap();
    assert_eq!(
        (&last["blobs_done"], &last["bytes_done"]),
        (&4.into(), &bytes.into())
    );
    assert!(counts
        .iter()
        .all(|e| e["blobs"] == 4 && e["bytes"] == bytes));

    // Again: everything is in the store, nothing is fetched.
    let (_, again) = fetch_events(dir, &args);
    assert_eq!(again.last().unwrap()["fetched"], 0, "{again:#?}");
    assert!(named(&again, "blob").iter().all(|e| e["fetched"] == false));

    // Streaming: the merge has the bytes; oci-fetch only says it is done.
    let (_, streamed) = fetch_events(dir, &["--progress=json", "--json", reference.as_str()]);
    assert_eq!(streamed.len(), 1, "{streamed:#?}");
    assert_eq!(streamed[0]["event"], "done");
}

/// A merge whose top layer (16 MiB, a local file) is read at once and
/// whose base (10 MiB) trickles through a named pipe at 1 MiB/s: an
/// average over the run keeps the start's rate and shows an ETA low and
/// flat; the last seconds' rate gives one that falls with the time left.
#[test]
fn the_merge_eta_falls_with_the_time_left_after_a_fast_start() {
    let scratch = Scratch::new();
    let top = Layer::new().file("top", &noise(3, 16 << 20)).tar();
    let base = Layer::new().file("base", &noise(4, 10 << 20)).tar();
    scratch.write("top.tar", &top);
    scratch.write("base.tar", &base);
    let fifo = scratch.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let list = format!(
        "{}\tsize={}\n{}\n",
        fifo.display(),
        base.len(),
        scratch.path("top.tar").display()
    );
    scratch.write("list", list.as_bytes());
    let pieces = base.len().div_ceil(256 << 10);
    let script = format!(
        "for ((i = 0; i < {pieces}; i++)); do dd if=base.tar bs=256K skip=$i count=1 status=none; sleep 0.25; done > fifo &\n\
         oci-merge < list > out.tar"
    );
    let watched = watch(scratch.0.path(), 120, &script);
    assert_eq!(watched.status.trim(), "0");
    let (early_at, early) = eta_near(&watched, "oci-merge: layer ", 0.4);
    let (late_at, late) = eta_near(&watched, "oci-merge: layer ", 0.8);
    eprintln!("ETA {early:?} at {early_at:?}, {late:?} at {late_at:?}");
    assert!(
        early > late * 2,
        "ETA {early:?} at {early_at:?}, {late:?} at {late_at:?}: {:#?}",
        watched.screens
    );
}

/// The download line's ETA, after blobs already in the store were counted
/// at once (the sample's layers, fetched before): the big layer then
/// arrives at 500 kB/s, and the ETA falls with the time left.
#[test]
fn the_download_eta_falls_with_the_time_left_after_stored_blobs() {
    let registry = Registry::with_sample_and_big();
    let proxy = Proxy::start(&registry.host(), &["--rate", "500000"]);
    let scratch = Scratch::new();
    let dir = scratch.0.path();
    let sample = format!("{}/sample:1", registry.host());
    fetch_events(
        dir,
        &["--store", "store", "--progress=never", sample.as_str()],
    );
    let script = format!("oci-fetch --store store {}/big:1 > list", proxy.host());
    let watched = watch(dir, 120, &script);
    assert_eq!(watched.status.trim(), "0");
    assert_one_line_at_a_time(&watched, 120);
    let (early_at, early) = eta_near(&watched, "oci-fetch: blobs ", 0.4);
    let (late_at, late) = eta_near(&watched, "oci-fetch: blobs ", 0.8);
    eprintln!("ETA {early:?} at {early_at:?}, {late:?} at {late_at:?}");
    assert!(
        early > late * 2,
        "ETA {early:?} at {early_at:?}, {late:?} at {late_at:?}: {:#?}",
        watched.screens
    );
    assert!(watched.last.is_empty(), "not cleared: {:#?}", watched.last);
}
