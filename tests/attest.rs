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
