//! Real JRE images for verification tests.
//!
//! `scripts/fetch-jre.sh` unpacks Debian's `openjdk-17-jre-headless` and its
//! runtime closure per architecture into `~/.cache/archgate/jre/ARCH/root`
//! (fetched once, then cached). Here each root becomes one gzip layer, written
//! once into `~/.cache/archgate/fixtures/` under a name derived from the
//! root's package stamp, so repeated runs do not compress 200 MB again. Images
//! are then assembled from layers and configs in an OCI layout, with whatever
//! labels a test needs — truthful or not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use archgate::image::media;
use archgate::image::{Digest, RawManifest};
use archgate::store::Store;
use archgate::store::layout::LayoutStore;
use bytes::Bytes;
use serde_json::json;

/// One layer blob: on disk (big) or in memory (small).
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub data: LayerData,
}

#[derive(Debug, Clone)]
pub enum LayerData {
    File(PathBuf),
    Bytes(Bytes),
}

impl Layer {
    /// An uncompressed layer from tar bytes.
    pub fn tar(bytes: Bytes) -> Layer {
        let digest = Digest::of(&bytes);
        Layer {
            media_type: media::OCI_LAYER_TAR.into(),
            diff_id: digest.clone(),
            digest,
            size: bytes.len() as u64,
            data: LayerData::Bytes(bytes),
        }
    }

    /// A gzip layer from tar bytes.
    pub fn gzip(tar: Bytes) -> Layer {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let bytes = Bytes::from(gz.finish().unwrap());
        Layer {
            media_type: media::OCI_LAYER_GZIP.into(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            diff_id: Digest::of(&tar),
            data: LayerData::Bytes(bytes),
        }
    }
}

/// What one index entry (and its image) looks like.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The platform the index entry claims, `os/arch[/variant]`.
    pub index_platform: String,
    /// The platform the config states (usually the same).
    pub config_platform: String,
    pub layers: Vec<Layer>,
    pub env: Vec<String>,
    /// More of the config's `config` (`Entrypoint`, `User`, …); `Null`: none.
    pub runtime: serde_json::Value,
}

impl Entry {
    /// A truthful image of `jre_arch`'s JRE (Debian arch name) for `platform`.
    pub fn jre(platform: &str, jre_arch: &str) -> Entry {
        Entry {
            index_platform: platform.into(),
            config_platform: platform.into(),
            layers: vec![jre_layer(jre_arch)],
            env: jre_env(jre_arch),
            runtime: serde_json::Value::Null,
        }
    }
}

/// `JAVA_HOME` and `PATH` as a Dockerfile for the JRE would set them.
pub fn jre_env(jre_arch: &str) -> Vec<String> {
    let home = format!("/usr/lib/jvm/java-17-openjdk-{jre_arch}");
    vec![
        format!("JAVA_HOME={home}"),
        format!("PATH={home}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ]
}

/// The Debian architecture of a platform's JRE.
pub fn debian_arch(platform: &str) -> &'static str {
    match platform {
        "linux/amd64" => "amd64",
        "linux/arm64" => "arm64",
        "linux/mips64le" => "mips64el",
        other => panic!("no JRE fixture for {other}"),
    }
}

/// The JRE root of a Debian architecture, which `scripts/fetch-jre.sh` (run
/// by `./scripts/test.sh`'s set-up) unpacked; the harness never fetches it.
pub fn jre_root(arch: &str) -> PathBuf {
    fetched_root("jre", arch)
}

/// A cache shared by the tests of this run and later runs: unpacked JRE roots
/// are reused, as they are on a CI runner.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verify-cache")
}

pub fn fixture_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    base.join("archgate").join("fixtures")
}

/// The JRE of `arch` as one gzip layer (cached across runs by the root's stamp).
pub fn jre_layer(arch: &str) -> Layer {
    static LAYERS: OnceLock<Mutex<Vec<(String, Layer)>>> = OnceLock::new();
    let layers = LAYERS.get_or_init(Default::default);
    // One build per architecture at a time; other tests wait for it.
    let mut guard = layers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, l)) = guard.iter().find(|(a, _)| a == arch) {
        return l.clone();
    }
    let root = jre_root(arch);
    let stamp = std::fs::read(root.parent().unwrap().join("stamp")).expect("fetch-jre stamp");
    let stamp_digest = Digest::of(&[b"fixture-v1\n".as_slice(), &stamp].concat());
    let key = &stamp_digest.hex()[..16];
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let blob = dir.join(format!("jre-{arch}-{key}.tar.gz"));
    let meta = dir.join(format!("jre-{arch}-{key}.json"));
    let layer = match std::fs::read(&meta) {
        Ok(m) if blob.is_file() => {
            let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
            Layer {
                media_type: media::OCI_LAYER_GZIP.into(),
                digest: Digest::parse(v["digest"].as_str().unwrap()).unwrap(),
                size: v["size"].as_u64().unwrap(),
                diff_id: Digest::parse(v["diff_id"].as_str().unwrap()).unwrap(),
                data: LayerData::File(blob.clone()),
            }
        }
        _ => {
            let layer = build_layer(&root, &blob);
            let m = json!({"digest": layer.digest.to_string(), "size": layer.size, "diff_id": layer.diff_id.to_string()});
            std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
            layer
        }
    };
    guard.push((arch.to_string(), layer.clone()));
    layer
}

