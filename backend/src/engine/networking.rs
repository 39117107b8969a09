//! A container's networks: which it joins at create, joining them at start
//! (namespace, one interface per network, published ports, embedded DNS),
//! leaving them at exit, and `docker network connect` / `disconnect`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Weak};

use berth_shared::plan::{self, Plan, Step};
use berth_shared::Status;
use serde_json::Value;

use super::containers::{internal, Container, Containers, Link, NetAttach, Record};
use crate::error::{ApiError, ErrorKind};
use crate::host::LinuxHost;
use crate::network::{dns, BridgeNetwork};
use crate::runtime::spec::NetNs;

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Forbidden, msg)
}

/// The names a container answers to on a user-defined network.
fn aliases_for(r: &Record, extra: &[String]) -> Vec<String> {
    let mut v = vec![r.name.clone(), r.id[..12].to_string()];
    v.extend(extra.iter().filter(|a| !a.is_empty()).cloned());
    v.dedup();
    v
}

/// An endpoint's DriverOpts: kept as given, except the two the bridge
/// driver acts on, which berth does not (refused by name, never ignored).
pub fn driver_opts(v: &Value) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    let Some(sent) = v.as_object() else { return Ok(None) };
    let mut out = std::collections::BTreeMap::new();
    for (k, val) in sent {
        if matches!(k.as_str(), "com.docker.network.endpoint.sysctls" | "com.docker.network.endpoint.ifname") {
            return Err(ApiError::bad_request(format!("berth does not support the endpoint driver option {k}")));
        }
        out.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
    }
    Ok(Some(out))
}

/// The addresses an endpoint's IPAMConfig asks for.
#[derive(Debug, Default)]
pub struct Requested {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub link_local: Vec<IpAddr>,
}

/// An endpoint decided for a start: its network, its step's description,
/// the names it answers to.
struct Decided {
    net: Arc<BridgeNetwork>,
    endpoint: plan::Attachment,
    aliases: Vec<String>,
}

impl Decided {
    /// Its addresses go back to the network (it was never made).
    fn release(&self) {
        self.net.release_addresses(self.endpoint.ip, self.endpoint.ip6.map(|(ip, _)| ip));
    }

