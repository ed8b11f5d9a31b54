//! `native-libs`: static proof that the native code of an image is built for
//! the platform and can be loaded there. Nothing is executed.
//!
//! Three things are read from the merged root, in one walk that never follows
//! a symlink (links are resolved inside the root, as the loader would):
//!
//! - every ELF executable and shared object: machine, class, byte order and,
//!   where the platform has one, the ABI of `e_flags` (MIPS n64);
//! - every `.jar`/`.war`/`.ear`, nested jars included: a jar that bundles Linux
//!   natives must bundle one for this CPU, decided by each library's ELF
//!   header, never by its directory name (netty's `aarch_64`, leveldbjni's
//!   `linux64`);
//! - for loose and bundled libraries alike: each `DT_NEEDED` resolves in the
//!   image the way `ld.so` searches (musl's loader: its own path file, and the
//!   names it answers itself), the C library is the image's (glibc vs musl),
//!   and each symbol version it needs (`.gnu.version_r`) is defined by the
//!   library the image ships (`.gnu.version_d`).
//!
//! Only the first 64 bytes of a file are read to tell ELF from the rest; ELF
//! files are read through a [`ReadCache`], which fetches just the headers,
//! the dynamic section and the version sections. Jars are read with bounded
//! work: nesting depth, nested-jar and library sizes and the total inflated
//! bytes are capped, and names from a jar are only shown, never used as paths.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use object::ReadRef;
use object::elf::{self as e, FileHeader32, FileHeader64};
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader as _};
use object::{Endianness, read::elf::SectionTable};

use crate::config::Glob;
use crate::platform::{EM_MIPS, ElfAbi, ElfIdentity, Platform};

use super::elf;
use super::rootfs::RootFs;

/// Jars inside jars opened at most this deep (a Spring Boot jar is 2).
const MAX_JAR_DEPTH: usize = 4;
/// A nested jar is read into memory: at most this big, inflated.
const MAX_NESTED_JAR: u64 = 512 << 20;
/// A bundled library is read into memory: at most this big, inflated.
const MAX_NATIVE: u64 = 256 << 20;
/// `pom.properties` is small.
const MAX_POM: u64 = 64 << 10;
/// Bytes inflated from all jars of one platform.
const MAX_INFLATED: u64 = 4 << 30;
/// Entries of one archive.
const MAX_ENTRIES: usize = 500_000;
/// `include` levels of `/etc/ld.so.conf`.
const MAX_CONF_DEPTH: usize = 8;
/// Problems shown in full in the message; the rest are counted.
const MAX_SHOWN: usize = 12;

/// What the check is asked to look at.
pub struct Request<'a> {
    pub fs: &'a RootFs,
    pub platform: &'a Platform,
    /// The image config's environment (`LD_LIBRARY_PATH`).
    pub env: &'a [String],
    /// `[verify.natives] ignore`.
    pub ignore: &'a [Glob],
}

/// What the check found: a problem per offender, counts for the message.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub elf_files: usize,
    pub jars: usize,
    pub jars_with_natives: usize,
    pub ignored: usize,
}

