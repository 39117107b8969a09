//! The device allowlist: a cgroup per container in the cgroup v1 `devices`
//! controller, holding Docker's default rules (and what `--device`,
//! `--device-cgroup-rule` and `--privileged` add). The container's helper
//! joins it before it unshares anything, so every process of the container,
//! and every `docker exec`, is inside.
//!
//! Layout: `<devices hierarchy>/<parent>/<container id>`, where the parent is
//! this daemon's own (`berth` for the default exec-root, else derived from
//! the exec-root, so two berthds on one machine never share or remove each
//! other's cgroups). The same directory is where issue 14's resource limits
//! would go: the `memory`, `pids` and `cpu` controllers get a
//! `<parent>/<id>` beside it, joined the same way.
//!
//! On a cgroup v2-only host the equivalent is a BPF device program (not done
//! yet): there berth has no device controller, reports it, and drops
//! CAP_MKNOD instead, so no container can make a device node at all.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One line of `devices.allow`: `c 1:3 rwm`, `b *:* m`, `a`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRule {
    /// `a` (all), `c` (char) or `b` (block).
    pub kind: char,
    /// None is `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// A non-empty subset of `rwm`.
    pub access: String,
}

impl DeviceRule {
    pub fn new(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> Self {
        DeviceRule { kind, major, minor, access: access.to_string() }
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
        write!(f, "{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// Checks an access string: a non-empty subset of `rwm`, each letter once.
pub fn valid_access(a: &str) -> bool {
    !a.is_empty() && a.len() <= 3 && a.chars().all(|c| "rwm".contains(c)) && {
        let mut seen = a.chars().collect::<Vec<_>>();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == a.len()
    }
}

impl FromStr for DeviceRule {
    type Err = String;

    /// Parses Docker's `--device-cgroup-rule` syntax: `c 10:232 rwm`,
    /// `b *:* m`, `a *:* rwm`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid device cgroup rule format: '{s}'");
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [kind, nums, access] = parts[..] else { return Err(bad()) };
        let kind = match kind {
            "a" | "b" | "c" => kind.chars().next().ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        let (ma, mi) = nums.split_once(':').ok_or_else(bad)?;
        let num = |v: &str| -> Result<Option<u32>, String> {
            if v == "*" {
                Ok(None)
            } else {
                v.parse().map(Some).map_err(|_| bad())
            }
        };
        if !valid_access(access) {
            return Err(bad());
        }
        Ok(DeviceRule { kind, major: num(ma)?, minor: num(mi)?, access: access.to_string() })
    }
}

/// Docker's default allowlist (moby's `DefaultLinuxSpec` device rules):
/// mknod of any node, and read/write/mknod of the harmless ones only.
pub fn default_rules() -> Vec<DeviceRule> {
    let c = |ma: u32, mi: Option<u32>| DeviceRule::new('c', Some(ma), mi, "rwm");
    vec![
        DeviceRule::new('c', None, None, "m"),
        DeviceRule::new('b', None, None, "m"),
        c(1, Some(3)),   // null
        c(1, Some(5)),   // zero
        c(1, Some(7)),   // full
        c(1, Some(8)),   // random
        c(1, Some(9)),   // urandom
        c(5, Some(0)),   // tty
        c(5, Some(1)),   // console
        c(5, Some(2)),   // ptmx
        c(136, None),    // pts
        c(10, Some(200)), // tun
    ]
}

/// What to write into a new container cgroup, in order: `(file, line)`.
/// Privileged containers keep the parent's `a *:* rwm`.
pub fn rule_writes(rules: &[DeviceRule], allow_all: bool) -> Vec<(&'static str, String)> {
    if allow_all {
        return vec![("devices.allow", "a".into())];
    }
    let mut w = vec![("devices.deny", "a".to_string())];
    w.extend(rules.iter().map(|r| ("devices.allow", r.to_string())));
    w
}

/// This daemon's parent cgroup name.
pub fn parent_name(exec_root: &Path) -> String {
    if exec_root == Path::new("/run/berth") {
        return "berth".into();
    }
    let s: String = exec_root
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .collect();
    // A cgroup name is one path component (≤ 255 bytes): keep the tail,
    // which holds what differs between daemons.
    let tail: String = s.chars().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect();
    format!("berth-{tail}")
}

/// Finds the mount point of the v1 `devices` hierarchy in a mountinfo text.
/// Returns every candidate; the caller keeps the first that is reachable
/// (a mount may be covered by a later one, as a fresh /sys covers it).
pub fn devices_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let (fstype, _src, opts) = (post.next()?, post.next()?, post.next()?);
            let mp = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup" && opts.split(',').any(|o| o == "devices")).then(|| PathBuf::from(mp.replace("\\040", " ")))
        })
        .collect()
}

/// The devices hierarchy of this daemon, if the host has one.
#[derive(Debug)]
pub struct DeviceCgroups {
    /// The hierarchy's root (where `devices.list` is).
    root: Option<PathBuf>,
    /// Mounted by us (under the exec-root); unmounted at close.
    mounted: Option<PathBuf>,
    parent: String,
}

impl DeviceCgroups {
    /// Finds the devices hierarchy, or mounts it under `exec_root` when it
    /// is not reachable here (berthd in a namespace with a fresh /sys).
    pub fn open(exec_root: &Path) -> Self {
        let parent = parent_name(exec_root);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let found = devices_mounts(&mountinfo).into_iter().find(|m| m.join("devices.list").is_file());
        if let Some(root) = found {
            return DeviceCgroups { root: Some(root), mounted: None, parent };
        }
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            tracing::warn!("cgroup v2 only: no devices controller; containers get no CAP_MKNOD instead (a BPF device program is not implemented yet)");
            return DeviceCgroups { root: None, mounted: None, parent };
        }
        let dir = exec_root.join("cgroup-devices");
        if dir.join("devices.list").is_file() {
            return DeviceCgroups { root: Some(dir), mounted: None, parent };
        }
        let mounted = fs::create_dir_all(&dir).map_err(io::Error::from).and_then(|()| {
            use nix::mount::MsFlags;
            nix::mount::mount(Some("cgroup"), &dir, Some("cgroup"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some("devices"))
                .map_err(io::Error::from)
        });
        match mounted {
            Ok(()) => DeviceCgroups { root: Some(dir.clone()), mounted: Some(dir), parent },
            Err(e) => {
                tracing::warn!(error = %e, "no devices cgroup hierarchy: containers get no CAP_MKNOD instead");
                let _ = fs::remove_dir(&dir);
                DeviceCgroups { root: None, mounted: None, parent }
            }
        }
    }

