//! berth-hub's routes. Who may use each (the README has the same table):
//!
//! | Route | Who |
//! |---|---|
//! | `GET /?token=T`, `GET,POST /hub/login` | anyone with the instructor's token: an instructor session |
//! | `GET /hub/`, `GET /hub/{page file}` | instructor: the dashboard (the page's dist, which shows the dashboard under `/hub/`) |
//! | `GET /hub/classes` | instructor: the classes page (create a class, join links) |
//! | `GET,POST /hub/api/classes`, `GET,DELETE /hub/api/classes/{id}` | instructor |
//! | `GET /hub/api/classes/{id}/progress.json`, `…/progress.csv`, `…/export.tar` | instructor: the class's progress, and everything kept of it |
//! | `GET,POST /hub/api/classes/{id}/broadcasts` | instructor: messages (and a command to try) to the class's pages (`{"text", "command"}`) |
//! | `GET /hub/api/takeovers` | instructor: every terminal takeover (who, whose, from, until) |
//! | `GET /hub/api/feed` (WebSocket) | instructor: every learner's events, tagged |
//! | `GET,POST /join/{code}` | anyone with a class's join link: a learner session and a node |
//! | `GET /hub/api/me` | learner: their own node's status |
//! | `GET,POST /api/hub/hand` (also under `/n/{node}/`) | learner: their raised hand (`{"raised": bool}`; POST needs the hub's Origin) |
//! | `GET /api/hub/view` (also under `/n/{node}/`) | the node's learner and the instructor: whose page this is, who is looking, the takeover |
//! | `GET /api/hub/notices` (WebSocket; also under `/n/{node}/`) | the node's learner and the instructor: takeovers and broadcasts |
//! | `POST /n/{node}/api/hub/takeover` | instructor: `{"active": bool}` starts or ends typing in the learner's terminal (the Origin must be the hub's) |
//! | `/`, `/api/*` and the page's files (HTTP and WebSockets) | learner: proxied to their own node |
//! | `/n/{node}/…` | the instructor (read-only: GET/HEAD, the event stream, the terminal's output; keystrokes only during their takeover) and that node's learner |
//!
//! Every request carrying an Origin must come from the hub's own origin or
//! `--allowed-origin`; a WebSocket upgrade with a cookie must carry one.
//! Tools sign in as the instructor with `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

use super::auth::{self, Role};
use super::proxy::{self, message, no_store, Target};
use super::{learner_json, Hub, HubError, NewClass};
use crate::spawner::Phase;

/// Who a request comes from (the guard puts it in the extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The session id ("bearer" for a tool with the instructor's token).
    pub session: String,
    pub role: Role,
}

pub fn app(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/hub", get(|| async { redirect("/hub/") }))
        .route("/hub/", get(dashboard))
        .route("/hub/classes", get(classes_page))
        .route("/hub/{file}", get(dashboard_file))
        .route("/hub/login", get(login_form).post(login))
        .route("/hub/api/classes", get(list_classes).post(create_class))
        .route("/hub/api/classes/{id}", get(get_class).delete(delete_class))
        .route("/hub/api/classes/{id}/broadcasts", get(list_broadcasts).post(send_broadcast))
        .route("/hub/api/classes/{id}/{file}", get(class_file))
        .route("/hub/api/takeovers", get(takeovers))
        .route("/hub/api/feed", get(feed))
        .route("/hub/api/me", get(me))
        .route("/join/{code}", get(join_form).post(join))
        .route("/n/{node}", any(|Path(node): Path<String>| async move { redirect(&format!("/n/{node}/")) }))
        .route("/n/{node}/", any(node_view_root))
        .route("/n/{node}/{*rest}", any(node_view))
        .fallback(root)
        .layer(middleware::from_fn_with_state(hub.clone(), guard))
        .with_state(hub)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/hub/api/") || (path.starts_with("/n/") && path.contains("/api/"))
}

