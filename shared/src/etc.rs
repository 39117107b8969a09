//! What a container finds in its /etc/hosts and /etc/resolv.conf, and the
//! environment a legacy `--link` gives it, as Docker writes them: pure text
//! from the container's settings, so berthd and the page agree.

use std::net::{IpAddr, Ipv4Addr};

/// The lines every container's /etc/hosts starts with.
pub const HOSTS_PREAMBLE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The special `--add-host` address: the host as the default bridge's
/// containers reach it (its gateway).
pub const HOST_GATEWAY: &str = "host-gateway";

/// One `HostConfig.ExtraHosts` entry (`--add-host name:ip`), checked as
/// Docker checks it: the name, and the address (`host-gateway` → `gateway`).
pub fn extra_host(entry: &str, gateway: Ipv4Addr) -> Result<(String, IpAddr), String> {
    // An IPv6 address has colons: only the first one splits.
    let (name, ip) = match entry.split_once(':') {
        Some((name, ip)) if !name.is_empty() => (name, ip),
        _ => return Err(format!("bad format for add-host: {entry:?}")),
    };
    if ip == HOST_GATEWAY {
        return Ok((name.to_string(), IpAddr::V4(gateway)));
    }
    let bare = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
    let addr: IpAddr = bare.parse().map_err(|_| format!("invalid IP address in add-host: {ip:?}"))?;
    Ok((name.to_string(), addr))
}

