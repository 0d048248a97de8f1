//! Interrupted runs leave nothing behind: `tar2dir`, `tar2sqfs` and
//! `tar2erofs` killed by a signal mid-stream remove their temporary output
//! (and kill their image builder) and die of the signal, so a shell reports
//! it (128 + N).

mod support;

use rustix::process::{kill_process, Pid, Signal};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::cmd;
use testkit::{noise, Layer};

/// A tar large enough that half of it is a few megabytes.
fn big_tar() -> Vec<u8> {
    (0..8)
        .fold(Layer::new(), |l, i| {
            l.file(&format!("data/f{i}"), &noise(i, 1 << 20))
        })
        .tar()
}

/// Starts `command` in `dir` with half of a tar on its stdin, keeping the
/// pipe open, and waits until a temporary output appears.
fn start_half_fed(mut command: Command, dir: &Path) -> (Child, std::process::ChildStdin) {
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let tar = big_tar();
    stdin.write_all(&tar[..tar.len() / 2]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while temporaries(dir).is_empty() {
        assert!(Instant::now() < deadline, "no temporary output appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, stdin)
}

/// Names in `dir` that look like our temporaries.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tar2dir-") || n.contains(".tmp-"))
        .collect()
}

fn send(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("a child has a pid");
    kill_process(pid, signal).unwrap();
}

fn interrupted_run_leaves_nothing(command: Command, signal: Signal, out: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, stdin) = start_half_fed(command, dir.path());
    send(&child, signal);
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(signal.as_raw()), "{status:?}");
    // Give a killed mksquashfs no chance to write anything late.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        temporaries(dir.path()).is_empty(),
        "left behind: {:?}",
        temporaries(dir.path())
    );
    assert!(!dir.path().join(out).exists(), "{out} was created");
}

#[test]
fn tar2dir_killed_mid_stream_removes_its_temporary_tree() {
    let mut command = cmd("tar2dir");
    command.arg("dest");
    interrupted_run_leaves_nothing(command, Signal::TERM, "dest");
}

#[test]
fn tar2dir_interrupted_removes_its_temporary_tree() {
    let mut command = cmd("tar2dir");
    command.arg("dest");
    interrupted_run_leaves_nothing(command, Signal::INT, "dest");
}

#[test]
fn tar2sqfs_killed_mid_stream_removes_its_temporary_image() {
    let mut command = cmd("tar2sqfs");
    command.arg("out.sqfs");
    interrupted_run_leaves_nothing(command, Signal::TERM, "out.sqfs");
}

#[test]
fn tar2sqfs_hung_up_removes_its_temporary_image() {
    let mut command = cmd("tar2sqfs");
    command.arg("out.sqfs");
    interrupted_run_leaves_nothing(command, Signal::HUP, "out.sqfs");
}

#[test]
fn tar2erofs_killed_mid_stream_removes_its_temporary_image() {
    let mut command = cmd("tar2erofs");
    command.arg("out.erofs");
    interrupted_run_leaves_nothing(command, Signal::TERM, "out.erofs");
}

#[test]
fn tar2erofs_interrupted_removes_its_temporary_image() {
    let mut command = cmd("tar2erofs");
    command.arg("out.erofs");
    interrupted_run_leaves_nothing(command, Signal::INT, "out.erofs");
}
