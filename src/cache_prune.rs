//! Keeping the cache bounded: `archgate cache prune` and the automatic
//! `cache_max_size` bound that `verify`, `build` and `run` apply when they end.
//!
//! The entries are the cache's own directories only — `blobs/<alg>/<hex>`,
//! `rootfs/<key>` (unpacked roots), `layers/index/<fingerprint>` (build's layer
//! records) — plus their garbage: `rootfs/.unpack-<key>-*` and `.tmp-*` files
//! of processes that died, and files of the shared pool `files/` (see
//! [`crate::verify::rootfs`]) that no root links to any more. Anything else
//! under the cache directory (a JRE cache, tools) is never looked at.
//!
//! "Used" is an entry's mtime: every reader touches it ([`touch`]), so least
//! recently used means least recently *read*, not oldest. Entries go oldest
//! use first until the bound holds. Sizes are disk usage (`st_blocks`), each
//! inode counted once: roots share files through hard links, and removing a
//! root frees only what no other root still links to.
//!
//! Concurrency: an entry is removed only under its creation lock
//! (`rootfs-`, `blob-`, `layer-`) *and* its use lock (`use-rootfs-`,
//! `use-blob-`), both taken without waiting; readers hold the use lock shared
//! for as long as they read, so an entry in use is skipped, never pulled from
//! under a sandbox. A root is first renamed to a staging name, then deleted,
//! so a crash half-way never leaves a partial root under its key.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cache_lock::KeyLock;
use crate::error::{Error, Result};

/// The lock kind readers hold shared on a root while they use it.
pub const USE_ROOT: &str = "use-rootfs";
/// The lock kind readers hold shared on a blob while they read it.
pub const USE_BLOB: &str = "use-blob";
/// The directory of the shared file pool (hard-link sources for unpacked roots).
pub const POOL_DIR: &str = "files";

/// Records a use of the entry at `path` (file or directory): its mtime
/// becomes now. Best effort: a cache we cannot touch is still usable.
pub fn touch(path: &Path) {
    let done = std::fs::File::open(path).and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = done {
        tracing::debug!(entry = %path.display(), "cannot record the use of a cache entry: {e}");
    }
}

pub use crate::config::size::parse_size;

/// The `cache_max_size` setting: `None` when `0` or `off` turn the bound off.
pub fn max_size_setting(value: &str) -> Result<Option<u64>> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let n = parse_size(value).map_err(|e| Error::Config(format!("`cache_max_size`: {e}")))?;
    Ok((n > 0).then_some(n))
}

/// What a prune may remove.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// Remove least recently used entries until the cache takes at most this.
    pub max_size: Option<u64>,
    /// Remove entries not used for this long.
    pub older_than: Option<Duration>,
    /// Keep entries used at or after this instant (the current run's own).
    pub keep_used_since: Option<SystemTime>,
}

/// The kind of a cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Blob,
    Root,
    LayerRecord,
    /// A staging directory or temporary file of a process that died.
    Abandoned,
    /// A pool file no root links to.
    Unlinked,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Blob => "blob",
            Kind::Root => "root",
            Kind::LayerRecord => "layer record",
            Kind::Abandoned => "abandoned",
            Kind::Unlinked => "unlinked pool file",
        }
    }
}

/// One entry: what it is, where, which locks guard it and what it holds.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub path: PathBuf,
    /// `(kind, key)` of the locks to hold (without waiting) while removing it.
    pub locks: Vec<(String, String)>,
    pub used: SystemTime,
    /// The entry's inodes and how many of their links it holds.
    pub inodes: Vec<(Inode, u64)>,
}

/// An inode's identity.
pub type Inode = (u64, u64);

/// What the cache holds, each inode once: its disk usage and the links to it
/// outside the pool that are not yet removed.
#[derive(Debug, Default)]
pub struct Usage {
    pub inodes: HashMap<Inode, (u64, u64)>,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.inodes.values().map(|(bytes, _)| bytes).sum()
    }

    /// Forgets `entry`'s links; returns the bytes that frees (inodes no
    /// other entry links to).
    fn release(&mut self, entry: &Entry) -> u64 {
        let mut freed = 0;
        for (ino, links) in &entry.inodes {
            if let Some((bytes, left)) = self.inodes.get_mut(ino) {
                *left = left.saturating_sub(*links);
                if *left == 0 {
                    freed += *bytes;
                    self.inodes.remove(ino);
                }
            }
        }
        freed
    }
}

