//! Drawing the library's [`progress`](crate::progress) on stderr, the one
//! place that knows whether stderr is a terminal: on a terminal, an indicatif
//! bar per platform and phase (bytes, rate, elapsed time), cleared when the
//! phase ends, with log lines printed above the bars; otherwise (CI) a plain
//! line when a phase starts and ends and at most one per phase every
//! [`INTERVAL`] in between, inside a collapsed GitLab section under GitLab;
//! with the JSON log format, the same lines as structured log events.
//! stdout (a command's result) is never touched.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;
use crate::inspect::human_size;
use crate::pipeline::unix_now;
use crate::progress::{ProgressMode, Sink, Work};

use super::logging::LogFormat;

/// At most one line per phase this often (plus its start and end lines).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// How often bars take their counters.
const BAR_TICK: Duration = Duration::from_millis(100);

/// The GitLab section the lines of `verify` and `build` go into.
const SECTION: &str = "archgate_progress";

/// The bars on screen, when there are: the log writes through them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Writes `buf` to stderr without tearing the bars (above them, when shown).
pub fn write_stderr(buf: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    match BARS.get() {
        Some(m) => m.suspend(|| std::io::stderr().write_all(buf)),
        None => std::io::stderr().write_all(buf),
    }
}

/// `--progress`: clap's view of [`ProgressMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// Bars on a terminal, else plain lines.
    Auto,
    /// Plain lines even on a terminal.
    Lines,
    /// No progress.
    Never,
}

impl ProgressArg {
    /// The value the `progress` setting takes.
    pub fn setting(self) -> &'static str {
        match self {
            ProgressArg::Auto => "auto",
            ProgressArg::Lines => "lines",
            ProgressArg::Never => "never",
        }
    }
}

/// The progress display of one command.
pub struct Display {
    kind: Kind,
}

enum Kind {
    Bars {
        multi: MultiProgress,
        shown: Mutex<Vec<(Arc<Work>, ProgressBar)>>,
    },
    Lines {
        json: bool,
        /// Open a GitLab section at the first line (`verify`, `build`; `run`
        /// prints its own sections).
        gitlab_section: bool,
        state: Mutex<LinesState>,
    },
}

#[derive(Default)]
struct LinesState {
    section_open: bool,
    /// Active phases and when each last printed.
    active: Vec<(Arc<Work>, Instant)>,
}

/// Installs the display `settings` ask for; `section`: the lines go into a
/// GitLab section of their own (when the job runs in GitLab).
pub fn install(settings: &Settings, format: LogFormat, section: bool) -> Option<Arc<Display>> {
    let kind = match settings.progress {
        ProgressMode::Never => return None,
        ProgressMode::Auto if format == LogFormat::Text && std::io::stderr().is_terminal() => {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let _ = BARS.set(multi.clone());
            Kind::Bars {
                multi,
                shown: Mutex::new(Vec::new()),
            }
        }
        _ => Kind::Lines {
            json: format == LogFormat::Json,
            gitlab_section: section && settings.host.gitlab_ci,
            state: Mutex::new(LinesState::default()),
        },
    };
    let display = Arc::new(Display { kind });
    if !crate::progress::install(display.clone()) {
        return None;
    }
    let ticker = Arc::downgrade(&display);
    let every = match display.kind {
        Kind::Bars { .. } => BAR_TICK,
        Kind::Lines { .. } => Duration::from_secs(1),
    };
    let _ = std::thread::Builder::new()
        .name("archgate-progress".into())
        .spawn(move || {
            while let Some(d) = ticker.upgrade() {
                d.tick();
                drop(d);
                std::thread::sleep(every);
            }
        });
    Some(display)
}

impl Display {
    /// The command's long work is over: bars go, the GitLab section closes.
    pub fn finish(&self) {
        match &self.kind {
            Kind::Bars { multi, shown } => {
                lock(shown).clear();
                let _ = multi.clear();
            }
            Kind::Lines { state, .. } => {
                let mut s = lock(state);
                if s.section_open {
                    s.section_open = false;
                    eprintln!("\x1b[0Ksection_end:{}:{SECTION}\r\x1b[0K", unix_now());
                }
            }
        }
    }

    /// Bars take their counters; lines print for phases quiet for [`INTERVAL`].
    fn tick(&self) {
        match &self.kind {
            Kind::Bars { shown, .. } => {
                for (work, bar) in lock(shown).iter() {
                    bar.set_position(work.done());
                }
            }
            Kind::Lines { json, state, .. } => {
                let mut s = lock(state);
                for (work, last) in s.active.iter_mut() {
                    if last.elapsed() >= INTERVAL {
                        *last = Instant::now();
                        emit(*json, work, "progress", &progress_line(work));
                    }
                }
            }
        }
    }
}

