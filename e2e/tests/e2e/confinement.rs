//! Containers confined as Docker confines them: the device allowlist (the
//! devices cgroup), capabilities, --privileged, --read-only, --ulimit,
//! --device, and HostConfig flags berth does not honour refused, never
//! accepted and ignored.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};

fn alpine() -> (Sandbox, Berthd) {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    (sb, d)
}

/// `docker run --rm [flags] alpine sh -c script`: stdout and stderr together.
fn run_sh(sb: &Sandbox, d: &Berthd, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["alpine", "sh", "-c", script]);
    let o = sb.docker(d, &args).unwrap();
    out(&o)
}

/// The devices-controller cgroup a process is in, as a host path.
fn devices_cgroup_of(pid: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == "devices").then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no devices cgroup in:\n{text}"));
    std::path::Path::new("/sys/fs/cgroup/devices").join(rel.trim_start_matches('/'))
}

#[test]
fn host_devices_outside_dockers_allowlist_cannot_be_opened_even_after_mknod() {
    let (sb, d) = alpine();
    let script = "mknod /tmp/kvm c 10 232 && echo made-kvm; cat /tmp/kvm; \
                  mknod /tmp/loop b 7 0 && echo made-loop; head -c1 /tmp/loop >/dev/null; echo loop=$?; \
                  mknod /tmp/tty9 c 4 9 && head -c0 /tmp/tty9; \
                  echo x > /dev/null && echo null-ok; \
                  test $(head -c4 /dev/zero | wc -c) = 4 && echo zero-ok; \
                  test $(head -c4 /dev/urandom | wc -c) = 4 && echo urandom-ok; \
                  mknod /tmp/null2 c 1 3 && echo y > /tmp/null2 && echo null2-ok";
    let o = run_sh(&sb, &d, &[], script);
    // CAP_MKNOD is kept, as Docker keeps it: the cgroup makes it harmless.
    assert!(o.contains("made-kvm") && o.contains("made-loop"), "{o}");
    assert!(o.contains("cat: can't open '/tmp/kvm': Operation not permitted"), "{o}");
    assert!(o.contains("head: /tmp/loop: Operation not permitted") && o.contains("loop=1"), "{o}");
    assert!(o.contains("/tmp/tty9: Operation not permitted"), "{o}");
    for ok in ["null-ok", "zero-ok", "urandom-ok", "null2-ok"] {
        assert!(o.contains(ok), "{ok} missing:\n{o}");
    }
    // The terminal's devices: /dev/tty (5:0) and the pts (136:*).
    let o = sb.docker(&d, &["run", "--rm", "-t", "alpine", "sh", "-c", "echo a > /dev/tty && echo b > $(tty) && echo tty-ok"]).unwrap();
    assert!(out(&o).contains("tty-ok"), "{}", out(&o));

    // A process started with docker exec is in the same cgroup.
    sb.docker_ok(&d, &["run", "-d", "--name", "held", "alpine", "sleep", "60"]);
    let o = sb.docker(&d, &["exec", "held", "sh", "-c", "mknod /tmp/k c 10 232; cat /tmp/k"]).unwrap();
    assert!(out(&o).contains("Operation not permitted"), "{}", out(&o));
    // The cgroup: Docker's default rules, none wider, under a parent of this daemon's own.
    let pid = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Pid}}", "held"]);
    let id = sb.docker_ok(&d, &["inspect", "-f", "{{.Id}}", "held"]);
    let cg = devices_cgroup_of(pid.trim());
    assert!(cg.ends_with(id.trim()), "{}", cg.display());
    assert!(cg.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with("berth"), "{}", cg.display());
    let list = std::fs::read_to_string(cg.join("devices.list")).unwrap();
    for rule in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    ] {
        assert!(list.lines().any(|l| l == rule), "{rule} missing:\n{list}");
    }
    assert!(!list.contains("a *:*"), "{list}");
    // Removed with the container: no cgroup outlives it.
    sb.docker_ok(&d, &["rm", "-f", "held"]);
    let start = std::time::Instant::now();
    while cg.exists() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!cg.exists(), "{} left after docker rm", cg.display());
    // And the daemon's parent goes with the daemon.
    let parent = cg.parent().unwrap().to_path_buf();
    let mut d = d;
    d.terminate().unwrap();
    assert!(!parent.exists(), "{} left after berthd exited", parent.display());
}

