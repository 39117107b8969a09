//! A throwaway node1 for tests that touch the kernel.
//!
//! [`Sandbox::new`] makes:
//! - a named network namespace `berth-sbx-<pid>-<n>` with `lo` up and an
//!   uplink veth: `eth0` inside (198.18.N.2/30), `bsbxN` in the root
//!   namespace (198.18.N.1/30). 198.18.0.0/15 is reserved for benchmarking
//!   networks and never routed; no default route leaves the sandbox.
//! - a holder process inside it with a private mount namespace (propagation
//!   private, its own /sys), so mounts made inside never reach the root one;
//! - a cgroup (cgroup2) that every process started through the sandbox joins,
//!   so that everything it started can be found and killed, however it forked;
//! - a private state dir.
//!
//! Dropping it (also while unwinding from a panic) kills every process in the
//! cgroup or in its namespaces, deletes the namespace (which takes the uplink
//! and every link, route and rule inside with it) and the cgroup and the dir.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where sandbox cgroups are made (the cgroup2 hierarchy).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";

static COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct Uplink {
    /// The root namespace's end.
    pub host_if: String,
    pub host_ip: String,
    /// node1's end, named eth0 inside.
    pub node_ip: String,
}

#[derive(Debug)]
pub struct Sandbox {
    pub name: String,
    pub uplink: Uplink,
    dir: Option<tempfile::TempDir>,
    holder: Option<Child>,
    holder_pid: i32,
    /// Helper processes (the registry) reaped at cleanup.
    children: Vec<Child>,
    cgroup: Option<PathBuf>,
    net_inode: u64,
    mnt_inode: u64,
    /// Held open while the sandbox lives: an open namespace file keeps the
    /// namespace, and so its inode number, from being freed and given to
    /// another sandbox's namespace, whose processes `pids()` would then
    /// take for ours (seen: a cleanup killed a parallel test's holder).
    ns_handles: Vec<fs::File>,
    cleaned: bool,
}

fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ns_inode(pid: i32, ns: &str) -> u64 {
    fs::metadata(format!("/proc/{pid}/ns/{ns}")).map(|m| m.ino()).unwrap_or(0)
}

