//! Container networking: bridge networks (the default "bridge" on docker0
//! and user-defined ones on br-…), veth pairs and addresses (netlink),
//! address management, netfilter rules, published ports and the embedded
//! DNS of user-defined networks.

pub mod dns;
pub mod ipam;
pub mod nat;
pub mod netlink;
pub mod proxy;
mod registry;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_shared::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::EventBus;
use berth_shared::ipam6::Ipam6;
use ipam::{mac_for, mac_string, Ipam};
use netlink::{Iface, NetError};
pub use registry::{CreateRequest, Networks};

/// A container's place on one network, kept in its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    /// The network's name and ID.
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub network_id: String,
    /// The interface inside the container (eth0, eth1…).
    #[serde(default)]
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub host_if: String,
    /// The namespace's bind mount (Docker's SandboxKey).
    pub netns: PathBuf,
    /// Names other containers on the network resolve to it (user-defined
    /// networks: its name, short ID and `--network-alias`es).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// On an `--ipv6` network: its IPv6 address, prefix and the network's
    /// IPv6 gateway.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// `--link-local-ip`s (IPAMConfig.LinkLocalIPs) on its interface.
    #[serde(default)]
    pub link_local: Vec<std::net::IpAddr>,
}

/// What a network was made with, as kept on disk for user-defined ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    /// Its subnet was the client's (`--subnet`): `--ip` may be used on it.
    #[serde(default)]
    pub user_subnet: bool,
    /// `--ip-range`: where container addresses are handed out from.
    #[serde(default)]
    pub ip_range: Option<String>,
    /// `--aux-address name=ip`: addresses kept out of containers' reach.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// `--ipv6`: the network's IPv6 subnet and gateway.
    #[serde(default)]
    pub ipv6: Option<Ipv6Spec>,
}

/// An `--ipv6` network's IPv6 side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Spec {
    pub subnet: String,
    pub gateway: Ipv6Addr,
    /// The client's own subnet (`--subnet fd…`): `--ip6` may be used on it.
    pub user_subnet: bool,
}

/// A bridge network: the default one on docker0 or a user-defined one.
#[derive(Debug)]
pub struct BridgeNetwork {
    pub spec: NetworkSpec,
    /// The default "bridge" network (no embedded DNS, can't be removed).
    pub default: bool,
    index: u32,
    ipam: Mutex<Ipam>,
    /// `--ipv6` networks only.
    ipam6: Option<Mutex<Ipam6>>,
    bus: Arc<EventBus>,
    iptables: nat::Iptables,
    /// Running userland proxies, by container ID.
    proxies: Mutex<std::collections::HashMap<String, Vec<proxy::Proxy>>>,
}

/// A port to publish, as the client asked: `-p [IP:][HOST:]CONTAINER[/proto]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    /// 0: any free port.
    pub host_port: u16,
}

/// The addresses a container asks for on one network: `--ip`, `--ip6`,
/// `--mac-address` and `--link-local-ip`s (none: the network's next).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Option<[u8; 6]>,
    pub link_local: Vec<std::net::IpAddr>,
}

/// Docker names the host end "veth" + 7 hex characters.
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{container_id}:{network_id}").as_bytes()));
    format!("veth{}", &h[..7])
}

/// Makes a container's network namespace (kept by a bind mount at `path`).
pub fn create_sandbox(path: &Path) -> Result<(), NetError> {
    netlink::create_netns(path)
}

/// Unmounts and deletes a container's network namespace.
pub fn remove_sandbox(path: &Path) {
    netlink::remove_netns(path)
}

impl BridgeNetwork {
    /// The bridge's interface index.
    pub fn if_index(&self) -> u32 {
        self.index
    }

