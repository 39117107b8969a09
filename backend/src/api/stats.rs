//! `GET /containers/{id}/stats`: what `docker stats` shows, read from the
//! container's cgroups (`runtime::resources`) and its network namespace.
//!
//! As Docker: `stream=true` (the default) sends one JSON document a second,
//! each with the previous reading as `precpu_stats`; `stream=false` takes
//! two readings a second apart so the CPU percentage can be computed, or
//! one with `one-shot=true`; a container that is not running gives a
//! document with only its name and id, zeros elsewhere.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::AppState;
use crate::engine::containers::Container;
use crate::error::ApiResult;
use crate::ids::{now_rfc3339, ZERO_TIME};
use crate::runtime::resources::{clk_tck, parse_system_cpu, NetCounters, Sample};

/// Docker's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One reading: the time, the cgroups, the interfaces and the host's CPU
/// time (None when the container is not running).
struct Reading {
    read: String,
    sample: Sample,
    net: std::collections::BTreeMap<String, NetCounters>,
    system_ns: u64,
}

fn take(st: &AppState, c: &Container) -> Option<Reading> {
    let (sample, net) = st.containers.sample(c)?;
    let system_ns = parse_system_cpu(&std::fs::read_to_string("/proc/stat").unwrap_or_default(), clk_tck());
    Some(Reading { read: now_rfc3339(), sample, net, system_ns })
}

fn cpu_stats(r: Option<&Reading>, online: usize) -> Value {
    let Some(r) = r else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let s = &r.sample;
    let mut usage = json!({"total_usage": s.cpu_total_ns, "usage_in_kernelmode": s.cpu_kernel_ns, "usage_in_usermode": s.cpu_user_ns});
    if !s.percpu_ns.is_empty() {
        usage["percpu_usage"] = json!(s.percpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": r.system_ns,
        "online_cpus": online,
        "throttling_data": {"periods": s.periods, "throttled_periods": s.throttled_periods, "throttled_time": s.throttled_time_ns},
    })
}

/// Docker's `StatsJSON` for a reading and the one before it.
fn document(c: &Container, now: Option<&Reading>, pre: Option<&Reading>) -> Value {
    let rec = c.record();
    let online = crate::runtime::confine::host_cpus();
    let blkio_none = json!({
        "io_service_bytes_recursive": null, "io_serviced_recursive": null, "io_queue_recursive": null,
        "io_service_time_recursive": null, "io_wait_time_recursive": null, "io_merged_recursive": null,
        "io_time_recursive": null, "sectors_recursive": null,
    });
    let mut doc = json!({
        "name": format!("/{}", rec.name),
        "id": rec.id,
        "read": now.map(|r| r.read.clone()).unwrap_or_else(|| ZERO_TIME.into()),
        "preread": pre.map(|r| r.read.clone()).unwrap_or_else(|| ZERO_TIME.into()),
        "pids_stats": {},
        "blkio_stats": blkio_none,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(now, online),
        "precpu_stats": cpu_stats(pre, online),
        "memory_stats": {},
    });
    let Some(r) = now else { return doc };
    let s = &r.sample;
    doc["pids_stats"] = json!({"current": s.pids_current});
    if let Some(l) = s.pids_limit {
        doc["pids_stats"]["limit"] = json!(l);
    }
    if !s.blkio.is_empty() {
        doc["blkio_stats"]["io_service_bytes_recursive"] = json!(s.blkio);
    }
    doc["memory_stats"] = json!({"usage": s.memory_usage, "stats": s.memory_stat, "limit": s.memory_limit});
    if s.memory_max_usage > 0 {
        doc["memory_stats"]["max_usage"] = json!(s.memory_max_usage);
        doc["memory_stats"]["failcnt"] = json!(s.memory_failcnt);
    }
    if !r.net.is_empty() {
        doc["networks"] = json!(r.net);
    }
    doc
}

fn line(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

fn flag(q: &HashMap<String, String>, k: &str, default: bool) -> bool {
    q.get(k).map_or(default, |v| v == "1" || v.eq_ignore_ascii_case("true"))
}

pub async fn stats(State(st): State<AppState>, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let c = st.containers.get(&id)?;
    let stream = flag(&q, "stream", true);
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    if !stream {
        let first = take(&st, &c);
        if first.is_none() || flag(&q, "one-shot", false) {
            return Ok((json_type, line(&document(&c, first.as_ref(), None))).into_response());
        }
        tokio::time::sleep(INTERVAL).await;
        let second = take(&st, &c);
        return Ok((json_type, line(&document(&c, second.as_ref(), first.as_ref()))).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut removed = c.removed();
        let mut pre: Option<Reading> = None;
        loop {
            let now = take(&st, &c);
            if tx.send(Ok(line(&document(&c, now.as_ref(), pre.as_ref())))).await.is_err() {
                return; // the client went away
            }
            pre = now;
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = removed.wait_for(|r| *r) => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((json_type, body).into_response())
}
