//! `archgate mirror`: copies an image (an index, or one platform's image)
//! from one location to another — registry, `oci:` layout, `oci-archive:` —
//! optionally keeping only some platforms, with digests preserved.
//!
//! Everything is read and checked first (a requested platform the source lacks
//! is an error before anything is written); then blobs, concurrently and
//! digest-verified, skipped when present and mounted within one registry; then
//! per-platform manifests by digest, the index by digest, and the tag last, so
//! an interrupted mirror never leaves a tag pointing at something incomplete.
//! A re-run copies only what is missing: registries and layout directories keep
//! what arrived, and an `oci-archive:` target is staged in `FILE.partial/`
//! until the archive is written at the end.

pub mod plan;
mod request;

use std::collections::HashSet;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::manifest::REF_NAME_ANNOTATION;
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, Digest, Location, RawManifest, Selector};
use crate::inspect::human_size;
use crate::merge::{Written, config_platform};
use crate::platform::Platform;
use crate::publish::put_manifest_if_missing;
use crate::store::{self, BlobPut, Store};

/// Blobs at least this large get their throughput logged.
const LARGE_BLOB: u64 = 1 << 20;

/// One image to move.
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// The source location as the user wrote it.
    pub source: String,
    /// The target location as the user wrote it.
    pub target: String,
    /// The platforms to keep; `None`: everything the source holds, byte for byte.
    pub platforms: Option<Vec<Platform>>,
}

/// What `mirror` did.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorOutcome {
    pub source: String,
    /// The digest the source pointed at.
    pub source_digest: Digest,
    /// The target, pinned to the digest written.
    pub image: String,
    /// The digest written: the source's own unless platforms were dropped.
    pub digest: Digest,
    pub media_type: String,
    /// Whether the index was filtered (a new index, with a new digest).
    pub filtered: bool,
    /// The platforms copied, each with its (unchanged) manifest digest.
    pub platforms: Vec<MirroredPlatform>,
    /// Attestation manifests copied along with their images.
    pub attestations: usize,
    /// Tags that now point at the digest.
    pub tags: Vec<String>,
    /// Bytes of the blobs copied now (not those present or mounted).
    pub bytes_copied: u64,
    pub seconds: f64,
    pub written: Written,
}

/// One platform copied.
#[derive(Debug, Clone, Serialize)]
pub struct MirroredPlatform {
    pub platform: String,
    pub digest: Digest,
}

/// Everything read from the source before anything is written.
struct Plan {
    top: RawManifest,
    /// The manifest to write and tag: the (filtered) index, or the single image.
    head: RawManifest,
    /// Per-platform and attestation manifests, in the order they are written.
    manifests: Vec<RawManifest>,
    platforms: Vec<MirroredPlatform>,
    attestations: usize,
    filtered: bool,
    /// Every blob the manifests reference, once each.
    blobs: Vec<Descriptor>,
}

/// Mirrors one image.
pub async fn mirror(req: &MirrorRequest, settings: &Settings) -> Result<MirrorOutcome> {
    let started = Instant::now();
    let source = Location::parse(&req.source)?;
    let target = Location::parse(&req.target)?;
    let target_tag = explicit_tag(&target, &req.target)?;

    // 1. Read and check everything before writing.
    let src = store::open(&source, settings, false).await?;
    let (selector, source_tag) = source_selector(&source, src.as_ref()).await?;
    let plan = read_plan(src.as_ref(), &selector, req).await?;
    let tag = match (target_tag, source_tag) {
        (Some(t), _) | (None, Some(t)) => Some(t),
        (None, None) if matches!(target, Location::Registry(_)) => None,
        (None, None) => {
            return Err(Error::Invalid(format!(
                "mirror target `{}` names no tag and the source names its image by digest: write e.g. `{}:v1`",
                req.target, req.target
            )));
        }
    };

    // 2. Write: blobs, manifests by digest, the index by digest, the tag last.
    let dst = store::open_resumable(&target, settings).await?;
    let dst = dst.as_ref();
    tracing::info!(
        "mirroring {} ({}) to {}: {} blob(s), {}",
        req.source,
        plan.top.digest,
        dst.name(),
        plan.blobs.len(),
        human_size(plan.blobs.iter().map(|b| b.size).sum())
    );
    let mut written = Written::default();
    let bytes_copied = copy_blobs(
        src.as_ref(),
        dst,
        &plan.blobs,
        settings.network.concurrency,
        &mut written,
    )
    .await?;
    for m in &plan.manifests {
        if put_manifest_if_missing(dst, m).await? {
            written.manifests += 1;
        }
    }
    if plan.head.kind() == ManifestKind::Index {
        written.index = put_manifest_if_missing(dst, &plan.head).await?;
    }
    let mut tags = Vec::new();
    if let Some(tag) = tag {
        if store::set_tag(dst, &plan.head, &tag).await? {
            written.tags += 1;
        }
        tags.push(tag);
    } else if put_manifest_if_missing(dst, &plan.head).await? {
        written.manifests += 1;
    }
    dst.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "mirrored {} to {} in {seconds:.2} s: {} copied",
        req.source,
        dst.name(),
        human_size(bytes_copied)
    );
    Ok(MirrorOutcome {
        source: req.source.clone(),
        source_digest: plan.top.digest.clone(),
        image: target.with_digest(&plan.head.digest).to_string(),
        digest: plan.head.digest.clone(),
        media_type: plan.head.media_type.clone(),
        filtered: plan.filtered,
        platforms: plan.platforms,
        attestations: plan.attestations,
        tags,
        bytes_copied,
        seconds,
        written,
    })
}

