//! `oci-login` end to end, against real registries (Debian's
//! `docker-registry` with htpasswd basic auth, and with the test token
//! issuer): the file it writes is all a private `oci-fetch` needs, and
//! what podman and skopeo read and write; wrong credentials write nothing
//! and print no secret; the rest of the file survives; the file is
//! private, never written through a symlink; logout removes exactly what
//! it names; the password never goes on a command line.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use support::fixtures::sample_layout;
use support::registry::{Auth, Proxy, Registry, TokenPolicy};
use support::terminal::Tmux;
use support::{sh_env, stderr, Scratch};

const USER: &str = "alice";
const PASSWORD: &str = "s3cr:et pass";

/// Runs a bash script in `work` (also its HOME, empty so that no
/// credentials of the machine's user leak in, and its TMPDIR), with `env`.
fn sh(work: &Scratch, env: &[(&str, &str)], script: &str) -> Output {
    let dir = work.0.path().to_str().unwrap();
    let mut all = vec![("TMPDIR", dir)];
    all.extend_from_slice(env);
    sh_env(work.0.path(), &all, script)
}

/// `oci-login` with `password` piped in from the environment (so it is on
/// no command line, not even the test's), and `flags`.
fn login(work: &Scratch, env: &[(&str, &str)], password: &str, flags: &str) -> Output {
    let mut all = vec![("PASS", password)];
    all.extend_from_slice(env);
    sh(
        work,
        &all,
        &format!("printf '%s' \"$PASS\" | oci-login --password-stdin {flags}"),
    )
}

/// A private fetch that must succeed: the merged tar.
fn fetch(work: &Scratch, env: &[(&str, &str)], image: &str) -> Vec<u8> {
    let out = sh(work, env, &format!("oci-fetch {image} | oci-merge"));
    assert!(out.status.success(), "{image}: {}", stderr(&out));
    out.stdout
}

/// The merged tar of the sample image, as `oci-layers` gives it locally.
fn local_merge() -> Vec<u8> {
    let out = sh(
        &Scratch::new(),
        &[],
        &format!(
            "oci-layers --tag sample '{}' | oci-merge",
            sample_layout().display()
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

fn basic_registry() -> Registry {
    let registry = Registry::start(Auth::basic(USER, PASSWORD));
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "sample:1",
    );
    registry
}

/// A token registry whose issuer refuses wrong credentials, as Docker
/// Hub's does (a lenient issuer's anonymous token would get them in).
fn token_registry() -> Registry {
    let policy = TokenPolicy {
        reject_wrong_credentials: true,
        ..TokenPolicy::new(USER, PASSWORD)
    };
    let registry = Registry::start(Auth::Token(policy));
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "private/sample:1",
    );
    registry
}

fn assert_ok_and_quiet(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{what}: not quiet: {}",
        stderr(out)
    );
}

