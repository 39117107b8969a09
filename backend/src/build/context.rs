//! The build context: the tar the client sends (plain or gzip), unpacked
//! into a scratch dir with `.dockerignore` applied, and the lookups COPY
//! needs on it — sources (globs included), kept inside the context, and a
//! checksum of their content for the build cache.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

use crate::storage::copy::fd_path;
use crate::text::excerpt;

/// The most `.dockerignore` may hold: it is read whole into memory, and
/// each pattern is matched against every path of the context.
pub const MAX_DOCKERIGNORE: u64 = 1024 * 1024;
/// The most a Dockerfile may hold.
pub const MAX_DOCKERFILE: u64 = 4 * 1024 * 1024;
/// The longest `.dockerignore` pattern: a glob is compiled to a regex, and a
/// huge one costs memory and time out of all proportion (a 20 MB line made
/// the daemon grow by gigabytes and panic).
pub const MAX_PATTERN: usize = 4096;

/// `.dockerignore` patterns, in order; `!` marks an exception.
#[derive(Debug, Default)]
pub struct Ignore {
    /// All the patterns: a path's matches come back as indexes, the highest wins.
    set: GlobSet,
    negate: Vec<bool>,
}

/// Cleans a pattern or path as Go's filepath.Clean would, without a
/// leading slash.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    parts.join("/")
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = GlobSetBuilder::new();
        let mut negate = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (is_negated, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            if pat.len() > MAX_PATTERN {
                return Err(format!(
                    ".dockerignore line {}: a pattern may be at most {MAX_PATTERN} bytes long (this one is {}: {:?})",
                    n + 1,
                    pat.len(),
                    excerpt(pat, 40)
                ));
            }
            let pat = clean(pat);
            if pat.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(&pat).literal_separator(true).build().map_err(|e| {
                format!(".dockerignore line {}: invalid pattern {:?}: {}", n + 1, excerpt(l, 80), excerpt(&e.kind().to_string(), 120))
            })?;
            set.add(glob);
            negate.push(is_negated);
        }
        let set = set.build().map_err(|e| format!("invalid .dockerignore: {}", excerpt(&e.to_string(), 200)))?;
        Ok(Ignore { set, negate })
    }

    /// Is `rel` (a path in the context) excluded? The last pattern that
    /// matches it or one of its parent dirs decides.
    pub fn ignored(&self, rel: &str) -> bool {
        let rel = clean(rel);
        let mut parents = vec![rel.clone()];
        let mut p = rel.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            parents.push(parent.to_string());
            p = parent;
        }
        let last = parents.iter().filter_map(|p| self.set.matches(p).into_iter().max()).max();
        last.is_some_and(|i| !self.negate[i])
    }

    pub fn has_exceptions(&self) -> bool {
        self.negate.iter().any(|n| *n)
    }
}

/// Unpacks the context tar at `archive` into `dest` (which must exist) and
/// removes what `.dockerignore` excludes. The Dockerfile and `.dockerignore`
/// are read even when excluded, then removed as Docker removes them (a
/// `COPY . /app` must not find them): the Dockerfile's text comes back then.
pub fn unpack(archive: &Path, dest: &Path, dockerfile: &str) -> Result<Option<String>, String> {
    let f = fs::File::open(archive).map_err(|e| e.to_string())?;
    unpack_from(io::BufReader::new(f), dest, dockerfile)
}

/// [`unpack`] from a reader (plain or gzip tar).
pub fn unpack_from(mut reader: impl io::BufRead, dest: &Path, dockerfile: &str) -> Result<Option<String>, String> {
    let gzip = reader.fill_buf().map_err(|e| e.to_string())?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(reader)) } else { Box::new(reader) };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(false);
    for entry in ar.entries().map_err(|e| format!("reading the build context: {e}"))? {
        let mut entry = entry.map_err(|e| format!("reading the build context: {e}"))?;
        // unpack_in refuses entries that would land outside dest.
        entry.unpack_in(dest).map_err(|e| format!("unpacking the build context: {e}"))?;
    }
    let ignore = match read_inside(dest, ".dockerignore", MAX_DOCKERIGNORE)? {
        Some(t) => Ignore::parse(&t)?,
        None => return Ok(None),
    };
    let dockerfile = clean(dockerfile);
    prune(dest, dest, &ignore, &dockerfile).map_err(|e| format!("applying .dockerignore: {e}"))?;
    let mut kept = None;
    if ignore.ignored(&dockerfile) {
        kept = read_inside(dest, &dockerfile, MAX_DOCKERFILE)?;
        remove_inside(dest, &dockerfile)?;
    }
    if ignore.ignored(".dockerignore") {
        remove_inside(dest, ".dockerignore")?;
    }
    Ok(kept)
}

