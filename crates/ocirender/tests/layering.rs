//! The crate's folders depend on each other in one direction, the
//! pipeline's: what a module imports from the crate must sit below it in
//! [`LAYERS`]. An edge against the order (a source using a sink, the blob
//! layer using the merge) fails here, naming the file and line, before it
//! can grow into an import cycle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The error vocabulary: the error type and the value types its kinds
/// carry. They may name each other, and nothing else in the crate.
const VOCABULARY: &[&str] = &["error.rs", "blob/digest.rs", "tar/limits.rs"];

/// The top-level modules, lowest first. A module may use those on lower
/// rows; modules on one row may not use each other.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["text"],
    &["tar"],
    &["fs"],
    &["blob"],
    &["progress"],
    &["source"],
    &["merge"],
    &["sink"],
    &["runtime"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names as `crate::NAME`, comments
/// left out (a doc link to a higher module is no dependency).
fn crate_modules(line: &str) -> BTreeSet<String> {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::")
        .filter(|(at, _)| !code[..*at].ends_with('$')) // `$crate::` in macros
        .map(|(at, prefix)| {
            code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .collect()
}

/// What a vocabulary file names of the crate beyond the vocabulary.
fn outside_vocabulary(line: &str) -> impl Iterator<Item = String> + '_ {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::")
        .filter_map(move |(at, prefix)| {
            if code[..at].ends_with('$') {
                return None;
            }
            let path: String = code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let inside = ["error", "blob::digest", "tar::limits"]
                .iter()
                .any(|v| path == *v || path.starts_with(&format!("{v}::")));
            (!inside).then_some(path)
        })
}

/// The edges against [`LAYERS`], as `file:line: from -> to`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative.components().next().unwrap();
        let from = top.as_os_str().to_str().unwrap().trim_end_matches(".rs");
        let Some(from_rank) = rank(from) else {
            assert_eq!(
                from,
                "lib",
                "{} is in no layer: add it to LAYERS",
                relative.display()
            );
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let vocabulary = VOCABULARY.iter().any(|v| relative == Path::new(v));
        for (number, line) in text.lines().enumerate() {
            if vocabulary {
                found.extend(outside_vocabulary(line).map(|to| {
                    format!(
                        "{}:{}: {from} -> {to} (vocabulary)",
                        relative.display(),
                        number + 1
                    )
                }));
                continue;
            }
            for to in crate_modules(line) {
                let Some(to_rank) = rank(&to) else { continue };
                if to != from && to_rank >= from_rank {
                    found.push(format!(
                        "{}:{}: {from} -> {to}",
                        relative.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the layer order:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let module = name.trim_end_matches(".rs");
        if module != "lib" {
            assert!(
                rank(module).is_some(),
                "src/{name} is in no layer: add it to LAYERS"
            );
        }
    }
}

/// The check itself: it sees an upward edge, and not one in a comment.
#[test]
fn an_upward_import_is_found_and_a_comment_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob");
    std::fs::create_dir(&blob).unwrap();
    std::fs::write(
        blob.join("decode.rs"),
        "//! see [`crate::merge`]\nuse crate::tar::BLOCK;\nuse crate::merge::Merge; // wrong\n",
    )
    .unwrap();
    assert_eq!(violations(dir.path()), ["blob/decode.rs:3: blob -> merge"]);
}