fn err(e: HubError) -> Response {
    let status = match e {
        HubError::BadRequest(_) => StatusCode::BAD_REQUEST,
        HubError::NotFound(_) => StatusCode::NOT_FOUND,
        HubError::Conflict(_) => StatusCode::CONFLICT,
        HubError::Gone(_) => StatusCode::GONE,
        HubError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    message(status, &e.to_string())
}

fn redirect(to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/")));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect_with_session(hub: &Hub, session: &str, to: &str) -> Response {
    let mut r = redirect(to);
    if let Ok(v) = HeaderValue::from_str(&hub.sessions.cookie(session)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Every route's first step: Origin, then who is asking.
async fn guard(State(hub): State<Arc<Hub>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // HTTP/2 (browsers speak it over TLS) names the host in the URI, not in a Host header.
    if !req.headers().contains_key(header::HOST) {
        if let Some(v) = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    if let Some(why) = auth::cross_origin(req.headers(), req.method(), &hub.cfg.allowed_origins) {
        tracing::warn!(path = %path.chars().take(100).collect::<String>(), %why, "refused");
        return if is_api(&path) || auth::is_websocket(req.headers()) {
            message(StatusCode::FORBIDDEN, &why)
        } else {
            page(StatusCode::FORBIDDEN, "Not allowed", &format!("<p>{}</p>", esc(&why)))
        };
    }
    let caller = match hub.sessions.of(req.headers()) {
        Some((session, role)) => Some(Caller { session, role }),
        None => auth::bearer(req.headers())
            .filter(|t| auth::same_secret(t, &hub.cfg.token))
            .map(|_| Caller { session: "bearer".into(), role: Role::Instructor }),
    };
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

/// A WebSocket upgrade, if the request is one.
#[derive(Debug)]
struct MaybeWs(Option<WebSocketUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeWs {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        if !auth::is_websocket(&parts.headers) {
            return Ok(MaybeWs(None));
        }
        Ok(MaybeWs(WebSocketUpgrade::from_request_parts(parts, state).await.ok()))
    }
}

/// The caller, if signed in.
#[derive(Debug)]
struct MaybeCaller(Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(parts.extensions.get::<Caller>().cloned()))
    }
}

fn instructor_only(c: &Option<Caller>) -> Option<Response> {
    match c {
        Some(Caller { role: Role::Instructor, .. }) => None,
        Some(_) => Some(message(StatusCode::FORBIDDEN, "only the instructor may do that")),
        None => Some(message(StatusCode::UNAUTHORIZED, "sign in first: the instructor's link, or a class's join link")),
    }
}

fn base_url(headers: &axum::http::HeaderMap, secure: bool) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{}://{host}", if secure { "https" } else { "http" })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>berth classroom — {t}</title>\
<meta name=viewport content=\"width=device-width,initial-scale=1\">\
<style>body{{font:16px system-ui,sans-serif;background:#0f172a;color:#e2e8f0;margin:2rem auto;max-width:60rem;padding:0 1rem}}\
input,button{{padding:.4rem;font:inherit}}table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #334155;padding:.3rem;text-align:left}}\
a{{color:#93c5fd}}code{{color:#93c5fd}}.err{{color:#fca5a5}}form{{margin:1rem 0}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")), no_store()], Html(html)).into_response()
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string)
}

/// `/` and everything not routed above: a learner's node, or the doors.
async fn root(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, MaybeWs(ws): MaybeWs, req: Request) -> Response {
    if let Some(t) = query_token(req.uri()) {
        if auth::same_secret(&t, &hub.cfg.token) {
            let s = hub.sessions.create(Role::Instructor);
            return redirect_with_session(&hub, &s, "/hub/");
        }
        return page(StatusCode::UNAUTHORIZED, "Sign in", &login_html(Some("That token is not this hub's.")));
    }
    let path = req.uri().path().to_string();
    match caller {
        Some(Caller { role: Role::Learner(l), session }) => {
            let pq = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
            to_node(&hub, &l, &session, false, ws, req, pq).await
        }
        Some(Caller { role: Role::Instructor, .. }) if path == "/" => redirect("/hub/"),
        Some(Caller { role: Role::Instructor, .. }) => {
            message(StatusCode::NOT_FOUND, "the instructor sees a learner's node under /n/<node>/ (see /hub/api/classes)")
        }
        None if is_api(&path) => message(StatusCode::UNAUTHORIZED, "sign in first: open your class's join link"),
        None => page(
            StatusCode::UNAUTHORIZED,
            "Classroom",
            "<p>Open the join link your instructor gave you.</p><p>Instructor? <a href=/hub/login>Sign in</a>.</p>",
        ),
    }
}

