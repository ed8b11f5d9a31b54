//! OCI 1.1 referrers over any [`Store`]: the artifact manifest that points at
//! a subject, and the referrers tag schema's fallback tag `sha256-<hex>` (an
//! OCI index of the referring manifests), which registries without the
//! referrers API (distribution 2.8, GitLab's) and OCI layouts keep.
//!
//! The fallback tag is written only when the registry's referrers API does
//! not list the manifest once pushed. It is read-modify-write without
//! compare-and-swap (registries offer none for manifests): after writing, a
//! writer waits for other writers' stale writes to land, reads again and
//! re-adds its entry until a read after that wait shows it, so two jobs
//! attaching at once both remain.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::image::manifest::Referrer;
use crate::image::{Descriptor, Digest, RawManifest, Selector, media};
use crate::store::{BlobFrom, Store, put_blob_from};

/// The OCI empty descriptor's media type and content (`{}`).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONTENT: &[u8] = b"{}";
/// Tries of the fallback tag's read-modify-write.
const TRIES: usize = 8;
/// How long a writer waits for a concurrent writer's stale write to land
/// before it reads the fallback tag again (network stores only).
const SETTLE: Duration = Duration::from_millis(400);

/// The fallback tag of `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// Whether `tag` is a referrers fallback tag (not an image's tag).
pub fn is_fallback_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An artifact manifest (OCI image manifest, `artifactType`, the empty config)
/// with one layer, pointing at `subject`.
pub fn artifact_manifest(
    artifact_type: &str,
    layer: &Descriptor,
    subject: &Descriptor,
    annotations: &BTreeMap<String, String>,
) -> Result<RawManifest> {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_descriptor(),
        "layers": [layer],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
    });
    if !annotations.is_empty() {
        doc["annotations"] = json!(annotations);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    RawManifest::from_bytes(
        Bytes::from(bytes),
        Some(media::OCI_MANIFEST),
        "attestation manifest",
    )
}

/// The OCI empty descriptor (`{}`, with its data inline).
pub fn empty_descriptor() -> Value {
    json!({
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": Digest::of(EMPTY_CONTENT),
        "size": EMPTY_CONTENT.len(),
        "data": "e30=",
    })
}

/// Pushes `layer_bytes` and the empty config, then `manifest` by digest, and
/// lists it in `subject`'s fallback tag. Returns the entry written.
pub async fn attach(
    store: &dyn Store,
    subject: &Digest,
    manifest: &RawManifest,
    layer: &Descriptor,
    layer_bytes: Bytes,
) -> Result<Referrer> {
    let empty = Descriptor {
        media_type: EMPTY_MEDIA_TYPE.into(),
        digest: Digest::of(EMPTY_CONTENT),
        size: EMPTY_CONTENT.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
        urls: Vec::new(),
    };
    put_blob_from(
        &BlobFrom::Bytes(Bytes::from_static(EMPTY_CONTENT)),
        store,
        &empty,
    )
    .await?;
    put_blob_from(&BlobFrom::Bytes(layer_bytes), store, layer).await?;
    store.put_manifest(manifest, None).await?;
    let entry = referrer_of(manifest)?;
    add(store, subject, &entry).await?;
    Ok(entry)
}

/// The referrers-list entry of a referring manifest: its descriptor, its
/// `artifactType` (else its config's media type, as the spec says) and annotations.
pub fn referrer_of(manifest: &RawManifest) -> Result<Referrer> {
    let doc: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::malformed(format!("manifest {}", manifest.digest), e.to_string()))?;
    let artifact_type = doc
        .get("artifactType")
        .or_else(|| doc.get("config").and_then(|c| c.get("mediaType")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let annotations = doc
        .get("annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    Ok(Referrer {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.clone(),
        size: manifest.bytes.len() as u64,
        artifact_type,
        annotations,
    })
}

