//! The pure part of `merge`: choosing one manifest per platform from what the
//! sources hold, checking that every label tells the truth, converting media
//! types on request (the family table is `image::media`'s), and each chosen
//! image's index entry (the index itself is `image::manifest::index`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::image::manifest::{self, REFERENCE_DIGEST_ANNOTATION, REFERENCE_TYPE_ANNOTATION};
use crate::image::media::Format;
use crate::image::{Descriptor, Digest, PlatformSpec, RawManifest};
use crate::platform::Platform;

/// One image manifest a source offers.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The source location as the user wrote it, for messages.
    pub source: String,
    /// The manifest exactly as stored.
    pub manifest: RawManifest,
    /// The platform its config blob states (never guessed from a tag).
    pub platform: Platform,
    /// The platform the source index entry claimed, when the source was an index.
    pub claimed: Option<Platform>,
    /// The platform the configuration table says this source must be.
    pub expected: Option<Platform>,
    /// Annotations of the source index entry.
    pub annotations: BTreeMap<String, String>,
}

/// An attestation manifest a source index holds.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub source: String,
    pub descriptor: Descriptor,
}

/// What goes into the index, in order.
#[derive(Debug, Clone)]
pub struct Selection {
    pub images: Vec<Candidate>,
    pub attestations: Vec<Attestation>,
}

/// Checks the candidates and picks one per platform.
///
/// `requested`: the platforms wanted, in index order (`None`: every platform
/// the sources hold, in source order). Errors, each naming the sources: a
/// config that disagrees with its index entry or with the configuration table,
/// two sources for one platform, a requested platform nobody has.
pub fn select(
    candidates: Vec<Candidate>,
    attestations: Vec<Attestation>,
    requested: Option<&[Platform]>,
    keep_attestations: bool,
) -> Result<Selection> {
    for c in &candidates {
        if let Some(claimed) = &c.claimed
            && !claimed.matches(&c.platform)
        {
            return Err(Error::malformed(
                format!("{} manifest {}", c.source, c.manifest.digest),
                format!(
                    "the index entry says {claimed} but the image config says {}: the source is mislabelled; fix or rebuild it",
                    c.platform
                ),
            ));
        }
        if let Some(expected) = &c.expected
            && !expected.matches(&c.platform)
        {
            return Err(Error::malformed(
                c.source.clone(),
                format!(
                    "configured as {expected} but its image config says {}: point [merge.sources] \"{expected}\" at the {expected} image",
                    c.platform
                ),
            ));
        }
    }
    let wanted = |p: &Platform| requested.is_none_or(|r| r.iter().any(|w| w.matches(p)));
    let mut chosen: Vec<Candidate> = Vec::new();
    for c in candidates.into_iter().filter(|c| wanted(&c.platform)) {
        if let Some(other) = chosen.iter().find(|o| o.platform.matches(&c.platform)) {
            if other.manifest.digest == c.manifest.digest {
                continue; // the same manifest reached twice is one entry
            }
            return Err(Error::Invalid(format!(
                "two sources for {}: {} ({}) and {} ({}); keep one, or choose platforms with --platform",
                c.platform, other.source, other.manifest.digest, c.source, c.manifest.digest
            )));
        }
        chosen.push(c);
    }
    if let Some(requested) = requested {
        let missing: Vec<String> = requested
            .iter()
            .filter(|r| !chosen.iter().any(|c| c.platform.matches(r)))
            .map(|r| r.to_string())
            .collect();
        if !missing.is_empty() {
            let have: Vec<String> = chosen.iter().map(|c| c.platform.to_string()).collect();
            // The images are incomplete, like a platform missing from an
            // index (exit 1, as `mirror` and `verify` say it).
            return Err(Error::malformed(
                "merge sources",
                format!(
                    "no source provides {}; the sources provide {}",
                    missing.join(", "),
                    if have.is_empty() {
                        "nothing requested".to_string()
                    } else {
                        have.join(", ")
                    }
                ),
            ));
        }
        chosen.sort_by_key(|c| requested.iter().position(|r| r.matches(&c.platform)));
    }
    let attestations = if keep_attestations {
        attestations
            .into_iter()
            .filter(|a| {
                // keep an attestation only with the image it describes
                a.descriptor
                    .annotations
                    .get(REFERENCE_DIGEST_ANNOTATION)
                    .is_none_or(|d| chosen.iter().any(|c| c.manifest.digest.as_str() == d))
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Selection {
        images: chosen,
        attestations,
    })
}

/// Splits kept attestations into those still valid and those describing a
/// manifest that `--convert` replaced. The latter are dropped, not re-pointed:
/// an attestation's statement names the digest it was made for, so pointing
/// it at the converted manifest would claim something it never said.
pub fn split_replaced(
    attestations: Vec<Attestation>,
    replaced: &[Digest],
) -> (Vec<Attestation>, Vec<Attestation>) {
    attestations.into_iter().partition(|a| {
        a.descriptor
            .annotations
            .get(REFERENCE_DIGEST_ANNOTATION)
            .is_none_or(|d| !replaced.iter().any(|r| r.as_str() == d))
    })
}

/// The index entry for one chosen image: the platform its config states,
/// the source entry's annotations but the attestation marker.
pub fn entry(c: &Candidate, manifest: &RawManifest) -> Descriptor {
    let mut entry = manifest::platform_entry(manifest, PlatformSpec::from(&c.platform));
    entry.annotations = c.annotations.clone();
    entry.annotations.remove(REFERENCE_TYPE_ANNOTATION);
    entry
}

/// `manifest` with the layers `replacements` names (old digest → new
/// descriptor) replaced: the gzip form of an uncompressed layer. The manifest
/// digest changes; the config (and its diff_ids) does not.
pub fn replace_layers(
    manifest: &RawManifest,
    replacements: &[(Digest, Descriptor)],
    what: &str,
) -> Result<RawManifest> {
    let mut doc: Value =
        serde_json::from_slice(&manifest.bytes).map_err(|e| Error::malformed(what, e))?;
    if let Some(layers) = doc.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers {
            let digest = layer
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some((_, new)) = replacements.iter().find(|(old, _)| old.as_str() == digest) {
                layer["mediaType"] = Value::from(new.media_type.clone());
                layer["digest"] = Value::from(new.digest.to_string());
                layer["size"] = Value::from(new.size);
            }
        }
    }
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| Error::Internal(format!("cannot encode {what}: {e}")))?;
    Ok(RawManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: manifest.media_type.clone(),
    })
}

