//! File changes as events (`FileChanged`), as the simulator reports its
//! writes: inotify watches on every container's upper dir (from create to
//! removal), every image layer's `diff` dir (the lower dirs) and every
//! volume's `_data` dir, each only under berth's data root.
//!
//! Kinds are `docker diff`'s. In an upper dir the file system decides when
//! the news is sent: an overlay whiteout (char device 0/0) is Deleted, a path
//! a lower dir also has is Modified, anything else Added. In a layer or
//! volume dir what happened decides: created Added, written Modified,
//! removed Deleted.
//!
//! Recursive by hand (inotify is not): a new subdir gets its own watch and is
//! read at once, so what was made in it before the watch counts too. No
//! symlink is ever followed: dirs are opened one component at a time with
//! `O_NOFOLLOW` and watched through their open descriptor. Bounded: news of
//! one path is held ~200 ms and sent once, at most [`EVENTS_PER_SEC`] a
//! second; watches are capped ([`MAX_WATCHES`], layers [`MAX_LAYER_WATCHES`]
//! of them); the log says when a cap is hit.
//!
//! After a restart an upper dir that already holds edits reports them as its
//! watch starts (they are the container's changes); a layer or volume dir
//! does not (its content is not a change). A volume's copy-in from the image
//! is not a change either: its news is dropped when `VolumePopulated` comes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_shared::event::FileChangeKind;
use berth_shared::{Event, State};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use crate::events::EventBus;

/// How long news of one path is held: a burst of writes is one event.
const COALESCE: Duration = Duration::from_millis(200);
/// Events a second, at most (the bucket's size too).
pub const EVENTS_PER_SEC: f64 = 100.0;
/// Watches, at most, and how many of them image layers may take (upper and
/// volume dirs keep the rest).
pub const MAX_WATCHES: usize = 8192;
pub const MAX_LAYER_WATCHES: usize = 6144;
/// Paths waiting to be reported, at most; beyond, news is dropped.
const MAX_PENDING: usize = 20_000;
/// How often the watched dirs are compared with the state anyway (a dir the
/// state names before it exists is tried again).
const RESYNC: Duration = Duration::from_secs(2);

/// What a watched dir is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// A container's upper dir, over these lower dirs (top-most first).
    Upper { lower: Vec<String> },
    /// An image layer's diff dir.
    Layer,
    /// A volume's data dir.
    Volume,
}

/// The dirs the state names, each as the state spells it: containers'
/// upper dirs, layers' diff dirs, volumes' data dirs — those under the data
/// root only.
pub fn wanted(state: &State, data_root: &Path) -> BTreeMap<String, RootKind> {
    let ours = |d: &str| {
        let p = Path::new(d);
        p.is_absolute() && p.starts_with(data_root) && p.components().all(|c| !matches!(c, Component::ParentDir))
    };
    let mut out = BTreeMap::new();
    for l in state.layers.values().filter(|l| ours(&l.dir)) {
        out.insert(l.dir.clone(), RootKind::Layer);
    }
    for v in state.volumes.values().filter(|v| ours(&v.mountpoint)) {
        out.insert(v.mountpoint.clone(), RootKind::Volume);
    }
    for c in state.containers.values().filter(|c| ours(&c.layer.upper)) {
        out.insert(c.layer.upper.clone(), RootKind::Upper { lower: c.layer.lower.clone() });
    }
    out
}

/// Is `dir` still one the state names (checked as the event is emitted)?
fn still_wanted(state: &State, dir: &str) -> bool {
    state.containers.values().any(|c| c.layer.upper == dir)
        || state.volumes.values().any(|v| v.mountpoint == dir)
        || state.layers.values().any(|l| l.dir == dir)
}

/// `docker diff`'s kind of a path found in an upper dir.
pub fn upper_kind(whiteout: bool, in_lower: bool) -> FileChangeKind {
    match (whiteout, in_lower) {
        (true, _) => FileChangeKind::Deleted,
        (false, true) => FileChangeKind::Modified,
        (false, false) => FileChangeKind::Added,
    }
}

/// Two pieces of news of one path in a layer or volume dir, within one
/// hold, as one: `None` when they cancel (made and removed again).
pub fn combine(first: FileChangeKind, then: FileChangeKind) -> Option<FileChangeKind> {
    use FileChangeKind::*;
    Some(match (first, then) {
        (Added, Deleted) => return None,
        (Added, _) => Added,
        (Deleted, Added | Modified) => Modified,
        (_, Deleted) => Deleted,
        (Modified, _) => Modified,
    })
}

/// An overlay whiteout: a character device 0/0.
pub fn is_whiteout(mode: u32, rdev: u64) -> bool {
    mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0
}

