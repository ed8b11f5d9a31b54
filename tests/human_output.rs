//! Snapshots (insta) of what a person reads: the human output of every
//! command — build, merge, mirror, inspect, verify, run, config — the
//! coverage.md report and one error. A change to any of them shows up as a
//! snapshot diff in review (`cargo insta review`, or `INSTA_UPDATE=always`
//! then `git diff tests/snapshots/`).
//!
//! Everything that varies between runs or machines is filtered: digests,
//! temporary paths, ports, durations, transfer rates and versions. The images
//! are built with a fixed `SOURCE_DATE_EPOCH`, so sizes stay put.

use std::path::Path;

use crate::common::jre::{Entry, write_index};
use crate::common::{TestCommand, TestOutput, archgate, tempdir};

/// Any fixed time: the built images (and so their sizes) do not depend on the clock.
const EPOCH: &str = "1700000000";

/// The filters for one test whose files live under `dir`.
fn settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    // The temporary directory first: it may contain digits other filters would eat.
    let dir = dir.display().to_string();
    s.add_filter(&regex::escape(&dir), "[tmp]");
    s.add_filter(r"/tmp/[A-Za-z0-9_.-]+", "[tmp]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[hex]");
    // Tables show digests cut to 12 hex digits.
    s.add_filter(r"sha256:[0-9a-f]{12}\b", "sha256:[short]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    s.add_filter(r"\b\d+(\.\d+)? ?[KMGT]?i?B/s\b", "[rate]");
    s.add_filter(r"\b\d+(\.\d+)? ?(ns|µs|us|ms|s)\b", "[duration]");
    s.add_filter(r"archgate \d+\.\d+\.\d+\S*", "archgate [version]");
    s
}

/// What a person sees of a run: the exit code, then stdout.
fn screen(out: &TestOutput) -> String {
    format!("{}\n{}", exit(out), out.stdout())
}

/// `exit N` (or `killed` when a signal ended the run).
fn exit(out: &TestOutput) -> String {
    out.code()
        .map_or_else(|| "killed".to_string(), |c| format!("exit {c}"))
}

/// archgate in `dir` with its own cache and the fixed build time.
fn archgate_in(dir: &Path) -> TestCommand {
    let mut cmd = archgate();
    cmd.current_dir(dir)
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .env("SOURCE_DATE_EPOCH", EPOCH);
    cmd
}

/// A build context: a Dockerfile that copies one file per architecture.
fn context(dir: &Path) {
    for arch in ["amd64", "arm64"] {
        std::fs::write(
            dir.join(format!("app-{arch}.txt")),
            format!("built for {arch}\n"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH}.txt /app/app.txt\n\
         ENV APP_HOME=/app\nLABEL org.opencontainers.image.title=snapshot\n\
         CMD [\"/app/run\"]\n",
    )
    .unwrap();
}

/// build, then merge two single-platform builds, mirror the index into an
/// archive and inspect it there: four commands, four snapshots.
#[test]
fn build_merge_mirror_inspect() {
    let tmp = tempdir();
    let dir = tmp.path();
    context(dir);
    // Two platforms make this release (the default three would be required).
    std::fs::write(
        dir.join("archgate.toml"),
        "platforms = [\"linux/amd64\", \"linux/arm64\"]\n",
    )
    .unwrap();
    let oci = |name: &str| format!("oci:{}:v1", dir.join(name).display());
    let _guard = settings(dir).bind_to_scope();

    let out = archgate_in(dir)
        .args(["build", "--platform", "linux/amd64,linux/arm64"])
        .args(["--image", &oci("built"), "."])
        .output();
    out.assert_code(0);
    insta::assert_snapshot!("build", screen(&out));

    for platform in ["linux/amd64", "linux/arm64"] {
        let arch = platform.trim_start_matches("linux/");
        archgate_in(dir)
            .args(["build", "--platform", platform, "--image", &oci(arch), "."])
            .assert_success();
    }
    let out = archgate_in(dir)
        .args([
            "merge",
            "--target",
            &oci("merged"),
            &oci("amd64"),
            &oci("arm64"),
        ])
        .output();
    out.assert_code(0);
    insta::assert_snapshot!("merge", screen(&out));

    let archive = format!("oci-archive:{}:v1", dir.join("merged.tar").display());
    let out = archgate_in(dir)
        .args(["mirror", &oci("merged"), &archive])
        .output();
    out.assert_code(0);
    insta::assert_snapshot!("mirror", screen(&out));

    let out = archgate_in(dir).args(["inspect", &archive]).output();
    out.assert_code(0);
    insta::assert_snapshot!("inspect", screen(&out));
}

/// verify (static runner: no emulator needed for a snapshot) and run on a
/// real amd64 JRE image, and the coverage.md that run writes.
#[test]
fn verify_run_and_coverage() {
    let tmp = tempdir();
    let dir = tmp.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(
        &dir.join("jre"),
        &[Entry::jre("linux/amd64", "amd64")],
        "v1",
    ));
    let image = format!("oci:{}:v1", dir.join("jre").display());
    let _guard = settings(dir).bind_to_scope();

    let out = archgate_in(dir)
        .args(["verify", "--runner", "static", &image])
        .output();
    insta::assert_snapshot!("verify", screen(&out));

    let report = dir.join("report");
    std::fs::write(
        dir.join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\"]\n[verify]\nrunner = \"static\"\n[report]\ndir = {:?}\n",
            report.display().to_string()
        ),
    )
    .unwrap();
    let out = archgate_in(dir).args(["run", "--image", &image]).output();
    insta::assert_snapshot!("run", screen(&out));
    let coverage = std::fs::read_to_string(report.join("coverage.md"))
        .unwrap_or_else(|e| panic!("coverage.md: {e}\n{out}"));
    insta::assert_snapshot!("coverage_md", coverage);
}

