//! Pipes: large buffers, and telling a reader that went away from a
//! failure.

use std::io;

/// Pipe capacity asked for on stdin and stdout: the default 64 KiB makes a
/// gigabyte cross a pipe in sixteen thousand wake-ups.
const PIPE_SIZE: usize = 1 << 20;

/// Enlarges the pipe on `fd`, if it is one. Best effort: an unprivileged
/// user may be capped by `/proc/sys/fs/pipe-max-size`, and files are not
/// pipes.
pub fn enlarge_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
}

/// True if the error, or any error it came from, is a write to a closed
/// pipe: the reader went away, which is no failure to report.
pub fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = err.source();
    }
    false
}
