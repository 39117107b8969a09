//! The lab's shells on node1. A shell outlives the WebSocket that started
//! it, as tmux or screen keep a session: a page reload (or a dropped
//! connection) reattaches to the same shell — its variables, cwd and
//! history — and redraws what it printed last. Each shell runs in a PTY
//! driven without blocking the runtime, in its own UTS namespace named
//! node1, and is recorded with the events it causes as an asciinema cast.
//!
//! Socket protocol (`GET /api/terminal?id=ID&cols=C&rows=R`):
//! - first message from the page: `{"ticket": "…"}` (one use, see `auth`);
//! - then from berthd: `{"attached": {"id": ID, "new": bool}}`, a
//!   `{"scrollback": "…"}` text frame to draw after a reset (what the shell
//!   printed last; again whenever this viewer fell behind), then binary
//!   frames of output;
//! - from the page: binary frames of keystrokes, `{"resize": [cols, rows]}`;
//! - close codes: 4401 no valid ticket, 4000 the shell exited, 4429 too many
//!   shells, 1001 berthd is stopping.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use berth_shared::record::{cast_header, cast_line};
use berth_shared::Frame;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::AppState;
use crate::lab::auth::LabAuth;
use crate::pty::Pty;

/// The most keystrokes held for a shell that is not reading (a paste while
/// a command runs): past it the socket is not read until the shell catches
/// up, so the browser waits and nothing is lost or blocks the daemon.
const MAX_PENDING_INPUT: usize = 1 << 20;
/// What a reattaching page gets redrawn.
const SCROLLBACK: usize = 256 * 1024;
/// How long a shell nobody is attached to is kept.
const DETACHED_TTL: Duration = Duration::from_secs(30 * 60);
/// Shells one berthd keeps at most (a tab each).
const MAX_SHELLS: usize = 16;

/// What a page sends a shell.
#[derive(Debug)]
enum Input {
    Keys(Vec<u8>),
    Resize(u16, u16),
}

/// The last output, kept whole-character (for a reattaching page).
#[derive(Debug, Default)]
struct Scrollback {
    bytes: VecDeque<u8>,
}

impl Scrollback {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let over = self.bytes.len().saturating_sub(SCROLLBACK);
        if over > 0 {
            self.bytes.drain(..over);
            // Start at a character boundary.
            while self.bytes.front().is_some_and(|b| (0x80..0xc0).contains(b)) {
                self.bytes.pop_front();
            }
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

/// One shell on node1 and whoever is attached to it.
#[derive(Debug)]
pub struct Shell {
    pub id: String,
    /// The session it belongs to: nobody else attaches to it.
    pub owner: String,
    pub pid: i32,
    pub recording: String,
    input: mpsc::Sender<Input>,
    output: broadcast::Sender<Arc<[u8]>>,
    scrollback: Mutex<Scrollback>,
    attached: AtomicUsize,
    detached_since: Mutex<Option<Instant>>,
    stop: watch::Sender<bool>,
    /// Set when the shell is ended because berthd is stopping: pages then
    /// reconnect rather than report an exited shell.
    daemon_stopping: std::sync::atomic::AtomicBool,
    done: watch::Receiver<bool>,
}

impl Shell {
    /// The output so far and a subscription for what follows, taken together
    /// (the shell's task appends and sends under the same lock).
    fn attach(&self) -> (String, broadcast::Receiver<Arc<[u8]>>) {
        let sb = self.scrollback.lock().unwrap_or_else(|e| e.into_inner());
        self.attached.fetch_add(1, Ordering::SeqCst);
        *self.detached_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        (sb.text(), self.output.subscribe())
    }

    fn detach(&self) {
        if self.attached.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.detached_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    fn ended(&self) -> bool {
        *self.done.borrow()
    }
}

/// Every shell of this berthd.
#[derive(Debug, Default)]
pub struct Terminals {
    shells: Mutex<HashMap<String, Arc<Shell>>>,
}

impl Terminals {
    pub fn new() -> Arc<Self> {
        let t = Arc::new(Terminals::default());
        // Shells nobody came back to are ended after a while.
        let weak = Arc::downgrade(&t);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(t) = weak.upgrade() else { return };
                for s in t.list() {
                    let idle = s.detached_since.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|d| d.elapsed() > DETACHED_TTL);
                    if idle {
                        tracing::info!(pid = s.pid, id = %s.id, "ending a shell nobody came back to");
                        let _ = s.stop.send(true);
                    }
                }
            }
        });
        t
    }

    pub fn list(&self) -> Vec<Arc<Shell>> {
        self.shells.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    fn key(owner: &str, id: &str) -> String {
        format!("{owner}/{id}")
    }

    /// Ends every shell (berthd is stopping): none is left behind.
    pub async fn shutdown(&self) {
        let shells = self.list();
        for s in &shells {
            s.daemon_stopping.store(true, Ordering::SeqCst);
            let _ = s.stop.send(true);
        }
        for s in shells {
            let mut done = s.done.clone();
            let _ = tokio::time::timeout(Duration::from_secs(3), until_true(&mut done)).await;
        }
    }

    /// The owner's shell `id`, or a new one.
    fn get_or_start(&self, st: &AppState, owner: &str, id: &str, size: (u16, u16)) -> Result<(Arc<Shell>, bool), String> {
        let key = Self::key(owner, id);
        let mut shells = self.shells.lock().unwrap_or_else(|e| e.into_inner());
        shells.retain(|_, s| !s.ended());
        if let Some(s) = shells.get(&key) {
            return Ok((s.clone(), false));
        }
        if shells.len() >= MAX_SHELLS {
            return Err(format!("node1 already has {MAX_SHELLS} shells open: close a tab"));
        }
        let shell = start_shell(st, owner, id, size).map_err(|e| format!("cannot start a shell: {e}"))?;
        shells.insert(key, shell.clone());
        Ok((shell, true))
    }
}