/// A build's context: unpacked on the disk, or held in memory as its tar's
/// index (see index.rs), unpacked only when a step needs its files.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    index: Option<super::index::ContextIndex>,
    dockerfile: String,
    unpacked: std::sync::Mutex<Option<Result<(), String>>>,
}

impl Context {
    /// A context already unpacked at `dir`.
    pub fn on_disk(dir: PathBuf) -> Self {
        Context { dir, index: None, dockerfile: String::new(), unpacked: std::sync::Mutex::new(Some(Ok(()))) }
    }

    /// A context held in memory, to be unpacked at `dir` if a step needs it.
    pub fn in_memory(dir: PathBuf, index: super::index::ContextIndex, dockerfile: &str) -> Self {
        Context { dir, index: Some(index), dockerfile: dockerfile.into(), unpacked: std::sync::Mutex::new(None) }
    }

    /// Is it held in memory (not unpacked yet)?
    pub fn in_memory_only(&self) -> bool {
        self.unpacked.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The Dockerfile's text (None: not in the context).
    pub fn read_dockerfile(&self, rel: &str) -> Result<Option<String>, String> {
        match &self.index {
            Some(i) => match i.dockerfile(rel) {
                Some(t) => Ok(t),
                None => read_inside(self.files()?, rel, MAX_DOCKERFILE),
            },
            None => read_inside(&self.dir, rel, MAX_DOCKERFILE),
        }
    }

    /// The paths a COPY source names.
    pub fn sources(&self, src: &str) -> Result<Vec<PathBuf>, String> {
        match &self.index {
            Some(i) => i.sources(src),
            None => sources(&self.dir, src),
        }
    }

    /// The checksum of what the sources hold.
    pub fn checksum(&self, rels: &[PathBuf]) -> Result<String, String> {
        match &self.index {
            Some(i) => i.checksum(rels),
            None => checksum(&self.dir, rels),
        }
    }

    /// The context's files on the disk, unpacked now if they were not yet
    /// (once: the first step that copies from it).
    pub fn files(&self) -> Result<&Path, String> {
        let mut done = self.unpacked.lock().unwrap_or_else(|p| p.into_inner());
        if done.is_none() {
            let r = match &self.index {
                Some(i) => fs::create_dir_all(&self.dir)
                    .map_err(|e| e.to_string())
                    .and_then(|_| unpack_from(i.tar(), &self.dir, &self.dockerfile))
                    .map(|_| ()),
                None => Ok(()),
            };
            *done = Some(r);
        }
        done.clone().unwrap_or(Ok(())).map(|_| self.dir.as_path())
    }
}

/// Removes one file of the context (resolved inside it, never outside).
fn remove_inside(root: &Path, rel: &str) -> Result<(), String> {
    let rootfs = pathrs::Root::open(root).map_err(|e| format!("opening the build context: {e}"))?;
    match rootfs.remove_file(rel) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind(), pathrs::error::ErrorKind::OsError(Some(libc::ENOENT))) => Ok(()),
        Err(e) => Err(format!("removing {} from the build context: {e}", excerpt(rel, 100))),
    }
}

/// Reads a small text file of the context (`.dockerignore`, the
/// Dockerfile): resolved inside the context (a symlink is followed only as
/// far as the context goes: `/etc/passwd` means `<context>/etc/passwd`), a
/// regular file, at most `max` bytes. None if it is not there.
pub fn read_inside(root: &Path, rel: &str, max: u64) -> Result<Option<String>, String> {
    let shown = excerpt(rel, 100);
    let rootfs = pathrs::Root::open(root).map_err(|e| format!("opening the build context: {e}"))?;
    let handle = match rootfs.resolve(rel) {
        Ok(h) => h,
        Err(_) => return Ok(None),
    };
    let file = handle.reopen(pathrs::flags::OpenFlags::O_RDONLY).map_err(|e| format!("opening {shown}: {e}"))?;
    let m = file.metadata().map_err(|e| format!("reading {shown}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{shown} in the build context is not a regular file"));
    }
    if m.len() > max {
        return Err(format!("{shown} is {} bytes: more than the {max} bytes berth reads", m.len()));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("reading {shown}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{shown} is more than the {max} bytes berth reads"));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| format!("{shown} is not UTF-8 text"))
}

