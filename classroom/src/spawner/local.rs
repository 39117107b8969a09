//! The `local` spawner: a node1 per learner on this machine.
//!
//! A node is a process tree in its own namespaces — network, mount, PID,
//! UTS (hostname `node1`) and IPC — and its own cgroup (CPU, memory and
//! pids caps: v1 controllers where the host mounts them, v2 where it has a
//! unified hierarchy), started by `unshare`. Its PID 1 is the node's own
//! berthd (data root, exec root, socket, docker0, lab-home and token file
//! all under the node's dir), beside Debian's docker-registry on the node's
//! loopback serving the fixture images read-only (berthd's mirror).
//!
//! The hub reaches the node's lab server over a veth pair: `<prefix>N` on
//! the hub's side (198.19.x.1/30), `eth0` in the node (198.19.x.2/30). No
//! default route leaves the node, and the hub's firewall (chain
//! `BERTH-HUB`) drops whatever a node sends that is not a reply to the hub,
//! and forwards nothing between nodes, so a learner who adds a route of
//! their own still reaches nothing.
//!
//! Inside, the hub's state dir is covered by an empty tmpfs with only the
//! node's own dir put back, `/tmp` and `/dev/shm` are the node's own, and
//! `/proc` shows only the node's processes: nothing of another learner
//! (their data root, recordings, token, overlays, links, rules,
//! processes) is visible. The learner is root in their node, though, on
//! the machine's filesystem: this keeps learners apart, it is not a
//! boundary against a hostile root (the Kubernetes spawner with a runtime
//! class such as Kata is).
//!
//! Removal ends berthd (SIGTERM, so it takes its docker0, rules and
//! container cgroups down itself), then kills the PID namespace's init,
//! which takes every process in the node with it; the network namespace
//! and the mounts die with their last process; then the cgroups, berthd's
//! device cgroups and the node's dir are removed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Node, NodeRequest, Phase, SpawnError, Spawner};

/// The port of a node's lab server.
pub const LAB_PORT: u16 = 8080;
/// The firewall chain that keeps nodes from reaching anything but replies.
pub const FIREWALL_CHAIN: &str = "BERTH-HUB";

/// Caps on one node's cgroup.
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU time per 100 ms period, in ms (100 = one core).
    pub cpu_ms_per_100ms: u32,
    pub pids: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 1 << 30, cpu_ms_per_100ms: 100, pids: 1024 }
    }
}

/// How the local spawner makes nodes.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The hub's state dir; nodes live in `<state>/nodes/<id>`.
    pub state_dir: PathBuf,
    /// The berthd binary each node runs.
    pub berthd: PathBuf,
    /// The built page (Trunk's dist) each node's lab server serves.
    pub page_dir: PathBuf,
    /// The fixture registry's storage (`/var/lib/berth-lab/registry/storage`):
    /// each node serves it read-only on its loopback. None: no registry.
    pub registry_storage: Option<PathBuf>,
    /// Name of the hub's parent cgroup in every hierarchy (starts with `berth`).
    pub cgroup_parent: String,
    /// Uplinks are /30s of 198.19.0.0/16 (or this /16).
    pub subnet: Ipv4Addr,
    /// The hub side of uplink N is `<prefix>N`.
    pub link_prefix: String,
    pub limits: Limits,
    /// The most nodes at once.
    pub max_nodes: usize,
    /// How long a node may take to answer before it is Failed.
    pub ready_timeout: Duration,
}

