//! The library's one error type and how an error maps to archgate's exit codes.
//!
//! Every variant names the thing it is about (image, registry, file, key) and,
//! where there is one, the way out. Variants are grouped by *whose* fault it is,
//! because a release gate must tell "the configuration is wrong" (exit 2) from
//! "the infrastructure failed" (exit 3) from "the image is wrong" (exit 1).
//! [`ExitStatus`] is that mapping, once: the CLI's process exit code and
//! `report.json`'s `exit` (its name) and `exit_code` (its number) are all this value.

use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

/// What kind of failure this is, for exit codes and retry decisions.
/// In `report.json` (`error.kind`) it is the lower-case name: `usage`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The user's configuration, flags or input names something invalid (exit 2).
    Usage,
    /// A registry, disk, network or emulator failed, or we could not tell (exit 3).
    Infrastructure,
    /// The content itself is wrong: digest mismatch, malformed manifest (exit 1).
    Content,
    /// A signal stopped the run before it could decide (exit 130 or 143). Not
    /// `infrastructure`: nothing failed, and a retry policy must not see one.
    Cancelled,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Infrastructure => "infrastructure",
            ErrorKind::Content => "content",
            ErrorKind::Cancelled => "cancelled",
        })
    }
}

/// Exit codes a release gate can trust (README "Exit codes", DESIGN.md "Outputs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum ExitStatus {
    /// Everything required passed.
    #[default]
    Success = 0,
    /// The gate failed: the image is wrong.
    Failed = 1,
    /// The configuration or the invocation is wrong.
    Usage = 2,
    /// Infrastructure failed (registry, network, disk, emulator): we could not tell.
    Infrastructure = 3,
    /// Cancelled by SIGINT (128 + 2, the shell's convention).
    Interrupted = 130,
    /// Cancelled by SIGTERM (128 + 15): a GitLab cancel or job timeout.
    Terminated = 143,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The lower-case name `report.json` gives it (`exit`): `success`,
    /// `failed`, `usage`, `infrastructure`, `interrupted`, `terminated`.
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failed => "failed",
            ExitStatus::Usage => "usage",
            ExitStatus::Infrastructure => "infrastructure",
            ExitStatus::Interrupted => "interrupted",
            ExitStatus::Terminated => "terminated",
        }
    }
}

impl From<ErrorKind> for ExitStatus {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Usage => ExitStatus::Usage,
            ErrorKind::Infrastructure => ExitStatus::Infrastructure,
            ErrorKind::Content => ExitStatus::Failed,
            // The kind alone does not say which signal; `Error::exit_status` does.
            ErrorKind::Cancelled => ExitStatus::Terminated,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Serialised as the enum's [name](ExitStatus::name) (`"usage"`).
impl Serialize for ExitStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An exit status as the two fields `report.json` gives it, for
/// `#[serde(flatten, serialize_with = "exit_fields")]`: `"exit": "usage"` (the
/// enum) and `"exit_code": 2` (the number, kept from schema version 1: scripts
/// compare it with `$?`).
pub fn exit_fields<S: Serializer>(
    status: &ExitStatus,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(2))?;
    map.serialize_entry("exit", status)?;
    map.serialize_entry("exit_code", &status.code())?;
    map.end()
}

/// archgate's library error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration: unknown key, wrong type, malformed value.
    #[error("{0}")]
    Config(String),

    /// Command-line or input that cannot be understood (a platform string,
    /// an image reference, a location).
    #[error("{0}")]
    Invalid(String),

    /// A manifest, tag, repository or blob does not exist.
    #[error("{what} not found{}", hint_suffix(.hint))]
    NotFound { what: String, hint: Option<String> },

    /// The registry refused our credentials (or we sent none where some are needed).
    #[error("{registry}: {message}")]
    Unauthorized { registry: String, message: String },

    /// Transport-level failure talking to a registry: refused, reset, timeout,
    /// TLS, HTTP-vs-HTTPS mismatch. `temporary` decides whether a retry may help.
    #[error("{registry}: {message}")]
    Network {
        registry: String,
        message: String,
        temporary: bool,
    },

    /// The registry answered with an HTTP status we did not expect.
    #[error("{registry}: HTTP {status} for {what}{}", body_suffix(.body))]
    Registry {
        registry: String,
        status: u16,
        what: String,
        body: String,
    },

    /// Content did not hash to the digest it was addressed by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// A manifest, index, config or layout file that cannot be understood.
    #[error("{what}: {message}")]
    Malformed { what: String, message: String },

    /// The image does not, or would not, hold every platform the release
    /// requires (`gate::required_platforms`): the gate fails (exit 1).
    #[error("{0}")]
    Uncovered(String),
    /// Local file system failure, with the path it concerns.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Something else went wrong inside archgate's own machinery.
    #[error("{0}")]
    Internal(String),

    /// A signal asked the process to stop (see [`crate::cancel`]).
    #[error("cancelled by {}", .0.name())]
    Cancelled(Signal),
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(": {h}")).unwrap_or_default()
}

fn body_suffix(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

impl Error {
    /// Whose fault it is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::Invalid(_) | Error::Unauthorized { .. } => ErrorKind::Usage,
            Error::NotFound { .. } => ErrorKind::Usage,
            Error::DigestMismatch { .. } | Error::Malformed { .. } | Error::Uncovered(_) => {
                ErrorKind::Content
            }
            Error::Network { .. } | Error::Registry { .. } | Error::Io { .. } => {
                ErrorKind::Infrastructure
            }
            Error::Internal(_) => ErrorKind::Infrastructure,
            Error::Cancelled(_) => ErrorKind::Cancelled,
        }
    }

    /// The exit status this error ends a command with: its kind's, and for a
    /// cancellation the signal's (130 SIGINT, 143 SIGTERM).
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Cancelled(Signal::Interrupt) => ExitStatus::Interrupted,
            Error::Cancelled(Signal::Terminate) => ExitStatus::Terminated,
            _ => ExitStatus::from(self.kind()),
        }
    }

    /// Whether retrying the same request may succeed (the retry decision lives here).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Network { temporary, .. } => *temporary,
            Error::Registry { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Shorthand for an I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for malformed content.
    pub fn malformed(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Malformed {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// archgate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The signal that cancelled the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (GitLab cancel, job timeout, `docker stop`).
    Terminate,
}

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_and_kind_serialise_as_their_names() {
        for (status, name, code) in [
            (ExitStatus::Success, "success", 0),
            (ExitStatus::Failed, "failed", 1),
            (ExitStatus::Usage, "usage", 2),
            (ExitStatus::Infrastructure, "infrastructure", 3),
            (ExitStatus::Interrupted, "interrupted", 130),
            (ExitStatus::Terminated, "terminated", 143),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(status.code(), code);
            assert_eq!(status.to_string(), code.to_string());
        }
        for (kind, name, status) in [
            (ErrorKind::Usage, "usage", ExitStatus::Usage),
            (ErrorKind::Content, "content", ExitStatus::Failed),
            (
                ErrorKind::Infrastructure,
                "infrastructure",
                ExitStatus::Infrastructure,
            ),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(ExitStatus::from(kind), status);
        }
    }
}
