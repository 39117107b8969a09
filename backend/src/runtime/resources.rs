//! Resource limits and accounting: each container's cgroups in the `memory`,
//! `pids`, `cpu`, `cpuacct`, `blkio` and `freezer` controllers of the cgroup
//! v1 hierarchy (what the hosts here have), or its one cgroup on a v2 host.
//!
//! The decisions are pure and tested without root: [`Limits`] reads and
//! checks HostConfig's resource fields with Docker's rules and messages,
//! [`writes`] turns limits into the control-file writes for either
//! hierarchy, and the `parse_*`/[`Sample`] functions read what the kernel
//! reports back into what `docker stats` shows. [`ResourceCgroups`] is the
//! kernel side: it finds (or mounts) the hierarchies, makes and removes a
//! container's cgroups, freezes and thaws them (`docker pause`), reads them,
//! and at daemon start kills what a crashed daemon left running in them.
//!
//! Layout: `<hierarchy>/<parent>/<container id>`, the parent being this
//! daemon's own (see [`super::cgroups::parent_name`]), as the devices cgroup.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Docker's smallest memory limit and reservation (6 MiB).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period Docker uses for `--cpus`.
const CPU_PERIOD: i64 = 100_000;

/// A v1 controller berth manages (each may be its own hierarchy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ctrl {
    Memory,
    Pids,
    Cpu,
    Cpuacct,
    Blkio,
    Freezer,
}

impl Ctrl {
    pub const ALL: [Ctrl; 6] = [Ctrl::Memory, Ctrl::Pids, Ctrl::Cpu, Ctrl::Cpuacct, Ctrl::Blkio, Ctrl::Freezer];

    pub fn name(self) -> &'static str {
        match self {
            Ctrl::Memory => "memory",
            Ctrl::Pids => "pids",
            Ctrl::Cpu => "cpu",
            Ctrl::Cpuacct => "cpuacct",
            Ctrl::Blkio => "blkio",
            Ctrl::Freezer => "freezer",
        }
    }
}

/// Which cgroup hierarchy a write is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// HostConfig's resource fields, checked. Zero means "not set" except
/// where noted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--memory`, bytes.
    pub memory: i64,
    /// `--memory-swap`: memory plus swap, bytes; -1 unlimited; 0 is
    /// Docker's default (twice the memory limit).
    pub memory_swap: i64,
    /// `--memory-reservation`, bytes (the soft limit).
    pub memory_reservation: i64,
    pub oom_kill_disable: bool,
    /// `--pids-limit`: 0 or -1 unlimited.
    pub pids_limit: i64,
    /// `--cpu-shares` (relative weight; 1024 is the default).
    pub cpu_shares: i64,
    /// `--cpu-period` and `--cpu-quota`, microseconds.
    pub cpu_period: i64,
    pub cpu_quota: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
}

fn int(hc: &Value, key: &str) -> Result<i64, String> {
    match &hc[key] {
        Value::Null => Ok(0),
        v => v.as_i64().ok_or_else(|| format!("json: cannot unmarshal {v} into Go struct field HostConfig.{key} of type int64")),
    }
}

impl Limits {
    /// Reads the resource fields of a HostConfig (or of an update's body),
    /// with Docker's checks and messages; `ncpu` is the host's CPU count.
    pub fn from_host_config(hc: &Value, ncpu: usize) -> Result<Limits, String> {
        let l = Limits {
            memory: int(hc, "Memory")?,
            memory_swap: int(hc, "MemorySwap")?,
            memory_reservation: int(hc, "MemoryReservation")?,
            oom_kill_disable: hc["OomKillDisable"].as_bool().unwrap_or(false),
            pids_limit: int(hc, "PidsLimit")?,
            cpu_shares: int(hc, "CpuShares")?,
            cpu_period: int(hc, "CpuPeriod")?,
            cpu_quota: int(hc, "CpuQuota")?,
            nano_cpus: int(hc, "NanoCpus")?,
        };
        l.check(ncpu)?;
        Ok(l)
    }

    fn check(&self, ncpu: usize) -> Result<(), String> {
        if self.memory < 0 {
            return Err("invalid memory limit: a negative value".into());
        }
        if self.memory != 0 && self.memory < MIN_MEMORY {
            return Err("Minimum memory limit allowed is 6MB".into());
        }
        if self.memory_swap > 0 && self.memory == 0 {
            return Err("You should always set the Memory limit when using Memoryswap limit, see usage".into());
        }
        if self.memory > 0 && self.memory_swap > 0 && self.memory_swap < self.memory {
            return Err("Minimum memoryswap limit should be larger than memory limit, see usage".into());
        }
        if self.memory_reservation != 0 && self.memory_reservation < MIN_MEMORY {
            return Err("Minimum memory reservation allowed is 6MB".into());
        }
        if self.memory > 0 && self.memory_reservation > 0 && self.memory < self.memory_reservation {
            return Err("Minimum memory limit can not be less than memory reservation limit, see usage".into());
        }
        if self.nano_cpus > 0 && self.cpu_period > 0 {
            return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
        }
        if self.nano_cpus > 0 && self.cpu_quota > 0 {
            return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
        }
        if self.nano_cpus < 0 || self.nano_cpus > ncpu as i64 * 1_000_000_000 {
            return Err(format!("Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"));
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return Err("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)".into());
        }
        if self.cpu_quota > 0 && self.cpu_quota < 1000 {
            return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
        }
        if self.cpu_shares < 0 {
            return Err("invalid CPU shares: a negative value".into());
        }
        Ok(())
    }

