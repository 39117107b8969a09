//! Starting berth's helper (`__berth-init` / `__berth-exec`) with the
//! container's stdio — pipes, or a PTY — and reading its report.

use std::fs;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

/// The program started as berth's helper: this berthd, unless the program
/// running the engine is not berthd ([`set_helper`]).
static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// Names the berthd binary that serves as the helper, for a program that
/// runs the engine in-process and is not berthd itself (the engine tier's
/// tests). Only the first call counts.
pub fn set_helper(berthd: PathBuf) {
    let _ = HELPER.set(berthd);
}

/// The helper's program (`berthd __berth-init …`, `__berth-exec`,
/// `__berth-archive`).
pub fn helper() -> std::io::Result<PathBuf> {
    match HELPER.get() {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe(),
    }
}

/// A started helper: the process berthd waits on, the pid of the process
/// inside (PID 1 of the container, or the exec'd process), and its stdio.
#[derive(Debug)]
pub struct Launched {
    pub child: tokio::process::Child,
    pub pid: i32,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    /// With a TTY: the PTY's master side (all three streams).
    pub pty: Option<Arc<OwnedFd>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The helper reported why the process could not start.
    #[error("{0}")]
    Start(String),
    #[error("starting the helper: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts `berthd <mode> <spec>`. Returns once the process inside has
/// exec'd (or failed to).
pub async fn launch(mode: &str, spec: &Path, tty: bool, open_stdin: bool) -> Result<Launched, LaunchError> {
    let mut cmd = std::process::Command::new(helper()?);
    cmd.arg(mode).arg(spec).env_clear();
    // Close-on-exec, both ends: only the dup'd descriptor 3 reaches the helper.
    let (sync_r, sync_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    crate::sys::pass_fd_as_3(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&sync_w));
    let mut pty_master = None;
    if tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        let slave = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone()?));
        cmd.stdout(Stdio::from(slave.try_clone()?));
        cmd.stderr(Stdio::from(slave));
        pty_master = Some(Arc::new(pty.master));
    } else {
        cmd.stdin(if open_stdin { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
    }
    let mut child = tokio::process::Command::from(cmd).spawn()?;
    // Our copies of the slave and the sync pipe's write end go now: EOF on
    // the pipe then means the process exec'd (or died), and the PTY master
    // reads EOF/EIO once the process side is all closed.
    drop(sync_w);
    let (pid, error) = tokio::task::spawn_blocking(move || {
        let mut pid = 0;
        let mut error = None;
        for line in std::io::BufReader::new(fs::File::from(sync_r)).lines() {
            let Ok(line) = line else { break };
            if let Some(p) = line.strip_prefix("pid ") {
                pid = p.trim().parse().unwrap_or(0);
            } else if let Some(e) = line.strip_prefix("error ") {
                error = Some(e.to_string());
            }
        }
        (pid, error)
    })
    .await
    .map_err(std::io::Error::other)?;
    if let Some(err) = error {
        let _ = child.wait().await;
        return Err(LaunchError::Start(err));
    }
    Ok(Launched { pid, stdin: child.stdin.take(), stdout: child.stdout.take(), stderr: child.stderr.take(), child, pty: pty_master })
}
