//! The page's client for berthd's lab endpoints.

use serde::Deserialize;

/// `/api/health`: is a real engine behind this page?
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Health {
    pub version: String,
    pub engine: berth_shared::EngineMode,
    pub reason: Option<String>,
}

/// One entry of `/api/recordings`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RecordingInfo {
    pub name: String,
    pub size: u64,
    pub modified: u64,
    pub url: String,
}

/// A path of the lab server, relative to the page's own address: the page
/// works at `/` of berthd and under a prefix (a classroom hub's `/n/<id>/`).
pub fn url(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// POSTs JSON to `url` (as given: relative to the page, or absolute) and
/// reads the JSON answer; a refusal is the server's `message`.
pub async fn post_json<T: serde::de::DeserializeOwned>(url: &str, body: serde_json::Value) -> Result<T, String> {
    let r = gloo_net::http::Request::post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.ok() {
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        return Err(v["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {}", r.status())));
    }
    r.json::<T>().await.map_err(|e| e.to_string())
}

async fn get(path: &str) -> Result<gloo_net::http::Response, String> {
    let resp = gloo_net::http::Request::get(&url(path)).send().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("{path}: HTTP {}", resp.status()));
    }
    Ok(resp)
}

async fn get_json<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    get(path).await?.json::<T>().await.map_err(|e| e.to_string())
}

pub async fn health() -> Result<Health, String> {
    get_json("/api/health").await
}

pub async fn recordings() -> Result<Vec<RecordingInfo>, String> {
    get_json("/api/recordings").await
}

pub async fn text(url: &str) -> Result<String, String> {
    get(url).await?.text().await.map_err(|e| e.to_string())
}

/// Why no terminal ticket was had.
#[derive(Clone, Debug)]
pub enum TicketError {
    /// berthd answered no: the page is signed out.
    SignedOut(String),
    /// berthd did not answer (restarting?): try again.
    Unreachable,
}

/// A one-time ticket for the terminal socket (`POST /api/terminal/ticket`):
/// the shell opens only for the page that holds the session.
pub async fn terminal_ticket() -> Result<String, TicketError> {
    #[derive(Deserialize)]
    struct Ticket {
        ticket: String,
    }
    let resp = gloo_net::http::Request::post(&url("/api/terminal/ticket")).send().await.map_err(|_| TicketError::Unreachable)?;
    match resp.status() {
        401 | 403 => return Err(TicketError::SignedOut("signed out: open the lab's address with its token again".into())),
        _ if !resp.ok() => return Err(TicketError::Unreachable),
        _ => {}
    }
    resp.json::<Ticket>().await.map(|t| t.ticket).map_err(|_| TicketError::Unreachable)
}
