//! The platform entries of the image being verified: verify's one walk over
//! the index (attestations left out; a single-platform manifest is one entry
//! whose platform is what its config says). Kept in this one function so the
//! shared image views can replace it whole.

use crate::error::Result;
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, ImageConfig, PlatformSpec, RawManifest};
use crate::platform::{self, Platform};
use crate::store::{self, Store};

/// One platform entry of the image (attestations left out).
pub struct Entry {
    pub platform: Platform,
    pub descriptor: Descriptor,
    /// Set when the image is a single manifest rather than an index.
    pub single: Option<RawManifest>,
}

/// The platform entries of an index; a single-platform manifest is one entry
/// whose platform is what its config says.
pub async fn entries_of(store: &dyn Store, top: &RawManifest, image: &str) -> Result<Vec<Entry>> {
    match top.kind() {
        ManifestKind::Index => {
            let index = top.index(image)?;
            Ok(index
                .manifests
                .into_iter()
                .filter_map(|d| {
                    let spec = d.platform.clone().unwrap_or_default();
                    if platform::is_attestation(&spec.os, &spec.architecture, &d.annotations) {
                        return None;
                    }
                    Some(Entry {
                        platform: platform_of(&spec),
                        descriptor: d,
                        single: None,
                    })
                })
                .collect())
        }
        ManifestKind::Image => {
            let manifest = top.image(image)?;
            let config =
                store::read_blob(store, &manifest.config, &format!("config of {image}")).await?;
            let config = ImageConfig::parse(&config, &format!("config of {image}"))?;
            Ok(vec![Entry {
                platform: Platform::from_spec(
                    &config.os,
                    &config.architecture,
                    config.variant.as_deref(),
                )
                .normalised(),
                descriptor: top.descriptor(),
                single: Some(top.clone()),
            }])
        }
    }
}

fn platform_of(spec: &PlatformSpec) -> Platform {
    Platform::from_spec(&spec.os, &spec.architecture, spec.variant.as_deref()).normalised()
}
