//! The instructor's feed: one WebSocket (`GET /hub/api/feed`) that carries
//! every learner's event stream, each frame tagged with its learner:
//!
//! - first `{"roster": [learner, …]}` (as `GET /hub/api/classes` shows them);
//! - then `{"learner": ID, "name": NAME, "class": ID, "node": ID, "hub_ms": T,
//!   "msg": …}` for every frame a learner's node streams (`msg` is the
//!   node's frame as-is: a snapshot, an event, or an array of events —
//!   progress events included); `hub_ms` is when the hub got it (Unix ms);
//! - `{"lagged": N}` when this viewer fell N frames behind and missed them.
//!
//! The hub follows each running node's `/api/events` once, whatever the
//! number of viewers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::broadcast;

use super::proxy::Target;
use super::Hub;
use crate::spawner::Phase;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Follows a learner's node's event stream into the feed while the learner
/// and their running node exist (reconnecting if the stream drops).
pub async fn follow_node(hub: Arc<Hub>, learner: String) {
    loop {
        let Some(l) = hub.learner(&learner) else { return };
        let Some(node) = l.node.clone().filter(|n| n.phase == Phase::Running) else { return };
        let Some(addr) = node.addr.clone() else { return };
        let t = Target { node: node.id.clone(), learner: l.id.clone(), addr, secret: l.secret.clone() };
        let lab = hub.class(&l.class).map(|(c, _)| c.lab).unwrap_or_default();
        let progress = hub.progress_of(&l.id);
        let archive = hub.cfg.archive_dir.as_ref().map(|a| super::progress::learner_dir(a, &l.class, &l.id));
        let tag = |raw: &str, hub_ms: u64| {
            // The node's frame is JSON already: embedded as-is.
            format!(
                "{{\"learner\":{},\"name\":{},\"class\":{},\"node\":{},\"hub_ms\":{hub_ms},\"msg\":{raw}}}",
                json!(l.id),
                json!(l.name),
                json!(l.class),
                json!(node.id),
            )
        };
        match super::proxy::connect_events(&t).await {
            Ok(mut ws) => {
                while let Some(Ok(m)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(text) = m {
                        let hub_ms = now_ms();
                        let _ = hub.feed.send(tag(text.as_str(), hub_ms).into());
                        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                        p.take_frame(&lab, text.as_str());
                        p.archive(archive.as_deref(), hub_ms, text.as_str());
                    }
                }
            }
            Err(e) => tracing::debug!(learner, error = %e, "following a node's events"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The node may be gone now: the loop's first lines find out.
        if let Ok(n) = hub.spawner.status(&node.id).await {
            if n.phase != Phase::Running {
                return;
            }
        } else {
            return;
        }
    }
}

/// One instructor's feed socket.
pub async fn serve(hub: Arc<Hub>, mut socket: WebSocket) {
    let mut rx = hub.feed.subscribe();
    let roster: Vec<serde_json::Value> = hub.learners().iter().map(super::learner_json).collect();
    if socket.send(Message::Text(json!({ "roster": roster }).to_string().into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(frame) => {
                    if socket.send(Message::Text(frame.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if socket.send(Message::Text(json!({ "lagged": n }).to_string().into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
