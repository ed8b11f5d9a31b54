//! Settings → the validated verification policy: the Java version rule, the
//! extra commands with their compiled patterns, the runners per platform and
//! the limits. Everything is checked before any work starts, so a bad value is
//! exit 2 naming its key, not a failed platform.

use std::time::Duration;

use crate::config::{CommandCheck, Runner, Settings};
use crate::error::{Error, Result};
use crate::platform::Platform;

use super::java;

/// The verification settings, validated.
#[derive(Debug)]
pub struct Policy {
    pub java: java::VersionPolicy,
    /// `[verify.java] required`: without it the JDK checks are switched off.
    pub java_required: bool,
    pub commands: Vec<CommandPolicy>,
    /// `[verify.runners]`, in the order the settings list them.
    pub runners: Vec<(Platform, Runner)>,
    /// The runner of every platform `runners` does not name.
    pub runner: Runner,
    pub timeout: Duration,
    pub max_unpacked_bytes: u64,
}

/// One `[[verify.commands]]` entry, validated.
#[derive(Debug)]
pub struct CommandPolicy {
    pub check: CommandCheck,
    /// `output`, compiled (empty: anything matches).
    pub output: regex::Regex,
    /// The platforms it applies to (empty: every platform).
    pub platforms: Vec<Platform>,
}

impl Policy {
    pub fn from_settings(settings: &Settings) -> Result<Policy> {
        let v = &settings.verify;
        let java = java::VersionPolicy::from_settings(
            v.java.min_version.as_deref(),
            v.java.version.as_deref(),
        )
        .map_err(|e| Error::Config(format!("[verify.java]: {e}")))?;
        let mut commands = Vec::new();
        for (i, c) in v.commands.iter().enumerate() {
            let key = format!("[[verify.commands]] #{} ({:?})", i + 1, c.name);
            if c.name.trim().is_empty() {
                return Err(Error::Config(format!(
                    "{key}: `name` is empty; name the check (it titles the report line)"
                )));
            }
            if c.args.is_empty() || c.args[0].is_empty() {
                return Err(Error::Config(format!(
                    "{key}: `args` is empty; give the command, e.g. args = [\"/opt/app/bin/app\", \"--version\"]"
                )));
            }
            let pattern = c.output.as_deref().unwrap_or("");
            let output = regex::Regex::new(pattern).map_err(|e| {
                // regex errors span lines (pattern, caret, reason): keep one line.
                let why = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                Error::Config(format!(
                    "{key}: `output` is not a valid regular expression: {why}"
                ))
            })?;
            let platforms = c
                .platforms
                .iter()
                .map(|p| {
                    Platform::parse(p)
                        .map_err(|e| Error::Config(format!("{key}: `platforms`: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            commands.push(CommandPolicy {
                check: c.clone(),
                output,
                platforms,
            });
        }
        let mut runners = Vec::new();
        for (key, runner) in &v.runners {
            let p = Platform::parse(key)
                .map_err(|e| Error::Config(format!("[verify.runners]: {e}")))?;
            runners.push((p, *runner));
        }
        if v.timeout == 0 {
            return Err(Error::Config(
                "[verify] timeout = 0: give the seconds a command may run, e.g. 120".into(),
            ));
        }
        Ok(Policy {
            java,
            java_required: v.java.required,
            commands,
            runners,
            runner: v.runner,
            timeout: Duration::from_secs(v.timeout),
            max_unpacked_bytes: v.max_unpacked_bytes,
        })
    }

    /// The extra commands that apply to `platform`, in the settings' order.
    pub fn commands_for(&self, platform: &Platform) -> Vec<&CommandPolicy> {
        self.commands
            .iter()
            .filter(|c| c.platforms.is_empty() || c.platforms.iter().any(|p| p.matches(platform)))
            .collect()
    }

    /// The runner for `platform`: the first `[verify.runners]` key matching
    /// it, else `[verify] runner`.
    pub fn runner_for(&self, platform: &Platform) -> Runner {
        self.runners
            .iter()
            .find(|(p, _)| p.matches(platform))
            .map_or(self.runner, |(_, r)| *r)
    }
}
