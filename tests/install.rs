//! `scripts/install` into a temporary prefix, checked the way a user
//! would: the binaries run, `man -l` renders each page with the sections
//! `--help` has, and bash completion registers after sourcing the script.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, stderr};

const BINARIES: &[&str] = &[
    "oci-layers",
    "oci-fetch",
    "oci-login",
    "oci-merge",
    "oci-runtime-config",
    "tar2dir",
    "tar2sqfs",
    "tar2erofs",
    "oci-verify",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Installs the already-built debug binaries into `prefix`.
fn install(prefix: &Path, destdir: Option<&Path>) {
    let target = bin("oci-merge")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut command = Command::new(repo().join("scripts/install"));
    command
        .args(["--profile", "debug", "--no-build"])
        .arg(prefix)
        .env("CARGO_TARGET_DIR", &target);
    if let Some(destdir) = destdir {
        command.env("DESTDIR", destdir);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "scripts/install: {}", stderr(&out));
}

#[test]
fn install_puts_binaries_man_pages_and_completions_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("usr");
    install(&prefix, None);
    for name in BINARIES {
        let out = Command::new(prefix.join("bin").join(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --version");
        for file in [
            format!("share/man/man1/{name}.1"),
            format!("share/bash-completion/completions/{name}"),
            format!("share/zsh/site-functions/_{name}"),
            format!("share/fish/vendor_completions.d/{name}.fish"),
        ] {
            let path = prefix.join(&file);
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{file}: {e}"))
                .len();
            assert!(len > 0, "{file} is empty");
        }
        // The page renders, with clap's sections and the ones --help has.
        let out = Command::new("man")
            .arg("-l")
            .arg(prefix.join(format!("share/man/man1/{name}.1")))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l {name}: {}", stderr(&out));
        let page = String::from_utf8_lossy(&out.stdout);
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "EXAMPLES"] {
            assert!(page.contains(section), "{name}: no {section} in\n{page}");
        }
        let help = Command::new(bin(name)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for heading in help
            .lines()
            .filter(|l| is_heading(l))
            .skip_while(|l| !l.starts_with("Options"))
            .skip(1)
        {
            assert!(
                page.contains(heading.trim()),
                "{name}: --help has {heading:?}, the page does not"
            );
        }
        // bash registers the completion when the script is sourced.
        let script = prefix.join(format!("share/bash-completion/completions/{name}"));
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && complete -p {name}",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(name),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// A section heading of `--help`'s trailing text: unindented, in capitals.
fn is_heading(line: &str) -> bool {
    !line.starts_with(' ')
        && line.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && line
            .split(' ')
            .next()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase()))
}

#[test]
fn destdir_stages_the_install_for_packagers() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    install(Path::new("/usr/local"), Some(&stage));
    assert!(stage.join("usr/local/bin/oci-merge").exists());
    assert!(stage.join("usr/local/share/man/man1/oci-merge.1").exists());
}