/// Neither the password nor the stored value (base64 of user:password)
/// in anything printed.
fn assert_no_secret(out: &Output) {
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    for secret in [PASSWORD, "wrong-pass", stored.as_str()] {
        assert!(!printed.contains(secret), "a secret was printed: {printed}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn stored_auth() -> serde_json::Value {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    serde_json::json!({ "auth": auth })
}

#[test]
fn a_basic_auth_login_is_all_a_private_fetch_needs() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let local = local_merge();
    let image = format!("{host}/sample:1");

    // REGISTRY_AUTH_FILE, in directories that do not exist yet, under a
    // umask that takes the owner's own bits away.
    let file = work.path("auth/containers/auth.json");
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
    let out = sh(
        &work,
        &[("PASS", PASSWORD), env[0]],
        &format!(
            "umask 0377; printf '%s' \"$PASS\" | \
             oci-login --password-stdin --username {USER} {host}"
        ),
    );
    assert_ok_and_quiet(&out, "login");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&work.path("auth/containers")), 0o700);
    assert_eq!(mode(&work.path("auth")), 0o700);
    assert_eq!(
        json(&file),
        serde_json::json!({"auths": {host.clone(): stored_auth()}})
    );
    assert!(fetch(&work, &env, &image) == local, "REGISTRY_AUTH_FILE");

    // The default: $XDG_RUNTIME_DIR/containers/auth.json; -v says so.
    let runtime = work.path("run");
    std::fs::create_dir(&runtime).unwrap();
    let env = [("XDG_RUNTIME_DIR", runtime.to_str().unwrap())];
    let out = login(
        &work,
        &env,
        PASSWORD,
        &format!("-v --username {USER} {host}"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = runtime.join("containers/auth.json");
    assert_eq!(
        stderr(&out),
        format!(
            "oci-login: logged in to {host} as {USER} ({})\n",
            written.display()
        )
    );
    assert_eq!(mode(&written), 0o600);
    assert_eq!(mode(&runtime.join("containers")), 0o700);
    assert!(fetch(&work, &env, &image) == local, "XDG_RUNTIME_DIR");
    assert_no_secret(&out);

    // An XDG_RUNTIME_DIR that does not exist is the session's mistake.
    let gone = work.path("gone");
    let out = login(
        &work,
        &[("XDG_RUNTIME_DIR", gone.to_str().unwrap())],
        PASSWORD,
        &format!("--username {USER} {host}"),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("XDG_RUNTIME_DIR"), "{}", stderr(&out));
    assert!(!gone.exists());
}

#[test]
fn a_token_login_gets_a_token_with_the_credentials_for_no_repository() {
    let registry = token_registry();
    let host = registry.host();
    let issuer = registry.token_issuer().unwrap();
    let work = Scratch::new();
    let file = work.path("auth.json");
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];

    let before = issuer.requests().len();
    let out = login(&work, &env, PASSWORD, &format!("--username {USER} {host}"));
    assert_ok_and_quiet(&out, "login");
    let asked = &issuer.requests()[before..];
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].user.as_deref(), Some(USER));
    assert!(
        asked[0].authenticated && asked[0].scopes.is_empty(),
        "{asked:?}"
    );
    let fetched = fetch(&work, &env, &format!("{host}/private/sample:1"));
    assert!(fetched == local_merge(), "token login");

    // Wrong: the issuer refuses them, nothing is written.
    let wrong = work.path("wrong.json");
    let out = login(
        &work,
        &[("REGISTRY_AUTH_FILE", wrong.to_str().unwrap())],
        "wrong-pass",
        &format!("--username {USER} {host}"),
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!("oci-login: error: access denied for user {USER} at {host}\n")
    );
    assert!(!wrong.exists());
    assert_no_secret(&out);
}

/// The file the wrong logins must leave alone: another registry's entry,
/// an entry of this one, helpers and fields this tool does not know.
fn existing_file(work: &Scratch, host: &str) -> PathBuf {
    let file = work.path("existing/auth.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let document = serde_json::json!({
        "auths": {
            "quay.io": {"auth": "cXVheTpwdw==", "email": "kept@example.com"},
            host: {"auth": "b2xkOm9sZA=="},
        },
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"User-Agent": "kept"},
        "unknown": [1, {"nested": true}],
    });
    // Not the format this tool writes, so that a rewrite would show.
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    file
}

#[test]
fn wrong_credentials_change_nothing_and_print_no_secret() {
    for registry in [basic_registry(), token_registry()] {
        let host = registry.host();
        let work = Scratch::new();
        let file = existing_file(&work, &host);
        let before = std::fs::read(&file).unwrap();
        let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
        for (user, password) in [(USER, "wrong-pass"), ("mallory", PASSWORD)] {
            let out = login(&work, &env, password, &format!("--username {user} {host}"));
            assert!(!out.status.success(), "{user}");
            assert_eq!(
                stderr(&out),
                format!("oci-login: error: access denied for user {user} at {host}\n")
            );
            assert!(out.stdout.is_empty());
            assert_no_secret(&out);
            assert!(std::fs::read(&file).unwrap() == before, "the file changed");
            assert_eq!(mode(&file), 0o640);
        }
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["auth.json"], "nothing left beside it");
    }
}

#[test]
fn a_login_keeps_every_other_entry_and_field() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let file = existing_file(&work, &host);
    let mut expected = json(&file);
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
    let out = login(&work, &env, PASSWORD, &format!("--username {USER} {host}"));
    assert_ok_and_quiet(&out, "login");
    expected["auths"][&host] = stored_auth();
    assert_eq!(json(&file), expected);
    assert_eq!(mode(&file), 0o600, "replaced by a private file");
    // credsStore names a helper that is not installed: the entry written
    // is found before it is asked.
    assert!(fetch(&work, &env, &format!("{host}/sample:1")) == local_merge());
}

