//! Media types archgate reads and writes, and what kind of thing each one is.

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker manifest list (v2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Every manifest type archgate accepts. Always sent in `Accept` together:
/// distribution 2.8 rewrites a Docker list into a schema1 manifest, or answers
/// 404 for an OCI index, when a type is missing from `Accept`.
pub const ACCEPTED_MANIFESTS: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// The index media type family to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OCI image index (default).
    #[default]
    Oci,
    /// Docker manifest list v2, for the oldest clients.
    Docker,
}

impl Format {
    /// The index media type.
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_LIST,
        }
    }

    /// The image manifest media type of the same family.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }
}

/// What a manifest media type describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An index / manifest list: many platforms.
    Index,
    /// One image: config + layers.
    Image,
}

/// The kind of a manifest media type, `None` for anything else.
pub fn manifest_kind(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_INDEX | DOCKER_LIST => Some(ManifestKind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        _ => None,
    }
}

/// A short human name for a media type, for tables.
pub fn short_name(media_type: &str) -> &str {
    match media_type {
        OCI_INDEX => "OCI index",
        OCI_MANIFEST => "OCI manifest",
        DOCKER_LIST => "Docker manifest list",
        DOCKER_MANIFEST => "Docker manifest v2s2",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        for (mt, kind) in [
            (OCI_INDEX, Some(ManifestKind::Index)),
            (DOCKER_LIST, Some(ManifestKind::Index)),
            (OCI_MANIFEST, Some(ManifestKind::Image)),
            (DOCKER_MANIFEST, Some(ManifestKind::Image)),
            (OCI_CONFIG, None),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                None,
            ),
        ] {
            assert_eq!(manifest_kind(mt), kind, "{mt}");
        }
    }
}