/// Rewrites an image manifest into the other family (Docker v2s2 ⇄ OCI): the
/// manifest, config and layer media types change, the blobs do not. The
/// manifest digest changes. Returns `None` when it already has `format`'s type.
pub fn convert(manifest: &RawManifest, format: Format, what: &str) -> Result<Option<RawManifest>> {
    let target = format.manifest_media_type();
    if manifest.media_type == target {
        return Ok(None);
    }
    let mut doc: Value =
        serde_json::from_slice(&manifest.bytes).map_err(|e| Error::malformed(what, e))?;
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| Error::malformed(what, "not a JSON object"))?;
    obj.insert("mediaType".into(), Value::from(target));
    if let Some(config) = obj.get_mut("config").and_then(Value::as_object_mut) {
        let mt = config
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        config.insert(
            "mediaType".into(),
            Value::from(convert_blob_type(&mt, format, what)?),
        );
    }
    if let Some(layers) = obj.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers {
            if let Some(l) = layer.as_object_mut() {
                let mt = l
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                l.insert(
                    "mediaType".into(),
                    Value::from(convert_blob_type(&mt, format, what)?),
                );
            }
        }
    }
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| Error::Internal(format!("cannot encode {what}: {e}")))?;
    Ok(Some(RawManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: target.to_string(),
    }))
}

