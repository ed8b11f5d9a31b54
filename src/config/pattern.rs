//! A regular expression setting (`[[verify.commands]] output`), compiled when
//! the configuration is loaded: a pattern that does not compile is an error
//! of `archgate config`, `verify` and `run` before anything is built or
//! published, never a surprise after.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A compiled regular expression that (de)serialises as its source text.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `source`; the error is one line (regex's own spans several).
    pub fn new(source: &str) -> Result<Pattern, String> {
        regex::Regex::new(source).map(Pattern).map_err(|e| {
            let why = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("not a valid regular expression: {why}")
        })
    }

    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The source text, as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Two patterns are the same setting when they are written the same.
impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_at_deserialisation_and_keeps_its_text() {
        let p: Pattern = serde_json::from_str(r#""^openjdk \\d+""#).unwrap();
        assert!(p.regex().is_match("openjdk 17"));
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""^openjdk \\d+""#);
        let e = serde_json::from_str::<Pattern>(r#""(""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid regular expression"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
