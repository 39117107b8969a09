//! The observer: what node1's kernel really shows, as events — links,
//! addresses and routes from netlink (multicast, so a learner's `ip link add` appears at
//! once), mounts from /proc/self/mountinfo, the netfilter ruleset from
//! `iptables -S`. The page reconciles them with the engine's own events:
//! a rule deleted by hand, or one berth did not add, stands out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth_shared::Event;

use crate::events::EventBus;
use crate::network::netlink::{self, KernelChange};

pub mod files;

/// How often mounts and rules are read again (neither announces changes).
const MOUNT_POLL: Duration = Duration::from_millis(250);
const RULE_POLL: Duration = Duration::from_millis(1000);

/// Starts the observer's tasks; they run as long as the daemon does. File
/// changes are watched under `data_root` ([`files`]).
pub fn start(bus: Arc<EventBus>, data_root: &std::path::Path) {
    tokio::spawn(links(bus.clone()));
    tokio::spawn(mounts(bus.clone()));
    files::start(bus.clone(), data_root);
    tokio::spawn(rules(bus));
}

async fn links(bus: Arc<EventBus>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Err(e) = netlink::watch(tx).await {
            tracing::warn!(error = %e, "the link observer stopped");
        }
    });
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut pending: Vec<(u32, String, u8)> = Vec::new();
    let mut reported: HashMap<u32, Event> = HashMap::new();
    while let Some(change) = rx.recv().await {
        match change {
            KernelChange::Link(f) => {
                if f.name.is_empty() {
                    continue;
                }
                names.insert(f.index, f.name.clone());
                let master = f.master.and_then(|m| names.get(&m).cloned());
                if let Some(e) = link_news(&mut reported, &f, master) {
                    bus.emit(e);
                }
                // Addresses reported before their link was known.
                let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut pending).into_iter().partition(|(i, _, _)| *i == f.index);
                pending = later;
                for (_, address, prefix) in now {
                    bus.emit(Event::AddressObserved { link: f.name.clone(), address, prefix });
                }
            }
            KernelChange::LinkGone { index, name } => {
                reported.remove(&index);
                let name = names.remove(&index).unwrap_or(name);
                bus.emit(Event::LinkGone { index, name });
            }
            KernelChange::Address { index, ip, prefix } => match names.get(&index) {
                Some(link) => {
                    bus.emit(Event::AddressObserved { link: link.clone(), address: ip.to_string(), prefix });
                }
                None => pending.push((index, ip.to_string(), prefix)),
            },
            KernelChange::Route { dst, gateway, oif } => {
                let dev = oif.and_then(|i| names.get(&i).cloned());
                bus.emit(Event::RouteObserved { dst, gateway: gateway.map(|g| g.to_string()), dev });
            }
            KernelChange::RouteGone { dst, gateway, oif } => {
                let dev = oif.and_then(|i| names.get(&i).cloned());
                bus.emit(Event::RouteGone { dst, gateway: gateway.map(|g| g.to_string()), dev });
            }
            KernelChange::AddressGone { index, ip, prefix } => {
                if let Some(link) = names.get(&index) {
                    bus.emit(Event::AddressGone { link: link.clone(), address: ip.to_string(), prefix });
                }
            }
        }
    }
}

/// The `LinkObserved` that the kernel's news of a link calls for, if any:
/// none when it says nothing new of the link (the kernel repeats a link's
/// facts at every carrier, operstate or statistics change). A message
/// without the link's kind keeps the kind reported before: the page would
/// otherwise show "link vethX () up" again and again. `reported` holds the
/// last event of each link, by index.
pub fn link_news(reported: &mut HashMap<u32, Event>, f: &netlink::LinkFacts, master: Option<String>) -> Option<Event> {
    let known_kind = match reported.get(&f.index) {
        Some(Event::LinkObserved { kind, .. }) if f.kind.is_empty() => kind.clone(),
        _ => f.kind.clone(),
    };
    let e = Event::LinkObserved { index: f.index, name: f.name.clone(), kind: known_kind, master, up: f.up, link_netnsid: f.link_netnsid };
    if reported.get(&f.index) == Some(&e) {
        return None;
    }
    reported.insert(f.index, e.clone());
    Some(e)
}

/// Mount point → (fstype, source), from mountinfo's text.
pub fn parse_mountinfo(text: &str) -> BTreeMap<String, (String, String)> {
    let unescape = |s: &str| s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let target = left.split_whitespace().nth(4).unwrap_or("");
        let mut r = right.split_whitespace();
        let (fstype, source) = (r.next().unwrap_or(""), r.next().unwrap_or(""));
        if !target.is_empty() {
            out.insert(unescape(target), (fstype.to_string(), unescape(source)));
        }
    }
    out
}

