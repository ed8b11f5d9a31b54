//! The command line: the only module that knows clap. It parses, resolves the
//! settings once, calls the library and maps the outcome to an exit code.

mod flags;
mod logging;
mod progress;
mod run;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::build::BuildRequest;
use crate::cancel;
use crate::config::{self, Sources};
use crate::error::{Error, Result};
use crate::image::Location;
use crate::merge::MergeRequest;
use crate::mirror::MirrorRequest;
use crate::report::var;
use crate::store;
use crate::verify::VerifyRequest;

pub use crate::error::ExitStatus;
pub use flags::FormatArg;

const AFTER_HELP: &str = "\
Exit codes:
  0  every required check passed
  1  the gate failed: the image is wrong (missing platform, mislabelled, bad digest)
  2  the configuration or the command line is wrong
  3  infrastructure failed (registry down, network, disk, emulator): nothing could be decided
  130/143  cancelled by SIGINT/SIGTERM (reports say `cancelled by SIGTERM`)

Configuration layers (later wins): defaults < archgate.toml < ARCHGATE_* environment
< CI variables (GitLab CI_*, Jenkins BUILD_NUMBER, GIT_COMMIT, ...) < command line.
Run `archgate config` to see the effective values and where each came from.";

/// The `--help` epilogue of a subcommand: the location forms, how to reach
/// a plain-HTTP registry and `$example`, so that each help page stands alone.
/// A macro because clap's attributes take one literal (`concat!`).
macro_rules! command_help {
    ($example:literal) => {
        concat!(
            "Image locations:
  HOST[:PORT]/NAME[:TAG|@DIGEST]  a registry, e.g. registry.example:5000/team/app:v1; the first
                                  part is a host only with a `.` or `:` or as `localhost`
                                  (else a Docker Hub path); names are lowercase
  oci:DIR[:TAG|@DIGEST]           an OCI image layout directory, e.g. oci:out/app:v1
  oci-archive:FILE[:TAG|@DIGEST]  a tar of an OCI image layout, e.g. oci-archive:app.tar:v1
  docker-archive:FILE[:NAME[:TAG]]  a `docker save` tar (one platform), e.g.
                                  docker-archive:debian-arm64.tar:debian:bullseye

Registries are reached over HTTPS. For a plain-HTTP one (e.g. a local test registry), say so
per host: `[registries.\"127.0.0.1:5000\"] http = true` in archgate.toml, or
ARCHGATE_REGISTRIES='{\"127.0.0.1:5000\"={http=true}}'.

Example:
  ",
            $example
        )
    };
}

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
    /// Progress on stderr: bars on a terminal, else a line per platform and phase every
    /// few seconds (auto); lines only; or none. The `progress` setting (ARCHGATE_PROGRESS).
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub progress: Option<progress::ProgressArg>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what an image location points at: digest, media type, and per platform
    /// the manifest, the config's own platform, layers and size.
    #[command(after_help = command_help!("archgate inspect 127.0.0.1:5000/team/app:v1"))]
    Inspect(InspectArgs),
    /// Build a Dockerfile (FROM, ARG, ENV, WORKDIR, ADD/COPY, COPY --from, RUN, ...) for every
    /// platform, without a Docker engine, and publish one index.
    #[command(after_help = command_help!("archgate build ./docker --platform linux/amd64,linux/arm64 --image 127.0.0.1:5000/team/app:v1"))]
    Build(BuildArgs),
    /// Assemble per-architecture images (or indexes) into one multi-arch index:
    /// checked first, then blobs, manifests and the index by digest, tags last.
    #[command(after_help = command_help!("archgate merge 127.0.0.1:5000/team/app:v1-amd64 127.0.0.1:5000/team/app:v1-arm64 --target 127.0.0.1:5000/team/app:v1"))]
    Merge(MergeArgs),
    /// Copy an image between registries, OCI layouts and OCI archives (e.g. into an
    /// air-gapped network), digests preserved, optionally keeping only some platforms;
    /// blobs first, the tag last; a re-run resumes. Without SOURCE TARGET: every [[mirror]] entry.
    #[command(after_help = command_help!("archgate mirror 127.0.0.1:5000/team/app:v1 oci-archive:app.tar:v1"))]
    Mirror(MirrorArgs),
    /// Prove, through the index digest, that every required platform runs its JDK:
    /// index entry, config platform, JDK location, ELF identity, `java -version`
    /// (natively or under QEMU, sandboxed) and the JVM's own os.arch.
    #[command(after_help = command_help!("archgate verify 127.0.0.1:5000/team/app:v1 --platform linux/amd64,linux/arm64 --report-dir out"))]
    Verify(VerifyArgs),
    /// The whole job from configuration: merge the per-architecture images (or take
    /// --image), verify the index digest, apply [gate], write the reports
    /// (junit.xml, report.json, archgate.env, coverage.md) and exit with the verdict.
    #[command(after_help = command_help!("archgate run --image 127.0.0.1:5000/team/app:v1 --report-dir archgate-report"))]
    Run(RunArgs),
    /// List what is attached to an image's digest (OCI referrers: the referrers API and the
    /// fallback tag sha256-<hex>): per attestation whether its signature verifies under
    /// --key, its result and its subjects.
    #[command(after_help = command_help!("archgate attestations 127.0.0.1:5000/team/app:v1 --key attest.pub.pem"))]
    Attestations(AttestationsArgs),
    /// Tag TARGET with exactly the digest SOURCE resolves to (copied across repositories or
    /// registries, digests kept, attestations carried) only when a statement signed by --key
    /// says PASSED for that digest and covers every required platform ([gate]); else exit 1
    /// naming what is missing, and nothing is written.
    #[command(after_help = command_help!("archgate promote 127.0.0.1:5000/team/app:rc1 127.0.0.1:5000/team/app:1.0 --key attest.pub.pem"))]
    Promote(PromoteArgs),
    /// Print the effective configuration and where each value came from (secrets as ***).
    #[command(after_help = command_help!("ARCHGATE_IMAGE=oci:out/app:v1 archgate config --json"))]
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
    /// Image location: HOST[:PORT]/NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]].
    pub image: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct MergeArgs {
    /// The full repository name to record in an oci:/oci-archive: target
    /// (io.containerd.image.name, what K3s imports it as), e.g.
    /// 10.0.0.5:5000/team/app; the tag is the target's (setting: image_name).
    #[arg(long, value_name = "REGISTRY/NAME")]
    pub name: Option<String>,
    /// Sources: image locations of single-platform images or of indexes
    /// (default: [merge] sources). A platform is read from each image's config.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Where the index goes, with a tag (default: [merge] target, else `image`).
    #[arg(long, value_name = "LOCATION")]
    pub target: Option<String>,
    /// Platforms to include, comma-separated (default: `platforms` when configured, else all the
    /// sources hold). Every required platform ([gate] required_platforms, else `platforms`,
    /// minus [gate] allow_missing) must be among them, or nothing is published (exit 1).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Index type: an OCI image index, or a Docker manifest list v2 for old clients.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Convert per-platform manifests to the index's family (Docker v2s2 <-> OCI); changes their digests.
    #[arg(long)]
    pub convert: bool,
    /// Keep buildx attestation entries (dropped by default).
    #[arg(long)]
    pub keep_attestations: bool,
    /// Another tag for the index (repeatable), pushed last.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Write a GitLab dotenv file for the next job: `AG_IMAGE=name@sha256:…`, `AG_INDEX_DIGEST`.
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct MirrorArgs {
    /// Source location: HOST[:PORT]/NAME[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]]
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
    /// The full repository name to record in an oci:/oci-archive: target
    /// (io.containerd.image.name, what K3s imports it as), e.g.
    /// 10.0.0.5:5000/team/app; the tag is the target's (default: the source's name; setting: image_name).
    #[arg(long, value_name = "REGISTRY/NAME")]
    pub name: Option<String>,
    /// Keep attestation entries (provenance, SBOM) also in an archive target,
    /// where they are left out by default (containerd's import trips on them).
    #[arg(long)]
    pub keep_attestations: bool,
    /// Leave behind what refers to the index and its platform manifests (OCI referrers:
    /// archgate's signed verdicts, signatures, SBOMs), carried by default.
    #[arg(long)]
    pub no_referrers: bool,
    /// Print the result as JSON (one array, one element per image).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image location (default: `image` from the configuration).
    pub image: Option<String>,
    /// Platforms that must pass, comma-separated (default: [gate] required_platforms, else `platforms`, configured or default).
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
    /// The full repository name to record in an oci:/oci-archive: target
    /// (io.containerd.image.name, what K3s imports it as), e.g.
    /// 10.0.0.5:5000/team/app; the tag is the target's (setting: image_name).
    #[arg(long, value_name = "REGISTRY/NAME")]
    pub name: Option<String>,
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
    pub format: Option<FormatArg>,
    /// Write a GitLab dotenv file for the next job: `AG_IMAGE_<PLATFORM>=name@sha256:…`
    /// when one platform was built (fan-out), else `AG_IMAGE=…`.
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
pub struct AttestationsArgs {
    /// Image location (registry, oci:, oci-archive:).
    pub image: String,
    /// A PEM public key (ECDSA P-256) to check each signature with.
    #[arg(long, value_name = "PUB.pem")]
    pub key: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image to promote; resolved once, to its digest.
    pub source: String,
    /// Where to tag it (same or another repository or registry, oci:, oci-archive:).
    pub target: String,
    /// The PEM public key (ECDSA P-256) the PASSED statement must be signed with.
    #[arg(long, value_name = "PUB.pem")]
    pub key: PathBuf,
    /// Platforms the statement must cover, comma-separated (default: [gate] required_platforms, else `platforms`).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON instead of TOML lines.
    #[arg(long)]
    pub json: bool,
}

/// Entry point used by `main.rs`: the one place the process environment is read.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                0
            });
        }
    };
    let sources = Sources::from_process(cli.global.config.clone());
    logging::init(cli.global.verbose, cli.global.log_format, &sources.env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Infrastructure.code());
        }
    };
    let status = match runtime.block_on(run_until_signal(cli, sources)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_status()
        }
    };
    ExitCode::from(status.code())
}

