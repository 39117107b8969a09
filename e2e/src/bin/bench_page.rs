//! Benchmarks for the page (not tests), run by scripts/bench-page.sh inside
//! a throwaway node1 with a release berthd serving the page:
//!
//! - `latency N`: a kernel change (a veth pair made with `ip link add`) to
//!   its event on the page's WebSocket, N times: p50/p99.
//! - `viewers V C`: V WebSocket viewers while C containers start and stop;
//!   how far behind the daemon each event reaches them (p50/p99), and that
//!   no viewer missed one.
//! - `tti URL`: headless Chromium from navigation to a live page (the mode
//!   badge reads "live node1"), 5 loads: median.
//! - `sim URL`: the page as static files (no berthd): the lab's commands
//!   typed into the simulated node1, each command's time in the page.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use berth_shared::{Event, StreamMsg};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const EVENTS: &str = "ws://127.0.0.1:8080/api/events";

/// The event stream's WebSocket request, signed in with the lab token
/// (`$BERTH_TOKEN`) as a tool does: a bearer token, no browser Origin.
fn events_request() -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = EVENTS.into_client_request()?;
    let token = std::env::var("BERTH_TOKEN").context("BERTH_TOKEN: the lab page's token")?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    Ok(req)
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Just what a viewer needs to measure (the event body is skipped, so the
/// benchmark's own parsing does not load the machine it measures).
#[derive(serde::Deserialize)]
struct Light {
    kind: String,
    seq: u64,
    #[serde(default)]
    time_ms: u64,
}

/// The next frame's messages (one, or a burst sent as an array), read as
/// `T` (the full message, or just what a viewer measures).
async fn next_frame<T: serde::de::DeserializeOwned>(ws: &mut Ws) -> anyhow::Result<Vec<T>> {
    loop {
        match ws.next().await.context("stream ended")?? {
            Message::Text(t) if t.starts_with('[') => return Ok(serde_json::from_str(&t)?),
            Message::Text(t) => return Ok(vec![serde_json::from_str(&t)?]),
            Message::Close(_) => bail!("closed"),
            _ => {}
        }
    }
}

fn ip(args: &str) -> anyhow::Result<()> {
    let ok = std::process::Command::new("ip").args(args.split_whitespace()).status()?.success();
    if !ok {
        bail!("ip {args} failed");
    }
    Ok(())
}

async fn latency(n: usize) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(events_request()?).await?;
    next_frame::<StreamMsg>(&mut ws).await?; // the snapshot
    let mut from_start = Vec::new();
    let mut cmd_time = Vec::new();
    for i in 0..n {
        let name = format!("bl{i}");
        let t0 = Instant::now();
        ip(&format!("link add {name} type veth peer name bm{i}"))?;
        cmd_time.push(t0.elapsed().as_secs_f64() * 1000.0);
        'seen: loop {
            for m in tokio::time::timeout(Duration::from_secs(5), next_frame::<StreamMsg>(&mut ws)).await?? {
                if let StreamMsg::Event(e) = m {
                    if matches!(&e.event, Event::LinkObserved { name: n, .. } if *n == name) {
                        break 'seen;
                    }
                }
            }
        }
        from_start.push(t0.elapsed().as_secs_f64() * 1000.0);
        ip(&format!("link del {name}"))?;
    }
    println!(
        "kernel change → WebSocket event, {n} veth pairs: p50 {:.1} ms, p99 {:.1} ms (target p99 ≤ 50 ms; includes `ip link add` itself: p50 {:.1} ms)",
        pct(&mut from_start.clone(), 0.5),
        pct(&mut from_start, 0.99),
        pct(&mut cmd_time, 0.5)
    );
    Ok(())
}

