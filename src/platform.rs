//! Platforms (`os/arch[/variant]`) and every naming rule that goes with them.
//!
//! This module owns how a platform is spelled, normalised (the way containerd
//! does: `x86_64` → `amd64`, `aarch64` and `arm64/v8` → `arm64`, `armhf` →
//! `arm/v7`, plus Debian's `mips64el` → `mips64le`), matched (equal after
//! normalising) and judged *compatible* (a host can run the target), and the
//! per-platform facts the verifier needs: ELF identity, QEMU user-mode binary,
//! Debian architecture, the JVM's `os.arch` and the GNU multiarch triplet.
//! Those facts live in one table, [`PLATFORMS`], so a new architecture is one
//! row. It also tells attestation entries of an index apart from platforms.
//! Pure code: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ELF `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;
/// ELF `e_machine` for AArch64.
pub const EM_AARCH64: u16 = 183;
/// ELF `e_machine` for MIPS (32- and 64-bit; the class tells them apart).
pub const EM_MIPS: u16 = 8;
/// ELF `e_machine` for Intel 80386.
pub const EM_386: u16 = 3;
/// ELF `e_machine` for 32-bit ARM.
pub const EM_ARM: u16 = 40;
/// ELF `e_machine` for 64-bit PowerPC.
pub const EM_PPC64: u16 = 21;
/// ELF `e_machine` for IBM S/390 (also s390x; the class tells them apart).
pub const EM_S390: u16 = 22;
/// ELF `e_machine` for RISC-V.
pub const EM_RISCV: u16 = 243;
/// ELF `e_machine` for LoongArch.
pub const EM_LOONGARCH: u16 = 258;

/// The only operating system archgate verifies: every fact below is Linux's.
const LINUX: &str = "linux";

/// The annotation BuildKit puts on attestation entries of an index.
const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// What an executable built for a platform says in its ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElfIdentity {
    /// `e_machine`, e.g. [`EM_X86_64`].
    pub machine: u16,
    /// `EI_CLASS` is `ELFCLASS64` (else `ELFCLASS32`).
    pub class64: bool,
    /// `EI_DATA` is `ELFDATA2LSB` (else `ELFDATA2MSB`).
    pub little_endian: bool,
}

impl fmt::Display for ElfIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machine = match self.machine {
            EM_X86_64 => "x86-64",
            EM_AARCH64 => "AArch64",
            EM_MIPS => "MIPS",
            EM_386 => "i386",
            EM_ARM => "ARM",
            EM_PPC64 => "PowerPC64",
            EM_S390 => "S/390",
            EM_RISCV => "RISC-V",
            EM_LOONGARCH => "LoongArch",
            _ => "unknown machine",
        };
        write!(
            f,
            "{machine} (e_machine {}), {}-bit, {}-endian",
            self.machine,
            if self.class64 { 64 } else { 32 },
            if self.little_endian { "little" } else { "big" }
        )
    }
}

/// MIPS `e_flags`: `EF_MIPS_ABI2` (n32) and the `EF_MIPS_ABI` field (o32, o64, EABI).
pub const EF_MIPS_ABI_BITS: u32 = 0x0000_f020;

/// The ABI a platform's binaries state in `e_flags`: `flags & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElfAbi {
    pub mask: u32,
    pub value: u32,
    /// How people call it (`n64`).
    pub name: &'static str,
}

impl ElfAbi {
    /// Whether a binary with these `e_flags` has this ABI.
    pub fn matches(&self, flags: u32) -> bool {
        flags & self.mask == self.value
    }
}

/// MIPS64 n64 (Debian's mips64el): 64-bit class, neither n32 nor an old ABI field.
const MIPS_N64: ElfAbi = ElfAbi {
    mask: EF_MIPS_ABI_BITS,
    value: 0,
    name: "n64",
};

/// One supported platform (always `linux/…`) and its facts.
#[derive(Debug)]
struct Facts {
    arch: &'static str,
    variant: Option<&'static str>,
    elf: ElfIdentity,
    qemu: &'static str,
    debian: &'static str,
    java: &'static str,
    triplet: &'static str,
    /// The ABI bits of `e_flags` the platform's binaries carry, where the
    /// machine, class and byte order alone do not tell (MIPS n64 vs n32).
    abi: Option<ElfAbi>,
}

const fn elf(machine: u16, class64: bool, little_endian: bool) -> ElfIdentity {
    ElfIdentity {
        machine,
        class64,
        little_endian,
    }
}

