//! The verification cache (`cache` / `ARCHGATE_CACHE`, default
//! `~/.cache/archgate`): blobs by digest and unpacked root filesystems by the
//! chain of layer digests that made them.
//!
//! - `blobs/sha256/<hex>`: a blob, written under its name only after its bytes
//!   hashed to it (temporary file + rename), so an entry is always right. The
//!   directory is the cache's one blob directory
//!   ([`crate::cache_lock::blob_path`]): the layers `archgate build` wrote are
//!   found there too, so verify right after build downloads none.
//! - `rootfs/<key>`: a root unpacked from layers, keyed by the sha256 of the
//!   ordered *compressed layer digests* — content addresses that were verified
//!   while unpacking — never by the config's `diff_ids`, which an image could
//!   state falsely to poison the cache. A root is unpacked into
//!   `rootfs/.unpack-<key>-*`, renamed into place only once complete, and is
//!   only ever bound read-only into a sandbox.
//! - `locks/`: one lock file per key ([`crate::cache_lock`]). Several archgate
//!   processes (CI jobs on one runner) may share the directory: whoever holds
//!   a key's lock checks, unpacks or downloads and installs; the others wait
//!   and then find the entry in place. So a key is unpacked once, and a staged
//!   root found under the lock belongs to a process that died: it is removed.
//!
//! Every hit records a use (the entry's mtime, [`crate::cache_prune::touch`])
//! and readers hold the entry's use lock shared while they read it, so
//! `archgate cache prune` and the `cache_max_size` bound remove least
//! recently used entries first and never one in use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cache_lock::KeyLock;
use crate::error::{Error, Result};
use crate::image::digest::Hasher;
use crate::image::{Descriptor, Digest};
use crate::store::Store;

/// The cache directory and in-process locks so two platforms sharing layers
/// unpack them once without tying up threads waiting on the file lock.
pub struct Cache {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Where a layer's bytes are: a verified cache file, or a store's own file
/// that must be verified while read.
#[derive(Debug, Clone)]
pub struct BlobFile {
    pub path: PathBuf,
    pub verified: bool,
    /// The shared use lock on a cache entry, so prune leaves it while it is read.
    pub in_use: Option<Arc<KeyLock>>,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding unpacked roots (and roots being unpacked).
    pub fn rootfs_dir(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The cache key of the root made by `layers`, in order.
    pub fn root_key(layers: &[Descriptor]) -> String {
        let mut h = Hasher::new();
        h.update(b"archgate-rootfs-v1\n");
        for l in layers {
            h.update(l.digest.as_str().as_bytes());
            h.update(b"\n");
        }
        h.finish().hex().to_string()
    }

    /// The path of a complete root, when it is cached.
    pub fn cached_root(&self, key: &str) -> Option<PathBuf> {
        let p = self.rootfs_dir().join(key);
        p.is_dir().then_some(p)
    }

    /// Removes what a process that died while unpacking `key` left behind.
    /// Only under `key`'s lock: then no living process is unpacking it.
    pub fn remove_stale_staging(&self, _held: &RootLock, key: &str) {
        let prefix = crate::cache_prune::staging_prefix(key);
        let Ok(read) = std::fs::read_dir(self.rootfs_dir()) else {
            return;
        };
        for e in read.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                tracing::debug!(dir = %e.path().display(), "removing an abandoned unpack");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Moves a complete root (a directory inside [`Cache::rootfs_dir`]) into
    /// place under `key`, or keeps the one already there (installed by an
    /// archgate that does not take the lock) and drops `staged`.
    pub fn install_root(&self, _held: &RootLock, staged: &Path, key: &str) -> Result<PathBuf> {
        let dest = self.rootfs_dir().join(key);
        let theirs = |dest: PathBuf| {
            let _ = std::fs::remove_dir_all(staged);
            Ok(dest)
        };
        match std::fs::rename(staged, &dest) {
            Ok(()) => Ok(dest),
            // rename(2) onto a non-empty directory: ENOTEMPTY or EEXIST.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) && dest.is_dir() =>
            {
                theirs(dest)
            }
            Err(e) => Err(Error::io(&dest, e)),
        }
    }

    /// Holds `key` while its root is checked for, unpacked and installed:
    /// first against the other tasks of this process, then against other
    /// processes sharing the directory.
    pub async fn lock(&self, key: &str) -> Result<RootLock> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.to_string()).or_default().clone()
        };
        let task = m.lock_owned().await;
        let file = KeyLock::acquire(&self.dir, "rootfs", key).await?;
        Ok(RootLock {
            _file: file,
            _task: task,
        })
    }

