//! Integration tests: signed test-result attestations on the index digest.
//! A real registry (distribution 2.8: no referrers API, so the fallback tag
//! `sha256-<hex>`), skopeo reading what archgate wrote, and openssl verifying
//! the DSSE signature over PAE bytes built here from the DSSE spec.

use std::path::{Path, PathBuf};
use std::process::Command;

use archgate::image::{Digest, ImageRef, Selector};
use archgate::store::Store;
use archgate::store::registry::RegistryStore;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::common::{
    Flavor, TestRegistry, archgate, image_set, push_image_set, skopeo_raw, tempdir,
};

/// A static verification the test images (no JDK) pass: the gate waives
/// what a static runner cannot run.
const PASSING: &str = "[verify]\nrunner = \"static\"\n[verify.java]\nrequired = false\n\
                       [gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n";

/// A fresh P-256 key pair made by openssl: (PKCS#8 private key, public key) files.
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let raw = dir.join(format!("{name}.raw.pem"));
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            crate::common::text(&out)
        );
    };
    let (raw_s, key_s, pub_s) = (
        raw.to_str().unwrap(),
        key.to_str().unwrap(),
        public.to_str().unwrap(),
    );
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        raw_s,
    ]);
    run(&["pkcs8", "-topk8", "-nocrypt", "-in", raw_s, "-out", key_s]);
    run(&["pkey", "-in", key_s, "-pubout", "-out", pub_s]);
    (key, public)
}

/// A working directory whose archgate.toml reaches `registry` over HTTP and passes the test images.
pub fn workdir(registry: &TestRegistry, extra: &str) -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n{PASSING}{extra}[registries.\"{}\"]\nhttp = true\n",
            registry.host()
        ),
    )
    .unwrap();
    dir
}

/// Pushes the three-platform test set to `repo:v1`; returns the index digest.
pub async fn push(registry: &TestRegistry, repo: &str, salt: &str) -> Digest {
    let image = ImageRef::parse(&registry.repo(&format!("{repo}:v1"))).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    let set = image_set(Flavor::Oci, salt);
    push_image_set(&store, &set, Some("v1")).await.unwrap();
    set.index.digest.clone()
}

/// `archgate verify --report-dir DIR/report IMAGE` signing with `key`.
pub fn verify_signed(dir: &Path, key: &Path, image: &str) -> crate::common::TestOutput {
    archgate()
        .current_dir(dir)
        .env("ARCHGATE_ATTEST__KEY", key)
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .env("CI_JOB_URL", "https://ci.example/job/7")
        .args(["verify", "--report-dir"])
        .arg(dir.join("report"))
        .arg(image)
        .output()
}

/// The fallback-tag index as skopeo reads it.
fn fallback_index(registry: &TestRegistry, repo: &str, subject: &Digest) -> Value {
    let raw = skopeo_raw(
        registry,
        &registry.repo(&format!("{repo}:sha256-{}", subject.hex())),
    );
    serde_json::from_slice(&raw).unwrap()
}

async fn blob(registry: &TestRegistry, repo: &str, digest: &str) -> Vec<u8> {
    let image = ImageRef::parse(&registry.repo(&format!("{repo}:v1"))).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), false)
        .await
        .unwrap();
    let mut out = Vec::new();
    store
        .get_blob(&Digest::parse(digest).unwrap(), None)
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

