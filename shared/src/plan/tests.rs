//! Plans against a recording host that fails where told: whatever fails,
//! the state (changed only by the events `execute` tells) says exactly what
//! the host holds — no rule, port, endpoint or mount more or less.

use std::collections::BTreeSet;

use super::*;
use crate::state::apply;

/// A host that keeps what it holds, and fails the steps it is told to (by
/// their number in the order they are performed, undoing included).
#[derive(Default)]
struct FakeHost {
    rules: BTreeSet<(String, String)>,
    ports: BTreeSet<u16>,
    endpoints: BTreeSet<String>,
    netns: BTreeSet<String>,
    mounts: BTreeSet<String>,
    performed: Vec<Step>,
    fail: BTreeSet<usize>,
}

impl Host for FakeHost {
    type Error = String;
    async fn perform(&mut self, step: &Step) -> Result<Vec<Event>, String> {
        let n = self.performed.len();
        self.performed.push(step.clone());
        if self.fail.contains(&n) {
            return Err(format!("step {n} failed"));
        }
        let key = |r: &Rule| (r.table.to_string(), r.text());
        let fresh = match step {
            Step::Announce(_) => true,
            Step::MountOverlay { merged, .. } => self.mounts.insert(merged.clone()),
            Step::UnmountOverlay { merged, .. } => self.mounts.remove(merged),
            Step::AddRule(r) => self.rules.insert(key(r)),
            Step::DeleteRule(r) => self.rules.remove(&key(r)),
            Step::Publish { map, .. } => self.ports.insert(map.host_port),
            Step::Unpublish { map, .. } => self.ports.remove(&map.host_port),
            // Into a namespace that is there only.
            Step::AttachEndpoint(a) => self.netns.contains(&a.netns) && self.endpoints.insert(a.host_if.clone()),
            Step::DetachEndpoint { host_if, .. } => self.endpoints.remove(host_if),
            Step::CreateNetns { path, .. } => self.netns.insert(path.clone()),
            Step::Signal { .. } | Step::CreateVolume { .. } | Step::RemoveVolume { .. } => true,
            Step::RemoveContainer { dirs, .. } => dirs.iter().all(|d| !self.mounts.iter().any(|m| m.starts_with(d.as_str()))),
            Step::RemoveNetns { path, .. } => self.netns.remove(path),
        };
        // As the kernel: taking away what is not there fails (ENOENT), and
        // so does adding what is (EEXIST).
        if !fresh {
            return Err(format!("step {n}: nothing to do for {step:?}"));
        }
        Ok(Vec::new())
    }
}

const ID: &str = "c0ffee";

fn map(host_port: u16, container_port: u16) -> PortMap {
    PortMap { proto: "tcp".into(), host_ip: Ipv4Addr::UNSPECIFIED, host_port, container_ip: Ipv4Addr::new(172, 17, 0, 2), container_port }
}

fn layer() -> RwLayer {
    RwLayer {
        lower: vec!["/d/overlay2/l1/diff".into()],
        upper: format!("/d/overlay2/{ID}/diff"),
        work: format!("/d/overlay2/{ID}/work"),
        merged: format!("/d/overlay2/{ID}/merged"),
    }
}

/// A state and a host with container ID created and its root mounted, as a
/// start leaves them before it joins its networks.
fn mounted() -> (State, FakeHost) {
    let mut s = State::default();
    apply(
        &mut s,
        &Event::ContainerCreated {
            id: ID.into(),
            name: "web".into(),
            image: "nginx:alpine".into(),
            image_id: "sha256:1".into(),
            command: vec!["nginx".into()],
            layer: layer(),
            mounts: Vec::new(),
            labels: Default::default(),
        },
    );
    let mut host = FakeHost::default();
    execute_now(&mut host, &Plan::whole(vec![mount_root(ID, &layer())]), &mut |e| apply(&mut s, &e)).unwrap();
    host.performed.clear();
    (s, host)
}