/// The per-platform facts table: one row per supported platform, in the
/// order error messages list them.
const PLATFORMS: &[Facts] = &[
    Facts {
        arch: "amd64",
        variant: None,
        elf: elf(EM_X86_64, true, true),
        qemu: "qemu-x86_64",
        debian: "amd64",
        java: "amd64",
        triplet: "x86_64-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "arm64",
        variant: None,
        elf: elf(EM_AARCH64, true, true),
        qemu: "qemu-aarch64",
        debian: "arm64",
        java: "aarch64",
        triplet: "aarch64-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "mips64le",
        variant: None,
        elf: elf(EM_MIPS, true, true),
        // qemu-mips64el is the n64 ABI, which Debian's mips64el uses.
        qemu: "qemu-mips64el",
        debian: "mips64el",
        java: "mips64el",
        triplet: "mips64el-linux-gnuabi64",
        abi: Some(MIPS_N64),
    },
    Facts {
        arch: "arm",
        variant: Some("v7"),
        elf: elf(EM_ARM, false, true),
        qemu: "qemu-arm",
        debian: "armhf",
        java: "arm",
        triplet: "arm-linux-gnueabihf",
        abi: None,
    },
    // Debian's armhf needs ARMv7; armel (ARMv5TE baseline) is what runs on v6 and v5.
    Facts {
        arch: "arm",
        variant: Some("v6"),
        elf: elf(EM_ARM, false, true),
        qemu: "qemu-arm",
        debian: "armel",
        java: "arm",
        triplet: "arm-linux-gnueabi",
        abi: None,
    },
    Facts {
        arch: "arm",
        variant: Some("v5"),
        elf: elf(EM_ARM, false, true),
        qemu: "qemu-arm",
        debian: "armel",
        java: "arm",
        triplet: "arm-linux-gnueabi",
        abi: None,
    },
    Facts {
        arch: "386",
        variant: None,
        elf: elf(EM_386, false, true),
        qemu: "qemu-i386",
        debian: "i386",
        java: "i386",
        triplet: "i386-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "ppc64le",
        variant: None,
        elf: elf(EM_PPC64, true, true),
        qemu: "qemu-ppc64le",
        debian: "ppc64el",
        java: "ppc64le",
        triplet: "powerpc64le-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "s390x",
        variant: None,
        // s390x is big-endian: the one row where little_endian is false.
        elf: elf(EM_S390, true, false),
        qemu: "qemu-s390x",
        debian: "s390x",
        java: "s390x",
        triplet: "s390x-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "riscv64",
        variant: None,
        elf: elf(EM_RISCV, true, true),
        qemu: "qemu-riscv64",
        debian: "riscv64",
        java: "riscv64",
        triplet: "riscv64-linux-gnu",
        abi: None,
    },
    Facts {
        arch: "loong64",
        variant: None,
        elf: elf(EM_LOONGARCH, true, true),
        qemu: "qemu-loongarch64",
        debian: "loong64",
        java: "loongarch64",
        triplet: "loongarch64-linux-gnu",
        abi: None,
    },
];

/// Every accepted spelling of an architecture (lower case): the OCI/Go name
/// it normalises to, and the variant the spelling itself implies.
const SPELLINGS: &[(&str, &str, Option<&str>)] = &[
    ("amd64", "amd64", None),
    ("x86_64", "amd64", None),
    ("x86-64", "amd64", None),
    ("arm64", "arm64", None),
    ("aarch64", "arm64", None),
    ("mips64le", "mips64le", None),
    ("mips64el", "mips64le", None),
    // Plain `arm` gets its default variant (v7) in `normalise_variant`.
    ("arm", "arm", None),
    ("armhf", "arm", Some("v7")),
    ("armel", "arm", Some("v6")),
    ("386", "386", None),
    ("i386", "386", None),
    ("i686", "386", None),
    ("ppc64le", "ppc64le", None),
    ("ppc64el", "ppc64le", None),
    ("s390x", "s390x", None),
    ("riscv64", "riscv64", None),
    ("loong64", "loong64", None),
    ("loongarch64", "loong64", None),
];

fn spelling(arch_lower: &str) -> Option<(&'static str, Option<&'static str>)> {
    SPELLINGS
        .iter()
        .find(|(s, _, _)| *s == arch_lower)
        .map(|(_, arch, variant)| (*arch, *variant))
}

/// Normalise a variant for an (already normalised) architecture, as containerd does.
fn normalise_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    let v = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty())
        // containerd accepts `arm/7` and `arm64/8` for `v7` and `v8`.
        .map(|v| {
            if v.starts_with(|c: char| c.is_ascii_digit()) {
                format!("v{v}")
            } else {
                v
            }
        });
    match arch {
        // v8 is the only 64-bit ARM baseline images declare; it says nothing.
        "arm64" if matches!(v.as_deref(), Some("v8" | "v8.0")) => None,
        // v1 is the amd64 baseline every x86-64 CPU meets.
        "amd64" if v.as_deref() == Some("v1") => None,
        // A 32-bit ARM image without a variant is taken to be ARMv7.
        "arm" if v.is_none() => Some("v7".to_owned()),
        _ => v,
    }
}

/// `linux/amd64, linux/arm64, …`, for error messages.
fn supported_list() -> String {
    Platform::supported()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A platform, normalised: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    /// Operating system, lower case (`linux`).
    pub os: String,
    /// OCI/Go architecture name (`amd64`, `arm64`, `mips64le`, …).
    pub architecture: String,
    /// CPU variant (`v7` for `arm`); `None` where it says nothing (`arm64`).
    pub variant: Option<String>,
}

