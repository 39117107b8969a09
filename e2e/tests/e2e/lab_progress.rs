//! The guided lab's progress, live: berthd judges node1's real state with the
//! lab's checks (shared::lab) after every event and streams the progress.
//! Publishing a port completes the "publish" step; deleting its DNAT rule by
//! hand — at once, before the observer's next reading of the ruleset — fails
//! it with `port.dnat_missing`, naming the rule.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::sandbox::{node1, Sandbox};

fn lab_step(sb: &Sandbox, step: &str) -> serde_json::Value {
    let o = sb.run("curl", &["-fsS", "--max-time", "5", "-H", &sb.lab_auth_header(), "http://127.0.0.1:8080/api/state"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["state"]["lab"]["deploy-docker"]["steps"][step].clone()
}

fn eventually(what: &str, mut ok: impl FnMut() -> Option<String>) {
    let mut last = String::new();
    for _ in 0..100 {
        match ok() {
            None => return,
            Some(seen) => last = seen,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: last seen {last}");
}

#[test]
fn publishing_a_port_completes_the_step_and_deleting_its_dnat_rule_fails_it_with_its_code() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    assert_ne!(lab_step(&sb, "publish")["completed"], true, "not before the port is published");
    sb.docker_ok(&d, &["run", "--name", "nginx-public", "-d", "--rm", "-p", "80:80", "nginx:alpine"]);
    eventually("the publish step completes", || {
        let s = lab_step(&sb, "publish");
        (s["completed"] != true || s["state"] != "passed").then(|| s.to_string())
    });

    // The learner deletes the DNAT rule by hand: the step fails, and says why.
    let rule = "DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    let o = sb.run("sh", &["-c", &format!("iptables -t nat -D {rule}")]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eventually("the publish step fails with port.dnat_missing", || {
        let s = lab_step(&sb, "publish");
        let code =
            s["checks"].as_object().into_iter().flat_map(|c| c.values()).find_map(|c| c["diagnosis"]["code"].as_str().map(str::to_string));
        (s["state"] != "failed" || code.as_deref() != Some("port.dnat_missing")).then(|| s.to_string())
    });
    let s = lab_step(&sb, "publish");
    let diag = s["checks"].as_object().unwrap().values().find_map(|c| c["diagnosis"].as_object().cloned()).unwrap();
    let text = serde_json::Value::Object(diag).to_string();
    assert!(text.contains("172.17.0.2:80") && text.contains("deleted by hand"), "{text}");

    // As the hint says: run it again, and the step is whole again.
    sb.docker_ok(&d, &["stop", "nginx-public"]);
    sb.docker_ok(&d, &["run", "--name", "nginx-public", "-d", "--rm", "-p", "80:80", "nginx:alpine"]);
    eventually("the publish step passes again", || {
        let s = lab_step(&sb, "publish");
        (s["state"] != "passed").then(|| s.to_string())
    });
    sb.docker_ok(&d, &["stop", "nginx-public"]);
}

#[test]
fn after_a_restart_dockers_standing_rules_are_still_berths_not_someone_elses() {
    let (sb, d) = node1().unwrap();
    let state = |sb: &Sandbox| -> serde_json::Value {
        let o = sb.run("curl", &["-fsS", "--max-time", "5", "-H", &sb.lab_auth_header(), "http://127.0.0.1:8080/api/state"]).unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()["state"].clone()
    };
    let by_others = |s: &serde_json::Value| -> Vec<String> {
        let ours: Vec<&serde_json::Value> = s["rules"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        s["kernel_rules"].as_array().into_iter().flatten().filter(|r| !ours.contains(r)).map(|r| r.to_string()).collect()
    };
    eventually("the standing rules observed", || {
        let s = state(&sb);
        (s["kernel_rules"].as_array().map_or(0, Vec::len) < 10).then(|| s["kernel_rules"].to_string())
    });
    assert_eq!(by_others(&state(&sb)), Vec::<String>::new());
    // berthd stops (SIGTERM) and starts again on the same roots: the rules
    // it finds in the kernel are the ones it keeps.
    let mut d = d;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(d.child.wait().unwrap().success());
    let _d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    eventually("the standing rules observed again", || {
        let s = state(&sb);
        (s["kernel_rules"].as_array().map_or(0, Vec::len) < 10).then(|| s["kernel_rules"].to_string())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(by_others(&state(&sb)), Vec::<String>::new(), "Docker's standing rules listed as someone else's after a restart");
}

#[test]
fn a_port_rule_deleted_by_hand_leaves_the_state_when_its_container_stops() {
    let (sb, d) = node1().unwrap();
    let state = |sb: &Sandbox| -> serde_json::Value {
        let o = sb.run("curl", &["-fsS", "--max-time", "5", "-H", &sb.lab_auth_header(), "http://127.0.0.1:8080/api/state"]).unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()["state"].clone()
    };
    let with = |v: &serde_json::Value, needle: &str| -> Vec<String> {
        v.as_array().into_iter().flatten().map(|r| r.to_string()).filter(|r| r.contains(needle)).collect()
    };
    sb.docker_ok(&d, &["run", "--name", "nginx-public", "-d", "--rm", "-p", "80:80", "nginx:alpine"]);
    let dnat = "DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    assert_eq!(with(&state(&sb)["rules"], "--to-destination 172.17.0.2:80").len(), 1);
    let o = sb.run("sh", &["-c", &format!("iptables -t nat -D {dnat}")]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eventually("the observer sees the DNAT rule gone", || {
        let s = state(&sb);
        let left = with(&s["kernel_rules"], "--to-destination 172.17.0.2:80");
        (!left.is_empty()).then(|| left.join(" "))
    });
    // The container stops: its port rules go, the one already gone included.
    sb.docker_ok(&d, &["stop", "nginx-public"]);
    let s = state(&sb);
    assert_eq!(with(&s["rules"], "172.17.0.2"), Vec::<String>::new(), "rules of the stopped container still listed as berth's");
    assert_eq!(with(&s["kernel_rules"], "172.17.0.2"), Vec::<String>::new());
    let o = sb.run("iptables-save", &[]).unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("172.17.0.2"), "the kernel still holds a rule of it");
}

/// Every event berthd has sent so far (its history from the start), read
/// from the page's stream as the page reads it.
fn stream_events(page: &str, token: &str) -> Vec<berth_shared::Envelope> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = format!("ws://{page}/api/events?since=0").into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut out = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(700), ws.next()).await {
            let Ok(text) = m.into_text() else { continue };
            let msgs: Vec<berth_shared::StreamMsg> =
                if text.starts_with('[') { serde_json::from_str(&text).unwrap() } else { vec![serde_json::from_str(&text).unwrap()] };
            for msg in msgs {
                if let berth_shared::StreamMsg::Event(e) = msg {
                    out.push(e);
                }
            }
        }
        out
    })
}

