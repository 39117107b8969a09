//! The engine's stateful parts that the API drives.

pub mod archive;
pub mod commit;
pub mod containers;
pub mod create;
pub mod exec;
pub mod health;
pub mod logs;
pub mod networking;
pub mod record;
pub mod restart;
pub mod saveload;
pub mod top;
pub mod volumes;