/// A container's /etc/hosts: the preamble, its `--add-host` entries, its own
/// addresses with its hostname (IPv4, then IPv6 on an `--ipv6` network),
/// then its legacy links (address, names).
pub fn hosts(hostname: &str, own: &[IpAddr], extra: &[(String, IpAddr)], links: &[(Ipv4Addr, String)]) -> String {
    let mut out = String::from(HOSTS_PREAMBLE);
    for (name, ip) in extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    for ip in own {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for (ip, names) in links {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out
}

/// `--dns`, `--dns-search`, `--dns-option`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl DnsSettings {
    /// Checks the servers are addresses (as Docker's ValidateIPAddress).
    pub fn check(&self) -> Result<(), String> {
        match self.servers.iter().find(|s| s.parse::<IpAddr>().is_err()) {
            Some(bad) => Err(format!("IP address is not correctly formatted: {bad}")),
            None => Ok(()),
        }
    }
}

/// A container's /etc/resolv.conf from the host's: with the embedded DNS
/// server (user-defined networks) its address and `ndots:0`; else the host's
/// nameservers less loopback ones it cannot reach (Google's when none is
/// left, as Docker). `--dns*` flags replace the host's lines of their kind.
pub fn resolv_conf(host: &str, embedded: bool, dns: &DnsSettings) -> String {
    let lines = |kind: &str| -> Vec<String> {
        host.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(kind)).then(|| words.collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let search =
        if dns.search.is_empty() { lines("search").into_iter().chain(lines("domain")).collect() } else { vec![dns.search.join(" ")] };
    let mut out: Vec<String> = Vec::new();
    if embedded {
        out.push("nameserver 127.0.0.11".into());
    } else if !dns.servers.is_empty() {
        out.extend(dns.servers.iter().map(|s| format!("nameserver {s}")));
    } else {
        let kept: Vec<String> = lines("nameserver").into_iter().filter(|s| !(s.starts_with("127.") || s == "::1")).collect();
        if kept.is_empty() {
            out.push("nameserver 8.8.8.8".into());
            out.push("nameserver 8.8.4.4".into());
        } else {
            out.extend(kept.into_iter().map(|s| format!("nameserver {s}")));
        }
    }
    out.extend(search.into_iter().filter(|s| !s.is_empty()).map(|s| format!("search {s}")));
    let mut options: Vec<String> = if dns.options.is_empty() { lines("options") } else { vec![dns.options.join(" ")] };
    if embedded && !options.iter().any(|o| o.contains("ndots:")) {
        options.insert(0, "ndots:0".into());
    }
    out.extend(options.into_iter().filter(|o| !o.is_empty()).map(|o| format!("options {o}")));
    out.join("\n") + "\n"
}

/// `--link name[:alias]` → (name, alias); the alias defaults to the name.
pub fn parse_link(link: &str) -> Result<(String, String), String> {
    let (name, alias) = match link.split_once(':') {
        Some((n, a)) => (n, a),
        None => (link, link),
    };
    let (name, alias) = (name.trim_start_matches('/'), alias.trim_start_matches('/'));
    if name.is_empty() || alias.is_empty() {
        return Err(format!("invalid link: {link:?}"));
    }
    // A full link name ("/web/db") keeps its last part as the alias.
    Ok((name.to_string(), alias.rsplit('/').next().unwrap_or(alias).to_string()))
}

/// The environment a legacy link gives the container that links: for the
/// link named `name` ("/web/db"), `DB_PORT…` for each exposed port of the
/// child (TCP first, ranges of consecutive ports summed up), `DB_NAME`, and
/// the child's environment as `DB_ENV_…` (less HOME and PATH) — Docker 28's.
pub fn link_env(name: &str, child_ip: Ipv4Addr, child_env: &[String], exposed: &[String]) -> Vec<String> {
    let alias = name.rsplit('/').next().unwrap_or(name).to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((num.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort_by(|a, b| match (a.1 == "tcp", b.1 == "tcp") {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.1.cmp(&b.1).then(a.0.cmp(&b.0)),
    });
    let mut env = Vec::new();
    let prefix = |(num, proto): &(u16, String)| format!("{alias}_PORT_{num}_{}", proto.to_ascii_uppercase());
    let mut start: Option<&(u16, String)> = None;
    let mut end: Option<&(u16, String)> = None;
    for (i, p) in ports.iter().enumerate() {
        let (num, proto) = p;
        if i == 0 {
            start = Some(p);
            end = Some(p);
            env.push(format!("{alias}_PORT={proto}://{child_ip}:{num}"));
        }
        let pre = prefix(p);
        env.push(format!("{pre}={proto}://{child_ip}:{num}"));
        env.push(format!("{pre}_ADDR={child_ip}"));
        env.push(format!("{pre}_PORT={num}"));
        env.push(format!("{pre}_PROTO={proto}"));
        if end.is_some_and(|e| *num == e.0 + 1 && *proto == e.1) {
            end = Some(p);
            if i < ports.len() - 1 {
                continue;
            }
        }
        if let (Some(s), Some(e)) = (start, end) {
            if s != e {
                let pre = prefix(s);
                env.push(format!("{pre}_START={}://{child_ip}:{}", s.1, s.0));
                env.push(format!("{pre}_PORT_START={}", s.0));
                env.push(format!("{pre}_END={}://{child_ip}:{}", e.1, e.0));
                env.push(format!("{pre}_PORT_END={}", e.0));
            }
        }
        start = Some(p);
        end = Some(p);
    }
    env.push(format!("{alias}_NAME={name}"));
    for kv in child_env {
        if let Some((k, v)) = kv.split_once('=') {
            if k != "HOME" && k != "PATH" {
                env.push(format!("{alias}_ENV_{k}={v}"));
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);

    #[test]
    fn add_host_entries_are_checked_as_docker_checks_them() {
        assert_eq!(extra_host("db:10.0.0.5", GW).unwrap(), ("db".to_string(), "10.0.0.5".parse().unwrap()));
        assert_eq!(extra_host("me:host-gateway", GW).unwrap().1, IpAddr::V4(GW));
        assert_eq!(extra_host("v6:::1", GW).unwrap().1, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(extra_host("v6:[fd00::2]", GW).unwrap().1, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(extra_host("nohost", GW).unwrap_err(), "bad format for add-host: \"nohost\"");
        assert_eq!(extra_host("db:10.0.0.300", GW).unwrap_err(), "invalid IP address in add-host: \"10.0.0.300\"");
    }

    #[test]
    fn hosts_lists_extra_hosts_then_itself_then_links() {
        let text = hosts(
            "abc",
            &[Ipv4Addr::new(172, 17, 0, 3).into(), "fd00:1::3".parse().unwrap()],
            &[("db".into(), "10.0.0.5".parse().unwrap())],
            &[(Ipv4Addr::new(172, 17, 0, 2), "cache 1234 redis".into())],
        );
        assert!(text.starts_with(HOSTS_PREAMBLE));
        assert!(text.ends_with("10.0.0.5\tdb\n172.17.0.3\tabc\nfd00:1::3\tabc\n172.17.0.2\tcache 1234 redis\n"), "{text}");
    }

    #[test]
    fn resolv_conf_follows_the_host_the_embedded_server_and_the_flags() {
        let host = "nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions edns0\n";
        let none = DnsSettings::default();
        assert_eq!(resolv_conf(host, false, &none), "nameserver 10.1.1.1\nsearch corp.example\noptions edns0\n");
        assert_eq!(resolv_conf("nameserver 127.0.0.53\n", false, &none), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert_eq!(resolv_conf(host, true, &none), "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0\noptions edns0\n");
        let flags = DnsSettings { servers: vec!["9.9.9.9".into()], search: vec!["lab.local".into()], options: vec!["timeout:2".into()] };
        assert_eq!(resolv_conf(host, false, &flags), "nameserver 9.9.9.9\nsearch lab.local\noptions timeout:2\n");
        assert_eq!(resolv_conf(host, true, &flags), "nameserver 127.0.0.11\nsearch lab.local\noptions ndots:0\noptions timeout:2\n");
        assert!(flags.check().is_ok());
        let bad = DnsSettings { servers: vec!["dns.example".into()], ..Default::default() };
        assert_eq!(bad.check().unwrap_err(), "IP address is not correctly formatted: dns.example");
    }

    #[test]
    fn links_parse_and_give_dockers_environment() {
        assert_eq!(parse_link("db").unwrap(), ("db".to_string(), "db".to_string()));
        assert_eq!(parse_link("db:cache").unwrap(), ("db".to_string(), "cache".to_string()));
        assert_eq!(parse_link("/db:/web/cache").unwrap(), ("db".to_string(), "cache".to_string()));
        assert!(parse_link(":x").is_err());
        let ip = Ipv4Addr::new(172, 17, 0, 2);
        let env = link_env("/web/my-db", ip, &["PATH=/bin".into(), "PGDATA=/d".into()], &["5432/tcp".into()]);
        assert_eq!(
            env,
            [
                "MY_DB_PORT=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_PGDATA=/d",
            ]
        );
        // Consecutive ports: a range; UDP after TCP.
        let env = link_env("/w/r", ip, &[], &["53/udp".into(), "81/tcp".into(), "80/tcp".into()]);
        assert_eq!(env[0], "R_PORT=tcp://172.17.0.2:80");
        assert!(env.contains(&"R_PORT_80_TCP_START=tcp://172.17.0.2:80".to_string()));
        assert!(env.contains(&"R_PORT_80_TCP_PORT_END=81".to_string()));
        assert!(env.contains(&"R_PORT_53_UDP_PROTO=udp".to_string()));
    }
}
