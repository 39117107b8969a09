//! The one module that makes raw syscalls. Everything `unsafe` in berth is
//! here, each use small and explained; the rest of the daemon calls these
//! safe wrappers.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Result of [`fork`].
#[derive(Debug)]
pub enum Forked {
    Parent { child: i32 },
    Child,
}

/// fork(2). Only called from berth's single-threaded helper processes
/// (`__berth-init`, `__berth-exec`) before they start any thread, where the
/// child may do anything, not just async-signal-safe calls.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the caller is single-threaded (a freshly exec'd helper), so no
    // lock can be held by another thread at the time of the fork.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent { child: child.as_raw() }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument, no pointer.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a terminal's window size (rows × columns).
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a `winsize` through the pointer, which lives
    // for the duration of the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings an interface of the current network namespace up (SIOCSIFFLAGS).
pub fn link_up(name: &str) -> io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
    let mut req: libc::ifreq = unsafe_zeroed_ifreq();
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn unsafe_zeroed_ifreq() -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct/union for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Moves `fd` to descriptor 3 in a child about to exec, for
/// [`std::process::Command`]. The descriptor is the helper's sync pipe.
pub fn pass_fd_as_3(cmd: &mut std::process::Command, fd: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2 is async-signal-safe, as pre_exec requires; it runs in the
    // forked child before exec and touches only descriptors.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // Clear close-on-exec so that 3 survives the exec.
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Takes ownership of descriptor 3 (the sync pipe berthd passed to its
/// helper) and marks it close-on-exec, so a successful exec closes it.
pub fn take_sync_fd() -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: berthd starts its helpers with descriptor 3 open on the sync
    // pipe (see `pass_fd_as_3`), and nothing else in the helper owns it.
    let file = unsafe { std::fs::File::from_raw_fd(3) };
    let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    file
}

/// For the lab's shells: a session leader with its stdin (a terminal) as
/// its controlling terminal, and a UTS namespace of their own with `hostname` as its name, so `hostname` in the page's
/// shell says what its prompt does. Where a new namespace cannot be made
/// (no CAP_SYS_ADMIN), the shell keeps the machine's name.
pub fn lab_shell_pre_exec(cmd: &mut std::process::Command, hostname: &str) {
    use std::os::unix::process::CommandExt;
    let name = hostname.as_bytes().to_vec();
    // SAFETY: setsid, ioctl, unshare and sethostname are async-signal-safe
    // system calls, as pre_exec requires; they run in the forked child
    // before exec, and `name` was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWUTS) == 0 {
                libc::sethostname(name.as_ptr().cast(), name.len());
            }
            Ok(())
        });
    }
}

/// The rlimit resource for a `--ulimit` name, as Docker names them.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// setrlimit(2) for a `--ulimit` name; `u64::MAX` is unlimited.
pub fn setrlimit(name: &str, soft: u64, hard: u64) -> io::Result<()> {
    let resource =
        rlimit_resource(name).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid ulimit type: {name}")))?;
    let lim = |v: u64| if v == u64::MAX { libc::RLIM_INFINITY } else { v as libc::rlim_t };
    let rl = libc::rlimit { rlim_cur: lim(soft), rlim_max: lim(hard) };
    // SAFETY: setrlimit reads the `rlimit` we own through the pointer, for
    // the duration of the call.
    if unsafe { libc::setrlimit(resource, &rl) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `union bpf_attr` as BPF_PROG_LOAD reads it (the leading fields; the
/// kernel takes a shorter struct as long as what it omits would be zero).
#[repr(C)]
#[derive(Default)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `union bpf_attr` as BPF_PROG_ATTACH reads it.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (`insns` as the kernel's
/// 8-byte `struct bpf_insn`s) and attaches it to the cgroup v2 directory
/// `cgroup`. The attachment lives as long as the cgroup: our descriptors
/// close on return. On a verifier refusal the error holds its log.
pub fn attach_device_filter(insns: &[[u8; 8]], cgroup: &std::path::Path) -> io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let attr = BpfProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: bpf(2) reads `attr` and, through its pointers, `insns` and
    // `license` and writes at most `log_size` bytes into `log`; all of them
    // outlive the call.
    let fd =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const BpfProgLoadAttr, std::mem::size_of::<BpfProgLoadAttr>()) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        return Err(io::Error::new(e.kind(), format!("loading the device filter: {e}: {}", String::from_utf8_lossy(&log[..end]).trim())));
    }
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor we own.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let dir = std::fs::File::open(cgroup)?;
    let attach = BpfProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: bpf(2) reads `attach`, which outlives the call; both
    // descriptors in it are open.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, &attach as *const BpfProgAttachAttr, std::mem::size_of::<BpfProgAttachAttr>())
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("attaching the device filter to {}: {e}", cgroup.display())));
    }
    Ok(())
}

/// Every signal at its default disposition and none blocked, for a
/// container's process: an ignored signal stays ignored across exec, and
/// Rust programs (berthd) start with SIGPIPE ignored — under Docker a
/// container's processes ignore nothing (so `yes | head -n1` ends).
pub fn default_signals() {
    // SAFETY: rt_sigaction reads a 32-byte kernel sigaction from `dfl`,
    // which lives through the call, and installs no handler (SIG_DFL); the
    // empty mask is a valid sigset. Nothing of ours is touched.
    unsafe {
        // The kernel's sigaction (handler, flags, restorer, mask), all zero:
        // SIG_DFL. Through the raw call, so that the signals libc keeps for
        // itself (32, 33), which a parent may have left ignored, are reset too.
        let dfl = [0u64; 4];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Registers an owned file with the runtime's reactor (for non-blocking
/// PTY I/O).
pub fn async_file(file: std::fs::File) -> io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: `File` owns its descriptor: it stays open, and `as_raw_fd`
    // returns the same one, for as long as the AsyncFd holds the File.
    unsafe { tokio::io::unix::AsyncFd::register(file) }.map_err(|e| e.into_parts().1)
}

/// Installs a seccomp filter (classic BPF, `(code, jt, jf, k)` each) on
/// the calling thread. Without no_new_privs the caller needs CAP_SYS_ADMIN.
pub fn install_seccomp(prog: &[(u16, u8, u8, u32)]) -> io::Result<()> {
    let filter: Vec<libc::sock_filter> = prog.iter().map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k }).collect();
    let fprog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: seccomp(2) reads `fprog` and the `len` instructions it points
    // to, which outlive the call; it keeps its own copy.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lowers (or raises) the calling thread's CPU priority: on Linux the nice
/// value is per thread, and `PRIO_PROCESS` with a thread id sets only it.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority only reads its integer arguments.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
