//! What the `--help` and `--version` of every binary share.

/// What `--version` prints after the program's name: the version and the
/// gzip inflate engine the library was built with.
pub const LONG_VERSION: &str = ocirender::BUILD;

/// `after_help` with the LIMITS section every tar-reading binary shares
/// put in before its EXIT STATUS section (or at the end).
pub fn with_limits(after_help: &str) -> String {
    let limits = limits_section();
    match after_help.find("\n\nEXIT STATUS\n") {
        Some(at) => format!("{}\n\n{limits}{}", &after_help[..at], &after_help[at..]),
        None => format!("{after_help}\n\n{limits}"),
    }
}

/// The LIMITS section: every bound a tar header is held to (see
/// [`ocirender::limits`]), with the values the code enforces.
fn limits_section() -> String {
    use ocirender::limits::Limit;
    format!(
        "\
LIMITS
  Every tar header is checked before what it describes is read, so a
  hostile layer costs neither memory nor time; an entry over a limit is
  an error that names it.
    path                    {} bytes (not counting . or empty names)
    path depth              {} components
    name in a path          {} bytes
    symlink target          {} bytes (a hard link's: a path's limits)
    GNU long name or link,
    PAX extended header     {} bytes (1 MiB)
    sparse map (GNU or PAX) {} regions
    uid, gid                at most {}
    xattr name              {} bytes
    xattr value             {} bytes
    directories' xattrs     {} bytes in all (64 MiB), held to the end",
        Limit::PathBytes.max(),
        Limit::PathDepth.max(),
        Limit::NameBytes.max(),
        Limit::SymlinkTargetBytes.max(),
        Limit::ExtensionBytes.max(),
        Limit::SparseRegions.max(),
        Limit::Id.max(),
        Limit::XattrNameBytes.max(),
        Limit::XattrValueBytes.max(),
        Limit::HeldDirectoryRecords.max(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocirender::limits::Limit;

    #[test]
    fn the_limits_section_goes_before_the_exit_status() {
        let help = with_limits("SAFETY\n  text\n\nEXIT STATUS\n  0 on success");
        let limits = help.find("\n\nLIMITS\n").expect("a LIMITS section");
        assert!(help.starts_with("SAFETY\n  text\n\n"), "{help}");
        assert!(limits < help.find("EXIT STATUS").unwrap(), "{help}");
        let appended = with_limits("EXAMPLES\n  x");
        assert!(
            appended.starts_with("EXAMPLES\n  x\n\nLIMITS\n"),
            "{appended}"
        );
    }

    #[test]
    fn the_limits_section_states_every_limit() {
        let section = limits_section();
        for limit in Limit::ALL {
            let max = limit.max().to_string();
            assert!(section.contains(&max), "{limit:?} ({max}): {section}");
        }
        assert!(section.lines().all(|line| line.len() <= 76), "{section}");
    }
}
