//! The OCI image layout store: a directory (`oci:PATH`) or a tar archive of one
//! (`oci-archive:PATH`), as the OCI image-layout spec (1.0/1.1) defines it and
//! skopeo and umoci read and write it.
//!
//! A layout is an `oci-layout` file (`{"imageLayoutVersion":"1.0.0"}`), an
//! `index.json` (an OCI index; tagged entries carry
//! `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>`. Manifests
//! written without a tag live only in `blobs/` (an index's platform manifests
//! are reached through the index), so `index.json` lists exactly what was tagged.
//!
//! Every file is written to a temporary file inside the layout and renamed into
//! place: a reader never sees half a blob and a crash never leaves wrong bytes
//! under a digest. An archive is extracted into a private temporary directory
//! on open (refusing anything but the plain files and directories of a layout,
//! because archives come from elsewhere) and written back by `commit`, atomically
//! and byte-for-byte reproducibly. A resumable write (`archgate mirror`) stages the
//! layout in `FILE.partial/` next to the archive instead, which an interrupted run
//! leaves behind for the next one; `commit` writes the archive and removes it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use super::{BlobPut, BlobReader, Store};
use crate::error::{Error, Result};
use crate::image::digest::{Hasher, VerifyingReader};
use crate::image::manifest::{CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION, sniff_media_type};
use crate::image::media;
use crate::image::{Descriptor, Digest, RawManifest, Selector};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const BLOBS_DIR: &str = "blobs";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest manifest read; registries and skopeo refuse larger ones too, and a
/// digest lookup must not slurp a layer while checking whether it is a manifest.
const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Read and write chunk for blobs: large enough to keep blocking-pool round
/// trips rare, small enough to keep memory flat.
const CHUNK: usize = 256 << 10;
/// Prefix of in-progress files; never a blob name, so readers and `commit` skip them.
const TEMP_PREFIX: &str = ".archgate-tmp-";

/// An OCI image layout on disk: a directory, or a tar archive extracted to a private directory.
pub struct LayoutStore {
    /// The directory holding the layout (the private extraction directory for an archive).
    root: PathBuf,
    archive: Option<Archive>,
    /// Opened for writing; writes to a store opened for reading are refused
    /// (for an archive they would otherwise be lost silently).
    writable: bool,
    /// Serialises read-modify-write of `index.json` (and `commit` of an archive).
    index_lock: Mutex<()>,
}

/// The tar file behind an archive store.
struct Archive {
    path: PathBuf,
    /// Owns the extracted layout; removed with the store (`None` when staged).
    _dir: Option<tempfile::TempDir>,
    /// The staging directory of a resumable write (`FILE.partial`): kept when
    /// the store is dropped without `commit`, so a re-run resumes from it.
    staging: Option<PathBuf>,
}

// The store is shared by reference between tasks.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LayoutStore>();
};

impl LayoutStore {
    /// Opens the layout directory at `path`; `create` makes the directory and its files when absent.
    pub fn open_dir(path: &Path, create: bool) -> Result<Self> {
        let store = LayoutStore {
            root: path.to_path_buf(),
            archive: None,
            writable: create,
            index_lock: Mutex::new(()),
        };
        store.prepare(create)?;
        Ok(store)
    }

