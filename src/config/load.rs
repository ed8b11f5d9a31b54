//! Resolving `Settings` from its layers with figment, remembering where every
//! value came from (for `archgate config`) and turning figment's errors into
//! one-line messages that name the file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Profile, Provider};

use super::env::{self, *};
use super::template::slugify;
use super::{HostEnv, Settings};
use crate::error::{Error, Result};
use crate::image::reference::validate_host;

/// Variables that start with the prefix but are not settings: the CLI's own
/// and the CI templates'. What archgate writes for the next job
/// (`report::var`, `AG_*`) lies outside the prefix, so a dotenv handed on by
/// GitLab never changes a later job's settings.
const ENV_NOT_SETTINGS: &[&str] = &[
    env::CONFIG,
    env::LOG,
    env::LOG_FORMAT,
    // Variables of the CI templates (ci-templates/): the binary, a fan-out job's
    // platform, the image a verify job checks, what a promote job promotes.
    "ARCHGATE_BIN",
    "ARCHGATE_PLATFORM",
    "ARCHGATE_VERIFY_IMAGE",
    "ARCHGATE_PROMOTE_KEY",
    "ARCHGATE_PROMOTE_TARGET",
    "ARCHGATE_PROMOTE_SOURCE",
];
/// The file read from the working directory when none is named.
pub const DEFAULT_FILE: &str = "archgate.toml";

/// CI variables and the `[ci]` key each one sets. GitLab's come first, so
/// they win when a job somehow has both.
const CI_VARIABLES: &[(&str, &str)] = &[
    (CI_REGISTRY, "registry"),
    (CI_REGISTRY_IMAGE, "registry_image"),
    (CI_REGISTRY_USER, "registry_user"),
    (CI_REGISTRY_PASSWORD, "registry_password"),
    (CI_JOB_TOKEN, "job_token"),
    (CI_COMMIT_TAG, "commit_tag"),
    (CI_COMMIT_SHA, "commit_sha"),
    (CI_COMMIT_SHORT_SHA, "commit_short_sha"),
    (CI_COMMIT_REF_SLUG, "ref_slug"),
    (CI_PIPELINE_ID, "pipeline_id"),
    (CI_JOB_URL, "job_url"),
    (TAG_NAME, "commit_tag"),
    (GIT_COMMIT, "commit_sha"),
    (BRANCH_NAME, "ref_slug"),
    (BUILD_NUMBER, "pipeline_id"),
    (BUILD_URL, "job_url"),
];

/// Everything the loader reads, passed in so that loading is testable.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// The process environment (or a test's).
    pub env: BTreeMap<String, String>,
    /// Where `./archgate.toml` is looked for.
    pub cwd: PathBuf,
    /// Command-line overrides: `(dotted key, value, flag name)`.
    pub flags: Vec<(Vec<String>, Value, String)>,
}

impl Sources {
    /// Sources from the real process environment and working directory: the
    /// one place the environment is read (the CLI calls it).
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        Sources {
            config_file,
            env: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            flags: Vec::new(),
        }
    }
}

/// The resolved settings and the origin of each value.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// Dotted key path → where its value came from; keys absent here are defaults.
    pub origins: BTreeMap<Vec<String>, String>,
}