    /// Is the device allowlist enforced on this host?
    pub fn available(&self) -> bool {
        self.root.is_some()
    }

    fn parent_dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(&self.parent))
    }

    /// The container's cgroup directory.
    pub fn dir(&self, id: &str) -> Option<PathBuf> {
        self.parent_dir().map(|p| p.join(id))
    }

    /// Makes the container's cgroup with its rules; returns the file its
    /// helper writes its pid to. None when the host has no devices controller.
    pub fn create(&self, id: &str, rules: &[DeviceRule], allow_all: bool) -> io::Result<Option<PathBuf>> {
        let Some(dir) = self.dir(id) else { return Ok(None) };
        if dir.exists() {
            // Left by an earlier run of this container: start afresh.
            let _ = fs::remove_dir(&dir);
        }
        fs::create_dir_all(&dir)?;
        for (file, line) in rule_writes(rules, allow_all) {
            if let Err(e) = fs::write(dir.join(file), &line) {
                let _ = fs::remove_dir(&dir);
                return Err(io::Error::new(e.kind(), format!("writing \"{line}\" to {}: {e}", dir.join(file).display())));
            }
        }
        Ok(Some(dir.join("cgroup.procs")))
    }

    /// Removes the container's cgroup once its processes are gone: the
    /// kernel refuses (EBUSY) while any is still in it, so this retries
    /// for a while (PID 1's death kills the rest, asynchronously).
    pub async fn remove(&self, id: &str) {
        let Some(dir) = self.dir(id) else { return };
        for _ in 0..100 {
            match fs::remove_dir(&dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        tracing::warn!(cgroup = %dir.display(), "container cgroup still busy; left in place");
    }

    /// Removes container cgroups left empty by an earlier run (a daemon
    /// that was killed before it could remove them).
    pub fn sweep(&self) {
        let Some(p) = self.parent_dir() else { return };
        if let Ok(entries) = fs::read_dir(&p) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
    }

    /// Daemon shutdown: the parent goes (once its containers' cgroups have
    /// emptied) and our own mount.
    pub async fn close(&self) {
        if let Some(p) = self.parent_dir() {
            for _ in 0..60 {
                self.sweep();
                match fs::remove_dir(&p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    _ => break,
                }
            }
        }
        if let Some(m) = &self.mounted {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_dockers_allowlist_after_denying_all() {
        let w = rule_writes(&default_rules(), false);
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        let allowed: Vec<&str> = w[1..].iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            allowed,
            vec!["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"]
        );
        assert!(w.iter().all(|(f, _)| *f != "devices.allow" || !allowed.contains(&"a *:* rwm")));
        assert_eq!(rule_writes(&default_rules(), true), vec![("devices.allow", "a".to_string())]);
    }

    #[test]
    fn device_cgroup_rules_parse_as_dockers_flag_takes_them() {
        assert_eq!("c 10:232 rwm".parse::<DeviceRule>().unwrap(), DeviceRule::new('c', Some(10), Some(232), "rwm"));
        assert_eq!("b *:* m".parse::<DeviceRule>().unwrap().to_string(), "b *:* m");
        assert_eq!("a *:* rw".parse::<DeviceRule>().unwrap().to_string(), "a *:* rw");
        for bad in ["", "c 10:232", "x 1:1 r", "c 1 r", "c a:1 r", "c 1:1 rx", "c 1:1 rr", "c 1:1 rwm extra"] {
            let e = bad.parse::<DeviceRule>().unwrap_err();
            assert!(e.contains("invalid device cgroup rule"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_daemon_gets_its_own_parent_from_its_exec_root() {
        assert_eq!(parent_name(Path::new("/run/berth")), "berth");
        let a = parent_name(Path::new("/var/tmp/berth-sbx-1-0.AbC/berth/run"));
        let b = parent_name(Path::new("/var/tmp/berth-sbx-1-1.XyZ/berth/run"));
        assert_eq!(a, "berth-var-tmp-berth-sbx-1-0.AbC-berth-run");
        assert_ne!(a, b);
        assert!(!a.contains('/'));
        let long = parent_name(Path::new(&format!("/{}", "x/".repeat(300))));
        assert!(long.len() <= 255, "{}", long.len());
    }

    #[test]
    fn the_devices_hierarchy_is_found_in_mountinfo() {
        let mi = "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory\n\
                  36 25 0:31 / /sys/fs/cgroup/devices rw,relatime shared:14 - cgroup cgroup rw,devices\n\
                  37 25 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                  38 25 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(devices_mounts(mi), vec![PathBuf::from("/sys/fs/cgroup/devices")]);
        assert!(devices_mounts("").is_empty());
    }
}
