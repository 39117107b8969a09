//! The classroom on one machine: berth-hub with the local spawner, run
//! inside a throwaway sandbox (the hub's own network namespace, so every
//! learner's uplink and the hub's firewall live and die in it). Learners
//! join with the class's link and get their own node1 each; they see only
//! their own containers, links, mounts and processes; a learner's cookie
//! opens no other node; the instructor lists the class, reads a learner's
//! page and terminal read-only and hears every learner's events; an
//! expired class's nodes are removed with nothing left.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::Sandbox;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use berth_e2e::hub::{ws_connect, Hub, Term};

fn node_dirs(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("nodes"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn hub_links(sb: &Sandbox) -> Vec<String> {
    let o = sb.run("ip", &["-o", "link", "show"]).unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.starts_with("bhub"))
        .collect()
}

/// Processes whose command line names the node's dir (its berthd, registry).
fn procs_of_node(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&format!("nodes/{id}/")) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

fn cgroups_of(parent: &str) -> Vec<PathBuf> {
    berth_e2e::sandbox::berth_cgroups_of(parent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_learners_each_get_their_own_node1_and_the_instructor_watches_read_only() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let sb = Sandbox::new().unwrap();
    let mut hub = Hub::start(&sb, &[]);
    let class = hub.new_class("Monday", 3, 900);
    assert!(class["join_url"].as_str().unwrap().contains("/join/"), "{class}");

    // Three learners join; each node1 is ready about a second later.
    let names = ["ada", "bob", "cy"];
    let mut cookies = Vec::new();
    let mut nodes = Vec::new();
    let mut ready = Vec::new();
    for n in names {
        let t = Instant::now();
        let c = hub.join(&class, n);
        nodes.push(hub.wait_running(&c));
        ready.push(t.elapsed().as_millis());
        cookies.push(c);
    }
    eprintln!("classroom: join → node1 ready (ms): {ready:?}");
    // A fourth is one too many.
    let (s, text) = hub.curl(&["-X", "POST", "--data", "name=dee", class["join_url"].as_str().unwrap()]);
    assert_eq!(s, 409, "{text}");

    // Each learner, in their own terminal through the hub: node1, their own
    // container only, their own links, mounts and processes.
    // The hub's side forwards, as a machine running Docker does: only the
    // hub's firewall keeps a learner's own routes from reaching anything.
    let o = sb.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).unwrap();
    assert!(o.status.success(), "{}", berth_e2e::sandbox::out(&o));
    let mut terms = Vec::new();
    for (i, c) in cookies.iter().enumerate() {
        let mut t = Term::open(&hub, "", ("cookie", c.clone()), &format!("tab{i}")).await.unwrap();
        t.until("@node1", Duration::from_secs(20)).await.unwrap();
        let out = t.run(&format!("docker run -d --name box-{} alpine sleep 600 >/dev/null 2>&1 && hostname", names[i])).await;
        if out.trim() != "node1" {
            let log = t.run("cat ../registry.log; curl -sS -m 2 http://127.0.0.1:5000/v2/").await;
            panic!("{out}\n--- registry:\n{log}");
        }
        terms.push(t);
    }
    for (i, t) in terms.iter_mut().enumerate() {
        let me = names[i];
        let ps = t.run("docker ps -a --format '{{.Names}}'").await;
        assert_eq!(ps.trim(), format!("box-{me}"), "{me} sees only their own container");
        // (ip may warn on stderr "Peer netns reference is invalid" for a
        // veth whose peer's namespace it cannot name: not a link.)
        let links = t.run("ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\\n' ' '").await;
        let links: Vec<&str> = links.split_whitespace().collect();
        assert!(links.contains(&"docker0") && links.contains(&"eth0") && links.contains(&"lo"), "{me}: {links:?}");
        assert!(links.iter().all(|l| ["docker0", "eth0", "lo"].contains(l) || l.starts_with("veth")), "{me}: {links:?}");
        assert_eq!(links.iter().filter(|l| l.starts_with("veth")).count(), 1, "one container's veth: {links:?}");
        let overlays = t.run("mount | grep -c '^overlay on '").await;
        assert_eq!(overlays.trim(), "1", "{me} sees one overlay (their container's)");
        let own = nodes[i]["id"].as_str().unwrap();
        let mounts = t.run("mount | grep -c 'nodes/' ; ls /var/tmp/*/hub/nodes/ 2>&1 | tr '\\n' ' '").await;
        for (j, other) in nodes.iter().enumerate() {
            if j != i {
                assert!(!mounts.contains(other["id"].as_str().unwrap()), "{me} sees another node's files: {mounts}");
            }
        }
        assert!(mounts.contains(own), "{me}'s own node dir: {mounts}");
        let procs = t.run("ps -eo pid=,args= | tr -s ' '").await;
        let daemons: Vec<&str> = procs.lines().filter(|l| l.contains("berthd --host")).collect();
        assert_eq!(daemons.len(), 1, "{me}: one berthd, their own: {procs}");
        assert!(daemons[0].trim().starts_with("1 ") && daemons[0].contains(own), "{me}'s berthd is their node's init: {procs}");
        assert!(!procs.contains("berth-hub") && !procs.contains("nsenter"), "{me} sees the hub: {procs}");
        let sleeps = t.run("ps -eo args= | grep -c '^sleep 600'").await;
        assert_eq!(sleeps.trim(), "1", "{me} sees only their own container's process");
        // Nothing leaves the node but replies to the hub, even with a route of their own.
        let hub_ip = nodes[i]["labels"]["hub_ip"].as_str().unwrap().to_string();
        let other_ip = nodes[(i + 1) % 3]["addr"].as_str().unwrap().to_string();
        let reach = t
            .run(&format!(
                "ip route add default via {hub_ip} && \
                 curl -s -o /dev/null -m 2 -w 'hub=%{{http_code}} ' http://{}/; \
                 curl -s -o /dev/null -m 2 -w 'other=%{{http_code}}' http://{other_ip}/api/health; ip route del default",
                hub.addr
            ))
            .await;
        assert!(reach.contains("hub=000") && reach.contains("other=000"), "{me} reached out: {reach}");
    }

    // A learner's cookie opens no other learner's node or stream.
    let bob_node = nodes[1]["id"].as_str().unwrap().to_string();
    let (s, text) = hub.curl(&["-H", &format!("Cookie: {}", cookies[0]), &hub.url(&format!("/n/{bob_node}/api/state"))]);
    assert_eq!(s, 403, "{text}");
    let r = ws_connect(&format!("ws://{}/n/{bob_node}/api/events", hub.addr), &[("cookie", cookies[0].clone()), ("origin", hub.origin())])
        .await;
    assert_eq!(r.err().as_deref(), Some("403"), "ada opened bob's stream");
    let r = Term::open(&hub, &format!("/n/{bob_node}"), ("cookie", cookies[0].clone()), "tab1").await;
    assert!(r.is_err(), "ada opened bob's terminal");
    // Their own stream works.
    let mut ev =
        ws_connect(&format!("ws://{}/api/events", hub.addr), &[("cookie", cookies[0].clone()), ("origin", hub.origin())]).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ev.next()).await.unwrap().unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("box-ada") && !first.to_text().unwrap().contains("box-bob"), "ada's own state");

    // The instructor: the class with its three running learners...
    let (s, classes) = hub.api("GET", "/hub/api/classes", None);
    assert_eq!(s, 200);
    let learners = classes[0]["learners"].as_array().unwrap();
    assert_eq!(learners.len(), 3, "{classes}");
    assert!(learners.iter().all(|l| l["node"]["phase"] == "Running" && l["node"]["addr"].is_string()), "{classes}");
    assert!(learners.iter().all(|l| l["last_activity_ms"].as_u64().unwrap() > 0));
    // ...a learner's page and state, read-only...
    let auth = format!("Authorization: Bearer {}", hub.token);
    let (s, text) = hub.curl(&["-H", &auth, &hub.url(&format!("/n/{bob_node}/api/state"))]);
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("box-bob") && !text.contains("box-ada"), "bob's own state");
    let (s, _) = hub.curl(&["-H", &auth, &hub.url(&format!("/n/{bob_node}/"))]);
    assert_eq!(s, 200, "bob's page");
    let (s, text) = hub.curl(&["-X", "POST", "-H", &auth, &hub.url(&format!("/n/{bob_node}/api/anything"))]);
    assert_eq!(s, 403, "{text}");
    // ...and bob's terminal, watched: what bob types shows, what the instructor types never reaches it.
    let mut view =
        Term::open(&hub, &format!("/n/{bob_node}"), ("authorization", format!("Bearer {}", hub.token)), "ignored").await.unwrap();
    view.until("box-bob", Duration::from_secs(10)).await.unwrap();
    view.ws.send(Message::Binary(b"touch /tmp/instructor-was-here\r".to_vec().into())).await.unwrap();
    let out = terms[1].run("echo watched-by-$((6*7))").await;
    assert!(out.contains("watched-by-42"));
    view.until("watched-by-42", Duration::from_secs(10)).await.unwrap();
    let out = terms[1].run("ls /tmp/instructor-was-here 2>&1 | wc -l; ls /tmp").await;
    assert!(!out.contains("instructor-was-here"), "the instructor's keys reached bob's shell: {out}");

    // The instructor's feed: every learner's events, tagged by learner.
    let mut feed =
        ws_connect(&format!("ws://{}/hub/api/feed", hub.addr), &[("authorization", format!("Bearer {}", hub.token))]).await.unwrap();
    let roster = tokio::time::timeout(Duration::from_secs(5), feed.next()).await.unwrap().unwrap().unwrap();
    assert!(roster.to_text().unwrap().contains("\"roster\""), "{roster}");
    let cy_id = nodes[2]["id"].as_str().unwrap().to_string();
    terms[2].run("docker create --name feed-cy alpine >/dev/null").await;
    let end = Instant::now() + Duration::from_secs(10);
    let mut heard = false;
    while Instant::now() < end && !heard {
        if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(1), feed.next()).await {
            let t = m.to_text().unwrap_or("").to_string();
            heard = t.contains(&format!("\"node\":\"{cy_id}\"")) && t.contains("\"name\":\"cy\"") && t.contains("feed-cy");
        }
    }
    assert!(heard, "cy's new container reached the instructor's feed");

    // Each learner, in their own page (Chromium, through the hub): the first
    // step's command, run from the steps panel, passes the step there.
    let browser = Browser::start().await.unwrap();
    let pages = async {
        for (i, c) in cookies.iter().enumerate() {
            hub.browse_as(&browser, c).await?;
            browser.client.goto(&hub.url("/")).await?;
            browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(30)).await?;
            browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await?;
            let step = |state: &str| format!("[data-testid=lab-step][data-step=hello][data-state={state}]");
            browser.client.find(fantoccini::Locator::Css(&step("current"))).await?;
            browser.client.find(fantoccini::Locator::Css("[data-testid=step-detail] [data-testid=run-in-terminal]")).await?.click().await?;
            browser.wait_for_text("[data-testid=terminal]", "Hello from Docker!", Duration::from_secs(30)).await?;
            let start = Instant::now();
            while browser.client.find(fantoccini::Locator::Css(&step("passed"))).await.is_err() {
                anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "{}: the first step never passed in their page", names[i]);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            browser.screenshot(&format!("classroom-{}-first-step.png", names[i])).await?;
        }
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    if let Err(e) = pages {
        panic!("{e:#}\n--- hub log:\n{}", hub.log_text());
    }
    for t in terms.iter_mut() {
        let ps = t.run("docker ps -a --format '{{.Image}}' | grep -c '^hello-world$'").await;
        assert_eq!(ps.trim(), "1", "each ran hello-world once, on their own node1");
    }

    // Ending the hub removes every node: nothing left.
    drop(terms);
    drop(view);
    drop(ev);
    drop(feed);
    let st = hub.stop();
    assert!(st.success(), "{st}\n{}", hub.log_text());
    assert_eq!(node_dirs(&hub.state), Vec::<String>::new());
    assert_eq!(hub_links(&sb), Vec::<String>::new());
    assert_eq!(cgroups_of(&hub.cgroup_parent), Vec::<PathBuf>::new());
    assert_eq!(cgroups_of(&format!("{}.", sb.name)), Vec::<PathBuf>::new(), "berthd's container cgroups");
    for n in &nodes {
        assert_eq!(procs_of_node(n["id"].as_str().unwrap()), Vec::<String>::new(), "node's processes left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_class_has_its_nodes_removed_with_nothing_left() {
    let sb = Sandbox::new().unwrap();
    let hub = Hub::start(&sb, &[]);
    let class = hub.new_class("Short", 2, 6);
    let cookie = hub.join(&class, "eve");
    let node = hub.wait_running(&cookie);
    let pid: i32 = node["labels"]["pid"].as_str().unwrap().parse().unwrap();
    let cgroup = PathBuf::from(node["labels"]["cgroup"].as_str().unwrap());
    assert!(cgroup.exists());
    assert_eq!(node_dirs(&hub.state).len(), 1);
    assert_eq!(hub_links(&sb).len(), 1);
    // The reaper, once the class is past its expiry.
    let start = Instant::now();
    loop {
        let (_, c) = hub.api("GET", &format!("/hub/api/classes/{}", class["id"].as_str().unwrap()), None);
        if c["expired"] == true && c["learners"][0]["node"]["phase"] == "Gone" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "not reaped: {c}\n{}", hub.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = pid;
    let id = node["id"].as_str().unwrap();
    assert_eq!(procs_of_node(id), Vec::<String>::new(), "node1's processes are gone\n{}", hub.log_text());
    assert!(!cgroup.exists(), "its cgroup is gone");
    assert_eq!(node_dirs(&hub.state), Vec::<String>::new(), "its data root is gone");
    assert_eq!(hub_links(&sb), Vec::<String>::new(), "its uplink is gone");
    let left = cgroups_of(&format!("{}.", sb.name));
    assert!(left.iter().all(|c| c.file_name().unwrap().to_string_lossy().starts_with("berth-hub-")), "only the hub's own parent: {left:?}");
    // The learner is out; the link no longer works.
    let (s, _) = hub.curl(&["-H", &format!("Cookie: {cookie}"), &hub.url("/api/state")]);
    assert_eq!(s, 401);
    let (s, _) = hub.curl(&["-X", "POST", "--data", "name=late", class["join_url"].as_str().unwrap()]);
    assert_eq!(s, 410);
}

/// The attacker's page: every WebSocket and fetch it could try on the hub,
/// results written into `#result` as JSON once all have settled.
fn evil_page(hub: &str, node: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id=result>running</pre><script>
const hub = "{hub}";
const out = {{}};
function ws(name, path, first) {{
  return new Promise(done => {{
    const r = {{opened: false, messages: [], closed: null}};
    out[name] = r;
    let s;
    try {{ s = new WebSocket("ws://" + hub + path); }} catch (e) {{ r.error = String(e); return done(); }}
    s.onopen = () => {{ r.opened = true; if (first) s.send(first); s.send(new TextEncoder().encode("id\r")); }};
    s.onmessage = m => r.messages.push(typeof m.data === "string" ? m.data.slice(0, 200) : "binary");
    s.onclose = e => {{ r.closed = e.code; done(); }};
    setTimeout(done, 4000);
  }});
}}
async function get(name, path, init) {{
  try {{
    const resp = await fetch("http://" + hub + path, init);
    out[name] = {{status: resp.status, type: resp.type, body: (await resp.text()).slice(0, 200)}};
  }} catch (e) {{ out[name] = {{error: String(e)}}; }}
}}
(async () => {{
  await Promise.all([
    ws("terminal", "/api/terminal?id=tab0&cols=80&rows=24", JSON.stringify({{ticket: "guess"}})),
    ws("events", "/api/events", null),
    ws("node_events", "/n/{node}/api/events", null),
    ws("node_terminal", "/n/{node}/api/terminal?id=tab0", JSON.stringify({{ticket: "guess"}})),
    ws("feed", "/hub/api/feed", null),
    get("state", "/api/state", {{credentials: "include"}}),
    get("ticket", "/api/terminal/ticket", {{method: "POST", credentials: "include"}}),
    get("me", "/hub/api/me", {{credentials: "include"}}),
  ]);
  document.getElementById("result").textContent = "done " + JSON.stringify(out);
}})();
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_opens_no_websocket_to_the_hub_in_chromium() {
    use fantoccini::key::Key;
    use fantoccini::Locator;
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let sb = Sandbox::new().unwrap();
    let hub = Hub::start(&sb, &[]);
    let class = hub.new_class("Chromium", 2, 900);

    // The learner joins in the browser and lands on their own node1's page.
    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(class["join_url"].as_str().unwrap()).await.unwrap();
    let name = c.find(Locator::Css("[data-testid=join-name]")).await.unwrap();
    name.send_keys("ada").await.unwrap();
    c.find(Locator::Css("[data-testid=join] button")).await.unwrap().click().await.unwrap();
    let start = Instant::now();
    while c.find(Locator::Css("[data-testid=terminal]")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "the learner's page did not come:\n{}", hub.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shell = async {
        browser.wait_for_text("[data-testid=terminal]", "@node1", Duration::from_secs(30)).await?;
        browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(30)).await?;
        let input = c.find(Locator::Css("[data-testid=terminal] textarea")).await?;
        input.send_keys(&format!("echo hello-$((6*7)){}", char::from(Key::Enter))).await?;
        browser.wait_for_text("[data-testid=terminal]", "hello-42", Duration::from_secs(10)).await
    }
    .await;
    browser.screenshot("classroom-learner.png").await.unwrap();
    let (s, classes) = hub.api("GET", "/hub/api/classes", None);
    assert_eq!(s, 200);
    let node = classes[0]["learners"][0]["node"]["id"].as_str().unwrap().to_string();

    // The attacker's page: the hub's address, another port (same site, so the
    // SameSite=Strict cookie goes along; another origin).
    let evil_dir = sb.dir().join("evil");
    std::fs::create_dir_all(&evil_dir).unwrap();
    std::fs::write(evil_dir.join("index.html"), evil_page(&hub.addr, &node)).unwrap();
    let _evil = sb
        .command("python3")
        .args(["-m", "http.server", "8099", "--bind", &sb.uplink.node_ip, "--directory"])
        .arg(&evil_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let evil_url = format!("http://{}:8099/index.html", sb.uplink.node_ip);
    for _ in 0..50 {
        if c.goto(&evil_url).await.is_ok() && c.find(Locator::Id("result")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = browser.wait_for_text("#result", "done", Duration::from_secs(20)).await;
    browser.close().await;
    if let Err(e) = shell {
        panic!("{e:#}\n--- hub log:\n{}", hub.log_text());
    }
    let result = result.unwrap();
    let v: serde_json::Value = serde_json::from_str(result.trim().trim_start_matches("done ")).unwrap();
    for name in ["terminal", "events", "node_events", "node_terminal", "feed"] {
        assert_eq!(v[name]["opened"], false, "{name} WebSocket opened from another origin: {v}");
        assert_eq!(v[name]["messages"].as_array().map(Vec::len), Some(0), "{name}: {v}");
    }
    for name in ["state", "ticket", "me"] {
        assert!(v[name]["error"].is_string(), "{name} readable from another origin: {v}");
    }
    let log = hub.log_text();
    assert!(log.contains("not allowed"), "the hub says why:\n{log}");

    // The instructor, in their own browser, watches ada's page read-only
    // under /n/<node>/: live, her shell's output, and their keys go nowhere.
    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    let watched = async {
        c.goto(&hub.url(&format!("/?token={}", hub.token))).await?;
        c.goto(&hub.url("/hub/classes")).await?;
        browser.wait_for_text("body", "Chromium", Duration::from_secs(10)).await?;
        c.goto(&hub.url(&format!("/n/{node}/"))).await?;
        browser.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(30)).await?;
        browser.wait_for_text("[data-testid=terminal]", "hello-42", Duration::from_secs(30)).await?;
        let input = c.find(Locator::Css("[data-testid=terminal] textarea")).await?;
        input.send_keys(&format!("echo instructor-$((5*5)){}", char::from(Key::Enter))).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = c.find(Locator::Css("[data-testid=terminal]")).await?.text().await?;
        browser.screenshot("classroom-instructor-view.png").await?;
        anyhow::Ok(text)
    }
    .await;
    browser.close().await;
    let text = match watched {
        Ok(t) => t,
        Err(e) => panic!("{e:#}\n--- hub log:\n{}", hub.log_text()),
    };
    assert!(!text.contains("instructor-25"), "the instructor's keys reached ada's shell: {text}");
}

#[test]
fn with_a_certificate_the_hub_serves_https_and_its_cookies_are_host_only_and_secure() {
    let sb = Sandbox::new().unwrap();
    let (cert, key) = (sb.dir().join("hub.crt"), sb.dir().join("hub.key"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=hub"])
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{}", sb.uplink.node_ip))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", berth_e2e::sandbox::out(&o));
    let hub = Hub::start(&sb, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let https = format!("https://{}", hub.addr);
    let (s, text) = hub.curl(&["--cacert", cert.to_str().unwrap(), &format!("{https}/?token={}", hub.token)]);
    assert_eq!(s, 303, "{text}\n{}", hub.log_text());
    let set = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap().to_string();
    assert!(
        set.contains("__Host-berth_hub=") && set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    // Plain HTTP on the same port gets nothing.
    let (s, _) = hub.curl(&[&format!("http://{}/hub/api/classes", hub.addr)]);
    assert_ne!(s, 200);
    // A class's join link is https too.
    let auth = format!("Authorization: Bearer {}", hub.token);
    let (s, text) = hub.curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"name":"TLS","capacity":1,"expires_in_s":60}"#,
        &format!("{https}/hub/api/classes"),
    ]);
    assert_eq!(s, 201, "{text}");
    assert!(text.contains(&format!("\"join_url\":\"{https}/join/")), "{text}");
}

/// Kills whatever of a node is left when dropped (a test that failed must
/// not leave a killed hub's orphans behind).
struct KillNode(String);

impl Drop for KillNode {
    fn drop(&mut self) {
        for p in procs_of_node(&self.0) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_was_killed_leaves_nothing_once_it_starts_again() {
    let sb = Sandbox::new().unwrap();
    let mut hub = Hub::start(&sb, &[]);
    let class = hub.new_class("Crash", 2, 600);
    let cookie = hub.join(&class, "zed");
    let node = hub.wait_running(&cookie);
    let id = node["id"].as_str().unwrap().to_string();
    let _guard = KillNode(id.clone());
    let cgroup = PathBuf::from(node["labels"]["cgroup"].as_str().unwrap());
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    drop(hub);
    assert!(!procs_of_node(&id).is_empty(), "a killed hub's node outlives it");
    // The next hub on the same state dir sweeps it.
    let hub = Hub::start(&sb, &[]);
    let start = Instant::now();
    while !procs_of_node(&id).is_empty() || !node_dirs(&hub.state).is_empty() || cgroup.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left: {:?} {:?} {}\n{}",
            procs_of_node(&id),
            node_dirs(&hub.state),
            cgroup.exists(),
            hub.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(hub.log_text().contains("left behind"), "{}", hub.log_text());
    // And it works: a new learner gets a node.
    let class = hub.new_class("After", 1, 600);
    let c = hub.join(&class, "amy");
    hub.wait_running(&c);
}

fn pss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Memory of a node: the PSS of every process in its cgroup, kB.
fn node_pss_kb(node: &serde_json::Value) -> u64 {
    let cg = PathBuf::from(node["labels"]["cgroup"].as_str().unwrap());
    std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().lines().map(pss_kb).sum()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// The benchmark (scripts/bench-classroom.sh runs it with release binaries):
/// LEARNERS join one by one (join → node1 running, each), the memory of an
/// idle learner, then ACTIVE of them run the lab's commands while the
/// instructor's feed measures each event's lag (berthd's event time → the
/// feed frame's arrival at the instructor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-classroom.sh"]
async fn bench_classroom() {
    let learners: usize = std::env::var("BENCH_LEARNERS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let active: usize = std::env::var("BENCH_ACTIVE").ok().and_then(|v| v.parse().ok()).unwrap_or(10).min(learners);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let sb = Sandbox::new().unwrap();
    let max = learners.to_string();
    let mut hub = Hub::start(&sb, &["--max-nodes", &max, "--cpus", "2"]);
    let hub_before = pss_kb(&hub.child.id().to_string());
    let class = hub.new_class("Bench", learners as u32, 3600);
    let mut cookies = Vec::new();
    let mut nodes = Vec::new();
    let mut joins = Vec::new();
    for i in 0..learners {
        let t = Instant::now();
        let c = hub.join(&class, &format!("learner{i}"));
        nodes.push(hub.wait_running(&c));
        joins.push(t.elapsed().as_secs_f64() * 1000.0);
        cookies.push(c);
    }
    // Idle learners' memory: their nodes' processes, and what the hub grew by.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nodes_kb: u64 = nodes.iter().map(node_pss_kb).sum();
    let hub_after = pss_kb(&hub.child.id().to_string());
    let mb_per_learner = (nodes_kb + hub_after.saturating_sub(hub_before)) as f64 / 1024.0 / learners as f64;

    // The instructor's dashboard, in Chromium: every container's first
    // appearance in a tile, timed in the page (the feed below has each
    // container's creation time at its node).
    let dashboard = if std::env::var("BENCH_DASHBOARD").as_deref() != Ok("0") { Some(open_dashboard(&hub, learners).await) } else { None };
    let cpu0 = dashboard.as_ref().map(|b| b.cpu_ticks()).unwrap_or(0);

    // The instructor's feed, timing every event it carries.
    let mut feed =
        ws_connect(&format!("ws://{}/hub/api/feed", hub.addr), &[("authorization", format!("Bearer {}", hub.token))]).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let listener = tokio::spawn(async move {
        let mut lags = Vec::new();
        let mut frames = 0u64;
        // (learner, container name) → its creation time at the node.
        let mut created = std::collections::HashMap::new();
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(200), feed.next()).await else { continue };
            let at = now_ms();
            let Ok(v) = serde_json::from_str::<serde_json::Value>(m.to_text().unwrap_or("")) else { continue };
            frames += 1;
            let msgs = match &v["msg"] {
                serde_json::Value::Array(a) => a.clone(),
                serde_json::Value::Null => Vec::new(),
                one => vec![one.clone()],
            };
            for e in msgs {
                if e["kind"] == "event" {
                    if let Some(t) = e["time_ms"].as_f64() {
                        lags.push(at - t);
                        if e["event"]["type"] == "container_created" {
                            let key = format!("{}/{}", v["learner"].as_str().unwrap_or(""), e["event"]["name"].as_str().unwrap_or(""));
                            created.entry(key).or_insert(t);
                        }
                    }
                }
            }
        }
        (lags, frames, created)
    });
    // ACTIVE learners run the lab's commands in their terminals, at once.
    let lab = format!(
        "docker pull -q alpine >/dev/null; docker pull -q nginx:alpine >/dev/null; for i in $(seq 1 {rounds}); do \
         docker run --rm alpine true; docker run -d --name web$i -p 80$i:80 nginx:alpine >/dev/null; docker ps -q >/dev/null; \
         docker rm -f web$i >/dev/null; docker volume create v$i >/dev/null; docker volume rm v$i >/dev/null; done 2>&1 | tail -3"
    );
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in cookies.iter().take(active).enumerate() {
        let mut t = Term::open(&hub, "", ("cookie", c.clone()), &format!("bench{i}")).await.unwrap();
        let lab = lab.clone();
        tasks.push(tokio::spawn(async move {
            t.until("@node1", Duration::from_secs(30)).await.unwrap();
            t.run(&lab).await
        }));
    }
    for task in tasks {
        let out = task.await.unwrap();
        assert!(!out.contains("Error"), "a learner's lab commands failed: {out}");
    }
    let busy_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut lags, frames, created) = listener.await.unwrap();
    // The dashboard: each container's tile lag, and the browser's CPU while the class worked.
    let (mut tile_lags, cpu_pct) = match &dashboard {
        Some(b) => {
            let ticks = b.cpu_ticks().saturating_sub(cpu0) as f64;
            let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
            let seen = b.client.execute("return window.__seen || {}", vec![]).await.unwrap();
            let seen = seen.as_object().cloned().unwrap_or_default();
            let lags: Vec<f64> = created.iter().filter_map(|(k, t)| seen.get(k).and_then(|v| v.as_f64()).map(|s| s - t)).collect();
            let missing = created.keys().filter(|k| k.contains("/web") && !seen.contains_key(*k)).count();
            assert_eq!(missing, 0, "containers never shown in their tile: {missing} of {}", created.len());
            (lags, ticks / hz / busy_s * 100.0)
        }
        None => (Vec::new(), f64::NAN),
    };
    if let Some(b) = dashboard {
        b.screenshot("bench-dashboard.png").await.ok();
        b.close().await;
    }
    let tile_p50 = percentile(&mut tile_lags, 0.5);
    let tile_p99 = percentile(&mut tile_lags, 0.99);
    eprintln!(
        "dashboard: {} containers shown in their tiles, lag (node event → tile in the page) p50 {tile_p50:.0} ms, p99 {tile_p99:.0} ms; \
         the browser (every Chromium process) used {cpu_pct:.0}% of one core while the class worked",
        tile_lags.len()
    );
    let join_p50 = percentile(&mut joins.clone(), 0.5);
    let join_max = percentile(&mut joins, 1.0);
    let lag_p50 = percentile(&mut lags, 0.5);
    let lag_p99 = percentile(&mut lags, 0.99);
    eprintln!(
        "classroom: {learners} joined (join → node1 running: p50 {join_p50:.0} ms, max {join_max:.0} ms); idle memory {:.1} MB a learner \
         (nodes {:.1} MB, hub +{:.1} MB); {active} ran the lab ({rounds} rounds) in {busy_s:.1} s: {} events in {frames} feed frames, \
         lag p50 {lag_p50:.1} ms, p99 {lag_p99:.1} ms",
        mb_per_learner,
        nodes_kb as f64 / 1024.0,
        hub_after.saturating_sub(hub_before) as f64 / 1024.0,
        lags.len()
    );
    assert!(!lags.is_empty(), "no event reached the instructor's feed");
    let st = hub.stop();
    assert!(st.success());
    println!(
        "classroom: learners={learners} active={active} join_p50_ms={join_p50:.0} lag_p99_ms={lag_p99:.0} mb_per_learner={mb_per_learner:.1} \
         tile_lag_p99_ms={tile_p99:.0} dashboard_cpu_pct={cpu_pct:.0}"
    );
}

/// The instructor's dashboard in Chromium, every learner's tile drawn, with
/// a recorder of each container's first appearance in a tile
/// (`window.__seen["<learner>/<name>"]`, Unix ms).
async fn open_dashboard(hub: &Hub, learners: usize) -> Browser {
    let b = Browser::start().await.unwrap();
    b.client.goto(&hub.url(&format!("/?token={}", hub.token))).await.unwrap();
    b.wait_for_text("[data-testid=feed]", "live", Duration::from_secs(30)).await.unwrap();
    let start = Instant::now();
    while b.client.find_all(fantoccini::Locator::Css("[data-testid=tile]")).await.map(|v| v.len()).unwrap_or(0) < learners {
        assert!(start.elapsed() < Duration::from_secs(60), "the dashboard never drew {learners} tiles");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.client
        .execute(
            "window.__seen = {};
             new MutationObserver(recs => {
               const now = performance.timeOrigin + performance.now();
               for (const r of recs) for (const n of r.addedNodes) {
                 if (n.nodeType !== 1) continue;
                 const els = n.matches('[data-testid=mini-container]') ? [n] : n.querySelectorAll('[data-testid=mini-container]');
                 for (const el of els) {
                   const tile = el.closest('[data-testid=tile]');
                   const k = tile && (tile.dataset.learner + '/' + el.dataset.name);
                   if (k && !(k in window.__seen)) window.__seen[k] = now;
                 }
               }
             }).observe(document.body, { subtree: true, childList: true });",
            vec![],
        )
        .await
        .unwrap();
    b
}
