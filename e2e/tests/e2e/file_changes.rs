//! berthd reports file changes live (`FileChanged`, backend/src/observer/
//! files.rs), as the simulator does, so the guided lab's overlay and volume
//! steps are judged on node1's real files: an edit inside a container is a
//! Modified file of its upper dir (copy-up), an edit of the image's layer
//! from the host is diagnosed as such, a volume edited from a second
//! container keeps its edit after the containers are gone, `rm` leaves a
//! whiteout (Deleted), and a restart reports the edits an upper dir holds.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::sandbox::{node1, Berthd, Sandbox};
use berth_shared::event::FileChangeKind;
use berth_shared::State;

fn state(sb: &Sandbox) -> State {
    let o = sb.run("curl", &["-fsS", "--max-time", "5", "-H", &sb.lab_auth_header(), "http://127.0.0.1:8080/api/state"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    serde_json::from_value(v["state"].clone()).unwrap_or_default()
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

fn inspect(sb: &Sandbox, d: &Berthd, name: &str, field: &str) -> String {
    sb.docker_ok(d, &["inspect", "-f", &format!("{{{{.GraphDriver.Data.{field}}}}}"), name]).trim().to_string()
}

fn file_kind(s: &State, dir: &str, path: &str) -> Option<FileChangeKind> {
    s.files.get(dir).and_then(|f| f.get(path)).copied()
}

/// The lab's step, as berthd recorded its progress.
fn step_completed(s: &State, step: &str) -> bool {
    s.lab.get("deploy-docker").and_then(|l| l.steps.get(step)).is_some_and(|r| r.completed)
}

/// What the lab's checks of a step say of this state (the same evaluator
/// berthd runs after every event).
fn diagnoses(s: &State, step: &str) -> Vec<String> {
    let lab = berth_shared::lab::deploy_docker();
    let step = lab.steps.iter().find(|x| x.id == step).unwrap();
    step.checks.iter().filter_map(|c| c.evaluate(s).err()).map(|d| d.code).collect()
}

const INDEX: &str = "/usr/share/nginx/html/index.html";

#[test]
fn an_edit_inside_a_container_is_a_modified_file_of_its_upper_dir_and_rm_a_deleted_one() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["run", "--name", "nginx-1", "-d", "--rm", "nginx:alpine"]);
    let upper = inspect(&sb, &d, "nginx-1", "UpperDir");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(file_kind(&state(&sb), &upper, INDEX), None, "not before the edit");
    // berth's own mount points in it are not the container's changes (as docker diff).
    let s = state(&sb);
    for p in ["/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        assert_eq!(file_kind(&s, &upper, p), None, "{p}: {:?}", s.files.get(&upper));
    }
    eprintln!("a fresh nginx-1 changed: {:?}", s.files.get(&upper));
    assert!(!step_completed(&state(&sb), "copy-up"));

    sb.docker_ok(&d, &["exec", "nginx-1", "sh", "-c", &format!("echo '<h1>edited in nginx-1</h1>' > {INDEX}")]);
    eventually("index.html reported Modified in nginx-1's upper dir", || {
        let s = state(&sb);
        (file_kind(&s, &upper, INDEX) != Some(FileChangeKind::Modified)).then(|| format!("{:?}", s.files.get(&upper)))
    });
    eventually("the copy-up step completes", || {
        let s = state(&sb);
        (!step_completed(&s, "copy-up")).then(|| format!("{:?}", s.lab.get("deploy-docker").and_then(|l| l.steps.get("copy-up"))))
    });
    assert_eq!(diagnoses(&state(&sb), "copy-up"), Vec::<String>::new());
    // A file the container made is Added; a file of the image removed is a
    // whiteout: Deleted.
    sb.docker_ok(&d, &["exec", "nginx-1", "sh", "-c", "echo new > /usr/share/nginx/html/new.html; rm /usr/share/nginx/html/50x.html"]);
    eventually("new.html Added, 50x.html Deleted", || {
        let s = state(&sb);
        let (new, gone) =
            (file_kind(&s, &upper, "/usr/share/nginx/html/new.html"), file_kind(&s, &upper, "/usr/share/nginx/html/50x.html"));
        (new != Some(FileChangeKind::Added) || gone != Some(FileChangeKind::Deleted)).then(|| format!("{:?}", s.files.get(&upper)))
    });
    // The lower dirs were not touched: nothing reported there.
    let s = state(&sb);
    let lower = inspect(&sb, &d, "nginx-1", "LowerDir");
    for dir in lower.split(':') {
        assert_eq!(s.files.get(dir), None, "{dir}");
    }
    sb.docker_ok(&d, &["stop", "nginx-1"]);
    eventually("the removed container's files leave the state", || {
        let s = state(&sb);
        s.files.contains_key(&upper).then(|| format!("{:?}", s.files.get(&upper)))
    });
}

#[test]
fn editing_the_images_file_in_its_lower_dir_is_diagnosed_as_the_wrong_place() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["run", "--name", "nginx-1", "-d", "--rm", "nginx:alpine"]);
    let lower = inspect(&sb, &d, "nginx-1", "LowerDir");
    let dir = lower.split(':').find(|l| std::path::Path::new(&format!("{l}{INDEX}")).exists()).unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(diagnoses(&state(&sb), "copy-up"), vec!["overlay.not_copied_up".to_string()]);
    // The learner edits the file in the layer, from the host.
    let o = sb.run("sh", &["-c", &format!("echo '<h1>edited in the image</h1>' >> {dir}{INDEX}")]).unwrap();
    assert!(o.status.success());
    eventually("the layer's file reported Modified", || {
        let s = state(&sb);
        (file_kind(&s, &dir, INDEX) != Some(FileChangeKind::Modified)).then(|| format!("{:?}", s.files))
    });
    assert_eq!(diagnoses(&state(&sb), "copy-up"), vec!["overlay.lower_edited".to_string()]);
    assert!(!step_completed(&state(&sb), "copy-up"));
    sb.docker_ok(&d, &["stop", "nginx-1"]);
}

