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

#[derive(Clone, Debug, Deserialize)]
struct Change {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

async fn get(path: &str) -> Result<gloo_net::http::Response, String> {
    let resp = gloo_net::http::Request::get(path).send().await.map_err(|e| e.to_string())?;
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

/// A container's changed files (`docker diff`): path and kind (0 changed,
/// 1 added, 2 deleted).
pub async fn changes(id: &str) -> Result<Vec<(String, u8)>, String> {
    let list: Vec<Change> = get_json(&format!("/api/containers/{id}/changes")).await?;
    Ok(list.into_iter().map(|c| (c.path, c.kind)).collect())
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
    let resp = gloo_net::http::Request::post("/api/terminal/ticket").send().await.map_err(|_| TicketError::Unreachable)?;
    match resp.status() {
        401 | 403 => return Err(TicketError::SignedOut("signed out: open the lab's address with its token again".into())),
        _ if !resp.ok() => return Err(TicketError::Unreachable),
        _ => {}
    }
    resp.json::<Ticket>().await.map(|t| t.ticket).map_err(|_| TicketError::Unreachable)
}
