//! Builds the oci-client `Client` for one registry host from its
//! `[registries."HOST"]` entry and `[network]`: TLS settings are per client in
//! oci-client, so each host gets its own. Also the plain-HTTP probe that tells
//! "this registry speaks HTTP" from other TLS handshake failures.

use std::path::Path;
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{NetworkSettings, RegistrySettings};
use crate::error::{Error, Result};

/// Sent with every request, so registry logs show who pushed.
const USER_AGENT: &str = concat!("archgate/", env!("CARGO_PKG_VERSION"));

/// Builds the client for `host` (`config_host` is the key of `[registries]`,
/// `host` the name oci-client resolves it to: they differ only for Docker Hub).
pub fn build(
    config_host: &str,
    host: &str,
    registry: &RegistrySettings,
    network: &NetworkSettings,
) -> Result<Client> {
    // reqwest is built without a default crypto provider (no aws-lc C build);
    // installing one twice is harmless, hence the ignored result.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let mut config = ClientConfig {
        protocol: if registry.http {
            // Exactly this host: a token service elsewhere stays on HTTPS.
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: registry.insecure,
        // A per-read timeout, not a total one: a large layer may take long, a stall may not.
        read_timeout: seconds(network.timeout),
        connect_timeout: seconds(network.connect_timeout),
        max_concurrent_upload: network.concurrency.max(1),
        max_concurrent_download: network.concurrency.max(1),
        // One streaming PUT per blob instead of a PATCH per 4 MiB chunk.
        use_monolithic_push: true,
        user_agent: USER_AGENT,
        // We never let oci-client pick a platform from an index.
        platform_resolver: None,
        ..Default::default()
    };
    if let Some(path) = &registry.ca_file {
        config
            .extra_root_certificates
            .push(read_ca(config_host, path)?);
    }
    let first = first_time(config_host);
    if registry.http && first {
        tracing::warn!(
            registry = config_host,
            "speaking plain HTTP to {config_host} (`http = true`): traffic and credentials are not encrypted"
        );
    }
    if registry.insecure && first {
        tracing::warn!(
            registry = config_host,
            "not verifying the TLS certificate of {config_host} (`insecure = true`)"
        );
    }
    Client::try_from(config).map_err(|e| {
        Error::Config(format!(
            "[registries.\"{config_host}\"]: cannot set up a client for this registry: {e}"
        ))
    })
}

/// The plain reqwest client for the requests archgate makes itself (the
/// resumable upload steps), with the same TLS trust, timeouts and user agent
/// as `build`'s. Call after `build`, which checks the CA file and installs
/// the crypto provider.
pub fn build_http(
    config_host: &str,
    registry: &RegistrySettings,
    network: &NetworkSettings,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .danger_accept_invalid_certs(registry.insecure)
        // Upload URLs are followed as the registry hands them out, never redirected.
        .redirect(reqwest::redirect::Policy::none());
    if network.timeout > 0 {
        builder = builder.read_timeout(Duration::from_secs(network.timeout));
    }
    if network.connect_timeout > 0 {
        builder = builder.connect_timeout(Duration::from_secs(network.connect_timeout));
    }
    if let Some(path) = &registry.ca_file {
        let pem = read_ca(config_host, path)?.data;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::Config(format!(
                "{}: invalid PEM in the CA file named by `[registries.\"{config_host}\"] ca_file`: {e}",
                path.display()
            ))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        Error::Config(format!(
            "[registries.\"{config_host}\"]: cannot set up a client for this registry: {e}"
        ))
    })
}

/// Whether this process builds a client for `host` for the first time: the
/// plain-HTTP and insecure warnings are said once per host, not once per
/// repository a command opens.
fn first_time(host: &str) -> bool {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else {
        return true;
    };
    if warned.iter().any(|h| h == host) {
        return false;
    }
    warned.push(host.to_string());
    true
}

/// Reads and checks a PEM CA file, naming the file and the key on failure.
fn read_ca(host: &str, path: &Path) -> Result<Certificate> {
    let key = format!("`[registries.\"{host}\"] ca_file`");
    let data = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "{}: cannot read the CA file named by {key}: {e}",
            path.display()
        ))
    })?;
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        }),
        Ok(_) => Err(Error::Config(format!(
            "{}: no PEM certificate (`-----BEGIN CERTIFICATE-----`) in the CA file named by {key}",
            path.display()
        ))),
        Err(e) => Err(Error::Config(format!(
            "{}: invalid PEM in the CA file named by {key}: {e}",
            path.display()
        ))),
    }
}

/// Whether `http://HOST/v2/` answers with any HTTP response: after a TLS
/// handshake failure, that means the registry speaks plain HTTP.
pub async fn answers_plain_http(host: &str, connect_timeout: u64) -> bool {
    let timeout = Duration::from_secs(connect_timeout.clamp(1, 5));
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    else {
        return false;
    };
    client
        .get(format!("http://{host}/v2/"))
        .send()
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let reg = |p: &Path| RegistrySettings {
            ca_file: Some(p.to_path_buf()),
            ..Default::default()
        };
        let net = NetworkSettings::default();
        let err = build("10.0.0.5:5000", "10.0.0.5:5000", &reg(&missing), &net)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("missing.pem") && err.contains("`[registries.\"10.0.0.5:5000\"] ca_file`"),
            "{err}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = build("10.0.0.5:5000", "10.0.0.5:5000", &reg(&junk), &net)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no PEM certificate"),
            "{err}"
        );

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = build("10.0.0.5:5000", "10.0.0.5:5000", &reg(&broken), &net)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("broken.pem") && err.contains("ca_file"),
            "{err}"
        );
    }
}
