//! The Linux host: where the steps of a plan (`berth_shared::plan`,
//! decided from the state) become kernel calls — overlay mounts, iptables
//! rules, userland proxies, endpoints' addresses and veth pairs, network
//! namespace files. The simulator runs the same plans on its own host.

use std::collections::BTreeMap;
use std::path::Path;

use berth_shared::plan::{self, Plan, Step};
use berth_shared::Event;

use crate::events::EventBus;
use crate::network::{nat, netlink, Endpoint, Networks};

/// The host a plan about one container runs on.
#[derive(Debug)]
pub struct LinuxHost<'a> {
    /// The daemon's networks (addresses, proxies), once it has them.
    nets: Option<&'a Networks>,
    /// The container's endpoints as berthd recorded them: what each holds
    /// beyond what the state shows (its IPv6 address).
    endpoints: &'a BTreeMap<String, Endpoint>,
}

impl<'a> LinuxHost<'a> {
    pub fn new(nets: Option<&'a Networks>, endpoints: &'a BTreeMap<String, Endpoint>) -> Self {
        LinuxHost { nets, endpoints }
    }

    /// Runs `plan` here, telling the bus each done step's event. A failed
    /// best-effort step is logged: its object stays, and so does the state's
    /// word for it.
    pub async fn run(&mut self, plan: &Plan, bus: &EventBus) -> Result<(), plan::Failed<String>> {
        let r = plan::execute(self, plan, &mut |e| {
            bus.emit(e);
        })
        .await;
        if let Err(failed) = &r {
            for f in &failed.failures {
                tracing::warn!(step = ?f.step, error = %f.error, "a step failed: what it concerns stays as it was");
            }
        }
        r
    }
}

impl plan::Host for LinuxHost<'_> {
    type Error = String;

    async fn perform(&mut self, step: &Step) -> Result<Vec<Event>, String> {
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
            Step::DetachEndpoint { network, host_if, ip, keep_link, .. } => {
                let ip = ip.parse().map_err(|_| format!("an endpoint's address {ip} is not IPv4"))?;
                let ip6 = self.endpoints.get(network).and_then(|ep| ep.ip6);
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
        }
        Ok(Vec::new())
    }
}
