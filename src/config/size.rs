//! Sizes in settings and flags (`cache_max_size`, `cache prune --max-size`):
//! `5GiB`, `500MB`, `4g`, `1024`. Pure, so `config::load` can refuse a bad
//! value before any work starts.

/// A size like `5GiB`, `500MB`, `4g`, `1024` (bytes). Decimal units are
/// powers of 1000, `…iB` of 1024.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. `5GiB`, `500MB` or `0`"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "t" | "tb" => 1000u64.pow(4),
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    Ok((value * factor as f64) as u64)
}
