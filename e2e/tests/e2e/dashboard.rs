//! The instructor's dashboard in Chromium, over a class on one machine
//! (berth-hub with the local spawner in a sandbox, as e2e/tests/classroom.rs
//! starts it): a tile per learner, a learner's container appearing in their
//! own tile within a second of their `docker run`, a DNAT rule deleted by
//! hand counted in the heatmap under `port.dnat_missing`, a learner's raised
//! hand (their page's help button), and the dashboard and its feed closed to
//! a learner's cookie (403).
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::{Duration, Instant};

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::Locator;

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
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    if let Err(e) = run {
        panic!("{e:#}\n--- hub log:\n{}", hub.log_text());
    }
}
