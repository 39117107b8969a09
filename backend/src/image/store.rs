//! Images and layers on disk, overlay2-style and content-addressed.
//!
//! ```text
//! <data-root>/image/overlay2/imagedb/content/sha256/<image id>   image config JSON
//! <data-root>/image/overlay2/layerdb/sha256/<chain id>/{diff,size,parent}
//! <data-root>/image/overlay2/index.json                          tags, digests, layers
//! <data-root>/overlay2/<chain id>/diff                           unpacked layer
//! ```
//! A layer is stored once per chain ID (its content and everything below
//! it), so two images that share a base share its directory, and two
//! containers of one image share all of LowerDir.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One layer of an image, bottom first in [`ImageRecord::layers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub chain_id: String,
    pub diff_id: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image ID: the config's digest.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub layers: Vec<LayerRef>,
    /// Unix seconds from the config's `created`.
    pub created: i64,
}

impl ImageRecord {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    index: Mutex<Index>,
}

/// The data root's dirs and their modes, as Docker keeps them: no other
/// user may list or enter the root, the layers (where a setuid-root binary
/// of an image sits in `overlay2/<id>/diff`), the containers or the images.
/// `volumes/` keeps Docker's o+x so that a volume's `_data` can be reached
/// by a non-root process given its path.
pub const DATA_ROOT_MODES: &[(&str, u32)] =
    &[("", 0o710), ("overlay2", 0o710), ("image", 0o700), ("tmp", 0o700), ("containers", 0o710), ("volumes", 0o701)];

/// Mode of each `overlay2/<id>` dir (Docker's; `diff` inside keeps the
/// image's own mode for its root).
pub const LAYER_DIR_MODE: u32 = 0o710;

/// Makes the data root's dirs with [`DATA_ROOT_MODES`], and fixes the modes
/// of an existing root made by an older berth (layer dirs included).
pub fn secure_data_root(root: &Path) -> io::Result<()> {
    for (d, mode) in DATA_ROOT_MODES {
        let p = root.join(d);
        fs::DirBuilder::new().recursive(true).mode(*mode).create(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    for e in fs::read_dir(root.join("overlay2"))?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(LAYER_DIR_MODE))?;
        }
    }
    Ok(())
}

/// Chain IDs for a stack of diff_ids (bottom first), as the OCI spec defines:
/// the first is the diff_id itself; each next one hashes "<parent> <diff_id>".
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!("sha256:{}", hex::encode(Sha256::digest(format!("{parent} {d}")))),
        };
        out.push(next);
    }
    out
}

pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The images whose config and every layer are in the store, untagged:
/// what is left to know when the index is lost.
fn rebuild_index(root: &Path) -> Index {
    let mut index = Index::default();
    let layerdb = root.join("image/overlay2/layerdb/sha256");
    for e in fs::read_dir(root.join("image/overlay2/imagedb/content/sha256")).into_iter().flatten().flatten() {
        let Ok(config) = fs::read(e.path()).map_err(|_| ()).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ()))
        else {
            continue;
        };
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let chains = chain_ids(&diff_ids);
        if chains.iter().any(|c| !layerdb.join(hex_of(c)).join("diff").is_file()) {
            continue;
        }
        let layers = chains
            .iter()
            .zip(&diff_ids)
            .map(|(c, d)| LayerRef {
                chain_id: c.clone(),
                diff_id: d.clone(),
                size: fs::read_to_string(layerdb.join(hex_of(c)).join("size")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0),
            })
            .collect();
        let id = format!("sha256:{}", e.file_name().to_string_lossy());
        let created = config["created"].as_str().map(crate::ids::parse_rfc3339).unwrap_or(0);
        index.images.insert(id.clone(), ImageRecord { id, repo_tags: Vec::new(), repo_digests: Vec::new(), layers, created });
    }
    index
}

