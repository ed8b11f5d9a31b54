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

/// The line of a JVM's output that says why it stopped, for the head of a
/// failure message: the `UnsatisfiedLinkError` line first (the native library
/// that did not load), else the crash report's signal line (`SIGSEGV (0xb) at
/// pc=…`), else the first exception line — never a stack frame. The
/// `Exception in thread "main" ` prefix is dropped.
pub fn cause_line(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    let exception = |l: &&str| {
        let l = strip_thread(l);
        let l = l.strip_prefix("Caused by: ").unwrap_or(l);
        let name = l.split(':').next().unwrap_or("");
        !name.contains(' ')
            && name.contains('.')
            && (name.ends_with("Exception") || name.ends_with("Error"))
    };
    lines
        .iter()
        .find(|l| l.contains("UnsatisfiedLinkError") && exception(l))
        .or_else(|| lines.iter().find(|l| crash_report_signal(l).is_some()))
        .or_else(|| lines.iter().find(|l| exception(l)))
        .map(|l| {
            let l = strip_thread(l);
            let l = l.strip_prefix("Caused by: ").unwrap_or(l);
            l.trim_start_matches(['#', ' ']).to_string()
        })
}

fn strip_thread(line: &str) -> &str {
    match line.strip_prefix("Exception in thread \"") {
        Some(rest) => rest.split_once("\" ").map_or(line, |(_, l)| l),
        None => line,
    }
}

/// The signals by which a JIT miscompiled by an emulator shows itself.
const CRASH_SIGNALS: &[(&str, i32)] = &[("SIGILL", 4), ("SIGBUS", 7), ("SIGSEGV", 11)];

/// `#  SIGSEGV (0xb) at pc=…` in a JVM crash report (`hs_err`).
fn crash_report_signal(line: &str) -> Option<&'static str> {
    let l = line.trim_start_matches(['#', ' ']);
    CRASH_SIGNALS
        .iter()
        .find(|(name, n)| l.starts_with(&format!("{name} (0x{n:x})")))
        .map(|(name, _)| *name)
}

/// The signal a JVM crashed with — SIGILL, SIGBUS or SIGSEGV — from its
/// output and exit code: its crash report's signal line, QEMU's `uncaught
/// target signal N`, or an exit code of 128 + N (how bwrap reports a child
/// killed by signal N). `None` for any other ending.
pub fn crash_signal(output: &str, code: Option<i32>) -> Option<&'static str> {
    let by_number = |n: i32| {
        CRASH_SIGNALS
            .iter()
            .find(|(_, s)| *s == n)
            .map(|(name, _)| *name)
    };
    output
        .lines()
        .find_map(|l| {
            crash_report_signal(l).or_else(|| {
                let (_, rest) = l.split_once("uncaught target signal ")?;
                by_number(rest.split_whitespace().next()?.parse().ok()?)
            })
        })
        .or_else(|| code.and_then(|c| by_number(c - 128)))
}

