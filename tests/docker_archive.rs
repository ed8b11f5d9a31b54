//! `docker-archive:FILE[:NAME[:TAG]]` as a source (issue 16, item 1): the
//! archives are written by skopeo in the classic `docker save` format (the one
//! Docker 19.03–24 writes), or assembled in Docker ≥ 25's form (an OCI layout
//! plus `manifest.json`); archgate reads them and a real registry and real
//! QEMU take what it publishes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::jre::{Entry, shared_cache, write_index};
use crate::common::{TestOutput, TestRegistry, archgate, skopeo_raw, tempdir};
use crate::layout::skopeo;

const THREE: [(&str, &str); 3] = [
    ("linux/amd64", "amd64"),
    ("linux/arm64", "arm64"),
    ("linux/mips64le", "mips64el"),
];

/// A one-platform OCI layout of the real JRE for `platform`, tagged `v1`.
fn jre_layout(dir: &Path, platform: &str, arch: &str) -> PathBuf {
    let layout = dir.join(format!("layout-{arch}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(&layout, &[Entry::jre(platform, arch)], "v1"));
    layout
}

/// `skopeo copy oci:LAYOUT:v1 docker-archive:FILE:NAME`: the classic
/// `docker save` form (manifest.json, repositories, uncompressed layer tars).
fn docker_save(layout: &Path, platform: &str, file: &Path, name: &str) {
    let arch = platform.rsplit('/').next().unwrap();
    skopeo(&[
        "--override-arch",
        arch,
        "copy",
        "--quiet",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker-archive:{}:{name}", file.display()),
    ]);
}

/// The digest of the config skopeo reads from the `docker save` file `file`
/// (skopeo is what reads such files in the air gap without Docker).
pub(crate) fn skopeo_config_digest(file: &Path) -> String {
    let out = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", file.display()),
    ]);
    archgate::image::Digest::of(&out.stdout).to_string()
}

fn inspect(location: &str) -> TestOutput {
    archgate().args(["inspect", "--json", location]).output()
}

/// The config digest of the single image in an OCI layout.
fn config_digest_of(layout: &Path) -> String {
    let out = inspect(&format!("oci:{}:v1", layout.display()));
    let v: Value = out.assert_code(0).json();
    v["platforms"][0]["config_digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The seed's section 2 as one command: three `docker save` archives, one per
/// architecture, merged into one index in a registry, which then verifies on
/// every platform (java runs under QEMU). Configs keep their bytes.
#[test]
fn three_docker_save_archives_merge_into_an_index_that_verifies() {
    let dir = tempdir();
    let registry = TestRegistry::start_http();
    let mut sources = Vec::new();
    let mut configs = Vec::new();
    for (platform, arch) in THREE {
        let layout = jre_layout(dir.path(), platform, arch);
        configs.push((platform, config_digest_of(&layout)));
        let file = dir.path().join(format!("debian-bullseye-{arch}.tar"));
        docker_save(&layout, platform, &file, &format!("debian:bullseye-{arch}"));
        sources.push(format!("docker-archive:{}", file.display()));
    }
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let target = registry.repo("debian:bullseye-multiv1");
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["merge", "--json", "--target", &target])
        .args(&sources)
        .output();
    let merged: Value = out.assert_code(0).json();

    let index: Value = serde_json::from_slice(&skopeo_raw(&registry, &target)).unwrap();
    let mut platforms = crate::merge::platforms(&index);
    platforms.sort();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64", "linux/mips64le"],
        "{merged:#}"
    );
    let remote: Value = inspect_with(&config, &target);
    for (platform, config_digest) in &configs {
        let entry = remote["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == *platform)
            .unwrap_or_else(|| panic!("{platform} in {remote:#}"));
        assert_eq!(
            entry["config_digest"], *config_digest,
            "the config keeps its bytes"
        );
    }

    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["verify", "--json", &target])
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    let v: Value = out.assert_code(0).json();
    assert_eq!(v["outcome"], "passed", "{v:#}");
}

fn inspect_with(config: &Path, location: &str) -> Value {
    archgate()
        .arg("--config")
        .arg(config)
        .args(["inspect", "--json", location])
        .output()
        .assert_code(0)
        .json()
}

