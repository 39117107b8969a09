//! The Linux host: where the steps of a plan (`berth_shared::plan`,
//! decided from the state) become kernel calls — overlay mounts, iptables
//! rules, userland proxies, network namespace files, endpoints' veth pairs
//! and addresses. The simulator runs the same plans on its own host.

use std::path::Path;

use berth_shared::plan::{self, Plan, Step};
use berth_shared::Event;

use crate::events::EventBus;
use crate::network::{create_sandbox, nat, netlink, Networks};

/// The host a plan about one container runs on.
#[derive(Debug)]
pub struct LinuxHost<'a> {
    /// The daemon's networks (bridges, addresses, proxies), once it has them.
    nets: Option<&'a Networks>,
    /// Where plans are journaled while they run (the exec root's `plans/`).
    journal: Option<&'a Path>,
}

/// Journaled plans are numbered in this berthd's lifetime.
static JOURNALED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<'a> LinuxHost<'a> {
    pub fn new(nets: Option<&'a Networks>) -> Self {
        LinuxHost { nets, journal: None }
    }

    /// Journals the whole plans of more than one step this host runs in
    /// `dir`: written before the first step, removed once the plan is done
    /// or undone, so a berthd killed in between leaves the plan for the
    /// next one to take back ([`undo_interrupted`]). (A one-step plan is
    /// its own journal: the kernel has its object or not, and the start's
    /// reconciling sees which.)
    pub fn journaled(mut self, dir: &'a Path) -> Self {
        self.journal = Some(dir);
        self
    }

    /// Runs `plan` here, telling the bus each done step's event. A failed
    /// best-effort step is logged: its object stays, and so does the state's
    /// word for it.
    pub async fn run(&mut self, plan: &Plan, bus: &EventBus) -> Result<(), plan::Failed<String>> {
        let journal = match self.journal {
            Some(dir) if plan.mode == plan::Mode::Whole && plan.steps.len() > 1 => {
                let n = JOURNALED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = dir.join(format!("{}-{n}.json", std::process::id()));
                // In the exec root: gone with a reboot, as the kernel's objects
                // are, so a rename without fsync is enough for a crash.
                let written = std::fs::create_dir_all(dir)
                    .and_then(|_| serde_json::to_vec(plan).map_err(std::io::Error::other))
                    .and_then(|bytes| crate::durable::write_atomic(&path, &bytes));
                // Unjournaled, the plan still runs: the start's reconciling
                // covers what a crash would leave of it.
                match written {
                    Ok(()) => Some(path),
                    Err(e) => {
                        tracing::warn!(error = %e, journal = %path.display(), "journaling a plan: it runs unjournaled");
                        None
                    }
                }
            }
            _ => None,
        };
        let r = plan::execute(self, plan, &mut |e| {
            bus.emit(e);
        })
        .await;
        if let Some(path) = journal {
            let _ = std::fs::remove_file(path);
        }
        if let Err(failed) = &r {
            for f in &failed.failures {
                tracing::warn!(step = ?f.step, error = %f.error, "a step failed: what it concerns stays as it was");
            }
        }
        r
    }
}

/// Does a step wait (on netlink)? Such a plan runs with [`LinuxHost::run`].
fn waits(step: &Step) -> bool {
    matches!(step, Step::AttachEndpoint(_) | Step::DetachEndpoint { keep_link: false, .. })
}

impl LinuxHost<'_> {
    /// [`LinuxHost::run`] from code that cannot wait, for a plan none of
    /// whose steps waits (files, signals, mounts, rules), unjournaled. A plan
    /// with a step that would wait is refused, nothing done.
    pub fn run_now(&mut self, plan: &Plan, bus: &EventBus) -> Result<(), plan::Failed<String>> {
        if let Some(step) = plan.steps.iter().find(|s| waits(s)) {
            let error = "this step waits on the kernel: its plan runs with LinuxHost::run".to_string();
            return Err(plan::Failed { failures: vec![plan::StepFailed { step: step.clone(), error }] });
        }
        let r = plan::execute_now(self, plan, &mut |e| {
            bus.emit(e);
        });
        if let Err(failed) = &r {
            for f in &failed.failures {
                tracing::warn!(step = ?f.step, error = %f.error, "a step failed: what it concerns stays as it was");
            }
        }
        r
    }
}

/// Daemon start: every plan a killed berthd left journaled is taken back
/// (its steps' undoing, last first; one never done fails harmlessly), then
/// its journal goes. Returns how many plans were undone.
pub async fn undo_interrupted(dir: &Path, bus: &EventBus) -> usize {
    let mut undone = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let plan: Option<Plan> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match plan {
            Some(plan) => {
                tracing::warn!(steps = plan.steps.len(), journal = %path.display(), "undoing a plan a killed berthd left part done");
                let _ = LinuxHost::new(None).run(&plan.undoing(), bus).await;
                undone += 1;
            }
            None => tracing::warn!(journal = %path.display(), "an unreadable plan journal: removed"),
        }
        let _ = std::fs::remove_file(&path);
    }
    undone
}