async fn mounts(bus: Arc<EventBus>) {
    let mut known: BTreeMap<String, (String, String)> = BTreeMap::new();
    loop {
        if let Ok(text) = tokio::fs::read_to_string("/proc/self/mountinfo").await {
            let now = parse_mountinfo(&text);
            for (target, (fstype, source)) in &now {
                if known.get(target) != Some(&(fstype.clone(), source.clone())) {
                    bus.emit(Event::MountObserved { target: target.clone(), fstype: fstype.clone(), source: source.clone() });
                }
            }
            for target in known.keys().filter(|t| !now.contains_key(*t)) {
                bus.emit(Event::MountGone { target: target.clone() });
            }
            known = now;
        }
        tokio::time::sleep(MOUNT_POLL).await;
    }
}

/// The `-A` lines of `iptables -S`.
pub fn parse_rules(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("-A ")).map(|l| l.trim().to_string()).collect()
}

async fn rules(bus: Arc<EventBus>) {
    loop {
        // What the state believes is in the kernel, taken before reading the
        // kernel: a rule berth adds (RuleAdded puts it there at once) and a
        // learner deletes before this round is still found gone, however
        // quickly it went. A rule berth adds while the kernel is read shows
        // up as observed, which changes nothing.
        let believed: BTreeSet<(String, String)> = bus.with_state(|s| s.kernel_rules.iter().cloned().collect());
        let mut now = BTreeSet::new();
        let mut ok = true;
        for table in ["filter", "nat"] {
            // No -w: the observer never queues for the xtables lock behind the
            // engine's own rule changes; a busy round is simply skipped.
            match tokio::process::Command::new("iptables").args(["-t", table, "-S"]).output().await {
                Ok(o) if o.status.success() => {
                    for r in parse_rules(&String::from_utf8_lossy(&o.stdout)) {
                        now.insert((table.to_string(), r));
                    }
                }
                other => {
                    let why = match other {
                        Ok(o) => format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr)),
                        Err(e) => e.to_string(),
                    };
                    tracing::debug!(table, why = %crate::text::clip(&why), "rule observer: iptables -S failed; this round is skipped");
                    ok = false
                }
            }
        }
        if ok {
            for (table, rule) in now.difference(&believed) {
                bus.emit(Event::KernelRuleObserved { table: table.clone(), rule: rule.clone() });
            }
            for (table, rule) in believed.difference(&now) {
                bus.emit(Event::KernelRuleGone { table: table.clone(), rule: rule.clone() });
            }
        }
        tokio::time::sleep(RULE_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_target_type_and_source() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    90 22 0:50 / /var/lib/berth/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/a:/b\n\
                    91 22 0:4 net:[4026532] /run/berth/netns/abc rw - nsfs nsfs rw\n\
                    92 22 0:51 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m["/"], ("ext4".to_string(), "/dev/vda".to_string()));
        assert_eq!(m["/var/lib/berth/overlay2/abc/merged"].0, "overlay");
        assert_eq!(m["/run/berth/netns/abc"].0, "nsfs");
        assert!(m.contains_key("/mnt/with space"));
    }

    #[test]
    fn a_link_is_reported_again_only_when_its_facts_change_and_never_loses_its_kind() {
        let mut reported = HashMap::new();
        let veth = netlink::LinkFacts {
            index: 7,
            name: "veth1a2b3c4".into(),
            kind: "veth".into(),
            master: Some(3),
            up: false,
            link_netnsid: Some(0),
        };
        let kind_of = |e: Option<Event>| match e {
            Some(Event::LinkObserved { kind, up, .. }) => Some((kind, up)),
            _ => None,
        };
        assert_eq!(kind_of(link_news(&mut reported, &veth, Some("docker0".into()))), Some(("veth".into(), false)));
        // The same facts again (a statistics or carrier notice): nothing new.
        assert_eq!(link_news(&mut reported, &veth, Some("docker0".into())), None);
        // It comes up: reported, still a veth.
        let up = netlink::LinkFacts { up: true, ..veth.clone() };
        assert_eq!(kind_of(link_news(&mut reported, &up, Some("docker0".into()))), Some(("veth".into(), true)));
        // A message without the kind (as a bridge's port notice has none) is
        // the same link, not a new kind-less one: nothing to report.
        let no_kind = netlink::LinkFacts { kind: String::new(), ..up.clone() };
        assert_eq!(link_news(&mut reported, &no_kind, Some("docker0".into())), None);
        // And when it does bring news, the kind is kept.
        let down = netlink::LinkFacts { up: false, ..no_kind };
        assert_eq!(kind_of(link_news(&mut reported, &down, Some("docker0".into()))), Some(("veth".into(), false)));
        // Once gone, a new link with the same index is news.
        reported.remove(&7);
        assert!(link_news(&mut reported, &down, Some("docker0".into())).is_some());
    }

    #[test]
    fn only_rules_are_taken_from_iptables_s() {
        let got = parse_rules("-P INPUT ACCEPT\n-N DOCKER\n-A FORWARD -j DOCKER-USER\n-A DOCKER -i docker0 -j RETURN\n");
        assert_eq!(got, vec!["-A FORWARD -j DOCKER-USER", "-A DOCKER -i docker0 -j RETURN"]);
    }
}
