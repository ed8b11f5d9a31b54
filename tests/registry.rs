//! Integration tests: the registry store against a real `docker-registry`
//! (plain HTTP, and TLS with basic auth), read back through the store and
//! through skopeo; and the error messages a user meets when something is off.

use archgate::Error;
use archgate::config::{RegistrySettings, Secret, Settings};
use archgate::image::{ImageRef, Selector};
use archgate::store::registry::RegistryStore;
use archgate::store::{BlobPut, Store};
use tokio::io::AsyncReadExt;

use crate::common::{Flavor, TestRegistry, image_set, push_image_set, skopeo_raw};

async fn connect(reference: &str, settings: &Settings) -> archgate::Result<RegistryStore> {
    let image = ImageRef::parse(reference).expect("valid reference");
    RegistryStore::connect(&image, settings, true).await
}

fn tag(t: &str) -> Selector {
    Selector::Tag(t.into())
}

async fn read_all(store: &dyn Store, digest: &archgate::image::Digest, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .get_blob(digest, Some(size))
        .await
        .expect("get blob")
        .read_to_end(&mut out)
        .await
        .expect("blob reads and verifies");
    out
}

/// Pushes a set in `flavor` and reads everything back, through the store and skopeo.
async fn round_trip(registry: &TestRegistry, settings: &Settings, flavor: Flavor) {
    let name = format!("roundtrip/{}", flavor.name());
    let store = connect(&format!("{}:v1", registry.repo(&name)), settings)
        .await
        .expect("connect");
    let set = image_set(flavor, "round trip");
    push_image_set(&store, &set, Some("v1"))
        .await
        .expect("push");

    let desc = store.resolve(&tag("v1")).await.expect("resolve");
    assert_eq!(desc.digest, set.index.digest);
    assert_eq!(desc.media_type, set.index.media_type);
    assert_eq!(desc.size, set.index.bytes.len() as u64);

    let by_tag = store.get_manifest(&tag("v1")).await.expect("index by tag");
    assert_eq!(by_tag.bytes, set.index.bytes);
    let skopeo = skopeo_raw(registry, &format!("{}:v1", registry.repo(&name)));
    assert_eq!(skopeo, set.index.bytes.to_vec(), "skopeo sees other bytes");

    for image in &set.images {
        let m = store
            .get_manifest(&Selector::Digest(image.manifest.digest.clone()))
            .await
            .expect("manifest by digest");
        assert_eq!(m.bytes, image.manifest.bytes);
        assert_eq!(m.media_type, image.manifest.media_type);
        let skopeo = skopeo_raw(
            registry,
            &format!("{}@{}", registry.repo(&name), image.manifest.digest),
        );
        assert_eq!(skopeo, image.manifest.bytes.to_vec());
    }

    for (digest, bytes) in set.blobs() {
        assert!(store.blob_exists(&digest).await.unwrap());
        assert_eq!(read_all(&store, &digest, bytes.len() as u64).await, bytes);
        let again = store
            .put_blob(
                &digest,
                bytes.len() as u64,
                Box::pin(std::io::Cursor::new(bytes.clone())),
            )
            .await
            .unwrap();
        assert_eq!(again, BlobPut::Present);
    }
    assert_eq!(store.tags().await.unwrap(), vec!["v1".to_string()]);

    // Cross-repository mount inside the same registry.
    let other = connect(
        &format!("{}:v1", registry.repo(&format!("{name}-copy"))),
        settings,
    )
    .await
    .expect("connect to the second repository");
    let (layer, size) = (
        archgate::image::Digest::of(&set.images[0].layer),
        set.images[0].layer.len() as u64,
    );
    assert!(!other.blob_exists(&layer).await.unwrap());
    assert!(
        other.mount_blob(&layer, &name).await.unwrap(),
        "mount refused"
    );
    assert!(other.blob_exists(&layer).await.unwrap());
    assert_eq!(read_all(&other, &layer, size).await, set.images[0].layer);
}

#[tokio::test]
async fn http_registry_round_trip_oci_index_and_docker_list() {
    let registry = TestRegistry::start_http();
    let settings = registry.settings();
    round_trip(&registry, &settings, Flavor::Oci).await;
    round_trip(&registry, &settings, Flavor::Docker).await;
}