/// The shell a session runs: bash if there is one, with DOCKER_HOST at
/// this berthd, in the lab's home.
fn shell_command(st: &AppState, slave: &OwnedFd) -> std::io::Result<std::process::Command> {
    let shell = ["/bin/bash", "/bin/sh"].into_iter().find(|s| Path::new(s).exists()).unwrap_or("/bin/sh");
    let mut cmd = std::process::Command::new(shell);
    if shell.ends_with("bash") {
        // The usual startup files, then the lab's prompt: the learner is on node1.
        let rc = st.config.data_root.join("lab-bashrc");
        let _ = std::fs::write(
            &rc,
            format!(
                "[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc\n[ -f ~/.bashrc ] && . ~/.bashrc\n\
             PS1='\\[\\e[1;32m\\]\\u@\\h\\[\\e[0m\\]:\\[\\e[1;34m\\]\\w\\[\\e[0m\\]\\$ '\n\
             # The lab's commands say `sudo`; the learner is root already.\n\
             command -v sudo >/dev/null 2>&1 || sudo() {{ \"$@\"; }}\n{}",
                super::marks::BASHRC
            ),
        );
        cmd.arg("--rcfile").arg(rc).arg("-i");
    }
    let home = match &st.config.lab_home {
        Some(dir) if dir.is_dir() => dir.display().to_string(),
        _ => std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
    };
    let docker_host = if st.config.host.contains("://") { st.config.host.clone() } else { format!("unix://{}", st.config.host) };
    cmd.env_clear()
        .env("HOME", &home)
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()))
        .env("TERM", "xterm-256color")
        .env("LANG", "C.UTF-8")
        .env("DOCKER_HOST", docker_host)
        .current_dir(&home)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    // Its own session on the PTY, and its own host name: node1, as the
    // prompt and the lab say (the machine's name is not changed).
    crate::sys::lab_shell_pre_exec(&mut cmd, "node1");
    Ok(cmd)
}

/// A recording being written.
struct Recorder {
    file: std::fs::File,
    started: Instant,
}

impl Recorder {
    fn write(&mut self, frame: &Frame) {
        let t = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.file, "{}", cast_line((t * 1000.0).round() / 1000.0, frame));
    }
}