    /// The record of it, once made.
    fn record(&self) -> crate::network::Endpoint {
        self.net.endpoint_of(&self.endpoint, self.aliases.clone())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl Containers {
    /// The networks a new container joins: its NetworkMode first, then any
    /// other EndpointsConfig entry, each with its `--network-alias`es.
    pub(super) fn networks_for_create(&self, host_config: &Value, endpoints: &Value) -> Result<Vec<NetAttach>, ApiError> {
        let mode = match host_config["NetworkMode"].as_str().unwrap_or("default") {
            "" | "default" => "bridge",
            m => m,
        };
        if mode == "host" || mode == "none" {
            return Ok(Vec::new());
        }
        if mode.starts_with("container:") {
            return Err(ApiError::bad_request(
                "berth does not support sharing another container's network namespace (--network container:…)",
            ));
        }
        let mut out = Vec::new();
        let mut add = |key: &str, conf: &Value| -> Result<(), ApiError> {
            let key = if key == "default" { "bridge" } else { key };
            let name = match self.networks().and_then(|n| n.find(key)) {
                Some(n) => n.name().to_string(),
                None if key == "bridge" => key.to_string(),
                None => return Err(ApiError::not_found(format!("network {key} not found"))),
            };
            if name == "bridge" && !strings(&conf["Aliases"]).is_empty() {
                return Err(ApiError::bad_request("network-scoped alias is supported only for containers in user defined networks"));
            }
            let asked = self.requested_addresses(&name, &conf["IPAMConfig"])?;
            // The endpoint's MacAddress (a container-wide one was moved
            // into the main network's by api::versions::adapt_create).
            let mac = match conf["MacAddress"].as_str().filter(|m| !m.is_empty()) {
                Some(m) => {
                    berth_shared::ipam::parse_mac(m).ok_or_else(|| ApiError::bad_request(format!("invalid MAC address: {m}")))?;
                    Some(m.to_ascii_lowercase())
                }
                None => None,
            };
            if !out.iter().any(|a: &NetAttach| a.network == name) {
                let links = strings(&conf["Links"]);
                for l in &links {
                    berth_shared::etc::parse_link(l).map_err(ApiError::bad_request)?;
                }
                let driver_opts = driver_opts(&conf["DriverOpts"])?;
                let gw_priority = conf["GwPriority"].as_i64().unwrap_or(0);
                out.push(NetAttach {
                    network: name,
                    aliases: strings(&conf["Aliases"]),
                    links,
                    ipv4: asked.ipv4,
                    ipv6: asked.ipv6,
                    link_local: asked.link_local,
                    mac,
                    driver_opts,
                    gw_priority,
                });
            }
            Ok(())
        };
        // The CLI names the default network's endpoint "default" (as its NetworkMode).
        let main = match &endpoints[mode] {
            Value::Null if mode == "bridge" => &endpoints["default"],
            conf => conf,
        };
        add(mode, main)?;
        if let Some(map) = endpoints.as_object() {
            for (key, conf) in map {
                add(key, conf)?;
            }
        }
        Ok(out)
    }

    /// A create's legacy links (HostConfig.Links on the default bridge; on a
    /// user-defined network they are the endpoint's, and the CLI moves them
    /// there): each child must exist and not use the host's network.
    pub(super) fn links_for_create(&self, host_config: &Value) -> Result<Vec<Link>, ApiError> {
        if !matches!(host_config["NetworkMode"].as_str().unwrap_or(""), "" | "default" | "bridge") {
            return Ok(Vec::new());
        }
        let mut out: Vec<Link> = Vec::new();
        for l in strings(&host_config["Links"]) {
            let (name, alias) = berth_shared::etc::parse_link(&l).map_err(ApiError::bad_request)?;
            let child =
                self.get(&name).map_err(|e| ApiError::bad_request(format!("could not get container for {name}: {}", e.message)))?.record();
            if child.network_mode() == "host" {
                return Err(ApiError::bad_request(
                    "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                ));
            }
            out.retain(|x| x.alias != alias);
            out.push(Link { child: child.id, alias });
        }
        Ok(out)
    }

    /// `docker rm --link /parent/alias`: forgets the link (the running
    /// parent keeps what it was given at its start, as Docker's).
    pub fn remove_link(&self, parent: &str, alias: &str) -> Result<(), ApiError> {
        let not_found = || ApiError::not_found(format!("No such container: /{parent}/{alias}"));
        let c = self.get(parent).map_err(|_| not_found())?;
        if !c.record().links.iter().any(|l| l.alias == alias) {
            return Err(not_found());
        }
        let r = c.update(|r| r.links.retain(|l| l.alias != alias));
        self.save(&r).map_err(internal)
    }

    /// At start, what a container's legacy links give it: a hosts line per
    /// child (its address; the alias, its hostname and its name) and the
    /// links' environment. Each child must run on the default bridge.
    pub(super) fn resolve_links(&self, r: &Record) -> Result<(Vec<(Ipv4Addr, String)>, Vec<String>), ApiError> {
        let mut hosts = Vec::new();
        let mut env = Vec::new();
        if r.links.is_empty() || !r.endpoints.contains_key("bridge") {
            return Ok((hosts, env));
        }
        for link in &r.links {
            let full = format!("/{}/{}", r.name, link.alias);
            let child = self.get(&link.child).map(|c| c.record()).map_err(|_| {
                ApiError::new(ErrorKind::Conflict, format!("Cannot link to a non running container: {} AS {full}", link.child))
            })?;
            if child.state.status != Status::Running {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!("Cannot link to a non running container: /{} AS {full}", child.name),
                ));
            }
            let Some(ep) = child.endpoints.get("bridge") else {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!("Cannot link to /{}, as it does not belong to the default network", child.name),
                ));
            };
            let mut names = format!("{} {}", link.alias, child.config["Hostname"].as_str().unwrap_or(""));
            if link.alias != child.name {
                names.push_str(&format!(" {}", child.name));
            }
            hosts.push((ep.ip, names));
            let exposed: Vec<String> = child.config["ExposedPorts"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            env.extend(berth_shared::etc::link_env(&full, ep.ip, &child.env(), &exposed));
        }
        Ok((hosts, env))
    }

    /// An endpoint's IPAMConfig (`--ip`, `--ip6`, `--link-local-ip`),
    /// checked as Docker checks it: a static address only on a user-defined
    /// network with the client's own subnet of its family, inside it.
    /// (Whether another container has it is known at start.)
    pub fn requested_addresses(&self, network: &str, ipam: &Value) -> Result<Requested, ApiError> {
        let mut out = Requested::default();
        let net = self.networks().and_then(|n| n.find(network));
        let text = |key: &str| ipam[key].as_str().filter(|s| !s.is_empty()).map(String::from);
        let custom_only = || {
            ApiError::bad_request("user specified IP address is supported only when connecting to networks with user configured subnets")
        };
        let outside =
            |ip: &dyn std::fmt::Display| ApiError::bad_request(format!("no configured subnet or ip-range contain the IP address {ip}"));
        if let Some(text) = text("IPv4Address") {
            let ip: Ipv4Addr = text.parse().map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {text}")))?;
            match &net {
                Some(n) if n.default => {
                    return Err(ApiError::bad_request("user specified IP address is supported on user defined networks only"))
                }
                Some(n) if !n.spec.user_subnet => return Err(custom_only()),
                Some(n)
                    if !berth_shared::ipam::Ipam::new(&n.spec.subnet)
                        .is_ok_and(|i| i.contains(ip) && i.gateway != ip && n.spec.gateway != ip) =>
                {
                    return Err(outside(&ip))
                }
                _ => out.ipv4 = Some(ip),
            }
        }
        if let Some(text) = text("IPv6Address") {
            let ip: Ipv6Addr = text
                .parse()
                .ok()
                .filter(|ip: &Ipv6Addr| !ip.is_unspecified() && ip.to_ipv4_mapped().is_none())
                .ok_or_else(|| ApiError::bad_request(format!("invalid IPv6 address: {text}")))?;
            match net.as_ref().map(|n| (n.default, n.spec.ipv6.as_ref())) {
                Some((true, _)) => {
                    return Err(ApiError::bad_request("user specified IP address is supported on user defined networks only"))
                }
                Some((_, None)) => return Err(custom_only()),
                Some((_, Some(v6))) if !v6.user_subnet => return Err(custom_only()),
                Some((_, Some(v6))) if !berth_shared::ipam6::Ipam6::new(&v6.subnet).is_ok_and(|i| i.contains(ip) && v6.gateway != ip) => {
                    return Err(outside(&ip))
                }
                _ => out.ipv6 = Some(ip),
            }
        }
        for v in ipam["LinkLocalIPs"].as_array().into_iter().flatten() {
            let text = v.as_str().unwrap_or_default();
            let ip: IpAddr = text
                .parse()
                .ok()
                .filter(|ip: &IpAddr| !ip.is_unspecified())
                .ok_or_else(|| ApiError::bad_request(format!("invalid link-local IP address: {text}")))?;
            out.link_local.push(ip);
        }
        Ok(out)
    }

    /// Does the container use the embedded DNS (its first network is a
    /// user-defined one)?
    pub(super) fn embedded_dns(&self, r: &Record) -> bool {
        r.attachments().first().is_some_and(|a| a.network != "bridge")
    }

    /// At start: a namespace joined to each of the container's networks,
    /// ports published on the first, the DNS server if it uses one. Each
    /// endpoint's addresses are decided (claimed from its network) and the
    /// ports' proxies claimed first; then one plan (`plan::join`, the
    /// simulator's too) makes the namespace, the endpoints and the port
    /// rules, all or nothing, journaled while it runs.
    pub(super) async fn join_networks(self: &Arc<Self>, c: &Arc<Container>, rec: &Record) -> Result<NetNs, ApiError> {
        match rec.network_mode().as_str() {
            "host" => return Ok(NetNs::Host),
            "none" => return Ok(NetNs::New),
            _ => {}
        }
        let Some(nets) = self.networks() else { return Ok(NetNs::New) };
        let requests = crate::engine::containers::port_requests(rec).map_err(ApiError::bad_request)?;
        let path = nets.sandbox_path(&rec.id);
        let attachments = rec.attachments();
        // The default route: the endpoint with the highest GwPriority (the
        // first network, the NetworkMode's, when they are equal).
        let top = attachments.iter().map(|a| a.gw_priority).max().unwrap_or(0);
        let gateway_at = attachments.iter().position(|a| a.gw_priority == top).unwrap_or(0);
        let mut decided: Vec<Decided> = Vec::new();
        for (i, a) in attachments.iter().enumerate() {
            let reserved =
                nets.find(&a.network).ok_or_else(|| ApiError::not_found(format!("network {} not found", a.network))).and_then(|net| {
                    // An internal network gives no way out: no default route through it.
                    let route = i == gateway_at && !net.spec.internal;
                    // (An address another container has is the client's to resolve: 409.)
                    let endpoint = net.reserve(&rec.id, &path, &format!("eth{i}"), route, &a.address())?;
                    let aliases = if net.default { Vec::new() } else { aliases_for(rec, &a.aliases) };
                    Ok(Decided { net, endpoint, aliases })
                });
            match reserved {
                Ok(d) => decided.push(d),
                Err(e) => {
                    decided.iter().for_each(Decided::release);
                    return Err(e);
                }
            }
        }
        // (Docker publishes no port of a container on an internal network.)
        let mut maps = Vec::new();
        if let Some(first) = decided.first().filter(|d| !d.net.spec.internal) {
            match first.net.claim_ports(&rec.id, &first.record(), &requests).await {
                Ok(m) => maps = m,
                Err(e) => {
                    decided.iter().for_each(Decided::release);
                    return Err(e.into());
                }
            }
        }
        let endpoints: Vec<plan::Attachment> = decided.iter().map(|d| d.endpoint.clone()).collect();
        let join = plan::join(&rec.id, &path.display().to_string(), &endpoints, &maps);
        if let Err(failed) = LinuxHost::new(Some(&nets)).journaled(&self.plans_dir()).run(&join, &self.bus).await {
            if let Some(first) = decided.first() {
                first.net.stop_proxies(&rec.id);
            }
            // The undoing gave back the addresses of the endpoints it made, a
            // failed attach its own; those the plan never reached go back here.
            let stopped = failed.failures.first().and_then(|f| join.steps.iter().position(|s| *s == f.step)).unwrap_or(0);
            for d in &decided {
                let at = join.steps.iter().position(|s| matches!(s, Step::AttachEndpoint(a) if *a == d.endpoint));
                if at.is_some_and(|at| at > stopped) {
                    d.release();
                }
            }
            let rule = failed.failures.first().is_some_and(|f| matches!(f.step, Step::AddRule(_) | Step::Publish { .. }));
            return Err(if rule { ApiError::conflict(failed.to_string()) } else { internal(failed) });
        }
        crate::fault::point("start.joined");
        let r = c.update(|r| {
            r.sandbox = Some(path.clone());
            for d in &decided {
                r.endpoints.insert(d.net.name().to_string(), d.record());
            }
            r.ports = maps;
        });
        self.save(&r).map_err(internal)?;
        if self.embedded_dns(rec) {
            let server =
                dns::start(&path, self.resolver(&rec.id)).map_err(|e| internal(format!("starting the embedded DNS server: {e}")))?;
            *c.dns.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        }
        Ok(NetNs::Join(path))
    }

    /// At exit, or when a start fails: "die" is told, and the run is taken
    /// apart as the state says it was put together (`plan::exit`: the DNS
    /// server stops, ports are unpublished, the endpoints and the namespace
    /// go, then the root) — the decision the simulator runs too.
    pub(super) async fn end_run(&self, c: &Container, code: i32) {
        c.dns.lock().unwrap_or_else(|p| p.into_inner()).take();
        let rec = c.record();
        let netns = rec.sandbox.as_ref().map(|p| p.display().to_string());
        let plan = self.bus.with_state(|s| plan::exit(s, &rec.id, code, netns.as_deref()));
        let nets = self.networks();
        let _ = LinuxHost::new(nets.as_deref()).run(&plan, &self.bus).await;
        self.forget_run(c);
    }

    /// Daemon start after a crash: what a container's record says its run
    /// held (the state, new, was never told) is taken apart with the same
    /// steps.
    pub(super) async fn end_recorded_run(&self, c: &Container) {
        let rec = c.record();
        let Some(nets) = self.networks() else { return };
        let mut steps = Vec::new();
        if let Some(primary) = rec.primary_endpoint().and_then(|ep| nets.find(&ep.network_id)) {
            steps.extend(plan::unpublish(&rec.id, primary.bridge(), &rec.ports));
        }
        // (By the name the record keys it by: a record from an older berthd
        // may not carry it in the endpoint.)
        for (network, ep) in &rec.endpoints {
            steps.push(Step::DetachEndpoint {
                id: rec.id.clone(),
                network: network.clone(),
                host_if: ep.host_if.clone(),
                ip: ep.ip.to_string(),
                ip6: ep.ip6.map(|a| a.to_string()),
                keep_link: rec.sandbox.is_some(),
            });
        }
        if let Some(path) = &rec.sandbox {
            steps.push(Step::RemoveNetns { id: rec.id.clone(), path: path.display().to_string() });
        }
        let _ = LinuxHost::new(Some(&nets)).run(&Plan::best_effort(steps), &self.bus).await;
        self.forget_run(c);
    }

    fn forget_run(&self, c: &Container) {
        let r = c.update(|r| {
            r.endpoints.clear();
            r.ports.clear();
            r.sandbox = None;
        });
        let _ = self.save(&r);
    }

    /// Answers names for the embedded DNS server of container `id`: the
    /// running containers that share a user-defined network with it.
    fn resolver(self: &Arc<Self>, id: &str) -> dns::Resolve {
        let me: Weak<Containers> = Arc::downgrade(self);
        let id = id.to_string();
        Arc::new(move |name: &str| {
            let me = me.upgrade()?;
            let asker = me.get(&id).ok()?.record();
            // `--link db:alias` on a user-defined network: a name only the
            // container that links resolves, to db's address there.
            for a in asker.attachments() {
                for (child, alias) in a.links.iter().filter_map(|l| berth_shared::etc::parse_link(l).ok()) {
                    if !alias.eq_ignore_ascii_case(name) {
                        continue;
                    }
                    let ep = me.get(&child).ok().and_then(|c| c.record().endpoints.get(&a.network).cloned());
                    if let Some(ep) = ep {
                        return Some(std::iter::once(IpAddr::V4(ep.ip)).chain(ep.ip6.map(IpAddr::V6)).collect());
                    }
                }
            }
            let mut found: Vec<IpAddr> = Vec::new();
            for other in me.list().iter().map(|c| c.record()).filter(|r| r.state.status == Status::Running) {
                for (net, ep) in &other.endpoints {
                    let shared = asker.endpoints.get(net).is_some_and(|mine| !mine.aliases.is_empty());
                    if shared && ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                        found.push(ep.ip.into());
                        found.extend(ep.ip6.map(IpAddr::V6));
                    }
                }
            }
            (!found.is_empty()).then_some(found)
        })
    }

