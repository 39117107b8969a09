//! The lab server: the page (Trunk's dist), the daemon's health and state,
//! the live event stream, terminal sessions and their recordings.

pub mod stream;

use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

use crate::api::AppState;

pub fn app(state: AppState, page_dir: &Path) -> Router {
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/state", get(snapshot))
        .route("/api/events", get(stream::events))
        .route("/api/terminal", get(stream::terminal))
        .route("/api/recordings", get(stream::recordings))
        .route("/api/recordings/{name}", get(stream::recording))
        .route("/api/containers/{id}/changes", get(crate::api::containers::changes))
        .with_state(state);
    let index = page_dir.join("index.html");
    if index.is_file() {
        api.fallback_service(ServeDir::new(page_dir).fallback(ServeFile::new(index)))
    } else {
        let msg = format!(
            "berth's page is not built ({} is missing): run scripts/setup.sh, or `trunk build --release`\n",
            index.display()
        );
        api.fallback(move || async move { (StatusCode::SERVICE_UNAVAILABLE, msg) })
    }
}

/// Is a real engine behind this page, or should it run the simulator?
async fn health(State(st): State<AppState>) -> impl IntoResponse {
    let state = st.bus.state();
    let reason = state.daemon.as_ref().and_then(|d| d.reason.clone());
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "engine": st.engine,
        "reason": reason,
        "uptime_s": st.started.elapsed().as_secs(),
    }))
}

async fn snapshot(State(st): State<AppState>) -> impl IntoResponse {
    let (seq, state, _rx) = st.bus.snapshot_and_subscribe();
    Json(json!({ "seq": seq, "state": state }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::state;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_text(app: Router, uri: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_the_built_page_and_falls_back_to_index_for_app_routes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<html>berth</html>").unwrap();
        std::fs::write(dir.path().join("app.js"), "x").unwrap();
        let (s, body) = get_text(app(state(), dir.path()), "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "<html>berth</html>"));
        let (_, body) = get_text(app(state(), dir.path()), "/app.js").await;
        assert_eq!(body, "x");
        let (s, body) = get_text(app(state(), dir.path()), "/replay").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "<html>berth</html>"));
    }

    #[tokio::test]
    async fn an_unbuilt_page_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let (s, body) = get_text(app(state(), dir.path()), "/").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("trunk build"), "{body}");
    }

    #[tokio::test]
    async fn health_tells_the_page_whether_the_engine_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let (s, body) = get_text(app(state(), dir.path()), "/api/health").await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["engine"], "live");
    }
}
