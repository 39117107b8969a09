//! berth side by side with Docker (issue 18): the same requests, through the
//! same docker CLI and the same raw API calls, to berthd in one node1 and to
//! Debian's Docker daemon (20.10, API 1.41) in another, both pulling from
//! their own fixture registry. What clients read is compared: the shape of
//! every inspect (each key, and null versus empty versus a value — the
//! conventions SDKs trip on), the values that do not depend on ids, times or
//! paths, and the status code and message of each error.
//!
//! Both daemons are spoken to at API 1.41, the newest the reference knows;
//! berth's answers at newer versions are tested elsewhere against Docker's
//! changelog. Where berth deliberately answers as Docker 28 does rather than
//! as 20.10 did, the difference is listed in `EXPECTED` with its reason.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};
use serde_json::Value;
use std::collections::BTreeMap;

const API: &str = "1.41";

/// Differences that are Docker 28's answer, not 20.10's: (the start of the
/// difference's line, why). Each must still occur (a stale entry fails).
const EXPECTED: &[(&str, &str)] = &[
    (
        "net1.IPAM.Config[].Gateway: only in berth",
        "Docker 23+ shows the gateway its IPAM chose in IPAM.Config (moby daemon/network.go, buildIPAMResources)",
    ),
    ("bridge.IPAM.Config[].Gateway: only in berth", "the same, for the default bridge"),
    ("networks[].IPAM.Config[].Gateway: only in berth", "the same, in the network list"),
    (
        "df (shape).BuildCache: docker null, berth []",
        "Docker 23+ answers an empty build cache with [] (daemon/server/router/system, nonNilSlice)",
    ),
    ("info (shape).Runtimes.io.containerd.", "containerd's shims are Docker's runtimes; berth runs containers itself"),
    (
        "info (shape).Runtimes.berth",
        "berth's own runtime, listed by its name beside \"runc\" (the name HostConfig.Runtime and clients use)",
    ),
    (
        r#"POST /containers/create: docker 500 "unexpected EOF", berth 400 "invalid JSON: unexpected EOF""#,
        "a client's malformed body is a 400 (Docker 23+ answers 400 \"invalid JSON: …\" too; 20.10's 500 was a bug)",
    ),
    (
        r#"POST /containers/create: docker 500 "invalid mode: zz", berth 400 "invalid mode: zz""#,
        "a client's bad bind mode is a 400 (Docker 23+ marks it an invalid parameter)",
    ),
    (
        r#"POST /containers/create: docker 400 "invalid restart policy 'sometimes'", berth 400 "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'""#,
        "Docker 25+'s text (api/types/container ValidateRestartPolicy)",
    ),
    (
        r#"GET /containers/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D: docker 400 "Invalid filter 'nope'", berth 400 "invalid filter 'nope'""#,
        "Docker 23+'s text (lower case)",
    ),
    (
        r#"POST /images/alpine/tag?repo=UPPER: docker 500 "invalid reference format: repository name must be lowercase", berth 400"#,
        "a client's bad reference is a 400 (Docker 23+ too)",
    ),
    (
        r#"GET /images/nope/json: docker 404 "no such image: nope: No such image: nope:latest", berth 404 "No such image: nope:latest""#,
        "Docker 23+ no longer wraps the message (daemon/images/image.go, ErrImageDoesNotExist)",
    ),
    (
        r#"POST /networks/create: docker 201 "{\"Id\":\"<id>\",\"Warning\":\"Network with name net1 (id : <id>) already exists\"}"#,
        "Docker 25+ always refuses a second network of the same name (CheckDuplicate deprecated, API 1.44)",
    ),
];

struct Side<'a> {
    sb: &'a Sandbox,
    d: &'a Berthd,
}

