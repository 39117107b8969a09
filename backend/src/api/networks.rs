//! `docker network ls|inspect|create|rm|connect|disconnect|prune`: the
//! default bridge (docker0), user-defined bridges (br-…), host and none.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_shared::Status;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::model::{NetworkConnect, NetworkCreate};
use super::validate::{self, Checked};
use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::network::{BridgeNetwork, CreateRequest};

type Q = Query<std::collections::HashMap<String, String>>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect))
        .route("/networks/{id}", delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// IDs of the networks that have no bridge: stable for a daemon's life.
pub fn fixed_id(name: &str) -> String {
    hex::encode(Sha256::digest(format!("berth-network:{name}")))
}

/// One network, as berth has it.
enum Net {
    Bridge(Arc<BridgeNetwork>),
    Host,
    None,
}

impl Net {
    fn name(&self) -> &str {
        match self {
            Net::Bridge(b) => b.name(),
            Net::Host => "host",
            Net::None => "none",
        }
    }
    fn id(&self) -> String {
        match self {
            Net::Bridge(b) => b.id().to_string(),
            other => fixed_id(other.name()),
        }
    }
}

fn all(st: &AppState) -> Vec<Net> {
    let mut v: Vec<Net> = st.containers.networks().map(|n| n.all().into_iter().map(Net::Bridge).collect()).unwrap_or_default();
    v.push(Net::Host);
    v.push(Net::None);
    v
}

/// By name, full ID or unique ID prefix.
fn find(st: &AppState, key: &str) -> ApiResult<Net> {
    let nets = all(st);
    let not_found = || ApiError::not_found(format!("network {key} not found"));
    if let Some(i) = nets.iter().position(|n| n.name() == key || n.id() == key) {
        return nets.into_iter().nth(i).ok_or_else(not_found);
    }
    let hits: Vec<usize> = nets.iter().enumerate().filter(|(_, n)| !key.is_empty() && n.id().starts_with(key)).map(|(i, _)| i).collect();
    match hits.as_slice() {
        [i] => nets.into_iter().nth(*i).ok_or_else(not_found),
        [] => Err(not_found()),
        _ => Err(ApiError::bad_request(format!("network {key} is ambiguous ({} matches found based on ID prefix)", hits.len()))),
    }
}

/// When the built-in networks came to be: when this daemon set up its bridge.
fn daemon_created(st: &AppState) -> String {
    st.containers.networks().map(|n| n.default_network().spec.created.clone()).unwrap_or_default()
}

fn describe(st: &AppState, net: &Net) -> Value {
    let mut containers = serde_json::Map::new();
    for r in st.containers.list().iter().map(|c| c.record()).filter(|r| r.state.status == Status::Running) {
        let ep = match net {
            Net::Bridge(b) => match r.endpoints.values().find(|e| e.network_id == b.id()) {
                Some(ep) => Some(ep.clone()),
                None => continue,
            },
            other if r.network_mode() == other.name() => None,
            _ => continue,
        };
        containers.insert(
            r.id.clone(),
            json!({
                "Name": r.name,
                "EndpointID": ep.as_ref().map(|e| e.endpoint_id.clone()).unwrap_or_default(),
                "MacAddress": ep.as_ref().map(|e| e.mac.clone()).unwrap_or_default(),
                "IPv4Address": ep.as_ref().map(|e| format!("{}/{}", e.ip, e.prefix)).unwrap_or_default(),
                "IPv6Address": ep.as_ref().and_then(|e| e.ip6.map(|ip| format!("{ip}/{}", e.prefix6))).unwrap_or_default(),
            }),
        );
    }
    let (driver, created, ipam, options, labels, internal) = match net {
        Net::Bridge(b) => {
            let options = if b.default {
                json!({
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": b.bridge(),
                    "com.docker.network.driver.mtu": "1500",
                })
            } else {
                json!(b.spec.options)
            };
            (
                "bridge",
                b.spec.created.clone(),
                {
                    let mut conf = json!({"Subnet": b.subnet(), "Gateway": b.gateway().to_string()});
                    if let Some(r) = &b.spec.ip_range {
                        conf["IPRange"] = json!(r);
                    }
                    if !b.spec.aux_addresses.is_empty() {
                        conf["AuxiliaryAddresses"] = json!(b.spec.aux_addresses);
                    }
                    let mut all = vec![conf];
                    if let (Some(subnet), Some(gw)) = (b.subnet6(), b.gateway6()) {
                        all.push(json!({"Subnet": subnet, "Gateway": gw.to_string()}));
                    }
                    json!(all)
                },
                options,
                json!(b.spec.labels),
                b.spec.internal,
            )
        }
        Net::Host => ("host", daemon_created(st), json!([]), json!({}), json!({}), false),
        Net::None => ("null", daemon_created(st), json!([]), json!({}), json!({}), false),
    };
    json!({
        "Name": net.name(),
        "Id": net.id(),
        "Created": created,
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": matches!(net, Net::Bridge(b) if b.spec.ipv6.is_some()),
        "IPAM": {"Driver": "default", "Options": if matches!(net, Net::Bridge(b) if !b.default) { json!({}) } else { Value::Null }, "Config": ipam},
        "Internal": internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": labels,
    })
}

/// `filters` as the CLI sends them: {"name": {"x": true}, …}.
fn matches_filters(net: &Value, filters: &Value) -> bool {
    let Some(f) = filters.as_object() else { return true };
    f.iter().all(|(key, wanted)| {
        let wanted: Vec<&String> = wanted.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        let s = |k: &str| net[k].as_str().unwrap_or("").to_string();
        wanted.iter().any(|w| match key.as_str() {
            "name" => s("Name").contains(w.as_str()),
            "id" => s("Id").starts_with(w.as_str()),
            "driver" => s("Driver") == **w,
            "type" => match w.as_str() {
                "custom" => !["bridge", "host", "none"].contains(&s("Name").as_str()),
                "builtin" => ["bridge", "host", "none"].contains(&s("Name").as_str()),
                _ => false,
            },
            "label" => match w.split_once('=') {
                Some((k, v)) => net["Labels"][k].as_str() == Some(v),
                None => net["Labels"].get(w.as_str()).is_some(),
            },
            _ => true,
        })
    })
}

async fn list(State(st): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let filters = super::filters::from_query(&q)?;
    // A list's networks name no containers (only inspect does), as Docker's.
    let list = all(&st)
        .iter()
        .map(|n| {
            let mut d = describe(&st, n);
            d["Containers"] = json!({});
            d
        })
        .filter(|n| matches_filters(n, &filters))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let net = find(&st, &id)?;
    Ok(Json(describe(&st, &net)))
}

fn networks(st: &AppState) -> ApiResult<Arc<crate::network::Networks>> {
    st.containers
        .networks()
        .ok_or_else(|| ApiError::new(ErrorKind::NotImplemented, "networking is not available: berthd runs without its engine"))
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default()
}

async fn create(State(st): State<AppState>, Checked(body, typed): Checked<NetworkCreate>) -> ApiResult<(StatusCode, Json<Value>)> {
    validate::check_network_name(typed.name.as_deref().unwrap_or(""))?;
    let nets = networks(&st)?;
    let configs = body["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    // An IPv6 block (`--subnet fd00:1::/64`) counts only with `--ipv6`, as
    // Docker ignores it otherwise.
    let enable_ipv6 = body["EnableIPv6"].as_bool() == Some(true);
    let is_v6 = |c: &Value| c["Subnet"].as_str().or(c["Gateway"].as_str()).is_some_and(|s| s.contains(':'));
    let (v6, v4): (Vec<Value>, Vec<Value>) = configs.into_iter().partition(is_v6);
    if v4.len() > 1 || (enable_ipv6 && v6.len() > 1) {
        return Err(ApiError::bad_request(
            "berth networks have one IPv4 subnet, and one IPv6 subnet with --ipv6: give --subnet once for each",
        ));
    }
    let conf6 = if enable_ipv6 { v6.first().cloned().unwrap_or(Value::Null) } else { Value::Null };
    if conf6["IPRange"].as_str().is_some_and(|r| !r.is_empty()) || conf6["AuxiliaryAddresses"].as_object().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::bad_request("berth does not support --ip-range or --aux-address for an IPv6 subnet"));
    }
    let conf = v4.first().cloned().unwrap_or(Value::Null);
    let req = CreateRequest {
        name: body["Name"].as_str().unwrap_or("").to_string(),
        driver: body["Driver"].as_str().unwrap_or("").to_string(),
        subnet: conf["Subnet"].as_str().map(String::from),
        gateway: conf["Gateway"].as_str().map(String::from),
        labels: string_map(&body["Labels"]),
        options: string_map(&body["Options"]),
        internal: body["Internal"].as_bool().unwrap_or(false),
        ip_range: conf["IPRange"].as_str().map(String::from),
        aux_addresses: string_map(&conf["AuxiliaryAddresses"]),
        enable_ipv6,
        subnet6: conf6["Subnet"].as_str().map(String::from),
        gateway6: conf6["Gateway"].as_str().map(String::from),
        ula_seed: st.daemon_id.to_string(),
    };
    let net = nets.create(req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": net.id(), "Warning": ""}))))
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let net = find(&st, &id)?;
    let Net::Bridge(b) = net else {
        return Err(ApiError::new(ErrorKind::Forbidden, format!("{} is a pre-defined network and cannot be removed", net.name())));
    };
    if b.default {
        return Err(ApiError::new(ErrorKind::Forbidden, format!("{} is a pre-defined network and cannot be removed", b.name())));
    }
    if !st.containers.attached_to(&b).is_empty() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("error while removing network: network {} id {} has active endpoints", b.name(), b.id()),
        ));
    }
    networks(&st)?.remove(&b).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let nets = networks(&st)?;
    let mut deleted = Vec::new();
    for b in nets.all().into_iter().filter(|b| !b.default) {
        if st.containers.attached_to(&b).is_empty() && nets.remove(&b).await.is_ok() {
            deleted.push(b.name().to_string());
        }
    }
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

