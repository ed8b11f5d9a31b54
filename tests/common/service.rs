//! The example service (`examples/service/`) as test images: its jar,
//! compiled once per source hash by `javac --release 8` (Debian's
//! `openjdk-17-jdk-headless`, installed by scripts/setup.sh) into
//! `~/.cache/archgate/fixtures/`, plus Debian's real lz4-java JNI build for
//! each architecture (`scripts/fetch-jre.sh --set jni`), on top of the real
//! JRE images of [`super::jre`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use archgate::image::Digest;
use bytes::Bytes;
use serde_json::json;

use super::jre::{Entry, Layer, debian_arch, jni_root, jre_env, jre_layer};

/// The command the example's Dockerfile starts (ENTRYPOINT; CMD is empty).
pub const ENTRYPOINT: [&str; 4] = [
    "java",
    "-Djava.library.path=/app/lib",
    "-jar",
    "/app/service.jar",
];

/// The line the example prints when it is ready.
pub const READY: &str = "example service ready";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first entry called `name` under `dir` (not descending into links).
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir()
            && !p.is_symlink()
            && let Some(found) = find(&p, name)
        {
            return Some(found);
        }
    }
    None
}

/// A file of the JNI root, links followed (Debian ships versioned names
/// behind links: lz4-java.jar → lz4-java-1.8.0.jar); panics naming it when
/// missing.
fn jni_file(deb_arch: &str, name: &str) -> PathBuf {
    let root = jni_root(deb_arch);
    find(&root, name)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p.starts_with(&root) && p.is_file())
        .unwrap_or_else(|| panic!("{name} not in {}", root.display()))
}

/// examples/service's jar, compiled once per source hash (cached outside
/// the checkout). Fails naming the package when `javac` is missing.
pub fn service_jar() -> PathBuf {
    static JAR: OnceLock<PathBuf> = OnceLock::new();
    JAR.get_or_init(|| {
        let source = repo().join("examples/service/src/archgate/example/Main.java");
        let text = std::fs::read(&source).expect("examples/service source");
        let digest = Digest::of(&[b"service-jar-v2\n".as_slice(), &text].concat());
        let dir = super::jre::fixture_dir().join(format!("service-{}", &digest.hex()[..16]));
        let jar = dir.join("service.jar");
        if jar.is_file() {
            return jar;
        }
        let lz4 = jni_file("amd64", "lz4-java.jar");
        let work = tempfile::tempdir_in(super::jre::fixture_dir()).unwrap();
        let classes = work.path().join("classes");
        let javac = Command::new("javac")
            .args(["--release", "8", "-cp"])
            .arg(&lz4)
            .arg("-d")
            .arg(&classes)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| {
                panic!("javac: {e}: install openjdk-17-jdk-headless (scripts/setup.sh does)")
            });
        assert!(
            javac.status.success(),
            "javac failed:\n{}",
            String::from_utf8_lossy(&javac.stderr)
        );
        let manifest = work.path().join("MANIFEST.MF");
        std::fs::write(
            &manifest,
            "Main-Class: archgate.example.Main\nPremain-Class: archgate.example.Main\nClass-Path: lz4-java.jar\n",
        )
        .unwrap();
        let built = work.path().join("service.jar");
        let status = Command::new("jar")
            .arg("cfm")
            .arg(&built)
            .arg(&manifest)
            .arg("-C")
            .arg(&classes)
            .arg(".")
            .status()
            .expect("jar (openjdk-17-jdk-headless)");
        assert!(status.success(), "jar failed");
        std::fs::create_dir_all(&dir).unwrap();
        // Another test process may have won the race: either jar is the same.
        let _ = std::fs::rename(&built, &jar);
        jar
    })
    .clone()
}

/// The application layer: /app/service.jar, /app/lz4-java.jar and, in
/// /app/lib, liblz4-java.so with the libraries it needs — built for
/// `lib_arch` (a Debian architecture; another platform's to make it wrong).
pub fn app_layer(lib_arch: &str) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        tar.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir("app/");
    dir("app/lib/");
    let files = [
        ("app/service.jar", service_jar()),
        ("app/lz4-java.jar", jni_file(lib_arch, "lz4-java.jar")),
        (
            "app/lib/liblz4-java.so",
            jni_file(lib_arch, "liblz4-java.so"),
        ),
        ("app/lib/liblz4.so.1", jni_file(lib_arch, "liblz4.so.1")),
        (
            "app/lib/libxxhash.so.0",
            jni_file(lib_arch, "libxxhash.so.0"),
        ),
    ];
    for (name, src) in files {
        let data = std::fs::read(&src).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    Layer::gzip(Bytes::from(tar.into_inner().unwrap()))
}

/// The example service image of `platform`, with the JNI library of
/// `lib_arch`, as the example Dockerfile makes it: Env (JAVA_HOME, PATH,
/// LD_LIBRARY_PATH), WorkingDir /app, User 1000:1000, ENTRYPOINT.
pub fn service_entry(platform: &str, lib_arch: &str) -> Entry {
    let deb = debian_arch(platform);
    let mut env = jre_env(deb);
    env.push("LD_LIBRARY_PATH=/app/lib".into());
    Entry {
        index_platform: platform.into(),
        config_platform: platform.into(),
        layers: vec![jre_layer(deb), app_layer(lib_arch)],
        env,
        runtime: json!({
            "Entrypoint": ENTRYPOINT,
            "WorkingDir": "/app",
            "User": "1000:1000",
        }),
    }
}

/// The main job's service context under `dir` (what scripts/main-job.sh
/// makes for examples/service/Dockerfile): service.jar, lz4-java.jar and per
/// platform `lib-ARCH/` with Debian's liblz4-java.so and what it needs.
pub fn service_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("service-context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(service_jar(), ctx.join("service.jar")).unwrap();
    std::fs::copy(jni_file("amd64", "lz4-java.jar"), ctx.join("lz4-java.jar")).unwrap();
    for p in ["linux/amd64", "linux/arm64", "linux/mips64le"] {
        let deb = debian_arch(p);
        let lib = ctx.join(format!("lib-{}", p.trim_start_matches("linux/")));
        std::fs::create_dir_all(&lib).unwrap();
        for so in ["liblz4-java.so", "liblz4.so.1", "libxxhash.so.0"] {
            std::fs::copy(jni_file(deb, so), lib.join(so)).unwrap();
        }
    }
    ctx
}

/// examples/service/Dockerfile: `FROM ${JDK}` (default `oci:archgate-out/jdk:latest`).
pub fn service_dockerfile() -> PathBuf {
    repo().join("examples/service/Dockerfile")
}
