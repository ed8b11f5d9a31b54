//! `archgate mirror` end to end against real registries: registry → archive →
//! a second registry with digests preserved, the platform filter, an
//! interrupted copy that resumes, and a corrupted archive that tags nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archgate::image::{Digest, RawManifest, Selector};
use archgate::store::Store;
use archgate::store::layout::LayoutStore;
use serde_json::Value;

use crate::common::images::ImageSet;
use crate::common::{
    Flavor, Running, TestOutput, TestRegistry, archgate, image_set, large_image_set, skopeo_raw,
    tempdir,
};

/// A configuration trusting the registries over plain HTTP.
fn config(dir: &Path, registries: &[&TestRegistry], extra: &str) -> PathBuf {
    let mut text = String::new();
    for r in registries {
        text.push_str(&format!("[registries.\"{}\"]\nhttp = true\n", r.host()));
    }
    text.push_str(extra);
    let path = dir.join("archgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `archgate --config CONFIG mirror ARGS --json`.
fn mirror(config: &Path, args: &[&str]) -> TestOutput {
    archgate()
        .arg("--config")
        .arg(config)
        .arg("mirror")
        .args(args)
        .arg("--json")
        .output()
}

/// The JSON outcomes of a successful run.
fn outcomes(out: &TestOutput) -> Vec<Value> {
    match out.assert_code(0).json() {
        Value::Array(outcomes) => outcomes,
        other => panic!("a JSON array on stdout, not {other}:\n{out}"),
    }
}

/// Whether `skopeo inspect --raw` finds `reference` (a tag or digest).
fn skopeo_finds(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run skopeo")
        .success()
}

/// Two registries, a configuration trusting both, and `set` pushed to the
/// first as `NAME:TAG` (`name_tag`).
struct Setup {
    a: TestRegistry,
    b: TestRegistry,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    set: ImageSet,
}

async fn setup(set: ImageSet, name_tag: &str) -> Setup {
    let (a, b) = (TestRegistry::start_http(), TestRegistry::start_http());
    let dir = tempdir();
    let cfg = config(dir.path(), &[&a, &b], "");
    a.push_set(name_tag, &set).await;
    Setup {
        a,
        b,
        dir,
        cfg,
        set,
    }
}

/// The manifests of an OCI archive, read back through the layout store.
async fn archive_manifest(path: &Path, selector: &Selector) -> RawManifest {
    let store = LayoutStore::open_archive(path, false).expect("open archive");
    store
        .get_manifest(selector)
        .await
        .expect("manifest in archive")
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_to_archive_to_second_registry_preserves_digests() {
    let Setup {
        a,
        b,
        dir,
        cfg,
        set,
    } = setup(image_set(Flavor::Oci, "mirror"), "base/jre:17").await;

    // registry → archive: the tag is the source's when the target names none
    let archive = dir.path().join("transfer").join("jre.tar"); // the directory is created
    let out = mirror(
        &cfg,
        &[
            &a.repo("base/jre:17"),
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let o = &outcomes(&out)[0];
    assert_eq!(o["digest"], set.index.digest.to_string());
    assert_eq!(o["filtered"], false);
    assert_eq!(o["tags"], serde_json::json!(["17"]));
    assert_eq!(o["written"]["blobs_uploaded"], 6);
    assert!(archive.is_file());
    assert!(
        !dir.path().join("transfer/jre.tar.partial").exists(),
        "the staging directory is removed once the archive is written"
    );
    let stored = archive_manifest(&archive, &Selector::Tag("17".into())).await;
    assert_eq!(
        stored.bytes, set.index.bytes,
        "the index bytes travel unchanged"
    );
    let stderr = out.stderr();
    let layer = Digest::of(&set.images[0].layer);
    assert!(
        stderr.contains(&format!("blob {layer}")) && stderr.contains("copied"),
        "a progress line per blob: {stderr}"
    );

    // archive → second registry, a new name and tag
    let target = b.repo("mirror/jre:17-offline");
    let out = mirror(
        &cfg,
        &[&format!("oci-archive:{}:17", archive.display()), &target],
    );
    let o = &outcomes(&out)[0];
    assert_eq!(
        o["image"],
        format!("{}@{}", b.repo("mirror/jre"), set.index.digest)
    );
    assert_eq!(skopeo_raw(&b, &target), set.index.bytes.to_vec());
    for image in &set.images {
        let by_digest = format!("{}@{}", b.repo("mirror/jre"), image.manifest.digest);
        assert_eq!(
            skopeo_raw(&b, &by_digest),
            skopeo_raw(
                &a,
                &format!("{}@{}", a.repo("base/jre"), image.manifest.digest)
            ),
            "{} manifest differs between the registries",
            image.architecture
        );
    }

    // within one registry, blobs are mounted, not copied
    let o = &outcomes(&mirror(
        &cfg,
        &[&a.repo("base/jre:17"), &a.repo("other/jre")],
    ))[0];
    assert_eq!(o["written"]["blobs_mounted"], 6, "{o:#}");
    assert_eq!(o["written"]["blobs_uploaded"], 0, "{o:#}");
    assert_eq!(
        skopeo_raw(&a, &a.repo("other/jre:17")),
        set.index.bytes.to_vec()
    );

    // a re-run writes nothing
    let o = &outcomes(&mirror(
        &cfg,
        &[&format!("oci-archive:{}:17", archive.display()), &target],
    ))[0];
    assert_eq!(o["written"]["blobs_uploaded"], 0);
    assert_eq!(o["written"]["blobs_present"], 6);
    assert_eq!(o["written"]["tags"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_filter_keeps_two_of_three_and_a_missing_platform_writes_nothing() {
    let Setup {
        a,
        b,
        dir,
        cfg,
        set,
    } = setup(image_set(Flavor::Docker, "filter"), "app:v1").await;

    let out = mirror(
        &cfg,
        &[
            &a.repo("app:v1"),
            &b.repo("app:v1"),
            "--platform",
            "linux/arm64,linux/amd64",
        ],
    );
    let o = &outcomes(&out)[0];
    assert_eq!(o["filtered"], true);
    let raw = skopeo_raw(&b, &b.repo("app:v1"));
    assert_ne!(
        raw,
        set.index.bytes.to_vec(),
        "a filtered index is a new index"
    );
    assert_eq!(o["digest"], Digest::of(&raw).to_string());
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"], set.index.media_type,
        "the index keeps its media type"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (entry, image) in entries.iter().zip(&set.images[..2]) {
        assert_eq!(entry["digest"], image.manifest.digest.to_string());
        assert_eq!(entry["platform"]["architecture"], image.architecture);
        assert_eq!(
            skopeo_raw(&b, &format!("{}@{}", b.repo("app"), image.manifest.digest)),
            image.manifest.bytes.to_vec()
        );
    }
    let mips = &set.images[2];
    assert!(!skopeo_finds(&format!(
        "{}@{}",
        b.repo("app"),
        mips.manifest.digest
    )));
    assert!(
        !b.blob_digests()
            .contains(&Digest::of(&mips.layer).to_string())
    );

    // a platform the source lacks: exit 1, named, and nothing written anywhere
    let blobs_before = b.blob_digests();
    let archive = dir.path().join("app.tar");
    for target in [
        b.repo("other:v1"),
        format!("oci-archive:{}", archive.display()),
    ] {
        let out = mirror(
            &cfg,
            &[
                &a.repo("app:v1"),
                &target,
                "--platform",
                "linux/amd64,linux/arm/v7",
            ],
        );
        out.assert_code(1);
        let stderr = out.stderr();
        assert!(stderr.contains("has no linux/arm/v7"), "{stderr}");
        assert!(
            stderr.contains(&a.repo("app:v1")),
            "names the source: {stderr}"
        );
    }
    assert_eq!(b.blob_digests(), blobs_before, "nothing was uploaded");

    // a single-platform source copies as it is; asking it for another platform fails
    let amd64 = &set.images[0].manifest;
    let single = format!("{}@{}", a.repo("app"), amd64.digest);
    let wrong = mirror(
        &cfg,
        &[&single, &b.repo("single:arm"), "--platform", "linux/arm64"],
    );
    wrong
        .assert_code(1)
        .assert_stderr_contains("it has linux/amd64");
    let o = &outcomes(&mirror(
        &cfg,
        &[
            &single,
            &b.repo("single:amd64"),
            "--platform",
            "linux/amd64",
        ],
    ))[0];
    assert_eq!(o["digest"], amd64.digest.to_string());
    assert_eq!(
        skopeo_raw(&b, &b.repo("single:amd64")),
        amd64.bytes.to_vec()
    );
    assert!(!skopeo_finds(&b.repo("single:arm")));
    assert!(!skopeo_finds(&b.repo("other:v1")));
    assert!(!archive.exists() && !dir.path().join("app.tar.partial").exists());
}

/// Waits until `count(path)` reaches `n`, failing after a while.
fn wait_for(what: &str, n: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < n {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Blob files (not in-progress temporaries) in a layout directory.
fn layout_blobs(layout: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Starts a mirror one blob at a time, so that there is a "midway" to kill it at.
fn start_slow_mirror(config: &Path, source: &str, target: &str) -> Running {
    archgate()
        .env("ARCHGATE_NETWORK__CONCURRENCY", "1")
        .arg("--config")
        .arg(config)
        .args(["mirror", source, target])
        .spawn_quiet()
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_mirror_to_an_archive_resumes_with_what_is_missing() {
    let a = TestRegistry::start_http();
    let dir = tempdir();
    let cfg = config(dir.path(), &[&a], "");
    let set = large_image_set(Flavor::Oci, 1, 24 << 20);
    a.push_set("big:v1", &set).await;
    let archive = dir.path().join("big.tar");
    let staging = dir.path().join("big.tar.partial");
    let target = format!("oci-archive:{}", archive.display());

    let child = start_slow_mirror(&cfg, &a.repo("big:v1"), &target);
    // Killed once two blobs (a config and a layer) are in the staging directory.
    wait_for("two staged blobs", 2, || layout_blobs(&staging).len());
    assert_ne!(
        child.kill(),
        Some(0),
        "archgate was killed midway, not finished"
    );
    let arrived = layout_blobs(&staging);
    assert!(arrived.len() < 6, "interrupted before the end: {arrived:?}");
    assert!(!archive.exists(), "no archive until every blob is there");

    let o = &outcomes(&mirror(&cfg, &[&a.repo("big:v1"), &target]))[0];
    assert_eq!(o["written"]["blobs_present"], arrived.len(), "{o:#}");
    assert_eq!(o["written"]["blobs_uploaded"], 6 - arrived.len(), "{o:#}");
    assert!(archive.is_file() && !staging.exists());
    let stored = archive_manifest(&archive, &Selector::Tag("v1".into())).await;
    assert_eq!(stored.digest, set.index.digest);
    let store = LayoutStore::open_archive(&archive, false).unwrap();
    for (digest, bytes) in set.blobs() {
        let got = archgate::store::read_blob(
            &store,
            &archgate::image::Descriptor {
                media_type: "application/octet-stream".into(),
                digest,
                size: bytes.len() as u64,
                platform: None,
                annotations: Default::default(),
                urls: Vec::new(),
            },
            "blob",
        )
        .await
        .expect("every blob complete and verified");
        assert_eq!(got.len(), bytes.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_mirror_between_registries_never_tags_and_resumes() {
    let Setup {
        a,
        b,
        dir: _dir,
        cfg,
        set,
    } = setup(large_image_set(Flavor::Oci, 2, 24 << 20), "big:v1").await;
    let blob_digests: Vec<String> = set.blobs().iter().map(|(d, _)| d.to_string()).collect();
    let arrived = || {
        b.blob_digests()
            .into_iter()
            .filter(|d| blob_digests.contains(d))
            .count()
    };

    let child = start_slow_mirror(&cfg, &a.repo("big:v1"), &b.repo("big:v1"));
    wait_for("two blobs in the target registry", 2, arrived);
    assert_ne!(child.kill(), Some(0), "killed midway, not finished");
    let before = arrived();
    assert!(before < 6, "interrupted before the end");
    assert!(
        !skopeo_finds(&b.repo("big:v1")),
        "no tag on an incomplete image"
    );

    let o = &outcomes(&mirror(&cfg, &[&a.repo("big:v1"), &b.repo("big:v1")]))[0];
    assert_eq!(o["written"]["blobs_present"], before, "{o:#}");
    assert_eq!(o["written"]["blobs_uploaded"], 6 - before, "{o:#}");
    assert_eq!(skopeo_raw(&b, &b.repo("big:v1")), set.index.bytes.to_vec());
}

/// Flips one byte in the middle of blob `digest` inside the tar at `archive`.
pub(crate) fn corrupt_blob_in_archive(archive: &Path, digest: &Digest) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let name = format!("blobs/sha256/{}", digest.hex());
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let (offset, size) = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == name)
        .map(|e| (e.raw_file_position(), e.size()))
        .expect("blob in archive");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(archive)
        .unwrap();
    let at = offset + size / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_archive_blob_is_detected_and_nothing_is_tagged() {
    let Setup {
        a,
        b,
        dir,
        cfg,
        set,
    } = setup(image_set(Flavor::Oci, "corrupt"), "app:v1").await;
    let archive = dir.path().join("app.tar");
    outcomes(&mirror(
        &cfg,
        &[
            &a.repo("app:v1"),
            &format!("oci-archive:{}", archive.display()),
        ],
    ));

    let layer = Digest::of(&set.images[1].layer);
    corrupt_blob_in_archive(&archive, &layer);
    let out = mirror(
        &cfg,
        &[
            &format!("oci-archive:{}:v1", archive.display()),
            &b.repo("app:v1"),
        ],
    );
    assert_eq!(out.code(), Some(1), "a content error: {out}");
    let stderr = out.stderr();
    assert!(
        stderr.contains(&layer.to_string()),
        "names the blob: {stderr}"
    );
    assert!(stderr.contains("digest mismatch"), "says why: {stderr}");
    assert!(!skopeo_finds(&b.repo("app:v1")), "nothing tagged");
    assert!(
        !b.blob_digests().contains(&layer.to_string()),
        "the bad blob was not stored"
    );
    assert!(!skopeo_finds(&format!(
        "{}@{}",
        b.repo("app"),
        set.index.digest
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_entries_move_a_list_of_images_in_one_run() {
    let (a, b) = (TestRegistry::start_http(), TestRegistry::start_http());
    let dir = tempdir();
    let one = image_set(Flavor::Oci, "one");
    let two = image_set(Flavor::Docker, "two");
    a.push_set("base/one:1", &one).await;
    a.push_set("base/two:2", &two).await;
    let layout = dir.path().join("layout");
    let entries = format!(
        "[[mirror]]\nsource = \"{}\"\ntarget = \"{}\"\n\n\
         [[mirror]]\nsource = \"{}\"\ntarget = \"oci:{}:two\"\nplatforms = [\"linux/mips64le\"]\n",
        a.repo("base/one:1"),
        b.repo("offline/one"),
        a.repo("base/two:2"),
        layout.display()
    );
    let cfg = config(dir.path(), &[&a, &b], &entries);
    let out = archgate()
        .arg("--config")
        .arg(&cfg)
        .args(["mirror", "--json"])
        .output();
    let o = outcomes(&out);
    assert_eq!(o.len(), 2);
    assert_eq!(
        skopeo_raw(&b, &b.repo("offline/one:1")),
        one.index.bytes.to_vec()
    );
    assert_eq!(o[1]["filtered"], true);
    assert_eq!(o[1]["platforms"].as_array().unwrap().len(), 1);
    assert_eq!(
        o[1]["platforms"][0]["digest"],
        two.images[2].manifest.digest.to_string()
    );
    let store = LayoutStore::open_dir(&layout, false).unwrap();
    let index = store
        .get_manifest(&Selector::Tag("two".into()))
        .await
        .unwrap();
    assert_eq!(index.digest.to_string(), o[1]["digest"]);

    // with neither SOURCE TARGET nor entries: a usage error
    let empty = config(dir.path(), &[], "");
    let out = archgate()
        .arg("--config")
        .arg(&empty)
        .arg("mirror")
        .output();
    out.assert_code(2).assert_stderr_contains("[[mirror]]");
}
