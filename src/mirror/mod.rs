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

use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, Digest, Location, RawManifest, Selector};
use crate::inspect::human_size;
use crate::platform::Platform;
use crate::publish::{self, Blob, Written};
use crate::store::{self, BlobFrom, IndexView, Store};

/// One image to move.
#[derive(Debug, Clone)]
pub struct MirrorRequest {
    /// The source location as the user wrote it.
    pub source: String,
    /// The target location as the user wrote it.
    pub target: String,
    /// The platforms to keep; `None`: everything the source holds, byte for byte.
    pub platforms: Option<Vec<Platform>>,
    /// The full repository name to record in a layout or archive target;
    /// `None`: the source's own (its registry name, or what it records).
    pub name: Option<String>,
    /// Keep attestation entries (provenance, SBOM). `None`: yes, except into
    /// an archive (`oci-archive:`, `docker-archive:`), which is for import and
    /// where containerd trips on them (containerd#11344).
    pub keep_attestations: Option<bool>,
    /// Carry what refers to the index and to each platform manifest (OCI
    /// referrers: signed attestations, signatures, SBOMs); `--no-referrers`.
    pub referrers: bool,
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
    /// Referring manifests (OCI referrers) carried, with their subjects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<CarriedReferrer>,
    /// The index was filtered and things referred to the source's index: they
    /// are about the source's index digest, not the new one, and were left behind.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub index_referrers_left: bool,
    /// Tags that now point at the digest.
    pub tags: Vec<String>,
    /// Bytes of the blobs copied now (not those present or mounted).
    pub bytes_copied: u64,
    pub seconds: f64,
    pub written: Written,
}

/// One referring manifest carried.
#[derive(Debug, Clone, Serialize)]
pub struct CarriedReferrer {
    pub digest: Digest,
    pub subject: Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
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
    /// Referring manifests to carry, with their subjects.
    referrers: Vec<(Digest, RawManifest)>,
    carried: Vec<CarriedReferrer>,
    index_referrers_left: bool,
}

/// The per-platform placeholders of a mirror target: `{arch}` (`arm64`,
/// `arm-v7`) and `{platform}` (`linux-arm64`).
pub const PER_PLATFORM: [&str; 2] = ["{arch}", "{platform}"];

/// Mirrors the image `req` names: once, or — when the target holds `{arch}`
/// or `{platform}` — once per platform (the requested ones, else every
/// platform the source holds), each into its own target, as `docker save`
/// files and K3s's images folder want them.
pub async fn mirror_each(req: &MirrorRequest, settings: &Settings) -> Result<Vec<MirrorOutcome>> {
    if !PER_PLATFORM.iter().any(|p| req.target.contains(p)) {
        return Ok(vec![mirror(req, settings).await?]);
    }
    // Opened once for all the platforms (an archive source is unpacked once).
    let opened = store::open_image(&Location::parse(&req.source)?, settings).await?;
    let platforms = match &req.platforms {
        Some(p) => p.clone(),
        None => IndexView::read(opened.store.as_ref(), &opened.selector, &req.source)
            .await?
            .platform_entries()
            .await?
            .into_iter()
            .map(|e| e.platform)
            .collect(),
    };
    let mut out = Vec::new();
    for p in platforms {
        let arch = match &p.variant {
            Some(v) => format!("{}-{v}", p.architecture),
            None => p.architecture.clone(),
        };
        let one = MirrorRequest {
            target: req
                .target
                .replace("{arch}", &arch)
                .replace("{platform}", &format!("{}-{arch}", p.os)),
            platforms: Some(vec![p]),
            ..req.clone()
        };
        out.push(mirror_from(&one, &opened, settings, Instant::now()).await?);
    }
    Ok(out)
}

/// Mirrors one image.
pub async fn mirror(req: &MirrorRequest, settings: &Settings) -> Result<MirrorOutcome> {
    let started = Instant::now();
    let opened = store::open_image(&Location::parse(&req.source)?, settings).await?;
    mirror_from(req, &opened, settings, started).await
}