fn stat_is_whiteout(st: &FileStat) -> bool {
    is_whiteout(st.st_mode, st.st_rdev)
}

fn stat_is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The names of a relative path, or an error for anything but plain names.
fn names(rel: &Path) -> std::io::Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir | Component::RootDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
        })
        .collect()
}

/// Opens the dir `rel` beneath `root`, one component at a time, following
/// no symlink (a container may put one anywhere in its upper dir).
pub fn open_dir_beneath(root: &Path, rel: &Path) -> std::io::Result<OwnedFd> {
    let mut fd = nix::fcntl::open(root, dir_flags(), Mode::empty())?;
    for name in names(rel)? {
        fd = openat(fd.as_fd(), name, dir_flags(), Mode::empty())?;
    }
    Ok(fd)
}

/// lstat of `rel` beneath `root`, following no symlink on the way.
fn lstat_beneath(root: &Path, rel: &Path) -> std::io::Result<FileStat> {
    let parts = names(rel)?;
    let Some((last, dirs)) = parts.split_last() else {
        let fd = open_dir_beneath(root, Path::new(""))?;
        return Ok(nix::sys::stat::fstat(fd.as_fd())?);
    };
    let parent: PathBuf = dirs.iter().collect();
    let fd = open_dir_beneath(root, &parent)?;
    Ok(fstatat(fd.as_fd(), *last, AtFlags::AT_SYMLINK_NOFOLLOW)?)
}

/// What one lower dir says of a path.
enum Lookup {
    /// It has the path (a whiteout, or anything else).
    Found { whiteout: bool },
    /// It has not; `hides_below` when it hides the path from the lower dirs
    /// under it (an opaque dir, a whiteout or a non-dir on the way).
    Missing { hides_below: bool },
}

fn lookup(lower: &Path, rel: &Path) -> Lookup {
    let Ok(parts) = names(rel) else { return Lookup::Missing { hides_below: false } };
    let Some((last, dirs)) = parts.split_last() else { return Lookup::Found { whiteout: false } };
    let Ok(mut fd) = nix::fcntl::open(lower, dir_flags(), Mode::empty()) else { return Lookup::Missing { hides_below: false } };
    let mut opaque = false;
    for name in dirs {
        match fstatat(fd.as_fd(), *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(_) => return Lookup::Missing { hides_below: opaque },
            Ok(st) if !stat_is_dir(&st) => return Lookup::Missing { hides_below: true },
            Ok(_) => {}
        }
        match openat(fd.as_fd(), *name, dir_flags(), Mode::empty()) {
            Ok(next) => fd = next,
            Err(_) => return Lookup::Missing { hides_below: opaque },
        }
        if xattr::get(format!("/proc/self/fd/{}", fd.as_raw_fd()), "trusted.overlay.opaque").ok().flatten().as_deref() == Some(b"y") {
            opaque = true;
        }
    }
    match fstatat(fd.as_fd(), *last, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Lookup::Found { whiteout: stat_is_whiteout(&st) },
        Err(_) => Lookup::Missing { hides_below: opaque },
    }
}

/// Does the image (the lower dirs, top-most first) have this path, as the
/// overlay merges them?
pub fn exists_in_lowers(lowers: &[String], rel: &Path) -> bool {
    for l in lowers {
        match lookup(Path::new(l), rel) {
            Lookup::Found { whiteout } => return !whiteout,
            Lookup::Missing { hides_below: true } => return false,
            Lookup::Missing { hides_below: false } => {}
        }
    }
    false
}

/// What a held path turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum News {
    Kind(FileChangeKind),
    /// No longer in the upper dir at all (made and removed by the container):
    /// Deleted, if it had been reported.
    Vanished,
}

impl News {
    fn kind(self) -> FileChangeKind {
        match self {
            News::Kind(k) => k,
            News::Vanished => FileChangeKind::Deleted,
        }
    }
}

/// Is `rel` in an upper dir one of the runtime's mount points, or a dir
/// that holds only those (`/etc` with hosts, hostname and resolv.conf)?
fn runtime_only(upper: &Path, rel: &Path) -> bool {
    fn only(upper: &Path, rel: &Path, depth: usize) -> bool {
        if crate::storage::layer::MOUNT_POINTS.contains(&&*rel.to_string_lossy()) {
            return true;
        }
        if depth > 4 {
            return false;
        }
        let Ok(fd) = open_dir_beneath(upper, rel) else { return false };
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return false };
        let mut any = false;
        for e in entries.flatten() {
            any = true;
            if !only(upper, &rel.join(e.file_name()), depth + 1) {
                return false;
            }
        }
        any
    }
    only(upper, rel, 0)
}