/// Chooses what to remove, oldest use first, and removes it through
/// `remove` (which says whether it could: `false` when the entry is in use).
/// Abandoned and unlinked entries always go; others while they are older
/// than the bound allows or the cache is over its size. Returns the indexes
/// removed, each with the bytes its removal freed.
pub fn select(
    entries: &[Entry],
    usage: &mut Usage,
    bound: &Bound,
    now: SystemTime,
    mut remove: impl FnMut(&Entry) -> bool,
) -> Vec<(usize, u64)> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (!is_garbage(entries[i].kind), entries[i].used));
    let mut removed = Vec::new();
    for i in order {
        let e = &entries[i];
        if !is_garbage(e.kind) {
            let kept = bound.keep_used_since.is_some_and(|since| e.used >= since);
            let idle = now.duration_since(e.used).unwrap_or_default();
            let old = bound.older_than.is_some_and(|d| idle > d);
            let over = bound.max_size.is_some_and(|m| usage.total() > m);
            if kept || !(old || over) {
                continue;
            }
        }
        if remove(e) {
            removed.push((i, usage.release(e)));
        }
    }
    removed
}

fn is_garbage(kind: Kind) -> bool {
    matches!(kind, Kind::Abandoned | Kind::Unlinked)
}

/// One removed (or, in a dry run, removable) entry.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub kind: Kind,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub cache: PathBuf,
    pub dry_run: bool,
    pub before: u64,
    pub after: u64,
    pub removed: Vec<Removed>,
    /// Entries the bound wanted gone that another process was using.
    pub in_use: Vec<PathBuf>,
}

/// Prunes `cache` to `bound` (or only says what it would remove).
pub fn prune(cache: &Path, bound: &Bound, dry_run: bool) -> Result<PruneReport> {
    let (entries, mut usage) = scan(cache)?;
    let before = usage.total();
    let mut in_use = Vec::new();
    let chosen = select(&entries, &mut usage, bound, SystemTime::now(), |e| {
        dry_run || remove_entry(cache, e, &mut in_use)
    });
    if !dry_run && !chosen.is_empty() {
        // What the removed roots shared is now only the pool's: counted freed above.
        sweep_pool(&cache.join(POOL_DIR));
    }
    let removed = chosen
        .into_iter()
        .map(|(i, bytes)| Removed {
            kind: entries[i].kind,
            path: entries[i].path.clone(),
            bytes,
        })
        .collect();
    Ok(PruneReport {
        cache: cache.to_path_buf(),
        dry_run,
        before,
        after: usage.total(),
        removed,
        in_use,
    })
}

/// When this process's run began (the first call marks it): the automatic
/// bound keeps every entry used since, so a run never prunes its own inputs.
pub fn run_started() -> SystemTime {
    static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    // Slack: file times come from the kernel's coarse clock, a tick behind.
    *STARTED.get_or_init(|| SystemTime::now() - Duration::from_millis(100))
}

/// The automatic bound at the end of a run: `cache_max_size` (already
/// parsed: `None` is off), keeping what this run used since [`run_started`].
/// Never fails the run: a problem is a warning.
pub async fn enforce(cache: PathBuf, max_size: Option<u64>) {
    let Some(max) = max_size else { return };
    let bound = Bound {
        max_size: Some(max),
        older_than: None,
        keep_used_since: Some(run_started()),
    };
    let done = tokio::task::spawn_blocking(move || (prune(&cache, &bound, false), cache)).await;
    match done {
        Ok((Ok(r), cache)) if !r.removed.is_empty() => tracing::info!(
            "cache {} over cache_max_size {}: removed {} entries, {} → {}",
            cache.display(),
            crate::inspect::human_size(max),
            r.removed.len(),
            crate::inspect::human_size(r.before),
            crate::inspect::human_size(r.after)
        ),
        Ok((Ok(_), _)) => {}
        Ok((Err(e), cache)) => tracing::warn!("cannot bound the cache {}: {e}", cache.display()),
        Err(e) => tracing::warn!("cannot bound the cache: {e}"),
    }
}

