//! The root namespace, as facts that a test run must leave as it found them.
//!
//! A [`Snapshot`] is a set of one-line facts ("link veth1a2b veth", "mount
//! /run/netns/x nsfs …", "rule nat -A DOCKER …") plus the processes alive at
//! the time. [`Snapshot::leaks_since`] lists what is new: facts that were not
//! there before, and processes started since that were left behind (orphaned
//! to init, or still below the process that owns the run).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    /// One line a kernel object.
    pub facts: BTreeSet<String>,
    /// pid -> start time (clock ticks since boot): a pid reused later is new.
    pub processes: BTreeMap<i32, u64>,
}

/// What changed, one readable line an item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaks {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub processes: Vec<String>,
}

impl Leaks {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.processes.is_empty()
    }
}

impl std::fmt::Display for Leaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for a in &self.added {
            writeln!(f, "  left behind: {a}")?;
        }
        for r in &self.removed {
            writeln!(f, "  removed (was there before): {r}")?;
        }
        for p in &self.processes {
            writeln!(f, "  process still running: {p}")?;
        }
        Ok(())
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn json(cmd: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(cmd, args)).unwrap_or(serde_json::Value::Null)
}

fn s(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Snapshot {
    /// Reads the calling process's namespaces (the root ones, in a test run).
    pub fn take() -> Snapshot {
        let mut facts = BTreeSet::new();
        // Links and addresses.
        if let serde_json::Value::Array(links) = json("ip", &["-j", "-d", "addr", "show"]) {
            for l in &links {
                let name = s(&l["ifname"]);
                let kind = s(&l["linkinfo"]["info_kind"]);
                facts.insert(format!("link {name} {kind}").trim_end().to_string());
                if let Some(master) = l["master"].as_str() {
                    facts.insert(format!("link {name} master {master}"));
                }
                if let serde_json::Value::Array(addrs) = &l["addr_info"] {
                    for a in addrs {
                        facts.insert(format!("addr {name} {}/{}", s(&a["local"]), s(&a["prefixlen"])));
                    }
                }
            }
        }
        // Routes, every table, both families.
        for fam in ["-4", "-6"] {
            if let serde_json::Value::Array(routes) = json("ip", &["-j", fam, "route", "show", "table", "all"]) {
                for r in &routes {
                    facts.insert(format!(
                        "route {fam} {} dev {} table {} via {}",
                        s(&r["dst"]),
                        s(&r["dev"]),
                        s(&r["table"]),
                        s(&r["gateway"])
                    ));
                }
            }
        }
        // Mounts.
        for line in fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let Some(dash) = f.iter().position(|x| *x == "-") {
                if f.len() > dash + 2 {
                    facts.insert(format!("mount {} {} {}", f[4], f[dash + 1], f[dash + 2]));
                }
            }
        }
        // Netfilter, as iptables-save prints it, without counters.
        for (tool, fam) in [("iptables-save", "ipv4"), ("ip6tables-save", "ipv6")] {
            let mut table = String::new();
            for line in run(tool, &[]).lines() {
                if let Some(t) = line.strip_prefix('*') {
                    table = t.to_string();
                } else if line.starts_with('-') {
                    facts.insert(format!("rule {fam} {table} {line}"));
                } else if let Some(chain) = line.strip_prefix(':') {
                    let name = chain.split_whitespace().next().unwrap_or("");
                    facts.insert(format!("chain {fam} {table} {name}"));
                }
            }
        }
        // Named network namespaces.
        if let Ok(dir) = fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                facts.insert(format!("netns {}", e.file_name().to_string_lossy()));
            }
        }
        // Sandbox cgroups.
        if let Ok(dir) = fs::read_dir(crate::sandbox::CGROUP_ROOT) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("berth") {
                    facts.insert(format!("cgroup {name}"));
                }
            }
        }
        // berthd's container cgroups in every hierarchy (the devices cgroup).
        for dir in crate::sandbox::berth_cgroups_of("") {
            facts.insert(format!("cgroup {}", dir.display()));
        }
        Snapshot { facts, processes: processes().into_iter().map(|p| (p.pid, p.start)).collect() }
    }

    /// What is different now from `before`. `owner` is the pid whose
    /// descendants count as the run's own (the test script); processes
    /// orphaned to pid 1 since `before` count too.
    pub fn leaks_since(&self, before: &Snapshot, owner: Option<i32>) -> Leaks {
        let added = self.facts.difference(&before.facts).cloned().collect();
        let removed = before.facts.difference(&self.facts).cloned().collect();
        let procs = processes();
        let by_pid: BTreeMap<i32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
        let me = std::process::id() as i32;
        let mut my_ancestors = BTreeSet::new();
        let mut cur = Some(me);
        while let Some(pid) = cur {
            if !my_ancestors.insert(pid) {
                break;
            }
            cur = by_pid.get(&pid).map(|p| p.ppid).filter(|pp| *pp > 0);
        }
        let under = |p: &Proc, ancestor: i32| {
            let mut cur = p.ppid;
            let mut hops = 0;
            while cur > 1 && hops < 64 {
                if cur == ancestor {
                    return true;
                }
                cur = by_pid.get(&cur).map(|q| q.ppid).unwrap_or(0);
                hops += 1;
            }
            cur == ancestor
        };
        let mut leaked = Vec::new();
        for p in &procs {
            if before.processes.get(&p.pid) == Some(&p.start) || my_ancestors.contains(&p.pid) {
                continue;
            }
            let orphan = p.ppid == 1;
            let owned = owner.is_some_and(|o| under(p, o));
            // Only what is still below the owner or was orphaned counts: a
            // process with a live parent of its own belongs to that parent.
            let orphan_chain = !orphan && {
                let mut cur = p.ppid;
                let mut found = false;
                for _ in 0..64 {
                    match by_pid.get(&cur) {
                        Some(q) if q.ppid == 1 => {
                            found = before.processes.get(&q.pid) != Some(&q.start);
                            break;
                        }
                        Some(q) => cur = q.ppid,
                        None => break,
                    }
                }
                found
            };
            if orphan || owned || orphan_chain {
                leaked.push(format!("pid {} ({}) {}", p.pid, p.comm, p.cmdline));
            }
        }
        Leaks { added, removed, processes: leaked }
    }
}

