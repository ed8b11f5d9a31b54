//! The last steps every publishing command shares: a manifest put by digest
//! unless the target already has it, and tags moved last, only where they do
//! not already point at the index — so a re-run writes nothing.

use crate::error::Result;
use crate::image::{RawManifest, Selector};
use crate::merge::Written;
use crate::store::Store;

/// Puts a manifest by digest unless the target has it; true when written.
pub async fn put_manifest_if_missing(target: &dyn Store, manifest: &RawManifest) -> Result<bool> {
    // `probe`, not `resolve`: a registry answers a HEAD by digest without listing tags.
    if target
        .probe(&Selector::Digest(manifest.digest.clone()))
        .await?
        .is_some()
    {
        return Ok(false);
    }
    target.put_manifest(manifest, None).await?;
    Ok(true)
}

/// Points every tag at `index` (already stored by digest); returns how many moved.
pub async fn tag(target: &dyn Store, index: &RawManifest, tags: &[String]) -> Result<usize> {
    let mut moved = 0;
    for tag in tags {
        let current = target.probe(&Selector::Tag(tag.clone())).await?;
        if current.as_ref() != Some(&index.digest) {
            target.put_tag(index, tag).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

impl Written {
    /// One line saying what was written, or that nothing had to be.
    pub fn summary(&self) -> String {
        let w = self;
        if w.blobs_uploaded + w.blobs_mounted + w.manifests + w.tags == 0 && !w.index {
            return "  nothing to write: the target already held all of it\n".into();
        }
        format!(
            "  wrote {} blob(s) ({} mounted, {} already present), {} manifest(s), index {}, {} tag(s)\n",
            w.blobs_uploaded,
            w.blobs_mounted,
            w.blobs_present,
            w.manifests,
            if w.index { "new" } else { "already present" },
            w.tags
        )
    }
}
