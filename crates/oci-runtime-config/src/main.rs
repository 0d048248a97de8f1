//! `oci-runtime-config [--rootfs DIR] [CONFIG]`: an OCI runtime bundle's
//! `config.json` from an image config and its unpacked root filesystem.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocirender::runtime::{
    read_image_config, runtime_config, Options, MAX_ETC_FILE, MAX_IMAGE_CONFIG,
};
use ocirender_cli as cli;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const PROGRAM: &str = "oci-runtime-config";

/// `--help`'s trailing text, with the limits the code enforces.
fn after_help() -> String {
    AFTER_HELP
        .replace("{config_mib}", &(MAX_IMAGE_CONFIG >> 20).to_string())
        .replace("{etc_mib}", &(MAX_ETC_FILE >> 20).to_string())
}

const AFTER_HELP: &str = "\
CONVERSION
  By the image spec's conversion rules (conversion.md): Entrypoint then Cmd
  as the arguments (sh when neither is set); Env over a default PATH;
  WorkingDir as the working directory (/ when unset); each volume a tmpfs;
  annotations from os, architecture, variant, os.version, os.features,
  author, created, StopSignal and ExposedPorts, with the image's labels
  over them. The rest is umoci's default sandbox, which runc and crun run:
  its own pid, network, ipc, uts and mount namespaces, three capabilities,
  no new privileges, 1024 open files. No terminal unless --terminal: the
  bundle's output can be piped. The JSON is indented with tabs.

USER
  Config.User (user, uid, user:group, uid:gid, uid:group or user:gid) is
  resolved as runc resolves it, in DIR's /etc/passwd and /etc/group, read
  inside DIR: their symlinks resolve within DIR, never on the host. A name
  without an entry is an error; a number without one is used as it is. A
  user without an explicit group gets the groups that list it as its
  supplementary groups, and HOME from its entry unless the image sets HOME.

THE BUNDLE
  A runtime reads config.json in the bundle directory and resolves
  root.path from there, so root.path is DIR's last component: write the
  output next to DIR (bundle/config.json for --rootfs bundle/rootfs).

LIMITS
  image config                 {config_mib} MiB
  /etc/passwd, /etc/group      {etc_mib} MiB each, regular files only

EXIT STATUS
  0 when config.json was written; 1 on any error (one line on stderr that
  names the input; nothing on stdout); 141 when the reader of stdout went
  away (as if killed by SIGPIPE).

ENVIRONMENT
  None is read. --rootless maps the effective uid and gid of this process:
  run it as the user who will run the container.

EXAMPLES
  oci-layers IMAGE | oci-merge | tar2dir bundle/rootfs
  oci-runtime-config --rootfs bundle/rootfs config.json > bundle/config.json
  runc run --bundle bundle NAME";

/// Write an OCI runtime bundle's config.json from an image config.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = after_help())]
struct Args {
    /// The image config (the JSON blob an image manifest's `config` names);
    /// stdin when absent or `-`.
    config: Option<PathBuf>,
    /// The unpacked root filesystem: its /etc/passwd and /etc/group resolve
    /// Config.User, and its last component is written as root.path.
    #[arg(long, value_name = "DIR", default_value = "rootfs")]
    rootfs: PathBuf,
    /// A config an unprivileged user can run: a user namespace mapping your
    /// uid and gid to root (so the image must run as root), no network
    /// namespace, /sys and /etc/resolv.conf bound from the host.
    #[arg(long)]
    rootless: bool,
    /// Give the process a terminal, and TERM=xterm unless the image sets TERM.
    #[arg(long)]
    terminal: bool,
    /// Read DIR's files without openat2 (for testing).
    #[arg(long, hide = true)]
    no_openat2: bool,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    cli::run(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    let input = args.config.filter(|path| path.as_os_str() != "-");
    let name = input
        .as_deref()
        .map_or_else(|| "stdin".to_owned(), |path| path.display().to_string());
    let bytes = read_input(input.as_deref()).with_context(|| name.clone())?;
    let options = Options {
        rootfs: args.rootfs,
        terminal: args.terminal,
        rootless: args.rootless,
        force_walk: args.no_openat2,
    };
    let json = runtime_config(&bytes, &options).with_context(|| name)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&json)?;
    stdout.flush()?;
    Ok(())
}

fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    Ok(match path {
        Some(path) => read_image_config(File::open(path)?)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("is a terminal: give CONFIG, or pipe an image config in");
            }
            read_image_config(stdin.lock())?
        }
    })
}
