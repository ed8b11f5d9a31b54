//! The cache stops growing forever (issue 18, hole 9): `archgate cache prune`
//! removes least recently *used* entries first and skips what another process
//! holds, `cache_max_size` bounds the cache at the end of every verify, and
//! roots of images sharing layers share their files on disk.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use serde_json::Value;

use crate::common::images::noise;
use crate::common::jre::{Entry, Layer, write_index};
use crate::common::{TestCommand, TestOutput, archgate, tempdir};

const MIB: usize = 1 << 20;

/// A one-platform layout image whose one layer holds `NAME.bin` (1 MiB of
/// noise) and no JDK: verify unpacks it and fails at `jdk-found`.
fn small_image(dir: &Path, name: &str, seed: u64) -> String {
    let mut header = tar::Header::new_gnu();
    header.set_size(MIB as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, format!("{name}.bin"), &noise(seed, MIB)[..])
        .unwrap();
    let entry = Entry {
        index_platform: "linux/amd64".into(),
        config_platform: "linux/amd64".into(),
        layers: vec![Layer::gzip(Bytes::from(tar.into_inner().unwrap()))],
        env: vec!["PATH=/bin".into()],
        runtime: serde_json::Value::Null,
    };
    let layout = dir.join(format!("layout-{name}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(&layout, &[entry], "v1"));
    format!("oci:{}:v1", layout.display())
}

/// `archgate` on `cache`, with the static runner.
fn on(cache: &Path) -> TestCommand {
    let mut c = archgate();
    c.env("ARCHGATE_CACHE", cache)
        .env("ARCHGATE_VERIFY__RUNNER", "static");
    c
}

fn ok(out: TestOutput) -> TestOutput {
    out.assert_code(0);
    out
}

/// Verifies a [`small_image`]: its root is unpacked (`layers` passed), and
/// the gate fails for want of a JDK.
fn verify(cache: &Path, image: &str) {
    verify_with(on(cache), image);
}

fn verify_with(mut cmd: TestCommand, image: &str) {
    let out = cmd
        .args(["verify", "--json", "--platform", "linux/amd64", image])
        .output();
    out.assert_code(1);
    let v: Value = out.json();
    let layers = &v["platforms"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "layers")
        .unwrap_or_else(|| panic!("no layers check: {v:#}"))["outcome"];
    assert_eq!(layers, "passed", "{v:#}");
}

fn prune(cache: &Path, args: &[&str]) -> Value {
    let out = ok(on(cache)
        .args(["cache", "prune", "--json"])
        .args(args)
        .output());
    out.json()
}

/// The names of the `*.bin` files of every cached root: which images' roots remain.
fn roots(cache: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for root in std::fs::read_dir(cache.join("rootfs")).unwrap() {
        let root = root.unwrap();
        if root.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for f in std::fs::read_dir(root.path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".bin") {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    out
}

/// The root directory holding `NAME.bin`.
fn root_of(cache: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(cache.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(format!("{name}.bin")).exists())
        .unwrap_or_else(|| panic!("no root holds {name}.bin"))
}

/// Disk usage of everything under `dirs`, each inode once (what `du` says of them together).
fn disk_usage(dirs: &[PathBuf]) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        if seen.insert((m.dev(), m.ino())) {
            *total += m.blocks() * 512;
        }
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), seen, total);
            }
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for d in dirs {
        walk(d, &mut seen, &mut total);
    }
    total
}

fn cache_usage(cache: &Path) -> u64 {
    disk_usage(&["blobs", "rootfs", "files", "layers"].map(|d| cache.join(d)))
}

/// Every path under `dir` with its inode: a snapshot to compare.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.ino()));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn pause() {
    // Uses must be apart by more than archgate's slack on file times (100 ms).
    std::thread::sleep(std::time::Duration::from_millis(300));
}

#[test]
fn prune_by_size_removes_the_least_recently_used_first_and_keeps_the_recently_used() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let [a, b, c] = ["a", "b", "c"].map(|n| small_image(dir.path(), n, n.as_bytes()[0] as u64));
    for image in [&a, &b, &c] {
        verify(&cache, image);
        pause();
    }
    // a was made first but is used again now: b is the least recently used.
    verify(&cache, &a);
    assert_eq!(roots(&cache), ["a", "b", "c"]);
    let before = cache_usage(&cache);
    let report = prune(
        &cache,
        &["--max-size", &format!("{}", before - MIB as u64 / 2)],
    );
    assert_eq!(roots(&cache), ["a", "c"], "{report:#}");
    let after = cache_usage(&cache);
    assert_eq!(report["before"], before, "{report:#}");
    assert_eq!(report["after"], after, "{report:#}");
    assert!(after <= before - MIB as u64, "{before} → {after}");
    // And the text output names what went and the sizes.
    let out = ok(on(&cache)
        .args(["cache", "prune", "--max-size", "0"])
        .output());
    let shown = out.stdout();
    assert!(shown.contains("removed root"), "{shown}");
    assert!(shown.contains("before, after"), "{shown}");
    assert!(roots(&cache).is_empty(), "{shown}");
}