/// An archive is read by the name `docker save` recorded, Docker's way
/// (`debian` is `debian:latest`, `docker.io/library/` implied); a name it
/// does not hold is an input error listing what it holds.
#[test]
fn an_image_is_picked_by_its_saved_name_and_a_wrong_name_lists_the_names() {
    let dir = tempdir();
    let layout = jre_layout(dir.path(), "linux/arm64", "arm64");
    let file = dir.path().join("jre.tar");
    docker_save(&layout, "linux/arm64", &file, "team/jre:17");
    let config_digest = config_digest_of(&layout);
    for name in ["", ":team/jre:17", ":docker.io/team/jre:17"] {
        let loc = format!("docker-archive:{}{name}", file.display());
        let v: Value = inspect(&loc).assert_code(0).json();
        assert_eq!(v["platforms"][0]["platform"], "linux/arm64", "{loc}: {v:#}");
        assert_eq!(v["platforms"][0]["config_digest"], config_digest, "{loc}");
        assert_eq!(
            v["platforms"][0]["media_type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
    }
    let out = inspect(&format!("docker-archive:{}:team/jre", file.display()));
    out.assert_code(2);
    out.assert_stderr_contains("team/jre");
    out.assert_stderr_contains("it holds: team/jre:17");
}

/// Docker ≥ 25 writes an OCI layout plus manifest.json: its manifests are
/// read as they are (the digest `docker save` recorded), by the saved name.
#[test]
fn a_docker_25_archive_keeps_its_manifest_digest() {
    let dir = tempdir();
    let layout = jre_layout(dir.path(), "linux/mips64le", "mips64el");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // write_index writes an index over one manifest; Docker 25 lists the
    // image index too. manifest.json names the platform image.
    let top_blob: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&top[7..])).unwrap(),
    )
    .unwrap();
    let image = top_blob["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&image[7..])).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("manifest.json"),
        serde_json::to_vec(&json!([{
            "Config": format!("blobs/sha256/{}", &manifest["config"]["digest"].as_str().unwrap()[7..]),
            "RepoTags": ["team/jre:17"],
            "Layers": manifest["layers"].as_array().unwrap().iter()
                .map(|l| format!("blobs/sha256/{}", &l["digest"].as_str().unwrap()[7..]))
                .collect::<Vec<_>>(),
        }]))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(layout.join("repositories"), b"{}").unwrap();
    let file = dir.path().join("docker25.tar");
    tar_dir(&layout, &file);
    for name in ["", ":team/jre:17"] {
        let v: Value = inspect(&format!("docker-archive:{}{name}", file.display()))
            .assert_code(0)
            .json();
        assert_eq!(v["digest"], top, "{v:#}");
        assert_eq!(v["platforms"][0]["manifest_digest"], image, "{v:#}");
    }
    let v: Value = inspect(&format!("docker-archive:{}", file.display()))
        .assert_code(0)
        .json();
    assert_eq!(v["platforms"][0]["manifest_digest"], image, "{v:#}");
    assert_eq!(v["platforms"][0]["platform"], "linux/mips64le");
}

/// A tar of `dir`'s contents (paths relative to it), as `docker save` lays them out.
fn tar_dir(dir: &Path, file: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(file).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// `docker-archive:FILE:NAME:TAG` as a target: the classic `docker save`
/// form, one platform per file. containerd's importer stores it under its
/// name with the source's config; skopeo (what reads `docker save` files in
/// the air gap without Docker) reads it; archgate reads it back and the real
/// JRE in it runs under QEMU; the same image gives the same bytes.
#[test]
fn a_docker_archive_target_loads_in_containerd_and_verifies() {
    let dir = tempdir();
    let mut entries = Vec::new();
    for (platform, arch) in THREE {
        entries.push(Entry::jre(platform, arch));
    }
    let layout = dir.path().join("layout");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_index(&layout, &entries, "v1"));
    let source = format!("oci:{}:v1", layout.display());
    let source_config = {
        let v: Value = inspect(&source).assert_code(0).json();
        v["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == "linux/arm64")
            .unwrap()["config_digest"]
            .clone()
    };
    let file = dir.path().join("jre-arm64.tar");
    let target = format!(
        "docker-archive:{}:10.0.0.5:5000/team/jre:17",
        file.display()
    );

    // Three platforms do not fit one `docker save` file: refused, nothing written.
    let out = archgate().args(["mirror", &source, &target]).output();
    out.assert_code(2);
    out.assert_stderr_contains("pass --platform P");
    assert!(!file.exists());

    archgate()
        .args(["mirror", &source, &target, "--platform", "linux/arm64"])
        .output()
        .assert_code(0);
    let first = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    archgate()
        .args(["mirror", &source, &target, "--platform", "linux/arm64"])
        .output()
        .assert_code(0);
    assert!(
        first == std::fs::read(&file).unwrap(),
        "the same bytes twice"
    );

    let ctd = crate::common::containerd::TestContainerd::start();
    ctd.import(&file, "linux/arm64");
    let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["10.0.0.5:5000/team/jre:17"], "{}", ctd.log());
    assert!(
        ctd.content()
            .contains(&source_config.as_str().unwrap().to_string()),
        "containerd holds the source's config"
    );

    assert_eq!(skopeo_config_digest(&file), source_config.as_str().unwrap());

    let out = archgate()
        .args(["verify", "--json", "--platform", "linux/arm64"])
        .arg(format!("docker-archive:{}", file.display()))
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    let v: Value = out.assert_code(0).json();
    assert_eq!(v["outcome"], "passed", "{v:#}");
}

