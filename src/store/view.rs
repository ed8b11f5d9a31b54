//! Read-only views of the images a store holds (go-containerregistry's
//! `ImageIndex` and `Image`): the one walk of an index — attestations told
//! apart once, per-platform manifests fetched by digest, nested indexes
//! refused — and the one read of an image's manifest and config, each kept as
//! exact bytes beside its parsed value (digests are over bytes).
//!
//! Every `what` given names the image in errors (`127.0.0.1:5000/app:v1`,
//! `base debian:12`); manifests and configs are named `WHAT manifest DIGEST`
//! and `WHAT config DIGEST`.

use bytes::Bytes;

use super::{Store, read_blob};
use crate::error::{Error, Result};
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, ImageConfig, ImageManifest, Index, RawManifest, Selector};
use crate::platform::Platform;

/// One platform of an image: the platform claimed (an index entry's, or for a
/// single image its config's; spellings normalised, variants as written) and
/// the descriptor of its manifest.
#[derive(Debug, Clone)]
pub struct PlatformEntry {
    pub platform: Platform,
    pub descriptor: Descriptor,
}

/// What a tag or digest points at: an index, or a single image seen as an
/// index of one entry.
pub struct IndexView<'s> {
    store: &'s dyn Store,
    what: String,
    raw: RawManifest,
    /// `None` for a single image.
    index: Option<Index>,
}

impl<'s> IndexView<'s> {
    /// Reads the manifest or index `selector` points at (exact bytes, checked
    /// against a digest selector by the store).
    pub async fn read(store: &'s dyn Store, selector: &Selector, what: &str) -> Result<Self> {
        let raw = store.get_manifest(selector).await?;
        Self::from_raw(store, raw, what)
    }

    /// A view of manifest bytes already read from `store`.
    pub fn from_raw(store: &'s dyn Store, raw: RawManifest, what: &str) -> Result<Self> {
        let index = match raw.kind() {
            ManifestKind::Index => Some(raw.index(what)?),
            ManifestKind::Image => None,
        };
        Ok(IndexView {
            store,
            what: what.to_string(),
            raw,
            index,
        })
    }

    /// The store the image is read from (its blobs are fetched there).
    pub fn store(&self) -> &'s dyn Store {
        self.store
    }

    /// The index (or single manifest) exactly as stored.
    pub fn raw(&self) -> &RawManifest {
        &self.raw
    }

    /// The parsed index; `None` for a single image.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// The platform entries, attestations left out, in index order. A single
    /// image is one entry whose platform its config states (the config is read).
    pub async fn platform_entries(&self) -> Result<Vec<PlatformEntry>> {
        match &self.index {
            Some(index) => Ok(index
                .manifests
                .iter()
                .filter(|d| !d.is_attestation())
                .map(|d| PlatformEntry {
                    platform: d.claimed_platform(),
                    descriptor: d.clone(),
                })
                .collect()),
            None => {
                let image = ImageView::read(self.store, self.raw.clone(), &self.what).await?;
                Ok(vec![PlatformEntry {
                    platform: image.platform(),
                    descriptor: self.raw.descriptor(),
                }])
            }
        }
    }

    /// The attestation entries (provenance, SBOM): not platforms. None for a single image.
    pub fn attestations(&self) -> Vec<&Descriptor> {
        self.index
            .iter()
            .flat_map(|i| &i.manifests)
            .filter(|d| d.is_attestation())
            .collect()
    }

    /// The image manifest an entry points at (fetched by digest and
    /// checked; the single image itself needs no fetch), refusing nested indexes.
    pub async fn manifest(&self, entry: &Descriptor) -> Result<RawManifest> {
        if entry.digest == self.raw.digest {
            if self.index.is_none() {
                return Ok(self.raw.clone());
            }
            return Err(nested(&self.what, entry));
        }
        let manifest = self
            .store
            .get_manifest(&Selector::Digest(entry.digest.clone()))
            .await?;
        if manifest.kind() != ManifestKind::Image {
            return Err(nested(&self.what, entry));
        }
        Ok(manifest)
    }

    /// The image an entry points at, its config read.
    pub async fn image(&self, entry: &Descriptor) -> Result<ImageView> {
        let manifest = self.manifest(entry).await?;
        ImageView::read(self.store, manifest, &self.what).await
    }
}

fn nested(what: &str, entry: &Descriptor) -> Error {
    Error::malformed(
        format!("{what} manifest {}", entry.digest),
        "an index entry points at another index; nested indexes are not supported",
    )
}

/// One platform's image: its manifest and config, exact bytes and parsed.
#[derive(Debug, Clone)]
pub struct ImageView {
    raw: RawManifest,
    manifest: ImageManifest,
    raw_config: Bytes,
    config: ImageConfig,
    config_what: String,
}

impl ImageView {
    /// Parses an image manifest read from `store` and reads its config
    /// (digest- and size-checked).
    pub async fn read(store: &dyn Store, raw: RawManifest, what: &str) -> Result<Self> {
        let manifest = raw.image(&format!("{what} manifest {}", raw.digest))?;
        let config_what = format!("{what} config {}", manifest.config.digest);
        let raw_config = Bytes::from(read_blob(store, &manifest.config, &config_what).await?);
        let config = ImageConfig::parse(&raw_config, &config_what)?;
        Ok(ImageView {
            raw,
            manifest,
            raw_config,
            config,
            config_what,
        })
    }

