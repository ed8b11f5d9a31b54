//! The verification cache (`cache` / `ARCHGATE_CACHE`, default
//! `~/.cache/archgate`): blobs by digest and unpacked root filesystems by the
//! chain of layer digests that made them.
//!
//! - `blobs/sha256/<hex>`: a blob, written under its name only after its bytes
//!   hashed to it (temporary file + rename), so an entry is always right.
//! - `rootfs/<key>`: a root unpacked from layers, keyed by the sha256 of the
//!   ordered *compressed layer digests* — content addresses that were verified
//!   while unpacking — never by the config's `diff_ids`, which an image could
//!   state falsely to poison the cache. A root is renamed into place only once
//!   complete, and is only ever bound read-only into a sandbox.
//!
//! Nothing is evicted automatically: delete the directory to reclaim space.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::image::digest::Hasher;
use crate::image::{Descriptor, Digest};
use crate::store::Store;

/// The cache directory and in-process locks so two platforms sharing layers
/// unpack them once.
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

    /// Moves a complete root (a directory inside [`Cache::rootfs_dir`]) into
    /// place under `key`. When another process got there first, theirs is kept.
    pub fn install_root(&self, staged: &Path, key: &str) -> Result<PathBuf> {
        let dest = self.rootfs_dir().join(key);
        match std::fs::rename(staged, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(staged);
                Ok(dest)
            }
            Err(e) => Err(Error::io(&dest, e)),
        }
    }

    /// A lock for `key`, held while a root is checked for and unpacked.
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// A blob as a local file: the store's own file when it has one (to be
    /// verified while read), else a cache entry, downloaded and verified now
    /// when missing.
    pub async fn blob(&self, store: &dyn Store, desc: &Descriptor) -> Result<BlobFile> {
        if let Some(path) = store.local_blob(&desc.digest) {
            return Ok(BlobFile {
                path,
                verified: false,
            });
        }
        let dir = self.dir.join("blobs").join(desc.digest.algorithm());
        let path = dir.join(desc.digest.hex());
        if let Ok(m) = tokio::fs::metadata(&path).await
            && m.len() == desc.size
        {
            return Ok(BlobFile {
                path,
                verified: true,
            });
        }
        // A layer `archgate build` wrote on this machine: verify right after
        // build downloads nothing (hashed while unpacked, like a store's file).
        let built = crate::build::layer::LayerCache::new(&self.dir).blob_path(&desc.digest);
        if let Ok(m) = tokio::fs::metadata(&built).await
            && m.len() == desc.size
        {
            return Ok(BlobFile {
                path: built,
                verified: false,
            });
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(&dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let started = std::time::Instant::now();
        let mut reader = store.get_blob(&desc.digest, Some(desc.size)).await?;
        let mut file =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?);
        tokio::io::copy(&mut reader, &mut file)
            .await
            .map_err(|e| blob_error(store, &desc.digest, tmp.path(), e))?;
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
        })
    }
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
