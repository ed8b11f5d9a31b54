//! Log lines on stderr: text (colour only on a terminal, never with NO_COLOR)
//! or JSON. `-v` raises archgate's level; `ARCHGATE_LOG` takes a full filter.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::env;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once; `environment` is the process's, as read into `Sources`.
pub fn init(verbose: u8, format: LogFormat, environment: &BTreeMap<String, String>) {
    let default = match verbose {
        0 => "warn,archgate=info,rustls_platform_verifier=off",
        1 => "info,archgate=debug,rustls_platform_verifier=off",
        _ => "trace",
    };
    let filter = environment
        .get(env::LOG)
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal()
        && environment.get(env::NO_COLOR).is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        .with_target(verbose > 0);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi).without_time().try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// stderr through [`super::progress::write_stderr`], so that a log line
/// lands above the progress bars instead of through them.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        super::progress::write_stderr(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
