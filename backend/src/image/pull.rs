//! Pulling images from a registry (through registry mirrors for docker.io),
//! with Docker's JSON progress messages.

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use berth_shared::Event;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::reference::{ImageRef, DOCKER_HUB};
use super::store::{chain_ids, hex_of, ImageRecord, ImageStore, LayerRef};
use super::unpack::Unpacker;
use crate::events::EventBus;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// No source had the manifest: Docker answers 404 before streaming.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// Where to fetch from: each docker.io mirror, then the registry itself.
pub struct Puller {
    client: Client,
    mirrors: Vec<String>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

impl Puller {
    /// `mirrors` are URLs as in Docker's `registry-mirrors`; `http://` ones,
    /// the `insecure` hosts and loopback registries are reached over HTTP.
    pub fn new(mirrors: &[String], insecure: &[String]) -> Self {
        let mut plain: Vec<String> = insecure.iter().map(|h| host_of(h)).collect();
        plain.extend(mirrors.iter().filter(|m| m.starts_with("http://")).map(|m| host_of(m)));
        for h in ["localhost:5000", "127.0.0.1:5000"] {
            plain.push(h.to_string());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
            connect_timeout: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        Puller { client: Client::new(config), mirrors: mirrors.iter().map(|m| host_of(m)).collect() }
    }

    fn sources(&self, r: &ImageRef) -> Vec<(Reference, String)> {
        let base = match (&r.tag, &r.digest) {
            (_, Some(d)) => Reference::with_digest(r.registry.clone(), r.repository.clone(), d.clone()),
            (Some(t), None) => Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone()),
            (None, None) => Reference::with_tag(r.registry.clone(), r.repository.clone(), "latest".into()),
        };
        let mut out = Vec::new();
        if r.registry == DOCKER_HUB {
            for m in &self.mirrors {
                let mut mirrored = base.clone();
                mirrored.set_mirror_registry(m.clone());
                out.push((mirrored, m.clone()));
            }
        }
        out.push((base, r.registry.clone()));
        out
    }