impl Platform {
    /// Parse a user-written `os/arch[/variant]` (or a bare arch), strictly:
    /// only the supported platforms are accepted.
    pub fn parse(input: &str) -> Result<Platform> {
        let s = input.trim();
        let fix = format!("write os/arch[/variant], one of: {}", supported_list());
        if s.is_empty() {
            return Err(Error::Invalid(format!("platform is empty: {fix}")));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(invalid(
                input,
                format!("too many `/`-separated parts ({})", parts.len()),
                &fix,
            ));
        }
        if parts.len() == 2 && parts[1].is_empty() {
            return Err(invalid(input, "the architecture is missing", &fix));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid(input, "a `/`-separated part is empty", &fix));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match lower.as_slice() {
            [only] if only == LINUX => {
                return Err(invalid(
                    input,
                    "the architecture is missing",
                    "write linux/ARCH, e.g. linux/amd64",
                ));
            }
            // A bare architecture means Linux, as containerd reads it.
            [arch] => (LINUX, arch.as_str(), None),
            [os, arch] if os == LINUX => (LINUX, arch.as_str(), None),
            // `arm64/v8`, `arm/v7`: architecture and variant, Linux implied.
            [arch, variant] if spelling(arch).is_some() => {
                (LINUX, arch.as_str(), Some(variant.as_str()))
            }
            [os, arch] => (os.as_str(), arch.as_str(), None),
            [os, arch, variant] => (os.as_str(), arch.as_str(), Some(variant.as_str())),
            _ => unreachable!("1 to 3 parts"),
        };
        if os != LINUX {
            let rest = match variant {
                Some(v) => format!("{arch}/{v}"),
                None => arch.to_owned(),
            };
            let suggestion = match Platform::parse(&format!("linux/{rest}")) {
                Ok(p) => format!("write {p}"),
                Err(_) => format!("write one of {}", supported_list()),
            };
            return Err(invalid(
                input,
                format!(
                    "operating system `{os}` is not supported (archgate verifies Linux images)"
                ),
                suggestion,
            ));
        }
        let Some((canonical, implied)) = spelling(arch) else {
            return Err(invalid(
                input,
                format!("unknown architecture `{arch}`"),
                format!("supported platforms: {}", supported_list()),
            ));
        };
        if let (Some(implied), Some(given)) = (implied, variant) {
            let given = normalise_variant(canonical, Some(given));
            if given.as_deref() != Some(implied) {
                let given = given.unwrap_or_default();
                return Err(invalid(
                    input,
                    format!("`{arch}` already means {canonical}/{implied}"),
                    format!("write linux/{canonical}/{given} or linux/{canonical}/{implied}"),
                ));
            }
        }
        let platform = Platform::from_spec(LINUX, arch, variant);
        if !platform.is_known() {
            let same_arch: Vec<String> = Platform::supported()
                .filter(|p| p.architecture == canonical)
                .map(|p| p.to_string())
                .collect();
            return Err(invalid(
                input,
                format!(
                    "unknown variant `{}` for {canonical}",
                    platform.variant.as_deref().unwrap_or_default()
                ),
                format!("write {}", same_arch.join(" or ")),
            ));
        }
        Ok(platform)
    }

    /// Normalise the raw fields of an index entry or image config, leniently:
    /// an unknown architecture is kept (lower-cased) so it can still be shown.
    pub fn from_spec(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let arch = architecture.to_ascii_lowercase();
        let (architecture, variant) = match spelling(&arch) {
            // `armhf`/`armel` name the variant themselves; containerd lets them win.
            Some((canonical, Some(implied))) => (canonical.to_owned(), Some(implied.to_owned())),
            Some((canonical, None)) => {
                (canonical.to_owned(), normalise_variant(canonical, variant))
            }
            None => {
                let variant = normalise_variant(&arch, variant);
                (arch, variant)
            }
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform archgate itself runs on.
    pub fn host() -> Platform {
        host_from(
            std::env::consts::OS,
            std::env::consts::ARCH,
            cfg!(target_endian = "little"),
        )
    }

    /// Every platform archgate can verify, in table order.
    pub fn supported() -> impl Iterator<Item = Platform> {
        PLATFORMS.iter().map(|f| Platform {
            os: LINUX.to_owned(),
            architecture: f.arch.to_owned(),
            variant: f.variant.map(str::to_owned),
        })
    }

    /// This platform with its fields normalised (constructors already do this).
    pub fn normalised(&self) -> Platform {
        Platform::from_spec(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// Whether this is one of the [supported](Platform::supported) platforms.
    pub fn is_known(&self) -> bool {
        self.facts().is_some()
    }

    /// Equal after normalisation (`linux/arm64/v8` matches `linux/arm64`).
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalised() == other.normalised()
    }

    /// The ELF header identity of this platform's executables.
    pub fn elf(&self) -> Option<ElfIdentity> {
        self.facts().map(|f| f.elf)
    }

    /// The QEMU user-mode emulator that runs this platform's executables.
    pub fn qemu_binary(&self) -> Option<&'static str> {
        self.facts().map(|f| f.qemu)
    }

    /// Debian's name for this architecture (`mips64el`, `armhf`, …).
    pub fn debian_arch(&self) -> Option<&'static str> {
        self.facts().map(|f| f.debian)
    }

    /// The value a JVM on this platform reports as `os.arch`.
    pub fn java_os_arch(&self) -> Option<&'static str> {
        self.facts().map(|f| f.java)
    }

