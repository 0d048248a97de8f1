//! Man pages and shell completions, generated from each binary's clap
//! definition, so they can never disagree with `--help`.
//!
//! Every binary answers a hidden `--generate KIND` (as ripgrep does):
//! `man` prints a roff page, `bash`, `zsh` and `fish` print a completion
//! script. `scripts/install` runs it at install time; nothing generated is
//! committed.
//!
//! The page has the sections `--help` has: NAME, SYNOPSIS, DESCRIPTION and
//! OPTIONS from clap, then one section per heading of the program's
//! `after_help` text (an unindented line, such as `EXIT STATUS` or
//! `ENVIRONMENT`), its body kept as laid out for the terminal.

use anyhow::{bail, Result};
use clap::Parser;
use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};
use std::io::Write;

/// Parses the command line into `P`, unless it is `PROGRAM --generate
/// KIND`: then prints what was asked for and exits.
pub fn parse_or_generate<P: Parser>() -> P {
    let args: Vec<_> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "--generate" {
        let kind = args[2].to_string_lossy().into_owned();
        let mut stdout = std::io::stdout().lock();
        let result =
            generate(&mut P::command(), &kind, &mut stdout).and_then(|()| Ok(stdout.flush()?));
        if let Err(e) = result {
            let name = P::command().get_name().to_owned();
            crate::print_line(&format!("{name}: error: {e:#}"));
            std::process::exit(2);
        }
        std::process::exit(0);
    }
    P::parse()
}

/// Writes the man page (`man`) or a completion script (`bash`, `zsh`,
/// `fish`) for `command`.
pub fn generate(command: &mut clap::Command, kind: &str, out: &mut dyn Write) -> Result<()> {
    let name = command.get_name().to_owned();
    let shell = match kind {
        "man" => return man_page(command.clone(), out),
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => bail!("--generate {other:?}: expected man, bash, zsh or fish"),
    };
    clap_complete::generate(shell, command, name, out);
    Ok(())
}

fn man_page(command: clap::Command, out: &mut dyn Write) -> Result<()> {
    let after_help = command
        .get_after_long_help()
        .or(command.get_after_help())
        .map(|text| text.to_string())
        .unwrap_or_default();
    let man = clap_mangen::Man::new(command.clone()).manual("ocirender");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::new();
    for (heading, body) in sections(&after_help) {
        roff.control("SH", [heading.as_str()]);
        roff.control("nf", []);
        for line in body {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)?;
    Ok(())
}

/// Splits `--help`'s trailing text into sections at headings: the lines
/// that start in the first column (bodies are indented).
fn sections(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let heading = !line.starts_with(' ') && !line.trim().is_empty();
        match sections.last_mut() {
            _ if heading => sections.push((line.trim().to_owned(), Vec::new())),
            Some((_, body)) => body.push(line.strip_prefix("  ").unwrap_or(line)),
            None if line.trim().is_empty() => {}
            None => sections.push(("NOTES".to_owned(), vec![line])),
        }
    }
    for (_, body) in &mut sections {
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn after_help_headings_become_sections() {
        let text =
            "EXIT STATUS\n  0 on success.\n\nENVIRONMENT\n  SOURCE_DATE_EPOCH  the build time\n";
        let found = sections(text);
        assert_eq!(
            found,
            vec![
                ("EXIT STATUS".to_owned(), vec!["0 on success."]),
                (
                    "ENVIRONMENT".to_owned(),
                    vec!["SOURCE_DATE_EPOCH  the build time"]
                ),
            ]
        );
    }

    #[derive(Parser)]
    #[command(name = "demo", version, after_help = "EXAMPLES\n  demo x\n")]
    /// A demo.
    struct Demo {
        /// An input.
        input: String,
    }

    #[test]
    fn every_kind_renders() {
        for kind in ["man", "bash", "zsh", "fish"] {
            let mut out = Vec::new();
            generate(&mut Demo::command(), kind, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("demo"), "{kind}: {text}");
        }
        let mut page = Vec::new();
        generate(&mut Demo::command(), "man", &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".SH EXAMPLES"), "{page}");
        assert!(page.contains(".SH OPTIONS"), "{page}");
        assert!(generate(&mut Demo::command(), "pdf", &mut Vec::new()).is_err());
    }
}
