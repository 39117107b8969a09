//! Containers: create, start, stop, remove; their logs, output and stdin.
//!
//! Each container has a directory under `<data-root>/containers/<id>` with
//! its record (`container.json`) and its json-file log, and its own
//! read-write layer under `<data-root>/overlay2/<id>/{diff,work,merged}`.
//! Starting one mounts the overlay (berthd's mount namespace, so MergedDir
//! is visible on the host as with Docker), writes the spec and starts
//! `berthd __berth-init`, which becomes the container.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_shared::container::refusal;
use berth_shared::plan::{self, Plan};
use berth_shared::{Event, RwLayer, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

pub use super::create::{merge_config, mount_requests, port_requests};
pub use super::logs::{read_log, LogLine};
use super::logs::{spawn_pump, JsonLog, LogConfig};
pub use super::record::{Link, NetAttach, Record, RunState};
use super::volumes::{MountPoint, MountRequest, Volumes};
use crate::error::{ApiError, ErrorKind};
use crate::events::EventBus;
use crate::host::LinuxHost;
use crate::image::store::{hex_of, ImageRecord, ImageStore};
use crate::runtime::cgroups::{default_rules, DeviceCgroups};
use crate::runtime::confine::Confinement;
use crate::runtime::process::{launch, LaunchError, Launched};
use crate::runtime::resources::{ResourceCgroups, Sample};
use crate::runtime::spec::{Bind, Confined, ExecSpec, InitSpec, NetNs, MASKED_PATHS, READONLY_PATHS};

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug)]
pub enum Output {
    Data(StreamKind, Vec<u8>),
    /// The process ended and all its output was sent.
    End,
}

/// A live container: its record plus the channels its I/O goes through.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    record: Mutex<Record>,
    /// Output of the current run, for attached clients.
    pub output: broadcast::Sender<Output>,
    /// Where attached clients' input goes (while running with open stdin).
    stdin: Mutex<Option<StdinSink>>,
    /// Bumped when a run's stdin is ready: input typed before the start
    /// waits for it instead of being lost.
    stdin_ready: watch::Sender<u64>,
    /// The PTY master, for resizes.
    pty: Mutex<Option<Arc<OwnedFd>>>,
    /// Bumped on every exit: waiters for "next-exit" watch it.
    exits: watch::Sender<u64>,
    /// Set when removed: waiters for "removed" watch it.
    pub(super) removed: watch::Sender<bool>,
    /// Its embedded DNS server while running on a user-defined network.
    pub(super) dns: Mutex<Option<crate::network::dns::DnsServer>>,
    /// Held across a whole start, stop, kill, restart or removal: concurrent
    /// lifecycle calls on one container run one after the other, and each
    /// sees the state the previous one left.
    pub(super) lifecycle: tokio::sync::Mutex<()>,
    /// The restart policy's last wait.
    backoff: Mutex<Duration>,
}

#[derive(Debug)]
enum StdinSink {
    Pipe(tokio::process::ChildStdin),
    Pty(Arc<OwnedFd>),
}

impl Container {
    pub fn record(&self) -> Record {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(super) fn update(&self, f: impl FnOnce(&mut Record)) -> Record {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        r.clone()
    }
    pub fn exits(&self) -> watch::Receiver<u64> {
        self.exits.subscribe()
    }
    pub fn removed(&self) -> watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// Writes attached input to the container's stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut ready = self.stdin_ready.subscribe();
        let sink = loop {
            let taken = self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(s) = taken {
                break s;
            }
            // Not started yet (or between runs): wait for the next run's stdin.
            let waited = tokio::time::timeout(Duration::from_secs(60), ready.changed()).await;
            if !matches!(waited, Ok(Ok(()))) {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "container stdin is closed"));
            }
        };
        let mut sink = sink;
        let r = match &mut sink {
            StdinSink::Pipe(p) => p.write_all(data).await,
            StdinSink::Pty(fd) => {
                let fd = fd.clone();
                let data = data.to_vec();
                tokio::task::spawn_blocking(move || {
                    let mut f = fs::File::from(fd.try_clone()?);
                    f.write_all(&data)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
        };
        *self.stdin.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        r
    }

    /// Closes stdin (the attached client's input ended and StdinOnce is set).
    pub fn close_stdin(&self) {
        let mut s = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*s, Some(StdinSink::Pipe(_))) {
            *s = None;
        }
    }

    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        match self.pty.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(fd) => crate::sys::set_winsize(fd.as_fd(), rows, cols),
            None => Ok(()),
        }
    }
}

/// All containers of this daemon.
#[derive(Debug)]
pub struct Containers {
    data_root: PathBuf,
    exec_root: PathBuf,
    pub(super) images: Arc<ImageStore>,
    pub volumes: Arc<Volumes>,
    pub(super) bus: Arc<EventBus>,
    map: Mutex<BTreeMap<String, Arc<Container>>>,
    pub(super) networks: Mutex<Option<Arc<crate::network::Networks>>>,
    /// The devices cgroups holding each running container's allowlist.
    device_cgroups: DeviceCgroups,
    /// Each container's memory, pids, cpu, blkio and freezer cgroups.
    pub(super) resources: ResourceCgroups,
    /// The daemon is stopping: what it stops is not stopped by a user.
    shutting_down: std::sync::atomic::AtomicBool,
}

use crate::ids::{new_id, now_rfc3339, ZERO_TIME};
use crate::signals::parse_signal;

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

