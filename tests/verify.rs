//! Integration tests: `archgate verify` on real JRE images (Debian's
//! openjdk-17-jre-headless for amd64, arm64 and mips64el), run under real
//! bubblewrap and QEMU user-mode emulation, read from a real registry and
//! from OCI layouts. The images are truthful or wrong in the ways hand-made
//! per-arch pushes go wrong.

use std::path::Path;

use serde_json::Value;

use crate::common::jre::{Entry, Layer, jre_env, jre_layer, shared_cache};
use crate::common::{TestOutput, TestRegistry, archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

fn truthful(platforms: &[&str]) -> Vec<Entry> {
    platforms
        .iter()
        .map(|p| Entry::jre(p, crate::common::jre::debian_arch(p)))
        .collect()
}

/// Writes `entries` as `oci:DIR:v1` and returns the location.
fn layout(dir: &Path, entries: &[Entry]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::common::jre::write_index(dir, entries, "v1"));
    format!("oci:{}:v1", dir.display())
}

/// Runs `archgate verify --json ARGS` with `cache`; returns the exit code, the
/// parsed JSON (when stdout is JSON) and stderr.
fn verify(
    args: &[&str],
    cache: &Path,
    extra_env: &[(&str, &str)],
) -> (i32, Value, String, TestOutput) {
    let out = archgate()
        .arg("verify")
        .arg("--json")
        .args(args)
        .env("ARCHGATE_CACHE", cache)
        .envs(extra_env)
        .output();
    let json = out.json_or_null();
    let stderr = out.stderr().to_string();
    (out.code().unwrap_or(-1), json, stderr, out)
}

use crate::common::{platform_result as platform, verify_check as check};

fn outcome(v: &Value, p: &str, id: &str) -> String {
    check(v, p, id)["outcome"].as_str().unwrap().to_string()
}

fn message(v: &Value, p: &str, id: &str) -> String {
    check(v, p, id)["message"].as_str().unwrap().to_string()
}

/// Lines of the registry log that fetched a blob.
fn blob_gets(registry: &TestRegistry) -> usize {
    registry
        .log()
        .lines()
        .filter(|l| {
            l.contains("response completed") && l.contains("GET") && l.contains("/blobs/sha256:")
        })
        .count()
}

#[test]
fn three_platforms_pass_through_the_registry_and_a_warm_cache_downloads_no_layer() {
    let registry = TestRegistry::start_http();
    let dir = tempdir();
    let src = layout(&dir.path().join("layout"), &truthful(&THREE));
    let image = format!("{}:v1", registry.repo("jre/app"));
    crate::common::registry::skopeo_copy_to(&src, &image);
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let cache = dir.path().join("cache");

    let (code, v, stderr, _) = verify(&["--config", config.to_str().unwrap(), &image], &cache, &[]);
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    assert_eq!(v["outcome"], "passed");
    assert!(
        v["pinned"].as_str().unwrap().contains("@sha256:"),
        "pinned to the index digest: {v}"
    );
    for (p, os_arch) in [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "aarch64"),
        ("linux/mips64le", "mips64el"),
    ] {
        assert_eq!(platform(&v, p)["outcome"], "passed", "{p}: {v:#}");
        for c in platform(&v, p)["checks"].as_array().unwrap() {
            assert_eq!(
                c["outcome"], "passed",
                "{p} {}: {}",
                c["name"], c["message"]
            );
        }
        assert_eq!(
            message(&v, p, "java-os-arch"),
            format!("os.arch = {os_arch}")
        );
        assert!(
            platform(&v, p)["java_version"]
                .as_str()
                .unwrap()
                .starts_with("17.0."),
            "{v:#}"
        );
        assert!(
            check(&v, p, "java-version")["output"]
                .as_str()
                .unwrap()
                .contains("openjdk version \"17"),
            "java -version output kept for the report"
        );
    }
    // The host's own platform runs natively, the others under QEMU.
    let host = archgate::platform::Platform::host()
        .normalised()
        .to_string();
    for p in THREE {
        let want = if p == host { "native" } else { "qemu" };
        assert_eq!(platform(&v, p)["runner"], want, "{p}");
    }

    // Warm: the same digest again; no layer is downloaded a second time.
    let before = blob_gets(&registry);
    let (code, v2, stderr, _) =
        verify(&["--config", config.to_str().unwrap(), &image], &cache, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v2["index_digest"], v["index_digest"]);
    let layer_gets = blob_gets(&registry) - before;
    assert!(
        layer_gets <= 3,
        "a warm verify fetched {layer_gets} blobs (3 configs at most)"
    );
}

