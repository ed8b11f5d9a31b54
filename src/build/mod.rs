//! `archgate build`: daemonless multi-platform builds of Dockerfiles (FROM,
//! ARG, ENV, WORKDIR, ADD/COPY, RUN, LABEL, ...). Parsing, substitution and
//! planning are pure; layers are written reproducibly in one streaming pass;
//! a platform with `RUN` steps builds its layers in order in its own root
//! ([`run`]); publishing goes through the one `Store` trait.

pub mod buildx;
pub mod context;
pub mod dockerfile;
pub mod gzip;
pub mod layer;
pub mod plan;
mod request;
pub mod run;
pub mod subst;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::manifest;
use crate::image::media::{self, Format};
use crate::image::{Descriptor, Digest, ImageConfig, Location, RawManifest, Selector};
use crate::platform::Platform;
use crate::progress::Phase;
use crate::publish::{self, Blob, Written};
use crate::store::{BlobFrom, ImageView, IndexView, Pool, Store, StoreId};

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
    /// The full repository name to record in a layout or archive target.
    pub name: Option<String>,
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

/// One stage for one platform, resolved and planned.
struct Prepared {
    platform: Platform,
    /// What its `RUN` steps run as: the base's platform (`FROM --platform`), else `platform`.
    run_platform: Platform,
    base_name: String,
    /// The store the base came from, and its layers.
    base_store: Option<StoreId>,
    base_layers: Vec<Descriptor>,
    plan: plan::Plan,
    /// Fingerprints of the new layers, in order.
    fingerprints: Vec<String>,
    /// With `RUN` or `COPY --from` steps: how `RUN` executes (when there is
    /// one), and every step in order, built one after another in phase 2b.
    sequential: Option<(Option<run::Runner>, Vec<Staged>)>,
}

/// A step of a stage built in order, waiting to be built.
enum Staged {
    /// An `ADD`/`COPY` layer from the context: its fingerprint, entries and `Dockerfile:N`.
    Copy(String, context::Entries, String),
    /// A `COPY --from` of a stage or an image.
    CopyFrom(plan::LayerSpec),
    Run(plan::RunSpec),
}

/// Per layer built in phase 2: its entries, the Dockerfile line and the platform it is first built for.
type Jobs = BTreeMap<String, (context::Entries, String, String)>;

/// What building the stages needs, shared by every stage of every platform.
struct Ctx<'a> {
    req: &'a BuildRequest,
    settings: &'a Settings,
    df: &'a dockerfile::Dockerfile,
    file: &'a str,
    ignore: &'a Ignore,
    host: &'a Platform,
    cache: &'a LayerCache,
    pool: &'a mut Pool,
    blobs_built: &'a mut HashMap<String, LayerBlob>,
    /// Layers written to the layer cache.
    written: usize,
    /// What `COPY --from` copies out of, for the platform being built: stages
    /// built, images resolved (their layers are all base), each root
    /// unpacked only when a copy is not cached.
    sources: HashMap<plan::CopyFrom, StageBuilt>,
}

impl Ctx<'_> {
    /// [`layer_for`] in this build's layer cache.
    async fn layer(
        &self,
        fp: &str,
        entries: context::Entries,
        what: &str,
        subject: &str,
    ) -> Result<(LayerBlob, bool, context::Entries)> {
        layer_for(
            self.cache,
            self.blobs_built,
            fp,
            entries,
            what,
            subject,
            self.req.epoch,
        )
        .await
    }
}

/// A stage built (or an image resolved) for `COPY --from`.
struct StageBuilt {
    base_store: Option<StoreId>,
    base_layers: Vec<Descriptor>,
    steps: Steps,
}

