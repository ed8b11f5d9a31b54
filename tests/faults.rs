//! `build`, `merge`, `mirror` and `verify` through a fault-injecting proxy in
//! front of the real registry (`common::faults`): at 10% and 30% failed
//! requests (5xx, 429, resets, cut uploads and downloads, lost answers,
//! stalls) each command finishes with exactly the digests of a fault-free run;
//! at 100% each exits 3 and the tag it would have moved still points where it
//! pointed. The proxy's counters show the faults really happened.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use archgate::image::{Digest, ImageRef};
use archgate::store::registry::RegistryStore;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::faults::{CLIENT_TIMEOUT, FaultProxy};
use crate::common::images::noise;
use crate::common::jre::{Entry, debian_arch};
use crate::common::{
    Flavor, TestOutput, TestRegistry, archgate, image_set_with_env, large_image_set, skopeo_raw,
    tempdir,
};

/// The fault rates that must not change any result.
const SURVIVABLE: [f64; 2] = [0.1, 0.3];

/// A registry, the proxy in front of it, and a working directory whose
/// archgate.toml trusts both over plain HTTP with retries for a faulty network.
struct Faulty {
    registry: TestRegistry,
    proxy: FaultProxy,
    dir: TempDir,
    config: PathBuf,
    /// Upload bytes of the fault-free run (set by `run_clean`, or by the test
    /// from the blobs it uploads): what a faulty run sent beyond it was re-sent.
    clean_upload_bytes: std::cell::Cell<Option<u64>>,
}

impl Faulty {
    fn new(seed: u64) -> Self {
        let registry = TestRegistry::start_http();
        let proxy = FaultProxy::start(&registry.host(), 0.0, seed);
        let dir = tempdir();
        let config = dir.path().join("archgate.toml");
        // 10 retries: at 30% faults one request fails 11 times in a row with
        // probability 0.3^11 ≈ 2e-6. The read timeout ends injected stalls.
        std::fs::write(
            &config,
            format!(
                "[registries.\"{}\"]\nhttp = true\n[registries.\"{}\"]\nhttp = true\n\
                 [network]\nretries = 10\ntimeout = {CLIENT_TIMEOUT}\ndeadline = 120\n",
                registry.host(),
                proxy.host()
            ),
        )
        .unwrap();
        Faulty {
            registry,
            proxy,
            dir,
            config,
            clean_upload_bytes: Default::default(),
        }
    }

    /// `REPO` on the proxy.
    fn via_proxy(&self, repo: &str) -> String {
        format!("{}/{repo}", self.proxy.host())
    }

    /// `archgate --config … ARGS` in the working directory with a fresh cache
    /// named `cache` (so every run downloads through the proxy); `env` added.
    fn run<S: AsRef<OsStr>>(&self, cache: &str, args: &[S], env: &[(&str, &str)]) -> TestOutput {
        archgate()
            .current_dir(self.dir.path())
            .env("ARCHGATE_CACHE", self.dir.path().join("caches").join(cache))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(env)
            .output()
    }

    /// `run` without faults, recording how many bytes its uploads took.
    fn run_clean<S: AsRef<OsStr>>(&self, cache: &str, args: &[S]) -> TestOutput {
        self.proxy.reset_stats();
        let out = self.run(cache, args, &[]);
        self.clean_upload_bytes
            .set(Some(self.proxy.stats().upload_bytes));
        out
    }

    /// `run` at 100% faults, with 2 retries so that it gives up quickly.
    fn run_all_failing<S: AsRef<OsStr>>(&self, cache: &str, args: &[S]) -> TestOutput {
        self.proxy.set_rate(1.0);
        self.proxy.reset_stats();
        let out = self.run(cache, args, &[("ARCHGATE_NETWORK__RETRIES", "2")]);
        self.proxy.set_rate(0.0);
        out
    }