impl Findings {
    /// The report message: the offenders, or what was looked at.
    pub fn message(&self, platform: &Platform) -> String {
        if self.problems.is_empty() {
            let mut m = format!(
                "{} ELF files and {} jars ({} bundle natives) built for {}; every library and symbol version they need is in the image",
                self.elf_files,
                self.jars,
                self.jars_with_natives,
                platform_name(platform)
            );
            if self.ignored > 0 {
                let _ = write!(
                    m,
                    " ({} passed over by [verify.natives] ignore, ignore_jdk_desktop)",
                    self.ignored
                );
            }
            return m;
        }
        let mut m = self
            .problems
            .iter()
            .take(MAX_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if self.problems.len() > MAX_SHOWN {
            let _ = write!(m, "; and {} more", self.problems.len() - MAX_SHOWN);
        }
        m
    }
}

/// Runs the whole check over the root.
pub fn check(req: &Request<'_>) -> Findings {
    let mut walk = Walk {
        req,
        found: Findings::default(),
        loose: Vec::new(),
        jars: Vec::new(),
        jvm_dirs: Vec::new(),
    };
    walk.dir(req.fs.path(), "");
    let Walk {
        mut found,
        loose,
        jars,
        jvm_dirs,
        ..
    } = walk;
    let resolver = Resolver::new(req, jvm_dirs);
    for (shown, info) in &loose {
        let origin = shown.rsplit_once('/').map_or("/", |(d, _)| d);
        let origin = if origin.is_empty() { "/" } else { origin };
        resolver.check(info, shown, Some(origin), &mut found.problems);
    }
    let mut budget = Budget {
        left: MAX_INFLATED,
        exhausted: false,
    };
    for (host, shown) in &jars {
        let file = match fs::File::open(host) {
            Ok(f) => f,
            Err(e) => {
                found.problems.push(format!("{shown}: cannot be read: {e}"));
                continue;
            }
        };
        let mut jar = JarScan {
            req,
            resolver: &resolver,
            budget: &mut budget,
            found: &mut found,
        };
        jar.archive(std::io::BufReader::new(file), shown, 0);
    }
    if budget.exhausted {
        found.problems.push(format!(
            "stopped inflating jars after {} GiB (bound on the work one image may cause): ignore the offending jars in [verify.natives] ignore",
            MAX_INFLATED >> 30
        ));
    }
    found
}

/// A short name of what a binary is built for: `x86-64`, `AArch64`, `MIPS64 n64`.
pub fn built_for(ident: &ElfIdentity, flags: u32) -> String {
    let full = ident.to_string();
    let machine = full.split(" (").next().unwrap_or(&full).to_string();
    let mut name = if ident.machine == EM_MIPS {
        let abi = if ident.class64 {
            if flags & crate::platform::EF_MIPS_ABI_BITS == 0 {
                "n64"
            } else {
                "64-bit, unusual ABI flags"
            }
        } else if flags & 0x20 != 0 {
            "n32"
        } else {
            "o32"
        };
        format!("MIPS{} {abi}", if ident.class64 { "64" } else { "" })
    } else {
        let usual64 = !matches!(ident.machine, 3 | 40);
        let mut n = machine;
        if ident.class64 != usual64 {
            let _ = write!(n, " {}-bit", if ident.class64 { 64 } else { 32 });
        }
        n
    };
    if !ident.little_endian && ident.machine != crate::platform::EM_S390 {
        name.push_str(" big-endian");
    }
    name
}

/// How the platform's binaries are called in messages (`MIPS64 n64`).
fn platform_name(platform: &Platform) -> String {
    match platform.elf() {
        Some(ident) => built_for(&ident, platform.elf_abi().map_or(0, |a| a.value)),
        None => platform.to_string(),
    }
}

/// Whether a binary with this identity and `e_flags` runs on the platform.
fn fits(platform: &Platform, ident: &ElfIdentity, flags: u32) -> bool {
    platform.elf() == Some(*ident) && platform.elf_abi().is_none_or(|a: ElfAbi| a.matches(flags))
}

/// The facts of one ELF file that the check uses.
#[derive(Debug, Default)]
struct ElfInfo {
    /// `ET_EXEC` or `ET_DYN` (objects, core files and the like are not loaded).
    loadable: bool,
    interp: Option<String>,
    needed: Vec<String>,
    runpath: Vec<String>,
    rpath: Vec<String>,
    /// `(file, [(version, weak)])` from `.gnu.version_r`.
    verneed: Vec<(String, Vec<(String, bool)>)>,
    /// Version names `.gnu.version_d` defines.
    verdef: Vec<String>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses an ELF file (either class) from `data`.
fn parse_elf<'d, R: ReadRef<'d>>(data: R, head: &[u8]) -> Result<ElfInfo, String> {
    let ident = elf::parse_ident(head)?;
    let result = if ident.class64 {
        parse_class::<FileHeader64<Endianness>, R>(data)
    } else {
        parse_class::<FileHeader32<Endianness>, R>(data)
    };
    result.map_err(|e| format!("has a malformed ELF structure ({e})"))
}

fn parse_class<'d, H: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    data: R,
) -> object::read::Result<ElfInfo> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    let ty = header.e_type(endian);
    let mut info = ElfInfo {
        loadable: ty == e::ET_EXEC || ty == e::ET_DYN,
        ..ElfInfo::default()
    };
    if !info.loadable {
        return Ok(info);
    }
    for ph in header.program_headers(endian, data)? {
        if let Some(i) = ph.interpreter(endian, data)? {
            info.interp = Some(text(i));
        }
    }
    let sections: SectionTable<'d, H, R> = header.sections(endian, data)?;
    let dynamic = sections.dynamic_table(endian, data)?;
    for d in dynamic.iter() {
        let wanted = d.tag == e::DT_NEEDED || d.tag == e::DT_RUNPATH || d.tag == e::DT_RPATH;
        if !wanted {
            continue;
        }
        let value = text(dynamic.string(d)?);
        if d.tag == e::DT_NEEDED {
            info.needed.push(value);
        } else {
            let dirs = value
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            if d.tag == e::DT_RUNPATH {
                info.runpath.extend(dirs);
            } else {
                info.rpath.extend(dirs);
            }
        }
    }
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((need, mut aux)) = needs.next()? {
            let file = text(need.file(endian, strings)?);
            let mut versions = Vec::new();
            while let Some(a) = aux.next()? {
                let weak = a.vna_flags.get(endian).0 & e::VER_FLG_WEAK.0 != 0;
                versions.push((text(a.name(endian, strings)?), weak));
            }
            info.verneed.push((file, versions));
        }
    }
    if let Some((mut defs, link)) = sections.gnu_verdef(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_, mut aux)) = defs.next()? {
            // The first name is the version itself; later ones are its parents.
            if let Some(a) = aux.next()? {
                info.verdef.push(text(a.name(endian, strings)?));
            }
        }
    }
    Ok(info)
}

