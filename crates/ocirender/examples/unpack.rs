//! Flattens an image on disk into a new directory: `unpack IMAGE DIR`. The
//! same tree as `oci-layers IMAGE | oci-merge | tar2dir DIR`: the merge
//! streams into the directory sink through a pipe, and DIR appears only
//! once the whole image is in it.

use ocirender::image::{self, Selection};
use ocirender::merge::Merge;
use ocirender::sink::{self, UnpackOptions};
use std::path::PathBuf;

fn main() -> ocirender::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(dir)) = (args.next(), args.next().map(PathBuf::from)) else {
        panic!("usage: unpack IMAGE DIR");
    };
    let image = image::open(&name, &Selection::default())?;
    let options = UnpackOptions::default();
    let (unpacked, merged) = Merge::new(&image.layer_refs())
        .into_sink(|tar| sink::unpack_to_new_dir(&dir, tar, &options))?;
    eprintln!(
        "unpack: {} layers, {} entries, {} bytes of file data",
        merged.layers, unpacked.entries, unpacked.bytes
    );
    Ok(())
}
