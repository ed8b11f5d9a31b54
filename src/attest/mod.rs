//! Signed verdicts that travel with the digest: after the gate, `run` and
//! `verify` sign an in-toto test-result statement about the verified index
//! and its platform manifests ([`statement`]) into a DSSE envelope ([`dsse`])
//! and attach it to the index digest as an OCI 1.1 referrer ([`referrers`]:
//! the referrers API where there is one, the fallback tag `sha256-<hex>`
//! everywhere, an OCI layout included). `archgate attestations` lists what is
//! attached and `archgate promote` tags only what a signed `PASSED` covers.

pub mod dsse;
pub mod promote;
// The referrers schema over a store lives in `store`: mirror and publish carry referrers too.
pub use crate::store::referrers;
pub mod statement;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::config::{Loaded, Settings};
use crate::error::{Error, Result};
use crate::gate::Verdict;
use crate::image::manifest::Referrer;
use crate::image::{Descriptor, Digest, Location, Selector};
use crate::store::Store;
use crate::verify::Verification;

pub use dsse::{PublicKey, Signer};
pub use statement::Statement;

/// The attestation artifact's `artifactType` (and the DSSE payload type).
pub const ARTIFACT_TYPE: &str = dsse::PAYLOAD_TYPE;
/// The media type of the layer holding the DSSE envelope.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The envelope layer's annotation naming the predicate type (as cosign's layers do).
pub const PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The artifact manifest's annotation with the statement's result (unsigned, informational).
pub const RESULT_ANNOTATION: &str = "dev.archgate.attestation.result";
/// The largest envelope read.
const MAX_ENVELOPE: u64 = 4 << 20;

/// The signing key of `[attest] key`, read once before anything runs;
/// `None` when unset. Errors name the setting and where it was set, never
/// the path or the key.
pub fn signer(loaded: &Loaded) -> Result<Option<Signer>> {
    let Some(key) = &loaded.settings.attest.key else {
        return Ok(None);
    };
    let origin = loaded
        .origins
        .get(&vec!["attest".to_string(), "key".to_string()])
        .map_or("the configuration", String::as_str);
    let fail = |why: String| Error::Config(format!("[attest] key (set by {origin}): {why}"));
    if key.is_empty() {
        return Err(fail(
            "empty; name a PKCS#8 PEM ECDSA P-256 private key file".into(),
        ));
    }
    let pem = std::fs::read(key.expose())
        .map_err(|e| fail(format!("cannot read the signing key file: {e}")))?;
    Signer::from_pem(&pem).map(Some).map_err(fail)
}

/// A public key file (`--key PUB.pem`); errors name the file.
pub fn public_key(path: &std::path::Path) -> Result<PublicKey> {
    let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    PublicKey::from_pem(&pem).map_err(|e| Error::Invalid(format!("--key {}: {e}", path.display())))
}

/// The effective configuration's digest, secrets as `***` (as `archgate config --json` shows them).
pub fn config_digest(settings: &Settings) -> Digest {
    Digest::of(&serde_json::to_vec(settings).unwrap_or_default())
}

/// What was attached.
#[derive(Debug, Clone, Serialize)]
pub struct Attested {
    /// The attestation manifest's digest.
    pub digest: Digest,
    /// The index digest it is attached to.
    pub subject: Digest,
    /// `PASSED` or `FAILED`.
    pub result: String,
    /// The signing key's fingerprint (`sha256:` of its SubjectPublicKeyInfo DER).
    pub key: Digest,
    /// Where: the store, and the fallback tag listing it.
    pub location: String,
    pub fallback_tag: String,
}

