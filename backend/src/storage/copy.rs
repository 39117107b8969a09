//! Writing into an image's root filesystem for COPY, ADD and WORKDIR, with
//! every path resolved inside that root (libpathrs): a symlink already in
//! the image (`/app -> /etc`) is followed as the container would see it,
//! never onto the host. Sources are read through handles resolved inside
//! their own root (the build context, or another stage's filesystem).

use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pathrs::flags::OpenFlags;
use pathrs::{InodeType, Root};

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The path through which a resolved handle is read.
pub fn fd_path(h: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", h.as_fd().as_raw_fd()))
}

/// Resolves `path` inside `root` (symlinks stay in it); None if missing.
pub fn resolve_in(root: &Root, path: &Path) -> Option<pathrs::Handle> {
    root.resolve(path).ok()
}

/// Ownership and mode rules for what a COPY writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attrs {
    /// `--chown`, else root (COPY does not keep the context's owners).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`, else the source's mode.
    pub mode: Option<u32>,
    /// Keep the source's owners (ADD of an archive does).
    pub keep_owner: bool,
}

/// Writes into one root filesystem.
#[derive(Debug)]
pub struct Writer {
    root: Root,
    attrs: Attrs,
}

impl Writer {
    pub fn new(root_dir: &Path, attrs: Attrs) -> io::Result<Self> {
        Ok(Writer { root: Root::open(root_dir).map_err(io_err)?, attrs })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    fn owner_for(&self, m: Option<&Metadata>) -> (u32, u32) {
        match (self.attrs.owner, m) {
            (Some(o), _) => o,
            (None, Some(m)) if self.attrs.keep_owner => (m.uid(), m.gid()),
            _ => (0, 0),
        }
    }

    fn set_attrs(&self, f: &File, m: Option<&Metadata>, default_mode: u32) -> io::Result<()> {
        let (uid, gid) = self.owner_for(m);
        std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
        let mode = self.attrs.mode.or(m.map(|m| m.mode() & 0o7777)).unwrap_or(default_mode);
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(t) = m.and_then(|m| m.modified().ok()) {
            let _ = f.set_modified(t);
        }
        Ok(())
    }

    /// Does `rel` exist as a directory (following symlinks inside the root)?
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.root.resolve(rel).ok().and_then(|h| fs::metadata(fd_path(&h)).ok()).is_some_and(|m| m.is_dir())
    }

