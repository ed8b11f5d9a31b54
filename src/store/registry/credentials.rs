//! Where the credentials for a registry host come from, first match wins:
//!
//! 1. archgate's own `[registries."HOST"] username/password`;
//! 2. GitLab's `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD` (else `CI_JOB_TOKEN` as
//!    user `gitlab-ci-token`) when HOST is the job's `CI_REGISTRY`;
//! 3. the `DOCKER_AUTH_CONFIG` variable (a `config.json` document, GitLab's convention);
//! 4. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers[HOST]`, else `auths[HOST]` (`auth` = base64 `user:pass`, or
//!    `username`/`password`), else the `credsStore` helper.
//!
//! Nothing found means anonymous access. [`lookup`] is pure (host, settings,
//! environment, file contents in; a decision out); [`resolve`] adds the I/O:
//! reading the file and running `docker-credential-<helper> get`.
//!
//! Docker semantics kept on purpose: a helper answering with the user `<token>`
//! hands out an identity (refresh) token; we send it as a basic-auth password,
//! which registries that issue such tokens accept at their token endpoint.
//! `identitytoken` entries in `auths` are skipped for the same reason we cannot
//! run an OAuth refresh flow: the next source is tried.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::config::{Secret, Settings};
use crate::error::{Error, Result};

/// Docker Hub's key in `config.json` files and the server URL its helpers expect.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The user GitLab pairs with `CI_JOB_TOKEN`.
const JOB_TOKEN_USER: &str = "gitlab-ci-token";
/// What helpers print when they hold nothing for a server (docker-credential-helpers).
const HELPER_NOT_FOUND: &str = "credentials not found";
/// A helper that prompts (gpg, a keychain) must not hang a CI job forever.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A user name and password for one registry, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    pub source: Source,
}

/// Where credentials were found, for messages (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `[registries."HOST"] username/password` in archgate's settings.
    Settings { host: String },
    /// `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`.
    CiRegistryUser,
    /// `CI_JOB_TOKEN`.
    CiJobToken,
    /// An `auths` entry of a Docker config (`origin` is the file or `DOCKER_AUTH_CONFIG`).
    DockerAuths { origin: String },
    /// A credential helper named by a Docker config.
    Helper { program: String, origin: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Settings { host } => {
                write!(f, "`[registries.\"{host}\"] username/password`")
            }
            Source::CiRegistryUser => f.write_str("CI_REGISTRY_USER/CI_REGISTRY_PASSWORD"),
            Source::CiJobToken => f.write_str("CI_JOB_TOKEN"),
            Source::DockerAuths { origin } => write!(f, "`auths` in {origin}"),
            Source::Helper { program, origin } => {
                write!(f, "{program} (named in {origin})")
            }
        }
    }
}

/// A Docker config file and its contents, read by the I/O layer.
#[derive(Debug, Clone)]
pub struct DockerConfigFile {
    pub path: PathBuf,
    pub contents: String,
}

/// The pure decision: credentials, a helper to ask, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Credentials),
    /// Run `program get` with `server` on stdin; `origin` names the config that said so.
    Helper {
        program: String,
        server: String,
        origin: String,
    },
    Anonymous,
}

