//! A merge's progress on stderr: one line redrawn in place for a person
//! at a terminal, or one JSON object a line for a program driving the
//! pipeline; an [`Observer`] of the library's events.
//!
//! The merge's reader threads only count ([`ByteCounter`]); a reporter
//! thread of this module samples the count and redraws the line at most
//! ten times a second (the JSON `bytes` event four times a second), so a
//! merge without progress, or with it, does the same work. Layer events
//! come from the merging thread as it moves from layer to layer.
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

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocirender::layer::LayerRef;
use ocirender::progress::{ByteCounter, Event, MergeStats, Observer};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// The progress of one merge, shown on stderr from the merge's start
/// until its `Done` (or until dropped, when the merge failed: the line is
/// cleared so that the error is printed on a clean line).
pub struct Progress {
    program: String,
    style: Style,
    started: Instant,
    running: Mutex<Option<Running>>,
}

/// What exists once the merge has started.
struct Running {
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
        last_read: Mutex<Option<u64>>,
    },
}

impl Progress {
    /// Progress shown as `style`, its line named after `program`; nothing
    /// is shown before the merge starts.
    pub fn new(program: &str, style: Style) -> Progress {
        Progress {
            program: program.to_owned(),
            style,
            started: Instant::now(),
            running: Mutex::new(None),
        }
    }

    /// Runs `f` (which prints a message) with the line out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self.with_shared(|shared| match &shared.output {
            Output::Line(bar) => Some(bar.clone()),
            Output::Json { .. } => None,
        });
        match bar.flatten() {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn with_shared<R>(&self, f: impl FnOnce(&Shared) -> R) -> Option<R> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.as_ref().map(|running| f(&running.shared))
    }

    fn layer_started(&self, layer: usize, source: &LayerRef) {
        self.with_shared(|shared| {
            let layers = shared.sizes.len();
            match &shared.output {
                Output::Line(bar) => {
                    bar.set_prefix(format!("{}: layer {layer}/{layers}", self.program))
                }
                Output::Json { .. } => emit(
                    "layer_started",
                    json!({
                    "layer": layer,
                    "layers": layers,
                    "path": source.path.to_string_lossy(),
                    "offset": source.range.map(|(offset, _)| offset),
                    "digest": source.digest.as_ref().map(ToString::to_string),
                    "size": shared.sizes[layer - 1],
                    }),
                ),
            }
        });
    }

    fn done(&self, stats: &MergeStats) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut running) = running else { return };
        running.stop_reporter();
        match &running.shared.output {
            Output::Line(bar) => bar.finish_and_clear(),
            Output::Json { .. } => {
                running.shared.report_bytes();
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
                    "elapsed_ms": self.started.elapsed().as_millis() as u64,
                    }),
                );
            }
        }
    }
}

impl Observer for Progress {
    fn started(&self, layers: &[LayerRef], read: &ByteCounter) {
        let sizes: Vec<Option<u64>> = layers.iter().map(LayerRef::stored_size).collect();
        let total = sizes.iter().copied().sum::<Option<u64>>();
        let output = match self.style {
            Style::Line => {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden())
                    .with_style(line_style(total.is_some()))
                    .with_prefix(format!(
                        "{}: layer {}/{}",
                        self.program,
                        layers.len(),
                        layers.len()
                    ));
                Output::Line(bar)
            }
            Style::Json => Output::Json {
                last_read: Mutex::new(None),
            },
        };
        let shared = Arc::new(Shared {
            counter: read.clone(),
            sizes,
            total,
            started: Instant::now(),
            output,
        });
        let running = Running::start(shared);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
    }

    fn event(&self, event: Event<'_>) {
        match event {
            Event::LayerStarted { layer, source, .. } => self.layer_started(layer, source),
            Event::LayerFinished {
                layer,
                layers,
                done,
            } if self.style == Style::Json => emit(
                "layer_finished",
                json!({
                "layer": layer,
                "layers": layers,
                "stored_bytes": done.stored_bytes,
                "members_read": done.members_read,
                "entries_written": done.entries_written,
                }),
            ),
            Event::Done(stats) => self.done(stats),
            _ => {}
        }
    }
}

impl Running {
    /// Starts the reporter thread that samples the count.
    fn start(shared: Arc<Shared>) -> Running {
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
                                Box::new(console::Term::buffered_stderr()),
                                10,
                            ));
                        }
                    }
                    for_reporter.report_bytes();
                }
            })
            .ok();
        Running {
            shared,
            stop: reporter.is_some().then_some(stop),
            reporter,
        }
    }

    fn stop_reporter(&mut self) {
        drop(self.stop.take());
        if let Some(reporter) = self.reporter.take() {
            let _ = reporter.join();
        }
    }
}

impl Drop for Running {
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
    fn the_total_is_known_only_when_every_size_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer");
        std::fs::write(&file, [0u8; 100]).unwrap();
        let mut piped = LayerRef::file(dir.path().join("pipe"));
        let total = |layers: &[LayerRef]| {
            let progress = Progress::new("t", Style::Json);
            progress.started(layers, &ByteCounter::default());
            progress.with_shared(|shared| shared.total).unwrap()
        };
        let known = [LayerRef::file(&file), LayerRef::file(&file)];
        assert_eq!(total(&known), Some(200));
        assert_eq!(total(&[LayerRef::file(&file), piped.clone()]), None);
        piped.size = Some(50);
        assert_eq!(total(&[LayerRef::file(&file), piped]), Some(150));
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
}
