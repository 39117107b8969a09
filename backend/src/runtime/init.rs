//! The container side: `berthd __berth-init SPEC` and `berthd __berth-exec SPEC`.
//!
//! berthd starts itself again as a small single-threaded helper (as runc
//! does with `runc init`). The helper unshares the namespaces, forks — the
//! child is PID 1 of the new PID namespace — and stays as the child's parent
//! to report its exit status. The child builds the container's root
//! (/proc, /dev, /sys, binds), pivots into it, drops privileges and execs the
//! image's command. Descriptor 3 is a pipe back to berthd: the helper writes
//! `pid N`; a child that fails before exec writes `error MESSAGE`; a
//! successful exec closes it (close-on-exec).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use super::spec::{lookup_path, DeviceNode, ExecSpec, InitSpec, NetNs, Rlimit, Tmpfs};
use crate::sys::{self, Forked};

type R<T> = Result<T, String>;

fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> R<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// Descriptor 3, the sync pipe, made close-on-exec.
fn sync_pipe() -> File {
    sys::take_sync_fd()
}

fn exit_code(status: nix::sys::wait::WaitStatus) -> i32 {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, c) => c,
        nix::sys::wait::WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 1,
    }
}

/// Waits for the child, passing on its status as our own.
fn supervise(child: i32, mut sync: File) -> ! {
    let _ = writeln!(sync, "pid {child}");
    drop(sync);
    let pid = nix::unistd::Pid::from_raw(child);
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(s @ (nix::sys::wait::WaitStatus::Exited(..) | nix::sys::wait::WaitStatus::Signaled(..))) => std::process::exit(exit_code(s)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(1),
        }
    }
}

fn fail(mut sync: File, msg: &str) -> ! {
    let _ = writeln!(sync, "error {}", msg.replace('\n', " "));
    let _ = writeln!(io::stderr(), "berth: {msg}");
    std::process::exit(127)
}

fn read_spec<T: serde::de::DeserializeOwned>(path: &str) -> R<T> {
    let bytes = ctx(std::fs::read(path), || format!("reading spec {path}"))?;
    ctx(serde_json::from_slice(&bytes), || format!("parsing spec {path}"))
}

/// Forks the process that becomes the container's (or the exec's) process:
/// the parent stays to report its status, the child runs `child`, which
/// returns only with the reason it could not exec.
fn fork_and_supervise(sync: File, child: impl FnOnce() -> String) -> ! {
    match sys::fork() {
        Err(e) => fail(sync, &format!("fork: {e}")),
        Ok(Forked::Parent { child }) => supervise(child, sync),
        Ok(Forked::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let err = child();
            fail(sync, &err)
        }
    }
}

/// Moves this process (and so everything it will start) into the
/// container's cgroups: the devices cgroup holding its allowlist.
///
/// The helper is single-threaded here, so on a v1 hierarchy it moves its
/// only thread by writing "0" to `tasks`: the kernel then skips the global
/// threadgroup lock whose writers wait for an RCU grace period — writing the
/// pid to `cgroup.procs` cost ~10 ms (up to 24) of every start, measured.
/// (v2 has no `tasks`: `cgroup.procs` there.)
fn join_cgroups(procs: &[std::path::PathBuf]) -> R<()> {
    // Only a single-threaded process may move by its one thread.
    let single = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.lines().any(|l| l.split_whitespace().eq(["Threads:", "1"])));
    for p in procs {
        let tasks = p.with_file_name("tasks");
        let (file, what) = if single && p.file_name().is_some_and(|n| n == "cgroup.procs") && tasks.exists() {
            (tasks, "0".to_string())
        } else {
            (p.clone(), std::process::id().to_string())
        };
        ctx(std::fs::write(&file, what), || format!("joining cgroup {}", p.display()))?;
    }
    Ok(())
}

/// `--ulimit`s, set while the process may still raise hard limits.
fn set_rlimits(rlimits: &[Rlimit]) -> R<()> {
    for r in rlimits {
        ctx(sys::setrlimit(&r.name, r.soft, r.hard), || format!("setting ulimit {}={}:{}", r.name, r.soft, r.hard))?;
    }
    Ok(())
}

