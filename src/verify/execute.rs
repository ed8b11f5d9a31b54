//! Execution: running one planned check of one platform against the store,
//! the unpacked root and the sandbox. [`Execution`] keeps what each check
//! found for the checks after it (the entry, the manifest and config, the
//! opened root and its sandbox, where `java` is, the one `java` run); which
//! checks run, and in which order, is [`super::plan`]'s decision, so an
//! executor only ever answers for its own check.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::image::{Digest, ImageConfig, ImageManifest, Selector};
use crate::platform::Platform;
use crate::progress;
use crate::store::view::IndexView;

use super::cache::Cache;
use super::check::Emulator;
use super::check::{Check, CheckId, Outcome};
use super::entries::Entry;
use super::plan::Step;
use super::policy::{CommandPolicy, Policy, ServicePolicy};
use super::rootfs::RootFs;
use super::runner::{Mode, Output, Sandbox, Started, Watch};
use super::{elf, java, natives, unpack};

/// The PATH a container runtime sets when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the platform tasks share.
pub struct Context<'a> {
    /// The image being verified, read once through its index digest.
    pub view: &'a IndexView<'a>,
    pub policy: Policy,
    pub cache: Cache,
}

/// What one platform's checks run against.
pub struct Subject<'a> {
    pub ctx: &'a Context<'a>,
    pub platform: &'a Platform,
    /// The image's platform entries, and the platforms they list.
    pub entries: &'a [Entry],
    pub listed: &'a [Platform],
    /// How to execute (`Err`: why the runner cannot, for an `error`).
    pub mode: &'a std::result::Result<Mode, String>,
    /// The extra commands for this platform, as the plan numbers them.
    pub commands: Vec<&'a CommandPolicy>,
    /// The QEMU emulator of this platform, when it runs under one.
    pub emulator: Option<&'a Emulator>,
}

/// One platform's checks being executed, and what they found so far.
pub struct Execution<'a> {
    subject: Subject<'a>,
    /// The index has no entry for the platform.
    pub missing: bool,
    /// The per-platform manifest the index names.
    pub manifest_digest: Option<Digest>,
    /// The version `java -version` reported.
    pub java_version: Option<String>,
    entry: Option<&'a Entry>,
    image: Option<(ImageManifest, ImageConfig)>,
    root: Option<Root>,
    java: Option<Java>,
    /// The one `java -XshowSettings:properties -version` run both Java
    /// checks read; `Err` is why it could not start.
    run: Option<std::result::Result<Output, String>>,
    /// The JVM crashed under QEMU (this signal, this output) and `run` is
    /// the `-Xint` run that then succeeded: the emulator failed, not the image.
    emulator_crash: Option<(&'static str, Output)>,
}

/// The opened root, the image's environment, and how to execute in it.
struct Root {
    fs: RootFs,
    env: Vec<String>,
    /// The image config's runtime part (`ENTRYPOINT`, `CMD`, `USER`).
    runtime: crate::image::manifest::RuntimeConfig,
    /// `Err`: the runner cannot execute this platform (why, for an `error`).
    sandbox: std::result::Result<Sandbox, String>,
    /// Keeps `cache prune` off the root while the checks read and run it.
    _in_use: crate::cache_lock::KeyLock,
}

/// Where `java` is.
struct Java {
    /// Inside the image, links followed.
    path: String,
    /// On the host.
    real: PathBuf,
}

impl<'a> Execution<'a> {
    /// Nothing found yet.
    pub fn new(subject: Subject<'a>) -> Execution<'a> {
        Execution {
            subject,
            missing: false,
            manifest_digest: None,
            java_version: None,
            entry: None,
            image: None,
            root: None,
            java: None,
            run: None,
            emulator_crash: None,
        }
    }

    /// Runs one check of the plan (one whose needs passed).
    pub async fn execute(&mut self, step: &Step) -> Check {
        match step.id {
            CheckId::IndexEntry => self.index_entry(),
            CheckId::Manifest => self.manifest().await,
            CheckId::ConfigPlatform => self.config_platform(),
            CheckId::Layers => self.layers().await,
            CheckId::JdkFound => self.jdk_found(),
            CheckId::JdkElf => self.jdk_elf(),
            CheckId::JavaVersion => self.java_version().await,
            CheckId::JavaOsArch => self.java_os_arch().await,
            CheckId::NativeLibs => self.native_libs(),
            CheckId::Command => match step
                .command
                .and_then(|i| self.subject.commands.get(i).copied())
            {
                Some(c) => self.command(c).await,
                None => not_found_before(step.id),
            },
            CheckId::Clients => self.clients().await,
            CheckId::ServiceStart => match &self.subject.ctx.policy.service {
                Some(service) => self.service_start(service).await,
                None => not_found_before(step.id),
            },
        }
    }

    /// 1. Exactly one entry.
    fn index_entry(&mut self) -> Check {
        let platform = self.subject.platform;
        let matching: Vec<&'a Entry> = self
            .subject
            .entries
            .iter()
            .filter(|e| e.platform.matches(platform))
            .collect();
        match matching.as_slice() {
            [one] => {
                self.entry = Some(*one);
                self.manifest_digest = Some(one.descriptor.digest.clone());
                let msg = if one.single {
                    format!(
                        "single-platform manifest {} (no index)",
                        one.descriptor.digest
                    )
                } else {
                    format!("{}", one.descriptor.digest)
                };
                Check::passed(CheckId::IndexEntry, msg)
            }
            [] => {
                self.missing = true;
                let have: Vec<String> = self.subject.listed.iter().map(|p| p.to_string()).collect();
                let have = if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                };
                Check::failed(
                    CheckId::IndexEntry,
                    format!("no entry for {platform} in the index (it has: {have})"),
                )
            }
            many => {
                let digests: Vec<String> = many
                    .iter()
                    .map(|e| e.descriptor.digest.to_string())
                    .collect();
                Check::failed(
                    CheckId::IndexEntry,
                    format!(
                        "{} entries for {platform} ({}): a client would pick one at random",
                        many.len(),
                        digests.join(", ")
                    ),
                )
            }
        }
    }

