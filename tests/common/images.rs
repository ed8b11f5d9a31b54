//! A small three-platform image set (linux/amd64, linux/arm64, linux/mips64le),
//! in OCI or Docker media types, built in memory and pushed through a `Store`
//! in publishing order: blobs, per-platform manifests by digest, the index
//! by digest, the tag last.

use archgate::image::media;
use archgate::image::{Digest, RawManifest};
use archgate::store::Store;
use bytes::Bytes;
use serde_json::json;

/// The platforms of every test index, as `(os, architecture)`.
pub const PLATFORMS: [(&str, &str); 3] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("linux", "mips64le"),
];

/// Which media-type family the set is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OCI image index and manifests.
    Oci,
    /// Docker manifest list and v2 schema 2 manifests.
    Docker,
}

impl Flavor {
    /// `oci` or `docker`, for repository names.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Oci => "oci",
            Flavor::Docker => "docker",
        }
    }

    fn types(self) -> [&'static str; 4] {
        match self {
            Flavor::Oci => [
                media::OCI_INDEX,
                media::OCI_MANIFEST,
                media::OCI_CONFIG,
                media::OCI_LAYER_TAR,
            ],
            Flavor::Docker => [
                media::DOCKER_LIST,
                media::DOCKER_MANIFEST,
                media::DOCKER_CONFIG,
                media::DOCKER_LAYER_TAR,
            ],
        }
    }
}

/// One platform's image: config and layer blobs and its manifest.
pub struct Image {
    pub os: &'static str,
    pub architecture: &'static str,
    pub config: Bytes,
    pub layer: Bytes,
    pub manifest: RawManifest,
}

/// Three images and the index over them.
pub struct ImageSet {
    pub images: Vec<Image>,
    pub index: RawManifest,
}

impl ImageSet {
    /// The config digest of the set's `architecture` image.
    pub fn config_digest(&self, architecture: &str) -> String {
        let image = self
            .images
            .iter()
            .find(|i| i.architecture == architecture)
            .unwrap();
        Digest::of(&image.config).to_string()
    }

    /// Every blob of the set, `(digest, bytes)`.
    pub fn blobs(&self) -> Vec<(Digest, Bytes)> {
        self.images
            .iter()
            .flat_map(|i| [i.config.clone(), i.layer.clone()])
            .map(|b| (Digest::of(&b), b))
            .collect()
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
}

/// A tar with one file naming the platform; `salt` makes sets distinct.
fn layer(architecture: &str, salt: &str) -> Bytes {
    let content = format!("hello from {architecture} ({salt})\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, "etc/platform", content.as_bytes())
        .expect("tar in memory");
    Bytes::from(tar.into_inner().expect("tar in memory"))
}

/// A tar with one file of `size` pseudo-random bytes (incompressible, distinct per `seed`).
/// `size` pseudo-random (incompressible) bytes from `seed`.
pub fn noise(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut content = Vec::with_capacity(size + 8);
    while content.len() < size {
        // xorshift64: fast enough in debug builds for tens of megabytes
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(size);
    content
}

fn large_layer(seed: u64, size: usize) -> Bytes {
    let content = noise(seed, size);
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 2048));
    tar.append_data(&mut header, "opt/data.bin", &content[..])
        .expect("tar in memory");
    Bytes::from(tar.into_inner().expect("tar in memory"))
}

/// Builds the set in `flavor`'s media types. Pure; `salt` varies the content.
pub fn image_set(flavor: Flavor, salt: &str) -> ImageSet {
    image_set_with_env(flavor, salt, &["PATH=/usr/bin:/bin"])
}

/// The same, with `env` as every image's config `Env` (e.g. Debian's own PATH).
pub fn image_set_with_env(flavor: Flavor, salt: &str, env: &[&str]) -> ImageSet {
    build_set(flavor, env, |architecture| layer(architecture, salt))
}

/// The same three platforms with one layer of `layer_size` random bytes each,
/// for transfers that take a while (interruptions, benchmarks).
pub fn large_image_set(flavor: Flavor, seed: u64, layer_size: usize) -> ImageSet {
    build_set(flavor, &["PATH=/usr/bin:/bin"], |architecture| {
        let n = PLATFORMS
            .iter()
            .position(|p| p.1 == architecture)
            .unwrap_or(0);
        large_layer(seed.wrapping_mul(31).wrapping_add(n as u64), layer_size)
    })
}

fn build_set(flavor: Flavor, env: &[&str], layer: impl Fn(&str) -> Bytes) -> ImageSet {
    let [index_type, manifest_type, config_type, layer_type] = flavor.types();
    let images: Vec<Image> = PLATFORMS
        .iter()
        .map(|&(os, architecture)| {
            let layer = layer(architecture);
            let config = Bytes::from(
                serde_json::to_vec(&json!({
                    "architecture": architecture,
                    "os": os,
                    "config": {"Env": env},
                    "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
                }))
                .expect("json"),
            );
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": manifest_type,
                "config": descriptor(config_type, &config),
                "layers": [descriptor(layer_type, &layer)],
            }))
            .expect("json");
            Image {
                os,
                architecture,
                config,
                layer,
                manifest: RawManifest::from_bytes(
                    manifest.into(),
                    Some(manifest_type),
                    "test manifest",
                )
                .expect("valid manifest"),
            }
        })
        .collect();
    let entries: Vec<_> = images
        .iter()
        .map(|i| {
            let mut d = descriptor(manifest_type, &i.manifest.bytes);
            d["platform"] = json!({"architecture": i.architecture, "os": i.os});
            d
        })
        .collect();
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": entries,
    }))
    .expect("json");
    ImageSet {
        images,
        index: RawManifest::from_bytes(index.into(), Some(index_type), "test index")
            .expect("valid index"),
    }
}

