//! Container logs: a flood of output never stalls the daemon, the json-file
//! driver rotates as `--log-opt max-size/max-file` ask, `--tail` reads from
//! the end, and log drivers berth lacks are refused.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};

/// One raw HTTP/1.0 GET on berthd's socket: status line and body.
fn get(d: &Berthd, path: &str) -> (String, Vec<u8>) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").map_or(buf.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&buf[..split]).lines().next().unwrap_or("").to_string();
    (head, buf[split..].to_vec())
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as f64
}

/// berthd's own pid (the child may be a wrapper that exec'd it).
fn berthd_pid(d: &Berthd) -> u32 {
    let pid = d.child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "berthd", "the sandbox's child is not berthd itself");
    pid
}

fn log_path(sb: &Sandbox, d: &Berthd, name: &str) -> String {
    sb.docker_ok(d, &["inspect", "-f", "{{.LogPath}}", name]).trim().to_string()
}

fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Times `GET /version` ten times while it runs; returns the slowest.
fn slowest_version(d: &Berthd) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let (status, _) = get(d, "/version");
        worst = worst.max(t.elapsed());
        assert!(status.contains("200"), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    worst
}

#[test]
fn containers_flooding_output_without_newlines_leave_the_daemon_responsive() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let pid = berthd_pid(&d);
    let cpu0 = cpu_seconds(pid);
    // Two pipes and one TTY, each 64 MB on one line.
    let flood = "head -c 64000000 /dev/zero | tr '\\0' a; sleep 600";
    sb.docker_ok(&d, &["run", "-d", "--name", "flood1", "alpine", "sh", "-c", flood]);
    sb.docker_ok(&d, &["run", "-d", "--name", "flood2", "alpine", "sh", "-c", flood]);
    sb.docker_ok(&d, &["run", "-d", "-t", "--name", "flood3", "alpine", "sh", "-c", flood]);
    std::thread::sleep(Duration::from_millis(300));
    let worst = slowest_version(&d);
    eprintln!("slowest GET /version during the floods: {worst:?}");
    assert!(worst < Duration::from_millis(100), "GET /version took {worst:?} while containers flooded their output");
    // All 3 × 64 MB reach the logs, in 16 KiB entries, without a runaway CPU.
    let paths: Vec<String> = ["flood1", "flood2", "flood3"].iter().map(|n| log_path(&sb, &d, n)).collect();
    wait_for(Duration::from_secs(120), "the floods to be logged", || {
        paths.iter().all(|p| std::fs::metadata(p).map(|m| m.len() > 64_000_000).unwrap_or(false))
    });
    let cpu = cpu_seconds(pid) - cpu0;
    eprintln!("berthd CPU for 192 MB of output: {cpu:.2} s");
    assert!(cpu < 30.0, "berthd used {cpu:.1} s of CPU for 192 MB of output");
    for name in ["flood1", "flood3"] {
        let (status, body) = get(&d, &format!("/containers/{name}/logs?stdout=1&tail=1"));
        assert!(status.contains("200"), "{status}");
        // A multiplexed frame (8-byte header) or the raw TTY bytes: one 16 KiB piece.
        let payload = if name == "flood1" { &body[8..] } else { &body[..] };
        assert!(payload.len() <= 16 * 1024 && payload.iter().all(|b| *b == b'a'), "{name}: {} bytes", payload.len());
    }
    let worst = slowest_version(&d);
    assert!(worst < Duration::from_millis(100), "GET /version took {worst:?} after the floods");
    for n in ["flood1", "flood2", "flood3"] {
        sb.docker_ok(&d, &["rm", "-f", n]);
    }
}

