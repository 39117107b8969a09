//! `docker save` and `docker load`: images as a docker-archive tar
//! (`manifest.json`, each image's config, each layer's `layer.tar`,
//! `repositories`), as Docker writes it and reads it (its OCI-layout form
//! too, on load).
//!
//! A layer's tar is the very stream its diff ID is the digest of: a pulled
//! or loaded layer's from its tar-split record, a layer berth built from
//! its directory (berth's own tar writer made its diff ID). Either is
//! checked against the diff ID as it is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::commit::{store_image_bytes, store_layer_as};
use crate::error::ApiError;
use crate::events::EventBus;
use crate::image::reference::ImageRef;
use crate::image::store::{chain_ids, hex_of, ImageRecord, ImageStore};
use crate::image::tarsplit;

/// What one name asks `docker save` for: the image, and the tag to carry.
pub fn wanted(images: &ImageStore, name: &str) -> Result<(ImageRecord, Option<String>), ApiError> {
    let img =
        images.resolve(name).ok_or_else(|| ApiError::not_found(format!("No such image: {}", crate::image::reference::familiar(name))))?;
    let by_id = hex_of(name).len() >= 4 && img.id.contains(hex_of(name)) && !img.repo_tags.iter().any(|t| t == name);
    let tag = if by_id { None } else { ImageRef::parse(name).ok().and_then(|r| r.familiar_tagged()) };
    Ok((img, tag))
}

/// Writes the archive of the named images to `out`.
pub fn save(images: &ImageStore, names: &[String], out: impl Write) -> Result<(), ApiError> {
    // Each image once, in the order asked, with every tag it was asked by.
    let mut picked: Vec<(ImageRecord, Vec<String>)> = Vec::new();
    for n in names {
        let (img, tag) = wanted(images, n)?;
        let i = match picked.iter().position(|(p, _)| p.id == img.id) {
            Some(i) => i,
            None => {
                picked.push((img, Vec::new()));
                picked.len() - 1
            }
        };
        if let Some(t) = tag {
            if !picked[i].1.contains(&t) {
                picked[i].1.push(t);
            }
        }
    }
    write_archive(images, picked, out).map_err(|e| crate::engine::containers::internal(format!("writing the archive: {e}")))
}

fn header(path: &str, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let _ = h.set_path(path);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
    h.set_cksum();
    h
}

/// Hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A layer tar's bytes for the archive: (size, how to write them).
enum LayerSource {
    Split(Vec<tarsplit::Segment>),
    /// Written ahead into this file (a layer without a record).
    File(PathBuf),
}

