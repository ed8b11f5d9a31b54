//! Integration tests: `archgate merge` end to end, as a user runs it, against a
//! real `docker-registry` — the index read back through `archgate inspect`,
//! skopeo and the registry's own access log (what was written, and how often).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use archgate::config::Settings;
use archgate::image::{Digest, ImageRef, RawManifest, media};
use archgate::store::Store;
use archgate::store::layout::LayoutStore;
use archgate::store::registry::RegistryStore;
use bytes::Bytes;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::images::{ImageSet, push_blobs, push_image};
use crate::common::{Flavor, TestOutput, TestRegistry, image_set, skopeo_raw, text};

/// A registry and a working directory whose `archgate.toml` lists it as plain HTTP.
struct Env {
    registry: TestRegistry,
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        let registry = TestRegistry::start_http();
        let dir = crate::common::tempdir();
        std::fs::write(
            dir.path().join("archgate.toml"),
            format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
        )
        .unwrap();
        Env { registry, dir }
    }

    fn settings(&self) -> Settings {
        self.registry.settings()
    }

    /// `archgate ARGS` in the working directory.
    fn archgate(&self, args: &[&str]) -> TestOutput {
        crate::common::archgate()
            .current_dir(self.dir.path())
            .args(args)
            .output()
    }

    /// `archgate merge ARGS`, which must succeed.
    fn merge_ok(&self, args: &[&str]) -> String {
        let out = self.archgate(&[&["merge"], args].concat());
        out.assert_code(0);
        out.stdout().to_string()
    }

    /// `archgate ARGS`, which must fail with exit `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.archgate(args);
        out.assert_code(code);
        out.stderr().to_string()
    }

    /// `archgate merge --json ARGS`, which must succeed.
    fn merge_json(&self, args: &[&str]) -> Value {
        let stdout = self.merge_ok(&[&["--json"], args].concat());
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    async fn store(&self, name: &str) -> RegistryStore {
        let image = ImageRef::parse(&format!("{}:x", self.registry.repo(name))).unwrap();
        RegistryStore::connect(&image, &self.settings(), true)
            .await
            .expect("connect")
    }

    /// Pushes each image of `set` to `name:ARCH`; returns the three locations.
    async fn push_singles(&self, set: &ImageSet, name: &str) -> Vec<String> {
        let store = self.store(name).await;
        let mut locations = Vec::new();
        for image in &set.images {
            push_image(&store, image, image.architecture).await.unwrap();
            locations.push(format!(
                "{}:{}",
                self.registry.repo(name),
                image.architecture
            ));
        }
        locations
    }

    /// The stored bytes of `name:TAG` (or `name@DIGEST`), parsed, through skopeo.
    fn raw(&self, reference: &str) -> (Digest, Value) {
        let bytes = skopeo_raw(&self.registry, &self.registry.repo(reference));
        (Digest::of(&bytes), serde_json::from_slice(&bytes).unwrap())
    }

    /// The requests that changed the registry since request number `since`.
    fn writes_since(&self, since: usize) -> Vec<String> {
        self.registry.requests()[since..]
            .iter()
            .filter(|r| r.writes())
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect()
    }
}

/// `os/architecture` of every index entry, in order.
pub(crate) fn platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

