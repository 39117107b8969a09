//! A layer's original tar, kept as its headers: what `docker save` needs to
//! give back the very bytes the layer's diff ID is the digest of (as
//! Docker's tar-split does).
//!
//! While a layer is unpacked, every byte of the stream that is not a
//! regular file's content (headers, long names, PAX records, padding, the
//! end-of-archive blocks) is kept, and each file's content is noted as (its
//! path in the layer dir, its size). Reassembly writes the kept bytes and
//! reads the contents back from the layer dir. The record is small (about
//! a block per member) and stored gzip'd beside the layer's metadata.

use std::cell::RefCell;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;

/// One piece of the original stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Raw(Vec<u8>),
    /// A regular file's content: its path in the layer dir and size.
    File {
        path: String,
        size: u64,
    },
}

/// Records the stream as it is read.
#[derive(Debug, Default)]
pub struct Recorder {
    segments: Vec<Segment>,
    raw: Vec<u8>,
    /// Bytes now read are a file's content (not kept).
    in_content: bool,
}

impl Recorder {
    /// The next bytes read are the content of the file unpacked at `path`.
    pub fn start_file(&mut self) {
        self.flush_raw();
        self.in_content = true;
    }

    /// The content just read was `size` bytes of `path`.
    pub fn end_file(&mut self, path: &str, size: u64) {
        self.in_content = false;
        self.segments.push(Segment::File { path: path.to_string(), size });
    }

    fn flush_raw(&mut self) {
        if !self.raw.is_empty() {
            self.segments.push(Segment::Raw(std::mem::take(&mut self.raw)));
        }
    }

    pub fn finish(mut self) -> Vec<Segment> {
        self.flush_raw();
        self.segments
    }
}

/// A reader that feeds a [`Recorder`] (if any).
#[derive(Debug)]
pub struct RecordingReader<R> {
    pub inner: R,
    pub rec: Option<Rc<RefCell<Recorder>>>,
}

impl<R: Read> Read for RecordingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(rec) = &self.rec {
            let mut rec = rec.borrow_mut();
            if !rec.in_content {
                rec.raw.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

/// The segments as stored: a tag byte, then a raw length and bytes, or a
/// path length, path and size (integers little-endian), all gzip'd.
pub fn encode(segments: &[Segment]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for s in segments {
        match s {
            Segment::Raw(b) => {
                gz.write_all(&[0])?;
                gz.write_all(&(b.len() as u64).to_le_bytes())?;
                gz.write_all(b)?;
            }
            Segment::File { path, size } => {
                gz.write_all(&[1])?;
                gz.write_all(&(path.len() as u64).to_le_bytes())?;
                gz.write_all(path.as_bytes())?;
                gz.write_all(&size.to_le_bytes())?;
            }
        }
    }
    gz.finish()
}

pub fn decode(bytes: &[u8]) -> io::Result<Vec<Segment>> {
    let mut r = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a damaged tar-split record");
    let u64_of = |r: &mut dyn Read| -> io::Result<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    loop {
        let mut tag = [0u8; 1];
        if r.read(&mut tag)? == 0 {
            break;
        }
        let len = u64_of(&mut r)?;
        if len > 1 << 30 {
            return Err(bad());
        }
        let mut body = vec![0u8; len as usize];
        r.read_exact(&mut body)?;
        match tag[0] {
            0 => out.push(Segment::Raw(body)),
            1 => out.push(Segment::File { path: String::from_utf8(body).map_err(|_| bad())?, size: u64_of(&mut r)? }),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The stream's size, without reading any file.
pub fn size_of(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| match s {
            Segment::Raw(b) => b.len() as u64,
            Segment::File { size, .. } => *size,
        })
        .sum()
}

/// Writes the original stream again from the kept bytes and the layer
/// dir's files. A file that is shorter than recorded is an error.
pub fn reassemble(segments: &[Segment], dir: &Path, out: &mut impl Write) -> io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut n = 0;
    for s in segments {
        match s {
            Segment::Raw(b) => {
                out.write_all(b)?;
                n += b.len() as u64;
            }
            Segment::File { path, size } => {
                let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(dir.join(path))?;
                let copied = io::copy(&mut f.take(*size), out)?;
                if copied != *size {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{path} is shorter than the layer's record")));
                }
                n += copied;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// A layer tar as registries serve them: GNU long names, PAX records,
    /// a whiteout, a hard link, a symlink, padding to a 10 KiB record.
    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, body: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
            h.set_mtime(1_700_000_000);
            h.set_size(body.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, path, body).unwrap();
        };
        add("etc/", tar::EntryType::Directory, b"", None);
        add("etc/motd", tar::EntryType::Regular, b"welcome\n", None);
        add(&format!("usr/share/{}/file.txt", "long".repeat(40)), tar::EntryType::Regular, &vec![7u8; 3000], None);
        add("etc/.wh.gone", tar::EntryType::Regular, b"", None);
        add("etc/motd2", tar::EntryType::Link, b"", Some("etc/motd"));
        add("bin/sh", tar::EntryType::Symlink, b"", Some("/bin/busybox"));
        add("empty", tar::EntryType::Regular, b"", None);
        let mut out = b.into_inner().unwrap();
        out.resize(out.len().div_ceil(10240) * 10240, 0);
        out
    }

    #[test]
    fn a_layer_is_written_again_byte_for_byte_from_its_record_and_its_files() {
        let original = layer();
        let dir = tempfile::tempdir().unwrap();
        let (digest, _, segments) = crate::image::unpack::Unpacker::new(dir.path()).unpack_recorded(&original[..]).unwrap();
        assert_eq!(digest, format!("sha256:{}", hex::encode(sha2::Sha256::digest(&original))));
        let decoded = decode(&encode(&segments).unwrap()).unwrap();
        assert_eq!(decoded, segments);
        assert_eq!(size_of(&decoded), original.len() as u64);
        let mut again = Vec::new();
        reassemble(&decoded, dir.path(), &mut again).unwrap();
        assert!(again == original, "the reassembled tar differs from the original");
        // File contents are not in the record: it stays small.
        assert!(encode(&segments).unwrap().len() < 2048);
        // A file changed on disk no longer reassembles to the same bytes.
        fs::write(dir.path().join("etc/motd"), "wel").unwrap();
        assert!(reassemble(&decoded, dir.path(), &mut Vec::new()).is_err());
    }
}