#[test]
fn cap_add_and_cap_drop_change_the_capability_sets_as_dockers_do() {
    let (sb, d) = alpine();
    let caps = |flags: &[&str]| {
        let o = run_sh(&sb, &d, flags, "grep -E '^Cap(Eff|Bnd)' /proc/self/status");
        let get = |k: &str| o.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("{k} missing: {o}")).to_string();
        let eff = get("CapEff:\t");
        assert_eq!(eff, get("CapBnd:\t"), "{o}");
        eff
    };
    assert_eq!(caps(&[]), "00000000a80425fb");
    assert_eq!(caps(&["--cap-drop", "ALL"]), "0000000000000000");
    assert_eq!(caps(&["--cap-drop", "all", "--cap-add", "chown"]), "0000000000000001");
    assert_eq!(caps(&["--cap-drop", "CAP_CHOWN"]), "00000000a80425fa");
    assert_eq!(caps(&["--cap-add", "NET_ADMIN", "--cap-add", "cap_sys_admin"]), "00000000a82435fb");
    let o = run_sh(&sb, &d, &["--cap-drop", "ALL"], "chown 1 /tmp; echo rc=$?");
    assert!(o.contains("Operation not permitted") && o.contains("rc=1"), "{o}");
    // exec'd processes get the container's set too.
    sb.docker_ok(&d, &["run", "-d", "--name", "nocaps", "--cap-drop", "ALL", "alpine", "sleep", "60"]);
    let o = sb.docker_ok(&d, &["exec", "nocaps", "grep", "CapEff", "/proc/self/status"]);
    assert!(o.contains("0000000000000000"), "{o}");
    let o = sb.docker(&d, &["exec", "--privileged", "nocaps", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("berth does not support docker exec --privileged yet"), "{}", out(&o));
    // An unknown capability is the client's mistake.
    let o = sb.docker(&d, &["run", "--rm", "--cap-add", "NOT_A_CAP", "alpine", "true"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("unknown capability: \"CAP_NOT_A_CAP\""), "{}", out(&o));
}

#[test]
fn privileged_gets_every_capability_every_device_and_an_unmasked_writable_sys() {
    let (sb, d) = alpine();
    // Every capability berthd itself may hold: the bounding set it runs with
    // (this test's, as berthd runs under the same supervisor).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status.lines().find_map(|l| l.strip_prefix("CapBnd:\t")).unwrap().to_string();
    let script = "grep CapEff /proc/self/status; \
                  test -c /dev/kvm && echo has-kvm; test -b /dev/loop0 && echo has-loop0; \
                  head -c1 /dev/loop0 >/dev/null && echo loop-read; \
                  mknod /tmp/kvm c 10 232 && cat /tmp/kvm 2>&1 | grep -c 'not permitted'; \
                  echo timer_list=$(wc -c < /proc/timer_list); \
                  grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1";
    let o = run_sh(&sb, &d, &["--privileged"], script);
    assert!(o.contains(&format!("CapEff:\t{all}")), "{all}: {o}");
    for want in ["has-kvm", "has-loop0", "loop-read"] {
        assert!(o.contains(want), "{want} missing:\n{o}");
    }
    assert!(o.lines().any(|l| l == "0"), "kvm opens: {o}");
    assert!(!o.contains("timer_list=0"), "/proc/timer_list is not masked: {o}");
    assert!(o.lines().any(|l| l == "rw"), "/sys is read-write: {o}");
}

#[test]
fn read_only_rootfs_refuses_writes_but_dev_volumes_and_tmpfs_work() {
    let (sb, d) = alpine();
    let script = "touch /x; touch /tmp/x; echo >> /etc/hosts; \
                  touch /dev/shm/x && echo shm-ok; touch /data/x && echo vol-ok; touch /scratch/x && echo tmpfs-ok; \
                  echo x > /dev/null && echo null-ok";
    let o = run_sh(&sb, &d, &["--read-only", "-v", "roVol:/data", "--tmpfs", "/scratch:size=1m"], script);
    assert!(o.contains("touch: /x: Read-only file system"), "{o}");
    // As Docker: /tmp is part of the root, read-only unless a tmpfs is given.
    assert!(o.contains("touch: /tmp/x: Read-only file system"), "{o}");
    // /etc/hosts (and resolv.conf, hostname) follow the root, as Docker's do.
    assert!(o.contains("/etc/hosts: Read-only file system") || o.contains("can't create /etc/hosts: Read-only file system"), "{o}");
    for ok in ["shm-ok", "vol-ok", "tmpfs-ok", "null-ok"] {
        assert!(o.contains(ok), "{ok} missing:\n{o}");
    }
    // A --tmpfs mount has its size and Docker's default flags.
    let o = run_sh(&sb, &d, &["--tmpfs", "/scratch:size=1m"], "grep ' /scratch ' /proc/mounts");
    assert!(o.contains("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec") && o.contains("size=1024k"), "{o}");
    // Without --read-only the root stays writable.
    let o = run_sh(&sb, &d, &[], "touch /x && echo rw-ok");
    assert!(o.contains("rw-ok"), "{o}");
}

#[test]
fn ulimits_are_set_before_the_command_runs() {
    let (sb, d) = alpine();
    let o = run_sh(&sb, &d, &["--ulimit", "nofile=100:200", "--ulimit", "core=0"], "ulimit -n; ulimit -Hn; ulimit -c");
    assert_eq!(o.lines().collect::<Vec<_>>(), vec!["100", "200", "0"], "{o}");
    let o = sb.docker(&d, &["run", "--rm", "--ulimit", "nofile=300:200", "alpine", "true"]).unwrap();
    assert!(!o.status.success(), "{}", out(&o));
}

#[test]
fn device_flag_and_device_cgroup_rules_allow_exactly_what_they_name() {
    let (sb, d) = alpine();
    let script = "ls -l /dev/xloop | cut -c1; head -c1 /dev/xloop >/dev/null && echo read-ok; \
                  echo x > /dev/xloop || echo write-refused";
    let o = run_sh(&sb, &d, &["--device", "/dev/loop0:/dev/xloop:r"], script);
    assert!(o.lines().next() == Some("b"), "{o}");
    assert!(o.contains("read-ok"), "{o}");
    assert!(o.contains("Operation not permitted") && o.contains("write-refused"), "{o}");
    let o =
        run_sh(&sb, &d, &["--device-cgroup-rule", "c 10:232 rwm"], "mknod /tmp/kvm c 10 232; cat /tmp/kvm 2>&1 | grep -c 'not permitted'");
    assert_eq!(o.trim(), "0", "{o}");
    let o = sb.docker(&d, &["run", "--rm", "--device", "/dev/nonexistent", "alpine", "true"]).unwrap();
    assert!(!o.status.success());
    assert!(out(&o).contains("/dev/nonexistent"), "{}", out(&o));
}

#[test]
fn flags_berth_does_not_honour_are_refused_by_name_not_ignored() {
    let (sb, d) = alpine();
    for (flags, name) in [
        (&["--sysctl", "net.ipv4.ip_forward=1"][..], "--sysctl"),
        (&["--blkio-weight", "300"][..], "--blkio-weight"),
        (&["--cpuset-cpus", "0"][..], "--cpuset-cpus"),
        (&["--cgroup-parent", "elsewhere"][..], "--cgroup-parent"),
        (&["--security-opt", "apparmor=docker-default"][..], "--security-opt"),
        (&["--volumes-from", "other"][..], "--volumes-from"),
        (&["--pid", "host"][..], "--pid"),
        (&["--init"][..], "--init"),
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["alpine", "true"]);
        let o = sb.docker(&d, &args).unwrap();
        assert!(!o.status.success(), "{flags:?} accepted: {}", out(&o));
        let text = out(&o);
        assert!(text.contains(&format!("berth does not support {name}")), "{flags:?}: {text}");
    }
    // Nothing was created by the refused requests.
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]), "");
    // What berth does is accepted and truthful.
    let o = run_sh(&sb, &d, &["--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges"], "echo fine");
    assert!(o.contains("fine"), "{o}");
    let info = sb.docker_ok(&d, &["info", "--format", "{{.CgroupDriver}} {{.CgroupVersion}} {{json .SecurityOptions}}"]);
    assert_eq!(info.trim(), "cgroupfs 1 [\"name=seccomp,profile=builtin\"]", "{info}");
}

