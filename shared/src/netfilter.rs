//! Netfilter rules as Docker 20.10 writes them, as pure lists: berthd
//! applies them with iptables, the simulator applies them to its state, and
//! both report the same `RuleAdded` texts.

use std::net::Ipv4Addr;

/// One rule: table, chain, and the rule's match/target words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub spec: Vec<String>,
}

impl Rule {
    pub fn new(table: &'static str, chain: &'static str, spec: &str) -> Self {
        Rule { table, chain, spec: spec.split_whitespace().map(String::from).collect() }
    }
    /// As `iptables -S` prints it: "-A CHAIN …".
    pub fn text(&self) -> String {
        format!("-A {} {}", self.chain, self.spec.join(" "))
    }
}

/// Tables and chains berth's rules are in (a rule names them as `&'static
/// str`s; one read back from a journal is matched against these).
const NAMES: &[&str] = &[
    "filter",
    "nat",
    "DOCKER",
    "DOCKER-ISOLATION-STAGE-1",
    "DOCKER-ISOLATION-STAGE-2",
    "DOCKER-USER",
    "FORWARD",
    "INPUT",
    "OUTPUT",
    "PREROUTING",
    "POSTROUTING",
];

/// A rule as JSON: its table, chain and words.
#[derive(serde::Serialize, serde::Deserialize)]
struct RuleJson {
    table: String,
    chain: String,
    spec: Vec<String>,
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RuleJson { table: self.table.into(), chain: self.chain.into(), spec: self.spec.clone() }.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = RuleJson::deserialize(d)?;
        let known = |n: &str| {
            NAMES.iter().copied().find(|k| *k == n).ok_or_else(|| serde::de::Error::custom(format!("not a table or chain of berth's: {n}")))
        };
        Ok(Rule { table: known(&j.table)?, chain: known(&j.chain)?, spec: j.spec })
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

/// Where a rule goes in its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// At the end (after what is there).
    Append,
    /// At the top: a newer bridge's rules come before older ones, and the
    /// chain's final `-j RETURN` stays last.
    Top,
    /// Right after this rule (the bridge rules of FORWARD follow Docker's
    /// two jumps).
    After(Rule),
}

/// Where each rule ends up when `batches` are applied one after the other,
/// each as berthd applies one (last first, every rule at its place): the
/// rules in the order the kernel then lists them within their chains.
pub fn kernel_order(batches: &[Vec<(Rule, Place)>]) -> Vec<Rule> {
    let mut chains: Vec<((&str, &str), Vec<Rule>)> = Vec::new();
    for batch in batches {
        for (r, place) in batch.iter().rev() {
            let key = (r.table, r.chain);
            let i = match chains.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    chains.push((key, Vec::new()));
                    chains.len() - 1
                }
            };
            let chain = &mut chains[i].1;
            if chain.contains(r) {
                continue;
            }
            let at = match place {
                Place::Append => chain.len(),
                Place::Top => 0,
                Place::After(anchor) => chain.iter().position(|x| x == anchor).map(|p| p + 1).unwrap_or(0),
            };
            chain.insert(at, r.clone());
        }
    }
    chains.into_iter().flat_map(|(_, rs)| rs).collect()
}

/// The rules Docker keeps whatever bridges exist, in the order it lists them
/// (applied in reverse, like [`bridge_rules`]).
pub fn global_rules() -> Vec<(Rule, Place)> {
    vec![
        (Rule::new("filter", "FORWARD", "-j DOCKER-USER"), Place::Top),
        (Rule::new("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"), Place::Top),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", "-j RETURN"), Place::Append),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-2", "-j RETURN"), Place::Append),
        (Rule::new("filter", "DOCKER-USER", "-j RETURN"), Place::Append),
        (Rule::new("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"), Place::Append),
        (Rule::new("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"), Place::Append),
    ]
}

/// [`global_rules`] for ip6tables (an `--ipv6` network's): the same, with
/// IPv6's loopback.
pub fn global_rules_v6() -> Vec<(Rule, Place)> {
    global_rules()
        .into_iter()
        .map(|(r, p)| match (r.table, r.chain) {
            ("nat", "OUTPUT") => (Rule::new("nat", "OUTPUT", "! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER"), p),
            _ => (r, p),
        })
        .collect()
}

