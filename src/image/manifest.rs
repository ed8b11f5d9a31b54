//! Parsed, read-only views of manifests, indexes and configs, kept beside
//! their exact bytes (`RawManifest`): digests are over bytes, so nothing here
//! is ever serialised back. The structs are lenient about fields they do not
//! need and strict about the ones they do.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::media::{self, Format, ManifestKind};
use crate::error::{Error, Result};
use crate::platform::Platform;

/// A manifest or index exactly as stored, with its media type and digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RawManifest {
    /// Wraps bytes, computing the digest and taking the media type from the
    /// document (`mediaType`) when `media_type` is `None`.
    pub fn from_bytes(bytes: Bytes, media_type: Option<&str>, what: &str) -> Result<Self> {
        let media_type = match media_type {
            Some(mt) if media::manifest_kind(mt).is_some() => mt.to_string(),
            _ => sniff_media_type(&bytes, what)?,
        };
        Ok(RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type,
        })
    }

    /// Index or image manifest.
    pub fn kind(&self) -> ManifestKind {
        media::manifest_kind(&self.media_type).unwrap_or(ManifestKind::Image)
    }

    /// A descriptor pointing at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        }
    }

    /// Parses as an index; errors (naming `what`) if it is not one.
    pub fn index(&self, what: &str) -> Result<Index> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| Error::malformed(what, format!("not a valid image index: {e}")))
    }

    /// Parses as an image manifest; errors (naming `what`) if it is not one.
    pub fn image(&self, what: &str) -> Result<ImageManifest> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| Error::malformed(what, format!("not a valid image manifest: {e}")))
    }
}

/// Tells the media type of manifest bytes: `mediaType` when present, else
/// `manifests` means an OCI index and `config`+`layers` an OCI manifest.
pub fn sniff_media_type(bytes: &[u8], what: &str) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        schema_version: Option<u32>,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(what, format!("not JSON: {e}")))?;
    if probe.schema_version == Some(1) {
        return Err(Error::malformed(
            what,
            "Docker schema 1 manifests are not supported (push the image again with a v2 client)",
        ));
    }
    if let Some(mt) = probe.media_type {
        if media::manifest_kind(&mt).is_some() {
            return Ok(mt);
        }
        return Err(Error::malformed(
            what,
            format!("unsupported manifest media type `{mt}`"),
        ));
    }
    if probe.manifests.is_some() {
        Ok(media::OCI_INDEX.to_string())
    } else if probe.layers.is_some() {
        Ok(media::OCI_MANIFEST.to_string())
    } else {
        Err(Error::malformed(
            what,
            "neither an image manifest nor an index",
        ))
    }
}

/// A content descriptor (OCI image-spec `descriptor`), also used in Docker lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Whether this index entry is an attestation (provenance, SBOM), not a
    /// platform: the one place entries are told apart.
    pub fn is_attestation(&self) -> bool {
        let p = self.platform.clone().unwrap_or_default();
        crate::platform::is_attestation(&p.os, &p.architecture, &self.annotations)
    }

    /// The platform this index entry claims (spellings normalised by
    /// [`Platform::from_spec`]; an entry without one claims the empty platform).
    pub fn claimed_platform(&self) -> Platform {
        let p = self.platform.clone().unwrap_or_default();
        Platform::from_spec(&p.os, &p.architecture, p.variant.as_deref())
    }
}

/// An entry of a referrers list: the referring manifest's descriptor with its `artifactType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform object of an index entry or config, as written (not normalised).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlatformSpec {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        default,
        rename = "os.features",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest or Docker v2 schema 2 manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The blobs this manifest references that live in its repository: the
    /// config, then the layers; foreign layers (`urls`) stay where they are,
    /// as registries expect.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter().filter(|l| l.urls.is_empty()))
    }
}

/// The parts of an image config that archgate reads (platform and runtime
/// config); other fields are ignored on read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
}

/// `config.config`: environment, working directory, entrypoint, labels.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `USER`: `name`, `uid`, `name:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ImageConfig {
    /// Parses config blob bytes; `what` names the blob in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::malformed(what, format!("not a valid image config: {e}")))
    }

    /// The platform the config states (spellings normalised, as [`Platform::from_spec`] does).
    pub fn platform(&self) -> Platform {
        Platform::from_spec(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// The platform fields exactly as the config writes them, for an index entry.
    pub fn platform_spec(&self) -> PlatformSpec {
        PlatformSpec {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            os_version: None,
            os_features: None,
        }
    }
}

/// The index document over `entries`, in the given order: compact JSON with a
/// fixed key order, so the same inputs always give the same digest.
pub fn index(entries: Vec<Descriptor>, format: Format) -> Result<RawManifest> {
    let index = Index {
        schema_version: 2,
        media_type: Some(format.index_media_type().to_string()),
        manifests: entries,
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("cannot encode the index: {e}")))?;
    Ok(RawManifest {
        digest: Digest::of(&bytes),
        bytes: bytes.into(),
        media_type: format.index_media_type().to_string(),
    })
}

/// An index entry for `manifest` that states `platform`.
pub fn platform_entry(manifest: &RawManifest, platform: PlatformSpec) -> Descriptor {
    let mut entry = manifest.descriptor();
    entry.platform = Some(platform);
    entry
}

impl From<&Platform> for PlatformSpec {
    /// `os`, `architecture` and `variant`; `os.version`/`os.features` are not carried.
    fn from(p: &Platform) -> Self {
        PlatformSpec {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            os_version: None,
            os_features: None,
        }
    }
}

/// Annotation Docker's buildx puts on attestation entries.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// Annotation naming the manifest an attestation describes.
pub const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";
/// The tag name annotation of an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The full image name (`REGISTRY/NAME:TAG`) containerd, and so K3s, stores an
/// imported image under (it reads this before `ref.name`).
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_media_types() {
        let oci_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(sniff_media_type(oci_index, "x").unwrap(), media::OCI_INDEX);
        let oci_manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            sniff_media_type(oci_manifest, "x").unwrap(),
            media::OCI_MANIFEST
        );
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media::DOCKER_LIST
        );
        assert_eq!(
            sniff_media_type(docker.as_bytes(), "x").unwrap(),
            media::DOCKER_LIST
        );
        let err = sniff_media_type(br#"{"schemaVersion":1,"fsLayers":[]}"#, "app:v1").unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
        assert!(sniff_media_type(b"not json", "x").is_err());
        assert!(sniff_media_type(br#"{"schemaVersion":2}"#, "x").is_err());
    }

    #[test]
    fn platform_spec_keeps_os_version() {
        let p: PlatformSpec = serde_json::from_str(
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1"}"#,
        )
        .unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.17763.1"));
    }
}
