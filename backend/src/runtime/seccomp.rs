//! Docker's default seccomp policy, as BPF programs the container's helper
//! installs just before it drops its capabilities (so `docker exec`
//! processes get the same).
//!
//! What the policy decides is pure and tested here: every syscall of the
//! native ABI is allowed except those Docker's default profile leaves out —
//! the ones no container needs (`keyctl`, `add_key`, `request_key`,
//! `kexec_*`, `io_uring_*`, obsolete calls) and the ones a capability the
//! container does not hold would be needed for (`mount`, `unshare`, `setns`
//! need CAP_SYS_ADMIN; `reboot` CAP_SYS_BOOT; `init_module` CAP_SYS_MODULE;
//! …) — and `clone` with namespace flags without CAP_SYS_ADMIN, `socket`
//! for AF_VSOCK, `personality` beyond Docker's five personas; `clone3`
//! answers ENOSYS so C libraries fall back to `clone`, whose flags can be
//! checked. Denied calls fail with EPERM, as Docker's do.
//!
//! Three programs, because one seccomp filter has one "match" action:
//! the ABI guard (another architecture's, or the x32 ABI's, numbering would
//! dodge a list keyed by number: they are refused), the EPERM list, and
//! `clone3`'s ENOSYS. The kernel applies the strictest answer of all.
//! seccompiler builds the last two; the guard is six instructions.

use std::collections::BTreeMap;

use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

/// One classic-BPF instruction: (code, jt, jf, k).
pub type Insn = (u16, u8, u8, u32);

