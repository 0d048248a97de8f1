//! Pipe and terminal etiquette: no binary data to a terminal, no
//! terminal for a tar stream, large pipe buffers, unbuffered stdout.

use ocirender::process::enlarge_pipe;
use std::io::{self, IsTerminal};

/// Fails when stdout is a terminal: binary data there helps nobody.
pub fn refuse_terminal_stdout(what: &str) -> anyhow::Result<()> {
    if io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write {what} to a terminal; redirect stdout to a file or a pipe"
        );
    }
    Ok(())
}

/// Fails when stdin is a terminal: these programs read a tar stream. A
/// pipe on stdin is enlarged for throughput.
pub fn refuse_terminal_stdin(example: &str) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    if stdin.is_terminal() {
        anyhow::bail!("stdin is a terminal: pipe a tar stream in (e.g. {example})");
    }
    enlarge_pipe(stdin.as_fd());
    Ok(())
}

/// Stdout as an unbuffered `File` (a duplicate of fd 1). `io::Stdout` is
/// line-buffered, which costs an extra copy and a flush at every newline
/// byte of binary data; callers wrap this in a large `BufWriter` instead.
pub fn stdout_file() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

/// Whether stderr is a terminal that can redraw a line (not `TERM=dumb`).
pub fn stderr_is_a_terminal() -> bool {
    io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}
