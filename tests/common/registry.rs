//! A real registry per test: Debian's `docker-registry serve CONFIG` on a free
//! 127.0.0.1 port with temporary storage, plain HTTP or TLS (self-signed
//! certificate) with htpasswd basic auth. Killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use archgate::config::{RegistrySettings, Secret, Settings};
use tempfile::TempDir;

/// Programs the registry tests need, with the Debian package of each
/// (`scripts/setup.sh` installs them; the tests never run apt-get).
const PROGRAMS: &[(&str, &str)] = &[
    ("docker-registry", "docker-registry"),
    ("htpasswd", "apache2-utils"),
    ("openssl", "openssl"),
    ("skopeo", "skopeo"),
];
/// How long a registry may take to answer `GET /v2/` (it takes well under a second).
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `docker-registry` on 127.0.0.1.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: TempDir,
    tls: bool,
    user: Option<(String, String)>,
}

impl TestRegistry {
    /// A plain-HTTP registry without authentication.
    pub fn start_http() -> Self {
        Self::start(None)
    }

    /// An HTTPS registry (self-signed certificate for `localhost` and
    /// 127.0.0.1) that requires basic auth as `user`/`pass`.
    pub fn start_tls_basic(user: &str, pass: &str) -> Self {
        Self::start(Some((user, pass)))
    }