impl Sink for Display {
    fn started(&self, work: &Arc<Work>) {
        match &self.kind {
            Kind::Bars { multi, shown } => {
                // Styled before it is added: its first frame is already complete.
                let bar = ProgressBar::new(work.total.unwrap_or(0))
                    .with_style(bar_style(work.total.is_some()))
                    .with_prefix(work.subject.clone())
                    .with_message(what(work));
                let bar = multi.add(bar);
                bar.enable_steady_tick(BAR_TICK);
                lock(shown).push((work.clone(), bar));
            }
            Kind::Lines {
                json,
                gitlab_section,
                state,
            } => {
                let mut s = lock(state);
                if *gitlab_section && !s.section_open && !*json {
                    s.section_open = true;
                    eprintln!(
                        "\x1b[0Ksection_start:{}:{SECTION}[collapsed=true]\r\x1b[0Karchgate progress",
                        unix_now()
                    );
                }
                s.active.push((work.clone(), Instant::now()));
                let total = work
                    .total
                    .map(|t| format!(" ({})", human_size(t)))
                    .unwrap_or_default();
                let line = format!("{}: {} started{total}", work.subject, what(work));
                emit(*json, work, "start", &line);
            }
        }
    }

    fn ended(&self, work: &Arc<Work>) {
        match &self.kind {
            Kind::Bars { multi, shown } => {
                let mut shown = lock(shown);
                if let Some(i) = shown.iter().position(|(w, _)| Arc::ptr_eq(w, work)) {
                    let (_, bar) = shown.remove(i);
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            Kind::Lines { json, state, .. } => {
                lock(state).active.retain(|(w, _)| !Arc::ptr_eq(w, work));
                emit(*json, work, "end", &end_line(work));
            }
        }
    }
}

/// The phase and what it works on: `unpack`, `emulate java -version`.
fn what(work: &Work) -> String {
    if work.detail.is_empty() {
        work.phase.name().to_string()
    } else {
        format!("{} {}", work.phase.name(), work.detail)
    }
}

/// `linux/arm64: unpack 120.3 MiB / 185.0 MiB (45.0 MiB/s)`.
fn progress_line(work: &Work) -> String {
    match work.total {
        Some(total) => format!(
            "{}: {} {} / {} ({}/s)",
            work.subject,
            what(work),
            human_size(work.done()),
            human_size(total),
            human_size(work.rate())
        ),
        None => format!(
            "{}: {} running for {:.0} s",
            work.subject,
            what(work),
            work.elapsed().as_secs_f64()
        ),
    }
}

/// `linux/arm64: unpack done: 185.0 MiB in 4.1 s (45.0 MiB/s)`, or `stopped`.
fn end_line(work: &Work) -> String {
    let how = if work.completed() { "done" } else { "stopped" };
    let secs = work.elapsed().as_secs_f64();
    match work.total {
        Some(_) => format!(
            "{}: {} {how}: {} in {secs:.1} s ({}/s)",
            work.subject,
            what(work),
            human_size(work.done()),
            human_size(work.rate())
        ),
        None => format!("{}: {} {how} in {secs:.1} s", work.subject, what(work)),
    }
}

/// One line on stderr, or one structured log event.
fn emit(json: bool, work: &Work, event: &str, line: &str) {
    if json {
        tracing::info!(
            target: "archgate::progress",
            event,
            platform = %work.subject,
            phase = work.phase.name(),
            detail = %work.detail,
            done = work.done(),
            total = work.total,
            rate = work.rate(),
            elapsed_ms = work.elapsed().as_millis() as u64,
            "{line}"
        );
    } else {
        let _ = write_stderr(format!("{line}\n").as_bytes());
    }
}

/// A bar of a phase with a byte total, and of one without.
const BYTES_TEMPLATE: &str = "{prefix:>15} {msg:<10} [{bar:30}] {binary_bytes:>10} / {binary_total_bytes:<10} {binary_bytes_per_sec:>12} {elapsed:>4}";
const TIME_TEMPLATE: &str = "{prefix:>15} {msg:<10} {spinner} {elapsed:>4}";

/// No colours (NO_COLOR holds trivially): the platform, the phase, then bytes or time.
fn bar_style(bytes: bool) -> ProgressStyle {
    let template = if bytes { BYTES_TEMPLATE } else { TIME_TEMPLATE };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_arg_names_the_setting_value() {
        for a in [ProgressArg::Auto, ProgressArg::Lines, ProgressArg::Never] {
            let parsed: ProgressMode = serde_json::from_value(a.setting().into()).unwrap();
            assert_eq!(
                serde_json::to_value(parsed).unwrap().as_str(),
                Some(a.setting())
            );
        }
    }

    #[test]
    fn both_bar_templates_parse() {
        for t in [BYTES_TEMPLATE, TIME_TEMPLATE] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
