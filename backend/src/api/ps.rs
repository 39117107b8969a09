//! Which containers `GET /containers/json` lists (`docker ps`): `all`,
//! `limit` (`-n`, `-l`) and every filter Docker's takes (moby's
//! daemon/list.go), with its checks and its 400s. Pure: it reads records and
//! what a caller knows of images and networks.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::engine::containers::Record;
use crate::error::{ApiError, ApiResult};
use berth_shared::Status;

/// The filter keys `docker ps` accepts.
pub const KEYS: [&str; 15] = [
    "ancestor",
    "before",
    "exited",
    "id",
    "isolation",
    "label",
    "name",
    "status",
    "health",
    "since",
    "volume",
    "network",
    "is-task",
    "publish",
    "expose",
];

const STATES: [&str; 7] = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];
const HEALTH: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];

/// What the listing needs to know beyond the records.
pub trait World {
    /// The image IDs an `ancestor=` value stands for: the image it names and
    /// every image built on it (None: no such image).
    fn ancestry(&self, name: &str) -> Option<BTreeSet<String>>;
    /// The network a name or ID prefix names: its name and ID.
    fn network(&self, name_or_id: &str) -> Option<(String, String)>;
}

/// The state `docker ps --filter status=` matches (and ps's State shows).
pub fn state(r: &Record) -> &'static str {
    if r.state.paused && r.state.status == Status::Running {
        "paused"
    } else if r.state.restarting {
        "restarting"
    } else {
        r.state.status.as_str()
    }
}

fn values(filters: &Value, key: &str) -> Vec<String> {
    filters[key].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// Docker's filter Match: any value, read as a regular expression, found in
/// the text (a value that is not one matches nothing).
fn matches_any(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| regex::Regex::new(p).is_ok_and(|re| re.is_match(text)))
}

/// `key` or `key=value` among the labels.
fn has_label(labels: &Value, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(want).is_some(),
    }
}

