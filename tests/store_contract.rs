//! The `Store` contract: one set of cases that every backend — a real
//! registry, an `oci:` layout directory and an `oci-archive:` tar — must pass
//! alike, each opened through `archgate::store::open` from a location string
//! as a command opens it. A case writes, then (where it matters) commits and
//! opens the location again, so what is checked is what a later run would read.
//!
//! `contract!` turns every case into one test per backend:
//! `store_contract::layout::tags_are_listed`, `store_contract::registry::…`.

use std::sync::Arc;

use archgate::config::Settings;
use archgate::image::{Digest, Location, RawManifest, Selector, media};
use archgate::store::{self, BlobPut, Store};
use archgate::{Error, ErrorKind};
use bytes::Bytes;
use tempfile::TempDir;

use crate::common::{TestRegistry, tempdir};
use crate::layout::{TestImage, blob_descriptor, blob_reader, read_blob, small_image};

/// The three kinds of place an image can live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Registry,
    Layout,
    Archive,
}

/// A store under test: the location it was opened from, and what keeps its
/// backing (a registry process, a temporary directory) alive.
struct Subject {
    backend: Backend,
    location: Location,
    settings: Settings,
    store: Arc<dyn Store>,
    registry: Option<TestRegistry>,
    dir: TempDir,
}

impl Subject {
    /// An empty store of `backend`, opened for writing.
    async fn new(backend: Backend) -> Self {
        let dir = tempdir();
        let (registry, text, settings) = match backend {
            Backend::Registry => {
                let registry = TestRegistry::start_http();
                let text = registry.repo("contract/app");
                let settings = registry.settings();
                (Some(registry), text, settings)
            }
            Backend::Layout => (
                None,
                format!("oci:{}", dir.path().join("layout").display()),
                Settings::default(),
            ),
            Backend::Archive => (
                None,
                format!("oci-archive:{}", dir.path().join("image.tar").display()),
                Settings::default(),
            ),
        };
        let location = Location::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let store = open(&location, &settings, true).await;
        Subject {
            backend,
            location,
            settings,
            store,
            registry,
            dir,
        }
    }

    /// Makes the writes durable and opens the location again, as the next
    /// command would (`write`: opened for writing).
    async fn reopen(&mut self, write: bool) {
        self.store.commit().await.expect("commit");
        self.store = open(&self.location, &self.settings, write).await;
    }

    /// Writes a one-platform image's blobs, then its manifest under `tag`.
    async fn put_image(&self, image: &TestImage, tag: Option<&str>) {
        for (desc, bytes) in image.blobs() {
            self.store
                .put_blob(&desc.digest, desc.size, blob_reader(bytes))
                .await
                .unwrap_or_else(|e| panic!("{:?}: put blob: {e}", self.backend));
        }
        self.store
            .put_manifest(&image.manifest, tag)
            .await
            .unwrap_or_else(|e| panic!("{:?}: put manifest: {e}", self.backend));
    }

    /// Flips one byte in the middle of the stored blob, where this backend
    /// keeps it (call after `commit`), keeping its length.
    fn corrupt_blob(&self, digest: &Digest) {
        match self.backend {
            Backend::Registry => {
                let storage = self.registry.as_ref().expect("registry").storage();
                let path = storage
                    .join("docker/registry/v2/blobs/sha256")
                    .join(&digest.hex()[..2])
                    .join(digest.hex())
                    .join("data");
                flip_byte_in_file(&path);
            }
            Backend::Layout => {
                let path = self
                    .dir
                    .path()
                    .join("layout/blobs/sha256")
                    .join(digest.hex());
                flip_byte_in_file(&path);
            }
            Backend::Archive => {
                crate::mirror::corrupt_blob_in_archive(&self.dir.path().join("image.tar"), digest)
            }
        }
    }
}

/// Opens `location` through the one entry point the commands use.
async fn open(location: &Location, settings: &Settings, write: bool) -> Arc<dyn Store> {
    let store = store::open(location, settings, write)
        .await
        .unwrap_or_else(|e| panic!("open {location:?}: {e}"));
    Arc::from(store)
}

