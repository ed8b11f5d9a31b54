//! The one publisher every writing command (`build`, `merge`, `mirror`) goes
//! through: [`write`] takes a [`Plan`] — blobs with where each comes from,
//! manifests, the manifest to tag, the tags — and writes in the only safe
//! order: blobs (present / mounted / streamed, as `store` decides), then
//! manifests by digest, then the head (the index) by digest, tags last, then
//! the store's commit. A failure at any step leaves every tag where it was,
//! and a re-run writes nothing already there. It also owns the target-tag
//! rules the commands share, and the counting that shows a re-run is a no-op.

use std::collections::HashSet;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::image::media::ManifestKind;
use crate::image::{Descriptor, Digest, Location, RawManifest, Selector};
use crate::inspect::human_size;
use crate::store::{self, BlobFrom, BlobPut, Store};

/// Blobs at least this large get their throughput logged.
const LARGE_BLOB: u64 = 1 << 20;

/// One blob to put into the target, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Blob<'a> {
    pub descriptor: Descriptor,
    pub from: BlobFrom<'a>,
}

/// Everything to write, read and checked before the first write.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Every blob the manifests reference. A digest listed again is put once
    /// and counted present (it is, by the time its manifest is written).
    pub blobs: Vec<Blob<'a>>,
    /// Per-platform (and attestation) manifests, put by digest in this order.
    pub manifests: Vec<RawManifest>,
    /// What the tags point at, put by digest after `manifests`: the index,
    /// or a single image.
    pub head: RawManifest,
    /// Tags to point at `head`, in order; repeats are dropped.
    pub tags: Vec<String>,
    /// The image's full repository name (`REGISTRY/NAME`), recorded with each
    /// tag where the target keeps names (an OCI layout or archive:
    /// `io.containerd.image.name`, what K3s imports it as).
    pub name: Option<String>,
    /// Blobs put at once.
    pub concurrency: usize,
    /// Log every blob at `info` (what `mirror` shows); otherwise at `debug`.
    pub log_each_blob: bool,
    /// Referring manifests (attestations), each with its subject's digest: put
    /// after `head` and listed in the subject's referrers fallback tag, before
    /// the tags (a promoted tag finds its attestation in place). Their blobs
    /// are in `blobs`.
    pub referrers: Vec<(Digest, RawManifest)>,
}

/// Counts of writes, to show that a re-run is a no-op.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Written {
    pub blobs_uploaded: usize,
    pub blobs_mounted: usize,
    pub blobs_present: usize,
    pub manifests: usize,
    pub index: bool,
    pub tags: usize,
    /// Bytes of the blobs uploaded now (not those present or mounted).
    #[serde(skip)]
    pub bytes_uploaded: u64,
}

/// Writes `plan` into `target`: blobs, manifests by digest, the head by
/// digest, tags last; then commits the target (an archive is written there).
pub async fn write(target: &dyn Store, plan: Plan<'_>) -> Result<Written> {
    let mut written = Written::default();
    let mut seen: HashSet<&Digest> = HashSet::new();
    let mut unique = Vec::new();
    for b in &plan.blobs {
        if !seen.insert(&b.descriptor.digest) {
            written.blobs_present += 1;
        } else {
            unique.push(b);
        }
    }
    let total: u64 = unique.iter().map(|b| b.descriptor.size).sum();
    let tracker = crate::progress::start(
        &target.name(),
        crate::progress::Phase::Upload,
        &format!("{} blob(s)", unique.len()),
        Some(total),
    );
    let results: Vec<(BlobPut, u64)> = futures_util::stream::iter(unique.into_iter().map(|b| {
        let tracker = &tracker;
        async move {
            let put = put_blob_logged(target, b, plan.log_each_blob).await?;
            tracker.add(b.descriptor.size);
            Ok::<_, Error>(put)
        }
    }))
    .buffer_unordered(plan.concurrency.max(1))
    .try_collect()
    .await?;
    tracker.complete();
    for (put, size) in results {
        match put {
            BlobPut::Present => written.blobs_present += 1,
            BlobPut::Mounted => written.blobs_mounted += 1,
            BlobPut::Written => {
                written.blobs_uploaded += 1;
                written.bytes_uploaded += size;
            }
        }
    }
    for m in &plan.manifests {
        if put_manifest_if_missing(target, m).await? {
            written.manifests += 1;
        }
    }
    if put_manifest_if_missing(target, &plan.head).await? {
        match plan.head.kind() {
            ManifestKind::Index => written.index = true,
            ManifestKind::Image => written.manifests += 1,
        }
    }
    for (subject, m) in &plan.referrers {
        put_manifest_if_missing(target, m).await?;
        let entry = crate::store::referrers::referrer_of(m)?;
        crate::store::referrers::add(target, subject, &entry).await?;
    }
    // A registry names the image itself: a name is for stores that record it.
    let name = plan
        .name
        .as_deref()
        .filter(|_| target.registry_host().is_none());
    written.tags = tag(target, &plan.head, &dedup(plan.tags), name).await?;
    target.commit().await?;
    Ok(written)
}

