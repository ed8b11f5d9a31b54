//! OCI image layout store (directory or tar archive). (Being written.)

use std::path::Path;

use async_trait::async_trait;

use super::{BlobPut, BlobReader, Store};
use crate::error::{Error, Result};
use crate::image::{Descriptor, Digest, RawManifest, Selector};

/// An OCI image layout on disk.
pub struct LayoutStore {}

impl LayoutStore {
    pub fn open_dir(_path: &Path, _create: bool) -> Result<Self> {
        Err(Error::Internal("not yet".into()))
    }
    pub fn open_archive(_path: &Path, _create: bool) -> Result<Self> {
        Err(Error::Internal("not yet".into()))
    }
}

#[async_trait]
impl Store for LayoutStore {
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
