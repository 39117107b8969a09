//! The suite-level leak check.
//!
//!   berth-leakcheck snapshot FILE          record the root namespace
//!   berth-leakcheck compare FILE [OWNER]   fail (exit 1) on any difference;
//!                                          OWNER is the pid whose leftover
//!                                          descendants count as leaks
//!   berth-leakcheck sweep                  remove sandboxes of dead test runs

use std::process::ExitCode;

use berth_e2e::leak::Snapshot;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["snapshot", file] => {
            let snap = Snapshot::take();
            let json = serde_json::to_string(&snap).unwrap_or_default();
            if let Err(e) = std::fs::write(file, json) {
                eprintln!("berth-leakcheck: writing {file}: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        ["compare", file, rest @ ..] => {
            let owner = rest.first().and_then(|p| p.parse().ok());
            let before: Snapshot = match std::fs::read_to_string(file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("berth-leakcheck: reading {file}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // Processes may take a moment to be reaped after the last test.
            let mut leaks = Snapshot::take().leaks_since(&before, owner);
            for _ in 0..20 {
                if leaks.is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
                leaks = Snapshot::take().leaks_since(&before, owner);
            }
            if leaks.is_empty() {
                println!("leak check: root namespace unchanged (links, addresses, routes, mounts, rules, namespaces, cgroups, processes)");
                ExitCode::SUCCESS
            } else {
                eprintln!("leak check FAILED: the test run changed the root namespace:\n{leaks}");
                ExitCode::FAILURE
            }
        }
        ["sweep"] => {
            for name in berth_e2e::sandbox::sweep_stale() {
                println!("removed stale sandbox {name}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: berth-leakcheck snapshot FILE | compare FILE [OWNER_PID] | sweep");
            ExitCode::from(2)
        }
    }
}
