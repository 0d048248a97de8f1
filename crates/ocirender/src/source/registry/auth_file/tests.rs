use super::*;
use crate::source::registry::credentials::Environment;
use serde_json::json;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn key(text: &str) -> Key {
    Key::parse(text).unwrap_or_else(|e| panic!("{text}: {e:#}"))
}

fn basic(username: &str, password: &str) -> Secret {
    Secret::Basic {
        username: username.into(),
        password: password.into(),
    }
}

fn store(text: &str, username: &str, password: &str) -> Change {
    Change::Store(key(text), basic(username, password))
}

fn auth(user_password: &str) -> Value {
    json!({ "auth": STANDARD.encode(user_password) })
}

#[test]
fn keys_are_spelled_as_the_readers_look_them_up() {
    let cases = [
        ("quay.io", "quay.io"),
        ("Quay.IO", "quay.io"),
        ("quay.io/", "quay.io"),
        ("localhost:5000", "localhost:5000"),
        ("localhost", "localhost"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("http://localhost:5000/v2/", "localhost:5000"),
        ("docker://ghcr.io/org", "ghcr.io/org"),
        // Namespaces, as podman and skopeo keep them: not normalized
        // (Docker Hub's one-component names get no library/).
        ("quay.io/org", "quay.io/org"),
        ("quay.io/org/team/", "quay.io/org/team"),
        ("docker.io/vendor", "docker.io/vendor"),
        ("docker.io/library", "docker.io/library"),
        ("index.docker.io/vendor", "docker.io/vendor"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
    ];
    for (text, expected) in cases {
        assert_eq!(key(text).to_string(), expected, "{text}");
        // What was written is what the reader makes of it.
        assert_eq!(normalize_key(expected), expected, "{text}");
    }
    assert_eq!(key("https://index.docker.io/v1/").registry(), "docker.io");
    assert_eq!(key("quay.io/org").registry(), "quay.io");
}

#[test]
fn keys_that_no_reference_reaches_are_refused() {
    let cases = [
        ("quay.io/org/app:1", "a tag or a digest"),
        ("quay.io/app@sha256:abc", "a tag or a digest"),
        ("", "names no registry"),
        ("/org", "names no registry"),
        ("myhost", "not a registry host"),
        ("myhost/app", "not a registry host"),
        ("Localhost", "not a registry host"),
        ("quay.io:http", "bad port"),
        ("bad_host.io", "bad registry host"),
        ("quay.io/Org", "invalid namespace \"Org\""),
        ("quay.io/a//b", "invalid namespace"),
    ];
    for (text, message) in cases {
        let e = format!("{:#}", Key::parse(text).unwrap_err());
        assert!(e.contains(message), "{text}: {e}");
    }
}

/// Applies each change in turn to `document`; the final document, or
/// the first error.
fn edited(document: Value, changes: &[Change]) -> Result<Value, String> {
    let Value::Object(mut document) = document else {
        panic!("not an object");
    };
    for change in changes {
        apply_change(&mut document, change)?;
    }
    Ok(Value::Object(document))
}

/// What the changes do, the document before them, the changes, and the
/// document after them or a part of the error.
type Case = (
    &'static str,
    Value,
    Vec<Change>,
    Result<Value, &'static str>,
);

#[test]
fn changes_keep_every_other_entry_and_field() {
    let docker_config = json!({
        "auths": {
            "https://index.docker.io/v1/": auth("hub:old"),
            "quay.io": {"auth": STANDARD.encode("q:pw"), "email": "kept@example.com"},
        },
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"User-Agent": "x"},
        "currentContext": "default",
    });
    let cases: Vec<Case> = vec![
        (
            "a login into no file",
            json!({}),
            vec![store("localhost:5000", "alice", "s3cr:et")],
            Ok(json!({"auths": {"localhost:5000": auth("alice:s3cr:et")}})),
        ),
        (
            "a login beside a Docker config's entries and settings",
            docker_config.clone(),
            vec![store("ghcr.io/org", "bob", "pw")],
            Ok({
                let mut v = docker_config.clone();
                v["auths"]["ghcr.io/org"] = auth("bob:pw");
                v
            }),
        ),
        (
            "a login over Docker Hub's URL key adds docker.io beside it",
            docker_config.clone(),
            vec![store("index.docker.io", "hub", "new")],
            Ok({
                let mut v = docker_config.clone();
                v["auths"]["docker.io"] = auth("hub:new");
                v
            }),
        ),
        (
            "a login replaces the whole entry of its key, identity token too",
            json!({"auths": {"quay.io": {"identitytoken": "rt", "auth": "x"}, "a.io": {}}}),
            vec![store("quay.io", "u", "p")],
            Ok(json!({"auths": {"quay.io": auth("u:p"), "a.io": {}}})),
        ),
        (
            "a logout removes the key under each of its spellings, and only those",
            json!({"auths": {
                "docker.io": auth("a:1"),
                "https://index.docker.io/v1/": auth("b:2"),
                "docker.io/vendor": auth("c:3"),
                "quay.io": auth("d:4"),
            }, "credsStore": "desktop"}),
            vec![Change::Remove(key("docker.io"))],
            Ok(
                json!({"auths": {"docker.io/vendor": auth("c:3"), "quay.io": auth("d:4")},
                      "credsStore": "desktop"}),
            ),
        ),
        (
            "a logout of a namespace leaves its registry",
            json!({"auths": {"quay.io": auth("a:1"), "quay.io/org": auth("b:2")}}),
            vec![Change::Remove(key("quay.io/org"))],
            Ok(json!({"auths": {"quay.io": auth("a:1")}})),
        ),
        (
            "a logout of what is not there",
            json!({"auths": {"quay.io/org": auth("b:2")}}),
            vec![Change::Remove(key("quay.io"))],
            Err("not logged in to quay.io"),
        ),
        (
            "a logout from a file without auths",
            json!({"credsStore": "desktop"}),
            vec![Change::Remove(key("quay.io"))],
            Err("not logged in to quay.io"),
        ),
        (
            "logging out of everything keeps the helpers",
            docker_config.clone(),
            vec![Change::RemoveAll],
            Ok({
                let mut v = docker_config.clone();
                v["auths"] = json!({});
                v
            }),
        ),
        (
            "logging out of everything adds nothing to a file without auths",
            json!({"credsStore": "desktop"}),
            vec![Change::RemoveAll],
            Ok(json!({"credsStore": "desktop"})),
        ),
        (
            "a registry whose credentials a helper keeps",
            json!({"credHelpers": {"https://index.docker.io/v1/": "pass"}}),
            vec![store("docker.io/vendor", "u", "p")],
            Err("kept by the credential helper docker-credential-pass"),
        ),
        (
            "auths that is not an object",
            json!({"auths": []}),
            vec![store("quay.io", "u", "p")],
            Err("\"auths\" is not a JSON object"),
        ),
    ];
    for (what, document, changes, expected) in cases {
        match (edited(document, &changes), expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{what}"),
            (Err(got), Err(expected)) => assert!(got.contains(expected), "{what}: {got}"),
            (got, expected) => panic!("{what}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn the_file_is_written_as_podman_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.json");
    let file = AuthFile::new(&path).unwrap();
    file.apply(&store("localhost:5111", "alice", "s3cr:et"))
        .unwrap();
    // skopeo login's bytes for the same login (research, section 3.2).
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\n\t\"auths\": {\n\t\t\"localhost:5111\": {\n\t\t\t\"auth\": \"YWxpY2U6czNjcjpldA==\"\n\t\t}\n\t}\n}"
    );
    let applied = file.apply(&Change::RemoveAll).unwrap();
    assert_eq!(
        applied,
        Applied {
            removed: 1,
            written: true
        }
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "{\n\t\"auths\": {}\n}");
}

/// What the reader finds for a reference in the file written.
fn read_back(path: &Path, reference: &str) -> Option<String> {
    let (found, _) = Environment::default()
        .lookup(&reference.parse().unwrap(), Some(path))
        .unwrap();
    found.map(|found| format!("{:?}", found.secret))
}

#[test]
fn what_is_written_is_what_the_reader_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.json");
    let file = AuthFile::new(&path).unwrap();
    for change in [
        store("quay.io", "registry-user", "p1"),
        store("quay.io/org", "org-user", "p2"),
        store("registry-1.docker.io", "hub", "p3"),
    ] {
        file.apply(&change).unwrap();
    }
    let user = |reference: &str| {
        let (found, _) = Environment::default()
            .lookup(&reference.parse().unwrap(), Some(&path))
            .unwrap();
        found.and_then(|f| f.secret.username().map(str::to_owned))
    };
    assert_eq!(user("quay.io/org/app").as_deref(), Some("org-user"));
    assert_eq!(user("quay.io/other/app").as_deref(), Some("registry-user"));
    assert_eq!(user("debian").as_deref(), Some("hub"));
    assert!(read_back(&path, "ghcr.io/a").is_none());
    file.apply(&Change::Remove(key("quay.io/org"))).unwrap();
    assert_eq!(user("quay.io/org/app").as_deref(), Some("registry-user"));
}

/// (tests/login.rs runs this under a umask that takes the owner's bits
/// away; a umask is the process's, so it is not changed here.)
#[test]
fn directories_are_made_private_and_the_file_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/containers/auth.json");
    AuthFile::new(&path)
        .unwrap()
        .apply(&store("quay.io", "u", "p"))
        .unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("run/containers")), 0o700);
    assert_eq!(mode(&dir.path().join("run")), 0o700);
    // Nothing but the file is left beside it.
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["auth.json"]);
}

