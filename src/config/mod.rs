//! Layered settings, resolved once and passed down:
//! built-in defaults < `archgate.toml` < `ARCHGATE_*` environment < CI
//! variables (GitLab `CI_*`, Jenkins) < command-line flags.
//!
//! `Settings` is the whole schema; unknown keys are errors everywhere. Values
//! are typed where they have a syntax (platforms, patterns, Java versions), so
//! a malformed one is an error of `load` naming its key, before any command
//! writes anything; what serde cannot express is checked by `load`'s
//! `validate`. Nothing after `load` re-parses a setting.

pub mod env;
pub mod java;
pub mod load;
pub mod merge_sources;
pub mod pattern;
pub mod render;
pub mod secret;
pub mod size;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

pub use java::VersionNumber;
pub use load::{Loaded, Sources, load};
pub use merge_sources::MergeSources;
pub use pattern::{Glob, Pattern};
pub use secret::Secret;

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Platforms to build, merge or verify, `os/arch[/variant]` (normalised).
    pub platforms: Vec<Platform>,
    /// The image location to publish to (template), e.g. `oci:archgate-out/app:{tag}`
    /// or `registry.internal:5000/team/app:{git_short_sha}`.
    pub image: String,
    /// Extra tags (templates) put on the published index, after the digest is pushed.
    pub tags: Vec<String>,
    /// The full repository name (`REGISTRY/NAME`, no tag) recorded beside each
    /// tag in an `oci:` or `oci-archive:` target (`io.containerd.image.name`,
    /// what `ctr images import` and K3s store the image as), e.g.
    /// `10.0.0.5:5000/team/app`; `--name`. Unset: `mirror` keeps the source's
    /// name; `merge` and `build` record none.
    pub image_name: Option<String>,
    /// Per-registry settings keyed by `HOST[:PORT]` exactly as in image references.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Timeouts, retries and concurrency for registry traffic.
    pub network: NetworkSettings,
    /// `archgate build`: Dockerfile, context, build args, target and format.
    pub build: BuildSettings,
    /// `archgate merge`: sources, target and format.
    pub merge: MergeSettings,
    /// `[[mirror]]`: images `archgate mirror` moves when run without SOURCE and TARGET.
    pub mirror: Vec<MirrorEntry>,
    /// `archgate verify`: runners, timeouts, the Java policy, extra commands.
    pub verify: VerifySettings,
    /// `[gate]`: which platforms must pass and what an error means.
    pub gate: GateSettings,
    /// `[report]`: where `archgate run` writes its reports.
    pub report: ReportSettings,
    /// `[attest]`: the key that signs the verdict attached to the index digest.
    pub attest: AttestSettings,
    /// Cache of blobs and unpacked root filesystems (`ARCHGATE_CACHE`);
    /// default `$XDG_CACHE_HOME/archgate`, else `~/.cache/archgate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// The automatic bound on the cache (`5GiB`, `500MB`; `0` or `off`: none),
    /// applied least recently used first when `verify`, `build` and `run` end.
    #[serde(deserialize_with = "size_text")]
    pub cache_max_size: String,
    /// Progress of downloads, unpacks and emulated runs on stderr (`--progress`,
    /// `ARCHGATE_PROGRESS`): `auto` (bars on a terminal, else a line per
    /// platform and phase every few seconds), `lines`, `never`.
    pub progress: crate::progress::ProgressMode,
    /// Values read from the CI system (GitLab, Jenkins); usually not set by hand.
    pub ci: CiContext,
    /// Whether `platforms` was set (file, environment or flag) rather than
    /// defaulted: set platforms are required, defaulted ones mean "what the image holds".
    #[serde(skip)]
    pub platforms_explicit: bool,
    /// What the loader read from the process environment besides settings.
    #[serde(skip)]
    pub host: HostEnv,
}

