//! The in-toto Statement v1 archgate signs: predicate type
//! `https://in-toto.io/attestation/test-result/v0.1`, about the verified index
//! and every verified platform manifest. Pure: a verification and the gate's
//! verdict in, the statement out; and the reverse reading `promote` needs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::gate::Verdict;
use crate::image::Digest;
use crate::verify::{Outcome, Verification};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// The `subject` name of the index (platform manifests are named by their platform).
pub const INDEX_SUBJECT: &str = "index";

/// An in-toto resource descriptor (the subset archgate writes and reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl Resource {
    fn of(name: &str, digest: &Digest) -> Resource {
        Resource {
            name: name.into(),
            digest: BTreeMap::from([(digest.algorithm().to_string(), digest.hex().to_string())]),
        }
    }

    /// Whether this resource names `digest`.
    pub fn is(&self, digest: &Digest) -> bool {
        self.digest.get(digest.algorithm()).map(String::as_str) == Some(digest.hex())
    }
}

/// The test-result predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    /// `PASSED` or `FAILED`.
    pub result: String,
    #[serde(default)]
    pub configuration: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub passed_tests: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warned_tests: Vec<String>,
    #[serde(default)]
    pub failed_tests: Vec<String>,
}

/// An in-toto Statement v1 with a test-result predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Resource>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// The statement for `v` under `verdict`; `None` when the verdict is neither
/// passed nor failed (the image could not be judged: nothing to attest).
/// `config_digest` is the effective configuration's digest (secrets as `***`).
pub fn build(
    v: &Verification,
    verdict: &Verdict,
    config_digest: &Digest,
    url: Option<&str>,
) -> Option<Statement> {
    let result = match verdict.outcome {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Error | Outcome::Skipped => return None,
    };
    let mut subject = vec![Resource::of(INDEX_SUBJECT, &v.index_digest)];
    let (mut passed, mut warned, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for p in &v.platforms {
        if let Some(d) = &p.manifest_digest {
            subject.push(Resource::of(&p.platform, d));
        }
        for c in &p.checks {
            let name = format!("{}/{}", p.platform, c.name);
            match c.outcome {
                Outcome::Passed => passed.push(name),
                Outcome::Skipped => warned.push(name),
                Outcome::Failed | Outcome::Error => failed.push(name),
            }
        }
    }
    Some(Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            result: result.into(),
            configuration: vec![Resource::of("archgate-config", config_digest)],
            url: url.map(str::to_string),
            passed_tests: passed,
            warned_tests: warned,
            failed_tests: failed,
        },
    })
}

impl Statement {
    /// Parses a statement; `Err` says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Statement, String> {
        let s: Statement =
            serde_json::from_slice(bytes).map_err(|e| format!("not an in-toto statement: {e}"))?;
        if s.statement_type != STATEMENT_TYPE {
            return Err(format!("statement type `{}`", s.statement_type));
        }
        Ok(s)
    }

    /// Whether this is an archgate test-result statement.
    pub fn is_test_result(&self) -> bool {
        self.predicate_type == PREDICATE_TYPE
    }

    /// Whether it says `PASSED`.
    pub fn passed(&self) -> bool {
        self.predicate.result == "PASSED"
    }

    /// The subject named `index`: the index the statement is about.
    pub fn index_subject(&self) -> Option<&Resource> {
        self.subject.iter().find(|r| r.name == INDEX_SUBJECT)
    }

    /// Whether `platform` (normalised name) with manifest `digest` is a
    /// subject that has passing and no failing tests.
    pub fn covers(&self, platform: &str, digest: &Digest) -> bool {
        let prefix = format!("{platform}/");
        self.subject
            .iter()
            .any(|r| r.name == platform && r.is(digest))
            && self
                .predicate
                .passed_tests
                .iter()
                .any(|t| t.starts_with(&prefix))
            && !self
                .predicate
                .failed_tests
                .iter()
                .any(|t| t.starts_with(&prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitStatus;
    use crate::verify::{Check, CheckId, PlatformResult};

    fn platform(name: &str, manifest: &Digest, checks: Vec<Check>) -> PlatformResult {
        PlatformResult {
            platform: name.into(),
            manifest_digest: Some(manifest.clone()),
            runner: "static".into(),
            java_version: None,
            missing: false,
            outcome: PlatformResult::summarise(&checks),
            checks,
            duration: Default::default(),
            emulator: None,
        }
    }

    fn verdict(outcome: Outcome) -> Verdict {
        Verdict {
            outcome,
            exit_code: ExitStatus::from(outcome),
            reasons: Vec::new(),
            coverage: String::new(),
        }
    }

    #[test]
    fn the_statement_names_the_index_every_platform_and_each_check() {
        let (index, amd, arm) = (Digest::of(b"i"), Digest::of(b"a"), Digest::of(b"r"));
        let v = Verification {
            image: "x".into(),
            pinned: "x@sha".into(),
            index_digest: index.clone(),
            media_type: crate::image::media::OCI_INDEX.into(),
            platforms: vec![
                platform(
                    "linux/amd64",
                    &amd,
                    vec![
                        Check::passed(CheckId::IndexEntry, ""),
                        Check::skipped(CheckId::JavaVersion, "static"),
                    ],
                ),
                platform(
                    "linux/arm64",
                    &arm,
                    vec![Check::failed(CheckId::JdkElf, "x86")],
                ),
            ],
            other_platforms: Vec::new(),
            outcome: Outcome::Failed,
        };
        let config = Digest::of(b"config");
        let s = build(&v, &verdict(Outcome::Failed), &config, Some("https://ci/1")).unwrap();
        assert_eq!(s.statement_type, STATEMENT_TYPE);
        assert_eq!(s.predicate_type, PREDICATE_TYPE);
        let names: Vec<&str> = s.subject.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["index", "linux/amd64", "linux/arm64"]);
        assert!(s.subject[0].is(&index) && s.subject[2].is(&arm));
        assert_eq!(s.predicate.result, "FAILED");
        assert_eq!(s.predicate.passed_tests, ["linux/amd64/index-entry"]);
        assert_eq!(s.predicate.warned_tests, ["linux/amd64/java-version"]);
        assert_eq!(s.predicate.failed_tests, ["linux/arm64/jdk-elf"]);
        assert!(s.predicate.configuration[0].is(&config));
        assert_eq!(s.predicate.url.as_deref(), Some("https://ci/1"));
        assert!(s.covers("linux/amd64", &amd) && !s.covers("linux/arm64", &arm));
        assert!(!s.covers("linux/amd64", &arm), "another manifest");
        // Round trip through JSON, as promote reads it.
        let parsed = Statement::parse(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(parsed, s);
        // No verdict, no statement.
        assert!(build(&v, &verdict(Outcome::Error), &config, None).is_none());
    }
}