/// The first 64 bytes of a file (fewer when it is shorter).
fn head_of(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    r.take(64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// `e_flags` from the first 64 bytes (0 when too short).
fn flags_of(head: &[u8], ident: &ElfIdentity) -> u32 {
    let at = if ident.class64 { 48 } else { 36 };
    match head.get(at..at + 4) {
        Some(b) => {
            let b = [b[0], b[1], b[2], b[3]];
            if ident.little_endian {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        }
        None => 0,
    }
}

/// `ET_EXEC`/`ET_DYN` from the first bytes.
fn loadable_head(head: &[u8], ident: &ElfIdentity) -> bool {
    let Some(b) = head.get(16..18) else {
        return false;
    };
    let ty = if ident.little_endian {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        u16::from_be_bytes([b[0], b[1]])
    };
    ty == 2 || ty == 3
}

fn ignored(ignore: &[Glob], names: &[&str]) -> bool {
    ignore.iter().any(|g| names.iter().any(|n| g.is_match(n)))
}

/// The walk over the root: ELF files checked as found, jars and loose
/// libraries collected for the steps that need the whole picture.
struct Walk<'r, 'a> {
    req: &'r Request<'a>,
    found: Findings,
    /// `(in-image path, parsed)` of loose loadable ELF files of the platform.
    loose: Vec<(String, Rc<ElfInfo>)>,
    /// `(host path, in-image path)` of every jar.
    jars: Vec<(PathBuf, String)>,
    /// Directories holding a `libjvm.so`, and their parents: where the JVM loads from.
    jvm_dirs: Vec<String>,
}

impl Walk<'_, '_> {
    fn dir(&mut self, host: &Path, shown: &str) {
        let entries = match fs::read_dir(host) {
            Ok(e) => e,
            Err(e) => {
                self.found
                    .problems
                    .push(format!("{}/: cannot be listed: {e}", shown));
                return;
            }
        };
        let mut names: Vec<(std::ffi::OsString, fs::FileType)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_type().ok().map(|t| (e.file_name(), t)))
            .collect();
        // Stable order, so reports list offenders the same way every run.
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ty) in names {
            let child_shown = format!("{shown}/{}", name.to_string_lossy());
            let child = host.join(&name);
            if ignored(self.req.ignore, &[&child_shown]) {
                self.found.ignored += 1;
                continue;
            }
            if ty.is_dir() {
                self.dir(&child, &child_shown);
            } else if ty.is_file() {
                self.file(&child, child_shown);
            }
            // Symlinks are never followed: what they point at inside the
            // root is walked as itself; what they point at outside is not the image.
        }
    }

    fn file(&mut self, host: &Path, shown: String) {
        let lower = shown.to_ascii_lowercase();
        if [".jar", ".war", ".ear"].iter().any(|x| lower.ends_with(x)) {
            self.found.jars += 1;
            self.jars.push((host.to_path_buf(), shown));
            return;
        }
        let mut file = match fs::File::open(host) {
            Ok(f) => f,
            Err(_) => return,
        };
        let head = match head_of(&mut file) {
            Ok(h) => h,
            Err(_) => return,
        };
        if !is_elf(&head) {
            return;
        }
        let ident = match elf::parse_ident(&head) {
            Ok(i) => i,
            Err(m) => {
                self.found.elf_files += 1;
                self.found.problems.push(format!("{shown} {m}"));
                return;
            }
        };
        if !loadable_head(&head, &ident) {
            return;
        }
        self.found.elf_files += 1;
        let flags = flags_of(&head, &ident);
        let platform = self.req.platform;
        if !fits(platform, &ident, flags) {
            self.found.problems.push(format!(
                "{shown} is built for {}, not {} ({platform} needs {})",
                built_for(&ident, flags),
                platform_name(platform),
                platform
                    .elf()
                    .map_or_else(|| "an unknown CPU".into(), |i| i.to_string())
            ));
            return;
        }
        if shown.ends_with("/libjvm.so")
            && let Some((dir, _)) = shown.rsplit_once('/')
        {
            self.jvm_dirs.push(dir.to_string());
            if let Some((parent, _)) = dir.rsplit_once('/') {
                self.jvm_dirs.push(parent.to_string());
            }
        }
        let cache = ReadCache::new(file);
        match parse_elf(&cache, &head) {
            Ok(info) => self.loose.push((shown, Rc::new(info))),
            Err(m) => self.found.problems.push(format!("{shown} {m}")),
        }
    }
}

/// The image's C library.
#[derive(Debug, Clone, PartialEq)]
enum Libc {
    Glibc(String),
    Musl(String),
    None,
}

impl Libc {
    fn describe(&self) -> String {
        match self {
            Libc::Glibc(p) => format!("glibc ({p})"),
            Libc::Musl(p) => format!("musl ({p})"),
            Libc::None => "no C library".into(),
        }
    }
}

/// What a binary is linked against, by its `DT_NEEDED` and `PT_INTERP`.
fn linked_libc(info: &ElfInfo) -> Option<(&'static str, String)> {
    for n in &info.needed {
        if n == "libc.so.6" {
            return Some(("glibc", n.clone()));
        }
        if n.starts_with("libc.musl-") || n == "libc.so" {
            return Some(("musl", n.clone()));
        }
    }
    match &info.interp {
        Some(i) if i.contains("ld-musl-") => Some(("musl", i.clone())),
        _ => None,
    }
}

/// Finds libraries the way `ld.so` does, inside the image.
struct Resolver<'r, 'a> {
    req: &'r Request<'a>,
    /// `LD_LIBRARY_PATH` of the image config.
    env_dirs: Vec<String>,
    jvm_dirs: Vec<String>,
    /// `/etc/ld.so.conf` and its includes, then the triplet's defaults.
    system_dirs: Vec<String>,
    libc: Libc,
    /// Parsed libraries by host path (`None`: not ELF, or not for the platform).
    cache: std::cell::RefCell<HashMap<PathBuf, Option<Rc<ElfInfo>>>>,
}

impl<'r, 'a> Resolver<'r, 'a> {
    fn new(req: &'r Request<'a>, mut jvm_dirs: Vec<String>) -> Resolver<'r, 'a> {
        jvm_dirs.dedup();
        let env_dirs = super::execute::env_value(req.env, "LD_LIBRARY_PATH")
            .map(|v| {
                v.split([':', ';'])
                    .filter(|d| d.starts_with('/'))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut system_dirs = Vec::new();
        conf_dirs(req.fs, "/etc/ld.so.conf", 0, &mut system_dirs);
        if let Some(t) = req.platform.multiarch_triplet() {
            system_dirs.push(format!("/lib/{t}"));
            system_dirs.push(format!("/usr/lib/{t}"));
        }
        if req.platform.elf().is_some_and(|i| i.class64) {
            system_dirs.push("/lib64".into());
            system_dirs.push("/usr/lib64".into());
        }
        system_dirs.push("/lib".into());
        system_dirs.push("/usr/lib".into());
        let mut r = Resolver {
            req,
            env_dirs,
            jvm_dirs,
            system_dirs,
            libc: Libc::None,
            cache: Default::default(),
        };
        r.libc = r.find_libc();
        if let Libc::Musl(loader) = &r.libc {
            r.system_dirs = musl_dirs(req.fs, loader);
        }
        r
    }

    fn find_libc(&self) -> Libc {
        if let Some((shown, _)) = self.find("libc.so.6", &self.system_dirs) {
            return Libc::Glibc(shown);
        }
        for dir in ["/lib", "/usr/lib"] {
            let Ok(host) = self.req.fs.resolve(dir) else {
                continue;
            };
            let Ok(entries) = fs::read_dir(host) else {
                continue;
            };
            let mut musl: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ld-musl-") && n.ends_with(".so.1"))
                .collect();
            musl.sort();
            if let Some(n) = musl.first() {
                return Libc::Musl(format!("{dir}/{n}"));
            }
        }
        Libc::None
    }

    /// The first `dir/name` that is an ELF library for the platform.
    fn find(&self, name: &str, dirs: &[String]) -> Option<(String, Rc<ElfInfo>)> {
        dirs.iter().find_map(|d| {
            let shown = format!("{}/{name}", d.trim_end_matches('/'));
            self.load(&shown).map(|info| (shown, info))
        })
    }

    fn load(&self, shown: &str) -> Option<Rc<ElfInfo>> {
        let host = self.req.fs.resolve(shown).ok()?;
        if let Some(hit) = self.cache.borrow().get(&host) {
            return hit.clone();
        }
        let parsed = (|| {
            let mut file = fs::File::open(&host).ok()?;
            if !file.metadata().ok()?.is_file() {
                return None;
            }
            let head = head_of(&mut file).ok()?;
            let ident = elf::parse_ident(&head).ok()?;
            if !fits(self.req.platform, &ident, flags_of(&head, &ident)) {
                return None;
            }
            file.rewind().ok()?;
            parse_elf(&ReadCache::new(file), &head).ok().map(Rc::new)
        })();
        self.cache.borrow_mut().insert(host, parsed.clone());
        parsed
    }

    /// The directories searched for one library's needs, in `ld.so`'s order.
    fn search_dirs(&self, info: &ElfInfo, origin: Option<&str>) -> Vec<String> {
        let expand = |dirs: &[String]| -> Vec<String> {
            dirs.iter()
                .filter_map(|d| {
                    let d = d.replace("${ORIGIN}", "$ORIGIN");
                    if d.contains("$ORIGIN") {
                        // Bundled natives are unpacked to a temporary
                        // directory: their `$ORIGIN` is nowhere in the image.
                        origin.map(|o| d.replace("$ORIGIN", o))
                    } else {
                        Some(d.replace("$LIB", "lib").replace("${LIB}", "lib"))
                    }
                })
                .filter(|d| d.starts_with('/'))
                .collect()
        };
        let mut dirs = Vec::new();
        if info.runpath.is_empty() {
            dirs.extend(expand(&info.rpath));
        }
        dirs.extend(self.env_dirs.iter().cloned());
        dirs.extend(expand(&info.runpath));
        dirs.extend(self.jvm_dirs.iter().cloned());
        dirs.extend(self.system_dirs.iter().cloned());
        dirs
    }

    /// Checks one library's needs; appends a problem per unmet one.
    fn check(&self, info: &ElfInfo, shown: &str, origin: Option<&str>, problems: &mut Vec<String>) {
        if let Some((kind, via)) = linked_libc(info) {
            let mismatch = matches!(
                (&self.libc, kind),
                (Libc::Glibc(_), "musl") | (Libc::Musl(_), "glibc") | (Libc::None, _)
            );
            if mismatch {
                problems.push(format!(
                    "{shown} is linked against {kind} ({via}), but the image has {}",
                    self.libc.describe()
                ));
                return;
            }
        }
        if let Some(interp) = &info.interp
            && !self.req.fs.resolve(interp).is_ok_and(|p| p.is_file())
        {
            problems.push(format!(
                "{shown}: its program loader {interp} is not in the image"
            ));
        }
        let dirs = self.search_dirs(info, origin);
        let mut resolved: Vec<(String, String, Rc<ElfInfo>)> = Vec::new();
        let mut missing = Vec::new();
        for need in &info.needed {
            if matches!(self.libc, Libc::Musl(_)) && musl_provides(need) {
                continue;
            }
            let hit = if need.contains('/') {
                self.load(need).map(|i| (need.clone(), i))
            } else {
                self.find(need, &dirs)
            };
            match hit {
                Some((at, lib)) => resolved.push((need.clone(), at, lib)),
                None => missing.push(need.as_str()),
            }
        }
        if !missing.is_empty() {
            problems.push(format!(
                "{shown} needs {}, not found in the image for {} (searched {})",
                missing.join(", "),
                platform_name(self.req.platform),
                shorten(&dirs)
            ));
        }
        for (file, versions) in &info.verneed {
            let Some((_, at, lib)) = resolved.iter().find(|(n, _, _)| n == file) else {
                continue;
            };
            let absent: Vec<&str> = versions
                .iter()
                .filter(|(v, weak)| !*weak && !lib.verdef.contains(v))
                .map(|(v, _)| v.as_str())
                .collect();
            if absent.is_empty() {
                continue;
            }
            for (prefix, highest) in highest_per_prefix(&absent) {
                let have = highest_per_prefix(
                    &lib.verdef
                        .iter()
                        .map(String::as_str)
                        .filter(|v| version_prefix(v) == prefix)
                        .collect::<Vec<_>>(),
                )
                .into_iter()
                .next()
                .map_or_else(
                    || format!("no {prefix}* version"),
                    |(_, v)| format!("up to {v}"),
                );
                problems.push(format!(
                    "{shown} needs {highest} from {file}, but the image's {at} has {have}"
                ));
            }
        }
    }
}

/// Whether musl's loader answers `need` itself: musl is one library, and its
/// `ld.so` treats `libc`, `libpthread`, `librt`, `libm`, `libdl`, `libutil`
/// and `libxnet` (`libc.so`, `libc.musl-x86_64.so.1`, `libm.so.6`, …) as
/// itself, as musl's `ldso/dynlink.c` does.
fn musl_provides(need: &str) -> bool {
    need.strip_prefix("lib").is_some_and(|rest| {
        ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."]
            .iter()
            .any(|r| rest.starts_with(r))
    })
}

/// Where musl's loader `loader` (`/lib/ld-musl-ARCH.so.1`) looks after
/// `LD_LIBRARY_PATH` and the library's own paths: the directories of
/// `/etc/ld-musl-ARCH.path` (separated by `:` or lines), else its built-in
/// `/lib:/usr/local/lib:/usr/lib`.
fn musl_dirs(fs: &RootFs, loader: &str) -> Vec<String> {
    let arch = loader
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_prefix("ld-musl-"))
        .and_then(|n| n.strip_suffix(".so.1"))
        .unwrap_or_default();
    let file = format!("/etc/ld-musl-{arch}.path");
    let listed = fs
        .resolve(&file)
        .ok()
        .and_then(|host| fs::read_to_string(host).ok());
    match listed {
        Some(body) => body
            .split([':', '\n'])
            .map(str::trim)
            .filter(|d| d.starts_with('/'))
            .map(str::to_string)
            .collect(),
        None => ["/lib", "/usr/local/lib", "/usr/lib"]
            .map(String::from)
            .to_vec(),
    }
}

/// `/etc/ld.so.conf` and its `include`s, as directories.
fn conf_dirs(fs: &RootFs, conf: &str, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_CONF_DEPTH {
        return;
    }
    let Ok(host) = fs.resolve(conf) else {
        return;
    };
    let Ok(body) = fs::read_to_string(host) else {
        return;
    };
    for line in body.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for p in pattern.split_whitespace() {
                for file in expand_conf_glob(fs, p, conf) {
                    conf_dirs(fs, &file, depth + 1, out);
                }
            }
        } else if line.starts_with('/') && !out.iter().any(|d| d == line) {
            out.push(line.to_string());
        }
    }
}