#[tokio::test]
async fn three_single_arch_images_merge_into_an_oci_index_and_a_docker_list() {
    let env = Env::new();
    for (flavor, index_type, manifest_type, shown) in [
        (
            Flavor::Oci,
            media::OCI_INDEX,
            media::OCI_MANIFEST,
            "OCI index",
        ),
        (
            Flavor::Docker,
            media::DOCKER_LIST,
            media::DOCKER_MANIFEST,
            "Docker manifest list",
        ),
    ] {
        let set = image_set(flavor, "three");
        let sources = env
            .push_singles(&set, &format!("src/{}", flavor.name()))
            .await;
        let target = env.registry.repo(&format!("app:{}", flavor.name()));
        let mut args = vec!["--target", &target, "--format", flavor.name()];
        args.extend(sources.iter().map(String::as_str));
        let json = env.merge_json(&args);

        let (digest, index) = env.raw(&format!("app:{}", flavor.name()));
        assert_eq!(json["index_digest"], digest.to_string(), "{json}");
        assert_eq!(json["media_type"], index_type);
        assert_eq!(
            json["image"],
            format!("{}@{digest}", env.registry.repo("app"))
        );
        assert_eq!(index["mediaType"], index_type);
        assert_eq!(platforms(&index), THREE);
        // Without --convert every manifest keeps its own bytes, type and digest.
        for (entry, image) in index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&set.images)
        {
            assert_eq!(entry["digest"], image.manifest.digest.to_string());
            assert_eq!(entry["mediaType"], manifest_type);
        }
        assert_eq!(json["platforms"].as_array().unwrap().len(), 3);

        // The other list type over the same manifests, unconverted: allowed, with
        // a warning when OCI manifests go into a Docker list (old clients cannot pull them).
        let other = if flavor == Flavor::Oci {
            "docker"
        } else {
            "oci"
        };
        let mixed = env
            .registry
            .repo(&format!("app:{}-in-{other}", flavor.name()));
        let mut args = vec!["merge", "--target", &mixed, "--format", other];
        args.extend(sources.iter().map(String::as_str));
        let out = env.archgate(&args);
        out.assert_code(0);
        let warned = out.stderr().contains("add --convert");
        assert_eq!(warned, flavor == Flavor::Oci, "{out}");

        let out = env.archgate(&["inspect", &target]);
        out.assert_code(0);
        let stdout = out.stdout();
        assert!(
            stdout.contains(shown) && stdout.contains(digest.as_str()),
            "{stdout}"
        );
        for p in THREE {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.trim_start().starts_with(p) && !l.contains("MISMATCH")),
                "{p}: {stdout}"
            );
        }
    }
}

#[tokio::test]
async fn a_rerun_writes_nothing_and_gives_the_same_digest() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "rerun");
    let sources = env.push_singles(&set, "src/app").await;
    let target = env.registry.repo("app:v1");
    let mut args = vec!["--target", target.as_str(), "--tag", "latest"];
    args.extend(sources.iter().map(String::as_str));

    let before = env.registry.requests().len();
    let first = env.merge_ok(&args);
    let writes = env.writes_since(before);
    // Three manifests, the index by digest, two tags; the blobs are mounted.
    let puts = |w: &[String], part: &str| {
        w.iter()
            .filter(|r| r.starts_with("PUT") && r.contains(part))
            .count()
    };
    assert_eq!(puts(&writes, "/manifests/sha256:"), 4, "{writes:#?}");
    assert_eq!(puts(&writes, "/manifests/v1 "), 1, "{writes:#?}");
    assert_eq!(puts(&writes, "/manifests/latest "), 1, "{writes:#?}");

    let middle = env.registry.requests().len();
    let second = env.merge_ok(&args);
    assert_eq!(env.writes_since(middle), Vec::<String>::new());
    assert_eq!(
        first.lines().next(),
        second.lines().next(),
        "{first}\n{second}"
    );
    assert!(
        second.contains("nothing to write: the target already held all of it"),
        "{second}"
    );
    // One connection (and one authentication) per repository: three sources in
    // one repository and the target make two `GET /v2/`, not four.
    let pings = env.registry.requests()[middle..]
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/")
        .count();
    assert_eq!(pings, 2, "{:#?}", &env.registry.requests()[middle..]);
}

/// Pushes `set` as a BuildKit-style index (each image followed by its
/// attestation) to `name:v1`; returns its location.
async fn push_with_attestations(env: &Env, set: &ImageSet, name: &str) -> String {
    let store = env.store(name).await;
    crate::common::images::push_attested(&store, set, media::OCI_INDEX, "v1")
        .await
        .unwrap();
    format!("{}:v1", env.registry.repo(name))
}

fn index_of(entries: Vec<Value>) -> RawManifest {
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap();
    RawManifest::from_bytes(bytes.into(), Some(media::OCI_INDEX), "test index").unwrap()
}

