//! The host state model and [`apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::{RwLayer, Status};
use crate::event::{EngineMode, Event, FileChangeKind, Mount};

/// What the page knows of the daemon itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub api_version: String,
    pub root: String,
    pub socket: String,
    pub engine: EngineMode,
    pub reason: Option<String>,
    pub running: bool,
}

/// Everything berth shows of node1. Grows with the engine: containers,
/// images, links, rules, mounts, volumes and builds join it as events for
/// them are added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub daemon: Option<DaemonInfo>,
    /// Image layers by chain ID.
    pub layers: BTreeMap<String, Layer>,
    /// Images by ID (config digest).
    pub images: BTreeMap<String, Image>,
    /// Containers by ID.
    pub containers: BTreeMap<String, Container>,
    /// Bridges berth runs (docker0, br-…), by name.
    pub bridges: BTreeMap<String, Bridge>,
    /// User-defined networks, by name (the default "bridge" is docker0).
    pub networks: BTreeMap<String, Network>,
    /// Volumes, by name.
    pub volumes: BTreeMap<String, Volume>,
    /// Builds, by build ID (the latest ones).
    pub builds: BTreeMap<String, Build>,
    /// node1's links as the kernel shows them, by name.
    pub links: BTreeMap<String, Link>,
    /// node1's routes (main table): (destination, gateway, device).
    pub routes: Vec<(String, Option<String>, Option<String>)>,
    /// Mounts in berthd's mount namespace, by mount point.
    pub mounts: BTreeMap<String, KernelMount>,
    /// The netfilter ruleset as the kernel holds it: (table, rule).
    pub kernel_rules: Vec<(String, String)>,
    /// Netfilter rules berth added, as (table, `-A CHAIN …`), in order.
    pub rules: Vec<(String, String)>,
    /// Files seen changed, by watched dir (upper, layer or volume dir), then
    /// by path inside it.
    #[serde(default)]
    pub files: BTreeMap<String, BTreeMap<String, FileChangeKind>>,
    /// The guided lab's progress as its events left it, by lab ID.
    #[serde(default)]
    pub lab: BTreeMap<String, crate::lab::LabRecord>,
    /// The lab shells' last command lines, oldest first (at most
    /// [`MAX_COMMANDS`]).
    #[serde(default)]
    pub commands: Vec<ShellCommand>,
}

/// How many of the shells' last commands [`State`] keeps.
pub const MAX_COMMANDS: usize = 20;

/// A command line a lab shell ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellCommand {
    pub shell: String,
    pub command: String,
    pub exit_code: i32,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
    pub container_ip: String,
    pub container_port: u16,
}

/// A bridge and its gateway address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    pub name: String,
    pub address: String,
    pub prefix: u8,
}

/// A network link of node1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub index: u32,
    pub kind: String,
    pub master: Option<String>,
    pub up: bool,
    pub link_netnsid: Option<i32>,
    /// "address/prefix"
    pub addresses: Vec<String>,
}

/// A mount seen in /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMount {
    pub fstype: String,
    pub source: String,
}

/// Where `iptables -S` lists a chain: the built-in chains in their fixed
/// order, then the user-defined ones by name.
pub fn chain_rank(chain: &str) -> (usize, String) {
    const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    match BUILTIN.iter().position(|c| *c == chain) {
        Some(i) => (i, String::new()),
        None => (BUILTIN.len(), chain.to_string()),
    }
}

/// The chain of a rule in `-S` form ("-A DOCKER …" → "DOCKER").
pub fn rule_chain(rule: &str) -> &str {
    rule.split_whitespace().nth(1).unwrap_or("")
}