    /// The memory+swap limit the kernel gets: None when there is no memory
    /// limit, -1 for unlimited swap, else bytes.
    pub fn effective_swap(&self) -> Option<i64> {
        (self.memory > 0).then(|| match self.memory_swap {
            0 => self.memory * 2,
            s => s,
        })
    }

    /// The CFS (quota, period) in microseconds, from `--cpus` or
    /// `--cpu-quota`/`--cpu-period`.
    pub fn cfs(&self) -> (Option<i64>, Option<i64>) {
        if self.nano_cpus > 0 {
            return (Some(self.nano_cpus * CPU_PERIOD / 1_000_000_000), Some(CPU_PERIOD));
        }
        ((self.cpu_quota != 0).then_some(self.cpu_quota), (self.cpu_period > 0).then_some(self.cpu_period))
    }

    /// `cpu.shares` within the kernel's range (Docker clamps the same way).
    pub fn shares(&self) -> Option<i64> {
        (self.cpu_shares > 0).then(|| self.cpu_shares.clamp(2, 262_144))
    }
}

/// `docker update`: the fields the update sets (non-zero; `PidsLimit`
/// when present, 0 and -1 meaning unlimited) laid over the container's
/// HostConfig, with Docker's checks of the result. Returns the new
/// HostConfig's resource fields as they should be stored.
pub fn merge_update(hc: &Value, update: &Value, ncpu: usize) -> Result<Value, String> {
    let mut out = hc.clone();
    if !out.is_object() {
        out = Value::Object(Default::default());
    }
    let old = Limits::from_host_config(hc, ncpu).unwrap_or_default();
    // The cross-field checks are made on the merged result, below.
    let upd = Limits::from_host_config(&strip_checks(update), 1 << 20).map_err(|e| e.replace("HostConfig", "UpdateConfig"))?;
    if upd.memory > 0 && upd.memory_swap == 0 && old.memory_swap > 0 && upd.memory > old.memory_swap {
        return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
    }
    for key in ["Memory", "MemorySwap", "MemoryReservation", "CpuShares", "CpuPeriod", "CpuQuota", "NanoCpus"] {
        if update[key].as_i64().is_some_and(|v| v != 0) {
            out[key] = update[key].clone();
        }
    }
    if update["NanoCpus"].as_i64().is_some_and(|v| v > 0) {
        out["CpuPeriod"] = 0.into();
        out["CpuQuota"] = 0.into();
    }
    if let Some(p) = update["PidsLimit"].as_i64() {
        out["PidsLimit"] = if p <= 0 { Value::from(0) } else { p.into() };
    }
    if update["RestartPolicy"].is_object() {
        out["RestartPolicy"] = update["RestartPolicy"].clone();
    }
    Limits::from_host_config(&out, ncpu)?;
    Ok(out)
}

/// The update's fields without the cross-field checks (done on the merge).
fn strip_checks(update: &Value) -> Value {
    let mut u = update.clone();
    if let Some(o) = u.as_object_mut() {
        // A swap limit may come without a memory limit: the container's
        // own memory limit completes it.
        if o.get("Memory").and_then(Value::as_i64).unwrap_or(0) == 0 {
            o.remove("MemorySwap");
            o.remove("MemoryReservation");
        }
    }
    u
}

/// One control-file write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The v1 controller whose hierarchy holds the file (None on v2).
    pub ctrl: Option<Ctrl>,
    pub file: &'static str,
    pub value: String,
}

fn w(ctrl: Ctrl, file: &'static str, value: impl ToString) -> Write {
    Write { ctrl: Some(ctrl), file, value: value.to_string() }
}

fn w2(file: &'static str, value: impl ToString) -> Write {
    Write { ctrl: None, file, value: value.to_string() }
}

