//! Containers with the real docker CLI against berthd in the sandbox.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};

#[test]
fn docker_run_hello_world_pulls_and_prints_the_greeting() {
    let (sb, d) = node1().unwrap();
    let o = sb.docker(&d, &["run", "hello-world"]).unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}\n{}", d.log_text());
    assert!(text.contains("Unable to find image 'hello-world:latest' locally"), "{text}");
    assert!(text.contains("Hello from Docker!"), "{text}");
    let ps = sb.docker_ok(&d, &["ps", "-a", "--format", "{{.Image}} {{.Status}}"]);
    assert!(ps.starts_with("hello-world Exited (0)"), "{ps}");
    let info = sb.docker_ok(&d, &["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}}"]);
    assert_eq!(info.trim(), "1 0 1 1");
    // Every step was an event, in Docker's format and order at /events:
    // the CLI attaches before it starts the container, the network is
    // connected before the start and released after the die.
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let ev = sb.docker_ok(&d, &["events", "--since", "0", "--until", &until, "--format", "{{.Type}} {{.Action}}"]);
    assert_eq!(
        ev.lines().collect::<Vec<_>>(),
        vec![
            "image pull",
            "container create",
            "container attach",
            "network connect",
            "container start",
            "container die",
            "network disconnect"
        ],
        "{ev}"
    );
}

#[test]
fn alpine_without_a_tty_exits_at_once_with_its_status_and_streams_apart() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let o = sb.docker(&d, &["run", "alpine"]).unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let o = sb
        .docker(
            &d,
            &[
                "run",
                "--rm",
                "-e",
                "FOO=bar",
                "-w",
                "/tmp",
                "--hostname",
                "node-x",
                "alpine",
                "sh",
                "-c",
                "echo $FOO $(pwd) $(hostname) pid=$$; echo oops >&2; exit 3",
            ],
        )
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "bar /tmp node-x pid=1\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    let o = sb.docker(&d, &["run", "--rm", "--entrypoint", "echo", "alpine", "from", "entrypoint"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from entrypoint\n", "{}", out(&o));
    // --rm removed them; the plain one stays, exited.
    let ps = sb.docker_ok(&d, &["ps", "-a", "--format", "{{.Image}}|{{.Command}}|{{.Status}}"]);
    assert_eq!(ps.lines().count(), 1, "{ps}");
    assert!(ps.starts_with("alpine|\"/bin/sh\"|Exited (0)"), "{ps}");
}

#[test]
fn isolation_matches_dockers_defaults() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let script = "grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp)' /proc/self/status | sort; \
                  echo procs=$(ls /proc | grep -cE '^[0-9]+$'); \
                  echo timer_list=$(wc -c < /proc/timer_list); \
                  echo firmware=$(ls /sys/firmware | wc -l); \
                  echo sys=$( (echo x > /proc/sys/kernel/hostname) 2>&1 | grep -c Read-only); \
                  echo dev=$(ls /dev | tr '\\n' ' '); \
                  echo root=$(mount | grep -E ' on / type overlay' | cut -d' ' -f1-5); \
                  echo links=$(ip -o link | cut -d: -f2 | cut -d@ -f1 | tr -d ' \\n')";
    let o = sb.docker_ok(&d, &["run", "--rm", "alpine", "sh", "-c", script]);
    let get = |k: &str| o.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("{k} missing in:\n{o}")).to_string();
    // Docker's default capability set, bounding and effective; its seccomp
    // filter mode; no no_new_privs unless asked (--security-opt).
    assert_eq!(get("CapBnd:\t"), "00000000a80425fb", "{o}");
    assert_eq!(get("CapEff:\t"), "00000000a80425fb", "{o}");
    assert_eq!(get("NoNewPrivs:\t"), "0", "{o}");
    assert_eq!(get("Seccomp:\t"), "2", "{o}");
    // Its own PID namespace: only sh and its children are visible.
    assert!(get("procs=").parse::<u32>().unwrap() <= 4, "{o}");
    assert_eq!(get("timer_list="), "0", "/proc/timer_list is masked: {o}");
    assert_eq!(get("firmware="), "0", "/sys/firmware is masked: {o}");
    assert_eq!(get("sys="), "1", "/proc/sys is read-only: {o}");
    let dev = get("dev=");
    for name in ["null", "zero", "random", "urandom", "tty", "pts", "shm", "ptmx", "stdout"] {
        assert!(dev.split_whitespace().any(|d| d == name), "/dev/{name} missing: {o}");
    }
    assert_eq!(get("root="), "overlay on / type overlay", "{o}");
    assert_eq!(get("links="), "loeth0", "its own network namespace: lo and eth0: {o}");
}