impl State {
    /// `rules` (of one table, in `-S` form) in the order `iptables -S`
    /// lists them: by chain (see [`chain_rank`]); within a chain, Docker's
    /// standing rules where berthd's placing puts them (each bridge's
    /// applied when it came, at the top or after Docker's jumps, see
    /// [`crate::netfilter::kernel_order`]), then the appended ones (ports',
    /// anyone's) in the order they came.
    pub fn in_listing_order(&self, table: &str, rules: Vec<String>) -> Vec<String> {
        use crate::netfilter::{bridge_rules, global_rules, internal_bridge_rules, kernel_order};
        // Bridges in the order their rules first came.
        let mut bridges: Vec<&Bridge> = self.bridges.values().collect();
        let first_seen = |b: &Bridge| self.rules.iter().position(|(_, r)| r.split_whitespace().any(|w| w == b.name)).unwrap_or(usize::MAX);
        bridges.sort_by_key(|b| first_seen(b));
        let mut batches = vec![global_rules()];
        for b in bridges {
            let subnet = crate::ipam::Ipam::new(&format!("{}/{}", b.address, b.prefix)).map(|i| i.subnet()).unwrap_or_default();
            batches.push(bridge_rules(&b.name, &subnet));
            // (An internal network's rules, where the bridge is one.)
            batches.push(internal_bridge_rules(&b.name, &subnet));
        }
        let standing: Vec<String> = kernel_order(&batches).into_iter().filter(|r| r.table == table).map(|r| r.text()).collect();
        let mut keyed: Vec<((usize, String), usize, usize, String)> = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let at = standing.iter().position(|k| *k == r).unwrap_or(usize::MAX);
                (chain_rank(rule_chain(&r)), at, i, r)
            })
            .collect();
        keyed.sort();
        keyed.into_iter().map(|(_, _, _, r)| r).collect()
    }

    /// What `iptables -t TABLE -S` prints of the rules (no policies or
    /// chain lines): the kernel's ruleset where it was read, else berth's.
    pub fn iptables_s(&self, table: &str) -> Vec<String> {
        let missing = self.rules_missing_from_kernel();
        let mut rules: Vec<String> = self.rules.iter().filter(|r| r.0 == table && !missing.contains(r)).map(|(_, r)| r.clone()).collect();
        rules.extend(self.rules_by_others().into_iter().filter(|(t, _)| t == table).map(|(_, r)| r));
        self.in_listing_order(table, rules)
    }

    /// Rules berth added that the kernel no longer holds (deleted by hand).
    pub fn rules_missing_from_kernel(&self) -> Vec<(String, String)> {
        if self.kernel_rules.is_empty() {
            return Vec::new();
        }
        self.rules.iter().filter(|r| !self.kernel_rules.contains(r)).cloned().collect()
    }
    /// Rules in the kernel that berth did not add (by hand, or another tool).
    pub fn rules_by_others(&self) -> Vec<(String, String)> {
        self.kernel_rules.iter().filter(|r| !self.rules.contains(r)).cloned().collect()
    }
}

/// A `docker build` and its steps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub tags: Vec<String>,
    pub total: usize,
    pub steps: Vec<BuildStep>,
    /// The image made, once finished.
    pub image: Option<String>,
    pub error: Option<String>,
    pub finished: bool,
}

/// One step of a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    pub step: usize,
    pub instruction: String,
    pub line: usize,
    pub cached: bool,
    pub image: String,
    /// The layer it added (diff ID, size), if it changed files.
    pub layer: Option<(String, u64)>,
}

/// A volume: a directory under the daemon root that outlives containers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub mountpoint: String,
    pub anonymous: bool,
    /// Where its first content came from (container ID, path), if it was
    /// filled from an image.
    pub populated_from: Option<(String, String)>,
}

/// A user-defined bridge network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
}

/// A container's attachment to a bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub bridge: String,
    pub host_if: String,
    /// The interface's name inside the container (eth0, eth1…).
    pub ifname: String,
    pub ip: String,
    pub prefix: u8,
    pub mac: String,
    pub gateway: String,
    pub netns: String,
    /// On an `--ipv6` network: its IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
}