    /// Opens the tar archive of a layout at `path`; `create` starts an empty one
    /// when absent (an existing one is kept and added to). `commit` writes it.
    pub fn open_archive(path: &Path, create: bool) -> Result<Self> {
        let exists = archive_exists(path)?;
        if !exists && !create {
            return Err(Error::NotFound {
                what: format!("OCI archive `{}`", path.display()),
                hint: Some("check the path, or write an image to it first".into()),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("archgate-oci-archive-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        if exists {
            blocking(|| extract_archive(path, dir.path()))?;
        }
        let store = LayoutStore {
            root: dir.path().to_path_buf(),
            archive: Some(Archive {
                path: path.to_path_buf(),
                _dir: Some(dir),
                staging: None,
            }),
            writable: create,
            index_lock: Mutex::new(()),
        };
        store.prepare(create)?;
        Ok(store)
    }

    /// Opens the archive at `path` for a resumable write: the layout is staged
    /// in `FILE.partial/` next to it (the existing archive extracted there
    /// first), which outlives an interrupted run, so a re-run finds the blobs
    /// that already arrived. `commit` writes the archive and removes the staging
    /// directory; until then the archive itself is untouched.
    pub fn open_archive_resumable(path: &Path) -> Result<Self> {
        let exists = archive_exists(path)?;
        let staging = staging_path(path)?;
        if staging.join(OCI_LAYOUT_FILE).is_file() {
            tracing::info!(
                "resuming {} from its staging directory {}",
                path.display(),
                staging.display()
            );
        } else {
            // Extracted next to it, then renamed: a staging directory is never half-extracted.
            let parent = parent_dir(&staging);
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            let fresh = tempfile::Builder::new()
                .prefix(".archgate-staging-")
                .tempdir_in(parent)
                .map_err(|e| Error::io(parent, e))?;
            if exists {
                blocking(|| extract_archive(path, fresh.path()))?;
            }
            if staging.exists() {
                fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            }
            let fresh = fresh.keep();
            fs::rename(&fresh, &staging).map_err(|e| Error::io(&staging, e))?;
        }
        let store = LayoutStore {
            root: staging.clone(),
            archive: Some(Archive {
                path: path.to_path_buf(),
                _dir: None,
                staging: Some(staging),
            }),
            writable: true,
            index_lock: Mutex::new(()),
        };
        store.prepare(true)?;
        Ok(store)
    }

    /// What a location without tag or digest means here: the digest of the
    /// single `index.json` entry; an error listing the tags when there are several.
    pub async fn default_selector(&self) -> Result<Selector> {
        // A referrers fallback tag (`sha256-<hex>`, attestations) is no image.
        let mut entries = self.entries().await?;
        entries.retain(|d| !ref_name(d).is_some_and(super::referrers::is_fallback_tag));
        match entries.as_slice() {
            [one] => Ok(Selector::Digest(one.digest.clone())),
            [] => Err(Error::NotFound {
                what: format!("image in {}", self.name()),
                hint: Some(format!(
                    "its index.json lists no images: name one by digest ({}@sha256:…) or write a tagged image first",
                    self.name()
                )),
            }),
            many => {
                let tags = ref_names(many);
                let untagged = many.iter().filter(|d| ref_name(d).is_none()).count();
                let mut choices: Vec<String> = tags
                    .iter()
                    .map(|t| format!("{}:{t}", self.name()))
                    .collect();
                if untagged > 0 {
                    choices.push(format!(
                        "{}@DIGEST for the {untagged} untagged one(s)",
                        self.name()
                    ));
                }
                Err(Error::Invalid(format!(
                    "{} holds {} images: name one, e.g. {}",
                    self.name(),
                    many.len(),
                    choices.join(", ")
                )))
            }
        }
    }

    /// Checks (and with `create`, makes) `oci-layout`, `index.json` and `blobs/sha256`.
    fn prepare(&self, create: bool) -> Result<()> {
        let layout_file = self.root.join(OCI_LAYOUT_FILE);
        match fs::read(&layout_file) {
            Ok(bytes) => check_layout_version(&bytes)
                .map_err(|m| Error::malformed(self.file_label(OCI_LAYOUT_FILE), m))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
                write_file_atomic(&self.root, &layout_file, OCI_LAYOUT_CONTENT)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let shown = self.user_path().display().to_string();
                return Err(if self.archive.is_some() || self.root.is_dir() {
                    Error::Invalid(format!(
                        "`{shown}` is not an OCI image layout (no oci-layout file): name a layout written by archgate, skopeo or umoci"
                    ))
                } else {
                    Error::NotFound {
                        what: format!("OCI image layout `{shown}`"),
                        hint: Some("check the path, or write an image to it first".into()),
                    }
                });
            }
            Err(e) => return Err(Error::io(layout_file, e)),
        }
        let index = self.root.join(INDEX_FILE);
        if !index.is_file() {
            if !create {
                return Err(Error::malformed(
                    self.file_label(INDEX_FILE),
                    "missing: the layout has an oci-layout file but no index.json",
                ));
            }
            write_file_atomic(&self.root, &index, &render_index(&empty_index()))?;
        }
        if create {
            let blobs = self.root.join(BLOBS_DIR).join("sha256");
            fs::create_dir_all(&blobs).map_err(|e| Error::io(blobs, e))?;
        }
        Ok(())
    }

    /// The path the user named (the directory, or the archive file).
    fn user_path(&self) -> &Path {
        match &self.archive {
            Some(a) => &a.path,
            None => &self.root,
        }
    }

    /// A layout file as the user can find it: a path, or a member of the archive.
    fn file_label(&self, rel: &str) -> String {
        match &self.archive {
            Some(a) => format!("{rel} in OCI archive {}", a.path.display()),
            None => self.root.join(rel).display().to_string(),
        }
    }

    fn blob_dir(&self, digest: &Digest) -> PathBuf {
        self.root.join(BLOBS_DIR).join(digest.algorithm())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest).join(digest.hex())
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "{} was opened for reading and cannot be written to (open it for writing)",
                self.name()
            )))
        }
    }

    /// `index.json` as a JSON document (kept whole, so unknown fields survive a rewrite).
    async fn read_index(&self) -> Result<Value> {
        let path = self.root.join(INDEX_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        parse_index(&bytes).map_err(|m| Error::malformed(self.file_label(INDEX_FILE), m))
    }

    /// The entries of `index.json`.
    pub(super) async fn entries(&self) -> Result<Vec<Descriptor>> {
        let doc = self.read_index().await?;
        index_entries(&doc).map_err(|m| Error::malformed(self.file_label(INDEX_FILE), m))
    }

    /// A manifest blob's bytes, checked against its digest (and `size` when given).
    async fn read_manifest_blob(&self, digest: &Digest, size: Option<u64>) -> Result<Bytes> {
        let what = format!("manifest {digest} in {}", self.name());
        let path = self.blob_path(digest);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what,
                    hint: Some(format!(
                        "{} has no blob with that digest: check the digest, or copy the image there again",
                        self.name()
                    )),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        if meta.len() > MAX_MANIFEST_SIZE {
            return Err(Error::malformed(
                what,
                format!(
                    "is {} bytes; manifests larger than {MAX_MANIFEST_SIZE} bytes are refused",
                    meta.len()
                ),
            ));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        digest.verify(&bytes, &what)?;
        if let Some(size) = size
            && bytes.len() as u64 != size
        {
            return Err(Error::malformed(
                what,
                format!("is {} bytes, its index.json entry says {size}", bytes.len()),
            ));
        }
        Ok(Bytes::from(bytes))
    }

    /// Maps a failure to read the data handed to `put_blob` (often another store's verifying reader).
    fn source_error(&self, digest: &Digest, e: io::Error) -> Error {
        let what = format!("blob {digest} being written to {}", self.name());
        if e.kind() == io::ErrorKind::InvalidData {
            // The source's own verification failed: the content is wrong, not the disk.
            Error::malformed(what, e)
        } else {
            Error::io(format!("reading {what}"), e)
        }
    }
}

impl LayoutStore {
    /// Stores a manifest and, with `tag`, tags it; with `name`, the entry also
    /// records the full name `NAME:TAG` (`io.containerd.image.name`).
    async fn put_manifest_named(
        &self,
        manifest: &RawManifest,
        tag: Option<&str>,
        name: Option<&str>,
    ) -> Result<()> {
        self.check_writable()?;
        manifest.digest.verify(
            &manifest.bytes,
            &format!("manifest to be written to {}", self.name()),
        )?;
        if tag == Some("") {
            return Err(Error::Invalid(format!(
                "empty tag for manifest {} in {}",
                manifest.digest,
                self.name()
            )));
        }
        let dest = self.blob_path(&manifest.digest);
        if !tokio::fs::try_exists(&dest)
            .await
            .map_err(|e| Error::io(&dest, e))?
        {
            let dir = self.blob_dir(&manifest.digest);
            let bytes = manifest.bytes.clone();
            run_blocking(move || {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                write_file_atomic(&dir, &dest, &bytes)
            })
            .await?;
        }
        let Some(tag) = tag else {
            return Ok(());
        };
        // Blob first, tag last: a reader never finds a tag whose manifest is missing.
        let _guard = self.index_lock.lock().await;
        let mut doc = self.read_index().await?;
        set_tag(&mut doc, &manifest.descriptor(), tag, name)
            .map_err(|m| Error::malformed(self.file_label(INDEX_FILE), m))?;
        let (root, bytes) = (self.root.clone(), render_index(&doc));
        run_blocking(move || write_file_atomic(&root, &root.join(INDEX_FILE), &bytes)).await
    }
}

#[async_trait]
impl Store for LayoutStore {
    fn name(&self) -> String {
        match &self.archive {
            Some(a) => format!("oci-archive:{}", a.path.display()),
            None => format!("oci:{}", self.root.display()),
        }
    }

    async fn default_selector(&self) -> Result<Selector> {
        LayoutStore::default_selector(self).await
    }

    async fn resolve(&self, selector: &Selector) -> Result<Descriptor> {
        let entries = self.entries().await?;
        match selector {
            Selector::Tag(tag) => entries
                .iter()
                .find(|d| ref_name(d) == Some(tag.as_str()))
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    what: format!("tag `{tag}` in {}", self.name()),
                    hint: Some(tags_hint(&entries)),
                }),
            Selector::Digest(digest) => {
                if let Some(entry) = entries.iter().find(|d| &d.digest == digest) {
                    return Ok(entry.clone());
                }
                // Not listed: a platform manifest of a listed index, or one written
                // untagged. It counts only if its bytes are a manifest or an index.
                let bytes = self.read_manifest_blob(digest, None).await?;
                let what = format!("blob {digest} in {}", self.name());
                let media_type = sniff_media_type(&bytes, &what)?;
                Ok(Descriptor {
                    media_type,
                    digest: digest.clone(),
                    size: bytes.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                    urls: Vec::new(),
                })
            }
        }
    }

    async fn get_manifest(&self, selector: &Selector) -> Result<RawManifest> {
        let desc = self.resolve(selector).await?;
        let bytes = self
            .read_manifest_blob(&desc.digest, Some(desc.size))
            .await?;
        let what = format!("manifest {} in {}", desc.digest, self.name());
        // `from_bytes` sniffs when the entry's media type is not a manifest type.
        RawManifest::from_bytes(bytes, Some(&desc.media_type), &what)
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        self.put_manifest_named(manifest, tag, None).await
    }

    async fn put_named_tag(&self, manifest: &RawManifest, tag: &str, name: &str) -> Result<()> {
        self.put_manifest_named(manifest, Some(tag), Some(name))
            .await
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn local_blob(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.blob_path(digest);
        path.is_file().then_some(path)
    }

    async fn get_blob(&self, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        let what = format!("blob {digest} in {}", self.name());
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what,
                    hint: Some(format!(
                        "{} is incomplete: copy the image into it again",
                        self.name()
                    )),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        // Without the buffer every small read of a caller becomes its own blocking-pool trip.
        let file = tokio::io::BufReader::with_capacity(CHUNK, file);
        Ok(Box::pin(VerifyingReader::new(
            file,
            digest.clone(),
            size,
            what,
        )))
    }

    async fn put_blob(&self, digest: &Digest, size: u64, mut data: BlobReader) -> Result<BlobPut> {
        self.check_writable()?;
        if self.blob_exists(digest).await? {
            return Ok(BlobPut::Present);
        }
        let dir = self.blob_dir(digest);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(&dir, e))?;
        // The temporary file is deleted when `temp` drops: every early return cleans up.
        let (file, temp) = temp_file_in(&dir)?.into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = data
                .read(&mut buf)
                .await
                .map_err(|e| self.source_error(digest, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if hasher.len() > size {
                // Stop early: the stream may be endless, and it is wrong already.
                return Err(Error::malformed(
                    format!("blob {digest} being written to {}", self.name()),
                    format!("is larger than its declared size of {size} bytes"),
                ));
            }
            out.write_all(&buf[..n])
                .await
                .map_err(|e| Error::io(&*temp, e))?;
        }
        out.flush().await.map_err(|e| Error::io(&*temp, e))?;
        out.sync_all().await.map_err(|e| Error::io(&*temp, e))?;
        drop(out);
        let len = hasher.len();
        let actual = hasher.finish();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob written to {}", self.name()),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if len != size {
            return Err(Error::malformed(
                format!("blob {digest} being written to {}", self.name()),
                format!("is {len} bytes, its descriptor says {size}"),
            ));
        }
        let dest = self.blob_path(digest);
        run_blocking(move || temp.persist(&dest).map_err(|e| Error::io(&dest, e.error))).await?;
        Ok(BlobPut::Written)
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(ref_names(&self.entries().await?))
    }

    async fn commit(&self) -> Result<()> {
        let Some(archive) = &self.archive else {
            return Ok(());
        };
        if !self.writable {
            return Ok(());
        }
        // No tag may change while the archive is written.
        let _guard = self.index_lock.lock().await;
        let (root, dest) = (self.root.clone(), archive.path.clone());
        run_blocking(move || write_archive(&root, &dest)).await?;
        if let Some(staging) = &archive.staging {
            let staging = staging.clone();
            run_blocking(move || fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e)))
                .await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// index.json (pure)

