//! The command line: the only module that knows clap. It parses, resolves the
//! settings once, calls the library and maps the outcome to an exit code.

mod logging;

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
    let sources = Sources::from_process(cli.global.config.clone());
    match cli.command {
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
