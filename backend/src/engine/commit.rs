//! `docker commit`: a container's changes become an image — its read-write
//! layer as a new layer on top of its image's, and its config (with the
//! client's `--change` instructions, read as a build reads them) as the new
//! image's. A running container is paused meanwhile (unless asked not to),
//! as Docker does, so the layer is one moment's state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_shared::{Event, Status};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::containers::{internal, Container, Containers};
use crate::dockerfile::instructions;
use crate::dockerfile::{self, Kind};
use crate::error::ApiError;
use crate::events::EventBus;
use crate::ids::now_rfc3339;
use crate::image::reference::ImageRef;
use crate::image::store::{chain_ids, ImageRecord, ImageStore, LayerRef};
use crate::storage::layer;

/// What `POST /commit` asks for.
#[derive(Debug, Default)]
pub struct CommitRequest {
    /// `repo[:tag]` as the client gave it (the tag may also come apart).
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// Config fields that override the container's (the request body).
    pub config: Value,
}

/// The instructions `--change` accepts (Docker's list).
const CHANGE_COMMANDS: &[&str] = &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"];

/// The image config's `config` section for the new image: the container's,
/// the client's non-empty fields over it, then the `--change` instructions.
pub fn new_config(container: &Value, client: &Value, image: &Value, changes: &[String]) -> Result<Value, String> {
    let mut cfg = container.clone();
    if let Some(o) = client.as_object() {
        for (k, v) in o {
            let empty = v.is_null()
                || v.as_str() == Some("")
                || v.as_array().is_some_and(|a| a.is_empty())
                || v.as_object().is_some_and(|o| o.is_empty());
            if !empty {
                cfg[k] = v.clone();
            }
        }
    }
    let mut cmd_set = true; // an ENTRYPOINT change keeps the container's CMD
    for change in changes.iter().filter(|c| !c.trim().is_empty()) {
        let word = change.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if !CHANGE_COMMANDS.contains(&word.as_str()) {
            return Err(format!("{} is not a valid change command", word.to_lowercase()));
        }
        let parsed = dockerfile::parse(&format!("FROM scratch\n{change}\n")).map_err(|e| e.to_string())?;
        for step in parsed.stages.iter().flat_map(|s| &s.steps) {
            let env = cfg["Env"].clone();
            let lookup = |name: &str| {
                env.as_array()?.iter().filter_map(Value::as_str).find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(String::from))
            };
            if let Kind::Workdir(w) = &step.kind {
                let w = crate::dockerfile::expand::expand(w, &lookup)?;
                cfg["WorkingDir"] = json!(instructions::workdir(&cfg, &w));
                continue;
            }
            instructions::apply(&mut cfg, image, &step.kind, &lookup, &mut cmd_set)?;
        }
    }
    Ok(cfg)
}

/// `repo` and `tag` as `docker commit` and `docker import` take them:
/// the familiar `name:tag`, or None for an untagged image.
pub fn image_tag(repo: &str, tag: &str) -> Result<Option<String>, ApiError> {
    let full = match (repo, tag) {
        ("", "") => return Ok(None),
        ("", _) => return Err(ApiError::bad_request("invalid reference format: a tag needs a repository")),
        (r, "") => r.to_string(),
        (r, t) => format!("{r}:{t}"),
    };
    ImageRef::parse(&full)
        .ok()
        .filter(|r| r.digest.is_none())
        .and_then(|r| r.familiar_tagged())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("invalid reference format: {full}")))
}

/// Stores an image config whose layers are in the store, tags it, and
/// tells the event stream. Returns its ID.
pub fn store_image(images: &ImageStore, bus: &EventBus, config: &Value, tag: Option<&str>) -> Result<String, ApiError> {
    store_image_bytes(images, bus, &serde_json::to_vec(config).map_err(internal)?, tag)
}

/// [`store_image`] of a config as these very bytes (a loaded image keeps
/// its ID, the digest of its config's bytes).
pub fn store_image_bytes(images: &ImageStore, bus: &EventBus, bytes: &[u8], tag: Option<&str>) -> Result<String, ApiError> {
    let config: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("the image config is not JSON: {e}")))?;
    let diffs: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let id = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let layers = chain_ids(&diffs)
        .into_iter()
        .zip(diffs)
        .map(|(chain_id, diff_id)| LayerRef { size: images.layer_size(&chain_id), chain_id, diff_id })
        .collect();
    let created = config["created"].as_str().map(crate::ids::parse_rfc3339).unwrap_or(0);
    let record = ImageRecord { id: id.clone(), repo_tags: vec![], repo_digests: vec![], layers, created };
    let lost = images.put_image(record, bytes, tag).map_err(|e| internal(format!("storing the image: {e}")))?;
    if let Some(stored) = images.get(&id) {
        bus.emit(Event::ImageAdded {
            id: id.clone(),
            repo_tags: stored.repo_tags.clone(),
            repo_digests: vec![],
            layers: stored.layers.iter().map(|l| l.chain_id.clone()).collect(),
            size: stored.size(),
        });
    }
    if let (Some(old), Some(t)) = (lost, tag) {
        bus.emit(Event::ImageUntagged { id: old, tag: t.to_string() });
    }
    Ok(id)
}

