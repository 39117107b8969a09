//! Hostile use of the API and the page's streams: bind mounts that would hand
//! a container the host or berth's own state, and floods of event-stream
//! viewers that never read. Each gets a clear answer, leaks nothing, and the
//! daemon keeps answering.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::{Duration, Instant};

use berth_e2e::sandbox::{node1, out, Sandbox};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The sandbox's mount points (the mount table's fifth field), without
/// /run/netns's: `ip netns` mounts there are shared, so other tests'
/// sandboxes coming and going show up in this one (the flake seen twice).
fn mounts_in(sb: &Sandbox) -> Vec<String> {
    let o = sb.run("cat", &["/proc/self/mountinfo"]).unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|m| !m.starts_with("/run/netns/"))
        .collect();
    v.sort();
    v
}

#[test]
fn binds_of_the_host_root_kernel_interfaces_and_berths_own_state_are_refused() {
    let (sb, d) = node1().unwrap();
    sb.docker_ok(&d, &["pull", "alpine"]);
    let before = mounts_in(&sb);
    let data_root = sb.dir().join("berth/data");
    let link = sb.dir().join("innocent-looking");
    std::os::unix::fs::symlink(&data_root, &link).unwrap();
    let cases = [
        ("/", "-v"),
        ("/proc", "-v"),
        ("/sys/kernel", "-v"),
        ("/dev", "-v"),
        (data_root.to_str().unwrap(), "-v"),
        (&format!("{}/volumes", data_root.display()), "-v"),
        (&format!("{}/berth", sb.dir().display()), "-v"), // holds the data root
        (link.to_str().unwrap(), "-v"),                   // a symlink into it
        (&format!("{}/new-dir", link.display()), "-v"),   // a new dir it would make there
        ("/proc", "--mount"),
    ];
    for (src, how) in cases {
        let spec = if how == "-v" { format!("{src}:/host") } else { format!("type=bind,source={src},target=/host") };
        let o = sb.docker(&d, &["run", "--rm", how, &spec, "alpine", "touch", "/host/berth-was-here"]).unwrap();
        let text = out(&o);
        assert_eq!(o.status.code(), Some(125), "{src}: {text}");
        assert!(text.contains("berth does not bind-mount"), "{src}: {text}");
    }
    assert!(!data_root.join("new-dir").exists(), "a refused bind made its source");
    assert!(!std::path::Path::new("/berth-was-here").exists());
    // No container was left behind, nor a mount; the daemon answers.
    assert_eq!(sb.docker_ok(&d, &["ps", "-aq"]).trim(), "");
    assert_eq!(mounts_in(&sb), before);
    // An ordinary bind still works (the lab's ~/data/web).
    let web = sb.dir().join("data/web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "hello from the host\n").unwrap();
    let o = sb.docker_ok(
        &d,
        &["run", "--rm", "-v", &format!("{}:/usr/share/nginx/html", web.display()), "alpine", "cat", "/usr/share/nginx/html/index.html"],
    );
    assert_eq!(o, "hello from the host\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_viewers_and_readers_that_never_read_leave_the_daemon_answering() {
    let sb = Sandbox::new().unwrap();
    let page = format!("{}:8080", sb.uplink.node_ip);
    let d = sb.start_berthd(&["--page-addr", &page]).unwrap();
    let pid = d.child.id();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let rss_kb = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0)
    };
    let fds_before = fds();

    let mut req = format!("ws://{page}/api/events").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", sb.lab_token()).parse().unwrap());
    // 200 viewers: none of them reads a byte after connecting.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let (ws, _) = tokio_tungstenite::connect_async(req.clone()).await.unwrap();
        idle.push(ws);
    }
    // And the Engine API's event stream, opened 20 times and never read.
    let mut engine_streams = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /events HTTP/1.1\r\nHost: berth\r\n\r\n").await.unwrap();
        engine_streams.push(s);
    }
    // One viewer that does read, to see events still flow.
    let (mut live, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // A burst of events (each volume is one), with the slow viewers' buffers filling.
    let sock = d.socket.display().to_string();
    let script = format!(
        "for i in $(seq 1 300); do curl -sS -o /dev/null --unix-socket {sock} -X POST -H 'Content-Type: application/json' -d \"{{\\\"Name\\\":\\\"flood$i\\\"}}\" http://berth/volumes/create; done"
    );
    let burst = sb.command("sh").args(["-c", &script]).output().unwrap();
    assert!(burst.status.success(), "{}", out(&burst));

    // The daemon answers promptly: the API and the page.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t0 = Instant::now();
        let o = sb.run("curl", &["-fsS", "--max-time", "5", "--unix-socket", &sock, "http://berth/_ping"]).unwrap();
        assert!(o.status.success());
        let o = sb.run("curl", &["-fsS", "--max-time", "5", "-H", &sb.lab_auth_header(), &format!("http://{page}/api/health")]).unwrap();
        assert!(o.status.success());
        worst = worst.max(t0.elapsed());
    }
    assert!(worst < Duration::from_secs(1), "ping + health took {worst:?} under the flood");
    // The reading viewer saw the last volume arrive.
    let seen_last = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = live.next().await {
            if let Message::Text(t) = m {
                if t.contains("\"flood300\"") {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(seen_last, "events stopped flowing to a viewer that reads");
    let rss = rss_kb();
    assert!(rss < 300 * 1024, "berthd grew to {rss} KB holding unread streams");

    // Everyone leaves: the daemon lets go of every connection.
    for mut ws in idle {
        let _ = ws.close(None).await;
    }
    drop(engine_streams);
    let _ = live.send(Message::Close(None)).await;
    drop(live);
    let mut after = fds();
    for _ in 0..100 {
        if after <= fds_before + 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = fds();
    }
    assert!(after <= fds_before + 5, "berthd holds {after} fds, {fds_before} before the viewers came");
}
