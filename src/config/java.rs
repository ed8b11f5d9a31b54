//! `[verify.java]` version numbers, checked when the configuration is loaded.
//! The syntax is the one `verify::java` compares with (`1.8`, `1.8.0_401`,
//! `17.0.9`, `21`, `22-ea`); this type only guarantees a value has it, so
//! that a typo is exit 2 before anything is built, not a verify-time error.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Java version number as written in the configuration, known to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNumber(String);

impl VersionNumber {
    /// Checks `text`: numbers separated by `.` or `_`, with an optional
    /// `-suffix` or `+build` (`22-ea`, `11.0.2+9`).
    pub fn parse(text: &str) -> Result<VersionNumber, String> {
        let raw = text.trim();
        let core = raw.split(['-', '+']).next().unwrap_or_default();
        // Each part a number that fits the `u32` the comparison uses.
        if core.split(['.', '_']).all(|n| n.parse::<u32>().is_ok()) {
            Ok(VersionNumber(raw.to_string()))
        } else {
            Err(format!(
                "{raw:?} is not a Java version (expected e.g. \"1.8\", \"1.8.0_401\", \"17.0.9\")"
            ))
        }
    }

    /// The number as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for VersionNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VersionNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VersionNumber::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        for good in ["1.8", "8", "1.8.0_401", "17.0.9", "21", "22-ea", "11.0.2+9"] {
            assert_eq!(VersionNumber::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "eight", "1..8", "17.x", "-ea", "99999999999"] {
            let e = VersionNumber::parse(bad).unwrap_err();
            assert!(e.contains("is not a Java version"), "{bad}: {e}");
        }
    }
}
