//! The release gate: which platforms must pass, and what a verification
//! means for the pipeline (exit 0, 1 or 3). Pure: a [`Verification`] and the
//! `[gate]` settings (parsed and checked by `config::load`) in, a [`Verdict`] out.

use serde::Serialize;

use crate::config::{GateSettings, Settings, Waiver};
use crate::error::ExitStatus;
use crate::platform::Platform;
use crate::verify::{Check, CheckId, Outcome, PlatformResult, Verification};

/// The platforms the gate looks at ([`Settings::gate_platforms`]).
pub fn gate_platforms(s: &Settings) -> &[Platform] {
    s.gate_platforms()
}

/// The one rule for "required platforms" ([`Settings::required_platforms`]).
pub fn required_platforms(s: &Settings) -> Vec<Platform> {
    s.required_platforms()
}

/// Where the required platforms come from, for messages.
fn required_origin(s: &Settings) -> &'static str {
    match (s.gate.required_platforms.is_empty(), s.platforms_explicit) {
        (false, _) => "[gate] required_platforms",
        (true, true) => "`platforms`",
        (true, false) => "`platforms` (the default)",
    }
}

/// `Err` (exit 1) when `have` — what `what` would publish — lacks a required
/// platform: checked before anything is written, so nothing is published.
pub fn check_covers(s: &Settings, what: &str, have: &[Platform]) -> crate::Result<()> {
    let required = required_platforms(s);
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !have.iter().any(|h| h.matches(r)))
        .map(|r| r.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(crate::Error::Uncovered(format!(
        "{what} would publish {} of the {} required platforms ({}): {} missing; nothing was published. Add the missing platform, or name the release's platforms in `platforms` / [gate] required_platforms, or excuse one with [gate] allow_missing",
        required.len() - missing.len(),
        required.len(),
        required_origin(s),
        missing.join(", ")
    )))
}

/// What the gate decided.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// `passed`, `failed` (the image is wrong) or `error` (could not tell).
    pub outcome: Outcome,
    /// The exit status it gives: `"exit": "success" | "failed" |
    /// "infrastructure"` and `"exit_code"`: 0, 1 or 3.
    #[serde(flatten, serialize_with = "crate::error::exit_fields")]
    pub exit_code: ExitStatus,
    /// One line per platform that did not simply pass, and why it counts or not.
    pub reasons: Vec<String>,
    /// `passed/required`, e.g. `3/3`.
    pub coverage: String,
}

impl Verdict {
    /// A one-line summary for logs and the Markdown report.
    pub fn line(&self) -> String {
        let head = match self.outcome {
            Outcome::Passed => "PASSED",
            Outcome::Failed => "FAILED",
            Outcome::Error | Outcome::Skipped => "ERROR (could not tell)",
        };
        format!("{head}: {} required platforms passed", self.coverage)
    }
}

/// The execution checks of `p` that were skipped and not waived by `[gate]
/// waive_skipped`: while there is one, a passing platform is not proven.
fn unproven<'a>(g: &GateSettings, p: &'a PlatformResult) -> Vec<&'a Check> {
    p.checks
        .iter()
        .filter(|c| c.outcome == Outcome::Skipped)
        .filter(|c| {
            let waiver = match c.id {
                CheckId::JavaVersion => Waiver::JavaVersion,
                CheckId::JavaOsArch => Waiver::JavaOsArch,
                CheckId::Command => Waiver::Commands,
                CheckId::ServiceStart => Waiver::ServiceStart,
                _ => return false,
            };
            !g.waive_skipped.contains(&waiver)
        })
        .collect()
}

