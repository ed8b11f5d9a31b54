//! Integration tests: `service-start` (`[verify.service]`) on the example
//! service (examples/service: a real jar, compiled by `javac --release 8`,
//! that loads Debian's real lz4-java JNI build) on top of Debian's real JREs,
//! run under real bubblewrap and QEMU user-mode emulation.
//!
//! The `-Xint` retry (a JVM crash under QEMU that goes away without the JIT)
//! cannot be triggered by a real emulator bug here — no JIT miscompilation of
//! these JREs under this QEMU is known. Its classification is unit-tested in
//! `src/verify/java.rs` (`crash_signal`, `with_interpreter_only`), and its
//! path end to end with a stand-in: the example's `--crash-unless-interpreted`
//! (or the example jar as a Java agent) really crashes the JVM with SIGSEGV
//! unless it runs with `-Xint`.

use std::path::Path;

use serde_json::Value;

use crate::common::jre::{Entry, shared_cache, write_index};
use crate::common::registry::TestRegistry;
use crate::common::service::{ENTRYPOINT, READY, service_entry};
use crate::common::{archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

/// Writes `entries` as `oci:DIR:v1`.
fn layout(dir: &Path, entries: &[Entry]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(dir, entries, "v1"));
    format!("oci:{}:v1", dir.display())
}

/// `archgate verify --json --config CONFIG IMAGE --report-dir DIR/report`
/// with `config` as archgate.toml: (exit code, JSON, stderr).
fn verify(dir: &Path, image: &str, platforms: &str, config: &str) -> (i32, Value, String) {
    let file = dir.join("archgate.toml");
    std::fs::write(&file, config).unwrap();
    let out = archgate()
        .arg("verify")
        .arg("--json")
        .arg("--config")
        .arg(&file)
        .args(["--platform", platforms, image])
        .arg("--report-dir")
        .arg(dir.join("report"))
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    (
        out.code().unwrap_or(-1),
        out.json_or_null(),
        out.stderr().to_string(),
    )
}

fn service_check<'a>(v: &'a Value, p: &str) -> &'a Value {
    crate::common::verify_check(v, p, "service-start")
}

