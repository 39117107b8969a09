//! Who is asking: sessions (a random id in a cookie: `__Host-`, Secure
//! behind TLS, HttpOnly, SameSite=Strict), the instructor's token, terminal
//! tickets, and the Origin rules every request and WebSocket upgrade meets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Method};

/// A session's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sees every class and learner; read-only on learners' nodes.
    Instructor,
    /// Sees only their own node (the learner's id).
    Learner(String),
}

/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(24 * 3600);
/// How long a terminal ticket may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// The hub's sessions: id → role. Ids are 128 random bits.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, (Role, Instant)>>,
    cookie_name: &'static str,
    secure: bool,
}

impl Sessions {
    pub fn new(secure: bool) -> Self {
        Sessions { map: Mutex::default(), cookie_name: if secure { "__Host-berth_hub" } else { "berth_hub" }, secure }
    }

    pub fn cookie_name(&self) -> &'static str {
        self.cookie_name
    }

    /// A new session for `role`; returns its id.
    pub fn create(&self, role: Role) -> String {
        let id = berth_backend::lab::auth::random_hex(16);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, used)| used.elapsed() < SESSION_IDLE);
        m.insert(id.clone(), (role, Instant::now()));
        id
    }

    /// The `Set-Cookie` value for session `id`.
    pub fn cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name)
    }

    /// The session (id, role) this request's cookie names.
    pub fn of(&self, headers: &HeaderMap) -> Option<(String, Role)> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for v in headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            for kv in v.split(';') {
                let Some((k, id)) = kv.trim().split_once('=') else { continue };
                if k != self.cookie_name {
                    continue;
                }
                if let Some((role, used)) = m.get_mut(id) {
                    if used.elapsed() < SESSION_IDLE {
                        *used = Instant::now();
                        return Some((id.to_string(), role.clone()));
                    }
                }
            }
        }
        None
    }

    /// Ends a learner's sessions (their class ended).
    pub fn end_learner(&self, learner: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (r, _)| *r != Role::Learner(learner.to_string()));
    }
}

/// One-time terminal tickets, each for one session and one node.
#[derive(Debug, Default)]
pub struct Tickets {
    map: Mutex<HashMap<String, (Instant, String, String)>>,
}

impl Tickets {
    pub fn issue(&self, session: &str, node: &str) -> String {
        let t = berth_backend::lab::auth::random_hex(16);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (made, _, _)| made.elapsed() < TICKET_TTL);
        m.insert(t.clone(), (Instant::now(), session.to_string(), node.to_string()));
        t
    }

    /// Uses up a ticket: true if it was made for this session and node, in time.
    pub fn take(&self, ticket: &str, session: &str, node: &str) -> bool {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        matches!(m.remove(ticket), Some((made, s, n)) if made.elapsed() < TICKET_TTL && s == session && n == node)
    }
}

/// Compares two secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token a tool sent, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Is `origin` the hub's own (scheme and the request's Host) or listed?
pub fn origin_allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    !host.is_empty()
        && (origin == format!("http://{host}")
            || origin == format!("https://{host}")
            || allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin)))
}

/// Why a request is refused before anyone looks at its session, if it is:
/// another origin's request (it says so in Origin, or Sec-Fetch-Site for
/// what carries none), or a WebSocket without an Origin.
pub fn cross_origin(headers: &HeaderMap, method: &Method, allowed: &[String]) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if let Some(o) = origin {
        if !origin_allowed(o, host, allowed) {
            return Some(format!("requests from {:?} are not allowed", o.chars().take(100).collect::<String>()));
        }
    } else if is_websocket(headers) && headers.contains_key(header::COOKIE) {
        // Browsers always send one on a WebSocket: this is not our page.
        return Some("a WebSocket needs an Origin".into());
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    let navigate = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) == Some("navigate") && *method == Method::GET;
    if matches!(site, "cross-site" | "same-site") && !navigate {
        return Some("requests from other sites are not allowed".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_session_cookie_is_host_only_http_only_strict_and_secure_behind_tls() {
        let s = Sessions::new(true);
        let c = s.cookie("abc");
        assert!(c.starts_with("__Host-berth_hub=abc; Path=/; HttpOnly; SameSite=Strict; Secure"), "{c}");
        let plain = Sessions::new(false).cookie("abc");
        assert_eq!(plain, "berth_hub=abc; Path=/; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn a_cookie_names_its_session_and_nothing_else() {
        let s = Sessions::new(false);
        let id = s.create(Role::Learner("l1".into()));
        assert_eq!(id.len(), 32);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; berth_hub={id}")).unwrap());
        assert_eq!(s.of(&h), Some((id.clone(), Role::Learner("l1".into()))));
        h.insert(header::COOKIE, HeaderValue::from_static("berth_hub=0123456789abcdef0123456789abcdef"));
        assert_eq!(s.of(&h), None, "a made-up id is no session");
        s.end_learner("l1");
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("berth_hub={id}")).unwrap());
        assert_eq!(s.of(&h), None, "ended with the class");
    }

    #[test]
    fn a_ticket_opens_one_terminal_of_one_node_for_one_session() {
        let t = Tickets::default();
        let a = t.issue("s1", "n1");
        assert!(!t.take(&a, "s2", "n1"), "another session");
        let b = t.issue("s1", "n1");
        assert!(!t.take(&b, "s1", "n2"), "another node");
        let c = t.issue("s1", "n1");
        assert!(t.take(&c, "s1", "n1"));
        assert!(!t.take(&c, "s1", "n1"), "used up");
    }

    #[test]
    fn origins_are_the_hubs_own_or_listed() {
        let allowed = vec!["https://dash.example".to_string()];
        assert!(origin_allowed("http://127.0.0.1:8090", "127.0.0.1:8090", &allowed));
        assert!(origin_allowed("https://dash.example/", "127.0.0.1:8090", &allowed));
        assert!(!origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8090", &allowed));
        assert!(!origin_allowed("null", "127.0.0.1:8090", &allowed));
        assert!(!origin_allowed("http://", "", &allowed));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
