//! System endpoints: `/_ping`, `/version`, `/info`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::config::{API_VERSION, MIN_API_VERSION};
use crate::system::HostFacts;

pub fn router() -> Router<AppState> {
    Router::new().route("/_ping", get(ping).head(ping)).route("/version", get(version)).route("/info", get(info))
}

/// The CLI's first request: its `API-Version` header drives negotiation.
async fn ping() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::HeaderName::from_static("builder-version"), "1"),
            (header::HeaderName::from_static("swarm"), "inactive"),
        ],
        "OK",
    )
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn version(State(st): State<AppState>) -> Json<Value> {
    let h = &st.host;
    let arch = HostFacts::goarch();
    Json(json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine",
            "Version": VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
                "GoVersion": "none (Rust)",
                "Os": "linux",
                "Arch": arch,
                "KernelVersion": h.kernel_version,
                "BuildTime": "",
                "Experimental": "false",
            }
        }],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "none (Rust)",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": h.kernel_version,
        "BuildTime": "",
    }))
}

async fn info(State(st): State<AppState>, v: super::ApiVersion) -> Json<Value> {
    let h = &st.host;
    let c = &st.config;
    let now = crate::ids::now_rfc3339();
    use crate::runtime::resources::Ctrl;
    let containers: Vec<_> = st.containers.list().iter().map(|c| c.record().state).collect();
    let paused = containers.iter().filter(|s| s.status == berth_shared::Status::Running && s.paused).count();
    let running = containers.iter().filter(|s| s.status == berth_shared::Status::Running).count() - paused;
    let res = st.containers.resources();
    let mut info = json!({
        "ID": *st.daemon_id,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": st.images.list().len(),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": res.has(Ctrl::Memory),
        "SwapLimit": res.swap_accounting(),
        "KernelMemory": false,
        // (Kernel TCP buffer limits are not set by berth; v2 hosts omit it.)
        "KernelMemoryTCP": false,
        "CpuCfsPeriod": res.has(Ctrl::Cpu),
        "CpuCfsQuota": res.has(Ctrl::Cpu),
        "CPUShares": res.has(Ctrl::Cpu),
        "CPUSet": false,
        "PidsLimit": res.has(Ctrl::Pids),
        "IPv4Forwarding": sysctl_on("net/ipv4/ip_forward"),
        "BridgeNfIptables": sysctl_on("net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": sysctl_on("net/bridge/bridge-nf-call-ip6tables"),
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": res.has(Ctrl::Memory),
        "NGoroutines": 0,
        "SystemTime": now,
        "LoggingDriver": "json-file",
        // The devices cgroup (v1) is the only one berth manages so far.
        "CgroupDriver": if st.containers.device_cgroups_enforced() { "cgroupfs" } else { "none" },
        "CgroupVersion": if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" },
        "NEventsListener": 0,
        "KernelVersion": h.kernel_version,
        "OperatingSystem": h.operating_system,
        "OSVersion": h.os_version,
        "OSType": "linux",
        "Architecture": h.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {
                    "Name": "docker.io",
                    "Mirrors": c.registry_mirrors,
                    "Secure": true,
                    "Official": true,
                }
            },
            "Mirrors": c.registry_mirrors,
        },
        "NCPU": h.ncpu,
        "MemTotal": h.mem_total,
        "GenericResources": null,
        "DockerRootDir": c.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": h.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        // One runtime, berth's own, under its name and under the one Docker
        // clients ask for (HostConfig.Runtime is "runc" unless set).
        "Runtimes": { "berth": { "path": "berthd (built in)" }, "runc": { "path": "berthd (built in)" } },
        "DefaultRuntime": "runc",
        "Swarm": {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": false, "Error": "", "RemoteManagers": null,
        },
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": { "ID": "", "Expected": "" },
        "RuncCommit": { "ID": "", "Expected": "" },
        "InitCommit": { "ID": "", "Expected": "" },
        // Docker's default seccomp policy in every container not unconfined.
        "SecurityOptions": [crate::runtime::seccomp::info_option()],
        // null when there are none, as Docker's.
        "Warnings": match st.engine {
            berth_shared::EngineMode::Live => Value::Null,
            berth_shared::EngineMode::Unavailable => json!(["WARNING: berth's engine is unavailable on this host (not root or no namespaces); containers cannot run"]),
        },
    });
    if let Some(m) = info.as_object_mut() {
        if st.containers.resources().version() == crate::runtime::resources::Version::V2 {
            m.remove("KernelMemoryTCP");
        }
        super::versions::info(v, m);
    }
    Json(info)
}

/// Is a boolean sysctl (under /proc/sys) set?
fn sysctl_on(key: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/{key}")).is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::call;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn ping_answers_ok_with_the_negotiation_header() {
        for method in ["GET", "HEAD"] {
            let (status, headers, _, text) = call(method, "/_ping").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["api-version"], API_VERSION);
            assert_eq!(headers["ostype"], "linux");
            if method == "GET" {
                assert_eq!(text, "OK");
            }
        }
    }

    #[tokio::test]
    async fn version_reports_the_engine_component_and_api_range() {
        let (_, _, v, _) = call("GET", "/v1.41/version").await;
        assert_eq!(v["ApiVersion"], "1.50");
        assert_eq!(v["MinAPIVersion"], MIN_API_VERSION);
        assert_eq!(v["Components"][0]["Name"], "Engine");
        assert_eq!(v["Os"], "linux");
    }

    #[tokio::test]
    async fn info_reports_overlay2_json_file_and_the_configured_root() {
        let (_, _, v, _) = call("GET", "/info").await;
        assert_eq!(v["Driver"], "overlay2");
        assert_eq!(v["LoggingDriver"], "json-file");
        assert_eq!(v["DockerRootDir"], "/var/lib/berth");
        assert_eq!(v["Swarm"]["LocalNodeState"], "inactive");
    }
}
