//! Integration tests: the command line as a user meets it (exit codes, one-line
//! errors, `archgate config`).

use std::path::Path;

use crate::common::command::read_by_archgate;
use crate::common::{TestCommand, TestOutput};

fn archgate_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> TestOutput {
    TestCommand::new()
        .current_dir(dir)
        .args(args)
        .envs(env)
        .output()
}

#[test]
fn mistyped_config_key_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        "[registires.\"10.0.0.5:5000\"]\nhttp = true\n",
    )
    .unwrap();
    let out = archgate_in(dir.path(), &["config"], &[]);
    assert_eq!(out.code(), Some(2), "{out}");
    let err = out.stderr();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown key `registires`") && err.contains("did you mean `registries`"),
        "{err}"
    );
    assert!(err.contains("archgate.toml"), "{err}");
}

#[test]
fn wrong_type_and_bad_host_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.toml");
    std::fs::write(&file, "[network]\nconcurrency = \"lots\"\n").unwrap();
    let out = archgate_in(
        dir.path(),
        &["--config", file.to_str().unwrap(), "config"],
        &[],
    );
    assert_eq!(out.code(), Some(2));
    let err = out.stderr();
    assert!(
        err.contains("custom.toml")
            && err.contains("network.concurrency")
            && err.contains("expected"),
        "{err}"
    );

    std::fs::write(&file, "[registries.\"host::5000\"]\nhttp = true\n").unwrap();
    let out = archgate_in(
        dir.path(),
        &["config"],
        &[("ARCHGATE_CONFIG", file.to_str().unwrap())],
    );
    assert_eq!(out.code(), Some(2));
    let err = out.stderr();
    assert!(
        err.contains("malformed registry host `host::5000`") && err.contains("HOST[:PORT]"),
        "{err}"
    );
}

#[test]
fn config_prints_layers_with_origins_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        "image = \"oci:out/app:{git_short_sha}\"\n[registries.\"127.0.0.1:5999\"]\nhttp = true\npassword = \"file-secret-123\"\n[network]\nretries = 1\n",
    )
    .unwrap();
    let out = archgate_in(
        dir.path(),
        &["-vv", "config"],
        &[
            ("ARCHGATE_NETWORK__RETRIES", "6"),
            ("CI_REGISTRY_PASSWORD", "ci-secret-456"),
            ("CI_COMMIT_SHORT_SHA", "abc12345"),
        ],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    let text = out.stdout();
    assert!(
        text.contains("network.retries = 6")
            && text.contains("# environment ARCHGATE_NETWORK__RETRIES"),
        "{text}"
    );
    assert!(
        text.contains("ci.commit_short_sha = \"abc12345\"")
            && text.contains("# CI variable CI_COMMIT_SHORT_SHA"),
        "{text}"
    );
    assert!(
        text.contains("image = \"oci:out/app:{git_short_sha}\""),
        "{text}"
    );
    let all = text.to_string() + out.stderr();
    assert!(
        !all.contains("file-secret-123") && !all.contains("ci-secret-456"),
        "{all}"
    );

    let out = archgate_in(
        dir.path(),
        &["config", "--json"],
        &[("CI_REGISTRY_PASSWORD", "ci-secret-456")],
    );
    let json = out.json();
    assert_eq!(
        json["settings"]["registries"]["127.0.0.1:5999"]["password"],
        "***"
    );
    assert_eq!(json["settings"]["ci"]["registry_password"], "***");
}

#[test]
fn bad_locations_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (arg, want) in [
        ("host::5000/app:v1", "malformed registry host"),
        ("oci:", "path is empty"),
        ("10.0.0.5:5000/App:v1", "lowercase"),
    ] {
        let out = archgate_in(dir.path(), &["inspect", arg], &[]);
        assert_eq!(out.code(), Some(2), "{arg}: {out}");
        assert!(out.stderr().contains(want), "{arg}: {out}");
    }
    let out = archgate_in(dir.path(), &["inspect"], &[]);
    assert_eq!(out.code(), Some(2), "missing argument is a usage error");
    let out = archgate_in(dir.path(), &["--help"], &[]);
    assert_eq!(out.code(), Some(0));
    assert!(
        out.stdout().contains("Exit codes:"),
        "--help documents exit codes"
    );
}