/// `include /etc/ld.so.conf.d/*.conf`: the matching files, sorted.
fn expand_conf_glob(fs: &RootFs, pattern: &str, from: &str) -> Vec<String> {
    let pattern = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{pattern}")
    };
    let Some((dir, name)) = pattern.rsplit_once('/') else {
        return Vec::new();
    };
    let Ok(glob) = Glob::new(name) else {
        return Vec::new();
    };
    let Ok(host) = fs.resolve(dir) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(host) else {
        return Vec::new();
    };
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| glob.is_match(n))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

fn shorten(dirs: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for d in dirs {
        if !seen.contains(&d.as_str()) {
            seen.push(d);
        }
    }
    seen.join(":")
}

/// `GLIBC_2.34` → `GLIBC_`; `CXXABI_1.3.13` → `CXXABI_`.
fn version_prefix(v: &str) -> &str {
    match v.find(|c: char| c.is_ascii_digit()) {
        Some(i) => &v[..i],
        None => v,
    }
}

fn version_key(v: &str) -> Vec<u64> {
    v[version_prefix(v).len()..]
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// The highest version of each prefix, in first-seen order of prefixes.
fn highest_per_prefix<'v>(versions: &[&'v str]) -> Vec<(&'v str, &'v str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for v in versions {
        let p = version_prefix(v);
        match out.iter_mut().find(|(q, _)| *q == p) {
            Some(slot) if version_key(v) > version_key(slot.1) => slot.1 = v,
            Some(_) => {}
            None => out.push((p, v)),
        }
    }
    out
}

