//! Content digests (`sha256:<hex>`) and a reader that verifies one while streaming.
//!
//! A digest is the sha256 of the exact bytes stored; nothing here ever
//! re-serialises content. Only sha256 is supported, as in distribution 2.8.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::{Error, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; anything else is an error naming the input.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(Error::Invalid(format!(
                "invalid digest `{s}`: expected `sha256:` followed by 64 hex digits"
            )));
        };
        if algo != "sha256" {
            return Err(Error::Invalid(format!(
                "unsupported digest algorithm `{algo}` in `{s}`: archgate supports sha256 only"
            )));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Invalid(format!(
                "invalid digest `{s}`: expected `sha256:` followed by 64 lowercase hex digits"
            )));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, which is also the blob's file name in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The algorithm (always `sha256`).
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// Errors unless `bytes` hash to this digest; `what` names the content.
    pub fn verify(&self, bytes: &[u8], what: &str) -> Result<()> {
        let actual = Digest::of(bytes);
        if &actual == self {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: self.0.clone(),
                actual: actual.0,
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Digest::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// An incremental sha256 with a byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.sha.finalize())))
    }
}

/// A writer that hashes what passes through (layers as written, files as unpacked).
pub struct HashWriter<W> {
    pub inner: W,
    pub hasher: Hasher,
}

impl<W: std::io::Write> std::io::Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Wraps a reader of blob bytes; at end of stream it fails with
/// `InvalidData` unless the bytes had the expected digest (and size, when known).
/// Callers write to a temporary file and rename only after a clean EOF.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    what: String,
}

impl<R> VerifyingReader<R> {
    pub fn new(
        inner: R,
        expected: Digest,
        expected_size: Option<u64>,
        what: impl Into<String>,
    ) -> Self {
        Self {
            inner,
            hasher: Some(Hasher::new()),
            expected,
            expected_size,
            what: what.into(),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                let Some(hasher) = this.hasher.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                if !new.is_empty() {
                    hasher.update(new);
                    if let Some(max) = this.expected_size
                        && hasher.len() > max
                    {
                        // An error means "nothing read": take the bytes back.
                        buf.set_filled(before);
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "{} is larger than its declared size of {max} bytes",
                                this.what
                            ),
                        )));
                    }
                    return Poll::Ready(Ok(()));
                }
                // EOF: check size and digest exactly once.
                let hasher = this.hasher.take().expect("checked above");
                let len = hasher.len();
                let actual = hasher.finish();
                if let Some(size) = this.expected_size
                    && len != size
                {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is {len} bytes, its descriptor says {size}", this.what),
                    )));
                }
                if actual != this.expected {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "digest mismatch for {}: expected {}, got {actual}",
                            this.what, this.expected
                        ),
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            "md5:00",
            "sha256:ZZ",
            &d.as_str().to_uppercase(),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(
            Digest::parse(&format!("sha512:{}", "0".repeat(128)))
                .unwrap_err()
                .to_string()
                .contains("sha256 only")
        );
    }

    #[tokio::test]
    async fn verifying_reader_detects_tampering() {
        let good = Digest::of(b"layer bytes");
        let mut out = Vec::new();
        VerifyingReader::new(&b"layer bytes"[..], good.clone(), Some(11), "blob")
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, b"layer bytes");

        let err = VerifyingReader::new(&b"layer bytez"[..], good.clone(), None, "blob x")
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("digest mismatch for blob x"),
            "{err}"
        );

        let err = VerifyingReader::new(&b"layer bytes and more"[..], good, Some(11), "blob y")
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("declared size"), "{err}");
    }
}
