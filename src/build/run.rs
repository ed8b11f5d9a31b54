//! `RUN`: a stage's root file system, unpacked once per platform (the base's
//! layers with [`crate::verify::rootfs`]'s whiteout and safety rules, then
//! every earlier step's layer), in which each command runs inside the
//! bubblewrap sandbox of [`crate::verify::runner`], the root bound
//! read-write. A step's changes are found by comparing a snapshot of the root
//! taken before with one taken after (path, type, mode, size, mtime, ctime,
//! inode, link target): added and changed entries, deletions as OCI whiteouts
//! (`.wh.NAME`), a directory that was removed and made again as an opaque
//! one (`.wh..wh..opq`). The layer is then written by [`super::layer`] like
//! any other: sorted entries, the fixed mtime, no host metadata.
//!
//! The host's platform (and one it runs natively) executes directly; a
//! foreign one through QEMU, registered with the `F` flag either by the host
//! already (`binfmt-support`) or — registering nothing on the host — in a
//! private binfmt_misc of a user namespace made for the step (Linux >= 6.7).
//!
//! Owners: the root records each entry's mode and owner as the layers state
//! them ([`RootFs::record_metadata`]), which `COPY --from` copies too. Run
//! as root, archgate gives the files on disk those owners and runs each
//! step in a user namespace mapping every id to itself
//! ([`runner::maps_every_id`]): `chown` works, and the owners the step
//! leaves on disk are the layer's. Otherwise the sandbox maps one user, so
//! every file a step adds is the step `USER`'s; a changed file keeps the
//! owner its layer or an earlier step gave it. Either way a changed file
//! keeps its setuid bits, which the root on disk never has.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::context::{Entries, Entry, Kind};
use super::plan::RunSpec;
use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::platform::{self, Platform};
use crate::verify::cache::BlobFile;
use crate::verify::rootfs::{self, Recorded, RootFs};
use crate::verify::runner::{self, Mode, Sandbox};

/// The Linux release from which binfmt_misc can be mounted in a user namespace.
const PRIVATE_BINFMT: (u32, u32) = (6, 7);

/// How one platform's steps execute.
#[derive(Debug, Clone)]
pub struct Runner {
    pub mode: Mode,
    /// The registration for a private binfmt_misc (`Mode::Qemu` only).
    pub binfmt: Option<String>,
    /// The steps run under QEMU (privately registered, or the host's registration).
    pub emulated: bool,
}

