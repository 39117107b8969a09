//! Healthchecks through the docker CLI (issue 18): `--health-*` and an
//! image's HEALTHCHECK probed on schedule inside the container, State.Health
//! in inspect, `(healthy)` in docker ps, the health filter and events.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::sandbox::{node1, until};

#[test]
fn a_healthcheck_goes_starting_healthy_unhealthy_as_its_probes_say() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--health-cmd",
            "test -f /tmp/ready && echo ready",
            "--health-interval",
            "300ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "10s",
            "alpine",
            "sh",
            "-c",
            "sleep 1.5; touch /tmp/ready; sleep 300",
        ],
    );
    let ps = sb.docker_ok(&d, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.trim().starts_with("web Up") && ps.trim().ends_with("(health: starting)"), "{ps}");
    // Failures in the start period do not count; the first success does.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sb.inspect(&d, "web", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}"), "starting 0");
    until(10, "healthy", || sb.inspect(&d, "web", "{{.State.Health.Status}}") == "healthy");
    let ps = sb.docker_ok(&d, &["ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.trim().ends_with("(healthy)"), "{ps}");
    let log = sb.inspect(&d, "web", "{{range .State.Health.Log}}{{.ExitCode}}:{{.Output}}|{{end}}");
    assert!(log.contains("0:ready"), "{log}");
    // It stops being ready: two failures in a row make it unhealthy.
    sb.docker_ok(&d, &["exec", "web", "rm", "/tmp/ready"]);
    until(10, "unhealthy", || sb.inspect(&d, "web", "{{.State.Health.Status}}") == "unhealthy");
    assert!(sb.inspect(&d, "web", "{{.State.Health.FailingStreak}}").parse::<u32>().unwrap() >= 2);
    assert!(sb.inspect(&d, "web", "{{len .State.Health.Log}}").parse::<u32>().unwrap() <= 5);
    let ps = sb.docker_ok(&d, &["ps", "--filter", "health=unhealthy", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "web");
    // (The event follows the state change by a moment.)
    until(5, "both health_status events", || {
        let events =
            sb.docker_ok(&d, &["events", "--since", "5m", "--until", "0s", "--filter", "container=web", "--format", "{{.Action}}"]);
        ["health_status: healthy", "health_status: unhealthy"].iter().all(|a| events.lines().any(|l| l == *a))
    });

    // A probe that hangs is ended at its timeout and counts as a failure.
    sb.docker_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "hang",
            "--health-cmd",
            "sleep 5",
            "--health-timeout",
            "300ms",
            "--health-interval",
            "300ms",
            "--health-retries",
            "1",
            "alpine",
            "sleep",
            "300",
        ],
    );
    until(10, "a timed-out probe", || sb.inspect(&d, "hang", "{{.State.Health.Status}}") == "unhealthy");
    let out = sb.inspect(&d, "hang", "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}");
    assert!(out.contains("-1 Health check exceeded timeout"), "{out}");

    // An image's HEALTHCHECK, and --no-healthcheck.
    let ctx = sb.dir().join("hc");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nHEALTHCHECK --interval=300ms CMD true\nCMD [\"sleep\", \"300\"]\n").unwrap();
    sb.docker_ok(&d, &["build", "-q", "-t", "hc", &ctx.display().to_string()]);
    sb.docker_ok(&d, &["run", "-d", "--name", "fromimage", "hc"]);
    until(10, "the image's check", || sb.inspect(&d, "fromimage", "{{.State.Health.Status}}") == "healthy");
    sb.docker_ok(&d, &["run", "-d", "--name", "nocheck", "--no-healthcheck", "hc"]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(sb.inspect(&d, "nocheck", "{{json .State.Health}}"), "null");
    let ps = sb.docker_ok(&d, &["ps", "--filter", "name=nocheck", "--format", "{{.Status}}"]);
    assert!(!ps.contains("health"), "{ps}");
    sb.docker_ok(&d, &["rm", "-f", "web", "hang", "fromimage", "nocheck"]);
}
