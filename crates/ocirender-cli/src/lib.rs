//! What only the ocirender binaries need, above the `ocirender` library:
//! one-line messages prefixed with the program's name and the exit codes
//! that go with them, terminal and pipe etiquette, the `--help` text every
//! tar reader shares, the progress line (or JSON events) drawn from the
//! library's [`ocirender::progress`] events, man pages and shell
//! completions generated from each binary's flags, and the one `main` of
//! the image-builder sinks ([`image_sink`]).
//!
//! The library below has no terminal code and no argument parsing; the
//! binaries above stay thin: flags, then one call into the library.

pub mod args;
pub mod generate;
mod help;
pub mod image_sink;
mod messages;
pub mod progress;
mod terminal;

pub use help::{with_limits, LONG_VERSION};
pub use messages::{
    note, print_line, run, run_source, set_usage, warn, UsageError, EXIT_BROKEN_PIPE, EXIT_USAGE,
};
pub use terminal::{
    refuse_terminal_stdin, refuse_terminal_stdout, stderr_is_a_terminal, stdout_file,
};
