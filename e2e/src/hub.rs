//! berth-hub in a sandbox for the classroom and dashboard tests: the hub
//! with the local spawner, its instructor API, learners joining, and a
//! learner's (or the instructor's) terminal through the hub.
#![allow(clippy::unwrap_used)] // test support: a failed step should panic with its error

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::sandbox::Sandbox;

pub fn hub_bin() -> PathBuf {
    crate::berthd_bin().with_file_name("berth-hub")
}

/// berth-hub running in a sandbox's network namespace.
pub struct Hub {
    pub child: Child,
    pub addr: String,
    pub token: String,
    pub state: PathBuf,
    pub log: PathBuf,
    pub cgroup_parent: String,
}

impl Hub {
    pub fn start(sb: &Sandbox, extra: &[&str]) -> Hub {
        assert!(hub_bin().is_file(), "build it first: cargo build -p berth-classroom --bin berth-hub");
        let addr = format!("{}:8090", sb.uplink.node_ip);
        let state = sb.dir().join("hub");
        let log = sb.dir().join("hub.log");
        // Named after the sandbox (with a dot after it): a sandbox cleanup
        // after a failed test sweeps whatever the hub left.
        let cgroup_parent = format!("berth-hub-{}.hub", sb.name);
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", sb.name))
            .arg("--")
            .arg(hub_bin())
            .args(["--addr", &addr, "--state-dir"])
            .arg(&state)
            .arg("--berthd")
            .arg(crate::berthd_bin())
            .arg("--page-dir")
            .arg(crate::repo_root().join("dist"))
            .arg("--registry-storage")
            .arg(crate::state_dir().join("registry/storage"))
            .args(["--cgroup-parent", &cgroup_parent, "--reap-every-ms", "200", "--memory-mb", "768", "--pids", "512"])
            .args(extra)
            .env("RUST_LOG", "info,berth_classroom=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(sb.dir().join("hub.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut hub = Hub { child, addr, token: String::new(), state, log, cgroup_parent };
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// curl from the root namespace: (status, headers and body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl").args(["-sS", "-i", "--max-time", "20"]).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }

    pub fn body(text: &str) -> &str {
        text.split("\r\n\r\n").nth(1).unwrap_or("")
    }

    /// Makes `browser` this session's (a `name=value` cookie from
    /// [`Hub::join`] or a sign-in): its cookies are replaced.
    pub async fn browse_as(&self, browser: &crate::browser::Browser, cookie: &str) -> anyhow::Result<()> {
        let c = &browser.client;
        c.goto(&self.url("/hub/login")).await?;
        c.delete_all_cookies().await?;
        let (k, v) = cookie.split_once('=').ok_or_else(|| anyhow::anyhow!("not a cookie: {cookie}"))?;
        let mut ck = cookie::Cookie::new(k.to_string(), v.to_string());
        ck.set_path("/");
        ck.set_domain(self.addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default());
        ck.set_same_site(cookie::SameSite::Strict);
        ck.set_http_only(true);
        c.add_cookie(ck).await?;
        Ok(())
    }

    /// An instructor API call (the token as a tool sends it).
    pub fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let auth = format!("Authorization: Bearer {}", self.token);
        let mut args = vec!["-X", method, "-H", &auth];
        let data;
        if let Some(b) = body {
            data = b.to_string();
            args.extend(["-H", "Content-Type: application/json", "--data", &data]);
        }
        let url = self.url(path);
        args.push(&url);
        let (s, text) = self.curl(&args);
        (s, serde_json::from_str(Hub::body(&text)).unwrap_or(serde_json::Value::Null))
    }

    pub fn new_class(&self, name: &str, capacity: u32, expires_in_s: u64) -> serde_json::Value {
        let (s, v) = self.api(
            "POST",
            "/hub/api/classes",
            Some(serde_json::json!({"name": name, "capacity": capacity, "expires_in_s": expires_in_s})),
        );
        assert_eq!(s, 201, "{v}\n{}", self.log_text());
        v
    }

    /// Joins as `name`: returns the session cookie (`name=value`).
    pub fn join(&self, class: &serde_json::Value, name: &str) -> String {
        let url = class["join_url"].as_str().unwrap().to_string();
        let (s, text) = self.curl(&["-X", "POST", "-H", &format!("Origin: {}", self.origin()), "--data", &format!("name={name}"), &url]);
        assert_eq!(s, 303, "{text}\n{}", self.log_text());
        let set = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
        set.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string()
    }

    /// The learner's own view of themselves.
    pub fn me(&self, cookie: &str) -> serde_json::Value {
        let (s, text) = self.curl(&["-H", &format!("Cookie: {cookie}"), &self.url("/hub/api/me")]);
        assert_eq!(s, 200, "{text}");
        serde_json::from_str(Hub::body(&text)).unwrap()
    }

    /// Waits until the learner's node runs; returns it.
    pub fn wait_running(&self, cookie: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let me = self.me(cookie);
            match me["node"]["phase"].as_str() {
                Some("Running") => return me["node"].clone(),
                Some("Failed") => panic!("node failed: {me}\n{}", self.log_text()),
                _ => {}
            }
            assert!(start.elapsed() < Duration::from_secs(60), "node not running: {me}\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("berth-hub did not stop within 60 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(url: &str, headers: &[(&str, String)]) -> Result<Ws, String> {
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

/// A terminal on a node through the hub: `prefix` is "" for the learner's
/// own or "/n/<node>" for a view; `auth` is the cookie or bearer header.
impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("addr", &self.addr).finish_non_exhaustive()
    }
}

pub struct Term {
    pub ws: Ws,
    pub seen: String,
}

impl Term {
    pub async fn open(hub: &Hub, prefix: &str, auth: (&str, String), shell: &str) -> Result<Term, String> {
        let (s, text) = hub.curl(&[
            "-X",
            "POST",
            "-H",
            &format!("{}: {}", auth.0, auth.1),
            "-H",
            &format!("Origin: {}", hub.origin()),
            &hub.url(&format!("{prefix}/api/terminal/ticket")),
        ]);
        if s != 200 {
            return Err(format!("ticket: {s} {text}"));
        }
        let ticket: serde_json::Value = serde_json::from_str(Hub::body(&text)).unwrap();
        let url = format!("ws://{}{prefix}/api/terminal?id={shell}&cols=200&rows=50", hub.addr);
        let mut ws = ws_connect(&url, &[(auth.0, auth.1.clone()), ("origin", hub.origin())]).await?;
        ws.send(Message::Text(serde_json::json!({"ticket": ticket["ticket"]}).to_string().into())).await.unwrap();
        Ok(Term { ws, seen: String::new() })
    }

    /// Reads until `want` has been seen (in all output so far) or the time is up.
    pub async fn until(&mut self, want: &str, limit: Duration) -> Result<String, String> {
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
                Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}; seen: {}", self.seen)),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(format!("{e}; seen: {}", self.seen)),
                Ok(None) => return Err(format!("ended; seen: {}", self.seen)),
                Err(_) => return Err(format!("timed out waiting for {want:?}; seen: {}", self.seen)),
            }
        }
        Ok(self.seen.clone())
    }

    /// Runs a command; returns what it printed between two markers.
    pub async fn run(&mut self, cmd: &str) -> String {
        let n = self.seen.len();
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!("{}x{}", std::process::id(), RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        // The markers are printed by the shell, not echoed: `${x}` splits them in the typed line.
        let line = format!("x=M; echo \"B${{x}}{tag}\"; {cmd}; echo \"E${{x}}{tag}\"\r");
        self.ws.send(Message::Binary(line.into_bytes().into())).await.unwrap();
        let end = format!("EM{tag}");
        let all = self.until(&end, Duration::from_secs(90)).await.unwrap();
        let from = all[n..].find(&format!("BM{tag}")).map(|i| n + i).unwrap();
        let text = &all[from..];
        let text = &text[text.find('\n').map(|i| i + 1).unwrap_or(0)..];
        text[..text.find(&end).unwrap_or(text.len())].replace('\r', "")
    }
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term").field("seen", &self.seen.len()).finish_non_exhaustive()
    }
}
