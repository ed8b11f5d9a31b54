//! Pattern settings, compiled when the configuration is loaded: a regular
//! expression (`[[verify.commands]] output`) or a glob (`[verify.natives]
//! ignore`) that does not compile is an error of `archgate config`, `verify`
//! and `run` before anything is built or published, never a surprise after.

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

/// A glob (`[verify.natives] ignore`): `**` matches anything, `*` anything
/// but `/`, `?` one character but `/`, `[abc]`/`[!a-z]` a class; the rest is
/// literal. Compiled to an anchored regular expression at load.
#[derive(Debug, Clone)]
pub struct Glob {
    source: String,
    regex: regex::Regex,
}

impl Glob {
    pub fn new(source: &str) -> Result<Glob, String> {
        if source.trim().is_empty() {
            return Err("an empty glob matches nothing: remove it".into());
        }
        let mut re = String::from("^");
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    re.push_str(".*");
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '[' => {
                    let mut class = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == ']' && !class.is_empty() && class != "!" {
                            closed = true;
                            break;
                        }
                        class.push(c);
                    }
                    if !closed {
                        return Err(format!("{source:?}: `[` without its `]`"));
                    }
                    let (neg, body) = match class.strip_prefix('!') {
                        Some(b) => ("^", b),
                        None => ("", class.as_str()),
                    };
                    let body = body.replace('\\', "\\\\").replace('[', "\\[");
                    re.push_str(&format!("[{neg}{body}]"));
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = regex::Regex::new(&re)
            .map_err(|_| format!("{source:?} is not a valid glob (a bad `[…]` class?)"))?;
        Ok(Glob {
            source: source.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Glob::new(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_paths_jar_paths_and_coordinates() {
        // (glob, text, matches)
        let rows = [
            ("/opt/tools/**", "/opt/tools/bin/x", true),
            ("/opt/tools/*", "/opt/tools/bin/x", false),
            ("/opt/tools/*", "/opt/tools/x.so", true),
            ("**/libfoo.so", "/usr/lib/libfoo.so", true),
            (
                "/app/app.jar!BOOT-INF/lib/snappy-*.jar",
                "/app/app.jar!BOOT-INF/lib/snappy-java-1.1.8.3.jar",
                true,
            ),
            (
                "org.xerial.snappy:snappy-java:*",
                "org.xerial.snappy:snappy-java:1.1.8.3",
                true,
            ),
            (
                "org.xerial.snappy:snappy-java:1.1.?.3",
                "org.xerial.snappy:snappy-java:1.1.8.3",
                true,
            ),
            ("/lib/x[0-9].so", "/lib/x7.so", true),
            ("/lib/x[!0-9].so", "/lib/x7.so", false),
            ("/a.b", "/aXb", false),
        ];
        for (glob, text, want) in rows {
            assert_eq!(
                Glob::new(glob).unwrap().is_match(text),
                want,
                "{glob} ~ {text}"
            );
        }
        for bad in ["", "/lib/[abc", "[z-a]"] {
            assert!(Glob::new(bad).is_err(), "{bad:?} is refused");
        }
        let g: Glob = serde_json::from_str(r#""/opt/**""#).unwrap();
        assert_eq!(serde_json::to_string(&g).unwrap(), r#""/opt/**""#);
    }

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