/// A hostile archive: a layer symlink climbing out of the archive is
/// refused, naming the entry; nothing outside the private directory is read.
#[test]
fn a_link_out_of_the_archive_is_refused_naming_it() {
    let dir = tempdir();
    let file = dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&file).unwrap());
    let manifest = br#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_cksum();
    b.append_link(&mut h, "l/layer.tar", "../../../../etc/passwd")
        .unwrap();
    b.finish().unwrap();
    drop(b);
    let out = inspect(&format!("docker-archive:{}", file.display()));
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
    out.assert_stderr_contains("l/layer.tar");
    out.assert_stderr_contains("leaves the archive");
}

/// `FROM docker-archive:FILE` builds on a `docker save` archive, and
/// `run --image docker-archive:FILE` gates one: the base's layers are carried
/// as they are (same digests) under the new layer, and java runs under QEMU.
#[test]
fn a_build_goes_from_a_docker_save_archive_and_run_gates_one() {
    let dir = tempdir();
    let layout = jre_layout(dir.path(), "linux/arm64", "arm64");
    let file = dir.path().join("jre-arm64.tar");
    docker_save(&layout, "linux/arm64", &file, "team/jre:17");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("app.conf"), "port = 8080\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM docker-archive:{}:team/jre:17\nCOPY app.conf /srv/app.conf\n",
            file.display()
        ),
    )
    .unwrap();
    let base: Value = inspect(&format!("docker-archive:{}", file.display()))
        .assert_code(0)
        .json();
    let out_image = format!("oci:{}:v1", dir.path().join("out").display());
    archgate()
        .args(["build", ctx.to_str().unwrap(), "--platform", "linux/arm64"])
        .args(["--image", &out_image])
        .output()
        .assert_code(0);
    let built: Value = inspect(&out_image).assert_code(0).json();
    let p = &built["platforms"][0];
    assert_eq!(p["platform"], "linux/arm64", "{built:#}");
    assert_eq!(
        p["layers"].as_u64(),
        base["platforms"][0]["layers"].as_u64().map(|n| n + 1),
        "{built:#}"
    );

    // The same build into a `docker save` file, named for `docker load`.
    let saved = dir.path().join("svc-arm64.tar");
    archgate()
        .args(["build", ctx.to_str().unwrap(), "--platform", "linux/arm64"])
        .arg("--image")
        .arg(format!("docker-archive:{}:team/svc:1", saved.display()))
        .output()
        .assert_code(0);
    let again: Value = inspect(&format!("docker-archive:{}:team/svc:1", saved.display()))
        .assert_code(0)
        .json();
    assert_eq!(
        again["platforms"][0]["config_digest"], p["config_digest"],
        "the built config, byte for byte"
    );

    let report = dir.path().join("report");
    let out = archgate()
        .args(["run", "--platform", "linux/arm64", "--image"])
        .arg(format!("docker-archive:{}", file.display()))
        .arg("--report-dir")
        .arg(&report)
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    out.assert_code(0);
    let env = std::fs::read_to_string(report.join("archgate.env")).unwrap();
    assert!(env.contains("AG_VERDICT=passed"), "{env}");
    assert!(
        env.contains(&format!(
            "AG_IMAGE=docker-archive:{}@sha256:",
            file.display()
        )),
        "{env}"
    );
}

