//! Reproducible layers, written in one streaming pass: tar → (sha256 of the
//! tar = diff_id) → gzip in fixed blocks on every core ([`super::gzip`]) →
//! (sha256 of the gzip = blob digest) → a file in the cache's one blob
//! directory ([`crate::cache_lock::blob_path`]). Memory stays flat whatever
//! the layer size, and the bytes do not depend on the number of threads.
//!
//! Entries come sorted from `context`; every header has the fixed mtime
//! (`SOURCE_DATE_EPOCH`, else 0), the spec's owner, no user or group names and
//! no host metadata, so the same inputs give the same bytes. A fingerprint of
//! the inputs' metadata (paths, sizes, mtimes, modes) keys a small index, so a
//! rebuild with nothing changed reads no file content at all.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::context::{Entries, Kind};
use super::gzip::{BlockGzip, Pool};
use crate::cache_lock::KeyLock;
use crate::error::{Error, Result};
use crate::image::Digest;
use crate::image::digest::{HashWriter, Hasher};

/// The gzip level (zlib-rs; its output is pinned to it, so changing it changes digests).
pub(crate) const LEVEL: u32 = 6;
/// Bumped whenever the bytes written for the same inputs change.
const FORMAT: &str = "archgate-layer-v2";

/// A layer written to the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the gzip stream (the blob).
    pub digest: Digest,
    pub size: u64,
}

/// `<cache>/layers/index`, from input fingerprints to blobs in the cache's
/// blob directory. Several processes may share it: a fingerprint's layer is written by
/// whoever holds its lock (`<cache>/locks/layer-<fingerprint>.lock`), and
/// blobs and index records appear only whole (temporary file + rename).
#[derive(Debug, Clone)]
pub struct LayerCache {
    root: PathBuf,
    dir: PathBuf,
    /// The compressing threads every layer written through this cache shares.
    pool: std::sync::Arc<Pool>,
}

impl LayerCache {
    /// The cache under `cache_root`, compressing on `threads` threads (0: one per core).
    pub fn new(cache_root: &Path, threads: usize) -> Result<Self> {
        let pool = Pool::new(threads)
            .map_err(|e| Error::Internal(format!("starting the gzip threads: {e}")))?;
        Ok(LayerCache {
            root: cache_root.to_path_buf(),
            dir: cache_root.join("layers"),
            pool: std::sync::Arc::new(pool),
        })
    }

