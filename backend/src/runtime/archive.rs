//! `docker cp`'s file side: `berthd __berth-archive <spec>` stats, reads
//! (as a tar) or writes (from a tar) a path of a container's filesystem
//! from inside it.
//!
//! The helper joins the running container's mount namespace — so what it
//! sees is what the container's processes see, volumes and bind mounts
//! included, and every path and symlink resolves inside the container, never
//! on the host — or, for a stopped container, mounts its overlay in a mount
//! namespace of its own and chroots there.
//!
//! Protocol on stdout: one JSON line (`{"status": 200, "stat": …}` or
//! `{"status": 404, "message": …}`), then for a read the tar. A write reads
//! the tar on stdin and answers with the line once it is extracted.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where the container's filesystem is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Target {
    /// A running container: its PID 1's mount namespace.
    Running { pid: i32 },
    /// A stopped one: its overlay (options, and the dir to mount it on).
    Stopped { options: String, merged: PathBuf },
    /// The root filesystem alone, as mounted for the running container in
    /// berthd's mount namespace (no volumes, no /proc): what `docker
    /// export` writes.
    Merged { merged: PathBuf },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    Stat {
        path: String,
    },
    Get {
        path: String,
    },
    Put {
        path: String,
        keep_owner: bool,
        no_overwrite_dir_non_dir: bool,
    },
    /// The whole root as a tar, entries named from it (`bin/sh`).
    Export,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchiveSpec {
    pub target: Target,
    pub op: Op,
}

/// Go's `os.FileMode` bits, which the docker CLI reads from the stat.
fn go_mode(m: &fs::Metadata) -> u32 {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    let mut mode = m.mode() & 0o777;
    if t.is_dir() {
        mode |= 1 << 31;
    } else if t.is_symlink() {
        mode |= 1 << 27;
    } else if t.is_block_device() {
        mode |= 1 << 26;
    } else if t.is_char_device() {
        mode |= (1 << 26) | (1 << 21);
    } else if t.is_fifo() {
        mode |= 1 << 25;
    } else if t.is_socket() {
        mode |= 1 << 24;
    }
    let raw = m.mode();
    if raw & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// Docker's `PathStat` of `path` (the last component not followed).
pub fn stat(path: &Path) -> io::Result<Value> {
    let m = fs::symlink_metadata(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into());
    let link = if m.file_type().is_symlink() { fs::read_link(path)?.to_string_lossy().into_owned() } else { String::new() };
    let mtime = crate::ids::format_rfc3339(m.mtime(), m.mtime_nsec() as u32);
    Ok(json!({"name": name, "size": m.len(), "mode": go_mode(&m), "mtime": mtime, "linkTarget": link}))
}

/// The tar `docker cp` reads: `path` under its own name (a directory with
/// everything below it, symlinks as links).
pub fn write_tar(path: &Path, out: impl Write) -> io::Result<()> {
    let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    if fs::symlink_metadata(path)?.is_dir() {
        b.append_dir_all(&name, path)?;
    } else {
        b.append_path_with_name(path, &name)?;
    }
    b.into_inner()?.flush()
}

/// The tar of a whole root filesystem (`docker export`): every entry
/// named relative to the root, in name order.
pub fn write_root_tar(root: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut entries: Vec<_> = fs::read_dir(root)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (path, name) = (e.path(), PathBuf::from(e.file_name()));
        if fs::symlink_metadata(&path)?.is_dir() {
            b.append_dir_all(&name, &path)?;
        } else {
            b.append_path_with_name(&path, &name)?;
        }
    }
    b.into_inner()?.flush()
}

/// Why a write was refused: (HTTP status, Docker's message).
type Refusal = (u16, String);

/// Extracts a tar into the directory `dest`, as Docker's PUT archive does:
/// entries own by root unless `keep_owner`; with `no_overwrite`, a
/// directory is never replaced by a non-directory or the reverse.
pub fn extract(dest: &Path, input: impl Read, keep_owner: bool, no_overwrite: bool) -> Result<(), Refusal> {
    let bad = |e: io::Error| (400, e.to_string());
    let mut ar = tar::Archive::new(input);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(keep_owner);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let rel = entry.path().map_err(bad)?.into_owned();
        if no_overwrite {
            // (Components: a directory entry's trailing slash would make a
            // file in its place unreadable as such.)
            let at = dest.join(rel.components().collect::<PathBuf>());
            let new_is_dir = entry.header().entry_type().is_dir();
            if let Ok(m) = fs::symlink_metadata(&at) {
                if m.is_dir() && !new_is_dir {
                    return Err((
                        400,
                        format!(
                            "cannot overwrite directory {:?} with non-directory {:?}",
                            at.display().to_string(),
                            rel.display().to_string()
                        ),
                    ));
                }
                if !m.is_dir() && new_is_dir {
                    return Err((
                        400,
                        format!(
                            "cannot overwrite non-directory {:?} with directory {:?}",
                            at.display().to_string(),
                            rel.display().to_string()
                        ),
                    ));
                }
            }
        }
        let done = entry.unpack_in(dest).map_err(|e| {
            // The cause is below tar's own "failed to unpack".
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                if s.to_string().contains("Read-only file system") {
                    return (400, "container rootfs is marked read-only".to_string());
                }
                why = format!("{why}: {s}");
                src = s.source();
            }
            (400, format!("extracting {}: {why}", rel.display()))
        })?;
        if !done {
            return Err((400, format!("refusing {}: it would land outside {}", rel.display(), dest.display())));
        }
        if !keep_owner && entry.header().entry_type().is_dir() {
            // (unpack_in keeps a directory's mode: Docker gives it too.)
            let _ = fs::set_permissions(dest.join(&rel), fs::Permissions::from_mode(entry.header().mode().unwrap_or(0o755) & 0o7777));
        }
    }
    Ok(())
}

