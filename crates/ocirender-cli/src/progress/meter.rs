//! A line for a count of bytes: `PREFIX [bar] done/total rate elapsed
//! ETA left`, the rate and the time left from the last seconds
//! ([`RateWindow`]), composed to the terminal's width.

use super::line::{fit, Line};
use super::rate::{short_duration, RateWindow};
use indicatif::HumanBytes;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fewest columns worth drawing a bar in.
const MIN_BAR: usize = 10;

/// Bytes done of a total (if known), drawn on a [`Line`].
pub struct ByteMeter {
    line: Line,
    total: Option<u64>,
    started: Instant,
    window: Mutex<RateWindow>,
}

impl ByteMeter {
    /// A meter of `total` bytes (none: unknown), starting now at 0.
    pub fn new(total: Option<u64>) -> ByteMeter {
        let started = Instant::now();
        let mut window = RateWindow::new();
        window.record(started, 0);
        ByteMeter {
            line: Line::new(),
            total,
            started,
            window: Mutex::new(window),
        }
    }

    /// Redraws the line: `prefix`, then `done` bytes and what follows.
    pub fn draw(&self, prefix: &str, done: u64) {
        let now = Instant::now();
        let (rate, eta) = {
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            window.record(now, done);
            (
                window.rate(),
                self.total.and_then(|total| window.eta(total)),
            )
        };
        let reading = Reading {
            done,
            total: self.total,
            rate,
            elapsed: now.duration_since(self.started),
            eta,
        };
        self.line.draw(compose(prefix, &reading, self.line.width()));
    }

    /// The line, to step aside for a message or to clear.
    pub fn line(&self) -> &Line {
        &self.line
    }
}

/// What one redraw shows.
struct Reading {
    done: u64,
    total: Option<u64>,
    rate: Option<f64>,
    elapsed: Duration,
    eta: Option<Duration>,
}

/// The line's text, at most `width` columns: the bar takes what the rest
/// leaves, and is left out when that is too little.
fn compose(prefix: &str, reading: &Reading, width: usize) -> String {
    let rate = reading.rate.map_or_else(
        || "-".to_owned(),
        |rate| format!("{}/s", HumanBytes(rate as u64)),
    );
    let elapsed = short_duration(reading.elapsed);
    let Some(total) = reading.total else {
        let text = format!("{prefix} {} {rate} {elapsed}", HumanBytes(reading.done));
        return fit(&text, width);
    };
    let eta = reading.eta.map_or_else(|| "-".to_owned(), short_duration);
    let figures = format!(
        "{}/{} {rate} {elapsed} ETA {eta}",
        HumanBytes(reading.done),
        HumanBytes(total)
    );
    // `PREFIX [` and `] FIGURES`.
    let around = prefix.chars().count() + 2 + 2 + figures.len();
    let text = match width.checked_sub(around).filter(|bar| *bar >= MIN_BAR) {
        Some(bar) => format!("{prefix} [{}] {figures}", bar_of(bar, reading.done, total)),
        None => format!("{prefix} {figures}"),
    };
    fit(&text, width)
}

/// `width` columns of `===>   `, filled to `done / total`.
fn bar_of(width: usize, done: u64, total: u64) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * width as f64) as usize;
    let head = usize::from(filled < width);
    format!(
        "{}{}{}",
        "=".repeat(filled),
        ">".repeat(head),
        " ".repeat(width - filled - head)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(done: u64, total: Option<u64>) -> Reading {
        Reading {
            done,
            total,
            rate: Some(1_048_576.0),
            elapsed: Duration::from_secs(3),
            eta: Some(Duration::from_secs(7)),
        }
    }

    #[test]
    fn the_line_fits_the_width_the_bar_taking_what_is_left() {
        let half = reading(5 << 20, Some(10 << 20));
        let cases: &[(&str, &Reading, usize, &str)] = &[
            (
                "a wide terminal",
                &half,
                70,
                "p [=============>            ] 5.00 MiB/10.00 MiB 1.00 MiB/s 3s ETA 7s",
            ),
            (
                "too narrow for a bar",
                &half,
                50,
                "p 5.00 MiB/10.00 MiB 1.00 MiB/s 3s ETA 7s",
            ),
            ("narrower still: cut", &half, 10, "p 5.00 MiB"),
            (
                "no total: no bar, no ETA",
                &reading(5 << 20, None),
                70,
                "p 5.00 MiB 1.00 MiB/s 3s",
            ),
            (
                "done",
                &reading(10, Some(10)),
                45,
                "p [==========] 10 B/10 B 1.00 MiB/s 3s ETA 7s",
            ),
        ];
        for (what, reading, width, line) in cases {
            let composed = compose("p", reading, *width);
            assert_eq!(composed, *line, "{what}");
            assert!(composed.chars().count() <= *width, "{what}");
        }
    }

    #[test]
    fn without_a_rate_the_figures_say_so() {
        let unknown = Reading {
            rate: None,
            eta: None,
            ..reading(0, Some(10))
        };
        assert_eq!(compose("p", &unknown, 30), "p 0 B/10 B - 3s ETA -");
    }
}
