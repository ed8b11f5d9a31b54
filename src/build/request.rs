//! The build request from the resolved settings: `[build]`, `platforms`,
//! `tags`, `image`, and `SOURCE_DATE_EPOCH` as the loader read it.

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::Location;

use super::BuildRequest;

impl BuildRequest {
    /// `[build]` (its `platforms`, else the top-level ones, duplicates
    /// dropped), the target (`[build] image`, else `image`, rendered), the
    /// top-level `tags` then `[build] tags`, and the epoch.
    ///
    /// A build of two or more platforms is a release index: it must hold
    /// every required platform (`gate::check_covers`, exit 1 before anything
    /// is built). A one-platform build is a fan-out piece for `merge`, where
    /// the rule applies to the index.
    pub fn from_settings(s: &Settings) -> Result<BuildRequest> {
        let b = &s.build;
        let mut platforms = Vec::new();
        for p in b.platforms.as_ref().unwrap_or(&s.platforms) {
            if !platforms.contains(p) {
                platforms.push(p.clone());
            }
        }
        if platforms.len() > 1 {
            crate::gate::check_covers(s, "build", &platforms)?;
        }
        let target = match &b.image {
            Some(t) => s.render(t, "build.image")?,
            None => s.render(&s.image, "image")?,
        };
        Ok(BuildRequest {
            dockerfile: b.dockerfile.clone(),
            context: b.context.clone(),
            args: b.args.clone(),
            platforms,
            target: Location::parse(&target)?,
            extra_tags: s.render_tags(&b.tags)?,
            name: s.image_name.clone(),
            format: b.format,
            epoch: source_date_epoch(s.host.source_date_epoch.as_deref())?,
            driver: b.driver,
        })
    }
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), else 0.
fn source_date_epoch(value: Option<&str>) -> Result<i64> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => v.parse::<i64>().map_err(|_| {
            Error::Invalid(format!(
                "SOURCE_DATE_EPOCH={v} is not a Unix time in seconds"
            ))
        }),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_a_unix_time_or_zero() {
        assert_eq!(source_date_epoch(None).unwrap(), 0);
        assert_eq!(source_date_epoch(Some(" ")).unwrap(), 0);
        assert_eq!(
            source_date_epoch(Some("1700000000")).unwrap(),
            1_700_000_000
        );
        let e = source_date_epoch(Some("yesterday"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SOURCE_DATE_EPOCH=yesterday"), "{e}");
    }
}
