//! `docker exec`: processes started inside a running container.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};

/// One exec instance, as `GET /exec/{id}/json` reports it.
#[derive(Clone, Debug)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub running: bool,
    pub started: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
}

impl ExecRecord {
    pub fn inspect(&self) -> Value {
        json!({
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.args.first().cloned().unwrap_or_default(),
                "arguments": self.args.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
                "privileged": false,
                "user": self.user,
            },
            "OpenStdin": self.attach_stdin,
            "OpenStderr": self.attach_stderr,
            "OpenStdout": self.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container_id,
            "DetachKeys": "",
            "Pid": self.pid,
        })
    }
}

#[derive(Debug, Default)]
pub struct Exec {
    pub record: Mutex<Option<ExecRecord>>,
    pub pty: Mutex<Option<Arc<OwnedFd>>>,
}

impl Exec {
    pub fn record(&self) -> Option<ExecRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn update(&self, f: impl FnOnce(&mut ExecRecord)) {
        if let Some(r) = self.record.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f(r);
        }
    }
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        match self.pty.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(fd) => crate::sys::set_winsize(fd.as_fd(), rows, cols),
            None => Ok(()),
        }
    }
}

/// Exec instances by ID.
#[derive(Debug, Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub fn add(&self, record: ExecRecord) -> Arc<Exec> {
        let e = Arc::new(Exec { record: Mutex::new(Some(record.clone())), pty: Mutex::new(None) });
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(record.id, e.clone());
        e
    }
    pub fn get(&self, id: &str) -> Result<Arc<Exec>, ApiError> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("No such exec instance: {id}")))
    }
    /// Exec IDs of a container, for `docker inspect`'s ExecIDs.
    pub fn of_container(&self, container_id: &str) -> Vec<String> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|e| e.record())
            .filter(|r| r.container_id == container_id && r.running)
            .map(|r| r.id)
            .collect()
    }
}
