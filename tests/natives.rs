//! Integration tests: `native-libs` on real images — Debian's JREs plus
//! Debian's real per-architecture JNI builds (lz4-java, snappy-java, JNA and
//! the libraries they are linked against), and Spring-Boot-shaped fat jars
//! built here from those real `.so` files and Debian's real jars (which carry
//! `pom.properties`), placed where the upstream projects put their natives
//! (and wars and ears around them, as Maven's plugins lay them out). Also the
//! next Debian release's real libstdc++ and libjsoncpp (`fetch-jre.sh --set
//! newer`), Debian's musl (the host's `musl` package) and a program its
//! `musl-gcc` builds here.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use serde_json::Value;

use crate::common::jre::{
    Entry, debian_arch, files_layer, jni_layer, jni_root, jre_env, jre_layer, newer_root,
    shared_cache, triplet,
};
use crate::common::{archgate, tempdir};

const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/mips64le"];

/// A real JNI library of `arch` (`liblz4-java.so`, `libsnappyjava.so`, `libjnidispatch.system.so`).
fn jni_so(arch: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        jni_root(arch)
            .join("usr/lib")
            .join(triplet(arch))
            .join("jni")
            .join(name),
    )
    .unwrap()
}

/// Debian's real `usr/share/java/NAME` jar with `natives` added
/// (`(entry path, bytes)`), deflated like a Maven-built jar.
fn jar_with_natives(debian_jar: &str, natives: &[(String, Vec<u8>)]) -> Vec<u8> {
    let src = std::fs::read(jni_root("amd64").join("usr/share/java").join(debian_jar)).unwrap();
    let mut from = zip::ZipArchive::new(Cursor::new(src)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..from.len() {
        out.raw_copy_file(from.by_index_raw(i).unwrap()).unwrap();
    }
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in natives {
        out.start_file(path.as_str(), deflated).unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// JNA with its natives for all three CPUs, where JNA puts them.
fn jna_jar() -> Vec<u8> {
    let natives: Vec<(String, Vec<u8>)> = [
        ("amd64", "linux-x86-64"),
        ("arm64", "linux-aarch64"),
        ("mips64el", "linux-mips64el"),
    ]
    .iter()
    .map(|(arch, dir)| {
        (
            format!("com/sun/jna/{dir}/libjnidispatch.so"),
            jni_so(arch, "libjnidispatch.system.so"),
        )
    })
    .collect();
    jar_with_natives("jna-5.13.0.jar", &natives)
}

/// snappy-java with natives for x86-64 and AArch64 only, as upstream's 1.1.8.3 has.
fn snappy_jar() -> Vec<u8> {
    let natives: Vec<(String, Vec<u8>)> = [("amd64", "x86_64"), ("arm64", "aarch64")]
        .iter()
        .map(|(arch, dir)| {
            (
                format!("org/xerial/snappy/native/Linux/{dir}/libsnappyjava.so"),
                jni_so(arch, "libsnappyjava.so"),
            )
        })
        .collect();
    jar_with_natives("snappy-java-1.1.8.3.jar", &natives)
}

/// A Spring Boot fat jar: the service's pom.properties and `nested` jars
/// stored under `BOOT-INF/lib/`.
fn fat_jar(nested: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default();
    let stored = deflated.compression_method(zip::CompressionMethod::Stored);
    out.start_file("META-INF/MANIFEST.MF", deflated).unwrap();
    out.write_all(
        b"Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.JarLauncher\r\n\r\n",
    )
    .unwrap();
    out.start_file(
        "META-INF/maven/com.example/service/pom.properties",
        deflated,
    )
    .unwrap();
    out.write_all(b"groupId=com.example\nartifactId=service\nversion=1.0.0\n")
        .unwrap();
    for (name, bytes) in nested {
        out.start_file(format!("BOOT-INF/lib/{name}"), stored)
            .unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// The service image of one platform: JRE, Debian's JNI libraries, `/app/app.jar`.
fn service(platform: &str, app: &[u8]) -> Entry {
    let arch = debian_arch(platform);
    Entry {
        index_platform: platform.into(),
        config_platform: platform.into(),
        layers: vec![
            jre_layer(arch),
            jni_layer(arch),
            files_layer(&[("app/app.jar", app)]),
        ],
        env: jre_env(arch),
        runtime: serde_json::Value::Null,
    }
}

/// `oci:DIR:v1`; for one entry `PLATFORM @ oci:DIR:v1`, which [`verify`]
/// verifies for that platform only.
fn layout(dir: &Path, entries: &[Entry]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::common::jre::write_index(dir, entries, "v1"));
    match entries {
        [one] => format!("{} @ oci:{}:v1", one.index_platform, dir.display()),
        _ => format!("oci:{}:v1", dir.display()),
    }
}

/// `archgate verify --json` with `toml` as the configuration; `(exit code, report)`.
/// A one-platform image is verified for its platform (`platform:IMAGE`).
fn verify(dir: &Path, image: &str, toml: &str) -> (i32, Value) {
    let config = dir.join("archgate.toml");
    std::fs::write(&config, toml).unwrap();
    let (only, image) = match image.split_once(" @ ") {
        Some((p, i)) => (vec!["--platform", p], i),
        None => (vec![], image),
    };
    let out = archgate()
        .arg("verify")
        .arg("--json")
        .arg("--config")
        .arg(&config)
        .args(only)
        .arg(image)
        .env("ARCHGATE_CACHE", shared_cache())
        .output();
    (out.code().unwrap_or(-1), out.json_or_null())
}

fn natives<'a>(v: &'a Value, p: &str) -> &'a Value {
    crate::common::verify_check(v, p, "native-libs")
}

fn platform_outcome(v: &Value, p: &str) -> String {
    crate::common::platform_result(v, p)["outcome"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The `native-libs` message of a one-entry image verified statically, which
/// must fail that check on `platform` and so exit 1.
fn static_failure(dir: &Path, entry: Entry, platform: &str) -> String {
    let image = layout(&dir.join("layout"), &[entry]);
    let (code, v) = verify(dir, &image, STATIC);
    assert_eq!(code, 1, "{v:#}");
    let c = natives(&v, platform);
    assert_eq!(c["outcome"], "failed", "{v:#}");
    c["message"].as_str().unwrap().to_string()
}

/// No execution; the gate accepts the skipped Java runs, so the exit code is native-libs' verdict.
const STATIC: &str =
    "[gate]\nwaive_skipped = [\"java-version\", \"java-os-arch\"]\n[verify]\nrunner = \"static\"\n";

#[test]
fn a_three_platform_service_image_passes_native_libs_everywhere() {
    let dir = tempdir();
    let app = fat_jar(&[("jna-5.13.0.jar", jna_jar())]);
    let entries: Vec<Entry> = THREE.iter().map(|p| service(p, &app)).collect();
    let image = layout(&dir.path().join("layout"), &entries);
    let (code, v) = verify(dir.path(), &image, "");
    assert_eq!(code, 0, "{v:#}");
    for p in THREE {
        let c = natives(&v, p);
        assert_eq!(c["outcome"], "passed", "{p}: {}", c["message"]);
        let m = c["message"].as_str().unwrap();
        assert!(
            m.contains("(1 bundle natives)"),
            "{p}: the JNA jar was opened: {m}"
        );
        assert_eq!(platform_outcome(&v, p), "passed", "{p}");
    }
}

#[test]
fn the_static_runner_still_runs_native_libs() {
    let dir = tempdir();
    let app = fat_jar(&[("jna-5.13.0.jar", jna_jar())]);
    let entries: Vec<Entry> = THREE.iter().map(|p| service(p, &app)).collect();
    let image = layout(&dir.path().join("layout"), &entries);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 0, "{v:#}");
    for p in THREE {
        assert_eq!(natives(&v, p)["outcome"], "passed", "{p}: {v:#}");
    }
    // And it still fails what is wrong: an amd64 library in the arm64 image.
    let bad = service("linux/arm64", &app).with_layer(files_layer(&[(
        "usr/lib/aarch64-linux-gnu/jni/libsnappyjava.so",
        &jni_so("amd64", "libsnappyjava.so"),
    )]));
    let image = layout(&dir.path().join("bad"), &[bad]);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(natives(&v, "linux/arm64")["outcome"], "failed");
}

#[test]
fn an_amd64_library_in_the_arm64_image_fails_naming_the_file_and_its_cpu() {
    let dir = tempdir();
    let app = fat_jar(&[]);
    let entry = service("linux/arm64", &app).with_layer(files_layer(&[(
        "usr/lib/aarch64-linux-gnu/jni/libsnappyjava.so",
        &jni_so("amd64", "libsnappyjava.so"),
    )]));
    let m = static_failure(dir.path(), entry, "linux/arm64");
    assert!(
        m.contains(
            "/usr/lib/aarch64-linux-gnu/jni/libsnappyjava.so is built for x86-64, not AArch64"
        ),
        "{m}"
    );
    assert!(!m.contains("liblz4-java.so"), "only the offender: {m}");
}

#[test]
fn a_fat_jar_without_a_mips64el_native_fails_mips64le_naming_jar_and_coordinates() {
    let dir = tempdir();
    let app = fat_jar(&[
        ("jna-5.13.0.jar", jna_jar()),
        ("snappy-java-1.1.8.3.jar", snappy_jar()),
    ]);
    let entries: Vec<Entry> = THREE.iter().map(|p| service(p, &app)).collect();
    let image = layout(&dir.path().join("layout"), &entries);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 1, "{v:#}");
    for p in ["linux/amd64", "linux/arm64"] {
        assert_eq!(natives(&v, p)["outcome"], "passed", "{p}: {v:#}");
    }
    let c = natives(&v, "linux/mips64le");
    assert_eq!(c["outcome"], "failed");
    assert_eq!(
        c["message"],
        "/app/app.jar!BOOT-INF/lib/snappy-java-1.1.8.3.jar (org.xerial.snappy:snappy-java:1.1.8.3) \
         bundles natives for x86-64, AArch64 but not MIPS64 n64"
    );

    // Ignored by its Maven coordinates: the team knows it is unused on MIPS.
    let (code, v) = verify(
        dir.path(),
        &image,
        &format!("{STATIC}[verify.natives]\nignore = [\"org.xerial.snappy:snappy-java:*\"]\n"),
    );
    assert_eq!(code, 0, "{v:#}");
    let m = natives(&v, "linux/mips64le")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(m.contains("passed over by [verify.natives] ignore"), "{m}");

    // Ignored by its path in the image.
    let (code, _) = verify(
        dir.path(),
        &image,
        &format!(
            "{STATIC}[verify.natives]\nignore = [\"/app/app.jar!BOOT-INF/lib/snappy-*.jar\"]\n"
        ),
    );
    assert_eq!(code, 0);

    // Advisory: the failure stays visible, the platform and the verdict pass.
    let (code, v) = verify(
        dir.path(),
        &image,
        &format!("{STATIC}[verify.natives]\nrequired = false\n"),
    );
    assert_eq!(code, 0, "{v:#}");
    let c = natives(&v, "linux/mips64le");
    assert_eq!(c["outcome"], "failed");
    assert_eq!(c["advisory"], true);
    assert!(
        c["message"].as_str().unwrap().contains("snappy-java"),
        "{c}"
    );
    assert_eq!(platform_outcome(&v, "linux/mips64le"), "passed");
}

#[test]
fn a_library_whose_dependency_is_missing_fails_naming_both() {
    let dir = tempdir();
    // lz4-java's JNI library without liblz4.so.1 and libxxhash.so.0 beside it.
    let entry = Entry::jre("linux/amd64", "amd64").with_layer(files_layer(&[(
        "usr/lib/x86_64-linux-gnu/jni/liblz4-java.so",
        &jni_so("amd64", "liblz4-java.so"),
    )]));
    let m = static_failure(dir.path(), entry, "linux/amd64");
    assert!(
        m.starts_with("/usr/lib/x86_64-linux-gnu/jni/liblz4-java.so needs liblz4.so.1"),
        "{m}"
    );

    // The same library with its dependencies (Debian's liblz4-1, libxxhash0) passes.
    let entry = Entry::jre("linux/amd64", "amd64").with_layer(jni_layer("amd64"));
    let image = layout(&dir.path().join("good"), &[entry]);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 0, "{v:#}");

    // A path glob ignores the broken one.
    let entry = Entry::jre("linux/amd64", "amd64").with_layer(files_layer(&[(
        "opt/unused/liblz4-java.so",
        &jni_so("amd64", "liblz4-java.so"),
    )]));
    let image = layout(&dir.path().join("ignored"), &[entry]);
    let (code, v) = verify(
        dir.path(),
        &image,
        &format!("{STATIC}[verify.natives]\nignore = [\"/opt/unused/**\"]\n"),
    );
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn a_library_needing_a_newer_glibc_than_the_images_fails_naming_both_versions() {
    // A service vendoring the next Debian release's libstdc++ (real: it needs
    // GLIBC_2.38) into a bookworm image, whose libc6 2.36 defines up to GLIBC_2.36.
    let dir = tempdir();
    let lib =
        std::fs::read(newer_root("amd64").join("usr/lib/x86_64-linux-gnu/libstdc++.so.6")).unwrap();
    let entry = Entry::jre("linux/amd64", "amd64")
        .with_layer(files_layer(&[("opt/app/lib/libstdc++.so.6", &lib)]));
    let m = static_failure(dir.path(), entry, "linux/amd64");
    assert!(
        m.contains("/opt/app/lib/libstdc++.so.6 needs GLIBC_2.38 from libc.so.6, but the image's ")
            && m.contains("/libc.so.6 has up to GLIBC_2.36"),
        "{m}"
    );
}

#[test]
fn hostile_jars_cost_bounded_work_and_are_named() {
    let dir = tempdir();
    // Not a zip at all, and a nested "jar" whose name climbs out of the archive.
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file("../../etc/evil.jar", stored).unwrap();
    out.write_all(b"PK\x03\x04 not really").unwrap();
    let traversal = out.finish().unwrap().into_inner();
    // Jars nested six deep: opened to the bound, then named.
    let mut deep = fat_jar(&[]);
    for _ in 0..6 {
        deep = fat_jar(&[("inner.jar", deep)]);
    }
    let entry = Entry::jre("linux/amd64", "amd64").with_layer(files_layer(&[
        ("app/broken.jar", b"this is no zip"),
        ("app/traversal.jar", &traversal),
        ("app/deep.jar", &deep),
    ]));
    let image = layout(&dir.path().join("layout"), &[entry]);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 1, "{v:#}");
    let m = natives(&v, "linux/amd64")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(m.contains("/app/broken.jar cannot be read as a jar"), "{m}");
    assert!(
        m.contains("/app/traversal.jar!../../etc/evil.jar cannot be read as a jar"),
        "{m}"
    );
    assert!(
        m.contains("/app/deep.jar!BOOT-INF/lib/inner.jar!BOOT-INF/lib/inner.jar!BOOT-INF/lib/inner.jar!BOOT-INF/lib/inner.jar!BOOT-INF/lib/inner.jar is nested more than 4 jars deep"),
        "{m}"
    );
    // Nothing was written outside: the name is only shown.
    let mut s = String::new();
    let _ = std::fs::File::open("/etc/evil.jar").map(|mut f| f.read_to_string(&mut s));
    assert!(s.is_empty(), "no file written from a jar entry name");
}

/// A web or enterprise archive: `nested` jars under `dir` (`WEB-INF/lib/`,
/// `lib/`), each stored with `method`, as Maven's war and ear plugins lay them out.
fn web_archive(dir: &str, nested: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default();
    out.start_file("META-INF/MANIFEST.MF", deflated).unwrap();
    out.write_all(b"Manifest-Version: 1.0\r\n\r\n").unwrap();
    for (name, bytes) in nested {
        out.start_file(format!("{dir}{name}"), deflated.compression_method(method))
            .unwrap();
        out.write_all(bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn jars_nested_in_a_war_and_an_ear_stored_or_deflated_are_judged_by_their_natives() {
    let dir = tempdir();
    // snappy-java (x86-64 and AArch64 natives only) deflated in a war's
    // WEB-INF/lib/ and stored in an ear's lib/; JNA (all three) deflated in a war.
    let war = web_archive(
        "WEB-INF/lib/",
        &[("snappy-java-1.1.8.3.jar", snappy_jar())],
        zip::CompressionMethod::Deflated,
    );
    let ear = web_archive(
        "lib/",
        &[("snappy-java-1.1.8.3.jar", snappy_jar())],
        zip::CompressionMethod::Stored,
    );
    let jna_war = web_archive(
        "WEB-INF/lib/",
        &[("jna-5.13.0.jar", jna_jar())],
        zip::CompressionMethod::Deflated,
    );
    let entry = service("linux/mips64le", &fat_jar(&[])).with_layer(files_layer(&[
        ("srv/shop.war", &war),
        ("srv/shop.ear", &ear),
        ("srv/jna.war", &jna_war),
    ]));
    let m = static_failure(dir.path(), entry, "linux/mips64le");
    assert_eq!(
        m,
        "/srv/shop.ear!lib/snappy-java-1.1.8.3.jar (org.xerial.snappy:snappy-java:1.1.8.3) \
         bundles natives for x86-64, AArch64 but not MIPS64 n64; \
         /srv/shop.war!WEB-INF/lib/snappy-java-1.1.8.3.jar (org.xerial.snappy:snappy-java:1.1.8.3) \
         bundles natives for x86-64, AArch64 but not MIPS64 n64",
        "both offenders, named inside their archives; JNA's war passes"
    );

    // The deflated JNA jar in its war was opened too: its MIPS64 native counts.
    let entry = service("linux/mips64le", &fat_jar(&[]))
        .with_layer(files_layer(&[("srv/jna.war", &jna_war)]));
    let image = layout(&dir.path().join("jna"), &[entry]);
    let (code, v) = verify(dir.path(), &image, STATIC);
    assert_eq!(code, 0, "{v:#}");
    let m = natives(&v, "linux/mips64le")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(m.contains("(1 bundle natives)"), "{m}");
}

#[test]
fn a_library_needing_a_newer_glibcxx_than_the_images_libstdcxx_fails_naming_both_versions() {
    // The next Debian release's libjsoncpp (built by its GCC 14: needs
    // GLIBCXX_3.4.32, and no GLIBC_ newer than bookworm's) vendored into a
    // bookworm image, whose libstdc++6 defines up to GLIBCXX_3.4.30.
    let dir = tempdir();
    let lib = std::fs::read(newer_root("amd64").join("usr/lib/x86_64-linux-gnu/libjsoncpp.so.26"))
        .unwrap();
    let entry = Entry::jre("linux/amd64", "amd64")
        .with_layer(files_layer(&[("opt/app/lib/libjsoncpp.so.26", &lib)]));
    let m = static_failure(dir.path(), entry, "linux/amd64");
    assert_eq!(
        m,
        "/opt/app/lib/libjsoncpp.so.26 needs GLIBCXX_3.4.32 from libstdc++.so.6, \
         but the image's /usr/lib/x86_64-linux-gnu/libstdc++.so.6 has up to GLIBCXX_3.4.30"
    );
}

#[test]
fn a_program_whose_loader_is_missing_from_the_image_fails_naming_it_and_the_loader() {
    // A slimming layer deletes /lib64 (whiteout of Debian's loader link):
    // every program of the JRE still asks for /lib64/ld-linux-x86-64.so.2.
    let dir = tempdir();
    let entry = Entry::jre("linux/amd64", "amd64")
        .with_layer(files_layer(&[("lib64/.wh.ld-linux-x86-64.so.2", b"")]));
    let m = static_failure(dir.path(), entry, "linux/amd64");
    let home = "/usr/lib/jvm/java-17-openjdk-amd64";
    let want: Vec<String> = [
        "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
        format!("{home}/bin/java"),
        format!("{home}/bin/jpackage"),
        format!("{home}/bin/keytool"),
        format!("{home}/bin/rmiregistry"),
        format!("{home}/lib/jexec"),
        format!("{home}/lib/jspawnhelper"),
    ]
    .iter()
    .map(|p| format!("{p}: its program loader /lib64/ld-linux-x86-64.so.2 is not in the image"))
    .collect();
    assert_eq!(m, want.join("; "));
}

/// `/usr/local/bin/hello-musl`: a C program built here by Debian's `musl-gcc`
/// (musl-tools), dynamically linked: `PT_INTERP` /lib/ld-musl-x86_64.so.1,
/// `DT_NEEDED` libc.so.
fn musl_program(dir: &Path) -> Vec<u8> {
    let src = dir.join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n",
    )
    .unwrap();
    let out = dir.join("hello-musl");
    let status = std::process::Command::new("musl-gcc")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("musl-gcc: {e}: install musl-tools (scripts/setup.sh does)"));
    assert!(status.success(), "musl-gcc failed");
    std::fs::read(out).unwrap()
}

/// A musl root as Debian's `musl` package lays it out (the host's installed
/// files): /lib/x86_64-linux-musl/libc.so, the loader link to it, and
/// /etc/ld-musl-x86_64.path.
fn musl_layer(extra: &[(&str, &[u8])]) -> crate::common::jre::Layer {
    let read = |p: &str| {
        std::fs::read(p)
            .unwrap_or_else(|e| panic!("{p}: {e}: install musl (scripts/setup.sh does)"))
    };
    let libc = read("/lib/x86_64-linux-musl/libc.so");
    let path = read("/etc/ld-musl-x86_64.path");
    let mut tar = tar::Builder::new(Vec::new());
    let mut files: Vec<(&str, &[u8])> = vec![
        ("lib/x86_64-linux-musl/libc.so", &libc),
        ("etc/ld-musl-x86_64.path", &path),
    ];
    files.extend_from_slice(extra);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    tar.append_link(
        &mut h,
        "lib/ld-musl-x86_64.so.1",
        "x86_64-linux-musl/libc.so",
    )
    .unwrap();
    crate::common::jre::Layer::tar(tar.into_inner().unwrap().into())
}

#[test]
fn a_musl_program_in_a_glibc_image_and_a_glibc_library_in_a_musl_image_fail_naming_both_libcs() {
    let dir = tempdir();
    let hello = musl_program(dir.path());
    // In Debian's JRE (glibc).
    let entry = Entry::jre("linux/amd64", "amd64")
        .with_layer(files_layer(&[("usr/local/bin/hello-musl", &hello)]));
    let m = static_failure(dir.path(), entry, "linux/amd64");
    assert_eq!(
        m,
        "/usr/local/bin/hello-musl is linked against musl (libc.so), \
         but the image has glibc (/lib/x86_64-linux-gnu/libc.so.6)"
    );

    // In a musl image: the musl program is at home, Debian's snappy-java JNI
    // build (glibc: DT_NEEDED libc.so.6) is not.
    let snappy = jni_so("amd64", "libsnappyjava.so");
    let entry = Entry {
        index_platform: "linux/amd64".into(),
        config_platform: "linux/amd64".into(),
        layers: vec![musl_layer(&[
            ("usr/local/bin/hello-musl", &hello),
            ("usr/lib/jni/libsnappyjava.so", &snappy),
        ])],
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        runtime: Value::Null,
    };
    let image = layout(&dir.path().join("musl"), &[entry]);
    let (_, v) = verify(dir.path(), &image, STATIC);
    let c = natives(&v, "linux/amd64");
    assert_eq!(c["outcome"], "failed", "{v:#}");
    assert_eq!(
        c["message"],
        "/usr/lib/jni/libsnappyjava.so is linked against glibc (libc.so.6), \
         but the image has musl (/lib/ld-musl-x86_64.so.1)"
    );
}