/// Docker's default seccomp profile: namespaces, mounts and the kernel
/// keyring are out of reach even where capabilities would not stop them
/// (a user namespace needs none); `seccomp=unconfined`, `--privileged` and
/// CAP_SYS_ADMIN lift what they lift in Docker; execs get the same filter.
#[test]
fn the_default_seccomp_profile_denies_what_dockers_denies() {
    let (sb, d) = alpine();
    let probe = "unshare -U true 2>&1 && echo userns=yes || echo userns=no; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t' | tr '\\n' ' '";
    let o = run_sh(&sb, &d, &[], probe);
    assert!(o.contains("userns=no") && o.contains("Operation not permitted") && o.contains("Seccomp:2"), "{o}");
    let o = run_sh(&sb, &d, &["--security-opt", "seccomp=unconfined"], probe);
    assert!(o.contains("userns=yes") && o.contains("Seccomp:0"), "{o}");
    let o = run_sh(&sb, &d, &["--privileged"], probe);
    assert!(o.contains("userns=yes") && o.contains("Seccomp:0"), "{o}");
    let o = run_sh(&sb, &d, &["--cap-add", "SYS_ADMIN"], probe);
    assert!(o.contains("userns=yes") && o.contains("Seccomp:2"), "CAP_SYS_ADMIN unlocks unshare: {o}");
    // no-new-privileges is the client's choice, as in Docker.
    let o = run_sh(&sb, &d, &["--security-opt", "no-new-privileges"], probe);
    assert!(o.contains("NoNewPrivs:1") && o.contains("Seccomp:2"), "{o}");
    // Threads (clone3 answers ENOSYS, clone without namespace flags works)
    // and the lab's tools run under the filter.
    let o = run_sh(&sb, &d, &[], "wget --help >/dev/null 2>&1; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping=ok");
    assert!(o.contains("ping=ok"), "{o}");
    // A docker exec gets the container's filter.
    sb.docker_ok(&d, &["run", "-d", "--name", "filtered", "alpine", "sleep", "300"]);
    let o = sb.docker_ok(&d, &["exec", "filtered", "sh", "-c", "unshare -U true 2>&1; grep Seccomp: /proc/self/status"]);
    assert!(o.contains("Operation not permitted") && o.contains("Seccomp:\t2"), "{o}");
    sb.docker_ok(&d, &["rm", "-f", "filtered"]);
    // A profile file is refused by name, not ignored.
    // (The CLI reads the file and sends its contents.)
    let profile = sb.dir().join("profile.json");
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = sb.docker(&d, &["run", "--rm", "--security-opt", &opt, "alpine", "true"]).unwrap();
    assert!(!o.status.success() && out(&o).contains("custom seccomp profile"), "{}", out(&o));
}