/// One watched dir inside a root.
#[derive(Debug)]
struct Watch {
    root: String,
    rel: PathBuf,
    /// The names in it (layer and volume dirs: was a created one there before?).
    names: HashSet<OsString>,
}

/// News of one path, held for [`COALESCE`].
#[derive(Debug)]
struct Pending {
    since: Instant,
    /// Layer and volume dirs: what happened. Upper dirs: decided at the end.
    kind: Option<FileChangeKind>,
    /// Found by reading a dir as its watch started: sent only if the state
    /// does not already say so.
    scanned: bool,
    /// Gone with a dir that went (removed or moved away): reported even
    /// though that dir is gone too.
    with_dir: bool,
}

#[derive(Debug)]
struct Watcher {
    bus: Arc<EventBus>,
    data_root: PathBuf,
    inotify: Inotify,
    roots: BTreeMap<String, RootKind>,
    watches: HashMap<WatchDescriptor, Watch>,
    by_path: HashMap<(String, PathBuf), WatchDescriptor>,
    layer_watches: usize,
    pending: HashMap<(String, String), Pending>,
    order: VecDeque<(String, String)>,
    tokens: f64,
    refilled: Instant,
    capped: HashSet<&'static str>,
    last_cap_log: Option<Instant>,
}

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

/// "/a/b" for a relative path "a/b".
fn shown(rel: &Path) -> String {
    format!("/{}", rel.display())
}

impl Watcher {
    fn new(bus: Arc<EventBus>, data_root: PathBuf) -> std::io::Result<Self> {
        Ok(Watcher {
            bus,
            data_root,
            inotify: Inotify::init()?,
            roots: BTreeMap::new(),
            watches: HashMap::new(),
            by_path: HashMap::new(),
            layer_watches: 0,
            pending: HashMap::new(),
            order: VecDeque::new(),
            tokens: EVENTS_PER_SEC,
            refilled: Instant::now(),
            capped: HashSet::new(),
            last_cap_log: None,
        })
    }

    fn cap(&mut self, what: &'static str, detail: String) {
        if self.capped.insert(what) {
            tracing::warn!(cap = what, "file watch capped: {detail}");
        }
    }

    /// Brings the watched dirs in line with the state's.
    fn sync(&mut self) {
        let want = self.bus.with_state(|s| wanted(s, &self.data_root));
        let gone: Vec<String> = self.roots.keys().filter(|r| !want.contains_key(*r)).cloned().collect();
        for root in gone {
            self.drop_root(&root);
        }
        // Upper and volume dirs first: layers must not take their watches.
        let mut new: Vec<(String, RootKind)> = want.into_iter().filter(|(r, _)| !self.roots.contains_key(r)).collect();
        new.sort_by_key(|(_, k)| matches!(k, RootKind::Layer));
        for (root, kind) in new {
            self.add_root(root, kind);
        }
    }

    fn drop_root(&mut self, root: &str) {
        let wds: Vec<WatchDescriptor> = self.watches.iter().filter(|(_, w)| w.root == root).map(|(wd, _)| wd.clone()).collect();
        for wd in wds {
            self.forget(&wd, true);
        }
        self.roots.remove(root);
        self.pending.retain(|(r, _), _| r != root);
    }

    fn forget(&mut self, wd: &WatchDescriptor, remove: bool) {
        if let Some(w) = self.watches.remove(wd) {
            let key = (w.root.clone(), w.rel.clone());
            if self.by_path.get(&key) == Some(wd) {
                self.by_path.remove(&key);
            }
            if self.is_layer_root(&w.root) {
                self.layer_watches = self.layer_watches.saturating_sub(1);
            }
            if remove {
                let _ = self.inotify.watches().remove(wd.clone());
            }
        }
    }

    fn is_layer_root(&self, root: &str) -> bool {
        matches!(self.roots.get(root), Some(RootKind::Layer))
    }

    fn add_root(&mut self, root: String, kind: RootKind) {
        if !Path::new(&root).is_dir() {
            return; // not made yet: the next sync tries again
        }
        let report = matches!(kind, RootKind::Upper { .. });
        self.roots.insert(root.clone(), kind);
        if !self.add_tree(&root, PathBuf::new(), report, true) {
            self.roots.remove(&root);
        }
    }

