//! The build context: `.dockerignore` patterns (Docker's rules: Go
//! `filepath.Match` per path element, `**` for any number of elements, `!`
//! exceptions, the last matching line wins, a match on a directory covers what
//! is under it) and the sorted list of entries one `ADD`/`COPY` puts in its
//! layer. Only metadata is held in memory; file contents are streamed later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::LayerSpec;
use crate::error::{Error, Result};

/// `.dockerignore`, parsed.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    /// (exception, path elements of the pattern)
    patterns: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    /// Parses `.dockerignore` text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let elems: Vec<String> = p
                .split('/')
                .filter(|e| !e.is_empty() && *e != ".")
                .map(String::from)
                .collect();
            if elems.is_empty() {
                continue;
            }
            patterns.push((exception, elems));
        }
        Ignore { patterns }
    }

    /// Reads `<context>/.dockerignore` (none: nothing is ignored).
    pub fn load(context: &Path) -> Result<Ignore> {
        let path = context.join(".dockerignore");
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Ignore::parse(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Whether a context-relative path (`a/b/c`) is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let elems: Vec<&str> = rel.split('/').filter(|e| !e.is_empty()).collect();
        let mut excluded = false;
        for (exception, pattern) in &self.patterns {
            // The pattern matches the path or one of its parents.
            let hit = (1..=elems.len()).any(|n| match_elems(pattern, &elems[..n]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Matches pattern elements against path elements, `**` spanning any number.
fn match_elems(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| match_elems(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((e, path_rest)) => glob(p, e) && match_elems(rest, path_rest),
            None => false,
        },
    }
}

/// Go `filepath.Match` for one element: `*`, `?`, `[...]` (with `^`/`!` and ranges), `\` escapes.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(i), Some('^') | Some('!'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            loop {
                match p.get(i) {
                    None => return false, // unterminated class: no match
                    Some(']') if !first => break,
                    Some(&lo) => {
                        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                            let hi = p[i + 2];
                            matched |= lo <= c && c <= hi;
                            i += 3;
                        } else {
                            matched |= lo == c;
                            i += 1;
                        }
                    }
                }
                first = false;
            }
            matched != negate && glob_at(&p[i + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// What one tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        source: PathBuf,
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// An empty regular file: a `RUN` layer's whiteout (`.wh.NAME`, `.wh..wh..opq`).
    Empty,
    /// A hard link to an earlier entry of the same layer (its path): a `RUN`
    /// step's second name for a file.
    HardLink {
        target: String,
    },
}

/// One entry of a layer, with the metadata the layer records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Source metadata for the cache fingerprint (size, mtime in ns); not written to the layer.
    pub stamp: (u64, i128),
}

/// A local tar archive to extract into a directory of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The destination directory (no leading `/`).
    pub dest: String,
    pub source: PathBuf,
    /// Size and mtime of the archive file, for the cache fingerprint.
    pub stamp: (u64, i128),
    /// `--chown`: every entry gets this owner instead of the archive's own.
    pub owner: Option<(u64, u64)>,
}

/// What one layer spec produces: entries keyed by their path in the image (no
/// leading `/`; sorted by the map), then local archives `ADD` extracts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    pub map: BTreeMap<String, Entry>,
    /// Local archives `ADD` extracts, in source order.
    pub archives: Vec<Archive>,
}