/// A fresh, empty OCI index.
fn empty_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [],
    })
}

/// Parses `index.json`, requiring an object with a `manifests` array.
fn parse_index(bytes: &[u8]) -> std::result::Result<Value, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    match doc.get("manifests") {
        Some(Value::Array(_)) => Ok(doc),
        _ if !doc.is_object() => Err("not an OCI image index (not a JSON object)".into()),
        _ => Err("not an OCI image index (no `manifests` array)".into()),
    }
}

/// The entries of a parsed index, as descriptors.
fn index_entries(doc: &Value) -> std::result::Result<Vec<Descriptor>, String> {
    let Some(Value::Array(entries)) = doc.get("manifests") else {
        return Err("not an OCI image index (no `manifests` array)".into());
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::from_value(e.clone()).map_err(|err| format!("manifests[{i}]: {err}"))
        })
        .collect()
}

/// The tag (`org.opencontainers.image.ref.name`) of an index entry.
fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The tag of an index entry still in JSON form.
fn entry_ref_name(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")?
        .get(REF_NAME_ANNOTATION)?
        .as_str()
        .filter(|n| !n.is_empty())
}

/// The tags of the entries, in index order, without repeats.
fn ref_names(entries: &[Descriptor]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for name in entries.iter().filter_map(ref_name) {
        if !tags.iter().any(|t| t == name) {
            tags.push(name.to_string());
        }
    }
    tags
}