/// Adds `entry` to the fallback index of `subject` (read-modify-write, re-read, retry).
pub async fn add(store: &dyn Store, subject: &Digest, entry: &Referrer) -> Result<()> {
    // A registry with the referrers API lists the manifest by its `subject`
    // as soon as it is pushed (or an earlier run already listed it): no
    // fallback tag to maintain. Distribution 2.8 answers the API with 404.
    if store
        .referrers(subject)
        .await?
        .is_some_and(|list| list.iter().any(|r| r.digest == entry.digest))
    {
        return Ok(());
    }
    let tag = fallback_tag(subject);
    let networked = store.network().is_some();
    for _ in 0..TRIES {
        let mut doc = read_index(store, subject)
            .await?
            .unwrap_or_else(empty_index);
        // Present: written by us (and still there after the wait), or by
        // someone attaching the very same manifest.
        if contains(&doc, &entry.digest) {
            return Ok(());
        }
        if let Some(Value::Array(list)) = doc.get_mut("manifests") {
            list.push(serde_json::to_value(entry).map_err(|e| Error::Internal(e.to_string()))?);
        }
        let bytes = serde_json::to_vec(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        let raw = RawManifest::from_bytes(
            Bytes::from(bytes),
            Some(media::OCI_INDEX),
            &format!("referrers index {tag}"),
        )?;
        store.put_manifest(&raw, Some(&tag)).await?;
        if !networked {
            return Ok(());
        }
        // Let a concurrent writer's stale write land, then look again.
        tokio::time::sleep(SETTLE + Duration::from_millis(rand::random::<u64>() % 300)).await;
    }
    Err(Error::Network {
        registry: store.name(),
        message: format!(
            "the referrers fallback tag {tag} kept losing the attestation {} to concurrent writers ({TRIES} tries)",
            entry.digest
        ),
        temporary: true,
    })
}

fn empty_index() -> Value {
    json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []})
}

fn contains(doc: &Value, digest: &Digest) -> bool {
    doc.get("manifests")
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
        })
}

/// The fallback index of `subject` as JSON, `None` when there is none. A
/// registry that resolves `sha256-<hex>` as the digest itself (oras-go#1396)
/// returns the subject: that is no referrers index.
pub async fn read_index(store: &dyn Store, subject: &Digest) -> Result<Option<Value>> {
    let tag = fallback_tag(subject);
    let Some(found) = store.find_manifest(&Selector::Tag(tag.clone())).await? else {
        return Ok(None);
    };
    if &found.digest == subject {
        tracing::warn!(store = %store.name(), "{tag} resolves to the subject itself (the registry treats it as a digest): no referrers index there");
        return Ok(None);
    }
    let what = format!("referrers fallback tag {tag} in {}", store.name());
    if found.media_type != media::OCI_INDEX {
        return Err(Error::malformed(
            what,
            format!("is a {}, not an OCI image index", found.media_type),
        ));
    }
    let doc: Value =
        serde_json::from_slice(&found.bytes).map_err(|e| Error::malformed(&what, e.to_string()))?;
    Ok(Some(doc))
}

/// What refers to `subject`: the store's referrers API (when it has one)
/// and the fallback tag, without repeats. Entries without an `artifactType`
/// are not referrers (a registry that answered with the subject's own index).
pub async fn list(store: &dyn Store, subject: &Digest) -> Result<Vec<Referrer>> {
    let mut out: Vec<Referrer> = store.referrers(subject).await?.unwrap_or_default();
    if let Some(doc) = read_index(store, subject).await? {
        for e in doc
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Ok(r) = serde_json::from_value::<Referrer>(e.clone()) {
                out.push(r);
            }
        }
    }
    let mut seen = Vec::new();
    out.retain(|r| {
        let keep = r.artifact_type.is_some() && !seen.contains(&r.digest);
        seen.push(r.digest.clone());
        keep
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags() {
        let d = Digest::of(b"x");
        let tag = fallback_tag(&d);
        assert_eq!(tag, format!("sha256-{}", d.hex()));
        assert!(is_fallback_tag(&tag));
        assert!(!is_fallback_tag("v1") && !is_fallback_tag("sha256-abc"));
    }

    #[test]
    fn the_empty_descriptor_is_the_specs() {
        let e = empty_descriptor();
        assert_eq!(
            e["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(e["size"], 2);
    }
}
