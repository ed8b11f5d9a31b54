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
