//! `archgate promote SOURCE TARGET --key PUB.pem`: the release gate on the
//! registry side. SOURCE is resolved once; TARGET is tagged with exactly that
//! digest (copied by `mirror`, digests kept, attestations carried) only when
//! a statement signed by the key says `PASSED` about that digest and every
//! required platform's manifest in it. Otherwise nothing is written and the
//! error (exit 1) says, per attestation found, what is missing.

use serde::Serialize;

use super::{ARTIFACT_TYPE, Found, PublicKey};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::{Digest, Location, Selector};
use crate::mirror::{MirrorOutcome, MirrorRequest};
use crate::platform::Platform;
use crate::store;

/// What to promote, and the key that must have signed it.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub source: String,
    pub target: String,
    pub key: PublicKey,
}

/// What `promote` did.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub source: String,
    /// The digest SOURCE resolved to, now at TARGET.
    pub digest: Digest,
    /// TARGET pinned to the digest.
    pub image: String,
    /// The attestation that allowed it.
    pub attestation: Digest,
    /// The key's fingerprint.
    pub key: Digest,
    /// The required platforms it covers, with their manifests.
    pub platforms: Vec<(String, Digest)>,
    pub mirror: MirrorOutcome,
}

/// Promotes `req.source` to `req.target` when an attestation allows it.
pub async fn promote(req: &PromoteRequest, settings: &Settings) -> Result<Promoted> {
    let target = Location::parse(&req.target)?;
    if !matches!(target.selector(), Some(Selector::Tag(_))) {
        return Err(Error::Invalid(format!(
            "promote target `{}` names no tag: promotion is a tag, e.g. `{}:1.0`",
            req.target, req.target
        )));
    }
    let location = Location::parse(&req.source)?;
    let opened = store::open_image(&location, settings).await?;
    // Resolve once: everything after works on this digest.
    let top = opened.store.get_manifest(&opened.selector).await?;
    let digest = top.digest.clone();
    let what = format!("{} ({digest})", req.source);
    let index = top.index(&what).map_err(|_| {
        Error::Invalid(format!(
            "{what} is a single image, not an index: archgate attests and promotes indexes"
        ))
    })?;
    let entries: Vec<(Platform, Digest)> = index
        .manifests
        .iter()
        .filter(|d| !d.is_attestation())
        .map(|d| (d.claimed_platform(), d.digest.clone()))
        .collect();
    let required = settings.required_platforms();
    let found = super::inspect(opened.store.as_ref(), &digest, Some(&req.key)).await?;
    let (chosen, platforms) =
        judge(&digest, &entries, &required, &found).map_err(|reasons| {
            Error::Uncovered(format!(
                "refusing to promote {what} to {}: no statement signed by key {} says PASSED for this digest and every required platform ({}): {}. Nothing was written.",
                req.target,
                req.key.fingerprint(),
                required
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                reasons.join("; ")
            ))
        })?;
    let attestation = chosen.digest.clone();
    drop(opened);
    let mirror = crate::mirror::mirror(
        &MirrorRequest {
            source: location.with_digest(&digest).to_string(),
            target: req.target.clone(),
            platforms: None,
            name: None,
            keep_attestations: None,
            referrers: true,
        },
        settings,
    )
    .await?;
    Ok(Promoted {
        source: req.source.clone(),
        image: mirror.image.clone(),
        digest,
        attestation,
        key: req.key.fingerprint(),
        platforms,
        mirror,
    })
}

/// The attestation that allows a promotion, and the required platforms
/// (with their manifests) it covers.
pub type Allowed<'a> = (&'a Found, Vec<(String, Digest)>);

