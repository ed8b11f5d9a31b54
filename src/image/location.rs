//! Image locations: where an image lives and how to address it there.
//!
//! `127.0.0.1:5000/app:v1` (or `docker://…`) is a registry; `oci:PATH[:TAG]`
//! (or `oci:PATH@DIGEST`) an OCI image layout directory; `oci-archive:FILE[:TAG]`
//! a tar of one; `docker-archive:FILE[:NAME[:TAG]]` (or `docker-archive:FILE@DIGEST`)
//! the tarball `docker save` writes (one platform when written).

use std::fmt;
use std::path::PathBuf;

use super::digest::Digest;
use super::reference::{ImageRef, Selector, validate_tag};
use crate::error::{Error, Result};

/// Where an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A remote registry.
    Registry(ImageRef),
    /// An OCI image layout directory; the selector picks a tag (`ref.name`) or digest.
    Layout {
        path: PathBuf,
        selector: Option<Selector>,
    },
    /// A tar archive of an OCI image layout.
    Archive {
        path: PathBuf,
        selector: Option<Selector>,
    },
    /// A `docker save` archive (written with one platform): `name` (`NAME[:TAG]`, as in its
    /// `RepoTags`) picks an image, else `digest`, else its only image.
    DockerArchive {
        path: PathBuf,
        name: Option<String>,
        digest: Option<Digest>,
    },
}

impl Location {
    /// Parses a location string.
    pub fn parse(input: &str) -> Result<Self> {
        if let Some(rest) = input.strip_prefix("oci:") {
            let (path, selector) = split_path(input, rest)?;
            return Ok(Location::Layout { path, selector });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, selector) = split_path(input, rest)?;
            return Ok(Location::Archive { path, selector });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            return parse_docker_archive(input, rest);
        }
        if let Some((scheme, _)) = input.split_once(':')
            && matches!(scheme, "docker-daemon" | "dir" | "containers-storage")
        {
            return Err(Error::Invalid(format!(
                "unsupported location `{input}`: archgate reads and writes registries (HOST/NAME:TAG), `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and `docker-archive:FILE[:NAME[:TAG]]` (written with one platform)"
            )));
        }
        let reference = input.strip_prefix("docker://").unwrap_or(input);
        Ok(Location::Registry(ImageRef::parse(reference)?))
    }

    /// The tag or digest the location itself names, `None` when it names
    /// neither. What to read then is the store's decision
    /// ([`crate::store::open_image`]), not the location's.
    pub fn selector(&self) -> Option<Selector> {
        match self {
            Location::Registry(r) => match (&r.digest, &r.tag) {
                (Some(d), _) => Some(Selector::Digest(d.clone())),
                (None, Some(t)) => Some(Selector::Tag(t.clone())),
                (None, None) => None,
            },
            Location::Layout { selector, .. } | Location::Archive { selector, .. } => {
                selector.clone()
            }
            // A name is resolved by the store (it reads `manifest.json`).
            Location::DockerArchive { digest, .. } => digest.clone().map(Selector::Digest),
        }
    }

    /// The registry reference, when the location is a registry.
    pub fn registry_ref(&self) -> Option<&ImageRef> {
        match self {
            Location::Registry(r) => Some(r),
            _ => None,
        }
    }

    /// Whether a copy into this location keeps attestation entries when not
    /// told: registries and layout directories do; archives, which are meant
    /// for import, do not (containerd refuses attestation entries, containerd#11344).
    pub fn keeps_attestations_by_default(&self) -> bool {
        match self {
            Location::Registry(_) | Location::Layout { .. } => true,
            Location::Archive { .. } | Location::DockerArchive { .. } => false,
        }
    }

    /// Whether this location can hold the referrers (attestations) of what it
    /// stores: a `docker save` archive holds one image and nothing that points at it.
    pub fn holds_referrers(&self) -> bool {
        !matches!(self, Location::DockerArchive { .. })
    }

    /// Whether an image written here is named only by what the location
    /// records: an `oci-archive:` imported by K3s or `ctr images import` is
    /// stored under its recorded name, its bare tag when it records none.
    pub fn imported_by_recorded_name(&self) -> bool {
        matches!(self, Location::Archive { .. })
    }

    /// The tag named inside the image name of a `docker-archive:FILE:NAME[:TAG]`
    /// (`latest` when NAME has none); `None` for every other location, whose
    /// tag is its [`selector`](Self::selector).
    pub fn tag_in_name(&self) -> Result<Option<String>> {
        match self {
            Location::DockerArchive { name: Some(n), .. } => Ok(Some(
                ImageRef::parse(n)?.tag.unwrap_or_else(|| "latest".into()),
            )),
            _ => Ok(None),
        }
    }

    /// What identifies the store behind this location, whatever it selects:
    /// the registry repository, or the layout's path with its scheme.
    pub fn store_key(&self) -> String {
        match self {
            Location::Registry(r) => r.name(),
            Location::Layout { path, .. } => format!("oci:{}", path.display()),
            Location::Archive { path, .. } => format!("oci-archive:{}", path.display()),
            Location::DockerArchive { path, .. } => format!("docker-archive:{}", path.display()),
        }
    }

    /// The same location with its selector replaced by a digest.
    pub fn with_digest(&self, digest: &Digest) -> Location {
        match self {
            Location::Registry(r) => Location::Registry(r.with_digest(digest)),
            Location::Layout { path, .. } => Location::Layout {
                path: path.clone(),
                selector: Some(Selector::Digest(digest.clone())),
            },
            Location::Archive { path, .. } => Location::Archive {
                path: path.clone(),
                selector: Some(Selector::Digest(digest.clone())),
            },
            Location::DockerArchive { path, .. } => Location::DockerArchive {
                path: path.clone(),
                name: None,
                digest: Some(digest.clone()),
            },
        }
    }
}