    /// Sets the rate, runs, and checks that faults were injected.
    fn run_at<S: AsRef<OsStr>>(&self, rate: f64, cache: &str, args: &[S]) -> TestOutput {
        self.proxy.set_rate(rate);
        self.proxy.reset_stats();
        let started = std::time::Instant::now();
        let out = self.run(cache, args, &[]);
        let secs = started.elapsed().as_secs_f64();
        self.proxy.set_rate(0.0);
        let stats = self.proxy.stats();
        assert!(
            stats.failed() > 0 && stats.requests > 0,
            "no fault injected at {rate}: {stats:?}"
        );
        let resent = match self.clean_upload_bytes.get() {
            Some(clean) => format!("{} re-sent", stats.upload_bytes.saturating_sub(clean)),
            None => "re-sent unknown".into(),
        };
        // The numbers issue 20 asks for: uploads resumed (status asked), sessions
        // opened, and upload bytes sent beyond the fault-free run's.
        eprintln!(
            "{:?} at {:.0}%: {secs:.1} s, {} requests, {} failed: {:?}; uploads: {} sessions, \
             {} resumed, {} bytes ({resent})",
            args.first()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
            rate * 100.0,
            stats.requests,
            stats.failed(),
            stats.faults,
            stats.upload_sessions,
            stats.upload_status,
            stats.upload_bytes,
        );
        out
    }

    /// At each survivable rate, `command(TARGET)` publishing `app-PCT:v1` through
    /// the proxy (with a fresh cache) prints `want` as its index digest, and
    /// the registry's tag holds it.
    fn gives_at_each_rate(&self, want: &Value, command: impl Fn(String) -> Vec<String>) {
        for rate in SURVIVABLE {
            let pct = (rate * 100.0) as u32;
            let repo = format!("app-{pct}:v1");
            let out = self.run_at(rate, &format!("r{pct}"), &command(self.via_proxy(&repo)));
            assert_eq!(json(&out)["index_digest"], *want, "at {pct}%");
            assert_eq!(
                self.tag_digest(&repo).to_string(),
                *want,
                "the tag at {pct}%"
            );
        }
    }

    /// The digest `REPO:TAG` points at, read from the registry directly.
    fn tag_digest(&self, repo_tag: &str) -> Digest {
        Digest::of(&skopeo_raw(&self.registry, &self.registry.repo(repo_tag)))
    }
}

fn json(out: &TestOutput) -> Value {
    out.assert_code(0).json()
}

fn exits_3(out: &TestOutput, what: &str) {
    assert_eq!(out.code(), Some(3), "{what}: {out}");
}

