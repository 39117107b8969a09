//! Resource limits through the real docker CLI: each container's own
//! cgroups (v1 here) with `--pids-limit`, `--memory`, `--cpus` enforced and
//! shown, `docker stats`, `docker pause`/`unpause`, `docker update`, and the
//! container's read-only view of its cgroups at /sys/fs/cgroup (issues 14
//! and 18).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::sandbox::{node1, out};

const MB: i64 = 1024 * 1024;

#[test]
fn pids_and_memory_limits_are_enforced_and_shown() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);

    // The 51st process cannot start; the container sees its own limit.
    // A subshell forks sleeps until a fork fails (busybox sh then exits);
    // with PID 1 and the subshell, 48 sleeps make 50 processes.
    let script = "read m < /sys/fs/cgroup/pids/pids.max; echo max=$m; \
                  ( i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); echo $i > /tmp/started; done ); \
                  read s < /tmp/started; read c < /sys/fs/cgroup/pids/pids.current; echo started=$s current=$c; exit 0";
    let o = sb.docker(&d, &["run", "--rm", "--pids-limit", "50", "alpine", "sh", "-c", script]).unwrap();
    let text = out(&o);
    assert!(text.contains("max=50"), "{text}");
    // When the fork failed there were 50: the subshell has exited since.
    assert!(text.contains(" current=49"), "{text}");
    assert!(text.contains("can't fork"), "the 51st fork must fail:\n{text}");

    // A container that allocates past --memory is OOM-killed, and says so.
    let o = sb
        .docker(
            &d,
            &[
                "run",
                "--name",
                "hog",
                "--memory",
                "32m",
                "--memory-swap",
                "32m",
                "alpine",
                "sh",
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
            ],
        )
        .unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", out(&o));
    assert!(!out(&o).contains("survived"), "{}", out(&o));
    assert_eq!(sb.inspect(&d, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "true 137");
    assert_eq!(sb.inspect(&d, "hog", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"), format!("{} {}", 32 * MB, 32 * MB));
    // The same container within its limit: OOMKilled is about the last run.
    sb.docker_ok(&d, &["run", "--name", "fits", "--memory", "32m", "alpine", "sh", "-c", "x=$(head -c 1000000 /dev/zero | tr '\\0' a)"]);
    assert_eq!(sb.inspect(&d, "fits", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "false 0");

    // Docker's checks and messages, as 400s.
    for (args, want) in [
        (vec!["--memory", "1m"], "Minimum memory limit allowed is 6MB"),
        (vec!["--memory", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger than memory limit"),
        (vec!["--cpus", "99"], "Range of CPUs is from 0.01 to"),
        (vec!["--cpu-period", "10"], "CPU cfs period can not be less than 1ms"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args.iter());
        a.extend(["alpine", "true"]);
        let o = sb.docker(&d, &a).unwrap();
        assert!(!o.status.success(), "{a:?}: {}", out(&o));
        assert!(out(&o).contains(want), "{a:?}: {}", out(&o));
        assert!(!out(&o).contains("500"), "{a:?}: {}", out(&o));
    }

    // --cpus and --cpu-shares reach the cpu controller, and inspect shows them.
    let cpu = sb.docker_ok(
        &d,
        &[
            "run",
            "--rm",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "alpine",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares",
        ],
    );
    assert_eq!(cpu.split_whitespace().collect::<Vec<_>>(), vec!["50000", "100000", "512"], "{cpu}");

    // The container's cgroups are read-only to it.
    let o =
        sb.docker(&d, &["run", "--rm", "--pids-limit", "50", "alpine", "sh", "-c", "echo 1000 > /sys/fs/cgroup/pids/pids.max"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("Read-only file system"), "{}", out(&o));
}

#[test]
fn stats_pause_and_update_work_on_a_running_container() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let counter = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done";
    sb.docker_ok(&d, &["run", "-d", "--name", "busy", "--memory", "64m", "--pids-limit", "40", "alpine", "sh", "-c", counter]);

    // docker stats --no-stream: usage against the limit, the pids.
    let s = sb.docker_ok(&d, &["stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}|{{.NetIO}}", "busy"]);
    let f: Vec<&str> = s.trim().split('|').collect();
    assert_eq!(f[0], "busy", "{s}");
    assert!(f[1].ends_with("/ 64MiB"), "{s}");
    let pids: u32 = f[2].parse().unwrap();
    assert!((1..=3).contains(&pids), "{s}");
    assert!(f[3].ends_with('%'), "{s}");
    // The API's document, as Docker's: two readings a second apart.
    let (code, body) = sb.api(&d, "GET", "/containers/busy/stats?stream=false", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["name"], "/busy");
    assert_eq!(v["memory_stats"]["limit"], 64 * MB);
    assert_eq!(v["pids_stats"]["limit"], 40);
    assert!(
        v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > v["precpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap(),
        "{v}"
    );
    assert!(v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0, "{v}");
    assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{v}");
    // A stream sends one document a second.
    let sock = d.socket.display().to_string();
    let o = sb.run("curl", &["-sS", "--max-time", "2.5", "--unix-socket", &sock, "http://berth/v1.41/containers/busy/stats"]).unwrap();
    let docs = String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with('{')).count();
    assert!((2..=4).contains(&docs), "{docs} documents in 2.5 s");

    // Pause freezes every process; the counter stands still.
    let merged = sb.inspect(&d, "busy", "{{.GraphDriver.Data.MergedDir}}");
    // (The overlay is mounted in the sandbox's mount namespace.)
    // (The loop rewrites the file: a read between its truncation and its
    // write finds it empty, and is taken again.)
    let n = || {
        for _ in 0..50 {
            let o = sb.run("cat", &[&format!("{merged}/tmp/n")]).unwrap();
            if let Ok(v) = String::from_utf8_lossy(&o.stdout).trim().parse::<u64>() {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        0
    };
    sb.docker_ok(&d, &["pause", "busy"]);
    assert_eq!(sb.inspect(&d, "busy", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"), "paused true true");
    let ps = sb.docker_ok(&d, &["ps", "--filter", "status=paused", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.trim().starts_with("busy Up") && ps.trim().ends_with("(Paused)"), "{ps}");
    let info =
        sb.docker_ok(&d, &["info", "-f", "{{.MemoryLimit}} {{.PidsLimit}} {{.CPUShares}} {{.ContainersPaused}} {{.ContainersRunning}}"]);
    assert_eq!(info.trim(), "true true true 1 0");
    let before = n();
    assert!(before > 0, "the counter ran before the pause");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(n(), before, "a paused container's processes do not run");
    for (args, want) in [
        (vec!["pause", "busy"], "is already paused"),
        (vec!["exec", "busy", "true"], "is paused, unpause the container before exec"),
        (vec!["kill", "-s", "TERM", "busy"], "is paused. Unpause the container before stopping or killing"),
    ] {
        let o = sb.docker(&d, &args).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "{args:?}: {}", out(&o));
    }
    sb.docker_ok(&d, &["unpause", "busy"]);
    berth_e2e::sandbox::until(5, "the unpaused counter to go on", || n() > before);
    let o = sb.docker(&d, &["unpause", "busy"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("is not paused"), "{}", out(&o));

    // docker update: stored, shown, and written into the running cgroups.
    sb.docker_ok(&d, &["update", "--memory", "128m", "--memory-swap", "256m", "--pids-limit", "20", "--cpus", "1", "busy"]);
    assert_eq!(
        sb.inspect(&d, "busy", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}"),
        format!("{} 20 1000000000", 128 * MB)
    );
    let seen = sb.docker_ok(
        &d,
        &[
            "exec",
            "busy",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ],
    );
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), vec![(128 * MB).to_string().as_str(), "20", "100000"], "{seen}");
    for (args, want) in [
        (vec!["update", "--memory", "1m", "busy"], "Minimum memory limit allowed is 6MB"),
        (vec!["update", "--memory", "512m", "busy"], "Memory limit should be smaller than already set memoryswap limit"),
        (vec!["update", "--memory", "64m", "nonesuch"], "No such container"),
    ] {
        let o = sb.docker(&d, &args).unwrap();
        assert!(!o.status.success() && out(&o).contains(want), "{args:?}: {}", out(&o));
    }
    // Unchanged by the refused updates.
    assert_eq!(sb.inspect(&d, "busy", "{{.HostConfig.Memory}}"), (128 * MB).to_string());

    // A paused container stops (killed: it cannot take its stop signal).
    sb.docker_ok(&d, &["pause", "busy"]);
    let t = std::time::Instant::now();
    sb.docker_ok(&d, &["stop", "busy"]);
    assert!(t.elapsed() < Duration::from_secs(5), "stop of a paused container took {:?}", t.elapsed());
    assert_eq!(sb.inspect(&d, "busy", "{{.State.Status}} {{.State.Paused}}"), "exited false");
    // A stopped container's stats are zeros, with its name.
    let (code, body) = sb.api(&d, "GET", "/containers/busy/stats?stream=false", None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!((v["name"].as_str(), v["read"].as_str()), (Some("/busy"), Some("0001-01-01T00:00:00Z")));
    // Its new limits hold at the next start.
    sb.docker_ok(&d, &["start", "busy"]);
    let pm = sb.docker_ok(&d, &["exec", "busy", "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert_eq!(pm.trim(), "20");
    sb.docker_ok(&d, &["rm", "-f", "busy"]);
    // The CLI sends `--until 0s` as a whole second, so (on Docker too) the
    // events of the current second are not listed yet: ask in the next one.
    std::thread::sleep(Duration::from_millis(1100));
    let events = sb.docker_ok(&d, &["events", "--since", "10m", "--until", "0s", "--filter", "container=busy", "--format", "{{.Action}}"]);
    for a in ["pause", "unpause"] {
        assert!(events.lines().any(|l| l == a), "no {a} event:\n{events}");
    }
}
