//! Restart policies through the docker CLI (issue 18): on-failure with its
//! count, always until a user stops it, `docker ps`'s Restarting, and what
//! a daemon that stops or is killed starts again when it comes back.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::sandbox::{node1, out, until, Berthd, Sandbox};

#[test]
fn on_failure_and_always_restart_as_docker_does() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // on-failure:2 — two restarts, then it stays exited with its code.
    sb.docker_ok(&d, &["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "alpine", "sh", "-c", "exit 3"]);
    until(10, "two restarts", || sb.inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        sb.inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}} {{.State.Restarting}}"),
        "2 exited 3 false"
    );
    // A clean exit is not a failure.
    sb.docker_ok(&d, &["run", "-d", "--name", "clean", "--restart", "on-failure", "alpine", "true"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(sb.inspect(&d, "clean", "{{.RestartCount}} {{.State.Status}}"), "0 exited");

    // always: again and again, until a user stops it.
    sb.docker_ok(&d, &["run", "-d", "--name", "loop", "--restart", "always", "alpine", "sh", "-c", "sleep 0.2"]);
    until(10, "restarts", || sb.inspect(&d, "loop", "{{.RestartCount}}").parse::<u32>().unwrap() >= 3);
    // Its back-off makes it wait between runs: docker ps says Restarting.
    until(15, "a Restarting status", || {
        let ps = sb.docker_ok(&d, &["ps", "-a", "--filter", "status=restarting", "--format", "{{.Names}} {{.Status}}"]);
        ps.lines().any(|l| l.starts_with("loop Restarting (0)"))
    });
    let o = sb.docker(&d, &["rm", "loop"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("You cannot remove a restarting container"), "{}", out(&o));
    sb.docker_ok(&d, &["stop", "loop"]);
    let count = sb.inspect(&d, "loop", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sb.inspect(&d, "loop", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {count}"),
        "a stopped container stays stopped"
    );
    // A user's start begins afresh.
    sb.docker_ok(&d, &["update", "--restart", "no", "loop"]);
    sb.docker_ok(&d, &["start", "loop"]);
    assert_eq!(sb.inspect(&d, "loop", "{{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}"), "0 no");

    // Docker's checks, through the API as an SDK sends them.
    let (code, body) = sb.api(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"alpine","Cmd":["true"],"HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("maximum retry count can only be used with 'on-failure'"), "{body}");
    let (code, body) = sb.api(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"alpine","Cmd":["true"],"HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#),
    );
    assert!(code == 400 && body.contains("unknown policy 'sometimes'"), "{code} {body}");
    let (code, body) = sb.api(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"alpine","Cmd":["true"],"HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#),
    );
    assert!(code == 400 && body.contains("AutoRemove"), "{code} {body}");
}

#[test]
fn a_restarted_daemon_starts_what_its_policies_say() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "always", "--restart", "always", "alpine", "sleep", "600"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "unless", "--restart", "unless-stopped", "alpine", "sleep", "600"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "stopped", "--restart", "unless-stopped", "alpine", "sleep", "600"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "plain", "alpine", "sleep", "600"]);
    sb.docker_ok(&d, &["stop", "-t", "0", "stopped"]);
    let state = |sb: &Sandbox, d: &Berthd| {
        ["always", "unless", "stopped", "plain"].map(|n| format!("{n}={}", sb.inspect(d, n, "{{.State.Status}}"))).join(" ")
    };
    // A clean stop of the daemon is not a user's stop.
    assert!(d.terminate().unwrap().success());
    d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    assert_eq!(state(&sb, &d), "always=running unless=running stopped=exited plain=exited");
    // Nor is a daemon killed with SIGKILL: the next one kills the orphans and starts them again.
    sb.docker_ok(&d, &["start", "plain"]);
    d.child.kill().unwrap();
    let _ = d.child.wait();
    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    assert_eq!(state(&sb, &d), "always=running unless=running stopped=exited plain=exited");
    sb.docker_ok(&d, &["rm", "-f", "always", "unless", "stopped", "plain"]);
}