/// Resolves the settings: defaults < file < `ARCHGATE_*` < CI variables < flags.
pub fn load(sources: &Sources) -> Result<Loaded> {
    let file = config_file(sources)?;
    let mut origins = BTreeMap::new();
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));

    if let Some(path) = &file {
        let toml = Toml::file_exact(path);
        // Read it once ourselves for a clear "cannot read" error and for provenance.
        let data = toml
            .data()
            .map_err(|e| format_error(e, Some(path), &sources.env))?;
        if let Some(dict) = data.get(&Profile::Default) {
            record(
                dict,
                &mut Vec::new(),
                &format!("{}", path.display()),
                &mut origins,
            );
        }
        figment = figment.merge(toml);
    }

    let (env_dict, env_origins) = env_layer(&sources.env)?;
    origins.extend(env_origins);
    figment = figment.merge(Serialized::globals(env_dict).profile(Profile::Default));

    let (ci_dict, ci_origins) = ci_layer(&sources.env);
    origins.extend(ci_origins);
    figment = figment.merge(Serialized::defaults(ci_dict));

    let mut flag_dict = Dict::new();
    for (path, value, flag) in &sources.flags {
        insert(&mut flag_dict, path, value.clone());
        origins.insert(path.clone(), format!("command line {flag}"));
    }
    figment = figment.merge(Serialized::defaults(flag_dict));

    let mut settings: Settings = figment
        .extract()
        .map_err(|e| format_error(e, file.as_deref(), &sources.env))?;
    validate(&settings, &origins)?;
    // As `docker build CONTEXT` does: the Dockerfile is CONTEXT/Dockerfile
    // unless `--file` or `[build] dockerfile` names one.
    // (`.` keeps the plain `Dockerfile` that `archgate config` shows.)
    let context = &settings.build.context;
    if !origins.contains_key(&key(&["build", "dockerfile"])) && context != Path::new(".") {
        settings.build.dockerfile = context.join("Dockerfile");
    }
    settings.platforms_explicit = origins.contains_key(&vec!["platforms".to_string()]);
    settings.host = host_env(&sources.env);
    Ok(Loaded {
        settings,
        file,
        origins,
    })
}

/// `--config`, else `$ARCHGATE_CONFIG`, else `./archgate.toml` when it exists.
fn config_file(sources: &Sources) -> Result<Option<PathBuf>> {
    let named = sources
        .config_file
        .clone()
        .map(|p| (p, "--config"))
        .or_else(|| {
            sources
                .env
                .get(env::CONFIG)
                .filter(|s| !s.is_empty())
                .map(|p| (PathBuf::from(p), env::CONFIG))
        });
    if let Some((path, how)) = named {
        let path = if path.is_absolute() {
            path
        } else {
            sources.cwd.join(path)
        };
        if !path.is_file() {
            return Err(Error::Config(format!(
                "configuration file {} (from {how}) does not exist or is not a file",
                path.display()
            )));
        }
        return Ok(Some(path));
    }
    let default = sources.cwd.join(DEFAULT_FILE);
    Ok(default.is_file().then_some(default))
}

/// `ARCHGATE_A__B=value` → `{a: {b: value}}`. Values parse as TOML-ish scalars
/// (`true`, `8`, `[a, b]`); `platforms` and `tags` also take comma lists.
fn env_layer(env: &BTreeMap<String, String>) -> Result<(Dict, BTreeMap<Vec<String>, String>)> {
    let mut dict = Dict::new();
    let mut origins = BTreeMap::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(env::PREFIX) else {
            continue;
        };
        if ENV_NOT_SETTINGS.contains(&name.as_str()) || rest.is_empty() {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(Error::Config(format!(
                "environment variable {name}: empty key segment; nest keys with `__`, e.g. ARCHGATE_NETWORK__RETRIES=8"
            )));
        }
        let value = if matches!(path.as_slice(), [k] if k == "platforms" || k == "tags")
            && !raw.trim_start().starts_with('[')
        {
            Value::from(
                raw.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>(),
            )
        } else if path
            .last()
            .is_some_and(|k| k == "password" || k == "username" || k == "image" || k == "key")
            || path.first().is_some_and(|k| k == "ci")
        {
            // Strings that must never be reinterpreted (a numeric password stays a string).
            Value::from(raw.clone())
        } else {
            raw.parse::<Value>()
                .unwrap_or_else(|_| Value::from(raw.clone()))
        };
        insert(&mut dict, &path, value);
        origins.insert(path, format!("environment {name}"));
    }
    Ok((dict, origins))
}

