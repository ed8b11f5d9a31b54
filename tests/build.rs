//! `archgate build` end to end: the two Dockerfiles (a JDK base image
//! over a multi-arch Debian-like base, and a service image on top of it) built
//! for three platforms into a real registry and into an OCI layout, read back
//! with skopeo and through archgate's store; a rebuild is a no-op; `RUN
//! --mount` and a base of the wrong platform are refused (`RUN` itself:
//! `run_step`).

use std::io::Read;
use std::path::Path;

use archgate::config::Settings;
use archgate::image::{Digest, ImageRef};
use archgate::store::Store;
use archgate::store::registry::RegistryStore;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::common::images::ImageSet;
use crate::common::{
    Flavor, TestOutput, TestRegistry, image_set_with_env, push_image_set, skopeo_raw,
};

const DEBIAN_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ARCHES: [&str; 3] = ["amd64", "arm64", "mips64le"];

/// The first Dockerfile, on the test registry's base.
fn jdk_dockerfile(base: &str) -> String {
    format!(
        "FROM --platform=$TARGETPLATFORM {base}\nARG TARGETARCH\nWORKDIR /opt\nADD jdk8-${{TARGETARCH}} ./jdk\nENV JAVA_HOME /opt/jdk\nENV PATH $PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\nENV LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\n"
    )
}

/// A build context with `jdk8-<arch>/` trees whose files name their architecture.
fn context(dir: &Path) {
    for arch in ARCHES {
        let root = dir.join(format!("jdk8-{arch}"));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("jre/bin")).unwrap();
        std::fs::write(root.join("bin/java"), format!("java for {arch}\n")).unwrap();
        std::fs::write(root.join("jre/bin/java"), format!("jre java for {arch}\n")).unwrap();
        std::fs::write(root.join("release"), "JAVA_VERSION=\"1.8.0_412\"\n").unwrap();
    }
    std::fs::write(dir.join("app.jar"), "PK fake jar\n").unwrap();
}

/// archgate in `dir` (which holds archgate.toml), with its own cache.
fn run(dir: &Path, args: &[&str]) -> TestOutput {
    crate::common::archgate()
        .current_dir(dir)
        .env("ARCHGATE_CACHE", dir.join("cache"))
        .args(args)
        .output()
}

fn ok(out: &TestOutput) -> String {
    out.assert_code(0);
    out.stdout().to_string()
}

fn printed_digest(stdout: &str) -> String {
    let first = stdout.lines().next().unwrap_or_default();
    first
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default()
}

async fn blob(store: &dyn Store, desc: &Value) -> Vec<u8> {
    let digest = Digest::parse(desc["digest"].as_str().unwrap()).unwrap();
    let mut out = Vec::new();
    store
        .get_blob(&digest, desc["size"].as_u64())
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

/// `(path, content)` of every regular file in a gzip layer.
fn files(gz: &[u8]) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(e.header().uid().unwrap(), 0, "{path}");
        assert_eq!(e.header().mtime().unwrap(), 0, "{path}");
        out.push((path, s));
    }
    out
}

/// Requests that wrote to the registry so far (PUT, POST, PATCH in its access log).
fn writes(registry: &TestRegistry) -> usize {
    registry
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"POST ") || l.contains("\"PATCH "))
        .count()
}

/// A registry holding a three-platform base `REPO:TAG` (Debian's PATH), and a
/// directory with the build context and an archgate.toml for the registry.
async fn setup(
    flavor: Flavor,
    repo: &str,
    tag: &str,
) -> (TestRegistry, Settings, String, ImageSet, tempfile::TempDir) {
    let registry = TestRegistry::start_http();
    let settings = registry.settings();
    let base_ref = format!("{}:{tag}", registry.repo(repo));
    let store = RegistryStore::connect(&ImageRef::parse(&base_ref).unwrap(), &settings, true)
        .await
        .unwrap();
    let base = image_set_with_env(flavor, repo, &[DEBIAN_PATH]);
    push_image_set(&store, &base, Some(tag)).await.unwrap();
    let dir = crate::common::tempdir();
    context(dir.path());
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!("[registries.\"{}\"]\nhttp = true\n", registry.host()),
    )
    .unwrap();
    (registry, settings, base_ref, base, dir)
}