#[test]
fn prune_skips_an_entry_another_process_holds_locked() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let [a, b] =
        ["a", "b"].map(|n| small_image(dir.path(), n, 7 + n.len() as u64 + n.as_bytes()[0] as u64));
    verify(&cache, &a);
    verify(&cache, &b);
    let key = root_of(&cache, "a")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Another process uses a's root, as verify's sandbox does: a shared use lock.
    let lock = cache.join("locks").join(format!("use-rootfs-{key}.lock"));
    // --close: the lock is flock's own, not inherited by sleep, so killing flock lets go.
    let mut holder = Command::new("flock")
        .args(["--shared", "--close"])
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    // flock(1) holds the lock once it runs sleep.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::File::open(&lock).unwrap().try_lock().is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "flock never took {lock:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = prune(&cache, &["--max-size", "0"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(roots(&cache), ["a"], "{report:#}");
    let in_use = report["in_use"].to_string();
    assert!(in_use.contains(&key), "{report:#}");
    // Once let go, it can go.
    prune(&cache, &["--max-size", "0"]);
    assert!(roots(&cache).is_empty());
}

#[test]
fn the_automatic_bound_keeps_the_cache_under_the_limit_after_two_verifies_of_different_images() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let [a, b] = ["a", "b"].map(|n| small_image(dir.path(), n, 100 + n.as_bytes()[0] as u64));
    let limit = 3 * MIB as u64 / 2;
    for image in [&a, &b] {
        let mut cmd = on(&cache);
        cmd.env("ARCHGATE_CACHE_MAX_SIZE", format!("{limit}B"));
        verify_with(cmd, image);
        pause();
    }
    // b's run kept its own root and removed a's, the least recently used.
    assert_eq!(roots(&cache), ["b"]);
    let used = cache_usage(&cache);
    assert!(used <= limit, "{used} > {limit}");
    // `off` turns the bound off.
    let mut cmd = on(&cache);
    cmd.env("ARCHGATE_CACHE_MAX_SIZE", "off");
    verify_with(cmd, &a);
    assert_eq!(roots(&cache), ["a", "b"]);
}

#[test]
fn dry_run_removes_nothing() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let [a, b] = ["a", "b"].map(|n| small_image(dir.path(), n, 200 + n.as_bytes()[0] as u64));
    verify(&cache, &a);
    verify(&cache, &b);
    let before = listing(&cache);
    let report = prune(&cache, &["--max-size", "0", "--dry-run"]);
    assert_eq!(listing(&cache), before, "{report:#}");
    assert_eq!(report["removed"].as_array().unwrap().len(), 2, "{report:#}");
    let after = report["after"].as_u64().unwrap();
    assert!(
        after < MIB as u64 / 4,
        "only the directories would stay: {report:#}"
    );
}

#[test]
fn a_bad_size_is_an_input_error_naming_the_flag_and_the_setting() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let out = on(&cache)
        .args(["cache", "prune", "--max-size", "5 parsecs"])
        .output();
    out.assert_code(2);
    out.assert_stderr_contains("--max-size");
    let out = on(&cache)
        .env("ARCHGATE_CACHE_MAX_SIZE", "lots")
        .args(["cache", "prune"])
        .output();
    out.assert_code(2);
    out.assert_stderr_contains("cache_max_size");
}

/// The main job's shape: a JDK image, and a service image FROM it (the JDK
/// layer plus one of its own). Before the pool each root held a full copy.
#[test]
fn shared_layers_take_disk_once_and_verify_still_passes() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jdk = Entry::jre("linux/amd64", "amd64");
    let mut header = tar::Header::new_gnu();
    header.set_size(12);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, "srv/app.conf", &b"port = 8080\n"[..])
        .unwrap();
    let mut service = jdk.clone();
    service
        .layers
        .push(Layer::gzip(Bytes::from(tar.into_inner().unwrap())));
    let mut images = Vec::new();
    for (name, e) in [("jdk", jdk), ("service", service)] {
        let layout = dir.path().join(name);
        rt.block_on(write_index(&layout, &[e], "v1"));
        images.push(format!("oci:{}:v1", layout.display()));
    }
    for image in &images {
        let out = archgate()
            .env("ARCHGATE_CACHE", &cache)
            .args(["verify", "--json", "--platform", "linux/amd64", image])
            .output();
        out.assert_code(0);
        let v: Value = out.json();
        assert_eq!(v["outcome"], "passed", "{v:#}");
    }
    let roots: Vec<PathBuf> = std::fs::read_dir(cache.join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(roots.len(), 2, "{roots:?}");
    let separately: u64 = roots
        .iter()
        .map(|r| disk_usage(std::slice::from_ref(r)))
        .sum();
    let together = disk_usage(&roots);
    eprintln!("two roots: {separately} bytes as copies, {together} bytes shared");
    assert!(
        together * 10 < separately * 6,
        "{together} shared vs {separately} as copies"
    );
    // The same file in both roots is one inode.
    let java = "usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so";
    let inos: HashSet<u64> = roots
        .iter()
        .map(|r| std::fs::metadata(r.join(java)).unwrap().ino())
        .collect();
    assert_eq!(inos.len(), 1, "{java} is stored twice");
}
