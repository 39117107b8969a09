//! Container endpoints: create, start, attach, wait, logs, stop, kill, rm,
//! ps, inspect, prune, resize, top.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_shared::Status;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::model::ContainerCreate;
use super::validate::{self, Checked};
use super::{versions, ApiVersion, AppState};
use crate::engine::containers::{read_log, Container, Output, Record, StreamKind};
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/stats", get(super::stats::stats))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{parent}/{alias}", delete(remove_link))
}

type Q = Query<HashMap<String, String>>;

/// `GET /containers/{id}/changes` (`docker diff`): what its upper dir
/// changed, as `[{"Path", "Kind"}]` (0 changed, 1 added, 2 deleted).
pub async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r = st.containers.get(&id)?.record();
    let (upper, lower) = (std::path::PathBuf::from(&r.layer.upper), r.layer.lower.clone());
    let list = tokio::task::spawn_blocking(move || crate::storage::layer::changes(&upper, &lower)).await.unwrap_or_default();
    Ok(Json(Value::Array(list.into_iter().map(|(p, k)| json!({"Path": p, "Kind": k})).collect())))
}

/// `GET /containers/{id}/top?ps_args=…`: the host's `ps` (default `-ef`),
/// the container's processes only (see `engine::top`).
async fn top(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<crate::engine::top::Top>> {
    use crate::engine::top;
    let r = st.containers.get(&id)?.record();
    if r.state.status != Status::Running || r.state.pid <= 0 {
        return Err(ApiError::new(crate::error::ErrorKind::Conflict, berth_shared::container::refusal::not_running(&r.id)));
    }
    let args = top::ps_args(q.get("ps_args").map(String::as_str))?;
    st.bus.emit(berth_shared::Event::ContainerRequest {
        id: r.id.clone(),
        action: "top".into(),
        signal: None,
        exec_id: None,
        command: Vec::new(),
    });
    let pid = r.state.pid;
    let answer = tokio::task::spawn_blocking(move || -> ApiResult<top::Top> {
        let pids = top::pids_in_namespace_of(pid)
            .map_err(|e| ApiError::new(crate::error::ErrorKind::Conflict, format!("the container's processes: {e}")))?;
        let out = std::process::Command::new("ps")
            .args(&args)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, format!("Error running ps: {e}")))?;
        if !out.status.success() {
            // The client's arguments were not ps's.
            let why = String::from_utf8_lossy(&out.stderr);
            return Err(ApiError::bad_request(format!("ps {}: {}", args.join(" "), why.lines().next().unwrap_or("failed"))));
        }
        top::parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    })
    .await
    .map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))??;
    Ok(Json(answer))
}

