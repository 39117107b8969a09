//! The page's client for berthd's lab endpoints.

use berth_shared::State;
use serde::Deserialize;

/// `/api/health`: is a real engine behind this page?
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Health {
    pub version: String,
    pub engine: berth_shared::EngineMode,
    pub reason: Option<String>,
}

/// `/api/state`: the daemon's state and the sequence number it is at.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Snapshot {
    pub seq: u64,
    pub state: State,
}

async fn get_json<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, String> {
    let resp = gloo_net::http::Request::get(path).send().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("{path}: HTTP {}", resp.status()));
    }
    resp.json::<T>().await.map_err(|e| e.to_string())
}

pub async fn health() -> Result<Health, String> {
    get_json("/api/health").await
}

pub async fn snapshot() -> Result<Snapshot, String> {
    get_json("/api/state").await
}
