//! Image endpoints: pull (`POST /images/create`), list, inspect, tag, remove.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_shared::Event;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::ids::format_rfc3339;
use crate::image::pull::PullError;
use crate::image::reference::ImageRef;
use crate::image::store::ImageRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/images/create", post(create))
        .route("/images/json", get(list))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/distribution/{*rest}", get(distribution))
        .route("/images/load", post(load))
        .route("/images/{*rest}", get(by_name_get_or_save).post(by_name_post).delete(remove))
}

/// `GET /images/{name}/get` (`docker save` of one), else the image's
/// inspect or history.
async fn by_name_get_or_save(st: State<AppState>, v: super::ApiVersion, rest: Path<String>) -> ApiResult<Response> {
    match rest.0.strip_suffix("/get") {
        Some(name) => save(&st.0, vec![name.to_string()]),
        None => by_name_get(st, v, rest).await.map(IntoResponse::into_response),
    }
}

/// `GET /distribution/{name}/json`: the registry's descriptor and
/// platforms for a name (SDKs' `get_registry_data`).
async fn distribution(State(st): State<AppState>, Path(rest): Path<String>) -> ApiResult<Json<Value>> {
    let name = rest.strip_suffix("/json").ok_or_else(|| ApiError::not_found("page not found"))?;
    let r = ImageRef::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    st.puller.distribution(&r).await.map(Json).map_err(|e| match e {
        PullError::NotFound(m) => ApiError::not_found(m),
        PullError::Failed(m) => ApiError::new(ErrorKind::Internal, m),
    })
}

/// `GET /images/get?names=a&names=b` (`docker save a b`).
async fn save_many(State(st): State<AppState>, axum::extract::RawQuery(raw): axum::extract::RawQuery) -> ApiResult<Response> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let names: Vec<String> = pairs.into_iter().filter(|(k, _)| k == "names").map(|(_, v)| v).collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given (names=)"));
    }
    save(&st, names)
}

/// A writer into the response body's channel (for the blocking writer).
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(buf.to_vec())).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams the archive of `names` (each checked first: an unknown one is a
/// plain 404). A failure while writing cuts the stream short.
fn save(st: &AppState, names: Vec<String>) -> ApiResult<Response> {
    for n in &names {
        crate::engine::saveload::wanted(&st.images, n)?;
    }
    let (tx, rx) = mpsc::channel(16);
    let images = st.images.clone();
    tokio::task::spawn_blocking(move || {
        let w = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(tx.clone()));
        if let Err(e) = crate::engine::saveload::save(&images, &names, w) {
            tracing::warn!(error = %e, "docker save failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// `POST /images/load` (`docker load`): the body is the archive.
async fn load(State(st): State<AppState>, Query(q): Q, body: axum::body::Body) -> ApiResult<Response> {
    let path = upload(&st, body, "load").await?;
    let (images, bus, p) = (st.images.clone(), st.bus.clone(), path.clone());
    let loaded = tokio::task::spawn_blocking(move || crate::engine::saveload::load(&images, &bus, &p))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()));
    let _ = std::fs::remove_file(&path);
    let loaded = loaded??;
    let quiet = q.get("quiet").is_some_and(|v| v == "1" || v == "true");
    let _ = quiet; // (Docker's quiet only drops progress bars; berth sends none.)
    let text: String = loaded.iter().map(|l| format!("{}\n", json!({"stream": format!("{l}\n")}))).collect();
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// Writes a request body to a scratch file of the store (the unpackers
/// read files); removed by the caller.
async fn upload(st: &AppState, body: axum::body::Body, what: &str) -> ApiResult<std::path::PathBuf> {
    use tokio::io::AsyncWriteExt;
    let path = st.images.tmp_dir().join(format!("{what}-{:016x}.tar", crate::ids::random_u128() as u64));
    let written = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            f.write_all(&chunk.map_err(std::io::Error::other)?).await?;
        }
        f.flush().await
    }
    .await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(ApiError::bad_request(format!("reading the archive: {e}")));
    }
    Ok(path)
}

type Q = Query<HashMap<String, String>>;

/// `docker pull`: resolves first (so an unknown image is a plain 404), then
/// streams Docker's progress messages as the layers arrive.
/// `docker import`: the request body (`fromSrc=-`) is the tar.
async fn import(st: &AppState, query: &str, body: axum::body::Body) -> ApiResult<Response> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let one = |k: &str| pairs.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if one("fromSrc") != "-" {
        return Err(ApiError::bad_request("berth imports from the request body only (fromSrc=-), not from a URL"));
    }
    let tag = crate::engine::commit::image_tag(&one("repo"), &one("tag"))?;
    let changes: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "changes").flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>()).collect();
    // The upload goes to the store's scratch first (the unpacker reads a file).
    let path = upload(st, body, "import").await?;
    let (images, bus, message, p) = (st.images.clone(), st.bus.clone(), one("message"), path.clone());
    let id = tokio::task::spawn_blocking(move || crate::engine::commit::import(&images, &bus, &p, &changes, &message, tag.as_deref()))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()));
    let _ = std::fs::remove_file(&path);
    let id = id??;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], format!("{}\n", json!({"status": id}))).into_response())
}

