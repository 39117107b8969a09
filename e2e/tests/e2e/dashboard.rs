//! The instructor's dashboard in Chromium, over a class on one machine
//! (berth-hub with the local spawner in a sandbox, as e2e/tests/e2e/classroom.rs
//! starts it): a tile per learner, a learner's container appearing in their
//! own tile within a second of their `docker run`, a DNAT rule deleted by
//! hand counted in the heatmap under `port.dnat_missing`, a learner's raised
//! hand (their page's help button), and the dashboard and its feed closed to
//! a learner's cookie (403); then drilling into bob's node1 (his terminal
//! mirrored read-only), taking his terminal over (his page's banner, the
//! instructor's keystrokes in his shell, the log), a broadcast with a command
//! (his page runs it, ada hears it, his tile shows it as his last command),
//! and the class's exports.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::{Duration, Instant};

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::Locator;
use futures_util::StreamExt;

use berth_e2e::hub::{ws_connect, Hub, Term};

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
    let hub = Hub::start(&sb, &[]);
    let class = hub.new_class("Dashboard", 3, 900);
    let ada = hub.join(&class, "ada");
    let bob = hub.join(&class, "bob");
    hub.wait_running(&ada);
    hub.wait_running(&bob);
    let bob_me = hub.me(&bob);
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
        let mut t = Term::open(&hub, "", ("cookie", bob.clone()), "dash0").await.unwrap();
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
        browser.wait_for_text("[data-testid=watching]", "bob's node1 — read-only", Duration::from_secs(10)).await?;
        anyhow::ensure!(c.find(Locator::Css("[data-testid=to-sim]")).await.is_err(), "no simulator switch in the instructor's view");

        // The drill-in mirrors bob's terminal: what he types appears in the instructor's.
        browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await?;
        let out = t.run("echo mirror-$((6*7))").await;
        anyhow::ensure!(out.contains("mirror-42"), "{out}");
        browser.wait_for_text("[data-testid=terminal]", "mirror-42", Duration::from_secs(5)).await?;
        // Read-only: the instructor's keystrokes go nowhere.
        let keys = c.find(Locator::Css("[data-testid=terminal] textarea")).await?;
        keys.send_keys("echo read-only-$((1+1))\n").await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        t.run("true").await;
        anyhow::ensure!(!t.seen.contains("read-only-2"), "a read-only view typed into bob's shell");
        browser.screenshot("dashboard-drill-in.png").await?;

        // bob's own page, in a second browser: his cookie, his node1.
        let learner = Browser::start().await?;
        let lc = &learner.client;
        let check = async {
            hub.browse_as(&learner, &bob).await?;
            lc.goto(&hub.url("/")).await?;
            wait_for(&learner, "[data-testid=hand-button][data-raised=false]", Duration::from_secs(60))
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(lc.find(Locator::Css("[data-testid=takeover-banner]")).await.is_err(), "a banner before any takeover");

            // Take over: bob sees the banner, and the instructor's keystrokes reach his shell.
            c.find(Locator::Css("[data-testid=takeover]")).await?.click().await?;
            wait_for(&browser, "[data-testid=takeover][data-active=true]", Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?;
            let banner =
                learner.wait_for_text("[data-testid=takeover-banner]", "is typing in your terminal", Duration::from_secs(5)).await?;
            anyhow::ensure!(banner.starts_with("instructor "), "{banner}");
            learner.screenshot("dashboard-takeover-learner.png").await?;
            let keys = c.find(Locator::Css("[data-testid=terminal] textarea")).await?;
            keys.send_keys("echo typed-by-$((40+2))-instructor\n").await?;
            t.until("typed-by-42-instructor", Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?;
            browser.screenshot("dashboard-takeover.png").await?;
            // Handing back: the banner goes, and the log has who and when.
            c.find(Locator::Css("[data-testid=takeover]")).await?.click().await?;
            wait_for(&browser, "[data-testid=takeover][data-active=false]", Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?;
            let start = Instant::now();
            while lc.find(Locator::Css("[data-testid=takeover-banner]")).await.is_ok() {
                anyhow::ensure!(start.elapsed() < Duration::from_secs(5), "the banner stayed after the hand-back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (s, log) = hub.api("GET", "/hub/api/takeovers", None);
            anyhow::ensure!(s == 200, "takeovers: {s}");
            let log = log.as_array().cloned().unwrap_or_default();
            anyhow::ensure!(log.len() == 1, "{log:?}");
            anyhow::ensure!(log[0]["name"] == "bob" && log[0]["ended_ms"].as_u64() >= log[0]["started_ms"].as_u64(), "{log:?}");
            anyhow::ensure!(log[0]["by"].as_str().is_some_and(|b| b.starts_with("instructor ")), "{log:?}");

            // Broadcast from the dashboard: bob's page shows it, runs its command; ada's notices have it.
            let mut ada_notices =
                ws_connect(&format!("ws://{}/api/hub/notices", hub.addr), &[("cookie", ada.clone()), ("origin", hub.origin())])
                    .await
                    .map_err(anyhow::Error::msg)?;
            c.goto(&hub.url("/hub/")).await?;
            browser.wait_for_text("[data-testid=feed]", "live", Duration::from_secs(30)).await?;
            wait_for(&browser, "[data-testid=class] [data-testid=broadcast-text]", Duration::from_secs(10))
                .await
                .map_err(anyhow::Error::msg)?;
            c.find(Locator::Css("[data-testid=broadcast-text]")).await?.send_keys("Look at the DNAT rules").await?;
            c.find(Locator::Css("[data-testid=broadcast-command]")).await?.send_keys("iptables -t nat -S DOCKER").await?;
            c.find(Locator::Css("[data-testid=broadcast-send]")).await?.click().await?;
            wait_for(&browser, "[data-testid=broadcast-ok]", Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?;
            learner.wait_for_text("[data-testid=broadcast-banner]", "Look at the DNAT rules", Duration::from_secs(5)).await?;
            learner.wait_for_text("[data-testid=broadcast-command]", "iptables -t nat -S DOCKER", Duration::from_secs(2)).await?;
            learner.screenshot("dashboard-broadcast-learner.png").await?;
            learner.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await?;
            lc.find(Locator::Css("[data-testid=broadcast-run]")).await?.click().await?;
            learner.wait_for_text("[data-testid=terminal]", "-N DOCKER", Duration::from_secs(10)).await?;
            let start = Instant::now();
            loop {
                let m = tokio::time::timeout(Duration::from_secs(5), ada_notices.next()).await;
                let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) = m else { anyhow::bail!("ada's notices: {m:?}") };
                if t.contains("Look at the DNAT rules") {
                    break;
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(5), "ada never heard the broadcast");
            }
            // The last command of each learner is on their tile: bob's is the broadcast's.
            browser.wait_for_text(&format!("{tile} [data-testid=tile-cmd]"), "$ iptables -t nat -S DOCKER", Duration::from_secs(5)).await?;
            browser.screenshot("dashboard-broadcast.png").await?;
            anyhow::Ok(())
        }
        .await;
        learner.close().await;
        check?;

        // After class: the progress as CSV and JSON, and one tar with every learner's events and recordings.
        let (s, csv) = hub.curl(&[
            "-H",
            &format!("Authorization: Bearer {}", hub.token),
            &hub.url(&format!("/hub/api/classes/{}/progress.csv", class["id"].as_str().unwrap())),
        ]);
        anyhow::ensure!(s == 200, "progress.csv: {s} {csv}");
        let csv = Hub::body(&csv);
        let bob_rows: Vec<&str> = csv.lines().filter(|l| l.starts_with(&format!("{bob_id},bob,"))).collect();
        anyhow::ensure!(bob_rows.len() == 15, "bob's rows: {csv}");
        anyhow::ensure!(
            bob_rows
                .iter()
                .any(|r| r.starts_with(&format!("{bob_id},bob,publish,")) && r.contains(",failed,") && r.contains("port.dnat_missing")),
            "{csv}"
        );
        let (s, json) = hub.api("GET", &format!("/hub/api/classes/{}/progress.json", class["id"].as_str().unwrap()), None);
        anyhow::ensure!(s == 200 && json["learners"].as_array().map(Vec::len) == Some(3), "{json}");
        let tar_path = sb.dir().join("export.tar");
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "60", "-w", "%{http_code}", "-o", tar_path.to_str().unwrap(), "-H"])
            .arg(format!("Authorization: Bearer {}", hub.token))
            .arg(hub.url(&format!("/hub/api/classes/{}/export.tar", class["id"].as_str().unwrap())))
            .output()?;
        anyhow::ensure!(out.stdout == b"200", "export.tar: {}", String::from_utf8_lossy(&out.stdout));
        let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&tar_path)?)
            .entries()?
            .map(|e| e.map(|e| e.path().map(|p| p.display().to_string()).unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        names.sort();
        anyhow::ensure!(names.contains(&format!("bob-{bob_id}/events.jsonl")), "{names:?}");
        anyhow::ensure!(
            names.iter().any(|n| n.starts_with(&format!("bob-{bob_id}/recordings/session-")) && n.ends_with(".cast")),
            "{names:?}"
        );
        anyhow::ensure!(names.contains(&"progress.csv".to_string()) && names.contains(&"progress.json".to_string()), "{names:?}");
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    if let Err(e) = run {
        panic!("{e:#}\n--- hub log:\n{}", hub.log_text());
    }
}
