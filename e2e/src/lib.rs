//! Test support for everything that touches the kernel.
//!
//! - [`sandbox::Sandbox`]: a throwaway "node1" — its own network namespace
//!   (with an uplink veth to the root namespace), mount namespace, cgroup and
//!   state dir — that removes everything it made when dropped, even on panic.
//! - [`leak::Snapshot`]: the root namespace's links, addresses, routes, mounts,
//!   netfilter rules, namespaces and processes, for the suite-level leak check.
//! - [`browser::Browser`]: headless Chromium through chromedriver, for the page.

pub mod browser;
pub mod hub;
pub mod leak;
pub mod sandbox;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The berthd binary under test: `$BERTHD`, else the workspace's debug build.
pub fn berthd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTHD") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    target.join("debug").join("berthd")
}

/// The project's state dir (fixture registry storage and config).
pub fn state_dir() -> PathBuf {
    std::env::var_os("BERTH_STATE").map(PathBuf::from).unwrap_or_else(|| "/var/lib/berth-lab".into())
}
