//! Turns oci-client's and reqwest's errors into archgate errors that name the
//! registry and the way out, and decides which ones are worth a retry.
//!
//! Transport failures are classified by walking the `source()` chain (and into
//! `io::Error`s, whose `source()` skips the error they wrap) for rustls and I/O
//! errors, with the rendered text as a fallback. Credentials never reach a
//! message: registry bodies are redacted against the password before use.

use std::error::Error as StdError;
use std::io;

use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};

use crate::config::Secret;
use crate::error::Error;

/// How a TLS failure other than an untrusted certificate starts; `connect`
/// looks for it to decide whether to probe for a plain-HTTP registry.
pub const TLS_HANDSHAKE_FAILED: &str = "the TLS handshake failed";
/// What Go's TLS server answers to a plain HTTP request.
const HTTP_TO_HTTPS_SERVER: &str = "Client sent an HTTP request to an HTTPS server";

/// Everything an error message may say about the registry and our side of it.
#[derive(Debug, Clone)]
pub struct Context {
    /// `host[:port]` as in the image reference.
    pub host: String,
    /// The user we authenticate as, and where that came from (`None`: anonymous).
    pub user: Option<(String, String)>,
    /// Only used to scrub it from text the registry sends back.
    pub secret: Option<Secret>,
    /// Whether we speak plain HTTP to this registry.
    pub http: bool,
    /// `[network] timeout` and `connect_timeout`, in seconds, for timeout messages.
    pub timeout: u64,
    pub connect_timeout: u64,
}

/// How a transport failure (no HTTP status) came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The server answered an HTTPS handshake with plain HTTP.
    PlainHttp,
    /// The certificate did not verify (detail from rustls).
    Certificate(String),
    /// Any other TLS failure (detail).
    Tls(String),
    /// Nothing listens on the port.
    Refused,
    /// The connection broke: reset, aborted, closed early.
    Reset,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// A request took longer than `timeout`.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// Something else (detail).
    Other(String),
}

/// The error and its causes, stepping into the error an `io::Error` wraps.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// Classifies a transport failure from its cause chain.
pub fn classify(err: &(dyn StdError + 'static)) -> Transport {
    let links = chain(err);
    let text: String = links
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    for e in &links {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return match tls {
                // Plain HTTP bytes ("HTTP/1.1 400") are not a TLS record type.
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    Transport::PlainHttp
                }
                rustls::Error::InvalidCertificate(_) => Transport::Certificate(tls.to_string()),
                other => Transport::Tls(other.to_string()),
            };
        }
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("invalidcontenttype") || lower.contains("record overflow") {
        return Transport::PlainHttp;
    }
    if lower.contains("invalid peer certificate") || lower.contains("unknownissuer") {
        return Transport::Certificate(text);
    }
    for e in &links {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Transport::Refused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => return Transport::Reset,
                io::ErrorKind::TimedOut => return Transport::Timeout,
                _ => {}
            }
        }
        if let Some(re) = e.downcast_ref::<reqwest::Error>()
            && re.is_timeout()
        {
            return if re.is_connect() {
                Transport::ConnectTimeout
            } else {
                Transport::Timeout
            };
        }
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        Transport::Dns
    } else if lower.contains("connection refused") {
        Transport::Refused
    } else if lower.contains("connection reset")
        || lower.contains("connection closed before message completed")
        || lower.contains("broken pipe")
        || lower.contains("incomplete")
    {
        Transport::Reset
    } else if lower.contains("timed out") || lower.contains("timeout") {
        Transport::Timeout
    } else if lower.contains("tls") || lower.contains("handshake") {
        Transport::Tls(text)
    } else {
        Transport::Other(text)
    }
}

/// The status oci-client dropped when it parsed an error envelope.
fn status_of(envelope: &OciEnvelope) -> u16 {
    match envelope.errors.first().map(|e| &e.code) {
        Some(
            OciErrorCode::BlobUnknown
            | OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::NotFound,
        ) => 404,
        Some(OciErrorCode::Unauthorized) => 401,
        Some(OciErrorCode::Denied) => 403,
        Some(OciErrorCode::Toomanyrequests) => 429,
        // distribution's code for "try again later" (its 503s): retried.
        Some(OciErrorCode::Other(code)) if code == "UNAVAILABLE" => 503,
        _ => 400,
    }
}

