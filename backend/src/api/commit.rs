//! `POST /commit`: `docker commit` (the engine's `commit`).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::engine::commit::CommitRequest;
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new().route("/commit", post(commit))
}

async fn commit(State(st): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    // `changes` repeats, once per --change.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let one = |k: &str| pairs.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let container = one("container");
    if container.is_empty() {
        return Err(ApiError::bad_request("No container name or ID supplied"));
    }
    let config: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    if !(config.is_null() || config.is_object()) {
        return Err(ApiError::bad_request("json: cannot unmarshal non-object into Go value of type container.Config"));
    }
    let pause = !matches!(one("pause").as_str(), "0" | "false" | "False");
    let req = CommitRequest {
        repo: one("repo"),
        tag: one("tag"),
        comment: one("comment"),
        author: one("author"),
        pause,
        changes: pairs.iter().filter(|(k, _)| k == "changes").flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>()).collect(),
        config,
    };
    let c = st.containers.get(&container)?;
    let id = st.containers.commit(&c, req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))))
}
