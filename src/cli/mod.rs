//! The command line: the only module that knows clap. It parses, resolves the
//! settings once, calls the library and maps the outcome to an exit code.

mod logging;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Sources};
use crate::error::{Error, ErrorKind, Result};
use crate::image::Location;
use crate::store;

/// Exit codes a release gate can trust (see README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything required passed.
    Success = 0,
    /// The gate failed: the image is wrong.
    Failed = 1,
    /// The configuration or the invocation is wrong.
    Usage = 2,
    /// Infrastructure failed (registry, network, disk, emulator): we could not tell.
    Infrastructure = 3,
}

impl From<ErrorKind> for ExitStatus {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Usage => ExitStatus::Usage,
            ErrorKind::Infrastructure => ExitStatus::Infrastructure,
            ErrorKind::Content => ExitStatus::Failed,
        }
    }
}

const AFTER_HELP: &str = "\
Exit codes:
  0  every required check passed
  1  the gate failed: the image is wrong (missing platform, mislabelled, bad digest)
  2  the configuration or the command line is wrong
  3  infrastructure failed (registry down, network, disk, emulator): nothing could be decided

Configuration layers (later wins): defaults < archgate.toml < ARCHGATE_* environment
< CI variables (GitLab CI_*, Jenkins BUILD_NUMBER, GIT_COMMIT, ...) < command line.
Run `archgate config` to see the effective values and where each came from.";

