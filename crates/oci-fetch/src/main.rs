//! `oci-fetch`: resolve an image in a registry and hand its layers to
//! `oci-merge`, streamed through named pipes or kept in a shared layout.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocirender::image::listing;
use ocirender::image::PlatformRequest;
use ocirender::image::Selection;
use ocirender::image::{ImageName, Transport};
use ocirender::progress::DownloadObserver;
use ocirender::registry::fetch::{self, prune, Request};
use ocirender::registry::mirrors::{Mirror, RegistriesConf};
use ocirender::registry::Reference;
use ocirender::registry::{ClientOptions, Endpoints, RetryNotice, Warn};
use ocirender_cli as cli;
use ocirender_cli::progress::{DownloadProgress, When};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const PROGRAM: &str = "oci-fetch";

const AFTER_HELP: &str = "\
REFERENCE
  [registry[:port]/]repository[:tag][@digest], read as docker does:
  debian = docker.io/library/debian:latest, served at registry-1.docker.io.
  A docker:// prefix is accepted; a name starting with oci:, oci-archive:
  or docker-archive: is an image on disk, for oci-layers (a registry host
  of that name is written docker://HOST:PORT/...). A digest pins the
  content: what the
  registry sends is checked against it. Manifests, indexes and configs are
  always checked against their digests; layers are checked by oci-merge
  (streaming) or before they enter the store (--store).

STREAMING (the default)
  No layer byte touches the disk. oci-fetch makes a private directory
  (in $XDG_RUNTIME_DIR or $TMPDIR; mode 0700 whatever the umask, checked
  to be its own) with one named pipe per layer, and prints their paths,
  each with the layer's digest and the directory's session pipe. A pipe is
  opened without following a symlink and must be the very pipe that was
  made: anything put in its place is refused (an error), never written
  to. A thread per pipe downloads the layer when the reader opens it, as
  fast as the reader consumes it: oci-merge reads the newest layer first,
  a few at a time, so the merge runs while older layers download. A layer
  opened again (oci-merge's second read for promoted hard links) is
  downloaded again. A download that fails makes oci-fetch exit non-zero
  and leaves the reader a short or wrong layer, which oci-merge detects by
  its size and digest: the merge fails, no end-of-archive marker.
  Streaming needs stdout to be a pipe (or a named FIFO) to the reader.

  How long it serves: the list's last line, #end, is printed (and stdout
  closed) once the rest has been read. Each oci-merge reading the list
  then holds the session pipe open until it exits, however it ends; the
  kernel tells oci-fetch when the last one has, in any pid namespace, for
  any user. Other readers are found in /proc (the processes holding the
  pipe on stdout) and waited for. oci-fetch exits when no reader is left
  and no layer is being sent; when no oci-merge ever joined (the reader
  was cat or head), 1 second after /proc shows the readers gone, or, if
  it never showed any, 10 seconds after the list was read. It never exits
  while a layer is being sent. A reader of another user (not root) cannot open the private
  pipes: when /proc shows one, oci-fetch says so and exits 1 before
  serving anything. If oci-fetch dies (even by SIGKILL), oci-merge fails
  at once instead of waiting for a layer; the directory a killed oci-fetch
  left is removed by this user's next streaming run (only this user's,
  only once its owner is gone: it holds a lock on it while it lives). A
  signal (INT, TERM, HUP) removes the directory at once.

--store DIR
  Downloads into DIR, an OCI image layout shared by many images: a blob
  already there is not fetched again, a blob appears only complete and
  verified (written to blobs/ALG/.HEX.partial, then renamed), and
  concurrent runs are safe. A stored blob is hashed again the first time
  a run uses it: one that no longer matches its digest (zeroed,
  truncated, replaced by a symlink) gets one warning and is fetched
  again and replaced. DIR/index.json (at most 32 MiB) is checked before
  anything is downloaded. The reference is recorded in it (org.
  opencontainers.image.ref.name), so `oci-layers --tag REFERENCE DIR`
  works later offline. The printed list names the blob files, as
  oci-layers prints them.

  Resuming: a download that stops (a dropped network, Ctrl-C, kill -9)
  leaves its .HEX.partial, and the next run asks the registry only for
  the rest (Range: bytes=N-, N its length). The whole blob, kept bytes
  and new ones, must then match its size and digest; kept bytes that do
  not get one warning and the blob is downloaded again from its start,
  as it is when the registry ignores the range. A .partial file is used
  only if it is a regular file of this user's that no one else may write
  and that has no other link; a run writing it holds a lock on it, and
  another run then downloads the same blob to a file of its own rather
  than wait.

  Safety: nothing in DIR is followed through a symlink (a symlink planted
  as a lock or index.json is an error). Every run holds DIR/.oci-fetch.
  lock shared from the moment it opens the store until the reference is
  recorded, so --prune, which holds it exclusive, never removes a blob a
  run has found or written before index.json names it; DIR/.oci-fetch.
  index.lock serializes the updates of index.json.