#[tokio::test]
async fn attestations_are_dropped_unless_kept_and_never_left_dangling() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "attest");
    let source = push_with_attestations(&env, &set, "src/buildx").await;
    let (_, source_index) = env.raw("src/buildx:v1");
    assert_eq!(source_index["manifests"].as_array().unwrap().len(), 6);

    // By default: the three platforms only.
    let target = env.registry.repo("app:plain");
    let json = env.merge_json(&["--target", &target, &source]);
    assert_eq!(json["attestations"], 0);
    let (_, index) = env.raw("app:plain");
    assert_eq!(platforms(&index), THREE);
    assert!(
        !serde_json::to_string(&index)
            .unwrap()
            .contains("vnd.docker.reference")
    );

    // Kept: each still names a manifest of the new index, and is in the repository.
    let target = env.registry.repo("app:attested");
    let json = env.merge_json(&["--target", &target, "--keep-attestations", &source]);
    assert_eq!(json["attestations"], 3);
    let (_, index) = env.raw("app:attested");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let images: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["platform"]["os"] != "unknown")
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(images.len(), 3);
    for att in entries.iter().filter(|e| e["platform"]["os"] == "unknown") {
        let annotations = &att["annotations"];
        assert_eq!(
            annotations["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        let described = annotations["vnd.docker.reference.digest"].as_str().unwrap();
        assert!(images.contains(described), "{described} not in {images:?}");
        let digest = att["digest"].as_str().unwrap();
        let (got, _) = env.raw(&format!("app@{digest}"));
        assert_eq!(got.as_str(), digest);
    }

    // --convert replaces every manifest: their attestations describe digests
    // that are not in the index any more, so they go, and the output says so.
    let target = env.registry.repo("app:converted");
    let out = env.merge_ok(&[
        "--target",
        &target,
        "--keep-attestations",
        "--convert",
        "--format",
        "docker",
        &source,
    ]);
    assert!(
        out.contains("attestations dropped: 3 (they describe manifests --convert replaced)"),
        "{out}"
    );
    let (_, index) = env.raw("app:converted");
    assert_eq!(platforms(&index), THREE);
    assert!(
        !serde_json::to_string(&index)
            .unwrap()
            .contains("vnd.docker.reference")
    );
}

#[tokio::test]
async fn mislabelled_or_duplicate_or_unconvertible_sources_push_nothing() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "labels");
    let sources = env.push_singles(&set, "src/app").await;
    let other = image_set(Flavor::Oci, "another build");
    let other_amd64 = env.push_singles(&other, "src/other").await.remove(0);
    // An index whose amd64 entry points at the arm64 image.
    let store = env.store("src/app").await;
    let mut entries = Vec::new();
    for (claimed, image) in [("amd64", &set.images[1]), ("mips64le", &set.images[2])] {
        entries.push(json!({
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest.to_string(),
            "size": image.manifest.bytes.len(),
            "platform": {"os": "linux", "architecture": claimed},
        }));
    }
    let lying = index_of(entries);
    store.put_manifest(&lying, Some("lying")).await.unwrap();
    // An image whose layer cannot become a Docker layer (zstd).
    let zstd = push_zstd_image(&env, "src/zstd").await;
    let before = env.registry.requests().len();
    let target = env.registry.repo("app:v1");

    // 1. The [merge.sources] table says amd64, the config says arm64: exit 1.
    let config = env.dir.path().join("table.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{}\"]\nhttp = true\n[merge]\ntarget = \"{target}\"\n[merge.sources]\n\"linux/amd64\" = \"{}\"\n\"linux/mips64le\" = \"{}\"\n",
            env.registry.host(),
            sources[1],
            sources[2]
        ),
    )
    .unwrap();
    let err = env.fails(&["--config", config.to_str().unwrap(), "merge"], 1);
    assert!(
        err.contains(&sources[1])
            && err.contains("configured as linux/amd64 but its image config says linux/arm64"),
        "{err}"
    );

    // 2. An index entry that says amd64 over an arm64 config: exit 1.
    let lying_location = format!("{}:lying", env.registry.repo("src/app"));
    let err = env.fails(&["merge", "--target", &target, &lying_location], 1);
    assert!(
        err.contains(&lying_location)
            && err
                .contains("the index entry says linux/amd64 but the image config says linux/arm64"),
        "{err}"
    );

    // 3. Two sources for linux/amd64: both named, exit 2.
    let err = env.fails(
        &["merge", "--target", &target, &sources[0], &other_amd64],
        2,
    );
    assert!(
        err.contains("two sources for linux/amd64")
            && err.contains(&sources[0])
            && err.contains(&other_amd64),
        "{err}"
    );

    // 4. --convert fails on the second source: nothing of the first is written
    //    either (regression: blobs of converted sources went up first).
    let err = env.fails(
        &[
            "merge",
            "--target",
            &target,
            "--format",
            "docker",
            "--convert",
            &sources[1],
            &zstd,
        ],
        2,
    );
    assert!(
        err.contains(&zstd) && err.contains("tar+zstd") && err.contains("without --convert"),
        "{err}"
    );

    assert_eq!(env.writes_since(before), Vec::<String>::new());
    let repos = env.registry.repositories();
    assert!(!repos.iter().any(|r| r == "app"), "{repos:?}");
}