/// Facts of the process environment the loader read from its injected
/// [`Sources`]; not settings (never rendered, no key), so that nothing after
/// `load` reads the environment itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostEnv {
    /// `$XDG_CACHE_HOME/archgate`, else `$HOME/.cache/archgate`: the cache when `cache` is unset.
    pub default_cache: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH` as given (checked where a build needs it).
    pub source_date_epoch: Option<String>,
    /// `GITLAB_CI` is set: `archgate run` prints collapsible log sections.
    pub gitlab_ci: bool,
    /// The whole environment as `load` was given it, for what reads variables
    /// that are not settings: Docker's credentials (`DOCKER_AUTH_CONFIG`,
    /// `DOCKER_CONFIG`, `HOME`) and the environment of a credential helper.
    pub vars: HostVars,
}

/// Environment variables, by name. Their values may be tokens, so `Debug`
/// prints the names only.
#[derive(Clone, Default, PartialEq)]
pub struct HostVars(pub BTreeMap<String, String>);

impl std::fmt::Debug for HostVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            platforms: ["linux/amd64", "linux/arm64", "linux/mips64le"]
                .into_iter()
                .map(|p| Platform::parse(p).expect("a supported platform"))
                .collect(),
            image: "oci:archgate-out/image:{tag}".into(),
            tags: Vec::new(),
            image_name: None,
            registries: BTreeMap::new(),
            network: NetworkSettings::default(),
            build: BuildSettings::default(),
            merge: MergeSettings::default(),
            mirror: Vec::new(),
            verify: VerifySettings::default(),
            gate: GateSettings::default(),
            report: ReportSettings::default(),
            attest: AttestSettings::default(),
            cache: None,
            cache_max_size: "4GiB".into(),
            progress: crate::progress::ProgressMode::Auto,
            ci: CiContext::default(),
            platforms_explicit: false,
            host: HostEnv::default(),
        }
    }
}

impl Settings {
    /// The platforms the gate looks at: `[gate] required_platforms`, else
    /// `platforms` (configured or default). `verify` and `run` verify these.
    pub fn gate_platforms(&self) -> &[Platform] {
        if self.gate.required_platforms.is_empty() {
            &self.platforms
        } else {
            &self.gate.required_platforms
        }
    }

    /// The one rule for "required platforms", which `merge`, `build`, `verify`
    /// and `run` all enforce: [`Settings::gate_platforms`] minus `[gate]
    /// allow_missing`. Each must be in the image and pass.
    pub fn required_platforms(&self) -> Vec<Platform> {
        self.gate_platforms()
            .iter()
            .filter(|p| !self.gate.allow_missing.iter().any(|a| a.matches(p)))
            .cloned()
            .collect()
    }

    /// The platforms set explicitly (flag, file or environment), which are
    /// then required; `None`: take what the image or the sources hold.
    pub fn explicit_platforms(&self) -> Option<Vec<Platform>> {
        self.platforms_explicit.then(|| self.platforms.clone())
    }

    /// The cache directory: `cache`, else `$XDG_CACHE_HOME/archgate`, else
    /// `$HOME/.cache/archgate` (both as the loader read them), else a
    /// directory under the system temp dir.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .clone()
            .or_else(|| self.host.default_cache.clone())
            .unwrap_or_else(|| std::env::temp_dir().join("archgate-cache"))
    }

    /// A template setting rendered with the CI context; `key` names it in errors.
    pub fn render(&self, template: &str, key: &str) -> crate::Result<String> {
        template::render(template, &self.ci, key)
    }

    /// The top-level `tags` followed by `more`, rendered and checked as tags;
    /// errors name `tags[i]`.
    pub fn render_tags<'a>(
        &'a self,
        more: impl IntoIterator<Item = &'a String>,
    ) -> crate::Result<Vec<String>> {
        let mut out = Vec::new();
        for (i, t) in self.tags.iter().chain(more).enumerate() {
            let tag = self.render(t, &format!("tags[{i}]"))?;
            crate::image::reference::validate_tag(&tag).map_err(crate::Error::Invalid)?;
            out.push(tag);
        }
        Ok(out)
    }
}

/// A size written as text (`"4GiB"`) or a bare number of bytes (`0`).
fn size_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(u64),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::N(n) => n.to_string(),
    })
}

/// `[registries."HOST:PORT"]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Speak plain HTTP to this registry (private registries on a LAN).
    pub http: bool,
    /// Use HTTPS but do not verify the certificate.
    pub insecure: bool,
    /// A PEM file with the CA (or self-signed certificate) to trust for this registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

