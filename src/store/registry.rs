//! Registry store through oci-client. (Being written.)

use async_trait::async_trait;

use super::{BlobPut, BlobReader, Store};
use crate::error::{Error, Result};
use crate::image::{Descriptor, Digest, RawManifest, Selector};

/// A repository in a remote registry.
pub struct RegistryStore {}

impl RegistryStore {
    pub async fn connect(
        _r: &crate::image::ImageRef,
        _s: &crate::config::Settings,
        _w: bool,
    ) -> Result<Self> {
        Err(Error::Internal("not yet".into()))
    }
}

#[async_trait]
impl Store for RegistryStore {
    fn name(&self) -> String {
        todo!()
    }
    async fn resolve(&self, _selector: &Selector) -> Result<Descriptor> {
        todo!()
    }
    async fn get_manifest(&self, _selector: &Selector) -> Result<RawManifest> {
        todo!()
    }
    async fn put_manifest(&self, _manifest: &RawManifest, _tag: Option<&str>) -> Result<()> {
        todo!()
    }
    async fn blob_exists(&self, _digest: &Digest) -> Result<bool> {
        todo!()
    }
    async fn get_blob(&self, _digest: &Digest, _size: Option<u64>) -> Result<BlobReader> {
        todo!()
    }
    async fn put_blob(&self, _digest: &Digest, _size: u64, _data: BlobReader) -> Result<BlobPut> {
        todo!()
    }
    async fn tags(&self) -> Result<Vec<String>> {
        todo!()
    }
}
