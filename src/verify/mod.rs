//! `archgate verify`: proof, through the index digest, that every required
//! platform of an image really runs its JDK (DESIGN.md, "Verification of one
//! platform").
//!
//! The image's tag is resolved once; everything after is fetched by digest
//! from that index, so the verdict is about exactly the bytes a release would
//! promote. Platforms are verified concurrently (bounded by the cores); within
//! one platform the checks run in order and a check whose input is missing is
//! `skipped` with the reason rather than guessed.
//!
//! Leaf modules: [`rootfs`] (safe layer application), [`elf`] (CPU identity
//! of binaries), [`java`] (version and `os.arch` parsing, policy), [`runner`]
//! (bubblewrap + QEMU), [`cache`] (blobs and unpacked roots), [`check`] (the
//! verdict model).

pub mod cache;
pub mod check;
pub mod elf;
pub mod java;
mod request;
pub mod rootfs;
pub mod runner;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::config::{CommandCheck, Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::image::digest::Hasher;
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, ImageConfig, Location, PlatformSpec, RawManifest, Selector};
use crate::platform::{self, Platform};
use crate::store::{self, Store};

pub use check::{Check, CheckId, Outcome, PlatformResult, Verification, render_text};

use cache::{BlobFile, Cache};
use runner::{Mode, Sandbox};

/// The PATH a container runtime sets when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// The image: registry reference, `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    pub image: String,
    /// The platforms that must pass; `None`: every platform in the index.
    pub platforms: Option<Vec<Platform>>,
}

/// Settings checked before any work starts: a bad value is exit 2, not a
/// failed platform.
struct Policy {
    java: java::VersionPolicy,
    commands: Vec<(CommandCheck, regex::Regex, Vec<Platform>)>,
    timeout: Duration,
    max_unpacked_bytes: u64,
}

impl Policy {
    fn from_settings(settings: &Settings) -> Result<Policy> {
        let v = &settings.verify;
        let java = java::VersionPolicy::from_settings(
            v.java.min_version.as_ref().map(|n| n.as_str()),
            v.java.version.as_ref().map(|n| n.as_str()),
        )
        .map_err(|e| Error::Config(format!("[verify.java]: {e}")))?;
        let mut commands = Vec::new();
        for (i, c) in v.commands.iter().enumerate() {
            let key = format!("[[verify.commands]] #{} ({:?})", i + 1, c.name);
            if c.name.trim().is_empty() {
                return Err(Error::Config(format!(
                    "{key}: `name` is empty; name the check (it titles the report line)"
                )));
            }
            if c.args.is_empty() || c.args[0].is_empty() {
                return Err(Error::Config(format!(
                    "{key}: `args` is empty; give the command, e.g. args = [\"/opt/app/bin/app\", \"--version\"]"
                )));
            }
            let pattern = c.output.as_ref().map_or("", |p| p.as_str());
            let re = regex::Regex::new(pattern).map_err(|e| {
                // regex errors span lines (pattern, caret, reason): keep one line.
                let why = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                Error::Config(format!(
                    "{key}: `output` is not a valid regular expression: {why}"
                ))
            })?;
            commands.push((c.clone(), re, c.platforms.clone()));
        }
        if v.timeout == 0 {
            return Err(Error::Config(
                "[verify] timeout = 0: give the seconds a command may run, e.g. 120".into(),
            ));
        }
        Ok(Policy {
            java,
            commands,
            timeout: Duration::from_secs(v.timeout),
            max_unpacked_bytes: v.max_unpacked_bytes,
        })
    }
}

/// Everything the platform tasks share.
struct Context<'a> {
    store: &'a dyn Store,
    settings: &'a Settings,
    policy: Policy,
    cache: Cache,
}