async fn create(
    State(st): State<AppState>,
    Query(q): Q,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    if q.contains_key("fromSrc") {
        return import(&st, raw.as_deref().unwrap_or(""), body).await;
    }
    let from = q.get("fromImage").cloned().unwrap_or_default();
    if from.is_empty() {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    }
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let full = match tag {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let r = ImageRef::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resolved = st.puller.resolve(&r).await.map_err(|e| match e {
        PullError::NotFound(m) => ApiError::not_found(m),
        PullError::Failed(m) => ApiError::new(ErrorKind::Internal, m),
    })?;
    let (tx, rx) = mpsc::channel::<Value>(256);
    let shown = r.tag.clone().or(r.digest.clone()).unwrap_or_else(|| "latest".into());
    let _ = tx.send(json!({"status": format!("Pulling from {}", r.repository), "id": shown})).await;
    tokio::spawn(async move {
        // A client that goes away (the response stream dropped) cancels the
        // pull: the download stops and its temp files go.
        let fetched = tokio::select! {
            r = st.puller.fetch(&st.images, &st.bus, &r, resolved, &tx) => r,
            _ = tx.closed() => {
                tracing::info!(image = %full, "pull cancelled: the client went away");
                return;
            }
        };
        if let Err(e) = fetched {
            tracing::warn!(error = %crate::text::clip(&e.to_string()), "pull failed");
            let _ = tx.send(json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()})).await;
        }
    });
    let body = ReceiverStream::new(rx).map(|v| Ok::<_, std::convert::Infallible>(format!("{v}\r\n")));
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

fn no_such_image(name: &str) -> ApiError {
    // Docker names the reference with its tag ("nope:latest").
    ApiError::not_found(format!("No such image: {}", crate::image::reference::familiar(name)))
}

pub(crate) fn find(st: &AppState, name: &str) -> ApiResult<ImageRecord> {
    st.images.resolve(name).ok_or_else(|| no_such_image(name))
}

async fn list(State(st): State<AppState>, v: super::ApiVersion, Query(q): Q) -> ApiResult<Json<Value>> {
    let filters = super::filters::from_query(&q)?;
    let mut images = filter_images(&st, st.images.list(), &filters)?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(Json(Value::Array(images.iter().map(|i| summary(&st, v, i)).collect())))
}

