//! archgate's `RUN` against a peer's (issue 21): the same Dockerfile, on the same
//! three-platform base of Debian's real `dash` and `coreutils`, built by
//! `archgate build` and by `buildah build --platform …` (Debian's 1.28, vfs storage in a
//! temporary directory, `--isolation chroot`, `--timestamp SOURCE_DATE_EPOCH`), gives
//! the same file tree per platform: every image's layers applied in order with their
//! whiteouts (an oracle written here, not archgate's unpacker), then path, type,
//! permission bits, owner, mtime, file content and symlink target compared. buildah runs
//! through `scripts/buildah-userns.sh`: its own user namespace (ids 0-65535 mapped, so
//! `USER 1000` is real), its own empty network namespace and a private binfmt_misc
//! with QEMU for arm64 and mips64le; it sees none of the host's registrations. buildah
//! reads the base from the same OCI layout (`FROM oci:DIR:TAG` works in 1.28 and picks
//! each platform's manifest from the index).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::run_step::{EPOCH, PLATFORMS, base, build, platform_images};

/// One entry of an image's file tree, after every layer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: Kind,
    /// Permission bits only: Go's tar writer (buildah's) adds the file type bits.
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

type Tree = BTreeMap<String, Node>;

/// What one tar entry of a layer asks for.
enum Change {
    Put(String, Node),
    /// A hard link to a path of this or a lower layer: the same node.
    Link(String, String),
    /// `.wh.NAME`: NAME and everything under it is gone.
    Whiteout(String),
    /// `.wh..wh..opq`: the directory's content from lower layers is gone.
    Opaque(String),
}

/// `./a/b/`, `a/b` → `a/b`.
fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Applies one gzip layer to `tree` as the OCI image spec says: its whiteouts
/// hide lower layers' entries only, then its entries are added in order.
fn apply(tree: &mut Tree, blob: &Path) {
    let f = std::fs::File::open(blob).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut changes = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = clean(&e.path().unwrap().to_string_lossy());
        if path.is_empty() {
            continue;
        }
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), path.clone()),
        };
        if name == ".wh..wh..opq" {
            changes.push(Change::Opaque(dir));
            continue;
        }
        if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_string()
            } else {
                format!("{dir}/{gone}")
            };
            changes.push(Change::Whiteout(gone));
            continue;
        }
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                Kind::File(bytes)
            }
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Link => {
                let target = clean(&e.link_name().unwrap().unwrap().to_string_lossy());
                changes.push(Change::Link(path, target));
                continue;
            }
            other => panic!("{}: /{path} is a {other:?}", blob.display()),
        };
        changes.push(Change::Put(
            path,
            Node {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
            },
        ));
    }
    for c in &changes {
        match c {
            Change::Whiteout(gone) => tree.retain(|p, _| p != gone && !under(p, gone)),
            Change::Opaque(dir) => tree.retain(|p, _| !under(p, dir)),
            _ => {}
        }
    }
    for c in changes {
        match c {
            Change::Put(path, node) => {
                // A file or link in place of a directory replaces it, content and all.
                if node.kind != Kind::Dir {
                    tree.retain(|p, _| !under(p, &path));
                }
                tree.insert(path, node);
            }
            Change::Link(path, target) => {
                let node = tree
                    .get(&target)
                    .unwrap_or_else(|| panic!("/{path}: hard link to missing /{target}"))
                    .clone();
                tree.insert(path, node);
            }
            Change::Whiteout(_) | Change::Opaque(_) => {}
        }
    }
}

/// Per platform (`linux/arm64`) of the tagged index in the OCI layout `layout`:
/// the image's config and its file tree.
fn trees(layout: &Path) -> BTreeMap<String, (Value, Tree)> {
    platform_images(layout)
        .into_iter()
        .map(|(platform, (config, layers))| {
            let mut tree = Tree::new();
            for l in &layers {
                apply(&mut tree, l);
            }
            (platform, (config, tree))
        })
        .collect()
}

/// What buildah 1.28 adds to the first layer it commits and archgate does not, each
/// for a reason of the engine, not of the Dockerfile: with `--isolation chroot` it
/// makes mount points for what it binds into every `RUN` — the directories `dev`,
/// `proc`, `sys`, `run` and empty files `etc/hostname`, `etc/hosts`,
/// `etc/resolv.conf` (mode 0755, as buildah creates them) — and leaves them in the
/// image. archgate keeps its sandbox's mount points (`proc`, `dev`) out of every layer
/// and binds no `/etc` file under `network = "none"`. Each is checked to be exactly
/// so in buildah's tree and absent from archgate's, then left out of the comparison.
const BUILDAH_MOUNT_POINTS: [(&str, Option<u32>); 7] = [
    ("dev", None),
    ("proc", None),
    ("sys", None),
    ("run", None),
    ("etc/hostname", Some(0o755)),
    ("etc/hosts", Some(0o755)),
    ("etc/resolv.conf", Some(0o755)),
];

/// Shell-form and exec-form `RUN`s as root and as `USER 1000` that add files, a
/// symlink, a hard link, directories (one with the sticky bit), change a base file's
/// mode, delete a base file (a whiteout), delete a base directory and make it again
/// (opaque or whiteouts, either is right), replace a base directory by a file and a
/// base file by a directory, use `ENV`, `TARGETARCH`, and `WORKDIR`
/// both made by the step and existing, `chown` to other users as root. Valid under
/// Docker's semantics: the step as `USER 1000` writes only into a world-writable
/// directory or one chowned to it. `WORKDIR`s made before and after `USER 1000`
/// belong to the `USER` of their line in both.
const DOCKERFILE: &str = include_str!("fixtures/run.Dockerfile");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/buildah-userns.sh")
}

