//! The reports of a run, for people and for the next pipeline job:
//! `junit.xml` (GitLab `artifacts:reports:junit`, Jenkins `junit`),
//! `report.json` (schema-versioned, everything), `archgate.env` (GitLab
//! dotenv) and `coverage.md` (the platform × check table).
//!
//! Rendering is pure; [`write_all`] writes each file atomically (temporary
//! file + rename) and is called also when a run fails midway, so the report
//! always says what was checked and why the run stopped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ErrorKind, ExitStatus, Result};
use crate::gate::Verdict;
use crate::image::Digest;
use crate::verify::{CheckId, Outcome, PlatformResult, Verification};

/// Bumped when a field of `report.json` changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// The file names inside the report directory.
pub const JUNIT: &str = "junit.xml";
pub const JSON: &str = "report.json";
pub const DOTENV: &str = "archgate.env";
pub const MARKDOWN: &str = "coverage.md";

/// The dotenv variables archgate writes for the next CI job. They start with
/// `AG_`, outside the `ARCHGATE_` settings prefix, so no output is ever read
/// back as a setting: GitLab hands dotenv variables to every later job, and
/// `ARCHGATE_IMAGE` would silently replace that job's `image`.
pub mod var {
    /// `name@sha256:…`: only when the gate passed (or build/merge published it).
    pub const IMAGE: &str = "AG_IMAGE";
    /// `AG_IMAGE_LINUX_ARM64=name@sha256:…` from a one-platform (fan-out) build.
    pub const IMAGE_PREFIX: &str = "AG_IMAGE_";
    /// The index digest, with [`IMAGE`].
    pub const INDEX_DIGEST: &str = "AG_INDEX_DIGEST";
    /// The platforms that passed, comma-separated, with [`IMAGE`].
    pub const PASSED_PLATFORMS: &str = "AG_PASSED_PLATFORMS";
    /// `passed/required`, e.g. `3/3`.
    pub const COVERAGE: &str = "AG_COVERAGE";
    /// `passed`, `failed` or `error`.
    pub const VERDICT: &str = "AG_VERDICT";
    /// The process exit code.
    pub const EXIT_CODE: &str = "AG_EXIT_CODE";
    /// The digest of the signed verdict attached to the index (`[attest] key`).
    pub const ATTESTATION: &str = "AG_ATTESTATION_DIGEST";
}

/// The checks every platform has, in report column order.
const COLUMNS: &[CheckId] = &CheckId::STANDARD;

/// Everything `report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub archgate_version: &'static str,
    /// `run` or `verify`.
    pub command: String,
    /// Unix seconds when the run started.
    pub started_at: u64,
    pub duration_ms: u64,
    /// What build or merge published, when the run produced the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced: Option<Produced>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<Verdict>,
    /// The signed verdict attached to the index digest (`[attest] key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<crate::attest::Attested>,
    /// Why the run stopped before a verdict (configuration, registry, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// How the run ended: `"exit": "success"` (`failed`, `usage`,
    /// `infrastructure`, `interrupted`, `terminated`) and the process exit
    /// code as `"exit_code"` (0, 1, 2, 3, 130, 143).
    #[serde(flatten, serialize_with = "crate::error::exit_fields")]
    pub exit_code: ExitStatus,
    /// The effective configuration with its origins; secrets print as `***`.
    pub config: serde_json::Value,
}

/// The image a run published.
#[derive(Debug, Clone, Serialize)]
pub struct Produced {
    /// `build` or `merge`.
    pub phase: String,
    /// The image pinned to its index digest.
    pub image: String,
    pub index_digest: Digest,
    /// The phase's own result (as its `--json` prints it).
    pub detail: serde_json::Value,
}

impl Produced {
    /// What `phase` published, with its own result as `detail`.
    pub fn new(
        phase: &str,
        image: &str,
        index_digest: &Digest,
        detail: &impl Serialize,
    ) -> Produced {
        Produced {
            phase: phase.into(),
            image: image.into(),
            index_digest: index_digest.clone(),
            detail: serde_json::to_value(detail).unwrap_or_default(),
        }
    }
}

/// A run that stopped with an error.
#[derive(Debug, Clone, Serialize)]
pub struct RunError {
    /// `config`, `build`, `merge` or `verify`.
    pub phase: String,
    /// `usage`, `content` or `infrastructure`.
    pub kind: ErrorKind,
    pub message: String,
}