    /// 2. Manifest and config, by digest.
    async fn manifest(&mut self) -> Check {
        let Some(entry) = self.entry else {
            return not_found_before(CheckId::Manifest);
        };
        let t = Instant::now();
        let check = match fetch(self.subject.ctx.view, entry).await {
            Ok((manifest, config)) => {
                let msg = format!(
                    "manifest {} ({} layers), config {}",
                    entry.descriptor.digest,
                    manifest.layers.len(),
                    manifest.config.digest
                );
                self.image = Some((manifest, config));
                Check::passed(CheckId::Manifest, msg)
            }
            Err(e) => Check::new(CheckId::Manifest, outcome_of(&e), e.to_string()),
        };
        check.took(t.elapsed())
    }

    /// The `[verify] clients` can pull or import the image as it is
    /// published: one line per problem, naming the client and what to change.
    async fn clients(&self) -> Check {
        use crate::config::Client;
        use crate::image::media;
        let (Some(entry), Some((manifest, _))) = (self.entry, &self.image) else {
            return not_found_before(CheckId::Clients);
        };
        let view = self.subject.ctx.view;
        let clients = &self.subject.ctx.policy.clients;
        let mut problems: Vec<String> = Vec::new();
        let convert = "publish with `archgate merge --format docker --convert` (or `mirror` of a converted index)";
        if clients.contains(&Client::Docker1903) {
            let top = &view.raw().media_type;
            if view.index().is_some() && top != media::DOCKER_LIST {
                problems.push(format!(
                    "docker-19.03: the index is {} — Docker 19.03 pulls only a Docker manifest list (moby/moby#39727): {convert}",
                    media::short_name(top)
                ));
            }
            if entry.descriptor.media_type != media::DOCKER_MANIFEST {
                problems.push(format!(
                    "docker-19.03: the {} manifest is {}, not a Docker v2s2 manifest: {convert}",
                    self.subject.platform,
                    media::short_name(&entry.descriptor.media_type)
                ));
            }
            if manifest.config.media_type != media::DOCKER_CONFIG {
                problems.push(format!(
                    "docker-19.03: the config is {}: {convert}",
                    media::short_name(&manifest.config.media_type)
                ));
            }
            for l in &manifest.layers {
                let docker = [
                    media::DOCKER_LAYER_GZIP,
                    media::DOCKER_LAYER_TAR,
                    media::DOCKER_LAYER_FOREIGN,
                ];
                if !docker.contains(&l.media_type.as_str()) {
                    let why = if l.media_type.contains("zstd") {
                        "zstd, which Docker 19.03 cannot decompress: rebuild with gzip layers"
                    } else {
                        convert
                    };
                    problems.push(format!(
                        "docker-19.03: layer {} is {}: {why}",
                        l.digest, l.media_type
                    ));
                }
            }
            let attestations = view.attestations().len();
            if attestations > 0 {
                problems.push(format!(
                    "docker-19.03: the index lists {attestations} attestation entr{} (unknown/unknown), which old clients may pick: merge without --keep-attestations",
                    if attestations == 1 { "y" } else { "ies" }
                ));
            }
        }
        if clients.contains(&Client::Containerd16) || clients.contains(&Client::K3sImport) {
            let who = if clients.contains(&Client::Containerd16) {
                "containerd-1.6"
            } else {
                "k3s-import"
            };
            let store = view.store();
            // Every index entry's manifest (a sparse index breaks imports:
            // containerd#3103, #6441, #10032), then this image's blobs.
            for d in view.index().iter().flat_map(|i| &i.manifests) {
                match store.probe(&Selector::Digest(d.digest.clone())).await {
                    Ok(Some(_)) => {}
                    Ok(None) => problems.push(format!(
                        "{who}: the index names manifest {} ({}), which {} does not hold: containerd refuses the import; mirror with --platform to write an index of only what is there",
                        d.digest,
                        d.claimed_platform(),
                        store.name()
                    )),
                    Err(e) => return Check::new(CheckId::Clients, outcome_of(&e), e.to_string()),
                }
            }
            for b in manifest.blobs() {
                match store.blob_exists(&b.digest).await {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!(
                        "{who}: blob {} is missing from {}: copy the image again",
                        b.digest,
                        store.name()
                    )),
                    Err(e) => return Check::new(CheckId::Clients, outcome_of(&e), e.to_string()),
                }
            }
        }
        if clients.contains(&Client::K3sImport) && store_is_local(view.store()) {
            let named = view
                .store()
                .resolve(&Selector::Digest(view.raw().digest.clone()))
                .await
                .ok()
                .and_then(|d| {
                    d.annotations
                        .get(crate::image::manifest::CONTAINERD_NAME_ANNOTATION)
                        .cloned()
                });
            if named.is_none() {
                problems.push(format!(
                    "k3s-import: {} names the image by its tag only: K3s would store it under that bare tag, which no pod references; write it with --name REGISTRY/NAME",
                    view.store().name()
                ));
            }
        }
        let names: Vec<&str> = clients.iter().map(|c| c.as_str()).collect();
        if problems.is_empty() {
            Check::passed(CheckId::Clients, format!("{} can use it", names.join(", ")))
        } else {
            Check::failed(CheckId::Clients, problems.join("; "))
        }
    }

    /// 3. The config states the platform the index claims.
    fn config_platform(&self) -> Check {
        let (Some(entry), Some((_, config))) = (self.entry, &self.image) else {
            return not_found_before(CheckId::ConfigPlatform);
        };
        let stated =
            Platform::from_spec(&config.os, &config.architecture, config.variant.as_deref());
        if stated.matches(&entry.platform) {
            Check::passed(
                CheckId::ConfigPlatform,
                format!("config says {}", stated.normalised()),
            )
        } else {
            Check::failed(
                CheckId::ConfigPlatform,
                format!(
                    "index entry says {}, but the image config says {} (os={:?} architecture={:?} variant={:?}): a mislabelled image",
                    entry.platform,
                    stated.normalised(),
                    config.os,
                    config.architecture,
                    config.variant.as_deref().unwrap_or("")
                ),
            )
        }
    }

    /// Layers → a root (cached by layer digests), opened, with its sandbox.
    async fn layers(&mut self) -> Check {
        let Some((manifest, config)) = &self.image else {
            return not_found_before(CheckId::Layers);
        };
        let t = Instant::now();
        let ctx = self.subject.ctx;
        let opened = unpack::root_for(
            &ctx.cache,
            ctx.view.store(),
            &manifest.layers,
            ctx.policy.max_unpacked_bytes,
            &self.subject.platform.to_string(),
        )
        .await
        .and_then(|root| Ok((RootFs::open(&root.path)?, root)));
        let (fs, cached) = match opened {
            Ok(v) => v,
            Err(e) => {
                return Check::new(CheckId::Layers, outcome_of(&e), e.to_string())
                    .took(t.elapsed());
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
            .filter(|w| w.starts_with('/') && fs.resolve(w).map(|p| p.is_dir()).unwrap_or(false))
            .unwrap_or_else(|| "/".into());
        let sandbox = self.subject.mode.clone().map(|mode| Sandbox {
            root: cached.path.clone(),
            mode,
            env: env.clone(),
            workdir,
            timeout: ctx.policy.timeout,
        });
        let check = Check::passed(CheckId::Layers, format!("{} layers", manifest.layers.len()));
        self.root = Some(Root {
            fs,
            env,
            runtime,
            sandbox,
            _in_use: cached.in_use,
        });
        check.took(t.elapsed())
    }

    /// 4. Find java: JAVA_HOME, else PATH, following symlinks inside the image.
    fn jdk_found(&mut self) -> Check {
        let Some(root) = &self.root else {
            return not_found_before(CheckId::JdkFound);
        };
        match locate_java(&root.fs, &root.env) {
            Err(msg) => Check::failed(CheckId::JdkFound, msg),
            Ok((link, real)) => {
                let path = root.fs.in_image(&real);
                let via = if link == path {
                    path.clone()
                } else {
                    format!("{link} → {path}")
                };
                self.java = Some(Java { path, real });
                Check::passed(CheckId::JdkFound, via)
            }
        }
    }

    /// 5. ELF identity of java and libjvm.so.
    fn jdk_elf(&self) -> Check {
        let (Some(root), Some(java)) = (&self.root, &self.java) else {
            return not_found_before(CheckId::JdkElf);
        };
        let home = java_home_of(&java.path);
        let libjvm = java::libjvm_candidates(&home)
            .into_iter()
            .find_map(|c| root.fs.resolve(&c).ok().filter(|p| p.is_file()));
        let mut problems = Vec::new();
        let mut seen = Vec::new();
        for (label, path) in [("java", Some(java.real.clone())), ("libjvm.so", libjvm)] {
            let Some(path) = path else {
                problems.push(format!(
                    "no libjvm.so under {home} (looked in lib/server, lib/<arch>/server, jre/…)"
                ));
                continue;
            };
            let shown = root.fs.in_image(&path);
            match elf::read_ident(&path) {
                Ok(ident) => match elf::check(&ident, self.subject.platform) {
                    Ok(()) => seen.push(format!("{label}: {ident}")),
                    Err(m) => problems.push(format!("{shown}: {m}")),
                },
                Err(e) => problems.push(format!("{shown}: {e}")),
            }
        }
        if problems.is_empty() {
            Check::passed(CheckId::JdkElf, seen.join("; "))
        } else {
            Check::failed(CheckId::JdkElf, problems.join("; "))
        }
    }

    /// Runs `java -XshowSettings:properties -version` once, for both Java
    /// checks. A JVM crash under QEMU is run once more with `-Xint`: when
    /// that run succeeds, both checks read it and `java-version` is an
    /// emulator `error`.
    async fn run_java(&mut self) {
        if self.run.is_some() {
            return;
        }
        let (Some(root), Some(java)) = (&self.root, &self.java) else {
            return;
        };
        let argv = java_argv(&java.path);
        let run = match &root.sandbox {
            Err(msg) => Err(msg.clone()),
            Ok(sandbox) => {
                let running = running(self.subject.platform, sandbox, "java -version");
                let run = match sandbox.run(&argv).await {
                    Ok(out) => match emulator_crash(sandbox, &out) {
                        None => Ok(out),
                        Some(signal) => {
                            let mut interpreted = sandbox.clone();
                            interpreted.env = java::with_interpreter_only(&sandbox.env);
                            match interpreted.run(&argv).await {
                                Ok(second) if second.code == Some(0) => {
                                    self.emulator_crash = Some((signal, out));
                                    Ok(second)
                                }
                                _ => Ok(out),
                            }
                        }
                    },
                    Err(e) => Err(e.to_string()),
                };
                running.complete();
                run
            }
        };
        self.run = Some(run);
    }

    /// The emulator as messages name it: its file name and `--version`.
    fn emulator_label(&self, mode: &Mode) -> String {
        match self.subject.emulator {
            Some(e) => format!("{} ({})", mode.runner_name(), e.version),
            None => mode.runner_name(),
        }
    }

    /// 6a. `java -version` runs and its version meets the policy.
    async fn java_version(&mut self) -> Check {
        self.run_java().await;
        let (Some(run), Some(java), Some(root)) = (&self.run, &self.java, &self.root) else {
            return not_found_before(CheckId::JavaVersion);
        };
        let out = match run {
            Err(msg) => return Check::error(CheckId::JavaVersion, msg.clone()),
            Ok(out) => out,
        };
        let policy = &self.subject.ctx.policy;
        let took = out.duration;
        let text = out.combined();
        let shown_cmd = java_argv(&java.path).join(" ");
        if let (Some((signal, crashed)), Ok(sandbox)) = (&self.emulator_crash, &root.sandbox) {
            return Check::error(
                CheckId::JavaVersion,
                format!(
                    "the emulator failed, not the image: `{shown_cmd}` crashed with {signal} under {} \
                     and ran with -Xint (JAVA_TOOL_OPTIONS): retry on another runner",
                    self.emulator_label(&sandbox.mode)
                ),
            )
            .took(crashed.duration + took)
            .with_output(format!(
                "{}\n--- the same run with JAVA_TOOL_OPTIONS=-Xint ---\n{text}",
                crashed.combined()
            ));
        }
        let check = if out.timed_out {
            match &root.sandbox {
                Ok(s) => timed_out(
                    CheckId::JavaVersion,
                    &s.mode,
                    &shown_cmd,
                    out,
                    "[verify] timeout",
                ),
                Err(_) => Check::error(CheckId::JavaVersion, "timed out without a sandbox"),
            }
        } else if out.code != Some(0) {
            let code = out
                .code
                .map_or("a signal".to_string(), |c| format!("exit code {c}"));
            Check::failed(
                CheckId::JavaVersion,
                format!("`{shown_cmd}` ended with {code}: {}", out.tail(3)),
            )
        } else {
            match java::JavaVersion::parse(&text) {
                Some(v) => {
                    self.java_version = Some(v.to_string());
                    match policy.java.check(&v) {
                        Ok(()) => {
                            Check::passed(CheckId::JavaVersion, format!("{v} ({})", policy.java))
                        }
                        Err(m) => Check::failed(CheckId::JavaVersion, m),
                    }
                }
                None => Check::failed(
                    CheckId::JavaVersion,
                    format!("`{shown_cmd}` printed no version line: {}", out.tail(3)),
                ),
            }
        };
        check.took(took).with_output(text)
    }

    /// 6b. The JVM's own `os.arch`, from the same run.
    async fn java_os_arch(&mut self) -> Check {
        self.run_java().await;
        let (Some(run), Some(java)) = (&self.run, &self.java) else {
            return not_found_before(CheckId::JavaOsArch);
        };
        let out = match run {
            Err(msg) => return Check::error(CheckId::JavaOsArch, msg.clone()),
            Ok(out) => out,
        };
        if out.timed_out {
            return Check::skipped(CheckId::JavaOsArch, "java did not finish");
        }
        if out.code != Some(0) {
            return Check::skipped(CheckId::JavaOsArch, "java did not run");
        }
        let platform = self.subject.platform;
        let want = platform.java_os_arch().unwrap_or("?");
        match java::parse_os_arch(&out.combined()) {
            Some(a) if java::os_arch_matches(&a, platform) => {
                Check::passed(CheckId::JavaOsArch, format!("os.arch = {a}"))
            }
            Some(a) => Check::failed(
                CheckId::JavaOsArch,
                format!("the JVM reports os.arch = {a}, expected {want} for {platform}"),
            ),
            None => Check::failed(
                CheckId::JavaOsArch,
                format!(
                    "no os.arch in the output of `{}`",
                    java_argv(&java.path).join(" ")
                ),
            ),
        }
    }

    /// Native code built for the platform, its needs met in the image (static).
    fn native_libs(&self) -> Check {
        let Some(root) = &self.root else {
            return not_found_before(CheckId::NativeLibs);
        };
        let t = Instant::now();
        let policy = &self.subject.ctx.policy.natives;
        let platform = self.subject.platform;
        let mut ignore = policy.ignore.clone();
        if policy.ignore_jdk_desktop {
            ignore.extend(
                crate::config::JDK_DESKTOP_LIBRARIES
                    .iter()
                    .filter_map(|g| crate::config::Glob::new(g).ok()),
            );
        }
        let found = natives::check(&natives::Request {
            fs: &root.fs,
            platform,
            env: &root.env,
            ignore: &ignore,
        });
        let message = found.message(platform);
        let check = if found.problems.is_empty() {
            Check::passed(CheckId::NativeLibs, message)
        } else if policy.required {
            Check::failed(CheckId::NativeLibs, message)
        } else {
            Check::failed(
                CheckId::NativeLibs,
                format!("{message} (advisory: [verify.natives] required = false)"),
            )
            .advisory(true)
        };
        check.took(t.elapsed())
    }

    /// 7. An extra command.
    async fn command(&self, c: &CommandPolicy) -> Check {
        let Some(root) = &self.root else {
            return not_found_before(CheckId::Command);
        };
        let sandbox = match &root.sandbox {
            Err(msg) => return Check::error(CheckId::Command, msg.clone()),
            Ok(s) => s,
        };
        let args = &c.check.args;
        let Some(argv) = root.resolve_argv(args) else {
            return Check::failed(
                CheckId::Command,
                format!("`{}` is not in the image's PATH", args[0]),
            );
        };
        let shown = args.join(" ");
        let running = running(self.subject.platform, sandbox, &shown);
        let out = match sandbox.run(&argv).await {
            Err(e) => return Check::error(CheckId::Command, e.to_string()),
            Ok(out) => out,
        };
        running.complete();
        let text = out.combined();
        let expected = c.check.exit_code;
        let check = if out.timed_out {
            timed_out(
                CheckId::Command,
                &sandbox.mode,
                &shown,
                &out,
                "[verify] timeout",
            )
        } else if out.code != Some(expected) {
            let code = out
                .code
                .map_or("a signal".to_string(), |x| format!("exit code {x}"));
            // The exception line, when the JVM printed one, not its last frames.
            let message = match java::cause_line(&text) {
                Some(cause) => {
                    format!("{cause} — `{shown}` ended with {code}, expected {expected}")
                }
                None => format!(
                    "`{shown}` ended with {code}, expected {expected}: {}",
                    out.tail(3)
                ),
            };
            Check::failed(CheckId::Command, message)
        } else if let Some(re) = c.output.as_ref().filter(|re| !re.is_match(&text)) {
            Check::failed(
                CheckId::Command,
                format!(
                    "`{shown}` output does not match /{}/: {}",
                    re.as_str(),
                    out.tail(3)
                ),
            )
        } else {
            Check::passed(CheckId::Command, format!("`{shown}` exit code {expected}"))
        };
        check.took(out.duration).with_output(text)
    }

    /// Check 8, the image's own service starts: `ENTRYPOINT` + `CMD` (or
    /// `command`) with the image's Env, WorkingDir and User, watched until it
    /// is ready, settled or ended, then stopped with its whole sandbox. Under
    /// QEMU a JVM crash (SIGILL/SIGSEGV/SIGBUS) is tried once more with
    /// `-Xint`: when that starts, the emulator failed, not the image.
    async fn service_start(&self, service: &ServicePolicy) -> Check {
        const ID: CheckId = CheckId::ServiceStart;
        let Some(root) = &self.root else {
            return not_found_before(ID);
        };
        let sandbox = match &root.sandbox {
            Err(msg) => return Check::error(ID, msg.clone()),
            Ok(s) => s,
        };
        let args = match &service.command {
            Some(command) => command.clone(),
            None => {
                let rt = &root.runtime;
                let mut args = rt.entrypoint.clone().unwrap_or_default();
                args.extend(rt.cmd.clone().unwrap_or_default());
                args
            }
        };
        if args.first().is_none_or(|a| a.is_empty()) {
            return Check::failed(
                ID,
                "the image config has no ENTRYPOINT or CMD to start: give one in the Dockerfile, or set [verify.service] command",
            );
        }
        let shown = args.join(" ");
        let Some(argv) = root.resolve_argv(&args) else {
            return Check::failed(ID, format!("`{}` is not in the image's PATH", args[0]));
        };
        let user = match root.runtime.user.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(spec) => match resolve_user(&root.fs, spec) {
                Ok(ids) => Some(ids),
                Err(msg) => return Check::failed(ID, msg),
            },
        };
        let watch = Watch {
            ready: service.ready.as_ref(),
            timeout: service.timeout,
            settle: service.settle,
            user,
        };
        let (started, out) = match sandbox.serve(&argv, &watch).await {
            Err(e) => return Check::error(ID, e.to_string()),
            Ok(v) => v,
        };
        let first = judge_service(&started, &out, service, &shown, &sandbox.mode);
        let (Some(signal), Outcome::Failed) = (emulator_crash(sandbox, &out), first.outcome) else {
            return first.took(out.duration).with_output(out.combined());
        };
        // Honest verdicts under emulation: the same start with the JIT off.
        let mut interpreted = sandbox.clone();
        interpreted.env = java::with_interpreter_only(&sandbox.env);
        let emulator = self.emulator_label(&sandbox.mode);
        let (again, second) = match interpreted.serve(&argv, &watch).await {
            Err(e) => return Check::error(ID, e.to_string()),
            Ok(v) => v,
        };
        let retry = judge_service(&again, &second, service, &shown, &sandbox.mode);
        let output = format!(
            "{}\n--- the same start with JAVA_TOOL_OPTIONS=-Xint ---\n{}",
            out.combined(),
            second.combined()
        );
        let took = out.duration + second.duration;
        let check = if retry.outcome == Outcome::Passed {
            Check::error(
                ID,
                format!(
                    "the emulator failed, not the image: `{shown}` crashed with {signal} under {emulator} \
                     and started with -Xint (JAVA_TOOL_OPTIONS): retry on another runner ({})",
                    retry.message
                ),
            )
        } else {
            Check::failed(
                ID,
                format!(
                    "{} (with -Xint as well, so not the emulator's JIT)",
                    first.message
                ),
            )
        };
        check.took(took).with_output(output)
    }
}

