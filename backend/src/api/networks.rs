//! `docker network ls` and `docker network inspect` for the built-in
//! networks: bridge (docker0), host and none.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use berth_shared::Status;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new().route("/networks", get(list)).route("/networks/{id}", get(inspect))
}

fn fixed_id(name: &str) -> String {
    hex::encode(Sha256::digest(format!("berth-network:{name}")))
}

fn network(st: &AppState, name: &str) -> Option<Value> {
    let created = st.bus.state().daemon.map(|_| crate::engine::containers::now_rfc3339()).unwrap_or_default();
    let (id, driver, ipam, options) = match name {
        "bridge" => {
            let n = st.containers.network()?;
            (
                n.id.clone(),
                "bridge",
                json!([{"Subnet": n.subnet(), "Gateway": n.gateway().to_string()}]),
                json!({
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": n.bridge,
                    "com.docker.network.driver.mtu": "1500",
                }),
            )
        }
        "host" => (fixed_id("host"), "host", json!([]), json!({})),
        "none" => (fixed_id("none"), "null", json!([]), json!({})),
        _ => return None,
    };
    let mut containers = serde_json::Map::new();
    for c in st.containers.list() {
        let r = c.record();
        let mode = r.host_config["NetworkMode"].as_str().unwrap_or("default");
        let on = (if mode == "default" { "bridge" } else { mode }) == name;
        if !on || r.state.status != Status::Running {
            continue;
        }
        let ep = r.endpoint.as_ref();
        containers.insert(
            r.id.clone(),
            json!({
                "Name": r.name,
                "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "IPv4Address": ep.map(|e| format!("{}/{}", e.ip, e.prefix)).unwrap_or_default(),
                "IPv6Address": "",
            }),
        );
    }
    Some(json!({
        "Name": name,
        "Id": id,
        "Created": created,
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    }))
}

async fn list(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(["bridge", "host", "none"].iter().filter_map(|n| network(&st, n)).collect()))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    for name in ["bridge", "host", "none"] {
        if let Some(n) = network(&st, name) {
            let nid = n["Id"].as_str().unwrap_or("");
            if id == name || (id.len() >= 3 && nid.starts_with(&id)) {
                return Ok(Json(n));
            }
        }
    }
    Err(ApiError::not_found(format!("network {id} not found")))
}
