//! A private containerd (Debian's `containerd` 1.6), the daemon K3s nodes run,
//! as the real consumer of the archives archgate writes: own root, state and
//! sockets under a temporary directory, the `native` snapshotter only, no CRI
//! plugin, stopped (and its mounts released) when dropped. Started by the
//! tests themselves; `scripts/setup.sh` installs the package.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestContainerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl TestContainerd {
    pub fn start() -> Self {
        let dir = super::tempdir();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.overlayfs", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{debug}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("c.sock").display(),
            debug = d.join("debug.sock").display(),
            opt = d.join("opt").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (apt-get install containerd; scripts/setup.sh does)");
        let me = TestContainerd { dir, child };
        let started = Instant::now();
        while !me.socket().exists() || !me.ctr(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "containerd did not start: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a SOCK -n archgate ARGS` with the native snapshotter.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("-a")
            .arg(self.socket())
            .args(["-n", "archgate"])
            .args(args)
            .env("CONTAINERD_SNAPSHOTTER", "native")
            .output()
            .expect("ctr (apt-get install containerd)")
    }

    /// `ctr images import --platform P FILE` (no `--base-name`: the archive's
    /// own names count, as K3s's importer reads them), which must succeed.
    pub fn import(&self, file: &Path, platform: &str) {
        let out = self.ctr(&[
            "images",
            "import",
            "--platform",
            platform,
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "ctr images import {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The standard output of `ctr ARGS`, which must succeed.
    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `(name, digest)` of every image in the store.
    pub fn images(&self) -> Vec<(String, String)> {
        self.ctr_ok(&["images", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let name = f.next()?.to_string();
                let _type = f.next()?;
                Some((name, f.next()?.to_string()))
            })
            .collect()
    }

    /// Every blob digest in the content store.
    pub fn content(&self) -> Vec<String> {
        self.ctr_ok(&["content", "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The native snapshotter bind-mounts nothing, but an unpack may leave
        // mounts under root/: release any before the directory goes.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                if m.starts_with(&*self.dir.path().to_string_lossy()) {
                    let _ = Command::new("umount").args(["-l", m]).status();
                }
            }
        }
    }
}
