//! The page's one store: the state it started from, every event since, the
//! terminal's output with times, and where the timeline cursor is. What the
//! diagrams show is `shown()`: the live state, or the state after the first
//! `cursor` events. State only ever changes through `berth_shared::apply`.

use std::rc::Rc;

use berth_shared::lab::Lab;
use berth_shared::{apply, Envelope, Frame, Recording, State, StreamMsg};
use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Where the events come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Not known yet (asking berthd).
    Starting,
    /// The offline simulator, in this page.
    Simulated,
    /// berthd's stream (connected or not).
    Live { connected: bool },
    /// A recording file, played without a backend.
    Replay { name: String },
}

impl Source {
    /// Does the view follow a node1 that changes as one types (live or
    /// simulated), rather than a recording?
    pub fn follows(&self) -> bool {
        matches!(self, Source::Live { .. } | Source::Simulated)
    }
}

/// What a click selected: its kind and key (container id, port, layer…).
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    Container(String),
    Bridge(String),
    Port(String, u16),
    Layer(String),
    Rule(String, String),
    Volume(String),
}

#[derive(Clone, Copy)]
pub struct Store {
    pub source: RwSignal<Source>,
    /// The state before the first kept event.
    pub base: RwSignal<State>,
    pub base_seq: RwSignal<u64>,
    pub events: RwSignal<Vec<Envelope>>,
    /// Base plus every event: what "live" shows.
    pub live: RwSignal<State>,
    /// None: follow the end; Some(n): the state after n events.
    pub cursor: RwSignal<Option<usize>>,
    pub selected: RwSignal<Option<Selection>>,
    /// Terminal output with its time (ms since the epoch).
    pub term: RwSignal<Vec<(f64, String)>>,
    /// Bumped when the terminal must be redrawn from `term` (a scrub, a replay).
    pub redraw: RwSignal<u64>,
    /// A recording's terminal size.
    pub term_size: RwSignal<(u16, u16)>,
    /// The simulated node1, when there is no live one.
    pub sim: StoredValue<Option<berth_shared::sim::Sim>, LocalStorage>,
    /// A `vi` open in the simulated node1.
    pub editor: StoredValue<Option<berth_shared::vi::Editor>, LocalStorage>,
    /// The guided lab the steps panel shows and the simulator judges.
    pub lab: StoredValue<Lab>,
    /// Types into the terminal as if keyed (the steps panel's "run"); set
    /// by the terminal once it is up.
    pub keys: StoredValue<Option<Rc<dyn Fn(String)>>, LocalStorage>,
}

/// Makes the page's one store and provides it to every component below,
/// with the state the view shows computed once for all of them.
pub fn provide_store() -> Store {
    let store = Store::new();
    provide_context(store);
    provide_context(Shown(Memo::new(move |_| store.shown())));
    store
}

/// The state the view shows ([`Store::shown`]), as one memo the panels share.
#[derive(Clone, Copy, Debug)]
pub struct Shown(pub Memo<State>);

/// The shown state: the page's shared memo, or one of its own where none is
/// provided (a component tested alone).
pub fn use_shown() -> Memo<State> {
    use_context::<Shown>().map(|s| s.0).unwrap_or_else(|| {
        let store = use_store();
        Memo::new(move |_| store.shown())
    })
}