/// The bug: cli.rs started the binary its own way and forgot to clear
/// `ARCHGATE_LOG_FORMAT`, so a developer's `ARCHGATE_LOG_FORMAT=json` turned
/// every error line these tests read into JSON. The one builder clears every
/// variable archgate reads and keeps the ones a process needs.
#[test]
fn harness_clears_archgate_log_format() {
    for leak in [
        "ARCHGATE_LOG_FORMAT",
        "ARCHGATE_LOG",
        "ARCHGATE_CONFIG",
        "ARCHGATE_CACHE",
        "GITLAB_CI",
        "CI",
        "CI_REGISTRY_PASSWORD",
        "BUILD_NUMBER",
        "DOCKER_AUTH_CONFIG",
        "SOURCE_DATE_EPOCH",
    ] {
        assert!(read_by_archgate(leak), "{leak} must be cleared");
    }
    for kept in ["PATH", "HOME", "XDG_CACHE_HOME", "TMPDIR", "CIRCLE"] {
        assert!(!read_by_archgate(kept), "{kept} must be kept");
    }
    // And the binary run through it logs as text: the error is a plain line.
    let dir = crate::common::tempdir();
    let out = archgate_in(dir.path(), &["inspect", "oci:"], &[]);
    out.assert_code(2);
    assert!(out.stderr().starts_with("error: "), "{out}");
}

/// Hole 5: `UPPER/case` is a Docker Hub path (its first part holds no `.` or
/// `:`), refused by the lowercase rule at parse time: exit 2, never a host
/// name to look up (which took a DNS round trip and exited 3).
#[test]
fn regression_hole_5_uppercase_reference_is_a_usage_error_without_a_lookup() {
    let dir = tempfile::tempdir().unwrap();
    for reference in ["UPPER/case:tag", "team/App:v1"] {
        let out = archgate_in(dir.path(), &["inspect", reference], &[]);
        assert_eq!(out.code(), Some(2), "{out}");
        let err = out.stderr();
        assert!(
            err.contains(&format!("`{reference}`")) && err.contains("must be lowercase"),
            "{err}"
        );
        assert!(!err.contains("resolve"), "no lookup: {err}");
    }
}

/// Holes 5 and 6: an unusable `--report-dir` is found when the settings are
/// loaded (exit 2), before any phase runs or any verdict is printed.
#[test]
fn regression_hole_5_unusable_report_dir_is_a_usage_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "not a directory\n").unwrap();
    let out = archgate_in(
        dir.path(),
        &[
            "run",
            "--image",
            "oci:missing:v1",
            "--report-dir",
            "a-file/reports",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr().contains("report directory `a-file/reports`")
            && out.stderr().contains("--report-dir"),
        "{out}"
    );
    assert!(
        !out.stdout().contains("verify") && !out.stdout().contains("gate:"),
        "nothing ran: {out}"
    );
    let out = archgate_in(
        dir.path(),
        &["verify", "oci:missing:v1", "--report-dir", "a-file"],
        &[],
    );
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr().contains("`a-file` is not a directory"),
        "{out}"
    );
    assert!(!out.stderr().contains("not found"), "checked first: {out}");
}

/// Hole 11: every subcommand's help stands alone: the location forms, how to
/// reach a plain-HTTP registry, one example.
#[test]
fn regression_hole_11_each_subcommand_help_lists_locations_http_and_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        "inspect", "build", "merge", "mirror", "verify", "run", "config",
    ] {
        let out = archgate_in(dir.path(), &[command, "--help"], &[]);
        assert_eq!(out.code(), Some(0), "{out}");
        for needle in [
            "HOST[:PORT]/NAME[:TAG|@DIGEST]",
            "oci:DIR[:TAG|@DIGEST]",
            "oci-archive:FILE[:TAG|@DIGEST]",
            "http = true",
            "Example:",
            &format!("archgate {command}"),
        ] {
            assert!(out.stdout().contains(needle), "{command}: {needle}\n{out}");
        }
    }
}

/// Hole 11: `archgate verify` without IMAGE says, in one stderr line, which
/// image it took and where the `image` value came from.
#[test]
fn regression_hole_11_verify_without_image_names_the_default_and_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let line = |out: &TestOutput| {
        out.stderr()
            .lines()
            .filter(|l| l.contains("no IMAGE given"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let out = archgate_in(dir.path(), &["verify"], &[]);
    let said = line(&out);
    assert_eq!(said.len(), 1, "{out}");
    assert!(
        said[0].contains("`oci:archgate-out/image:latest`") && said[0].contains("default"),
        "{out}"
    );
    std::fs::write(
        dir.path().join("archgate.toml"),
        "image = \"oci:from-file:v3\"\n",
    )
    .unwrap();
    let out = archgate_in(dir.path(), &["verify"], &[]);
    let said = line(&out);
    assert!(
        said.len() == 1
            && said[0].contains("`oci:from-file:v3`")
            && said[0].contains("archgate.toml"),
        "{out}"
    );
    let out = archgate_in(dir.path(), &["verify", "oci:given:v1"], &[]);
    assert!(line(&out).is_empty(), "{out}");
}