#[test]
fn overlay_layers_are_shared_and_copy_up_leaves_the_lower_layer_alone() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    let id1 = sb.docker_ok(&d, &["run", "--name", "nginx-1", "-d", "nginx:alpine"]);
    let id2 = sb.docker_ok(&d, &["run", "--name", "nginx-2", "-d", "nginx:alpine"]);
    assert_ne!(id1, id2);
    // Exactly as the lab reads them: docker inspect | jq -r.
    let gd = |name: &str, field: &str| {
        let o = sb
            .command("sh")
            .args(["-c", &format!("docker inspect {name} | jq -r '.[0].GraphDriver.Data.{field}'")])
            .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let lower1 = gd("nginx-1", "LowerDir");
    assert_eq!(lower1.split(':').count(), 3, "{lower1}");
    assert!(lower1.split(':').all(|p| p.ends_with("/diff")), "{lower1}");
    assert_eq!(lower1, gd("nginx-2", "LowerDir"), "both instances share the image layers");
    let upper1 = gd("nginx-1", "UpperDir");
    assert_ne!(upper1, gd("nginx-2", "UpperDir"));
    assert!(upper1.ends_with("/diff"));
    assert_eq!(gd("nginx-1", "MergedDir"), upper1.replace("/diff", "/merged"));
    assert_eq!(gd("nginx-1", "WorkDir"), upper1.replace("/diff", "/work"));

    // A write inside is copied up into UpperDir; the lower copy is unchanged.
    let edit = sb.docker_ok(
        &d,
        &[
            "run",
            "--name",
            "editor",
            "nginx:alpine",
            "sed",
            "-i",
            "s/Welcome to nginx!/Welcome to nginx-1!/",
            "/usr/share/nginx/html/index.html",
        ],
    );
    assert_eq!(edit, "");
    let upper = gd("editor", "UpperDir");
    let copied = std::fs::read_to_string(format!("{upper}/usr/share/nginx/html/index.html")).unwrap();
    assert!(copied.contains("Welcome to nginx-1!"), "{copied}");
    let lower_hits: Vec<String> =
        lower1.split(':').filter_map(|l| std::fs::read_to_string(format!("{l}/usr/share/nginx/html/index.html")).ok()).collect();
    assert_eq!(lower_hits.len(), 1);
    assert!(lower_hits[0].contains("Welcome to nginx!") && !lower_hits[0].contains("nginx-1"));

    // Names are unique; stop + rm take the container layer away.
    let o = sb.docker(&d, &["run", "--name", "nginx-1", "-d", "nginx:alpine"]).unwrap();
    assert!(out(&o).contains("Conflict. The container name \"/nginx-1\" is already in use by container"), "{}", out(&o));
    let o = sb.docker(&d, &["rm", "nginx-1"]).unwrap();
    assert!(out(&o).contains("You cannot remove a running container"), "{}", out(&o));
    sb.docker_ok(&d, &["stop", "nginx-1"]);
    let logs = sb.docker(&d, &["logs", "nginx-1"]).unwrap();
    assert!(String::from_utf8_lossy(&logs.stderr).contains("start worker process"), "{}", out(&logs));
    sb.docker_ok(&d, &["rm", "-f", "nginx-1", "nginx-2", "editor"]);
    assert!(!std::path::Path::new(&upper1).exists(), "the container layer is removed with it");
    let o = sb.docker(&d, &["inspect", "nginx-1"]).unwrap();
    assert!(out(&o).contains("No such container: nginx-1") || out(&o).contains("No such object: nginx-1"), "{}", out(&o));
}