impl Sandbox {
    /// Makes a new node1. Fails cleanly (leaving nothing) if any step fails.
    pub fn new() -> anyhow::Result<Sandbox> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("berth-sbx-{}-{n}", std::process::id());
        let mut sb = Sandbox {
            name: name.clone(),
            uplink: Uplink { host_if: String::new(), host_ip: String::new(), node_ip: String::new() },
            dir: None,
            holder: None,
            holder_pid: 0,
            children: Vec::new(),
            cgroup: None,
            net_inode: 0,
            mnt_inode: 0,
            ns_handles: Vec::new(),
            cleaned: false,
        };
        // On any error below, Drop undoes what was made so far.
        sb.build().with_context(|| format!("creating sandbox {name}"))?;
        Ok(sb)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        self.dir = Some(tempfile::Builder::new().prefix(&format!("{}.", self.name)).tempdir_in("/var/tmp")?);
        if Path::new(CGROUP_ROOT).join("cgroup.procs").exists() {
            let cg = Path::new(CGROUP_ROOT).join(&self.name);
            fs::create_dir(&cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
            self.cgroup = Some(cg);
        }
        sh("ip", &["netns", "add", &self.name])?;
        self.net_inode = fs::metadata(format!("/run/netns/{}", self.name))?.ino();
        sh("ip", &["-n", &self.name, "link", "set", "lo", "up"])?;

        // The uplink: the first free slot wins (link names are the lock).
        let mut slot = None;
        for i in 0..250u32 {
            let host_if = format!("bsbx{i}");
            let peer = format!("bsbx{i}n");
            if sh("ip", &["link", "add", &host_if, "type", "veth", "peer", "name", &peer]).is_ok() {
                slot = Some((i, host_if, peer));
                break;
            }
        }
        let Some((i, host_if, peer)) = slot else { bail!("no free uplink slot") };
        self.uplink = Uplink { host_if: host_if.clone(), host_ip: format!("198.18.{i}.1"), node_ip: format!("198.18.{i}.2") };
        let moved = sh("ip", &["link", "set", &peer, "netns", &self.name]);
        if let Err(e) = moved {
            let _ = sh("ip", &["link", "del", &host_if]);
            return Err(e);
        }
        let n = self.name.clone();
        sh("ip", &["-n", &n, "link", "set", &peer, "name", "eth0"])?;
        sh("ip", &["-n", &n, "addr", "add", &format!("{}/30", self.uplink.node_ip), "dev", "eth0"])?;
        sh("ip", &["-n", &n, "link", "set", "eth0", "up"])?;
        sh("ip", &["addr", "add", &format!("{}/30", self.uplink.host_ip), "dev", &host_if])?;
        sh("ip", &["link", "set", &host_if, "up"])?;

        // The holder: inside the netns, in a private mount namespace with
        // this netns's own /sys. Everything else enters its namespaces.
        let mut holder = self
            .in_cgroup_cmd()
            .args(["nsenter", &format!("--net=/run/netns/{n}"), "--", "unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", "mount -t sysfs sysfs /sys && echo ready && exec sleep infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the sandbox's holder process")?;
        let mut line = String::new();
        {
            use std::io::BufRead;
            let out = holder.stdout.take().context("holder stdout")?;
            io::BufReader::new(out).read_line(&mut line)?;
        }
        self.holder_pid = holder.id() as i32;
        self.holder = Some(holder);
        if line.trim() != "ready" {
            bail!("the holder process did not come up");
        }
        for ns in ["net", "mnt"] {
            self.ns_handles.push(fs::File::open(format!("/proc/{}/ns/{ns}", self.holder_pid))?);
        }
        self.mnt_inode = ns_inode(self.holder_pid, "mnt");
        Ok(())
    }

    /// `sh -c` that moves itself into the sandbox's cgroup, then execs "$@".
    fn in_cgroup_cmd(&self) -> Command {
        let mut c = Command::new("sh");
        let join = match &self.cgroup {
            Some(cg) => format!("echo $$ > '{}/cgroup.procs' && ", cg.display()),
            None => String::new(),
        };
        c.args(["-c", &format!("{join}exec \"$@\""), "sh"]);
        c
    }

    /// The sandbox's private state dir.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }

    /// A command that runs inside node1 (its network and mount namespaces,
    /// and its cgroup), started in the sandbox's dir.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.in_cgroup_cmd();
        c.arg("nsenter")
            .arg("-t")
            .arg(self.holder_pid.to_string())
            .args(["-n", "-m"])
            .arg(format!("--wd={}", self.dir().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs a command inside node1 to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        self.command(program).args(args).stdin(Stdio::null()).output().with_context(|| format!("running {program} in {}", self.name))
    }

    /// Starts Debian's docker-registry inside node1 on 127.0.0.1:5000,
    /// serving the fixture images (scripts/fixtures.sh pushed them).
    pub fn start_registry(&mut self) -> anyhow::Result<()> {
        let state = crate::state_dir();
        let config = state.join("registry/config.yml");
        if !config.exists() {
            bail!("{} is missing: run scripts/setup.sh first", config.display());
        }
        let log_path = self.dir().join("registry.log");
        // A loaded machine can be slow to bring it up, and a registry that
        // died at start is started again (up to three times).
        for attempt in 1..=3 {
            let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
            let mut child = self
                .command("/usr/bin/docker-registry")
                .args(["serve", &config.display().to_string()])
                .env("REGISTRY_HTTP_ADDR", "127.0.0.1:5000")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            let mut exited = false;
            let up = self.wait_until(Duration::from_secs(30), "registry on 127.0.0.1:5000", || {
                if child.try_wait().ok().flatten().is_some() {
                    exited = true;
                    return true;
                }
                self.run("curl", &["-fsS", "--max-time", "2", "http://127.0.0.1:5000/v2/"]).map(|o| o.status.success()).unwrap_or(false)
            });
            self.children.push(child);
            match (up, exited) {
                (Ok(()), false) => return Ok(()),
                (_, true) if attempt < 3 => continue,
                (r, _) => {
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    return r.and_then(|_| Err(anyhow::anyhow!("the registry exited"))).with_context(|| format!("registry log:\n{log}"));
                }
            }
        }
        Ok(())
    }

    /// Starts berthd inside node1 with all its state in the sandbox dir.
    pub fn start_berthd(&self, extra: &[&str]) -> anyhow::Result<Berthd> {
        self.start_berthd_env(&[], extra)
    }

    /// [`Self::start_berthd`] with extra environment (`BERTH_FAULT`, …).
    pub fn start_berthd_env(&self, env: &[(&str, &str)], extra: &[&str]) -> anyhow::Result<Berthd> {
        let root = self.dir().join("berth");
        let socket = root.join("docker.sock");
        let log_path = self.dir().join("berthd.log");
        let log = fs::File::create(&log_path)?;
        let child = self
            .command(crate::berthd_bin())
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("run"))
            .args(if extra.contains(&"--page-addr") { &[][..] } else { &["--page-addr", "127.0.0.1:8080"][..] })
            .args(extra)
            .env("BERTH_LOG", "debug")
            .envs(env.iter().copied())
            // The lab shell's home (history, dotfiles) stays in the sandbox.
            .env("HOME", self.dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting berthd")?;
        let mut d = Berthd { child, socket, log: log_path };
        // Ready when the API answers (the socket file exists a little earlier,
        // while the bridge and its rules are still being set up).
        self.wait_for_api(&mut d, "berthd", Duration::from_secs(20))?;
        Ok(d)
    }

    /// Starts Debian's Docker daemon (20.10, installed by scripts/setup.sh)
    /// inside this sandbox as the reference berth is compared with: its
    /// data root, exec root, socket, key file and config in the sandbox
    /// dir, its containers' cgroups under a parent the sandbox removes, its
    /// mounts in the sandbox's private mount namespace, and its docker0 and
    /// rules in the sandbox's netns. Never part of berth. Pulls go to the
    /// sandbox's fixture registry (start it first).
    pub fn start_reference_docker(&self) -> anyhow::Result<Berthd> {
        let dockerd = Path::new("/usr/sbin/dockerd");
        if !dockerd.exists() {
            bail!("{} is missing: run scripts/setup.sh", dockerd.display());
        }
        let root = self.dir().join("docker");
        fs::create_dir_all(&root)?;
        let config = root.join("daemon.json");
        // Its identity key in its own root (not /etc/docker/key.json).
        let key = root.join("key.json");
        fs::write(&config, serde_json::json!({"deprecated-key-path": key}).to_string())?;
        let socket = root.join("docker.sock");
        let log_path = self.dir().join("dockerd.log");
        let log = fs::File::create(&log_path)?;
        // The sandbox's /sys is its own: give dockerd (in a mount namespace
        // of its own inside the sandbox's) the host's cgroup hierarchies at
        // their usual places, as runc expects them.
        // A /run of its own too: what it writes there (/run/docker/plugins,
        // the xtables lock) stays out of the host's.
        let mut mounts = String::from("mount -t tmpfs -o mode=755 run /run && mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup");
        for line in fs::read_to_string("/proc/self/mountinfo")?.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let point = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            let (fstype, options) = (r.next().unwrap_or(""), r.nth(1).unwrap_or(""));
            if !point.starts_with("/sys/fs/cgroup/") || !matches!(fstype, "cgroup" | "cgroup2") {
                continue;
            }
            let options: Vec<&str> = options.split(',').filter(|o| *o != "rw" && *o != "ro").collect();
            let options = if options.is_empty() { String::new() } else { format!("-o {}", options.join(",")) };
            mounts.push_str(&format!(" && mkdir -p {point} && mount -t {fstype} {options} {fstype} {point}"));
        }
        let child = self
            .command("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!("{mounts} && exec \"$0\" \"$@\""))
            .arg(dockerd)
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("run"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--registry-mirror", "http://127.0.0.1:5000", "--storage-driver", "overlay2"])
            .arg("--cgroup-parent")
            .arg(format!("/{}.docker", self.name))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        let mut d = Berthd { child, socket, log: log_path };
        self.wait_for_api(&mut d, "dockerd", Duration::from_secs(60))?;
        Ok(d)
    }

    /// Waits until the daemon `d` answers `/_ping` on its socket; fails with
    /// its log if it exits first or does not answer within `limit`.
    fn wait_for_api(&self, d: &mut Berthd, name: &str, limit: Duration) -> anyhow::Result<()> {
        let sock = d.socket.display().to_string();
        let ready = self.wait_until(limit, &format!("{name}'s API"), || {
            d.child.try_wait().ok().flatten().is_some()
                || (d.socket.exists()
                    && Command::new("curl")
                        .args(["-fsS", "--max-time", "2", "--unix-socket", &sock, "http://daemon/_ping"])
                        .output()
                        .is_ok_and(|o| o.status.success()))
        });
        if let Ok(Some(status)) = d.child.try_wait() {
            bail!("{name} exited ({status}) at start:\n{}", d.log_text());
        }
        ready.with_context(|| d.log_text())?;
        Ok(())
    }

    /// The lab page's token of the berthd this sandbox started (berthd
    /// writes it to `<data-root>/lab-token` at start).
    pub fn lab_token(&self) -> String {
        fs::read_to_string(self.dir().join("berth/data/lab-token")).map(|t| t.trim().to_string()).unwrap_or_default()
    }

    /// `curl` arguments that sign in to the lab page as a tool does.
    pub fn lab_auth_header(&self) -> String {
        format!("Authorization: Bearer {}", self.lab_token())
    }

    /// Runs the real docker CLI inside node1 against a berthd socket.
    pub fn docker(&self, d: &Berthd, args: &[&str]) -> anyhow::Result<Output> {
        self.command("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
            .env("DOCKER_CONFIG", self.dir().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .context("running the docker CLI")
    }

    /// The docker CLI pinned to an older API version (`DOCKER_API_VERSION`),
    /// as a client of that version talks.
    pub fn docker_at(&self, d: &Berthd, version: &str, args: &[&str]) -> anyhow::Result<Output> {
        self.command("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
            .env("DOCKER_CONFIG", self.dir().join("docker-config"))
            .env("DOCKER_API_VERSION", version)
            .stdin(Stdio::null())
            .output()
            .context("running the docker CLI")
    }

    fn wait_until(&self, limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("timed out after {limit:?} waiting for {what}")
    }

    /// Pids of everything the sandbox started: its cgroup's members, whatever
    /// sits in its namespaces, and all their descendants.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = std::collections::BTreeSet::new();
        if let Some(cg) = &self.cgroup {
            for p in fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().lines() {
                if let Ok(p) = p.trim().parse() {
                    pids.insert(p);
                }
            }
        }
        let procs = crate::leak::processes();
        for p in &procs {
            let inside = (self.net_inode != 0 && ns_inode(p.pid, "net") == self.net_inode)
                || (self.mnt_inode != 0 && ns_inode(p.pid, "mnt") == self.mnt_inode);
            if inside {
                pids.insert(p.pid);
            }
        }
        let roots: Vec<i32> = pids.iter().copied().collect();
        for r in roots {
            for d in crate::leak::descendants_of(r) {
                pids.insert(d.pid);
            }
        }
        pids.remove(&(std::process::id() as i32));
        pids.into_iter().collect()
    }

    /// Removes everything; safe to call twice. Returns what could not be removed.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        self.cleaned = true;
        let mut problems = Vec::new();
        // 1. Processes: kill until none is left (they may fork while dying).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(cg) = &self.cgroup {
                let _ = fs::write(cg.join("cgroup.kill"), "1");
            }
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in &pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
            }
            // A paused container's processes die only once thawed (v1
            // freezer; v2's cgroup.kill needs no thaw).
            for dir in berth_cgroups_of(&format!("{}.", self.name)).into_iter().filter(|d| d.join("freezer.state").exists()) {
                for c in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let _ = fs::write(c.path().join("freezer.state"), "THAWED");
                }
            }
            if let Some(h) = self.holder.as_mut() {
                let _ = h.try_wait();
            }
            if Instant::now() > deadline {
                problems.push(format!("processes still alive: {pids:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(mut h) = self.holder.take() {
            let _ = h.wait();
        }
        for mut c in self.children.drain(..) {
            let _ = c.wait();
        }
        // 2. The namespace: takes the uplink and all links/rules inside with it.
        if Path::new("/run/netns").join(&self.name).exists() {
            if let Err(e) = sh("ip", &["netns", "del", &self.name]) {
                problems.push(e.to_string());
            }
        }
        if !self.uplink.host_if.is_empty() && Path::new("/sys/class/net").join(&self.uplink.host_if).exists() {
            let _ = sh("ip", &["link", "del", &self.uplink.host_if]);
        }
        // Nothing of ours is left to find by namespace: let the inodes go.
        self.ns_handles.clear();
        // 3. The cgroups (empty now) and the dir. A berthd that was killed
        // leaves its containers' device cgroups (v1, or v2 with a BPF
        // program) under a parent named after its exec-root, which holds
        // the sandbox's name.
        for dir in berth_cgroups_of(&format!("{}.", self.name)) {
            let start = Instant::now();
            while dir.exists() && start.elapsed() < Duration::from_secs(5) {
                if let Ok(children) = fs::read_dir(&dir) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = fs::remove_dir(c.path());
                    }
                }
                if fs::remove_dir(&dir).is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if dir.exists() {
                problems.push(format!("cgroup {} not removed", dir.display()));
            }
        }
        if let Some(cg) = self.cgroup.take() {
            let start = Instant::now();
            while fs::remove_dir(&cg).is_err() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if cg.exists() {
                problems.push(format!("cgroup {} not removed", cg.display()));
            }
        }
        if let Some(d) = self.dir.take() {
            let path = d.path().to_path_buf();
            if let Err(e) = d.close() {
                problems.push(format!("removing {}: {e}", path.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("sandbox {} cleanup: {}", self.name, problems.join("; "))
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("{e:#}");
        }
    }
}

/// Top-level cgroups of every hierarchy (`/sys/fs/cgroup/<controller>/`,
/// the unified one included) whose name starts with `berth` and contains
/// `part`.
pub fn berth_cgroups_of(part: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(ctrls) = fs::read_dir("/sys/fs/cgroup") else { return out };
    for ctrl in ctrls.flatten() {
        let Ok(entries) = fs::read_dir(ctrl.path()) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("berth") && name.contains(part) && e.path().is_dir() {
                out.push(e.path());
            }
        }
    }
    out
}

/// A berthd running inside a sandbox.
#[derive(Debug)]
pub struct Berthd {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Berthd {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        // The child is the `sh` that exec'd through nsenter into berthd: same pid.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)?;
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("berthd did not exit within 15 s of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Removes sandboxes left by test processes that no longer exist (a run that
/// was killed before its Drop ran). Returns the names removed.
pub fn sweep_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(dir) = fs::read_dir("/run/netns") else { return removed };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("berth-sbx-") else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let inode = fs::metadata(e.path()).map(|m| m.ino()).unwrap_or(0);
        for p in crate::leak::processes() {
            if inode != 0 && ns_inode(p.pid, "net") == inode {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = sh("ip", &["netns", "del", &name]);
        let cg = Path::new(CGROUP_ROOT).join(&name);
        if cg.exists() {
            let _ = fs::write(cg.join("cgroup.kill"), "1");
            std::thread::sleep(Duration::from_millis(100));
            let _ = fs::remove_dir(&cg);
        }
        removed.push(name);
    }
    // State dirs of dead runs (their mounts died with their mount namespaces).
    if let Ok(dir) = fs::read_dir("/var/tmp") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("berth-sbx-") else { continue };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
            if !Path::new(&format!("/proc/{pid}")).exists() && fs::remove_dir_all(e.path()).is_ok() {
                removed.push(name);
            }
        }
    }
    removed
}

/// stdout and stderr of a finished command, together.
pub fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A node1 with the fixture registry on its loopback and berthd using it
/// as docker.io's mirror: what most engine tests start from.
pub fn node1() -> anyhow::Result<(Sandbox, Berthd)> {
    let mut sb = Sandbox::new()?;
    sb.start_registry()?;
    let d = sb.start_berthd(&["--registry-mirror", "http://127.0.0.1:5000"])?;
    Ok((sb, d))
}

impl Sandbox {
    /// Runs the docker CLI and returns its stdout; panics with the output
    /// and berthd's log if it fails (for tests).
    /// One Engine API request over berthd's socket, as an SDK sends it
    /// (curl inside node1, `/v1.41`): (status, body).
    pub fn api(&self, d: &Berthd, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.api_at(d, "1.41", method, path, body)
    }

    /// [`Sandbox::api`] at an API version of the client's choosing.
    pub fn api_at(&self, d: &Berthd, version: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let sock = d.socket.display().to_string();
        let url = format!("http://berth/v{version}{path}");
        let mut args = vec!["-sS", "--max-time", "60", "--unix-socket", &sock, "-X", method, "-w", "\n%{http_code}"];
        if let Some(b) = body {
            args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        args.push(&url);
        let o = self.run("curl", &args).unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// `docker inspect -f FORMAT NAME`, trimmed (panics if it fails).
    pub fn inspect(&self, d: &Berthd, name: &str, format: &str) -> String {
        self.docker_ok(d, &["inspect", "-f", format, name]).trim().to_string()
    }

    pub fn docker_ok(&self, d: &Berthd, args: &[&str]) -> String {
        match self.docker(d, args) {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => panic!("docker {} failed ({}):\n{}\n--- berthd log:\n{}", args.join(" "), o.status, out(&o), d.log_text()),
            Err(e) => panic!("docker {}: {e:#}", args.join(" ")),
        }
    }
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `secs`.
pub fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
