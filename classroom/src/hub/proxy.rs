//! The hub's proxy to a learner's node: HTTP requests (the page, `/api/*`)
//! and WebSockets (`/api/events`, `/api/terminal`), each carrying the node's
//! secret as `Authorization: Bearer` and none of the browser's credentials
//! (cookies, Origin) — the node's lab server trusts only the hub.
//!
//! The terminal takes a hub ticket as its first message (the page asked
//! `POST …/api/terminal/ticket` of the hub); the hub then asks the node for
//! a node ticket and presents it. A read-only viewer (the instructor)
//! watches the learner's own shell: nothing they send reaches it, but for
//! their keystrokes while they have taken the terminal over (see `teach`);
//! a takeover ends when its instructor's terminal socket closes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::Hub;

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http()
}

/// Where a proxied request goes.
#[derive(Clone, Debug)]
pub struct Target {
    pub node: String,
    pub learner: String,
    pub addr: String,
    pub secret: String,
}

/// Request headers never passed to a node: hop-by-hop ones, and the
/// browser's credentials and provenance (the hub vouches instead).
const DROPPED_REQUEST: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cookie",
    "authorization",
    "origin",
    "referer",
    "sec-fetch-site",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "sec-fetch-user",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

const DROPPED_RESPONSE: &[&str] = &["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "set-cookie"];

pub fn message(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "message": msg }))).into_response()
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, dropped: &[&str]) {
    for (k, v) in from {
        if !dropped.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

fn bearer(secret: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {secret}")).unwrap_or_else(|_| HeaderValue::from_static("Bearer -"))
}

/// Forwards an HTTP request to the node; `path` is the node's path and query.
pub async fn http(hub: &Hub, t: &Target, req: Request<Body>, path: &str) -> Response {
    let (parts, body) = req.into_parts();
    let uri = format!("http://{}{}", t.addr, path);
    let mut up = Request::builder().method(parts.method.clone()).uri(&uri);
    if let Some(h) = up.headers_mut() {
        copy_headers(&parts.headers, h, DROPPED_REQUEST);
        h.insert(header::AUTHORIZATION, bearer(&t.secret));
        if let Ok(v) = HeaderValue::from_str(&t.addr) {
            h.insert(header::HOST, v);
        }
    }
    let Ok(up) = up.body(body) else { return message(StatusCode::BAD_REQUEST, "a request the hub cannot forward") };
    match tokio::time::timeout(Duration::from_secs(60), hub.client.request(up)).await {
        Ok(Ok(resp)) => {
            let (parts, body) = resp.into_parts();
            let mut r = Response::new(Body::new(body));
            *r.status_mut() = parts.status;
            copy_headers(&parts.headers, r.headers_mut(), DROPPED_RESPONSE);
            r
        }
        Ok(Err(e)) => {
            tracing::warn!(node = %t.node, error = %e, "proxy to node");
            message(StatusCode::BAD_GATEWAY, "your node1 does not answer")
        }
        Err(_) => message(StatusCode::GATEWAY_TIMEOUT, "your node1 did not answer in time"),
    }
}

/// Opens a WebSocket to the node (with the secret).
async fn connect(t: &Target, path: &str) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, String> {
    let mut req = format!("ws://{}{}", t.addr, path).into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert(header::AUTHORIZATION, bearer(&t.secret));
    let stream = tokio::net::TcpStream::connect(&t.addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(req, stream).await.map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The node's event stream, for the instructor's feed.
pub async fn connect_events(t: &Target) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, String> {
    connect(t, "/api/events").await
}

fn to_node(m: ws::Message) -> tungstenite::Message {
    match m {
        ws::Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
        ws::Message::Binary(b) => tungstenite::Message::Binary(b),
        ws::Message::Ping(b) => tungstenite::Message::Ping(b),
        ws::Message::Pong(b) => tungstenite::Message::Pong(b),
        ws::Message::Close(c) => tungstenite::Message::Close(
            c.map(|c| tungstenite::protocol::CloseFrame { code: c.code.into(), reason: c.reason.as_str().into() }),
        ),
    }
}

fn to_client(m: tungstenite::Message) -> Option<ws::Message> {
    Some(match m {
        tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
        tungstenite::Message::Binary(b) => ws::Message::Binary(b),
        tungstenite::Message::Ping(b) => ws::Message::Ping(b),
        tungstenite::Message::Pong(b) => ws::Message::Pong(b),
        tungstenite::Message::Close(c) => {
            ws::Message::Close(c.map(|c| ws::CloseFrame { code: c.code.into(), reason: c.reason.as_str().into() }))
        }
        tungstenite::Message::Frame(_) => return None,
    })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket.send(ws::Message::Close(Some(ws::CloseFrame { code, reason: reason.into() }))).await;
}

/// Who is on the client's side of a pump.
#[derive(Clone, Debug)]
enum Access {
    /// The node's learner.
    Owner,
    /// A read-only viewer: nothing they send goes on (a Close still ends the pump).
    ReadOnly,
    /// The instructor's session on the learner's terminal: their keystrokes
    /// (binary frames; never resizes) go on while they hold a takeover.
    Watcher(String),
}

/// Pumps both ways until either side ends.
async fn pump(
    hub: Arc<Hub>,
    client: WebSocket,
    node: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    access: Access,
    learner: String,
) {
    let (mut c_tx, mut c_rx) = client.split();
    let (mut n_tx, mut n_rx) = node.split();
    let down = async {
        while let Some(Ok(m)) = n_rx.next().await {
            let Some(m) = to_client(m) else { continue };
            if c_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = c_tx.close().await;
    };
    let up = async {
        while let Some(Ok(m)) = c_rx.next().await {
            if matches!(m, ws::Message::Close(_)) {
                let _ = n_tx.send(to_node(m)).await;
                break;
            }
            match &access {
                Access::Owner => hub.touch(&learner),
                Access::ReadOnly => continue,
                Access::Watcher(session) => {
                    if !(matches!(m, ws::Message::Binary(_)) && hub.may_type(&learner, session)) {
                        continue;
                    }
                }
            }
            if n_tx.send(to_node(m)).await.is_err() {
                break;
            }
        }
        let _ = n_tx.close().await;
    };
    tokio::select! {
        _ = down => {},
        _ = up => {},
    }
}

/// A WebSocket other than the terminal (the event stream): connected to
/// the node first, so a node that is down answers 502 rather than a socket
/// that closes at once.
pub async fn websocket(hub: Arc<Hub>, ws: WebSocketUpgrade, t: Target, path: String, read_only: bool) -> Response {
    tracing::debug!(node = %t.node, %path, read_only, "WebSocket to node");
    let node = match connect(&t, &path).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(node = %t.node, error = %e, "WebSocket to node");
            return message(StatusCode::BAD_GATEWAY, "your node1 does not answer");
        }
    };
    let access = if read_only { Access::ReadOnly } else { Access::Owner };
    ws.on_upgrade(move |socket| pump(hub, socket, node, access, t.learner))
}

/// Asks the node itself (with the secret): the body of a 2xx answer.
pub async fn ask(hub: &Hub, t: &Target, method: Method, path: &str) -> Result<axum::body::Bytes, String> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", t.addr))
        .header(header::AUTHORIZATION, bearer(&t.secret))
        .header(header::HOST, &t.addr)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(60), hub.client.request(req))
        .await
        .map_err(|_| "the node did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the node answered {}", resp.status()));
    }
    Ok(http_body_util::BodyExt::collect(resp.into_body()).await.map_err(|e| e.to_string())?.to_bytes())
}