/// The page's store, as the component's ancestor provided it.
pub fn use_store() -> Store {
    expect_context::<Store>()
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("source", &self.source.get_untracked()).finish_non_exhaustive()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            source: RwSignal::new(Source::Starting),
            base: RwSignal::new(State::default()),
            base_seq: RwSignal::new(0),
            events: RwSignal::new(Vec::new()),
            live: RwSignal::new(State::default()),
            cursor: RwSignal::new(None),
            selected: RwSignal::new(None),
            term: RwSignal::new(Vec::new()),
            redraw: RwSignal::new(0),
            term_size: RwSignal::new((100, 30)),
            sim: StoredValue::new_local(None),
            editor: StoredValue::new_local(None),
            lab: StoredValue::new(berth_shared::lab::deploy_docker()),
            keys: StoredValue::new_local(None),
        }
    }

    /// Types `text` into node1's terminal (live shell or simulator), as if
    /// the learner had keyed it. False when there is no terminal to type
    /// into (a replay, the timeline in the past, no terminal yet).
    pub fn type_keys(&self, text: &str) -> bool {
        if self.cursor.get_untracked().is_some() || !self.source.get_untracked().follows() {
            return false;
        }
        match self.keys.get_value() {
            Some(f) => {
                f(text.to_string());
                true
            }
            None => false,
        }
    }

    /// Runs the lab on a simulated node1 (no berthd answered, or it cannot
    /// run containers).
    pub fn start_sim(&self) {
        // Steps completed before a reload stay completed; node1 itself starts anew.
        let completed = crate::components::steps::saved_completed(&self.lab.with_value(|l| l.id.clone()));
        let sim = berth_shared::sim::Sim::new(now_ms() as u64).with_lab(self.lab.get_value(), &completed);
        let state = sim.state.clone();
        self.sim.set_value(Some(sim));
        self.base.set(state.clone());
        self.base_seq.set(0);
        self.events.set(Vec::new());
        self.live.set(state);
        self.cursor.set(None);
        self.source.set(Source::Simulated);
    }

    /// One command line typed into the simulated node1: its output, and its
    /// events into the store (the same path live events take).
    pub fn sim_run(&self, line: &str, size: (u32, u32)) -> String {
        let perf = web_sys::window().and_then(|w| w.performance());
        let t0 = perf.as_ref().map(|p| p.now()).unwrap_or(0.0);
        let out = self.sim.try_update_value(|s| s.as_mut().map(|s| s.run(line, now_ms() as u64))).flatten();
        // Each command's time, for the page benchmark (window.berthSimTimings).
        if let (Some(p), Some(w)) = (perf, web_sys::window()) {
            let took = p.now() - t0;
            let key = wasm_bindgen::JsValue::from_str("berthSimTimings");
            use wasm_bindgen::JsCast;
            let arr: js_sys::Array = js_sys::Reflect::get(&w, &key).ok().and_then(|v| v.dyn_into().ok()).unwrap_or_default();
            arr.push(&took.into());
            let _ = js_sys::Reflect::set(&w, &key, &arr);
        }
        match out {
            Some(o) => {
                self.take_events(o.events);
                if let Some((path, content)) = o.editor {
                    let e = berth_shared::vi::Editor::new(&path, &content, size.0 as usize, size.1 as usize);
                    let screen = e.render();
                    self.editor.set_value(Some(e));
                    return screen;
                }
                o.text
            }
            None => String::new(),
        }
    }

    /// Keys for an open editor: what to draw, and whether it closed.
    pub fn editor_keys(&self, data: &str) -> Option<String> {
        use berth_shared::vi::{keys, Action};
        let mut screen = None;
        for k in keys(data) {
            let action = self.editor.try_update_value(|e| e.as_mut().map(|e| (e.key(&k), e.path.clone()))).flatten();
            match action {
                Some((Action::Draw(s), _)) => screen = Some(s),
                Some((Action::Quit { save }, path)) => {
                    self.editor.set_value(None);
                    if let Some(text) = save {
                        let events =
                            self.sim.try_update_value(|s| s.as_mut().map(|s| s.save_file(&path, &text))).flatten().unwrap_or_default();
                        self.take_events(events);
                    }
                    return Some(format!("\x1b[?1049l{}", self.sim_prompt()));
                }
                None => return None,
            }
        }
        screen
    }

    pub fn sim_prompt(&self) -> String {
        self.sim.with_value(|s| s.as_ref().map(|s| s.prompt()).unwrap_or_default())
    }

    /// The state the diagrams show.
    pub fn shown(&self) -> State {
        match self.cursor.get() {
            None => self.live.get(),
            Some(n) => {
                let mut s = self.base.get();
                self.events.with(|evs| {
                    for e in evs.iter().take(n) {
                        apply(&mut s, &e.event);
                    }
                });
                s
            }
        }
    }

    /// [`Store::shown`], without tracking it.
    pub fn shown_untracked(&self) -> State {
        leptos::prelude::untrack(|| self.shown())
    }

    /// The time (ms) the view is at: the cursor's event, or now.
    pub fn shown_time(&self) -> Option<f64> {
        let n = self.cursor.get()?;
        self.events.with(|evs| match n {
            // At the end: everything, including output after the last event.
            n if n >= evs.len() => None,
            0 => evs.first().map(|e| e.time_ms as f64 - 1.0),
            n => evs.get(n - 1).map(|e| e.time_ms as f64),
        })
    }

    fn take(&self, msg: StreamMsg) {
        match msg {
            StreamMsg::Snapshot { seq, state } => {
                self.base.set(state.clone());
                self.base_seq.set(seq);
                self.events.set(Vec::new());
                self.live.set(state);
                self.cursor.set(None);
            }
            StreamMsg::Event(env) => {
                self.live.update(|s| apply(s, &env.event));
                self.events.update(|v| v.push(env));
            }
        }
    }

    /// Applies a burst of messages with one update of each signal.
    pub(crate) fn take_all(&self, msgs: Vec<StreamMsg>) {
        let mut events = Vec::new();
        for m in msgs {
            match m {
                StreamMsg::Snapshot { .. } => {
                    self.take_events(std::mem::take(&mut events));
                    self.take(m);
                }
                StreamMsg::Event(e) => events.push(e),
            }
        }
        self.take_events(events);
    }

    fn take_events(&self, events: Vec<Envelope>) {
        if events.is_empty() {
            return;
        }
        self.live.update(|s| {
            for e in &events {
                apply(s, &e.event);
            }
        });
        self.events.update(|v| v.extend(events));
    }

    /// The last sequence number seen (for resuming).
    pub fn last_seq(&self) -> u64 {
        self.events.with_untracked(|v| v.last().map(|e| e.seq)).unwrap_or_else(|| self.base_seq.get_untracked())
    }

    /// Follows berthd's event stream, reconnecting with `since` after a drop.
    pub fn connect_live(self) {
        spawn_local(async move {
            let mut first = true;
            loop {
                if !matches!(self.source.get_untracked(), Source::Live { .. }) {
                    return;
                }
                let since = if first { String::new() } else { format!("?since={}", self.last_seq()) };
                match WebSocket::open(&ws_url(&format!("/api/events{since}"))) {
                    Ok(ws) => {
                        let (_, mut rx) = ws.split();
                        while let Some(Ok(Message::Text(t))) = rx.next().await {
                            if !matches!(self.source.get_untracked(), Source::Live { .. }) {
                                return;
                            }
                            // One message, or a burst of them as an array.
                            let msgs = if t.starts_with('[') {
                                serde_json::from_str::<Vec<StreamMsg>>(&t).ok()
                            } else {
                                serde_json::from_str::<StreamMsg>(&t).ok().map(|m| vec![m])
                            };
                            if let Some(msgs) = msgs {
                                if !matches!(self.source.get_untracked(), Source::Live { connected: true }) {
                                    self.source.set(Source::Live { connected: true });
                                }
                                self.take_all(msgs);
                            }
                        }
                    }
                    Err(e) => leptos::logging::warn!("event stream: {e}"),
                }
                first = false;
                if matches!(self.source.get_untracked(), Source::Live { .. }) {
                    self.source.set(Source::Live { connected: false });
                }
                gloo_net_sleep(1000).await;
            }
        });
    }

    /// Loads a recording: its start state, its events and its terminal
    /// output, and puts the cursor at the end.
    pub fn load_recording(&self, name: String, rec: &Recording) {
        let start_ms = rec.header.timestamp as f64 * 1000.0;
        let base = rec.header.berth.as_ref().map(|b| b.state.clone()).unwrap_or_default();
        let mut events = Vec::new();
        let mut term = Vec::new();
        for (t, f) in &rec.frames {
            match f {
                Frame::Event(e) => events.push(e.as_ref().clone()),
                Frame::Output(s) => term.push((start_ms + t * 1000.0, s.clone())),
                Frame::Resize(..) => {}
            }
        }
        self.source.set(Source::Replay { name });
        self.base_seq.set(rec.header.berth.as_ref().map(|b| b.seq).unwrap_or(0));
        let mut live = base.clone();
        for e in &events {
            apply(&mut live, &e.event);
        }
        self.base.set(base);
        let n = events.len();
        self.events.set(events);
        self.live.set(live);
        self.term.set(term);
        self.term_size.set((rec.header.width, rec.header.height));
        self.selected.set(None);
        self.cursor.set(Some(n));
        self.redraw.update(|r| *r += 1);
    }
}