/// The bound on bytes inflated from jars.
struct Budget {
    left: u64,
    exhausted: bool,
}

impl Budget {
    fn take(&mut self, n: u64) -> bool {
        if n > self.left {
            self.exhausted = true;
            return false;
        }
        self.left -= n;
        true
    }
}

/// A native library found in a jar.
struct Bundled {
    entry: String,
    ident: ElfIdentity,
    flags: u32,
    /// Parsed, when it is the platform's.
    info: Option<ElfInfo>,
}

struct JarScan<'s, 'r, 'a> {
    req: &'r Request<'a>,
    resolver: &'s Resolver<'r, 'a>,
    budget: &'s mut Budget,
    found: &'s mut Findings,
}

impl JarScan<'_, '_, '_> {
    /// Opens one archive (`shown`: its path, `a.jar!b.jar` when nested).
    fn archive<R: Read + Seek>(&mut self, reader: R, shown: &str, depth: usize) {
        let mut zip = match zip::ZipArchive::new(reader) {
            Ok(z) => z,
            Err(e) => {
                self.found
                    .problems
                    .push(format!("{shown} cannot be read as a jar (zip): {e}"));
                return;
            }
        };
        if zip.len() > MAX_ENTRIES {
            self.found.problems.push(format!(
                "{shown} has {} entries, more than the {MAX_ENTRIES} archgate inspects",
                zip.len()
            ));
            return;
        }
        let mut coordinates: Option<String> = None;
        let mut bundled: Vec<Bundled> = Vec::new();
        let mut nested: Vec<usize> = Vec::new();
        for i in 0..zip.len() {
            let Ok(entry) = zip.by_index_raw(i) else {
                continue;
            };
            if entry.is_dir() {
                continue;
            }
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            drop(entry);
            let lower = name.to_ascii_lowercase();
            let file_name = lower.rsplit('/').next().unwrap_or(&lower);
            if [".jar", ".war", ".ear"].iter().any(|x| lower.ends_with(x)) {
                nested.push(i);
            } else if coordinates.is_none()
                && lower.starts_with("meta-inf/maven/")
                && file_name == "pom.properties"
            {
                if let Some(body) = self.read_entry(&mut zip, i, MAX_POM, shown, &name) {
                    coordinates = maven_coordinates(&String::from_utf8_lossy(&body));
                }
            } else if (file_name.ends_with(".so") || file_name.contains(".so."))
                && let Some(b) = self.native(&mut zip, i, shown, &name)
            {
                bundled.push(b);
            }
        }
        let who = match &coordinates {
            Some(c) => format!("{shown} ({c})"),
            None => shown.to_string(),
        };
        if depth > 0 || !bundled.is_empty() {
            // A nested jar counts as a jar of the image.
            if depth > 0 {
                self.found.jars += 1;
            }
        }
        let skip = coordinates
            .as_deref()
            .is_some_and(|c| ignored(self.req.ignore, &[c]));
        if skip {
            self.found.ignored += 1;
        } else if !bundled.is_empty() {
            self.found.jars_with_natives += 1;
            self.verdict(&who, shown, &bundled);
        }
        for i in nested {
            let Ok(entry) = zip.by_index_raw(i) else {
                continue;
            };
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            drop(entry);
            let inner = format!("{shown}!{name}");
            if ignored(self.req.ignore, &[&inner]) {
                self.found.ignored += 1;
                continue;
            }
            if depth + 1 > MAX_JAR_DEPTH {
                self.found.problems.push(format!(
                    "{inner} is nested more than {MAX_JAR_DEPTH} jars deep: not opened (ignore it in [verify.natives] ignore if that is intended)"
                ));
                continue;
            }
            if let Some(bytes) = self.read_entry(&mut zip, i, MAX_NESTED_JAR, shown, &name) {
                self.archive(Cursor::new(bytes), &inner, depth + 1);
            }
        }
    }

    /// The jar's natives judged: one for this CPU, and its needs met.
    fn verdict(&mut self, who: &str, shown: &str, bundled: &[Bundled]) {
        let platform = self.req.platform;
        let mine: Vec<&Bundled> = bundled
            .iter()
            .filter(|b| fits(platform, &b.ident, b.flags))
            .collect();
        if mine.is_empty() {
            let mut kinds: Vec<String> = Vec::new();
            for b in bundled {
                let k = built_for(&b.ident, b.flags);
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
            self.found.problems.push(format!(
                "{who} bundles natives for {} but not {}",
                kinds.join(", "),
                platform_name(platform)
            ));
            return;
        }
        for b in mine {
            let Some(info) = &b.info else { continue };
            let lib = format!("{shown}!{}", b.entry);
            self.resolver
                .check(info, &lib, None, &mut self.found.problems);
        }
    }

    /// A `.so` entry: its identity, and its parsed facts when it is the platform's.
    fn native<R: Read + Seek>(
        &mut self,
        zip: &mut zip::ZipArchive<R>,
        i: usize,
        shown: &str,
        name: &str,
    ) -> Option<Bundled> {
        let head = {
            let mut entry = zip.by_index(i).ok()?;
            head_of(&mut entry).ok()?
        };
        if !is_elf(&head) || !self.budget.take(head.len() as u64) {
            return None;
        }
        // EI_OSABI: System V (0) or GNU/Linux (3); FreeBSD and others are not Linux natives.
        if !matches!(head.get(7), Some(0 | 3)) {
            return None;
        }
        let ident = elf::parse_ident(&head).ok()?;
        if !loadable_head(&head, &ident) {
            return None;
        }
        let flags = flags_of(&head, &ident);
        let info = if fits(self.req.platform, &ident, flags) {
            let bytes = self.read_entry(zip, i, MAX_NATIVE, shown, name)?;
            match parse_elf(bytes.as_slice(), &head) {
                Ok(info) => Some(info),
                Err(m) => {
                    self.found.problems.push(format!("{shown}!{name} {m}"));
                    None
                }
            }
        } else {
            None
        };
        Some(Bundled {
            entry: name.to_string(),
            ident,
            flags,
            info,
        })
    }

    /// Inflates one entry, at most `limit` bytes (and what the budget allows).
    fn read_entry<R: Read + Seek>(
        &mut self,
        zip: &mut zip::ZipArchive<R>,
        i: usize,
        limit: u64,
        shown: &str,
        name: &str,
    ) -> Option<Vec<u8>> {
        let entry = match zip.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                self.found
                    .problems
                    .push(format!("{shown}!{name} cannot be read: {e}"));
                return None;
            }
        };
        if entry.size() > limit {
            self.found.problems.push(format!(
                "{shown}!{name} is {} bytes inflated, more than the {limit} archgate inspects",
                entry.size()
            ));
            return None;
        }
        let mut buf = Vec::new();
        match entry.take(limit + 1).read_to_end(&mut buf) {
            Ok(_) if buf.len() as u64 > limit => {
                self.found.problems.push(format!(
                    "{shown}!{name} inflates past the {limit} bytes archgate inspects (a zip bomb?)"
                ));
                None
            }
            Ok(_) => self.budget.take(buf.len() as u64).then_some(buf),
            Err(e) => {
                self.found
                    .problems
                    .push(format!("{shown}!{name} cannot be inflated: {e}"));
                None
            }
        }
    }
}