#[tokio::test]
async fn jdk_and_service_images_for_three_platforms_into_a_registry_and_a_layout() {
    let (registry, settings, base_ref, _, dir) =
        setup(Flavor::Oci, "debian", "bullseye-multiv1").await;
    std::fs::write(dir.path().join("Dockerfile"), jdk_dockerfile(&base_ref)).unwrap();
    let target = format!("{}:v1", registry.repo("debian-jdk8-multi"));
    let platforms = "linux/amd64,linux/arm64,linux/mips64le";

    let stdout = ok(&run(
        dir.path(),
        &["build", "--platform", platforms, "--image", &target, "."],
    ));
    let index_digest = printed_digest(&stdout);
    let raw = skopeo_raw(&registry, &target);
    assert_eq!(Digest::of(&raw).as_str(), index_digest, "{stdout}");
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(got, ARCHES);

    let store = RegistryStore::connect(&ImageRef::parse(&target).unwrap(), &settings, false)
        .await
        .unwrap();
    for (entry, arch) in entries.iter().zip(ARCHES) {
        let reference = format!(
            "{}@{}",
            registry.repo("debian-jdk8-multi"),
            entry["digest"].as_str().unwrap()
        );
        let manifest: Value = serde_json::from_slice(&skopeo_raw(&registry, &reference)).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(
            layers.len(),
            2,
            "the base layer and the ADD layer: {manifest}"
        );
        let config: Value =
            serde_json::from_slice(&blob(&store, &manifest["config"]).await).unwrap();
        assert_eq!(config["architecture"], arch);
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/jdk/bin:/opt/jdk/jre/bin",
                "JAVA_HOME=/opt/jdk",
                "LD_LIBRARY_PATH=:/opt/jdk/bin:/opt/jdk/jre/bin"
            ])
        );
        assert_eq!(config["config"]["WorkingDir"], "/opt");
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        let top = files(&blob(&store, &layers[1]).await);
        let java = top
            .iter()
            .find(|(p, _)| p == "opt/jdk/bin/java")
            .unwrap_or_else(|| panic!("{arch}: no opt/jdk/bin/java in {top:?}"));
        assert_eq!(java.1, format!("java for {arch}\n"));
        assert!(
            top.iter()
                .any(|(p, c)| p == "opt/jdk/jre/bin/java" && c.contains(arch))
        );
    }

    // A rebuild with nothing changed: same digest, not one write to the registry.
    let before = writes(&registry);
    let again = ok(&run(
        dir.path(),
        &["build", "--platform", platforms, "--image", &target, "."],
    ));
    assert_eq!(printed_digest(&again), index_digest);
    assert!(again.contains("nothing to write"), "{again}");
    assert!(
        again.contains("0 layer(s) written to the layer cache"),
        "{again}"
    );
    assert_eq!(
        writes(&registry),
        before,
        "a no-op rebuild wrote to the registry"
    );

    // The same build into an OCI layout gives the same index digest, byte for byte.
    let layout = dir.path().join("layout");
    let oci = format!("oci:{}:v1", layout.display());
    let out = ok(&run(
        dir.path(),
        &[
            "build",
            "--platform",
            platforms,
            "--image",
            &oci,
            "--json",
            ".",
        ],
    ));
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["index_digest"], index_digest.as_str());
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &oci])
        .output()
        .unwrap();
    assert!(
        skopeo.status.success(),
        "{}",
        String::from_utf8_lossy(&skopeo.stderr)
    );
    assert_eq!(Digest::of(&skopeo.stdout).as_str(), index_digest);

    // The service image on top, configured through [build] alone.
    let service = format!("{}:v1", registry.repo("service"));
    std::fs::write(
        dir.path().join("Dockerfile.service"),
        format!(
            "FROM --platform=$TARGETPLATFORM {target}\nCOPY app.jar /app/\nEXPOSE 8080\nCMD [\"java\", \"-jar\", \"/app/app.jar\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n[registries.\"{}\"]\nhttp = true\n[build]\ndockerfile = \"Dockerfile.service\"\nimage = \"{service}\"\n",
            registry.host()
        ),
    )
    .unwrap();
    let out = ok(&run(dir.path(), &["build"]));
    let index: Value = serde_json::from_slice(&skopeo_raw(&registry, &service)).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{out}");
    let first = format!(
        "{}@{}",
        registry.repo("service"),
        index["manifests"][0]["digest"].as_str().unwrap()
    );
    let manifest: Value = serde_json::from_slice(&skopeo_raw(&registry, &first)).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);
    let svc_store = RegistryStore::connect(&ImageRef::parse(&service).unwrap(), &settings, false)
        .await
        .unwrap();
    let config: Value =
        serde_json::from_slice(&blob(&svc_store, &manifest["config"]).await).unwrap();
    assert_eq!(config["config"]["Env"][1], "JAVA_HOME=/opt/jdk");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["java", "-jar", "/app/app.jar"])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    let top = files(&blob(&svc_store, &manifest["layers"][2]).await);
    assert_eq!(
        top,
        vec![
            ("app/".to_string(), String::new()),
            ("app/app.jar".to_string(), "PK fake jar\n".to_string())
        ]
    );
}

