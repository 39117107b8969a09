//! Pulling images from a registry (through registry mirrors for docker.io),
//! with Docker's JSON progress messages.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How long a registry may send nothing before a pull gives up on it,
/// unless `BERTH_PULL_IDLE_TIMEOUT_SECS` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The idle timeout from the environment (`BERTH_PULL_IDLE_TIMEOUT_SECS`).
pub fn idle_timeout_from_env() -> Duration {
    std::env::var("BERTH_PULL_IDLE_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_IDLE_TIMEOUT)
}

/// Where to fetch from: each docker.io mirror, then the registry itself.
pub struct Puller {
    client: Client,
    mirrors: Vec<String>,
    /// A blob download that gets no byte for this long fails (a registry
    /// that stalls mid-blob would otherwise hang the pull for ever).
    idle: Duration,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").field("mirrors", &self.mirrors).finish_non_exhaustive()
    }
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string()
}

impl Puller {
    /// `mirrors` are URLs as in Docker's `registry-mirrors`; `http://` ones,
    /// the `insecure` hosts and loopback registries are reached over HTTP.
    pub fn new(mirrors: &[String], insecure: &[String]) -> Self {
        Self::with_idle_timeout(mirrors, insecure, idle_timeout_from_env())
    }

    /// As [`Puller::new`], with the idle timeout given.
    pub fn with_idle_timeout(mirrors: &[String], insecure: &[String], idle: Duration) -> Self {
        let mut plain: Vec<String> = insecure.iter().map(|h| host_of(h)).collect();
        plain.extend(mirrors.iter().filter(|m| m.starts_with("http://")).map(|m| host_of(m)));
        for h in ["localhost:5000", "127.0.0.1:5000"] {
            plain.push(h.to_string());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
            connect_timeout: Some(Duration::from_secs(5)),
            // Each read (a manifest, a config, a chunk of a blob) must come
            // within the idle timeout.
            read_timeout: Some(idle),
            ..Default::default()
        };
        // The process's TLS provider (ring), named before the first client;
        // a provider already installed is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Puller { client: Client::new(config), mirrors: mirrors.iter().map(|m| host_of(m)).collect(), idle }
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
                Err(e) => errors.push(format!("{source}: {}", crate::text::excerpt(&e.to_string(), 300))),
            }
        }
        let name = r.familiar_tagged().unwrap_or_else(|| r.familiar_repo());
        Err(PullError::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login' ({name}; tried {})",
            r.familiar_repo(),
            errors.join("; ")
        )))
    }

    /// `GET /distribution/{name}/json`: what the registry has under the
    /// name — the descriptor of its manifest (or index) and the platforms
    /// it serves — without pulling anything.
    pub async fn distribution(&self, r: &ImageRef) -> Result<Value, PullError> {
        const TYPES: &[&str] = &[
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ];
        let mut errors = Vec::new();
        for (reference, source) in self.sources(r) {
            let (bytes, digest) = match self.client.pull_manifest_raw(&reference, &RegistryAuth::Anonymous, TYPES).await {
                Ok(got) => got,
                Err(e) => {
                    errors.push(format!("{source}: {}", crate::text::excerpt(&e.to_string(), 300)));
                    continue;
                }
            };
            let m: Value = serde_json::from_slice(&bytes).map_err(|e| PullError::Failed(format!("the manifest is not JSON: {e}")))?;
            let index = m["manifests"].is_array();
            let media = m["mediaType"].as_str().map(String::from).unwrap_or_else(|| {
                if index { "application/vnd.oci.image.index.v1+json" } else { "application/vnd.oci.image.manifest.v1+json" }.to_string()
            });
            let platforms: Vec<Value> = if index {
                // (Attestation entries say "unknown": not platforms.)
                m["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["platform"].clone())
                    .filter(|p| p.is_object() && p["architecture"] != "unknown")
                    .collect()
            } else {
                let config: OciDescriptor =
                    serde_json::from_value(m["config"].clone()).map_err(|e| PullError::Failed(format!("the manifest's config: {e}")))?;
                let mut blob = Vec::new();
                self.client.pull_blob(&reference, &config, &mut blob).await.map_err(|e| PullError::Failed(e.to_string()))?;
                let c: Value = serde_json::from_slice(&blob).unwrap_or(Value::Null);
                let mut p = json!({"architecture": c["architecture"], "os": c["os"]});
                if let Some(v) = c["variant"].as_str() {
                    p["variant"] = json!(v);
                }
                vec![p]
            };
            return Ok(json!({
                "Descriptor": {"mediaType": media, "digest": digest, "size": bytes.len()},
                "Platforms": platforms,
            }));
        }
        Err(PullError::NotFound(format!(
            "{}: manifest unknown (tried {})",
            r.familiar_tagged().unwrap_or_else(|| r.familiar_repo()),
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
        let config_json: Value = serde_json::from_slice(&config).map_err(|e| failed("parsing the image config", &e))?;
        let diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if diff_ids.len() != resolved.layers.len() {
            return Err(PullError::Failed(format!("image config lists {} diff_ids for {} layers", diff_ids.len(), resolved.layers.len())));
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
                let size = unpack_layer(
                    store.clone(),
                    blob,
                    layer.media_type.clone(),
                    diff_ids[i].clone(),
                    chain.clone(),
                    i.checked_sub(1).map(|p| chains[p].clone()),
                )
                .await?;
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
        let created = config_json["created"].as_str().map(crate::ids::parse_rfc3339).unwrap_or(0);
        let record = ImageRecord {
            id: id.clone(),
            repo_tags: vec![],
            repo_digests: vec![format!("{}@{}", r.familiar_repo(), resolved.repo_digest)],
            layers: layer_refs,
            created,
        };
        let existed = store.get(&id).is_some_and(|i| r.familiar_tagged().is_some_and(|t| i.repo_tags.contains(&t)));
        let tag = r.familiar_tagged();
        store.put_image(record.clone(), &config, tag.as_deref()).map_err(|e| failed("storing the image", &e))?;
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
    /// verified by the client as the bytes arrive. No byte for the idle
    /// timeout fails it; the file goes when the returned guard does (also
    /// when the pull is dropped midway: its client went away).
    async fn download(
        &self,
        store: &ImageStore,
        reference: &Reference,
        layer: &OciDescriptor,
        id: &str,
        progress: &mpsc::Sender<Value>,
    ) -> Result<TempBlob, PullError> {
        let blob = TempBlob(store.tmp_dir().join(format!("blob-{}-{:08x}", hex_of(&layer.digest), crate::ids::random_u128() as u32)));
        let file = tokio::fs::File::create(&blob.0).await.map_err(|e| PullError::Failed(format!("creating {}: {e}", blob.0.display())))?;
        let start = Instant::now();
        let seen = Arc::new(AtomicU64::new(0));
        let writer = ProgressWriter {
            file,
            done: 0,
            total: layer.size.max(0) as u64,
            last: 0,
            id: id.to_string(),
            progress: progress.clone(),
            start,
            seen: seen.clone(),
        };
        let idle = self.idle;
        let watchdog = async {
            loop {
                let last = Duration::from_millis(seen.load(Ordering::Relaxed));
                let quiet = start.elapsed().saturating_sub(last);
                if quiet >= idle {
                    return;
                }
                tokio::time::sleep(idle - quiet).await;
            }
        };
        let timed_out = || {
            PullError::Failed(format!("downloading layer {}: timeout: the registry sent nothing for {}s", layer.digest, idle.as_secs_f64()))
        };
        let result = tokio::select! {
            r = self.client.pull_blob(reference, layer, writer) => r.map_err(|e| {
                // The client's own read timeout says only "error decoding
                // response body": a quiet spell as long as the limit is ours.
                let quiet = start.elapsed().saturating_sub(Duration::from_millis(seen.load(Ordering::Relaxed)));
                if quiet >= idle.mul_f64(0.9) || error_chain(&e).contains("timed out") {
                    return timed_out();
                }
                let e = crate::text::excerpt(&error_chain(&e), 300);
                PullError::Failed(format!("downloading layer {}: {e}", layer.digest))
            }),
            _ = watchdog => Err(timed_out()),
        };
        result.map(|_| blob)
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

/// An error and its sources, joined by ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A downloaded blob's temp file, removed when dropped.
#[derive(Debug)]
struct TempBlob(PathBuf);

impl TempBlob {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Decompresses and unpacks a downloaded blob on a blocking thread, checks
/// its diff_id and commits it to the store. Returns the content size.
async fn unpack_layer(
    store: Arc<ImageStore>,
    blob: TempBlob,
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
            let file = std::fs::File::open(blob.path()).map_err(|e| PullError::Failed(e.to_string()))?;
            let unpacker = Unpacker::new(&target);
            let (got, size, split) = if media_type.ends_with("gzip") || media_type.ends_with("tar.gzip") {
                unpacker.unpack_recorded(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
            } else if media_type.ends_with("zstd") {
                return Err(PullError::Failed(format!("layer media type {media_type} is not supported")));
            } else {
                unpacker.unpack_recorded(BufReader::new(file))
            }
            .map_err(|e| PullError::Failed(format!("unpacking layer {diff_id}: {e}")))?;
            if got != diff_id {
                return Err(PullError::Failed(format!("layer diff_id mismatch: the config says {diff_id}, the content is {got}")));
            }
            crate::fault::point("pull.unpacked");
            let added = store
                .commit_layer(&chain, &diff_id, parent.as_deref(), size, &target)
                .map_err(|e| PullError::Failed(format!("storing layer {chain}: {e}")))?;
            if added {
                store.save_tar_split(&chain, &split).map_err(|e| PullError::Failed(format!("storing layer {chain}'s record: {e}")))?;
            }
            Ok(size)
        })();
        drop(blob);
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
    /// When the download started, and when (ms after) a byte last came.
    start: Instant,
    seen: Arc<AtomicU64>,
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
            this.seen.store(this.start.elapsed().as_millis() as u64, Ordering::Relaxed);
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
    let bar = if filled >= width { "=".repeat(width) } else { format!("{}>{}", "=".repeat(filled), " ".repeat(width - filled - 1)) };
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
        let prec = if v >= 100.0 {
            0
        } else if v >= 10.0 {
            1
        } else {
            2
        };
        let t = format!("{v:.prec$}");
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    format!("{digits}{}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(7_340_000), "7.34MB");
        assert_eq!(human_size(187_000_000), "187MB");
    }

    /// A registry on 127.0.0.1 that serves a manifest and config, then
    /// sends the first 100 bytes of the layer and goes quiet.
    async fn stalling_registry() -> (String, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let layer_digest = format!("sha256:{}", "1".repeat(64));
        let diff_id = format!("sha256:{}", "2".repeat(64));
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).to_string();
        let config_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config.as_bytes())));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1000, "digest": layer_digest}],
        })
        .to_string();
        let manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(manifest.as_bytes())));
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (config, manifest, manifest_digest, config_digest) =
                    (config.clone(), manifest.clone(), manifest_digest.clone(), config_digest.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                    let head = req.starts_with("HEAD");
                    let reply = |ctype: &str, body: &str, extra: &str| {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{}",
                            body.len(),
                            if head { "" } else { body }
                        )
                    };
                    if path.contains("/manifests/") {
                        let r = reply(
                            "application/vnd.docker.distribution.manifest.v2+json",
                            &manifest,
                            &format!("Docker-Content-Digest: {manifest_digest}\r\n"),
                        );
                        let _ = sock.write_all(r.as_bytes()).await;
                    } else if path.ends_with(&config_digest) {
                        let _ = sock.write_all(reply("application/octet-stream", &config, "").as_bytes()).await;
                    } else if path.contains("/blobs/") {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(&[0u8; 100]).await;
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    } else {
                        let _ = sock.write_all(reply("application/json", "{}", "").as_bytes()).await;
                    }
                });
            }
        });
        (addr, server)
    }

    fn leftovers(store: &ImageStore) -> Vec<String> {
        std::fs::read_dir(store.tmp_dir())
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_registry_that_stalls_mid_blob_fails_the_pull_within_the_idle_timeout() {
        let (addr, server) = stalling_registry().await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ImageStore::open(dir.path()).unwrap());
        let bus = EventBus::new();
        let puller = Puller::with_idle_timeout(&[], std::slice::from_ref(&addr), Duration::from_secs(1));
        let r = ImageRef::parse(&format!("{addr}/stall/app:1")).unwrap();
        let resolved = puller.resolve(&r).await.unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let start = Instant::now();
        let e = tokio::time::timeout(Duration::from_secs(20), puller.fetch(&store, &bus, &r, resolved, &tx))
            .await
            .expect("the pull hung")
            .unwrap_err();
        let took = start.elapsed();
        assert!(e.to_string().contains("timeout"), "{e}");
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(8), "{took:?}");
        assert_eq!(leftovers(&store), Vec::<String>::new(), "no blob or unpack dir is left");

        // A pull dropped midway (its client went away) leaves nothing either.
        let slow = Puller::with_idle_timeout(&[], std::slice::from_ref(&addr), Duration::from_secs(60));
        let resolved = slow.resolve(&r).await.unwrap();
        let dropped = tokio::time::timeout(Duration::from_millis(500), slow.fetch(&store, &bus, &r, resolved, &tx)).await;
        assert!(dropped.is_err(), "the stalled pull was still running");
        assert_eq!(leftovers(&store), Vec::<String>::new(), "a dropped pull removes its blob");
        drop(tx);
        server.abort();
        let _ = drain.await;
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
