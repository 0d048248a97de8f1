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
use std::io;
use std::process::ExitCode;

/// Exit status after the reader of stdout went away (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: u8 = 141;

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
        Err(err) => {
            print_line(&format!(
                "{program}: error: {}",
                one_line(&format!("{err:#}"))
            ));
            ExitCode::FAILURE
        }
    }
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