/// `[network]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// Transient failures (connection reset, timeout, 429, 5xx) in a row without
    /// progress that are retried, per request or per blob transfer (the source's
    /// download and the target's upload share one budget; bytes moved start the
    /// count again).
    pub retries: u32,
    /// Seconds before one request is abandoned.
    pub timeout: u64,
    /// Seconds to establish a connection.
    pub connect_timeout: u64,
    /// Concurrent blob transfers per registry.
    pub concurrency: usize,
    /// Seconds after a request's or blob transfer's start when no further retry
    /// starts: the bound on how long one flaky transfer can hold a job up.
    pub deadline: u64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            retries: 4,
            timeout: 300,
            connect_timeout: 10,
            concurrency: 4,
            deadline: 600,
        }
    }
}

/// `[ci]`: what the CI system told us. Filled from GitLab's and Jenkins'
/// variables by the loader; tag templates read these.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CiContext {
    /// `CI_REGISTRY`: the GitLab registry host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `CI_REGISTRY_IMAGE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_image: Option<String>,
    /// `CI_REGISTRY_USER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_user: Option<String>,
    /// `CI_REGISTRY_PASSWORD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_password: Option<Secret>,
    /// `CI_JOB_TOKEN` (used as `gitlab-ci-token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_token: Option<Secret>,
    /// `CI_COMMIT_TAG` or Jenkins `TAG_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_tag: Option<String>,
    /// `CI_COMMIT_SHA` or Jenkins `GIT_COMMIT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// `CI_COMMIT_SHORT_SHA` (else the first 8 characters of `commit_sha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_short_sha: Option<String>,
    /// `CI_COMMIT_REF_SLUG` or Jenkins `BRANCH_NAME` (slugified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ref_slug: Option<String>,
    /// `CI_PIPELINE_ID` or Jenkins `BUILD_NUMBER`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// `CI_JOB_URL` or Jenkins `BUILD_URL`: the attestation's `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_url: Option<String>,
}

/// `[build]`: a Dockerfile built for every platform (`RUN` in bubblewrap, QEMU for foreign CPUs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSettings {
    /// The Dockerfile, relative to the working directory.
    pub dockerfile: PathBuf,
    /// The build context directory (ADD/COPY sources, `.dockerignore`).
    pub context: PathBuf,
    /// Build arguments (`--build-arg K=V` adds to and overrides these).
    pub args: BTreeMap<String, String>,
    /// Platforms to build; default: the top-level `platforms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
    /// Where the index goes (template); default: the top-level `image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// More tags (templates) for the index, besides the top-level `tags`.
    pub tags: Vec<String>,
    /// `oci` (OCI manifests and index) or `docker` (Docker v2s2 and manifest list).
    pub format: crate::image::media::Format,
    /// `native` (archgate builds, `RUN` included) or `buildx` (`docker buildx build --push`).
    pub driver: BuildDriver,
    /// Threads compressing layers, shared by all platforms (0: one per core).
    /// The layers' bytes, and so their digests, do not depend on it.
    pub threads: usize,
    /// Seconds one `RUN` step may take before it is stopped (at least 1).
    pub run_timeout: u64,
    /// The network of `RUN` steps: `host` (as `docker build`) or `none`.
    pub network: BuildNetwork,
}

/// The network a `RUN` step sees.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BuildNetwork {
    /// The runner's network (and its `/etc/resolv.conf` when the image has one).
    #[default]
    Host,
    /// None: a network namespace with only its own loopback.
    None,
}

/// Who builds: archgate itself, or docker buildx for what it cannot do (`RUN --mount`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BuildDriver {
    #[default]
    Native,
    Buildx,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            dockerfile: PathBuf::from("Dockerfile"),
            context: PathBuf::from("."),
            args: BTreeMap::new(),
            platforms: None,
            image: None,
            tags: Vec::new(),
            format: crate::image::media::Format::Oci,
            driver: BuildDriver::Native,
            threads: 0,
            run_timeout: 3600,
            network: BuildNetwork::Host,
        }
    }
}

/// `[merge]`: per-architecture images to assemble into one index.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MergeSettings {
    /// The sources: a list of image locations (each one's platform is read from
    /// its config), or a table `"linux/arm64" = "LOCATION"` that also states
    /// which platform each must be.
    pub sources: MergeSources,
    /// Where the index goes (template); default: the top-level `image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `oci` (OCI image index) or `docker` (Docker manifest list v2).
    pub format: crate::image::media::Format,
    /// Convert per-platform manifests to `format`'s family (changes their digests).
    pub convert: bool,
    /// Keep buildx attestation entries (dropped by default).
    pub keep_attestations: bool,
}

