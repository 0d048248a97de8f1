//! `ocirender::sink::directory::unpack_into`, the heart of `tar2dir`, on fuzzed
//! bytes, with both path resolvers (`openat2(RESOLVE_IN_ROOT)` and the
//! component walk).
//!
//! Layout, in a scratch directory `S` (on /dev/shm when it exists):
//!
//! ```text
//! S/.pid
//! S/outer/input             the fuzzed bytes, the unpack's input file
//! S/outer/sentinel/file     known contents and metadata
//! S/outer/dest/             the destination, made afresh for each unpack
//! ```
//!
//! Properties: no panic; after every unpack, whatever its result, `S` and
//! `S/outer` hold exactly those names, the sentinel directory and file have
//! their listing, contents and metadata (inode, mode, owner, link count,
//! size, mtime, ctime), the input file is unchanged with one link, and `/`
//! lists the same names as when the process started: nothing was created,
//! written, linked or changed outside `dest`. An unpack that succeeds had
//! a complete tar as input (its end-of-archive marker included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender::sink::{unpack_into, UnpackOptions};
use ocirender_fuzz::{listing, read_complete_tar, Scratch};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const SENTINEL: &[u8] = b"sentinel: nothing may touch this file\n";

struct World {
    _scratch: Scratch,
    scratch: PathBuf,
    outer: PathBuf,
    root_names: Vec<String>,
    sentinel_dir: Stat,
    sentinel_file: Stat,
}

#[derive(Debug, PartialEq, Eq)]
struct Stat {
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stat(path: &Path) -> Stat {
    let m = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}: something outside dest changed", path.display()));
    Stat {
        ino: m.ino(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    }
}

impl World {
    fn new() -> World {
        let scratch_dir = Scratch::new("tar2dir");
        let scratch = scratch_dir.path().to_path_buf();
        let outer = scratch.join("outer");
        std::fs::create_dir_all(outer.join("sentinel")).unwrap();
        std::fs::write(outer.join("sentinel/file"), SENTINEL).unwrap();
        let sentinel_dir = stat(&outer.join("sentinel"));
        let sentinel_file = stat(&outer.join("sentinel/file"));
        World {
            _scratch: scratch_dir,
            scratch,
            outer,
            root_names: listing(Path::new("/")),
            sentinel_dir,
            sentinel_file,
        }
    }

    fn check_outside(&self, data: &[u8], what: &str) {
        assert_eq!(
            listing(&self.scratch),
            [".pid", "outer"],
            "{what}: scratch dir"
        );
        assert_eq!(
            listing(&self.outer),
            ["dest", "input", "sentinel"],
            "{what}: beside dest"
        );
        let sentinel = self.outer.join("sentinel");
        assert_eq!(listing(&sentinel), ["file"], "{what}: sentinel dir");
        assert_eq!(
            stat(&sentinel),
            self.sentinel_dir,
            "{what}: sentinel dir metadata"
        );
        assert_eq!(
            stat(&sentinel.join("file")),
            self.sentinel_file,
            "{what}: sentinel file metadata"
        );
        assert_eq!(
            std::fs::read(sentinel.join("file")).unwrap(),
            SENTINEL,
            "{what}: sentinel contents"
        );
        let input = self.outer.join("input");
        assert_eq!(stat(&input).nlink, 1, "{what}: input gained a link");
        assert!(
            std::fs::read(&input).unwrap() == data,
            "{what}: input changed"
        );
        assert_eq!(
            listing(Path::new("/")),
            self.root_names,
            "{what}: / changed"
        );
    }
}

thread_local! {
    static WORLD: World = World::new();
}

fuzz_target!(|data: &[u8]| {
    WORLD.with(|world| {
        let input = world.outer.join("input");
        std::fs::write(&input, data).unwrap();
        let dest = world.outer.join("dest");
        for force_walk in [false, true] {
            let what = if force_walk {
                "walk resolver"
            } else {
                "openat2 resolver"
            };
            std::fs::create_dir(&dest).unwrap();
            let options = UnpackOptions {
                force_walk,
                ..UnpackOptions::default()
            };
            let result = unpack_into(&dest, File::open(&input).unwrap(), &options);
            if ocirender_fuzz::verbose() {
                match &result {
                    Ok(stats) => eprintln!("unpack ({what}): ok: {stats:?}"),
                    Err(e) => eprintln!("unpack ({what}): error: {e:#}"),
                }
            }
            world.check_outside(data, what);
            if result.is_ok() {
                if let Err(why) = read_complete_tar(data) {
                    panic!("{what}: the unpack succeeded on an incomplete tar: {why}");
                }
            }
            std::fs::remove_dir_all(&dest)
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", dest.display()));
        }
    });
});