/// The report as lines for a terminal.
pub fn render_text(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for e in &r.removed {
        out.push_str(&format!(
            "{verb} {} {} ({})\n",
            e.kind.label(),
            e.path.display(),
            crate::inspect::human_size(e.bytes)
        ));
    }
    for p in &r.in_use {
        out.push_str(&format!(
            "kept {} (in use by another process)\n",
            p.display()
        ));
    }
    let after = if r.dry_run { "after would be" } else { "after" };
    out.push_str(&format!(
        "cache {}: {} before, {after} {} ({} entries)\n",
        r.cache.display(),
        crate::inspect::human_size(r.before),
        crate::inspect::human_size(r.after),
        r.removed.len()
    ));
    out
}

/// Removes `e` under its locks; `false` (and noted in `in_use`) when one is held.
fn remove_entry(cache: &Path, e: &Entry, in_use: &mut Vec<PathBuf>) -> bool {
    let mut held = Vec::new();
    for (kind, key) in &e.locks {
        match KeyLock::try_acquire(cache, kind, key) {
            Ok(Some(l)) => held.push(l),
            Ok(None) => {
                in_use.push(e.path.clone());
                return false;
            }
            Err(err) => {
                tracing::warn!("not removing {}: {err}", e.path.display());
                return false;
            }
        }
    }
    let result = if e.kind == Kind::Root {
        // Out of its key's name first: a crash mid-way leaves garbage, not a partial root.
        let key = e.path.file_name().unwrap_or_default().to_string_lossy();
        let doomed = e
            .path
            .with_file_name(format!("{}pruned", staging_prefix(&key)));
        let _ = std::fs::remove_dir_all(&doomed);
        std::fs::rename(&e.path, &doomed).and_then(|()| std::fs::remove_dir_all(&doomed))
    } else if e.path.is_dir() {
        std::fs::remove_dir_all(&e.path)
    } else {
        std::fs::remove_file(&e.path)
    };
    match result {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => {
            tracing::warn!("cannot remove {}: {err}", e.path.display());
            false
        }
    }
}

/// Removes the pool files no root links to.
fn sweep_pool(pool: &Path) {
    let _ = walk(pool, &mut |p, m| {
        if m.is_file() && m.nlink() <= 1 {
            let _ = std::fs::remove_file(p);
        }
    });
}

/// The name prefix of the directories `key`'s root is unpacked into.
pub fn staging_prefix(key: &str) -> String {
    format!(".unpack-{key}-")
}

/// The name prefix of a temporary file written under the lock `kind`-`key`.
pub fn temp_prefix(kind: &str, key: &str) -> String {
    format!(".tmp-{kind}-{key}-")
}

