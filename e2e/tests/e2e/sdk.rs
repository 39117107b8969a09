//! Docker's Python SDK (the `docker` package, pinned by scripts/setup.sh)
//! drives berthd: e2e/sdk/python holds the tests, run with pytest inside a
//! sandboxed node1 against its berthd, pulling through the fixture registry.
//! The SDK reads fields and calls endpoints the docker CLI never touches
//! (issue 18): every test there must pass, as on Docker.
#![allow(clippy::unwrap_used)] // test code: a failed step should panic with its error

use berth_e2e::sandbox::{node1, out};
use berth_e2e::{repo_root, state_dir};

#[test]
fn the_python_sdks_calls_work_as_on_docker() {
    let python = state_dir().join("docker-sdk-venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh", python.display());
    let (sb, d) = node1().unwrap();
    let suite = repo_root().join("e2e/sdk/python");
    let o = sb
        .command(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", "-rfE"])
        .arg(&suite)
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
        panic!("the SDK suite failed:\n{text}\n--- the end of berthd's log ---\n{}", tail.join("\n"));
    }
    assert!(text.contains(" passed") && !text.contains(" failed"), "{text}");
}
