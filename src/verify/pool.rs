//! The shared file pool, `<cache>/files/<xx>/<sha256>-<mode>`: one inode per
//! distinct (content, mode) across every unpacked root, so roots of images
//! that share layers (a JDK image and the service built FROM it, two tags of
//! one base) take the disk once.
//!
//! A file just unpacked is hashed while written; if the pool has the same
//! bytes and mode, the fresh file is replaced by a hard link to the pool's
//! (link to a temporary name, then rename over it: the file stays whole if the
//! pool entry vanished meanwhile), else it is linked into the pool for the
//! next root. Sharing an inode is safe because nothing writes through a name
//! in a root: roots are bound read-only into the sandbox, and unpacking
//! replaces a name by unlinking it and creating a new file, never by writing
//! into the old one. Mode and owner live in the inode, hence the mode in the
//! key (the owner is always this user). Everything is best effort: on a file
//! system without hard links, across devices or at the link limit, the root
//! keeps its own copy. `archgate cache prune` removes pool files no root
//! links to any more ([`crate::cache_prune`]).

use std::io;
use std::path::{Path, PathBuf};

use crate::image::digest::Hasher;

/// The pool directory of one cache.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
}

impl Pool {
    pub fn new(dir: impl Into<PathBuf>) -> Pool {
        Pool { dir: dir.into() }
    }

    /// Makes the freshly written `dest` (content hashed to `hasher`, final
    /// permission bits `mode`) share the pool's inode for the same bytes and
    /// mode, or puts it in the pool. Empty files are left alone.
    pub fn share(&self, dest: &Path, hasher: Hasher, mode: u32) {
        if hasher.is_empty() {
            return;
        }
        let digest = hasher.finish();
        let hex = digest.hex();
        let shard = self.dir.join(&hex[..2]);
        let pooled = shard.join(format!("{hex}-{mode:o}"));
        if let Err(e) = std::fs::create_dir_all(&shard) {
            tracing::debug!(pool = %shard.display(), "file pool unavailable: {e}");
            return;
        }
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dest.with_file_name(format!(".archgate-link-{name}"));
        match std::fs::hard_link(&pooled, &tmp) {
            Ok(()) => {
                if std::fs::rename(&tmp, dest).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // First of its kind: the next root links to this one. A
                // concurrent unpack may have pooled the same bytes first; fine.
                let _ = std::fs::hard_link(dest, &pooled);
            }
            Err(e) => {
                tracing::debug!(file = %dest.display(), "keeps its own copy: {e}");
            }
        }
    }
}