#[test]
fn an_arm64_entry_carrying_the_amd64_jre_fails_elf_and_java() {
    let dir = tempdir();
    let mut entries = truthful(&["linux/amd64"]);
    entries.push(Entry {
        index_platform: "linux/arm64".into(),
        config_platform: "linux/arm64".into(),
        layers: vec![jre_layer("amd64")],
        env: jre_env("amd64"),
        runtime: Value::Null,
    });
    let image = layout(dir.path(), &entries);
    let (code, v, stderr, _) = verify(&[&image], &shared_cache(), &[]);
    assert_eq!(code, 1, "the gate fails: {stderr}\n{v:#}");
    assert_eq!(v["outcome"], "failed");
    assert_eq!(platform(&v, "linux/amd64")["outcome"], "passed");
    assert_eq!(
        outcome(&v, "linux/arm64", "config-platform"),
        "passed",
        "the label alone looks fine"
    );
    assert_eq!(outcome(&v, "linux/arm64", "jdk-elf"), "failed");
    let elf = message(&v, "linux/arm64", "jdk-elf");
    assert!(
        elf.contains("x86-64") && elf.contains("AArch64"),
        "names both CPUs: {elf}"
    );
    assert_eq!(outcome(&v, "linux/arm64", "java-version"), "failed");
}

#[test]
fn a_mislabelled_image_fails_the_config_platform_check() {
    // The classic hand-tagged push: the mips64le entry holds the amd64 image.
    let dir = tempdir();
    let mut entries = truthful(&["linux/amd64"]);
    entries.push(Entry {
        index_platform: "linux/mips64le".into(),
        config_platform: "linux/amd64".into(),
        layers: vec![jre_layer("amd64")],
        env: jre_env("amd64"),
        runtime: Value::Null,
    });
    let image = layout(dir.path(), &entries);
    let (code, v, stderr, _) = verify(&[&image], &shared_cache(), &[]);
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(outcome(&v, "linux/mips64le", "config-platform"), "failed");
    let m = message(&v, "linux/mips64le", "config-platform");
    assert!(
        m.contains("linux/mips64le") && m.contains("linux/amd64"),
        "{m}"
    );
    assert_eq!(outcome(&v, "linux/mips64le", "jdk-elf"), "failed");
}

#[test]
fn a_missing_platform_fails_coverage_unless_not_required() {
    let dir = tempdir();
    let image = layout(dir.path(), &truthful(&["linux/amd64", "linux/arm64"]));
    let (code, v, stderr, _) = verify(
        &[
            "--platform",
            "linux/amd64,linux/arm64,linux/mips64le",
            &image,
        ],
        &shared_cache(),
        &[],
    );
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(outcome(&v, "linux/mips64le", "index-entry"), "failed");
    let m = message(&v, "linux/mips64le", "index-entry");
    assert!(
        m.contains("linux/amd64") && m.contains("linux/arm64"),
        "lists what the index has: {m}"
    );
    assert_eq!(outcome(&v, "linux/mips64le", "java-version"), "skipped");
    assert_eq!(platform(&v, "linux/amd64")["outcome"], "passed");

    // Only amd64 required: arm64 is listed as not verified.
    let (code, v, stderr, _) = verify(&["--platform", "linux/amd64", &image], &shared_cache(), &[]);
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    assert_eq!(v["other_platforms"], serde_json::json!(["linux/arm64"]));
}

/// A layer whose entry climbs out of the root.
fn escaping_layer(marker: &str) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let content = b"written outside the root\n";
    let mut header = tar::Header::new_gnu();
    let name = format!("../../../../../../../../tmp/{marker}");
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, &content[..]).unwrap();
    Layer::gzip(tar.into_inner().unwrap().into())
}