/// The tag the target location names itself; a digest there is an error.
fn explicit_tag(target: &Location, written: &str) -> Result<Option<String>> {
    let selector = match target {
        Location::Registry(r) if r.digest.is_some() => r.digest.clone().map(Selector::Digest),
        Location::Registry(r) => r.tag.clone().map(Selector::Tag),
        Location::Layout { selector, .. } | Location::Archive { selector, .. } => selector.clone(),
    };
    match selector {
        Some(Selector::Digest(_)) => Err(Error::Invalid(format!(
            "mirror target `{written}` names a digest: name a tag, or none to keep the source's"
        ))),
        Some(Selector::Tag(t)) => Ok(Some(t)),
        None => Ok(None),
    }
}

/// What to read from the source, and its tag when it has one (kept for the target).
async fn source_selector(
    location: &Location,
    store: &dyn Store,
) -> Result<(Selector, Option<String>)> {
    if let Some(selector) = match location {
        Location::Registry(_) => location.selector(),
        Location::Layout { selector, .. } | Location::Archive { selector, .. } => selector.clone(),
    } {
        let tag = match &selector {
            Selector::Tag(t) => Some(t.clone()),
            Selector::Digest(_) => None,
        };
        return Ok((selector, tag));
    }
    // A layout's single entry: keep its ref.name as the tag.
    let selector = store.default_selector().await?;
    let desc = store.resolve(&selector).await?;
    Ok((selector, desc.annotations.get(REF_NAME_ANNOTATION).cloned()))
}

/// Reads the top manifest and everything under it, filtered to the requested platforms.
async fn read_plan(src: &dyn Store, selector: &Selector, req: &MirrorRequest) -> Result<Plan> {
    let top = src.get_manifest(selector).await?;
    let what = |d: &Digest| format!("{} manifest {d}", req.source);
    let (head, manifests, platforms, attestations, filtered) = match top.kind() {
        ManifestKind::Image => {
            let platform = match (
                &req.platforms,
                config_platform(src, &top, &req.source).await,
            ) {
                // Copied as it is: a config that names no platform is shown, not refused.
                (None, Err(e)) => {
                    tracing::debug!("{}: no platform shown: {e}", req.source);
                    "unknown".to_string()
                }
                (None, Ok(p)) => p.to_string(),
                (Some(_), Err(e)) => return Err(e),
                (Some(requested), Ok(p)) => {
                    let missing: Vec<String> = requested
                        .iter()
                        .filter(|r| !r.matches(&p))
                        .map(|r| r.to_string())
                        .collect();
                    if !missing.is_empty() {
                        let entry = plan::Entry {
                            descriptor: top.descriptor(),
                            platform: Some(p),
                        };
                        return Err(plan::missing_platforms(&req.source, &missing, &[entry]));
                    }
                    p.to_string()
                }
            };
            let platforms = vec![MirroredPlatform {
                platform,
                digest: top.digest.clone(),
            }];
            (top.clone(), Vec::new(), platforms, 0, false)
        }
        ManifestKind::Index => {
            let f = plan::filter(&top, req.platforms.as_deref(), &req.source)?;
            let mut manifests = Vec::new();
            let descriptors = f
                .images
                .iter()
                .map(|e| &e.descriptor)
                .chain(&f.attestations);
            for desc in descriptors {
                let m = src
                    .get_manifest(&Selector::Digest(desc.digest.clone()))
                    .await?;
                if m.kind() != ManifestKind::Image {
                    return Err(Error::malformed(
                        what(&desc.digest),
                        "nested indexes are not supported",
                    ));
                }
                manifests.push(m);
            }
            let platforms = f
                .images
                .iter()
                .filter_map(|e| {
                    e.platform.as_ref().map(|p| MirroredPlatform {
                        platform: p.to_string(),
                        digest: e.descriptor.digest.clone(),
                    })
                })
                .collect();
            (
                f.index,
                manifests,
                platforms,
                f.attestations.len(),
                f.filtered,
            )
        }
    };
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    let images = manifests
        .iter()
        .chain((head.kind() == ManifestKind::Image).then_some(&head));
    for m in images {
        let parsed = m.image(&what(&m.digest))?;
        for d in std::iter::once(parsed.config).chain(parsed.layers) {
            // Foreign layers (`urls`) stay where they are, as registries expect.
            if d.urls.is_empty() && seen.insert(d.digest.clone()) {
                blobs.push(d);
            }
        }
    }
    Ok(Plan {
        top,
        head,
        manifests,
        platforms,
        attestations,
        filtered,
        blobs,
    })
}

