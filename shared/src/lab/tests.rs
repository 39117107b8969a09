//! The lab's format, each check kind against states built from events (the
//! simulator's, which are berthd's, and hand-made ones for what it cannot
//! reach), progress as events, and a walk of the whole lab in the simulator.

use super::*;
use crate::container::RwLayer;
use crate::event::{Envelope, Event, FileChangeKind, Mount};
use crate::sim::Sim;
use crate::state::{apply, State};

const T: u64 = 1_767_225_600_000;

fn lab() -> Lab {
    deploy_docker()
}

/// A page's view of the simulated node1: the sim's events applied, and the
/// lab's progress events after each batch, as the page will emit them.
struct Learner {
    sim: Sim,
    state: State,
    lab: Lab,
    progress: Vec<Event>,
}

impl Learner {
    fn new() -> Self {
        let sim = Sim::new(T);
        let state = sim.state.clone();
        let mut l = Learner { sim, state, lab: lab(), progress: Vec::new() };
        l.tick();
        l
    }
    fn tick(&mut self) {
        let evs = self.lab.tick(&self.state);
        for e in &evs {
            apply(&mut self.state, e);
        }
        assert!(self.lab.tick(&self.state).is_empty(), "tick is idempotent once its events are applied");
        self.progress.extend(evs);
    }
    fn take(&mut self, envs: Vec<Envelope>) {
        for e in &envs {
            apply(&mut self.state, &e.event);
        }
        self.tick();
    }
    fn event(&mut self, e: Event) {
        apply(&mut self.state, &e);
        self.tick();
    }
    fn run(&mut self, line: &str) -> String {
        let o = self.sim.run(line, T);
        let text = o.text.clone();
        self.take(o.events);
        if let Some((path, _)) = o.editor {
            // The learner edits in vi and saves.
            let evs = self.sim.save_file(&path, "<h1>Welcome to nginx-1!</h1>\n");
            self.take(evs);
        }
        text
    }
    fn statuses(&self) -> Vec<StepStatus> {
        self.lab.evaluate(&self.state)
    }
    fn state_of(&self, step: &str) -> StepState {
        self.statuses().into_iter().find(|s| s.step == step).map(|s| s.state).unwrap_or_else(|| panic!("no step {step}"))
    }
    fn completed(&self) -> Vec<String> {
        self.statuses().into_iter().filter(|s| s.completed).map(|s| s.step).collect()
    }
    fn codes(&self, step: &str) -> Vec<String> {
        let s = self.statuses().into_iter().find(|s| s.step == step).unwrap_or_else(|| panic!("no step {step}"));
        s.checks.iter().filter_map(|c| c.diagnosis.as_ref().map(|d| d.code.clone())).collect()
    }
    fn diagnosis(&self, step: &str, code: &str) -> Diagnosis {
        let s = self.statuses().into_iter().find(|s| s.step == step).unwrap_or_else(|| panic!("no step {step}"));
        s.checks
            .into_iter()
            .filter_map(|c| c.diagnosis)
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{step}: no {code} in {:?}", self.codes(step)))
    }
    fn container(&self, name: &str) -> crate::state::Container {
        self.state.containers.values().find(|c| c.name == name).cloned().unwrap_or_else(|| panic!("no container {name}"))
    }
}

fn eval(check: &Check, state: &State) -> Result<(), String> {
    check.evaluate(state).map_err(|d| d.code)
}

// ---- the format ----

#[test]
fn the_embedded_lab_parses_with_a_file_checks_hints_and_commands_for_every_step() {
    let lab = lab();
    assert_eq!(lab.id, "deploy-docker");
    assert_eq!(lab.title, "Deploy a service in a Docker container");
    assert_eq!(lab.steps.len(), 15);
    for s in &lab.steps {
        assert!(!s.checks.is_empty() && !s.hints.is_empty(), "{}", s.id);
        assert!(s.body.len() > 200, "{}: a step says what to do", s.id);
        assert!(s.code_blocks().iter().any(CodeBlock::runnable), "{}: a command to run", s.id);
    }
    // Every Markdown file of the lab's directory is embedded, and only those.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../labs/deploy-docker");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    on_disk.sort();
    let embedded: Vec<String> = DEPLOY_DOCKER_FILES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, embedded);
    let used: Vec<&str> = lab.steps.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(used, embedded.iter().map(String::as_str).collect::<Vec<_>>());
    // The same lab read from disk as from the embedded copy.
    let toml = std::fs::read_to_string(dir.join("lab.toml")).unwrap();
    let from_disk = Lab::parse(&toml, |f| std::fs::read_to_string(dir.join(f)).ok()).unwrap();
    assert_eq!(from_disk, lab);
}

#[test]
fn the_lab_covers_every_section_of_the_original_with_what_applies_on_node1() {
    let all: String = lab().steps.iter().flat_map(|s| s.code_blocks()).filter(|b| b.runnable()).map(|b| b.code).collect();
    for cmd in [
        "docker run hello-world",
        "docker pull alpine",
        "docker run alpine",
        "docker run --name alpine-shell -it --rm alpine",
        "traceroute 1.1.1.1",
        "exit",
        "ip addr show docker0",
        "docker network inspect bridge",
        "sudo iptables --list -n",
        "sudo iptables --list -n -t nat",
        "docker run --name nginx-demo -d --rm nginx:alpine",
        "docker logs nginx-demo",
        "docker image inspect nginx:alpine",
        "curl http://172.17.0.X/",
        "docker ps",
        "docker stop nginx-demo",
        "docker run --name nginx-public -d --rm -p 80:80 nginx:alpine",
        "curl http://A.B.C.D/",
        "docker run --name nginx-1 -d --rm nginx:alpine",
        "docker exec -it nginx-1 /bin/sh",
        "df",
        "jq -r '.[0].GraphDriver.Data.LowerDir'",
        "UPPERDIR=",
        "MERGED=",
        "vi /usr/share/nginx/html/index.html",
        "sudo cat \"$UPPERDIR/usr/share/nginx/html/index.html\"",
        "docker run --name nginx-2 -d --rm nginx:alpine",
        "docker volume create webvol",
        "docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine",
        "docker run --rm -it -v webvol:/data/web alpine",
        "docker container prune",
        "docker run --name nginx-bind -d --rm -v ~/data/web:/usr/share/nginx/html -p 80:80 nginx:alpine",
        "sudo vim ~/data/web/index.html",
        "docker build -t gourmetgram-app:0.0.1 gourmetgram",
        "docker run --name gourmetgram-app -d --rm -p 80:8000 gourmetgram-app:0.0.1",
    ] {
        assert!(all.contains(cmd), "the lab runs {cmd:?}");
    }
    // No lynx on node1 (curl instead), no floating IP (node1's own address).
    let text: String = lab().steps.iter().map(|s| s.body.clone()).collect();
    assert!(!text.contains("lynx") && !text.to_lowercase().contains("floating"));
    assert!(text.contains("Noodles/Pasta"), "the classes GourmetGram knows");
}