/// Proxies a request to `learner`'s node (`pq`: the node's path and query).
async fn to_node(
    hub: &Arc<Hub>,
    learner: &str,
    session: &str,
    read_only: bool,
    ws: Option<WebSocketUpgrade>,
    req: Request,
    pq: String,
) -> Response {
    let Some(l) = hub.learner(learner) else { return message(StatusCode::GONE, "this learner is no longer in a class") };
    let path = pq.split('?').next().unwrap_or("/").to_string();
    let query = pq.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    let node = match &l.node {
        Some(n) if n.phase == Phase::Running && n.addr.is_some() => n.clone(),
        other => {
            let (status, msg) = match (other.as_ref().map(|n| n.phase), &l.error) {
                (_, Some(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("your node1 could not be made: {e}")),
                (Some(Phase::Failed), _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("your node1 failed: {}", other.as_ref().and_then(|n| n.reason.clone()).unwrap_or_default()),
                ),
                (Some(Phase::Gone), _) => (StatusCode::GONE, "your node1 was removed (the class ended)".to_string()),
                _ => (StatusCode::SERVICE_UNAVAILABLE, "your node1 is starting".to_string()),
            };
            if is_api(&path) || ws.is_some() {
                return message(status, &msg);
            }
            let refresh = if status == StatusCode::SERVICE_UNAVAILABLE
                && l.error.is_none()
                && other.as_ref().is_some_and(|n| n.phase == Phase::Pending)
            {
                "<meta http-equiv=refresh content=1>"
            } else {
                ""
            };
            return page(status, "node1", &format!("{refresh}<p data-testid=node-status>{}</p>", esc(&msg)));
        }
    };
    let t = Target { node: node.id.clone(), learner: l.id.clone(), addr: node.addr.clone().unwrap_or_default(), secret: l.secret.clone() };
    if !read_only {
        hub.touch(&l.id);
    }
    // The raised hand, the view, notices and takeovers are the hub's: the
    // learner's page (or the instructor's view of it) asks them here.
    match path.as_str() {
        "/api/hub/hand" => return hand(hub, &l, read_only, req).await,
        "/api/hub/view" => return hub_view(hub, &l, session, read_only),
        "/api/hub/notices" => {
            let Some(ws) = ws else { return message(StatusCode::BAD_REQUEST, "the notices are a WebSocket") };
            let (hub, id) = (hub.clone(), l.id.clone());
            return ws.on_upgrade(move |socket| hub.serve_notices(id, socket));
        }
        "/api/hub/takeover" => return takeover(hub, &l, session, read_only, req).await,
        p if p.starts_with("/api/hub/") => return message(StatusCode::NOT_FOUND, "no such hub route"),
        _ => {}
    }
    // The terminal's ticket is the hub's: for this session and this node.
    if path == "/api/terminal/ticket" {
        if req.method() != Method::POST {
            return message(StatusCode::METHOD_NOT_ALLOWED, "POST for a ticket");
        }
        let t = hub.tickets.issue(session, &node.id);
        return ([no_store()], Json(json!({ "ticket": t, "expires_in": auth::TICKET_TTL.as_secs() }))).into_response();
    }
    if read_only && !matches!(*req.method(), Method::GET | Method::HEAD) {
        return message(StatusCode::FORBIDDEN, "the instructor's view of a learner's node is read-only");
    }
    if path == "/api/terminal" {
        let query = if read_only {
            // The instructor watches the learner's own (latest) shell, never a new one.
            let Some(shell) = l.shells.last() else {
                return message(StatusCode::NOT_FOUND, "this learner has no shell open");
            };
            proxy::with_param(&query, "id", shell)
        } else {
            query
        };
        let Some(ws) = ws else { return message(StatusCode::BAD_REQUEST, "the terminal is a WebSocket") };
        if !read_only {
            if let Some(id) = proxy::query_param(&query, "id") {
                hub.note_shell(&l.id, id);
            }
        }
        return proxy::terminal(hub.clone(), ws, t, format!("/api/terminal?{query}"), session.to_string(), read_only).await;
    }
    if let Some(ws) = ws {
        return proxy::websocket(hub.clone(), ws, t, pq, read_only).await;
    }
    proxy::http(hub, &t, req, &pq).await
}

async fn node_view_root(
    State(hub): State<Arc<Hub>>,
    MaybeCaller(caller): MaybeCaller,
    Path(node): Path<String>,
    MaybeWs(ws): MaybeWs,
    req: Request,
) -> Response {
    view(hub, caller, node, String::new(), ws, req).await
}

async fn node_view(
    State(hub): State<Arc<Hub>>,
    MaybeCaller(caller): MaybeCaller,
    Path((node, rest)): Path<(String, String)>,
    MaybeWs(ws): MaybeWs,
    req: Request,
) -> Response {
    view(hub, caller, node, rest, ws, req).await
}

/// `/n/{node}/…`: the instructor's read-only view, or the node's own learner.
async fn view(hub: Arc<Hub>, caller: Option<Caller>, node: String, rest: String, ws: Option<WebSocketUpgrade>, req: Request) -> Response {
    tracing::debug!(%node, %rest, ws = ws.is_some(), method = %req.method(), role = ?caller.as_ref().map(|c| super::role_name(&c.role)), "node view");
    let Some(caller) = caller else { return message(StatusCode::UNAUTHORIZED, "sign in first") };
    let Some(owner) = hub.learner_of_node(&node) else {
        return match caller.role {
            Role::Instructor => message(StatusCode::NOT_FOUND, &format!("no such node: {node}")),
            // A learner learns nothing about other nodes, even whether they exist.
            Role::Learner(_) => message(StatusCode::FORBIDDEN, "that is not your node"),
        };
    };
    let read_only = match &caller.role {
        Role::Instructor => true,
        Role::Learner(l) if *l == owner.id => false,
        Role::Learner(_) => return message(StatusCode::FORBIDDEN, "that is not your node"),
    };
    let pq = match req.uri().query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    to_node(&hub, &owner.id, &caller.session, read_only, ws, req, pq).await
}

fn login_html(error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=err role=alert>{}</p>", esc(e))).unwrap_or_default();
    format!(
        "{error}<form method=post action=/hub/login><p>The instructor's token (in the hub's token file; \
         <code>scripts/classroom.sh</code> prints the link with it).</p>\
         <input name=token type=password autocomplete=off autofocus> <button type=submit>Sign in</button></form>"
    )
}

async fn login_form() -> Response {
    page(StatusCode::OK, "Instructor sign-in", &login_html(None))
}

async fn login(State(hub): State<Arc<Hub>>, body: axum::body::Bytes) -> Response {
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v))
        .unwrap_or_default();
    if auth::same_secret(token.trim(), &hub.cfg.token) {
        let s = hub.sessions.create(Role::Instructor);
        redirect_with_session(&hub, &s, "/hub/")
    } else {
        page(StatusCode::UNAUTHORIZED, "Instructor sign-in", &login_html(Some("That token is not this hub's.")))
    }
}

