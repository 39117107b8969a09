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
//! On a cgroup v2 host (no `devices` controller) the same rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup
//! (as runc's devicefilter builds it), the cgroup being
//! `<v2 root>/<parent>/<id>`. `BERTH_DEVICE_CGROUP=bpf` picks that way on a
//! hybrid host too (the tests use it). With neither, berth says so and
//! drops CAP_MKNOD, so no container can make a device node at all.

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
        c(1, Some(3)),    // null
        c(1, Some(5)),    // zero
        c(1, Some(7)),    // full
        c(1, Some(8)),    // random
        c(1, Some(9)),    // urandom
        c(5, Some(0)),    // tty
        c(5, Some(1)),    // console
        c(5, Some(2)),    // ptmx
        c(136, None),     // pts
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

/// One eBPF instruction (`struct bpf_insn`, little-endian).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [code, (src << 4) | (dst & 0xf), o[0], o[1], i[0], i[1], i[2], i[3]]
}

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND_K: u8 = 0x57; // r_dst &= imm
const RSH_K: u8 = 0x77; // r_dst >>= imm
const MOV_X: u8 = 0xbf; // r_dst = r_src
const MOV_K: u8 = 0xb7; // r_dst = imm
const JNE_K: u8 = 0x55; // if r_dst != imm goto +off
const EXIT: u8 = 0x95;

/// The device rules as a BPF_PROG_TYPE_CGROUP_DEVICE program: 1 (allow)
/// when a rule matches the request's type, major, minor and every access
/// bit asked for, else 0. The context is `struct bpf_cgroup_dev_ctx`
/// { access_type = access << 16 | type, major, minor }.
pub fn device_filter(rules: &[DeviceRule]) -> Vec<[u8; 8]> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = type
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0), // r3 = access
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0), // r4 = major
        insn(LDX_W, 5, 1, 8, 0), // r5 = minor
    ];
    for r in rules {
        // Each test jumps past the rule's block when it fails.
        let mut block: Vec<(u8, u8, u8, i32, bool)> = Vec::new();
        match r.kind {
            'b' => block.push((JNE_K, 2, 0, 1, true)),
            'c' => block.push((JNE_K, 2, 0, 2, true)),
            _ => {}
        }
        let allowed = access_bits(&r.access) as i32;
        if allowed != 7 {
            block.push((MOV_X, 1, 3, 0, false));
            block.push((AND_K, 1, 0, !allowed & 7, false));
            block.push((JNE_K, 1, 0, 0, true));
        }
        if let (Some(m), 'b' | 'c') = (r.major, r.kind) {
            block.push((JNE_K, 4, 0, m as i32, true));
        }
        if let (Some(m), 'b' | 'c') = (r.minor, r.kind) {
            block.push((JNE_K, 5, 0, m as i32, true));
        }
        block.push((MOV_K, 0, 0, 1, false));
        block.push((EXIT, 0, 0, 0, false));
        let n = block.len();
        for (i, (code, dst, src, imm, jump)) in block.into_iter().enumerate() {
            let off = if jump { (n - i - 1) as i16 } else { 0 };
            p.push(insn(code, dst, src, off, imm));
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Runs a [`device_filter`] program on one request, as the kernel would
/// (tests: the interpreter covers exactly the instructions it emits).
/// A device rule's access ("rwm") as the kernel's BPF_DEVCG_ACC_* bits
/// (mknod 1, read 2, write 4).
fn access_bits(access: &str) -> u32 {
    access
        .chars()
        .map(|c| match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
fn run_filter(p: &[[u8; 8]], kind: char, major: u32, minor: u32, access: &str) -> u64 {
    let t: u64 = if kind == 'b' { 1 } else { 2 };
    let a = u64::from(access_bits(access));
    let ctx = [((a << 16) | t) as u32, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = p[pc];
        let (dst, src) = ((i[1] & 0xf) as usize, (i[1] >> 4) as usize);
        let off = i16::from_le_bytes([i[2], i[3]]);
        let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]) as i64 as u64;
        pc += 1;
        match i[0] {
            LDX_W => r[dst] = ctx[off as usize / 4] as u64,
            AND_K => r[dst] &= imm,
            RSH_K => r[dst] >>= imm,
            MOV_X => r[dst] = r[src],
            MOV_K => r[dst] = imm,
            JNE_K => {
                if r[dst] != imm {
                    pc += off as usize;
                }
            }
            EXIT => return r[0],
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
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
    v1_mounts(mountinfo).into_iter().filter(|(_, opts)| opts.iter().any(|o| o == "devices")).map(|(mp, _)| mp).collect()
}

/// v1 cgroup mounts in a mountinfo text: (mount point, controllers).
pub fn v1_mounts(mountinfo: &str) -> Vec<(PathBuf, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let (fstype, _src, opts) = (post.next()?, post.next()?, post.next()?);
            let mp = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup").then(|| (PathBuf::from(mp.replace("\\040", " ")), opts.split(',').map(String::from).collect()))
        })
        .collect()
}

/// Finds the mount points of cgroup v2 in a mountinfo text.
pub fn cgroup2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mp = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(mp.replace("\\040", " ")))
        })
        .collect()
}

