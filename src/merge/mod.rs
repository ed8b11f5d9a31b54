//! `archgate merge`: per-architecture images (or indexes) → one multi-arch
//! index, atomically. Everything is read and checked before anything is
//! written; then blobs, per-platform manifests by digest, the index by digest,
//! and the tags last — so a failure never moves a tag, and a re-run writes
//! nothing that is already there.

pub mod plan;
mod request;

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::media::{Format, ManifestKind};
use crate::image::{Digest, ImageConfig, Location, RawManifest, Selector};
use crate::platform::{self, Platform};
use crate::publish::put_manifest_if_missing;
use crate::store::{self, BlobPut, Store};

pub use plan::{Attestation, Candidate};

/// One source and, optionally, the platform it must be.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub location: String,
    pub expected: Option<Platform>,
}

/// Everything `merge` needs, resolved from flags and `[merge]`.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub sources: Vec<SourceSpec>,
    pub target: Location,
    /// The platforms wanted; `None`: every platform the sources hold.
    pub platforms: Option<Vec<Platform>>,
    pub format: Format,
    pub convert: bool,
    pub keep_attestations: bool,
    /// More tags for the index (besides the target's own).
    pub extra_tags: Vec<String>,
}

/// What `merge` did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeOutcome {
    /// The target as written, pinned to the index digest.
    pub image: String,
    pub index_digest: Digest,
    pub media_type: String,
    pub platforms: Vec<MergedPlatform>,
    pub attestations: usize,
    /// Attestations dropped because `--convert` replaced the manifest they describe.
    pub attestations_dropped: usize,
    /// Tags that now point at the index.
    pub tags: Vec<String>,
    /// What had to be written (all zero on a re-run).
    pub written: Written,
}

/// One platform in the new index.
#[derive(Debug, Clone, Serialize)]
pub struct MergedPlatform {
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
    pub source: String,
    /// The digest before `--convert` rewrote the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<Digest>,
}

/// Counts of writes, to show that a re-run is a no-op.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Written {
    pub blobs_uploaded: usize,
    pub blobs_mounted: usize,
    pub blobs_present: usize,
    pub manifests: usize,
    pub index: bool,
    pub tags: usize,
}

