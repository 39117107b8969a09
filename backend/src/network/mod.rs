//! Container networking: the docker0-style bridge, veth pairs and addresses
//! (netlink), and address management.

pub mod ipam;
pub mod nat;
pub mod netlink;
pub mod proxy;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_shared::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::EventBus;
use ipam::{mac_for, mac_string, Ipam};
use netlink::{Eth0, NetError};

/// A container's place on the bridge, kept in its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub host_if: String,
    /// The namespace's bind mount (Docker's SandboxKey).
    pub netns: PathBuf,
}

/// The default bridge network ("bridge", on docker0).
#[derive(Debug)]
pub struct BridgeNetwork {
    pub id: String,
    pub bridge: String,
    index: u32,
    ipam: Mutex<Ipam>,
    netns_dir: PathBuf,
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

/// Docker names the host end "veth" + 7 hex characters.
pub fn veth_name(container_id: &str) -> String {
    let h = hex::encode(Sha256::digest(container_id.as_bytes()));
    format!("veth{}", &h[..7])
}

impl BridgeNetwork {
    /// Creates or adopts the bridge; fails clearly if the name or the subnet
    /// is taken by something else. Turns on IPv4 forwarding, as Docker does.
    pub async fn setup(bridge: &str, subnet: &str, exec_root: &std::path::Path, bus: Arc<EventBus>) -> Result<Self, NetError> {
        let ipam = Ipam::new(subnet).map_err(|e| NetError::Conflict(e.to_string()))?;
        let h = netlink::connect()?;
        if let Some(other) = netlink::subnet_taken_by(&h, ipam.network, ipam.prefix, bridge).await? {
            return Err(NetError::Conflict(format!("subnet {} is already used by {other}: configure another with --bip", ipam.subnet())));
        }
        let (index, created) = netlink::ensure_bridge(&h, bridge, ipam.gateway, ipam.prefix).await?;
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
            tracing::warn!(error = %e, "could not enable IPv4 forwarding");
        }
        bus.emit(Event::BridgeUp { name: bridge.into(), address: ipam.gateway.to_string(), prefix: ipam.prefix, created });
        let id = hex::encode(Sha256::digest(format!("bridge:{bridge}:{subnet}")));
        let me = BridgeNetwork {
            id,
            bridge: bridge.into(),
            index,
            ipam: Mutex::new(ipam),
            netns_dir: exec_root.join("netns"),
            bus,
            iptables: nat::Iptables,
            proxies: Mutex::new(Default::default()),
        };
        me.standing_rules().map_err(|e| NetError::Conflict(e.to_string()))?;
        Ok(me)
    }

    /// Docker's chains and the bridge's standing rules (kept if present).
    fn standing_rules(&self) -> Result<(), nat::IptablesError> {
        for (table, chain) in nat::CHAINS {
            self.iptables.ensure_chain(table, chain)?;
        }
        let subnet = self.subnet();
        for r in nat::bridge_rules(&self.bridge, &subnet) {
            if self.iptables.append(&r)? {
                self.bus.emit(Event::RuleAdded { table: r.table.into(), rule: r.text() });
            }
        }
        Ok(())
    }

