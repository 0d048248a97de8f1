//! A phase of work with no count to show (an image builder running):
//! `PROGRAM: WHAT | 12s`, a spinner and the time it has taken, redrawn
//! on a timer until the phase finishes.
//!
//! ```no_run
//! use ocirender_cli::progress::PhaseLine;
//! let line = PhaseLine::start("tar2sqfs", "building out.sqfs");
//! // ... the work; line.tick() on signs of life moves the spinner ...
//! line.finish();
//! ```

use super::line::{fit, Line, Ticker, REDRAW_INTERVAL};
use super::rate::short_duration;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// One phase's line on stderr, cleared by [`PhaseLine::finish`] (or when
/// dropped, as when the phase failed).
pub struct PhaseLine {
    shared: Arc<Phase>,
    ticker: Ticker,
}

struct Phase {
    line: Line,
    label: String,
    started: Instant,
    ticks: AtomicUsize,
}

impl PhaseLine {
    /// Starts drawing `PROGRAM: WHAT` (after a moment: a quick phase
    /// draws nothing).
    pub fn start(program: &str, what: &str) -> PhaseLine {
        let shared = Arc::new(Phase {
            line: Line::new(),
            label: format!("{program}: {what}"),
            started: Instant::now(),
            ticks: AtomicUsize::new(0),
        });
        let drawn = Arc::clone(&shared);
        let ticker = Ticker::start(REDRAW_INTERVAL, move || drawn.draw());
        PhaseLine { shared, ticker }
    }

    /// Moves the spinner on (a sign of life) and redraws.
    pub fn tick(&self) {
        self.shared.ticks.fetch_add(1, Ordering::Relaxed);
        self.shared.draw();
    }

    /// Runs `f` (which prints a message) with the line out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.shared.line.suspend(f)
    }

    /// The phase is over: the line is cleared.
    pub fn finish(mut self) {
        self.ticker.stop();
        self.shared.line.clear();
    }
}

impl Phase {
    fn draw(&self) {
        let ticks = self.ticks.fetch_add(1, Ordering::Relaxed);
        let text = phase_text(&self.label, ticks, self.started.elapsed());
        self.line.draw(fit(&text, self.line.width()));
    }
}

fn phase_text(label: &str, ticks: usize, elapsed: std::time::Duration) -> String {
    let spinner = SPINNER[ticks % SPINNER.len()];
    format!("{label} {spinner} {}", short_duration(elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_phase_shows_its_name_a_spinner_and_its_time() {
        let cases = [
            (0, 0, "tar2sqfs: building a | 0s"),
            (1, 75, "tar2sqfs: building a / 1m15s"),
            (6, 3, "tar2sqfs: building a - 3s"),
        ];
        for (ticks, seconds, text) in cases {
            let elapsed = Duration::from_secs(seconds);
            assert_eq!(phase_text("tar2sqfs: building a", ticks, elapsed), text);
        }
    }
}