/// Asks the node for a terminal ticket.
async fn node_ticket(hub: &Hub, t: &Target) -> Result<String, String> {
    let body = ask(hub, t, Method::POST, "/api/terminal/ticket").await?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    v["ticket"].as_str().map(str::to_string).ok_or_else(|| "no ticket in the node's answer".into())
}

/// The terminal: a hub ticket first (for this session and node), then the
/// node's shell. `path` is the node's path and query (the shell's id in it).
pub async fn terminal(hub: Arc<Hub>, ws: WebSocketUpgrade, t: Target, path: String, session: String, read_only: bool) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
        let ticket = match first {
            Ok(Some(Ok(ws::Message::Text(text)))) if text.len() <= 1024 => {
                serde_json::from_str::<serde_json::Value>(text.as_str()).ok().and_then(|v| v["ticket"].as_str().map(str::to_string))
            }
            _ => None,
        };
        if !ticket.is_some_and(|tk| hub.tickets.take(&tk, &session, &t.node)) {
            tracing::warn!(node = %t.node, "terminal socket closed: no valid hub ticket");
            return close(&mut socket, 4401, "a terminal needs a ticket from POST /api/terminal/ticket").await;
        }
        let nt = match node_ticket(&hub, &t).await {
            Ok(nt) => nt,
            Err(e) => {
                tracing::warn!(node = %t.node, error = %e, "node ticket");
                return close(&mut socket, 1011, "your node1 does not answer").await;
            }
        };
        let mut node = match connect(&t, &path).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(node = %t.node, error = %e, "terminal to node");
                return close(&mut socket, 1011, "your node1 does not answer").await;
            }
        };
        if node.send(tungstenite::Message::Text(json!({ "ticket": nt }).to_string().into())).await.is_err() {
            return close(&mut socket, 1011, "your node1 does not answer").await;
        }
        if !read_only {
            return pump(hub, socket, node, Access::Owner, t.learner).await;
        }
        pump(hub.clone(), socket, node, Access::Watcher(session.clone()), t.learner.clone()).await;
        // The instructor left the learner's terminal: their takeover ends.
        if hub.may_type(&t.learner, &session) {
            let _ = hub.set_takeover(&t.learner, &session, false);
        }
    })
}

/// The query parameter `name` of a query string.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// `query` with `name` set to `value` (added or replaced).
pub fn with_param(query: &str, name: &str, value: &str) -> String {
    let mut parts: Vec<String> =
        query.split('&').filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(name)).map(str::to_string).collect();
    parts.push(format!("{name}={value}"));
    parts.join("&")
}

/// Headers a response from the hub itself carries.
pub fn no_store() -> (HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browsers_credentials_never_reach_a_node() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("cookie", "berth_hub=x"),
            ("authorization", "Bearer learner-made-up"),
            ("origin", "http://hub"),
            ("accept", "text/html"),
            ("sec-fetch-site", "same-origin"),
        ] {
            from.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to, DROPPED_REQUEST);
        assert_eq!(to.len(), 1);
        assert_eq!(to["accept"], "text/html");
    }

    #[test]
    fn a_query_parameter_is_found_and_replaced() {
        assert_eq!(query_param("cols=80&id=abc&rows=24", "id"), Some("abc"));
        assert_eq!(query_param("cols=80&idx=abc", "id"), None);
        assert_eq!(with_param("cols=80&id=abc&rows=24", "id", "xyz"), "cols=80&rows=24&id=xyz");
        assert_eq!(with_param("", "id", "xyz"), "id=xyz");
    }
}