/// Applies the gate to a verification: every [`required_platforms`] entry
/// must be in it and pass; an `allow_missing` platform counts when present.
pub fn evaluate(v: &Verification, s: &Settings) -> Verdict {
    let policy = &s.gate;
    let required_list = required_platforms(s);
    let mut reasons = Vec::new();
    let mut failed = false;
    let mut errored = false;
    let mut required = 0;
    let mut passed = 0;
    let mut seen: Vec<Platform> = Vec::new();
    for p in &v.platforms {
        let platform = Platform::parse(&p.platform)
            .unwrap_or_else(|_| Platform::from_spec("", &p.platform, None));
        let must = required_list.iter().any(|r| r.matches(&platform));
        let excused = policy.allow_missing.iter().any(|a| a.matches(&platform));
        if !must && !excused {
            reasons.push(format!(
                "{}: {} (not required by {})",
                p.platform,
                p.outcome,
                required_origin(s)
            ));
            continue;
        }
        seen.push(platform);
        if p.missing && excused {
            reasons.push(format!(
                "{}: missing from the index, allowed by [gate] allow_missing",
                p.platform
            ));
            continue;
        }
        required += 1;
        let skipped = unproven(policy, p);
        match p.outcome {
            Outcome::Passed if !skipped.is_empty() => {
                failed = true;
                let names: Vec<&str> = skipped.iter().map(|c| c.name.as_str()).collect();
                reasons.push(format!(
                    "{}: not proven — {} skipped ({}); run it (e.g. runner = \"auto\"), or accept that with [gate] waive_skipped = [\"{}\"]",
                    p.platform,
                    names.join(", "),
                    skipped[0].message,
                    skipped
                        .iter()
                        .map(|c| if c.id == CheckId::Command { "commands" } else { c.id.as_str() })
                        .collect::<Vec<_>>()
                        .join("\", \"")
                ));
            }
            Outcome::Passed => passed += 1,
            Outcome::Failed => {
                failed = true;
                reasons.push(format!(
                    "{}: failed — {}",
                    p.platform,
                    first_problem(p, Outcome::Failed)
                ));
            }
            Outcome::Error | Outcome::Skipped => {
                let why = first_problem(p, Outcome::Error);
                if policy.error_fails {
                    errored = true;
                    reasons.push(format!("{}: could not be verified — {why}", p.platform));
                } else {
                    reasons.push(format!(
                        "{}: could not be verified — {why} (tolerated: [gate] error_fails = false)",
                        p.platform
                    ));
                }
            }
        }
    }
    // A required platform the verification did not even look at is missing.
    for r in required_list
        .iter()
        .filter(|r| !seen.iter().any(|p| r.matches(p)))
    {
        required += 1;
        failed = true;
        reasons.push(format!(
            "{r}: not verified, but required by {}",
            required_origin(s)
        ));
    }
    let outcome = if failed {
        Outcome::Failed
    } else if errored || required == 0 {
        if required == 0 {
            reasons.push("no required platform was verified".into());
        }
        Outcome::Error
    } else {
        Outcome::Passed
    };
    Verdict {
        outcome,
        exit_code: ExitStatus::from(outcome),
        reasons,
        coverage: format!("{passed}/{required}"),
    }
}

/// 0 passed, 1 failed, 3 could not tell (DESIGN.md, "Outputs"): the one
/// mapping from a verdict to an exit code (`run`, `verify` and the reports use it).
impl From<Outcome> for ExitStatus {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Passed => ExitStatus::Success,
            Outcome::Failed => ExitStatus::Failed,
            Outcome::Error | Outcome::Skipped => ExitStatus::Infrastructure,
        }
    }
}

