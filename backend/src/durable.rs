//! State files that survive a crash: each is replaced whole or not at all.
//!
//! [`write`] writes a sibling temporary file, fsyncs it, renames it over the
//! target and fsyncs the directory, so after a power cut or a SIGKILL at any
//! point the file holds either its old or its new contents, never a prefix
//! (an emptied `index.json` once kept berthd from starting; a truncated
//! `container.json` made a container vanish).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes`, atomically and durably.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically, without waiting for the disk:
/// for a state written many times a second (a container's record, saved at
/// each step of a start). A killed berthd leaves the old or the new file,
/// never a part; after a power cut ext4 (auto_da_alloc) flushes a file
/// renamed over another before the rename, so the same holds there.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a state file needs a name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    // The rename itself is durable once the directory is.
    if let (true, Some(dir)) = (sync, path.parent()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// [`write`] of a value as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write(path, &serde_json::to_vec_pretty(value).map_err(io::Error::other)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write(&p, b"{\"a\": 1, \"long\": \"value\"}").unwrap();
        write_json(&p, &serde_json::json!({"b": 2})).unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&fs::read(&p).unwrap()).unwrap(), serde_json::json!({"b": 2}));
        let names: Vec<String> = fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["state.json"]);
        // A target that cannot be replaced leaves the old file and no temporary.
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/x"), "").unwrap();
        assert!(write(&d.path().join("dir"), b"x").is_err());
        assert!(!d.path().join(".dir.tmp").exists());
    }
}
