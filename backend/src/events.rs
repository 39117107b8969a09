//! The event bus: every change the daemon makes goes through [`EventBus::emit`],
//! which numbers it, applies it to the daemon's own [`State`] and broadcasts it.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use berth_shared::{apply, Envelope, Event, State, StreamMsg};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it must resync.
const CHANNEL_CAPACITY: usize = 4096;

/// An event as the page's stream message, serialized once: (seq, JSON).
pub type Published = Arc<(u64, String)>;

#[derive(Debug)]
pub struct EventBus {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Envelope>,
    /// The same events as the page's stream messages, serialized once for
    /// every viewer: (seq, JSON).
    json_tx: broadcast::Sender<Published>,
    /// The guided lab whose progress follows the state: after each event
    /// its checks run (pure, in `shared`) and the progress events they call
    /// for are emitted right after it, in the stream and the recordings.
    lab: Option<berth_shared::lab::Lab>,
}

#[derive(Debug)]
struct Inner {
    seq: u64,
    state: State,
    /// The most recent events, oldest first (for `since` and for resuming).
    history: std::collections::VecDeque<Envelope>,
}

/// How many past events are kept for late subscribers.
const HISTORY: usize = 10_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (json_tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        EventBus { inner: Mutex::new(Inner { seq: 0, state: State::default(), history: Default::default() }), tx, json_tx, lab: None }
    }

    /// Reads the current state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&inner.state)
    }

    /// A bus that also judges the guided lab's progress.
    pub fn with_lab(mut self, lab: berth_shared::lab::Lab) -> Self {
        self.lab = Some(lab);
        self
    }

    /// Numbers, applies and broadcasts one event; returns its envelope.
    /// Sequence numbers have no gaps and follow the order of application.
    /// The lab's progress events it causes follow it at once.
    pub fn emit(&self, event: Event) -> Envelope {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.emit_locked(&mut inner, event)
    }

    /// Emits the event only if `still` holds of the state at that moment
    /// (under the same lock, so nothing comes between): an observer's news
    /// of something the state may have let go of meanwhile (a file of a
    /// container removed since).
    pub fn emit_if(&self, event: Event, still: impl FnOnce(&State) -> bool) -> Option<Envelope> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !still(&inner.state) {
            return None;
        }
        Some(self.emit_locked(&mut inner, event))
    }

    fn emit_locked(&self, inner: &mut Inner, event: Event) -> Envelope {
        let progress = !matches!(event, Event::LabProgress { .. });
        let env = self.publish(inner, event);
        if let (Some(lab), true) = (&self.lab, progress) {
            for e in lab.tick(&inner.state) {
                self.publish(inner, e);
            }
        }
        env
    }

    fn publish(&self, inner: &mut Inner, event: Event) -> Envelope {
        inner.seq += 1;
        apply(&mut inner.state, &event);
        let env = Envelope::new(inner.seq, now_ms(), event);
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(env.clone());
        // Sent under the lock, so subscribers see events in sequence order.
        let _ = self.tx.send(env.clone());
        if self.json_tx.receiver_count() > 0 {
            let json = serde_json::to_string(&StreamMsg::Event(env.clone())).unwrap_or_default();
            let _ = self.json_tx.send(Arc::new((env.seq, json)));
        }
        env
    }

    /// The state as of the last emitted event, with its sequence number.
    /// A subscriber taken together with it misses nothing and sees nothing twice.
    pub fn snapshot_and_subscribe(&self) -> (u64, State, broadcast::Receiver<Envelope>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.seq, inner.state.clone(), self.tx.subscribe())
    }

    /// Like [`Self::snapshot_and_subscribe`], with the events already
    /// serialized as the page's stream messages.
    pub fn snapshot_and_subscribe_json(&self) -> (u64, State, broadcast::Receiver<Published>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.seq, inner.state.clone(), self.json_tx.subscribe())
    }

    /// The kept history and a serialized subscription, taken together.
    pub fn history_and_subscribe_json(&self) -> (Vec<Envelope>, broadcast::Receiver<Published>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.history.iter().cloned().collect(), self.json_tx.subscribe())
    }

    /// The kept history (oldest first) and a subscription for what follows,
    /// taken together so that nothing falls between them.
    pub fn history_and_subscribe(&self) -> (Vec<Envelope>, broadcast::Receiver<Envelope>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.history.iter().cloned().collect(), self.tx.subscribe())
    }

    pub fn state(&self) -> State {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn snapshot_plus_subscription_sees_every_later_event_once_in_order() {
        let bus = EventBus::new();
        bus.emit(Event::DaemonStopping);
        let (seq, _state, mut rx) = bus.snapshot_and_subscribe();
        assert_eq!(seq, 1);
        bus.emit(Event::DaemonStopping);
        bus.emit(Event::DaemonStopping);
        assert_eq!(rx.recv().await.unwrap().seq, 2);
        assert_eq!(rx.recv().await.unwrap().seq, 3);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn emit_if_emits_only_while_the_state_still_allows_it() {
        let bus = EventBus::new();
        let file =
            |dir: &str| Event::FileChanged { dir: dir.into(), path: "/a".into(), change: berth_shared::event::FileChangeKind::Added };
        bus.emit(Event::VolumeCreated { name: "v".into(), mountpoint: "/v/_data".into(), anonymous: false });
        let known = |dir: &'static str| move |s: &State| s.volumes.values().any(|v| v.mountpoint == dir);
        assert!(bus.emit_if(file("/v/_data"), known("/v/_data")).is_some());
        bus.emit(Event::VolumeRemoved { name: "v".into() });
        assert!(bus.emit_if(file("/v/_data"), known("/v/_data")).is_none());
        let (history, _) = bus.history_and_subscribe();
        assert_eq!(history.len(), 3, "the refused event is neither numbered nor kept");
        assert!(bus.state().files.is_empty(), "the removed volume's files are not brought back");
    }

    #[test]
    fn the_labs_progress_follows_each_event_once_in_the_stream() {
        use berth_shared::lab::LabChange;
        let bus = EventBus::new().with_lab(berth_shared::lab::deploy_docker());
        bus.emit(Event::DaemonStopping);
        let (history, _) = bus.history_and_subscribe();
        let progress: Vec<(u64, String, LabChange)> = history
            .iter()
            .filter_map(|e| match &e.event {
                Event::LabProgress { step, change, .. } => Some((e.seq, step.clone(), change.clone())),
                _ => None,
            })
            .collect();
        // The first step starts, right after the event that led to it.
        assert!(progress.iter().any(|(seq, step, c)| *seq > 1 && step == "hello" && *c == LabChange::StepStarted), "{progress:?}");
        assert!(matches!(history[0].event, Event::DaemonStopping));
        // Nothing changed: no more progress events.
        let before = history.len();
        bus.emit(Event::DaemonStopping);
        let (history, _) = bus.history_and_subscribe();
        assert_eq!(history.len(), before + 1);
        let (_, state, _) = bus.snapshot_and_subscribe();
        assert!(state.lab.contains_key("deploy-docker"), "the progress is in the state");
    }
}