/// Decides where the credentials for `host` come from, without any I/O.
/// `env` is the process environment; `docker_config` the Docker config file, if one exists.
pub fn lookup(
    host: &str,
    settings: &Settings,
    env: &BTreeMap<String, String>,
    docker_config: Option<&DockerConfigFile>,
) -> Result<Lookup> {
    if let Some(reg) = settings.registries.get(host) {
        let user = reg.username.as_deref().filter(|u| !u.is_empty());
        let pass = reg.password.as_ref().filter(|p| !p.is_empty());
        match (user, pass) {
            (Some(username), Some(password)) => {
                return Ok(Lookup::Found(Credentials {
                    username: username.to_string(),
                    password: password.clone(),
                    source: Source::Settings {
                        host: host.to_string(),
                    },
                }));
            }
            (Some(_), None) | (None, Some(_)) => {
                let (set, unset) = if user.is_some() {
                    ("username", "password")
                } else {
                    ("password", "username")
                };
                return Err(Error::Config(format!(
                    "`[registries.\"{host}\"]` sets `{set}` but not `{unset}`: set both, \
                     or neither to use CI or `docker login` credentials"
                )));
            }
            (None, None) => {}
        }
    }

    let ci = &settings.ci;
    if ci.registry.as_deref() == Some(host) {
        let user = ci.registry_user.as_deref().filter(|u| !u.is_empty());
        let pass = ci.registry_password.as_ref().filter(|p| !p.is_empty());
        if let (Some(username), Some(password)) = (user, pass) {
            return Ok(Lookup::Found(Credentials {
                username: username.to_string(),
                password: password.clone(),
                source: Source::CiRegistryUser,
            }));
        }
        if let Some(token) = ci.job_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Lookup::Found(Credentials {
                username: JOB_TOKEN_USER.to_string(),
                password: token.clone(),
                source: Source::CiJobToken,
            }));
        }
    }

    if let Some(doc) = env
        .get("DOCKER_AUTH_CONFIG")
        .filter(|d| !d.trim().is_empty())
        && let Some(found) = from_docker_config(host, doc, "DOCKER_AUTH_CONFIG")?
    {
        return Ok(found);
    }
    if let Some(file) = docker_config {
        let origin = file.path.display().to_string();
        if let Some(found) = from_docker_config(host, &file.contents, &origin)? {
            return Ok(found);
        }
    }
    Ok(Lookup::Anonymous)
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(dir) = env.get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(Path::new(dir).join("config.json"));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(home).join(".docker").join("config.json"))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

// No Debug: it holds passwords.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// What one Docker config document says about `host`; `None` when nothing.
fn from_docker_config(host: &str, json: &str, origin: &str) -> Result<Option<Lookup>> {
    let config: DockerConfig = serde_json::from_str(json).map_err(|e| {
        Error::Config(format!(
            "{origin}: not a valid Docker config.json ({e}): fix it, or point DOCKER_CONFIG elsewhere"
        ))
    })?;
    let server = if is_docker_hub(host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    };

    if let Some(helper) = best_match(host, config.cred_helpers.iter()) {
        return Ok(Some(Lookup::Helper {
            program: format!("docker-credential-{helper}"),
            server,
            origin: format!("`credHelpers` of {origin}"),
        }));
    }
    if let Some((key, entry)) = best_match_entry(host, &config.auths)
        && let Some(creds) = entry_credentials(key, entry, origin)?
    {
        return Ok(Some(Lookup::Found(creds)));
    }
    if let Some(store) = config.creds_store.filter(|s| !s.is_empty()) {
        return Ok(Some(Lookup::Helper {
            program: format!("docker-credential-{store}"),
            server,
            origin: format!("`credsStore` of {origin}"),
        }));
    }
    Ok(None)
}

/// Credentials from an `auths` entry: `auth` (base64 `user:pass`) or `username`/`password`.
fn entry_credentials(key: &str, entry: &AuthEntry, origin: &str) -> Result<Option<Credentials>> {
    let source = Source::DockerAuths {
        origin: origin.to_string(),
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        // Never echo the value: it is the password, merely encoded.
        let bad = || {
            Error::Config(format!(
                "{origin}: `auths.\"{key}\".auth` is not base64 of `user:password`: \
                 run `docker login` again"
            ))
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: Secret::new(pass),
            source,
        }));
    }
    match (entry.username.as_deref(), entry.password.as_deref()) {
        (Some(user), Some(pass)) if !user.is_empty() => Ok(Some(Credentials {
            username: user.to_string(),
            password: Secret::new(pass),
            source,
        })),
        _ => Ok(None),
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The host a `config.json` key names: `https://host/v1/` → `host`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// How well a key matches `host`: lower is better, `None` is no match.
/// The exact key wins over `https://host`, which wins over `http://host` and longer forms.
fn match_rank(key: &str, host: &str) -> Option<u8> {
    let target = key_host(key);
    let same = target.eq_ignore_ascii_case(host) || (is_docker_hub(host) && is_docker_hub(target));
    if !same {
        return None;
    }
    Some(if key == host {
        0
    } else if key == format!("https://{host}") {
        1
    } else if key == format!("http://{host}") {
        2
    } else {
        3
    })
}

fn best_match<'a>(
    host: &str,
    entries: impl Iterator<Item = (&'a String, &'a String)>,
) -> Option<&'a str> {
    entries
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| match_rank(k, host).map(|r| (r, v.as_str())))
        .min_by_key(|(r, _)| *r)
        .map(|(_, v)| v)
}

