//! The page's live event stream over WebSocket (a snapshot, then every
//! event — several in one frame, as a JSON array, when they come in a
//! burst; `?since=SEQ` resumes without gaps or repeats), and the terminal
//! sessions' recordings (asciinema casts under `<data-root>/recordings`,
//! written by `terminals`).

use std::path::PathBuf;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_shared::StreamMsg;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::api::AppState;

#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<u64>,
}

/// `GET /api/events` (WebSocket).
pub async fn events(ws: WebSocketUpgrade, State(st): State<AppState>, Query(q): Query<Since>) -> Response {
    ws.on_upgrade(move |socket| feed(st, socket, q.since))
}

fn text(m: &StreamMsg) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// What to send first: the events after `since` if they are all still kept,
/// else a snapshot. Returns the messages and the last seq they cover.
fn start(st: &AppState, since: Option<u64>) -> (Vec<StreamMsg>, u64, broadcast::Receiver<crate::events::Published>) {
    if let Some(since) = since {
        let (history, rx) = st.bus.history_and_subscribe_json();
        let last = history.last().map(|e| e.seq).unwrap_or(0);
        let first = history.first().map(|e| e.seq).unwrap_or(last + 1);
        if since >= first.saturating_sub(1) && since <= last {
            let msgs: Vec<StreamMsg> = history.into_iter().filter(|e| e.seq > since).map(StreamMsg::Event).collect();
            return (msgs, last, rx);
        }
    }
    let (seq, state, rx) = st.bus.snapshot_and_subscribe_json();
    (vec![StreamMsg::Snapshot { seq, state }], seq, rx)
}

async fn feed(st: AppState, mut socket: WebSocket, since: Option<u64>) {
    let (msgs, mut last, mut rx) = start(&st, since);
    for m in &msgs {
        if socket.send(text(m)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(first) => {
                    // Whatever else is already waiting goes in the same frame
                    // (a JSON array), serialized once by the bus for every viewer.
                    let mut batch = vec![first];
                    while batch.len() < 512 {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    let parts: Vec<&str> = batch.iter().filter(|m| m.0 > last).map(|m| m.1.as_str()).collect();
                    last = last.max(batch.iter().map(|m| m.0).max().unwrap_or(last));
                    if parts.is_empty() {
                        continue;
                    }
                    let frame = if parts.len() == 1 { parts[0].to_string() } else { format!("[{}]", parts.join(",")) };
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind: start over from a snapshot.
                    let (seq, state, fresh) = st.bus.snapshot_and_subscribe_json();
                    rx = fresh;
                    last = seq;
                    if socket.send(text(&StreamMsg::Snapshot { seq, state })).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

pub fn recordings_dir(st: &AppState) -> PathBuf {
    st.config.data_root.join("recordings")
}

/// `GET /api/recordings`: the recorded sessions, newest first.
pub async fn recordings(State(st): State<AppState>) -> impl IntoResponse {
    let mut list: Vec<(String, u64, u64)> = std::fs::read_dir(recordings_dir(&st))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    Some((e.file_name().to_string_lossy().into_owned(), m.len(), modified))
                })
                .filter(|(n, _, _)| n.ends_with(".cast"))
                .collect()
        })
        .unwrap_or_default();
    list.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    Json(list.into_iter().map(|(name, size, modified)| json!({"name": name, "size": size, "modified": modified, "url": format!("/api/recordings/{name}")})).collect::<Vec<_>>())
}

/// `GET /api/recordings/{name}`: one recording, to download or replay.
pub async fn recording(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let valid = name.ends_with(".cast") && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !name.starts_with('.');
    if !valid {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": format!("invalid recording name {name:?}")}))).into_response();
    }
    match tokio::fs::read(recordings_dir(&st).join(&name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/x-asciicast".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, Json(json!({"message": format!("no recording {name}")}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::state;
    use berth_shared::Event;

    fn seqs(msgs: &[StreamMsg]) -> Vec<String> {
        msgs.iter()
            .map(|m| match m {
                StreamMsg::Snapshot { seq, .. } => format!("snapshot@{seq}"),
                StreamMsg::Event(e) => e.seq.to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_new_viewer_gets_a_snapshot_and_a_returning_one_the_events_it_missed() {
        let st = state();
        for _ in 0..5 {
            st.bus.emit(Event::DaemonStopping);
        }
        let (msgs, last, _) = start(&st, None);
        assert_eq!((seqs(&msgs), last), (vec!["snapshot@5".to_string()], 5));
        let (msgs, last, _) = start(&st, Some(3));
        assert_eq!((seqs(&msgs), last), (vec!["4".to_string(), "5".to_string()], 5));
        let (msgs, _, _) = start(&st, Some(5));
        assert!(msgs.is_empty(), "up to date: nothing to resend");
        // From the future (another daemon's numbering): start over.
        let (msgs, _, _) = start(&st, Some(99));
        assert_eq!(seqs(&msgs), vec!["snapshot@5".to_string()]);
    }
}
