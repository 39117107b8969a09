//! `docker cp`'s endpoints: `HEAD|GET|PUT /containers/{id}/archive?path=`,
//! with Docker's `X-Docker-Container-Path-Stat` header (base64 of the
//! path's stat as JSON) and its errors; and `docker export`'s
//! `GET /containers/{id}/export`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::runtime::archive::Op;

pub fn router() -> Router<AppState> {
    Router::new().route("/containers/{id}/archive", get(read).head(stat).put(write)).route("/containers/{id}/export", get(export))
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_of(q: &HashMap<String, String>) -> ApiResult<String> {
    match q.get("path").map(String::as_str) {
        None | Some("") => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
        Some(p) if !p.starts_with('/') => Ok(format!("/{p}")),
        Some(p) => Ok(p.to_string()),
    }
}

fn stat_header(stat: &Value) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(stat).unwrap_or_default());
    HeaderValue::from_str(&b64).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Docker names the container in a missing path's message.
fn named(e: ApiError, id: &str, path: &str) -> ApiError {
    if e.kind == crate::error::ErrorKind::NotFound && e.message.starts_with("Could not find the file") {
        return ApiError::not_found(format!("Could not find the file {path} in container {id}"));
    }
    e
}

async fn stat(State(st): State<AppState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let c = st.containers.get(&id)?;
    let (stat, _) = st.containers.archive(&c, Op::Stat { path: path.clone() }, None).await.map_err(|e| named(e, &id, &path))?;
    Ok(([(STAT_HEADER, stat_header(&stat))], StatusCode::OK).into_response())
}

async fn read(State(st): State<AppState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let c = st.containers.get(&id)?;
    let (stat, data) = st.containers.archive(&c, Op::Get { path: path.clone() }, None).await.map_err(|e| named(e, &id, &path))?;
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(data));
    Ok(([(STAT_HEADER, stat_header(&stat)), (header::CONTENT_TYPE.as_str(), HeaderValue::from_static("application/x-tar"))], body)
        .into_response())
}

/// `docker export`: the container's root filesystem as a tar.
async fn export(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let (_, data) = st.containers.archive(&c, Op::Export, None).await?;
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(data));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"))], body).into_response())
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// How much of an upload is read and dropped after a refusal, so the
/// client sees the answer instead of a broken pipe (Go's server, Docker's,
/// does the same with 256 KiB).
const DRAIN_AFTER_REFUSAL: usize = 1 << 20;

async fn write(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult<StatusCode> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let forward = tokio::spawn(async move {
        let mut s = body.into_data_stream();
        let mut dropped = 0;
        while let Some(Ok(chunk)) = s.next().await {
            if tx.is_closed() || tx.send(chunk.to_vec()).await.is_err() {
                dropped += chunk.len();
                if dropped > DRAIN_AFTER_REFUSAL {
                    break;
                }
            }
        }
    });
    let result = async {
        let path = path_of(&q)?;
        let c = st.containers.get(&id)?;
        let op =
            Op::Put { path: path.clone(), keep_owner: flag(&q, "copyUIDGID"), no_overwrite_dir_non_dir: flag(&q, "noOverwriteDirNonDir") };
        st.containers.archive(&c, op, Some(rx)).await.map_err(|e| named(e, &id, &path))
    }
    .await;
    if result.is_err() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forward).await;
    }
    result.map(|_| StatusCode::OK)
}
