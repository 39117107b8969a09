//! Files on disk as images and containers hold them: a layer's tar and the
//! changes an upper dir holds over its lowers (`layer`), and writing and
//! resolving files inside a root without leaving it (`copy`). Used by builds,
//! commits, `docker cp`, save/load and the file observer alike.

pub mod copy;
pub mod layer;
