//! The dashboard's model, pure: every learner's node1 state kept by applying
//! the frames of the hub's feed (`GET /hub/api/feed`) with the same
//! [`apply`] the lab page uses, and what a tile and the heatmap show, judged
//! by the same evaluator ([`Lab::evaluate`]).

use std::collections::{BTreeMap, VecDeque};

use berth_shared::lab::{Lab, StepState};
use berth_shared::{apply, Envelope, State, Status, StreamMsg};
use serde_json::Value;

/// One learner as the feed tells of them.
#[derive(Clone, Debug, Default)]
pub struct Learner {
    pub id: String,
    pub name: String,
    pub class: String,
    pub node: Option<String>,
    /// Their node1 as its event stream left it.
    pub state: State,
    /// Unix ms of the last frame from their node (or of their last activity, from the roster).
    pub last_ms: f64,
    /// Unix ms since their hand is raised.
    pub hand_ms: Option<f64>,
    /// The step they are on, and since when (Unix ms).
    pub step_since: Option<(String, f64)>,
    /// A snapshot came (through the feed or fetched): the state is whole.
    pub whole: bool,
    /// The last events, to apply again over a snapshot fetched late.
    pub recent: VecDeque<Envelope>,
    /// Who has taken over their terminal.
    pub takeover: Option<String>,
}

/// Events kept per learner for a late snapshot.
const RECENT: usize = 512;

/// A container as a tile draws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiniContainer {
    pub name: String,
    pub running: bool,
    /// "80→80/tcp" for each published port.
    pub ports: Vec<String>,
}

/// What one tile shows (compared before a tile redraws).
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    pub id: String,
    pub name: String,
    pub node: Option<String>,
    pub bridges: Vec<String>,
    pub containers: Vec<MiniContainer>,
    pub volumes: Vec<String>,
    /// The current step (or the first failed one): number from 1, title, state.
    pub step: Option<(usize, String, StepState)>,
    pub step_id: Option<String>,
    /// Steps completed, of all.
    pub done: (usize, usize),
    /// (step id, diagnosis code, message) of every failing check of the
    /// current step and of failed steps.
    pub failing: Vec<(String, String, String)>,
    pub last_ms: f64,
    pub hand: bool,
    /// Since when they are on this step (Unix ms).
    pub step_since: f64,
    /// The last command line their shell ran, and its exit status.
    pub last_command: Option<(String, i32)>,
    /// Who has taken over their terminal.
    pub takeover: Option<String>,
}

/// A message the instructor sent to a class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    pub class: String,
    pub text: String,
    pub command: Option<String>,
}

/// The whole class: learners by id.
#[derive(Clone, Debug)]
pub struct Model {
    pub lab: Lab,
    pub learners: BTreeMap<String, Learner>,
    /// Broadcasts sent while this dashboard was open, newest last.
    pub sent: Vec<Sent>,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

impl Model {
    pub fn new(lab: Lab) -> Self {
        Model { lab, learners: BTreeMap::new(), sent: Vec::new() }
    }

    /// Takes one feed frame (its text); returns the learners it changed.
    pub fn take(&mut self, text: &str) -> Vec<String> {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return Vec::new() };
        if let Some(roster) = v.get("roster").and_then(Value::as_array) {
            return roster.iter().filter_map(|l| self.roster_entry(l)).collect();
        }
        if let Some(h) = v.get("hand") {
            let (Some(id), Some(raised)) = (h.get("learner").and_then(Value::as_str), h.get("raised").and_then(Value::as_bool)) else {
                return Vec::new();
            };
            let at = v.get("hub_ms").and_then(num).unwrap_or(0.0);
            let l = self.learners.entry(id.to_string()).or_insert_with(|| Learner { id: id.to_string(), ..Learner::default() });
            l.hand_ms = if raised { Some(l.hand_ms.unwrap_or(at)) } else { None };
            return vec![id.to_string()];
        }
        if let Some(t) = v.get("takeover") {
            let Some(id) = t.get("learner").and_then(Value::as_str) else { return Vec::new() };
            let st = t.get("state").cloned().unwrap_or_default();
            let l = self.learners.entry(id.to_string()).or_insert_with(|| Learner { id: id.to_string(), ..Learner::default() });
            l.takeover = takeover_by(&st);
            return vec![id.to_string()];
        }
        if let Some(b) = v.get("broadcast") {
            let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
            if let (Some(id), Some(class)) = (text("id"), text("class")) {
                if !self.sent.iter().any(|s| s.id == id) {
                    self.sent.push(Sent { id, class, text: text("text").unwrap_or_default(), command: text("command") });
                }
            }
            return Vec::new();
        }
        let (Some(id), Some(msg)) = (v.get("learner").and_then(Value::as_str), v.get("msg")) else { return Vec::new() };
        let msgs: Vec<StreamMsg> = match msg {
            Value::Array(_) => serde_json::from_value(msg.clone()).unwrap_or_default(),
            m => serde_json::from_value(m.clone()).map(|m| vec![m]).unwrap_or_default(),
        };
        let hub_ms = v.get("hub_ms").and_then(num).unwrap_or(0.0);
        let l = self.learners.entry(id.to_string()).or_insert_with(|| Learner { id: id.to_string(), ..Learner::default() });
        for (k, field) in [("name", &mut l.name), ("class", &mut l.class)] {
            if let Some(s) = v.get(k).and_then(Value::as_str) {
                *field = s.to_string();
            }
        }
        if let Some(n) = v.get("node").and_then(Value::as_str) {
            l.node = Some(n.to_string());
        }
        for m in msgs {
            match m {
                StreamMsg::Snapshot { state, .. } => {
                    l.state = state;
                    l.whole = true;
                    l.recent.clear();
                }
                StreamMsg::Event(e) => {
                    apply(&mut l.state, &e.event);
                    if !l.whole {
                        if l.recent.len() == RECENT {
                            l.recent.pop_front();
                        }
                        l.recent.push_back(e);
                    }
                }
            }
        }
        l.last_ms = l.last_ms.max(hub_ms);
        self.restep(id, hub_ms);
        vec![id.to_string()]
    }