#[test]
fn a_hostile_layer_is_contained_and_reported() {
    let dir = tempdir();
    let marker = format!("archgate-escape-{}", std::process::id());
    let mut entry = Entry::jre("linux/amd64", "amd64");
    let hostile = escaping_layer(&marker);
    let hostile_digest = hostile.digest.to_string();
    entry.layers.push(hostile);
    let image = layout(&dir.path().join("layout"), &[entry]);
    let cache = dir.path().join("cache");
    let (code, v, stderr, _) = verify(&[&image], &cache, &[]);
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(outcome(&v, "linux/amd64", "layers"), "failed");
    let m = message(&v, "linux/amd64", "layers");
    assert!(m.contains(&hostile_digest), "names the layer: {m}");
    assert!(m.contains(&marker), "names the entry: {m}");
    assert_eq!(outcome(&v, "linux/amd64", "java-version"), "skipped");
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "the entry escaped"
    );
    // Nothing half-unpacked is left in the cache under a final name.
    let roots: Vec<_> = std::fs::read_dir(cache.join("rootfs"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(roots.is_empty(), "left in the cache: {roots:?}");
}

#[test]
fn the_static_runner_skips_execution_with_the_reason() {
    let dir = tempdir();
    let image = layout(dir.path(), &truthful(&["linux/mips64le"]));
    let (code, v, stderr, _) = verify(
        &["--platform", "linux/mips64le", "--runner", "static", &image],
        &shared_cache(),
        &[],
    );
    // Nothing executed: not proven, the gate fails (issue 18, hole 4).
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(platform(&v, "linux/mips64le")["runner"], "static");
    assert_eq!(outcome(&v, "linux/mips64le", "jdk-elf"), "passed");
    assert_eq!(outcome(&v, "linux/mips64le", "java-version"), "skipped");
    assert!(message(&v, "linux/mips64le", "java-version").contains("static"));
}

#[test]
fn a_missing_emulator_is_an_error_naming_the_package_never_a_pass() {
    let dir = tempdir();
    let image = layout(&dir.path().join("layout"), &truthful(&["linux/arm64"]));
    // A PATH with bubblewrap but no QEMU.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/bwrap", bin.join("bwrap")).unwrap();
    let (code, v, stderr, _) = verify(
        &["--platform", "linux/arm64", &image],
        &shared_cache(),
        &[("PATH", bin.to_str().unwrap())],
    );
    assert_eq!(code, 3, "could not tell: {stderr}\n{v:#}");
    assert_eq!(v["outcome"], "error");
    assert_eq!(outcome(&v, "linux/arm64", "java-version"), "error");
    assert!(message(&v, "linux/arm64", "java-version").contains("qemu-user-static"));
    assert_eq!(
        outcome(&v, "linux/arm64", "jdk-elf"),
        "passed",
        "static checks still run"
    );
}

/// `/usr/bin/java → /etc/alternatives/java → /usr/lib/jvm/…/bin/java`, as
/// Debian's update-alternatives leaves them, with no JAVA_HOME.
fn alternatives_layer(arch: &str) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = |name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    dir("etc/alternatives");
    dir("usr/bin");
    let mut link = |name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, name, target).unwrap();
    };
    link("usr/bin/java", "/etc/alternatives/java");
    link(
        "etc/alternatives/java",
        &format!("/usr/lib/jvm/java-17-openjdk-{arch}/bin/java"),
    );
    Layer::tar(tar.into_inner().unwrap().into())
}

#[test]
fn java_is_found_on_path_through_absolute_symlinks() {
    let dir = tempdir();
    let mut entry = Entry::jre("linux/amd64", "amd64");
    entry.layers.push(alternatives_layer("amd64"));
    entry.env = vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()];
    let image = layout(dir.path(), &[entry]);
    let (code, v, stderr, _) = verify(&["--platform", "linux/amd64", &image], &shared_cache(), &[]);
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    let m = message(&v, "linux/amd64", "jdk-found");
    assert!(
        m.starts_with("/usr/bin/java → /usr/lib/jvm/java-17-openjdk-amd64/bin/java"),
        "{m}"
    );
}

#[test]
fn extra_commands_pass_and_fail_on_exit_code_and_output() {
    let dir = tempdir();
    let image = layout(&dir.path().join("layout"), &truthful(&["linux/arm64"]));
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        r#"
[[verify.commands]]
name = "modules"
args = ["java", "--list-modules"]
output = "java\\.base@17"

[[verify.commands]]
name = "bogus option"
args = ["java", "-no-such-option"]
exit_code = 0
"#,
    )
    .unwrap();
    let (code, v, stderr, _) = verify(
        &["--config", config.to_str().unwrap(), &image],
        &shared_cache(),
        &[],
    );
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(outcome(&v, "linux/arm64", "command:modules"), "passed");
    assert_eq!(outcome(&v, "linux/arm64", "command:bogus option"), "failed");
    let m = message(&v, "linux/arm64", "command:bogus option");
    assert!(m.contains("exit code 1") && m.contains("expected 0"), "{m}");
    assert_eq!(outcome(&v, "linux/arm64", "java-version"), "passed");
}

#[test]
fn a_bad_command_pattern_is_a_configuration_error() {
    let dir = tempdir();
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        "[[verify.commands]]\nname = \"x\"\nargs = [\"java\"]\noutput = \"(\"\n",
    )
    .unwrap();
    let (code, _, stderr, _) = verify(
        &["--config", config.to_str().unwrap(), "oci:/nonexistent:v1"],
        &shared_cache(),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("verify.commands") && stderr.contains("regular expression"),
        "{stderr}"
    );
}

