//! Every rtnetlink call berth makes, in one module (rtnetlink is pinned
//! exactly: its API moves between minor versions).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use rtnetlink::{new_connection, Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(String),
    /// 409: clashes with what exists (a name, a subnet, an address).
    #[error("{0}")]
    Conflict(String),
    /// 400: the request itself is wrong (a bad subnet, an unknown driver).
    #[error("{0}")]
    Invalid(String),
    /// 403: not allowed (removing a predefined network or one in use).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such network.
    #[error("{0}")]
    NotFound(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn nl(e: impl std::fmt::Display) -> NetError {
    NetError::Netlink(e.to_string())
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

/// A netlink connection in the calling thread's network namespace.
pub fn connect() -> Result<Handle, NetError> {
    let (conn, handle, _) = new_connection().map_err(|e| NetError::Io { what: "netlink socket".into(), source: e })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A link's index and kind, by name.
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<(u32, Option<InfoKind>)>, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => {
            let kind = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.clone()),
                    _ => None,
                }),
                _ => None,
            });
            Ok(Some((msg.header.index, kind)))
        }
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(e)),
    }
}

async fn ipv4_addrs(h: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut out = Vec::new();
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs.try_next().await.map_err(nl)? {
        for a in &msg.attributes {
            if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = a {
                out.push((*ip, msg.header.prefix_len));
            }
        }
    }
    Ok(out)
}

/// Creates the bridge with its address, or adopts an existing one that
/// already is what berth wants. Returns (ifindex, created).
pub async fn ensure_bridge(h: &Handle, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(u32, bool), NetError> {
    let (index, created) = match link_by_name(h, name).await? {
        Some((index, Some(InfoKind::Bridge))) => (index, false),
        Some((_, kind)) => {
            return Err(NetError::Conflict(format!(
                "{name} exists and is not a bridge ({kind:?}): remove it or configure another bridge name"
            )))
        }
        None => {
            h.link().add(LinkBridge::new(name).build()).execute().await.map_err(nl)?;
            let (index, _) = link_by_name(h, name).await?.ok_or_else(|| nl(format!("{name} vanished after creation")))?;
            (index, true)
        }
    };
    let addrs = ipv4_addrs(h, index).await?;
    if !addrs.contains(&(gateway, prefix)) {
        if let Some((other, p)) = addrs.first() {
            return Err(NetError::Conflict(format!(
                "bridge {name} has address {other}/{p}, not {gateway}/{prefix}: remove it or configure the bridge's subnet to match"
            )));
        }
        h.address().add(index, gateway.into(), prefix).execute().await.map_err(nl)?;
    }
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(nl)?;
    Ok((index, created))
}

/// Is this IPv4 subnet already routed through some other link?
pub async fn subnet_taken_by(h: &Handle, net: Ipv4Addr, prefix: u8, except: &str) -> Result<Option<String>, NetError> {
    let mut links = h.link().get().execute();
    let mut names = Vec::new();
    while let Some(msg) = links.try_next().await.map_err(nl)? {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(n) = name {
            names.push((msg.header.index, n));
        }
    }
    let mask = u32::MAX << (32 - prefix);
    for (index, name) in names {
        if name == except {
            continue;
        }
        for (ip, p) in ipv4_addrs(h, index).await? {
            let m = u32::MAX << (32 - p.min(prefix));
            if u32::from(ip) & m & mask == u32::from(net) & m & mask {
                return Ok(Some(format!("{name} ({ip}/{p})")));
            }
        }
    }
    Ok(None)
}

/// Makes a new network namespace kept alive by a bind mount at `path`.
pub fn create_netns(path: &Path) -> Result<(), NetError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    std::fs::File::create(path).map_err(io(format!("creating {}", path.display())))?;
    let p = path.to_path_buf();
    // unshare in a throwaway thread: only that thread moves to the new namespace.
    let r = std::thread::spawn(move || -> Result<(), NetError> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| io("unshare(CLONE_NEWNET)")(e.into()))?;
        nix::mount::mount(Some("/proc/thread-self/ns/net"), &p, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| io(format!("bind-mounting the namespace at {}", p.display()))(e.into()))
    })
    .join()
    .map_err(|_| nl("netns thread panicked"))?;
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