/// `__berth-init`: never returns.
pub fn init_main(spec_path: &str) -> ! {
    let sync = sync_pipe();
    let spec: InitSpec = match read_spec(spec_path) {
        Ok(s) => s,
        Err(e) => fail(sync, &e),
    };
    // First of all: nothing the container does may escape its cgroups.
    if let Err(e) = join_cgroups(&spec.confined.cgroup_procs) {
        fail(sync, &e);
    }
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    match &spec.net {
        NetNs::New => flags |= CloneFlags::CLONE_NEWNET,
        NetNs::Join(path) => {
            let joined = File::open(path)
                .map_err(|e| e.to_string())
                .and_then(|f| nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string()));
            if let Err(e) = joined {
                fail(sync, &format!("joining network namespace {}: {e}", path.display()));
            }
        }
        NetNs::Host => {}
    }
    if let Err(e) = nix::sched::unshare(flags) {
        fail(sync, &format!("creating namespaces: {e}"));
    }
    fork_and_supervise(sync, || match container_setup(&spec) {
        Ok(()) => exec(&spec.args, &spec.env, Path::new("/")),
        Err(e) => e,
    })
}

/// `__berth-exec`: joins a running container's namespaces and runs a process.
pub fn exec_main(spec_path: &str) -> ! {
    let sync = sync_pipe();
    let spec: ExecSpec = match read_spec(spec_path) {
        Ok(s) => s,
        Err(e) => fail(sync, &e),
    };
    if let Err(e) = join_cgroups(&spec.confined.cgroup_procs) {
        fail(sync, &e);
    }
    // Open all first: after joining the mount namespace /proc is the container's.
    let mut nss = Vec::new();
    for (kind, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        match File::open(format!("/proc/{}/ns/{kind}", spec.target_pid)) {
            Ok(f) => nss.push((kind, f, flag)),
            Err(e) => fail(sync, &format!("container process {} is gone: {e}", spec.target_pid)),
        }
    }
    for (kind, f, flag) in &nss {
        if let Err(e) = nix::sched::setns(f.as_fd(), *flag) {
            fail(sync, &format!("joining {kind} namespace: {e}"));
        }
    }
    drop(nss);
    // Now in the container's mount namespace: look the command up before
    // forking, so "not found" is reported by this process alone.
    if let Some(prog) = spec.args.first() {
        if lookup_path(prog, &spec.env, Path::new("/")).is_none() {
            fail(sync, &format!("exec: \"{prog}\": executable file not found in $PATH"));
        }
    }
    fork_and_supervise(sync, || {
        let r = (|| {
            session(spec.tty)?;
            set_rlimits(&spec.confined.rlimits)?;
            become_user(&spec.user, &spec.confined)?;
            let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
            ctx(nix::unistd::chdir(cwd), || format!("chdir {cwd}"))
        })();
        match r {
            Ok(()) => exec(&spec.args, &spec.env, Path::new("/")),
            Err(e) => e,
        }
    })
}

fn mkdirs(p: &Path) -> R<()> {
    ctx(std::fs::create_dir_all(p), || format!("mkdir {}", p.display()))
}

