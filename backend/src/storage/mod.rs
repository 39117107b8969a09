//! Files on disk as images and containers hold them: a layer's tar and the
//! changes an upper dir holds over its lowers (`layer`), and writing and
//! resolving files inside a root without leaving it (`copy`), and the mounts
//! left under a dir. Used by builds, commits, `docker cp`, save/load, the
//! file observer and the sweeps at start alike.

use std::path::{Path, PathBuf};

pub mod copy;
pub mod layer;

/// The mount points below `dir` (not `dir` itself), deepest first, from
/// this mount namespace's mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut mounted: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(|m| PathBuf::from(m.replace("\\040", " "))))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    mounted.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounted
}

/// Detaches every mount below `dir`, deepest first; how many there were.
pub fn unmount_all_under(dir: &Path) -> usize {
    let mounts = mounts_under(dir);
    for m in &mounts {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    mounts.len()
}
