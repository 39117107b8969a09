//! Fault injection for the crash tests: `BERTH_FAULT=<point>` makes berthd
//! kill itself with SIGKILL when it reaches that point (as a power cut or an
//! OOM kill would end it), so a test can check what the next berthd makes of
//! what was left half done. Unset, a point costs one environment lookup.
//!
//! The points (`point("…")` calls): start.mounted, start.joined,
//! start.cgroups, start.launched, stop.signalled,
//! rm.unmounted, exec.launched, pull.unpacked, build.copying, build.running,
//! and plan.step before each step of a plan the Linux host performs —
//! e2e/tests/e2e/crash.rs kills berthd at each.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How often the named point was reached (one point is named a process).
static REACHED: AtomicUsize = AtomicUsize::new(0);

/// Dies here if the environment names this point: `<point>` the first time
/// it is reached, `<point>:<n>` the n-th time (`plan.step:3`: before the
/// third plan step this berthd performs).
pub fn point(name: &str) {
    let Ok(fault) = std::env::var("BERTH_FAULT") else { return };
    let (at, nth) = match fault.split_once(':') {
        Some((at, n)) => (at, n.parse().unwrap_or(1)),
        None => (fault.as_str(), 1),
    };
    if at == name && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        tracing::warn!(point = name, nth, "BERTH_FAULT: killing berthd here");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
