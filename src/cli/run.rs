//! `archgate run`: the whole job from configuration — produce the image
//! (merge, or verify-only with `--image`), verify it through its index
//! digest, apply the gate, write the reports (also when a phase fails), and
//! return the gate's exit code.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::{self, Loaded, MergeSources};
use crate::error::{Error, ErrorKind};
use crate::gate::{self, GatePolicy};
use crate::report::{Produced, RunError, RunReport};
use crate::verify::{VerifyRequest, render_text};

use super::{BuildArgs, ExitStatus, MergeArgs, build_request, merge_request};

/// What `run` was asked beyond the configuration.
pub struct RunOptions {
    /// Verify this image instead of producing one.
    pub image: Option<String>,
    /// `verify` or `run` (names the report).
    pub command: &'static str,
}

/// GitLab collapsible log sections (`GITLAB_CI` set), else a plain heading.
struct Section {
    name: &'static str,
    gitlab: bool,
}

impl Section {
    fn start(name: &'static str, title: &str) -> Section {
        let gitlab = std::env::var_os("GITLAB_CI").is_some_and(|v| !v.is_empty());
        if gitlab {
            println!(
                "\x1b[0Ksection_start:{}:{name}[collapsed=false]\r\x1b[0K{title}",
                unix_now()
            );
        } else {
            println!("== {title}");
        }
        Section { name, gitlab }
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        if self.gitlab {
            println!("\x1b[0Ksection_end:{}:{}\r\x1b[0K", unix_now(), self.name);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Usage => "usage",
        ErrorKind::Content => "content",
        ErrorKind::Infrastructure => "infrastructure",
    }
}

/// A report for a run that stopped in `phase`.
pub fn stopped(report: &mut RunReport, phase: &str, e: &Error) {
    report.exit_code = ExitStatus::from(e.kind()) as u8;
    report.error = Some(RunError {
        phase: phase.into(),
        kind: kind_name(e.kind()).into(),
        message: e.to_string(),
    });
}

/// The report skeleton, before anything ran.
pub fn new_report(command: &str, loaded: Option<&Loaded>) -> RunReport {
    RunReport {
        schema_version: crate::report::SCHEMA_VERSION,
        archgate_version: env!("CARGO_PKG_VERSION"),
        command: command.into(),
        started_at: unix_now(),
        duration_ms: 0,
        produced: None,
        verification: None,
        gate: None,
        error: None,
        exit_code: 0,
        config: loaded.map_or(serde_json::Value::Null, config::render::render_json),
    }
}

/// Runs the job; never `Err`: every failure is inside the report.
pub async fn run(loaded: &Loaded, opts: &RunOptions) -> RunReport {
    let started = Instant::now();
    let mut report = new_report(opts.command, Some(loaded));
    run_phases(loaded, opts, &mut report).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn run_phases(loaded: &Loaded, opts: &RunOptions, report: &mut RunReport) {
    let s = &loaded.settings;
    let policy = match GatePolicy::from_settings(&s.gate) {
        Ok(p) => p,
        Err(e) => return stopped(report, "config", &e),
    };
    let required = if policy.required.is_empty() {
        match s.platform_list() {
            Ok(p) => p,
            Err(e) => return stopped(report, "config", &e),
        }
    } else {
        policy.required.clone()
    };

    // 1. The image: given, or produced.
    let image = match &opts.image {
        Some(i) => i.clone(),
        None => {
            let has_sources = match &s.merge.sources {
                MergeSources::List(l) => !l.is_empty(),
                MergeSources::ByPlatform(t) => !t.is_empty(),
            };
            if !has_sources && !s.build.dockerfile.is_file() {
                let e = Error::Config(format!(
                    "nothing to produce: no Dockerfile at {} ([build] dockerfile), no [merge] sources; build one, merge per-architecture images, or pass --image IMAGE to verify an existing image",
                    s.build.dockerfile.display()
                ));
                return stopped(report, "config", &e);
            }
            let (phase, produced) = if has_sources {
                let _section = Section::start(
                    "archgate_merge",
                    "merge: per-architecture images into one index",
                );
                let merged = async {
                    let outcome =
                        crate::merge::merge(&merge_request(loaded, &MergeArgs::default())?, s)
                            .await?;
                    print!("{}", crate::merge::render_text(&outcome));
                    Ok(Produced::new(
                        "merge",
                        &outcome.image,
                        &outcome.index_digest,
                        &outcome,
                    ))
                };
                ("merge", merged.await)
            } else {
                let _section = Section::start(
                    "archgate_build",
                    "build: every platform from the Dockerfile",
                );
                let built = async {
                    let outcome =
                        crate::build::build(&build_request(loaded, &BuildArgs::default())?, s)
                            .await?;
                    print!("{}", crate::build::render_text(&outcome));
                    Ok(Produced::new(
                        "build",
                        &outcome.image,
                        &outcome.index_digest,
                        &outcome,
                    ))
                };
                ("build", built.await)
            };
            match produced {
                Ok(p) => {
                    let image = p.image.clone();
                    report.produced = Some(p);
                    image
                }
                Err(e) => return stopped(report, phase, &e),
            }
        }
    };

    // 2. Verify through the index digest, 3. gate.
    let _section = Section::start(
        "archgate_verify",
        "verify: every required platform runs its JDK",
    );
    let request = VerifyRequest {
        image,
        platforms: Some(required),
    };
    match crate::verify::verify(&request, s).await {
        Ok(v) => {
            print!("{}", render_text(&v));
            let verdict = gate::evaluate(&v, &policy);
            report.exit_code = verdict.exit_code;
            report.verification = Some(v);
            report.gate = Some(verdict);
        }
        Err(e) => stopped(report, "verify", &e),
    }
}

/// Writes the reports into `dir` and prints where; a failure to write is
/// itself an infrastructure error (exit 3) unless the run already failed worse.
pub fn finish(report: &RunReport, dir: &std::path::Path) -> ExitStatus {
    let mut status = match report.exit_code {
        0 => ExitStatus::Success,
        1 => ExitStatus::Failed,
        2 => ExitStatus::Usage,
        _ => ExitStatus::Infrastructure,
    };
    match crate::report::write_all(dir, report) {
        Ok(files) => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("reports: {}", names.join(", "));
        }
        Err(e) => {
            eprintln!("error: writing the reports: {e}");
            if status == ExitStatus::Success {
                status = ExitStatus::Infrastructure;
            }
        }
    }
    if let Some(g) = &report.gate {
        for r in &g.reasons {
            println!("  {r}");
        }
        println!("gate: {}", g.line());
    }
    if let Some(e) = &report.error {
        eprintln!("error: {} phase: {}", e.phase, e.message);
    }
    status
}