/// Pushes a linux/riscv64 image whose layer is typed zstd; returns its location.
async fn push_zstd_image(env: &Env, name: &str) -> String {
    let layer = Bytes::from_static(b"zstd-typed layer bytes");
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "riscv64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
        }))
        .unwrap(),
    );
    let desc = |mt: &str, b: &Bytes| json!({"mediaType": mt, "digest": Digest::of(b).to_string(), "size": b.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+zstd", &layer)],
    }))
    .unwrap();
    let manifest =
        RawManifest::from_bytes(manifest.into(), Some(media::OCI_MANIFEST), "zstd").unwrap();
    let store = env.store(name).await;
    push_blobs(&store, [config, layer]).await.unwrap();
    store.put_manifest(&manifest, Some("v1")).await.unwrap();
    format!("{}:v1", env.registry.repo(name))
}

#[tokio::test]
async fn convert_rewrites_manifests_including_uncompressed_layers_and_says_so() {
    let env = Env::new();
    // Docker v2s2 with uncompressed layers → OCI, and OCI (uncompressed) → Docker.
    for (from, to, manifest_type, config_type, layer_type) in [
        (
            Flavor::Docker,
            Flavor::Oci,
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            media::OCI_LAYER_TAR,
        ),
        (
            Flavor::Oci,
            Flavor::Docker,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            // Into the Docker format an uncompressed layer is gzipped.
            media::DOCKER_LAYER_GZIP,
        ),
    ] {
        let mut layers = Vec::new();
        let set = image_set(from, "convert");
        let sources = env
            .push_singles(&set, &format!("src/{}", from.name()))
            .await;
        let tag = format!("to-{}", to.name());
        let target = env.registry.repo(&format!("app:{tag}"));
        let mut args = vec![
            "--target",
            target.as_str(),
            "--format",
            to.name(),
            "--convert",
        ];
        args.extend(sources.iter().map(String::as_str));
        let out = env.merge_ok(&args);
        assert_eq!(
            out.matches("the per-platform digest changed").count(),
            3,
            "{out}"
        );
        let json = env.merge_json(&args);
        let (_, index) = env.raw(&format!("app:{tag}"));
        assert_eq!(platforms(&index), THREE);
        for ((entry, merged), image) in index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .zip(json["platforms"].as_array().unwrap())
            .zip(&set.images)
        {
            assert_eq!(merged["converted_from"], image.manifest.digest.to_string());
            assert_eq!(merged["digest"], entry["digest"]);
            assert_ne!(entry["digest"], image.manifest.digest.to_string());
            assert_eq!(entry["mediaType"], manifest_type);
            let (digest, manifest) = env.raw(&format!("app@{}", entry["digest"].as_str().unwrap()));
            assert_eq!(entry["digest"], digest.to_string());
            assert_eq!(manifest["mediaType"], manifest_type);
            assert_eq!(manifest["config"]["mediaType"], config_type);
            assert_eq!(manifest["layers"][0]["mediaType"], layer_type);
            let layer = manifest["layers"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string();
            layers.push((layer, image.layer.clone()));
        }
        // skopeo copies the whole result: every manifest and blob is there and valid.
        let copy = crate::common::tempdir();
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{target}"))
            .arg(format!("oci:{}:copy", copy.path().join("layout").display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        // The layers hold the source's bytes: as they were into OCI, gzipped
        // into Docker (the config's diff_ids still name the uncompressed tar).
        for (digest, source) in layers.drain(..) {
            let blob = Command::new("curl")
                .args(["-fsS"])
                .arg(format!(
                    "http://{}/v2/app/blobs/{digest}",
                    env.registry.host()
                ))
                .output()
                .expect("curl (scripts/setup.sh installs it)")
                .stdout;
            let tar = if to == Flavor::Docker {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut out)
                    .unwrap();
                out
            } else {
                assert_eq!(
                    digest,
                    Digest::of(&source).to_string(),
                    "unchanged into OCI"
                );
                blob
            };
            assert_eq!(tar, source.to_vec());
        }
    }
}

/// `skopeo inspect --raw` of a non-registry location (`oci:DIR:TAG`, `oci-archive:FILE:TAG`).
fn skopeo_local(location: &str) -> (Digest, Value) {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", location])
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "{location}: {}", text(&out));
    (
        Digest::of(&out.stdout),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

fn layout_location(kind: &str, path: &Path, tag: &str) -> String {
    format!("{kind}:{}:{tag}", path.display())
}

#[tokio::test]
async fn oci_layout_and_archive_serve_as_sources_and_as_targets() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "layouts");

    // Sources in a layout directory, target in the registry.
    let src_dir: PathBuf = env.dir.path().join("src-layout");
    let layout = LayoutStore::open_dir(&src_dir, true).unwrap();
    let mut sources = Vec::new();
    for image in &set.images {
        push_image(&layout, image, image.architecture)
            .await
            .unwrap();
        sources.push(layout_location("oci", &src_dir, image.architecture));
    }
    let target = env.registry.repo("app:from-layout");
    let mut args = vec!["--target", target.as_str()];
    args.extend(sources.iter().map(String::as_str));
    let before = env.registry.requests().len();
    let json = env.merge_json(&args);
    // One HEAD per blob, then its upload (regression: two HEADs each).
    let heads = env.registry.requests()[before..]
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(heads, 6, "{:#?}", &env.registry.requests()[before..]);
    assert_eq!(json["written"]["blobs_uploaded"], 6);
    let (digest, index) = env.raw("app:from-layout");
    assert_eq!(json["index_digest"], digest.to_string());
    assert_eq!(platforms(&index), THREE);
    let registry_sources = env.push_singles(&set, "src/app").await;

    // Registry sources into a layout directory and into an archive: the same
    // inputs give the same index digest wherever it is written.
    for kind in ["oci", "oci-archive"] {
        let path = env.dir.path().join(format!("out-{kind}"));
        let target = layout_location(kind, &path, "v1");
        let mut args = vec!["--target", target.as_str()];
        args.extend(registry_sources.iter().map(String::as_str));
        let json = env.merge_json(&args);
        assert_eq!(json["index_digest"], digest.to_string(), "{kind}");
        let (got, index) = skopeo_local(&target);
        assert_eq!(got, digest, "{kind}");
        assert_eq!(platforms(&index), THREE);
        let again = env.merge_json(&args);
        assert_eq!(again["index_digest"], digest.to_string());
        assert_eq!(
            again["written"],
            json!({"blobs_uploaded": 0, "blobs_mounted": 0, "blobs_present": 6,
                   "manifests": 0, "index": false, "tags": 0}),
            "{kind}"
        );

        // And the archive or layout as a source of another merge (an index source).
        let back = env.registry.repo(&format!("app:back-from-{kind}"));
        let json = env.merge_json(&["--target", &back, &target]);
        assert_eq!(json["index_digest"], digest.to_string());
    }
}

#[tokio::test]
async fn platform_picks_from_an_index_in_the_order_asked_and_names_what_is_missing() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "pick");
    let source = push_with_attestations(&env, &set, "src/buildx").await;
    let target = env.registry.repo("app:two");
    let json = env.merge_json(&[
        "--target",
        &target,
        "--platform",
        "linux/arm64,linux/amd64",
        &source,
    ]);
    let (digest, index) = env.raw("app:two");
    assert_eq!(json["index_digest"], digest.to_string());
    assert_eq!(platforms(&index), ["linux/arm64", "linux/amd64"]);

    let before = env.registry.requests().len();
    let err = env.fails(
        &[
            "merge",
            "--target",
            &env.registry.repo("app:three"),
            "--platform",
            "linux/amd64,linux/s390x",
            &source,
        ],
        1,
    );
    assert!(
        err.contains("no source provides linux/s390x; the sources provide linux/amd64"),
        "{err}"
    );
    assert_eq!(env.writes_since(before), Vec::<String>::new());
}