#[test]
fn a_volume_edited_from_a_second_container_keeps_the_edit_after_its_containers_are_gone() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["volume", "create", "webvol"]);
    let data = sb.docker_ok(&d, &["volume", "inspect", "-f", "{{.Mountpoint}}", "webvol"]).trim().to_string();
    sb.docker_ok(&d, &["run", "--name", "nginx-vol", "-d", "-v", "webvol:/usr/share/nginx/html", "-p", "80:80", "nginx:alpine"]);
    assert!(std::path::Path::new(&format!("{data}/index.html")).exists(), "copied in");
    std::thread::sleep(Duration::from_millis(800));
    // The copy-in is not an edit.
    let s = state(&sb);
    assert_eq!(s.files.get(&data), None, "the image's files copied in were reported as changes");
    assert!(!step_completed(&s, "volume-edit"));

    sb.docker_ok(&d, &["run", "--name", "editor", "-d", "--rm", "-v", "webvol:/data/web", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["exec", "editor", "sh", "-c", "echo '<h1>edited from the volume</h1>' > /data/web/index.html"]);
    eventually("the volume's index.html reported Modified", || {
        let s = state(&sb);
        (file_kind(&s, &data, "/index.html") != Some(FileChangeKind::Modified)).then(|| format!("{:?}", s.files))
    });
    eventually("the volume-edit step completes", || (!step_completed(&state(&sb), "volume-edit")).then(String::new));

    // Every container goes; a new one serves the edit.
    sb.docker_ok(&d, &["stop", "editor"]);
    sb.docker_ok(&d, &["stop", "nginx-vol"]);
    sb.docker_ok(&d, &["container", "prune", "-f"]);
    // No container is left, and the volume's edit is still known.
    let s = state(&sb);
    assert_eq!(s.containers.len(), 0);
    assert_eq!(file_kind(&s, &data, "/index.html"), Some(FileChangeKind::Modified));
    sb.docker_ok(&d, &["run", "--name", "nginx-vol", "-d", "-v", "webvol:/usr/share/nginx/html", "-p", "80:80", "nginx:alpine"]);
    eventually("the volume-persist step completes", || {
        let s = state(&sb);
        (!step_completed(&s, "volume-persist")).then(|| format!("{:?}", diagnoses(&s, "volume-persist")))
    });
    let page = sb.run("curl", &["-fsS", "--max-time", "5", "http://127.0.0.1:80/"]).unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("edited from the volume"));
    sb.docker_ok(&d, &["rm", "-f", "nginx-vol"]);
}

