//! The engine tier, between the unit tests and the e2e ones: berthd's
//! engine driven in-process, without HTTP or the docker CLI — pull, create,
//! start, kill, remove — inside a throwaway node1 (the e2e crate's
//! sandbox), checking at each step that the state the page sees says what
//! the kernel holds. Each test runs itself again inside the sandbox's
//! network and mount namespaces and cgroup; the sandbox, dropped even on
//! failure, takes every kernel object along.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_backend::engine::containers::Containers;
use berth_backend::engine::volumes::Volumes;
use berth_backend::error::ErrorKind;
use berth_backend::events::EventBus;
use berth_backend::image::pull::Puller;
use berth_backend::image::reference::ImageRef;
use berth_backend::image::store::ImageStore;
use berth_backend::network::Networks;
use berth_shared::{State, Status};
use serde_json::json;

/// Set (to the sandbox's dir) in the run inside the sandbox.
const INSIDE: &str = "BERTH_ENGINE_TIER_DIR";

/// Runs `body` inside a fresh sandbox with the fixture registry up: this
/// test binary, started again in there, runs the test `name` alone.
fn in_sandbox(name: &str, body: impl FnOnce(&Path)) {
    if let Ok(dir) = std::env::var(INSIDE) {
        return body(Path::new(&dir));
    }
    let mut sb = berth_e2e::sandbox::Sandbox::new().expect("a sandbox");
    sb.start_registry().expect("the fixture registry");
    let out = sb
        .command(std::env::current_exe().expect("this test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(INSIDE, sb.dir())
        .output()
        .expect("running the test inside the sandbox");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inside the sandbox:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run inside the sandbox:\n{text}");
}

/// The engine as berthd puts it together (daemon.rs), with its roots in
/// `dir` and alpine pulled from the fixture registry.
struct Engine {
    bus: Arc<EventBus>,
    images: Arc<ImageStore>,
    containers: Arc<Containers>,
    nets: Arc<Networks>,
    data: PathBuf,
}

async fn engine(dir: &Path) -> Engine {
    // The helper (`berthd __berth-init`) is berthd, not this test binary.
    berth_backend::runtime::process::set_helper(PathBuf::from(env!("CARGO_BIN_EXE_berthd")));
    let (data, run) = (dir.join("berth/data"), dir.join("berth/run"));
    for d in [&data, &run] {
        std::fs::create_dir_all(d).unwrap();
    }
    let bus = Arc::new(EventBus::new());
    let images = Arc::new(ImageStore::open(&data).unwrap());
    let puller = Puller::new(&["http://127.0.0.1:5000".to_string()], &[]);
    let r = ImageRef::parse("alpine").unwrap();
    let resolved = puller.resolve(&r).await.expect("alpine in the fixture registry");
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    puller.fetch(&images, &bus, &r, resolved, &tx).await.expect("pulling alpine");
    drop(tx);
    let _ = drain.await;
    let volumes = Arc::new(Volumes::open(&data, bus.clone()).unwrap());
    let containers = Arc::new(Containers::open(&data, &run, images.clone(), volumes, bus.clone()).unwrap());
    containers.recover().await;
    let nets = Arc::new(Networks::setup("docker0", "172.17.0.1/16", &run, &data, bus.clone()).await.expect("docker0"));
    containers.set_networks(nets.clone()).await;
    Engine { bus, images, containers, nets, data }
}

fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the kernel holds of a container with root `merged`, netns file
/// `netns` and host port `port`: (its overlay mounted, its netns file, a
/// rule for the port, veths on docker0).
fn kernel(merged: &str, netns: &Path, port: u16) -> (bool, bool, bool, usize) {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().any(|l| l.split(' ').nth(4) == Some(merged));
    let rules = sh("iptables-save").lines().any(|l| l.contains(&format!("--dport {port} ")));
    let veths = sh("ip -o link show master docker0").lines().filter(|l| l.contains("veth")).count();
    (mounted, netns.exists(), rules, veths)
}

fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(5), "waited 5 s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_joins_publishes_and_is_taken_apart_and_the_state_says_what_the_kernel_holds() {
    in_sandbox("a_run_joins_publishes_and_is_taken_apart_and_the_state_says_what_the_kernel_holds", |dir| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let e = engine(dir).await;
            let image = e.images.resolve("alpine").unwrap();
            let body = json!({
                "Image": "alpine",
                "Cmd": ["sleep", "600"],
                "ExposedPorts": {"80/tcp": {}},
                "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8096"}]}},
            });
            let c = e.containers.create(Some("engine-tier"), &body, &image, "alpine").unwrap();
            let merged = e.bus.with_state(|s: &State| s.containers[&c.id].layer.merged.clone());
            let netns = e.nets.sandbox_path(&c.id);

            // Started: root, namespace, endpoint and port, in the state and the kernel.
            e.containers.start(&c).await.unwrap();
            e.bus.with_state(|s: &State| {
                let st = &s.containers[&c.id];
                assert_eq!(st.status, Status::Running);
                assert!(st.mounted);
                assert_eq!(st.endpoints["bridge"].ip, "172.17.0.2");
                assert_eq!(st.endpoints["bridge"].netns, netns.display().to_string());
                assert_eq!(st.ports.iter().map(|p| (p.host_port, p.container_port)).collect::<Vec<_>>(), [(8096, 80)]);
                assert!(s.rules.iter().any(|(_, r)| r.contains("--dport 8096 ")), "{:#?}", s.rules);
            });
            assert_eq!(kernel(&merged, &netns, 8096), (true, true, true, 1));

            // Killed: the exit's plan took it all apart before the kill answered.
            e.containers.kill_locked(&c, "SIGKILL").await.unwrap();
            e.bus.with_state(|s: &State| {
                let st = &s.containers[&c.id];
                assert_eq!((st.status, st.exit_code), (Status::Exited, Some(137)));
                assert!(!st.mounted && st.endpoints.is_empty() && st.ports.is_empty());
                assert!(!s.rules.iter().any(|(_, r)| r.contains("--dport 8096 ")));
            });
            // (The veth pair goes with the namespace, a moment later.)
            until("the container's veth pair to go", || kernel(&merged, &netns, 8096) == (false, false, false, 0));
            let again = e.containers.kill_locked(&c, "SIGKILL").await.unwrap_err();
            assert_eq!(again.kind, ErrorKind::Conflict);
            assert_eq!(again.message, berth_shared::container::refusal::kill_not_running(&c.id));

            // Removed: its files go, and the state forgets it.
            e.containers.remove(&c, false, true).await.unwrap();
            assert!(!e.bus.with_state(|s: &State| s.containers.contains_key(&c.id)));
            assert!(!e.data.join("overlay2").join(&c.id).exists() && !e.data.join("containers").join(&c.id).exists());
            e.containers.shutdown().await;
        });
    });
}

