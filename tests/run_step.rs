//! `RUN` in `archgate build`, end to end, on a base made of Debian's real
//! `dash` and `coreutils` for amd64, arm64 and mips64el
//! (`scripts/fetch-jre.sh --set shell`): the host's platform runs natively,
//! the others through QEMU in a private binfmt_misc; each step's changes are
//! one layer (files, owners, whiteouts, the fixed mtime); a rebuild with
//! another cache gives the same index digest, with the same cache runs
//! nothing; a failing `RUN` names the line, the platform, the exit code and
//! the output, and publishes nothing. Steps run with `network = "none"`
//! except where a test compares it with `host`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::TestOutput;
use crate::common::jre::{link_or_copy, shell_root};

pub(crate) const PLATFORMS: [(&str, &str); 3] = [
    ("linux/amd64", "amd64"),
    ("linux/arm64", "arm64"),
    ("linux/mips64le", "mips64el"),
];

pub(crate) const EPOCH: &str = "1700000000";

/// What `uname -m` prints on a platform.
fn uname(platform: &str) -> &'static str {
    match platform {
        "linux/amd64" => "x86_64",
        "linux/arm64" => "aarch64",
        "linux/mips64le" => "mips64",
        other => panic!("no uname for {other}"),
    }
}

/// archgate in `dir` with the cache `dir/CACHE`; `RUN` steps without a network.
pub(crate) fn archgate(dir: &Path, cache: &str, args: &[&str]) -> TestOutput {
    archgate_on(dir, cache, "none", args)
}

/// [`archgate`] with `[build] network = NETWORK`.
fn archgate_on(dir: &Path, cache: &str, network: &str, args: &[&str]) -> TestOutput {
    crate::common::archgate()
        .current_dir(dir)
        .env("ARCHGATE_CACHE", dir.join(cache))
        .env("ARCHGATE_BUILD__NETWORK", network)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(args)
        .output()
}

