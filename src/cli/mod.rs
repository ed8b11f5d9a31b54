//! The command line: the only module that knows clap. It parses, resolves the
//! settings once, calls the library and maps the outcome to an exit code.

mod flags;
mod logging;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::build::BuildRequest;
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
    let status = match runtime.block_on(run(cli, sources)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e}");
            ExitStatus::from(e.kind())
        }
    };
    ExitCode::from(status.code())
}

/// Runs one parsed command line: its flags become the top settings layer over
/// `sources`, the settings are loaded (and validated) once, and the library does the rest.
pub async fn run(cli: Cli, mut sources: Sources) -> Result<ExitStatus> {
    match cli.command {
        Command::Merge(args) => {
            flags::merge(&mut sources, &args);
            let mut loaded = config::load(&sources)?;
            loaded.settings.tags.extend(args.tags.iter().cloned());
            let request = MergeRequest::from_settings(&loaded.settings)?;
            let outcome = crate::merge::merge(&request, &loaded.settings).await?;
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
            let requests = match (&args.source, &args.target) {
                (Some(source), Some(target)) => vec![MirrorRequest {
                    source: source.clone(),
                    target: target.clone(),
                    platforms: s.explicit_platforms(),
                }],
                _ => {
                    let mut all = MirrorRequest::from_settings(s)?;
                    // `--platform` beats an entry's own list.
                    if args.platform.is_some() {
                        all.iter_mut()
                            .for_each(|r| r.platforms = Some(s.platforms.clone()));
                    }
                    all
                }
            };
            let mut outcomes = Vec::new();
            for request in &requests {
                let outcome = crate::mirror::mirror(request, s).await?;
                if !args.json {
                    print!("{}", crate::mirror::render_text(&outcome));
                }
                outcomes.push(outcome);
            }
            if args.json {
                println!("{}", to_json(&outcomes)?);
            }
            Ok(ExitStatus::Success)
        }
        Command::Verify(args) => {
            flags::verify(&mut sources, &args);
            let loaded = config::load(&sources)?;
            let s = &loaded.settings;
            let request = VerifyRequest::from_settings(s, args.image.as_deref())?;
            let verification = crate::verify::verify(&request, s).await?;
            let verdict = crate::gate::evaluate(&verification, s);
            if args.json {
                println!("{}", to_json(&verification)?);
            } else {
                print!("{}", crate::verify::render_text(&verification));
            }
            let status = verdict.exit_code;
            if let Some(dir) = &args.report_dir {
                let mut report = crate::pipeline::new_report("verify", Some(&loaded));
                report.exit_code = status;
                report.verification = Some(verification);
                report.gate = Some(verdict);
                crate::report::write_all(dir, &report)?;
            }
            Ok(status)
        }
        Command::Run(args) => {
            flags::run(&mut sources, &args);
            let (report, dir) = match config::load(&sources) {
                Ok(loaded) => {
                    let mut sections = run::Sections {
                        gitlab: loaded.settings.host.gitlab_ci,
                    };
                    let report =
                        crate::pipeline::run(&loaded, args.image.as_deref(), &mut sections).await;
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
            let outcome = crate::build::build(&request, &loaded.settings).await?;
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

/// A command's `--json` output.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot render JSON: {e}")))
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