/// Writes a new index into `target` (opened for writing here), as `build`
/// and `merge` do: `blobs`, `manifests`, then `index`, tagged with `tags` (each
/// once, in order). Returns the tags and what was written.
pub async fn write_index(
    target: &Location,
    settings: &Settings,
    blobs: Vec<Blob<'_>>,
    manifests: Vec<RawManifest>,
    index: &RawManifest,
    tags: Vec<String>,
    name: Option<&str>,
) -> Result<(Vec<String>, Written)> {
    let name = name_for(target, name);
    let tags = dedup(tags);
    let store = store::open(target, settings, true).await?;
    let plan = Plan {
        blobs,
        manifests,
        head: index.clone(),
        tags: tags.clone(),
        name,
        concurrency: settings.network.concurrency,
        log_each_blob: false,
        referrers: Vec::new(),
    };
    let written = write(store.as_ref(), plan).await?;
    Ok((tags, written))
}

/// One blob, with a log line saying what happened (and how fast, for large ones).
async fn put_blob_logged(
    target: &dyn Store,
    blob: &Blob<'_>,
    loud: bool,
) -> Result<(BlobPut, u64)> {
    let desc = &blob.descriptor;
    let started = Instant::now();
    let put = store::put_blob_from(&blob.from, target, desc)
        .await
        .map_err(|e| match (&blob.from, e.kind()) {
            // Wrong bytes in the source: say so, and what a re-run will and will not redo.
            (BlobFrom::Store(src), crate::ErrorKind::Content) => Error::malformed(
                e.to_string(),
                format!(
                    "{} holds a damaged copy; nothing was tagged: replace the source (fetch or carry it again) and re-run — blobs that arrived intact are kept",
                    src.name()
                ),
            ),
            _ => e,
        })?;
    let size = human_size(desc.size);
    let line = match put {
        BlobPut::Present => format!("blob {} ({size}): already present", desc.digest),
        BlobPut::Mounted => format!("blob {} ({size}): mounted", desc.digest),
        BlobPut::Written if desc.size >= LARGE_BLOB => {
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            format!(
                "blob {} ({size}): copied in {secs:.2} s, {}/s",
                desc.digest,
                human_size((desc.size as f64 / secs) as u64)
            )
        }
        BlobPut::Written => format!("blob {} ({size}): copied", desc.digest),
    };
    if loud {
        tracing::info!("{line}");
    } else {
        tracing::debug!("{line}");
    }
    Ok((put, desc.size))
}

/// Puts a manifest by digest unless the target has it; true when written.
pub async fn put_manifest_if_missing(target: &dyn Store, manifest: &RawManifest) -> Result<bool> {
    // `probe`, not `resolve`: a registry answers a HEAD by digest without listing tags.
    if target
        .probe(&Selector::Digest(manifest.digest.clone()))
        .await?
        .is_some()
    {
        return Ok(false);
    }
    target.put_manifest(manifest, None).await?;
    Ok(true)
}

