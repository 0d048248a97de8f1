//! The copyable parts of the documentation, run as a user would: the
//! `examples/Makefile` cookbook, and every recipe in README's "Recipes".

mod support;

use std::path::{Path, PathBuf};
use support::fixtures::{sample_derived, sample_layout, skopeo_copy};
use support::{sh_env, stderr, Scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn zstd_layout() -> PathBuf {
    sample_derived("zstd", |src, out| {
        skopeo_copy(
            &["--dest-compress-format", "zstd"],
            &format!("oci:{}:sample", src.display()),
            &format!("oci:{}:sample", out.display()),
        )
    })
}

fn run(dir: &Path, script: &str) -> String {
    let out = sh_env(dir, &[], script);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
}

fn make(dir: &Path) -> String {
    run(
        dir,
        &format!(
            "make --no-print-directory -j2 -f '{}'",
            repo().join("examples/Makefile").display()
        ),
    )
}

/// a: a layout, b: another (argument), c: a registry reference.
fn write_images(dir: &Path, b: &Path, c: &str) {
    std::fs::write(
        dir.join("images.mk"),
        format!(
            "IMAGES := a b c\n\
             SOURCE.a := oci-layers --tag sample '{}'\n\
             SOURCE.b := oci-layers --tag sample '{}'\n\
             SOURCE.c := oci-fetch {c}\n",
            sample_layout().display(),
            b.display()
        ),
    )
    .unwrap();
}

fn snapshot(dir: &Path) -> Vec<(std::time::SystemTime, Vec<u8>)> {
    ["out/a.sqfs", "out/b.sqfs", "out/c.sqfs"]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            (
                std::fs::metadata(&path).unwrap().modified().unwrap(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_makefile_builds_in_parallel_and_rebuilds_only_what_changed() {
    let registry = support::registry::Registry::start(support::registry::Auth::None);
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "sample:1",
    );
    let reference = format!("{}/sample:1", registry.host());
    let scratch = Scratch::new();
    let dir = scratch.0.path();
    write_images(dir, &zstd_layout(), &reference);
    let first = make(dir);
    assert_eq!(first.matches("tar2sqfs").count(), 3, "{first}");
    let built = snapshot(dir);
    // The images are what the pipeline gives by hand, byte for byte.
    run(
        dir,
        &format!(
            "oci-layers --tag sample '{}' | oci-merge | tar2sqfs by-hand.sqfs",
            sample_layout().display()
        ),
    );
    assert!(std::fs::read(dir.join("by-hand.sqfs")).unwrap() == built[0].1);
    assert!(
        built[2].1 == built[0].1,
        "the registry copy gives the same image"
    );

    let second = make(dir);
    assert!(!second.contains("tar2sqfs"), "nothing rebuilt: {second}");
    assert_eq!(snapshot(dir), built, "untouched, byte for byte");

    // b now names another image: only b is rebuilt.
    let other = sample_derived("cookbook-other", |src, out| {
        skopeo_copy(
            &[
                "--dest-compress-format",
                "gzip",
                "--dest-compress-level",
                "1",
            ],
            &format!("oci:{}:sample", src.display()),
            &format!("oci:{}:sample", out.display()),
        )
    });
    write_images(dir, &other, &reference);
    let third = make(dir);
    assert_eq!(third.matches("tar2sqfs").count(), 1, "{third}");
    assert!(third.contains("out/b.sqfs"), "{third}");
    let after = snapshot(dir);
    assert_eq!(after[0], built[0], "a untouched");
    assert_eq!(after[2], built[2], "c untouched");
}

/// The fenced `sh` blocks of README's "Recipes" section.
fn readme_recipes() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Recipes\n")
        .nth(1)
        .expect("README has a Recipes section");
    let section = section.split("\n## ").next().unwrap();
    let mut recipes = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            recipes.push(body.join("\n"));
        }
    }
    recipes
}

#[test]
fn every_readme_recipe_runs_as_written() {
    use support::registry::{Auth, Registry};
    let recipes = readme_recipes();
    assert!(recipes.len() >= 5, "{recipes:?}");
    let registry = Registry::start(Auth::None);
    registry.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "sample:1",
    );
    let multi = support::fixtures::multi_platform_layout();
    registry.push(&format!("oci:{}:multi", multi.display()), "multi:1");
    let private = Registry::start(Auth::basic("ci", "cookbook-pass"));
    private.push(
        &format!("oci:{}:sample", sample_layout().display()),
        "private/app:1",
    );
    let image = sample_layout().display().to_string();
    let reference = format!("{}/sample:1", registry.host());
    let multi_reference = format!("{}/multi:1", registry.host());
    for recipe in recipes {
        let scratch = Scratch::new();
        let dir = scratch.0.path().to_str().unwrap();
        let out = sh_env(
            scratch.0.path(),
            &[
                ("IMAGE", &image),
                ("REF", &reference),
                ("MULTI_REF", &multi_reference),
                ("REGISTRY", &private.host()),
                ("PASS", "cookbook-pass"),
                ("TMPDIR", dir),
                // A login's auth.json, here rather than in the machine's /run.
                ("XDG_RUNTIME_DIR", dir),
            ],
            &recipe,
        );
        assert!(out.status.success(), "{recipe}\n{}", stderr(&out));
        assert!(stderr(&out).is_empty(), "quiet: {recipe}\n{}", stderr(&out));
        let made: Vec<_> = std::fs::read_dir(scratch.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!made.is_empty(), "{recipe} made nothing");
        for file in &made {
            let path = scratch.0.path().join(file);
            if path.is_file() {
                assert!(
                    std::fs::metadata(&path).unwrap().len() > 0,
                    "{recipe}: {file} is empty"
                );
            }
        }
    }
}
