//! An image's tree, read without mounting it: extracted by the image's
//! own tools (`unsquashfs`, `fsck.erofs --extract`) into a private
//! temporary directory, as root, owners, device nodes and every xattr
//! namespace kept, then compared as a directory. Both tools keep hard
//! links as shared inodes and set times on symlinks too.
//!
//! fsck.erofs 1.9 sets a file's extended attributes before its owner, and
//! the kernel clears `security.capability` on every chown: an EROFS image
//! is therefore extracted twice, once with owners, once without (where
//! nothing is chowned), and attributes are read from the second tree.
//!
//! The extraction takes as much disk as the image holds uncompressed
//! (twice that for EROFS), in `TMPDIR` (or the directory given); it is
//! removed when the comparison ends, and on a signal
//! (`crate::fs::temporaries`).

use super::output_kind::OutputKind;
use crate::error::{bail, err, Context, ErrorKind, Result};
use crate::fs::temporaries::{register, register_child, Registration};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tools that read images, and where to extract.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// `unsquashfs` (squashfs-tools 4.6+).
    pub unsquashfs: PathBuf,
    /// `fsck.erofs` (erofs-utils 1.9+).
    pub fsck_erofs: PathBuf,
    /// Where the temporary tree goes (`TMPDIR` when `None`).
    pub temp_dir: Option<PathBuf>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            unsquashfs: "unsquashfs".into(),
            fsck_erofs: "fsck.erofs".into(),
            temp_dir: None,
        }
    }
}

/// An image's tree in a private temporary directory, removed when
/// dropped.
pub struct Extracted {
    /// Mode 0700, so no one else sees the tree while it exists.
    scratch: tempfile::TempDir,
    _registration: Registration,
}

impl Extracted {
    /// The extracted root directory.
    pub fn path(&self) -> PathBuf {
        self.scratch.path().join("tree")
    }

    /// The tree to read extended attributes from, when not [`Self::path`]
    /// (EROFS: extracted without owners, so no chown cleared any).
    pub fn xattr_path(&self) -> Option<PathBuf> {
        let path = self.scratch.path().join("xattrs");
        path.exists().then_some(path)
    }
}

/// Extracts the image `image` of kind `kind` (not a directory).
pub fn extract(kind: OutputKind, image: &Path, options: &ExtractOptions) -> Result<Extracted> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            kind = ErrorKind::Invalid,
            "{}: verifying an image needs root: only root extracts its owners, device nodes \
             and trusted.* attributes",
            image.display()
        );
    }
    let parent = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix(".oci-verify-")
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot make a temporary directory", parent.display()))?;
    let extracted = Extracted {
        _registration: register(scratch.path()),
        scratch,
    };
    let tree = extracted.path();
    let context = || {
        format!(
            "{}: cannot extract the {} image",
            image.display(),
            kind.name()
        )
    };
    match kind {
        OutputKind::Squashfs => {
            // Its default queues take 256 MiB more memory than 16 MiB
            // ones, and extract no faster.
            let flags = [
                "-quiet",
                "-no-progress",
                "-xattrs",
                "-da",
                "16",
                "-fr",
                "16",
            ];
            let args = arguments(
                &[&flags[..], &["-dest"]].concat(),
                [tree.into(), image.into()],
            );
            run_tool(&options.unsquashfs, &args).with_context(context)?;
        }
        OutputKind::Erofs => {
            let with_owners = ["-d0", "--xattrs", "--preserve"];
            let unchowned = ["-d0", "--xattrs", "--preserve-perms", "--no-preserve-owner"];
            let xattr_tree = extracted.scratch.path().join("xattrs");
            for (flags, dir) in [(&with_owners[..], &tree), (&unchowned[..], &xattr_tree)] {
                let extract_to = OsString::from(format!("--extract={}", dir.display()));
                let args = arguments(flags, [extract_to, image.into()]);
                run_tool(&options.fsck_erofs, &args).with_context(context)?;
            }
        }
        OutputKind::Directory => unreachable!("a directory is compared as it is"),
    }
    Ok(extracted)
}

fn arguments(options: &[&str], rest: [OsString; 2]) -> Vec<OsString> {
    options.iter().map(OsString::from).chain(rest).collect()
}

/// Runs an extraction tool; its last line of output is the error when it
/// fails.
fn run_tool(program: &Path, args: &[OsString]) -> Result<()> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    // Killed first on a signal, so it cannot write into a removed tree.
    let _child = register_child(child.id());
    let output = child
        .wait_with_output()
        .with_context(|| format!("cannot wait for {}", program.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let said = [&output.stderr, &output.stdout]
        .into_iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .find(|text| !text.is_empty())
        .and_then(|text| text.lines().last().map(str::to_owned))
        .unwrap_or_default();
    Err(err!(
        kind = ErrorKind::BuilderFailed {
            program: program.display().to_string(),
            said: said.clone(),
        },
        "{} failed ({}): {said}",
        program.display(),
        output.status
    ))
}
