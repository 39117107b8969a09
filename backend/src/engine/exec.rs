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
    /// Its detach sequence as the client gave it ("" for Docker's default).
    pub detach_keys: String,
}

impl ExecRecord {
    pub fn inspect(&self) -> Value {
        let mut v = json!({
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
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        });
        // Docker leaves an exec's user out when none was asked for.
        if self.user.is_empty() {
            if let Some(p) = v["ProcessConfig"].as_object_mut() {
                p.remove("user");
            }
        }
        v
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

/// Docker's detach keys: `ctrl-p,ctrl-q` unless the client names others
/// (`detachKeys` on attach, `DetachKeys` on exec create). Typed on an
/// attached stdin, they end the attachment, not the process.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// `ctrl-p,ctrl-q`, `ctrl-a,x`, … as bytes; Docker's message for a bad one.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("Invalid detach keys ({spec}) provided");
    let mut out = Vec::new();
    for key in spec.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [x @ b'a'..=b'z'] => x - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if k.len() == 1 && k.is_ascii() {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Watches input for the detach sequence: a partial match is held back
/// until it completes (detach) or breaks (the held bytes go on).
#[derive(Debug)]
pub struct DetachWatch {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachWatch {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachWatch { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence was typed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            if self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            out.push(b);
        }
        (out, false)
    }
}

#[cfg(test)]
mod detach_tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match_as_dockers() {
        assert_eq!(parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-_").unwrap(), vec![0, 31]);
        for bad in ["", "ctrl-", "ctrl-ab", "shift-a", "xy"] {
            assert_eq!(parse_detach_keys(bad).unwrap_err(), format!("Invalid detach keys ({bad}) provided"));
        }
        let mut w = DetachWatch::new(vec![16, 17]);
        assert_eq!(w.feed(b"ls\n"), (b"ls\n".to_vec(), false));
        // A lone ctrl-p is held, then passed on when the next key is not ctrl-q.
        assert_eq!(w.feed(&[16]), (vec![], false));
        assert_eq!(w.feed(b"a"), (vec![16, b'a'], false));
        assert_eq!(w.feed(&[16, 16, 17, b'z']), (vec![16], true));
        // Across reads.
        let mut w = DetachWatch::new(vec![1, b'x']);
        assert_eq!(w.feed(b"echo \x01"), (b"echo ".to_vec(), false));
        assert_eq!(w.feed(b"x"), (vec![], true));
    }
}