/// Stores an unpacked layer (a dir under the store's tmp) on top of
/// `parent_diffs`; returns its diff ID. An empty layer is not stored (None).
pub fn store_layer(images: &ImageStore, bus: &EventBus, parent_diffs: &[String], dir: &Path) -> Result<Option<String>, ApiError> {
    let (diff_id, size, empty) = layer::diff_id(dir).map_err(|e| internal(format!("reading the layer: {e}")))?;
    if empty {
        return Ok(None);
    }
    store_layer_as(images, bus, parent_diffs, dir, &diff_id, size).map(Some)
}

/// [`store_layer`] with the diff ID and size already known (an unpacked tar's).
pub fn store_layer_as(
    images: &ImageStore,
    bus: &EventBus,
    parent_diffs: &[String],
    dir: &Path,
    diff_id: &str,
    size: u64,
) -> Result<String, ApiError> {
    let mut diffs = parent_diffs.to_vec();
    let parent_chain = chain_ids(&diffs).last().cloned();
    diffs.push(diff_id.to_string());
    let chain = chain_ids(&diffs).last().cloned().unwrap_or_default();
    let added = images
        .commit_layer(&chain, diff_id, parent_chain.as_deref(), size, dir)
        .map_err(|e| internal(format!("storing the layer: {e}")))?;
    if added {
        bus.emit(Event::LayerAdded {
            chain_id: chain.clone(),
            diff_id: diff_id.to_string(),
            dir: images.layer_diff(&chain).display().to_string(),
            size,
        });
    }
    Ok(diff_id.to_string())
}

/// `docker import`: a tar of a root filesystem (plain or gzip) becomes a
/// one-layer image, its config from `changes`, `message` in its history.
pub fn import(
    images: &ImageStore,
    bus: &EventBus,
    tar: &Path,
    changes: &[String],
    message: &str,
    tag: Option<&str>,
) -> Result<String, ApiError> {
    use std::io::{BufReader, Read};
    let cfg = new_config(&json!({}), &Value::Null, &json!({}), changes).map_err(ApiError::bad_request)?;
    let mut f = std::fs::File::open(tar).map_err(internal)?;
    let mut magic = [0u8; 6];
    let n = f.read(&mut magic).map_err(internal)?;
    let f = std::fs::File::open(tar).map_err(internal)?;
    let scratch = images.tmp_dir().join(format!("import-{:016x}", crate::ids::random_u128() as u64));
    let diff = scratch.join("diff");
    std::fs::create_dir_all(&diff).map_err(internal)?;
    let unpacker = crate::image::unpack::Unpacker::new(&diff);
    let unpacked = match &magic[..n] {
        [0x1f, 0x8b, ..] => unpacker.unpack(flate2::read::MultiGzDecoder::new(BufReader::new(f))),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] | [b'B', b'Z', b'h', ..] | [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(ApiError::bad_request("berth imports plain or gzip-compressed tars (not xz, bzip2 or zstd) yet"));
        }
        _ => unpacker.unpack(BufReader::new(f)),
    };
    let result = unpacked.map_err(|e| ApiError::bad_request(format!("the archive is not a valid tar: {e}"))).and_then(|(diff_id, size)| {
        store_layer_as(images, bus, &[], &diff, &diff_id, size)?;
        let now = now_rfc3339();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": now,
            "docker_version": concat!("berth ", env!("CARGO_PKG_VERSION")),
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": now, "created_by": "", "comment": if message.is_empty() { "Imported from -" } else { message }}],
        });
        store_image(images, bus, &config, tag)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

