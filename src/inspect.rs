//! `archgate inspect`: what a location points at — the digest and media type,
//! and for an index each platform with its manifest, the config's own
//! platform, layer count and size; attestation entries listed apart.
//! Gathering reads through a `Store`; rendering is pure.

use serde::Serialize;

use crate::error::Result;
use crate::image::manifest::{REFERENCE_DIGEST_ANNOTATION, REFERENCE_TYPE_ANNOTATION};
use crate::image::media;
use crate::image::{Digest, Selector};
use crate::platform::Platform;
use crate::store::{ImageView, IndexView, Store};

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The location as given.
    pub location: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// `index` or `image`.
    pub kind: &'static str,
    /// One entry per platform (an image manifest gives one entry, from its config).
    pub platforms: Vec<PlatformEntry>,
    /// Attestation entries (`unknown/unknown`, `vnd.docker.reference.type`), not platforms.
    pub attestations: Vec<AttestationEntry>,
}

/// One platform's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformEntry {
    /// The platform the index entry claims (normalised); for a single image, the config's.
    pub platform: String,
    pub manifest_digest: Digest,
    pub media_type: String,
    pub manifest_size: u64,
    /// The platform the image config itself states (normalised).
    pub config_platform: String,
    /// Whether the config agrees with the index entry.
    pub config_matches: bool,
    pub config_digest: Digest,
    pub layers: usize,
    pub layers_size: u64,
}

/// An attestation manifest in an index.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationEntry {
    pub manifest_digest: Digest,
    pub media_type: String,
    /// `vnd.docker.reference.type`, e.g. `attestation-manifest`.
    pub reference_type: Option<String>,
    /// The manifest it describes (`vnd.docker.reference.digest`).
    pub describes: Option<String>,
}

/// Reads what `selector` points at in `store` and everything one level below.
pub async fn inspect(store: &dyn Store, selector: &Selector, location: &str) -> Result<Inspection> {
    let view = IndexView::read(store, selector, location).await?;
    let top = view.raw();
    let mut out = Inspection {
        location: location.to_string(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        kind: "image",
        platforms: Vec::new(),
        attestations: Vec::new(),
    };
    if view.index().is_none() {
        let image = view.image(&top.descriptor()).await?;
        out.platforms.push(image_entry(&image, None));
        return Ok(out);
    }
    out.kind = "index";
    out.attestations = view
        .attestations()
        .into_iter()
        .map(|desc| AttestationEntry {
            manifest_digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            reference_type: desc.annotations.get(REFERENCE_TYPE_ANNOTATION).cloned(),
            describes: desc.annotations.get(REFERENCE_DIGEST_ANNOTATION).cloned(),
        })
        .collect();
    for entry in view.platform_entries().await? {
        let image = view.image(&entry.descriptor).await?;
        out.platforms
            .push(image_entry(&image, Some(entry.platform)));
    }
    Ok(out)
}

/// One platform's row: `claimed` is the index entry's platform (`None`: a single image).
fn image_entry(image: &ImageView, claimed: Option<Platform>) -> PlatformEntry {
    let config_platform = image.platform();
    let (claimed, matches) = match claimed {
        Some(claimed) => {
            let matches = claimed.matches(&config_platform);
            (claimed, matches)
        }
        None => (config_platform.clone(), true),
    };
    let (raw, parsed) = (image.raw_manifest(), image.manifest());
    PlatformEntry {
        platform: claimed.to_string(),
        manifest_digest: raw.digest.clone(),
        media_type: raw.media_type.clone(),
        manifest_size: raw.bytes.len() as u64,
        config_platform: config_platform.to_string(),
        config_matches: matches,
        config_digest: parsed.config.digest.clone(),
        layers: parsed.layers.len(),
        layers_size: parsed.layers.iter().map(|l| l.size).sum(),
    }
}

/// The human table.
pub fn render_text(i: &Inspection) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n", i.location));
    s.push_str(&format!("  digest:     {}\n", i.digest));
    s.push_str(&format!(
        "  media type: {} ({})\n",
        i.media_type,
        media::short_name(&i.media_type)
    ));
    s.push_str(&format!("  size:       {} bytes\n", i.size));
    if i.kind == "index" {
        s.push_str(&format!("  platforms:  {}\n", i.platforms.len()));
    }
    s.push('\n');
    let headers = [
        "PLATFORM",
        "MANIFEST",
        "TYPE",
        "CONFIG SAYS",
        "LAYERS",
        "SIZE",
    ];
    let rows: Vec<[String; 6]> = i
        .platforms
        .iter()
        .map(|p| {
            [
                p.platform.clone(),
                short_digest(&p.manifest_digest),
                media::short_name(&p.media_type).to_string(),
                if p.config_matches {
                    p.config_platform.clone()
                } else {
                    format!("{} (MISMATCH)", p.config_platform)
                },
                p.layers.to_string(),
                human_size(p.layers_size),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::from(" ");
        for (c, w) in cells.iter().zip(widths) {
            l.push_str(&format!(" {c:<w$}"));
        }
        l.trim_end().to_string() + "\n"
    };
    s.push_str(&line(&headers.map(str::to_string)));
    for r in &rows {
        s.push_str(&line(r));
    }
    if !i.attestations.is_empty() {
        s.push_str(&format!(
            "\n  attestations (not platforms): {}\n",
            i.attestations.len()
        ));
        for a in &i.attestations {
            s.push_str(&format!(
                "    {} {} describes {}\n",
                short_digest(&a.manifest_digest),
                a.reference_type.as_deref().unwrap_or("unknown/unknown"),
                a.describes.as_deref().unwrap_or("-")
            ));
        }
    }
    s
}

fn short_digest(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// `123456789` → `117.7 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (n, s) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (123_456_789, "117.7 MiB"),
        ] {
            assert_eq!(human_size(n), s);
        }
    }

    #[test]
    fn renders_mismatch_and_attestations() {
        let d = Digest::of(b"m");
        let i = Inspection {
            location: "127.0.0.1:5000/app:v1".into(),
            digest: d.clone(),
            media_type: media::OCI_INDEX.into(),
            size: 900,
            kind: "index",
            platforms: vec![PlatformEntry {
                platform: "linux/arm64".into(),
                manifest_digest: d.clone(),
                media_type: media::OCI_MANIFEST.into(),
                manifest_size: 400,
                config_platform: "linux/amd64".into(),
                config_matches: false,
                config_digest: d.clone(),
                layers: 2,
                layers_size: 2048,
            }],
            attestations: vec![AttestationEntry {
                manifest_digest: d.clone(),
                media_type: media::OCI_MANIFEST.into(),
                reference_type: Some("attestation-manifest".into()),
                describes: Some(d.to_string()),
            }],
        };
        let text = render_text(&i);
        assert!(text.contains("linux/arm64"), "{text}");
        assert!(text.contains("linux/amd64 (MISMATCH)"), "{text}");
        assert!(text.contains("attestations (not platforms): 1"), "{text}");
        assert!(text.contains("2.0 KiB"), "{text}");
    }
}
