//! The verify request from the resolved settings.

use crate::config::Settings;
use crate::error::Result;

use super::VerifyRequest;

impl VerifyRequest {
    /// `image` (rendered) unless `image` is given, and the platforms when set
    /// explicitly (else every platform the index holds).
    pub fn from_settings(s: &Settings, image: Option<&str>) -> Result<VerifyRequest> {
        let image = match image {
            Some(i) => i.to_string(),
            None => s.render(&s.image, "image")?,
        };
        Ok(VerifyRequest {
            image,
            platforms: s.explicit_platforms(),
        })
    }

    /// What the release gate needs verified in `image`: `[gate]
    /// required_platforms`, else every configured platform.
    pub fn for_gate(s: &Settings, image: String) -> VerifyRequest {
        let required = if s.gate.required_platforms.is_empty() {
            s.platforms.clone()
        } else {
            s.gate.required_platforms.clone()
        };
        VerifyRequest {
            image,
            platforms: Some(required),
        }
    }
}