#[test]
fn json_file_rotates_at_max_size_and_keeps_max_file_files() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let script = "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done";
    let id = sb.docker_ok(
        &d,
        &["run", "-d", "--name", "rot", "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "alpine", "sh", "-c", script],
    );
    let id = id.trim();
    let code = sb.docker_ok(&d, &["wait", "rot"]);
    assert_eq!(code.trim(), "0");
    let lc = sb.docker_ok(&d, &["inspect", "-f", "{{json .HostConfig.LogConfig}}", "rot"]);
    assert_eq!(lc.trim(), r#"{"Type":"json-file","Config":{"max-file":"3","max-size":"10k"}}"#);
    let log = log_path(&sb, &d, "rot");
    assert!(log.ends_with(&format!("{id}-json.log")), "{log}");
    for f in [log.clone(), format!("{log}.1"), format!("{log}.2")] {
        let len = std::fs::metadata(&f).unwrap_or_else(|e| panic!("{f}: {e}")).len();
        // Rotated once it reached 10 kB: at most one entry past it.
        assert!(len < 10_000 + 200, "{f}: {len} bytes");
    }
    assert!(!Path::new(&format!("{log}.3")).exists(), "a fourth file was kept");
    // The newest lines, read from the end (and across files).
    let tail = sb.docker_ok(&d, &["logs", "--tail", "2", "rot"]);
    assert_eq!(tail, "line 2998\nline 2999\n");
    let all = sb.docker_ok(&d, &["logs", "rot"]);
    let nums: Vec<u32> = all.lines().map(|l| l[5..].parse().unwrap()).collect();
    assert_eq!(*nums.last().unwrap(), 2999);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "lines out of order or missing across files");
    assert!(nums.len() < 3000, "old files beyond max-file were kept ({} lines)", nums.len());
}

#[test]
fn log_drivers_berth_lacks_are_refused_and_none_keeps_nothing() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let o = sb.docker(&d, &["run", "--log-driver", "syslog", "alpine", "true"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("logger: no log driver named 'syslog' is registered"), "{}", out(&o));
    let o = sb.docker(&d, &["create", "--log-opt", "foo=bar", "alpine"]).unwrap();
    assert!(out(&o).contains("unknown log opt 'foo' for json-file log driver"), "{}", out(&o));
    let o = sb.docker(&d, &["create", "--log-opt", "max-file=0", "alpine"]).unwrap();
    assert!(out(&o).contains("max-file cannot be less than 1"), "{}", out(&o));
    let (status, _) = get(&d, "/containers/json?all=1");
    assert!(status.contains("200"));
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "", "a refused container was created");
    // "none": the output still reaches an attached client; docker logs says why it has nothing.
    let o = sb.docker(&d, &["run", "--name", "quiet", "--log-driver", "none", "alpine", "echo", "hi"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n", "{}", out(&o));
    let o = sb.docker(&d, &["logs", "quiet"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("configured logging driver does not support reading"), "{}", out(&o));
    let lc = sb.docker_ok(&d, &["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "quiet"]);
    assert_eq!(lc.trim(), "none");
}

#[test]
fn tail_one_on_a_large_log_reads_from_the_end() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // ~1.2 M short lines: a json log of well over 100 MB.
    // (Not `yes | head`: berth's containers start with SIGPIPE ignored, and
    // busybox's yes then never stops.)
    let script = "awk 'BEGIN { for (i = 0; i < 1200000; i++) print \"0123456789012345678901234567890123456789012345678901234567890123456789\" }'; echo the-end";
    sb.docker_ok(&d, &["run", "-d", "--name", "big", "alpine", "sh", "-c", script]);
    let code = sb.docker(&d, &["wait", "big"]).unwrap();
    assert!(code.status.success(), "{}", out(&code));
    let size = std::fs::metadata(log_path(&sb, &d, "big")).unwrap().len();
    assert!(size > 100_000_000, "log only {size} bytes");
    let t = Instant::now();
    let (status, body) = get(&d, "/containers/big/logs?stdout=1&stderr=1&tail=1");
    let took = t.elapsed();
    eprintln!("docker logs --tail 1 on a {} MB log: {took:?}", size / 1_000_000);
    assert!(status.contains("200"), "{status}");
    assert_eq!(&body[8..], b"the-end\n");
    assert!(took < Duration::from_millis(300), "--tail 1 took {took:?} on a {size}-byte log");
}