/// As [`mounted`], with an endpoint on docker0 (in namespace
/// /run/netns/ID), as a start leaves them before its ports are published.
fn started() -> (State, FakeHost) {
    let (mut s, mut host) = mounted();
    attach(&mut s, &mut host, ("bridge", "docker0"), ("veth1234567", "eth0"), "172.17.0.2");
    host.netns.insert(format!("/run/netns/{ID}"));
    (s, host)
}

/// Endpoint `i` of container ID as decided (eth`i`, on network net`i`; the
/// first is on docker0 and holds the default route).
fn endpoint(i: u8) -> Attachment {
    let (network, bridge) = if i == 0 { ("bridge".to_string(), "docker0".to_string()) } else { (format!("net{i}"), format!("br-{i}")) };
    Attachment {
        id: ID.into(),
        network,
        bridge,
        netns: format!("/run/netns/{ID}"),
        ifname: format!("eth{i}"),
        host_if: format!("veth000000{i}"),
        ip: Ipv4Addr::new(172, 17 + i, 0, 2),
        prefix: 16,
        gateway: Ipv4Addr::new(172, 17 + i, 0, 1),
        mac: format!("02:42:ac:{:02x}:00:02", 17 + i),
        default_route: i == 0,
        ip6: None,
        gateway6: None,
        link_local: Vec::new(),
    }
}

/// Container ID joins `network` (on `bridge`) with a pair `host_if`/`ifname`
/// and address `ip` (a /16 or /24 with the network's .1 as gateway).
fn attach(s: &mut State, host: &mut FakeHost, (network, bridge): (&str, &str), (host_if, ifname): (&str, &str), ip: &str) {
    let gateway = format!("{}.1", ip.rsplit_once('.').map_or(ip, |(net, _)| net));
    apply(
        s,
        &Event::EndpointAttached {
            id: ID.into(),
            network: network.into(),
            bridge: bridge.into(),
            host_if: host_if.into(),
            ifname: ifname.into(),
            ip: ip.into(),
            prefix: if bridge == "docker0" { 16 } else { 24 },
            mac: "02:42:ac:11:00:02".into(),
            gateway,
            netns: format!("/run/netns/{ID}"),
            ip6: None,
        },
    );
    host.endpoints.insert(host_if.into());
}

/// The state says what the host holds.
fn assert_truthful(s: &State, host: &FakeHost, what: &str) {
    let rules: BTreeSet<(String, String)> = s.rules.iter().cloned().collect();
    assert_eq!(rules, host.rules, "{what}: rules");
    let c = &s.containers[ID];
    let ports: BTreeSet<u16> = c.ports.iter().map(|p| p.host_port).collect();
    assert_eq!(ports, host.ports, "{what}: ports");
    let endpoints: BTreeSet<String> = c.endpoints.values().map(|e| e.host_if.clone()).collect();
    assert_eq!(endpoints, host.endpoints, "{what}: endpoints");
    assert_eq!(c.mounted, host.mounts.contains(&c.layer.merged), "{what}: the root");
}

