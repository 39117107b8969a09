//! The Engine API's edge against a real berthd in the sandbox: bad input is
//! Docker's 4xx and leaves the daemon well; concurrent lifecycle calls on one
//! container run in turn, answer as Docker does and leave nothing behind.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::process::Stdio;

use berth_e2e::sandbox::{node1, Berthd, Sandbox};

/// One API request over berthd's socket (see `Sandbox::api`).
fn api(sb: &Sandbox, d: &Berthd, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    sb.api(d, method, path, body)
}

/// The same request `n` times at once; the statuses, sorted.
fn concurrently(sb: &Sandbox, d: &Berthd, n: usize, method: &str, path: &str) -> Vec<u16> {
    let sock = d.socket.display().to_string();
    let url = format!("http://berth/v1.41{path}");
    let children: Vec<_> = (0..n)
        .map(|_| {
            sb.command("curl")
                .args(["-sS", "-o", "/dev/null", "--max-time", "60", "--unix-socket", &sock, "-X", method, "-w", "%{http_code}", &url])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes: Vec<u16> =
        children.into_iter().map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).trim().parse().unwrap_or(0)).collect();
    codes.sort();
    codes
}

fn host(sb: &Sandbox, script: &str) -> String {
    let o = sb.run("sh", &["-c", script]).unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing of a run is left in node1: no veth but the sandbox's uplink,
/// no overlay mounted, no DNAT rule, no container.
fn assert_nothing_left(sb: &Sandbox, d: &Berthd) {
    // (A pair goes with its container's namespace, in the kernel's time.)
    let veths = || host(sb, "ip -o link show type veth | grep -v ': eth0@'");
    let start = std::time::Instant::now();
    while !veths().is_empty() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(veths(), "", "{}", d.log_text());
    let mounts = format!("grep -c '{}/berth/data/overlay2' /proc/self/mountinfo || true", sb.dir().display());
    assert_eq!(host(sb, &mounts).trim(), "0", "an overlay is still mounted");
    assert_eq!(host(sb, "iptables -t nat -S DOCKER | grep -c DNAT || true").trim(), "0");
    let ps = sb.docker_ok(d, &["ps", "-aq"]);
    assert_eq!(ps.trim(), "", "containers left: {ps}");
}

#[test]
fn concurrent_starts_stops_and_removals_of_one_container_run_in_turn() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let id = sb.docker_ok(&d, &["create", "--name", "racer", "-p", "8089:80", "alpine", "sleep", "1000"]).trim().to_string();

    // Six starts at once: one starts it, the others find it running (304).
    let codes = concurrently(&sb, &d, 6, "POST", &format!("/containers/{id}/start"));
    assert_eq!(codes, vec![204, 304, 304, 304, 304, 304], "{}", d.log_text());
    let state = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Status}} {{.NetworkSettings.IPAddress}}", "racer"]);
    assert_eq!(state.trim(), "running 172.17.0.2", "one run, one address");
    assert_eq!(host(&sb, "ip -o link show master docker0 | wc -l").trim(), "1", "one veth");
    assert_eq!(host(&sb, "iptables -t nat -S DOCKER | grep -c 'dport 8089 -j DNAT'").trim(), "1", "one DNAT rule");

    // Six stops: one stops it, the others find it stopped (304).
    let codes = concurrently(&sb, &d, 6, "POST", &format!("/containers/{id}/stop?t=1"));
    assert_eq!(codes, vec![204, 304, 304, 304, 304, 304], "{}", d.log_text());
    // (The pair goes with the container's namespace, in the kernel's time.)
    berth_e2e::sandbox::until(5, "the veth to go with the stopped container", || host(&sb, "ip -o link show master docker0").is_empty());

    // Started again, then six forced removals: one removes it, the others
    // find it gone (404), none fails.
    sb.docker_ok(&d, &["start", "racer"]);
    let codes = concurrently(&sb, &d, 6, "DELETE", &format!("/containers/{id}?force=1"));
    assert_eq!(codes[0], 204, "{codes:?}");
    assert!(codes[1..].iter().all(|c| *c == 404), "{codes:?}\n{}", d.log_text());
    assert_nothing_left(&sb, &d);

    // A mix on a fresh container: never a 500, never a half-started run.
    let id = sb.docker_ok(&d, &["create", "--name", "mixed", "alpine", "sleep", "1000"]).trim().to_string();
    let sock = d.socket.display().to_string();
    let mut children = Vec::new();
    for (method, path) in [
        ("POST", format!("/containers/{id}/start")),
        ("POST", format!("/containers/{id}/kill")),
        ("POST", format!("/containers/{id}/start")),
        ("POST", format!("/containers/{id}/stop?t=1")),
        ("POST", format!("/containers/{id}/restart?t=1")),
        ("POST", format!("/containers/{id}/start")),
        ("DELETE", format!("/containers/{id}?force=1")),
        ("POST", format!("/containers/{id}/kill")),
    ] {
        let url = format!("http://berth/v1.41{path}");
        children.push(
            sb.command("curl")
                .args(["-sS", "-o", "/dev/null", "--max-time", "60", "--unix-socket", &sock, "-X", method, "-w", "%{http_code}", &url])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let codes: Vec<u16> =
        children.into_iter().map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).trim().parse().unwrap_or(0)).collect();
    assert!(codes.iter().all(|c| matches!(c, 204 | 304 | 404 | 409)), "{codes:?}\n{}", d.log_text());
    // Whatever order they ran in, the removal is among them: nothing stays.
    let _ = sb.docker(&d, &["rm", "-f", "mixed"]);
    assert_nothing_left(&sb, &d);
    assert!(!d.log_text().contains("panicked"), "{}", d.log_text());
}