fn outcome_and_message(v: &Value, p: &str) -> (String, String) {
    let c = service_check(v, p);
    (
        c["outcome"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap().to_string(),
    )
}

/// The processes whose command line holds `marker` (the sandbox's bwrap,
/// its QEMU and the JVM all carry the service's arguments).
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!("{}: {cmdline}", name.to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn a_three_platform_service_image_passes_service_start_on_all_three() {
    let dir = tempdir();
    let entries: Vec<Entry> = THREE
        .iter()
        .map(|p| service_entry(p, crate::common::jre::debian_arch(p)))
        .collect();
    let image = layout(&dir.path().join("layout"), &entries);
    let (code, v, stderr) = verify(
        dir.path(),
        &image,
        &THREE.join(","),
        &format!("[verify.service]\nready = \"{READY}\"\n"),
    );
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    for (p, arch) in THREE.iter().zip(["amd64", "aarch64", "mips64el"]) {
        let (o, m) = outcome_and_message(&v, p);
        assert_eq!(o, "passed", "{p}: {m}");
        // The image's own ENTRYPOINT, as the image's User, with the native codec.
        assert!(
            m.starts_with(&format!("`{}` ready after", ENTRYPOINT.join(" ")))
                && m.contains("lz4 LZ4Factory:JNI")
                && m.contains(&format!("on {arch} as uid 1000")),
            "{p}: {m}"
        );
    }
    // The emulators are named in report.json; the native platform has none.
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/report.json")).unwrap())
            .unwrap();
    for p in report["verification"]["platforms"].as_array().unwrap() {
        let emulator = &p["emulator"];
        if p["platform"] == "linux/amd64" {
            assert!(emulator.is_null(), "{p:#}");
        } else {
            let binary = emulator["binary"].as_str().unwrap();
            assert!(binary.contains("qemu-"), "{p:#}");
            assert!(
                emulator["version"].as_str().unwrap().contains("version"),
                "{p:#}"
            );
        }
    }
    let coverage = std::fs::read_to_string(dir.path().join("report/coverage.md")).unwrap();
    assert!(coverage.contains("service-start"), "{coverage}");
}

#[test]
fn a_service_whose_jni_library_is_for_another_cpu_fails_with_the_exception_line_first() {
    let dir = tempdir();
    // The arm64 image carries the amd64 liblz4-java.so.
    let image = layout(
        &dir.path().join("layout"),
        &[service_entry("linux/arm64", "amd64")],
    );
    let (code, v, stderr) = verify(
        dir.path(),
        &image,
        "linux/arm64",
        &format!("[verify.service]\nready = \"{READY}\"\n"),
    );
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    let (o, m) = outcome_and_message(&v, "linux/arm64");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with("java.lang.UnsatisfiedLinkError: /app/lib/liblz4-java.so: ")
            && m.contains("can't load AMD 64 .so on a AARCH64 platform"),
        "{m}"
    );
    // JUnit system-out has the whole output, stack trace included.
    let junit = std::fs::read_to_string(dir.path().join("report/junit.xml")).unwrap();
    assert!(
        junit.contains("at archgate.example.Main.main(Main.java"),
        "{junit}"
    );
}

#[test]
fn a_service_that_never_gets_ready_is_stopped_at_the_timeout_and_leaves_no_process() {
    let dir = tempdir();
    let entries = [
        service_entry("linux/amd64", "amd64"),
        service_entry("linux/arm64", "arm64"),
    ];
    let image = layout(&dir.path().join("layout"), &entries);
    let marker = format!("archgate-test-marker-{}", std::process::id());
    let mut command: Vec<String> = ENTRYPOINT.iter().map(|s| s.to_string()).collect();
    command.extend(["--quiet".to_string(), marker.clone()]);
    let (code, v, stderr) = verify(
        dir.path(),
        &image,
        "linux/amd64,linux/arm64",
        &format!(
            "[verify.service]\ncommand = {}\nready = \"{READY}\"\ntimeout = 4\nsettle = 1\n",
            serde_json::to_string(&command).unwrap()
        ),
    );
    // Natively a service that hangs is the image's fault; under QEMU a slow
    // runner may be the cause: `error`, naming the emulator and the time.
    let (o, m) = outcome_and_message(&v, "linux/amd64");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.contains("killed after 4.") && m.contains("[verify.service] timeout"),
        "{m}"
    );
    let (o, m) = outcome_and_message(&v, "linux/arm64");
    assert_eq!(o, "error", "{m}");
    assert!(
        m.contains("killed after 4.") && m.contains("under qemu-aarch64"),
        "{m}"
    );
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    let left = processes_with(&marker);
    assert!(left.is_empty(), "left running: {left:#?}");
}

#[test]
fn without_ready_a_running_or_clean_exit_passes_and_a_failing_exit_fails() {
    let dir = tempdir();
    let image = layout(
        &dir.path().join("layout"),
        &[service_entry("linux/amd64", "amd64")],
    );
    // (extra arguments, outcome, message part)
    for (args, want, part) in [
        (&[][..], "passed", "still running after 2 s"),
        (&["--once"][..], "passed", "exited with code 0"),
        (
            &["--fail"][..],
            "failed",
            "exited with code 3 within [verify.service] settle (2 s): example service: asked to fail (--fail)",
        ),
    ] {
        let mut command: Vec<&str> = ENTRYPOINT.to_vec();
        command.extend(args);
        let (code, v, stderr) = verify(
            dir.path(),
            &image,
            "linux/amd64",
            &format!(
                "[verify.service]\ncommand = {}\nsettle = 2\n",
                serde_json::to_string(&command).unwrap()
            ),
        );
        let (o, m) = outcome_and_message(&v, "linux/amd64");
        assert_eq!(o, want, "{args:?}: {m}\n{stderr}");
        assert!(m.contains(part), "{args:?}: {m}");
        assert_eq!(code, if want == "passed" { 0 } else { 1 }, "{args:?}");
    }
}

