//! The page's terminal as a learner relies on it, in headless Chromium
//! against a berthd in the sandbox: `hostname` says node1 and the lab's
//! `sudo` prefix works; a reload comes
//! back to the same shell (its variables and cwd); scrubbing the timeline
//! and coming back types nothing into the shell, and keys typed while
//! scrubbed are said to go nowhere; after berthd restarts, the page
//! reconnects by itself and says the shell is a new one.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::Duration;

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::key::Key;
use fantoccini::Locator;

async fn type_line(browser: &Browser, line: &str) {
    let input = browser.client.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    input.send_keys(&format!("{line}{}", char::from(Key::Enter))).await.unwrap();
}

async fn terminal_text(browser: &Browser) -> String {
    browser.client.find(Locator::Css("[data-testid=terminal]")).await.unwrap().text().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_is_node1_survives_a_reload_ignores_replays_and_comes_back_after_a_restart() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let sb = Sandbox::new().unwrap();
    let page = format!("{}:8080", sb.uplink.node_ip);
    let args = ["--page-addr", page.as_str(), "--page-dir", dist.to_str().unwrap()];
    let mut d = sb.start_berthd(&args).unwrap();
    let url = format!("http://{page}/");

    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&format!("{url}?token={}", sb.lab_token())).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await.unwrap();

    // The terminal fits the window (its prompt in sight), at any size.
    for (w, h) in [(1280, 800), (900, 700), (1280, 800)] {
        c.set_window_size(w, h).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fits = c
            .execute("const r = document.querySelector('[data-testid=terminal]').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 150;", vec![])
            .await
            .unwrap();
        assert_eq!(fits, serde_json::json!(true), "the terminal overflows the {w}x{h} window");
    }

    // The shell's host is node1, as its prompt says.
    type_line(&browser, "echo host=$(hostname)=").await;
    browser.wait_for_text("[data-testid=terminal]", "host=node1=", Duration::from_secs(10)).await.unwrap();
    // The lab's `sudo` prefix works (the learner is root; no sudo is needed).
    type_line(&browser, "sudo echo via-sudo=$(id -u)=").await;
    browser.wait_for_text("[data-testid=terminal]", "via-sudo=0=", Duration::from_secs(10)).await.unwrap();

    // A reload comes back to the same shell.
    type_line(&browser, "export LABVAR=kept-42; cd /tmp; echo pid=$$=").await;
    let mut pid = String::new();
    for _ in 0..50 {
        let t = terminal_text(&browser).await;
        if let Some(line) = t.lines().find(|l| l.starts_with("pid=") && l[4..].starts_with(|c: char| c.is_ascii_digit())) {
            pid = line[4..].chars().take_while(char::is_ascii_digit).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!pid.is_empty(), "the shell's pid:\n{}", terminal_text(&browser).await);
    c.refresh().await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", &format!("pid={pid}="), Duration::from_secs(30)).await.unwrap();
    type_line(&browser, "echo back=$LABVAR:$(pwd):$$=").await;
    browser.wait_for_text("[data-testid=terminal]", &format!("back=kept-42:/tmp:{pid}="), Duration::from_secs(10)).await.unwrap();
    assert_eq!(d.log_text().matches("terminal session started").count(), 1, "one shell, reattached");

    // Output that asks the terminal questions (cursor position, colours):
    // replaying it while scrubbing must not type xterm's answers into the shell.
    // (Live, the shell reads the answer itself, as programs that ask do; and
    // an event gives the timeline something to scrub back over.)
    type_line(&browser, r"printf '\033[6n'; read -rs -d R answer; echo asked-${#answer}; docker volume create timeline-mark").await;
    browser.wait_for_text("[data-testid=terminal]", "\ntimeline-mark", Duration::from_secs(20)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    type_line(&browser, "clear").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.execute(
        "const r = document.querySelector('[data-testid=scrub]'); r.value = 0; r.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![],
    )
    .await
    .unwrap();
    browser.wait_for_text("[data-testid=position]", "0/", Duration::from_secs(5)).await.unwrap();
    // Keys typed while looking at the past go nowhere, and the page says so.
    type_line(&browser, "echo typed-in-the-past").await;
    browser.wait_for_text("[data-testid=term-notice]", "goes nowhere", Duration::from_secs(5)).await.unwrap();
    browser.screenshot("terminal-scrubbed-notice.png").await.unwrap();
    c.find(Locator::Css("[data-testid=now]")).await.unwrap().click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(c.find(Locator::Css("[data-testid=term-notice]")).await.is_err(), "the notice goes with the past");
    type_line(&browser, "echo now=$((6*7))=").await;
    let t = browser.wait_for_text("[data-testid=terminal]", "now=42=", Duration::from_secs(10)).await.unwrap();
    let cmd_line = t.lines().rev().find(|l| l.contains("echo now=")).unwrap_or_default().to_string();
    assert!(cmd_line.ends_with("# echo now=$((6*7))="), "junk typed into the shell before the command: {cmd_line:?}\n{t}");
    assert!(!t.contains("typed-in-the-past"), "keys typed while scrubbed reached the shell:\n{t}");

    // berthd restarts (SIGTERM, as a service manager stops it): the shell
    // ends with it (no orphan), the page reconnects by itself.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::block_in_place(|| d.child.wait()).unwrap();
    assert!(status.success(), "berthd stopped cleanly: {status}\n{}", d.log_text());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the page's shell {pid} outlived berthd");
    browser.wait_for_text("[data-testid=terminal]", "reconnecting", Duration::from_secs(10)).await.unwrap();
    d = sb.start_berthd(&args).unwrap();
    browser.wait_for_text("[data-testid=terminal]", "a new shell on node1", Duration::from_secs(30)).await.unwrap();
    type_line(&browser, "echo again=$((7*6))=").await;
    browser.wait_for_text("[data-testid=terminal]", "again=42=", Duration::from_secs(10)).await.unwrap();
    browser.screenshot("terminal-after-restart.png").await.unwrap();
    let text = terminal_text(&browser).await;
    browser.close().await;
    assert!(!text.contains("already in CLOSING"), "{text}");
    drop(d);
}
