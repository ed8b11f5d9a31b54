//! Integration tests: the CI templates. The Jenkins shared-library step runs
//! under Debian's real `groovy` with the pipeline steps it calls recorded
//! (tests/jenkins/step_test.groovy); the GitLab include runs for real under
//! gitlab-ci-local's shell executor.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `JAVA_HOME` for groovy: the environment's, else the directory of the
/// `java` on PATH (Debian's groovy script looks for default-java otherwise).
fn java_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    let out = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v java)\""])
        .output()
        .ok()?;
    let java = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    java.parent()?.parent().map(Path::to_path_buf)
}

#[test]
fn the_jenkins_step_runs_the_right_command_lines_and_maps_exit_codes() {
    let mut cmd = Command::new("groovy");
    cmd.arg(repo().join("tests/jenkins/step_test.groovy"))
        .arg(repo());
    if let Some(h) = java_home() {
        cmd.env("JAVA_HOME", h);
    }
    let out = cmd
        .output()
        .expect("groovy (apt-get install groovy; scripts/setup.sh does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let ok = stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert!(
        ok >= 18 && stdout.contains(&format!("{ok} checks passed")),
        "{stdout}"
    );
}

/// gitlab-ci-local as scripts/setup.sh installs it.
fn gitlab_ci_local() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let bin = cache.join("archgate/tools/gcl/node_modules/.bin/gitlab-ci-local");
    assert!(
        bin.is_file(),
        "{} missing: run scripts/setup.sh",
        bin.display()
    );
    bin
}

#[test]
fn the_gitlab_fan_out_pipeline_builds_merges_and_verifies_for_real() {
    use crate::common::jre::{base_image, jdk_context, jdk_dockerfile};
    use crate::common::{TestRegistry, skopeo_raw, tempdir};

    let registry = TestRegistry::start_http();
    let dir = tempdir();
    // The JDK build context, hard-linked from the fetched JREs (as the main job does).
    let ctx = jdk_context(dir.path());

    // A project: the example pipeline, the include, archgate.toml.
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("ci-templates/gitlab")).unwrap();
    for f in ["archgate.gitlab-ci.yml", "example.gitlab-ci.yml"] {
        std::fs::copy(
            repo().join("ci-templates/gitlab").join(f),
            project.join("ci-templates/gitlab").join(f),
        )
        .unwrap();
    }
    std::fs::copy(
        repo().join("ci-templates/gitlab/example.gitlab-ci.yml"),
        project.join(".gitlab-ci.yml"),
    )
    .unwrap();
    let host = registry.host();
    std::fs::write(
        project.join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n\
             image = \"{host}/team/app:{{git_short_sha}}\"\n\
             [registries.\"{host}\"]\nhttp = true\n\
             [build]\ndockerfile = {:?}\ncontext = {:?}\n[build.args]\nBASE = {:?}\n",
            jdk_dockerfile().display().to_string(),
            ctx.display().to_string(),
            base_image(dir.path(), &ctx)
        ),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .args([
                "-c",
                "user.email=ci@example.invalid",
                "-c",
                "user.name=ci",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&project)
            .status()
            .expect("git");
        assert!(s.success(), "git {args:?}");
    };
    // The verify job signs its verdict; the promote job checks it and tags the release.
    let (attest_key, attest_pub) = crate::attest::keypair(dir.path(), "attest");
    git(&["init", "-q", "."]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "pipeline"]);

    let out = Command::new(gitlab_ci_local())
        .current_dir(&project)
        // Each job in a directory of its own, as on GitLab's runners: without it
        // gitlab-ci-local runs the three parallel build jobs in one directory, where
        // each overwrites the others' `archgate-report/build.env` before its
        // artifacts are collected (a merge then finds two platforms of three).
        .arg("--shell-isolation")
        .args([
            "--variable",
            &format!("ARCHGATE_BIN={}", env!("CARGO_BIN_EXE_archgate")),
        ])
        .args([
            "--variable",
            // A cache of its own: the pipeline is what this test is about; cache sharing
            // between concurrent archgate processes is left to its own test (issue 9).
            &format!("ARCHGATE_CACHE={}", dir.path().join("cache").display()),
        ])
        .args(["--variable", &format!("CI_REGISTRY_IMAGE={host}/team/app")])
        .args([
            "--variable",
            &format!("ARCHGATE_ATTEST__KEY={}", attest_key.display()),
        ])
        .args([
            "--variable",
            &format!("ARCHGATE_PROMOTE_KEY={}", attest_pub.display()),
        ])
        .env_remove("ARCHGATE_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("gitlab-ci-local");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pipeline failed:\n{stdout}\n{stderr}");
    for job in [
        "build: [amd64]",
        "build: [arm64]",
        "build: [mips64le]",
        "merge",
        "verify",
        "promote",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("PASS") && l.trim_end().ends_with(job)),
            "no PASS line for {job}:\n{stdout}"
        );
    }

    // The merge job gathered the three build digests; the verify job gated that index.
    let sha = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "--short=8", "HEAD"])
            .current_dir(&project)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let index_bytes = skopeo_raw(&registry, &format!("{host}/team/app:{}", sha.trim()));
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(3),
        "{index}"
    );
    let report_dir = project.join("archgate-report");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(report_dir.join("report.json")).expect("the verify job's report.json"),
    )
    .unwrap();
    assert_eq!(report["gate"]["coverage"], "3/3", "{report:#}");
    assert_eq!(
        report["verification"]["index_digest"],
        archgate::image::Digest::of(&index_bytes).to_string(),
        "verify gated exactly the merged index"
    );
    // The promote job tagged exactly the verified index, its attestation in place.
    let release = skopeo_raw(&registry, &format!("{host}/team/app:release"));
    assert_eq!(
        release, index_bytes,
        "the release tag is the verified index"
    );
    assert!(report["attestation"]["digest"].is_string(), "{report:#}");
    let junit = std::fs::read_to_string(report_dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 3);
}
