//! Netfilter rules as Docker 20.10 writes them. Describe, then do: the rule
//! lists are pure functions; [`Iptables`] applies them with the iptables
//! tool (as Docker does), one `-w` call per rule.

use std::net::Ipv4Addr;
use std::process::Command;

/// One rule: table, chain, and the rule's match/target words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub spec: Vec<String>,
}

impl Rule {
    fn new(table: &'static str, chain: &'static str, spec: &str) -> Self {
        Rule { table, chain, spec: spec.split_whitespace().map(String::from).collect() }
    }
    /// As `iptables -S` prints it: "-A CHAIN …".
    pub fn text(&self) -> String {
        format!("-A {} {}", self.chain, self.spec.join(" "))
    }
}

/// Chains Docker makes, by table.
pub const CHAINS: &[(&str, &str)] = &[
    ("filter", "DOCKER"),
    ("filter", "DOCKER-ISOLATION-STAGE-1"),
    ("filter", "DOCKER-ISOLATION-STAGE-2"),
    ("filter", "DOCKER-USER"),
    ("nat", "DOCKER"),
];

/// The standing rules for a bridge (in the order Docker lists them).
pub fn bridge_rules(bridge: &str, subnet: &str) -> Vec<Rule> {
    vec![
        Rule::new("filter", "FORWARD", "-j DOCKER-USER"),
        Rule::new("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        Rule::new("filter", "FORWARD", &format!("-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")),
        Rule::new("filter", "FORWARD", &format!("-o {bridge} -j DOCKER")),
        Rule::new("filter", "FORWARD", &format!("-i {bridge} ! -o {bridge} -j ACCEPT")),
        Rule::new("filter", "FORWARD", &format!("-i {bridge} -o {bridge} -j ACCEPT")),
        Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", &format!("-i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2")),
        Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", "-j RETURN"),
        Rule::new("filter", "DOCKER-ISOLATION-STAGE-2", &format!("-o {bridge} -j DROP")),
        Rule::new("filter", "DOCKER-ISOLATION-STAGE-2", "-j RETURN"),
        Rule::new("filter", "DOCKER-USER", "-j RETURN"),
        Rule::new("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        Rule::new("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"),
        Rule::new("nat", "POSTROUTING", &format!("-s {subnet} ! -o {bridge} -j MASQUERADE")),
        Rule::new("nat", "DOCKER", &format!("-i {bridge} -j RETURN")),
    ]
}

/// A published port: host (ip, port) to the container's (ip, port).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMap {
    pub proto: String,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The three rules Docker adds for one published port.
pub fn port_rules(bridge: &str, p: &PortMap) -> Vec<Rule> {
    let (proto, cip, cport, hport) = (&p.proto, p.container_ip, p.container_port, p.host_port);
    let dst = if p.host_ip.is_unspecified() { String::new() } else { format!("-d {}/32 ", p.host_ip) };
    vec![
        Rule::new("filter", "DOCKER", &format!("-d {cip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} --dport {cport} -j ACCEPT")),
        Rule::new("nat", "POSTROUTING", &format!("-s {cip}/32 -d {cip}/32 -p {proto} -m {proto} --dport {cport} -j MASQUERADE")),
        Rule::new("nat", "DOCKER", &format!("{dst}! -i {bridge} -p {proto} -m {proto} --dport {hport} -j DNAT --to-destination {cip}:{cport}")),
    ]
}

#[derive(Debug, thiserror::Error)]
#[error("iptables {args}: {message}")]
pub struct IptablesError {
    pub args: String,
    pub message: String,
}

/// Runs the iptables tool in the daemon's network namespace.
#[derive(Debug, Default)]
pub struct Iptables;

impl Iptables {
    fn run(&self, args: &[&str]) -> Result<(), IptablesError> {
        let out = Command::new("iptables").arg("-w").args(args).output().map_err(|e| IptablesError { args: args.join(" "), message: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(IptablesError { args: args.join(" "), message: String::from_utf8_lossy(&out.stderr).trim().to_string() })
        }
    }

    fn exists(&self, r: &Rule) -> bool {
        let mut args = vec!["-t", r.table, "-C", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).is_ok()
    }

    pub fn ensure_chain(&self, table: &str, chain: &str) -> Result<(), IptablesError> {
        if self.run(&["-t", table, "-n", "-L", chain]).is_err() {
            self.run(&["-t", table, "-N", chain])?;
        }
        Ok(())
    }

    /// Appends the rule unless it is there already.
    pub fn append(&self, r: &Rule) -> Result<bool, IptablesError> {
        if self.exists(r) {
            return Ok(false);
        }
        let mut args = vec!["-t", r.table, "-A", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).map(|_| true)
    }

    /// Inserts the rule at the top of its chain unless it is there already.
    pub fn insert(&self, r: &Rule) -> Result<bool, IptablesError> {
        if self.exists(r) {
            return Ok(false);
        }
        let mut args = vec!["-t", r.table, "-I", r.chain, "1"];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).map(|_| true)
    }

    pub fn delete(&self, r: &Rule) -> Result<bool, IptablesError> {
        if !self.exists(r) {
            return Ok(false);
        }
        let mut args = vec!["-t", r.table, "-D", r.chain];
        args.extend(r.spec.iter().map(String::as_str));
        self.run(&args).map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_port_gets_dockers_three_rules() {
        let p = PortMap { proto: "tcp".into(), host_ip: Ipv4Addr::UNSPECIFIED, host_port: 8080, container_ip: Ipv4Addr::new(172, 17, 0, 2), container_port: 80 };
        let texts: Vec<String> = port_rules("docker0", &p).iter().map(|r| format!("{} {}", r.table, r.text())).collect();
        assert_eq!(texts, vec![
            "filter -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
            "nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
            "nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
        ]);
        let bound = PortMap { host_ip: Ipv4Addr::new(127, 0, 0, 1), ..p };
        assert!(port_rules("docker0", &bound)[2].text().starts_with("-A DOCKER -d 127.0.0.1/32 ! -i docker0"));
    }

    #[test]
    fn standing_rules_send_local_traffic_to_docker_and_masquerade_the_subnet() {
        let r: Vec<String> = bridge_rules("docker0", "172.17.0.0/16").iter().map(|r| format!("{} {}", r.table, r.text())).collect();
        assert!(r.contains(&"nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".to_string()));
        assert!(r.contains(&"nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER".to_string()));
        assert!(r.contains(&"nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE".to_string()));
        assert!(r.contains(&"nat -A DOCKER -i docker0 -j RETURN".to_string()));
        assert!(r.contains(&"filter -A DOCKER-USER -j RETURN".to_string()));
    }
}
