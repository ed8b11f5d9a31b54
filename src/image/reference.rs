//! Registry image references (`[HOST[:PORT]/]NAME[:TAG][@DIGEST]`), parsed the
//! way Docker's reference grammar does, with errors that say what is wrong.

use std::fmt;

use super::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's registry host, used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A tag or a digest: what a reference points at inside a repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Tag(t) => write!(f, ":{t}"),
            Selector::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// A parsed registry reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`, e.g. `127.0.0.1:5000` or `docker.io`.
    pub registry: String,
    /// Repository path, e.g. `library/debian` or `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses a reference; a missing tag and digest means `latest` (see [`ImageRef::selector`]).
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("invalid image reference `{input}`: {why}"));
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.chars().any(|c| c.is_whitespace()) {
            return Err(bad("it contains whitespace"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?),
            ),
            None => (input, None),
        };
        // A tag is what follows the last ':' after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|why| bad(&why))?;
        }
        // Docker's rule: the first component is a registry host only when it
        // holds `.` or `:` or is `localhost`. Anything else is a repository
        // path on Docker Hub and is checked as one, so `UPPER/case` is refused
        // here instead of becoming a host name that someone resolves.
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_host(first).map_err(|why| bad(&why))?;
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if registry == DEFAULT_REGISTRY && path.contains(':') {
            // e.g. `host::5000/app` or `host:/app`: the first component was not a host.
            return Err(bad(
                "malformed registry host: expected HOST[:PORT]/NAME, e.g. 10.0.0.5:5000/team/app:v1",
            ));
        }
        if path.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        for component in path.split('/') {
            validate_component(component).map_err(|why| bad(&why))?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository.len() > 255 {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What to fetch: the digest when there is one, else the tag, else `latest`.
    pub fn selector(&self) -> Selector {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Selector::Digest(d.clone()),
            (None, Some(t)) => Selector::Tag(t.clone()),
            (None, None) => Selector::Tag("latest".into()),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository, pinned to a digest (the form reports and dotenv use).
    pub fn with_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest.clone()),
            tag: None,
            ..self.clone()
        }
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Checks a tag against `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` is not valid: use up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ))
    }
}

/// Checks `host[:port]` (a DNS name, IPv4 address or `[IPv6]`, optional numeric port).
pub fn validate_host(host: &str) -> std::result::Result<(), String> {
    let malformed = || {
        format!(
            "malformed registry host `{host}`: expected HOST[:PORT], e.g. 10.0.0.5:5000 or registry.internal"
        )
    };
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(malformed)?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(malformed());
        }
        match after {
            "" => return Ok(()),
            p => (v6, Some(p.strip_prefix(':').ok_or_else(malformed)?)),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(malformed());
    }
    if host.starts_with('[') {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(malformed());
    }
    Ok(())
}

/// Checks one path component: lowercase alphanumerics separated by `.`, `_`, `__` or `-`s.
fn validate_component(c: &str) -> std::result::Result<(), String> {
    if c.chars().any(|ch| ch.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lowercase (`{c}`): write `{}`; a registry host needs a `.` or `:` (e.g. registry.example:5000/team/app) or is `localhost`",
            c.to_ascii_lowercase()
        ));
    }
    let err = || {
        format!(
            "repository path component `{c}` is not valid: use lowercase letters and digits separated by `.`, `_`, `__` or `-`"
        )
    };
    if c.is_empty() {
        return Err(err());
    }
    let bytes = c.as_bytes();
    if !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit() {
        return Err(err());
    }
    if !bytes[bytes.len() - 1].is_ascii_lowercase() && !bytes[bytes.len() - 1].is_ascii_digit() {
        return Err(err());
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return Err(err());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let d = Digest::of(b"x");
        let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
            ("debian", "docker.io", "library/debian", None, false),
            (
                "debian:bullseye",
                "docker.io",
                "library/debian",
                Some("bullseye"),
                false,
            ),
            ("team/app:v1", "docker.io", "team/app", Some("v1"), false),
            (
                "127.0.0.1:5000/app:v1",
                "127.0.0.1:5000",
                "app",
                Some("v1"),
                false,
            ),
            ("localhost/app", "localhost", "app", None, false),
            (
                "localhost:5000/a/b/c:1.0-rc_1",
                "localhost:5000",
                "a/b/c",
                Some("1.0-rc_1"),
                false,
            ),
            (
                "registry.internal:5000/debian-jdk8-multi:v1",
                "registry.internal:5000",
                "debian-jdk8-multi",
                Some("v1"),
                false,
            ),
            ("[::1]:5000/app:v1", "[::1]:5000", "app", Some("v1"), false),
            ("reg.example/app@DIGEST", "reg.example", "app", None, true),
            (
                "reg.example/app:v2@DIGEST",
                "reg.example",
                "app",
                Some("v2"),
                true,
            ),
        ];
        for (input, reg, repo, tag, has_digest) in cases {
            let input = input.replace("DIGEST", d.as_str());
            let r = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, *reg, "{input}");
            assert_eq!(r.repository, *repo, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest.is_some(), *has_digest, "{input}");
        }
    }

    #[test]
    fn rejects_bad_references_with_reasons() {
        for (input, why) in [
            ("", "empty"),
            ("host::5000/app:v1", "malformed registry host"),
            ("10.0.0.5:50x0/app", "malformed registry host"),
            ("10.0.0.5:99999/app", "malformed registry host"),
            ("10.0.0.5:5000/App", "must be lowercase (`App`)"),
            ("10.0.0.5:5000/app:", "tag"),
            ("10.0.0.5:5000/app:-x", "tag"),
            ("10.0.0.5:5000/app@sha256:abc", "digest"),
            ("10.0.0.5:5000/", "empty"),
            ("app name", "whitespace"),
            ("a//b", "not valid"),
            ("UPPER/case:tag", "must be lowercase (`UPPER`)"),
            ("Team/app", "must be lowercase"),
            ("reg.example/Team/app", "must be lowercase (`Team`)"),
        ] {
            let err = ImageRef::parse(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(
                err.contains(&format!("`{input}`")),
                "{input:?}: error must name the input: {err}"
            );
        }
    }

    #[test]
    fn selector_and_display() {
        let r = ImageRef::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(r.selector(), Selector::Tag("latest".into()));
        assert_eq!(r.to_string(), "127.0.0.1:5000/app");
        let d = Digest::of(b"y");
        let pinned = r.with_tag("v1").with_digest(&d);
        assert_eq!(pinned.to_string(), format!("127.0.0.1:5000/app@{d}"));
        assert_eq!(ImageRef::parse(&pinned.to_string()).unwrap(), pinned);
    }
}