fn mnt(src: Option<&str>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> R<()> {
    ctx(mount(src, target, fstype, flags, data), || format!("mounting {} on {}", fstype.or(src).unwrap_or("?"), target.display()))
}

/// The mount target for `dest` inside `root`, made if missing (a dir, or an
/// empty file when the source is a file), resolved with every symlink kept
/// inside `root`: an image's `/data -> /etc` link cannot send a volume onto
/// the host's /etc. Returned as an O_PATH handle.
fn target_in(root: &pathrs::Root, dest: &str, dir: bool) -> R<pathrs::Handle> {
    use std::os::unix::fs::PermissionsExt;
    let perm = std::fs::Permissions::from_mode(0o755);
    let what = || format!("making the mount point {dest}");
    if dir {
        return ctx(root.mkdir_all(dest, &perm), what);
    }
    if let Some(parent) = Path::new(dest).parent() {
        ctx(root.mkdir_all(parent, &perm), what)?;
    }
    if root.resolve(dest).is_err() {
        ctx(root.create_file(dest, pathrs::flags::OpenFlags::O_RDONLY, &std::fs::Permissions::from_mode(0o644)), what)?;
    }
    ctx(root.resolve(dest), what)
}

/// Bind-mounts `b.source` at its destination in the new root, through the
/// resolved handle's /proc/self/fd path (as runc does).
fn bind_into(root: &Path, b: &super::spec::Bind) -> R<()> {
    use crate::storage::copy::fd_path;
    let r = ctx(pathrs::Root::open(root), || format!("opening {}", root.display()))?;
    let target = target_in(&r, &b.destination, b.source.is_dir())?;
    let src = b.source.to_string_lossy();
    ctx(mount(Some(src.as_ref()), &fd_path(&target), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>), || {
        format!("bind-mounting {src} on {}", b.destination)
    })?;
    if b.readonly {
        // Resolved again: the new handle is the bind mount, not what it covers.
        let mounted = ctx(r.resolve(&b.destination), || format!("resolving {}", b.destination))?;
        ctx(
            mount(
                None::<&str>,
                &fd_path(&mounted),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            ),
            || format!("making {} read-only", b.destination),
        )?;
    }
    Ok(())
}

/// Builds the container's root and pivots into it.
fn container_setup(spec: &InitSpec) -> R<()> {
    mnt(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    if spec.net != NetNs::Host {
        ctx(sys::link_up("lo"), || "bringing lo up".into())?;
    }
    if !spec.hostname.is_empty() {
        ctx(nix::unistd::sethostname(&spec.hostname), || "sethostname".into())?;
    }
    let root = spec.rootfs.as_path();
    // pivot_root needs the new root to be a mount point of this namespace.
    mnt(Some(&root.to_string_lossy()), root, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;

    let proc_dir = root.join("proc");
    mkdirs(&proc_dir)?;
    mnt(Some("proc"), &proc_dir, Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV, None)?;

    let sys_dir = root.join("sys");
    mkdirs(&sys_dir)?;
    // Read-only, as Docker mounts it, except for --privileged.
    let mut sys_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    if !spec.privileged {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    if mount(Some("sysfs"), &sys_dir, Some("sysfs"), sys_flags, None::<&str>).is_err() {
        // Sharing the host's network namespace: sysfs cannot be mounted anew.
        mnt(Some("/sys"), &sys_dir, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        if !spec.privileged {
            mnt(None, &sys_dir, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None)?;
        }
    }

    mount_cgroup_views(&sys_dir, &spec.cgroup_views, spec.privileged)?;
    setup_dev(root, spec.tty, spec.shm_size)?;
    make_devices(root, &spec.devices)?;

    for b in &spec.binds {
        bind_into(root, b)?;
    }
    for t in &spec.tmpfs {
        mount_tmpfs(root, t)?;
    }

    ctx(nix::unistd::chdir(root), || format!("chdir {}", root.display()))?;
    ctx(nix::unistd::pivot_root(".", "."), || "pivot_root".into())?;
    ctx(umount2(".", MntFlags::MNT_DETACH), || "detaching the old root".into())?;
    ctx(nix::unistd::chdir("/"), || "chdir /".into())?;

    for p in &spec.masked_paths {
        let path = Path::new(p);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => mnt(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None)?,
            Ok(_) => mnt(Some("/dev/null"), path, None, MsFlags::MS_BIND, None)?,
            Err(_) => {}
        }
    }
    for p in &spec.readonly_paths {
        let path = Path::new(p);
        if path.exists() {
            mnt(Some(p), path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
            mnt(None, path, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC, None)?;
        }
    }

    // Docker creates a missing WorkingDir (before a read-only root forbids it).
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    let _ = std::fs::create_dir_all(cwd);
    if spec.readonly_rootfs {
        // Only the root's own mount: /dev, /proc, /sys, volumes, binds and
        // tmpfs mounts below it keep their own flags.
        ctx(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>), || {
            "remounting the root read-only".into()
        })?;
    }
    let adj = std::fs::write("/proc/self/oom_score_adj", spec.oom_score_adj.to_string());
    if spec.oom_score_adj != 0 {
        ctx(adj, || "setting oom_score_adj".into())?;
    }

    session(spec.tty)?;
    set_rlimits(&spec.confined.rlimits)?;
    become_user(&spec.user, &spec.confined)?;
    ctx(nix::unistd::chdir(cwd), || format!("chdir {cwd}"))
}

/// The container's own cgroups at /sys/fs/cgroup, read-only unless
/// privileged: on v1 a tmpfs with one bind per controller (as runc mounts
/// them for Docker), on v2 the container's cgroup itself.
fn mount_cgroup_views(sys_dir: &Path, views: &[(String, std::path::PathBuf)], privileged: bool) -> R<()> {
    let cg = sys_dir.join("fs/cgroup");
    if views.is_empty() || !cg.is_dir() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = |p: &Path| -> R<()> {
        if privileged {
            return Ok(());
        }
        mnt(None, p, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags, None)
    };
    if let [(name, dir)] = views {
        if name.is_empty() {
            mnt(Some(&dir.to_string_lossy()), &cg, None, MsFlags::MS_BIND, None)?;
            return ro(&cg);
        }
    }
    mnt(Some("tmpfs"), &cg, Some("tmpfs"), flags, Some("mode=755"))?;
    for (name, dir) in views {
        let at = cg.join(name);
        mkdirs(&at)?;
        mnt(Some(&dir.to_string_lossy()), &at, None, MsFlags::MS_BIND, None)?;
        ro(&at)?;
    }
    if privileged {
        return Ok(());
    }
    mnt(None, &cg, None, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags, Some("mode=755"))
}

/// Makes device nodes (`--device`, `--privileged`) at their paths in the
/// new root, parents resolved inside it, with the host node's mode and owner.
fn make_devices(root: &Path, devices: &[DeviceNode]) -> R<()> {
    use std::os::unix::fs::PermissionsExt;
    if devices.is_empty() {
        return Ok(());
    }
    let r = ctx(pathrs::Root::open(root), || format!("opening {}", root.display()))?;
    for d in devices {
        let path = Path::new(&d.path);
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(format!("invalid device path {}", d.path));
        };
        let dir = ctx(r.mkdir_all(parent, &std::fs::Permissions::from_mode(0o755)), || format!("making {}", parent.display()))?;
        let kind = if d.kind == 'b' { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
        let mode = Mode::from_bits_truncate(d.mode);
        match nix::sys::stat::mknodat(&dir, name, kind, mode, makedev(d.major.into(), d.minor.into())) {
            Ok(()) => {}
            // Already made as one of the default nodes.
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => return Err(format!("mknod {}: {e}", d.path)),
        }
        // mknod's mode is filtered by the umask.
        ctx(nix::sys::stat::fchmodat(&dir, name, mode, nix::sys::stat::FchmodatFlags::FollowSymlink), || format!("chmod {}", d.path))?;
        ctx(
            nix::unistd::fchownat(
                &dir,
                name,
                Some(nix::unistd::Uid::from_raw(d.uid)),
                Some(nix::unistd::Gid::from_raw(d.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            || format!("chown {}", d.path),
        )?;
    }
    Ok(())
}

/// Mounts a `--tmpfs` at its destination, resolved inside the new root.
fn mount_tmpfs(root: &Path, t: &Tmpfs) -> R<()> {
    use crate::storage::copy::fd_path;
    let r = ctx(pathrs::Root::open(root), || format!("opening {}", root.display()))?;
    let target = target_in(&r, &t.destination, true)?;
    let mut flags = MsFlags::empty();
    for (on, f) in
        [(t.readonly, MsFlags::MS_RDONLY), (t.nosuid, MsFlags::MS_NOSUID), (t.nodev, MsFlags::MS_NODEV), (t.noexec, MsFlags::MS_NOEXEC)]
    {
        if on {
            flags |= f;
        }
    }
    let data = (!t.data.is_empty()).then_some(t.data.as_str());
    ctx(mount(Some("tmpfs"), &fd_path(&target), Some("tmpfs"), flags, data), || format!("mounting tmpfs on {}", t.destination))
}

fn setup_dev(root: &Path, tty: bool, shm_size: Option<u64>) -> R<()> {
    let dev = root.join("dev");
    mkdirs(&dev)?;
    mnt(Some("tmpfs"), &dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)] {
        let p = dev.join(name);
        ctx(mknod(&p, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor)), || format!("mknod {}", p.display()))?;
        // mknod's mode is filtered by the umask.
        ctx(
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                &p,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ),
            || "chmod".into(),
        )?;
    }
    let pts = dev.join("pts");
    mkdirs(&pts)?;
    mnt(Some("devpts"), &pts, Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("newinstance,ptmxmode=0666,mode=0620,gid=5"))?;
    ctx(std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx")), || "ptmx".into())?;
    let shm = dev.join("shm");
    mkdirs(&shm)?;
    let shm_opts = match shm_size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777,size=65536k".to_string(),
    };
    mnt(Some("shm"), &shm, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV, Some(&shm_opts))?;
    let mq = dev.join("mqueue");
    mkdirs(&mq)?;
    let _ = mount(Some("mqueue"), &mq, Some("mqueue"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV, None::<&str>);
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        ctx(std::os::unix::fs::symlink(target, dev.join(link)), || format!("/dev/{link}"))?;
    }
    if tty {
        // The console is the container's terminal, as Docker sets it up.
        if let Ok(name) = std::fs::read_link("/proc/self/fd/0") {
            let console = dev.join("console");
            ctx(File::create(&console), || "creating /dev/console".into())?;
            mnt(Some(&name.to_string_lossy()), &console, None, MsFlags::MS_BIND, None)?;
        }
    }
    Ok(())
}

/// A new session; with a TTY, stdin becomes the controlling terminal.
fn session(tty: bool) -> R<()> {
    ctx(nix::unistd::setsid(), || "setsid".into())?;
    if tty {
        ctx(sys::set_controlling_tty(0), || "TIOCSCTTY".into())?;
    }
    Ok(())
}

/// Resolves `user[:group]` against the container's /etc/passwd and /etc/group.
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> R<(u32, u32, Vec<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entries: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).filter(|f: &Vec<&str>| f.len() >= 4).collect();
    let (uid, mut gid, name) = if u.is_empty() {
        (0, 0, "root".to_string())
    } else if let Ok(n) = u.parse::<u32>() {
        let e = entries.iter().find(|f| f[2] == u);
        (n, e.and_then(|f| f[3].parse().ok()).unwrap_or(n), e.map(|f| f[0].to_string()).unwrap_or_default())
    } else {
        let e = entries.iter().find(|f| f[0] == u).ok_or_else(|| format!("unable to find user {u}: no matching entries in passwd file"))?;
        (e[2].parse().unwrap_or(0), e[3].parse().unwrap_or(0), u.to_string())
    };
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect()).filter(|f: &Vec<&str>| f.len() >= 4).collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        };
    }
    let extra =
        groups.iter().filter(|f| !name.is_empty() && f[3].split(',').any(|m| m == name)).filter_map(|f| f[2].parse().ok()).collect();
    Ok((uid, gid, extra))
}