/// Builds `dockerfile` for `platform`; asserts exit 2 and returns stderr.
fn refused(dir: &Path, dockerfile: &str, platform: &str, image: &str) -> String {
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let out = run(
        dir,
        &["build", "--platform", platform, "--image", image, "."],
    );
    out.assert_code(2);
    out.stderr().to_string()
}

#[tokio::test]
async fn run_mount_and_a_base_of_another_platform_are_refused() {
    let (registry, _, base_ref, base, dir) = setup(Flavor::Docker, "base", "multi").await;
    let out_image = format!("oci:{}:v1", dir.path().join("out").display());

    let stderr = refused(
        dir.path(),
        &format!(
            "FROM {base_ref}\nWORKDIR /opt\nRUN --mount=type=secret,id=npmrc apt-get install -y openjdk-8-jdk\n"
        ),
        "linux/amd64",
        &out_image,
    );
    assert!(stderr.contains("Dockerfile:3: RUN --mount"), "{stderr}");
    assert!(stderr.contains("buildx"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing published");

    // The amd64 image alone, built for arm64: its config says otherwise.
    let amd64 = format!(
        "{}@{}",
        registry.repo("base"),
        base.images[0].manifest.digest
    );
    let stderr = refused(
        dir.path(),
        &format!("FROM {amd64}\nENV A=1\n"),
        "linux/arm64",
        &out_image,
    );
    assert!(
        stderr.contains("is an image for linux/amd64, not linux/arm64"),
        "{stderr}"
    );

    // A platform the base index lacks.
    let stderr = refused(
        dir.path(),
        &format!("FROM {base_ref}\n"),
        "linux/arm/v7",
        &out_image,
    );
    assert!(
        stderr.contains(
            "has no linux/arm/v7 image (it has linux/amd64, linux/arm64, linux/mips64le)"
        ),
        "{stderr}"
    );

    // From a Docker-list base, --format docker gives a Docker manifest list whose
    // layers carry Docker media types.
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base_ref}\nCOPY app.jar /app/\n"),
    )
    .unwrap();
    let target = format!("{}:docker", registry.repo("svc"));
    ok(&run(
        dir.path(),
        &[
            "build",
            "--platform",
            "linux/arm64",
            "--format",
            "docker",
            "--image",
            &target,
            ".",
        ],
    ));
    let index: Value = serde_json::from_slice(&skopeo_raw(&registry, &target)).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let m = format!(
        "{}@{}",
        registry.repo("svc"),
        index["manifests"][0]["digest"].as_str().unwrap()
    );
    let manifest: Value = serde_json::from_slice(&skopeo_raw(&registry, &m)).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
}