#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub start: u64,
    pub comm: String,
    pub cmdline: String,
}

/// Every process on the machine, from /proc.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // comm may hold spaces and parentheses: split at the last ')'.
        let Some(close) = stat.rfind(')') else { continue };
        let comm = stat[stat.find('(').map(|i| i + 1).unwrap_or(0)..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // rest[0] is state (field 3): ppid is field 4, starttime field 22.
        let (Some(ppid), Some(start)) = (rest.get(1), rest.get(19)) else { continue };
        if rest.first() == Some(&"Z") {
            continue; // a zombie is already dead; its parent will reap it
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
            .unwrap_or_default();
        out.push(Proc { pid, ppid: ppid.parse().unwrap_or(0), start: start.parse().unwrap_or(0), comm, cmdline });
    }
    out
}

/// Processes started since boot whose ancestor chain reaches `ancestor`.
pub fn descendants_of(ancestor: i32) -> Vec<Proc> {
    let procs = processes();
    let by_pid: BTreeMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    procs
        .into_iter()
        .filter(|p| {
            let mut cur = p.ppid;
            for _ in 0..64 {
                if cur == ancestor {
                    return true;
                }
                match by_pid.get(&cur) {
                    Some(pp) if *pp > 0 => cur = *pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_loopback_and_the_root_mount() {
        let s = Snapshot::take();
        assert!(s.facts.iter().any(|f| f.starts_with("link lo")), "{:?}", s.facts);
        assert!(s.facts.iter().any(|f| f.starts_with("mount / ")), "{:?}", s.facts);
        assert!(s.processes.contains_key(&(std::process::id() as i32)));
    }

    #[test]
    fn facts_that_appear_or_vanish_are_both_reported() {
        let before = Snapshot { facts: ["a".into(), "b".into()].into(), processes: BTreeMap::new() };
        let after = Snapshot { facts: ["b".into(), "c".into()].into(), processes: BTreeMap::new() };
        let leaks = after.leaks_since(&before, Some(-5));
        assert_eq!(leaks.added, vec!["c"]);
        assert_eq!(leaks.removed, vec!["a"]);
    }
}
