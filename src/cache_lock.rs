//! Cross-process locks on the keys of the cache directory, so several archgate
//! processes (CI jobs on one runner) sharing one cache do each piece of work
//! once: one unpacks a root, writes a layer or downloads a blob; the others
//! wait and then use it.
//!
//! A lock is `<cache>/locks/<kind>-<key>.lock`, held with [`File::lock`]
//! (`flock` on Unix) for as long as the [`KeyLock`] lives. The operating
//! system releases it when the process ends, even when it is killed, so a
//! crashed job never leaves a cache locked. Lock files are never deleted:
//! deleting one while another process waits on it would give two holders.
//!
//! The cache has one blob directory, `<cache>/blobs/<algorithm>/<hex>`
//! ([`blob_path`]): layers `archgate build` writes and blobs `archgate verify`
//! downloads live there under one naming, so verify right after build reads
//! the built layer and downloads nothing. An entry appears only whole, under
//! the name its bytes hashed to (temporary file in the same directory, then
//! rename).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image::Digest;

/// An exclusive lock on one cache key, released when dropped.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

impl KeyLock {
    /// Waits until this process holds the lock on `kind`-`key` in `cache`.
    /// Blocks the thread: call it from blocking code or through [`KeyLock::acquire`].
    pub fn acquire_blocking(cache: &Path, kind: &str, key: &str) -> Result<KeyLock> {
        let path = lock_path(cache, kind, key);
        let file = open_lock(cache, kind, key)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // Another process sharing the cache (or another task of this
                // one) is unpacking, downloading or writing the same entry.
                tracing::info!(
                    lock = %path.display(),
                    "waiting for the cache entry {kind} {key}, being made by another archgate process or task"
                );
                file.lock().map_err(|e| not_lockable(&path, e))?;
            }
            Err(TryLockError::Error(e)) => return Err(not_lockable(&path, e)),
        }
        Ok(KeyLock { _file: file })
    }

    /// The lock on `kind`-`key` when nobody holds it now, else `None`: how
    /// `archgate cache prune` skips entries in use instead of waiting.
    pub fn try_acquire(cache: &Path, kind: &str, key: &str) -> Result<Option<KeyLock>> {
        let file = open_lock(cache, kind, key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(not_lockable(&lock_path(cache, kind, key), e)),
        }
    }

    /// A shared hold on `kind`-`key`: any number of readers use the entry at
    /// once, and [`KeyLock::try_acquire`] (prune) finds it busy until they let go.
    pub fn acquire_shared_blocking(cache: &Path, kind: &str, key: &str) -> Result<KeyLock> {
        let file = open_lock(cache, kind, key)?;
        file.lock_shared()
            .map_err(|e| not_lockable(&lock_path(cache, kind, key), e))?;
        Ok(KeyLock { _file: file })
    }

    /// [`KeyLock::acquire_blocking`] on a blocking thread, so waiting for
    /// another process does not stall the async runtime.
    pub async fn acquire(cache: &Path, kind: &str, key: &str) -> Result<KeyLock> {
        let (cache, kind, key) = (cache.to_path_buf(), kind.to_string(), key.to_string());
        tokio::task::spawn_blocking(move || KeyLock::acquire_blocking(&cache, &kind, &key))
            .await
            .map_err(|e| Error::Internal(format!("waiting for a cache lock: {e}")))?
    }
}

/// Opens (creating) the lock file of `kind`-`key`.
fn open_lock(cache: &Path, kind: &str, key: &str) -> Result<File> {
    let path = lock_path(cache, kind, key);
    let dir = cache.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| not_writable(&dir, e))?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| not_writable(&path, e))
}

/// The directory of the cache's blobs hashed with `algorithm` (`sha256`).
pub fn blob_dir(cache: &Path, algorithm: &str) -> PathBuf {
    cache.join("blobs").join(algorithm)
}

/// The one place a blob lives in the cache.
pub fn blob_path(cache: &Path, digest: &Digest) -> PathBuf {
    blob_dir(cache, digest.algorithm()).join(digest.hex())
}

/// The lock file of `kind`-`key`.
pub fn lock_path(cache: &Path, kind: &str, key: &str) -> PathBuf {
    cache.join("locks").join(format!("{kind}-{key}.lock"))
}

/// An I/O error on the lock file, with what to do about it.
fn lock_error(path: &Path, e: std::io::Error, hint: &str) -> Error {
    Error::io(path, std::io::Error::new(e.kind(), format!("{e}; {hint}")))
}

fn not_writable(path: &Path, e: std::io::Error) -> Error {
    lock_error(
        path,
        e,
        "every archgate process sharing the cache must be able to create its lock files \
         (set `cache` / ARCHGATE_CACHE to a writable directory)",
    )
}

fn not_lockable(path: &Path, e: std::io::Error) -> Error {
    lock_error(
        path,
        e,
        "the cache must be on a file system with file locks \
         (set `cache` / ARCHGATE_CACHE to a local directory)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_is_busy_for_another_open_file_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = KeyLock::acquire_blocking(dir.path(), "rootfs", "k").unwrap();
        let path = lock_path(dir.path(), "rootfs", "k");
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        // Another key is independent.
        let _b = KeyLock::acquire_blocking(dir.path(), "rootfs", "other").unwrap();
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    #[test]
    fn a_waiter_gets_the_lock_once_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = KeyLock::acquire_blocking(dir.path(), "layer", "k").unwrap();
        let cache = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || KeyLock::acquire_blocking(&cache, "layer", "k"));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished(), "acquired while held");
        drop(held);
        assert!(waiter.join().unwrap().is_ok());
    }

    #[test]
    fn try_acquire_skips_a_held_key_and_shared_holds_exclude_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = KeyLock::acquire_blocking(dir.path(), "rootfs", "k").unwrap();
        assert!(
            KeyLock::try_acquire(dir.path(), "rootfs", "k")
                .unwrap()
                .is_none()
        );
        drop(held);
        let a = KeyLock::acquire_shared_blocking(dir.path(), "use", "k").unwrap();
        let b = KeyLock::acquire_shared_blocking(dir.path(), "use", "k").unwrap();
        assert!(
            KeyLock::try_acquire(dir.path(), "use", "k")
                .unwrap()
                .is_none()
        );
        drop((a, b));
        assert!(
            KeyLock::try_acquire(dir.path(), "use", "k")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_unwritable_cache_names_the_lock_file_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the cache directory should be: nothing can be created under it.
        let cache = dir.path().join("cache");
        std::fs::write(&cache, b"").unwrap();
        let e = KeyLock::acquire_blocking(&cache, "blob", "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("locks"), "{e}");
        assert!(e.contains("ARCHGATE_CACHE"), "{e}");
    }
}