/// XORs the middle byte of `path` (a small test blob) with 0xff.
fn flip_byte_in_file(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

fn tag(t: &str) -> Selector {
    Selector::Tag(t.into())
}

// ---------------------------------------------------------------------------
// The cases

/// A manifest written in an unusual but valid shape (spacing, key order, an
/// unknown field) comes back byte for byte, by tag and by digest, and its
/// digest is the sha256 of those bytes.
async fn manifests_keep_their_exact_bytes(backend: Backend) {
    let mut s = Subject::new(backend).await;
    let image = small_image("linux", "arm64");
    for (desc, bytes) in image.blobs() {
        s.store
            .put_blob(&desc.digest, desc.size, blob_reader(bytes))
            .await
            .unwrap();
    }
    let config = blob_descriptor(media::OCI_CONFIG, &image.config);
    let layer = blob_descriptor(media::OCI_LAYER_TAR, &image.layer);
    let odd = format!(
        "{{\n  \"schemaVersion\" : 2,\n\t\"mediaType\":\"{}\",\n  \"layers\": [ {} ],\n  \"config\":{},\n  \"x-archgate-unknown\": {{\"z\": 1, \"a\": [true]}}\n}}\n",
        media::OCI_MANIFEST,
        serde_json::to_string(&layer).unwrap(),
        serde_json::to_string(&config).unwrap(),
    );
    let manifest = RawManifest::from_bytes(Bytes::from(odd.clone()), None, "odd manifest").unwrap();
    assert_eq!(manifest.digest, Digest::of(odd.as_bytes()));
    s.store.put_manifest(&manifest, Some("v1")).await.unwrap();
    s.reopen(false).await;

    let by_tag = s.store.get_manifest(&tag("v1")).await.unwrap();
    let by_digest = s
        .store
        .get_manifest(&Selector::Digest(manifest.digest.clone()))
        .await
        .unwrap();
    for got in [&by_tag, &by_digest] {
        assert_eq!(got.bytes, odd.as_bytes(), "{backend:?}: bytes changed");
        assert_eq!(got.digest, manifest.digest, "{backend:?}");
        assert_eq!(got.media_type, media::OCI_MANIFEST, "{backend:?}");
    }
    let desc = s.store.resolve(&tag("v1")).await.unwrap();
    assert_eq!(desc.digest, manifest.digest, "{backend:?}");
    assert_eq!(desc.size, odd.len() as u64, "{backend:?}");
}

/// A stored blob whose bytes no longer match its digest fails when read, and
/// the error names the digest; the intact blob beside it still reads.
async fn blob_reads_are_digest_checked(backend: Backend) {
    let mut s = Subject::new(backend).await;
    let image = small_image("linux", "amd64");
    s.put_image(&image, Some("v1")).await;
    s.reopen(false).await;
    let [(config, config_bytes), (layer, _)] = image.blobs();
    s.corrupt_blob(&layer.digest);
    // The archive is read from its tar: open it again to see the damage.
    s.reopen(false).await;

    // Still there, so what fails below is its content, not its presence.
    assert!(
        s.store.blob_exists(&layer.digest).await.unwrap(),
        "{backend:?}"
    );
    let err = read_blob(&*s.store, &layer)
        .await
        .expect_err("a corrupted blob must not read cleanly");
    assert!(
        err.contains(layer.digest.as_str()),
        "{backend:?}: the error names the blob: {err}"
    );
    let intact = read_blob(&*s.store, &config)
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
    assert_eq!(intact, config_bytes);
}

/// A blob that was never written is `NotFound`, for existence and for reading.
async fn a_missing_blob_is_not_found(backend: Backend) {
    let s = Subject::new(backend).await;
    s.put_image(&small_image("linux", "amd64"), Some("v1"))
        .await;
    let absent = Digest::of(b"never written");
    assert!(!s.store.blob_exists(&absent).await.unwrap(), "{backend:?}");
    let err = s
        .store
        .get_blob(&absent, None)
        .await
        .err()
        .expect("reading an absent blob fails");
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{backend:?}: want NotFound, got {err}"
    );
}

/// A put whose bytes do not hash to the stated digest fails and leaves
/// nothing: the digest is absent before and after reopening, and the right
/// bytes then go in (once: a second put finds them present).
async fn a_mismatching_put_leaves_nothing(backend: Backend) {
    let mut s = Subject::new(backend).await;
    let wanted = Digest::of(b"right");
    let err = s
        .store
        .put_blob(&wanted, 5, blob_reader(Bytes::from_static(b"wrong")))
        .await
        .expect_err("a mismatching put must fail");
    assert_eq!(err.kind(), ErrorKind::Content, "{backend:?}: {err}");
    assert!(!s.store.blob_exists(&wanted).await.unwrap(), "{backend:?}");
    s.reopen(true).await;
    assert!(
        !s.store.blob_exists(&wanted).await.unwrap(),
        "{backend:?}: a failed put left the blob behind"
    );
    let put = s
        .store
        .put_blob(&wanted, 5, blob_reader(Bytes::from_static(b"right")))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Written, "{backend:?}");
    let again = s
        .store
        .put_blob(&wanted, 5, blob_reader(Bytes::from_static(b"right")))
        .await
        .unwrap();
    assert_eq!(again, BlobPut::Present, "{backend:?}");
    let desc = blob_descriptor(media::OCI_LAYER_TAR, b"right");
    assert_eq!(read_blob(&*s.store, &desc).await.unwrap(), b"right");
}

