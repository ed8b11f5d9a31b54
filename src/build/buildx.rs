//! `driver = "buildx"`: Dockerfiles that need what archgate's builder does
//! not do (`RUN --mount=type=secret`, `RUN` with the network) are handed to
//! `docker buildx build --platform … --push --metadata-file …`, and the index
//! digest is read back from the metadata file. archgate only runs it: the
//! docker CLI, its buildx plugin and a builder with QEMU are the user's.

use std::path::Path;
use std::process::Stdio;

use super::{BuildOutcome, BuildRequest};
use crate::error::{Error, Result};
use crate::image::{Digest, media};
use crate::publish::Written;

const INSTALL: &str = "install the docker CLI and its buildx plugin (docker-buildx-plugin), or build with driver = \"native\" (archgate's own builder, RUN included)";

/// The `docker buildx build` arguments for a request (pure).
pub fn arguments(req: &BuildRequest, image: &str, metadata: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec!["buildx".into(), "build".into()];
    let platforms: Vec<String> = req.platforms.iter().map(|p| p.to_string()).collect();
    a.extend(["--platform".into(), platforms.join(",")]);
    a.extend(["-f".into(), req.dockerfile.display().to_string()]);
    for (k, v) in &req.args {
        a.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    a.extend(["--tag".into(), image.to_string()]);
    let repo = image.rsplit_once(':').map(|(r, _)| r).unwrap_or(image);
    for t in &req.extra_tags {
        a.extend(["--tag".into(), format!("{repo}:{t}")]);
    }
    a.push("--push".into());
    a.extend(["--metadata-file".into(), metadata.display().to_string()]);
    a.push(req.context.display().to_string());
    a
}

async fn docker(args: &[String]) -> Result<std::process::Output> {
    tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "driver = \"buildx\": `docker` is not on PATH: {INSTALL}"
                ))
            } else {
                Error::io("docker", e)
            }
        })
}

/// Runs the build through docker buildx; the target must be a registry.
pub async fn build(req: &BuildRequest) -> Result<BuildOutcome> {
    let Some(r) = req.target.registry_ref() else {
        return Err(Error::Invalid(format!(
            "driver = \"buildx\" pushes to a registry, not to `{}`: set a registry image, or use driver = \"native\"",
            req.target
        )));
    };
    let probe = docker(&["buildx".into(), "version".into()]).await?;
    if !probe.status.success() {
        return Err(Error::Invalid(format!(
            "driver = \"buildx\": `docker buildx version` failed ({}): {INSTALL}",
            String::from_utf8_lossy(&probe.stderr).trim()
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let metadata = dir.path().join("metadata.json");
    let image = r.to_string();
    let out = docker(&arguments(req, &image, &metadata)).await?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(Error::Internal(format!(
            "docker buildx build failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let bytes = std::fs::read(&metadata).map_err(|e| Error::io(&metadata, e))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::malformed("docker buildx metadata file", e))?;
    let digest = json["containerimage.digest"].as_str().ok_or_else(|| {
        Error::malformed("docker buildx metadata file", "no containerimage.digest")
    })?;
    let digest = Digest::parse(digest)?;
    let mut tags = vec![r.selector().to_string().trim_start_matches(':').to_string()];
    tags.extend(req.extra_tags.iter().cloned());
    Ok(BuildOutcome {
        image: req.target.with_digest(&digest).to_string(),
        index_digest: digest,
        media_type: json["containerimage.descriptor"]["mediaType"]
            .as_str()
            .unwrap_or(media::OCI_INDEX)
            .to_string(),
        platforms: Vec::new(),
        tags,
        layers_written: 0,
        written: Written::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    #[test]
    fn docker_buildx_arguments() {
        let req = BuildRequest {
            dockerfile: "ci/Dockerfile".into(),
            context: ".".into(),
            args: [("JDK".to_string(), "8".to_string())].into(),
            platforms: vec![
                Platform::parse("linux/amd64").unwrap(),
                Platform::parse("mips64el").unwrap(),
            ],
            target: crate::image::Location::parse("10.0.0.5:5000/app:v1").unwrap(),
            extra_tags: vec!["latest".into()],
            name: None,
            format: crate::image::media::Format::Oci,
            epoch: 0,
            driver: crate::config::BuildDriver::Buildx,
        };
        let got = arguments(&req, "10.0.0.5:5000/app:v1", Path::new("/tmp/m.json")).join(" ");
        assert_eq!(
            got,
            "buildx build --platform linux/amd64,linux/mips64le -f ci/Dockerfile --build-arg JDK=8 --tag 10.0.0.5:5000/app:v1 --tag 10.0.0.5:5000/app:latest --push --metadata-file /tmp/m.json ."
        );
    }
}