/// Verifies an image. `Err` when there is nothing to verify (the image cannot
/// be read at all, or the request is invalid); otherwise every problem is a
/// check outcome inside the returned [`Verification`].
pub async fn verify(req: &VerifyRequest, settings: &Settings) -> Result<Verification> {
    let policy = Policy::from_settings(settings)?;
    let location = Location::parse(&req.image)?;
    let store = store::open(&location, settings, false).await?;
    let selector = match location.selector() {
        Some(s) => s,
        None => store.default_selector().await?,
    };
    // Resolve once: from here on everything is addressed by digest.
    let top = store.get_manifest(&selector).await?;
    let pinned = location.with_digest(&top.digest).to_string();
    let entries = entries_of(store.as_ref(), &top, &req.image).await?;

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
        store: store.as_ref(),
        settings,
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

/// One platform entry of the image (attestations left out).
struct Entry {
    platform: Platform,
    descriptor: Descriptor,
    /// Set when the image is a single manifest rather than an index.
    single: Option<RawManifest>,
}

/// The platform entries of an index; a single-platform manifest is one entry
/// whose platform is what its config says.
async fn entries_of(store: &dyn Store, top: &RawManifest, image: &str) -> Result<Vec<Entry>> {
    match top.kind() {
        ManifestKind::Index => {
            let index = top.index(image)?;
            Ok(index
                .manifests
                .into_iter()
                .filter_map(|d| {
                    let spec = d.platform.clone().unwrap_or_default();
                    if platform::is_attestation(&spec.os, &spec.architecture, &d.annotations) {
                        return None;
                    }
                    Some(Entry {
                        platform: platform_of(&spec),
                        descriptor: d,
                        single: None,
                    })
                })
                .collect())
        }
        ManifestKind::Image => {
            let manifest = top.image(image)?;
            let config =
                store::read_blob(store, &manifest.config, &format!("config of {image}")).await?;
            let config = ImageConfig::parse(&config, &format!("config of {image}"))?;
            Ok(vec![Entry {
                platform: Platform::from_spec(
                    &config.os,
                    &config.architecture,
                    config.variant.as_deref(),
                )
                .normalised(),
                descriptor: top.descriptor(),
                single: Some(top.clone()),
            }])
        }
    }
}

fn platform_of(spec: &PlatformSpec) -> Platform {
    Platform::from_spec(&spec.os, &spec.architecture, spec.variant.as_deref()).normalised()
}

/// A check outcome for an error: the image's fault is `failed`, the
/// infrastructure's `error`.
fn outcome_of(e: &Error) -> Outcome {
    match e.kind() {
        ErrorKind::Infrastructure => Outcome::Error,
        ErrorKind::Content | ErrorKind::Usage => Outcome::Failed,
    }
}

/// Collects one platform's checks; `skip_rest` marks every later check skipped.
struct Checks {
    list: Vec<Check>,
    started: Instant,
}

impl Checks {
    fn push(&mut self, c: Check) {
        self.list.push(c);
    }

    /// Runs a step, timing it.
    fn timed(&mut self, started: Instant, c: Check) {
        self.list.push(c.took(started.elapsed()));
    }

    fn skip(&mut self, ids: &[CheckId], why: &str) {
        for id in ids {
            self.list.push(Check::skipped(*id, why));
        }
    }
}

/// The checks after the manifest, and after the layers.
const AFTER_MANIFEST: &[CheckId] = CheckId::STANDARD.split_at(2).1;
const AFTER_LAYERS: &[CheckId] = CheckId::STANDARD.split_at(4).1;

async fn verify_platform(
    ctx: &Context<'_>,
    platform: &Platform,
    entries: &[Entry],
    listed: &[Platform],
) -> PlatformResult {
    let mut checks = Checks {
        list: Vec::new(),
        started: Instant::now(),
    };
    let mode = runner::choose(runner_setting(ctx.settings, platform), platform);
    let mut result = PlatformResult {
        platform: platform.to_string(),
        manifest_digest: None,
        runner: match &mode {
            Ok(m) => m.label().to_string(),
            Err(_) => "unavailable".into(),
        },
        java_version: None,
        missing: false,
        outcome: Outcome::Error,
        checks: Vec::new(),
        duration: Duration::ZERO,
    };
    run_checks(
        ctx,
        platform,
        entries,
        listed,
        mode,
        &mut checks,
        &mut result,
    )
    .await;
    // Extra commands that never ran (an earlier step failed) still appear.
    result.outcome = PlatformResult::summarise(&checks.list);
    result.duration = checks.started.elapsed();
    result.checks = checks.list;
    result
}

async fn run_checks(
    ctx: &Context<'_>,
    platform: &Platform,
    entries: &[Entry],
    listed: &[Platform],
    mode: std::result::Result<Mode, String>,
    checks: &mut Checks,
    result: &mut PlatformResult,
) {
    let commands: Vec<&(CommandCheck, regex::Regex, Vec<Platform>)> = ctx
        .policy
        .commands
        .iter()
        .filter(|(_, _, ps)| ps.is_empty() || ps.iter().any(|p| p.matches(platform)))
        .collect();
    let skip_commands = |checks: &mut Checks, why: &str| {
        for (c, _, _) in &commands {
            checks.push(Check::skipped(CheckId::Command, why).named(format!("command:{}", c.name)));
        }
    };

    // 1. Exactly one entry.
    let matching: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.platform.matches(platform))
        .collect();
    let entry = match matching.as_slice() {
        [one] => {
            let msg = if one.single.is_some() {
                format!(
                    "single-platform manifest {} (no index)",
                    one.descriptor.digest
                )
            } else {
                format!("{}", one.descriptor.digest)
            };
            checks.push(Check::passed(CheckId::IndexEntry, msg));
            *one
        }
        [] => {
            result.missing = true;
            let have: Vec<String> = listed.iter().map(|p| p.to_string()).collect();
            let have = if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            };
            checks.push(Check::failed(
                CheckId::IndexEntry,
                format!("no entry for {platform} in the index (it has: {have})"),
            ));
            checks.push(Check::skipped(
                CheckId::Manifest,
                "platform missing from the index",
            ));
            checks.skip(AFTER_MANIFEST, "platform missing from the index");
            skip_commands(checks, "platform missing from the index");
            return;
        }
        many => {
            let digests: Vec<String> = many
                .iter()
                .map(|e| e.descriptor.digest.to_string())
                .collect();
            checks.push(Check::failed(
                CheckId::IndexEntry,
                format!(
                    "{} entries for {platform} ({}): a client would pick one at random",
                    many.len(),
                    digests.join(", ")
                ),
            ));
            checks.push(Check::skipped(CheckId::Manifest, "ambiguous index entry"));
            checks.skip(AFTER_MANIFEST, "ambiguous index entry");
            skip_commands(checks, "ambiguous index entry");
            return;
        }
    };
    result.manifest_digest = Some(entry.descriptor.digest.clone());

    // 2. Manifest and config, by digest.
    let t = Instant::now();
    let fetched = fetch(ctx.store, entry).await;
    let (manifest, config) = match fetched {
        Ok(v) => v,
        Err(e) => {
            checks.timed(
                t,
                Check::new(CheckId::Manifest, outcome_of(&e), e.to_string()),
            );
            checks.skip(AFTER_MANIFEST, "manifest or config unreadable");
            skip_commands(checks, "manifest or config unreadable");
            return;
        }
    };
    checks.timed(
        t,
        Check::passed(
            CheckId::Manifest,
            format!(
                "manifest {} ({} layers), config {}",
                entry.descriptor.digest,
                manifest.layers.len(),
                manifest.config.digest
            ),
        ),
    );

    // 3. The config states the platform the index claims.
    let stated = Platform::from_spec(&config.os, &config.architecture, config.variant.as_deref());
    if stated.matches(&entry.platform) {
        checks.push(Check::passed(
            CheckId::ConfigPlatform,
            format!("config says {}", stated.normalised()),
        ));
    } else {
        checks.push(Check::failed(
            CheckId::ConfigPlatform,
            format!(
                "index entry says {}, but the image config says {} (os={:?} architecture={:?} variant={:?}): a mislabelled image",
                entry.platform,
                stated.normalised(),
                config.os,
                config.architecture,
                config.variant.as_deref().unwrap_or("")
            ),
        ));
    }

    let java_required = ctx.settings.verify.java.required;
    if !java_required && commands.is_empty() {
        checks.skip(
            AFTER_LAYERS,
            "[verify.java] required = false and no extra commands",
        );
        checks.push(Check::skipped(
            CheckId::Layers,
            "nothing to look at in the file system",
        ));
        return;
    }

    // Layers → a root (cached by layer digests).
    let t = Instant::now();
    let root = match root_for(ctx, &manifest.layers).await {
        Ok(r) => r,
        Err(e) => {
            checks.timed(
                t,
                Check::new(CheckId::Layers, outcome_of(&e), e.to_string()),
            );
            checks.skip(AFTER_LAYERS, "layers could not be unpacked");
            skip_commands(checks, "layers could not be unpacked");
            return;
        }
    };
    checks.timed(
        t,
        Check::passed(CheckId::Layers, format!("{} layers", manifest.layers.len())),
    );
    let rootfs = match rootfs::RootFs::open(&root.path) {
        Ok(r) => r,
        Err(e) => {
            checks.push(Check::error(CheckId::JdkFound, e.to_string()));
            checks.skip(&AFTER_LAYERS[1..], "root file system unreadable");
            return;
        }
    };

    let runtime = config.config.clone().unwrap_or_default();
    let mut env = runtime.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    let workdir = runtime
        .working_dir
        .clone()
        .filter(|w| w.starts_with('/') && rootfs.resolve(w).map(|p| p.is_dir()).unwrap_or(false))
        .unwrap_or_else(|| "/".into());
    let sandbox = mode.as_ref().ok().map(|m| Sandbox {
        root: root.path.clone(),
        mode: m.clone(),
        env: env.clone(),
        workdir,
        timeout: ctx.policy.timeout,
    });

    if java_required {
        java_checks(
            ctx,
            platform,
            &rootfs,
            &env,
            &mode,
            sandbox.as_ref(),
            checks,
            result,
        )
        .await;
    } else {
        checks.skip(AFTER_LAYERS, "[verify.java] required = false");
    }

    // 7. Extra commands.
    for (c, re, _) in commands {
        let name = format!("command:{}", c.name);
        let check = command_check(c, re, &rootfs, &env, &mode, sandbox.as_ref()).await;
        checks.push(check.named(name));
    }
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[allow(clippy::too_many_arguments)]
async fn java_checks(
    ctx: &Context<'_>,
    platform: &Platform,
    rootfs: &rootfs::RootFs,
    env: &[String],
    mode: &std::result::Result<Mode, String>,
    sandbox: Option<&Sandbox>,
    checks: &mut Checks,
    result: &mut PlatformResult,
) {
    // 4. Find java: JAVA_HOME, else PATH, following symlinks inside the image.
    let found = locate_java(rootfs, env);
    let (java_link, java_real) = match found {
        Ok(v) => v,
        Err(msg) => {
            checks.push(Check::failed(CheckId::JdkFound, msg));
            checks.skip(&AFTER_LAYERS[1..], "no JDK found");
            return;
        }
    };
    let java_path = rootfs.in_image(&java_real);
    let via = if java_link == java_path {
        java_path.clone()
    } else {
        format!("{java_link} → {java_path}")
    };
    checks.push(Check::passed(CheckId::JdkFound, via));

    // 5. ELF identity of java and libjvm.so.
    let home = java_home_of(&java_path);
    let libjvm = java::libjvm_candidates(&home)
        .into_iter()
        .find_map(|c| rootfs.resolve(&c).ok().filter(|p| p.is_file()));
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (label, path) in [("java", Some(java_real.clone())), ("libjvm.so", libjvm)] {
        let Some(path) = path else {
            problems.push(format!(
                "no libjvm.so under {home} (looked in lib/server, lib/<arch>/server, jre/…)"
            ));
            continue;
        };
        let shown = rootfs.in_image(&path);
        match elf::read_ident(&path) {
            Ok(ident) => match elf::check(&ident, platform) {
                Ok(()) => seen.push(format!("{label}: {ident}")),
                Err(m) => problems.push(format!("{shown}: {m}")),
            },
            Err(e) => problems.push(format!("{shown}: {e}")),
        }
    }
    if problems.is_empty() {
        checks.push(Check::passed(CheckId::JdkElf, seen.join("; ")));
    } else {
        checks.push(Check::failed(CheckId::JdkElf, problems.join("; ")));
    }

    // 6. Run it.
    let sandbox = match (mode, sandbox) {
        (Ok(Mode::Static), _) => {
            checks.skip(
                &[CheckId::JavaVersion, CheckId::JavaOsArch],
                "runner \"static\": execution skipped by configuration",
            );
            return;
        }
        (Err(msg), _) => {
            checks.push(Check::error(CheckId::JavaVersion, msg.clone()));
            checks.push(Check::error(CheckId::JavaOsArch, msg.clone()));
            return;
        }
        (Ok(_), Some(s)) => s,
        (Ok(_), None) => return,
    };
    let argv = vec![
        java_path.clone(),
        "-XshowSettings:properties".to_string(),
        "-version".to_string(),
    ];
    let out = match sandbox.run(&argv).await {
        Ok(o) => o,
        Err(e) => {
            checks.push(Check::error(CheckId::JavaVersion, e.to_string()));
            checks.push(Check::error(CheckId::JavaOsArch, e.to_string()));
            return;
        }
    };
    let took = out.duration;
    let text = out.combined();
    let shown_cmd = format!("{java_path} -XshowSettings:properties -version");
    if out.timed_out {
        let msg = format!(
            "`{shown_cmd}` did not finish within {} s under {} (raise [verify] timeout if the runner is slow)",
            ctx.policy.timeout.as_secs(),
            sandbox.mode.label()
        );
        checks.push(
            Check::failed(CheckId::JavaVersion, msg)
                .took(took)
                .with_output(text),
        );
        checks.push(Check::skipped(CheckId::JavaOsArch, "java did not finish"));
        return;
    }
    if out.code != Some(0) {
        let code = out
            .code
            .map_or("a signal".to_string(), |c| format!("exit code {c}"));
        let msg = format!("`{shown_cmd}` ended with {code}: {}", out.tail(3));
        checks.push(
            Check::failed(CheckId::JavaVersion, msg)
                .took(took)
                .with_output(text),
        );
        checks.push(Check::skipped(CheckId::JavaOsArch, "java did not run"));
        return;
    }
    match java::JavaVersion::parse(&text) {
        Some(v) => {
            result.java_version = Some(v.to_string());
            match ctx.policy.java.check(&v) {
                Ok(()) => checks.push(
                    Check::passed(CheckId::JavaVersion, format!("{v} ({})", ctx.policy.java))
                        .took(took)
                        .with_output(text.clone()),
                ),
                Err(m) => checks.push(
                    Check::failed(CheckId::JavaVersion, m)
                        .took(took)
                        .with_output(text.clone()),
                ),
            }
        }
        None => checks.push(
            Check::failed(
                CheckId::JavaVersion,
                format!("`{shown_cmd}` printed no version line: {}", out.tail(3)),
            )
            .took(took)
            .with_output(text.clone()),
        ),
    }
    let want = platform.java_os_arch().unwrap_or("?");
    match java::parse_os_arch(&text) {
        Some(a) if java::os_arch_matches(&a, platform) => {
            checks.push(Check::passed(CheckId::JavaOsArch, format!("os.arch = {a}")))
        }
        Some(a) => checks.push(Check::failed(
            CheckId::JavaOsArch,
            format!("the JVM reports os.arch = {a}, expected {want} for {platform}"),
        )),
        None => checks.push(Check::failed(
            CheckId::JavaOsArch,
            format!("no os.arch in the output of `{shown_cmd}`"),
        )),
    }
}

