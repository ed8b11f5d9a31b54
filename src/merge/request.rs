//! The merge request from the resolved settings: `[merge]`, `platforms`,
//! `tags` and `image`, all already typed by `config::load`.

use crate::config::{MergeSources, Settings};
use crate::error::Result;
use crate::image::Location;

use super::{MergeRequest, SourceSpec};

impl MergeRequest {
    /// `[merge] sources` (a table states each source's platform), the target
    /// (`[merge] target`, else `image`, rendered), the platforms when set
    /// explicitly, and the top-level `tags`.
    pub fn from_settings(s: &Settings) -> Result<MergeRequest> {
        let sources = match &s.merge.sources {
            MergeSources::List(list) => list
                .iter()
                .map(|l| SourceSpec {
                    location: l.clone(),
                    expected: None,
                })
                .collect(),
            MergeSources::ByPlatform(table) => table
                .iter()
                .map(|(p, l)| SourceSpec {
                    location: l.clone(),
                    expected: Some(p.clone()),
                })
                .collect(),
        };
        let target = match &s.merge.target {
            Some(t) => s.render(t, "merge.target")?,
            None => s.render(&s.image, "image")?,
        };
        Ok(MergeRequest {
            sources,
            target: Location::parse(&target)?,
            platforms: s.explicit_platforms(),
            format: s.merge.format,
            convert: s.merge.convert,
            keep_attestations: s.merge.keep_attestations,
            extra_tags: s.render_tags([])?,
            name: s.image_name.clone(),
        })
    }
}
