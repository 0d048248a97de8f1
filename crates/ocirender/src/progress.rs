//! Progress of a merge on stderr: one line redrawn in place for a person
//! at a terminal, or one JSON object a line for a program driving the
//! pipeline.
//!
//! The hot path only counts: each layer's reader thread adds the size of
//! every stored chunk it reads (256 KiB) to a [`ByteCounter`], one relaxed
//! atomic add. A reporter thread of its own samples the counter and
//! redraws the line at most ten times a second (the JSON `bytes` event four
//! times a second), so a merge without progress, or with it, does the same
//! work. Layer events come from the merging thread as it moves from layer
//! to layer.
//!
//! The JSON events, one object a line (see `oci-merge --help` for the
//! fields):
//!
//! ```text
//! {"event":"layer_started","digest":"sha256:...","layer":2,"layers":2,"offset":null,"path":"...","size":1234}
//! {"event":"bytes","read":1234,"total":5678}
//! {"event":"layer_finished","entries_written":7,"layer":2,"layers":2,"members_read":9,"stored_bytes":1234}
//! {"event":"done","bytes_written":10240,"elapsed_ms":41,"entries_written":18,"layers":2,"members_read":20,"paths":17,"stored_bytes":5678,"warnings":0}
//! ```

use crate::blob::layer_ref::LayerRef;
use crate::merge::MergeStats;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stored (compressed) bytes read so far, shared by the reader threads of
/// every layer and the reporter.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Counts `n` more bytes.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One line on stderr, redrawn in place (drawn whether or not stderr is
    /// a terminal: the caller decides).
    Line,
    /// One JSON object a line on stderr.
    Json,
}

/// Redraws of the line, at most.
const LINE_INTERVAL: Duration = Duration::from_millis(100);
/// `bytes` events, at most.
const JSON_INTERVAL: Duration = Duration::from_millis(250);
/// The line appears only once a merge has run this long, so that quick
/// merges do not flash a bar.
const LINE_DELAY: Duration = Duration::from_millis(300);

/// What a finished layer contributed.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerDone {
    /// Its bytes as stored (compressed).
    pub stored_bytes: u64,
    /// Its tar members.
    pub members_read: u64,
    /// Entries written to the output while it was read (directories are
    /// written at the very end).
    pub entries_written: u64,
}

/// The progress of one merge, shown on stderr until [`Progress::finish`]
/// (or until dropped, when the merge failed: the line is cleared so that
/// the error is printed on a clean line).
pub struct Progress {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    reporter: Option<JoinHandle<()>>,
}

struct Shared {
    counter: ByteCounter,
    /// Each layer's stored size, when known before reading it.
    sizes: Vec<Option<u64>>,
    /// The sum of `sizes`, when every one is known.
    total: Option<u64>,
    started: Instant,
    output: Output,
}

enum Output {
    Line(ProgressBar),
    Json {
        /// The `read` of the last `bytes` event, so unchanged counts are
        /// not repeated; also keeps the reporter's and the final event in
        /// order.
        last_read: std::sync::Mutex<Option<u64>>,
    },
}

