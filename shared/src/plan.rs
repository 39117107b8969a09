//! Decide, then execute. A verb's effect on the host is decided here, purely
//! from the [`State`], as a [`Plan`]: a list of [`Step`]s, each with the
//! event the state learns once the step is done. A [`Host`] performs steps —
//! berthd's Linux host (the one place with kernel calls), the simulator's
//! host, a recording fake in tests — and [`execute`] runs a plan on one,
//! emitting each done step's event and, for a plan that must happen whole,
//! undoing what was done when a step fails. So the daemon and the simulator
//! run the same decisions, in the same order, with the same texts.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::container::refusal;
use crate::event::Event;
use crate::netfilter::{port_rules, PortMap, Rule};
use crate::state::State;
use crate::{RwLayer, Status};

/// An endpoint as decided: the addresses its network gave it (its IPAM is
/// the network's, claimed before the plan) and its names — all the host
/// needs to make its veth pair, nothing left for the host to decide.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The container.
    pub id: String,
    pub network: String,
    pub bridge: String,
    /// The container's network namespace file.
    pub netns: String,
    /// Its interface inside (eth0, eth1…) and its host end (vethXXXXXXX).
    pub ifname: String,
    pub host_if: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The container's default route goes through this endpoint.
    pub default_route: bool,
    /// On an `--ipv6` network: its address and prefix, and the gateway.
    #[serde(default)]
    pub ip6: Option<(Ipv6Addr, u8)>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// `--link-local-ip`s.
    #[serde(default)]
    pub link_local: Vec<IpAddr>,
}

impl Attachment {
    /// The step that takes this endpoint away, its pair deleted.
    pub fn detach(&self) -> Step {
        Step::DetachEndpoint {
            id: self.id.clone(),
            network: self.network.clone(),
            host_if: self.host_if.clone(),
            ip: self.ip.to_string(),
            ip6: self.ip6.map(|(a, _)| a.to_string()),
            keep_link: false,
        }
    }
}

/// One thing done to the host.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// Nothing to do on the host; the event is told (a container's "die").
    Announce(Event),
    /// Mount the container's overlay at `merged`.
    MountOverlay {
        id: String,
        merged: String,
        options: String,
    },
    /// Unmount it (lazily if it is busy).
    UnmountOverlay {
        id: String,
        merged: String,
    },
    AddRule(Rule),
    DeleteRule(Rule),
    /// The port is the container's on the host (its proxy listens; its
    /// rules are the steps before this one).
    Publish {
        id: String,
        map: PortMap,
    },
    /// The port is free again: its proxy stops.
    Unpublish {
        id: String,
        map: PortMap,
    },
    /// Create the container's network namespace file (its loopback up).
    CreateNetns {
        id: String,
        path: String,
    },
    /// Make the endpoint's veth pair: the host end on its bridge, the other
    /// in the container's namespace with its addresses and routes.
    AttachEndpoint(Attachment),
    /// The endpoint's addresses go back to its network. With `keep_link`
    /// its veth pair is left to go with the network namespace removed
    /// after it (deleting it first waits for an RCU grace period);
    /// otherwise the pair is deleted (a disconnect from one network).
    DetachEndpoint {
        id: String,
        network: String,
        host_if: String,
        ip: String,
        #[serde(default)]
        ip6: Option<String>,
        keep_link: bool,
    },
    /// Remove the container's network namespace file.
    RemoveNetns {
        id: String,
        path: String,
    },
    /// Send `signal` to the container's PID 1 (`pid` as the host sees it).
    Signal {
        id: String,
        pid: i32,
        signal: i32,
    },
    /// Delete a container's files: its read-write layer's dir and the
    /// host's own (`dirs`); the container is gone.
    RemoveContainer {
        id: String,
        dirs: Vec<String>,
    },
    /// Make a volume's data dir (root's, mode 0755).
    CreateVolume {
        name: String,
        mountpoint: String,
        anonymous: bool,
    },
    /// Delete a volume's dir (its data and whatever the host keeps beside).
    RemoveVolume {
        name: String,
        dir: String,
    },
}

