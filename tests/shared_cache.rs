//! Several archgate processes on one cache directory at once, as CI jobs on one
//! runner share `~/.cache/archgate` (issue 9: the GitLab pipeline test failed
//! once in four full-suite runs while other tests used its cache). Each round
//! starts on a fresh cache so every process finds nothing and works on the same
//! keys at the same time: the same layers written, the same roots unpacked.

use std::path::Path;

use serde_json::Value;

use crate::common::jre::{Entry, debian_arch, write_index};
use crate::common::{Running, TestCommand, TestOutput, archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];
/// Processes started together on one cache.
const PROCESSES: usize = 4;

/// Starts every command at once, then waits for all of them.
fn all_at_once(cmds: Vec<TestCommand>) -> Vec<TestOutput> {
    let running: Vec<Running> = cmds.into_iter().map(|mut c| c.spawn()).collect();
    running.into_iter().map(Running::wait).collect()
}

/// Asserts that every process succeeded and that `what` it gave is the same
/// for all of them.
fn all_succeed_alike<T: PartialEq + std::fmt::Debug>(
    round: usize,
    outs: &[TestOutput],
    what: impl Fn(usize, &TestOutput) -> T,
) {
    let mut first: Option<T> = None;
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(out.code(), Some(0), "round {round}: process {i}: {out}");
        let got = what(i, out);
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(&got, f, "round {round}: process {i} disagrees"),
        }
    }
}

/// The sum of `count` over every process.
fn total(outs: &[TestOutput], count: impl Fn(&TestOutput) -> usize) -> usize {
    outs.iter().map(count).sum()
}

/// Each platform's outcome and its checks' outcomes: what must not depend on
/// which process unpacked a root.
fn verdicts(v: &Value) -> Vec<String> {
    let mut out = vec![format!("outcome {}", v["outcome"])];
    for p in v["platforms"].as_array().expect("platforms array") {
        out.push(format!("{} {}", p["platform"], p["outcome"]));
        for c in p["checks"].as_array().expect("checks array") {
            out.push(format!("{} {} {}", p["platform"], c["name"], c["outcome"]));
        }
    }
    out
}

/// Nothing half-made is left: no staged root, no temporary blob.
fn assert_tidy(cache: &Path) {
    for sub in ["rootfs", "blobs/sha256", "layers/index"] {
        let Ok(read) = std::fs::read_dir(cache.join(sub)) else {
            continue;
        };
        let left: Vec<String> = read
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "left in {sub}: {left:?}");
    }
}

#[test]
fn concurrent_verifies_on_one_fresh_cache_all_pass_with_the_same_verdicts() {
    let dir = tempdir();
    let entries: Vec<Entry> = THREE
        .iter()
        .map(|p| Entry::jre(p, debian_arch(p)))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let index = rt.block_on(write_index(&dir.path().join("layout"), &entries, "v1"));
    let image = format!("oci:{}:v1", dir.path().join("layout").display());
    for round in 0..2 {
        let cache = dir.path().join(format!("cache-{round}"));
        // The static runner: the race is in the cache (blobs, unpacked roots),
        // not in running Java, and QEMU four times over would only slow it down.
        let cmds = (0..PROCESSES)
            .map(|_| {
                let mut c = archgate();
                c.args(["-v", "verify", "--json", "--runner", "static", &image])
                    .env("ARCHGATE_CACHE", &cache)
                    // What the static runner skips is accepted here (issue 18, hole 4).
                    .env(
                        "ARCHGATE_GATE__WAIVE_SKIPPED",
                        "[\"java-version\", \"java-os-arch\"]",
                    );
                c
            })
            .collect();
        let outs = all_at_once(cmds);
        // Each root unpacked by one process; every other one waited and found it.
        let reused = total(&outs, |o| {
            o.stderr().matches("unpacked root from the cache").count()
        });
        assert_eq!(
            reused,
            (PROCESSES - 1) * THREE.len(),
            "round {round}: roots unpacked more than once per platform"
        );
        all_succeed_alike(round, &outs, |_, out| {
            let v = out.json();
            assert_eq!(v["index_digest"], index.to_string(), "round {round}");
            verdicts(&v)
        });
        // One root per platform, whoever unpacked it.
        let roots: Vec<_> = std::fs::read_dir(cache.join("rootfs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(roots.len(), THREE.len(), "round {round}: {roots:?}");
        assert_tidy(&cache);
    }
}

/// A context of `jdk-ARCH/` trees with a few MB of incompressible-ish files
/// each, so writing a layer takes long enough for processes to overlap.
fn build_context(dir: &Path) {
    for arch in ["amd64", "arm64", "mips64le"] {
        let root = dir.join(format!("jdk-{arch}/lib"));
        std::fs::create_dir_all(&root).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ arch.len() as u64;
        for f in 0..6 {
            let bytes: Vec<u8> = (0..(1 << 20))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 61) as u8
                })
                .collect();
            std::fs::write(root.join(format!("lib{f}-{arch}.so")), bytes).unwrap();
        }
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nADD jdk-${TARGETARCH} /opt/jdk\nENV JAVA_HOME=/opt/jdk\n",
    )
    .unwrap();
}

#[test]
fn concurrent_builds_on_one_fresh_cache_publish_one_index_digest() {
    let dir = tempdir();
    let ctx = dir.path().join("context");
    build_context(&ctx);
    for round in 0..3 {
        let cache = dir.path().join(format!("cache-{round}"));
        let cmds = (0..PROCESSES)
            .map(|i| {
                let out = dir.path().join(format!("out-{round}-{i}"));
                let mut c = archgate();
                c.current_dir(&ctx)
                    .args(["build", "--platform", &THREE.join(",")])
                    .arg("--image")
                    .arg(format!("oci:{}:v1", out.display()))
                    .arg(".")
                    .env("ARCHGATE_CACHE", &cache);
                c
            })
            .collect();
        let outs = all_at_once(cmds);
        // Each layer written by one process; every other one waited and found it.
        let written = total(&outs, |o| {
            o.stdout()
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_suffix(" layer(s) written to the layer cache")
                })
                .map_or(0, |n| n.parse::<usize>().unwrap())
        });
        assert_eq!(
            written,
            THREE.len(),
            "round {round}: layers written more than once"
        );
        all_succeed_alike(round, &outs, |i, out| {
            out.stdout()
                .lines()
                .next()
                .and_then(|l| l.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| panic!("process {i}: no index digest printed: {out}"))
        });
        // One layer per platform, each recorded once in the index.
        let count = |sub: &str| std::fs::read_dir(cache.join(sub)).unwrap().count();
        // Built layers live in the cache's one blob directory.
        assert_eq!(count("blobs/sha256"), THREE.len(), "round {round}");
        assert_eq!(count("layers/index"), THREE.len(), "round {round}");
        assert_tidy(&cache);
    }
}