/// The hint of a missing-tag error: the tags that exist.
fn tags_hint(entries: &[Descriptor]) -> String {
    let tags = ref_names(entries);
    if tags.is_empty() {
        "the layout has no tags: name an image by digest (@sha256:…)".into()
    } else {
        format!("the layout has tags: {}", tags.join(", "))
    }
}

/// Points `tag` at `desc`: entries with that name are replaced, every other
/// entry is kept as it was. Entries are sorted by (tag, digest) so that the
/// same content gives the same bytes whatever order the tags were written in.
fn set_tag(
    doc: &mut Value,
    desc: &Descriptor,
    tag: &str,
    name: Option<&str>,
) -> std::result::Result<(), String> {
    let mut entry = serde_json::to_value(desc).map_err(|e| e.to_string())?;
    let annotations = entry
        .as_object_mut()
        .ok_or("a descriptor is not a JSON object")?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    annotations[REF_NAME_ANNOTATION] = Value::String(tag.to_string());
    if let Some(name) = name {
        annotations[CONTAINERD_NAME_ANNOTATION] = Value::String(format!("{name}:{tag}"));
    }
    let Some(Value::Array(entries)) = doc.get_mut("manifests") else {
        return Err("not an OCI image index (no `manifests` array)".into());
    };
    entries.retain(|e| entry_ref_name(e) != Some(tag));
    entries.push(entry);
    entries.sort_by(|a, b| entry_order(a).cmp(&entry_order(b)));
    Ok(())
}