    /// Resolves the manifest (picking linux/amd64 from an index). Fails with
    /// [`PullError::NotFound`] before anything is streamed.
    pub async fn resolve(&self, r: &ImageRef) -> Result<Resolved, PullError> {
        let mut errors = Vec::new();
        for (reference, source) in self.sources(r) {
            match self.client.pull_image_manifest_and_list_digest(&reference, &RegistryAuth::Anonymous).await {
                Ok((manifest, digest, list_digest)) => {
                    return Ok(Resolved {
                        reference,
                        source,
                        layers: manifest.layers,
                        config: manifest.config,
                        repo_digest: list_digest.unwrap_or(digest),
                    })
                }
                Err(e) => errors.push(format!("{source}: {e}")),
            }
        }
        let name = r.familiar_tagged().unwrap_or_else(|| r.familiar_repo());
        Err(PullError::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login' ({name}; tried {})",
            r.familiar_repo(),
            errors.join("; ")
        )))
    }

    /// Fetches config and layers of a resolved manifest, unpacks new layers,
    /// records the image. Progress goes to `progress` as Docker's messages.
    pub async fn fetch(
        &self,
        store: &Arc<ImageStore>,
        bus: &EventBus,
        r: &ImageRef,
        resolved: Resolved,
        progress: &mpsc::Sender<Value>,
    ) -> Result<ImageRecord, PullError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| PullError::Failed(format!("{what}: {e}"));
        let send = |v: Value| {
            let p = progress.clone();
            async move {
                let _ = p.send(v).await;
            }
        };
        let mut config = Vec::new();
        self.client
            .pull_blob(&resolved.reference, &resolved.config, &mut config)
            .await
            .map_err(|e| failed("fetching the image config", &e))?;
        let config_json: Value =
            serde_json::from_slice(&config).map_err(|e| failed("parsing the image config", &e))?;
        let diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if diff_ids.len() != resolved.layers.len() {
            return Err(PullError::Failed(format!(
                "image config lists {} diff_ids for {} layers",
                diff_ids.len(),
                resolved.layers.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let short = |d: &str| hex_of(d).chars().take(12).collect::<String>();
        for layer in &resolved.layers {
            send(json!({"status": "Pulling fs layer", "progressDetail": {}, "id": short(&layer.digest)})).await;
        }
        let mut layer_refs = Vec::new();
        for (i, layer) in resolved.layers.iter().enumerate() {
            let id = short(&layer.digest);
            let chain = &chains[i];
            if store.has_layer(chain) {
                send(json!({"status": "Already exists", "progressDetail": {}, "id": id})).await;
            } else {
                let blob = self.download(store, &resolved.reference, layer, &id, progress).await?;
                send(json!({"status": "Verifying Checksum", "progressDetail": {}, "id": id})).await;
                send(json!({"status": "Download complete", "progressDetail": {}, "id": id})).await;
                send(json!({"status": "Extracting", "progressDetail": {"current": 0, "total": layer.size}, "id": id})).await;
                let size = unpack_layer(store.clone(), blob, layer.media_type.clone(), diff_ids[i].clone(), chain.clone(), i.checked_sub(1).map(|p| chains[p].clone())).await?;
                bus.emit(Event::LayerAdded {
                    chain_id: chain.clone(),
                    diff_id: diff_ids[i].clone(),
                    dir: store.layer_diff(chain).display().to_string(),
                    size,
                });
                send(json!({"status": "Pull complete", "progressDetail": {}, "id": id})).await;
            }
            let size = store.layer_size(chain);
            layer_refs.push(LayerRef { chain_id: chain.clone(), diff_id: diff_ids[i].clone(), size });
        }
        let id = format!("sha256:{}", hex_of(&resolved.config.digest));
        let created = config_json["created"].as_str().map(parse_rfc3339).unwrap_or(0);
        let record = ImageRecord {
            id: id.clone(),
            repo_tags: vec![],
            repo_digests: vec![format!("{}@{}", r.familiar_repo(), resolved.repo_digest)],
            layers: layer_refs,
            created,
        };
        let existed = store.get(&id).is_some_and(|i| r.familiar_tagged().is_some_and(|t| i.repo_tags.contains(&t)));
        let tag = r.familiar_tagged();
        store
            .put_image(record.clone(), &config, tag.as_deref())
            .map_err(|e| failed("storing the image", &e))?;
        let stored = store.get(&id).unwrap_or(record);
        bus.emit(Event::ImageAdded {
            id: id.clone(),
            repo_tags: stored.repo_tags.clone(),
            repo_digests: stored.repo_digests.clone(),
            layers: stored.layers.iter().map(|l| l.chain_id.clone()).collect(),
            size: stored.size(),
        });
        send(json!({"status": format!("Digest: {}", resolved.repo_digest)})).await;
        let shown = tag.unwrap_or_else(|| format!("{}@{}", r.familiar_repo(), resolved.repo_digest));
        send(json!({"status": if existed {
            format!("Status: Image is up to date for {shown}")
        } else {
            format!("Status: Downloaded newer image for {shown}")
        }}))
        .await;
        Ok(stored)
    }

    /// Downloads one blob to a temp file, reporting progress; the digest is
    /// verified by the client as the bytes arrive.
    async fn download(
        &self,
        store: &ImageStore,
        reference: &Reference,
        layer: &OciDescriptor,
        id: &str,
        progress: &mpsc::Sender<Value>,
    ) -> Result<PathBuf, PullError> {
        let path = store.tmp_dir().join(format!("blob-{}", hex_of(&layer.digest)));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| PullError::Failed(format!("creating {}: {e}", path.display())))?;
        let writer = ProgressWriter { file, done: 0, total: layer.size.max(0) as u64, last: 0, id: id.to_string(), progress: progress.clone() };
        let result = self.client.pull_blob(reference, layer, writer).await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(PullError::Failed(format!("downloading layer {}: {e}", layer.digest)));
        }
        Ok(path)
    }
}

/// A resolved manifest: which source, which config and layers.
#[derive(Debug)]
pub struct Resolved {
    pub reference: Reference,
    pub source: String,
    pub layers: Vec<OciDescriptor>,
    pub config: OciDescriptor,
    /// The digest the tag points at (the index's, for multi-platform images).
    pub repo_digest: String,
}