#[test]
fn code_blocks_keep_their_language_and_lines_and_only_shell_ones_run() {
    let md = "Run:\n\n```sh\ndocker ps\ndocker ps -a\n```\n\nthen\n\n  ```text\n  <h1>x</h1>\n  ```\n";
    let b = code_blocks(md);
    assert_eq!(
        b,
        vec![
            CodeBlock { lang: "sh".into(), code: "docker ps\ndocker ps -a\n".into() },
            CodeBlock { lang: "text".into(), code: "<h1>x</h1>\n".into() }
        ]
    );
    assert!(b[0].runnable() && !b[1].runnable());
}

#[test]
fn a_malformed_lab_is_refused_with_a_reason() {
    let md = |_: &str| Some("text".to_string());
    let head = "id = \"x\"\ntitle = \"X\"\nsummary = \"s\"\n";
    let step = |id: &str, check: &str| format!("[[steps]]\nid = \"{id}\"\ntitle = \"t\"\nfile = \"a.md\"\nchecks = [{check}]\n");
    let ok = format!("{head}{}", step("a", "{ kind = \"volume_exists\", name = \"v\" }"));
    assert!(Lab::parse(&ok, md).is_ok());
    let unknown_kind = format!("{head}{}", step("a", "{ kind = \"volume_is_nice\", name = \"v\" }"));
    assert!(matches!(Lab::parse(&unknown_kind, md), Err(LabError::Toml(e)) if e.contains("volume_is_nice")));
    let misspelt = format!("{head}{}", step("a", "{ kind = \"volume_exists\", nmae = \"v\" }"));
    assert!(matches!(Lab::parse(&misspelt, md), Err(LabError::Toml(e)) if e.contains("nmae")), "{:?}", Lab::parse(&misspelt, md));
    let twice = format!("{head}{}{}", step("a", "{ kind = \"no_stopped_containers\" }"), step("a", "{ kind = \"no_stopped_containers\" }"));
    assert!(matches!(Lab::parse(&twice, md), Err(LabError::Invalid(e)) if e.contains("two steps")));
    let none = format!("{head}{}", step("a", ""));
    assert!(matches!(Lab::parse(&none, md), Err(LabError::Invalid(e)) if e.contains("no checks")));
    assert_eq!(Lab::parse(&ok, |_| None), Err(LabError::MissingFile { step: "a".into(), file: "a.md".into() }));
    assert!(matches!(Lab::parse("id = ", md), Err(LabError::Toml(_))));
}

#[test]
fn elements_are_named_by_stable_ids_that_round_trip_and_map_to_the_pages_testids() {
    let rule = Element::Rule {
        table: "nat".into(),
        rule: "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80".into(),
    };
    assert_eq!(rule.id(), "rule:nat:-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80");
    for e in [
        rule,
        Element::Port(80),
        Element::Container("nginx-public".into()),
        Element::Layer("/var/lib/berth/overlay2/x/diff".into()),
        Element::Chain { table: "filter".into(), chain: "DOCKER-USER".into() },
        Element::Image("nginx:alpine".into()),
    ] {
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, format!("\"{}\"", e.id().replace('"', "\\\"")));
        assert_eq!(serde_json::from_str::<Element>(&json).unwrap(), e);
    }
    assert_eq!(Element::Port(80).testid().as_deref(), Some("port-80"));
    assert_eq!(Element::Container("nginx-1".into()).testid().as_deref(), Some("container-nginx-1"));
    assert!(serde_json::from_str::<Element>("\"frob:x\"").is_err());
}

#[test]
fn progress_and_file_events_round_trip_through_the_stream_json() {
    let d =
        Diagnosis { code: "port.dnat_missing".into(), severity: Severity::Broken, message: "m".into(), element: Some(Element::Port(80)) };
    for e in [
        Event::LabProgress {
            lab: "deploy-docker".into(),
            step: "publish".into(),
            change: LabChange::CheckFailed { check: 2, kind: "port_published".into(), diagnosis: d },
        },
        Event::LabProgress { lab: "deploy-docker".into(), step: "publish".into(), change: LabChange::StepCompleted },
        Event::FileChanged { dir: "/var/lib/berth/overlay2/c/diff".into(), path: "/etc/x".into(), change: FileChangeKind::Modified },
    ] {
        let env = Envelope::new(3, T, e);
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), env, "{json}");
    }
    let json = serde_json::to_string(&Event::LabProgress { lab: "l".into(), step: "s".into(), change: LabChange::StepStarted }).unwrap();
    assert_eq!(json, r#"{"type":"lab_progress","lab":"l","step":"s","change":{"change":"step_started"}}"#);
    // A snapshot taken before the lab existed still reads.
    let mut old = serde_json::to_value(State::default()).unwrap();
    old.as_object_mut().unwrap().remove("lab");
    old.as_object_mut().unwrap().remove("files");
    old.as_object_mut().unwrap().remove("commands");
    assert_eq!(serde_json::from_value::<State>(old).unwrap(), State::default());
}

