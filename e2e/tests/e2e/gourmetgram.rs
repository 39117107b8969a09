//! The lab's last section on berth: GourmetGram (gourmetgram/, the Rust
//! axum + tch service) built from its Dockerfile by berth through the real
//! docker CLI, its dependency layers cached across a code edit, run with
//! `-p 80:8000`, and used from headless Chromium: upload the test image,
//! see one of the eleven classes in the badge.
//!
//! Needs `scripts/gourmetgram.sh build` (test.sh runs it): the release
//! binary in gourmetgram/bin and the fixed-seed weights in gourmetgram/.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use std::fs;
use std::path::Path;
use std::time::Duration;

use berth_e2e::browser::Browser;
use berth_e2e::sandbox::node1;
use fantoccini::Locator;

const CLASSES: [&str; 11] =
    ["Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat", "Noodles/Pasta", "Rice", "Seafood", "Soup", "Vegetable/Fruit"];

/// The build context as the repository has it after `gourmetgram.sh build`,
/// copied so the test can edit the code (target/ is left out, as
/// .dockerignore leaves it out of the image).
fn copy_context(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dest).unwrap();
            copy_context(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gourmetgram_builds_on_berth_and_classifies_an_upload_in_chromium() {
    let src = berth_e2e::repo_root().join("gourmetgram");
    for need in ["bin/gourmetgram", "food11.pth", "Dockerfile"] {
        assert!(src.join(need).is_file(), "gourmetgram/{need} missing: run scripts/gourmetgram.sh build");
    }
    let (sb, d) = node1().unwrap();
    let ctx = sb.dir().join("gourmetgram");
    fs::create_dir_all(&ctx).unwrap();
    copy_context(&src, &ctx);
    let ctx_s = ctx.to_str().unwrap();

    let first = sb.docker_ok(&d, &["build", "-t", "gourmetgram-app:0.0.1", ctx_s]);
    for want in
        ["FROM gourmetgram-base:libtorch-2.13.0", "WORKDIR /app", "food11.pth", "EXPOSE 8000", "Successfully tagged gourmetgram-app:0.0.1"]
    {
        assert!(first.contains(want), "missing {want:?} in:\n{first}");
    }
    // A code edit: the dependency COPY and the RUN after it come from the cache.
    let web = ctx.join("src/web.rs");
    let code = fs::read_to_string(&web).unwrap();
    fs::write(&web, format!("{code}\n// edited by the lab\n")).unwrap();
    let second = sb.docker_ok(&d, &["build", "-t", "gourmetgram-app:0.0.1", ctx_s]);
    let steps: Vec<&str> = second.split("\nStep ").collect();
    let step = |prefix: &str| *steps.iter().find(|s| s.contains(prefix)).unwrap_or_else(|| panic!("no step {prefix} in:\n{second}"));
    assert!(step(": COPY Cargo.toml").contains("Using cache"), "dependencies cached:\n{second}");
    assert!(step(": RUN sha256sum").contains("Using cache"), "RUN cached:\n{second}");
    assert!(!step(": COPY . .").contains("Using cache"), "the edit is copied:\n{second}");

    sb.docker_ok(&d, &["run", "--name", "gourmetgram-app", "-d", "--rm", "-p", "80:8000", "gourmetgram-app:0.0.1"]);
    let base = format!("http://{}", sb.uplink.node_ip);
    let mut health = String::new();
    for _ in 0..150 {
        let o = std::process::Command::new("curl").args(["-fsS", "--max-time", "5", &format!("{base}/healthz")]).output().unwrap();
        if o.status.success() {
            health = String::from_utf8_lossy(&o.stdout).into_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if health.is_empty() {
        let logs = sb.docker(&d, &["logs", "gourmetgram-app"]).map(|o| berth_e2e::sandbox::out(&o)).unwrap_or_default();
        panic!("GourmetGram did not answer on {base}/healthz within 30 s; its log:\n{logs}");
    }
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(h["weights"]["file"], "food11.pth", "{health}");
    let sha = h["weights"]["sha256"].as_str().unwrap().to_string();
    let logs = sb.docker_ok(&d, &["logs", "gourmetgram-app"]);
    assert!(logs.contains("weights loaded") && logs.contains(&sha), "{logs}");

    let browser = Browser::start().await.unwrap();
    let c = &browser.client;
    c.goto(&format!("{base}/")).await.unwrap();
    browser.wait_for_text("footer", &sha, Duration::from_secs(10)).await.unwrap();
    let image = src.join("static/test_image.jpeg").canonicalize().unwrap();
    c.find(Locator::Css("input[type=file]")).await.unwrap().send_keys(image.to_str().unwrap()).await.unwrap();
    c.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();
    let badge = browser.wait_for_text("#badge", "", Duration::from_secs(30)).await;
    let shot = browser.screenshot("gourmetgram.png").await.unwrap();
    let badge = badge.unwrap_or_else(|e| panic!("{e} (screenshot {})", shot.display()));
    assert!(CLASSES.contains(&badge.trim()), "badge {badge:?} is not a Food-11 class");
    let top3 = c.find(Locator::Css("#top3")).await.unwrap().text().await.unwrap();
    assert_eq!(top3.lines().count(), 3, "{top3}");
    assert!(top3.starts_with(badge.trim()), "{top3}");
    browser.close().await;

    // The original's /test route, through the published port.
    let o = std::process::Command::new("curl").args(["-fsS", "--max-time", "10", &format!("{base}/test")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("<span class=\"badge\">{}</span>", badge.trim()));
    sb.docker_ok(&d, &["stop", "gourmetgram-app"]);
}
