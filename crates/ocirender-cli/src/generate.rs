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
use clap::{ArgAction, Parser};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use std::io::Write;

/// Every ocirender program, for the pages' SEE ALSO.
const PROGRAMS: [&str; 8] = [
    "oci-layers",
    "oci-fetch",
    "oci-login",
    "oci-merge",
    "oci-runtime-config",
    "tar2dir",
    "tar2sqfs",
    "tar2erofs",
];

/// What completions offer for `--platform` (any other value is accepted).
const COMMON_PLATFORMS: [&str; 6] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
];

/// Parses the command line into `P`, unless it is `PROGRAM --generate
/// KIND`: then prints what was asked for and exits. A usage error is
/// one line prefixed with the program's name, as every other message,
/// then clap's usage line; exit status 2.
pub fn parse_or_generate<P: Parser>() -> P {
    let args: Vec<_> = std::env::args_os().collect();
    let name = P::command().get_name().to_owned();
    if args.len() == 3 && args[1] == "--generate" {
        let kind = args[2].to_string_lossy().into_owned();
        let mut stdout = std::io::stdout().lock();
        let result =
            generate(&mut P::command(), &kind, &mut stdout).and_then(|()| Ok(stdout.flush()?));
        if let Err(e) = result {
            crate::print_line(&format!("{name}: error: {e:#}"));
            std::process::exit(2);
        }
        std::process::exit(0);
    }
    crate::set_usage(usage(&P::command()));
    match P::try_parse_from(args) {
        Ok(parsed) => parsed,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let mut lines = usage_error_lines(&e.render().to_string()).into_iter();
            for line in lines
                .next()
                .map(|line| format!("{name}: {line}"))
                .into_iter()
                .chain(lines)
            {
                crate::print_line(&line);
            }
            std::process::exit(i32::from(crate::EXIT_USAGE));
        }
    }
}

/// `tar2dir DIR`: the program and its first positional argument.
pub(crate) fn usage(command: &clap::Command) -> String {
    let mut usage = command.get_name().to_owned();
    // The first positional is the output or input every hint names.
    for arg in command.get_positionals().take(1) {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first().map(ToString::to_string))
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        usage.push(' ');
        usage.push_str(&name);
    }
    usage
}

/// clap's rendered usage error as two lines: the error, with the details
/// clap puts on indented lines (allowed values, missing arguments) joined
/// to it, and the usage line. Tips are dropped.
fn usage_error_lines(rendered: &str) -> Vec<String> {
    let mut lines = rendered.lines();
    let mut error = lines.next().unwrap_or_default().trim().to_owned();
    let mut usage = None;
    for line in lines {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Usage:") {
            usage = Some(format!("Usage:{rest}"));
        } else if line.starts_with(' ') && !trimmed.starts_with("tip:") && !trimmed.is_empty() {
            error.push(' ');
            error.push_str(trimmed);
        }
    }
    let error = error.strip_prefix("error: ").unwrap_or(&error);
    let mut out = vec![format!("error: {error}")];
    out.extend(usage.map(|usage| usage.trim_end().to_owned()));
    out
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
    clap_complete::generate(shell, &mut for_completion(command), name, out);
    Ok(())
}

/// `command` as completions should see it: without its hidden flags
/// (clap_complete offers them), and with values to offer where a flag
/// takes a free-form one from a known set (`--platform`).
fn for_completion(command: &mut clap::Command) -> clap::Command {
    command.build();
    let visible = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .map(|arg| match (arg.get_id().as_str(), arg.get_action()) {
            ("platform", _) => arg.clone().value_parser(COMMON_PLATFORMS),
            // Only a flag to offer here; as `Version` it would need the
            // command's version, as `Help` its help.
            (_, ArgAction::Version | ArgAction::Help | ArgAction::HelpLong) => {
                arg.clone().action(ArgAction::SetTrue)
            }
            _ => arg.clone(),
        });
    // clap takes only a static name (without its `string` feature); the
    // process prints the script and exits.
    let name: &'static str = Box::leak(command.get_name().to_owned().into_boxed_str());
    clap::Command::new(name)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(visible)
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
    synopsis(&command).to_writer(out)?;
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
    see_also(&mut roff, command.get_name());
    roff.to_writer(out)?;
    man.render_version_section(out)?;
    Ok(())
}

/// SYNOPSIS with every visible option and the value it takes
/// (`[--progress WHEN]`), which clap_mangen leaves out.
fn synopsis(command: &clap::Command) -> Roff {
    let mut line = vec![bold(command.get_name().to_owned())];
    for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
        let value = arg
            .get_value_names()
            .and_then(|names| names.first().map(ToString::to_string));
        line.push(roman(" ["));
        if arg.is_positional() {
            let id = arg.get_id().as_str().to_uppercase();
            line.push(italic(value.unwrap_or(id)));
        } else {
            let flag = match (arg.get_short(), arg.get_long()) {
                (Some(short), Some(long)) => format!("-{short}|--{long}"),
                (Some(short), None) => format!("-{short}"),
                (None, long) => format!("--{}", long.unwrap_or_default()),
            };
            line.push(bold(flag));
            if arg.get_action().takes_values() {
                line.push(roman(" "));
                line.push(italic(value.unwrap_or_else(|| "VALUE".to_owned())));
            }
        }
        line.push(roman("]"));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    roff.text(line);
    roff
}

/// SEE ALSO: the other programs, and the design document.
fn see_also(roff: &mut Roff, name: &str) {
    let others: Vec<String> = PROGRAMS
        .iter()
        .filter(|other| **other != name)
        .map(|other| format!("{other}(1)"))
        .collect();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(format!(
        "{}. The rules the tools follow: docs/design.md in the ocirender repository.",
        others.join(", ")
    ))]);
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

    #[test]
    fn usage_errors_become_two_lines() {
        let cases = [
            (
                "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, \
                 use '-- --bogus'\n\nUsage: demo [OPTIONS] <INPUT>\n\nFor more information, \
                 try '--help'.\n",
                vec![
                    "error: unexpected argument '--bogus' found",
                    "Usage: demo [OPTIONS] <INPUT>",
                ],
            ),
            (
                "error: invalid value 'x' for '--progress <WHEN>'\n  [possible values: auto, \
                 never]\n\nFor more information, try '--help'.\n",
                vec!["error: invalid value 'x' for '--progress <WHEN>' [possible values: auto, never]"],
            ),
            (
                "error: the following required arguments were not provided:\n  <INPUT>\n\n\
                 Usage: demo <INPUT>\n",
                vec![
                    "error: the following required arguments were not provided: <INPUT>",
                    "Usage: demo <INPUT>",
                ],
            ),
        ];
        for (rendered, expected) in cases {
            assert_eq!(usage_error_lines(rendered), expected, "{rendered}");
        }
    }
}