impl RunReport {
    /// Records that the run stopped in `phase` with `e`: the exit code follows the error's kind.
    pub fn stop(&mut self, phase: &str, e: &Error) {
        self.exit_code = e.exit_status();
        self.error = Some(RunError {
            phase: phase.into(),
            kind: e.kind(),
            message: e.to_string(),
        });
    }

    /// The image the verdict is about, pinned (`name@sha256:…`), if known.
    pub fn pinned_image(&self) -> Option<&str> {
        self.verification
            .as_ref()
            .map(|v| v.pinned.as_str())
            .or(self.produced.as_ref().map(|p| p.image.as_str()))
    }

    fn index_digest(&self) -> Option<&Digest> {
        self.verification
            .as_ref()
            .map(|v| &v.index_digest)
            .or(self.produced.as_ref().map(|p| &p.index_digest))
    }

    fn verdict_word(&self) -> &'static str {
        match (self.exit_code, &self.gate) {
            (_, Some(g)) if self.error.is_none() => match g.outcome {
                Outcome::Passed => "passed",
                Outcome::Failed => "failed",
                _ => "error",
            },
            (ExitStatus::Failed, _) => "failed",
            _ => "error",
        }
    }
}

/// Writes the four files into `dir` (created if missing), each atomically.
pub fn write_all(dir: &Path, report: &RunReport) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| Error::Internal(format!("rendering {JSON}: {e}")))?;
    let files: [(&str, Vec<u8>); 4] = [
        (JUNIT, junit_xml(report)?),
        (JSON, json),
        (DOTENV, dotenv(report).into_bytes()),
        (MARKDOWN, coverage_md(report).into_bytes()),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".archgate-report-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Text made safe for XML 1.0 and CDATA: ANSI escape sequences and control
/// characters (but newline and tab) removed, `]]>` broken up.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params… final byte (0x40–0x7e); other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&n) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        let allowed =
            matches!(c, '\n' | '\t') || (!c.is_control() && !matches!(c, '\u{fffe}' | '\u{ffff}'));
        if allowed {
            out.push(c);
        } else if c == '\r' {
            // CR LF → LF; a lone CR (progress output) → LF.
            if chars.peek() != Some(&'\n') {
                out.push('\n');
            }
        }
    }
    out.replace("]]>", "]] >")
}

/// `junit.xml`: a suite per platform, a test case per check.
pub fn junit_xml(report: &RunReport) -> Result<Vec<u8>> {
    use junit_report::{Duration as JDuration, ReportBuilder, TestCase, TestSuiteBuilder};
    let dur = |d: std::time::Duration| JDuration::try_from(d).unwrap_or(JDuration::ZERO);
    let mut suites = Vec::new();
    if let Some(v) = &report.verification {
        for p in &v.platforms {
            let mut suite = TestSuiteBuilder::new(&p.platform);
            for c in &p.checks {
                let name = sanitize(&c.name);
                let message = sanitize(&c.message);
                let mut tc = match c.outcome {
                    Outcome::Passed => TestCase::success(&name, dur(c.duration)),
                    Outcome::Failed => {
                        TestCase::failure(&name, dur(c.duration), "failed", &message)
                    }
                    Outcome::Error => TestCase::error(&name, dur(c.duration), "error", &message),
                    Outcome::Skipped => TestCase::skipped_with_cause(&name, "skipped", &message),
                };
                tc.set_classname(&format!("archgate.{}", p.platform.replace('/', ".")));
                let mut out = message.clone();
                if let Some(o) = &c.output {
                    out.push_str("\n\n");
                    out.push_str(&sanitize(o));
                }
                tc.set_system_out(&out);
                suite.add_testcase(tc);
            }
            suite.set_system_out(&sanitize(&platform_summary(p)));
            suites.push(suite.build());
        }
    }
    if let Some(e) = &report.error {
        let mut suite = TestSuiteBuilder::new("archgate");
        let mut tc = TestCase::error(
            &e.phase,
            JDuration::ZERO,
            &e.kind.to_string(),
            &sanitize(&e.message),
        );
        tc.set_classname("archgate.run");
        suite.add_testcase(tc);
        suites.push(suite.build());
    }
    let mut buf = Vec::new();
    ReportBuilder::new()
        .add_testsuites(suites)
        .build()
        .write_xml(&mut buf)
        .map_err(|e| Error::Internal(format!("rendering {JUNIT}: {e}")))?;
    buf.push(b'\n');
    Ok(buf)
}

