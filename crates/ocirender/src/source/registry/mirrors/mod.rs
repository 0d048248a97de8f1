//! Mirrors, rewrites and blocks from `containers-registries.conf(5)`, the
//! file podman, skopeo and buildah read, so a site's pull-through cache
//! configured once serves every tool.
//!
//! * `conf`: one file's TOML (v2, or v1 converted), checked;
//! * `files`: which files are read and how drop-ins add up;
//! * `location`: `host[:port][/path]` places and mirrors;
//! * `matching`: a reference to the endpoints its pull tries, in order.
//!
//! Trying those endpoints is [`super::Endpoints`]' job.

mod conf;
mod files;
mod location;
mod matching;

pub use files::{MAX_DROP_INS, MAX_FILE};
pub use location::{Location, Mirror, PullFromMirror};
pub use matching::{Plan, PlannedEndpoint, RegistriesConf};