/// How `platform`'s `RUN` steps can execute on this host, or an error naming
/// the kernel and the ways out.
pub fn runner_for(platform: &Platform, what: &str) -> Result<Runner> {
    let host = Platform::host();
    let bwrap = || {
        runner::choose(crate::config::Runner::Native, &host)
            .map_err(|m| Error::Invalid(format!("{what}: RUN for {platform}: {m}")))
    };
    if platform::can_run(&host, platform) {
        bwrap()?;
        return Ok(Runner {
            mode: Mode::Native,
            binfmt: None,
            emulated: false,
        });
    }
    let Some(base) = platform.qemu_binary() else {
        return Err(Error::Invalid(format!(
            "{what}: RUN for {platform}: no QEMU user-mode emulator is known for it"
        )));
    };
    // The host's own F-flag registration: the kernel runs foreign programs already.
    let host_entry = std::fs::read_to_string(Path::new("/proc/sys/fs/binfmt_misc").join(base))
        .unwrap_or_default();
    if host_entry.lines().next() == Some("enabled")
        && host_entry
            .lines()
            .any(|l| l.strip_prefix("flags: ").is_some_and(|f| f.contains('F')))
    {
        bwrap()?;
        return Ok(Runner {
            mode: Mode::Native,
            binfmt: None,
            emulated: true,
        });
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    if kernel_version(&kernel).is_none_or(|v| v < PRIVATE_BINFMT) {
        return Err(Error::Invalid(format!(
            "{what}: RUN for {platform} on this {host} host needs QEMU through binfmt_misc: this kernel ({}) is older than Linux 6.7, which can register it privately in a user namespace; register {base}-static on the runner with the F flag (apt-get install qemu-user-static binfmt-support, as root), run on a Linux >= 6.7 runner, or build --platform {host} only",
            if kernel.is_empty() {
                "unknown"
            } else {
                &kernel
            }
        )));
    }
    let mode = runner::choose(crate::config::Runner::Qemu, platform)
        .map_err(|m| Error::Invalid(format!("{what}: RUN for {platform}: {m}")))?;
    let Mode::Qemu(qemu) = &mode else {
        return Err(Error::Internal(format!(
            "RUN for {platform}: the qemu runner chose {}",
            mode.label()
        )));
    };
    let binfmt = registration(base, qemu)
        .map_err(|m| Error::Invalid(format!("{what}: RUN for {platform}: {m}")))?;
    Ok(Runner {
        mode,
        binfmt: Some(binfmt),
        emulated: true,
    })
}

/// `6.18.44-fc` → (6, 18).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The binfmt_misc registration of `qemu` for `base` (`qemu-aarch64`), with
/// the magic and mask Debian's qemu-user-static describes in
/// `/usr/share/binfmts/BASE` (those of qemu-binfmt-conf.sh), and the `F` flag.
fn registration(base: &str, qemu: &Path) -> std::result::Result<String, String> {
    let file = Path::new("/usr/share/binfmts").join(base);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "cannot read {} ({e}): install qemu-user-static (apt-get install qemu-user-static)",
            file.display()
        )
    })?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::trim))
            .filter(|v| !v.is_empty())
    };
    let (Some(magic), Some(mask)) = (field("magic"), field("mask")) else {
        return Err(format!("{} has no magic or mask line", file.display()));
    };
    let offset = field("offset").unwrap_or("0");
    let ok = |s: &str| !s.contains(':') && !s.contains('\n');
    let path = qemu.display().to_string();
    if !(ok(magic) && ok(mask) && ok(offset) && ok(&path)) {
        return Err(format!(
            "{} holds a `:`; not a registration",
            file.display()
        ));
    }
    Ok(format!(
        ":archgate-{base}:M:{offset}:{magic}:{mask}:{path}:F"
    ))
}

/// The step cache's key of a `RUN`: the layers under it (the base's, then
/// this build's, by digest), the platform, the command, its environment
/// (build args included), working directory and user, and the epoch. The
/// same key means the same inputs, so the layer recorded under it is reused
/// and the command does not run again.
pub fn step_key(
    platform: &Platform,
    parents: &[crate::image::Digest],
    spec: &RunSpec,
    epoch: i64,
) -> String {
    key("run", platform, parents, epoch, |put| {
        put("argv");
        for a in &spec.argv {
            put(a);
        }
        put("env");
        for e in &spec.env {
            put(e);
        }
        put(&spec.workdir);
        for (dir, user) in &spec.workdirs {
            put(dir);
            put(user);
        }
        put(&spec.user);
    })
}

/// The step cache's key of a `COPY --from`: the platform, the source's
/// layers (a stage's or an image's, by digest: the same layers hold the same
/// files, modes and owners), what is copied where with which owner and mode,
/// and the epoch. A rebuild with nothing changed finds the layer here
/// without building or unpacking the source.
pub fn copy_key(
    platform: &Platform,
    source: &[crate::image::Digest],
    spec: &super::plan::LayerSpec,
    epoch: i64,
) -> String {
    key("copy", platform, source, epoch, |put| {
        put("sources");
        for s in &spec.sources {
            put(s);
        }
        put(&spec.dest);
        put(&format!(
            "{} {} {} {} {:?}",
            spec.dest_dir, spec.chown, spec.uid, spec.gid, spec.chmod
        ));
    })
}

