//! What a crash leaves, and what the next berthd makes of it (issue 14):
//! containers a SIGKILLed daemon left running are killed, not left
//! untracked; a state file damaged outside berthd neither stops it nor makes
//! a container half-vanish; scratch of a crashed create is cleared.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out};

/// Processes whose command line is exactly `cmd` (NUL-separated args).
fn running(cmd: &[&str]) -> Vec<i32> {
    let want = cmd.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

#[test]
fn a_restarted_berthd_kills_what_a_killed_one_left_running() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    // A unique command line, to find its processes among the host's.
    sb.docker_ok(&d, &["run", "-d", "--name", "left", "-p", "8089:80", "alpine", "sleep", "6173"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "frozen", "alpine", "sleep", "6174"]);
    sb.docker_ok(&d, &["pause", "frozen"]);
    assert_eq!(running(&["sleep", "6173"]).len(), 1);
    d.child.kill().unwrap();
    let _ = d.child.wait();
    // berthd died; its containers did not.
    assert_eq!(running(&["sleep", "6173"]).len(), 1);

    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    assert!(running(&["sleep", "6173"]).is_empty(), "the orphaned container still runs:\n{}", d.log_text());
    let left: Vec<String> = running(&["sleep", "6174"])
        .iter()
        .map(|p| {
            let st = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
            format!("{p}: {}\n{cg}", st.lines().filter(|l| l.starts_with("State") || l.starts_with("PPid")).collect::<Vec<_>>().join(" "))
        })
        .collect();
    assert!(
        left.is_empty(),
        "the orphaned paused container still runs: {left:?}\n{}\n{}",
        sb.docker_ok(&d, &["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]),
        d.log_text()
    );
    let ps = sb.docker_ok(&d, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.lines().any(|l| l == "left exited") && ps.lines().any(|l| l == "frozen exited"), "{ps}");
    // Startable again (its port is free), and removable.
    sb.docker_ok(&d, &["start", "left"]);
    assert_eq!(running(&["sleep", "6173"]).len(), 1);
    sb.docker_ok(&d, &["rm", "-f", "left", "frozen"]);
    assert!(running(&["sleep", "6173"]).is_empty());
    assert!(d.log_text().contains("killed processes left running by an earlier berthd"), "{}", d.log_text());
}

#[test]
fn damaged_state_files_neither_stop_berthd_nor_leave_half_a_container() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let id = sb.docker_ok(&d, &["create", "--name", "keep", "alpine", "true"]).trim().to_string();
    let alpine_id = sb.docker_ok(&d, &["images", "-q", "--no-trunc", "alpine"]).trim().to_string();
    assert!(d.terminate().unwrap().success());

    let data = sb.dir().join("berth/data");
    // Damage from outside: an emptied image index, a truncated record.
    std::fs::write(data.join("image/overlay2/index.json"), "").unwrap();
    let rec = data.join("containers").join(&id).join("container.json");
    let text = std::fs::read(&rec).unwrap();
    std::fs::write(&rec, &text[..text.len() / 2]).unwrap();
    // A create a crash ended before its record was written.
    let half = "f".repeat(64);
    std::fs::create_dir_all(data.join("containers").join(&half)).unwrap();
    std::fs::create_dir_all(data.join("overlay2").join(&half).join("diff")).unwrap();

    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    // The image is kept, untagged; tagging it again makes it usable.
    let imgs = sb.docker_ok(&d, &["images", "-a", "--no-trunc", "--format", "{{.Repository}} {{.ID}}"]);
    assert_eq!(imgs.trim(), format!("<none> {alpine_id}"), "{imgs}");
    sb.docker_ok(&d, &["tag", &alpine_id, "alpine:latest"]);
    // The damaged container is gone from view, its files kept aside, its name free.
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "");
    assert!(data.join("lost+found").join(&id).join("container").is_dir());
    assert!(!data.join("containers").join(&id).exists() && !data.join("overlay2").join(&id).exists());
    sb.docker_ok(&d, &["run", "--name", "keep", "--rm", "alpine", "true"]);
    // The unfinished create is cleared.
    assert!(!data.join("containers").join(&half).exists() && !data.join("overlay2").join(&half).exists());
    assert!(d.log_text().contains("rebuilt from the image configs"), "{}", d.log_text());
}

