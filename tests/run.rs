//! Integration tests: `archgate run`, the release gate and its four reports —
//! a full merge + verify against a real registry, a failing platform, a bad
//! configuration and a registry that is down. junit.xml is validated with
//! xmllint against tests/fixtures/junit.xsd (the shape GitLab and Jenkins read).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::jre::{
    Entry, base_image, debian_arch, jdk_context, jdk_dockerfile, jre_env, shared_cache, write_index,
};
use crate::common::registry::free_port;
use crate::common::service::{READY, service_context, service_dockerfile};
use crate::common::{TestOutput, TestRegistry, archgate, skopeo_raw, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

fn layout(dir: &Path, entries: &[Entry]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(dir, entries, "v1"));
    format!("oci:{}:v1", dir.display())
}

/// `archgate --config CONFIG run ARGS` with the shared cache.
fn run(config: &Path, args: &[&str]) -> TestOutput {
    archgate()
        .arg("--config")
        .arg(config)
        .arg("run")
        .args(args)
        .env("ARCHGATE_CACHE", shared_cache())
        .output()
}

/// A verify-only run of `image` reporting into `report_dir`.
fn run_image(config: &Path, image: &str, report_dir: &Path) -> TestOutput {
    run(
        config,
        &[
            "--image",
            image,
            "--report-dir",
            report_dir.to_str().unwrap(),
        ],
    )
}

struct Reports {
    junit: String,
    json: Value,
    env: String,
    md: String,
}

fn reports(dir: &Path) -> Reports {
    let read =
        |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    Reports {
        junit: read("junit.xml"),
        json: serde_json::from_str(&read("report.json")).expect("report.json is JSON"),
        env: read("archgate.env"),
        md: read("coverage.md"),
    }
}