/// One image as `GET /images/json` (and `/system/df`) lists it.
pub(crate) fn summary(st: &AppState, v: super::ApiVersion, i: &ImageRecord) -> Value {
    let labels = st.images.config(&i.id).map(|c| c["config"]["Labels"].clone()).unwrap_or(Value::Null);
    // A dangling image, as API < 1.43 sends it: the docker CLI lists it as
    // <none> only when both lists say so (with "<none>:<none>" alone it drops
    // the image from the table). From 1.43 on, both lists are empty.
    let dangling = i.repo_tags.is_empty() && i.repo_digests.is_empty() && !v.at_least(43);
    let mut summary = json!({
        "Id": i.id,
        "ParentId": "",
        "RepoTags": if dangling { json!(["<none>:<none>"]) } else { json!(i.repo_tags) },
        "RepoDigests": if dangling { json!(["<none>@<none>"]) } else { json!(i.repo_digests) },
        "Created": i.created,
        "Size": i.size(),
        "VirtualSize": i.size(),
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    });
    if let Some(m) = summary.as_object_mut() {
        super::versions::image_summary(v, m);
    }
    summary
}

/// GET /images/{name}/json and /images/{name}/history (names may hold '/').
async fn by_name_get(State(st): State<AppState>, v: super::ApiVersion, Path(rest): Path<String>) -> ApiResult<Json<Value>> {
    if let Some(name) = rest.strip_suffix("/json") {
        let mut answer = inspect(&st, name)?;
        if let Some(m) = answer.as_object_mut() {
            super::versions::image_inspect(v, m);
        }
        return Ok(Json(answer));
    }
    if let Some(name) = rest.strip_suffix("/history") {
        let img = find(&st, name)?;
        let config = st.images.config(&img.id).unwrap_or(Value::Null);
        let history = config["history"].as_array().cloned().unwrap_or_default();
        let mut layer_sizes = img.layers.iter().map(|l| l.size);
        let mut out: Vec<Value> = history
            .iter()
            .map(|h| {
                let empty = h["empty_layer"].as_bool().unwrap_or(false);
                json!({
                    "Id": "<missing>",
                    "Created": h["created"].as_str().map(crate::ids::parse_rfc3339).unwrap_or(0),
                    "CreatedBy": h["created_by"].as_str().unwrap_or(""),
                    "Tags": null,
                    "Size": if empty { 0 } else { layer_sizes.next().unwrap_or(0) },
                    "Comment": h["comment"].as_str().unwrap_or(""),
                })
            })
            .collect();
        out.reverse();
        if let Some(first) = out.first_mut() {
            first["Id"] = json!(img.id);
            first["Tags"] = json!(img.repo_tags);
        }
        return Ok(Json(Value::Array(out)));
    }
    Err(ApiError::not_found("page not found"))
}

pub(crate) fn inspect(st: &AppState, name: &str) -> ApiResult<Value> {
    let img = find(st, name)?;
    let config = st.images.config(&img.id).unwrap_or(Value::Null);
    let lower: Vec<String> = img.layers.iter().rev().map(|l| st.images.layer_diff(&l.chain_id).display().to_string()).collect();
    let top = img.layers.last().map(|l| st.images.layer_diff(&l.chain_id).display().to_string());
    let mut data = serde_json::Map::new();
    if let Some(top) = &top {
        data.insert("UpperDir".into(), json!(top));
        data.insert("MergedDir".into(), json!(top.replace("/diff", "/merged")));
        data.insert("WorkDir".into(), json!(top.replace("/diff", "/work")));
        if lower.len() > 1 {
            data.insert("LowerDir".into(), json!(lower[1..].join(":")));
        }
    }
    Ok(json!({
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": "",
        "Comment": "",
        "Created": config["created"].as_str().unwrap_or(&format_rfc3339(img.created, 0)),
        "Container": "",
        "ContainerConfig": config["container_config"].clone(),
        "DockerVersion": config["docker_version"].as_str().unwrap_or(""),
        "Author": config["author"].as_str().unwrap_or(""),
        "Config": config["config"].clone(),
        "Architecture": config["architecture"].clone(),
        "Os": config["os"].clone(),
        "Size": img.size(),
        "VirtualSize": img.size(),
        "GraphDriver": { "Name": "overlay2", "Data": data },
        "RootFS": { "Type": "layers", "Layers": img.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>() },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    }))
}