/// `oci:DIR/base:latest`: FROM scratch, ADD the Debian shell root, for the three platforms.
pub(crate) fn base(dir: &Path) -> String {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (p, deb) in PLATFORMS {
        let arch = p.trim_start_matches("linux/");
        link_or_copy(&shell_root(deb), &ctx.join(format!("base-{arch}")));
    }
    std::fs::write(
        dir.join("base.Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nADD base-${TARGETARCH} /\nENV PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    )
    .unwrap();
    let location = format!("oci:{}/base:latest", dir.display());
    let all = PLATFORMS.map(|(p, _)| p).join(",");
    archgate(
        dir,
        "cache",
        &[
            "build",
            "-f",
            "base.Dockerfile",
            "--platform",
            &all,
            "--image",
            &location,
            "ctx",
        ],
    )
    .assert_code(0);
    location
}

/// `archgate build -f Dockerfile` for the three platforms into `target`, with the cache `cache`.
pub(crate) fn build(dir: &Path, cache: &str, target: &str) -> TestOutput {
    let all = PLATFORMS.map(|(p, _)| p).join(",");
    archgate(
        dir,
        cache,
        &[
            "build",
            "-f",
            "Dockerfile",
            "--platform",
            &all,
            "--image",
            target,
            "ctx",
        ],
    )
}

pub(crate) fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub(crate) fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// One tar entry of a layer.
#[derive(Debug)]
struct Item {
    kind: tar::EntryType,
    uid: u64,
    gid: u64,
    mode: u32,
    /// A link's target (symlink or hard link).
    link: Option<String>,
    mtime: u64,
    content: String,
}

fn layer(path: &Path) -> BTreeMap<String, Item> {
    let f = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header().clone();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        let content = String::from_utf8_lossy(&bytes).into_owned();
        out.insert(
            name,
            Item {
                kind: h.entry_type(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                link: h
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                mode: h.mode().unwrap(),
                mtime: h.mtime().unwrap(),
                content,
            },
        );
    }
    out
}

/// Per platform of the index at `layout`: (config, the layers after the base's one).
fn images(layout: &Path) -> BTreeMap<String, (Value, Vec<BTreeMap<String, Item>>)> {
    platform_images(layout)
        .into_iter()
        .map(|(p, (config, layers))| {
            let layers = layers[1..].iter().map(|l| layer(l)).collect();
            (p, (config, layers))
        })
        .collect()
}

/// Per platform (`linux/arm64`) of the tagged index in the OCI layout
/// `layout`: its config and its layers' blob files, in order.
pub(crate) fn platform_images(layout: &Path) -> BTreeMap<String, (Value, Vec<PathBuf>)> {
    let top = json(&layout.join("index.json"));
    let index = json(&blob(
        layout,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let mut out = BTreeMap::new();
    for m in index["manifests"].as_array().unwrap() {
        let platform = format!(
            "{}/{}",
            m["platform"]["os"].as_str().unwrap(),
            m["platform"]["architecture"].as_str().unwrap()
        );
        let manifest = json(&blob(layout, m["digest"].as_str().unwrap()));
        let config = json(&blob(
            layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ));
        let layers = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(layout, l["digest"].as_str().unwrap()))
            .collect();
        out.insert(platform, (config, layers));
    }
    out
}

/// A directory with the base, `text` as its Dockerfile (`BASE` replaced by
/// the base), built into `oci:DIR/app:v1` with the cache `cache`: the
/// directory, the base and what the build printed (it succeeded).
fn first_build(text: &str) -> (tempfile::TempDir, String, TestOutput) {
    let tmp = crate::common::tempdir();
    let dir = tmp.path();
    let base = base(dir);
    std::fs::write(dir.join("Dockerfile"), text.replace("BASE", &base)).unwrap();
    let out = build(dir, "cache", &format!("oci:{}/app:v1", dir.display()));
    out.assert_code(0);
    (tmp, base, out)
}

/// `text` with `change.0` replaced by `change.1` built with the cache
/// `cache` into `oci:DIR/NAME:v1` (it succeeded).
fn rebuild_changed(
    dir: &Path,
    text: &str,
    base: &str,
    change: (&str, &str),
    name: &str,
) -> TestOutput {
    let text = text.replace("BASE", base).replace(change.0, change.1);
    std::fs::write(dir.join("Dockerfile"), text).unwrap();
    let out = build(dir, "cache", &format!("oci:{}/{name}:v1", dir.display()));
    out.assert_code(0);
    out
}

/// `archgate verify` of `target` passes with no JDK required and one command
/// (`args`, a TOML array) whose output must match `output` on every platform.
fn verify_passes(dir: &Path, target: &str, args: &str, output: &str) {
    std::fs::write(
        dir.join("verify.toml"),
        format!(
            "[verify.java]\nrequired = false\n\
             [gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n\
             [[verify.commands]]\nname = \"built files\"\nargs = {args}\noutput = \"{output}\"\n"
        ),
    )
    .unwrap();
    let out = crate::common::archgate()
        .current_dir(dir)
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .args(["--config", "verify.toml", "verify", target, "--json"])
        .output();
    out.assert_code(0);
    out.assert_stdout_contains("built files");
}

/// Rebuilt from nothing cached (cache `cache2`), the index is the same; with
/// the cache `cache`, every step is found in the step cache: nothing is
/// unpacked, run or written, and the index is the same.
fn rebuilds_give_the_same_index(dir: &Path, digest: &str) {
    let again = format!("oci:{}/again:v1", dir.display());
    let out = build(dir, "cache2", &again);
    out.assert_code(0);
    assert_eq!(
        index_digest(&out),
        digest,
        "a rebuild gives the same index digest"
    );
    let cached = format!("oci:{}/cached:v1", dir.display());
    let out = build(dir, "cache", &cached);
    out.assert_code(0);
    assert_eq!(index_digest(&out), digest);
    out.assert_stdout_contains("0 layer(s) written to the layer cache");
    for step in [": run Dockerfile", ": emulate Dockerfile", ": unpack"] {
        assert!(
            !out.stderr().contains(step),
            "{step} in a cached rebuild:\n{}",
            out.stderr()
        );
    }
}

fn index_digest(out: &TestOutput) -> String {
    let first = out.stdout().lines().next().unwrap_or_default();
    first.rsplit_once('@').unwrap().1.to_string()
}

const DOCKERFILE: &str = "FROM BASE
ARG TARGETARCH
ENV GREETING=hello
RUN mkdir /opt && echo $GREETING > /opt/x && uname -m > /opt/arch && id -u > /opt/uid && echo $TARGETARCH > /opt/targetarch && touch /opt/www && chown 33:44 /opt/www && chown 1000:1000 /opt && ln /opt/x /opt/x-link
RUN rm /bin/rmdir
WORKDIR /srv
USER 1000:1000
WORKDIR app
RUN [\"/bin/sh\", \"-c\", \"pwd > here && id -u > /opt/uid-user\"]
";

#[test]
fn run_executes_for_every_platform_and_each_step_is_one_reproducible_layer() {
    let (tmp, base, out) = first_build(DOCKERFILE);
    let dir = tmp.path();
    let digest = index_digest(&out);
    for step in [
        "linux/amd64: run Dockerfile:4",
        "linux/arm64: emulate Dockerfile:4",
    ] {
        out.assert_stderr_contains(step);
    }

    let built = images(&dir.join("app"));
    assert_eq!(built.len(), 3, "{:?}", built.keys());
    for (platform, (config, layers)) in &built {
        let arch = platform.trim_start_matches("linux/");
        assert_eq!(layers.len(), 3, "{platform}: one layer per RUN");
        // RUN 1: files made in the platform's own root, by its own binaries.
        let first = &layers[0];
        assert_eq!(
            first["opt/x"].content, "hello\n",
            "{platform}: ENV reaches RUN"
        );
        assert_eq!(first["opt/arch"].content, format!("{}\n", uname(platform)));
        assert_eq!(first["opt/uid"].content, "0\n");
        assert_eq!(first["opt/targetarch"].content, format!("{arch}\n"));
        assert_eq!(first["opt/"].kind, tar::EntryType::Directory);
        assert_eq!(first["opt/"].mode & 0o777, 0o755);
        for (path, item) in first {
            assert_eq!(
                item.mtime.to_string(),
                EPOCH,
                "{platform}: mtimes are SOURCE_DATE_EPOCH"
            );
            if !["opt/", "opt/www"].contains(&path.as_str()) {
                assert_eq!(item.uid, 0, "{platform}: {path}");
            }
        }
        // A second name of a file is a hard link to the first, not a copy.
        assert_eq!(first["opt/x-link"].kind, tar::EntryType::Link);
        assert_eq!(first["opt/x-link"].link.as_deref(), Some("opt/x"));
        // chown to any user, natively and under QEMU: the owners are the step's.
        assert_eq!((first["opt/www"].uid, first["opt/www"].gid), (33, 44));
        assert_eq!((first["opt/"].uid, first["opt/"].gid), (1000, 1000));
        assert!(
            !first
                .keys()
                .any(|k| k.starts_with("bin/") || k.starts_with("usr/")),
            "{platform}: only what the step changed: {:?}",
            first.keys()
        );
        // RUN 2: the deletion is a whiteout, nothing else of /bin.
        let second = &layers[1];
        let wh = &second["bin/.wh.rmdir"];
        assert_eq!(wh.kind, tar::EntryType::Regular);
        assert!(wh.content.is_empty());
        assert!(
            second.keys().all(|k| k == "bin/" || k == "bin/.wh.rmdir"),
            "{platform}: {:?}",
            second.keys()
        );
        // RUN 3 (exec form): WORKDIR made and used, USER's id, its files its own.
        let third = &layers[2];
        // WORKDIR's directories are the USER's at the WORKDIR line, as BuildKit makes them.
        assert_eq!(
            (third["srv/"].uid, third["srv/"].kind),
            (0, tar::EntryType::Directory),
            "WORKDIR /srv came before USER"
        );
        assert_eq!(third["srv/app/"].uid, 1000);
        assert_eq!(third["srv/app/here"].content, "/srv/app\n");
        assert_eq!(third["opt/uid-user"].content, "1000\n");
        assert_eq!(third["opt/uid-user"].uid, 1000);
        assert_eq!(
            third["opt/"].uid, 1000,
            "a changed directory keeps the owner an earlier step gave it"
        );
        // The config: three RUN history entries with layers, diff_ids for every layer.
        let history = config["history"].as_array().unwrap();
        let runs: Vec<&str> = history
            .iter()
            .filter_map(|h| h["created_by"].as_str())
            .filter(|c| c.starts_with("RUN "))
            .collect();
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert!(
            runs[1].ends_with("/bin/sh -c rm /bin/rmdir # buildkit"),
            "{runs:?}"
        );
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    }

    rebuilds_give_the_same_index(dir, &digest);
    // `archgate verify` passes it, reading what the RUN steps wrote on every platform.
    verify_passes(
        dir,
        &format!("oci:{}/app:v1", dir.display()),
        "[\"/bin/cat\", \"/opt/arch\", \"/opt/targetarch\"]",
        "^(x86_64\\namd64|aarch64\\narm64|mips64\\nmips64le)\\n$",
    );
    // A changed command runs again (and only from that step on).
    let out = rebuild_changed(
        dir,
        DOCKERFILE,
        &base,
        ("rm /bin/rmdir", "rm /bin/sync"),
        "changed",
    );
    assert_ne!(index_digest(&out), digest);
    out.assert_stderr_contains("linux/arm64: emulate Dockerfile:5");
    assert!(
        !out.stderr().contains("emulate Dockerfile:4"),
        "{}",
        out.stderr()
    );
    let after = images(&dir.join("changed"));
    assert!(after["linux/arm64"].1[1].contains_key("bin/.wh.sync"));
    assert_eq!(after["linux/arm64"].1[0]["opt/arch"].content, "aarch64\n");

    // The host's binfmt_misc was not touched: no archgate registration there.
    let host = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(!host.iter().any(|n| n.starts_with("archgate")), "{host:?}");
}

/// A build stage that RUNs (natively and under QEMU), then a final stage that
/// copies out of it by name and by number, and out of an image.
const MULTI_STAGE: &str = "FROM BASE AS build
ARG TARGETARCH
RUN mkdir -p /out/sub && uname -m > /out/arch && echo $TARGETARCH > /out/sub/targetarch && chmod 4755 /out/arch && ln -s arch /out/link && chown 1000:1000 /out/sub
USER 1000:1000
RUN echo mine > /out/sub/mine

FROM BASE
COPY --from=build /out/ /app/
COPY --from=0 --chown=7:8 --chmod=600 /out/sub/targetarch /owned
COPY --from=BASE /bin/cat /opt/tools/
";

#[test]
fn copy_from_takes_a_built_stages_files_with_their_owners_and_modes_and_an_images() {
    let (tmp, base, out) = first_build(MULTI_STAGE);
    let dir = tmp.path();
    let target = format!("oci:{}/app:v1", dir.display());
    let digest = index_digest(&out);
    // The build stage's RUN ran for every platform, the foreign ones emulated.
    for step in [
        "linux/amd64: run Dockerfile:3",
        "linux/arm64: emulate Dockerfile:3",
        "linux/mips64le: emulate Dockerfile:5",
    ] {
        out.assert_stderr_contains(step);
    }
    let built = images(&dir.join("app"));
    assert_eq!(built.len(), 3);
    for (platform, (config, layers)) in &built {
        let arch = platform.trim_start_matches("linux/");
        let deb = PLATFORMS.iter().find(|(p, _)| p == platform).unwrap().1;
        assert_eq!(
            layers.len(),
            3,
            "{platform}: one layer per COPY, no RUN layer"
        );
        // By name: the directory's content, with the modes and owners the
        // stage's steps gave them (setuid kept, the USER's file its own).
        let app = &layers[0];
        assert_eq!(app["app/arch"].content, format!("{}\n", uname(platform)));
        assert_eq!(app["app/arch"].mode, 0o4755, "{platform}: setuid kept");
        assert_eq!(app["app/arch"].uid, 0);
        assert_eq!(app["app/sub/targetarch"].content, format!("{arch}\n"));
        assert_eq!(app["app/sub/mine"].content, "mine\n");
        assert_eq!(
            (app["app/sub/mine"].uid, app["app/sub/mine"].gid),
            (1000, 1000)
        );
        assert_eq!(app["app/link"].kind, tar::EntryType::Symlink);
        assert!(
            !app.keys()
                .any(|k| k.starts_with("bin/") || k.starts_with("out/")),
            "{platform}: only what was copied: {:?}",
            app.keys()
        );
        // By number, with --chown and --chmod.
        let owned = &layers[1]["owned"];
        assert_eq!(owned.content, format!("{arch}\n"));
        assert_eq!((owned.uid, owned.gid, owned.mode), (7, 8, 0o600));
        // Out of an image: the platform's own binary.
        let cat = &layers[2]["opt/tools/cat"];
        let want = std::fs::read(shell_root(deb).join("bin/cat")).unwrap();
        assert_eq!(cat.content, String::from_utf8_lossy(&want), "{platform}");
        assert_eq!(cat.mode, 0o755);
        for layer in layers {
            for (path, item) in layer {
                assert_eq!(item.mtime.to_string(), EPOCH, "{platform}: {path}");
            }
        }
        let copies = config["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["created_by"].as_str().unwrap_or("").starts_with("COPY "))
            .count();
        assert_eq!(copies, 3, "{platform}");
    }

    rebuilds_give_the_same_index(dir, &digest);

    // A changed COPY with the stage's RUNs cached: the stage is unpacked from
    // its layers (not run again), and its modes and owners are the layers'.
    let out = rebuild_changed(
        dir,
        MULTI_STAGE,
        &base,
        ("/out/ /app/", "/out/ /srv/app/"),
        "moved",
    );
    assert!(
        !out.stderr().contains(": emulate Dockerfile"),
        "{}",
        out.stderr()
    );
    out.assert_stderr_contains("linux/arm64: unpack");
    for (platform, (_, layers)) in images(&dir.join("moved")) {
        let app = &layers[0];
        assert_eq!(app["srv/app/arch"].mode, 0o4755, "{platform}: setuid kept");
        assert_eq!(app["srv/app/sub/mine"].uid, 1000, "{platform}");
        assert_eq!(app["srv/app/sub/mine"].content, "mine\n");
    }

    // `archgate verify` passes it, running the copied binaries on every platform.
    verify_passes(
        dir,
        &target,
        "[\"/opt/tools/cat\", \"/app/sub/mine\", \"/app/link\"]",
        "^mine\\n(x86_64|aarch64|mips64)\\n$",
    );
}

/// A directory with the base and a Dockerfile `FROM` it, then `body`.
fn with_base(body: &str) -> tempfile::TempDir {
    let tmp = crate::common::tempdir();
    let base = base(tmp.path());
    std::fs::write(
        tmp.path().join("Dockerfile"),
        format!("FROM {base}\n{body}"),
    )
    .unwrap();
    tmp
}

#[test]
fn a_failing_run_names_the_line_platform_exit_code_and_output_and_publishes_nothing() {
    let tmp =
        with_base("RUN echo fine > /ok\nRUN echo about to fail; echo it failed >&2; exit 3\n");
    let dir = tmp.path();
    let target = format!("oci:{}/bad:v1", dir.display());
    let out = build(dir, "cache", &target);
    out.assert_code(2)
        .assert_stderr_contains("Dockerfile:3: RUN /bin/sh -c echo about to fail")
        .assert_stderr_contains("failed for linux/amd64: exit code 3")
        .assert_stderr_contains("about to fail | it failed");
    assert!(!dir.join("bad").exists(), "nothing published");
}

#[test]
fn run_by_a_user_other_than_root_maps_the_step_user_alone_and_cannot_chown() {
    // As root (every other test), a step keeps every owner; archgate run by
    // another user maps that user alone: files are the step's, chown fails.
    let tmp = with_base("RUN echo made > /made\n");
    let dir = tmp.path();
    let nobody = 65534;
    std::os::unix::fs::chown(dir, Some(nobody), Some(nobody)).unwrap();
    let platforms = "platforms = [\"linux/amd64\", \"linux/arm64\"]\n";
    std::fs::write(dir.join("archgate.toml"), platforms).unwrap();
    let as_nobody = |name: &str| {
        let target = format!("oci:{}/{name}:v1", dir.display());
        crate::common::archgate()
            .as_user(nobody, nobody)
            .current_dir(dir)
            .env("ARCHGATE_CACHE", dir.join("cache-nobody"))
            .env("ARCHGATE_BUILD__NETWORK", "none")
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args([
                "build",
                "-f",
                "Dockerfile",
                "--platform",
                "linux/amd64,linux/arm64",
                "--image",
                &target,
                "ctx",
            ])
            .output()
    };
    as_nobody("made").assert_code(0);
    let built = images(&dir.join("made"));
    for platform in ["linux/amd64", "linux/arm64"] {
        let made = &built[platform].1[0]["made"];
        assert_eq!(made.content, "made\n", "{platform}");
        assert_eq!((made.uid, made.gid), (0, 0), "{platform}");
    }
    let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    std::fs::write(dir.join("Dockerfile"), text + "RUN chown 33:44 /made\n").unwrap();
    as_nobody("chowned").assert_code(2).assert_stderr_contains(
        "Dockerfile:3: RUN /bin/sh -c chown 33:44 /made failed for linux/amd64",
    );
    assert!(!dir.join("chowned").exists(), "nothing published");
}

#[test]
fn a_copy_from_of_a_missing_path_names_the_line_the_stage_and_the_path() {
    let tmp = with_base("FROM scratch\nCOPY --from=0 /bin/cat /cat\nCOPY --from=0 /nope /x\n");
    let dir = tmp.path();
    let target = format!("oci:{}/missing:v1", dir.display());
    build(dir, "cache", &target)
        .assert_code(2)
        .assert_stderr_contains("Dockerfile:4: COPY `/nope` from stage 0: not found there");
    assert!(!dir.join("missing").exists(), "nothing published");
}

#[test]
fn a_crash_under_qemu_is_an_infrastructure_error_and_on_the_hosts_cpu_the_dockerfiles() {
    // The shell kills itself with SIGSEGV: under QEMU that is what an emulator
    // fault looks like (`qemu: uncaught target signal 11`), natively the command's own.
    let tmp = with_base("RUN echo before the crash; kill -SEGV $$\n");
    let dir = tmp.path();
    let on = |platform: &str| {
        let target = format!("oci:{}/crash:v1", dir.display());
        let args = [
            "build",
            "-f",
            "Dockerfile",
            "--platform",
            platform,
            "--image",
            &target,
            "ctx",
        ];
        archgate(dir, "cache", &args)
    };
    on("linux/arm64")
        .assert_code(3)
        .assert_stderr_contains("Dockerfile:2: RUN /bin/sh -c echo before the crash")
        .assert_stderr_contains("crashed with SIGSEGV under QEMU for linux/arm64")
        .assert_stderr_contains("before the crash");
    let native = on("linux/amd64");
    native
        .assert_code(2)
        .assert_stderr_contains("Dockerfile:2: RUN /bin/sh -c echo before the crash");
    assert!(!native.stderr().contains("QEMU"), "{}", native.stderr());
    assert!(!dir.join("crash").exists(), "nothing published");
}

#[test]
fn a_run_past_run_timeout_is_stopped_and_a_zero_timeout_is_refused() {
    let tmp = with_base("RUN sleep 600\n");
    let dir = tmp.path();
    let target = format!("oci:{}/slow:v1", dir.display());
    let args = [
        "build",
        "-f",
        "Dockerfile",
        "--platform",
        "linux/amd64",
        "--image",
        &target,
        "ctx",
    ];
    let timeout = |seconds: u32| {
        let toml = format!("platforms = [\"linux/amd64\"]\n[build]\nrun_timeout = {seconds}\n");
        std::fs::write(dir.join("archgate.toml"), toml).unwrap();
        archgate(dir, "cache", &args)
    };
    timeout(1)
        .assert_code(2)
        .assert_stderr_contains("Dockerfile:2: RUN /bin/sh -c sleep 600 for linux/amd64 was stopped after 1 s ([build] run_timeout");
    assert!(!dir.join("slow").exists(), "nothing published");
    timeout(0)
        .assert_code(2)
        .assert_stderr_contains("run_timeout = 0");
}

#[test]
fn run_has_the_runners_network_or_with_network_none_only_its_own_loopback() {
    // A port listening on the runner's loopback, as /proc/net/tcp shows it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let seen = format!("0100007F:{:04X} ", listener.local_addr().unwrap().port());
    let tmp = with_base("RUN cat /proc/net/tcp > /tcp\n");
    let dir = tmp.path();
    for (network, expected) in [("none", false), ("host", true)] {
        std::fs::write(
            dir.join("archgate.toml"),
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\n",
        )
        .unwrap();
        let target = format!("oci:{}/{network}:v1", dir.display());
        let args = ["build", "-f", "Dockerfile", "--image", &target, "ctx"];
        // A cache each: the step cache does not key on the network.
        archgate_on(dir, &format!("cache-{network}"), network, &args).assert_code(0);
        let built = images(&dir.join(network));
        assert_eq!(built.len(), 2);
        for (platform, (_, layers)) in &built {
            let tcp = &layers[0]["tcp"].content;
            assert!(tcp.contains("local_address"), "{platform}: {tcp}");
            assert_eq!(
                tcp.contains(&seen),
                expected,
                "{platform}, network {network}: {tcp}"
            );
        }
    }
    drop(listener);
}
