//! A container's record: what is kept of it on the disk
//! (`<data-root>/containers/<id>/container.json`) and what it was asked for
//! — its config and host config as the client sent them (with the image's
//! defaults), its networks and links, its run state — with the accessors
//! the engine reads it through.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_shared::{RwLayer, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::volumes::MountPoint;

/// The container's runtime state, as `docker inspect` shows State.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// The kernel's OOM killer ended its last run (`State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
    /// Frozen by `docker pause` (Status stays running, as Docker's).
    #[serde(default)]
    pub paused: bool,
    /// Waiting to be started again by its restart policy.
    #[serde(default)]
    pub restarting: bool,
    /// Its healthcheck's state (None: it has none).
    #[serde(default)]
    pub health: Option<super::health::Health>,
}

/// What is kept on disk for each container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    /// Docker's `Config`, with the image's defaults filled in.
    pub config: Value,
    /// Docker's `HostConfig`, as the client sent it.
    pub host_config: Value,
    pub state: RunState,
    pub layer: RwLayer,
    pub log_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub resolv_conf_path: PathBuf,
    /// The networks it joins when it starts, in order (the first is its
    /// NetworkMode and gets eth0 and the default route).
    /// (None in records from before berth kept it: the NetworkMode then.)
    #[serde(default)]
    pub networks: Option<Vec<NetAttach>>,
    /// Its endpoints while running, by network name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, crate::network::Endpoint>,
    /// Its network namespace's bind mount while running on networks.
    #[serde(default)]
    pub sandbox: Option<PathBuf>,
    /// Ports published while running.
    #[serde(default)]
    pub ports: Vec<crate::network::nat::PortMap>,
    /// Its volumes and bind mounts.
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Times its restart policy started it again (inspect's RestartCount).
    #[serde(default)]
    pub restart_count: u32,
    /// Its last run was ended by `docker stop`/`kill` (Docker's
    /// HasBeenManuallyStopped): no policy restarts it.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Legacy links (`--link` on the default bridge): each child's ID and
    /// the alias it has here.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The environment its links gave its last run (`DB_PORT=…`), which
    /// its execs get too.
    #[serde(default)]
    pub link_env: Vec<String>,
    /// A build's RUN step runs in it: berth's, removed when the step ends
    /// (and at start, when a crash ended the step).
    #[serde(default)]
    pub build_step: bool,
}

/// A legacy link to another container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub child: String,
    pub alias: String,
}

/// A network a container joins, with the extra names it has there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAttach {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--link name:alias` on a user-defined network: names only this
    /// container resolves (EndpointSettings.Links).
    #[serde(default)]
    pub links: Vec<String>,
    /// The address the client asked for (`--ip`), else the network's next.
    #[serde(default)]
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// `--ip6` on an `--ipv6` network.
    #[serde(default)]
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// `--link-local-ip`s.
    #[serde(default)]
    pub link_local: Vec<std::net::IpAddr>,
    /// The MAC address asked for (`--mac-address`), else Docker's 02:42:….
    #[serde(default)]
    pub mac: Option<String>,
    /// EndpointSettings.DriverOpts, kept and shown as given (none sent is
    /// null, an empty map `{}`, as Docker shows them).
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// EndpointSettings.GwPriority (API 1.48+): the endpoint with the
    /// highest gives the default route.
    #[serde(default)]
    pub gw_priority: i64,
}

impl NetAttach {
    /// What it asks of the network's address management.
    pub fn address(&self) -> crate::network::Address {
        crate::network::Address {
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            mac: self.mac.as_deref().and_then(berth_shared::ipam::parse_mac),
            link_local: self.link_local.clone(),
        }
    }
}

impl Record {
    /// The NetworkMode, with "default" read as the default bridge.
    pub fn network_mode(&self) -> String {
        match self.host_config["NetworkMode"].as_str().unwrap_or("default") {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        }
    }
    /// The networks to join at start.
    pub fn attachments(&self) -> Vec<NetAttach> {
        let mode = self.network_mode();
        match &self.networks {
            Some(n) => n.clone(),
            None if mode == "host" || mode == "none" => Vec::new(),
            None => vec![NetAttach { network: mode, ..Default::default() }],
        }
    }
    /// Its endpoint on the first network (eth0), while running.
    pub fn primary_endpoint(&self) -> Option<&crate::network::Endpoint> {
        self.endpoints.values().find(|e| e.ifname == "eth0").or_else(|| self.endpoints.values().next())
    }
    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }
    pub fn open_stdin(&self) -> bool {
        self.config["OpenStdin"].as_bool().unwrap_or(false)
    }
    pub fn stdin_once(&self) -> bool {
        self.config["StdinOnce"].as_bool().unwrap_or(false)
    }
    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }
    pub(crate) fn strings(v: &Value) -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    }
    /// Entrypoint followed by Cmd: what PID 1 runs.
    pub fn command(&self) -> Vec<String> {
        let mut c = Self::strings(&self.config["Entrypoint"]);
        c.extend(Self::strings(&self.config["Cmd"]));
        c
    }
    pub fn env(&self) -> Vec<String> {
        Self::strings(&self.config["Env"])
    }
    /// What a process started in it gets (PID 1, an exec, a healthcheck
    /// probe), in Docker's order: HOSTNAME, TERM=xterm on a terminal, its
    /// links' variables, then Config.Env — a variable Config.Env also sets
    /// is replaced where it stands, the others are appended.
    pub fn process_env(&self, tty: bool) -> Vec<String> {
        let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
        let mut env = vec![format!("HOSTNAME={}", self.config["Hostname"].as_str().unwrap_or(""))];
        if tty {
            env.push("TERM=xterm".into());
        }
        env.extend(self.link_env.iter().cloned());
        for e in self.env() {
            match env.iter_mut().find(|x| key(x) == key(&e)) {
                Some(slot) => *slot = e,
                None => env.push(e),
            }
        }
        env
    }
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub fn dns(&self) -> berth_shared::etc::DnsSettings {
        berth_shared::etc::DnsSettings {
            servers: Self::strings(&self.host_config["Dns"]),
            search: Self::strings(&self.host_config["DnsSearch"]),
            options: Self::strings(&self.host_config["DnsOptions"]),
        }
    }
    pub fn stop_signal(&self) -> String {
        self.config["StopSignal"].as_str().filter(|s| !s.is_empty()).unwrap_or("SIGTERM").to_string()
    }
    pub fn stop_timeout(&self) -> Option<u64> {
        self.config["StopTimeout"].as_u64()
    }
}