/// Verifies a DSSE envelope's first signature with `openssl dgst -sha256 -verify`
/// over the PAE bytes built here, from the DSSE spec (protocol.md).
pub fn openssl_verifies(envelope: &Value, public: &Path, work: &Path) -> bool {
    let payload_type = envelope["payloadType"].as_str().unwrap();
    let payload = STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&payload);
    let sig = STANDARD
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    std::fs::write(work.join("pae.bin"), &pae).unwrap();
    std::fs::write(work.join("sig.der"), &sig).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(work.join("sig.der"))
        .arg(work.join("pae.bin"))
        .output()
        .expect("run openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[tokio::test]
async fn a_passing_verify_attaches_a_signed_statement_skopeo_reads_and_openssl_verifies() {
    let registry = TestRegistry::start_http();
    let index = push(&registry, "attest/app", "one").await;
    let dir = workdir(&registry, "");
    let (key, public) = keypair(dir.path(), "attest");
    let out = verify_signed(dir.path(), &key, &registry.repo("attest/app:v1"));
    out.assert_code(0);

    // The fallback tag lists one in-toto artifact, the one the reports name.
    let fallback = fallback_index(&registry, "attest/app", &index);
    assert_eq!(
        fallback["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = fallback["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{fallback:#}");
    assert_eq!(entries[0]["artifactType"], "application/vnd.in-toto+json");
    let attestation = entries[0]["digest"].as_str().unwrap().to_string();
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["attestation"]["digest"], attestation.as_str());
    assert_eq!(report["attestation"]["result"], "PASSED");
    let env = std::fs::read_to_string(dir.path().join("report/archgate.env")).unwrap();
    assert!(
        env.contains(&format!("AG_ATTESTATION_DIGEST={attestation}")),
        "{env}"
    );

    // The artifact: an OCI manifest whose subject is the index.
    let manifest: Value = serde_json::from_slice(&skopeo_raw(
        &registry,
        &registry.repo(&format!("attest/app@{attestation}")),
    ))
    .unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.in-toto+json");
    assert_eq!(manifest["subject"]["digest"], index.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(manifest["config"]["size"], 2);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");

    // The envelope: signed over the PAE, verified by openssl.
    let envelope: Value = serde_json::from_slice(
        &blob(&registry, "attest/app", layer["digest"].as_str().unwrap()).await,
    )
    .unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    assert!(openssl_verifies(&envelope, &public, dir.path()));
    // The same check fails for another key (the verifier can say no).
    let (_, other) = keypair(dir.path(), "other");
    assert!(!openssl_verifies(&envelope, &other, dir.path()));

    // The statement: the index and every platform manifest, PASSED, the job URL.
    let statement: Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    let predicate = &statement["predicate"];
    assert_eq!(predicate["result"], "PASSED");
    assert_eq!(predicate["url"], "https://ci.example/job/7");
    assert!(
        predicate["passedTests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "linux/arm64/config-platform"),
        "{predicate:#}"
    );
    assert_eq!(predicate["failedTests"].as_array().unwrap().len(), 0);
    assert!(predicate["configuration"][0]["digest"]["sha256"].is_string());
    let subjects = statement["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 4, "{statement:#}");
    assert_eq!(subjects[0]["digest"]["sha256"], index.hex());
    let listed: Value =
        serde_json::from_slice(&skopeo_raw(&registry, &registry.repo("attest/app:v1"))).unwrap();
    for entry in listed["manifests"].as_array().unwrap() {
        let hex = entry["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        assert!(
            subjects.iter().any(|s| s["digest"]["sha256"] == hex),
            "platform manifest {hex} is no subject: {statement:#}"
        );
    }
    // The image's own tag still points at the index.
    let image = ImageRef::parse(&registry.repo("attest/app:v1")).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), false)
        .await
        .unwrap();
    assert_eq!(
        store.probe(&Selector::Tag("v1".into())).await.unwrap(),
        Some(index)
    );
}

#[test]
fn an_unreadable_or_wrong_key_stops_before_anything_and_names_the_setting_not_the_path() {
    let registry = TestRegistry::start_http();
    let dir = workdir(&registry, "");
    let secret_name = "do-not-print-this-key-name.pem";
    let missing = dir.path().join(secret_name);
    let out = verify_signed(dir.path(), &missing, &registry.repo("attest/none:v1"));
    out.assert_code(2)
        .assert_stderr_contains("[attest] key")
        .assert_stderr_contains("ARCHGATE_ATTEST__KEY");
    assert!(!out.stderr().contains(secret_name), "{}", out.stderr());

    // An RSA key is no P-256 key.
    let rsa = dir.path().join(secret_name);
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&rsa)
        .output()
        .unwrap();
    assert!(made.status.success());
    let out = verify_signed(dir.path(), &rsa, &registry.repo("attest/none:v1"));
    out.assert_code(2).assert_stderr_contains("P-256");
    assert!(!out.stderr().contains(secret_name), "{}", out.stderr());
    assert!(registry.repositories().is_empty(), "nothing was written");
}

/// The signing key's invariant, as tests/secrets.rs checks the password's:
/// at trace level, over TLS with basic auth, neither the key nor its file
/// name appears in stdout, stderr or any report.
#[tokio::test]
async fn the_signing_key_never_appears_at_trace_level() {
    let registry = TestRegistry::start_tls_basic("alice", "pw-attest-1");
    let image = ImageRef::parse(&registry.repo("attest/tls:v1")).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    let set = image_set(Flavor::Oci, "tls");
    push_image_set(&store, &set, Some("v1")).await.unwrap();
    let dir = tempdir();
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n{PASSING}[registries.\"{}\"]\nca_file = \"{}\"\nusername = \"alice\"\npassword = \"pw-attest-1\"\n",
            registry.host(),
            registry.ca_file().display()
        ),
    )
    .unwrap();
    let (key, _) = keypair(dir.path(), "signing-key-file-name");
    let pem = std::fs::read_to_string(&key).unwrap();
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!body.is_empty());
    for args in [
        vec!["run", "--image", &registry.repo("attest/tls:v1")],
        vec!["verify", &registry.repo("attest/tls:v1")],
        vec!["config"],
        vec!["config", "--json"],
    ] {
        let out = archgate()
            .current_dir(dir.path())
            .arg("-vv")
            .args(&args)
            .env("ARCHGATE_ATTEST__KEY", &key)
            .env("ARCHGATE_LOG", "trace")
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .output();
        out.assert_code(0);
        if args[0] != "config" {
            assert!(
                out.stderr().contains("TRACE"),
                "trace expected: {}",
                out.stderr()
            );
            assert!(
                out.stdout().contains("attestation: ") || out.stderr().contains("attestation: ")
            );
        }
        for text in [out.stdout(), out.stderr()] {
            assert!(
                !text.contains("signing-key-file-name"),
                "{args:?} printed the key's file name:\n{text}"
            );
            for line in &body {
                assert!(!text.contains(line), "{args:?} printed the key:\n{text}");
            }
        }
    }
    let report = std::fs::read_to_string(dir.path().join("archgate-report/report.json")).unwrap();
    assert!(report.contains("\"attestation\""), "{report}");
    assert!(!report.contains("signing-key-file-name"));
    for line in &body {
        assert!(!report.contains(line));
    }
}

#[tokio::test]
async fn an_oci_layout_keeps_the_attestation_under_its_fallback_tag_and_still_has_one_image() {
    let dir = tempdir();
    let layout = dir.path().join("layout");
    let store = archgate::store::layout::LayoutStore::open_dir(&layout, true).unwrap();
    let set = image_set(Flavor::Oci, "layout");
    push_image_set(&store, &set, Some("v1")).await.unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!("platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n{PASSING}"),
    )
    .unwrap();
    let (key, public) = keypair(dir.path(), "attest");
    verify_signed(dir.path(), &key, &format!("oci:{}:v1", layout.display())).assert_code(0);

    let index_json: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tag = format!("sha256-{}", set.index.digest.hex());
    let entry = index_json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap_or_else(|| panic!("no {tag} in {index_json:#}"))
        .clone();
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let referrers: Value =
        serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    let artifact: Value =
        serde_json::from_slice(&blob(referrers["manifests"][0]["digest"].as_str().unwrap()))
            .unwrap();
    assert_eq!(artifact["subject"]["digest"], set.index.digest.as_str());
    let envelope: Value =
        serde_json::from_slice(&blob(artifact["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert!(openssl_verifies(&envelope, &public, dir.path()));

    // `oci:DIR` without a tag still means the one image, not the attestation.
    archgate()
        .current_dir(dir.path())
        .env("ARCHGATE_CACHE", dir.path().join("cache"))
        .args(["inspect"])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .assert_code(0)
        .assert_stdout_contains(set.index.digest.as_str());
}

#[tokio::test]
async fn two_concurrent_attaches_both_remain() {
    let registry = TestRegistry::start_http();
    let index = push(&registry, "attest/both", "both").await;
    let (a, b) = (workdir(&registry, ""), workdir(&registry, ""));
    let (key, _) = keypair(a.path(), "attest");
    let image = registry.repo("attest/both:v1");
    let spawn = |dir: &Path| {
        archgate()
            .current_dir(dir)
            .env("ARCHGATE_ATTEST__KEY", &key)
            .env("ARCHGATE_CACHE", dir.join("cache"))
            .args(["verify", "--report-dir"])
            .arg(dir.join("report"))
            .arg(&image)
            .spawn()
    };
    let (first, second) = (spawn(a.path()), spawn(b.path()));
    first.wait().assert_code(0);
    second.wait().assert_code(0);
    let digest_of = |dir: &Path| {
        let r: Value =
            serde_json::from_slice(&std::fs::read(dir.join("report/report.json")).unwrap())
                .unwrap();
        r["attestation"]["digest"].as_str().unwrap().to_string()
    };
    let (da, db) = (digest_of(a.path()), digest_of(b.path()));
    assert_ne!(da, db, "two signatures, two artifacts");
    let fallback = fallback_index(&registry, "attest/both", &index);
    let listed: Vec<&str> = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&da.as_str()) && listed.contains(&db.as_str()),
        "{fallback:#}"
    );
}

// ---------------------------------------------------------------------------
// archgate attestations, archgate promote, mirror carrying referrers

/// `archgate ARGS` in `dir` (its archgate.toml), no signing key.
fn cmd(dir: &Path, args: &[&str]) -> crate::common::TestOutput {
    archgate()
        .current_dir(dir)
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .args(args)
        .output()
}

/// Whether `reference` (`REPO:TAG`) exists in `registry`, asked over HTTP.
async fn exists(registry: &TestRegistry, reference: &str) -> bool {
    let image = ImageRef::parse(&registry.repo(reference)).unwrap();
    let tag = reference.rsplit_once(':').unwrap().1.to_string();
    match RegistryStore::connect(&image, &registry.settings(), false).await {
        Ok(store) => store.probe(&Selector::Tag(tag)).await.unwrap().is_some(),
        Err(_) => false,
    }
}

/// Asserts a refused promotion: exit 1, `reason` named, and no target tag.
async fn assert_refused(
    registry: &TestRegistry,
    out: &crate::common::TestOutput,
    target: &str,
    reason: &str,
) {
    out.assert_code(1).assert_stderr_contains(reason);
    assert!(
        out.stderr().contains("Nothing was written"),
        "{}",
        out.stderr()
    );
    assert!(
        !exists(registry, target).await,
        "{target} was written on refusal"
    );
    assert!(
        !registry
            .repositories()
            .iter()
            .any(|r| target.starts_with(&format!("{r}:"))),
        "the target repository exists after a refusal: {:?}",
        registry.repositories()
    );
}

/// A signed verify whose gate fails (the JDK is required; the test images have none).
fn verify_failed(registry: &TestRegistry, key: &Path, image: &str) {
    let failing = tempdir();
    std::fs::write(
        failing.path().join("archgate.toml"),
        format!(
            "[verify]\nrunner = \"static\"\n[registries.\"{}\"]\nhttp = true\n",
            registry.host()
        ),
    )
    .unwrap();
    verify_signed(failing.path(), key, image).assert_code(1);
}

/// `archgate promote SOURCE TARGET --key KEY` is refused for `reason`, writing nothing.
async fn refused(
    registry: &TestRegistry,
    dir: &Path,
    source: &str,
    target: &str,
    key: &str,
    reason: &str,
) {
    let out = cmd(
        dir,
        &["promote", source, &registry.repo(target), "--key", key],
    );
    assert_refused(registry, &out, target, reason).await;
}

#[tokio::test]
async fn attestations_lists_what_is_attached_and_whether_it_verifies() {
    let registry = TestRegistry::start_http();
    let index = push(&registry, "attest/list", "list").await;
    let dir = workdir(&registry, "");
    let (key, public) = keypair(dir.path(), "attest");
    let (_, other) = keypair(dir.path(), "other");
    let image = registry.repo("attest/list:v1");
    let out = cmd(dir.path(), &["attestations", &image]);
    out.assert_code(0)
        .assert_stdout_contains("nothing attached");
    verify_signed(dir.path(), &key, &image).assert_code(0);

    let out = cmd(
        dir.path(),
        &[
            "attestations",
            &image,
            "--key",
            public.to_str().unwrap(),
            "--json",
        ],
    );
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["digest"], index.as_str());
    let list = v["attestations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v:#}");
    assert_eq!(list[0]["verified"], true);
    assert_eq!(list[0]["result"], "PASSED");
    assert_eq!(list[0]["subjects"].as_array().unwrap().len(), 4);
    assert!(
        list[0]["subjects"][0]
            .as_str()
            .unwrap()
            .ends_with(index.hex())
    );

    let out = cmd(
        dir.path(),
        &["attestations", &image, "--key", other.to_str().unwrap()],
    );
    out.assert_code(0)
        .assert_stdout_contains("signature NOT verified under the key")
        .assert_stdout_contains("result PASSED");
}

#[tokio::test]
async fn promote_tags_the_verified_digest_in_another_repository_with_its_attestation() {
    let registry = TestRegistry::start_http();
    let index = push(&registry, "attest/rc", "promote").await;
    let dir = workdir(&registry, "");
    let (key, public) = keypair(dir.path(), "attest");
    verify_signed(dir.path(), &key, &registry.repo("attest/rc:v1")).assert_code(0);
    let target = registry.repo("attest/release:1.0");
    let out = cmd(
        dir.path(),
        &[
            "promote",
            &registry.repo("attest/rc:v1"),
            &target,
            "--key",
            public.to_str().unwrap(),
        ],
    );
    out.assert_code(0).assert_stdout_contains("promoted");
    let raw = skopeo_raw(&registry, &target);
    assert_eq!(
        Digest::of(&raw),
        index,
        "the target is the verified digest, byte for byte"
    );
    // The attestation came along: promote again from the target works.
    let fallback = fallback_index(&registry, "attest/release", &index);
    assert_eq!(fallback["manifests"].as_array().unwrap().len(), 1);
    cmd(
        dir.path(),
        &[
            "promote",
            &target,
            &registry.repo("attest/release:latest"),
            "--key",
            public.to_str().unwrap(),
        ],
    )
    .assert_code(0);
}

#[tokio::test]
async fn promote_refuses_no_attestation_another_key_failed_and_a_missing_platform() {
    let registry = TestRegistry::start_http();
    let dir = workdir(&registry, "");
    let (key, public) = keypair(dir.path(), "attest");
    let (other_key, _) = keypair(dir.path(), "other");
    let pub_arg = public.to_str().unwrap();

    // No attestation at all.
    push(&registry, "attest/none", "none").await;
    refused(
        &registry,
        dir.path(),
        &registry.repo("attest/none:v1"),
        "attest/out-none:1.0",
        pub_arg,
        "no attestation is attached",
    )
    .await;

    // Signed, PASSED, but by another key.
    push(&registry, "attest/other", "other").await;
    verify_signed(dir.path(), &other_key, &registry.repo("attest/other:v1")).assert_code(0);
    refused(
        &registry,
        dir.path(),
        &registry.repo("attest/other:v1"),
        "attest/out-other:1.0",
        pub_arg,
        "does not verify under this key",
    )
    .await;

    // Signed by the key, but FAILED (the JDK is required and the images have none).
    push(&registry, "attest/failed", "failed").await;
    verify_failed(&registry, &key, &registry.repo("attest/failed:v1"));
    refused(
        &registry,
        dir.path(),
        &registry.repo("attest/failed:v1"),
        "attest/out-failed:1.0",
        pub_arg,
        "it says FAILED",
    )
    .await;

    // PASSED for two platforms; the release requires three.
    push(&registry, "attest/two", "two").await;
    let out = archgate()
        .current_dir(dir.path())
        .env("ARCHGATE_ATTEST__KEY", &key)
        .env("ARCHGATE_CACHE", dir.path().join("cache"))
        .args([
            "verify",
            "--platform",
            "linux/amd64,linux/arm64",
            &registry.repo("attest/two:v1"),
        ])
        .output();
    out.assert_code(0);
    refused(
        &registry,
        dir.path(),
        &registry.repo("attest/two:v1"),
        "attest/out-two:1.0",
        pub_arg,
        "does not cover linux/mips64le",
    )
    .await;
}

/// Pushes a copy of `envelope` (changed by `edit`) as a new attestation of
/// `subject` in `repo`, and makes it the only one the fallback tag lists.
async fn replace_attestation(
    registry: &TestRegistry,
    repo: &str,
    subject: &Digest,
    envelope: Vec<u8>,
) {
    use archgate::attest::referrers;
    let image = ImageRef::parse(&registry.repo(&format!("{repo}:v1"))).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    // An empty fallback index first: the attacker's artifact is the only one listed.
    let empty = archgate::image::RawManifest::from_bytes(
        bytes::Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#),
        None,
        "empty",
    )
    .unwrap();
    store
        .put_manifest(&empty, Some(&referrers::fallback_tag(subject)))
        .await
        .unwrap();
    attach_envelope(&store, subject, envelope).await;
}

/// Attaches `envelope` to `subject` as archgate's artifact layout does, through the library.
async fn attach_envelope(store: &RegistryStore, subject: &Digest, envelope: Vec<u8>) {
    use archgate::attest::referrers;
    use archgate::image::Descriptor;
    let subject_desc = store
        .get_manifest(&Selector::Digest(subject.clone()))
        .await
        .unwrap()
        .descriptor();
    let layer = Descriptor {
        media_type: archgate::attest::ENVELOPE_MEDIA_TYPE.into(),
        digest: Digest::of(&envelope),
        size: envelope.len() as u64,
        platform: None,
        annotations: Default::default(),
        urls: Vec::new(),
    };
    let manifest = referrers::artifact_manifest(
        archgate::attest::ARTIFACT_TYPE,
        &layer,
        &subject_desc,
        &Default::default(),
    )
    .unwrap();
    referrers::attach(
        store,
        subject,
        &manifest,
        &layer,
        bytes::Bytes::from(envelope),
    )
    .await
    .unwrap();
}

/// The manifest digest of `architecture` in the index `reference` names.
/// Attaches an envelope signed by `key` (an empty statement) to the amd64
/// manifest of `reference`; returns that manifest's digest.
async fn attach_to_amd64(registry: &TestRegistry, reference: &str, key: &Path) -> Digest {
    let amd64 = platform_digest(registry, reference, "amd64");
    let image = ImageRef::parse(&registry.repo(reference)).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    let signer = archgate::attest::Signer::from_pem(&std::fs::read(key).unwrap()).unwrap();
    let envelope = signer
        .envelope("application/vnd.in-toto+json", b"{}")
        .unwrap();
    attach_envelope(&store, &amd64, serde_json::to_vec(&envelope).unwrap()).await;
    amd64
}

fn platform_digest(registry: &TestRegistry, reference: &str, architecture: &str) -> Digest {
    let index: Value =
        serde_json::from_slice(&skopeo_raw(registry, &registry.repo(reference))).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["platform"]["architecture"] == architecture)
        .unwrap();
    Digest::parse(entry["digest"].as_str().unwrap()).unwrap()
}