/// Why a decision is refused, in Docker's words, and of which kind (the
/// API answers 404 or 409; the simulator prints the words).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    NotFound(String),
    Conflict(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound(m) | Refused::Conflict(m) => f.write_str(m),
        }
    }
}

impl Step {
    /// What the state learns when this step is done.
    pub fn event(&self) -> Option<Event> {
        Some(match self {
            Step::Announce(e) => e.clone(),
            Step::MountOverlay { id, merged, options } => {
                Event::OverlayMounted { id: id.clone(), merged: merged.clone(), options: options.clone() }
            }
            Step::UnmountOverlay { id, merged } => Event::OverlayUnmounted { id: id.clone(), merged: merged.clone() },
            Step::AddRule(r) => Event::RuleAdded { table: r.table.into(), rule: r.text() },
            Step::DeleteRule(r) => Event::RuleRemoved { table: r.table.into(), rule: r.text() },
            Step::Publish { id, map } => Event::PortPublished {
                id: id.clone(),
                proto: map.proto.clone(),
                host_ip: map.host_ip.to_string(),
                host_port: map.host_port,
                container_ip: map.container_ip.to_string(),
                container_port: map.container_port,
            },
            Step::Unpublish { id, map } => Event::PortUnpublished { id: id.clone(), proto: map.proto.clone(), host_port: map.host_port },
            Step::AttachEndpoint(a) => Event::EndpointAttached {
                id: a.id.clone(),
                network: a.network.clone(),
                bridge: a.bridge.clone(),
                host_if: a.host_if.clone(),
                ifname: a.ifname.clone(),
                ip: a.ip.to_string(),
                prefix: a.prefix,
                mac: a.mac.clone(),
                gateway: a.gateway.to_string(),
                netns: a.netns.clone(),
                ip6: a.ip6.map(|(ip, _)| ip.to_string()),
            },
            Step::DetachEndpoint { id, network, host_if, .. } => {
                Event::EndpointDetached { id: id.clone(), network: network.clone(), host_if: host_if.clone() }
            }
            Step::Signal { id, signal, .. } => {
                Event::ContainerRequest { id: id.clone(), action: "kill".into(), signal: Some(*signal), exec_id: None, command: Vec::new() }
            }
            Step::RemoveContainer { id, .. } => Event::ContainerRemoved { id: id.clone() },
            Step::CreateVolume { name, mountpoint, anonymous } => {
                Event::VolumeCreated { name: name.clone(), mountpoint: mountpoint.clone(), anonymous: *anonymous }
            }
            Step::RemoveVolume { name, .. } => Event::VolumeRemoved { name: name.clone() },
            Step::CreateNetns { .. } | Step::RemoveNetns { .. } => return None,
        })
    }

    /// The step that takes this one back, for a plan that fails part way.
    pub fn undo(&self) -> Option<Step> {
        match self {
            Step::MountOverlay { id, merged, .. } => Some(Step::UnmountOverlay { id: id.clone(), merged: merged.clone() }),
            Step::AddRule(r) => Some(Step::DeleteRule(r.clone())),
            Step::Publish { id, map } => Some(Step::Unpublish { id: id.clone(), map: map.clone() }),
            Step::CreateNetns { id, path } => Some(Step::RemoveNetns { id: id.clone(), path: path.clone() }),
            Step::AttachEndpoint(a) => Some(a.detach()),
            Step::CreateVolume { name, mountpoint, .. } => Some(Step::RemoveVolume {
                name: name.clone(),
                dir: mountpoint.rsplit_once('/').map_or(mountpoint.as_str(), |(dir, _)| dir).into(),
            }),
            _ => None,
        }
    }
}

/// How a plan meets a step that fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// All or nothing (setting up): what was done is undone, last first.
    Whole,
    /// As much as can be done (tearing down): every step is tried; one that
    /// fails leaves its object, and its event is not told — the state keeps
    /// saying what the kernel still has.
    BestEffort,
}

