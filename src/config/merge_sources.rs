//! `[merge] sources`: a list of image locations, or a table keyed by the
//! platform each must be. Deserialised by hand rather than as an untagged
//! enum, so that a bad platform key is reported as itself ("platform
//! `linux/sparc`: …") instead of serde's "did not match any variant".

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::platform::Platform;

/// `[merge] sources`: a list, or a table keyed by platform.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum MergeSources {
    /// Image locations; each one's platform is read from its config.
    List(Vec<String>),
    /// `"linux/arm64" = "LOCATION"`: the location must hold that platform.
    ByPlatform(BTreeMap<Platform, String>),
}

impl Default for MergeSources {
    fn default() -> Self {
        MergeSources::List(Vec::new())
    }
}

impl MergeSources {
    /// Whether no source is configured.
    pub fn is_empty(&self) -> bool {
        match self {
            MergeSources::List(l) => l.is_empty(),
            MergeSources::ByPlatform(t) => t.is_empty(),
        }
    }
}

impl<'de> Deserialize<'de> for MergeSources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SourcesVisitor)
    }
}

struct SourcesVisitor;

impl<'de> Visitor<'de> for SourcesVisitor {
    type Value = MergeSources;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of image locations, or a table \"os/arch\" = \"LOCATION\"")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MergeSources, A::Error> {
        let mut list = Vec::new();
        while let Some(location) = seq.next_element::<String>()? {
            list.push(location);
        }
        Ok(MergeSources::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MergeSources, A::Error> {
        let mut table = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let platform = Platform::parse(&key)
                .map_err(|e| de::Error::custom(format!("key \"{key}\": {e}")))?;
            let location = map.next_value::<String>()?;
            if table.insert(platform.clone(), location).is_some() {
                return Err(de::Error::custom(format!(
                    "key \"{key}\": {platform} is listed twice"
                )));
            }
        }
        Ok(MergeSources::ByPlatform(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_or_a_table_of_platforms() {
        let list: MergeSources = serde_json::from_str(r#"["oci:a:v1", "oci:b:v1"]"#).unwrap();
        assert_eq!(
            list,
            MergeSources::List(vec!["oci:a:v1".into(), "oci:b:v1".into()])
        );
        let table: MergeSources =
            serde_json::from_str(r#"{"linux/arm64/v8": "oci:a:v1", "x86_64": "oci:b:v1"}"#)
                .unwrap();
        let MergeSources::ByPlatform(t) = &table else {
            panic!("{table:?}")
        };
        let keys: Vec<String> = t.keys().map(|p| p.to_string()).collect();
        assert_eq!(keys, ["linux/amd64", "linux/arm64"], "normalised");
    }

    #[test]
    fn a_bad_key_or_value_names_itself() {
        for (json, want) in [
            (r#"{"linux/": "oci:a:v1"}"#, "key \"linux/\": platform"),
            (
                r#"{"linux/arm64": "oci:a", "linux/arm64/v8": "oci:b"}"#,
                "listed twice",
            ),
            ("3", "a list of image locations, or a table"),
        ] {
            let e = serde_json::from_str::<MergeSources>(json).unwrap_err();
            assert!(e.to_string().contains(want), "{json}: {e}");
        }
    }
}