fn platform_summary(p: &PlatformResult) -> String {
    let mut s = format!("{} {} runner {}", p.platform, p.outcome, p.runner);
    if let Some(d) = &p.manifest_digest {
        let _ = write!(s, " manifest {d}");
    }
    if let Some(j) = &p.java_version {
        let _ = write!(s, " java {j}");
    }
    s
}

/// `archgate.env`: GitLab dotenv (`NAME=value` lines only, few keys). The
/// pinned image, its digest and the platforms that passed only when the gate
/// passed: a failed or unfinished run hands on its verdict, exit code and
/// coverage, never something a later job could deploy.
pub fn dotenv(report: &RunReport) -> String {
    let mut out = String::new();
    let passed = report.verdict_word() == "passed";
    if passed {
        if let Some(image) = report.pinned_image() {
            dotenv_line(&mut out, var::IMAGE, image);
        }
        if let Some(d) = report.index_digest() {
            dotenv_line(&mut out, var::INDEX_DIGEST, d.as_str());
        }
        if let Some(v) = &report.verification {
            let names: Vec<&str> = v
                .platforms
                .iter()
                .filter(|p| p.outcome == Outcome::Passed)
                .map(|p| p.platform.as_str())
                .collect();
            dotenv_line(&mut out, var::PASSED_PLATFORMS, &names.join(","));
        }
    }
    if let Some(g) = &report.gate {
        dotenv_line(&mut out, var::COVERAGE, &g.coverage);
    }
    if let Some(a) = &report.attestation {
        dotenv_line(&mut out, var::ATTESTATION, a.digest.as_str());
    }
    dotenv_line(&mut out, var::VERDICT, report.verdict_word());
    dotenv_line(&mut out, var::EXIT_CODE, &report.exit_code.to_string());
    out
}

/// One `NAME=value` line: dotenv values are single lines without quotes.
fn dotenv_line(out: &mut String, key: &str, value: &str) {
    let v: String = value
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\'')
        .collect();
    let _ = writeln!(out, "{key}={v}");
}