#[test]
fn a_publish_is_each_ports_three_rules_then_the_port_and_exit_undoes_it_in_berthds_order() {
    let (mut s, mut host) = started();
    let plan = Plan::whole(publish(ID, "docker0", &[map(8081, 80)]));
    let texts: Vec<String> = plan.steps.iter().filter_map(|st| st.event()).map(|e| format!("{e:?}")).collect();
    assert_eq!(texts.len(), 4);
    assert!(texts[0].contains("filter") && texts[0].contains("-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0"), "{texts:?}");
    assert!(texts[2].contains("--dport 8081 -j DNAT --to-destination 172.17.0.2:80"), "{texts:?}");
    assert!(texts[3].starts_with("PortPublished"), "{texts:?}");
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert_truthful(&s, &host, "published");
    assert_eq!(s.containers[ID].ports.len(), 1);

    let mut told = Vec::new();
    execute_now(&mut host, &exit(&s, ID, 137, None), &mut |e| {
        told.push(e.clone());
        apply(&mut s, &e)
    })
    .unwrap();
    let kinds: Vec<&str> = told
        .iter()
        .map(|e| match e {
            Event::ContainerExited { .. } => "die",
            Event::RuleRemoved { .. } => "rule",
            Event::PortUnpublished { .. } => "port",
            Event::EndpointDetached { .. } => "endpoint",
            Event::OverlayUnmounted { .. } => "root",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["die", "rule", "rule", "rule", "port", "endpoint", "root"]);
    assert!(matches!(host.performed.iter().rev().nth(1), Some(Step::RemoveNetns { path, .. }) if path.ends_with(ID)));
    assert_truthful(&s, &host, "exited");
    assert!(host.rules.is_empty() && host.netns.is_empty() && host.mounts.is_empty());
    assert_eq!(s.containers[ID].exit_code, Some(137));
}

#[test]
fn a_publish_that_fails_anywhere_undoes_itself_and_the_state_tells_what_the_host_kept() {
    // Every way a publish of one to four ports can fail: at each step, and
    // at each step with one of its undoing steps failing too.
    let mut runs = 0;
    for n in 1..=4u16 {
        let maps: Vec<PortMap> = (0..n).map(|i| map(8080 + i, 80 + i)).collect();
        let plan = Plan::whole(publish(ID, "docker0", &maps));
        for fail_at in 0..plan.steps.len() {
            // The undo of `fail_at` done steps are performed after it.
            for undo_fail in std::iter::once(None).chain((fail_at + 1..=2 * fail_at).map(Some)) {
                let (mut s, mut host) = started();
                host.fail = [fail_at].into_iter().chain(undo_fail).collect();
                let r = execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e));
                let failed = r.expect_err("a failed step fails the plan");
                assert_eq!(failed.failures.len(), 1 + usize::from(undo_fail.is_some()));
                let what = format!("{n} ports, failing at {fail_at}, undo failing at {undo_fail:?}");
                assert_truthful(&s, &host, &what);
                if undo_fail.is_none() {
                    assert!(host.rules.is_empty() && host.ports.is_empty(), "{what}: not all undone");
                }
                // The exit takes what the state knows of: all of it when the
                // undoing went through. A rule whose undoing failed has no
                // port left to lead to: it stays, listed as berth's, until
                // berthd's start clears stale port rules.
                let _ = execute_now(&mut host, &exit(&s, ID, 1, None), &mut |e| apply(&mut s, &e));
                assert_truthful(&s, &host, &format!("{what}, then exited"));
                assert!(host.ports.is_empty() && host.mounts.is_empty(), "{what}: leaked");
                assert!(host.rules.len() <= usize::from(undo_fail.is_some()), "{what}: leaked {:?}", host.rules);
                runs += 1;
            }
        }
    }
    assert!(runs > 150, "{runs}");
}

#[test]
fn a_teardown_that_fails_anywhere_does_the_rest_and_leaves_the_state_truthful() {
    let mut runs = 0;
    for n in 0..=3u16 {
        let maps: Vec<PortMap> = (0..n).map(|i| map(9000 + i, 80 + i)).collect();
        let steps = {
            let (mut s, mut host) = started();
            execute_now(&mut host, &Plan::whole(publish(ID, "docker0", &maps)), &mut |e| apply(&mut s, &e)).unwrap();
            exit(&s, ID, 0, None).steps.len()
        };
        for fail_a in 0..steps {
            for fail_b in std::iter::once(None).chain((fail_a + 1..steps).map(Some)) {
                let (mut s, mut host) = started();
                execute_now(&mut host, &Plan::whole(publish(ID, "docker0", &maps)), &mut |e| apply(&mut s, &e)).unwrap();
                host.performed.clear();
                host.fail = [fail_a].into_iter().chain(fail_b).collect();
                let plan = exit(&s, ID, 0, None);
                let failed = execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).expect_err("a failed step is reported");
                // Best effort: every step was tried.
                assert_eq!(host.performed.len(), plan.steps.len());
                assert_eq!(failed.failures.len(), 1 + usize::from(fail_b.is_some()));
                assert_truthful(&s, &host, &format!("{n} ports, failing at {fail_a} and {fail_b:?}"));
                runs += 1;
            }
        }
    }
    assert!(runs > 150, "{runs}");
}

