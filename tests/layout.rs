//! Integration tests: the OCI image layout store (directory and tar archive).
//! skopeo reads what archgate writes and archgate reads what skopeo writes; no mocks.
//!
//! The image helpers (`small_image`, `multi_arch_image`, `write_multi_arch`,
//! `read_complete`) build small real images in memory for other test modules too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use archgate::image::media;
use archgate::image::{Descriptor, Digest, RawManifest, Selector};
use archgate::store::layout::LayoutStore;
use archgate::store::{BlobPut, BlobReader, Store};
use archgate::{Error, ErrorKind};
use bytes::Bytes;
use serde_json::json;
use tokio::io::AsyncReadExt;

// ---------------------------------------------------------------------------
// Images in memory

/// A one-layer image for one platform, in memory.
pub(crate) struct TestImage {
    pub(crate) config: Bytes,
    pub(crate) layer: Bytes,
    pub(crate) manifest: RawManifest,
}

impl TestImage {
    /// The descriptors of the config and the layer.
    pub(crate) fn blobs(&self) -> [(Descriptor, Bytes); 2] {
        [
            (
                blob_descriptor(media::OCI_CONFIG, &self.config),
                self.config.clone(),
            ),
            (
                blob_descriptor(media::OCI_LAYER_TAR, &self.layer),
                self.layer.clone(),
            ),
        ]
    }
}

/// Several platform images and the OCI index over them.
pub(crate) struct TestMultiArch {
    pub(crate) images: Vec<TestImage>,
    pub(crate) index: RawManifest,
}

/// A descriptor for bytes of a media type.
pub(crate) fn blob_descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        urls: Vec::new(),
    }
}

/// An uncompressed layer tar holding `files` (path, content), reproducibly.
pub(crate) fn layer_tar(files: &[(&str, &[u8])]) -> Bytes {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, path, *content).unwrap();
    }
    Bytes::from(tar.into_inner().unwrap())
}

/// A small OCI image for `os/architecture`: a config naming the platform and
/// one uncompressed layer with a file saying which platform it is.
pub(crate) fn small_image(os: &str, architecture: &str) -> TestImage {
    let layer = layer_tar(&[(
        "etc/archgate-platform",
        format!("{os}/{architecture}\n").as_bytes(),
    )]);
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": os,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer)]},
        }))
        .unwrap(),
    );
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": blob_descriptor(media::OCI_CONFIG, &config),
        "layers": [blob_descriptor(media::OCI_LAYER_TAR, &layer)],
    }))
    .unwrap();
    let manifest = RawManifest::from_bytes(manifest.into(), None, "test manifest").unwrap();
    TestImage {
        config,
        layer,
        manifest,
    }
}

