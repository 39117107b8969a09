//! `docker exec`: create, start (hijacked), inspect, resize.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_shared::container::refusal;
use berth_shared::{Event, Status};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::containers::{frame, hijack};
use super::model::{ExecCreate, ExecStart};
use super::validate::{self, Checked};
use super::AppState;
use crate::engine::containers::StreamKind;
use crate::engine::exec::{parse_detach_keys, DetachWatch, DEFAULT_DETACH_KEYS};
use crate::engine::exec::{Exec, ExecRecord};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::runtime::process::{launch, LaunchError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

async fn create(State(st): State<AppState>, Path(id): Path<String>, Checked(body, _): Checked<ExecCreate>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let rec = c.record();
    // The request is checked before the container's state, as Docker does.
    let args = strings(&body["Cmd"]);
    if args.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    if rec.state.status != Status::Running {
        return Err(ApiError::new(ErrorKind::Conflict, refusal::not_running(&rec.id)));
    }
    if rec.state.paused {
        return Err(ApiError::new(ErrorKind::Conflict, format!("Container {} is paused, unpause the container before exec", rec.id)));
    }
    if body["Privileged"].as_bool() == Some(true) {
        // An exec gets its container's capabilities and cgroup, nothing more.
        return Err(ApiError::bad_request("berth does not support docker exec --privileged yet"));
    }
    let tty = body["Tty"].as_bool().unwrap_or(false);
    let detach_keys = body["DetachKeys"].as_str().unwrap_or("").to_string();
    if !detach_keys.is_empty() {
        crate::engine::exec::parse_detach_keys(&detach_keys).map_err(ApiError::bad_request)?;
    }
    // The container's process environment (its links' too), then the exec's own.
    let mut env = rec.process_env(tty);
    for e in strings(&body["Env"]) {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    let working_dir = body["WorkingDir"].as_str().filter(|w| !w.is_empty()).or(rec.config["WorkingDir"].as_str()).unwrap_or("").to_string();
    let user = body["User"].as_str().filter(|u| !u.is_empty()).or(rec.config["User"].as_str()).unwrap_or("").to_string();
    let exec_id = format!("{:032x}{:032x}", crate::ids::random_u128(), crate::ids::random_u128());
    st.execs.add(ExecRecord {
        id: exec_id.clone(),
        container_id: rec.id,
        args,
        env,
        working_dir,
        user,
        tty,
        attach_stdin: body["AttachStdin"].as_bool().unwrap_or(false),
        attach_stdout: body["AttachStdout"].as_bool().unwrap_or(false),
        attach_stderr: body["AttachStderr"].as_bool().unwrap_or(false),
        running: false,
        started: false,
        pid: 0,
        detach_keys,
        exit_code: None,
    });
    st.bus.emit(berth_shared::Event::ContainerRequest {
        id: c.id.clone(),
        action: "exec_create".into(),
        signal: None,
        exec_id: Some(exec_id.clone()),
        command: strings(&body["Cmd"]),
    });
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = st.execs.get(&id)?;
    Ok(Json(e.record().map(|r| r.inspect()).unwrap_or(Value::Null)))
}

async fn resize(State(st): State<AppState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    let e = st.execs.get(&id)?;
    let h = validate::parse_number::<u16>("h", q.get("h"))?.unwrap_or(24);
    let w = validate::parse_number::<u16>("w", q.get("w"))?.unwrap_or(80);
    e.resize(h, w).map_err(|err| ApiError::new(ErrorKind::Internal, err.to_string()))?;
    Ok(StatusCode::OK)
}

/// Starts the process first (so a bad command is a plain HTTP error), then
/// hijacks the connection and pumps its stdio until it exits.
async fn start(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, validate::BODY_LIMIT)
        .await
        .map_err(|_| ApiError::new(ErrorKind::PayloadTooLarge, "request body too large"))?;
    let (opts, _) = validate::decode::<ExecStart>(&bytes)?;
    let detach = opts["Detach"].as_bool().unwrap_or(false);
    // As Docker: the start request's Tty decides the framing (raw, or
    // multiplexed stdout/stderr), whatever the exec was created with.
    let raw = opts["Tty"].as_bool().unwrap_or(false);
    let e = st.execs.get(&id)?;
    let rec = e.record().ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    if rec.started {
        return Err(ApiError::new(ErrorKind::Conflict, format!("Error: Exec command {id} has already run")));
    }
    let c = st.containers.get(&rec.container_id)?;
    let crec = c.record();
    if crec.state.status != Status::Running {
        return Err(ApiError::new(ErrorKind::Conflict, refusal::not_running(&crec.id)));
    }
    // The container's capabilities, cgroups and ulimits hold for its execs too.
    let spec = st.containers.exec_spec(&crec, rec.args.clone(), rec.env.clone(), rec.working_dir.clone(), rec.user.clone(), rec.tty)?;
    let spec_path = std::env::temp_dir().join(format!("berth-exec-{id}.json"));
    let spec_dir = st.config.exec_root.join("exec");
    let spec_path = if std::fs::create_dir_all(&spec_dir).is_ok() { spec_dir.join(format!("{id}.json")) } else { spec_path };
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap_or_default())
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    e.update(|r| r.started = true);
    if detach {
        let l = launch("__berth-exec", &spec_path, rec.tty, false).await;
        let _ = std::fs::remove_file(&spec_path);
        let l = started(&st, &e, &crec.id, &id, &rec.args, l).map_err(|msg| ApiError::new(ErrorKind::Conflict, msg))?;
        tokio::spawn(finish::<tokio::io::DuplexStream>(st.clone(), e.clone(), crec.id.clone(), id.clone(), l, None, raw));
        return Ok(StatusCode::OK.into_response());
    }
    // As Docker: hijack first; a process that fails to start is reported in
    // the stream, and its exit code (126) by GET /exec/{id}/json.
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let (resp, on_upgrade) = hijack(req, raw);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut conn = hyper_util::rt::TokioIo::new(upgraded);
        let l = launch("__berth-exec", &spec_path, rec.tty, rec.attach_stdin).await;
        let _ = std::fs::remove_file(&spec_path);
        match started(&st, &e, &crec.id, &id, &rec.args, l) {
            Ok(l) => finish(st, e, crec.id, id, l, Some(conn), raw).await,
            Err(msg) => {
                let line = format!("{msg}\r\n");
                let bytes = if raw { line.into_bytes() } else { frame(StreamKind::Stdout, line.as_bytes()) };
                let _ = conn.write_all(&bytes).await;
                let _ = conn.shutdown().await;
            }
        }
    });
    Ok(resp)
}