/// Signs the verdict on `v` and attaches it to the index digest in the store
/// `v.pinned` names. `Ok(None)` when there is no verdict to sign (the image
/// could not be judged).
pub async fn attach(
    settings: &Settings,
    signer: &Signer,
    v: &Verification,
    verdict: &Verdict,
) -> Result<Option<Attested>> {
    let config = config_digest(settings);
    let Some(statement) = statement::build(v, verdict, &config, settings.ci.job_url.as_deref())
    else {
        return Ok(None);
    };
    let location = Location::parse(&v.pinned)?;
    if !location.holds_referrers() {
        return Err(Error::Invalid(format!(
            "{}: a docker-archive: holds one image and no referrers, so it cannot carry the attestation `[attest] key` asks for; verify a registry image or an oci:/oci-archive: layout",
            v.image
        )));
    }
    let store = crate::store::open(&location, settings, true).await?;
    let subject = store
        .get_manifest(&Selector::Digest(v.index_digest.clone()))
        .await?
        .descriptor();
    let payload = serde_json::to_vec(&statement).map_err(|e| Error::Internal(e.to_string()))?;
    let envelope = signer
        .envelope(dsse::PAYLOAD_TYPE, &payload)
        .map_err(Error::Internal)?;
    let envelope_bytes =
        Bytes::from(serde_json::to_vec(&envelope).map_err(|e| Error::Internal(e.to_string()))?);
    let layer = Descriptor {
        media_type: ENVELOPE_MEDIA_TYPE.into(),
        digest: Digest::of(&envelope_bytes),
        size: envelope_bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::from([(
            PREDICATE_ANNOTATION.to_string(),
            statement::PREDICATE_TYPE.to_string(),
        )]),
        urls: Vec::new(),
    };
    let annotations = BTreeMap::from([(
        RESULT_ANNOTATION.to_string(),
        statement.predicate.result.clone(),
    )]);
    let manifest = referrers::artifact_manifest(ARTIFACT_TYPE, &layer, &subject, &annotations)?;
    let entry = referrers::attach(
        store.as_ref(),
        &subject.digest,
        &manifest,
        &layer,
        envelope_bytes,
    )
    .await?;
    store.commit().await?;
    tracing::info!(attestation = %entry.digest, subject = %subject.digest, "attached the signed verdict");
    Ok(Some(Attested {
        digest: entry.digest,
        subject: subject.digest.clone(),
        result: statement.predicate.result,
        key: signer.public().fingerprint(),
        location: store.name(),
        fallback_tag: referrers::fallback_tag(&subject.digest),
    }))
}

/// The line `run` and `verify` print after attaching.
pub fn render_attached(a: &Attested) -> String {
    format!(
        "attestation: {} ({}) attached to {} in {} (fallback tag {}), signed by key {}\n",
        a.digest, a.result, a.subject, a.location, a.fallback_tag, a.key
    )
}

/// One thing attached to a digest, read and (with a key) checked.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The referring manifest's digest.
    pub digest: Digest,
    pub artifact_type: Option<String>,
    /// With a key: whether the envelope's signature verifies under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The statement's `predicate.result`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `NAME sha256:…` per subject.
    pub subjects: Vec<String>,
    /// Why it could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    pub statement: Option<Statement>,
}

/// Everything attached to `subject` in `store`, each in-toto attestation read
/// and, with `key`, its signature checked.
pub async fn inspect(
    store: &dyn Store,
    subject: &Digest,
    key: Option<&PublicKey>,
) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for r in referrers::list(store, subject).await? {
        out.push(read_one(store, subject, &r, key).await?);
    }
    Ok(out)
}

async fn read_one(
    store: &dyn Store,
    subject: &Digest,
    r: &Referrer,
    key: Option<&PublicKey>,
) -> Result<Found> {
    let mut found = Found {
        digest: r.digest.clone(),
        artifact_type: r.artifact_type.clone(),
        verified: None,
        predicate_type: None,
        result: None,
        subjects: Vec::new(),
        problem: None,
        statement: None,
    };
    if r.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Ok(found);
    }
    match read_envelope(store, subject, &r.digest).await {
        Ok(Ok(envelope)) => {
            found.verified = key.map(|k| envelope.verified_by(k));
            let statement = envelope.payload_bytes().and_then(|p| Statement::parse(&p));
            match statement {
                Ok(s) => {
                    found.predicate_type = Some(s.predicate_type.clone());
                    found.result = Some(s.predicate.result.clone());
                    found.subjects = s
                        .subject
                        .iter()
                        .map(|r| {
                            let d: Vec<String> =
                                r.digest.iter().map(|(a, h)| format!("{a}:{h}")).collect();
                            format!("{} {}", r.name, d.join(","))
                        })
                        .collect();
                    found.statement = Some(s);
                }
                Err(e) => found.problem = Some(e),
            }
        }
        Ok(Err(problem)) => found.problem = Some(problem),
        Err(e) => return Err(e),
    }
    Ok(found)
}