#[test]
fn step_times_run_from_first_current_to_first_completed_and_count_failures_and_codes() {
    let lab = lab();
    let (a, b) = (lab.steps[0].id.clone(), lab.steps[1].id.clone());
    let d = |code: &str| Diagnosis { code: code.into(), severity: Severity::Broken, message: "m".into(), element: None };
    let ev = |t: u64, lab: &str, step: &str, change: LabChange| {
        Envelope::new(t, t, Event::LabProgress { lab: lab.into(), step: step.into(), change })
    };
    let mut times = LabTimes::default();
    let mut record = LabRecord::default();
    for e in [
        ev(1_000, &lab.id, &a, LabChange::StepStarted),
        ev(2_000, &lab.id, &a, LabChange::CheckFailed { check: 0, kind: "k".into(), diagnosis: d("port.dnat_missing") }),
        ev(2_000, &lab.id, &a, LabChange::StepFailed),
        ev(3_000, &lab.id, &a, LabChange::CheckFailed { check: 0, kind: "k".into(), diagnosis: d("port.dnat_missing") }),
        ev(3_500, &lab.id, &a, LabChange::CheckFailed { check: 1, kind: "k".into(), diagnosis: d("container.missing") }),
        ev(4_000, &lab.id, &a, LabChange::StepStarted),
        ev(6_500, &lab.id, &a, LabChange::StepCompleted),
        // Completing again later changes nothing; another lab's events are not ours.
        ev(9_000, &lab.id, &a, LabChange::StepCompleted),
        ev(9_000, "other-lab", &a, LabChange::StepStarted),
        // A step done before it was ever current took no time of its own.
        ev(7_000, &lab.id, &b, LabChange::StepCompleted),
        Envelope::new(8, 8, Event::ShellCommand { shell: "t1".into(), command: "docker ps".into(), exit_code: 0 }),
    ] {
        times.take(&lab.id, &e);
        if let Event::LabProgress { lab: l, step, change } = &e.event {
            if *l == lab.id {
                record.apply(step, change);
            }
        }
    }
    let sa = &times.steps[&a];
    assert_eq!((sa.started_ms, sa.completed_ms, sa.failures), (Some(1_000), Some(6_500), 1));
    assert_eq!(sa.codes, vec!["port.dnat_missing".to_string(), "container.missing".to_string()]);
    assert_eq!(sa.seconds(), Some(5.5));
    assert_eq!(times.steps[&b].seconds(), Some(0.0));
    let rows = times.rows(&lab, &record);
    assert_eq!(rows.len(), lab.steps.len());
    assert_eq!((rows[0].state, rows[0].completed, rows[0].seconds), (StepState::Passed, true, Some(5.5)));
    assert_eq!((rows[2].seconds, rows[2].failures, rows[2].state), (None, 0, StepState::Pending));
}

#[test]
fn a_renamed_container_has_its_new_name_in_the_state() {
    let mut l = Learner::new();
    l.run("docker run --name web -d nginx:alpine");
    let id = l.state.containers.values().find(|c| c.name == "web").unwrap().id.clone();
    apply(&mut l.state, &Event::ContainerRenamed { id: id.clone(), name: "web2".into() });
    assert_eq!(l.state.containers[&id].name, "web2");
    apply(&mut l.state, &Event::ContainerRenamed { id: "nonesuch".into(), name: "x".into() });
}

#[test]
fn a_paused_container_is_paused_in_the_state_until_unpaused_or_exited() {
    let mut l = Learner::new();
    l.run("docker run --name web -d nginx:alpine");
    let id = l.state.containers.values().find(|c| c.name == "web").unwrap().id.clone();
    apply(&mut l.state, &Event::ContainerPaused { id: id.clone() });
    assert!(l.state.containers[&id].paused);
    apply(&mut l.state, &Event::ContainerUnpaused { id: id.clone() });
    assert!(!l.state.containers[&id].paused);
    apply(&mut l.state, &Event::ContainerPaused { id: id.clone() });
    apply(&mut l.state, &Event::ContainerExited { id: id.clone(), exit_code: 137 });
    assert!(!l.state.containers[&id].paused, "an exited container is not paused");
}

#[test]
fn a_state_keeps_the_shells_last_twenty_commands() {
    let mut s = State::default();
    for i in 0..25 {
        apply(&mut s, &Event::ShellCommand { shell: "t1".into(), command: format!("echo {i}"), exit_code: i % 2 });
    }
    assert_eq!(s.commands.len(), crate::state::MAX_COMMANDS);
    assert_eq!(s.commands.first().map(|c| c.command.as_str()), Some("echo 5"));
    assert_eq!(s.commands.last().map(|c| (c.command.as_str(), c.exit_code)), Some(("echo 24", 0)));
}

// ---- each check kind, against states built from events ----

#[test]
fn image_and_container_checks_follow_pulls_runs_exits_and_prunes() {
    let mut l = Learner::new();
    let hello = Check::ContainerRan { image: "hello-world".into(), exit_code: Some(0) };
    let present = Check::ImagePresent { reference: "hello-world".into() };
    assert_eq!(eval(&present, &l.state), Err("image.missing".into()));
    assert_eq!(eval(&hello, &l.state), Err("container.missing".into()));
    l.run("docker run hello-world");
    assert_eq!(eval(&present, &l.state), Ok(()));
    assert_eq!(eval(&Check::ImagePresent { reference: "docker.io/library/hello-world:latest".into() }, &l.state), Ok(()));
    assert_eq!(eval(&hello, &l.state), Ok(()));
    assert_eq!(eval(&Check::ContainerRan { image: "hello-world".into(), exit_code: Some(1) }, &l.state), Err("container.failed".into()));
    l.run("docker run --name bg -d alpine sleep 100");
    let ran = Check::ContainerRan { image: "alpine".into(), exit_code: None };
    assert_eq!(eval(&ran, &l.state), Err("container.still_running".into()));
    assert_eq!(eval(&Check::ContainerRunning { name: "bg".into() }, &l.state), Ok(()));
    assert_eq!(eval(&Check::ContainerStopped { name: "bg".into() }, &l.state), Err("container.still_running".into()));
    l.run("docker stop bg");
    assert_eq!(eval(&ran, &l.state), Ok(()));
    let d = Check::ContainerRunning { name: "bg".into() }.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.severity), ("container.not_running", Severity::Todo));
    assert!(d.message.contains("bg exists but is exited"), "{}", d.message);
    assert_eq!(eval(&Check::ContainerStopped { name: "bg".into() }, &l.state), Ok(()));
    assert_eq!(eval(&Check::NoStoppedContainers, &l.state), Err("container.stopped_left".into()));
    l.run("docker container prune -f");
    assert_eq!(eval(&Check::NoStoppedContainers, &l.state), Ok(()));
    assert_eq!(eval(&Check::ContainerRunning { name: "bg".into() }, &l.state), Err("container.missing".into()));
}