    /// Creates or adopts the network's bridge; fails clearly if the name or
    /// the subnet is taken by something else. Turns on IPv4 forwarding, as
    /// Docker does, and puts the bridge's rules in place.
    pub async fn setup(spec: NetworkSpec, default: bool, bus: Arc<EventBus>) -> Result<Self, NetError> {
        let mut ipam = Ipam::new(&spec.subnet).map_err(|e| NetError::Invalid(e.to_string()))?;
        ipam.gateway = spec.gateway;
        if let Some(r) = &spec.ip_range {
            ipam.set_range(r).map_err(NetError::Invalid)?;
        }
        for (name, ip) in &spec.aux_addresses {
            ipam.add_aux(name, *ip).map_err(NetError::Invalid)?;
        }
        let h = netlink::connect()?;
        if let Some(other) = netlink::subnet_taken_by(&h, ipam.network, ipam.prefix, &spec.bridge).await? {
            let hint = if default { ": configure another with --bip" } else { "" };
            return Err(NetError::Conflict(format!("subnet {} is already used by {other}{hint}", ipam.subnet())));
        }
        let ipam6 = match &spec.ipv6 {
            Some(v6) => {
                let mut i = Ipam6::new(&v6.subnet).map_err(|e| NetError::Invalid(e.to_string()))?;
                i.gateway = v6.gateway;
                Some(i)
            }
            None => None,
        };
        let (index, created) = netlink::ensure_bridge(&h, &spec.bridge, ipam.gateway, ipam.prefix).await?;
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
            tracing::warn!(error = %e, "could not enable IPv4 forwarding");
        }
        if let Some(i6) = &ipam6 {
            // As Docker: IPv6 on the bridge, forwarding on, the gateway's address.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", spec.bridge), "0");
            if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
                tracing::warn!(error = %e, "could not enable IPv6 forwarding");
            }
            if let Err(e) = netlink::add_address6(&h, index, i6.gateway, i6.prefix).await {
                if created {
                    let _ = netlink::delete_link(&h, &spec.bridge).await;
                }
                return Err(e);
            }
        }
        bus.emit(Event::BridgeUp { name: spec.bridge.clone(), address: ipam.gateway.to_string(), prefix: ipam.prefix, created });
        if !default {
            bus.emit(Event::NetworkCreated {
                id: spec.id.clone(),
                name: spec.name.clone(),
                driver: "bridge".into(),
                bridge: spec.bridge.clone(),
                subnet: ipam.subnet(),
                gateway: ipam.gateway.to_string(),
            });
        }
        let me = BridgeNetwork {
            spec,
            default,
            index,
            ipam: Mutex::new(ipam),
            ipam6: ipam6.map(Mutex::new),
            bus,
            iptables: nat::Iptables::V4,
            proxies: Mutex::new(Default::default()),
        };
        if let Err(e) = me.standing_rules() {
            me.teardown().await;
            return Err(NetError::Conflict(e.to_string()));
        }
        Ok(me)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn bridge(&self) -> &str {
        &self.spec.bridge
    }

    /// Docker's chains, its global rules and this bridge's (kept if present).
    fn standing_rules(&self) -> Result<(), nat::IptablesError> {
        for (table, chain) in nat::CHAINS {
            self.iptables.ensure_chain(table, chain)?;
        }
        let subnet = self.subnet();
        let own = nat::network_rules(self.bridge(), &subnet, self.spec.internal);
        for (r, place) in nat::global_rules().iter().chain(own.iter()).rev() {
            // Added now or kept from a berthd before this one: berth's either
            // way (the page would otherwise list them as someone else's).
            self.iptables.place(r, place)?;
            self.bus.emit(Event::RuleAdded { table: r.table.into(), rule: r.text() });
        }
        // An `--ipv6` network's the same again with ip6tables. (The state
        // and the page list IPv4's rules only.)
        if let Some(subnet6) = self.subnet6() {
            for (table, chain) in nat::CHAINS {
                nat::Iptables::V6.ensure_chain(table, chain)?;
            }
            let own = nat::network_rules(self.bridge(), &subnet6, self.spec.internal);
            for (r, place) in berth_shared::netfilter::global_rules_v6().iter().chain(own.iter()).rev() {
                nat::Iptables::V6.place(r, place)?;
            }
        }
        Ok(())
    }

    /// Removes a user-defined network's rules and bridge.
    pub async fn teardown(&self) {
        for (r, _) in nat::network_rules(self.bridge(), &self.subnet(), self.spec.internal) {
            // Gone from the kernel, whoever took it out: gone from the state.
            // A rule that could not be deleted stays, as the kernel keeps it.
            match self.iptables.delete(&r) {
                Ok(()) => {
                    self.bus.emit(Event::RuleRemoved { table: r.table.into(), rule: r.text() });
                }
                Err(e) => tracing::warn!(error = %e, "removing a bridge rule: it stays in the kernel"),
            }
        }
        if let Some(subnet6) = self.subnet6() {
            for (r, _) in nat::network_rules(self.bridge(), &subnet6, self.spec.internal) {
                if let Err(e) = nat::Iptables::V6.delete(&r) {
                    tracing::warn!(error = %e, "removing a bridge's IPv6 rule: it stays in the kernel");
                }
            }
        }
        if let Ok(h) = netlink::connect() {
            if let Err(e) = netlink::delete_link(&h, self.bridge()).await {
                tracing::warn!(error = %e, bridge = %self.bridge(), "deleting the bridge");
            }
        }
        self.bus.emit(Event::BridgeDown { name: self.bridge().into() });
        if !self.default {
            self.bus.emit(Event::NetworkRemoved { id: self.spec.id.clone(), name: self.spec.name.clone() });
        }
    }

    /// Claims each host port with the userland proxy (any free one for
    /// port 0): the ports as they will be published. On a failure the ports
    /// claimed so far are let go. The rules are the publish plan's steps
    /// (`berth_shared::plan::publish`), run after this.
    pub async fn claim_ports(&self, container_id: &str, ep: &Endpoint, requests: &[PortRequest]) -> Result<Vec<nat::PortMap>, NetError> {
        let mut maps = Vec::new();
        let mut proxies = Vec::new();
        for req in requests {
            let target = std::net::SocketAddr::from((ep.ip, req.container_port));
            let p = proxy::start(&req.proto, req.host_ip, req.host_port, target).await.map_err(|e| {
                let cause = if e.kind() == std::io::ErrorKind::AddrInUse { "address already in use".to_string() } else { e.to_string() };
                NetError::Conflict(berth_shared::container::refusal::port_in_use(
                    &container_id[..12],
                    &req.proto,
                    req.host_ip,
                    req.host_port,
                    &cause,
                ))
            })?;
            maps.push(nat::PortMap {
                proto: req.proto.clone(),
                host_ip: req.host_ip,
                host_port: p.port,
                container_ip: ep.ip,
                container_port: req.container_port,
            });
            proxies.push(p);
        }
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).insert(container_id.into(), proxies);
        Ok(maps)
    }

    /// Stops the proxy of one of a container's ports.
    pub fn stop_proxy(&self, container_id: &str, host_port: u16) {
        let mut all = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = all.get_mut(container_id) {
            v.retain(|p| p.port != host_port);
            if v.is_empty() {
                all.remove(container_id);
            }
        }
    }

    /// Stops every proxy of a container (its publish did not go through).
    pub fn stop_proxies(&self, container_id: &str) {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).remove(container_id);
    }

    /// Daemon start: port rules of this bridge that no container holds
    /// (a crash between adding them and recording them) are taken out.
    pub fn clear_stale_port_rules(&self) -> usize {
        let ipam = self.ipam.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let inside = |ip: Ipv4Addr| ipam.contains(ip);
        let mut n = 0;
        for (table, chain) in [("filter", "DOCKER"), ("nat", "DOCKER"), ("nat", "POSTROUTING")] {
            for line in self.iptables.list(table, chain) {
                if !berth_shared::netfilter::is_port_rule(table, &line, self.bridge(), &inside) {
                    continue;
                }
                let spec = line.split_whitespace().skip(2).collect::<Vec<_>>().join(" ");
                let r = nat::Rule::new(table, chain, &spec);
                if self.iptables.delete(&r).is_ok() {
                    self.bus.emit(Event::RuleRemoved { table: r.table.into(), rule: r.text() });
                    n += 1;
                }
            }
        }
        n
    }

    pub fn subnet(&self) -> String {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).subnet()
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).gateway
    }

    /// An `--ipv6` network's IPv6 subnet.
    pub fn subnet6(&self) -> Option<String> {
        self.ipam6.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).subnet())
    }

    /// An `--ipv6` network's IPv6 gateway.
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.ipam6.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).gateway)
    }

    /// Decides a container's endpoint on this network: its addresses are
    /// claimed here (those asked for, or the next free ones) and its names
    /// chosen; the host makes it when the plan runs
    /// ([`BridgeNetwork::attach`]). Claimed addresses go back with the
    /// endpoint's detaching, or [`BridgeNetwork::release_addresses`] if the
    /// plan stops before it.
    pub fn reserve(
        &self,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        default_route: bool,
        want: &Address,
    ) -> Result<berth_shared::plan::Attachment, NetError> {
        let (ip, prefix, gateway) = {
            let mut ipam = self.ipam.lock().unwrap_or_else(|p| p.into_inner());
            let ip = match want.ipv4 {
                Some(ip) => ipam.claim(ip).map(|_| ip),
                None => ipam.allocate(),
            }
            .map_err(|e| NetError::Conflict(e.to_string()))?;
            (ip, ipam.prefix, ipam.gateway)
        };
        let v6 = match &self.ipam6 {
            Some(m) => {
                let mut ipam6 = m.lock().unwrap_or_else(|p| p.into_inner());
                let got = match want.ipv6 {
                    Some(ip) => ipam6.claim(ip).map(|_| ip),
                    None => ipam6.allocate(),
                };
                match got {
                    Ok(ip6) => Some((ip6, ipam6.prefix, ipam6.gateway)),
                    Err(e) => {
                        drop(ipam6);
                        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(ip);
                        return Err(NetError::Conflict(e.to_string()));
                    }
                }
            }
            None => None,
        };
        Ok(berth_shared::plan::Attachment {
            id: container_id.into(),
            network: self.name().into(),
            bridge: self.bridge().into(),
            netns: netns.display().to_string(),
            ifname: ifname.into(),
            host_if: veth_name(container_id, self.id()),
            ip,
            prefix,
            gateway,
            mac: mac_string(want.mac.unwrap_or_else(|| mac_for(ip))),
            default_route,
            ip6: v6.map(|(a, p, _)| (a, p)),
            gateway6: v6.map(|(_, _, g)| g),
            link_local: want.link_local.clone(),
        })
    }

    /// The host's part of a plan's `AttachEndpoint`: the veth pair, its
    /// end inside with the decided addresses and routes. If it fails, the
    /// endpoint's addresses go back to the network.
    pub async fn attach(&self, a: &berth_shared::plan::Attachment) -> Result<(), NetError> {
        let iface = Iface {
            name: a.ifname.clone(),
            ip: a.ip,
            prefix: a.prefix,
            gateway: a.default_route.then_some(a.gateway),
            mac: berth_shared::ipam::parse_mac(&a.mac).ok_or_else(|| NetError::Invalid(format!("invalid MAC address: {}", a.mac)))?,
            ip6: a.ip6,
            gateway6: a.gateway6.filter(|_| a.default_route),
            link_local: a.link_local.clone(),
        };
        let r = async {
            let h = netlink::connect()?;
            netlink::attach(&h, self.index, Path::new(&a.netns), &a.host_if, &iface).await
        }
        .await;
        if r.is_err() {
            self.release_addresses(a.ip, a.ip6.map(|(ip, _)| ip));
        }
        r
    }

    /// The record of an endpoint made as `a` decided, known by `aliases`.
    pub fn endpoint_of(&self, a: &berth_shared::plan::Attachment, aliases: Vec<String>) -> Endpoint {
        Endpoint {
            endpoint_id: hex::encode(Sha256::digest(format!("{}:{}", a.id, a.host_if))),
            network: self.name().into(),
            network_id: self.id().into(),
            ifname: a.ifname.clone(),
            ip: a.ip,
            prefix: a.prefix,
            gateway: a.gateway,
            mac: a.mac.clone(),
            host_if: a.host_if.clone(),
            netns: PathBuf::from(&a.netns),
            aliases,
            ip6: a.ip6.map(|(ip, _)| ip),
            prefix6: a.ip6.map(|(_, p)| p).unwrap_or(0),
            gateway6: a.gateway6,
            link_local: a.link_local.clone(),
        }
    }

    /// Gives an endpoint's addresses back to the network (its veth pair
    /// and event are the plan's: `berth_shared::plan::Step::DetachEndpoint`).
    pub fn release_addresses(&self, ip: Ipv4Addr, ip6: Option<std::net::Ipv6Addr>) {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(ip);
        if let (Some(m), Some(ip6)) = (&self.ipam6, ip6) {
            m.lock().unwrap_or_else(|p| p.into_inner()).release(ip6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_look_like_dockers_and_fit_ifnamsiz() {
        let n = veth_name(&"a".repeat(64), "net1");
        assert!(n.starts_with("veth") && n.len() == 11, "{n}");
        assert_eq!(n, veth_name(&"a".repeat(64), "net1"));
        assert_ne!(n, veth_name(&"b".repeat(64), "net1"));
        assert_ne!(n, veth_name(&"a".repeat(64), "net2"));
    }
}
