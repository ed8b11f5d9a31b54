//! An image's merged file system, unpacked safely into a private directory.
//!
//! Layers are applied in order the way container runtimes do: whiteouts
//! (`.wh.NAME`) delete, opaque markers (`.wh..wh..opq`) hide what lower layers
//! put in a directory, later entries replace earlier ones. Nothing a layer
//! says can write outside the root: entry names with `..` or a leading `/`,
//! relative symlinks that climb out, hard links to outside, device nodes and
//! sizes past the [`Limits`] fail the layer with a message naming the entry.
//! Parent directories are resolved *inside* the root (an absolute symlink
//! such as Debian's `/lib → usr/lib` is followed as the image would see it),
//! and the final component of a path is never followed.
//!
//! [`RootFs::resolve`] answers "which host file is `/usr/bin/java` in this
//! image", following symlinks as a process chrooted into the root would.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use std::path::{Component, Path, PathBuf};

use super::pool::Pool;
use crate::error::{Error, Result};
use crate::image::digest::{HashWriter, Hasher};

/// Symlinks followed in one lookup before it is declared a loop (Linux: 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// Bounds on what one image may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sum of regular file sizes across all layers.
    pub max_total_bytes: u64,
    /// One file.
    pub max_entry_bytes: u64,
    /// Entries across all layers.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 8 << 30,
            max_entry_bytes: 4 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// How a layer blob is compressed: one table for every command, in `image::media`.
pub use crate::image::media::LayerCompression as Compression;

/// An unpacked root file system.
#[derive(Debug)]
pub struct RootFs {
    path: PathBuf,
    /// Present while the directory is ours to delete (not yet kept).
    temp: Option<tempfile::TempDir>,
    limits: Limits,
    total_bytes: u64,
    entries: u64,
    /// Where regular files are shared with other roots ([`Pool`]), if anywhere.
    pool: Option<Pool>,
    /// When asked for ([`RootFs::record_metadata`]): each unpacked entry's
    /// mode (setuid bits included) and owner as its layer states them, by
    /// path in the image (no leading `/`). The files on disk have neither.
    record: Option<HashMap<String, Recorded>>,
    /// Entries get the owner their layer states on disk (`lchown`).
    chown: bool,
}