/// What building a stage's steps in order gives.
struct Steps {
    fingerprints: Vec<String>,
    /// Every layer's digest: the base's, then the stage's.
    chain: Vec<Digest>,
    /// Its root with every step applied, when one was unpacked.
    root: Option<run::StageRoot>,
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
    let target_tag = publish::index_tag(&req.target, "build")?;
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
    if settings.build.run_timeout == 0 {
        return Err(Error::Config(
            "[build] run_timeout = 0: give the seconds one RUN step may take (at least 1)".into(),
        ));
    }
    let ignore = Ignore::load(&req.context)?;
    let host = Platform::host();
    let last = plan::last_stage(
        &df,
        &Inputs {
            file: &file,
            build_args: &req.args,
            target: &host,
            build: &host,
            epoch: req.epoch,
        },
    )?;
    let mut pool = Pool::new();
    let cache = LayerCache::new(&settings.cache_dir(), settings.build.threads)?;
    let mut blobs_built: HashMap<String, LayerBlob> = HashMap::new();
    let mut ctx = Ctx {
        req,
        settings,
        df: &df,
        file: &file,
        ignore: &ignore,
        host: &host,
        cache: &cache,
        pool: &mut pool,
        blobs_built: &mut blobs_built,
        written: 0,
        sources: HashMap::new(),
    };

    // 1. Per platform: the base (each location opened once), the plan, the layer inputs.
    let mut prepared = Vec::new();
    let mut jobs: Jobs = BTreeMap::new();
    for p in &req.platforms {
        prepared.push(prepare(&mut ctx, p, last, Some(&mut jobs)).await?);
    }

