//! What changed between Engine API versions, decided in one place.
//!
//! berthd speaks API 1.50 (the docker CLI the lab installs) and every older
//! version down to 1.24. A client that negotiated an older version gets what
//! that version's Docker gave it: the request bodies it sends mean what they
//! meant then, and the answers leave out what was added since and keep what
//! was removed since. Each rule names the version that changed it (moby's
//! API changelog); the handlers call these pure functions with the request's
//! [`ApiVersion`].

use serde_json::{json, Map, Value};

use super::ApiVersion;
use crate::error::{ApiError, ApiResult};

/// The warning a 1.44+ create with a container-wide MacAddress gets.
pub const MAC_DEPRECATED: &str =
    "The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead.";

/// The network a create's HostConfig.NetworkMode names ("default" is bridge),
/// or None for host, none and container:<id>.
fn main_network(body: &Value) -> Option<String> {
    match body["HostConfig"]["NetworkMode"].as_str().unwrap_or("") {
        "" | "default" | "bridge" => Some("bridge".into()),
        "host" | "none" => None,
        m if m.starts_with("container:") => None,
        m => Some(m.to_string()),
    }
}

/// The main network's entry in EndpointsConfig ("default" and "bridge" are
/// one), made if the body has none.
fn main_endpoint<'a>(body: &'a mut Value, network: &str) -> &'a mut Value {
    if !body["NetworkingConfig"]["EndpointsConfig"].is_object() {
        body["NetworkingConfig"]["EndpointsConfig"] = json!({});
    }
    let eps = &mut body["NetworkingConfig"]["EndpointsConfig"];
    let key = if network == "bridge" && eps.get("default").is_some() { "default" } else { network };
    if !eps[key].is_object() {
        eps[key] = json!({});
    }
    &mut eps[key]
}

