//! Progress of long work on stderr: plain lines per platform and phase in CI
//! (no terminal), bars on a terminal, nothing with `--progress never`; stdout
//! (the command's result) stays clean in every case. On real JRE images
//! (≈ 200 MB unpacked per platform), through a real registry.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::jre::{Entry, debian_arch, write_index};
use crate::common::{TestCommand, TestRegistry, archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

/// The three-platform JRE index in a registry; returns the image and a config naming it HTTP.
fn jre_in_registry(registry: &TestRegistry, dir: &Path) -> (String, std::path::PathBuf) {
    let entries: Vec<Entry> = THREE
        .iter()
        .map(|p| Entry::jre(p, debian_arch(p)))
        .collect();
    let layout = dir.join("layout");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(write_index(&layout, &entries, "v1"));
    let image = format!("{}:v1", registry.repo("jre/progress"));
    crate::common::registry::skopeo_copy_to(&format!("oci:{}:v1", layout.display()), &image);
    let config = dir.join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    (image, config)
}

/// A static verify ended with its result (exit 1 or 0: the gate may count
/// skipped execution against coverage), not with an error.
fn finished(out: &crate::common::TestOutput) {
    assert!(matches!(out.code(), Some(0 | 1)), "{out}");
    assert!(out.stdout().contains("checks:"), "{out}");
}

/// The lines of `stderr` for `platform` and `phase`, e.g. `linux/arm64: unpack …`.
fn lines<'a>(stderr: &'a str, platform: &str, phase: &str) -> Vec<&'a str> {
    let prefix = format!("{platform}: {phase}");
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// The seconds an end line (`… done: 185.0 MiB in 4.1 s (…)`) says the phase took.
fn seconds(end: &str) -> f64 {
    let after = end
        .rsplit_once(" in ")
        .expect("an end line says how long")
        .1;
    after.split(' ').next().unwrap().parse().unwrap()
}

/// A cold verify in CI (stderr a pipe, not a terminal): per platform, a line
/// when download, unpack and the `java -version` run start and end, with
/// bytes and rate, and in between at most one line per phase every 5 s —
/// never a line per read. `--json` stdout is still exactly the result.
#[test]
fn regression_hole_10_a_cold_verify_reports_progress_per_platform_and_phase() {
    let registry = TestRegistry::start_http();
    let dir = tempdir();
    let (image, config) = jre_in_registry(&registry, dir.path());
    let verify = || {
        archgate()
            .args(["verify", "--json", "--config", config.to_str().unwrap()])
            .arg(&image)
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .output()
    };
    let out = verify();
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["outcome"], "passed", "{out}");
    let stderr = out.stderr();
    let host = archgate::platform::Platform::host()
        .normalised()
        .to_string();
    for p in THREE {
        let run = if p == host { "run" } else { "emulate" };
        for phase in ["download", "unpack", run] {
            let all = lines(stderr, p, phase);
            assert!(
                all.first().is_some_and(|l| l.contains(" started")),
                "{p} {phase}: a start line first\n{stderr}"
            );
            let end = all.last().copied().unwrap_or_default();
            assert!(
                end.contains(" done"),
                "{p} {phase}: a done line last\n{stderr}"
            );
            // One line per 5 s in between, at most (+1 for where the clock ticks fall).
            let between = all.len() - 2;
            let allowed = (seconds(end) / 5.0).floor() as usize + 1;
            assert!(
                between <= allowed,
                "{p} {phase}: {between} lines in {} s\n{stderr}",
                seconds(end)
            );
        }
        // Bytes: the compressed layer (≈ 40–50 MB) downloaded and read while unpacking.
        for phase in ["download", "unpack"] {
            let end = *lines(stderr, p, phase).last().unwrap();
            assert!(
                end.contains(" MiB in ") && end.contains(" MiB/s)"),
                "{p} {phase}: bytes and rate: {end}"
            );
        }
        let java = lines(stderr, p, run);
        assert!(
            java[0].contains("java -version"),
            "names the command: {}",
            java[0]
        );
    }
    // Every progress line belongs to a platform and phase (nothing stray, no escape codes).
    let mut per_platform: BTreeMap<&str, usize> = BTreeMap::new();
    for l in stderr.lines().filter(|l| l.starts_with("linux/")) {
        *per_platform
            .entry(l.split(':').next().unwrap())
            .or_default() += 1;
        assert!(!l.contains('\x1b'), "no terminal codes in CI lines: {l:?}");
    }
    assert_eq!(per_platform.len(), 3, "{stderr}");

    // Warm: nothing to download or unpack, so no such lines.
    let warm = verify();
    warm.assert_code(0);
    for p in THREE {
        assert!(lines(warm.stderr(), p, "download").is_empty(), "{warm}");
        assert!(lines(warm.stderr(), p, "unpack").is_empty(), "{warm}");
    }
}

