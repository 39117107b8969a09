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
    /// The last size asked for (rows, columns). The CLI asks right after
    /// the start request, which returns before the process (and its PTY)
    /// exists: the size is kept and given to the PTY when it comes.
    pub size: Mutex<Option<(u16, u16)>>,
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
        // Under the PTY's lock: a size asked for while the PTY is being set
        // is either applied here or found by `set_pty`.
        let pty = self.pty.lock().unwrap_or_else(|p| p.into_inner());
        *self.size.lock().unwrap_or_else(|p| p.into_inner()) = Some((rows, cols));
        match pty.as_ref() {
            Some(fd) => crate::sys::set_winsize(fd.as_fd(), rows, cols),
            None => Ok(()),
        }
    }

    /// The process's PTY (None when it ends): the size asked for before it
    /// existed is applied to it.
    pub fn set_pty(&self, master: Option<Arc<OwnedFd>>) {
        let mut pty = self.pty.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(fd), Some((rows, cols))) = (master.as_ref(), *self.size.lock().unwrap_or_else(|p| p.into_inner())) {
            if let Err(e) = crate::sys::set_winsize(fd.as_fd(), rows, cols) {
                tracing::debug!(error = %e, "exec: the size asked for before the start could not be set");
            }
        }
        *pty = master;
    }
}

/// Exec instances by ID.
#[derive(Debug, Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub fn add(&self, record: ExecRecord) -> Arc<Exec> {
        let e = Arc::new(Exec { record: Mutex::new(Some(record.clone())), pty: Mutex::new(None), size: Mutex::new(None) });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `stty size` of the terminal whose slave side is `slave`.
    fn size_of(slave: OwnedFd) -> String {
        let out = std::process::Command::new("stty").arg("size").stdin(std::process::Stdio::from(slave)).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn a_size_asked_for_before_the_pty_exists_is_given_to_it() {
        let e = Exec::default();
        // The CLI's resize, arriving before the process started: kept.
        e.resize(30, 100).unwrap();
        let pair = nix::pty::openpty(None, None).unwrap();
        e.set_pty(Some(Arc::new(pair.master)));
        assert_eq!(size_of(pair.slave.try_clone().unwrap()), "30 100");
        // Once it exists, a resize reaches it at once.
        e.resize(40, 120).unwrap();
        assert_eq!(size_of(pair.slave), "40 120");
    }
}