#[test]
fn the_buildx_driver_says_what_is_missing() {
    let dir = crate::common::tempdir();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nRUN make\n").unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        "[build]\ndriver = \"buildx\"\n",
    )
    .unwrap();
    let image = ["build", "--image", "127.0.0.1:5999/app:v1", "."];
    // No docker at all.
    let empty = crate::common::tempdir();
    let out = crate::common::archgate()
        .current_dir(dir.path())
        .env("PATH", empty.path())
        .args(image)
        .output();
    out.assert_code(2)
        .assert_stderr_contains("`docker` is not on PATH")
        .assert_stderr_contains("docker-buildx-plugin");
    // An OCI layout is not something buildx --push can write.
    run(dir.path(), &["build", "--image", "oci:out:v1", "."])
        .assert_code(2)
        .assert_stderr_contains("pushes to a registry");
}

#[test]
fn source_date_epoch_sets_every_timestamp() {
    let dir = crate::common::tempdir();
    context(dir.path());
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY app.jar /app/\nLABEL a=b\n",
    )
    .unwrap();
    let layout = format!("oci:{}:v1", dir.path().join("out").display());
    let build = |epoch: &str| {
        crate::common::archgate()
            .current_dir(dir.path())
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .env("SOURCE_DATE_EPOCH", epoch)
            .args([
                "build",
                "--platform",
                "linux/arm64",
                "--image",
                &layout,
                ".",
            ])
            .output()
    };
    ok(&build("1700000000"));
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--override-arch", "arm64", "--config", &layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert!(
        config["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["created"] == "2023-11-14T22:13:20Z")
    );
    build("yesterday")
        .assert_code(2)
        .assert_stderr_contains("SOURCE_DATE_EPOCH=yesterday");
}

/// Hole 8: `archgate build CONTEXT` reads `CONTEXT/Dockerfile`, as `docker
/// build` does; `--file` still names another one (relative to the working
/// directory). The working directory's own Dockerfile would fail (a RUN in
/// an empty image: no /bin/sh).
#[test]
fn regression_hole_8_build_context_reads_the_contexts_dockerfile() {
    let dir = crate::common::tempdir();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nRUN echo wrong file\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Other.dockerfile"),
        "FROM scratch\nCOPY hello.txt /other.txt\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "ctx",
            "--platform",
            "linux/amd64",
            "--image",
            "oci:out:v1",
        ];
        args.extend_from_slice(extra);
        run(dir.path(), &args)
    };
    let out = build(&[]);
    out.assert_code(0);
    let out = build(&["--file", "Other.dockerfile"]);
    out.assert_code(0);
    // And the working directory's one, when named, is what is read.
    let out = build(&["--file", "Dockerfile"]);
    assert_eq!(out.code(), Some(2), "{out}");
    out.assert_stderr_contains("RUN");
}