#[test]
fn a_start_whose_join_fails_leaves_nothing_and_gives_its_address_back() {
    in_sandbox("a_start_whose_join_fails_leaves_nothing_and_gives_its_address_back", |dir| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let e = engine(dir).await;
            let image = e.images.resolve("alpine").unwrap();
            let body = json!({
                "Image": "alpine",
                "Cmd": ["sleep", "600"],
                "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8097"}]}},
            });
            let c = e.containers.create(Some("unjoinable"), &body, &image, "alpine").unwrap();
            let merged = e.bus.with_state(|s: &State| s.containers[&c.id].layer.merged.clone());
            // Its namespace cannot be made: a directory holds the file's place.
            let netns = e.nets.sandbox_path(&c.id);
            std::fs::create_dir_all(netns.join("in-the-way")).unwrap();
            let failed = e.containers.start(&c).await.unwrap_err();
            assert!(failed.message.contains("network namespace"), "{}", failed.message);
            e.bus.with_state(|s: &State| {
                let st = &s.containers[&c.id];
                assert_eq!((st.status, st.exit_code), (Status::Exited, Some(127)));
                assert!(!st.mounted && st.endpoints.is_empty() && st.ports.is_empty() && s.rules.iter().all(|(_, r)| !r.contains("8097")));
            });
            assert_eq!(kernel(&merged, Path::new("/nonexistent"), 8097), (false, false, false, 0));
            // Its port's proxy is gone, and so is its claim on 172.17.0.2
            // (the plan stopped before the endpoint): the next start has both.
            std::fs::remove_dir_all(&netns).unwrap();
            e.containers.start(&c).await.unwrap();
            assert_eq!(e.bus.with_state(|s: &State| s.containers[&c.id].endpoints["bridge"].ip.clone()), "172.17.0.2");
            assert_eq!(kernel(&merged, &netns, 8097), (true, true, true, 1));
            e.containers.remove(&c, true, true).await.unwrap();
            until("the container's veth pair to go", || kernel(&merged, &netns, 8097) == (false, false, false, 0));
            e.containers.shutdown().await;
        });
    });
}