#[test]
fn a_containers_veth_is_reported_once_per_change_and_always_as_a_veth() {
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let page = format!("{}:8080", sb.uplink.node_ip);
    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000", "--page-addr", &page]).unwrap();
    sb.docker_ok(&d, &["run", "--name", "nginx-demo", "-d", "--rm", "nginx:alpine"]);
    std::thread::sleep(Duration::from_millis(1500));
    sb.docker_ok(&d, &["stop", "nginx-demo"]);
    std::thread::sleep(Duration::from_millis(500));
    let events = stream_events(&page, &sb.lab_token());
    let links: Vec<&berth_shared::Event> = events
        .iter()
        .map(|e| &e.event)
        .filter(|e| matches!(e, berth_shared::Event::LinkObserved { name, .. } if name.starts_with("veth")))
        .collect();
    assert!(!links.is_empty(), "the container's veth was never observed");
    let kindless: Vec<String> = links
        .iter()
        .filter(|e| matches!(e, berth_shared::Event::LinkObserved { kind, .. } if kind.is_empty()))
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(kindless, Vec::<String>::new(), "a veth reported with no kind (the timeline's 'link vethX () up')");
    for pair in links.windows(2) {
        assert_ne!(pair[0], pair[1], "the same facts of a link reported twice in a row");
    }
    // A link whose facts repeat, seen through everything in between.
    let mut last: std::collections::HashMap<u32, &berth_shared::Event> = Default::default();
    for e in &links {
        if let berth_shared::Event::LinkObserved { index, .. } = e {
            assert_ne!(last.insert(*index, e), Some(*e), "{e:?} reported again with nothing changed");
        }
    }
    // The host end (a port of docker0) goes once, when the container stops;
    // no port notice of the bridge passes for its removal.
    let host_end = links
        .iter()
        .find_map(|e| match e {
            berth_shared::Event::LinkObserved { name, master: Some(m), .. } if m == "docker0" => Some(name.clone()),
            _ => None,
        })
        .unwrap();
    let gone = events.iter().filter(|e| matches!(&e.event, berth_shared::Event::LinkGone { name, .. } if *name == host_end)).count();
    assert_eq!(gone, 1, "{host_end} goes once, when the container stops");
}