pub fn remove_netns(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `f` on a thread of its own that has entered the network namespace
/// at `netns`; the thread ends afterwards, so it never serves the daemon
/// from inside a container's namespace. Sockets `f` makes stay in that
/// namespace.
pub fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetError> {
    let ns = std::fs::File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
    std::thread::spawn(move || -> Result<T, NetError> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| io("setns")(e.into()))?;
        Ok(f())
    })
    .join()
    .map_err(|_| nl("netns thread panicked"))?
}

/// What a container's end of a veth pair gets.
#[derive(Clone, Debug)]
pub struct Iface {
    /// Its name inside (eth0, eth1…).
    pub name: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The default route goes via this gateway (the first network only).
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    /// On an `--ipv6` network: its IPv6 address and prefix, and the gateway
    /// of the default IPv6 route (with the IPv4 one).
    pub ip6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
    /// `--link-local-ip`s: added as Docker adds them (/16 for IPv4, /64
    /// for IPv6).
    pub link_local: Vec<IpAddr>,
}

/// An IPv6 address without duplicate address detection (as Docker adds
/// them: a container's address is usable at once, not "tentative" for a
/// second or more). Adding one that is there already is not an error.
async fn add_nodad(h: &Handle, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
    use rtnetlink::packet_route::address::AddressHeaderFlags;
    let mut req = h.address().add(index, ip, prefix).replace();
    if ip.is_ipv6() {
        req.message_mut().header.flags = AddressHeaderFlags::Nodad;
    }
    req.execute().await.map_err(nl)
}

/// A bridge's IPv6 gateway address (an `--ipv6` network's).
pub async fn add_address6(h: &Handle, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<(), NetError> {
    add_nodad(h, index, ip.into(), prefix).await
}

/// Connects a namespace to a bridge: a veth pair whose host end (`host_if`)
/// is a port of the bridge and whose other end is `eth.name` in the
/// namespace, with its address, MAC and, if given, a default route.
///
/// One request makes the pair with the peer already in the namespace, named
/// and with its MAC, and the host end up on the bridge: moving a device into
/// a namespace afterwards waits for an RCU grace period in the kernel, and
/// that move took 17–41 ms of a container's start (measured; the rest of the
/// attach takes about 2 ms).
pub async fn attach(h: &Handle, bridge: u32, netns: &Path, host_if: &str, eth0: &Iface) -> Result<(), NetError> {
    use rtnetlink::packet_route::link::{InfoData, InfoVeth};
    let ns = std::fs::File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
    let peer = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
        .name(eth0.name.clone())
        .address(eth0.mac.to_vec())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let pair = rtnetlink::LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host_if.to_string())
        .controller(bridge)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    if h.link().add(pair.clone()).execute().await.is_err() {
        // The same container's pair from its last run, which the kernel
        // takes down with that run's namespace but may not have yet (a
        // restart right after an exit): take it down now (if it is still
        // there) and try once more.
        delete_link(h, host_if).await?;
        h.link().add(pair).execute().await.map_err(nl)?;
    }
    let result = configure_inside(netns, eth0.clone()).await;
    if result.is_err() {
        let _ = delete_link(h, host_if).await;
    }
    result
}

/// Inside the namespace (from a thread that setns-es into it): the address
/// on eth0, lo and eth0 up, the default route.
async fn configure_inside(netns: &Path, eth0: Iface) -> Result<(), NetError> {
    let netns = netns.to_path_buf();
    // A thread of its own, which ends afterwards: it never serves the daemon
    // again from inside the container's namespace.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = configure_in_thread(&netns, &eth0);
        let _ = tx.send(r);
    });
    rx.await.map_err(|_| nl("netns thread died"))?
}

