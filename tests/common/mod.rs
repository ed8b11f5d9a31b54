//! Test harness: temporary directories, the archgate binary, real registries
//! (Debian's `docker-registry`, distribution 2.8, on 127.0.0.1 only) and a small
//! three-platform image set pushed through archgate's own store.

// One integration-test binary: each area's module uses a different part of the harness.
#![allow(dead_code)]

pub mod faults;
pub mod images;
pub mod jre;
pub mod registry;

use std::process::Command;

pub use images::{Flavor, image_set, image_set_with_env, large_image_set, push_image_set};
pub use registry::{TestRegistry, skopeo_raw};

/// The built `archgate` binary, with the environment that could leak into a
/// test (configuration, log settings, colours) removed.
pub fn archgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_archgate"));
    cmd.env_remove("ARCHGATE_CONFIG")
        .env_remove("ARCHGATE_LOG")
        .env_remove("ARCHGATE_LOG_FORMAT")
        .env("NO_COLOR", "1");
    cmd
}

/// A fresh temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("archgate-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A finished command's exit code, stdout and stderr, for assertion messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