/// Points every tag at `head` (already stored by digest) unless it already
/// does: only the tag is sent. Returns how many moved.
/// With `name` (a layout's or archive's), each tag is written with it: the
/// store records it beside the tag, so a re-run that names the image
/// differently updates the name (a local write, no request).
async fn tag(
    target: &dyn Store,
    head: &RawManifest,
    tags: &[String],
    name: Option<&str>,
) -> Result<usize> {
    let mut moved = 0;
    for tag in tags {
        let current = target.probe(&Selector::Tag(tag.clone())).await?;
        let moves = current.as_ref() != Some(&head.digest);
        match name {
            Some(name) => target.put_named_tag(head, tag, name).await?,
            None if moves => target.put_tag(head, tag).await?,
            None => {}
        }
        moved += usize::from(moves);
    }
    Ok(moved)
}

/// The tags in order, each once.
pub fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The tag a `command` writing a new index to `target` moves: the one the
/// target names, else the store's default (`latest` in a registry). A digest,
/// or no tag where the store has no default, is an error naming the fix.
pub fn index_tag(target: &Location, command: &str) -> Result<String> {
    if let Some(t) = named_tag(target, command, "name a tag (the index digest is computed)")? {
        return Ok(t);
    }
    store::default_tag(target).map(str::to_string).ok_or_else(|| {
        Error::Invalid(format!(
            "{command} target `{target}` names no tag: write e.g. `{target}:v1` (the index digest is computed)"
        ))
    })
}

/// The full repository name to record for `name` (`image_name`, normalised
/// as Docker does), with [`warn_unnamed`] when there is none.
pub fn name_for(target: &Location, name: Option<&str>) -> Option<String> {
    let name = name.and_then(store::repository_of);
    warn_unnamed(target, name.as_deref());
    name
}

/// A warning when an image goes into an `oci-archive:` without a name:
/// K3s and `ctr images import` would store it under its bare tag.
pub fn warn_unnamed(target: &Location, name: Option<&str>) {
    if name.is_none() && target.imported_by_recorded_name() {
        tracing::warn!(
            "{target} records no image name: K3s and `ctr images import` would store it under its bare tag; name it with --name REGISTRY/NAME (or `image_name`)"
        );
    }
}

/// The tag `target` names itself, `None` when it names none; a digest is an
/// error (`instead` says what to write).
pub fn named_tag(target: &Location, command: &str, instead: &str) -> Result<Option<String>> {
    // `docker-archive:FILE:NAME:TAG` names its tag inside the image name.
    if let Some(tag) = target.tag_in_name()? {
        return Ok(Some(tag));
    }
    match target.selector() {
        Some(Selector::Digest(_)) => Err(Error::Invalid(format!(
            "{command} target `{target}` names a digest: {instead}"
        ))),
        Some(Selector::Tag(t)) => Ok(Some(t)),
        None => Ok(None),
    }
}