/// The writes that give a cgroup these limits. `reset` also writes the
/// unlimited values of unset limits (an update that lifts one); a new
/// cgroup starts unlimited, so it needs only what is set. `swap_accounting`
/// is whether the v1 memory controller has `memsw` files.
pub fn writes(l: &Limits, version: Version, swap_accounting: bool, reset: bool) -> Vec<Write> {
    let mut out = Vec::new();
    let (quota, period) = l.cfs();
    match version {
        Version::V1 => {
            if l.memory > 0 {
                // The kernel keeps limit ≤ memsw: the executor retries a
                // write the other order needs (see ResourceCgroups::apply).
                out.push(w(Ctrl::Memory, "memory.limit_in_bytes", l.memory));
                if swap_accounting {
                    out.push(w(Ctrl::Memory, "memory.memsw.limit_in_bytes", l.effective_swap().unwrap_or(-1)));
                }
            }
            if l.memory_reservation > 0 {
                out.push(w(Ctrl::Memory, "memory.soft_limit_in_bytes", l.memory_reservation));
            }
            if l.oom_kill_disable && l.memory > 0 {
                out.push(w(Ctrl::Memory, "memory.oom_control", 1));
            }
            if l.pids_limit > 0 {
                out.push(w(Ctrl::Pids, "pids.max", l.pids_limit));
            } else if reset {
                out.push(w(Ctrl::Pids, "pids.max", "max"));
            }
            if let Some(s) = l.shares() {
                out.push(w(Ctrl::Cpu, "cpu.shares", s));
            }
            if let Some(p) = period {
                out.push(w(Ctrl::Cpu, "cpu.cfs_period_us", p));
            } else if reset && quota.is_some() {
                out.push(w(Ctrl::Cpu, "cpu.cfs_period_us", CPU_PERIOD));
            }
            match quota {
                Some(q) => out.push(w(Ctrl::Cpu, "cpu.cfs_quota_us", q)),
                None if reset => out.push(w(Ctrl::Cpu, "cpu.cfs_quota_us", -1)),
                None => {}
            }
        }
        Version::V2 => {
            if l.memory > 0 {
                out.push(w2("memory.max", l.memory));
                let swap = match l.effective_swap() {
                    Some(-1) | None => "max".to_string(),
                    Some(s) => (s - l.memory).max(0).to_string(),
                };
                out.push(w2("memory.swap.max", swap));
            }
            if l.memory_reservation > 0 {
                out.push(w2("memory.low", l.memory_reservation));
            }
            if l.pids_limit > 0 {
                out.push(w2("pids.max", l.pids_limit));
            } else if reset {
                out.push(w2("pids.max", "max"));
            }
            if let Some(s) = l.shares() {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                out.push(w2("cpu.weight", 1 + ((s - 2) * 9999) / 262_142));
            }
            let period = period.unwrap_or(CPU_PERIOD);
            match quota {
                Some(q) if q > 0 => out.push(w2("cpu.max", format!("{q} {period}"))),
                _ if reset || period != CPU_PERIOD => out.push(w2("cpu.max", format!("max {period}"))),
                _ => {}
            }
        }
    }
    out
}

/// A `key value` per line file (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One interface's counters from `/proc/<pid>/net/dev`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `/proc/<pid>/net/dev`: every interface but `lo`, as Docker reports them.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetCounters> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            if name == "lo" || n.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetCounters {
                    rx_bytes: n[0],
                    rx_packets: n[1],
                    rx_errors: n[2],
                    rx_dropped: n[3],
                    tx_bytes: n[8],
                    tx_packets: n[9],
                    tx_errors: n[10],
                    tx_dropped: n[11],
                },
            ))
        })
        .collect()
}

/// `/proc/stat`'s first line as Docker's `system_cpu_usage`: nanoseconds
/// of CPU time of the whole host (`clk_tck` ticks per second).
pub fn parse_system_cpu(proc_stat: &str, clk_tck: u64) -> u64 {
    let Some(line) = proc_stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    // user nice system idle iowait irq softirq steal (guest is in user).
    let ticks: u64 = line.split_whitespace().skip(1).take(8).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks * (1_000_000_000 / clk_tck.max(1))
}

/// blkio's `io_service_bytes` lines (`8:0 Read 4096`) as Docker's entries.
pub fn parse_blkio(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let (dev, op, v) = (p.next()?, p.next()?, p.next()?);
            let (ma, mi) = dev.split_once(':')?;
            Some(serde_json::json!({
                "major": ma.parse::<u64>().ok()?, "minor": mi.parse::<u64>().ok()?,
                "op": op.to_lowercase(), "value": v.parse::<u64>().ok()?,
            }))
        })
        .collect()
}

/// v2's `io.stat` (`8:0 rbytes=4096 wbytes=0 …`) as Docker's entries.
pub fn parse_io_stat(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut p = l.split_whitespace();
        let Some((ma, mi)) = p.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(ma), Ok(mi)) = (ma.parse::<u64>(), mi.parse::<u64>()) else { continue };
        for kv in p {
            let op = match kv.split_once('=') {
                Some(("rbytes", v)) => ("read", v),
                Some(("wbytes", v)) => ("write", v),
                _ => continue,
            };
            if let Ok(v) = op.1.parse::<u64>() {
                out.push(serde_json::json!({"major": ma, "minor": mi, "op": op.0, "value": v}));
            }
        }
    }
    out
}