    /// The ABI its binaries state in `e_flags`, where that is a fact (mips64le: n64).
    pub fn elf_abi(&self) -> Option<ElfAbi> {
        self.facts().and_then(|f| f.abi)
    }

    /// The GNU multiarch triplet (library directory name, `x86_64-linux-gnu`).
    pub fn multiarch_triplet(&self) -> Option<&'static str> {
        self.facts().map(|f| f.triplet)
    }

    fn facts(&self) -> Option<&'static Facts> {
        let n = self.normalised();
        if n.os != LINUX {
            return None;
        }
        PLATFORMS
            .iter()
            .find(|f| f.arch == n.architecture && f.variant == n.variant.as_deref())
    }
}

/// Whether `host` runs `target`'s executables natively (without emulation):
/// the same platform, or one the host's CPU also executes.
///
/// arm64 → 32-bit ARM assumes a CPU with AArch32 at EL0, as containerd does;
/// some arm64 CPUs lack it, which is why verification still runs each
/// platform through its own QEMU.
pub fn can_run(host: &Platform, target: &Platform) -> bool {
    let (host, target) = (host.normalised(), target.normalised());
    if host == target {
        return true;
    }
    if host.os != target.os {
        return false;
    }
    let also: &[(&str, Option<&str>)] = match (host.architecture.as_str(), host.variant.as_deref())
    {
        ("amd64", None) => &[("386", None)],
        ("arm64", None) => &[
            ("arm", Some("v7")),
            ("arm", Some("v6")),
            ("arm", Some("v5")),
        ],
        ("arm", Some("v7")) => &[("arm", Some("v6")), ("arm", Some("v5"))],
        ("arm", Some("v6")) => &[("arm", Some("v5"))],
        _ => &[],
    };
    also.iter().any(|(arch, variant)| {
        target.architecture == *arch && target.variant.as_deref() == *variant
    })
}

/// Whether an index entry is an attestation (provenance, SBOM), not a platform.
pub fn is_attestation(
    platform_os: &str,
    platform_arch: &str,
    annotations: &BTreeMap<String, String>,
) -> bool {
    // BuildKit writes `unknown/unknown` and annotates the entry; either alone
    // is enough, because other tools write only one of the two.
    (platform_os == "unknown" && platform_arch == "unknown")
        || annotations.contains_key(DOCKER_REFERENCE_TYPE)
}

/// Parse a comma-separated list (`linux/amd64,linux/arm64`), keeping order;
/// two spellings of the same platform are an error.
pub fn parse_list(input: &str) -> Result<Vec<Platform>> {
    if input.trim().is_empty() {
        return Err(Error::Invalid(
            "platform list is empty: write comma-separated platforms, e.g. linux/amd64,linux/arm64"
                .to_owned(),
        ));
    }
    let mut seen: Vec<(Platform, &str)> = Vec::new();
    for (i, item) in input.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(Error::Invalid(format!(
                "platform list `{input}`: entry {} is empty; remove the extra comma",
                i + 1
            )));
        }
        let platform = Platform::parse(item)?;
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == platform) {
            return Err(Error::Invalid(format!(
                "platform list `{input}`: `{first}` and `{item}` are the same platform \
                 ({platform}); list it once"
            )));
        }
        seen.push((platform, item));
    }
    Ok(seen.into_iter().map(|(p, _)| p).collect())
}

/// `std::env::consts` names → platform; apart so tests can feed any host.
fn host_from(os: &str, arch: &str, little_endian: bool) -> Platform {
    // Rust names the OS `macos`; image platforms use Go's `darwin`.
    let os = if os == "macos" { "darwin" } else { os };
    // Rust's ARCH leaves out endianness; Go's names carry it.
    let arch = match (arch, little_endian) {
        ("x86", _) => "386",
        ("x86_64", _) => "amd64",
        ("aarch64", true) => "arm64",
        ("aarch64", false) => "arm64be",
        ("mips64", true) => "mips64le",
        ("mips", true) => "mipsle",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("powerpc", _) => "ppc",
        ("loongarch64", _) => "loong64",
        // `arm` cannot tell v6 from v7 here; from_spec takes containerd's default (v7).
        (other, _) => other,
    };
    Platform::from_spec(os, arch, None)
}

fn invalid(input: &str, problem: impl fmt::Display, fix: impl fmt::Display) -> Error {
    Error::Invalid(format!("platform `{}`: {problem}; {fix}", input.trim()))
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Platform> {
        Platform::parse(s)
    }
}