#[test]
fn leaving_one_network_takes_only_the_ports_that_lead_to_it_and_deletes_its_pair() {
    let (mut s, mut host) = started();
    execute_now(&mut host, &Plan::whole(publish(ID, "docker0", &[map(8081, 80)])), &mut |e| apply(&mut s, &e)).unwrap();
    attach(&mut s, &mut host, ("labnet", "br-0123456789ab"), ("veth7654321", "eth1"), "10.1.0.2");
    let plan = leave(&s, ID, "labnet");
    assert_eq!(
        plan.steps,
        vec![Step::DetachEndpoint {
            id: ID.into(),
            network: "labnet".into(),
            host_if: "veth7654321".into(),
            ip: "10.1.0.2".into(),
            ip6: None,
            keep_link: false
        }]
    );
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert_truthful(&s, &host, "left labnet");
    let plan = leave(&s, ID, "bridge");
    assert_eq!(plan.steps.len(), 5, "three rules, the port, the endpoint: {plan:?}");
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert_truthful(&s, &host, "left bridge");
    assert!(leave(&s, ID, "bridge").steps.is_empty(), "nothing left to leave");
}

#[test]
fn a_plan_interrupted_anywhere_is_taken_back_by_its_undoing_read_from_json() {
    // A crash after any number of a publish's steps (no undo ran): the
    // journal, read back, undoes what was done; what was not is skipped.
    let maps = [map(8081, 80), map(8443, 443)];
    let plan = Plan::whole(publish(ID, "docker0", &maps));
    let journal: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
    assert_eq!(journal, plan);
    for done in 0..=plan.steps.len() {
        let (mut s, mut host) = started();
        let partial = Plan::whole(plan.steps[..done].to_vec());
        execute_now(&mut host, &partial, &mut |e| apply(&mut s, &e)).unwrap();
        let _ = execute_now(&mut host, &journal.undoing(), &mut |e| apply(&mut s, &e));
        assert!(host.rules.is_empty() && host.ports.is_empty(), "{done} steps done: {:?}", host.rules);
        assert_truthful(&s, &host, &format!("{done} steps done, then undone"));
    }
}

#[test]
fn a_join_is_the_namespace_then_each_endpoint_then_the_ports_and_exit_takes_it_all_apart() {
    let (mut s, mut host) = mounted();
    let eps = [endpoint(0), endpoint(1)];
    let maps = [PortMap { container_ip: eps[0].ip, ..map(8081, 80) }];
    let plan = join(ID, &eps[0].netns, &eps, &maps);
    assert!(matches!(&plan.steps[0], Step::CreateNetns { path, .. } if *path == eps[0].netns), "{plan:?}");
    assert!(matches!(&plan.steps[1], Step::AttachEndpoint(a) if a.ifname == "eth0" && a.default_route));
    assert!(matches!(&plan.steps[2], Step::AttachEndpoint(a) if a.ifname == "eth1" && !a.default_route));
    // The ports lead to the first endpoint, on its bridge.
    assert!(matches!(&plan.steps[3], Step::AddRule(r) if r.text().contains("-o docker0")), "{plan:?}");
    assert_eq!(plan.steps.len(), 3 + 4);
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert_truthful(&s, &host, "joined");
    let c = &s.containers[ID];
    assert_eq!(c.endpoints["net1"].ip, "172.18.0.2");
    assert_eq!(c.endpoints["bridge"].gateway, "172.17.0.1");
    execute_now(&mut host, &exit(&s, ID, 0, None), &mut |e| apply(&mut s, &e)).unwrap();
    assert_truthful(&s, &host, "exited");
    assert!(host.netns.is_empty() && host.rules.is_empty() && host.endpoints.is_empty() && host.mounts.is_empty());
}

