//! What an image sink shows while its builder works: nothing while the
//! stream flows (the merge upstream draws its own line, and two bars on
//! one screen help nobody), then, once the stream has ended, one line
//! redrawn in place (`tar2sqfs: building out.sqfs with mksquashfs… 12 s`)
//! until OUT is renamed into place, then cleared; or, with `--progress
//! json`, a `building` event when the stream ends and a `done` event once
//! OUT exists. The line names OUT, never the temporary file the builder
//! writes.

use super::When;
use ocirender::sink::builder::Built;
use ocirender::sink::stream_check::ForwardStats;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the line's seconds move on.
const REDRAW: Duration = Duration::from_millis(250);
/// The line appears only once the builder has run this long, so a quick
/// build does not flash one.
const LINE_DELAY: Duration = Duration::from_millis(300);

/// The builder phase, as shown.
pub(super) struct Report {
    style: Option<When>,
    /// `PROGRAM: building OUT with TOOL…`.
    label: String,
    program: &'static str,
    out: String,
    tool: &'static str,
    started: Instant,
    line: Mutex<Option<Line>>,
}

/// The line being drawn by its own thread.
struct Line {
    stop: Sender<()>,
    /// Says whether it drew anything.
    drawer: JoinHandle<bool>,
}

impl Report {
    pub(super) fn new(program: &'static str, out: &Path, tool: &'static str, when: When) -> Report {
        let style = match when {
            When::Auto if crate::stderr_is_a_terminal() => Some(When::Always),
            When::Auto | When::Never => None,
            other => Some(other),
        };
        let out = out.display().to_string();
        Report {
            style,
            label: format!("{program}: building {out} with {tool}\u{2026}"),
            program,
            out,
            tool,
            started: Instant::now(),
            line: Mutex::new(None),
        }
    }

    /// The stream has ended; the builder works on.
    pub(super) fn building(&self, forwarded: &ForwardStats) {
        match self.style {
            Some(When::Json) => emit(
                "building",
                json!({
                    "program": self.program,
                    "builder": self.tool,
                    "out": self.out,
                    "entries": forwarded.entries,
                    "stream_bytes": forwarded.bytes_in,
                    "data_bytes": forwarded.data_bytes,
                }),
            ),
            Some(_) => *self.lock() = Some(Line::start(self.label.clone())),
            None => {}
        }
    }

    /// OUT is in place: the line goes.
    pub(super) fn built(&self) {
        if let Some(line) = self.lock().take() {
            line.clear();
        }
    }

    /// The `done` event, for JSON progress.
    pub(super) fn done(&self, built: &Built, inodes: u64) {
        if self.style == Some(When::Json) {
            emit(
                "done",
                json!({
                    "program": self.program,
                    "out": self.out,
                    "image_bytes": built.image_bytes,
                    "inodes": inodes,
                    "entries": built.forwarded.entries,
                    "data_bytes": built.forwarded.data_bytes,
                    "elapsed_ms": self.started.elapsed().as_millis() as u64,
                }),
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Line>> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Report {
    /// A failed build clears the line too, so the error has a clean line.
    fn drop(&mut self) {
        self.built();
    }
}

impl Line {
    fn start(label: String) -> Line {
        let (stop, stopped) = channel::<()>();
        let started = Instant::now();
        let drawer = std::thread::spawn(move || {
            let mut drawn = false;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REDRAW) {
                let elapsed = started.elapsed();
                if elapsed >= LINE_DELAY {
                    draw(&format!("{label} {} s", elapsed.as_secs()));
                    drawn = true;
                }
            }
            drawn
        });
        Line { stop, drawer }
    }

    /// Stops drawing, and clears the line if it was drawn: a build too
    /// quick to show one sends the terminal nothing at all.
    fn clear(self) {
        drop(self.stop);
        if self.drawer.join().unwrap_or(true) {
            draw("");
        }
    }
}

/// Redraws the line: back to its start, the text cut to the terminal's
/// width (a wrapped line could not be redrawn), the rest erased.
fn draw(text: &str) {
    let width = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, columns)| usize::from(columns));
    let shown: String = text.chars().take(width.saturating_sub(1)).collect();
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("\r{shown}\x1b[K").as_bytes());
}

/// Writes one JSON event as one line, its name first.
fn emit(event: &str, fields: Value) {
    let fields = fields.to_string();
    let rest = fields.strip_prefix('{').unwrap_or("}");
    let comma = if rest == "}" { "" } else { "," };
    crate::print_line(&format!("{{\"event\":{}{comma}{rest}", Value::from(event)));
}
