//! Unpacking a layer tar into an overlay2-style `diff` dir.
//!
//! Describe, then do: [`plan`] turns one tar entry into an [`Action`] (pure,
//! tested without root) — rejecting paths that escape the layer and turning
//! OCI whiteouts into overlayfs ones; [`Unpacker`] performs the actions.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {path:?} escapes the layer: {why}")]
    Escape { path: String, why: &'static str },
    #[error("layer entry {path:?}: {source}")]
    Io { path: String, source: io::Error },
    #[error("reading the layer archive: {0}")]
    Archive(io::Error),
    #[error("layer diff_id mismatch: expected {expected}, got {actual}")]
    DiffId { expected: String, actual: String },
}

/// The kind of a tar entry, as far as unpacking cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// What to do for one entry, with its path relative to the layer root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the entry at the path.
    Create { path: PathBuf, kind: EntryKind },
    /// `.wh.NAME`: NAME is deleted in this layer (an overlay whiteout: a 0/0
    /// character device).
    Whiteout { path: PathBuf },
    /// `.wh..wh..opq`: the directory hides everything below it in lower layers
    /// (xattr `trusted.overlay.opaque=y`).
    Opaque { dir: PathBuf },
    /// The archive's root itself (`./`): nothing to do.
    Skip,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Cleans a path from a layer tar into a relative path with no `..`, or says
/// why it is refused. Absolute paths and `..` are refused, not rewritten.
pub fn clean_path(raw: &str) -> Result<PathBuf, UnpackError> {
    let escape = |why| UnpackError::Escape { path: raw.to_string(), why };
    if raw.starts_with('/') {
        return Err(escape("absolute path"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(escape("'..' in path")),
            Component::RootDir | Component::Prefix(_) => return Err(escape("absolute path")),
        }
    }
    Ok(out)
}

/// Plans one entry.
pub fn plan(raw_path: &str, kind: EntryKind) -> Result<Action, UnpackError> {
    let path = clean_path(raw_path)?;
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Action::Skip);
    };
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE {
        return Ok(Action::Opaque { dir: parent });
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(UnpackError::Escape { path: raw_path.into(), why: "malformed whiteout" });
        }
        return Ok(Action::Whiteout { path: parent.join(hidden) });
    }
    if let EntryKind::Hardlink(target) = &kind {
        // A hard link's target is a path in the same layer: same rules.
        let t = clean_path(target)?;
        return Ok(Action::Create { path, kind: EntryKind::Hardlink(t.to_string_lossy().into()) });
    }
    Ok(Action::Create { path, kind })
}

/// Unpacks into one layer dir, refusing to follow symlinks on the way.
#[derive(Debug)]
pub struct Unpacker {
    root: PathBuf,
    /// Keep uid/gid from the archive (needs root).
    pub chown: bool,
}

