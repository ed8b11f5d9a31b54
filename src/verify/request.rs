//! The verify request from the resolved settings.

use crate::config::Settings;
use crate::error::Result;

use super::VerifyRequest;

impl VerifyRequest {
    /// `image` (rendered) unless `image` is given, and the platforms the gate
    /// looks at (`Settings::gate_platforms`: `[gate] required_platforms`, else
    /// `platforms`, configured or default), so that `verify` and `run` judge
    /// an index by the same rule.
    pub fn from_settings(s: &Settings, image: Option<&str>) -> Result<VerifyRequest> {
        let image = match image {
            Some(i) => i.to_string(),
            None => s.render(&s.image, "image")?,
        };
        Ok(VerifyRequest {
            image,
            platforms: Some(s.gate_platforms().to_vec()),
        })
    }
}