#[test]
fn stopped_containers_and_their_logs_survive_a_daemon_restart() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "--name", "said", "alpine", "echo", "kept"]);
    assert!(d.terminate().unwrap().success());
    let d2 = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    let ps = sb.docker_ok(&d2, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("said Exited (0)"), "{ps}");
    assert_eq!(sb.docker_ok(&d2, &["logs", "said"]), "kept\n");
    let ps = sb.docker_ok(&d2, &["container", "prune", "-f"]);
    assert!(ps.contains("Deleted Containers:"), "{ps}");
    assert_eq!(sb.docker_ok(&d2, &["ps", "-aq"]), "");
}

/// Runs a docker command under a pseudo-terminal (`script`), feeding `input`
/// line by line after a pause, as a person typing would.
fn docker_tty(sb: &Sandbox, d: &Berthd, cmd: &str, input: &[&str]) -> (Option<i32>, String) {
    // printf %b: "\\0003" is Ctrl-C, "\\0033" is Esc.
    let feed: String = input.iter().map(|l| format!("sleep 0.7; printf '%b\\n' '{l}'; ")).collect();
    let o = sb
        .command("sh")
        .args(["-c", &format!("({feed} sleep 1) | timeout -s KILL 60 script -qe -c 'stty cols 100 rows 30; {cmd}' /dev/null")])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("DOCKER_CONFIG", sb.dir().join("docker-config"))
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).replace('\r', ""))
}