/// The DSSE envelope of attestation manifest `digest`: `Ok(Err(why))` when
/// the content is wrong (a problem of that attestation), `Err` when the store failed.
async fn read_envelope(
    store: &dyn Store,
    subject: &Digest,
    digest: &Digest,
) -> Result<std::result::Result<dsse::Envelope, String>> {
    let manifest = match store.get_manifest(&Selector::Digest(digest.clone())).await {
        Ok(m) => m,
        Err(e @ (Error::Network { .. } | Error::Registry { .. } | Error::Io { .. })) => {
            return Err(e);
        }
        Err(e) => return Ok(Err(e.to_string())),
    };
    let doc: serde_json::Value = match serde_json::from_slice(&manifest.bytes) {
        Ok(d) => d,
        Err(e) => return Ok(Err(format!("manifest is not JSON: {e}"))),
    };
    let points_at = doc
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(|d| d.as_str());
    if points_at != Some(subject.as_str()) {
        return Ok(Err(format!(
            "its subject is {}, not {subject}",
            points_at.unwrap_or("missing")
        )));
    }
    let layer = doc
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .find(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some(ENVELOPE_MEDIA_TYPE))
        .and_then(|l| serde_json::from_value::<Descriptor>(l.clone()).ok());
    let Some(layer) = layer else {
        return Ok(Err(format!("no {ENVELOPE_MEDIA_TYPE} layer")));
    };
    if layer.size > MAX_ENVELOPE {
        return Ok(Err(format!(
            "envelope of {} bytes is too large",
            layer.size
        )));
    }
    let mut bytes = Vec::new();
    let read = async {
        let mut reader = store.get_blob(&layer.digest, Some(layer.size)).await?;
        reader
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Error::io(format!("envelope {}", layer.digest), e))
    };
    if let Err(e) = read.await {
        return match e {
            Error::Network { .. } | Error::Registry { .. } => Err(e),
            other => Ok(Err(format!("envelope blob: {other}"))),
        };
    }
    match serde_json::from_slice::<dsse::Envelope>(&bytes) {
        Ok(env) if env.payload_type == dsse::PAYLOAD_TYPE => Ok(Ok(env)),
        Ok(env) => Ok(Err(format!("payload type `{}`", env.payload_type))),
        Err(e) => Ok(Err(format!("not a DSSE envelope: {e}"))),
    }
}

/// Renders `archgate attestations`' table.
pub fn render_text(image: &str, subject: &Digest, found: &[Found]) -> String {
    let mut out = format!("{image}\n  digest {subject}\n");
    if found.is_empty() {
        out.push_str("  nothing attached\n");
    }
    for f in found {
        let signature = match f.verified {
            Some(true) => "signature verified",
            Some(false) => "signature NOT verified under the key",
            None => "signature not checked (no --key)",
        };
        out.push_str(&format!(
            "  {} {}\n",
            f.digest,
            f.artifact_type.as_deref().unwrap_or("(no artifactType)")
        ));
        if let Some(p) = &f.problem {
            out.push_str(&format!("    unreadable: {p}\n"));
            continue;
        }
        if f.statement.is_some() {
            out.push_str(&format!(
                "    {signature}; result {}; predicate {}\n",
                f.result.as_deref().unwrap_or("?"),
                f.predicate_type.as_deref().unwrap_or("?")
            ));
            for s in &f.subjects {
                out.push_str(&format!("    subject {s}\n"));
            }
        }
    }
    out
}