/// The amd64 JRE image as `oci:DIR/jre:v1`.
fn amd64_jre(dir: &Path) -> String {
    let layout = dir.join("jre");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(write_index(
            &layout,
            &[Entry::jre("linux/amd64", "amd64")],
            "v1",
        ));
    format!("oci:{}:v1", layout.display())
}

/// `archgate verify --runner static --platform linux/amd64` with the cache
/// `dir/CACHE` (static: the unpack is the long phase, no emulator needed).
fn static_verify(dir: &Path, cache: &str) -> TestCommand {
    let mut cmd = archgate();
    cmd.args(["verify", "--runner", "static", "--platform", "linux/amd64"])
        .env("ARCHGATE_CACHE", dir.join(cache));
    cmd
}

/// `--progress never` and `ARCHGATE_PROGRESS=never` print no progress;
/// a bad value is refused at load, naming the setting (exit 2).
#[test]
fn progress_can_be_turned_off_and_a_bad_value_is_refused() {
    let dir = tempdir();
    let image = amd64_jre(dir.path());
    let on = static_verify(dir.path(), "on").arg(&image).output();
    finished(&on);
    assert!(
        !lines(on.stderr(), "linux/amd64", "unpack").is_empty(),
        "{on}"
    );

    let off = static_verify(dir.path(), "off")
        .args(["--progress", "never", &image])
        .output();
    finished(&off);
    assert!(!off.stderr().contains("linux/amd64: "), "{off}");
    let off = static_verify(dir.path(), "off-env")
        .arg(&image)
        .env("ARCHGATE_PROGRESS", "never")
        .output();
    finished(&off);
    assert!(!off.stderr().contains("linux/amd64: "), "{off}");

    let bad = static_verify(dir.path(), "bad")
        .arg(&image)
        .env("ARCHGATE_PROGRESS", "sometimes")
        .output();
    bad.assert_code(2);
    assert!(bad.stderr().contains("ARCHGATE_PROGRESS"), "{bad}");
}

/// Under GitLab the CI lines sit in one collapsed section of their own.
#[test]
fn under_gitlab_the_lines_are_in_a_collapsed_section() {
    let dir = tempdir();
    let image = amd64_jre(dir.path());
    let out = static_verify(dir.path(), "cache")
        .arg(&image)
        .env("GITLAB_CI", "true")
        .output();
    finished(&out);
    let stderr = out.stderr();
    let start = stderr
        .find("section_start:")
        .unwrap_or_else(|| panic!("{out}"));
    let unpack = stderr.find("linux/amd64: unpack").unwrap();
    let end = stderr
        .find("section_end:")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(start < unpack && unpack < end, "{stderr}");
    assert!(
        stderr.contains(":archgate_progress[collapsed=true]"),
        "{stderr}"
    );
    assert!(
        !out.stdout().contains("section_"),
        "stdout stays the result"
    );
}

/// With the JSON log format, progress is structured log events on stderr,
/// and stdout is still exactly the `--json` result.
#[test]
fn with_json_logs_progress_is_json_events() {
    let dir = tempdir();
    let image = amd64_jre(dir.path());
    let out = static_verify(dir.path(), "cache")
        .args(["--json", "--log-format", "json", &image])
        .output();
    assert!(matches!(out.code(), Some(0 | 1)), "{out}");
    assert_eq!(out.json()["platforms"][0]["platform"], "linux/amd64");
    let events: Vec<serde_json::Value> = out
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{out}")))
        .filter(|v: &serde_json::Value| v["fields"]["phase"].is_string())
        .collect();
    let unpack: Vec<&serde_json::Value> = events
        .iter()
        .filter(|v| v["fields"]["phase"] == "unpack")
        .collect();
    assert!(unpack.len() >= 2, "{out}");
    assert_eq!(unpack[0]["fields"]["event"], "start");
    let end = unpack.last().unwrap();
    assert_eq!(end["fields"]["event"], "end");
    assert_eq!(end["fields"]["platform"], "linux/amd64");
    assert_eq!(end["fields"]["done"], end["fields"]["total"], "{end}");
}

