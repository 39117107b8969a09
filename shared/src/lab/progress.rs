//! Progress through a lab: every step's status judged from [`State`], and
//! the [`LabChange`] events that take the recorded progress (`State::lab`)
//! from what it was to what it is. The same evaluator runs in berthd, in the
//! page's simulator and in tests; a replay applies the recorded events and so
//! shows progress as it was.
//!
//! Rules: a step is *completed* the first time all its checks pass at once,
//! and stays completed, whatever the learner does next (stopping a container
//! the step ran is part of the lab). The *current* step is the first one not
//! completed. A step shows as *failed* when it is current or completed and one
//! of its checks fails with a [`Severity::Broken`] diagnosis (a DNAT rule
//! deleted by hand, a file edited in the image's layer); it shows as passed
//! again once that is put right. Steps after the current one may complete
//! first: the learner is judged by state, not by order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checks::{Diagnosis, Severity};
use super::format::Lab;
use crate::event::Event;
use crate::state::State;

/// Where a step is, as the page's `data-state` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    #[default]
    Pending,
    Current,
    Passed,
    Failed,
}

impl StepState {
    /// "pending", "current", "passed" or "failed".
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Current => "current",
            StepState::Passed => "passed",
            StepState::Failed => "failed",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The check's kind, as lab.toml names it.
    pub kind: String,
    /// Why it fails; `None` when it passes.
    pub diagnosis: Option<Diagnosis>,
}

impl CheckStatus {
    pub fn passed(&self) -> bool {
        self.diagnosis.is_none()
    }
}

/// One step's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    pub step: String,
    pub state: StepState,
    /// All its checks passed at once, at some point.
    pub completed: bool,
    /// Its checks in lab.toml's order.
    pub checks: Vec<CheckStatus>,
}

/// A change of a lab's progress: the data of [`Event::LabProgress`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum LabChange {
    /// The step became the current one (or is current again after a failure).
    StepStarted,
    /// A check of the step fails with a broken diagnosis.
    StepFailed,
    /// All its checks passed (or, once completed, nothing is broken again).
    StepCompleted,
    /// Check number `check` (from 0, lab.toml's order) passes.
    CheckPassed { check: usize, kind: String },
    /// Check number `check` fails, and why.
    CheckFailed { check: usize, kind: String, diagnosis: Diagnosis },
}

/// A lab's progress as its events recorded it: what `State::lab` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRecord {
    pub steps: BTreeMap<String, StepRecord>,
}

/// One step's recorded progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub state: StepState,
    pub completed: bool,
    /// The last result recorded for each check, by its number.
    #[serde(with = "by_number")]
    pub checks: BTreeMap<usize, CheckStatus>,
}

/// A map keyed by check number, in JSON as an object whose keys are the
/// numbers' text. Read back from the keys' text, because inside an
/// internally tagged message (the stream's snapshot) serde hands the keys
/// over as strings, which a plain `usize` key refuses.
mod by_number {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::CheckStatus;

    pub fn serialize<S: Serializer>(m: &BTreeMap<usize, CheckStatus>, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<usize, CheckStatus>, D::Error> {
        BTreeMap::<String, CheckStatus>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| k.parse::<usize>().map(|k| (k, v)).map_err(|_| D::Error::custom(format!("check number {k:?} is not a number"))))
            .collect()
    }
}

impl LabRecord {
    /// Takes in one change (what [`crate::apply`] does with `LabProgress`).
    pub fn apply(&mut self, step: &str, change: &LabChange) {
        let s = self.steps.entry(step.to_string()).or_default();
        match change {
            LabChange::StepStarted => s.state = StepState::Current,
            LabChange::StepFailed => s.state = StepState::Failed,
            LabChange::StepCompleted => {
                s.state = StepState::Passed;
                s.completed = true;
            }
            LabChange::CheckPassed { check, kind } => {
                s.checks.insert(*check, CheckStatus { kind: kind.clone(), diagnosis: None });
            }
            LabChange::CheckFailed { check, kind, diagnosis } => {
                s.checks.insert(*check, CheckStatus { kind: kind.clone(), diagnosis: Some(diagnosis.clone()) });
            }
        }
    }

    /// The recorded progress as statuses in the lab's order: what a replay
    /// shows (checks never recorded are left out).
    pub fn statuses(&self, lab: &Lab) -> Vec<StepStatus> {
        lab.steps
            .iter()
            .map(|step| {
                let r = self.steps.get(&step.id).cloned().unwrap_or_default();
                StepStatus { step: step.id.clone(), state: r.state, completed: r.completed, checks: r.checks.into_values().collect() }
            })
            .collect()
    }
}

/// Every step's status in `state`, given the progress recorded so far
/// (`prev`, for what has completed).
pub fn evaluate(lab: &Lab, state: &State, prev: &LabRecord) -> Vec<StepStatus> {
    let mut current_found = false;
    lab.steps
        .iter()
        .map(|step| {
            let checks: Vec<CheckStatus> =
                step.checks.iter().map(|c| CheckStatus { kind: c.kind().into(), diagnosis: c.evaluate(state).err() }).collect();
            let all = !checks.is_empty() && checks.iter().all(CheckStatus::passed);
            let completed = all || prev.steps.get(&step.id).is_some_and(|r| r.completed);
            let broken = checks.iter().any(|c| c.diagnosis.as_ref().is_some_and(|d| d.severity == Severity::Broken));
            let state = if completed {
                if broken {
                    StepState::Failed
                } else {
                    StepState::Passed
                }
            } else if !current_found {
                current_found = true;
                if broken {
                    StepState::Failed
                } else {
                    StepState::Current
                }
            } else {
                StepState::Pending
            };
            StepStatus { step: step.id.clone(), state, completed, checks }
        })
        .collect()
}

