//! A build's scratch space: dirs under the image store's tmp, overlays
//! mounted in them, all unmounted and removed when the scratch is dropped
//! (a step that fails, or a build the client leaves, leaves nothing).

use std::path::{Path, PathBuf};

use super::{fail, BuildError};
use crate::image::store::ImageStore;

/// Mounts an overlay of `lowers` (top first) with `upper`/`work` at `merged`.
pub(super) fn mount_overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, merged: &Path) -> Result<(), String> {
    let lower = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let opts = match upper {
        Some((u, w)) => format!("lowerdir={lower},upperdir={},workdir={}", u.display(), w.display()),
        None => format!("lowerdir={lower}"),
    };
    let flags = if upper.is_none() { nix::mount::MsFlags::MS_RDONLY } else { nix::mount::MsFlags::empty() };
    nix::mount::mount(Some("overlay"), merged, Some("overlay"), flags, Some(opts.as_str()))
        .map_err(|e| format!("mounting an overlay at {}: {e}", merged.display()))
}

pub(super) fn unmount(p: &Path) {
    if nix::mount::umount2(p, nix::mount::MntFlags::empty()).is_err() {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A scratch dir under the store's tmp, removed (after unmounting what is
/// mounted in it) when dropped.
pub(super) struct Scratch {
    pub(super) dir: PathBuf,
    pub(super) mounted: Vec<PathBuf>,
}

impl Scratch {
    pub(super) fn new(images: &ImageStore, what: &str) -> Result<Self, BuildError> {
        let dir = images.tmp_dir().join(format!("{what}-{:016x}", crate::ids::random_u128() as u64));
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
        Ok(Scratch { dir, mounted: Vec::new() })
    }
    pub(super) fn sub(&self, name: &str) -> Result<PathBuf, BuildError> {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).map_err(|e| fail(format!("creating {}: {e}", p.display())))?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in self.mounted.drain(..).rev() {
            unmount(&m);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
