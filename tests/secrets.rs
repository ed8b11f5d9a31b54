//! Integration test: a registry password never appears in anything archgate
//! writes — stdout, stderr at trace level, errors, reports — whatever the
//! command. Real TLS registry with htpasswd basic auth.

use std::path::Path;

use archgate::image::ImageRef;
use archgate::store::registry::RegistryStore;

use crate::common::{Flavor, TestRegistry, archgate, image_set, push_image_set, tempdir};

const USER: &str = "alice";
const PASSWORD: &str = "Tr4ce-level-secret-9f3";

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_command_at_trace_level_keeps_the_password_out_of_logs_errors_and_reports() {
    let registry = TestRegistry::start_tls_basic(USER, PASSWORD);
    let host = registry.host();
    let source = registry.repo("secrets/src:v1");
    let image = ImageRef::parse(&source).unwrap();
    let store = RegistryStore::connect(&image, &registry.settings(), true)
        .await
        .unwrap();
    push_image_set(&store, &image_set(Flavor::Oci, "secrets"), Some("v1"))
        .await
        .unwrap();

    let dir = tempdir();
    let work = dir.path();
    std::fs::write(
        work.join("archgate.toml"),
        format!(
            "[registries.\"{host}\"]\nca_file = \"{}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            registry.ca_file().display()
        ),
    )
    .unwrap();
    std::fs::create_dir(work.join("ctx")).unwrap();
    std::fs::write(work.join("ctx/hello.txt"), "hello\n").unwrap();
    std::fs::write(
        work.join("ctx/Dockerfile"),
        format!("FROM --platform=$TARGETPLATFORM {source}\nCOPY hello.txt /etc/hello.txt\n"),
    )
    .unwrap();
    let archive = format!("oci-archive:{}:v1", work.join("mirror.tar").display());
    let report = work.join("report");
    let report_arg = report.display().to_string();

    // (arguments, expected exit code): each talks to the registry with the credentials.
    let commands: Vec<(Vec<String>, i32)> = vec![
        (vec!["inspect".into(), source.clone()], 0),
        (vec!["config".into()], 0),
        (vec!["config".into(), "--json".into()], 0),
        (
            vec![
                "merge".into(),
                "--target".into(),
                registry.repo("secrets/merged:v1"),
                source.clone(),
            ],
            0,
        ),
        (vec!["mirror".into(), source.clone(), archive.clone()], 0),
        (
            vec![
                "mirror".into(),
                archive.clone(),
                registry.repo("secrets/mirrored:v1"),
            ],
            0,
        ),
        (
            vec![
                "build".into(),
                "--image".into(),
                registry.repo("secrets/built:v1"),
                "-f".into(),
                work.join("ctx/Dockerfile").display().to_string(),
                work.join("ctx").display().to_string(),
            ],
            0,
        ),
        // The test images hold no JDK: the gate fails (1), after reading everything.
        (
            vec![
                "verify".into(),
                "--runner".into(),
                "static".into(),
                "--report-dir".into(),
                report_arg.clone(),
                source.clone(),
            ],
            1,
        ),
        (
            vec![
                "run".into(),
                "--image".into(),
                source.clone(),
                "--runner".into(),
                "static".into(),
                "--report-dir".into(),
                report_arg.clone(),
            ],
            1,
        ),
        // An error path: a repository that does not exist.
        (
            vec!["inspect".into(), registry.repo("secrets/nothing:v1")],
            2,
        ),
    ];
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    for (args, want) in &commands {
        let out = archgate()
            .current_dir(work)
            .arg("-vv")
            .args(args)
            .env("ARCHGATE_CACHE", work.join("cache"))
            .env("ARCHGATE_LOG", "trace")
            .output();
        out.assert_code(*want);
        let (stdout, stderr) = (out.stdout(), out.stderr());
        if args[0] != "config" {
            assert!(
                stderr.contains("TRACE"),
                "trace output expected for {args:?}: {stderr}"
            );
        }
        for text in [stdout, stderr] {
            assert!(
                !text.contains(PASSWORD) && !text.contains(&encoded),
                "archgate {args:?} leaked the password:\n{text}"
            );
        }
    }
    let reports = files_text(&report);
    assert_eq!(
        reports.len(),
        4,
        "junit.xml, report.json, archgate.env, coverage.md: {:?}",
        reports.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for (name, text) in reports {
        assert!(
            !text.contains(PASSWORD) && !text.contains(&encoded),
            "{name} holds the password"
        );
    }
}