impl Containers {
    /// Loads containers kept on disk. Any that were running when the daemon
    /// went away are marked exited: their processes died with it.
    pub fn open(
        data_root: &Path,
        exec_root: &Path,
        images: Arc<ImageStore>,
        volumes: Arc<Volumes>,
        bus: Arc<EventBus>,
    ) -> std::io::Result<Self> {
        let dir = data_root.join("containers");
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(exec_root.join("containers"))?;
        let device_cgroups = DeviceCgroups::open(exec_root);
        let resources = ResourceCgroups::open(exec_root);
        let me = Containers {
            data_root: data_root.to_path_buf(),
            exec_root: exec_root.to_path_buf(),
            images,
            volumes,
            bus,
            map: Mutex::new(BTreeMap::new()),
            networks: Mutex::new(None),
            device_cgroups,
            resources,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        };
        for e in fs::read_dir(&dir)?.flatten() {
            let path = e.path().join("container.json");
            let id = e.file_name().to_string_lossy().into_owned();
            let layer_dir = data_root.join("overlay2").join(&id);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // A create a crash ended before its first save: nothing
                    // of the user's is in it yet.
                    tracing::warn!(id, "removing a container whose creation did not finish");
                    let _ = fs::remove_dir_all(e.path());
                    let _ = fs::remove_dir_all(&layer_dir);
                    continue;
                }
                Err(_) => continue,
            };
            let Ok(mut rec) = serde_json::from_slice::<Record>(&bytes) else {
                // Not berthd's doing (its writes are atomic): the container
                // cannot be run, and its files are kept aside, not lost.
                let aside = data_root.join("lost+found").join(&id);
                let _ = nix::mount::umount2(&layer_dir.join("merged"), nix::mount::MntFlags::MNT_DETACH);
                let _ = fs::create_dir_all(&aside);
                let moved = fs::rename(e.path(), aside.join("container")).and_then(|_| match fs::rename(&layer_dir, aside.join("layer")) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                });
                tracing::warn!(path = %path.display(), kept = %aside.display(), ok = moved.is_ok(), "an unreadable container record: its files are kept aside");
                continue;
            };
            // A start a crash cut short leaves the overlay mounted before the
            // record says running: whatever it says, nothing runs now.
            let _ = nix::mount::umount2(Path::new(&rec.layer.merged), nix::mount::MntFlags::MNT_DETACH);
            if rec.build_step {
                // A build's RUN step a crash ended: its container goes.
                tracing::warn!(id = %&id[..12.min(id.len())], "removing the container of a build step a crash ended");
                let _ = fs::remove_dir_all(e.path());
                let _ = fs::remove_dir_all(&layer_dir);
                continue;
            }
            if rec.state.status == Status::Running || rec.state.status == Status::Removing {
                rec.state.status = Status::Exited;
                rec.state.pid = 0;
                rec.state.paused = false;
                rec.state.exit_code = 255;
                rec.state.finished_at = now_rfc3339();
            }
            let c = me.wrap(rec);
            me.save(&c.record())?;
            me.announce(&c.record());
            me.map.lock().unwrap_or_else(|p| p.into_inner()).insert(c.id.clone(), c);
        }
        // A read-write layer no record names (its container's dir was lost):
        // kept aside with what the container wrote, out of the layer store.
        for e in fs::read_dir(data_root.join("overlay2")).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            // (Image layers live here too: theirs have no merged dir and are the store's.)
            let container_layer = e.path().join("merged").is_dir() && !me.images.has_layer(&format!("sha256:{id}"));
            if dir.join(&id).exists() || !container_layer {
                continue;
            }
            let _ = nix::mount::umount2(&e.path().join("merged"), nix::mount::MntFlags::MNT_DETACH);
            let aside = data_root.join("lost+found").join(&id);
            let moved = fs::create_dir_all(&aside).and_then(|_| fs::rename(e.path(), aside.join("layer")));
            tracing::warn!(id, kept = %aside.display(), ok = moved.is_ok(), "a container layer without a record: kept aside");
        }
        Ok(me)
    }

    /// Daemon start, before anything runs: processes left in this daemon's
    /// container cgroups by a daemon that died without stopping them are
    /// killed (their records say exited; nothing would ever stop them), and
    /// the emptied cgroups and run dirs go.
    pub async fn recover(&self) {
        let undone = crate::host::undo_interrupted(&self.plans_dir(), &self.bus).await;
        if undone > 0 {
            tracing::warn!(plans = undone, "took back plans a killed berthd left part done");
        }
        let killed = self.resources.kill_orphans(&self.device_cgroups.container_procs()).await;
        if !killed.is_empty() {
            tracing::warn!(containers = ?killed, "killed processes left running by an earlier berthd");
        }
        // Nothing runs yet: any overlay still mounted in a container's layer
        // dir was left by a crash (its record may be lost too).
        let left = crate::storage::unmount_all_under(&self.data_root.join("overlay2"));
        if left > 0 {
            tracing::warn!(mounts = left, "unmounted container overlays an earlier berthd left mounted");
        }
        self.device_cgroups.sweep();
        let running: Vec<String> =
            self.list().iter().filter(|c| c.record().state.status == Status::Running).map(|c| c.id.clone()).collect();
        for e in fs::read_dir(self.exec_root.join("containers")).into_iter().flatten().flatten() {
            if !running.iter().any(|id| e.file_name() == id.as_str()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Takes the daemon's networks and clears what containers that died
    /// with the previous daemon left of theirs (veth, namespace, rules).
    pub async fn set_networks(self: &Arc<Self>, nets: Arc<crate::network::Networks>) {
        *self.networks.lock().unwrap_or_else(|p| p.into_inner()) = Some(nets.clone());
        for c in self.list() {
            self.end_recorded_run(&c).await;
        }
        // What a crash left before it was recorded (nothing runs now): the
        // containers' network namespaces, their veths, their port rules.
        let mut left = 0;
        for e in fs::read_dir(nets.sandbox_path("x").parent().unwrap_or(Path::new("/nonexistent"))).into_iter().flatten().flatten() {
            crate::network::netlink::remove_netns(&e.path());
            left += 1;
        }
        // Every veth on berth's bridges: no container runs yet, so each is
        // left over — a known container's, or one whose record was lost.
        if let Ok(h) = crate::network::netlink::connect() {
            let bridges: Vec<u32> = nets.all().iter().map(|n| n.if_index()).collect();
            for veth in crate::network::netlink::bridge_ports(&h, &bridges).await.unwrap_or_default() {
                if crate::network::netlink::delete_link(&h, &veth).await.is_ok() {
                    left += 1;
                }
            }
        }
        for net in nets.all() {
            left += net.clear_stale_port_rules();
        }
        if left > 0 {
            tracing::warn!(objects = left, "removed network namespaces, veths and port rules a crashed berthd left unrecorded");
        }
    }

    pub fn networks(&self) -> Option<Arc<crate::network::Networks>> {
        self.networks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn wrap(&self, rec: Record) -> Arc<Container> {
        let (output, _) = broadcast::channel(1024);
        Arc::new(Container {
            id: rec.id.clone(),
            record: Mutex::new(rec),
            output,
            stdin: Mutex::new(None),
            stdin_ready: watch::channel(0).0,
            pty: Mutex::new(None),
            exits: watch::channel(0).0,
            removed: watch::channel(false).0,
            dns: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            backoff: Mutex::new(Duration::ZERO),
        })
    }

    /// Replays a loaded container into the event stream.
    fn announce(&self, r: &Record) {
        self.bus.emit(Event::ContainerCreated {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            image_id: r.image_id.clone(),
            command: r.command(),
            layer: r.layer.clone(),
            mounts: r.mounts.iter().map(MountPoint::to_event).collect(),
            labels: r.config["Labels"]
                .as_object()
                .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
        });
        if r.state.status == Status::Exited {
            self.bus.emit(Event::ContainerExited { id: r.id.clone(), exit_code: r.state.exit_code });
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    pub(super) fn save(&self, r: &Record) -> std::io::Result<()> {
        // Saved at every step of a start and a stop: atomic, not fsync'd
        // (each fsync cost milliseconds on the start path).
        crate::durable::write_atomic(&self.dir(&r.id).join("container.json"), &serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?)
    }

    pub fn list(&self) -> Vec<Arc<Container>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Finds a container by full ID, unique ID prefix or name.
    pub fn get(&self, key: &str) -> Result<Arc<Container>, ApiError> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        let name = key.trim_start_matches('/');
        if let Some(c) = map.values().find(|c| c.record().name == name) {
            return Ok(c.clone());
        }
        if !key.is_empty() {
            let hits: Vec<_> = map.values().filter(|c| c.id.starts_with(key)).collect();
            if hits.len() == 1 {
                return Ok(hits[0].clone());
            }
            if hits.len() > 1 {
                return Err(ApiError::bad_request(format!("Multiple IDs found with provided prefix: {key}")));
            }
        }
        Err(ApiError::not_found(refusal::no_such_container(key)))
    }

    /// IDs of the containers (running or not) that mount this volume.
    pub fn using_volume(&self, name: &str) -> Vec<String> {
        self.list()
            .iter()
            .map(|c| c.record())
            .filter(|r| r.mounts.iter().any(|m| m.kind == "volume" && m.name == name))
            .map(|r| r.id)
            .collect()
    }

    /// Turns the requests into mount points: named volumes are created if
    /// missing, anonymous ones made, missing `-v` bind sources created.
    fn make_mounts(&self, requests: &[MountRequest]) -> Result<Vec<MountPoint>, ApiError> {
        let mut out = Vec::new();
        for r in requests {
            if r.bind {
                let src = PathBuf::from(&r.source);
                self.check_bind_source(&src)?;
                if r.create_source && !src.exists() {
                    fs::create_dir_all(&src)
                        .map_err(|e| ApiError::bad_request(format!("error while creating mount source path '{}': {e}", r.source)))?;
                }
                out.push(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: src,
                    destination: r.destination.clone(),
                    rw: !r.readonly,
                    mode: r.mode.clone(),
                    nocopy: false,
                });
            } else {
                let v = self.volumes.create(Some(r.source.as_str()).filter(|s| !s.is_empty()), BTreeMap::new())?;
                out.push(MountPoint {
                    kind: "volume".into(),
                    source: self.volumes.mountpoint(&v.name),
                    name: v.name,
                    destination: r.destination.clone(),
                    rw: !r.readonly,
                    mode: r.mode.clone(),
                    nocopy: r.nocopy,
                });
            }
        }
        Ok(out)
    }

    /// A bind mount's source may not hand a container the host itself:
    /// `/`, the kernel's interfaces (/proc, /sys, /dev) or berth's own
    /// state (data and exec roots, or a directory holding them).
    /// Docker allows these (its socket is root-equivalent by design);
    /// berth refuses them, so no container can write outside what it was
    /// given. The source is judged after following symlinks, as the mount
    /// will be.
    fn check_bind_source(&self, src: &Path) -> Result<(), ApiError> {
        // The longest existing ancestor, resolved: a missing source is made
        // under it, so that is where it would land.
        let mut probe = src.to_path_buf();
        let mut rest = Vec::new();
        let resolved = loop {
            match fs::canonicalize(&probe) {
                Ok(p) => break rest.iter().rev().fold(p, |acc: PathBuf, c: &std::ffi::OsString| acc.join(c)),
                Err(_) => match (probe.file_name().map(|f| f.to_os_string()), probe.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name);
                        probe = parent.to_path_buf();
                    }
                    _ => break src.to_path_buf(),
                },
            }
        };
        let ours = |root: &Path| fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let why = if resolved == Path::new("/") {
            Some("it would hand the container the host's whole filesystem".to_string())
        } else if ["/proc", "/sys", "/dev"].iter().any(|k| resolved.starts_with(k)) {
            Some("it is one of the kernel's interfaces to the host".to_string())
        } else if [ours(&self.data_root), ours(&self.exec_root)].iter().any(|r| resolved.starts_with(r) || r.starts_with(&resolved)) {
            Some("it holds berthd's own state (other containers' layers and records)".to_string())
        } else {
            None
        };
        match why {
            Some(why) => Err(ApiError::bad_request(format!(
                "invalid mount config for type \"bind\": berth does not bind-mount {} into a container: {why}",
                src.display()
            ))),
            None => Ok(()),
        }
    }

    /// At start: fills empty volumes from the image (copy-in), then the
    /// binds for every mount, parents before children.
    fn mount_binds(&self, rec: &Record) -> Result<Vec<Bind>, ApiError> {
        let mut mounts = rec.mounts.clone();
        mounts.sort_by_key(|m| Path::new(&m.destination).components().count());
        let mut binds = Vec::new();
        for m in &mounts {
            if m.kind == "volume" && !m.nocopy {
                self.volumes
                    .populate(&m.name, &rec.id, Path::new(&rec.layer.merged), &m.destination)
                    .map_err(|e| internal(format!("copying {} into volume {}: {e}", m.destination, m.name)))?;
            }
            if !m.source.exists() {
                return Err(ApiError::bad_request(format!(
                    "error while mounting volume '{}': the source path does not exist",
                    m.source.display()
                )));
            }
            binds.push(Bind { source: m.source.clone(), destination: m.destination.clone(), readonly: !m.rw });
        }
        Ok(binds)
    }

    /// IDs of containers created from an image.
    pub fn using_image(&self, image_id: &str) -> Vec<(String, bool)> {
        self.list()
            .iter()
            .map(|c| c.record())
            .filter(|r| r.image_id == image_id)
            .map(|r| (r.id, r.state.status == Status::Running))
            .collect()
    }

    /// `POST /containers/create`.
    pub fn create(&self, name: Option<&str>, body: &Value, image: &ImageRecord, image_name: &str) -> Result<Arc<Container>, ApiError> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                let valid = n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !valid {
                    return Err(ApiError::bad_request(format!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
                }
                n.to_string()
            }
            None => loop {
                let n = super::create::random_name();
                if self.get(&n).is_err() {
                    break n;
                }
            },
        };
        if let Ok(other) = self.get(&name) {
            if other.record().name == name {
                return Err(ApiError::new(ErrorKind::Conflict, refusal::name_in_use(&name, &other.id)));
            }
        }
        let id = new_id();
        let image_config = self.images.config(&image.id).unwrap_or(Value::Null);
        let config = merge_config(body, &image_config["config"], &id, image_name);
        if Record::strings(&config["Entrypoint"]).is_empty() && Record::strings(&config["Cmd"]).is_empty() {
            return Err(ApiError::bad_request("No command specified"));
        }
        let mut host_config = body["HostConfig"].clone();
        if !host_config.is_object() {
            host_config = json!({});
        }
        if host_config["NetworkMode"].as_str().unwrap_or("").is_empty() {
            host_config["NetworkMode"] = json!("default");
        }
        // Confinement flags: honoured, or refused by name (never ignored).
        Confinement::from_host_config(&host_config).and_then(|c| c.device_nodes()).map_err(ApiError::bad_request)?;
        super::restart::Policy::from_host_config(&host_config).map_err(ApiError::bad_request)?;
        // Unknown log drivers and options are refused; inspect shows the driver.
        LogConfig::normalize(&mut host_config)?;
        let networks = self.networks_for_create(&host_config, &body["NetworkingConfig"]["EndpointsConfig"])?;
        for entry in Record::strings(&host_config["ExtraHosts"]) {
            berth_shared::etc::extra_host(&entry, std::net::Ipv4Addr::UNSPECIFIED).map_err(ApiError::bad_request)?;
        }
        let links = self.links_for_create(&host_config)?;
        let dns = berth_shared::etc::DnsSettings { servers: Record::strings(&host_config["Dns"]), ..Default::default() };
        dns.check().map_err(ApiError::bad_request)?;
        let requests = mount_requests(&host_config, &config)?;
        let mounts = self.make_mounts(&requests)?;
        let dir = self.dir(&id);
        let mk = |p: &Path| fs::create_dir_all(p).map_err(internal);
        mk(&dir)?;
        let layer = RwLayer::for_container(
            &self.data_root.join("overlay2").display().to_string(),
            &id,
            image.layers.iter().rev().map(|l| self.images.layer_diff(&l.chain_id).display().to_string()).collect(),
        );
        for p in [&layer.upper, &layer.work, &layer.merged] {
            mk(Path::new(p))?;
        }
        let rec = Record {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image: image_name.to_string(),
            image_id: image.id.clone(),
            config,
            host_config,
            state: RunState {
                status: Status::Created,
                pid: 0,
                exit_code: 0,
                error: String::new(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                oom_killed: false,
                paused: false,
                restarting: false,
                health: None,
            },
            layer,
            log_path: dir.join(format!("{id}-json.log")),
            hostname_path: dir.join("hostname"),
            hosts_path: dir.join("hosts"),
            resolv_conf_path: dir.join("resolv.conf"),
            networks: Some(networks),
            endpoints: BTreeMap::new(),
            sandbox: None,
            ports: Vec::new(),
            mounts,
            restart_count: 0,
            stopped_by_user: false,
            links,
            link_env: Vec::new(),
            build_step: false,
        };
        self.save(&rec).map_err(internal)?;
        let c = self.wrap(rec.clone());
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), c.clone());
        self.announce(&rec);
        Ok(c)
    }

    /// A container for a build's RUN step: berth's own, never left behind.
    pub fn create_for_build(&self, body: &Value, image: &ImageRecord, image_name: &str) -> Result<Arc<Container>, ApiError> {
        let c = self.create(None, body, image, image_name)?;
        let r = c.update(|r| r.build_step = true);
        self.save(&r).map_err(internal)?;
        Ok(c)
    }

    /// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the
    /// container (the text is berth_shared::etc's); `links` are its legacy
    /// links' hosts lines.
    fn write_etc(&self, r: &Record, links: &[(std::net::Ipv4Addr, String)]) -> std::io::Result<Vec<Bind>> {
        let hostname = r.config["Hostname"].as_str().unwrap_or("").to_string();
        fs::write(&r.hostname_path, format!("{hostname}\n"))?;
        let gateway =
            self.networks().and_then(|n| n.find("bridge")).map(|b| b.spec.gateway).unwrap_or(std::net::Ipv4Addr::new(172, 17, 0, 1));
        let extra: Vec<(String, std::net::IpAddr)> =
            Record::strings(&r.host_config["ExtraHosts"]).iter().filter_map(|e| berth_shared::etc::extra_host(e, gateway).ok()).collect();
        let own: Vec<std::net::IpAddr> =
            r.primary_endpoint().map(|ep| std::iter::once(ep.ip.into()).chain(ep.ip6.map(Into::into)).collect()).unwrap_or_default();
        fs::write(&r.hosts_path, berth_shared::etc::hosts(&hostname, &own, &extra, links))?;
        let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        // On a user-defined network: the embedded DNS server, which knows
        // the other containers' names and forwards the rest.
        fs::write(&r.resolv_conf_path, berth_shared::etc::resolv_conf(&host, self.embedded_dns(r), &r.dns()))?;
        Ok(vec![
            Bind { source: r.resolv_conf_path.clone(), destination: "/etc/resolv.conf".into(), readonly: false },
            Bind { source: r.hostname_path.clone(), destination: "/etc/hostname".into(), readonly: false },
            Bind { source: r.hosts_path.clone(), destination: "/etc/hosts".into(), readonly: false },
        ])
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, c: &Arc<Container>) -> Result<(), ApiError> {
        self.start_checked(c).await.map(|_| ())
    }

    /// Starts it unless it runs already: false then (Docker's 304).
    pub async fn start_checked(self: &Arc<Self>, c: &Arc<Container>) -> Result<bool, ApiError> {
        let _one = c.lifecycle.lock().await;
        Self::user_start(c);
        self.start_locked(c).await
    }

    /// A user's start (or restart) clears what the restart policy kept: a
    /// pending restart, the count, the "stopped by the user" mark.
    fn user_start(c: &Container) {
        c.update(|r| {
            r.stopped_by_user = false;
            r.restart_count = 0;
            r.state.restarting = false;
        });
        *c.backoff.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;
    }

    /// Daemon start: containers whose restart policy says so are started
    /// (those that were running when the last daemon went away included).
    pub async fn start_by_policy(self: &Arc<Self>) {
        for c in self.list() {
            let rec = c.record();
            let policy = super::restart::Policy::from_host_config(&rec.host_config).unwrap_or(super::restart::Policy::No);
            if rec.state.status != Status::Running && policy.start_with_daemon(rec.stopped_by_user) {
                let _one = c.lifecycle.lock().await;
                if let Err(e) = self.start_locked(&c).await {
                    tracing::warn!(id = %&rec.id[..12], error = %e, "starting a container by its restart policy");
                }
            }
        }
    }

    /// A removal that went first makes the container unknown to later calls.
    fn gone(c: &Container) -> Option<ApiError> {
        (*c.removed.borrow()).then(|| ApiError::not_found(refusal::no_such_container(&c.id)))
    }

    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<bool, ApiError> {
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let rec = c.record();
        if rec.state.status == Status::Running {
            return Ok(false); // Docker answers 304 Not Modified; the CLI treats it as success
        }
        if let Some(why) = refusal::start(&rec.id, rec.state.status) {
            return Err(ApiError::new(ErrorKind::Conflict, why));
        }
        let root = Plan::whole(vec![plan::mount_root(&rec.id, &rec.layer)]);
        LinuxHost::new(None).run(&root, &self.bus).await.map_err(internal)?;
        crate::fault::point("start.mounted");
        match self.spawn(c, &rec).await {
            Ok(()) => Ok(true),
            Err(e) => {
                self.end_run(c, 127).await;
                let msg = e.message.clone();
                let r = c.update(|r| {
                    r.state.status = Status::Exited;
                    r.state.exit_code = 127;
                    r.state.error = msg.clone();
                    r.state.finished_at = now_rfc3339();
                });
                let _ = self.save(&r);
                c.exits.send_modify(|n| *n += 1);
                let _ = c.output.send(Output::End);
                if r.auto_remove() {
                    let _ = self.remove_locked(c, true, true).await;
                }
                Err(e)
            }
        }
    }

    /// The capability set a container's processes get: without a devices
    /// cgroup to make device nodes harmless, CAP_MKNOD goes.
    fn capabilities(&self, conf: &Confinement) -> Vec<String> {
        let mut caps = conf.capabilities.clone();
        if !self.device_cgroups.available() && !conf.privileged {
            caps.retain(|c| c != "CAP_MKNOD");
        }
        caps
    }

    /// Where plans are journaled while they run.
    pub(super) fn plans_dir(&self) -> PathBuf {
        self.exec_root.join("plans")
    }

    /// This daemon's exec-root (run-time state).
    pub fn exec_root(&self) -> &Path {
        &self.exec_root
    }

    /// The cgroups that hold containers' limits (what `docker info` says
    /// this host supports).
    pub fn resources(&self) -> &ResourceCgroups {
        &self.resources
    }

    /// Does every container get Docker's device allowlist on this host?
    pub fn device_cgroups_enforced(&self) -> bool {
        self.device_cgroups.available()
    }

    /// The spec of a process run in this running container: its
    /// namespaces, and what it inherits from the container (`docker exec`,
    /// and healthcheck probes).
    pub fn exec_spec(
        &self,
        rec: &Record,
        args: Vec<String>,
        env: Vec<String>,
        cwd: String,
        user: String,
        tty: bool,
    ) -> Result<ExecSpec, ApiError> {
        Ok(ExecSpec { target_pid: rec.state.pid, args, env, cwd, user, tty, confined: self.exec_confinement(rec)? })
    }

    /// What a `docker exec` in this container inherits from it: its
    /// capability set, cgroups, ulimits, seccomp programs and no_new_privs.
    pub fn exec_confinement(&self, rec: &Record) -> Result<Confined, ApiError> {
        let conf = Confinement::from_host_config(&rec.host_config).map_err(ApiError::bad_request)?;
        let mut cgroup_procs: Vec<PathBuf> = self.device_cgroups.dir(&rec.id).map(|d| d.join("cgroup.procs")).into_iter().collect();
        cgroup_procs.extend(self.resources.views(&rec.id).into_iter().map(|(_, d)| d.join("cgroup.procs")));
        cgroup_procs.dedup();
        self.confined(&conf, cgroup_procs)
    }

    /// A container's confinement from its HostConfig's and its cgroups.
    fn confined(&self, conf: &Confinement, cgroup_procs: Vec<PathBuf>) -> Result<Confined, ApiError> {
        let capabilities = self.capabilities(conf);
        Ok(Confined {
            seccomp: crate::runtime::seccomp::programs(&conf.seccomp, &capabilities).map_err(internal)?,
            capabilities,
            cgroup_procs,
            rlimits: conf.rlimits.clone(),
            no_new_privileges: conf.no_new_privileges,
            group_add: conf.group_add.clone(),
        })
    }

    async fn spawn(self: &Arc<Self>, c: &Arc<Container>, rec: &Record) -> Result<(), ApiError> {
        let conf = Confinement::from_host_config(&rec.host_config).map_err(ApiError::bad_request)?;
        let (devices, mut device_rules) = conf.device_nodes().map_err(ApiError::bad_request)?;
        device_rules.splice(0..0, default_rules());
        // Where a start's time goes (debug log "start phases"; README Benchmarks).
        let t0 = std::time::Instant::now();
        let net = self.join_networks(c, rec).await?;
        let t_net = t0.elapsed();
        let (link_hosts, link_env) = self.resolve_links(&c.record())?;
        let rec = &c.update(|r| r.link_env = link_env);
        let mut binds = self.write_etc(rec, &link_hosts).map_err(internal)?;
        // As Docker: /etc/hosts, resolv.conf and hostname follow the root.
        for b in &mut binds {
            b.readonly = conf.readonly_rootfs;
        }
        binds.extend(self.mount_binds(rec)?);
        let mut cgroup_procs: Vec<PathBuf> = self
            .device_cgroups
            .create(&rec.id, &device_rules, conf.privileged)
            .map_err(|e| internal(format!("creating the container's devices cgroup: {e}")))?
            .into_iter()
            .collect();
        if conf.limits != Default::default() && !self.resources.available() {
            self.device_cgroups.remove(&rec.id).await;
            return Err(ApiError::bad_request("this host has no memory cgroup: berth cannot limit a container's resources here"));
        }
        match self.resources.create(&rec.id, &conf.limits) {
            Ok(procs) => cgroup_procs.extend(procs),
            Err(e) => {
                self.device_cgroups.remove(&rec.id).await;
                self.resources.remove(&rec.id).await;
                return Err(internal(format!("creating the container's cgroups: {e}")));
            }
        }
        cgroup_procs.dedup();
        crate::fault::point("start.cgroups");
        let t_cgroups = t0.elapsed();
        let args = rec.command();
        let spec = InitSpec {
            rootfs: PathBuf::from(&rec.layer.merged),
            args: args.clone(),
            // HOSTNAME (and TERM, links' variables) are the process's, not part of Config.Env (as Docker).
            env: rec.process_env(rec.tty()),
            cwd: rec.config["WorkingDir"].as_str().unwrap_or("").to_string(),
            hostname: rec.config["Hostname"].as_str().unwrap_or("").to_string(),
            user: rec.config["User"].as_str().unwrap_or("").to_string(),
            tty: rec.tty(),
            net: net.clone(),
            binds,
            // --privileged: nothing masked, nothing read-only (as Docker).
            masked_paths: if conf.privileged {
                Vec::new()
            } else {
                conf.masked_paths.clone().unwrap_or_else(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect())
            },
            readonly_paths: if conf.privileged {
                Vec::new()
            } else {
                conf.readonly_paths.clone().unwrap_or_else(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect())
            },
            confined: self.confined(&conf, cgroup_procs)?,
            privileged: conf.privileged,
            readonly_rootfs: conf.readonly_rootfs,
            devices,
            tmpfs: conf.tmpfs.clone(),
            shm_size: conf.shm_size,
            oom_score_adj: conf.oom_score_adj,
            cgroup_views: self.resources.views(&rec.id),
        };
        let run_dir = self.exec_root.join("containers").join(&rec.id);
        fs::create_dir_all(&run_dir).map_err(internal)?;
        let spec_path = run_dir.join("init.json");
        fs::write(&spec_path, serde_json::to_vec(&spec).map_err(internal)?).map_err(internal)?;

        let launched = launch("__berth-init", &spec_path, rec.tty(), rec.open_stdin()).await;
        if launched.is_err() {
            self.device_cgroups.remove(&rec.id).await;
            self.resources.remove(&rec.id).await;
        }
        let launched = match launched {
            Ok(l) => l,
            Err(LaunchError::Start(err)) => {
                let kind = if err.contains("executable file not found") || err.contains("no such file") {
                    ErrorKind::BadRequest
                } else {
                    ErrorKind::Internal
                };
                return Err(ApiError::new(
                    kind,
                    format!("failed to create task for container: unable to start container process: {err}: unknown"),
                ));
            }
            Err(e) => return Err(internal(e)),
        };
        crate::fault::point("start.launched");
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            networks_ms = ms(t_net),
            etc_and_cgroups_ms = ms(t_cgroups - t_net),
            helper_ms = ms(t0.elapsed() - t_cgroups),
            "start phases"
        );
        let Launched { mut child, pid, stdin, stdout, stderr, pty } = launched;
        let rec = c.update(|r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.exit_code = 0;
            r.state.oom_killed = false;
            r.state.paused = false;
            r.state.restarting = false;
            r.state.health = super::health::check_of(&r.config["Healthcheck"]).map(|_| Default::default());
            r.state.error.clear();
            r.state.started_at = now_rfc3339();
            r.state.finished_at = ZERO_TIME.into();
        });
        self.save(&rec).map_err(internal)?;
        let _ = LinuxHost::new(None).run(&plan::started(&rec.id, pid, net != NetNs::Host), &self.bus).await;
        tracing::info!(id = %&rec.id[..12], pid, "container started");
        if let Some(check) = super::health::check_of(&rec.config["Healthcheck"]) {
            self.monitor_health(c, check);
        }

        // Output: to the json log and to attached clients.
        let log = Arc::new(Mutex::new(JsonLog::open_with(&rec.log_path, LogConfig::of(&rec.host_config)).map_err(internal)?));
        let mut streams = Vec::new();
        if let Some(stdin) = stdin {
            *c.stdin.lock().unwrap_or_else(|p| p.into_inner()) = Some(StdinSink::Pipe(stdin));
            c.stdin_ready.send_modify(|n| *n += 1);
        }
        for (pipe, kind) in
            [(stdout.map(|p| p.into_owned_fd()), StreamKind::Stdout), (stderr.map(|p| p.into_owned_fd()), StreamKind::Stderr)]
        {
            match pipe {
                Some(Ok(fd)) => streams.push((fd, kind)),
                Some(Err(e)) => tracing::error!("taking a container's output pipe: {e}"),
                None => {}
            }
        }
        if let Some(master) = pty {
            *c.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some(master.clone());
            *c.stdin.lock().unwrap_or_else(|p| p.into_inner()) = Some(StdinSink::Pty(master.clone()));
            c.stdin_ready.send_modify(|n| *n += 1);
            match master.try_clone() {
                Ok(fd) => streams.push((fd, StreamKind::Stdout)),
                Err(e) => tracing::error!("reading a container's terminal: {e}"),
            }
        }
        let pumped = spawn_pump(streams, c.clone(), log.clone());

        let me = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let code = status.ok().and_then(|s| s.code()).unwrap_or(137);
            let _ = pumped.await;
            if let Ok(mut l) = log.lock() {
                l.flush_partial();
            }
            me.exited(&c, code).await;
        });
        Ok(())
    }

    /// The run's process ended. Its network and mounts go *before* its status
    /// leaves Running: a start waiting on the lifecycle lock sees Running
    /// (304) until the teardown is done, and never builds a new run that
    /// this teardown would then take apart. Stop and remove wait for the
    /// `exits` bump, which comes after.
    async fn exited(self: &Arc<Self>, c: &Arc<Container>, code: i32) {
        *c.stdin.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *c.pty.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = fs::remove_dir_all(self.exec_root.join("containers").join(&c.id));
        // "die" is told first, as Docker's comes before its network is
        // released; the record says Running until the teardown is done (see
        // above). Where an exit's time goes: debug log "exit phases".
        let t0 = std::time::Instant::now();
        self.end_run(c, code).await;
        let t_run = t0.elapsed();
        let oom_killed = self.resources.oom_kills(&c.id) > 0;
        self.device_cgroups.remove(&c.id).await;
        self.resources.remove(&c.id).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(networks_and_root_ms = ms(t_run), cgroups_ms = ms(t0.elapsed() - t_run), "exit phases");
        let before = c.record();
        let policy = super::restart::Policy::from_host_config(&before.host_config).unwrap_or(super::restart::Policy::No);
        let restart = !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
            && Self::gone(c).is_none()
            && policy.restart_after_exit(code, before.stopped_by_user, before.restart_count);
        let rec = c.update(|r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.paused = false;
            r.state.restarting = restart;
            r.state.oom_killed = oom_killed;
            r.state.exit_code = code;
            r.state.finished_at = now_rfc3339();
        });
        let _ = self.save(&rec);
        tracing::info!(id = %&rec.id[..12], code, "container exited");
        let _ = c.output.send(Output::End);
        c.exits.send_modify(|n| *n += 1);
        if restart {
            self.schedule_restart(c, &rec);
        }
        if rec.auto_remove() {
            // A stop or removal that holds the lock may have removed it first.
            let _one = c.lifecycle.lock().await;
            if Self::gone(c).is_none() && c.record().state.status != Status::Running {
                if let Err(e) = self.remove_locked(c, true, true).await {
                    tracing::warn!(error = %e, "auto-remove failed");
                }
            }
        }
    }

    /// The restart policy's next start, after Docker's back-off. A stop, a
    /// removal or a user's start meanwhile cancels it.
    fn schedule_restart(self: &Arc<Self>, c: &Arc<Container>, rec: &Record) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let ran = Duration::from_secs((now - crate::ids::parse_rfc3339(&rec.state.started_at)).max(0) as u64);
        let delay = {
            let mut b = c.backoff.lock().unwrap_or_else(|p| p.into_inner());
            *b = super::restart::delay(*b, ran);
            *b
        };
        tracing::info!(id = %&rec.id[..12], delay_ms = delay.as_millis() as u64, "restarting by its restart policy");
        let (me, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _one = c.lifecycle.lock().await;
            if Self::gone(&c).is_some() || !c.record().state.restarting || me.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            c.update(|r| r.restart_count += 1);
            if let Err(e) = me.start_locked(&c).await {
                tracing::warn!(id = %&c.id[..12], error = %e, "the restart policy's start failed");
            }
        });
    }

    /// `docker rename`: a new name (checked by the API), unique among the
    /// containers; a running container's DNS name on user-defined networks
    /// follows (its endpoints' aliases), as Docker's does.
    pub async fn rename(&self, c: &Container, new: &str) -> Result<(), ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let rec = {
            // The check and the change under the containers' lock: two
            // renames to one name cannot both win.
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let old = c.record().name;
            if old == new {
                return Err(ApiError::bad_request("Renaming a container with the same name as its current name"));
            }
            if let Some(other) = map.values().find(|o| o.id != c.id && o.record().name == new) {
                return Err(ApiError::conflict(format!("Error when allocating new name: {}", refusal::name_in_use(new, &other.id))));
            }
            c.update(|r| {
                r.name = new.to_string();
                for ep in r.endpoints.values_mut() {
                    for a in ep.aliases.iter_mut().filter(|a| **a == old) {
                        *a = new.to_string();
                    }
                }
            })
        };
        self.save(&rec).map_err(internal)?;
        self.bus.emit(Event::ContainerRenamed { id: rec.id.clone(), name: rec.name.clone() });
        Ok(())
    }

    /// `docker pause` (`frozen`) and `docker unpause`: the freezer cgroup
    /// stops or resumes every process of the container at once.
    pub async fn set_paused(&self, c: &Container, frozen: bool) -> Result<(), ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let rec = c.record();
        let conflict = |m: String| Err(ApiError::new(ErrorKind::Conflict, m));
        if rec.state.status != Status::Running {
            return conflict(refusal::not_running(&rec.id));
        }
        match (frozen, rec.state.paused) {
            (true, true) => return conflict(format!("Container {} is already paused", rec.id)),
            (false, false) => return conflict(format!("Container {} is not paused", rec.id)),
            _ => {}
        }
        self.resources
            .freeze(&rec.id, frozen)
            .await
            .map_err(|e| internal(format!("Cannot {} container {}: {e}", if frozen { "pause" } else { "unpause" }, rec.id)))?;
        let rec = c.update(|r| r.state.paused = frozen);
        self.save(&rec).map_err(internal)?;
        let id = rec.id.clone();
        self.bus.emit(if frozen { Event::ContainerPaused { id } } else { Event::ContainerUnpaused { id } });
        Ok(())
    }

    /// `docker update`: new resource limits (and restart policy), checked as
    /// Docker checks them, stored, and written into a running container's
    /// cgroups at once. Returns Docker's warnings.
    pub async fn update_resources(&self, c: &Container, body: &Value) -> Result<Vec<String>, ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let rec = c.record();
        let hc = crate::runtime::resources::merge_update(&rec.host_config, body, crate::runtime::confine::host_cpus())
            .map_err(ApiError::bad_request)?;
        let conf = Confinement::from_host_config(&hc).map_err(ApiError::bad_request)?;
        super::restart::Policy::from_host_config(&hc).map_err(ApiError::bad_request)?;
        let mut warnings = Vec::new();
        if conf.limits.memory > 0 && !self.resources.swap_accounting() {
            warnings.push(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                    .to_string(),
            );
        }
        if rec.state.status == Status::Running {
            if !self.resources.available() {
                return Err(ApiError::bad_request("this host has no memory cgroup: berth cannot limit a container's resources here"));
            }
            // The kernel refuses a limit below what the container uses now.
            self.resources
                .apply(&rec.id, &conf.limits, true)
                .map_err(|e| ApiError::bad_request(format!("Cannot update container {}: {e}", rec.id)))?;
        }
        let rec = c.update(|r| r.host_config = hc.clone());
        self.save(&rec).map_err(internal)?;
        Ok(warnings)
    }

    /// One reading of a running container's cgroups, and its interfaces'
    /// counters (None when it is not running).
    pub fn sample(&self, c: &Container) -> Option<(Sample, BTreeMap<String, crate::runtime::resources::NetCounters>)> {
        let rec = c.record();
        if rec.state.status != Status::Running || rec.state.pid <= 0 {
            return None;
        }
        let net = if rec.network_mode() == "host" {
            BTreeMap::new()
        } else {
            crate::runtime::resources::parse_net_dev(&fs::read_to_string(format!("/proc/{}/net/dev", rec.state.pid)).unwrap_or_default())
        };
        Some((self.resources.sample(&rec.id), net))
    }

    /// `POST /containers/{id}/kill`: the signal, in turn with other lifecycle
    /// calls. As Docker, a SIGKILL answers once the container has exited
    /// (its network and mounts taken down): a `docker start` right after a
    /// `docker kill` finds it stopped, not half torn down.
    pub async fn kill_locked(&self, c: &Container, signal: &str) -> Result<(), ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let mut exits = c.exits();
        let before = *exits.borrow_and_update();
        self.kill(c, signal).await?;
        if parse_signal(signal) == Some(nix::sys::signal::Signal::SIGKILL) {
            let _ = tokio::time::timeout(Duration::from_secs(10), exits.wait_for(|n| *n != before)).await;
        }
        Ok(())
    }

    /// Sends a signal to the container's PID 1: `plan::kill`'s decision
    /// (the simulator's too), from the state.
    pub async fn kill(&self, c: &Container, signal: &str) -> Result<(), ApiError> {
        // (As Docker, a signal it cannot read is refused before anything else.)
        let sig = parse_signal(signal).ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {signal}")))?;
        let plan = self.bus.with_state(|s| plan::kill(s, &c.id, sig as i32))?;
        if !self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            // Ended by the user: its restart policy leaves it stopped.
            c.update(|r| r.stopped_by_user = true);
        }
        let sent = LinuxHost::new(None).run(&plan, &self.bus).await;
        if c.record().state.paused {
            // A frozen process dies only once thawed.
            self.resources.thaw_now(&c.id);
        }
        // Its process is gone; the exit handler has not caught up yet.
        sent.map_err(|_| ApiError::conflict(refusal::kill_not_running(&c.id)))
    }

    /// `docker stop`: the stop signal, then SIGKILL after the timeout.
    /// False (Docker's 304) when it was not running.
    /// `docker stop [-t T] [-s SIGNAL]`: the signal asked, else the container's StopSignal.
    pub async fn stop(&self, c: &Container, timeout: Option<u64>, signal: Option<&str>) -> Result<bool, ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        self.stop_locked(c, timeout, signal).await
    }

    /// `docker restart`: stop then start, with no other call in between.
    pub async fn restart(self: &Arc<Self>, c: &Arc<Container>, timeout: Option<u64>, signal: Option<&str>) -> Result<(), ApiError> {
        let _one = c.lifecycle.lock().await;
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        self.stop_locked(c, timeout, signal).await?;
        Self::user_start(c);
        self.start_locked(c).await.map(|_| ())
    }

    async fn stop_locked(&self, c: &Container, timeout: Option<u64>, signal: Option<&str>) -> Result<bool, ApiError> {
        let rec = c.record();
        if rec.state.restarting {
            // Waiting for its policy's restart: the stop cancels it.
            let r = c.update(|r| {
                r.state.restarting = false;
                r.stopped_by_user = true;
            });
            self.save(&r).map_err(internal)?;
            return Ok(true);
        }
        if rec.state.status != Status::Running {
            return Ok(false);
        }
        let mut exits = c.exits();
        let before = *exits.borrow_and_update();
        // A paused container cannot take its stop signal: it is killed.
        let secs = if rec.state.paused { 0 } else { timeout.or(rec.stop_timeout()).unwrap_or(10) };
        if !rec.state.paused {
            let _ = self.kill(c, signal.unwrap_or(&rec.stop_signal())).await;
        }
        crate::fault::point("stop.signalled");
        let stopped = tokio::time::timeout(Duration::from_secs(secs), exits.wait_for(|n| *n != before)).await.map(|r| r.is_ok());
        if stopped.is_err() {
            let _ = self.kill(c, "SIGKILL").await;
            let _ = tokio::time::timeout(Duration::from_secs(10), exits.wait_for(|n| *n != before)).await;
        }
        self.bus.emit(Event::ContainerRequest {
            id: rec.id.clone(),
            action: "stop".into(),
            signal: None,
            exec_id: None,
            command: Vec::new(),
        });
        Ok(true)
    }

    /// `docker rm [-v]`: refuses a running container unless forced; with
    /// `remove_volumes` (and for `--rm`) its anonymous volumes go too.
    pub async fn remove(&self, c: &Arc<Container>, force: bool, remove_volumes: bool) -> Result<(), ApiError> {
        let _one = c.lifecycle.lock().await;
        self.remove_locked(c, force, remove_volumes).await
    }

    async fn remove_locked(&self, c: &Arc<Container>, force: bool, remove_volumes: bool) -> Result<(), ApiError> {
        if let Some(e) = Self::gone(c) {
            return Err(e);
        }
        let rec = c.record();
        if let Some(why) = refusal::remove(&rec.id, rec.state.status, rec.state.restarting, force) {
            return Err(ApiError::conflict(why));
        }
        if rec.state.status == Status::Removing {
            return Ok(());
        }
        if rec.state.status == Status::Running {
            let mut exits = c.exits();
            let before = *exits.borrow_and_update();
            let _ = self.kill(c, "SIGKILL").await;
            let _ = tokio::time::timeout(Duration::from_secs(10), exits.wait_for(|n| *n != before)).await;
            // With --rm the exit handler would remove it too: it waits for
            // this lock, then finds it gone.
        }
        let rec = c.update(|r| r.state.status = Status::Removing);
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&rec.id);
        self.device_cgroups.remove(&rec.id).await;
        self.resources.remove(&rec.id).await;
        // Its root if still mounted, then its files (`plan::remove`).
        let dirs = [self.dir(&rec.id), self.exec_root.join("containers").join(&rec.id)].map(|d| d.display().to_string());
        let plan = self.bus.with_state(|s| plan::remove(s, &rec.id, dirs.into()));
        let _ = LinuxHost::new(None).run(&plan, &self.bus).await;
        if remove_volumes {
            for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
                let anonymous = self.volumes.get(&m.name).is_some_and(|v| v.anonymous);
                if anonymous && self.using_volume(&m.name).is_empty() {
                    if let Err(e) = self.volumes.remove(&m.name) {
                        tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume");
                    }
                }
            }
        }
        // send_replace: stored even with no receiver (later calls check it).
        c.removed.send_replace(true);
        Ok(())
    }

    /// Stops every running container (daemon shutdown): not a user's stop,
    /// so restart policies start them with the next daemon.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.list() {
            if c.record().state.status == Status::Running {
                let _ = self.stop(&c, Some(2), None).await;
            }
        }
        self.device_cgroups.close().await;
        self.resources.close().await;
    }

    pub fn image_short(&self, id: &str) -> String {
        hex_of(id).chars().take(12).collect()
    }
}

/// The bytes of the files and links under `dir` (not following symlinks): what a
/// container's read-write layer takes.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            // Files and symlinks (a link's size is its target's length), as Docker counts.
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
