//! Fault injection for the crash tests: `BERTH_FAULT=<point>` makes berthd
//! kill itself with SIGKILL when it reaches that point (as a power cut or an
//! OOM kill would end it), so a test can check what the next berthd makes of
//! what was left half done. Unset, a point costs one environment lookup.
//!
//! The points (`point("…")` calls): start.mounted, start.netns, start.veth,
//! start.published, start.cgroups, start.launched, stop.signalled,
//! rm.unmounted, exec.launched, pull.unpacked, build.copying, build.running —
//! e2e/tests/e2e/crash.rs kills berthd at each.

/// Dies here if the environment names this point.
pub fn point(name: &str) {
    if std::env::var("BERTH_FAULT").is_ok_and(|f| f == name) {
        tracing::warn!(point = name, "BERTH_FAULT: killing berthd here");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