/// `POST /containers/{id}/rename?name=NEW`.
async fn rename(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let name = q.get("name").map(String::as_str).unwrap_or("");
    if name.is_empty() {
        return Err(ApiError::bad_request("Neither old nor new names may be empty"));
    }
    let name = validate::check_container_name(name)?;
    let c = st.containers.get(&id)?;
    st.containers.rename(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers.set_paused(&c, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    st.containers.set_paused(&c, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `docker update`: resource limits (and the restart policy, which berth
/// refuses as at create).
async fn update(State(st): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if !body.is_object() {
        return Err(ApiError::bad_request("json: cannot unmarshal non-object into Go value of type container.UpdateConfig"));
    }
    let c = st.containers.get(&id)?;
    let warnings = st.containers.update_resources(&c, &body).await?;
    Ok(Json(json!({"Warnings": warnings})))
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "1" || v == "true" || v == "True")
}

/// `POST /containers/create`: the body is checked against Docker's types
/// (`model::ContainerCreate`) and its names, reference, ports and binds
/// against Docker's rules before the engine sees it.
async fn create(
    State(st): State<AppState>,
    v: ApiVersion,
    Query(q): Q,
    Checked(mut body, typed): Checked<ContainerCreate>,
) -> ApiResult<Response> {
    let name = match q.get("name").filter(|n| !n.is_empty()) {
        Some(n) => Some(validate::check_container_name(n)?),
        None => None,
    };
    validate::check_image(&typed)?;
    validate::check_ports(&typed)?;
    validate::check_binds(&typed)?;
    normalize_str_slices(&mut body);
    super::defaults::adapt_at_create(&mut body["HostConfig"]);
    let warnings = versions::adapt_create(&mut body, v)?;
    let image_name = body["Image"].as_str().unwrap_or("").to_string();
    if image_name.is_empty() {
        return Err(ApiError::bad_request("Config cannot be empty in order to create a container"));
    }
    let image = st
        .images
        .resolve(&image_name)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {}", crate::image::reference::familiar(&image_name))))?;
    let c = st.containers.create(name.as_deref(), &body, &image, &image_name)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": c.id, "Warnings": warnings}))).into_response())
}

/// moby's strslice: `"Cmd": "echo"` is `["echo"]`. The engine reads lists.
pub fn normalize_str_slices(body: &mut Value) {
    for key in ["Cmd", "Entrypoint", "Shell"] {
        if let Some(s) = body[key].as_str().map(String::from) {
            body[key] = json!([s]);
        }
    }
    if body["HostConfig"].is_object() {
        for key in ["CapAdd", "CapDrop"] {
            if let Some(s) = body["HostConfig"][key].as_str().map(String::from) {
                body["HostConfig"][key] = json!([s]);
            }
        }
    }
}

/// Docker's 304 for a start of a running container: the CLI takes it as success.
async fn start(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = st.containers.get(&id)?;
    Ok(if st.containers.start_checked(&c).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_MODIFIED })
}

async fn stop(State(st): State<AppState>, v: ApiVersion, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let t = validate::parse_number::<u64>("t", q.get("t"))?;
    let signal = stop_signal(v, &q)?;
    let c = st.containers.get(&id)?;
    Ok(if st.containers.stop(&c, t, signal).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_MODIFIED })
}

async fn restart(State(st): State<AppState>, v: ApiVersion, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let t = validate::parse_number::<u64>("t", q.get("t"))?;
    let signal = stop_signal(v, &q)?;
    let c = st.containers.get(&id)?;
    st.containers.restart(&c, t, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?signal=` of a stop or restart (`docker stop -s`), from API 1.42 on.
fn stop_signal(v: ApiVersion, q: &std::collections::HashMap<String, String>) -> ApiResult<Option<&str>> {
    let Some(signal) = q.get("signal").filter(|s| !s.is_empty() && v.at_least(42)) else { return Ok(None) };
    if crate::signals::parse_signal(signal).is_none() {
        return Err(ApiError::bad_request(format!("Invalid signal: {signal}")));
    }
    Ok(Some(signal))
}

async fn kill(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let signal = q.get("signal").filter(|s| !s.is_empty()).map(String::as_str).unwrap_or("SIGKILL");
    if crate::signals::parse_signal(signal).is_none() {
        return Err(ApiError::bad_request(format!("Invalid signal: {signal}")));
    }
    let c = st.containers.get(&id)?;
    st.containers.kill_locked(&c, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    if flag(&q, "link") {
        // `docker rm --link NAME`: a container's own name is no link.
        st.containers.get(&id)?;
        return Err(ApiError::new(crate::error::ErrorKind::Conflict, "Conflict, cannot remove the default link name of the container"));
    }
    let c = st.containers.get(&id)?;
    st.containers.remove(&c, flag(&q, "force"), flag(&q, "v")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `docker rm --link /parent/alias` (`DELETE /containers/parent/alias?link=1`):
/// the link goes, both containers stay.
async fn remove_link(State(st): State<AppState>, Path((parent, alias)): Path<(String, String)>, Query(q): Q) -> ApiResult<StatusCode> {
    let full = format!("/{parent}/{alias}");
    if !flag(&q, "link") {
        return Err(ApiError::not_found(format!("No such container: {full}")));
    }
    st.containers.remove_link(&parent, &alias)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for c in st.containers.list() {
        let r = c.record();
        if !matches!(r.state.status, Status::Exited | Status::Created) {
            continue;
        }
        // What its read-write layer held is what the removal frees.
        let size = crate::engine::containers::dir_size(std::path::Path::new(&r.layer.upper));
        // One removed meanwhile (or started) is not an error of the prune.
        if st.containers.remove(&c, false, false).await.is_ok() {
            deleted.push(r.id);
            reclaimed += size;
        }
    }
    Ok(Json(json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed})))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`.
/// As Docker does, the status line and headers go out at once (the CLI waits
/// for them before it starts the container); the body follows on exit.
async fn wait(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let condition = q.get("condition").cloned().unwrap_or_else(|| "not-running".into());
    let mut exits = c.exits();
    let before = *exits.borrow_and_update();
    let mut removed = c.removed();
    let body = async_stream_once(async move {
        match condition.as_str() {
            "next-exit" => {
                let _ = exits.wait_for(|n| *n != before).await;
            }
            "removed" => {
                let _ = removed.wait_for(|r| *r).await;
            }
            _ => {
                if c.record().state.status == Status::Running {
                    let _ = exits.wait_for(|n| *n != before).await;
                }
            }
        }
        let r = c.record();
        let error = if r.state.error.is_empty() { Value::Null } else { json!({"Message": r.state.error}) };
        format!("{}\n", json!({"StatusCode": r.state.exit_code, "Error": error}))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A body that sends one chunk when the future completes.
fn async_stream_once<F>(f: F) -> Body
where
    F: std::future::Future<Output = String> + Send + 'static,
{
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(f.await) });
    Body::from_stream(stream)
}

async fn resize(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let h = validate::parse_number::<u16>("h", q.get("h"))?.unwrap_or(24);
    let w = validate::parse_number::<u16>("w", q.get("w"))?.unwrap_or(80);
    let c = st.containers.get(&id)?;
    c.resize(h, w).map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    Ok(StatusCode::OK)
}

/// A frame of Docker's multiplexed stream: stream byte, 3 zero bytes, size.
pub fn frame(kind: StreamKind, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.push(match kind {
        StreamKind::Stdout => 1,
        StreamKind::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Answers an upgrade request with 101 and returns the connection.
pub fn hijack(mut req: Request, tty: bool) -> (Response, hyper::upgrade::OnUpgrade) {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let content_type = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (resp, on_upgrade)
}

/// `POST /containers/{id}/attach`: the connection is hijacked; output of the
/// run flows out (framed unless TTY), input flows to the container's stdin.
async fn attach(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q, req: Request) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.record();
    let tty = rec.tty();
    let want_stdin = flag(&q, "stdin") && rec.open_stdin();
    let want_out = flag(&q, "stdout");
    let want_err = flag(&q, "stderr");
    let logs = flag(&q, "logs");
    // `stream=0`: what was logged, then the end (an SDK reading a finished
    // container's output).
    let stream = flag(&q, "stream");
    let keys = q.get("detachKeys").filter(|k| !k.is_empty()).map(String::as_str).unwrap_or(crate::engine::exec::DEFAULT_DETACH_KEYS);
    let mut watch = crate::engine::exec::DetachWatch::new(crate::engine::exec::parse_detach_keys(keys).map_err(ApiError::bad_request)?);
    st.bus.emit(berth_shared::Event::ContainerRequest {
        id: rec.id.clone(),
        action: "attach".into(),
        signal: None,
        exec_id: None,
        command: Vec::new(),
    });
    // Subscribe now, before the 101, so nothing the container prints after
    // the client's start request is missed.
    let mut rx = c.output.subscribe();
    let (resp, on_upgrade) = hijack(req, tty);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (mut rd, mut wr) = tokio::io::split(io);
        if logs {
            for l in read_log(&rec.log_path) {
                let wanted = match l.stream {
                    StreamKind::Stdout => want_out,
                    StreamKind::Stderr => want_err,
                };
                if wanted {
                    let _ = wr.write_all(&encode(tty, l.stream, l.log.as_bytes())).await;
                }
            }
        }
        if !stream {
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
            return;
        }
        let detached = Arc::new(tokio::sync::Notify::new());
        if want_stdin {
            let c2: Arc<Container> = c.clone();
            let once = rec.stdin_once();
            let detached2 = detached.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            // The detach keys end the attachment, not the container.
                            let (pass, detach) = watch.feed(&buf[..n]);
                            if (!pass.is_empty() && c2.write_stdin(&pass).await.is_err()) || detach {
                                if detach {
                                    detached2.notify_one();
                                }
                                return;
                            }
                        }
                    }
                }
                if once {
                    c2.close_stdin();
                }
            });
        }
        loop {
            let got = tokio::select! {
                got = rx.recv() => got,
                _ = detached.notified() => break,
            };
            match got {
                Ok(Output::Data(kind, data)) => {
                    let wanted = match kind {
                        StreamKind::Stdout => want_out,
                        StreamKind::Stderr => want_err,
                    };
                    if wanted && wr.write_all(&encode(tty, kind, &data)).await.is_err() {
                        break;
                    }
                }
                Ok(Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    Ok(resp)
}

fn encode(tty: bool, kind: StreamKind, data: &[u8]) -> Vec<u8> {
    if tty {
        data.to_vec()
    } else {
        frame(kind, data)
    }
}

/// `GET /containers/{id}/logs`: from the json-file log; `follow` keeps
/// reading it until the container stops.
async fn logs(State(st): State<AppState>, Path(id): Path<String>, Query(q): Q) -> ApiResult<Response> {
    use crate::engine::logs::{self, Driver, Follower, LogConfig, LogLine};
    let c = st.containers.get(&id)?;
    let rec = c.record();
    let (want_out, want_err) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !want_out && !want_err {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    if LogConfig::of(&rec.host_config).driver == Driver::None {
        return Err(logs::read_not_supported());
    }
    // As Docker: "all", a negative or an unreadable number means everything.
    let tail: Option<usize> = q.get("tail").and_then(|t| t.parse().ok());
    let timestamps = flag(&q, "timestamps");
    // `--since`/`--until`: Unix times (the CLI turns durations and dates into them).
    let since = validate::parse_unix_time("since", q.get("since").map(String::as_str).unwrap_or(""))?.filter(|t| *t > 0.0);
    let until = validate::parse_unix_time("until", q.get("until").map(String::as_str).unwrap_or(""))?.filter(|t| *t > 0.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    // Following ends at `until`: one in the past leaves nothing to follow.
    let follow = flag(&q, "follow") && rec.state.status == Status::Running && until.is_none_or(|u| u > now);
    let tty = rec.tty();
    let render = move |l: &LogLine| -> Option<Vec<u8>> {
        let wanted = match l.stream {
            StreamKind::Stdout => want_out,
            StreamKind::Stderr => want_err,
        };
        if !wanted {
            return None;
        }
        if since.is_some() || until.is_some() {
            let t = log_time(&l.time);
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                return None;
            }
        }
        let text = if timestamps { format!("{} {}", l.time, l.log) } else { l.log.clone() };
        Some(encode(tty, l.stream, text.as_bytes()))
    };
    let content_type = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    // The body streams: a large log is never held whole in memory, and
    // `--tail N` reads from the end of the file.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let path = rec.log_path.clone();
    tokio::spawn(async move {
        // Where following takes over: the initial read stops there.
        let mut follower = follow.then(|| Follower::at_end(&path));
        let upto = follower.as_ref().map(Follower::position);
        let tx2 = tx.clone();
        let p2 = path.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::new();
            let mut ok = true;
            let mut push = |l: LogLine, chunk: &mut Vec<u8>| {
                if let Some(b) = render(&l) {
                    chunk.extend_from_slice(&b);
                }
                if chunk.len() >= 64 * 1024 {
                    ok = tx2.blocking_send(Ok(std::mem::take(chunk))).is_ok();
                }
                ok
            };
            match tail {
                Some(n) => {
                    for l in logs::read_tail_upto(&p2, n, upto) {
                        if !push(l, &mut chunk) {
                            return false;
                        }
                    }
                }
                None => logs::for_each_entry(&p2, upto, |l| push(l, &mut chunk)),
            }
            chunk.is_empty() || tx2.blocking_send(Ok(chunk)).is_ok()
        })
        .await
        .unwrap_or(false);
        let Some(mut f) = follower.take() else { return };
        if !sent {
            return;
        }
        loop {
            let running = c.record().state.status == Status::Running;
            // File reads off the async workers.
            let Ok((back, lines)) = tokio::task::spawn_blocking(move || {
                let lines = f.poll();
                (f, lines)
            })
            .await
            else {
                return;
            };
            f = back;
            for l in lines {
                if let Some(b) = render(&l) {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
            if !running {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// What `docker ps` filters know of images and networks.
impl super::ps::World for AppState {
    fn ancestry(&self, name: &str) -> Option<std::collections::BTreeSet<String>> {
        let base = self.images.resolve(name)?;
        let chains: Vec<&String> = base.layers.iter().map(|l| &l.chain_id).collect();
        // The image and every image built on it (its layers come first in theirs).
        Some(
            self.images
                .list()
                .into_iter()
                .filter(|i| {
                    i.id == base.id
                        || (i.layers.len() >= chains.len()
                            && !chains.is_empty()
                            && i.layers.iter().zip(&chains).all(|(l, c)| &l.chain_id == *c))
                })
                .map(|i| i.id)
                .collect(),
        )
    }

    fn network(&self, key: &str) -> Option<(String, String)> {
        if matches!(key, "host" | "none") {
            return Some((key.to_string(), super::networks::fixed_id(key)));
        }
        self.containers.networks()?.find(key).map(|n| (n.name().to_string(), n.id().to_string()))
    }
}

/// `docker ps` rows.
async fn list(State(st): State<AppState>, v: ApiVersion, Query(q): Q) -> ApiResult<Json<Value>> {
    let all = flag(&q, "all");
    let size = flag(&q, "size");
    let filters = super::filters::from_query(&q)?;
    let limit = validate::parse_number::<i64>("limit", q.get("limit"))?;
    let mut records: Vec<Record> = st.containers.list().iter().map(|c| c.record()).collect();
    records.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    let rows: Vec<Record> = super::ps::select(&records, all, limit, &filters, &st)?.into_iter().cloned().collect();
    let images = st.images.clone();
    let rows = tokio::task::spawn_blocking(move || {
        rows.iter()
            .map(|r| {
                let mut row = summary(&st, v, r);
                if size {
                    add_sizes(&images, r, &mut row);
                }
                row
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    Ok(Json(Value::Array(rows)))
}

/// `SizeRw` (what the container changed: its read-write layer) and
/// `SizeRootFs` (that and its image), as `docker ps -s` and `inspect -s`
/// show them.
pub fn add_sizes(images: &crate::image::store::ImageStore, r: &Record, row: &mut Value) {
    let rw = crate::engine::containers::dir_size(std::path::Path::new(&r.layer.upper));
    let image = images.get(&r.image_id).map(|i| i.size()).unwrap_or(0);
    // Docker leaves SizeRw out when the container wrote nothing (omitempty).
    if rw > 0 {
        row["SizeRw"] = json!(rw);
    }
    row["SizeRootFs"] = json!(rw + image);
}

/// One container as `GET /containers/json` (and `/system/df`) lists it.
pub fn summary(st: &AppState, v: ApiVersion, r: &Record) -> Value {
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": shell_join(&r.command()),
        "Created": crate::ids::parse_rfc3339(&r.created),
        "Ports": r.ports.iter().map(|p| json!({"IP": p.host_ip.to_string(), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto})).chain(
            r.config["ExposedPorts"].as_object().map(|e| e.keys().filter(|k| !r.ports.iter().any(|p| format!("{}/{}", p.container_port, p.proto) == **k)).filter_map(|k| {
                let (port, proto) = k.split_once('/')?;
                Some(json!({"PrivatePort": port.parse::<u16>().ok()?, "Type": proto}))
            }).collect::<Vec<_>>()).unwrap_or_default()
        ).collect::<Vec<_>>(),
        "Labels": r.config["Labels"],
        "State": super::ps::state(r),
        "Status": status_text(r),
        "HostConfig": {"NetworkMode": r.host_config["NetworkMode"]},
        "NetworkSettings": {"Networks": list_networks(network_settings(st, v, r)["Networks"].take())},
        "Mounts": r.mounts.iter().map(|m| m.describe()).collect::<Vec<_>>(),
    })
}

/// A container list's endpoints carry less than inspect's (Docker copies
/// only the addresses and ids into its list view): no aliases, links,
/// driver options or DNS names, and of the IPAM config only the addresses.
fn list_networks(mut networks: Value) -> Value {
    for ep in networks.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        let Some(o) = ep.as_object_mut() else { continue };
        for k in ["Links", "Aliases", "DriverOpts", "DNSNames"] {
            if o.contains_key(k) {
                o.insert(k.into(), Value::Null);
            }
        }
        if let Some(ipam) = o.get_mut("IPAMConfig").and_then(Value::as_object_mut) {
            ipam.retain(|k, _| k == "IPv4Address" || k == "IPv6Address");
        }
    }
    networks
}

/// "nginx -g 'daemon off;'", as `docker ps` shows a command.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A log line's RFC 3339 time (nanoseconds) as Unix seconds.
fn log_time(t: &str) -> f64 {
    let secs = crate::ids::parse_rfc3339(t) as f64;
    let frac = t.split_once('.').map(|(_, f)| f.trim_end_matches(|c: char| !c.is_ascii_digit())).unwrap_or("");
    let digits: String = frac.chars().take_while(char::is_ascii_digit).take(9).collect();
    secs + if digits.is_empty() { 0.0 } else { format!("0.{digits}").parse::<f64>().unwrap_or(0.0) }
}

/// State.Status as Docker has it: a paused container is "paused".
/// "Up 5 seconds", "Exited (0) 2 minutes ago", "Created".
fn status_text(r: &Record) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match r.state.status {
        Status::Running => format!(
            "Up {}{}{}",
            human_duration(now - crate::ids::parse_rfc3339(&r.state.started_at)),
            if r.state.paused { " (Paused)" } else { "" },
            match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) => format!(" ({s})"),
                None => String::new(),
            }
        ),
        Status::Exited if r.state.restarting => {
            format!("Restarting ({}) {} ago", r.state.exit_code, human_duration(now - crate::ids::parse_rfc3339(&r.state.finished_at)))
        }
        Status::Exited => {
            format!("Exited ({}) {} ago", r.state.exit_code, human_duration(now - crate::ids::parse_rfc3339(&r.state.finished_at)))
        }
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// Docker's (go-units) HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h) = (s / 60, (s as f64 / 3600.0).round() as i64);
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    }
}

async fn inspect(State(st): State<AppState>, v: ApiVersion, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let c = st.containers.get(&id)?;
    let r = c.record();
    let cmd = r.command();
    let running = r.state.status == Status::Running;
    let mut out = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": cmd.first().cloned().unwrap_or_default(),
        "Args": cmd.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
        "State": {
            "Status": super::ps::state(&r),
            "Running": running,
            "Paused": r.state.paused,
            "Restarting": r.state.restarting,
            "OOMKilled": r.state.oom_killed,
            "Dead": false,
            "Pid": r.state.pid,
            "ExitCode": r.state.exit_code,
            "Error": r.state.error,
            "StartedAt": r.state.started_at,
            "FinishedAt": r.state.finished_at,
        },
        "Image": r.image_id,
        "ResolvConfPath": r.resolv_conf_path,
        "HostnamePath": r.hostname_path,
        "HostsPath": r.hosts_path,
        "LogPath": r.log_path,
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": super::defaults::host_config(&r.host_config, std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()),
        "GraphDriver": {
            "Data": {
                "LowerDir": r.layer.lower.join(":"),
                "MergedDir": r.layer.merged,
                "UpperDir": r.layer.upper,
                "WorkDir": r.layer.work,
            },
            "Name": "overlay2",
        },
        "Mounts": r.mounts.iter().map(|m| m.describe()).collect::<Vec<_>>(),
        "Config": r.config,
        "NetworkSettings": network_settings(&st, v, &r),
    });
    // Its legacy links as Docker shows them: "/child:/me/alias".
    let links: Vec<String> = r
        .links
        .iter()
        .map(|l| {
            let child = st.containers.get(&l.child).map(|c| c.record().name).unwrap_or_else(|_| l.child.clone());
            format!("/{child}:/{}/{}", r.name, l.alias)
        })
        .collect();
    out["HostConfig"]["Links"] = if links.is_empty() { Value::Null } else { json!(links) };
    // Only a container with a healthcheck has State.Health (as Docker's).
    if let Some(h) = &r.state.health {
        out["State"]["Health"] = h.inspect();
    }
    if flag(&q, "size") {
        let images = st.images.clone();
        out = tokio::task::spawn_blocking(move || {
            add_sizes(&images, &r, &mut out);
            out
        })
        .await
        .map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    }
    Ok(Json(out))
}

/// NetworkSettings.Ports: every exposed or published port, with its bindings.
fn ports_map(r: &Record) -> Value {
    let mut m = serde_json::Map::new();
    // Docker fills them when the container's network is up, and empties
    // them when it is released: a created or exited container has none.
    if r.state.status != Status::Running {
        return Value::Object(m);
    }
    if let Some(exposed) = r.config["ExposedPorts"].as_object() {
        for k in exposed.keys() {
            m.insert(k.clone(), Value::Null);
        }
    }
    for p in &r.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = m.entry(key).or_insert(json!([]));
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}));
        }
    }
    Value::Object(m)
}

/// NetworkSettings as `docker inspect` shows them: one entry per network
/// (with its endpoint while running), the first network's also at the top.
pub fn network_settings(st: &AppState, v: ApiVersion, r: &Record) -> Value {
    let nets = st.containers.networks();
    let mode = r.network_mode();
    let mut names: Vec<(String, Vec<String>)> = r.attachments().into_iter().map(|a| (a.network, a.aliases)).collect();
    if mode == "host" || mode == "none" {
        names = vec![(mode.clone(), Vec::new())];
    }
    let mut networks = serde_json::Map::new();
    for (name, asked) in &names {
        let ep = r.endpoints.get(name);
        let network_id = match name.as_str() {
            "host" | "none" => super::networks::fixed_id(name),
            _ => nets.as_ref().and_then(|n| n.find(name)).map(|n| n.id().to_string()).unwrap_or_default(),
        };
        let user_defined = !matches!(name.as_str(), "bridge" | "host" | "none");
        let hostname = r.config["Hostname"].as_str().unwrap_or("");
        let (aliases, dns_names) = versions::endpoint_names(v, user_defined, ep.is_some(), &r.name, &r.id, hostname, asked);
        let attach = r.attachments().into_iter().find(|a| a.network == *name).unwrap_or_default();
        let links = attach.links.clone();
        // What the client asked for, as Docker keeps it (each key only if set).
        let mut ipam = serde_json::Map::new();
        if let Some(ip) = attach.ipv4 {
            ipam.insert("IPv4Address".into(), json!(ip.to_string()));
        }
        if let Some(ip) = attach.ipv6 {
            ipam.insert("IPv6Address".into(), json!(ip.to_string()));
        }
        if !attach.link_local.is_empty() {
            ipam.insert("LinkLocalIPs".into(), json!(attach.link_local.iter().map(|ip| ip.to_string()).collect::<Vec<_>>()));
        }
        let mut endpoint = json!({
                "IPAMConfig": if ipam.is_empty() { Value::Null } else { Value::Object(ipam) },
                "Links": if links.is_empty() { Value::Null } else { json!(links) },
                "Aliases": aliases,
                "NetworkID": network_id,
                "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
                "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
                "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                "IPPrefixLen": ep.map(|e| e.prefix).unwrap_or(0),
                "IPv6Gateway": ep.and_then(|e| e.gateway6).map(|g| g.to_string()).unwrap_or_default(),
                "GlobalIPv6Address": ep.and_then(|e| e.ip6).map(|ip| ip.to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": ep.map(|e| e.prefix6).unwrap_or(0),
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "DriverOpts": attach.driver_opts,
        });
        if v.at_least(48) {
            endpoint["GwPriority"] = json!(attach.gw_priority);
        }
        if let Some(dns) = dns_names {
            endpoint["DNSNames"] = dns;
        }
        networks.insert(name.clone(), endpoint);
    }
    // The top-level fields describe the default bridge only, as in Docker.
    let top = r.endpoints.get("bridge");
    json!({
        "Bridge": "",
        "SandboxID": r.sandbox.as_ref().map(|_| r.primary_endpoint().map(|e| e.endpoint_id.clone()).unwrap_or_default()).unwrap_or_default(),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports_map(r),
        "SandboxKey": r.sandbox.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": top.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": top.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": top.map(|e| e.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "MacAddress": top.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_big_endian_length() {
        assert_eq!(frame(StreamKind::Stderr, b"hi"), vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(frame(StreamKind::Stdout, b"")[0], 1);
    }

    #[test]
    fn commands_are_shown_as_docker_ps_shows_them() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_join(&a(&["nginx", "-g", "daemon off;"])), "nginx -g 'daemon off;'");
        assert_eq!(shell_join(&a(&["/bin/sh"])), "/bin/sh");
    }

    #[test]
    fn durations_read_as_docker_ps_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
    }
}