/// `archgate config`: every setting with the layer it came from.
#[test]
fn config() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("archgate.toml"),
        "image = \"oci:out/app:{git_short_sha}\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         [registries.\"127.0.0.1:5999\"]\nhttp = true\npassword = \"not-shown\"\n",
    )
    .unwrap();
    let _guard = settings(dir).bind_to_scope();
    let out = archgate_in(dir)
        .arg("config")
        .env("ARCHGATE_NETWORK__RETRIES", "6")
        .env("CI_COMMIT_SHORT_SHA", "abc12345")
        .output();
    out.assert_code(0);
    insta::assert_snapshot!("config", screen(&out));
}

/// An error as a person meets it: one line on stderr naming the file, the
/// key and the fix, and exit 2.
#[test]
fn error_for_a_mistyped_key() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("archgate.toml"),
        "[registires.\"10.0.0.5:5000\"]\nhttp = true\n",
    )
    .unwrap();
    let _guard = settings(dir).bind_to_scope();
    let out = archgate_in(dir).args(["inspect", "oci:out:v1"]).output();
    let screen = format!("{}\n{}", exit(&out), out.stderr());
    insta::assert_snapshot!("error_mistyped_key", screen);
}

/// `archgate attestations` (signature checked and not) and a refused
/// `archgate promote`, on an OCI layout signed by `archgate verify`.
#[tokio::test]
async fn attestations_and_a_refused_promote() {
    let tmp = tempdir();
    let dir = tmp.path();
    let layout = dir.join("layout");
    let store = archgate::store::layout::LayoutStore::open_dir(&layout, true).unwrap();
    let set = crate::common::image_set(crate::common::Flavor::Oci, "snapshot");
    crate::common::push_image_set(&store, &set, Some("v1"))
        .await
        .unwrap();
    std::fs::write(
        dir.join("archgate.toml"),
        "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n\
         [verify]\nrunner = \"static\"\n[verify.java]\nrequired = false\n\
         [gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n",
    )
    .unwrap();
    let (key, public) = crate::attest::keypair(dir, "attest");
    let (_, other) = crate::attest::keypair(dir, "other");
    let image = format!("oci:{}:v1", layout.display());
    archgate_in(dir)
        .env("ARCHGATE_ATTEST__KEY", &key)
        .args(["verify", &image])
        .output()
        .assert_code(0);
    let s = settings(dir);
    let listed = archgate_in(dir)
        .args(["attestations", &image, "--key"])
        .arg(&public)
        .output();
    s.bind(|| insta::assert_snapshot!("attestations", screen(&listed)));
    let refused = archgate_in(dir)
        .args(["promote", &image])
        .arg(format!("oci:{}:1.0", dir.join("release").display()))
        .arg("--key")
        .arg(&other)
        .output();
    let text = format!("{}\n{}", exit(&refused), refused.stderr());
    s.bind(|| insta::assert_snapshot!("promote_refused", text));
    assert!(!dir.join("release").exists(), "nothing written on refusal");
}