    /// The compressing threads.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The file holding a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        crate::cache_lock::blob_path(&self.root, digest)
    }

    fn index_path(&self, fingerprint: &str) -> PathBuf {
        self.dir.join("index").join(fingerprint)
    }

    /// The layer for these inputs if it was written before (and its blob is still there).
    pub fn lookup(&self, fingerprint: &str) -> Option<LayerBlob> {
        let bytes = std::fs::read(self.index_path(fingerprint)).ok()?;
        let blob: LayerBlob = serde_json::from_slice(&bytes).ok()?;
        let path = self.blob_path(&blob.digest);
        let md = std::fs::metadata(&path).ok()?;
        if md.len() != blob.size {
            return None;
        }
        // A use, for `archgate cache prune`'s least-recently-used order.
        crate::cache_prune::touch(&path);
        crate::cache_prune::touch(&self.index_path(fingerprint));
        Some(blob)
    }

    /// Writes the layer for `entries` (or finds it in the index). `what` names
    /// it in errors. Blocks while another process writes the same layer.
    pub fn layer(&self, entries: &Entries, epoch: i64, what: &str) -> Result<LayerBlob> {
        self.layer_counted(entries, epoch, what, None)
            .map(|(blob, _)| blob)
    }

    /// [`LayerCache::layer`], and whether this call wrote it (`false`: it was
    /// in the index, perhaps written by another process while this one waited);
    /// the file bytes read while writing count towards `progress`.
    pub fn layer_counted(
        &self,
        entries: &Entries,
        epoch: i64,
        what: &str,
        progress: Option<&crate::progress::Tracker>,
    ) -> Result<(LayerBlob, bool)> {
        let fp = fingerprint(entries, epoch);
        if let Some(hit) = self.lookup(&fp) {
            return Ok((hit, false));
        }
        let _held = KeyLock::acquire_blocking(&self.root, "layer", &fp)?;
        if let Some(hit) = self.lookup(&fp) {
            return Ok((hit, false));
        }
        // Layers are always sha256 (the `Hasher`'s digest).
        let blobs = crate::cache_lock::blob_dir(&self.root, "sha256");
        let index = self.dir.join("index");
        for d in [&blobs, &index] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        // Named for the lock, so prune can tell a live write from a dead one.
        let prefix = crate::cache_prune::temp_prefix("layer", &fp);
        let mut temp = tempfile::Builder::new();
        temp.prefix(&prefix);
        let tmp = temp.tempfile_in(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let file = tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?;
        let blob = write(entries, epoch, file, what, progress, &self.pool)?;
        let path = self.blob_path(&blob.digest);
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        self.remember(&fp, &blob)?;
        Ok((blob, true))
    }

    /// Records `blob` in the index under `key` (whole: temporary file +
    /// rename), for [`LayerCache::lookup`]: a `RUN` step's key
    /// ([`super::run::step_key`]) names its layer as well as the entries' fingerprint does.
    pub fn remember(&self, key: &str, blob: &LayerBlob) -> Result<()> {
        let index = self.dir.join("index");
        std::fs::create_dir_all(&index).map_err(|e| Error::io(&index, e))?;
        let record = serde_json::to_vec(blob).map_err(|e| Error::Internal(e.to_string()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&crate::cache_prune::temp_prefix("layer", key))
            .tempfile_in(&index)
            .map_err(|e| Error::io(&index, e))?;
        tmp.write_all(&record)
            .map_err(|e| Error::io(tmp.path(), e))?;
        let path = self.index_path(key);
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

/// Hands the memory freed by the gzip threads back to the system (glibc
/// keeps it in their arenas; elsewhere a no-op).
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A hex fingerprint of everything that decides a layer's bytes.
pub fn fingerprint(entries: &Entries, epoch: i64) -> String {
    let mut h = Hasher::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update(&[0]);
    };
    put(FORMAT);
    put(&LEVEL.to_string());
    put(&epoch.to_string());
    for (path, e) in &entries.map {
        put(path);
        put(&format!(
            "{:o} {} {} {} {}",
            e.mode, e.uid, e.gid, e.stamp.0, e.stamp.1
        ));
        match &e.kind {
            Kind::Dir => put("d"),
            Kind::File { source, size } => put(&format!("f {} {size}", source.display())),
            Kind::Symlink { target } => put(&format!("l {target}")),
            Kind::Empty => put("e"),
            Kind::HardLink { target } => put(&format!("h {target}")),
        }
    }
    for a in &entries.archives {
        put(&format!(
            "a {} {} {} {} {:?}",
            a.dest,
            a.source.display(),
            a.stamp.0,
            a.stamp.1,
            a.owner
        ));
    }
    h.finish().hex().to_string()
}

/// A reader that fails unless exactly `left` bytes come (a file changed while read).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The bytes of the files a layer holds (not counting `ADD`ed archives): its progress total.
pub fn file_bytes(entries: &Entries) -> u64 {
    entries
        .map
        .values()
        .map(|e| match e.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}

/// Writes the layer: tar, gzip (on `pool`) and both sha256 in one pass, into
/// `out`; the file bytes read count towards `progress`.
pub fn write(
    entries: &Entries,
    epoch: i64,
    out: File,
    what: &str,
    progress: Option<&crate::progress::Tracker>,
    pool: &Pool,
) -> Result<LayerBlob> {
    let fail = |e: io::Error| Error::Internal(format!("{what}: writing the layer: {e}"));
    let compressed = HashWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hasher: Hasher::new(),
    };
    let tar_stream = HashWriter {
        inner: BlockGzip::new(pool, LEVEL, compressed).map_err(fail)?,
        hasher: Hasher::new(),
    };
    let mut tar = tar::Builder::new(tar_stream);
    tar.follow_symlinks(false);
    let mtime = epoch.max(0) as u64;
    for (path, e) in &entries.map {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mode(e.mode);
        match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(fail)?;
            }
            Kind::File { source, size } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let f = File::open(source).map_err(|e| Error::io(source, e))?;
                tar.append_data(
                    &mut h,
                    path,
                    crate::progress::counted(
                        progress,
                        Exact {
                            inner: f,
                            left: *size,
                        },
                    ),
                )
                .map_err(|e| Error::io(source, e))?;
            }
            Kind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, path, target).map_err(fail)?;
            }
            Kind::Empty => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                tar.append_data(&mut h, path, io::empty()).map_err(fail)?;
            }
            Kind::HardLink { target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                tar.append_link(&mut h, path, target).map_err(fail)?;
            }
        }
    }
    for a in &entries.archives {
        extract(&mut tar, &a.dest, &a.source, a.owner)?;
    }
    let tar_stream = tar.into_inner().map_err(fail)?;
    let diff_id = tar_stream.hasher.finish();
    let mut compressed = tar_stream.inner.finish().map_err(fail)?;
    compressed.flush().map_err(fail)?;
    let size = compressed.hasher.len();
    let digest = compressed.hasher.finish();
    compressed
        .inner
        .into_inner()
        .map_err(|e| fail(e.into_error()))?
        .sync_all()
        .map_err(fail)?;
    Ok(LayerBlob {
        diff_id,
        digest,
        size,
    })
}

