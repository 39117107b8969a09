//! Unpacking a layer tar into an overlay2-style `diff` dir.
//!
//! Describe, then do: [`plan`] turns one tar entry into an [`Action`] (pure,
//! tested without root) — rejecting paths that escape the layer and turning
//! OCI whiteouts into overlayfs ones; [`Unpacker`] performs the actions.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, UnlinkatFlags};

use sha2::{Digest, Sha256};

use super::tarsplit::{Recorder, RecordingReader, Segment};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {path:?} escapes the layer: {why}")]
    Escape { path: String, why: &'static str },
    #[error("layer entry {path:?}: {source}")]
    Io { path: String, source: io::Error },
    #[error("reading the layer archive: {0}")]
    Archive(io::Error),
    #[error("layer entry {path:?}: hard link to {target:?} refused: {why}")]
    HardLink { path: String, target: String, why: &'static str },
    #[error("a PAX record or GNU long name after layer entry {after:?} is over 1 MiB")]
    Oversized { after: String },
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

/// Docker's limit (Go's archive/tar `maxSpecialFileSize`) on a PAX record
/// or a GNU long name/link member: larger ones are refused, not buffered
/// (berth caps them together, per member).
pub const MAX_SPECIAL_RECORD: u64 = 1 << 20;

/// Unpacks into one layer dir, refusing to follow symlinks on the way.
///
/// Every path is resolved from a descriptor of the layer root, one
/// component at a time with `O_NOFOLLOW`, and every change is made with an
/// `*at` call relative to the parent's descriptor, never following the last
/// component: a symlink in the layer (or a path through one) cannot send a
/// write, a hard link, a chown, a chmod or a utime outside the layer dir.
#[derive(Debug)]
pub struct Unpacker {
    root: PathBuf,
    /// Keep uid/gid from the archive (needs root).
    pub chown: bool,
}

/// Why resolving a parent failed.
enum Walk {
    /// A component is a symlink or not a directory.
    NotDir,
    /// A component does not exist (and was not to be made).
    Missing,
    Io(io::Error),
}

const DIR_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

impl Unpacker {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Unpacker { root: root.into(), chown: nix::unistd::geteuid().is_root() }
    }

    /// Opens `rel` (a cleaned relative dir path) under `root` without
    /// following any symlink, making missing dirs when `create`.
    fn walk(root: &OwnedFd, rel: &Path, create: bool) -> Result<OwnedFd, Walk> {
        let mut cur = openat(root, ".", DIR_FLAGS, Mode::empty()).map_err(|e| Walk::Io(e.into()))?;
        for c in rel.components() {
            let Component::Normal(name) = c else { return Err(Walk::NotDir) };
            let next = match openat(&cur, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&cur, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Walk::Io(e.into())),
                    }
                    openat(&cur, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
                        Errno::ENOTDIR | Errno::ELOOP => Walk::NotDir,
                        e => Walk::Io(e.into()),
                    })?
                }
                Err(Errno::ENOENT) => return Err(Walk::Missing),
                Err(Errno::ENOTDIR | Errno::ELOOP) => return Err(Walk::NotDir),
                Err(e) => return Err(Walk::Io(e.into())),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// The parent dir of `rel` (made if missing) and `rel`'s last name. A
    /// parent that is a symlink (or a file) is refused: following it could
    /// write outside.
    fn parent_of<'p>(root: &OwnedFd, rel: &'p Path, raw: &str) -> Result<(OwnedFd, &'p OsStr), UnpackError> {
        let name = rel.file_name().ok_or_else(|| UnpackError::Escape { path: raw.into(), why: "no name" })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let fd = Self::walk(root, parent, true).map_err(|e| match e {
            Walk::NotDir | Walk::Missing => UnpackError::Escape { path: raw.into(), why: "a parent is a symlink or not a directory" },
            Walk::Io(e) => io_err(rel, e),
        })?;
        Ok((fd, name))
    }

    /// Removes whatever is at `name` in `dir` (not following symlinks), as a
    /// later entry for the same path replaces an earlier one. Returns whether
    /// a directory was kept.
    fn clear(dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                if keep_dir {
                    return Ok(true);
                }
                // Through the parent's descriptor: std's remove_dir_all does
                // not follow symlinks below it.
                let p = Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
                fs::remove_dir_all(p)?;
                Ok(false)
            }
            Ok(_) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map(|_| false).map_err(io::Error::from),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Unpacks a whole (uncompressed) tar stream; returns the sha256 diff_id
    /// of the stream and the bytes of content written.
    pub fn unpack<R: Read>(&self, reader: R) -> Result<(String, u64), UnpackError> {
        self.unpack_with(reader, None)
    }

    /// [`Self::unpack`], and the stream's tar-split record (what `docker
    /// save` needs to write the same bytes again).
    pub fn unpack_recorded<R: Read>(&self, reader: R) -> Result<(String, u64, Vec<Segment>), UnpackError> {
        let rec = Rc::new(std::cell::RefCell::new(Recorder::default()));
        let (digest, size) = self.unpack_with(reader, Some(rec.clone()))?;
        let segments = Rc::try_unwrap(rec).map(|r| r.into_inner().finish()).unwrap_or_default();
        Ok((digest, size, segments))
    }

    fn unpack_with<R: Read>(&self, reader: R, rec: Option<Rc<std::cell::RefCell<Recorder>>>) -> Result<(String, u64), UnpackError> {
        let root = nix::fcntl::open(&self.root, DIR_FLAGS, Mode::empty()).map_err(|e| io_err(&self.root, e.into()))?;
        let budget = Rc::new(Budget { pos: Cell::new(0), limit: Cell::new(u64::MAX) });
        let mut hashing = HashingReader { inner: RecordingReader { inner: reader, rec: rec.clone() }, hasher: Sha256::new() };
        let mut limited = BudgetReader { inner: &mut hashing, budget: budget.clone() };
        let mut size = 0u64;
        let mut dir_modes: Vec<(PathBuf, u32, i64)> = Vec::new();
        let mut last = String::new();
        {
            let mut archive = tar::Archive::new(&mut limited);
            let mut entries = archive.entries().map_err(UnpackError::Archive)?;
            loop {
                // Between two members only headers are read: the padding, the
                // next member's PAX record and GNU long names (together at
                // most 1 MiB, as Docker's limit on each) and its header.
                budget.limit.set(budget.pos.get() + MAX_SPECIAL_RECORD + 8 * BLOCK);
                let Some(entry) = entries.next() else { break };
                let mut entry = entry.map_err(|e| {
                    if budget.pos.get() >= budget.limit.get() {
                        UnpackError::Oversized { after: last.clone() }
                    } else {
                        UnpackError::Archive(e)
                    }
                })?;
                budget.limit.set(u64::MAX);
                let header = entry.header().clone();
                let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                last.clone_from(&raw);
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
                    _ => {
                        io::copy(&mut entry, &mut io::sink()).map_err(UnpackError::Archive)?;
                        continue;
                    }
                };
                let mode = header.mode().unwrap_or(0o644) & 0o7777;
                let uid = header.uid().unwrap_or(0) as u32;
                let gid = header.gid().unwrap_or(0) as u32;
                let mtime = header.mtime().unwrap_or(0) as i64;
                match plan(&raw, kind)? {
                    Action::Skip => {}
                    Action::Opaque { dir } => {
                        let fd = Self::walk(&root, &dir, true).map_err(|e| match e {
                            Walk::Io(e) => io_err(&dir, e),
                            _ => UnpackError::Escape { path: raw.clone(), why: "a parent is a symlink or not a directory" },
                        })?;
                        let d = openat(&fd, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                            .map_err(|e| io_err(&dir, e.into()))?;
                        xattr::FileExt::set_xattr(&fs::File::from(d), "trusted.overlay.opaque", b"y").map_err(|e| io_err(&dir, e))?;
                    }
                    Action::Whiteout { path } => {
                        let (dir, name) = Self::parent_of(&root, &path, &raw)?;
                        Self::clear(&dir, name, false).map_err(|e| io_err(&path, e))?;
                        mknodat(&dir, name, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| io_err(&path, e.into()))?;
                    }
                    Action::Create { path, kind } => {
                        let (dir, name) = Self::parent_of(&root, &path, &raw)?;
                        let is_dir = kind == EntryKind::Dir;
                        let kept = Self::clear(&dir, name, is_dir).map_err(|e| io_err(&path, e))?;
                        let e = |e: Errno| io_err(&path, e.into());
                        let t = TimeSpec::new(mtime, 0);
                        let chown = |dir: &OwnedFd| -> Result<(), UnpackError> {
                            if self.chown {
                                fchownat(
                                    dir,
                                    name,
                                    Some(nix::unistd::Uid::from_raw(uid)),
                                    Some(nix::unistd::Gid::from_raw(gid)),
                                    AtFlags::AT_SYMLINK_NOFOLLOW,
                                )
                                .map_err(e)?;
                            }
                            Ok(())
                        };
                        match &kind {
                            EntryKind::Dir => {
                                if !kept {
                                    mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).map_err(e)?;
                                }
                                chown(&dir)?;
                                // Applied last: a read-only dir must still take its children.
                                dir_modes.push((path.clone(), mode, mtime));
                            }
                            EntryKind::File => {
                                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                                let fd = openat(&dir, name, flags, Mode::from_bits_truncate(0o600)).map_err(e)?;
                                let mut f = fs::File::from(fd);
                                if let Some(r) = &rec {
                                    r.borrow_mut().start_file();
                                }
                                let n = io::copy(&mut entry, &mut f).map_err(|err| io_err(&path, err))?;
                                if let Some(r) = &rec {
                                    r.borrow_mut().end_file(&path.to_string_lossy(), n);
                                }
                                size += n;
                                if self.chown {
                                    nix::unistd::fchown(&f, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
                                        .map_err(e)?;
                                }
                                // After the chown, which clears setuid bits.
                                nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode)).map_err(e)?;
                                nix::sys::stat::futimens(&f, &t, &t).map_err(e)?;
                            }
                            EntryKind::Symlink(target) => {
                                // A symlink may point anywhere: it is resolved
                                // inside the container's root, never while unpacking.
                                symlinkat(target.as_str(), &dir, name).map_err(e)?;
                                // Docker counts a link's own size (its target's length).
                                size += target.len() as u64;
                                chown(&dir)?;
                                let _ = utimensat(&dir, name, &t, &t, UtimensatFlags::NoFollowSymlink);
                            }
                            EntryKind::Hardlink(target) => {
                                // The target is resolved from the layer root
                                // without following any symlink: `etcl -> /etc`
                                // then `x` linked to `etcl/shadow` is refused.
                                let target_path = Path::new(target);
                                let refuse = |why: &'static str| UnpackError::HardLink { path: raw.clone(), target: target.clone(), why };
                                let tname = target_path.file_name().ok_or_else(|| refuse("the target has no name"))?;
                                let tdir =
                                    Self::walk(&root, target_path.parent().unwrap_or(Path::new("")), false).map_err(|w| match w {
                                        Walk::NotDir => refuse("the target's path goes through a symlink or a non-directory"),
                                        Walk::Missing => refuse("the target is not in the layer"),
                                        Walk::Io(err) => io_err(&path, err),
                                    })?;
                                match fstatat(&tdir, tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
                                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                                        return Err(refuse("the target is a directory"))
                                    }
                                    Ok(_) => {}
                                    Err(Errno::ENOENT) => return Err(refuse("the target is not in the layer")),
                                    Err(err) => return Err(e(err)),
                                }
                                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                                linkat(&tdir, tname, &dir, name, AtFlags::empty()).map_err(e)?;
                                chown(&dir)?;
                            }
                            EntryKind::Char(ma, mi) | EntryKind::Block(ma, mi) => {
                                let k = if matches!(kind, EntryKind::Char(..)) { SFlag::S_IFCHR } else { SFlag::S_IFBLK };
                                let dev = nix::sys::stat::makedev(u64::from(*ma), u64::from(*mi));
                                mknodat(&dir, name, k, Mode::empty(), dev).map_err(e)?;
                                chown(&dir)?;
                                Self::set_mode_nofollow(&dir, name, mode, &t).map_err(e)?;
                            }
                            EntryKind::Fifo => {
                                mknodat(&dir, name, SFlag::S_IFIFO, Mode::empty(), 0).map_err(e)?;
                                chown(&dir)?;
                                Self::set_mode_nofollow(&dir, name, mode, &t).map_err(e)?;
                            }
                        }
                    }
                }
                // Whatever the member carries beyond what was used (a symlink
                // with a body, say) is read here, under no header budget.
                io::copy(&mut entry, &mut io::sink()).map_err(UnpackError::Archive)?;
            }
        }
        budget.limit.set(u64::MAX);
        // Drain what follows the archive's end so the digest covers the stream.
        io::copy(&mut limited, &mut io::sink()).map_err(UnpackError::Archive)?;
        for (path, mode, mtime) in dir_modes.into_iter().rev() {
            // A later entry may have replaced the dir (or a parent) with a
            // symlink: resolved again, never followed.
            let Some(name) = path.file_name() else { continue };
            let Ok(dir) = Self::walk(&root, path.parent().unwrap_or(Path::new("")), false) else { continue };
            match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                _ => continue,
            }
            let t = TimeSpec::new(mtime, 0);
            let _ = Self::set_mode_nofollow(&dir, name, mode, &t);
        }
        Ok((format!("sha256:{}", hex::encode(hashing.hasher.finalize())), size))
    }

    /// chmod and utime of a node just made (not a symlink), through an
    /// `O_PATH|O_NOFOLLOW` descriptor of it.
    fn set_mode_nofollow(dir: &OwnedFd, name: &OsStr, mode: u32, t: &TimeSpec) -> Result<(), Errno> {
        let fd = openat(dir, name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
        let st = nix::sys::stat::fstat(&fd)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        // fchmod on an O_PATH descriptor is refused: chmod through its
        // /proc/self/fd link, which names this very inode.
        let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::sys::stat::fchmodat(nix::fcntl::AT_FDCWD, p.as_str(), Mode::from_bits_truncate(mode), FchmodatFlags::FollowSymlink)?;
        utimensat(nix::fcntl::AT_FDCWD, p.as_str(), t, t, UtimensatFlags::FollowSymlink)
    }
}

