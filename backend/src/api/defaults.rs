//! What `docker inspect` shows of a container's HostConfig: every key Docker
//! has, with Docker's default where the client sent none (clients other than
//! the docker CLI send few: the Python SDK's `run()` then reads
//! `HostConfig.LogConfig.Type`), and the effective value where berth decides
//! one (the log driver, the shm size, the paths it masks).

use serde_json::{json, Value};

use crate::runtime::spec::{MASKED_PATHS, READONLY_PATHS};

/// Docker's default /dev/shm size.
pub const SHM_SIZE: u64 = 64 << 20;

/// Every HostConfig key with the value Docker gives a container created
/// without it (API 1.41).
fn docker_defaults(cgroup_v2: bool) -> Value {
    json!({
        "Binds": null,
        "ContainerIDFile": "",
        "LogConfig": { "Type": "json-file", "Config": {} },
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
        "AutoRemove": false,
        "VolumeDriver": "",
        "VolumesFrom": null,
        "CapAdd": null,
        "CapDrop": null,
        "CgroupnsMode": if cgroup_v2 { "private" } else { "host" },
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": null,
        "GroupAdd": null,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": null,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": false,
        "PublishAllPorts": false,
        "ReadonlyRootfs": false,
        "SecurityOpt": null,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": SHM_SIZE,
        "Runtime": "runc",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": 0,
        "Memory": 0,
        "NanoCpus": 0,
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": null,
        "BlkioDeviceWriteBps": null,
        "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null,
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": null,
        "DeviceRequests": null,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": 0,
        "MemorySwap": 0,
        "MemorySwappiness": null,
        "OomKillDisable": false,
        "PidsLimit": null,
        "Ulimits": null,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": MASKED_PATHS,
        "ReadonlyPaths": READONLY_PATHS,
    })
}

/// What Docker's create route and daemon make of a sent HostConfig before
/// storing it: a PIDs limit of 0 or less is no limit (null), a swappiness
/// of -1 (the CLI's "unset") is null, and a memory limit without a
/// memory+swap limit gets twice the memory (Docker's default, which the
/// executor writes to memsw too).
pub fn adapt_at_create(hc: &mut Value) {
    let Some(o) = hc.as_object_mut() else { return };
    if o.get("PidsLimit").and_then(Value::as_i64).is_some_and(|p| p <= 0) {
        o.insert("PidsLimit".into(), Value::Null);
    }
    if o.get("MemorySwappiness").and_then(Value::as_i64) == Some(-1) {
        o.insert("MemorySwappiness".into(), Value::Null);
    }
    let memory = o.get("Memory").and_then(Value::as_i64).unwrap_or(0);
    if memory > 0 && o.get("MemorySwap").and_then(Value::as_i64).unwrap_or(0) == 0 {
        o.insert("MemorySwap".into(), json!(memory * 2));
    }
}