/// The events that take the recorded progress `prev` to `next`: check
/// results of the steps the page shows checks for (current or failed, and a
/// step as it completes), then each step's change of state. Applied to the
/// state, they make [`evaluate`] give `next` again with no new events.
pub fn progress_events(lab_id: &str, prev: &LabRecord, next: &[StepStatus]) -> Vec<Event> {
    let mut out = Vec::new();
    let none = StepRecord::default();
    for s in next {
        let p = prev.steps.get(&s.step).unwrap_or(&none);
        let moved = s.state != p.state || s.completed != p.completed;
        let ev = |change| Event::LabProgress { lab: lab_id.to_string(), step: s.step.clone(), change };
        if matches!(s.state, StepState::Current | StepState::Failed) || (moved && s.state == StepState::Passed) {
            for (i, c) in s.checks.iter().enumerate() {
                if p.checks.get(&i) != Some(c) {
                    out.push(ev(match &c.diagnosis {
                        None => LabChange::CheckPassed { check: i, kind: c.kind.clone() },
                        Some(d) => LabChange::CheckFailed { check: i, kind: c.kind.clone(), diagnosis: d.clone() },
                    }));
                }
            }
        }
        if moved {
            match s.state {
                StepState::Current => out.push(ev(LabChange::StepStarted)),
                StepState::Failed => out.push(ev(LabChange::StepFailed)),
                StepState::Passed => out.push(ev(LabChange::StepCompleted)),
                StepState::Pending => {}
            }
        }
    }
    out
}

impl Lab {
    /// Every step's status now (live: what the steps panel shows).
    pub fn evaluate(&self, state: &State) -> Vec<StepStatus> {
        let none = LabRecord::default();
        evaluate(self, state, state.lab.get(&self.id).unwrap_or(&none))
    }

    /// The progress events `state` calls for, given the progress it records:
    /// call after every event and emit what it returns (none when nothing
    /// changed). Pure and idempotent.
    pub fn tick(&self, state: &State) -> Vec<Event> {
        let none = LabRecord::default();
        let prev = state.lab.get(&self.id).unwrap_or(&none);
        progress_events(&self.id, prev, &evaluate(self, state, prev))
    }

    /// The progress recorded in `state` (a replay's, as it was then).
    pub fn recorded(&self, state: &State) -> Vec<StepStatus> {
        state.lab.get(&self.id).cloned().unwrap_or_default().statuses(self)
    }
}

/// When each step of a lab started and completed, how often it failed and
/// with which diagnosis codes, taken from the progress events as they came
/// (their envelopes' times): the "time spent per step" of a class's export.
/// Progress events of other labs are not taken.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabTimes {
    pub steps: BTreeMap<String, StepTimes>,
}

/// One step's times (Unix ms) and failures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTimes {
    /// It first became the step to work on (current, or failed before it completed).
    pub started_ms: Option<u64>,
    /// It first completed.
    pub completed_ms: Option<u64>,
    /// How many times it turned failed.
    pub failures: u32,
    /// The diagnosis codes its checks failed with, first seen first.
    pub codes: Vec<String>,
}

impl StepTimes {
    /// Seconds from start to completion; a step completed before it was
    /// ever current took none of the learner's time on its own.
    pub fn seconds(&self) -> Option<f64> {
        let done = self.completed_ms?;
        let start = self.started_ms.unwrap_or(done).min(done);
        Some((done - start) as f64 / 1000.0)
    }
}

impl LabTimes {
    /// Takes one event of a learner's stream.
    pub fn take(&mut self, lab_id: &str, env: &crate::event::Envelope) {
        let Event::LabProgress { lab, step, change } = &env.event else { return };
        if lab != lab_id {
            return;
        }
        let s = self.steps.entry(step.clone()).or_default();
        match change {
            LabChange::StepStarted => {
                s.started_ms.get_or_insert(env.time_ms);
            }
            LabChange::StepFailed => {
                s.failures += 1;
                if s.completed_ms.is_none() {
                    s.started_ms.get_or_insert(env.time_ms);
                }
            }
            LabChange::StepCompleted => {
                s.completed_ms.get_or_insert(env.time_ms);
            }
            LabChange::CheckFailed { diagnosis, .. } => {
                if !s.codes.contains(&diagnosis.code) {
                    s.codes.push(diagnosis.code.clone());
                }
            }
            LabChange::CheckPassed { .. } => {}
        }
    }

    /// One row per step of `lab`, in its order, with the recorded state:
    /// what a class's progress export lists for a learner.
    pub fn rows(&self, lab: &Lab, record: &LabRecord) -> Vec<StepRow> {
        lab.steps
            .iter()
            .map(|step| {
                let t = self.steps.get(&step.id).cloned().unwrap_or_default();
                let r = record.steps.get(&step.id).cloned().unwrap_or_default();
                StepRow {
                    step: step.id.clone(),
                    title: step.title.clone(),
                    state: r.state,
                    completed: r.completed,
                    seconds: t.seconds(),
                    started_ms: t.started_ms,
                    completed_ms: t.completed_ms,
                    failures: t.failures,
                    codes: t.codes,
                }
            })
            .collect()
    }
}

/// A step of one learner's progress, as exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub step: String,
    pub title: String,
    pub state: StepState,
    pub completed: bool,
    /// Time spent on it (see [`StepTimes::seconds`]).
    pub seconds: Option<f64>,
    pub started_ms: Option<u64>,
    pub completed_ms: Option<u64>,
    pub failures: u32,
    pub codes: Vec<String>,
}
