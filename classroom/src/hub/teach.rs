//! What the instructor does to a class besides watching: taking over a
//! learner's terminal, and broadcasting a message (or a command to try) to
//! the learners' pages; and what the learners' pages hear of it, on their
//! notices socket (`GET api/hub/notices`, a WebSocket):
//!
//! - `{"takeover": {"active": true, "by": LABEL, "since_ms": T}}` while the
//!   instructor may type in the learner's shell, `{"takeover": {"active":
//!   false}}` when it ends (first frame: the state now);
//! - `{"broadcast": {"id", "text", "command", "at_ms"}}` for each message to
//!   the learner's class (first: the class's last [`RECENT_BROADCASTS`]).
//!
//! Every takeover is logged (who, when, until when): `GET /hub/api/takeovers`.
//! The instructor's feed carries the same frames with the learner's id, so
//! the dashboard shows them too.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::{Message, WebSocket};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::{ms, Hub, HubError};

/// Broadcasts a learner's page is sent when it connects.
pub const RECENT_BROADCASTS: usize = 5;
/// Broadcasts the hub keeps.
const KEPT_BROADCASTS: usize = 100;
/// The longest broadcast message and command (characters).
const MAX_TEXT: usize = 500;

/// An instructor typing in a learner's shell.
#[derive(Clone, Debug, Serialize)]
pub struct Takeover {
    /// The instructor session's label (never the session id).
    pub by: String,
    pub since_ms: u64,
    /// The session itself: only it may type.
    #[serde(skip)]
    pub session: String,
}

/// One takeover, as the log keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct TakeoverEntry {
    pub learner: String,
    pub name: String,
    pub class: String,
    pub by: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

/// A message to a class's learners, with a command they may run.
#[derive(Clone, Debug, Serialize)]
pub struct Broadcast {
    pub id: String,
    pub class: String,
    pub text: String,
    pub command: Option<String>,
    pub at_ms: u64,
}

/// Who a notice is for.
#[derive(Clone, Debug)]
pub enum To {
    Learner(String),
    Class(String),
}

/// A frame for learners' notices sockets.
#[derive(Clone, Debug)]
pub struct Notice {
    pub to: To,
    pub frame: Arc<str>,
}

/// A session's label for logs and banners: a short hash, never the id
/// (which is the cookie's secret).
pub fn session_label(session: &str) -> String {
    if session == "bearer" {
        return "instructor (token)".into();
    }
    let h = Sha256::digest(session.as_bytes());
    format!("instructor {}", hex::encode(&h[..3]))
}

fn takeover_json(t: Option<&Takeover>) -> serde_json::Value {
    match t {
        Some(t) => json!({ "active": true, "by": t.by, "since_ms": t.since_ms }),
        None => json!({ "active": false }),
    }
}