#[test]
fn after_a_restart_an_upper_dirs_edits_are_reported_and_layer_and_volume_content_is_not() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["volume", "create", "keepvol"]);
    sb.docker_ok(&d, &["run", "--name", "kept", "-d", "-v", "keepvol:/data", "nginx:alpine"]);
    let upper = inspect(&sb, &d, "kept", "UpperDir");
    sb.docker_ok(&d, &["exec", "kept", "sh", "-c", &format!("echo edited > {INDEX}; echo in-volume > /data/note")]);
    eventually("the edits reported", || {
        let s = state(&sb);
        (file_kind(&s, &upper, INDEX) != Some(FileChangeKind::Modified)).then(|| format!("{:?}", s.files))
    });
    let mut d = d;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(d.child.wait().unwrap().success());
    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"]).unwrap();
    eventually("the upper dir's edit reported again after the restart", || {
        let s = state(&sb);
        (file_kind(&s, &upper, INDEX) != Some(FileChangeKind::Modified)).then(|| format!("{:?}", s.files))
    });
    std::thread::sleep(Duration::from_millis(500));
    let s = state(&sb);
    let others: Vec<&String> = s.files.keys().filter(|k| **k != upper).collect();
    assert_eq!(others, Vec::<&String>::new(), "layer or volume content reported as changes at start");
    sb.docker_ok(&d, &["rm", "-f", "kept"]);
}

#[test]
fn a_flood_of_files_in_a_container_is_reported_at_a_bounded_rate_and_the_daemon_keeps_answering() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["run", "--name", "flood", "-d", "--rm", "nginx:alpine"]);
    let upper = inspect(&sb, &d, "flood", "UpperDir");
    // 3000 files and a symlink out of the container, made as fast as a shell can.
    sb.docker_ok(
        &d,
        &[
            "exec",
            "flood",
            "sh",
            "-c",
            "mkdir -p /flood && ln -s / /flood/root && i=0; while [ $i -lt 3000 ]; do echo x > /flood/f$i; i=$((i+1)); done",
        ],
    );
    let reported = |s: &State| s.files.get(&upper).map_or(0, |f| f.keys().filter(|p| p.starts_with("/flood/")).count());
    let before = reported(&state(&sb));
    let start = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(2) {
        let t = std::time::Instant::now();
        let sock = d.socket.display().to_string();
        let o = sb.run("curl", &["-fsS", "--max-time", "5", "--unix-socket", &sock, "http://berth/_ping"]).unwrap();
        assert!(o.status.success());
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slowest < Duration::from_millis(500), "the API answered in {slowest:?} at worst during the flood");
    let n = reported(&state(&sb));
    let rate = (n - before) as f64 / start.elapsed().as_secs_f64();
    assert!(before < 3000 && n < 3000, "all 3000 at once ({before}, then {n}): no cap");
    assert!(n > before && rate <= 130.0, "{rate:.0} files reported a second (from {before} to {n}): the cap is 100");
    // The symlink is a file of the upper dir, never followed.
    eventually("the symlink reported as what it is", || {
        let s = state(&sb);
        (file_kind(&s, &upper, "/flood/root") != Some(FileChangeKind::Added)).then(|| format!("{} reported", reported(&s)))
    });
    assert!(state(&sb).files.get(&upper).is_none_or(|f| !f.keys().any(|p| p.starts_with("/flood/root/"))));
    assert!(d.log_text().contains("file watch capped"), "the log says the rate was capped");
    sb.docker_ok(&d, &["stop", "-t", "0", "flood"]);
}