fn configure_in_thread(netns: &Path, eth0: &Iface) -> Result<(), NetError> {
    let ns = std::fs::File::open(netns).map_err(io(format!("opening {}", netns.display())))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| io("setns")(e.into()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io("runtime"))?;
    rt.block_on(async {
        let h = connect()?;
        let (idx, _) = link_by_name(&h, &eth0.name).await?.ok_or_else(|| nl("the veth's end is not in the namespace"))?;
        // IPv6 only on an IPv6 network's interface, as Docker 26+ does: an
        // IPv4-only one gets no link-local address and joins no IPv6
        // multicast group (open to neighbour-discovery spoofing). Set before
        // the link comes up, so none is ever assigned.
        if eth0.ip6.is_none() && !eth0.link_local.iter().any(IpAddr::is_ipv6) {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", eth0.name), "1");
        }
        h.address().add(idx, eth0.ip.into(), eth0.prefix).execute().await.map_err(nl)?;
        h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await.map_err(nl)?;
        if let Some((lo, _)) = link_by_name(&h, "lo").await? {
            h.link().set(LinkUnspec::new_with_index(lo).up().build()).execute().await.map_err(nl)?;
        }
        if let Some(gw) = eth0.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build();
            h.route().add(route).execute().await.map_err(nl)?;
        }
        if let Some((ip6, prefix6)) = eth0.ip6 {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", eth0.name), "0");
            add_nodad(&h, idx, ip6.into(), prefix6).await?;
            if let Some(gw6) = eth0.gateway6 {
                let route = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw6).output_interface(idx).build();
                h.route().add(route).execute().await.map_err(nl)?;
            }
        }
        for ll in &eth0.link_local {
            add_nodad(&h, idx, *ll, if ll.is_ipv4() { 16 } else { 64 }).await?;
        }
        Ok::<(), NetError>(())
    })
}

/// Deletes a link by name if it exists: a veth pair by its host end (the
/// peer goes with it), or a user-defined network's bridge.
pub async fn delete_link(h: &Handle, name: &str) -> Result<(), NetError> {
    if let Some((idx, _)) = link_by_name(h, name).await? {
        h.link().del(idx).execute().await.map_err(nl)?;
    }
    Ok(())
}

/// The names of the veths enslaved to any of these bridges (by index).
pub async fn bridge_ports(h: &Handle, bridges: &[u32]) -> Result<Vec<String>, NetError> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(nl)? {
        let f = link_facts(&msg);
        if f.kind == "veth" && f.master.is_some_and(|m| bridges.contains(&m)) {
            out.push(f.name);
        }
    }
    Ok(out)
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    pub index: u32,
    pub name: String,
    pub kind: String,
    pub master: Option<u32>,
    pub up: bool,
    pub link_netnsid: Option<i32>,
}

/// A change the kernel announced (or a fact from the first dump).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChange {
    Link(LinkFacts),
    LinkGone {
        index: u32,
        name: String,
    },
    Address {
        index: u32,
        ip: std::net::IpAddr,
        prefix: u8,
    },
    AddressGone {
        index: u32,
        ip: std::net::IpAddr,
        prefix: u8,
    },
    /// An IPv4 route of the main table: destination ("default" or a CIDR),
    /// gateway, output link index.
    Route {
        dst: String,
        gateway: Option<Ipv4Addr>,
        oif: Option<u32>,
    },
    RouteGone {
        dst: String,
        gateway: Option<Ipv4Addr>,
        oif: Option<u32>,
    },
}

fn route_facts(msg: &rtnetlink::packet_route::route::RouteMessage) -> Option<(String, Option<Ipv4Addr>, Option<u32>)> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
    if msg.header.table != RouteHeader::RT_TABLE_MAIN {
        return None;
    }
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let dst = match (dst, msg.header.destination_prefix_length) {
        (None, 0) => "default".to_string(),
        (Some(ip), p) => format!("{ip}/{p}"),
        (None, p) => format!("0.0.0.0/{p}"),
    };
    Some((dst, gateway, oif))
}

