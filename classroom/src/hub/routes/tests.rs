//! The hub's door, without a socket to the browser (tower's oneshot): roles,
//! routes, cookies, Origin; the proxy against a fake node that says what it
//! was sent.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use axum::http::{HeaderMap, Request as HttpRequest};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::hub::HubConfig;
use crate::spawner::{Node, NodeRequest, SpawnError, Spawner};

const TOKEN: &str = "instructor-token-for-tests-0123";
const HOST: &str = "127.0.0.1:8090";

/// A spawner whose nodes are all one fake lab server on 127.0.0.1.
#[derive(Debug)]
struct Fake {
    addr: String,
    nodes: Mutex<BTreeMap<String, Node>>,
    removed: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Spawner for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn spawn(&self, req: &NodeRequest) -> Result<Node, SpawnError> {
        let mut nodes = self.nodes.lock().unwrap();
        let id = format!("n{}", nodes.len());
        let n = Node {
            id: id.clone(),
            class: req.class.clone(),
            learner: req.learner.clone(),
            phase: Phase::Running,
            addr: Some(self.addr.clone()),
            reason: None,
            labels: BTreeMap::from([("secret".to_string(), req.secret.clone())]),
            created: SystemTime::now(),
        };
        nodes.insert(id, n.clone());
        Ok(n)
    }
    async fn status(&self, id: &str) -> Result<Node, SpawnError> {
        self.nodes.lock().unwrap().get(id).cloned().ok_or_else(|| SpawnError::NotFound(id.into()))
    }
    async fn list(&self) -> Result<Vec<Node>, SpawnError> {
        Ok(self.nodes.lock().unwrap().values().cloned().collect())
    }
    async fn remove(&self, id: &str) -> Result<(), SpawnError> {
        self.nodes.lock().unwrap().remove(id);
        self.removed.lock().unwrap().push(id.to_string());
        Ok(())
    }
}

