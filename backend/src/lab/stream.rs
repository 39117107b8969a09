//! The page's live feeds over WebSocket: the event stream (a snapshot, then
//! every event — several in one frame, as a JSON array, when they come in a
//! burst; `?since=SEQ` resumes without gaps or repeats), and terminal
//! sessions — a real shell on node1 in a PTY, recorded with the events it
//! causes as an asciinema cast under `<data-root>/recordings`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_shared::record::{cast_header, cast_line};
use berth_shared::{Frame, StreamMsg};
use serde::Deserialize;
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;

use crate::api::AppState;
use crate::lab::auth::LabAuth;

#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<u64>,
}

/// `GET /api/events` (WebSocket).
pub async fn events(ws: WebSocketUpgrade, State(st): State<AppState>, Query(q): Query<Since>) -> Response {
    ws.on_upgrade(move |socket| feed(st, socket, q.since))
}

fn text(m: &StreamMsg) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

/// What to send first: the events after `since` if they are all still kept,
/// else a snapshot. Returns the messages and the last seq they cover.
fn start(st: &AppState, since: Option<u64>) -> (Vec<StreamMsg>, u64, broadcast::Receiver<crate::events::Published>) {
    if let Some(since) = since {
        let (history, rx) = st.bus.history_and_subscribe_json();
        let last = history.last().map(|e| e.seq).unwrap_or(0);
        let first = history.first().map(|e| e.seq).unwrap_or(last + 1);
        if since >= first.saturating_sub(1) && since <= last {
            let msgs: Vec<StreamMsg> = history.into_iter().filter(|e| e.seq > since).map(StreamMsg::Event).collect();
            return (msgs, last, rx);
        }
    }
    let (seq, state, rx) = st.bus.snapshot_and_subscribe_json();
    (vec![StreamMsg::Snapshot { seq, state }], seq, rx)
}

