//! `oci-fetch` against the other users and processes of the same machine:
//! the private directory of pipes, the `--store` layout, and how long a
//! streaming `oci-fetch` lives, whoever and wherever its reader is. Real
//! registry (`docker-registry`), real users (`nobody` through `setpriv`),
//! real pid namespaces (`unshare`). These tests switch users and make
//! namespaces: they need root, and fail rather than skip without it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::fixtures::sample_layout;
use support::registry::{Auth, Proxy, Registry};
use support::{sh_env, stderr, Scratch};

/// Runs a command as `nobody` (65534:65534, no supplementary groups).
const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

fn require_root() {
    // /proc/self belongs to the effective user.
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "these tests switch users and make namespaces: run them as root (scripts/test does)"
    );
}

/// A test's directory: HOME, TMPDIR (`tmp`, where streaming makes its
/// pipes) and outputs. `nobody` may enter it and write in `tmp`, as in a
/// real /tmp (sticky, world-writable).
struct Work {
    scratch: Scratch,
}

impl Work {
    fn new() -> Work {
        let scratch = Scratch::new();
        let tmp = scratch.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, PermissionsExt::from_mode(0o1777)).unwrap();
        std::fs::set_permissions(scratch.0.path(), PermissionsExt::from_mode(0o755)).unwrap();
        Work { scratch }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }

    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// Runs a bash script here, with TMPDIR inside.
    fn sh(&self, script: &str) -> Output {
        let tmp = self.tmp().display().to_string();
        sh_env(self.scratch.0.path(), &[("TMPDIR", &tmp)], script)
    }

    /// What streaming left in TMPDIR.
    fn leftovers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    /// Starts `oci-fetch ARGS` under `umask`, its list read by this test
    /// (which keeps reading end open, as a reader that is still merging).
    fn serve(&self, umask: &str, args: &str) -> Served {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("umask {umask}; exec oci-fetch {args}"))
            .env("PATH", path_with_bins())
            .env("TMPDIR", self.tmp())
            .env("HOME", self.scratch.0.path())
            .env_remove("XDG_RUNTIME_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut list = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                list.read_line(&mut line).unwrap() > 0,
                "the list ended without #end: {lines:?}"
            );
            if line == "#end\n" {
                break;
            }
            lines.push(line.trim_end().to_owned());
        }
        Served {
            child,
            _list: list,
            lines,
        }
    }
}

fn path_with_bins() -> String {
    let bins = support::bin("oci-fetch").parent().unwrap().to_path_buf();
    format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A running `oci-fetch` and the list it printed; killed when dropped.
struct Served {
    child: Child,
    _list: BufReader<ChildStdout>,
    lines: Vec<String>,
}

impl Served {
    /// The layer paths and declared sizes of the list.
    fn layers(&self) -> Vec<(PathBuf, u64)> {
        self.lines
            .iter()
            .map(|line| {
                let mut fields = line.split('\t');
                let path = PathBuf::from(fields.next().unwrap());
                let size = fields
                    .find_map(|f| f.strip_prefix("size="))
                    .expect("a streamed layer declares its size")
                    .parse()
                    .unwrap();
                (path, size)
            })
            .collect()
    }

    /// The largest layer: larger than a pipe's buffer, so its serving
    /// thread is still writing after the reader's first byte.
    fn largest_layer(&self) -> PathBuf {
        let layers = self.layers();
        let (path, size) = layers.iter().max_by_key(|(_, size)| *size).unwrap();
        assert!(
            *size > 2 << 20,
            "the sample's largest layer is {size} bytes"
        );
        path.clone()
    }

    /// Waits up to `limit` for the process to end; its status and stderr.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, String)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return Some((status, err));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample_registry() -> Registry {
    let registry = Registry::start(Auth::None);
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "sample:1",
    );
    registry
}