/// `AG_IMAGE_LINUX_ARM64_V8` for `linux/arm64/v8`: the dotenv name a
/// fan-out build job hands its platform's image on under.
pub fn platform_key(platform: &str) -> String {
    let mut key = String::from(var::IMAGE_PREFIX);
    key.extend(platform.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    key
}

/// Writes `NAME=value` lines (GitLab dotenv) atomically.
pub fn write_dotenv(path: &Path, vars: &[(String, String)]) -> Result<()> {
    let mut out = String::new();
    for (k, v) in vars {
        dotenv_line(&mut out, k, v);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    write_atomic(path, out.as_bytes())
}

fn cell(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "✅",
        Outcome::Failed => "❌",
        Outcome::Error => "⚠️",
        Outcome::Skipped => "⏭",
    }
}

/// `coverage.md`: the platform × check table and a one-line verdict.
pub fn coverage_md(report: &RunReport) -> String {
    let mut out = String::from("## archgate platform coverage\n\n");
    if let Some(image) = report.pinned_image() {
        let _ = writeln!(out, "Image: `{image}`\n");
    }
    if let Some(v) = &report.verification {
        let has_commands = v
            .platforms
            .iter()
            .any(|p| p.checks.iter().any(|c| c.id == CheckId::Command));
        out.push_str("| platform |");
        for c in COLUMNS {
            let _ = write!(out, " {} |", c.as_str());
        }
        if has_commands {
            out.push_str(" commands |");
        }
        // One column each for the checks a configuration adds, when it does.
        let optional: Vec<CheckId> = [CheckId::Clients, CheckId::ServiceStart]
            .into_iter()
            .filter(|id| {
                v.platforms
                    .iter()
                    .any(|p| p.checks.iter().any(|c| c.id == *id))
            })
            .collect();
        for id in &optional {
            let _ = write!(out, " {} |", id.as_str());
        }
        out.push_str(" java |\n|---|");
        for _ in COLUMNS {
            out.push_str(":-:|");
        }
        if has_commands {
            out.push_str(":-:|");
        }
        for _ in &optional {
            out.push_str(":-:|");
        }
        out.push_str("---|\n");
        for p in &v.platforms {
            let _ = write!(out, "| {} |", p.platform);
            for id in COLUMNS {
                let o = p.checks.iter().find(|c| c.id == *id).map(|c| c.outcome);
                let _ = write!(out, " {} |", o.map_or("—", cell));
            }
            if has_commands {
                let worst = p
                    .checks
                    .iter()
                    .filter(|c| c.id == CheckId::Command)
                    .map(|c| c.outcome)
                    .max();
                let _ = write!(out, " {} |", worst.map_or("—", cell));
            }
            for id in &optional {
                let o = p.checks.iter().find(|c| c.id == *id).map(|c| c.outcome);
                let _ = write!(out, " {} |", o.map_or("—", cell));
            }
            let _ = writeln!(out, " {} |", p.java_version.as_deref().unwrap_or("—"));
        }
        out.push_str("\n✅ passed · ❌ failed · ⚠️ could not tell · ⏭ skipped\n\n");
        let problems: Vec<String> = v
            .platforms
            .iter()
            .flat_map(|p| {
                p.checks
                    .iter()
                    // A skip of a platform that otherwise passed is a policy
                    // (not a cascade): the reader needs its reason.
                    .filter(|c| match c.outcome {
                        Outcome::Failed | Outcome::Error => true,
                        Outcome::Skipped => p.outcome == Outcome::Passed,
                        Outcome::Passed => false,
                    })
                    .map(move |c| {
                        let mark = if c.outcome == Outcome::Skipped {
                            "⏭ "
                        } else {
                            ""
                        };
                        format!(
                            "- {} `{}`: {mark}{}",
                            p.platform,
                            c.name,
                            one_line(&c.message)
                        )
                    })
            })
            .collect();
        if !problems.is_empty() {
            out.push_str(&problems.join("\n"));
            out.push_str("\n\n");
        }
    }
    let verdict = match (&report.gate, &report.error) {
        (_, Some(e)) => format!("**ERROR** in {}: {}", e.phase, one_line(&e.message)),
        (Some(g), None) => format!("**{}**", g.line()),
        (None, None) => "**ERROR**: no verdict".into(),
    };
    let _ = writeln!(out, "{verdict} (exit code {})", report.exit_code);
    out
}

fn one_line(s: &str) -> String {
    let s = sanitize(s).replace(['\n', '\t'], " ").replace('|', "\\|");
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hole 2: no output variable may be read as a setting by the next job
    /// (the loader reads `ARCHGATE_*`); tests/run.rs runs that job for real.
    #[test]
    fn regression_hole_2_outputs_are_outside_the_settings_prefix() {
        let outputs = [
            var::IMAGE,
            var::IMAGE_PREFIX,
            var::INDEX_DIGEST,
            var::PASSED_PLATFORMS,
            var::COVERAGE,
            var::VERDICT,
            var::EXIT_CODE,
        ];
        let prefix = crate::config::env::PREFIX;
        assert!(
            outputs.iter().all(|v| !v.starts_with(prefix)),
            "{outputs:?}"
        );
        assert!(!platform_key("linux/arm64").starts_with(prefix));
    }

    #[test]
    fn sanitize_removes_what_breaks_xml() {
        let s = sanitize("\u{1b}[31mred\u{1b}[0m ok]]>x\u{0}\u{7}\r\nline\rnext\ttab");
        assert_eq!(s, "red ok]] >x\nline\nnext\ttab");
    }

    #[test]
    fn dotenv_lines_are_plain() {
        let r = RunReport {
            schema_version: SCHEMA_VERSION,
            archgate_version: "0",
            command: "run".into(),
            started_at: 0,
            duration_ms: 0,
            produced: None,
            verification: None,
            gate: None,
            attestation: None,
            error: Some(RunError {
                phase: "config".into(),
                kind: ErrorKind::Usage,
                message: "bad \"key\"\nline".into(),
            }),
            exit_code: ExitStatus::Usage,
            config: serde_json::Value::Null,
        };
        let env = dotenv(&r);
        assert_eq!(env, "AG_VERDICT=error\nAG_EXIT_CODE=2\n");
        let md = coverage_md(&r);
        assert!(
            md.contains("**ERROR** in config: bad \"key\" line (exit code 2)"),
            "{md}"
        );
        // report.json: the exit status as an enum and as the number, the
        // error kind as an enum.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["exit"], "usage", "{json:#}");
        assert_eq!(json["exit_code"], 2, "{json:#}");
        assert_eq!(json["error"]["kind"], "usage", "{json:#}");
    }

    #[test]
    fn the_gate_verdict_carries_the_exit_status_as_name_and_number() {
        let verdict = Verdict {
            outcome: Outcome::Failed,
            exit_code: ExitStatus::Failed,
            reasons: Vec::new(),
            coverage: "0/1".into(),
        };
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(json["exit"], "failed", "{json}");
        assert_eq!(json["exit_code"], 1, "{json}");
        assert_eq!(json["outcome"], "failed", "{json}");
    }
}
