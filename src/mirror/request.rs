//! The mirror requests from the resolved settings: every `[[mirror]]` entry.

use crate::config::Settings;
use crate::error::{Error, Result};

use super::MirrorRequest;

impl MirrorRequest {
    /// One request per `[[mirror]]` entry, templates rendered; an entry's own
    /// `platforms` win over the top-level ones, which only fill in when set
    /// explicitly.
    pub fn from_settings(s: &Settings) -> Result<Vec<MirrorRequest>> {
        if s.mirror.is_empty() {
            return Err(Error::Invalid(
                "nothing to mirror: pass SOURCE TARGET, or list [[mirror]] entries (source, target, platforms) in archgate.toml".into(),
            ));
        }
        s.mirror
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let key = |k: &str| format!("mirror[{i}].{k}");
                if entry.source.is_empty() || entry.target.is_empty() {
                    return Err(Error::Config(format!(
                        "[[mirror]] entry `mirror.{i}` needs both `source` and `target`"
                    )));
                }
                let platforms = if entry.platforms.is_empty() {
                    s.explicit_platforms()
                } else {
                    Some(entry.platforms.clone())
                };
                // `{arch}`/`{platform}` are the mirror's own, filled per platform.
                let target = super::PER_PLATFORM
                    .iter()
                    .fold(entry.target.clone(), |t, p| {
                        t.replace(p, &p.replace('{', "\u{1}").replace('}', "\u{2}"))
                    });
                let target = s
                    .render(&target, &key("target"))?
                    .replace('\u{1}', "{")
                    .replace('\u{2}', "}");
                Ok(MirrorRequest {
                    source: s.render(&entry.source, &key("source"))?,
                    target,
                    platforms,
                    name: entry.name.clone().or_else(|| s.image_name.clone()),
                    keep_attestations: None,
                    referrers: true,
                })
            })
            .collect()
    }
}
