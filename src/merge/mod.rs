//! `archgate merge`: per-architecture images (or indexes) → one multi-arch
//! index, atomically. Everything is read and checked before anything is
//! written; then blobs, per-platform manifests by digest, the index by digest,
//! and the tags last — so a failure never moves a tag, and a re-run writes
//! nothing that is already there.

pub mod plan;
mod request;

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::manifest;
use crate::image::media::Format;
use crate::image::{Descriptor, Digest, Location, RawManifest, Selector};
use crate::platform::Platform;
use crate::publish::{self, Blob, Written};
use crate::store::{BlobFrom, IndexView, Pool, StoreId};

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
    /// The full repository name to record in a layout or archive target.
    pub name: Option<String>,
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

/// Runs a merge.
pub async fn merge(req: &MergeRequest, settings: &Settings) -> Result<MergeOutcome> {
    if req.sources.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one source: pass image locations, or set [merge] sources in archgate.toml".into(),
        ));
    }
    let target_tag = publish::index_tag(&req.target, "merge")?;
    for (i, spec) in req.sources.iter().enumerate() {
        if req.sources[..i].iter().any(|o| o.location == spec.location) {
            tracing::warn!(
                "merge source {} is named twice; it is read once (each source counts once toward the required platforms)",
                spec.location
            );
        }
    }

    // 1. Read every source and check it, before anything is written. One
    //    store (one client, one authentication, pooled connections) per
    //    source repository or layout, however many sources name it.
    let mut pool = Pool::new();
    let mut candidates = Vec::new();
    let mut attestations = Vec::new();
    let mut origin: HashMap<Digest, StoreId> = HashMap::new();
    for spec in &req.sources {
        let location = Location::parse(&spec.location)?;
        let (id, selector) = pool.open_image(&location, settings).await?;
        let view = IndexView::read(pool.get(id), &selector, &spec.location).await?;
        if view.index().is_none() {
            let image = view.image(&view.raw().descriptor()).await?;
            origin.insert(view.raw().digest.clone(), id);
            candidates.push(Candidate {
                source: spec.location.clone(),
                platform: image.stated_platform()?,
                manifest: image.into_raw(),
                claimed: None,
                expected: spec.expected.clone(),
                annotations: Default::default(),
            });
            continue;
        }
        for desc in view.attestations() {
            origin.insert(desc.digest.clone(), id);
            attestations.push(Attestation {
                source: spec.location.clone(),
                descriptor: desc.clone(),
            });
        }
        for entry in view.platform_entries().await? {
            origin.insert(entry.descriptor.digest.clone(), id);
            if let Some(wanted) = &req.platforms
                && !wanted.iter().any(|w| w.matches(&entry.platform))
                && spec.expected.is_none()
            {
                continue; // not asked for: not even fetched
            }
            let image = view.image(&entry.descriptor).await?;
            candidates.push(Candidate {
                source: spec.location.clone(),
                platform: image.stated_platform()?,
                manifest: image.into_raw(),
                claimed: Some(entry.platform),
                expected: spec.expected.clone(),
                annotations: entry.descriptor.annotations,
            });
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
    // The release's required platforms, still before anything is written.
    let selected: Vec<Platform> = selection
        .images
        .iter()
        .map(|c| c.platform.clone())
        .collect();
    crate::gate::check_covers(settings, "merge", &selected)?;
    // 2. The plan: every blob, the manifests, the index; nothing written yet.
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    let mut merged = Vec::new();
    // Uncompressed layers (a `docker save` archive's) become gzip on the way
    // into the Docker format, which registries and Docker 19.03 expect;
    // the config's diff_ids stay true. Spooled under the cache, not written yet.
    // Made on first need: most merges compress nothing.
    let mut spool: Option<tempfile::TempDir> = None;
    for (c, conv) in selection.images.iter().zip(converted.iter_mut()) {
        let src = pool.get(origin[&c.manifest.digest]);
        let from = BlobFrom::Store(src);
        let Some(docker) = conv.as_mut().filter(|_| req.format == Format::Docker) else {
            push_blobs(&mut blobs, &from, &c.manifest, &c.source)?;
            continue;
        };
        let what = format!("{} manifest {}", c.source, c.manifest.digest);
        let parsed = c.manifest.image(&what)?;
        let mut replacements = Vec::new();
        for d in parsed.blobs() {
            let uncompressed = d.media_type == crate::image::media::OCI_LAYER_TAR
                || d.media_type == crate::image::media::DOCKER_LAYER_TAR;
            if !uncompressed {
                blobs.push(Blob {
                    descriptor: d.clone(),
                    from: from.clone(),
                });
                continue;
            }
            let dir = match spool.as_ref() {
                Some(made) => made.path().to_path_buf(),
                None => {
                    let made = compress_spool(settings)?;
                    let dir = made.path().to_path_buf();
                    spool = Some(made);
                    dir
                }
            };
            let (path, gz) = gzip_blob(src, d, &dir).await?;
            tracing::info!(
                "{}: layer {} gzipped for the Docker format: {} ({} → {})",
                c.platform,
                d.digest,
                gz.digest,
                crate::inspect::human_size(d.size),
                crate::inspect::human_size(gz.size)
            );
            blobs.push(Blob {
                descriptor: gz.clone(),
                from: BlobFrom::File(path),
            });
            replacements.push((d.digest.clone(), gz));
        }
        if !replacements.is_empty() {
            *docker = plan::replace_layers(docker, &replacements, &what)?;
        }
    }
    for (c, conv) in selection.images.iter().zip(&converted) {
        let manifest = conv.as_ref().unwrap_or(&c.manifest);
        manifests.push(manifest.clone());
        entries.push(plan::entry(c, manifest));
        merged.push(MergedPlatform {
            platform: c.platform.to_string(),
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            source: c.source.clone(),
            converted_from: conv.as_ref().map(|_| c.manifest.digest.clone()),
        });
    }
    for a in &kept {
        let src = pool.get(origin[&a.descriptor.digest]);
        let manifest = src
            .get_manifest(&Selector::Digest(a.descriptor.digest.clone()))
            .await?;
        push_blobs(&mut blobs, &BlobFrom::Store(src), &manifest, &a.source)?;
        manifests.push(manifest);
        entries.push(a.descriptor.clone());
    }
    let index = manifest::index(entries, req.format)?;

    // 3. Write: blobs, manifests by digest, the index by digest, tags last.
    let tags = [vec![target_tag], req.extra_tags.clone()].concat();
    let (tags, written) = publish::write_index(
        &req.target,
        settings,
        blobs,
        manifests,
        &index,
        tags,
        req.name.as_deref(),
    )
    .await?;
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

/// Adds the blobs `manifest` references, to be taken `from` its source.
/// A private directory under the cache for the layers a merge gzips
/// (removed when dropped, after publishing).
fn compress_spool(settings: &Settings) -> Result<tempfile::TempDir> {
    let cache = settings.cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
    tempfile::Builder::new()
        .prefix(".archgate-compress-")
        .tempdir_in(&cache)
        .map_err(|e| Error::io(&cache, e))
}

/// Gzips the uncompressed layer `layer` of `src` into a file under `dir`
/// (the build's level: the same layer gives the same bytes) and returns it
/// with its Docker-format descriptor.
async fn gzip_blob(
    src: &dyn crate::store::Store,
    layer: &Descriptor,
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, Descriptor)> {
    let reader = src.get_blob(&layer.digest, Some(layer.size)).await?;
    let path = dir.join(layer.digest.hex());
    let out = path.clone();
    let what = format!("layer {} of {}", layer.digest, src.name());
    let (digest, size) = tokio::task::spawn_blocking(move || -> Result<(Digest, u64)> {
        use std::io::Write;
        let mut input = tokio_util::io::SyncIoBridge::new(reader);
        let file = std::fs::File::create(&out).map_err(|e| Error::io(&out, e))?;
        let hashing = crate::image::digest::HashWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: crate::image::digest::Hasher::new(),
        };
        let mut gz = flate2::write::GzEncoder::new(
            hashing,
            flate2::Compression::new(crate::build::layer::LEVEL),
        );
        std::io::copy(&mut input, &mut gz).map_err(|e| Error::malformed(&what, e))?;
        let mut hashing = gz.finish().map_err(|e| Error::io(&out, e))?;
        hashing.flush().map_err(|e| Error::io(&out, e))?;
        let size = hashing.hasher.len();
        Ok((hashing.hasher.finish(), size))
    })
    .await
    .map_err(|e| Error::Internal(format!("compress task failed: {e}")))??;
    Ok((
        path,
        Descriptor {
            media_type: crate::image::media::DOCKER_LAYER_GZIP.to_string(),
            digest,
            size,
            platform: None,
            annotations: layer.annotations.clone(),
            urls: Vec::new(),
        },
    ))
}

fn push_blobs<'a>(
    blobs: &mut Vec<Blob<'a>>,
    from: &BlobFrom<'a>,
    manifest: &RawManifest,
    source: &str,
) -> Result<()> {
    let parsed = manifest.image(&format!("{source} manifest {}", manifest.digest))?;
    blobs.extend(parsed.blobs().map(|d| Blob {
        descriptor: d.clone(),
        from: from.clone(),
    }));
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