#[test]
fn run_it_gives_a_real_terminal_and_exec_joins_a_running_container() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);

    // -it: a PTY sized like the client's terminal; `exit N` ends the container.
    let (code, text) = docker_tty(&sb, &d, "docker run --name alpine-shell -it --rm alpine", &["stty size; tty", "exit 4"]);
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("30 100"), "window size reaches the container: {text}");
    // Docker shows /dev/pts/0 (runc allocates the PTY in the container's own
    // devpts); berth's PTY comes from the host and is mounted as the console.
    assert!(text.contains("/dev/console") && !text.contains("not a tty"), "{text}");

    // Ctrl-C reaches the foreground job through the container's terminal,
    // and vi edits a file (arrows, insert, Esc, :wq) as in the lab.
    let (code, text) = docker_tty(
        &sb,
        &d,
        "docker run -it --rm alpine",
        &["sleep 30", "\\0003", "echo after-ctrl-c", "vi /tmp/f", "iWelcome to nginx!", "\\0033", ":wq", "cat /tmp/f", "exit"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("after-ctrl-c"), "{text}");
    assert!(text.lines().any(|l| l == "Welcome to nginx!"), "{text}");

    // docker attach: to a detached container started with -it.
    sb.docker_ok(&d, &["run", "--name", "bg", "-dit", "alpine"]);
    let (code, text) = docker_tty(&sb, &d, "docker attach bg", &["echo attached-$((6*7))", "exit 2"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("attached-42"), "{text}");

    // -i without -t: stdin is a pipe.
    let o = sb
        .command("sh")
        .args(["-c", "echo piped | docker run -i --rm alpine cat"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped\n", "{}", out(&o));

    sb.docker_ok(&d, &["run", "--name", "nginx-1", "-d", "--rm", "nginx:alpine"]);
    let df = sb.docker_ok(&d, &["exec", "nginx-1", "df", "/"]);
    assert!(df.lines().nth(1).is_some_and(|l| l.starts_with("overlay")), "{df}");
    let o = sb.docker(&d, &["exec", "nginx-1", "sh", "-c", "exit 7"]).unwrap();
    assert_eq!(o.status.code(), Some(7));
    let o = sb.docker(&d, &["exec", "nginx-1", "nope"]).unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", out(&o));
    assert!(out(&o).contains("executable file not found in $PATH"), "{}", out(&o));
    // exec -it: a shell in the same namespaces as nginx (its PID 1 is nginx).
    let (code, text) =
        docker_tty(&sb, &d, "docker exec -it nginx-1 /bin/sh", &["cat /proc/1/cmdline | tr \"\\\\0\" \" \"; echo", "exit 3"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("nginx: master process"), "{text}");
    sb.docker_ok(&d, &["stop", "nginx-1"]);
}

#[test]
fn logs_tail_and_follow_kill_wait_and_stop_with_a_timeout() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(
        &d,
        &["run", "--name", "counter", "-d", "alpine", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late; sleep 30"],
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sb.docker_ok(&d, &["logs", "--tail", "2", "counter"]), "line4\nline5\n");
    // -f keeps streaming until the container stops.
    let follow = sb
        .command("docker")
        .args(["logs", "-f", "counter"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The shell is PID 1 without a TERM handler: stop waits -t 1, then kills.
    let t = std::time::Instant::now();
    sb.docker_ok(&d, &["stop", "-t", "1", "counter"]);
    assert!(t.elapsed() >= std::time::Duration::from_millis(900), "{:?}", t.elapsed());
    let followed = follow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "line1\nline2\nline3\nline4\nline5\nlate\n");
    let state = sb.docker_ok(&d, &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "counter"]);
    assert_eq!(state.trim(), "exited 137");

    sb.docker_ok(&d, &["run", "--name", "sleeper", "-d", "alpine", "sleep", "60"]);
    let waiter = sb
        .command("docker")
        .args(["wait", "sleeper"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.docker_ok(&d, &["kill", "sleeper"]);
    assert_eq!(String::from_utf8_lossy(&waiter.wait_with_output().unwrap().stdout).trim(), "137");
    let o = sb.docker(&d, &["kill", "sleeper"]).unwrap();
    assert!(out(&o).contains("is not running"), "{}", out(&o));
    let o = sb.docker(&d, &["logs", "nosuch"]).unwrap();
    assert!(out(&o).contains("No such container: nosuch"), "{}", out(&o));
}

#[test]
fn a_pipe_whose_reader_leaves_ends_its_writer_with_sigpipe_as_under_docker() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // berthd is a Rust program (SIGPIPE ignored): without resetting it, `yes`
    // would get EPIPE forever and never end. Nothing is ignored, as in Docker.
    let script = "yes | head -n 1";
    let o = sb
        .command("timeout")
        .args(["20", "docker", "run", "--rm", "alpine", "sh", "-c", script])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    let text = out(&o);
    assert!(o.status.success(), "the pipeline did not end: {text}");
    assert!(text.starts_with("y\n"), "{text}");
    assert_eq!(text, "y\n");
    // The command berthd starts ignores no signal (a shell may set its own).
    let o = sb.docker_ok(&d, &["run", "--rm", "alpine", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    assert_eq!(o, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    // And in a process `docker exec` starts.
    sb.docker_ok(&d, &["run", "-d", "--name", "piper", "alpine", "sleep", "100"]);
    let o = sb
        .command("timeout")
        .args(["20", "docker", "exec", "piper", "sh", "-c", "yes | head -n 1"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .output()
        .unwrap();
    assert!(o.status.success() && out(&o) == "y\n", "exec: {}", out(&o));
    sb.docker_ok(&d, &["rm", "-f", "piper"]);
}

#[test]
fn docker_exec_it_runs_at_the_size_of_the_clis_terminal() {
    // The CLI asks for its terminal's size right after starting the exec,
    // before berthd has made the process's PTY: the size must still reach it
    // (seen: vi in `docker exec -it` drawn 5 columns wide, `stty size` failing).
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["run", "--name", "sized", "-d", "nginx:alpine"]);
    let cmd = format!(
        "stty rows 33 cols 111; DOCKER_HOST=unix://{} DOCKER_CONFIG={} docker exec -it sized sh -c 'sleep 0.5; stty size'",
        d.socket.display(),
        sb.dir().join("docker-config").display()
    );
    for _ in 0..3 {
        let o = sb.run("script", &["-qec", &cmd, "/dev/null"]).unwrap();
        let text = out(&o);
        assert!(text.contains("33 111"), "the exec's terminal size: {text:?}");
    }
    sb.docker_ok(&d, &["rm", "-f", "sized"]);
}
