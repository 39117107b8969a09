//! The build context held in memory, as an index of its tar: what COPY and
//! ADD need to decide a step — which paths a source names, and the checksum
//! of what they hold — without writing the context to disk. A fully cached
//! build never unpacks its context (that took 4–57 ms for the benchmark's
//! 52 files, all of it the disk's); a step that misses unpacks it then, once
//! ([`super::context::unpack`]), and copies from the disk as before.
//!
//! Its answers are the disk's: `.dockerignore` prunes the same paths,
//! symlinks resolve inside the context as `pathrs` resolves them there, and
//! [`checksum`] hashes the same bytes as [`super::context::checksum`] does
//! on the unpacked context (tested side by side below). Anything it does
//! not model (a sparse file, a context too big to hold, a link it cannot
//! follow) makes [`ContextIndex::read`] decline, and the build takes the
//! disk's way, with the disk's errors.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::context::{Ignore, MAX_DOCKERFILE, MAX_DOCKERIGNORE};

/// The most a context may hold to be kept in memory (its tar, unpacked
/// from gzip if it came so); bigger ones go to disk.
pub const MAX_IN_MEMORY: usize = 64 << 20;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    /// Its bytes in the tar.
    File(Range<usize>),
    Symlink(String),
    /// A device or fifo: only its name and mode count.
    Other(u32),
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    /// Permission bits (and setuid/setgid/sticky).
    perm: u32,
}

impl Node {
    fn mode(&self) -> u32 {
        let kind = match self.kind {
            Kind::Dir => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::Other(t) => t,
        };
        kind | self.perm
    }
}

/// A context's tar, indexed by cleaned path ("" is the root).
#[derive(Debug)]
pub struct ContextIndex {
    tar: Vec<u8>,
    nodes: BTreeMap<String, Node>,
}

