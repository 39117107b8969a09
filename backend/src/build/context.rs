//! The build context: the tar the client sends (plain or gzip), unpacked
//! into a scratch dir with `.dockerignore` applied, and the lookups COPY
//! needs on it — sources (globs included), kept inside the context, and a
//! checksum of their content for the build cache.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobMatcher};
use sha2::{Digest, Sha256};

use super::copy::fd_path;

/// `.dockerignore` patterns, in order; `!` marks an exception.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<(GlobMatcher, bool)>,
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
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (negate, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let pat = clean(pat);
            if pat.is_empty() {
                continue;
            }
            let glob = globset::GlobBuilder::new(&pat).literal_separator(true).build().map_err(|e| format!("invalid .dockerignore pattern {l:?}: {e}"))?;
            patterns.push((glob.compile_matcher(), negate));
        }
        Ok(Ignore { patterns })
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
        let mut out = false;
        for (m, negate) in &self.patterns {
            if parents.iter().any(|p| m.is_match(p)) {
                out = !negate;
            }
        }
        out
    }

    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, n)| *n)
    }
}

/// Unpacks the context tar at `archive` into `dest` (which must exist) and
/// removes what `.dockerignore` excludes (never the Dockerfile itself).
pub fn unpack(archive: &Path, dest: &Path, dockerfile: &str) -> Result<(), String> {
    let mut f = fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    let f = fs::File::open(archive).map_err(|e| e.to_string())?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(false);
    for entry in ar.entries().map_err(|e| format!("reading the build context: {e}"))? {
        let mut entry = entry.map_err(|e| format!("reading the build context: {e}"))?;
        // unpack_in refuses entries that would land outside dest.
        entry.unpack_in(dest).map_err(|e| format!("unpacking the build context: {e}"))?;
    }
    let ignore = match fs::read_to_string(dest.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t)?,
        Err(_) => return Ok(()),
    };
    prune(dest, dest, &ignore, &clean(dockerfile)).map_err(|e| format!("applying .dockerignore: {e}"))
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

/// The context paths a COPY source names: itself, or every path its glob
/// matches. Relative to the context; `..` may not leave it.
pub fn sources(root: &Path, src: &str) -> Result<Vec<PathBuf>, String> {
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
        let rootfs = pathrs::Root::open(root).map_err(|e| e.to_string())?;
        if cleaned.is_empty() || rootfs.resolve(&cleaned).is_ok() {
            return Ok(vec![PathBuf::from(cleaned)]);
        }
        return Err(format!("file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"));
    }
    let glob: GlobMatcher = Glob::new(&cleaned).map_err(|e| format!("invalid source pattern {src}: {e}"))?.compile_matcher();
    let glob = globset::GlobBuilder::new(&cleaned).literal_separator(true).build().map(|g| g.compile_matcher()).unwrap_or(glob);
    let mut out = Vec::new();
    walk(root, root, &mut |rel| {
        if glob.is_match(rel) {
            out.push(rel.to_path_buf());
        }
    })
    .map_err(|e| e.to_string())?;
    if out.is_empty() {
        return Err(format!("no source files were specified: {src} matches nothing in the build context"));
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
    h.update(format!("\0{:o}\0{}\0", m.mode(), m.len()).as_bytes());
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

    #[test]
    fn a_context_tar_is_unpacked_and_dockerignore_applied() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("ctx.tar");
        {
            let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
            let mut add = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            };
            add("Dockerfile", b"FROM alpine\n");
            add(".dockerignore", b"secret.txt\nDockerfile\n");
            add("secret.txt", b"s3cret");
            add("app.py", b"print(1)");
            b.finish().unwrap();
        }
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        unpack(&tar_path, &out, "Dockerfile").unwrap();
        assert!(out.join("app.py").exists() && out.join("Dockerfile").exists());
        assert!(!out.join("secret.txt").exists());
    }
}