/// One `[[mirror]]` entry: an image `archgate mirror` moves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorEntry {
    /// Where the image is (template): a registry reference, `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    pub source: String,
    /// Where it goes (template); without a tag, the source's tag is kept.
    pub target: String,
    /// Platforms to keep; empty: `--platform`, else the configured `platforms`
    /// when set explicitly, else every platform the source holds.
    pub platforms: Vec<Platform>,
    /// The full repository name recorded in an `oci:`/`oci-archive:` target
    /// (as top-level `image_name`); unset: `image_name`, else the source's.
    pub name: Option<String>,
}

/// How a platform's commands are executed by `archgate verify`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// `native` when the host runs the platform itself, else `qemu`.
    #[default]
    Auto,
    /// QEMU user-mode emulation (`qemu-user-static`), inside a sandbox.
    Qemu,
    /// The host CPU, inside a sandbox, with the image's own loader and libraries.
    Native,
    /// Every check but execution; execution checks are `skipped`.
    Static,
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runner::Auto => "auto",
            Runner::Qemu => "qemu",
            Runner::Native => "native",
            Runner::Static => "static",
        })
    }
}

/// `[verify]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifySettings {
    /// The runner for every platform not named in `runners`.
    pub runner: Runner,
    /// Per-platform runners: `"linux/amd64" = "native"`.
    pub runners: BTreeMap<Platform, Runner>,
    /// Seconds before a command in the image (`java -version`, extra commands) is killed; > 0.
    pub timeout: u64,
    /// Platforms verified at once; 0 = the number of CPU cores.
    pub concurrency: usize,
    /// Limits for unpacking one platform's layers.
    pub max_unpacked_bytes: u64,
    /// `[verify.java]`.
    pub java: JavaPolicy,
    /// `[[verify.commands]]`: extra commands run in every platform's image.
    pub commands: Vec<CommandCheck>,
    /// `[verify.service]`: start the image's own service (`service-start`); absent: not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceCheck>,
    /// `[verify.natives]`: the `native-libs` check.
    pub natives: NativesPolicy,
    /// Clients that must be able to pull or import the image (the `clients`
    /// check): `docker-19.03`, `containerd-1.6`, `k3s-import`; empty: none.
    pub clients: Vec<Client>,
}

/// A client the `clients` check judges the image for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Client {
    /// Docker 19.03's puller: Docker v2s2 media types only (moby/moby#39727).
    #[serde(rename = "docker-19.03")]
    Docker1903,
    /// containerd 1.6 (`ctr images pull`/`import`): no descriptor to missing content.
    #[serde(rename = "containerd-1.6")]
    Containerd16,
    /// K3s's importer (containerd, no name translator): containerd's rules,
    /// and an archive that names the image in full.
    #[serde(rename = "k3s-import")]
    K3sImport,
}

impl Client {
    /// The name the settings and reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Docker1903 => "docker-19.03",
            Client::Containerd16 => "containerd-1.6",
            Client::K3sImport => "k3s-import",
        }
    }
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            runner: Runner::Auto,
            runners: BTreeMap::new(),
            timeout: 120,
            concurrency: 0,
            max_unpacked_bytes: 8 << 30,
            java: JavaPolicy::default(),
            commands: Vec::new(),
            service: None,
            natives: NativesPolicy::default(),
            clients: Vec::new(),
        }
    }
}

/// `[verify.java]`: what a JDK must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JavaPolicy {
    /// Whether the image must contain a JDK at all (false: the JDK checks are skipped).
    pub required: bool,
    /// The lowest acceptable version, `1.8` / `8` / `17.0.9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<VersionNumber>,
    /// An exact version (prefix match: `17` accepts `17.0.9`); not with `min_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionNumber>,
}

impl Default for JavaPolicy {
    fn default() -> Self {
        JavaPolicy {
            required: true,
            min_version: Some(VersionNumber::parse("1.8").expect("a version number")),
            version: None,
        }
    }
}

/// `[verify.natives]`: what the `native-libs` check may pass over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NativesPolicy {
    /// Globs (`*` within a path segment, `**` across, `?`, `[…]`) matched against
    /// in-image paths (`/opt/tools/**`), jar paths (`/app/app.jar!BOOT-INF/lib/x.jar`)
    /// and Maven coordinates (`org.xerial.snappy:snappy-java:*`): what a team
    /// knowingly ships unused.
    pub ignore: Vec<Glob>,
    /// Whether a failure fails the platform; `false`: reported as `failed`, ignored by the gate.
    pub required: bool,
    /// Pass over the JDK's desktop libraries ([`JDK_DESKTOP_LIBRARIES`]) besides `ignore`.
    pub ignore_jdk_desktop: bool,
}