#[test]
fn a_symlink_or_another_users_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.json");
    fs::write(&target, "{}").unwrap();
    let link = dir.path().join("auth.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let file = AuthFile::new(&link).unwrap();
    for change in [store("quay.io", "u", "p"), Change::RemoveAll] {
        let e = format!("{:#}", file.apply(&change).unwrap_err());
        assert!(e.contains("a symbolic link"), "{e}");
        let e = format!("{:#}", file.check(&change).unwrap_err());
        assert!(e.contains("a symbolic link"), "{e}");
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "{}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // Another user's file (root can make one; others cannot test this).
    if rustix::process::geteuid().is_root() {
        let theirs = dir.path().join("theirs.json");
        fs::write(&theirs, "{}").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let e = format!(
            "{:#}",
            AuthFile::new(&theirs)
                .unwrap()
                .apply(&store("quay.io", "u", "p"))
                .unwrap_err()
        );
        assert!(e.contains("owned by uid 65534"), "{e}");
        assert_eq!(fs::read_to_string(&theirs).unwrap(), "{}");
        assert_eq!(fs::metadata(&theirs).unwrap().uid(), 65534);
    }
}

#[test]
fn a_bad_file_is_an_error_and_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.json");
    let cases: [(&[u8], &str); 4] = [
        (b"", "not valid JSON"),
        (b"{\"auths\": ", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{\"auths\": 1}", "\"auths\" is not a JSON object"),
    ];
    for (bytes, message) in cases {
        fs::write(&path, bytes).unwrap();
        let e = format!(
            "{:#}",
            AuthFile::new(&path)
                .unwrap()
                .apply(&store("quay.io", "u", "p"))
                .unwrap_err()
        );
        assert!(e.contains(message) && e.contains("auth.json"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
    let big = vec![b' '; MAX_AUTH_FILE as usize + 1];
    fs::write(&path, &big).unwrap();
    let e = format!(
        "{:#}",
        AuthFile::new(&path)
            .unwrap()
            .apply(&Change::RemoveAll)
            .unwrap_err()
    );
    assert!(e.contains("more than the 1048576"), "{e}");
}

#[test]
fn a_directory_anyone_may_write_to_is_refused_unless_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let file = AuthFile::new(&shared.join("auth.json")).unwrap();
    let e = format!("{:#}", file.apply(&store("quay.io", "u", "p")).unwrap_err());
    assert!(e.contains("not sticky"), "{e}");
    assert!(!shared.join("auth.json").exists());
    // /tmp's way: sticky, so no one replaces another's file.
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    file.apply(&store("quay.io", "u", "p")).unwrap();
}

#[test]
fn removing_from_no_file_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none/auth.json");
    let file = AuthFile::new(&path).unwrap();
    assert_eq!(
        file.apply(&Change::RemoveAll).unwrap(),
        Applied {
            removed: 0,
            written: false
        }
    );
    let e = format!(
        "{:#}",
        file.apply(&Change::Remove(key("quay.io"))).unwrap_err()
    );
    assert!(e.contains("not logged in to quay.io"), "{e}");
    assert!(!dir.path().join("none").exists());
}
