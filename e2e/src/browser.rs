//! Headless Chromium for page tests: Debian's chromium driven through its
//! chromedriver by fantoccini (WebDriver). Both run in the root namespace
//! and reach the page over the sandbox's uplink; dropping the browser ends
//! chromedriver and every browser process it started (one process group).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("driver", &self.driver.id()).finish()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where page tests put their screenshots.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| crate::repo_root().join("target"));
    let dir = target.join("e2e-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×800.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromedriver (scripts/setup.sh installs chromium-driver)")?;
        let profile = tempfile::Builder::new().prefix("berth-chromium-").tempdir_in("/var/tmp")?;
        let mut b = None;
        let start = Instant::now();
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))?;
        while start.elapsed() < Duration::from_secs(20) {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => {
                    b = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let Some(client) = b else {
            let mut d = driver;
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(d.id() as i32), nix::sys::signal::Signal::SIGKILL);
            let _ = d.wait();
            bail!("chromedriver did not start a browser within 20 s");
        };
        let browser = Browser { client, driver, _profile: profile };
        browser.client.set_window_size(1280, 800).await.ok();
        Ok(browser)
    }

    /// Waits until `css` matches an element whose text contains `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str, limit: Duration) -> anyhow::Result<String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            if let Ok(els) = self.client.find_all(Locator::Css(css)).await {
                for e in els {
                    if let Ok(t) = e.text().await {
                        if t.contains(text) {
                            return Ok(t);
                        }
                        last = t;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("no {css} containing {text:?} within {limit:?} (last: {last:?})")
    }

    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// CPU time (clock ticks, user + system) of chromedriver and every
    /// browser process it started, so far.
    pub fn cpu_ticks(&self) -> u64 {
        let pgid = self.driver.id() as i64;
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                        // After the name: state, ppid, pgrp, …, utime (14th field) and stime.
                        if f.get(2)?.parse::<i64>().ok()? != pgid {
                            return None;
                        }
                        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Closes the browser and ends chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    /// Kills chromedriver's process group (it and the browser it started)
    /// and waits until none of them is left.
    fn kill(&mut self) {
        let pgid = self.driver.id() as i32;
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
        let in_group = || {
            std::fs::read_dir("/proc")
                .map(|d| {
                    d.flatten().any(|e| {
                        std::fs::read_to_string(e.path().join("stat")).ok().and_then(|s| {
                            let after = s.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse::<i32>().ok();
                            after
                        }) == Some(pgid)
                    })
                })
                .unwrap_or(false)
        };
        let start = Instant::now();
        while in_group() && start.elapsed() < Duration::from_secs(10) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