/// POST /images/{name}/tag?repo=&tag=
async fn by_name_post(State(st): State<AppState>, Path(rest): Path<String>, Query(q): Q) -> ApiResult<Response> {
    let Some(name) = rest.strip_suffix("/tag") else {
        return Err(ApiError::not_found("page not found"));
    };
    let img = find(&st, name)?;
    let repo = q.get("repo").cloned().unwrap_or_default();
    let tag = q.get("tag").filter(|t| !t.is_empty()).cloned().unwrap_or_else(|| "latest".into());
    super::validate::check_reference(&format!("{repo}:{tag}"))?;
    let r = ImageRef::parse(&format!("{repo}:{tag}")).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let familiar = r.familiar_tagged().unwrap_or_default();
    st.images.tag(&img.id, &familiar).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    st.bus.emit(Event::ImageTagged { id: img.id, tag: familiar });
    Ok(StatusCode::CREATED.into_response())
}

/// DELETE /images/{name}: untag by name, delete by ID or when untagged.
async fn remove(State(st): State<AppState>, Path(name): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let img = find(&st, &name)?;
    let force = q.get("force").is_some_and(|v| v == "1" || v == "true");
    let familiar = crate::image::reference::familiar(&name);
    let by_tag = img.repo_tags.contains(&familiar);
    let users = st.containers.using_image(&img.id);
    let mut out = Vec::new();
    if by_tag && (img.repo_tags.len() > 1 || (!users.is_empty() && !force)) {
        if img.repo_tags.len() == 1 {
            let (cid, _) = &users[0];
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}", &cid[..12], short(&img.id)),
            ));
        }
        // Only this name goes; the image stays for its other names or users.
        untag(&st, &img.id, &familiar)?;
        out.push(json!({"Untagged": familiar}));
        return Ok(Json(Value::Array(out)));
    }
    if !by_tag && img.repo_tags.len() > 1 && !force {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", short(&img.id)),
        ));
    }
    if let Some((cid, running)) = users.first() {
        if *running || !force {
            let how = if *running { "cannot be forced" } else { "must be forced" };
            let what = if *running { "running" } else { "stopped" };
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("conflict: unable to delete {} ({how}) - image is being used by {what} container {}", short(&img.id), &cid[..12]),
            ));
        }
    }
    for t in img.repo_tags.clone() {
        untag(&st, &img.id, &t)?;
        out.push(json!({"Untagged": t}));
    }
    for d in &img.repo_digests {
        out.push(json!({"Untagged": d}));
    }
    let freed = st.images.delete_image(&img.id).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    st.bus.emit(Event::ImageRemoved { id: img.id.clone() });
    out.push(json!({"Deleted": img.id}));
    for chain in freed {
        st.images.delete_layer(&chain).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        st.bus.emit(Event::LayerRemoved { chain_id: chain.clone() });
        out.push(json!({"Deleted": chain}));
    }
    Ok(Json(Value::Array(out)))
}

fn untag(st: &AppState, id: &str, tag: &str) -> ApiResult<()> {
    st.images.untag(id, tag).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    st.bus.emit(Event::ImageUntagged { id: id.to_string(), tag: tag.to_string() });
    Ok(())
}

fn short(id: &str) -> String {
    crate::image::store::hex_of(id).chars().take(12).collect()
}