/// Deserialising is strict like [`Platform::parse`]: the strings come from users.
impl TryFrom<String> for Platform {
    type Error = Error;

    fn try_from(s: String) -> Result<Platform> {
        Platform::parse(&s)
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_normalises_every_spelling() {
        // (input, normalised display)
        let rows = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("LINUX/AMD64", "linux/amd64"),
            ("amd64", "linux/amd64"),
            ("x86_64", "linux/amd64"),
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/V8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/AArch64", "linux/arm64"),
            ("arm64", "linux/arm64"),
            ("arm64/v8", "linux/arm64"),
            ("aarch64", "linux/arm64"),
            ("linux/mips64le", "linux/mips64le"),
            ("linux/mips64el", "linux/mips64le"),
            ("mips64el", "linux/mips64le"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v7", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armhf/v7", "linux/arm/v7"),
            ("armhf", "linux/arm/v7"),
            ("arm/v7", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm/v5", "linux/arm/v5"),
            ("linux/386", "linux/386"),
            ("linux/i386", "linux/386"),
            ("linux/i686", "linux/386"),
            ("i386", "linux/386"),
            ("linux/ppc64le", "linux/ppc64le"),
            ("linux/ppc64el", "linux/ppc64le"),
            ("linux/s390x", "linux/s390x"),
            ("linux/riscv64", "linux/riscv64"),
            ("linux/loong64", "linux/loong64"),
            ("linux/loongarch64", "linux/loong64"),
            ("  linux/arm64  ", "linux/arm64"),
        ];
        for (input, want) in rows {
            assert_eq!(p(input).to_string(), want, "parse({input:?})");
        }
    }

    #[test]
    fn parse_fills_fields() {
        assert_eq!(
            p("armhf"),
            Platform {
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v7".into()),
            }
        );
        assert_eq!(
            p("linux/arm64/v8"),
            Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: None,
            }
        );
    }

    #[test]
    fn parse_errors_name_the_input_and_the_fix() {
        // (input, substrings the message must contain)
        let rows: &[(&str, &[&str])] = &[
            ("", &["empty", "linux/amd64", "linux/mips64le"]),
            ("   ", &["empty", "os/arch"]),
            (
                "linux/",
                &["`linux/`", "architecture is missing", "os/arch"],
            ),
            (
                "linux",
                &["`linux`", "architecture is missing", "linux/ARCH"],
            ),
            (
                "linux/arm64/v8/x",
                &[
                    "`linux/arm64/v8/x`",
                    "too many",
                    "os/arch[/variant]",
                    "linux/arm/v7",
                ],
            ),
            ("/amd64", &["`/amd64`", "empty", "linux/amd64, linux/arm64"]),
            ("linux//v7", &["`linux//v7`", "empty"]),
            (
                "linux/sparc64",
                &[
                    "`linux/sparc64`",
                    "unknown architecture `sparc64`",
                    "linux/amd64, linux/arm64",
                ],
            ),
            ("sparc64", &["`sparc64`", "unknown architecture"]),
            (
                "linux/arm64/v9",
                &[
                    "`linux/arm64/v9`",
                    "unknown variant `v9` for arm64",
                    "write linux/arm64",
                ],
            ),
            (
                "linux/arm/v9",
                &[
                    "`linux/arm/v9`",
                    "unknown variant `v9`",
                    "linux/arm/v7 or linux/arm/v6",
                ],
            ),
            (
                "linux/i386/v2",
                &["`linux/i386/v2`", "unknown variant `v2` for 386"],
            ),
            (
                "linux/armhf/v6",
                &["`linux/armhf/v6`", "already means arm/v7", "linux/arm/v6"],
            ),
            (
                "windows/amd64",
                &[
                    "`windows/amd64`",
                    "operating system `windows`",
                    "write linux/amd64",
                ],
            ),
            (
                "darwin/aarch64",
                &[
                    "`darwin/aarch64`",
                    "operating system `darwin`",
                    "write linux/arm64",
                ],
            ),
            (
                "freebsd/sparc64",
                &["`freebsd/sparc64`", "operating system", "linux/amd64,"],
            ),
        ];
        for (input, wants) in rows {
            let err = Platform::parse(input).expect_err(input);
            assert!(matches!(err, Error::Invalid(_)), "{input:?}: {err:?}");
            let msg = err.to_string();
            for want in *wants {
                assert!(
                    msg.contains(want),
                    "parse({input:?}) = {msg:?}, missing {want:?}"
                );
            }
        }
    }