impl LocalConfig {
    /// Defaults under `state_dir`, named after this process.
    pub fn new(state_dir: PathBuf, berthd: PathBuf, page_dir: PathBuf) -> Self {
        LocalConfig {
            state_dir,
            berthd,
            page_dir,
            registry_storage: None,
            cgroup_parent: format!("berth-hub-{}", std::process::id()),
            subnet: Ipv4Addr::new(198, 19, 0, 0),
            link_prefix: "bhub".into(),
            limits: Limits::default(),
            max_nodes: 200,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// The /30 of uplink `slot`: (hub side, node side).
pub fn uplink_addrs(subnet: Ipv4Addr, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(subnet) + slot * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// The node side's MAC address on uplink `slot` (locally administered).
pub fn node_mac(slot: u32) -> String {
    format!("02:62:c6:13:{:02x}:{:02x}", (slot >> 8) & 0xff, slot & 0xff)
}

/// The cgroup hierarchies this process can write to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// cgroup2: the unified hierarchy (hybrid hosts) or the only one.
    pub v2: Option<PathBuf>,
    /// Whether the v2 hierarchy holds the controllers (a pure v2 host).
    pub v2_controllers: bool,
    /// v1 hierarchies holding cpu, memory or pids: (controller, mount).
    pub v1: Vec<(String, PathBuf)>,
}

impl Hierarchies {
    /// Reads them from a mountinfo text; `reachable` says whether a mount
    /// point can be used here (a fresh /sys covers the host's).
    pub fn from_mountinfo(mountinfo: &str, reachable: impl Fn(&Path, &str) -> bool) -> Self {
        let mut h = Hierarchies::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else { continue };
            let mut post = post.split_whitespace();
            let (Some(fstype), Some(_src), Some(opts)) = (post.next(), post.next(), post.next()) else { continue };
            let Some(mp) = pre.split_whitespace().nth(4) else { continue };
            let mp = PathBuf::from(mp.replace("\\040", " "));
            match fstype {
                "cgroup2" if h.v2.is_none() && reachable(&mp, "cgroup.procs") => {
                    h.v2_controllers = reachable(&mp, "cgroup.controllers")
                        && fs::read_to_string(mp.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
                    h.v2 = Some(mp);
                }
                "cgroup" => {
                    for ctrl in ["cpu", "memory", "pids"] {
                        if opts.split(',').any(|o| o == ctrl) && !h.v1.iter().any(|(c, _)| c == ctrl) && reachable(&mp, "cgroup.procs") {
                            h.v1.push((ctrl.to_string(), mp.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// This process's hierarchies.
    pub fn detect() -> Self {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_mountinfo(&mi, |mp, file| mp.join(file).exists())
    }

    /// The files to write for a node's caps: (hierarchy root, file, value).
    /// v2 where it holds the controllers, else v1's.
    pub fn limit_writes(&self, l: &Limits) -> Vec<(PathBuf, &'static str, String)> {
        let mut w = Vec::new();
        if self.v2_controllers {
            if let Some(v2) = &self.v2 {
                w.push((v2.clone(), "memory.max", l.memory_bytes.to_string()));
                w.push((v2.clone(), "cpu.max", format!("{} 100000", l.cpu_ms_per_100ms * 1000)));
                w.push((v2.clone(), "pids.max", l.pids.to_string()));
            }
            return w;
        }
        for (ctrl, root) in &self.v1 {
            match ctrl.as_str() {
                "memory" => w.push((root.clone(), "memory.limit_in_bytes", l.memory_bytes.to_string())),
                "cpu" => {
                    w.push((root.clone(), "cpu.cfs_period_us", "100000".into()));
                    w.push((root.clone(), "cpu.cfs_quota_us", (l.cpu_ms_per_100ms * 1000).to_string()));
                }
                "pids" => w.push((root.clone(), "pids.max", l.pids.to_string())),
                _ => {}
            }
        }
        w
    }

    /// Every hierarchy root a node gets a cgroup in (each once).
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut r: Vec<PathBuf> = self.v2.iter().cloned().collect();
        for (_, p) in &self.v1 {
            if !r.contains(p) {
                r.push(p.clone());
            }
        }
        r
    }
}

/// One node the spawner made.
#[derive(Debug)]
struct Entry {
    node: Node,
    slot: u32,
    dir: PathBuf,
    /// `sh` → `unshare`: waits for the node's init.
    child: Option<Child>,
    /// The node's init (berthd) as this machine numbers it.
    init_pid: i32,
    cgroups: Vec<PathBuf>,
}

/// Makes learners' nodes on this machine (see the module's doc).
#[derive(Debug, Clone)]
pub struct LocalSpawner {
    cfg: Arc<LocalConfig>,
    cgroups: Arc<Hierarchies>,
    nodes: Arc<Mutex<HashMap<String, Entry>>>,
}

fn sh(cmd: &str, args: &[&str]) -> Result<String, SpawnError> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().map_err(|e| SpawnError::Backend(format!("running {cmd}: {e}")))?;
    if !out.status.success() {
        return Err(SpawnError::Backend(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |e| SpawnError::Backend(format!("{what}: {e}"))
}

/// The script the node's init runs: it waits for the hub's `go` (its
/// uplink is in place then), names the node, sets its links up, makes its
/// private mounts, starts the registry and becomes berthd.
const NODE_SCRIPT: &str = r#"set -eu
read -r go
[ "$go" = go ] || exit 1
echo node1 > /proc/sys/kernel/hostname
ip link set lo up
ip addr add "$NODE_IP/30" dev eth0
ip link set eth0 up
mount -t sysfs sysfs /sys
# The hub's state (its token, the other learners' nodes) is covered; only
# this node's own dir is put back.
mount --bind "$NODE_DIR" /mnt
mount -t tmpfs -o mode=0755,size=1m berth-hub "$HUB_STATE"
mkdir -p "$NODE_DIR"
mount --move /mnt "$NODE_DIR"
# berthd and the page stay reachable wherever they are (a checkout under
# /tmp is covered next): bound into the node's own dir, read-only.
: > "$NODE_DIR/berthd"
mount --bind "$BERTHD" "$NODE_DIR/berthd"
mkdir -p "$NODE_DIR/page"
mount --bind "$PAGE_DIR" "$NODE_DIR/page"
mount -o remount,bind,ro "$NODE_DIR/page"
BERTHD="$NODE_DIR/berthd" PAGE_DIR="$NODE_DIR/page"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
if [ -n "$BERTH_REGISTRY_STORAGE" ]; then
  mount --bind "$BERTH_REGISTRY_STORAGE" "$BERTH_REGISTRY_STORAGE"
  mount -o remount,bind,ro "$BERTH_REGISTRY_STORAGE"
  REGISTRY_HTTP_ADDR=127.0.0.1:5000 /usr/bin/docker-registry serve "$NODE_DIR/registry.yml" >"$NODE_DIR/registry.log" 2>&1 &
  # Ready (a first pull must not find it still starting) within 5 s.
  i=0
  while [ $i -lt 250 ] && ! curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; do sleep 0.02; i=$((i+1)); done
fi
cd "$NODE_DIR/home"
exec "$BERTHD" --host "unix://$NODE_DIR/docker.sock" --data-root "$NODE_DIR/data" --exec-root "$NODE_DIR/run" \
  --page-addr "$NODE_IP:8080" --page-dir "$PAGE_DIR" --token-file "$NODE_DIR/secret" --lab-home "$NODE_DIR/home" \
  --registry-mirror http://127.0.0.1:5000 --insecure-registry 127.0.0.1:5000 --insecure-registry localhost:5000
"#;

fn registry_config(storage: &Path) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n",
        storage.display()
    )
}

/// The pid of `parent`'s child (unshare's forked init).
fn child_of(parent: i32) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(format!("{secret}\n").as_bytes())
}

/// Asks the node's lab server whether it answers (`GET /api/health`).
fn health(ip: Ipv4Addr, secret: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&(ip, LAB_PORT).into(), Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /api/health HTTP/1.0\r\nHost: {ip}:{LAB_PORT}\r\nAuthorization: Bearer {secret}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200")
}

fn pids_in(cgroup: &Path) -> Vec<i32> {
    fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn alive(pid: i32) -> bool {
    // A zombie is as good as gone.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

impl LocalSpawner {
    pub fn new(cfg: LocalConfig) -> Result<Self, SpawnError> {
        fs::create_dir_all(cfg.state_dir.join("nodes")).map_err(io_err("creating the nodes dir"))?;
        let cgroups = Hierarchies::detect();
        if cgroups.roots().is_empty() {
            tracing::warn!("no cgroup hierarchy reachable: nodes get no CPU, memory or pids caps");
        }
        for root in cgroups.roots() {
            let parent = root.join(&cfg.cgroup_parent);
            fs::create_dir_all(&parent).map_err(io_err(format!("creating cgroup {}", parent.display())))?;
            if cgroups.v2_controllers && Some(&root) == cgroups.v2.as_ref() {
                let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids");
                fs::write(parent.join("cgroup.subtree_control"), "+cpu +memory +pids")
                    .map_err(io_err(format!("enabling controllers in {}", parent.display())))?;
            }
        }
        if let Some(storage) = &cfg.registry_storage {
            if !storage.is_dir() {
                return Err(SpawnError::Backend(format!("{} is missing: run scripts/setup.sh first", storage.display())));
            }
        }
        firewall(&cfg.link_prefix, true)?;
        for id in sweep_stale(&cfg, &cgroups) {
            tracing::warn!(node = %id, "removed a node a hub that was killed left behind");
        }
        Ok(LocalSpawner { cfg: Arc::new(cfg), cgroups: Arc::new(cgroups), nodes: Arc::default() })
    }

    pub fn config(&self) -> &LocalConfig {
        &self.cfg
    }

    /// Removes every node, then the hub's cgroups and firewall (the hub is stopping).
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.nodes.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.remove(&id).await {
                tracing::warn!(node = %id, error = %e, "removing a node at shutdown");
            }
        }
        for root in self.cgroups.roots() {
            let _ = fs::remove_dir(root.join(&self.cfg.cgroup_parent));
        }
        let _ = firewall(&self.cfg.link_prefix, false);
    }

    /// The lowest slot no node of ours holds and whose link is free (asked
    /// of the kernel: /sys may show another network namespace's links).
    fn free_slot(&self, nodes: &HashMap<String, Entry>) -> Option<u32> {
        (0..16000u32).find(|s| {
            !nodes.values().any(|e| e.slot == *s) && sh("ip", &["link", "show", &format!("{}{s}", self.cfg.link_prefix)]).is_err()
        })
    }

    /// Makes the node's dir, cgroups, namespaces and uplink, and starts its
    /// init; returns at once (it becomes Running when its lab server answers).
    fn create(&self, req: &NodeRequest, id: &str, slot: u32) -> Result<Entry, SpawnError> {
        let dir = self.cfg.state_dir.join("nodes").join(id);
        let (hub_ip, node_ip) = uplink_addrs(self.cfg.subnet, slot);
        let host_if = format!("{}{slot}", self.cfg.link_prefix);
        let mut e = Entry {
            node: Node {
                id: id.to_string(),
                class: req.class.clone(),
                learner: req.learner.clone(),
                phase: Phase::Pending,
                addr: Some(format!("{node_ip}:{LAB_PORT}")),
                reason: None,
                labels: BTreeMap::new(),
                created: SystemTime::now(),
            },
            slot,
            dir: dir.clone(),
            child: None,
            init_pid: 0,
            cgroups: Vec::new(),
        };
        let r = self.build(&mut e, req, &hub_ip, &node_ip, &host_if);
        if let Err(err) = r {
            teardown(&self.cfg, &mut e);
            return Err(err);
        }
        Ok(e)
    }

    fn build(&self, e: &mut Entry, req: &NodeRequest, hub_ip: &Ipv4Addr, node_ip: &Ipv4Addr, host_if: &str) -> Result<(), SpawnError> {
        let dir = e.dir.clone();
        for sub in ["data", "run", "home"] {
            fs::create_dir_all(dir.join(sub)).map_err(io_err(format!("creating {}", dir.join(sub).display())))?;
        }
        write_secret(&dir.join("secret"), &req.secret).map_err(io_err("writing the node's secret"))?;
        if let Some(storage) = &self.cfg.registry_storage {
            fs::write(dir.join("registry.yml"), registry_config(storage)).map_err(io_err("writing the registry config"))?;
        }
        // Its cgroups, with their caps.
        for root in self.cgroups.roots() {
            let cg = root.join(&self.cfg.cgroup_parent).join(&e.node.id);
            fs::create_dir_all(&cg).map_err(io_err(format!("creating cgroup {}", cg.display())))?;
            e.cgroups.push(cg);
        }
        for (root, file, value) in self.cgroups.limit_writes(&self.cfg.limits) {
            let path = root.join(&self.cfg.cgroup_parent).join(&e.node.id).join(file);
            fs::write(&path, &value).map_err(io_err(format!("writing {value} to {}", path.display())))?;
        }
        let join: String = e.cgroups.iter().map(|c| format!("echo $$ > '{}/cgroup.procs' && ", c.display())).collect();
        let log = fs::File::create(dir.join("node.log")).map_err(io_err("creating the node's log"))?;
        let hub_state = self.cfg.state_dir.canonicalize().map_err(io_err("the state dir"))?;
        let mut child = Command::new("sh")
            .args(["-c", &format!("{join}exec \"$@\""), "sh"])
            .args(["unshare", "--net", "--mount", "--pid", "--uts", "--ipc", "--fork", "--mount-proc", "--propagation", "private"])
            .args(["--", "sh", "-c", NODE_SCRIPT])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", dir.join("home"))
            .env("LANG", "C.UTF-8")
            .env("NODE_IP", node_ip.to_string())
            .env("NODE_DIR", hub_state.join("nodes").join(&e.node.id))
            .env("HUB_STATE", &hub_state)
            .env("BERTHD", &self.cfg.berthd)
            .env("PAGE_DIR", &self.cfg.page_dir)
            .env("BERTH_REGISTRY_STORAGE", self.cfg.registry_storage.as_deref().unwrap_or(Path::new("")))
            .env("BERTH_LOG", std::env::var("BERTH_NODE_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(io_err("the node's log"))?)
            .stderr(log)
            .spawn()
            .map_err(io_err("starting unshare"))?;
        let unshare_pid = child.id() as i32;
        e.child = Some(child);
        let start = Instant::now();
        let init = loop {
            if let Some(p) = child_of(unshare_pid) {
                break p;
            }
            if let Some(c) = e.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(SpawnError::Backend(format!("unshare exited ({st}): {}", log_tail(&dir))));
                }
            }
            if start.elapsed() > Duration::from_secs(5) {
                return Err(SpawnError::Backend("the node's namespaces did not come up".into()));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        e.init_pid = init;
        // Its uplink: made with the node's end already inside, its MAC
        // known to the hub's side (permanent neighbour): the hub's first
        // look, before the node's end is up, would otherwise fail ARP and
        // leave the address unreachable for a second.
        let mac = node_mac(e.slot);
        sh("ip", &["link", "add", host_if, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &init.to_string()])?;
        sh("ip", &["addr", "add", &format!("{hub_ip}/30"), "dev", host_if])?;
        sh("ip", &["link", "set", host_if, "up"])?;
        sh("ip", &["neigh", "replace", &node_ip.to_string(), "lladdr", &mac, "dev", host_if, "nud", "permanent"])?;
        child = e.child.take().ok_or_else(|| SpawnError::Backend("lost the node's process".into()))?;
        let went = child.stdin.take().map(|mut s| s.write_all(b"go\n"));
        e.child = Some(child);
        if !matches!(went, Some(Ok(()))) {
            return Err(SpawnError::Backend(format!("the node's init is gone: {}", log_tail(&dir))));
        }
        let labels = &mut e.node.labels;
        labels.insert("pid".into(), init.to_string());
        labels.insert("uplink".into(), host_if.to_string());
        labels.insert("hub_ip".into(), hub_ip.to_string());
        labels.insert("dir".into(), dir.display().to_string());
        labels.insert("socket".into(), hub_state.join("nodes").join(&e.node.id).join("docker.sock").display().to_string());
        if let Some(cg) = e.cgroups.first() {
            labels.insert("cgroup".into(), cg.display().to_string());
        }
        Ok(())
    }

    /// Follows a new node until its lab server answers (Running), its init
    /// exits or the time is up (Failed).
    fn watch(&self, id: String, ip: Ipv4Addr, secret: String) {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            loop {
                let up = health(ip, &secret);
                let mut nodes = me.nodes.lock().unwrap_or_else(|e| e.into_inner());
                let Some(e) = nodes.get_mut(&id) else { return };
                if e.node.phase != Phase::Pending {
                    return;
                }
                if up {
                    e.node.phase = Phase::Running;
                    e.node.labels.insert("ready_ms".into(), start.elapsed().as_millis().to_string());
                    tracing::info!(node = %id, ms = start.elapsed().as_millis() as u64, "node ready");
                    return;
                }
                let exited = e.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if exited.is_some() || start.elapsed() > me.cfg.ready_timeout {
                    e.node.phase = Phase::Failed;
                    let why = match exited {
                        Some(st) => format!("node1 exited ({st}) at start"),
                        None => format!("node1 did not answer within {:?}", me.cfg.ready_timeout),
                    };
                    e.node.reason = Some(format!("{why}: {}", log_tail(&e.dir)));
                    tracing::warn!(node = %id, reason = ?e.node.reason, "node failed");
                    return;
                }
                drop(nodes);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    }
}

fn log_tail(dir: &Path) -> String {
    let t = fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    let lines: Vec<&str> = t.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Adds (or removes) the hub's firewall: nodes' uplinks may send only
/// replies to the hub, and nothing is forwarded from or to them.
pub fn firewall(prefix: &str, add: bool) -> Result<(), SpawnError> {
    let iface = format!("{prefix}+");
    let jumps: [[&str; 4]; 3] =
        [["INPUT", "-i", &iface, FIREWALL_CHAIN], ["FORWARD", "-i", &iface, "DROP"], ["FORWARD", "-o", &iface, "DROP"]];
    // Remove ours first (a hub that was killed left them): idempotent.
    for j in &jumps {
        while sh("iptables", &["-w", "-D", j[0], j[1], j[2], "-j", j[3]]).is_ok() {}
    }
    let _ = sh("iptables", &["-w", "-F", FIREWALL_CHAIN]);
    let _ = sh("iptables", &["-w", "-X", FIREWALL_CHAIN]);
    if !add {
        return Ok(());
    }
    sh("iptables", &["-w", "-N", FIREWALL_CHAIN])?;
    sh("iptables", &["-w", "-A", FIREWALL_CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"])?;
    sh("iptables", &["-w", "-A", FIREWALL_CHAIN, "-j", "DROP"])?;
    for j in &jumps {
        sh("iptables", &["-w", "-I", j[0], j[1], j[2], "-j", j[3]])?;
    }
    Ok(())
}

/// Removes the nodes a hub that was killed left in the state dir (one hub
/// a state dir): their processes (by their cgroups, under any `berth-hub…`
/// parent), cgroups, berthd's device cgroups and dirs; and the empty
/// parents of hubs that are gone. Returns the nodes removed.
fn sweep_stale(cfg: &LocalConfig, cgroups: &Hierarchies) -> Vec<String> {
    let Ok(dir) = fs::read_dir(cfg.state_dir.join("nodes")) else { return Vec::new() };
    let ids: Vec<String> = dir.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let parents: Vec<PathBuf> = cgroups
        .roots()
        .iter()
        .flat_map(|r| fs::read_dir(r).into_iter().flatten().flatten().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("berth-hub")) && p.is_dir())
        .collect();
    for id in &ids {
        let groups: Vec<PathBuf> = parents.iter().map(|p| p.join(id)).filter(|g| g.is_dir()).collect();
        let mut e = Entry {
            node: Node {
                id: id.clone(),
                class: String::new(),
                learner: String::new(),
                phase: Phase::Gone,
                addr: None,
                reason: None,
                labels: BTreeMap::new(),
                created: SystemTime::now(),
            },
            slot: u32::MAX,
            dir: cfg.state_dir.join("nodes").join(id),
            child: None,
            init_pid: 0,
            cgroups: groups,
        };
        for p in teardown(cfg, &mut e) {
            tracing::warn!(node = %id, problem = %p, "sweeping a stale node");
        }
    }
    // Parents of hubs that are gone, now empty.
    for p in parents {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let pid = name.strip_prefix("berth-hub-").and_then(|n| n.parse::<i32>().ok());
        if name != cfg.cgroup_parent && pid.is_some_and(|pid| !alive(pid)) {
            let _ = fs::remove_dir(&p);
        }
    }
    ids
}

/// Ends a node and removes everything of it (also a half-made one).
fn teardown(cfg: &LocalConfig, e: &mut Entry) -> Vec<String> {
    use nix::sys::signal::Signal;
    let mut problems = Vec::new();
    // berthd first, gracefully: it removes its containers' cgroups itself.
    if e.init_pid > 0 && alive(e.init_pid) {
        kill(e.init_pid, Signal::SIGTERM);
        let start = Instant::now();
        while alive(e.init_pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Then everything: the PID namespace's init takes every process in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if e.init_pid > 0 {
            kill(e.init_pid, Signal::SIGKILL);
        }
        if let Some(c) = e.child.as_mut() {
            let _ = c.kill();
            let _ = c.try_wait();
        }
        let mut left: Vec<i32> = e.cgroups.iter().flat_map(|c| pids_in(c)).collect();
        left.sort_unstable();
        left.dedup();
        for p in &left {
            kill(*p, Signal::SIGKILL);
        }
        if left.is_empty() && (e.init_pid == 0 || !alive(e.init_pid)) {
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!("processes still alive: {left:?}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(mut c) = e.child.take() {
        let _ = c.wait();
    }
    // The netns goes with its last process, and the uplink with it — but
    // the kernel tears namespaces down later: the hub's end goes now.
    let host_if = format!("{}{}", cfg.link_prefix, e.slot);
    if e.init_pid > 0 {
        let _ = sh("ip", &["link", "del", &host_if]);
    }
    for cg in e.cgroups.drain(..) {
        let start = Instant::now();
        while cg.exists() && fs::remove_dir(&cg).is_err() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if cg.exists() {
            problems.push(format!("cgroup {} not removed", cg.display()));
        }
    }
    // berthd's device cgroups, if it could not remove them itself.
    let ours = berth_backend::runtime::cgroups::parent_name(&e.dir.join("run"));
    if let Ok(ctrls) = fs::read_dir("/sys/fs/cgroup") {
        for ctrl in ctrls.flatten() {
            let p = ctrl.path().join(&ours);
            if p.is_dir() {
                if let Ok(children) = fs::read_dir(&p) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = fs::remove_dir(c.path());
                    }
                }
                if fs::remove_dir(&p).is_err() {
                    problems.push(format!("cgroup {} not removed", p.display()));
                }
            }
        }
    }
    if e.dir.exists() {
        if let Err(err) = fs::remove_dir_all(&e.dir) {
            problems.push(format!("removing {}: {err}", e.dir.display()));
        }
    }
    problems
}

#[async_trait::async_trait]
impl Spawner for LocalSpawner {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn spawn(&self, req: &NodeRequest) -> Result<Node, SpawnError> {
        let (id, slot) = {
            let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = nodes.values().find(|e| e.node.class == req.class && e.node.learner == req.learner) {
                return Ok(e.node.clone());
            }
            if nodes.len() >= self.cfg.max_nodes {
                return Err(SpawnError::Capacity(format!("this machine runs {} nodes at most", self.cfg.max_nodes)));
            }
            let slot = self.free_slot(&nodes).ok_or_else(|| SpawnError::Capacity("no free uplink".into()))?;
            let id = format!("n{slot}-{}", &berth_backend::lab::auth::random_hex(3));
            // Reserve the slot while the node is made.
            let placeholder = Entry {
                node: Node {
                    id: id.clone(),
                    class: req.class.clone(),
                    learner: req.learner.clone(),
                    phase: Phase::Pending,
                    addr: None,
                    reason: None,
                    labels: BTreeMap::new(),
                    created: SystemTime::now(),
                },
                slot,
                dir: PathBuf::new(),
                child: None,
                init_pid: 0,
                cgroups: Vec::new(),
            };
            drop(nodes);
            self.nodes.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), placeholder);
            (id, slot)
        };
        let me = self.clone();
        let req2 = req.clone();
        let id2 = id.clone();
        let made = tokio::task::spawn_blocking(move || me.create(&req2, &id2, slot))
            .await
            .map_err(|e| SpawnError::Backend(format!("the spawner's task: {e}")))?;
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        match made {
            Ok(entry) => {
                let node = entry.node.clone();
                let ip = uplink_addrs(self.cfg.subnet, slot).1;
                if nodes.contains_key(&id) {
                    nodes.insert(id.clone(), entry);
                    drop(nodes);
                    self.watch(id, ip, req.secret.clone());
                } else {
                    // Removed while it was being made.
                    drop(nodes);
                    let cfg = self.cfg.clone();
                    let mut entry = entry;
                    tokio::task::spawn_blocking(move || teardown(&cfg, &mut entry));
                    return Err(SpawnError::NotFound(id));
                }
                Ok(node)
            }
            Err(e) => {
                nodes.remove(&id);
                Err(e)
            }
        }
    }

    async fn status(&self, id: &str) -> Result<Node, SpawnError> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes.get(id).map(|e| e.node.clone()).ok_or_else(|| SpawnError::NotFound(id.to_string()))
    }

    async fn list(&self) -> Result<Vec<Node>, SpawnError> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(nodes.values().map(|e| e.node.clone()).collect())
    }

    async fn remove(&self, id: &str) -> Result<(), SpawnError> {
        let Some(mut entry) = self.nodes.lock().unwrap_or_else(|e| e.into_inner()).remove(id) else { return Ok(()) };
        if entry.dir.as_os_str().is_empty() {
            // Still being made: `spawn` tears it down when it finds it gone.
            return Ok(());
        }
        let cfg = self.cfg.clone();
        let problems = tokio::task::spawn_blocking(move || teardown(&cfg, &mut entry))
            .await
            .map_err(|e| SpawnError::Backend(format!("the spawner's task: {e}")))?;
        if problems.is_empty() {
            tracing::info!(node = %id, "node removed");
            Ok(())
        } else {
            Err(SpawnError::Backend(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_uplink_is_its_own_slash_30() {
        let s = Ipv4Addr::new(198, 19, 0, 0);
        assert_eq!(uplink_addrs(s, 0), (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2)));
        assert_eq!(uplink_addrs(s, 1), (Ipv4Addr::new(198, 19, 0, 5), Ipv4Addr::new(198, 19, 0, 6)));
        assert_eq!(uplink_addrs(s, 64), (Ipv4Addr::new(198, 19, 1, 1), Ipv4Addr::new(198, 19, 1, 2)));
    }

    const HYBRID: &str = "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory\n\
        36 25 0:31 / /sys/fs/cgroup/pids rw,relatime shared:14 - cgroup cgroup rw,pids\n\
        37 25 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
        38 25 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

    #[test]
    fn a_hybrid_host_caps_with_v1_controllers_and_tracks_with_the_unified_hierarchy() {
        let h = Hierarchies::from_mountinfo(HYBRID, |_, f| f == "cgroup.procs");
        assert_eq!(h.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(!h.v2_controllers);
        let l = Limits { memory_bytes: 512 << 20, cpu_ms_per_100ms: 50, pids: 300 };
        let w: Vec<String> = h.limit_writes(&l).into_iter().map(|(r, f, v)| format!("{}/{f}={v}", r.display())).collect();
        assert_eq!(
            w,
            [
                "/sys/fs/cgroup/memory/memory.limit_in_bytes=536870912",
                "/sys/fs/cgroup/pids/pids.max=300",
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us=100000",
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us=50000",
            ]
        );
        assert_eq!(h.roots().len(), 4);
    }

    #[test]
    fn a_covered_hierarchy_is_not_used() {
        let h = Hierarchies::from_mountinfo(HYBRID, |mp, _| !mp.ends_with("pids"));
        assert!(h.v1.iter().all(|(c, _)| c != "pids"));
    }

    #[test]
    fn a_pure_v2_host_caps_in_the_one_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let mi = format!("30 25 0:26 / {} rw - cgroup2 cgroup2 rw\n", dir.path().display());
        let h = Hierarchies::from_mountinfo(&mi, |mp, f| mp.join(f).exists() || f == "cgroup.procs");
        assert!(h.v2_controllers);
        let w: Vec<(&str, String)> = h.limit_writes(&Limits::default()).into_iter().map(|(_, f, v)| (f, v)).collect();
        assert_eq!(w, [("memory.max", "1073741824".into()), ("cpu.max", "100000 100000".into()), ("pids.max", "1024".into())]);
    }
}