/// A fake node: answers every request with what it was sent.
async fn fake_node() -> String {
    let echo = |req: Request| async move {
        let headers: BTreeMap<String, String> =
            req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
        Json(json!({ "method": req.method().as_str(), "uri": req.uri().to_string(), "headers": headers }))
    };
    let app = Router::new().fallback(echo);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

async fn setup() -> (Arc<Hub>, Arc<Fake>, Router) {
    let fake = Arc::new(Fake { addr: fake_node().await, nodes: Mutex::default(), removed: Mutex::default() });
    let hub = Hub::new(HubConfig::new(TOKEN.into()), fake.clone());
    let app = app(hub.clone());
    (hub, fake, app)
}

async fn send(app: &Router, req: HttpRequest<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> axum::http::request::Builder {
    HttpRequest::builder().uri(uri).header(header::HOST, HOST)
}

fn instructor(uri: &str) -> axum::http::request::Builder {
    get(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

fn ws(b: axum::http::request::Builder) -> axum::http::request::Builder {
    b.header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

async fn new_class(app: &Router, capacity: u32) -> serde_json::Value {
    let body = json!({ "name": "Monday", "lab": "deploy-docker", "capacity": capacity, "expires_in_s": 3600 }).to_string();
    let req =
        instructor("/hub/api/classes").method("POST").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap();
    let (s, _, b) = send(app, req).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    serde_json::from_str(&b).unwrap()
}

/// Joins with the class's link; returns the cookie pair (`name=value`).
async fn join_as(app: &Router, class: &serde_json::Value, name: &str) -> String {
    let path = class["join_url"].as_str().unwrap().strip_prefix(&format!("http://{HOST}")).unwrap().to_string();
    let req = get(&path)
        .method("POST")
        .header(header::ORIGIN, format!("http://{HOST}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name={name}")))
        .unwrap();
    let (s, h, b) = send(app, req).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{b}");
    assert_eq!(h[header::LOCATION], "/");
    let set = h[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_instructor_link_signs_in_and_the_token_leaves_the_address() {
    let (_hub, _, app) = setup().await;
    let (s, h, _) = send(&app, get(&format!("/?token={TOKEN}")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/hub/");
    let cookie = h[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("berth_hub="));
    let (s, _, b) = send(&app, get("/hub/api/classes").header(header::COOKIE, &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "[]"));
    let (s, h, _) = send(&app, get("/?token=wrong-token-000000000000").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn instructor_routes_are_closed_to_learners_and_strangers() {
    let (_hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let learner = join_as(&app, &class, "ada").await;
    for (method, uri) in
        [("GET", "/hub/api/classes"), ("POST", "/hub/api/classes"), ("DELETE", "/hub/api/classes/x"), ("GET", "/hub/api/feed")]
    {
        let (s, _, b) = send(&app, get(uri).method(method).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}: {b}");
        assert!(b.contains("\"message\""), "{b}");
        let (s, _, b) = send(&app, get(uri).method(method).header(header::COOKIE, &learner).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "learner {method} {uri}: {b}");
    }
    // A made-up bearer token is nobody.
    let (s, _, _) = send(&app, get("/hub/api/classes").header(header::AUTHORIZATION, "Bearer nope").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_learner_reaches_only_their_own_node_with_the_hubs_secret_and_not_their_cookie() {
    let (hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    let bob = join_as(&app, &class, "bob").await;
    let (s, _, b) = send(&app, get("/api/state?x=1").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["uri"], "/api/state?x=1");
    let learners = hub.learners();
    let ada_l = learners.iter().find(|l| l.name == "ada").unwrap();
    let bob_l = learners.iter().find(|l| l.name == "bob").unwrap();
    assert_eq!(v["headers"]["authorization"], format!("Bearer {}", ada_l.secret), "the node's own secret");
    assert!(v["headers"].get("cookie").is_none(), "{v}");
    assert_ne!(ada_l.secret, bob_l.secret);
    // Bob's node under /n/: Ada's cookie is refused, Bob's passes.
    let bob_node = bob_l.node.as_ref().unwrap().id.clone();
    for uri in [format!("/n/{bob_node}/"), format!("/n/{bob_node}/api/state"), "/n/nonexistent/api/state".to_string()] {
        let (s, _, b) = send(&app, get(&uri).header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{uri}: {b}");
    }
    let req = ws(get(&format!("/n/{bob_node}/api/events")).header(header::ORIGIN, format!("http://{HOST}")).header(header::COOKIE, &ada));
    assert_eq!(send(&app, req.body(Body::empty()).unwrap()).await.0, StatusCode::FORBIDDEN, "another's stream");
    let (s, _, b) = send(&app, get(&format!("/n/{bob_node}/api/state")).header(header::COOKIE, &bob).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["uri"], "/api/state");
    assert_eq!(v["headers"]["authorization"], format!("Bearer {}", bob_l.secret));
    // Their own status.
    let (s, _, b) = send(&app, get("/hub/api/me").header(header::COOKIE, &bob).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("\"bob\"") && b.contains("Running"), "{b}");
}

#[tokio::test]
async fn the_instructor_views_a_node_read_only() {
    let (hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let _ada = join_as(&app, &class, "ada").await;
    let node = hub.learners()[0].node.clone().unwrap().id;
    let (s, _, b) = send(&app, instructor(&format!("/n/{node}/api/state")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let (s, _, b) = send(&app, instructor(&format!("/n/{node}/api/anything")).method(m).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m}: {b}");
        assert!(b.contains("read-only"), "{b}");
    }
    // The terminal: the learner has no shell yet, so there is nothing to watch (no new shell is made).
    let req = ws(instructor(&format!("/n/{node}/api/terminal?id=mine")));
    let (s, _, b) = send(&app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // The instructor's own paths are not a node's.
    let (s, _, _) = send(&app, instructor("/api/state").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_origins_are_refused_and_websockets_need_an_origin() {
    let (_hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    for path in ["/api/events", "/api/terminal", "/hub/api/feed"] {
        for origin in ["http://evil.example", "http://127.0.0.1:9999", "null"] {
            let req = ws(get(path).header(header::COOKIE, &ada).header(header::ORIGIN, origin));
            let (s, _, b) = send(&app, req.body(Body::empty()).unwrap()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path} from {origin}: {b}");
        }
        let req = ws(get(path).header(header::COOKIE, &ada));
        assert_eq!(send(&app, req.body(Body::empty()).unwrap()).await.0, StatusCode::FORBIDDEN, "{path} without Origin");
    }
    // A fetch from another origin, and another site's <img> (no Origin, but Sec-Fetch-Site).
    let req = get("/api/state").header(header::COOKIE, &ada).header(header::ORIGIN, "http://evil.example");
    assert_eq!(send(&app, req.body(Body::empty()).unwrap()).await.0, StatusCode::FORBIDDEN);
    let req = get("/api/state").header(header::COOKIE, &ada).header("sec-fetch-site", "cross-site").header("sec-fetch-mode", "no-cors");
    assert_eq!(send(&app, req.body(Body::empty()).unwrap()).await.0, StatusCode::FORBIDDEN);
    // A join form posted from another site does not sign anyone in.
    let path = class["join_url"].as_str().unwrap().strip_prefix(&format!("http://{HOST}")).unwrap().to_string();
    let req = get(&path).method("POST").header(header::ORIGIN, "http://evil.example").body(Body::from("name=x")).unwrap();
    let (s, h, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get(header::SET_COOKIE).is_none());
    // Our own page's requests pass.
    let req = get("/api/state").header(header::COOKIE, &ada).header(header::ORIGIN, format!("http://{HOST}"));
    assert_eq!(send(&app, req.body(Body::empty()).unwrap()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_full_class_and_an_unknown_code_refuse_to_join() {
    let (_hub, _, app) = setup().await;
    let class = new_class(&app, 1).await;
    join_as(&app, &class, "ada").await;
    let path = class["join_url"].as_str().unwrap().strip_prefix(&format!("http://{HOST}")).unwrap().to_string();
    let (s, _, b) = send(&app, get(&path).method("POST").body(Body::from("name=bob")).unwrap()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _, _) = send(&app, get("/join/0000").method("POST").body(Body::from("name=bob")).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, b) = send(&app, get(&path).method("POST").body(Body::from("name=")).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn an_expired_class_loses_its_nodes_and_its_learners_their_sessions() {
    let (hub, fake, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    assert_eq!(fake.nodes.lock().unwrap().len(), 1);
    // Not due yet.
    assert!(hub.reap().await.is_empty());
    let id = class["id"].as_str().unwrap().to_string();
    hub.inner.lock().unwrap().classes.get_mut(&id).unwrap().expires_at = 0;
    assert_eq!(hub.reap().await, vec![id.clone()]);
    assert!(fake.nodes.lock().unwrap().is_empty(), "every node removed");
    let (s, _, _) = send(&app, get("/api/state").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the learner's session ended with the class");
    let (s, _, b) = send(&app, instructor(&format!("/hub/api/classes/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("\"expired\":true") && b.contains("Gone"), "{b}");
    let path = class["join_url"].as_str().unwrap().strip_prefix(&format!("http://{HOST}")).unwrap().to_string();
    let (s, _, _) = send(&app, get(&path).method("POST").body(Body::from("name=late")).unwrap()).await;
    assert_eq!(s, StatusCode::GONE);
    // Deleting it forgets it.
    let (s, _, _) = send(&app, instructor(&format!("/hub/api/classes/{id}")).method("DELETE").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, b) = send(&app, instructor("/hub/api/classes").body(Body::empty()).unwrap()).await;
    assert_eq!(b, "[]");
}

#[tokio::test]
async fn the_terminal_ticket_is_the_hubs_and_the_instructor_cannot_post_anything_else() {
    let (hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    let req = get("/api/terminal/ticket").method("POST").header(header::COOKIE, &ada).header(header::ORIGIN, format!("http://{HOST}"));
    let (s, _, b) = send(&app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let node = hub.learners()[0].node.clone().unwrap().id;
    let session = hub.sessions.of(&{
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&ada).unwrap());
        h
    });
    assert!(hub.tickets.take(v["ticket"].as_str().unwrap(), &session.unwrap().0, &node), "made by the hub for this session and node");
}

#[tokio::test]
async fn the_dashboard_is_the_page_for_the_instructor_and_403_for_a_learner() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>the page</title>").unwrap();
    std::fs::write(dir.path().join("app-1.wasm"), b"\0asm").unwrap();
    let fake = Arc::new(Fake { addr: fake_node().await, nodes: Mutex::default(), removed: Mutex::default() });
    let mut cfg = HubConfig::new(TOKEN.into());
    cfg.page_dir = Some(dir.path().to_path_buf());
    let hub = Hub::new(cfg, fake);
    let app = app(hub.clone());
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    let (s, h, b) = send(&app, instructor("/hub/").body(Body::empty()).unwrap()).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "<!doctype html><title>the page</title>"));
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let (s, h, _) = send(&app, instructor("/hub/app-1.wasm").body(Body::empty()).unwrap()).await;
    assert_eq!((s, h[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "application/wasm"));
    // The classes page (the form, the join links) stays at /hub/classes.
    let (s, _, b) = send(&app, instructor("/hub/classes").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("data-testid=new-class") && b.contains("/join/"), "{b}");
    // Nothing outside the dist, nothing for a learner.
    for uri in ["/hub/..%2Findex.html", "/hub/.hidden", "/hub/missing.js"] {
        assert_eq!(send(&app, instructor(uri).body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND, "{uri}");
    }
    for uri in ["/hub/", "/hub/classes", "/hub/app-1.wasm"] {
        let (s, _, b) = send(&app, get(uri).header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "learner {uri}: {b}");
    }
}

#[tokio::test]
async fn a_learner_raises_their_hand_the_feed_says_so_and_nobody_else_can() {
    let (hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    let mut feed = hub.feed.subscribe();
    let hand = |b: axum::http::request::Builder, body: &str| b.method("POST").body(Body::from(body.to_string())).unwrap();
    let (s, _, b) = send(&app, get("/api/hub/hand").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("\"raised\":false"), "{b}");
    // No Origin (not a page's fetch), another origin: refused.
    let (s, _, _) = send(&app, hand(get("/api/hub/hand").header(header::COOKIE, &ada), r#"{"raised":true}"#)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        &app,
        hand(get("/api/hub/hand").header(header::COOKIE, &ada).header(header::ORIGIN, "http://evil.example"), r#"{"raised":true}"#),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let own = || get("/api/hub/hand").header(header::COOKIE, &ada).header(header::ORIGIN, format!("http://{HOST}"));
    assert_eq!(send(&app, hand(own(), "raised")).await.0, StatusCode::BAD_REQUEST);
    let (s, _, b) = send(&app, hand(own(), r#"{"raised":true}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let frame: serde_json::Value = serde_json::from_str(&feed.try_recv().unwrap()).unwrap();
    let ada_id = hub.learners()[0].id.clone();
    assert_eq!(frame["hand"], json!({ "learner": ada_id, "raised": true }));
    assert!(hub.learners()[0].hand_ms.is_some());
    // Under /n/<node>/: the learner's own page may; the instructor's read-only view may not.
    let node = hub.learners()[0].node.clone().unwrap().id;
    let (s, _, b) = send(&app, get(&format!("/n/{node}/api/hub/hand")).header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert!(s == StatusCode::OK && b.contains("\"raised\":true"), "{b}");
    let (s, _, _) = send(&app, instructor(&format!("/n/{node}/api/hub/hand")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(&app, get("/api/hub/hand").method("POST").body(Body::from(r#"{"raised":true}"#)).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&app, hand(own(), r#"{"raised":false}"#)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(hub.learners()[0].hand_ms.is_none());
}

#[tokio::test]
async fn over_http2_the_uris_authority_is_the_host() {
    // An HTTP/2 request has no Host header: its origin check and links use the URI's authority.
    let (_hub, _, app) = setup().await;
    let req = HttpRequest::builder()
        .uri(format!("http://{HOST}/hub/api/classes"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ORIGIN, format!("http://{HOST}"))
        .header(header::CONTENT_TYPE, "application/json")
        .method("POST")
        .body(Body::from(json!({ "name": "h2", "capacity": 1, "expires_in_s": 60 }).to_string()))
        .unwrap();
    let (s, _, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b.contains(&format!("\"join_url\":\"http://{HOST}/join/")), "{b}");
}

/// An instructor session by the token link (a browser's cookie).
async fn instructor_cookie(app: &Router) -> String {
    let (s, h, _) = send(app, get(&format!("/?token={TOKEN}")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    h[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_instructor_takes_over_a_terminal_the_learner_is_told_and_every_takeover_is_logged() {
    let (hub, _, app) = setup().await;
    let class = new_class(&app, 5).await;
    let ada = join_as(&app, &class, "ada").await;
    let l = hub.learners()[0].clone();
    let node = l.node.clone().unwrap().id;
    let teacher = instructor_cookie(&app).await;
    let mut notices = hub.notices.subscribe();
    let mut feed = hub.feed.subscribe();
    let take = |cookie: &str, origin: Option<&str>, body: &str| {
        let mut b = get(&format!("/n/{node}/api/hub/takeover")).method("POST").header(header::COOKIE, cookie);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::from(body.to_string())).unwrap()
    };
    let own = format!("http://{HOST}");
    // The view says who looks: the learner, or the instructor (read-only).
    let (s, _, b) = send(&app, get(&format!("/n/{node}/api/hub/view")).header(header::COOKIE, &teacher).body(Body::empty()).unwrap()).await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (s, v["role"].as_str(), v["learner"]["name"].as_str(), &v["takeover"]),
        (StatusCode::OK, Some("instructor"), Some("ada"), &json!(null))
    );
    let (_, _, b) = send(&app, get("/api/hub/view").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert!(b.contains("\"role\":\"learner\""), "{b}");
    // Neither the learner, nor a POST without the page's Origin, nor garbage.
    assert_eq!(send(&app, take(&ada, Some(&own), r#"{"active":true}"#)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, take(&teacher, None, r#"{"active":true}"#)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, take(&teacher, Some("http://evil.example"), r#"{"active":true}"#)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, take(&teacher, Some(&own), "yes")).await.0, StatusCode::BAD_REQUEST);
    assert!(!hub.may_type(&l.id, teacher.split('=').nth(1).unwrap()));
    let (s, _, b) = send(&app, take(&teacher, Some(&own), r#"{"active":true}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let session = teacher.split('=').nth(1).unwrap().to_string();
    assert!(hub.may_type(&l.id, &session), "the instructor's keystrokes now reach the shell");
    assert!(!hub.may_type(&l.id, "bearer"), "only the session that took over");
    let n = notices.try_recv().unwrap();
    let frame: serde_json::Value = serde_json::from_str(&n.frame).unwrap();
    assert!(matches!(n.to, crate::hub::teach::To::Learner(ref id) if *id == l.id));
    assert_eq!(frame["takeover"]["active"], json!(true));
    let by = frame["takeover"]["by"].as_str().unwrap().to_string();
    assert!(by.starts_with("instructor ") && !by.contains(&session), "{by}");
    let f: serde_json::Value = serde_json::from_str(&feed.try_recv().unwrap()).unwrap();
    assert_eq!((f["takeover"]["learner"].as_str(), &f["takeover"]["state"]["active"]), (Some(l.id.as_str()), &json!(true)));
    // The learner's view shows it; another instructor cannot take it.
    let (_, _, b) = send(&app, get("/api/hub/view").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await;
    assert!(b.contains(&by), "{b}");
    let other = instructor_cookie(&app).await;
    assert_eq!(send(&app, take(&other, Some(&own), r#"{"active":true}"#)).await.0, StatusCode::CONFLICT);
    // Handing back: logged with its end.
    let (s, _, b) = send(&app, take(&teacher, Some(&own), r#"{"active":false}"#)).await;
    assert!(s == StatusCode::OK && b.contains("\"active\":false"), "{b}");
    assert!(!hub.may_type(&l.id, &session));
    let (s, _, b) = send(&app, instructor("/hub/api/takeovers").body(Body::empty()).unwrap()).await;
    let log: Vec<serde_json::Value> = serde_json::from_str(&b).unwrap();
    assert_eq!((s, log.len()), (StatusCode::OK, 1));
    assert_eq!(
        (log[0]["learner"].as_str(), log[0]["name"].as_str(), log[0]["by"].as_str()),
        (Some(l.id.as_str()), Some("ada"), Some(by.as_str()))
    );
    assert!(log[0]["ended_ms"].as_u64() >= log[0]["started_ms"].as_u64());
    assert_eq!(
        send(&app, get("/hub/api/takeovers").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, get("/api/hub/nonsense").header(header::COOKIE, &ada).body(Body::empty()).unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_broadcast_reaches_its_class_only_and_bad_ones_are_refused() {
    let (hub, _, app) = setup().await;
    let monday = new_class(&app, 5).await;
    let tuesday = new_class(&app, 5).await;
    let _ada = join_as(&app, &monday, "ada").await;
    let bob = join_as(&app, &tuesday, "bob").await;
    let id = monday["id"].as_str().unwrap();
    let mut notices = hub.notices.subscribe();
    let post = |b: axum::http::request::Builder, body: &str| b.method("POST").body(Body::from(body.to_string())).unwrap();
    let url = format!("/hub/api/classes/{id}/broadcasts");
    for bad in [r#"{"text":""}"#, r#"{"text":"x","command":"a\nb"}"#, "nope", &format!(r#"{{"text":"{}"}}"#, "x".repeat(501))] {
        assert_eq!(send(&app, post(instructor(&url), bad)).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(send(&app, post(get(&url).header(header::COOKIE, &bob), r#"{"text":"hi"}"#)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, post(instructor("/hub/api/classes/cnope/broadcasts"), r#"{"text":"hi"}"#)).await.0, StatusCode::NOT_FOUND);
    let (s, _, b) = send(&app, post(instructor(&url), r#"{"text":"Try the published port","command":"curl http://localhost:8080"}"#)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let n = notices.try_recv().unwrap();
    assert!(matches!(n.to, crate::hub::teach::To::Class(ref c) if c == id));
    let f: serde_json::Value = serde_json::from_str(&n.frame).unwrap();
    assert_eq!(
        (f["broadcast"]["text"].as_str(), f["broadcast"]["command"].as_str()),
        (Some("Try the published port"), Some("curl http://localhost:8080"))
    );
    let (_, _, b) = send(&app, instructor(&url).body(Body::empty()).unwrap()).await;
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&b).unwrap().len(), 1);
    assert!(hub.broadcasts(tuesday["id"].as_str().unwrap()).is_empty());
}

#[tokio::test]
async fn a_class_exports_its_progress_as_csv_json_and_a_tar() {
    let fake = Arc::new(Fake { addr: fake_node().await, nodes: Mutex::default(), removed: Mutex::default() });
    let archive = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new(TOKEN.into());
    cfg.archive_dir = Some(archive.path().to_path_buf());
    let hub = Hub::new(cfg, fake);
    let app = app(hub.clone());
    let class = new_class(&app, 5).await;
    let id = class["id"].as_str().unwrap();
    let _ada = join_as(&app, &class, "ada").await;
    let l = hub.learners()[0].clone();
    // Progress as the node's stream tells it.
    let lab = berth_shared::lab::deploy_docker();
    let ev = |seq, t, step: &str, change| {
        berth_shared::StreamMsg::Event(berth_shared::Envelope::new(
            seq,
            t,
            berth_shared::Event::LabProgress { lab: lab.id.clone(), step: step.into(), change },
        ))
    };
    let frame = serde_json::to_string(&vec![
        ev(1, 1_000, &lab.steps[0].id, berth_shared::lab::LabChange::StepStarted),
        ev(2, 4_000, &lab.steps[0].id, berth_shared::lab::LabChange::StepCompleted),
    ])
    .unwrap();
    {
        let p = hub.progress_of(&l.id);
        let mut p = p.lock().unwrap();
        p.take_frame(&lab.id, &frame);
        p.archive(Some(&crate::hub::progress::learner_dir(archive.path(), id, &l.id)), 5, &frame);
    }
    let (s, h, b) = send(&app, instructor(&format!("/hub/api/classes/{id}/progress.csv")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert!(h[header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
    let row = b.lines().nth(1).unwrap();
    assert!(row.starts_with(&format!("{},ada,{},", l.id, lab.steps[0].id)) && row.contains(",passed,true,3.0,"), "{row}");
    let (_, _, b) = send(&app, instructor(&format!("/hub/api/classes/{id}/progress.json")).body(Body::empty()).unwrap()).await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((v["learners"][0]["name"].as_str(), v["learners"][0]["completed"].as_u64()), (Some("ada"), Some(1)));
    assert_eq!(v["learners"][0]["steps"][0]["seconds"], json!(3.0));
    // The tar: progress, and the learner's events (the fake node has no recordings list).
    let (s, _, _) = send(&app, instructor(&format!("/hub/api/classes/{id}/export.tar")).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let resp = app.clone().oneshot(instructor(&format!("/hub/api/classes/{id}/export.tar")).body(Body::empty()).unwrap()).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let mut names: Vec<String> =
        tar::Archive::new(&bytes[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    names.sort();
    assert_eq!(names, ["ada-".to_string() + &l.id + "/events.jsonl", "progress.csv".into(), "progress.json".into()]);
    // Nothing left behind but the archive itself.
    let left: Vec<String> =
        std::fs::read_dir(archive.path().join(id)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec![l.id.clone()]);
    for bad in ["nope.txt", "..", "progress.json.bak"] {
        assert_eq!(
            send(&app, instructor(&format!("/hub/api/classes/{id}/{bad}")).body(Body::empty()).unwrap()).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(send(&app, instructor("/hub/api/classes/cnope/progress.csv").body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&app, get(&format!("/hub/api/classes/{id}/progress.csv")).body(Body::empty()).unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
}
