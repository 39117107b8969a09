//! What berthd hands its helper process to start a container or an exec.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Docker's default capability set for containers.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths Docker hides from containers (a /dev/null or empty read-only tmpfs
/// mounted over them).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A bind mount into the container (volumes, bind mounts, /etc files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
}

/// How the container's network namespace is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetNs {
    /// A new, empty namespace (only `lo`).
    New,
    /// Join an existing one (prepared by the network module).
    Join(PathBuf),
    /// Share the daemon's (`--network host`).
    Host,
}

/// Everything `__berth-init` needs to turn itself into a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitSpec {
    /// The overlay's merged dir, already mounted by berthd.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub hostname: String,
    /// `USER` as Docker takes it: name or uid, optionally `:group`.
    pub user: String,
    pub tty: bool,
    pub net: NetNs,
    pub binds: Vec<Bind>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// What it is confined by (its execs are too).
    #[serde(flatten)]
    pub confined: Confined,
    /// `--privileged`: /sys read-write (masked/read-only paths come empty).
    #[serde(default)]
    pub privileged: bool,
    /// `--read-only`: the root remounted read-only once everything is mounted.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Device nodes made in the container (`--device`, `--privileged`).
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// `--tmpfs` mounts.
    #[serde(default)]
    pub tmpfs: Vec<Tmpfs>,
    /// /dev/shm's size in bytes (`--shm-size`); None for Docker's 64 MiB.
    #[serde(default)]
    pub shm_size: Option<u64>,
    #[serde(default)]
    pub oom_score_adj: i32,
    /// The container's own cgroups, shown read-only at /sys/fs/cgroup as
    /// Docker shows them: (controller name, host dir) per v1 hierarchy, or
    /// one with an empty name for the v2 cgroup itself.
    #[serde(default)]
    pub cgroup_views: Vec<(String, PathBuf)>,
}

/// What a container's processes — its init and every exec — are confined
/// by, beyond their namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confined {
    /// The capability set, names as `CAP_CHOWN`.
    pub capabilities: Vec<String>,
    /// The cgroup files (`cgroup.procs`) the helper joins before anything
    /// else: its devices and resource cgroups.
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// `--ulimit`s, set before the exec.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// The seccomp programs installed before the exec (`runtime::seccomp`).
    #[serde(default)]
    pub seccomp: Vec<Vec<super::seccomp::Insn>>,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `--group-add`.
    #[serde(default)]
    pub group_add: Vec<String>,
}

/// One `--ulimit`: a resource by Docker's name (`nofile`, `nproc`, …).
/// `u64::MAX` is unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A device node to make inside the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Absolute path inside the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (the host node's).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A `--tmpfs` mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    pub destination: String,
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    /// tmpfs options: `size=…,mode=…`.
    pub data: String,
}

/// Everything `__berth-exec` needs to run a process inside a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The container's PID 1 (host pid): its namespaces are joined.
    pub target_pid: i32,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub tty: bool,
    /// The container's confinement, as its init has it.
    #[serde(flatten)]
    pub confined: Confined,
}

/// Finds `prog` on the container's PATH (from its env), as a shell would,
/// looking under `root`. Returns the path inside the container.
pub fn lookup_path(prog: &str, env: &[String], root: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if prog.contains('/') {
        return Some(prog.to_string());
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{}/{prog}", dir.trim_end_matches('/'));
        let on_host = root.join(candidate.trim_start_matches('/'));
        if let Ok(m) = std::fs::metadata(&on_host) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Some(candidate);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_searches_the_containers_path_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "usr/bin"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::write(root.path().join("usr/bin/tool"), "").unwrap();
        std::fs::set_permissions(root.path().join("usr/bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.path().join("bin/notexec"), "").unwrap();
        let env = vec!["PATH=/bin:/usr/bin".to_string()];
        assert_eq!(lookup_path("tool", &env, root.path()).as_deref(), Some("/usr/bin/tool"));
        assert_eq!(lookup_path("notexec", &env, root.path()), None);
        assert_eq!(lookup_path("/abs/x", &env, root.path()).as_deref(), Some("/abs/x"));
    }
}