    #[test]
    fn from_spec_normalises_leniently() {
        // (os, arch, variant, display, known)
        let rows = [
            ("linux", "amd64", None, "linux/amd64", true),
            ("linux", "x86_64", None, "linux/amd64", true),
            ("linux", "arm64", Some("v8"), "linux/arm64", true),
            ("linux", "arm64", Some(""), "linux/arm64", true),
            ("linux", "aarch64", None, "linux/arm64", true),
            ("linux", "mips64el", None, "linux/mips64le", true),
            ("linux", "arm", None, "linux/arm/v7", true),
            ("linux", "armel", None, "linux/arm/v6", true),
            // containerd: the alias's own variant wins
            ("linux", "armhf", Some("v6"), "linux/arm/v7", true),
            ("Linux", "I386", None, "linux/386", true),
            ("linux", "sparc64", None, "linux/sparc64", false),
            ("linux", "arm64", Some("v9"), "linux/arm64/v9", false),
            ("linux", "amd64", Some("v3"), "linux/amd64/v3", false),
            ("windows", "amd64", None, "windows/amd64", false),
            ("unknown", "unknown", None, "unknown/unknown", false),
        ];
        for (os, arch, variant, want, known) in rows {
            let got = Platform::from_spec(os, arch, variant);
            assert_eq!(
                got.to_string(),
                want,
                "from_spec({os}, {arch}, {variant:?})"
            );
            assert_eq!(got.is_known(), known, "is_known({want})");
        }
    }

    #[test]
    fn facts_table() {
        // (platform, e_machine, class64, little_endian, qemu, debian, os.arch, triplet)
        let rows = [
            (
                "linux/amd64",
                62,
                true,
                true,
                "qemu-x86_64",
                "amd64",
                "amd64",
                "x86_64-linux-gnu",
            ),
            (
                "linux/arm64",
                183,
                true,
                true,
                "qemu-aarch64",
                "arm64",
                "aarch64",
                "aarch64-linux-gnu",
            ),
            (
                "linux/mips64le",
                8,
                true,
                true,
                "qemu-mips64el",
                "mips64el",
                "mips64el",
                "mips64el-linux-gnuabi64",
            ),
            (
                "linux/arm/v7",
                40,
                false,
                true,
                "qemu-arm",
                "armhf",
                "arm",
                "arm-linux-gnueabihf",
            ),
            (
                "linux/arm/v6",
                40,
                false,
                true,
                "qemu-arm",
                "armel",
                "arm",
                "arm-linux-gnueabi",
            ),
            (
                "linux/arm/v5",
                40,
                false,
                true,
                "qemu-arm",
                "armel",
                "arm",
                "arm-linux-gnueabi",
            ),
            (
                "linux/386",
                3,
                false,
                true,
                "qemu-i386",
                "i386",
                "i386",
                "i386-linux-gnu",
            ),
            (
                "linux/ppc64le",
                21,
                true,
                true,
                "qemu-ppc64le",
                "ppc64el",
                "ppc64le",
                "powerpc64le-linux-gnu",
            ),
            (
                "linux/s390x",
                22,
                true,
                false,
                "qemu-s390x",
                "s390x",
                "s390x",
                "s390x-linux-gnu",
            ),
            (
                "linux/riscv64",
                243,
                true,
                true,
                "qemu-riscv64",
                "riscv64",
                "riscv64",
                "riscv64-linux-gnu",
            ),
            (
                "linux/loong64",
                258,
                true,
                true,
                "qemu-loongarch64",
                "loong64",
                "loongarch64",
                "loongarch64-linux-gnu",
            ),
        ];
        assert_eq!(
            rows.len(),
            PLATFORMS.len(),
            "one row per supported platform"
        );
        for (s, machine, class64, little_endian, qemu, debian, java, triplet) in rows {
            let pl = p(s);
            assert_eq!(
                pl.elf(),
                Some(ElfIdentity {
                    machine,
                    class64,
                    little_endian
                }),
                "elf({s})"
            );
            assert_eq!(pl.qemu_binary(), Some(qemu), "qemu_binary({s})");
            assert_eq!(pl.debian_arch(), Some(debian), "debian_arch({s})");
            assert_eq!(pl.java_os_arch(), Some(java), "java_os_arch({s})");
            assert_eq!(
                pl.multiarch_triplet(),
                Some(triplet),
                "multiarch_triplet({s})"
            );
        }
    }

    #[test]
    fn elf_abi_is_a_fact_only_where_the_header_alone_does_not_tell() {
        // (platform, ABI name, e_flags of a real binary that has it)
        let mips = p("linux/mips64le").elf_abi().expect("mips64le states n64");
        assert_eq!(mips.name, "n64");
        assert!(
            mips.matches(0x8000_0007),
            "Debian mips64el: MIPS64r2, PIC, CPIC"
        );
        assert!(!mips.matches(0x8000_0027), "EF_MIPS_ABI2 is n32");
        for s in ["linux/amd64", "linux/arm64", "linux/s390x"] {
            assert_eq!(p(s).elf_abi(), None, "{s}");
        }
    }

    #[test]
    fn elf_constants() {
        let rows = [
            (EM_X86_64, 62),
            (EM_AARCH64, 183),
            (EM_MIPS, 8),
            (EM_386, 3),
            (EM_ARM, 40),
            (EM_PPC64, 21),
            (EM_S390, 22),
            (EM_RISCV, 243),
            (EM_LOONGARCH, 258),
        ];
        for (constant, value) in rows {
            assert_eq!(constant, value);
        }
        assert_eq!(
            p("linux/arm64").elf().unwrap().to_string(),
            "AArch64 (e_machine 183), 64-bit, little-endian"
        );
        assert_eq!(
            p("linux/s390x").elf().unwrap().to_string(),
            "S/390 (e_machine 22), 64-bit, big-endian"
        );
    }