/// The seccomp side of a container's confinement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Docker's default policy.
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`, or `--privileged`.
    Unconfined,
}

/// Reads `--security-opt seccomp=…` (the CLI sends a profile file's JSON
/// content after `seccomp=`; berth has only the default and unconfined).
pub fn profile(security_opts: &[String], privileged: bool) -> Result<Profile, String> {
    let mut p = if privileged { Profile::Unconfined } else { Profile::Default };
    for opt in security_opts {
        let Some(v) = opt.strip_prefix("seccomp=").or_else(|| opt.strip_prefix("seccomp:")) else { continue };
        match v {
            "unconfined" => p = Profile::Unconfined,
            "builtin" | "default" if !privileged => p = Profile::Default,
            "builtin" | "default" => {}
            _ => return Err("berth does not support a custom seccomp profile (--security-opt seccomp=<file>) yet".into()),
        }
    }
    Ok(p)
}

/// Syscalls denied whatever the capabilities.
fn always_denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_add_key,
        libc::SYS_keyctl,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        174, // create_module (libc has no constant: the kernel long dropped it)
        177, // get_kernel_syms
        178, // query_module
        libc::SYS_nfsservctl,
        libc::SYS_uselib,
        libc::SYS_ustat,
        libc::SYS_sysfs,
        libc::SYS__sysctl,
        libc::SYS_afs_syscall,
        libc::SYS_tuxcall,
        libc::SYS_security,
        libc::SYS_vserver,
        libc::SYS_getpmsg,
        libc::SYS_putpmsg,
    ]);
    v
}

/// Syscalls allowed only with one of these capabilities (Docker's
/// `includes.caps`).
fn gated() -> Vec<(&'static [&'static str], Vec<i64>)> {
    #[allow(unused_mut)]
    let mut sys_admin = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_pivot_root,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_quotactl,
        libc::SYS_lookup_dcookie,
        libc::SYS_fanotify_init,
        libc::SYS_name_to_handle_at,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_quotactl_fd,
    ];
    #[allow(unused_mut)]
    let mut rawio: Vec<i64> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        rawio.extend([libc::SYS_iopl, libc::SYS_ioperm]);
        sys_admin.push(libc::SYS_modify_ldt);
    }
    vec![
        (&["CAP_SYS_ADMIN"][..], sys_admin),
        (&["CAP_SYS_ADMIN", "CAP_BPF"][..], vec![libc::SYS_bpf]),
        (&["CAP_SYS_ADMIN", "CAP_PERFMON"][..], vec![libc::SYS_perf_event_open]),
        (&["CAP_SYS_BOOT"][..], vec![libc::SYS_reboot, libc::SYS_kexec_load, libc::SYS_kexec_file_load]),
        (&["CAP_SYS_MODULE"][..], vec![libc::SYS_init_module, libc::SYS_finit_module, libc::SYS_delete_module]),
        (&["CAP_SYS_PACCT"][..], vec![libc::SYS_acct]),
        (
            &["CAP_SYS_PTRACE"][..],
            vec![
                libc::SYS_kcmp,
                libc::SYS_pidfd_getfd,
                libc::SYS_process_madvise,
                libc::SYS_process_vm_readv,
                libc::SYS_process_vm_writev,
                libc::SYS_userfaultfd,
            ],
        ),
        (&["CAP_SYS_RAWIO"][..], rawio),
        (&["CAP_SYS_TIME"][..], vec![libc::SYS_settimeofday, libc::SYS_clock_settime, libc::SYS_clock_adjtime]),
        (&["CAP_SYS_NICE"][..], vec![libc::SYS_get_mempolicy, libc::SYS_mbind, libc::SYS_set_mempolicy, libc::SYS_move_pages]),
        (&["CAP_SYSLOG"][..], vec![libc::SYS_syslog]),
        (&["CAP_SYS_TTY_CONFIG"][..], vec![libc::SYS_vhangup]),
        (&["CAP_SYS_CHROOT"][..], vec![libc::SYS_chroot]),
        (&["CAP_DAC_READ_SEARCH"][..], vec![libc::SYS_open_by_handle_at]),
    ]
}

/// The syscalls denied outright to a container with these capabilities.
pub fn denied(caps: &[String]) -> Vec<i64> {
    let has = |names: &[&str]| names.iter().any(|n| caps.iter().any(|c| c == n));
    let mut out = always_denied();
    for (names, calls) in gated() {
        if !has(names) {
            out.extend(calls);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The namespace flags of clone(2): CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
/// NEWUSER, NEWPID, NEWNET (and NEWTIME, which shares a bit with CSIGNAL
/// in clone's flags, so it is left to unshare's denial).
const CLONE_NAMESPACES: [u64; 7] = [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000];
/// `personality` values Docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
const AF_VSOCK: u64 = 40;

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, v).map_err(|e| e.to_string())
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conds).map_err(|e| e.to_string())
}

#[cfg(target_arch = "x86_64")]
const ARCH: (TargetArch, u32) = (TargetArch::x86_64, 0xc000_003e);
#[cfg(target_arch = "aarch64")]
const ARCH: (TargetArch, u32) = (TargetArch::aarch64, 0xc000_00b7);

/// Native syscall numbers are below this (x86_64's reach the 460s; the x32
/// ABI sets bit 30).
const NR_LIMIT: u32 = 512;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// The ABI guard: another architecture or a number past the native table
/// (the x32 ABI) gets EPERM.
fn abi_guard() -> Vec<Insn> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JGE_K: u16 = 0x35;
    const RET_K: u16 = 0x06;
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    vec![
        (LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        (JEQ_K, 1, 0, ARCH.1),
        (RET_K, 0, 0, eperm),
        (LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        (JGE_K, 0, 1, NR_LIMIT),
        (RET_K, 0, 0, eperm),
        (RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, on_match: SeccompAction) -> Result<Vec<Insn>, String> {
    let f = SeccompFilter::new(rules, SeccompAction::Allow, on_match, ARCH.0).map_err(|e| e.to_string())?;
    let p: seccompiler::BpfProgram = f.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
    Ok(p.into_iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
}

/// The programs for a container with these capabilities (empty when
/// unconfined), in the order they are installed.
pub fn programs(profile: &Profile, caps: &[String]) -> Result<Vec<Vec<Insn>>, String> {
    if *profile == Profile::Unconfined {
        return Ok(Vec::new());
    }
    let sys_admin = caps.iter().any(|c| c == "CAP_SYS_ADMIN");
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = denied(caps).into_iter().map(|n| (n, Vec::new())).collect();
    if !sys_admin {
        // clone with any namespace flag (its flags are the first argument
        // on x86_64 and arm64 alike).
        let rules = CLONE_NAMESPACES
            .iter()
            .map(|bit| rule(vec![cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*bit), *bit)?]))
            .collect::<Result<Vec<_>, String>>()?;
        eperm.insert(libc::SYS_clone, rules);
    }
    let persona = PERSONAS.iter().map(|p| cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *p)).collect::<Result<Vec<_>, String>>()?;
    eperm.insert(libc::SYS_personality, vec![rule(persona)?]);
    eperm.insert(libc::SYS_socket, vec![rule(vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, AF_VSOCK)?])?]);
    let mut out = vec![abi_guard(), compile(eperm, SeccompAction::Errno(libc::EPERM as u32))?];
    if !sys_admin {
        out.push(compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), SeccompAction::Errno(libc::ENOSYS as u32))?);
    }
    Ok(out)
}

/// What `docker info` says of seccomp here.
pub fn info_option() -> &'static str {
    "name=seccomp,profile=builtin"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Runs a program on one syscall, as the kernel would (the instructions
    /// seccompiler and the guard emit: loads, jumps, returns, ALU and).
    fn run(p: &[Insn], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = vec![nr as u32, arch, 0, 0];
        for a in args {
            data.push(a as u32);
            data.push((a >> 32) as u32);
        }
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let mut mem = [0u32; 16];
        loop {
            let (code, jt, jf, k) = p[pc];
            pc += 1;
            match code {
                0x20 => a = data[k as usize / 4],
                0x00 => a = k,
                0x01 => x = k,
                0x02 => mem[k as usize] = a,
                0x60 => a = mem[k as usize],
                0x54 => a &= k,
                0x05 => pc += k as usize,
                0x15 => pc += if a == k { jt } else { jf } as usize,
                0x25 => pc += if a > k { jt } else { jf } as usize,
                0x35 => pc += if a >= k { jt } else { jf } as usize,
                0x45 => pc += if a & k != 0 { jt } else { jf } as usize,
                0x06 => return k,
                0x16 => return a,
                c => panic!("unexpected BPF opcode {c:#x} (x={x})"),
            }
        }
    }

    /// The kernel's answer across all programs: the strictest.
    fn verdict(progs: &[Vec<Insn>], nr: i64, args: [u64; 6]) -> u32 {
        progs
            .iter()
            .map(|p| run(p, ARCH.1, nr, args))
            .min_by_key(|r| match r & 0xffff_0000 {
                0x7fff_0000 => 3u8, // allow
                0x0005_0000 => 1,   // errno
                _ => 0,             // kill
            })
            .unwrap()
    }

    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn the_default_profile_denies_what_dockers_does_and_allows_the_rest() {
        let docker_caps = caps(crate::runtime::spec::DEFAULT_CAPS);
        let p = programs(&Profile::Default, &docker_caps).unwrap();
        let z = [0u64; 6];
        for nr in
            [libc::SYS_keyctl, libc::SYS_add_key, libc::SYS_unshare, libc::SYS_mount, libc::SYS_setns, libc::SYS_reboot, libc::SYS_bpf]
        {
            assert_eq!(verdict(&p, nr, z), EPERM, "syscall {nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_chroot,
            libc::SYS_ptrace,
            libc::SYS_capset,
            libc::SYS_setuid,
        ] {
            assert_eq!(verdict(&p, nr, z), SECCOMP_RET_ALLOW, "syscall {nr}");
        }
        // clone: threads and forks yes, new namespaces no; clone3 falls back.
        let thread = 0x003d_0f00u64; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
        assert_eq!(verdict(&p, libc::SYS_clone, [thread, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&p, libc::SYS_clone, [0x1000_0000 | 17, 0, 0, 0, 0, 0]), EPERM, "CLONE_NEWUSER");
        assert_eq!(verdict(&p, libc::SYS_clone3, z), SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        // personality and socket by argument.
        assert_eq!(verdict(&p, libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&p, libc::SYS_personality, [0x0040_0000, 0, 0, 0, 0, 0]), EPERM, "READ_IMPLIES_EXEC");
        assert_eq!(verdict(&p, libc::SYS_socket, [libc::AF_INET as u64, 1, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&p, libc::SYS_socket, [40, 1, 0, 0, 0, 0]), EPERM, "AF_VSOCK");
        // Numbers past the native table (the x32 ABI's) and other ABIs.
        assert_eq!(verdict(&p, libc::SYS_mount | 0x4000_0000, z), EPERM);
        assert_eq!(run(&p[0], 0x4000_0003, 21, z), EPERM, "i386's mount");
    }

    #[test]
    fn capabilities_unlock_what_they_gate_and_unconfined_has_no_program() {
        let admin = programs(&Profile::Default, &caps(&["CAP_SYS_ADMIN"])).unwrap();
        let z = [0u64; 6];
        assert_eq!(verdict(&admin, libc::SYS_mount, z), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&admin, libc::SYS_unshare, z), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&admin, libc::SYS_clone, [0x1000_0000 | 17, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&admin, libc::SYS_clone3, z), SECCOMP_RET_ALLOW);
        assert_eq!(verdict(&admin, libc::SYS_keyctl, z), EPERM, "no capability unlocks keyctl");
        assert_eq!(verdict(&admin, libc::SYS_reboot, z), EPERM);
        assert!(!denied(&caps(&["CAP_SYS_TIME"])).contains(&libc::SYS_clock_settime));
        assert!(denied(&caps(&[])).contains(&libc::SYS_chroot));
        assert!(programs(&Profile::Unconfined, &[]).unwrap().is_empty());
    }

    #[test]
    fn security_opts_pick_the_profile() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(profile(&o(&[]), false), Ok(Profile::Default));
        assert_eq!(profile(&o(&["seccomp=unconfined"]), false), Ok(Profile::Unconfined));
        assert_eq!(profile(&o(&["seccomp:unconfined", "no-new-privileges"]), false), Ok(Profile::Unconfined));
        assert_eq!(profile(&o(&[]), true), Ok(Profile::Unconfined));
        assert!(profile(&o(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]), false).unwrap_err().contains("custom seccomp profile"));
    }
}
