//! The sandbox and the leak check, tested against the real kernel (root only).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::path::Path;
use std::process::Stdio;

use berth_e2e::leak::Snapshot;
use berth_e2e::sandbox::Sandbox;

#[test]
fn the_leak_check_catches_a_link_leaked_by_a_child_of_the_sandbox() {
    let sb = Sandbox::new().unwrap();
    let before = Snapshot::take();
    let leaked = format!("berthleak{}", std::process::id());
    // A process inside node1 reaches back into the root namespace and adds a
    // link there: exactly the kind of leak a buggy test could cause.
    let root_net = format!("--net=/proc/{}/ns/net", std::process::id());
    let peer = format!("{leaked}p");
    let out = sb.run("nsenter", &[&root_net, "ip", "link", "add", &leaked, "type", "veth", "peer", "name", &peer]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let leaks = Snapshot::take().leaks_since(&before, None);
    let caught = leaks.added.iter().any(|l| l == &format!("link {leaked} veth"));
    // Undo the deliberate leak before asserting, so a failure leaves nothing.
    let _ = std::process::Command::new("ip").args(["link", "del", &leaked]).status();
    assert!(caught, "the leak check missed link {leaked}:\n{leaks}");
    let after = Snapshot::take().leaks_since(&before, None);
    assert!(!after.added.iter().any(|l| l.contains(&leaked)), "{after}");
}

#[test]
fn node1_has_its_own_loopback_and_an_uplink_to_the_root_namespace() {
    let sb = Sandbox::new().unwrap();
    let out = sb.run("ip", &["-o", "-4", "addr", "show"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lo    inet 127.0.0.1/8"), "{text}");
    assert!(text.contains(&format!("eth0    inet {}/30", sb.uplink.node_ip)), "{text}");
    // The root namespace reaches node1 over the uplink, and nothing else.
    let p = std::process::Command::new("ping").args(["-c", "1", "-W", "2", &sb.uplink.node_ip]).output().unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stdout));
    let routes = sb.run("ip", &["route", "show", "default"]).unwrap();
    assert!(routes.stdout.is_empty(), "node1 must have no default route out");
}

#[test]
fn dropping_a_sandbox_during_a_panic_removes_everything_it_made() {
    let made = std::thread::spawn(|| {
        let sb = Sandbox::new().unwrap();
        let names = (sb.name.clone(), sb.uplink.host_if.clone(), sb.dir().to_path_buf());
        // A process that double-forks away, a link and an iptables rule inside node1.
        sb.command("sh")
            .args(["-c", "(sleep 300 &) ; ip link add berthtest type veth peer name berthtestp; iptables -N BERTHTEST"])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        let pids = sb.pids();
        assert!(pids.len() >= 2, "holder and sleep: {pids:?}");
        std::panic::panic_any((names, pids));
    })
    .join();
    let payload = made.expect_err("the thread panicked on purpose");
    let ((netns, host_if, dir), pids) = *payload.downcast::<((String, String, std::path::PathBuf), Vec<i32>)>().unwrap();
    assert!(!Path::new("/run/netns").join(&netns).exists(), "netns {netns} left");
    assert!(!Path::new("/sys/class/net").join(&host_if).exists(), "uplink {host_if} left");
    assert!(!dir.exists(), "dir {} left", dir.display());
    for p in pids {
        // A killed orphan may linger as a zombie until init reaps it: that is dead.
        let state = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let alive = state.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
        assert!(!alive, "process {p} left: {state}");
    }
}