/// `KIND-HEX`: a hash of the kind, platform, epoch, layers and what `rest` puts.
fn key(
    kind: &str,
    platform: &Platform,
    layers: &[crate::image::Digest],
    epoch: i64,
    rest: impl FnOnce(&mut dyn FnMut(&str)),
) -> String {
    let mut h = crate::image::digest::Hasher::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update(&[0]);
    };
    put(&format!("archgate-{kind}-v1"));
    put(&platform.normalised().to_string());
    put(&epoch.to_string());
    for d in layers {
        put(d.as_str());
    }
    rest(&mut put);
    format!("{kind}-{}", h.finish().hex())
}

/// A platform's root while its steps run: deleted on drop.
pub struct StageRoot {
    root: RootFs,
}

impl StageRoot {
    /// A fresh root under `parent` with `layers` applied in order (a store's
    /// own files are verified against their digests while read).
    pub fn unpack(
        parent: &Path,
        layers: &[(Descriptor, BlobFile)],
        max_bytes: u64,
        subject: &str,
    ) -> Result<StageRoot> {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let limits = rootfs::Limits {
            max_total_bytes: max_bytes,
            ..rootfs::Limits::default()
        };
        let mut root = RootFs::new_named(parent, ".run-", limits)?;
        root.record_metadata(runner::maps_every_id());
        let total = layers.iter().map(|(d, _)| d.size).sum();
        let tracker =
            crate::progress::start(subject, crate::progress::Phase::Unpack, "", Some(total));
        crate::verify::unpack::apply_layers(&mut root, layers, &tracker)?;
        tracker.complete();
        // Mount points of the sandbox, made before any snapshot: in no layer.
        for dir in ["proc", "dev"] {
            let p = root.path().join(dir);
            if std::fs::symlink_metadata(&p).is_err() {
                std::fs::create_dir(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Ok(StageRoot { root })
    }

    /// The host directory of the root.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Applies a layer this build wrote (gzip).
    pub fn apply_built(&mut self, blob: &Path, what: &str) -> Result<()> {
        let f = std::fs::File::open(blob).map_err(|e| Error::io(blob, e))?;
        let mut reader = std::io::BufReader::new(f);
        self.root
            .apply_layer(&mut reader, rootfs::Compression::Gzip, what)
    }

    /// The unpacked root, for `COPY --from` (its entries' modes and owners recorded).
    pub fn fs(&self) -> &RootFs {
        &self.root
    }

    /// Runs one step in the root; its changes as a layer's entries. A command
    /// that fails is the Dockerfile's error (exit 2), naming `what`
    /// (`Dockerfile:7`), the platform, the exit code and the last output lines.
    pub async fn run(
        &mut self,
        spec: &RunSpec,
        runner: &Runner,
        platform: &Platform,
        what: &str,
        timeout: Duration,
        share_net: bool,
    ) -> Result<Entries> {
        let shown = spec.argv.join(" ");
        let user = self.user(&spec.user, what)?;
        let before = snapshot(self.path())?;
        // Directories made for each WORKDIR are its line's USER's, then the
        // working directory itself (an inherited one) root's.
        let mut made: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let inherited = (spec.workdir.clone(), String::new());
        let wanted = spec.workdirs.iter().chain([&inherited]);
        for (dir, owner) in wanted {
            let ids = self.user(owner, what)?;
            for p in self.make_workdir(dir, what)? {
                if runner::maps_every_id() {
                    let host = self.path().join(&p);
                    std::os::unix::fs::lchown(&host, Some(ids.0), Some(ids.1))
                        .map_err(|e| Error::io(&host, e))?;
                }
                made.insert(p, (u64::from(ids.0), u64::from(ids.1)));
            }
        }
        let sandbox = Sandbox {
            root: self.path().to_path_buf(),
            mode: runner.mode.clone(),
            env: spec.env.clone(),
            workdir: spec.workdir.clone(),
            timeout,
        };
        let phase = match runner.mode {
            Mode::Qemu(_) => crate::progress::Phase::Emulate,
            _ => crate::progress::Phase::Run,
        };
        let tracker = crate::progress::start(&platform.to_string(), phase, what, None);
        let out = sandbox
            .run_step(&spec.argv, user, runner.binfmt.as_deref(), share_net)
            .await?;
        let last = out.tail(5);
        let last = if last.is_empty() {
            "no output".to_string()
        } else {
            format!("last output: {last}")
        };
        if out.timed_out {
            let message = format!(
                "{what}: RUN {shown} for {platform} was stopped after {} s ([build] run_timeout; {last})",
                timeout.as_secs()
            );
            // Under emulation a slow or overloaded runner is the likely cause: not a verdict.
            return Err(if runner.emulated {
                Error::Internal(message)
            } else {
                Error::Invalid(message)
            });
        }
        // A crash under QEMU (SIGILL, SIGBUS, SIGSEGV) is the emulator's far
        // more often than the command's: the runner's fault, not the Dockerfile's.
        if runner.emulated
            && out.code != Some(0)
            && let Some(signal) = crate::verify::java::crash_signal(&out.combined(), out.code)
        {
            return Err(Error::Internal(format!(
                "{what}: RUN {shown} crashed with {signal} under QEMU for {platform} ({last}): QEMU user-mode emulation, not the Dockerfile, is the likely cause; retry, try another qemu-user-static, or run the step on a {platform} runner (a crash there too is the command's own)"
            )));
        }
        match out.code {
            Some(0) => {}
            Some(code) => {
                return Err(Error::Invalid(format!(
                    "{what}: RUN {shown} failed for {platform}: exit code {code} ({last})"
                )));
            }
            None => {
                return Err(Error::Invalid(format!(
                    "{what}: RUN {shown} for {platform} was killed by a signal ({last})"
                )));
            }
        }
        tracker.complete();
        let after = snapshot(self.path())?;
        let entries = changes(
            self.path(),
            &before,
            &after,
            &|p| self.root.recorded(p),
            user,
            runner::maps_every_id(),
            &made,
        );
        for (path, e) in &entries.map {
            if !matches!(e.kind, Kind::Empty) {
                let meta = Recorded {
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                };
                self.root.set_recorded(path, meta);
            }
        }
        Ok(entries)
    }

    /// `USER` as ids: numbers, or names from the root's /etc/passwd and /etc/group.
    fn user(&self, user: &str, what: &str) -> Result<(u32, u32)> {
        if user.is_empty() {
            return Ok((0, 0));
        }
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let table = |file: &str| -> Vec<Vec<String>> {
            self.root
                .resolve(file)
                .ok()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').map(String::from).collect())
                .collect()
        };
        let missing = |kind: &str, name: &str, file: &str| {
            Error::Invalid(format!(
                "{what}: USER {user}: no {kind} {name} in the image's {file}; use numeric ids (USER 1000:1000) or add it in an earlier step"
            ))
        };
        let (uid, primary) = match u.parse::<u32>() {
            Ok(n) => (
                n,
                table("/etc/passwd")
                    .iter()
                    .find(|r| r.get(2).is_some_and(|x| x == u))
                    .and_then(|r| r.get(3)?.parse().ok())
                    .unwrap_or(n),
            ),
            Err(_) => {
                let passwd = table("/etc/passwd");
                let row = passwd
                    .iter()
                    .find(|r| r.first().is_some_and(|x| x == u))
                    .ok_or_else(|| missing("user", u, "/etc/passwd"))?;
                let id = |i: usize| row.get(i).and_then(|x| x.parse().ok());
                match (id(2), id(3)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(missing("user", u, "/etc/passwd")),
                }
            }
        };
        let gid = match g {
            None => primary,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => table("/etc/group")
                    .iter()
                    .find(|r| r.first().is_some_and(|x| x == g))
                    .and_then(|r| r.get(2)?.parse().ok())
                    .ok_or_else(|| missing("group", g, "/etc/group"))?,
            },
        };
        Ok((uid, gid))
    }

    /// Creates the working directory (resolved inside the root) when missing;
    /// the directories made (paths in the root, no leading `/`).
    fn make_workdir(&self, workdir: &str, what: &str) -> Result<Vec<String>> {
        let mut made = Vec::new();
        let mut at = String::new();
        for part in workdir.split('/').filter(|p| !p.is_empty()) {
            let parent = self
                .root
                .resolve(if at.is_empty() { "/" } else { &at })
                .map_err(|e| Error::Invalid(format!("{what}: WORKDIR {workdir}: {e}")))?;
            at.push('/');
            at.push_str(part);
            if self.root.resolve(&at).is_ok_and(|p| p.is_dir()) {
                continue;
            }
            let p = parent.join(part);
            std::fs::create_dir(&p).map_err(|e| {
                Error::Invalid(format!(
                    "{what}: WORKDIR {workdir}: cannot create {at}: {e}"
                ))
            })?;
            if let Ok(rel) = p.strip_prefix(self.path()) {
                made.push(rel.to_string_lossy().into_owned());
            }
        }
        Ok(made)
    }
}

/// What a snapshot records of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: Shape,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Inode and birth time: the same entry, not one made again in its place.
    ino: (u64, Option<std::time::SystemTime>),
    /// The owner on disk: real when steps keep every owner ([`runner::maps_every_id`]).
    owner: (u64, u64),
    /// Names of the file (hard links).
    nlink: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Dir,
    File,
    Symlink(String),
    /// Sockets, fifos, devices: never put in a layer.
    Other,
}

/// Every entry under `root` (relative paths, no leading `/`), not following symlinks.
fn snapshot(root: &Path) -> Result<BTreeMap<String, Meta>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let read = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in read {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                Shape::Dir
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                Shape::Symlink(t.to_string_lossy().into_owned())
            } else if ft.is_file() {
                Shape::File
            } else {
                Shape::Other
            };
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if kind == Shape::Dir {
                stack.push((path, child.clone()));
            }
            out.insert(
                child,
                Meta {
                    kind,
                    mode: md.mode() & 0o7777,
                    size: md.len(),
                    mtime: (md.mtime(), md.mtime_nsec()),
                    ctime: (md.ctime(), md.ctime_nsec()),
                    ino: (md.ino(), md.created().ok()),
                    owner: (u64::from(md.uid()), u64::from(md.gid())),
                    nlink: md.nlink(),
                },
            );
        }
    }
    Ok(out)
}

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