/// An OCI index over one small image per `(os, architecture)`.
pub(crate) fn multi_arch_image(platforms: &[(&str, &str)]) -> TestMultiArch {
    let images: Vec<TestImage> = platforms
        .iter()
        .map(|(os, arch)| small_image(os, arch))
        .collect();
    let entries: Vec<_> = images
        .iter()
        .zip(platforms)
        .map(|(image, (os, arch))| {
            let mut desc = image.manifest.descriptor();
            desc.platform = Some(archgate::image::PlatformSpec {
                architecture: arch.to_string(),
                os: os.to_string(),
                ..Default::default()
            });
            desc
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap();
    TestMultiArch {
        images,
        index: RawManifest::from_bytes(index.into(), None, "test index").unwrap(),
    }
}

/// linux/amd64, linux/arm64 and linux/mips64le.
pub(crate) fn three_platforms() -> TestMultiArch {
    multi_arch_image(&[
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("linux", "mips64le"),
    ])
}

/// A blob stream over bytes in memory.
pub(crate) fn blob_reader(bytes: Bytes) -> BlobReader {
    Box::pin(std::io::Cursor::new(bytes))
}

/// Writes blobs, then platform manifests untagged, then the index (tagged when `tag` is given).
pub(crate) async fn write_multi_arch(store: &dyn Store, image: &TestMultiArch, tag: Option<&str>) {
    for platform in &image.images {
        for (desc, bytes) in platform.blobs() {
            store
                .put_blob(&desc.digest, desc.size, blob_reader(bytes))
                .await
                .unwrap();
        }
        store.put_manifest(&platform.manifest, None).await.unwrap();
    }
    store.put_manifest(&image.index, tag).await.unwrap();
}

/// A blob read to its end through the store's verifying reader.
pub(crate) async fn read_blob(store: &dyn Store, desc: &Descriptor) -> Result<Vec<u8>, String> {
    let mut reader = store
        .get_blob(&desc.digest, Some(desc.size))
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Reads the index at `selector` and everything below it (manifests, configs,
/// layers), each verified against its digest; returns the index.
pub(crate) async fn read_complete(store: &dyn Store, selector: &Selector) -> RawManifest {
    let index = store.get_manifest(selector).await.unwrap();
    assert_eq!(index.media_type, media::OCI_INDEX);
    for entry in index.index("test index").unwrap().manifests {
        let manifest = store
            .get_manifest(&Selector::Digest(entry.digest.clone()))
            .await
            .unwrap();
        assert_eq!(manifest.media_type, media::OCI_MANIFEST);
        let parsed = manifest.image("test manifest").unwrap();
        let config = read_blob(store, &parsed.config).await.unwrap();
        let config = archgate::image::ImageConfig::parse(&config, "test config").unwrap();
        let platform = entry.platform.expect("index entries carry platforms");
        assert_eq!(config.architecture, platform.architecture);
        for layer in &parsed.layers {
            read_blob(store, layer).await.unwrap();
        }
    }
    index
}

// ---------------------------------------------------------------------------
// skopeo

/// Fails the test unless `program --version` runs: the interop tests need
/// the real tool, which scripts/setup.sh installs; a test that returned early
/// without it would pass having checked nothing.
fn require(program: &str, package: &str) {
    let why = match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    panic!("{program} cannot run ({why}): run scripts/setup.sh (or apt-get install -y {package})");
}

/// Runs skopeo (with no signature policy file needed) and requires success.
/// `skopeo ARGS`, which must succeed.
pub(crate) fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn oci(dir: &Path, suffix: &str) -> String {
    format!("oci:{}{suffix}", dir.display())
}

fn oci_archive(file: &Path, suffix: &str) -> String {
    format!("oci-archive:{}{suffix}", file.display())
}

fn tag(t: &str) -> Selector {
    Selector::Tag(t.into())
}

fn blob_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// Directories

#[tokio::test]
async fn skopeo_reads_and_copies_a_three_platform_layout_we_wrote() {
    require("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (dir, dir2) = (tmp.path().join("out"), tmp.path().join("copy"));
    let image = three_platforms();
    let store = LayoutStore::open_dir(&dir, true).unwrap();
    assert_eq!(store.name(), oci(&dir, ""));
    write_multi_arch(&store, &image, Some("v1")).await;
    assert_eq!(store.tags().await.unwrap(), ["v1"]);
    assert_eq!(
        std::fs::read(dir.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // Untagged platform manifests live in blobs only: index.json lists what was tagged.
    let index_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index_json["manifests"].as_array().unwrap().len(), 1);

    let raw = skopeo(&["inspect", "--raw", &oci(&dir, ":v1")]);
    assert_eq!(
        raw.stdout, image.index.bytes,
        "skopeo sees other index bytes"
    );

    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &oci(&dir, ":v1"),
        &oci(&dir2, ":v2"),
    ]);
    let copy = LayoutStore::open_dir(&dir2, false).unwrap();
    assert_eq!(copy.tags().await.unwrap(), ["v2"]);
    let resolved = copy.resolve(&tag("v2")).await.unwrap();
    assert_eq!(resolved.digest, image.index.digest);
    let index = read_complete(&copy, &tag("v2")).await;
    assert_eq!(index.bytes, image.index.bytes);
    assert_eq!(blob_files(&dir2), blob_files(&dir));
}

#[tokio::test]
async fn we_read_layouts_skopeo_wrote_tagged_and_untagged() {
    require("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let image = three_platforms();
    write_multi_arch(
        &LayoutStore::open_dir(&src, true).unwrap(),
        &image,
        Some("v1"),
    )
    .await;

    // `oci:DIR` without a tag: skopeo writes one untagged index.json entry. A
    // plain copy gzips our uncompressed layers (new manifests, new index), so
    // what we read is compared with what skopeo itself reports.
    let untagged = tmp.path().join("untagged");
    skopeo(&["copy", "--all", &oci(&src, ":v1"), &oci(&untagged, "")]);
    let theirs = skopeo(&["inspect", "--raw", &oci(&untagged, "")]).stdout;
    let store = LayoutStore::open_dir(&untagged, false).unwrap();
    let selector = store.default_selector().await.unwrap();
    assert_eq!(selector, Selector::Digest(Digest::of(&theirs)));
    // The trait method answers the same (callers hold a `dyn Store`).
    let dyn_store: &dyn Store = &store;
    assert_eq!(dyn_store.default_selector().await.unwrap(), selector);
    assert_eq!(
        store.resolve(&selector).await.unwrap().size,
        theirs.len() as u64
    );
    let index = read_complete(&store, &selector).await;
    assert_eq!(index.bytes, theirs);
    assert!(store.tags().await.unwrap().is_empty());

    // A platform manifest is found by digest though index.json does not list it.
    let amd64 = index.index("skopeo's index").unwrap().manifests[0].clone();
    let by_digest = store
        .get_manifest(&Selector::Digest(amd64.digest.clone()))
        .await
        .unwrap();
    // skopeo 1.9 has no `oci:DIR@DIGEST`: compare with the file it wrote.
    let written = std::fs::read(untagged.join("blobs/sha256").join(amd64.digest.hex())).unwrap();
    assert_eq!(by_digest.bytes, written);
    assert_eq!(by_digest.media_type, media::OCI_MANIFEST);
    // A layer is a blob but not a manifest.
    let layer = by_digest.image("skopeo's manifest").unwrap().layers[0].clone();
    assert_eq!(
        layer.media_type,
        media::OCI_LAYER_GZIP,
        "skopeo recompressed"
    );
    let err = store
        .resolve(&Selector::Digest(layer.digest))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Content, "{err}");

    // Tagged, twice into one layout: both tags resolve, default_selector asks to choose.
    let tagged = tmp.path().join("tagged");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &oci(&src, ":v1"),
        &oci(&tagged, ":v7"),
    ]);
    let other = multi_arch_image(&[("linux", "amd64")]);
    let other_dir = tmp.path().join("other");
    write_multi_arch(
        &LayoutStore::open_dir(&other_dir, true).unwrap(),
        &other,
        Some("x"),
    )
    .await;
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &oci(&other_dir, ":x"),
        &oci(&tagged, ":v8"),
    ]);
    let store = LayoutStore::open_dir(&tagged, false).unwrap();
    let mut tags = store.tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v7", "v8"]);
    assert_eq!(
        store.resolve(&tag("v7")).await.unwrap().digest,
        image.index.digest
    );
    let m = store.get_manifest(&tag("v8")).await.unwrap();
    assert_eq!(
        (m.bytes, m.media_type.as_str()),
        (other.index.bytes.clone(), media::OCI_INDEX)
    );
    let err = store.default_selector().await.unwrap_err().to_string();
    assert!(err.contains(":v7") && err.contains(":v8"), "{err}");
}