/// The envelope of the one attestation `repo`'s fallback tag for `subject` lists.
async fn envelope_of(registry: &TestRegistry, repo: &str, subject: &Digest) -> Value {
    let fallback = fallback_index(registry, repo, subject);
    let artifact = fallback["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(&skopeo_raw(
        registry,
        &registry.repo(&format!("{repo}@{artifact}")),
    ))
    .unwrap();
    serde_json::from_slice(
        &blob(
            registry,
            repo,
            manifest["layers"][0]["digest"].as_str().unwrap(),
        )
        .await,
    )
    .unwrap()
}

#[tokio::test]
async fn promote_refuses_a_tampered_envelope_and_an_attestation_about_another_digest() {
    let registry = TestRegistry::start_http();
    let dir = workdir(&registry, "");
    let (key, public) = keypair(dir.path(), "attest");
    let pub_arg = public.to_str().unwrap();

    // FAILED, then changed to PASSED with the signature kept.
    let failed = push(&registry, "attest/tampered", "tampered").await;
    verify_failed(&registry, &key, &registry.repo("attest/tampered:v1"));
    let mut envelope = envelope_of(&registry, "attest/tampered", &failed).await;
    let mut statement: Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(statement["predicate"]["result"], "FAILED");
    statement["predicate"]["result"] = "PASSED".into();
    statement["predicate"]["failedTests"] = serde_json::json!([]);
    envelope["payload"] = STANDARD
        .encode(serde_json::to_vec(&statement).unwrap())
        .into();
    replace_attestation(
        &registry,
        "attest/tampered",
        &failed,
        serde_json::to_vec(&envelope).unwrap(),
    )
    .await;
    let listed = cmd(
        dir.path(),
        &[
            "attestations",
            &registry.repo("attest/tampered:v1"),
            "--key",
            pub_arg,
            "--json",
        ],
    )
    .json();
    assert_eq!(listed["attestations"][0]["result"], "PASSED", "{listed:#}");
    assert_eq!(listed["attestations"][0]["verified"], false, "{listed:#}");
    refused(
        &registry,
        dir.path(),
        &registry.repo("attest/tampered:v1"),
        "attest/out-tampered:1.0",
        pub_arg,
        "does not verify under this key",
    )
    .await;

    // A valid PASSED envelope about image A, attached to image B.
    let a = push(&registry, "attest/a", "a").await;
    verify_signed(dir.path(), &key, &registry.repo("attest/a:v1")).assert_code(0);
    let b = push(&registry, "attest/a", "b").await;
    assert_ne!(a, b);
    let envelope = envelope_of(&registry, "attest/a", &a).await;
    replace_attestation(
        &registry,
        "attest/a",
        &b,
        serde_json::to_vec(&envelope).unwrap(),
    )
    .await;
    refused(
        &registry,
        dir.path(),
        &registry.repo(&format!("attest/a@{b}")),
        "attest/out-a:1.0",
        pub_arg,
        &format!("it is about {a}, not {b}"),
    )
    .await;
}