#[test]
fn bad_input_is_a_docker_4xx_and_the_daemon_stays_well() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // Wrong JSON types: refused with Go's words, nothing created.
    for (body, field) in [
        (r#"{"Image": "alpine", "Cmd": ["true"], "Env": "x"}"#, "ContainerConfigWrapper.Env of type []string"),
        (r#"{"Image": "alpine", "Cmd": ["true"], "HostConfig": "x"}"#, "ContainerConfigWrapper.HostConfig of type container.HostConfig"),
        (r#"{"Image": "alpine", "Cmd": ["true"], "HostConfig": {"Binds": "x"}}"#, "HostConfig.Binds of type []string"),
        (r#"{"Image": "alpine", "Cmd": ["true"], "Tty": "yes"}"#, "ContainerConfigWrapper.Tty of type bool"),
    ] {
        let (code, text) = api(&sb, &d, "POST", "/containers/create", Some(body));
        assert_eq!(code, 400, "{body}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with("json: cannot unmarshal string into Go struct field") && msg.ends_with(field), "{msg}");
    }
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "");
    // moby's strslice: a string Cmd is a one-element list, and it runs.
    let (code, text) = api(&sb, &d, "POST", "/containers/create?name=str-cmd", Some(r#"{"Image": "alpine", "Cmd": "true"}"#));
    assert_eq!(code, 201, "{text}");
    let cmd = sb.docker_ok(&d, &["inspect", "-f", "{{json .Config.Cmd}}", "str-cmd"]);
    assert_eq!(cmd.trim(), r#"["true"]"#);
    sb.docker_ok(&d, &["rm", "str-cmd"]);

    // Malformed JSON, a 20 MB body, a bad name, reference and port.
    let (code, text) = api(&sb, &d, "POST", "/containers/create", Some("{nope"));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("\"message\":\"invalid JSON"), "{text}");
    let big = sb.dir().join("big.json");
    std::fs::write(&big, format!(r#"{{"Image": "alpine", "Env": ["{}"]}}"#, "x".repeat(20 << 20))).unwrap();
    let (code, text) = api(&sb, &d, "POST", "/containers/create", Some(&format!("@{}", big.display())));
    assert!(code == 413 || code == 400, "{code} {text}");
    let (code, text) = api(&sb, &d, "POST", "/containers/create?name=../x", Some(r#"{"Image": "alpine"}"#));
    assert_eq!((code, text.contains("Invalid container name (../x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")), (400, true), "{text}");
    let (code, text) = api(
        &sb,
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image": "alpine", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}}"#),
    );
    assert_eq!((code, text.contains("invalid port specification: \\\"99999\\\"")), (400, true), "{text}");
    let (code, text) = api(&sb, &d, "POST", "/containers/create", Some(r#"{"Image": "Alpine"}"#));
    assert_eq!((code, text.contains("invalid reference format")), (400, true), "{text}");
    let (code, text) = api(&sb, &d, "POST", "/volumes/create", Some(r#"{"Name": "../x"}"#));
    assert_eq!((code, text.contains("includes invalid characters for a local volume name")), (400, true), "{text}");

    // /events?until=inf used to panic a task.
    let (code, text) = api(&sb, &d, "GET", "/events?until=inf", None);
    assert_eq!(code, 400, "{text}");
    assert!(!d.log_text().contains("panicked"), "{}", d.log_text());

    // Still well: it answers and runs containers.
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "alpine", "echo", "ok"]).trim(), "ok");
}
