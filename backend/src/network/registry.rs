//! The daemon's networks: the default "bridge" (docker0) and user-defined
//! bridge networks, which are kept in `<data-root>/network/networks.json`
//! and brought back when the daemon starts.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::ipam::Ipam;
use super::netlink::{self, NetError};
use super::{BridgeNetwork, NetworkSpec};
use crate::events::EventBus;
use berth_shared::ipam6::Ipam6;

/// `POST /networks/create`, as berth needs it.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub internal: bool,
    /// `--ip-range` and `--aux-address` (with `--subnet`).
    pub ip_range: Option<String>,
    pub aux_addresses: BTreeMap<String, String>,
    /// `--ipv6`, with the client's IPv6 subnet and gateway if it gave them.
    pub enable_ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    /// What the default IPv6 subnets derive from (the daemon's ID).
    pub ula_seed: String,
}

/// Names that are not networks one can create.
const PREDEFINED: &[&str] = &["bridge", "host", "none"];

#[derive(Debug)]
pub struct Networks {
    default: Arc<BridgeNetwork>,
    user: Mutex<BTreeMap<String, Arc<BridgeNetwork>>>,
    store: PathBuf,
    sandboxes: PathBuf,
    bus: Arc<EventBus>,
    /// One create or remove at a time (they choose subnets and names).
    changing: tokio::sync::Mutex<()>,
}

/// Docker's default address pools for new networks: 172.17–31.0.0/16, then
/// 192.168.0.0/16 cut into /20s.
fn pools() -> impl Iterator<Item = String> {
    (17..=31).map(|b| format!("172.{b}.0.0/16")).chain((0..16).map(|i| format!("192.168.{}.0/20", i * 16)))
}