fn rel_clean(s: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn stamp(md: &std::fs::Metadata) -> (u64, i128) {
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    (md.len(), mtime)
}

#[cfg(unix)]
fn mode_of(md: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(md: &std::fs::Metadata) -> u32 {
    if md.is_dir() { 0o755 } else { 0o644 }
}

/// Whether the file starts like a tar archive (plain, gzip, bzip2 or xz).
pub fn is_archive(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    let h = &head[..n];
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || (n >= 262 && &h[257..262] == b"ustar")
}

/// The entries of one `ADD`/`COPY`: the destination's parent directories, then
/// every source (globs expanded, `.dockerignore` honoured). `what` names the
/// instruction in errors (`Dockerfile:4`).
pub fn entries(context: &Path, ignore: &Ignore, spec: &LayerSpec, what: &str) -> Result<Entries> {
    let kw = if spec.add { "ADD" } else { "COPY" };
    let mut out = Entries::default();
    let dest = spec.dest.trim_start_matches('/').to_string();
    let dir_entry = |mode: u32, uid, gid, stamp| Entry {
        kind: Kind::Dir,
        mode,
        uid,
        gid,
        stamp,
    };
    // Parents of the destination, root-owned, 0755.
    let mut prefix = String::new();
    let dest_parts: Vec<&str> = dest.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in dest_parts.iter().enumerate() {
        if i + 1 == dest_parts.len() {
            break;
        }
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        out.map
            .insert(prefix.clone(), dir_entry(0o755, 0, 0, (0, 0)));
    }
    // Sources, globs expanded.
    let mut sources: Vec<String> = Vec::new();
    for s in &spec.sources {
        let Some(clean) = rel_clean(s) else {
            return Err(Error::Invalid(format!(
                "{what}: {kw} source `{s}` is outside the build context"
            )));
        };
        if has_glob(&clean) {
            let pattern: Vec<String> = clean.split('/').map(String::from).collect();
            let mut found = Vec::new();
            walk_matches(context, "", &pattern, ignore, &mut found)?;
            if found.is_empty() {
                return Err(Error::Invalid(format!(
                    "{what}: {kw} `{s}` matches no file in the build context {}",
                    context.display()
                )));
            }
            found.sort();
            sources.extend(found);
        } else {
            if !clean.is_empty() && ignore.excluded(&clean) {
                return Err(Error::Invalid(format!(
                    "{what}: {kw} `{s}` is excluded by {}: remove it from .dockerignore",
                    context.join(".dockerignore").display()
                )));
            }
            sources.push(clean);
        }
    }
    let multi = sources.len() > 1 || spec.dest_dir;
    let root = context.canonicalize().map_err(|e| Error::io(context, e))?;
    for rel in &sources {
        let path = if rel.is_empty() {
            context.to_path_buf()
        } else {
            context.join(rel)
        };
        // Symlinks on the way are followed, but never out of the context: a
        // repository must not be able to copy the CI runner's files into an image.
        if let Ok(real) = path.canonicalize()
            && !real.starts_with(&root)
        {
            return Err(Error::Invalid(format!(
                "{what}: {kw} `{rel}` leads out of the build context (a symlink to {}): copy the content into the context",
                real.display()
            )));
        }
        // The named source itself is followed if it is a symlink, as Docker does.
        let md = std::fs::metadata(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "{what}: {kw} `{rel}` not found in the build context {}",
                    context.display()
                ))
            } else {
                Error::io(&path, e)
            }
        })?;
        let mode = spec.chmod.unwrap_or_else(|| mode_of(&md));
        if md.is_dir() {
            if !dest.is_empty() {
                out.map.insert(
                    dest.clone(),
                    dir_entry(mode, spec.uid, spec.gid, stamp(&md)),
                );
            }
            walk_dir(context, rel, &dest, ignore, spec, &mut out.map)?;
        } else if spec.add && is_archive(&path) {
            if !dest.is_empty() {
                out.map
                    .insert(dest.clone(), dir_entry(0o755, spec.uid, spec.gid, (0, 0)));
            }
            out.archives.push(Archive {
                dest: dest.clone(),
                source: path.clone(),
                stamp: stamp(&md),
                owner: spec.chown.then_some((spec.uid, spec.gid)),
            });
        } else {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            let at = if multi {
                if !dest.is_empty() {
                    out.map
                        .insert(dest.clone(), dir_entry(0o755, spec.uid, spec.gid, (0, 0)));
                }
                join_rel(&dest, name)
            } else {
                dest.clone()
            };
            if at.is_empty() {
                return Err(Error::Invalid(format!(
                    "{what}: {kw} cannot write a file over `/`"
                )));
            }
            out.map.insert(
                at,
                Entry {
                    kind: Kind::File {
                        source: path.clone(),
                        size: md.len(),
                    },
                    mode,
                    uid: spec.uid,
                    gid: spec.gid,
                    stamp: stamp(&md),
                },
            );
        }
    }
    Ok(out)
}