    /// The manifest exactly as stored.
    pub fn raw_manifest(&self) -> &RawManifest {
        &self.raw
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// The config blob exactly as stored.
    pub fn raw_config(&self) -> &Bytes {
        &self.raw_config
    }

    /// The parsed config.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// The platform the config states (whatever an index entry claims).
    pub fn platform(&self) -> Platform {
        self.config.platform()
    }

    /// [`Self::platform`], refusing a config that names no os or architecture
    /// (an index entry for it could only be guessed).
    pub fn stated_platform(&self) -> Result<Platform> {
        if self.config.architecture.is_empty() || self.config.os.is_empty() {
            return Err(Error::malformed(
                &self.config_what,
                "the config names no os/architecture; rebuild the image",
            ));
        }
        Ok(self.platform())
    }

    /// The blobs the image references that live in its repository: the config,
    /// then the layers, foreign layers (`urls`) left where they are.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifest.blobs()
    }

    /// The manifest bytes, giving the view up.
    pub fn into_raw(self) -> RawManifest {
        self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media;
    use crate::store::layout::LayoutStore;
    use serde_json::json;

    /// Puts `bytes` as a blob and returns its descriptor.
    async fn blob(store: &LayoutStore, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let digest = crate::image::Digest::of(&bytes);
        let size = bytes.len() as u64;
        store
            .put_blob(&digest, size, Box::pin(std::io::Cursor::new(bytes)))
            .await
            .unwrap();
        serde_json::from_value(json!({"mediaType": media_type, "digest": digest, "size": size}))
            .unwrap()
    }

    async fn manifest(store: &LayoutStore, doc: serde_json::Value) -> RawManifest {
        let raw =
            RawManifest::from_bytes(serde_json::to_vec(&doc).unwrap().into(), None, "t").unwrap();
        store.put_manifest(&raw, None).await.unwrap();
        raw
    }

    /// One image whose config says `arch`, and its manifest.
    async fn image(store: &LayoutStore, arch: &str) -> RawManifest {
        let config = blob(
            store,
            media::OCI_CONFIG,
            serde_json::to_vec(&json!({"os": "linux", "architecture": arch})).unwrap(),
        )
        .await;
        let layer = blob(store, media::OCI_LAYER_GZIP, arch.as_bytes().to_vec()).await;
        manifest(
            store,
            json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                   "config": config, "layers": [layer,
                   {"mediaType": media::OCI_LAYER_GZIP, "digest": crate::image::Digest::of(b"far"),
                    "size": 3, "urls": ["https://example.invalid/far"]}]}),
        )
        .await
    }

    fn entry(
        m: &RawManifest,
        os: &str,
        arch: &str,
        annotations: serde_json::Value,
    ) -> serde_json::Value {
        json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len(),
               "platform": {"os": os, "architecture": arch}, "annotations": annotations})
    }

    #[tokio::test]
    async fn an_index_lists_platforms_apart_from_attestations() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_dir(dir.path(), true).unwrap();
        let (amd64, arm64) = (image(&store, "amd64").await, image(&store, "x86_64").await);
        let att = image(&store, "unknown").await;
        let index = manifest(
            &store,
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [
                entry(&amd64, "linux", "amd64", json!({})),
                // mislabelled on purpose: the entry claims arm64, the config says amd64
                entry(&arm64, "linux", "arm64", json!({})),
                entry(&att, "unknown", "unknown",
                      json!({"vnd.docker.reference.type": "attestation-manifest"})),
            ]}),
        )
        .await;
        let view = IndexView::read(&store, &Selector::Digest(index.digest.clone()), "app")
            .await
            .unwrap();
        let entries = view.platform_entries().await.unwrap();
        let claimed: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
        assert_eq!(claimed, ["linux/amd64", "linux/arm64"]);
        assert_eq!(view.attestations().len(), 1);
        assert_eq!(view.attestations()[0].digest, att.digest);
        let second = view.image(&entries[1].descriptor).await.unwrap();
        assert_eq!(second.raw_manifest().bytes, arm64.bytes, "exact bytes");
        assert_eq!(
            second.platform().to_string(),
            "linux/amd64",
            "the config's own platform"
        );
        assert_eq!(
            second.blobs().count(),
            2,
            "the config and the one layer in the repository; the foreign layer stays"
        );
        // An entry pointing at an index is refused, naming it.
        let nested = manifest(
            &store,
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX,
                   "manifests": [entry(&index, "linux", "amd64", json!({}))]}),
        )
        .await;
        let view = IndexView::from_raw(&store, nested, "outer").unwrap();
        let entries = view.platform_entries().await.unwrap();
        let err = view.image(&entries[0].descriptor).await.unwrap_err();
        assert!(
            err.to_string().contains("nested indexes are not supported"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("outer manifest {}", index.digest)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_single_image_is_one_entry_its_config_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_dir(dir.path(), true).unwrap();
        let m = image(&store, "arm64").await;
        let view = IndexView::from_raw(&store, m.clone(), "one").unwrap();
        assert!(view.index().is_none());
        assert!(view.attestations().is_empty());
        let entries = view.platform_entries().await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].platform.to_string(), "linux/arm64");
        assert_eq!(entries[0].descriptor.digest, m.digest);
        let image = view.image(&entries[0].descriptor).await.unwrap();
        assert_eq!(image.stated_platform().unwrap().to_string(), "linux/arm64");
        let unnamed = blob(&store, media::OCI_CONFIG, b"{}".to_vec()).await;
        let bare = manifest(
            &store,
            json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": unnamed, "layers": []}),
        )
        .await;
        let image = ImageView::read(&store, bare, "bare").await.unwrap();
        let err = image.stated_platform().unwrap_err().to_string();
        assert!(
            err.contains("names no os/architecture") && err.contains("bare config"),
            "{err}"
        );
    }
}