fn clean(text: &str, what: &str) -> Result<String, HubError> {
    let t = text.trim();
    if t.chars().count() > MAX_TEXT {
        return Err(HubError::BadRequest(format!("a broadcast's {what} is at most {MAX_TEXT} characters")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(HubError::BadRequest(format!("a broadcast's {what} has control characters")));
    }
    Ok(t.to_string())
}

impl Hub {
    /// Starts (`active`) or ends the instructor session's takeover of a
    /// learner's terminal. Another instructor's takeover is not taken.
    pub fn set_takeover(&self, learner: &str, session: &str, active: bool) -> Result<Option<Takeover>, HubError> {
        let now = ms(SystemTime::now());
        let label = session_label(session);
        let (state, class, changed) = {
            let mut inner = self.lock();
            let Some(l) = inner.learners.get_mut(learner) else { return Err(HubError::NotFound(format!("no such learner: {learner}"))) };
            let class = l.class.clone();
            let name = l.name.clone();
            match (&l.takeover, active) {
                (Some(t), true) if t.session == session => (l.takeover.clone(), class, false),
                (Some(t), _) if t.session != session => {
                    return Err(HubError::Conflict(format!("{} has taken over this terminal since {} ms", t.by, t.since_ms)))
                }
                (None, false) => (None, class, false),
                (_, true) => {
                    l.takeover = Some(Takeover { by: label.clone(), since_ms: now, session: session.to_string() });
                    let t = l.takeover.clone();
                    inner.takeovers.push(TakeoverEntry {
                        learner: learner.to_string(),
                        name,
                        class: class.clone(),
                        by: label.clone(),
                        started_ms: now,
                        ended_ms: None,
                    });
                    (t, class, true)
                }
                (Some(_), false) => {
                    l.takeover = None;
                    if let Some(e) = inner.takeovers.iter_mut().rev().find(|e| e.learner == learner && e.ended_ms.is_none()) {
                        e.ended_ms = Some(now);
                    }
                    (None, class, true)
                }
            }
        };
        if changed {
            tracing::info!(learner, by = %label, active, "terminal takeover");
            let t = takeover_json(state.as_ref());
            self.notify(To::Learner(learner.to_string()), json!({ "takeover": t }));
            let _ =
                self.feed.send(json!({ "takeover": { "learner": learner, "class": class, "state": t }, "hub_ms": now }).to_string().into());
        }
        Ok(state)
    }

    /// May this session type in the learner's shell now?
    pub fn may_type(&self, learner: &str, session: &str) -> bool {
        self.lock().learners.get(learner).and_then(|l| l.takeover.as_ref()).is_some_and(|t| t.session == session)
    }

    /// Every takeover so far, oldest first.
    pub fn takeovers(&self) -> Vec<TakeoverEntry> {
        self.lock().takeovers.clone()
    }

    /// Sends a message (and a command to try) to a class's learners.
    pub fn broadcast(&self, class: &str, text: &str, command: Option<&str>) -> Result<Broadcast, HubError> {
        let text = clean(text, "text")?;
        let command = command.map(|c| clean(c, "command")).transpose()?.filter(|c| !c.is_empty());
        if text.is_empty() && command.is_none() {
            return Err(HubError::BadRequest("a broadcast needs a text or a command".into()));
        }
        if command.as_deref().is_some_and(|c| c.contains('\n')) {
            return Err(HubError::BadRequest("a broadcast's command is one line".into()));
        }
        let b = {
            let mut inner = self.lock();
            if !inner.classes.contains_key(class) {
                return Err(HubError::NotFound(format!("no such class: {class}")));
            }
            let b = Broadcast {
                id: format!("b{}", berth_backend::lab::auth::random_hex(4)),
                class: class.to_string(),
                text,
                command,
                at_ms: ms(SystemTime::now()),
            };
            inner.broadcasts.push(b.clone());
            let over = inner.broadcasts.len().saturating_sub(KEPT_BROADCASTS);
            inner.broadcasts.drain(..over);
            b
        };
        tracing::info!(class, id = %b.id, "broadcast");
        self.notify(To::Class(class.to_string()), json!({ "broadcast": b }));
        let _ = self.feed.send(json!({ "broadcast": b, "hub_ms": b.at_ms }).to_string().into());
        Ok(b)
    }

    /// The broadcasts to a class, oldest first.
    pub fn broadcasts(&self, class: &str) -> Vec<Broadcast> {
        self.lock().broadcasts.iter().filter(|b| b.class == class).cloned().collect()
    }

    fn notify(&self, to: To, frame: serde_json::Value) {
        let _ = self.notices.send(Notice { to, frame: frame.to_string().into() });
    }

    /// A learner's page's notices socket (the learner's own page, or the
    /// instructor's view of it).
    pub async fn serve_notices(self: Arc<Self>, learner: String, mut socket: WebSocket) {
        let mut rx = self.notices.subscribe();
        let Some(l) = self.learner(&learner) else { return };
        let mut first = vec![json!({ "takeover": takeover_json(l.takeover.as_ref()) })];
        let recent = self.broadcasts(&l.class);
        first.extend(recent.iter().skip(recent.len().saturating_sub(RECENT_BROADCASTS)).map(|b| json!({ "broadcast": b })));
        for f in first {
            if socket.send(Message::Text(f.to_string().into())).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Ok(n) => {
                        let mine = match &n.to {
                            To::Learner(id) => *id == learner,
                            To::Class(c) => *c == l.class,
                        };
                        if mine && socket.send(Message::Text(n.frame.as_ref().into())).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                m = socket.recv() => match m {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_label_is_short_and_stable_and_never_the_session() {
        let a = session_label("0123456789abcdef0123456789abcdef");
        assert_eq!(a, session_label("0123456789abcdef0123456789abcdef"));
        assert!(a.starts_with("instructor ") && a.len() == "instructor ".len() + 6, "{a}");
        assert!(!a.contains("0123456789"));
        assert_ne!(a, session_label("fedcba9876543210fedcba9876543210"));
    }

    #[test]
    fn broadcast_texts_are_bounded_and_plain() {
        assert!(clean(&"x".repeat(MAX_TEXT + 1), "text").is_err());
        assert!(clean("ring\x07", "text").is_err());
        assert_eq!(clean("  two\nlines ", "text").unwrap(), "two\nlines");
    }
}