#[tokio::test]
async fn tls_basic_auth_round_trip_with_ca_file() {
    let registry = TestRegistry::start_tls_basic("pusher", "s3cret-pw");
    let settings = registry.settings();
    round_trip(&registry, &settings, Flavor::Oci).await;
    round_trip(&registry, &settings, Flavor::Docker).await;
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_leaves_nothing() {
    let registry = TestRegistry::start_http();
    let store = connect(&registry.repo("tamper:v1"), &registry.settings())
        .await
        .unwrap();
    let claimed = archgate::image::Digest::of(b"the real layer");
    let err = store
        .put_blob(
            &claimed,
            14,
            Box::pin(std::io::Cursor::new(b"a forged layer".to_vec())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), archgate::ErrorKind::Content, "{err}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(!store.blob_exists(&claimed).await.unwrap());

    // More bytes than declared: refused while streaming, with our own message.
    let err = store
        .put_blob(
            &claimed,
            14,
            Box::pin(std::io::Cursor::new(vec![b'x'; 1 << 20])),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), archgate::ErrorKind::Content, "{err}");
    assert!(
        err.to_string()
            .contains("larger than its declared size of 14 bytes"),
        "{err}"
    );
    assert!(!store.blob_exists(&claimed).await.unwrap());

    // The source fails half-way (a registry we copy from went away): its error comes through.
    let failing = std::io::Cursor::new(vec![0u8; 7]).chain(Failing);
    let err = store
        .put_blob(&claimed, 14, Box::pin(failing))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Network { message, .. } if message == "source went away"),
        "{err:?}"
    );
}

/// A reader that fails at once with an archgate error, as a registry blob stream does.
struct Failing;

impl tokio::io::AsyncRead for Failing {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other(Error::Network {
            registry: "source:5000".into(),
            message: "source went away".into(),
            temporary: true,
        })))
    }
}

