//! A build step's changes as a layer: the overlay upper dir it wrote,
//! minus the mount points the runtime made, and its diff ID — the digest of
//! the layer as a tar, overlay whiteouts written as OCI `.wh.` entries.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// What the runtime creates in a container's root to mount over, if the
/// image lacks it: not part of what a RUN step made.
pub const MOUNT_POINTS: &[&str] = &["proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// `docker diff`: what a container's upper dir changed against its lower
/// layers — (path, kind) with kind 0 changed, 1 added, 2 deleted, sorted by
/// path; the runtime's own mount points are left out, as Docker does. A
/// directory overlayfs only copied up on the way to a changed child (its
/// mode, owner and mtime those of the layer's) is not a change of its own,
/// as in Docker's list.
pub fn changes(upper: &Path, lowers: &[String]) -> Vec<(String, u8)> {
    fn walk(root: &Path, dir: &Path, lowers: &[String], out: &mut Vec<(String, u8)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let Ok(m) = fs::symlink_metadata(&path) else { continue };
            let below = lowers.iter().find_map(|l| Path::new(l).join(&rel).symlink_metadata().ok());
            let in_lower = below.is_some();
            if MOUNT_POINTS.contains(&rel.as_str()) && !in_lower {
                continue;
            }
            let copied_up_only = m.is_dir()
                && below.as_ref().is_some_and(|b| {
                    b.is_dir()
                        && b.mode() == m.mode()
                        && b.uid() == m.uid()
                        && b.gid() == m.gid()
                        && b.mtime() == m.mtime()
                        && b.mtime_nsec() == m.mtime_nsec()
                })
                && !opaque(&path);
            let kind = if is_whiteout(&m) {
                2
            } else if in_lower {
                0
            } else {
                1
            };
            if !copied_up_only {
                out.push((format!("/{rel}"), kind));
            }
            if m.is_dir() {
                walk(root, &path, lowers, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(upper, upper, lowers, &mut out);
    out.sort();
    out
}

/// Removes mount points the runtime added to `upper` (when they are empty
/// and no lower layer has them), and then their parents if that leaves
/// them empty and new.
pub fn drop_mount_points(upper: &Path, lowers: &[String]) {
    let in_lower = |rel: &str| lowers.iter().any(|l| Path::new(l).join(rel).symlink_metadata().is_ok());
    for rel in MOUNT_POINTS {
        let p = upper.join(rel);
        let Ok(m) = p.symlink_metadata() else { continue };
        let empty = if m.is_dir() { fs::read_dir(&p).map(|mut d| d.next().is_none()).unwrap_or(false) } else { m.len() == 0 };
        if empty && !in_lower(rel) {
            let _ = if m.is_dir() { fs::remove_dir(&p) } else { fs::remove_file(&p) };
            if let Some((parent, _)) = rel.rsplit_once('/') {
                let pp = upper.join(parent);
                if !in_lower(parent) && fs::read_dir(&pp).map(|mut d| d.next().is_none()).unwrap_or(false) {
                    let _ = fs::remove_dir(&pp);
                }
            }
        }
    }
}

struct HashWriter {
    hash: Sha256,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn opaque(p: &Path) -> bool {
    xattr::get(p, "trusted.overlay.opaque").ok().flatten().is_some_and(|v| v == b"y")
}

fn empty_entry<W: Write>(b: &mut tar::Builder<W>, name: &Path, like: &fs::Metadata) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(like.mtime().max(0) as u64);
    h.set_cksum();
    b.append_data(&mut h, name, io::empty())
}

fn add_dir<W: Write>(b: &mut tar::Builder<W>, root: &Path, dir: &Path, size: &mut u64) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let m = fs::symlink_metadata(&path)?;
        if is_whiteout(&m) {
            let name = rel.with_file_name(format!(".wh.{}", e.file_name().to_string_lossy()));
            empty_entry(b, &name, &m)?;
            continue;
        }
        b.append_path_with_name(&path, &rel)?;
        if m.is_file() {
            *size += m.len();
        }
        if m.is_dir() {
            if opaque(&path) {
                empty_entry(b, &rel.join(".wh..wh..opq"), &m)?;
            }
            add_dir(b, root, &path, size)?;
        }
    }
    Ok(())
}

/// The layer's diff ID (`sha256:…` of its tar), its content size, and
/// whether it is empty (no entries: Docker then adds no layer).
pub fn diff_id(dir: &Path) -> io::Result<(String, u64, bool)> {
    let empty = fs::read_dir(dir)?.next().is_none();
    let (w, size) = write_tar(dir, HashWriter { hash: Sha256::new() })?;
    Ok((format!("sha256:{}", hex::encode(w.hash.finalize())), size, empty))
}

/// The layer's tar itself, as its diff ID was computed (`docker save` of a
/// layer berth made); returns the writer and the content size.
pub fn write_tar<W: Write>(dir: &Path, out: W) -> io::Result<(W, u64)> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut size = 0;
    add_dir(&mut b, dir, dir, &mut size)?;
    Ok((b.into_inner()?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dir_is_the_empty_layer() {
        let dir = tempfile::tempdir().unwrap();
        let (id, size, empty) = diff_id(dir.path()).unwrap();
        // Docker's well-known digest of an empty tar (1024 zero bytes).
        assert_eq!(id, "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
        assert_eq!((size, empty), (0, true));
    }

    #[test]
    fn content_changes_the_diff_id_and_counts_in_the_size() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("app")).unwrap();
        fs::write(dir.path().join("app/main.py"), "print(1)\n").unwrap();
        let (a, size, empty) = diff_id(dir.path()).unwrap();
        assert_eq!((size, empty), (9, false));
        assert_eq!(diff_id(dir.path()).unwrap().0, a, "the same tree gives the same digest");
        fs::write(dir.path().join("app/main.py"), "print(2)\n").unwrap();
        assert_ne!(diff_id(dir.path()).unwrap().0, a);
    }

    #[test]
    fn changes_say_added_changed_or_deleted_against_the_lower_layers() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        fs::create_dir_all(upper.join("usr/share/nginx/html")).unwrap();
        fs::create_dir_all(lower.join("usr/share/nginx/html")).unwrap();
        fs::write(lower.join("usr/share/nginx/html/index.html"), "old").unwrap();
        fs::write(upper.join("usr/share/nginx/html/index.html"), "new").unwrap();
        fs::write(upper.join("usr/share/nginx/html/new.html"), "x").unwrap();
        fs::create_dir_all(upper.join("proc")).unwrap();
        // The image's directories are older than the container's changes.
        for d in ["usr/share/nginx/html", "usr/share/nginx", "usr/share", "usr"] {
            let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
            fs::File::open(lower.join(d)).unwrap().set_modified(old).unwrap();
        }
        let got = changes(&upper, &[lower.display().to_string()]);
        assert_eq!(
            got,
            vec![
                ("/usr".to_string(), 0),
                ("/usr/share".to_string(), 0),
                ("/usr/share/nginx".to_string(), 0),
                ("/usr/share/nginx/html".to_string(), 0),
                ("/usr/share/nginx/html/index.html".to_string(), 0),
                ("/usr/share/nginx/html/new.html".to_string(), 1),
            ]
        );
    }

    #[test]
    fn directories_only_copied_up_on_the_way_to_a_change_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        fs::create_dir_all(lower.join("etc/nginx/conf.d")).unwrap();
        fs::write(lower.join("etc/nginx/conf.d/default.conf"), "old").unwrap();
        fs::create_dir_all(upper.join("etc/nginx/conf.d")).unwrap();
        fs::write(upper.join("etc/nginx/conf.d/default.conf"), "new").unwrap();
        // As overlayfs copies a directory up: its mtime kept (deepest first).
        for d in ["etc/nginx/conf.d", "etc/nginx", "etc"] {
            let t = fs::metadata(lower.join(d)).unwrap().modified().unwrap();
            fs::File::open(upper.join(d)).unwrap().set_modified(t).unwrap();
        }
        let got = changes(&upper, &[lower.display().to_string()]);
        assert_eq!(got, vec![("/etc/nginx/conf.d/default.conf".to_string(), 0)]);
        // A file added to a directory changes it (its mtime moves).
        fs::write(upper.join("etc/nginx/conf.d/extra.conf"), "x").unwrap();
        let got = changes(&upper, &[lower.display().to_string()]);
        assert_eq!(
            got,
            vec![
                ("/etc/nginx/conf.d".to_string(), 0),
                ("/etc/nginx/conf.d/default.conf".to_string(), 0),
                ("/etc/nginx/conf.d/extra.conf".to_string(), 1)
            ]
        );
    }

    #[test]
    fn runtime_mount_points_are_dropped_unless_the_image_had_them() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        for d in ["proc", "sys", "dev", "etc", "tmp"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::write(upper.join("etc/resolv.conf"), "").unwrap();
        fs::write(upper.join("tmp/made-by-run"), "x").unwrap();
        fs::create_dir_all(lower.join("sys")).unwrap();
        drop_mount_points(&upper, &[lower.display().to_string()]);
        assert!(!upper.join("proc").exists() && !upper.join("dev").exists() && !upper.join("etc").exists());
        assert!(upper.join("sys").exists(), "the image had /sys: kept as the copy-up it is");
        assert!(upper.join("tmp/made-by-run").exists());
    }
}
