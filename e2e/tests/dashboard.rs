//! The instructor's dashboard in Chromium, over a class on one machine
//! (berth-hub with the local spawner in a sandbox, as e2e/tests/classroom.rs
//! starts it): a tile per learner, a learner's container appearing in their
//! own tile within a second of their `docker run`, a DNAT rule deleted by
//! hand counted in the heatmap under `port.dnat_missing`, a learner's raised
//! hand (their page's help button), and the dashboard and its feed closed to
//! a learner's cookie (403).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::Locator;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

// The hub and terminal helpers below are the classroom test's (copied while
// that file is being finished; to move to e2e/src/ once it settles).

fn hub_bin() -> PathBuf {
    berth_e2e::berthd_bin().with_file_name("berth-hub")
}

/// berth-hub running in a sandbox's network namespace.
struct Hub {
    child: Child,
    addr: String,
    token: String,
    log: PathBuf,
}

impl Hub {
    fn start(sb: &Sandbox) -> Hub {
        assert!(hub_bin().is_file(), "build it first: cargo build -p berth-classroom --bin berth-hub");
        let addr = format!("{}:8090", sb.uplink.node_ip);
        let log = sb.dir().join("hub.log");
        let cgroup_parent = format!("berth-hub-{}.hub", sb.name);
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", sb.name))
            .arg("--")
            .arg(hub_bin())
            .args(["--addr", &addr, "--state-dir"])
            .arg(sb.dir().join("hub"))
            .arg("--berthd")
            .arg(berth_e2e::berthd_bin())
            .arg("--page-dir")
            .arg(berth_e2e::repo_root().join("dist"))
            .arg("--registry-storage")
            .arg(berth_e2e::state_dir().join("registry/storage"))
            .args(["--cgroup-parent", &cgroup_parent, "--reap-every-ms", "200", "--memory-mb", "768", "--pids", "512"])
            .env("RUST_LOG", "info,berth_classroom=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(sb.dir().join("hub.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut hub = Hub { child, addr, token: String::new(), log };
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(sb.dir().join("hub.out")).unwrap_or_default();
            if let Some(t) = out.lines().find_map(|l| l.split("?token=").nth(1)) {
                hub.token = t.trim().to_string();
                break;
            }
            if let Ok(Some(st)) = hub.child.try_wait() {
                panic!("berth-hub exited ({st}):\n{}", hub.log_text());
            }
            assert!(start.elapsed() < Duration::from_secs(20), "berth-hub did not start:\n{}", hub.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        hub
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl").args(["-sS", "-i", "--max-time", "20"]).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }

    fn body(text: &str) -> &str {
        text.split("\r\n\r\n").nth(1).unwrap_or("")
    }

    fn new_class(&self, name: &str, capacity: u32) -> serde_json::Value {
        let auth = format!("Authorization: Bearer {}", self.token);
        let data = serde_json::json!({"name": name, "capacity": capacity, "expires_in_s": 900}).to_string();
        let url = self.url("/hub/api/classes");
        let (s, text) = self.curl(&["-X", "POST", "-H", &auth, "-H", "Content-Type: application/json", "--data", &data, &url]);
        assert_eq!(s, 201, "{text}\n{}", self.log_text());
        serde_json::from_str(Hub::body(&text)).unwrap()
    }

    /// Joins as `name`: returns the session cookie (`name=value`).
    fn join(&self, class: &serde_json::Value, name: &str) -> String {
        let url = class["join_url"].as_str().unwrap().to_string();
        let (s, text) = self.curl(&["-X", "POST", "-H", &format!("Origin: {}", self.origin()), "--data", &format!("name={name}"), &url]);
        assert_eq!(s, 303, "{text}\n{}", self.log_text());
        let set = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
        set.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string()
    }

    /// Waits until the learner's node runs; returns the learner (`/hub/api/me`).
    fn wait_running(&self, cookie: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (s, text) = self.curl(&["-H", &format!("Cookie: {cookie}"), &self.url("/hub/api/me")]);
            assert_eq!(s, 200, "{text}");
            let me: serde_json::Value = serde_json::from_str(Hub::body(&text)).unwrap();
            match me["node"]["phase"].as_str() {
                Some("Running") => return me,
                Some("Failed") => panic!("node failed: {me}\n{}", self.log_text()),
                _ => {}
            }
            assert!(start.elapsed() < Duration::from_secs(60), "node not running: {me}\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while self.child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(60) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(url: &str, headers: &[(&str, String)]) -> Result<Ws, String> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(format!("{}", r.status().as_u16())),
        Err(e) => Err(e.to_string()),
    }
}

/// A learner's own terminal through the hub.
struct Term {
    ws: Ws,
    seen: String,
}

impl Term {
    async fn open(hub: &Hub, cookie: &str, shell: &str) -> Term {
        let (s, text) = hub.curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Cookie: {cookie}"),
            "-H",
            &format!("Origin: {}", hub.origin()),
            &hub.url("/api/terminal/ticket"),
        ]);
        assert_eq!(s, 200, "ticket: {text}");
        let ticket: serde_json::Value = serde_json::from_str(Hub::body(&text)).unwrap();
        let url = format!("ws://{}/api/terminal?id={shell}&cols=200&rows=50", hub.addr);
        let mut ws = ws_connect(&url, &[("cookie", cookie.to_string()), ("origin", hub.origin())]).await.unwrap();
        ws.send(Message::Text(serde_json::json!({"ticket": ticket["ticket"]}).to_string().into())).await.unwrap();
        let mut t = Term { ws, seen: String::new() };
        t.until("@node1", Duration::from_secs(30)).await;
        t
    }

    async fn until(&mut self, want: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        while !self.seen.contains(want) {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) {
                        if let Some(s) = v["scrollback"].as_str() {
                            self.seen.push_str(s);
                        }
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("the terminal: {other:?} waiting for {want:?}; seen: {}", self.seen),
            }
        }
        self.seen.clone()
    }

    /// Runs a command; returns what it printed.
    async fn run(&mut self, cmd: &str) -> String {
        let n = self.seen.len();
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!("{}x{}", std::process::id(), RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let line = format!("x=M; echo \"B${{x}}{tag}\"; {cmd}; echo \"E${{x}}{tag}\"\r");
        self.ws.send(Message::Binary(line.into_bytes().into())).await.unwrap();
        let end = format!("EM{tag}");
        let all = self.until(&end, Duration::from_secs(90)).await;
        let from = all[n..].find(&format!("BM{tag}")).map(|i| n + i).unwrap();
        let text = &all[from..];
        let text = &text[text.find('\n').map(|i| i + 1).unwrap_or(0)..];
        text[..text.find(&end).unwrap_or(text.len())].replace('\r', "")
    }
}

/// Waits until `css` matches something; returns how long it took.
async fn wait_for(browser: &Browser, css: &str, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if browser.client.find(Locator::Css(css)).await.is_ok() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("nothing matched {css} within {limit:?}"))
}

async fn count(browser: &Browser, css: &str) -> usize {
    browser.client.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instructors_dashboard_shows_each_learner_live_why_they_are_stuck_and_raised_hands() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let sb = Sandbox::new().unwrap();
    let hub = Hub::start(&sb);
    let class = hub.new_class("Dashboard", 3);
    let ada = hub.join(&class, "ada");
    let bob = hub.join(&class, "bob");
    let ada_me = hub.wait_running(&ada);
    let bob_me = hub.wait_running(&bob);
    let bob_id = bob_me["id"].as_str().unwrap().to_string();

    // A learner's cookie opens neither the dashboard nor its feed.
    let (s, text) = hub.curl(&["-H", &format!("Cookie: {ada}"), &hub.url("/hub/")]);
    assert_eq!(s, 403, "{text}");
    let (s, _) = hub.curl(&["-H", &format!("Cookie: {ada}"), &hub.url("/hub/classes")]);
    assert_eq!(s, 403);
    let feed = ws_connect(&format!("ws://{}/hub/api/feed", hub.addr), &[("cookie", ada.clone()), ("origin", hub.origin())]).await;
    assert_eq!(feed.err().as_deref(), Some("403"), "a learner opened the instructor's feed");

    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    let run = async {
        // cy joins in the browser and raises her hand with her page's button.
        c.goto(class["join_url"].as_str().unwrap()).await?;
        c.find(Locator::Css("[data-testid=join-name]")).await?.send_keys("cy").await?;
        c.find(Locator::Css("[data-testid=join] button")).await?.click().await?;
        wait_for(&browser, "[data-testid=hand-button][data-raised=false]", Duration::from_secs(60)).await.map_err(anyhow::Error::msg)?;
        c.find(Locator::Css("[data-testid=hand-button]")).await?.click().await?;
        wait_for(&browser, "[data-testid=hand-button][data-raised=true]", Duration::from_secs(10)).await.map_err(anyhow::Error::msg)?;
        browser.screenshot("dashboard-learner-hand.png").await?;

        // The instructor signs in (in the same browser: cy's cookie is replaced) and lands on the dashboard.
        c.goto(&hub.url(&format!("/?token={}", hub.token))).await?;
        assert!(c.current_url().await?.path() == "/hub/");
        browser.wait_for_text("[data-testid=feed]", "live", Duration::from_secs(30)).await?;
        let start = Instant::now();
        while count(&browser, "[data-testid=tile]").await != 3 {
            anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "not 3 tiles");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for name in ["ada", "bob", "cy"] {
            browser.wait_for_text("[data-testid=tile] [data-testid=tile-name]", name, Duration::from_secs(10)).await?;
        }
        // Each tile drew its node1 from the learner's snapshot: docker0.
        browser
            .wait_for_text(&format!("[data-testid=tile][data-learner={bob_id}]"), "docker0 172.17.0.1/16", Duration::from_secs(10))
            .await?;
        // cy's hand, raised before the dashboard opened, shows on her tile only.
        wait_for(&browser, "[data-testid=tile] [data-testid=hand]", Duration::from_secs(10)).await.map_err(anyhow::Error::msg)?;
        anyhow::ensure!(count(&browser, "[data-testid=hand]").await == 1, "one raised hand");
        let hand_tile = c.find(Locator::Css("[data-testid=tile]:has([data-testid=hand]) [data-testid=tile-name]")).await?.text().await?;
        anyhow::ensure!(hand_tile == "cy", "the hand is on {hand_tile}'s tile");

        // bob publishes nginx: the container shows in his tile, running, with its port, within a second.
        let mut t = Term::open(&hub, &bob, "dash0").await;
        let out = t.run("docker run --name nginx-public -d --rm -p 80:80 nginx:alpine").await;
        let ran = Instant::now();
        anyhow::ensure!(out.trim().lines().last().unwrap_or("").len() == 64, "docker run: {out}");
        let tile = format!("[data-testid=tile][data-learner={bob_id}]");
        let shown = wait_for(
            &browser,
            &format!("{tile} [data-testid=mini-container][data-name=nginx-public][data-status=running]"),
            Duration::from_secs(5),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let lag = ran.elapsed();
        eprintln!("dashboard: bob's nginx-public in his tile {shown:?} after docker run returned");
        anyhow::ensure!(lag <= Duration::from_secs(1), "the container took {lag:?} to show");
        browser.wait_for_text(&format!("{tile} [data-testid=mini-port]"), "80→80/tcp", Duration::from_secs(2)).await?;
        anyhow::ensure!(
            count(&browser, "[data-testid=mini-container][data-name=nginx-public]").await == 1,
            "only bob's tile has nginx-public"
        );

        // bob deletes the DNAT rule by hand: the heatmap counts him under port.dnat_missing at the publish step.
        let del =
            t.run("iptables -t nat $(iptables -t nat -S DOCKER | grep -- '-j DNAT' | head -1 | sed 's/^-A /-D /') && echo deleted").await;
        anyhow::ensure!(del.contains("deleted"), "{del}");
        let cell = "[data-testid=heat-cell][data-code=\"port.dnat_missing\"][data-step=publish]";
        wait_for(&browser, cell, Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?;
        let text = browser.wait_for_text(&format!("{cell} [data-testid=heat-who]"), "bob", Duration::from_secs(2)).await?;
        anyhow::ensure!(!text.contains("ada") && !text.contains("cy"), "only bob is stuck there: {text}");
        let n = c.find(Locator::Css(cell)).await?.attr("data-count").await?;
        anyhow::ensure!(n.as_deref() == Some("1"), "count {n:?}");
        browser.wait_for_text(&format!("{tile} [data-testid=tile-why]"), "port.dnat_missing", Duration::from_secs(2)).await?;
        browser.screenshot("dashboard.png").await?;

        // The filter "hand raised" keeps cy's tile alone; the heat cell's click keeps bob's.
        c.find(Locator::Css("[data-testid=filter] option[value=hand]")).await?.click().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::ensure!(count(&browser, "[data-testid=tile]").await == 1, "hand filter");
        c.find(Locator::Css(cell)).await?.click().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shown = c.find_all(Locator::Css("[data-testid=tile]")).await?;
        anyhow::ensure!(shown.len() == 1 && shown[0].attr("data-learner").await?.as_deref() == Some(bob_id.as_str()), "code filter");
        // Drill in: bob's own page, read-only, live.
        let href = c.find(Locator::Css(&format!("{tile} [data-testid=drill]"))).await?.attr("href").await?.unwrap_or_default();
        c.goto(&hub.url(&href)).await?;
        browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(30)).await?;
        anyhow::ensure!(c.find(Locator::Css("[data-testid=hand-button]")).await.is_err(), "no help button in the instructor's view");
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    if let Err(e) = run {
        panic!("{e:#}\n--- hub log:\n{}", hub.log_text());
    }
    let _ = ada_me;
}
