//! The verdict model: a check's outcome, one platform's checks, the whole
//! verification, and the plain-text summary. Pure data; the reports (JUnit,
//! JSON, dotenv, Markdown) render these values.
//!
//! Outcomes are honest (DESIGN.md, principle 7): `passed`, `failed` (the image
//! is wrong), `error` (archgate could not tell), `skipped` (by policy, with the
//! reason). Only `passed` counts toward coverage.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::image::Digest;

/// The outcome of one check, or the summary of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Skipped,
    Error,
    Failed,
}

impl Outcome {
    /// A word for humans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks of one platform, in the order they run (DESIGN.md,
/// "Verification of one platform").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// 1. The index has exactly one entry for the platform.
    IndexEntry,
    /// 2. Manifest and config fetched, their digests match.
    Manifest,
    /// 3. The config's os/architecture/variant equal the index entry.
    ConfigPlatform,
    /// Layers unpacked safely into a private root.
    Layers,
    /// 4. The JDK is found from JAVA_HOME or PATH.
    JdkFound,
    /// 5. `java` and `libjvm.so` are ELF files for the platform's CPU.
    JdkElf,
    /// 6a. `java -version` runs and its version meets the policy.
    JavaVersion,
    /// 6b. The JVM's own `os.arch` matches the platform.
    JavaOsArch,
    /// 7. An extra `[[verify.commands]]` entry.
    Command,
    /// 8. The image's own service starts (`[verify.service]`).
    ServiceStart,
    /// Every ELF file and every jar's bundled natives built for the platform,
    /// their libraries and symbol versions present in the image (static).
    NativeLibs,
    /// The `[verify] clients` can pull or import the image as published.
    Clients,
}

impl CheckId {
    /// The checks every platform gets, in order (extra commands follow).
    pub const STANDARD: [CheckId; 9] = [
        CheckId::IndexEntry,
        CheckId::Manifest,
        CheckId::ConfigPlatform,
        CheckId::Layers,
        CheckId::JdkFound,
        CheckId::JdkElf,
        CheckId::JavaVersion,
        CheckId::JavaOsArch,
        CheckId::NativeLibs,
    ];