fn prune(root: &Path, dir: &Path, ignore: &Ignore, dockerfile: &str) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().to_string();
        if rel == dockerfile || rel == ".dockerignore" {
            continue;
        }
        let is_dir = e.file_type()?.is_dir();
        if ignore.ignored(&rel) {
            if is_dir && ignore.has_exceptions() {
                prune(root, &path, ignore, dockerfile)?;
                if fs::read_dir(&path)?.next().is_none() {
                    fs::remove_dir(&path)?;
                }
            } else if is_dir {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        } else if is_dir {
            prune(root, &path, ignore, dockerfile)?;
        }
    }
    Ok(())
}

/// Error for a source outside the context.
fn outside(src: &str) -> String {
    format!("forbidden path outside the build context: {src} ()")
}

/// A COPY source as the context's lookups take it: checked not to leave the
/// context, cleaned, and its glob if it is one. (The disk's [`sources`] and
/// the index's share it.)
pub(super) fn source_pattern(src: &str) -> Result<(String, Option<GlobMatcher>), String> {
    let mut depth: i32 = 0;
    for c in Path::new(src).components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(outside(src));
        }
    }
    let cleaned = clean(src);
    if !src.contains(['*', '?', '[']) {
        return Ok((cleaned, None));
    }
    let glob: GlobMatcher = Glob::new(&cleaned).map_err(|e| format!("invalid source pattern {src}: {e}"))?.compile_matcher();
    let glob = globset::GlobBuilder::new(&cleaned).literal_separator(true).build().map(|g| g.compile_matcher()).unwrap_or(glob);
    Ok((cleaned, Some(glob)))
}

/// A source that names nothing.
pub(super) fn not_found(src: &str) -> String {
    format!("file not found in build context or excluded by .dockerignore: stat {src}: file does not exist")
}

/// A glob that matches nothing.
pub(super) fn no_match(src: &str) -> String {
    format!("no source files were specified: {src} matches nothing in the build context")
}

/// The context paths a COPY source names: itself, or every path its glob
/// matches. Relative to the context; `..` may not leave it.
pub fn sources(root: &Path, src: &str) -> Result<Vec<PathBuf>, String> {
    let (cleaned, glob) = source_pattern(src)?;
    let Some(glob) = glob else {
        let rootfs = pathrs::Root::open(root).map_err(|e| e.to_string())?;
        if cleaned.is_empty() || rootfs.resolve(&cleaned).is_ok() {
            return Ok(vec![PathBuf::from(cleaned)]);
        }
        return Err(not_found(src));
    };
    let mut out = Vec::new();
    walk(root, root, &mut |rel| {
        if glob.is_match(rel) {
            out.push(rel.to_path_buf());
        }
    })
    .map_err(|e| e.to_string())?;
    if out.is_empty() {
        return Err(no_match(src));
    }
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path)) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        f(rel);
        if e.file_type()?.is_dir() {
            walk(root, &path, f)?;
        }
    }
    Ok(())
}