fn join_rel(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Walks `context/rel` (a directory), adding what is under it at `dest/...`.
fn walk_dir(
    context: &Path,
    rel: &str,
    dest: &str,
    ignore: &Ignore,
    spec: &LayerSpec,
    out: &mut BTreeMap<String, Entry>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(rel)
    };
    let read = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut names: Vec<String> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        match entry.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => {
                return Err(Error::Invalid(format!(
                    "{}: file name {n:?} is not UTF-8; rename it",
                    dir.display()
                )));
            }
        }
    }
    names.sort();
    for name in names {
        let child_rel = join_rel(rel, &name);
        if ignore.excluded(&child_rel) {
            continue;
        }
        let path = dir.join(&name);
        let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let at = join_rel(dest, &name);
        let mode = spec.chmod.unwrap_or_else(|| mode_of(&md));
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            Kind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if ft.is_file() {
            Kind::File {
                source: path.clone(),
                size: md.len(),
            }
        } else {
            tracing::warn!(
                "{}: not a file, directory or symlink; left out of the layer",
                path.display()
            );
            continue;
        };
        let is_dir = kind == Kind::Dir;
        out.insert(
            at.clone(),
            Entry {
                kind,
                mode: if ft.is_symlink() { 0o777 } else { mode },
                uid: spec.uid,
                gid: spec.gid,
                stamp: stamp(&md),
            },
        );
        if is_dir {
            walk_dir(context, &child_rel, &at, ignore, spec, out)?;
        }
    }
    Ok(())
}

/// The entries of one `COPY --from`: paths inside an unpacked stage or image
/// root, resolved inside it (symlinks never lead out), with the modes and
/// owners its layers state (`--chown`/`--chmod` override them), as Docker
/// keeps them between stages. A wildcard may stand in the last part of a
/// source's path. `what` names the instruction (`Dockerfile:9`), `from` the
/// stage or image.
pub fn entries_from_root(
    fs: &crate::verify::rootfs::RootFs,
    spec: &LayerSpec,
    what: &str,
    from: &str,
) -> Result<Entries> {
    let mut out = Entries::default();
    let dest = spec.dest.trim_start_matches('/').to_string();
    // Parents of the destination, root-owned, 0755.
    let dest_parts: Vec<&str> = dest.split('/').filter(|s| !s.is_empty()).collect();
    for i in 1..dest_parts.len() {
        out.map
            .insert(dest_parts[..i].join("/"), root_dir(0o755, 0, 0));
    }
    // Sources: (the name the user gave's last part, the host path).
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    for s in &spec.sources {
        // `..` stops at the stage's root, as in a container.
        let clean = super::plan::clean_path(&format!("/{s}"))
            .trim_start_matches('/')
            .to_string();
        let (parent, last) = match clean.rsplit_once('/') {
            Some((p, l)) => (p.to_string(), l.to_string()),
            None => (String::new(), clean.clone()),
        };
        if has_glob(&parent) {
            return Err(Error::Invalid(format!(
                "{what}: COPY `{s}` from {from}: a wildcard may stand only in the last part of the path"
            )));
        }
        let not_found = || {
            Error::Invalid(format!(
                "{what}: COPY `{s}` from {from}: not found there (a path inside {from}, not in the build context): check the path"
            ))
        };
        if has_glob(&last) {
            let dir = fs.resolve(&format!("/{parent}")).map_err(|_| not_found())?;
            let mut found = Vec::new();
            if let Ok(read) = std::fs::read_dir(&dir) {
                for e in read.flatten() {
                    if let Ok(name) = e.file_name().into_string()
                        && glob(&last, &name)
                    {
                        found.push(name);
                    }
                }
            }
            if found.is_empty() {
                return Err(not_found());
            }
            found.sort();
            for name in found {
                let path = fs
                    .resolve(&format!("/{}", join_rel(&parent, &name)))
                    .map_err(|_| not_found())?;
                sources.push((name, path));
            }
        } else {
            sources.push((
                last,
                fs.resolve(&format!("/{clean}")).map_err(|_| not_found())?,
            ));
        }
    }
    let multi = sources.len() > 1 || spec.dest_dir;
    for (name, path) in &sources {
        let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let rel = in_root(fs, path);
        if md.is_dir() {
            // Only the directory's content is copied, into `dest`.
            if !dest.is_empty() {
                let mode = spec.chmod.unwrap_or_else(|| recorded_mode(fs, &rel, &md));
                out.map
                    .insert(dest.clone(), root_dir(mode, spec.uid, spec.gid));
            }
            walk_root(fs, path, &dest, spec, &mut out.map)?;
        } else {
            let at = if multi {
                if !dest.is_empty() {
                    out.map
                        .insert(dest.clone(), root_dir(0o755, spec.uid, spec.gid));
                }
                join_rel(&dest, name)
            } else {
                dest.clone()
            };
            if at.is_empty() || name.is_empty() {
                return Err(Error::Invalid(format!(
                    "{what}: COPY from {from} cannot write a file over `/`"
                )));
            }
            let entry = root_entry(fs, spec, path, &md, &rel)?;
            out.map.insert(at, entry);
        }
    }
    Ok(out)
}