/// How long a temporary file with no recognisable lock must be left alone.
const UNKNOWN_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Every entry of the cache and the inodes they hold.
fn scan(cache: &Path) -> Result<(Vec<Entry>, Usage)> {
    let mut entries = Vec::new();
    let mut usage = Usage::default();
    // The pool first: its own link to a file is no entry's; a pool file
    // nothing else links to is garbage.
    walk(&cache.join(POOL_DIR), &mut |p, m| {
        let ino = (m.dev(), m.ino());
        let bytes = m.blocks() * 512;
        let others = m.nlink().saturating_sub(1);
        if m.is_dir() {
            usage.inodes.insert(ino, (bytes, 1));
        } else if others == 0 {
            usage.inodes.insert(ino, (bytes, 1));
            entries.push(Entry {
                kind: Kind::Unlinked,
                path: p.to_path_buf(),
                locks: vec![],
                used: mtime(m),
                inodes: vec![(ino, 1)],
            });
        } else {
            usage.inodes.insert(ino, (bytes, others));
        }
    })?;
    let blobs = cache.join("blobs");
    // The directories holding the entries count too (as `du` counts them), never freed.
    let mut holders = vec![
        cache.join("rootfs"),
        cache.join("layers"),
        cache.join("layers").join("index"),
        blobs.clone(),
    ];
    holders.extend(read_dir(&blobs)?);
    for d in holders {
        if let Ok(m) = std::fs::symlink_metadata(&d) {
            usage
                .inodes
                .insert((m.dev(), m.ino()), (m.blocks() * 512, 1));
        }
    }
    for alg in read_dir(&blobs)? {
        for (path, name) in read_dir(&alg)?.into_iter().map(named) {
            let locks = if name.starts_with(".tmp-") {
                temp_locks(&name)
            } else {
                let key = format!(
                    "{}-{name}",
                    alg.file_name().unwrap_or_default().to_string_lossy()
                );
                Some(vec![("blob".into(), key.clone()), (USE_BLOB.into(), key)])
            };
            let kind = if name.starts_with(".tmp") {
                Kind::Abandoned
            } else {
                Kind::Blob
            };
            add(&mut entries, &mut usage, kind, path, locks)?;
        }
    }
    for (path, name) in read_dir(&cache.join("rootfs"))?.into_iter().map(named) {
        let (kind, locks) = match name.strip_prefix(".unpack-") {
            Some(rest) => {
                let key = rest.split('-').next().unwrap_or_default().to_string();
                (Kind::Abandoned, vec![("rootfs".to_string(), key)])
            }
            None => (
                Kind::Root,
                vec![
                    ("rootfs".into(), name.clone()),
                    (USE_ROOT.into(), name.clone()),
                ],
            ),
        };
        add(&mut entries, &mut usage, kind, path, Some(locks))?;
    }
    for (path, name) in read_dir(&cache.join("layers").join("index"))?
        .into_iter()
        .map(named)
    {
        let (kind, locks) = if name.starts_with(".tmp") {
            (Kind::Abandoned, temp_locks(&name))
        } else {
            (
                Kind::LayerRecord,
                Some(vec![("layer".into(), name.clone())]),
            )
        };
        add(&mut entries, &mut usage, kind, path, locks)?;
    }
    Ok((entries, usage))
}

/// The locks of a temporary file named by [`temp_prefix`]; `None` for a
/// name we cannot tie to a lock (then only its age lets it go).
fn temp_locks(name: &str) -> Option<Vec<(String, String)>> {
    let rest = name.strip_prefix(".tmp-")?;
    let (kind, rest) = rest.split_once('-')?;
    let (key, _) = rest.rsplit_once('-')?;
    Some(vec![(kind.to_string(), key.to_string())])
}

/// Adds the entry at `path` with all the inodes under it. A temporary file
/// with no lock (`locks` `None`) is only garbage once it is a day old.
fn add(
    entries: &mut Vec<Entry>,
    usage: &mut Usage,
    kind: Kind,
    path: PathBuf,
    locks: Option<Vec<(String, String)>>,
) -> Result<()> {
    let Ok(top) = std::fs::symlink_metadata(&path) else {
        return Ok(()); // removed meanwhile
    };
    let used = mtime(&top);
    let locks = match locks {
        Some(l) => l,
        None if SystemTime::now().duration_since(used).unwrap_or_default() > UNKNOWN_TEMP_AGE => {
            vec![]
        }
        None => return Ok(()),
    };
    let mut links: HashMap<Inode, u64> = HashMap::new();
    walk(&path, &mut |_, m| {
        let ino = (m.dev(), m.ino());
        // A directory is the entry's own, whatever its link count says.
        let n = if m.is_dir() { 1 } else { m.nlink() };
        usage.inodes.entry(ino).or_insert((m.blocks() * 512, n));
        *links.entry(ino).or_default() += 1;
    })?;
    entries.push(Entry {
        kind,
        path,
        locks,
        used,
        inodes: links.into_iter().collect(),
    });
    Ok(())
}

/// Calls `f` on `path` and everything under it, never following symlinks.
fn walk(path: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) -> Result<()> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    f(path, &m);
    if m.is_dir() {
        for child in read_dir(path)? {
            walk(&child, f)?;
        }
    }
    Ok(())
}

/// The children of `dir` (none when it does not exist).
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn named(p: PathBuf) -> (PathBuf, String) {
    let name = p
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    (p, name)
}

