//! The HTTP service end to end in-process: the original routes, the JSON
//! endpoint, health, and bad input (each a 4xx with a message, never a crash).
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gourmetgram::{web, Classifier, CLASSES};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

const LIMIT: usize = 2 * 1024 * 1024;

fn app_with(queue: usize) -> axum::Router {
    let dir = common::golden_dir();
    let classifier = Classifier::start(&dir.join("food11.pth"), 2, 1, 4, queue).expect("model loads");
    let test_image = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static/test_image.jpeg"));
    web::router(Arc::new(web::AppState { classifier, test_image }), LIMIT)
}

fn multipart(field: &str, filename: &str, data: &[u8]) -> Request<Body> {
    multipart_to("/predict", field, filename, data)
}

fn multipart_to(uri: &str, field: &str, filename: &str, data: &[u8]) -> Request<Body> {
    let boundary = "berthBoundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post(uri).header("content-type", format!("multipart/form-data; boundary={boundary}")).body(Body::from(body)).expect("request")
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn badge_class(html: &str) -> &str {
    let inner = html.strip_prefix(r#"<span class="badge">"#).and_then(|s| s.strip_suffix("</span>"));
    inner.unwrap_or_else(|| panic!("not a badge: {html}"))
}

#[tokio::test]
async fn the_original_routes_answer() {
    let app = app_with(16);
    let golden = common::golden();
    let (status, page) = send(&app, Request::get("/").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Choose an image") && page.contains("Submit"), "upload page");
    assert!(page.contains("food11.pth") && page.contains(golden["weights_sha256"].as_str().expect("sha")), "page names the weights");

    let res = app.clone().oneshot(multipart("file", "lunch.jpeg", &common::test_image())).await.expect("response");
    let timing = res.headers().get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    for part in ["decode;dur=", "preprocess;dur=", "queue;dur=", "inference;dur="] {
        assert!(timing.contains(part), "Server-Timing {timing:?} lacks {part}");
    }
    let (status, html) = send(&app, multipart("file", "lunch.jpeg", &common::test_image())).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let class = badge_class(&html);
    assert_eq!(class, golden["images"]["test_image.jpeg"]["top"].as_str().expect("top"));
    assert!(CLASSES.contains(&class));

    let (status, html) = send(&app, Request::get("/test").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(badge_class(&html), class, "/test classifies the bundled image");
}

#[tokio::test]
async fn json_gives_the_top_three_with_probabilities() {
    let app = app_with(16);
    let (status, body) = send(&app, multipart_to("/api/predict", "file", "x.jpeg", &common::test_image())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let top3 = v["top3"].as_array().expect("top3");
    assert_eq!(top3.len(), 3);
    assert_eq!(top3[0]["class"], v["class"]);
    let p: Vec<f64> = top3.iter().map(|s| s["probability"].as_f64().expect("p")).collect();
    assert!(p[0] >= p[1] && p[1] >= p[2] && p[2] > 0.0 && p.iter().sum::<f64>() < 1.0, "{p:?}");
    // softmax of the logits, as PyTorch would compute it
    let logits: Vec<f64> = v["logits"].as_array().expect("logits").iter().map(|l| l.as_f64().expect("f")).collect();
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    let best = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!((best.exp() / z - p[0]).abs() < 1e-5);
}

#[tokio::test]
async fn health_says_which_weights_are_loaded() {
    let app = app_with(16);
    let (status, body) = send(&app, Request::get("/healthz").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["weights"]["file"], "food11.pth");
    assert_eq!(v["weights"]["sha256"], common::golden()["weights_sha256"]);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["classes"].as_array().expect("classes").len(), 11);
}

#[tokio::test]
async fn bad_uploads_get_a_clear_4xx() {
    let app = app_with(16);
    let jpeg = common::test_image();
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("text", multipart("file", "notes.txt", b"just some words"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image"),
        ("empty", multipart("file", "e.jpeg", b""), StatusCode::BAD_REQUEST, "empty"),
        ("truncated jpeg", multipart("file", "t.jpeg", &jpeg[..jpeg.len() / 3]), StatusCode::BAD_REQUEST, "decoded"),
        ("wrong field", multipart("photo", "x.jpeg", &jpeg), StatusCode::BAD_REQUEST, "`file`"),
        ("too big", multipart("file", "big.jpeg", &vec![0xffu8; LIMIT + 1]), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        ("bomb", multipart("file", "bomb.png", &png_header(100_000, 100_000)), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        (
            "not multipart",
            Request::post("/predict").header("content-type", "text/plain").body(Body::from("hi")).expect("req"),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (what, req, want, says) in cases {
        let (status, body) = send(&app, req).await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(body.contains(says), "{what}: {body}");
    }
    // A hostile file name is just a name (never used as a path): the upload is classified.
    let (status, html) = send(&app, multipart("file", "../../../../etc/passwd", &jpeg)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // and the service still answers
    let (status, _) = send(&app, Request::get("/test").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_the_rest_are_served() {
    let app = app_with(2);
    let jpeg = Arc::new(common::test_image());
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (app, jpeg) = (app.clone(), jpeg.clone());
        tasks.push(tokio::spawn(async move { send(&app, multipart("file", "x.jpeg", &jpeg)).await }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(body.contains("busy"), "{body}");
                busy += 1
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok + busy, 24);
    assert!(ok >= 2, "some requests are served ({ok} ok, {busy} busy)");
    let (status, _) = send(&app, Request::get("/test").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK, "the service recovers once the queue drains");
}

/// A PNG whose header claims `w`×`h` pixels, with a token of image data:
/// decoding it would need gigabytes.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &[0x78, 0x9c, 0x03, 0, 0, 0, 0, 1][..]), (b"IEND", &[][..])] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
