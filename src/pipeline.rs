//! `archgate run`'s job, as a library call: produce the image (build from
//! the Dockerfile, or merge per-architecture images; or take the image given
//! for a verify-only run), verify it through its index digest, apply the
//! gate. Every failure ends up inside the returned [`RunReport`], so the
//! reports are written also when a phase fails.
//!
//! The settings arrive loaded and validated (`config::load`), and each
//! phase's request is made from them before the phase writes anything. What
//! a phase prints goes to a [`Progress`]: the CLI's one prints GitLab
//! collapsible sections; the pipeline itself never writes to the terminal.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::build::BuildRequest;
use crate::cancel;
use crate::config::{self, Loaded};
use crate::error::Error;
use crate::gate;
use crate::merge::MergeRequest;
use crate::report::{Produced, RunReport};
use crate::verify::VerifyRequest;

/// The phases of a run, in order; their names are `report.json`'s `error.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Build,
    Merge,
    Verify,
    Attest,
}

impl Phase {
    /// `build`, `merge` or `verify`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Merge => "merge",
            Phase::Verify => "verify",
            Phase::Attest => "attest",
        }
    }

    /// A one-line title for the log.
    pub fn title(self) -> &'static str {
        match self {
            Phase::Build => "build: every platform from the Dockerfile",
            Phase::Merge => "merge: per-architecture images into one index",
            Phase::Verify => "verify: every required platform runs its JDK",
            Phase::Attest => "attest: sign the verdict and attach it to the index digest",
        }
    }
}

/// Where a run's human output goes, phase by phase.
pub trait Progress {
    /// `phase` starts.
    fn start(&mut self, phase: Phase);
    /// The phase's human summary (what its command prints).
    fn output(&mut self, phase: Phase, text: &str);
    /// `phase` ended, successfully or not.
    fn end(&mut self, phase: Phase);
}

/// A report before anything ran; `loaded` fills its `config` (with origins).
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
        attestation: None,
        error: None,
        exit_code: Default::default(),
        config: loaded.map_or(serde_json::Value::Null, config::render::render_json),
    }
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the job: verify `image` when given, else produce one first. Never
/// `Err`: every failure is inside the report, with its phase.
///
/// On a signal ([`crate::cancel`]) the phase running stops (its children
/// killed, its staging removed) or, after [`cancel::GRACE`], is dropped; the
/// report then holds `cancelled by SIGTERM` (kind `cancelled`) for that phase
/// and no verdict, whatever the phases had found so far.
pub async fn run(loaded: &Loaded, image: Option<&str>, progress: &mut dyn Progress) -> RunReport {
    let started = Instant::now();
    let mut report = new_report("run", Some(loaded));
    let mut tracked = Tracked {
        inner: progress,
        open: None,
        last: None,
    };
    tokio::select! {
        () = run_phases(loaded, image, &mut tracked, &mut report) => {}
        _ = cancel::cancelled_after_grace() => {}
    }
    if let Some(signal) = cancel::requested() {
        cancel::settle().await;
        if let Some(open) = tracked.open {
            tracked.end(open);
        }
        let phase = tracked.last.map_or("config", Phase::name);
        report.gate = None;
        report.stop(phase, &Error::Cancelled(signal));
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// A [`Progress`] that remembers the phase a cancellation interrupts.
struct Tracked<'a> {
    inner: &'a mut dyn Progress,
    /// Started and not yet ended.
    open: Option<Phase>,
    /// The last phase started.
    last: Option<Phase>,
}

impl Progress for Tracked<'_> {
    fn start(&mut self, phase: Phase) {
        self.open = Some(phase);
        self.last = Some(phase);
        self.inner.start(phase);
    }
    fn output(&mut self, phase: Phase, text: &str) {
        self.inner.output(phase, text);
    }
    fn end(&mut self, phase: Phase) {
        self.open = None;
        self.inner.end(phase);
    }
}

async fn run_phases(
    loaded: &Loaded,
    image: Option<&str>,
    progress: &mut dyn Progress,
    report: &mut RunReport,
) {
    let s = &loaded.settings;
    // The signing key is read before anything is written.
    let signer = match crate::attest::signer(loaded) {
        Ok(signer) => signer,
        Err(e) => return report.stop("config", &e),
    };
    // 1. The image: given, or produced.
    let image = match image {
        Some(i) => i.to_string(),
        None => match produce(s, progress).await {
            Ok(p) => {
                let image = p.image.clone();
                report.produced = Some(p);
                image
            }
            Err((phase, e)) => return report.stop(phase, &e),
        },
    };

    // 2. Verify through the index digest, 3. gate.
    progress.start(Phase::Verify);
    let verified = match VerifyRequest::from_settings(s, Some(&image)) {
        Ok(request) => crate::verify::verify(&request, s).await,
        Err(e) => Err(e),
    };
    match verified {
        Ok(v) => {
            progress.output(Phase::Verify, &crate::verify::render_text(&v));
            let verdict = gate::evaluate(&v, s);
            report.exit_code = verdict.exit_code;
            report.verification = Some(v);
            report.gate = Some(verdict);
        }
        Err(e) => report.stop(Phase::Verify.name(), &e),
    }
    progress.end(Phase::Verify);

    // 4. Sign the verdict and attach it to the index digest.
    if let (Some(signer), Some(v), Some(verdict)) = (&signer, &report.verification, &report.gate) {
        progress.start(Phase::Attest);
        match crate::attest::attach(s, signer, v, verdict).await {
            Ok(attested) => {
                if let Some(a) = &attested {
                    progress.output(Phase::Attest, &crate::attest::render_attached(a));
                }
                report.attestation = attested;
            }
            Err(e) => attach_failed(report, &e),
        }
        progress.end(Phase::Attest);
    }
}