/// Whether berthd died (at its fault point) within 5 s.
fn dies(d: &mut berth_e2e::sandbox::Berthd) -> bool {
    (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        d.child.try_wait().ok().flatten().is_some()
    })
}

/// What the sandbox's kernel holds of berthd's containers: veths, overlay
/// mounts of the data root, network namespace files, port rules, processes.
/// `sleep` names the test's own container process (`sleep 6011`): tests run
/// side by side, and each looks only for its own.
fn leftovers_now(sb: &berth_e2e::sandbox::Sandbox, sleep: &str) -> Vec<String> {
    let run = |cmd: &str| String::from_utf8_lossy(&sb.run("sh", &["-c", cmd]).unwrap().stdout).to_string();
    let mut out = Vec::new();
    out.extend(
        run("ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1").lines().filter(|l| l.starts_with("veth")).map(|l| format!("link {l}")),
    );
    let data = sb.dir().join("berth/data").display().to_string();
    out.extend(
        run("cat /proc/self/mountinfo").lines().filter(|l| l.contains(&data) && l.contains(" overlay ")).map(|l| format!("mount {l}")),
    );
    let netns = sb.dir().join("berth/run/netns");
    out.extend(std::fs::read_dir(&netns).into_iter().flatten().flatten().map(|e| format!("netns {}", e.path().display())));
    out.extend(run("iptables-save").lines().filter(|l| l.contains("--dport 80")).map(|l| format!("rule {l}")));
    out.extend(running(&["sleep", sleep]).iter().map(|p| format!("process {p}")));
    out
}

/// What is left once the kernel has had its time: a veth pair goes with its
/// container's network namespace, a moment after the container is gone.
fn leftovers(sb: &berth_e2e::sandbox::Sandbox, sleep: &str) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let left = leftovers_now(sb, sleep);
        if left.is_empty() || start.elapsed() > std::time::Duration::from_secs(5) {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// berthd killed at each point of `docker run -d -p`, `docker stop` and
/// `docker rm` (BERTH_FAULT), then started again: nothing of the container
/// is left in the kernel that berthd does not know, the container is
/// removable (and its port free for the next one).
#[test]
fn a_berthd_killed_at_any_step_of_run_stop_or_rm_leaves_nothing_behind() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    assert!(d.terminate().unwrap().success());
    let mirror = ["--registry-mirror", "http://127.0.0.1:5000"];
    // backend/src/fault.rs's points, in the order a run, stop and rm reach them.
    for point in ["start.mounted", "start.joined", "start.cgroups", "start.launched", "stop.signalled", "rm.unmounted"] {
        let mut d = sb.start_berthd_env(&[("BERTH_FAULT", point)], &mirror).unwrap();
        let run = sb.docker(&d, &["run", "-d", "--name", "faulty", "-p", "8093:80", "alpine", "sleep", "6011"]).unwrap();
        if point.starts_with("stop.") || point.starts_with("rm.") {
            assert!(run.status.success(), "{point}: {}", out(&run));
            let verb: &[&str] = if point.starts_with("stop.") { &["stop", "-t", "1", "faulty"] } else { &["rm", "-f", "faulty"] };
            let _ = sb.docker(&d, verb);
        }
        // berthd is gone.
        assert!(dies(&mut d), "{point}: berthd did not die:\n{}", d.log_text());
        let mut d = sb.start_berthd(&mirror).unwrap();
        let _ = sb.docker(&d, &["rm", "-f", "faulty"]);
        let left = leftovers(&sb, "6011");
        assert!(left.is_empty(), "{point}: left behind {left:#?}\n{}", d.log_text());
        // The port and the name are free again.
        sb.docker_ok(&d, &["run", "-d", "--name", "faulty", "-p", "8093:80", "alpine", "sleep", "6011"]);
        sb.docker_ok(&d, &["rm", "-f", "faulty"]);
        assert!(leftovers(&sb, "6011").is_empty(), "{point}");
        assert!(d.terminate().unwrap().success());
    }
}

