//! The page as static files with no berthd at all: it falls back to the
//! simulated node1, and the lab's networking and filesystem steps typed into
//! its terminal draw the same diagrams. Screenshots go to target/e2e-artifacts.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_e2e::browser::Browser;
use fantoccini::key::Key;
use fantoccini::Locator;

/// A static file server (python's) for dist/, ended by pid when dropped.
struct Static(Child);

impl Drop for Static {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn type_line(b: &Browser, line: &str) {
    let input = b.client.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    input.send_keys(&format!("{line}{}", char::from(Key::Enter))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_berthd_the_page_runs_the_lab_on_a_simulated_node1() {
    let dist = berth_e2e::repo_root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the page first (trunk build --release)");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Static(
        Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&dist)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = Browser::start().await.unwrap();
    b.client.goto(&url).await.unwrap();
    b.wait_for_text("[data-testid=mode]", "simulated node1", Duration::from_secs(20)).await.unwrap();
    b.wait_for_text("[data-testid=terminal]", "simulated node1", Duration::from_secs(10)).await.unwrap();
    // The lab's steps folded away: the terminal and diagrams get the room
    // (the long lines below then fit on one terminal line).
    b.client.find(Locator::Css("[data-testid=fold-steps]")).await.unwrap().click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Networking: a published nginx, its address, DNAT rule, the page on node1.
    type_line(&b, "docker run --name nginx-demo -d --rm -p 80:80 nginx:alpine").await;
    b.wait_for_text("[data-testid=container-nginx-demo]", "172.17.0.2", Duration::from_secs(10)).await.unwrap();
    b.wait_for_text("[data-testid=port-80]", "172.17.0.2:80/tcp", Duration::from_secs(10)).await.unwrap();
    type_line(&b, "iptables --list -n -t nat").await;
    b.wait_for_text("[data-testid=terminal]", "to:172.17.0.2:80", Duration::from_secs(10)).await.unwrap();
    type_line(&b, "clear").await;
    type_line(&b, "curl http://192.168.1.10/").await;
    b.wait_for_text("[data-testid=terminal]", "Welcome to nginx!", Duration::from_secs(10)).await.unwrap();
    b.screenshot("simulator-network.png").await.unwrap();

    // Filesystem: overlay copy-up, a volume filled from the image and shared.
    type_line(&b, "clear").await;
    type_line(&b, "docker exec -it nginx-demo sh").await;
    type_line(&b, "echo edited in the container > /usr/share/nginx/html/index.html").await;
    type_line(&b, "exit").await;
    type_line(&b, "curl http://172.17.0.2/").await;
    b.wait_for_text("[data-testid=terminal]", "edited in the container", Duration::from_secs(10)).await.unwrap();
    // The lab's edit, in vi: a new line after the first, then :wq.
    type_line(&b, "docker exec -it nginx-demo sh").await;
    type_line(&b, "vi /usr/share/nginx/html/index.html").await;
    b.wait_for_text("[data-testid=terminal]", "edited in the container", Duration::from_secs(10)).await.unwrap();
    let input = b.client.find(Locator::Css("[data-testid=terminal] textarea")).await.unwrap();
    input.send_keys("o<p>edited with vi</p>").await.unwrap();
    input.send_keys(&char::from(Key::Escape).to_string()).await.unwrap();
    b.wait_for_text("[data-testid=terminal]", "<p>edited with vi</p>", Duration::from_secs(10)).await.unwrap();
    b.screenshot("simulator-vi.png").await.unwrap();
    type_line(&b, ":wq").await;
    type_line(&b, "exit").await;
    type_line(&b, "curl http://172.17.0.2/").await;
    b.wait_for_text("[data-testid=terminal]", "edited in the container\n<p>edited with vi</p>", Duration::from_secs(10)).await.unwrap();
    type_line(&b, "docker volume create webvol").await;
    type_line(&b, "docker run --name web -d -v webvol:/usr/share/nginx/html -p 8080:80 nginx:alpine").await;
    b.wait_for_text("[data-testid=overlay-web]", "volume webvol → /usr/share/nginx/html", Duration::from_secs(10)).await.unwrap();
    type_line(&b, "docker inspect web | jq -r '.[0].GraphDriver.Data.UpperDir'").await;
    b.wait_for_text("[data-testid=terminal]", "/diff", Duration::from_secs(10)).await.unwrap();
    type_line(&b, "frobnicate").await;
    b.wait_for_text("[data-testid=terminal]", "bash: frobnicate: command not found", Duration::from_secs(10)).await.unwrap();
    b.screenshot("simulator-filesystem.png").await.unwrap();
    b.close().await;
    drop(server);
}
