//! The page's terminal socket as a tool drives it (the lab token as a bearer
//! token, a ticket as the first message): a large paste into a shell that is
//! busy running a command must not stall the daemon.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::time::{Duration, Instant};

use berth_e2e::sandbox::Sandbox;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn ticket(sb: &Sandbox, page: &str) -> String {
    let o = sb.run("curl", &["-fsS", "-X", "POST", "-H", &sb.lab_auth_header(), &format!("http://{page}/api/terminal/ticket")]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["ticket"].as_str().unwrap_or_else(|| panic!("no ticket: {}", String::from_utf8_lossy(&o.stderr))).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_paste_into_a_busy_shell_leaves_the_daemon_answering() {
    let sb = Sandbox::new().unwrap();
    let page = format!("{}:8080", sb.uplink.node_ip);
    let d = sb.start_berthd(&["--page-addr", &page]).unwrap();

    let mut req = format!("ws://{page}/api/terminal?cols=80&rows=24").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", sb.lab_token()).parse().unwrap());
    // Without a ticket first, the socket is closed and no shell starts.
    let (mut ws, _) = tokio_tungstenite::connect_async(req.clone()).await.unwrap();
    ws.send(Message::Text(r#"{"ticket":"made-up"}"#.into())).await.unwrap();
    let mut closed = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Ok(Message::Close(f)) = m {
            closed = f.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(closed, Some(4401));
    assert!(!d.log_text().contains("terminal session started"));

    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::Text(serde_json::json!({ "ticket": ticket(&sb, &page) }).to_string().into())).await.unwrap();
    // Whatever the shell prints is read, as a page would.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Binary(b) = m {
                seen.extend_from_slice(&b);
            }
        }
        seen
    });
    tx.send(Message::Binary(b"sleep 15\r".to_vec().into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The paste: 256 KiB the busy shell will not read for 15 s.
    let paste: Vec<u8> = (0..256 * 1024).map(|i| if i % 64 == 63 { b'\r' } else { b'#' }).collect();
    for chunk in paste.chunks(16 * 1024) {
        tx.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t0 = Instant::now();
        let o = tokio::task::block_in_place(|| sb.docker(&d, &["version", "--format", "{{.Server.Version}}"])).unwrap();
        worst = worst.max(t0.elapsed());
        assert!(o.status.success(), "{}", berth_e2e::sandbox::out(&o));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(worst < Duration::from_secs(2), "docker version took {worst:?} while the paste waited");
    let _ = tx.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
}
