//! The `clients` check (issue 16, item 4): `[verify] clients` judges the image
//! as published for Docker 19.03 (Docker v2s2 media types throughout, no
//! attestation entries), containerd 1.6 (no descriptor to missing content)
//! and K3s's importer (and an archive naming the image in full); a failed
//! client is `failed` with what to change.

use std::path::Path;

use archgate::store::layout::LayoutStore;
use serde_json::Value;

use crate::common::images::{ImageSet, push_image};
use crate::common::{Flavor, TestOutput, archgate, image_set, push_image_set, tempdir};

/// A layout at `dir` holding each image of an OCI set under its
/// architecture's tag (`oci:DIR:amd64`, …), the way per-arch builds leave them.
fn per_arch_layout(dir: &Path, salt: &str) -> ImageSet {
    let set = image_set(Flavor::Oci, salt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(dir, true).unwrap();
        for image in &set.images {
            push_image(&store, image, image.architecture).await.unwrap();
        }
    });
    set
}

/// `archgate verify --json` of `image` with `clients`, statically (the small
/// test images hold no JDK), the Java checks waived so the exit code is the
/// clients' verdict.
fn verify_for(dir: &Path, clients: &str, image: &str, platform: &str) -> (TestOutput, Value) {
    let config = dir.join("clients.toml");
    std::fs::write(
        &config,
        format!(
            "[verify]\nrunner = \"static\"\nclients = [{clients}]\n[verify.java]\nrequired = false\n\
             [gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n"
        ),
    )
    .unwrap();
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["verify", "--json", "--platform", platform, image])
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .output();
    let v = out.json_or_null();
    (out, v)
}

fn clients_check(v: &Value, platform: &str) -> (String, String) {
    let c = crate::common::verify_check(v, platform, "clients");
    (
        c["outcome"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_docker_list_of_oci_children_fails_docker_19_03_and_the_converted_one_passes() {
    let dir = tempdir();
    let src = dir.path().join("src");
    per_arch_layout(&src, "clients");
    let sources: Vec<String> = ["amd64", "arm64", "mips64le"]
        .iter()
        .map(|a| format!("oci:{}:{a}", src.display()))
        .collect();
    let out_dir = dir.path().join("out");
    for (tag, convert) in [("plain", false), ("converted", true)] {
        let mut args = vec![
            "merge".to_string(),
            "--format".into(),
            "docker".into(),
            "--target".into(),
            format!("oci:{}:{tag}", out_dir.display()),
        ];
        if convert {
            args.push("--convert".into());
        }
        args.extend(sources.iter().cloned());
        archgate().args(&args).output().assert_code(0);
    }
    let plain = format!("oci:{}:plain", out_dir.display());
    let (out, v) = verify_for(dir.path(), "\"docker-19.03\"", &plain, "linux/arm64");
    let (outcome, message) = clients_check(&v, "linux/arm64");
    assert_eq!(outcome, "failed", "{message}");
    assert!(
        message.contains("docker-19.03: the linux/arm64 manifest is")
            && message.contains("--convert"),
        "{message}"
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr());

    let converted = format!("oci:{}:converted", out_dir.display());
    let (out, v) = verify_for(dir.path(), "\"docker-19.03\"", &converted, "linux/arm64");
    let (outcome, message) = clients_check(&v, "linux/arm64");
    assert_eq!(outcome, "passed", "{message}");
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
}

#[test]
fn an_archive_without_a_full_name_fails_k3s_import_until_named() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let set = image_set(Flavor::Oci, "k3s");
    rt.block_on(async {
        let store = LayoutStore::open_dir(&src, true).unwrap();
        push_image_set(&store, &set, Some("v1")).await.unwrap();
    });
    for (file, name, want) in [
        ("bare.tar", None, "failed"),
        ("named.tar", Some("10.0.0.5:5000/team/app"), "passed"),
    ] {
        let archive = format!("oci-archive:{}:v1", dir.path().join(file).display());
        let mut args = vec![
            "mirror".to_string(),
            format!("oci:{}:v1", src.display()),
            archive.clone(),
        ];
        if let Some(n) = name {
            args.extend(["--name".to_string(), n.to_string()]);
        }
        archgate().args(&args).output().assert_code(0);
        let (_, v) = verify_for(dir.path(), "\"k3s-import\"", &archive, "linux/amd64");
        let (outcome, message) = clients_check(&v, "linux/amd64");
        assert_eq!(outcome, want, "{file}: {message}");
        if want == "failed" {
            assert!(message.contains("--name REGISTRY/NAME"), "{message}");
        }
    }
}

#[test]
fn an_index_naming_content_the_layout_lacks_fails_containerd() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let set = image_set(Flavor::Oci, "sparse");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(&src, true).unwrap();
        push_image_set(&store, &set, Some("v1")).await.unwrap();
    });
    let arm64 = set
        .images
        .iter()
        .find(|i| i.architecture == "arm64")
        .unwrap();
    std::fs::remove_file(src.join("blobs/sha256").join(arm64.manifest.digest.hex())).unwrap();
    let image = format!("oci:{}:v1", src.display());
    let (out, v) = verify_for(dir.path(), "\"containerd-1.6\"", &image, "linux/amd64");
    let (outcome, message) = clients_check(&v, "linux/amd64");
    assert_eq!(outcome, "failed", "{message}");
    assert!(
        message.contains(&arm64.manifest.digest.to_string()) && message.contains("does not hold"),
        "{message}"
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
}

