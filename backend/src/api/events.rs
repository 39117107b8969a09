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

/// Docker's messages for one event, given the state *before* it (for
/// names) and the network IDs by name (the default bridge's is not in the
/// state). Kernel-level steps with no Docker counterpart (overlay mounts,
/// namespaces) are not Docker events; they are on the lab's stream.
pub fn docker_events(before: &berth_shared::State, env: &Envelope, network_id: &dyn Fn(&str) -> Option<String>) -> Vec<Value> {
    let secs = env.time_ms / 1000;
    let nanos = env.time_ms * 1_000_000;
    let event = |kind: &str, action: &str, actor: &str, attrs: Value| json!({"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attrs}, "scope": "local", "time": secs, "timeNano": nanos});
    // A container's volumes, as Docker tells their mounting and unmounting.
    let volumes = |id: &str, action: &str| -> Vec<Value> {
        let Some(c) = before.containers.get(id) else { return Vec::new() };
        c.mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .map(|m| {
                let attrs = if action == "mount" {
                    json!({"container": id, "destination": m.destination, "driver": "local", "propagation": "", "read/write": (!m.readonly).to_string()})
                } else {
                    json!({"container": id, "driver": "local"})
                };
                event("volume", action, &m.name, attrs)
            })
            .collect()
    };
    let net = |name: &str| network_id(name).or_else(|| before.networks.get(name).map(|n| n.id.clone())).unwrap_or_else(|| name.to_string());
    match &env.event {
        Event::EndpointAttached { id, network, .. } => {
            vec![event("network", "connect", &net(network), json!({"container": id, "name": network, "type": "bridge"}))]
        }
        Event::EndpointDetached { id, network, .. } => {
            vec![event("network", "disconnect", &net(network), json!({"container": id, "name": network, "type": "bridge"}))]
        }
        Event::ContainerStarted { id, .. } => volumes(id, "mount").into_iter().chain(docker_event(before, env)).collect(),
        Event::ContainerExited { id, .. } => docker_event(before, env).into_iter().chain(volumes(id, "unmount")).collect(),
        _ => docker_event(before, env).into_iter().collect(),
    }
}

/// An exec's command as Docker's events write it: the program, a space,
/// then its arguments ("true " for `true`).
fn exec_words(command: &[String]) -> String {
    match command.split_first() {
        Some((first, rest)) => format!("{first} {}", rest.join(" ")),
        None => String::new(),
    }
}

/// Docker's message for one event that has one (see [`docker_events`]).
fn docker_event(before: &berth_shared::State, env: &Envelope) -> Option<Value> {
    let secs = env.time_ms / 1000;
    let nanos = env.time_ms * 1_000_000;
    let container = |id: &str, action: &str, extra: &[(&str, String)]| {
        let c = before.containers.get(id);
        let image = c.map(|c| c.image.clone()).unwrap_or_default();
        let mut attrs = serde_json::Map::new();
        // Its labels first, as Docker puts them among the attributes.
        for (k, v) in c.map(|c| c.labels.clone()).unwrap_or_default() {
            attrs.insert(k, json!(v));
        }
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
        Event::ContainerCreated { id, name, image: img, labels, .. } => {
            let mut v = container(id, "create", &[]);
            for (k, val) in labels {
                v["Actor"]["Attributes"][k] = json!(val);
            }
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
        Event::ProcessExecd { id, command, .. } => container(id, &format!("exec_start: {}", exec_words(command)), &[]),
        Event::ProcessExited { id, exec_id, exit_code } => {
            container(id, "exec_die", &[("execID", exec_id.clone()), ("exitCode", exit_code.to_string())])
        }
        Event::ImageAdded { id, repo_tags, .. } => {
            // The pulled reference is the actor; its name without the tag
            // is the attribute (Docker's FamiliarString and FamiliarName).
            let tagged = repo_tags.first().map(String::as_str).unwrap_or("");
            let mut v = image(id, "pull", tagged);
            let slash = tagged.rfind('/').map(|i| i + 1).unwrap_or(0);
            let name = tagged[slash..].rfind(':').map(|i| &tagged[..slash + i]).unwrap_or(tagged);
            v["Actor"]["Attributes"]["name"] = json!(name);
            v
        }
        Event::ImageTagged { id, tag } => image(id, "tag", tag),
        Event::ImageUntagged { id, .. } => image(id, "untag", ""),
        Event::ImageRemoved { id } => image(id, "delete", ""),
        Event::VolumeCreated { name, .. } => volume(name, "create"),
        Event::VolumeRemoved { name } => volume(name, "destroy"),
        Event::NetworkCreated { id, name, .. } => network(id, name, "create"),
        Event::NetworkRemoved { id, name } => network(id, name, "destroy"),
        Event::ContainerRequest { id, action, signal, exec_id, command } => match (action.as_str(), signal, exec_id) {
            ("kill", Some(n), _) => container(id, "kill", &[("signal", n.to_string())]),
            ("exec_create", _, Some(e)) => container(id, &format!("exec_create: {}", exec_words(command)), &[("execID", e.clone())]),
            (a, _, _) => container(id, a, &[]),
        },
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
    let nets = st.containers.networks();
    let (tx, out) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(256);
    tokio::spawn(async move {
        let mut state = berth_shared::State::default();
        let network_id = move |name: &str| nets.as_ref().and_then(|n| n.find(name)).map(|n| n.id().to_string());
        let in_range = |env: &Envelope| {
            let t = env.time_ms as f64 / 1000.0;
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
        };
        let mut last = 0;
        for env in &history {
            if since.is_some() && in_range(env) {
                for v in docker_events(&state, env, &network_id).into_iter().filter(|v| matches(&filters, v)) {
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
            for v in docker_events(&state, &env, &network_id).into_iter().filter(|v| matches(&filters, v)) {
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
                labels: Default::default(),
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