/// A container as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub status: Status,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub layer: RwLayer,
    pub mounted: bool,
    pub namespaces: Vec<String>,
    /// Running `docker exec` processes: exec id -> (pid, command).
    pub execs: BTreeMap<String, (i32, Vec<String>)>,
    /// Its network endpoints while running, by network name.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Ports published on the host while it runs.
    pub ports: Vec<PublishedPort>,
    /// Its volumes and bind mounts.
    pub mounts: Vec<Mount>,
    /// Frozen by `docker pause`.
    #[serde(default)]
    pub paused: bool,
    /// Its healthcheck's verdict ("healthy", "unhealthy"), once given.
    #[serde(default)]
    pub health: Option<String>,
    /// Its labels (for Docker's events).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An unpacked image layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub chain_id: String,
    pub diff_id: String,
    /// Its `diff` dir: what LowerDir lists.
    pub dir: String,
    pub size: u64,
}

/// An image: tags and the stack of layers it is made of (bottom first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub layers: Vec<String>,
    pub size: u64,
}

/// The only way [`State`] changes.
pub fn apply(state: &mut State, event: &Event) {
    match event {
        Event::DaemonStarted { version, api_version, root, socket, engine, reason } => {
            state.daemon = Some(DaemonInfo {
                version: version.clone(),
                api_version: api_version.clone(),
                root: root.clone(),
                socket: socket.clone(),
                engine: *engine,
                reason: reason.clone(),
                running: true,
            });
        }
        Event::DaemonStopping => {
            if let Some(d) = state.daemon.as_mut() {
                d.running = false;
            }
        }
        Event::LayerAdded { chain_id, diff_id, dir, size } => {
            state
                .layers
                .insert(chain_id.clone(), Layer { chain_id: chain_id.clone(), diff_id: diff_id.clone(), dir: dir.clone(), size: *size });
        }
        Event::LayerRemoved { chain_id } => {
            state.layers.remove(chain_id);
        }
        Event::ImageAdded { id, repo_tags, repo_digests, layers, size } => {
            state.images.insert(
                id.clone(),
                Image {
                    id: id.clone(),
                    repo_tags: repo_tags.clone(),
                    repo_digests: repo_digests.clone(),
                    layers: layers.clone(),
                    size: *size,
                },
            );
        }
        Event::ImageTagged { id, tag } => {
            for img in state.images.values_mut() {
                img.repo_tags.retain(|t| t != tag);
            }
            if let Some(img) = state.images.get_mut(id) {
                img.repo_tags.push(tag.clone());
            }
        }
        Event::ImageUntagged { id, tag } => {
            if let Some(img) = state.images.get_mut(id) {
                img.repo_tags.retain(|t| t != tag);
            }
        }
        Event::ImageRemoved { id } => {
            state.images.remove(id);
        }
        Event::ContainerCreated { id, name, image, image_id, command, layer, mounts, labels } => {
            state.containers.insert(
                id.clone(),
                Container {
                    id: id.clone(),
                    name: name.clone(),
                    image: image.clone(),
                    image_id: image_id.clone(),
                    command: command.clone(),
                    status: Status::Created,
                    pid: None,
                    exit_code: None,
                    layer: layer.clone(),
                    mounted: false,
                    namespaces: Vec::new(),
                    execs: BTreeMap::new(),
                    endpoints: BTreeMap::new(),
                    ports: Vec::new(),
                    mounts: mounts.clone(),
                    paused: false,
                    health: None,
                    labels: labels.clone(),
                },
            );
        }
        Event::OverlayMounted { id, .. } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.mounted = true;
            }
        }
        Event::OverlayUnmounted { id, .. } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.mounted = false;
            }
        }
        Event::NamespacesCreated { id, kinds, .. } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.namespaces = kinds.clone();
            }
        }
        Event::ContainerStarted { id, pid } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.status = Status::Running;
                c.pid = Some(*pid);
                c.exit_code = None;
            }
        }
        Event::ProcessExecd { id, exec_id, pid, command } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.execs.insert(exec_id.clone(), (*pid, command.clone()));
            }
        }
        Event::ProcessExited { id, exec_id, .. } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.execs.remove(exec_id);
            }
        }
        Event::ContainerExited { id, exit_code } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.status = Status::Exited;
                c.pid = None;
                c.exit_code = Some(*exit_code);
                c.execs.clear();
                c.namespaces.clear();
                c.paused = false;
                c.health = None;
            }
        }
        Event::ContainerPaused { id } | Event::ContainerUnpaused { id } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.paused = matches!(event, Event::ContainerPaused { .. });
            }
        }
        Event::ContainerHealth { id, status } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.health = Some(status.clone());
            }
        }
        Event::ContainerRenamed { id, name } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.name = name.clone();
            }
        }
        Event::ContainerRemoved { id } => {
            if let Some(c) = state.containers.remove(id) {
                state.files.remove(&c.layer.upper);
            }
        }
        Event::BridgeUp { name, address, prefix, .. } => {
            state.bridges.insert(name.clone(), Bridge { name: name.clone(), address: address.clone(), prefix: *prefix });
        }
        Event::BridgeDown { name } => {
            state.bridges.remove(name);
        }
        Event::NetworkCreated { id, name, driver, bridge, subnet, gateway } => {
            let n = Network {
                id: id.clone(),
                name: name.clone(),
                driver: driver.clone(),
                bridge: bridge.clone(),
                subnet: subnet.clone(),
                gateway: gateway.clone(),
            };
            state.networks.insert(name.clone(), n);
        }
        Event::NetworkRemoved { name, .. } => {
            state.networks.remove(name);
        }
        Event::EndpointAttached { id, network, bridge, host_if, ifname, ip, prefix, mac, gateway, netns, ip6 } => {
            if let Some(c) = state.containers.get_mut(id) {
                let ep = Endpoint {
                    network: network.clone(),
                    bridge: bridge.clone(),
                    host_if: host_if.clone(),
                    ifname: ifname.clone(),
                    ip: ip.clone(),
                    prefix: *prefix,
                    mac: mac.clone(),
                    gateway: gateway.clone(),
                    netns: netns.clone(),
                    ip6: ip6.clone(),
                };
                c.endpoints.insert(network.clone(), ep);
            }
        }
        Event::EndpointDetached { id, network, .. } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.endpoints.remove(network);
            }
        }
        Event::RuleAdded { table, rule } => {
            // A rule is berth's once, however often it is (re)asserted.
            if !state.rules.iter().any(|(t, r)| t == table && r == rule) {
                state.rules.push((table.clone(), rule.clone()));
            }
            // berth just put it in the kernel: the observer's next reading
            // confirms it, and only a deletion by hand takes it out.
            let r = (table.clone(), rule.clone());
            if !state.kernel_rules.contains(&r) {
                state.kernel_rules.push(r);
            }
        }
        Event::RuleRemoved { table, rule } => {
            if let Some(i) = state.rules.iter().position(|(t, r)| t == table && r == rule) {
                state.rules.remove(i);
            }
            state.kernel_rules.retain(|(t, r)| !(t == table && r == rule));
        }
        Event::PortPublished { id, proto, host_ip, host_port, container_ip, container_port } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.ports.push(PublishedPort {
                    proto: proto.clone(),
                    host_ip: host_ip.clone(),
                    host_port: *host_port,
                    container_ip: container_ip.clone(),
                    container_port: *container_port,
                });
            }
        }
        Event::PortUnpublished { id, proto, host_port } => {
            if let Some(c) = state.containers.get_mut(id) {
                c.ports.retain(|p| !(p.proto == *proto && p.host_port == *host_port));
            }
        }
        Event::VolumeCreated { name, mountpoint, anonymous } => {
            let v = Volume { name: name.clone(), mountpoint: mountpoint.clone(), anonymous: *anonymous, populated_from: None };
            state.volumes.insert(name.clone(), v);
        }
        Event::VolumePopulated { name, container, path, .. } => {
            if let Some(v) = state.volumes.get_mut(name) {
                v.populated_from = Some((container.clone(), path.clone()));
            }
        }
        Event::VolumeRemoved { name } => {
            if let Some(v) = state.volumes.remove(name) {
                state.files.remove(&v.mountpoint);
            }
        }
        Event::BuildStarted { build, tags, steps } => {
            state.builds.insert(build.clone(), Build { tags: tags.clone(), total: *steps, ..Build::default() });
        }
        Event::BuildStep { build, step, instruction, line, cached, image } => {
            if let Some(b) = state.builds.get_mut(build) {
                let s = BuildStep {
                    step: *step,
                    instruction: instruction.clone(),
                    line: *line,
                    cached: *cached,
                    image: image.clone(),
                    layer: None,
                };
                b.steps.push(s);
            }
        }
        Event::BuildLayer { build, step, diff_id, size, .. } => {
            if let Some(s) = state.builds.get_mut(build).and_then(|b| b.steps.iter_mut().rev().find(|s| s.step == *step)) {
                s.layer = Some((diff_id.clone(), *size));
            }
        }
        Event::LinkObserved { index, name, kind, master, up, link_netnsid } => {
            let renamed: Vec<String> =
                state.links.iter().filter(|(n, l)| l.index == *index && *n != name).map(|(n, _)| n.clone()).collect();
            let mut addresses = Vec::new();
            for n in renamed {
                if let Some(l) = state.links.remove(&n) {
                    addresses = l.addresses;
                }
            }
            let e = state.links.entry(name.clone()).or_default();
            e.index = *index;
            e.kind = kind.clone();
            e.master = master.clone();
            e.up = *up;
            e.link_netnsid = *link_netnsid;
            if e.addresses.is_empty() {
                e.addresses = addresses;
            }
        }
        Event::LinkGone { name, .. } => {
            state.links.remove(name);
        }
        Event::AddressObserved { link, address, prefix } => {
            let a = format!("{address}/{prefix}");
            let l = state.links.entry(link.clone()).or_default();
            if !l.addresses.contains(&a) {
                l.addresses.push(a);
            }
        }
        Event::AddressGone { link, address, prefix } => {
            if let Some(l) = state.links.get_mut(link) {
                l.addresses.retain(|a| *a != format!("{address}/{prefix}"));
            }
        }
        Event::RouteObserved { dst, gateway, dev } => {
            let r = (dst.clone(), gateway.clone(), dev.clone());
            if !state.routes.contains(&r) {
                state.routes.push(r);
            }
        }
        Event::RouteGone { dst, gateway, dev } => {
            state.routes.retain(|(d, g, v)| !(d == dst && g == gateway && v == dev));
        }
        Event::MountObserved { target, fstype, source } => {
            state.mounts.insert(target.clone(), KernelMount { fstype: fstype.clone(), source: source.clone() });
        }
        Event::MountGone { target } => {
            state.mounts.remove(target);
        }
        Event::KernelRuleObserved { table, rule } => {
            let r = (table.clone(), rule.clone());
            if !state.kernel_rules.contains(&r) {
                state.kernel_rules.push(r);
            }
        }
        Event::KernelRuleGone { table, rule } => {
            state.kernel_rules.retain(|(t, r)| !(t == table && r == rule));
        }
        Event::FileChanged { dir, path, change } => {
            state.files.entry(dir.clone()).or_default().insert(path.clone(), *change);
        }
        Event::LabProgress { lab, step, change } => {
            state.lab.entry(lab.clone()).or_default().apply(step, change);
        }
        Event::ShellCommand { shell, command, exit_code } => {
            state.commands.push(ShellCommand { shell: shell.clone(), command: command.clone(), exit_code: *exit_code });
            let over = state.commands.len().saturating_sub(MAX_COMMANDS);
            state.commands.drain(..over);
        }
        Event::BuildFinished { build, image, error } => {
            if let Some(b) = state.builds.get_mut(build) {
                b.image = image.clone();
                b.error = error.clone();
                b.finished = true;
            }
        }
        // A request: the changes it leads to come as their own events.
        Event::ContainerRequest { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, SCHEMA_VERSION};

    fn started() -> Event {
        Event::DaemonStarted {
            version: "0.1.0".into(),
            api_version: crate::API_VERSION.into(),
            root: "/var/lib/berth".into(),
            socket: "/run/berth/docker.sock".into(),
            engine: EngineMode::Live,
            reason: None,
        }
    }

    #[test]
    fn daemon_start_then_stop_marks_it_not_running() {
        let mut s = State::default();
        apply(&mut s, &started());
        assert!(s.daemon.as_ref().is_some_and(|d| d.running && d.api_version == crate::API_VERSION));
        apply(&mut s, &Event::DaemonStopping);
        assert_eq!(s.daemon.as_ref().map(|d| d.running), Some(false));
    }

    #[test]
    fn a_tag_moves_to_the_newly_tagged_image() {
        let mut s = State::default();
        for id in ["sha256:a", "sha256:b"] {
            apply(&mut s, &Event::ImageAdded { id: id.into(), repo_tags: vec![], repo_digests: vec![], layers: vec![], size: 0 });
        }
        apply(&mut s, &Event::ImageTagged { id: "sha256:a".into(), tag: "x:1".into() });
        apply(&mut s, &Event::ImageTagged { id: "sha256:b".into(), tag: "x:1".into() });
        assert!(s.images["sha256:a"].repo_tags.is_empty());
        assert_eq!(s.images["sha256:b"].repo_tags, vec!["x:1"]);
        apply(&mut s, &Event::ImageRemoved { id: "sha256:b".into() });
        assert_eq!(s.images.len(), 1);
    }

    #[test]
    fn a_container_has_one_endpoint_per_network_and_networks_come_and_go() {
        let mut s = State::default();
        apply(
            &mut s,
            &Event::NetworkCreated {
                id: "n1".into(),
                name: "labnet".into(),
                driver: "bridge".into(),
                bridge: "br-n1".into(),
                subnet: "172.18.0.0/16".into(),
                gateway: "172.18.0.1".into(),
            },
        );
        apply(
            &mut s,
            &Event::ContainerCreated {
                id: "c1".into(),
                name: "web".into(),
                image: "nginx".into(),
                image_id: "sha256:i".into(),
                command: vec![],
                layer: RwLayer::default(),
                mounts: vec![],
                labels: Default::default(),
            },
        );
        let attach = |network: &str, bridge: &str, ifname: &str, ip: &str| Event::EndpointAttached {
            id: "c1".into(),
            network: network.into(),
            bridge: bridge.into(),
            host_if: format!("veth{ifname}"),
            ifname: ifname.into(),
            ip: ip.into(),
            prefix: 16,
            mac: String::new(),
            gateway: String::new(),
            netns: "/run/berth/netns/c1".into(),
            ip6: None,
        };
        apply(&mut s, &attach("bridge", "docker0", "eth0", "172.17.0.2"));
        apply(&mut s, &attach("labnet", "br-n1", "eth1", "172.18.0.2"));
        let c = &s.containers["c1"];
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.endpoints["labnet"].ifname, "eth1");
        apply(&mut s, &Event::EndpointDetached { id: "c1".into(), network: "bridge".into(), host_if: "vetheth0".into() });
        assert_eq!(s.containers["c1"].endpoints.keys().collect::<Vec<_>>(), vec!["labnet"]);
        apply(&mut s, &Event::NetworkRemoved { id: "n1".into(), name: "labnet".into() });
        assert!(s.networks.is_empty());
    }

    #[test]
    fn a_build_collects_its_steps_and_layers_and_ends_with_its_image() {
        let mut s = State::default();
        apply(&mut s, &Event::BuildStarted { build: "b1".into(), tags: vec!["app:1".into()], steps: 3 });
        apply(
            &mut s,
            &Event::BuildStep {
                build: "b1".into(),
                step: 2,
                instruction: "COPY . .".into(),
                line: 2,
                cached: false,
                image: "sha256:x".into(),
            },
        );
        apply(
            &mut s,
            &Event::BuildLayer { build: "b1".into(), step: 2, chain_id: "sha256:c".into(), diff_id: "sha256:d".into(), size: 42 },
        );
        apply(
            &mut s,
            &Event::BuildStep { build: "b1".into(), step: 3, instruction: "CMD x".into(), line: 3, cached: true, image: "sha256:y".into() },
        );
        apply(&mut s, &Event::BuildFinished { build: "b1".into(), image: Some("sha256:y".into()), error: None });
        let b = &s.builds["b1"];
        assert_eq!(b.steps.len(), 2);
        assert_eq!(b.steps[0].layer, Some(("sha256:d".to_string(), 42)));
        assert!(b.steps[1].cached && b.steps[1].layer.is_none());
        assert!(b.finished && b.image.as_deref() == Some("sha256:y"));
    }

    #[test]
    fn observed_links_keep_their_addresses_and_rules_are_reconciled() {
        let mut s = State::default();
        let link = |name: &str| Event::LinkObserved {
            index: 7,
            name: name.into(),
            kind: "veth".into(),
            master: None,
            up: true,
            link_netnsid: None,
        };
        apply(&mut s, &link("demo0"));
        apply(&mut s, &Event::AddressObserved { link: "demo0".into(), address: "10.9.9.1".into(), prefix: 24 });
        apply(&mut s, &link("renamed0"));
        assert_eq!(s.links.keys().collect::<Vec<_>>(), vec!["renamed0"]);
        assert_eq!(s.links["renamed0"].addresses, vec!["10.9.9.1/24"]);
        apply(&mut s, &Event::LinkGone { index: 7, name: "renamed0".into() });
        assert!(s.links.is_empty());
        apply(&mut s, &Event::RuleAdded { table: "nat".into(), rule: "-A DOCKER -i docker0 -j RETURN".into() });
        assert!(s.rules_missing_from_kernel().is_empty(), "just added: not missing before the observer looks");
        apply(&mut s, &Event::KernelRuleGone { table: "nat".into(), rule: "-A DOCKER -i docker0 -j RETURN".into() });
        apply(&mut s, &Event::KernelRuleObserved { table: "filter".into(), rule: "-A INPUT -p tcp -j ACCEPT".into() });
        assert_eq!(s.rules_missing_from_kernel(), vec![("nat".to_string(), "-A DOCKER -i docker0 -j RETURN".to_string())]);
        assert_eq!(s.rules_by_others(), vec![("filter".to_string(), "-A INPUT -p tcp -j ACCEPT".to_string())]);
    }

    #[test]
    fn stopping_before_any_start_leaves_state_empty() {
        let mut s = State::default();
        apply(&mut s, &Event::DaemonStopping);
        assert_eq!(s, State::default());
    }

    #[test]
    fn envelope_round_trips_through_json_with_a_type_tag() {
        let env = Envelope::new(7, 1_767_225_600_000, started());
        let json = serde_json::to_string(&env).unwrap_or_default();
        assert!(json.contains(r#""type":"daemon_started""#), "{json}");
        assert!(json.contains(&format!(r#""v":{SCHEMA_VERSION}"#)), "{json}");
        let back: Envelope = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, env);
    }
}
