//! Images: references, the content-addressed store, registry pulls, unpacking.

pub mod pull;
pub mod reference;
pub mod store;
pub mod tarsplit;
pub mod unpack;