#[test]
fn bridge_and_chain_checks_see_docker0_and_dockers_chains_and_flushed_ones() {
    let mut l = Learner::new();
    let bridge = Check::BridgeUp { name: "docker0".into(), address: "172.17.0.1/16".into() };
    let chains = Check::ChainsPresent {
        table: "filter".into(),
        chains: vec!["DOCKER".into(), "DOCKER-USER".into(), "DOCKER-ISOLATION-STAGE-1".into(), "DOCKER-ISOLATION-STAGE-2".into()],
    };
    assert_eq!(eval(&bridge, &l.state), Ok(()));
    assert_eq!(eval(&chains, &l.state), Ok(()));
    assert_eq!(eval(&Check::BridgeUp { name: "docker0".into(), address: "10.0.0.1/8".into() }, &l.state), Err("bridge.address".into()));
    assert_eq!(eval(&bridge, &State::default()), Err("bridge.missing".into()));
    // DOCKER-USER flushed by hand: its RETURN and FORWARD's jump to it gone.
    for rule in ["-A DOCKER-USER -j RETURN", "-A FORWARD -j DOCKER-USER"] {
        l.event(Event::KernelRuleGone { table: "filter".into(), rule: rule.into() });
    }
    let d = chains.evaluate(&l.state).unwrap_err();
    assert_eq!(
        (d.code.as_str(), d.element),
        ("chain.missing", Some(Element::Chain { table: "filter".into(), chain: "DOCKER-USER".into() }))
    );
}

#[test]
fn container_on_bridge_needs_its_veth_on_docker0() {
    let mut l = Learner::new();
    let check = Check::ContainerOnBridge { name: "web".into(), bridge: "docker0".into() };
    assert_eq!(eval(&check, &l.state), Err("container.missing".into()));
    l.run("docker run --name web -d nginx:alpine");
    assert_eq!(eval(&check, &l.state), Ok(()));
    let c = l.container("web");
    let veth = c.endpoints["bridge"].host_if.clone();
    let index = l.state.links[&veth].index;
    // `ip link set vethX nomaster` by hand.
    l.event(Event::LinkObserved { index, name: veth.clone(), kind: "veth".into(), master: None, up: true, link_netnsid: Some(0) });
    let d = check.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.severity, d.element), ("veth.not_on_bridge", Severity::Broken, Some(Element::Link(veth.clone()))));
    l.event(Event::LinkGone { index, name: veth });
    assert_eq!(eval(&check, &l.state), Err("veth.not_seen".into()));
    assert_eq!(eval(&Check::ContainerOnBridge { name: "web".into(), bridge: "br-other".into() }, &l.state), Err("endpoint.missing".into()));
}

#[test]
fn port_published_checks_the_port_its_target_and_the_dnat_rule_in_the_kernel() {
    let mut l = Learner::new();
    let check = Check::PortPublished { container: "nginx-public".into(), host_port: 80, container_port: 80 };
    assert_eq!(eval(&check, &l.state), Err("container.missing".into()));
    l.run("docker run --name nginx-public -d --rm nginx:alpine");
    let d = check.evaluate(&l.state).unwrap_err();
    assert_eq!(d.code, "port.not_published");
    assert!(d.message.contains("publishes no port: run it with -p 80:80"), "{}", d.message);
    l.run("docker stop nginx-public");
    l.run("docker run --name other -d -p 80:8000 nginx:alpine");
    let d = check.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.element.clone()), ("port.not_published", Some(Element::Port(80))));
    assert!(d.message.contains("published by other"), "{}", d.message);
    assert_eq!(
        eval(&Check::PortPublished { container: "other".into(), host_port: 80, container_port: 80 }, &l.state),
        Err("port.wrong_target".into())
    );
    l.run("docker rm -f other");
    l.run("docker run --name nginx-public -d --rm -p 80:80 nginx:alpine");
    assert_eq!(eval(&check, &l.state), Ok(()));
    // The DNAT rule deleted by hand (`iptables -t nat -D DOCKER …`): the observer sees it gone.
    let dnat = "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    l.event(Event::KernelRuleGone { table: "nat".into(), rule: dnat.into() });
    let d = check.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.severity), ("port.dnat_missing", Severity::Broken));
    assert_eq!(d.element, Some(Element::Rule { table: "nat".into(), rule: dnat.into() }));
    assert!(d.message.contains("port 80 is published but no DNAT rule in nat DOCKER sends it to 172.17.0.2:80"), "{}", d.message);
    l.event(Event::KernelRuleObserved { table: "nat".into(), rule: dnat.into() });
    assert_eq!(eval(&check, &l.state), Ok(()));
}