/// `80`, `80/udp` or `8000-8002` → "80/tcp"-style keys.
fn ports(key: &str, value: &str) -> ApiResult<Vec<String>> {
    if value.contains(':') {
        return Err(ApiError::bad_request(format!("filter for '{key}' should not contain ':': {value}")));
    }
    let (range, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let bad = || ApiError::bad_request(format!("error while looking up for {key} {value}: invalid port range"));
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
        None => {
            let p = range.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// The container a `before=`/`since=` value names: full ID, name or ID prefix.
fn anchor<'a>(records: &'a [Record], value: &str) -> ApiResult<&'a Record> {
    let name = value.trim_start_matches('/');
    records
        .iter()
        .find(|r| r.id == value || r.name == name)
        .or_else(|| {
            let mut by_prefix = records.iter().filter(|r| r.id.starts_with(value));
            match (by_prefix.next(), by_prefix.next()) {
                (Some(r), None) if !value.is_empty() => Some(r),
                _ => None,
            }
        })
        .ok_or_else(|| ApiError::not_found(format!("No such container: {value}")))
}

/// The containers to list, newest first: `records` must be sorted so.
pub fn select<'a>(records: &'a [Record], all: bool, limit: Option<i64>, filters: &Value, world: &dyn World) -> ApiResult<Vec<&'a Record>> {
    super::filters::check_keys(filters, &KEYS)?;
    let exited: Vec<i32> = values(filters, "exited")
        .iter()
        .map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("invalid filter 'exited={v}'"))))
        .collect::<ApiResult<_>>()?;
    let status = values(filters, "status");
    if let Some(bad) = status.iter().find(|s| !STATES.contains(&s.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid filter 'status={bad}': invalid container state: '{bad}': must be one of {}",
            STATES.join(", ")
        )));
    }
    let health = values(filters, "health");
    if let Some(bad) = health.iter().find(|s| !HEALTH.contains(&s.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid filter 'health={bad}': invalid value for health ({bad}): must be one of {}",
            HEALTH.join(", ")
        )));
    }
    let is_task = match values(filters, "is-task").first().map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => return Err(ApiError::bad_request(format!("invalid filter 'is-task={other}'"))),
    };
    let before = values(filters, "before").last().map(|v| anchor(records, v)).transpose()?.map(|r| r.id.clone());
    let since = values(filters, "since").last().map(|v| anchor(records, v)).transpose()?.map(|r| r.id.clone());
    let ancestors: Option<BTreeSet<String>> =
        filters.get("ancestor").map(|_| values(filters, "ancestor").iter().filter_map(|a| world.ancestry(a)).flatten().collect());
    let mut publish = BTreeSet::new();
    for v in values(filters, "publish") {
        publish.extend(ports("publish", &v)?);
    }
    let mut expose = BTreeSet::new();
    for v in values(filters, "expose") {
        expose.extend(ports("expose", &v)?);
    }
    let networks: Vec<Option<(String, String)>> = values(filters, "network").iter().map(|n| world.network(n)).collect();
    let (names, ids, labels, volumes) =
        (values(filters, "name"), values(filters, "id"), values(filters, "label"), values(filters, "volume"));
    // A status filter lists stopped containers too (Docker sets All).
    let all = all || !status.is_empty();
    let limit = limit.filter(|n| *n > 0).map(|n| n as usize);

    let mut out = Vec::new();
    let mut waiting_for_before = before.is_some();
    for r in records {
        if waiting_for_before {
            if Some(&r.id) == before.as_ref() {
                waiting_for_before = false;
            }
            continue;
        }
        if Some(&r.id) == since.as_ref() {
            break;
        }
        let running = r.state.status == Status::Running;
        if !running && !all && limit.is_none() {
            continue;
        }
        if !names.is_empty() && !matches_any(&names, &r.name) && !matches_any(&names, &format!("/{}", r.name)) {
            continue;
        }
        if !ids.is_empty() && !matches_any(&ids, &r.id) {
            continue;
        }
        if is_task == Some(true) {
            continue; // berth runs no swarm tasks
        }
        if !labels.iter().all(|l| has_label(&r.config["Labels"], l)) {
            continue;
        }
        if limit.is_some_and(|n| out.len() == n) {
            break;
        }
        let ever_started = !r.state.started_at.is_empty() && !r.state.started_at.starts_with("0001-");
        if !exited.is_empty() && !(exited.contains(&r.state.exit_code) && !running && ever_started) {
            continue;
        }
        if !status.is_empty() && !status.iter().any(|s| s == state(r)) {
            continue;
        }
        let h = r.state.health.as_ref().map(|h| h.status.as_str()).unwrap_or("none");
        if !health.is_empty() && !health.iter().any(|x| x == h) {
            continue;
        }
        if !volumes.is_empty()
            && !volumes.iter().any(|v| {
                r.mounts.iter().any(|m| {
                    m.destination == *v || (!m.name.is_empty() && m.name == *v) || (m.name.is_empty() && m.source.to_string_lossy() == *v)
                })
            })
        {
            continue;
        }
        if ancestors.as_ref().is_some_and(|a| !a.contains(&r.image_id)) {
            continue;
        }
        if !networks.is_empty() {
            let joined: Vec<String> = r.attachments().into_iter().map(|a| a.network).collect();
            if !networks.iter().flatten().any(|(name, _)| joined.contains(name)) {
                continue;
            }
        }
        if !publish.is_empty() || !expose.is_empty() {
            let published = r.ports.iter().any(|p| publish.contains(&format!("{}/{}", p.host_port, p.proto)));
            let exposed_ports: Vec<String> = r.config["ExposedPorts"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            let exposed = exposed_ports.iter().any(|k| expose.contains(k))
                || r.ports.iter().any(|p| expose.contains(&format!("{}/{}", p.container_port, p.proto)));
            if !published && !exposed {
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoWorld;
    impl World for NoWorld {
        fn ancestry(&self, name: &str) -> Option<BTreeSet<String>> {
            (name == "alpine").then(|| ["sha256:alp".to_string(), "sha256:built-on-alp".to_string()].into())
        }
        fn network(&self, n: &str) -> Option<(String, String)> {
            (n == "web" || "0123abcd".starts_with(n)).then(|| ("web".to_string(), "0123abcd".to_string()))
        }
    }

    fn rec(name: &str, id: &str, status: &str, exit: i32, extra: Value) -> Record {
        let mut v = json!({
            "id": id, "name": name, "created": "", "image": "alpine", "image_id": "sha256:alp",
            "config": {"Labels": {}}, "host_config": {"NetworkMode": "bridge"},
            "state": {"status": status, "pid": 0, "exit_code": exit, "error": "",
                      "started_at": if status == "created" { "" } else { "2026-12-03T10:00:00Z" }, "finished_at": ""},
            "layer": {"lower": [], "upper": "", "work": "", "merged": ""},
            "log_path": "", "hostname_path": "", "hosts_path": "", "resolv_conf_path": "",
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn names(list: &[&Record]) -> Vec<String> {
        list.iter().map(|r| r.name.clone()).collect()
    }

    fn records() -> Vec<Record> {
        vec![
            rec(
                "web-2",
                "ccc333",
                "running",
                0,
                json!({"config": {"Labels": {"tier": "front"}, "ExposedPorts": {"80/tcp": {}}},
                "ports": [{"host_ip": "0.0.0.0", "host_port": 8080, "container_ip": "172.17.0.2", "container_port": 80, "proto": "tcp"}],
                "networks": [{"network": "web", "aliases": []}]}),
            ),
            rec(
                "db",
                "bbb222",
                "exited",
                3,
                json!({"image_id": "sha256:other", "mounts": [{"kind": "volume", "name": "data", "source": "/v/data/_data", "destination": "/var/lib/db", "rw": true, "mode": ""}]}),
            ),
            rec("web-1", "aaa111", "created", 0, json!({"config": {"Labels": {"tier": "front", "v": "1"}}})),
        ]
    }

    fn pick(all: bool, limit: Option<i64>, f: Value) -> ApiResult<Vec<String>> {
        let recs = records();
        select(&recs, all, limit, &f, &NoWorld).map(|l| names(&l))
    }

    #[test]
    fn all_limit_before_and_since_as_docker_ps_has_them() {
        assert_eq!(pick(false, None, json!({})).unwrap(), ["web-2"]);
        assert_eq!(pick(true, None, json!({})).unwrap(), ["web-2", "db", "web-1"]);
        assert_eq!(pick(false, Some(2), json!({})).unwrap(), ["web-2", "db"], "-n lists stopped ones too");
        assert_eq!(pick(true, None, json!({"before": {"web-2": true}})).unwrap(), ["db", "web-1"]);
        assert_eq!(pick(true, None, json!({"since": {"aaa": true}})).unwrap(), ["web-2", "db"]);
        assert_eq!(pick(true, None, json!({"since": {"nope": true}})).unwrap_err().message, "No such container: nope");
    }

    #[test]
    fn each_filter_picks_what_dockers_does() {
        let f = |v: Value| pick(true, None, v).unwrap();
        assert_eq!(f(json!({"name": {"^web": true}})), ["web-2", "web-1"], "names are regular expressions");
        assert_eq!(f(json!({"id": {"bbb": true}})), ["db"]);
        assert_eq!(f(json!({"label": {"tier=front": true, "v": true}})), ["web-1"], "every label must match");
        assert_eq!(f(json!({"exited": {"3": true}})), ["db"]);
        assert_eq!(f(json!({"exited": {"0": true}})), Vec::<String>::new(), "a container never started has not exited");
        assert_eq!(pick(false, None, json!({"status": {"exited": true}})).unwrap(), ["db"], "status implies all");
        assert_eq!(f(json!({"health": {"none": true}})).len(), 3);
        assert_eq!(f(json!({"volume": {"data": true}})), ["db"]);
        assert_eq!(f(json!({"volume": {"/var/lib/db": true}})), ["db"]);
        assert_eq!(f(json!({"ancestor": {"alpine": true}})), ["web-2", "web-1"]);
        assert_eq!(f(json!({"ancestor": {"nothing": true}})), Vec::<String>::new());
        assert_eq!(f(json!({"network": {"0123": true}})), ["web-2"]);
        assert_eq!(f(json!({"publish": {"8080": true}})), ["web-2"]);
        assert_eq!(f(json!({"publish": {"80": true}})), Vec::<String>::new());
        assert_eq!(f(json!({"expose": {"79-81/tcp": true}})), ["web-2"]);
        assert_eq!(f(json!({"is-task": {"true": true}})), Vec::<String>::new());
    }

    #[test]
    fn bad_filters_are_dockers_400s() {
        let e = |v: Value| pick(true, None, v).unwrap_err().message;
        assert_eq!(e(json!({"colour": {"red": true}})), "invalid filter 'colour'");
        assert_eq!(e(json!({"exited": {"x": true}})), "invalid filter 'exited=x'");
        assert!(e(json!({"status": {"sleeping": true}})).starts_with("invalid filter 'status=sleeping': invalid container state"));
        assert!(e(json!({"health": {"ok": true}})).starts_with("invalid filter 'health=ok'"));
        assert_eq!(e(json!({"publish": {"1:2": true}})), "filter for 'publish' should not contain ':': 1:2");
    }
}