#[test]
fn a_registry_that_is_down_exits_3() {
    let port = crate::common::registry::free_port();
    let dir = tempdir();
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"127.0.0.1:{port}\"]\nhttp = true\n[network]\nretries = 0\n"),
    )
    .unwrap();
    let (code, _, stderr, _) = verify(
        &[
            "--config",
            config.to_str().unwrap(),
            &format!("127.0.0.1:{port}/app:v1"),
        ],
        &shared_cache(),
        &[],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// The names of one platform's checks, in the order they were recorded.
fn check_names(v: &Value, p: &str) -> Vec<String> {
    platform(v, p)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Regression: with `[verify.java] required = false` and no command, `layers`
/// was recorded after the checks that depend on it.
#[test]
fn regression_java_not_required_without_commands_records_layers_in_plan_order() {
    let dir = tempdir();
    let image = layout(&dir.path().join("layout"), &truthful(&["linux/amd64"]));
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        "platforms = [\"linux/amd64\"]\n[verify.java]\nrequired = false\n\
         [gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n",
    )
    .unwrap();
    let (code, v, stderr, _) = verify(
        &["--config", config.to_str().unwrap(), &image],
        &shared_cache(),
        &[],
    );
    assert_eq!(code, 0, "{stderr}\n{v:#}");
    assert_eq!(
        check_names(&v, "linux/amd64"),
        [
            "index-entry",
            "manifest",
            "config-platform",
            "layers",
            "jdk-found",
            "jdk-elf",
            "java-version",
            "java-os-arch",
            "native-libs"
        ]
    );
    // `native-libs` reads every image's files, so `layers` runs without a JDK too.
    assert_eq!(outcome(&v, "linux/amd64", "layers"), "passed");
    assert_eq!(outcome(&v, "linux/amd64", "native-libs"), "passed");
    assert_eq!(
        message(&v, "linux/amd64", "jdk-found"),
        "[verify.java] required = false and no extra commands"
    );
}

/// The extra commands are checks of the plan: when the layers they need fail,
/// each is still listed, `skipped` with that cause, after the standard checks.
#[test]
fn commands_whose_layers_failed_are_listed_skipped_with_the_cause() {
    let dir = tempdir();
    let mut entry = Entry::jre("linux/amd64", "amd64");
    entry.layers.push(escaping_layer(&format!(
        "archgate-cascade-{}",
        std::process::id()
    )));
    let image = layout(&dir.path().join("layout"), &[entry]);
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        "[[verify.commands]]\nname = \"version\"\nargs = [\"java\", \"-version\"]\n",
    )
    .unwrap();
    let (code, v, stderr, _) = verify(
        &["--config", config.to_str().unwrap(), &image],
        &dir.path().join("cache"),
        &[],
    );
    assert_eq!(code, 1, "{stderr}\n{v:#}");
    assert_eq!(outcome(&v, "linux/amd64", "layers"), "failed");
    let names = check_names(&v, "linux/amd64");
    assert_eq!(names.last().map(String::as_str), Some("command:version"));
    for c in ["jdk-found", "java-os-arch", "command:version"] {
        assert_eq!(outcome(&v, "linux/amd64", c), "skipped", "{c}");
        assert_eq!(
            message(&v, "linux/amd64", c),
            "needs `layers`, which failed",
            "{c}"
        );
    }
}

/// Hole 5: a command killed at `[verify] timeout` under QEMU says the runner
/// was too slow to tell: an `error` naming the emulator and the elapsed time,
/// exit 3 (infrastructure), never exit 1 blaming the image. The command is the
/// JRE's own `rmiregistry`, which serves until it is killed: the timeout is
/// certain to hit, however fast the machine.
#[test]
fn regression_hole_5_a_qemu_timeout_is_an_infrastructure_error() {
    let dir = tempdir();
    let image = layout(dir.path(), &truthful(&["linux/mips64le"]));
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        "[[verify.commands]]\nname = \"serve\"\n\
         args = [\"/usr/lib/jvm/java-17-openjdk-mips64el/bin/rmiregistry\"]\n",
    )
    .unwrap();
    let (code, v, stderr, _) = verify(
        &[
            "--config",
            config.to_str().unwrap(),
            "--runner",
            "qemu",
            "--timeout",
            "3",
            "--platform",
            "linux/mips64le",
            &image,
        ],
        &shared_cache(),
        &[],
    );
    assert_eq!(
        outcome(&v, "linux/mips64le", "command:serve"),
        "error",
        "{v:#}"
    );
    let m = message(&v, "linux/mips64le", "command:serve");
    assert!(
        m.contains("qemu-mips64el")
            && m.contains("killed after 3.")
            && m.contains("[verify] timeout"),
        "{m}"
    );
    assert_ne!(
        outcome(&v, "linux/mips64le", "java-version"),
        "failed",
        "a slow emulator never blames the image: {v:#}"
    );
    assert_eq!(code, 3, "{stderr}\n{v:#}");
}