// Several worker threads: tasks really run in parallel (and opening an archive
// takes the `block_in_place` path).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_written_concurrently_all_land_and_reopen_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let store = Arc::new(LayoutStore::open_dir(&dir, true).unwrap());
    let image = three_platforms();
    write_multi_arch(store.as_ref(), &image, None).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, index) = (store.clone(), image.index.clone());
            tokio::spawn(async move { store.put_manifest(&index, Some(&format!("t{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.tags().await.unwrap().len(), 16);
    // Re-tagging moves only that tag; other tags keep their entries.
    let other = small_image("linux", "arm64");
    for (desc, bytes) in other.blobs() {
        store
            .put_blob(&desc.digest, desc.size, blob_reader(bytes))
            .await
            .unwrap();
    }
    store
        .put_manifest(&other.manifest, Some("t3"))
        .await
        .unwrap();
    let reopened = LayoutStore::open_dir(&dir, true).unwrap();
    assert_eq!(reopened.tags().await.unwrap().len(), 16);
    assert_eq!(
        reopened.resolve(&tag("t3")).await.unwrap().media_type,
        media::OCI_MANIFEST
    );
    assert_eq!(
        reopened.resolve(&tag("t4")).await.unwrap().digest,
        image.index.digest
    );
    // A present blob is not read again.
    let desc = &other.blobs()[1].0;
    let put = reopened
        .put_blob(
            &desc.digest,
            desc.size,
            blob_reader(Bytes::from_static(b"unread")),
        )
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Present);
}

// ---------------------------------------------------------------------------
// Archives

// Several worker threads: tasks really run in parallel (and opening an archive
// takes the `block_in_place` path).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archive_round_trip_is_readable_by_skopeo_and_reproducible() {
    require("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (file, file2) = (tmp.path().join("app.tar"), tmp.path().join("again.tar"));
    let image = three_platforms();
    for path in [&file, &file2] {
        let store = LayoutStore::open_archive(path, true).unwrap();
        assert_eq!(store.name(), oci_archive(path, ""));
        write_multi_arch(&store, &image, Some("v1")).await;
        store.commit().await.unwrap();
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&file2).unwrap(),
        "the same content must give the same archive bytes"
    );
    // Nothing left behind beside the archives (no PATH.tmp-*).
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["again.tar", "app.tar"]);

    // oci-layout first, then index.json, then blobs; fixed owners and times.
    let mut archive = tar::Archive::new(std::fs::File::open(&file).unwrap());
    let entries: Vec<(String, u64, u32)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            let path = e.path().unwrap().display().to_string();
            (path, h.mtime().unwrap(), h.mode().unwrap())
        })
        .collect();
    assert_eq!(entries[0], ("oci-layout".to_string(), 0, 0o644));
    assert_eq!(entries[1].0, "index.json");
    assert_eq!(entries[2], ("blobs/".to_string(), 0, 0o755));
    assert_eq!(entries.len(), 2 + 2 + 3 * 3 + 1, "{entries:?}");

    let raw = skopeo(&["inspect", "--raw", &oci_archive(&file, ":v1")]);
    assert_eq!(raw.stdout, image.index.bytes);

    let store = LayoutStore::open_archive(&file, false).unwrap();
    assert_eq!(
        read_complete(&store, &tag("v1")).await.digest,
        image.index.digest
    );

    // Writing to an existing archive starts from its content: v1 stays.
    let store = LayoutStore::open_archive(&file, true).unwrap();
    store.put_manifest(&image.index, Some("v2")).await.unwrap();
    store.commit().await.unwrap();
    drop(store);
    for t in [":v1", ":v2"] {
        let raw = skopeo(&["inspect", "--raw", &oci_archive(&file, t)]);
        assert_eq!(raw.stdout, image.index.bytes, "{t}");
    }

    // An archive skopeo wrote (from ours) reads back.
    let theirs = tmp.path().join("theirs.tar");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &oci_archive(&file, ":v2"),
        &oci_archive(&theirs, ":v3"),
    ]);
    let store = LayoutStore::open_archive(&theirs, false).unwrap();
    assert_eq!(store.tags().await.unwrap(), ["v3"]);
    assert_eq!(
        read_complete(&store, &tag("v3")).await.bytes,
        image.index.bytes
    );
}