/// Validates junit.xml against the XSD with xmllint (libxml2-utils).
fn assert_valid_junit(path: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(path)
        .output()
        .expect("xmllint (apt-get install libxml2-utils; scripts/setup.sh does)");
    assert!(
        out.status.success(),
        "junit.xml does not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn dotenv_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("archgate.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn a_full_run_merges_verifies_and_writes_four_reports() {
    let registry = TestRegistry::start_http();
    let dir = tempdir();
    let sources: Vec<String> = THREE
        .iter()
        .map(|p| {
            let arch = debian_arch(p);
            layout(
                &dir.path().join(format!("src-{arch}")),
                &[Entry::jre(p, arch)],
            )
        })
        .collect();
    let report_dir = dir.path().join("report");
    let config = write_config(
        dir.path(),
        &format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n\
             image = \"{}/team/app:v1\"\n\
             [registries.\"{}\"]\nhttp = true\n\
             [merge]\nsources = {:?}\n\
             [report]\ndir = {:?}\n",
            registry.host(),
            registry.host(),
            sources,
            report_dir.display().to_string()
        ),
    );
    let out = run(&config, &[]);
    out.assert_code(0);
    let stdout = out.stdout();
    assert!(stdout.contains("gate: PASSED: 3/3"), "{stdout}");

    let r = reports(&report_dir);
    assert_valid_junit(&report_dir.join("junit.xml"));
    for p in THREE {
        assert!(
            r.junit.contains(&format!("name=\"{p}\"")),
            "a suite per platform: {p}"
        );
    }
    assert_eq!(
        r.junit.matches("<testcase ").count(),
        3 * 9,
        "a test case per check"
    );
    assert!(!r.junit.contains("<failure"), "{}", r.junit);
    assert!(
        r.junit.contains("openjdk version"),
        "java -version output in system-out"
    );

    // The digest every report names is the one the registry serves for the tag.
    let served = archgate::image::Digest::of(&skopeo_raw(&registry, &registry.repo("team/app:v1")));
    assert_eq!(
        dotenv_value(&r.env, "AG_IMAGE").unwrap(),
        format!("{}/team/app@{served}", registry.host())
    );
    assert_eq!(
        dotenv_value(&r.env, "AG_INDEX_DIGEST").unwrap(),
        served.to_string()
    );
    assert_eq!(dotenv_value(&r.env, "AG_COVERAGE").unwrap(), "3/3");
    assert_eq!(
        dotenv_value(&r.env, "AG_PASSED_PLATFORMS").unwrap(),
        "linux/amd64,linux/arm64,linux/mips64le"
    );
    for line in r.env.lines() {
        let (k, v) = line.split_once('=').expect("NAME=value");
        assert!(
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(!v.contains('"') && !v.is_empty(), "{line}");
    }

    assert_eq!(r.json["schema_version"], 1);
    assert_eq!(r.json["exit_code"], 0);
    assert_eq!(r.json["exit"], "success");
    assert_eq!(r.json["produced"]["phase"], "merge");
    assert_eq!(r.json["produced"]["index_digest"], served.to_string());
    assert_eq!(r.json["verification"]["index_digest"], served.to_string());
    assert_eq!(r.json["gate"]["outcome"], "passed");
    let platforms = r.json["verification"]["platforms"].as_array().unwrap();
    assert!(platforms.iter().all(|p| {
        p["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    }));
    assert!(
        r.json["config"]["settings"]["merge"]["sources"].is_array(),
        "the effective config"
    );

    let rows: Vec<&str> = r.md.lines().filter(|l| l.starts_with("| linux/")).collect();
    assert_eq!(rows.len(), 3, "{}", r.md);
    assert!(
        rows.iter().all(|row| row.matches('✅').count() == 9),
        "{}",
        r.md
    );
    assert!(r.md.contains("**PASSED: 3/3"), "{}", r.md);
}

/// An index under `dir` whose amd64 entry is right and whose arm64 entry
/// carries the amd64 JRE (fails `jdk-elf`, without running anything).
fn mislabelled_arm64(dir: &Path) -> String {
    let mut wrong = Entry::jre("linux/arm64", "amd64");
    wrong.env = jre_env("amd64");
    layout(
        &dir.join("img"),
        &[Entry::jre("linux/amd64", "amd64"), wrong],
    )
}

#[test]
fn a_failing_platform_is_exit_1_with_the_failure_in_every_report() {
    let dir = tempdir();
    // A command whose output holds ANSI escapes, a bell and `]]>` (the bytes
    // that break naive JUnit writers).
    let image = mislabelled_arm64(dir.path());
    let report_dir = dir.path().join("report");
    let config = write_config(
        dir.path(),
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         [[verify.commands]]\nname = \"noisy\"\n\
         args = [\"java\", \"-Dnoise=\\u001b[31mred\\u001b[0m]]>\\u0007\", \"-XshowSettings:properties\", \"-version\"]\n\
         output = \"never printed\"\nplatforms = [\"linux/amd64\"]\n",
    );
    let out = run_image(&config, &image, &report_dir);
    out.assert_code(1);

    let r = reports(&report_dir);
    assert_valid_junit(&report_dir.join("junit.xml"));
    let arm64 = &r.junit[r.junit.find("name=\"linux/arm64\"").expect("arm64 suite")..];
    let elf = &arm64[arm64
        .find("<testcase name=\"jdk-elf\"")
        .expect("jdk-elf case")..];
    assert!(
        elf.starts_with("<testcase name=\"jdk-elf\"") && elf.contains("<failure type=\"failed\"")
    );
    assert!(
        elf[..elf.find("</testcase>").unwrap()].contains("built for x86-64"),
        "{elf}"
    );
    assert!(
        !r.junit.contains('\u{1b}') && !r.junit.contains('\u{7}'),
        "control characters stripped"
    );
    assert_eq!(r.json["gate"]["outcome"], "failed");
    assert_eq!(r.json["exit_code"], 1);
    assert_eq!(r.json["exit"], "failed");
    let reasons = r.json["gate"]["reasons"].to_string();
    assert!(reasons.contains("linux/arm64: failed"), "{reasons}");
    assert_eq!(dotenv_value(&r.env, "AG_VERDICT").unwrap(), "failed");
    assert_eq!(dotenv_value(&r.env, "AG_COVERAGE").unwrap(), "0/2");
    let row =
        r.md.lines()
            .find(|l| l.starts_with("| linux/arm64 |"))
            .expect("arm64 row");
    assert!(row.contains('❌') && r.md.contains("**FAILED"), "{}", r.md);
    let line =
        r.md.lines()
            .find(|l| l.starts_with("- linux/arm64 `jdk-elf`:"))
            .expect("the failure listed");
    assert!(line.contains("built for x86-64"), "{line}");
}

#[test]
fn a_bad_configuration_is_exit_2_and_the_report_says_why() {
    let dir = tempdir();
    let report_dir = dir.path().join("report");
    let config = write_config(dir.path(), "[gate]\nerror_fails = \"sometimes\"\n");
    let out = run(&config, &["--report-dir", report_dir.to_str().unwrap()]);
    out.assert_code(2);
    let r = reports(&report_dir);
    assert_valid_junit(&report_dir.join("junit.xml"));
    assert_eq!(r.json["error"]["phase"], "config");
    assert_eq!(r.json["error"]["kind"], "usage");
    let m = r.json["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("gate.error_fails") || m.contains("error_fails"),
        "names the key: {m}"
    );
    assert_eq!(dotenv_value(&r.env, "AG_EXIT_CODE").unwrap(), "2");
    assert!(r.md.contains("**ERROR** in config"), "{}", r.md);
}

#[test]
fn nothing_to_produce_is_exit_2() {
    let dir = tempdir();
    let report_dir = dir.path().join("report");
    let config = write_config(dir.path(), "platforms = [\"linux/amd64\"]\n");
    let out = run(&config, &["--report-dir", report_dir.to_str().unwrap()]);
    out.assert_code(2);
    let r = reports(&report_dir);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--image"),
        "{}",
        r.json
    );
}

#[test]
fn a_registry_that_is_down_is_exit_3_and_the_report_says_why() {
    let dir = tempdir();
    let report_dir = dir.path().join("report");
    let host = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "platforms = [\"linux/amd64\"]\n[registries.\"{host}\"]\nhttp = true\n[network]\nretries = 0\n"
        ),
    );
    let image = format!("{host}/team/app:v1");
    let out = run_image(&config, &image, &report_dir);
    out.assert_code(3);
    let r = reports(&report_dir);
    assert_valid_junit(&report_dir.join("junit.xml"));
    assert_eq!(r.json["error"]["phase"], "verify");
    assert_eq!(r.json["error"]["kind"], "infrastructure");
    assert!(
        r.json["error"]["message"].as_str().unwrap().contains(&host),
        "{}",
        r.json
    );
    assert!(
        r.junit.contains("<error type=\"infrastructure\""),
        "{}",
        r.junit
    );
    assert_eq!(dotenv_value(&r.env, "AG_VERDICT").unwrap(), "error");
}

#[test]
fn the_main_job_builds_the_seed_chain_and_proves_the_service_on_three_platforms_in_a_layout() {
    // scripts/main-job.sh: base -> JDK FROM the base -> service FROM the JDK,
    // each a three-platform index in a layout under the job's directory.
    let dir = tempdir();
    let ctx = jdk_context(dir.path());
    base_image(dir.path(), &ctx);
    archgate()
        .current_dir(dir.path())
        .arg("build")
        .arg("-f")
        .arg(jdk_dockerfile())
        .args(["--image", "oci:archgate-out/jdk:latest"])
        .arg(&ctx)
        .env("ARCHGATE_CACHE", shared_cache())
        .assert_success();
    let service = service_context(dir.path());
    let out_dir = dir.path().join("archgate-out");
    let report_dir = dir.path().join("report");
    // The embedded default target is oci:archgate-out/image:{tag}, relative to the job's directory.
    let out = archgate()
        .current_dir(dir.path())
        .arg("run")
        .env("ARCHGATE_CACHE", shared_cache())
        .env("ARCHGATE_BUILD__DOCKERFILE", service_dockerfile())
        .env("ARCHGATE_BUILD__CONTEXT", &service)
        .env("ARCHGATE_VERIFY__SERVICE__READY", READY)
        .env("ARCHGATE_REPORT__DIR", &report_dir)
        .output();
    out.assert_code(0);
    assert!(
        out_dir.join("image/index.json").is_file(),
        "an OCI layout in archgate-out/image"
    );
    let r = reports(&report_dir);
    assert_eq!(r.json["produced"]["phase"], "build");
    assert_eq!(r.json["gate"]["coverage"], "3/3");
    for p in THREE {
        let platform = r.json["verification"]["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["platform"] == p)
            .unwrap();
        let check = |name: &str| {
            platform["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("{p}: no {name}"))
                .clone()
        };
        assert_eq!(
            check("jdk-found")["message"],
            "/opt/jdk/bin/java",
            "{p}: JAVA_HOME=/opt/jdk from the JDK image"
        );
        let service = check("service-start");
        assert_eq!(service["outcome"], "passed", "{p}: {service}");
        assert!(
            service["message"]
                .as_str()
                .unwrap()
                .contains("lz4 LZ4Factory:JNI"),
            "{p}: the service's ready line: {service}"
        );
    }
    assert!(r.md.contains("service-start"), "{}", r.md);
    assert!(
        dotenv_value(&r.env, "AG_IMAGE")
            .unwrap()
            .starts_with("oci:archgate-out/image@sha256:")
    );
}

#[test]
fn verify_right_after_build_downloads_no_layer() {
    let registry = TestRegistry::start_http();
    let dir = tempdir();
    let ctx = jdk_context(dir.path());
    let base = base_image(dir.path(), &ctx);
    let report_dir = dir.path().join("report");
    let config = write_config(
        dir.path(),
        &format!(
            "image = \"{}/team/jdk:v1\"\n[registries.\"{}\"]\nhttp = true\n\
             [build]\ndockerfile = {:?}\ncontext = {:?}\n[build.args]\nBASE = {:?}\n\
             [report]\ndir = {:?}\n",
            registry.host(),
            registry.host(),
            jdk_dockerfile().display().to_string(),
            ctx.display().to_string(),
            base,
            report_dir.display().to_string()
        ),
    );
    // A cache of its own: nothing unpacked or downloaded before this run.
    let cache = dir.path().join("cache");
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("ARCHGATE_CACHE", &cache)
        .output();
    out.assert_code(0);
    let r = reports(&report_dir);
    assert_eq!(r.json["produced"]["phase"], "build");
    let layers: Vec<String> = r.json["produced"]["detail"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["new_layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        layers.len(),
        3,
        "one new layer per platform (the JDK; the base's come from its layout): {}",
        r.json["produced"]
    );
    let layer_gets: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(|q| {
            q.method == "GET"
                && layers
                    .iter()
                    .any(|l| q.path.ends_with(&format!("/blobs/{l}")))
        })
        .map(|q| q.path)
        .collect();
    assert!(
        layer_gets.is_empty(),
        "verify downloaded layers the build had just written: {layer_gets:?}"
    );
}

/// Regression (issue 18, hole 6: settings validated after publishing): an invalid
/// `[[verify.commands]] output` regex used to be found by `verify`, after
/// `run` had built and published the image. Now it is exit 2 from
/// `config::load`, before anything is built or published.
#[test]
fn regression_hole_6_an_invalid_command_pattern_stops_run_before_anything_is_published() {
    let dir = tempdir();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    let target = dir.path().join("out");
    let body = |pattern: &str| {
        format!(
            "platforms = [\"linux/amd64\"]\n\
             image = \"oci:{}:v1\"\n\
             [build]\ndockerfile = \"{}\"\ncontext = \"{}\"\n\
             [[verify.commands]]\nname = \"hello\"\nargs = [\"/hello\"]\noutput = \"{pattern}\"\n",
            target.display(),
            dir.path().join("Dockerfile").display(),
            dir.path().display(),
        )
    };
    let report_dir = dir.path().join("report");
    let report_arg = ["--report-dir", report_dir.to_str().unwrap()];

    let config = write_config(dir.path(), &body("(unclosed"));
    let out = run(&config, &report_arg);
    assert_eq!(out.code(), Some(2), "{}", out.stderr());
    assert!(
        !target.exists(),
        "nothing may be published before the settings are valid"
    );
    let r = reports(&report_dir);
    assert_eq!(r.json["error"]["phase"], "config");
    assert_eq!(r.json["error"]["kind"], "usage");
    assert_eq!(r.json["exit_code"], 2);
    assert_eq!(r.json["exit"], "usage");
    let m = r.json["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("verify.commands") && m.contains("not a valid regular expression"),
        "names the key and the problem: {m}"
    );
    assert!(r.json.get("produced").is_none(), "{}", r.json);

    // The same job with a valid pattern does publish: what the first run
    // skipped was real work, not a job that would have failed anyway.
    let config = write_config(dir.path(), &body("hello"));
    let out = run(&config, &report_arg);
    assert_ne!(out.code(), Some(2), "{}", out.stderr());
    assert!(target.join("index.json").is_file(), "{}", out.stderr());
}

/// The `NAME=value` pairs of a dotenv file, as GitLab hands them to later jobs.
fn dotenv_pairs(env: &str) -> Vec<(String, String)> {
    env.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn regression_hole_2_the_previous_jobs_dotenv_does_not_change_the_next_jobs_settings() {
    let dir = tempdir();
    let image = layout(
        &dir.path().join("img"),
        &[Entry::jre("linux/amd64", "amd64")],
    );
    let report_dir = dir.path().join("report");
    let config = write_config(
        dir.path(),
        "platforms = [\"linux/amd64\"]\nimage = \"oci:out/app:v1\"\n",
    );
    run_image(&config, &image, &report_dir).assert_code(0);
    let handed_on = dotenv_pairs(&reports(&report_dir).env);
    assert!(
        handed_on
            .iter()
            .any(|(k, v)| k == "AG_IMAGE" && v.contains("@sha256:")),
        "a passing run hands on the pinned image: {handed_on:?}"
    );
    let config_json = |env: &[(String, String)]| {
        let out = archgate()
            .arg("--config")
            .arg(&config)
            .args(["config", "--json"])
            .envs(env)
            .output();
        out.assert_code(0);
        out.json()
    };
    assert_eq!(config_json(&handed_on), config_json(&[]));
}

#[test]
fn regression_hole_3_a_failed_gate_hands_on_no_deployable_image() {
    let dir = tempdir();
    let image = mislabelled_arm64(dir.path());
    let report_dir = dir.path().join("report");
    let config = write_config(
        dir.path(),
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\n",
    );
    run_image(&config, &image, &report_dir).assert_code(1);
    let env = reports(&report_dir).env;
    let names: Vec<String> = dotenv_pairs(&env).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        ["AG_COVERAGE", "AG_VERDICT", "AG_EXIT_CODE"],
        "{env}"
    );
    assert!(!env.contains("sha256:"), "{env}");
    assert_eq!(dotenv_value(&env, "AG_VERDICT").unwrap(), "failed");
    assert_eq!(dotenv_value(&env, "AG_EXIT_CODE").unwrap(), "1");
    assert_eq!(dotenv_value(&env, "AG_COVERAGE").unwrap(), "1/2");
}

#[test]
fn regression_hole_1_verify_judges_an_index_by_the_default_platforms_as_run_does() {
    let dir = tempdir();
    let image = layout(
        &dir.path().join("img"),
        &[Entry::jre("linux/amd64", "amd64")],
    );
    let config = write_config(dir.path(), "");
    for command in ["verify", "run"] {
        let report_dir = dir.path().join(command);
        let mut args = vec!["--config", config.to_str().unwrap(), command];
        if command == "run" {
            args.push("--image");
        }
        args.extend([image.as_str(), "--report-dir", report_dir.to_str().unwrap()]);
        let out = archgate()
            .args(&args)
            .env("ARCHGATE_CACHE", shared_cache())
            .output();
        out.assert_code(1);
        let r = reports(&report_dir);
        assert_eq!(
            dotenv_value(&r.env, "AG_COVERAGE").unwrap(),
            "1/3",
            "{command}"
        );
        let reasons = r.json["gate"]["reasons"].to_string();
        assert!(
            reasons.contains("linux/mips64le: failed — index-entry: no entry"),
            "{command}: {reasons}"
        );
    }
}

#[test]
fn regression_hole_4_a_static_run_is_not_proven_unless_waived() {
    let dir = tempdir();
    let image = layout(
        &dir.path().join("img"),
        &[Entry::jre("linux/amd64", "amd64")],
    );
    for (gate, code, verdict) in [
        ("", 1, "failed"),
        (
            "[gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n",
            0,
            "passed",
        ),
    ] {
        let config = write_config(
            dir.path(),
            &format!("platforms = [\"linux/amd64\"]\n[verify]\nrunner = \"static\"\n{gate}"),
        );
        let report_dir = dir.path().join(format!("report-{code}"));
        run_image(&config, &image, &report_dir).assert_code(code);
        let r = reports(&report_dir);
        assert_eq!(dotenv_value(&r.env, "AG_VERDICT").unwrap(), verdict);
        assert!(
            r.md.contains("`java-version`: ⏭ runner \"static\""),
            "{}",
            r.md
        );
    }
}
