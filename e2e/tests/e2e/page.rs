//! The lab page in headless Chromium against a berthd in the sandbox: a
//! command typed into the page's terminal runs on node1 and the diagrams
//! gain what it made; the session's recording replays to the same picture
//! with no backend involved. Screenshots go to target/e2e-artifacts.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::key::Key;
use fantoccini::Locator;

fn curl(url: &str, header: &str) -> String {
    let o = std::process::Command::new("curl").args(["-fsS", "--max-time", "10", "-H", header, url]).output().unwrap();
    assert!(o.status.success(), "GET {url}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// "ROWS COLS" printed after `marker` (the echo's output, not the command).
async fn stty_answer(browser: &Browser, marker: &str) -> String {
    for _ in 0..50 {
        if let Ok(t) = browser.client.find(Locator::Css("[data-testid=terminal]")).await.unwrap().text().await {
            for part in t.split(marker).skip(1) {
                let answer = part.split('=').next().unwrap_or("");
                let nums: Vec<&str> = answer.split_whitespace().collect();
                if nums.len() == 2 && nums.iter().all(|n| n.parse::<u32>().is_ok()) {
                    return answer.trim().to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no `stty size` answer after {marker}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_docker_run_in_the_page_draws_the_container_and_the_recording_replays_it() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let page_addr = format!("{}:8080", sb.uplink.node_ip);
    let home = sb.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
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
    sb.docker_ok(&d, &["pull", "nginx:alpine"]);
    let url = format!("http://{page_addr}/");
    // The address berthd prints: the token signs the browser in.
    let signed = format!("{url}?token={}", sb.lab_token());
    let auth = sb.lab_auth_header();

    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&signed).await.unwrap();
    // The token left the address bar (a cookie holds the session now).
    assert_eq!(c.current_url().await.unwrap().as_str(), url);
    browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(20)).await.unwrap();
    // The shell is up when its prompt is drawn.
    browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(20)).await.unwrap();
    let input = c.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    // The shell starts in the lab's home (berthd --lab-home), where the lab's files are.
    input.send_keys(&format!("echo at=$(pwd)={}", char::from(Key::Enter))).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", &format!("at={}=", home.display()), Duration::from_secs(10)).await.unwrap();
    // The PTY follows the window: `stty size` answers differently after a resize.
    input.send_keys(&format!("echo size=$(stty size)={}", char::from(Key::Enter))).await.unwrap();
    let before = stty_answer(&browser, "size=").await;
    c.set_window_size(900, 700).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    input.send_keys(&format!("echo resized=$(stty size)={}", char::from(Key::Enter))).await.unwrap();
    let after = stty_answer(&browser, "resized=").await;
    assert_ne!(before, after, "stty size {before:?} then {after:?}");
    c.set_window_size(1280, 800).await.unwrap();
    // Let the resize settle (bash redraws its prompt) before typing on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cmd = format!("docker run --name nginx-demo -d --rm -p 80:80 nginx:alpine{}", char::from(Key::Enter));
    input.send_keys(&cmd).await.unwrap();

    // The network diagram gains the container, its address and the port.
    let boxed = match browser.wait_for_text("[data-testid=container-nginx-demo]", "172.17.0.2", Duration::from_secs(60)).await {
        Ok(t) => t,
        Err(e) => {
            let term = c.find(Locator::Css("[data-testid=terminal]")).await.unwrap().text().await.unwrap_or_default();
            panic!(
                "{e}\n--- terminal:\n{term}\n--- berthd log (tail):\n{}",
                d.log_text().lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    };
    assert!(boxed.contains("eth0"), "{boxed}");
    let port = browser.wait_for_text("[data-testid=port-80]", "0.0.0.0:80", Duration::from_secs(60)).await.unwrap();
    assert!(port.contains("172.17.0.2:80/tcp"), "{port}");
    browser.wait_for_text("[data-testid=overlay-nginx-demo]", "mounted", Duration::from_secs(10)).await.unwrap();
    // The overlay's four directories are labelled, and the labels are drawn.
    let labels = c
        .execute(
            "return [...document.querySelectorAll('[data-testid=overlay-nginx-demo] text.k')].map(t => t.textContent + ':' + (t.getBBox().width > 20));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(labels, serde_json::json!(["MergedDir:true", "UpperDir:true", "WorkDir:true", "LowerDir:true"]), "overlay labels");
    // Clicking the port highlights its DNAT rule and shows the evidence.
    c.find(Locator::Css("[data-testid=port-80] rect")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("[data-testid=rules] li.hit", "--to-destination 172.17.0.2:80", Duration::from_secs(10)).await.unwrap();
    browser.wait_for_text("[data-testid=evidence]", "port 0.0.0.0:80", Duration::from_secs(10)).await.unwrap();
    browser.screenshot("page-live.png").await.unwrap();
    // The container really serves on node1's address.
    assert!(curl(&format!("http://{}/", sb.uplink.node_ip), "X-Lab: none").contains("Welcome to nginx!"));

    // The session's recording: listed, downloadable, and it holds the run.
    let list: serde_json::Value = serde_json::from_str(&curl(&format!("{url}api/recordings"), &auth)).unwrap();
    let cast = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| curl(&format!("http://{page_addr}{}", r["url"].as_str().unwrap()), &auth))
        .find(|t| t.contains("nginx-demo"))
        .expect("a recording with the session");
    let rec = berth_shared::parse_cast(&cast).unwrap();
    let typed: String = rec
        .frames
        .iter()
        .filter_map(|(_, f)| match f {
            berth_shared::Frame::Output(o) => Some(o.as_str()),
            _ => None,
        })
        .collect();
    assert!(typed.contains("docker run --name nginx-demo"), "{typed}");
    assert!(rec.frames.iter().any(
        |(_, f)| matches!(f, berth_shared::Frame::Event(e) if matches!(e.event, berth_shared::Event::PortPublished { host_port: 80, .. }))
    ));
    let file = sb.dir().join("session.cast");
    std::fs::write(&file, &cast).unwrap();
    // The switch: the same page on the simulated node1, and back.
    c.find(Locator::Css("[data-testid=to-sim]")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("[data-testid=mode]", "simulated node1", Duration::from_secs(20)).await.unwrap();
    c.find(Locator::Css("[data-testid=to-live]")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(20)).await.unwrap();
    browser.close().await;

    // Replayed in a fresh page, from the file alone.
    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&signed).await.unwrap();
    c.find(Locator::Css("[data-testid=open-recording]")).await.unwrap().send_keys(file.to_str().unwrap()).await.unwrap();
    browser.wait_for_text("[data-testid=mode]", "replay", Duration::from_secs(10)).await.unwrap();
    browser.wait_for_text("[data-testid=container-nginx-demo]", "172.17.0.2", Duration::from_secs(10)).await.unwrap();
    browser.wait_for_text("[data-testid=port-80]", "172.17.0.2:80/tcp", Duration::from_secs(10)).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", "docker run --name nginx-demo", Duration::from_secs(10)).await.unwrap();
    browser.screenshot("page-replay.png").await.unwrap();
    // Back to the start of the recording: the container is not there yet.
    c.execute(
        "const r = document.querySelector('[data-testid=scrub]'); r.value = 0; r.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![],
    )
    .await
    .unwrap();
    browser.wait_for_text("[data-testid=position]", "0/", Duration::from_secs(5)).await.unwrap();
    assert!(c.find(Locator::Css("[data-testid=container-nginx-demo]")).await.is_err(), "scrubbed to the start");
    browser.close().await;
    sb.docker_ok(&d, &["stop", "nginx-demo"]);
}

/// A paused container and one whose healthcheck fails, as the page's
/// network diagram draws them (screenshot: page-paused-health.png).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_diagram_marks_a_paused_and_an_unhealthy_container() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let page_addr = format!("{}:8080", sb.uplink.node_ip);
    let d = sb
        .start_berthd(&["--registry-mirror", "http://127.0.0.1:5000", "--page-addr", &page_addr, "--page-dir", dist.to_str().unwrap()])
        .unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    sb.docker_ok(&d, &["run", "-d", "--name", "frozen", "alpine", "sleep", "300"]);
    sb.docker_ok(&d, &["pause", "frozen"]);
    sb.docker_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sick",
            "--health-cmd",
            "false",
            "--health-interval",
            "300ms",
            "--health-retries",
            "1",
            "alpine",
            "sleep",
            "300",
        ],
    );
    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&format!("http://{page_addr}/?token={}", sb.lab_token())).await.unwrap();
    browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(20)).await.unwrap();
    browser.wait_for_text("[data-testid=container-frozen]", "paused", Duration::from_secs(20)).await.unwrap();
    browser.wait_for_text("[data-testid=container-sick]", "(unhealthy)", Duration::from_secs(20)).await.unwrap();
    let class = c.find(Locator::Css("[data-testid=container-frozen]")).await.unwrap().attr("class").await.unwrap().unwrap_or_default();
    assert!(class.contains("paused"), "{class}");
    browser.screenshot("page-paused-health.png").await.unwrap();
    // Unpaused, the mark goes.
    sb.docker_ok(&d, &["unpause", "frozen"]);
    let start = std::time::Instant::now();
    loop {
        let t = c.find(Locator::Css("[data-testid=container-frozen]")).await.unwrap().text().await.unwrap_or_default();
        if !t.contains("paused") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still drawn paused: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
}
