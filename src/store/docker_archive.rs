//! `docker-archive:FILE[:NAME[:TAG]]`: the tarball `docker save` writes, read
//! as a source ([`DockerArchiveStore`]) and written as a one-platform target
//! ([`DockerArchiveWriter`]).
//!
//! Two forms exist. The classic one (Docker ≤ 24, `skopeo copy …
//! docker-archive:`) holds `manifest.json` (per image: `Config`, `RepoTags`,
//! `Layers`), the config JSON files and uncompressed layer tars, duplicates as
//! symlinks; it has no manifest, so one is written here: an OCI image manifest
//! whose config is the archive's config, byte for byte (same config digest),
//! and whose layers are the archive's uncompressed tars
//! (`application/vnd.oci.image.layer.v1.tar`). Docker ≥ 25 writes an OCI image
//! layout plus `manifest.json`; that layout is read as it is, so its manifest
//! digests are the ones `docker save` recorded.
//!
//! Either way the archive is unpacked once into a private directory and read
//! as an OCI layout ([`LayoutStore`]). The image it names: `NAME[:TAG]`
//! matched against `RepoTags` (`debian` means `debian:latest`;
//! `docker.io/library/` is implied), else the archive's only image.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, LayoutStore};
use super::{BlobPut, BlobReader, Store};
use crate::error::{Error, Result};
use crate::image::digest::Hasher;
use crate::image::manifest::{CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION};
use crate::image::{Descriptor, Digest, ImageConfig, RawManifest, Selector, media};

/// Symlinks followed, at most, to reach a file (duplicate layers are one hop).
const MAX_LINK_HOPS: usize = 8;

/// A `docker save` archive opened for reading.
pub struct DockerArchiveStore {
    /// The layout over the private directory (declared first: dropped before it).
    inner: LayoutStore,
    path: PathBuf,
    /// The image the location names, or the archive's only one.
    chosen: Option<Digest>,
    /// Why there is no `chosen` (several images, none named): the error to give.
    ambiguous: Option<String>,
    _dir: tempfile::TempDir,
}

/// One image of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

