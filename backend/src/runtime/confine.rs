//! What a container's `HostConfig` asks of its confinement, read once at
//! create (where a mistake is the client's 400) and again at start (where it
//! becomes the helper's spec): capabilities (`--cap-add/--cap-drop`,
//! `--privileged`), `--read-only`, `--ulimit`, `--device`,
//! `--device-cgroup-rule`, `--tmpfs`, `--shm-size`, `--oom-score-adj`.
//!
//! Every other field that changes a container's behaviour and that berth
//! does not honour is refused by [`refuse_unsupported`], naming the flag:
//! never accepted and ignored. The docker CLI sends every field, unset ones
//! as zero, empty or null, so those pass.

use std::path::Path;

use serde_json::Value;

use super::cgroups::{valid_access, DeviceRule};
use super::resources::Limits;
use super::seccomp::Profile;

/// The CPUs this daemon may use (what `--cpus` is checked against).
pub fn host_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
use super::spec::{DeviceNode, Rlimit, Tmpfs, DEFAULT_CAPS};

/// A `--device` as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRequest {
    pub path_on_host: String,
    pub path_in_container: String,
    pub permissions: String,
}

/// The confinement a container's HostConfig asks for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Confinement {
    pub privileged: bool,
    /// The capability set, names as `CAP_CHOWN`.
    pub capabilities: Vec<String>,
    pub readonly_rootfs: bool,
    pub rlimits: Vec<Rlimit>,
    pub devices: Vec<DeviceRequest>,
    /// `--device-cgroup-rule`s.
    pub device_rules: Vec<DeviceRule>,
    pub tmpfs: Vec<Tmpfs>,
    /// `--shm-size` in bytes; None for Docker's 64 MiB.
    pub shm_size: Option<u64>,
    pub oom_score_adj: i32,
    /// API-only `MaskedPaths` / `ReadonlyPaths`: replace the defaults when set.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// `--memory`, `--pids-limit`, `--cpus`, … (checked as Docker checks them).
    pub limits: Limits,
    /// `--security-opt seccomp=…` (and `--privileged`, which is unconfined).
    pub seccomp: Profile,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--group-add`: supplementary groups (names or gids), looked up in
    /// the container's /etc/group when it starts.
    pub group_add: Vec<String>,
}

fn type_error(field: &str, want: &str, v: &Value) -> String {
    let got = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {got} into Go struct field HostConfig.{field} of type {want}")
}

fn bool_field(hc: &Value, field: &str) -> Result<bool, String> {
    match &hc[field] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        v => Err(type_error(field, "bool", v)),
    }
}

fn int_field(hc: &Value, field: &str) -> Result<i64, String> {
    match &hc[field] {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_i64().ok_or_else(|| type_error(field, "int64", &hc[field])),
        v => Err(type_error(field, "int64", v)),
    }
}

fn strings_field(hc: &Value, field: &str) -> Result<Vec<String>, String> {
    match &hc[field] {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a.iter().map(|v| v.as_str().map(String::from).ok_or_else(|| type_error(field, "[]string", v))).collect(),
        v => Err(type_error(field, "[]string", v)),
    }
}

fn opt_strings_field(hc: &Value, field: &str) -> Result<Option<Vec<String>>, String> {
    if hc[field].is_null() {
        Ok(None)
    } else {
        strings_field(hc, field).map(Some)
    }
}

/// Every capability the kernel interface knows, as `CAP_…` names in order.
pub fn all_capabilities() -> Vec<String> {
    let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.into_iter().map(|c| c.to_string()).collect()
}

/// Docker's name handling: case-insensitive, `CAP_` optional, `ALL` kept.
fn normalize_capabilities(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|n| {
            let up = n.to_uppercase();
            if up == "ALL" {
                return Ok(up);
            }
            let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
            match full.parse::<caps::Capability>() {
                Ok(_) => Ok(full),
                Err(_) => Err(format!("unknown capability: \"{full}\"")),
            }
        })
        .collect()
}

/// The container's capability set, as moby's `TweakCapabilities` computes
/// it: privileged gets all; `--cap-add ALL` is all but the dropped;
/// `--cap-drop ALL` is only the added; otherwise the default set minus the
/// dropped plus the added.
pub fn tweak_capabilities(adds: &[String], drops: &[String], privileged: bool) -> Result<Vec<String>, String> {
    let adds = normalize_capabilities(adds)?;
    let drops = normalize_capabilities(drops)?;
    if privileged {
        return Ok(all_capabilities());
    }
    let has_all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut out: Vec<String> = if has_all(&adds) {
        all_capabilities().into_iter().filter(|c| !drops.contains(c)).collect()
    } else if has_all(&drops) {
        adds
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !drops.contains(c)).collect();
        v.extend(adds);
        v
    };
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|c| seen.insert(c.clone()));
    Ok(out)
}

/// `--ulimit` names as Docker takes them.
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn rlimits(hc: &Value) -> Result<Vec<Rlimit>, String> {
    let list = match &hc["Ulimits"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        v => return Err(type_error("Ulimits", "[]*units.Ulimit", v)),
    };
    let mut out: Vec<Rlimit> = Vec::new();
    for u in list {
        let name = u["Name"].as_str().ok_or_else(|| type_error("Ulimits.Name", "string", &u["Name"]))?;
        if !ULIMIT_NAMES.contains(&name) {
            return Err(format!("invalid ulimit type: {name}"));
        }
        let limit = |k: &str| -> Result<u64, String> {
            match &u[k] {
                Value::Number(n) => Ok(n.as_i64().map(|v| if v < 0 { u64::MAX } else { v as u64 }).unwrap_or(u64::MAX)),
                v => Err(type_error(&format!("Ulimits.{k}"), "int64", v)),
            }
        };
        let (soft, hard) = (limit("Soft")?, limit("Hard")?);
        if soft > hard {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"));
        }
        out.retain(|r| r.name != name);
        out.push(Rlimit { name: name.to_string(), soft, hard });
    }
    Ok(out)
}

fn devices(hc: &Value) -> Result<Vec<DeviceRequest>, String> {
    let list = match &hc["Devices"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        v => return Err(type_error("Devices", "[]container.DeviceMapping", v)),
    };
    let mut out = Vec::new();
    for d in list {
        let s = |k: &str| -> Result<String, String> {
            match &d[k] {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                v => Err(type_error(&format!("Devices.{k}"), "string", v)),
            }
        };
        let host = s("PathOnHost")?;
        let mut inside = s("PathInContainer")?;
        let mut perms = s("CgroupPermissions")?;
        if host.is_empty() {
            return Err("invalid device mapping: no PathOnHost".into());
        }
        if inside.is_empty() {
            inside = host.clone();
        }
        if perms.is_empty() {
            perms = "rwm".into();
        }
        if !valid_access(&perms) {
            return Err(format!("invalid device mode: {perms}"));
        }
        if !inside.starts_with('/') {
            return Err(format!("invalid device mapping: {inside} is not an absolute path"));
        }
        out.push(DeviceRequest { path_on_host: host, path_in_container: inside, permissions: perms });
    }
    Ok(out)
}

/// One `--tmpfs` entry: Docker's defaults (`noexec,nosuid,nodev`) then the
/// client's options, the later winning.
pub fn parse_tmpfs(destination: &str, options: &str) -> Result<Tmpfs, String> {
    if !destination.starts_with('/') || destination == "/" || destination.split('/').any(|c| c == "..") {
        return Err(format!("invalid mount path for tmpfs: {destination}"));
    }
    let mut t =
        Tmpfs { destination: destination.to_string(), readonly: false, nosuid: true, nodev: true, noexec: true, data: String::new() };
    let mut data: Vec<String> = Vec::new();
    for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "ro" => t.readonly = true,
            "rw" => t.readonly = false,
            "exec" => t.noexec = false,
            "noexec" => t.noexec = true,
            "suid" => t.nosuid = false,
            "nosuid" => t.nosuid = true,
            "dev" => t.nodev = false,
            "nodev" => t.nodev = true,
            _ => {
                let key = o.split_once('=').map(|(k, _)| k).unwrap_or(o);
                let valid_value = o
                    .split_once('=')
                    .is_some_and(|(_, v)| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || ":.%".contains(c)));
                if !["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"].contains(&key) || !valid_value {
                    return Err(format!("invalid tmpfs option \"{o}\" for {destination}"));
                }
                data.retain(|d| !d.starts_with(&format!("{key}=")));
                data.push(o.to_string());
            }
        }
    }
    t.data = data.join(",");
    Ok(t)
}

fn tmpfs(hc: &Value) -> Result<Vec<Tmpfs>, String> {
    match &hc["Tmpfs"] {
        Value::Null => Ok(Vec::new()),
        Value::Object(m) => m
            .iter()
            .map(|(dest, opts)| match opts {
                Value::String(o) => parse_tmpfs(dest, o),
                Value::Null => parse_tmpfs(dest, ""),
                v => Err(type_error("Tmpfs", "map[string]string", v)),
            })
            .collect(),
        v => Err(type_error("Tmpfs", "map[string]string", v)),
    }
}

/// Is a JSON value what the docker CLI sends for an unset flag?
fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// HostConfig fields berth does not honour, with the flag each comes from.
/// A field passes when unset (zero, empty, null, false) or when its value
/// is one berth's behaviour already matches (listed beside it).
const UNSUPPORTED: &[(&str, &str, &[&str])] = &[
    ("CgroupParent", "--cgroup-parent", &[]),
    ("Sysctls", "--sysctl", &[]),
    // Each container has its own IPC namespace that no other joins.
    ("IpcMode", "--ipc", &["private", "shareable"]),
    ("PidMode", "--pid", &[]),
    ("UTSMode", "--uts", &[]),
    ("UsernsMode", "--userns", &[]),
    // berth never makes a cgroup namespace: the host's, Docker's v1 default.
    ("CgroupnsMode", "--cgroupns", &["host"]),
    ("VolumesFrom", "--volumes-from", &[]),
    ("VolumeDriver", "--volume-driver", &["local"]),
    ("Runtime", "--runtime", &["runc", "berth"]),
    ("Isolation", "--isolation", &["default"]),
    ("StorageOpt", "--storage-opt", &[]),
    ("Init", "--init", &[]),
    ("Capabilities", "HostConfig.Capabilities", &[]),
    ("Cgroup", "HostConfig.Cgroup", &[]),
    ("BlkioWeight", "--blkio-weight", &[]),
    ("BlkioWeightDevice", "--blkio-weight-device", &[]),
    ("BlkioDeviceReadBps", "--device-read-bps", &[]),
    ("BlkioDeviceWriteBps", "--device-write-bps", &[]),
    ("BlkioDeviceReadIOps", "--device-read-iops", &[]),
    ("BlkioDeviceWriteIOps", "--device-write-iops", &[]),
    ("CpuRealtimePeriod", "--cpu-rt-period", &[]),
    ("CpuRealtimeRuntime", "--cpu-rt-runtime", &[]),
    ("CpusetCpus", "--cpuset-cpus", &[]),
    ("CpusetMems", "--cpuset-mems", &[]),
    ("DeviceRequests", "--gpus", &[]),
    ("KernelMemory", "--kernel-memory", &[]),
    ("KernelMemoryTCP", "HostConfig.KernelMemoryTCP", &[]),
    ("CpuCount", "--cpu-count", &[]),
    ("CpuPercent", "--cpu-percent", &[]),
    ("IOMaximumIOps", "--io-maxiops", &[]),
    ("IOMaximumBandwidth", "--io-maxbandwidth", &[]),
];

/// `--security-opt` values whose effect berth already has: no AppArmor, no
/// SELinux labels. (`seccomp=` and `no-new-privileges` are honoured.)
const SECURITY_OPTS_IN_EFFECT: &[&str] = &["apparmor=unconfined", "apparmor:unconfined", "label=disable", "label:disable"];

/// `no-new-privileges`, `no-new-privileges=true|false` (or with `:`):
/// None when the option is another one.
fn no_new_privileges(opt: &str) -> Option<Result<bool, String>> {
    let rest = opt.strip_prefix("no-new-privileges")?;
    Some(match rest {
        "" | "=true" | ":true" => Ok(true),
        "=false" | ":false" => Ok(false),
        _ => Err(format!("invalid --security-opt 2: {opt:?}")),
    })
}

fn refuse(flag: &str) -> Result<(), String> {
    Err(format!("berth does not support {flag} yet"))
}

/// Refuses, with the flag's name, any HostConfig field that would change
/// the container's behaviour and that berth does not honour.
pub fn refuse_unsupported(hc: &Value) -> Result<(), String> {
    for (field, flag, same) in UNSUPPORTED {
        let v = &hc[*field];
        if unset(v) || v.as_str().is_some_and(|s| same.contains(&s)) {
            continue;
        }
        return refuse(flag);
    }
    // -1 is the CLI's "unset" for swappiness. (Memory, swap, pids and CPU
    // limits are honoured: see `super::resources`.)
    for (field, flag) in [("MemorySwappiness", "--memory-swappiness")] {
        let v = &hc[field];
        if !(unset(v) || v.as_i64() == Some(-1)) {
            return refuse(flag);
        }
    }
    // (Restart policies are honoured: the engine checks them, engine::restart.)
    let opts = strings_field(hc, "SecurityOpt")?;
    super::seccomp::profile(&opts, false)?;
    for opt in opts {
        if let Some(nnp) = no_new_privileges(&opt) {
            nnp?;
            continue;
        }
        if opt.starts_with("seccomp=") || opt.starts_with("seccomp:") {
            continue;
        }
        if !SECURITY_OPTS_IN_EFFECT.contains(&opt.as_str()) {
            return Err(format!("berth does not support --security-opt {opt} yet"));
        }
    }
    Ok(())
}

impl Confinement {
    /// Reads (and checks) the confinement fields of a HostConfig, after
    /// refusing what berth does not honour.
    pub fn from_host_config(hc: &Value) -> Result<Confinement, String> {
        refuse_unsupported(hc)?;
        let privileged = bool_field(hc, "Privileged")?;
        let capabilities = tweak_capabilities(&strings_field(hc, "CapAdd")?, &strings_field(hc, "CapDrop")?, privileged)?;
        let device_rules =
            strings_field(hc, "DeviceCgroupRules")?.iter().map(|r| r.parse()).collect::<Result<Vec<DeviceRule>, String>>()?;
        let shm = int_field(hc, "ShmSize")?;
        if shm < 0 {
            return Err("SHM size can not be less than 0".into());
        }
        let oom = int_field(hc, "OomScoreAdj")?;
        if !(-1000..=1000).contains(&oom) {
            return Err(format!("Invalid value {oom}, range for oom score adj is [-1000, 1000]"));
        }
        Ok(Confinement {
            privileged,
            capabilities,
            readonly_rootfs: bool_field(hc, "ReadonlyRootfs")?,
            rlimits: rlimits(hc)?,
            devices: devices(hc)?,
            device_rules,
            tmpfs: tmpfs(hc)?,
            shm_size: (shm > 0).then_some(shm as u64),
            oom_score_adj: oom as i32,
            masked_paths: opt_strings_field(hc, "MaskedPaths")?,
            readonly_paths: opt_strings_field(hc, "ReadonlyPaths")?,
            limits: Limits::from_host_config(hc, host_cpus())?,
            seccomp: super::seccomp::profile(&strings_field(hc, "SecurityOpt")?, privileged)?,
            no_new_privileges: strings_field(hc, "SecurityOpt")?
                .iter()
                .filter_map(|o| no_new_privileges(o))
                .last()
                .transpose()?
                .unwrap_or(false),
            group_add: strings_field(hc, "GroupAdd")?,
        })
    }

    /// The device nodes to make in the container and the cgroup rules that
    /// allow them: each `--device`, and with `--privileged` every device
    /// of the host's /dev.
    pub fn device_nodes(&self) -> Result<(Vec<DeviceNode>, Vec<DeviceRule>), String> {
        let mut nodes = Vec::new();
        let mut rules = self.device_rules.clone();
        for d in &self.devices {
            let node = device_node(Path::new(&d.path_on_host), &d.path_in_container)
                .map_err(|e| format!("error gathering device information while adding custom device \"{}\": {e}", d.path_on_host))?;
            rules.push(DeviceRule::new(node.kind, Some(node.major), Some(node.minor), &d.permissions));
            nodes.push(node);
        }
        if self.privileged {
            for n in host_devices(Path::new("/dev")) {
                if !nodes.iter().any(|x| x.path == n.path) {
                    nodes.push(n);
                }
            }
        }
        Ok((nodes, rules))
    }
}

/// A device node of the host, to be made at `inside` in the container.
pub fn device_node(host: &Path, inside: &str) -> Result<DeviceNode, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(host).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        _ => e.to_string(),
    })?;
    let kind = if m.file_type().is_char_device() {
        'c'
    } else if m.file_type().is_block_device() {
        'b'
    } else {
        return Err("not a device node".into());
    };
    let rdev = m.rdev();
    Ok(DeviceNode {
        path: inside.to_string(),
        kind,
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    })
}

/// Every device node under the host's /dev, as `--privileged` gets them
/// (the container's own /dev/pts, shm, mqueue and console are made anew).
pub fn host_devices(dev: &Path) -> Vec<DeviceNode> {
    fn walk(dir: &Path, rel: &str, depth: u32, out: &mut Vec<DeviceNode>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            let inside = format!("{rel}/{name}");
            if ft.is_dir() {
                if depth < 3 && !["pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"].contains(&name.as_str()) {
                    walk(&e.path(), &inside, depth + 1, out);
                }
            } else if !ft.is_symlink() && !["/dev/console", "/dev/ptmx", "/dev/tty"].contains(&inside.as_str()) {
                if let Ok(n) = device_node(&e.path(), &inside) {
                    out.push(n);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dev, "/dev", 0, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn capabilities_are_tweaked_as_dockers_are() {
        let default = tweak_capabilities(&[], &[], false).unwrap();
        assert_eq!(default, s(DEFAULT_CAPS));
        assert!(tweak_capabilities(&[], &s(&["ALL"]), false).unwrap().is_empty());
        assert_eq!(tweak_capabilities(&s(&["chown"]), &s(&["all"]), false).unwrap(), s(&["CAP_CHOWN"]));
        let no_chown = tweak_capabilities(&[], &s(&["CAP_CHOWN"]), false).unwrap();
        assert!(!no_chown.contains(&"CAP_CHOWN".to_string()) && no_chown.len() == DEFAULT_CAPS.len() - 1);
        let more = tweak_capabilities(&s(&["net_admin", "CAP_SYS_ADMIN", "chown"]), &[], false).unwrap();
        assert_eq!(more.len(), DEFAULT_CAPS.len() + 2, "no duplicates: {more:?}");
        let all = tweak_capabilities(&s(&["ALL"]), &s(&["mknod"]), false).unwrap();
        assert_eq!(all.len(), all_capabilities().len() - 1);
        assert_eq!(tweak_capabilities(&[], &s(&["ALL"]), true).unwrap(), all_capabilities());
        assert_eq!(tweak_capabilities(&s(&["bogus"]), &[], false).unwrap_err(), "unknown capability: \"CAP_BOGUS\"");
    }

    #[test]
    fn what_the_docker_cli_sends_for_a_plain_run_passes() {
        // docker run alpine (CLI 20.10): every field present, unset ones zero.
        let hc = json!({"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},
            "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"CapAdd":null,
            "CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",
            "Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,
            "SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"ConsoleSize":[0,0],"Isolation":"","CpuShares":0,"Memory":0,
            "NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,
            "BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,
            "CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"KernelMemory":0,"KernelMemoryTCP":0,
            "MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":null,"Ulimits":null,"CpuCount":0,
            "CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null});
        let c = Confinement::from_host_config(&hc).unwrap();
        assert_eq!(c.capabilities, s(DEFAULT_CAPS));
        assert!(!c.privileged && !c.readonly_rootfs && c.rlimits.is_empty() && c.devices.is_empty() && c.tmpfs.is_empty());
        assert_eq!(Confinement::from_host_config(&json!({})).unwrap(), c);
    }

    #[test]
    fn flags_berth_does_not_honour_are_refused_by_name() {
        for (hc, flag) in [
            (json!({"Sysctls": {"net.ipv4.ip_forward": "1"}}), "--sysctl"),
            (json!({"CgroupParent": "x"}), "--cgroup-parent"),
            (json!({"PidMode": "host"}), "--pid"),
            (json!({"MemorySwappiness": 10}), "--memory-swappiness"),
            (json!({"SecurityOpt": ["apparmor=docker-default"]}), "--security-opt apparmor=docker-default"),
            (json!({"Init": true}), "--init"),
        ] {
            let e = Confinement::from_host_config(&hc).unwrap_err();
            assert_eq!(e, format!("berth does not support {flag} yet"), "{hc}");
        }
        let ok = json!({"SecurityOpt": ["seccomp=unconfined", "no-new-privileges"], "IpcMode": "private", "CgroupnsMode": "host", "MemorySwap": -1});
        Confinement::from_host_config(&ok).unwrap();
        // Resource limits are honoured now, and checked as Docker checks them.
        let limited = Confinement::from_host_config(&json!({"Memory": 67108864, "PidsLimit": 10, "NanoCpus": 500000000})).unwrap();
        assert_eq!((limited.limits.memory, limited.limits.pids_limit), (67108864, 10));
        assert_eq!(Confinement::from_host_config(&json!({"Memory": 1024})).unwrap_err(), "Minimum memory limit allowed is 6MB");
    }

    #[test]
    fn ulimits_devices_and_tmpfs_are_read_and_checked() {
        let hc = json!({
            "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}, {"Name": "core", "Soft": -1, "Hard": -1}],
            "Devices": [{"PathOnHost": "/dev/loop0", "PathInContainer": "", "CgroupPermissions": "r"}],
            "DeviceCgroupRules": ["c 10:232 rwm"],
            "Tmpfs": {"/scratch": "size=1m,exec"},
            "ReadonlyRootfs": true, "ShmSize": 1048576, "OomScoreAdj": 500,
        });
        let c = Confinement::from_host_config(&hc).unwrap();
        assert_eq!(
            c.rlimits,
            vec![Rlimit { name: "nofile".into(), soft: 100, hard: 200 }, Rlimit { name: "core".into(), soft: u64::MAX, hard: u64::MAX }]
        );
        assert_eq!(
            c.devices,
            vec![DeviceRequest { path_on_host: "/dev/loop0".into(), path_in_container: "/dev/loop0".into(), permissions: "r".into() }]
        );
        assert_eq!(c.device_rules[0].to_string(), "c 10:232 rwm");
        assert_eq!(
            c.tmpfs,
            vec![Tmpfs {
                destination: "/scratch".into(),
                readonly: false,
                nosuid: true,
                nodev: true,
                noexec: false,
                data: "size=1m".into()
            }]
        );
        assert!(c.readonly_rootfs);
        assert_eq!((c.shm_size, c.oom_score_adj), (Some(1048576), 500));

        let bad = |hc: Value| Confinement::from_host_config(&hc).unwrap_err();
        assert!(bad(json!({"Ulimits": [{"Name": "nofile", "Soft": 300, "Hard": 200}]}))
            .contains("soft limit must be less than or equal to hard limit"));
        assert_eq!(bad(json!({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})), "invalid ulimit type: bogus");
        assert_eq!(bad(json!({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]})), "invalid device mode: rwx");
        assert!(bad(json!({"Tmpfs": {"/x": "size=1m;rm -rf"}})).contains("invalid tmpfs option"));
        assert!(bad(json!({"Tmpfs": {"relative": ""}})).contains("invalid mount path"));
        assert!(bad(json!({"CapAdd": "NET_ADMIN"})).contains("cannot unmarshal string"));
        assert!(bad(json!({"Privileged": "yes"})).contains("cannot unmarshal string"));
        assert!(bad(json!({"DeviceCgroupRules": ["c 1 r"]})).contains("invalid device cgroup rule"));
        assert!(bad(json!({"OomScoreAdj": 5000})).contains("range for oom score adj"));
    }

    #[test]
    fn device_nodes_come_from_the_hosts_node_and_missing_ones_are_named() {
        let c = Confinement {
            devices: vec![DeviceRequest {
                path_on_host: "/dev/null".into(),
                path_in_container: "/dev/mynull".into(),
                permissions: "rw".into(),
            }],
            ..Default::default()
        };
        let (nodes, rules) = c.device_nodes().unwrap();
        assert_eq!((nodes[0].path.as_str(), nodes[0].kind, nodes[0].major, nodes[0].minor), ("/dev/mynull", 'c', 1, 3));
        assert_eq!(rules[0].to_string(), "c 1:3 rw");
        let c = Confinement {
            devices: vec![DeviceRequest {
                path_on_host: "/dev/nonexistent".into(),
                path_in_container: "/dev/x".into(),
                permissions: "rwm".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            c.device_nodes().unwrap_err(),
            "error gathering device information while adding custom device \"/dev/nonexistent\": no such file or directory"
        );
        let host = host_devices(Path::new("/dev"));
        assert!(host.iter().any(|n| n.path == "/dev/null" && n.kind == 'c'));
        assert!(!host.iter().any(|n| n.path.starts_with("/dev/pts/") || n.path == "/dev/console"));
    }
}