fn convert_blob_type(mt: &str, format: Format, what: &str) -> Result<String> {
    format.blob_media_type(mt).map(str::to_string).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: cannot convert blob media type `{mt}` to the {} format; merge without --convert",
            format.name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::index;
    use crate::image::{Index, media};
    use bytes::Bytes;

    fn manifest(media_type: &str, seed: &str) -> RawManifest {
        let (config_mt, layer_mt) = if media_type == media::DOCKER_MANIFEST {
            (media::DOCKER_CONFIG, media::DOCKER_LAYER_GZIP)
        } else {
            (media::OCI_CONFIG, media::OCI_LAYER_GZIP)
        };
        let d = Digest::of(seed.as_bytes());
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_mt}","digest":"{d}","size":1}},"layers":[{{"mediaType":"{layer_mt}","digest":"{d}","size":2}}]}}"#
        );
        RawManifest::from_bytes(Bytes::from(json), None, "test").unwrap()
    }

    fn cand(
        source: &str,
        platform: &str,
        claimed: Option<&str>,
        expected: Option<&str>,
    ) -> Candidate {
        Candidate {
            source: source.into(),
            manifest: manifest(media::OCI_MANIFEST, source),
            platform: Platform::parse(platform).unwrap(),
            claimed: claimed.map(|p| Platform::parse(p).unwrap()),
            expected: expected.map(|p| Platform::parse(p).unwrap()),
            annotations: BTreeMap::new(),
        }
    }

    fn plats(s: &str) -> Vec<Platform> {
        crate::platform::parse_list(s).unwrap()
    }

    #[test]
    fn picks_one_per_platform_in_requested_order() {
        let cs = vec![
            cand("a", "linux/mips64le", None, None),
            cand("b", "linux/amd64", None, None),
            cand("c", "linux/arm64", Some("linux/arm64/v8"), None),
            cand("d", "linux/s390x", None, None),
        ];
        let want = plats("linux/amd64,linux/arm64,linux/mips64le");
        let s = select(cs, vec![], Some(&want), false).unwrap();
        let got: Vec<String> = s.images.iter().map(|c| c.source.clone()).collect();
        assert_eq!(got, ["b", "c", "a"]);
    }

    #[test]
    fn refuses_lies_duplicates_and_gaps() {
        let cases: Vec<(Vec<Candidate>, Option<&str>, &str)> = vec![
            (
                vec![cand("x", "linux/amd64", Some("linux/arm64"), None)],
                None,
                "index entry says linux/arm64 but the image config says linux/amd64",
            ),
            (
                vec![cand("y", "linux/arm64", None, Some("linux/amd64"))],
                None,
                "configured as linux/amd64 but its image config says linux/arm64",
            ),
            (
                vec![
                    cand("p", "linux/amd64", None, None),
                    cand("q", "linux/amd64", None, None),
                ],
                None,
                "two sources for linux/amd64: p",
            ),
            (
                vec![cand("p", "linux/amd64", None, None)],
                Some("linux/amd64,linux/mips64le"),
                "no source provides linux/mips64le",
            ),
        ];
        for (cs, req, want) in cases {
            let req = req.map(plats);
            let err = select(cs, vec![], req.as_deref(), false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn attestations_dropped_unless_kept_and_only_with_their_image() {
        let c = cand("a", "linux/amd64", None, None);
        let att = |describes: &Digest| Attestation {
            source: "a".into(),
            descriptor: Descriptor {
                media_type: media::OCI_MANIFEST.into(),
                digest: Digest::of(describes.as_str().as_bytes()),
                size: 10,
                platform: Some(PlatformSpec {
                    architecture: "unknown".into(),
                    os: "unknown".into(),
                    ..Default::default()
                }),
                annotations: [
                    (
                        REFERENCE_TYPE_ANNOTATION.to_string(),
                        "attestation-manifest".to_string(),
                    ),
                    (
                        REFERENCE_DIGEST_ANNOTATION.to_string(),
                        describes.to_string(),
                    ),
                ]
                .into(),
                urls: vec![],
            },
        };
        let atts = vec![att(&c.manifest.digest), att(&Digest::of(b"other"))];
        let s = select(vec![c.clone()], atts.clone(), None, false).unwrap();
        assert!(s.attestations.is_empty());
        let s = select(vec![c], atts, None, true).unwrap();
        assert_eq!(s.attestations.len(), 1);
    }

    #[test]
    fn converts_uncompressed_layers_both_ways() {
        // (from, to, expected) — regression: uncompressed layers were refused.
        let rows = [
            (
                media::OCI_LAYER_TAR,
                Format::Docker,
                media::DOCKER_LAYER_TAR,
            ),
            (media::DOCKER_LAYER_TAR, Format::Oci, media::OCI_LAYER_TAR),
            (
                media::OCI_LAYER_GZIP,
                Format::Docker,
                media::DOCKER_LAYER_GZIP,
            ),
            (media::DOCKER_LAYER_GZIP, Format::Oci, media::OCI_LAYER_GZIP),
            (media::OCI_CONFIG, Format::Docker, media::DOCKER_CONFIG),
            (media::DOCKER_CONFIG, Format::Oci, media::OCI_CONFIG),
        ];
        for (from, format, want) in rows {
            assert_eq!(
                convert_blob_type(from, format, "m").unwrap(),
                want,
                "{from}"
            );
        }
    }

    #[test]
    fn attestations_of_replaced_manifests_are_split_off() {
        let att = |d: &Digest| Attestation {
            source: "s".into(),
            descriptor: Descriptor {
                media_type: media::OCI_MANIFEST.into(),
                digest: Digest::of(d.as_str().as_bytes()),
                size: 1,
                platform: None,
                annotations: [(REFERENCE_DIGEST_ANNOTATION.to_string(), d.to_string())].into(),
                urls: vec![],
            },
        };
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let (kept, dropped) = split_replaced(vec![att(&a), att(&b)], std::slice::from_ref(&b));
        assert_eq!(kept.len(), 1);
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            dropped[0].descriptor.annotations[REFERENCE_DIGEST_ANNOTATION],
            b.to_string()
        );
    }

    #[test]
    fn index_is_deterministic_and_typed() {
        let c = cand("a", "linux/arm64", None, None);
        let e = entry(&c, &c.manifest);
        let one = index(vec![e.clone()], Format::Oci).unwrap();
        let two = index(vec![e.clone()], Format::Oci).unwrap();
        assert_eq!(one.digest, two.digest);
        assert_eq!(one.media_type, media::OCI_INDEX);
        let parsed: Index = serde_json::from_slice(&one.bytes).unwrap();
        assert_eq!(
            parsed.manifests[0].platform.as_ref().unwrap().architecture,
            "arm64"
        );
        let docker = index(vec![e], Format::Docker).unwrap();
        assert!(
            std::str::from_utf8(&docker.bytes)
                .unwrap()
                .contains(media::DOCKER_LIST)
        );
        assert_ne!(docker.digest, one.digest);
    }

    #[test]
    fn converts_both_ways_and_changes_digest() {
        let oci = manifest(media::OCI_MANIFEST, "s");
        assert!(convert(&oci, Format::Oci, "m").unwrap().is_none());
        let docker = convert(&oci, Format::Docker, "m").unwrap().unwrap();
        assert_eq!(docker.media_type, media::DOCKER_MANIFEST);
        assert_ne!(docker.digest, oci.digest);
        let text = std::str::from_utf8(&docker.bytes).unwrap();
        assert!(
            text.contains(media::DOCKER_CONFIG) && text.contains(media::DOCKER_LAYER_GZIP),
            "{text}"
        );
        let back = convert(&docker, Format::Oci, "m").unwrap().unwrap();
        let text = std::str::from_utf8(&back.bytes).unwrap();
        assert!(
            text.contains(media::OCI_CONFIG) && text.contains(media::OCI_LAYER_GZIP),
            "{text}"
        );
        let zstd = RawManifest::from_bytes(
            Bytes::from(format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"{}","size":2}}]}}"#,
                media::OCI_MANIFEST, media::OCI_CONFIG, Digest::of(b"c"), Digest::of(b"l")
            )),
            None,
            "z",
        )
        .unwrap();
        assert!(
            convert(&zstd, Format::Docker, "z")
                .unwrap_err()
                .to_string()
                .contains("tar+zstd")
        );
    }
}