#[test]
fn overlay_checks_tell_a_copy_up_from_an_edit_of_the_image_layer() {
    let mut l = Learner::new();
    let path = "/usr/share/nginx/html/index.html";
    let up = Check::OverlayFileCopiedUp { container: "nginx-1".into(), path: path.into() };
    l.run("docker run --name nginx-1 -d --rm nginx:alpine");
    assert_eq!(eval(&Check::OverlayMounted { container: "nginx-1".into() }, &l.state), Ok(()));
    assert_eq!(eval(&up, &l.state), Err("overlay.not_copied_up".into()));
    // The learner edits the file in the image's top layer from the host.
    let lower = l.container("nginx-1").layer.lower[0].clone();
    l.event(Event::FileChanged { dir: lower.clone(), path: path.into(), change: FileChangeKind::Modified });
    let d = up.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.severity, d.element), ("overlay.lower_edited", Severity::Broken, Some(Element::Layer(lower))));
    // Then does it right, inside the container: vi writes, the overlay copies up.
    l.run("docker exec -it nginx-1 /bin/sh");
    l.run("vi /usr/share/nginx/html/index.html");
    l.run("exit");
    let upper = l.container("nginx-1").layer.upper;
    assert_eq!(l.state.files[&upper].get(path), Some(&FileChangeKind::Modified));
    assert_eq!(eval(&up, &l.state), Ok(()));
    // Unmounted under a running container: broken.
    let id = l.container("nginx-1").id;
    l.event(Event::OverlayUnmounted { id, merged: String::new() });
    assert_eq!(eval(&Check::OverlayMounted { container: "nginx-1".into() }, &l.state), Err("overlay.not_mounted".into()));
    // Removed with --rm: its upper dir's changes go with it.
    l.run("docker stop nginx-1");
    assert!(!l.state.files.contains_key(&upper));
    assert_eq!(eval(&up, &l.state), Err("container.missing".into()));
}

#[test]
fn two_instances_share_the_images_lower_dirs() {
    let mut l = Learner::new();
    let check = Check::TwoContainersShareLower { image: "nginx:alpine".into() };
    assert_eq!(eval(&check, &l.state), Err("overlay.no_instance".into()));
    l.run("docker run --name nginx-1 -d --rm nginx:alpine");
    assert_eq!(eval(&check, &l.state), Err("overlay.one_instance".into()));
    l.run("docker run --name nginx-2 -d --rm nginx:alpine");
    assert_eq!(eval(&check, &l.state), Ok(()));
    // Two containers whose stacks differ (hand-made): not shared.
    let mut s = State::default();
    for (id, lower) in [("a", "/l/1/diff"), ("b", "/l/2/diff")] {
        let layer = RwLayer { lower: vec![lower.into()], upper: format!("/c/{id}/diff"), work: String::new(), merged: String::new() };
        apply(
            &mut s,
            &Event::ContainerCreated {
                id: id.into(),
                name: id.into(),
                image: "nginx:alpine".into(),
                image_id: "sha256:n".into(),
                command: vec![],
                layer,
                mounts: vec![],
                labels: Default::default(),
            },
        );
        apply(&mut s, &Event::ContainerStarted { id: id.into(), pid: 1 });
    }
    assert_eq!(eval(&check, &s), Err("overlay.lower_differs".into()));
}

