//! The one `main` of the image-builder sinks (`tar2sqfs`, `tar2erofs`):
//! each binary declares its builder's own flags next to the common ones
//! ([`SinkArgs`], flattened) and says how they make an
//! [`ImageBuilder`] ([`ImageSink`]); everything else happens here, in the
//! same order for every sink:
//!
//! 1. flags are parsed, and every option value is checked (by clap, then
//!    by the library's typed options): a bad one is one line naming the
//!    option and what it takes, exit 2, before any input is read;
//! 2. an existing OUT is refused without `--force` (exit 2);
//! 3. the builder program is found and its version checked;
//! 4. the stream is forwarded; once it has ended, the builder phase is
//!    shown (one line on a terminal, or JSON events) until OUT is in place;
//! 5. `--stats` prints one line, and `--progress json` its `done` event.

mod report;

use crate::generate::parse_or_generate;
use anyhow::{Context, Result};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use ocirender::sink::builder::timestamp_from_env;
use ocirender::sink::builder_options::{BadOption, Compressor};
use ocirender::sink::image_builder::ImageBuilder;
use report::Report;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of a usage error, as clap gives.
const EXIT_USAGE: u8 = 2;

/// The flags every image sink takes.
#[derive(clap::Args, Debug)]
pub struct SinkArgs {
    /// The image to write: built beside it, renamed into place on success.
    pub out: PathBuf,
    /// Replace OUT if it exists (only once the new image is complete).
    #[arg(long)]
    pub force: bool,
    /// Show the builder phase: auto (one line, when stderr is a terminal),
    /// always, never, or json (one JSON object a line on stderr).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = When::Auto)]
    pub progress: When,
    /// On success, print one line: image size, inodes, compression ratio.
    #[arg(long, short_alias = 'v')]
    pub stats: bool,
    /// No warnings, only errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// When progress is shown.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// One line on stderr, only when it is a terminal.
    Auto,
    /// One line on stderr, whatever it is.
    Always,
    /// Nothing.
    Never,
    /// One JSON object a line on stderr, ending with a `done` event.
    Json,
}

/// What a binary says about its image builder.
pub trait ImageSink: clap::Parser {
    /// The binary's name, in messages.
    const PROGRAM: &'static str;
    /// The flags every sink takes.
    fn sink(&self) -> &SinkArgs;
    /// The builder program given on the command line, if any.
    fn tool_path(&self) -> Option<&Path>;
    /// The checked options, with the reproducible time `timestamp`.
    fn builder(&self, timestamp: u64) -> Result<Box<dyn ImageBuilder>, BadOption>;
}

/// `--comp`'s parser: the names of `table`, which completions offer and
/// clap checks (the library checks them again, for library callers).
pub fn compressor_names(table: &'static [Compressor]) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Compressor::names(table))
}

/// The `main` of an image sink.
pub fn main<S: ImageSink>() -> ExitCode {
    let program = S::PROGRAM;
    let args = parse::<S>(program);
    let timestamp = match timestamp_from_env() {
        Ok(timestamp) => timestamp,
        Err(err) => return crate::run(program, || Err(err.into())),
    };
    let builder = match args.builder(timestamp) {
        Ok(builder) => builder,
        Err(bad) => return usage_error(program, &bad.to_string()),
    };
    let sink = args.sink();
    if let Some(refusal) = refuse_existing(&sink.out, sink.force) {
        return usage_error(program, &refusal);
    }
    crate::run(program, || {
        build(program, sink, args.tool_path(), builder.as_ref())
    })
}

/// The arguments, or exit: a bad option value is one line (clap's own
/// message spans several, and cuts the list of values in a narrow
/// terminal); `--generate`, `--help` and other errors are clap's.
fn parse<S: ImageSink>(program: &str) -> S {
    match S::try_parse() {
        Ok(args) => {
            // Hints name the program as it is called (`tar2sqfs OUT`).
            crate::set_usage(crate::generate::usage(&S::command()));
            args
        }
        Err(err) => match bad_value(&err) {
            Some(line) => {
                say_usage_error(program, &line);
                std::process::exit(i32::from(EXIT_USAGE))
            }
            None => parse_or_generate::<S>(),
        },
    }
}