impl Containers {
    /// `POST /commit`: returns the new image's ID.
    pub async fn commit(self: &Arc<Self>, c: &Arc<Container>, req: CommitRequest) -> Result<String, ApiError> {
        let tag = image_tag(&req.repo, &req.tag)?;
        let _one = c.lifecycle.lock().await;
        if *c.removed.borrow() {
            return Err(ApiError::not_found(berth_shared::container::refusal::no_such_container(&c.id)));
        }
        let rec = c.record();
        let parent =
            self.images.config(&rec.image_id).ok_or_else(|| internal(format!("the image {} of the container is gone", rec.image_id)))?;
        let cfg = new_config(&rec.config, &req.config, &parent, &req.changes).map_err(ApiError::bad_request)?;

        // The container's changes, copied while it is paused.
        let scratch = self.images.tmp_dir().join(format!("commit-{:016x}", crate::ids::random_u128() as u64));
        let diff = scratch.join("diff");
        let freeze = req.pause && rec.state.status == Status::Running && !rec.state.paused;
        if freeze {
            self.resources.freeze(&rec.id, true).await.map_err(|e| internal(format!("pausing the container: {e}")))?;
        }
        let copied = copy_tree(Path::new(&rec.layer.upper), &diff).await;
        if freeze {
            self.resources.thaw_now(&rec.id);
        }
        let result = async {
            copied.map_err(|e| internal(format!("copying the container's changes: {e}")))?;
            layer::drop_mount_points(&diff, &rec.layer.lower);
            self.make_image(&rec, parent, cfg, &req, &diff, tag.as_deref())
        }
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    fn make_image(
        &self,
        rec: &super::containers::Record,
        parent: Value,
        cfg: Value,
        req: &CommitRequest,
        diff: &Path,
        tag: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut diffs: Vec<String> = parent["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let added = store_layer(&self.images, &self.bus, &diffs, diff)?;
        let empty = added.is_none();
        diffs.extend(added);
        let now = now_rfc3339();
        let mut config = parent;
        config["config"] = cfg;
        config["container"] = json!(rec.id);
        config["container_config"] = rec.config.clone();
        config["created"] = json!(now);
        config["docker_version"] = json!(concat!("berth ", env!("CARGO_PKG_VERSION")));
        config["rootfs"] = json!({"type": "layers", "diff_ids": diffs});
        if !req.author.is_empty() {
            config["author"] = json!(req.author);
        }
        // (Docker shows the container's command, joined by spaces.)
        let mut entry = json!({"created": now, "created_by": rec.command().join(" ")});
        if !req.author.is_empty() {
            entry["author"] = json!(req.author);
        }
        if !req.comment.is_empty() {
            entry["comment"] = json!(req.comment);
        }
        if empty {
            entry["empty_layer"] = json!(true);
        }
        match config["history"].as_array_mut() {
            Some(h) => h.push(entry),
            None => config["history"] = json!([entry]),
        }
        store_image(&self.images, &self.bus, &config, tag)
    }
}

/// `cp -a` of a directory's contents into a new `dest`: owners, modes,
/// times, xattrs (overlay's opaque markers) and whiteout devices kept.
async fn copy_tree(src: &Path, dest: &PathBuf) -> std::io::Result<()> {
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p)?;
    }
    let out = tokio::process::Command::new("cp").args(["-a", "--reflink=auto", "--"]).arg(src).arg(dest).output().await?;
    if !out.status.success() {
        return Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_read_as_a_build_reads_them() {
        let container = json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "APP=/srv"], "WorkingDir": "/srv", "Hostname": "abc"});
        let image = json!({"config": {}});
        let cfg = new_config(
            &container,
            &json!({"Labels": {"by": "client"}, "Cmd": null}),
            &image,
            &[
                "ENV GREETING=hi MORE=$APP/x".into(),
                "EXPOSE 8080".into(),
                "CMD nginx -g 'daemon off;'".into(),
                "WORKDIR www".into(),
                "USER nobody".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg["Env"], json!(["PATH=/bin", "APP=/srv", "GREETING=hi", "MORE=/srv/x"]));
        assert_eq!(cfg["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(cfg["Cmd"], json!(["/bin/sh", "-c", "nginx -g 'daemon off;'"]));
        assert_eq!((cfg["WorkingDir"].as_str(), cfg["User"].as_str()), (Some("/srv/www"), Some("nobody")));
        assert_eq!(cfg["Labels"], json!({"by": "client"}));
        let e = new_config(&container, &Value::Null, &image, &["RUN rm -rf /".into()]).unwrap_err();
        assert_eq!(e, "run is not a valid change command");
        // An ENTRYPOINT change keeps the container's CMD.
        let ep = new_config(&container, &Value::Null, &image, &["ENTRYPOINT [\"/entry\"]".into()]).unwrap();
        assert_eq!((ep["Entrypoint"].clone(), ep["Cmd"].clone()), (json!(["/entry"]), json!(["sh"])));
    }
}