/// The check for an executor run without what an earlier check finds: the
/// plan's needs make it unreachable, and it is an `error`, never a pass.
/// The check for a command killed at `[verify] timeout`: an `error` naming
/// the emulator and the elapsed time under QEMU (the runner was too slow to
/// tell), `failed` natively (the program itself hung).
fn timed_out(id: CheckId, mode: &Mode, shown: &str, out: &Output, key: &str) -> Check {
    let message = format!(
        "`{shown}` did not finish: killed after {:.1} s under {} (`{key}`); \
         raise {key} or use a faster runner",
        out.duration.as_secs_f64(),
        mode.runner_name()
    );
    if mode.timeout_is_infrastructure() {
        Check::error(id, message)
    } else {
        Check::failed(id, message)
    }
}

/// Reports a command running in `sandbox` as `platform`'s progress until dropped.
fn running(platform: &Platform, sandbox: &Sandbox, command: &str) -> progress::Tracker {
    let phase = match sandbox.mode {
        Mode::Qemu(_) => progress::Phase::Emulate,
        _ => progress::Phase::Run,
    };
    progress::start(&platform.to_string(), phase, command, None)
}

fn not_found_before(id: CheckId) -> Check {
    Check::error(
        id,
        format!(
            "internal: `{}` ran before the checks it needs (a plan without its needs)",
            id.as_str()
        ),
    )
}