fn in_dir(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_string(),
        d => format!("{d}/{name}"),
    }
}

/// The mode a root on disk holds for an entry its layer gave `mode`: no
/// setuid/setgid, and the owner may always read and write (`rootfs`'s rule).
fn on_disk(mode: u32, dir: bool) -> u32 {
    (mode & 0o1777) | if dir { 0o700 } else { 0o600 }
}

/// The layer entries that turn `before` into `after`. `recorded` gives a
/// path's mode and owner as its layer or an earlier step stated them.
/// `real_owners`: the disk holds the owners the step gave (it could `chown`);
/// else everything the step made is its `user`'s, but the directories
/// `made` for its `WORKDIR` (their owners).
fn changes(
    root: &Path,
    before: &BTreeMap<String, Meta>,
    after: &BTreeMap<String, Meta>,
    recorded: &dyn Fn(&str) -> Option<Recorded>,
    user: (u32, u32),
    real_owners: bool,
    made: &BTreeMap<String, (u64, u64)>,
) -> Entries {
    let owners = |p: &str| recorded(p).map(|r| (r.uid, r.gid));
    let mut out = Entries::default();
    let new_owner = (u64::from(user.0), u64::from(user.1));
    // Directories removed and made again: lower layers' content under them is hidden.
    let opaque: Vec<&String> = after
        .iter()
        .filter(|(p, m)| {
            m.kind == Shape::Dir
                && before
                    .get(*p)
                    .is_some_and(|b| b.kind == Shape::Dir && b.ino != m.ino)
        })
        .map(|(p, _)| p)
        .collect();
    let under_opaque = |p: &str| {
        opaque.iter().any(|o| {
            p.len() > o.len() && p.starts_with(o.as_str()) && p.as_bytes()[o.len()] == b'/'
        })
    };
    for o in &opaque {
        out.map.insert(
            in_dir(o, ".wh..wh..opq"),
            empty(owners(o).unwrap_or((0, 0))),
        );
    }
    // Deletions: a whiteout where the parent is still the same directory.
    for p in before.keys() {
        // Still there, or replaced by another kind of entry that stands for it.
        if after.contains_key(p) {
            continue;
        }
        let parent = parent_of(p).unwrap_or("");
        let parent_kept = parent.is_empty()
            || match (before.get(parent), after.get(parent)) {
                (Some(pb), Some(pa)) => pa.kind == Shape::Dir && pb.ino == pa.ino,
                _ => false,
            };
        if !parent_kept || under_opaque(p) {
            continue;
        }
        let name = p.rsplit('/').next().unwrap_or(p);
        out.map.insert(
            in_dir(parent, &format!(".wh.{name}")),
            empty(owners(parent).unwrap_or((0, 0))),
        );
    }
    let emitted = |p: &str, a: &Meta| before.get(p) != Some(a) || under_opaque(p);
    // The first name (in path order) of each file with several names in the layer.
    let mut first_name: BTreeMap<u64, String> = BTreeMap::new();
    for (p, a) in after {
        if a.kind == Shape::File && a.nlink > 1 && emitted(p, a) {
            first_name.entry(a.ino.0).or_insert_with(|| p.clone());
        }
    }
    // Additions and changes.
    for (p, a) in after {
        if !emitted(p, a) {
            continue;
        }
        let owner = match before.get(p) {
            // Chowned by the step.
            Some(b) if real_owners && b.owner != a.owner => a.owner,
            Some(_) => owners(p).unwrap_or(if real_owners { a.owner } else { (0, 0) }),
            None if real_owners => a.owner,
            None => made.get(p).copied().unwrap_or(new_owner),
        };
        // A mode the step left as the layer gave it (as the disk holds it)
        // keeps the layer's bits, setuid included.
        let mode = match (before.get(p), recorded(p)) {
            (Some(_), Some(r)) if on_disk(r.mode, a.kind == Shape::Dir) == a.mode => r.mode,
            _ => a.mode,
        };
        let kind = match &a.kind {
            Shape::Dir => Kind::Dir,
            // A second name of a file this layer holds already (the first
            // name in path order, so written before it): a hard link.
            Shape::File if first_name.get(&a.ino.0).is_some_and(|f| f != p) => Kind::HardLink {
                target: first_name[&a.ino.0].clone(),
            },
            Shape::File => Kind::File {
                source: root.join(p),
                size: a.size,
            },
            Shape::Symlink(t) => Kind::Symlink { target: t.clone() },
            Shape::Other => {
                tracing::warn!("/{p}: not a file, directory or symlink; left out of the RUN layer");
                continue;
            }
        };
        out.map.insert(
            p.clone(),
            Entry {
                mode: if matches!(kind, Kind::Symlink { .. }) {
                    0o777
                } else {
                    mode
                },
                kind,
                uid: owner.0,
                gid: owner.1,
                stamp: (
                    a.size,
                    i128::from(a.ctime.0) * 1_000_000_000 + i128::from(a.ctime.1),
                ),
            },
        );
    }
    out
}

