//! Facts about the host berthd runs on, and whether it can run containers.

use berth_shared::EngineMode;

#[derive(Clone, Debug)]
pub struct HostFacts {
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    pub architecture: String,
    pub hostname: String,
    pub ncpu: usize,
    pub mem_total: u64,
}

impl HostFacts {
    pub fn read() -> Self {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
        };
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let arch = std::env::consts::ARCH;
        HostFacts {
            kernel_version: field(|u| u.release()),
            operating_system: {
                let pretty = os_field("PRETTY_NAME");
                if pretty.is_empty() {
                    "Linux".into()
                } else {
                    pretty
                }
            },
            os_version: os_field("VERSION_ID"),
            // Docker reports Go's names: amd64, arm64.
            architecture: match arch {
                "x86_64" => "x86_64".into(),
                "aarch64" => "aarch64".into(),
                other => other.into(),
            },
            hostname: field(|u| u.nodename()),
            ncpu: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            mem_total,
        }
    }

    /// Go's GOARCH for this machine, as `docker version` prints it.
    pub fn goarch() -> &'static str {
        match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
}

/// Can this process run real containers? Root, and able to make the
/// namespaces a container needs. The probe unshares in a throwaway thread,
/// so the daemon's own threads stay where they are.
pub fn probe_engine() -> (EngineMode, Option<String>) {
    if !nix::unistd::geteuid().is_root() {
        return (EngineMode::Unavailable, Some("berthd is not running as root".into()));
    }
    let probe = std::thread::spawn(|| {
        use nix::sched::{unshare, CloneFlags};
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
    });
    match probe.join() {
        Ok(Ok(())) => (EngineMode::Live, None),
        Ok(Err(e)) => (EngineMode::Unavailable, Some(format!("cannot create namespaces here: {e}"))),
        Err(_) => (EngineMode::Unavailable, Some("namespace probe panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_name_the_kernel_and_count_cpus_and_memory() {
        let f = HostFacts::read();
        assert!(!f.kernel_version.is_empty());
        assert!(f.ncpu >= 1);
        assert!(f.mem_total > 0);
    }
}
