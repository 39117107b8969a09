//! What a new container is, decided from the request and its image before
//! anything is made (pure: no kernel, no disk): its name when none was
//! given, its mounts, its published ports and its merged config.

use serde_json::{json, Value};

use super::record::Record;
use super::volumes::MountRequest;
use crate::error::ApiError;

/// A random name in Docker's adjective_surname form.
pub(super) fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "clever", "eager", "gifted", "happy", "jolly", "keen", "lucid", "merry", "nifty", "quirky", "serene", "sharp",
        "tender", "vibrant", "wizardly", "zealous", "bold", "cool",
    ];
    const NAMES: &[&str] = &[
        "curie",
        "hopper",
        "lovelace",
        "turing",
        "noether",
        "ritchie",
        "thompson",
        "torvalds",
        "liskov",
        "knuth",
        "dijkstra",
        "hamilton",
        "shannon",
        "babbage",
        "goldberg",
        "kare",
        "perlman",
        "wozniak",
        "engelbart",
        "allen",
    ];
    let r = crate::ids::random_u128();
    format!("{}_{}", ADJ[(r % ADJ.len() as u128) as usize], NAMES[((r >> 32) % NAMES.len() as u128) as usize])
}

/// The mounts a new container asks for: `HostConfig.Binds` (`-v`),
/// `HostConfig.Mounts` (`--mount`), then an anonymous volume for each path in
/// `Config.Volumes` (the image's VOLUME, `-v /path`) not already covered.
pub fn mount_requests(host_config: &Value, config: &Value) -> Result<Vec<MountRequest>, ApiError> {
    use super::volumes::{parse_bind, parse_mount};
    let mut out: Vec<MountRequest> = Vec::new();
    let binds = host_config["Binds"].as_array().cloned().unwrap_or_default();
    let mounts = host_config["Mounts"].as_array().cloned().unwrap_or_default();
    let parsed = binds.iter().filter_map(|b| b.as_str()).map(parse_bind).chain(mounts.iter().map(parse_mount));
    for r in parsed {
        let r = r?;
        if out.iter().any(|o| o.destination.trim_end_matches('/') == r.destination.trim_end_matches('/')) {
            return Err(ApiError::bad_request(format!("Duplicate mount point: {}", r.destination)));
        }
        out.push(r);
    }
    if let Some(volumes) = config["Volumes"].as_object() {
        for dest in volumes.keys() {
            if !dest.starts_with('/') || out.iter().any(|o| o.destination.trim_end_matches('/') == dest.trim_end_matches('/')) {
                continue;
            }
            out.push(MountRequest {
                source: String::new(),
                bind: false,
                destination: dest.clone(),
                readonly: false,
                mode: String::new(),
                nocopy: false,
                create_source: false,
            });
        }
    }
    Ok(out)
}

/// The ports to publish: HostConfig.PortBindings, and with PublishAllPorts
/// every exposed port on a free host port.
pub fn port_requests(r: &Record) -> Result<Vec<crate::network::PortRequest>, String> {
    use crate::network::PortRequest;
    let parse_key = |k: &str| -> Result<(u16, String), String> {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port = port.parse::<u16>().map_err(|_| format!("invalid port specification: \"{k}\""))?;
        if proto != "tcp" && proto != "udp" {
            return Err(format!("invalid proto: {proto}"));
        }
        Ok((port, proto.to_string()))
    };
    let mut out = Vec::new();
    if let Some(bindings) = r.host_config["PortBindings"].as_object() {
        for (key, list) in bindings {
            let (container_port, proto) = parse_key(key)?;
            for b in list.as_array().cloned().unwrap_or_default() {
                let host_ip = match b["HostIp"].as_str().unwrap_or("") {
                    "" => std::net::Ipv4Addr::UNSPECIFIED,
                    ip => ip.parse().map_err(|_| format!("invalid IP address: {ip}"))?,
                };
                let host_port = match b["HostPort"].as_str().unwrap_or("") {
                    "" => 0,
                    p => p.parse().map_err(|_| format!("invalid port specification: \"{p}\""))?,
                };
                out.push(PortRequest { proto: proto.clone(), container_port, host_ip, host_port });
            }
        }
    }
    if r.host_config["PublishAllPorts"].as_bool().unwrap_or(false) {
        if let Some(exposed) = r.config["ExposedPorts"].as_object() {
            for key in exposed.keys() {
                let (container_port, proto) = parse_key(key)?;
                if !out.iter().any(|p| p.container_port == container_port && p.proto == proto) {
                    out.push(PortRequest { proto, container_port, host_ip: std::net::Ipv4Addr::UNSPECIFIED, host_port: 0 });
                }
            }
        }
    }
    out.sort_by(|a, b| (a.container_port, &a.proto, a.host_port).cmp(&(b.container_port, &b.proto, b.host_port)));
    Ok(out)
}

