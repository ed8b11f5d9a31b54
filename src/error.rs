//! The library's one error type and how an error maps to archgate's exit codes.
//!
//! Every variant names the thing it is about (image, registry, file, key) and,
//! where there is one, the way out. Variants are grouped by *whose* fault it is,
//! because a release gate must tell "the configuration is wrong" (exit 2) from
//! "the infrastructure failed" (exit 3) from "the image is wrong" (exit 1).

use std::path::PathBuf;

/// What kind of failure this is, for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's configuration, flags or input names something invalid (exit 2).
    Usage,
    /// A registry, disk, network or emulator failed, or we could not tell (exit 3).
    Infrastructure,
    /// The content itself is wrong: digest mismatch, malformed manifest (exit 1).
    Content,
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
            Error::DigestMismatch { .. } | Error::Malformed { .. } => ErrorKind::Content,
            Error::Network { .. } | Error::Registry { .. } | Error::Io { .. } => {
                ErrorKind::Infrastructure
            }
            Error::Internal(_) => ErrorKind::Infrastructure,
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