impl ImageStore {
    pub fn open(data_root: &Path) -> io::Result<Self> {
        let root = data_root.to_path_buf();
        secure_data_root(&root)?;
        for d in ["image/overlay2/imagedb/content/sha256", "image/overlay2/layerdb/sha256"] {
            fs::create_dir_all(root.join(d))?;
        }
        // Whatever is in tmp was left by a pull or build a crash ended
        // (nothing runs before the store is open) — a build step's overlay
        // may still be mounted there: unmounted first, deepest first.
        let tmp = root.join("tmp");
        crate::storage::unmount_all_under(&tmp);
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let p = e.path();
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
        let path = root.join("image/overlay2/index.json");
        let index = match fs::read(&path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(i) => i,
                Err(e) => {
                    // Not berthd's doing (its writes are atomic): keep the
                    // file for whoever looks, and the images, untagged.
                    let aside = path.with_extension("json.corrupt");
                    let _ = fs::rename(&path, &aside);
                    let index = rebuild_index(&root);
                    tracing::warn!(error = %e, kept = %aside.display(), images = index.images.len(),
                        "the image index was unreadable: rebuilt from the image configs, without their tags");
                    crate::durable::write_json(&path, &index)?;
                    index
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(e),
        };
        Ok(ImageStore { root, index: Mutex::new(index) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, index: &Index) -> io::Result<()> {
        crate::durable::write_json(&self.root.join("image/overlay2/index.json"), index)
    }

    /// Scratch space on the same filesystem as the store (renames stay atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where a layer's files live.
    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.root.join("overlay2").join(hex_of(chain_id))
    }

    pub fn layer_diff(&self, chain_id: &str) -> PathBuf {
        self.layer_dir(chain_id).join("diff")
    }

    pub fn has_layer(&self, chain_id: &str) -> bool {
        self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id)).join("diff").is_file()
    }