    #[test]
    fn unknown_platforms_have_no_facts() {
        for pl in [
            Platform::from_spec("linux", "sparc64", None),
            Platform::from_spec("windows", "amd64", None),
            Platform::from_spec("linux", "arm64", Some("v9")),
            Platform::from_spec("unknown", "unknown", None),
        ] {
            assert_eq!(pl.elf(), None, "{pl}");
            assert_eq!(pl.qemu_binary(), None, "{pl}");
            assert_eq!(pl.debian_arch(), None, "{pl}");
            assert_eq!(pl.java_os_arch(), None, "{pl}");
            assert_eq!(pl.multiarch_triplet(), None, "{pl}");
        }
    }

    #[test]
    fn debian_and_java_names_parse_back() {
        // A Debian or JVM name typed as a platform lands on a platform with that name.
        for pl in Platform::supported() {
            let debian = pl.debian_arch().unwrap();
            assert_eq!(p(debian).debian_arch(), Some(debian), "{pl}: {debian}");
            let java = pl.java_os_arch().unwrap();
            assert_eq!(p(java).java_os_arch(), Some(java), "{pl}: {java}");
            assert_eq!(p(&pl.to_string()), pl, "display round trip");
        }
    }

    #[test]
    fn facts_follow_unnormalised_fields() {
        // Fields are public, so a hand-built value must still find its row.
        let raw = Platform {
            os: "Linux".into(),
            architecture: "aarch64".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(raw.qemu_binary(), Some("qemu-aarch64"));
        assert!(raw.is_known());
        assert_eq!(raw.normalised(), p("linux/arm64"));
    }

    #[test]
    fn matches_and_can_run() {
        // (a, b, a.matches(b), can_run(host = a, target = b))
        let spec = |os: &str, arch: &str, v: Option<&str>| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
        };
        let rows = [
            (
                spec("linux", "arm64", None),
                spec("linux", "arm64", Some("v8")),
                true,
                true,
            ),
            (
                spec("linux", "arm64", Some("v8")),
                spec("linux", "aarch64", None),
                true,
                true,
            ),
            (
                spec("linux", "arm", None),
                spec("linux", "arm", Some("v7")),
                true,
                true,
            ),
            (
                spec("linux", "armhf", None),
                spec("linux", "arm", None),
                true,
                true,
            ),
            (
                spec("linux", "x86_64", None),
                spec("linux", "amd64", None),
                true,
                true,
            ),
            (
                spec("linux", "mips64el", None),
                spec("linux", "mips64le", None),
                true,
                true,
            ),
            (
                spec("linux", "amd64", None),
                spec("linux", "386", None),
                false,
                true,
            ),
            (
                spec("linux", "386", None),
                spec("linux", "amd64", None),
                false,
                false,
            ),
            (
                spec("linux", "amd64", None),
                spec("linux", "arm64", None),
                false,
                false,
            ),
            (
                spec("linux", "arm64", None),
                spec("linux", "amd64", None),
                false,
                false,
            ),
            (
                spec("linux", "arm64", None),
                spec("linux", "arm", Some("v7")),
                false,
                true,
            ),
            (
                spec("linux", "arm64", None),
                spec("linux", "arm", Some("v6")),
                false,
                true,
            ),
            (
                spec("linux", "arm64", None),
                spec("linux", "arm", Some("v5")),
                false,
                true,
            ),
            (
                spec("linux", "arm", Some("v7")),
                spec("linux", "arm", Some("v6")),
                false,
                true,
            ),
            (
                spec("linux", "arm", Some("v6")),
                spec("linux", "arm", Some("v7")),
                false,
                false,
            ),
            (
                spec("linux", "arm", None),
                spec("linux", "arm64", None),
                false,
                false,
            ),
            (
                spec("linux", "amd64", None),
                spec("linux", "mips64le", None),
                false,
                false,
            ),
            (
                spec("linux", "arm", Some("v7")),
                spec("linux", "arm", Some("v6")),
                false,
                true,
            ),
            (
                spec("linux", "arm", Some("v6")),
                spec("linux", "arm", Some("v5")),
                false,
                true,
            ),
            (
                spec("linux", "amd64", None),
                spec("windows", "386", None),
                false,
                false,
            ),
            (
                spec("linux", "amd64", None),
                spec("windows", "amd64", None),
                false,
                false,
            ),
        ];
        for (a, b, want_match, want_run) in rows {
            assert_eq!(a.matches(&b), want_match, "{a} matches {b}");
            assert_eq!(b.matches(&a), want_match, "{b} matches {a} (symmetric)");
            assert_eq!(can_run(&a, &b), want_run, "{a} can run {b}");
        }
    }