/// berthd killed between the steps of a start's plans (`plan.step:n`: before
/// the n-th step it performs — the root's mount, then the join: the network
/// namespace, the endpoint, the published port's three rules and the port
/// itself): the join was journaled, the next berthd takes it back first (its
/// log says so), nothing is left, and the port is free again.
#[test]
fn a_berthd_killed_between_a_plans_steps_has_the_journaled_plan_taken_back() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    assert!(d.terminate().unwrap().success());
    let mirror = ["--registry-mirror", "http://127.0.0.1:5000"];
    let plans = sb.dir().join("berth/run/plans");
    let journals = || std::fs::read_dir(&plans).map(|d| d.count()).unwrap_or(0);
    for n in 2..=7 {
        let fault = format!("plan.step:{n}");
        let mut d = sb.start_berthd_env(&[("BERTH_FAULT", fault.as_str())], &mirror).unwrap();
        let _ = sb.docker(&d, &["run", "-d", "--name", "faulty", "-p", "8094:80", "alpine", "sleep", "6012"]);
        assert!(dies(&mut d), "{fault}: berthd did not die:\n{}", d.log_text());
        assert_eq!(journals(), 1, "{fault}: the join is journaled while it runs");
        let mut d = sb.start_berthd(&mirror).unwrap();
        berth_e2e::sandbox::until(10, "the journaled plan to be taken back", || {
            d.log_text().contains("undoing a plan a killed berthd left part done")
        });
        assert_eq!(journals(), 0, "{fault}: the journal is gone once the plan is taken back");
        let rules = sb.run("sh", &["-c", "iptables-save | grep -c 'dport 8094' || true"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&rules.stdout).trim(), "0", "{fault}: a rule of the interrupted publish is left");
        let _ = sb.docker(&d, &["rm", "-f", "faulty"]);
        let left = leftovers(&sb, "6012");
        assert!(left.is_empty(), "{fault}: left behind {left:#?}\n{}", d.log_text());
        sb.docker_ok(&d, &["run", "-d", "--name", "faulty", "-p", "8094:80", "alpine", "sleep", "6012"]);
        sb.docker_ok(&d, &["rm", "-f", "faulty"]);
        assert_eq!(journals(), 0, "a plan that ran through leaves no journal");
        assert!(d.terminate().unwrap().success());
    }
}

/// berthd killed while a pull has a layer unpacked but not stored, and
/// while a build's COPY step has its overlay mounted: the next berthd
/// leaves no scratch dir or mount behind, and the pull and the build work.
#[test]
fn a_berthd_killed_mid_pull_or_mid_build_leaves_no_scratch_or_mount() {
    let (sb, mut d) = node1().unwrap();
    assert!(d.terminate().unwrap().success());
    let mirror = ["--registry-mirror", "http://127.0.0.1:5000"];
    let data = sb.dir().join("berth/data");
    let mounts = || {
        let o = sb.run("cat", &["/proc/self/mountinfo"]).unwrap();
        let d = data.display().to_string();
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains(&d)).map(String::from).collect::<Vec<_>>()
    };
    let scratch = || {
        std::fs::read_dir(data.join("tmp"))
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
            .unwrap_or_default()
    };

    let mut d = sb.start_berthd_env(&[("BERTH_FAULT", "pull.unpacked")], &mirror).unwrap();
    let _ = sb.docker(&d, &["pull", "alpine"]);
    assert!(dies(&mut d), "the pull did not reach its fault point:\n{}", d.log_text());
    let mut d = sb.start_berthd(&mirror).unwrap();
    assert!(scratch().is_empty(), "{:?}", scratch());
    sb.docker_ok(&d, &["pull", "alpine"]);
    assert!(d.terminate().unwrap().success());

    let ctx = sb.dir().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("app.txt"), "app\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nCOPY app.txt /app.txt\n").unwrap();
    let mut d = sb.start_berthd_env(&[("BERTH_FAULT", "build.copying")], &mirror).unwrap();
    let _ = sb.docker(&d, &["build", "-t", "lab/app", &ctx.display().to_string()]);
    assert!(dies(&mut d), "the build did not reach its fault point:\n{}", d.log_text());
    let d = sb.start_berthd(&mirror).unwrap();
    assert!(mounts().is_empty(), "mounts left: {:#?}", mounts());
    assert!(scratch().is_empty(), "{:?}", scratch());
    sb.docker_ok(&d, &["build", "-q", "-t", "lab/app", &ctx.display().to_string()]);
    assert_eq!(sb.docker_ok(&d, &["run", "--rm", "lab/app", "cat", "/app.txt"]), "app\n");
}