/// `/hub/`: the page (its dist's index.html), which shows the instructor's
/// dashboard when its address starts with `/hub/`; the classes page when the
/// hub has no page.
async fn dashboard(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, req: Request) -> Response {
    match &caller {
        Some(Caller { role: Role::Instructor, .. }) => {}
        Some(_) => return page(StatusCode::FORBIDDEN, "Not allowed", "<p>Only the instructor sees the class's dashboard.</p>"),
        None => return redirect("/hub/login"),
    }
    match page_file(&hub, "index.html").await {
        Some(r) => r,
        None => classes_page(State(hub), MaybeCaller(caller), req).await,
    }
}

/// A file of the page's dist (the dashboard's script, wasm, styles): one
/// name, no directories, for the instructor.
async fn dashboard_file(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, Path(file): Path<String>) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let plain = !file.starts_with('.') && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return message(StatusCode::NOT_FOUND, "no such file");
    }
    page_file(&hub, &file).await.unwrap_or_else(|| message(StatusCode::NOT_FOUND, "no such file"))
}

async fn page_file(hub: &Hub, name: &str) -> Option<Response> {
    let dir = hub.cfg.page_dir.as_ref()?;
    let bytes = tokio::fs::read(dir.join(name)).await.ok()?;
    let kind = match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    Some(([(header::CONTENT_TYPE, HeaderValue::from_static(kind)), no_store()], bytes).into_response())
}

