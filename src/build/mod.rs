//! `archgate build`: daemonless multi-platform builds of Dockerfiles that
//! execute nothing (FROM, ARG, ENV, WORKDIR, ADD/COPY, LABEL, ...). Parsing,
//! substitution and planning are pure; layers are written reproducibly in one
//! streaming pass; publishing goes through the one `Store` trait.

pub mod buildx;
pub mod context;
pub mod dockerfile;
pub mod layer;
pub mod plan;
mod request;
pub mod subst;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::media::{self, Format, ManifestKind};
use crate::image::{
    Descriptor, Digest, ImageConfig, Location, PlatformSpec, RawManifest, Selector,
};
use crate::merge::Written;
use crate::platform::{self, Platform};
use crate::publish;
use crate::store::{self, BlobPut, BlobReader, Store};

use context::Ignore;
use layer::{LayerBlob, LayerCache};
use plan::{Base, Inputs};

/// Everything `build` needs, resolved from flags and `[build]`.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub args: BTreeMap<String, String>,
    pub platforms: Vec<Platform>,
    pub target: Location,
    /// More tags for the index (besides the target's own).
    pub extra_tags: Vec<String>,
    pub format: Format,
    /// `SOURCE_DATE_EPOCH`, else 0: every timestamp in layers and config.
    pub epoch: i64,
    pub driver: crate::config::BuildDriver,
}

/// What `build` did.
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    /// The target, pinned to the index digest.
    pub image: String,
    pub index_digest: Digest,
    pub media_type: String,
    pub platforms: Vec<BuiltPlatform>,
    pub tags: Vec<String>,
    /// Layers written to the layer cache now (0 when every input was unchanged).
    pub layers_written: usize,
    /// What had to be published (all zero on a no-op rebuild).
    pub written: Written,
}

/// One platform of the new index.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltPlatform {
    pub platform: String,
    pub digest: Digest,
    pub base: String,
    pub layers: usize,
    pub new_layers: Vec<Digest>,
}

/// One platform, resolved and planned.
struct Prepared {
    platform: Platform,
    base_name: String,
    /// The store the base came from, and its layers.
    base_store: Option<usize>,
    base_layers: Vec<Descriptor>,
    plan: plan::Plan,
    /// Fingerprints of the new layers, in order.
    fingerprints: Vec<String>,
}

fn read_dockerfile(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Invalid(format!(
                "Dockerfile {} not found: pass -f/--file or set [build] dockerfile",
                path.display()
            ))
        } else {
            Error::io(path, e)
        }
    })
}

