//! Each learner's progress as the hub follows it, and what is left of a
//! class after it: the export.
//!
//! The hub reads its feed's frames of each node (see `feed`): the lab's
//! progress events (their times give the time spent per step), the shell's
//! commands (the dashboard's "last command") and the first snapshot. It
//! also appends every frame to the learner's archive,
//! `<archive>/<class>/<learner>/events.jsonl` (`{"hub_ms", "msg"}` lines), and
//! copies their terminal recordings there when the class ends or is
//! exported, so nothing of a class is lost with its nodes.
//!
//! Exports (instructor): `GET /hub/api/classes/{id}/progress.json`,
//! `…/progress.csv` (one row per learner and step: state, seconds spent,
//! failures and their diagnosis codes) and `…/export.tar` (both, and for
//! each learner their events and recordings, asciicast v2 with berth's
//! events).

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_shared::lab::{Lab, LabRecord, LabTimes, StepRow};
use berth_shared::{Envelope, Event, StreamMsg};
use serde::Serialize;

/// An archive's events file stops growing here (a note says so).
const MAX_EVENTS_FILE: u64 = 64 << 20;

/// A learner's last command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastCommand {
    pub command: String,
    pub exit_code: i32,
    pub at_ms: u64,
}

/// What the hub knows of one learner's progress.
#[derive(Debug, Default)]
pub struct LearnerProgress {
    pub times: LabTimes,
    pub record: LabRecord,
    pub last_command: Option<LastCommand>,
    archive: Option<EventsFile>,
}

#[derive(Debug)]
struct EventsFile {
    file: std::fs::File,
    written: u64,
    full: bool,
}

/// The envelopes and snapshot state of one node frame (a snapshot, an
/// event, or an array of events).
fn messages(text: &str) -> Vec<StreamMsg> {
    if text.starts_with('[') {
        serde_json::from_str(text).unwrap_or_default()
    } else {
        serde_json::from_str(text).map(|m| vec![m]).unwrap_or_default()
    }
}

/// Does the frame carry anything progress reads? (Most frames are kernel
/// observations: they are not parsed.)
fn relevant(text: &str) -> bool {
    text.contains("\"lab_progress\"") || text.contains("\"shell_command\"") || text.starts_with("{\"kind\":\"snapshot\"")
}

impl LearnerProgress {
    /// Takes one frame of the learner's node stream (of lab `lab`).
    pub fn take_frame(&mut self, lab: &str, text: &str) {
        if !relevant(text) {
            return;
        }
        for m in messages(text) {
            match m {
                StreamMsg::Snapshot { state, .. } => {
                    self.record = state.lab.get(lab).cloned().unwrap_or_default();
                    if self.last_command.is_none() {
                        self.last_command =
                            state.commands.last().map(|c| LastCommand { command: c.command.clone(), exit_code: c.exit_code, at_ms: 0 });
                    }
                }
                StreamMsg::Event(env) => self.take(lab, &env),
            }
        }
    }

    fn take(&mut self, lab: &str, env: &Envelope) {
        self.times.take(lab, env);
        match &env.event {
            Event::LabProgress { lab: l, step, change } if l == lab => self.record.apply(step, change),
            Event::ShellCommand { command, exit_code, .. } => {
                self.last_command = Some(LastCommand { command: command.clone(), exit_code: *exit_code, at_ms: env.time_ms })
            }
            _ => {}
        }
    }

    /// Appends a frame to the learner's events file (opened on first use).
    pub fn archive(&mut self, dir: Option<&Path>, hub_ms: u64, text: &str) {
        if self.archive.is_none() {
            let Some(dir) = dir else { return };
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "the learner's archive");
                return;
            }
            let path = dir.join("events.jsonl");
            match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(file) => {
                    let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.archive = Some(EventsFile { file, written, full: false });
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "the learner's archive");
                    return;
                }
            }
        }
        let Some(a) = self.archive.as_mut() else { return };
        if a.full {
            return;
        }
        let line = if a.written + text.len() as u64 > MAX_EVENTS_FILE {
            a.full = true;
            format!("{{\"hub_ms\":{hub_ms},\"truncated\":\"this file reached {} MB: later events are not kept\"}}\n", MAX_EVENTS_FILE >> 20)
        } else {
            format!("{{\"hub_ms\":{hub_ms},\"msg\":{text}}}\n")
        };
        if a.file.write_all(line.as_bytes()).is_ok() {
            a.written += line.len() as u64;
        }
    }

    /// Its rows for an export.
    pub fn rows(&self, lab: &Lab) -> Vec<StepRow> {
        self.times.rows(lab, &self.record)
    }
}

/// A learner's archive directory.
pub fn learner_dir(archive: &Path, class: &str, learner: &str) -> PathBuf {
    archive.join(class).join(learner)
}

/// One learner in a progress export.
#[derive(Clone, Debug, Serialize)]
pub struct LearnerExport {
    pub id: String,
    pub name: String,
    pub joined_at: u64,
    pub last_command: Option<LastCommand>,
    pub completed: usize,
    pub steps: Vec<StepRow>,
}