fn non_empty_str(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// A `POST /containers/create` body as the request's version means it.
/// Returns the warnings the answer carries.
///
/// - < 1.44: a healthcheck's StartInterval did not exist (ignored); one
///   network at most; an endpoint's MacAddress did not exist (ignored) and
///   the container-wide Config.MacAddress is the main network's.
/// - ≥ 1.44: the container-wide MacAddress is deprecated: it still applies to
///   the main network, must agree with that endpoint's, and is warned about.
///
/// Either way the main network's MAC ends up in its endpoint, and in
/// Config.MacAddress, which `docker inspect` shows (until API 1.52).
pub fn adapt_create(body: &mut Value, v: ApiVersion) -> ApiResult<Vec<String>> {
    let mut warnings = Vec::new();
    let wide_mac = non_empty_str(&body["MacAddress"]);
    let network = main_network(body);
    if !v.at_least(44) {
        if let Some(hc) = body["Healthcheck"].as_object_mut() {
            hc.remove("StartInterval");
        }
        if let Some(eps) = body["NetworkingConfig"]["EndpointsConfig"].as_object_mut() {
            if eps.len() > 1 {
                let mut names: Vec<&str> = eps.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(ApiError::bad_request(format!(
                    "Container cannot be created with multiple network endpoints: {}",
                    names.join(", ")
                )));
            }
            for ep in eps.values_mut() {
                if let Some(ep) = ep.as_object_mut() {
                    ep.remove("MacAddress");
                }
            }
        }
        if let Some(mac) = &wide_mac {
            let Some(network) = &network else {
                return Err(ApiError::bad_request("conflicting options: mac-address and the network mode"));
            };
            main_endpoint(body, network)["MacAddress"] = json!(mac);
        }
    } else if let Some(mac) = &wide_mac {
        if let Some(network) = &network {
            let ep = main_endpoint(body, network);
            match non_empty_str(&ep["MacAddress"]) {
                None => ep["MacAddress"] = json!(mac),
                Some(theirs) if theirs.eq_ignore_ascii_case(mac) => {}
                Some(_) => return Err(ApiError::bad_request(
                    "the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty",
                )),
            }
        }
        warnings.push(MAC_DEPRECATED.to_string());
    }
    // GwPriority is 1.48's: before, every endpoint had the same.
    if !v.at_least(48) {
        zero_gw_priority(body);
    }
    // What inspect shows as Config.MacAddress: the main network's asked MAC.
    let main_mac = network.and_then(|n| non_empty_str(&main_endpoint(body, &n)["MacAddress"]));
    match main_mac {
        Some(mac) => body["MacAddress"] = json!(mac.to_ascii_lowercase()),
        None => {
            if let Some(o) = body.as_object_mut() {
                o.remove("MacAddress");
            }
        }
    }
    Ok(warnings)
}

fn zero_gw_priority(body: &mut Value) {
    if let Some(eps) = body["NetworkingConfig"]["EndpointsConfig"].as_object_mut() {
        for ep in eps.values_mut().filter_map(Value::as_object_mut) {
            ep.remove("GwPriority");
        }
    }
}

/// What `docker inspect` shows of a container's names on one network:
/// `(Aliases, DNSNames)`. DNSNames (1.44+) lists every name the embedded DNS
/// answers for a running endpoint on a user-defined network; Aliases is what
/// the client asked (1.45+), and before 1.45 also the short ID and hostname.
pub fn endpoint_names(
    v: ApiVersion,
    user_defined: bool,
    connected: bool,
    name: &str,
    id: &str,
    hostname: &str,
    asked: &[String],
) -> (Value, Option<Value>) {
    let short = &id[..id.len().min(12)];
    let dedup = |names: Vec<&str>| {
        let mut out: Vec<String> = Vec::new();
        for n in names.into_iter().filter(|n| !n.is_empty()) {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
        out
    };
    let mut aliases: Vec<&str> = asked.iter().map(String::as_str).collect();
    if !v.at_least(45) && user_defined {
        aliases.extend([short, hostname]);
    }
    let aliases = dedup(aliases);
    let aliases = if aliases.is_empty() { Value::Null } else { json!(aliases) };
    let dns = v.at_least(44).then(|| {
        if user_defined && connected {
            let mut names = vec![name];
            names.extend(asked.iter().map(String::as_str));
            names.extend([short, hostname]);
            json!(dedup(names))
        } else {
            Value::Null
        }
    });
    (aliases, dns)
}

/// Config keys `GET /images/{name}/json` stopped sending in API 1.50 (they
/// were never part of an image's config).
const NOT_IMAGE_CONFIG: [&str; 12] = [
    "Hostname",
    "Domainname",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Image",
    "NetworkDisabled",
    "MacAddress",
    "StopTimeout",
];

/// `docker image inspect` as the version has it: VirtualSize until 1.44,
/// Container and ContainerConfig until 1.45, and from 1.50 only an image's
/// own config keys in Config.
pub fn image_inspect(v: ApiVersion, inspect: &mut Map<String, Value>) {
    // Before 1.50 Config (and ContainerConfig) were a container's config
    // type: every key, with its zero value where the image has none.
    if !v.at_least(50) {
        for key in ["Config", "ContainerConfig"] {
            let mut full = json!({
                "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
                "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
                "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
                "OnBuild": null, "Labels": null,
            });
            if let (Some(f), Some(own)) = (full.as_object_mut(), inspect.get(key).and_then(Value::as_object)) {
                f.extend(own.iter().map(|(k, x)| (k.clone(), x.clone())));
            }
            inspect.insert(key.into(), full);
        }
    }
    if v.at_least(44) {
        inspect.remove("VirtualSize");
    }
    if v.at_least(45) {
        inspect.remove("Container");
        inspect.remove("ContainerConfig");
    }
    if v.at_least(50) {
        if let Some(config) = inspect.get_mut("Config").and_then(Value::as_object_mut) {
            for k in NOT_IMAGE_CONFIG {
                config.remove(k);
            }
        }
    }
}

/// One entry of `GET /images/json`: VirtualSize until 1.44.
pub fn image_summary(v: ApiVersion, summary: &mut Map<String, Value>) {
    if v.at_least(44) {
        summary.remove("VirtualSize");
    }
}

/// Whether `POST /volumes/prune` removes named volumes too: always before
/// 1.42; from 1.42 only anonymous ones unless the `all` filter is true.
pub fn prune_named_volumes(v: ApiVersion, filters: &Value) -> ApiResult<bool> {
    if !v.at_least(42) {
        return Ok(true);
    }
    let Some(values) = filters.get("all").and_then(Value::as_object) else { return Ok(false) };
    let mut all = false;
    for value in values.keys() {
        match value.as_str() {
            "1" | "true" | "True" | "TRUE" | "t" | "T" => all = true,
            "0" | "false" | "False" | "FALSE" | "f" | "F" => {}
            other => return Err(ApiError::bad_request(format!("invalid filter 'all={other}'"))),
        }
    }
    Ok(all)
}

/// `GET /info` without what 1.49 stopped sending (the commits' Expected)
/// and 1.50 (BridgeNfIptables and BridgeNfIp6tables).
pub fn info(v: ApiVersion, info: &mut Map<String, Value>) {
    if v.at_least(49) {
        for k in ["ContainerdCommit", "RuncCommit", "InitCommit"] {
            if let Some(c) = info.get_mut(k).and_then(Value::as_object_mut) {
                c.remove("Expected");
            }
        }
    }
    if v.at_least(50) {
        info.remove("BridgeNfIptables");
        info.remove("BridgeNfIp6tables");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V41: ApiVersion = ApiVersion(1, 41);
    const V44: ApiVersion = ApiVersion(1, 44);
    const V50: ApiVersion = ApiVersion(1, 50);

    #[test]
    fn an_old_create_loses_what_its_version_lacked_and_keeps_one_network() {
        let mut b = json!({"Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 5}, "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": "02:00:00:00:00:09"}}}});
        assert!(adapt_create(&mut b, V41).unwrap().is_empty());
        assert_eq!(b["Healthcheck"], json!({"Test": ["CMD", "true"]}));
        assert!(b["NetworkingConfig"]["EndpointsConfig"]["n"]["MacAddress"].is_null(), "an endpoint MAC did not exist before 1.44");
        let mut two = json!({"NetworkingConfig": {"EndpointsConfig": {"b": {}, "a": {}}}});
        assert_eq!(adapt_create(&mut two, V41).unwrap_err().message, "Container cannot be created with multiple network endpoints: a, b");
        assert!(adapt_create(&mut two, V44).is_ok());
    }

    #[test]
    fn the_container_wide_mac_is_the_main_networks_and_warned_about_from_1_44() {
        let mac = "02:42:ac:11:00:99";
        let mut old = json!({"MacAddress": mac, "HostConfig": {"NetworkMode": "default"}});
        assert!(adapt_create(&mut old, V41).unwrap().is_empty());
        assert_eq!(old["NetworkingConfig"]["EndpointsConfig"]["bridge"]["MacAddress"], mac);
        assert_eq!(old["MacAddress"], mac);
        let mut upper = json!({"MacAddress": "02:42:AC:11:00:99"});
        adapt_create(&mut upper, V41).unwrap();
        assert_eq!(upper["MacAddress"], "02:42:ac:11:00:99", "as Go prints a hardware address");

        let mut new = json!({"MacAddress": mac, "HostConfig": {"NetworkMode": "web"}});
        assert_eq!(adapt_create(&mut new, V50).unwrap(), vec![MAC_DEPRECATED.to_string()]);
        assert_eq!(new["NetworkingConfig"]["EndpointsConfig"]["web"]["MacAddress"], mac);

        let mut clash =
            json!({"MacAddress": mac, "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "02:00:00:00:00:01"}}}});
        assert!(adapt_create(&mut clash, V50).unwrap_err().message.starts_with("the container-wide MAC address must match"));
        let mut host = json!({"MacAddress": mac, "HostConfig": {"NetworkMode": "host"}});
        assert_eq!(adapt_create(&mut host, V41).unwrap_err().message, "conflicting options: mac-address and the network mode");

        // The CLI of 1.44+ sends the endpoint's only: inspect's Config shows it.
        let mut ep =
            json!({"HostConfig": {"NetworkMode": "bridge"}, "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": mac}}}});
        assert!(adapt_create(&mut ep, V50).unwrap().is_empty());
        assert_eq!(ep["MacAddress"], mac);
        let mut none = json!({"MacAddress": ""});
        adapt_create(&mut none, V50).unwrap();
        assert!(none.get("MacAddress").is_none());
    }

    #[test]
    fn gw_priority_is_dropped_before_1_48() {
        let body = || json!({"NetworkingConfig": {"EndpointsConfig": {"a": {"GwPriority": 5}}}});
        let mut old = body();
        adapt_create(&mut old, ApiVersion(1, 47)).unwrap();
        assert!(old["NetworkingConfig"]["EndpointsConfig"]["a"].get("GwPriority").is_none());
        let mut new = body();
        adapt_create(&mut new, V50).unwrap();
        assert_eq!(new["NetworkingConfig"]["EndpointsConfig"]["a"]["GwPriority"], 5);
    }

    #[test]
    fn aliases_are_what_was_asked_from_1_45_and_dns_names_appear_in_1_44() {
        let id = "0123456789abcdef0123";
        let asked = vec!["db".to_string()];
        let (a, d) = endpoint_names(V50, true, true, "web", id, "0123456789ab", &asked);
        assert_eq!((a, d), (json!(["db"]), Some(json!(["web", "db", "0123456789ab"]))));
        let (a, d) = endpoint_names(V44, true, true, "web", id, "host1", &asked);
        assert_eq!((a, d), (json!(["db", "0123456789ab", "host1"]), Some(json!(["web", "db", "0123456789ab", "host1"]))));
        let (a, d) = endpoint_names(V41, true, true, "web", id, "0123456789ab", &[]);
        assert_eq!((a, d), (json!(["0123456789ab"]), None));
        // The default bridge has no names; a stopped container no DNS names.
        assert_eq!(endpoint_names(V50, false, true, "web", id, "h", &[]), (Value::Null, Some(Value::Null)));
        assert_eq!(endpoint_names(V50, true, false, "web", id, "h", &[]).1, Some(Value::Null));
    }

    #[test]
    fn image_answers_lose_fields_as_the_versions_dropped_them() {
        let full = || {
            json!({"VirtualSize": 1, "Container": "", "ContainerConfig": {}, "Size": 1, "Config": {"Hostname": "", "Tty": false, "Env": ["A=1"], "Cmd": ["sh"]}})
                .as_object()
                .unwrap()
                .clone()
        };
        let mut m = full();
        image_inspect(V41, &mut m);
        // Before 1.50 Config and ContainerConfig carry every key of a
        // container's config, zero where the image has none.
        assert_eq!(m["Config"]["Env"], json!(["A=1"]));
        assert_eq!((&m["Config"]["User"], &m["Config"]["Volumes"], &m["Config"]["AttachStdin"]), (&json!(""), &Value::Null, &json!(false)));
        assert_eq!(m["ContainerConfig"]["Cmd"], Value::Null);
        assert_eq!(m["ContainerConfig"].as_object().unwrap().len(), 17);
        assert_eq!(m["VirtualSize"], 1);
        let mut m = full();
        image_inspect(V44, &mut m);
        assert!(!m.contains_key("VirtualSize") && m.contains_key("ContainerConfig"));
        let mut m = full();
        image_inspect(V50, &mut m);
        assert_eq!(Value::Object(m), json!({"Size": 1, "Config": {"Env": ["A=1"], "Cmd": ["sh"]}}));
        let mut s = json!({"VirtualSize": 1, "Size": 1}).as_object().unwrap().clone();
        image_summary(V41, &mut s);
        assert!(s.contains_key("VirtualSize"));
        image_summary(V50, &mut s);
        assert!(!s.contains_key("VirtualSize"));
    }

    #[test]
    fn volume_prune_keeps_named_volumes_from_1_42_unless_all_is_asked() {
        let f = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert!(prune_named_volumes(V41, &Value::Null).unwrap());
        assert!(!prune_named_volumes(V50, &Value::Null).unwrap());
        assert!(prune_named_volumes(V50, &f(r#"{"all": {"true": true}}"#)).unwrap());
        assert!(!prune_named_volumes(V50, &f(r#"{"all": {"0": true}}"#)).unwrap());
        assert_eq!(prune_named_volumes(V50, &f(r#"{"all": {"maybe": true}}"#)).unwrap_err().message, "invalid filter 'all=maybe'");
    }
}