impl Side<'_> {
    fn docker(&self, args: &[&str]) -> (bool, String, String) {
        let o = self.sb.docker_at(self.d, API, args).unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    }
    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.docker(args);
        assert!(
            ok,
            "docker {} failed: {stderr}\n{}",
            args.join(" "),
            self.d.log_text().lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        stdout
    }
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.sb.api_at(self.d, API, method, path, body)
    }
    fn json(&self, path: &str) -> Value {
        let (code, body) = self.api("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Keys whose values are data chosen by the user or the daemon (names, ids,
/// ports), not part of the object's shape: their children are compared by
/// type only under a normalised key.
fn normal_key(k: &str) -> String {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex(k, 64) || hex(k, 12) {
        "<id>".into()
    } else if k.starts_with("sha256:") {
        "<digest>".into()
    } else {
        k.to_string()
    }
}

/// Every path of a JSON value with its kind: "null", "bool", "number",
/// "string", "[]" (empty), "[..]", "{}" (empty), "{..}".
fn shape(v: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(a) if a.is_empty() => "[]",
        Value::Array(_) => "[..]",
        Value::Object(o) if o.is_empty() => "{}",
        Value::Object(_) => "{..}",
    };
    out.insert(path.to_string(), kind.to_string());
    match v {
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{path}[]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                shape(x, &format!("{path}.{}", normal_key(k)), out);
            }
        }
        _ => {}
    }
}

/// Values that name this run rather than the object: ids, digests, times,
/// daemon paths, pids, ports the kernel chose.
fn volatile(path: &str, s: &str) -> bool {
    let hexish = s.len() >= 12 && s.trim_start_matches("sha256:").bytes().all(|b| b.is_ascii_hexdigit());
    hexish
        || s.starts_with('/') && (s.contains("/docker/") || s.contains("/berth/"))
        || s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.contains('T') && s.contains(':')
        || path.ends_with(".Pid")
        || path.ends_with(".Created")
        || path.ends_with(".time")
        || path.ends_with(".timeNano")
        || s.starts_with("Up ")
        || s.starts_with("Exited (")
        || path.ends_with(".Hostname")
        || path.ends_with(".EndpointID")
        || path.ends_with(".NetworkID")
        || path.ends_with(".SandboxID")
        || path.ends_with(".SandboxKey")
        || path.ends_with(".Id")
}

fn values(v: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                values(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                values(x, &format!("{path}.{}", normal_key(k)), out);
            }
        }
        Value::String(s) if volatile(path, s) => {}
        Value::Number(_) if volatile(path, "") => {}
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

/// The differences between the reference's value and berth's, as lines.
fn compare(what: &str, docker: &Value, berth: &Value, skip_values: &[&str], diffs: &mut Vec<String>) {
    let (mut ds, mut bs) = (BTreeMap::new(), BTreeMap::new());
    shape(docker, what, &mut ds);
    shape(berth, what, &mut bs);
    for (p, k) in &ds {
        match bs.get(p) {
            None => diffs.push(format!("{p}: missing in berth (docker: {k})")),
            Some(b) if b != k => diffs.push(format!("{p}: docker {k}, berth {b}")),
            _ => {}
        }
    }
    for (p, k) in &bs {
        if !ds.contains_key(p) {
            diffs.push(format!("{p}: only in berth ({k})"));
        }
    }
    let (mut dv, mut bv) = (BTreeMap::new(), BTreeMap::new());
    values(docker, what, &mut dv);
    values(berth, what, &mut bv);
    for (p, x) in &dv {
        if skip_values.iter().any(|s| p.contains(s)) {
            continue;
        }
        if let Some(y) = bv.get(p) {
            if x != y {
                diffs.push(format!("{p}: docker {x}, berth {y}"));
            }
        }
    }
}

