//! Flattens an image on disk into one tar on stdout:
//! `flatten IMAGE [PLATFORM] > rootfs.tar`, where IMAGE is an OCI layout, a
//! `docker save` archive or a transport name (`oci:DIR:TAG`). The same tar
//! as `oci-layers IMAGE | oci-merge`.

use ocirender::image::{self, Selection};
use ocirender::merge::Merge;
use std::io::Write;

fn main() -> ocirender::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: flatten IMAGE [PLATFORM]");
    let mut selection = Selection::default();
    if let Some(platform) = args.next() {
        selection = selection.for_platform(&platform)?;
    }
    let image = image::open(&name, &selection)?;
    let stdout = std::io::stdout().lock();
    let (mut stdout, stats) = Merge::new(&image.layer_refs())
        .on_warning(|warning| eprintln!("flatten: {warning}"))
        .write_to(stdout)?;
    stdout.flush()?;
    eprintln!(
        "flatten: {} layers, {} entries written",
        stats.layers, stats.entries_written
    );
    Ok(())
}