/// `GET,POST /api/hub/hand` of a learner's own page: their raised hand.
async fn hand(hub: &Arc<Hub>, l: &super::Learner, read_only: bool, req: Request) -> Response {
    if read_only {
        return message(StatusCode::FORBIDDEN, "only the learner raises their hand");
    }
    match *req.method() {
        Method::GET => ([no_store()], Json(json!({ "raised": l.hand_ms.is_some(), "since_ms": l.hand_ms }))).into_response(),
        Method::POST => {
            // The guard refused other origins; a POST without one is no page of ours.
            if !req.headers().contains_key(header::ORIGIN) {
                return message(StatusCode::FORBIDDEN, "raising a hand needs the page's Origin");
            }
            let Ok(body) = axum::body::to_bytes(req.into_body(), 1024).await else {
                return message(StatusCode::PAYLOAD_TOO_LARGE, "that request is too large");
            };
            #[derive(serde::Deserialize)]
            struct Hand {
                raised: bool,
            }
            match serde_json::from_slice::<Hand>(&body) {
                Ok(h) if hub.set_hand(&l.id, h.raised) => ([no_store()], Json(json!({ "raised": h.raised }))).into_response(),
                Ok(_) => message(StatusCode::GONE, "this learner is no longer in a class"),
                Err(e) => message(StatusCode::BAD_REQUEST, &format!("a hand is {{\"raised\": true|false}}: {e}")),
            }
        }
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "GET or POST a hand"),
    }
}

/// `/hub/classes`: the server-rendered classes page (create a class, the
/// join links, each learner's node).
async fn classes_page(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, req: Request) -> Response {
    match &caller {
        Some(Caller { role: Role::Instructor, .. }) => {}
        Some(_) => return page(StatusCode::FORBIDDEN, "Not allowed", "<p>Only the instructor sees the classes.</p>"),
        None => return redirect("/hub/login"),
    }
    let base = base_url(req.headers(), hub.cfg.secure);
    let mut html = String::from(
        "<form method=post action=/hub/api/classes data-testid=new-class>\
         <input name=name placeholder='Class name' required> <input name=capacity type=number value=30 min=1 style=width:5rem> \
         learners, for <input name=expires_in_s type=number value=14400 min=60 style=width:7rem> s \
         <input type=hidden name=lab value=deploy-docker><button type=submit>Create a class</button></form>",
    );
    for (c, learners) in hub.classes() {
        let link = format!("{base}/join/{}", c.code);
        html.push_str(&format!(
            "<h2>{} <small>({}; {} of {} learners{})</small></h2><p>Join link: <code data-testid=join-link>{}</code></p>\
             <table><tr><th>Learner</th><th>node1</th><th>Address</th><th>Last activity</th><th></th></tr>",
            esc(&c.name),
            esc(&c.lab),
            learners.len(),
            c.capacity,
            if c.expired { "; ended" } else { "" },
            esc(&link)
        ));
        for l in learners {
            let (phase, addr, view) = match &l.node {
                Some(n) => (format!("{:?}", n.phase), n.addr.clone().unwrap_or_default(), format!("<a href=/n/{0}/>watch</a>", esc(&n.id))),
                None => (l.error.clone().unwrap_or_else(|| "none".into()), String::new(), String::new()),
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td data-ms={}></td><td>{view}</td></tr>",
                esc(&l.name),
                esc(&phase),
                esc(&addr),
                l.last_activity_ms
            ));
        }
        html.push_str("</table>");
    }
    html.push_str(
        "<script>for(const td of document.querySelectorAll('td[data-ms]')){const s=Math.round((Date.now()-td.dataset.ms)/1000);\
         td.textContent=s+' s ago'}</script>",
    );
    html.push_str("<p><a href=/hub/ data-testid=to-dashboard>The class's dashboard</a></p>");
    page(StatusCode::OK, "Classroom", &html)
}