impl Networks {
    /// Sets up the default bridge and every stored user-defined network.
    pub async fn setup(bridge: &str, bip: &str, exec_root: &Path, data_root: &Path, bus: Arc<EventBus>) -> Result<Self, NetError> {
        let ipam = Ipam::new(bip).map_err(|e| NetError::Invalid(e.to_string()))?;
        let spec = NetworkSpec {
            id: hex::encode(Sha256::digest(format!("bridge:{bridge}:{bip}"))),
            name: "bridge".into(),
            bridge: bridge.into(),
            subnet: ipam.subnet(),
            gateway: ipam.gateway,
            created: crate::ids::now_rfc3339(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            internal: false,
            user_subnet: false,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
            ipv6: None,
        };
        let default = Arc::new(BridgeNetwork::setup(spec, true, bus.clone()).await?);
        let me = Networks {
            default,
            user: Mutex::new(BTreeMap::new()),
            store: data_root.join("network").join("networks.json"),
            sandboxes: exec_root.join("netns"),
            bus,
            changing: tokio::sync::Mutex::new(()),
        };
        let stored: Vec<NetworkSpec> = std::fs::read(&me.store).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        for spec in stored {
            let name = spec.name.clone();
            match BridgeNetwork::setup(spec, false, me.bus.clone()).await {
                Ok(n) => {
                    me.user.lock().unwrap_or_else(|p| p.into_inner()).insert(name, Arc::new(n));
                }
                Err(e) => tracing::warn!(network = %name, error = %e, "could not bring back a network"),
            }
        }
        Ok(me)
    }

    /// Where a container's network namespace is bind-mounted.
    pub fn sandbox_path(&self, container_id: &str) -> PathBuf {
        self.sandboxes.join(&container_id[..12.min(container_id.len())])
    }

    pub fn default_network(&self) -> Arc<BridgeNetwork> {
        self.default.clone()
    }

    /// Every bridge network, the default first.
    pub fn all(&self) -> Vec<Arc<BridgeNetwork>> {
        let mut v = vec![self.default.clone()];
        v.extend(self.user.lock().unwrap_or_else(|p| p.into_inner()).values().cloned());
        v
    }

    /// By name, full ID or unique ID prefix, as Docker looks networks up.
    pub fn find(&self, key: &str) -> Option<Arc<BridgeNetwork>> {
        let all = self.all();
        if let Some(n) = all.iter().find(|n| n.name() == key || n.id() == key) {
            return Some(n.clone());
        }
        let by_prefix: Vec<_> = all.iter().filter(|n| !key.is_empty() && n.id().starts_with(key)).collect();
        match by_prefix.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    }

    fn save(&self) -> Result<(), NetError> {
        let specs: Vec<NetworkSpec> = self.user.lock().unwrap_or_else(|p| p.into_inner()).values().map(|n| n.spec.clone()).collect();
        let io = |what: &str| {
            let what = format!("{what} {}", self.store.display());
            move |source| NetError::Io { what, source }
        };
        if let Some(dir) = self.store.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        crate::durable::write_json(&self.store, &specs).map_err(io("writing"))
    }

    /// Picks the subnet: the one asked for if it is free, else the first
    /// free default pool.
    async fn choose_subnet(&self, req: &CreateRequest) -> Result<Ipam, NetError> {
        let taken: Vec<Ipam> = self.all().iter().filter_map(|n| Ipam::new(&n.subnet()).ok()).collect();
        if let Some(subnet) = req.subnet.as_deref().filter(|s| !s.is_empty()) {
            let mut ipam = Ipam::new(subnet)
                .map_err(|_| NetError::Invalid(format!("invalid subnet {subnet}: it must be an IPv4 CIDR such as 10.10.0.0/24")))?;
            if ipam.subnet() != subnet {
                return Err(NetError::Invalid(format!("invalid network config:\ninvalid subnet {subnet}: it should be {}", ipam.subnet())));
            }
            if taken.iter().any(|t| t.overlaps(&ipam)) {
                return Err(NetError::Forbidden("Pool overlaps with other one on this address space".into()));
            }
            if let Some(gw) = req.gateway.as_deref().filter(|s| !s.is_empty()) {
                let gw: Ipv4Addr = gw.parse().map_err(|_| NetError::Invalid(format!("invalid gateway address {gw}")))?;
                if !ipam.contains(gw) {
                    return Err(NetError::Invalid(format!("no matching subnet for gateway {gw}")));
                }
                ipam.gateway = gw;
            }
            if let Some(r) = req.ip_range.as_deref().filter(|s| !s.is_empty()) {
                ipam.set_range(r).map_err(|e| NetError::Invalid(format!("invalid network config:\n{e}")))?;
                if req.gateway.as_deref().is_none_or(str::is_empty) {
                    ipam.gateway = ipam.default_gateway();
                }
            }
            for (name, ip) in &req.aux_addresses {
                let addr: Ipv4Addr =
                    ip.parse().map_err(|_| NetError::Invalid(format!("invalid auxiliary address {name}: {ip} is not an IPv4 address")))?;
                ipam.add_aux(name, addr).map_err(|e| NetError::Invalid(format!("invalid network config:\n{e}")))?;
            }
            return Ok(ipam);
        }
        if req.gateway.as_deref().is_some_and(|g| !g.is_empty()) {
            return Err(NetError::Invalid("a gateway needs a subnet (--subnet) to go with it".into()));
        }
        if req.ip_range.as_deref().is_some_and(|r| !r.is_empty()) || !req.aux_addresses.is_empty() {
            return Err(NetError::Invalid("an ip-range or auxiliary address needs a subnet (--subnet) to go with it".into()));
        }
        let h = netlink::connect()?;
        for pool in pools() {
            let Ok(ipam) = Ipam::new(&pool) else { continue };
            if taken.iter().any(|t| t.overlaps(&ipam)) {
                continue;
            }
            if netlink::subnet_taken_by(&h, ipam.network, ipam.prefix, "").await?.is_none() {
                return Ok(ipam);
            }
        }
        Err(NetError::Forbidden(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        ))
    }

    /// An `--ipv6` network's IPv6 side: the client's subnet (and gateway)
    /// if it is free, else the next free /64 of the daemon's unique local
    /// prefix.
    fn choose_subnet6(&self, req: &CreateRequest) -> Result<super::Ipv6Spec, NetError> {
        let taken: Vec<Ipam6> = self.all().iter().filter_map(|n| n.subnet6()).filter_map(|s| Ipam6::new(&s).ok()).collect();
        if let Some(subnet) = req.subnet6.as_deref().filter(|s| !s.is_empty()) {
            let mut ipam = Ipam6::new(subnet).map_err(|e| NetError::Invalid(e.to_string()))?;
            if ipam.subnet() != subnet {
                return Err(NetError::Invalid(format!("invalid network config:\ninvalid subnet {subnet}: it should be {}", ipam.subnet())));
            }
            if taken.iter().any(|t| t.overlaps(&ipam)) {
                return Err(NetError::Forbidden("Pool overlaps with other one on this address space".into()));
            }
            if let Some(gw) = req.gateway6.as_deref().filter(|s| !s.is_empty()) {
                let gw: Ipv6Addr = gw.parse().map_err(|_| NetError::Invalid(format!("invalid gateway address {gw}")))?;
                if !ipam.contains(gw) {
                    return Err(NetError::Invalid(format!("no matching subnet for gateway {gw}")));
                }
                ipam.gateway = gw;
            }
            return Ok(super::Ipv6Spec { subnet: ipam.subnet(), gateway: ipam.gateway, user_subnet: true });
        }
        if req.gateway6.as_deref().is_some_and(|g| !g.is_empty()) {
            return Err(NetError::Invalid("an IPv6 gateway needs an IPv6 subnet (--subnet) to go with it".into()));
        }
        for n in 0..=u16::MAX {
            let Ok(ipam) = Ipam6::new(&berth_shared::ipam6::default_subnet(&req.ula_seed, n)) else { continue };
            if !taken.iter().any(|t| t.overlaps(&ipam)) {
                return Ok(super::Ipv6Spec { subnet: ipam.subnet(), gateway: ipam.gateway, user_subnet: false });
            }
        }
        Err(NetError::Forbidden(
            "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network".into(),
        ))
    }

    /// `docker network create`: a new bridge br-<id12> on a free subnet.
    pub async fn create(&self, req: CreateRequest) -> Result<Arc<BridgeNetwork>, NetError> {
        let _one = self.changing.lock().await;
        if req.name.is_empty() {
            return Err(NetError::Invalid("network name must not be empty".into()));
        }
        // As Docker: any name ("my net" too) but one a URL path cannot carry.
        if req.name.contains('/') || req.name.chars().any(char::is_control) {
            return Err(NetError::Invalid(format!("invalid network name {:?}: it may not hold '/' or control characters", req.name)));
        }
        if PREDEFINED.contains(&req.name.as_str()) || self.find(&req.name).is_some_and(|n| n.name() == req.name) {
            return Err(NetError::Conflict(format!("network with name {} already exists", req.name)));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            other => return Err(NetError::NotFound(format!("plugin \"{other}\" not found"))),
        }
        let ipam = self.choose_subnet(&req).await?;
        let ipv6 = if req.enable_ipv6 { Some(self.choose_subnet6(&req)?) } else { None };
        let id = format!("{:032x}{:032x}", crate::ids::random_u128(), crate::ids::random_u128());
        let spec = NetworkSpec {
            bridge: format!("br-{}", &id[..12]),
            id,
            name: req.name.clone(),
            subnet: ipam.subnet(),
            gateway: ipam.gateway,
            created: crate::ids::now_rfc3339(),
            user_subnet: req.subnet.is_some(),
            labels: req.labels,
            options: req.options,
            internal: req.internal,
            ip_range: ipam.range(),
            aux_addresses: ipam.aux().clone(),
            ipv6,
        };
        let net = Arc::new(BridgeNetwork::setup(spec, false, self.bus.clone()).await?);
        self.user.lock().unwrap_or_else(|p| p.into_inner()).insert(req.name, net.clone());
        if let Err(e) = self.save() {
            self.user.lock().unwrap_or_else(|p| p.into_inner()).remove(net.name());
            net.teardown().await;
            return Err(e);
        }
        Ok(net)
    }

    /// `docker network rm` (the caller has checked it has no endpoints).
    pub async fn remove(&self, net: &Arc<BridgeNetwork>) -> Result<(), NetError> {
        let _one = self.changing.lock().await;
        if net.default {
            return Err(NetError::Forbidden(format!("{} is a pre-defined network and cannot be removed", net.name())));
        }
        self.user.lock().unwrap_or_else(|p| p.into_inner()).remove(net.name());
        self.save()?;
        net.teardown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_start_after_docker0_as_dockers_do() {
        let p: Vec<String> = pools().collect();
        assert_eq!(p[0], "172.17.0.0/16");
        assert_eq!(p[1], "172.18.0.0/16");
        assert_eq!(p[15], "192.168.0.0/20");
        assert_eq!(p.last().map(String::as_str), Some("192.168.240.0/20"));
    }
}
