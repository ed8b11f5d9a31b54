//! The image vocabulary shared by every command: digests, media types,
//! references, locations and read-only views of manifests. Pure: no I/O.

pub mod digest;
pub mod location;
pub mod manifest;
pub mod media;
pub mod reference;

pub use digest::Digest;
pub use location::Location;
pub use manifest::{Descriptor, ImageConfig, ImageManifest, Index, PlatformSpec, RawManifest};
pub use reference::{ImageRef, Selector};
