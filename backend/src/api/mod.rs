//! The Docker Engine API, one router per resource, tested without a socket.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::{Config, API_VERSION, MIN_API_VERSION};
use crate::engine::containers::Containers;
use crate::engine::exec::Execs;
use crate::error::ApiError;
use crate::events::EventBus;
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::system::HostFacts;
use berth_shared::EngineMode;

pub mod archive;
pub mod build;
pub mod commit;
pub mod containers;
pub mod defaults;
pub mod df;
pub mod events;
pub mod exec;
pub mod filters;
pub mod images;
pub mod model;
pub mod networks;
pub mod ps;
pub mod respond;
pub mod stats;
pub mod swarm;
pub mod system;
pub mod validate;
pub mod versions;
pub mod volumes;

/// What the API handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub bus: Arc<EventBus>,
    pub host: Arc<HostFacts>,
    pub engine: EngineMode,
    pub daemon_id: Arc<String>,
    pub started: Instant,
    pub images: Arc<ImageStore>,
    pub puller: Arc<Puller>,
    pub containers: Arc<Containers>,
    pub execs: Arc<Execs>,
    /// `docker build` (None where the engine cannot run containers).
    pub builder: Option<Arc<crate::build::Builder>>,
}

/// The whole API. Requests may carry a `/vX.Y` prefix, as the docker CLI
/// sends after version negotiation; it is checked and stripped before routing.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(system::router())
        .merge(df::router())
        .merge(images::router())
        .merge(containers::router())
        .merge(archive::router())
        .merge(commit::router())
        .merge(exec::router())
        .merge(events::router())
        .merge(networks::router())
        .merge(volumes::router())
        .merge(build::router())
        .merge(swarm::router())
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(axum::extract::DefaultBodyLimit::max(validate::BODY_LIMIT))
        .with_state(state);
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(api_version))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Every error answer in Docker's shape: axum's own rejections (a path or
/// query it cannot decode, a method a route lacks, a body over the limit)
/// come as plain text; they become `{"message": …}` with the same status.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut out = (status, axum::Json(serde_json::json!({ "message": text }))).into_response();
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Parses "1.41" into (1, 41).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The API version a request speaks: the `/vX.Y` its path came with, or the
/// newest for a path without one (as Docker treats it). Handlers whose answer
/// changed between versions take it as an extractor and ask `at_least`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn newest() -> ApiVersion {
        let (major, minor) = parse_version(API_VERSION).unwrap_or((1, 50));
        ApiVersion(major, minor)
    }

    /// Whether the request speaks API 1.`minor` or newer.
    pub fn at_least(self, minor: u32) -> bool {
        self >= ApiVersion(1, minor)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ApiVersion>().copied().unwrap_or_else(ApiVersion::newest))
    }
}

async fn api_version(mut req: Request, next: Next) -> Response {
    // `docker rm --link /web/db` asks for /containers//web/db: one slash.
    if req.uri().path().contains("//") {
        let mut path = req.uri().path().to_string();
        while path.contains("//") {
            path = path.replace("//", "/");
        }
        let new = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        match new.parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return ApiError::bad_request("invalid request URI").into_response(),
        }
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(asked) = parse_version(ver) {
            let max = parse_version(API_VERSION).unwrap_or((1, 50));
            let min = parse_version(MIN_API_VERSION).unwrap_or((1, 24));
            if asked > max {
                return ApiError::bad_request(format!("client version {ver} is too new. Maximum supported API version is {API_VERSION}"))
                    .into_response();
            }
            if asked < min {
                return ApiError::bad_request(format!(
                    "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                ))
                .into_response();
            }
            req.extensions_mut().insert(ApiVersion(asked.0, asked.1));
            let tail = if tail.is_empty() { "/" } else { tail };
            let new = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            match new.parse() {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => return ApiError::bad_request("invalid request URI").into_response(),
            }
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Server", HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")));
    resp
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use axum::http::StatusCode;
    use clap::Parser;

    pub fn state() -> AppState {
        let root = tempfile::tempdir().unwrap().keep();
        let images = Arc::new(ImageStore::open(&root).unwrap());
        let bus = Arc::new(EventBus::new());
        AppState {
            containers: Arc::new(
                Containers::open(
                    &root,
                    &root.join("run"),
                    images.clone(),
                    Arc::new(crate::engine::volumes::Volumes::open(&root, bus.clone()).unwrap()),
                    bus.clone(),
                )
                .unwrap(),
            ),
            images,
            execs: Arc::new(Execs::default()),
            builder: None,
            puller: Arc::new(Puller::new(&[], &[])),
            config: Arc::new(Config::parse_from(["berthd"])),
            bus,
            host: Arc::new(HostFacts::read()),
            engine: EngineMode::Live,
            daemon_id: Arc::new("TEST:ID".into()),
            started: Instant::now(),
        }
    }

    pub async fn call(method: &str, uri: &str) -> (StatusCode, axum::http::HeaderMap, serde_json::Value, String) {
        call_with(state(), method, uri, Vec::new()).await
    }

    /// One request with a body, against the given state.
    pub async fn call_with(
        st: AppState,
        method: &str,
        uri: &str,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let resp = app(st).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json, text)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::call;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn versioned_and_unversioned_paths_reach_the_same_handler() {
        let (s1, _, a, _) = call("GET", "/version").await;
        let (s2, _, b, _) = call("GET", "/v1.41/version").await;
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
        assert_eq!(a["ApiVersion"], b["ApiVersion"]);
    }

    #[tokio::test]
    async fn a_too_new_client_version_gets_dockers_400_message() {
        let (status, _, body, _) = call("GET", "/v1.99/version").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "client version 1.99 is too new. Maximum supported API version is 1.50");
        let (status, _, body, _) = call("GET", "/v1.23/version").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["message"],
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
    }

    #[tokio::test]
    async fn handlers_answer_as_the_version_asked() {
        // /info lost BridgeNfIptables in 1.50: an unversioned path is the newest.
        for (path, has) in [("/v1.41/info", true), ("/v1.49/info", true), ("/v1.50/info", false), ("/info", false)] {
            let (status, _, body, _) = call("GET", path).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body.get("BridgeNfIptables").is_some(), has, "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_routes_are_404_with_a_json_message() {
        let (status, headers, body, _) = call("GET", "/v1.41/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "page not found");
        assert_eq!(headers["api-version"], "1.50");
    }
}
