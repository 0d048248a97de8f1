//! Where layers come from: an image on disk ([`image`]), a registry
//! ([`registry`]) and `oci-fetch`'s serving of one ([`fetch`]), sharing
//! the image-spec's documents ([`spec`]) and registry references
//! ([`reference`]).

pub mod fetch;
pub mod image;
pub mod reference;
pub mod registry;
pub mod spec;