fn rfc3339(ms: Option<u64>) -> String {
    ms.map(|m| berth_backend::ids::format_rfc3339((m / 1000) as i64, (m % 1000) as u32 * 1_000_000)).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    // Fields a spreadsheet would read as a formula are quoted as text.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The progress of a class as CSV: one row per learner and step.
pub fn csv(learners: &[LearnerExport]) -> String {
    let mut out = String::from("learner,name,step,title,state,completed,seconds,started,completed_at,failures,codes\n");
    for l in learners {
        for r in &l.steps {
            let fields = [
                l.id.clone(),
                l.name.clone(),
                r.step.clone(),
                r.title.clone(),
                r.state.as_str().to_string(),
                r.completed.to_string(),
                r.seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
                rfc3339(r.started_ms),
                rfc3339(r.completed_ms),
                r.failures.to_string(),
                r.codes.join(" "),
            ];
            out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_shared::lab::{LabChange, StepState};

    fn frame(events: &[(u64, Event)]) -> String {
        let msgs: Vec<StreamMsg> = events.iter().map(|(t, e)| StreamMsg::Event(Envelope::new(*t, *t, e.clone()))).collect();
        serde_json::to_string(&msgs).unwrap()
    }

    #[test]
    fn frames_give_times_records_and_the_last_command_and_other_frames_are_not_parsed() {
        let lab = berth_shared::lab::deploy_docker();
        let (a, b) = (lab.steps[0].id.clone(), lab.steps[1].id.clone());
        let ev = |step: &str, change| Event::LabProgress { lab: lab.id.clone(), step: step.into(), change };
        let mut p = LearnerProgress::default();
        // The first snapshot: a step done before the hub followed, and a command.
        let mut state = berth_shared::State::default();
        berth_shared::apply(&mut state, &ev(&a, LabChange::StepCompleted));
        berth_shared::apply(&mut state, &Event::ShellCommand { shell: "t".into(), command: "docker pull nginx".into(), exit_code: 0 });
        p.take_frame(&lab.id, &serde_json::to_string(&StreamMsg::Snapshot { seq: 3, state }).unwrap());
        assert!(p.record.steps[&a].completed);
        assert_eq!(p.last_command.as_ref().map(|c| c.command.as_str()), Some("docker pull nginx"));
        p.take_frame(&lab.id, &frame(&[(10_000, ev(&b, LabChange::StepStarted))]));
        p.take_frame(
            &lab.id,
            &frame(&[
                (12_000, Event::ShellCommand { shell: "t".into(), command: "docker run -d nginx".into(), exit_code: 0 }),
                (12_500, ev(&b, LabChange::StepCompleted)),
            ]),
        );
        // A single event, not in an array; and a frame progress does not read.
        p.take_frame(
            &lab.id,
            &serde_json::to_string(&StreamMsg::Event(Envelope::new(
                9,
                13_000,
                Event::ShellCommand { shell: "t".into(), command: "dokcer ps".into(), exit_code: 127 },
            )))
            .unwrap(),
        );
        p.take_frame(&lab.id, "{\"kind\":\"event\",\"garbage");
        assert_eq!(p.last_command, Some(LastCommand { command: "dokcer ps".into(), exit_code: 127, at_ms: 13_000 }));
        let rows = p.rows(&lab);
        assert_eq!((rows[0].state, rows[0].completed, rows[0].seconds), (StepState::Passed, true, None));
        assert_eq!((rows[1].state, rows[1].seconds), (StepState::Passed, Some(2.5)));
        let export = LearnerExport {
            id: "l1".into(),
            name: "=HYPERLINK(\"x\"), bob".into(),
            joined_at: 0,
            last_command: None,
            completed: 2,
            steps: rows,
        };
        let text = csv(&[export]);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("learner,name,step,title,state,completed,seconds,started,completed_at,failures,codes"));
        let second = lines.nth(1).unwrap();
        assert!(second.starts_with(&format!("l1,\"'=HYPERLINK(\"\"x\"\"), bob\",{b},")), "{second}");
        assert!(second.contains(",passed,true,2.5,"), "{second}");
        assert_eq!(text.lines().count(), 1 + lab.steps.len());
    }

    #[test]
    fn the_archive_appends_each_frame_and_stops_at_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LearnerProgress::default();
        let d = dir.path().join("c1").join("l1");
        p.archive(Some(&d), 5, "{\"kind\":\"event\"}");
        p.archive(Some(&d), 6, "[1,2]");
        let text = std::fs::read_to_string(d.join("events.jsonl")).unwrap();
        assert_eq!(text, "{\"hub_ms\":5,\"msg\":{\"kind\":\"event\"}}\n{\"hub_ms\":6,\"msg\":[1,2]}\n");
        if let Some(a) = p.archive.as_mut() {
            a.written = MAX_EVENTS_FILE - 2;
        }
        p.archive(Some(&d), 7, "[3]");
        p.archive(Some(&d), 8, "[4]");
        let text = std::fs::read_to_string(d.join("events.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().last().unwrap().contains("\"truncated\""));
    }
}
