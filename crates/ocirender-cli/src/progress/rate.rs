//! Rate and time left from a moving window of samples: what the last few
//! seconds did, not the whole run. An exponentially weighted average over
//! the run (indicatif's, with a 15 s horizon) remembers a fast start (the
//! merge's read-ahead of local layers, a download's blobs already in the
//! store) for the rest of the run: the rate stays high, the time left low
//! and flat while the real remainder shrinks at the slower rate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks.
pub const WINDOW: Duration = Duration::from_secs(3);
/// How much of the window must be covered before there is a rate: less
/// than a line's delay, so that a line has one when it first appears.
const MIN_SPAN: Duration = Duration::from_millis(250);

/// Samples of a growing count (bytes done) over the last [`WINDOW`].
#[derive(Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// An empty window.
    pub fn new() -> RateWindow {
        RateWindow::default()
    }

    /// The count is `done` at `now`; samples older than the window (but
    /// the one just before it, the window's start) are forgotten.
    pub fn record(&mut self, now: Instant, done: u64) {
        self.samples.push_back((now, done));
        while self
            .samples
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Units a second over the window, once it spans [`MIN_SPAN`].
    pub fn rate(&self) -> Option<f64> {
        let (first, first_done) = self.samples.front()?;
        let (last, last_done) = self.samples.back()?;
        let span = last.duration_since(*first);
        (span >= MIN_SPAN)
            .then(|| last_done.saturating_sub(*first_done) as f64 / span.as_secs_f64())
    }

    /// The time left to reach `total` at the window's rate; none while
    /// there is no rate, or nothing moves.
    pub fn eta(&self, total: u64) -> Option<Duration> {
        let (_, done) = self.samples.back()?;
        let rate = self.rate().filter(|rate| *rate > 0.0)?;
        let left = total.saturating_sub(*done) as f64 / rate;
        Some(Duration::from_secs_f64(left.min(1e7)))
    }
}

/// A duration in the line's few columns: `7s`, `2m05s`, `1h02m`.
pub fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window fed `(seconds, done)` samples.
    fn window(samples: &[(f64, u64)]) -> RateWindow {
        let start = Instant::now();
        let mut window = RateWindow::new();
        for (at, done) in samples {
            window.record(start + Duration::from_secs_f64(*at), *done);
        }
        window
    }

    /// `(seconds, done)` samples.
    type Samples = &'static [(f64, u64)];

    #[test]
    fn the_rate_is_the_last_seconds_not_the_whole_run() {
        let cases: &[(&str, Samples, Option<f64>)] = &[
            ("nothing yet", &[], None),
            ("too short a span", &[(0.0, 0), (0.2, 100)], None),
            ("steady", &[(0.0, 0), (1.0, 100), (2.0, 200)], Some(100.0)),
            (
                "a burst at the start is forgotten",
                &[(0.0, 0), (0.1, 8000), (2.0, 8100), (4.0, 8300), (6.0, 8500)],
                Some(100.0),
            ),
            (
                "a stall shows as a falling rate",
                &[(0.0, 0), (1.0, 300), (2.0, 300), (3.0, 300), (4.0, 300)],
                Some(0.0),
            ),
        ];
        for (what, samples, expected) in cases {
            assert_eq!(window(samples).rate(), *expected, "{what}");
        }
    }

    #[test]
    fn the_time_left_follows_the_window_rate() {
        let steady = window(&[(0.0, 0), (1.0, 100), (2.0, 200)]);
        assert_eq!(steady.eta(1200), Some(Duration::from_secs(10)));
        assert_eq!(steady.eta(100), Some(Duration::ZERO));
        let stalled = window(&[(0.0, 50), (1.0, 50)]);
        assert_eq!(stalled.eta(100), None);
    }

    #[test]
    fn durations_are_short() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (125, "2m05s"),
            (3720, "1h02m"),
        ];
        for (seconds, text) in cases {
            assert_eq!(short_duration(Duration::from_secs(seconds)), text);
        }
    }
}
