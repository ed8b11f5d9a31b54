//! Test harness: temporary directories, the archgate binary (`TestCommand`), real registries
//! (Debian's `docker-registry`, distribution 2.8, on 127.0.0.1 only) and a small
//! three-platform image set pushed through archgate's own store.

// One integration-test binary: each area's module uses a different part of the harness.
#![allow(dead_code)]

pub mod command;
pub mod containerd;
pub mod faults;
pub mod images;
pub mod jre;
pub mod registry;
pub mod service;

pub use command::{Running, TestCommand, TestOutput};
pub use images::{Flavor, image_set, image_set_with_env, large_image_set, push_image_set};
pub use registry::{TestRegistry, skopeo_raw};

/// The built `archgate` binary with a clean environment: [`TestCommand::new`].
pub fn archgate() -> TestCommand {
    TestCommand::new()
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("archgate-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Another tool's (skopeo's) exit code, stdout and stderr, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The result of `platform` in a `verify --json` (or report.json) result.
pub fn platform_result<'a>(v: &'a serde_json::Value, platform: &str) -> &'a serde_json::Value {
    v["platforms"]
        .as_array()
        .unwrap_or_else(|| panic!("no platforms array: {v:#}"))
        .iter()
        .find(|x| x["platform"] == platform)
        .unwrap_or_else(|| panic!("{platform} not in the result: {v:#}"))
}

/// The check named `name` (`native-libs`, `command:NAME`, …) of `platform`.
pub fn verify_check<'a>(
    v: &'a serde_json::Value,
    platform: &str,
    name: &str,
) -> &'a serde_json::Value {
    platform_result(v, platform)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} for {platform}: {v:#}"))
}
