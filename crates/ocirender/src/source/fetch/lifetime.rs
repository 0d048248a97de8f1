//! How long a streaming `oci-fetch` serves its pipes.
//!
//! It must outlive its reader: `oci-merge` opens the layer pipes only
//! after it has read the whole list, opens them one after another, and
//! opens some a second time at the very end (promoted hard links). And it
//! must never leave early: a layer cut short fails the merge. Three
//! signals together say when no layer can be asked for any more, whoever
//! and wherever the reader is:
//!
//! 1. The list is printed without its end-of-list line, and stdout kept
//!    open until everything printed has been read (the pipe's unread byte
//!    count falls to zero) or no process holds the read end any more
//!    (stdout's write end reports `POLLERR`; nothing was asked for then).
//!    At that moment the readers are running, so they can be checked:
//!    those `/proc` shows must be this user or root, or could not open the
//!    private pipes (refused, with an error, before anything is served).
//!    Then `#end` is printed and stdout closed, so a reader that waits for
//!    the end of its input (`cat`) gets it, and one that stops at `#end`
//!    (`oci-merge` under a wrapper holding stdout open) starts at once.
//! 2. The session pipe ([`crate::blob::served`]): each `oci-merge` that starts
//!    on the list says hello on it and holds it open until it exits. The
//!    kernel reports when the last has gone, however it ended, in any pid
//!    namespace, for any user. This is what speaks for readers `/proc`
//!    does not show.
//! 3. The readers `/proc` does show ([`super::readers`]), watched through
//!    pidfds: a reader that is not `oci-merge` (`head`, `cat`) never says
//!    hello, and is waited for this way.
//!
//! `oci-fetch` exits once no visible reader is left, no session is open,
//! no layer is being sent, and either a session was seen, or the visible
//! readers have been gone for [`LATE_HELLO_GRACE`] (an `oci-merge` fed by
//! one of them, as in `oci-fetch | tee list | oci-merge`, says hello just
//! after it exits), or, when no reader was ever seen,
//! [`UNSEEN_READER_GRACE`] has passed since the list was read (a reader
//! `/proc` does not show that never opens a layer, such as `cat` run by
//! root). It never exits while a layer is being sent; a download error
//! ends it at once, with status 1.

use super::readers::{timespec, OutputPipe, Watched};
use super::session::Session;
use super::stream::Server;
use crate::error::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use std::time::{Duration, Instant};

/// How long a reader that `/proc` does not show has, once it has read the
/// list, to open a layer (`oci-merge` does so at once).
pub const UNSEEN_READER_GRACE: Duration = Duration::from_secs(10);

/// How long after the last reader `/proc` showed has gone a hello may
/// still come, from a reader it fed.
pub const LATE_HELLO_GRACE: Duration = Duration::from_secs(1);

/// How often the state is looked at while nothing wakes the wait.
const TICK: Duration = Duration::from_millis(100);

/// Serves until no layer can be asked for any more (see the module
/// docs). `end_list` prints the end-of-list line and closes stdout.
pub fn serve(
    output: OutputPipe,
    mut session: Session,
    server: Server,
    end_list: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    if !output.wait_until_read()? {
        // No reader is left to ask for a layer; one opened all the same
        // (by a process given a path) is still sent to its end.
        while !server.idle() {
            if let Some(error) = server.failed() {
                return Err(error);
            }
            std::thread::sleep(TICK);
        }
        return server.finish();
    }
    let mut readers = Watched::find(output)?;
    end_list()?;
    let list_read = Instant::now();
    loop {
        if let Some(error) = server.failed() {
            return Err(error);
        }
        session.refresh().context("cannot watch the session pipe")?;
        readers.refresh()?;
        let no_hello_coming = match readers.gone_for() {
            Some(gone_for) => gone_for > LATE_HELLO_GRACE,
            None => list_read.elapsed() > UNSEEN_READER_GRACE,
        };
        let done = readers.is_empty() && !session.open() && server.idle();
        if done && (session.greeted() || no_hello_coming) {
            return server.finish();
        }
        wait(&session, &readers);
    }
}

/// Waits up to a tick for a hello or a reader's exit.
fn wait(session: &Session, readers: &Watched) {
    let mut fds: Vec<PollFd<'_>> = readers
        .fds()
        .chain(session.fd_to_wait_on())
        .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
        .collect();
    // EINTR or an error: the next look finds out.
    let _ = poll(&mut fds, Some(&timespec(TICK)));
}