/// Sort key of an index entry: untagged first, then by tag, then by digest.
fn entry_order(entry: &Value) -> (&str, &str) {
    (
        entry_ref_name(entry).unwrap_or(""),
        entry.get("digest").and_then(Value::as_str).unwrap_or(""),
    )
}

/// Serialises an index: compact, keys in a fixed order.
fn render_index(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).expect("a JSON value always serialises")
}

/// Accepts `oci-layout` content of version 1.x.
fn check_layout_version(bytes: &[u8]) -> std::result::Result<(), String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    match doc.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(v) if v.starts_with("1.") => Ok(()),
        Some(v) => Err(format!(
            "unsupported imageLayoutVersion `{v}` (archgate reads 1.x layouts)"
        )),
        None => Err("no `imageLayoutVersion`: not an OCI image layout".into()),
    }
}

// ---------------------------------------------------------------------------
// Files

/// A temporary file in `dir`, readable like any other file once renamed.
fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        // tempfile's default 0600 would make blobs unreadable to other users of a shared layout.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `dest` through a temporary file in `dir` and a rename.
fn write_file_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut temp = temp_file_in(dir)?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

/// Runs blocking file work off the async threads.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("file task failed: {e}")))?
}

/// Runs blocking work from a synchronous constructor, letting a multi-threaded
/// runtime move its other tasks elsewhere meanwhile (extracting an archive takes a while).
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

// ---------------------------------------------------------------------------
// Archives

/// Where a tar entry goes inside the layout (`None`: the root itself), or why
/// it is refused. Only the layout's own regular files and directories pass:
/// no absolute paths, no `..`, no links or devices.
fn archive_entry_path(
    raw: &Path,
    kind: tar::EntryType,
) -> std::result::Result<Option<PathBuf>, String> {
    let is_dir = kind.is_dir();
    if !(is_dir || kind.is_file() || kind.is_contiguous()) {
        return Err(format!(
            "{} entries do not belong in an OCI layout (only regular files and directories)",
            entry_kind_name(kind)
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_str().ok_or("the path is not UTF-8")?),
            Component::CurDir => {}
            Component::ParentDir => return Err("the path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("the path is absolute".into());
            }
        }
    }
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'+' | b'.' | b'_' | b'-')
            })
    };
    let ok = match parts.as_slice() {
        [] => is_dir,
        [OCI_LAYOUT_FILE] | [INDEX_FILE] => !is_dir,
        [BLOBS_DIR] => is_dir,
        [BLOBS_DIR, algorithm] => is_dir && plain(algorithm),
        [BLOBS_DIR, algorithm, encoded] => !is_dir && plain(algorithm) && plain(encoded),
        _ => false,
    };
    if !ok {
        return Err(format!(
            "only `{OCI_LAYOUT_FILE}`, `{INDEX_FILE}` and `{BLOBS_DIR}/ALGORITHM/ENCODED` files belong in an OCI layout archive"
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.iter().collect()))
}