/// The environment with `-Xint` added to `JAVA_TOOL_OPTIONS` (the JVM reads
/// it whatever the command line is): the interpreter only, no JIT.
pub fn with_interpreter_only(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    let mut seen = false;
    for e in env {
        match e.strip_prefix("JAVA_TOOL_OPTIONS=") {
            Some(v) if !seen => {
                seen = true;
                let v = v.trim();
                let joined = if v.is_empty() {
                    "-Xint".to_string()
                } else {
                    format!("{v} -Xint")
                };
                out.push(format!("JAVA_TOOL_OPTIONS={joined}"));
            }
            Some(_) => {}
            None => out.push(e.clone()),
        }
    }
    if !seen {
        out.push("JAVA_TOOL_OPTIONS=-Xint".into());
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

    #[test]
    fn the_cause_is_the_exception_line_not_a_frame() {
        let ule = "Exception in thread \"main\" java.lang.UnsatisfiedLinkError: /app/lib/liblz4-java.so: /app/lib/liblz4-java.so: cannot open shared object file: No such file or directory (Possible cause: can't load AMD 64 .so on a AARCH64 platform)\n\tat java.base/jdk.internal.loader.NativeLibraries.load(Native Method)\n\tat archgate.example.Main.main(Main.java:33)\n";
        assert_eq!(
            cause_line(ule).unwrap(),
            "java.lang.UnsatisfiedLinkError: /app/lib/liblz4-java.so: /app/lib/liblz4-java.so: cannot open shared object file: No such file or directory (Possible cause: can't load AMD 64 .so on a AARCH64 platform)"
        );
        let wrapped = "Exception in thread \"main\" java.lang.ExceptionInInitializerError\n\tat a.B.c(B.java:1)\nCaused by: java.lang.UnsatisfiedLinkError: no lz4-java in java.library.path\n\tat x.Y.z(Y.java:2)\n";
        assert_eq!(
            cause_line(wrapped).unwrap(),
            "java.lang.UnsatisfiedLinkError: no lz4-java in java.library.path"
        );
        let crash = "#\n# A fatal error has been detected by the Java Runtime Environment:\n#\n#  SIGSEGV (0xb) at pc=0x0000ffff8c3f1c4c, pid=7, tid=8\n#\n# Problematic frame:\n# C  [liblz4-java.so+0x1c4c]\n";
        assert_eq!(
            cause_line(crash).unwrap(),
            "SIGSEGV (0xb) at pc=0x0000ffff8c3f1c4c, pid=7, tid=8"
        );
        let plain = "starting\njava.io.FileNotFoundException: /app/conf.yml (No such file or directory)\n\tat java.base/java.io.FileInputStream.open0(Native Method)\n";
        assert_eq!(
            cause_line(plain).unwrap(),
            "java.io.FileNotFoundException: /app/conf.yml (No such file or directory)"
        );
        assert_eq!(
            cause_line("Error: Unable to access jarfile /app/x.jar\n"),
            None
        );
        assert_eq!(cause_line("listening on :8080\n"), None);
    }

    #[test]
    fn crashes_are_told_by_report_emulator_or_exit_code() {
        // (output, exit code, signal)
        let cases: &[(&str, Option<i32>, Option<&str>)] = &[
            (
                "#  SIGSEGV (0xb) at pc=0x1, pid=1, tid=2\n",
                Some(134),
                Some("SIGSEGV"),
            ),
            (
                "#  SIGILL (0x4) at pc=0x1, pid=1, tid=2\n",
                Some(134),
                Some("SIGILL"),
            ),
            ("#  SIGBUS (0x7) at pc=0x1\n", Some(134), Some("SIGBUS")),
            (
                "qemu: uncaught target signal 11 (Segmentation fault) - core dumped\n",
                Some(139),
                Some("SIGSEGV"),
            ),
            (
                "qemu: uncaught target signal 4 (Illegal instruction) - core dumped\n",
                None,
                Some("SIGILL"),
            ),
            ("", Some(132), Some("SIGILL")),
            ("", Some(135), Some("SIGBUS")),
            ("", Some(139), Some("SIGSEGV")),
            // An abort, a plain failure, a kill: not a crash the JIT explains.
            ("", Some(134), None),
            (
                "Exception in thread \"main\" java.lang.UnsatisfiedLinkError: x\n",
                Some(1),
                None,
            ),
            ("", Some(137), None),
            ("", None, None),
        ];
        for (out, code, want) in cases {
            assert_eq!(crash_signal(out, *code), *want, "{out:?} {code:?}");
        }
    }

    #[test]
    fn interpreter_only_is_added_to_java_tool_options() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_interpreter_only(&env(&["PATH=/bin"])),
            env(&["PATH=/bin", "JAVA_TOOL_OPTIONS=-Xint"])
        );
        assert_eq!(
            with_interpreter_only(&env(&["JAVA_TOOL_OPTIONS=-Xmx64m", "A=1"])),
            env(&["JAVA_TOOL_OPTIONS=-Xmx64m -Xint", "A=1"])
        );
        assert_eq!(
            with_interpreter_only(&env(&["JAVA_TOOL_OPTIONS="])),
            env(&["JAVA_TOOL_OPTIONS=-Xint"])
        );
    }
}