impl DockerArchiveStore {
    /// Opens the archive at `path`; `name` (`NAME[:TAG]`) picks one of its images.
    pub async fn open(path: &Path, name: Option<&str>) -> Result<Self> {
        let label = format!("docker-archive:{}", path.display());
        match fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "{label}: not a file; a `docker-archive:` location names the tar `docker save -o FILE` writes"
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: format!("docker archive `{}`", path.display()),
                    hint: Some(
                        "check the path (write one with `docker save -o FILE IMAGE`)".into(),
                    ),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        }
        layout::check_is_tar_named(
            path,
            "docker-archive",
            "names the tar `docker save -o FILE` writes",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("archgate-docker-archive-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let (root, saved) = layout::blocking(|| unpack(path, dir.path(), &label))?;
        let inner = LayoutStore::open_dir(&root, false)?;
        let mut store = DockerArchiveStore {
            inner,
            path: path.to_path_buf(),
            chosen: None,
            ambiguous: None,
            _dir: dir,
        };
        store.choose(&saved, name, &label).await?;
        Ok(store)
    }

    /// Picks the image `name` names among the layout's entries (annotated with
    /// their full names), or the only one.
    async fn choose(
        &mut self,
        saved: &[SavedImage],
        name: Option<&str>,
        label: &str,
    ) -> Result<()> {
        let entries = self.inner.entries().await?;
        let full = |d: &Descriptor| d.annotations.get(CONTAINERD_NAME_ANNOTATION).cloned();
        let mut names: Vec<String> = saved
            .iter()
            .flat_map(|s| s.repo_tags.clone().unwrap_or_default())
            .map(|n| normalise(&n))
            .collect();
        names.dedup();
        match name {
            Some(n) => {
                let want = normalise(n);
                let found = entries
                    .iter()
                    .find(|d| full(d).map(|f| normalise(&f)) == Some(want.clone()));
                match found {
                    Some(d) => self.chosen = Some(d.digest.clone()),
                    None => {
                        return Err(Error::NotFound {
                            what: format!("image `{n}` in {label}"),
                            hint: Some(if names.is_empty() {
                                "the archive names none of its images: leave the name out, or pick one by digest (docker-archive:FILE@sha256:…)".into()
                            } else {
                                format!("it holds: {}", names.join(", "))
                            }),
                        });
                    }
                }
            }
            None => {
                let mut digests: Vec<&Digest> = entries.iter().map(|d| &d.digest).collect();
                digests.sort();
                digests.dedup();
                match digests.as_slice() {
                    [one] => self.chosen = Some((*one).clone()),
                    [] => {
                        return Err(Error::malformed(label, "it holds no image"));
                    }
                    many => {
                        self.ambiguous = Some(format!(
                            "{label} holds {} images: name one, e.g. {}",
                            many.len(),
                            names
                                .iter()
                                .map(|n| format!("{label}:{n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn read_only(&self) -> Error {
        Error::Internal(format!(
            "{} was opened for reading; a write opens it as a target",
            self.name()
        ))
    }
}

/// `NAME[:TAG]` as Docker reads it: `debian` is `docker.io/library/debian:latest`.
fn normalise(name: &str) -> String {
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    };
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    format!("{repo}:{tag}")
}

/// The tag part of a `RepoTags` entry (`ref.name` in the layout).
fn tag_of(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((_, t)) if !t.contains('/') => t,
        _ => "latest",
    }
}

/// Unpacks the archive into `dir` and returns the OCI layout to read (the
/// archive's own for Docker ≥ 25, else one written under `dir/layout`) and
/// the images `manifest.json` lists.
fn unpack(archive: &Path, dir: &Path, label: &str) -> Result<(PathBuf, Vec<SavedImage>)> {
    let raw = dir.join("raw");
    fs::create_dir_all(&raw).map_err(|e| Error::io(&raw, e))?;
    let links = extract(archive, &raw, label)?;
    let manifest_path = raw.join("manifest.json");
    let bytes = match fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let hint = if raw.join("oci-layout").is_file() {
                " (it is an OCI layout: read it as `oci-archive:FILE`)"
            } else {
                ""
            };
            return Err(Error::Invalid(format!(
                "{label}: no manifest.json, so not a `docker save` archive{hint}"
            )));
        }
        Err(e) => return Err(Error::io(manifest_path, e)),
    };
    let saved: Vec<SavedImage> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed(format!("manifest.json in {label}"), e))?;
    if raw.join("oci-layout").is_file() && raw.join("index.json").is_file() {
        annotate_docker25(&raw, &saved, label)?;
        return Ok((raw, saved));
    }
    let root = dir.join("layout");
    convert_classic(&raw, &links, &saved, &root, label)?;
    Ok((root, saved))
}

/// Extracts plain files and directories below `dest` (validated names only)
/// and returns the archive's symlinks and hard links (name → target, both
/// relative to the archive root), which classic archives use for duplicate
/// layers. Nothing is ever created outside `dest`, and no link is created.
fn extract(archive: &Path, dest: &Path, label: &str) -> Result<HashMap<PathBuf, PathBuf>> {
    let bad = |what: String| Error::malformed(label, what);
    let file = fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(256 << 10, file));
    let mut links = HashMap::new();
    let entries = tar.entries().map_err(|e| {
        bad(format!(
            "not a readable tar file: {}",
            layout::printable(&e.to_string())
        ))
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            bad(format!(
                "not a readable tar file: {}",
                layout::printable(&e.to_string())
            ))
        })?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw_name = entry
            .path()
            .map_err(|e| bad(format!("unreadable entry name: {e}")))?
            .into_owned();
        let shown = layout::printable(&raw_name.display().to_string());
        let rel = plain_relative(&raw_name).ok_or_else(|| {
            bad(format!(
                "refusing entry `{shown}`: absolute, `..` or not UTF-8"
            ))
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if kind.is_dir() {
            let t = dest.join(&rel);
            fs::create_dir_all(&t).map_err(|e| Error::io(&t, e))?;
        } else if kind.is_file() || kind.is_contiguous() {
            let t = dest.join(&rel);
            if let Some(p) = t.parent() {
                fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
            let mut out = fs::File::create(&t).map_err(|e| Error::io(&t, e))?;
            io::copy(&mut entry, &mut out).map_err(|e| {
                bad(format!(
                    "reading entry `{shown}`: {}",
                    layout::printable(&e.to_string())
                ))
            })?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| bad(format!("unreadable link of `{shown}`: {e}")))?
                .ok_or_else(|| bad(format!("link `{shown}` has no target")))?
                .into_owned();
            // A symlink is relative to its directory; a hard link names a member.
            let joined = if kind.is_symlink() {
                rel.parent().unwrap_or(Path::new("")).join(&target)
            } else {
                target.clone()
            };
            let resolved = normalise_inside(&joined).ok_or_else(|| {
                bad(format!(
                    "refusing link `{shown}` → `{}`: it leaves the archive",
                    layout::printable(&target.display().to_string())
                ))
            })?;
            links.insert(rel, resolved);
        } else {
            return Err(bad(format!(
                "refusing entry `{shown}`: a {kind:?} entry does not belong in a `docker save` archive"
            )));
        }
    }
    Ok(links)
}

/// A member name as a relative path of plain components (`./` dropped).
fn plain_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Resolves `..` inside a relative path; `None` when it climbs out.
fn normalise_inside(p: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The extracted file a member name refers to, following the archive's links.
fn member(
    raw: &Path,
    links: &HashMap<PathBuf, PathBuf>,
    name: &str,
    label: &str,
) -> Result<PathBuf> {
    let mut rel = plain_relative(Path::new(name)).ok_or_else(|| {
        Error::malformed(
            format!("manifest.json in {label}"),
            format!("`{}` is not a member name", layout::printable(name)),
        )
    })?;
    for _ in 0..MAX_LINK_HOPS {
        match links.get(&rel) {
            Some(next) => rel = next.clone(),
            None => {
                let path = raw.join(&rel);
                return if path.is_file() {
                    Ok(path)
                } else {
                    Err(Error::malformed(
                        label,
                        format!(
                            "manifest.json names `{}`, which the archive does not hold",
                            layout::printable(name)
                        ),
                    ))
                };
            }
        }
    }
    Err(Error::malformed(
        label,
        format!(
            "`{}`: more than {MAX_LINK_HOPS} links deep",
            layout::printable(name)
        ),
    ))
}

/// The digest and size of a file, read once.
fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// Writes an OCI layout at `root` for the classic archive extracted in `raw`:
/// per image the config (same bytes), the layers (uncompressed tars) and an
/// OCI manifest; `index.json` lists one entry per name (`ref.name` = the tag,
/// `io.containerd.image.name` = the name), or one unnamed entry.
fn convert_classic(
    raw: &Path,
    links: &HashMap<PathBuf, PathBuf>,
    saved: &[SavedImage],
    root: &Path,
    label: &str,
) -> Result<()> {
    let blobs = root.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
    let place = |src: &Path| -> Result<(Digest, u64)> {
        let (digest, size) = hash_file(src)?;
        let dest = blobs.join(digest.hex());
        if !dest.exists() {
            // The same layer may be named by several images: link, don't move.
            fs::hard_link(src, &dest)
                .or_else(|_| fs::copy(src, &dest).map(|_| ()))
                .map_err(|e| Error::io(&dest, e))?;
        }
        Ok((digest, size))
    };
    let mut entries = Vec::new();
    for image in saved {
        let config_path = member(raw, links, &image.config, label)?;
        let config_bytes = fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config = ImageConfig::parse(&config_bytes, &format!("{} in {label}", image.config))?;
        let (config_digest, config_size) = place(&config_path)?;
        let mut layers = Vec::new();
        for l in &image.layers {
            let (digest, size) = place(&member(raw, links, l, label)?)?;
            layers.push(serde_json::json!({
                "mediaType": media::OCI_LAYER_TAR,
                "digest": digest.as_str(),
                "size": size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {
                "mediaType": media::OCI_CONFIG,
                "digest": config_digest.as_str(),
                "size": config_size,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
        let digest = Digest::of(&bytes);
        let path = blobs.join(digest.hex());
        fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
        let base = Descriptor {
            media_type: media::OCI_MANIFEST.to_string(),
            digest,
            size: bytes.len() as u64,
            platform: Some(config.platform_spec()),
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        };
        push_named(
            &mut entries,
            base,
            image.repo_tags.clone().unwrap_or_default(),
        );
    }
    write_layout(root, &entries)
}

/// Pushes `entry` once per name (`ref.name` = the tag, `io.containerd.image.name`
/// = the name, so K3s and `ctr` name it as Docker did), or once unnamed.
fn push_named(out: &mut Vec<Descriptor>, entry: Descriptor, names: Vec<String>) {
    if names.is_empty() {
        out.push(entry);
        return;
    }
    for n in names {
        let mut e = entry.clone();
        e.annotations
            .insert(REF_NAME_ANNOTATION.into(), tag_of(&n).to_string());
        e.annotations.insert(CONTAINERD_NAME_ANNOTATION.into(), n);
        out.push(e);
    }
}

/// Docker ≥ 25: the layout is the archive's own; its `index.json` entries get
/// the full names of `manifest.json` when they lack them (matched by config).
fn annotate_docker25(raw: &Path, saved: &[SavedImage], label: &str) -> Result<()> {
    let path = raw.join("index.json");
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let mut index: crate::image::Index = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed(format!("index.json in {label}"), e))?;
    if index
        .manifests
        .iter()
        .all(|d| d.annotations.contains_key(CONTAINERD_NAME_ANNOTATION))
    {
        return Ok(());
    }
    // Config digest → the names `manifest.json` gives the image using it.
    let mut names_by_config: HashMap<String, Vec<String>> = HashMap::new();
    for s in saved {
        if let Some(hex) = s.config.strip_prefix("blobs/sha256/") {
            names_by_config
                .entry(hex.to_string())
                .or_default()
                .extend(s.repo_tags.clone().unwrap_or_default());
        }
    }
    let mut out = Vec::new();
    for d in index.manifests.drain(..) {
        let names = if d.annotations.contains_key(CONTAINERD_NAME_ANNOTATION) {
            Vec::new()
        } else {
            let mut names: Vec<String> = configs_below(raw, &d.digest)
                .iter()
                .filter_map(|h| names_by_config.get(h))
                .flatten()
                .cloned()
                .collect();
            names.dedup();
            names
        };
        push_named(&mut out, d, names);
    }
    write_layout(raw, &out)
}

/// The config digests (hex) of the image `digest` names in the layout at
/// `raw`, or of the images of the index it names (one level, as Docker writes).
fn configs_below(raw: &Path, digest: &Digest) -> Vec<String> {
    let read = |d: &Digest| -> Option<Value> {
        let b = fs::read(raw.join("blobs").join("sha256").join(d.hex())).ok()?;
        serde_json::from_slice(&b).ok()
    };
    let config = |v: &Value| {
        v["config"]["digest"]
            .as_str()
            .and_then(|c| c.strip_prefix("sha256:"))
            .map(str::to_string)
    };
    let Some(top) = read(digest) else {
        return Vec::new();
    };
    if let Some(c) = config(&top) {
        return vec![c];
    }
    top["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["digest"].as_str().and_then(|d| Digest::parse(d).ok()))
        .filter_map(|d| read(&d).as_ref().and_then(config))
        .collect()
}

/// `oci-layout` and `index.json` over `entries`.
fn write_layout(root: &Path, entries: &[Descriptor]) -> Result<()> {
    let oci_layout = root.join("oci-layout");
    fs::write(&oci_layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| Error::io(&oci_layout, e))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    });
    let path = root.join("index.json");
    let bytes = serde_json::to_vec(&index).map_err(|e| Error::Internal(e.to_string()))?;
    fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
}

#[async_trait]
impl Store for DockerArchiveStore {
    fn name(&self) -> String {
        format!("docker-archive:{}", self.path.display())
    }

    async fn default_selector(&self) -> Result<Selector> {
        match (&self.chosen, &self.ambiguous) {
            (Some(d), _) => Ok(Selector::Digest(d.clone())),
            (None, Some(why)) => Err(Error::Invalid(why.clone())),
            (None, None) => self.inner.default_selector().await,
        }
    }

    async fn resolve(&self, selector: &Selector) -> Result<Descriptor> {
        self.inner.resolve(selector).await
    }

    async fn get_manifest(&self, selector: &Selector) -> Result<RawManifest> {
        self.inner.get_manifest(selector).await
    }

    async fn put_manifest(&self, _: &RawManifest, _: Option<&str>) -> Result<()> {
        Err(self.read_only())
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        self.inner.blob_exists(digest).await
    }

    async fn get_blob(&self, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        self.inner.get_blob(digest, size).await
    }

    fn local_blob(&self, digest: &Digest) -> Option<PathBuf> {
        self.inner.local_blob(digest)
    }

    async fn put_blob(&self, _: &Digest, _: u64, _: BlobReader) -> Result<BlobPut> {
        Err(self.read_only())
    }

    async fn tags(&self) -> Result<Vec<String>> {
        self.inner.tags().await
    }
}

/// A `docker save` archive being written: the classic form, which Docker
/// 19.03's `docker load` and containerd's `ctr images import` both read
/// (`manifest.json` with `RepoTags`, the config JSON with its own bytes, one
/// uncompressed tar per layer named by its diff id). Blobs and manifests are
/// staged in a private OCI layout beside the file; [`Store::commit`] writes the
/// archive (one platform) through a temporary file and a rename, so the file
/// is either the old one or complete. Entries are in a fixed order with fixed
/// metadata: the same image gives the same bytes.
pub struct DockerArchiveWriter {
    /// The staging layout (declared first: dropped before its directory).
    staging: LayoutStore,
    path: PathBuf,
    /// `RepoTags` named by the location (`docker-archive:FILE:NAME:TAG`).
    repo_tag: Option<String>,
    /// What was tagged: (tag, full name when known, digest).
    tagged: std::sync::Mutex<Vec<(String, Option<String>, Digest)>>,
    _dir: tempfile::TempDir,
}

impl DockerArchiveWriter {
    /// Starts writing the archive at `path` (nothing touches it before
    /// `commit`); `name` (`NAME:TAG`) is its `RepoTags` entry.
    pub fn create(path: &Path, name: Option<&str>) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::Invalid(format!(
                "docker-archive:{} is a directory: name the file to write",
                path.display()
            )));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".archgate-docker-archive-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let staging = LayoutStore::open_dir(&dir.path().join("layout"), true)?;
        Ok(DockerArchiveWriter {
            staging,
            path: path.to_path_buf(),
            repo_tag: name.map(str::to_string),
            tagged: std::sync::Mutex::new(Vec::new()),
            _dir: dir,
        })
    }

    fn record(&self, tag: &str, name: Option<&str>, digest: &Digest) {
        let mut t = self.tagged.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|(x, _, _)| x != tag);
        t.push((tag.to_string(), name.map(str::to_string), digest.clone()));
    }

    /// The one platform image under `digest`: itself, or the single platform
    /// entry of an index (attestations left out).
    async fn single_image(&self, digest: &Digest) -> Result<super::ImageView> {
        let what = self.name();
        let view = super::IndexView::read(self, &Selector::Digest(digest.clone()), &what).await?;
        let entries = view.platform_entries().await?;
        match entries.as_slice() {
            [one] => view.image(&one.descriptor).await,
            many => Err(Error::Invalid(format!(
                "{what} holds one platform, as `docker save` does; the image has {} ({}): pass --platform P (one file per platform); nothing was written",
                many.len(),
                many.iter()
                    .map(|e| e.platform.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// `NAME:TAG` as Docker writes it in `RepoTags`: `docker.io/library/` dropped.
fn familiar(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").unwrap_or(n).to_string()
}

/// A tar header for an archive member: fixed mode, owner and time.
fn member_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes `image` as a classic `docker save` archive at `dest` (a new file).
fn write_classic(
    staging: &LayoutStore,
    image: &super::ImageView,
    repo_tags: &[String],
    dest: &Path,
    label: &str,
) -> Result<()> {
    use std::io::Write;
    let file = fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(256 << 10, file));
    let append = |tar: &mut tar::Builder<_>, name: &str, size: u64, data: &mut dyn io::Read| {
        tar.append_data(&mut member_header(size), name, data)
            .map_err(|e| Error::io(dest, e))
    };
    let config_name = format!("{}.json", image.manifest().config.digest.hex());
    let config = image.raw_config();
    append(
        &mut tar,
        &config_name,
        config.len() as u64,
        &mut &config[..],
    )?;

    let diff_ids: Vec<String> = serde_json::from_slice::<Value>(config)
        .ok()
        .and_then(|c| c["rootfs"]["diff_ids"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let layers = &image.manifest().layers;
    if diff_ids.len() != layers.len() {
        return Err(Error::malformed(
            format!("config {} for {label}", image.manifest().config.digest),
            format!(
                "its rootfs.diff_ids lists {} layer(s) for the manifest's {}: `docker load` would refuse the archive",
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let mut layer_names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let blob = staging.local_blob(&layer.digest).ok_or_else(|| {
            Error::Internal(format!("layer {} was not staged for {label}", layer.digest))
        })?;
        let compression = media::layer_compression(&layer.media_type)
            .map_err(|why| Error::malformed(format!("layer {} for {label}", layer.digest), why))?;
        // Uncompressed, as `docker save` writes and `docker load` checks
        // against the config's diff ids: spooled to learn the size first.
        let mut spool = tempfile::tempfile_in(dest.parent().unwrap_or(Path::new(".")))
            .map_err(|e| Error::io(dest, e))?;
        let raw = fs::File::open(&blob).map_err(|e| Error::io(&blob, e))?;
        let mut reader: Box<dyn io::Read> = match compression {
            media::LayerCompression::Gzip => {
                Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(raw)))
            }
            media::LayerCompression::None => Box::new(io::BufReader::new(raw)),
        };
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::malformed(format!("layer {} for {label}", layer.digest), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            spool.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        }
        let size = hasher.len();
        let diff_id = hasher.finish();
        let want = &diff_ids[i];
        if want != diff_id.as_str() {
            return Err(Error::malformed(
                format!("layer {} for {label}", layer.digest),
                format!(
                    "uncompressed it is {diff_id}, but the config's rootfs.diff_ids[{i}] says {want}: `docker load` would refuse it"
                ),
            ));
        }
        let name = format!("{}.tar", diff_id.hex());
        if !layer_names.contains(&name) {
            io::Seek::seek(&mut spool, io::SeekFrom::Start(0)).map_err(|e| Error::io(dest, e))?;
            append(&mut tar, &name, size, &mut spool)?;
        }
        layer_names.push(name);
    }
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }]))
    .map_err(|e| Error::Internal(e.to_string()))?;
    append(
        &mut tar,
        "manifest.json",
        manifest.len() as u64,
        &mut &manifest[..],
    )?;
    let inner = tar
        .into_inner()
        .map_err(|e| Error::io(dest, e))?
        .into_inner()
        .map_err(|e| Error::io(dest, e.into_error()))?;
    inner.sync_all().map_err(|e| Error::io(dest, e))
}

#[async_trait]
impl Store for DockerArchiveWriter {
    fn name(&self) -> String {
        format!("docker-archive:{}", self.path.display())
    }

    async fn resolve(&self, selector: &Selector) -> Result<Descriptor> {
        self.staging.resolve(selector).await
    }

    async fn get_manifest(&self, selector: &Selector) -> Result<RawManifest> {
        self.staging.get_manifest(selector).await
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        self.staging.put_manifest(manifest, tag).await?;
        if let Some(t) = tag {
            self.record(t, None, &manifest.digest);
        }
        Ok(())
    }

    async fn put_named_tag(&self, manifest: &RawManifest, tag: &str, name: &str) -> Result<()> {
        self.staging.put_manifest(manifest, Some(tag)).await?;
        self.record(tag, Some(name), &manifest.digest);
        Ok(())
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        self.staging.blob_exists(digest).await
    }

    async fn get_blob(&self, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        self.staging.get_blob(digest, size).await
    }

    fn local_blob(&self, digest: &Digest) -> Option<PathBuf> {
        self.staging.local_blob(digest)
    }

    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobReader) -> Result<BlobPut> {
        self.staging.put_blob(digest, size, data).await
    }

    async fn tags(&self) -> Result<Vec<String>> {
        self.staging.tags().await
    }

    async fn commit(&self) -> Result<()> {
        let tagged = self
            .tagged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((_, _, digest)) = tagged.last() else {
            return Err(Error::Internal(format!(
                "nothing was tagged for {}",
                self.name()
            )));
        };
        let image = self.single_image(digest).await?;
        let mut repo_tags: Vec<String> = match &self.repo_tag {
            Some(n) => vec![familiar(n)],
            None => tagged
                .iter()
                .filter_map(|(tag, name, _)| name.as_ref().map(|n| familiar(&format!("{n}:{tag}"))))
                .collect(),
        };
        repo_tags.dedup();
        if repo_tags.is_empty() {
            tracing::warn!(
                "{} records no name: `docker load` gives an untagged image; name it (docker-archive:FILE:NAME:TAG or --name REGISTRY/NAME)",
                self.name()
            );
        }
        let parent = self._dir.path().to_path_buf();
        let dest = self.path.clone();
        let label = self.name();
        let staging = &self.staging;
        layout::blocking(|| {
            let temp = parent.join("archive.tar");
            write_classic(staging, &image, &repo_tags, &temp, &label)?;
            fs::rename(&temp, &dest).map_err(|e| Error::io(&dest, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_docker_reads_them() {
        for (a, b) in [
            ("debian", "debian:latest"),
            ("debian:bullseye", "debian:bullseye"),
            ("docker.io/library/debian:bullseye", "debian:bullseye"),
            ("10.0.0.5:5000/debian:v1", "10.0.0.5:5000/debian:v1"),
            ("10.0.0.5:5000/debian", "10.0.0.5:5000/debian:latest"),
        ] {
            assert_eq!(normalise(a), b, "{a}");
        }
        assert_eq!(tag_of("10.0.0.5:5000/debian"), "latest");
        assert_eq!(tag_of("debian:bullseye"), "bullseye");
    }

    #[test]
    fn links_stay_inside_the_archive() {
        assert_eq!(
            normalise_inside(Path::new("a/../b/layer.tar")),
            Some(PathBuf::from("b/layer.tar"))
        );
        assert_eq!(normalise_inside(Path::new("a/../../etc/passwd")), None);
        assert_eq!(normalise_inside(Path::new("/etc/passwd")), None);
        assert_eq!(plain_relative(Path::new("../x")), None);
        assert_eq!(
            plain_relative(Path::new("./x/y")),
            Some(PathBuf::from("x/y"))
        );
    }
}
