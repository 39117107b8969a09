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