    /// Running containers with an endpoint on this network.
    pub fn attached_to(&self, net: &BridgeNetwork) -> Vec<Record> {
        self.list()
            .iter()
            .map(|c| c.record())
            .filter(|r| r.state.status == Status::Running && r.endpoints.values().any(|e| e.network_id == net.id()))
            .collect()
    }

    /// `docker network connect`: a running container gets a new interface
    /// at once; a stopped one joins at its next start.
    pub async fn connect_network(
        &self,
        c: &Arc<Container>,
        net: &Arc<BridgeNetwork>,
        aliases: Vec<String>,
        links: Vec<String>,
        asked: Requested,
        driver_opts: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<(), ApiError> {
        let rec = c.record();
        for l in &links {
            berth_shared::etc::parse_link(l).map_err(ApiError::bad_request)?;
        }
        if net.default && !links.is_empty() {
            return Err(ApiError::bad_request("links are only supported for user-defined networks"));
        }
        match rec.network_mode().as_str() {
            "host" => {
                return Err(forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ))
            }
            "none" => {
                return Err(forbidden("container cannot be connected to multiple networks with one of the networks in private (none) mode"))
            }
            _ => {}
        }
        if net.default && !aliases.is_empty() {
            return Err(ApiError::bad_request("network-scoped alias is supported only for containers in user defined networks"));
        }
        let attachments = rec.attachments();
        if attachments.iter().any(|a| a.network == net.name()) {
            return Err(forbidden(format!("endpoint with name {} already exists in network {}", rec.name, net.name())));
        }
        let attach = NetAttach {
            network: net.name().to_string(),
            aliases,
            links,
            ipv4: asked.ipv4,
            ipv6: asked.ipv6,
            link_local: asked.link_local,
            mac: None,
            driver_opts,
            gw_priority: 0,
        };
        if rec.state.status == Status::Running {
            if let Some(path) = rec.sandbox.clone() {
                let used: Vec<&str> = rec.endpoints.values().map(|e| e.ifname.as_str()).collect();
                let ifname = (0..).map(|i| format!("eth{i}")).find(|n| !used.contains(&n.as_str())).unwrap_or_default();
                let names = if net.default { Vec::new() } else { aliases_for(&rec, &attach.aliases) };
                let endpoint = net.reserve(&rec.id, &path, &ifname, false, &attach.address())?;
                // (A failed attach gives its addresses back.)
                LinuxHost::new(self.networks().as_deref()).run(&plan::connect(&endpoint), &self.bus).await.map_err(internal)?;
                c.update(|r| {
                    r.endpoints.insert(net.name().to_string(), net.endpoint_of(&endpoint, names));
                });
            }
        }
        let r = c.update(|r| {
            let mut all = attachments;
            all.push(attach);
            r.networks = Some(all);
        });
        self.save(&r).map_err(internal)
    }

    /// `docker network disconnect`: the interface goes at once if running,
    /// and the container no longer joins the network at start.
    pub async fn disconnect_network(&self, c: &Arc<Container>, net: &Arc<BridgeNetwork>) -> Result<(), ApiError> {
        let rec = c.record();
        let mut attachments = rec.attachments();
        let before = attachments.len();
        attachments.retain(|a| a.network != net.name());
        let ep = rec.endpoints.get(net.name()).cloned();
        if attachments.len() == before && ep.is_none() {
            return Err(forbidden(format!("container {} is not connected to network {}", rec.id, net.name())));
        }
        if ep.is_some() {
            // Its ports if they lead here, then the endpoint and its pair
            // (the namespace stays): the simulator's decision too.
            let plan = self.bus.with_state(|s| plan::leave(s, &rec.id, net.name()));
            let _ = LinuxHost::new(self.networks().as_deref()).run(&plan, &self.bus).await;
            let left = rec.endpoints.get(net.name()).map(|e| e.ip);
            c.update(|r| r.ports.retain(|p| Some(p.container_ip) != left));
        }
        let r = c.update(|r| {
            r.endpoints.remove(net.name());
            r.networks = Some(attachments);
        });
        self.save(&r).map_err(internal)
    }
}