/// How the allowlist is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// The v1 `devices` controller's allow/deny files.
    V1,
    /// A BPF device program on a cgroup v2 cgroup.
    Bpf,
}

/// The device-controlling hierarchy of this daemon, if the host has one.
#[derive(Debug)]
pub struct DeviceCgroups {
    /// The hierarchy's root.
    root: Option<PathBuf>,
    /// Mounted by us (under the exec-root); unmounted at close.
    mounted: Option<PathBuf>,
    parent: String,
    mode: Enforcement,
}

/// Mounts a cgroup hierarchy at `dir` (made if missing).
fn mount_hierarchy(dir: &Path, fstype: &str, data: Option<&str>) -> io::Result<()> {
    use nix::mount::MsFlags;
    fs::create_dir_all(dir)?;
    nix::mount::mount(Some(fstype), dir, Some(fstype), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, data)
        .map_err(io::Error::from)
}

impl DeviceCgroups {
    /// Finds the devices hierarchy, or mounts it under `exec_root` when it
    /// is not reachable here (berthd in a namespace with a fresh /sys).
    pub fn open(exec_root: &Path) -> Self {
        let parent = parent_name(exec_root);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let none = |parent: String| DeviceCgroups { root: None, mounted: None, parent, mode: Enforcement::V1 };
        let want_bpf = std::env::var("BERTH_DEVICE_CGROUP").is_ok_and(|v| v == "bpf");
        if !want_bpf {
            if let Some(root) = devices_mounts(&mountinfo).into_iter().find(|m| m.join("devices.list").is_file()) {
                return DeviceCgroups { root: Some(root), mounted: None, parent, mode: Enforcement::V1 };
            }
        }
        // No v1 devices controller reachable: a v2 host, or a fresh /sys.
        let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        if want_bpf || pure_v2 {
            if let Some(root) = cgroup2_mounts(&mountinfo).into_iter().find(|m| m.join("cgroup.procs").is_file()) {
                return DeviceCgroups { root: Some(root), mounted: None, parent, mode: Enforcement::Bpf };
            }
            let dir = exec_root.join("cgroup2");
            if dir.join("cgroup.procs").is_file() {
                return DeviceCgroups { root: Some(dir), mounted: None, parent, mode: Enforcement::Bpf };
            }
            return match mount_hierarchy(&dir, "cgroup2", None) {
                Ok(()) => DeviceCgroups { root: Some(dir.clone()), mounted: Some(dir), parent, mode: Enforcement::Bpf },
                Err(e) => {
                    tracing::warn!(error = %e, "no cgroup v2 hierarchy for device programs: containers get no CAP_MKNOD instead");
                    let _ = fs::remove_dir(&dir);
                    none(parent)
                }
            };
        }
        let dir = exec_root.join("cgroup-devices");
        if dir.join("devices.list").is_file() {
            return DeviceCgroups { root: Some(dir), mounted: None, parent, mode: Enforcement::V1 };
        }
        match mount_hierarchy(&dir, "cgroup", Some("devices")) {
            Ok(()) => DeviceCgroups { root: Some(dir.clone()), mounted: Some(dir), parent, mode: Enforcement::V1 },
            Err(e) => {
                tracing::warn!(error = %e, "no devices cgroup hierarchy: containers get no CAP_MKNOD instead");
                let _ = fs::remove_dir(&dir);
                none(parent)
            }
        }
    }