/// `--group-add` names or gids against the container's /etc/group.
pub fn resolve_groups(names: &[String], group: &str) -> R<Vec<u32>> {
    names
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("Unable to find group {g}: no matching entries in group file")),
        })
        .collect()
}

/// Becomes the container's user with its capabilities. The seccomp
/// programs go in first, while this process still holds CAP_SYS_ADMIN (what
/// installing them without no_new_privs takes, as runc does): everything
/// after them (capset, setgroups, setuid, chdir, execve) is allowed by them.
fn become_user(user: &str, confined: &super::spec::Confined) -> R<()> {
    let (group_add, caps_keep, no_new_privs, seccomp) =
        (&confined.group_add, &confined.capabilities, confined.no_new_privileges, &confined.seccomp);
    use std::str::FromStr;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (uid, gid, mut extra) = resolve_user(user, &passwd, &group)?;
    extra.extend(resolve_groups(group_add, &group)?);
    if no_new_privs {
        ctx(nix::sys::prctl::set_no_new_privs(), || "no_new_privs".into())?;
    }
    for prog in seccomp {
        ctx(sys::install_seccomp(prog), || "installing the seccomp profile".into())?;
    }
    // Only what this kernel knows and berth itself holds (its bounding set):
    // capset refuses the others. "All" (--privileged) is all of those.
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let supported: caps::CapsHashSet = caps::runtime::thread_all_supported().intersection(&bounding).copied().collect();
    let keep: caps::CapsHashSet =
        caps_keep.iter().filter_map(|c| caps::Capability::from_str(c).ok()).filter(|c| supported.contains(c)).collect();
    for cap in supported {
        if !keep.contains(&cap) {
            ctx(caps::drop(None, caps::CapSet::Bounding, cap), || format!("dropping {cap}"))?;
        }
    }
    ctx(caps::set(None, caps::CapSet::Inheritable, &keep), || "inheritable caps".into())?;
    let gids: Vec<nix::unistd::Gid> = extra.into_iter().map(nix::unistd::Gid::from_raw).collect();
    ctx(nix::unistd::setgroups(&gids), || "setgroups".into())?;
    ctx(nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)), || format!("setgid {gid}"))?;
    ctx(nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)), || format!("setuid {uid}"))?;
    if uid == 0 {
        // Effective first: it must stay a subset of permitted at every step.
        ctx(caps::set(None, caps::CapSet::Effective, &keep), || "effective caps".into())?;
        ctx(caps::set(None, caps::CapSet::Permitted, &keep), || "permitted caps".into())?;
    }
    Ok(())
}