impl Progress {
    /// Starts showing the progress of merging `layers` (base first) as
    /// `style`; `program` names the line.
    pub fn start(program: &str, style: Style, layers: &[LayerRef]) -> Progress {
        let sizes: Vec<Option<u64>> = layers.iter().map(LayerRef::stored_size).collect();
        let total = sizes.iter().copied().sum::<Option<u64>>();
        let output = match style {
            Style::Line => {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden())
                    .with_style(line_style(total.is_some()))
                    .with_prefix(format!(
                        "{program}: layer {}/{}",
                        layers.len(),
                        layers.len()
                    ));
                Output::Line(bar)
            }
            Style::Json => Output::Json {
                last_read: std::sync::Mutex::new(None),
            },
        };
        let shared = Arc::new(Shared {
            counter: ByteCounter::default(),
            sizes,
            total,
            started: Instant::now(),
            output,
        });
        let (stop, stopped) = bounded::<()>(0);
        let for_reporter = Arc::clone(&shared);
        let reporter = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let interval = match for_reporter.output {
                    Output::Line(_) => LINE_INTERVAL,
                    Output::Json { .. } => JSON_INTERVAL,
                };
                let mut drawing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if !drawing && for_reporter.started.elapsed() >= LINE_DELAY {
                        drawing = true;
                        if let Output::Line(bar) = &for_reporter.output {
                            bar.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                                Box::new(console_stderr()),
                                10,
                            ));
                        }
                    }
                    for_reporter.report_bytes();
                }
            })
            .ok();
        Progress {
            shared,
            stop: reporter.is_some().then_some(stop),
            reporter,
        }
    }

    /// The counter the layers' reader threads add to.
    pub fn counter(&self) -> &ByteCounter {
        &self.shared.counter
    }

    /// The merge starts reading layer `index` (base first, from zero).
    pub fn layer_started(&self, index: u32, layer: &LayerRef) {
        let layers = self.shared.sizes.len();
        match &self.shared.output {
            Output::Line(bar) => bar.set_prefix(replace_layer(&bar.prefix(), index, layers)),
            Output::Json { .. } => emit(
                "layer_started",
                json!({
                "layer": index + 1,
                "layers": layers,
                "path": layer.path.to_string_lossy(),
                "offset": layer.range.map(|(offset, _)| offset),
                "digest": layer.digest.as_ref().map(ToString::to_string),
                "size": self.shared.sizes[index as usize],
                }),
            ),
        }
    }

    /// The merge is done with layer `index`.
    pub fn layer_finished(&self, index: u32, done: LayerDone) {
        if let Output::Json { .. } = self.shared.output {
            emit(
                "layer_finished",
                json!({
                "layer": index + 1,
                "layers": self.shared.sizes.len(),
                "stored_bytes": done.stored_bytes,
                "members_read": done.members_read,
                "entries_written": done.entries_written,
                }),
            );
        }
    }

    /// Runs `f` (which prints a message) with the line out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.shared.output {
            Output::Line(bar) => bar.suspend(f),
            Output::Json { .. } => f(),
        }
    }

    /// Ends the progress of a successful merge: the line is cleared (the
    /// caller may print a summary in its place); JSON gets its last
    /// `bytes` event and `done`.
    pub fn finish(mut self, stats: &MergeStats) {
        self.stop_reporter();
        match &self.shared.output {
            Output::Line(bar) => bar.finish_and_clear(),
            Output::Json { .. } => {
                self.shared.report_bytes();
                emit(
                    "done",
                    json!({
                    "layers": stats.layers,
                    "stored_bytes": stats.stored_bytes_read,
                    "members_read": stats.members_read,
                    "entries_written": stats.entries_written,
                    "bytes_written": stats.bytes_written,
                    "paths": stats.paths,
                    "warnings": stats.warnings,
                    "elapsed_ms": self.shared.started.elapsed().as_millis() as u64,
                    }),
                );
            }
        }
    }

    fn stop_reporter(&mut self) {
        drop(self.stop.take());
        if let Some(reporter) = self.reporter.take() {
            let _ = reporter.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_reporter();
        if let Output::Line(bar) = &self.shared.output {
            bar.finish_and_clear();
        }
    }
}

impl Shared {
    /// Brings the line up to date, or emits a `bytes` event if the count
    /// changed.
    fn report_bytes(&self) {
        let read = self.counter.get();
        match &self.output {
            // One redraw either way: with the new count, or with the time
            // and ETA moved on while the count stood still.
            Output::Line(bar) if bar.position() != read => bar.set_position(read),
            Output::Line(bar) => bar.tick(),
            Output::Json { last_read } => {
                let mut last = last_read.lock().unwrap_or_else(|e| e.into_inner());
                if *last != Some(read) {
                    *last = Some(read);
                    emit("bytes", json!({ "read": read, "total": self.total }));
                }
            }
        }
    }
}