#[tokio::test]
async fn registry_to_archive_to_a_second_registry_keeps_the_attestation_so_promote_works_behind_the_air_gap()
 {
    let outside = TestRegistry::start_http();
    let index = push(&outside, "attest/app", "airgap").await;
    let dir = workdir(&outside, "");
    let (key, public) = keypair(dir.path(), "attest");
    verify_signed(dir.path(), &key, &outside.repo("attest/app:v1")).assert_code(0);

    let archive = format!("oci-archive:{}:v1", dir.path().join("app.tar").display());
    let out = cmd(
        dir.path(),
        &["mirror", &outside.repo("attest/app:v1"), &archive],
    );
    out.assert_code(0)
        .assert_stdout_contains("referrers: 1 carried");

    let inside = TestRegistry::start_http();
    let inner = tempdir();
    std::fs::write(
        inner.path().join("archgate.toml"),
        format!("platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n[registries.\"{}\"]\nhttp = true\n", inside.host()),
    )
    .unwrap();
    cmd(
        inner.path(),
        &["mirror", &archive, &inside.repo("team/app:v1")],
    )
    .assert_code(0);
    let fallback = fallback_index(&inside, "team/app", &index);
    assert_eq!(
        fallback["manifests"][0]["artifactType"],
        "application/vnd.in-toto+json"
    );
    let out = cmd(
        inner.path(),
        &[
            "promote",
            &inside.repo("team/app:v1"),
            &inside.repo("team/app:release"),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    out.assert_code(0);
    assert_eq!(
        Digest::of(&skopeo_raw(&inside, &inside.repo("team/app:release"))),
        index
    );

    // --no-referrers leaves it behind: promote then refuses.
    cmd(
        inner.path(),
        &[
            "mirror",
            "--no-referrers",
            &archive,
            &inside.repo("bare/app:v1"),
        ],
    )
    .assert_code(0);
    let out = cmd(
        inner.path(),
        &[
            "promote",
            &inside.repo("bare/app:v1"),
            &inside.repo("bare/app:release"),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    out.assert_code(1)
        .assert_stderr_contains("no attestation is attached");

    // A platform filter makes a new index: the index's attestation is not
    // carried, a platform manifest's referrer is (one attached here to amd64).
    let amd64 = attach_to_amd64(&outside, "attest/app:v1", &key).await;
    let out = cmd(
        dir.path(),
        &[
            "mirror",
            "--platform",
            "linux/amd64,linux/arm64",
            &outside.repo("attest/app:v1"),
            &outside.repo("attest/two:v1"),
            "--json",
        ],
    );
    out.assert_code(0);
    let m = &out.json()[0];
    assert_eq!(m["filtered"], true);
    assert_eq!(m["index_referrers_left"], true, "{m:#}");
    let carried = m["referrers"].as_array().unwrap();
    assert_eq!(carried.len(), 1, "{m:#}");
    assert_eq!(carried[0]["subject"], amd64.as_str());
    let fallback = fallback_index(&outside, "attest/two", &amd64);
    assert_eq!(fallback["manifests"][0]["digest"], carried[0]["digest"]);
    let new_index = Digest::parse(m["digest"].as_str().unwrap()).unwrap();
    assert_ne!(new_index, index);
    let out = cmd(
        dir.path(),
        &["attestations", &outside.repo("attest/two:v1"), "--json"],
    );
    assert_eq!(
        out.json()["attestations"].as_array().unwrap().len(),
        0,
        "the filtered index has none"
    );
}

/// A `docker save` archive holds no referrers: mirroring an attested image
/// into one still works, carrying nothing but the image.
#[tokio::test]
async fn a_docker_archive_target_takes_the_image_without_its_referrers() {
    let registry = TestRegistry::start_http();
    push(&registry, "attest/docker", "docker").await;
    let dir = workdir(&registry, "");
    let (key, _) = keypair(dir.path(), "attest");
    verify_signed(dir.path(), &key, &registry.repo("attest/docker:v1")).assert_code(0);
    attach_to_amd64(&registry, "attest/docker:v1", &key).await;
    let file = dir.path().join("amd64.tar");
    let out = cmd(
        dir.path(),
        &[
            "mirror",
            "--platform",
            "linux/amd64",
            &registry.repo("attest/docker:v1"),
            &format!("docker-archive:{}:app:v1", file.display()),
            "--json",
        ],
    );
    out.assert_code(0);
    assert!(out.json()[0].get("referrers").is_none(), "{}", out.stdout());
    assert!(file.is_file());
}
