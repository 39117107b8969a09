//! Running processes in containers: the spec berthd writes, and the helper
//! (`__berth-init` / `__berth-exec`) that becomes the container.

pub mod archive;
pub mod cgroups;
pub mod confine;
pub mod init;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod spec;