/// Runs a merge.
pub async fn merge(req: &MergeRequest, settings: &Settings) -> Result<MergeOutcome> {
    if req.sources.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one source: pass image locations, or set [merge] sources in archgate.toml".into(),
        ));
    }
    let target_tag = match req.target.selector() {
        Some(Selector::Tag(t)) => t,
        Some(Selector::Digest(_)) => {
            return Err(Error::Invalid(format!(
                "merge target `{}` names a digest: name a tag (the index digest is computed)",
                req.target
            )));
        }
        None => {
            return Err(Error::Invalid(format!(
                "merge target `{}` names no tag: write e.g. `{}:v1`",
                req.target, req.target
            )));
        }
    };

    // 1. Read every source and check it, before anything is written. One
    //    store (one client, one authentication, pooled connections) per
    //    source repository or layout, however many sources name it.
    let mut stores: Vec<Box<dyn Store>> = Vec::new();
    let mut opened: HashMap<String, usize> = HashMap::new();
    let mut candidates = Vec::new();
    let mut attestations = Vec::new();
    let mut origin: HashMap<Digest, usize> = HashMap::new();
    for spec in &req.sources {
        let location = Location::parse(&spec.location)?;
        let idx = match opened.get(&store_key(&location)) {
            Some(&i) => i,
            None => {
                stores.push(store::open(&location, settings, false).await?);
                opened.insert(store_key(&location), stores.len() - 1);
                stores.len() - 1
            }
        };
        let store = stores[idx].as_ref();
        let selector = match location.selector() {
            Some(s) => s,
            None => store.default_selector().await?,
        };
        let top = store.get_manifest(&selector).await?;
        match top.kind() {
            ManifestKind::Image => {
                let platform = config_platform(store, &top, &spec.location).await?;
                origin.insert(top.digest.clone(), idx);
                candidates.push(Candidate {
                    source: spec.location.clone(),
                    manifest: top,
                    platform,
                    claimed: None,
                    expected: spec.expected.clone(),
                    annotations: Default::default(),
                });
            }
            ManifestKind::Index => {
                let index = top.index(&spec.location)?;
                for desc in index.manifests {
                    let p = desc.platform.clone().unwrap_or_default();
                    origin.insert(desc.digest.clone(), idx);
                    if platform::is_attestation(&p.os, &p.architecture, &desc.annotations) {
                        attestations.push(Attestation {
                            source: spec.location.clone(),
                            descriptor: desc,
                        });
                        continue;
                    }
                    let claimed = Platform::from_spec(&p.os, &p.architecture, p.variant.as_deref());
                    if let Some(wanted) = &req.platforms
                        && !wanted.iter().any(|w| w.matches(&claimed))
                        && spec.expected.is_none()
                    {
                        continue; // not asked for: not even fetched
                    }
                    let manifest = store
                        .get_manifest(&Selector::Digest(desc.digest.clone()))
                        .await?;
                    if manifest.kind() != ManifestKind::Image {
                        return Err(Error::malformed(
                            format!("{} entry {}", spec.location, desc.digest),
                            "nested indexes are not supported",
                        ));
                    }
                    let platform = config_platform(store, &manifest, &spec.location).await?;
                    candidates.push(Candidate {
                        source: spec.location.clone(),
                        manifest,
                        platform,
                        claimed: Some(claimed),
                        expected: spec.expected.clone(),
                        annotations: desc.annotations,
                    });
                }
            }
        }
    }
    let selection = plan::select(
        candidates,
        attestations,
        req.platforms.as_deref(),
        req.keep_attestations,
    )?;
    if req.format == Format::Docker
        && !req.convert
        && let Some(c) = selection
            .images
            .iter()
            .find(|c| c.manifest.media_type != Format::Docker.manifest_media_type())
    {
        tracing::warn!(
            "the Docker manifest list references OCI manifests ({} from {}); Docker 19.03-era clients cannot pull those: add --convert",
            c.platform,
            c.source
        );
    }
    // Conversion too happens before any write: a manifest that cannot be
    // converted stops the merge with the target untouched.
    let mut converted = Vec::with_capacity(selection.images.len());
    for c in &selection.images {
        converted.push(if req.convert {
            plan::convert(
                &c.manifest,
                req.format,
                &format!("{} manifest {}", c.source, c.manifest.digest),
            )?
        } else {
            None
        });
    }
    let replaced: Vec<Digest> = selection
        .images
        .iter()
        .zip(&converted)
        .filter(|(_, conv)| conv.is_some())
        .map(|(c, _)| c.manifest.digest.clone())
        .collect();
    let (kept, dropped) = plan::split_replaced(selection.attestations, &replaced);
    for a in &dropped {
        tracing::warn!(
            "dropping attestation {} from {}: it describes a manifest that --convert replaced",
            a.descriptor.digest,
            a.source
        );
    }
    let mut attestation_manifests = Vec::with_capacity(kept.len());
    for a in &kept {
        let src = stores[origin[&a.descriptor.digest]].as_ref();
        let manifest = src
            .get_manifest(&Selector::Digest(a.descriptor.digest.clone()))
            .await?;
        attestation_manifests.push(manifest);
    }

    // 2. Write: blobs, manifests by digest, the index by digest, tags last.
    let target = store::open(&req.target, settings, true).await?;
    let target = target.as_ref();
    let mut written = Written::default();
    let mut entries = Vec::new();
    let mut merged = Vec::new();
    for (c, conv) in selection.images.iter().zip(&converted) {
        let src = stores[origin[&c.manifest.digest]].as_ref();
        copy_blobs(
            src,
            target,
            &c.manifest,
            &c.source,
            settings.network.concurrency,
            &mut written,
        )
        .await?;
        let manifest = conv.as_ref().unwrap_or(&c.manifest);
        if put_manifest_if_missing(target, manifest).await? {
            written.manifests += 1;
        }
        entries.push(plan::entry(c, manifest));
        merged.push(MergedPlatform {
            platform: c.platform.to_string(),
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            source: c.source.clone(),
            converted_from: conv.as_ref().map(|_| c.manifest.digest.clone()),
        });
    }
    for (a, manifest) in kept.iter().zip(&attestation_manifests) {
        let src = stores[origin[&a.descriptor.digest]].as_ref();
        copy_blobs(
            src,
            target,
            manifest,
            &a.source,
            settings.network.concurrency,
            &mut written,
        )
        .await?;
        if put_manifest_if_missing(target, manifest).await? {
            written.manifests += 1;
        }
        entries.push(a.descriptor.clone());
    }
    let index = plan::index(entries, req.format)?;
    written.index = put_manifest_if_missing(target, &index).await?;
    let mut tags = vec![target_tag];
    for t in &req.extra_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    written.tags = crate::publish::tag(target, &index, &tags).await?;
    target.commit().await?;
    Ok(MergeOutcome {
        image: req.target.with_digest(&index.digest).to_string(),
        index_digest: index.digest.clone(),
        media_type: index.media_type.clone(),
        platforms: merged,
        attestations: kept.len(),
        attestations_dropped: dropped.len(),
        tags,
        written,
    })
}