/// Runs a build.
pub async fn build(req: &BuildRequest, settings: &Settings) -> Result<BuildOutcome> {
    let target_tag = match req.target.selector() {
        Some(Selector::Tag(t)) => t,
        _ => {
            return Err(Error::Invalid(format!(
                "build target `{}` names no tag: write e.g. `{}:v1` (the index digest is computed)",
                req.target, req.target
            )));
        }
    };
    if req.driver == crate::config::BuildDriver::Buildx {
        return buildx::build(req).await;
    }
    let file = req.dockerfile.display().to_string();
    let text = read_dockerfile(&req.dockerfile)?;
    let df = dockerfile::parse(&text)
        .map_err(|e| Error::Invalid(format!("{file}:{}: {}", e.line, e.message)))?;
    if req.platforms.is_empty() {
        return Err(Error::Invalid(
            "no platform to build: pass --platform or set `platforms`".into(),
        ));
    }
    if !req.context.is_dir() {
        return Err(Error::Invalid(format!(
            "build context {} is not a directory: pass CONTEXT or set [build] context",
            req.context.display()
        )));
    }
    let ignore = Ignore::load(&req.context)?;
    let host = Platform::host();

    // 1. Per platform: the base (each location opened once), the plan, the layer inputs.
    let mut stores: Vec<Box<dyn Store>> = Vec::new();
    let mut opened: HashMap<String, usize> = HashMap::new();
    let mut prepared = Vec::new();
    let mut jobs: BTreeMap<String, (context::Entries, String)> = BTreeMap::new();
    for p in &req.platforms {
        let inputs = Inputs {
            file: &file,
            build_args: &req.args,
            target: p,
            build: &host,
            epoch: req.epoch,
        };
        let (base_name, base_store, base_layers, base_config) = match plan::base(&df, &inputs)? {
            Base::Scratch => (
                "scratch".to_string(),
                None,
                Vec::new(),
                plan::scratch_config(p),
            ),
            Base::Image {
                reference,
                platform,
                line,
            } => {
                let idx = match opened.get(&reference) {
                    Some(i) => *i,
                    None => {
                        let location = Location::parse(&reference).map_err(|e| {
                            Error::Invalid(format!("{file}:{line}: FROM {reference}: {e}"))
                        })?;
                        stores.push(store::open(&location, settings, false).await?);
                        opened.insert(reference.clone(), stores.len() - 1);
                        stores.len() - 1
                    }
                };
                let (manifest, config) =
                    resolve_base(stores[idx].as_ref(), &reference, &platform, p).await?;
                (
                    format!("{reference}@{}", manifest.digest),
                    Some(idx),
                    manifest_layers(&manifest, &reference)?,
                    config,
                )
            }
        };
        let plan = plan::apply(&df, &inputs, base_config)?;
        let mut fingerprints = Vec::new();
        for spec in &plan.layers {
            let what = format!("{file}:{}", spec.line);
            let entries = context::entries(&req.context, &ignore, spec, &what)?;
            let fp = layer::fingerprint(&entries, req.epoch);
            jobs.entry(fp.clone())
                .or_insert((entries, format!("{what} ({p})")));
            fingerprints.push(fp);
        }
        prepared.push(Prepared {
            platform: p.clone(),
            base_name,
            base_store,
            base_layers,
            plan,
            fingerprints,
        });
    }

    // 2. Layers: every distinct one once, in parallel, off the async threads.
    let cache = LayerCache::new(&settings.cache_dir());
    let mut layers_written = 0;
    let mut blobs: HashMap<String, LayerBlob> = HashMap::new();
    let mut pending = Vec::new();
    for (fp, job) in jobs {
        match cache.lookup(&fp) {
            Some(hit) => {
                blobs.insert(fp, hit);
            }
            None => pending.push((fp, job)),
        }
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let epoch = req.epoch;
    let built: Vec<(String, (LayerBlob, bool))> =
        futures_util::stream::iter(pending.into_iter().map(|(fp, (entries, what))| {
            let cache = cache.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    cache.layer_counted(&entries, epoch, &what).map(|b| (fp, b))
                })
                .await
                .map_err(|e| Error::Internal(format!("layer writer stopped: {e}")))?
            }
        }))
        .buffer_unordered(workers)
        .try_collect()
        .await?;
    // Another process may have written some while this one waited for them.
    layers_written += built.iter().filter(|(_, (_, wrote))| *wrote).count();
    blobs.extend(built.into_iter().map(|(fp, (blob, _))| (fp, blob)));

    // 3. Publish: blobs, per-platform manifests by digest, the index by digest, tags last.
    let target = store::open(&req.target, settings, true).await?;
    let target = target.as_ref();
    let mut written = Written::default();
    let mut entries = Vec::new();
    let mut done = Vec::new();
    let concurrency = settings.network.concurrency.max(1);
    for prep in prepared {
        let what = format!("{} ({})", req.target, prep.platform);
        // Base layers: copied (or mounted) from the base's store.
        if let Some(i) = prep.base_store {
            let src = stores[i].as_ref();
            let copies = prep
                .base_layers
                .iter()
                .filter(|l| l.urls.is_empty())
                .map(|d| store::copy_blob(src, target, d));
            let results: Vec<BlobPut> = futures_util::stream::iter(copies)
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            count(&mut written, &results);
        }
        // New layers, from the layer cache.
        let new: Vec<&LayerBlob> = prep
            .fingerprints
            .iter()
            .map(|fp| {
                blobs
                    .get(fp)
                    .ok_or_else(|| Error::Internal(format!("{what}: layer {fp} was not built")))
            })
            .collect::<Result<_>>()?;
        let uploads = new
            .iter()
            .map(|b| put_file(target, &b.digest, b.size, cache.blob_path(&b.digest)));
        let results: Vec<BlobPut> = futures_util::stream::iter(uploads)
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        count(&mut written, &results);
        // Config and manifest.
        let mut config = prep.plan.config;
        if !config.get("rootfs").is_some_and(Value::is_object) {
            config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        }
        let mut diff_ids: Vec<Value> = config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        diff_ids.extend(new.iter().map(|b| json!(b.diff_id)));
        config["rootfs"]["diff_ids"] = Value::Array(diff_ids);
        let config_bytes = serde_json::to_vec(&config)
            .map_err(|e| Error::Internal(format!("{what}: cannot encode the config: {e}")))?;
        let config_digest = Digest::of(&config_bytes);
        // The index entry states what the config states.
        let parsed = ImageConfig::parse(&config_bytes, &what)?;
        let size = config_bytes.len() as u64;
        let r = if target.blob_exists(&config_digest).await? {
            BlobPut::Present
        } else {
            let bytes = bytes::Bytes::from(config_bytes);
            store::put_blob_restarting(target, &config_digest, size, || {
                let reader: BlobReader = Box::pin(std::io::Cursor::new(bytes.clone()));
                std::future::ready(Ok(reader))
            })
            .await?
        };
        count(&mut written, &[r]);
        let (manifest_type, config_type) = match req.format {
            Format::Oci => (media::OCI_MANIFEST, media::OCI_CONFIG),
            Format::Docker => (media::DOCKER_MANIFEST, media::DOCKER_CONFIG),
        };
        let mut layer_descs: Vec<Value> = Vec::new();
        for l in &prep.base_layers {
            let mut d = serde_json::to_value(l).map_err(|e| Error::Internal(e.to_string()))?;
            d["mediaType"] = json!(layer_media_type(&l.media_type, req.format));
            layer_descs.push(d);
        }
        for b in &new {
            layer_descs.push(json!({
                "mediaType": layer_media_type(media::OCI_LAYER_GZIP, req.format),
                "digest": b.digest,
                "size": b.size,
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": size},
            "layers": layer_descs,
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Internal(format!("{what}: cannot encode the manifest: {e}")))?;
        let manifest = RawManifest::from_bytes(bytes.into(), Some(manifest_type), &what)?;
        if publish::put_manifest_if_missing(target, &manifest).await? {
            written.manifests += 1;
        }
        let mut entry = manifest.descriptor();
        entry.platform = Some(PlatformSpec {
            architecture: parsed.architecture.clone(),
            os: parsed.os.clone(),
            variant: parsed.variant.clone(),
            os_version: None,
            os_features: None,
        });
        entries.push(entry);
        done.push(BuiltPlatform {
            platform: prep.platform.to_string(),
            digest: manifest.digest.clone(),
            base: prep.base_name,
            layers: prep.base_layers.len() + new.len(),
            new_layers: new.iter().map(|b| b.digest.clone()).collect(),
        });
    }
    let index = crate::merge::plan::index(entries, req.format)?;
    written.index = publish::put_manifest_if_missing(target, &index).await?;
    let mut tags = vec![target_tag];
    for t in &req.extra_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    written.tags = publish::tag(target, &index, &tags).await?;
    target.commit().await?;
    Ok(BuildOutcome {
        image: req.target.with_digest(&index.digest).to_string(),
        index_digest: index.digest.clone(),
        media_type: index.media_type.clone(),
        platforms: done,
        tags,
        layers_written,
        written,
    })
}

fn count(written: &mut Written, results: &[BlobPut]) {
    for r in results {
        match r {
            BlobPut::Present => written.blobs_present += 1,
            BlobPut::Mounted => written.blobs_mounted += 1,
            BlobPut::Written => written.blobs_uploaded += 1,
        }
    }
}

/// Uploads a layer file unless the target has it.
async fn put_file(
    target: &dyn Store,
    digest: &Digest,
    size: u64,
    path: PathBuf,
) -> Result<BlobPut> {
    if target.blob_exists(digest).await? {
        return Ok(BlobPut::Present);
    }
    store::put_blob_restarting(target, digest, size, || async {
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        Ok(Box::pin(f) as BlobReader)
    })
    .await
}

/// A layer media type in the manifest family of `format` (the bytes stay the same).
fn layer_media_type(mt: &str, format: Format) -> String {
    const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    match (format, mt) {
        (Format::Docker, media::OCI_LAYER_GZIP) => media::DOCKER_LAYER_GZIP.into(),
        (Format::Docker, media::OCI_LAYER_TAR) => DOCKER_LAYER_TAR.into(),
        (Format::Oci, media::DOCKER_LAYER_GZIP) => media::OCI_LAYER_GZIP.into(),
        (Format::Oci, DOCKER_LAYER_TAR) => media::OCI_LAYER_TAR.into(),
        _ => mt.to_string(),
    }
}

fn manifest_layers(manifest: &RawManifest, reference: &str) -> Result<Vec<Descriptor>> {
    Ok(manifest
        .image(&format!("base {reference} manifest {}", manifest.digest))?
        .layers)
}

/// The base's manifest for `platform` and its config: from an index, that
/// platform's entry; a single-platform image must say `platform` in its config.
async fn resolve_base(
    store: &dyn Store,
    reference: &str,
    platform: &Platform,
    target: &Platform,
) -> Result<(RawManifest, Value)> {
    let selector = match Location::parse(reference)?.selector() {
        Some(s) => s,
        None => store.default_selector().await?,
    };
    let top = store.get_manifest(&selector).await?;
    let manifest = match top.kind() {
        ManifestKind::Image => top,
        ManifestKind::Index => {
            let index = top.index(&format!("base {reference}"))?;
            let mut have = Vec::new();
            let mut found = None;
            for d in index.manifests {
                let p = d.platform.clone().unwrap_or_default();
                if platform::is_attestation(&p.os, &p.architecture, &d.annotations) {
                    continue;
                }
                let claimed = Platform::from_spec(&p.os, &p.architecture, p.variant.as_deref());
                if found.is_none() && claimed.matches(platform) {
                    found = Some(d);
                }
                have.push(claimed.to_string());
            }
            let Some(d) = found else {
                return Err(Error::Invalid(format!(
                    "base {reference} has no {platform} image (it has {}): build for its platforms with --platform, or pick a base that has {platform}",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                )));
            };
            store.get_manifest(&Selector::Digest(d.digest)).await?
        }
    };
    let what = format!("base {reference} manifest {}", manifest.digest);
    let parsed = manifest.image(&what)?;
    let cfg_what = format!("base {reference} config {}", parsed.config.digest);
    let bytes = store::read_blob(store, &parsed.config, &cfg_what).await?;
    let config: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed(&cfg_what, format!("not JSON: {e}")))?;
    let c = ImageConfig::parse(&bytes, &cfg_what)?;
    let says = Platform::from_spec(&c.os, &c.architecture, c.variant.as_deref());
    if !says.matches(platform) {
        return Err(Error::Invalid(format!(
            "base {reference} is an image for {says}, not {platform} (building {target}): use a multi-platform base (an index), or build only --platform {says}"
        )));
    }
    Ok((manifest, config))
}

/// The human summary.
pub fn render_text(o: &BuildOutcome) -> String {
    let mut s = format!(
        "{}\n  index:  {} ({})\n",
        o.image,
        o.index_digest,
        media::short_name(&o.media_type)
    );
    for p in &o.platforms {
        s.push_str(&format!(
            "  {:<16} {}  {} layer(s), {} new, on {}\n",
            p.platform,
            p.digest,
            p.layers,
            p.new_layers.len(),
            p.base
        ));
    }
    s.push_str(&format!("  tags:   {}\n", o.tags.join(", ")));
    s.push_str(&o.written.summary());
    s.push_str(&format!(
        "  {} layer(s) written to the layer cache\n",
        o.layers_written
    ));
    s
}