#[test]
fn a_killed_daemons_container_cgroups_are_swept_by_the_sandbox_and_the_next_daemon() {
    let (mut sb, mut d) = alpine();
    sb.docker_ok(&d, &["run", "-d", "--name", "orphan", "alpine", "sleep", "60"]);
    let pid = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Pid}}", "orphan"]);
    let cg = devices_cgroup_of(pid.trim());
    assert!(cg.is_dir());
    // berthd dies without its shutdown, and so does the container: its
    // cgroup stays behind, empty.
    let kill = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    kill(d.child.id() as i32);
    let _ = d.child.wait();
    kill(pid.trim().parse().unwrap());
    let start = std::time::Instant::now();
    while std::fs::read_to_string(cg.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(cg.is_dir(), "left by the killed daemon");
    // The next berthd on the same exec-root sweeps its empty leftovers.
    let d2 = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    assert!(!cg.exists(), "{} not swept at start", cg.display());
    // And whatever a killed daemon leaves, the sandbox's cleanup removes.
    sb.docker_ok(&d2, &["start", "orphan"]);
    let parent = cg.parent().unwrap().to_path_buf();
    sb.cleanup().unwrap();
    assert!(!parent.exists(), "{} left after cleanup", parent.display());
}

/// Starts berthd in a new node1 as `Sandbox::start_berthd` does, with one
/// more environment variable.
fn node1_with_env(key: &str, value: &str) -> (Sandbox, Berthd) {
    use std::process::Stdio;
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let root = sb.dir().join("berth");
    let socket = root.join("docker.sock");
    let log = sb.dir().join("berthd.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = sb
        .command(berth_e2e::berthd_bin())
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("run"))
        .args(["--page-addr", "127.0.0.1:8080", "--registry-mirror", "http://127.0.0.1:5000"])
        .env("BERTH_LOG", "debug")
        .env("HOME", sb.dir())
        .env(key, value)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let d = Berthd { child, socket, log };
    let start = std::time::Instant::now();
    while !sb.docker(&d, &["version"]).is_ok_and(|o| o.status.success()) {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "berthd did not come up:\n{}", d.log_text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (sb, d)
}

#[test]
fn on_cgroup_v2_a_bpf_device_program_enforces_the_same_allowlist() {
    let (sb, mut d) = node1_with_env("BERTH_DEVICE_CGROUP", "bpf");
    sb.docker_ok(&d, &["pull", "alpine"]);
    let script = "mknod /tmp/kvm c 10 232 && echo made-kvm; cat /tmp/kvm; \
                  mknod /tmp/loop b 7 0; head -c1 /tmp/loop >/dev/null; \
                  echo x > /dev/null && head -c1 /dev/urandom >/dev/null && echo defaults-ok";
    let o = run_sh(&sb, &d, &[], script);
    assert!(o.contains("made-kvm"), "{o}");
    assert!(o.contains("cat: can't open '/tmp/kvm': Operation not permitted"), "{o}");
    assert!(o.contains("head: /tmp/loop: Operation not permitted"), "{o}");
    assert!(o.contains("defaults-ok"), "{o}");
    // --device and --privileged through the program too.
    let o =
        run_sh(&sb, &d, &["--device", "/dev/loop0:/dev/xloop:r"], "head -c1 /dev/xloop >/dev/null && echo read-ok; echo x > /dev/xloop");
    assert!(o.contains("read-ok") && o.contains("Operation not permitted"), "{o}");
    let o = run_sh(&sb, &d, &["--privileged"], "head -c1 /dev/loop0 >/dev/null && echo priv-ok");
    assert!(o.contains("priv-ok"), "{o}");
    // The container's v2 cgroup: under this daemon's parent, gone with it.
    sb.docker_ok(&d, &["run", "-d", "--name", "held", "alpine", "sleep", "60"]);
    let pid = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Pid}}", "held"]);
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_string();
    let cg = std::path::Path::new(berth_e2e::sandbox::CGROUP_ROOT).join(rel.trim_start_matches('/'));
    assert!(cg.is_dir() && cg.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with("berth-"), "{}", cg.display());
    let o = sb.docker(&d, &["exec", "held", "sh", "-c", "mknod /tmp/k c 10 232; cat /tmp/k"]).unwrap();
    assert!(out(&o).contains("Operation not permitted"), "{}", out(&o));
    sb.docker_ok(&d, &["rm", "-f", "held"]);
    assert!(!cg.exists(), "{} left after docker rm", cg.display());
    let parent = cg.parent().unwrap().to_path_buf();
    d.terminate().unwrap();
    assert!(!parent.exists(), "{} left after berthd exited", parent.display());
}
