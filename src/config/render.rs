//! `archgate config`: the effective configuration, each value with its origin.
//! Secrets print as `***` (the `Secret` type guarantees it). Pure.

use serde_json::Value;

use super::Loaded;

/// One `key = value  # origin` line per leaf value, in TOML syntax.
pub fn render_text(loaded: &Loaded) -> String {
    let mut out = String::new();
    out.push_str("# effective configuration; later layers win:\n");
    out.push_str(
        "# defaults < archgate.toml < ARCHGATE_* environment < CI variables < command line\n",
    );
    match &loaded.file {
        Some(f) => out.push_str(&format!("# file: {}\n", f.display())),
        None => out.push_str("# file: none (no --config, ARCHGATE_CONFIG or ./archgate.toml)\n"),
    }
    let value = serde_json::to_value(&loaded.settings).unwrap_or(Value::Null);
    let mut lines = Vec::new();
    leaves(&value, &mut Vec::new(), &mut lines);
    let width = lines
        .iter()
        .map(|(k, v)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (path, rendered) in &lines {
        let key = super::load::dotted(path);
        let origin = loaded
            .origins
            .get(path)
            .map(String::as_str)
            .unwrap_or("default");
        let assignment = format!("{key} = {rendered}");
        out.push_str(&format!("{assignment:<width$}  # {origin}\n"));
    }
    out
}

/// The effective configuration as JSON: `{"settings": …, "origins": {"a.b": "…"}, "file": …}`.
pub fn render_json(loaded: &Loaded) -> Value {
    let origins: serde_json::Map<String, Value> = loaded
        .origins
        .iter()
        .map(|(k, v)| (super::load::dotted(k), Value::from(v.clone())))
        .collect();
    serde_json::json!({
        "file": loaded.file.as_ref().map(|f| f.display().to_string()),
        "settings": loaded.settings,
        "origins": origins,
    })
}

fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(k.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        Value::Object(_) => {}
        Value::Null => {}
        other => out.push((path.clone(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sources, load};

    #[test]
    fn shows_origins_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("archgate.toml"),
            "[registries.\"10.0.0.5:5000\"]\nhttp = true\nusername = \"ci\"\npassword = \"pa55word\"\n",
        )
        .unwrap();
        let sources = Sources {
            cwd: dir.path().to_path_buf(),
            env: [("CI_JOB_TOKEN".to_string(), "tok3n".to_string())].into(),
            ..Sources::default()
        };
        let loaded = load(&sources).unwrap();
        let text = render_text(&loaded);
        assert!(
            !text.contains("pa55word") && !text.contains("tok3n"),
            "{text}"
        );
        assert!(
            text.contains("registries.\"10.0.0.5:5000\".password = \"***\""),
            "{text}"
        );
        assert!(text.contains("ci.job_token = \"***\""), "{text}");
        assert!(text.contains("# CI variable CI_JOB_TOKEN"), "{text}");
        assert!(text.contains("network.retries = 4"), "{text}");
        let json = render_json(&loaded).to_string();
        assert!(
            !json.contains("pa55word") && !json.contains("tok3n"),
            "{json}"
        );
    }
}