/// Over TLS with basic auth, at trace level: the merge works (mounts included)
/// and the password appears nowhere in what archgate prints.
#[tokio::test]
async fn merge_over_tls_with_basic_auth_never_prints_the_password() {
    const PASSWORD: &str = "Merge-Secret-0815";
    let registry = TestRegistry::start_tls_basic("ci", PASSWORD);
    let dir = crate::common::tempdir();
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "[registries.\"{}\"]\nca_file = \"{}\"\nusername = \"ci\"\npassword = \"{PASSWORD}\"\n",
            registry.host(),
            registry.ca_file().display()
        ),
    )
    .unwrap();
    let image = ImageRef::parse(&format!("{}:x", registry.repo("src/app"))).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    let set = image_set(Flavor::Oci, "tls");
    let mut args = vec![
        "-vv".to_string(),
        "merge".into(),
        "--json".into(),
        "--target".into(),
        registry.repo("app:v1"),
    ];
    for image in &set.images {
        push_image(&store, image, image.architecture).await.unwrap();
        args.push(format!(
            "{}:{}",
            registry.repo("src/app"),
            image.architecture
        ));
    }
    let out = crate::common::archgate()
        .current_dir(dir.path())
        .args(&args)
        .output();
    let json = out.assert_code(0).json();
    assert_eq!(json["written"]["blobs_mounted"], 6, "{json}");
    let bytes = skopeo_raw(&registry, &registry.repo("app:v1"));
    assert_eq!(json["index_digest"], Digest::of(&bytes).to_string());
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("ci:{PASSWORD}"),
    );
    for text in [out.stdout(), out.stderr()] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(&encoded),
            "password leaked:\n{text}"
        );
    }
}

