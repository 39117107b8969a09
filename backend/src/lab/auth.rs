//! The lab server's door. Its page is a root shell on node1, so every route
//! needs a session, and nothing another web page does may reach it:
//!
//! - **Login.** At start berthd has a random token (kept in a 0600 file,
//!   printed in the page's URL as Jupyter prints `?token=`). `GET ?token=…`
//!   or the login form exchange it for a session cookie (HttpOnly,
//!   SameSite=Strict; `__Host-` and Secure behind TLS) and the token leaves
//!   the address bar by a redirect. Tools may send `Authorization: Bearer`.
//!   A session cookie is an id and its HMAC-SHA256 under the token: it
//!   survives a daemon restart and dies when the token changes.
//! - **Host** must be an IP literal or a name berthd serves: a DNS-rebinding
//!   page (its name pointed at 127.0.0.1) is refused.
//! - **Origin**: a request that carries one must come from the page's own
//!   origin or the allow-list; a WebSocket upgrade with the session cookie
//!   must carry one. Browsers' `Sec-Fetch-Site` refuses other sites' and
//!   other ports' subresource requests (an `<img>`/`<script>` or `no-cors`
//!   fetch sends no Origin).
//! - **The terminal** takes a one-time ticket, fetched by a same-origin POST,
//!   as its first message (ttyd's pattern): the shell never opens on the
//!   strength of a cookie alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// How long a terminal ticket may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// The longest login form body read.
const LOGIN_BODY_LIMIT: usize = 4096;

/// Who may open the lab page: the token, the names it is served under, the
/// origins allowed besides its own, and the terminal tickets handed out.
#[derive(Debug)]
pub struct LabAuth {
    token: String,
    cookie_name: String,
    secure: bool,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    /// Ticket → (when made, the session it was made for).
    tickets: Mutex<HashMap<String, (Instant, String)>>,
}

/// Who a request comes from: a browser session's id, or `token` for a tool
/// with the bearer token. The guard puts it in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal(pub String);

/// Random bytes from the kernel, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom only fails where the kernel has no RNG at all; berthd
    // cannot hand out sessions safely there.
    getrandom::fill(&mut buf).expect("the kernel's random number generator");
    hex::encode(buf)
}

fn valid_token(t: &str) -> bool {
    (16..=256).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The lab token: read from `path` if it holds one, else made and written
/// there (mode 0600, created so nobody else can read it first).
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(text) = std::fs::read_to_string(path) {
        let t = text.trim();
        if valid_token(t) {
            return Ok(t.to_string());
        }
        if !t.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: a lab token is 16 to 256 letters, digits, '-' or '_'", path.display()),
            ));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = random_hex(24);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(token)
}

impl LabAuth {
    /// `page_addr` is where the page listens (its port names the cookie, so
    /// two labs on one host keep their sessions apart); `hosts` are extra
    /// names it is served under, `origins` extra allowed origins.
    pub fn new(token: String, page_addr: &str, hosts: &[String], origins: &[String], secure: bool) -> Self {
        let port = page_addr.rsplit(':').next().filter(|p| p.bytes().all(|b| b.is_ascii_digit())).unwrap_or("0");
        let cookie_name = if secure { format!("__Host-berth_session_{port}") } else { format!("berth_session_{port}") };
        let mut allowed_hosts = vec!["localhost".to_string()];
        allowed_hosts.extend(hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
        let allowed_origins =
            origins.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).filter(|o| !o.is_empty()).collect();
        LabAuth { token, cookie_name, secure, allowed_hosts, allowed_origins, tickets: Mutex::new(HashMap::new()) }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(self.token.as_bytes()).expect("HMAC accepts any key length")
    }

    /// A new session cookie's value: `id.mac`.
    pub fn new_session(&self) -> String {
        let id = random_hex(16);
        let mut m = self.mac();
        m.update(b"berth-session:");
        m.update(id.as_bytes());
        format!("{id}.{}", hex::encode(m.finalize().into_bytes()))
    }

