//! A class's export (see `progress` for what is kept): the progress of
//! every learner as JSON or CSV, and one tar with it all.

use std::path::{Path, PathBuf};

use axum::http::Method;
use berth_shared::lab::Lab;
use serde_json::json;

use super::progress::{learner_dir, LearnerExport};
use super::proxy::{self, Target};
use super::{Class, Hub, HubError, Learner};
use crate::spawner::Phase;

/// The lab a class runs, if the hub has it.
pub fn lab_of(name: &str) -> Option<Lab> {
    let lab = berth_shared::lab::deploy_docker();
    (lab.id == name).then_some(lab)
}

/// A name safe as one path component of the tar ("ada-l1a2b3").
fn folder(l: &Learner) -> String {
    let name: String = l.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(40).collect();
    format!("{name}-{}", l.id)
}

fn valid_cast(name: &str) -> bool {
    name.ends_with(".cast") && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Hub {
    /// Every learner of a class with their progress, in join order.
    pub fn progress_export(&self, class: &str) -> Result<(Class, Vec<LearnerExport>), HubError> {
        let (c, mut learners) = self.class(class).ok_or_else(|| HubError::NotFound(format!("no such class: {class}")))?;
        learners.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
        let lab = lab_of(&c.lab);
        let out = learners
            .iter()
            .map(|l| {
                let p = self.progress_of(&l.id);
                let p = p.lock().unwrap_or_else(|e| e.into_inner());
                let steps = lab.as_ref().map(|lab| p.rows(lab)).unwrap_or_default();
                LearnerExport {
                    id: l.id.clone(),
                    name: l.name.clone(),
                    joined_at: l.joined_at,
                    last_command: p.last_command.clone(),
                    completed: steps.iter().filter(|s| s.completed).count(),
                    steps,
                }
            })
            .collect();
        Ok((c, out))
    }

    /// The progress export as JSON.
    pub fn progress_json(&self, class: &str) -> Result<serde_json::Value, HubError> {
        let (c, learners) = self.progress_export(class)?;
        let steps: Vec<serde_json::Value> =
            lab_of(&c.lab).map(|l| l.steps.iter().map(|s| json!({ "id": s.id, "title": s.title })).collect()).unwrap_or_default();
        Ok(json!({
            "class": { "id": c.id, "name": c.name, "lab": c.lab, "created_at": c.created_at, "expires_at": c.expires_at },
            "steps": steps,
            "learners": learners,
            "takeovers": self.takeovers().into_iter().filter(|t| t.class == c.id).collect::<Vec<_>>(),
            "broadcasts": self.broadcasts(&c.id),
        }))
    }

    /// Copies a learner's recordings from their node into their archive
    /// (a running node only); returns how many.
    pub async fn save_recordings(&self, l: &Learner) -> Result<usize, String> {
        let Some(archive) = self.cfg.archive_dir.clone() else { return Ok(0) };
        let Some(node) = l.node.as_ref().filter(|n| n.phase == Phase::Running) else { return Ok(0) };
        let t =
            Target { node: node.id.clone(), learner: l.id.clone(), addr: node.addr.clone().unwrap_or_default(), secret: l.secret.clone() };
        let list = proxy::ask(self, &t, Method::GET, "/api/recordings").await?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&list).map_err(|e| e.to_string())?;
        let dir = learner_dir(&archive, &l.class, &l.id).join("recordings");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| e.to_string())?;
        let mut n = 0;
        for name in list.iter().filter_map(|r| r["name"].as_str()).filter(|n| valid_cast(n)) {
            let cast = proxy::ask(self, &t, Method::GET, &format!("/api/recordings/{name}")).await?;
            tokio::fs::write(dir.join(name), &cast).await.map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    /// Copies every learner's recordings of a class into the archive.
    pub async fn save_class_recordings(&self, class: &str) {
        let learners: Vec<Learner> = self.class(class).map(|(_, ls)| ls).unwrap_or_default();
        for l in &learners {
            if let Err(e) = self.save_recordings(l).await {
                tracing::warn!(learner = %l.id, error = %e, "keeping the learner's recordings");
            }
        }
    }

    /// The whole class as one tar, written to a file in the archive
    /// (removed once opened): `progress.json`, `progress.csv`, and for each
    /// learner `<name>-<id>/events.jsonl` and `<name>-<id>/recordings/*.cast`.
    pub async fn export_tar(&self, class: &str) -> Result<std::fs::File, HubError> {
        let archive = self.cfg.archive_dir.clone().ok_or_else(|| HubError::Unavailable("this hub keeps no archive".into()))?;
        self.save_class_recordings(class).await;
        let json = self.progress_json(class)?;
        let (_, learners) = self.progress_export(class)?;
        let csv = super::progress::csv(&learners);
        let members: Vec<(String, PathBuf)> = self
            .class(class)
            .map(|(_, ls)| ls)
            .unwrap_or_default()
            .iter()
            .map(|l| (folder(l), learner_dir(&archive, class, &l.id)))
            .collect();
        let path = archive.join(class).join(format!(".export-{}.tar", berth_backend::lab::auth::random_hex(6)));
        let p = path.clone();
        let file = tokio::task::spawn_blocking(move || write_tar(&p, &json, &csv, &members))
            .await
            .map_err(|e| HubError::Unavailable(e.to_string()))?
            .map_err(|e| HubError::Unavailable(format!("writing the export: {e}")));
        let _ = std::fs::remove_file(&path);
        file
    }
}

fn add_bytes(tar: &mut tar::Builder<std::fs::File>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs());
    h.set_cksum();
    tar.append_data(&mut h, name, bytes)
}