#[tokio::test]
async fn https_to_an_http_registry_says_set_http_true() {
    let registry = TestRegistry::start_http();
    let err = connect(&registry.repo("app:v1"), &Settings::default())
        .await
        .unwrap_err()
        .to_string();
    let host = registry.host();
    assert!(
        err.contains(&format!(
            "{host}: the registry answered plain HTTP to an HTTPS request: set `[registries.\"{host}\"] http = true` in archgate.toml"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn http_to_a_tls_registry_says_remove_http_true() {
    let registry = TestRegistry::start_tls_basic("u", "p");
    let mut settings = registry.settings();
    settings.registries.get_mut(&registry.host()).unwrap().http = true;
    let err = connect(&registry.repo("app:v1"), &settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("speaks HTTPS") && err.contains("remove `http = true`"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_password_is_a_401_naming_user_and_source_never_the_password() {
    let registry = TestRegistry::start_tls_basic("alice", "right-password");
    let mut settings = registry.settings();
    let wrong = "Wr0ng-Passw0rd-4711";
    settings
        .registries
        .get_mut(&registry.host())
        .unwrap()
        .password = Some(Secret::new(wrong));
    let err = connect(&registry.repo("app:v1"), &settings)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    let host = registry.host();
    assert!(
        text.contains(&format!(
            "{host}: the registry rejected the credentials for `alice` from `[registries.\"{host}\"] username/password` (HTTP 401)"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("docker login {host}")), "{text}");
    assert!(!text.contains(wrong), "the password leaked: {text}");
}

#[tokio::test]
async fn no_credentials_for_an_auth_registry_says_where_to_put_them() {
    let registry = TestRegistry::start_tls_basic("alice", "pw");
    let mut settings = Settings::default();
    settings.registries.insert(
        registry.host(),
        RegistrySettings {
            ca_file: Some(registry.ca_file()),
            ..Default::default()
        },
    );
    let err = connect(&registry.repo("app:v1"), &settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("requires credentials and none were found (HTTP 401)"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_tag_lists_tags_and_missing_repository_says_so() {
    let registry = TestRegistry::start_http();
    let settings = registry.settings();
    let store = connect(&registry.repo("team/app:v1"), &settings)
        .await
        .unwrap();
    let set = image_set(Flavor::Oci, "tags");
    push_image_set(&store, &set, Some("v1")).await.unwrap();
    store.put_manifest(&set.index, Some("v2")).await.unwrap();

    let err = store.get_manifest(&tag("v9")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let host = registry.host();
    assert_eq!(
        err.to_string(),
        format!("tag `v9` in {host}/team/app not found: the repository has tags v1, v2")
    );
    let err = store.resolve(&tag("v9")).await.unwrap_err();
    assert!(err.to_string().starts_with("tag `v9` in"), "{err}");

    let nowhere = connect(&registry.repo("team/nothing-here:v1"), &settings)
        .await
        .unwrap();
    let err = nowhere.get_manifest(&tag("v1")).await.unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "repository {host}/team/nothing-here not found: nothing was ever pushed there"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn connection_refused_says_nothing_listens() {
    // A port nobody listens on: bound on 127.0.0.1 and released.
    let port = crate::common::registry::free_port();
    let host = format!("127.0.0.1:{port}");
    for http in [true, false] {
        let mut settings = Settings::default();
        settings.registries.insert(
            host.clone(),
            RegistrySettings {
                http,
                ..Default::default()
            },
        );
        let err = connect(&format!("{host}/app:v1"), &settings)
            .await
            .unwrap_err();
        assert!(!err.is_temporary(), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{host}: nothing listens on this port: is the registry running, is the port right?"
            )
        );
    }
}

#[tokio::test]
async fn self_signed_certificate_without_ca_file_suggests_ca_file_or_insecure() {
    let registry = TestRegistry::start_tls_basic("alice", "pw");
    let mut settings = registry.settings();
    let entry = settings.registries.get_mut(&registry.host()).unwrap();
    entry.ca_file = None;
    let err = connect(&registry.repo("app:v1"), &settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TLS certificate is not trusted")
            && err.contains(&format!("`[registries.\"{}\"] ca_file", registry.host()))
            && err.contains("`insecure = true`"),
        "{err}"
    );

    // insecure = true is the documented way out.
    let entry = settings.registries.get_mut(&registry.host()).unwrap();
    entry.insecure = true;
    let store = connect(&registry.repo("app:v1"), &settings).await.unwrap();
    assert!(
        !store
            .blob_exists(&archgate::image::Digest::of(b"x"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out_and_is_retried() {
    // Connections are accepted by the kernel, but nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let mut settings = Settings::default();
    settings.network.timeout = 1;
    settings.network.retries = 1;
    settings.registries.insert(
        host.clone(),
        RegistrySettings {
            http: true,
            ..Default::default()
        },
    );
    let started = std::time::Instant::now();
    let err = connect(&format!("{host}/app:v1"), &settings)
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(
        err.to_string()
            .contains("no answer within 1 s (`[network] timeout`)"),
        "{err}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "not retried"
    );
}

#[tokio::test]
async fn tags_of_a_missing_repository_say_it_is_missing() {
    let registry = TestRegistry::start_http();
    let store = connect(&registry.repo("ghost:v1"), &registry.settings())
        .await
        .unwrap();
    let err = store.tags().await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("repository {}/ghost not found", registry.host())),
        "{err}"
    );
}

#[tokio::test]
async fn a_large_blob_streams_up_and_down() {
    let registry = TestRegistry::start_http();
    let store = connect(&registry.repo("big:v1"), &registry.settings())
        .await
        .unwrap();
    // 12 MiB of pseudo-random bytes: several reads and write buffers each way.
    let data = crate::common::images::noise(0x2545_f491_4f6c_dd1d, 12 << 20);
    let digest = archgate::image::Digest::of(&data);
    let size = data.len() as u64;
    let put = store
        .put_blob(&digest, size, Box::pin(std::io::Cursor::new(data.clone())))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Written);
    assert!(read_all(&store, &digest, size).await == data);

    // A declared size that disagrees with the stream is refused while reading.
    let mut out = Vec::new();
    let err = store
        .get_blob(&digest, Some(size - 1))
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declared size"), "{err}");
}

/// `archgate inspect` end to end, as a user runs it: a three-platform index
/// over plain HTTP and over TLS with basic auth, OCI and Docker types, at
/// trace level — the password must appear nowhere in the output.
#[tokio::test]
async fn inspect_cli_shows_three_platforms_over_http_and_tls_without_leaking_the_password() {
    const PASSWORD: &str = "Pa55-inspect-secret";
    for registry in [
        TestRegistry::start_http(),
        TestRegistry::start_tls_basic("alice", PASSWORD),
    ] {
        let settings = registry.settings();
        let dir = crate::common::tempdir();
        let mut toml = format!("[registries.\"{}\"]\n", registry.host());
        match registry.credentials() {
            Some((user, pass)) => toml.push_str(&format!(
                "ca_file = \"{}\"\nusername = \"{user}\"\npassword = \"{pass}\"\n",
                registry.ca_file().display()
            )),
            None => toml.push_str("http = true\n"),
        }
        std::fs::write(dir.path().join("archgate.toml"), toml).unwrap();
        for flavor in [Flavor::Oci, Flavor::Docker] {
            let reference = format!(
                "{}:v1",
                registry.repo(&format!("inspect-{}", flavor.name()))
            );
            let store = connect(&reference, &settings).await.unwrap();
            let set = image_set(flavor, "inspect");
            push_image_set(&store, &set, Some("v1")).await.unwrap();

            let out = crate::common::archgate()
                .current_dir(dir.path())
                .args(["-vv", "inspect", &reference])
                .output();
            let (stdout, stderr) = (out.assert_code(0).stdout(), out.stderr());
            assert!(stdout.contains(set.index.digest.as_str()), "{stdout}");
            for p in ["linux/amd64", "linux/arm64", "linux/mips64le"] {
                assert!(
                    stdout
                        .lines()
                        .any(|l| l.trim_start().starts_with(p) && !l.contains("MISMATCH")),
                    "{p}: {stdout}"
                );
            }
            let wanted = if flavor == Flavor::Oci {
                "OCI index"
            } else {
                "Docker manifest list"
            };
            assert!(stdout.contains(wanted), "{stdout}");
            let encoded = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("alice:{PASSWORD}"),
            );
            for text in [stdout, stderr] {
                assert!(
                    !text.contains(PASSWORD) && !text.contains(&encoded),
                    "password leaked:\n{text}"
                );
            }

            let out = crate::common::archgate()
                .current_dir(dir.path())
                .args(["inspect", "--json", &reference])
                .output();
            let json = out.json();
            assert_eq!(json["kind"], "index");
            assert_eq!(json["platforms"].as_array().unwrap().len(), 3);
        }
    }
}

/// TLS is the default: plain HTTP and unverified certificates happen only for
/// hosts listed with `http = true` / `insecure = true`, and every run that
/// uses such a host says so once on stderr.
#[tokio::test]
async fn plain_http_and_insecure_only_for_listed_hosts_with_a_warning_each_run() {
    let lines = |out: &crate::common::TestOutput, needle: &str| {
        out.stderr().lines().filter(|l| l.contains(needle)).count()
    };

    let http = TestRegistry::start_http();
    http.push_set("plain:v1", &image_set(Flavor::Oci, "plain"))
        .await;
    let reference = http.repo("plain:v1");
    let dir = crate::common::tempdir();
    // Not listed: HTTPS, and the error says how to allow HTTP for this host.
    let out = inspect_in(dir.path(), &reference);
    assert_ne!(out.code(), Some(0), "{out}");
    out.assert_stderr_contains(&format!(
        "set `[registries.\"{}\"] http = true`",
        http.host()
    ));
    // Listed: it works, with one warning line per run.
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!("[registries.\"{}\"]\nhttp = true\n", http.host()),
    )
    .unwrap();
    let warning = format!("speaking plain HTTP to {}", http.host());
    for _ in 0..2 {
        let out = inspect_in(dir.path(), &reference);
        out.assert_code(0);
        assert_eq!(lines(&out, &warning), 1, "{out}");
    }

    let tls = TestRegistry::start_tls_basic("u", "pw-insecure");
    tls.push_set("secure:v1", &image_set(Flavor::Oci, "secure"))
        .await;
    let reference = tls.repo("secure:v1");
    let dir = crate::common::tempdir();
    let config = |extra: &str| {
        std::fs::write(
            dir.path().join("archgate.toml"),
            format!(
                "[registries.\"{}\"]\nusername = \"u\"\npassword = \"pw-insecure\"\n{extra}",
                tls.host()
            ),
        )
        .unwrap()
    };
    // A self-signed certificate is refused unless its CA is named or the host is insecure.
    config("");
    let out = inspect_in(dir.path(), &reference);
    assert_ne!(out.code(), Some(0), "{out}");
    let stderr = out.stderr();
    assert!(
        stderr.contains("not trusted") && stderr.contains("ca_file") && stderr.contains("insecure"),
        "{out}"
    );
    config("insecure = true\n");
    let warning = format!("not verifying the TLS certificate of {}", tls.host());
    for _ in 0..2 {
        let out = inspect_in(dir.path(), &reference);
        out.assert_code(0);
        assert_eq!(lines(&out, &warning), 1, "{out}");
    }
}

/// Hole 5: a plain-HTTP registry reached without `http = true` (and a TLS one
/// reached with it) is a configuration error, exit 2, which CI does not
/// retry; it was exit 3, "infrastructure".
#[tokio::test]
async fn regression_hole_5_plain_http_without_http_true_exits_2() {
    let http = TestRegistry::start_http();
    http.push_set("plain:v1", &image_set(Flavor::Oci, "plain"))
        .await;
    let dir = crate::common::tempdir();
    let out = inspect_in(dir.path(), &http.repo("plain:v1"));
    assert_eq!(out.code(), Some(2), "{out}");
    out.assert_stderr_contains(&format!(
        "set `[registries.\"{}\"] http = true`",
        http.host()
    ));

    let tls = TestRegistry::start_tls_basic("u", "p");
    std::fs::write(
        dir.path().join("archgate.toml"),
        format!(
            "[registries.\"{}\"]\nhttp = true\nusername = \"u\"\npassword = \"p\"\n",
            tls.host()
        ),
    )
    .unwrap();
    let out = inspect_in(dir.path(), &tls.repo("secure:v1"));
    assert_eq!(out.code(), Some(2), "{out}");
    out.assert_stderr_contains("remove `http = true`");
}

/// `archgate inspect REFERENCE` in `dir` (which may hold an archgate.toml).
fn inspect_in(dir: &std::path::Path, reference: &str) -> crate::common::TestOutput {
    crate::common::archgate()
        .current_dir(dir)
        .args(["inspect", reference])
        .output()
}