/// GitLab and Jenkins variables → `[ci]`.
fn ci_layer(env: &BTreeMap<String, String>) -> (Dict, BTreeMap<Vec<String>, String>) {
    let mut ci = Dict::new();
    let mut origins = BTreeMap::new();
    for (var, key) in CI_VARIABLES {
        let Some(value) = env.get(*var).filter(|v| !v.is_empty()) else {
            continue;
        };
        if ci.contains_key(*key) {
            continue; // GitLab's variable already set it
        }
        let value = if *var == BRANCH_NAME {
            slugify(value)
        } else {
            value.clone()
        };
        ci.insert(key.to_string(), Value::from(value));
        origins.insert(
            vec!["ci".to_string(), key.to_string()],
            format!("CI variable {var}"),
        );
    }
    let mut dict = Dict::new();
    if !ci.is_empty() {
        dict.insert("ci".into(), Value::from(ci));
    }
    (dict, origins)
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

fn record(
    dict: &Dict,
    prefix: &mut Vec<String>,
    origin: &str,
    out: &mut BTreeMap<Vec<String>, String>,
) {
    for (k, v) in dict {
        prefix.push(k.clone());
        match v {
            Value::Dict(_, inner) => record(inner, prefix, origin, out),
            _ => {
                out.insert(prefix.clone(), origin.to_string());
            }
        }
        prefix.pop();
    }
}

/// What the loader reads from the environment besides settings.
fn host_env(environment: &BTreeMap<String, String>) -> HostEnv {
    let non_empty = |k: &str| environment.get(k).filter(|v| !v.is_empty());
    let default_cache = non_empty(XDG_CACHE_HOME)
        .map(|x| PathBuf::from(x).join("archgate"))
        .or_else(|| non_empty(HOME).map(|h| PathBuf::from(h).join(".cache").join("archgate")));
    HostEnv {
        default_cache,
        source_date_epoch: non_empty(SOURCE_DATE_EPOCH).cloned(),
        gitlab_ci: non_empty(GITLAB_CI).is_some(),
        vars: super::HostVars(environment.clone()),
    }
}

/// Checks what the types cannot: registry hosts, duplicate platforms, and the
/// verify, gate and report policy — all before any command does any work, so
/// that nothing is discovered after publishing. Each error names its key and,
/// where known, the file or variable that set it.
fn validate(settings: &Settings, origins: &BTreeMap<Vec<String>, String>) -> Result<()> {
    let fail = |key: &[&str], message: String| {
        let path: Vec<String> = key.iter().map(|k| k.to_string()).collect();
        Error::Config(match origins.get(&path) {
            Some(o) => format!("{o}: {message}"),
            None => message,
        })
    };
    let mut seen: Vec<&crate::platform::Platform> = Vec::new();
    for p in &settings.platforms {
        if seen.contains(&p) {
            return Err(fail(
                &["platforms"],
                format!("`platforms`: {p} is listed twice"),
            ));
        }
        seen.push(p);
    }
    for host in settings.registries.keys() {
        if let Err(why) = validate_host(host) {
            let origin = origins
                .iter()
                .find(|(k, _)| k.len() >= 2 && k[0] == "registries" && k[1] == *host)
                .map(|(_, o)| format!(" in {o}"))
                .unwrap_or_default();
            return Err(Error::Config(format!(
                "[registries.\"{host}\"]{origin}: {why}"
            )));
        }
    }
    let names = std::iter::once((
        key(&["image_name"]),
        "image_name".to_string(),
        &settings.image_name,
    ))
    .chain(settings.mirror.iter().enumerate().map(|(i, m)| {
        (
            key(&["mirror"]),
            format!("[[mirror]] #{} name", i + 1),
            &m.name,
        )
    }));
    for (path, shown, name) in names {
        if let Some(n) = name
            && let Err(why) = check_image_name(n)
        {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            return Err(fail(&path, format!("`{shown}` = {n:?}: {why}")));
        }
    }
    let max = settings.cache_max_size.trim();
    if !max.eq_ignore_ascii_case("off") {
        super::size::parse_size(max)
            .map_err(|e| fail(&["cache_max_size"], format!("`cache_max_size`: {e}")))?;
    }
    let v = &settings.verify;
    for (i, c) in v.commands.iter().enumerate() {
        let key = format!("[[verify.commands]] #{} ({:?})", i + 1, c.name);
        if c.name.trim().is_empty() {
            return Err(fail(
                &["verify", "commands"],
                format!("{key}: `name` is empty; name the check (it titles the report line)"),
            ));
        }
        if c.args.first().is_none_or(|a| a.is_empty()) {
            return Err(fail(
                &["verify", "commands"],
                format!(
                    "{key}: `args` is empty; give the command, e.g. args = [\"/opt/app/bin/app\", \"--version\"]"
                ),
            ));
        }
    }
    if let Some(service) = &v.service {
        validate_service(service).map_err(|(k, m)| fail(&["verify", "service", k], m))?;
    }
    if v.timeout == 0 {
        return Err(fail(
            &["verify", "timeout"],
            "[verify] timeout = 0: give the seconds a command may run, e.g. 120".into(),
        ));
    }
    if v.java.min_version.is_some() && v.java.version.is_some() {
        return Err(fail(
            &["verify", "java", "version"],
            "[verify.java]: both `min_version` and `version` are set; keep one (`version` pins an exact release)".into(),
        ));
    }
    if settings.report.dir.as_os_str().is_empty() {
        return Err(fail(
            &["report", "dir"],
            "[report] dir is empty: name the directory for the reports, e.g. \"archgate-report\""
                .into(),
        ));
    }
    Ok(())
}

/// An image name as `image_name` takes it: a repository as Docker parses
/// one (no lookup), without tag or digest (those come from the target).
fn check_image_name(name: &str) -> std::result::Result<(), String> {
    let r = crate::image::ImageRef::parse(name).map_err(|e| e.to_string())?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(
            "give the repository only, e.g. \"10.0.0.5:5000/team/app\": the tag is the target's"
                .into(),
        );
    }
    Ok(())
}