/// Layers are gzipped in fixed blocks on every core: one compressing thread
/// and two give byte-identical layers (the same index digest) for Debian's
/// real arm64 JRE home (≈200 MB, ≈70 MB compressed: enough blocks for a
/// thread to carry state from one to the next), and the real gzip(1) and
/// tar(1) read what was written.
#[test]
fn one_and_two_compressing_threads_build_the_same_digests() {
    let dir = crate::common::tempdir();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let jre = crate::common::jre::jre_root("arm64").join("usr/lib/jvm/java-17-openjdk-arm64");
    crate::common::jre::link_or_copy(&jre, &ctx.join("jdk"));
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD jdk /opt/jdk\n").unwrap();
    std::fs::write(
        dir.path().join("archgate.toml"),
        "platforms = [\"linux/arm64\"]\n",
    )
    .unwrap();
    let build = |threads: &str| {
        let out = crate::common::archgate()
            .current_dir(dir.path())
            .env(
                "ARCHGATE_CACHE",
                dir.path().join(format!("cache-{threads}")),
            )
            .env("ARCHGATE_BUILD__THREADS", threads)
            .args([
                "build",
                "ctx",
                "--platform",
                "linux/arm64",
                "--image",
                &format!("oci:out-{threads}:v1"),
            ])
            .output();
        printed_digest(&ok(&out))
    };
    let one = build("1");
    let two = build("2");
    assert!(one.starts_with("sha256:"), "{one}");
    assert_eq!(one, two, "the index digest depends on the thread count");
    // The layer blob: gzip -t and tar -t accept it and it holds the JRE.
    let blobs = dir.path().join("out-2/blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let t = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&layer)
        .status()
        .unwrap();
    assert!(t.success(), "gzip -t {}", layer.display());
    let list = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&layer)
        .output()
        .unwrap();
    assert!(list.status.success(), "tar -tzf {}", layer.display());
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.contains("opt/jdk/bin/java"),
        "{}",
        &names[..names.len().min(2000)]
    );
}

/// Hole 1: a build of two platforms while three are required — the default
/// `platforms`, or `[gate] required_platforms` — exits 1 naming the missing
/// platform, before anything is built: the registry sees no write (no blob,
/// no manifest, no tag) and a layout target is not even created.
#[tokio::test]
async fn regression_hole_1_build_of_two_platforms_while_three_are_required_publishes_nothing() {
    let (registry, _, base_ref, _, dir) = setup(Flavor::Oci, "base", "multi").await;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base_ref}\nCOPY app.jar /app/\n"),
    )
    .unwrap();
    let target = format!("{}:v1", registry.repo("svc"));
    let before = writes(&registry);

    // Default `platforms` (three); `--platform` names the two to build.
    let out = run(
        dir.path(),
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--image",
            &target,
            ".",
        ],
    );
    out.assert_code(1);
    out.assert_stderr_contains(
        "build would publish 2 of the 3 required platforms (`platforms` (the default))",
    );
    out.assert_stderr_contains("linux/mips64le missing");
    out.assert_stderr_contains("nothing was published");
    assert_eq!(writes(&registry), before, "{}", registry.log());
    let tags = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}", registry.repo("svc")))
        .output()
        .unwrap();
    assert!(
        !tags.status.success() || !String::from_utf8_lossy(&tags.stdout).contains("\"v1\""),
        "svc:v1 was published: {}",
        String::from_utf8_lossy(&tags.stdout)
    );

    // `[gate] required_platforms` names three while `platforms` builds two;
    // into a layout, which is not created.
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "platforms = [\"linux/amd64\", \"linux/arm64\"]\n[gate]\nrequired_platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/mips64le\"]\n[registries.\"{}\"]\nhttp = true\n",
            registry.host()
        ),
    )
    .unwrap();
    let layout = dir.path().join("out");
    let out = run(
        dir.path(),
        &[
            "build",
            "--image",
            &format!("oci:{}:v1", layout.display()),
            ".",
        ],
    );
    out.assert_code(1);
    out.assert_stderr_contains(
        "build would publish 2 of the 3 required platforms ([gate] required_platforms)",
    );
    out.assert_stderr_contains("linux/mips64le missing");
    assert!(!layout.exists(), "the layout was created");

    // The same build with the third platform publishes.
    let out = run(
        dir.path(),
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64,linux/mips64le",
            "--image",
            &target,
            ".",
        ],
    );
    out.assert_code(0);
    let index: Value = serde_json::from_slice(&skopeo_raw(&registry, &target)).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{index:#}");
}