const BLOCK: u64 = 512;

/// How far the archive may read: the header budget between members.
#[derive(Debug)]
struct Budget {
    pos: Cell<u64>,
    limit: Cell<u64>,
}

struct BudgetReader<'a, R> {
    inner: &'a mut R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for BudgetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.limit.get().saturating_sub(self.budget.pos.get());
        if left == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "tar header records too large"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.pos.set(self.budget.pos.get() + n as u64);
        Ok(n)
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
        assert_eq!(plan("etc/.wh.motd", EntryKind::File).unwrap(), Action::Whiteout { path: "etc/motd".into() });
        assert_eq!(plan("usr/share/.wh..wh..opq", EntryKind::File).unwrap(), Action::Opaque { dir: "usr/share".into() });
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
        // The file once (its hard link is the same inode) and the symlink's
        // target length, as Docker counts a layer.
        assert_eq!(size, 6 + "/bin/busybox".len() as u64);
        assert_eq!(fs::read_to_string(layer.path().join("etc/hn")).unwrap(), "node1\n");
        assert_eq!(fs::read_link(layer.path().join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    }

    /// A raw tar member: the name bytes go in unchecked, so hostile names
    /// reach the unpacker as an attacker would write them.
    fn raw_member(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, link: &str, body: &[u8], mode: u32, uid: u64) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(body.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, body).unwrap();
    }

    #[test]
    fn a_hard_link_through_a_symlinked_dir_is_refused_and_the_host_file_untouched() {
        use std::os::unix::fs::MetadataExt;
        // `outside` plays the host's /etc.
        let outside = tempfile::tempdir().unwrap();
        let shadow = outside.path().join("shadow");
        fs::write(&shadow, "root:secret").unwrap();
        let before = fs::metadata(&shadow).unwrap();
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "etcl", tar::EntryType::Symlink, outside.path().to_str().unwrap(), b"", 0o777, 0);
        raw_member(&mut b, "stolen", tar::EntryType::Link, "etcl/shadow", b"", 0o644, 4242);
        let tar = b.into_inner().unwrap();
        let err = Unpacker::new(layer.path()).unpack(&tar[..]).unwrap_err();
        assert!(matches!(&err, UnpackError::HardLink { path, .. } if path == "stolen"), "{err}");
        assert!(err.to_string().contains("stolen") && err.to_string().contains("etcl/shadow"), "{err}");
        let after = fs::metadata(&shadow).unwrap();
        assert_eq!((after.nlink(), after.uid(), after.mode()), (before.nlink(), before.uid(), before.mode()));
        assert!(fs::symlink_metadata(layer.path().join("stolen")).is_err());
    }

    #[test]
    fn a_hard_link_to_a_missing_target_or_a_dir_is_refused() {
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "x", tar::EntryType::Link, "nothere", b"", 0o644, 0);
        let err = Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap_err();
        assert!(matches!(err, UnpackError::HardLink { .. }), "{err}");
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "d/", tar::EntryType::Directory, "", b"", 0o755, 0);
        raw_member(&mut b, "x", tar::EntryType::Link, "d", b"", 0o644, 0);
        let err = Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap_err();
        assert!(matches!(err, UnpackError::HardLink { .. }), "{err}");
    }

    #[test]
    fn a_dir_replaced_by_a_symlink_does_not_carry_its_mode_outside() {
        use std::os::unix::fs::PermissionsExt;
        let outside = tempfile::tempdir().unwrap();
        fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "a/", tar::EntryType::Directory, "", b"", 0o777, 0);
        raw_member(&mut b, "a", tar::EntryType::Symlink, outside.path().to_str().unwrap(), b"", 0o777, 0);
        Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap();
        // The dir's deferred chmod (0777) must not land on the symlink's target.
        assert_eq!(fs::metadata(outside.path()).unwrap().permissions().mode() & 0o7777, 0o700);
        assert!(fs::symlink_metadata(layer.path().join("a")).unwrap().file_type().is_symlink());
    }

    #[test]
    fn setuid_bits_survive_the_chown_as_in_docker() {
        use std::os::unix::fs::PermissionsExt;
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "su", tar::EntryType::Regular, "", b"#!/bin/sh\n", 0o4755, 0);
        Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap();
        assert_eq!(fs::metadata(layer.path().join("su")).unwrap().permissions().mode() & 0o7777, 0o4755);
    }

    #[test]
    fn a_pax_record_over_a_mebibyte_is_refused_without_buffering_it() {
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        // A PAX extended header whose one record is 2 MiB long.
        let value = "a".repeat(2 << 20);
        let rec = {
            let body = format!(" comment={value}\n");
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            format!("{n}{body}")
        };
        raw_member(&mut b, "PaxHeaders/x", tar::EntryType::XHeader, "", rec.as_bytes(), 0o644, 0);
        raw_member(&mut b, "x", tar::EntryType::Regular, "", b"hi", 0o644, 0);
        let err = Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap_err();
        assert!(matches!(err, UnpackError::Oversized { .. }), "{err}");
        // A small one still works.
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_member(&mut b, "PaxHeaders/x", tar::EntryType::XHeader, "", b"18 path=long/name\n", 0o644, 0);
        raw_member(&mut b, "x", tar::EntryType::Regular, "", b"hi", 0o644, 0);
        Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap();
        assert_eq!(fs::read_to_string(layer.path().join("long/name")).unwrap(), "hi");
    }

    #[test]
    fn device_nodes_are_made_inside_the_layer_as_docker_does() {
        use std::os::unix::fs::FileTypeExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let layer = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("dev/null2").unwrap();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        Unpacker::new(layer.path()).unpack(&b.into_inner().unwrap()[..]).unwrap();
        assert!(fs::symlink_metadata(layer.path().join("dev/null2")).unwrap().file_type().is_char_device());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Names an attacker would try, joined into paths.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("..".to_string()),
                Just(".".to_string()),
                Just("".to_string()),
                Just(".wh.a".to_string()),
                Just(".wh..wh..opq".to_string()),
                Just("out".to_string()),
            ]
        }
        fn path() -> impl Strategy<Value = String> {
            (any::<bool>(), proptest::collection::vec(name(), 1..4)).prop_map(|(abs, v)| {
                let p = v.join("/");
                if abs {
                    format!("/{p}")
                } else {
                    p
                }
            })
        }
        #[derive(Clone, Debug)]
        enum K {
            Dir,
            File,
            Symlink(String),
            Hardlink(String),
        }
        fn member() -> impl Strategy<Value = (String, K)> {
            let kind = prop_oneof![
                Just(K::Dir),
                Just(K::File),
                prop_oneof![path(), Just("OUTSIDE".to_string()), Just("../../..".to_string())].prop_map(K::Symlink),
                prop_oneof![path(), Just("OUTSIDE/secret".to_string())].prop_map(K::Hardlink),
            ];
            (path(), kind)
        }

        fn listing(dir: &Path) -> Vec<(PathBuf, u32, u64)> {
            use std::os::unix::fs::MetadataExt;
            let mut out = Vec::new();
            let mut stack = vec![dir.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).unwrap().flatten() {
                    let m = fs::symlink_metadata(e.path()).unwrap();
                    out.push((e.path(), m.mode(), m.nlink()));
                    if m.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
            out.sort();
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn nothing_appears_or_changes_outside_the_layer_dir(members in proptest::collection::vec(member(), 1..8)) {
                // root/ holds the layer dir and a sibling "outside" with a canary.
                let root = tempfile::tempdir().unwrap();
                let outside = root.path().join("outside");
                fs::create_dir(&outside).unwrap();
                fs::write(outside.join("secret"), "canary").unwrap();
                let layer = root.path().join("layer");
                fs::create_dir(&layer).unwrap();
                let before = listing(root.path()).into_iter().filter(|(p, ..)| !p.starts_with(&layer)).collect::<Vec<_>>();
                let mut b = tar::Builder::new(Vec::new());
                for (p, k) in &members {
                    if p.len() > 99 { continue; }
                    let fix = |t: &str| t.replace("OUTSIDE", outside.to_str().unwrap());
                    match k {
                        K::Dir => raw_member(&mut b, p, tar::EntryType::Directory, "", b"", 0o777, 0),
                        K::File => raw_member(&mut b, p, tar::EntryType::Regular, "", b"x", 0o4777, 0),
                        K::Symlink(t) => raw_member(&mut b, p, tar::EntryType::Symlink, &fix(t), b"", 0o777, 0),
                        K::Hardlink(t) => raw_member(&mut b, p, tar::EntryType::Link, &fix(t), b"", 0o777, 4242),
                    }
                }
                let tar = b.into_inner().unwrap();
                let _ = Unpacker::new(&layer).unpack(&tar[..]);
                let after = listing(root.path()).into_iter().filter(|(p, ..)| !p.starts_with(&layer)).collect::<Vec<_>>();
                prop_assert_eq!(before, after);
                prop_assert_eq!(fs::read_to_string(outside.join("secret")).unwrap(), "canary");
            }
        }
    }
}