--store DIR --prune
  Removes from DIR what no image in its index.json needs: blobs that no
  descriptor reachable from index.json references (indexes, nested or
  not, manifests, configs, layers, subjects, and any descriptor found in
  a JSON blob of another media type, up to 4 MiB), .partial files no run
  is writing, and the temporaries index.json is written under. Nothing
  modified less than --grace ago (default 1h) is removed, nor any other
  file, directory or symlink. A DIR without index.json is refused, and an
  index or manifest that index.json reaches but that is missing, over
  32 MiB or not JSON stops the prune before anything is removed. It holds .oci-fetch.
  lock exclusive: it waits for the fetches running, and fetches that
  start wait for it. Tools that write into DIR without that lock (skopeo,
  umoci) are protected only by --grace, and by index.json being read
  again before anything is removed (and everything marked again if it
  changed). Every reference recorded keeps all its blobs: what goes is
  what a reference no longer names, such as the old image of a tag
  fetched again after it moved. Prints nothing on success; --dry-run
  lists the paths that would go, one a line, and removes nothing; --json
  prints an object: dryRun, removed (each with its path, kind: blob,
  partial or temporary, digest and size) and bytes (the bytes freed).

AUTHENTICATION
  Anonymous and credentialed bearer tokens (reused while valid) and basic
  auth. Credentials are looked up, first match wins, in: --authfile FILE
  only, if given; else $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/
  auth.json (without XDG_RUNTIME_DIR: /run/containers/UID/auth.json; where
  oci-login, podman login and skopeo login write), ~/.config/containers/
  auth.json, then $DOCKER_CONFIG/config.json or ~/.docker/config.json
  (auths, credHelpers, credsStore through the docker-credential-*
  helpers). Credentials and tokens are never printed.
  Credentials go to the registry itself, and to the token service its
  challenge names only if that is HTTPS, on this machine (localhost,
  127.0.0.0/8 or ::1 as written in its URL: a name that merely resolves
  there does not count), or the plain-HTTP registry itself (same host and
  port). Any other token service is asked for an anonymous token; if
  access is then denied, the error says the credentials were withheld.