    /// How the allowlist is enforced here.
    pub fn enforcement(&self) -> Option<Enforcement> {
        self.root.as_ref().map(|_| self.mode)
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
        let applied = match self.mode {
            Enforcement::V1 => rule_writes(rules, allow_all).into_iter().try_for_each(|(file, line)| {
                fs::write(dir.join(file), &line)
                    .map_err(|e| io::Error::new(e.kind(), format!("writing \"{line}\" to {}: {e}", dir.join(file).display())))
            }),
            // A new v2 cgroup allows every device: privileged keeps that.
            Enforcement::Bpf if allow_all => Ok(()),
            Enforcement::Bpf => crate::sys::attach_device_filter(&device_filter(rules), &dir),
        };
        if let Err(e) = applied {
            let _ = fs::remove_dir(&dir);
            return Err(e);
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

    /// The `cgroup.procs` file of every container cgroup of this daemon.
    pub fn container_procs(&self) -> Vec<PathBuf> {
        let Some(p) = self.parent_dir() else { return Vec::new() };
        fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()).filter(|d| d.is_dir()).map(|d| d.join("cgroup.procs")).collect()
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
            vec![
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
                "c 10:200 rwm"
            ]
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
    fn the_bpf_filter_allows_exactly_what_the_rules_allow() {
        let mut rules = default_rules();
        rules.push("b 7:0 r".parse().unwrap());
        let p = device_filter(&rules);
        for (kind, ma, mi, access, want) in [
            ('c', 1, 3, "rw", 1),   // null
            ('c', 1, 9, "r", 1),    // urandom
            ('c', 136, 4, "rw", 1), // a pts
            ('c', 5, 2, "rwm", 1),  // ptmx
            ('c', 10, 232, "m", 1), // mknod of anything
            ('b', 8, 0, "m", 1),
            ('c', 10, 232, "rw", 0), // kvm
            ('c', 10, 232, "r", 0),
            ('b', 7, 1, "r", 0),  // another loop device
            ('b', 7, 0, "r", 1),  // the --device one, read
            ('b', 7, 0, "rw", 0), // not written
            ('c', 7, 0, "r", 0),  // a char device with its numbers
            ('c', 4, 9, "w", 0),  // a VT
        ] {
            assert_eq!(run_filter(&p, kind, ma, mi, access), want, "{kind} {ma}:{mi} {access}");
        }
        let all = device_filter(&[DeviceRule::new('a', None, None, "rwm")]);
        assert_eq!(run_filter(&all, 'c', 10, 232, "rwm"), 1);
        assert_eq!(run_filter(&device_filter(&[]), 'c', 1, 3, "r"), 0);
    }

    #[test]
    fn the_devices_hierarchy_is_found_in_mountinfo() {
        let mi = "35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory\n\
                  36 25 0:31 / /sys/fs/cgroup/devices rw,relatime shared:14 - cgroup cgroup rw,devices\n\
                  37 25 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                  38 25 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(devices_mounts(mi), vec![PathBuf::from("/sys/fs/cgroup/devices")]);
        assert_eq!(cgroup2_mounts(mi), vec![PathBuf::from("/sys/fs/cgroup/unified")]);
        assert!(devices_mounts("").is_empty());
    }
}