/// A check outcome for an error: the image's fault is `failed`, the
/// infrastructure's `error`.
fn outcome_of(e: &Error) -> Outcome {
    match e.kind() {
        ErrorKind::Infrastructure | ErrorKind::Cancelled => Outcome::Error,
        ErrorKind::Content | ErrorKind::Usage => Outcome::Failed,
    }
}

/// The manifest and config of one entry, by digest, digests verified
/// (nested indexes refused by the view).
async fn fetch(view: &IndexView<'_>, entry: &Entry) -> Result<(ImageManifest, ImageConfig)> {
    let image = view.image(&entry.descriptor).await?;
    Ok((image.manifest().clone(), image.config().clone()))
}

/// The command line that shows the version and `os.arch` at once.
fn java_argv(java: &str) -> Vec<String> {
    vec![
        java.to_string(),
        "-XshowSettings:properties".to_string(),
        "-version".to_string(),
    ]
}

pub(super) fn env_value<'e>(env: &'e [String], key: &str) -> Option<&'e str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// `(the path found, its host path after following links)`, or why not.
fn locate_java(rootfs: &RootFs, env: &[String]) -> std::result::Result<(String, PathBuf), String> {
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

impl Root {
    /// `args` with argv[0] made absolute: as given when it is, else the
    /// first match on the image's `PATH`; `None` when the image has none.
    fn resolve_argv(&self, args: &[String]) -> Option<Vec<String>> {
        let program = args.first()?;
        let path = if program.starts_with('/') {
            program.clone()
        } else {
            self.fs.find_in_path(
                program,
                env_value(&self.env, "PATH").unwrap_or(DEFAULT_PATH),
            )?
        };
        let mut argv = args.to_vec();
        argv[0] = path;
        Some(argv)
    }
}

/// The signal of a JVM crash (SIGILL, SIGBUS, SIGSEGV) under QEMU, which
/// an `-Xint` run may pin on the emulator's handling of the JIT; `None`
/// natively (no emulator to blame) and for any other ending.
fn emulator_crash(sandbox: &Sandbox, out: &Output) -> Option<&'static str> {
    if !matches!(sandbox.mode, Mode::Qemu(_)) || out.timed_out || out.code == Some(0) {
        return None;
    }
    java::crash_signal(&out.combined(), out.code)
}

