//! The platform entries of the image being verified, taken from the shared
//! index view ([`crate::store::view::IndexView`]: attestations recognised once,
//! a single-platform manifest is one entry whose platform its config states),
//! with platform spellings normalised for matching against the required ones.

use crate::error::Result;
use crate::image::Descriptor;
use crate::platform::Platform;
use crate::store::view::IndexView;

/// One platform entry of the image (attestations left out).
pub struct Entry {
    pub platform: Platform,
    pub descriptor: Descriptor,
    /// The image is a single manifest rather than an index.
    pub single: bool,
}

/// The platform entries of the image `view` shows.
pub async fn entries_of(view: &IndexView<'_>) -> Result<Vec<Entry>> {
    let single = view.index().is_none();
    Ok(view
        .platform_entries()
        .await?
        .into_iter()
        .map(|e| Entry {
            platform: e.platform.normalised(),
            descriptor: e.descriptor,
            single,
        })
        .collect())
}