/// `groupId:artifactId:version` from a `pom.properties`.
fn maven_coordinates(body: &str) -> Option<String> {
    let get = |key: &str| {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    Some(format!(
        "{}:{}:{}",
        get("groupId")?,
        get("artifactId")?,
        get("version")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{EM_AARCH64, EM_X86_64};

    fn ident(machine: u16, class64: bool) -> ElfIdentity {
        ElfIdentity {
            machine,
            class64,
            little_endian: true,
        }
    }

    #[test]
    fn what_a_binary_is_built_for_in_short() {
        // (identity, e_flags, name)
        let rows = [
            (ident(EM_X86_64, true), 0, "x86-64"),
            (ident(EM_AARCH64, true), 0, "AArch64"),
            (ident(EM_MIPS, true), 0x8000_0007, "MIPS64 n64"),
            (ident(EM_MIPS, false), 0x7000_1007, "MIPS o32"),
            (ident(EM_MIPS, false), 0x20, "MIPS n32"),
            (ident(3, false), 0, "i386"),
            (ident(EM_X86_64, false), 0, "x86-64 32-bit"),
        ];
        for (i, flags, want) in rows {
            assert_eq!(built_for(&i, flags), want);
        }
    }

    #[test]
    fn mips64le_needs_n64_not_just_a_64_bit_mips() {
        let p = Platform::parse("linux/mips64le").unwrap();
        assert!(fits(&p, &ident(EM_MIPS, true), 0x8000_0007));
        assert!(!fits(&p, &ident(EM_MIPS, true), 0x8000_0027), "ABI2 set");
        assert!(!fits(&p, &ident(EM_MIPS, false), 0x7000_1007));
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(fits(&arm, &ident(EM_AARCH64, true), 0));
    }

    #[test]
    fn highest_missing_version_per_family() {
        let got = highest_per_prefix(&["GLIBC_2.34", "GLIBC_2.4", "GLIBCXX_3.4.30", "GLIBC_2.38"]);
        assert_eq!(
            got,
            [("GLIBC_", "GLIBC_2.38"), ("GLIBCXX_", "GLIBCXX_3.4.30")]
        );
    }

    #[test]
    fn what_musls_loader_answers_itself() {
        // (DT_NEEDED, provided by musl's ld.so)
        let rows = [
            ("libc.so", true),
            ("libc.musl-x86_64.so.1", true),
            ("libc.so.6", true),
            ("libm.so.6", true),
            ("libpthread.so.0", true),
            ("libdl.so.2", true),
            ("librt.so.1", true),
            ("libutil.so.1", true),
            ("libxnet.so", true),
            ("libcrypt.so.1", false),
            ("libcurl.so.4", false),
            ("libmagic.so.1", false),
            ("libz.so.1", false),
            ("c.so", false),
        ];
        for (need, want) in rows {
            assert_eq!(musl_provides(need), want, "{need}");
        }
    }

    #[test]
    fn maven_coordinates_from_pom_properties() {
        let body =
            "#Generated\nversion=1.1.8.3\ngroupId=org.xerial.snappy\nartifactId=snappy-java\n";
        assert_eq!(
            maven_coordinates(body).as_deref(),
            Some("org.xerial.snappy:snappy-java:1.1.8.3")
        );
        assert_eq!(maven_coordinates("groupId=x\n"), None);
    }
}