/// The decompressed stream of a local archive (gzip, bzip2, xz or plain tar).
fn open_archive(source: &Path) -> Result<Box<dyn Read>> {
    let mut f = File::open(source).map_err(|e| Error::io(source, e))?;
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..]).map_err(|e| Error::io(source, e))? {
            0 => break,
            k => n += k,
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let raw = head.chain(f);
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(raw))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(lzma_rust2::XzReader::new(raw, true))
    } else {
        Box::new(raw)
    })
}

/// Copies a local archive's entries under `dest`, as `ADD` extracts it. Paths
/// that would leave `dest` (`..`) are refused; device files are left out.
fn extract<W: Write>(
    tar: &mut tar::Builder<W>,
    dest: &str,
    source: &Path,
    owner: Option<(u64, u64)>,
) -> Result<()> {
    let bad = |m: String| Error::Invalid(format!("ADD {}: {m}", source.display()));
    let mut archive = tar::Archive::new(open_archive(source)?);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
        let rel = inside(&entry.path().map_err(|e| bad(e.to_string()))?)
            .ok_or_else(|| bad("an entry's path leaves the destination (`..`)".into()))?;
        if rel.is_empty() {
            continue;
        }
        let at = if dest.is_empty() {
            rel
        } else {
            format!("{dest}/{rel}")
        };
        let mut h = entry.header().clone();
        if let Some((uid, gid)) = owner {
            h.set_uid(uid);
            h.set_gid(gid);
            // Names would override the ids for tools that read them.
            let _ = h.set_username("");
            let _ = h.set_groupname("");
        }
        let kind = h.entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {
                let name = if kind.is_dir() { format!("{at}/") } else { at };
                tar.append_data(&mut h, name, &mut entry)
                    .map_err(|e| bad(e.to_string()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                tar.append_link(&mut h, at, target)
                    .map_err(|e| bad(e.to_string()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .and_then(|t| inside(&t))
                    .ok_or_else(|| bad("a hard link points outside the archive".into()))?;
                let target = if dest.is_empty() {
                    target
                } else {
                    format!("{dest}/{target}")
                };
                tar.append_link(&mut h, at, target)
                    .map_err(|e| bad(e.to_string()))?;
            }
            other => {
                tracing::warn!(
                    "ADD {}: entry {at} ({other:?}) left out: not a file, directory or link",
                    source.display()
                );
            }
        }
    }
    Ok(())
}

/// A relative path with `/` separators, or `None` when it climbs out.
fn inside(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop()?;
            }
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::context::{Ignore, entries};
    use crate::build::plan::LayerSpec;

    fn spec(sources: &[&str], dest: &str, add: bool) -> LayerSpec {
        LayerSpec {
            line: 4,
            add,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: crate::build::plan::clean_path(dest),
            dest_dir: dest.ends_with('/'),
            uid: 0,
            gid: 0,
            chown: false,
            chmod: None,
            from: None,
        }
    }

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("jdk/bin")).unwrap();
        std::fs::write(dir.join("jdk/bin/java"), b"#!java").unwrap();
        std::fs::write(dir.join("jdk/release"), b"JAVA_VERSION=\"1.8\"").unwrap();
        std::fs::write(dir.join("jdk/debug.log"), b"noise").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("bin/java", dir.join("jdk/java")).unwrap();
        std::fs::write(dir.join(".dockerignore"), "**/*.log\n").unwrap();
    }

    /// (path, type, mode, uid, mtime, content) of every entry of a gzip layer.
    fn list(path: &Path) -> Vec<(String, char, u32, u64, u64, Vec<u8>)> {
        let f = File::open(path).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                let t = match h.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Link => 'h',
                    _ => 'f',
                };
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    t,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    body,
                )
            })
            .collect()
    }

    #[test]
    fn reproducible_sorted_and_hashed_in_one_pass() {
        let ctx = tempfile::tempdir().unwrap();
        tree(ctx.path());
        let ig = Ignore::load(ctx.path()).unwrap();
        let es = entries(
            ctx.path(),
            &ig,
            &spec(&["jdk"], "/opt/jdk", false),
            "Dockerfile:4",
        )
        .unwrap();
        let c1 = tempfile::tempdir().unwrap();
        let c2 = tempfile::tempdir().unwrap();
        let a = LayerCache::new(c1.path(), 1)
            .unwrap()
            .layer(&es, 1_700_000_000, "x")
            .unwrap();
        let b = LayerCache::new(c2.path(), 2)
            .unwrap()
            .layer(&es, 1_700_000_000, "x")
            .unwrap();
        assert_eq!(a, b, "same inputs, same digests");
        let path = LayerCache::new(c1.path(), 1).unwrap().blob_path(&a.digest);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Digest::of(&bytes), a.digest);
        assert_eq!(bytes.len() as u64, a.size);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), a.diff_id);
        let got = list(&path);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "opt/",
                "opt/jdk/",
                "opt/jdk/bin/",
                "opt/jdk/bin/java",
                "opt/jdk/java",
                "opt/jdk/release"
            ]
        );
        assert!(got.iter().all(|e| e.3 == 0 && e.4 == 1_700_000_000));
        assert_eq!(got[3].5, b"#!java");
        assert_eq!(got[4].1, 'l');
        // A different epoch gives other bytes; a changed file another fingerprint.
        let c = LayerCache::new(c1.path(), 1)
            .unwrap()
            .layer(&es, 0, "x")
            .unwrap();
        assert_ne!(c.digest, a.digest);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(ctx.path().join("jdk/release"), b"JAVA_VERSION=\"1.9\"").unwrap();
        let es2 = entries(ctx.path(), &ig, &spec(&["jdk"], "/opt/jdk", false), "x").unwrap();
        assert_ne!(fingerprint(&es, 0), fingerprint(&es2, 0));
    }

    #[test]
    fn cache_index_skips_rewriting() {
        let ctx = tempfile::tempdir().unwrap();
        tree(ctx.path());
        let es = entries(
            ctx.path(),
            &Ignore::default(),
            &spec(&["jdk"], "/j", false),
            "x",
        )
        .unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(cache_dir.path(), 0).unwrap();
        let a = cache.layer(&es, 0, "x").unwrap();
        assert_eq!(cache.lookup(&fingerprint(&es, 0)), Some(a.clone()));
        std::fs::remove_file(cache.blob_path(&a.digest)).unwrap();
        assert_eq!(
            cache.lookup(&fingerprint(&es, 0)),
            None,
            "a lost blob is a miss"
        );
        assert_eq!(cache.layer(&es, 0, "x").unwrap(), a);
    }

    #[test]
    fn files_globs_chown_chmod_and_errors() {
        let ctx = tempfile::tempdir().unwrap();
        tree(ctx.path());
        std::fs::write(ctx.path().join("a.jar"), b"a").unwrap();
        std::fs::write(ctx.path().join("b.jar"), b"b").unwrap();
        let ig = Ignore::load(ctx.path()).unwrap();
        let mut s = spec(&["*.jar"], "/app/", false);
        s.uid = 1000;
        s.gid = 1001;
        s.chmod = Some(0o600);
        let es = entries(ctx.path(), &ig, &s, "x").unwrap();
        let keys: Vec<&String> = es.map.keys().collect();
        assert_eq!(keys, vec!["app", "app/a.jar", "app/b.jar"]);
        assert_eq!(
            (
                es.map["app/a.jar"].uid,
                es.map["app/a.jar"].gid,
                es.map["app/a.jar"].mode
            ),
            (1000, 1001, 0o600)
        );
        let es = entries(ctx.path(), &ig, &spec(&["a.jar"], "/app.jar", false), "x").unwrap();
        assert!(es.map.contains_key("app.jar"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", ctx.path().join("host-etc")).unwrap();
            let err = entries(
                ctx.path(),
                &ig,
                &spec(&["host-etc/passwd"], "/x", false),
                "Dockerfile:9",
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("leads out of the build context"), "{err}");
        }
        for (src, why) in [
            ("missing", "not found"),
            ("../x", "outside the build context"),
            ("*.war", "matches no file"),
            ("jdk/debug.log", "excluded by"),
        ] {
            let err = entries(ctx.path(), &ig, &spec(&[src], "/d/", false), "Dockerfile:9")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why) && err.starts_with("Dockerfile:9: "),
                "{src}: {err}"
            );
        }
    }

    #[test]
    fn add_extracts_local_archives() {
        let ctx = tempfile::tempdir().unwrap();
        let mut plain = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o755);
        h.set_mtime(42);
        h.set_uid(7);
        plain.append_data(&mut h, "bin/tool", &b"ok"[..]).unwrap();
        let plain = plain.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let mut xz =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        xz.write_all(&plain).unwrap();
        for (name, bytes) in [
            ("t.tar", plain.clone()),
            ("t.tar.gz", gz.finish().unwrap()),
            ("t.tar.bz2", bz.finish().unwrap()),
            ("t.tar.xz", xz.finish().unwrap()),
        ] {
            std::fs::write(ctx.path().join(name), bytes).unwrap();
            let es = entries(
                ctx.path(),
                &Ignore::default(),
                &spec(&[name], "/usr/local", true),
                "x",
            )
            .unwrap();
            assert_eq!(es.archives.len(), 1, "{name}");
            let cache_dir = tempfile::tempdir().unwrap();
            let cache = LayerCache::new(cache_dir.path(), 0).unwrap();
            let blob = cache.layer(&es, 0, "x").unwrap();
            let got = list(&cache.blob_path(&blob.digest));
            let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(
                names,
                vec!["usr/", "usr/local/", "usr/local/bin/tool"],
                "{name}"
            );
            // The archive's own metadata is kept, as Docker keeps it.
            assert_eq!(
                (got[2].2, got[2].3, got[2].4, got[2].5.as_slice()),
                (0o755, 7, 42, &b"ok"[..]),
                "{name}"
            );
        }
        // --chown gives every extracted entry that owner.
        let mut owned = spec(&["t.tar"], "/o", true);
        (owned.chown, owned.uid, owned.gid) = (true, 5, 6);
        let es = entries(ctx.path(), &Ignore::default(), &owned, "x").unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(cache_dir.path(), 0).unwrap();
        let got = list(&cache.blob_path(&cache.layer(&es, 0, "x").unwrap().digest));
        assert_eq!((got[1].0.as_str(), got[1].3), ("o/bin/tool", 5));
        // COPY never extracts.
        let es = entries(
            ctx.path(),
            &Ignore::default(),
            &spec(&["t.tar.gz"], "/x/", false),
            "x",
        )
        .unwrap();
        assert!(es.archives.is_empty() && es.map.contains_key("x/t.tar.gz"));
    }

    #[test]
    fn hostile_archive_is_refused() {
        let ctx = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // Bypass the builder's own `..` check by writing the name bytes directly.
        h.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        std::fs::write(ctx.path().join("evil.tar"), b.into_inner().unwrap()).unwrap();
        let es = entries(
            ctx.path(),
            &Ignore::default(),
            &spec(&["evil.tar"], "/", true),
            "x",
        )
        .unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let err = LayerCache::new(cache_dir.path(), 0)
            .unwrap()
            .layer(&es, 0, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the destination"), "{err}");
    }
}