/// What identifies one source store: the registry repository, or the layout path.
fn store_key(location: &Location) -> String {
    match location {
        Location::Registry(r) => r.name(),
        Location::Layout { path, .. } => format!("oci:{}", path.display()),
        Location::Archive { path, .. } => format!("oci-archive:{}", path.display()),
    }
}

/// The platform an image's config blob states.
pub(crate) async fn config_platform(
    store: &dyn Store,
    manifest: &RawManifest,
    source: &str,
) -> Result<Platform> {
    let what = format!("{source} manifest {}", manifest.digest);
    let parsed = manifest.image(&what)?;
    let cfg_what = format!("{source} config {}", parsed.config.digest);
    let bytes = store::read_blob(store, &parsed.config, &cfg_what).await?;
    let config = ImageConfig::parse(&bytes, &cfg_what)?;
    if config.architecture.is_empty() || config.os.is_empty() {
        return Err(Error::malformed(
            cfg_what,
            "the config names no os/architecture; rebuild the image",
        ));
    }
    Ok(Platform::from_spec(
        &config.os,
        &config.architecture,
        config.variant.as_deref(),
    ))
}

/// Copies a manifest's config and layers, at most `concurrency` at a time.
async fn copy_blobs(
    src: &dyn Store,
    dst: &dyn Store,
    manifest: &RawManifest,
    source: &str,
    concurrency: usize,
    written: &mut Written,
) -> Result<()> {
    let parsed = manifest.image(&format!("{source} manifest {}", manifest.digest))?;
    let mut blobs = vec![parsed.config.clone()];
    blobs.extend(parsed.layers.iter().filter(|l| l.urls.is_empty()).cloned());
    let results: Vec<BlobPut> =
        futures_util::stream::iter(blobs.iter().map(|d| store::copy_blob(src, dst, d)))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
    for r in results {
        match r {
            BlobPut::Present => written.blobs_present += 1,
            BlobPut::Mounted => written.blobs_mounted += 1,
            BlobPut::Written => written.blobs_uploaded += 1,
        }
    }
    Ok(())
}

/// The human summary.
pub fn render_text(o: &MergeOutcome) -> String {
    let mut s = format!(
        "{}\n  index:  {} ({})\n",
        o.image,
        o.index_digest,
        crate::image::media::short_name(&o.media_type)
    );
    for p in &o.platforms {
        s.push_str(&format!(
            "  {:<16} {}  from {}\n",
            p.platform, p.digest, p.source
        ));
        if let Some(old) = &p.converted_from {
            s.push_str(&format!(
                "  {:<16} converted from {old}: the per-platform digest changed\n",
                ""
            ));
        }
    }
    if o.attestations > 0 {
        s.push_str(&format!("  attestations kept: {}\n", o.attestations));
    }
    if o.attestations_dropped > 0 {
        s.push_str(&format!(
            "  attestations dropped: {} (they describe manifests --convert replaced)\n",
            o.attestations_dropped
        ));
    }
    s.push_str(&format!("  tags:   {}\n", o.tags.join(", ")));
    s.push_str(&o.written.summary());
    s
}