    /// Is this cookie value a session made under the current token?
    pub fn check_session(&self, value: &str) -> bool {
        let Some((id, tag)) = value.split_once('.') else { return false };
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let Ok(tag) = hex::decode(tag) else { return false };
        let mut m = self.mac();
        m.update(b"berth-session:");
        m.update(id.as_bytes());
        m.verify_slice(&tag).is_ok()
    }

    /// Compares a presented token with ours in constant time.
    pub fn check_token(&self, presented: &str) -> bool {
        // Compare MACs of both: equal-length, and no early exit on the secret.
        let tag = |s: &str| {
            let mut m = self.mac();
            m.update(b"berth-token:");
            m.update(s.as_bytes());
            m.finalize().into_bytes()
        };
        let mut m = self.mac();
        m.update(b"berth-token:");
        m.update(presented.as_bytes());
        m.verify_slice(&tag(&self.token)).is_ok()
    }

    /// The `Set-Cookie` value for a new session.
    fn session_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{}={}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name, self.new_session())
    }

    /// A one-time terminal ticket for `owner`'s session.
    pub fn issue_ticket(&self, owner: &str) -> String {
        let t = random_hex(16);
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tickets.retain(|_, (made, _)| now.duration_since(*made) < TICKET_TTL);
        tickets.insert(t.clone(), (now, owner.to_string()));
        t
    }

    /// Uses up a ticket: its session, once, within its time, for a ticket
    /// we issued.
    pub fn take_ticket(&self, ticket: &str) -> Option<String> {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        match tickets.remove(ticket) {
            Some((made, owner)) if made.elapsed() < TICKET_TTL => Some(owner),
            _ => None,
        }
    }

    /// Is `host` (a Host header: name or IP, optional port) one we serve?
    /// IP literals always are (DNS rebinding needs a name); names only
    /// when listed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.is_empty() {
            return false;
        }
        name.parse::<IpAddr>().is_ok() || self.allowed_hosts.iter().any(|h| *h == name)
    }

    /// Is `origin` this page's own (scheme and the request's Host) or listed?
    pub fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        origin == format!("http://{host}") || origin == format!("https://{host}") || self.allowed_origins.contains(&origin)
    }

    /// The id of the valid session this request's cookie holds.
    fn session_of(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, v)| *k == self.cookie_name && self.check_session(v))
            .and_then(|(_, v)| v.split_once('.').map(|(id, _)| id.to_string()))
    }

    fn bearer_of(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
            .is_some_and(|t| self.check_token(t.trim()))
    }
}

/// The host part of a Host header, lowercased, without port or brackets.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

/// At most 100 characters of a client's text, for a message.
fn short(s: &str) -> String {
    s.chars().take(100).collect()
}

fn refuse(status: StatusCode, api: bool, message: &str) -> Response {
    if api {
        (status, Json(json!({ "message": message }))).into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("berth: {message}\n")).into_response()
    }
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map(|e| format!("<p class=err role=alert>{e}</p>")).unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>berth — sign in</title>\
<meta name=viewport content=\"width=device-width,initial-scale=1\">\
<style>body{{font:16px system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:grid;place-items:center;height:100vh;margin:0}}\
form{{background:#1e293b;padding:2rem;border-radius:8px;max-width:28rem}}input{{width:100%;box-sizing:border-box;padding:.5rem;margin:.5rem 0;font:inherit}}\
button{{padding:.5rem 1rem;font:inherit}}.err{{color:#fca5a5}}code{{color:#93c5fd}}</style></head>\
<body><form method=post action=/login data-testid=login>\
<h1>berth lab</h1><p>This page is a root shell on node1, so it needs the lab's token. \
Open the address <code>scripts/lab.sh</code> printed (it ends in <code>?token=…</code>), or paste the token \
(in berthd's token file, <code>/var/lib/berth/lab-token</code> by default).</p>{error}\
<label>Token <input name=token type=password autocomplete=off autofocus data-testid=login-token></label>\
<button type=submit>Open the lab</button></form></body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], html).into_response()
}