fn first_problem(p: &PlatformResult, kind: Outcome) -> String {
    p.checks
        .iter()
        .find(|c| c.outcome == kind)
        .or_else(|| p.checks.iter().find(|c| c.outcome > Outcome::Skipped))
        .map(|c| format!("{}: {}", c.name, c.message))
        .unwrap_or_else(|| "no check passed".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;
    use std::time::Duration;

    fn platform(name: &str, outcome: Outcome, missing: bool) -> PlatformResult {
        let check = Check::new(CheckId::JdkElf, outcome, format!("{name} {outcome}"));
        PlatformResult {
            platform: name.into(),
            manifest_digest: None,
            runner: "qemu".into(),
            java_version: None,
            missing,
            outcome,
            checks: vec![check],
            duration: Duration::ZERO,
            emulator: None,
        }
    }

    fn verification(platforms: Vec<PlatformResult>) -> Verification {
        Verification {
            image: "oci:x".into(),
            pinned: "oci:x@sha256:00".into(),
            index_digest: Digest::of(b"x"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            outcome: Verification::summarise(&platforms),
            platforms,
            other_platforms: vec![],
        }
    }

    fn parse(l: &[&str]) -> Vec<Platform> {
        l.iter().map(|s| Platform::parse(s).unwrap()).collect()
    }

    /// `platforms = ["linux/amd64", "linux/arm64"]` and this `[gate]`.
    fn policy(required: &[&str], allow_missing: &[&str], error_fails: bool) -> Settings {
        Settings {
            platforms: parse(&["linux/amd64", "linux/arm64"]),
            platforms_explicit: true,
            gate: crate::config::GateSettings {
                required_platforms: parse(required),
                allow_missing: parse(allow_missing),
                error_fails,
                waive_skipped: vec![],
            },
            ..Settings::default()
        }
    }

    #[test]
    fn all_passed_is_exit_0() {
        let v = verification(vec![
            platform("linux/amd64", Outcome::Passed, false),
            platform("linux/arm64", Outcome::Passed, false),
        ]);
        let d = evaluate(&v, &policy(&[], &[], true));
        assert_eq!(
            (d.outcome, d.exit_code, d.coverage.as_str()),
            (Outcome::Passed, ExitStatus::Success, "2/2")
        );
    }

    #[test]
    fn a_wrong_image_beats_a_flaky_runner() {
        let v = verification(vec![
            platform("linux/amd64", Outcome::Failed, false),
            platform("linux/arm64", Outcome::Error, false),
        ]);
        let d = evaluate(&v, &policy(&[], &[], true));
        assert_eq!(
            (d.outcome, d.exit_code),
            (Outcome::Failed, ExitStatus::Failed)
        );
        assert!(
            d.reasons[0].contains("linux/amd64: failed"),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn errors_stop_the_gate_unless_tolerated() {
        let v = verification(vec![
            platform("linux/amd64", Outcome::Passed, false),
            platform("linux/arm64", Outcome::Error, false),
        ]);
        assert_eq!(
            evaluate(&v, &policy(&[], &[], true)).exit_code,
            ExitStatus::Infrastructure
        );
        let tolerant = evaluate(&v, &policy(&[], &[], false));
        assert_eq!(tolerant.exit_code, ExitStatus::Success);
        assert!(tolerant.reasons[0].contains("tolerated"));
        assert_eq!(tolerant.coverage, "1/2");
    }

    #[test]
    fn allowed_missing_and_unrequired_platforms_do_not_count() {
        let v = verification(vec![
            platform("linux/amd64", Outcome::Passed, false),
            platform("linux/mips64le", Outcome::Failed, true),
            platform("linux/arm64", Outcome::Failed, false),
        ]);
        let d = evaluate(
            &v,
            &policy(
                &["linux/amd64", "linux/mips64le"],
                &["linux/mips64le"],
                true,
            ),
        );
        assert_eq!(
            (d.outcome, d.coverage.as_str()),
            (Outcome::Passed, "1/1"),
            "{:?}",
            d.reasons
        );
        // allow_missing does not excuse a platform that is present and broken.
        let v = verification(vec![platform("linux/mips64le", Outcome::Failed, false)]);
        assert_eq!(
            evaluate(&v, &policy(&[], &["linux/mips64le"], true)).exit_code,
            ExitStatus::Failed
        );
    }

    #[test]
    fn nothing_required_verified_is_not_a_pass() {
        let v = verification(vec![platform("linux/amd64", Outcome::Passed, false)]);
        let d = evaluate(&v, &policy(&["linux/arm64"], &[], true));
        assert_eq!(
            (d.exit_code, d.coverage.as_str()),
            (ExitStatus::Failed, "0/1")
        );
        let v = verification(vec![platform("linux/amd64", Outcome::Passed, true)]);
        let d = evaluate(&v, &policy(&["linux/amd64"], &["linux/amd64"], true));
        assert_eq!(d.exit_code, ExitStatus::Infrastructure, "{:?}", d.reasons);
    }

    #[test]
    fn regression_hole_1_default_platforms_are_required_everywhere() {
        // Default `platforms` (three), an index of two: 2/3 and exit 1, as `run` says.
        let s = Settings::default();
        let v = verification(vec![
            platform("linux/amd64", Outcome::Passed, false),
            platform("linux/arm64", Outcome::Passed, false),
        ]);
        let d = evaluate(&v, &s);
        assert_eq!(
            (d.exit_code, d.coverage.as_str()),
            (ExitStatus::Failed, "2/3")
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("linux/mips64le") && r.contains("(the default)")),
            "{:?}",
            d.reasons
        );
        let two = parse(&["linux/amd64", "linux/arm64"]);
        let e = check_covers(&s, "merge", &two).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Content);
        let e = e.to_string();
        assert!(
            e.contains("merge would publish 2 of the 3 required platforms"),
            "{e}"
        );
        assert!(
            e.contains("linux/mips64le missing") && e.contains("allow_missing"),
            "{e}"
        );
        // required_platforms beats platforms; allow_missing takes a platform out.
        let s = Settings {
            platforms: parse(&["linux/amd64"]),
            gate: crate::config::GateSettings {
                required_platforms: parse(&["linux/amd64", "linux/arm64", "linux/mips64le"]),
                allow_missing: parse(&["linux/mips64le"]),
                ..Default::default()
            },
            ..Settings::default()
        };
        assert_eq!(required_platforms(&s), two);
        assert!(check_covers(&s, "build", &two).is_ok());
        assert_eq!(evaluate(&v, &s).coverage, "2/2");
    }

    #[test]
    fn regression_hole_4_a_run_that_executed_nothing_is_not_proven() {
        let mut p = platform("linux/amd64", Outcome::Passed, false);
        p.checks.push(Check::new(
            CheckId::JavaVersion,
            Outcome::Skipped,
            "runner \"static\": execution skipped by configuration",
        ));
        p.checks.push(Check::new(
            CheckId::JavaOsArch,
            Outcome::Skipped,
            "runner \"static\": execution skipped by configuration",
        ));
        let v = verification(vec![p]);
        let mut s = policy(&["linux/amd64"], &[], true);
        let d = evaluate(&v, &s);
        assert_eq!(
            (d.exit_code, d.coverage.as_str()),
            (ExitStatus::Failed, "0/1")
        );
        assert!(
            d.reasons[0].contains(
                "linux/amd64: not proven — java-version, java-os-arch skipped (runner \"static\""
            ) && d.reasons[0].contains("waive_skipped = [\"java-version\", \"java-os-arch\"]"),
            "{:?}",
            d.reasons
        );
        s.gate.waive_skipped = vec![Waiver::JavaVersion];
        assert_eq!(
            evaluate(&v, &s).exit_code,
            ExitStatus::Failed,
            "one left unwaived"
        );
        s.gate.waive_skipped = vec![Waiver::JavaVersion, Waiver::JavaOsArch];
        let d = evaluate(&v, &s);
        assert_eq!(
            (d.exit_code, d.coverage.as_str()),
            (ExitStatus::Success, "1/1")
        );
    }
}
