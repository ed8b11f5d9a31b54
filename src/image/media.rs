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
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// OCI non-distributable gzip layer.
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// The same blob in the two families, Docker first: the one table every
/// conversion between Docker v2s2 and OCI reads (the bytes never change).
const FAMILY_PAIRS: [(&str, &str); 4] = [
    (DOCKER_CONFIG, OCI_CONFIG),
    (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP),
    (DOCKER_LAYER_TAR, OCI_LAYER_TAR),
    (DOCKER_LAYER_FOREIGN, OCI_LAYER_NONDISTRIBUTABLE),
];

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

    /// The image config media type of the same family.
    pub fn config_media_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }

    /// The family's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Oci => "OCI",
            Format::Docker => "Docker",
        }
    }

    /// A config or layer media type in this family: a known type of the other
    /// family is translated, a type already of this family (`application/vnd.oci.`
    /// or `application/vnd.docker.`) kept; `None` for anything else (zstd in
    /// the Docker family, vendor types), which has no equivalent here.
    pub fn blob_media_type(self, media_type: &str) -> Option<&str> {
        // (from, to) for this direction.
        let (prefix, pairs) = match self {
            Format::Oci => ("application/vnd.oci.", FAMILY_PAIRS),
            Format::Docker => ("application/vnd.docker.", FAMILY_PAIRS.map(|(d, o)| (o, d))),
        };
        let translated = pairs
            .iter()
            .find(|(from, _)| *from == media_type)
            .map(|p| p.1);
        translated.or_else(|| media_type.starts_with(prefix).then_some(media_type))
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
}

/// How a layer of this media type (OCI or Docker, non-distributable variants
/// included) is compressed; the error says why it cannot be unpacked.
pub fn layer_compression(media_type: &str) -> std::result::Result<LayerCompression, String> {
    let m = media_type.trim();
    if m.ends_with("+zstd") || m.ends_with(".zstd") {
        return Err(format!(
            "layer media type {m} (zstd) is not supported yet; push gzip layers (the default of docker, buildah and archgate)"
        ));
    }
    if m.ends_with("tar+gzip") || m.ends_with(".tar.gzip") {
        return Ok(LayerCompression::Gzip);
    }
    if m.ends_with(".tar") || m.ends_with("layer.v1.tar") {
        return Ok(LayerCompression::None);
    }
    Err(format!(
        "{m:?} is not a layer media type archgate can unpack"
    ))
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

    #[test]
    fn blob_types_across_families() {
        // (from, format, expected) — one row per case.
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let rows = [
            (OCI_LAYER_TAR, Format::Docker, Some(DOCKER_LAYER_TAR)),
            (DOCKER_LAYER_TAR, Format::Oci, Some(OCI_LAYER_TAR)),
            (OCI_LAYER_GZIP, Format::Docker, Some(DOCKER_LAYER_GZIP)),
            (DOCKER_LAYER_GZIP, Format::Oci, Some(OCI_LAYER_GZIP)),
            (OCI_CONFIG, Format::Docker, Some(DOCKER_CONFIG)),
            (DOCKER_CONFIG, Format::Oci, Some(OCI_CONFIG)),
            (
                OCI_LAYER_NONDISTRIBUTABLE,
                Format::Docker,
                Some(DOCKER_LAYER_FOREIGN),
            ),
            (
                DOCKER_LAYER_FOREIGN,
                Format::Oci,
                Some(OCI_LAYER_NONDISTRIBUTABLE),
            ),
            (OCI_LAYER_GZIP, Format::Oci, Some(OCI_LAYER_GZIP)),
            (zstd, Format::Oci, Some(zstd)),
            (zstd, Format::Docker, None),
            ("text/plain", Format::Oci, None),
        ];
        for (from, format, want) in rows {
            assert_eq!(format.blob_media_type(from), want, "{from} → {format:?}");
        }
    }

    #[test]
    fn layer_compressions() {
        let rows = [
            (OCI_LAYER_GZIP, Ok(LayerCompression::Gzip)),
            (DOCKER_LAYER_GZIP, Ok(LayerCompression::Gzip)),
            (DOCKER_LAYER_FOREIGN, Ok(LayerCompression::Gzip)),
            (OCI_LAYER_NONDISTRIBUTABLE, Ok(LayerCompression::Gzip)),
            (OCI_LAYER_TAR, Ok(LayerCompression::None)),
            (DOCKER_LAYER_TAR, Ok(LayerCompression::None)),
        ];
        for (mt, want) in rows {
            assert_eq!(layer_compression(mt), want, "{mt}");
        }
        let zstd = layer_compression("application/vnd.oci.image.layer.v1.tar+zstd").unwrap_err();
        assert!(zstd.contains("zstd"), "{zstd}");
        assert!(layer_compression("text/plain").is_err());
    }
}
