//! Healthchecks (`HEALTHCHECK` in an image, `--health-*` on `docker run`):
//! the check a container's config asks for, and how each probe's result
//! moves its health — starting, healthy, unhealthy — as Docker's does.
//! Pure and tested here; the container lifecycle runs the probes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Docker's defaults for what the config leaves at zero.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const START_INTERVAL: Duration = Duration::from_secs(5);
const RETRIES: u32 = 3;
/// Probe results kept in State.Health.Log, and output kept per probe.
pub const LOG_ENTRIES: usize = 5;
pub const OUTPUT_MAX: usize = 4096;

/// A container's check, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What to run in the container.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn dur(v: &Value, default: Duration) -> Duration {
    match v.as_i64() {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    }
}

/// The check of a container's Config.Healthcheck (None: no test, or NONE).
pub fn check_of(hc: &Value) -> Option<Check> {
    let test: Vec<String> = hc["Test"].as_array()?.iter().filter_map(|s| s.as_str().map(String::from)).collect();
    let argv = match test.first().map(String::as_str)? {
        "CMD" => test[1..].to_vec(),
        "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), test.get(1..).map(|t| t.join(" ")).unwrap_or_default()],
        _ => return None, // NONE, or nothing Docker would run
    };
    if argv.is_empty() {
        return None;
    }
    Some(Check {
        argv,
        interval: dur(&hc["Interval"], INTERVAL),
        timeout: dur(&hc["Timeout"], TIMEOUT),
        start_period: dur(&hc["StartPeriod"], Duration::ZERO),
        start_interval: dur(&hc["StartInterval"], START_INTERVAL),
        retries: hc["Retries"].as_i64().filter(|r| *r > 0).map(|r| r as u32).unwrap_or(RETRIES),
    })
}

/// `docker run`'s Healthcheck over the image's, field by field (a request
/// that sets only an interval keeps the image's test).
pub fn merge(request: &Value, image: &Value) -> Value {
    if !request.is_object() {
        return image.clone();
    }
    let mut out = request.clone();
    if out["Test"].as_array().is_none_or(|t| t.is_empty()) {
        out["Test"] = image["Test"].clone();
    }
    for k in ["Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"] {
        if out[k].as_i64().unwrap_or(0) == 0 && image[k].as_i64().unwrap_or(0) != 0 {
            out[k] = image[k].clone();
        }
    }
    out
}

/// One probe's result (State.Health.Log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// State.Health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

impl Default for Health {
    fn default() -> Self {
        Health { status: "starting".into(), failing_streak: 0, log: Vec::new() }
    }
}

impl Health {
    /// Takes a probe's result; returns the new status if it changed.
    /// Failures in the start period do not count until a probe succeeds.
    pub fn record(&mut self, probe: Probe, in_start_period: bool, retries: u32) -> Option<String> {
        let before = self.status.clone();
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !(in_start_period && self.status == "starting") {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(probe);
        if self.log.len() > LOG_ENTRIES {
            self.log.remove(0);
        }
        (self.status != before).then(|| self.status.clone())
    }

    /// As `docker inspect` shows it.
    pub fn inspect(&self) -> Value {
        json!({
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": self.log.iter().map(|p| json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})).collect::<Vec<_>>(),
        })
    }
}

/// A probe's output as kept: at most [`OUTPUT_MAX`] bytes.
pub fn clip_output(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_MAX)]).into_owned();
    if bytes.len() > OUTPUT_MAX {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe { exit_code: code, ..Probe::default() }
    }

    #[test]
    fn checks_come_from_the_config_with_dockers_defaults() {
        let c = check_of(&json!({"Test": ["CMD-SHELL", "wget -qO- http://localhost/ || exit 1"], "Interval": 2_000_000_000i64})).unwrap();
        assert_eq!(c.argv, vec!["/bin/sh", "-c", "wget -qO- http://localhost/ || exit 1"]);
        assert_eq!((c.interval, c.timeout, c.retries), (Duration::from_secs(2), Duration::from_secs(30), 3));
        assert_eq!(check_of(&json!({"Test": ["CMD", "true"]})).unwrap().argv, vec!["true"]);
        assert!(check_of(&json!({"Test": ["NONE"]})).is_none());
        assert!(check_of(&Value::Null).is_none());
        let merged = merge(&json!({"Interval": 1_000_000_000}), &json!({"Test": ["CMD", "true"], "Retries": 5}));
        assert_eq!(merged, json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Retries": 5}));
        assert_eq!(merge(&Value::Null, &json!({"Test": ["NONE"]})), json!({"Test": ["NONE"]}));
    }

    #[test]
    fn health_moves_as_dockers_does() {
        let mut h = Health::default();
        // Failures in the start period do not count.
        assert_eq!(h.record(probe(1), true, 2), None);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        assert_eq!(h.record(probe(0), true, 2).as_deref(), Some("healthy"));
        assert_eq!(h.record(probe(1), false, 2), None);
        assert_eq!(h.record(probe(1), false, 2).as_deref(), Some("unhealthy"));
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(probe(0), false, 2).as_deref(), Some("healthy"));
        for _ in 0..10 {
            h.record(probe(0), false, 2);
        }
        assert_eq!(h.log.len(), LOG_ENTRIES);
        assert_eq!(clip_output(&vec![b'x'; 5000]).len(), OUTPUT_MAX + '…'.len_utf8());
    }
}