/// [`run`], stopped by SIGINT or SIGTERM: the library stops what needs care
/// (see [`crate::cancel`]), the rest is dropped after the grace period, and
/// the exit status is the signal's (130, 143) even when the command still
/// finished. `run` reports the cancellation itself; other commands end on
/// the one line `error: cancelled by SIGTERM`.
async fn run_until_signal(cli: Cli, sources: Sources) -> Result<ExitStatus> {
    signals::listen();
    let outcome = tokio::select! {
        outcome = run(cli, sources) => outcome,
        signal = cancel::cancelled_after_grace() => Err(Error::Cancelled(signal)),
    };
    let Some(signal) = cancel::requested() else {
        return outcome;
    };
    cancel::settle().await;
    let cancelled = Error::Cancelled(signal);
    match outcome {
        Ok(status) if status == cancelled.exit_status() => Ok(status),
        _ => Err(cancelled),
    }
}

/// Runs one parsed command line: its flags become the top settings layer over
/// `sources`, the settings are loaded (and validated) once, and the library does the rest.
pub async fn run(cli: Cli, mut sources: Sources) -> Result<ExitStatus> {
    crate::cache_prune::run_started();
    if let Some(p) = cli.global.progress {
        flags::set(&mut sources, &["progress"], p.setting(), "--progress");
    }
    let log_format = cli.global.log_format;
    match cli.command {
        Command::Merge(args) => {
            flags::merge(&mut sources, &args);
            let mut loaded = config::load(&sources)?;
            loaded.settings.tags.extend(args.tags.iter().cloned());
            let request = MergeRequest::from_settings(&loaded.settings)?;
            let shown = progress::install(&loaded.settings, log_format, true);
            let merged = crate::merge::merge(&request, &loaded.settings).await;
            if let Some(d) = &shown {
                d.finish();
            }
            let outcome = merged?;
            if let Some(path) = &args.dotenv {
                crate::report::write_dotenv(
                    path,
                    &[
                        (var::IMAGE.into(), outcome.image.clone()),
                        (var::INDEX_DIGEST.into(), outcome.index_digest.to_string()),
                    ],
                )?;
            }
            if args.json {
                println!("{}", to_json(&outcome)?);
            } else {
                print!("{}", crate::merge::render_text(&outcome));
            }
            Ok(ExitStatus::Success)
        }
        Command::Mirror(args) => {
            flags::name(&mut sources, args.name.as_deref());
            if let Some(p) = &args.platform {
                flags::set(
                    &mut sources,
                    &["platforms"],
                    flags::split_list(p),
                    "--platform",
                );
            }
            let loaded = config::load(&sources)?;
            let s = &loaded.settings;
            let shown = progress::install(s, log_format, true);
            let requests = match (&args.source, &args.target) {
                (Some(source), Some(target)) => vec![MirrorRequest {
                    source: source.clone(),
                    target: target.clone(),
                    platforms: s.explicit_platforms(),
                    name: s.image_name.clone(),
                    keep_attestations: args.keep_attestations.then_some(true),
                    referrers: !args.no_referrers,
                }],
                _ => {
                    let mut all = MirrorRequest::from_settings(s)?;
                    // `--platform` beats an entry's own list.
                    if args.platform.is_some() {
                        all.iter_mut()
                            .for_each(|r| r.platforms = Some(s.platforms.clone()));
                    }
                    if args.keep_attestations {
                        all.iter_mut()
                            .for_each(|r| r.keep_attestations = Some(true));
                    }
                    if args.no_referrers {
                        all.iter_mut().for_each(|r| r.referrers = false);
                    }
                    all
                }
            };
            let mut outcomes = Vec::new();
            for request in &requests {
                let mirrored = crate::mirror::mirror_each(request, s).await;
                if let (Err(_), Some(d)) = (&mirrored, &shown) {
                    d.finish();
                }
                for outcome in mirrored? {
                    if !args.json {
                        print!("{}", crate::mirror::render_text(&outcome));
                    }
                    outcomes.push(outcome);
                }
            }
            if let Some(d) = &shown {
                d.finish();
            }
            if args.json {
                println!("{}", to_json(&outcomes)?);
            }
            Ok(ExitStatus::Success)
        }
        Command::Verify(args) => {
            flags::verify(&mut sources, &args);
            let loaded = config::load(&sources)?;
            if args.report_dir.is_some() {
                config::load::check_report_dir(&loaded)?;
            }
            let s = &loaded.settings;
            let signer = crate::attest::signer(&loaded)?;
            let request = VerifyRequest::from_settings(s, args.image.as_deref())?;
            if args.image.is_none() {
                eprintln!("{}", default_image_line(&loaded, &request.image));
            }
            let shown = progress::install(s, log_format, true);
            let verified = crate::verify::verify(&request, s).await;
            if let Some(d) = &shown {
                d.finish();
            }
            let verification = match verified.and_then(|v| cancel::check().map(|()| v)) {
                Ok(v) => v,
                Err(e) => {
                    // A cancelled verify still says so in its reports.
                    if let (Error::Cancelled(_), Some(dir)) = (&e, &args.report_dir) {
                        let mut report = crate::pipeline::new_report("verify", Some(&loaded));
                        report.stop("verify", &e);
                        crate::report::write_all(dir, &report)?;
                    }
                    return Err(e);
                }
            };
            let verdict = crate::gate::evaluate(&verification, s);
            if args.json {
                println!("{}", to_json(&verification)?);
            } else {
                print!("{}", crate::verify::render_text(&verification));
                run::print_gate(&verdict);
            }
            let mut report = crate::pipeline::new_report("verify", Some(&loaded));
            report.exit_code = verdict.exit_code;
            if let Some(signer) = &signer {
                match crate::attest::attach(s, signer, &verification, &verdict).await {
                    Ok(Some(a)) => {
                        eprint!("{}", crate::attest::render_attached(&a));
                        report.attestation = Some(a);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("error: attest: {e}");
                        crate::pipeline::attach_failed(&mut report, &e);
                    }
                }
            }
            let status = report.exit_code;
            if let Some(dir) = &args.report_dir {
                report.verification = Some(verification);
                report.gate = Some(verdict);
                crate::report::write_all(dir, &report)?;
            }
            Ok(status)
        }
        Command::Run(args) => {
            flags::run(&mut sources, &args);
            let loaded =
                config::load(&sources).and_then(|l| config::load::check_report_dir(&l).map(|()| l));
            let (report, dir) = match loaded {
                Ok(loaded) => {
                    let mut sections = run::Sections {
                        gitlab: loaded.settings.host.gitlab_ci,
                    };
                    // Inside `run`'s own sections.
                    let shown = progress::install(&loaded.settings, log_format, false);
                    let report =
                        crate::pipeline::run(&loaded, args.image.as_deref(), &mut sections).await;
                    if let Some(d) = &shown {
                        d.finish();
                    }
                    (report, loaded.settings.report.dir.clone())
                }
                Err(e) => {
                    // A bad configuration still leaves a report saying why.
                    let mut report = crate::pipeline::new_report("run", None);
                    report.stop("config", &e);
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
            flags::build(&mut sources, &args)?;
            let mut loaded = config::load(&sources)?;
            loaded.settings.build.tags.extend(args.tags.iter().cloned());
            let request = BuildRequest::from_settings(&loaded.settings)?;
            let bound = crate::cache_prune::max_size_setting(&loaded.settings.cache_max_size)?;
            let shown = progress::install(&loaded.settings, log_format, true);
            let built = crate::build::build(&request, &loaded.settings).await;
            if let Some(d) = &shown {
                d.finish();
            }
            let outcome = built?;
            crate::cache_prune::enforce(loaded.settings.cache_dir(), bound).await;
            if let Some(path) = &args.dotenv {
                let key = match outcome.platforms.as_slice() {
                    [one] => crate::report::platform_key(&one.platform),
                    _ => var::IMAGE.to_string(),
                };
                crate::report::write_dotenv(path, &[(key, outcome.image.clone())])?;
            }
            if args.json {
                println!("{}", to_json(&outcome)?);
            } else {
                print!("{}", crate::build::render_text(&outcome));
            }
            Ok(ExitStatus::Success)
        }
        Command::Attestations(args) => {
            let loaded = config::load(&sources)?;
            let key = match &args.key {
                Some(path) => Some(crate::attest::public_key(path)?),
                None => None,
            };
            let location = Location::parse(&args.image)?;
            let opened = store::open_image(&location, &loaded.settings).await?;
            let subject = opened.store.resolve(&opened.selector).await?.digest;
            let found =
                crate::attest::inspect(opened.store.as_ref(), &subject, key.as_ref()).await?;
            if args.json {
                println!(
                    "{}",
                    to_json(&serde_json::json!({
                        "image": args.image,
                        "digest": subject,
                        "attestations": found,
                    }))?
                );
            } else {
                print!(
                    "{}",
                    crate::attest::render_text(&args.image, &subject, &found)
                );
            }
            Ok(ExitStatus::Success)
        }
        Command::Promote(args) => {
            if let Some(p) = &args.platform {
                flags::set(
                    &mut sources,
                    &["gate", "required_platforms"],
                    flags::split_list(p),
                    "--platform",
                );
            }
            let loaded = config::load(&sources)?;
            let key = crate::attest::public_key(&args.key)?;
            let request = crate::attest::promote::PromoteRequest {
                source: args.source.clone(),
                target: args.target.clone(),
                key,
            };
            let outcome = crate::attest::promote::promote(&request, &loaded.settings).await?;
            if args.json {
                println!("{}", to_json(&outcome)?);
            } else {
                print!("{}", crate::attest::promote::render_text(&outcome));
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
            let opened = store::open_image(&location, &loaded.settings).await?;
            let inspection =
                crate::inspect::inspect(opened.store.as_ref(), &opened.selector, &args.image)
                    .await?;
            if args.json {
                println!("{}", to_json(&inspection)?);
            } else {
                print!("{}", crate::inspect::render_text(&inspection));
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// The one stderr line `archgate verify` without IMAGE prints: which image
/// it verifies and where that `image` value came from.
fn default_image_line(loaded: &config::Loaded, image: &str) -> String {
    let from = match loaded.origins.get(&vec!["image".to_string()]) {
        Some(origin) => format!("set by {origin}"),
        None => "archgate's default; set `image` in archgate.toml or ARCHGATE_IMAGE".into(),
    };
    format!("no IMAGE given: verifying `{image}`, the `image` setting ({from})")
}

/// A command's `--json` output.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))
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

#[cfg(test)]
mod tests {
    /// "Only `src/cli` knows clap" (STYLE.md): no other library file names it.
    #[test]
    fn clap_appears_only_in_src_cli() {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with("cli") {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && std::fs::read_to_string(&path).unwrap().contains("clap")
                {
                    out.push(path.display().to_string());
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        walk(&src, &mut offenders);
        assert!(src.join("cli/mod.rs").is_file(), "walked the real tree");
        assert!(offenders.is_empty(), "clap outside src/cli: {offenders:?}");
    }
}