fn best_match_entry<'a>(
    host: &str,
    auths: &'a BTreeMap<String, AuthEntry>,
) -> Option<(&'a str, &'a AuthEntry)> {
    auths
        .iter()
        .filter_map(|(k, v)| match_rank(k, host).map(|r| (r, k.as_str(), v)))
        // An empty entry (`{}`) is Docker's marker for "in the credsStore": not a match.
        .filter(|(_, _, v)| v.auth.is_some() || v.username.is_some())
        .min_by_key(|(r, _, _)| *r)
        .map(|(_, k, v)| (k, v))
}

/// Parses a helper's `get` answer: `{"Username": …, "Secret": …}`.
pub fn parse_helper_output(program: &str, origin: &str, stdout: &[u8]) -> Result<Credentials> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(stdout).map_err(|e| {
        Error::Config(format!(
            "`{program} get` answered something other than {{\"Username\", \"Secret\"}} JSON: {}",
            // serde's message names the position, never the content
            e
        ))
    })?;
    Ok(Credentials {
        username: answer.username,
        password: Secret::new(answer.secret),
        source: Source::Helper {
            program: program.to_string(),
            origin: origin.to_string(),
        },
    })
}

/// Looks up the credentials for `host` in the environment `config::load` was
/// given (`settings.host.vars`, never the process's own) and the Docker config
/// file it names, running a credential helper (with that environment and its
/// PATH) when the config names one.
pub async fn resolve(host: &str, settings: &Settings) -> Result<Option<Credentials>> {
    let env = &settings.host.vars.0;
    let file = match docker_config_path(env) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(contents) => Some(DockerConfigFile { path, contents }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path, e)),
        },
        None => None,
    };
    match lookup(host, settings, env, file.as_ref())? {
        Lookup::Found(creds) => Ok(Some(creds)),
        Lookup::Anonymous => Ok(None),
        Lookup::Helper {
            program,
            server,
            origin,
        } => run_helper(&program, &server, &origin, env).await,
    }
}