/// A human name for a tar entry type.
fn entry_kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special",
    }
}

/// What a file that is not a tar archive looks like, from its first bytes,
/// with the way out where there is one; `None` when it starts like a tar
/// (a 512-byte header whose checksum adds up).
fn not_a_tar(head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    // Empty, or an end-of-archive block first: a tar with no entries, as `tar` reads it.
    if head.iter().all(|&b| b == 0) && (head.is_empty() || head.len() >= 512) {
        return None;
    }
    let what = if starts(&[0x1f, 0x8b]) {
        "it is gzip-compressed: decompress it first (gunzip), archgate reads plain tar"
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "it is zstd-compressed: decompress it first (unzstd), archgate reads plain tar"
    } else if starts(b"\x7fELF") {
        "it is an ELF executable"
    } else if starts(b"PK\x03\x04") {
        "it is a zip archive"
    } else if head.len() < 512 {
        "it is shorter than one tar header (512 bytes)"
    } else if tar_checksum_ok(&head[..512]) {
        return None;
    } else if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "it is a text file"
    } else {
        "its first 512 bytes are not a tar header"
    };
    Some(what)
}

/// Whether a 512-byte tar header's checksum field matches its bytes (the
/// field itself counted as spaces), the test `tar` itself applies.
fn tar_checksum_ok(header: &[u8]) -> bool {
    let field = &header[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == stored
}

/// Text safe to print from an error about untrusted bytes: control and
/// non-ASCII characters become `?`, so a binary file never reaches a terminal.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Refuses a file that is not a tar before anything reads it as one: the
/// user named the wrong file (exit 2), and its bytes never reach a message.
fn check_is_tar(archive: &Path) -> Result<()> {
    check_is_tar_named(
        archive,
        "oci-archive",
        "names a tar of an OCI image layout, e.g. one written by `skopeo copy … oci-archive:FILE` \
         (use `oci:DIR` for a layout directory)",
    )
}

/// [`check_is_tar`] for any archive location: `scheme:FILE` and what such a
/// location names go into the message.
pub(super) fn check_is_tar_named(archive: &Path, scheme: &str, names: &str) -> Result<()> {
    let mut head = Vec::with_capacity(512);
    fs::File::open(archive)
        .and_then(|f| io::Read::take(f, 512).read_to_end(&mut head))
        .map_err(|e| Error::io(archive, e))?;
    match not_a_tar(&head) {
        None => Ok(()),
        Some(what) => Err(Error::Invalid(format!(
            "{scheme}:{}: not a tar archive ({what}); a `{scheme}:` location {names}",
            archive.display()
        ))),
    }
}

/// Extracts the layout archive at `archive` into the empty directory `dest`.
fn extract_archive(archive: &Path, dest: &Path) -> Result<()> {
    check_is_tar(archive)?;
    let label = format!("OCI archive {}", archive.display());
    let bad = |e: io::Error| {
        Error::malformed(
            &label,
            format!("not a readable tar file: {}", printable(&e.to_string())),
        )
    };
    let file = fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(CHUNK, file));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata, not a file.
            continue;
        }
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = archive_entry_path(&raw, kind).map_err(|why| {
            Error::malformed(
                &label,
                format!(
                    "refusing entry `{}`: {why}; the archive is not a plain OCI layout",
                    printable(&raw.display().to_string())
                ),
            )
        })?;
        let Some(rel) = rel else {
            continue;
        };
        // Safe to join: `rel` is validated, and only plain directories and files
        // (never links) are ever created below `dest`.
        let target = dest.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut out = fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        io::copy(&mut entry, &mut out).map_err(|e| {
            Error::malformed(
                &label,
                format!(
                    "reading entry `{}`: {}",
                    printable(&raw.display().to_string()),
                    printable(&e.to_string())
                ),
            )
        })?;
    }
    Ok(())
}

/// Whether the archive file exists; a directory there is an error.
fn archive_exists(path: &Path) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(_) => Err(Error::Invalid(format!(
            "`{}` is not a file: an oci-archive location names a tar file (use `oci:{}` for a layout directory)",
            path.display(),
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Where a resumable write of the archive `path` stages its layout: `FILE.partial`.
pub fn staging_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("`{}` does not name a file", path.display())))?;
    let mut staged = name.to_os_string();
    staged.push(".partial");
    Ok(parent_dir(path).join(staged))
}