#[test]
fn a_jvm_crash_that_goes_away_with_xint_is_an_emulator_error_under_qemu_only() {
    let dir = tempdir();
    let entries = [
        service_entry("linux/amd64", "amd64"),
        service_entry("linux/arm64", "arm64"),
    ];
    let image = layout(&dir.path().join("layout"), &entries);
    let mut command: Vec<&str> = ENTRYPOINT.to_vec();
    command.push("--crash-unless-interpreted");
    let config = format!(
        "[verify.service]\ncommand = {}\nready = \"{READY}\"\n",
        serde_json::to_string(&command).unwrap()
    );
    // Under QEMU: crashed, started with -Xint: the emulator's fault, exit 3.
    let (code, v, stderr) = verify(dir.path(), &image, "linux/arm64", &config);
    let (o, m) = outcome_and_message(&v, "linux/arm64");
    assert_eq!(o, "error", "{m}");
    assert!(
        m.starts_with("the emulator failed, not the image: ")
            && m.contains("crashed with SIGSEGV under qemu-aarch64")
            && m.contains("version")
            && m.contains("-Xint"),
        "{m}"
    );
    assert_eq!(code, 3, "{stderr}\n{v:#}");
    let junit = std::fs::read_to_string(dir.path().join("report/junit.xml")).unwrap();
    assert!(
        junit.contains("A fatal error has been detected by the Java Runtime Environment")
            && junit.contains("the same start with JAVA_TOOL_OPTIONS=-Xint")
            && junit.contains("Picked up JAVA_TOOL_OPTIONS: -Xint"),
        "both runs in system-out: {junit}"
    );
    // Natively there is no emulator to blame: the crash is the image's.
    let (code, v, stderr) = verify(dir.path(), &image, "linux/amd64", &config);
    let (o, m) = outcome_and_message(&v, "linux/amd64");
    assert_eq!(o, "failed", "{m}");
    assert!(m.starts_with("SIGSEGV (0xb) at pc="), "{m}");
    assert_eq!(code, 1, "{stderr}\n{v:#}");
}

#[test]
fn a_java_version_crash_that_goes_away_with_xint_is_an_emulator_error_too() {
    let dir = tempdir();
    let entries: Vec<Entry> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| {
            let mut e = service_entry(p, crate::common::jre::debian_arch(p));
            // Every JVM of the image, `java -version` included, loads the stand-in.
            e.env.push(
                "JAVA_TOOL_OPTIONS=-javaagent:/app/service.jar=crash-unless-interpreted".into(),
            );
            e
        })
        .collect();
    let image = layout(&dir.path().join("layout"), &entries);
    let (code, v, stderr) = verify(dir.path(), &image, "linux/arm64", "");
    let check = |p: &str, id: &str| {
        v["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["platform"] == p)
            .unwrap()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == id)
            .unwrap_or_else(|| panic!("{p}: no {id}: {v:#}"))
            .clone()
    };
    let java = check("linux/arm64", "java-version");
    let m = java["message"].as_str().unwrap();
    assert_eq!(java["outcome"], "error", "{m}");
    assert!(
        m.starts_with("the emulator failed, not the image: ")
            && m.contains("crashed with SIGSEGV under qemu-aarch64"),
        "{m}"
    );
    // os.arch is read from the -Xint run, which did run.
    assert_eq!(check("linux/arm64", "java-os-arch")["outcome"], "passed");
    assert_eq!(code, 3, "{stderr}\n{v:#}");
    let (code, v, stderr) = verify(dir.path(), &image, "linux/amd64", "");
    let java = v["platforms"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "java-version")
        .unwrap()
        .clone();
    assert_eq!(java["outcome"], "failed", "{java}");
    assert_eq!(code, 1, "{stderr}\n{v:#}");
}