/// A context-relative path as pathrs takes it ("" is the root itself).
pub fn in_root(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// A checksum of what the sources hold (paths, kinds, modes, contents,
/// link targets), for the build cache: the same content gives the same sum.
pub fn checksum(root: &Path, rels: &[PathBuf]) -> Result<String, String> {
    let rootfs = pathrs::Root::open(root).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    for rel in rels {
        let handle = rootfs.resolve(in_root(rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
        let top = fd_path(&handle);
        let m = fs::metadata(&top).map_err(|e| format!("{}: {e}", rel.display()))?;
        hash_entry(&mut h, &top, rel, m).map_err(|e| format!("{}: {e}", rel.display()))?;
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_entry(h: &mut Sha256, path: &Path, rel: &Path, m: fs::Metadata) -> io::Result<()> {
    h.update(rel.to_string_lossy().as_bytes());
    // A directory's size is the filesystem's, not its content: 0, as the
    // in-memory index (index.rs) hashes it.
    let len = if m.is_dir() { 0 } else { m.len() };
    h.update(format!("\0{:o}\0{len}\0", m.mode()).as_bytes());
    if m.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(path)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            hash_entry(h, &p, &rel.join(e.file_name()), fs::symlink_metadata(&p)?)?;
        }
    } else if m.is_file() {
        let mut f = fs::File::open(path)?;
        io::copy(&mut f, h)?;
    } else if m.file_type().is_symlink() {
        h.update(fs::read_link(path)?.to_string_lossy().as_bytes());
    }
    h.update(b"\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_excludes_with_parents_globs_and_exceptions() {
        let i = Ignore::parse("# comment\n*.pyc\n/data\n**/__pycache__\nlogs/*\n!logs/keep.log\n").unwrap();
        assert!(i.ignored("app.pyc"));
        assert!(!i.ignored("sub/app.pyc"), "* does not cross directories");
        assert!(i.ignored("data/big.bin"), "a dir excludes what it holds");
        assert!(i.ignored("pkg/mod/__pycache__/x.cpython.pyc"));
        assert!(i.ignored("logs/today.log"));
        assert!(!i.ignored("logs/keep.log"));
        assert!(!i.ignored("app.py"));
    }

    fn context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        fs::create_dir_all(c.join("app/static")).unwrap();
        fs::write(c.join("requirements.txt"), "flask\n").unwrap();
        fs::write(c.join("app/main.py"), "print(1)").unwrap();
        fs::write(c.join("app/util.py"), "x = 1").unwrap();
        fs::write(c.join("app/static/s.css"), "body{}").unwrap();
        dir
    }

    #[test]
    fn sources_stay_in_the_context_and_globs_match_within_a_directory() {
        let dir = context();
        let c = dir.path();
        assert_eq!(sources(c, "./requirements.txt").unwrap(), vec![PathBuf::from("requirements.txt")]);
        assert_eq!(sources(c, ".").unwrap(), vec![PathBuf::from("")]);
        assert_eq!(sources(c, "app/*.py").unwrap(), vec![PathBuf::from("app/main.py"), PathBuf::from("app/util.py")]);
        assert!(sources(c, "../etc/passwd").unwrap_err().contains("outside the build context"));
        assert!(sources(c, "app/../../x").unwrap_err().contains("outside the build context"));
        assert!(sources(c, "missing.txt").unwrap_err().contains("file not found in build context"));
        assert!(sources(c, "*.nope").unwrap_err().contains("no source files"));
    }

    #[test]
    fn the_checksum_follows_content_not_timestamps() {
        let dir = context();
        let c = dir.path();
        let req = [PathBuf::from("requirements.txt")];
        let all = [PathBuf::from("")];
        let (r1, a1) = (checksum(c, &req).unwrap(), checksum(c, &all).unwrap());
        fs::write(c.join("app/main.py"), "print(2)").unwrap();
        assert_eq!(checksum(c, &req).unwrap(), r1, "an app edit leaves the requirements layer's key alone");
        assert_ne!(checksum(c, &all).unwrap(), a1);
        let f = fs::File::open(c.join("requirements.txt")).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(checksum(c, &req).unwrap(), r1);
    }

    /// A tar file of regular files (mode 0644).
    fn tar_file(path: &Path, files: &[(&str, Vec<u8>)]) {
        let mut b = tar::Builder::new(fs::File::create(path).unwrap());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.finish().unwrap();
    }

    #[test]
    fn a_context_tar_is_unpacked_and_dockerignore_applied() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("ctx.tar");
        tar_file(
            &tar_path,
            &[
                ("Dockerfile", b"FROM alpine\n".to_vec()),
                (".dockerignore", b"secret.txt\nDockerfile\n".to_vec()),
                ("secret.txt", b"s3cret".to_vec()),
                ("app.py", b"print(1)".to_vec()),
            ],
        );
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        // The Dockerfile was excluded: read, then gone from the context.
        assert_eq!(unpack(&tar_path, &out, "Dockerfile").unwrap().as_deref(), Some("FROM alpine\n"));
        assert!(out.join("app.py").exists() && !out.join("Dockerfile").exists());
        assert!(!out.join("secret.txt").exists() && out.join(".dockerignore").exists());
    }

    /// Where a cached build's unpack time goes (not a test: `cargo test
    /// -p berth-backend unpack_timing -- --ignored --nocapture`): the
    /// benchmark's lab-shaped context, 52 files in two dirs.
    #[test]
    #[ignore]
    fn unpack_timing() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let tar_path = dir.path().join("ctx.tar");
        let mut files =
            vec![("Dockerfile".to_string(), b"FROM alpine\nCOPY . .\n".to_vec()), ("requirements.txt".into(), b"flask\n".to_vec())];
        files.extend((0..50).map(|i| (format!("app/module{i}.py"), vec![b'x'; 5500])));
        tar_file(&tar_path, &files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect::<Vec<_>>());
        let mut times = Vec::new();
        for i in 0..20 {
            let out = dir.path().join(format!("out{i}"));
            fs::create_dir_all(&out).unwrap();
            let t = std::time::Instant::now();
            unpack(&tar_path, &out, "Dockerfile").unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        eprintln!("in order: {times:.1?}");
        times.sort_by(f64::total_cmp);
        eprintln!("unpack of 52 files: median {:.2} ms, min {:.2} ms, all {times:.1?}", times[10], times[0]);
    }

    /// A context tar with a Dockerfile, a file, and `.dockerignore` as a
    /// symlink to `target`.
    fn tar_with_ignore_link(dir: &Path, target: &Path) -> PathBuf {
        let tar_path = dir.join("ctx.tar");
        let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
        for (name, data) in [("Dockerfile", &b"FROM scratch\n"[..]), ("app.py", b"print(1)")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, ".dockerignore", target).unwrap();
        b.finish().unwrap();
        tar_path
    }

    #[test]
    fn a_dockerignore_linked_to_a_host_file_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        // The host file ignores everything, and holds a bad pattern with a
        // secret: followed out of the context, the context would be emptied
        // or the error would echo the secret.
        let host = dir.path().join("host-file");
        fs::write(&host, "*\n[HOST-SECRET\n").unwrap();
        let tar_path = tar_with_ignore_link(dir.path(), &host);
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let r = unpack(&tar_path, &out, "Dockerfile");
        assert!(r.is_ok(), "{r:?}");
        assert!(out.join("app.py").exists(), "the host file's patterns were not applied");
        // Resolved inside the context, the same link names the context's own file.
        fs::create_dir_all(out.join(host.parent().unwrap().strip_prefix("/").unwrap())).unwrap();
        fs::write(out.join(host.strip_prefix("/").unwrap()), "app.py\n").unwrap();
        assert_eq!(read_inside(&out, ".dockerignore", MAX_DOCKERIGNORE).unwrap().as_deref(), Some("app.py\n"));
    }

    #[test]
    fn a_huge_dockerignore_is_refused_with_a_short_message() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path();
        fs::write(c.join(".dockerignore"), format!("[{}\n", "A".repeat(2 * 1024 * 1024))).unwrap();
        let e = read_inside(c, ".dockerignore", MAX_DOCKERIGNORE).unwrap_err();
        assert!(e.contains("more than the 1048576 bytes") && e.len() < 200, "{e}");
        // Under the cap, a long bad pattern is named by an excerpt only.
        let e = Ignore::parse(&format!("ok\n[{}\n", "B".repeat(100_000))).unwrap_err();
        assert!(e.starts_with(".dockerignore line 2:") && e.len() < 300, "{}", &e[..e.len().min(300)]);
        let e = Ignore::parse(&format!("[{}\n", "C".repeat(1000))).unwrap_err();
        assert!(e.starts_with(".dockerignore line 1: invalid pattern") && e.len() < 300, "{e}");
        // A directory named .dockerignore, or a Dockerfile that is a fifo, is not read.
        fs::remove_file(c.join(".dockerignore")).unwrap();
        fs::create_dir(c.join(".dockerignore")).unwrap();
        assert!(read_inside(c, ".dockerignore", MAX_DOCKERIGNORE).unwrap_err().contains("not a regular file"));
        assert_eq!(read_inside(c, "missing", MAX_DOCKERFILE).unwrap(), None);
    }

    #[test]
    fn many_dockerignore_patterns_match_in_one_pass() {
        let mut text = String::new();
        for i in 0..2_000 {
            text.push_str(&format!("dir{i}/*.tmp\n"));
        }
        text.push_str("!dir7/keep.tmp\n");
        let start = std::time::Instant::now();
        let i = Ignore::parse(&text).unwrap();
        for n in 0..200 {
            assert!(i.ignored(&format!("dir{n}/x.tmp")));
        }
        assert!(!i.ignored("dir7/keep.tmp") && !i.ignored("dir7/x.txt"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    }
}
