//! Manifest and index decoding of untrusted registry bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    for media_type in [
        None,
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        if let Ok(m) = archgate::image::RawManifest::from_bytes(bytes.clone(), media_type, "fuzz") {
            let _ = m.index("fuzz");
            let _ = m.image("fuzz");
        }
    }
    let _ = archgate::image::ImageConfig::parse(data, "fuzz");
});
