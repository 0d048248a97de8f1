//! One test per rule of DESIGN.md section 2, driving the library merge on
//! layers written byte by byte.

mod common;

use common::{expect, merge_blobs, merge_layers};
use tar::EntryType;
use testkit::{Layer, Raw};

// ---- whiteouts -----------------------------------------------------------

#[test]
fn whiteout_hides_lower_path_and_its_subtree() {
    let base = Layer::new()
        .dir("a")
        .file("a/f", b"1")
        .dir("a/d")
        .file("a/d/g", b"2")
        .file("keep", b"k");
    let top = Layer::new().whiteout("a/d").whiteout("keep_not_there");
    let tree = merge_layers(&[base, top]).tree();
    assert_eq!(
        tree,
        expect(&[("a", "dir 755"), ("a/f", "file 1"), ("keep", "file k")])
    );
}

#[test]
fn whiteout_spares_same_layer_entries_before_and_after_it() {
    let base = Layer::new().file("x", b"old").file("y", b"old");
    let top = Layer::new()
        .file("x", b"new")
        .whiteout("x")
        .whiteout("y")
        .file("y", b"new");
    let tree = merge_layers(&[base, top]).tree();
    assert_eq!(tree, expect(&[("x", "file new"), ("y", "file new")]));
}

#[test]
fn whiteout_of_missing_path_is_silent_and_creates_nothing() {
    let base = Layer::new().file("f", b"1");
    let top = Layer::new().whiteout("nodir/ghost").whiteout("ghost");
    let out = merge_layers(&[base, top]);
    assert_eq!(out.tree(), expect(&[("f", "file 1")]));
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn whiteout_does_not_resolve_through_a_symlinked_parent() {
    let base = Layer::new()
        .dir("real")
        .file("real/f", b"1")
        .symlink("link", "real");
    let top = Layer::new().whiteout("link/f");
    let tree = merge_layers(&[base, top]).tree();
    assert_eq!(
        tree,
        expect(&[
            ("real", "dir 755"),
            ("real/f", "file 1"),
            ("link", "symlink real")
        ])
    );
}

#[test]
fn opaque_marker_works_in_any_position() {
    for position in 0..3 {
        let base = Layer::new()
            .dir("d")
            .file("d/old", b"o")
            .file("d/sub_keep", b"x");
        let mut top = Layer::new();
        let parts: [fn(Layer) -> Layer; 3] = [
            |l| l.opaque("d"),
            |l| l.dir_mode("d", 0o700),
            |l| l.file("d/new", b"n"),
        ];
        for (i, part) in parts.iter().enumerate() {
            if i == position {
                top = parts[0](top);
            }
            if i != 0 {
                top = part(top);
            }
        }
        if position == 2 {
            top = parts[0](top);
        }
        let tree = merge_layers(&[base, top]).tree();
        assert_eq!(
            tree,
            expect(&[("d", "dir 700"), ("d/new", "file n")]),
            "opaque at position {position}"
        );
    }
}

#[test]
fn opaque_marker_without_directory_entry_keeps_older_directory_metadata() {
    let base = Layer::new().dir_mode("d", 0o750).file("d/old", b"o");
    let top = Layer::new().opaque("d").file("d/new", b"n");
    let tree = merge_layers(&[base, top]).tree();
    assert_eq!(tree, expect(&[("d", "dir 750"), ("d/new", "file n")]));
}

#[test]
fn opaque_root_hides_everything_below() {
    let base = Layer::new().file("a", b"1").dir("d");
    let top = Layer::new().opaque("").file("b", b"2");
    assert_eq!(
        merge_layers(&[base, top]).tree(),
        expect(&[("b", "file 2")])
    );
}

#[test]
fn older_opaque_and_newer_child_whiteout_both_apply() {
    let l1 = Layer::new().dir("a").file("a/x", b"1").file("a/y", b"1");
    let l2 = Layer::new()
        .dir("a")
        .opaque("a")
        .file("a/z", b"2")
        .file("a/w", b"2");
    let l3 = Layer::new().whiteout("a/z");
    assert_eq!(
        merge_layers(&[l1, l2, l3]).tree(),
        expect(&[("a", "dir 755"), ("a/w", "file 2")])
    );
}

#[test]
fn whiteout_of_directory_holding_an_older_opaque_removes_it_all() {
    let l1 = Layer::new().dir("d").file("d/x", b"1").file("other", b"o");
    let l2 = Layer::new().dir("d").opaque("d").file("d/y", b"2");
    let l3 = Layer::new().whiteout("d");
    assert_eq!(
        merge_layers(&[l1, l2, l3]).tree(),
        expect(&[("other", "file o")])
    );
}

#[test]
fn directory_recreated_after_whiteout_in_a_newer_layer_is_fresh() {
    let l1 = Layer::new().dir("d").file("d/old", b"1");
    let l2 = Layer::new().whiteout("d");
    let l3 = Layer::new().dir_mode("d", 0o711).file("d/new", b"3");
    assert_eq!(
        merge_layers(&[l1, l2, l3]).tree(),
        expect(&[("d", "dir 711"), ("d/new", "file 3")])
    );
}

#[test]
fn whiteout_and_recreation_in_the_same_layer() {
    let l1 = Layer::new().dir_mode("d", 0o700).file("d/old", b"1");
    let l2 = Layer::new().whiteout("d").file("d/new", b"2");
    // `d` was deleted, then re-created implicitly: no layer describes it.
    assert_eq!(
        merge_layers(&[l1, l2]).tree(),
        expect(&[("d", "dir 755"), ("d/new", "file 2")])
    );
}

#[test]
fn bare_whiteouts_are_errors_naming_layer_and_entry() {
    for bare in ["dir/.wh.", ".wh..", ".wh..."] {
        let out = merge_layers(&[Layer::new().file(bare, b"")]);
        let err = out.error();
        assert!(
            err.contains("layer 1/1") && err.contains(bare) && err.contains("whiteout"),
            "{err}"
        );
    }
}

#[test]
fn aufs_metadata_is_skipped_with_a_warning() {
    let l = Layer::new()
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/123.456", b"x")
        .file(".wh..wh.aufs", b"")
        .file("f", b"1");
    let out = merge_layers(&[l]);
    assert_eq!(out.tree(), expect(&[("f", "file 1")]));
    assert!(out.warned("AUFS"), "{:?}", out.warnings);
}

// ---- type changes --------------------------------------------------------

#[test]
fn file_replaces_directory_and_its_subtree() {
    let l1 = Layer::new().dir("p").file("p/child", b"1");
    let l2 = Layer::new().file("p", b"now a file");
    assert_eq!(
        merge_layers(&[l1, l2]).tree(),
        expect(&[("p", "file now a file")])
    );
}

#[test]
fn symlink_replaces_directory_without_whiteout() {
    let l1 = Layer::new().dir("lib").file("lib/libc.so", b"c");
    let l2 = Layer::new().dir("usr").symlink("lib", "usr/lib");
    assert_eq!(
        merge_layers(&[l1, l2]).tree(),
        expect(&[("usr", "dir 755"), ("lib", "symlink usr/lib")])
    );
}

#[test]
fn directory_replaces_file() {
    let l1 = Layer::new().file("p", b"file");
    let l2 = Layer::new().dir_mode("p", 0o700).file("p/c", b"2");
    assert_eq!(
        merge_layers(&[l1, l2]).tree(),
        expect(&[("p", "dir 700"), ("p/c", "file 2")])
    );
}

#[test]
fn directories_merge_and_the_newer_metadata_wins() {
    let l1 = Layer::new().dir_mode("d", 0o700).file("d/a", b"1");
    let l2 = Layer::new().dir_mode("d", 0o755).file("d/b", b"2");
    let tree = merge_layers(&[l1, l2]).tree();
    assert_eq!(
        tree,
        expect(&[("d", "dir 755"), ("d/a", "file 1"), ("d/b", "file 2")])
    );
}

#[test]
fn non_directory_hides_older_subtree_even_when_itself_replaced() {
    let l1 = Layer::new().dir("p").file("p/old", b"1");
    let l2 = Layer::new().file("p", b"file");
    let l3 = Layer::new().dir("p").file("p/new", b"3");
    assert_eq!(
        merge_layers(&[l1, l2, l3]).tree(),
        expect(&[("p", "dir 755"), ("p/new", "file 3")])
    );
}

#[test]
fn non_directory_hides_older_subtree_even_when_whited_out() {
    let l1 = Layer::new().dir("p").file("p/old", b"1");
    let l2 = Layer::new().symlink("p", "x");
    let l3 = Layer::new().whiteout("p");
    let l4 = Layer::new().file("p/new", b"4");
    assert_eq!(
        merge_layers(&[l1, l2, l3, l4]).tree(),
        expect(&[("p", "dir 755"), ("p/new", "file 4")])
    );
}

// ---- implicit parents ----------------------------------------------------

#[test]
fn implicit_parent_takes_lower_directory_metadata() {
    let l1 = Layer::new().dir_mode("a", 0o711).dir_mode("a/b", 0o700);
    let l2 = Layer::new().file("a/b/f", b"2");
    assert_eq!(
        merge_layers(&[l1, l2]).tree(),
        expect(&[("a", "dir 711"), ("a/b", "dir 700"), ("a/b/f", "file 2")])
    );
}

#[test]
fn implicit_parent_later_in_the_same_layer_gets_its_entry() {
    let l1 = Layer::new()
        .file("a/b/f", b"1")
        .dir_mode("a/b", 0o700)
        .dir_mode("a", 0o750);
    assert_eq!(
        merge_layers(&[l1]).tree(),
        expect(&[("a", "dir 750"), ("a/b", "dir 700"), ("a/b/f", "file 1")])
    );
}

#[test]
fn implicit_parent_over_lower_symlink_is_a_directory_with_a_warning() {
    let l1 = Layer::new()
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/a", b"1")
        .symlink("lib", "usr/lib");
    let l2 = Layer::new().file("lib/b", b"2");
    let out = merge_layers(&[l1, l2]);
    let tree = out.tree();
    assert_eq!(tree["lib"], "dir 755");
    assert_eq!(tree["lib/b"], "file 2");
    assert_eq!(tree["usr/lib/a"], "file 1");
    assert!(!tree.contains_key("usr/lib/b"));
    assert!(
        out.warned("layer 1/2") && out.warned("layer 2/2") && out.warned("directory wins"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn undescribed_directories_are_written_at_the_end_as_0755_root() {
    let out = merge_layers(&[Layer::new().file("x/y/z", b"1")]);
    let entries = out.entries();
    let names: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["x/y/z", "x/", "x/y/"]);
    for dir in &entries[1..] {
        assert_eq!((dir.mode, dir.uid, dir.gid, dir.mtime), (0o755, 0, 0, 0));
    }
}

// ---- duplicates ----------------------------------------------------------

#[test]
fn duplicate_in_one_layer_keeps_the_first_with_a_warning() {
    let out = merge_layers(&[Layer::new()
        .file("f", b"first")
        .file("f", b"second")
        .dir("d")
        .dir_mode("d", 0o700)]);
    assert_eq!(out.tree(), expect(&[("f", "file first"), ("d", "dir 755")]));
    assert!(
        out.warned("\"f\"") && out.warned("\"d\""),
        "{:?}",
        out.warnings
    );
}

#[test]
fn same_layer_listed_twice_is_applied_twice() {
    let l = Layer::new().file("f", b"1");
    let blob = l.tar();
    let out = merge_blobs(&[blob.clone(), blob]);
    assert_eq!(out.tree(), expect(&[("f", "file 1")]));
    assert!(out.warnings.is_empty());
}

// ---- hard links ----------------------------------------------------------

#[test]
fn hard_link_follows_its_target_in_the_output() {
    let out = merge_layers(&[Layer::new()
        .file("bin/perl", b"p")
        .hardlink("bin/perl5", "bin/perl")]);
    let tree = out.tree();
    assert_eq!(tree["bin/perl"], "file p");
    assert_eq!(tree["bin/perl5"], "hardlink bin/perl");
}

#[test]
fn hard_link_in_newer_layer_to_older_target_is_written_after_it() {
    let l1 = Layer::new().file("t", b"data");
    let l2 = Layer::new().hardlink("l", "/t");
    let entries = merge_layers(&[l1, l2]).entries();
    let names: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(names, [("t", EntryType::Regular), ("l", EntryType::Link)]);
    assert_eq!(entries[1].link, "t");
}

#[test]
fn hard_link_target_overwritten_in_newer_layer_is_promoted_from_the_same_layer() {
    let l1 = Layer::new()
        .file_mode("bin/perl", b"old perl", 0o751)
        .hardlink("bin/perl5", "bin/perl");
    let l2 = Layer::new().file("bin/perl", b"new perl");
    let out = merge_layers(&[l1, l2]);
    let entries = out.entries();
    let perl5 = entries.iter().find(|e| e.path == "bin/perl5").unwrap();
    assert_eq!(
        (perl5.kind, perl5.data.as_slice(), perl5.mode),
        (EntryType::Regular, &b"old perl"[..], 0o751)
    );
    assert_eq!(out.tree()["bin/perl"], "file new perl");
}

#[test]
fn hard_link_target_whited_out_is_promoted_while_streaming() {
    let l1 = Layer::new().file("t", b"content");
    let l2 = Layer::new().hardlink("a", "t").hardlink("b", "t");
    let l3 = Layer::new().whiteout("t");
    let tree = merge_layers(&[l1, l2, l3]).tree();
    assert_eq!(tree, expect(&[("a", "file content"), ("b", "hardlink a")]));
}

#[test]
fn hard_link_target_replaced_by_directory_is_promoted() {
    let l1 = Layer::new().file("t", b"content").hardlink("l", "t");
    let l2 = Layer::new().dir("t").file("t/inner", b"i");
    let tree = merge_layers(&[l1, l2]).tree();
    assert_eq!(
        tree,
        expect(&[
            ("t", "dir 755"),
            ("t/inner", "file i"),
            ("l", "file content")
        ])
    );
}

#[test]
fn hard_link_beside_its_targets_whiteout_dangles() {
    let l1 = Layer::new().file("t", b"content");
    let l2 = Layer::new().whiteout("t").hardlink("l", "t");
    let out = merge_layers(&[l1, l2]);
    assert_eq!(out.tree(), expect(&[]));
    assert!(
        out.warned("\"l\"") && out.warned("dropped"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn hard_link_to_missing_target_is_dropped_with_a_warning() {
    let out = merge_layers(&[Layer::new().file("f", b"1").hardlink("l", "nowhere")]);
    assert_eq!(out.tree(), expect(&[("f", "file 1")]));
    assert!(out.warned("nowhere"), "{:?}", out.warnings);
}

#[test]
fn hard_link_to_directory_is_an_error() {
    let out = merge_layers(&[Layer::new().dir("d").hardlink("l", "d")]);
    assert!(out.error().contains("directory"), "{}", out.error());
    let out = merge_layers(&[Layer::new().dir("d"), Layer::new().hardlink("l", "d")]);
    assert!(out.error().contains("directory"), "{}", out.error());
}

#[test]
fn hard_link_to_an_implicit_directory_is_an_error() {
    // The directory has no entry of its own in any layer: it exists because
    // entries live below it, in a lower layer, the link's layer (before or
    // after the link) or both.
    let cases: [&[Layer]; 4] = [
        &[
            Layer::new().file("d/y", b"y"),
            Layer::new().hardlink("l", "d"),
            Layer::new().file("d/x", b"x"),
        ],
        &[
            Layer::new().file("d/y", b"y"),
            Layer::new().hardlink("l", "d"),
        ],
        &[Layer::new().file("d/y", b"y").hardlink("l", "d")],
        &[Layer::new().hardlink("l", "d").file("d/y", b"y")],
    ];
    for (i, layers) in cases.iter().enumerate() {
        let out = merge_layers(layers);
        assert!(
            out.result.is_err(),
            "case {i}: merged although a link names a directory; warnings {:?}",
            out.warnings
        );
        assert!(
            out.error().contains("directory"),
            "case {i}: {}",
            out.error()
        );
    }
}

#[test]
fn hard_link_to_a_directory_is_an_error_even_when_hidden() {
    let layers = [
        Layer::new().dir("d"),
        Layer::new().hardlink("l", "d"),
        Layer::new().file("l", b"newer"),
    ];
    let out = merge_layers(&layers);
    assert!(out.error().contains("directory"), "{}", out.error());
}

#[test]
fn hard_link_to_a_directory_deleted_in_its_view_dangles() {
    // The whiteout of d in the link's own layer hides the lower directory
    // from the link: it names nothing, so it is dropped, not an error.
    let layers = [
        Layer::new().file("d/y", b"y"),
        Layer::new().whiteout("d").hardlink("l", "d"),
    ];
    let out = merge_layers(&layers);
    assert_eq!(out.tree(), expect(&[]));
    assert!(out.warned("dropped"), "{:?}", out.warnings);
}

#[test]
fn hard_link_to_symlink_links_the_symlink() {
    let l1 = Layer::new().symlink("s", "target").hardlink("h", "s");
    assert_eq!(
        merge_layers(std::slice::from_ref(&l1)).tree()["h"],
        "hardlink s"
    );
    let l2 = Layer::new().file("s", b"replaced");
    assert_eq!(merge_layers(&[l1, l2]).tree()["h"], "symlink target");
}

#[test]
fn hard_link_header_metadata_is_ignored() {
    let l1 = Layer::new().file_mode("t", b"x", 0o4755).raw(
        b"l",
        Raw {
            kind: EntryType::Link,
            link: b"t",
            mode: 0o600,
            uid: 99,
            ..Raw::default()
        },
    );
    let l2 = Layer::new().whiteout("t");
    let entries = merge_layers(&[l1, l2]).entries();
    assert_eq!(
        (entries[0].path.as_str(), entries[0].mode, entries[0].uid),
        ("l", 0o4755, 0)
    );
}

/// The target's header in [`link_headers_repeat_the_target_not_the_link`].
const TARGET: Raw<'static> = Raw {
    kind: EntryType::Regular,
    mode: 0o640,
    uid: 1,
    gid: 2,
    mtime: 100,
    link: b"",
    data: b"data",
    pax: Vec::new(),
    gnu_long_name: false,
    uname: "",
};

fn target(layer: Layer, path: &str) -> Layer {
    layer.raw(path.as_bytes(), TARGET)
}

/// A hard link whose own header disagrees with its target's.
fn odd_link(layer: Layer, path: &str, to: &str) -> Layer {
    layer.raw(
        path.as_bytes(),
        Raw {
            kind: EntryType::Link,
            link: to.as_bytes(),
            mode: 0o600,
            uid: 99,
            gid: 98,
            mtime: 200,
            ..Raw::default()
        },
    )
}

#[test]
fn link_headers_repeat_the_target_not_the_link() {
    // Extractors take a link's inode, and so its owner, mode and time, from
    // the target: every header of the inode says the same, whichever way
    // the merge came to write it.
    let cases: [(&str, Vec<Layer>, &[&str]); 6] = [
        (
            "links after the target in its layer, one naming the other",
            vec![odd_link(
                odd_link(target(Layer::new(), "t"), "a", "t"),
                "b",
                "a",
            )],
            &["a", "b"],
        ),
        (
            "a link settled when its target arrives from a lower layer",
            vec![target(Layer::new(), "t"), odd_link(Layer::new(), "a", "t")],
            &["a"],
        ),
        (
            "a link to a link settled earlier in the layer",
            vec![odd_link(
                target(odd_link(Layer::new(), "a", "t"), "t"),
                "b",
                "a",
            )],
            &["a", "b"],
        ),
        (
            "links promoted while streaming (the target whited out above)",
            vec![
                target(Layer::new(), "t"),
                odd_link(odd_link(Layer::new(), "a", "t"), "b", "t"),
                Layer::new().whiteout("t"),
            ],
            &["a", "b"],
        ),
        (
            "links promoted by a second read (the target replaced above)",
            vec![
                odd_link(odd_link(target(Layer::new(), "t"), "a", "t"), "b", "a"),
                Layer::new().file("t", b"new"),
            ],
            &["a", "b"],
        ),
        (
            "a promoted group that a newer layer links to",
            vec![
                odd_link(target(Layer::new(), "t"), "a", "t"),
                odd_link(Layer::new(), "b", "a"),
                Layer::new().file("t", b"new"),
            ],
            &["a", "b"],
        ),
    ];
    for (case, layers, links) in cases {
        let entries = merge_layers(&layers).entries();
        for name in links {
            let e = entries
                .iter()
                .find(|e| e.path == *name)
                .unwrap_or_else(|| panic!("{case}: {name} missing"));
            assert_eq!(
                (e.mode, e.uid, e.gid, e.mtime),
                (TARGET.mode, TARGET.uid, TARGET.gid, TARGET.mtime),
                "{case}: {name} ({:?})",
                e.kind
            );
        }
        assert!(
            entries.iter().any(|e| e.kind == EntryType::Link),
            "{case}: no link written"
        );
    }
}

#[test]
fn hard_link_chain_across_layers_shares_one_inode() {
    let l1 = Layer::new().file("t", b"x").hardlink("m", "t");
    let l2 = Layer::new().hardlink("n", "m");
    let l3 = Layer::new().whiteout("t").whiteout("m");
    assert_eq!(
        merge_layers(&[l1, l2, l3]).tree(),
        expect(&[("n", "file x")])
    );
}

#[test]
fn hard_link_with_dotdot_target_is_an_error() {
    let out = merge_layers(&[Layer::new().hardlink("l", "../etc/passwd")]);
    assert!(
        out.error().contains("..") && out.error().contains("\"l\""),
        "{}",
        out.error()
    );
}

#[test]
fn hard_links_to_a_kept_target_in_a_lower_layer_link_to_it() {
    let l1 = Layer::new().file("t", b"x");
    let l2 = Layer::new().hardlink("a", "t");
    let l3 = Layer::new().hardlink("b", "a");
    let tree = merge_layers(&[l1, l2, l3]).tree();
    assert_eq!(
        tree,
        expect(&[("t", "file x"), ("a", "hardlink t"), ("b", "hardlink t")])
    );
}

// ---- headers -------------------------------------------------------------

#[test]
fn long_names_and_link_targets_survive_via_pax_and_gnu() {
    let long_dir = "d".repeat(120);
    let pax_name = format!("{long_dir}/{}", "p".repeat(150));
    let gnu_name = format!("{long_dir}/{}", "g".repeat(150));
    let link_target = format!("/{}", "t".repeat(300));
    let l = Layer::new()
        .file(&pax_name, b"pax")
        .raw(
            gnu_name.as_bytes(),
            Raw {
                data: b"gnu",
                gnu_long_name: true,
                ..Raw::default()
            },
        )
        .symlink("s", &link_target);
    let tree = merge_layers(&[l]).tree();
    assert_eq!(tree[&pax_name], "file pax");
    assert_eq!(tree[&gnu_name], "file gnu");
    assert_eq!(tree["s"], format!("symlink {link_target}"));
    assert_eq!(tree[&long_dir], "dir 755");
}

#[test]
fn xattrs_large_ids_and_subsecond_times_are_kept_and_names_blanked() {
    let cap: &[u8] = &[
        1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let l = Layer::new().raw(
        b"usr/bin/ping",
        Raw {
            data: b"elf",
            uid: 3_000_000_000,
            gid: 5,
            uname: "root",
            pax: vec![
                ("SCHILY.xattr.security.capability", cap),
                ("mtime", b"1600000000.123456789"),
                ("uid", b"3000000000"),
            ],
            ..Raw::default()
        },
    );
    let out = merge_layers(&[l]);
    let entries = out.entries();
    let ping = entries.iter().find(|e| e.path == "usr/bin/ping").unwrap();
    assert_eq!(ping.uid, 3_000_000_000);
    assert_eq!(ping.uname, b"");
    let record = |k: &str| {
        ping.pax
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(record("SCHILY.xattr.security.capability").unwrap(), cap);
    assert_eq!(record("mtime").unwrap(), b"1600000000.123456789");
}

#[test]
fn global_pax_headers_are_consumed() {
    let l = Layer::new()
        .raw(
            b"pax_global_header",
            Raw {
                kind: EntryType::XGlobalHeader,
                data: b"22 comment=git-hash\n",
                ..Raw::default()
            },
        )
        .file("f", b"1");
    let entries = merge_layers(&[l]).entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, "f");
}

#[test]
fn non_utf8_names_keep_their_bytes() {
    let l = Layer::new().raw(
        b"caf\xe9/\xff",
        Raw {
            data: b"1",
            ..Raw::default()
        },
    );
    let entries = merge_layers(&[l]).entries();
    let names: Vec<_> = entries.iter().map(|e| e.path_bytes.clone()).collect();
    assert_eq!(names, [b"caf\xe9/\xff".to_vec(), b"caf\xe9/".to_vec()]);
}

#[test]
fn devices_fifos_and_special_bits_pass_through() {
    let l = Layer::new()
        .raw(
            b"dev/null",
            Raw {
                kind: EntryType::Char,
                mode: 0o666,
                ..Raw::default()
            },
        )
        .raw(
            b"dev/sda",
            Raw {
                kind: EntryType::Block,
                mode: 0o660,
                ..Raw::default()
            },
        )
        .raw(
            b"run/fifo",
            Raw {
                kind: EntryType::Fifo,
                mode: 0o600,
                ..Raw::default()
            },
        )
        .file_mode("bin/su", b"su", 0o4755)
        .dir_mode("tmp", 0o1777)
        .dir_mode("srv", 0o2775);
    let entries = merge_layers(&[l]).entries();
    let find = |p: &str| {
        entries
            .iter()
            .find(|e| e.path.trim_end_matches('/') == p)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (find("dev/null").kind, find("dev/null").mode),
        (EntryType::Char, 0o666)
    );
    assert_eq!(find("dev/sda").kind, EntryType::Block);
    assert_eq!(find("run/fifo").kind, EntryType::Fifo);
    assert_eq!(find("bin/su").mode, 0o4755);
    assert_eq!(find("tmp").mode, 0o1777);
    assert_eq!(find("srv").mode, 0o2775);
}

// ---- paths ---------------------------------------------------------------

#[test]
fn paths_are_normalised_and_the_root_is_not_written() {
    let l1 = Layer::new()
        .dir("./")
        .dir("/")
        .dir(".")
        .file("./a//b/", b"1")
        .file("/c", b"2");
    let l2 = Layer::new().file("a/b", b"3");
    let tree = merge_layers(&[l1, l2]).tree();
    assert_eq!(
        tree,
        expect(&[("a", "dir 755"), ("a/b", "file 3"), ("c", "file 2")])
    );
}

#[test]
fn dotdot_components_are_errors_naming_layer_and_entry() {
    for name in ["../escape", "a/../../b", "a/.."] {
        // The newest layer is read first: its entry is already out when the
        // base layer turns out to be bad.
        let out = merge_layers(&[Layer::new().file(name, b"x"), Layer::new().file("ok", b"")]);
        let err = out.error();
        assert!(
            err.contains("layer 1/2") && err.contains(name) && err.contains(".."),
            "{err}"
        );
        assert!(
            !out.output.is_empty(),
            "the first layer's entry was streamed"
        );
        assert!(!testkit::has_end_marker(&out.output));
    }
}

#[test]
fn layer_without_end_of_archive_marker_is_accepted() {
    let l = Layer::new().file("a", b"1").file("b", b"2");
    let tree = merge_blobs(&[l.tar_without_end()]).tree();
    assert_eq!(tree, expect(&[("a", "file 1"), ("b", "file 2")]));
}

#[test]
fn output_is_deterministic() {
    let l1 = Layer::new()
        .file("t", b"x")
        .hardlink("h", "t")
        .file("a/b/c", b"1");
    let l2 = Layer::new().whiteout("t").file("z", b"2").file("q/r", b"3");
    let first = merge_layers(&[l1.clone(), l2.clone()]).result.unwrap();
    for _ in 0..5 {
        assert_eq!(
            merge_layers(&[l1.clone(), l2.clone()]).result.unwrap(),
            first
        );
    }
}
