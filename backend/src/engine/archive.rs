//! `docker cp`: a container's files read and written by the archive helper
//! (`runtime::archive`) from inside the container. A stopped container's
//! overlay is mounted by the helper alone, so the container stays stopped
//! (its lifecycle lock held) until the copy is over; a running one is not
//! held up.

use std::process::Stdio;
use std::sync::Arc;

use berth_shared::Status;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::containers::{internal, Container, Containers};
use crate::error::{ApiError, ErrorKind};
use crate::runtime::archive::{ArchiveSpec, Op, Target};

/// What the helper answered first: the path's stat (Null for a write).
pub type Answer = Result<Value, ApiError>;

impl Containers {
    /// Runs one archive operation. `input` feeds a write's tar; the
    /// returned channel carries a read's tar after the answer.
    pub async fn archive(
        self: &Arc<Self>,
        c: &Arc<Container>,
        op: Op,
        input: Option<mpsc::Receiver<Vec<u8>>>,
    ) -> Result<(Value, mpsc::Receiver<std::io::Result<Vec<u8>>>), ApiError> {
        let (answer_tx, answer_rx) = oneshot::channel::<Answer>();
        let (data_tx, data_rx) = mpsc::channel(8);
        let me = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            // A stopped container is held stopped for the copy.
            let mut held = None;
            if c.record().state.status != Status::Running {
                held = Some(c.lifecycle.lock().await);
            }
            let rec = c.record();
            let started = async {
                if *c.removed.borrow() {
                    return Err(ApiError::not_found(berth_shared::container::refusal::no_such_container(&rec.id)));
                }
                let target = match (held.is_none(), &op) {
                    (true, Op::Export) => Target::Merged { merged: rec.layer.merged.clone().into() },
                    (true, _) => Target::Running { pid: rec.state.pid },
                    (false, _) => Target::Stopped { options: rec.layer.mount_options(), merged: rec.layer.merged.clone().into() },
                };
                let dir = me.exec_root().join("archive");
                let spec_path = dir.join(format!("{:032x}.json", crate::ids::random_u128()));
                let spec = serde_json::to_vec(&ArchiveSpec { target, op }).unwrap_or_default();
                std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(&spec_path, spec))
                    .map_err(|e| internal(format!("writing the archive spec: {e}")))?;
                let child = crate::runtime::process::helper().and_then(|exe| {
                    tokio::process::Command::new(exe)
                        .arg("__berth-archive")
                        .arg(&spec_path)
                        .env_clear()
                        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .kill_on_drop(true)
                        .spawn()
                });
                let mut child = match child {
                    Ok(ch) => ch,
                    Err(e) => {
                        let _ = std::fs::remove_file(&spec_path);
                        return Err(internal(format!("starting the archive helper: {e}")));
                    }
                };
                if let (Some(mut rx), Some(mut stdin)) = (input, child.stdin.take()) {
                    tokio::spawn(async move {
                        while let Some(chunk) = rx.recv().await {
                            if stdin.write_all(&chunk).await.is_err() {
                                break; // the helper refused the path and went
                            }
                        }
                    });
                }
                let stdout = child.stdout.take().ok_or_else(|| internal("the archive helper has no stdout"))?;
                let mut out = BufReader::new(stdout);
                let mut first = String::new();
                let _ = out.read_line(&mut first).await;
                let _ = std::fs::remove_file(&spec_path);
                let head: Value = serde_json::from_str(first.trim()).unwrap_or(Value::Null);
                let status = head["status"].as_u64().unwrap_or(0);
                if status != 200 {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err).await;
                    }
                    let _ = child.wait().await;
                    let message =
                        head["message"].as_str().map(String::from).unwrap_or_else(|| format!("the archive helper failed: {}", err.trim()));
                    let kind = match status {
                        404 => ErrorKind::NotFound,
                        400 => ErrorKind::BadRequest,
                        _ => ErrorKind::Internal,
                    };
                    return Err(ApiError::new(kind, message));
                }
                Ok((head["stat"].clone(), out, child))
            }
            .await;
            let (stat, mut out, mut child) = match started {
                Ok(s) => s,
                Err(e) => {
                    let _ = answer_tx.send(Err(e));
                    return;
                }
            };
            let _ = answer_tx.send(Ok(stat));
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if data_tx.send(Ok(buf[..n].to_vec())).await.is_err() {
                            break; // the client went away: the helper is killed on drop
                        }
                    }
                    Err(e) => {
                        let _ = data_tx.send(Err(e)).await;
                        break;
                    }
                }
            }
            let _ = child.wait().await;
            drop(held);
        });
        let stat = answer_rx.await.map_err(|_| internal("the archive helper ended without an answer"))??;
        Ok((stat, data_rx))
    }
}