    /// Records an unpacked layer: `unpacked` (a dir under tmp) becomes the
    /// layer's `diff`. Returns false if the layer was already there.
    pub fn commit_layer(&self, chain_id: &str, diff_id: &str, parent: Option<&str>, size: u64, unpacked: &Path) -> io::Result<bool> {
        if self.has_layer(chain_id) {
            let _ = fs::remove_dir_all(unpacked);
            return Ok(false);
        }
        let dir = self.layer_dir(chain_id);
        if dir.exists() {
            fs::remove_dir_all(&dir)?; // a half-made layer from a crash
        }
        fs::DirBuilder::new().mode(LAYER_DIR_MODE).create(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(LAYER_DIR_MODE))?;
        fs::rename(unpacked, dir.join("diff"))?;
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id));
        fs::create_dir_all(&meta)?;
        crate::durable::write(&meta.join("size"), size.to_string().as_bytes())?;
        if let Some(p) = parent {
            crate::durable::write(&meta.join("parent"), p.as_bytes())?;
        }
        // Written last: its presence marks the layer complete.
        crate::durable::write(&meta.join("diff"), diff_id.as_bytes())?;
        Ok(true)
    }

    /// Keeps a pulled or loaded layer's tar-split record (`docker save`
    /// writes its original bytes again from it).
    pub fn save_tar_split(&self, chain_id: &str, segments: &[super::tarsplit::Segment]) -> io::Result<()> {
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id));
        crate::durable::write(&meta.join("tar-split.gz"), &super::tarsplit::encode(segments)?)
    }

    /// The layer's tar-split record, if it was unpacked from a tar.
    pub fn tar_split(&self, chain_id: &str) -> Option<Vec<super::tarsplit::Segment>> {
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id));
        super::tarsplit::decode(&fs::read(meta.join("tar-split.gz")).ok()?).ok()
    }

    /// The content size recorded when the layer was unpacked.
    pub fn layer_size(&self, chain_id: &str) -> u64 {
        fs::read_to_string(self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id)).join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.root.join("image/overlay2/imagedb/content/sha256").join(hex_of(id))
    }

    pub fn config(&self, id: &str) -> Option<serde_json::Value> {
        serde_json::from_slice(&fs::read(self.config_path(id)).ok()?).ok()
    }

    /// Adds (or updates) an image and points `tag` at it, taking the tag from
    /// any image that had it. Returns the id that lost the tag, if any.
    pub fn put_image(&self, record: ImageRecord, config: &[u8], tag: Option<&str>) -> io::Result<Option<String>> {
        crate::durable::write(&self.config_path(&record.id), config)?;
        let mut idx = self.lock();
        let id = record.id.clone();
        let entry = idx.images.entry(id.clone()).or_insert_with(|| record.clone());
        for d in &record.repo_digests {
            if !entry.repo_digests.contains(d) {
                entry.repo_digests.push(d.clone());
            }
        }
        let displaced = match tag {
            Some(t) => Self::move_tag(&mut idx, t, &id),
            None => None,
        };
        self.save(&idx)?;
        Ok(displaced)
    }

    fn move_tag(idx: &mut Index, tag: &str, id: &str) -> Option<String> {
        let mut displaced = None;
        for (other, img) in idx.images.iter_mut() {
            if other != id && img.repo_tags.iter().any(|t| t == tag) {
                img.repo_tags.retain(|t| t != tag);
                displaced = Some(other.clone());
            }
        }
        if let Some(img) = idx.images.get_mut(id) {
            if !img.repo_tags.iter().any(|t| t == tag) {
                img.repo_tags.push(tag.to_string());
            }
        }
        displaced
    }

    pub fn tag(&self, id: &str, tag: &str) -> io::Result<()> {
        let mut idx = self.lock();
        Self::move_tag(&mut idx, tag, id);
        self.save(&idx)
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.lock().images.values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<ImageRecord> {
        self.lock().images.get(id).cloned()
    }

    /// Finds an image by familiar name[:tag], full or short ID, or name@digest.
    pub fn resolve(&self, name: &str) -> Option<ImageRecord> {
        let idx = self.lock();
        let wanted = crate::image::reference::familiar(name);
        if let Some(img) = idx.images.values().find(|i| i.repo_tags.contains(&wanted)) {
            return Some(img.clone());
        }
        if let Some(img) = idx.images.values().find(|i| i.repo_digests.iter().any(|d| *d == wanted || *d == name)) {
            return Some(img.clone());
        }
        let hexpart = hex_of(name);
        if hexpart.len() >= 4 && hexpart.chars().all(|c| c.is_ascii_hexdigit()) {
            let hits: Vec<_> = idx.images.values().filter(|i| hex_of(&i.id).starts_with(hexpart)).collect();
            if hits.len() == 1 {
                return Some(hits[0].clone());
            }
        }
        None
    }

    /// Removes one tag; returns the image if that was its last reference.
    pub fn untag(&self, id: &str, tag: &str) -> io::Result<Option<ImageRecord>> {
        let mut idx = self.lock();
        let Some(img) = idx.images.get_mut(id) else { return Ok(None) };
        img.repo_tags.retain(|t| t != tag);
        let orphan = img.repo_tags.is_empty().then(|| img.clone());
        self.save(&idx)?;
        Ok(orphan)
    }

    /// Deletes an image record and its config; returns the layers no other
    /// image uses, which the caller then deletes with [`Self::delete_layer`].
    pub fn delete_image(&self, id: &str) -> io::Result<Vec<String>> {
        let mut idx = self.lock();
        let Some(img) = idx.images.remove(id) else { return Ok(Vec::new()) };
        self.save(&idx)?;
        let _ = fs::remove_file(self.config_path(id));
        let in_use: std::collections::BTreeSet<&str> =
            idx.images.values().flat_map(|i| i.layers.iter().map(|l| l.chain_id.as_str())).collect();
        Ok(img.layers.iter().rev().filter(|l| !in_use.contains(l.chain_id.as_str())).map(|l| l.chain_id.clone()).collect())
    }

    /// `docker builder prune`: the layers and configs no image holds (a
    /// build's intermediate steps), except the layers in `keep` (a
    /// container's). Returns the layers removed with their sizes.
    pub fn prune_unreferenced(&self, keep: &std::collections::BTreeSet<String>) -> io::Result<Vec<(String, u64)>> {
        let idx = self.lock();
        let held: std::collections::BTreeSet<String> =
            idx.images.values().flat_map(|i| i.layers.iter().map(|l| hex_of(&l.chain_id).to_string())).collect();
        let configs: std::collections::BTreeSet<String> = idx.images.keys().map(|k| hex_of(k).to_string()).collect();
        for e in fs::read_dir(self.root.join("image/overlay2/imagedb/content/sha256"))?.flatten() {
            if !configs.contains(&*e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
        let mut removed = Vec::new();
        for e in fs::read_dir(self.root.join("image/overlay2/layerdb/sha256"))?.flatten() {
            let hex = e.file_name().to_string_lossy().into_owned();
            if held.contains(&hex) || keep.contains(&hex) {
                continue;
            }
            let chain = format!("sha256:{hex}");
            let size = self.layer_size(&chain);
            self.delete_layer(&chain)?;
            removed.push((chain, size));
        }
        Ok(removed)
    }

    pub fn delete_layer(&self, chain_id: &str) -> io::Result<()> {
        let meta = self.root.join("image/overlay2/layerdb/sha256").join(hex_of(chain_id));
        let _ = fs::remove_file(meta.join("diff"));
        fs::remove_dir_all(&meta).or_else(ignore_missing)?;
        fs::remove_dir_all(self.layer_dir(chain_id)).or_else(ignore_missing)
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], format!("sha256:{}", hex::encode(Sha256::digest("sha256:aa sha256:bb"))));
        // The same diff on another base is another layer.
        let c2 = chain_ids(&["sha256:cc".to_string(), "sha256:bb".to_string()]);
        assert_ne!(c[1], c2[1]);
    }

    fn record(id: &str, tags: &[&str], layers: &[&str]) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: vec![],
            layers: layers.iter().map(|l| LayerRef { chain_id: l.to_string(), diff_id: l.to_string(), size: 1 }).collect(),
            created: 0,
        }
    }

    #[test]
    fn tags_move_between_images_and_shared_layers_survive_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open(dir.path()).unwrap();
        s.put_image(record("sha256:1111", &[], &["sha256:base", "sha256:a"]), b"{}", Some("nginx:alpine")).unwrap();
        s.put_image(record("sha256:2222", &[], &["sha256:base"]), b"{}", Some("alpine:latest")).unwrap();
        assert_eq!(s.resolve("nginx:alpine").unwrap().id, "sha256:1111");
        assert_eq!(s.resolve("docker.io/library/alpine").unwrap().id, "sha256:2222");
        assert_eq!(s.resolve("2222").unwrap().id, "sha256:2222");
        // Re-tagging takes the tag away from the old image.
        let displaced = s.put_image(record("sha256:3333", &[], &["sha256:base"]), b"{}", Some("nginx:alpine")).unwrap();
        assert_eq!(displaced.as_deref(), Some("sha256:1111"));
        assert!(s.get("sha256:1111").unwrap().repo_tags.is_empty());
        // Deleting image 1 frees only its own top layer: base is shared.
        assert_eq!(s.delete_image("sha256:1111").unwrap(), vec!["sha256:a"]);
        // The index survives a reopen (a daemon restart).
        let s2 = ImageStore::open(dir.path()).unwrap();
        assert_eq!(s2.list().len(), 2);
    }

    #[test]
    fn the_data_root_and_layer_dirs_are_closed_to_other_users_as_dockers_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        // An older berth made everything 0755.
        for d in ["overlay2/abc/diff", "containers", "volumes", "tmp", "image"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for d in ["", "overlay2", "overlay2/abc", "containers", "volumes", "tmp", "image"] {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let s = ImageStore::open(&root).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(""), 0o710);
        assert_eq!(mode("overlay2"), 0o710);
        assert_eq!(mode("overlay2/abc"), 0o710);
        assert_eq!(mode("containers"), 0o710);
        assert_eq!(mode("volumes"), 0o701);
        assert_eq!(mode("tmp"), 0o700);
        assert_eq!(mode("image"), 0o700);
        // A new layer's dir too.
        let unpacked = s.tmp_dir().join("u");
        fs::create_dir(&unpacked).unwrap();
        s.commit_layer("sha256:feed", "sha256:feed", None, 0, &unpacked).unwrap();
        assert_eq!(mode("overlay2/feed"), 0o710);
    }

    #[test]
    fn a_lost_index_is_rebuilt_from_the_configs_and_a_crashed_pulls_scratch_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let s = ImageStore::open(&root).unwrap();
        let diff = format!("sha256:{}", "ab".repeat(32));
        let unpacked = s.tmp_dir().join("u");
        fs::create_dir(&unpacked).unwrap();
        s.commit_layer(&diff, &diff, None, 42, &unpacked).unwrap();
        let config = serde_json::json!({"created": "2026-01-02T03:04:05Z", "rootfs": {"type": "layers", "diff_ids": [diff]}});
        let bytes = serde_json::to_vec(&config).unwrap();
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let rec = ImageRecord {
            id: id.clone(),
            repo_tags: vec![],
            repo_digests: vec![],
            layers: vec![LayerRef { chain_id: diff.clone(), diff_id: diff.clone(), size: 42 }],
            created: 0,
        };
        s.put_image(rec, &bytes, Some("alpine:latest")).unwrap();
        // A config whose layer is missing is not an image.
        fs::write(s.config_path(&format!("sha256:{}", "cd".repeat(32))), r#"{"rootfs": {"diff_ids": ["sha256:00"]}}"#).unwrap();
        drop(s);
        // Scratch left by a pull and a build that a crash ended.
        fs::create_dir_all(root.join("tmp/unpack-x1/usr/bin")).unwrap();
        fs::write(root.join("tmp/unpack-x1/usr/bin/big"), vec![0u8; 4096]).unwrap();
        fs::create_dir_all(root.join("tmp/build-y2")).unwrap();
        fs::write(root.join("tmp/blob-z3"), "partial").unwrap();
        fs::write(root.join("image/overlay2/index.json"), "").unwrap();

        let s = ImageStore::open(&root).expect("an emptied index must not stop the daemon");
        let imgs = s.list();
        assert_eq!(imgs.len(), 1, "{imgs:?}");
        assert_eq!((imgs[0].id.as_str(), imgs[0].repo_tags.len(), imgs[0].layers[0].size), (id.as_str(), 0, 42));
        assert_eq!(imgs[0].created, 1767323045);
        assert!(root.join("image/overlay2/index.json.corrupt").exists());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0, "the crashed pull's and build's scratch is gone");
        // The rebuilt index was saved: the next start reads it as it is.
        drop(s);
        assert_eq!(ImageStore::open(&root).unwrap().list().len(), 1);
    }
}