/// Decompresses and unpacks a downloaded blob on a blocking thread, checks
/// its diff_id and commits it to the store. Returns the content size.
async fn unpack_layer(
    store: Arc<ImageStore>,
    blob: PathBuf,
    media_type: String,
    diff_id: String,
    chain: String,
    parent: Option<String>,
) -> Result<u64, PullError> {
    tokio::task::spawn_blocking(move || {
        let result = (|| {
            let tmp = tempfile::Builder::new()
                .prefix("unpack-")
                .tempdir_in(store.tmp_dir())
                .map_err(|e| PullError::Failed(format!("temp dir: {e}")))?;
            let target = tmp.path().join("diff");
            std::fs::create_dir(&target).map_err(|e| PullError::Failed(e.to_string()))?;
            let file = std::fs::File::open(&blob).map_err(|e| PullError::Failed(e.to_string()))?;
            let unpacker = Unpacker::new(&target);
            let (got, size) = if media_type.ends_with("gzip") || media_type.ends_with("tar.gzip") {
                unpacker.unpack(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
            } else if media_type.ends_with("zstd") {
                return Err(PullError::Failed(format!("layer media type {media_type} is not supported")));
            } else {
                unpacker.unpack(BufReader::new(file))
            }
            .map_err(|e| PullError::Failed(format!("unpacking layer {diff_id}: {e}")))?;
            if got != diff_id {
                return Err(PullError::Failed(format!(
                    "layer diff_id mismatch: the config says {diff_id}, the content is {got}"
                )));
            }
            store
                .commit_layer(&chain, &diff_id, parent.as_deref(), size, &target)
                .map_err(|e| PullError::Failed(format!("storing layer {chain}: {e}")))?;
            Ok(size)
        })();
        let _ = std::fs::remove_file(&blob);
        result
    })
    .await
    .map_err(|e| PullError::Failed(format!("unpack task: {e}")))?
}

/// Writes the blob and reports progress about every 256 KiB.
struct ProgressWriter {
    file: tokio::fs::File,
    done: u64,
    total: u64,
    last: u64,
    id: String,
    progress: mpsc::Sender<Value>,
}

impl tokio::io::AsyncWrite for ProgressWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let poll = std::pin::Pin::new(&mut this.file).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            this.done += *n as u64;
            if this.done - this.last >= 256 * 1024 || this.done == this.total {
                this.last = this.done;
                let _ = this.progress.try_send(json!({
                    "status": "Downloading",
                    "progressDetail": {"current": this.done, "total": this.total},
                    "progress": progress_bar(this.done, this.total),
                    "id": this.id,
                }));
            }
        }
        poll
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

/// "[=====>      ]  1.2MB/3.4MB", as Docker's non-terminal progress.
pub fn progress_bar(done: u64, total: u64) -> String {
    let width = 50usize;
    let filled = (done.min(total) * width as u64).checked_div(total).unwrap_or(0) as usize;
    let bar = if filled >= width {
        "=".repeat(width)
    } else {
        format!("{}>{}", "=".repeat(filled), " ".repeat(width - filled - 1))
    };
    format!("[{bar}]  {}/{}", human_size(done), human_size(total))
}

/// Sizes as Docker prints them (decimal units, 3 significant digits).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let digits: String = {
        // 3 significant digits, trailing zeros trimmed, as Go's %.4g.
        let prec = if v >= 100.0 { 0 } else if v >= 10.0 { 1 } else { 2 };
        let t = format!("{v:.prec$}");
        if t.contains('.') { t.trim_end_matches('0').trim_end_matches('.').to_string() } else { t }
    };
    format!("{digits}{}", units[u])
}

/// Seconds since the epoch from an RFC 3339 timestamp (0 if unreadable).
pub fn parse_rfc3339(s: &str) -> i64 {
    let p = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) =
        (p(0, 4), p(5, 7), p(8, 10), p(11, 13), p(14, 16), p(17, 19))
    else {
        return 0;
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + se
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(7_340_000), "7.34MB");
        assert_eq!(human_size(187_000_000), "187MB");
    }

    #[test]
    fn rfc3339_parses_to_unix_seconds() {
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), 1_767_225_600);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10.5Z"), 10);
        assert_eq!(parse_rfc3339("junk"), 0);
    }

    #[test]
    fn docker_hub_images_try_each_mirror_first() {
        let p = Puller::new(&["http://127.0.0.1:5000".into()], &[]);
        let s = p.sources(&ImageRef::parse("alpine").unwrap());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1, "127.0.0.1:5000");
        assert_eq!(s[0].0.resolve_registry(), "127.0.0.1:5000");
        let s = p.sources(&ImageRef::parse("localhost:5000/library/alpine").unwrap());
        assert_eq!(s.len(), 1);
    }
}