/// Every tag written is listed (after reopening), and each resolves to what was tagged.
async fn tags_are_listed(backend: Backend) {
    let mut s = Subject::new(backend).await;
    let amd64 = small_image("linux", "amd64");
    let arm64 = small_image("linux", "arm64");
    s.put_image(&amd64, Some("v1")).await;
    s.put_image(&arm64, Some("v2")).await;
    s.store
        .put_manifest(&arm64.manifest, Some("latest"))
        .await
        .unwrap();
    s.reopen(false).await;
    let mut tags = s.store.tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2"], "{backend:?}");
    for (t, want) in [("v1", &amd64), ("v2", &arm64), ("latest", &arm64)] {
        let got = s.store.resolve(&tag(t)).await.unwrap();
        assert_eq!(got.digest, want.manifest.digest, "{backend:?}: {t}");
    }
}

/// Resolving a tag that does not exist is `NotFound` (and `probe` and `find_manifest` say `None`),
/// in a store that holds other tags.
async fn resolving_a_missing_tag_is_not_found(backend: Backend) {
    let s = Subject::new(backend).await;
    s.put_image(&small_image("linux", "amd64"), Some("v1"))
        .await;
    let err = s.store.resolve(&tag("v9")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "{backend:?}: want NotFound, got {err}"
    );
    assert!(err.to_string().contains("v9"), "{backend:?}: {err}");
    assert_eq!(
        s.store.probe(&tag("v9")).await.unwrap(),
        None,
        "{backend:?}"
    );
    assert!(
        s.store.get_manifest(&tag("v9")).await.is_err(),
        "{backend:?}"
    );
    assert!(
        s.store.find_manifest(&tag("v9")).await.unwrap().is_none(),
        "{backend:?}"
    );
    let found = s.store.find_manifest(&tag("v1")).await.unwrap();
    assert_eq!(
        found.map(|m| m.digest),
        s.store.probe(&tag("v1")).await.unwrap(),
        "{backend:?}"
    );
}

/// Two tasks tagging two different manifests with one tag at the same time:
/// the tag ends on one of the two (whole), and both stay readable by digest.
async fn concurrent_tags_end_on_one_of_the_two(backend: Backend) {
    let mut s = Subject::new(backend).await;
    let a = small_image("linux", "amd64");
    let b = small_image("linux", "arm64");
    s.put_image(&a, None).await;
    s.put_image(&b, None).await;
    for round in 0..5 {
        let t = format!("race-{round}");
        let tasks: Vec<_> = [a.manifest.clone(), b.manifest.clone()]
            .into_iter()
            .map(|manifest| {
                let store = Arc::clone(&s.store);
                let t = t.clone();
                tokio::spawn(async move { store.put_manifest(&manifest, Some(&t)).await })
            })
            .collect();
        for task in tasks {
            task.await
                .expect("task")
                .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        }
    }
    s.reopen(false).await;
    for round in 0..5 {
        let got = s
            .store
            .get_manifest(&tag(&format!("race-{round}")))
            .await
            .unwrap();
        assert!(
            got.bytes == a.manifest.bytes || got.bytes == b.manifest.bytes,
            "{backend:?} round {round}: the tag holds neither manifest"
        );
    }
    for m in [&a.manifest, &b.manifest] {
        let got = s
            .store
            .get_manifest(&Selector::Digest(m.digest.clone()))
            .await
            .unwrap();
        assert_eq!(got.bytes, m.bytes, "{backend:?}");
    }
}

/// One `#[tokio::test]` per case and backend, in a module per backend.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod registry {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Registry).await
                }
            )*
        }
        mod layout {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Layout).await
                }
            )*
        }
        mod archive {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Archive).await
                }
            )*
        }
    };
}

contract!(
    manifests_keep_their_exact_bytes,
    blob_reads_are_digest_checked,
    a_missing_blob_is_not_found,
    a_mismatching_put_leaves_nothing,
    tags_are_listed,
    resolving_a_missing_tag_is_not_found,
    concurrent_tags_end_on_one_of_the_two,
);