    /// Whether [`Cache::blob`] would find `desc` without downloading it (for
    /// progress totals only: the answer may change before `blob` runs).
    pub fn has_blob(&self, store: &dyn Store, desc: &Descriptor) -> bool {
        store.local_blob(&desc.digest).is_some()
            || std::fs::metadata(crate::cache_lock::blob_path(&self.dir, &desc.digest))
                .is_ok_and(|m| m.len() == desc.size)
    }

    /// A blob as a local file: the store's own file when it has one (to be
    /// verified while read), else a cache entry, downloaded and verified now
    /// when missing; the bytes downloaded count towards `progress`.
    pub async fn blob(
        &self,
        store: &dyn Store,
        desc: &Descriptor,
        progress: Option<&crate::progress::Tracker>,
    ) -> Result<BlobFile> {
        if let Some(path) = store.local_blob(&desc.digest) {
            return Ok(BlobFile {
                path,
                verified: false,
                in_use: None,
            });
        }
        let dir = crate::cache_lock::blob_dir(&self.dir, desc.digest.algorithm());
        let path = crate::cache_lock::blob_path(&self.dir, &desc.digest);
        let key = format!("{}-{}", desc.digest.algorithm(), desc.digest.hex());
        // Held from before the lookup: prune cannot take the blob away between.
        let in_use = Arc::new(use_lock(&self.dir, crate::cache_prune::USE_BLOB, &key).await?);
        if let Some(hit) = cached_blob(&path, desc.size, &in_use).await {
            return Ok(hit);
        }
        // One download per blob across processes; whoever waited finds it in place.
        let _held = KeyLock::acquire(&self.dir, "blob", &key).await?;
        if let Some(hit) = cached_blob(&path, desc.size, &in_use).await {
            return Ok(hit);
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(&dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&crate::cache_prune::temp_prefix("blob", &key))
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let started = std::time::Instant::now();
        let reader = store.get_blob(&desc.digest, Some(desc.size)).await?;
        let mut reader = crate::progress::counted(progress, reader);
        let mut file =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?);
        // On a signal the download stops and `tmp` is removed on return.
        tokio::select! {
            copied = tokio::io::copy(&mut reader, &mut file) => {
                copied.map_err(|e| blob_error(store, &desc.digest, tmp.path(), e))?;
            }
            signal = crate::cancel::cancelled() => return Err(Error::Cancelled(signal)),
        }
        drop(file);
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        // A progress line per large download: bytes and throughput.
        if desc.size >= 1 << 20 {
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            tracing::info!(
                "blob {} ({}) from {}: {secs:.2} s, {}/s",
                desc.digest,
                crate::inspect::human_size(desc.size),
                store.name(),
                crate::inspect::human_size((desc.size as f64 / secs) as u64)
            );
        }
        Ok(BlobFile {
            path,
            verified: true,
            in_use: Some(in_use),
        })
    }
}

/// A shared hold on `kind`-`key`, taken on a blocking thread.
pub async fn use_lock(cache: &Path, kind: &str, key: &str) -> Result<KeyLock> {
    let (cache, kind, key) = (cache.to_path_buf(), kind.to_string(), key.to_string());
    tokio::task::spawn_blocking(move || KeyLock::acquire_shared_blocking(&cache, &kind, &key))
        .await
        .map_err(|e| Error::Internal(format!("waiting for a cache lock: {e}")))?
}