/// An attachment that failed stops a passing run (nothing to promote
/// without it); a failed gate keeps its own exit code and says why.
pub fn attach_failed(report: &mut RunReport, e: &Error) {
    if report.exit_code == crate::ExitStatus::Success {
        report.stop(Phase::Attest.name(), e);
    } else {
        tracing::warn!("attaching the signed verdict failed: {e}");
    }
}

/// Merges when `[merge] sources` are configured, else builds the Dockerfile;
/// an error names the phase it stopped in (`config` when there is nothing to produce).
async fn produce(
    s: &config::Settings,
    progress: &mut dyn Progress,
) -> Result<Produced, (&'static str, Error)> {
    let has_sources = !s.merge.sources.is_empty();
    if !has_sources && !s.build.dockerfile.is_file() {
        let e = Error::Config(format!(
            "nothing to produce: no Dockerfile at {} ([build] dockerfile), no [merge] sources; build one, merge per-architecture images, or pass --image IMAGE to verify an existing image",
            s.build.dockerfile.display()
        ));
        return Err(("config", e));
    }
    let phase = if has_sources {
        Phase::Merge
    } else {
        Phase::Build
    };
    progress.start(phase);
    let produced = async {
        if has_sources {
            let outcome = crate::merge::merge(&MergeRequest::from_settings(s)?, s).await?;
            progress.output(phase, &crate::merge::render_text(&outcome));
            Ok(Produced::new(
                "merge",
                &outcome.image,
                &outcome.index_digest,
                &outcome,
            ))
        } else {
            let request = BuildRequest::from_settings(s)?;
            // `run` publishes the release index even from one platform: the rule holds.
            gate::check_covers(s, "build", &request.platforms)?;
            let outcome = crate::build::build(&request, s).await?;
            progress.output(phase, &crate::build::render_text(&outcome));
            Ok(Produced::new(
                "build",
                &outcome.image,
                &outcome.index_digest,
                &outcome,
            ))
        }
    }
    .await;
    progress.end(phase);
    produced.map_err(|e| (phase.name(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sources, load};

    /// Records the phases a run went through.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Progress for Recorder {
        fn start(&mut self, phase: Phase) {
            self.0.push(format!("start {}", phase.name()));
        }
        fn output(&mut self, phase: Phase, _text: &str) {
            self.0.push(format!("output {}", phase.name()));
        }
        fn end(&mut self, phase: Phase) {
            self.0.push(format!("end {}", phase.name()));
        }
    }

    fn loaded_in(dir: &std::path::Path, toml: &str) -> Loaded {
        std::fs::write(dir.join("archgate.toml"), toml).unwrap();
        load(&Sources {
            cwd: dir.to_path_buf(),
            ..Sources::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn nothing_to_produce_stops_in_config_before_any_phase() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = loaded_in(
            dir.path(),
            &format!(
                "[build]\ndockerfile = \"{}\"\n",
                dir.path().join("absent").display()
            ),
        );
        let mut progress = Recorder::default();
        let report = run(&loaded, None, &mut progress).await;
        assert!(progress.0.is_empty(), "{:?}", progress.0);
        let e = report.error.as_ref().expect("an error");
        assert_eq!(
            (e.phase.as_str(), e.kind),
            ("config", crate::ErrorKind::Usage)
        );
        assert_eq!(report.exit_code, crate::ExitStatus::Usage);
        assert!(e.message.contains("--image"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_phase_that_fails_is_ended_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let loaded = loaded_in(dir.path(), "");
        let mut progress = Recorder::default();
        let image = format!("oci:{}:v1", missing.display());
        let report = run(&loaded, Some(&image), &mut progress).await;
        assert_eq!(progress.0, ["start verify", "end verify"]);
        assert_eq!(report.error.as_ref().unwrap().phase, "verify");
        assert_ne!(report.exit_code, crate::ExitStatus::Success);
        assert!(report.produced.is_none() && report.gate.is_none());
    }
}
