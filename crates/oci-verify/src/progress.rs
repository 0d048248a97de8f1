//! `--progress`: how much of the stream has been compared, on stderr, as
//! one line redrawn in place (a spinner, bytes, throughput, elapsed time)
//! or as `{"event":"bytes","read":N}` objects, until the comparison ends;
//! the line is then cleared. The merge's progress (in `ocirender_cli`)
//! follows layers, which a verification does not have.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocirender::progress::ByteCounter;
use std::io::{Read, Write};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Redraws of the line, at most.
const LINE_INTERVAL: Duration = Duration::from_millis(100);
/// `bytes` events, at most.
const JSON_INTERVAL: Duration = Duration::from_millis(250);
/// The line appears only once a comparison has run this long, so that
/// quick ones do not flash it.
const LINE_DELAY: Duration = Duration::from_millis(300);

/// What to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The line.
    Line,
    /// JSON events.
    Json,
}

/// The progress being shown, by a thread that samples the byte count.
pub struct Progress {
    stop: Sender<()>,
    reporter: JoinHandle<()>,
}

impl Progress {
    /// Starts showing how many bytes `counter` counts.
    pub fn start(program: &str, shown: Shown, counter: ByteCounter) -> Progress {
        let (stop, stopped) = channel::<()>();
        let prefix = format!("{program}: compared");
        let reporter = std::thread::spawn(move || {
            let started = Instant::now();
            let bar = ProgressBar::hidden()
                .with_style(
                    ProgressStyle::with_template(
                        "{prefix} {spinner} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                )
                .with_prefix(prefix);
            let interval = match shown {
                Shown::Line => LINE_INTERVAL,
                Shown::Json => JSON_INTERVAL,
            };
            let mut reported = None;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let read = counter.get();
                match shown {
                    Shown::Line if started.elapsed() >= LINE_DELAY => {
                        if bar.is_hidden() {
                            bar.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                                Box::new(console::Term::buffered_stderr()),
                                10,
                            ));
                        }
                        bar.set_position(read);
                    }
                    Shown::Json if reported != Some(read) => {
                        reported = Some(read);
                        event(serde_json::json!({"event": "bytes", "read": read}));
                    }
                    _ => {}
                }
            }
            bar.finish_and_clear();
        });
        Progress { stop, reporter }
    }

    /// Stops, clearing the line.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.reporter.join();
    }
}

/// Writes one JSON event as one line, in one write.
pub fn event(fields: serde_json::Value) {
    let line = format!("{fields}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A reader that counts what it reads.
pub struct Counted<R> {
    /// What is read.
    pub inner: R,
    /// Where the count goes.
    pub counter: ByteCounter,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n as u64);
        Ok(n)
    }
}