/// Two merges to one tag at the same moment: the tag ends on one of the two
/// complete indexes (every manifest and blob there), never a mixture or a
/// dangling reference.
#[tokio::test]
async fn two_concurrent_merges_to_one_tag_leave_one_complete_index() {
    let registry = TestRegistry::start_http();
    let dir = crate::common::tempdir();
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let mut sources = Vec::new();
    for salt in ["writer-a", "writer-b"] {
        let repo_tag = format!("conc/{salt}:v1");
        registry
            .push_set(&repo_tag, &image_set(Flavor::Oci, salt))
            .await;
        sources.push(registry.repo(&repo_tag));
    }
    for round in 0..3 {
        let target = registry.repo(&format!("conc/app:r{round}"));
        let children: Vec<_> = sources
            .iter()
            .map(|src| {
                crate::common::archgate()
                    .arg("--config")
                    .arg(&config)
                    .args(["merge", "--json", "--target", &target, src])
                    .spawn()
            })
            .collect();
        let mut written = Vec::new();
        for child in children {
            let json = child.wait().assert_code(0).json();
            written.push(json["index_digest"].as_str().unwrap().to_string());
        }
        assert_ne!(written[0], written[1], "two different indexes were written");
        let raw = skopeo_raw(&registry, &target);
        let tagged = archgate::image::Digest::of(&raw).to_string();
        assert!(
            written.contains(&tagged),
            "round {round}: the tag points at {tagged}, neither of {written:?}"
        );
        // Complete: skopeo can copy every platform of it.
        let copy = std::process::Command::new("skopeo")
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{target}"))
            .arg(format!(
                "oci:{}:r{round}",
                dir.path().join("copy").display()
            ))
            .output()
            .unwrap();
        assert!(
            copy.status.success(),
            "{}",
            String::from_utf8_lossy(&copy.stderr)
        );
    }
}

#[tokio::test]
async fn regression_hole_1_merge_of_two_while_three_are_required_publishes_nothing() {
    let env = Env::new();
    let set = image_set(Flavor::Oci, "hole-1");
    let sources = env.push_singles(&set, "src/app").await;
    let target = format!("{}:v1", env.registry.repo("dst/app"));
    let since = env.registry.requests().len();

    // Default `platforms` (three), two sources, one of them named twice.
    let err = env.fails(
        &[
            "merge",
            "--target",
            &target,
            &sources[0],
            &sources[1],
            &sources[0],
        ],
        1,
    );
    assert!(
        err.contains(&format!("merge source {} is named twice", sources[0])),
        "{err}"
    );
    assert!(
        err.contains("merge would publish 2 of the 3 required platforms")
            && err.contains("linux/mips64le missing")
            && err.contains("nothing was published"),
        "{err}"
    );
    assert_eq!(env.writes_since(since), Vec::<String>::new());

    // allow_missing takes mips64le out of the rule: the same merge publishes.
    let config = env.dir.path().join("allow.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{}\"]\nhttp = true\n[gate]\nallow_missing = [\"linux/mips64le\"]\n",
            env.registry.host()
        ),
    )
    .unwrap();
    let out = env.archgate(&[
        "--config",
        config.to_str().unwrap(),
        "merge",
        "--target",
        &target,
        &sources[0],
        &sources[1],
    ]);
    out.assert_code(0);
    assert_eq!(
        platforms(&env.raw("dst/app:v1").1),
        ["linux/amd64", "linux/arm64"]
    );
}