/// The directory a path is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes the layout at `root` as a tar to `dest`: `oci-layout`, `index.json`,
/// then `blobs/` in sorted order, with fixed owners, modes and times so the
/// same layout always gives the same bytes; atomically through `DEST.tmp-*`.
fn write_archive(root: &Path, dest: &Path) -> Result<()> {
    let parent = parent_dir(dest);
    let file_name = dest
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("`{}` does not name a file", dest.display())))?;
    let mut builder = tempfile::Builder::new();
    let prefix = format!("{}.tmp-", file_name.to_string_lossy());
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let temp = builder
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let io_err = |e: io::Error| Error::io(temp.path(), e);

    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(CHUNK, temp.as_file()));
    append_file(&mut tar, root, OCI_LAYOUT_FILE).map_err(io_err)?;
    append_file(&mut tar, root, INDEX_FILE).map_err(io_err)?;
    let blobs = root.join(BLOBS_DIR);
    append_dir(&mut tar, BLOBS_DIR).map_err(io_err)?;
    for algorithm in sorted_names(&blobs, true)? {
        let rel_dir = format!("{BLOBS_DIR}/{algorithm}");
        append_dir(&mut tar, &rel_dir).map_err(io_err)?;
        for blob in sorted_names(&blobs.join(&algorithm), false)? {
            append_file(&mut tar, root, &format!("{rel_dir}/{blob}")).map_err(io_err)?;
        }
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err)?;
    temp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