async fn feed(st: AppState, mut socket: WebSocket, since: Option<u64>) {
    let (msgs, mut last, mut rx) = start(&st, since);
    for m in &msgs {
        if socket.send(text(m)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(first) => {
                    // Whatever else is already waiting goes in the same frame
                    // (a JSON array), serialized once by the bus for every viewer.
                    let mut batch = vec![first];
                    while batch.len() < 512 {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    let parts: Vec<&str> = batch.iter().filter(|m| m.0 > last).map(|m| m.1.as_str()).collect();
                    last = last.max(batch.iter().map(|m| m.0).max().unwrap_or(last));
                    if parts.is_empty() {
                        continue;
                    }
                    let frame = if parts.len() == 1 { parts[0].to_string() } else { format!("[{}]", parts.join(",")) };
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind: start over from a snapshot.
                    let (seq, state, fresh) = st.bus.snapshot_and_subscribe_json();
                    rx = fresh;
                    last = seq;
                    if socket.send(text(&StreamMsg::Snapshot { seq, state })).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

pub fn recordings_dir(st: &AppState) -> PathBuf {
    st.config.data_root.join("recordings")
}

/// `GET /api/recordings`: the recorded sessions, newest first.
pub async fn recordings(State(st): State<AppState>) -> impl IntoResponse {
    let mut list: Vec<(String, u64, u64)> = std::fs::read_dir(recordings_dir(&st))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    Some((e.file_name().to_string_lossy().into_owned(), m.len(), modified))
                })
                .filter(|(n, _, _)| n.ends_with(".cast"))
                .collect()
        })
        .unwrap_or_default();
    list.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    Json(list.into_iter().map(|(name, size, modified)| json!({"name": name, "size": size, "modified": modified, "url": format!("/api/recordings/{name}")})).collect::<Vec<_>>())
}

/// `GET /api/recordings/{name}`: one recording, to download or replay.
pub async fn recording(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let valid = name.ends_with(".cast") && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !name.starts_with('.');
    if !valid {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": format!("invalid recording name {name:?}")}))).into_response();
    }
    match tokio::fs::read(recordings_dir(&st).join(&name)).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/x-asciicast".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
            bytes,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, Json(json!({"message": format!("no recording {name}")}))).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Size {
    cols: Option<u16>,
    rows: Option<u16>,
}

/// `GET /api/terminal` (WebSocket): the first message must be a text frame
/// `{"ticket": "…"}` holding a ticket from `POST /api/terminal/ticket`
/// (one use, 30 s); then binary frames carry terminal bytes both ways and a
/// text frame `{"resize": [cols, rows]}` resizes.
pub async fn terminal(ws: WebSocketUpgrade, State(st): State<AppState>, State(auth): State<Arc<LabAuth>>, Query(q): Query<Size>) -> Response {
    let size = (q.cols.unwrap_or(100).clamp(20, 500), q.rows.unwrap_or(30).clamp(5, 200));
    ws.on_upgrade(move |mut socket| async move {
        if !ticket_presented(&mut socket, &auth).await {
            tracing::warn!("terminal socket closed: no valid ticket");
            let close = CloseFrame { code: 4401, reason: "a terminal needs a ticket from POST /api/terminal/ticket".into() };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
        if let Err(e) = session(st, socket, size).await {
            tracing::warn!(error = %e, "terminal session failed");
        }
    })
}

/// Waits (briefly) for the first message and checks it is a valid ticket.
async fn ticket_presented(socket: &mut WebSocket, auth: &LabAuth) -> bool {
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), socket.recv()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else { return false };
    if t.len() > 1024 {
        return false;
    }
    #[derive(Deserialize)]
    struct Ticket {
        ticket: String,
    }
    serde_json::from_str::<Ticket>(&t).is_ok_and(|m| auth.take_ticket(&m.ticket))
}

/// The shell a session runs: bash if there is one, with DOCKER_HOST at
/// this berthd.
fn shell_command(st: &AppState, slave: &OwnedFd) -> std::io::Result<std::process::Command> {
    let shell = ["/bin/bash", "/bin/sh"].into_iter().find(|s| Path::new(s).exists()).unwrap_or("/bin/sh");
    let mut cmd = std::process::Command::new(shell);
    if shell.ends_with("bash") {
        // The usual startup files, then the lab's prompt: the learner is on node1.
        let rc = st.config.data_root.join("lab-bashrc");
        let _ = std::fs::write(
            &rc,
            "[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc\n[ -f ~/.bashrc ] && . ~/.bashrc\n\
             PS1='\\[\\e[1;32m\\]\\u@node1\\[\\e[0m\\]:\\[\\e[1;34m\\]\\w\\[\\e[0m\\]\\$ '\n",
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
    crate::sys::new_session_on_stdin_tty(&mut cmd);
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

/// The most keystrokes held for a shell that is not reading (a paste while
/// a command runs): past it the socket is not read until the shell catches
/// up, so the browser waits and nothing is lost or blocks the daemon.
const MAX_PENDING_INPUT: usize = 1 << 20;

/// The PTY's master side, non-blocking, driven by the runtime.
struct Pty {
    fd: AsyncFd<std::fs::File>,
}

impl Pty {
    fn new(master: OwnedFd) -> std::io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).map_err(std::io::Error::from)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
        Ok(Pty { fd: AsyncFd::new(std::fs::File::from(master))? })
    }

    /// Reads what the shell wrote; `Ok(0)` when it is gone (EIO on Linux).
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|f| (&*f.get_ref()).read(buf)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes as much of `data` as the PTY takes now.
    async fn write_some(&self, data: &[u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|f| (&*f.get_ref()).write(data)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

async fn session(st: AppState, mut socket: WebSocket, (cols, rows): (u16, u16)) -> std::io::Result<()> {
    let pty = nix::pty::openpty(Some(&nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }), None).map_err(std::io::Error::from)?;
    let mut child = shell_command(&st, &pty.slave)?.spawn()?;
    drop(pty.slave);
    let master = Pty::new(pty.master)?;
    let pid = child.id() as i32;

    let dir = recordings_dir(&st);
    std::fs::create_dir_all(&dir)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("session-{}-{pid}.cast", now.as_secs());
    let (seq, state, mut events) = st.bus.snapshot_and_subscribe();
    let mut rec = Recorder { file: std::fs::File::create(dir.join(&name))?, started: Instant::now() };
    writeln!(rec.file, "{}", cast_header(cols, rows, now.as_secs(), seq, &state))?;
    tracing::info!(pid, recording = %name, "terminal session started");

    let mut buf = vec![0u8; 16 * 1024];
    // Output not yet sent: partial UTF-8 sequences wait for the next chunk.
    let mut pending = Vec::new();
    // Keystrokes the shell has not taken yet.
    let mut input: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            out = master.read(&mut buf) => match out {
                Ok(0) | Err(_) => break, // the shell exited
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    let valid = match std::str::from_utf8(&pending) {
                        Ok(_) => pending.len(),
                        Err(e) if e.error_len().is_none() => e.valid_up_to(),
                        Err(_) => pending.len(),
                    };
                    let chunk: Vec<u8> = pending.drain(..valid).collect();
                    rec.write(&Frame::Output(String::from_utf8_lossy(&chunk).into_owned()));
                    if socket.send(Message::Binary(chunk.into())).await.is_err() {
                        break;
                    }
                }
            },
            wrote = master.write_some(input.make_contiguous()), if !input.is_empty() => match wrote {
                Ok(n) => { input.drain(..n); }
                Err(_) => break,
            },
            ev = events.recv() => match ev {
                Ok(env) => rec.write(&Frame::Event(Box::new(env))),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {}
            },
            msg = socket.recv(), if input.len() < MAX_PENDING_INPUT => match msg {
                Some(Ok(Message::Binary(b))) => input.extend(b.iter()),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                        if let (Some(c), Some(r)) = (v["resize"][0].as_u64(), v["resize"][1].as_u64()) {
                            let (c, r) = (c.clamp(20, 500) as u16, r.clamp(5, 200) as u16);
                            let _ = crate::sys::set_winsize(master.fd.get_ref().as_fd(), r, c);
                            rec.write(&Frame::Resize(c, r));
                        } else if let Some(data) = v["input"].as_str() {
                            input.extend(data.as_bytes());
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            },
        }
    }
    // The page went away (or the shell ended): end the shell's session.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP);
    let waited = tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    });
    let _ = waited.await;
    let _ = socket.send(Message::Close(None)).await;
    tracing::info!(pid, recording = %name, "terminal session ended");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::state;
    use berth_shared::Event;

    fn seqs(msgs: &[StreamMsg]) -> Vec<String> {
        msgs.iter()
            .map(|m| match m {
                StreamMsg::Snapshot { seq, .. } => format!("snapshot@{seq}"),
                StreamMsg::Event(e) => e.seq.to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_new_viewer_gets_a_snapshot_and_a_returning_one_the_events_it_missed() {
        let st = state();
        for _ in 0..5 {
            st.bus.emit(Event::DaemonStopping);
        }
        let (msgs, last, _) = start(&st, None);
        assert_eq!((seqs(&msgs), last), (vec!["snapshot@5".to_string()], 5));
        let (msgs, last, _) = start(&st, Some(3));
        assert_eq!((seqs(&msgs), last), (vec!["4".to_string(), "5".to_string()], 5));
        let (msgs, _, _) = start(&st, Some(5));
        assert!(msgs.is_empty(), "up to date: nothing to resend");
        // From the future (another daemon's numbering): start over.
        let (msgs, _, _) = start(&st, Some(99));
        assert_eq!(seqs(&msgs), vec!["snapshot@5".to_string()]);
    }
}
