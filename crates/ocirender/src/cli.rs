//! What every binary shares: message format, exit codes, pipe etiquette.
//!
//! All messages go to stderr as `PROGRAM: message` (warnings as
//! `PROGRAM: warning: message`), on one line, so they can be grepped and
//! never mix with data on stdout. A consumer closing the pipe early
//! (`oci-merge | head -c 1000`) is not an error to report: the program
//! stops quietly with the status a SIGPIPE death would give (141), so
//! `set -o pipefail` still sees that the output was cut short.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

/// What `--version` prints after the program's name: the version and the
/// gzip inflate engine this build has ([`crate::blob::gzip::INFLATE`]).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (gzip inflate: ",
    crate::blob::gzip::inflate_engine!(),
    ")"
);

/// `after_help` with the LIMITS section every tar-reading binary shares
/// put in before its EXIT STATUS section (or at the end).
pub fn with_limits(after_help: &str) -> String {
    let limits = limits_section();
    match after_help.find("\n\nEXIT STATUS\n") {
        Some(at) => format!("{}\n\n{limits}{}", &after_help[..at], &after_help[at..]),
        None => format!("{after_help}\n\n{limits}"),
    }
}

/// The LIMITS section: every bound a tar header is held to (see
/// [`crate::tar::limits`]), with the values the code enforces.
fn limits_section() -> String {
    use crate::tar::limits::Limit;
    format!(
        "\
LIMITS
  Every tar header is checked before what it describes is read, so a
  hostile layer costs neither memory nor time; an entry over a limit is
  an error that names it.
    path                    {} bytes (not counting . or empty names)
    path depth              {} components
    name in a path          {} bytes
    symlink target          {} bytes (a hard link's: a path's limits)
    GNU long name or link,
    PAX extended header     {} bytes (1 MiB)
    sparse map (GNU or PAX) {} regions
    uid, gid                at most {}
    xattr name              {} bytes
    xattr value             {} bytes
    directories' xattrs     {} bytes in all (64 MiB), held to the end",
        Limit::PathBytes.max(),
        Limit::PathDepth.max(),
        Limit::NameBytes.max(),
        Limit::SymlinkTargetBytes.max(),
        Limit::ExtensionBytes.max(),
        Limit::SparseRegions.max(),
        Limit::Id.max(),
        Limit::XattrNameBytes.max(),
        Limit::XattrValueBytes.max(),
        Limit::HeldDirectoryRecords.max(),
    )
}

/// Exit status after the reader of stdout went away (128 + SIGPIPE).
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Runs a program's body and turns its outcome into an exit code,
/// printing an error as one prefixed line.
pub fn run(program: &str, body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    let outcome = body();
    if crate::fs::temporaries::interrupted() {
        // The signal handler is cleaning up and will end the process with
        // the signal; whatever the body returned is a consequence of it.
        loop {
            std::thread::park();
        }
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_BROKEN_PIPE),
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

/// True if the error (or any cause) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Messages may quote names from hostile archives: control characters
/// (newlines, terminal escapes) are shown escaped, never sent raw.
pub fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Pipe capacity asked for on stdin and stdout: the default 64 KiB makes a
/// gigabyte cross a pipe in sixteen thousand wake-ups.
const PIPE_SIZE: usize = 1 << 20;

/// Enlarges the pipe on `fd`, if it is one. Best effort: an unprivileged
/// user may be capped by `/proc/sys/fs/pipe-max-size`, and files are not
/// pipes.
pub fn enlarge_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
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

/// A size for people: `812 B`, `12.3 MiB` and the like.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::limits::Limit;

    #[test]
    fn the_limits_section_goes_before_the_exit_status() {
        let help = with_limits("SAFETY\n  text\n\nEXIT STATUS\n  0 on success");
        let limits = help.find("\n\nLIMITS\n").expect("a LIMITS section");
        assert!(help.starts_with("SAFETY\n  text\n\n"), "{help}");
        assert!(limits < help.find("EXIT STATUS").unwrap(), "{help}");
        let appended = with_limits("EXAMPLES\n  x");
        assert!(
            appended.starts_with("EXAMPLES\n  x\n\nLIMITS\n"),
            "{appended}"
        );
    }

    #[test]
    fn the_limits_section_states_every_limit() {
        let section = limits_section();
        for limit in Limit::ALL {
            let max = limit.max().to_string();
            assert!(section.contains(&max), "{limit:?} ({max}): {section}");
        }
        assert!(section.lines().all(|line| line.len() <= 76), "{section}");
    }
}