/// The verdict on one watched start. A message that is not a pass leads
/// with the cause: the exception line or crash signal the JVM printed, not
/// its last stack frame.
fn judge_service(
    started: &Started,
    out: &Output,
    service: &ServicePolicy,
    shown: &str,
    mode: &Mode,
) -> Check {
    const ID: CheckId = CheckId::ServiceStart;
    let secs = out.duration.as_secs_f64();
    let text = out.combined();
    let cause = || {
        java::cause_line(&text)
            .map(|c| format!("{c} — "))
            .unwrap_or_default()
    };
    let wanted = match &service.ready {
        Some(re) => format!("before printing a line matching /{}/", re.as_str()),
        None => format!(
            "within [verify.service] settle ({} s)",
            service.settle.as_secs()
        ),
    };
    match started {
        Started::Ready(line) => Check::passed(
            ID,
            format!("`{shown}` ready after {secs:.1} s: {}", line.trim()),
        ),
        Started::Settled => Check::passed(
            ID,
            format!(
                "`{shown}` still running after {} s (no `ready` pattern: [verify.service] settle)",
                service.settle.as_secs()
            ),
        ),
        Started::Exited(Some(0)) if service.ready.is_none() => Check::passed(
            ID,
            format!("`{shown}` exited with code 0 after {secs:.1} s"),
        ),
        Started::Exited(code) => {
            let code = code.map_or("a signal".to_string(), |c| format!("code {c}"));
            let tail = if java::cause_line(&text).is_none() && !text.trim().is_empty() {
                format!(": {}", out.tail(3))
            } else {
                String::new()
            };
            Check::failed(
                ID,
                format!("{}`{shown}` exited with {code} {wanted}{tail}", cause()),
            )
        }
        Started::Fatal(line) => {
            let head = java::cause_line(&text).unwrap_or_else(|| line.trim().to_string());
            Check::failed(ID, format!("{head} — `{shown}` failed {wanted}; stopped"))
        }
        Started::TimedOut => {
            let mut check = timed_out(ID, mode, shown, out, "[verify.service] timeout");
            check.message = format!(
                "{} — no line matched /{}/",
                check.message,
                service.ready.as_ref().map_or("", |r| r.as_str())
            );
            check
        }
    }
}

