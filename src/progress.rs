//! Progress of long work (downloads, unpacks, emulated runs, built layers), reported by the
//! library and drawn by whoever installed a [`Sink`]: `src/cli` draws bars on
//! a terminal and plain lines in CI. The library never prints progress; with
//! no sink installed (library use, unit tests) a report is a no-op.
//!
//! A phase of one subject (a platform) is a [`Tracker`]: started with its
//! total bytes when known, advanced by a relaxed atomic add (the hot loops
//! read 8–256 KiB at a time, so this costs nothing measurable), ended when
//! dropped. Sinks hear only `started` and `ended`; they read the counters
//! when they draw, at their own pace, so how often a line or a bar updates is
//! the sink's decision alone.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The `progress` setting: how progress is shown on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise (structured events with the
    /// JSON log format).
    #[default]
    Auto,
    /// Plain lines (or JSON events) even on a terminal.
    Lines,
    /// Nothing.
    Never,
}

/// What a subject is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Fetching blobs from a registry into the cache.
    Download,
    /// Applying layers into a root (bytes: compressed layer bytes read).
    Unpack,
    /// Running a command under QEMU.
    Emulate,
    /// Running a command on the host CPU.
    Run,
    /// Writing a built layer (tar, gzip, sha256; bytes: file bytes read).
    Compress,
    /// Publishing blobs to a target (`build`, `merge`, `mirror`; bytes: the
    /// blobs settled so far — copied, mounted or found present).
    Upload,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Unpack => "unpack",
            Phase::Emulate => "emulate",
            Phase::Run => "run",
            Phase::Compress => "compress",
            Phase::Upload => "upload",
        }
    }
}

/// One phase of one subject, as a sink sees it.
#[derive(Debug)]
pub struct Work {
    /// Whose work: a platform (`linux/arm64`).
    pub subject: String,
    pub phase: Phase,
    /// What exactly, e.g. the command run; may be empty.
    pub detail: String,
    /// Bytes to do, when known.
    pub total: Option<u64>,
    done: AtomicU64,
    completed: AtomicBool,
    started: Instant,
}

impl Work {
    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Whether the phase ended by [`Tracker::complete`] (else it failed or was cancelled).
    pub fn completed(&self) -> bool {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Average bytes per second since the start.
    pub fn rate(&self) -> u64 {
        let secs = self.elapsed().as_secs_f64();
        if secs < 1e-3 {
            0
        } else {
            (self.done() as f64 / secs) as u64
        }
    }
}

/// Where progress goes.
pub trait Sink: Send + Sync {
    /// A phase began.
    fn started(&self, work: &Arc<Work>);
    /// A phase ended (completed or not: [`Work::completed`]).
    fn ended(&self, work: &Arc<Work>);
}

static SINK: OnceLock<Arc<dyn Sink>> = OnceLock::new();

/// Installs the process's sink; `false` when one was installed already.
pub fn install(sink: Arc<dyn Sink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Starts reporting `phase` of `subject`.
pub fn start(subject: &str, phase: Phase, detail: &str, total: Option<u64>) -> Tracker {
    let Some(sink) = SINK.get() else {
        return Tracker { inner: None };
    };
    let work = Arc::new(Work {
        subject: subject.to_string(),
        phase,
        detail: detail.to_string(),
        total,
        done: AtomicU64::new(0),
        completed: AtomicBool::new(false),
        started: Instant::now(),
    });
    sink.started(&work);
    Tracker {
        inner: Some((work, sink.clone())),
    }
}

/// A phase being reported; it ends when dropped.
pub struct Tracker {
    inner: Option<(Arc<Work>, Arc<dyn Sink>)>,
}

impl Tracker {
    /// `n` more bytes done.
    pub fn add(&self, n: u64) {
        if let Some((work, _)) = &self.inner {
            work.done.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Ends the phase as done (dropping without this reports it as stopped).
    pub fn complete(self) {
        if let Some((work, _)) = &self.inner {
            work.completed.store(true, Ordering::Relaxed);
        }
    }

    /// `inner`, counting the bytes read through it.
    pub fn reader<R>(&self, inner: R) -> Counted<'_, R> {
        counted(Some(self), inner)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some((work, sink)) = self.inner.take() {
            sink.ended(&work);
        }
    }
}

/// `inner`, counting the bytes read through it towards `tracker` when there is one.
pub fn counted<R>(tracker: Option<&Tracker>, inner: R) -> Counted<'_, R> {
    Counted { inner, tracker }
}

/// A reader whose bytes count towards a [`Tracker`].
pub struct Counted<'a, R> {
    inner: R,
    tracker: Option<&'a Tracker>,
}

impl<R> Counted<'_, R> {
    fn add(&self, n: usize) {
        if let Some(t) = self.tracker {
            t.add(n as u64);
        }
    }
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(n);
        Ok(n)
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = buf.filled().len() - before;
            self.add(n);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_sink_reporting_is_a_no_op() {
        // Unit tests never install a sink.
        let t = start("linux/arm64", Phase::Unpack, "", Some(10));
        assert!(t.inner.is_none());
        let mut r = t.reader(&b"abc"[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut out).unwrap();
        assert_eq!(out, b"abc");
        t.complete();
    }

    #[test]
    fn the_setting_takes_its_three_values_and_refuses_others() {
        for (text, mode) in [
            ("auto", ProgressMode::Auto),
            ("lines", ProgressMode::Lines),
            ("never", ProgressMode::Never),
        ] {
            let parsed: ProgressMode = serde_json::from_value(text.into()).unwrap();
            assert_eq!(parsed, mode);
        }
        assert!(serde_json::from_value::<ProgressMode>("bars".into()).is_err());
    }
}