/// Names of the directories (or files) in `dir`, sorted, without temporary files.
fn sorted_names(dir: &Path, dirs: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let read = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in read {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let file_type = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let wanted = if dirs {
            file_type.is_dir()
        } else {
            file_type.is_file()
        };
        if wanted && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A tar header with everything but type, size and mode fixed.
fn fixed_header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, rel: &str) -> io::Result<()> {
    let mut header = fixed_header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut header, format!("{rel}/"), io::empty())
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &str) -> io::Result<()> {
    let file = fs::File::open(root.join(rel))?;
    let size = file.metadata()?.len();
    let mut header = fixed_header(tar::EntryType::Regular, size, 0o644);
    // `take`: a header promises exactly `size` bytes.
    tar.append_data(&mut header, rel, file.take(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_what_a_file_that_is_not_a_tar_is() {
        let mut real = Vec::new();
        {
            let mut b = tar::Builder::new(&mut real);
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, OCI_LAYOUT_FILE, io::empty()).unwrap();
            b.finish().unwrap();
        }
        assert_eq!(not_a_tar(&real[..512]), None);
        assert_eq!(
            not_a_tar(b""),
            None,
            "an empty file is a tar with no entries"
        );
        assert_eq!(not_a_tar(&[0; 512]), None, "an end-of-archive block");
        for (head, want) in [
            (&b"\x7fELF\x02\x01\x01"[..], "ELF"),
            (&[0x1f, 0x8b, 8, 0][..], "gunzip"),
            (&[0x28, 0xb5, 0x2f, 0xfd][..], "unzstd"),
            (&b"PK\x03\x04"[..], "zip"),
            (&b"hello"[..], "shorter than one tar header"),
            (&[b'a'; 600][..], "text file"),
            (&[0xff; 600][..], "not a tar header"),
        ] {
            assert!(not_a_tar(head).is_some_and(|w| w.contains(want)), "{want}");
        }
        assert_eq!(printable("a\u{7f}b\nc\u{e9}"), "a?b?c?");
    }

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media::OCI_INDEX.into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
            urls: Vec::new(),
        }
    }

    #[test]
    fn set_tag_replaces_only_that_name_and_keeps_the_rest() {
        let other = desc(b"other");
        let untagged = desc(b"untagged");
        let mut doc = parse_index(
            json!({
                "schemaVersion": 2,
                "annotations": {"keep": "me"},
                "manifests": [
                    {"mediaType": media::OCI_INDEX, "digest": other.digest, "size": 5,
                     "annotations": {REF_NAME_ANNOTATION: "v1", "x": "y"}, "unknownField": 1},
                    {"mediaType": media::OCI_MANIFEST, "digest": untagged.digest, "size": 8},
                    {"mediaType": media::OCI_INDEX, "digest": other.digest, "size": 5,
                     "annotations": {REF_NAME_ANNOTATION: "latest"}},
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let new = desc(b"new");
        set_tag(&mut doc, &new, "latest", None).unwrap();

        let entries = index_entries(&doc).unwrap();
        assert_eq!(ref_names(&entries), ["latest", "v1"]);
        assert_eq!(entries[0].digest, untagged.digest, "untagged first");
        assert_eq!(entries[1].digest, new.digest);
        assert_eq!(entries[2].annotations["x"], "y");
        assert_eq!(doc["manifests"][2]["unknownField"], 1);
        assert_eq!(doc["annotations"]["keep"], "me");
    }

    #[test]
    fn index_bytes_do_not_depend_on_write_order() {
        let (a, b) = (desc(b"a"), desc(b"b"));
        let mut one = empty_index();
        set_tag(&mut one, &a, "v1", None).unwrap();
        set_tag(&mut one, &b, "latest", None).unwrap();
        let mut two = empty_index();
        set_tag(&mut two, &b, "latest", None).unwrap();
        set_tag(&mut two, &a, "v1", None).unwrap();
        set_tag(&mut two, &a, "v1", None).unwrap();
        assert_eq!(render_index(&one), render_index(&two));
        let parsed = parse_index(&render_index(&one)).unwrap();
        assert_eq!(parsed["mediaType"], media::OCI_INDEX);
        assert_eq!(index_entries(&parsed).unwrap().len(), 2);
    }

    #[test]
    fn rejects_malformed_index_and_layout_files() {
        assert!(
            parse_index(b"[]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(parse_index(b"{}").unwrap_err().contains("manifests"));
        assert!(parse_index(b"{").unwrap_err().contains("not JSON"));
        let bad_entry = parse_index(br#"{"manifests":[{"digest":"sha256:zz"}]}"#).unwrap();
        assert!(
            index_entries(&bad_entry)
                .unwrap_err()
                .contains("manifests[0]")
        );

        assert!(check_layout_version(OCI_LAYOUT_CONTENT).is_ok());
        assert!(check_layout_version(br#"{"imageLayoutVersion":"1.1.0"}"#).is_ok());
        assert!(
            check_layout_version(br#"{"imageLayoutVersion":"2.0.0"}"#)
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(check_layout_version(b"{}").is_err());
    }

    #[test]
    fn staging_directory_sits_next_to_the_archive() {
        for (archive, staged) in [
            ("app.tar", "./app.tar.partial"),
            ("out/app.tar", "out/app.tar.partial"),
            ("/tmp/x/base images.tar", "/tmp/x/base images.tar.partial"),
        ] {
            assert_eq!(
                staging_path(Path::new(archive)).unwrap(),
                Path::new(staged),
                "{archive}"
            );
        }
        assert!(staging_path(Path::new("/")).is_err());
    }

    #[test]
    fn archive_entry_paths() {
        use tar::EntryType::{Block, Char, Directory, Link, Regular, Symlink};
        let hex = "0".repeat(64);
        let blob = format!("blobs/sha256/{hex}");
        let dot_blob = format!("./blobs/sha256/{hex}");
        let accepted: &[(&str, tar::EntryType, Option<&str>)] = &[
            ("oci-layout", Regular, Some("oci-layout")),
            ("./index.json", Regular, Some("index.json")),
            ("./", Directory, None),
            (".", Directory, None),
            ("blobs/", Directory, Some("blobs")),
            ("blobs/sha256", Directory, Some("blobs/sha256")),
            (&blob, Regular, Some(&blob)),
            (&dot_blob, Regular, Some(&blob)),
        ];
        for (raw, kind, want) in accepted {
            let got = archive_entry_path(Path::new(raw), *kind)
                .unwrap_or_else(|e| panic!("{raw} refused: {e}"));
            assert_eq!(got.as_deref(), want.map(Path::new), "{raw}");
        }
        let refused: &[(&str, tar::EntryType, &str)] = &[
            ("../evil", Regular, ".."),
            ("blobs/../../evil", Regular, ".."),
            ("/etc/passwd", Regular, "absolute"),
            ("/oci-layout", Regular, "absolute"),
            ("oci-layout", Symlink, "symbolic link"),
            (&blob, Link, "hard link"),
            ("blobs/sha256/x", Char, "character device"),
            ("blobs/sha256/x", Block, "block device"),
            ("evil", Regular, "belong"),
            ("oci-layout", Directory, "belong"),
            ("blobs", Regular, "belong"),
            ("blobs/sha256/aa/bb", Regular, "belong"),
            ("blobs/sha256/.hidden", Regular, "belong"),
            ("blobs/SHA256/aa", Regular, "belong"),
            ("", Regular, "belong"),
        ];
        for (raw, kind, why) in refused {
            let err = archive_entry_path(Path::new(raw), *kind).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
    }
}