/// buildah builds `dir/Dockerfile` for the three platforms and pushes the list to `oci:dir/buildah:v1`.
fn buildah(dir: &Path) -> PathBuf {
    let storage = [
        "--storage-driver".to_string(),
        "vfs".to_string(),
        "--root".to_string(),
        dir.join("buildah-root").display().to_string(),
        "--runroot".to_string(),
        dir.join("buildah-run").display().to_string(),
    ];
    let all = PLATFORMS.map(|(p, _)| p).join(",");
    let dockerfile = dir.join("Dockerfile");
    let out = Command::new(script())
        .args(&storage)
        .args(["build", "--timestamp", EPOCH, "--isolation", "chroot"])
        .args(["--platform", &all, "--manifest", "peer", "-f"])
        .arg(&dockerfile)
        .arg(dir.join("ctx"))
        .output()
        .expect("run scripts/buildah-userns.sh");
    assert!(
        out.status.success(),
        "buildah build: {}",
        crate::common::text(&out)
    );
    let layout = dir.join("buildah");
    let out = Command::new("buildah")
        .args(&storage)
        .args(["manifest", "push", "--all", "peer"])
        .arg(format!("oci:{}:v1", layout.display()))
        .output()
        .expect("run buildah manifest push");
    assert!(
        out.status.success(),
        "buildah manifest push: {}",
        crate::common::text(&out)
    );
    layout
}

/// The paths where two trees differ, each with both sides (file content shortened).
fn differences(ours: &Tree, theirs: &Tree) -> Vec<String> {
    let show = |n: Option<&Node>| match n {
        None => "missing".to_string(),
        Some(n) => {
            let kind = match &n.kind {
                Kind::File(b) => {
                    format!("file {:?}", String::from_utf8_lossy(&b[..b.len().min(40)]))
                }
                k => format!("{k:?}"),
            };
            format!("{kind} {:o} {}:{} mtime {}", n.mode, n.uid, n.gid, n.mtime)
        }
    };
    let mut out = Vec::new();
    for p in ours.keys().chain(theirs.keys()) {
        let (a, b) = (ours.get(p), theirs.get(p));
        if a != b
            && !out
                .iter()
                .any(|l: &String| l.starts_with(&format!("/{p}: ")))
        {
            out.push(format!("/{p}: archgate {} | buildah {}", show(a), show(b)));
        }
    }
    out
}

#[test]
fn run_gives_the_same_file_tree_as_buildah_for_every_platform() {
    // buildah names its build container after the base's path, and that name must be
    // lower case: a directory name without tempdir's random (mixed-case) letters.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("archgate-test-peer-{}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let base = base(dir);
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE.replace("BASE", &base)).unwrap();
    let target = format!("oci:{}/archgate:v1", dir.display());
    build(dir, "cache", &target).assert_code(0);
    let ours = trees(&dir.join("archgate"));
    let theirs = trees(&buildah(dir));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );

    let uname = BTreeMap::from([
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/mips64le", "mips64"),
    ]);
    for (platform, (config, tree)) in &ours {
        let (their_config, their_tree) = &theirs[platform];
        let mut their_tree = their_tree.clone();
        for (path, file_mode) in BUILDAH_MOUNT_POINTS {
            let node = their_tree
                .remove(path)
                .unwrap_or_else(|| panic!("{platform}: buildah no longer adds /{path}"));
            let expected = match file_mode {
                None => (Kind::Dir, 0o755),
                Some(mode) => (Kind::File(Vec::new()), mode),
            };
            assert_eq!((node.kind, node.mode), expected, "{platform}: /{path}");
            assert!(!tree.contains_key(path), "{platform}: archgate has /{path}");
        }
        // Both ran the step on the platform's own CPU (emulated for two of them).
        let arch = &tree["opt/arch"].kind;
        assert_eq!(
            arch,
            &Kind::File(format!("{}\n", uname[platform.as_str()]).into_bytes()),
            "{platform}"
        );
        assert!(!tree.contains_key("bin/rmdir"), "{platform}: deleted");
        assert!(
            !tree.contains_key("usr/share/doc/dash"),
            "{platform}: deleted"
        );
        assert!(
            !tree.keys().any(|p| p.starts_with("usr/share/man/")),
            "{platform}: a file now"
        );
        assert_eq!(tree["usr/bin/yes"].kind, Kind::Dir, "{platform}");
        assert_eq!(tree["shared/userdir/mine/file"].uid, 1000, "{platform}");
        assert_eq!(
            tree["shared/userdir"].uid, 1000,
            "{platform}: WORKDIR after USER"
        );
        assert_eq!(
            tree["made/by/root"].uid, 0,
            "{platform}: WORKDIR before USER"
        );
        assert_eq!(tree["bin/sync"].mode, 0o700, "{platform}");
        // The whole tree: path, type, mode, content, link target, and also the
        // owners (buildah's user namespace maps 1000, archgate's step USER owns what
        // it adds) and the mtimes (buildah's --timestamp clamps every file's, as
        // archgate writes SOURCE_DATE_EPOCH): both agree, and are asserted.
        let diff = differences(tree, &their_tree);
        assert!(
            diff.is_empty(),
            "{platform}: archgate's and buildah's trees differ:\n{}",
            diff.join("\n")
        );
        assert!(
            tree.values().all(|n| n.mtime.to_string() == EPOCH),
            "{platform}: every mtime is SOURCE_DATE_EPOCH"
        );
        // The config's run-time settings agree too.
        for key in ["Env", "User", "WorkingDir"] {
            assert_eq!(
                config["config"][key], their_config["config"][key],
                "{platform}: config {key}"
            );
        }
    }
}