SEEING BEFORE FETCHING (no layer is downloaded)
  --list prints the platforms the reference holds: a table (NAME, DIGEST,
  PLATFORM, LAYERS, SIZE), as `oci-layers --list` prints it: the index on
  a line of its own, a line per platform manifest under it, each read
  and checked (manifest and config); past the first 32 platform
  manifests only what the index says of them (LAYERS and SIZE `?`).
  Attestation manifests are not listed. --json gives `oci-layers --list
  --json`'s array (one object, names = [the reference]).
  --list-tags prints the tags of the repository REFERENCE names (written
  without a tag or digest), one a line, in the registry's order; --json
  prints {\"Repository\": ..., \"Tags\": [...]} as `skopeo list-tags`
  does. The tag list is read in pages (n=1000 asked for; the registry's
  Link header followed, on this registry only).
  --config prints the selected image's config blob exactly as the
  registry sent it, its bytes checked against the config digest of the
  manifest (--platform selects), instead of the layer list.

NETWORK
  HTTPS with the system's trust store (SSL_CERT_FILE, SSL_CERT_DIR);
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY. A registry on this
  machine (localhost, 127.0.0.0/8, ::1), or one registries.conf marks
  insecure (see MIRRORS), is tried with HTTPS first and, as Docker does,
  spoken to in plain HTTP if it does not speak TLS at all (found out once
  per run); a certificate problem is an error, never a reason for plain
  HTTP. Any other registry gets HTTPS only, unless --plain-http, which
  always means plain HTTP to it (not to its mirrors). Redirects (at most
  5, of GETs: a blob's to a CDN or object store) keep the Authorization
  header only to the same scheme, host and port. Retries with backoff on
  429 (honouring Retry-After up to 60 s), 5xx and dropped connections,
  resuming a blob with a Range request.

MIRRORS
  A site's pull-through cache, or any mirror, is configured as podman,
  skopeo and buildah read it, in containers-registries.conf(5): the
  [[registry]] with the longest prefix matching the reference's name
  (docker.io/library/debian for debian; prefix = \"example.com/foo\"
  matches example.com/foo and what is below it, \"*.example.com\" every
  host under that domain, any port; prefix defaults to location; unlike
  containers/image, example.com does not match example.com:5000) says
  where to pull from. Its location replaces the matched part of the
  name; blocked = true refuses the pull; insecure = true lets that
  location speak plain HTTP if it does not speak TLS, as a registry on
  this machine may (certificates are checked all the same). Its
  [[registry.mirror]] entries are tried in order before the location,
  each with the rest of the name below its own location:
  pull-from-mirror = \"digest-only\" keeps a mirror to pulls by digest,
  \"tag-only\" to pulls by tag, and mirror-by-digest-only = true every
  mirror of the [[registry]] to pulls by digest.
  Files: /etc/containers/registries.conf (v1, with [registries.block] and
  [registries.insecure], is converted), then the *.conf drop-ins of
  /etc/containers/registries.conf.d and ~/.config/containers/
  registries.conf.d, in name order (v2 only); a later [[registry]] with the
  same prefix replaces an earlier one whole. If ~/.config/containers/
  registries.conf exists, it and its .d directory are read instead.
  $CONTAINERS_REGISTRIES_CONF replaces the main file (drop-ins still
  apply); --registries-conf FILE is the only file read (/dev/null: none).
  A file that does not parse is an error naming it and the line.
  --registry-mirror [http://]HOST[:PORT][/PATH] (repeatable) adds a
  mirror for whatever the reference's registry, tried before those of
  registries.conf, for every pull, tag or digest: the image is asked for
  as HOST/PATH/REPOSITORY (HOST/library/debian for debian); http:// allows
  plain HTTP as insecure = true does.
  The manifest or index comes from the first endpoint that serves it
  (--json names it: \"endpoint\"); the rest of the image from that one, or
  the next ones if it fails, the registry last. A mirror that fails
  (cannot connect, 5xx once retries are spent, not found, access refused,
  content that does not match its digest) gets one warning and is not
  asked again during the run. Every byte is verified against its digest
  whoever sends it, so a mirror can withhold an image but not change it;
  what a tag names is trusted from a mirror as from the registry. A
  layer already streamed to the reader cannot be taken back: a corrupt
  one from a mirror fails a streaming pull, while --store fetches it again
  from the next endpoint. Each endpoint gets the credentials stored for
  its own host: the registry's never go to a mirror, nor the other way.

LIMITS
  A manifest, index or config is at most 4 MiB (one declared larger is
  refused before it is read; a real one is a few KiB), a token service's
  answer at most 1 MiB. Each of them must arrive whole within --deadline
  seconds (default 60), every retry, redirect and Retry-After included (a
  registry that sends a byte a second never trips --timeout); one attempt
  at it that takes longer than --timeout is retried. Layers have no
  deadline (they may take hours) and no size limit but their
  descriptor's; a layer connection that sends nothing for --timeout
  seconds is retried. An error answer's text is read for at most 64 KiB
  and 5 s. A token is reused for at most a day, whatever it says. A tag
  list is read in at most 1000 pages of at most 4 MiB each, each within
  the deadline, and at most 100000 tags. A registries.conf file is at
  most 1 MiB, and a drop-in directory holds at most 1000 *.conf files.

ENVIRONMENT
  REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, XDG_CONFIG_HOME, DOCKER_CONFIG, HOME
                  where credentials are looked for (AUTHENTICATION above)
  CONTAINERS_REGISTRIES_CONF, HOME
                  where registries.conf is looked for (MIRRORS above)
  XDG_RUNTIME_DIR, TMPDIR
                  where the private directory of pipes is made
  SSL_CERT_FILE, SSL_CERT_DIR
                  trusted certificates, instead of the system's
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (and lower case)
                  proxies, and the hosts reached without one

EXIT STATUS
  0 when the image resolved and every layer asked for was served (or
  stored) and verified; 1 on any error, with one line on stderr; 141 when
  the reader of stdout went away before the list was written.

EXAMPLES
  oci-fetch debian:12 | oci-merge | tar2sqfs debian.sqfs
  oci-fetch --platform linux/arm64 ghcr.io/org/app@sha256:... | oci-merge | tar2dir rootfs/
  oci-fetch --store ~/.cache/ocirender quay.io/org/img:1.2 | oci-merge > rootfs.tar
  oci-fetch --json alpine | jq -r '.layers[].digest'
  oci-fetch --list debian:12
  oci-fetch --list-tags --json quay.io/org/img | jq -r '.Tags[]'
  oci-fetch --config --platform linux/arm64 debian:12 | jq .config.Cmd
  oci-fetch --registry-mirror cache.example.lan:5000 debian:12 | oci-merge > rootfs.tar
  oci-fetch --store ~/.cache/ocirender --prune --dry-run";

/// Resolve a registry image and serve its layers to oci-merge, base first.
///
/// oci-fetch resolves REFERENCE in its registry (mirrors and credentials
/// as podman and skopeo configure them), picks one image by --platform,
/// and prints its layer list for oci-merge: by default named pipes, each
/// fed from the network while oci-merge reads it, so no layer touches the
/// disk; with --store DIR, verified blobs kept in a shared OCI layout.
/// See docs/design.md.
#[derive(Parser)]
#[command(name = PROGRAM, version, long_version = cli::LONG_VERSION, after_help = AFTER_HELP)]
struct Args {
    /// The image: [registry[:port]/]repository[:tag][@digest].
    #[arg(required_unless_present = "prune")]
    reference: Option<String>,
    /// Platform os/arch[/variant] (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print the resolved image as JSON instead of the layer list (no
    /// layer is downloaded unless --store is given); with --prune, what
    /// was removed.
    #[arg(long)]
    json: bool,
    /// List the platforms of the reference (its manifests, digests, layer
    /// counts and sizes) instead of the layer list.
    #[arg(long, conflicts_with_all = ["store", "platform", "config", "list_tags"])]
    list: bool,
    /// List the tags of the repository REFERENCE names (no tag or digest).
    #[arg(long, conflicts_with_all = ["store", "platform", "config"])]
    list_tags: bool,
    /// Print the image's config blob, verified, instead of the layer list.
    #[arg(long, conflicts_with_all = ["store", "json"])]
    config: bool,
    /// Keep blobs in this shared OCI layout and list the files, instead
    /// of streaming.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Show --store's downloads on stderr: a redrawn line (auto: only if
    /// stderr is a terminal), or JSON events (download, blob, then done).
    /// Streaming shows nothing: oci-merge's line has the bytes.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = When::Auto)]
    progress: When,
    /// Read credentials from this file only (docker config.json or
    /// containers auth.json format).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Speak plain HTTP to the registry, never HTTPS (see NETWORK); not
    /// to its mirrors.
    #[arg(long)]
    plain_http: bool,
    /// Read mirrors, rewrites and blocks from this registries.conf only
    /// (see MIRRORS).
    #[arg(long, value_name = "FILE")]
    registries_conf: Option<PathBuf>,
    /// A mirror to try first for the reference's registry (repeatable;
    /// see MIRRORS).
    #[arg(long, value_name = "[http://]HOST[:PORT][/PATH]")]
    registry_mirror: Vec<String>,
    /// Layers downloaded at once into --store. Streaming downloads what
    /// the reader has open (oci-merge's read-ahead).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Seconds without data before a connection counts as stalled and is
    /// retried (for a manifest, config or token: seconds one attempt may
    /// take).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Seconds a manifest, index, config or token has to arrive whole,
    /// retries included (see LIMITS).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    deadline: u64,
    /// Instead of fetching, remove from --store what no image in its
    /// index.json needs (see --store DIR --prune); quiet unless --dry-run
    /// or --json.
    #[arg(long, requires = "store", conflicts_with_all = ["reference", "platform", "authfile", "plain_http"])]
    prune: bool,
    /// With --prune: list what would be removed, remove nothing.
    #[arg(long, requires = "prune")]
    dry_run: bool,
    /// With --prune: keep what was modified less than this long ago
    /// (N, Ns, Nm, Nh or Nd).
    #[arg(long, value_name = "DURATION", default_value = "1h", requires = "prune", value_parser = prune::parse_grace)]
    grace: Duration,
}

fn main() -> ExitCode {
    let args = ocirender_cli::generate::parse_or_generate::<Args>();
    // Only a layer list ends in `#failed`: JSON, listings, a config and
    // housekeeping stay as they are.
    if args.json || args.list || args.list_tags || args.config || args.prune {
        return cli::run(PROGRAM, || run(args));
    }
    cli::run_source(PROGRAM, || run(args))
}

fn run(args: Args) -> Result<()> {
    ocirender::process::remove_on_signal().context("cannot install signal handlers")?;
    if args.prune {
        return run_prune(&args);
    }
    let text = args.reference.as_deref().expect("clap requires it");
    refuse_local_name(text)?;
    let reference: Reference = text.parse()?;
    let progress = args
        .progress
        .style()
        .map(|style| Arc::new(DownloadProgress::new(PROGRAM, style)));
    let warn = warn_around(progress.clone());
    let options = ClientOptions {
        plain_http: args.plain_http,
        authfile: args.authfile.clone(),
        stall_timeout: Duration::from_secs(args.timeout),
        deadline: Duration::from_secs(args.deadline),
        retry_notice: RetryNotice::to(warn.clone()),
        ..ClientOptions::default()
    };
    let mirrors = args
        .registry_mirror
        .iter()
        .map(|text| Mirror::from_flag(text))
        .collect::<ocirender::Result<Vec<_>>>()?;
    let plan = RegistriesConf::load(args.registries_conf.as_deref())?.plan(&reference, &mirrors)?;
    let registry = Endpoints::new(&reference, &plan, &options, warn.clone())?;
    if let Some(output) = inspect(&args, &registry, &reference)? {
        return Ok(write_stdout(&output)?);
    }
    let request = Request {
        reference,
        selection: Selection {
            platform: PlatformRequest::new(args.platform.as_deref())?,
            tag: None,
        },
        json: args.json,
        store: args.store,
        jobs: usize::from(args.jobs),
    };
    let mut print = write_stdout;
    let observer = progress.as_deref().map(|p| p as &dyn DownloadObserver);
    match &request.store {
        Some(dir) => fetch::store(&registry, &request, dir, &mut print, warn, observer)?,
        None => fetch::stream(&registry, &request, &mut print)?,
    }
    if let Some(progress) = &progress {
        progress.done();
    }
    Ok(())
}

/// Warnings on a line of their own, the progress line stepping aside.
fn warn_around(progress: Option<Arc<DownloadProgress>>) -> Warn {
    Arc::new(move |message: &str| match &progress {
        Some(progress) => progress.suspend(|| cli::warn(PROGRAM, message)),
        None => cli::warn(PROGRAM, message),
    })
}

/// `--store DIR --prune`: prints nothing unless asked to.
fn run_prune(args: &Args) -> Result<()> {
    let dir = args.store.as_deref().expect("clap requires --store");
    let options = prune::Options {
        grace: args.grace,
        dry_run: args.dry_run,
    };
    let report = prune::prune(dir, &options)?;
    if args.json {
        Ok(write_stdout(&report.json()?)?)
    } else if args.dry_run {
        Ok(write_stdout(&report.lines())?)
    } else {
        Ok(())
    }
}

/// Writes `bytes` to stdout, for the library to print through.
fn write_stdout(bytes: &[u8]) -> ocirender::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| ocirender::Error::from(e).context("cannot write to stdout"))
}

/// What --list, --list-tags or --config print, if one was asked for.
fn inspect(args: &Args, registry: &Endpoints, reference: &Reference) -> Result<Option<Vec<u8>>> {
    let output = if args.list {
        let image = fetch::list(registry, reference)?;
        let images = std::slice::from_ref(&image);
        if args.json {
            listing::inventory_json(images)?
        } else {
            listing::inventory_table(images)
        }
    } else if args.list_tags {
        let text = args.reference.as_deref().unwrap_or_default();
        if names_a_tag_or_digest(text) {
            bail!("{text}: --list-tags takes a repository, without a tag or digest");
        }
        let tags = registry.tags()?;
        if args.json {
            listing::tags_json(&registry.name(), &tags)?
        } else {
            listing::tag_lines(&tags)
        }
    } else if args.config {
        let selection = Selection {
            platform: PlatformRequest::new(args.platform.as_deref())?,
            tag: None,
        };
        fetch::config(registry, reference, &selection)?
    } else {
        return Ok(None);
    };
    Ok(Some(output))
}

/// `repo:tag` or `repo@digest`: a tag's colon is in the last component
/// (a port's is in the first, before a `/`).
fn names_a_tag_or_digest(text: &str) -> bool {
    let name = text.strip_prefix("docker://").unwrap_or(text);
    name.contains('@')
        || name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

/// An image on disk named the containers-transports way is oci-layers'.
fn refuse_local_name(text: &str) -> Result<()> {
    let local = ImageName::parse(text).is_ok_and(|name| {
        matches!(
            name.transport,
            Transport::Oci | Transport::OciArchive | Transport::DockerArchive
        )
    });
    if local {
        bail!("{text}: an image on disk; oci-fetch reads registries: use `oci-layers {text}`");
    }
    Ok(())
}