    #[test]
    fn attestation_entries() {
        let annotated = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let none = BTreeMap::new();
        // (os, arch, annotations, is_attestation)
        let rows = [
            ("unknown", "unknown", none.clone(), true),
            (
                "unknown",
                "unknown",
                annotated("vnd.docker.reference.type", "attestation-manifest"),
                true,
            ),
            (
                "linux",
                "amd64",
                annotated("vnd.docker.reference.type", "attestation-manifest"),
                true,
            ),
            ("", "", annotated("vnd.docker.reference.type", "sbom"), true),
            ("linux", "amd64", none.clone(), false),
            ("unknown", "amd64", none.clone(), false),
            ("linux", "unknown", none.clone(), false),
            (
                "linux",
                "arm64",
                annotated("vnd.docker.reference.digest", "sha256:00"),
                false,
            ),
            (
                "linux",
                "arm64",
                annotated("org.opencontainers.image.ref.name", "1.0"),
                false,
            ),
        ];
        for (os, arch, annotations, want) in rows {
            assert_eq!(
                is_attestation(os, arch, &annotations),
                want,
                "is_attestation({os}/{arch}, {annotations:?})"
            );
        }
    }

    #[test]
    fn parse_list_rows() {
        let ok = [
            (
                "linux/amd64,linux/arm64,linux/mips64le",
                vec!["linux/amd64", "linux/arm64", "linux/mips64le"],
            ),
            (
                " linux/arm64 , x86_64,mips64el ",
                vec!["linux/arm64", "linux/amd64", "linux/mips64le"],
            ),
            ("armhf", vec!["linux/arm/v7"]),
        ];
        for (input, want) in ok {
            let got: Vec<String> = parse_list(input)
                .unwrap_or_else(|e| panic!("{input}: {e}"))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "parse_list({input:?})");
        }

        let errors: &[(&str, &[&str])] = &[
            (
                "linux/amd64,linux/x86_64",
                &[
                    "`linux/amd64`",
                    "`linux/x86_64`",
                    "same platform (linux/amd64)",
                ],
            ),
            (
                "linux/arm64/v8, arm64",
                &["`linux/arm64/v8`", "`arm64`", "same platform (linux/arm64)"],
            ),
            (
                "linux/arm,linux/armhf",
                &["`linux/arm`", "`linux/armhf`", "(linux/arm/v7)"],
            ),
            ("linux/amd64,,linux/arm64", &["entry 2 is empty"]),
            ("linux/amd64,", &["entry 2 is empty"]),
            ("", &["platform list is empty"]),
            (
                "linux/amd64,linux/sparc64",
                &["`linux/sparc64`", "unknown architecture"],
            ),
        ];
        for (input, wants) in errors {
            let msg = parse_list(input).expect_err(input).to_string();
            for want in *wants {
                assert!(
                    msg.contains(want),
                    "parse_list({input:?}) = {msg:?}, missing {want:?}"
                );
            }
        }
    }

    #[test]
    fn host_rows() {
        // (Rust OS, Rust ARCH, little-endian, platform)
        let rows = [
            ("linux", "x86_64", true, "linux/amd64"),
            ("linux", "aarch64", true, "linux/arm64"),
            ("linux", "x86", true, "linux/386"),
            ("linux", "arm", true, "linux/arm/v7"),
            ("linux", "mips64", true, "linux/mips64le"),
            ("linux", "powerpc64", true, "linux/ppc64le"),
            ("linux", "powerpc64", false, "linux/ppc64"),
            ("linux", "s390x", false, "linux/s390x"),
            ("linux", "riscv64", true, "linux/riscv64"),
            ("linux", "loongarch64", true, "linux/loong64"),
            ("macos", "aarch64", true, "darwin/arm64"),
        ];
        for (os, arch, le, want) in rows {
            assert_eq!(
                host_from(os, arch, le).to_string(),
                want,
                "{os} {arch} le={le}"
            );
        }
        // The real host: at least normalised and on the machine's own OS.
        let host = Platform::host();
        assert_eq!(host, host.normalised());
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(host, p("linux/amd64"));
        #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
        assert_eq!(host, p("linux/arm64"));
    }

    #[test]
    fn serde_is_the_display_string() {
        let pl = p("linux/armhf");
        assert_eq!(serde_json::to_string(&pl).unwrap(), "\"linux/arm/v7\"");
        let back: Platform = serde_json::from_str("\"linux/aarch64\"").unwrap();
        assert_eq!(back, p("linux/arm64"));
        let list: Vec<Platform> = serde_json::from_str(r#"["linux/amd64","mips64el"]"#).unwrap();
        assert_eq!(list, vec![p("linux/amd64"), p("linux/mips64le")]);
        let err = serde_json::from_str::<Platform>("\"linux/sparc64\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown architecture `sparc64`"), "{err}");
    }

    #[test]
    fn from_str_and_ordering() {
        let a: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(a, p("aarch64"));
        let mut v = [
            p("linux/arm64"),
            p("linux/amd64"),
            p("linux/arm/v6"),
            p("linux/arm/v7"),
        ];
        v.sort();
        let got: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            ["linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64"]
        );
    }
}