/// Running the probes of a container's check while it runs.
mod monitor {
    use std::sync::Arc;
    use std::time::Instant;

    use berth_shared::{Event, Status};
    use tokio::io::AsyncReadExt;

    use super::{clip_output, Check, Probe, OUTPUT_MAX};
    use crate::engine::containers::{Container, Containers};
    use crate::ids::now_rfc3339;
    use crate::runtime::process::launch;

    /// Reads a stream up to the kept size (and drains the rest).
    async fn read_some(r: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
        let Some(mut r) = r else { return Vec::new() };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if out.len() <= OUTPUT_MAX {
                out.extend_from_slice(&buf[..n]);
            }
        }
        out
    }

    impl Containers {
        /// One probe: the check's command run in the container as a `docker
        /// exec` would be, its exit code and output, or a timeout.
        async fn probe(&self, c: &Container, check: &Check) -> Probe {
            let rec = c.record();
            let start = now_rfc3339();
            let failed = |output: String| Probe { start: start.clone(), end: now_rfc3339(), exit_code: -1, output };
            let env = rec.process_env(false);
            let cwd = rec.config["WorkingDir"].as_str().unwrap_or("").to_string();
            let user = rec.config["User"].as_str().unwrap_or("").to_string();
            let spec = match self.exec_spec(&rec, check.argv.clone(), env, cwd, user, false) {
                Ok(s) => s,
                Err(e) => return failed(e.message),
            };
            let dir = self.exec_root().join("exec");
            let path = dir.join(format!("health-{}-{:08x}.json", &rec.id[..12], crate::ids::random_u128() as u32));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, serde_json::to_vec(&spec).unwrap_or_default()))
            {
                return failed(e.to_string());
            }
            let launched = launch("__berth-exec", &path, false, false).await;
            let _ = std::fs::remove_file(&path);
            let mut l = match launched {
                Ok(l) => l,
                Err(e) => return failed(format!("OCI runtime exec failed: {e}")),
            };
            let (stdout, stderr) = (l.stdout.take(), l.stderr.take());
            let run = async {
                let (mut a, b) = tokio::join!(read_some(stdout), read_some(stderr));
                a.extend(b);
                let code = l.child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                (a, code)
            };
            match tokio::time::timeout(check.timeout, run).await {
                Ok((out, code)) => Probe { start, end: now_rfc3339(), exit_code: code, output: clip_output(&out) },
                Err(_) => {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(l.pid), nix::sys::signal::Signal::SIGKILL);
                    let _ = l.child.kill().await;
                    failed(format!("Health check exceeded timeout ({:?})", check.timeout))
                }
            }
        }

        /// Probes the container on the check's schedule while this run lasts.
        pub(crate) fn monitor_health(self: &Arc<Self>, c: &Arc<Container>, check: Check) {
            let (me, c) = (self.clone(), c.clone());
            let mut exits = c.exits();
            let run = *exits.borrow_and_update();
            let started = Instant::now();
            tokio::spawn(async move {
                loop {
                    let in_start = started.elapsed() < check.start_period;
                    let wait = if in_start { check.start_interval.min(check.interval) } else { check.interval };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = exits.changed() => return,
                    }
                    let rec = c.record();
                    if *exits.borrow() != run || rec.state.status != Status::Running {
                        return;
                    }
                    if rec.state.paused {
                        continue;
                    }
                    let probe = me.probe(&c, &check).await;
                    if *exits.borrow() != run {
                        return; // it ended meanwhile: the result is of no run
                    }
                    let in_start = started.elapsed() < check.start_period;
                    let mut changed = None;
                    let rec = c.update(|r| {
                        if let Some(h) = r.state.health.as_mut() {
                            changed = h.record(probe, in_start, check.retries);
                        }
                    });
                    let _ = me.save(&rec);
                    if let Some(status) = changed {
                        tracing::info!(id = %&rec.id[..12], status, "health status");
                        me.bus.emit(Event::ContainerHealth { id: rec.id.clone(), status });
                    }
                }
            });
        }
    }
}