/// The network and container a connect/disconnect names.
fn target(st: &AppState, id: &str, body: Value) -> ApiResult<(Arc<BridgeNetwork>, Arc<crate::engine::containers::Container>, Value)> {
    let net = find(st, id)?;
    let c = st.containers.get(body["Container"].as_str().unwrap_or(""))?;
    match net {
        Net::Bridge(b) => Ok((b, c, body)),
        Net::Host => {
            Err(ApiError::new(ErrorKind::Forbidden, "container cannot be disconnected from host network or connected to host network"))
        }
        Net::None => {
            Err(ApiError::new(ErrorKind::Forbidden, "container cannot be disconnected from none network or connected to none network"))
        }
    }
}

async fn connect(State(st): State<AppState>, Path(id): Path<String>, Checked(body, _): Checked<NetworkConnect>) -> ApiResult<StatusCode> {
    let (net, c, body) = target(&st, &id, body)?;
    let strings = |key: &str| -> Vec<String> {
        body["EndpointConfig"][key].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let asked = st.containers.requested_addresses(net.name(), &body["EndpointConfig"]["IPAMConfig"])?;
    let driver_opts = crate::engine::networking::driver_opts(&body["EndpointConfig"]["DriverOpts"])?;
    st.containers.connect_network(&c, &net, strings("Aliases"), strings("Links"), asked, driver_opts).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Checked(body, _): Checked<NetworkConnect>,
) -> ApiResult<StatusCode> {
    let (net, c, _) = target(&st, &id, body)?;
    st.containers.disconnect_network(&c, &net).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pick_networks_as_the_cli_asks() {
        let user = json!({"Name": "mynet", "Id": "abc123", "Driver": "bridge", "Labels": {"lab": "1"}});
        let builtin = json!({"Name": "bridge", "Id": "def456", "Driver": "bridge", "Labels": {}});
        let f = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert!(matches_filters(&user, &f(r#"{"type": {"custom": true}}"#)));
        assert!(!matches_filters(&builtin, &f(r#"{"type": {"custom": true}}"#)));
        assert!(matches_filters(&user, &f(r#"{"name": {"my": true}}"#)));
        assert!(matches_filters(&user, &f(r#"{"label": {"lab=1": true}}"#)));
        assert!(!matches_filters(&builtin, &f(r#"{"label": {"lab": true}}"#)));
        assert!(matches_filters(&builtin, &f(r#"{"id": {"def": true}}"#)));
        assert!(matches_filters(&builtin, &Value::Null));
    }
}