#[test]
fn an_unknown_client_is_a_configuration_error() {
    let dir = tempdir();
    let (out, _) = verify_for(
        dir.path(),
        "\"docker-1.0\"",
        "oci:nowhere:v1",
        "linux/amd64",
    );
    out.assert_code(2);
    out.assert_stderr_contains("clients");
}

/// A BuildKit `compression=zstd` image: one linux/amd64 OCI manifest whose
/// layer is a real zstd stream (the `zstd` tool's) of a small tar. For
/// `docker-19.03` it fails, naming the layer and what to change: Docker 19.03
/// cannot decompress zstd (and `--convert` cannot turn zstd into gzip).
#[test]
fn a_zstd_layer_fails_docker_19_03_naming_the_layer_and_gzip() {
    use archgate::image::{Digest, RawManifest, media};
    use archgate::store::Store;
    use bytes::Bytes;
    use serde_json::json;
    let dir = tempdir();
    let tar = dir.path().join("layer.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        let content = b"hello from a zstd layer\n";
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/hello", &content[..]).unwrap();
        b.finish().unwrap();
    }
    let zst = std::process::Command::new("zstd")
        .args(["-q", "-c"])
        .arg(&tar)
        .output()
        .expect("zstd (scripts/setup.sh installs it)");
    assert!(zst.status.success());
    let layer = Bytes::from(zst.stdout);
    assert_eq!(&layer[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&std::fs::read(&tar).unwrap()).to_string()]},
        }))
        .unwrap(),
    );
    let desc = |mt: &str, b: &[u8]| json!({"mediaType": mt, "digest": Digest::of(b).to_string(), "size": b.len()});
    let zstd_type = "application/vnd.oci.image.layer.v1.tar+zstd";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &config),
        "layers": [desc(zstd_type, &layer)],
    }))
    .unwrap();
    let mut entry = desc(media::OCI_MANIFEST, &manifest);
    entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [entry],
    }))
    .unwrap();
    let src = dir.path().join("src");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(&src, true).unwrap();
        crate::common::images::push_blobs(&store, [config, layer.clone()])
            .await
            .unwrap();
        let m =
            RawManifest::from_bytes(manifest.into(), Some(media::OCI_MANIFEST), "zstd").unwrap();
        store.put_manifest(&m, None).await.unwrap();
        let i = RawManifest::from_bytes(index.into(), Some(media::OCI_INDEX), "index").unwrap();
        store.put_manifest(&i, Some("v1")).await.unwrap();
    });
    let image = format!("oci:{}:v1", src.display());
    let (out, v) = verify_for(dir.path(), "\"docker-19.03\"", &image, "linux/amd64");
    let (outcome, message) = clients_check(&v, "linux/amd64");
    assert_eq!(outcome, "failed", "{message}");
    assert!(
        message.contains(&format!(
            "docker-19.03: layer {} is {zstd_type}: zstd, which Docker 19.03 cannot decompress: rebuild with gzip layers",
            Digest::of(&layer)
        )),
        "{message}"
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
}

/// A Docker list in Docker v2s2 throughout but with BuildKit's attestation
/// entries (`unknown/unknown`) fails `docker-19.03`, which may pick one, and
/// says what to change; done — merged without `--keep-attestations` — the
/// same images pass.
#[test]
fn attestation_entries_fail_docker_19_03_until_merged_without_them() {
    use archgate::image::media;
    let dir = tempdir();
    let src = dir.path().join("src");
    let set = image_set(Flavor::Docker, "attested");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(&src, true).unwrap();
        crate::common::images::push_attested(&store, &set, media::DOCKER_LIST, "v1")
            .await
            .unwrap();
    });
    let attested = format!("oci:{}:v1", src.display());
    let (out, v) = verify_for(dir.path(), "\"docker-19.03\"", &attested, "linux/arm64");
    let (outcome, message) = clients_check(&v, "linux/arm64");
    assert_eq!(outcome, "failed", "{message}");
    assert_eq!(
        message,
        "docker-19.03: the index lists 3 attestation entries (unknown/unknown), which old clients may pick: merge without --keep-attestations",
        "the attestations are the only problem"
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr());

    let clean = format!("oci:{}:clean", dir.path().join("out").display());
    archgate()
        .args(["merge", "--format", "docker", "--target", &clean, &attested])
        .output()
        .assert_code(0);
    let (out, v) = verify_for(dir.path(), "\"docker-19.03\"", &clean, "linux/arm64");
    let (outcome, message) = clients_check(&v, "linux/arm64");
    assert_eq!(outcome, "passed", "{message}");
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
}