fn empty(owner: (u64, u64)) -> Entry {
    Entry {
        kind: Kind::Empty,
        mode: 0o644,
        uid: owner.0,
        gid: owner.1,
        stamp: (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (p, c) in files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
    }

    #[test]
    fn changes_are_additions_edits_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(
            root,
            &[
                ("etc/keep", "k"),
                ("etc/edit", "a"),
                ("etc/gone", "g"),
                ("var/cache/x/y", "y"),
                ("opt/re/old", "o"),
            ],
        );
        let before = snapshot(root).unwrap();
        std::fs::write(root.join("etc/edit"), "bb").unwrap();
        std::fs::remove_file(root.join("etc/gone")).unwrap();
        std::fs::remove_dir_all(root.join("var/cache/x")).unwrap();
        std::fs::remove_dir_all(root.join("opt/re")).unwrap();
        std::fs::create_dir(root.join("opt/re")).unwrap();
        tree(root, &[("opt/re/new", "n"), ("new/deep/file", "f")]);
        let after = snapshot(root).unwrap();
        let e = changes(
            root,
            &before,
            &after,
            &|_| None,
            (1000, 1000),
            false,
            &BTreeMap::new(),
        );
        let keys: Vec<&str> = e.map.keys().map(String::as_str).collect();
        assert!(keys.contains(&"etc/edit"), "{keys:?}");
        assert!(keys.contains(&"etc/.wh.gone"), "{keys:?}");
        assert!(keys.contains(&"var/cache/.wh.x"), "{keys:?}");
        assert!(
            !keys.contains(&"var/cache/x/.wh.y"),
            "the parent's whiteout covers it: {keys:?}"
        );
        assert!(keys.contains(&"opt/re/.wh..wh..opq"), "{keys:?}");
        assert!(keys.contains(&"opt/re/new"), "{keys:?}");
        assert!(!keys.contains(&"opt/re/.wh.old"), "{keys:?}");
        assert!(keys.contains(&"new/deep/file"), "{keys:?}");
        assert!(!keys.contains(&"etc/keep"), "{keys:?}");
        assert_eq!(
            e.map["new/deep/file"].uid, 1000,
            "new files are the step user's"
        );
        assert_eq!(e.map["etc/edit"].uid, 0, "a changed base file stays root's");
        assert!(matches!(e.map["etc/.wh.gone"].kind, Kind::Empty));
    }

    #[test]
    fn the_step_key_changes_with_every_input() {
        let p = Platform::parse("linux/arm64").unwrap();
        let d = crate::image::Digest::of(b"base");
        let spec = RunSpec {
            line: 3,
            argv: vec!["/bin/sh".into(), "-c".into(), "make".into()],
            env: vec!["A=1".into()],
            workdir: "/".into(),
            workdirs: Vec::new(),
            user: String::new(),
        };
        let key = step_key(&p, std::slice::from_ref(&d), &spec, 0);
        assert_eq!(
            key,
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    line: 9,
                    ..spec.clone()
                },
                0
            ),
            "not the line"
        );
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let other = crate::image::Digest::of(b"other");
        for changed in [
            step_key(&amd64, std::slice::from_ref(&d), &spec, 0),
            step_key(&p, &[d.clone(), other], &spec, 0),
            step_key(&p, std::slice::from_ref(&d), &spec, 1),
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    env: vec!["A=2".into()],
                    ..spec.clone()
                },
                0,
            ),
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    workdir: "/w".into(),
                    ..spec.clone()
                },
                0,
            ),
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    user: "1000".into(),
                    ..spec.clone()
                },
                0,
            ),
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    workdirs: vec![("/".into(), "1000".into())],
                    ..spec.clone()
                },
                0,
            ),
            step_key(
                &p,
                std::slice::from_ref(&d),
                &RunSpec {
                    argv: vec!["/bin/sh".into(), "-c".into(), "make all".into()],
                    ..spec.clone()
                },
                0,
            ),
        ] {
            assert_ne!(changed, key);
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v1098"), Some((6, 18)));
        assert_eq!(kernel_version("5.15.0-91-generic"), Some((5, 15)));
        assert!(kernel_version("6.6.1").unwrap() < PRIVATE_BINFMT);
        assert_eq!(kernel_version("weird"), None);
    }

    #[test]
    fn registration_has_the_f_flag_and_debian_magic() {
        let r = registration("qemu-aarch64", Path::new("/usr/bin/qemu-aarch64-static")).unwrap();
        assert!(
            r.starts_with(":archgate-qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02"),
            "{r}"
        );
        assert!(r.ends_with(":/usr/bin/qemu-aarch64-static:F"), "{r}");
    }
}
