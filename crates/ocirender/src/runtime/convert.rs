//! An image config onto the template, by the image spec's
//! `conversion.md`: verbatim fields, annotations, the resolved user,
//! volumes. (What departs from umoci is listed in the docs of [`super`].)

use super::error::Error;
use super::image::ImageConfig;
use super::spec::Spec;
use super::template::{mount, DEFAULT_TERM};
use super::user::ExecUser;
use std::collections::BTreeMap;

/// How volumes are mounted: a fresh tmpfs each (umoci's choice; the spec
/// leaves all but the destination to the converter).
const VOLUME_OPTIONS: &[&str] = &["rw", "nosuid", "nodev", "noexec", "relatime"];

/// Applies `image`, run as `user`, to `spec` (the template). With
/// `terminal`, the process gets a terminal and, unless the image sets
/// one, `TERM=xterm`.
pub(crate) fn apply_image(
    spec: &mut Spec,
    image: &ImageConfig,
    user: &ExecUser,
    terminal: bool,
) -> Result<(), Error> {
    let exec = image.exec();
    let process = &mut spec.process;
    process.terminal = terminal;
    if terminal {
        set_env(&mut process.env, DEFAULT_TERM);
    }
    for entry in exec.env.iter().flatten() {
        check_env(entry)?;
        set_env(&mut process.env, entry);
    }
    if let Some(home) = &user.home {
        // conversion.md: a default must not change the image's variables
        // (umoci 0.4.7 overwrites the image's HOME).
        if !process.env.iter().any(|entry| var_name(entry) == "HOME") {
            process.env.push(format!("HOME={home}"));
        }
    }

    let args: Vec<String> = exec
        .entrypoint
        .iter()
        .flatten()
        .chain(exec.cmd.iter().flatten())
        .cloned()
        .collect();
    if !args.is_empty() {
        process.args = args;
    }
    if let Some(cwd) = exec.working_dir.filter(|dir| !dir.is_empty()) {
        process.cwd = absolute("Config.WorkingDir", cwd)?;
    }

    process.user.uid = user.uid;
    process.user.gid = user.gid;
    process.user.additional_gids = user.additional_gids.clone();

    for volume in exec.volumes.iter().flat_map(BTreeMap::keys) {
        let destination = absolute("Config.Volumes", volume.clone())?;
        spec.mounts
            .push(mount(&destination, "tmpfs", "none", VOLUME_OPTIONS));
    }
    spec.annotations = annotations(image);
    Ok(())
}

/// The annotations `conversion.md` derives from the image, with its labels
/// over them: a label wins over a derived annotation of the same key.
fn annotations(image: &ImageConfig) -> BTreeMap<String, String> {
    let exec = image.exec();
    let ports = exec
        .exposed_ports
        .map(|ports| ports.into_keys().collect::<Vec<_>>().join(","));
    let features = image.os_features.as_ref().map(|f| f.join(","));
    let derived = [
        ("os", Some(&image.os)),
        ("architecture", Some(&image.architecture)),
        ("variant", image.variant.as_ref()),
        ("os.version", image.os_version.as_ref()),
        ("os.features", features.as_ref()),
        ("author", image.author.as_ref()),
        ("created", image.created.as_ref()),
        ("stopSignal", exec.stop_signal.as_ref()),
        ("exposedPorts", ports.as_ref()),
    ];
    let mut annotations: BTreeMap<String, String> = derived
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (format!("org.opencontainers.image.{key}"), value.clone()))
        .collect();
    annotations.extend(exec.labels.unwrap_or_default());
    annotations
}

/// `NAME=VALUE` with a non-empty `NAME`.
fn check_env(entry: &str) -> Result<(), Error> {
    match entry.split_once('=') {
        Some((name, _)) if !name.is_empty() => Ok(()),
        _ => Err(Error::BadEnv(entry.to_owned())),
    }
}

/// Replaces the variable of `entry`'s name where it is, or appends it (the
/// rule of Docker and umoci: a later entry of a name overrides an earlier).
fn set_env(env: &mut Vec<String>, entry: &str) {
    let name = var_name(entry);
    match env.iter_mut().find(|e| var_name(e) == name) {
        Some(existing) => *existing = entry.to_owned(),
        None => env.push(entry.to_owned()),
    }
}