/// An entry's mode and owner as its layer states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl RootFs {
    /// Shares the regular files this root unpacks with other roots through `pool`.
    pub fn share_files(&mut self, pool: Pool) {
        self.pool = Some(pool);
    }

    /// A new, empty root in a fresh directory under `parent`, deleted on
    /// drop unless [`RootFs::keep`] is called.
    pub fn new_in(parent: &Path, limits: Limits) -> Result<RootFs> {
        RootFs::new_named(parent, ".unpack-", limits)
    }

    /// [`RootFs::new_in`], the directory's name starting with `prefix`.
    pub fn new_named(parent: &Path, prefix: &str, limits: Limits) -> Result<RootFs> {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        Ok(RootFs {
            path: temp.path().to_path_buf(),
            temp: Some(temp),
            limits,
            total_bytes: 0,
            entries: 0,
            pool: None,
            record: None,
            chown: false,
        })
    }

    /// An existing root (read-only use: resolve and look up); never deleted.
    pub fn open(path: &Path) -> Result<RootFs> {
        let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_dir() {
            return Err(Error::io(path, io::Error::other("not a directory")));
        }
        Ok(RootFs {
            path: path.to_path_buf(),
            temp: None,
            limits: Limits::default(),
            total_bytes: 0,
            entries: 0,
            pool: None,
            record: None,
            chown: false,
        })
    }

    /// Records the mode and owner of every entry unpacked from now on; with
    /// `chown` (needs root) also gives each entry on disk its layer's owner.
    pub fn record_metadata(&mut self, chown: bool) {
        self.record.get_or_insert_with(HashMap::new);
        self.chown = chown;
    }

    /// The mode and owner recorded for a path in the image (`usr/bin/x`).
    pub fn recorded(&self, in_image: &str) -> Option<Recorded> {
        self.record.as_ref()?.get(in_image).copied()
    }

    /// Records what a change made outside a layer (a `RUN` step) gave a path.
    pub fn set_recorded(&mut self, in_image: &str, meta: Recorded) {
        if let Some(r) = &mut self.record {
            r.insert(in_image.to_string(), meta);
        }
    }

    /// The host directory holding the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory (no deletion on drop) and returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(t) = self.temp.take() {
            let _ = t.keep();
        }
        self.path.clone()
    }

    /// Applies one layer. `what` names it in errors (e.g. `layer sha256:…`).
    /// Reads the tar stream up to its end-of-archive marker; the caller
    /// drains any trailing bytes (to finish hashing).
    pub fn apply_layer<R: Read>(
        &mut self,
        reader: &mut R,
        compression: Compression,
        what: &str,
    ) -> Result<()> {
        match compression {
            Compression::None => self.apply_tar(reader, what),
            Compression::Gzip => {
                let mut gz = flate2::read::MultiGzDecoder::new(reader);
                self.apply_tar(&mut gz, what)
            }
        }
    }

    fn apply_tar(&mut self, reader: &mut dyn Read, what: &str) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        // Paths created by this layer: an opaque marker hides lower layers only.
        let mut created: HashSet<PathBuf> = HashSet::new();
        let entries = archive
            .entries()
            .map_err(|e| Error::malformed(what, format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| Error::malformed(what, format!("unreadable tar entry: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let fail = |msg: String| Error::malformed(what, format!("entry {shown:?}: {msg}"));
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(fail(format!(
                    "more than {} entries in the image; refusing to unpack further",
                    self.limits.max_entries
                )));
            }
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            let rel = match clean_entry_name(&raw) {
                Ok(Some(r)) => r,
                Ok(None) => continue, // "./" itself
                Err(m) => return Err(fail(m)),
            };
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();

            // Whiteouts.
            if name == ".wh..wh..opq" {
                if let Some(dir) = self.existing_parent(&rel) {
                    clear_dir(&dir, &created).map_err(|e| fail(format!("opaque whiteout: {e}")))?;
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                if let Some(dir) = self.existing_parent(&rel) {
                    let target = dir.join(hidden);
                    remove_any(&target).map_err(|e| fail(format!("whiteout of {hidden}: {e}")))?;
                }
                continue;
            }

            let parent = self.make_parent(&rel, &mut created).map_err(&fail)?;
            let dest = parent.join(rel.file_name().unwrap_or_default());
            let mode = entry.header().mode().unwrap_or(0o644) & 0o1777; // no setuid/setgid
            match kind {
                tar::EntryType::Directory => {
                    match fs::symlink_metadata(&dest) {
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => {
                            remove_any(&dest).map_err(|e| fail(e.to_string()))?;
                            fs::create_dir(&dest).map_err(|e| fail(e.to_string()))?;
                        }
                        Err(_) => fs::create_dir(&dest).map_err(|e| fail(e.to_string()))?,
                    }
                    // Owner rwx so later layers (and cache clean-up) can write.
                    fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o700))
                        .map_err(|e| fail(e.to_string()))?;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let size = entry.header().size().unwrap_or(0);
                    if size > self.limits.max_entry_bytes {
                        return Err(fail(format!(
                            "declares {size} bytes, more than the {} a single file may have",
                            self.limits.max_entry_bytes
                        )));
                    }
                    replace(&dest).map_err(|e| fail(e.to_string()))?;
                    let mut file = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&dest)
                        .map_err(|e| fail(e.to_string()))?;
                    let room = self.limits.max_total_bytes.saturating_sub(self.total_bytes);
                    let mut out = HashWriter {
                        inner: &mut file,
                        hasher: Hasher::new(),
                    };
                    let copied = io::copy(&mut (&mut entry).take(room.saturating_add(1)), &mut out)
                        .map_err(|e| fail(format!("reading its content: {e}")))?;
                    let hasher = out.hasher;
                    if copied > room {
                        return Err(fail(format!(
                            "the image unpacks to more than {} bytes ([verify] max_unpacked_bytes)",
                            self.limits.max_total_bytes
                        )));
                    }
                    self.total_bytes += copied;
                    drop(file);
                    fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o600))
                        .map_err(|e| fail(e.to_string()))?;
                    if let Some(pool) = &self.pool {
                        pool.share(&dest, hasher, mode | 0o600);
                    }
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| b.into_owned())
                        .ok_or_else(|| fail("a symlink without a target".into()))?;
                    let target_path = PathBuf::from(String::from_utf8_lossy(&target).into_owned());
                    replace(&dest).map_err(|e| fail(e.to_string()))?;
                    std::os::unix::fs::symlink(&target_path, &dest)
                        .map_err(|e| fail(e.to_string()))?;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| b.into_owned())
                        .ok_or_else(|| fail("a hard link without a target".into()))?;
                    let shown_target = String::from_utf8_lossy(&target).into_owned();
                    let target_rel = match clean_entry_name(&target) {
                        Ok(Some(r)) => r,
                        Ok(None) => return Err(fail("a hard link to the root directory".into())),
                        Err(m) => return Err(fail(format!("hard link to {shown_target:?}: {m}"))),
                    };
                    let source = self
                        .existing_parent(&target_rel)
                        .map(|d| d.join(target_rel.file_name().unwrap_or_default()))
                        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
                        .ok_or_else(|| {
                            fail(format!(
                                "hard link to {shown_target:?}, which no earlier entry created"
                            ))
                        })?;
                    replace(&dest).map_err(|e| fail(e.to_string()))?;
                    fs::hard_link(&source, &dest).map_err(|e| fail(e.to_string()))?;
                }
                tar::EntryType::Fifo => {
                    // Nothing a JDK check reads; not worth a special file on the host.
                    continue;
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(fail(
                        "is a device node; images must not carry them (the runtime provides /dev)"
                            .into(),
                    ));
                }
                other => {
                    return Err(fail(format!("has an unsupported tar entry type {other:?}")));
                }
            }
            if let Some(record) = &mut self.record {
                let h = entry.header();
                let meta = Recorded {
                    mode: h.mode().unwrap_or(0o644) & 0o7777,
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                };
                if self.chown {
                    let id = |v: u64| u32::try_from(v).ok();
                    std::os::unix::fs::lchown(&dest, id(meta.uid), id(meta.gid)).map_err(|e| {
                        fail(format!("giving it owner {}:{}: {e}", meta.uid, meta.gid))
                    })?;
                }
                record.insert(rel.to_string_lossy().into_owned(), meta);
            }
            created.insert(dest);
        }
        Ok(())
    }

    /// The host directory of `rel`'s parent, resolved inside the root,
    /// creating missing directories.
    fn make_parent(
        &self,
        rel: &Path,
        created: &mut HashSet<PathBuf>,
    ) -> std::result::Result<PathBuf, String> {
        let mut dir = self.path.clone();
        let Some(parent) = rel.parent() else {
            return Ok(dir);
        };
        for comp in parent.components() {
            let Component::Normal(c) = comp else { continue };
            let next = dir.join(c);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => dir = next,
                Ok(m) if m.file_type().is_symlink() => {
                    let in_image = self.in_image(&next);
                    // Such links are harmless where they stand (`..` stops at `/`, as
                    // in a container: Debian's JDK has `docs -> ../../../share/doc/…`),
                    // but no real image writes *through* one; a layer that does is
                    // attempting an escape.
                    let link =
                        fs::read_link(&next).map_err(|e| format!("reading {in_image}: {e}"))?;
                    let link_rel = next.strip_prefix(&self.path).unwrap_or(&next);
                    if link.is_relative() && climbs_out(link_rel, &link) {
                        return Err(format!(
                            "parent {in_image} is a symlink to {} that climbs out of the image root; refusing to write through it",
                            link.display()
                        ));
                    }
                    let resolved = self.resolve(&in_image).map_err(|e| {
                        format!(
                            "parent {in_image} is a symlink that does not lead to a directory: {e}"
                        )
                    })?;
                    if !resolved.is_dir() {
                        return Err(format!(
                            "parent {in_image} is a symlink to a file, not a directory"
                        ));
                    }
                    dir = resolved;
                }
                Ok(_) => {
                    return Err(format!(
                        "parent {} is a file in an earlier entry, not a directory",
                        self.in_image(&next)
                    ));
                }
                Err(_) => {
                    fs::create_dir(&next)
                        .map_err(|e| format!("creating {}: {e}", self.in_image(&next)))?;
                    created.insert(next.clone());
                    dir = next;
                }
            }
        }
        Ok(dir)
    }

    /// Like [`Self::make_parent`] but creates nothing: `None` when a parent is missing.
    fn existing_parent(&self, rel: &Path) -> Option<PathBuf> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let in_image = format!("/{}", parent.display());
        self.resolve(&in_image).ok().filter(|p| p.is_dir())
    }

    /// The in-image path (`/usr/bin/java`) of a host path inside the root.
    pub fn in_image(&self, host: &Path) -> String {
        match host.strip_prefix(&self.path) {
            Ok(rel) if rel.as_os_str().is_empty() => "/".into(),
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host.display().to_string(),
        }
    }

    /// The host path of an in-image path, following symlinks the way a
    /// process chrooted into the root would (`..` stops at `/`, absolute
    /// targets start again at the root). The result is always inside the root.
    pub fn resolve(&self, in_image: &str) -> Result<PathBuf> {
        let mut hops = 0;
        // Components still to walk, in order (front = next).
        let mut todo: Vec<String> = split(in_image).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let host = self.host_of(&done).join(&c);
            let meta = fs::symlink_metadata(&host).map_err(|_| Error::NotFound {
                what: format!(
                    "{in_image} in the image ({} does not exist)",
                    join_image(&done, &c)
                ),
                hint: None,
            })?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(Error::malformed(
                        format!("{in_image} in the image"),
                        format!("more than {MAX_SYMLINK_HOPS} symlinks (a loop?)"),
                    ));
                }
                let target = fs::read_link(&host).map_err(|e| Error::io(&host, e))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in split(&target).into_iter().rev() {
                    todo.push(t);
                }
            } else {
                if !todo.is_empty() && !meta.is_dir() {
                    return Err(Error::NotFound {
                        what: format!(
                            "{in_image} in the image ({} is not a directory)",
                            join_image(&done, &c)
                        ),
                        hint: None,
                    });
                }
                done.push(c);
            }
        }
        Ok(self.host_of(&done))
    }

    /// The in-image path of the first executable `program` in a `PATH` value.
    pub fn find_in_path(&self, program: &str, path_var: &str) -> Option<String> {
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .find(|candidate| {
                self.resolve(candidate).is_ok_and(|p| {
                    fs::metadata(&p)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
            })
    }

    fn host_of(&self, comps: &[String]) -> PathBuf {
        let mut p = self.path.clone();
        for c in comps {
            p.push(c);
        }
        p
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn join_image(done: &[String], last: &str) -> String {
    let mut s = String::new();
    for c in done {
        s.push('/');
        s.push_str(c);
    }
    s.push('/');
    s.push_str(last);
    s
}

/// A tar entry name as a relative path: `./` and trailing `/` dropped;
/// `None` for the root itself; `Err` for names that are absolute or climb.
fn clean_entry_name(raw: &[u8]) -> std::result::Result<Option<PathBuf>, String> {
    let s = String::from_utf8_lossy(raw);
    if s.contains('\0') {
        return Err("the name holds a NUL byte".into());
    }
    if s.starts_with('/') {
        return Err("an absolute name; layer entries are relative to the root".into());
    }
    let mut out = PathBuf::new();
    for comp in Path::new(s.as_ref()).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("the name contains `..` and would write outside the root".into());
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute name; layer entries are relative to the root".into());
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Whether a relative symlink at `link` (relative to the root) pointing at
/// `target` climbs above the root.
fn climbs_out(link: &Path, target: &Path) -> bool {
    let mut depth: i64 = link.parent().map_or(0, |p| p.components().count() as i64);
    for comp in target.components() {
        match comp {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Removes whatever is at `path` (file, symlink, directory tree) unless it
/// is a directory the new entry will merge into — callers check that.
fn replace(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => remove_any(path),
        Err(_) => Ok(()),
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a directory's content from lower layers (what this layer
/// created stays).
fn clear_dir(dir: &Path, keep: &HashSet<PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if !keep.contains(&p) {
            remove_any(&p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }
        fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h
        }
        fn dir(mut self, name: &str) -> Tar {
            let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
            self.0.append_data(&mut h, name, io::empty()).unwrap();
            self
        }
        fn file(mut self, name: &str, body: &[u8]) -> Tar {
            let mut h = Self::header(tar::EntryType::Regular, 0o755, body.len() as u64);
            self.0.append_data(&mut h, name, body).unwrap();
            self
        }
        fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Tar {
            let mut h = Self::header(kind, 0o777, 0);
            self.0.append_link(&mut h, name, target).unwrap();
            self
        }
        /// An entry whose raw name the builder would refuse.
        fn raw(mut self, kind: tar::EntryType, name: &str, body: &[u8]) -> Tar {
            let mut h = Self::header(kind, 0o644, body.len() as u64);
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            self.0.append(&h, body).unwrap();
            self
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn apply(root: &mut RootFs, layer: Vec<u8>) -> Result<()> {
        root.apply_layer(&mut &layer[..], Compression::None, "layer sha256:test")
    }

    fn new_root(dir: &Path) -> RootFs {
        RootFs::new_in(dir, Limits::default()).unwrap()
    }

    #[test]
    fn layers_merge_and_whiteouts_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        apply(
            &mut root,
            Tar::new()
                .dir("etc")
                .file("etc/a", b"1")
                .file("etc/b", b"2")
                .dir("opt/x")
                .file("opt/x/old", b"o")
                .bytes(),
        )
        .unwrap();
        apply(
            &mut root,
            Tar::new()
                .file("etc/.wh.a", b"")
                .file("etc/b", b"22")
                .file("opt/x/.wh..wh..opq", b"")
                .file("opt/x/new", b"n")
                .bytes(),
        )
        .unwrap();
        let p = root.path().to_path_buf();
        assert!(!p.join("etc/a").exists());
        assert_eq!(fs::read(p.join("etc/b")).unwrap(), b"22");
        assert!(
            !p.join("opt/x/old").exists(),
            "opaque dir hides the lower layer"
        );
        assert!(
            p.join("opt/x/new").exists(),
            "but keeps this layer's entries"
        );
    }

    #[test]
    fn opaque_marker_after_entries_keeps_this_layers_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        apply(&mut root, Tar::new().file("d/old", b"o").bytes()).unwrap();
        apply(
            &mut root,
            Tar::new()
                .file("d/new", b"n")
                .file("d/.wh..wh..opq", b"")
                .bytes(),
        )
        .unwrap();
        assert!(root.path().join("d/new").exists());
        assert!(!root.path().join("d/old").exists());
    }

    #[test]
    fn hostile_names_fail_and_write_nothing_outside() {
        let outer = tempfile::tempdir().unwrap();
        let inner = outer.path().join("inner");
        fs::create_dir(&inner).unwrap();
        for (layer, needle) in [
            (
                Tar::new()
                    .raw(tar::EntryType::Regular, "../escaped", b"x")
                    .bytes(),
                "..",
            ),
            (
                Tar::new()
                    .raw(tar::EntryType::Regular, "/abs", b"x")
                    .bytes(),
                "absolute",
            ),
            (
                Tar::new()
                    .link(tar::EntryType::Symlink, "a/up", "../../escaped")
                    .file("a/up/x", b"x")
                    .bytes(),
                "climbs out",
            ),
            (
                Tar::new()
                    .raw(tar::EntryType::Char, "dev/null", b"")
                    .bytes(),
                "device",
            ),
            (
                Tar::new()
                    .link(tar::EntryType::Link, "hl", "../../etc/passwd")
                    .bytes(),
                "..",
            ),
            (
                Tar::new()
                    .link(tar::EntryType::Link, "hl", "nothing-here")
                    .bytes(),
                "no earlier entry",
            ),
        ] {
            let mut root = new_root(&inner);
            let e = apply(&mut root, layer).unwrap_err().to_string();
            assert!(e.contains("layer sha256:test") && e.contains(needle), "{e}");
        }
        assert!(!outer.path().join("escaped").exists());
    }

    #[test]
    fn absolute_symlinks_are_followed_inside_the_root_when_writing_and_resolving() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        // Debian merged /usr: /lib → usr/lib; a planted /evil → /tmp (host) must stay inside.
        apply(
            &mut root,
            Tar::new()
                .dir("usr/lib")
                .dir("tmp")
                .link(tar::EntryType::Symlink, "lib", "usr/lib")
                .link(tar::EntryType::Symlink, "evil", "/tmp")
                .link(tar::EntryType::Symlink, "lib64", "/lib")
                .bytes(),
        )
        .unwrap();
        apply(
            &mut root,
            Tar::new()
                .file("lib/ld.so", b"\x7fELF")
                .file("evil/planted", b"x")
                .bytes(),
        )
        .unwrap();
        let p = root.path().to_path_buf();
        assert!(
            p.join("usr/lib/ld.so").exists(),
            "written through /lib → usr/lib"
        );
        assert!(
            p.join("tmp/planted").exists(),
            "/evil → /tmp resolved inside the root"
        );
        assert_eq!(
            root.resolve("/lib64/ld.so").unwrap(),
            p.join("usr/lib/ld.so")
        );
        assert_eq!(
            root.resolve("/lib64/../../../usr/lib/ld.so").unwrap(),
            p.join("usr/lib/ld.so")
        );
        assert!(matches!(
            root.resolve("/usr/lib/none"),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn climbing_relative_links_stand_but_resolve_inside() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        // Debian's JDK relocated to /opt/jdk: docs -> ../../../share/doc/… climbs past `/`.
        apply(
            &mut root,
            Tar::new()
                .dir("share/doc/jre")
                .file("share/doc/jre/README", b"r")
                .link(
                    tar::EntryType::Symlink,
                    "opt/jdk/docs",
                    "../../../share/doc/jre",
                )
                .bytes(),
        )
        .unwrap();
        assert_eq!(
            root.resolve("/opt/jdk/docs/README").unwrap(),
            root.path().join("share/doc/jre/README"),
            "`..` stops at the root, as in a container"
        );
    }

    #[test]
    fn symlink_loops_and_file_parents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        apply(
            &mut root,
            Tar::new()
                .link(tar::EntryType::Symlink, "a", "/b")
                .link(tar::EntryType::Symlink, "b", "/a")
                .file("f", b"x")
                .bytes(),
        )
        .unwrap();
        assert!(root.resolve("/a").unwrap_err().to_string().contains("loop"));
        assert!(root.resolve("/f/x").is_err());
        let e = apply(&mut root, Tar::new().file("f/x", b"y").bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn a_symlink_planted_at_a_file_name_is_replaced_not_followed() {
        let outer = tempfile::tempdir().unwrap();
        let victim = outer.path().join("victim");
        fs::write(&victim, b"safe").unwrap();
        let inner = outer.path().join("inner");
        fs::create_dir(&inner).unwrap();
        let mut root = new_root(&inner);
        apply(
            &mut root,
            Tar::new()
                .link(tar::EntryType::Symlink, "x", victim.to_str().unwrap())
                .bytes(),
        )
        .unwrap();
        apply(&mut root, Tar::new().file("x", b"overwritten").bytes()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"safe");
        assert_eq!(fs::read(root.path().join("x")).unwrap(), b"overwritten");
    }

    #[test]
    fn hard_links_share_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        apply(
            &mut root,
            Tar::new()
                .file("bin/a", b"data")
                .link(tar::EntryType::Link, "bin/b", "bin/a")
                .bytes(),
        )
        .unwrap();
        assert_eq!(fs::read(root.path().join("bin/b")).unwrap(), b"data");
    }

    #[test]
    fn roots_share_pooled_files_and_later_layers_never_write_through_a_shared_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(dir.path().join("files"));
        let base = Tar::new()
            .file("lib/libjvm.so", b"the jvm")
            .file("etc/conf", b"base")
            .file("etc/gone", b"x")
            .bytes();
        let mut a = new_root(dir.path());
        a.share_files(pool.clone());
        apply(&mut a, base.clone()).unwrap();
        let mut b = new_root(dir.path());
        b.share_files(pool);
        apply(&mut b, base).unwrap();
        let ino = |r: &RootFs, p: &str| fs::metadata(r.path().join(p)).unwrap().ino();
        assert_eq!(ino(&a, "lib/libjvm.so"), ino(&b, "lib/libjvm.so"));
        assert_eq!(fs::metadata(a.path().join("etc/conf")).unwrap().nlink(), 3);
        // b's next layer overrides one shared file and whites out another.
        apply(
            &mut b,
            Tar::new()
                .file("etc/conf", b"service")
                .file("etc/.wh.gone", b"")
                .bytes(),
        )
        .unwrap();
        assert_eq!(fs::read(a.path().join("etc/conf")).unwrap(), b"base");
        assert_eq!(fs::read(b.path().join("etc/conf")).unwrap(), b"service");
        assert!(a.path().join("etc/gone").exists());
        assert!(!b.path().join("etc/gone").exists());
        assert_ne!(ino(&a, "etc/conf"), ino(&b, "etc/conf"));
        // Mode is part of the inode: the same bytes with another mode are not shared.
        let mut c = new_root(dir.path());
        c.share_files(Pool::new(dir.path().join("files")));
        let mut h = Tar::header(tar::EntryType::Regular, 0o644, 7);
        h.set_cksum();
        let mut t = tar::Builder::new(Vec::new());
        t.append_data(&mut h, "lib/libjvm.so", &b"the jvm"[..])
            .unwrap();
        apply(&mut c, t.into_inner().unwrap()).unwrap();
        assert_ne!(ino(&a, "lib/libjvm.so"), ino(&c, "lib/libjvm.so"));
    }

    #[test]
    fn limits_stop_bombs() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_total_bytes: 10,
            max_entry_bytes: 8,
            max_entries: 3,
        };
        let mut root = RootFs::new_in(dir.path(), limits).unwrap();
        let e = apply(&mut root, Tar::new().file("big", &[0; 9]).bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("declares 9 bytes"), "{e}");
        let mut root = RootFs::new_in(dir.path(), limits).unwrap();
        let e = apply(
            &mut root,
            Tar::new().file("a", &[0; 6]).file("b", &[0; 6]).bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_unpacked_bytes"), "{e}");
        let mut root = RootFs::new_in(dir.path(), limits).unwrap();
        let e = apply(
            &mut root,
            Tar::new().dir("a").dir("b").dir("c").dir("d").bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("entries"), "{e}");
    }

    #[test]
    fn gzip_layers_unpack_and_garbage_is_an_error() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&Tar::new().file("hello", b"hi").bytes())
            .unwrap();
        let layer = gz.finish().unwrap();
        root.apply_layer(&mut &layer[..], Compression::Gzip, "layer g")
            .unwrap();
        assert_eq!(fs::read(root.path().join("hello")).unwrap(), b"hi");
        let e = root
            .apply_layer(&mut &b"not gzip at all"[..], Compression::Gzip, "layer g2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer g2"), "{e}");
    }

    #[test]
    fn find_in_path_wants_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = new_root(dir.path());
        let mut t = Tar::new().dir("usr/bin").dir("opt/java/bin");
        let mut h = Tar::header(tar::EntryType::Regular, 0o644, 1);
        t.0.append_data(&mut h, "usr/bin/java", &b"x"[..]).unwrap();
        let t = t.file("opt/java/bin/java", b"y").link(
            tar::EntryType::Symlink,
            "usr/local/bin/java",
            "/opt/java/bin/java",
        );
        apply(&mut root, t.bytes()).unwrap();
        assert_eq!(
            root.find_in_path("java", "/usr/bin:/usr/local/bin:relative")
                .as_deref(),
            Some("/usr/local/bin/java"),
            "the non-executable /usr/bin/java is skipped"
        );
        assert_eq!(root.find_in_path("javac", "/usr/bin"), None);
    }

    #[test]
    fn dropped_roots_are_deleted_and_kept_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = new_root(dir.path());
        let p = root.path().to_path_buf();
        drop(root);
        assert!(!p.exists());
        let kept = new_root(dir.path()).keep();
        assert!(kept.exists());
        drop(RootFs::open(&kept).unwrap());
        assert!(kept.exists(), "open() never deletes");
    }
}