/// The URI without its `token` query parameter.
fn without_token(uri: &Uri) -> String {
    let rest: Vec<&str> =
        uri.query().unwrap_or("").split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("token=") && *kv != "token").collect();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    }
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(|t| {
        // Tokens are URL-safe; undo only what a browser may have escaped.
        t.replace("%2D", "-").replace("%5F", "_")
    })
}

fn redirect_with_session(auth: &LabAuth, to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/")));
    if let Ok(v) = HeaderValue::from_str(&auth.session_cookie()) {
        h.insert(header::SET_COOKIE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The guard every lab route goes through.
pub async fn guard(State(auth): State<Arc<LabAuth>>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let headers = req.headers();
    // Host: absent only from broken clients; forged by DNS-rebinding pages.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let path = short(req.uri().path());
    if !auth.host_allowed(&host) {
        tracing::warn!(host = %short(&host), %path, "refused a request for a host name the lab is not served under");
        return refuse(StatusCode::FORBIDDEN, api, &format!("this lab is not served under the name {:?}", short(&host)));
    }
    // Another origin's request (it carries an Origin header: fetch, XHR,
    // forms, WebSockets) is refused, whatever it asks.
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
    if let Some(o) = &origin {
        if !auth.origin_allowed(o, &host) {
            tracing::warn!(origin = %short(o), %path, "refused a request from another origin");
            return refuse(StatusCode::FORBIDDEN, api, &format!("requests from {:?} are not allowed", short(o)));
        }
    }
    // Subresources another site or port embeds (img, script, no-cors
    // fetch) send no Origin; browsers say where they come from here. A
    // top-level navigation to the page is fine: it shows our own page.
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    let navigate = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) == Some("navigate") && req.method() == Method::GET;
    if matches!(site, "cross-site" | "same-site") && !navigate {
        tracing::warn!(%site, %path, "refused a request from another origin (Sec-Fetch-Site)");
        return refuse(StatusCode::FORBIDDEN, api, "requests from other sites are not allowed");
    }
    let websocket = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));

    if req.uri().path() == "/login" {
        return match *req.method() {
            Method::POST => login(&auth, req).await,
            _ => login_page(StatusCode::OK, None),
        };
    }
    if let Some(t) = query_token(req.uri()) {
        if auth.check_token(&t) {
            return redirect_with_session(&auth, &without_token(req.uri()));
        }
        return if api {
            refuse(StatusCode::UNAUTHORIZED, true, "wrong lab token")
        } else {
            login_page(StatusCode::UNAUTHORIZED, Some("That token is not this lab's."))
        };
    }
    let session = auth.session_of(headers);
    let by_cookie = session.is_some();
    let by_bearer = !by_cookie && auth.bearer_of(headers);
    if !by_cookie && !by_bearer {
        return if api {
            refuse(StatusCode::UNAUTHORIZED, true, "sign in first: open the lab's URL with its token")
        } else {
            login_page(StatusCode::UNAUTHORIZED, None)
        };
    }
    // A browser's WebSocket always says where it comes from: one with our
    // cookie and no Origin is not our page.
    if websocket && by_cookie && origin.is_none() {
        return refuse(StatusCode::FORBIDDEN, api, "a WebSocket needs an Origin");
    }
    let mut req = req;
    req.extensions_mut().insert(Principal(session.unwrap_or_else(|| "token".into())));
    next.run(req).await
}

async fn login(auth: &LabAuth, req: Request) -> Response {
    let body = match axum::body::to_bytes(req.into_body(), LOGIN_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return login_page(StatusCode::PAYLOAD_TOO_LARGE, Some("That form was too large.")),
    };
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|kv| kv.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v))
        .unwrap_or_default();
    if auth.check_token(token.trim()) {
        redirect_with_session(auth, "/")
    } else {
        login_page(StatusCode::UNAUTHORIZED, Some("That token is not this lab's."))
    }
}

/// `POST /api/terminal/ticket`: a one-time ticket for the terminal socket.
pub async fn ticket(State(auth): State<Arc<LabAuth>>, Extension(who): Extension<Principal>) -> Response {
    // The guard has checked the session and, for a page's POST, its Origin.
    let t = auth.issue_ticket(&who.0);
    ([(header::CACHE_CONTROL, "no-store")], Json(json!({ "ticket": t, "expires_in": TICKET_TTL.as_secs() }))).into_response()
}