fn root_dir(mode: u32, uid: u64, gid: u64) -> Entry {
    Entry {
        kind: Kind::Dir,
        mode,
        uid,
        gid,
        stamp: (0, 0),
    }
}

/// A host path's path in the image (no leading `/`).
fn in_root(fs: &crate::verify::rootfs::RootFs, path: &Path) -> String {
    path.strip_prefix(fs.path())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The mode the entry's layer gave it, else what the disk holds.
fn recorded_mode(fs: &crate::verify::rootfs::RootFs, rel: &str, md: &std::fs::Metadata) -> u32 {
    fs.recorded(rel).map_or_else(|| mode_of(md), |r| r.mode)
}

/// One entry of a root (`md` not following symlinks), with its recorded mode and owner.
fn root_entry(
    fs: &crate::verify::rootfs::RootFs,
    spec: &LayerSpec,
    path: &Path,
    md: &std::fs::Metadata,
    rel: &str,
) -> Result<Entry> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::io(path, e))?;
        Kind::Symlink {
            target: target.to_string_lossy().into_owned(),
        }
    } else {
        Kind::File {
            source: path.to_path_buf(),
            size: md.len(),
        }
    };
    let recorded = fs.recorded(rel);
    let (uid, gid) = if spec.chown {
        (spec.uid, spec.gid)
    } else {
        recorded.map_or((0, 0), |r| (r.uid, r.gid))
    };
    let mode = if ft.is_symlink() {
        0o777
    } else {
        spec.chmod.unwrap_or_else(|| recorded_mode(fs, rel, md))
    };
    Ok(Entry {
        kind,
        mode,
        uid,
        gid,
        stamp: stamp(md),
    })
}

/// Walks a directory of a root, adding what is under it at `dest/...`.
fn walk_root(
    fs: &crate::verify::rootfs::RootFs,
    dir: &Path,
    dest: &str,
    spec: &LayerSpec,
    out: &mut BTreeMap<String, Entry>,
) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<String> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        match entry.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => {
                return Err(Error::Invalid(format!(
                    "/{}: file name {n:?} is not UTF-8; rename it in the stage",
                    in_root(fs, dir)
                )));
            }
        }
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let ft = md.file_type();
        if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
            tracing::warn!(
                "/{}: not a file, directory or symlink; left out of the layer",
                in_root(fs, &path)
            );
            continue;
        }
        let at = join_rel(dest, &name);
        let entry = root_entry(fs, spec, &path, &md, &in_root(fs, &path))?;
        out.insert(at.clone(), entry);
        if ft.is_dir() {
            walk_root(fs, &path, &at, spec, out)?;
        }
    }
    Ok(())
}

/// Finds context paths matching glob pattern elements.
fn walk_matches(
    context: &Path,
    rel: &str,
    pattern: &[String],
    ignore: &Ignore,
    found: &mut Vec<String>,
) -> Result<()> {
    let Some((first, rest)) = pattern.split_first() else {
        return Ok(());
    };
    let dir = if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(rel)
    };
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in read {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !glob(first, &name) {
            continue;
        }
        let child = join_rel(rel, &name);
        if ignore.excluded(&child) {
            continue;
        }
        if rest.is_empty() {
            found.push(child);
        } else if entry.path().is_dir() {
            walk_matches(context, &child, rest, ignore, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_rows() {
        for (p, n, want) in [
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a]x", "bx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[", "[", false),
            ("*.jar", "app.jar", true),
            ("*.jar", "app.jar.sha", false),
        ] {
            assert_eq!(glob(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse(
            "# comment\n*.log\n/build\n**/tmp\n!keep.log\ndocs/*.md\n!docs/README.md\n",
        );
        for (path, want) in [
            ("a.log", true),
            ("keep.log", false),
            ("dir/a.log", false), // `*.log` is for the top level only
            ("build", true),
            ("build/x/y", true),
            ("src/tmp/x", true),
            ("tmp", true),
            ("docs/a.md", true),
            ("docs/README.md", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(ig.excluded(path), want, "{path}");
        }
        assert!(!Ignore::default().excluded("anything"));
    }
}