/// Go's filepath.Clean of a context path, without a leading slash; None
/// for a path that leaves the context.
fn clean(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Adds a tar entry's node as the disk's unpack would leave it: missing
/// parents made (0755), a directory entry over a directory only changing
/// its mode, anything else replacing what was there (a dir with its tree).
fn insert(nodes: &mut BTreeMap<String, Node>, path: String, node: Node) {
    let mut dir = parent(&path);
    while !dir.is_empty() && !nodes.contains_key(dir) {
        nodes.insert(dir.to_string(), Node { kind: Kind::Dir, perm: 0o755 });
        dir = parent(dir);
    }
    if node.kind == Kind::Dir {
        if let Some(n) = nodes.get_mut(&path).filter(|n| n.kind == Kind::Dir) {
            n.perm = node.perm;
            return;
        }
    }
    let prefix = format!("{path}/");
    nodes.retain(|k, _| !k.starts_with(&prefix));
    nodes.insert(path, node);
}

fn parent(p: &str) -> &str {
    p.rfind('/').map(|i| &p[..i]).unwrap_or("")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl ContextIndex {
    /// Indexes a context tar (plain or gzip), applies `.dockerignore` as
    /// the disk's unpack does, and returns the Dockerfile's text when
    /// `.dockerignore` excluded it (read first, as Docker does). Err gives
    /// the bytes back: not something the index models — take the disk's way.
    pub fn read(raw: Vec<u8>, dockerfile: &str) -> Result<(Self, Option<String>), Vec<u8>> {
        let (tar, original) = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(&raw[..]).take(MAX_IN_MEMORY as u64 + 1).read_to_end(&mut out);
            if read.is_err() || out.len() > MAX_IN_MEMORY {
                return Err(raw);
            }
            (out, Some(raw))
        } else {
            (raw, None)
        };
        let mut index = ContextIndex { tar, nodes: BTreeMap::new() };
        match index.build(dockerfile) {
            Some(kept) => Ok((index, kept)),
            None => Err(original.unwrap_or(index.tar)),
        }
    }

    fn build(&mut self, dockerfile: &str) -> Option<Option<String>> {
        let tar = &self.tar;
        let nodes = &mut self.nodes;
        nodes.insert(String::new(), Node { kind: Kind::Dir, perm: 0o755 });
        let mut ar = tar::Archive::new(&tar[..]);
        for entry in ar.entries().ok()? {
            let entry = entry.ok()?;
            let raw_path = entry.path().ok()?.to_string_lossy().into_owned();
            // (The disk's unpack skips what would leave the context.)
            if raw_path.split('/').any(|c| c == "..") {
                continue;
            }
            let Some(path) = clean(&raw_path) else { continue };
            if path.is_empty() {
                continue;
            }
            let h = entry.header();
            let perm = h.mode().ok()? & 0o7777;
            let kind = match h.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let start = usize::try_from(entry.raw_file_position()).ok()?;
                    let len = usize::try_from(entry.size()).ok()?;
                    Kind::File(start..start.checked_add(len).filter(|e| *e <= tar.len())?)
                }
                tar::EntryType::Symlink => Kind::Symlink(entry.link_name().ok()??.to_string_lossy().into_owned()),
                tar::EntryType::Link => {
                    // The same file as its target: its bytes and its mode.
                    let target = clean(&entry.link_name().ok()??.to_string_lossy())?;
                    let same = nodes.get(&target).filter(|n| matches!(n.kind, Kind::File(_)))?.clone();
                    insert(nodes, path, same);
                    continue;
                }
                tar::EntryType::Char => Kind::Other(0o020000),
                tar::EntryType::Block => Kind::Other(0o060000),
                tar::EntryType::Fifo => Kind::Other(0o010000),
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {
                    continue
                }
                _ => return None,
            };
            // A symlink's own mode is always 0777 on Linux.
            let perm = if matches!(kind, Kind::Symlink(_)) { 0o777 } else { perm };
            insert(nodes, path, Node { kind, perm });
        }
        let Some(text) = self.read_text(".dockerignore", MAX_DOCKERIGNORE)? else { return Some(None) };
        let ignore = Ignore::parse(&text).ok()?;
        let dockerfile = clean(dockerfile)?;
        self.prune("", &ignore, &dockerfile);
        let mut kept = None;
        if ignore.ignored(&dockerfile) {
            kept = self.read_text(&dockerfile, MAX_DOCKERFILE)?;
            self.remove(&dockerfile)?;
        }
        if ignore.ignored(".dockerignore") {
            self.remove(".dockerignore")?;
        }
        Some(kept)
    }

    /// The tar's bytes (to unpack it when a step needs the files).
    pub fn tar(&self) -> &[u8] {
        &self.tar
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn remove_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.nodes.retain(|k, _| k != path && !k.starts_with(&prefix));
    }

    /// `.dockerignore` as the disk's prune applies it (context.rs `prune`).
    fn prune(&mut self, dir: &str, ignore: &Ignore, dockerfile: &str) {
        for path in self.children(dir) {
            if path == dockerfile || path == ".dockerignore" {
                continue;
            }
            let is_dir = self.nodes.get(&path).is_some_and(|n| n.kind == Kind::Dir);
            if ignore.ignored(&path) {
                if is_dir && ignore.has_exceptions() {
                    self.prune(&path, ignore, dockerfile);
                    if self.children(&path).is_empty() {
                        self.nodes.remove(&path);
                    }
                } else {
                    self.remove_tree(&path);
                }
            } else if is_dir {
                self.prune(&path, ignore, dockerfile);
            }
        }
    }

    /// Removes one file, resolved inside the context (context.rs `remove_inside`).
    fn remove(&mut self, rel: &str) -> Option<()> {
        // The last component itself is not followed: the link goes, not its target.
        let p = join(&self.resolve(parent(rel))?, rel.rsplit('/').next().unwrap_or(rel));
        if self.nodes.get(&p).is_some_and(|n| n.kind == Kind::Dir) {
            return None;
        }
        self.nodes.remove(&p);
        Some(())
    }

    /// Where `rel` leads inside the context, following symlinks as if the
    /// context were the root (an absolute target starts at the context, `..`
    /// stops there); None if it names nothing.
    fn resolve(&self, rel: &str) -> Option<String> {
        let mut hops = 0;
        let mut pending: Vec<String> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").rev().map(String::from).collect();
        let mut cur = String::new();
        while let Some(c) = pending.pop() {
            if c == ".." {
                cur = parent(&cur).to_string();
                continue;
            }
            let next = join(&cur, &c);
            match &self.nodes.get(&next)?.kind {
                Kind::Symlink(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    pending.extend(target.split('/').filter(|c| !c.is_empty() && *c != ".").rev().map(String::from));
                }
                Kind::Dir => cur = next,
                _ if pending.is_empty() => cur = next,
                // A file in the middle of a path.
                _ => return None,
            }
        }
        Some(cur)
    }

    /// A small text file of the context, as context.rs `read_inside` reads
    /// it. None: take the disk's way (for its errors); Some(None): absent.
    fn read_text(&self, rel: &str, max: u64) -> Option<Option<String>> {
        let Some(p) = self.resolve(rel) else { return Some(None) };
        let Kind::File(range) = &self.nodes.get(&p)?.kind else { return None };
        if range.len() as u64 > max {
            return None;
        }
        String::from_utf8(self.tar[range.clone()].to_vec()).ok().map(Some)
    }

    /// The Dockerfile's text, as `read_inside` would find it on the disk.
    pub fn dockerfile(&self, rel: &str) -> Option<Option<String>> {
        self.read_text(rel, MAX_DOCKERFILE)
    }

    /// The paths a COPY source names (context.rs `sources`, same answers).
    pub fn sources(&self, src: &str) -> Result<Vec<PathBuf>, String> {
        let (cleaned, glob) = super::context::source_pattern(src)?;
        let Some(glob) = glob else {
            if cleaned.is_empty() || self.resolve(&cleaned).is_some() {
                return Ok(vec![PathBuf::from(cleaned)]);
            }
            return Err(super::context::not_found(src));
        };
        let mut out: Vec<PathBuf> = self.nodes.keys().filter(|k| !k.is_empty() && glob.is_match(k.as_str())).map(PathBuf::from).collect();
        if out.is_empty() {
            return Err(super::context::no_match(src));
        }
        out.sort();
        Ok(out)
    }

    /// The checksum of what the sources hold (context.rs `checksum`, the
    /// same bytes hashed).
    pub fn checksum(&self, rels: &[PathBuf]) -> Result<String, String> {
        let mut h = Sha256::new();
        for rel in rels {
            let shown = rel.to_string_lossy();
            let top = self.resolve(&shown).ok_or_else(|| format!("{shown}: no such file or directory"))?;
            self.hash_entry(&mut h, &top, rel);
        }
        Ok(hex::encode(h.finalize()))
    }

    fn hash_entry(&self, h: &mut Sha256, path: &str, rel: &Path) {
        let Some(node) = self.nodes.get(path) else { return };
        let len = match &node.kind {
            Kind::File(r) => r.len(),
            Kind::Symlink(t) => t.len(),
            _ => 0,
        };
        h.update(rel.to_string_lossy().as_bytes());
        h.update(format!("\0{:o}\0{len}\0", node.mode()).as_bytes());
        match &node.kind {
            Kind::Dir => {
                for child in self.children(path) {
                    let name = child.rsplit('/').next().unwrap_or(&child).to_string();
                    self.hash_entry(h, &child, &rel.join(name));
                }
            }
            Kind::File(r) => h.update(&self.tar[r.clone()]),
            Kind::Symlink(t) => h.update(t.as_bytes()),
            Kind::Other(_) => {}
        }
        h.update(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A tar of (name, kind, data or link target, mode).
    fn tar_of(entries: &[(&str, tar::EntryType, &str, u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_mtime(1_700_000_000);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    h.set_link_name(data).unwrap();
                    h.set_path(name).unwrap();
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    h.set_path(name).unwrap();
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// The same context, indexed and unpacked: every question gets the
    /// disk's answer.
    fn both(tar: &[u8], dockerfile: &str) -> (ContextIndex, Option<String>, tempfile::TempDir, Option<String>) {
        let (index, kept) = ContextIndex::read(tar.to_vec(), dockerfile).expect("indexed");
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("ctx.tar");
        fs::write(&archive, tar).unwrap();
        let out = dir.path().join("ctx");
        fs::create_dir_all(&out).unwrap();
        let disk_kept = super::super::context::unpack(&archive, &out, dockerfile).unwrap();
        fs::remove_file(&archive).unwrap();
        (index, kept, dir, disk_kept)
    }

    fn lab() -> Vec<u8> {
        use tar::EntryType::*;
        tar_of(&[
            ("Dockerfile", Regular, "FROM alpine\nCOPY . /app\n", 0o644),
            (".dockerignore", Regular, "secret*\n*.log\nbuild\n!build/keep.txt\n", 0o644),
            ("requirements.txt", Regular, "flask\n", 0o644),
            ("app/", Directory, "", 0o755),
            ("app/main.py", Regular, "print(1)\n", 0o755),
            ("app/util.py", Regular, "x = 2\n", 0o600),
            ("app/lib/deep.py", Regular, "y = 3\n", 0o644),
            ("app/current", Symlink, "main.py", 0o777),
            ("app/abs", Symlink, "/requirements.txt", 0o777),
            ("app/hard", Link, "app/util.py", 0o600),
            ("secret.txt", Regular, "s3cret", 0o600),
            ("run.log", Regular, "log", 0o644),
            ("build/out.bin", Regular, "bin", 0o644),
            ("build/keep.txt", Regular, "keep", 0o644),
        ])
    }

    #[test]
    fn sources_and_checksums_are_the_disks() {
        let (index, kept, dir, disk_kept) = both(&lab(), "Dockerfile");
        assert_eq!(kept, disk_kept);
        let root = dir.path().join("ctx");
        for src in
            [".", "app", "app/", "app/*.py", "app/current", "app/abs", "requirements.txt", "build", "*", "app/lib", "./app/../app/main.py"]
        {
            let mem = index.sources(src).unwrap();
            let disk = super::super::context::sources(&root, src).unwrap();
            assert_eq!(mem, disk, "sources of {src}");
            assert_eq!(index.checksum(&mem).unwrap(), super::super::context::checksum(&root, &disk).unwrap(), "checksum of {src}");
        }
        for src in ["secret.txt", "run.log", "build/out.bin", "nope", "app/*.rs", "../x"] {
            assert_eq!(index.sources(src).unwrap_err(), super::super::context::sources(&root, src).unwrap_err(), "{src}");
        }
    }

    #[test]
    fn an_excluded_dockerfile_is_read_then_gone_as_on_the_disk() {
        use tar::EntryType::*;
        let tar = tar_of(&[
            ("Dockerfile", Regular, "FROM alpine\n", 0o644),
            (".dockerignore", Regular, "Dockerfile\n.dockerignore\n", 0o644),
            ("a.txt", Regular, "a", 0o644),
        ]);
        let (index, kept, dir, disk_kept) = both(&tar, "Dockerfile");
        assert_eq!((kept.as_deref(), disk_kept.as_deref()), (Some("FROM alpine\n"), Some("FROM alpine\n")));
        let root = dir.path().join("ctx");
        let all = index.sources(".").unwrap();
        assert_eq!(index.checksum(&all).unwrap(), super::super::context::checksum(&root, &all).unwrap());
        assert!(index.sources("Dockerfile").is_err() && index.sources(".dockerignore").is_err());
        assert_eq!(index.dockerfile("Dockerfile"), Some(None));
    }

    #[test]
    fn what_it_does_not_model_takes_the_disks_way() {
        use tar::EntryType::*;
        // A hard link to nothing it holds, a .dockerignore that is a directory.
        // (The bytes come back whole, to be unpacked.)
        let t = tar_of(&[("x", Link, "nope", 0o644)]);
        assert_eq!(ContextIndex::read(t.clone(), "Dockerfile").unwrap_err(), t);
        assert!(ContextIndex::read(tar_of(&[(".dockerignore/", Directory, "", 0o755)]), "Dockerfile").is_err());
        // A link loop is simply not found, as on the disk.
        let (index, _) = ContextIndex::read(tar_of(&[("a", Symlink, "b", 0o777), ("b", Symlink, "a", 0o777)]), "Dockerfile").unwrap();
        assert!(index.sources("a").is_err());
    }

    #[test]
    fn gzip_contexts_are_read_too() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &lab()).unwrap();
        let (index, _) = ContextIndex::read(gz.finish().unwrap(), "Dockerfile").unwrap();
        assert_eq!(index.dockerfile("Dockerfile").unwrap().unwrap(), "FROM alpine\nCOPY . /app\n");
    }
}