fn start_shell(st: &AppState, owner: &str, id: &str, (cols, rows): (u16, u16)) -> std::io::Result<Arc<Shell>> {
    let pty = nix::pty::openpty(Some(&nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }), None)
        .map_err(std::io::Error::from)?;
    let child = shell_command(st, &pty.slave)?.spawn()?;
    drop(pty.slave);
    let master = Pty::new(pty.master)?;
    let pid = child.id() as i32;

    let dir = super::stream::recordings_dir(st);
    std::fs::create_dir_all(&dir)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("session-{}-{pid}.cast", now.as_secs());
    let (seq, state, events) = st.bus.snapshot_and_subscribe();
    let mut rec = Recorder { file: std::fs::File::create(dir.join(&name))?, started: Instant::now() };
    writeln!(rec.file, "{}", cast_header(cols, rows, now.as_secs(), seq, &state))?;
    tracing::info!(pid, recording = %name, "terminal session started");

    let (input, rx_input) = mpsc::channel(256);
    let (output, _) = broadcast::channel(1024);
    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);
    let shell = Arc::new(Shell {
        id: id.to_string(),
        owner: owner.to_string(),
        pid,
        recording: name,
        input,
        output,
        scrollback: Mutex::new(Scrollback::default()),
        attached: AtomicUsize::new(0),
        detached_since: Mutex::new(Some(Instant::now())),
        stop,
        daemon_stopping: false.into(),
        done,
    });
    tokio::spawn(run_shell(shell.clone(), master, child, rx_input, rec, (st.bus.clone(), events), stop_rx, done_tx));
    Ok(shell)
}

/// Waits until the flag is set (or its sender is gone).
async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The shell's own task: PTY output to the scrollback, the recording and
/// every attached page; keystrokes and resizes to the PTY.
#[allow(clippy::too_many_arguments)]
async fn run_shell(
    shell: Arc<Shell>,
    master: Pty,
    mut child: std::process::Child,
    mut rx_input: mpsc::Receiver<Input>,
    mut rec: Recorder,
    (bus, mut events): (Arc<crate::events::EventBus>, broadcast::Receiver<berth_shared::Envelope>),
    mut stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    // Output not yet sent: partial UTF-8 sequences wait for the next chunk.
    let mut pending = Vec::new();
    let mut keys: VecDeque<u8> = VecDeque::new();
    // The command marks bash prints at each prompt (see `marks`).
    let mut marks = super::marks::Marks::default();
    loop {
        tokio::select! {
            out = master.read(&mut buf) => match out {
                Ok(0) | Err(_) => break, // the shell exited
                Ok(n) => {
                    let (out, commands) = marks.scan(&buf[..n]);
                    for c in commands {
                        bus.emit(berth_shared::Event::ShellCommand { shell: shell.id.clone(), command: c.command, exit_code: c.exit_code });
                    }
                    pending.extend_from_slice(&out);
                    let valid = match std::str::from_utf8(&pending) {
                        Ok(_) => pending.len(),
                        Err(e) if e.error_len().is_none() => e.valid_up_to(),
                        Err(_) => pending.len(),
                    };
                    let chunk: Vec<u8> = pending.drain(..valid).collect();
                    rec.write(&Frame::Output(String::from_utf8_lossy(&chunk).into_owned()));
                    let mut sb = shell.scrollback.lock().unwrap_or_else(|e| e.into_inner());
                    sb.push(&chunk);
                    let _ = shell.output.send(chunk.into());
                }
            },
            wrote = master.write_some(keys.make_contiguous()), if !keys.is_empty() => match wrote {
                Ok(n) => { keys.drain(..n); }
                Err(_) => break,
            },
            msg = rx_input.recv(), if keys.len() < MAX_PENDING_INPUT => match msg {
                Some(Input::Keys(k)) => keys.extend(k),
                Some(Input::Resize(c, r)) => {
                    let _ = crate::sys::set_winsize(master.fd(), r, c);
                    rec.write(&Frame::Resize(c, r));
                }
                None => {}
            },
            ev = events.recv() => match ev {
                Ok(env) => rec.write(&Frame::Event(Box::new(env))),
                Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = until_true(&mut stop) => break,
        }
    }
    // End the shell's whole session: the shell and what it started.
    let pid = shell.pid;
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP);
    let _ = tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    })
    .await;
    tracing::info!(pid, recording = %shell.recording, "terminal session ended");
    let _ = done.send(true);
}

#[derive(Debug, Deserialize)]
pub struct Params {
    cols: Option<u16>,
    rows: Option<u16>,
    /// The page's name for its shell (kept across reloads of one tab).
    id: Option<String>,
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }))).await;
}

