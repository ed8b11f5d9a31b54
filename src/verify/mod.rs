//! `archgate verify`: proof, through the index digest, that every required
//! platform of an image really runs its JDK (DESIGN.md, "Verification of one
//! platform").
//!
//! The image's tag is resolved once; everything after is fetched by digest
//! from that index, so the verdict is about exactly the bytes a release would
//! promote. Platforms are verified concurrently (bounded by the cores); within
//! one platform the checks are data: [`plan`] lists them with what each needs
//! and runs them in order, a check whose need did not pass is `skipped` with
//! that cause, and [`execute`] runs the rest.
//!
//! The three layers: [`policy`] (settings → validated policy), [`plan`] (which
//! checks, their needs, the runner: pure) and [`execute`] (a check against the
//! store, the root, the sandbox). Leaf modules: [`entries`] (the index walk),
//! [`unpack`] and [`cache`] (layers → cached roots, blobs), [`rootfs`] (safe
//! layer application), [`elf`] (CPU identity of binaries), [`natives`] (ELF files, jars' bundled
//! natives and their library needs), [`java`] (version
//! and `os.arch` parsing, policy), [`runner`] (bubblewrap + QEMU), [`check`]
//! (the verdict model).

pub mod cache;
pub mod check;
pub mod elf;
pub mod entries;
pub mod execute;
pub mod java;
pub mod natives;
pub mod plan;
pub mod policy;
pub mod pool;
mod request;
pub mod rootfs;
pub mod runner;
pub mod unpack;

use std::time::Instant;

use futures_util::StreamExt;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::Location;
use crate::platform::Platform;
use crate::store::{self, view::IndexView};

pub use check::{Check, CheckId, Emulator, Outcome, PlatformResult, Verification, render_text};
pub use policy::Policy;

use cache::Cache;
use entries::{Entry, entries_of};
use execute::{Context, Execution, Subject};
use runner::Mode;

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The image: registry reference, `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    pub image: String,
    /// The platforms that must pass; `None`: every platform in the index.
    pub platforms: Option<Vec<Platform>>,
}

/// Verifies an image. `Err` when there is nothing to verify (the image cannot
/// be read at all, or the request is invalid); otherwise every problem is a
/// check outcome inside the returned [`Verification`].
pub async fn verify(req: &VerifyRequest, settings: &Settings) -> Result<Verification> {
    let policy = Policy::from_settings(settings)?;
    let cache_bound = crate::cache_prune::max_size_setting(&settings.cache_max_size)?;
    crate::cache_prune::run_started();
    let location = Location::parse(&req.image)?;
    let opened = store::open_image(&location, settings).await?;
    // Resolve once: from here on everything is addressed by digest.
    let view = IndexView::read(opened.store.as_ref(), &opened.selector, &req.image).await?;
    let top = view.raw().clone();
    let pinned = location.with_digest(&top.digest).to_string();
    let entries = entries_of(&view).await?;

    let listed: Vec<Platform> = entries.iter().map(|e| e.platform.clone()).collect();
    let required = match &req.platforms {
        Some(p) => p.clone(),
        None => {
            let mut all: Vec<Platform> = Vec::new();
            for p in &listed {
                if !all.iter().any(|q| q.matches(p)) {
                    all.push(p.clone());
                }
            }
            all
        }
    };
    if required.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: the index lists no platform to verify",
            req.image
        )));
    }
    let other_platforms = listed
        .iter()
        .filter(|p| !required.iter().any(|r| r.matches(p)))
        .map(|p| p.to_string())
        .collect();

    let ctx = Context {
        view: &view,
        policy,
        cache: Cache::new(settings.cache_dir()),
    };
    let concurrency = match settings.verify.concurrency {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let platforms: Vec<PlatformResult> = futures_util::stream::iter(required.iter())
        .map(|p| verify_platform(&ctx, p, &entries, &listed))
        .buffered(concurrency)
        .collect()
        .await;
    let outcome = Verification::summarise(&platforms);
    crate::cache_prune::enforce(settings.cache_dir(), cache_bound).await;
    Ok(Verification {
        image: req.image.clone(),
        pinned,
        index_digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        platforms,
        other_platforms,
        outcome,
    })
}

/// Plans one platform's checks, runs the plan, and summarises it.
async fn verify_platform(
    ctx: &Context<'_>,
    platform: &Platform,
    entries: &[Entry],
    listed: &[Platform],
) -> PlatformResult {
    let started = Instant::now();
    let mode = runner::choose(ctx.policy.runner_for(platform), platform);
    let commands = ctx.policy.commands_for(platform);
    let names: Vec<&str> = commands.iter().map(|c| c.check.name.as_str()).collect();
    let plan = plan::plan(plan::Facts {
        java_required: ctx.policy.java_required,
        executes: !matches!(mode, Ok(Mode::Static)),
        commands: &names,
        service: ctx.policy.service.is_some(),
        clients: !ctx.policy.clients.is_empty(),
    });
    let emulator = match &mode {
        Ok(Mode::Qemu(qemu)) => Some(Emulator {
            binary: qemu.display().to_string(),
            version: runner::emulator_version(qemu)
                .await
                .unwrap_or_else(|| "unknown (no answer to --version)".into()),
        }),
        _ => None,
    };
    let mut execution = Execution::new(Subject {
        ctx,
        platform,
        entries,
        listed,
        mode: &mode,
        commands,
        emulator: emulator.as_ref(),
    });
    let checks = plan::run(&plan, async |step| execution.execute(step).await).await;
    PlatformResult {
        platform: platform.to_string(),
        manifest_digest: execution.manifest_digest,
        runner: match &mode {
            Ok(m) => m.label().to_string(),
            Err(_) => "unavailable".into(),
        },
        java_version: execution.java_version,
        missing: execution.missing,
        outcome: PlatformResult::summarise(&checks),
        checks,
        duration: started.elapsed(),
        emulator,
    }
}