/// One bridge's rules: forwarding to and from it, isolation from the other
/// bridges, masquerading of its subnet. Listed in the order they end up in
/// their chains; each is inserted at its place in reverse order.
pub fn bridge_rules(bridge: &str, subnet: &str) -> Vec<(Rule, Place)> {
    let after = Place::After(Rule::new("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"));
    vec![
        (Rule::new("filter", "FORWARD", &format!("-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")), after.clone()),
        (Rule::new("filter", "FORWARD", &format!("-o {bridge} -j DOCKER")), after.clone()),
        (Rule::new("filter", "FORWARD", &format!("-i {bridge} ! -o {bridge} -j ACCEPT")), after.clone()),
        (Rule::new("filter", "FORWARD", &format!("-i {bridge} -o {bridge} -j ACCEPT")), after),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", &format!("-i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2")), Place::Top),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-2", &format!("-o {bridge} -j DROP")), Place::Top),
        (Rule::new("nat", "POSTROUTING", &format!("-s {subnet} ! -o {bridge} -j MASQUERADE")), Place::Top),
        (Rule::new("nat", "DOCKER", &format!("-i {bridge} -j RETURN")), Place::Top),
    ]
}

/// An `--internal` network's rules, as Docker's: traffic between its
/// containers only — anything leaving or entering the subnet through the
/// bridge is dropped, and nothing is masqueraded.
pub fn internal_bridge_rules(bridge: &str, subnet: &str) -> Vec<(Rule, Place)> {
    let after = Place::After(Rule::new("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"));
    vec![
        (Rule::new("filter", "FORWARD", &format!("-i {bridge} -o {bridge} -j ACCEPT")), after),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", &format!("! -s {subnet} -o {bridge} -j DROP")), Place::Top),
        (Rule::new("filter", "DOCKER-ISOLATION-STAGE-1", &format!("! -d {subnet} -i {bridge} -j DROP")), Place::Top),
    ]
}

/// A network's standing rules: [`bridge_rules`] or [`internal_bridge_rules`].
pub fn network_rules(bridge: &str, subnet: &str, internal: bool) -> Vec<(Rule, Place)> {
    if internal {
        internal_bridge_rules(bridge, subnet)
    } else {
        bridge_rules(bridge, subnet)
    }
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

/// Is this listed rule (`iptables -S` form, with its table) one of the
/// three of [`port_rules`] for a container on `bridge` whose address is in
/// `subnet`? (At daemon start no container runs: such a rule is stale, left
/// by a crash between adding it and recording it.)
pub fn is_port_rule(table: &str, line: &str, bridge: &str, in_subnet: &dyn Fn(Ipv4Addr) -> bool) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    let has = |pair: &[&str]| w.windows(pair.len()).any(|x| x == pair);
    let addr_after = |flag: &str| w.windows(2).find(|x| x[0] == flag).and_then(|x| x[1].strip_suffix("/32")?.parse::<Ipv4Addr>().ok());
    match (table, w.get(1).copied()) {
        ("filter", Some("DOCKER")) => {
            has(&["!", "-i", bridge]) && has(&["-o", bridge]) && has(&["-j", "ACCEPT"]) && line.contains("--dport")
        }
        ("nat", Some("DOCKER")) => has(&["!", "-i", bridge]) && has(&["-j", "DNAT"]),
        ("nat", Some("POSTROUTING")) => {
            has(&["-j", "MASQUERADE"])
                && line.contains("--dport")
                && addr_after("-s").is_some_and(in_subnet)
                && addr_after("-s") == addr_after("-d")
        }
        _ => false,
    }
}

