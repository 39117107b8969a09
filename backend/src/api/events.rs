//! `GET /events`: berth's events as Docker's event messages.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_shared::{apply, Envelope, Event};
use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiResult;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// Docker's message for one event, given the state *before* it (for names).
/// Kernel-level steps with no Docker counterpart (mounts, namespaces) are
/// not Docker events and give None; they are on the lab's stream.
pub fn docker_event(before: &berth_shared::State, env: &Envelope) -> Option<Value> {
    let secs = env.time_ms / 1000;
    let nanos = env.time_ms * 1_000_000;
    let container = |id: &str, action: &str, extra: &[(&str, String)]| {
        let c = before.containers.get(id);
        let image = c.map(|c| c.image.clone()).unwrap_or_default();
        let mut attrs = serde_json::Map::new();
        attrs.insert("image".into(), json!(image));
        attrs.insert("name".into(), json!(c.map(|c| c.name.clone()).unwrap_or_default()));
        for (k, v) in extra {
            attrs.insert((*k).into(), json!(v));
        }
        json!({
            "status": action, "id": id, "from": image,
            "Type": "container", "Action": action,
            "Actor": {"ID": id, "Attributes": attrs},
            "scope": "local", "time": secs, "timeNano": nanos,
        })
    };
    let image = |id: &str, action: &str, name: &str| {
        json!({
            "status": action, "id": if name.is_empty() { id } else { name },
            "Type": "image", "Action": action,
            "Actor": {"ID": if name.is_empty() { id } else { name }, "Attributes": {"name": name}},
            "scope": "local", "time": secs, "timeNano": nanos,
        })
    };
    let volume = |name: &str, action: &str| {
        json!({
            "Type": "volume", "Action": action,
            "Actor": {"ID": name, "Attributes": {"driver": "local"}},
            "scope": "local", "time": secs, "timeNano": nanos,
        })
    };
    let network = |id: &str, name: &str, action: &str| {
        json!({
            "Type": "network", "Action": action,
            "Actor": {"ID": id, "Attributes": {"name": name, "type": "bridge"}},
            "scope": "local", "time": secs, "timeNano": nanos,
        })
    };
    Some(match &env.event {
        Event::ContainerCreated { id, name, image: img, .. } => {
            let mut v = container(id, "create", &[]);
            v["from"] = json!(img);
            v["Actor"]["Attributes"]["image"] = json!(img);
            v["Actor"]["Attributes"]["name"] = json!(name);
            v
        }
        Event::ContainerStarted { id, .. } => container(id, "start", &[]),
        Event::ContainerExited { id, exit_code } => container(id, "die", &[("exitCode", exit_code.to_string())]),
        Event::ContainerRemoved { id } => container(id, "destroy", &[]),
        Event::ContainerRenamed { id, name } => {
            let old = before.containers.get(id).map(|c| format!("/{}", c.name)).unwrap_or_default();
            let mut v = container(id, "rename", &[("oldName", old)]);
            v["Actor"]["Attributes"]["name"] = json!(name);
            v
        }
        Event::ContainerPaused { id } => container(id, "pause", &[]),
        Event::ContainerUnpaused { id } => container(id, "unpause", &[]),
        Event::ContainerHealth { id, status } => container(id, &format!("health_status: {status}"), &[]),
        Event::ProcessExecd { id, command, .. } => container(id, &format!("exec_start: {}", command.join(" ")), &[]),
        Event::ProcessExited { id, exec_id, exit_code } => {
            container(id, "exec_die", &[("execID", exec_id.clone()), ("exitCode", exit_code.to_string())])
        }
        Event::ImageAdded { id, repo_tags, .. } => image(id, "pull", repo_tags.first().map(String::as_str).unwrap_or("")),
        Event::ImageTagged { id, tag } => image(id, "tag", tag),
        Event::ImageUntagged { id, .. } => image(id, "untag", ""),
        Event::ImageRemoved { id } => image(id, "delete", ""),
        Event::VolumeCreated { name, .. } => volume(name, "create"),
        Event::VolumeRemoved { name } => volume(name, "destroy"),
        Event::NetworkCreated { id, name, .. } => network(id, name, "create"),
        Event::NetworkRemoved { id, name } => network(id, name, "destroy"),
        _ => return None,
    })
}

