//! The names of every environment variable archgate reads, in one place.
//! Only the CLI's edge reads the process environment (into
//! [`Sources`](super::Sources)); everything else sees these through it.

/// The configuration file (`--config` wins).
pub const CONFIG: &str = "ARCHGATE_CONFIG";
/// Prefix of settings overrides (`ARCHGATE_NETWORK__RETRIES=8`).
pub const PREFIX: &str = "ARCHGATE_";
/// A tracing filter for the log (wins over `-v`).
pub const LOG: &str = "ARCHGATE_LOG";
/// `--log-format`'s default.
pub const LOG_FORMAT: &str = "ARCHGATE_LOG_FORMAT";
/// Set (non-empty): no colour in the log, whatever the terminal.
pub const NO_COLOR: &str = "NO_COLOR";

/// Reproducible builds: the Unix time every layer and config carries.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// The default cache lives under `$XDG_CACHE_HOME/archgate` …
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// … else under `$HOME/.cache/archgate`.
pub const HOME: &str = "HOME";

/// Set in every GitLab job: logs get collapsible sections.
pub const GITLAB_CI: &str = "GITLAB_CI";
/// GitLab's variables that fill `[ci]`.
pub const CI_REGISTRY: &str = "CI_REGISTRY";
pub const CI_REGISTRY_IMAGE: &str = "CI_REGISTRY_IMAGE";
pub const CI_REGISTRY_USER: &str = "CI_REGISTRY_USER";
pub const CI_REGISTRY_PASSWORD: &str = "CI_REGISTRY_PASSWORD";
pub const CI_JOB_TOKEN: &str = "CI_JOB_TOKEN";
pub const CI_COMMIT_TAG: &str = "CI_COMMIT_TAG";
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
pub const CI_COMMIT_SHORT_SHA: &str = "CI_COMMIT_SHORT_SHA";
pub const CI_COMMIT_REF_SLUG: &str = "CI_COMMIT_REF_SLUG";
pub const CI_PIPELINE_ID: &str = "CI_PIPELINE_ID";
pub const CI_JOB_URL: &str = "CI_JOB_URL";
/// Jenkins' variables that fill `[ci]` (GitLab's win when both are set).
pub const TAG_NAME: &str = "TAG_NAME";
pub const GIT_COMMIT: &str = "GIT_COMMIT";
pub const BRANCH_NAME: &str = "BRANCH_NAME";
pub const BUILD_NUMBER: &str = "BUILD_NUMBER";
pub const BUILD_URL: &str = "BUILD_URL";