    /// Watches the dir `rel` of `root` and every dir below it; with
    /// `report`, what they hold is news. Returns whether `rel` is watched.
    fn add_tree(&mut self, root: &str, rel: PathBuf, report: bool, scanned: bool) -> bool {
        let layer = self.is_layer_root(root);
        let mut queue = VecDeque::from([rel.clone()]);
        let mut top_ok = false;
        while let Some(dir) = queue.pop_front() {
            if self.watches.len() >= MAX_WATCHES {
                self.cap("watches", format!("{MAX_WATCHES} dirs watched; {root}{} and the dirs below it are not", shown(&dir)));
                break;
            }
            if layer && self.layer_watches >= MAX_LAYER_WATCHES {
                self.cap("layer watches", format!("{MAX_LAYER_WATCHES} image layer dirs watched; {root}{} is not", shown(&dir)));
                break;
            }
            let Ok(fd) = open_dir_beneath(Path::new(root), &dir) else { continue };
            let wd = match self.inotify.watches().add(format!("/proc/self/fd/{}", fd.as_raw_fd()), mask()) {
                Ok(wd) => wd,
                Err(e) => {
                    self.cap("inotify", format!("adding a watch on {root}{}: {e}", shown(&dir)));
                    continue;
                }
            };
            top_ok |= dir == rel;
            // The same dir watched again (moved back): one record of it.
            self.forget(&wd, false);
            let mut found = HashSet::new();
            let entries = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            for e in entries.into_iter().flatten().flatten() {
                let name = e.file_name();
                let child = dir.join(&name);
                if report {
                    self.note(root, &child, None, scanned);
                }
                if let Ok(st) = fstatat(fd.as_fd(), name.as_bytes(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    if stat_is_dir(&st) && !self.by_path.contains_key(&(root.to_string(), child.clone())) {
                        queue.push_back(child);
                    }
                }
                found.insert(name);
            }
            if layer {
                self.layer_watches += 1;
            }
            self.by_path.insert((root.to_string(), dir.clone()), wd.clone());
            self.watches.insert(wd, Watch { root: root.to_string(), rel: dir, names: found });
        }
        top_ok
    }

    /// Holds news of a path (merged with what is held of it already).
    fn note(&mut self, root: &str, rel: &Path, kind: Option<FileChangeKind>, scanned: bool) {
        let key = (root.to_string(), shown(rel));
        match self.pending.get_mut(&key) {
            Some(p) => {
                p.scanned &= scanned;
                if let (Some(a), Some(b)) = (p.kind, kind) {
                    match combine(a, b) {
                        Some(k) => p.kind = Some(k),
                        None => {
                            self.pending.remove(&key);
                        }
                    }
                }
            }
            None => {
                if self.pending.len() >= MAX_PENDING {
                    self.cap("pending", format!("{MAX_PENDING} changed paths waiting; news of {root}{} dropped", key.1));
                    return;
                }
                self.pending.insert(key.clone(), Pending { since: Instant::now(), kind, scanned, with_dir: false });
                self.order.push_back(key);
            }
        }
    }

    /// Reads whatever the kernel has queued.
    fn read(&mut self) {
        let mut buf = [0u8; 16384];
        loop {
            let batch: Vec<(WatchDescriptor, EventMask, Option<OsString>)> = match self.inotify.read_events(&mut buf) {
                Ok(events) => events.map(|e| (e.wd, e.mask, e.name.map(|n| n.to_os_string()))).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "file watch: reading inotify");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for (wd, mask, name) in batch {
                self.handle(wd, mask, name);
            }
        }
    }

    fn handle(&mut self, wd: WatchDescriptor, mask: EventMask, name: Option<OsString>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!("file watch: the kernel's inotify queue overflowed; upper dirs are read again");
            let dirs: Vec<(String, PathBuf)> = self
                .watches
                .values()
                .filter(|w| matches!(self.roots.get(&w.root), Some(RootKind::Upper { .. })))
                .map(|w| (w.root.clone(), w.rel.clone()))
                .collect();
            for (root, dir) in dirs {
                let Ok(fd) = open_dir_beneath(Path::new(&root), &dir) else { continue };
                let entries = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                let mut unwatched = Vec::new();
                for e in entries.into_iter().flatten().flatten() {
                    let child = dir.join(e.file_name());
                    self.note(&root, &child, None, true);
                    let is_dir =
                        fstatat(fd.as_fd(), e.file_name().as_bytes(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| stat_is_dir(&st));
                    if is_dir && !self.by_path.contains_key(&(root.clone(), child.clone())) {
                        unwatched.push(child);
                    }
                }
                for child in unwatched {
                    self.add_tree(&root, child, true, true);
                }
            }
            return;
        }
        if mask.contains(EventMask::IGNORED) {
            self.forget(&wd, false);
            return;
        }
        let Some(name) = name else { return };
        let Some(w) = self.watches.get_mut(&wd) else { return };
        let root = w.root.clone();
        let rel = w.rel.join(&name);
        let is_dir = mask.contains(EventMask::ISDIR);
        let appeared = mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
        let went = mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM);
        let kind = if appeared {
            let existed = !w.names.insert(name.clone());
            if existed {
                FileChangeKind::Modified
            } else {
                FileChangeKind::Added
            }
        } else if went {
            w.names.remove(&name);
            FileChangeKind::Deleted
        } else {
            FileChangeKind::Modified
        };
        let upper = matches!(self.roots.get(&root), Some(RootKind::Upper { .. }));
        self.note(&root, &rel, (!upper).then_some(kind), false);
        if upper {
            // Its dirs changed too (docker diff lists them): sent once, when
            // the state does not already say so.
            for dir in rel.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
                self.note(&root, dir, None, true);
            }
        }
        if is_dir && went {
            // What the state holds below it went with it.
            let below = format!("{}/", shown(&rel));
            let known: Vec<String> = self.bus.with_state(|s| {
                s.files.get(&root).map(|f| f.keys().filter(|p| p.starts_with(&below)).cloned().collect()).unwrap_or_default()
            });
            for p in known {
                self.note(&root, Path::new(p.trim_start_matches('/')), (!upper).then_some(FileChangeKind::Deleted), false);
                if let Some(p) = self.pending.get_mut(&(root.clone(), p)) {
                    p.with_dir = true;
                }
            }
            let wds: Vec<WatchDescriptor> = self
                .watches
                .iter()
                .filter(|(_, w)| w.root == root && (w.rel == rel || w.rel.starts_with(&rel)))
                .map(|(wd, _)| wd.clone())
                .collect();
            for wd in wds {
                self.forget(&wd, true);
            }
        }
        if is_dir && appeared {
            self.add_tree(&root, rel, true, false);
        }
    }

    /// A volume's copy-in is not a change: what it wrote is dropped.
    fn populated(&mut self, volume: &str) {
        let Some(dir) = self.bus.with_state(|s| s.volumes.get(volume).map(|v| v.mountpoint.clone())) else { return };
        self.read();
        self.pending.retain(|(r, _), _| *r != dir);
    }

    /// Sends the news held long enough, as fast as the bucket allows.
    fn flush(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * EVENTS_PER_SEC).min(EVENTS_PER_SEC);
        self.refilled = now;
        while let Some(key) = self.order.front().cloned() {
            let Some(p) = self.pending.get(&key) else {
                self.order.pop_front();
                continue;
            };
            if now.duration_since(p.since) < COALESCE {
                break;
            }
            if self.tokens < 1.0 {
                if self.last_cap_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(waiting = self.pending.len(), "file watch capped at {EVENTS_PER_SEC} events/s: changes wait their turn");
                    self.last_cap_log = Some(now);
                }
                break;
            }
            self.order.pop_front();
            let Some(p) = self.pending.remove(&key) else { continue };
            let (root, path) = key;
            let Some(news) = self.decide(&root, &path, &p) else { continue };
            self.tokens -= 1.0;
            let scanned = p.scanned;
            let (dir, file) = (root.clone(), path.clone());
            let kind = news.kind();
            self.bus.emit_if(Event::FileChanged { dir: root, path, change: kind }, move |s| {
                let said = s.files.get(&dir).and_then(|f| f.get(&file)).copied();
                // Gone from an upper dir: news only if it was reported there.
                let unseen = news == News::Vanished && said.is_none_or(|k| k == FileChangeKind::Deleted);
                still_wanted(s, &dir) && !(scanned && said == Some(kind)) && !unseen
            });
        }
    }

    /// What to report of a held path, if anything.
    fn decide(&self, root: &str, path: &str, p: &Pending) -> Option<News> {
        let kind = self.roots.get(root)?;
        // The whole dir is going (a container, volume or layer being
        // removed): no news of its files.
        if !Path::new(root).is_dir() {
            return None;
        }
        match kind {
            RootKind::Upper { lower } => {
                let rel = Path::new(path.trim_start_matches('/'));
                // The runtime's own mount points (/etc/hosts…) and the dirs
                // that hold nothing else are not the container's changes:
                // docker diff does not show them (Docker keeps them in its
                // init layer).
                if runtime_only(Path::new(root), rel) {
                    return None;
                }
                let in_lower = exists_in_lowers(lower, rel);
                match lstat_beneath(Path::new(root), rel) {
                    Ok(st) => Some(News::Kind(upper_kind(stat_is_whiteout(&st), in_lower))),
                    // Its dir went too: reported with that dir (a dir removed
                    // or moved reports what the state had below it), not
                    // file by file as a removal walks the tree.
                    Err(_)
                        if !p.with_dir
                            && rel.parent().is_some_and(|d| !d.as_os_str().is_empty() && lstat_beneath(Path::new(root), d).is_err()) =>
                    {
                        None
                    }
                    Err(_) => Some(News::Vanished),
                }
            }
            RootKind::Layer | RootKind::Volume => p.kind.map(News::Kind),
        }
    }
}