/// Docker's Config for a new container: the request's values, with the
/// image's defaults where the request has none.
pub fn merge_config(body: &Value, image: &Value, id: &str, image_name: &str) -> Value {
    let mut c = json!({
        "Hostname": id[..12].to_string(),
        "Domainname": "",
        "User": "",
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": null,
        "Cmd": null,
        "Image": image_name,
        "Volumes": null,
        "WorkingDir": "",
        "Entrypoint": null,
        "OnBuild": null,
        "Labels": {},
    });
    for key in [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "WorkingDir",
        "StopSignal",
        "StopTimeout",
        "MacAddress",
        "Labels",
        "ExposedPorts",
        "Volumes",
    ] {
        let v = &body[key];
        let empty = v.is_null() || v.as_str() == Some("") || (v.is_object() && v.as_object().is_some_and(|o| o.is_empty()));
        if !empty {
            c[key] = v.clone();
        }
    }
    // From the image unless the request sets them.
    let user_entrypoint = !body["Entrypoint"].is_null();
    c["Entrypoint"] = if user_entrypoint { body["Entrypoint"].clone() } else { image["Entrypoint"].clone() };
    c["Cmd"] = if !body["Cmd"].is_null() && body["Cmd"].as_array().is_some_and(|a| !a.is_empty()) {
        body["Cmd"].clone()
    } else if user_entrypoint {
        // A new entrypoint drops the image's Cmd, as in Docker.
        Value::Null
    } else {
        image["Cmd"].clone()
    };
    if c["Entrypoint"].as_array().is_some_and(|a| a.len() == 1 && a[0] == "") {
        c["Entrypoint"] = Value::Null;
    }
    for key in ["WorkingDir", "User", "StopSignal"] {
        if c[key].as_str().unwrap_or("").is_empty() {
            if let Some(v) = image[key].as_str().filter(|v| !v.is_empty()) {
                c[key] = json!(v);
            }
        }
    }
    if c["ExposedPorts"].is_null() && image["ExposedPorts"].is_object() {
        c["ExposedPorts"] = image["ExposedPorts"].clone();
    } else if let (Some(mine), Some(theirs)) = (c["ExposedPorts"].as_object().cloned(), image["ExposedPorts"].as_object()) {
        let mut all = theirs.clone();
        all.extend(mine);
        c["ExposedPorts"] = Value::Object(all);
    }
    if c["Volumes"].is_null() && image["Volumes"].is_object() {
        c["Volumes"] = image["Volumes"].clone();
    }
    let health = super::health::merge(&body["Healthcheck"], &image["Healthcheck"]);
    if !health.is_null() {
        c["Healthcheck"] = health;
    }
    if let Some(labels) = image["Labels"].as_object() {
        let mut all = labels.clone();
        if let Some(mine) = c["Labels"].as_object() {
            all.extend(mine.clone());
        }
        c["Labels"] = Value::Object(all);
    }
    // Env as Docker merges it: the request's first, in its order, then each
    // of the image's variables the request does not set. (TERM=xterm on a
    // terminal is the process's, not the config's: see process_env.)
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let mut env: Vec<String> = Record::strings(&body["Env"]);
    for e in Record::strings(&image["Env"]) {
        if !env.iter().any(|x| key(x) == key(&e)) {
            env.push(e);
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    c["Env"] = json!(env);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_defaults_fill_what_the_request_leaves_out() {
        let image = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["nginx", "-g", "daemon off;"], "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT", "WorkingDir": "/app"});
        let body = json!({"Env": ["A=2", "B=3"], "Cmd": null, "Image": "nginx:alpine"});
        let c = merge_config(&body, &image, &"a".repeat(64), "nginx:alpine");
        assert_eq!(c["Cmd"], json!(["nginx", "-g", "daemon off;"]));
        assert_eq!(c["Env"], json!(["A=2", "B=3", "PATH=/bin"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(c["StopSignal"], "SIGQUIT");
        assert_eq!(c["WorkingDir"], "/app");
        assert_eq!(c["Hostname"], "a".repeat(12));
    }

    #[test]
    fn a_new_entrypoint_drops_the_images_cmd_and_a_cmd_replaces_it() {
        let image = json!({"Entrypoint": ["/entry"], "Cmd": ["default"]});
        let c = merge_config(&json!({"Entrypoint": ["sh"]}), &image, &"b".repeat(64), "x");
        assert_eq!((c["Entrypoint"].clone(), c["Cmd"].clone()), (json!(["sh"]), Value::Null));
        let c = merge_config(&json!({"Cmd": ["echo", "hi"]}), &image, &"b".repeat(64), "x");
        assert_eq!((c["Entrypoint"].clone(), c["Cmd"].clone()), (json!(["/entry"]), json!(["echo", "hi"])));
    }
}