/// The JDK's own libraries for desktop and device APIs (fonts, JPEG, colour
/// management, sound, smart cards): a headless JRE ships them while their
/// libraries (libfreetype, libjpeg, liblcms2, libasound, libpcsclite) are
/// only recommended, and a service never loads them. Passed over unless
/// `[verify.natives] ignore_jdk_desktop = false`.
pub const JDK_DESKTOP_LIBRARIES: &[&str] = &[
    "**/lib/libfontmanager.so",
    "**/lib/libjavajpeg.so",
    "**/lib/liblcms.so",
    "**/lib/libjsound.so",
    "**/lib/libj2pcsc.so",
    "**/lib/libawt_xawt.so",
    "**/lib/libsplashscreen.so",
];

impl Default for NativesPolicy {
    fn default() -> Self {
        NativesPolicy {
            ignore: Vec::new(),
            required: true,
            ignore_jdk_desktop: true,
        }
    }
}

/// One `[[verify.commands]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CommandCheck {
    /// The check's name in reports; not empty.
    pub name: String,
    /// The command and its arguments (exec form; no shell unless you name one); not empty.
    pub args: Vec<String>,
    /// The exit code expected.
    pub exit_code: i32,
    /// A regular expression that stdout or stderr must match (compiled at load).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Pattern>,
    /// Platforms this command applies to (empty: all).
    pub platforms: Vec<Platform>,
}

/// `[verify.service]`: the `service-start` check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceCheck {
    /// The command (exec form) instead of the image's `ENTRYPOINT` + `CMD`; not empty when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A regular expression: the service is started when a line of stdout or stderr matches it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Pattern>,
    /// Seconds the service has to print `ready` (or to settle); > 0.
    pub timeout: u64,
    /// Without `ready`: seconds the process must stay alive (or exit 0 before); > 0, ≤ `timeout`.
    pub settle: u64,
}

impl Default for ServiceCheck {
    fn default() -> Self {
        ServiceCheck {
            command: None,
            ready: None,
            timeout: 120,
            settle: 10,
        }
    }
}

/// `[gate]`: the release gate's policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateSettings {
    /// Platforms that must be in the index and pass; empty: `platforms` (see `gate::required_platforms`).
    pub required_platforms: Vec<Platform>,
    /// Platforms that may be missing from the index without failing the gate
    /// (present but broken still fails).
    pub allow_missing: Vec<Platform>,
    /// Whether a platform that could not be verified (registry down, emulator
    /// missing: outcome `error`) stops the gate with exit 3.
    pub error_fails: bool,
    /// Execution checks whose `skipped` (by policy: `runner = "static"`,
    /// `[verify.java] required = false`) still lets a platform count as proven.
    /// Empty: a platform whose JDK never ran is "not proven" and fails the gate.
    pub waive_skipped: Vec<Waiver>,
}

/// An execution check `[gate] waive_skipped` names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Waiver {
    /// `java-version`: `java -version` ran and met the policy.
    JavaVersion,
    /// `java-os-arch`: the JVM's own `os.arch`.
    JavaOsArch,
    /// Every `[[verify.commands]]` entry.
    Commands,
    /// `service-start`: the image's service started (`[verify.service]`).
    ServiceStart,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            required_platforms: Vec::new(),
            allow_missing: Vec::new(),
            error_fails: true,
            waive_skipped: Vec::new(),
        }
    }
}

/// `[report]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Directory for `junit.xml`, `report.json`, `archgate.env`, `coverage.md`; not empty.
    pub dir: PathBuf,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            dir: PathBuf::from("archgate-report"),
        }
    }
}

/// `[attest]`: signing the verdict (`archgate run`, `archgate verify`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttestSettings {
    /// A PKCS#8 PEM ECDSA P-256 private key file (`ARCHGATE_ATTEST__KEY`, e.g. a
    /// GitLab *File* variable). Set: the verdict is signed and attached to the
    /// index digest. A secret: neither the path nor the key is ever printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
}
