//! Tag templates such as `"{git_short_sha}"` or `"v1-{pipeline_id}"`, filled
//! from the CI context. Pure.

use super::CiContext;
use crate::error::{Error, Result};

/// The variables a template may use, with the CI variables that provide them.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "tag",
        "CI_COMMIT_TAG / TAG_NAME, else the short commit SHA, else `latest`",
    ),
    ("git_sha", "CI_COMMIT_SHA / GIT_COMMIT"),
    (
        "git_short_sha",
        "CI_COMMIT_SHORT_SHA, or the first 8 characters of CI_COMMIT_SHA / GIT_COMMIT",
    ),
    ("ref_slug", "CI_COMMIT_REF_SLUG / BRANCH_NAME"),
    ("pipeline_id", "CI_PIPELINE_ID / BUILD_NUMBER"),
    ("registry", "CI_REGISTRY"),
    ("registry_image", "CI_REGISTRY_IMAGE"),
];

/// Fills `{name}` placeholders in `template`; `key` names the setting in errors.
pub fn render(template: &str, ci: &CiContext, key: &str) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(Error::Config(format!(
                "`{key}` = \"{template}\": unclosed `{{`; write placeholders as {{name}}"
            )));
        };
        let name = &after[..end];
        out.push_str(
            &value(name, ci)
                .map_err(|why| Error::Config(format!("`{key}` = \"{template}\": {why}")))?,
        );
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(Error::Config(format!(
            "`{key}` = \"{template}\": stray `}}`; write placeholders as {{name}}"
        )));
    }
    out.push_str(rest);
    Ok(out)
}

fn value(name: &str, ci: &CiContext) -> std::result::Result<String, String> {
    let need = |v: &Option<String>| {
        v.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            let from = VARIABLES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).unwrap_or("");
            format!("`{{{name}}}` is not known outside CI: set {from} (or `[ci]` in archgate.toml), or use a fixed tag")
        })
    };
    match name {
        "tag" => Ok(ci
            .commit_tag
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| short_sha(ci))
            .unwrap_or_else(|| "latest".into())),
        "git_sha" => need(&ci.commit_sha),
        "git_short_sha" => need(&short_sha(ci)),
        "ref_slug" => need(&ci.ref_slug),
        "pipeline_id" => need(&ci.pipeline_id),
        "registry" => need(&ci.registry),
        "registry_image" => need(&ci.registry_image),
        other => Err(format!(
            "unknown placeholder `{{{other}}}`; known: {}",
            VARIABLES
                .iter()
                .map(|(n, _)| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn short_sha(ci: &CiContext) -> Option<String> {
    ci.commit_short_sha
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| ci.commit_sha.as_ref().map(|s| s.chars().take(8).collect()))
        .filter(|s: &String| !s.is_empty())
}

/// A branch name as a tag-safe slug: lowercase, `[a-z0-9-]`, at most 63 characters
/// (what GitLab's `CI_COMMIT_REF_SLUG` does).
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        out.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    trimmed.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci() -> CiContext {
        CiContext {
            commit_sha: Some("0123456789abcdef".into()),
            pipeline_id: Some("42".into()),
            ..CiContext::default()
        }
    }

    #[test]
    fn renders() {
        for (t, want) in [
            ("{git_short_sha}", "01234567"),
            ("v1-{pipeline_id}", "v1-42"),
            ("{tag}", "01234567"),
            ("plain", "plain"),
            ("oci:out/app:{git_sha}", "oci:out/app:0123456789abcdef"),
        ] {
            assert_eq!(render(t, &ci(), "image").unwrap(), want, "{t}");
        }
        assert_eq!(
            render("{tag}", &CiContext::default(), "image").unwrap(),
            "latest"
        );
        let tagged = CiContext {
            commit_tag: Some("v2.0".into()),
            ..ci()
        };
        assert_eq!(render("{tag}", &tagged, "image").unwrap(), "v2.0");
    }

    #[test]
    fn errors_name_key_and_way_out() {
        for (t, why) in [
            ("{ref_slug}", "CI_COMMIT_REF_SLUG"),
            ("{nope}", "unknown placeholder"),
            ("{tag", "unclosed"),
            ("tag}", "stray"),
        ] {
            let e = render(t, &ci(), "tags").unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("`tags`"), "{t}: {e}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("feature/JDK_17 upgrade"), "feature-jdk-17-upgrade");
        assert_eq!(slugify("-main-"), "main");
        assert_eq!(slugify(&"a".repeat(80)).len(), 63);
    }
}