/// `GET api/hub/view`: whose node this page shows, who looks at it, and
/// the takeover (the page shows the instructor's banner and buttons).
fn hub_view(hub: &Arc<Hub>, l: &super::Learner, session: &str, read_only: bool) -> Response {
    let takeover = l.takeover.as_ref().map(|t| json!({ "by": t.by, "since_ms": t.since_ms, "mine": read_only && t.session == session }));
    let class = hub.class(&l.class).map(|(c, _)| json!({ "id": c.id, "name": c.name })).unwrap_or_default();
    (
        [no_store()],
        Json(json!({
            "role": if read_only { "instructor" } else { "learner" },
            "learner": { "id": l.id, "name": l.name },
            "class": class,
            "takeover": takeover,
        })),
    )
        .into_response()
}

/// `POST /n/{node}/api/hub/takeover`: the instructor starts or ends typing
/// in the learner's terminal.
async fn takeover(hub: &Arc<Hub>, l: &super::Learner, session: &str, read_only: bool, req: Request) -> Response {
    if !read_only {
        return message(StatusCode::FORBIDDEN, "only the instructor takes over a learner's terminal");
    }
    if *req.method() != Method::POST {
        return message(StatusCode::METHOD_NOT_ALLOWED, "POST {\"active\": true|false}");
    }
    // The guard refused other origins; a POST without one is no page of ours.
    if session != "bearer" && !req.headers().contains_key(header::ORIGIN) {
        return message(StatusCode::FORBIDDEN, "a takeover needs the page's Origin");
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 1024).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "that request is too large");
    };
    #[derive(serde::Deserialize)]
    struct Active {
        active: bool,
    }
    let active = match serde_json::from_slice::<Active>(&body) {
        Ok(a) => a.active,
        Err(e) => return message(StatusCode::BAD_REQUEST, &format!("a takeover is {{\"active\": true|false}}: {e}")),
    };
    match hub.set_takeover(&l.id, session, active) {
        Ok(t) => ([no_store()], Json(json!({ "active": t.is_some(), "by": t.as_ref().map(|t| &t.by), "since_ms": t.map(|t| t.since_ms) })))
            .into_response(),
        Err(e) => err(e),
    }
}

async fn takeovers(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    ([no_store()], Json(hub.takeovers())).into_response()
}

async fn list_broadcasts(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, Path(id): Path<String>) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    if hub.class(&id).is_none() {
        return message(StatusCode::NOT_FOUND, &format!("no such class: {id}"));
    }
    ([no_store()], Json(hub.broadcasts(&id))).into_response()
}

async fn send_broadcast(
    State(hub): State<Arc<Hub>>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    #[derive(serde::Deserialize)]
    struct New {
        #[serde(default)]
        text: String,
        command: Option<String>,
    }
    let new = match serde_json::from_slice::<New>(&body) {
        Ok(n) => n,
        Err(e) => return message(StatusCode::BAD_REQUEST, &format!("a broadcast is {{\"text\", \"command\"}}: {e}")),
    };
    match hub.broadcast(&id, &new.text, new.command.as_deref()) {
        Ok(b) => (StatusCode::CREATED, [no_store()], Json(b)).into_response(),
        Err(e) => err(e),
    }
}

/// `GET /hub/api/classes/{id}/{progress.json|progress.csv|export.tar}`.
async fn class_file(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, Path((id, file)): Path<(String, String)>) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let attachment = |kind: &'static str, name: String| {
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).unwrap_or(HeaderValue::from_static("attachment")),
            ),
            no_store(),
        ]
    };
    match file.as_str() {
        "progress.json" => match hub.progress_json(&id) {
            Ok(v) => (attachment("application/json", format!("{id}-progress.json")), Json(v)).into_response(),
            Err(e) => err(e),
        },
        "progress.csv" => match hub.progress_export(&id) {
            Ok((_, learners)) => {
                (attachment("text/csv; charset=utf-8", format!("{id}-progress.csv")), super::progress::csv(&learners)).into_response()
            }
            Err(e) => err(e),
        },
        "export.tar" => match hub.export_tar(&id).await {
            Ok(f) => {
                let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(f));
                (attachment("application/x-tar", format!("{id}-export.tar")), Body::from_stream(stream)).into_response()
            }
            Err(e) => err(e),
        },
        _ => message(StatusCode::NOT_FOUND, "a class has progress.json, progress.csv and export.tar"),
    }
}

