//! COPY and ADD's file work: the sources copied into the step's root with
//! the step's owner and mode, ADD's local archives unpacked.

use std::path::{Path, PathBuf};

use super::context;
use crate::storage::copy;

/// COPY/ADD: each source into `dest` (a dir when it ends with `/`, when
/// there are several, or when it is one already), a directory's contents
/// into it; ADD unpacks local tar archives.
/// (An archive is unpacked in a temp dir under `tmp`, berth's own.)
pub(super) fn copy_sources(
    root: &Path,
    src_root: &Path,
    rels: &[PathBuf],
    dest: &str,
    add: bool,
    attrs: copy::Attrs,
    tmp: &Path,
) -> Result<(), String> {
    let w = copy::Writer::new(root, attrs).map_err(|e| e.to_string())?;
    let src = pathrs::Root::open(src_root).map_err(|e| e.to_string())?;
    let dest_dir = dest.ends_with('/') || rels.len() > 1 || w.is_dir(Path::new(dest));
    for rel in rels {
        let h = src.resolve(context::in_root(rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
        let from = copy::fd_path(&h);
        let m = std::fs::metadata(&from).map_err(|e| e.to_string())?;
        let target = if m.is_dir() || !dest_dir { PathBuf::from(dest) } else { Path::new(dest).join(rel.file_name().unwrap_or_default()) };
        if add && m.is_file() {
            if let Some(entries) = archive_entries(&from)? {
                let unpacked = tempfile::Builder::new().prefix("build-add-").tempdir_in(tmp).map_err(|e| e.to_string())?;
                entries(unpacked.path())?;
                let keep = copy::Writer::new(root, copy::Attrs { keep_owner: true, ..attrs }).map_err(|e| e.to_string())?;
                keep.copy(unpacked.path(), Path::new(dest)).map_err(|e| format!("copying {} to {dest}: {e}", rel.display()))?;
                continue;
            }
        }
        w.copy(&from, &target).map_err(|e| format!("copying {} to {}: {e}", rel.display(), target.display()))?;
    }
    Ok(())
}

type Extract = Box<dyn FnOnce(&Path) -> Result<(), String>>;

/// If the file is a tar (plain or gzip), a function that unpacks it.
fn archive_entries(path: &Path) -> Result<Option<Extract>, String> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 512];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    head.truncate(n);
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let tar = head.len() >= 262 && &head[257..262] == b"ustar";
    if !gz && !tar {
        return Ok(None);
    }
    f.rewind().map_err(|e| e.to_string())?;
    Ok(Some(Box::new(move |dest: &Path| {
        let reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(f)) } else { Box::new(f) };
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        ar.unpack(dest).map_err(|e| format!("unpacking the archive: {}", crate::text::excerpt(&e.to_string(), 300)))
    })))
}