/// `docker images --filter`: dangling, label, before, since, until,
/// reference (globs on `name` or `name:tag`), as Docker reads them.
fn filter_images(st: &AppState, images: Vec<ImageRecord>, filters: &Value) -> ApiResult<Vec<ImageRecord>> {
    super::filters::check_keys(filters, &["dangling", "label", "before", "since", "until", "reference"])?;
    let values = |k: &str| -> Vec<String> { filters[k].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default() };
    let dangling = match values("dangling").first().map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(v) => return Err(ApiError::bad_request(format!("Invalid filter 'dangling=[{v}]'"))),
    };
    let created_of = |name: &str| -> ApiResult<i64> { Ok(find(st, name)?.created) };
    let before = values("before").first().map(|n| created_of(n)).transpose()?;
    let since = values("since").first().map(|n| created_of(n)).transpose()?;
    let until = match values("until").first() {
        Some(u) => Some(until_time(u)?),
        None => None,
    };
    let mut refs = Vec::new();
    for pattern in values("reference") {
        let glob = globset::Glob::new(&pattern).map_err(|e| ApiError::bad_request(format!("invalid reference filter {pattern:?}: {e}")))?;
        refs.push((pattern.contains(':'), glob.compile_matcher()));
    }
    let labels = values("label");
    Ok(images
        .into_iter()
        .filter(|i| dangling.is_none_or(|d| d == i.repo_tags.is_empty()))
        .filter(|i| before.is_none_or(|t| i.created < t))
        .filter(|i| since.is_none_or(|t| i.created > t))
        .filter(|i| until.is_none_or(|t| i.created < t))
        .filter(|i| {
            refs.is_empty()
                || i.repo_tags.iter().any(|tag| {
                    let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
                    refs.iter().any(|(with_tag, m)| m.is_match(if *with_tag { tag.as_str() } else { name }))
                })
        })
        .filter(|i| {
            labels.is_empty() || {
                let have = st.images.config(&i.id).map(|c| c["config"]["Labels"].clone()).unwrap_or(Value::Null);
                labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => have[k].as_str() == Some(v),
                    None => have.get(l).is_some(),
                })
            }
        })
        .collect())
}

/// A filter's `until`: a Unix timestamp, or a Go duration back from now
/// (`10m`, `1h30m`), as Docker reads it.
fn until_time(u: &str) -> ApiResult<i64> {
    if let Ok(Some(t)) = crate::api::validate::parse_unix_time("until", u) {
        return Ok(t as i64);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    crate::dockerfile::instructions::duration_ns(u)
        .map(|ns| now - ns / 1_000_000_000)
        .ok_or_else(|| ApiError::bad_request(format!("invalid filter 'until={u}'")))
}

/// `docker image prune [-a]`: unused images — untagged ones, or with
/// `dangling=false` every one no container uses — and the layers only they
/// held.
async fn prune(State(st): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let filters = super::filters::from_query(&q)?;
    super::filters::check_keys(&filters, &["dangling", "label", "until"])?;
    let all = filters["dangling"].as_object().is_some_and(|m| m.contains_key("false") || m.contains_key("0"));
    let mut f = filters.clone();
    if let Some(o) = f.as_object_mut() {
        o.remove("dangling");
    }
    let candidates = filter_images(&st, st.images.list(), &if f.as_object().is_some_and(|o| o.is_empty()) { Value::Null } else { f })?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for img in candidates {
        if (!all && !img.repo_tags.is_empty()) || !st.containers.using_image(&img.id).is_empty() {
            continue;
        }
        for t in img.repo_tags.clone() {
            untag(&st, &img.id, &t)?;
            deleted.push(json!({"Untagged": t}));
        }
        let freed = st.images.delete_image(&img.id).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
        st.bus.emit(Event::ImageRemoved { id: img.id.clone() });
        deleted.push(json!({"Deleted": img.id}));
        for chain in freed {
            reclaimed += st.images.layer_size(&chain);
            st.images.delete_layer(&chain).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
            st.bus.emit(Event::LayerRemoved { chain_id: chain.clone() });
            deleted.push(json!({"Deleted": chain}));
        }
    }
    Ok(Json(json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed})))
}