/// On a terminal: a bar for the unpack with its platform, phase and bytes,
/// cleared when done, and the result after it.
#[test]
fn on_a_terminal_a_bar_shows_platform_phase_and_bytes() {
    let dir = tempdir();
    let image = amd64_jre(dir.path());
    let out = static_verify(dir.path(), "cache")
        .arg(&image)
        .output_on_a_terminal();
    assert!(matches!(out.code(), Some(0 | 1)), "{out}");
    let screen = out.stdout();
    let bar = screen
        .split(['\r', '\n'])
        .find(|l| l.contains("linux/amd64 unpack") && l.contains(" MiB / "))
        .unwrap_or_else(|| panic!("no unpack bar on the terminal\n{out}"));
    assert!(bar.contains("B/s"), "a rate: {bar:?}");
    // Not the CI lines.
    assert!(!screen.contains("linux/amd64: unpack started"), "{out}");
    assert!(screen.contains("checks:"), "the result follows: {out}");
}

/// A cold build in CI: per platform, a line when each layer's compression
/// starts and ends, naming the Dockerfile line, with bytes and rate; the
/// `--json` result on stdout stays JSON.
#[test]
fn a_cold_build_reports_compressing_each_layer() {
    let dir = tempdir();
    let ctx = crate::common::jre::jdk_context(dir.path());
    let base = crate::common::jre::base_image(dir.path(), &ctx);
    let out = archgate()
        .args(["build", "--json", "--build-arg", &format!("BASE={base}")])
        .arg("-f")
        .arg(crate::common::jre::jdk_dockerfile())
        .arg("--image")
        .arg(format!("oci:{}:v1", dir.path().join("out").display()))
        .arg(&ctx)
        .env("ARCHGATE_CACHE", dir.path().join("cache"))
        // Two platforms make this release (the default three would be required).
        .env("ARCHGATE_PLATFORMS", "linux/amd64,linux/arm64")
        .output();
    out.assert_code(0);
    assert_eq!(out.json()["platforms"].as_array().map(Vec::len), Some(2));
    for p in ["linux/amd64", "linux/arm64"] {
        let all = lines(out.stderr(), p, "compress Dockerfile:");
        let done: Vec<&&str> = all.iter().filter(|l| l.contains(" done: ")).collect();
        assert!(!done.is_empty(), "{p}: compress lines\n{out}");
        assert_eq!(
            all.iter()
                .filter(|l| l.ends_with(" started") || l.contains(" started ("))
                .count(),
            done.len(),
            "{p}: a start for every end\n{out}"
        );
        assert!(
            done.iter().any(|l| l.contains(" MiB in ")),
            "{p}: the JDK layer's bytes\n{out}"
        );
    }
}

/// A mirror in CI: the target's upload phase starts and ends with the bytes
/// of its blobs and a rate, and the `--json` result on stdout stays JSON.
#[test]
fn a_mirror_reports_its_upload() {
    let dir = tempdir();
    let registry = TestRegistry::start_http();
    let (image, config) = jre_in_registry(&registry, dir.path());
    let file = dir.path().join("jre.tar");
    let target = format!("oci-archive:{}", file.display());
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["mirror", "--json", &image, &format!("{target}:17")])
        .output();
    out.assert_code(0);
    assert_eq!(out.json().as_array().map(Vec::len), Some(1));
    let upload = lines(out.stderr(), &target, "upload");
    assert!(
        upload
            .first()
            .is_some_and(|l| l.contains("started") && l.contains("MiB")),
        "{}",
        out.stderr()
    );
    let end = upload.last().unwrap();
    assert!(end.contains(" done: ") && end.contains("MiB/s"), "{end}");
    assert!(seconds(end) >= 0.0);
}
