//! The host state model and [`apply`].

use serde::{Deserialize, Serialize};

use crate::event::{EngineMode, Event};

/// What the page knows of the daemon itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub api_version: String,
    pub root: String,
    pub socket: String,
    pub engine: EngineMode,
    pub reason: Option<String>,
    pub running: bool,
}

/// Everything berth shows of node1. Grows with the engine: containers,
/// images, links, rules, mounts, volumes and builds join it as events for
/// them are added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub daemon: Option<DaemonInfo>,
}

/// The only way [`State`] changes.
pub fn apply(state: &mut State, event: &Event) {
    match event {
        Event::DaemonStarted { version, api_version, root, socket, engine, reason } => {
            state.daemon = Some(DaemonInfo {
                version: version.clone(),
                api_version: api_version.clone(),
                root: root.clone(),
                socket: socket.clone(),
                engine: *engine,
                reason: reason.clone(),
                running: true,
            });
        }
        Event::DaemonStopping => {
            if let Some(d) = state.daemon.as_mut() {
                d.running = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, SCHEMA_VERSION};

    fn started() -> Event {
        Event::DaemonStarted {
            version: "0.1.0".into(),
            api_version: "1.41".into(),
            root: "/var/lib/berth".into(),
            socket: "/run/berth/docker.sock".into(),
            engine: EngineMode::Live,
            reason: None,
        }
    }

    #[test]
    fn daemon_start_then_stop_marks_it_not_running() {
        let mut s = State::default();
        apply(&mut s, &started());
        assert!(s.daemon.as_ref().is_some_and(|d| d.running && d.api_version == "1.41"));
        apply(&mut s, &Event::DaemonStopping);
        assert_eq!(s.daemon.as_ref().map(|d| d.running), Some(false));
    }

    #[test]
    fn stopping_before_any_start_leaves_state_empty() {
        let mut s = State::default();
        apply(&mut s, &Event::DaemonStopping);
        assert_eq!(s, State::default());
    }

    #[test]
    fn envelope_round_trips_through_json_with_a_type_tag() {
        let env = Envelope::new(7, 1_767_225_600_000, started());
        let json = serde_json::to_string(&env).unwrap_or_default();
        assert!(json.contains(r#""type":"daemon_started""#), "{json}");
        assert!(json.contains(&format!(r#""v":{SCHEMA_VERSION}"#)), "{json}");
        let back: Envelope = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, env);
    }
}