/// What the test does on each side, in order; returns the objects to compare.
fn scenario(s: &Side) -> Vec<(&'static str, Value)> {
    let mut got = Vec::new();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    s.ok(&["pull", "-q", "alpine"]);
    s.ok(&["volume", "create", "--label", "k=v", "vol1"]);
    s.ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--ip-range",
        "10.77.0.128/25",
        "--aux-address",
        "a=10.77.0.5",
        "--label",
        "k=v",
        "net1",
    ]);
    s.ok(&["network", "create", "--internal", "inner"]);
    s.ok(&["create", "--name", "c1", "-p", "8081:80", "-e", "A=1", "-v", "vol1:/data", "--label", "l=1", "alpine", "sleep", "300"]);
    got.push(("created", s.json("/containers/c1/json")));
    s.ok(&["start", "c1"]);
    got.push(("running", s.json("/containers/c1/json")));
    s.ok(&["network", "connect", "--alias", "web", "--ip", "10.77.0.200", "net1", "c1"]);
    got.push(("connected", s.json("/containers/c1/json")));
    got.push(("net1", s.json("/networks/net1")));
    got.push(("inner", s.json("/networks/inner")));
    got.push(("bridge", s.json("/networks/bridge")));
    got.push(("host", s.json("/networks/host")));
    got.push(("none", s.json("/networks/none")));
    got.push(("vol1", s.json("/volumes/vol1")));
    got.push(("alpine", s.json("/images/alpine/json")));
    got.push(("list", s.json("/containers/json?all=1")));
    got.push(("top", s.json("/containers/c1/top")));
    got.push(("changes", s.json("/containers/c1/changes")));
    got.push(("stats (shape)", s.json("/containers/c1/stats?stream=false")));
    got.push(("images", s.json("/images/json")));
    got.push(("history", s.json("/images/alpine/history")));
    got.push(("networks", s.json("/networks?filters=%7B%22name%22%3A%7B%22net1%22%3Atrue%7D%7D")));
    got.push(("df (shape)", s.json("/system/df")));
    got.push(("info (shape)", s.json("/info")));
    got.push(("version (shape)", s.json("/version")));
    got.push(("volumes", s.json("/volumes")));
    let (_, body) = s.api("POST", "/containers/c1/exec", Some(r#"{"Cmd":["true"],"AttachStdout":true}"#));
    let exec: Value = serde_json::from_str(&body).unwrap();
    got.push(("exec", s.json(&format!("/exec/{}/json", exec["Id"].as_str().unwrap()))));
    s.ok(&["stop", "-t", "0", "c1"]);
    got.push(("exited", s.json("/containers/c1/json")));
    s.ok(&[
        "run",
        "--name",
        "c2",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "alpine",
        "true",
    ]);
    got.push(("configured", s.json("/containers/c2/json")));
    s.ok(&["network", "create", "--ipv6", "--subnet", "fd00:77::/64", "net6"]);
    s.ok(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "net6",
        "--ip6",
        "fd00:77::20",
        "--link-local-ip",
        "169.254.7.7",
        "alpine",
        "sleep",
        "300",
    ]);
    got.push(("ipv6 container", s.json("/containers/c3/json")));
    got.push(("net6", s.json("/networks/net6")));
    s.ok(&["rm", "-f", "c3"]);
    // What `docker events` told of all that: the first event of each type
    // and action (an SDK reads Type, Action, Actor.Attributes, scope, time).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (code, body) = s.api("GET", &format!("/events?since={since}&until={until}"), None);
    assert_eq!(code, 200, "{body}");
    let mut firsts = serde_json::Map::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let action = e["Action"].as_str().unwrap_or("").split(':').next().unwrap_or("").to_string();
        let key = format!("{} {action}", e["Type"].as_str().unwrap_or(""));
        firsts.entry(key).or_insert(e);
    }
    got.push(("events", Value::Object(firsts)));
    got
}

