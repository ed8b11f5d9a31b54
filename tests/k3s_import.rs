//! Air-gap archives that import under their real name (issue 16, item 3):
//! an `oci-archive:` archgate writes records the image's full name
//! (`io.containerd.image.name`), so containerd's importer — what K3s runs over
//! its images folder, here Debian's containerd started privately — stores
//! `REGISTRY/NAME:TAG`, with the source's config.

use std::path::Path;

use archgate::store::layout::LayoutStore;
use serde_json::Value;

use crate::common::containerd::TestContainerd;
use crate::common::registry::skopeo_copy_to;
use crate::common::{
    Flavor, TestOutput, TestRegistry, archgate, image_set, push_image_set, tempdir,
};

/// A three-platform OCI layout at `dir`, tagged `v1`; returns the set.
fn layout(dir: &Path, salt: &str) -> crate::common::images::ImageSet {
    let set = image_set(Flavor::Oci, salt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(dir, true).unwrap();
        push_image_set(&store, &set, Some("v1")).await.unwrap();
    });
    set
}

fn mirror(args: &[&str]) -> TestOutput {
    archgate().arg("mirror").args(args).output()
}

#[test]
fn an_archive_named_with_name_imports_under_that_name_with_the_sources_config() {
    let dir = tempdir();
    let set = layout(&dir.path().join("src"), "named");
    let file = dir.path().join("app.tar");
    mirror(&[
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("oci-archive:{}:v1", file.display()),
        "--name",
        "10.0.0.5:5000/team/app",
    ])
    .assert_code(0);
    let ctd = TestContainerd::start();
    ctd.import(&file, "linux/arm64");
    let images = ctd.images();
    assert_eq!(
        images,
        [(
            "10.0.0.5:5000/team/app:v1".to_string(),
            set.index.digest.to_string()
        )],
        "{}",
        ctd.log()
    );
    assert!(
        ctd.content().contains(&set.config_digest("arm64")),
        "the arm64 config, byte for byte"
    );
}

/// Without `--name`, a registry source's own name is kept: the archive a
/// job carries from the registry imports as the image it came from.
#[test]
fn a_mirrored_registry_image_keeps_its_name_in_the_archive() {
    let dir = tempdir();
    let registry = TestRegistry::start_http();
    let set = layout(&dir.path().join("src"), "registry");
    let reference = registry.repo("team/jre:17");
    skopeo_copy_to(
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &reference,
    );
    let config = dir.path().join("archgate.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    let file = dir.path().join("jre.tar");
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["mirror", &reference])
        .arg(format!("oci-archive:{}", file.display()))
        .output();
    out.assert_code(0);
    let ctd = TestContainerd::start();
    ctd.import(&file, "linux/amd64");
    let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, std::slice::from_ref(&reference), "{}", ctd.log());
    assert!(ctd.content().contains(&set.config_digest("amd64")));
}

/// A layout with no name gives an archive K3s would store under its bare
/// tag: the mirror says so, naming the flag.
#[test]
fn an_archive_without_a_name_is_written_with_a_warning() {
    let dir = tempdir();
    layout(&dir.path().join("src"), "unnamed");
    let file = dir.path().join("app.tar");
    let out = mirror(&[
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("oci-archive:{}:v1", file.display()),
    ]);
    out.assert_code(0);
    out.assert_stderr_contains("records no image name");
    out.assert_stderr_contains("--name REGISTRY/NAME");
    let index: Value = serde_json::from_slice(
        &std::process::Command::new("tar")
            .args(["-xOf", file.to_str().unwrap(), "index.json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        index["manifests"][0]["annotations"]
            .get("io.containerd.image.name")
            .is_none(),
        "{index:#}"
    );
}

/// `--name` is a repository: a tag there (the tag is the target's) or a
/// malformed name is an input error before anything is written.
#[test]
fn a_name_with_a_tag_or_uppercase_is_refused_before_any_write() {
    let dir = tempdir();
    layout(&dir.path().join("src"), "bad");
    let file = dir.path().join("app.tar");
    for (name, says) in [
        ("10.0.0.5:5000/team/app:v2", "the tag is the target's"),
        ("10.0.0.5:5000/Team/App", "image_name"),
    ] {
        let out = mirror(&[
            &format!("oci:{}:v1", dir.path().join("src").display()),
            &format!("oci-archive:{}:v1", file.display()),
            "--name",
            name,
        ]);
        out.assert_code(2);
        out.assert_stderr_contains(says);
        out.assert_stderr_contains("--name");
        assert!(!file.exists());
    }
}

/// The seed's air-gap hop: a `docker save` archive carried in, written as an
/// OCI archive for K3s's images folder, imports under the name it was saved
/// as (Docker's normal form) with its own config.
#[test]
fn a_docker_save_archive_becomes_an_archive_k3s_imports_by_its_saved_name() {
    let dir = tempdir();
    let set = layout(&dir.path().join("src"), "saved");
    let saved = dir.path().join("saved.tar");
    crate::layout::skopeo(&[
        "--override-arch",
        "arm64",
        "copy",
        "--quiet",
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("docker-archive:{}:team/app:17", saved.display()),
    ]);
    let file = dir.path().join("app-arm64.tar");
    mirror(&[
        &format!("docker-archive:{}", saved.display()),
        &format!("oci-archive:{}", file.display()),
    ])
    .assert_code(0);
    let ctd = TestContainerd::start();
    ctd.import(&file, "linux/arm64");
    let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["docker.io/team/app:17"], "{}", ctd.log());
    assert!(ctd.content().contains(&set.config_digest("arm64")));
}

/// A `[[mirror]]` entry from a three-platform layout to `target` (under
/// `images/`, holding `{arch}`) run once: one outcome and one file per
/// platform, `app-ARCH.tar`. Returns the set and the folder.
fn mirror_per_platform(
    dir: &Path,
    salt: &str,
    target: &str,
    extra: &str,
) -> (crate::common::images::ImageSet, std::path::PathBuf) {
    let set = layout(&dir.join("src"), salt);
    let images = dir.join("images");
    let config = dir.join("archgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror]]\nsource = \"oci:{}:v1\"\ntarget = \"{}\"\n{extra}",
            dir.join("src").display(),
            target.replace("IMAGES", &images.display().to_string())
        ),
    )
    .unwrap();
    let out = archgate()
        .arg("--config")
        .arg(&config)
        .args(["mirror", "--json"])
        .output();
    let outcomes: Value = out.assert_code(0).json();
    assert_eq!(outcomes.as_array().unwrap().len(), 3, "{outcomes:#}");
    let mut files: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["app-amd64.tar", "app-arm64.tar", "app-mips64le.tar"]
    );
    (set, images)
}

