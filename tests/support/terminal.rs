//! A real terminal for the tests: a pseudo-terminal driven by tmux, its
//! screen captured while a script runs and its raw output recorded.

use super::{bin, stderr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of its own (its socket in the scratch directory), with one
/// window of a fixed size running a script once told to start.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts `script` (bash, in `dir`, with the binaries on PATH) in a
    /// `columns` x 30 window. Its raw output is recorded in `raw.log` and
    /// its exit status written to `status`.
    pub fn start(dir: &Path, columns: u16, script: &str) -> Tmux {
        let bins = bin("oci-merge").parent().unwrap().to_path_buf();
        std::fs::write(
            dir.join("run"),
            format!(
                "export PATH={}:$PATH\nset -o pipefail\nwhile [ ! -e go ]; do sleep 0.02; done\n{script}\necho $? > status\n",
                bins.display()
            ),
        )
        .unwrap();
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &columns.to_string(),
            "-y",
            "30",
            "-c",
            dir.to_str().unwrap(),
            "bash run; sleep 600",
        ]);
        // Record everything the window is sent, from before the script
        // starts.
        let raw = dir.join("raw.log");
        tmux.run(&["pipe-pane", "-o", &format!("cat >> '{}'", raw.display())]);
        std::fs::write(dir.join("go"), "").unwrap();
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is missing (scripts/install-deps installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The visible screen, wrapped lines joined, trailing blank lines
    /// dropped; with `-e`, attributes as escape sequences.
    pub fn screen(&self, escapes: bool) -> Vec<String> {
        let mut args = vec!["capture-pane", "-p", "-J"];
        if escapes {
            args.push("-e");
        }
        let mut lines: Vec<String> = self.run(&args).lines().map(str::to_owned).collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// What a terminal showed while and after `script` ran.
#[derive(Debug)]
pub struct Watched {
    /// Each distinct screen seen while it ran.
    pub screens: Vec<Vec<String>>,
    /// When each of `screens` was first seen, from the script's start.
    pub seen_at: Vec<Duration>,
    /// The last screen, and the same with escape sequences for attributes.
    pub last: Vec<String>,
    pub last_with_escapes: Vec<String>,
    /// Every byte the terminal was sent.
    pub raw: String,
    pub status: String,
}

/// Runs `script` in a tmux window and watches its screen until it ends.
pub fn watch(dir: &Path, columns: u16, script: &str) -> Watched {
    let tmux = Tmux::start(dir, columns, script);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut screens: Vec<Vec<String>> = Vec::new();
    let mut seen_at = Vec::new();
    while !dir.join("status").exists() {
        assert!(Instant::now() < deadline, "the pipeline did not end");
        let screen = tmux.screen(false);
        if screens.last() != Some(&screen) {
            screens.push(screen);
            seen_at.push(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // What the script printed last has reached the terminal once `status`
    // exists, but tmux may draw it a moment later.
    std::thread::sleep(Duration::from_millis(300));
    let watched = Watched {
        screens,
        seen_at,
        last: tmux.screen(false),
        last_with_escapes: tmux.screen(true),
        raw: String::from_utf8_lossy(&std::fs::read(dir.join("raw.log")).unwrap_or_default())
            .into_owned(),
        status: std::fs::read_to_string(dir.join("status")).unwrap(),
    };
    drop(tmux);
    watched
}
