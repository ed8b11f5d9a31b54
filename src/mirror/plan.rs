//! The pure part of `mirror`: which entries of a source index to keep for the
//! requested platforms, and the filtered index's bytes. No I/O.
//!
//! Rules:
//! - no platforms requested: the index is kept byte for byte (same digest);
//! - platforms requested: every requested platform must be in the index (else an
//!   error before anything is written); entries of other platforms are dropped;
//! - attestation entries (`unknown/unknown`, `vnd.docker.reference.type`) are kept
//!   only when they name (`vnd.docker.reference.digest`) a manifest that is kept;
//!   one naming nothing is dropped with any filter, since it cannot be told apart;
//! - when every entry survives, the original bytes are kept; otherwise the new index
//!   is the source document with only its `manifests` array shortened (every other
//!   field and every entry's fields as they were), so per-platform manifests keep
//!   their digests and only the index digest changes.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::image::manifest::REFERENCE_DIGEST_ANNOTATION;
use crate::image::{Descriptor, Digest, RawManifest};
use crate::platform::Platform;

/// One entry of the source index and what it is.
#[derive(Debug, Clone)]
pub struct Entry {
    pub descriptor: Descriptor,
    /// `None` for an attestation.
    pub platform: Option<Platform>,
}

/// The entries to copy and the index to write.
#[derive(Debug, Clone)]
pub struct Filtered {
    /// Kept image entries, in index order.
    pub images: Vec<Entry>,
    /// Kept attestation entries.
    pub attestations: Vec<Descriptor>,
    /// The index to write (the source's own bytes when nothing was dropped).
    pub index: RawManifest,
    /// Whether entries were dropped (the index digest differs from the source's).
    pub filtered: bool,
}

/// Classifies the entries of an index.
pub fn entries(index: &crate::image::Index) -> Vec<Entry> {
    index
        .manifests
        .iter()
        .map(|d| Entry {
            descriptor: d.clone(),
            platform: (!d.is_attestation()).then(|| d.claimed_platform()),
        })
        .collect()
}

/// Keeps the entries for `requested` (`None`: all) and, with
/// `keep_attestations`, the attestations of the kept images; `source` names
/// the image in errors.
pub fn filter(
    source_index: &RawManifest,
    requested: Option<&[Platform]>,
    keep_attestations: bool,
    source: &str,
) -> Result<Filtered> {
    let index = source_index.index(source)?;
    let all = entries(&index);
    let images: Vec<Entry> = all
        .iter()
        .filter(|e| e.platform.is_some())
        .cloned()
        .collect();
    let Some(requested) = requested else {
        let attestations: Vec<Descriptor> = all
            .iter()
            .filter(|e| keep_attestations && e.platform.is_none())
            .map(|e| e.descriptor.clone())
            .collect();
        return shortened(source_index, images, attestations, all.len(), source);
    };
    let has = |p: &Platform| {
        images
            .iter()
            .any(|e| e.platform.as_ref().is_some_and(|q| q.matches(p)))
    };
    let missing: Vec<String> = requested
        .iter()
        .filter(|p| !has(p))
        .map(|p| p.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(missing_platforms(source, &missing, &images));
    }
    let kept_images: Vec<Entry> = images
        .into_iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| requested.iter().any(|r| r.matches(p)))
        })
        .collect();
    let kept_digests: Vec<&Digest> = kept_images.iter().map(|e| &e.descriptor.digest).collect();
    let keep_attestation = |d: &Descriptor| {
        d.annotations
            .get(REFERENCE_DIGEST_ANNOTATION)
            .is_some_and(|r| kept_digests.iter().any(|k| k.as_str() == r))
    };
    let attestations: Vec<Descriptor> = all
        .iter()
        .filter(|e| keep_attestations && e.platform.is_none() && keep_attestation(&e.descriptor))
        .map(|e| e.descriptor.clone())
        .collect();
    shortened(source_index, kept_images, attestations, all.len(), source)
}

/// The filtered result: the source's own index when every one of its `all`
/// entries is kept, else the index shortened to the kept ones.
fn shortened(
    source_index: &RawManifest,
    kept_images: Vec<Entry>,
    attestations: Vec<Descriptor>,
    all: usize,
    source: &str,
) -> Result<Filtered> {
    if kept_images.len() + attestations.len() == all {
        return Ok(Filtered {
            images: kept_images,
            attestations,
            index: source_index.clone(),
            filtered: false,
        });
    }
    let keep: Vec<&Digest> = kept_images
        .iter()
        .map(|e| &e.descriptor.digest)
        .chain(attestations.iter().map(|d| &d.digest))
        .collect();
    let bytes = shorten(&source_index.bytes, &keep, source)?;
    let index = RawManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: source_index.media_type.clone(),
    };
    Ok(Filtered {
        images: kept_images,
        attestations,
        index,
        filtered: true,
    })
}

/// The error for platforms a source lacks: exit 1, the image is not what was asked for.
pub fn missing_platforms(source: &str, missing: &[String], images: &[Entry]) -> Error {
    let have: Vec<String> = images
        .iter()
        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
        .collect();
    Error::malformed(
        source,
        format!(
            "has no {} image (it has {}); nothing was written: mirror only platforms the source has (--platform or [[mirror]] platforms)",
            missing.join(", "),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        ),
    )
}