/// Writes `root` as a sorted, reproducible tar.gz to `dest`.
fn build_layer(root: &Path, dest: &Path) -> Layer {
    use sha2::Digest as _;
    use std::io::Write;

    struct Tee<W> {
        inner: W,
        sha: sha2::Sha256,
    }
    impl<W: Write> Write for Tee<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(b)?;
            self.sha.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let tmp = dest.with_extension("tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let outer = Tee {
        inner: std::io::BufWriter::new(file),
        sha: sha2::Sha256::new(),
    };
    let gz = flate2::write::GzEncoder::new(outer, flate2::Compression::fast());
    let inner = Tee {
        inner: gz,
        sha: sha2::Sha256::new(),
    };
    let mut tar = tar::Builder::new(inner);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    walk(root, root, &mut paths);
    paths.sort();
    for rel in paths {
        tar.append_path_with_name(root.join(&rel), &rel).unwrap();
    }
    let inner = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(inner.sha.finalize()));
    let mut outer = inner.inner.finish().unwrap();
    outer.flush().unwrap();
    let digest = format!("sha256:{}", hex::encode(outer.sha.clone().finalize()));
    drop(outer);
    std::fs::rename(&tmp, dest).unwrap();
    Layer {
        media_type: media::OCI_LAYER_GZIP.into(),
        digest: Digest::parse(&digest).unwrap(),
        size: std::fs::metadata(dest).unwrap().len(),
        diff_id: Digest::parse(&diff_id).unwrap(),
        data: LayerData::File(dest.to_path_buf()),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let ty = e.file_type().unwrap();
        out.push(rel);
        if ty.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn split(platform: &str) -> (String, String, Option<String>) {
    let mut it = platform.split('/');
    let os = it.next().unwrap().to_string();
    let arch = it.next().unwrap().to_string();
    (os, arch, it.next().map(str::to_string))
}

/// Writes the entries as one OCI index into the layout at `dir`, tagged `tag`;
/// returns the index digest. Layers are hard-linked when on disk.
pub async fn write_index(dir: &Path, entries: &[Entry], tag: &str) -> Digest {
    let store = LayoutStore::open_dir(dir, true).unwrap();
    let mut descriptors = Vec::new();
    for e in entries {
        for l in &e.layers {
            let reader: archgate::store::BlobReader = match &l.data {
                LayerData::Bytes(b) => Box::pin(std::io::Cursor::new(b.to_vec())),
                LayerData::File(p) => Box::pin(tokio::fs::File::open(p).await.unwrap()),
            };
            store.put_blob(&l.digest, l.size, reader).await.unwrap();
        }
        let (os, arch, variant) = split(&e.config_platform);
        let mut config = json!({
            "architecture": arch,
            "os": os,
            "config": {"Env": e.env},
            "rootfs": {"type": "layers", "diff_ids": e.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        if let serde_json::Value::Object(more) = &e.runtime {
            for (k, v) in more {
                config["config"][k] = v.clone();
            }
        }
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = Digest::of(&config);
        store
            .put_blob(
                &config_digest,
                config.len() as u64,
                Box::pin(std::io::Cursor::new(config.clone())),
            )
            .await
            .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": e.layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let manifest =
            RawManifest::from_bytes(manifest.into(), Some(media::OCI_MANIFEST), "m").unwrap();
        store.put_manifest(&manifest, None).await.unwrap();
        let (os, arch, variant) = split(&e.index_platform);
        let mut platform = json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        descriptors.push(json!({
            "mediaType": media::OCI_MANIFEST,
            "digest": manifest.digest.to_string(),
            "size": manifest.bytes.len(),
            "platform": platform,
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": descriptors,
    }))
    .unwrap();
    let index = RawManifest::from_bytes(index.into(), Some(media::OCI_INDEX), "i").unwrap();
    store.put_manifest(&index, Some(tag)).await.unwrap();
    store.commit().await.unwrap();
    index.digest
}

/// `cp -al SRC DST` (hard links: no bytes copied), else `cp -a`.
pub fn link_or_copy(src: &Path, dst: &Path) {
    let copy = |flag: &str| {
        Command::new("cp")
            .arg(flag)
            .arg(src)
            .arg(dst)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        copy("-al") || copy("-a"),
        "copy {} to {}",
        src.display(),
        dst.display()
    );
}

/// The main job's build context under `dir`: per architecture `base-ARCH/` (the
/// Debian runtime root) and `jdk-ARCH/` (the JRE home), hard-linked (else
/// copied) from the fetched JREs, and a `.dockerignore` keeping the JVM out of
/// the base — what scripts/main-job.sh makes for examples/jdk/Dockerfile.
pub fn jdk_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("context");
    std::fs::create_dir_all(&ctx).unwrap();
    for p in ["linux/amd64", "linux/arm64", "linux/mips64le"] {
        let deb = debian_arch(p);
        let arch = p.trim_start_matches("linux/");
        let root = jre_root(deb);
        for (src, dst) in [
            (root.clone(), format!("base-{arch}")),
            (
                root.join(format!("usr/lib/jvm/java-17-openjdk-{deb}")),
                format!("jdk-{arch}"),
            ),
        ] {
            link_or_copy(&src, &ctx.join(&dst));
        }
    }
    std::fs::write(ctx.join(".dockerignore"), "base-*/usr/lib/jvm\n").unwrap();
    ctx
}

/// examples/jdk/Dockerfile, the seed's JDK image: `FROM ${BASE}` (default
/// `oci:archgate-out/base:latest`, relative to the job's directory; see
/// [`base_image`]).
pub fn jdk_dockerfile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jdk/Dockerfile")
}

/// examples/base/Dockerfile (the main job's Debian base) built by `archgate
/// build` from `ctx` ([`jdk_context`]) for the three platforms into
/// `oci:DIR/archgate-out/base:latest` — where examples/jdk/Dockerfile's
/// default `BASE` finds it when `dir` is the job's directory. Returns the
/// absolute location (for `[build.args] BASE`).
pub fn base_image(dir: &Path, ctx: &Path) -> String {
    let location = format!("oci:{}/archgate-out/base:latest", dir.display());
    crate::common::archgate()
        .arg("build")
        .arg("-f")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/base/Dockerfile"))
        .args(["--image", &location])
        .arg(ctx)
        .env("ARCHGATE_CACHE", shared_cache())
        .assert_success();
    location
}

/// The root of Debian's JNI builds for `arch` (`scripts/fetch-jre.sh --set jni`):
/// `usr/lib/<triplet>/jni/{liblz4-java,libsnappyjava,libjnidispatch.system}.so`,
/// the libraries they need, and `usr/share/java/*.jar` (pom.properties, no natives).
pub fn jni_root(arch: &str) -> PathBuf {
    fetched_root("jni", arch)
}

/// The root of `scripts/fetch-jre.sh --set newer` for `arch`: the next Debian
/// release's real `libstdc++.so.6`, which needs `GLIBC_2.38` (bookworm's libc has 2.36),
/// and its `libjsoncpp.so.26`, which needs `GLIBCXX_3.4.32` (bookworm's libstdc++ has 3.4.30).
pub fn newer_root(arch: &str) -> PathBuf {
    fetched_root("newer", arch)
}

/// The root of `scripts/fetch-jre.sh --set shell` for `arch`: Debian's dash
/// (`/bin/sh`) and coreutils with their libraries, for `RUN` steps.
pub fn shell_root(arch: &str) -> PathBuf {
    fetched_root("shell", arch)
}

/// `scripts/fetch-jre.sh --set SET --print-root ARCH`: a root `scripts/test.sh`
/// fetched. The harness never fetches one itself (fetching runs apt-get,
/// which is set-up's work): a missing root is a panic saying what to run.
fn fetched_root(set: &str, arch: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-jre.sh");
    let out = Command::new(&script)
        .args(["--set", set, "--print-root", arch])
        .output()
        .expect("run scripts/fetch-jre.sh");
    assert!(
        out.status.success(),
        "no {set} root for {arch} in the cache: run ./scripts/test.sh (its set-up fetches every root), or scripts/fetch-jre.sh --set {set} --arch {arch}"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The GNU triplet of a Debian architecture (its library directory).
pub fn triplet(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "mips64el" => "mips64el-linux-gnuabi64",
        other => panic!("no triplet for {other}"),
    }
}

/// The whole JNI root of `arch` as one uncompressed layer (small: < 1 MB).
pub fn jni_layer(arch: &str) -> Layer {
    let root = jni_root(arch);
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    walk(&root, &root, &mut paths);
    paths.sort();
    for rel in paths {
        tar.append_path_with_name(root.join(&rel), &rel).unwrap();
    }
    Layer::tar(Bytes::from(tar.into_inner().unwrap()))
}

/// A layer of the given files (`path` without the leading `/`, bytes).
pub fn files_layer(files: &[(&str, &[u8])]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, path, *bytes).unwrap();
    }
    Layer::tar(Bytes::from(tar.into_inner().unwrap()))
}

impl Entry {
    /// This entry with one more layer on top.
    pub fn with_layer(mut self, layer: Layer) -> Entry {
        self.layers.push(layer);
        self
    }
}