/// The one-line summary of a finished merge (`oci-merge --stats`), which
/// takes the progress line's place.
pub fn summary(stats: &MergeStats, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = stats.stored_bytes_read as f64 / seconds.max(0.001);
    format!(
        "{} layers, {} read in {seconds:.1} s ({}/s): {} members read, {} entries written ({}), {} paths, {} warnings",
        stats.layers,
        HumanBytes(stats.stored_bytes_read),
        HumanBytes(rate as u64),
        stats.members_read,
        stats.entries_written,
        HumanBytes(stats.bytes_written),
        stats.paths,
        stats.warnings,
    )
}

/// The line: with a known total, a bar, the bytes read of the total,
/// throughput, elapsed time and ETA; without one, a spinner, bytes,
/// throughput and elapsed time.
fn line_style(total_known: bool) -> ProgressStyle {
    let (template, fallback) = if total_known {
        (
            "{prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {elapsed} ETA {eta}",
            ProgressStyle::default_bar(),
        )
    } else {
        (
            "{prefix} {spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
            ProgressStyle::default_spinner(),
        )
    };
    ProgressStyle::with_template(template)
        .unwrap_or(fallback)
        .progress_chars("=> ")
}

/// `PROGRAM: layer K/N` with K for layer `index`.
fn replace_layer(prefix: &str, index: u32, layers: usize) -> String {
    let program = prefix.rsplit_once(": layer ").map_or(prefix, |(p, _)| p);
    format!("{program}: layer {}/{layers}", index + 1)
}

/// Stderr for the line, whether or not it is a terminal (the caller
/// decided that a line is wanted); 80 columns when it cannot tell.
fn console_stderr() -> console::Term {
    console::Term::buffered_stderr()
}

/// Writes one JSON event as one line, in one write.
fn emit(event: &str, fields: Value) {
    let line = event_line(event, &fields);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `{"event":EVENT,...fields}` and a newline: the event's name first, for
/// people reading along.
fn event_line(event: &str, fields: &Value) -> String {
    let fields = fields.to_string();
    let rest = fields.strip_prefix('{').unwrap_or("}");
    let comma = if rest == "}" { "" } else { "," };
    format!("{{\"event\":{}{comma}{rest}\n", Value::from(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_names_the_layer_being_merged() {
        assert_eq!(
            replace_layer("oci-merge: layer 3/3", 0, 3),
            "oci-merge: layer 1/3"
        );
        assert_eq!(replace_layer("x: layer 1/12", 10, 12), "x: layer 11/12");
    }

    #[test]
    fn the_total_is_known_only_when_every_size_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer");
        std::fs::write(&file, [0u8; 100]).unwrap();
        let mut piped = LayerRef::file(dir.path().join("pipe"));
        let known = [LayerRef::file(&file), LayerRef::file(&file)];
        let progress = Progress::start("t", Style::Json, &known);
        assert_eq!(progress.shared.total, Some(200));
        drop(progress);
        let progress = Progress::start("t", Style::Json, &[LayerRef::file(&file), piped.clone()]);
        assert_eq!(progress.shared.total, None);
        drop(progress);
        piped.size = Some(50);
        let progress = Progress::start("t", Style::Json, &[LayerRef::file(&file), piped]);
        assert_eq!(progress.shared.total, Some(150));
    }

    #[test]
    fn events_are_one_object_a_line_named_first() {
        let line = event_line("bytes", &json!({ "total": null, "read": 5 }));
        assert_eq!(line, "{\"event\":\"bytes\",\"read\":5,\"total\":null}\n");
        assert_eq!(event_line("x", &json!({})), "{\"event\":\"x\"}\n");
    }

    #[test]
    fn the_summary_is_one_line_in_human_units() {
        let stats = MergeStats {
            layers: 3,
            members_read: 169,
            entries_written: 40,
            bytes_written: 6_140_928,
            stored_bytes_read: 3_915_705,
            warnings: 0,
            paths: 107,
        };
        assert_eq!(
            summary(&stats, Duration::from_millis(2000)),
            "3 layers, 3.73 MiB read in 2.0 s (1.87 MiB/s): 169 members read, 40 entries written (5.86 MiB), 107 paths, 0 warnings"
        );
    }

    #[test]
    fn counters_are_shared() {
        let counter = ByteCounter::default();
        let other = counter.clone();
        other.add(5);
        counter.add(7);
        assert_eq!(counter.get(), 12);
    }
}