/// `USER` (`name`, `uid`, `name:group`, `uid:gid`) as numeric ids, names
/// looked up in the image's own `/etc/passwd` and `/etc/group` (a container
/// runtime does the same); a bare uid not in passwd runs with gid 0.
fn resolve_user(fs: &RootFs, spec: &str) -> std::result::Result<(u32, u32), String> {
    let read = |file: &str| {
        fs.resolve(file)
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read("/etc/passwd");
    // name:x:uid:gid:…
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user)));
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry
            .as_ref()
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                format!(
                    "the image config's User {spec:?} names user {user:?}, which is not in the image's /etc/passwd"
                )
            })?,
    };
    let gid = match group {
        None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("/etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!(
                        "the image config's User {spec:?} names group {g:?}, which is not in the image's /etc/group"
                    )
                })?,
        },
    };
    Ok((uid, gid))
}

/// Whether the image is in an OCI layout or archive (where a name must be
/// recorded for an import), not a registry (which names it itself).
fn store_is_local(store: &dyn crate::store::Store) -> bool {
    store.registry_host().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn service(ready: Option<&str>) -> ServicePolicy {
        ServicePolicy {
            command: None,
            ready: ready.map(|r| regex::Regex::new(r).unwrap()),
            timeout: Duration::from_secs(120),
            settle: Duration::from_secs(10),
        }
    }

    fn out(code: Option<i32>, stderr: &str) -> Output {
        Output {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
            duration: Duration::from_millis(1500),
            timed_out: false,
        }
    }

    /// (started, exit code, output, ready pattern, outcome, message start, message part)
    type Case = (
        Started,
        Option<i32>,
        &'static str,
        Option<&'static str>,
        Outcome,
        &'static str,
        &'static str,
    );

    #[test]
    fn service_verdicts_lead_with_the_cause() {
        let ule = "Exception in thread \"main\" java.lang.UnsatisfiedLinkError: /app/lib/x.so: wrong ELF class: ELFCLASS32\n\tat a.B.main(B.java:3)\n";
        let qemu = Mode::Qemu(PathBuf::from("/usr/bin/qemu-aarch64-static"));
        let cases: &[Case] = &[
            (
                Started::Ready("up on 8080".into()),
                None,
                "",
                Some("up"),
                Outcome::Passed,
                "`app` ready after 1.5 s: up on 8080",
                "",
            ),
            (
                Started::Settled,
                None,
                "",
                None,
                Outcome::Passed,
                "`app` still running after 10 s",
                "",
            ),
            (
                Started::Exited(Some(0)),
                Some(0),
                "",
                None,
                Outcome::Passed,
                "`app` exited with code 0",
                "",
            ),
            (
                Started::Exited(Some(0)),
                Some(0),
                "bye\n",
                Some("up"),
                Outcome::Failed,
                "`app` exited with code 0 before printing a line matching /up/",
                ": bye",
            ),
            (
                Started::Exited(Some(1)),
                Some(1),
                ule,
                Some("up"),
                Outcome::Failed,
                "java.lang.UnsatisfiedLinkError: /app/lib/x.so: wrong ELF class: ELFCLASS32 — `app` exited with code 1",
                "",
            ),
            (
                Started::Fatal(ule.lines().next().unwrap().into()),
                Some(1),
                ule,
                Some("up"),
                Outcome::Failed,
                "java.lang.UnsatisfiedLinkError: /app/lib/x.so: wrong ELF class: ELFCLASS32 — `app` failed",
                "",
            ),
            (
                Started::TimedOut,
                None,
                "",
                Some("up"),
                Outcome::Error,
                "`app` did not finish: killed after 1.5 s under qemu-aarch64-static",
                "[verify.service] timeout",
            ),
        ];
        for (started, code, text, ready, outcome, head, part) in cases {
            let c = judge_service(started, &out(*code, text), &service(*ready), "app", &qemu);
            assert_eq!(c.outcome, *outcome, "{started:?}: {}", c.message);
            assert!(c.message.starts_with(head), "{started:?}: {}", c.message);
            assert!(c.message.contains(part), "{started:?}: {}", c.message);
            assert!(
                !c.message.contains("\tat "),
                "no stack frame: {}",
                c.message
            );
        }
        // Natively a hang is the image's.
        let native = judge_service(
            &Started::TimedOut,
            &out(None, ""),
            &service(Some("up")),
            "app",
            &Mode::Native,
        );
        assert_eq!(native.outcome, Outcome::Failed);
    }
}