/// Into the Docker format (`merge --format docker --convert`), a `docker save`
/// archive's uncompressed layers are gzipped on the way to the registry:
/// Docker v2s2 throughout (the `clients` check for Docker 19.03 passes), the
/// config — and so its diff_ids — byte for byte, the same bytes on a re-run,
/// and java still runs from the gzipped layer.
#[test]
fn a_docker_format_merge_gzips_the_archives_uncompressed_layers() {
    let dir = tempdir();
    let registry = TestRegistry::start_http();
    let layout = jre_layout(dir.path(), "linux/arm64", "arm64");
    let source_config = config_digest_of(&layout);
    let file = dir.path().join("jre-arm64.tar");
    docker_save(&layout, "linux/arm64", &file, "team/jre:17");
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{}\"]\nhttp = true\n[verify]\nclients = [\"docker-19.03\", \"containerd-1.6\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    let target = registry.repo("team/jre:17-docker");
    let merge = || {
        let out = archgate()
            .arg("--config")
            .arg(&config)
            .args(["merge", "--json", "--platform", "linux/arm64"])
            .args(["--format", "docker", "--convert", "--target", &target])
            .arg(format!("docker-archive:{}", file.display()))
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .output();
        let v: Value = out.assert_code(0).json();
        v["index_digest"].as_str().unwrap().to_string()
    };
    let first = merge();
    let index: Value = serde_json::from_slice(&skopeo_raw(&registry, &target)).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let child = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(&skopeo_raw(
        &registry,
        &format!("{}@{child}", registry.repo("team/jre")),
    ))
    .unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(manifest["config"]["digest"], source_config, "{manifest:#}");
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{manifest:#}"
        );
    }
    assert_eq!(merge(), first, "the same layer gzips to the same bytes");

    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["verify", "--json", "--platform", "linux/arm64", &target])
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    let v: Value = out.assert_code(0).json();
    assert_eq!(v["outcome"], "passed", "{v:#}");
}

/// `docker save` of two images writes one archive listing both: read by the
/// saved name, and without one an input error naming the choices.
#[test]
fn an_archive_of_two_images_is_read_by_name() {
    let dir = tempdir();
    let merged = dir.path().join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let mut listed = Vec::new();
    for (platform, arch, name) in [
        ("linux/amd64", "amd64", "team/a:1"),
        ("linux/arm64", "arm64", "team/b:2"),
    ] {
        let layout = jre_layout(dir.path(), platform, arch);
        let file = dir.path().join(format!("{arch}.tar"));
        docker_save(&layout, platform, &file, name);
        tar::Archive::new(std::fs::File::open(&file).unwrap())
            .unpack(&merged)
            .unwrap();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(merged.join("manifest.json")).unwrap()).unwrap();
        listed.extend(manifest.as_array().unwrap().iter().cloned());
    }
    std::fs::write(
        merged.join("manifest.json"),
        serde_json::to_vec(&listed).unwrap(),
    )
    .unwrap();
    let both = dir.path().join("both.tar");
    tar_dir(&merged, &both);
    let location = format!("docker-archive:{}", both.display());
    let out = inspect(&location);
    out.assert_code(2);
    out.assert_stderr_contains("holds 2 images");
    out.assert_stderr_contains(&format!("{location}:team/a:1"));
    out.assert_stderr_contains(&format!("{location}:team/b:2"));
    for (name, platform) in [("team/a:1", "linux/amd64"), ("team/b:2", "linux/arm64")] {
        let v: Value = inspect(&format!("{location}:{name}")).assert_code(0).json();
        assert_eq!(v["platforms"][0]["platform"], platform, "{name}: {v:#}");
    }
}

/// A three-platform OCI layout of the small test images at `dir`: the index
/// tagged `v1`, each image also under its architecture (`oci:DIR:arm64`).
fn small_layout(dir: &Path, salt: &str) -> crate::common::images::ImageSet {
    use archgate::store::layout::LayoutStore;
    let set = crate::common::image_set(crate::common::Flavor::Oci, salt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(dir, true).unwrap();
        crate::common::push_image_set(&store, &set, Some("v1"))
            .await
            .unwrap();
        for image in &set.images {
            crate::common::images::push_image(&store, image, image.architecture)
                .await
                .unwrap();
        }
    });
    set
}

/// `manifest.json` of a `docker save` archive, read from the tar.
fn saved_manifest(file: &Path) -> Value {
    use std::io::Read;
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            return serde_json::from_str(&s).unwrap();
        }
    }
    panic!("{} has no manifest.json", file.display());
}

