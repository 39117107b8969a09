//! Events: every state change the engine makes and everything it observes.

use serde::{Deserialize, Serialize};

use crate::container::RwLayer;

/// Version of the event schema. Bumped on any incompatible change, so that a
/// recording or a stream from another berth version is refused, not misread.
pub const SCHEMA_VERSION: u32 = 2;

/// Whether berthd runs real containers or only serves the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineMode {
    /// Root with namespaces available: containers are real.
    Live,
    /// The daemon cannot run containers here (not root, no namespaces); the
    /// page falls back to the simulator.
    Unavailable,
}

/// One change, as the engine made it or the kernel showed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// berthd came up and serves the Engine API.
    DaemonStarted {
        version: String,
        api_version: String,
        root: String,
        socket: String,
        engine: EngineMode,
        /// Why the engine is unavailable, when it is.
        reason: Option<String>,
    },
    /// berthd is shutting down cleanly.
    DaemonStopping,
    /// A layer was unpacked into its own overlay2 dir (stored once, shared by
    /// every image and container above it).
    LayerAdded { chain_id: String, diff_id: String, dir: String, size: u64 },
    /// A layer no image uses any more was deleted.
    LayerRemoved { chain_id: String },
    /// An image is in the store: its config digest, tags and layer stack
    /// (chain IDs, bottom first).
    ImageAdded { id: String, repo_tags: Vec<String>, repo_digests: Vec<String>, layers: Vec<String>, size: u64 },
    /// A tag now points at this image.
    ImageTagged { id: String, tag: String },
    /// A tag was removed from this image.
    ImageUntagged { id: String, tag: String },
    /// The image was deleted.
    ImageRemoved { id: String },
    /// A container was created: its name, image, command, layer dirs and
    /// the volumes and bind mounts it gets.
    ContainerCreated {
        id: String,
        name: String,
        image: String,
        image_id: String,
        command: Vec<String>,
        layer: RwLayer,
        #[serde(default)]
        mounts: Vec<Mount>,
        /// Its labels (its image's and its own), which Docker's events carry.
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
    },
    /// The container's overlay was mounted at its merged dir.
    OverlayMounted { id: String, merged: String, options: String },
    /// The overlay was unmounted.
    OverlayUnmounted { id: String, merged: String },
    /// New namespaces were made for the container's process (their kinds,
    /// e.g. "mnt", "pid", "net").
    NamespacesCreated { id: String, pid: i32, kinds: Vec<String> },
    /// The container's PID 1 runs (pid as the host sees it).
    ContainerStarted { id: String, pid: i32 },
    /// A process was started in a running container (`docker exec`).
    ProcessExecd { id: String, exec_id: String, pid: i32, command: Vec<String> },
    /// An exec'd process ended.
    ProcessExited { id: String, exec_id: String, exit_code: i32 },
    /// PID 1 ended: the container stopped.
    ContainerExited { id: String, exit_code: i32 },
    /// The container and its layer are gone.
    ContainerRemoved { id: String },
    /// The bridge is up with its gateway address (created, or adopted).
    BridgeUp { name: String, address: String, prefix: u8, created: bool },
    /// The bridge was deleted (its network was removed).
    BridgeDown { name: String },
    /// A user-defined network was created (or found again at daemon start):
    /// its own bridge and subnet.
    NetworkCreated { id: String, name: String, driver: String, bridge: String, subnet: String, gateway: String },
    /// The network and its bridge are gone.
    NetworkRemoved { id: String, name: String },
    /// A container's network namespace was joined to a network's bridge by a
    /// veth pair: `host_if` is the bridge port, `ifname` (eth0, eth1…) its
    /// end inside, with `ip`/`mac`.
    EndpointAttached {
        id: String,
        network: String,
        bridge: String,
        host_if: String,
        ifname: String,
        ip: String,
        prefix: u8,
        mac: String,
        gateway: String,
        netns: String,
        /// On an `--ipv6` network: its IPv6 address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip6: Option<String>,
    },
    /// The veth pair is gone and the address released.
    EndpointDetached { id: String, network: String, host_if: String },
    /// A netfilter rule was added (`rule` as `iptables -S` prints it).
    RuleAdded { table: String, rule: String },
    /// A netfilter rule was deleted.
    RuleRemoved { table: String, rule: String },
    /// A container port is published on the host (DNAT + userland proxy).
    PortPublished { id: String, proto: String, host_ip: String, host_port: u16, container_ip: String, container_port: u16 },
    /// The port is no longer published.
    PortUnpublished { id: String, proto: String, host_port: u16 },
    /// A volume exists: its data dir under the daemon root (`mountpoint`).
    /// Anonymous volumes are named by a random ID.
    VolumeCreated { name: String, mountpoint: String, anonymous: bool },
    /// An empty volume was filled from the image's files at its mount path
    /// (Docker's copy-in), the first time a container mounted it.
    VolumePopulated { name: String, container: String, path: String, files: u64 },
    /// The volume and its data are gone.
    VolumeRemoved { name: String },
    /// `docker build` began: its tags and number of steps.
    BuildStarted { build: String, tags: Vec<String>, steps: usize },
    /// A build step ran (or was taken from the cache): its instruction as
    /// the Dockerfile has it, and the image it produced.
    BuildStep { build: String, step: usize, instruction: String, line: usize, cached: bool, image: String },
    /// A build step's files became a new layer.
    BuildLayer { build: String, step: usize, chain_id: String, diff_id: String, size: u64 },
    /// The build ended: the image it made, or why it failed.
    BuildFinished { build: String, image: Option<String>, error: Option<String> },
    /// The observer saw a link in node1's network namespace (at start, or as
    /// it appeared or changed — whoever made it: berth or `ip link` by hand).
    LinkObserved { index: u32, name: String, kind: String, master: Option<String>, up: bool, link_netnsid: Option<i32> },
    /// A link disappeared.
    LinkGone { index: u32, name: String },
    /// An address appeared on a link.
    AddressObserved { link: String, address: String, prefix: u8 },
    /// An address was removed from a link.
    AddressGone { link: String, address: String, prefix: u8 },
    /// A route of node1's main table appeared (`dst` is "default" or a CIDR).
    RouteObserved { dst: String, gateway: Option<String>, dev: Option<String> },
    /// The route went away.
    RouteGone { dst: String, gateway: Option<String>, dev: Option<String> },
    /// A mount appeared in berthd's mount namespace (overlays, namespace
    /// binds, or a learner's `mount`).
    MountObserved { target: String, fstype: String, source: String },
    /// A mount went away.
    MountGone { target: String },
    /// The netfilter ruleset holds this rule (`iptables -S` form), whoever
    /// added it.
    KernelRuleObserved { table: String, rule: String },
    /// The rule is no longer in the ruleset.
    KernelRuleGone { table: String, rule: String },
    /// A file under a watched dir (a container's upper dir, an image
    /// layer's diff dir, a volume's data dir) was added, modified or deleted;
    /// `path` is absolute inside that dir ("/usr/share/nginx/html/index.html").
    FileChanged { dir: String, path: String, change: FileChangeKind },
    /// The guided lab's progress (`lab::Lab::tick`): a step started, failed
    /// or completed, or one of its checks passed or failed.
    LabProgress { lab: String, step: String, change: crate::lab::LabChange },
    /// The container was renamed (`docker rename`).
    ContainerRenamed { id: String, name: String },
    /// `docker pause`: every process of the container frozen (it stays
    /// running).
    ContainerPaused { id: String },
    /// `docker unpause`.
    ContainerUnpaused { id: String },
    /// The container's healthcheck says it is now "healthy" or "unhealthy"
    /// (it is "starting" from each start until the first verdict).
    ContainerHealth { id: String, status: String },
    /// A lab shell ran a command line (the shell reports each one at its
    /// next prompt): what the learner typed, as bash's history has it, and
    /// its exit status.
    ShellCommand { shell: String, command: String, exit_code: i32 },
    /// What a client asked of a container that changes nothing by itself,
    /// as Docker's event stream tells it: `kill` (a signal sent, by `docker
    /// kill` or `docker stop`; `signal` is its number), `stop` (a stop
    /// done), `attach`, `top`, `exec_create` (`exec_id` set). The state
    /// changes that follow have their own events.
    ContainerRequest {
        id: String,
        action: String,
        #[serde(default)]
        signal: Option<i32>,
        #[serde(default)]
        exec_id: Option<String>,
        /// exec_create's command.
        #[serde(default)]
        command: Vec<String>,
    },
}

/// How a file changed, as `docker diff` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    Added,
    Modified,
    Deleted,
}

/// A volume or bind mount of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// "volume" or "bind".
    pub kind: String,
    /// The volume's name (empty for a bind mount).
    pub name: String,
    /// The host path mounted: the volume's data dir or the bind source.
    pub source: String,
    /// Where it appears in the container.
    pub destination: String,
    pub readonly: bool,
}

/// An event with its place in the stream: schema version, a sequence number
/// without gaps, and the time it happened (ms since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub seq: u64,
    pub time_ms: u64,
    pub event: Event,
}

impl Envelope {
    pub fn new(seq: u64, time_ms: u64, event: Event) -> Self {
        Envelope { v: SCHEMA_VERSION, seq, time_ms, event }
    }
}