/// The steps of one decision and how they meet a failure.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub mode: Mode,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn whole(steps: Vec<Step>) -> Self {
        Plan { mode: Mode::Whole, steps }
    }
    pub fn best_effort(steps: Vec<Step>) -> Self {
        Plan { mode: Mode::BestEffort, steps }
    }

    /// What takes back whatever of this plan was done, last first, as much
    /// as can be (a crash interrupted it: which steps were done is not
    /// known, and undoing one that was not fails harmlessly).
    pub fn undoing(&self) -> Plan {
        Plan::best_effort(self.steps.iter().rev().filter_map(Step::undo).collect())
    }
}

/// What performs steps. A step may wait (on netlink, say): `perform` is
/// async; a host that never waits runs plans with [`execute_now`].
#[allow(async_fn_in_trait)] // hosts are used by their concrete type, whose futures' Send-ness is known
pub trait Host {
    type Error: std::fmt::Display;
    /// Does one step. Returns what the host's own observers report of it at
    /// once (the simulated kernel's echo: a mount seen, a link gone); the
    /// real kernel's observer reports on its own, and returns nothing here.
    async fn perform(&mut self, step: &Step) -> Result<Vec<Event>, Self::Error>;
}

/// A step that failed, with the host's error.
#[derive(Debug)]
pub struct StepFailed<E> {
    pub step: Step,
    pub error: E,
}

/// A plan that did not run through.
#[derive(Debug)]
pub struct Failed<E> {
    /// The steps that failed, in order (for a whole plan: the one that
    /// stopped it, then any of its undoing that failed too).
    pub failures: Vec<StepFailed<E>>,
}

impl<E: std::fmt::Display> std::fmt::Display for Failed<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = self.failures.first().map(|s| s.error.to_string()).unwrap_or_default();
        f.write_str(&first)
    }
}

/// Does one step and tells its event, then the host's echoes.
async fn perform<H: Host, F: FnMut(Event)>(host: &mut H, step: &Step, emit: &mut F) -> Result<(), H::Error> {
    let echoes = host.perform(step).await?;
    if let Some(e) = step.event() {
        emit(e);
    }
    echoes.into_iter().for_each(&mut *emit);
    Ok(())
}