/// Mirrors the image `req` names from its source, already `opened`; the
/// outcome's seconds count from `started`.
async fn mirror_from(
    req: &MirrorRequest,
    opened: &store::Opened,
    settings: &Settings,
    started: Instant,
) -> Result<MirrorOutcome> {
    let target = Location::parse(&req.target)?;
    let target_tag = publish::named_tag(
        &target,
        "mirror",
        "name a tag, or none to keep the source's",
    )?;

    // 1. Read and check everything before writing.
    let src = opened.store.as_ref();
    let keep_attestations = req
        .keep_attestations
        .unwrap_or(target.keeps_attestations_by_default());
    let carry_referrers = req.referrers && target.holds_referrers();
    let plan = read_plan(
        src,
        &opened.selector,
        req,
        keep_attestations,
        carry_referrers,
    )
    .await?;
    let tag = match target_tag.or(opened.tag.clone()) {
        Some(t) => Some(t),
        None if store::needs_tag(&target) => {
            return Err(Error::Invalid(format!(
                "mirror target `{}` names no tag and the source names its image by digest: write e.g. `{}:v1`",
                req.target, req.target
            )));
        }
        None => None,
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
    let tags: Vec<String> = tag.into_iter().collect();
    let name = req
        .name
        .as_deref()
        .and_then(store::repository_of)
        .or(opened.name.clone());
    publish::warn_unnamed(&target, name.as_deref());
    let written = publish::write(
        dst,
        publish::Plan {
            blobs: plan
                .blobs
                .iter()
                .map(|d| Blob {
                    descriptor: d.clone(),
                    from: BlobFrom::Store(src),
                })
                .collect(),
            manifests: plan.manifests,
            head: plan.head.clone(),
            tags: tags.clone(),
            name,
            concurrency: settings.network.concurrency,
            log_each_blob: true,
            referrers: plan.referrers,
        },
    )
    .await?;
    let bytes_copied = written.bytes_uploaded;
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
        referrers: plan.carried,
        index_referrers_left: plan.index_referrers_left,
        tags,
        bytes_copied,
        seconds,
        written,
    })
}

/// Reads the top manifest and everything under it, filtered to the requested platforms.
async fn read_plan(
    src: &dyn Store,
    selector: &Selector,
    req: &MirrorRequest,
    keep_attestations: bool,
    carry_referrers: bool,
) -> Result<Plan> {
    let view = IndexView::read(src, selector, &req.source).await?;
    let top = view.raw().clone();
    let (head, manifests, platforms, attestations, filtered) = match view.index() {
        None => {
            let stated = match view.image(&top.descriptor()).await {
                Ok(image) => image.stated_platform(),
                Err(e) => Err(e),
            };
            let platform = match (&req.platforms, stated) {
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
        Some(_) => {
            let f = plan::filter(
                &top,
                req.platforms.as_deref(),
                keep_attestations,
                &req.source,
            )?;
            let mut manifests = Vec::new();
            let descriptors = f
                .images
                .iter()
                .map(|e| &e.descriptor)
                .chain(&f.attestations);
            for desc in descriptors {
                manifests.push(view.manifest(desc).await?);
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
    // What refers to the index (when it is copied unchanged) and to each platform manifest.
    let (mut referrers, mut carried, mut index_referrers_left) = (Vec::new(), Vec::new(), false);
    if carry_referrers {
        let mut subjects: Vec<Digest> = platforms.iter().map(|p| p.digest.clone()).collect();
        if !filtered {
            subjects.insert(0, top.digest.clone());
        } else if !crate::store::referrers::list(src, &top.digest)
            .await?
            .is_empty()
        {
            tracing::warn!(
                "{}: filtering makes a new index digest; what refers to the source's index {} (its attestation) is about that digest and is not carried; the platform manifests' referrers are",
                req.source,
                top.digest
            );
            index_referrers_left = true;
        }
        for subject in subjects {
            for r in crate::store::referrers::list(src, &subject).await? {
                let m = src
                    .get_manifest(&Selector::Digest(r.digest.clone()))
                    .await?;
                if m.kind() != ManifestKind::Image {
                    tracing::debug!(
                        "{}: referrer {} is an index: not carried",
                        req.source,
                        m.digest
                    );
                    continue;
                }
                carried.push(CarriedReferrer {
                    digest: m.digest.clone(),
                    subject: subject.clone(),
                    artifact_type: r.artifact_type.clone(),
                });
                referrers.push((subject.clone(), m));
            }
        }
    }
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    let images = manifests
        .iter()
        .chain((head.kind() == ManifestKind::Image).then_some(&head))
        .chain(referrers.iter().map(|(_, m)| m));
    for m in images {
        let parsed = m.image(&format!("{} manifest {}", req.source, m.digest))?;
        for d in parsed.blobs() {
            if seen.insert(d.digest.clone()) {
                blobs.push(d.clone());
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
        referrers,
        carried,
        index_referrers_left,
    })
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
    if !o.referrers.is_empty() {
        s.push_str(&format!(
            "  referrers: {} carried (signed attestations and other artifacts on the index and platform manifests)\n",
            o.referrers.len()
        ));
    }
    if o.index_referrers_left {
        s.push_str("  the source index's referrers (its attestation) are about the source's index digest: not carried to the filtered index\n");
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