/// The merged tar of the local copy of the sample.
fn local_merge() -> Vec<u8> {
    let work = Work::new();
    let out = work.sh(&format!(
        "oci-layers --tag sample '{}' | oci-merge",
        sample_layout().display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

fn assert_same_tar(fetched: &[u8], what: &str) {
    let local = local_merge();
    assert!(
        fetched == local,
        "{what}: the fetched merge differs from the local one ({} vs {} bytes)",
        fetched.len(),
        local.len()
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// The lines of a program's stderr.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

/// Asserts that `message` (what a program wrote on stderr) is one error
/// line of `program` that holds each of `needles`.
fn assert_error_line(message: &str, program: &str, needles: &[&str]) {
    let lines = lines(message);
    assert_eq!(lines.len(), 1, "{message}");
    let prefix = format!("{program}: error: ");
    assert!(
        lines[0].starts_with(&prefix) && needles.iter().all(|n| lines[0].contains(n)),
        "expected {prefix}... with {needles:?}: {message}"
    );
}

// ---------------------------------------------------------------------------
// The private directory of pipes.

#[test]
fn the_pipe_directory_is_private_whatever_the_umask() {
    require_root();
    let registry = sample_registry();
    let work = Work::new();
    for umask in ["000", "022"] {
        let served = work.serve(umask, &format!("{}/sample:1", registry.host()));
        let pipe = served.largest_layer();
        let dir = pipe.parent().unwrap();
        assert_eq!(mode(dir), 0o700, "umask {umask}: {}", dir.display());
        assert_eq!(std::fs::metadata(dir).unwrap().uid(), 0);
        assert_eq!(mode(&pipe), 0o600, "umask {umask}");
    }
}

/// How a local attacker replaces a pipe: with a symlink to a file the
/// server's user can write, or a hard link to it.
#[derive(Debug, Clone, Copy)]
enum Swap {
    Symlink,
    HardLink,
}

/// Another user cannot reach the pipes at all; and a pipe replaced behind
/// the server's back (done here by root, who can) is never written through.
#[test]
fn another_user_cannot_touch_the_pipes_and_a_swapped_pipe_is_never_written_through() {
    require_root();
    let registry = sample_registry();
    let work = Work::new();
    for swap in [Swap::Symlink, Swap::HardLink] {
        // umask 000: the directory was 0777 on main, open to anyone.
        let mut served = work.serve("000", &format!("{}/sample:1", registry.host()));
        let pipe = served.largest_layer();
        let victim = work.path("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, PermissionsExt::from_mode(0o600)).unwrap();

        let attempt = work.sh(&format!(
            "{AS_NOBODY} ln -sfn '{}' '{}'",
            victim.display(),
            pipe.display()
        ));
        assert!(
            !attempt.status.success(),
            "{swap:?}: nobody replaced a pipe"
        );
        assert!(is_fifo(&pipe), "{swap:?}: the pipe is still there");

        // Root reads the first byte: the serving thread has put a fresh
        // pipe under the name and is blocked writing the rest. Root swaps
        // the fresh pipe, then drains: the thread's next open finds the swap.
        let mut reader = std::fs::File::open(&pipe).unwrap();
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).unwrap();
        std::fs::remove_file(&pipe).unwrap();
        match swap {
            Swap::Symlink => std::os::unix::fs::symlink(&victim, &pipe).unwrap(),
            Swap::HardLink => std::fs::hard_link(&victim, &pipe).unwrap(),
        }
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        drop(reader);

        let ended = served.wait_for_exit(Duration::from_secs(10));
        let after = std::fs::read(&victim).unwrap();
        assert!(
            after == b"precious",
            "{swap:?}: the layer was written through the swapped pipe: the file now has {} bytes",
            after.len()
        );
        let (status, message) = ended.expect("oci-fetch refuses the swapped pipe and exits");
        assert!(!status.success(), "{swap:?}");
        let pipe_name = pipe.display().to_string();
        assert_error_line(&message, "oci-fetch", &[&pipe_name, "not the named pipe"]);
        std::fs::remove_file(&victim).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The --store layout.

#[test]
fn a_planted_lock_symlink_is_not_followed() {
    let registry = sample_registry();
    let work = Work::new();
    std::fs::create_dir(work.path("store")).unwrap();
    let target = work.path("created-through-the-link");
    std::os::unix::fs::symlink(&target, work.path("store/.oci-fetch.lock")).unwrap();
    let out = work.sh(&format!(
        "oci-fetch --store store {}/sample:1",
        registry.host()
    ));
    assert!(
        !target.exists(),
        "the lock was created through the planted link"
    );
    assert!(!out.status.success());
    assert_error_line(&stderr(&out), "oci-fetch", &[".oci-fetch.lock"]);
}

fn blob(work: &Work, digest: &str) -> PathBuf {
    work.path(&format!(
        "store/blobs/sha256/{}",
        digest.trim_start_matches("sha256:")
    ))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Blobs of the right size but the wrong bytes (zeroed, or a symlink to
/// zeros) are found on their next use, fetched again and replaced, each
/// with one warning; the merge then succeeds.
#[test]
fn bad_blobs_of_the_right_size_are_detected_and_fetched_again() {
    let registry = sample_registry();
    let work = Work::new();
    let reference = format!("{}/sample:1", registry.host());
    let first = work.sh(&format!("oci-fetch --store store {reference}"));
    assert!(first.status.success(), "{}", stderr(&first));
    let layers: Vec<PathBuf> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(layers.len(), 3);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path("store/index.json")).unwrap()).unwrap();
    let manifest = blob(&work, index["manifests"][0]["digest"].as_str().unwrap());

    let zero = |path: &Path| {
        let size = std::fs::metadata(path).unwrap().len() as usize;
        std::fs::write(path, vec![0u8; size]).unwrap();
    };
    zero(&layers[0]);
    zero(&manifest);
    let zeros = work.path("zeros");
    std::fs::write(
        &zeros,
        vec![0u8; std::fs::metadata(&layers[1]).unwrap().len() as usize],
    )
    .unwrap();
    std::fs::remove_file(&layers[1]).unwrap();
    std::os::unix::fs::symlink(&zeros, &layers[1]).unwrap();

    let out = work.sh(&format!(
        "oci-fetch --store store {reference} | oci-merge > merged.tar"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tar(&std::fs::read(work.path("merged.tar")).unwrap(), "repaired");
    let message = stderr(&out);
    let warnings = lines(&message);
    assert_eq!(warnings.len(), 3, "{message}");
    for bad in [&layers[0], &layers[1], &manifest] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.starts_with("oci-fetch: warning: ") && w.contains(name))
                .count(),
            1,
            "{name}: {message}"
        );
        let meta = std::fs::symlink_metadata(bad).unwrap();
        assert!(meta.is_file(), "{name} is a regular file again");
        assert_eq!(sha256_hex(&std::fs::read(bad).unwrap()), name);
    }
    assert!(std::fs::read(&zeros).unwrap().iter().all(|&b| b == 0));
    // The repaired store serves offline too.
    let offline = work.sh(&format!("oci-layers --tag {reference} store | oci-merge"));
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_same_tar(&offline.stdout, "offline");
    // And a good store is used quietly.
    let again = work.sh(&format!("oci-fetch --store store {reference}"));
    assert!(
        again.status.success() && again.stderr.is_empty(),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_corrupt_index_is_refused_before_any_download() {
    let registry = sample_registry();
    let proxy = Proxy::start(&registry.host(), &[]);
    let work = Work::new();
    std::fs::create_dir(work.path("store")).unwrap();
    std::fs::write(work.path("store/index.json"), b"{\"manifests\": [").unwrap();
    let out = work.sh(&format!(
        "oci-fetch --store store {}/sample:1",
        proxy.host()
    ));
    assert!(!out.status.success());
    assert_error_line(&stderr(&out), "oci-fetch", &["index.json"]);
    assert!(
        proxy.blob_gets().is_empty(),
        "blobs were downloaded first: {:#?}",
        proxy.blob_gets()
    );
}

// ---------------------------------------------------------------------------
// How long a streaming oci-fetch lives.

/// A proxy slow enough (1 MB/s, the sample is 4 MB) that a server that
/// stopped early would cut the merge.
fn slow_proxy(registry: &Registry) -> Proxy {
    Proxy::start(&registry.host(), &["--rate", "1000000"])
}

/// Readers oci-fetch cannot see in its /proc: in a pid namespace it does
/// not see (it runs in a new one with its own /proc, or with the host's
/// /proc whose pids are not its own), of another user (root, whose
/// descriptors nobody may read), behind another reader, or behind a named
/// FIFO.
#[test]
fn readers_oci_fetch_cannot_see_in_proc_are_served_to_the_end() {
    require_root();
    let registry = sample_registry();
    let proxy = slow_proxy(&registry);
    let reference = format!("{}/sample:1", proxy.host());
    for (what, script) in [
        (
            "its own pid namespace and /proc",
            format!(
                "unshare --pid --fork --mount-proc oci-fetch {reference} | oci-merge > merged.tar"
            ),
        ),
        (
            "its own pid namespace, the host's /proc",
            format!("unshare --pid --fork oci-fetch {reference} | oci-merge > merged.tar"),
        ),
        (
            "run as nobody, read by root",
            format!("{AS_NOBODY} oci-fetch {reference} | oci-merge > merged.tar"),
        ),
        (
            "behind tee, which it sees",
            format!("oci-fetch {reference} | tee list | oci-merge > merged.tar"),
        ),
        (
            "a named FIFO",
            format!(
                "mkfifo list; oci-fetch {reference} > list & fetch=$!; \
                 oci-merge < list > merged.tar; wait $fetch"
            ),
        ),
    ] {
        let work = Work::new();
        let start = Instant::now();
        let out = work.sh(&script);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{what}: {}", stderr(&out));
        assert_same_tar(&std::fs::read(work.path("merged.tar")).unwrap(), what);
        assert!(
            start.elapsed() > Duration::from_secs(2),
            "{what}: the proxy was not slow"
        );
        assert!(
            work.leftovers().is_empty(),
            "{what}: {:?}",
            work.leftovers()
        );
    }
}

/// A reader of another user cannot open this user's private pipes:
/// oci-fetch says so and fails, before serving anything.
#[test]
fn a_reader_of_another_user_is_refused() {
    require_root();
    let registry = sample_registry();
    let work = Work::new();
    let out = work.sh(&format!(
        "set +e; oci-fetch {}/sample:1 2> fetch.err | {AS_NOBODY} oci-merge > merged.tar 2> /dev/null; \
         echo ${{PIPESTATUS[0]}}",
        registry.host()
    ));
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let message = std::fs::read_to_string(work.path("fetch.err")).unwrap();
    assert_eq!(status, "1", "oci-fetch's status; it said: {message}");
    assert_error_line(&message, "oci-fetch", &["uid 65534"]);
    assert!(work.leftovers().is_empty(), "{:?}", work.leftovers());
}

/// A merge whose oci-fetch was killed (SIGKILL: no cleanup) fails at once
/// with one line instead of waiting forever for the layers; the next
/// oci-fetch removes the directory the killed one left, and only that:
/// not a live one's, not another user's.
#[test]
fn a_merge_whose_server_was_killed_fails_at_once_and_the_next_run_cleans_up() {
    require_root();
    let registry = sample_registry();
    let work = Work::new();
    let reference = format!("{}/sample:1", registry.host());
    let mut killed = work.serve("022", &reference);
    let list = format!("{}\n#end\n", killed.lines.join("\n"));
    let killed_dir = killed.largest_layer().parent().unwrap().to_path_buf();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    assert!(killed_dir.exists(), "SIGKILL leaves the directory");

    let start = Instant::now();
    let mut merge = Command::new(support::bin("oci-merge"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    merge
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let status = loop {
        if let Some(status) = merge.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = merge.kill();
            let _ = merge.wait();
            panic!("oci-merge still waits for the layers of a killed oci-fetch after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut message = String::new();
    merge
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut message)
        .unwrap();
    assert!(!status.success());
    assert_error_line(&message, "oci-merge", &["oci-fetch"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // A live server's directory, and another user's stale-looking one.
    let live = work.serve("022", &reference);
    let live_dir = live.largest_layer().parent().unwrap().to_path_buf();
    let foreign = work.tmp().join("oci-fetch.nobody");
    let made = work.sh(&format!(
        "{AS_NOBODY} sh -c 'mkdir -m 700 {0} && mkfifo {0}/session'",
        foreign.display()
    ));
    assert!(made.status.success(), "{}", stderr(&made));

    let next = work.sh(&format!("oci-fetch {reference} | oci-merge > merged.tar"));
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(
        !killed_dir.exists(),
        "the killed server's directory is removed"
    );
    assert!(live_dir.exists(), "a live server's directory is kept");
    assert!(foreign.exists(), "another user's directory is kept");
    drop(live);
}