/// The index document with only the `manifests` entries whose digest is in `keep`.
fn shorten(bytes: &[u8], keep: &[&Digest], source: &str) -> Result<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| Error::malformed(source, e))?;
    let Some(Value::Array(manifests)) = doc.get_mut("manifests") else {
        return Err(Error::malformed(
            source,
            "the index has no `manifests` array",
        ));
    };
    manifests.retain(|m| {
        m.get("digest")
            .and_then(Value::as_str)
            .is_some_and(|d| keep.iter().any(|k| k.as_str() == d))
    });
    serde_json::to_vec(&doc).map_err(|e| Error::Internal(format!("cannot encode the index: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media;
    use crate::platform;
    use serde_json::json;

    fn index(extra_attestation_for: Option<usize>) -> RawManifest {
        let d = |s: &str| Digest::of(s.as_bytes()).to_string();
        let mut manifests = vec![
            json!({"mediaType": media::OCI_MANIFEST, "digest": d("a"), "size": 1,
                   "platform": {"os": "linux", "architecture": "amd64"}, "annotations": {"keep": "me"}}),
            json!({"mediaType": media::OCI_MANIFEST, "digest": d("b"), "size": 1,
                   "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}),
            json!({"mediaType": media::OCI_MANIFEST, "digest": d("c"), "size": 1,
                   "platform": {"os": "linux", "architecture": "mips64le"}}),
        ];
        if let Some(i) = extra_attestation_for {
            let target = ["a", "b", "c"][i];
            manifests.push(
                json!({"mediaType": media::OCI_MANIFEST, "digest": d("att"), "size": 1,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": d(target)}}),
            );
        }
        let bytes = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "annotations": {"org.example": "x"}, "manifests": manifests}))
        .unwrap();
        RawManifest::from_bytes(bytes.into(), None, "test").unwrap()
    }

    fn platforms(list: &str) -> Vec<Platform> {
        platform::parse_list(list).unwrap()
    }

    #[test]
    fn no_filter_keeps_the_bytes() {
        let src = index(Some(0));
        let f = filter(&src, None, true, "src").unwrap();
        assert!(!f.filtered);
        assert_eq!(f.index.bytes, src.bytes);
        assert_eq!(f.images.len(), 3);
        assert_eq!(f.attestations.len(), 1);
        // every platform requested (in other spellings): still the same bytes
        let all = platforms("linux/mips64el,linux/aarch64,linux/x86_64");
        let f = filter(&src, Some(&all), true, "src").unwrap();
        assert!(!f.filtered);
        assert_eq!(f.index.digest, src.digest);
    }

    #[test]
    fn filter_drops_entries_and_keeps_everything_else() {
        let src = index(Some(2));
        let f = filter(
            &src,
            Some(&platforms("linux/amd64,linux/arm64")),
            true,
            "src",
        )
        .unwrap();
        assert!(f.filtered);
        assert_ne!(f.index.digest, src.digest);
        assert_eq!(f.index.digest, Digest::of(&f.index.bytes));
        assert_eq!(f.index.media_type, media::OCI_INDEX);
        let parsed = f.index.index("x").unwrap();
        assert_eq!(
            parsed.manifests.len(),
            2,
            "mips64le and its attestation dropped"
        );
        assert_eq!(parsed.manifests[0].annotations["keep"], "me");
        assert_eq!(
            parsed.manifests[1]
                .platform
                .as_ref()
                .unwrap()
                .variant
                .as_deref(),
            Some("v8")
        );
        assert_eq!(parsed.annotations["org.example"], "x");
        let src_index = src.index("x").unwrap();
        assert_eq!(parsed.manifests[..], src_index.manifests[..2]);
        assert!(f.attestations.is_empty());
    }

    #[test]
    fn attestation_follows_its_image() {
        let src = index(Some(1));
        let f = filter(&src, Some(&platforms("linux/arm64")), true, "src").unwrap();
        assert_eq!(f.images.len(), 1);
        assert_eq!(f.attestations.len(), 1);
        assert_eq!(f.index.index("x").unwrap().manifests.len(), 2);
    }

    /// For an archive meant for import (containerd#11344): every platform,
    /// no attestation, the index shortened to what the archive holds.
    #[test]
    fn attestations_can_be_left_out() {
        let src = index(Some(1));
        let f = filter(&src, None, false, "src").unwrap();
        assert!(f.filtered);
        assert_eq!(f.images.len(), 3);
        assert!(f.attestations.is_empty());
        let kept = f.index.index("x").unwrap().manifests;
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|d| !d.is_attestation()));
        let none = index(None);
        let f = filter(&none, None, false, "src").unwrap();
        assert!(!f.filtered, "nothing to leave out: the same bytes");
    }

    #[test]
    fn a_missing_platform_is_an_error_naming_what_there_is() {
        let src = index(None);
        let err = filter(
            &src,
            Some(&platforms("linux/amd64,linux/arm/v7")),
            true,
            "reg/app:v1",
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Content);
        let msg = err.to_string();
        assert!(msg.contains("reg/app:v1"), "{msg}");
        assert!(msg.contains("has no linux/arm/v7"), "{msg}");
        assert!(
            msg.contains("linux/amd64, linux/arm64, linux/mips64le"),
            "{msg}"
        );
    }
}
