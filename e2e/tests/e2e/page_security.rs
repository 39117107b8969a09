//! The lab page's door, tried as an attacker would in real Chromium: the
//! learner is signed in to the lab, then visits a page served from another
//! origin — the same address, another port, so the browser even sends the
//! SameSite=Strict cookie along. That page must not open the terminal or the
//! event stream, nor read the state or the recordings; a forged Host (DNS
//! rebinding) is refused; and the lab goes on working from its own origin.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::process::Stdio;
use std::time::Duration;

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use fantoccini::key::Key;
use fantoccini::Locator;

/// The attacker's page: every way it has to reach the lab, each result
/// written into `#result` as JSON once all have settled.
fn evil_page(lab: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id=result>running</pre><script>
const lab = "{lab}";
const out = {{}};
function ws(name, path, first) {{
  return new Promise(done => {{
    const r = {{opened: false, messages: [], closed: null}};
    out[name] = r;
    let s;
    try {{ s = new WebSocket("ws://" + lab + path); }} catch (e) {{ r.error = String(e); return done(); }}
    s.onopen = () => {{ r.opened = true; if (first) s.send(first); s.send(new TextEncoder().encode("id\r")); }};
    s.onmessage = m => r.messages.push(typeof m.data === "string" ? m.data.slice(0, 200) : "binary");
    s.onclose = e => {{ r.closed = e.code; done(); }};
    setTimeout(done, 4000);
  }});
}}
async function get(name, path, init) {{
  try {{
    const resp = await fetch("http://" + lab + path, init);
    out[name] = {{status: resp.status, type: resp.type, body: (await resp.text()).slice(0, 200)}};
  }} catch (e) {{ out[name] = {{error: String(e)}}; }}
}}
(async () => {{
  await Promise.all([
    ws("terminal", "/api/terminal?cols=80&rows=24", JSON.stringify({{ticket: "guess"}})),
    ws("events", "/api/events", null),
    get("state", "/api/state", {{credentials: "include"}}),
    get("recordings", "/api/recordings", {{credentials: "include"}}),
    get("ticket", "/api/terminal/ticket", {{method: "POST", credentials: "include"}}),
    get("ticket_nocors", "/api/terminal/ticket", {{method: "POST", mode: "no-cors", credentials: "include"}}),
    get("state_nocors", "/api/state", {{mode: "no-cors", credentials: "include"}}),
  ]);
  document.getElementById("result").textContent = "done " + JSON.stringify(out);
}})();
</script></body></html>"#
    )
}

fn count_recordings(sb: &Sandbox) -> usize {
    std::fs::read_dir(sb.dir().join("berth/data/recordings")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_cannot_reach_the_lab_and_the_lab_still_works() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let sb = Sandbox::new().unwrap();
    let page_addr = format!("{}:8080", sb.uplink.node_ip);
    let d = sb.start_berthd(&["--page-addr", &page_addr, "--page-dir", dist.to_str().unwrap()]).unwrap();
    let url = format!("http://{page_addr}/");

    // The attacker's page: same address, another port (same site, other origin).
    let evil_dir = sb.dir().join("evil");
    std::fs::create_dir_all(&evil_dir).unwrap();
    std::fs::write(evil_dir.join("index.html"), evil_page(&page_addr)).unwrap();
    let evil_url = format!("http://{}:8099/index.html", sb.uplink.node_ip);
    let _evil = sb
        .command("python3")
        .args(["-m", "http.server", "8099", "--bind", &sb.uplink.node_ip, "--directory"])
        .arg(&evil_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Without the token the lab shows only its sign-in form.
    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&url).await.unwrap();
    browser.wait_for_text("[data-testid=login]", "token", Duration::from_secs(10)).await.unwrap();
    browser.screenshot("page-login.png").await.unwrap();
    // With it, the learner is in: the shell is theirs.
    c.goto(&format!("{url}?token={}", sb.lab_token())).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await.unwrap();
    let sessions_before = count_recordings(&sb);
    assert_eq!(sessions_before, 1, "the page's own shell");

    // The learner wanders off to the attacker's page in the same browser.
    for _ in 0..50 {
        if c.goto(&evil_url).await.is_ok() && c.find(Locator::Id("result")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = browser.wait_for_text("#result", "done", Duration::from_secs(20)).await.unwrap();
    browser.screenshot("page-evil-origin.png").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(result.trim().trim_start_matches("done ")).unwrap();
    for name in ["terminal", "events"] {
        assert_eq!(v[name]["opened"], false, "{name} WebSocket opened from another origin: {v}");
        assert_eq!(v[name]["messages"].as_array().map(Vec::len), Some(0), "{name}: {v}");
    }
    for name in ["state", "recordings", "ticket"] {
        // CORS hides nothing here: the server refused before answering.
        assert!(v[name]["error"].is_string(), "{name} readable from another origin: {v}");
    }
    for name in ["ticket_nocors", "state_nocors"] {
        assert_eq!(v[name]["type"], "opaque", "{name}: {v}");
        assert_eq!(v[name]["body"], "", "{name}: {v}");
    }
    // And on the server's side: no shell was started, nothing handed out.
    let log = d.log_text();
    assert_eq!(log.matches("terminal session started").count(), 1, "only the lab's own shell:\n{log}");
    assert!(log.contains("refused a request from another origin"), "{log}");
    assert_eq!(count_recordings(&sb), sessions_before);

    // A forged Host (a DNS-rebinding page's name) is refused, even with the token.
    let o = sb
        .run(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: evil.example:8080",
                "-H",
                &sb.lab_auth_header(),
                &format!("{url}api/state"),
            ],
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403");
    // Tools with the token get in; without it, nothing.
    let code = |args: &[&str]| {
        let mut a = vec!["-sS", "-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&sb.run("curl", &a).unwrap().stdout).into_owned()
    };
    assert_eq!(code(&["-H", &sb.lab_auth_header(), &format!("{url}api/state")]), "200");
    assert_eq!(code(&[&format!("{url}api/state")]), "401");
    assert_eq!(code(&[&format!("{url}api/recordings")]), "401");

    // Back on the lab's own page: still signed in (the cookie), the tab's
    // shell works, and even its own origin needs a ticket to open a terminal.
    c.goto(&url).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await.unwrap();
    let input = c.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    input.send_keys(&format!("echo me=$(id -un)={}", char::from(Key::Enter))).await.unwrap();
    browser.wait_for_text("[data-testid=terminal]", "me=root=", Duration::from_secs(10)).await.unwrap();
    let code = c
        .execute_async(
            r#"const done = arguments[0];
               const s = new WebSocket(location.origin.replace("http", "ws") + "/api/terminal");
               s.onopen = () => s.send(JSON.stringify({ticket: "not-one-we-issued"}));
               s.onclose = e => done(e.code);
               setTimeout(() => done("timeout"), 12000);"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(code, serde_json::json!(4401), "a terminal without a valid ticket is closed");
    browser.screenshot("page-own-origin.png").await.unwrap();
    browser.close().await;
    assert_eq!(d.log_text().matches("terminal session started").count(), 1, "back to the tab's own shell, and no other started");
}