/// Each `images/app-ARCH.tar` imports alone in a fresh containerd under
/// `name`, holding that platform's config and no other.
fn each_imports_alone(images: &Path, set: &crate::common::images::ImageSet, name: &str) {
    for arch in ["amd64", "arm64", "mips64le"] {
        let ctd = TestContainerd::start();
        ctd.import(
            &images.join(format!("app-{arch}.tar")),
            &format!("linux/{arch}"),
        );
        let names: Vec<String> = ctd.images().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [name], "{arch}: {}", ctd.log());
        let content = ctd.content();
        for other in ["amd64", "arm64", "mips64le"] {
            assert_eq!(
                content.contains(&set.config_digest(other)),
                other == arch,
                "app-{arch}.tar holds the {other} config?"
            );
        }
    }
}

/// K3s's images folder wants one archive per platform: a `[[mirror]]` target
/// with `{arch}` writes one file per platform of the source, each importing
/// under the configured name with that platform's config only.
#[test]
fn a_per_platform_target_writes_one_archive_per_platform_for_k3s() {
    let dir = tempdir();
    let (set, images) = mirror_per_platform(
        dir.path(),
        "folder",
        "oci-archive:IMAGES/app-{arch}.tar:v1",
        "name = \"10.0.0.5:5000/team/app\"\n",
    );
    each_imports_alone(&images, &set, "10.0.0.5:5000/team/app:v1");
}

/// An index with BuildKit-style attestations, into an archive for import:
/// the attestations are left out (containerd's import trips on them,
/// containerd#11344) and the index names only what the archive holds; with
/// `--keep-attestations` they travel too.
#[test]
fn attestations_stay_out_of_an_import_archive_unless_kept() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let set = image_set(Flavor::Oci, "attested");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LayoutStore::open_dir(&src, true).unwrap();
        crate::common::images::push_attested(&store, &set, archgate::image::media::OCI_INDEX, "v1")
            .await
            .unwrap();
    });
    let entries_in = |file: &Path| -> usize {
        let out = std::process::Command::new("tar")
            .args(["-xOf", file.to_str().unwrap(), "index.json"])
            .output()
            .unwrap();
        let top: Value = serde_json::from_slice(&out.stdout).unwrap();
        let digest = top["manifests"][0]["digest"].as_str().unwrap();
        let out = std::process::Command::new("tar")
            .args(["-xOf", file.to_str().unwrap()])
            .arg(format!("blobs/sha256/{}", &digest[7..]))
            .output()
            .unwrap();
        let index: Value = serde_json::from_slice(&out.stdout).unwrap();
        index["manifests"].as_array().unwrap().len()
    };
    let source = format!("oci:{}:v1", src.display());
    let file = dir.path().join("app.tar");
    let archive = format!("oci-archive:{}:v1", file.display());
    let name = ["--name", "10.0.0.5:5000/team/app"];
    mirror(&[&[source.as_str(), archive.as_str()], &name[..]].concat()).assert_code(0);
    assert_eq!(entries_in(&file), 3, "the three platforms, no attestation");
    let ctd = TestContainerd::start();
    ctd.import(&file, "linux/mips64le");
    assert_eq!(ctd.images().len(), 1, "{}", ctd.log());

    std::fs::remove_file(&file).unwrap();
    let kept = [source.as_str(), archive.as_str(), "--keep-attestations"];
    mirror(&[&kept[..], &name[..]].concat()).assert_code(0);
    assert_eq!(entries_in(&file), 6, "asked for: the attestations too");
}

/// An `{arch}` template with a `docker-archive:` target writes one `docker
/// save` file per platform of the source (one platform each, as Docker 19.03
/// loads them): skopeo reads each one's config back, and each imports in
/// containerd under the location's name with that platform's config only.
#[test]
fn an_arch_template_writes_one_docker_archive_per_platform() {
    let dir = tempdir();
    let (set, images) = mirror_per_platform(
        dir.path(),
        "docker-folder",
        "docker-archive:IMAGES/app-{arch}.tar:10.0.0.5:5000/team/app:v1",
        "",
    );
    for arch in ["amd64", "arm64", "mips64le"] {
        let file = images.join(format!("app-{arch}.tar"));
        assert_eq!(
            crate::docker_archive::skopeo_config_digest(&file),
            set.config_digest(arch),
            "app-{arch}.tar holds the {arch} config"
        );
    }
    each_imports_alone(&images, &set, "10.0.0.5:5000/team/app:v1");
}