/// Runs `program get` with `server` on stdin; `None` when it holds nothing for it.
async fn run_helper(
    program: &str,
    server: &str,
    origin: &str,
    env: &BTreeMap<String, String>,
) -> Result<Option<Credentials>> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("get")
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Config(format!(
                "credential helper `{program}` ({origin}) is not on PATH: install it, \
                 or remove the entry and use `docker login` or archgate's \
                 `[registries.\"{server}\"] username/password`"
            ))
        } else {
            Error::Config(format!(
                "cannot run credential helper `{program}` ({origin}): {e}"
            ))
        }
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its stdin is reported by its exit status.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::Config(format!(
                "credential helper `{program}` ({origin}) did not answer within {} s",
                HELPER_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::Config(format!("credential helper `{program}` failed: {e}")))?;
    if !output.status.success() {
        let said = format!(
            "{} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if said.contains(HELPER_NOT_FOUND) {
            return Ok(None);
        }
        let said: String = said.trim().chars().take(200).collect();
        return Err(Error::Config(format!(
            "credential helper `{program} get` ({origin}) failed for {server} ({}): {said}",
            output.status
        )));
    }
    parse_helper_output(program, origin, &output.stdout).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistrySettings;

    const HOST: &str = "10.0.0.5:5000";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn settings_with(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        f(&mut s);
        s
    }

    fn own(user: &str, pass: &str) -> Settings {
        settings_with(|s| {
            s.registries.insert(
                HOST.into(),
                RegistrySettings {
                    username: Some(user.into()),
                    password: Some(Secret::new(pass)),
                    ..Default::default()
                },
            );
        })
    }

    fn gitlab(
        registry: &str,
        user: Option<&str>,
        pass: Option<&str>,
        token: Option<&str>,
    ) -> Settings {
        settings_with(|s| {
            s.ci.registry = Some(registry.into());
            s.ci.registry_user = user.map(Into::into);
            s.ci.registry_password = pass.map(Secret::new);
            s.ci.job_token = token.map(Secret::new);
        })
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(contents: &str) -> DockerConfigFile {
        DockerConfigFile {
            path: PathBuf::from("/home/ci/.docker/config.json"),
            contents: contents.to_string(),
        }
    }

    /// (user, password, source) of a found lookup, or a short tag for the others.
    fn summary(l: &Lookup) -> String {
        match l {
            Lookup::Found(c) => format!("{}:{} from {}", c.username, c.password.expose(), c.source),
            Lookup::Helper {
                program, server, ..
            } => format!("helper {program} for {server}"),
            Lookup::Anonymous => "anonymous".into(),
        }
    }

    /// (name, settings, environment, config.json, expected summary)
    type Case = (
        &'static str,
        Settings,
        BTreeMap<String, String>,
        Option<DockerConfigFile>,
        &'static str,
    );

    #[test]
    fn lookup_order_table() {
        let auths = |key: &str, user_pass: &str| {
            format!(r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#, b64(user_pass))
        };
        let dac = auths(HOST, "dac:from-env");
        let cfg = auths(HOST, "cfg:from-file");
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("nothing anywhere", Settings::default(), env(&[]), None, "anonymous"),
            ("own settings win over everything",
                settings_with(|s| { *s = own("own", "pw1"); s.ci = gitlab(HOST, Some("ci"), Some("pw2"), None).ci; }),
                env(&[("DOCKER_AUTH_CONFIG", &dac)]), Some(file(&cfg)),
                "own:pw1 from `[registries.\"10.0.0.5:5000\"] username/password`"),
            ("CI user/password for the CI registry",
                gitlab(HOST, Some("ci"), Some("pw2"), Some("tok")), env(&[("DOCKER_AUTH_CONFIG", &dac)]), None,
                "ci:pw2 from CI_REGISTRY_USER/CI_REGISTRY_PASSWORD"),
            ("job token when no CI password",
                gitlab(HOST, Some("ci"), None, Some("tok")), env(&[]), None,
                "gitlab-ci-token:tok from CI_JOB_TOKEN"),
            ("CI credentials only for the CI registry",
                gitlab("registry.gitlab.example", Some("ci"), Some("pw2"), Some("tok")), env(&[]), None,
                "anonymous"),
            ("DOCKER_AUTH_CONFIG before config.json",
                Settings::default(), env(&[("DOCKER_AUTH_CONFIG", &dac)]), Some(file(&cfg)),
                "dac:from-env from `auths` in DOCKER_AUTH_CONFIG"),
            ("DOCKER_AUTH_CONFIG for another host falls through to config.json",
                Settings::default(), env(&[("DOCKER_AUTH_CONFIG", &auths("other:5000", "x:y"))]), Some(file(&cfg)),
                "cfg:from-file from `auths` in /home/ci/.docker/config.json"),
            ("https:// key",
                Settings::default(), env(&[]), Some(file(&auths("https://10.0.0.5:5000", "u:p"))),
                "u:p from `auths` in /home/ci/.docker/config.json"),
            ("http:// key with a path",
                Settings::default(), env(&[]), Some(file(&auths("http://10.0.0.5:5000/v2/", "u:p:with:colons"))),
                "u:p:with:colons from `auths` in /home/ci/.docker/config.json"),
            ("username/password fields",
                Settings::default(), env(&[]),
                Some(file(r#"{"auths":{"10.0.0.5:5000":{"username":"bob","password":"pw"}}}"#)),
                "bob:pw from `auths` in /home/ci/.docker/config.json"),
            ("another port is another registry",
                Settings::default(), env(&[]), Some(file(&auths("10.0.0.5:5001", "u:p"))), "anonymous"),
            ("credHelpers before auths",
                Settings::default(), env(&[]),
                Some(file(&format!(r#"{{"credHelpers":{{"{HOST}":"pass"}},"auths":{{"{HOST}":{{"auth":"{}"}}}}}}"#, b64("u:p")))),
                "helper docker-credential-pass for 10.0.0.5:5000"),
            ("auths before credsStore",
                Settings::default(), env(&[]),
                Some(file(&format!(r#"{{"credsStore":"desktop","auths":{{"{HOST}":{{"auth":"{}"}}}}}}"#, b64("u:p")))),
                "u:p from `auths` in /home/ci/.docker/config.json"),
            ("an empty auths entry defers to credsStore",
                Settings::default(), env(&[]),
                Some(file(r#"{"credsStore":"desktop","auths":{"10.0.0.5:5000":{}}}"#)),
                "helper docker-credential-desktop for 10.0.0.5:5000"),
        ];
        for (name, settings, env, file, want) in cases {
            let got = lookup(HOST, &settings, &env, file.as_ref()).unwrap();
            assert_eq!(summary(&got), want, "{name}");
        }
    }

    #[test]
    fn docker_hub_keys() {
        let doc = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            b64("hub:pw")
        );
        let got = lookup(
            "docker.io",
            &Settings::default(),
            &env(&[]),
            Some(&file(&doc)),
        )
        .unwrap();
        assert_eq!(
            summary(&got),
            "hub:pw from `auths` in /home/ci/.docker/config.json"
        );
        let doc = r#"{"credHelpers":{"docker.io":"secretservice"}}"#;
        let got = lookup(
            "docker.io",
            &Settings::default(),
            &env(&[]),
            Some(&file(doc)),
        )
        .unwrap();
        assert_eq!(
            summary(&got),
            "helper docker-credential-secretservice for https://index.docker.io/v1/"
        );
    }

    #[test]
    fn errors_name_the_place_and_never_the_secret() {
        let half = settings_with(|s| {
            s.registries.insert(
                HOST.into(),
                RegistrySettings {
                    username: Some("ci".into()),
                    ..Default::default()
                },
            );
        });
        let err = lookup(HOST, &half, &env(&[]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[registries.\"10.0.0.5:5000\"]") && err.contains("not `password`"),
            "{err}"
        );

        let secretish = "bm90LWEtcGFpcg=="; // base64("not-a-pair"): no colon
        let doc = format!(r#"{{"auths":{{"{HOST}":{{"auth":"{secretish}"}}}}}}"#);
        let err = lookup(HOST, &Settings::default(), &env(&[]), Some(&file(&doc)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/home/ci/.docker/config.json"), "{err}");
        assert!(
            !err.contains(secretish) && !err.contains("not-a-pair"),
            "{err}"
        );

        let err = lookup(
            HOST,
            &Settings::default(),
            &env(&[("DOCKER_AUTH_CONFIG", "{oops")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("DOCKER_AUTH_CONFIG: not a valid Docker config.json"),
            "{err}"
        );
    }

    #[test]
    fn config_path() {
        assert_eq!(
            docker_config_path(&env(&[("DOCKER_CONFIG", "/etc/d"), ("HOME", "/root")])),
            Some(PathBuf::from("/etc/d/config.json"))
        );
        assert_eq!(
            docker_config_path(&env(&[("HOME", "/root")])),
            Some(PathBuf::from("/root/.docker/config.json"))
        );
        assert_eq!(docker_config_path(&env(&[])), None);
    }

    #[test]
    fn helper_output() {
        let c = parse_helper_output(
            "docker-credential-x",
            "o",
            br#"{"ServerURL":"h","Username":"<token>","Secret":"refresh"}"#,
        )
        .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("<token>", "refresh")
        );
        let err = parse_helper_output("docker-credential-x", "o", b"{\"Secret\": 1}").unwrap_err();
        assert!(err.to_string().contains("docker-credential-x get"), "{err}");
    }

    /// A fake helper on PATH (written to a temporary directory), as Docker would run it.
    #[tokio::test]
    async fn runs_a_credential_helper_from_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread server\n\
             case \"$server\" in\n\
               10.0.0.5:5000) printf '{\"Username\":\"helper-user\",\"Secret\":\"helper-pw\"}' ;;\n\
               *) echo 'credentials not found in native keychain'; exit 1 ;;\n\
             esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config_dir = dir.path().join("docker");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("config.json"),
            r#"{"credsStore":"fake","credHelpers":{"other:1":"missing"}}"#,
        )
        .unwrap();
        // The environment is the one `config::load` is given, not the
        // process's: the helper is found on that PATH, the config in that
        // DOCKER_CONFIG.
        let sources = crate::config::load::Sources {
            config_file: None,
            env: env(&[
                ("PATH", &format!("{}:/usr/bin:/bin", dir.path().display())),
                ("DOCKER_CONFIG", config_dir.to_str().unwrap()),
            ]),
            cwd: dir.path().to_path_buf(),
            flags: Vec::new(),
        };
        let s = crate::config::load::load(&sources).unwrap().settings;

        let c = resolve(HOST, &s).await.unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("helper-user", "helper-pw")
        );
        assert!(
            c.source
                .to_string()
                .starts_with("docker-credential-fake (named in `credsStore`")
        );

        // The helper holds nothing for this host: anonymous, not an error.
        assert_eq!(resolve("elsewhere:5000", &s).await.unwrap(), None);

        // A helper that is not installed is an error that says so.
        let err = resolve("other:1", &s).await.unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-missing") && err.contains("not on PATH"),
            "{err}"
        );
    }
}