fn write_tar(path: &Path, json: &serde_json::Value, csv: &str, members: &[(String, PathBuf)]) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    let mut tar = tar::Builder::new(file);
    add_bytes(&mut tar, "progress.json", serde_json::to_string_pretty(json).unwrap_or_default().as_bytes())?;
    add_bytes(&mut tar, "progress.csv", csv.as_bytes())?;
    for (folder, dir) in members {
        let events = dir.join("events.jsonl");
        if events.is_file() {
            tar.append_path_with_name(&events, format!("{folder}/events.jsonl"))?;
        }
        let Ok(casts) = std::fs::read_dir(dir.join("recordings")) else { continue };
        let mut names: Vec<String> =
            casts.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| valid_cast(n)).collect();
        names.sort();
        for n in names {
            tar.append_path_with_name(dir.join("recordings").join(&n), format!("{folder}/recordings/{n}"))?;
        }
    }
    let mut file = tar.into_inner()?;
    use std::io::Seek;
    file.rewind()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_holds_the_progress_and_each_learners_events_and_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = dir.path().join("c1/l1");
        std::fs::create_dir_all(l1.join("recordings")).unwrap();
        std::fs::write(l1.join("events.jsonl"), "{\"hub_ms\":1,\"msg\":{}}\n").unwrap();
        std::fs::write(l1.join("recordings/session-1-2.cast"), "{\"version\":2}\n").unwrap();
        std::fs::write(l1.join("recordings/.hidden.cast"), "x").unwrap();
        let members = vec![("ada-l1".to_string(), l1), ("bob-l2".to_string(), dir.path().join("c1/l2"))];
        let file = write_tar(&dir.path().join("c1/.x.tar"), &json!({"learners": []}), "learner,name\n", &members).unwrap();
        let mut a = tar::Archive::new(file);
        let mut names: Vec<String> = a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        names.sort();
        assert_eq!(names, ["ada-l1/events.jsonl", "ada-l1/recordings/session-1-2.cast", "progress.csv", "progress.json"]);
    }

    #[test]
    fn a_learners_folder_is_one_plain_path_component() {
        let l = Learner {
            id: "l1".into(),
            class: "c".into(),
            name: "../Ünï cödé/x".into(),
            joined_at: 0,
            last_activity_ms: 0,
            node: None,
            error: None,
            secret: String::new(),
            shells: vec![],
            hand_ms: None,
            takeover: None,
        };
        assert_eq!(folder(&l), "____n__c_d__x-l1");
    }
}