/// `(the path found, its host path after following links)`, or why not.
fn locate_java(
    rootfs: &rootfs::RootFs,
    env: &[String],
) -> std::result::Result<(String, PathBuf), String> {
    if let Some(home) = env_value(env, "JAVA_HOME").filter(|h| !h.is_empty()) {
        let home = home.trim_end_matches('/');
        let candidate = format!("{home}/bin/java");
        return match rootfs.resolve(&candidate) {
            Ok(p) if p.is_file() => Ok((candidate, p)),
            _ => Err(format!(
                "JAVA_HOME={home} in the image config, but {candidate} is not in the image"
            )),
        };
    }
    let path = env_value(env, "PATH").unwrap_or(DEFAULT_PATH);
    match rootfs.find_in_path("java", path) {
        Some(found) => match rootfs.resolve(&found) {
            Ok(p) => Ok((found, p)),
            Err(e) => Err(format!("{found}: {e}")),
        },
        None => Err(format!(
            "no java: the image config sets no JAVA_HOME, and no directory of PATH={path} holds an executable `java`"
        )),
    }
}

/// `…/bin/java` → `…` (the JRE directory for a JDK 8 `jre/bin/java`).
fn java_home_of(java: &str) -> String {
    let p = Path::new(java);
    p.parent()
        .and_then(|bin| bin.parent())
        .map(|h| h.display().to_string())
        .unwrap_or_else(|| "/".into())
}

