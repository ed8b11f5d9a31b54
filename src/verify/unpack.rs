//! Layers → an unpacked root, beside the [`Cache`] that keeps it: a root is
//! looked up by its layers' digests under the key's lock, else its blobs are
//! fetched into the cache (or read from the store's own files), applied in
//! order into a staging directory with [`rootfs`]'s safety rules and limits,
//! verified against their digests while read, and installed whole.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::image::digest::Hasher;
use crate::progress;
use crate::store::Store;

use super::cache::{BlobFile, Cache, use_lock};
use super::pool::Pool;
use super::{rootfs, runner};
use crate::cache_lock::KeyLock;

/// A complete, cached root and the shared use lock that keeps prune off it.
pub struct CachedRoot {
    pub path: PathBuf,
    pub in_use: KeyLock,
}

/// The complete, cached root made by `layers`, unpacking it now when no
/// process has yet; at most `max_unpacked_bytes` are written. Its use is
/// recorded and held until the returned value is dropped. Downloading and
/// unpacking are reported as `subject`'s [`progress`].
pub async fn root_for(
    cache: &Cache,
    store: &dyn Store,
    layers: &[Descriptor],
    max_unpacked_bytes: u64,
    subject: &str,
) -> Result<CachedRoot> {
    let key = Cache::root_key(layers);
    let held = cache.lock(&key).await?;
    // Taken under the key's lock, which prune needs too: no removal in between.
    let in_use = use_lock(cache.dir(), crate::cache_prune::USE_ROOT, &key).await?;
    if let Some(path) = cache.cached_root(&key) {
        tracing::debug!(root = %path.display(), "unpacked root from the cache");
        crate::cache_prune::touch(&path);
        return Ok(CachedRoot { path, in_use });
    }
    cache.remove_stale_staging(&held, &key);
    let missing: u64 = layers
        .iter()
        .filter(|l| !cache.has_blob(store, l))
        .map(|l| l.size)
        .sum();
    let download = (missing > 0)
        .then(|| progress::start(subject, progress::Phase::Download, "", Some(missing)));
    let mut files = Vec::new();
    for l in layers {
        files.push((l.clone(), cache.blob(store, l, download.as_ref()).await?));
    }
    if let Some(d) = download {
        d.complete();
    }
    let compressed = layers.iter().map(|l| l.size).sum();
    let tracker = progress::start(subject, progress::Phase::Unpack, "", Some(compressed));
    let dir = cache.rootfs_dir();
    let limits = rootfs::Limits {
        max_total_bytes: max_unpacked_bytes,
        ..rootfs::Limits::default()
    };
    let prefix = crate::cache_prune::staging_prefix(&key);
    let pool = Pool::new(cache.dir().join(crate::cache_prune::POOL_DIR));
    // `Busy` is taken here, before the task can be dropped with this future, so
    // that `cancel::settle` waits until the staging directory is removed.
    let busy = crate::cancel::Busy::start();
    let staged = tokio::task::spawn_blocking(move || {
        let staged = unpack(&dir, &prefix, &files, limits, pool, &tracker);
        drop(busy);
        if staged.is_ok() {
            tracker.complete();
        }
        staged
    })
    .await
    .map_err(|e| Error::Internal(format!("unpacking layers: {e}")))?;
    // A cancelled unpack fails on a read error; the signal is the cause.
    crate::cancel::check()?;
    let staged = staged?;
    let path = cache.install_root(&held, &staged, &key)?;
    crate::cache_prune::touch(&path);
    Ok(CachedRoot { path, in_use })
}

/// Applies layers in order into a fresh directory `dir/PREFIX*`, sharing
/// regular files with other roots through `pool`; returns it.
fn unpack(
    dir: &Path,
    prefix: &str,
    layers: &[(Descriptor, BlobFile)],
    limits: rootfs::Limits,
    pool: Pool,
    tracker: &progress::Tracker,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut root = rootfs::RootFs::new_named(dir, prefix, limits)?;
    root.share_files(pool);
    apply_layers(&mut root, layers, tracker)?;
    runner::prepare_root(root.path())?;
    Ok(root.keep())
}

/// Applies layers in order to `root`, verifying each store file against its
/// digest while it is read (cache files were verified when written).
pub fn apply_layers(
    root: &mut rootfs::RootFs,
    layers: &[(Descriptor, BlobFile)],
    tracker: &progress::Tracker,
) -> Result<()> {
    for (desc, file) in layers {
        let what = format!("layer {}", desc.digest);
        let compression = crate::image::media::layer_compression(&desc.media_type)
            .map_err(|e| Error::malformed(&what, e))?;
        let f = std::fs::File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
        let mut reader = HashingReader {
            inner: std::io::BufReader::with_capacity(256 * 1024, f),
            hasher: Hasher::new(),
            tracker,
        };
        root.apply_layer(&mut reader, compression, &what)?;
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::io(&file.path, e))?;
        if !file.verified {
            let read = reader.hasher.len();
            if read != desc.size {
                return Err(Error::malformed(
                    &what,
                    format!(
                        "is {read} bytes, but the manifest declares {}; the image is corrupt or forged",
                        desc.size
                    ),
                ));
            }
            let actual = reader.hasher.finish();
            if actual != desc.digest {
                return Err(Error::DigestMismatch {
                    what,
                    expected: desc.digest.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Hashes what passes through, to verify a store's own blob file while it is
/// unpacked, and counts it as the unpack's progress.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Hasher,
    tracker: &'a progress::Tracker,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The one place an unpack reads: stopping here removes its staging (`RootFs` on drop).
        if let Some(signal) = crate::cancel::requested() {
            // Not `ErrorKind::Interrupted`: readers retry that one.
            return Err(std::io::Error::other(Error::Cancelled(signal)));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.tracker.add(n as u64);
        Ok(n)
    }
}
