//! Swarm mode: berth's node1 is in no swarm, and answers as a Docker engine
//! outside any swarm does (clients rely on it: a network teardown calls
//! `POST /swarm/leave?force=1` and carries on at its 503). Every route of
//! swarm mode answers 503 with Docker's message:
//!
//! - `POST /swarm/leave`: "This node is not part of a swarm";
//! - `/swarm` and the rest of `/swarm/*`, `/nodes`, `/services`, `/tasks`,
//!   `/secrets`, `/configs`: "This node is not a swarm manager. …";
//! - `POST /swarm/init`, `POST /swarm/join`: berth cannot start or join one.
//!
//! `GET /info` says `Swarm.LocalNodeState: inactive`.

use axum::extract::Request;
use axum::http::Method;
use axum::routing::any;
use axum::Router;

use super::AppState;
use crate::error::{ApiError, ErrorKind};

pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
pub const NOT_A_MANAGER: &str =
    "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
pub const NO_SWARM_MODE: &str = "berth does not run swarm mode: node1 is a single Docker engine, and stays out of any swarm";

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for base in ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"] {
        r = r.route(base, any(answer)).route(&format!("{base}/{{*rest}}"), any(answer));
    }
    r
}

/// What Docker outside a swarm says to `method path`.
pub fn message(method: &Method, path: &str) -> &'static str {
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "/swarm/leave") => NOT_IN_SWARM,
        (&Method::POST, "/swarm/init" | "/swarm/join") => NO_SWARM_MODE,
        _ => NOT_A_MANAGER,
    }
}

async fn answer(req: Request) -> ApiError {
    ApiError::new(ErrorKind::Unavailable, message(req.method(), req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::call;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn every_swarm_route_answers_503_as_docker_outside_a_swarm_does() {
        for (method, uri, want) in [
            ("POST", "/swarm/leave?force=1", NOT_IN_SWARM),
            ("POST", "/v1.41/swarm/leave", NOT_IN_SWARM),
            ("GET", "/swarm", NOT_A_MANAGER),
            ("GET", "/swarm/unlockkey", NOT_A_MANAGER),
            ("POST", "/swarm/init", NO_SWARM_MODE),
            ("POST", "/swarm/join", NO_SWARM_MODE),
            ("GET", "/nodes", NOT_A_MANAGER),
            ("GET", "/nodes/abc", NOT_A_MANAGER),
            ("DELETE", "/nodes/abc", NOT_A_MANAGER),
            ("GET", "/services", NOT_A_MANAGER),
            ("POST", "/services/create", NOT_A_MANAGER),
            ("GET", "/services/web/logs", NOT_A_MANAGER),
            ("GET", "/tasks", NOT_A_MANAGER),
            ("GET", "/secrets", NOT_A_MANAGER),
            ("POST", "/secrets/create", NOT_A_MANAGER),
            ("GET", "/configs", NOT_A_MANAGER),
            ("GET", "/configs/x", NOT_A_MANAGER),
        ] {
            let (status, headers, json, text) = call(method, uri).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {text}");
            assert_eq!(json["message"], want, "{method} {uri}");
            assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
        }
        // Unknown routes stay Docker's JSON 404.
        let (status, _, json, _) = call("GET", "/swarmy").await;
        assert_eq!((status, json["message"].as_str()), (StatusCode::NOT_FOUND, Some("page not found")));
    }
}
