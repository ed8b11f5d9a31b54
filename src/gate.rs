//! The release gate: which platforms must pass, and what a verification
//! means for the pipeline (exit 0, 1 or 3). Pure: a [`Verification`] and the
//! `[gate]` settings (parsed and checked by `config::load`) in, a [`Verdict`] out.

use serde::Serialize;

use crate::config::GateSettings;
use crate::error::ExitStatus;
use crate::platform::Platform;
use crate::verify::{Outcome, Verification};

/// Whether `p` counts: every platform when `required_platforms` is empty.
fn is_required(g: &GateSettings, p: &Platform) -> bool {
    g.required_platforms.is_empty() || g.required_platforms.iter().any(|r| r.matches(p))
}

/// What the gate decided.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// `passed`, `failed` (the image is wrong) or `error` (could not tell).
    pub outcome: Outcome,
    /// The process exit code: 0, 1 or 3.
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

/// Applies the gate to a verification.
pub fn evaluate(v: &Verification, policy: &GateSettings) -> Verdict {
    let mut reasons = Vec::new();
    let mut failed = false;
    let mut errored = false;
    let mut required = 0;
    let mut passed = 0;
    for p in &v.platforms {
        let platform = Platform::parse(&p.platform)
            .unwrap_or_else(|_| Platform::from_spec("", &p.platform, None));
        if !is_required(policy, &platform) {
            reasons.push(format!(
                "{}: {} (not required by [gate] required_platforms)",
                p.platform, p.outcome
            ));
            continue;
        }
        if p.missing && policy.allow_missing.iter().any(|a| a.matches(&platform)) {
            reasons.push(format!(
                "{}: missing from the index, allowed by [gate] allow_missing",
                p.platform
            ));
            continue;
        }
        required += 1;
        match p.outcome {
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

fn first_problem(p: &crate::verify::PlatformResult, kind: Outcome) -> String {
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
    use crate::verify::{Check, CheckId, PlatformResult};
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

    fn policy(required: &[&str], allow_missing: &[&str], error_fails: bool) -> GateSettings {
        let parse = |l: &[&str]| l.iter().map(|s| Platform::parse(s).unwrap()).collect();
        GateSettings {
            required_platforms: parse(required),
            allow_missing: parse(allow_missing),
            error_fails,
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
        assert_eq!(
            evaluate(&v, &policy(&["linux/arm64"], &[], true)).exit_code,
            ExitStatus::Infrastructure
        );
    }
}