/// The three rules Docker adds for one published port.
pub fn port_rules(bridge: &str, p: &PortMap) -> Vec<Rule> {
    let (proto, cip, cport, hport) = (&p.proto, p.container_ip, p.container_port, p.host_port);
    let dst = if p.host_ip.is_unspecified() { String::new() } else { format!("-d {}/32 ", p.host_ip) };
    vec![
        Rule::new("filter", "DOCKER", &format!("-d {cip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} --dport {cport} -j ACCEPT")),
        Rule::new("nat", "POSTROUTING", &format!("-s {cip}/32 -d {cip}/32 -p {proto} -m {proto} --dport {cport} -j MASQUERADE")),
        Rule::new(
            "nat",
            "DOCKER",
            &format!("{dst}! -i {bridge} -p {proto} -m {proto} --dport {hport} -j DNAT --to-destination {cip}:{cport}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_goes_to_json_and_back_and_only_into_berths_chains() {
        let r = Rule::new("nat", "DOCKER", "! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80");
        let back: Rule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let other = r#"{"table":"nat","chain":"SOMEONE-ELSES","spec":["-j","ACCEPT"]}"#;
        assert!(serde_json::from_str::<Rule>(other).unwrap_err().to_string().contains("SOMEONE-ELSES"));
    }

    #[test]
    fn a_published_ports_rules_are_recognised_as_such_and_nothing_else() {
        let p = PortMap {
            proto: "tcp".into(),
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8081,
            container_ip: Ipv4Addr::new(172, 17, 0, 2),
            container_port: 80,
        };
        let inside = |ip: Ipv4Addr| ip.octets()[..2] == [172, 17];
        for r in port_rules("docker0", &p) {
            assert!(is_port_rule(r.table, &r.text(), "docker0", &inside), "{}", r.text());
            assert!(!is_port_rule(r.table, &r.text(), "br-0123456789ab", &|_| false), "{}", r.text());
        }
        for (r, _) in global_rules().into_iter().chain(bridge_rules("docker0", "172.17.0.0/16")) {
            assert!(!is_port_rule(r.table, &r.text(), "docker0", &inside), "{}", r.text());
        }
    }

    #[test]
    fn a_published_port_gets_dockers_three_rules() {
        let p = PortMap {
            proto: "tcp".into(),
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            container_ip: Ipv4Addr::new(172, 17, 0, 2),
            container_port: 80,
        };
        let texts: Vec<String> = port_rules("docker0", &p).iter().map(|r| format!("{} {}", r.table, r.text())).collect();
        assert_eq!(
            texts,
            vec![
                "filter -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
                "nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
                "nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
            ]
        );
        let bound = PortMap { host_ip: Ipv4Addr::new(127, 0, 0, 1), ..p };
        assert!(port_rules("docker0", &bound)[2].text().starts_with("-A DOCKER -d 127.0.0.1/32 ! -i docker0"));
    }

    #[test]
    fn standing_rules_send_local_traffic_to_docker_and_masquerade_the_subnet() {
        let all: Vec<(Rule, Place)> = global_rules().into_iter().chain(bridge_rules("docker0", "172.17.0.0/16")).collect();
        let r: Vec<String> = all.iter().map(|(r, _)| format!("{} {}", r.table, r.text())).collect();
        assert!(r.contains(&"nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".to_string()));
        assert!(r.contains(&"nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER".to_string()));
        assert!(r.contains(&"nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE".to_string()));
        assert!(r.contains(&"nat -A DOCKER -i docker0 -j RETURN".to_string()));
        assert!(r.contains(&"filter -A DOCKER-USER -j RETURN".to_string()));
    }

    #[test]
    fn an_internal_network_keeps_its_traffic_inside_and_masquerades_nothing() {
        let rules = network_rules("br-0123456789ab", "172.20.0.0/16", true);
        let texts: Vec<String> = rules.iter().map(|(r, _)| format!("{} {}", r.table, r.text())).collect();
        assert_eq!(
            texts,
            vec![
                "filter -A FORWARD -i br-0123456789ab -o br-0123456789ab -j ACCEPT",
                "filter -A DOCKER-ISOLATION-STAGE-1 ! -s 172.20.0.0/16 -o br-0123456789ab -j DROP",
                "filter -A DOCKER-ISOLATION-STAGE-1 ! -d 172.20.0.0/16 -i br-0123456789ab -j DROP",
            ]
        );
        assert!(texts.iter().all(|t| !t.contains("MASQUERADE")));
        assert_eq!(network_rules("docker0", "172.17.0.0/16", false), bridge_rules("docker0", "172.17.0.0/16"));
    }

    #[test]
    fn a_bridge_is_isolated_from_the_others_and_its_rules_stay_above_the_returns() {
        let rules = bridge_rules("br-0123456789ab", "172.18.0.0/16");
        let text = |c: &str| rules.iter().filter(|(r, _)| r.chain == c).map(|(r, _)| r.text()).collect::<Vec<_>>();
        assert_eq!(
            text("DOCKER-ISOLATION-STAGE-1"),
            vec!["-A DOCKER-ISOLATION-STAGE-1 -i br-0123456789ab ! -o br-0123456789ab -j DOCKER-ISOLATION-STAGE-2"]
        );
        assert_eq!(text("DOCKER-ISOLATION-STAGE-2"), vec!["-A DOCKER-ISOLATION-STAGE-2 -o br-0123456789ab -j DROP"]);
        // Nothing of a bridge is appended: a chain's final RETURN would shadow it.
        assert!(rules.iter().all(|(_, p)| *p != Place::Append));
        // FORWARD's bridge rules go after Docker's jumps, in order.
        assert_eq!(text("FORWARD").len(), 4);
        assert!(rules
            .iter()
            .filter(|(r, _)| r.chain == "FORWARD")
            .all(|(_, p)| matches!(p, Place::After(a) if a.text() == "-A FORWARD -j DOCKER-ISOLATION-STAGE-1")));
    }
}