/// What one read of a container's cgroups found (Docker's stats fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    pub percpu_ns: Vec<u64>,
    pub throttled_periods: u64,
    pub throttled_time_ns: u64,
    pub periods: u64,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_failcnt: u64,
    /// The limit, or the host's memory when unlimited (as Docker reports).
    pub memory_limit: u64,
    pub memory_stat: BTreeMap<String, u64>,
    pub pids_current: u64,
    /// None when unlimited.
    pub pids_limit: Option<u64>,
    pub blkio: Vec<Value>,
}

/// Reads a file of a cgroup dir as a number (`max` reads as None).
fn read_num(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The host's memory in bytes (what Docker shows as the limit of an
/// unlimited container).
pub fn host_memory() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_flat_keyed(&text.replace(" kB", "").replace(':', "")).get("MemTotal").copied().unwrap_or(0) * 1024
}

/// A kernel number larger than any real limit is "unlimited".
fn limited(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v < (1u64 << 62))
}

/// The cgroup hierarchies of this daemon: v1 controllers, each at its
/// hierarchy's root (mounted under the exec-root when not reachable), or
/// the v2 root.
#[derive(Debug)]
pub struct ResourceCgroups {
    v1: Vec<(Ctrl, PathBuf)>,
    v2: Option<PathBuf>,
    /// Mounted by us; unmounted at close.
    mounted: Vec<PathBuf>,
    parent: String,
    swap_accounting: bool,
}

/// The controllers mounted together with `ctrl` (from /proc/cgroups'
/// hierarchy ids): a hierarchy can only be mounted again with its whole set.
pub fn comounted(proc_cgroups: &str, ctrl: &str) -> Vec<String> {
    let rows: Vec<(String, String)> = proc_cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect();
    let Some(h) = rows.iter().find(|(n, _)| n == ctrl).map(|(_, h)| h.clone()) else { return Vec::new() };
    if h == "0" {
        return vec![ctrl.to_string()];
    }
    rows.into_iter().filter(|(_, hh)| *hh == h).map(|(n, _)| n).collect()
}