fn var_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// The runtime spec requires absolute paths for `cwd` and mount
/// destinations; runc refuses a relative `cwd`.
fn absolute(field: &'static str, path: String) -> Result<String, Error> {
    match path.starts_with('/') {
        true => Ok(path),
        false => Err(Error::RelativePath { field, path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::template::{template, DEFAULT_PATH};

    fn image(config: &str) -> ImageConfig {
        let json = format!(r#"{{"architecture": "amd64", "os": "linux", "config": {config}}}"#);
        ImageConfig::parse(json.as_bytes()).unwrap()
    }

    fn root() -> ExecUser {
        ExecUser::default()
    }

    fn convert(config: &str, user: &ExecUser, terminal: bool) -> Result<Spec, Error> {
        let mut spec = template("rootfs".to_owned());
        apply_image(&mut spec, &image(config), user, terminal)?;
        Ok(spec)
    }

    fn home(dir: &str) -> ExecUser {
        ExecUser {
            home: Some(dir.to_owned()),
            ..ExecUser::default()
        }
    }

    #[test]
    fn env_is_the_image_over_the_defaults_in_place() {
        let cases: Vec<(&str, ExecUser, bool, Vec<&str>)> = vec![
            ("{}", root(), false, vec![DEFAULT_PATH]),
            ("{}", root(), true, vec![DEFAULT_PATH, "TERM=xterm"]),
            ("{}", home("/root"), false, vec![DEFAULT_PATH, "HOME=/root"]),
            (
                r#"{"Env": ["FOO=bar", "PATH=/bin"]}"#,
                root(),
                true,
                vec!["PATH=/bin", "TERM=xterm", "FOO=bar"],
            ),
            (
                r#"{"Env": ["TERM=dumb"]}"#,
                root(),
                true,
                vec![DEFAULT_PATH, "TERM=dumb"],
            ),
            // The image's HOME stays (umoci 0.4.7 overwrites it).
            (
                r#"{"Env": ["HOME=/custom", "A="]}"#,
                home("/home/app"),
                false,
                vec![DEFAULT_PATH, "HOME=/custom", "A="],
            ),
            // Values may hold '='; a later entry of a name wins, in place.
            (
                r#"{"Env": ["B==c", "X=1", "Y=2", "X=3"]}"#,
                root(),
                false,
                vec![DEFAULT_PATH, "B==c", "X=3", "Y=2"],
            ),
            // No home in passwd: no HOME.
            (
                r#"{"Env": ["A=1"]}"#,
                root(),
                false,
                vec![DEFAULT_PATH, "A=1"],
            ),
        ];
        for (config, user, terminal, expected) in cases {
            let spec = convert(config, &user, terminal).unwrap();
            assert_eq!(spec.process.env, expected, "{config} terminal {terminal}");
            assert_eq!(spec.process.terminal, terminal);
        }
    }

    #[test]
    fn a_malformed_env_entry_is_refused() {
        for entry in ["NOEQ", "=value", ""] {
            let config = format!(r#"{{"Env": ["A=1", {entry:?}]}}"#);
            let err = convert(&config, &root(), false).unwrap_err();
            assert!(matches!(&err, Error::BadEnv(e) if e == entry), "{err}");
        }
    }

    #[test]
    fn args_are_the_entrypoint_then_the_cmd() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"Entrypoint": ["/bin/ep", "-x"], "Cmd": ["a", "b c"]}"#,
                &["/bin/ep", "-x", "a", "b c"],
            ),
            (r#"{"Entrypoint": ["/bin/ep"]}"#, &["/bin/ep"]),
            (r#"{"Cmd": ["/bin/cmd"]}"#, &["/bin/cmd"]),
            (r#"{"Entrypoint": [], "Cmd": []}"#, &["sh"]),
            (r#"{"Entrypoint": null, "Cmd": null}"#, &["sh"]),
            ("{}", &["sh"]),
        ];
        for (config, expected) in cases {
            let spec = convert(config, &root(), false).unwrap();
            assert_eq!(spec.process.args, *expected, "{config}");
        }
    }

    #[test]
    fn the_working_directory_must_be_absolute() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("{}", Ok("/")),
            (r#"{"WorkingDir": ""}"#, Ok("/")),
            (r#"{"WorkingDir": "/srv/app/"}"#, Ok("/srv/app/")),
            (
                r#"{"WorkingDir": "app"}"#,
                Err("Config.WorkingDir \"app\" is not an absolute path"),
            ),
        ];
        for (config, expected) in cases {
            let got = convert(config, &root(), false).map(|s| s.process.cwd);
            match expected {
                Ok(cwd) => assert_eq!(got.unwrap(), *cwd, "{config}"),
                Err(message) => assert_eq!(got.unwrap_err().to_string(), *message, "{config}"),
            }
        }
    }

    #[test]
    fn volumes_are_tmpfs_mounts_after_the_template_in_sorted_order() {
        let spec = convert(
            r#"{"Volumes": {"/var/log": {}, "/data": {}, "/b": {}}}"#,
            &root(),
            false,
        )
        .unwrap();
        let added: Vec<_> = spec.mounts[7..].iter().collect();
        assert_eq!(
            added,
            [
                &mount("/b", "tmpfs", "none", VOLUME_OPTIONS),
                &mount("/data", "tmpfs", "none", VOLUME_OPTIONS),
                &mount("/var/log", "tmpfs", "none", VOLUME_OPTIONS),
            ]
        );
        let err = convert(r#"{"Volumes": {"data": {}}}"#, &root(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Config.Volumes \"data\" is not an absolute path"
        );
    }

    #[test]
    fn the_user_is_copied_whole() {
        let user = ExecUser {
            uid: 1000,
            gid: 50,
            additional_gids: vec![10, 29],
            home: None,
        };
        let spec = convert("{}", &user, false).unwrap();
        assert_eq!((spec.process.user.uid, spec.process.user.gid), (1000, 50));
        assert_eq!(spec.process.user.additional_gids, [10, 29]);
    }

    #[test]
    fn annotations_derive_from_the_image_and_labels_win() {
        let json = r#"{"architecture": "arm64", "os": "linux", "variant": "v8",
            "os.version": "", "os.features": ["a", "b"],
            "created": "2024-03-05T08:07:08.100+02:00", "author": "Jane <j@x>",
            "config": {"StopSignal": "SIGTERM",
                       "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "443": {}},
                       "Labels": {"maintainer": "x", "org.opencontainers.image.os": "fromlabel",
                                  "empty": ""}}}"#;
        let image = ImageConfig::parse(json.as_bytes()).unwrap();
        let got = annotations(&image);
        let expected: BTreeMap<String, String> = [
            ("empty", ""),
            ("maintainer", "x"),
            ("org.opencontainers.image.architecture", "arm64"),
            ("org.opencontainers.image.author", "Jane <j@x>"),
            (
                "org.opencontainers.image.created",
                "2024-03-05T08:07:08.100+02:00",
            ),
            (
                "org.opencontainers.image.exposedPorts",
                "443,53/udp,8080/tcp",
            ),
            ("org.opencontainers.image.os", "fromlabel"),
            ("org.opencontainers.image.os.features", "a,b"),
            ("org.opencontainers.image.stopSignal", "SIGTERM"),
            ("org.opencontainers.image.variant", "v8"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, expected);

        let bare = image_annotations_of(r#"{"architecture": "amd64", "os": "linux"}"#);
        assert_eq!(
            bare.into_iter().collect::<Vec<_>>(),
            [
                (
                    "org.opencontainers.image.architecture".to_owned(),
                    "amd64".to_owned()
                ),
                ("org.opencontainers.image.os".to_owned(), "linux".to_owned()),
            ]
        );
    }

    fn image_annotations_of(json: &str) -> BTreeMap<String, String> {
        annotations(&ImageConfig::parse(json.as_bytes()).unwrap())
    }
}