/// Where berthd keeps the token unless told otherwise.
pub fn default_token_file(data_root: &Path) -> PathBuf {
    data_root.join("lab-token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> LabAuth {
        LabAuth::new("t0k3n-for-tests-0123456789".into(), "127.0.0.1:8080", &["node1.lab".into()], &["https://hub.example".into()], false)
    }

    #[test]
    fn a_session_cookie_holds_only_under_the_token_that_made_it() {
        let a = auth();
        let s = a.new_session();
        assert!(a.check_session(&s));
        assert_ne!(s, a.new_session(), "each session its own id");
        let other = LabAuth::new("another-token-0123456789".into(), "127.0.0.1:8080", &[], &[], false);
        assert!(!other.check_session(&s), "a new token ends old sessions");
        let (id, tag) = s.split_once('.').unwrap();
        assert!(!a.check_session(&format!("{id}.{}", "0".repeat(tag.len()))));
        assert!(!a.check_session(&format!("{}.{tag}", "a".repeat(32))));
        assert!(!a.check_session(""));
        assert!(!a.check_session(&format!("{id}x.{tag}")));
    }

    #[test]
    fn tokens_compare_whole() {
        let a = auth();
        assert!(a.check_token("t0k3n-for-tests-0123456789"));
        assert!(!a.check_token("t0k3n-for-tests-012345678"));
        assert!(!a.check_token(""));
    }

    #[test]
    fn a_ticket_opens_the_terminal_once() {
        let a = auth();
        let t = a.issue_ticket("s1");
        assert_eq!(a.take_ticket("not-a-ticket"), None);
        assert_eq!(a.take_ticket(&t).as_deref(), Some("s1"), "names its session");
        assert_eq!(a.take_ticket(&t), None, "used up");
    }

    #[test]
    fn hosts_are_ip_literals_or_listed_names() {
        let a = auth();
        for ok in ["127.0.0.1:8080", "127.0.0.1", "198.18.0.2:8080", "[::1]:8080", "localhost:8080", "NODE1.lab:80"] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "evil.example", "", "localhost.evil.example:8080", "127.0.0.1.nip.io:8080"] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins_are_the_pages_own_or_listed() {
        let a = auth();
        assert!(a.origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(a.origin_allowed("https://hub.example/", "127.0.0.1:8080"));
        assert!(!a.origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8080"), "another port is another origin");
        assert!(!a.origin_allowed("http://evil.example", "127.0.0.1:8080"));
        assert!(!a.origin_allowed("null", "127.0.0.1:8080"));
    }

    #[test]
    fn the_token_leaves_the_address_and_other_parameters_stay() {
        let u: Uri = "/replay?token=abc&x=1".parse().unwrap();
        assert_eq!(without_token(&u), "/replay?x=1");
        assert_eq!(query_token(&u).as_deref(), Some("abc"));
        let u: Uri = "/?token=abc".parse().unwrap();
        assert_eq!(without_token(&u), "/");
    }

    #[test]
    fn the_token_file_is_made_private_and_then_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/lab-token");
        let t = load_or_create_token(&p).unwrap();
        assert!(valid_token(&t));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create_token(&p).unwrap(), t, "kept across restarts");
        std::fs::write(&p, "short\n").unwrap();
        assert!(load_or_create_token(&p).is_err(), "a malformed token is an error, not replaced");
    }

    #[test]
    fn two_labs_on_one_host_keep_their_cookies_apart() {
        let a = LabAuth::new("a".repeat(20), "127.0.0.1:8080", &[], &[], false);
        let b = LabAuth::new("a".repeat(20), "127.0.0.1:8081", &[], &[], true);
        assert_eq!(a.cookie_name(), "berth_session_8080");
        assert_eq!(b.cookie_name(), "__Host-berth_session_8081");
        assert!(b.session_cookie().contains("; Secure"));
        assert!(a.session_cookie().contains("HttpOnly; SameSite=Strict"));
    }
}