/// skopeo and podman share containers/image's auth.json code: what they
/// write is what oci-login writes, byte for byte, and each reads the
/// other's.
#[test]
fn skopeo_writes_the_same_file_and_reads_ours() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let ours = work.path("ours.json");
    let out = login(
        &work,
        &[("REGISTRY_AUTH_FILE", ours.to_str().unwrap())],
        PASSWORD,
        &format!("--username {USER} {host}"),
    );
    assert_ok_and_quiet(&out, "oci-login");

    let theirs = work.path("theirs.json");
    let out = sh(
        &work,
        &[
            ("PASS", PASSWORD),
            ("REGISTRY_AUTH_FILE", theirs.to_str().unwrap()),
        ],
        &format!(
            "printf '%s' \"$PASS\" | skopeo login --tls-verify=false --username {USER} \
             --password-stdin {host}"
        ),
    );
    assert!(out.status.success(), "skopeo login: {}", stderr(&out));
    assert_eq!(
        String::from_utf8(std::fs::read(&ours).unwrap()).unwrap(),
        String::from_utf8(std::fs::read(&theirs).unwrap()).unwrap()
    );

    let out = sh(
        &work,
        &[],
        &format!(
            "skopeo inspect --tls-verify=false --authfile '{}' docker://{host}/sample:1",
            ours.display()
        ),
    );
    assert!(out.status.success(), "skopeo inspect: {}", stderr(&out));
    // And oci-fetch reads skopeo's.
    let env = [("REGISTRY_AUTH_FILE", theirs.to_str().unwrap())];
    assert!(fetch(&work, &env, &format!("{host}/sample:1")) == local_merge());
}

#[test]
fn a_symlink_at_the_auth_path_is_refused_before_anything_is_sent() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let target = work.path("target.json");
    std::fs::write(&target, "{}").unwrap();
    let link = work.path("auth.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let requests = || registry.log().matches("\"GET /v2/").count();
    let before = requests();
    for flags in [
        format!("--username {USER} {host}"),
        format!("--authfile '{}' --username {USER} {host}", link.display()),
    ] {
        let out = login(
            &work,
            &[("REGISTRY_AUTH_FILE", link.to_str().unwrap())],
            PASSWORD,
            &flags,
        );
        assert!(!out.status.success(), "{flags}");
        let message = stderr(&out);
        assert!(
            message.contains("auth.json: a symbolic link") && message.lines().count() == 1,
            "{message}"
        );
    }
    let out = sh(
        &work,
        &[],
        &format!("oci-login --authfile '{}' --logout --all", link.display()),
    );
    assert!(stderr(&out).contains("a symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(requests(), before, "the registry was asked");
}

#[test]
fn logout_removes_exactly_the_entry_named() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let file = existing_file(&work, &host);
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
    let out = login(&work, &env, PASSWORD, &format!("--username {USER} {host}"));
    assert_ok_and_quiet(&out, "login");
    let mut expected = json(&file);
    fetch(&work, &env, &format!("{host}/sample:1"));

    let out = sh(&work, &env, &format!("oci-login --logout {host}"));
    assert_ok_and_quiet(&out, "logout");
    expected["auths"]
        .as_object_mut()
        .unwrap()
        .remove(&host)
        .unwrap();
    assert_eq!(json(&file), expected);
    // The file's credsStore is asked instead, and its helper is not here.
    let out = sh(&work, &env, &format!("oci-fetch --json {host}/sample:1"));
    assert!(
        stderr(&out).contains("docker-credential-desktop"),
        "{}",
        stderr(&out)
    );

    // Not logged in: an error, and the file as it was.
    let before = std::fs::read(&file).unwrap();
    let out = sh(&work, &env, &format!("oci-login --logout {host}"));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "oci-login: error: {}: not logged in to {host}\n",
            file.display()
        )
    );
    assert!(std::fs::read(&file).unwrap() == before);

    // Everything: auths emptied, the helpers and the rest kept.
    let out = sh(&work, &env, "oci-login --logout --all -v");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "oci-login: removed 1 stored credential for every registry ({})\n",
            file.display()
        )
    );
    expected["auths"] = serde_json::json!({});
    assert_eq!(json(&file), expected);
}