impl Unpacker {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Unpacker { root: root.into(), chown: nix::unistd::geteuid().is_root() }
    }

    /// Creates the parents of `rel` as real directories. A parent that is a
    /// symlink (or a file) is refused: following it could write outside.
    fn parent_dirs(&self, rel: &Path) -> Result<PathBuf, UnpackError> {
        let mut cur = self.root.clone();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                cur.push(c);
                match fs::symlink_metadata(&cur) {
                    Ok(m) if m.file_type().is_dir() => {}
                    Ok(_) => {
                        return Err(UnpackError::Escape {
                            path: rel.display().to_string(),
                            why: "a parent is a symlink or not a directory",
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&cur).map_err(|e| io_err(rel, e))?;
                    }
                    Err(e) => return Err(io_err(rel, e)),
                }
            }
        }
        Ok(self.root.join(rel))
    }

    /// Removes whatever is at `dest` (not following symlinks), as a later
    /// entry for the same path replaces an earlier one.
    fn clear(dest: &Path, keep_dir: bool) -> io::Result<()> {
        match fs::symlink_metadata(dest) {
            Ok(m) if m.file_type().is_dir() => {
                if keep_dir {
                    Ok(())
                } else {
                    fs::remove_dir_all(dest)
                }
            }
            Ok(_) => fs::remove_file(dest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Unpacks a whole (uncompressed) tar stream; returns the sha256 diff_id
    /// of the stream and the bytes of content written.
    pub fn unpack<R: Read>(&self, reader: R) -> Result<(String, u64), UnpackError> {
        let mut hashing = HashingReader { inner: reader, hasher: Sha256::new() };
        let mut size = 0u64;
        let mut dir_modes = Vec::new();
        {
            let mut archive = tar::Archive::new(&mut hashing);
            for entry in archive.entries().map_err(UnpackError::Archive)? {
                let mut entry = entry.map_err(UnpackError::Archive)?;
                let header = entry.header().clone();
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let kind = match header.entry_type() {
                    tar::EntryType::Directory => EntryKind::Dir,
                    tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                    tar::EntryType::Symlink => EntryKind::Symlink(link_name(&entry)?),
                    tar::EntryType::Link => EntryKind::Hardlink(link_name(&entry)?),
                    tar::EntryType::Char => EntryKind::Char(
                        header.device_major().ok().flatten().unwrap_or(0),
                        header.device_minor().ok().flatten().unwrap_or(0),
                    ),
                    tar::EntryType::Block => EntryKind::Block(
                        header.device_major().ok().flatten().unwrap_or(0),
                        header.device_minor().ok().flatten().unwrap_or(0),
                    ),
                    tar::EntryType::Fifo => EntryKind::Fifo,
                    // pax/GNU extension headers are consumed by the tar crate;
                    // anything else carries no file.
                    _ => continue,
                };
                let mode = header.mode().unwrap_or(0o644) & 0o7777;
                let uid = header.uid().unwrap_or(0) as u32;
                let gid = header.gid().unwrap_or(0) as u32;
                match plan(&raw, kind)? {
                    Action::Skip => {}
                    Action::Opaque { dir } => {
                        let dest = self.parent_dirs(&dir.join("x"))?;
                        let d = dest.parent().unwrap_or(&self.root).to_path_buf();
                        xattr::set(&d, "trusted.overlay.opaque", b"y").map_err(|e| io_err(&dir, e))?;
                    }
                    Action::Whiteout { path } => {
                        let dest = self.parent_dirs(&path)?;
                        Self::clear(&dest, false).map_err(|e| io_err(&path, e))?;
                        mknod(&dest, nix::sys::stat::SFlag::S_IFCHR, 0o000, 0, 0)
                            .map_err(|e| io_err(&path, e))?;
                    }
                    Action::Create { path, kind } => {
                        let dest = self.parent_dirs(&path)?;
                        let is_dir = kind == EntryKind::Dir;
                        Self::clear(&dest, is_dir).map_err(|e| io_err(&path, e))?;
                        match &kind {
                            EntryKind::Dir => {
                                if !dest.is_dir() {
                                    fs::create_dir(&dest).map_err(|e| io_err(&path, e))?;
                                }
                                // Applied last: a read-only dir must still take its children.
                                dir_modes.push((dest.clone(), mode));
                            }
                            EntryKind::File => {
                                let mut f = fs::File::create(&dest).map_err(|e| io_err(&path, e))?;
                                size += io::copy(&mut entry, &mut f).map_err(|e| io_err(&path, e))?;
                            }
                            EntryKind::Symlink(target) => {
                                // A symlink may point anywhere: it is resolved
                                // inside the container's root, never while unpacking.
                                symlink(target, &dest).map_err(|e| io_err(&path, e))?;
                            }
                            EntryKind::Hardlink(target) => {
                                let src = self.root.join(target);
                                let m = fs::symlink_metadata(&src).map_err(|e| io_err(&path, e))?;
                                if m.is_dir() {
                                    return Err(UnpackError::Escape {
                                        path: raw,
                                        why: "hard link to a directory",
                                    });
                                }
                                // The target's parents were checked when it was made.
                                fs::hard_link(&src, &dest).map_err(|e| io_err(&path, e))?;
                            }
                            EntryKind::Char(ma, mi) => {
                                mknod(&dest, nix::sys::stat::SFlag::S_IFCHR, mode, *ma, *mi)
                                    .map_err(|e| io_err(&path, e))?
                            }
                            EntryKind::Block(ma, mi) => {
                                mknod(&dest, nix::sys::stat::SFlag::S_IFBLK, mode, *ma, *mi)
                                    .map_err(|e| io_err(&path, e))?
                            }
                            EntryKind::Fifo => {
                                mknod(&dest, nix::sys::stat::SFlag::S_IFIFO, mode, 0, 0)
                                    .map_err(|e| io_err(&path, e))?
                            }
                        }
                        if self.chown {
                            std::os::unix::fs::lchown(&dest, Some(uid), Some(gid))
                                .map_err(|e| io_err(&path, e))?;
                        }
                        let is_link = matches!(kind, EntryKind::Symlink(_) | EntryKind::Hardlink(_));
                        if !is_dir && !is_link {
                            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                                .map_err(|e| io_err(&path, e))?;
                        }
                        if !is_link {
                            let mtime = header.mtime().unwrap_or(0) as i64;
                            let t = nix::sys::time::TimeSpec::new(mtime, 0);
                            let _ = nix::sys::stat::utimensat(
                                nix::fcntl::AT_FDCWD,
                                &dest,
                                &t,
                                &t,
                                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                            );
                        }
                    }
                }
            }
        }
        // Drain what follows the archive's end so the digest covers the stream.
        io::copy(&mut hashing, &mut io::sink()).map_err(UnpackError::Archive)?;
        for (dir, mode) in dir_modes.into_iter().rev() {
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
        }
        Ok((format!("sha256:{}", hex::encode(hashing.hasher.finalize())), size))
    }
}

fn link_name<R: Read>(entry: &tar::Entry<R>) -> Result<String, UnpackError> {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| UnpackError::Archive(io::Error::other("link without a target")))
}

fn io_err(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io { path: path.display().to_string(), source }
}

fn mknod(path: &Path, kind: nix::sys::stat::SFlag, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    nix::sys::stat::mknod(
        path,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(mode),
        nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
    )
    .map_err(io::Error::from)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_parent_paths_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/b/../../../x"] {
            assert!(matches!(plan(bad, EntryKind::File), Err(UnpackError::Escape { .. })), "{bad}");
        }
        // `..` is refused even where it would stay inside: layers never need it.
        assert!(plan("a/../b", EntryKind::File).is_err());
    }

    #[test]
    fn hard_links_may_not_point_outside_the_layer() {
        assert!(plan("x", EntryKind::Hardlink("../../etc/shadow".into())).is_err());
        assert!(plan("x", EntryKind::Hardlink("/etc/shadow".into())).is_err());
        assert_eq!(
            plan("./x", EntryKind::Hardlink("./bin/busybox".into())).unwrap(),
            Action::Create { path: "x".into(), kind: EntryKind::Hardlink("bin/busybox".into()) }
        );
    }

    #[test]
    fn whiteouts_become_deletions_and_opaque_markers_mark_their_dir() {
        assert_eq!(
            plan("etc/.wh.motd", EntryKind::File).unwrap(),
            Action::Whiteout { path: "etc/motd".into() }
        );
        assert_eq!(
            plan("usr/share/.wh..wh..opq", EntryKind::File).unwrap(),
            Action::Opaque { dir: "usr/share".into() }
        );
        assert!(plan("etc/.wh..", EntryKind::File).is_err());
        assert_eq!(plan("./", EntryKind::Dir).unwrap(), Action::Skip);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
            h.set_size(if *kind == tar::EntryType::Regular { data.len() as u64 } else { 0 });
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_link_name(data).unwrap();
                    // Write the raw name so that unsafe names reach the unpacker.
                    let name = h.as_old_mut().name.as_mut();
                    name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
                _ => {
                    let name = h.as_old_mut().name.as_mut();
                    name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    let body = if *kind == tar::EntryType::Regular { data.as_bytes() } else { &[][..] };
                    b.append(&h, body).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_symlinked_parent_cannot_redirect_a_write_outside_the_layer() {
        let outside = tempfile::tempdir().unwrap();
        let layer = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("evil", tar::EntryType::Symlink, outside.path().to_str().unwrap()),
            ("evil/owned", tar::EntryType::Regular, "gotcha"),
        ]);
        let err = Unpacker::new(layer.path()).unpack(&tar[..]).unwrap_err();
        assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
        assert!(!outside.path().join("owned").exists());
    }

    #[test]
    fn files_dirs_and_links_unpack_and_the_diff_id_is_the_tar_digest() {
        let layer = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("etc/", tar::EntryType::Directory, ""),
            ("etc/hostname", tar::EntryType::Regular, "node1\n"),
            ("bin/sh", tar::EntryType::Symlink, "/bin/busybox"),
            ("etc/hn", tar::EntryType::Link, "etc/hostname"),
        ]);
        let (diff_id, size) = Unpacker::new(layer.path()).unpack(&tar[..]).unwrap();
        assert_eq!(diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
        assert_eq!(size, 6);
        assert_eq!(fs::read_to_string(layer.path().join("etc/hn")).unwrap(), "node1\n");
        assert_eq!(fs::read_link(layer.path().join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    }
}
