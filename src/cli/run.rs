//! `archgate run` at the terminal: GitLab collapsible log sections around
//! each phase of [`pipeline::run`](crate::pipeline::run), then the reports
//! written and the verdict printed. The job itself is the library's.

use crate::error::ExitStatus;
use crate::pipeline::{Phase, Progress, unix_now};
use crate::report::RunReport;

/// Prints each phase as a GitLab collapsible section (`GITLAB_CI` set), else
/// under a plain `== title` heading.
pub struct Sections {
    /// Whether the job runs in GitLab (from `config::HostEnv`).
    pub gitlab: bool,
}

impl Sections {
    fn section_name(phase: Phase) -> String {
        format!("archgate_{}", phase.name())
    }
}

impl Progress for Sections {
    fn start(&mut self, phase: Phase) {
        if self.gitlab {
            println!(
                "\x1b[0Ksection_start:{}:{}[collapsed=false]\r\x1b[0K{}",
                unix_now(),
                Self::section_name(phase),
                phase.title()
            );
        } else {
            println!("== {}", phase.title());
        }
    }

    fn output(&mut self, _phase: Phase, text: &str) {
        print!("{text}");
    }

    fn end(&mut self, phase: Phase) {
        if self.gitlab {
            println!(
                "\x1b[0Ksection_end:{}:{}\r\x1b[0K",
                unix_now(),
                Self::section_name(phase)
            );
        }
    }
}

/// Writes the reports into `dir` and prints where; a failure to write is
/// itself an infrastructure error (exit 3) unless the run already failed worse.
pub fn finish(report: &RunReport, dir: &std::path::Path) -> ExitStatus {
    let mut status = report.exit_code;
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
        print_gate(g);
    }
    if let Some(e) = &report.error {
        eprintln!("error: {} phase: {}", e.phase, e.message);
    }
    status
}

/// The gate's reasons and verdict line on stdout: what decides the exit code,
/// printed by `run` and `verify` alike.
pub(super) fn print_gate(g: &crate::gate::Verdict) {
    for r in &g.reasons {
        println!("  {r}");
    }
    println!("gate: {}", g.line());
}