fn matches(filters: &Value, v: &Value) -> bool {
    let Some(f) = filters.as_object() else { return true };
    let check = |key: &str, got: &str| match f.get(key).and_then(|x| x.as_object()) {
        Some(allowed) if !allowed.is_empty() => allowed.keys().any(|a| a == got),
        _ => true,
    };
    check("type", v["Type"].as_str().unwrap_or(""))
        && check("event", v["Action"].as_str().unwrap_or("").split(':').next().unwrap_or(""))
        && (check("container", v["Actor"]["ID"].as_str().unwrap_or(""))
            || check("container", v["Actor"]["Attributes"]["name"].as_str().unwrap_or("")))
}

async fn events(State(st): State<AppState>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let parse = |k: &str| super::validate::parse_unix_time(k, q.get(k).map(String::as_str).unwrap_or(""));
    let since = parse("since")?;
    let until = parse("until")?;
    let filters = super::filters::from_query(&q)?;
    let (history, mut rx) = st.bus.history_and_subscribe();
    let (tx, out) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(256);
    tokio::spawn(async move {
        let mut state = berth_shared::State::default();
        let in_range = |env: &Envelope| {
            let t = env.time_ms as f64 / 1000.0;
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
        };
        let mut last = 0;
        for env in &history {
            if since.is_some() && in_range(env) {
                if let Some(v) = docker_event(&state, env).filter(|v| matches(&filters, v)) {
                    if tx.send(Ok(format!("{v}\n"))).await.is_err() {
                        return;
                    }
                }
            }
            apply(&mut state, &env.event);
            last = env.seq;
        }
        loop {
            let wait = match until {
                Some(u) => {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                    if now > u {
                        return;
                    }
                    // At most an hour at a time: the loop checks again.
                    std::time::Duration::from_secs_f64((u - now).min(3600.0))
                }
                None => std::time::Duration::from_secs(3600),
            };
            let env = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Ok(env)) => env,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => return,
                Err(_) if until.is_some() => return,
                Err(_) => continue,
            };
            if env.seq <= last {
                continue;
            }
            last = env.seq;
            if let Some(v) = docker_event(&state, &env).filter(|v| matches(&filters, v)) {
                if tx.send(Ok(format!("{v}\n"))).await.is_err() {
                    return;
                }
            }
            apply(&mut state, &env.event);
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(out));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_shared::RwLayer;

    #[test]
    fn container_events_carry_dockers_action_and_the_name() {
        let mut s = berth_shared::State::default();
        let created = Envelope::new(
            1,
            1_767_225_600_123,
            Event::ContainerCreated {
                mounts: vec![],
                id: "abc".into(),
                name: "web".into(),
                image: "nginx:alpine".into(),
                image_id: "sha256:1".into(),
                command: vec![],
                layer: RwLayer::default(),
            },
        );
        let v = docker_event(&s, &created).unwrap();
        assert_eq!((v["Type"].as_str(), v["Action"].as_str()), (Some("container"), Some("create")));
        apply(&mut s, &created.event);
        let died = Envelope::new(2, 1_767_225_601_000, Event::ContainerExited { id: "abc".into(), exit_code: 3 });
        let v = docker_event(&s, &died).unwrap();
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["Attributes"]["name"], "web");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["time"], 1_767_225_601);
        // Mounts are lab events, not Docker events.
        let m = Envelope::new(3, 0, Event::OverlayUnmounted { id: "abc".into(), merged: "/m".into() });
        assert!(docker_event(&s, &m).is_none());
    }

    #[test]
    fn filters_select_by_type_and_event() {
        let v = json!({"Type": "container", "Action": "exec_start: sh", "Actor": {"ID": "abc", "Attributes": {"name": "web"}}});
        assert!(matches(&json!({"event": {"exec_start": true}}), &v));
        assert!(!matches(&json!({"type": {"image": true}}), &v));
        assert!(matches(&json!({"container": {"web": true}}), &v));
    }
}