impl Written {
    /// One line saying what was written, or that nothing had to be.
    pub fn summary(&self) -> String {
        let w = self;
        if w.blobs_uploaded + w.blobs_mounted + w.manifests + w.tags == 0 && !w.index {
            return "  nothing to write: the target already held all of it\n".into();
        }
        format!(
            "  wrote {} blob(s) ({} mounted, {} already present), {} manifest(s), index {}, {} tag(s)\n",
            w.blobs_uploaded,
            w.blobs_mounted,
            w.blobs_present,
            w.manifests,
            if w.index { "new" } else { "already present" },
            w.tags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_order_and_drop_repeats() {
        let tags = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dedup(tags(&["v1", "latest", "v1", "x"])),
            tags(&["v1", "latest", "x"])
        );
        assert!(dedup(Vec::new()).is_empty());
    }

    #[tokio::test]
    async fn writes_everything_then_tags_and_a_rerun_writes_nothing() {
        use crate::image::media;
        use crate::store::layout::LayoutStore;
        let dir = tempfile::tempdir().unwrap();
        let target = LayoutStore::open_dir(&dir.path().join("out"), true).unwrap();
        let layer = bytes::Bytes::from_static(b"layer bytes");
        let config = bytes::Bytes::from_static(br#"{"os":"linux","architecture":"amd64"}"#);
        let desc = |mt: &str, b: &bytes::Bytes| Descriptor {
            media_type: mt.into(),
            digest: Digest::of(b),
            size: b.len() as u64,
            platform: None,
            annotations: Default::default(),
            urls: Vec::new(),
        };
        let (l, c) = (
            desc(media::OCI_LAYER_GZIP, &layer),
            desc(media::OCI_CONFIG, &config),
        );
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                                     "config": c, "layers": [l]});
        let image =
            RawManifest::from_bytes(serde_json::to_vec(&doc).unwrap().into(), None, "m").unwrap();
        let entry = crate::image::manifest::platform_entry(
            &image,
            crate::image::PlatformSpec {
                os: "linux".into(),
                architecture: "amd64".into(),
                ..Default::default()
            },
        );
        let index = crate::image::manifest::index(vec![entry], media::Format::Oci).unwrap();
        let plan = || Plan {
            blobs: vec![
                Blob {
                    descriptor: l.clone(),
                    from: BlobFrom::Bytes(layer.clone()),
                },
                Blob {
                    descriptor: c.clone(),
                    from: BlobFrom::Bytes(config.clone()),
                },
                // listed twice (two platforms sharing a layer): put once
                Blob {
                    descriptor: l.clone(),
                    from: BlobFrom::Bytes(layer.clone()),
                },
            ],
            manifests: vec![image.clone()],
            head: index.clone(),
            tags: vec!["v1".into(), "latest".into(), "v1".into()],
            name: None,
            concurrency: 2,
            log_each_blob: false,
            referrers: Vec::new(),
        };
        let first = write(&target, plan()).await.unwrap();
        let want = Written {
            blobs_uploaded: 2,
            blobs_present: 1,
            manifests: 1,
            index: true,
            tags: 2,
            bytes_uploaded: (layer.len() + config.len()) as u64,
            ..Default::default()
        };
        assert_eq!(first, want);
        for tag in ["v1", "latest"] {
            let got = target.probe(&Selector::Tag(tag.into())).await.unwrap();
            assert_eq!(got.as_ref(), Some(&index.digest), "{tag}");
        }
        let again = write(&target, plan()).await.unwrap();
        assert_eq!(
            again,
            Written {
                blobs_present: 3,
                ..Default::default()
            }
        );
        assert!(
            again.summary().contains("nothing to write"),
            "{}",
            again.summary()
        );
    }

    #[test]
    fn target_tags() {
        // (target, the index tag or the error's words) — one row per rule.
        let d = Digest::of(b"x");
        let rows = [
            ("127.0.0.1:5000/app:v1".to_string(), Ok("v1")),
            ("127.0.0.1:5000/app".to_string(), Ok("latest")),
            ("oci:out:v2".to_string(), Ok("v2")),
            (
                "oci:out".to_string(),
                Err("names no tag: write e.g. `oci:out:v1`"),
            ),
            (format!("oci-archive:a.tar@{d}"), Err("names a digest")),
            (format!("127.0.0.1:5000/app@{d}"), Err("names a digest")),
        ];
        for (target, want) in rows {
            let got = index_tag(&Location::parse(&target).unwrap(), "merge");
            match want {
                Ok(tag) => assert_eq!(got.unwrap(), tag, "{target}"),
                Err(words) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.kind(), crate::ErrorKind::Usage, "{target}");
                    let msg = err.to_string();
                    assert!(msg.contains(words) && msg.contains("merge target"), "{msg}");
                }
            }
        }
    }
}