    fn start(auth: Option<(&str, &str)>) -> Self {
        ensure_tools();
        let mut last_log = String::new();
        // A free port can be taken between our probe and the registry's bind: retry.
        for _ in 0..3 {
            let dir = crate::common::tempdir();
            let port = free_port();
            let config = write_config(dir.path(), port, auth);
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut registry = TestRegistry {
                child,
                port,
                dir,
                tls: auth.is_some(),
                user: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            };
            if registry.wait_ready() {
                return registry;
            }
            last_log = registry.log();
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    /// Waits until `GET /v2/` answers 200 (or 401 with auth), or the process dies.
    fn wait_ready(&mut self) -> bool {
        let url = format!(
            "{}://{}/v2/",
            if self.tls { "https" } else { "http" },
            self.host()
        );
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if matches!(http_status(&url), Some(200 | 401)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/NAME` (append `:TAG` or `@DIGEST`).
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// The self-signed certificate to trust (TLS registries only).
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "a plain-HTTP registry has no certificate");
        self.dir.path().join("cert.pem")
    }

    /// The user and password of a registry with basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.user.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Settings with this registry's `[registries."127.0.0.1:PORT"]` entry:
    /// `http = true`, or `ca_file` plus username and password.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings
            .registries
            .insert(self.host(), self.registry_settings());
        settings
    }

    /// Pushes `set` (blobs, manifests, index) as `REPO:TAG` through archgate's store.
    pub async fn push_set(&self, repo_tag: &str, set: &crate::common::images::ImageSet) {
        let reference = self.repo(repo_tag);
        let tag = repo_tag.rsplit_once(':').expect("REPO:TAG").1;
        let store = archgate::store::registry::RegistryStore::connect(
            &archgate::image::ImageRef::parse(&reference).expect("reference"),
            &self.settings(),
            true,
        )
        .await
        .expect("connect");
        crate::common::push_image_set(&store, set, Some(tag))
            .await
            .expect("push");
    }

    /// This registry's `[registries."HOST"]` entry alone.
    pub fn registry_settings(&self) -> RegistrySettings {
        RegistrySettings {
            http: !self.tls,
            ca_file: self.tls.then(|| self.ca_file()),
            username: self.user.as_ref().map(|(u, _)| u.clone()),
            password: self.user.as_ref().map(|(_, p)| Secret::new(p.clone())),
            ..Default::default()
        }
    }

    /// The registry's storage directory (`docker/registry/v2/...` below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The blobs the registry holds (committed uploads only), as `sha256:HEX`.
    pub fn blob_digests(&self) -> Vec<String> {
        let root = self.storage().join("docker/registry/v2/blobs/sha256");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if blob.path().join("data").is_file() {
                    out.push(format!("sha256:{}", blob.file_name().to_string_lossy()));
                }
            }
        }
        out.sort();
        out
    }

    /// What the registry logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

/// One line of the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Request {
    /// A request that changes the registry (upload, mount, manifest or tag PUT, delete).
    pub fn writes(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE")
    }
}

impl TestRegistry {
    /// Every request the registry served so far, in order, from its access log
    /// (`"METHOD PATH HTTP/1.1" STATUS` in Apache's combined format).
    pub fn requests(&self) -> Vec<Request> {
        self.log().lines().filter_map(parse_access_line).collect()
    }

    /// The repositories the registry holds (`GET /v2/_catalog`, read from disk
    /// so the catalog request does not show in the access log).
    pub fn repositories(&self) -> Vec<String> {
        let root = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories");
        let mut found = Vec::new();
        collect_repositories(&root, &root, &mut found);
        found.sort();
        found
    }
}

/// A repository is a directory holding `_manifests`.
fn collect_repositories(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == "_manifests" {
            let rel = dir.strip_prefix(root).unwrap_or(dir);
            found.push(rel.to_string_lossy().into_owned());
        } else if !entry.file_name().to_string_lossy().starts_with('_') {
            collect_repositories(root, &path, found);
        }
    }
}

fn parse_access_line(line: &str) -> Option<Request> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once('"')?;
    let mut words = request.split(' ');
    let method = words.next()?.to_string();
    let path = words.next()?.to_string();
    let status = rest.trim_start().split(' ').next()?.parse().ok()?;
    Some(Request {
        method,
        path,
        status,
    })
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound on 127.0.0.1, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `skopeo copy --all FROM docker://TO` into a plain-HTTP test registry.
pub fn skopeo_copy_to(from: &str, to: &str) {
    let copy = Command::new("skopeo")
        .args(["copy", "--all", "--quiet", "--dest-tls-verify=false"])
        .arg(from)
        .arg(format!("docker://{to}"))
        .output()
        .expect("run skopeo");
    assert!(
        copy.status.success(),
        "skopeo copy {from} {to}: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
}

/// `skopeo inspect --raw` of `docker://REFERENCE`: the manifest bytes as the registry stores them.
pub fn skopeo_raw(registry: &TestRegistry, reference: &str) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((user, pass)) = registry.credentials() {
        cmd.arg("--creds").arg(format!("{user}:{pass}"));
    }
    let out = cmd
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write_config(dir: &Path, port: u16, auth: Option<(&str, &str)>) -> PathBuf {
    let storage = dir.join("storage");
    std::fs::create_dir(&storage).expect("storage dir");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if let Some((user, pass)) = auth {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"]));
        let htpasswd = run(Command::new("htpasswd").args(["-Bbn", user, pass]));
        let htpasswd_file = dir.join("htpasswd");
        std::fs::write(&htpasswd_file, htpasswd).expect("write htpasswd");
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n\
             auth:\n  htpasswd:\n    realm: x\n    path: {}\n",
            cert.display(),
            key.display(),
            htpasswd_file.display()
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).expect("write registry config");
    path
}

/// Runs a set-up command, returning its stdout; panics with its stderr on failure.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run set-up command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails the test, naming what is missing and how to install it, when one of
/// [`PROGRAMS`] is not on PATH (checked once per test binary).
fn ensure_tools() {
    static MISSING: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
    let missing = MISSING.get_or_init(|| {
        PROGRAMS
            .iter()
            .copied()
            .filter(|(program, _)| !on_path(program))
            .collect()
    });
    assert!(
        missing.is_empty(),
        "registry tests need {:?} on PATH: run scripts/setup.sh (or apt-get install -y {})",
        missing.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        missing
            .iter()
            .map(|(_, pkg)| *pkg)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The status of `GET url` (certificates not checked), `None` when nothing answers.
/// A private runtime on its own thread: callers may already be inside one.
fn http_status(url: &str) -> Option<u16> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(2))
                .build()
                .ok()?;
            let res = client.get(&url).send().await.ok()?;
            Some(res.status().as_u16())
        })
    })
    .join()
    .ok()
    .flatten()
}