/// `[verify.service]`: what its types cannot say (`ready` is compiled when read).
fn validate_service(
    s: &crate::config::ServiceCheck,
) -> std::result::Result<(), (&'static str, String)> {
    if let Some(command) = &s.command
        && command.first().is_none_or(|a| a.is_empty())
    {
        return Err((
            "command",
            "[verify.service] `command` is empty; give the command, e.g. command = [\"java\", \"-jar\", \"/app/service.jar\"], or leave it out to run the image's ENTRYPOINT + CMD".into(),
        ));
    }
    if s.timeout == 0 {
        return Err((
            "timeout",
            "[verify.service] timeout = 0: give the seconds the service has to start, e.g. 120"
                .into(),
        ));
    }
    if s.settle == 0 || s.settle > s.timeout {
        return Err((
            "settle",
            format!(
                "[verify.service] settle = {}: give the seconds the service must stay up without a `ready` line, between 1 and timeout ({})",
                s.settle, s.timeout
            ),
        ));
    }
    Ok(())
}

/// A dotted key path as `origins` keys it.
fn key(path: &[&str]) -> Vec<String> {
    path.iter().map(|k| k.to_string()).collect()
}

/// Checks, before any work, that the reports can be written to `[report] dir`
/// (`--report-dir`): an existing directory must be writable, else the nearest
/// existing ancestor must be a writable directory. Nothing is created; the
/// probe is an unnamed temporary file. A command that writes reports calls
/// this right after [`load`], so an unusable directory is a usage error
/// (exit 2) found before the verdict, not an infrastructure one after it.
pub fn check_report_dir(loaded: &Loaded) -> Result<()> {
    let dir = &loaded.settings.report.dir;
    let origin = loaded
        .origins
        .get(&key(&["report", "dir"]))
        .map(|o| format!(" (from {o})"))
        .unwrap_or_default();
    let fail = |why: String| {
        Error::Config(format!(
            "report directory `{}`{origin} is not usable: {why}; name a writable directory with --report-dir or [report] dir",
            dir.display()
        ))
    };
    let mut probe = dir.as_path();
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(fail(format!("`{}` is not a directory", probe.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && probe != Path::new(".") => {
                probe = match probe.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(fail(format!("`{}`: {e}", probe.display()))),
        }
    }
    tempfile::tempfile_in(probe)
        .map(drop)
        .map_err(|e| fail(format!("cannot write in `{}`: {e}", probe.display())))
}

/// One line per figment error: where (file or variable), which key, what was expected.
fn format_error(
    err: figment::Error,
    file: Option<&Path>,
    environment: &BTreeMap<String, String>,
) -> Error {
    let mut lines = Vec::new();
    for e in err {
        let source = match (&e.metadata, file) {
            (Some(m), _) if m.name.contains("TOML") => m
                .source
                .as_ref()
                .map(|s| s.to_string())
                .or_else(|| file.map(|f| f.display().to_string()))
                .unwrap_or_else(|| "archgate.toml".into()),
            // Environment, CI variables and flags are serialized maps.
            (Some(_), _) => {
                let mut full = e.path.clone();
                if let figment::error::Kind::UnknownField(found, _) = &e.kind
                    && full.last() != Some(found)
                {
                    full.push(found.clone());
                }
                let var = format!("{}{}", env::PREFIX, full.join("__").to_ascii_uppercase());
                if environment.contains_key(&var) {
                    format!("environment variable {var}")
                } else {
                    "the environment or command line".into()
                }
            }
            (None, Some(f)) => f.display().to_string(),
            (None, None) => "the configuration".into(),
        };
        let key = dotted(&e.path);
        let line = match &e.kind {
            figment::error::Kind::UnknownField(found, expected) => {
                let mut full = e.path.clone();
                if full.last() != Some(found) {
                    full.push(found.clone());
                }
                let hint = closest(found, expected)
                    .map(|c| format!(" — did you mean `{c}`?"))
                    .unwrap_or_default();
                format!(
                    "{source}: unknown key `{}`{hint} (valid here: {})",
                    dotted(&full),
                    expected.join(", ")
                )
            }
            figment::error::Kind::InvalidType(actual, expected) => {
                format!(
                    "{source}: key `{key}` has the wrong type: expected {expected}, found {actual}"
                )
            }
            figment::error::Kind::InvalidValue(actual, expected) => {
                format!("{source}: key `{key}` has an invalid value {actual}: expected {expected}")
            }
            figment::error::Kind::Message(m) if m.contains('\n') => {
                // TOML syntax errors come with a drawn snippet: keep the position and the reason.
                let first = m.lines().next().unwrap_or_default();
                let last = m
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
                    .unwrap_or_default();
                format!("{source}: {first}: {}", last.trim())
            }
            other if key.is_empty() => format!("{source}: {other}"),
            other => format!("{source}: key `{key}`: {other}"),
        };
        lines.push(line);
    }
    Error::Config(lines.join("; "))
}

/// A key path in TOML syntax: `registries."10.0.0.5:5000".http`.
pub(super) fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                p.clone()
            } else {
                format!("\"{p}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The expected key closest to a typo (edit distance ≤ 3).
fn closest<'a>(found: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|e| (edit_distance(found, e), *e))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, e)| e)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(toml: Option<&str>, env: &[(&str, &str)]) -> (Sources, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = toml {
            std::fs::write(dir.path().join("archgate.toml"), t).unwrap();
        }
        let s = Sources {
            config_file: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: dir.path().to_path_buf(),
            flags: Vec::new(),
        };
        (s, dir)
    }

    #[test]
    fn layers_in_order() {
        let (mut s, _d) = sources(
            Some("image = \"oci:from-file\"\n[network]\nretries = 2\nconcurrency = 3\n"),
            &[
                ("ARCHGATE_NETWORK__RETRIES", "7"),
                ("CI_COMMIT_SHA", "abcdef0123"),
                ("GIT_COMMIT", "ffff"),
            ],
        );
        s.flags.push((
            vec!["network".into(), "concurrency".into()],
            Value::from(9u32),
            "--concurrency".into(),
        ));
        let l = load(&s).unwrap();
        assert_eq!(l.settings.image, "oci:from-file");
        assert_eq!(l.settings.network.retries, 7, "env beats file");
        assert_eq!(l.settings.network.concurrency, 9, "flags beat everything");
        assert_eq!(l.settings.network.timeout, 300, "default stays");
        assert_eq!(
            l.settings.ci.commit_sha.as_deref(),
            Some("abcdef0123"),
            "GitLab variable wins over Jenkins"
        );
        let key = |k: &str| k.split('.').map(str::to_string).collect::<Vec<_>>();
        assert!(l.origins[&key("image")].ends_with("archgate.toml"));
        assert_eq!(
            l.origins[&key("network.retries")],
            "environment ARCHGATE_NETWORK__RETRIES"
        );
        assert_eq!(
            l.origins[&key("network.concurrency")],
            "command line --concurrency"
        );
        assert_eq!(
            l.origins[&key("ci.commit_sha")],
            "CI variable CI_COMMIT_SHA"
        );
    }

    #[test]
    fn env_lists_and_strings() {
        let (s, _d) = sources(
            None,
            &[
                ("ARCHGATE_PLATFORMS", "linux/amd64, linux/arm64"),
                ("ARCHGATE_LOG", "trace"),
                ("BRANCH_NAME", "feature/X"),
            ],
        );
        let l = load(&s).unwrap();
        let names: Vec<String> = l.settings.platforms.iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(l.settings.platforms_explicit);
        assert_eq!(l.settings.ci.ref_slug.as_deref(), Some("feature-x"));
    }

    #[test]
    fn registries_from_file() {
        let (s, _d) = sources(
            Some(
                "[registries.\"10.0.0.5:5000\"]\nhttp = true\nusername = \"ci\"\npassword = \"s3cret\"\n",
            ),
            &[],
        );
        let l = load(&s).unwrap();
        let r = &l.settings.registries["10.0.0.5:5000"];
        assert!(r.http);
        assert_eq!(r.password.as_ref().unwrap().expose(), "s3cret");
    }

    #[test]
    fn errors_are_one_actionable_line() {
        for (toml, env, want) in [
            (
                "[registires.\"a:5000\"]\nhttp = true\n",
                vec![],
                "unknown key `registires` — did you mean `registries`?",
            ),
            (
                "[network]\nretrys = 3\n",
                vec![],
                "unknown key `network.retrys` — did you mean `retries`?",
            ),
            (
                "[network]\nretries = \"four\"\n",
                vec![],
                "key `network.retries` has the wrong type",
            ),
            (
                "[registries.\"host::5000\"]\nhttp = true\n",
                vec![],
                "malformed registry host `host::5000`",
            ),
            ("platforms = 3\n", vec![], "key `platforms`"),
            ("image = \n", vec![], "archgate.toml"),
            (
                "",
                vec![("ARCHGATE_NETWORK__RETRIES", "many")],
                "network.retries",
            ),
        ] {
            let (s, _d) = sources(Some(toml), &env);
            let e = load(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{toml:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
            if env.is_empty() {
                assert!(e.contains("archgate.toml"), "names the file: {e}");
            }
        }
    }

    /// Every rule `validate` and the typed values enforce, each with the key
    /// (and the file) it names: these are exit 2 before any command works.
    #[test]
    fn policy_errors_name_their_key_at_load() {
        let mut wrong = Vec::new();
        for (toml, want) in [
            ("platforms = [\"linux/\"]\n", "key `platforms.0`"),
            (
                "platforms = [\"linux/arm64\", \"linux/arm64/v8\"]\n",
                "`platforms`: linux/arm64 is listed twice",
            ),
            (
                "[build]\nplatforms = [\"linux/sparc\"]\n",
                "key `build.platforms.0`",
            ),
            (
                "[[mirror]]\nsource = \"a\"\ntarget = \"b\"\nplatforms = [\"x\"]\n",
                "mirror",
            ),
            (
                "[gate]\nrequired_platforms = [\"linux/\"]\n",
                "key `gate.required_platforms.0`",
            ),
            (
                "[gate]\nallow_missing = [\"windows/amd64\"]\n",
                "key `gate.allow_missing.0`",
            ),
            (
                "[verify.runners]\n\"linux/nope\" = \"qemu\"\n",
                "verify.runners",
            ),
            (
                "[merge.sources]\n\"linux/nope\" = \"oci:a:v1\"\n",
                "key \"linux/nope\": platform",
            ),
            (
                "[[verify.commands]]\nname = \"x\"\nargs = [\"java\"]\noutput = \"(\"\n",
                "not a valid regular expression",
            ),
            (
                "[[verify.commands]]\nname = \"x\"\nargs = [\"java\"]\nplatforms = [\"linux/\"]\n",
                "verify.commands",
            ),
            (
                "[[verify.commands]]\nname = \" \"\nargs = [\"java\"]\n",
                "[[verify.commands]] #1 (\" \"): `name` is empty",
            ),
            (
                "[[verify.commands]]\nname = \"x\"\nargs = []\n",
                "[[verify.commands]] #1 (\"x\"): `args` is empty",
            ),
            (
                "[verify.service]\nready = \"(\"\n",
                "not a valid regular expression",
            ),
            (
                "[verify.service]\ncommand = []\n",
                "[verify.service] `command` is empty",
            ),
            (
                "[verify.service]\ntimeout = 0\n",
                "[verify.service] timeout = 0",
            ),
            (
                "[verify.service]\ntimeout = 5\nsettle = 10\n",
                "[verify.service] settle = 10",
            ),
            ("[verify.service]\nready_line = \"x\"\n", "ready_line"),
            (
                "[[verify.commands]]\nname = \"x\"\nargs = [\"\"]\n",
                "`args` is empty",
            ),
            ("[verify]\ntimeout = 0\n", "[verify] timeout = 0"),
            (
                "[verify.java]\nmin_version = \"eight\"\n",
                "\"eight\" is not a Java version",
            ),
            (
                "[verify.java]\nversion = \"17\"\n",
                "both `min_version` and `version` are set",
            ),
            (
                "[verify.natives]\nignore = [\"/opt/[abc\"]\n",
                "`[` without its `]`",
            ),
            (
                "[verify.natives]\nrequired = \"maybe\"\n",
                "verify.natives.required",
            ),
            ("[report]\ndir = \"\"\n", "[report] dir is empty"),
            ("[gate]\nerror_fails = \"sometimes\"\n", "gate.error_fails"),
        ] {
            let (s, _d) = sources(Some(toml), &[]);
            let e = load(&s).unwrap_err().to_string();
            if !(e.contains(want) && e.contains("archgate.toml") && !e.contains('\n')) {
                wrong.push(format!(
                    "{toml:?}: want {want:?} and the file, one line: {e}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn typed_values_are_normalised_and_compiled() {
        let (s, _d) = sources(
            Some(
                "platforms = [\"x86_64\", \"linux/arm64/v8\"]\n\
                 [verify.runners]\n\"arm64\" = \"qemu\"\n\
                 [verify.java]\nmin_version = \"11\"\n\
                 [[verify.commands]]\nname = \"v\"\nargs = [\"app\"]\noutput = \"^app \\\\d+\"\n",
            ),
            &[],
        );
        let l = load(&s).unwrap();
        let names: Vec<String> = l.settings.platforms.iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        let runner_keys: Vec<String> = l
            .settings
            .verify
            .runners
            .keys()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(runner_keys, ["linux/arm64"]);
        assert_eq!(
            l.settings
                .verify
                .java
                .min_version
                .as_ref()
                .unwrap()
                .as_str(),
            "11"
        );
        let pattern = l.settings.verify.commands[0].output.as_ref().unwrap();
        assert!(pattern.regex().is_match("app 3"), "{pattern}");
    }

    #[test]
    fn the_environment_is_read_only_through_sources() {
        let (s, _d) = sources(
            None,
            &[
                ("XDG_CACHE_HOME", "/x/cache"),
                ("HOME", "/home/u"),
                ("SOURCE_DATE_EPOCH", "1700000000"),
                ("GITLAB_CI", "true"),
            ],
        );
        let l = load(&s).unwrap();
        assert_eq!(l.settings.cache_dir(), PathBuf::from("/x/cache/archgate"));
        assert_eq!(
            l.settings.host.source_date_epoch.as_deref(),
            Some("1700000000")
        );
        assert!(l.settings.host.gitlab_ci);
        assert!(!l.settings.platforms_explicit, "platforms defaulted");
        let (s, _d) = sources(None, &[("HOME", "/home/u"), ("XDG_CACHE_HOME", "")]);
        let l = load(&s).unwrap();
        assert_eq!(
            l.settings.cache_dir(),
            PathBuf::from("/home/u/.cache/archgate")
        );
        assert!(!l.settings.host.gitlab_ci);
        // An unknown ARCHGATE_ key is named as the variable only when the injected
        // environment holds it (not the process's).
        let (s, _d) = sources(None, &[("ARCHGATE_NETWORK__RETRYS", "3")]);
        let e = load(&s).unwrap_err().to_string();
        assert!(
            e.contains("environment variable ARCHGATE_NETWORK__RETRYS"),
            "{e}"
        );
    }

    #[test]
    fn missing_named_file() {
        let (mut s, _d) = sources(None, &[]);
        s.config_file = Some("nope.toml".into());
        let e = load(&s).unwrap_err().to_string();
        assert!(e.contains("nope.toml") && e.contains("--config"), "{e}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must stay loadable: it is what users copy.
    #[test]
    fn config_example_loads() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/archgate.toml");
        let sources = Sources {
            config_file: Some(path),
            ..Sources::default()
        };
        let loaded = load(&sources).unwrap();
        assert!(loaded.settings.registries["registry.internal:5000"].http);
        assert_eq!(loaded.settings.platforms.len(), 3);
    }

    /// Every key of the schema is documented in the example (as a setting or a comment).
    #[test]
    fn config_example_covers_every_key() {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/archgate.toml"),
        )
        .unwrap();
        let mut settings = Settings::default();
        settings.registries.insert(
            "h:1".into(),
            crate::config::RegistrySettings {
                ca_file: Some("x".into()),
                username: Some("u".into()),
                password: Some(crate::config::Secret::new("p")),
                ..Default::default()
            },
        );
        settings.ci.registry = Some("x".into());
        settings.cache = Some("x".into());
        settings.attest.key = Some(crate::config::Secret::new("x"));
        settings.verify.java.version = Some(crate::config::VersionNumber::parse("17").unwrap());
        settings.verify.commands.push(crate::config::CommandCheck {
            output: Some(crate::config::Pattern::new("x").unwrap()),
            ..Default::default()
        });
        settings.mirror.push(crate::config::MirrorEntry::default());
        settings.verify.service = Some(crate::config::ServiceCheck {
            command: Some(vec!["x".into()]),
            ready: Some(crate::config::Pattern::new("x").unwrap()),
            ..Default::default()
        });
        let ci = serde_json::json!({"registry": 1, "registry_image": 1, "registry_user": 1, "registry_password": 1,
            "job_token": 1, "commit_tag": 1, "commit_sha": 1, "commit_short_sha": 1, "ref_slug": 1, "pipeline_id": 1, "job_url": 1});
        let mut value = serde_json::to_value(&settings).unwrap();
        value["ci"] = ci;
        fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
            if let serde_json::Value::Object(m) = v {
                for (k, child) in m {
                    if k != "h:1" {
                        out.push(k.clone());
                    }
                    keys(child, out);
                }
            }
            if let serde_json::Value::Array(items) = v {
                items.iter().for_each(|child| keys(child, out));
            }
        }
        let mut all = Vec::new();
        keys(&value, &mut all);
        for key in all {
            let documented = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l.starts_with(&format!("[{key}"))
                    || l.starts_with(&format!("[[{key}]]"))
                    || l.contains(&format!("[{key}."))
                    || l.contains(&format!(".{key}]"))
            });
            assert!(documented, "config/archgate.toml does not document `{key}`");
        }
    }
}