impl plan::Host for LinuxHost<'_> {
    type Error = String;

    async fn perform(&mut self, step: &Step) -> Result<Vec<Event>, String> {
        crate::fault::point("plan.step");
        tracing::debug!(?step, "plan step");
        match step {
            Step::Announce(_) => {}
            Step::MountOverlay { merged, options, .. } => {
                nix::mount::mount(
                    Some("overlay"),
                    Path::new(merged),
                    Some("overlay"),
                    nix::mount::MsFlags::empty(),
                    Some(options.as_str()),
                )
                .map_err(|e| format!("mounting the container's overlay at {merged}: {e}"))?;
            }
            Step::UnmountOverlay { merged, .. } => {
                let merged = Path::new(merged);
                // Busy (a process of it not reaped yet): detached, gone when free.
                if nix::mount::umount2(merged, nix::mount::MntFlags::empty()).is_err() {
                    nix::mount::umount2(merged, nix::mount::MntFlags::MNT_DETACH)
                        .map_err(|e| format!("unmounting the container's overlay at {}: {e}", merged.display()))?;
                }
            }
            Step::AddRule(r) => {
                nat::Iptables::V4.append(r).map_err(|e| e.to_string())?;
            }
            // Already gone (deleted by hand) fails: the state keeps saying
            // what the kernel has.
            Step::DeleteRule(r) => nat::Iptables::V4.delete(r).map_err(|e| e.to_string())?,
            // Its proxy was started, and the port claimed, before the plan.
            Step::Publish { .. } => {}
            Step::Unpublish { id, map } => {
                for net in self.nets.map(|n| n.all()).unwrap_or_default() {
                    net.stop_proxy(id, map.host_port);
                }
            }
            Step::CreateNetns { path, .. } => {
                create_sandbox(Path::new(path)).map_err(|e| format!("creating the network namespace: {e}"))?;
            }
            Step::AttachEndpoint(a) => {
                let net = self.nets.and_then(|n| n.find(&a.network)).ok_or_else(|| format!("network {} not found", a.network))?;
                net.attach(a).await.map_err(|e| format!("connecting to network {}: {e}", a.network))?;
            }
            Step::DetachEndpoint { network, host_if, ip, ip6, keep_link, .. } => {
                let ip = ip.parse().map_err(|_| format!("an endpoint's address {ip} is not IPv4"))?;
                let ip6 = ip6.as_deref().and_then(|a| a.parse().ok());
                if let Some(net) = self.nets.and_then(|n| n.find(network)) {
                    net.release_addresses(ip, ip6);
                }
                // The endpoint is gone from berth's networks either way; a
                // pair that would not go stays on the host's link list.
                if !keep_link {
                    match netlink::connect() {
                        Ok(h) => {
                            if let Err(e) = netlink::delete_link(&h, host_if).await {
                                tracing::warn!(error = %e, host_if = %host_if, "removing veth");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, host_if = %host_if, "removing veth"),
                    }
                }
            }
            Step::RemoveNetns { path, .. } => netlink::remove_netns(Path::new(path)),
            Step::Signal { pid, signal, .. } => {
                let sig = nix::sys::signal::Signal::try_from(*signal).map_err(|e| format!("signal {signal}: {e}"))?;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig).map_err(|e| format!("signalling {pid}: {e}"))?;
            }
            Step::CreateVolume { mountpoint, .. } => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::create_dir_all(mountpoint).map_err(|e| format!("creating {mountpoint}: {e}"))?;
                // Docker's _data is root's, mode 0755 (a copy-in may change it).
                let _ = std::fs::set_permissions(mountpoint, std::fs::Permissions::from_mode(0o755));
            }
            Step::RemoveVolume { dir, .. } => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("removing {dir}: {e}")),
                _ => {}
            },
            Step::RemoveContainer { dirs, .. } => {
                // A root the state lost track of (berthd's start unmounts
                // what a crash left) is detached before its dir goes.
                for d in dirs.iter().map(Path::new) {
                    let _ = nix::mount::umount2(&d.join("merged"), nix::mount::MntFlags::MNT_DETACH);
                }
                crate::fault::point("rm.unmounted");
                for d in dirs.iter().map(Path::new) {
                    if let Err(e) = std::fs::remove_dir_all(d) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(dir = %d.display(), error = %e, "removing container files");
                        }
                    }
                }
            }
        }
        Ok(Vec::new())
    }
}
