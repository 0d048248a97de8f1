//! Messages and exit codes.
//!
//! All messages go to stderr as `PROGRAM: message` (warnings as
//! `PROGRAM: warning: message`), on one line, so they can be grepped and
//! never mix with data on stdout. A consumer closing the pipe early
//! (`oci-merge | head -c 1000`) is not an error to report: the program
//! stops quietly with the status a SIGPIPE death would give (141), so
//! `set -o pipefail` still sees that the output was cut short.

use ocirender::process::is_broken_pipe;
use ocirender::process::one_line;
use ocirender::{ErrorKind, InputMistake};
use std::io;
use std::process::ExitCode;
use std::sync::OnceLock;

/// Exit status after the reader of stdout went away (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Exit status of a usage error (as clap exits on a bad flag).
pub const EXIT_USAGE: u8 = 2;

/// A mistake in how the program was called, found after parsing (an OUT
/// that exists without `--force`): exits 2, as clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// How the program is called, `tar2dir DIR`: what a hint shows the user
/// to run. Set from the program's flags as it parses them.
static USAGE: OnceLock<String> = OnceLock::new();

/// Records how the program is called, for hints (the first value wins).
pub fn set_usage(usage: String) {
    let _ = USAGE.set(usage);
}

/// Runs a program's body and turns its outcome into an exit code,
/// printing an error as one prefixed line.
pub fn run(program: &str, body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    let outcome = body();
    if ocirender::process::interrupted() {
        // The signal handler is cleaning up and will end the process with
        // the signal; whatever the body returned is a consequence of it.
        loop {
            std::thread::park();
        }
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&*err) => ExitCode::from(EXIT_BROKEN_PIPE),
        // The program before it failed and said why: one failure, one line.
        Err(err) if source_failed(&err) => ExitCode::FAILURE,
        Err(err) => {
            print_line(&format!("{program}: error: {}", error_line(&err)));
            match err.downcast_ref::<UsageError>() {
                Some(_) => ExitCode::from(EXIT_USAGE),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Whether the error is only that the program before it in the pipeline
/// failed (and said why): its tar ends in the block a failed writer
/// leaves, or its layer list in the `#failed` line.
fn source_failed(err: &anyhow::Error) -> bool {
    ocirender::process::is_abandoned_stream_error(err.as_ref())
        || err.chain().any(|cause| {
            cause
                .downcast_ref::<ocirender::Error>()
                .is_some_and(|ours| {
                    ours.kind() == &ErrorKind::WrongInput(InputMistake::SourceFailed)
                })
        })
}

/// Runs a layer source's body (`oci-layers`, `oci-fetch`) as [`run`] does;
/// when it fails, also ends stdout with the `#failed` line
/// ([`ocirender::layer::SOURCE_FAILED`]) unless stdout is a terminal, so
/// the `oci-merge` reading the list fails without a message of its own.
pub fn run_source(program: &str, body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    run(program, || {
        let outcome = body();
        if outcome.as_ref().is_err_and(|err| !is_broken_pipe(&**err)) {
            mark_failed();
        }
        outcome
    })
}

/// Writes the `#failed` line to stdout, unless a person reads it; a stdout
/// that is gone already needs nothing.
fn mark_failed() {
    use std::io::{IsTerminal, Write};
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return;
    }
    let mut stdout = stdout.lock();
    let mut line = ocirender::layer::SOURCE_FAILED.to_vec();
    line.push(b'\n');
    let _ = stdout.write_all(&line).and_then(|()| stdout.flush());
}

/// The words of an error's line.
fn error_line(err: &anyhow::Error) -> String {
    let mistake = err.chain().find_map(|cause| {
        let ours = cause.downcast_ref::<ocirender::Error>()?;
        match ours.kind() {
            // An empty stdin has no hint to give: where it was read
            // from ("input") is worth keeping.
            ErrorKind::WrongInput(InputMistake::Empty) => None,
            ErrorKind::WrongInput(mistake) => Some((ours, mistake)),
            _ => None,
        }
    });
    let line = match mistake {
        Some((ours, mistake)) => wrong_input_line(ours.message(), mistake),
        None => format!("{err:#}"),
    };
    without_os_error_numbers(&one_line(&line))
}

/// An input mistake reads alone (it names stdin), with what to run
/// instead.
fn wrong_input_line(message: &str, mistake: &InputMistake) -> String {
    let usage = USAGE.get().map_or("PROGRAM", String::as_str);
    match mistake {
        InputMistake::LayerList => {
            format!("{message} (oci-layers IMAGE | oci-merge | {usage})")
        }
        InputMistake::Compressed(format) => format!("{message} ({format} -dc FILE | {usage})"),
        _ => message.to_owned(),
    }
}

/// `message` without the `(os error N)` Rust's `io::Error` appends to its
/// description: the number says nothing the words do not.
fn without_os_error_numbers(message: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        let tail = &rest[at + MARK.len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Prints a warning line.
pub fn warn(program: &str, message: &str) {
    print_line(&format!("{program}: warning: {}", one_line(message)));
}

/// Prints an informational line.
pub fn note(program: &str, message: &str) {
    print_line(&format!("{program}: {}", one_line(message)));
}

/// Writes `line` and its newline to stderr in one `write`. `eprintln!`
/// writes each piece of its format separately, so when two programs of a
/// pipeline fail at once (a merge error, then the sink's error about the
/// cut stream) their messages interleave mid-line; one write of up to
/// PIPE_BUF bytes reaches a pipe or terminal whole.
pub fn print_line(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = io::Write::write_all(&mut io::stderr().lock(), &bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_dropped() {
        let cases = [
            (
                "x: cannot open: No such file or directory (os error 2)",
                "x: cannot open: No such file or directory",
            ),
            ("a (os error 13): b (os error 1)", "a: b"),
            ("kept (os error x)", "kept (os error x)"),
            ("plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(without_os_error_numbers(input), expected, "{input}");
        }
    }
}
