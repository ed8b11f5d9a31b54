//! Integration tests: the hostile-input corpus in tests/hostile/. Every
//! Dockerfile and configuration there is wrong in a way users (or attackers)
//! produce; each must give exit 2 with a clear error containing the file's
//! `# expect:` text — never a panic, never anything published.

use std::path::{Path, PathBuf};

use crate::common::{TestOutput, archgate, tempdir};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus {kind} too small");
    files
}

/// The `# expect: TEXT` line of a corpus file.
fn expectation(file: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()))
        .trim()
        .to_string()
}

fn check(file: &Path, out: &TestOutput) -> String {
    let stderr = out.stderr().to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(!stderr.contains("panicked"), "{name}: panic\n{out}");
    assert_eq!(out.code(), Some(2), "{name}: want exit 2\n{out}");
    let want = expectation(file);
    assert!(
        stderr.contains(&want),
        "{name}: the error should mention `{want}`:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{name}: one error line\n{stderr}"
    );
    stderr
}

#[test]
fn hostile_dockerfiles_are_refused_clearly_and_publish_nothing() {
    let dir = tempdir();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("x"), "x").unwrap();
    for file in corpus("dockerfiles") {
        let out_dir = dir.path().join("out");
        let out = archgate()
            .current_dir(dir.path())
            .args(["build", "--platform", "linux/amd64", "-f"])
            .arg(&file)
            .arg("--image")
            .arg(format!("oci:{}:v1", out_dir.display()))
            .arg(&ctx)
            .env("ARCHGATE_CACHE", dir.path().join("cache"))
            .output();
        check(&file, &out);
        assert!(
            !out_dir.exists(),
            "{}: something was published",
            file.display()
        );
    }
}

#[test]
fn hostile_configurations_are_refused_naming_the_key() {
    let dir = tempdir();
    for file in corpus("configs") {
        // verify checks every section before it touches an image.
        let out = archgate()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&file)
            .args(["verify", "oci:/nonexistent/archgate-hostile:v1"])
            .output();
        let stderr = check(&file, &out);
        assert!(
            !stderr.contains("archgate-hostile"),
            "{}: the configuration is checked first:\n{stderr}",
            file.display()
        );
    }
}

/// A hand-written OCI layout, so that its content can be wrong on purpose.
struct RawLayout {
    dir: PathBuf,
}

impl RawLayout {
    fn new(dir: PathBuf) -> RawLayout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        RawLayout { dir }
    }

    /// Stores `bytes` under `name` (its digest unless lying) and returns a descriptor.
    fn blob_named(
        &self,
        media_type: &str,
        name: &str,
        bytes: &[u8],
        size: u64,
    ) -> serde_json::Value {
        std::fs::write(
            self.dir
                .join("blobs/sha256")
                .join(name.trim_start_matches("sha256:")),
            bytes,
        )
        .unwrap();
        serde_json::json!({"mediaType": media_type, "digest": name, "size": size})
    }

    fn blob(&self, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let d = archgate::image::Digest::of(bytes).to_string();
        self.blob_named(media_type, &d, bytes, bytes.len() as u64)
    }

    /// One linux/amd64 image: `config` and `layers` as given, `manifest` built unless given.
    fn image(
        &self,
        config: serde_json::Value,
        layers: Vec<serde_json::Value>,
        manifest: Option<Vec<u8>>,
    ) -> String {
        let manifest = manifest.unwrap_or_else(|| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": layers,
            }))
            .unwrap()
        });
        let mut m = self.blob("application/vnd.oci.image.manifest.v1+json", &manifest);
        m["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [m],
        }))
        .unwrap();
        let mut i = self.blob("application/vnd.oci.image.index.v1+json", &index);
        i["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [i]})).unwrap(),
        )
        .unwrap();
        format!("oci:{}:v1", self.dir.display())
    }

    fn config(&self, env: &[&str]) -> serde_json::Value {
        let c = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": env},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap();
        self.blob("application/vnd.oci.image.config.v1+json", &c)
    }
}

fn tar_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, body, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(body.len() as u64);
        t.append_data(&mut h, name, *body).unwrap();
    }
    t.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// `archgate verify --json --runner static IMAGE`: (exit code, JSON or Null, stderr).
fn verify_static(image: &str, extra_env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let dir = tempdir();
    let out = archgate()
        .args(["verify", "--json", "--runner", "static", image])
        .env("ARCHGATE_CACHE", dir.path().join("cache"))
        .envs(extra_env)
        .output();
    assert!(!out.stderr().contains("panicked"), "panic:\n{out}");
    (
        out.code().unwrap_or(-1),
        out.json_or_null(),
        out.stderr().to_string(),
    )
}