/// The names of what `dir` holds, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `merge` into a `docker-archive:` target (issue 16, item 2): one platform
/// is one `docker save` file with the location's `RepoTags` and the
/// source's config, which containerd imports under that name; several
/// platforms are refused (exit 2) and nothing is written — no file, no
/// staging left beside it.
#[test]
fn merge_writes_one_platform_into_a_docker_archive_and_refuses_several() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let set = small_layout(&src, "merge-docker-archive");
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = out_dir.join("app-arm64.tar");
    let target = format!(
        "docker-archive:{}:10.0.0.5:5000/team/app:v1",
        file.display()
    );

    let out = archgate()
        .args(["merge", "--platform", "linux/arm64", "--target", &target])
        .arg(format!("oci:{}:arm64", src.display()))
        .output();
    out.assert_code(0);
    let manifest = saved_manifest(&file);
    assert_eq!(
        manifest[0]["RepoTags"],
        json!(["10.0.0.5:5000/team/app:v1"]),
        "{manifest:#}"
    );
    assert_eq!(
        skopeo_config_digest(&file),
        set.config_digest("arm64"),
        "the source's config, byte for byte"
    );
    let ctd = crate::common::containerd::TestContainerd::start();
    ctd.import(&file, "linux/arm64");
    let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["10.0.0.5:5000/team/app:v1"], "{}", ctd.log());
    assert!(ctd.content().contains(&set.config_digest("arm64")));

    // Three platforms do not fit one `docker save` file.
    let several = out_dir.join("app-all.tar");
    let sources: Vec<String> = ["amd64", "arm64", "mips64le"]
        .iter()
        .map(|a| format!("oci:{}:{a}", src.display()))
        .collect();
    let out = archgate()
        .arg("merge")
        .arg("--target")
        .arg(format!(
            "docker-archive:{}:10.0.0.5:5000/team/app:v1",
            several.display()
        ))
        .args(&sources)
        .output();
    out.assert_code(2);
    out.assert_stderr_contains("holds one platform, as `docker save` does");
    out.assert_stderr_contains("linux/amd64, linux/arm64, linux/mips64le");
    out.assert_stderr_contains("pass --platform P");
    out.assert_stderr_contains("nothing was written");
    assert_eq!(listing(&out_dir), ["app-arm64.tar"], "nothing else written");
}

/// A `docker-archive:FILE` target without NAME gets its `RepoTags` as the
/// README says: `--name` with the tag, else the source's name with its tag;
/// a source with no name gives an untagged archive (`RepoTags: []`), with a
/// warning that says how to name it.
#[test]
fn a_docker_archive_target_without_a_name_takes_the_name_flag_or_the_sources() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let set = small_layout(&src, "unnamed-docker-archive");
    let registry = TestRegistry::start_http();
    let reference = registry.repo("team/app:v1");
    crate::common::registry::skopeo_copy_to(&format!("oci:{}:v1", src.display()), &reference);
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let mirror = |source: &str, file: &Path, extra: &[&str]| {
        archgate()
            .arg("--config")
            .arg(&config)
            .args(["mirror", "--platform", "linux/amd64", source])
            .arg(format!("docker-archive:{}", file.display()))
            .args(extra)
            .output()
    };

    // From the registry: the source's name and tag.
    let from_registry = dir.path().join("from-registry.tar");
    mirror(&reference, &from_registry, &[]).assert_code(0);
    assert_eq!(
        saved_manifest(&from_registry)[0]["RepoTags"],
        json!([reference])
    );
    let ctd = crate::common::containerd::TestContainerd::start();
    ctd.import(&from_registry, "linux/amd64");
    let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, std::slice::from_ref(&reference), "{}", ctd.log());
    assert!(ctd.content().contains(&set.config_digest("amd64")));

    // `--name` wins over the source's name; the tag is the source's.
    let renamed = dir.path().join("renamed.tar");
    mirror(
        &reference,
        &renamed,
        &["--name", "10.0.0.5:5000/team/other"],
    )
    .assert_code(0);
    assert_eq!(
        saved_manifest(&renamed)[0]["RepoTags"],
        json!(["10.0.0.5:5000/team/other:v1"])
    );

    // A layout records no name: untagged, with the warning.
    let unnamed = dir.path().join("unnamed.tar");
    let out = mirror(&format!("oci:{}:v1", src.display()), &unnamed, &[]);
    out.assert_code(0);
    out.assert_stderr_contains("records no name: `docker load` gives an untagged image");
    out.assert_stderr_contains("docker-archive:FILE:NAME:TAG or --name REGISTRY/NAME");
    assert_eq!(saved_manifest(&unnamed)[0]["RepoTags"], json!([]));
}