impl Store {
    /// This session as a recording (the same cast format berthd writes):
    /// the state it started from, its events and its terminal output.
    pub fn session_cast(&self) -> String {
        use berth_shared::record::{cast_header, cast_line};
        let base = self.base.get_untracked();
        let events = self.events.get_untracked();
        let term = self.term.get_untracked();
        let start = term.first().map(|(t, _)| *t).into_iter().chain(events.first().map(|e| e.time_ms as f64)).fold(f64::MAX, f64::min);
        let start = if start == f64::MAX { now_ms() } else { start };
        let (cols, rows) = self.term_size.get_untracked();
        let mut frames: Vec<(f64, Frame)> = term.into_iter().map(|(t, s)| ((t - start) / 1000.0, Frame::Output(s))).collect();
        frames.extend(events.into_iter().map(|e| ((e.time_ms as f64 - start) / 1000.0, Frame::Event(Box::new(e)))));
        frames.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut out = cast_header(cols, rows, (start / 1000.0) as u64, self.base_seq.get_untracked(), &base);
        for (t, f) in frames {
            out.push('\n');
            out.push_str(&cast_line((t.max(0.0) * 1000.0).round() / 1000.0, &f));
        }
        out.push('\n');
        out
    }
}

/// ws:// or wss:// for a path of the lab server, relative to the page's
/// own address (as [`crate::api::url`]): `/api/events` of a page at
/// `http://hub/n/abc/` is `ws://hub/n/abc/api/events`.
pub fn ws_url(path: &str) -> String {
    let doc_base = web_sys::window().and_then(|w| w.document()).and_then(|d| d.base_uri().ok().flatten());
    let base = doc_base.unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let abs = web_sys::Url::new_with_base(&crate::api::url(path), &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| format!("{base}{}", crate::api::url(path)));
    match abs.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => abs,
    }
}

/// Waits (without blocking the page).
pub async fn gloo_net_sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// Now, in ms since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