/// The HostConfig `docker inspect` shows for `stored` (as the client sent it).
pub fn host_config(stored: &Value, cgroup_v2: bool) -> Value {
    let mut out = docker_defaults(cgroup_v2);
    let Some(o) = out.as_object_mut() else { return out };
    if let Some(sent) = stored.as_object() {
        for (k, v) in sent {
            // A key sent as null keeps Docker's default (the CLI sends nulls for
            // lists it leaves empty, and Docker shows its own defaults for some).
            if !v.is_null() || !o.contains_key(k) {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    // What berth decides where the client left it open.
    if o["LogConfig"]["Type"].as_str().unwrap_or("").is_empty() {
        o["LogConfig"]["Type"] = json!("json-file");
    }
    if !o["LogConfig"]["Config"].is_object() {
        o["LogConfig"]["Config"] = json!({});
    }
    if o["RestartPolicy"]["Name"].as_str().unwrap_or("").is_empty() {
        o["RestartPolicy"]["Name"] = json!("no");
    }
    if o["ShmSize"].as_u64().unwrap_or(0) == 0 {
        o["ShmSize"] = json!(SHM_SIZE);
    }
    // The CLI sends these empty; Docker stores its daemon's defaults.
    if o["IpcMode"].as_str().unwrap_or("").is_empty() {
        o["IpcMode"] = json!("private");
    }
    if o["CgroupnsMode"].as_str().unwrap_or("").is_empty() {
        o["CgroupnsMode"] = json!(if cgroup_v2 { "private" } else { "host" });
    }
    if o["NetworkMode"].as_str().unwrap_or("").is_empty() {
        o["NetworkMode"] = json!("default");
    }
    // A privileged container has nothing masked or read-only (as Docker).
    if o["Privileged"].as_bool() == Some(true) {
        for k in ["MaskedPaths", "ReadonlyPaths"] {
            if stored.get(k).is_none_or(Value::is_null) {
                o[k] = json!([]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_stores_what_docker_stores() {
        let mut hc = json!({"PidsLimit": 0, "MemorySwappiness": -1, "Memory": 64 << 20, "MemorySwap": 0});
        adapt_at_create(&mut hc);
        assert_eq!(hc, json!({"PidsLimit": null, "MemorySwappiness": null, "Memory": 64 << 20, "MemorySwap": 128 << 20}));
        let mut hc = json!({"PidsLimit": 50, "MemorySwappiness": 10, "Memory": 64 << 20, "MemorySwap": -1});
        adapt_at_create(&mut hc);
        assert_eq!(hc, json!({"PidsLimit": 50, "MemorySwappiness": 10, "Memory": 64 << 20, "MemorySwap": -1}));
        let mut hc = json!({"Memory": 0, "MemorySwap": 0});
        adapt_at_create(&mut hc);
        assert_eq!(hc["MemorySwap"], 0);
    }

    #[test]
    fn a_few_keys_sent_get_every_key_docker_has_with_its_defaults() {
        let hc = host_config(&json!({ "NetworkMode": "default" }), false);
        assert_eq!(hc["LogConfig"], json!({ "Type": "json-file", "Config": {} }));
        assert_eq!(hc["RestartPolicy"], json!({ "Name": "no", "MaximumRetryCount": 0 }));
        assert_eq!(
            (hc["Runtime"].as_str(), hc["ShmSize"].as_u64(), hc["IpcMode"].as_str()),
            (Some("runc"), Some(SHM_SIZE), Some("private"))
        );
        assert_eq!(hc["CgroupnsMode"], "host");
        assert_eq!(host_config(&json!({}), true)["CgroupnsMode"], "private");
        assert_eq!(hc["MaskedPaths"].as_array().map(Vec::len), Some(MASKED_PATHS.len()));
        assert!(hc["Binds"].is_null() && hc["PortBindings"] == json!({}) && hc["ConsoleSize"] == json!([0, 0]));
        assert_eq!(hc.as_object().unwrap().len(), docker_defaults(false).as_object().unwrap().len());
    }

    #[test]
    fn what_the_client_sent_wins_and_open_values_get_berths() {
        let sent = json!({
            "Binds": ["/src:/dst:ro"],
            "LogConfig": { "Type": "", "Config": null },
            "RestartPolicy": { "Name": "", "MaximumRetryCount": 0 },
            "ShmSize": 0,
            "Privileged": true,
            "CapAdd": null,
            "Memory": 268435456,
            "SomethingNewer": "kept",
        });
        let hc = host_config(&sent, false);
        assert_eq!(hc["Binds"], json!(["/src:/dst:ro"]));
        assert_eq!(hc["LogConfig"], json!({ "Type": "json-file", "Config": {} }));
        assert_eq!(hc["RestartPolicy"]["Name"], "no");
        assert_eq!(hc["ShmSize"], SHM_SIZE);
        assert_eq!(hc["Memory"], 268435456);
        assert_eq!(hc["SomethingNewer"], "kept");
        assert!(hc["CapAdd"].is_null());
        assert_eq!((hc["MaskedPaths"].clone(), hc["ReadonlyPaths"].clone()), (json!([]), json!([])), "privileged: nothing masked");
        let own = host_config(&json!({ "LogConfig": { "Type": "none", "Config": {} }, "MaskedPaths": ["/proc/x"] }), false);
        assert_eq!((own["LogConfig"]["Type"].as_str(), own["MaskedPaths"].clone()), (Some("none"), json!(["/proc/x"])));
    }
}