/// A build context: per architecture 1 MiB of seeded noise (incompressible,
/// so uploads are long enough to be cut midway) and a small file.
fn context(dir: &Path, salt: &str) {
    for (n, arch) in ["amd64", "arm64", "mips64le"].iter().enumerate() {
        let root = dir.join(format!("jdk-{arch}"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("lib.bin"), noise(n as u64 + 1, 1 << 20)).unwrap();
        std::fs::write(root.join("bin/java"), format!("java for {arch} {salt}\n")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn build_through_faults_gives_the_fault_free_digest() {
    let f = Faulty::new(11);
    f.registry
        .push_set(
            "base:1",
            &image_set_with_env(Flavor::Oci, "base", &["PATH=/usr/bin:/bin"]),
        )
        .await;
    context(f.dir.path(), "v1");
    std::fs::write(
        f.dir.path().join("Dockerfile"),
        format!(
            "FROM --platform=$TARGETPLATFORM {}\nARG TARGETARCH\nADD jdk-${{TARGETARCH}} /opt/jdk\nENV JAVA_HOME=/opt/jdk\n",
            f.via_proxy("base:1")
        ),
    )
    .unwrap();
    let build = |image: String| {
        vec![
            "build".to_string(),
            "--image".into(),
            image,
            "--json".into(),
            ".".into(),
        ]
    };

    let clean = build(f.via_proxy("app:v1"));
    let want = json(&f.run_clean("clean", &clean))["index_digest"].clone();
    assert!(want.as_str().is_some_and(|d| d.starts_with("sha256:")));

    f.gives_at_each_rate(&want, build);

    // All failing: a changed build would move app-10:v1; it must not.
    context(f.dir.path(), "v2");
    let out = f.run_all_failing("all", &build(f.via_proxy("app-10:v1")));
    exits_3(&out, "build at 100%");
    assert_eq!(f.tag_digest("app-10:v1").to_string(), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_through_faults_gives_the_fault_free_index() {
    let f = Faulty::new(22);
    let set = large_image_set(Flavor::Oci, 22, 1 << 20);
    // The per-platform images as three single-platform tags.
    let store = RegistryStore::connect(
        &ImageRef::parse(&f.registry.repo("src:x")).unwrap(),
        &f.registry.settings(),
        true,
    )
    .await
    .unwrap();
    let mut sources = Vec::new();
    for image in &set.images {
        crate::common::images::push_image(&store, image, image.architecture)
            .await
            .unwrap();
        sources.push(f.via_proxy(&format!("src:{}", image.architecture)));
    }
    let merge = |target: String| {
        let mut v = vec![
            "merge".to_string(),
            "--json".into(),
            "--target".into(),
            target,
        ];
        v.extend(sources.iter().cloned());
        v
    };

    let want = json(&f.run_clean("clean", &merge(f.via_proxy("app:v1"))))["index_digest"].clone();
    f.gives_at_each_rate(&want, merge);

    // All failing: a two-platform merge would move app-10:v1; it must not.
    let mut two = merge(f.via_proxy("app-10:v1"));
    two.pop();
    let out = f.run_all_failing("x", &two);
    exits_3(&out, "merge at 100%");
    assert_eq!(f.tag_digest("app-10:v1").to_string(), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_through_faults_keeps_every_digest() {
    let f = Faulty::new(33);
    let set = large_image_set(Flavor::Oci, 33, 1 << 20);
    f.registry.push_set("jre:17", &set).await;
    let want = set.index.digest.to_string();
    // archive → registry uploads every blob of the set once.
    f.clean_upload_bytes.set(Some(
        set.blobs()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .values()
            .map(|b| b.len() as u64)
            .sum(),
    ));
    let mirror = |from: String, to: String| vec!["mirror".to_string(), "--json".into(), from, to];
    let archive = |pct: u32| f.dir.path().join(format!("jre-{pct}.tar"));

    for rate in SURVIVABLE {
        let pct = (rate * 100.0) as u32;
        // registry → archive: every blob downloaded through the proxy.
        let to_archive = mirror(
            f.via_proxy("jre:17"),
            format!("oci-archive:{}:17", archive(pct).display()),
        );
        let out = f.run_at(rate, "x", &to_archive);
        assert_eq!(json(&out)[0]["digest"], want, "to the archive at {pct}%");
        // archive → registry: every blob uploaded through the proxy.
        let repo = format!("copy-{pct}:17");
        let to_registry = mirror(
            format!("oci-archive:{}:17", archive(pct).display()),
            f.via_proxy(&repo),
        );
        let out = f.run_at(rate, "x", &to_registry);
        assert_eq!(json(&out)[0]["digest"], want, "to the registry at {pct}%");
        assert_eq!(f.tag_digest(&repo).to_string(), want, "the tag at {pct}%");
        for image in &set.images {
            let d = image.manifest.digest.to_string();
            let copied = f.tag_digest(&format!("copy-{pct}@{d}"));
            assert_eq!(copied.to_string(), d, "platform manifest at {pct}%");
        }
    }

    // All failing: moving copy-10:17 to another image must not happen.
    let other = large_image_set(Flavor::Oci, 34, 1 << 16);
    f.registry.push_set("other:1", &other).await;
    let out = f.run_all_failing(
        "x",
        &mirror(f.via_proxy("other:1"), f.via_proxy("copy-10:17")),
    );
    exits_3(&out, "mirror at 100%");
    assert_eq!(f.tag_digest("copy-10:17").to_string(), want);
}

#[test]
fn verify_through_faults_gives_the_fault_free_verdict() {
    let f = Faulty::new(44);
    let entries: Vec<Entry> = ["linux/amd64", "linux/arm64", "linux/mips64le"]
        .iter()
        .map(|p| Entry::jre(p, debian_arch(p)))
        .collect();
    let layout = f.dir.path().join("layout");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::common::jre::write_index(&layout, &entries, "v1"));
    let image = f.registry.repo("jre/app:v1");
    crate::common::registry::skopeo_copy_to(&format!("oci:{}:v1", layout.display()), &image);
    let through = f.via_proxy("jre/app:v1");
    let verify = ["verify", "--json", through.as_str()];

    let clean = json(&f.run("clean", &verify, &[]));
    assert_eq!(clean["outcome"], "passed", "{clean:#}");
    let summary = |v: &Value| -> Vec<(String, String, String)> {
        v["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["platform"].as_str().unwrap().to_string(),
                    p["outcome"].as_str().unwrap().to_string(),
                    p["java_version"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    for rate in SURVIVABLE {
        let pct = (rate * 100.0) as u32;
        // A fresh cache: every layer is downloaded through the proxy.
        let v = json(&f.run_at(rate, &format!("r{pct}"), &verify));
        assert_eq!(v["index_digest"], clean["index_digest"], "at {pct}%");
        assert_eq!(v["outcome"], "passed", "at {pct}%: {v:#}");
        assert_eq!(summary(&v), summary(&clean), "at {pct}%");
    }

    let out = f.run_all_failing("all", &verify);
    exits_3(&out, "verify at 100%");
}

/// A download cut halfway resumes from the byte it got to (a `Range` request)
/// and an upload cut midway resumes from what the registry says it holds
/// (`GET` on the session, `Range: 0-N`): the bytes arrive whole and verified.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_download_resumes_and_a_cut_upload_resumes_where_the_registry_stands() {
    use archgate::image::Descriptor;
    use archgate::store::{Store, copy_blob};
    use tokio::io::AsyncReadExt;

    let registry = TestRegistry::start_http();
    let set = large_image_set(Flavor::Oci, 55, 4 << 20);
    registry.push_set("src:1", &set).await;
    let blobs = set.blobs();
    let (digest, bytes) = blobs.iter().max_by_key(|(_, b)| b.len()).expect("a layer");
    let desc = Descriptor {
        media_type: archgate::image::media::OCI_LAYER_GZIP.to_string(),
        digest: digest.clone(),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        urls: Vec::new(),
    };
    let open = |proxy: &FaultProxy, repo: &str| {
        let mut settings = registry.settings();
        settings
            .registries
            .insert(proxy.host(), registry.registry_settings());
        let reference = ImageRef::parse(&format!("{}/{repo}:1", proxy.host())).unwrap();
        async move {
            RegistryStore::connect(&reference, &settings, true)
                .await
                .unwrap()
        }
    };

    let cutting =
        FaultProxy::once_per_blob(&registry.host(), crate::common::faults::Fault::CutDownload);
    let store = open(&cutting, "src").await;
    let mut got = Vec::new();
    store
        .get_blob(digest, Some(bytes.len() as u64))
        .await
        .unwrap()
        .read_to_end(&mut got)
        .await
        .expect("the download resumes");
    assert!(got == bytes.as_ref(), "the bytes arrive whole");
    let stats = cutting.stats();
    // Cut: the layer (and the empty-blob access check at connect).
    assert!(stats.failed() >= 1, "{stats:?}");
    assert_eq!(stats.ranged, 1, "one resumed request: {stats:?}");

    // An upload of three chunks (5 + 5 + 2 MiB), every request of it cut once
    // after 64 KiB: the registry holds the chunks completed before each cut,
    // and the upload carries on from there instead of starting again.
    let resuming =
        FaultProxy::once_per_blob(&registry.host(), crate::common::faults::Fault::CutUpload);
    let dst = open(&resuming, "dst").await;
    let big = bytes::Bytes::from(crate::common::images::noise(56, 12 << 20));
    let big_desc = Descriptor {
        digest: Digest::of(&big),
        size: big.len() as u64,
        ..desc.clone()
    };
    let dir = tempdir();
    let layout = archgate::store::layout::LayoutStore::open_dir(dir.path(), true).unwrap();
    layout
        .put_blob(
            &big_desc.digest,
            big_desc.size,
            Box::pin(std::io::Cursor::new(big.clone())),
        )
        .await
        .unwrap();
    resuming.reset_stats();
    if let Err(e) = copy_blob(&layout, &dst, &big_desc).await {
        panic!("the upload resumes: {e}; {:?}", resuming.stats());
    }
    let mut got = Vec::new();
    dst.get_blob(&big_desc.digest, Some(big_desc.size))
        .await
        .unwrap()
        .read_to_end(&mut got)
        .await
        .unwrap();
    assert!(got == big.as_ref(), "the registry holds the blob whole");
    let stats = resuming.stats();
    // Cut: the first chunk, the second, and the final PUT.
    assert_eq!(stats.faults.values().sum::<u64>(), 3, "{stats:?}");
    // Asked where it stood after each cut. At most the first chunk's cut opens
    // a new session: a session holding nothing answers `Range: 0-0`, which
    // distribution also says for one byte, so it is not trusted (whether the
    // registry kept part of a cut chunk depends on timing).
    assert_eq!(stats.upload_status, 3, "{stats:?}");
    assert!((1..=2).contains(&stats.upload_sessions), "{stats:?}");
    // Each cut cost at most the 64 KiB the proxy read, plus the one chunk sent
    // again in the new session: not the 12 MiB per cut a restart costs.
    let resent = stats.upload_bytes - big_desc.size;
    assert!(
        resent <= 3 * (64 << 10) + (5 << 20),
        "{resent} bytes sent again: {stats:?}"
    );
}