/// The cache entry at `path` when it is there whole (entries are renamed into
/// place only after their bytes hashed to their name), its use recorded.
async fn cached_blob(path: &Path, size: u64, in_use: &Arc<KeyLock>) -> Option<BlobFile> {
    let m = tokio::fs::metadata(path).await.ok()?;
    if m.len() != size {
        return None;
    }
    crate::cache_prune::touch(path);
    Some(BlobFile {
        path: path.to_path_buf(),
        verified: true,
        in_use: Some(in_use.clone()),
    })
}

/// A root key held by this task, in this process and across processes.
pub struct RootLock {
    _file: KeyLock,
    _task: tokio::sync::OwnedMutexGuard<()>,
}

/// A failed download: a digest mismatch is the content's fault; anything
/// else (a dropped connection, a full disk) the infrastructure's.
fn blob_error(store: &dyn Store, digest: &Digest, tmp: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::InvalidData {
        Error::malformed(format!("blob {digest} in {}", store.name()), e)
    } else {
        Error::io(tmp, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(d: &str) -> Descriptor {
        Descriptor {
            media_type: crate::image::media::OCI_LAYER_GZIP.into(),
            digest: Digest::of(d.as_bytes()),
            size: 1,
            platform: None,
            annotations: Default::default(),
            urls: vec![],
        }
    }

    /// A staged root under `cache` for `key`, holding `marker`.
    fn staged(cache: &Cache, key: &str, marker: &str) -> PathBuf {
        std::fs::create_dir_all(cache.rootfs_dir()).unwrap();
        let dir = tempfile::Builder::new()
            .prefix(&crate::cache_prune::staging_prefix(key))
            .tempdir_in(cache.rootfs_dir())
            .unwrap()
            .keep();
        std::fs::write(dir.join("marker"), marker).unwrap();
        dir
    }

    #[tokio::test]
    async fn install_keeps_the_root_already_in_place_and_drops_the_staged_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let held = cache.lock("k").await.unwrap();
        let first = staged(&cache, "k", "first");
        let path = cache.install_root(&held, &first, "k").unwrap();
        assert_eq!(cache.cached_root("k"), Some(path.clone()));
        // A second install of the same key (another process, before locks): theirs stays.
        let second = staged(&cache, "k", "second");
        assert_eq!(cache.install_root(&held, &second, "k").unwrap(), path);
        assert_eq!(
            std::fs::read_to_string(path.join("marker")).unwrap(),
            "first"
        );
        assert!(!second.exists(), "the staged copy is removed");
    }

    #[tokio::test]
    async fn only_this_keys_abandoned_unpacks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let mine = staged(&cache, "k", "dead process");
        let other = staged(&cache, "other", "another key");
        let held = cache.lock("k").await.unwrap();
        cache.remove_stale_staging(&held, "k");
        assert!(!mine.exists());
        assert!(other.exists(), "another key's unpack may still be running");
    }

    #[tokio::test]
    async fn a_key_is_held_across_cache_values_as_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Cache::new(dir.path()), Cache::new(dir.path()));
        let held = a.lock("k").await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), b.lock("k"));
        assert!(waiting.await.is_err(), "b got the key while a held it");
        drop(held);
        b.lock("k").await.unwrap();
    }

    #[test]
    fn root_key_depends_on_every_layer_and_their_order() {
        let (a, b) = (layer("a"), layer("b"));
        let ab = Cache::root_key(&[a.clone(), b.clone()]);
        assert_eq!(ab, Cache::root_key(&[a.clone(), b.clone()]));
        assert_ne!(ab, Cache::root_key(&[b.clone(), a.clone()]));
        assert_ne!(ab, Cache::root_key(std::slice::from_ref(&a)));
        assert_eq!(ab.len(), 64);
    }
}