    /// The checks that must have passed for this one to run (see
    /// [`super::plan`]). Every need comes earlier in the plan; a new check is
    /// one variant here, one row below and one executor.
    pub fn needs(self) -> &'static [CheckId] {
        match self {
            CheckId::IndexEntry => &[],
            CheckId::Manifest => &[CheckId::IndexEntry],
            // A mislabelled config does not stop the file system checks: the
            // ELF check then says what the layers really hold.
            CheckId::ConfigPlatform | CheckId::Layers | CheckId::Clients => &[CheckId::Manifest],
            CheckId::JdkFound | CheckId::Command | CheckId::ServiceStart => &[CheckId::Layers],
            // Static, and about every file: it runs whether or not a JDK is there.
            CheckId::NativeLibs => &[CheckId::Layers],
            // A `java` for the wrong CPU is still run: its failure under the
            // emulator is part of the evidence. `os.arch` reads the same run
            // as `java-version`, so a version below the policy still shows it.
            CheckId::JdkElf | CheckId::JavaVersion | CheckId::JavaOsArch => &[CheckId::JdkFound],
        }
    }

    /// The stable identifier used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::IndexEntry => "index-entry",
            CheckId::Manifest => "manifest",
            CheckId::ConfigPlatform => "config-platform",
            CheckId::Layers => "layers",
            CheckId::JdkFound => "jdk-found",
            CheckId::JdkElf => "jdk-elf",
            CheckId::JavaVersion => "java-version",
            CheckId::JavaOsArch => "java-os-arch",
            CheckId::Command => "command",
            CheckId::ServiceStart => "service-start",
            CheckId::NativeLibs => "native-libs",
            CheckId::Clients => "clients",
        }
    }

    /// What the check proves, for reports.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::IndexEntry => "index has exactly one entry for the platform",
            CheckId::Manifest => "manifest and config fetched, digests match",
            CheckId::ConfigPlatform => "config platform equals the index entry",
            CheckId::Layers => "layers unpacked safely",
            CheckId::JdkFound => "JDK found (JAVA_HOME, else PATH)",
            CheckId::JdkElf => "java and libjvm.so built for this CPU",
            CheckId::JavaVersion => "java -version runs and meets the policy",
            CheckId::JavaOsArch => "JVM os.arch matches the platform",
            CheckId::Command => "extra command",
            CheckId::ServiceStart => "the image's service starts and is ready",
            CheckId::NativeLibs => {
                "native libraries built for this CPU, their dependencies in the image"
            }
            CheckId::Clients => "the configured clients can pull and import it",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: CheckId,
    /// `id` for built-in checks; `command:NAME` for extra commands.
    pub name: String,
    pub outcome: Outcome,
    /// What was expected and what was found, or why it was skipped.
    pub message: String,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Captured output of an execution (`java -version`), for JUnit `system-out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Reported but not counted (`[verify.natives] required = false`): its
    /// outcome stays visible, the platform's outcome and the gate ignore it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub advisory: bool,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Check {
    pub fn new(id: CheckId, outcome: Outcome, message: impl Into<String>) -> Check {
        Check {
            id,
            name: id.as_str().to_string(),
            outcome,
            message: message.into(),
            duration: Duration::ZERO,
            output: None,
            advisory: false,
        }
    }

    pub fn passed(id: CheckId, message: impl Into<String>) -> Check {
        Check::new(id, Outcome::Passed, message)
    }

    pub fn failed(id: CheckId, message: impl Into<String>) -> Check {
        Check::new(id, Outcome::Failed, message)
    }

    pub fn error(id: CheckId, message: impl Into<String>) -> Check {
        Check::new(id, Outcome::Error, message)
    }

    pub fn skipped(id: CheckId, message: impl Into<String>) -> Check {
        Check::new(id, Outcome::Skipped, message)
    }

    pub fn named(mut self, name: impl Into<String>) -> Check {
        self.name = name.into();
        self
    }

    pub fn took(mut self, d: Duration) -> Check {
        self.duration = d;
        self
    }

    pub fn with_output(mut self, output: impl Into<String>) -> Check {
        self.output = Some(output.into());
        self
    }

    /// Marks the check advisory (see [`Check::advisory`]).
    pub fn advisory(mut self, advisory: bool) -> Check {
        self.advisory = advisory;
        self
    }
}

/// Every check of one platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformResult {
    /// `os/arch[/variant]`, normalised.
    pub platform: String,
    /// The per-platform manifest the index names (when it names one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<Digest>,
    /// How commands ran: `native`, `qemu`, `static`.
    pub runner: String,
    /// The Java version reported, when `java -version` ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub java_version: Option<String>,
    /// The index has no entry for the platform (`[gate] allow_missing` may excuse it).
    pub missing: bool,
    pub outcome: Outcome,
    pub checks: Vec<Check>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// The QEMU user-mode emulator the platform ran under (binary and version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emulator: Option<Emulator>,
}

/// A QEMU user-mode emulator, as `report.json` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emulator {
    /// The host path of the binary.
    pub binary: String,
    /// The first line of its `--version` (`qemu-aarch64 version 7.2.13 (Debian …)`).
    pub version: String,
}

impl PlatformResult {
    /// The platform's outcome: the worst of its checks (`failed` > `error` >
    /// `skipped` > `passed`), except that skipped checks alone do not stop a
    /// platform from passing — a `static` runner's skips are by policy.
    /// Advisory checks do not count.
    pub fn summarise(checks: &[Check]) -> Outcome {
        let counted = || checks.iter().filter(|c| !c.advisory);
        match counted().map(|c| c.outcome).max() {
            None => Outcome::Error,
            Some(Outcome::Skipped) if counted().any(|c| c.outcome == Outcome::Passed) => {
                Outcome::Passed
            }
            Some(o) => o,
        }
    }
}

/// The result of verifying one image.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The image as given.
    pub image: String,
    /// The image pinned to the digest that was verified (`name@sha256:…`).
    pub pinned: String,
    pub index_digest: Digest,
    pub media_type: String,
    /// Required platforms, in order, each with its checks.
    pub platforms: Vec<PlatformResult>,
    /// Platforms in the index that were not required (not verified).
    pub other_platforms: Vec<String>,
    pub outcome: Outcome,
}

impl Verification {
    /// The overall verdict: every required platform passed ⇒ passed; any
    /// failure ⇒ failed; else any error ⇒ error.
    pub fn summarise(platforms: &[PlatformResult]) -> Outcome {
        if platforms.is_empty() {
            return Outcome::Error;
        }
        match platforms.iter().map(|p| p.outcome).max() {
            Some(Outcome::Skipped) | None => Outcome::Error,
            Some(o) => o,
        }
    }

    /// `passed/required`, e.g. `3/3`.
    pub fn coverage(&self) -> String {
        let passed = self
            .platforms
            .iter()
            .filter(|p| p.outcome == Outcome::Passed)
            .count();
        format!("{passed}/{}", self.platforms.len())
    }
}

/// The human summary: a line per platform, a line per check that did not pass.
pub fn render_text(v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "image:    {}", v.pinned);
    let _ = writeln!(out, "index:    {} ({})", v.index_digest, v.media_type);
    for p in &v.platforms {
        let mark = symbol(p.outcome);
        let java = p
            .java_version
            .as_deref()
            .map(|j| format!(", java {j}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{mark} {:<16} {:<7} runner {}{java} ({:.1} s)",
            p.platform,
            p.outcome.as_str(),
            p.runner,
            p.duration.as_secs_f64()
        );
        for c in &p.checks {
            let _ = writeln!(
                out,
                "    {} {:<16} {}",
                symbol(c.outcome),
                c.name,
                c.message
            );
        }
    }
    if !v.other_platforms.is_empty() {
        let _ = writeln!(
            out,
            "not required (not verified): {}",
            v.other_platforms.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "checks:   {} — {} platforms passed",
        v.outcome.as_str().to_uppercase(),
        v.coverage()
    );
    out
}

/// The one-character mark of an outcome (plain ASCII, so logs stay readable).
pub fn symbol(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "ok  ",
        Outcome::Failed => "FAIL",
        Outcome::Error => "ERR ",
        Outcome::Skipped => "skip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(outcomes: &[Outcome]) -> Vec<Check> {
        outcomes
            .iter()
            .map(|o| Check::new(CheckId::Manifest, *o, ""))
            .collect()
    }

    #[test]
    fn platform_outcome_is_the_worst_check_but_skips_alone_do_not_fail() {
        use Outcome::*;
        for (input, want) in [
            (vec![Passed, Passed], Passed),
            (vec![Passed, Skipped], Passed),
            (vec![Passed, Error], Error),
            (vec![Passed, Error, Failed], Failed),
            (vec![Skipped, Skipped], Skipped),
            (vec![], Error),
        ] {
            assert_eq!(
                PlatformResult::summarise(&checks(&input)),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn an_advisory_failure_does_not_fail_the_platform() {
        let mut c = checks(&[Outcome::Passed]);
        c.push(Check::failed(CheckId::NativeLibs, "x").advisory(true));
        assert_eq!(PlatformResult::summarise(&c), Outcome::Passed);
        c.push(Check::failed(CheckId::NativeLibs, "x"));
        assert_eq!(PlatformResult::summarise(&c), Outcome::Failed);
    }

    #[test]
    fn verdict_needs_every_platform() {
        let p = |o| PlatformResult {
            platform: "linux/amd64".into(),
            manifest_digest: None,
            runner: "qemu".into(),
            java_version: None,
            missing: false,
            outcome: o,
            checks: vec![],
            duration: Duration::ZERO,
            emulator: None,
        };
        use Outcome::*;
        assert_eq!(Verification::summarise(&[p(Passed), p(Passed)]), Passed);
        assert_eq!(Verification::summarise(&[p(Passed), p(Error)]), Error);
        assert_eq!(Verification::summarise(&[p(Error), p(Failed)]), Failed);
        assert_eq!(Verification::summarise(&[p(Skipped)]), Error);
        assert_eq!(Verification::summarise(&[]), Error);
    }
}