/// The attestation that allows promoting `digest` (with its covered platforms),
/// or why each one found does not. Pure.
pub fn judge<'a>(
    digest: &Digest,
    entries: &[(Platform, Digest)],
    required: &[Platform],
    found: &'a [Found],
) -> std::result::Result<Allowed<'a>, Vec<String>> {
    let mut needed = Vec::new();
    let mut reasons = Vec::new();
    for r in required {
        match entries.iter().find(|(p, _)| p.matches(r)) {
            Some((_, d)) => needed.push((r.to_string(), d.clone())),
            None => reasons.push(format!("{r} is not in the index")),
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    let attestations: Vec<&Found> = found
        .iter()
        .filter(|f| f.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
        .collect();
    if attestations.is_empty() {
        return Err(vec![format!(
            "no attestation is attached to {digest}: verify it with `[attest] key` set (archgate run / archgate verify) first"
        )]);
    }
    for f in attestations {
        let why = match (&f.problem, &f.statement) {
            (Some(p), _) => format!("unreadable: {p}"),
            (None, None) => "no statement".to_string(),
            (None, Some(_)) if f.verified != Some(true) => {
                "its signature does not verify under this key (signed with another key, or changed after signing)".to_string()
            }
            (None, Some(s)) if !s.is_test_result() => {
                format!("predicate type {}, not a test result", s.predicate_type)
            }
            (None, Some(s)) if !s.index_subject().is_some_and(|r| r.is(digest)) => format!(
                "it is about {}, not {digest}",
                s.index_subject()
                    .and_then(|r| r.digest.get("sha256"))
                    .map_or("another image".to_string(), |h| format!("sha256:{h}"))
            ),
            (None, Some(s)) if !s.passed() => format!("it says {}", s.predicate.result),
            (None, Some(s)) => {
                let missing: Vec<String> = needed
                    .iter()
                    .filter(|(p, d)| !s.covers(p, d))
                    .map(|(p, d)| format!("{p} ({d})"))
                    .collect();
                if missing.is_empty() {
                    return Ok((f, needed));
                }
                format!("it does not cover {}", missing.join(", "))
            }
        };
        reasons.push(format!("attestation {}: {why}", f.digest));
    }
    Err(reasons)
}

/// The human summary.
pub fn render_text(p: &Promoted) -> String {
    let mut s = format!(
        "promoted {} ({}) to {}\n  attestation {} signed by key {}\n",
        p.source, p.digest, p.image, p.attestation, p.key
    );
    for (platform, d) in &p.platforms {
        s.push_str(&format!("  {platform:<16} {d}\n"));
    }
    s.push_str(&crate::mirror::render_text(&p.mirror));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::Statement;
    use crate::attest::statement::{
        INDEX_SUBJECT, PREDICATE_TYPE, Predicate, Resource, STATEMENT_TYPE,
    };

    fn res(name: &str, d: &Digest) -> Resource {
        Resource {
            name: name.into(),
            digest: [("sha256".to_string(), d.hex().to_string())].into(),
        }
    }

    fn found(statement: Statement, verified: bool) -> Found {
        Found {
            digest: Digest::of(b"attestation"),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            verified: Some(verified),
            predicate_type: Some(statement.predicate_type.clone()),
            result: Some(statement.predicate.result.clone()),
            subjects: Vec::new(),
            problem: None,
            statement: Some(statement),
        }
    }

    /// A statement about `index` with `platforms`, each passing `config-platform`.
    fn statement(index: &Digest, platforms: &[(&str, &Digest)], result: &str) -> Statement {
        let mut subject = vec![res(INDEX_SUBJECT, index)];
        subject.extend(platforms.iter().map(|(p, d)| res(p, d)));
        Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate: Predicate {
                result: result.into(),
                configuration: Vec::new(),
                url: None,
                passed_tests: platforms
                    .iter()
                    .map(|(p, _)| format!("{p}/config-platform"))
                    .collect(),
                warned_tests: Vec::new(),
                failed_tests: Vec::new(),
            },
        }
    }

    #[test]
    fn judge_names_what_is_missing() {
        let (index, amd, arm) = (Digest::of(b"i"), Digest::of(b"a"), Digest::of(b"r"));
        let p = |s: &str| Platform::parse(s).unwrap();
        let entries = vec![
            (p("linux/amd64"), amd.clone()),
            (p("linux/arm64"), arm.clone()),
        ];
        let both = [p("linux/amd64"), p("linux/arm64")];
        let mips = [p("linux/mips64le")];
        let good = statement(
            &index,
            &[("linux/amd64", &amd), ("linux/arm64", &arm)],
            "PASSED",
        );
        let reason = |f: Vec<Found>, required: &[Platform]| {
            judge(&index, &entries, required, &f)
                .err()
                .map(|r| r.join("; "))
                .unwrap_or_default()
        };
        // (found, required, expected reason; "" = allowed)
        let cases: Vec<(Vec<Found>, &[Platform], &str)> = vec![
            (vec![found(good.clone(), true)], &both, ""),
            (vec![], &both, "no attestation is attached"),
            (
                vec![found(good.clone(), false)],
                &both,
                "does not verify under this key",
            ),
            (
                vec![found(
                    statement(
                        &index,
                        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
                        "FAILED",
                    ),
                    true,
                )],
                &both,
                "it says FAILED",
            ),
            (
                vec![found(
                    statement(&index, &[("linux/amd64", &amd)], "PASSED"),
                    true,
                )],
                &both,
                "does not cover linux/arm64",
            ),
            (
                vec![found(
                    statement(
                        &Digest::of(b"other"),
                        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
                        "PASSED",
                    ),
                    true,
                )],
                &both,
                "it is about sha256:",
            ),
            (
                vec![found(
                    statement(
                        &index,
                        &[("linux/amd64", &amd), ("linux/arm64", &Digest::of(b"x"))],
                        "PASSED",
                    ),
                    true,
                )],
                &both,
                "does not cover linux/arm64",
            ),
            (
                vec![found(good.clone(), true)],
                &mips,
                "linux/mips64le is not in the index",
            ),
            // One good attestation among bad ones is enough.
            (
                vec![found(good.clone(), false), found(good, true)],
                &both,
                "",
            ),
        ];
        for (i, (f, required, want)) in cases.into_iter().enumerate() {
            let got = reason(f, required);
            if want.is_empty() {
                assert!(got.is_empty(), "case {i}: refused: {got}");
            } else {
                assert!(got.contains(want), "case {i}: {got:?} lacks {want:?}");
            }
        }
    }
}