fn link_facts(msg: &rtnetlink::packet_route::link::LinkMessage) -> LinkFacts {
    use rtnetlink::packet_route::link::LinkFlags;
    let mut f = LinkFacts {
        index: msg.header.index,
        name: String::new(),
        kind: String::new(),
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        link_netnsid: None,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => f.name = n.clone(),
            LinkAttribute::Controller(m) => f.master = Some(*m),
            LinkAttribute::LinkNetNsId(id) => f.link_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        f.kind = format!("{k}").to_ascii_lowercase();
                    }
                }
            }
            _ => {}
        }
    }
    f
}

/// An AF_BRIDGE link message: the bridge telling about one of its ports.
pub fn is_bridge_port_notice(msg: &rtnetlink::packet_route::link::LinkMessage) -> bool {
    msg.header.interface_family == rtnetlink::packet_route::AddressFamily::Bridge
}

fn address_facts(msg: &rtnetlink::packet_route::address::AddressMessage) -> Option<(u32, std::net::IpAddr, u8)> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let ip = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })?;
    Some((msg.header.index, ip, msg.header.prefix_len))
}

/// Reports every link and address of this namespace, then every change the
/// kernel announces (netlink multicast: links, IPv4 and IPv6 addresses),
/// until `tx` is closed.
pub async fn watch(tx: tokio::sync::mpsc::UnboundedSender<KernelChange>) -> Result<(), NetError> {
    use futures_util::StreamExt;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::sys::AsyncSocket;
    let (mut conn, handle, mut messages) = new_connection().map_err(|e| NetError::Io { what: "netlink socket".into(), source: e })?;
    // RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR.
    for group in [1u32, 5, 7, 9] {
        conn.socket_mut()
            .socket_mut()
            .add_membership(group)
            .map_err(|e| NetError::Io { what: "joining a netlink group".into(), source: e })?;
    }
    tokio::spawn(conn);
    let mut links = handle.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(nl)? {
        if tx.send(KernelChange::Link(link_facts(&msg))).is_err() {
            return Ok(());
        }
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(nl)? {
        if let Some((index, ip, prefix)) = address_facts(&msg) {
            let _ = tx.send(KernelChange::Address { index, ip, prefix });
        }
    }
    let mut routes = handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    while let Some(msg) = routes.try_next().await.map_err(nl)? {
        if let Some((dst, gateway, oif)) = route_facts(&msg) {
            let _ = tx.send(KernelChange::Route { dst, gateway, oif });
        }
    }
    while let Some((msg, _)) = messages.next().await {
        let change = match msg.payload {
            // A bridge's port notifications (AF_BRIDGE: STP state, a port
            // joining or leaving) are not link facts: they carry no kind, and
            // a port leaving its bridge is an RTM_DELLINK of a link that stays.
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l))
                if is_bridge_port_notice(&l) =>
            {
                None
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Some(KernelChange::Link(link_facts(&l))),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                let f = link_facts(&l);
                Some(KernelChange::LinkGone { index: f.index, name: f.name })
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                address_facts(&a).map(|(index, ip, prefix)| KernelChange::Address { index, ip, prefix })
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(a)) => {
                address_facts(&a).map(|(index, ip, prefix)| KernelChange::AddressGone { index, ip, prefix })
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                route_facts(&r).map(|(dst, gateway, oif)| KernelChange::Route { dst, gateway, oif })
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => {
                route_facts(&r).map(|(dst, gateway, oif)| KernelChange::RouteGone { dst, gateway, oif })
            }
            _ => None,
        };
        if let Some(c) = change {
            if tx.send(c).is_err() {
                break;
            }
        }
    }
    Ok(())
}