    // 2. Layers: every distinct one once, in parallel, off the async threads.
    let mut pending = Vec::new();
    for (fp, job) in jobs {
        match cache.lookup(&fp) {
            Some(hit) => {
                ctx.blobs_built.insert(fp, hit);
            }
            None => pending.push((fp, job)),
        }
    }
    // Layers written at once: one more than the compressing threads they
    // share, so the pool stays fed while a layer reads its next file or ends.
    let workers = cache.threads() + 1;
    let epoch = req.epoch;
    let built: Vec<(String, (LayerBlob, bool))> =
        futures_util::stream::iter(pending.into_iter().map(|(fp, (entries, line, p))| {
            let cache = cache.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let total = layer::file_bytes(&entries);
                    // `Dockerfile:12`: the file's name is enough beside the platform.
                    let short = std::path::Path::new(&line)
                        .file_name()
                        .map_or(line.clone(), |n| n.to_string_lossy().into_owned());
                    let tracker = crate::progress::start(&p, Phase::Compress, &short, Some(total));
                    let built = cache.layer_counted(
                        &entries,
                        epoch,
                        &format!("{line} ({p})"),
                        Some(&tracker),
                    );
                    if built.is_ok() {
                        tracker.complete();
                    }
                    built.map(|b| (fp, b))
                })
                .await
                .map_err(|e| Error::Internal(format!("layer writer stopped: {e}")))?
            }
        }))
        .buffer_unordered(workers)
        .try_collect()
        .await?;
    // What the gzip threads' blocks took goes back to the system before the
    // uploads take theirs (glibc keeps a thread's freed memory in its arena).
    layer::release_memory();
    // Another process may have written some while this one waited for them.
    ctx.written += built.iter().filter(|(_, (_, wrote))| *wrote).count();
    ctx.blobs_built
        .extend(built.into_iter().map(|(fp, (blob, _))| (fp, blob)));

    // 2b. Platforms with RUN or COPY --from steps: every step in order, in the
    // platform's own root; the stages and images they copy from first.
    for prep in &mut prepared {
        let Some((runner, staged)) = prep.sequential.take() else {
            continue;
        };
        let steps = run_steps(&mut ctx, prep, runner.as_ref(), staged).await?;
        prep.fingerprints = steps.fingerprints;
        // The stages and images copied from are this platform's only.
        ctx.sources.clear();
    }
    let layers_written = ctx.written;

    // 3. The plan: every blob with where it is, the manifests, the index.
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    let mut done = Vec::new();
    for prep in prepared {
        let what = format!("{} ({})", req.target, prep.platform);
        // Base layers: copied (or mounted) from the base's store.
        if let Some(id) = prep.base_store {
            let from = BlobFrom::Store(pool.get(id));
            blobs.extend(
                prep.base_layers
                    .iter()
                    .filter(|l| l.urls.is_empty())
                    .map(|d| Blob {
                        descriptor: d.clone(),
                        from: from.clone(),
                    }),
            );
        }
        // New layers, from the layer cache.
        let new: Vec<&LayerBlob> = prep
            .fingerprints
            .iter()
            .map(|fp| {
                blobs_built
                    .get(fp)
                    .ok_or_else(|| Error::Internal(format!("{what}: layer {fp} was not built")))
            })
            .collect::<Result<_>>()?;
        let layer_type = req
            .format
            .blob_media_type(media::OCI_LAYER_GZIP)
            .unwrap_or(media::OCI_LAYER_GZIP);
        blobs.extend(new.iter().map(|b| Blob {
            descriptor: blob_descriptor(layer_type, &b.digest, b.size),
            from: BlobFrom::File(cache.blob_path(&b.digest)),
        }));
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
        let config_type = req.format.config_media_type();
        blobs.push(Blob {
            descriptor: blob_descriptor(config_type, &config_digest, size),
            from: BlobFrom::Bytes(config_bytes.into()),
        });
        let manifest_type = req.format.manifest_media_type();
        let mut layer_descs: Vec<Value> = Vec::new();
        for l in &prep.base_layers {
            let mut d = serde_json::to_value(l).map_err(|e| Error::Internal(e.to_string()))?;
            d["mediaType"] = json!(
                req.format
                    .blob_media_type(&l.media_type)
                    .unwrap_or(&l.media_type)
            );
            layer_descs.push(d);
        }
        for b in &new {
            layer_descs.push(json!({
                "mediaType": layer_type,
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
        entries.push(manifest::platform_entry(&manifest, parsed.platform_spec()));
        done.push(BuiltPlatform {
            platform: prep.platform.to_string(),
            digest: manifest.digest.clone(),
            base: prep.base_name,
            layers: prep.base_layers.len() + new.len(),
            new_layers: new.iter().map(|b| b.digest.clone()).collect(),
        });
        manifests.push(manifest);
    }
    let index = manifest::index(entries, req.format)?;

    // 4. Publish: blobs, per-platform manifests by digest, the index by digest, tags last.
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

/// Resolves and plans stage `stage` for `p`. With `jobs`, a stage without
/// `RUN` or `COPY --from` puts its layers there (built in parallel in phase
/// 2); otherwise every step is staged to be built in order.
async fn prepare(
    ctx: &mut Ctx<'_>,
    p: &Platform,
    stage: usize,
    jobs: Option<&mut Jobs>,
) -> Result<Prepared> {
    let file = ctx.file;
    let inputs = Inputs {
        file,
        build_args: &ctx.req.args,
        target: p,
        build: ctx.host,
        epoch: ctx.req.epoch,
    };
    let (base_name, base_store, base_layers, base_config, run_platform) =
        match plan::base(ctx.df, &inputs, stage)? {
            Base::Scratch => (
                "scratch".to_string(),
                None,
                Vec::new(),
                plan::scratch_config(p),
                p.clone(),
            ),
            Base::Image {
                reference,
                platform,
                line,
            } => {
                let location = Location::parse(&reference)
                    .map_err(|e| Error::Invalid(format!("{file}:{line}: FROM {reference}: {e}")))?;
                let (id, selector) = ctx.pool.open_image(&location, ctx.settings).await?;
                let base =
                    resolve_base(ctx.pool.get(id), &selector, &reference, &platform, p).await?;
                let config: Value = serde_json::from_slice(base.raw_config()).map_err(|e| {
                    Error::malformed(
                        format!("base {reference} config {}", base.manifest().config.digest),
                        format!("not JSON: {e}"),
                    )
                })?;
                (
                    format!("{reference}@{}", base.raw_manifest().digest),
                    Some(id),
                    base.manifest().layers.clone(),
                    config,
                    platform,
                )
            }
        };
    let plan = plan::apply(ctx.df, &inputs, stage, base_config)?;
    let mut fingerprints = Vec::new();
    let sequential = match jobs {
        Some(jobs) if !plan.runs() && !plan.copies_from() => {
            for step in &plan.steps {
                let plan::Step::Copy(spec) = step else {
                    continue;
                };
                let what = format!("{file}:{}", spec.line);
                let entries = context::entries(&ctx.req.context, ctx.ignore, spec, &what)?;
                let fp = layer::fingerprint(&entries, ctx.req.epoch);
                jobs.entry(fp.clone())
                    .or_insert((entries, what, p.to_string()));
                fingerprints.push(fp);
            }
            None
        }
        _ => {
            // Checked before anything is built: the host can run this platform.
            let first = plan.steps.iter().find_map(|s| match s {
                plan::Step::Run(r) => Some(r.line),
                plan::Step::Copy(_) => None,
            });
            let runner = match first {
                Some(line) => {
                    let runner = run::runner_for(&run_platform, &format!("{file}:{line}"))?;
                    // Checked before anything is built, as unpacking would.
                    unpackable(&base_layers, &format!("{file}:{line}: RUN on {base_name}"))?;
                    Some(runner)
                }
                None => None,
            };
            let mut staged = Vec::new();
            for step in &plan.steps {
                staged.push(match step {
                    plan::Step::Copy(spec) if spec.from.is_some() => Staged::CopyFrom(spec.clone()),
                    plan::Step::Copy(spec) => {
                        let what = format!("{file}:{}", spec.line);
                        let entries = context::entries(&ctx.req.context, ctx.ignore, spec, &what)?;
                        Staged::Copy(layer::fingerprint(&entries, ctx.req.epoch), entries, what)
                    }
                    plan::Step::Run(r) => Staged::Run(r.clone()),
                });
            }
            Some((runner, staged))
        }
    };
    Ok(Prepared {
        platform: p.clone(),
        run_platform,
        base_name,
        base_store,
        base_layers,
        plan,
        fingerprints,
        sequential,
    })
}

/// Builds stage `stage` for `p` (for a `COPY --from`): planned, then its steps in order.
fn build_stage<'c, 'a: 'c>(
    ctx: &'c mut Ctx<'a>,
    p: &'c Platform,
    stage: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<StageBuilt>> + 'c>> {
    Box::pin(async move {
        let mut prep = prepare(ctx, p, stage, None).await?;
        let (runner, staged) = prep.sequential.take().unwrap_or_default();
        let steps = run_steps(ctx, &prep, runner.as_ref(), staged).await?;
        Ok(StageBuilt {
            base_store: prep.base_store,
            base_layers: prep.base_layers,
            steps,
        })
    })
}

/// Builds one stage's steps in order in a root unpacked from its base:
/// each `ADD`/`COPY` layer is written (or found) and applied, each `RUN`
/// and `COPY --from` found in the step cache ([`run::step_key`],
/// [`run::copy_key`]) or executed and its changes written as a layer. The
/// root is unpacked only when a `RUN` must execute: a rebuild with nothing
/// changed downloads, unpacks and runs nothing.
async fn run_steps(
    ctx: &mut Ctx<'_>,
    prep: &Prepared,
    runner: Option<&run::Runner>,
    staged: Vec<Staged>,
) -> Result<Steps> {
    let subject = prep.platform.to_string();
    let epoch = ctx.req.epoch;
    let file = ctx.file;
    let mut parents: Vec<Digest> = prep.base_layers.iter().map(|l| l.digest.clone()).collect();
    let mut root: Option<run::StageRoot> = None;
    // This stage's layers not yet in the root (there is no root yet).
    let mut unapplied: Vec<(Digest, String)> = Vec::new();
    let mut fingerprints = Vec::new();
    for step in staged {
        // The layer's key, the layer, whether it was written now, `Dockerfile:N`,
        // and whether the root still needs it applied.
        let (fp, blob, wrote, what, apply) = match step {
            Staged::Copy(fp, entries, what) => {
                let (blob, wrote, _) = ctx.layer(&fp, entries, &what, &subject).await?;
                (fp, blob, wrote, what, true)
            }
            Staged::CopyFrom(spec) => {
                let what = format!("{file}:{}", spec.line);
                let (key, blob, wrote) = copy_from(ctx, prep, &spec, &what).await?;
                (key, blob, wrote, what, true)
            }
            Staged::Run(spec) => {
                let what = format!("{file}:{}", spec.line);
                let Some(runner) = runner else {
                    return Err(Error::Internal(format!("{what}: RUN without a runner")));
                };
                let key = run::step_key(&prep.run_platform, &parents, &spec, epoch);
                match ctx.cache.lookup(&key) {
                    Some(hit) => (key, hit, false, what, true),
                    None => {
                        let r = match &mut root {
                            Some(r) => r,
                            None => root.insert(
                                unpack_stage(
                                    ctx,
                                    prep.base_store,
                                    &prep.base_layers,
                                    &subject,
                                    &unapplied,
                                )
                                .await?,
                            ),
                        };
                        unapplied.clear();
                        let settings = ctx.settings;
                        let timeout = std::time::Duration::from_secs(settings.build.run_timeout);
                        let share_net = settings.build.network == crate::config::BuildNetwork::Host;
                        let entries = r
                            .run(&spec, runner, &prep.run_platform, &what, timeout, share_net)
                            .await?;
                        let fp = layer::fingerprint(&entries, epoch);
                        let (blob, wrote, _) = ctx.layer(&fp, entries, &what, &subject).await?;
                        ctx.cache.remember(&key, &blob)?;
                        // Its changes are in the root already.
                        (fp, blob, wrote, what, false)
                    }
                }
            }
        };
        if apply {
            match &mut root {
                Some(r) => r.apply_built(&ctx.cache.blob_path(&blob.digest), &what)?,
                None => unapplied.push((blob.digest.clone(), what)),
            }
        }
        ctx.written += usize::from(wrote);
        parents.push(blob.digest.clone());
        ctx.blobs_built.insert(fp.clone(), blob);
        fingerprints.push(fp);
    }
    Ok(Steps {
        fingerprints,
        chain: parents,
        root,
    })
}

/// One `COPY --from`: its layer from the step cache, keyed by the source's
/// layers and the copy ([`run::copy_key`]), else copied out of the source's
/// root (the stage built, or the image unpacked, now) and remembered. Returns
/// the key, the layer and whether it was written now.
async fn copy_from(
    ctx: &mut Ctx<'_>,
    prep: &Prepared,
    spec: &plan::LayerSpec,
    what: &str,
) -> Result<(String, LayerBlob, bool)> {
    let subject = prep.platform.to_string();
    let epoch = ctx.req.epoch;
    let Some(from) = &spec.from else {
        return Err(Error::Internal(format!(
            "{what}: COPY --from without a source"
        )));
    };
    // The source's layers (a stage is built now, an image only resolved).
    if !ctx.sources.contains_key(from) {
        let built = match from {
            plan::CopyFrom::Stage(j) => build_stage(ctx, &prep.platform, *j).await?,
            plan::CopyFrom::Image(reference) => {
                let location = Location::parse(reference)
                    .map_err(|e| Error::Invalid(format!("{what}: COPY --from={reference}: {e}")))?;
                let (id, selector) = ctx.pool.open_image(&location, ctx.settings).await?;
                let image = resolve_base(
                    ctx.pool.get(id),
                    &selector,
                    reference,
                    &prep.platform,
                    &prep.platform,
                )
                .await?;
                let layers = image.manifest().layers.clone();
                StageBuilt {
                    base_store: Some(id),
                    steps: Steps {
                        fingerprints: Vec::new(),
                        chain: layers.iter().map(|l| l.digest.clone()).collect(),
                        root: None,
                    },
                    base_layers: layers,
                }
            }
        };
        ctx.sources.insert(from.clone(), built);
    }
    let label = match from {
        plan::CopyFrom::Stage(j) => plan::stage_label(ctx.df, *j),
        plan::CopyFrom::Image(reference) => reference.clone(),
    };
    let key = run::copy_key(&prep.platform, &ctx.sources[from].steps.chain, spec, epoch);
    if let Some(hit) = ctx.cache.lookup(&key) {
        return Ok((key, hit, false));
    }
    // Not cached: the source's root, unpacked when it is not yet (its base's
    // layers, then its own).
    if ctx.sources[from].steps.root.is_none() {
        let b = &ctx.sources[from];
        let own: Vec<(Digest, String)> = b.steps.chain[b.base_layers.len()..]
            .iter()
            .map(|d| (d.clone(), format!("{label} layer {d}")))
            .collect();
        let r = unpack_stage(ctx, b.base_store, &b.base_layers, &subject, &own).await?;
        if let Some(b) = ctx.sources.get_mut(from) {
            b.steps.root = Some(r);
        }
    }
    let Some(root) = ctx.sources[from].steps.root.as_ref() else {
        return Err(Error::Internal(format!("{what}: {label} was not unpacked")));
    };
    let entries = context::entries_from_root(root.fs(), spec, what, &label)?;
    let fp = layer::fingerprint(&entries, epoch);
    let (blob, wrote, _) = ctx.layer(&fp, entries, what, &subject).await?;
    ctx.cache.remember(&key, &blob)?;
    Ok((key, blob, wrote))
}

/// The layer of `entries` (fingerprint `fp`): built already in this build,
/// found in the layer cache, or written now; and whether it was written now.
async fn layer_for(
    cache: &LayerCache,
    blobs_built: &HashMap<String, LayerBlob>,
    fp: &str,
    entries: context::Entries,
    what: &str,
    subject: &str,
    epoch: i64,
) -> Result<(LayerBlob, bool, context::Entries)> {
    if let Some(b) = blobs_built.get(fp) {
        return Ok((b.clone(), false, entries));
    }
    let c = cache.clone();
    let label = format!("{what} ({subject})");
    let (entries, blob) = tokio::task::spawn_blocking(move || {
        let b = c.layer_counted(&entries, epoch, &label, None);
        (entries, b)
    })
    .await
    .map_err(|e| Error::Internal(format!("layer writer stopped: {e}")))?;
    let (blob, wrote) = blob?;
    Ok((blob, wrote, entries))
}

/// Whether every layer can be unpacked: none is a foreign layer (only at its URLs).
fn unpackable(layers: &[Descriptor], what: &str) -> Result<()> {
    match layers.iter().find(|l| !l.urls.is_empty()) {
        Some(l) => Err(Error::Invalid(format!(
            "{what}: layer {} is a foreign layer (only at its URLs), which archgate cannot unpack: build FROM or copy from an image without foreign layers",
            l.digest
        ))),
        None => Ok(()),
    }
}

/// A stage's root: the base's layers (downloaded into the cache when
/// missing), then this build's layers `earlier` (digest, what), in order.
async fn unpack_stage(
    ctx: &Ctx<'_>,
    base_store: Option<StoreId>,
    base_layers: &[Descriptor],
    subject: &str,
    earlier: &[(Digest, String)],
) -> Result<run::StageRoot> {
    let settings = ctx.settings;
    let mut files = Vec::new();
    if let Some(id) = base_store {
        let verify_cache = crate::verify::cache::Cache::new(settings.cache_dir());
        let store = ctx.pool.get(id);
        unpackable(base_layers, subject)?;
        for l in base_layers {
            files.push((l.clone(), verify_cache.blob(store, l, None).await?));
        }
    }
    let parent = settings.cache_dir().join("run");
    let max = settings.verify.max_unpacked_bytes;
    let sub = subject.to_string();
    let mut root =
        tokio::task::spawn_blocking(move || run::StageRoot::unpack(&parent, &files, max, &sub))
            .await
            .map_err(|e| Error::Internal(format!("unpacking the base for RUN: {e}")))??;
    for (digest, what) in earlier {
        root.apply_built(&ctx.cache.blob_path(digest), what)?;
    }
    Ok(root)
}

/// A descriptor of a blob written here (no platform, annotations or URLs).
fn blob_descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.clone(),
        size,
        platform: None,
        annotations: BTreeMap::new(),
        urls: Vec::new(),
    }
}

/// The base's image for `platform`: from an index, that platform's entry; a
/// single-platform image must say `platform` in its config.
async fn resolve_base(
    store: &dyn Store,
    selector: &Selector,
    reference: &str,
    platform: &Platform,
    target: &Platform,
) -> Result<ImageView> {
    let view = IndexView::read(store, selector, &format!("base {reference}")).await?;
    let image = match view.index() {
        None => view.image(&view.raw().descriptor()).await?,
        Some(_) => {
            let entries = view.platform_entries().await?;
            let Some(found) = entries.iter().find(|e| e.platform.matches(platform)) else {
                let have: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
                return Err(Error::Invalid(format!(
                    "base {reference} has no {platform} image (it has {}): build for its platforms with --platform, or pick a base that has {platform}",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                )));
            };
            view.image(&found.descriptor).await?
        }
    };
    let says = image.platform();
    if !says.matches(platform) {
        return Err(Error::Invalid(format!(
            "base {reference} is an image for {says}, not {platform} (building {target}): use a multi-platform base (an index), or build only --platform {says}"
        )));
    }
    Ok(image)
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