/// archgate: publish multi-architecture images and gate releases on proof that
/// every architecture works.
#[derive(Debug, Parser)]
#[command(name = "archgate", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (default: $ARCHGATE_CONFIG, else ./archgate.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace). ARCHGATE_LOG takes a tracing filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, env = "ARCHGATE_LOG_FORMAT")]
    pub log_format: logging::LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what an image location points at: digest, media type, and per platform
    /// the manifest, the config's own platform, layers and size.
    Inspect(InspectArgs),
    /// Build a Dockerfile that executes nothing (FROM, ARG, ENV, WORKDIR, ADD/COPY, ...)
    /// for every platform, without a Docker engine, and publish one index.
    Build(BuildArgs),
    /// Assemble per-architecture images (or indexes) into one multi-arch index:
    /// checked first, then blobs, manifests and the index by digest, tags last.
    Merge(MergeArgs),
    /// Copy an image between registries, OCI layouts and OCI archives (e.g. into an
    /// air-gapped network), digests preserved, optionally keeping only some platforms;
    /// blobs first, the tag last; a re-run resumes. Without SOURCE TARGET: every [[mirror]] entry.
    Mirror(MirrorArgs),
    /// Prove, through the index digest, that every required platform runs its JDK:
    /// index entry, config platform, JDK location, ELF identity, `java -version`
    /// (natively or under QEMU, sandboxed) and the JVM's own os.arch.
    Verify(VerifyArgs),
    /// The whole job from configuration: merge the per-architecture images (or take
    /// --image), verify the index digest, apply [gate], write the reports
    /// (junit.xml, report.json, archgate.env, coverage.md) and exit with the verdict.
    Run(RunArgs),
    /// Print the effective configuration and where each value came from (secrets as ***).
    Config(ConfigArgs),
    /// Manage the cache of blobs, unpacked roots and built layers (`cache`, ARCHGATE_CACHE).
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `archgate cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove least recently used entries (blobs, unpacked roots, layer records) until
    /// the bound holds, and what dead processes left; entries in use are kept.
    /// Without --max-size or --older-than the bound is `cache_max_size`.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep at most this much on disk, e.g. `5GiB`, `500MB` (`0`: remove every entry not in use).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Remove entries not used for more than DAYS days (fractions allowed).
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<f64>,
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image location: HOST[:PORT]/NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG].
    pub image: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct MergeArgs {
    /// Sources: image locations of single-platform images or of indexes
    /// (default: [merge] sources). A platform is read from each image's config.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Where the index goes, with a tag (default: [merge] target, else `image`).
    #[arg(long, value_name = "LOCATION")]
    pub target: Option<String>,
    /// Platforms to include, comma-separated (default: `platforms` when configured, else all the sources hold).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Index type: an OCI image index, or a Docker manifest list v2 for old clients.
    #[arg(long, value_enum)]
    pub format: Option<crate::image::media::Format>,
    /// Convert per-platform manifests to the index's family (Docker v2s2 <-> OCI); changes their digests.
    #[arg(long)]
    pub convert: bool,
    /// Keep buildx attestation entries (dropped by default).
    #[arg(long)]
    pub keep_attestations: bool,
    /// Another tag for the index (repeatable), pushed last.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Write a GitLab dotenv file for the next job: `ARCHGATE_IMAGE=name@sha256:…`, `ARCHGATE_INDEX_DIGEST`.
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct MirrorArgs {
    /// Source location: HOST[:PORT]/NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG]
    /// (default: every [[mirror]] entry of the configuration).
    #[arg(value_name = "SOURCE", requires = "target")]
    pub source: Option<String>,
    /// Target location; without a tag the source's tag is kept.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// Platforms to keep, comma-separated (default: the entry's `platforms`, else
    /// `platforms` when configured, else all the source holds, byte for byte).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Print the result as JSON (one array, one element per image).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image location (default: `image` from the configuration).
    pub image: Option<String>,
    /// Platforms that must pass, comma-separated (default: `platforms` when configured, else every platform in the index).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// How commands run: auto (native on the host's CPU, else QEMU), qemu, native, or static (no execution).
    #[arg(long, value_parser = ["auto", "qemu", "native", "static"])]
    pub runner: Option<String>,
    /// Seconds before `java -version` (or an extra command) is killed.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Also write junit.xml, report.json, archgate.env and coverage.md into DIR.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct BuildArgs {
    /// The build context directory (default: [build] context, else `.`).
    #[arg(value_name = "CONTEXT")]
    pub context: Option<PathBuf>,
    /// The Dockerfile (default: [build] dockerfile, else `Dockerfile`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Platforms to build, comma-separated (default: [build] platforms, else `platforms`).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// A build argument (repeatable); overrides [build.args]. `KEY` alone takes KEY from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Where the index goes, with a tag (default: [build] image, else `image`).
    #[arg(long, value_name = "LOCATION")]
    pub image: Option<String>,
    /// Another tag for the index (repeatable), pushed last.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Manifest family: OCI, or Docker v2s2 with a manifest list.
    #[arg(long, value_enum)]
    pub format: Option<crate::image::media::Format>,
    /// Write a GitLab dotenv file for the next job: `ARCHGATE_IMAGE_<PLATFORM>=name@sha256:…`
    /// when one platform was built (fan-out), else `ARCHGATE_IMAGE=…`.
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Verify this image instead of producing one (verify-only run).
    #[arg(long, value_name = "LOCATION")]
    pub image: Option<String>,
    /// Required platforms, comma-separated (default: [gate] required_platforms, else `platforms`).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// How commands run: auto, qemu, native or static.
    #[arg(long, value_parser = ["auto", "qemu", "native", "static"])]
    pub runner: Option<String>,
    /// Report directory (default: [report] dir, `archgate-report`).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON instead of TOML lines.
    #[arg(long)]
    pub json: bool,
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                ExitStatus::Usage as u8
            } else {
                0
            });
        }
    };
    logging::init(cli.global.verbose, cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Infrastructure as u8);
        }
    };
    let status = match runtime.block_on(run(cli)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            ExitStatus::from(e.kind())
        }
    };
    ExitCode::from(status as u8)
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    crate::cache_prune::run_started();
    let mut sources = Sources::from_process(cli.global.config.clone());
    match cli.command {
        Command::Merge(args) => {
            add_merge_flags(&mut sources, &args);
            let loaded = config::load(&sources)?;
            let request = merge_request(&loaded, &args)?;
            let outcome = crate::merge::merge(&request, &loaded.settings).await?;
            if let Some(path) = &args.dotenv {
                crate::report::write_dotenv(
                    path,
                    &[
                        ("ARCHGATE_IMAGE".into(), outcome.image.clone()),
                        (
                            "ARCHGATE_INDEX_DIGEST".into(),
                            outcome.index_digest.to_string(),
                        ),
                    ],
                )?;
            }
            if args.json {
                let json = serde_json::to_string_pretty(&outcome)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            } else {
                print!("{}", crate::merge::render_text(&outcome));
            }
            Ok(ExitStatus::Success)
        }
        Command::Mirror(args) => {
            if let Some(p) = &args.platform {
                flag(&mut sources, &["platforms"], split_list(p), "--platform");
            }
            let loaded = config::load(&sources)?;
            let requests = mirror_requests(&loaded, &args)?;
            let mut outcomes = Vec::new();
            for request in &requests {
                let outcome = crate::mirror::mirror(request, &loaded.settings).await?;
                if !args.json {
                    print!("{}", crate::mirror::render_text(&outcome));
                }
                outcomes.push(outcome);
            }
            if args.json {
                let json = serde_json::to_string_pretty(&outcomes)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            }
            Ok(ExitStatus::Success)
        }
        Command::Verify(args) => {
            if let Some(p) = &args.platform {
                flag(&mut sources, &["platforms"], split_list(p), "--platform");
            }
            if let Some(r) = &args.runner {
                flag(&mut sources, &["verify", "runner"], r.clone(), "--runner");
            }
            if let Some(t) = args.timeout {
                flag(&mut sources, &["verify", "timeout"], t, "--timeout");
            }
            let loaded = config::load(&sources)?;
            let s = &loaded.settings;
            let image = match &args.image {
                Some(i) => i.clone(),
                None => s.render(&s.image, "image")?,
            };
            let request = crate::verify::VerifyRequest {
                image,
                platforms: explicit_platforms(&loaded)?,
            };
            let policy = crate::gate::GatePolicy::from_settings(&s.gate)?;
            let verification = crate::verify::verify(&request, s).await?;
            let verdict = crate::gate::evaluate(&verification, &policy);
            if args.json {
                let json = serde_json::to_string_pretty(&verification)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            } else {
                print!("{}", crate::verify::render_text(&verification));
            }
            let status = gate_status(verdict.outcome);
            if let Some(dir) = &args.report_dir {
                let mut report = run::new_report("verify", Some(&loaded));
                report.exit_code = status as u8;
                report.verification = Some(verification);
                report.gate = Some(verdict);
                crate::report::write_all(dir, &report)?;
            }
            Ok(status)
        }
        Command::Run(args) => {
            if let Some(p) = &args.platform {
                flag(
                    &mut sources,
                    &["gate", "required_platforms"],
                    split_list(p),
                    "--platform",
                );
            }
            if let Some(r) = &args.runner {
                flag(&mut sources, &["verify", "runner"], r.clone(), "--runner");
            }
            if let Some(d) = &args.report_dir {
                flag(
                    &mut sources,
                    &["report", "dir"],
                    d.display().to_string(),
                    "--report-dir",
                );
            }
            let opts = run::RunOptions {
                image: args.image.clone(),
                command: "run",
            };
            let (report, dir) = match config::load(&sources) {
                Ok(loaded) => (
                    run::run(&loaded, &opts).await,
                    loaded.settings.report.dir.clone(),
                ),
                Err(e) => {
                    // A bad configuration still leaves a report saying why.
                    let mut report = run::new_report("run", None);
                    run::stopped(&mut report, "config", &e);
                    let dir = args
                        .report_dir
                        .clone()
                        .unwrap_or_else(|| config::ReportSettings::default().dir);
                    (report, dir)
                }
            };
            Ok(run::finish(&report, &dir))
        }
        Command::Build(args) => {
            add_build_flags(&mut sources, &args)?;
            let loaded = config::load(&sources)?;
            let request = build_request(&loaded, &args)?;
            let bound = crate::cache_prune::max_size_setting(&loaded.settings.cache_max_size)?;
            let outcome = crate::build::build(&request, &loaded.settings).await?;
            crate::cache_prune::enforce(loaded.settings.cache_dir(), bound).await;
            if let Some(path) = &args.dotenv {
                let key = match outcome.platforms.as_slice() {
                    [one] => crate::report::platform_key(&one.platform),
                    _ => "ARCHGATE_IMAGE".to_string(),
                };
                crate::report::write_dotenv(path, &[(key, outcome.image.clone())])?;
            }
            if args.json {
                let json = serde_json::to_string_pretty(&outcome)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            } else {
                print!("{}", crate::build::render_text(&outcome));
            }
            Ok(ExitStatus::Success)
        }
        Command::Config(args) => {
            let loaded = config::load(&sources)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&config::render::render_json(&loaded))
                        .unwrap_or_default()
                );
            } else {
                print!("{}", config::render::render_text(&loaded));
            }
            Ok(ExitStatus::Success)
        }
        Command::Cache(CacheCommand::Prune(args)) => {
            let loaded = config::load(&sources)?;
            let bound = prune_bound(&loaded.settings, &args)?;
            let cache = loaded.settings.cache_dir();
            let dry_run = args.dry_run;
            let report = tokio::task::spawn_blocking(move || {
                crate::cache_prune::prune(&cache, &bound, dry_run)
            })
            .await
            .map_err(|e| Error::Internal(format!("pruning the cache: {e}")))??;
            if args.json {
                let json = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            } else {
                print!("{}", crate::cache_prune::render_text(&report));
            }
            Ok(ExitStatus::Success)
        }
        Command::Inspect(args) => {
            let loaded = config::load(&sources)?;
            let location = Location::parse(&args.image)?;
            let store = store::open(&location, &loaded.settings, false).await?;
            let selector = match location.selector() {
                Some(s) => s,
                None => store.default_selector().await?,
            };
            let inspection =
                crate::inspect::inspect(store.as_ref(), &selector, &args.image).await?;
            if args.json {
                let json = serde_json::to_string_pretty(&inspection)
                    .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))?;
                println!("{json}");
            } else {
                print!("{}", crate::inspect::render_text(&inspection));
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// `cache prune`'s bound: the flags, else `cache_max_size`.
fn prune_bound(s: &config::Settings, args: &PruneArgs) -> Result<crate::cache_prune::Bound> {
    let max_size = match &args.max_size {
        Some(text) => Some(
            crate::cache_prune::parse_size(text)
                .map_err(|e| Error::Invalid(format!("--max-size: {e}")))?,
        ),
        None if args.older_than.is_none() => {
            crate::cache_prune::max_size_setting(&s.cache_max_size)?
        }
        None => None,
    };
    let older_than = match args.older_than {
        Some(d) if d.is_finite() && d >= 0.0 => {
            Some(std::time::Duration::from_secs_f64(d * 86400.0))
        }
        Some(d) => {
            return Err(Error::Invalid(format!(
                "--older-than {d}: write a number of days, 0 or more"
            )));
        }
        None => None,
    };
    Ok(crate::cache_prune::Bound {
        max_size,
        older_than,
        keep_used_since: None,
    })
}

fn flag(sources: &mut Sources, path: &[&str], value: impl Into<figment::value::Value>, name: &str) {
    sources.flags.push((
        path.iter().map(|s| s.to_string()).collect(),
        value.into(),
        name.to_string(),
    ));
}

/// A comma-separated flag value as a list.
fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_string()).collect()
}

/// Platforms set explicitly (flag, file or environment) are required; `None`:
/// take what the image or the sources hold.
fn explicit_platforms(loaded: &config::Loaded) -> Result<Option<Vec<crate::platform::Platform>>> {
    if loaded.origins.contains_key(&vec!["platforms".to_string()]) {
        Ok(Some(loaded.settings.platform_list()?))
    } else {
        Ok(None)
    }
}

/// The exit status for a verdict.
fn gate_status(outcome: crate::verify::Outcome) -> ExitStatus {
    use crate::verify::Outcome;
    match outcome {
        Outcome::Passed => ExitStatus::Success,
        Outcome::Failed => ExitStatus::Failed,
        Outcome::Error | Outcome::Skipped => ExitStatus::Infrastructure,
    }
}

/// `merge` flags become the top configuration layer.
fn add_merge_flags(sources: &mut Sources, args: &MergeArgs) {
    if let Some(p) = &args.platform {
        flag(sources, &["platforms"], split_list(p), "--platform");
    }
    if let Some(t) = &args.target {
        flag(sources, &["merge", "target"], t.clone(), "--target");
    }
    if let Some(f) = args.format {
        flag(sources, &["merge", "format"], format_name(f), "--format");
    }
    if args.convert {
        flag(sources, &["merge", "convert"], true, "--convert");
    }
    if args.keep_attestations {
        flag(
            sources,
            &["merge", "keep_attestations"],
            true,
            "--keep-attestations",
        );
    }
    if !args.sources.is_empty() {
        flag(
            sources,
            &["merge", "sources"],
            args.sources.clone(),
            "SOURCE arguments",
        );
    }
}

/// The merge request from the resolved settings.
fn merge_request(loaded: &config::Loaded, args: &MergeArgs) -> Result<crate::merge::MergeRequest> {
    use crate::config::MergeSources;
    use crate::platform::Platform;
    let s = &loaded.settings;
    let sources = match &s.merge.sources {
        MergeSources::List(list) => list
            .iter()
            .map(|l| crate::merge::SourceSpec {
                location: l.clone(),
                expected: None,
            })
            .collect(),
        MergeSources::ByPlatform(table) => table
            .iter()
            .map(|(p, l)| {
                let expected = Platform::parse(p)
                    .map_err(|e| Error::Config(format!("[merge.sources] key \"{p}\": {e}")))?;
                Ok(crate::merge::SourceSpec {
                    location: l.clone(),
                    expected: Some(expected),
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let target = match &s.merge.target {
        Some(t) => s.render(t, "merge.target")?,
        None => s.render(&s.image, "image")?,
    };
    let target = Location::parse(&target)?;
    let platforms = explicit_platforms(loaded)?;
    let mut extra_tags = Vec::new();
    for (i, t) in s.tags.iter().chain(args.tags.iter()).enumerate() {
        let tag = s.render(t, &format!("tags[{i}]"))?;
        crate::image::reference::validate_tag(&tag).map_err(Error::Invalid)?;
        extra_tags.push(tag);
    }
    Ok(crate::merge::MergeRequest {
        sources,
        target,
        platforms,
        format: s.merge.format,
        convert: s.merge.convert,
        keep_attestations: s.merge.keep_attestations,
        extra_tags,
    })
}

fn format_name(f: crate::image::media::Format) -> &'static str {
    match f {
        crate::image::media::Format::Oci => "oci",
        crate::image::media::Format::Docker => "docker",
    }
}

/// `build` flags become the top configuration layer.
fn add_build_flags(sources: &mut Sources, args: &BuildArgs) -> Result<()> {
    if let Some(p) = &args.platform {
        let list: Vec<String> = p.split(',').map(|s| s.trim().to_string()).collect();
        flag(sources, &["build", "platforms"], list, "--platform");
    }
    if let Some(f) = &args.file {
        flag(
            sources,
            &["build", "dockerfile"],
            f.display().to_string(),
            "--file",
        );
    }
    if let Some(c) = &args.context {
        flag(
            sources,
            &["build", "context"],
            c.display().to_string(),
            "CONTEXT",
        );
    }
    if let Some(i) = &args.image {
        flag(sources, &["build", "image"], i.clone(), "--image");
    }
    if let Some(f) = args.format {
        flag(sources, &["build", "format"], format_name(f), "--format");
    }
    for kv in &args.build_args {
        // `--build-arg KEY` takes KEY's value from the environment, as docker does.
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, v.to_string()),
            None => match std::env::var(kv) {
                Ok(v) => (kv.as_str(), v),
                Err(_) => {
                    return Err(Error::Invalid(format!(
                        "--build-arg {kv}: write KEY=VALUE, or set {kv} in the environment"
                    )));
                }
            },
        };
        if k.is_empty() {
            return Err(Error::Invalid(format!(
                "--build-arg {kv}: the name is empty"
            )));
        }
        flag(sources, &["build", "args", k], v, "--build-arg");
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), else 0.
fn source_date_epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<i64>().map_err(|_| {
            Error::Invalid(format!(
                "SOURCE_DATE_EPOCH={v} is not a Unix time in seconds"
            ))
        }),
        _ => Ok(0),
    }
}

/// The build request from the resolved settings.
fn build_request(loaded: &config::Loaded, args: &BuildArgs) -> Result<crate::build::BuildRequest> {
    let s = &loaded.settings;
    let b = &s.build;
    let platforms = match &b.platforms {
        Some(list) => {
            let mut out = Vec::new();
            for p in list {
                let parsed = crate::platform::Platform::parse(p)
                    .map_err(|e| Error::Config(format!("`build.platforms`: {e}")))?;
                if !out.contains(&parsed) {
                    out.push(parsed);
                }
            }
            out
        }
        None => s.platform_list()?,
    };
    let target = match &b.image {
        Some(t) => s.render(t, "build.image")?,
        None => s.render(&s.image, "image")?,
    };
    let mut extra_tags = Vec::new();
    for (i, t) in s
        .tags
        .iter()
        .chain(b.tags.iter())
        .chain(args.tags.iter())
        .enumerate()
    {
        let tag = s.render(t, &format!("tags[{i}]"))?;
        crate::image::reference::validate_tag(&tag).map_err(Error::Invalid)?;
        extra_tags.push(tag);
    }
    Ok(crate::build::BuildRequest {
        dockerfile: b.dockerfile.clone(),
        context: b.context.clone(),
        args: b.args.clone(),
        platforms,
        target: Location::parse(&target)?,
        extra_tags,
        format: b.format,
        epoch: source_date_epoch()?,
        driver: b.driver,
    })
}

/// The images to mirror: SOURCE TARGET from the command line, else every `[[mirror]]` entry.
fn mirror_requests(
    loaded: &config::Loaded,
    args: &MirrorArgs,
) -> Result<Vec<crate::mirror::MirrorRequest>> {
    let s = &loaded.settings;
    // `--platform` beats an entry's own list; the configured `platforms` only fills in.
    let from_flag = match &args.platform {
        Some(_) => Some(s.platform_list()?),
        None => None,
    };
    let fallback = explicit_platforms(loaded)?;
    if let (Some(source), Some(target)) = (&args.source, &args.target) {
        return Ok(vec![crate::mirror::MirrorRequest {
            source: source.clone(),
            target: target.clone(),
            platforms: fallback,
        }]);
    }
    if s.mirror.is_empty() {
        return Err(Error::Invalid(
            "nothing to mirror: pass SOURCE TARGET, or list [[mirror]] entries (source, target, platforms) in archgate.toml".into(),
        ));
    }
    s.mirror
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let key = |k: &str| format!("mirror[{i}].{k}");
            if entry.source.is_empty() || entry.target.is_empty() {
                return Err(Error::Config(format!(
                    "[[mirror]] entry `mirror.{i}` needs both `source` and `target`"
                )));
            }
            let platforms = if from_flag.is_some() {
                from_flag.clone()
            } else if entry.platforms.is_empty() {
                fallback.clone()
            } else {
                let list = entry.platforms.join(",");
                Some(
                    crate::platform::parse_list(&list)
                        .map_err(|e| Error::Config(format!("`{}`: {e}", key("platforms"))))?,
                )
            };
            Ok(crate::mirror::MirrorRequest {
                source: s.render(&entry.source, &key("source"))?,
                target: s.render(&entry.target, &key("target"))?,
                platforms,
            })
        })
        .collect()
}
