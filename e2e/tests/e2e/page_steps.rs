//! The guided lab's steps panel in headless Chromium, as a learner uses it:
//! the whole lab walked in the simulated node1 and on a live one (berthd in a
//! sandbox), each step passing at the command that makes its state true and
//! not before; the negative paths (a DNAT rule deleted by hand, the
//! container stopped mid-step, the image layer's file edited instead of the
//! container's) giving their diagnosis codes and highlighting what they name;
//! progress kept across a reload; a replay showing progress as it was.
//! Screenshots go to target/e2e-artifacts.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::key::Key;
use fantoccini::Locator;

/// The lab's commands in order, and the step each completes (as the
/// shared crate's walk of the lab has them). Edits in `vi` are typed as a
/// learner would: open a line, type, Escape, `:wq`.
const WALK: &[(&str, Option<&str>)] = &[
    ("docker run hello-world", Some("hello")),
    ("docker ps -a", None),
    ("docker pull alpine", None),
    ("docker run alpine", Some("alpine")),
    ("ip addr show docker0", None),
    ("docker network inspect bridge", None),
    ("sudo iptables --list -n -t nat", None),
    ("docker run --name alpine-shell -it --rm alpine", Some("alpine-shell")),
    ("ip addr", None),
    ("exit", None),
    ("docker run --name nginx-demo -d --rm nginx:alpine", Some("service")),
    ("docker logs nginx-demo", None),
    ("curl http://172.17.0.2/", None),
    ("docker stop nginx-demo", None),
    ("docker run --name nginx-public -d --rm -p 80:80 nginx:alpine", Some("publish")),
    ("docker stop nginx-public", None),
    ("docker run --name nginx-1 -d --rm nginx:alpine", Some("overlay")),
    ("docker exec -it nginx-1 /bin/sh", None),
    ("vi /usr/share/nginx/html/index.html", Some("copy-up")),
    ("exit", None),
    ("docker run --name nginx-2 -d --rm nginx:alpine", Some("second-instance")),
    ("docker stop nginx-1", None),
    ("docker stop nginx-2", None),
    ("docker volume create webvol", None),
    ("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("volume")),
    ("docker run --rm -it -v webvol:/data/web alpine", None),
    ("vi /data/web/index.html", Some("volume-edit")),
    ("exit", None),
    ("docker stop nginx-vol", None),
    ("docker container prune -f", None),
    ("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("volume-persist")),
    ("docker stop nginx-vol", None),
    ("docker run --name nginx-bind -d --rm -v ~/data/web:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("bind")),
    ("docker stop nginx-bind", None),
    ("docker build -t gourmetgram-app:0.0.1 gourmetgram", Some("build")),
    ("docker run --name gourmetgram-app -d --rm -p 80:8000 gourmetgram-app:0.0.1", Some("serve")),
];

/// Every step's `data-state`, read from the page.
async fn states(b: &Browser) -> BTreeMap<String, String> {
    let v = b
        .client
        .execute("return [...document.querySelectorAll('[data-testid=lab-step]')].map(e => [e.dataset.step, e.dataset.state]);", vec![])
        .await
        .unwrap();
    serde_json::from_value::<Vec<(String, String)>>(v).unwrap().into_iter().collect()
}

async fn wait_until(b: &Browser, what: &str, limit: Duration, ok: impl Fn(&BTreeMap<String, String>) -> bool) -> BTreeMap<String, String> {
    let start = Instant::now();
    loop {
        let s = states(b).await;
        if ok(&s) {
            return s;
        }
        if start.elapsed() > limit {
            let term = b.client.find(Locator::Css("[data-testid=terminal]")).await.unwrap().text().await.unwrap_or_default();
            let tail: Vec<&str> = term.lines().rev().take(25).collect();
            let checks = match b.client.find(Locator::Css("[data-testid=lab-checks]")).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!(
                "{what}: steps are {s:?}\n--- the shown step's checks:\n{checks}\n--- terminal (end):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_keys(b: &Browser, keys: &str) {
    let input = b.client.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    input.send_keys(keys).await.unwrap();
}

async fn type_line(b: &Browser, line: &str) {
    type_keys(b, &format!("{line}{}", char::from(Key::Enter))).await;
}

/// An edit in vi: a new line after the first, then `:wq`.
async fn vi_edit(b: &Browser, line: &str) {
    // vi is open once its status line shows: the file's name, or, when the
    // terminal's answer to vi's cursor-position query came late (a loaded
    // machine), busybox vi's "'(NULL)' is not implemented" for that answer.
    let start = std::time::Instant::now();
    loop {
        let text = b.client.find(Locator::Css("[data-testid=terminal]")).await.unwrap().text().await.unwrap_or_default();
        if text.contains("index.html") || text.contains("is not implemented") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "vi did not open: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    type_keys(b, &format!("o{line}")).await;
    type_keys(b, &char::from(Key::Escape).to_string()).await;
    // A key right after Escape would read as part of an escape sequence.
    tokio::time::sleep(Duration::from_millis(400)).await;
    type_line(b, ":wq").await;
}

/// Types the walk from `from` to `to` (indices into WALK), checking after
/// each command that exactly the steps completed so far show as passed.
async fn walk(b: &Browser, range: std::ops::Range<usize>, done: &mut Vec<String>, limit: Duration) {
    for (cmd, completes) in &WALK[range] {
        if cmd.starts_with("vi ") {
            type_line(b, cmd).await;
            vi_edit(b, "<p>edited in the lab</p>").await;
        } else {
            type_line(b, cmd).await;
        }
        if let Some(step) = completes {
            done.push(step.to_string());
        }
        let want = done.clone();
        let s = wait_until(b, &format!("after {cmd:?} exactly {want:?} passed"), limit, |s| {
            want.iter().all(|w| s.get(w).map(String::as_str) == Some("passed"))
        })
        .await;
        // And not before: no step the walk has not reached yet passed.
        let early: Vec<&String> = s.iter().filter(|(k, v)| *v == "passed" && !want.contains(k)).map(|(k, _)| k).collect();
        assert!(early.is_empty(), "after {cmd:?}: {early:?} passed before their command");
        if !matches!(*cmd, "docker run --name alpine-shell -it --rm alpine" | "docker exec -it nginx-1 /bin/sh")
            && !cmd.starts_with("docker run --rm -it")
        {
            // Let the shell print its prompt again before the next line.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// The diagnosis codes the step shown in the panel fails with.
async fn shown_codes(b: &Browser) -> Vec<String> {
    let v = b
        .client
        .execute("return [...document.querySelectorAll('[data-testid=step-detail] [data-testid=lab-check][data-code]')].map(e => e.dataset.code);", vec![])
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn open_step(b: &Browser, step: &str) {
    b.client.find(Locator::Css(&format!("[data-testid=lab-step][data-step={step}]"))).await.unwrap().click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn wait_codes(b: &Browser, want: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let codes = shown_codes(b).await;
        if codes.iter().any(|c| c == want) {
            return codes;
        }
        assert!(start.elapsed() < limit, "no {want} in the shown step's checks: {codes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A static file server (python's) for dist/, ended by pid when dropped.
struct Static(Child);

impl Drop for Static {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dist() -> std::path::PathBuf {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    dist
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lab_in_the_simulated_page_passes_each_step_at_its_command_and_keeps_progress_across_a_reload() {
    let dist = dist();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Static(
        Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&dist)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = Browser::start().await.unwrap();
    b.client.goto(&format!("http://127.0.0.1:{port}/")).await.unwrap();
    b.wait_for_text("[data-testid=terminal]", "simulated node1", Duration::from_secs(20)).await.unwrap();
    let s = wait_until(&b, "the steps are drawn", Duration::from_secs(10), |s| s.len() == 15).await;
    assert_eq!(s["hello"], "current");
    assert_eq!(s["bridge"], "passed", "docker0 and Docker's chains are there from the start");
    assert_eq!(s["serve"], "pending");
    b.screenshot("steps-sim-start.png").await.unwrap();

    let mut done = vec!["bridge".to_string()];
    // The first step by its button: "run" types the command into the terminal.
    let run = b.client.find(Locator::Css("[data-testid=step-detail] [data-testid=run-in-terminal]")).await.unwrap();
    run.click().await.unwrap();
    done.push("hello".into());
    wait_until(&b, "run ▶ completes hello", Duration::from_secs(10), |s| s["hello"] == "passed").await;
    walk(&b, 1..17, &mut done, Duration::from_secs(10)).await;

    // Stopping the container the current step works in: it says so.
    let s = states(&b).await;
    assert_eq!(s["copy-up"], "current");
    type_line(&b, "docker stop nginx-1").await;
    wait_codes(&b, "container.missing", Duration::from_secs(10)).await;
    b.screenshot("steps-sim-container-missing.png").await.unwrap();
    assert!(b
        .client
        .find(Locator::Css("[data-testid=step-detail] [data-testid=diagnosis]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("nginx-1"));
    type_line(&b, "docker run --name nginx-1 -d --rm nginx:alpine").await;
    walk(&b, 17..WALK.len(), &mut done, Duration::from_secs(10)).await;
    b.wait_for_text("[data-testid=lab-done]", "Every step is done", Duration::from_secs(10)).await.unwrap();
    assert!(b.client.find(Locator::Css("[data-testid=lab-progress]")).await.unwrap().text().await.unwrap().starts_with("15 / 15"));
    b.screenshot("steps-sim-done.png").await.unwrap();

    // The timeline in the past shows progress as it was then.
    b.client
        .execute(
            "const r = document.querySelector('[data-testid=scrub]'); r.value = Math.floor(r.max / 3); r.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await
        .unwrap();
    let past = wait_until(&b, "a third of the way back", Duration::from_secs(5), |s| s["serve"] != "passed").await;
    assert_eq!(past["serve"], "pending");
    assert_eq!(past["hello"], "passed");
    b.client.find(Locator::Css("[data-testid=now]")).await.unwrap().click().await.unwrap();
    wait_until(&b, "back to now", Duration::from_secs(5), |s| s.values().all(|v| v == "passed")).await;

    // A reload: the simulated node1 starts anew, the steps done stay done.
    b.client.refresh().await.unwrap();
    b.wait_for_text("[data-testid=terminal]", "simulated node1", Duration::from_secs(20)).await.unwrap();
    let s = wait_until(&b, "progress after a reload", Duration::from_secs(10), |s| s.len() == 15).await;
    assert!(s.values().all(|v| v == "passed"), "{s:?}");
    b.close().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "target" {
            continue;
        }
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lab_on_a_live_node1_passes_each_step_diagnoses_what_goes_wrong_and_replays_as_it_was() {
    let dist = dist();
    let src = berth_e2e::repo_root().join("gourmetgram");
    for need in ["bin/gourmetgram", "food11.pth", "Dockerfile"] {
        assert!(src.join(need).is_file(), "gourmetgram/{need} missing: run scripts/gourmetgram.sh build");
    }
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let page_addr = format!("{}:8080", sb.uplink.node_ip);
    let home = sb.dir().join("home");
    std::fs::create_dir_all(home.join("data/web")).unwrap();
    std::fs::write(home.join("data/web/index.html"), "<h1>from node1's own disk</h1>\n").unwrap();
    copy_dir(&src, &home.join("gourmetgram"));
    let d = sb
        .start_berthd(&[
            "--registry-mirror",
            "http://127.0.0.1:5000",
            "--page-addr",
            &page_addr,
            "--page-dir",
            dist.to_str().unwrap(),
            "--lab-home",
            home.to_str().unwrap(),
        ])
        .unwrap();
    let b = Browser::start().await.unwrap();
    b.client.goto(&format!("http://{page_addr}/?token={}", sb.lab_token())).await.unwrap();
    b.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(20)).await.unwrap();
    b.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(20)).await.unwrap();
    open_step(&b, "bridge").await;
    // berthd made docker0 and Docker's chains (the rule observer's first
    // reading of the ruleset follows the stream's start).
    let s = wait_until(&b, "the bridge step passes", Duration::from_secs(10), |s| s.len() == 15 && s["bridge"] == "passed").await;
    assert_eq!(s["hello"], "current");
    b.screenshot("steps-live-bridge.png").await.unwrap();
    // Back to the step the learner is on.
    b.client.find(Locator::Css("[data-testid=to-current]")).await.unwrap().click().await.unwrap();
    b.wait_for_text("[data-testid=step-detail]", "Your first container", Duration::from_secs(5)).await.unwrap();

    let mut done = vec!["bridge".to_string()];
    let slow = Duration::from_secs(90);
    // The first step by its "run" button.
    b.client.find(Locator::Css("[data-testid=step-detail] [data-testid=run-in-terminal]")).await.unwrap().click().await.unwrap();
    done.push("hello".into());
    wait_until(&b, "run ▶ completes hello", slow, |s| s["hello"] == "passed").await;
    walk(&b, 1..15, &mut done, slow).await;

    // The DNAT rule deleted by hand: publish fails, says why, and the rule is flagged.
    let dnat = "DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    type_line(&b, &format!("sudo iptables -t nat -D {dnat}")).await;
    wait_until(&b, "publish fails", Duration::from_secs(10), |s| s["publish"] == "failed").await;
    open_step(&b, "publish").await;
    wait_codes(&b, "port.dnat_missing", Duration::from_secs(5)).await;
    let flagged = b.wait_for_text("[data-testid=rules] li.flagged", "DNAT", Duration::from_secs(5)).await.unwrap();
    assert!(flagged.contains("172.17.0.2:80"), "{flagged}");
    b.screenshot("steps-live-dnat-deleted.png").await.unwrap();
    // Stopping the container takes its port and rules away: nothing is broken any more.
    walk(&b, 15..17, &mut done, slow).await;
    wait_until(&b, "publish whole again", Duration::from_secs(10), |s| s["publish"] == "passed").await;

    // The image layer's file edited instead of the container's: copy-up fails and names the layer.
    open_step(&b, "copy-up").await;
    assert!(shown_codes(&b).await.contains(&"overlay.not_copied_up".to_string()));
    type_line(
        &b,
        "for d in $(docker inspect -f '{{.GraphDriver.Data.LowerDir}}' nginx-1 | tr : ' '); do f=$d/usr/share/nginx/html/index.html; [ -f $f ] && echo '<p>layer</p>' >> $f && break; done",
    )
    .await;
    wait_until(&b, "copy-up fails", Duration::from_secs(15), |s| s["copy-up"] == "failed").await;
    wait_codes(&b, "overlay.lower_edited", Duration::from_secs(5)).await;
    let el = b
        .client
        .execute("return document.querySelector('[data-testid=step-detail] [data-code=\"overlay.lower_edited\"]').dataset.element;", vec![])
        .await
        .unwrap();
    assert!(el.as_str().unwrap_or("").starts_with("layer:"), "{el}");
    assert!(b.client.find(Locator::Css("[data-testid=layer].flagged")).await.is_ok(), "the layer is flagged in the diagram");
    b.screenshot("steps-live-lower-edited.png").await.unwrap();
    // Done right, inside nginx-1, with vi: its own copy hides the layer's.
    walk(&b, 17..WALK.len(), &mut done, Duration::from_secs(240)).await;
    b.wait_for_text("[data-testid=lab-done]", "Every step is done", Duration::from_secs(10)).await.unwrap();
    b.screenshot("steps-live-done.png").await.unwrap();
    type_line(&b, "docker stop gourmetgram-app").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The session's recording, replayed: progress as it was, at each point.
    b.client.refresh().await.unwrap();
    b.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(20)).await.unwrap();
    let replay = b.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("[data-testid=replay]")).await.unwrap();
    replay.click().await.unwrap();
    b.wait_for_text("[data-testid=mode]", "replay", Duration::from_secs(10)).await.unwrap();
    let end = wait_until(&b, "the replay's end", Duration::from_secs(10), |s| s.len() == 15 && s["serve"] == "passed").await;
    assert_eq!(end["publish"], "passed");
    b.client
        .execute(
            "const r = document.querySelector('[data-testid=scrub]'); r.value = 1; r.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await
        .unwrap();
    let start = wait_until(&b, "the replay's start", Duration::from_secs(10), |s| s["serve"] != "passed").await;
    assert_eq!(start["serve"], "pending", "{start:?}");
    b.screenshot("steps-replay-start.png").await.unwrap();
    b.close().await;
    drop(d);
}