fn amd64_check(v: &serde_json::Value, id: &str) -> (String, String) {
    let c = v["platforms"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == id)
        .unwrap();
    (
        c["outcome"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn hostile_images_fail_the_right_check_with_a_clear_message() {
    let dir = tempdir();
    let java_env = ["JAVA_HOME=/opt/jdk", "PATH=/opt/jdk/bin:/usr/bin:/bin"];

    // index.json that is not JSON.
    let l = RawLayout::new(dir.path().join("not-json"));
    let image = l.image(l.config(&java_env), vec![], None);
    std::fs::write(l.dir.join("index.json"), "{ this is not json").unwrap();
    let (code, _, stderr) = verify_static(&image, &[]);
    assert!(matches!(code, 1 | 2), "{stderr}");
    assert!(stderr.contains("index.json"), "names the file: {stderr}");

    // A manifest whose `layers` is not a list.
    let l = RawLayout::new(dir.path().join("bad-manifest"));
    let cfg = l.config(&java_env);
    let bad = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": "none"})).unwrap();
    let image = l.image(cfg, vec![], Some(bad));
    let (code, v, stderr) = verify_static(&image, &[]);
    assert_eq!(code, 1, "{stderr}\n{v}");
    let (outcome, message) = amd64_check(&v, "manifest");
    assert_eq!(outcome, "failed", "{message}");
    assert!(
        message.contains("manifest sha256:"),
        "names the manifest: {message}"
    );

    // A config blob whose bytes do not match its digest.
    let l = RawLayout::new(dir.path().join("wrong-digest"));
    let honest = l.config(&java_env);
    let liar = l.blob_named(
        "application/vnd.oci.image.config.v1+json",
        honest["digest"].as_str().unwrap(),
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        honest["size"].as_u64().unwrap(),
    );
    let image = l.image(liar, vec![], None);
    let (code, v, stderr) = verify_static(&image, &[]);
    assert_eq!(code, 1, "{stderr}\n{v}");
    let (outcome, message) = amd64_check(&v, "manifest");
    assert_eq!(outcome, "failed");
    assert!(
        message.contains("digest") || message.contains("size"),
        "{message}"
    );

    // A layer declaring an absurd size.
    let l = RawLayout::new(dir.path().join("huge-size"));
    let layer = gzip(&tar_of(&[("opt/jdk/bin/java", b"x", 0o755)]));
    let d = archgate::image::Digest::of(&layer).to_string();
    let huge = l.blob_named(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &d,
        &layer,
        1 << 50,
    );
    let image = l.image(l.config(&java_env), vec![huge], None);
    let (code, v, stderr) = verify_static(&image, &[]);
    assert_eq!(code, 1, "{stderr}\n{v}");
    let (outcome, message) = amd64_check(&v, "layers");
    assert_eq!(outcome, "failed", "{message}");
    assert!(message.contains(&d), "names the layer: {message}");

    // A gzip bomb: 256 MiB of zeros in a few hundred KiB, past a 64 MiB limit.
    let l = RawLayout::new(dir.path().join("bomb"));
    let zeros = vec![0u8; 256 << 20];
    // Compressed by gzip(1) -9: fast and small where a debug build of zlib-rs is slow.
    let mut child = std::process::Command::new("gzip")
        .arg("-9")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let tar = tar_of(&[("opt/zeros", &zeros, 0o644)]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &tar));
    let bomb = child.wait_with_output().unwrap().stdout;
    writer.join().unwrap().unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let layer = l.blob("application/vnd.oci.image.layer.v1.tar+gzip", &bomb);
    let image = l.image(l.config(&java_env), vec![layer], None);
    let (code, v, stderr) = verify_static(
        &image,
        &[("ARCHGATE_VERIFY__MAX_UNPACKED_BYTES", "67108864")],
    );
    assert_eq!(code, 1, "{stderr}\n{v}");
    let (outcome, message) = amd64_check(&v, "layers");
    assert_eq!(outcome, "failed");
    assert!(
        message.contains("max_unpacked_bytes") || message.contains("single file"),
        "{message}"
    );

    // Bogus ELF: java is a shell script, libjvm.so a truncated header.
    let l = RawLayout::new(dir.path().join("bogus-elf"));
    let layer = gzip(&tar_of(&[
        (
            "opt/jdk/bin/java",
            b"#!/bin/sh\necho openjdk version 17\n",
            0o755,
        ),
        ("opt/jdk/lib/server/libjvm.so", b"\x7fELF\x02\x01", 0o644),
    ]));
    let layer = l.blob("application/vnd.oci.image.layer.v1.tar+gzip", &layer);
    let image = l.image(l.config(&java_env), vec![layer], None);
    let (code, v, stderr) = verify_static(&image, &[]);
    assert_eq!(code, 1, "{stderr}\n{v}");
    let (outcome, message) = amd64_check(&v, "jdk-elf");
    assert_eq!(outcome, "failed");
    assert!(
        message.contains("a script") && message.contains("truncated"),
        "{message}"
    );
}