/// Starts the file watcher on a thread of its own; it runs as long as the
/// daemon does. Without inotify, says so and reports nothing.
pub fn start(bus: Arc<EventBus>, data_root: &Path) {
    let data_root = data_root.to_path_buf();
    let spawned = std::thread::Builder::new().name("berth-files".into()).spawn(move || {
        let mut w = match Watcher::new(bus.clone(), data_root) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file watch unavailable (inotify): file changes are not reported");
                return;
            }
        };
        let (_, _, mut rx) = bus.snapshot_and_subscribe();
        w.sync();
        let mut synced = Instant::now();
        loop {
            {
                let fd = w.inotify.as_fd();
                let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
                let _ = nix::poll::poll(&mut fds, 50u16);
            }
            w.read();
            let mut resync = synced.elapsed() > RESYNC;
            loop {
                use tokio::sync::broadcast::error::TryRecvError;
                match rx.try_recv() {
                    Ok(env) => match &env.event {
                        Event::VolumePopulated { name, .. } => w.populated(name),
                        Event::ContainerCreated { .. }
                        | Event::ContainerRemoved { .. }
                        | Event::LayerAdded { .. }
                        | Event::LayerRemoved { .. }
                        | Event::VolumeCreated { .. }
                        | Event::VolumeRemoved { .. } => resync = true,
                        _ => {}
                    },
                    Err(TryRecvError::Lagged(_)) => resync = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
            }
            if resync {
                w.sync();
                synced = Instant::now();
            }
            w.flush();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "file watch: no thread for it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileChangeKind::*;

    #[test]
    fn in_an_upper_dir_a_whiteout_is_deleted_a_file_of_the_image_modified_anything_else_added() {
        assert_eq!(upper_kind(true, true), Deleted);
        assert_eq!(upper_kind(true, false), Deleted);
        assert_eq!(upper_kind(false, true), Modified);
        assert_eq!(upper_kind(false, false), Added);
        // A whiteout is a character device 0/0, and only that.
        assert!(is_whiteout(libc::S_IFCHR, 0));
        assert!(!is_whiteout(libc::S_IFCHR | 0o666, libc::makedev(1, 3)));
        assert!(!is_whiteout(libc::S_IFREG | 0o644, 0));
    }

    #[test]
    fn news_of_one_path_within_a_hold_is_one_event() {
        assert_eq!(combine(Added, Modified), Some(Added));
        assert_eq!(combine(Added, Deleted), None, "a temp file made and removed is no news");
        assert_eq!(combine(Deleted, Added), Some(Modified), "an editor's save by rename");
        assert_eq!(combine(Modified, Modified), Some(Modified));
        assert_eq!(combine(Modified, Deleted), Some(Deleted));
    }

    #[test]
    fn a_path_is_the_images_when_a_lower_dir_has_it_and_none_above_hides_it() {
        let d = tempfile::tempdir().unwrap();
        let (top, bottom) = (d.path().join("top"), d.path().join("bottom"));
        std::fs::create_dir_all(bottom.join("usr/share/nginx/html")).unwrap();
        std::fs::write(bottom.join("usr/share/nginx/html/index.html"), "Welcome").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/motd"), "hi").unwrap();
        let lowers = vec![top.display().to_string(), bottom.display().to_string()];
        assert!(exists_in_lowers(&lowers, Path::new("usr/share/nginx/html/index.html")));
        assert!(exists_in_lowers(&lowers, Path::new("usr/share/nginx/html")));
        assert!(exists_in_lowers(&lowers, Path::new("etc/motd")));
        assert!(!exists_in_lowers(&lowers, Path::new("usr/share/nginx/html/new.html")));
        // A non-dir in a layer above hides the dir below (as the overlay does).
        std::fs::write(top.join("usr"), "not a dir").unwrap();
        assert!(!exists_in_lowers(&lowers, Path::new("usr/share/nginx/html/index.html")));
        std::fs::remove_file(top.join("usr")).unwrap();
        // A symlink is never followed, not even to a dir that has the path.
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("x")).unwrap();
        std::fs::write(elsewhere.join("x/secret"), "s").unwrap();
        std::os::unix::fs::symlink(&elsewhere, top.join("link")).unwrap();
        assert!(!exists_in_lowers(&lowers, Path::new("link/x/secret")));
        assert!(exists_in_lowers(&lowers, Path::new("link")), "the link itself is there");
        assert!(open_dir_beneath(&top, Path::new("link/x")).is_err());
        assert!(lstat_beneath(&top, Path::new("link/x/secret")).is_err());
        assert!(lstat_beneath(&top, Path::new("../top/etc/motd")).is_err(), "only plain names");
    }

    #[test]
    fn only_dirs_under_the_data_root_are_watched_each_as_the_state_names_it() {
        let mut s = State::default();
        s.layers.insert(
            "c1".into(),
            berth_shared::Layer { chain_id: "c1".into(), diff_id: "d1".into(), dir: "/var/lib/berth/overlay2/c1/diff".into(), size: 1 },
        );
        s.layers.insert("c2".into(), berth_shared::Layer { chain_id: "c2".into(), diff_id: "d2".into(), dir: "/etc".into(), size: 1 });
        s.layers.insert(
            "c3".into(),
            berth_shared::Layer { chain_id: "c3".into(), diff_id: "d3".into(), dir: "/var/lib/berth/../../../etc".into(), size: 1 },
        );
        berth_shared::apply(
            &mut s,
            &Event::VolumeCreated { name: "webvol".into(), mountpoint: "/var/lib/berth/volumes/webvol/_data".into(), anonymous: false },
        );
        let w = wanted(&s, Path::new("/var/lib/berth"));
        assert_eq!(
            w.into_iter().collect::<Vec<_>>(),
            vec![
                ("/var/lib/berth/overlay2/c1/diff".to_string(), RootKind::Layer),
                ("/var/lib/berth/volumes/webvol/_data".to_string(), RootKind::Volume)
            ]
        );
    }

    /// Without root: a watcher over temp dirs standing in for a container's
    /// upper dir (over one lower dir) and a volume's.
    #[test]
    fn edits_in_an_upper_dir_and_a_volume_become_file_changed_events_once_each() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_path_buf();
        let lower = root.join("overlay2/l1/diff");
        let upper = root.join("overlay2/c1/diff");
        std::fs::create_dir_all(lower.join("usr/share/nginx/html")).unwrap();
        std::fs::write(lower.join("usr/share/nginx/html/index.html"), "Welcome").unwrap();
        std::fs::create_dir_all(&upper).unwrap();
        // Already there as the watch starts (a restart): reported.
        std::fs::create_dir_all(upper.join("tmp")).unwrap();
        std::fs::write(upper.join("tmp/before"), "x").unwrap();
        // The runtime's mount point for /etc/hosts: not a change (docker diff).
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        let vol = root.join("volumes/webvol/_data");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("old.html"), "old").unwrap();

        let bus = Arc::new(EventBus::new());
        let (upper_s, lower_s, vol_s) = (upper.display().to_string(), lower.display().to_string(), vol.display().to_string());
        let mut w = Watcher::new(bus.clone(), root.clone()).unwrap();
        w.roots.insert(vol_s.clone(), RootKind::Volume);
        assert!(w.add_tree(&vol_s, PathBuf::new(), false, true));
        w.roots.insert(upper_s.clone(), RootKind::Upper { lower: vec![lower_s.clone()] });
        assert!(w.add_tree(&upper_s, PathBuf::new(), true, true));
        // (still_wanted: the state must name the dirs.)
        bus.emit(Event::VolumeCreated { name: "webvol".into(), mountpoint: vol_s.clone(), anonymous: false });
        let layer = berth_shared::RwLayer { lower: vec![lower_s], upper: upper_s.clone(), work: String::new(), merged: String::new() };
        bus.emit(Event::ContainerCreated {
            id: "c1".into(),
            name: "nginx-1".into(),
            image: "nginx:alpine".into(),
            image_id: "i".into(),
            command: vec![],
            layer,
            mounts: vec![],
            labels: Default::default(),
        });

        // A copy-up of the image's file, a new file, a file of the volume
        // rewritten twice, a new one there.
        std::fs::create_dir_all(upper.join("usr/share/nginx/html")).unwrap();
        std::fs::write(upper.join("usr/share/nginx/html/index.html"), "edited").unwrap();
        std::fs::write(upper.join("usr/share/nginx/html/new.html"), "new").unwrap();
        std::fs::write(vol.join("old.html"), "edit 1").unwrap();
        std::fs::write(vol.join("old.html"), "edit 2").unwrap();
        std::fs::write(vol.join("index.html"), "hello").unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            w.read();
            w.flush();
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = bus.state();
        let files = |dir: &str| s.files.get(dir).cloned().unwrap_or_default();
        let up = files(&upper_s);
        assert_eq!(up.get("/usr/share/nginx/html/index.html"), Some(&Modified), "{up:?}");
        assert_eq!(up.get("/usr/share/nginx/html/new.html"), Some(&Added), "{up:?}");
        assert_eq!(up.get("/usr/share/nginx/html"), Some(&Modified), "a dir of the image, changed");
        assert_eq!(up.get("/tmp/before"), Some(&Added), "what the upper dir held at start");
        assert_eq!(up.get("/etc/hosts"), None, "{up:?}");
        assert_eq!(up.get("/etc"), None, "a dir holding only the runtime's mount points: {up:?}");
        let v = files(&vol_s);
        assert_eq!(v.get("/old.html"), Some(&Modified), "{v:?}");
        assert_eq!(v.get("/index.html"), Some(&Added), "{v:?}");
        assert_eq!(v.len(), 2, "a volume's content at start is no news: {v:?}");
        let (history, _) = bus.history_and_subscribe();
        let of = |p: &str| history.iter().filter(|e| matches!(&e.event, Event::FileChanged { path, .. } if path == p)).count();
        assert_eq!(of("/old.html"), 1, "two writes in a burst: one event");
        assert_eq!(of("/usr/share/nginx/html/index.html"), 1);

        // Removed: a file only the upper dir had is gone (Deleted); the
        // volume's file too.
        std::fs::remove_file(upper.join("usr/share/nginx/html/new.html")).unwrap();
        std::fs::remove_file(vol.join("index.html")).unwrap();
        // A file of its own in /etc: now /etc is changed too.
        std::fs::write(upper.join("etc/motd"), "hi").unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            w.read();
            w.flush();
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = bus.state();
        assert_eq!(s.files[&upper_s].get("/usr/share/nginx/html/new.html"), Some(&Deleted));
        assert_eq!(s.files[&vol_s].get("/index.html"), Some(&Deleted));
        assert_eq!(s.files[&upper_s].get("/etc/motd"), Some(&Added));
        assert_eq!(s.files[&upper_s].get("/etc"), Some(&Modified), "its dir, as docker diff lists it");
        assert_eq!(s.files[&upper_s].get("/etc/hosts"), None);

        let pump = |w: &mut Watcher, ms: u64| {
            let deadline = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < deadline {
                w.read();
                w.flush();
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // A dir of its own with files, then rm -rf: the dir and what the
        // state had below it are Deleted, nothing left Added under it.
        std::fs::create_dir_all(upper.join("srv/site")).unwrap();
        std::fs::write(upper.join("srv/site/a"), "a").unwrap();
        pump(&mut w, 600);
        assert_eq!(bus.state().files[&upper_s].get("/srv/site/a"), Some(&Added));
        std::fs::remove_dir_all(upper.join("srv")).unwrap();
        pump(&mut w, 600);
        let s = bus.state();
        for p in ["/srv", "/srv/site", "/srv/site/a"] {
            assert_eq!(s.files[&upper_s].get(p), Some(&Deleted), "{p}: {:?}", s.files[&upper_s]);
        }
        // The whole upper dir removed (as a container's removal does, before
        // ContainerRemoved): no news of its files.
        let (before, _) = bus.history_and_subscribe();
        std::fs::remove_dir_all(&upper).unwrap();
        pump(&mut w, 600);
        let (after, _) = bus.history_and_subscribe();
        assert_eq!(after.len(), before.len(), "{:?}", &after[before.len()..]);
    }

    #[test]
    fn a_burst_of_changes_is_sent_at_the_capped_rate_and_none_is_lost() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("volumes/flood/_data");
        std::fs::create_dir_all(&vol).unwrap();
        let vol_s = vol.display().to_string();
        let bus = Arc::new(EventBus::new());
        bus.emit(Event::VolumeCreated { name: "flood".into(), mountpoint: vol_s.clone(), anonymous: false });
        let mut w = Watcher::new(bus.clone(), d.path().to_path_buf()).unwrap();
        w.sync();
        assert!(w.roots.contains_key(&vol_s));
        for i in 0..300 {
            std::fs::write(vol.join(format!("f{i}")), "x").unwrap();
        }
        let count = |bus: &EventBus| bus.with_state(|s| s.files.get(&vol_s).map_or(0, |f| f.len()));
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1200) {
            w.read();
            w.flush();
            std::thread::sleep(Duration::from_millis(10));
        }
        let first = count(&bus);
        assert!(first > 0 && first as f64 <= EVENTS_PER_SEC * 2.2, "{first} events in 1.2 s");
        while start.elapsed() < Duration::from_secs(5) && count(&bus) < 300 {
            w.read();
            w.flush();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(count(&bus), 300, "every file reported in the end");
    }
}