fn enter(target: &Target) -> Result<(), String> {
    use nix::mount::MsFlags;
    use nix::sched::CloneFlags;
    match target {
        Target::Running { pid } => {
            let ns = fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(|e| format!("the container's process {pid} is gone: {e}"))?;
            // Joining a mount namespace sets root and cwd to its root.
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS).map_err(|e| format!("joining the container's mount namespace: {e}"))
        }
        Target::Merged { merged } => {
            nix::unistd::chroot(merged).map_err(|e| format!("chroot: {e}"))?;
            nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))
        }
        Target::Stopped { options, merged } => {
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
            nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(|e| format!("making mounts private: {e}"))?;
            nix::mount::mount(Some("overlay"), merged, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
                .map_err(|e| format!("mounting the container's overlay: {e}"))?;
            nix::unistd::chroot(merged).map_err(|e| format!("chroot: {e}"))?;
            nix::unistd::chdir("/").map_err(|e| format!("chdir: {e}"))
        }
    }
}

fn not_found(path: &str) -> (u16, String) {
    (404, format!("Could not find the file {path} in container"))
}

fn run(spec: &ArchiveSpec, out: &mut impl Write) -> Result<(), (u16, String)> {
    enter(&spec.target).map_err(|e| (500, e))?;
    let line = |out: &mut dyn Write, v: Value| -> Result<(), (u16, String)> { writeln!(out, "{v}").map_err(|e| (500, e.to_string())) };
    match &spec.op {
        Op::Stat { path } => {
            let s = stat(Path::new(path)).map_err(|_| not_found(path))?;
            line(out, json!({"status": 200, "stat": s}))
        }
        Op::Get { path } => {
            let s = stat(Path::new(path)).map_err(|_| not_found(path))?;
            line(out, json!({"status": 200, "stat": s}))?;
            // The answer has begun: a failure now can only cut the tar short.
            write_tar(Path::new(path), &mut *out).map_err(|e| (0, e.to_string()))
        }
        Op::Export => {
            line(out, json!({"status": 200, "stat": null}))?;
            write_root_tar(Path::new("/"), &mut *out).map_err(|e| (0, e.to_string()))
        }
        Op::Put { path, keep_owner, no_overwrite_dir_non_dir } => {
            let m = fs::metadata(path).map_err(|_| not_found(path))?;
            if !m.is_dir() {
                return Err((400, "extraction point is not a directory".into()));
            }
            extract(Path::new(path), io::stdin().lock(), *keep_owner, *no_overwrite_dir_non_dir)?;
            line(out, json!({"status": 200}))
        }
    }
}

/// `__berth-archive`: never returns.
pub fn archive_main(spec_path: &str) -> ! {
    let mut out = BufWriter::new(io::stdout().lock());
    let spec: Result<ArchiveSpec, String> =
        fs::read(spec_path).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    let r = spec.map_err(|e| (500, format!("reading the archive spec: {e}"))).and_then(|s| run(&s, &mut out));
    let code = match r {
        Ok(()) => 0,
        Err((0, e)) => {
            let _ = writeln!(io::stderr(), "berth: {e}");
            1
        }
        Err((status, message)) => {
            let _ = writeln!(out, "{}", json!({"status": status, "message": message}));
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_speaks_gos_file_modes_as_the_cli_reads_them() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "hello").unwrap();
        fs::set_permissions(d.path().join("f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l")).unwrap();
        let f = stat(&d.path().join("f")).unwrap();
        assert_eq!((f["name"].as_str(), f["size"].as_u64(), f["mode"].as_u64()), (Some("f"), Some(5), Some(0o640)));
        let dir = stat(d.path()).unwrap();
        assert_eq!(dir["mode"].as_u64().unwrap() >> 31, 1, "ModeDir");
        let l = stat(&d.path().join("l")).unwrap();
        assert_eq!((l["linkTarget"].as_str(), l["mode"].as_u64().unwrap() & (1 << 27) != 0), (Some("/etc/passwd"), true));
    }

    #[test]
    fn a_tar_round_trips_under_the_paths_own_name_and_no_overwrite_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("html");
        fs::create_dir_all(src.join("img")).unwrap();
        fs::write(src.join("index.html"), "<h1>hi</h1>").unwrap();
        fs::write(src.join("img/a.png"), [1u8, 2, 3]).unwrap();
        let mut tar = Vec::new();
        write_tar(&src, &mut tar).unwrap();
        let dest = d.path().join("dest");
        fs::create_dir(&dest).unwrap();
        extract(&dest, &tar[..], false, true).unwrap();
        assert_eq!(fs::read_to_string(dest.join("html/index.html")).unwrap(), "<h1>hi</h1>");
        assert_eq!(fs::read(dest.join("html/img/a.png")).unwrap(), vec![1, 2, 3]);
        // A file where the tar has a directory is refused, not replaced.
        let clash = d.path().join("clash");
        fs::create_dir(&clash).unwrap();
        fs::write(clash.join("html"), "a file").unwrap();
        let (code, msg) = extract(&clash, &tar[..], false, true).unwrap_err();
        assert_eq!(code, 400);
        assert!(msg.contains("cannot overwrite non-directory"), "{msg}");
        // An entry that climbs out is refused.
        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..11].copy_from_slice(b"../escaped\0");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).unwrap();
        let evil = evil.into_inner().unwrap();
        let inner = d.path().join("inner");
        fs::create_dir(&inner).unwrap();
        assert!(extract(&inner, &evil[..], false, false).is_err());
        assert!(!d.path().join("escaped").exists());
    }
}
