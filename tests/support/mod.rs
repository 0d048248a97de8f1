//! Running the built binaries the way a user does.

#![allow(dead_code)]

pub mod fixtures;
pub mod mounted;
pub mod registry;
pub mod snapshot;
pub mod terminal;
pub mod tree_rules;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Path of a workspace binary built next to this test executable
/// (`scripts/test` builds them all before running the tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (scripts/test does)",
        path.display()
    );
    path
}

/// A command for a workspace binary.
pub fn cmd(name: &str) -> Command {
    Command::new(bin(name))
}

/// Runs a command with `stdin` bytes, capturing stdout and stderr.
pub fn run_with_stdin(mut command: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    output
}

/// Runs a shell pipeline with `bash -o pipefail -c`, in `dir`, with the
/// workspace binaries first on PATH.
pub fn sh(dir: &std::path::Path, script: &str) -> Output {
    let bins = bin("oci-merge").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("bash")
}

/// A temporary directory for one test's files.
pub struct Scratch(pub tempfile::TempDir);

impl Scratch {
    /// A new, empty directory.
    pub fn new() -> Self {
        Scratch(tempfile::tempdir().unwrap())
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes a file (creating its parents) and returns its path as a line
    /// of a layer list.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        line(&path)
    }
}

/// A path as a line of a layer list.
pub fn line(path: &std::path::Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Like [`sh`], with extra environment variables, and with the ones that
/// would let a user's own setup leak in (credentials, temporary
/// directories) reset unless given: HOME is `dir`.
pub fn sh_env(dir: &std::path::Path, env: &[(&str, &str)], script: &str) -> Output {
    let bins = bin("oci-merge").parent().unwrap().to_path_buf();
    let given_path = env
        .iter()
        .find(|(key, _)| *key == "PATH")
        .map(|(_, v)| v.to_string());
    let path = format!(
        "{}:{}",
        bins.display(),
        given_path.unwrap_or_else(|| std::env::var("PATH").unwrap_or_default())
    );
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY");
    for (key, value) in env {
        command.env(key, value);
    }
    command.env("PATH", path);
    command.output().expect("bash")
}

/// An executable script at `dir/name`, installed by a child process so no
/// thread of this test binary holds it open for writing when it runs
/// (which would make exec fail with ETXTBSY).
pub fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!("{name}.source"));
    std::fs::write(&source, format!("#!/bin/sh\n{body}")).unwrap();
    let path = dir.join(name);
    let status = Command::new("install")
        .args(["-m", "0755"])
        .arg(&source)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}
