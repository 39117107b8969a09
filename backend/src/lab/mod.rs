//! The lab server: the page (Trunk's dist), the daemon's health and state,
//! the live event stream, terminal sessions and their recordings.

pub mod auth;
pub mod marks;
pub mod stream;
pub mod terminals;

use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};

use crate::api::AppState;
use auth::LabAuth;
use terminals::Terminals;

/// What the lab's handlers share: the daemon's state and the door.
#[derive(Clone, Debug)]
pub struct LabState {
    pub app: AppState,
    pub auth: Arc<LabAuth>,
    pub terminals: Arc<Terminals>,
}

impl FromRef<LabState> for AppState {
    fn from_ref(s: &LabState) -> AppState {
        s.app.clone()
    }
}

impl FromRef<LabState> for Arc<Terminals> {
    fn from_ref(s: &LabState) -> Arc<Terminals> {
        s.terminals.clone()
    }
}

impl FromRef<LabState> for Arc<LabAuth> {
    fn from_ref(s: &LabState) -> Arc<LabAuth> {
        s.auth.clone()
    }
}

/// The lab server. Every route, the page's files included, is behind
/// [`auth::guard`]: Host, Origin and a session (see `auth`).
pub fn app(state: AppState, page_dir: &Path, auth: Arc<LabAuth>, terminals: Arc<Terminals>) -> Router {
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/state", get(snapshot))
        .route("/api/events", get(stream::events))
        .route("/api/terminal", get(terminals::terminal))
        .route("/api/terminal/ticket", post(auth::ticket))
        .route("/api/recordings", get(stream::recordings))
        .route("/api/recordings/{name}", get(stream::recording))
        .route("/api/containers/{id}/changes", get(crate::api::containers::changes))
        .with_state(LabState { app: state, auth: auth.clone(), terminals });
    let index = page_dir.join("index.html");
    let routes = if index.is_file() {
        api.fallback_service(ServeDir::new(page_dir).fallback(ServeFile::new(index)))
    } else {
        let msg = format!("berth's page is not built ({} is missing): run scripts/setup.sh, or `trunk build --release`\n", index.display());
        api.fallback(move || async move { (StatusCode::SERVICE_UNAVAILABLE, msg) })
    };
    routes.layer(middleware::from_fn_with_state(auth, auth::guard))
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
    use axum::http::{header, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const TOKEN: &str = "lab-token-for-the-tests-0123";

    fn door() -> Arc<LabAuth> {
        Arc::new(LabAuth::new(TOKEN.into(), "127.0.0.1:8080", &[], &[], false))
    }

    fn page() -> (tempfile::TempDir, Router, Arc<LabAuth>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<html>berth</html>").unwrap();
        std::fs::write(dir.path().join("app.js"), "x").unwrap();
        let auth = door();
        let app = app(state(), dir.path(), auth.clone(), Terminals::new());
        (dir, app, auth)
    }

    async fn send(app: Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn cookie(auth: &LabAuth) -> String {
        format!("{}={}", auth.cookie_name(), auth.new_session())
    }

    /// A request as the page itself makes it: its Host, its session.
    fn own(auth: &LabAuth, uri: &str) -> axum::http::request::Builder {
        Request::builder().uri(uri).header(header::HOST, "127.0.0.1:8080").header(header::COOKIE, cookie(auth))
    }

    async fn get_text(app: Router, auth: &LabAuth, uri: &str) -> (StatusCode, String) {
        let (s, _, b) = send(app, own(auth, uri).body(Body::empty()).unwrap()).await;
        (s, b)
    }

    #[tokio::test]
    async fn serves_the_built_page_and_falls_back_to_index_for_app_routes() {
        let (_d, app, auth) = page();
        let (s, body) = get_text(app.clone(), &auth, "/").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "<html>berth</html>"));
        let (_, body) = get_text(app.clone(), &auth, "/app.js").await;
        assert_eq!(body, "x");
        let (s, body) = get_text(app, &auth, "/replay").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "<html>berth</html>"));
    }

    #[tokio::test]
    async fn an_unbuilt_page_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let auth = door();
        let (s, body) = get_text(app(state(), dir.path(), auth.clone(), Terminals::new()), &auth, "/").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("trunk build"), "{body}");
    }

    #[tokio::test]
    async fn health_tells_the_page_whether_the_engine_is_live() {
        let (_d, app, auth) = page();
        let (s, body) = get_text(app, &auth, "/api/health").await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["engine"], "live");
    }

    #[tokio::test]
    async fn without_a_session_every_route_is_closed() {
        let (_d, app, _) = page();
        for uri in [
            "/",
            "/app.js",
            "/replay",
            "/api/state",
            "/api/health",
            "/api/recordings",
            "/api/recordings/x.cast",
            "/api/events",
            "/api/terminal",
        ] {
            let req = Request::builder().uri(uri).header(header::HOST, "127.0.0.1:8080").body(Body::empty()).unwrap();
            let (s, _, body) = send(app.clone(), req).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}: {body}");
            assert!(!body.contains("berth</html>") && !body.contains("\"seq\""), "{uri} leaked: {body}");
        }
        // A forged cookie is no session.
        let req = Request::builder()
            .uri("/api/state")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, format!("berth_session_8080={}.{}", "a".repeat(32), "b".repeat(64)))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app, req).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn the_token_in_the_address_becomes_a_cookie_and_leaves_the_address() {
        let (_d, app, auth) = page();
        let req =
            Request::builder().uri(format!("/?token={TOKEN}&sim")).header(header::HOST, "127.0.0.1:8080").body(Body::empty()).unwrap();
        let (s, h, _) = send(app.clone(), req).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/?sim");
        let set = h[header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.starts_with("berth_session_8080="), "{set}");
        let value = set.split(';').next().unwrap().to_string();
        assert!(auth.check_session(value.split_once('=').unwrap().1));
        let req = Request::builder()
            .uri("/api/state")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, value)
            .body(Body::empty())
            .unwrap();
        let (s, _, body) = send(app.clone(), req).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        // A wrong token signs nobody in.
        let req =
            Request::builder().uri("/?token=wrong-token-0000000000").header(header::HOST, "127.0.0.1:8080").body(Body::empty()).unwrap();
        let (s, h, _) = send(app, req).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h.get(header::SET_COOKIE).is_none());
    }

    #[tokio::test]
    async fn the_login_form_and_the_bearer_token_sign_in() {
        let (_d, app, _) = page();
        let form = |t: &str| {
            Request::builder()
                .method("POST")
                .uri("/login")
                .header(header::HOST, "127.0.0.1:8080")
                .header(header::ORIGIN, "http://127.0.0.1:8080")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={t}")))
                .unwrap()
        };
        let (s, h, _) = send(app.clone(), form(TOKEN)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(h.get(header::SET_COOKIE).is_some());
        let (s, h, body) = send(app.clone(), form("nope-nope-nope-nope")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h.get(header::SET_COOKIE).is_none() && body.contains("not this lab"), "{body}");
        let req = Request::builder()
            .uri("/api/state")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app, req).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_forged_host_is_refused_even_with_a_session() {
        let (_d, app, auth) = page();
        for host in ["evil.example:8080", "evil.example", "127.0.0.1.evil.example:8080"] {
            let req = Request::builder()
                .uri("/api/state")
                .header(header::HOST, host)
                .header(header::COOKIE, cookie(&auth))
                .body(Body::empty())
                .unwrap();
            let (s, _, body) = send(app.clone(), req).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{host}: {body}");
        }
    }

    #[tokio::test]
    async fn other_origins_and_other_sites_are_refused() {
        let (_d, app, auth) = page();
        // A fetch or WebSocket from another origin (another port counts).
        for origin in ["http://evil.example", "http://127.0.0.1:9999", "null"] {
            let req = own(&auth, "/api/state").header(header::ORIGIN, origin).body(Body::empty()).unwrap();
            assert_eq!(send(app.clone(), req).await.0, StatusCode::FORBIDDEN, "{origin}");
            let req = own(&auth, "/api/terminal")
                .header(header::ORIGIN, origin)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "upgrade")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .body(Body::empty())
                .unwrap();
            assert_eq!(send(app.clone(), req).await.0, StatusCode::FORBIDDEN, "ws from {origin}");
        }
        // An <img>/<script> another port embeds: no Origin, but the browser says.
        let req =
            own(&auth, "/api/state").header("sec-fetch-site", "same-site").header("sec-fetch-mode", "no-cors").body(Body::empty()).unwrap();
        assert_eq!(send(app.clone(), req).await.0, StatusCode::FORBIDDEN);
        // Following a link to the lab is fine: it is our own page.
        let req = own(&auth, "/").header("sec-fetch-site", "cross-site").header("sec-fetch-mode", "navigate").body(Body::empty()).unwrap();
        assert_eq!(send(app.clone(), req).await.0, StatusCode::OK);
        // A WebSocket with our cookie but no Origin is not our page.
        let req = own(&auth, "/api/events")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app.clone(), req).await.0, StatusCode::FORBIDDEN);
        // Our own page's requests pass.
        let req = own(&auth, "/api/state")
            .header(header::ORIGIN, "http://127.0.0.1:8080")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app, req).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn the_terminal_ticket_is_for_the_session_only() {
        let (_d, app, auth) = page();
        let req = Request::builder()
            .method("POST")
            .uri("/api/terminal/ticket")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, "http://127.0.0.1:8080")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(app.clone(), req).await.0, StatusCode::UNAUTHORIZED);
        let req =
            own(&auth, "/api/terminal/ticket").method("POST").header(header::ORIGIN, "http://127.0.0.1:8080").body(Body::empty()).unwrap();
        let (s, _, body) = send(app, req).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let owner = auth.take_ticket(v["ticket"].as_str().unwrap()).expect("a ticket we issued");
        assert_eq!(owner.len(), 32, "made for the cookie's session: {owner}");
    }
}