async fn command_check(
    c: &CommandCheck,
    re: &regex::Regex,
    rootfs: &rootfs::RootFs,
    env: &[String],
    mode: &std::result::Result<Mode, String>,
    sandbox: Option<&Sandbox>,
) -> Check {
    let sandbox = match (mode, sandbox) {
        (Ok(Mode::Static), _) => {
            return Check::skipped(
                CheckId::Command,
                "runner \"static\": execution skipped by configuration",
            );
        }
        (Err(msg), _) => return Check::error(CheckId::Command, msg.clone()),
        (Ok(_), Some(s)) => s,
        (Ok(_), None) => return Check::error(CheckId::Command, "no sandbox"),
    };
    let program = &c.args[0];
    let resolved = if program.starts_with('/') {
        Some(program.clone())
    } else {
        rootfs.find_in_path(program, env_value(env, "PATH").unwrap_or(DEFAULT_PATH))
    };
    let Some(program_path) = resolved else {
        return Check::failed(
            CheckId::Command,
            format!("`{program}` is not in the image's PATH"),
        );
    };
    let mut argv = c.args.clone();
    argv[0] = program_path;
    let shown = c.args.join(" ");
    match sandbox.run(&argv).await {
        Err(e) => Check::error(CheckId::Command, e.to_string()),
        Ok(out) => {
            let text = out.combined();
            let took = out.duration;
            let check = if out.timed_out {
                Check::failed(
                    CheckId::Command,
                    format!(
                        "`{shown}` did not finish within {} s",
                        sandbox.timeout.as_secs()
                    ),
                )
            } else if out.code != Some(c.exit_code) {
                let code = out
                    .code
                    .map_or("a signal".to_string(), |x| format!("exit code {x}"));
                Check::failed(
                    CheckId::Command,
                    format!(
                        "`{shown}` ended with {code}, expected {}: {}",
                        c.exit_code,
                        out.tail(3)
                    ),
                )
            } else if !re.is_match(&text) {
                Check::failed(
                    CheckId::Command,
                    format!(
                        "`{shown}` output does not match /{}/: {}",
                        re.as_str(),
                        out.tail(3)
                    ),
                )
            } else {
                Check::passed(
                    CheckId::Command,
                    format!("`{shown}` exit code {}", c.exit_code),
                )
            };
            check.took(took).with_output(text)
        }
    }
}