    /// A learner's snapshot fetched from their node (`/n/<node>/api/state`,
    /// for a dashboard opened after their stream began): the events the feed
    /// brought since are applied again over it. Ignored once a snapshot came.
    pub fn take_snapshot(&mut self, id: &str, seq: u64, state: State, at_ms: f64) -> bool {
        let Some(l) = self.learners.get_mut(id) else { return false };
        if l.whole {
            return false;
        }
        l.state = state;
        for e in l.recent.iter().filter(|e| e.seq > seq) {
            apply(&mut l.state, &e.event);
        }
        l.whole = true;
        l.recent.clear();
        self.restep(id, at_ms);
        true
    }

    fn restep(&mut self, id: &str, at_ms: f64) {
        let Some(l) = self.learners.get_mut(id) else { return };
        let now_step = current_step(&self.lab, &l.state);
        if l.step_since.as_ref().map(|(s, _)| s) != now_step.as_ref() {
            l.step_since = now_step.map(|s| (s, at_ms));
        }
    }

    fn roster_entry(&mut self, r: &Value) -> Option<String> {
        let id = r.get("id")?.as_str()?.to_string();
        let l = self.learners.entry(id.clone()).or_insert_with(|| Learner { id: id.clone(), ..Learner::default() });
        l.name = r.get("name").and_then(Value::as_str).unwrap_or(&l.name).to_string();
        l.class = r.get("class").and_then(Value::as_str).unwrap_or(&l.class).to_string();
        if let Some(n) = r.get("node").and_then(|n| n.get("id")).and_then(Value::as_str) {
            l.node = Some(n.to_string());
        }
        if let Some(t) = r.get("last_activity_ms").and_then(num) {
            l.last_ms = l.last_ms.max(t);
        }
        l.hand_ms = r.get("hand_ms").and_then(num);
        l.takeover = r.get("takeover").and_then(|t| t.get("by")).and_then(Value::as_str).map(str::to_string);
        Some(id)
    }

    /// The tile of learner `id`.
    pub fn tile(&self, id: &str) -> Option<Tile> {
        self.learners.get(id).map(|l| tile(&self.lab, l))
    }

    #[cfg(test)]
    pub fn tiles(&self) -> Vec<Tile> {
        self.learners.values().map(|l| tile(&self.lab, l)).collect()
    }
}

/// `{"active": true, "by": …}` → who.
fn takeover_by(state: &Value) -> Option<String> {
    if state.get("active").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    Some(state.get("by").and_then(Value::as_str).unwrap_or("the instructor").to_string())
}

fn current_step(lab: &Lab, state: &State) -> Option<String> {
    lab.evaluate(state).into_iter().find(|s| matches!(s.state, StepState::Current | StepState::Failed)).map(|s| s.step)
}