#[test]
fn volume_checks_follow_create_copy_in_edits_reuse_and_removal() {
    let mut l = Learner::new();
    let exists = Check::VolumeExists { name: "webvol".into() };
    let copied = Check::VolumeCopiedIn { volume: "webvol".into() };
    let used =
        Check::VolumeUsedBy { volume: "webvol".into(), destination: "/usr/share/nginx/html".into(), container: Some("nginx-vol".into()) };
    let written = Check::VolumeFileWritten { volume: "webvol".into(), path: "/index.html".into() };
    let reused = Check::VolumeReused { volume: "webvol".into() };
    for c in [&exists, &copied, &used, &written, &reused] {
        assert_eq!(eval(c, &l.state), Err("volume.missing".into()), "{c:?}");
    }
    l.run("docker volume create webvol");
    assert_eq!(eval(&exists, &l.state), Ok(()));
    assert_eq!(eval(&copied, &l.state), Err("volume.not_copied_in".into()));
    assert_eq!(eval(&used, &l.state), Err("container.missing".into()));
    l.run("docker run --name nginx-vol -d --rm -v webvol:/srv -p 80:80 nginx:alpine");
    assert_eq!(eval(&used, &l.state), Err("volume.not_mounted".into()));
    l.run("docker stop nginx-vol");
    l.run("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert_eq!(eval(&used, &l.state), Ok(()));
    assert_eq!(eval(&copied, &l.state), Ok(()));
    assert_eq!(eval(&reused, &l.state), Err("volume.not_reused".into()));
    assert_eq!(eval(&written, &l.state), Err("volume.not_edited".into()));
    l.run("docker run --rm -it -v webvol:/data/web alpine");
    assert_eq!(eval(&Check::VolumeUsedBy { volume: "webvol".into(), destination: "/data/web".into(), container: None }, &l.state), Ok(()));
    l.run("vi /data/web/index.html");
    l.run("exit");
    assert_eq!(eval(&written, &l.state), Ok(()));
    l.run("docker stop nginx-vol");
    assert_eq!(eval(&reused, &l.state), Err("volume.not_reused".into()));
    l.run("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert_eq!(eval(&reused, &l.state), Ok(()));
    assert_eq!(eval(&written, &l.state), Ok(()), "the edit outlived the containers");
    l.run("docker stop nginx-vol");
    l.run("docker volume rm webvol");
    assert_eq!(eval(&written, &l.state), Err("volume.missing".into()));
    assert!(l.state.files.is_empty(), "the volume's file changes went with it");
}

#[test]
fn bind_mount_and_build_checks() {
    let mut l = Learner::new();
    let bind =
        Check::BindMount { container: "nginx-bind".into(), destination: "/usr/share/nginx/html".into(), source_suffix: "/data/web".into() };
    l.run("docker run --name nginx-bind -d --rm -p 80:80 nginx:alpine");
    assert_eq!(eval(&bind, &l.state), Err("bind.missing".into()));
    l.run("docker stop nginx-bind");
    l.run("docker run --name nginx-bind -d --rm -v data:/usr/share/nginx/html -p 80:80 nginx:alpine");
    let d = bind.evaluate(&l.state).unwrap_err();
    assert_eq!((d.code.as_str(), d.element), ("bind.is_volume", Some(Element::Volume("data".into()))));
    l.run("docker stop nginx-bind");
    l.run("docker run --name nginx-bind -d --rm -v /tmp/x:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert_eq!(eval(&bind, &l.state), Err("bind.wrong_source".into()));
    l.run("docker stop nginx-bind");
    l.run("docker run --name nginx-bind -d --rm -v ~/data/web:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert_eq!(eval(&bind, &l.state), Ok(()));
    assert_eq!(
        l.container("nginx-bind").mounts[0],
        Mount {
            kind: "bind".into(),
            name: String::new(),
            source: "/root/data/web".into(),
            destination: "/usr/share/nginx/html".into(),
            readonly: false
        }
    );

    let built = Check::ImageBuilt { tag: "gourmetgram-app:0.0.1".into() };
    assert_eq!(eval(&built, &l.state), Err("build.missing".into()));
    let mut s = l.state.clone();
    apply(&mut s, &Event::BuildStarted { build: "b1".into(), tags: vec!["gourmetgram-app:0.0.1".into()], steps: 7 });
    assert_eq!(eval(&built, &s), Err("build.running".into()));
    apply(
        &mut s,
        &Event::BuildFinished { build: "b1".into(), image: None, error: Some("COPY failed: file not found in build context".into()) },
    );
    let d = built.evaluate(&s).unwrap_err();
    assert_eq!((d.code.as_str(), d.severity), ("build.failed", Severity::Broken));
    assert!(d.message.contains("COPY failed"), "{}", d.message);
    l.run("docker build -t gourmetgram-app:0.0.1 gourmetgram");
    assert_eq!(eval(&built, &l.state), Ok(()));
    assert_eq!(eval(&Check::ImageBuilt { tag: "gourmetgram-app".into() }, &l.state), Err("build.missing".into()), "another tag (latest)");
}

// ---- progress ----

/// The lab's commands in order, each with the step it completes (if any).
const WALK: &[(&str, Option<&str>)] = &[
    ("docker run hello-world", Some("hello")),
    ("docker ps -a", None),
    ("docker pull alpine", None),
    ("docker run alpine", Some("alpine")),
    // bridge: docker0 and the chains are there from the start (checked below).
    ("ip addr show docker0", None),
    ("docker network inspect bridge", None),
    ("sudo iptables --list -n -t nat", None),
    ("docker run --name alpine-shell -it --rm alpine", Some("alpine-shell")),
    ("ip addr", None),
    ("traceroute 1.1.1.1", None),
    ("exit", None),
    ("docker run --name nginx-demo -d --rm nginx:alpine", Some("service")),
    ("docker logs nginx-demo", None),
    ("curl http://172.17.0.2/", None),
    ("docker stop nginx-demo", None),
    ("docker run --name nginx-public -d --rm -p 80:80 nginx:alpine", Some("publish")),
    ("curl http://192.168.1.10/", None),
    ("docker stop nginx-public", None),
    ("docker run --name nginx-1 -d --rm nginx:alpine", Some("overlay")),
    ("docker exec -it nginx-1 /bin/sh", None),
    ("df", None),
    ("vi /usr/share/nginx/html/index.html", Some("copy-up")),
    ("exit", None),
    ("docker run --name nginx-2 -d --rm nginx:alpine", Some("second-instance")),
    ("docker stop nginx-1", None),
    ("docker stop nginx-2", None),
    ("docker volume create webvol", None),
    ("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("volume")),
    ("docker run --rm -it -v webvol:/data/web alpine", None),
    ("vi /data/web/index.html", Some("volume-edit")),
    ("exit", None),
    ("docker stop nginx-vol", None),
    ("docker container prune -f", None),
    ("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("volume-persist")),
    ("docker stop nginx-vol", None),
    ("docker run --name nginx-bind -d --rm -v ~/data/web:/usr/share/nginx/html -p 80:80 nginx:alpine", Some("bind")),
    ("docker stop nginx-bind", None),
    ("docker build -t gourmetgram-app:0.0.1 gourmetgram", Some("build")),
    ("docker run --name gourmetgram-app -d --rm -p 80:8000 gourmetgram-app:0.0.1", Some("serve")),
    ("curl http://192.168.1.10/", None),
];

#[test]
fn the_whole_lab_walked_in_the_simulator_completes_each_step_at_its_command_and_not_before() {
    let mut l = Learner::new();
    // At the start only the bridge step's state is there: docker0 and Docker's chains.
    assert_eq!(l.completed(), vec!["bridge"]);
    assert_eq!(l.state_of("hello"), StepState::Current);
    assert_eq!(l.state_of("alpine"), StepState::Pending);
    let mut expected: Vec<String> = vec!["bridge".into()];
    for (cmd, completes) in WALK {
        l.run(cmd);
        if let Some(step) = completes {
            expected.push(step.to_string());
        }
        let mut want = expected.clone();
        want.sort();
        let mut got = l.completed();
        got.sort();
        assert_eq!(got, want, "after {cmd:?}");
        // The current step is the first one not completed, and nothing fails.
        let statuses = l.statuses();
        let first_open = statuses.iter().position(|s| !s.completed);
        for (i, s) in statuses.iter().enumerate() {
            let want = if s.completed {
                StepState::Passed
            } else if Some(i) == first_open {
                StepState::Current
            } else {
                StepState::Pending
            };
            assert_eq!(s.state, want, "{} after {cmd:?}: {:?}", s.step, s.checks);
        }
    }
    assert!(l.statuses().iter().all(|s| s.state == StepState::Passed));
    // Each step completed exactly once, in the lab's order, and never failed.
    let completed: Vec<&str> = l
        .progress
        .iter()
        .filter_map(|e| match e {
            Event::LabProgress { step, change: LabChange::StepCompleted, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    let lab = lab();
    let order: Vec<&str> = lab.steps.iter().map(|s| s.id.as_str()).filter(|s| *s != "bridge").collect();
    assert_eq!(completed[0], "bridge");
    assert_eq!(&completed[1..], order.as_slice());
    assert!(!l.progress.iter().any(|e| matches!(e, Event::LabProgress { change: LabChange::StepFailed, .. })));
}

#[test]
fn a_replay_of_the_recorded_events_shows_progress_as_it_was() {
    let mut l = Learner::new();
    let base = l.state.clone();
    let mut stream: Vec<Event> = Vec::new();
    let mut shown = Vec::new();
    for (cmd, _) in &WALK[..16] {
        let before = l.progress.len();
        let o = l.sim.run(cmd, T);
        for e in &o.events {
            apply(&mut l.state, &e.event);
        }
        stream.extend(o.events.into_iter().map(|e| e.event));
        l.tick();
        stream.extend(l.progress[before..].iter().cloned());
        shown.push((stream.len(), l.lab.evaluate(&l.state)));
    }
    // Replaying the stream (no evaluator) gives back the states and completions shown live.
    let mut replay = base;
    let mut at = 0;
    for (upto, live) in shown {
        for e in &stream[at..upto] {
            apply(&mut replay, e);
        }
        at = upto;
        let recorded = l.lab.recorded(&replay);
        let strip = |v: &[StepStatus]| v.iter().map(|s| (s.step.clone(), s.state, s.completed)).collect::<Vec<_>>();
        assert_eq!(strip(&recorded), strip(&live));
        let current = live.iter().find(|s| s.state == StepState::Current).map(|s| s.step.clone());
        if let Some(c) = current {
            let rec = recorded.iter().find(|s| s.step == c).unwrap();
            let now = live.iter().find(|s| s.step == c).unwrap();
            assert_eq!(rec.checks, now.checks, "the current step's check results are recorded");
        }
    }
}

fn walk_to(l: &mut Learner, step: &str) {
    for (cmd, completes) in WALK {
        l.run(cmd);
        if *completes == Some(step) {
            return;
        }
    }
    panic!("no step {step} in the walk");
}

#[test]
fn deleting_the_dnat_rule_by_hand_fails_the_publish_step_until_it_is_back() {
    let mut l = Learner::new();
    for (cmd, _) in WALK.iter().take_while(|(c, _)| !c.starts_with("curl http://192.168.1.10/")) {
        l.run(cmd);
    }
    assert_eq!(l.state_of("publish"), StepState::Passed);
    let n = l.progress.len();
    let dnat = "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    l.event(Event::KernelRuleGone { table: "nat".into(), rule: dnat.into() });
    assert_eq!(l.state_of("publish"), StepState::Failed);
    let d = l.diagnosis("publish", "port.dnat_missing");
    assert_eq!(d.element.map(|e| e.id()), Some(format!("rule:nat:{dnat}")));
    // As events: the check failed with its code, then the step.
    let evs: Vec<&LabChange> = l.progress[n..]
        .iter()
        .filter_map(|e| match e {
            Event::LabProgress { step, change, .. } if step == "publish" => Some(change),
            _ => None,
        })
        .collect();
    assert!(
        matches!(evs.as_slice(), [LabChange::CheckFailed { check: 2, diagnosis, .. }, LabChange::StepFailed] if diagnosis.code == "port.dnat_missing"),
        "{evs:?}"
    );
    // The current step is not held up by it.
    assert_eq!(l.state_of("overlay"), StepState::Current);
    // Stopping the container takes the port down: nothing is broken any more.
    l.run("docker stop nginx-public");
    assert_eq!(l.state_of("publish"), StepState::Passed);
}

#[test]
fn stopping_the_container_mid_step_says_it_is_missing() {
    let mut l = Learner::new();
    walk_to(&mut l, "overlay");
    assert_eq!(l.state_of("copy-up"), StepState::Current);
    assert_eq!(l.codes("copy-up"), vec!["overlay.not_copied_up"]);
    l.run("docker stop nginx-1");
    assert_eq!(l.state_of("copy-up"), StepState::Current);
    let d = l.diagnosis("copy-up", "container.missing");
    assert_eq!(d.element, Some(Element::Container("nginx-1".into())));
    assert!(l.progress.iter().any(|e| matches!(e, Event::LabProgress { step, change: LabChange::CheckFailed { diagnosis, .. }, .. } if step == "copy-up" && diagnosis.code == "container.missing")));
    // Without --rm, a stopped container is still there, but not running.
    l.run("docker run --name nginx-1 -d nginx:alpine");
    l.run("docker stop nginx-1");
    assert_eq!(l.codes("copy-up"), vec!["container.not_running"]);
}

#[test]
fn editing_the_lower_dirs_file_instead_fails_the_copy_up_step_and_names_the_layer() {
    let mut l = Learner::new();
    walk_to(&mut l, "overlay");
    let lower = l.container("nginx-1").layer.lower.clone();
    l.event(Event::FileChanged {
        dir: lower[0].clone(),
        path: "/usr/share/nginx/html/index.html".into(),
        change: FileChangeKind::Modified,
    });
    assert_eq!(l.state_of("copy-up"), StepState::Failed);
    let d = l.diagnosis("copy-up", "overlay.lower_edited");
    assert_eq!(d.element, Some(Element::Layer(lower[0].clone())));
    assert!(l.progress.iter().any(|e| matches!(e, Event::LabProgress { step, change: LabChange::StepFailed, .. } if step == "copy-up")));
    // The edit done right, inside nginx-1, completes the step.
    l.run("docker exec -it nginx-1 /bin/sh");
    l.run("vi /usr/share/nginx/html/index.html");
    l.run("exit");
    assert!(l.completed().contains(&"copy-up".to_string()));
    assert_eq!(l.state_of("copy-up"), StepState::Passed, "nginx-1's own copy now hides the layer's");
}

#[test]
fn steps_done_out_of_order_are_judged_by_state() {
    let mut l = Learner::new();
    l.run("docker volume create webvol");
    l.run("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert!(l.completed().contains(&"volume".to_string()));
    assert_eq!(l.state_of("volume"), StepState::Passed);
    assert_eq!(l.state_of("hello"), StepState::Current);
    assert_eq!(l.state_of("alpine"), StepState::Pending);
    // Only the current step's checks are recorded check by check.
    assert!(l.progress.iter().all(|e| match e {
        Event::LabProgress { step, change: LabChange::CheckFailed { .. }, .. } => step == "hello",
        _ => true,
    }));
    l.run("docker run hello-world");
    assert_eq!(l.state_of("alpine"), StepState::Current);
}

#[test]
fn progress_events_are_only_what_changed() {
    let lab = lab();
    let state = Sim::new(T).state;
    let first = lab.tick(&state);
    // hello becomes current with its two failing checks; bridge completes with its three passing.
    let summary: Vec<(String, String)> = first
        .iter()
        .map(|e| match e {
            Event::LabProgress { step, change, .. } => (
                step.clone(),
                match change {
                    LabChange::CheckFailed { diagnosis, .. } => diagnosis.code.clone(),
                    LabChange::CheckPassed { kind, .. } => format!("{kind} passed"),
                    other => format!("{other:?}"),
                },
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        summary,
        vec![
            s("hello", "image.missing"),
            s("hello", "container.missing"),
            s("hello", "StepStarted"),
            s("bridge", "bridge_up passed"),
            s("bridge", "chains_present passed"),
            s("bridge", "chains_present passed"),
            s("bridge", "StepCompleted"),
        ]
    );
    let mut st = state;
    for e in &first {
        apply(&mut st, e);
    }
    assert!(lab.tick(&st).is_empty());
}

#[test]
fn placeholders_are_filled_with_node1s_and_the_steps_containers_addresses() {
    let mut l = Learner::new();
    let lab = lab();
    let service = lab.step("service").unwrap();
    assert_eq!(node1_address(&l.state).as_deref(), Some("192.168.1.10"));
    assert_eq!(service.fill("curl http://172.17.0.X/", &l.state), "curl http://172.17.0.X/", "not known before nginx-demo runs");
    l.run("docker run --name other -d nginx:alpine");
    l.run("docker run --name nginx-demo -d --rm nginx:alpine");
    assert_eq!(service.fill("curl http://172.17.0.X/", &l.state), "curl http://172.17.0.3/");
    assert_eq!(lab.step("publish").unwrap().fill("curl http://A.B.C.D/", &l.state), "curl http://192.168.1.10/");
    assert!(l.run(&service.fill("curl http://172.17.0.X/", &l.state)).contains("Welcome to nginx!"));
}

#[test]
fn the_simulator_judges_progress_itself_as_berthd_does_and_keeps_completed_steps_across_a_restart() {
    let sim = Sim::new(T).with_lab(lab(), &[]);
    // Its start state already has the first progress: bridge done, hello current.
    let start = lab().recorded(&sim.state);
    assert_eq!(start.iter().find(|s| s.step == "hello").map(|s| s.state), Some(StepState::Current));
    assert!(start.iter().find(|s| s.step == "bridge").is_some_and(|s| s.completed));
    let mut sim = sim;
    let o = sim.run("docker run hello-world", T);
    let done: Vec<&str> = o
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::LabProgress { step, change: LabChange::StepCompleted, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(done, vec!["hello"], "the run's own events carry the step's completion");
    assert!(lab().tick(&sim.state).is_empty(), "nothing left for an outside evaluator to add");
    // A reload: a new simulated node1, with the steps completed before kept.
    let again = Sim::new(T).with_lab(lab(), &["hello".into(), "no-such-step".into()]);
    let rec = lab().recorded(&again.state);
    assert!(rec.iter().find(|s| s.step == "hello").is_some_and(|s| s.completed && s.state == StepState::Passed));
    assert_eq!(rec.iter().find(|s| s.step == "alpine").map(|s| s.state), Some(StepState::Current));
}

#[test]
fn in_the_simulator_a_dnat_rule_deleted_by_hand_fails_the_publish_step_and_putting_it_back_mends_it() {
    let mut sim = Sim::new(T).with_lab(lab(), &[]);
    for cmd in ["docker run --name nginx-public -d --rm -p 80:80 nginx:alpine"] {
        sim.run(cmd, T);
    }
    let passed = |sim: &Sim| lab().recorded(&sim.state).into_iter().find(|s| s.step == "publish").map(|s| s.state);
    assert_eq!(passed(&sim), Some(StepState::Passed));
    let dnat = "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80";
    let spec = dnat.trim_start_matches("-A ");
    assert!(sim.run(&format!("iptables -t nat -D {spec}"), T).text.is_empty());
    assert_eq!(passed(&sim), Some(StepState::Failed));
    assert!(!sim.run("iptables -t nat -S", T).text.contains("DNAT"), "the kernel no longer lists it");
    assert!(sim.run(&format!("iptables -t nat -D {spec}"), T).text.contains("Bad rule"), "a second delete finds nothing");
    sim.run(&format!("iptables -t nat -A {spec}"), T);
    assert_eq!(passed(&sim), Some(StepState::Passed));
}

#[test]
fn a_stream_snapshot_with_lab_progress_round_trips_through_json() {
    // The page reads the stream's snapshot (an internally tagged message):
    // the lab's recorded check results must come back from its JSON.
    let sim = Sim::new(T).with_lab(lab(), &[]);
    assert!(!sim.state.lab["deploy-docker"].steps["hello"].checks.is_empty());
    let msg = crate::StreamMsg::Snapshot { seq: 7, state: sim.state.clone() };
    let text = serde_json::to_string(&msg).unwrap();
    let back: crate::StreamMsg = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, msg);
}

#[test]
fn a_container_editing_the_volume_elsewhere_does_not_count_as_serving_it_again() {
    // A learner with no stopped containers left: editing webvol from alpine
    // (mounted at /data/web) must not complete "the data outlives the
    // containers" before nginx-vol is pruned and run anew.
    let mut l = Learner::new();
    for cmd in [
        "docker volume create webvol",
        "docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine",
        "docker run --name editor -d --rm -v webvol:/data/web alpine sleep 1000",
    ] {
        l.run(cmd);
    }
    let persist = lab().step("volume-persist").unwrap().checks.iter().find(|c| c.kind() == "volume_reused").cloned().unwrap();
    let d = persist.evaluate(&l.state).unwrap_err();
    assert_eq!(d.code, "volume.not_reused");
    l.run("docker stop nginx-vol");
    l.run("docker run --name nginx-vol -d --rm -v webvol:/usr/share/nginx/html -p 80:80 nginx:alpine");
    assert!(persist.evaluate(&l.state).is_ok());
}