fn runner_setting(settings: &Settings, platform: &Platform) -> crate::config::Runner {
    settings
        .verify
        .runners
        .iter()
        .find(|(k, _)| k.matches(platform))
        .map(|(_, r)| *r)
        .unwrap_or(settings.verify.runner)
}

/// The manifest and config of one entry, by digest, digests verified.
async fn fetch(
    store: &dyn Store,
    entry: &Entry,
) -> Result<(crate::image::ImageManifest, ImageConfig)> {
    let what = format!("manifest {}", entry.descriptor.digest);
    let raw = match &entry.single {
        Some(m) => m.clone(),
        None => {
            store
                .get_manifest(&Selector::Digest(entry.descriptor.digest.clone()))
                .await?
        }
    };
    if raw.kind() != ManifestKind::Image {
        return Err(Error::malformed(
            &what,
            "the index entry points at another index, not an image manifest",
        ));
    }
    let manifest = raw.image(&what)?;
    let cwhat = format!("config {} of {what}", manifest.config.digest);
    let bytes = store::read_blob(store, &manifest.config, &cwhat).await?;
    let config = ImageConfig::parse(&bytes, &cwhat)?;
    Ok((manifest, config))
}

/// A complete, cached root for these layers.
struct Root {
    path: PathBuf,
}