fn write_archive(images: &ImageStore, picked: Vec<(ImageRecord, Vec<String>)>, out: impl Write) -> io::Result<()> {
    let mut ar = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written: Vec<String> = Vec::new();
    let scratch = tempfile::Builder::new().prefix("save-").tempdir_in(images.tmp_dir())?;
    for (img, tags) in picked {
        let config = fs::read(images.config_path(&img.id))?;
        let config_name = format!("{}.json", hex_of(&img.id));
        ar.append(&header(&config_name, config.len() as u64, 0o644), &config[..])?;
        let mut layers = Vec::new();
        for (i, l) in img.layers.iter().enumerate() {
            let id = hex_of(&l.chain_id).to_string();
            let name = format!("{id}/layer.tar");
            layers.push(name.clone());
            if written.contains(&id) {
                continue;
            }
            written.push(id.clone());
            let recorded = images.tar_split(&l.chain_id);
            let had_record = recorded.is_some();
            let source = match recorded {
                Some(s) => LayerSource::Split(s),
                None => {
                    // A layer berth made from a directory: its tar as it was hashed.
                    let path = scratch.path().join(format!("{id}.tar"));
                    crate::storage::layer::write_tar(&images.layer_diff(&l.chain_id), io::BufWriter::new(fs::File::create(&path)?))?
                        .0
                        .flush()?;
                    LayerSource::File(path)
                }
            };
            let size = match &source {
                LayerSource::Split(s) => tarsplit::size_of(s),
                LayerSource::File(p) => fs::metadata(p)?.len(),
            };
            ar.append(&header(&format!("{id}/"), 0, 0o755), io::empty())?;
            ar.append(&header(&format!("{id}/VERSION"), 3, 0o644), &b"1.0"[..])?;
            let mut v1 = json!({"id": id, "created": "1970-01-01T00:00:00Z"});
            if i > 0 {
                v1["parent"] = json!(hex_of(&img.layers[i - 1].chain_id));
            }
            let v1 = serde_json::to_vec(&v1)?;
            ar.append(&header(&format!("{id}/json"), v1.len() as u64, 0o644), &v1[..])?;
            // The layer's bytes, checked against its diff ID as they go.
            let (reader, writer) = os_pipe()?;
            let diff = images.layer_diff(&l.chain_id);
            let producer = std::thread::spawn(move || -> io::Result<String> {
                let mut h = Hashing { inner: io::BufWriter::new(writer), hash: Sha256::new() };
                match source {
                    LayerSource::Split(s) => {
                        tarsplit::reassemble(&s, &diff, &mut h)?;
                    }
                    LayerSource::File(p) => {
                        io::copy(&mut fs::File::open(p)?, &mut h)?;
                    }
                }
                h.flush()?;
                Ok(format!("sha256:{}", hex::encode(h.hash.finalize())))
            });
            ar.append(&header(&name, size, 0o644), reader.take(size))?;
            let digest = producer.join().map_err(|_| io::Error::other("the layer writer panicked"))??;
            if digest != l.diff_id {
                return Err(io::Error::other(if had_record {
                    format!("layer {} no longer matches its diff ID (its files changed on disk): {digest}", l.diff_id)
                } else {
                    format!(
                        "layer {} was pulled before berth kept a record of its original tar, so it cannot be written as it came: pull the image again",
                        l.diff_id
                    )
                }));
            }
        }
        for t in &tags {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), hex_of(&img.layers.last().map(|l| l.chain_id.clone()).unwrap_or_default()).to_string());
            }
        }
        manifest
            .push(json!({"Config": config_name, "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) }, "Layers": layers}));
    }
    let m = serde_json::to_vec(&manifest)?;
    ar.append(&header("manifest.json", m.len() as u64, 0o644), &m[..])?;
    if !repositories.is_empty() {
        let r = serde_json::to_vec(&repositories)?;
        ar.append(&header("repositories", r.len() as u64, 0o644), &r[..])?;
    }
    ar.into_inner()?.flush()
}

/// A pipe as std files (the layer's writer thread feeds the archive).
fn os_pipe() -> io::Result<(fs::File, fs::File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((fs::File::from(r), fs::File::from(w)))
}

/// What `docker load` reports: one line per image.
pub type Loaded = Vec<String>;

/// Reads an archive (a docker-archive or OCI-layout tar, plain or gzip'd)
/// and stores its images.
pub fn load(images: &ImageStore, bus: &EventBus, archive: &Path) -> Result<Loaded, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    let dir = tempfile::Builder::new().prefix("load-").tempdir_in(images.tmp_dir()).map_err(crate::engine::containers::internal)?;
    let mut f = fs::File::open(archive).map_err(crate::engine::containers::internal)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(crate::engine::containers::internal)?;
    let f = fs::File::open(archive).map_err(crate::engine::containers::internal)?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] { Box::new(flate2::read::MultiGzDecoder::new(f)) } else { Box::new(f) };
    // The outer tar through the layer unpacker: nothing it holds can land
    // outside the scratch dir.
    crate::image::unpack::Unpacker::new(dir.path())
        .unpack(io::BufReader::new(reader))
        .map_err(|e| bad(format!("the archive is not a valid tar: {e}")))?;
    let manifest: Value = fs::read(dir.path().join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("invalid tar header: the archive has no manifest.json (docker save's format)".into()))?;
    let inside = |rel: &str| -> Result<PathBuf, ApiError> {
        let p = crate::image::unpack::clean_path(rel).map_err(|e| bad(format!("manifest.json names {rel:?}: {e}")))?;
        Ok(dir.path().join(p))
    };
    let mut loaded = Vec::new();
    for entry in manifest.as_array().into_iter().flatten() {
        let config_path = inside(entry["Config"].as_str().unwrap_or(""))?;
        let config_bytes = fs::read(&config_path).map_err(|_| bad(format!("the archive has no {}", config_path.display())))?;
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| bad(format!("the image config is not JSON: {e}")))?;
        let diffs: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let layers: Vec<&str> = entry["Layers"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if layers.len() != diffs.len() {
            return Err(bad(format!("the manifest lists {} layers, the config {}", layers.len(), diffs.len())));
        }
        for (i, rel) in layers.iter().enumerate() {
            let chain = chain_ids(&diffs[..=i]).last().cloned().unwrap_or_default();
            if images.has_layer(&chain) {
                continue;
            }
            let tar_path = inside(rel)?;
            let mut lf = fs::File::open(&tar_path).map_err(|_| bad(format!("the archive has no {rel}")))?;
            let mut m = [0u8; 2];
            let k = lf.read(&mut m).map_err(crate::engine::containers::internal)?;
            let lf = fs::File::open(&tar_path).map_err(crate::engine::containers::internal)?;
            let layer_reader: Box<dyn Read> =
                if k == 2 && m == [0x1f, 0x8b] { Box::new(flate2::read::MultiGzDecoder::new(lf)) } else { Box::new(lf) };
            let target = dir.path().join(format!(".layer-{i}-{}", hex_of(&chain)));
            fs::create_dir_all(&target).map_err(crate::engine::containers::internal)?;
            let (digest, size, split) = crate::image::unpack::Unpacker::new(&target)
                .unpack_recorded(io::BufReader::new(layer_reader))
                .map_err(|e| bad(format!("layer {rel}: {e}")))?;
            if digest != diffs[i] {
                return Err(bad(format!("invalid diffID for layer {i}: expected {:?}, got {digest:?}", diffs[i])));
            }
            store_layer_as(images, bus, &diffs[..i], &target, &digest, size)?;
            images.save_tar_split(&chain, &split).map_err(crate::engine::containers::internal)?;
        }
        let tags: Vec<String> =
            entry["RepoTags"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect()).unwrap_or_default();
        let mut tags_ok = Vec::new();
        for t in &tags {
            tags_ok.push(
                ImageRef::parse(t).ok().and_then(|r| r.familiar_tagged()).ok_or_else(|| bad(format!("invalid reference format: {t}")))?,
            );
        }
        let id = store_image_bytes(images, bus, &config_bytes, tags_ok.first().map(String::as_str))?;
        for t in tags_ok.iter().skip(1) {
            images.tag(&id, t).map_err(crate::engine::containers::internal)?;
            bus.emit(berth_shared::Event::ImageTagged { id: id.clone(), tag: t.clone() });
        }
        if tags_ok.is_empty() {
            loaded.push(format!("Loaded image ID: {id}"));
        }
        loaded.extend(tags_ok.iter().map(|t| format!("Loaded image: {t}")));
    }
    if loaded.is_empty() {
        return Err(bad("the archive's manifest.json lists no image".into()));
    }
    Ok(loaded)
}