/// A berthd SIGKILLed while a container runs with a published port, its
/// record then lost (so the next berthd cannot know it): nothing of
/// that container stays in the kernel — not its veth (found on berth's
/// bridge, not by a name from the record), its overlay mount, netns file,
/// rules or process.
#[test]
fn a_container_whose_record_is_lost_in_a_crash_leaves_nothing_in_the_kernel() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let id = sb.docker_ok(&d, &["run", "-d", "--name", "lost", "-p", "8093:80", "alpine", "sleep", "6014"]).trim().to_string();
    d.child.kill().unwrap();
    let _ = d.child.wait();
    assert!(!leftovers_now(&sb, "6014").is_empty(), "the crash should have left the running container's objects");
    // Its whole record gone: nothing names the container any more.
    std::fs::remove_dir_all(sb.dir().join("berth/data/containers").join(&id)).unwrap();
    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    let left = leftovers(&sb, "6014");
    assert!(left.is_empty(), "left behind {left:#?}\n{}", d.log_text());
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "");
    // Its read-write layer is kept aside, out of the store.
    let data = sb.dir().join("berth/data");
    assert!(!data.join("overlay2").join(&id).exists() && data.join("lost+found").join(&id).join("layer/diff").is_dir());
    sb.docker_ok(&d, &["run", "-d", "--name", "lost", "-p", "8093:80", "alpine", "sleep", "6014"]);
    sb.docker_ok(&d, &["rm", "-f", "lost"]);
}

/// berthd killed while an exec's process runs, and while a build's RUN step
/// runs in its container: the next berthd leaves no process, mount, veth or
/// netns of either, the exec'd container is removable, and the build's RUN
/// container — berth's, not the user's — is not left in `docker ps -a`.
#[test]
fn a_berthd_killed_mid_exec_or_mid_run_step_leaves_nothing_behind() {
    let (sb, mut d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["create", "--name", "host1", "alpine", "sleep", "300"]);
    assert!(d.terminate().unwrap().success());
    let mirror = ["--registry-mirror", "http://127.0.0.1:5000"];

    let mut d = sb.start_berthd_env(&[("BERTH_FAULT", "exec.launched")], &mirror).unwrap();
    sb.docker_ok(&d, &["start", "host1"]);
    let _ = sb.docker(&d, &["exec", "-d", "host1", "sleep", "6013"]);
    assert!(dies(&mut d), "the exec did not reach its fault point:\n{}", d.log_text());
    let mut d = sb.start_berthd(&mirror).unwrap();
    sb.docker_ok(&d, &["rm", "-f", "host1"]);
    let left = leftovers(&sb, "6013");
    assert!(left.is_empty(), "after an exec: {left:#?}\n{}", d.log_text());
    assert!(d.terminate().unwrap().success());

    let ctx = sb.dir().join("runctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine\nRUN sleep 6013\n").unwrap();
    let mut d = sb.start_berthd_env(&[("BERTH_FAULT", "build.running")], &mirror).unwrap();
    let _ = sb.docker(&d, &["build", "-t", "lab/slow", &ctx.display().to_string()]);
    assert!(dies(&mut d), "the build did not reach its fault point:\n{}", d.log_text());
    let d = sb.start_berthd(&mirror).unwrap();
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "", "the build's RUN container was left");
    let left = leftovers(&sb, "6013");
    assert!(left.is_empty(), "after a RUN step: {left:#?}\n{}", d.log_text());
}