/// `docker-archive:FILE@DIGEST`, `docker-archive:FILE:NAME[:TAG]` (the path
/// ends at its first `:`, as in skopeo) or `docker-archive:FILE`.
fn parse_docker_archive(input: &str, rest: &str) -> Result<Location> {
    let bad = |why: String| Error::Invalid(format!("invalid location `{input}`: {why}"));
    let empty = || bad("the path is empty: write e.g. `docker-archive:./debian-amd64.tar`".into());
    if let Some((path, digest)) = rest.rsplit_once('@')
        && digest.starts_with("sha256:")
    {
        let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
        if path.is_empty() {
            return Err(empty());
        }
        return Ok(Location::DockerArchive {
            path: path.into(),
            name: None,
            digest: Some(digest),
        });
    }
    let (path, name) = match rest.split_once(':') {
        Some((p, n)) => (p, Some(n)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(empty());
    }
    let name = match name {
        Some("") => return Err(bad("the image name after the path is empty".into())),
        Some(n) => {
            // Checked as Docker checks a reference (no lookup): `NAME[:TAG]`.
            ImageRef::parse(n).map_err(|e| bad(e.to_string()))?;
            Some(n.to_string())
        }
        None => None,
    };
    Ok(Location::DockerArchive {
        path: path.into(),
        name,
        digest: None,
    })
}

fn split_path(input: &str, rest: &str) -> Result<(PathBuf, Option<Selector>)> {
    let bad = |why: String| Error::Invalid(format!("invalid location `{input}`: {why}"));
    if let Some((path, digest)) = rest.rsplit_once('@') {
        let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
        if path.is_empty() {
            return Err(bad("the path is empty".into()));
        }
        return Ok((PathBuf::from(path), Some(Selector::Digest(digest))));
    }
    // A tag is what follows the last ':' after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad(
            "the path is empty: write e.g. `oci:./out/app:v1`".into()
        ));
    }
    let selector = match tag {
        Some(t) => {
            // OCI ref.name allows more than Docker tags, but archgate keeps to tags
            // that every registry accepts so that mirroring never fails late.
            validate_tag(t).map_err(bad)?;
            Some(Selector::Tag(t.to_string()))
        }
        None => None,
    };
    Ok((PathBuf::from(path), selector))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, path, selector) = match self {
            Location::Registry(r) => return write!(f, "{r}"),
            Location::DockerArchive { path, name, digest } => {
                write!(f, "docker-archive:{}", path.display())?;
                if let Some(n) = name {
                    write!(f, ":{n}")?;
                }
                if let Some(d) = digest {
                    write!(f, "@{d}")?;
                }
                return Ok(());
            }
            Location::Layout { path, selector } => ("oci", path, selector),
            Location::Archive { path, selector } => ("oci-archive", path, selector),
        };
        write!(f, "{scheme}:{}", path.display())?;
        if let Some(s) = selector {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_locations() {
        let d = Digest::of(b"z");
        let l = Location::parse("oci:./out/app:v1").unwrap();
        assert_eq!(
            l,
            Location::Layout {
                path: "./out/app".into(),
                selector: Some(Selector::Tag("v1".into()))
            }
        );
        assert_eq!(l.to_string(), "oci:./out/app:v1");
        assert_eq!(
            Location::parse("oci:/tmp/x").unwrap(),
            Location::Layout {
                path: "/tmp/x".into(),
                selector: None
            }
        );
        assert_eq!(
            Location::parse(&format!("oci-archive:app.tar@{d}")).unwrap(),
            Location::Archive {
                path: "app.tar".into(),
                selector: Some(Selector::Digest(d.clone()))
            }
        );
        assert!(matches!(
            Location::parse("docker://127.0.0.1:5000/a:b").unwrap(),
            Location::Registry(_)
        ));
        assert!(matches!(
            Location::parse("127.0.0.1:5000/a:b").unwrap(),
            Location::Registry(_)
        ));
        for input in [
            "docker-archive:deb.tar".to_string(),
            "docker-archive:deb.tar:debian:bullseye".to_string(),
            "docker-archive:deb.tar:10.0.0.5:5000/debian:v1".to_string(),
            format!("docker-archive:deb.tar@{d}"),
        ] {
            let l = Location::parse(&input).unwrap();
            assert!(
                matches!(&l, Location::DockerArchive { path, .. } if path == Path::new("deb.tar")),
                "{input}"
            );
            assert_eq!(l.to_string(), input);
        }
        let round = Location::parse(&format!("127.0.0.1:5000/a@{d}")).unwrap();
        assert_eq!(Location::parse(&round.to_string()).unwrap(), round);
    }

    #[test]
    fn a_location_names_only_what_it_says() {
        // (location, selector it names, store key) — regression: registries
        // were silently given `latest` here, layouts nothing.
        let d = Digest::of(b"z");
        let rows = [
            ("127.0.0.1:5000/app", None, "127.0.0.1:5000/app"),
            (
                "127.0.0.1:5000/app:v1",
                Some(Selector::Tag("v1".into())),
                "127.0.0.1:5000/app",
            ),
            ("oci:out", None, "oci:out"),
            (
                "oci-archive:a.tar:v2",
                Some(Selector::Tag("v2".into())),
                "oci-archive:a.tar",
            ),
        ];
        for (input, selector, key) in rows {
            let l = Location::parse(input).unwrap();
            assert_eq!(l.selector(), selector, "{input}");
            assert_eq!(l.store_key(), key, "{input}");
        }
        let pinned = Location::parse(&format!("127.0.0.1:5000/app:v1@{d}")).unwrap();
        assert_eq!(pinned.selector(), Some(Selector::Digest(d)));
    }

    #[test]
    fn what_each_kind_of_location_decides() {
        // (location, is a registry, keeps attestations by default, imported by
        // its recorded name, tag named inside the image name)
        let rows = [
            ("127.0.0.1:5000/app:v1", true, true, false, None),
            ("oci:out:v1", false, true, false, None),
            ("oci-archive:a.tar:v1", false, false, true, None),
            ("docker-archive:a.tar", false, false, false, None),
            (
                "docker-archive:a.tar:debian",
                false,
                false,
                false,
                Some("latest"),
            ),
            (
                "docker-archive:a.tar:10.0.0.5:5000/debian:bullseye",
                false,
                false,
                false,
                Some("bullseye"),
            ),
        ];
        for (input, registry, attestations, recorded, tag) in rows {
            let l = Location::parse(input).unwrap();
            assert_eq!(l.registry_ref().is_some(), registry, "{input}");
            assert_eq!(l.keeps_attestations_by_default(), attestations, "{input}");
            assert_eq!(l.imported_by_recorded_name(), recorded, "{input}");
            // Only a docker save archive cannot hold referrers.
            assert_eq!(
                l.holds_referrers(),
                !input.starts_with("docker-archive:"),
                "{input}"
            );
            assert_eq!(l.tag_in_name().unwrap().as_deref(), tag, "{input}");
        }
    }

    #[test]
    fn rejects_bad_locations() {
        for (input, why) in [
            ("oci:", "path is empty"),
            ("oci::v1", "path is empty"),
            ("oci:out:bad tag", "tag"),
            ("oci:out@sha256:12", "digest"),
            ("docker-daemon:x", "unsupported location"),
            ("docker-archive:", "path is empty"),
            ("docker-archive:x.tar:", "name after the path is empty"),
            ("docker-archive:x.tar:UPPER/case", "invalid location"),
            ("host::5000/app", "malformed registry host"),
        ] {
            let err = Location::parse(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
