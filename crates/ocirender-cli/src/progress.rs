//! Progress on stderr, drawn from the library's [`ocirender::progress`]
//! events: one line redrawn in place for a person at a terminal, or one
//! JSON object a line for a program driving the pipeline. Never two lines
//! at once: each phase's line is cleared when the phase ends, before the
//! next tool of a pipeline draws its own.
//!
//! The pieces, for any binary:
//! * [`When`]: the `--progress <WHEN>` flag every tool takes, and the
//!   [`Style`] it comes to on this stderr;
//! * [`PhaseLine`]: a phase without a count (`tar2sqfs: building
//!   out.sqfs | 12s`);
//! * [`ByteMeter`]: bytes of a total, with rate and time left from the
//!   last seconds ([`RateWindow`]), fitted to the terminal's width;
//! * [`JsonEvents`]: `{"event":...}` lines.
//!
//! And what uses them: a merge's [`Progress`] (and its [`summary`]), and
//! `oci-fetch --store`'s [`DownloadProgress`].

mod download;
mod json;
mod line;
mod merge;
mod meter;
mod phase;
mod rate;
mod summary;

pub use download::DownloadProgress;
pub use json::JsonEvents;
pub use line::{fit, Line, Ticker, LINE_DELAY, REDRAW_INTERVAL};
pub use merge::Progress;
pub use meter::ByteMeter;
pub use phase::PhaseLine;
pub use rate::{short_duration, RateWindow, WINDOW};
pub use summary::{summary, SUMMARY_WIDTH};

use std::time::Duration;

/// JSON progress events (`bytes`, `download`), at most this often.
pub const JSON_INTERVAL: Duration = Duration::from_millis(250);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One line on stderr, redrawn in place (drawn whether or not stderr is
    /// a terminal: the caller decides).
    Line,
    /// One JSON object a line on stderr.
    Json,
}

impl Style {
    /// How often a reporter thread redraws the line, or emits a count.
    pub fn report_interval(self) -> Duration {
        match self {
            Style::Line => REDRAW_INTERVAL,
            Style::Json => JSON_INTERVAL,
        }
    }
}

/// `--progress <WHEN>`, as every tool takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum When {
    /// A line when stderr is a terminal.
    #[default]
    Auto,
    /// A line, even if stderr is not a terminal.
    Always,
    /// Nothing.
    Never,
    /// JSON events, one a line.
    Json,
}

impl When {
    /// What to show on this process's stderr; none: nothing.
    pub fn style(self) -> Option<Style> {
        match self {
            When::Auto => crate::stderr_is_a_terminal().then_some(Style::Line),
            When::Always => Some(Style::Line),
            When::Never => None,
            When::Json => Some(Style::Json),
        }
    }
}