#[test]
fn service_start_runs_in_the_images_working_dir_as_its_user_with_its_env() {
    let dir = tempdir();
    // The ENTRYPOINT names the jar and the JNI directory relative to the
    // image's WorkingDir (/app); liblz4-java.so finds liblz4.so.1 only through
    // the image's Env (LD_LIBRARY_PATH=/app/lib); the image's User is 1000.
    let relative = ["java", "-Djava.library.path=lib", "-jar", "service.jar"];
    let mut entry = service_entry("linux/amd64", "amd64");
    entry.runtime["Entrypoint"] = serde_json::json!(relative);
    let image = layout(&dir.path().join("layout"), &[entry.clone()]);
    let config = format!("[verify.service]\nready = \"{READY}\"\n");
    let (code, v, stderr) = verify(dir.path(), &image, "linux/amd64", &config);
    let (o, m) = outcome_and_message(&v, "linux/amd64");
    assert_eq!(o, "passed", "{m}\n{stderr}");
    assert!(
        m.starts_with(&format!("`{}` ready after", relative.join(" ")))
            && m.contains("lz4 LZ4Factory:JNI")
            && m.contains("as uid 1000"),
        "{m}"
    );
    assert_eq!(code, 0, "{stderr}\n{v:#}");

    // Without the image's LD_LIBRARY_PATH the JNI library's own needs are not found.
    entry.env.retain(|e| !e.starts_with("LD_LIBRARY_PATH="));
    let image = layout(&dir.path().join("no-env"), &[entry]);
    let (_, v, _) = verify(dir.path(), &image, "linux/amd64", &config);
    let (o, m) = outcome_and_message(&v, "linux/amd64");
    assert_eq!(o, "failed", "{m}");
    assert!(
        m.starts_with("java.lang.UnsatisfiedLinkError: ") && m.contains("liblz4.so.1"),
        "{m}"
    );
}

#[test]
fn a_three_platform_service_image_in_the_registry_passes_both_checks_through_its_index_digest() {
    let registry = TestRegistry::start_http();
    let dir = tempdir();
    let entries: Vec<Entry> = THREE
        .iter()
        .map(|p| service_entry(p, crate::common::jre::debian_arch(p)))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let digest = rt.block_on(write_index(&dir.path().join("layout"), &entries, "v1"));
    let registries = format!("[registries.\"{}\"]\nhttp = true\n", registry.host());
    let file = dir.path().join("mirror.toml");
    std::fs::write(&file, &registries).unwrap();
    let image = format!("{}:v1", registry.repo("team/service"));
    archgate()
        .arg("mirror")
        .arg("--config")
        .arg(&file)
        .arg(format!("oci:{}:v1", dir.path().join("layout").display()))
        .arg(&image)
        .assert_success();

    let (code, v, stderr) = verify(
        dir.path(),
        &image,
        &THREE.join(","),
        &format!("{registries}[verify.service]\nready = \"{READY}\"\n"),
    );
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    assert_eq!(
        v["pinned"].as_str().unwrap(),
        format!("{}@{digest}", registry.repo("team/service")),
        "verified through the index digest: {v:#}"
    );
    for (p, arch) in THREE.iter().zip(["amd64", "aarch64", "mips64el"]) {
        let natives = crate::common::verify_check(&v, p, "native-libs");
        assert_eq!(natives["outcome"], "passed", "{p}: {}", natives["message"]);
        let (o, m) = outcome_and_message(&v, p);
        assert_eq!(o, "passed", "{p}: {m}");
        assert!(m.contains(&format!("on {arch} as uid 1000")), "{p}: {m}");
    }
}