/// execve with PATH looked up in the container's environment. Returns the
/// error message only if the exec failed.
fn exec(args: &[String], env: &[String], root: &Path) -> String {
    let Some(prog) = args.first() else { return "no command specified".into() };
    let Some(path) = lookup_path(prog, env, root) else {
        return format!("exec: \"{prog}\": executable file not found in $PATH");
    };
    let cs = |s: &String| CString::new(s.as_bytes()).unwrap_or_default();
    let argv: Vec<CString> = args.iter().map(cs).collect();
    let envp: Vec<CString> = env.iter().map(cs).collect();
    let Ok(cpath) = CString::new(path.as_bytes()) else { return "bad path".into() };
    crate::sys::default_signals();
    match nix::unistd::execve(&cpath, &argv, &envp) {
        Err(nix::errno::Errno::ENOENT) => format!("exec: \"{prog}\": stat {path}: no such file or directory"),
        Err(nix::errno::Errno::EACCES) => format!("exec: \"{prog}\": permission denied"),
        Err(e) => format!("exec {prog}: {e}"),
        Ok(_) => unreachable_exec(),
    }
}

fn unreachable_exec() -> String {
    "execve returned".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:nginx\nweb:x:200:nginx\n";

    #[test]
    fn added_groups_resolve_by_name_or_number() {
        let group = "root:x:0:\nwheel:x:10:\naudio:x:29:\n";
        assert_eq!(resolve_groups(&["audio".into(), "1234".into()], group).unwrap(), vec![29, 1234]);
        assert_eq!(resolve_groups(&["nope".into()], group).unwrap_err(), "Unable to find group nope: no matching entries in group file");
    }

    #[test]
    fn users_resolve_by_name_or_number_with_their_groups() {
        assert_eq!(resolve_user("", PASSWD, GROUP).unwrap(), (0, 0, vec![]));
        assert_eq!(resolve_user("nginx", PASSWD, GROUP).unwrap(), (101, 101, vec![101, 200]));
        assert_eq!(resolve_user("1000", PASSWD, GROUP).unwrap(), (1000, 1000, vec![]));
        assert_eq!(resolve_user("nginx:web", PASSWD, GROUP).unwrap().1, 200);
        assert_eq!(resolve_user("0:5", PASSWD, GROUP).unwrap(), (0, 5, vec![]));
        let e = resolve_user("nobody", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find user nobody"), "{e}");
    }

    #[test]
    fn mount_points_behind_an_absolute_symlink_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let host = dir.path().join("host-etc");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        // An image whose /data points at an absolute path that exists on the host.
        std::os::unix::fs::symlink(&host, root.join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("conf")).unwrap();
        let r = pathrs::Root::open(&root).unwrap();
        target_in(&r, "/conf/volume", true).unwrap();
        assert!(root.join("etc/volume").is_dir(), "made inside the root's /etc");
        target_in(&r, "/conf/hosts.file", false).unwrap();
        assert!(root.join("etc/hosts.file").is_file());
        // The absolute link resolves under the root, never to the host's dir.
        let _ = target_in(&r, "/data/x", true);
        assert!(!host.join("x").exists(), "nothing made outside the root");
    }
}