fn mtime(m: &std::fs::Metadata) -> SystemTime {
    m.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("500MB", Some(500_000_000)),
            ("5GiB", Some(5 << 30)),
            ("4g", Some(4_000_000_000)),
            ("1.5 KiB", Some(1536)),
            (" 2 tib ", Some(2 << 40)),
            ("lots", None),
            ("5 parsecs", None),
            ("", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn the_setting_turns_off_with_0_or_off_and_names_itself_when_wrong() {
        assert_eq!(max_size_setting("off").unwrap(), None);
        assert_eq!(max_size_setting("0").unwrap(), None);
        assert_eq!(max_size_setting("4GiB").unwrap(), Some(4 << 30));
        let e = max_size_setting("4 GiBs").unwrap_err().to_string();
        assert!(e.contains("cache_max_size"), "{e}");
    }

    fn entry(kind: Kind, ino: u64, age_s: u64, now: SystemTime) -> Entry {
        Entry {
            kind,
            path: PathBuf::from(format!("e{ino}")),
            locks: vec![],
            used: now - Duration::from_secs(age_s),
            inodes: vec![((0, ino), 1)],
        }
    }

    fn usage(rows: &[(u64, u64, u64)]) -> Usage {
        Usage {
            inodes: rows.iter().map(|&(i, b, l)| ((0, i), (b, l))).collect(),
        }
    }

    #[test]
    fn least_recently_used_go_first_until_the_size_holds_and_locked_ones_are_skipped() {
        let now = SystemTime::now();
        let es = vec![
            entry(Kind::Root, 1, 10, now),
            entry(Kind::Blob, 2, 300, now),
            entry(Kind::Blob, 3, 200, now), // in use
            entry(Kind::Root, 4, 100, now),
        ];
        let mut u = usage(&[(1, 10, 1), (2, 10, 1), (3, 10, 1), (4, 10, 1)]);
        let bound = Bound {
            max_size: Some(25),
            ..Bound::default()
        };
        let got = select(&es, &mut u, &bound, now, |e| e.path != Path::new("e3"));
        assert_eq!(got, vec![(1, 10), (3, 10)]);
        assert_eq!(u.total(), 20, "e3 (locked) and e1 (newest) stay");
    }

    #[test]
    fn a_shared_inode_is_freed_only_with_its_last_entry_and_the_run_keeps_its_own() {
        let now = SystemTime::now();
        let mut a = entry(Kind::Root, 1, 300, now);
        a.inodes.push(((0, 9), 1));
        let mut b = entry(Kind::Root, 2, 200, now);
        b.inodes.push(((0, 9), 1));
        let c = entry(Kind::Root, 3, 1, now);
        let mut u = usage(&[(1, 1, 1), (2, 1, 1), (3, 1, 1), (9, 100, 2)]);
        let bound = Bound {
            max_size: Some(0),
            keep_used_since: Some(now - Duration::from_secs(5)),
            ..Bound::default()
        };
        let got = select(&[a, b, c], &mut u, &bound, now, |_| true);
        assert_eq!(got, vec![(0, 1), (1, 101)]);
        assert_eq!(u.total(), 1, "only the run's own root is left");
    }

    #[test]
    fn older_than_removes_idle_entries_and_garbage_always_goes() {
        let now = SystemTime::now();
        let es = vec![
            entry(Kind::Blob, 1, 3 * 86400, now),
            entry(Kind::Blob, 2, 60, now),
            entry(Kind::Abandoned, 3, 1, now),
        ];
        let mut u = usage(&[(1, 1, 1), (2, 1, 1), (3, 1, 1)]);
        let bound = Bound {
            older_than: Some(Duration::from_secs(86400)),
            ..Bound::default()
        };
        let mut got = select(&es, &mut u, &bound, now, |_| true);
        got.sort();
        assert_eq!(got, vec![(0, 1), (2, 1)]);
    }

    #[test]
    fn temp_names_lead_to_their_locks() {
        let name = format!("{}abc", temp_prefix("layer", "f00d"));
        assert_eq!(
            temp_locks(&name),
            Some(vec![("layer".into(), "f00d".into())])
        );
        assert_eq!(temp_locks(".tmpXYZ"), None);
    }
}
