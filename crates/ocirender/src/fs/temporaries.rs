//! Temporary outputs that must not outlive an interrupted run.
//!
//! `tar2dir`, `tar2sqfs` and `tar2erofs` build their result beside the
//! destination and rename it into place at the end; `oci-fetch` serves
//! layers from a directory of named pipes and writes blobs under temporary
//! names. Errors remove the temporary through the normal return path; this
//! module covers the other way out: a signal (Ctrl-C, `kill`, a closed
//! terminal). The binaries install the handler once; library code
//! registers what it creates while it creates it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once a signal is being handled: the process is about to die of it,
/// and errors it causes on the way (a killed child's broken pipe) are noise.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Keeps a path registered for removal on a signal until dropped.
pub struct Registration(PathBuf);

/// Registers `path` (a file or a directory tree) for removal if a signal
/// ends the process before the registration is dropped.
pub fn register(path: &Path) -> Registration {
    REGISTERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
    Registration(path.to_path_buf())
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = registered.iter().rposition(|p| *p == self.0) {
            registered.remove(i);
        }
    }
}

/// Keeps a child process registered for killing on a signal until dropped.
pub struct ChildRegistration(u32);

/// Registers a child process (an image builder) that writes into a
/// registered path: on a signal it is killed first, so it cannot recreate
/// the file.
pub fn register_child(pid: u32) -> ChildRegistration {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    ChildRegistration(pid)
}

impl Drop for ChildRegistration {
    fn drop(&mut self) {
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&p| p != self.0);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill registered children, remove every
/// registered path, then die of the signal as if there were no handler (so
/// the exit status tells).
pub fn remove_on_signal() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            for pid in std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|e| e.into_inner())) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
            }
            let paths = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()));
            for path in paths {
                remove_while_in_use(&path);
            }
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// Removes a tree the main thread may still be writing into: entries it
/// creates during a pass make the final `rmdir` fail, so pass again until
/// the path is gone (the writer soon fails too, its directories deleted).
fn remove_while_in_use(path: &Path) {
    for _ in 0..400 {
        remove_path(path);
        if std::fs::symlink_metadata(path).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Removes a file, or a directory tree without following symlinks.
pub fn remove_path(path: &Path) {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if let Ok(dir) = rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = crate::fs::root::remove(dir.as_fd(), name.as_bytes());
    }
}