    /// Publishes ports: claims each host port with the userland proxy, then
    /// adds Docker's rules. On any failure everything done is undone.
    pub async fn publish(&self, container_id: &str, ep: &Endpoint, requests: &[PortRequest]) -> Result<Vec<nat::PortMap>, NetError> {
        let mut maps = Vec::new();
        let mut proxies = Vec::new();
        for req in requests {
            let target = std::net::SocketAddr::from((ep.ip, req.container_port));
            let p = match proxy::start(req.host_ip, req.host_port, target).await {
                Ok(p) => p,
                Err(e) => {
                    self.unpublish_rules(container_id, &maps);
                    let shown = if req.host_port == 0 { "0".to_string() } else { req.host_port.to_string() };
                    return Err(NetError::Conflict(format!(
                        "driver failed programming external connectivity on endpoint {}: Error starting userland proxy: listen {}4 {}:{shown}: bind: {}",
                        &container_id[..12],
                        req.proto,
                        req.host_ip,
                        if e.kind() == std::io::ErrorKind::AddrInUse { "address already in use".to_string() } else { e.to_string() }
                    )));
                }
            };
            let map = nat::PortMap { proto: req.proto.clone(), host_ip: req.host_ip, host_port: p.port, container_ip: ep.ip, container_port: req.container_port };
            proxies.push(p);
            for r in nat::port_rules(&self.bridge, &map) {
                match self.iptables.append(&r) {
                    Ok(_) => {
                        self.bus.emit(Event::RuleAdded { table: r.table.into(), rule: r.text() });
                    }
                    Err(e) => {
                        maps.push(map);
                        self.unpublish_rules(container_id, &maps);
                        return Err(NetError::Conflict(e.to_string()));
                    }
                };
            }
            self.bus.emit(Event::PortPublished {
                id: container_id.into(),
                proto: map.proto.clone(),
                host_ip: map.host_ip.to_string(),
                host_port: map.host_port,
                container_ip: map.container_ip.to_string(),
                container_port: map.container_port,
            });
            maps.push(map);
        }
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).insert(container_id.into(), proxies);
        Ok(maps)
    }

    fn unpublish_rules(&self, container_id: &str, maps: &[nat::PortMap]) {
        for map in maps {
            for r in nat::port_rules(&self.bridge, map) {
                match self.iptables.delete(&r) {
                    Ok(true) => {
                        self.bus.emit(Event::RuleRemoved { table: r.table.into(), rule: r.text() });
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "removing a port rule"),
                }
            }
            self.bus.emit(Event::PortUnpublished { id: container_id.into(), proto: map.proto.clone(), host_port: map.host_port });
        }
    }

    /// Removes the rules and stops the proxies of a container's ports.
    pub fn unpublish(&self, container_id: &str, maps: &[nat::PortMap]) {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).remove(container_id);
        self.unpublish_rules(container_id, maps);
    }

    pub fn subnet(&self) -> String {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).subnet()
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).gateway
    }

    /// A new network namespace for the container, joined to the bridge.
    pub async fn connect(&self, container_id: &str) -> Result<Endpoint, NetError> {
        let (ip, prefix, gateway) = {
            let mut ipam = self.ipam.lock().unwrap_or_else(|p| p.into_inner());
            let ip = ipam.allocate().map_err(|e| NetError::Conflict(e.to_string()))?;
            (ip, ipam.prefix, ipam.gateway)
        };
        let netns = self.netns_dir.join(&container_id[..12]);
        let host_if = veth_name(container_id);
        let mac = mac_for(ip);
        let r = async {
            netlink::create_netns(&netns)?;
            let h = netlink::connect()?;
            netlink::attach(&h, self.index, &netns, &host_if, &Eth0 { ip, prefix, gateway, mac }).await
        }
        .await;
        if let Err(e) = r {
            netlink::remove_netns(&netns);
            self.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(ip);
            return Err(e);
        }
        let ep = Endpoint {
            endpoint_id: hex::encode(Sha256::digest(format!("{container_id}:{host_if}"))),
            ip,
            prefix,
            gateway,
            mac: mac_string(mac),
            host_if,
            netns,
        };
        self.bus.emit(Event::EndpointAttached {
            id: container_id.into(),
            network: "bridge".into(),
            bridge: self.bridge.clone(),
            host_if: ep.host_if.clone(),
            ip: ip.to_string(),
            prefix,
            mac: ep.mac.clone(),
            gateway: gateway.to_string(),
            netns: ep.netns.display().to_string(),
        });
        Ok(ep)
    }

    /// Removes the veth pair and the namespace, releases the address.
    pub async fn disconnect(&self, container_id: &str, ep: &Endpoint) {
        if let Ok(h) = netlink::connect() {
            if let Err(e) = netlink::detach(&h, &ep.host_if).await {
                tracing::warn!(error = %e, host_if = %ep.host_if, "removing veth");
            }
        }
        netlink::remove_netns(&ep.netns);
        self.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(ep.ip);
        self.bus.emit(Event::EndpointDetached { id: container_id.into(), host_if: ep.host_if.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_look_like_dockers_and_fit_ifnamsiz() {
        let n = veth_name(&"a".repeat(64));
        assert!(n.starts_with("veth") && n.len() == 11, "{n}");
        assert_eq!(n, veth_name(&"a".repeat(64)));
        assert_ne!(n, veth_name(&"b".repeat(64)));
    }
}