impl ResourceCgroups {
    /// Finds the hierarchies (mounting what is not reachable here under
    /// `exec_root`, as a berthd with a fresh /sys needs).
    pub fn open(exec_root: &Path) -> Self {
        let parent = super::cgroups::parent_name(exec_root);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut me = ResourceCgroups { v1: Vec::new(), v2: None, mounted: Vec::new(), parent, swap_accounting: false };
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let root = PathBuf::from("/sys/fs/cgroup");
            // Containers' cgroups get the controllers they are limited by.
            let _ = fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids +io");
            let p = root.join(&me.parent);
            if fs::create_dir_all(&p).is_ok() {
                let _ = fs::write(p.join("cgroup.subtree_control"), "+cpu +memory +pids +io");
            }
            me.swap_accounting = true;
            me.v2 = Some(root);
            return me;
        }
        let mounts = super::cgroups::v1_mounts(&mountinfo);
        let proc_cgroups = fs::read_to_string("/proc/cgroups").unwrap_or_default();
        for ctrl in Ctrl::ALL {
            let found = mounts
                .iter()
                .filter(|(_, opts)| opts.iter().any(|o| o == ctrl.name()))
                .map(|(mp, _)| mp.clone())
                .find(|mp| mp.join("cgroup.procs").is_file());
            if let Some(mp) = found {
                me.v1.push((ctrl, mp));
                continue;
            }
            let set = comounted(&proc_cgroups, ctrl.name());
            if set.is_empty() {
                continue; // the kernel has no such controller
            }
            if let Some((_, mp)) = me.v1.iter().find(|(c, _)| set.iter().any(|s| s == c.name())) {
                // Mounted by us already for a co-mounted controller.
                let mp = mp.clone();
                me.v1.push((ctrl, mp));
                continue;
            }
            let dir = exec_root.join(format!("cgroup-{}", set.join(",")));
            if dir.join("cgroup.procs").is_file() {
                me.v1.push((ctrl, dir));
                continue;
            }
            match mount_v1(&dir, &set.join(",")) {
                Ok(()) => {
                    me.mounted.push(dir.clone());
                    me.v1.push((ctrl, dir));
                }
                Err(e) => {
                    tracing::warn!(controller = ctrl.name(), error = %e, "no cgroup hierarchy: containers get no limits from it");
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
        me.swap_accounting = me.root(Ctrl::Memory).is_some_and(|r| r.join("memory.memsw.limit_in_bytes").exists());
        me
    }

    fn root(&self, ctrl: Ctrl) -> Option<&PathBuf> {
        self.v1.iter().find(|(c, _)| *c == ctrl).map(|(_, p)| p)
    }

    pub fn version(&self) -> Version {
        if self.v2.is_some() {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// Can limits be applied (and stats read) on this host?
    pub fn available(&self) -> bool {
        self.v2.is_some() || self.root(Ctrl::Memory).is_some()
    }

    /// Does this host have the controller (on v2: all of them)?
    pub fn has(&self, ctrl: Ctrl) -> bool {
        self.v2.is_some() || self.root(ctrl).is_some()
    }

    /// Does the host account swap (v1's `memsw` files)?
    pub fn swap_accounting(&self) -> bool {
        self.swap_accounting
    }

    /// The container's cgroup dir in one controller's hierarchy (None: in
    /// the v2 one).
    pub fn dir(&self, ctrl: Option<Ctrl>, id: &str) -> Option<PathBuf> {
        match (&self.v2, ctrl) {
            (Some(root), _) => Some(root.join(&self.parent).join(id)),
            (None, Some(c)) => self.root(c).map(|r| r.join(&self.parent).join(id)),
            (None, None) => None,
        }
    }

    /// Every distinct dir of the container (one per hierarchy).
    fn dirs(&self, id: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = match &self.v2 {
            Some(_) => self.dir(None, id).into_iter().collect(),
            None => Ctrl::ALL.iter().filter_map(|c| self.dir(Some(*c), id)).collect(),
        };
        out.dedup();
        out
    }

    /// Where the container sees its cgroups (`/sys/fs/cgroup/<name>` on
    /// v1, `/sys/fs/cgroup` itself on v2): (name, host dir).
    pub fn views(&self, id: &str) -> Vec<(String, PathBuf)> {
        match &self.v2 {
            Some(_) => self.dir(None, id).map(|d| (String::new(), d)).into_iter().collect(),
            None => Ctrl::ALL.iter().filter_map(|c| Some((c.name().to_string(), self.dir(Some(*c), id)?))).collect(),
        }
    }

    /// Makes the container's cgroups with its limits; returns the
    /// `cgroup.procs` files its helper joins.
    pub fn create(&self, id: &str, limits: &Limits) -> io::Result<Vec<PathBuf>> {
        let dirs = self.dirs(id);
        for d in &dirs {
            fs::create_dir_all(d)?;
        }
        if let Err(e) = self.apply(id, limits, false) {
            for d in &dirs {
                let _ = fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(dirs.iter().map(|d| d.join("cgroup.procs")).collect())
    }

    /// Writes limits into the container's cgroups (at create, and for
    /// `docker update` with `reset`). A write the kernel refuses because of
    /// the order (memory above memsw) is retried once the others are done.
    pub fn apply(&self, id: &str, limits: &Limits, reset: bool) -> io::Result<()> {
        let mut retry = Vec::new();
        for wr in writes(limits, self.version(), self.swap_accounting, reset) {
            let Some(dir) = self.dir(wr.ctrl, id) else { continue };
            if fs::write(dir.join(wr.file), &wr.value).is_err() {
                retry.push((dir, wr));
            }
        }
        for (dir, wr) in retry {
            fs::write(dir.join(wr.file), &wr.value)
                .map_err(|e| io::Error::new(e.kind(), format!("writing {} to {}: {e}", wr.value, dir.join(wr.file).display())))?;
        }
        Ok(())
    }

    /// The pids in the container's cgroups.
    pub fn pids(&self, id: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs(id)
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Freezes (`docker pause`) or thaws the container's processes, and
    /// waits until the kernel says it is done.
    pub async fn freeze(&self, id: &str, frozen: bool) -> io::Result<()> {
        let (file, value, done_file, done): (PathBuf, &str, PathBuf, &str) = match &self.v2 {
            Some(_) => {
                let d = self.dir(None, id).ok_or_else(|| io::Error::other("no cgroup"))?;
                (
                    d.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    d.join("cgroup.events"),
                    if frozen { "frozen 1" } else { "frozen 0" },
                )
            }
            None => {
                let d = self.dir(Some(Ctrl::Freezer), id).ok_or_else(|| io::Error::other("this host has no freezer cgroup"))?;
                let v = if frozen { "FROZEN" } else { "THAWED" };
                (d.join("freezer.state"), v, d.join("freezer.state"), v)
            }
        };
        for _ in 0..200 {
            fs::write(&file, value)?;
            if fs::read_to_string(&done_file)?.lines().any(|l| l.trim() == done) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, format!("the cgroup did not reach {done}")))
    }

    /// Thaws at once, without waiting (a SIGKILLed paused container).
    pub fn thaw_now(&self, id: &str) {
        let _ = match &self.v2 {
            Some(_) => self.dir(None, id).map(|d| fs::write(d.join("cgroup.freeze"), "0")),
            None => self.dir(Some(Ctrl::Freezer), id).map(|d| fs::write(d.join("freezer.state"), "THAWED")),
        };
    }

    /// How many times the kernel's OOM killer killed a process of it.
    pub fn oom_kills(&self, id: &str) -> u64 {
        let file = match &self.v2 {
            Some(_) => self.dir(None, id).map(|d| d.join("memory.events")),
            None => self.dir(Some(Ctrl::Memory), id).map(|d| d.join("memory.oom_control")),
        };
        file.and_then(|f| fs::read_to_string(f).ok()).and_then(|t| parse_flat_keyed(&t).get("oom_kill").copied()).unwrap_or(0)
    }

    /// Reads the container's usage.
    pub fn sample(&self, id: &str) -> Sample {
        let mut s = Sample { memory_limit: host_memory(), ..Sample::default() };
        match &self.v2 {
            Some(_) => {
                let Some(d) = self.dir(None, id) else { return s };
                let cpu = parse_flat_keyed(&fs::read_to_string(d.join("cpu.stat")).unwrap_or_default());
                let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
                s.cpu_total_ns = g("usage_usec") * 1000;
                s.cpu_user_ns = g("user_usec") * 1000;
                s.cpu_kernel_ns = g("system_usec") * 1000;
                s.periods = g("nr_periods");
                s.throttled_periods = g("nr_throttled");
                s.throttled_time_ns = g("throttled_usec") * 1000;
                s.memory_usage = read_num(&d.join("memory.current")).unwrap_or(0);
                s.memory_max_usage = read_num(&d.join("memory.peak")).unwrap_or(0);
                if let Some(l) = limited(read_num(&d.join("memory.max"))) {
                    s.memory_limit = l;
                }
                s.memory_stat = parse_flat_keyed(&fs::read_to_string(d.join("memory.stat")).unwrap_or_default());
                s.pids_current = read_num(&d.join("pids.current")).unwrap_or(0);
                s.pids_limit = read_num(&d.join("pids.max"));
                s.blkio = parse_io_stat(&fs::read_to_string(d.join("io.stat")).unwrap_or_default());
            }
            None => {
                if let Some(d) = self.dir(Some(Ctrl::Cpuacct), id) {
                    s.cpu_total_ns = read_num(&d.join("cpuacct.usage")).unwrap_or(0);
                    s.percpu_ns = fs::read_to_string(d.join("cpuacct.usage_percpu"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                    let st = parse_flat_keyed(&fs::read_to_string(d.join("cpuacct.stat")).unwrap_or_default());
                    let tick = 1_000_000_000 / clk_tck();
                    s.cpu_user_ns = st.get("user").copied().unwrap_or(0) * tick;
                    s.cpu_kernel_ns = st.get("system").copied().unwrap_or(0) * tick;
                }
                if let Some(d) = self.dir(Some(Ctrl::Cpu), id) {
                    let st = parse_flat_keyed(&fs::read_to_string(d.join("cpu.stat")).unwrap_or_default());
                    s.periods = st.get("nr_periods").copied().unwrap_or(0);
                    s.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
                    s.throttled_time_ns = st.get("throttled_time").copied().unwrap_or(0);
                }
                if let Some(d) = self.dir(Some(Ctrl::Memory), id) {
                    s.memory_usage = read_num(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                    s.memory_max_usage = read_num(&d.join("memory.max_usage_in_bytes")).unwrap_or(0);
                    s.memory_failcnt = read_num(&d.join("memory.failcnt")).unwrap_or(0);
                    if let Some(l) = limited(read_num(&d.join("memory.limit_in_bytes"))) {
                        s.memory_limit = l.min(s.memory_limit.max(1));
                    }
                    s.memory_stat = parse_flat_keyed(&fs::read_to_string(d.join("memory.stat")).unwrap_or_default());
                }
                if let Some(d) = self.dir(Some(Ctrl::Pids), id) {
                    s.pids_current = read_num(&d.join("pids.current")).unwrap_or(0);
                    s.pids_limit = read_num(&d.join("pids.max"));
                }
                if let Some(d) = self.dir(Some(Ctrl::Blkio), id) {
                    let t = fs::read_to_string(d.join("blkio.throttle.io_service_bytes_recursive"))
                        .or_else(|_| fs::read_to_string(d.join("blkio.throttle.io_service_bytes")))
                        .unwrap_or_default();
                    s.blkio = parse_blkio(&t);
                }
            }
        }
        s
    }

    /// Removes the container's cgroups once its processes are gone (the
    /// kernel refuses while any is in one; PID 1's death ends the rest
    /// asynchronously, so this retries a while).
    pub async fn remove(&self, id: &str) {
        for d in self.dirs(id) {
            for _ in 0..100 {
                match fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }

    /// Daemon start: every container cgroup of this daemon still holding
    /// processes belongs to a container a crashed daemon lost track of.
    /// They are thawed and killed (Docker, without live-restore, does not
    /// keep them either), and the empty cgroups removed. Returns the ids.
    pub async fn kill_orphans(&self, extra_procs: &[PathBuf]) -> Vec<String> {
        let mut ids = std::collections::BTreeSet::new();
        let parents: Vec<PathBuf> = match &self.v2 {
            Some(r) => vec![r.join(&self.parent)],
            None => self.v1.iter().map(|(_, r)| r.join(&self.parent)).collect(),
        };
        for p in &parents {
            for e in fs::read_dir(p).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    ids.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let mut killed = Vec::new();
        for id in ids {
            let mut pids = self.pids(&id);
            for f in extra_procs.iter().filter(|f| f.parent().is_some_and(|d| d.ends_with(&id))) {
                pids.extend(fs::read_to_string(f).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if !pids.is_empty() {
                for pid in &pids {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
                }
                // Frozen processes die only once thawed.
                let _ = self.freeze(&id, false).await;
                killed.push(id.clone());
            }
            self.remove(&id).await;
        }
        killed
    }

    /// Daemon shutdown: the parents go once empty, and our own mounts.
    pub async fn close(&self) {
        let parents: Vec<PathBuf> = match &self.v2 {
            Some(r) => vec![r.join(&self.parent)],
            None => self.v1.iter().map(|(_, r)| r.join(&self.parent)).collect(),
        };
        for p in parents {
            for _ in 0..60 {
                for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                    let _ = fs::remove_dir(e.path());
                }
                match fs::remove_dir(&p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => tokio::time::sleep(Duration::from_millis(50)).await,
                    _ => break,
                }
            }
        }
        for m in &self.mounted {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(m);
        }
    }
}

fn mount_v1(dir: &Path, controllers: &str) -> io::Result<()> {
    use nix::mount::MsFlags;
    fs::create_dir_all(dir)?;
    nix::mount::mount(Some("cgroup"), dir, Some("cgroup"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(controllers))
        .map_err(io::Error::from)
}

/// Clock ticks per second (USER_HZ).
pub fn clk_tck() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map(|v| v as u64).filter(|v| *v > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MB: i64 = 1024 * 1024;

    fn limits(hc: Value) -> Result<Limits, String> {
        Limits::from_host_config(&hc, 2)
    }

    #[test]
    fn dockers_checks_and_messages_for_resource_flags() {
        assert_eq!(limits(json!({})).unwrap(), Limits::default());
        assert_eq!(limits(json!({"Memory": MB})).unwrap_err(), "Minimum memory limit allowed is 6MB");
        assert_eq!(
            limits(json!({"MemorySwap": 64 * MB})).unwrap_err(),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        assert_eq!(
            limits(json!({"Memory": 64 * MB, "MemorySwap": 32 * MB})).unwrap_err(),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            limits(json!({"Memory": 16 * MB, "MemoryReservation": 32 * MB})).unwrap_err(),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            limits(json!({"NanoCpus": 500_000_000, "CpuQuota": 50_000})).unwrap_err(),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert_eq!(
            limits(json!({"NanoCpus": 3_000_000_000i64})).unwrap_err(),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert!(limits(json!({"CpuPeriod": 10})).unwrap_err().contains("CPU cfs period"));
        assert!(limits(json!({"CpuQuota": 10})).unwrap_err().contains("CPU cfs quota"));
        assert!(limits(json!({"Memory": "lots"})).unwrap_err().contains("HostConfig.Memory"));
        let ok = limits(json!({"Memory": 32 * MB, "MemorySwap": -1, "PidsLimit": 50, "NanoCpus": 500_000_000, "CpuShares": 512}));
        assert_eq!(ok.unwrap().effective_swap(), Some(-1));
    }

    #[test]
    fn v1_writes_follow_dockers_defaults() {
        let l = limits(json!({"Memory": 32 * MB, "PidsLimit": 50, "NanoCpus": 1_500_000_000i64, "CpuShares": 1})).unwrap();
        let got: Vec<(Option<Ctrl>, &str, String)> =
            writes(&l, Version::V1, true, false).into_iter().map(|w| (w.ctrl, w.file, w.value)).collect();
        assert_eq!(
            got,
            vec![
                (Some(Ctrl::Memory), "memory.limit_in_bytes", (32 * MB).to_string()),
                // --memory-swap unset: twice the memory, as Docker.
                (Some(Ctrl::Memory), "memory.memsw.limit_in_bytes", (64 * MB).to_string()),
                (Some(Ctrl::Pids), "pids.max", "50".into()),
                (Some(Ctrl::Cpu), "cpu.shares", "2".into()),
                (Some(Ctrl::Cpu), "cpu.cfs_period_us", "100000".into()),
                (Some(Ctrl::Cpu), "cpu.cfs_quota_us", "150000".into()),
            ]
        );
        // Without swap accounting, no memsw file is written.
        assert!(writes(&l, Version::V1, false, false).iter().all(|w| !w.file.contains("memsw")));
        // A new cgroup starts unlimited; an update that lifts limits resets them.
        assert!(writes(&Limits::default(), Version::V1, true, false).is_empty());
        let reset: Vec<(&str, String)> =
            writes(&Limits::default(), Version::V1, true, true).into_iter().map(|w| (w.file, w.value)).collect();
        assert_eq!(reset, vec![("pids.max", "max".to_string()), ("cpu.cfs_quota_us", "-1".to_string())]);
    }

    #[test]
    fn v2_writes_convert_shares_and_swap() {
        let l =
            limits(json!({"Memory": 32 * MB, "MemorySwap": 48 * MB, "CpuShares": 1024, "CpuQuota": 50_000, "CpuPeriod": 100_000})).unwrap();
        let got: Vec<(&str, String)> = writes(&l, Version::V2, true, false).into_iter().map(|w| (w.file, w.value)).collect();
        assert_eq!(
            got,
            vec![
                ("memory.max", (32 * MB).to_string()),
                ("memory.swap.max", (16 * MB).to_string()),
                ("cpu.weight", "39".to_string()),
                ("cpu.max", "50000 100000".to_string()),
            ]
        );
        let unlimited_swap = limits(json!({"Memory": 32 * MB, "MemorySwap": -1})).unwrap();
        assert!(writes(&unlimited_swap, Version::V2, true, false).contains(&w2("memory.swap.max", "max")));
    }

    #[test]
    fn an_update_lays_its_set_fields_over_the_host_config() {
        let hc = json!({"NetworkMode": "bridge", "Memory": 32 * MB, "PidsLimit": 50});
        let out = merge_update(&hc, &json!({"Memory": 64 * MB, "PidsLimit": -1, "CpuShares": 0}), 2).unwrap();
        assert_eq!(out["Memory"], 64 * MB);
        assert_eq!(out["PidsLimit"], 0);
        assert_eq!(out["NetworkMode"], "bridge");
        // A swap limit below the existing memory limit is refused.
        assert!(merge_update(&hc, &json!({"MemorySwap": 16 * MB}), 2).unwrap_err().contains("memoryswap"));
        let with_swap = json!({"Memory": 32 * MB, "MemorySwap": 64 * MB});
        assert_eq!(
            merge_update(&with_swap, &json!({"Memory": 128 * MB}), 2).unwrap_err(),
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        );
        // --cpus replaces an earlier quota/period.
        let q = merge_update(&json!({"CpuQuota": 50_000, "CpuPeriod": 100_000}), &json!({"NanoCpus": 1_000_000_000}), 2).unwrap();
        assert_eq!((q["CpuQuota"].as_i64(), q["CpuPeriod"].as_i64()), (Some(0), Some(0)));
    }

    #[test]
    fn kernel_reports_parse_as_docker_reports_them() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
                   eth0:    1296      16    0    2    0     0          0         0      726       9    1    0    0     0       0          0\n";
        let n = parse_net_dev(dev);
        assert_eq!(n.keys().collect::<Vec<_>>(), vec!["eth0"]);
        assert_eq!(
            n["eth0"],
            NetCounters { rx_bytes: 1296, rx_packets: 16, rx_dropped: 2, tx_bytes: 726, tx_packets: 9, tx_errors: 1, ..Default::default() }
        );
        assert_eq!(parse_system_cpu("cpu  10 0 5 100 1 0 0 0 0 0\ncpu0 5 0 2 50 0 0 0 0 0 0\n", 100), 116 * 10_000_000);
        let b = parse_blkio("8:0 Read 4096\n8:0 Write 512\nTotal 4608\n");
        assert_eq!(
            b,
            vec![
                json!({"major": 8, "minor": 0, "op": "read", "value": 4096}),
                json!({"major": 8, "minor": 0, "op": "write", "value": 512})
            ]
        );
        assert_eq!(parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2\n").len(), 2);
        assert_eq!(parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")["oom_kill"], 3);
        let pc = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\ncpuacct\t1\t1\t1\nmemory\t4\t3\t1\nnet_cls\t0\t1\t1\n";
        assert_eq!(comounted(pc, "cpuacct"), vec!["cpu", "cpuacct"]);
        assert_eq!(comounted(pc, "memory"), vec!["memory"]);
        assert!(comounted(pc, "pids").is_empty());
    }
}