/// Runs `plan` on `host`, telling `emit` each done step's event (and the
/// host's echoes of it). A whole plan stops at its first failure and undoes
/// what it did, last first, telling those events too.
pub async fn execute<H: Host, F: FnMut(Event)>(host: &mut H, plan: &Plan, emit: &mut F) -> Result<(), Failed<H::Error>> {
    let mut failures = Vec::new();
    let mut done: Vec<&Step> = Vec::new();
    for step in &plan.steps {
        match perform(host, step, emit).await {
            Ok(()) => done.push(step),
            Err(error) => {
                failures.push(StepFailed { step: step.clone(), error });
                if plan.mode == Mode::Whole {
                    for undo in done.iter().rev().filter_map(|s| s.undo()) {
                        if let Err(error) = perform(host, &undo, emit).await {
                            failures.push(StepFailed { step: undo, error });
                        }
                    }
                    break;
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failed { failures })
    }
}

/// [`execute`] on a host whose steps never wait (the simulator's, a test's).
///
/// # Panics
/// If a step of `host` does wait: such a host is run with `execute`.
pub fn execute_now<H: Host, F: FnMut(Event)>(host: &mut H, plan: &Plan, emit: &mut F) -> Result<(), Failed<H::Error>> {
    let mut run = std::pin::pin!(execute(host, plan, emit));
    match run.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => panic!("execute_now: a step of this host waited"),
    }
}

// ---- Decisions -------------------------------------------------------------

/// Mounting a container's root: its overlay, with its options.
pub fn mount_root(id: &str, layer: &RwLayer) -> Step {
    Step::MountOverlay { id: id.into(), merged: layer.merged.clone(), options: layer.mount_options() }
}

/// Publishing `maps` of container `id` on `bridge`: each port's three rules
/// (as Docker writes them), then the port.
pub fn publish(id: &str, bridge: &str, maps: &[PortMap]) -> Vec<Step> {
    let mut steps = Vec::new();
    for map in maps {
        steps.extend(port_rules(bridge, map).into_iter().map(Step::AddRule));
        steps.push(Step::Publish { id: id.into(), map: map.clone() });
    }
    steps
}

/// Taking `maps` back: the undoing of each step of their publishing, in
/// the same order (each port's rules, then the port).
pub fn unpublish(id: &str, bridge: &str, maps: &[PortMap]) -> Vec<Step> {
    publish(id, bridge, maps).iter().filter_map(Step::undo).collect()
}

/// Joining a container's networks at its start: its network namespace, an
/// endpoint per network (`endpoints`, their addresses decided), then
/// `ports` published (they lead to the first endpoint's address, on its
/// bridge). All or nothing.
pub fn join(id: &str, netns: &str, endpoints: &[Attachment], ports: &[PortMap]) -> Plan {
    let mut steps = vec![Step::CreateNetns { id: id.into(), path: netns.into() }];
    steps.extend(endpoints.iter().cloned().map(Step::AttachEndpoint));
    if let Some(first) = endpoints.first() {
        steps.extend(publish(id, &first.bridge, ports));
    }
    Plan::whole(steps)
}

/// Joining one more network while running (`docker network connect`).
pub fn connect(endpoint: &Attachment) -> Plan {
    Plan::whole(vec![Step::AttachEndpoint(endpoint.clone())])
}

/// A container's process runs as `pid`: the namespaces it was made with
/// (a network one unless it shares the host's) are told, then its start.
pub fn started(id: &str, pid: i32, own_network: bool) -> Plan {
    let mut kinds: Vec<String> = ["mnt", "uts", "ipc", "pid"].map(String::from).into();
    if own_network {
        kinds.push("net".into());
    }
    Plan::best_effort(vec![
        Step::Announce(Event::NamespacesCreated { id: id.into(), pid, kinds }),
        Step::Announce(Event::ContainerStarted { id: id.into(), pid }),
    ])
}

/// SIGKILL's number (the same on every Linux architecture).
pub const SIGKILL: i32 = 9;

/// `docker kill -s` (and a stop's signals): `signal` to the container's
/// PID 1 as the state knows it. Refused (in Docker's words) unless it runs,
/// and, paused, unless the signal is SIGKILL.
pub fn kill(state: &State, id: &str, signal: i32) -> Result<Plan, Refused> {
    let c = state.containers.get(id).ok_or_else(|| Refused::NotFound(refusal::no_such_container(id)))?;
    let pid = c.pid.filter(|p| *p > 0 && c.status == Status::Running).ok_or_else(|| Refused::Conflict(refusal::kill_not_running(id)))?;
    if c.paused && signal != SIGKILL {
        return Err(Refused::Conflict(refusal::kill_paused(id)));
    }
    Ok(Plan::whole(vec![Step::Signal { id: id.into(), pid, signal }]))
}

/// `docker rm` of a container that does not run (a running one is killed
/// and its run taken apart first): its root if the state says it is still
/// mounted, then its files — its read-write layer's dir and the host's
/// `dirs` (berthd's config and run-time dirs).
pub fn remove(state: &State, id: &str, mut dirs: Vec<String>) -> Plan {
    let mut steps = Vec::new();
    if let Some(c) = state.containers.get(id) {
        if c.mounted {
            steps.push(Step::UnmountOverlay { id: id.into(), merged: c.layer.merged.clone() });
        }
        if let Some((layer, _)) = c.layer.merged.rsplit_once('/') {
            dirs.insert(0, layer.to_string());
        }
    }
    steps.push(Step::RemoveContainer { id: id.into(), dirs });
    Plan::best_effort(steps)
}

/// `docker volume create` (and a `-v` naming a volume there is not yet):
/// its data dir, unless the state has the volume — Docker's create is
/// idempotent, the one there is kept as it is.
pub fn create_volume(state: &State, name: &str, mountpoint: &str, anonymous: bool) -> Plan {
    let steps = if state.volumes.contains_key(name) {
        Vec::new()
    } else {
        vec![Step::CreateVolume { name: name.into(), mountpoint: mountpoint.into(), anonymous }]
    };
    Plan::whole(steps)
}

/// `docker volume rm`: refused for a volume there is not, and for one a
/// container uses (in any state, as Docker); else its dir goes.
pub fn remove_volume(state: &State, name: &str) -> Result<Plan, Refused> {
    let v = state.volumes.get(name).ok_or_else(|| Refused::NotFound(refusal::no_such_volume(name)))?;
    let users: Vec<String> =
        state.containers.values().filter(|c| c.mounts.iter().any(|m| m.kind == "volume" && m.name == name)).map(|c| c.id.clone()).collect();
    if !users.is_empty() {
        return Err(Refused::Conflict(refusal::volume_in_use(name, &users)));
    }
    let dir = v.mountpoint.rsplit_once('/').map_or(v.mountpoint.as_str(), |(dir, _)| dir);
    Ok(Plan::best_effort(vec![Step::RemoveVolume { name: name.into(), dir: dir.into() }]))
}

/// A container's published ports as the state holds them, with the bridge
/// of the endpoint they lead to (none when that endpoint is gone already: a
/// join undone whose port would not be taken back).
fn published(state: &State, id: &str) -> Vec<(Option<String>, PortMap)> {
    let Some(c) = state.containers.get(id) else { return Vec::new() };
    c.ports
        .iter()
        .filter_map(|p| {
            let container_ip: Ipv4Addr = p.container_ip.parse().ok()?;
            let bridge = c.endpoints.values().find(|e| e.ip == p.container_ip).map(|e| e.bridge.clone());
            let map = PortMap {
                proto: p.proto.clone(),
                host_ip: p.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                host_port: p.host_port,
                container_ip,
                container_port: p.container_port,
            };
            Some((bridge, map))
        })
        .collect()
}

/// What ends a container's run, in this order: its ports, its endpoints
/// (their pairs left to its network namespace), the namespace, its root.
/// `netns` is its network namespace file when the state may not know it
/// yet (a start that failed before its first endpoint).
pub fn teardown(state: &State, id: &str, netns: Option<&str>) -> Plan {
    let mut steps = Vec::new();
    for (bridge, map) in published(state, id) {
        match bridge {
            Some(bridge) => steps.extend(unpublish(id, &bridge, std::slice::from_ref(&map))),
            // Its rules went with the endpoint's undoing.
            None => steps.push(Step::Unpublish { id: id.into(), map }),
        }
    }
    let Some(c) = state.containers.get(id) else { return Plan::best_effort(steps) };
    let mut path = netns.map(String::from);
    for ep in c.endpoints.values() {
        path.get_or_insert_with(|| ep.netns.clone());
        steps.push(Step::DetachEndpoint {
            id: id.into(),
            network: ep.network.clone(),
            host_if: ep.host_if.clone(),
            ip: ep.ip.clone(),
            ip6: ep.ip6.clone(),
            keep_link: true,
        });
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        steps.push(Step::RemoveNetns { id: id.into(), path });
    }
    if c.mounted {
        steps.push(Step::UnmountOverlay { id: id.into(), merged: c.layer.merged.clone() });
    }
    Plan::best_effort(steps)
}

/// A container's process ended with `code`: "die" is told first (as
/// Docker's comes before its network is released), then the run is taken
/// apart.
pub fn exit(state: &State, id: &str, code: i32, netns: Option<&str>) -> Plan {
    let mut plan = teardown(state, id, netns);
    plan.steps.insert(0, Step::Announce(Event::ContainerExited { id: id.into(), exit_code: code }));
    plan
}

/// Disconnecting a running container from one network: its ports if they
/// lead to this endpoint, then the endpoint with its veth pair (the
/// namespace stays).
pub fn leave(state: &State, id: &str, network: &str) -> Plan {
    let Some(ep) = state.containers.get(id).and_then(|c| c.endpoints.get(network)) else { return Plan::best_effort(Vec::new()) };
    let mut steps = Vec::new();
    for (bridge, map) in published(state, id).into_iter().filter(|(_, m)| m.container_ip.to_string() == ep.ip) {
        steps.extend(unpublish(id, bridge.as_deref().unwrap_or(&ep.bridge), std::slice::from_ref(&map)));
    }
    steps.push(Step::DetachEndpoint {
        id: id.into(),
        network: network.into(),
        host_if: ep.host_if.clone(),
        ip: ep.ip.clone(),
        ip6: ep.ip6.clone(),
        keep_link: false,
    });
    Plan::best_effort(steps)
}

#[cfg(test)]
mod tests;