    /// Makes `rel` and its missing parents; new ones get the owner rules
    /// (0755), existing ones are left as they are. `like` gives a copied
    /// directory's own mode and times.
    pub fn dir(&self, rel: &Path, like: Option<&Metadata>) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut p = rel.to_path_buf();
        while !p.as_os_str().is_empty() && p != Path::new("/") && self.root.resolve(&p).is_err() {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        let h = self.root.mkdir_all(rel, &fs::Permissions::from_mode(0o755)).map_err(io_err)?;
        for m in missing.iter().rev() {
            if let Ok(h) = self.root.resolve(m) {
                let f = h.reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY).map_err(io_err)?;
                let is_target = m == rel;
                self.set_attrs(&f, if is_target { like } else { None }, 0o755)?;
            }
        }
        if like.is_some() && missing.first().map(|m| m != rel).unwrap_or(true) {
            // It existed: a copied directory's mode still applies (as Docker's copy does).
            let f = h.reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY).map_err(io_err)?;
            self.set_attrs(&f, like, 0o755)?;
        }
        Ok(())
    }

    /// Removes a non-directory at `rel` (a directory stays: unlink refuses it).
    fn clear(&self, rel: &Path) {
        let _ = self.root.remove_file(rel);
    }

    /// Writes a file at `rel` with `from`'s content (replacing what is there).
    pub fn file(&self, rel: &Path, from: &Path, m: &Metadata) -> io::Result<()> {
        if let Some(parent) = rel.parent() {
            self.dir(parent, None)?;
        }
        self.clear(rel);
        let mut out =
            self.root.create_file(rel, OpenFlags::O_WRONLY | OpenFlags::O_TRUNC, &fs::Permissions::from_mode(0o644)).map_err(io_err)?;
        let mut src = File::open(from)?;
        io::copy(&mut src, &mut out)?;
        self.set_attrs(&out, Some(m), 0o644)
    }

    /// Writes a file with the given bytes (COPY of a heredoc).
    pub fn bytes(&self, rel: &Path, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        if let Some(parent) = rel.parent() {
            self.dir(parent, None)?;
        }
        self.clear(rel);
        let mut out =
            self.root.create_file(rel, OpenFlags::O_WRONLY | OpenFlags::O_TRUNC, &fs::Permissions::from_mode(0o644)).map_err(io_err)?;
        out.write_all(data)?;
        self.set_attrs(&out, None, 0o644)
    }

    pub fn symlink(&self, rel: &Path, target: &Path) -> io::Result<()> {
        if let Some(parent) = rel.parent() {
            self.dir(parent, None)?;
        }
        self.clear(rel);
        self.root.create(rel, &InodeType::Symlink(target.to_path_buf())).map_err(io_err)
    }

    /// Copies `from` (a source resolved to a file or directory — a handle's
    /// /proc/self/fd path is followed) to `rel`; a directory's contents go
    /// into `rel`. Returns entries copied.
    pub fn copy(&self, from: &Path, rel: &Path) -> io::Result<u64> {
        self.copy_entry(from, rel, fs::metadata(from)?)
    }

    /// Below the top, symlinks are copied as links, never followed.
    fn copy_entry(&self, from: &Path, rel: &Path, m: Metadata) -> io::Result<u64> {
        let t = m.file_type();
        if t.is_dir() {
            self.dir(rel, Some(&m))?;
            let mut n = 0;
            let mut entries: Vec<_> = fs::read_dir(from)?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                n += self.copy_entry(&path, &rel.join(e.file_name()), fs::symlink_metadata(&path)?)?;
            }
            Ok(n)
        } else if t.is_file() {
            self.file(rel, from, &m).map(|_| 1)
        } else if t.is_symlink() {
            self.symlink(rel, &fs::read_link(from)?).map(|_| 1)
        } else {
            Ok(0) // devices, fifos, sockets: not copied
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_follow_the_images_symlinks_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let host = dir.path().join("host");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&host).unwrap();
        // The same absolute path exists inside the root and on the host.
        fs::create_dir_all(root.join(host.strip_prefix("/").unwrap())).unwrap();
        std::os::unix::fs::symlink(&host, root.join("app")).unwrap();
        let src = dir.path().join("src.txt");
        fs::write(&src, "hello").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
        let w = Writer::new(&root, Attrs::default()).unwrap();
        w.copy(&src, Path::new("/app/conf/a.txt")).unwrap();
        // The absolute link is taken as the container sees it: under the root.
        assert_eq!(fs::read_to_string(root.join(host.strip_prefix("/").unwrap()).join("conf/a.txt")).unwrap(), "hello");
        assert!(!host.join("conf").exists(), "nothing written on the host");
        let m = fs::metadata(root.join(host.strip_prefix("/").unwrap()).join("conf/a.txt")).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid()), (0o600, 0));
    }

    #[test]
    fn directories_copy_their_contents_with_chown_and_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(&root).unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("sub")).unwrap();
        fs::write(ctx.join("sub/x.py"), "print(1)").unwrap();
        std::os::unix::fs::symlink("x.py", ctx.join("sub/link.py")).unwrap();
        let w = Writer::new(&root, Attrs { owner: Some((1000, 1000)), mode: Some(0o640), keep_owner: false }).unwrap();
        assert_eq!(w.copy(&ctx, Path::new("/srv/app")).unwrap(), 2);
        let m = fs::metadata(root.join("srv/app/sub/x.py")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1000, 0o640));
        assert_eq!(fs::read_link(root.join("srv/app/sub/link.py")).unwrap(), Path::new("x.py"));
        // New parents take the owner too.
        assert_eq!(fs::metadata(root.join("srv")).unwrap().uid(), 1000);
        w.bytes(Path::new("/srv/app/sub/x.py"), b"replaced").unwrap();
        assert_eq!(fs::read_to_string(root.join("srv/app/sub/x.py")).unwrap(), "replaced");
        assert!(w.is_dir(Path::new("/srv/app")) && !w.is_dir(Path::new("/srv/app/sub/x.py")));
    }
}