/// Copies the blobs, at most `concurrency` at a time, logging each; returns the bytes copied.
async fn copy_blobs(
    src: &dyn Store,
    dst: &dyn Store,
    blobs: &[Descriptor],
    concurrency: usize,
    written: &mut Written,
) -> Result<u64> {
    let results: Vec<(BlobPut, u64)> =
        futures_util::stream::iter(blobs.iter().map(|d| copy_blob_logged(src, dst, d)))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
    let mut bytes = 0;
    for (put, size) in results {
        match put {
            BlobPut::Present => written.blobs_present += 1,
            BlobPut::Mounted => written.blobs_mounted += 1,
            BlobPut::Written => {
                written.blobs_uploaded += 1;
                bytes += size;
            }
        }
    }
    Ok(bytes)
}

/// One blob, with a log line saying what happened (and how fast, for large ones).
async fn copy_blob_logged(
    src: &dyn Store,
    dst: &dyn Store,
    desc: &Descriptor,
) -> Result<(BlobPut, u64)> {
    let started = Instant::now();
    let put = store::copy_blob(src, dst, desc).await.map_err(|e| match e.kind() {
        // Wrong bytes in the source: say so, and what a re-run will and will not redo.
        crate::ErrorKind::Content => Error::malformed(
            e.to_string(),
            format!(
                "{} holds a damaged copy; nothing was tagged: replace the source (fetch or carry it again) and re-run — blobs that arrived intact are kept",
                src.name()
            ),
        ),
        _ => e,
    })?;
    let size = human_size(desc.size);
    match put {
        BlobPut::Present => tracing::info!("blob {} ({size}): already present", desc.digest),
        BlobPut::Mounted => tracing::info!("blob {} ({size}): mounted", desc.digest),
        BlobPut::Written if desc.size >= LARGE_BLOB => {
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            tracing::info!(
                "blob {} ({size}): copied in {secs:.2} s, {}/s",
                desc.digest,
                human_size((desc.size as f64 / secs) as u64)
            );
        }
        BlobPut::Written => tracing::info!("blob {} ({size}): copied", desc.digest),
    }
    Ok((put, desc.size))
}

/// The human summary.
pub fn render_text(o: &MirrorOutcome) -> String {
    let mut s = format!(
        "{}\n  from:   {} ({})\n  {}:  {} ({})\n",
        o.image,
        o.source,
        o.source_digest,
        match crate::image::media::manifest_kind(&o.media_type) {
            Some(ManifestKind::Index) => "index",
            _ => "image",
        },
        o.digest,
        crate::image::media::short_name(&o.media_type)
    );
    if o.filtered {
        s.push_str("  filtered to the requested platforms: a new index; platform manifests keep their digests\n");
    }
    for p in &o.platforms {
        s.push_str(&format!("  {:<16} {}\n", p.platform, p.digest));
    }
    if o.attestations > 0 {
        s.push_str(&format!("  attestations: {}\n", o.attestations));
    }
    if !o.tags.is_empty() {
        s.push_str(&format!("  tags:   {}\n", o.tags.join(", ")));
    }
    let w = &o.written;
    s.push_str(&format!(
        "  copied {} blob(s), {} in {:.2} s ({} mounted, {} already present), {} manifest(s), {} tag(s)\n",
        w.blobs_uploaded,
        human_size(o.bytes_copied),
        o.seconds,
        w.blobs_mounted,
        w.blobs_present,
        w.manifests + usize::from(w.index),
        w.tags
    ));
    s
}