/// `CODE: message; CODE: message` from an error envelope.
fn envelope_text(envelope: &OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| {
            let code = serde_json::to_value(&e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", e.code));
            if e.message.is_empty() {
                code
            } else {
                format!("{code}: {}", e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A response body made readable: the envelope's codes and messages when it is one.
fn body_text(body: &str) -> String {
    match serde_json::from_str::<OciEnvelope>(body) {
        Ok(env) if !env.errors.is_empty() => envelope_text(&env),
        _ => body.trim().chars().take(300).collect(),
    }
}

impl Context {
    /// Removes the password from text that came from outside.
    pub fn redact(&self, text: &str) -> String {
        match &self.secret {
            Some(s) if !s.expose().is_empty() => text.replace(s.expose(), "***"),
            _ => text.to_string(),
        }
    }

    fn network(&self, message: String, temporary: bool) -> Error {
        Error::Network {
            registry: self.host.clone(),
            message,
            temporary,
        }
    }

    /// Maps an oci-client error on `what` (e.g. `manifest 10.0.0.5:5000/app:v1`).
    pub fn map(&self, err: OciDistributionError, what: &str) -> Error {
        match err {
            OciDistributionError::RequestError(re) => self.from_reqwest(&re, what),
            OciDistributionError::ServerError { code, message, .. } => {
                self.status(code, &message, what)
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                self.status(status_of(&envelope), &envelope_text(&envelope), what)
            }
            OciDistributionError::UnauthorizedError { .. } => self.status(401, "", what),
            OciDistributionError::AuthenticationFailure(reason) => {
                self.unauthorized(401, &self.redact(&body_text(&reason)))
            }
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => Error::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
            },
            OciDistributionError::IoError(io) => self.from_io(io, what),
            OciDistributionError::SpecViolationError(v) => self.network(
                format!(
                    "the registry broke the distribution protocol on {what}: {}",
                    self.redact(&v)
                ),
                false,
            ),
            other => self.network(
                format!("{what}: {}", self.redact(&other.to_string())),
                false,
            ),
        }
    }

    /// Maps a reqwest error: an HTTP status, or a transport failure.
    pub fn from_reqwest(&self, err: &reqwest::Error, what: &str) -> Error {
        if let Some(status) = err.status() {
            return self.status(status.as_u16(), "", what);
        }
        self.transport(classify(err), what)
    }

    /// Maps an I/O error met while streaming: ours (kept), a registry's, or bad content.
    pub fn from_io(&self, io: io::Error, what: &str) -> Error {
        if io.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = io.into_inner()
                && let Ok(ours) = inner.downcast::<Error>()
            {
                return *ours;
            }
            return Error::Internal(format!("{what}: lost error"));
        }
        // oci-client's own verifying stream reports a mismatch at the end of a blob.
        if let Some(DigestError::VerificationError { expected, actual }) =
            io.get_ref().and_then(|e| e.downcast_ref::<DigestError>())
        {
            return Error::DigestMismatch {
                what: what.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            };
        }
        if io.kind() == io::ErrorKind::InvalidData {
            // The verifying readers report digest and size mismatches this way.
            return Error::malformed(what.to_string(), self.redact(&io.to_string()));
        }
        self.transport(classify(&io), what)
    }

    /// The message for a transport failure on `what`.
    pub fn transport(&self, kind: Transport, what: &str) -> Error {
        let host = &self.host;
        match kind {
            Transport::Certificate(detail) if detail.contains("CaUsedAsEndEntity") => self.network(
                format!(
                    "the registry's certificate is a CA certificate used as a server certificate, \
                     which rustls refuses even when trusted (CaUsedAsEndEntity): issue the server \
                     certificate with `basicConstraints=critical,CA:FALSE` (openssl req -x509 … \
                     -addext basicConstraints=critical,CA:FALSE) and name it (or its CA) in \
                     `[registries.\"{host}\"] ca_file`, or set `insecure = true`"
                ),
                false,
            ),
            Transport::PlainHttp => self.plain_http(),
            Transport::Certificate(detail) => self.network(
                format!(
                    "the registry's TLS certificate is not trusted ({}): set \
                     `[registries.\"{host}\"] ca_file = \"/path/to/ca.pem\"` to trust its CA \
                     (or self-signed certificate), or `insecure = true` to skip verification",
                    self.redact(&detail)
                ),
                false,
            ),
            Transport::Tls(detail) => self.network(
                format!(
                    "{TLS_HANDSHAKE_FAILED} ({}): if the registry speaks plain HTTP, set \
                     `[registries.\"{host}\"] http = true`; for a private CA set `ca_file`",
                    self.redact(&detail)
                ),
                false,
            ),
            Transport::Refused => self.network(
                "nothing listens on this port: is the registry running, is the port right?".into(),
                false,
            ),
            Transport::Reset => self.network(
                format!("the connection broke during {what} (reset or closed early)"),
                true,
            ),
            Transport::ConnectTimeout => self.network(
                format!(
                    "could not connect within {} s (`[network] connect_timeout`): is the host \
                     reachable from this runner?",
                    self.connect_timeout
                ),
                true,
            ),
            Transport::Timeout => self.network(
                format!(
                    "{what}: no answer within {} s (`[network] timeout`)",
                    self.timeout
                ),
                true,
            ),
            Transport::Dns => self.network(
                "cannot resolve the host name: check the image reference".into(),
                false,
            ),
            Transport::Other(detail) => {
                self.network(format!("{what}: {}", self.redact(&detail)), false)
            }
        }
    }

    /// The registry answered plain HTTP to our HTTPS request. The registry
    /// works; the configuration does not say how to reach it: a usage error
    /// (exit 2), which CI must not retry.
    pub fn plain_http(&self) -> Error {
        let host = &self.host;
        Error::Config(format!(
            "{host}: the registry answered plain HTTP to an HTTPS request: set \
             `[registries.\"{host}\"] http = true` in archgate.toml (or the variable \
             ARCHGATE_REGISTRIES='{{\"{host}\"={{http=true}}}}')"
        ))
    }

    /// Maps an HTTP status (with the registry's body, possibly empty) on `what`.
    pub fn status(&self, status: u16, body: &str, what: &str) -> Error {
        let text = self.redact(&body_text(body));
        match status {
            401 | 403 => self.unauthorized(status, &text),
            404 => Error::NotFound {
                what: what.to_string(),
                hint: None,
            },
            400 if text.starts_with("DIGEST_INVALID") || text.starts_with("SIZE_INVALID") => {
                // The registry hashed what we sent and refused it: the content is wrong.
                Error::malformed(
                    what,
                    format!("digest mismatch: the registry refused the upload ({text})"),
                )
            }
            400 if self.http && body.contains(HTTP_TO_HTTPS_SERVER) => {
                // The mirror image of `plain_http`: the configuration is wrong (exit 2).
                let host = &self.host;
                Error::Config(format!(
                    "{host}: the registry speaks HTTPS, but `[registries.\"{host}\"] http = true` \
                     sends plain HTTP: remove `http = true`"
                ))
            }
            _ => Error::Registry {
                registry: self.host.clone(),
                status,
                what: what.to_string(),
                body: text,
            },
        }
    }

    /// 401 (credentials refused or missing) or 403 (not allowed).
    pub fn unauthorized(&self, status: u16, detail: &str) -> Error {
        let host = &self.host;
        let ways = format!(
            "`[registries.\"{host}\"] username/password`, `docker login {host}`, or CI_REGISTRY_PASSWORD"
        );
        let said = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        let message = match (&self.user, status) {
            (Some((user, source)), 403) => format!(
                "the registry denied `{user}` (credentials from {source}) access (HTTP 403){said}: \
                 the account lacks pull/push permission on this repository"
            ),
            (Some((user, source)), _) => format!(
                "the registry rejected the credentials for `{user}` from {source} (HTTP {status}){said}: check {ways}"
            ),
            (None, _) => format!(
                "the registry requires credentials and none were found (HTTP {status}){said}: set {ways}"
            ),
        };
        Error::Unauthorized {
            registry: host.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            host: "10.0.0.5:5000".into(),
            user: Some(("ci".into(), "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD".into())),
            secret: Some(Secret::new("hunter2")),
            http: false,
            timeout: 300,
            connect_timeout: 10,
        }
    }

    #[test]
    fn classifies_io_chains() {
        let wrapped = |kind| io::Error::other(io::Error::new(kind, "x"));
        for (err, want) in [
            (
                wrapped(io::ErrorKind::ConnectionRefused),
                Transport::Refused,
            ),
            (wrapped(io::ErrorKind::ConnectionReset), Transport::Reset),
            (wrapped(io::ErrorKind::TimedOut), Transport::Timeout),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                ),
                Transport::PlainHttp,
            ),
        ] {
            assert_eq!(classify(&err), want, "{err}");
        }
        let cert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(classify(&cert), Transport::Certificate(_)));
    }

    #[test]
    fn statuses_and_retry_decisions() {
        let c = ctx();
        let cases: [(u16, &str, &str, bool); 6] = [
            (
                401,
                "",
                "rejected the credentials for `ci` from CI_REGISTRY_USER",
                false,
            ),
            (403, "", "denied `ci`", false),
            (404, "", "manifest x not found", false),
            (429, "", "HTTP 429 for manifest x", true),
            (503, "", "HTTP 503 for manifest x", true),
            (
                400,
                r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{}}]}"#,
                "HTTP 400 for manifest x: MANIFEST_INVALID: manifest invalid",
                false,
            ),
        ];
        for (status, body, want, temporary) in cases {
            let e = c.status(status, body, "manifest x");
            assert!(e.to_string().contains(want), "{status}: {e}");
            assert_eq!(e.is_temporary(), temporary, "{status}");
        }
    }

    #[test]
    fn never_echoes_the_password() {
        let c = ctx();
        let e = c.status(500, "db error: password hunter2 refused", "blob y");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = c.map(
            OciDistributionError::AuthenticationFailure("bad hunter2".into()),
            "auth",
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn maps_envelopes_to_their_status() {
        let envelope: OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        let e = ctx().map(
            OciDistributionError::RegistryError {
                envelope,
                url: "u".into(),
            },
            "tag `v9` in 10.0.0.5:5000/app",
        );
        assert!(matches!(e, Error::NotFound { .. }), "{e}");

        // A 4xx envelope loses its status in oci-client: the code decides retries.
        for (code, temporary) in [
            ("TOOMANYREQUESTS", true),
            ("UNAVAILABLE", true),
            ("DENIED", false),
            ("MANIFEST_INVALID", false),
        ] {
            let envelope: OciEnvelope =
                serde_json::from_str(&format!(r#"{{"errors":[{{"code":"{code}"}}]}}"#)).unwrap();
            let e = ctx().map(
                OciDistributionError::RegistryError {
                    envelope,
                    url: "u".into(),
                },
                "manifest",
            );
            assert_eq!(e.is_temporary(), temporary, "{code}: {e}");
        }
    }

    #[test]
    fn certificate_messages() {
        let c = ctx();
        let e = c.transport(
            Transport::Certificate("invalid peer certificate: UnknownIssuer".into()),
            "x",
        );
        assert!(
            e.to_string()
                .contains("set `[registries.\"10.0.0.5:5000\"] ca_file = "),
            "{e}"
        );
        let e = c.transport(
            Transport::Certificate("Other(OtherError(CaUsedAsEndEntity))".into()),
            "x",
        );
        assert!(e.to_string().contains("CA:FALSE"), "{e}");
    }

    #[test]
    fn keeps_our_own_errors_through_io() {
        let ours = Error::DigestMismatch {
            what: "blob".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        let io = io::Error::other(ours);
        assert!(matches!(
            ctx().from_io(io, "blob"),
            Error::DigestMismatch { .. }
        ));
        let theirs = io::Error::other(DigestError::VerificationError {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert!(matches!(
            ctx().from_io(theirs, "blob"),
            Error::DigestMismatch { .. }
        ));
    }
}
