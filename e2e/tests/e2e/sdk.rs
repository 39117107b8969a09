//! Docker's Python SDK (the `docker` package, pinned by scripts/setup.sh)
//! drives berthd: e2e/sdk/python holds the tests, run with pytest inside a
//! sandboxed node1 against its berthd, pulling through the fixture registry.
//! The SDK reads fields and calls endpoints the docker CLI never touches
//! (issue 18): every test there must pass, as on Docker.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out, Berthd, Sandbox};
use berth_e2e::{repo_root, state_dir};

/// Runs the suite inside `sb` against the daemon `d`; panics with its
/// output and the daemon's log if any test fails.
fn run_suite(sb: &Sandbox, d: &Berthd, api_version: &str) -> String {
    let python = state_dir().join("docker-sdk-venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let suite = repo_root().join("e2e/sdk/python");
    let o = sb
        .command(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", "-rfE"])
        .arg(&suite)
        .env("SDK_API_VERSION", api_version)
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = out(&o);
    eprintln!("{text}");
    if !o.status.success() {
        let log = d.log_text();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("the SDK suite failed:\n{text}\n--- the end of the daemon's log ---\n{}", tail.join("\n"));
    }
    assert!(text.contains(" passed") && !text.contains(" failed"), "{text}");
    text
}

#[test]
fn the_python_sdks_calls_work_as_on_docker() {
    let (sb, d) = node1().unwrap();
    run_suite(&sb, &d, "auto");
}

/// The suite again with the SDK pinned to API 1.41, as older SDKs speak:
/// berth answers each version as Docker did (the reference daemon below
/// speaks 1.41 too).
#[test]
fn the_python_sdk_at_api_1_41_works_as_on_docker() {
    let (sb, d) = node1().unwrap();
    run_suite(&sb, &d, "1.41");
}

/// The same suite against Docker itself (Debian's 20.10, beside berth in a
/// sandbox of its own): what the suite asserts is Docker's behaviour, not
/// berth's idea of it.
#[test]
fn the_python_sdk_suite_passes_on_docker_too() {
    let mut sb = Sandbox::new().unwrap();
    sb.start_registry().unwrap();
    let d = sb.start_reference_docker().unwrap();
    run_suite(&sb, &d, "auto");
}
