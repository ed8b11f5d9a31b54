//! Settings → the validated verification policy: the Java version rule, the
//! extra commands with their compiled patterns, the runners per platform and
//! the limits. Everything is checked before any work starts, so a bad value is
//! exit 2 naming its key, not a failed platform.

use std::time::Duration;

use crate::config::{CommandCheck, NativesPolicy, Runner, Settings};
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
    /// `[verify.natives]`.
    pub natives: NativesPolicy,
    /// `[verify.service]`, when configured.
    pub service: Option<ServicePolicy>,
    /// `[verify] clients`: the `clients` check judges the image for these.
    pub clients: Vec<crate::config::Client>,
}

/// `[verify.service]`, validated.
#[derive(Debug)]
pub struct ServicePolicy {
    /// Instead of the image's `ENTRYPOINT` + `CMD`.
    pub command: Option<Vec<String>>,
    /// `ready`, compiled (`None`: alive after `settle`, or exit 0, passes).
    pub ready: Option<regex::Regex>,
    pub timeout: Duration,
    pub settle: Duration,
}

/// One `[[verify.commands]]` entry, validated.
#[derive(Debug)]
pub struct CommandPolicy {
    pub check: CommandCheck,
    /// `output`, compiled (`None`: anything matches).
    pub output: Option<regex::Regex>,
    /// The platforms it applies to (empty: every platform).
    pub platforms: Vec<Platform>,
}

impl Policy {
    /// Converts the settings, which `config::load` has already validated
    /// (patterns compiled, platforms parsed, timeout and commands checked);
    /// only the Java rule is built here, from its checked version numbers.
    pub fn from_settings(settings: &Settings) -> Result<Policy> {
        let v = &settings.verify;
        let java = java::VersionPolicy::from_settings(
            v.java.min_version.as_ref().map(|n| n.as_str()),
            v.java.version.as_ref().map(|n| n.as_str()),
        )
        .map_err(|e| Error::Config(format!("[verify.java]: {e}")))?;
        let commands = v
            .commands
            .iter()
            .map(|c| CommandPolicy {
                check: c.clone(),
                output: c.output.as_ref().map(|p| p.regex().clone()),
                platforms: c.platforms.clone(),
            })
            .collect();
        let runners = v.runners.iter().map(|(p, r)| (p.clone(), *r)).collect();
        Ok(Policy {
            java,
            java_required: v.java.required,
            commands,
            runners,
            runner: v.runner,
            timeout: Duration::from_secs(v.timeout),
            max_unpacked_bytes: v.max_unpacked_bytes,
            service: v.service.as_ref().map(|s| ServicePolicy {
                command: s.command.clone(),
                ready: s.ready.as_ref().map(|p| p.regex().clone()),
                timeout: Duration::from_secs(s.timeout),
                settle: Duration::from_secs(s.settle),
            }),
            natives: v.natives.clone(),
            clients: v.clients.clone(),
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