#[tokio::test]
async fn missing_archive_and_directory_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.tar");
    let err = LayoutStore::open_archive(&missing, false).err().unwrap();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("missing.tar"), "{err}");

    let err = LayoutStore::open_dir(tmp.path(), false).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains(&tmp.path().display().to_string())
            && msg.contains("is not an OCI image layout (no oci-layout file)"),
        "{msg}"
    );

    std::fs::write(&missing, b"not a tar at all, just text that is long enough").unwrap();
    let err = LayoutStore::open_archive(&missing, true).err().unwrap();
    assert!(err.to_string().contains("missing.tar"), "{err}");
    // A file that is not an archive is never overwritten.
    assert!(std::fs::read(&missing).unwrap().starts_with(b"not a tar"));
}

// ---------------------------------------------------------------------------
// Damage and hostile input

#[tokio::test]
async fn corrupted_blobs_wrong_uploads_and_missing_tags_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let store = LayoutStore::open_dir(&dir, true).unwrap();
    let image = three_platforms();
    write_multi_arch(&store, &image, Some("v1")).await;
    store
        .put_manifest(&image.index, Some("latest"))
        .await
        .unwrap();

    // A flipped byte in a layer: the verifying reader fails at the end, naming the digest.
    let layer = image.images[0].blobs()[1].0.clone();
    let path = dir.join("blobs/sha256").join(layer.digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[600] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = read_blob(&store, &layer).await.unwrap_err();
    assert!(
        err.contains("digest mismatch") && err.contains(layer.digest.as_str()),
        "{err}"
    );

    // A flipped byte in a manifest: get_manifest refuses it.
    let manifest = &image.images[2].manifest;
    let path = dir.join("blobs/sha256").join(manifest.digest.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = store
        .get_manifest(&Selector::Digest(manifest.digest.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(manifest.digest.as_str()), "{err}");

    // Wrong bytes for a digest: an error naming store and digest, and no file left behind.
    let before = blob_files(&dir);
    let wanted = Digest::of(b"right");
    let err = store
        .put_blob(&wanted, 5, blob_reader(Bytes::from_static(b"wrong")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(wanted.as_str()) && msg.contains(&store.name()),
        "{msg}"
    );
    assert!(!store.blob_exists(&wanted).await.unwrap());
    // Longer than declared: stopped early, nothing left either.
    let err = store
        .put_blob(
            &wanted,
            5,
            blob_reader(Bytes::from_static(b"right and more")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Content, "{err}");
    assert_eq!(blob_files(&dir), before, "a failed put_blob left a file");
    // The right bytes go in.
    let put = store
        .put_blob(&wanted, 5, blob_reader(Bytes::from_static(b"right")))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Written);

    // A missing tag: the error lists the tags that exist.
    let err = store.resolve(&tag("v2")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("`v2`") && msg.contains("latest, v1"), "{msg}");
    let err = store
        .get_blob(&Digest::of(b"absent"), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // A store opened for reading refuses writes instead of losing them.
    let reader = LayoutStore::open_dir(&dir, false).unwrap();
    assert!(reader.put_manifest(&image.index, Some("x")).await.is_err());
}

/// A tar whose last entry has the raw name `name` (written byte for byte,
/// because the tar crate refuses to create such names itself).
fn hostile_archive(path: &Path, name: &str, kind: tar::EntryType) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (file, content) in [
        ("oci-layout", &br#"{"imageLayoutVersion":"1.0.0"}"#[..]),
        ("index.json", &br#"{"schemaVersion":2,"manifests":[]}"#[..]),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, file, content).unwrap();
    }
    let content = b"owned";
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_size(0);
        header.set_link_name("/etc/passwd").unwrap();
        header.set_cksum();
        tar.append(&header, &[][..]).unwrap();
    } else {
        header.set_size(content.len() as u64);
        header.set_cksum();
        tar.append(&header, &content[..]).unwrap();
    }
    tar.finish().unwrap();
}

#[tokio::test]
async fn hostile_archives_are_refused_and_write_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let unique = format!(
        "archgate-evil-{}",
        tmp.path().file_name().unwrap().to_string_lossy()
    );
    let hex = "0".repeat(64);
    let cases: Vec<(String, tar::EntryType, &str)> = vec![
        (format!("../{unique}"), tar::EntryType::Regular, ".."),
        (
            format!("blobs/../../{unique}"),
            tar::EntryType::Regular,
            "..",
        ),
        (
            format!("{}/{unique}", tmp.path().display()),
            tar::EntryType::Regular,
            "absolute",
        ),
        (
            format!("blobs/sha256/{hex}"),
            tar::EntryType::Symlink,
            "symbolic link",
        ),
        ("etc/passwd".into(), tar::EntryType::Regular, "belong"),
    ];
    for (name, kind, why) in &cases {
        let archive: PathBuf = tmp.path().join("hostile.tar");
        hostile_archive(&archive, name, *kind);
        for create in [false, true] {
            let err = LayoutStore::open_archive(&archive, create).err().unwrap();
            let msg = err.to_string();
            assert!(
                msg.contains(why) && msg.contains("hostile.tar") && msg.contains(name.as_str()),
                "{name}: {msg}"
            );
            assert_eq!(err.kind(), ErrorKind::Content);
        }
        for outside in [
            std::env::temp_dir().join(&unique),
            tmp.path().join(&unique),
            tmp.path().parent().unwrap().join(&unique),
        ] {
            assert!(!outside.exists(), "{name} wrote {}", outside.display());
        }
    }
    // The control: the same builder with a plain name opens fine.
    let archive = tmp.path().join("fine.tar");
    hostile_archive(
        &archive,
        &format!("blobs/sha256/{hex}"),
        tar::EntryType::Regular,
    );
    let store = LayoutStore::open_archive(&archive, false).unwrap();
    assert!(store.tags().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// umoci

fn umoci(args: &[&str]) -> Output {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn umoci_unpacks_what_we_write_and_we_read_what_umoci_writes() {
    require("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    // umoci 0.4 selects no platform (a tag on an index is "ambiguous" to it):
    // tag one platform's manifest directly.
    let dir = tmp.path().join("ours");
    let store = LayoutStore::open_dir(&dir, true).unwrap();
    let image = small_image("linux", "arm64");
    for (desc, bytes) in image.blobs() {
        store
            .put_blob(&desc.digest, desc.size, blob_reader(bytes))
            .await
            .unwrap();
    }
    store
        .put_manifest(&image.manifest, Some("arm64"))
        .await
        .unwrap();
    let listed = umoci(&["ls", "--layout", &dir.display().to_string()]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "arm64");
    let bundle = tmp.path().join("bundle");
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:arm64", dir.display()),
        &bundle.display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/archgate-platform")).unwrap(),
        "linux/arm64\n"
    );

    // umoci's own layout: a new image, then a config change (a second manifest).
    let theirs = tmp.path().join("theirs");
    let layout = theirs.display().to_string();
    umoci(&["init", "--layout", &layout]);
    umoci(&["new", "--image", &format!("{layout}:base")]);
    umoci(&[
        "config",
        "--image",
        &format!("{layout}:base"),
        "--tag",
        "configured",
        "--config.env",
        "JAVA_HOME=/opt/java",
    ]);
    let store = LayoutStore::open_dir(&theirs, false).unwrap();
    let mut tags = store.tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, ["base", "configured"]);
    let manifest = store.get_manifest(&tag("configured")).await.unwrap();
    assert_eq!(manifest.media_type, media::OCI_MANIFEST);
    let parsed = manifest.image("umoci's manifest").unwrap();
    let config = read_blob(&store, &parsed.config).await.unwrap();
    let config = archgate::image::ImageConfig::parse(&config, "umoci's config").unwrap();
    let env = config.config.and_then(|c| c.env).unwrap_or_default();
    assert!(env.iter().any(|e| e == "JAVA_HOME=/opt/java"), "{env:?}");
    for layer in &parsed.layers {
        read_blob(&store, layer).await.unwrap();
    }
}

/// Hole 5: an `oci-archive:` that is not a tar is the user's input (exit 2),
/// named with what it is; none of its bytes reach the terminal.
#[test]
fn regression_hole_5_an_archive_that_is_not_a_tar_is_a_usage_error_without_raw_bytes() {
    let dir = crate::common::tempdir();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "program.tar",
            [
                &b"\x7fELF\x02\x01\x01\0"[..],
                &[0xff, 0x1b, b'[', b'2', b'J'],
                &[0u8; 600],
            ]
            .concat(),
            "ELF executable",
        ),
        (
            "image.tar.gz",
            [&[0x1f, 0x8b, 8, 0][..], &[0x9c; 600]].concat(),
            "gunzip",
        ),
        (
            "junk.tar",
            [&[0x1b, b'[', b'3', b'1', b'm'][..], &[0xe9; 600]].concat(),
            "not a tar header",
        ),
    ];
    for (name, bytes, what) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        let out = crate::common::archgate()
            .args(["inspect", &format!("oci-archive:{}", file.display())])
            .output();
        assert_eq!(out.code(), Some(2), "{name}: {out}");
        let err = out.stderr();
        assert!(
            err.contains(&format!(
                "oci-archive:{}: not a tar archive",
                file.display()
            )) && err.contains(what),
            "{name}: {err}"
        );
        assert!(
            err.chars()
                .all(|c| c == '\n' || (' '..='~').contains(&c) || c == '…'),
            "{name}: raw bytes on stderr: {err:?}"
        );
    }
}
