//! Command-line flags as the top settings layer: each flag becomes a
//! `(key, value, flag name)` entry of [`Sources::flags`], so that
//! `config::load` types and validates it like any other layer and
//! `archgate config` can say a value came from the command line.

use figment::value::Value;

use crate::config::Sources;
use crate::error::{Error, Result};
use crate::image::media::Format;

use super::{BuildArgs, MergeArgs, RunArgs, VerifyArgs};

/// `--format`: clap's view of [`Format`] (the library knows no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// OCI image index (default).
    Oci,
    /// Docker manifest list v2, for the oldest clients.
    Docker,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Oci => Format::Oci,
            FormatArg::Docker => Format::Docker,
        }
    }
}

impl FormatArg {
    /// The value `[build] format` / `[merge] format` takes.
    fn setting(self) -> &'static str {
        match self {
            FormatArg::Oci => "oci",
            FormatArg::Docker => "docker",
        }
    }
}

/// Adds one flag layer entry.
pub fn set(sources: &mut Sources, path: &[&str], value: impl Into<Value>, name: &str) {
    sources.flags.push((
        path.iter().map(|s| s.to_string()).collect(),
        value.into(),
        name.to_string(),
    ));
}

/// A comma-separated flag value as a list.
pub fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_string()).collect()
}

/// `merge` flags (`--tag` is added to the loaded settings: it extends `tags`).
/// `--name` of `mirror`, `merge` and `build`: the `image_name` setting.
pub fn name(sources: &mut Sources, name: Option<&str>) {
    if let Some(n) = name {
        set(sources, &["image_name"], n.to_string(), "--name");
    }
}

pub fn merge(sources: &mut Sources, args: &MergeArgs) {
    name(sources, args.name.as_deref());
    if let Some(p) = &args.platform {
        set(sources, &["platforms"], split_list(p), "--platform");
    }
    if let Some(t) = &args.target {
        set(sources, &["merge", "target"], t.clone(), "--target");
    }
    if let Some(f) = args.format {
        set(sources, &["merge", "format"], f.setting(), "--format");
    }
    if args.convert {
        set(sources, &["merge", "convert"], true, "--convert");
    }
    if args.keep_attestations {
        set(
            sources,
            &["merge", "keep_attestations"],
            true,
            "--keep-attestations",
        );
    }
    if !args.sources.is_empty() {
        set(
            sources,
            &["merge", "sources"],
            args.sources.clone(),
            "SOURCE arguments",
        );
    }
}

/// `verify` flags: `--platform` names the gate's required platforms, as for `run`.
pub fn verify(sources: &mut Sources, args: &VerifyArgs) {
    if let Some(p) = &args.platform {
        set(
            sources,
            &["gate", "required_platforms"],
            split_list(p),
            "--platform",
        );
    }
    if let Some(r) = &args.runner {
        set(sources, &["verify", "runner"], r.clone(), "--runner");
    }
    if let Some(t) = args.timeout {
        set(sources, &["verify", "timeout"], t, "--timeout");
    }
    if let Some(d) = &args.report_dir {
        report_dir(sources, d);
    }
}

/// `run` flags: `--platform` names the gate's required platforms.
pub fn run(sources: &mut Sources, args: &RunArgs) {
    if let Some(p) = &args.platform {
        set(
            sources,
            &["gate", "required_platforms"],
            split_list(p),
            "--platform",
        );
    }
    if let Some(r) = &args.runner {
        set(sources, &["verify", "runner"], r.clone(), "--runner");
    }
    if let Some(d) = &args.report_dir {
        report_dir(sources, d);
    }
}

/// `--report-dir` of `verify` and `run`: `[report] dir`, so that the loader
/// records where it came from and `check_report_dir` can name it.
fn report_dir(sources: &mut Sources, dir: &std::path::Path) {
    set(
        sources,
        &["report", "dir"],
        dir.display().to_string(),
        "--report-dir",
    );
}

/// `build` flags (`--tag` is added to the loaded settings: it extends `[build] tags`).
pub fn build(sources: &mut Sources, args: &BuildArgs) -> Result<()> {
    name(sources, args.name.as_deref());
    if let Some(p) = &args.platform {
        set(
            sources,
            &["build", "platforms"],
            split_list(p),
            "--platform",
        );
    }
    if let Some(f) = &args.file {
        set(
            sources,
            &["build", "dockerfile"],
            f.display().to_string(),
            "--file",
        );
    }
    if let Some(c) = &args.context {
        set(
            sources,
            &["build", "context"],
            c.display().to_string(),
            "CONTEXT",
        );
    }
    if let Some(i) = &args.image {
        set(sources, &["build", "image"], i.clone(), "--image");
    }
    if let Some(f) = args.format {
        set(sources, &["build", "format"], f.setting(), "--format");
    }
    for kv in &args.build_args {
        // `--build-arg KEY` takes KEY's value from the environment, as docker does.
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, v.to_string()),
            None => match sources.env.get(kv) {
                Some(v) => (kv.as_str(), v.clone()),
                None => {
                    return Err(Error::Invalid(format!(
                        "--build-arg {kv}: write KEY=VALUE, or set {kv} in the environment"
                    )));
                }
            },
        };
        if k.is_empty() {
            return Err(Error::Invalid(format!(
                "--build-arg {kv}: the name is empty"
            )));
        }
        set(sources, &["build", "args", k], v, "--build-arg");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_arg_names_the_setting_value() {
        for f in [FormatArg::Oci, FormatArg::Docker] {
            let parsed: Format = serde_json::from_value(f.setting().into()).unwrap();
            assert_eq!(parsed, Format::from(f));
        }
    }
}
