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

/// The memory.stat keys Docker reports on a cgroup v1 host (its v1
/// metrics have these fields; newer kernels' others are not passed on).
const V1_MEMORY_KEYS: [&str; 32] = [
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// Docker's `StatsJSON` for a reading and the one before it.
fn document(st: &AppState, c: &Container, now: Option<&Reading>, pre: Option<&Reading>) -> Value {
    let rec = c.record();
    let online = crate::runtime::confine::host_cpus();
    // On a v1 host Docker gives every blkio list, empty when there is
    // nothing; on v2 only the bytes, the others null.
    let v1 = st.containers.resources().version() == crate::runtime::resources::Version::V1;
    let none = if v1 { json!([]) } else { Value::Null };
    let blkio_none = json!({
        "io_service_bytes_recursive": none, "io_serviced_recursive": none, "io_queue_recursive": none,
        "io_service_time_recursive": none, "io_wait_time_recursive": none, "io_merged_recursive": none,
        "io_time_recursive": none, "sectors_recursive": none,
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
    let mut stat = s.memory_stat.clone();
    if stat.contains_key("hierarchical_memory_limit") {
        stat.retain(|k, _| V1_MEMORY_KEYS.contains(&k.as_str()));
    }
    doc["memory_stats"] = json!({"usage": s.memory_usage, "stats": stat, "limit": s.memory_limit});
    // (Both are left out when zero, as Docker's omitempty fields are.)
    if s.memory_max_usage > 0 {
        doc["memory_stats"]["max_usage"] = json!(s.memory_max_usage);
    }
    if s.memory_failcnt > 0 {
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
            return Ok((json_type, line(&document(&st, &c, first.as_ref(), None))).into_response());
        }
        tokio::time::sleep(INTERVAL).await;
        let second = take(&st, &c);
        return Ok((json_type, line(&document(&st, &c, second.as_ref(), first.as_ref()))).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut removed = c.removed();
        let mut pre: Option<Reading> = None;
        loop {
            let now = take(&st, &c);
            if tx.send(Ok(line(&document(&st, &c, now.as_ref(), pre.as_ref())))).await.is_err() {
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