/// What learner `l`'s tile shows.
pub fn tile(lab: &Lab, l: &Learner) -> Tile {
    let s = &l.state;
    let statuses = lab.evaluate(s);
    let at = statuses
        .iter()
        .position(|st| matches!(st.state, StepState::Failed))
        .or_else(|| statuses.iter().position(|st| st.state == StepState::Current));
    let step = at.map(|i| (i + 1, lab.steps[i].title.clone(), statuses[i].state));
    let failing = statuses
        .iter()
        .filter(|st| matches!(st.state, StepState::Current | StepState::Failed))
        .flat_map(|st| {
            st.checks.iter().filter_map(move |c| c.diagnosis.as_ref().map(|d| (st.step.clone(), d.code.clone(), d.message.clone())))
        })
        .collect();
    let containers = s
        .containers
        .values()
        .map(|c| MiniContainer {
            name: c.name.clone(),
            running: c.status == Status::Running,
            ports: c.ports.iter().map(|p| format!("{}→{}/{}", p.host_port, p.container_port, p.proto)).collect(),
        })
        .collect();
    Tile {
        id: l.id.clone(),
        name: if l.name.is_empty() { l.id.clone() } else { l.name.clone() },
        node: l.node.clone(),
        bridges: s.bridges.values().map(|b| format!("{} {}/{}", b.name, b.address, b.prefix)).collect(),
        containers,
        volumes: s.volumes.values().filter(|v| !v.anonymous).map(|v| v.name.clone()).collect(),
        step,
        step_id: at.map(|i| lab.steps[i].id.clone()),
        done: (statuses.iter().filter(|st| st.completed).count(), statuses.len()),
        failing,
        last_ms: l.last_ms,
        hand: l.hand_ms.is_some(),
        step_since: l.step_since.as_ref().map(|(_, t)| *t).unwrap_or(l.last_ms),
        last_command: s.commands.last().map(|c| (c.command.clone(), c.exit_code)),
        takeover: l.takeover.clone(),
    }
}

/// One cell of "why the class is stuck": a diagnosis code at a step, and
/// the learners whose checks fail with it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeatCell {
    pub step: String,
    /// The step's number from 1 and title.
    pub step_no: usize,
    pub step_title: String,
    pub code: String,
    /// Learners' display names, sorted.
    pub learners: Vec<String>,
}

/// The heatmap: failing checks by (step, code), each learner counted once
/// in a cell; in the lab's step order, then by code.
pub fn heatmap(lab: &Lab, tiles: &[Tile]) -> Vec<HeatCell> {
    let mut cells: BTreeMap<(usize, String), HeatCell> = BTreeMap::new();
    for t in tiles {
        for (step, code, _) in &t.failing {
            let Some(i) = lab.steps.iter().position(|s| &s.id == step) else { continue };
            let c = cells.entry((i, code.clone())).or_insert_with(|| HeatCell {
                step: step.clone(),
                step_no: i + 1,
                step_title: lab.steps[i].title.clone(),
                code: code.clone(),
                learners: Vec::new(),
            });
            if !c.learners.contains(&t.name) {
                c.learners.push(t.name.clone());
            }
        }
    }
    let mut out: Vec<HeatCell> = cells.into_values().collect();
    for c in &mut out {
        c.learners.sort();
    }
    out
}

/// How the grid is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Longest on their step first.
    StuckLongest,
    /// Furthest behind in the lab first.
    Step,
    Name,
}

/// Which tiles the grid shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    HandRaised,
    /// On this step (its id).
    Step(String),
    /// Failing with this code.
    Code(String),
}

/// The ids of the tiles shown, in order.
pub fn order(tiles: &[Tile], sort: Sort, filter: &Filter) -> Vec<String> {
    let mut shown: Vec<&Tile> = tiles
        .iter()
        .filter(|t| match filter {
            Filter::All => true,
            Filter::HandRaised => t.hand,
            Filter::Step(s) => t.step_id.as_deref() == Some(s.as_str()),
            Filter::Code(c) => t.failing.iter().any(|(_, code, _)| code == c),
        })
        .collect();
    let by_name = |a: &&Tile, b: &&Tile| a.name.cmp(&b.name).then(a.id.cmp(&b.id));
    match sort {
        Sort::Name => shown.sort_by(by_name),
        Sort::StuckLongest => shown.sort_by(|a, b| {
            // Raised hands first, then who has been on their step longest.
            b.hand.cmp(&a.hand).then(a.step_since.total_cmp(&b.step_since)).then_with(|| by_name(a, b))
        }),
        Sort::Step => shown.sort_by(|a, b| {
            let k = |t: &Tile| t.step.as_ref().map(|s| s.0).unwrap_or(usize::MAX);
            k(a).cmp(&k(b)).then_with(|| by_name(a, b))
        }),
    }
    shown.into_iter().map(|t| t.id.clone()).collect()
}

/// "12 s", "3 min", "1 h 5 min".
pub fn idle_text(ms: f64) -> String {
    let s = (ms.max(0.0) / 1000.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