#[test]
fn a_join_that_fails_anywhere_undoes_itself_and_the_state_tells_what_the_host_kept() {
    let mut runs = 0;
    for networks in 1..=3u8 {
        for ports in 0..=2u16 {
            let eps: Vec<Attachment> = (0..networks).map(endpoint).collect();
            let maps: Vec<PortMap> = (0..ports).map(|i| PortMap { container_ip: eps[0].ip, ..map(8080 + i, 80 + i) }).collect();
            let plan = join(ID, &eps[0].netns, &eps, &maps);
            for fail_at in 0..plan.steps.len() {
                for undo_fail in std::iter::once(None).chain((fail_at + 1..=2 * fail_at).map(Some)) {
                    let (mut s, mut host) = mounted();
                    host.fail = [fail_at].into_iter().chain(undo_fail).collect();
                    let failed = execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).expect_err("a failed step fails the plan");
                    let what = format!("{networks} networks, {ports} ports, failing at {fail_at}, undo failing at {undo_fail:?}");
                    assert_eq!(failed.failures.len(), 1 + usize::from(undo_fail.is_some()), "{what}");
                    assert_truthful(&s, &host, &what);
                    if undo_fail.is_none() {
                        assert!(
                            host.netns.is_empty() && host.endpoints.is_empty() && host.rules.is_empty() && host.ports.is_empty(),
                            "{what}: not all undone"
                        );
                    }
                    // What the state knows of goes with the exit (the
                    // namespace by the path the start kept).
                    let _ = execute_now(&mut host, &exit(&s, ID, 1, Some(&eps[0].netns)), &mut |e| apply(&mut s, &e));
                    assert_truthful(&s, &host, &format!("{what}, then exited"));
                    assert!(host.ports.is_empty() && host.mounts.is_empty(), "{what}: leaked");
                    runs += 1;
                }
            }
        }
    }
    assert!(runs > 250, "{runs}");
}

#[test]
fn an_interrupted_join_read_back_from_its_journal_leaves_nothing() {
    let eps = [endpoint(0), endpoint(1)];
    let maps = [PortMap { container_ip: eps[0].ip, ..map(8081, 80) }];
    let plan = join(ID, &eps[0].netns, &eps, &maps);
    let journal: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
    assert_eq!(journal, plan);
    for done in 0..=plan.steps.len() {
        let (mut s, mut host) = mounted();
        execute_now(&mut host, &Plan::whole(plan.steps[..done].to_vec()), &mut |e| apply(&mut s, &e)).unwrap();
        let _ = execute_now(&mut host, &journal.undoing(), &mut |e| apply(&mut s, &e));
        assert!(host.netns.is_empty() && host.endpoints.is_empty() && host.rules.is_empty(), "{done} steps done");
        assert_truthful(&s, &host, &format!("{done} steps done, then undone"));
    }
}

