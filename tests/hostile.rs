//! Integration tests: the hostile-input corpus in tests/hostile/. Every
//! Dockerfile and configuration there is wrong in a way users (or attackers)
//! produce; each must give exit 2 with a clear error containing the file's
//! `# expect:` text — never a panic, never anything published.

use std::path::{Path, PathBuf};

use crate::common::{archgate, tempdir};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus {kind} too small");
    files
}

/// The `# expect: TEXT` line of a corpus file.
fn expectation(file: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()))
        .trim()
        .to_string()
}

fn check(file: &Path, out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(!stderr.contains("panicked"), "{name}: panic\n{stderr}");
    assert_eq!(out.status.code(), Some(2), "{name}: want exit 2\n{stderr}");
    let want = expectation(file);
    assert!(
        stderr.contains(&want),
        "{name}: the error should mention `{want}`:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{name}: one error line\n{stderr}"
    );
    stderr
}

#[test]
fn hostile_dockerfiles_are_refused_clearly_and_publish_nothing() {
    let dir = tempdir();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("x"), "x").unwrap();
    for file in corpus("dockerfiles") {
        let out_dir = dir.path().join("out");
        let out = archgate()
            .current_dir(dir.path())
            .args(["build", "--platform", "linux/amd64", "-f"])
            .arg(&file)
            .arg("--image")
            .arg(format!("oci:{}:v1", out_dir.display()))
            .arg(&ctx)
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .output()
            .unwrap();
        check(&file, &out);
        assert!(
            !out_dir.exists(),
            "{}: something was published",
            file.display()
        );
    }
}

#[test]
fn hostile_configurations_are_refused_naming_the_key() {
    let dir = tempdir();
    for file in corpus("configs") {
        // verify checks every section before it touches an image.
        let out = archgate()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&file)
            .args(["verify", "oci:/nonexistent/archgate-hostile:v1"])
            .output()
            .unwrap();
        let stderr = check(&file, &out);
        assert!(
            !stderr.contains("archgate-hostile"),
            "{}: the configuration is checked first:\n{stderr}",
            file.display()
        );
    }
}