/// A clap error about an option's value as one line: `--comp zstdd:
/// expected one of zstd, gzip, ...`.
fn bad_value(err: &clap::Error) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let text = |kind| match err.get(kind) {
        Some(ContextValue::String(text)) => Some(text.clone()),
        _ => None,
    };
    let option = text(ContextKind::InvalidArg)?;
    let option = option.split_whitespace().next()?;
    let value = text(ContextKind::InvalidValue)?;
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => Some(format!(
            "{option} {value}: expected one of {}",
            valid.join(", ")
        )),
        _ => {
            let rendered = err.to_string();
            let first = rendered.lines().next().unwrap_or_default();
            Some(first.trim_start_matches("error: ").to_owned())
        }
    }
}

/// Prints `PROGRAM: error: MESSAGE`; the usage-error status.
fn usage_error(program: &str, message: &str) -> ExitCode {
    say_usage_error(program, message);
    ExitCode::from(EXIT_USAGE)
}

fn say_usage_error(program: &str, message: &str) {
    crate::print_line(&format!("{program}: error: {message}"));
}

/// Why `out` may not be written, if it exists and `--force` was not given.
/// A directory is left to fail as it does with `--force`: no image
/// replaces a directory.
fn refuse_existing(out: &Path, force: bool) -> Option<String> {
    let existing = out.symlink_metadata().ok()?;
    (!force && !existing.is_dir())
        .then(|| format!("{} exists: pass --force to replace it", out.display()))
}

fn build(
    program: &'static str,
    sink: &SinkArgs,
    tool_path: Option<&Path>,
    builder: &dyn ImageBuilder,
) -> Result<()> {
    ocirender::process::remove_on_signal().context("cannot install signal handlers")?;
    crate::refuse_terminal_stdin(&format!("oci-layers IMAGE | oci-merge | {program} OUT"))?;
    let tool = builder.tool().find(tool_path)?;
    let report = Report::new(program, &sink.out, tool.program, sink.progress);
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(1 << 20, stdin.lock());
    let built = ocirender::sink::builder::build_image(
        &sink.out,
        &mut input,
        &tool,
        builder,
        &mut |forwarded| report.building(forwarded),
    )?;
    report.built();
    if sink.stats || sink.progress == When::Json {
        let inodes = builder.inode_count(&sink.out)?;
        report.done(&built, inodes);
        if sink.stats {
            let room = 80 - program.len() - 2;
            crate::note(program, &built.summary(&sink.out, inodes, room));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Demo {
        #[command(flatten)]
        sink: SinkArgs,
        #[arg(long = "comp", value_parser = compressor_names(ocirender::sink::squashfs::COMPRESSORS))]
        compressor: Option<String>,
        #[arg(long)]
        level: Option<u32>,
    }

    fn refusal(args: &[&str]) -> Option<String> {
        let err = Demo::try_parse_from(["demo"].iter().chain(args)).unwrap_err();
        bad_value(&err)
    }

    #[test]
    fn bad_values_are_one_line_naming_the_option_and_every_value() {
        assert_eq!(
            refusal(&["--comp", "zstdd", "out"]).unwrap(),
            "--comp zstdd: expected one of zstd, gzip, xz, lz4, lzo, lzma"
        );
        assert_eq!(
            refusal(&["--progress", "sometimes", "out"]).unwrap(),
            "--progress sometimes: expected one of auto, always, never, json"
        );
        let level = refusal(&["--level", "high", "out"]).unwrap();
        assert!(
            level.contains("--level") && !level.contains('\n'),
            "{level}"
        );
        assert_eq!(refusal(&["--no-such-flag", "out"]), None);
    }

    #[test]
    fn the_common_flags_parse() {
        let demo = Demo::try_parse_from(["demo", "-v", "-q", "--force", "out"]).unwrap();
        assert!(demo.sink.stats && demo.sink.quiet && demo.sink.force);
        assert_eq!(demo.sink.progress, When::Auto);
    }

    #[test]
    fn an_existing_out_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.img");
        assert_eq!(refuse_existing(&out, false), None);
        std::fs::write(&out, "old").unwrap();
        let refused = refuse_existing(&out, false).unwrap();
        assert!(
            refused.contains("out.img") && refused.contains("--force"),
            "{refused}"
        );
        assert_eq!(refuse_existing(&out, true), None);
        assert_eq!(
            refuse_existing(dir.path(), false),
            None,
            "a directory fails later"
        );
    }
}