async fn viewers(v: usize, c: usize, docker_host: String) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..v {
        let (mut ws, _) = tokio_tungstenite::connect_async(events_request()?).await?;
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut lags = Vec::new();
            let mut last: Option<u64> = None;
            let mut gaps = 0usize;
            loop {
                tokio::select! {
                    m = next_frame::<Light>(&mut ws) => match m {
                        Ok(list) => {
                            let arrived = now_ms();
                            for e in list {
                                if e.kind == "snapshot" {
                                    last = Some(e.seq);
                                    continue;
                                }
                                if let Some(l) = last {
                                    if e.seq != l + 1 {
                                        gaps += 1;
                                    }
                                }
                                last = Some(e.seq);
                                lags.push(arrived - e.time_ms as f64);
                            }
                        }
                        Err(_) => break,
                    },
                    _ = stop.changed() => break,
                }
            }
            (lags, gaps)
        }));
    }
    let started = Instant::now();
    // Four docker CLIs at a time: the load is the engine's, not 50 Go
    // programs starting at once on the same two cores.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let docker = |args: Vec<String>| {
        let host = docker_host.clone();
        let limit = limit.clone();
        tokio::spawn(async move {
            let _slot = limit.acquire_owned().await;
            tokio::task::spawn_blocking(move || std::process::Command::new("docker").args(&args).env("DOCKER_HOST", host).output()).await
        })
    };
    let mut runs = Vec::new();
    for i in 0..c {
        runs.push(docker(vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            format!("bench{i}"),
            "alpine".into(),
            "sleep".into(),
            "60".into(),
        ]));
    }
    for r in runs {
        r.await???;
    }
    let mut rms = Vec::new();
    for i in 0..c {
        rms.push(docker(vec!["rm".into(), "-f".into(), format!("bench{i}")]));
    }
    for r in rms {
        r.await???;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let mut all = Vec::new();
    let mut gaps = 0;
    let mut per_viewer_p99 = Vec::new();
    for t in tasks {
        let (mut lags, g) = t.await?;
        gaps += g;
        per_viewer_p99.push(pct(&mut lags.clone(), 0.99));
        all.append(&mut lags);
    }
    println!(
        "{v} viewers, {c} containers started and removed in {:.1} s: {} events delivered, lag p50 {:.1} ms, p99 {:.1} ms, worst viewer's p99 {:.1} ms, gaps {gaps} (target p99 ≤ 100 ms, no gaps)",
        took.as_secs_f64(),
        all.len(),
        pct(&mut all.clone(), 0.5),
        pct(&mut all, 0.99),
        per_viewer_p99.iter().cloned().fold(0.0, f64::max)
    );
    Ok(())
}

async fn tti(url: &str) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let b = berth_e2e::browser::Browser::start().await?;
        let t0 = Instant::now();
        b.client.goto(url).await?;
        b.wait_for_text("[data-testid=mode]", "live node1", Duration::from_secs(30)).await?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        b.close().await;
    }
    println!("time to interactive (navigation → live page), 5 loads: median {:.0} ms (target ≤ 1000 ms)", pct(&mut times, 0.5));
    Ok(())
}

/// The simulator in the page: the lab's commands typed into the terminal,
/// each command's time as the page measured it (performance.now around
/// the simulator's run).
async fn sim(url: &str) -> anyhow::Result<()> {
    use fantoccini::key::Key;
    use fantoccini::Locator;
    let b = berth_e2e::browser::Browser::start().await?;
    b.client.goto(url).await?;
    b.wait_for_text("[data-testid=mode]", "simulated node1", Duration::from_secs(20)).await?;
    b.wait_for_text("[data-testid=terminal]", "simulated node1", Duration::from_secs(20)).await?;
    let lines = [
        "docker run --name nginx-demo -d --rm -p 80:80 nginx:alpine",
        "docker ps",
        "iptables --list -n -t nat",
        "ip addr",
        "curl http://127.0.0.1/",
        "docker volume create webvol",
        "docker run --name web -d -v webvol:/usr/share/nginx/html -p 8081:80 nginx:alpine",
        "docker inspect web | jq -r '.[0].GraphDriver.Data.LowerDir'",
        "docker build -t gourmetgram-app:0.0.1 gourmetgram",
        "docker images",
    ];
    for _ in 0..3 {
        for l in lines {
            let input = b.client.find(Locator::Css("[data-testid=terminal] textarea")).await?;
            input.send_keys(&format!("{l}{}", char::from(Key::Enter))).await?;
        }
        let input = b.client.find(Locator::Css("[data-testid=terminal] textarea")).await?;
        input.send_keys(&format!("docker rm -f nginx-demo web{}", char::from(Key::Enter))).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = b.client.execute("return window.berthSimTimings || []", vec![]).await?;
    let mut times: Vec<f64> = v.as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default();
    b.close().await;
    println!(
        "simulated commands in the page: {} runs, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target < 5 ms)",
        times.len(),
        pct(&mut times.clone(), 0.5),
        pct(&mut times.clone(), 0.99),
        pct(&mut times, 1.0)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000)).await,
        Some("viewers") => {
            let v = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200);
            let c = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(50);
            viewers(v, c, std::env::var("DOCKER_HOST").unwrap_or_default()).await
        }
        Some("tti") => tti(args.get(1).map(String::as_str).unwrap_or("http://127.0.0.1:8080/")).await,
        Some("sim") => sim(args.get(1).map(String::as_str).unwrap_or("http://127.0.0.1:8000/")).await,
        _ => bail!("usage: berth-bench-page latency N | viewers V C | tti URL"),
    }
}