async fn root_for(ctx: &Context<'_>, layers: &[Descriptor]) -> Result<Root> {
    let key = Cache::root_key(layers);
    let held = ctx.cache.lock(&key).await?;
    if let Some(path) = ctx.cache.cached_root(&key) {
        tracing::debug!(root = %path.display(), "unpacked root from the cache");
        return Ok(Root { path });
    }
    ctx.cache.remove_stale_staging(&held, &key);
    let mut files = Vec::new();
    for l in layers {
        files.push((l.clone(), ctx.cache.blob(ctx.store, l).await?));
    }
    let dir = ctx.cache.rootfs_dir();
    let limits = rootfs::Limits {
        max_total_bytes: ctx.policy.max_unpacked_bytes,
        ..rootfs::Limits::default()
    };
    let prefix = Cache::staging_prefix(&key);
    let staged = tokio::task::spawn_blocking(move || unpack(&dir, &prefix, &files, limits))
        .await
        .map_err(|e| Error::Internal(format!("unpacking layers: {e}")))??;
    let path = ctx.cache.install_root(&held, &staged, &key)?;
    Ok(Root { path })
}

/// Applies layers in order into a fresh directory `dir/PREFIX*`; returns it.
fn unpack(
    dir: &Path,
    prefix: &str,
    layers: &[(Descriptor, BlobFile)],
    limits: rootfs::Limits,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut root = rootfs::RootFs::new_named(dir, prefix, limits)?;
    for (desc, file) in layers {
        let what = format!("layer {}", desc.digest);
        let compression = rootfs::Compression::from_media_type(&desc.media_type)
            .map_err(|e| Error::malformed(&what, e))?;
        let f = std::fs::File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let mut reader = HashingReader {
            inner: std::io::BufReader::with_capacity(256 * 1024, f),
            hasher: Hasher::new(),
        };
        root.apply_layer(&mut reader, compression, &what)?;
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::io(&file.path, e))?;
        if !file.verified {
            let read = reader.hasher.len();
            if read != desc.size {
                return Err(Error::malformed(
                    &what,
                    format!(
                        "is {read} bytes, but the manifest declares {}; the image is corrupt or forged",
                        desc.size
                    ),
                ));
            }
            let actual = reader.hasher.finish();
            if actual != desc.digest {
                return Err(Error::DigestMismatch {
                    what,
                    expected: desc.digest.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
    }
    runner::prepare_root(root.path())?;
    Ok(root.keep())
}

/// Hashes what passes through, to verify a store's own blob file while it is unpacked.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
