//! `POST /build`: the legacy builder's endpoint. The context tar is saved,
//! unpacked (with .dockerignore applied) and built; progress streams back as
//! Docker's JSON messages, so the CLI prints its usual `Step N/M :` lines.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use crate::build::BuildOptions;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::image::reference::ImageRef;

pub fn router() -> Router<AppState> {
    Router::new().route("/build", post(build)).route("/build/prune", post(prune))
}

/// `docker builder prune`: the cached steps, and the intermediate layers
/// and configs only they held (layers a container stands on stay).
async fn prune(State(st): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let Some(builder) = st.builder.clone() else {
        return Ok(axum::Json(json!({"CachesDeleted": null, "SpaceReclaimed": 0})));
    };
    let keep: std::collections::BTreeSet<String> = st
        .containers
        .list()
        .iter()
        .flat_map(|c| c.record().layer.lower)
        .filter_map(|dir| std::path::Path::new(&dir).parent()?.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let cached = builder.clear_cache();
    let images = st.images.clone();
    let removed = tokio::task::spawn_blocking(move || images.prune_unreferenced(&keep)).await.map_err(internal)?.map_err(internal)?;
    for (chain, _) in &removed {
        st.bus.emit(berth_shared::Event::LayerRemoved { chain_id: chain.clone() });
    }
    let reclaimed: u64 = removed.iter().map(|(_, s)| s).sum();
    let mut deleted: Vec<String> = cached.iter().map(|k| format!("{:.25}", k)).collect();
    deleted.extend(removed.into_iter().map(|(c, _)| c));
    Ok(axum::Json(json!({"CachesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed})))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

/// The query, keeping repeated keys (`t` may come several times).
pub fn options(query: &str) -> ApiResult<BuildOptions> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let flag = |k: &str| matches!(get(k).as_deref(), Some("1" | "true" | "True"));
    let json_map = |k: &str| -> ApiResult<BTreeMap<String, String>> {
        match get(k).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => {
                let m: BTreeMap<String, Option<String>> =
                    serde_json::from_str(&v).map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}")))?;
                Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
            }
        }
    };
    let mut tags = Vec::new();
    for (k, v) in &pairs {
        if k == "t" && !v.is_empty() {
            let r = ImageRef::parse(v).map_err(|e| ApiError::bad_request(format!("invalid tag {v:?}: {e}")))?;
            if r.digest.is_some() {
                return Err(ApiError::bad_request(format!("invalid tag {v:?}: a tag cannot hold a digest")));
            }
            tags.push(r.familiar_tagged().unwrap_or_else(|| v.clone()));
        }
    }
    if let Some(remote) = get("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(format!("berth builds from a context sent with the request, not from a remote ({remote})")));
    }
    Ok(BuildOptions {
        tags,
        // A repeated `dockerfile` takes the first (as Docker reads the query).
        dockerfile: pairs
            .iter()
            .find(|(k, _)| k == "dockerfile")
            .map(|(_, v)| v.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "Dockerfile".into()),
        nocache: flag("nocache"),
        quiet: flag("q"),
        pull: flag("pull"),
        buildargs: json_map("buildargs")?,
        labels: json_map("labels")?,
        target: get("target").filter(|t| !t.is_empty()),
        // RUN steps' containers: `--add-host` (the key may repeat) and `--network`.
        extra_hosts: {
            let hosts: Vec<String> = pairs.iter().filter(|(k, v)| k == "extrahosts" && !v.is_empty()).map(|(_, v)| v.clone()).collect();
            for h in &hosts {
                berth_shared::etc::extra_host(h, std::net::Ipv4Addr::UNSPECIFIED).map_err(ApiError::bad_request)?;
            }
            hosts
        },
        network_mode: match get("networkmode").unwrap_or_default().as_str() {
            "" | "default" | "bridge" => None,
            m @ ("host" | "none") => Some(m.to_string()),
            m if m.starts_with("container:") => {
                return Err(ApiError::bad_request(format!("berth cannot run a build's steps in another container's network ({m})")))
            }
            m => Some(m.to_string()),
        },
        cache_from: match get("cachefrom").filter(|v| !v.is_empty()) {
            None => Vec::new(),
            Some(v) => serde_json::from_str::<Vec<String>>(&v).map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
        },
        dockerfile_text: None,
    })
}

async fn build(State(st): State<AppState>, RawQuery(query): RawQuery, body: Body) -> ApiResult<Response> {
    let opts = options(query.as_deref().unwrap_or(""))?;
    let builder = st
        .builder
        .clone()
        .ok_or_else(|| ApiError::new(ErrorKind::NotImplemented, "builds need berthd's engine, which is not running here"))?;
    // Where a build's time goes (debug log "build phases").
    let t0 = std::time::Instant::now();
    let scratch = tempfile::Builder::new().prefix("build-").tempdir_in(st.images.tmp_dir()).map_err(internal)?;
    let archive = scratch.path().join("context.tar");
    let ctx = scratch.path().join("context");
    // The context is kept in memory while it is small (most are), else
    // spilled to a file as it comes.
    let mut held: Vec<u8> = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the build context: {e}")))?;
        match &mut file {
            Some(f) => f.write_all(&chunk).await.map_err(internal)?,
            None if held.len() + chunk.len() > crate::build::index::MAX_IN_MEMORY => {
                let mut f = tokio::fs::File::create(&archive).await.map_err(internal)?;
                f.write_all(&held).await.map_err(internal)?;
                f.write_all(&chunk).await.map_err(internal)?;
                held = Vec::new();
                file = Some(f);
            }
            None => held.extend_from_slice(&chunk),
        }
    }
    let in_memory = file.is_none();
    if let Some(mut f) = file {
        f.flush().await.map_err(internal)?;
    }
    let t_received = t0.elapsed();
    let df = opts.dockerfile.clone();
    // In memory: indexed, and unpacked only if a step needs its files. A
    // context the index does not model, or a big one, is unpacked now.
    // (The scratch dir goes with the work: a client that leaves while it
    // runs drops this future, and the dir is removed once the work stops.)
    let (a, c) = (archive.clone(), ctx.clone());
    let (made, scratch) = tokio::task::spawn_blocking(move || {
        let indexed = if in_memory { crate::build::index::ContextIndex::read(held, &df) } else { Err(Vec::new()) };
        let made = match indexed {
            Ok((index, kept)) => Ok((crate::build::context::Context::in_memory(c, index, &df), kept)),
            Err(held) => {
                let unpacked = std::fs::create_dir_all(&c).map_err(|e| e.to_string()).and_then(|_| {
                    if in_memory {
                        crate::build::context::unpack_from(&held[..], &c, &df)
                    } else {
                        crate::build::context::unpack(&a, &c, &df)
                    }
                });
                let _ = std::fs::remove_file(&a);
                unpacked.map(|kept| (crate::build::context::Context::on_disk(c), kept))
            }
        };
        (made, scratch)
    })
    .await
    .map_err(internal)?;
    let (context, kept) = made.map_err(ApiError::bad_request)?;
    let context = std::sync::Arc::new(context);
    let mut opts = opts;
    opts.dockerfile_text = kept;
    let t_context = t0.elapsed();
    // An empty Dockerfile is the client's error, before any output.
    let text = match &opts.dockerfile_text {
        Some(t) => Ok(Some(t.clone())),
        None => context.read_dockerfile(&opts.dockerfile),
    };
    if let Ok(Some(text)) = text {
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(format!("the Dockerfile ({}) cannot be empty", opts.dockerfile)));
        }
    }

    let (tx, rx) = mpsc::channel::<Value>(256);
    tokio::spawn(async move {
        let _scratch = scratch; // the context lives until the build ends
        let built = builder.build(&opts, &context, tx.clone()).await;
        tracing::debug!(
            received_ms = t_received.as_secs_f64() * 1000.0,
            context_ms = (t_context - t_received).as_secs_f64() * 1000.0,
            unpacked = !context.in_memory_only(),
            steps_ms = (t0.elapsed() - t_context).as_secs_f64() * 1000.0,
            "build phases"
        );
        if let Err(e) = built {
            tracing::info!(error = %crate::text::clip(&e.to_string()), "build failed");
            let mut detail = json!({"message": e.message});
            if let Some(code) = e.code {
                detail["code"] = json!(code);
            }
            let _ = tx.send(json!({"errorDetail": detail, "error": e.message})).await;
        }
    });
    let body = ReceiverStream::new(rx).map(|v| Ok::<_, std::convert::Infallible>(format!("{v}\r\n")));
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_every_tag_and_read_build_args() {
        let o =
            options("t=gourmetgram-app%3A0.0.1&t=gg&dockerfile=docker%2FDockerfile&nocache=1&buildargs=%7B%22V%22%3A%222%22%7D").unwrap();
        assert_eq!(o.tags, vec!["gourmetgram-app:0.0.1", "gg:latest"]);
        assert_eq!(o.dockerfile, "docker/Dockerfile");
        assert!(o.nocache && !o.quiet);
        assert_eq!(o.buildargs.get("V").map(String::as_str), Some("2"));
        assert_eq!(options("").unwrap().dockerfile, "Dockerfile");
        assert_eq!(options("dockerfile=a%2FDockerfile&dockerfile=FROM%20x").unwrap().dockerfile, "a/Dockerfile");
        assert!(options("t=Bad%20Tag").is_err());
    }
}
