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

use super::json::JsonEvents;
use super::line::Ticker;
use super::meter::ByteMeter;
use super::Style;
use ocirender::layer::LayerRef;
use ocirender::progress::{ByteCounter, Event, MergeStats, Observer};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    ticker: Ticker,
}

struct Shared {
    counter: ByteCounter,
    /// Each layer's stored size, when known before reading it.
    sizes: Vec<Option<u64>>,
    /// The sum of `sizes`, when every one is known.
    total: Option<u64>,
    /// The layer being merged (base first, from 1).
    layer: AtomicUsize,
    program: String,
    output: Output,
}

enum Output {
    Line(ByteMeter),
    Json {
        events: JsonEvents,
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
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.as_ref().map(|running| &running.shared.output) {
            Some(Output::Line(meter)) => meter.line().suspend(f),
            _ => f(),
        }
    }

    fn with_shared<R>(&self, f: impl FnOnce(&Shared) -> R) -> Option<R> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.as_ref().map(|running| f(&running.shared))
    }

    fn layer_started(&self, layer: usize, source: &LayerRef) {
        self.with_shared(|shared| {
            shared.layer.store(layer, Ordering::Relaxed);
            if let Output::Json { events, .. } = &shared.output {
                events.emit(
                    "layer_started",
                    json!({
                    "layer": layer,
                    "layers": shared.sizes.len(),
                    "path": source.path.to_string_lossy(),
                    "offset": source.range.map(|(offset, _)| offset),
                    "digest": source.digest.as_ref().map(ToString::to_string),
                    "size": shared.sizes[layer - 1],
                    }),
                );
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
        running.ticker.stop();
        match &running.shared.output {
            Output::Line(meter) => meter.line().clear(),
            Output::Json { events, .. } => {
                running.shared.report();
                events.emit(
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
            Style::Line => Output::Line(ByteMeter::new(total)),
            Style::Json => Output::Json {
                events: JsonEvents::new(),
                last_read: Mutex::new(None),
            },
        };
        let shared = Arc::new(Shared {
            counter: read.clone(),
            sizes,
            total,
            layer: AtomicUsize::new(layers.len()),
            program: self.program.clone(),
            output,
        });
        let reported = Arc::clone(&shared);
        let ticker = Ticker::start(self.style.report_interval(), move || reported.report());
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { shared, ticker });
    }

    fn event(&self, event: Event<'_>) {
        match event {
            Event::LayerStarted { layer, source, .. } => self.layer_started(layer, source),
            Event::LayerFinished {
                layer,
                layers,
                done,
            } if self.style == Style::Json => JsonEvents::new().emit(
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

impl Shared {
    /// Redraws the line (the time and the ETA move on even when the count
    /// stands still), or emits a `bytes` event if the count changed.
    fn report(&self) {
        let read = self.counter.get();
        match &self.output {
            Output::Line(meter) => {
                let layer = self.layer.load(Ordering::Relaxed);
                let prefix = format!("{}: layer {layer}/{}", self.program, self.sizes.len());
                meter.draw(&prefix, read);
            }
            Output::Json { events, last_read } => {
                let mut last = last_read.lock().unwrap_or_else(|e| e.into_inner());
                if *last != Some(read) {
                    *last = Some(read);
                    events.emit("bytes", json!({ "read": read, "total": self.total }));
                }
            }
        }
    }
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
}