/// `GET /api/terminal` (WebSocket): see the module's doc for the protocol.
pub async fn terminal(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    State(auth): State<Arc<LabAuth>>,
    State(terms): State<Arc<Terminals>>,
    Query(q): Query<Params>,
) -> Response {
    let size = (q.cols.unwrap_or(100).clamp(20, 500), q.rows.unwrap_or(30).clamp(5, 200));
    let id = q.id.filter(|i| valid_id(i)).unwrap_or_else(|| super::auth::random_hex(8));
    ws.on_upgrade(move |mut socket| async move {
        let Some(owner) = ticket_presented(&mut socket, &auth).await else {
            tracing::warn!("terminal socket closed: no valid ticket");
            return close(&mut socket, 4401, "a terminal needs a ticket from POST /api/terminal/ticket").await;
        };
        let (shell, new) = match terms.get_or_start(&st, &owner, &id, size) {
            Ok(s) => s,
            Err(e) => return close(&mut socket, 4429, &e).await,
        };
        attached(socket, shell, new, size).await;
    })
}

/// Waits (briefly) for the first message; a valid ticket names its session.
async fn ticket_presented(socket: &mut WebSocket, auth: &LabAuth) -> Option<String> {
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else { return None };
    if t.len() > 1024 {
        return None;
    }
    #[derive(Deserialize)]
    struct Ticket {
        ticket: String,
    }
    serde_json::from_str::<Ticket>(&t).ok().and_then(|m| auth.take_ticket(&m.ticket))
}

/// One page attached to a shell, until either goes away.
async fn attached(socket: WebSocket, shell: Arc<Shell>, new: bool, (cols, rows): (u16, u16)) {
    let (scrollback, mut output) = shell.attach();
    let (mut tx, mut rx) = socket.split();
    let hello = json!({ "attached": { "id": shell.id, "new": new } }).to_string();
    let _ = shell.input.send(Input::Resize(cols, rows)).await;
    let mut done = shell.done.clone();
    // Output to the page, on its own task: a slow page only slows itself.
    let sender = {
        let shell = shell.clone();
        tokio::spawn(async move {
            if tx.send(Message::Text(hello.into())).await.is_err() {
                return;
            }
            if !scrollback.is_empty() && tx.send(Message::Text(json!({ "scrollback": scrollback }).to_string().into())).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    out = output.recv() => match out {
                        Ok(bytes) => {
                            if tx.send(Message::Binary(bytes.to_vec().into())).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Fell behind: redraw from the scrollback.
                            let (text, fresh) = shell.attach();
                            shell.detach();
                            output = fresh;
                            if tx.send(Message::Text(json!({ "scrollback": text }).to_string().into())).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = until_true(&mut done) => {
                        let close = if shell.daemon_stopping.load(Ordering::SeqCst) {
                            CloseFrame { code: 1001, reason: "berthd is stopping".into() }
                        } else {
                            CloseFrame { code: 4000, reason: "the shell exited".into() }
                        };
                        let _ = tx.send(Message::Close(Some(close))).await;
                        return;
                    }
                }
            }
        })
    };
    while let Some(Ok(msg)) = rx.next().await {
        let input = match msg {
            Message::Binary(b) => Input::Keys(b.to_vec()),
            Message::Text(t) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { continue };
                if let (Some(c), Some(r)) = (v["resize"][0].as_u64(), v["resize"][1].as_u64()) {
                    Input::Resize(c.clamp(20, 500) as u16, r.clamp(5, 200) as u16)
                } else if let Some(data) = v["input"].as_str() {
                    Input::Keys(data.as_bytes().to_vec())
                } else {
                    continue;
                }
            }
            Message::Close(_) => break,
            _ => continue,
        };
        // Waits while the shell's input is full: the page waits too.
        if shell.input.send(input).await.is_err() || shell.ended() {
            break;
        }
    }
    shell.detach();
    // Let the sender say goodbye if the shell exited; else stop it.
    if !shell.ended() {
        sender.abort();
    }
    let _ = sender.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrollback_keeps_the_last_output_from_a_character_boundary() {
        let mut sb = Scrollback::default();
        sb.push(b"hello ");
        assert_eq!(sb.text(), "hello ");
        let big = "é".repeat(SCROLLBACK); // 2 bytes each
        sb.push(big.as_bytes());
        let t = sb.text();
        assert!(t.len() <= SCROLLBACK && t.len() >= SCROLLBACK - 1, "{}", t.len());
        assert!(t.chars().all(|c| c == 'é'), "no broken character at the start");
    }

    #[test]
    fn shell_ids_are_short_and_plain() {
        assert!(valid_id("tab-1a2b_C"));
        assert!(!valid_id(""));
        assert!(!valid_id("../x"));
        assert!(!valid_id(&"a".repeat(65)));
    }
}