#[test]
fn the_password_is_never_an_argument() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let file = work.path("auth.json");
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
    // No such option: a usage error from the argument parser.
    let out = sh(
        &work,
        &env,
        &format!("oci-login --username {USER} --password wrong-pass {host}"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unexpected argument '--password'"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("wrong-pass"), "{}", stderr(&out));
    // Without --password-stdin, a stdin that is not a terminal is not read.
    let out = sh(
        &work,
        &[("PASS", PASSWORD), env[0]],
        &format!("printf '%s' \"$PASS\" | oci-login --username {USER} {host}"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
    // --password-stdin takes stdin: the user name must be given.
    let out = login(&work, &env, PASSWORD, &host);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--username"), "{}", stderr(&out));
    assert!(!file.exists());
}

/// A token registry behind a proxy that moves its realm to plain HTTP at
/// an address that is not loopback by its text: the credentials may not
/// go there, and an anonymous token would check nothing, so the login
/// fails unchecked and sends them nowhere.
#[test]
fn a_login_whose_token_service_may_not_get_the_credentials_fails_unchecked() {
    let registry = token_registry();
    let issuer = registry.token_issuer().unwrap();
    let proxy = Proxy::start(&registry.host(), &["--realm-host", "0.0.0.0"]);
    let work = Scratch::new();
    let file = work.path("auth.json");
    let before = issuer.requests().len();
    let out = login(
        &work,
        &[("REGISTRY_AUTH_FILE", file.to_str().unwrap())],
        PASSWORD,
        &format!("--username {USER} {}", proxy.host()),
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("cannot be checked") && message.contains("0.0.0.0"),
        "{message}"
    );
    assert!(!file.exists());
    let asked = &issuer.requests()[before..];
    assert!(asked.iter().all(|r| r.user.is_none()), "{asked:?}");
    assert!(proxy
        .log()
        .iter()
        .filter(|e| e["listener"] == "realm")
        .all(|e| e["authorization"] == false));
}

/// A registry that asks for no credentials cannot check them: they are
/// stored, with a warning that says so.
#[test]
fn an_open_registry_cannot_check_credentials_and_says_so() {
    let registry = Registry::start(Auth::None);
    let host = registry.host();
    let work = Scratch::new();
    let file = work.path("auth.json");
    let env = [("REGISTRY_AUTH_FILE", file.to_str().unwrap())];
    let out = login(&work, &env, PASSWORD, &format!("--username {USER} {host}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "oci-login: warning: {host} asks for no credentials at /v2/, so it cannot \
             check them: stored unchecked\n"
        )
    );
    assert_eq!(
        json(&file),
        serde_json::json!({"auths": {host: stored_auth()}})
    );
}

/// Without XDG_RUNTIME_DIR (a login over su, or cron), podman and skopeo
/// keep credentials in /run/containers/UID/auth.json, and so do oci-login
/// and oci-fetch. Run in a mount namespace with its own /run, so the
/// machine's is not touched.
#[test]
fn without_xdg_runtime_dir_the_file_is_run_containers_uid() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let unshare = if rustix::process::geteuid().is_root() {
        "unshare --mount --propagation private"
    } else {
        "unshare --map-root-user --mount --propagation private"
    };
    let out = sh(
        &work,
        &[("PASS", PASSWORD)],
        &format!(
            "{unshare} bash -euo pipefail -c '
                mount -t tmpfs tmpfs /run
                printf %s \"$PASS\" | oci-login --username {USER} --password-stdin {host}
                dir=/run/containers/$(id -u)
                stat -c %a \"$dir\" \"$dir/auth.json\"
                oci-fetch {host}/sample:1 | oci-merge > fetched.tar'"
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "700\n600\n");
    assert!(std::fs::read(work.path("fetched.tar")).unwrap() == local_merge());
}

/// A person at a terminal (tmux) is asked for the user name and for the
/// password, which is not echoed.
#[test]
fn a_terminal_is_asked_for_the_user_and_the_password_without_echo() {
    let registry = basic_registry();
    let host = registry.host();
    let work = Scratch::new();
    let file = work.path("auth.json");
    let login = support::bin("oci-login");
    let command = format!(
        "'{}' --authfile '{}' {host}; echo \"exit $?\"",
        login.display(),
        file.display()
    );
    let tmux = Tmux::start(work.0.path(), 120, &command);
    let screen = || tmux.screen(false).join("\n");
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = screen();
            if shown.contains(text) {
                return shown;
            }
            assert!(Instant::now() < deadline, "no {text:?} on screen:\n{shown}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // capture-pane drops the spaces at the ends of lines.
    wait_for("Username:");
    tmux.run(&["send-keys", USER, "Enter"]);
    wait_for("Password:");
    tmux.run(&["send-keys", "-l", PASSWORD]);
    tmux.run(&["send-keys", "Enter"]);
    let shown = wait_for("exit");
    drop(tmux);
    assert!(shown.contains("exit 0"), "{shown}");
    assert!(
        !shown.contains(PASSWORD),
        "the password was echoed:\n{shown}"
    );
    assert_eq!(
        json(&file),
        serde_json::json!({"auths": {host: stored_auth()}})
    );
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        std::fs::metadata(&file).unwrap().uid(),
        rustix::process::geteuid().as_raw()
    );
}