async fn list_classes(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, req: Request) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let base = base_url(req.headers(), hub.cfg.secure);
    let v: Vec<serde_json::Value> = hub.classes().iter().map(|(c, ls)| hub.class_json(c, ls, &base)).collect();
    ([no_store()], Json(v)).into_response()
}

async fn get_class(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, Path(id): Path<String>, req: Request) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let base = base_url(req.headers(), hub.cfg.secure);
    match hub.class(&id) {
        Some((c, ls)) => ([no_store()], Json(hub.class_json(&c, &ls, &base))).into_response(),
        None => message(StatusCode::NOT_FOUND, &format!("no such class: {id}")),
    }
}

async fn create_class(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, req: Request) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let base = base_url(req.headers(), hub.cfg.secure);
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Ok(body) = axum::body::to_bytes(req.into_body(), 16 * 1024).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "that request is too large");
    };
    let parsed: Result<NewClass, String> = if form {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    };
    let new = match parsed {
        Ok(n) => n,
        Err(e) => return message(StatusCode::BAD_REQUEST, &format!("a class is {{name, lab, capacity, expires_in_s}}: {e}")),
    };
    match hub.create_class(new) {
        Ok(c) if form => {
            let _ = c;
            redirect("/hub/classes")
        }
        Ok(c) => (StatusCode::CREATED, [no_store()], Json(hub.class_json(&c, &[], &base))).into_response(),
        Err(e) => err(e),
    }
}

async fn delete_class(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, Path(id): Path<String>) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    match hub.end_class(&id, true).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => err(e),
    }
}

async fn feed(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller, MaybeWs(ws): MaybeWs) -> Response {
    if let Some(r) = instructor_only(&caller) {
        return r;
    }
    let Some(ws) = ws else { return message(StatusCode::BAD_REQUEST, "the feed is a WebSocket") };
    ws.on_upgrade(move |socket| super::feed::serve(hub, socket))
}

async fn me(State(hub): State<Arc<Hub>>, MaybeCaller(caller): MaybeCaller) -> Response {
    match caller {
        Some(Caller { role: Role::Learner(l), .. }) => match hub.learner(&l) {
            Some(l) => ([no_store()], Json(learner_json(&l))).into_response(),
            None => message(StatusCode::GONE, "this learner is no longer in a class"),
        },
        Some(_) => message(StatusCode::FORBIDDEN, "only a learner has a node of their own"),
        None => message(StatusCode::UNAUTHORIZED, "sign in first: open your class's join link"),
    }
}

async fn join_form(State(hub): State<Arc<Hub>>, Path(code): Path<String>) -> Response {
    match hub.class_by_code(&code) {
        Some(c) if !c.expired => page(
            StatusCode::OK,
            &format!("Join {}", c.name),
            &format!(
                "<form method=post action=/join/{} data-testid=join><label>Your name <input name=name maxlength=40 required autofocus \
                 data-testid=join-name></label> <button type=submit>Join</button></form>",
                esc(&code)
            ),
        ),
        Some(c) => page(StatusCode::GONE, "Class ended", &format!("<p>The class {} has ended.</p>", esc(&c.name))),
        None => page(StatusCode::NOT_FOUND, "No such class", "<p>That join link is not (or no longer) valid.</p>"),
    }
}

async fn join(State(hub): State<Arc<Hub>>, Path(code): Path<String>, body: axum::body::Bytes) -> Response {
    let name = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v))
        .unwrap_or_default();
    match hub.join(&code, &name).await {
        Ok((_, session)) => redirect_with_session(&hub, &session, "/"),
        Err(e) => err(e),
    }
}

#[cfg(test)]
mod tests;
