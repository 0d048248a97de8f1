//! The flags every ocirender program shares, as clap `Args` to flatten
//! (`#[command(flatten)] stats: cli::args::Stats`), so each is spelled,
//! described and validated the same everywhere. docs/design.md has the
//! table of which program has which.

use crate::progress::Style;
use clap::{Args, ValueEnum};

/// `--progress <WHEN>`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Progress {
    /// Show progress on stderr: a redrawn line (auto: only if stderr is a terminal), or JSON events.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ProgressWhen::Auto)]
    pub progress: ProgressWhen,
}

/// When `--progress` shows what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressWhen {
    /// A line when stderr is a terminal.
    Auto,
    /// A line, even if stderr is not a terminal.
    Always,
    /// Nothing.
    Never,
    /// JSON events, one a line.
    Json,
}

impl Progress {
    /// How to draw progress, if at all.
    pub fn style(self) -> Option<Style> {
        match self.progress {
            ProgressWhen::Auto => crate::stderr_is_a_terminal().then_some(Style::Line),
            ProgressWhen::Always => Some(Style::Line),
            ProgressWhen::Never => None,
            ProgressWhen::Json => Some(Style::Json),
        }
    }
}

/// `--stats` (`-v` a hidden alias, as the image builders had it).
#[derive(Args, Debug, Clone, Copy)]
pub struct Stats {
    /// On success, print one summary line (at most 80 columns) on stderr.
    #[arg(long, short_alias = 'v')]
    pub stats: bool,
}

/// `-q/--quiet`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Quiet {
    /// Print no warnings, only errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `--force`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Force {
    /// Replace an existing output: the new one is built beside it and
    /// takes its place only on success. Without it, an existing output
    /// is refused (exit 2).
    #[arg(long)]
    pub force: bool,
}

/// `--jobs <N>` (`--parallel` a hidden alias, oci-merge's old name).
#[derive(Args, Debug, Clone, Copy)]
pub struct Jobs {
    /// How much to do at once, 1 to 64 (more uses more cores).
    #[arg(long, alias = "parallel", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Demo {
        #[command(flatten)]
        progress: Progress,
        #[command(flatten)]
        stats: Stats,
        #[command(flatten)]
        quiet: Quiet,
        #[command(flatten)]
        force: Force,
        #[command(flatten)]
        jobs: Jobs,
    }

    #[test]
    fn every_spelling_parses() {
        type Holds = fn(&Demo) -> bool;
        let cases: [(&[&str], Holds); 6] = [
            (&["--stats"], |d| d.stats.stats),
            (&["-v"], |d| d.stats.stats),
            (&["-q"], |d| d.quiet.quiet),
            (&["--force"], |d| d.force.force),
            (&["--parallel", "3"], |d| d.jobs.jobs == 3),
            (&["--progress", "json"], |d| {
                d.progress.progress == ProgressWhen::Json
            }),
        ];
        for (args, holds) in cases {
            let demo =
                Demo::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).unwrap();
            assert!(holds(&demo), "{args:?}: {demo:?}");
        }
        assert!(Demo::try_parse_from(["demo", "--jobs", "0"]).is_err());
        assert!(Demo::try_parse_from(["demo", "--progress", "sometimes"]).is_err());
    }
}