#[test]
fn a_start_tells_its_namespaces_then_start_and_a_host_network_container_has_no_net_namespace() {
    let kinds = |own: bool| match &super::started(ID, 42, own).steps[0] {
        Step::Announce(Event::NamespacesCreated { kinds, pid: 42, .. }) => kinds.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(kinds(true), ["mnt", "uts", "ipc", "pid", "net"]);
    assert_eq!(kinds(false), ["mnt", "uts", "ipc", "pid"]);
    assert!(matches!(super::started(ID, 42, true).steps[1], Step::Announce(Event::ContainerStarted { pid: 42, .. })));
}

#[test]
fn a_kill_is_refused_in_dockers_words_unless_the_container_runs_and_a_paused_one_takes_sigkill_only() {
    let (mut s, _) = started();
    assert_eq!(kill(&s, ID, 15), Err(Refused::Conflict(crate::container::refusal::kill_not_running(ID))), "created, never started");
    assert_eq!(kill(&s, "nope", 9), Err(Refused::NotFound(crate::container::refusal::no_such_container("nope"))));
    apply(&mut s, &Event::ContainerStarted { id: ID.into(), pid: 321 });
    let plan = kill(&s, ID, 15).unwrap();
    assert_eq!(plan.steps, vec![Step::Signal { id: ID.into(), pid: 321, signal: 15 }]);
    assert!(matches!(plan.steps[0].event(), Some(Event::ContainerRequest { signal: Some(15), ref action, .. }) if action == "kill"));
    apply(&mut s, &Event::ContainerPaused { id: ID.into() });
    assert_eq!(kill(&s, ID, 15), Err(Refused::Conflict(crate::container::refusal::kill_paused(ID))));
    assert!(kill(&s, ID, SIGKILL).is_ok());
    apply(&mut s, &Event::ContainerExited { id: ID.into(), exit_code: 137 });
    assert_eq!(kill(&s, ID, SIGKILL), Err(Refused::Conflict(crate::container::refusal::kill_not_running(ID))));
}

#[test]
fn a_removal_unmounts_a_root_the_state_says_is_mounted_before_deleting_its_layer_and_the_hosts_dirs() {
    let (mut s, mut host) = mounted();
    let plan = remove(&s, ID, vec!["/d/containers/c0ffee".into()]);
    assert!(matches!(&plan.steps[0], Step::UnmountOverlay { merged, .. } if merged.ends_with("/merged")));
    assert_eq!(
        plan.steps[1],
        Step::RemoveContainer { id: ID.into(), dirs: vec![format!("/d/overlay2/{ID}"), "/d/containers/c0ffee".into()] }
    );
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert!(host.mounts.is_empty() && !s.containers.contains_key(ID));
    // Unmounted already: the files only.
    let (mut s, mut host) = mounted();
    execute_now(&mut host, &exit(&s, ID, 0, None), &mut |e| apply(&mut s, &e)).unwrap();
    assert_eq!(remove(&s, ID, Vec::new()).steps.len(), 1);
}

#[test]
fn a_volume_is_made_once_and_removed_only_when_no_container_uses_it() {
    use crate::container::refusal;
    let (mut s, mut host) = mounted();
    let data = "/d/volumes/webvol/_data";
    let plan = create_volume(&s, "webvol", data, false);
    assert_eq!(plan.steps, vec![Step::CreateVolume { name: "webvol".into(), mountpoint: data.into(), anonymous: false }]);
    // Undone (its record could not be written): the whole volume dir goes.
    assert_eq!(plan.steps[0].undo(), Some(Step::RemoveVolume { name: "webvol".into(), dir: "/d/volumes/webvol".into() }));
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert!(create_volume(&s, "webvol", data, false).steps.is_empty(), "Docker's create is idempotent");
    assert_eq!(remove_volume(&s, "nope"), Err(Refused::NotFound(refusal::no_such_volume("nope"))));
    // A container that uses it, in any state, keeps it.
    apply(
        &mut s,
        &Event::ContainerCreated {
            id: "user".into(),
            name: "web".into(),
            image: "nginx:alpine".into(),
            image_id: "sha256:1".into(),
            command: Vec::new(),
            layer: layer(),
            mounts: vec![crate::Mount {
                kind: "volume".into(),
                name: "webvol".into(),
                source: data.into(),
                destination: "/usr/share/nginx/html".into(),
                readonly: false,
            }],
            labels: Default::default(),
        },
    );
    assert_eq!(remove_volume(&s, "webvol"), Err(Refused::Conflict(refusal::volume_in_use("webvol", &["user".to_string()]))));
    apply(&mut s, &Event::ContainerRemoved { id: "user".into() });
    let plan = remove_volume(&s, "webvol").unwrap();
    assert_eq!(plan.steps, vec![Step::RemoveVolume { name: "webvol".into(), dir: "/d/volumes/webvol".into() }]);
    execute_now(&mut host, &plan, &mut |e| apply(&mut s, &e)).unwrap();
    assert!(!s.volumes.contains_key("webvol"));
}