/// Records a launched exec as running (and emits it), or its failure.
fn started(
    st: &AppState,
    e: &Exec,
    container_id: &str,
    exec_id: &str,
    args: &[String],
    l: Result<crate::runtime::process::Launched, LaunchError>,
) -> Result<crate::runtime::process::Launched, String> {
    match l {
        Ok(l) => {
            e.update(|r| {
                r.running = true;
                r.pid = l.pid;
            });
            e.set_pty(l.pty.clone());
            st.bus.emit(Event::ProcessExecd { id: container_id.into(), exec_id: exec_id.into(), pid: l.pid, command: args.to_vec() });
            crate::fault::point("exec.launched");
            Ok(l)
        }
        Err(err) => {
            e.update(|r| r.exit_code = Some(126));
            Err(format!("OCI runtime exec failed: exec failed: unable to start container process: {err}: unknown"))
        }
    }
}

/// Pumps stdio between the process and the hijacked connection (if any),
/// then records the exit code.
async fn finish<C>(
    st: AppState,
    e: Arc<Exec>,
    container_id: String,
    exec_id: String,
    mut l: crate::runtime::process::Launched,
    conn: Option<C>,
    raw: bool,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let detach_keys = e.record().map(|r| r.detach_keys).filter(|k| !k.is_empty()).unwrap_or_else(|| DEFAULT_DETACH_KEYS.to_string());
    let mut watch = DetachWatch::new(parse_detach_keys(&detach_keys).unwrap_or_else(|_| vec![16, 17]));
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<(StreamKind, Vec<u8>)>(64);
    let mut readers = Vec::new();
    if let Some(o) = l.stdout.take() {
        readers.push(tokio::spawn(forward(o, StreamKind::Stdout, out_tx.clone())));
    }
    if let Some(o) = l.stderr.take() {
        readers.push(tokio::spawn(forward(o, StreamKind::Stderr, out_tx.clone())));
    }
    // The terminal, read and written as the page's shells are (crate::pty).
    let pty = match l.pty.as_ref().map(|m| m.try_clone().and_then(crate::pty::Pty::new)) {
        Some(Ok(p)) => Some(Arc::new(p)),
        Some(Err(e)) => {
            tracing::error!("taking an exec's terminal: {e}");
            None
        }
        None => None,
    };
    if let Some(master) = pty.clone() {
        let tx = out_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 16384];
            while let Ok(n) = master.read(&mut buf).await {
                if n == 0 || tx.send((StreamKind::Stdout, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(out_tx);
    // The connection closes only after the exit code is recorded: the CLI
    // reads it with GET /exec/{id}/json as soon as the stream ends.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = if let Some(conn) = conn {
        let (mut rd, mut wr) = tokio::io::split(conn);
        // Input: to the pipe, or to the PTY master; the detach keys end
        // the attachment (the process goes on).
        let mut stdin = l.stdin.take();
        let pty = pty.clone();
        let detached = Arc::new(tokio::sync::Notify::new());
        let detached2 = detached.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (pass, detach) = watch.feed(&buf[..n]);
                        if detach {
                            detached2.notify_one();
                        }
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&pass).await.is_err() || detach {
                                break;
                            }
                        } else if let Some(m) = &pty {
                            if detach || m.write_all(&pass).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    got = out_rx.recv() => {
                        let Some((kind, data)) = got else { break };
                        let bytes = if raw { data } else { frame(kind, &data) };
                        if wr.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    _ = detached.notified() => {
                        // Detached: the connection ends now; the process runs on.
                        let _ = wr.flush().await;
                        let _ = wr.shutdown().await;
                        while out_rx.recv().await.is_some() {}
                        return;
                    }
                }
            }
            let _ = wr.flush().await;
            let _ = done_rx.await;
            let _ = wr.shutdown().await;
        }))
    } else {
        tokio::spawn(async move { while out_rx.recv().await.is_some() {} });
        None
    };
    let status = l.child.wait().await;
    let code = status.ok().and_then(|s| s.code()).unwrap_or(137);
    // The PTY master is dropped so its reader sees EOF once the process is gone.
    e.set_pty(None);
    drop(l.pty.take());
    for r in readers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r).await;
    }
    e.update(|r| {
        r.running = false;
        r.exit_code = Some(code);
    });
    let _ = done_tx.send(());
    if let Some(w) = writer {
        let _ = w.await;
    }
    st.bus.emit(Event::ProcessExited { id: container_id, exec_id, exit_code: code });
}

/// Reads one output pipe into the channel until EOF.
async fn forward<R: tokio::io::AsyncRead + Unpin>(mut r: R, kind: StreamKind, tx: tokio::sync::mpsc::Sender<(StreamKind, Vec<u8>)>) {
    let mut buf = vec![0u8; 16384];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || tx.send((kind, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
}