/// Requests a client gets wrong, and what each daemon answers.
fn errors(s: &Side) -> Vec<(String, u16, String)> {
    let reqs: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/containers/nope/json", None),
        ("GET", "/images/nope/json", None),
        ("GET", "/networks/nope", None),
        ("GET", "/volumes/nope", None),
        ("POST", "/containers/create?name=c1", Some(r#"{"Image":"alpine"}"#)),
        ("POST", "/containers/create", Some(r#"{"Image":"nope-image"}"#)),
        ("POST", "/containers/create?name=bad/name", Some(r#"{"Image":"alpine"}"#)),
        ("POST", "/containers/c1/start", None),
        ("POST", "/containers/c1/start", None),
        ("DELETE", "/containers/c1", None),
        ("POST", "/containers/c1/kill?signal=NOPE", None),
        ("POST", "/containers/c2/exec", Some(r#"{"Cmd":["true"]}"#)),
        ("POST", "/containers/c2/pause", None),
        ("POST", "/containers/c2/stop", None),
        ("GET", "/containers/c1/logs", None),
        ("DELETE", "/volumes/vol1", None),
        ("DELETE", "/networks/bridge", None),
        ("POST", "/networks/create", Some(r#"{"Name":"net1"}"#)),
        ("POST", "/networks/create", Some(r#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.77.0.0/24"}]}}"#)),
        ("POST", "/networks/net1/connect", Some(r#"{"Container":"nope"}"#)),
        ("POST", "/volumes/create", Some(r#"{"Name":"bad/name"}"#)),
        ("GET", "/swarm", None),
        ("GET", "/nodes", None),
        ("GET", "/no/such/route", None),
        ("POST", "/containers/c1/rename?name=c2", None),
        ("DELETE", "/images/alpine", None),
        ("POST", "/containers/c1/stop?t=0", None),
        ("POST", "/containers/create", Some(r#"{"Image":"alpine""#)),
        ("POST", "/containers/create", Some(r#"{"Image":"alpine","HostConfig":{"Memory":1024}}"#)),
        ("POST", "/containers/create", Some(r#"{"Image":"alpine","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"99999"}]}}}"#)),
        ("POST", "/containers/create", Some(r#"{"Image":"alpine","HostConfig":{"Binds":["relative:/x:zz"]}}"#)),
        ("POST", "/containers/create", Some(r#"{"Image":"alpine","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#)),
        ("POST", "/containers/c1/wait?condition=sometimes", None),
        ("GET", "/containers/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D", None),
        ("GET", "/images/json?filters=%7B%22dangling%22%3A%5B%22maybe%22%5D%7D", None),
        ("POST", "/images/alpine/tag?repo=UPPER", None),
        ("POST", "/networks/create", Some(r#"{"Name":"d","Driver":"nope"}"#)),
        ("POST", "/volumes/create", Some(r#"{"Name":"v","Driver":"nope"}"#)),
        ("GET", "/exec/nope/json", None),
        ("POST", "/containers/c1/exec", Some(r#"{"Cmd":[]}"#)),
    ];
    reqs.iter()
        .map(|(m, p, b)| {
            let (code, body) = s.api(m, p, *b);
            let msg = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or(body);
            (format!("{m} {p}"), code, normalise_ids(&msg))
        })
        .collect()
}

fn normalise_ids(s: &str) -> String {
    s.split_inclusive(|c: char| !c.is_ascii_hexdigit())
        .map(|w| {
            let hex: String = w.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            if hex.len() >= 12 {
                w.replacen(&hex, "<id>", 1)
            } else {
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn berth_answers_as_docker_does() {
    let (bsb, bd) = node1().unwrap();
    let mut rsb = Sandbox::new().unwrap();
    rsb.start_registry().unwrap();
    let rd = rsb.start_reference_docker().unwrap();
    let berth = Side { sb: &bsb, d: &bd };
    let docker = Side { sb: &rsb, d: &rd };

    let mut diffs = Vec::new();
    let b = scenario(&berth);
    let r = scenario(&docker);
    for ((what, dv), (_, bv)) in r.iter().zip(&b) {
        // Counters, host facts and versions: their shape is compared, not their values.
        let skip: &[&str] = match *what {
            w if w.ends_with("(shape)") => &[""],
            // Pids and CPU shares of the processes; their columns are compared.
            "top" => &["Processes"],
            // Which network a stop disconnects first is not an order Docker keeps.
            "events" => &["disconnect.Actor.Attributes.name"],
            _ => &[],
        };
        compare(what, dv, bv, skip, &mut diffs);
    }
    for ((req, dc, dm), (_, bc, bm)) in errors(&docker).iter().zip(errors(&berth).iter()) {
        if dc != bc || dm != bm {
            diffs.push(format!("{req}: docker {dc} {dm:?}, berth {bc} {bm:?}"));
        }
    }
    let unexpected: Vec<&String> = diffs.iter().filter(|d| !EXPECTED.iter().any(|(p, _)| d.starts_with(p))).collect();
    let stale: Vec<&str> = EXPECTED.iter().map(|(p, _)| *p).filter(|p| !diffs.iter().any(|d| d.starts_with(p))).collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "berth differs from Docker {}:\n{}\nlisted as expected but no longer different: {stale:?}",
        out(&rsb.docker(&rd, &["version", "--format", "{{.Server.Version}}"]).unwrap()).trim(),
        unexpected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
