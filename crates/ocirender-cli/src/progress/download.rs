//! `oci-fetch --store`'s downloads on stderr: one line (`oci-fetch:
//! blobs 1/4 [==>  ] 3.00 MiB/9.74 MiB 1.00 MiB/s 3s ETA 7s`), cleared
//! when the downloads end, before the layer list is printed and so
//! before `oci-merge` draws its own; or JSON events:
//!
//! ```text
//! {"event":"download","blobs":4,"blobs_done":1,"bytes":10213785,"bytes_done":3145728}
//! {"event":"blob","digest":"sha256:...","fetched":true,"size":6291968}
//! {"event":"done","blobs":4,"bytes":10213785,"elapsed_ms":10250,"fetched":3}
//! ```
//!
//! `download` events come at most four times a second, when a count
//! changed, and once more when the downloads end; `blob` when a blob is
//! in the store (`fetched`: false if it already was). `done` is the last
//! line of a successful run ([`DownloadProgress::done`]); a streaming run
//! (no store: `oci-merge` shows the bytes) has only `done`, with
//! `elapsed_ms`.

use super::json::JsonEvents;
use super::line::Ticker;
use super::meter::ByteMeter;
use super::Style;
use ocirender::progress::{ByteCounter, DownloadEvent, DownloadObserver};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The progress of one run's downloads.
pub struct DownloadProgress {
    program: String,
    style: Style,
    started: Instant,
    running: Mutex<Option<Running>>,
    /// The `done` event's fields from the downloads, once they ended.
    totals: Mutex<Value>,
}

struct Running {
    shared: Arc<Shared>,
    ticker: Ticker,
}

struct Shared {
    program: String,
    blobs: usize,
    bytes: u64,
    done: ByteCounter,
    blobs_done: AtomicUsize,
    output: Output,
}

enum Output {
    Line(ByteMeter),
    Json {
        events: JsonEvents,
        /// The counts of the last `download` event.
        last: Mutex<Option<(usize, u64)>>,
    },
}

impl DownloadProgress {
    /// Progress shown as `style`, its line named after `program`.
    pub fn new(program: &str, style: Style) -> DownloadProgress {
        DownloadProgress {
            program: program.to_owned(),
            style,
            started: Instant::now(),
            running: Mutex::new(None),
            totals: Mutex::new(json!({})),
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

    /// The run succeeded: in JSON, the `done` event.
    pub fn done(&self) {
        if self.style != Style::Json {
            return;
        }
        let mut fields = self.totals.lock().unwrap_or_else(|e| e.into_inner()).take();
        if !fields.is_object() {
            fields = json!({});
        }
        fields["elapsed_ms"] = json!(self.started.elapsed().as_millis() as u64);
        JsonEvents::new().emit("done", fields);
    }

    fn start(&self, blobs: usize, bytes: u64, done: &ByteCounter) {
        let output = match self.style {
            Style::Line => Output::Line(ByteMeter::new(Some(bytes))),
            Style::Json => Output::Json {
                events: JsonEvents::new(),
                last: Mutex::new(None),
            },
        };
        let shared = Arc::new(Shared {
            program: self.program.clone(),
            blobs,
            bytes,
            done: done.clone(),
            blobs_done: AtomicUsize::new(0),
            output,
        });
        shared.report();
        let reported = Arc::clone(&shared);
        let ticker = Ticker::start(self.style.report_interval(), move || reported.report());
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { shared, ticker });
    }

    fn blob_done(&self, digest: &str, size: u64, fetched: bool) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = running.as_ref() else {
            return;
        };
        running.shared.blobs_done.fetch_add(1, Ordering::Relaxed);
        if let Output::Json { events, .. } = &running.shared.output {
            events.emit(
                "blob",
                json!({ "digest": digest, "size": size, "fetched": fetched }),
            );
        }
    }

    /// The downloads ended: the line is cleared (the last `download`
    /// event emitted) and the totals kept for `done`.
    fn finish(&self, totals: Value) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut running) = running {
            running.ticker.stop();
            match &running.shared.output {
                Output::Line(meter) => meter.line().clear(),
                Output::Json { .. } => running.shared.report(),
            }
        }
        *self.totals.lock().unwrap_or_else(|e| e.into_inner()) = totals;
    }
}

impl DownloadObserver for DownloadProgress {
    fn download(&self, event: DownloadEvent<'_>) {
        match event {
            DownloadEvent::Started { blobs, bytes, done } => self.start(blobs, bytes, done),
            DownloadEvent::BlobDone {
                digest,
                size,
                fetched,
            } => self.blob_done(&digest.to_string(), size, fetched),
            DownloadEvent::Done {
                blobs,
                fetched,
                bytes,
            } => self.finish(json!({ "blobs": blobs, "fetched": fetched, "bytes": bytes })),
            _ => {}
        }
    }
}

impl Shared {
    /// Redraws the line, or emits a `download` event if a count changed.
    fn report(&self) {
        let done = self.done.get();
        let blobs_done = self.blobs_done.load(Ordering::Relaxed);
        match &self.output {
            Output::Line(meter) => {
                let prefix = format!("{}: blobs {blobs_done}/{}", self.program, self.blobs);
                meter.draw(&prefix, done);
            }
            Output::Json { events, last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != Some((blobs_done, done)) {
                    *last = Some((blobs_done, done));
                    events.emit(
                        "download",
                        json!({
                        "blobs": self.blobs,
                        "blobs_done": blobs_done,
                        "bytes": self.bytes,
                        "bytes_done": done,
                        }),
                    );
                }
            }
        }
    }
}
