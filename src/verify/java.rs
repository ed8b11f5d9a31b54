//! What `java -XshowSettings:properties -version` says, and the version
//! policy of `[verify.java]`.
//!
//! Both numbering styles are understood: JDK 8's `1.8.0_401` (read as 8.0.401)
//! and JEP 223's `17.0.9` / `21` / `22-ea`.

use std::cmp::Ordering;
use std::fmt;

use crate::platform::Platform;

/// A Java version as printed in `… version "X"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaVersion {
    /// As printed, e.g. `1.8.0_401` or `17.0.9`.
    pub raw: String,
    /// Normalised numbers: feature release first (`[8, 0, 401]`, `[17, 0, 9]`).
    pub parts: Vec<u32>,
}

impl JavaVersion {
    /// The version from the output of `java -version` (the first
    /// `version "…"` line); `None` when there is none.
    pub fn parse(output: &str) -> Option<JavaVersion> {
        output.lines().find_map(|line| {
            let line = line.trim();
            let (_, rest) = line.split_once(" version \"")?;
            let (quoted, _) = rest.split_once('"')?;
            JavaVersion::from_number(quoted).ok()
        })
    }

    /// A version number alone (`1.8`, `1.8.0_401`, `17.0.9`, `21`, `22-ea`).
    pub fn from_number(s: &str) -> Result<JavaVersion, String> {
        let raw = s.trim();
        // Pre-release and build suffixes: 22-ea, 11.0.2+9, 1.8.0_401-b10.
        let core = raw.split(['-', '+']).next().unwrap_or("");
        let nums: Vec<&str> = core.split(['.', '_']).collect();
        let mut parts = Vec::with_capacity(nums.len());
        for n in &nums {
            parts.push(
                n.parse::<u32>()
                    .map_err(|_| format!("{raw:?} is not a Java version (expected e.g. \"1.8\", \"1.8.0_401\", \"17.0.9\")"))?,
            );
        }
        if parts.is_empty() {
            return Err(format!("{raw:?} is not a Java version"));
        }
        // JDK 8 and older: 1.8.0_401 is release 8, update 401.
        if parts[0] == 1 && parts.len() > 1 {
            parts.remove(0);
        }
        Ok(JavaVersion {
            raw: raw.to_string(),
            parts,
        })
    }

    /// The feature release: 8 for `1.8.0_401`, 17 for `17.0.9`.
    pub fn feature(&self) -> u32 {
        self.parts[0]
    }

