//! One line on stderr, redrawn in place and cleared when its phase ends;
//! and the thread that redraws it on a timer.
//!
//! The line is indicatif's (it knows how to redraw, step aside for a
//! message and clear), drawn as one message the caller composes to the
//! terminal's width ([`fit`]); indicatif cuts whatever is still too long,
//! so the line never wraps onto a second one.

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a line is redrawn, at most.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// A line appears only once its phase has run this long, so that quick
/// phases do not flash one.
pub const LINE_DELAY: Duration = Duration::from_millis(300);
/// The width assumed when stderr is not a terminal (`--progress=always`).
const DEFAULT_WIDTH: usize = 80;

/// One line on stderr. Nothing is drawn before [`LINE_DELAY`]; dropping
/// it clears it.
pub struct Line {
    bar: ProgressBar,
    created: Instant,
    visible: AtomicBool,
}

impl Line {
    /// A line not drawn yet.
    pub fn new() -> Line {
        let style = ProgressStyle::with_template("{wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Line {
            bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
                .with_style(style),
            created: Instant::now(),
            visible: AtomicBool::new(false),
        }
    }

    /// Shows `text` (composed to [`Line::width`] columns).
    pub fn draw(&self, text: String) {
        if !self.visible.load(Ordering::Relaxed) && self.created.elapsed() >= LINE_DELAY {
            self.visible.store(true, Ordering::Relaxed);
            self.bar
                .set_draw_target(ProgressDrawTarget::term_like_with_hz(
                    Box::new(console::Term::buffered_stderr()),
                    10,
                ));
        }
        self.bar.set_message(text);
    }

    /// The columns a line may use: the terminal's, less one (a line that
    /// reaches the last column makes some terminals wrap).
    pub fn width(&self) -> usize {
        let columns = console::Term::stderr()
            .size_checked()
            .map_or(DEFAULT_WIDTH, |(_, columns)| usize::from(columns));
        columns.saturating_sub(1).max(1)
    }

    /// Runs `f` (which prints a message) with the line out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Clears the line for good.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Line {
    fn default() -> Line {
        Line::new()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `text`, cut to `width` columns (characters: the line is ASCII but for
/// names).
pub fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// A thread that runs a closure every `interval` until stopped (or
/// dropped).
pub struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts calling `tick` every `interval`.
    pub fn start(interval: Duration, mut tick: impl FnMut() + Send + 'static) -> Ticker {
        let (stop, stopped) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    tick();
                }
            })
            .ok();
        Ticker {
            stop: thread.is_some().then_some(stop),
            thread,
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_cuts_at_the_width() {
        let cases = [("abc", 5, "abc"), ("abcdef", 3, "abc"), ("é-é", 2, "é-")];
        for (text, width, fitted) in cases {
            assert_eq!(fit(text, width), fitted);
        }
    }

    #[test]
    fn a_ticker_ticks_until_stopped() {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&ticks);
        let mut ticker = Ticker::start(Duration::from_millis(5), move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(60));
        ticker.stop();
        let seen = ticks.load(Ordering::Relaxed);
        assert!(seen >= 2, "{seen}");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ticks.load(Ordering::Relaxed), seen);
    }
}
