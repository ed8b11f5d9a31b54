//! Integration tests: a signal during `archgate run` (hole 7 of issue 18).
//! The real JREs under real QEMU and bubblewrap; the signal is sent by kill(1)
//! while the run is unpacking or executing, as a GitLab cancel would.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::jre::{Entry, debian_arch, shared_cache, write_index};
use crate::common::{Running, archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

/// A layout of the three JRE images; its location.
fn jre_layout(dir: &Path) -> String {
    let entries: Vec<Entry> = THREE
        .iter()
        .map(|p| Entry::jre(p, debian_arch(p)))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(dir, &entries, "v1"));
    format!("oci:{}:v1", dir.display())
}

/// `archgate run --image IMAGE` in its own process group, in the background.
fn start_run(cwd: &Path, image: &str, cache: &Path) -> Running {
    archgate()
        .current_dir(cwd)
        .args(["run", "--image", image, "--report-dir"])
        .arg(cwd.join("report"))
        .env("ARCHGATE_CACHE", cache)
        .own_process_group()
        .spawn()
}

/// One process from /proc/PID/stat: (pid, comm, state, ppid, pgrp).
type Proc = (u32, String, char, u32, u32);

fn processes() -> Vec<Proc> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID PGRP …`; COMM may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        let state = rest[0].chars().next().unwrap_or('?');
        let (Ok(ppid), Ok(pgrp)) = (rest[1].parse(), rest[2].parse()) else {
            continue;
        };
        all.push((pid, comm, state, ppid, pgrp));
    }
    all
}

/// Processes of the run's group or children of it, zombies included.
fn left_behind(group: u32) -> Vec<Proc> {
    processes()
        .into_iter()
        .filter(|p| p.4 == group || p.3 == group)
        .collect()
}

/// Waits (at most `limit`) until `ready` holds; panics naming `what` otherwise.
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "never saw {what} in {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn staging(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("rootfs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".unpack-"))
                .collect()
        })
        .unwrap_or_default()
}

fn sandbox_children(pid: u32) -> bool {
    processes().iter().any(|p| p.3 == pid && p.1 == "bwrap")
}

fn report_json(cwd: &Path) -> Value {
    let text = std::fs::read_to_string(cwd.join("report/report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// The report of a cancelled run: the error, its kind, the exit code, no verdict.
fn assert_cancelled_report(cwd: &Path, signal: &str, code: i32) {
    let r = report_json(cwd);
    assert_eq!(r["exit_code"], code, "{r:#}");
    let name = if code == 130 {
        "interrupted"
    } else {
        "terminated"
    };
    assert_eq!(r["exit"], name, "{r:#}");
    assert_eq!(r["error"]["kind"], "cancelled", "{r:#}");
    assert_eq!(
        r["error"]["message"],
        format!("cancelled by {signal}"),
        "{r:#}"
    );
    assert!(r["gate"].is_null(), "a cancelled run has no verdict: {r:#}");
    for name in ["junit.xml", "coverage.md"] {
        let text = std::fs::read_to_string(cwd.join("report").join(name)).expect(name);
        assert!(
            text.contains(&format!("cancelled by {signal}")),
            "{name}: {text}"
        );
    }
    let env = std::fs::read_to_string(cwd.join("report/archgate.env")).expect("archgate.env");
    assert!(env.contains(&format!("AG_EXIT_CODE={code}\n")), "{env}");
}

#[test]
fn regression_hole_7_sigterm_mid_unpack_removes_staging_writes_reports_exits_143() {
    let dir = tempdir();
    let image = jre_layout(&dir.path().join("layout"));
    // A cold cache: the run must unpack three JRE roots (≈ 200 MB each).
    let cache = dir.path().join("cache");
    let run = start_run(dir.path(), &image, &cache);
    let pid = run.pid();
    wait_until(
        "an unpack staging directory",
        Duration::from_secs(120),
        || !staging(&cache).is_empty(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    run.signal("TERM");
    let out = run.wait();
    let took = sent.elapsed();
    out.assert_code(143);
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert_eq!(
        out.stderr().matches("cancelled by SIGTERM").count(),
        1,
        "one line says why: {}",
        out.stderr()
    );
    assert_eq!(staging(&cache), Vec::<String>::new(), "staging left behind");
    assert_eq!(
        left_behind(pid),
        Vec::<Proc>::new(),
        "processes left behind"
    );
    assert_cancelled_report(dir.path(), "SIGTERM", 143);
}

#[test]
fn regression_hole_7_sigint_mid_emulation_kills_the_sandbox_and_exits_130() {
    let dir = tempdir();
    let image = jre_layout(&dir.path().join("layout"));
    // The shared cache: roots already unpacked, so the run reaches `java -version`.
    let run = start_run(dir.path(), &image, &shared_cache());
    let pid = run.pid();
    wait_until("a sandboxed child", Duration::from_secs(300), || {
        sandbox_children(pid)
    });
    run.signal("INT");
    let out = run.wait();
    out.assert_code(130);
    assert_eq!(
        left_behind(pid),
        Vec::<Proc>::new(),
        "processes left behind"
    );
    assert_cancelled_report(dir.path(), "SIGINT", 130);
}
