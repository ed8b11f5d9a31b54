//! `archgate inspect` (placeholder while the platform module lands).
use crate::error::Result;
use crate::image::Selector;
use crate::store::Store;
#[derive(Debug, serde::Serialize)]
pub struct Inspection {}
pub async fn inspect(
    _store: &dyn Store,
    _selector: &Selector,
    _location: &str,
) -> Result<Inspection> {
    Err(crate::Error::Internal("inspect is being written".into()))
}
pub fn render_text(_i: &Inspection) -> String {
    String::new()
}