/// Pushes `set` to `store`: blobs, manifests by digest, the index by digest, then `tag`.
pub async fn push_image_set(
    store: &dyn Store,
    set: &ImageSet,
    tag: Option<&str>,
) -> archgate::Result<()> {
    push_blobs(store, set.blobs().into_iter().map(|(_, b)| b)).await?;
    for image in &set.images {
        store.put_manifest(&image.manifest, None).await?;
    }
    // By digest, then the tag (put_manifest keeps that order).
    store.put_manifest(&set.index, tag).await
}

/// Pushes blobs, each under its digest.
pub async fn push_blobs(
    store: &dyn Store,
    blobs: impl IntoIterator<Item = Bytes>,
) -> archgate::Result<()> {
    for blob in blobs {
        let size = blob.len() as u64;
        store
            .put_blob(
                &Digest::of(&blob),
                size,
                Box::pin(std::io::Cursor::new(blob)),
            )
            .await?;
    }
    Ok(())
}

/// Pushes one image of a set: its config and layer, then its manifest, tagged `tag`.
pub async fn push_image(store: &dyn Store, image: &Image, tag: &str) -> archgate::Result<()> {
    push_blobs(store, [image.config.clone(), image.layer.clone()]).await?;
    store.put_manifest(&image.manifest, Some(tag)).await
}

/// A BuildKit-style attestation manifest for `image` (an in-toto statement
/// naming the image's manifest digest) and its index entry: `unknown/unknown`,
/// annotated `vnd.docker.reference.type: attestation-manifest` and
/// `vnd.docker.reference.digest: <image manifest digest>`. Returns the entry
/// and the blobs and manifest to push.
pub fn attestation(image: &Image) -> (serde_json::Value, Vec<Bytes>, RawManifest) {
    let statement = Bytes::from(
        serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "app", "digest": {"sha256": image.manifest.digest.hex()}}],
            "predicate": {"builder": {"id": "archgate-tests"}},
        }))
        .expect("json"),
    );
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&statement).to_string()]},
        }))
        .expect("json"),
    );
    let mut layer = descriptor("application/vnd.in-toto+json", &statement);
    layer["annotations"] = json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor(media::OCI_CONFIG, &config),
        "layers": [layer],
    }))
    .expect("json");
    let manifest =
        RawManifest::from_bytes(manifest.into(), Some(media::OCI_MANIFEST), "attestation")
            .expect("valid manifest");
    let mut entry = descriptor(media::OCI_MANIFEST, &manifest.bytes);
    entry["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    entry["annotations"] = json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": image.manifest.digest.to_string(),
    });
    (entry, vec![config, statement], manifest)
}

/// Pushes `set` as a BuildKit-style index (each image followed by its
/// [`attestation`]) of media type `index_type`, tagged `tag`; each image is
/// also tagged with its architecture.
pub async fn push_attested(
    store: &dyn Store,
    set: &ImageSet,
    index_type: &str,
    tag: &str,
) -> archgate::Result<RawManifest> {
    let mut entries = Vec::new();
    for image in &set.images {
        push_image(store, image, image.architecture).await?;
        entries.push(json!({
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest.to_string(),
            "size": image.manifest.bytes.len(),
            "platform": {"os": image.os, "architecture": image.architecture},
        }));
        let (entry, blobs, manifest) = attestation(image);
        push_blobs(store, blobs).await?;
        store.put_manifest(&manifest, None).await?;
        entries.push(entry);
    }
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": entries,
    }))
    .expect("json");
    let index = RawManifest::from_bytes(bytes.into(), Some(index_type), "attested index")?;
    store.put_manifest(&index, Some(tag)).await?;
    Ok(index)
}