    fn compare(&self, other: &[u32]) -> Ordering {
        let n = self.parts.len().max(other.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl fmt::Display for JavaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `[verify.java] min_version` / `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPolicy {
    /// Any version that runs.
    Any,
    /// At least this version (`1.8` accepts 8u401 and 17.0.9).
    AtLeast(JavaVersion),
    /// Exactly this version, as far as it is given (`17` accepts 17.0.9,
    /// `1.8.0_401` only 8u401).
    Exactly(JavaVersion),
}

impl VersionPolicy {
    /// From the two settings; giving both is an error (say which one to keep).
    pub fn from_settings(
        min_version: Option<&str>,
        version: Option<&str>,
    ) -> Result<VersionPolicy, String> {
        match (min_version, version) {
            (Some(_), Some(_)) => Err(
                "both `min_version` and `version` are set; keep one (`version` pins an exact release)".into(),
            ),
            (Some(m), None) => JavaVersion::from_number(m)
                .map(VersionPolicy::AtLeast)
                .map_err(|e| format!("`min_version`: {e}")),
            (None, Some(v)) => JavaVersion::from_number(v)
                .map(VersionPolicy::Exactly)
                .map_err(|e| format!("`version`: {e}")),
            (None, None) => Ok(VersionPolicy::Any),
        }
    }

    /// `Ok` when `v` satisfies the policy, else why not.
    pub fn check(&self, v: &JavaVersion) -> Result<(), String> {
        match self {
            VersionPolicy::Any => Ok(()),
            VersionPolicy::AtLeast(min) => {
                if v.compare(&min.parts) != Ordering::Less {
                    Ok(())
                } else {
                    Err(format!(
                        "java {v} is older than the required minimum {min} ([verify.java] min_version)"
                    ))
                }
            }
            VersionPolicy::Exactly(want) => {
                let prefix = v.parts.len() >= want.parts.len()
                    && v.parts[..want.parts.len()] == want.parts[..];
                if prefix {
                    Ok(())
                } else {
                    Err(format!(
                        "java {v} is not the required version {want} ([verify.java] version)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for VersionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionPolicy::Any => f.write_str("any version"),
            VersionPolicy::AtLeast(v) => write!(f, "≥ {v}"),
            VersionPolicy::Exactly(v) => write!(f, "= {v}"),
        }
    }
}

/// The JVM's `os.arch` from `-XshowSettings:properties` output.
pub fn parse_os_arch(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "os.arch").then(|| value.trim().to_string())
    })
}

/// Whether a JVM reporting `os_arch` is built for `platform`.
pub fn os_arch_matches(os_arch: &str, platform: &Platform) -> bool {
    platform
        .java_os_arch()
        .is_some_and(|want| want.eq_ignore_ascii_case(os_arch))
}

/// JDK/JRE directory names below `lib/` that JDK 8 uses for its CPU.
const JDK8_ARCH_DIRS: &[&str] = &[
    "amd64",
    "aarch64",
    "mips64el",
    "i386",
    "arm",
    "ppc64le",
    "s390x",
    "riscv64",
    "loongarch64",
];
/// VM flavours: HotSpot server/client, Zero (Debian's mips64el build).
const VM_DIRS: &[&str] = &["server", "client", "zero"];

/// Where `libjvm.so` may be under a Java home (`…/bin/java` minus `bin/java`),
/// JDK 9+ layout first, then JDK 8's `lib/<arch>/` and `jre/…`.
pub fn libjvm_candidates(home: &str) -> Vec<String> {
    let home = home.trim_end_matches('/');
    let mut out = Vec::new();
    for base in [home.to_string(), format!("{home}/jre")] {
        for vm in VM_DIRS {
            out.push(format!("{base}/lib/{vm}/libjvm.so"));
        }
        for arch in JDK8_ARCH_DIRS {
            for vm in VM_DIRS {
                out.push(format!("{base}/lib/{arch}/{vm}/libjvm.so"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JDK8: &str =
        "openjdk version \"1.8.0_401\"\nOpenJDK Runtime Environment (build 1.8.0_401-b10)\n";
    const JDK17: &str = "Property settings:\n    java.home = /usr/lib/jvm/java-17-openjdk-arm64\n    os.arch = aarch64\n    os.name = Linux\n\nopenjdk version \"17.0.13\" 2024-10-15\nOpenJDK Runtime Environment (build 17.0.13+11-Debian-2deb12u1)\nOpenJDK 64-Bit Server VM (build 17.0.13+11-Debian-2deb12u1, mixed mode, sharing)\n";

    #[test]
    fn both_numbering_styles_parse() {
        let v8 = JavaVersion::parse(JDK8).unwrap();
        assert_eq!(v8.raw, "1.8.0_401");
        assert_eq!(v8.parts, vec![8, 0, 401]);
        assert_eq!(v8.feature(), 8);
        let v17 = JavaVersion::parse(JDK17).unwrap();
        assert_eq!(v17.parts, vec![17, 0, 13]);
        let oracle = JavaVersion::parse("java version \"21\" 2023-09-19 LTS").unwrap();
        assert_eq!(oracle.parts, vec![21]);
        let ea = JavaVersion::parse("openjdk version \"22-ea\" 2024-03-19").unwrap();
        assert_eq!(ea.parts, vec![22]);
        assert!(JavaVersion::parse("Error: could not find libjava.so").is_none());
        assert!(JavaVersion::parse("openjdk version \"abc\"").is_none());
    }

    #[test]
    fn minimum_versions_compare_across_styles() {
        let p = VersionPolicy::from_settings(Some("1.8"), None).unwrap();
        assert!(
            p.check(&JavaVersion::from_number("1.8.0_401").unwrap())
                .is_ok()
        );
        assert!(
            p.check(&JavaVersion::from_number("17.0.9").unwrap())
                .is_ok()
        );
        let e = p
            .check(&JavaVersion::from_number("1.7.0_80").unwrap())
            .unwrap_err();
        assert!(e.contains("1.7.0_80") && e.contains("min_version"), "{e}");
        let p11 = VersionPolicy::from_settings(Some("11.0.2"), None).unwrap();
        assert!(
            p11.check(&JavaVersion::from_number("11.0.21").unwrap())
                .is_ok()
        );
        assert!(
            p11.check(&JavaVersion::from_number("11.0.1").unwrap())
                .is_err()
        );
        assert!(
            p11.check(&JavaVersion::from_number("1.8.0_999").unwrap())
                .is_err()
        );
    }

    #[test]
    fn exact_versions_match_as_far_as_given() {
        let p = VersionPolicy::from_settings(None, Some("17")).unwrap();
        assert!(
            p.check(&JavaVersion::from_number("17.0.9").unwrap())
                .is_ok()
        );
        assert!(
            p.check(&JavaVersion::from_number("21.0.1").unwrap())
                .unwrap_err()
                .contains("version")
        );
        let p8 = VersionPolicy::from_settings(None, Some("1.8.0_401")).unwrap();
        assert!(
            p8.check(&JavaVersion::from_number("1.8.0_401").unwrap())
                .is_ok()
        );
        assert!(
            p8.check(&JavaVersion::from_number("1.8.0_402").unwrap())
                .is_err()
        );
    }

    #[test]
    fn bad_policies_are_configuration_errors() {
        assert!(
            VersionPolicy::from_settings(Some("eight"), None)
                .unwrap_err()
                .contains("min_version")
        );
        assert!(
            VersionPolicy::from_settings(Some("1.8"), Some("17"))
                .unwrap_err()
                .contains("keep one")
        );
        assert_eq!(
            VersionPolicy::from_settings(None, None).unwrap(),
            VersionPolicy::Any
        );
    }

    #[test]
    fn os_arch_is_read_and_matched() {
        assert_eq!(parse_os_arch(JDK17).as_deref(), Some("aarch64"));
        assert!(os_arch_matches(
            "aarch64",
            &Platform::parse("linux/arm64").unwrap()
        ));
        assert!(!os_arch_matches(
            "amd64",
            &Platform::parse("linux/arm64").unwrap()
        ));
        assert!(os_arch_matches(
            "amd64",
            &Platform::parse("linux/amd64").unwrap()
        ));
        assert!(os_arch_matches(
            "mips64el",
            &Platform::parse("linux/mips64le").unwrap()
        ));
        assert_eq!(parse_os_arch("openjdk version \"17\""), None);
    }

    #[test]
    fn libjvm_candidates_cover_jdk8_and_jdk9_layouts() {
        let c = libjvm_candidates("/usr/lib/jvm/java-8-openjdk-arm64/jre");
        assert!(c.contains(
            &"/usr/lib/jvm/java-8-openjdk-arm64/jre/lib/aarch64/server/libjvm.so".to_string()
        ));
        let c = libjvm_candidates("/opt/jdk/");
        assert_eq!(c[0], "/opt/jdk/lib/server/libjvm.so");
        assert!(c.contains(&"/opt/jdk/jre/lib/amd64/server/libjvm.so".to_string()));
        assert!(c.contains(&"/opt/jdk/lib/zero/libjvm.so".to_string()));
    }
}
