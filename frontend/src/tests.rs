//! Component tests, in headless Chromium (wasm-bindgen-test-runner with
//! Debian's chromedriver; `frontend/webdriver.json` has the flags): the
//! diagrams render State as events arrive, and the timeline's cursor shows
//! an earlier state.

use berth_shared::{Envelope, Event, StreamMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

use crate::components::{FilesystemDiagram, NetworkDiagram, RulesPanel, StepsPanel};
use crate::store::Store;

wasm_bindgen_test_configure!(run_in_browser);

fn events() -> Vec<Event> {
    let layer = berth_shared::RwLayer {
        lower: vec!["/var/lib/berth/overlay2/aaa/diff".into()],
        upper: "/var/lib/berth/overlay2/c1/diff".into(),
        work: "/var/lib/berth/overlay2/c1/work".into(),
        merged: "/var/lib/berth/overlay2/c1/merged".into(),
    };
    vec![
        Event::BridgeUp { name: "docker0".into(), address: "172.17.0.1".into(), prefix: 16, created: true },
        Event::LayerAdded {
            chain_id: "sha256:aaa".into(),
            diff_id: "sha256:aaa".into(),
            dir: "/var/lib/berth/overlay2/aaa/diff".into(),
            size: 1234,
        },
        Event::ContainerCreated {
            id: "c1".repeat(32),
            name: "nginx-demo".into(),
            image: "nginx:alpine".into(),
            image_id: "sha256:i".into(),
            command: vec![],
            layer,
            mounts: vec![],
            labels: Default::default(),
        },
        Event::OverlayMounted { id: "c1".repeat(32), merged: "/m".into(), options: String::new() },
        Event::EndpointAttached {
            id: "c1".repeat(32),
            network: "bridge".into(),
            bridge: "docker0".into(),
            host_if: "veth1234567".into(),
            ifname: "eth0".into(),
            ip: "172.17.0.2".into(),
            prefix: 16,
            mac: "02:42:ac:11:00:02".into(),
            gateway: "172.17.0.1".into(),
            netns: "/run/berth/netns/c1".into(),
            ip6: None,
        },
        Event::RuleAdded {
            table: "nat".into(),
            rule: "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.2:80".into(),
        },
        Event::PortPublished {
            id: "c1".repeat(32),
            proto: "tcp".into(),
            host_ip: "0.0.0.0".into(),
            host_port: 80,
            container_ip: "172.17.0.2".into(),
            container_port: 80,
        },
    ]
}

async fn settle() {
    crate::store::gloo_net_sleep(30).await;
}

fn text_of(css: &str) -> Option<String> {
    let doc = web_sys::window()?.document()?;
    doc.query_selector(css).ok()??.text_content()
}

#[wasm_bindgen_test]
async fn diagrams_draw_the_container_its_address_port_and_layers_and_the_timeline_rewinds() {
    let store = Store::new();
    let doc = web_sys::window().unwrap().document().unwrap();
    let root = doc.create_element("div").unwrap();
    doc.body().unwrap().append_child(&root).unwrap();
    let handle = leptos::mount::mount_to(root.unchecked_into(), move || {
        provide_context(store);
        view! { <NetworkDiagram/> <RulesPanel/> <FilesystemDiagram/> }
    });
    store.take_all(vec![StreamMsg::Snapshot { seq: 0, state: Default::default() }]);
    settle().await;
    assert!(text_of("[data-testid=container-nginx-demo]").is_none());
    let msgs = events().into_iter().enumerate().map(|(i, e)| StreamMsg::Event(Envelope::new(i as u64 + 1, 1_000 + i as u64, e))).collect();
    store.take_all(msgs);
    settle().await;
    let boxed = text_of("[data-testid=container-nginx-demo]").expect("the container's namespace is drawn");
    assert!(boxed.contains("eth0  172.17.0.2/16"), "{boxed}");
    assert!(text_of("[data-testid=port-80]").unwrap().contains("0.0.0.0:80 → 172.17.0.2:80/tcp"));
    assert!(text_of("[data-testid=bridge-docker0]").unwrap().contains("172.17.0.1/16"));
    assert!(text_of("[data-testid=layer]").unwrap().contains("aaa"));
    assert!(text_of("[data-testid=overlay-nginx-demo]").unwrap().contains("mounted"));
    // Selecting the port highlights its DNAT rule.
    store.selected.set(Some(crate::store::Selection::Port("c1".repeat(32), 80)));
    settle().await;
    assert!(text_of("[data-testid=rules] li.hit").unwrap().contains("--to-destination 172.17.0.2:80"));
    // The timeline at 2 events: only the bridge and the layer existed.
    store.cursor.set(Some(2));
    settle().await;
    assert!(text_of("[data-testid=container-nginx-demo]").is_none());
    assert!(text_of("[data-testid=bridge-docker0]").is_some());
    store.cursor.set(None);
    settle().await;
    assert!(text_of("[data-testid=container-nginx-demo]").is_some());
    drop(handle);
}

#[wasm_bindgen_test]
fn events_read_as_one_line_each() {
    let lines: Vec<String> = events().iter().map(crate::describe::describe).collect();
    assert_eq!(lines[0], "bridge docker0 172.17.0.1/16 up");
    assert_eq!(lines[4], "veth veth1234567 ⇄ eth0 172.17.0.2/16 on docker0");
    assert!(lines[6].starts_with("port 0.0.0.0:80 → 172.17.0.2:80/tcp"));
}

#[wasm_bindgen_test]
fn a_simulated_session_saves_as_a_recording_that_replays_to_the_same_state() {
    let store = Store::new();
    store.start_sim();
    let out = store.sim_run("docker run --name nginx-demo -d --rm -p 80:80 nginx:alpine", (100, 30));
    assert_eq!(out.trim().lines().last().unwrap_or("").len(), 64, "{out}");
    store.term.update(|v| v.push((crate::store::now_ms(), format!("$ docker run ...\r\n{out}"))));
    let cast = store.session_cast();
    let rec = berth_shared::parse_cast(&cast).unwrap();
    let n = rec.frames.iter().filter(|(_, f)| matches!(f, berth_shared::Frame::Event(_))).count();
    assert!(n > 5, "{n} events recorded");
    assert_eq!(rec.state_after(n), store.live.get_untracked());
    assert!(rec.state_after(n).containers.values().any(|c| c.name == "nginx-demo"));
}

fn attr_in(root: &web_sys::Element, css: &str, attr: &str) -> Option<String> {
    root.query_selector(css).ok()??.get_attribute(attr)
}

fn text_in(root: &web_sys::Element, css: &str) -> Option<String> {
    root.query_selector(css).ok()??.text_content()
}

fn step_state_in(root: &web_sys::Element, step: &str) -> Option<String> {
    attr_in(root, &format!("[data-testid=lab-step][data-step={step}]"), "data-state")
}

#[wasm_bindgen_test]
async fn the_steps_panel_follows_the_simulated_node1_flags_what_a_diagnosis_names_and_shows_the_past_as_recorded() {
    let store = Store::new();
    let doc = web_sys::window().unwrap().document().unwrap();
    let root = doc.create_element("div").unwrap();
    doc.body().unwrap().append_child(&root).unwrap();
    let handle = leptos::mount::mount_to(root.clone().unchecked_into(), move || {
        provide_context(store);
        crate::components::steps::provide_lab_view(store);
        view! { <StepsPanel/> <NetworkDiagram/> <RulesPanel/> }
    });

    store.start_sim();
    settle().await;
    let total = store.lab.with_value(|l| l.steps.len());
    assert_eq!(root.query_selector_all("[data-testid=lab-step]").unwrap().length() as usize, total);
    assert_eq!(step_state_in(&root, "hello").as_deref(), Some("current"));
    assert_eq!(step_state_in(&root, "bridge").as_deref(), Some("passed"), "docker0 and Docker's chains are there from the start");
    assert_eq!(step_state_in(&root, "alpine").as_deref(), Some("pending"));
    // The current step is the one being read, with its commands and checks.
    assert_eq!(attr_in(&root, "[data-testid=step-detail]", "data-step").as_deref(), Some("hello"));
    assert!(text_in(&root, "[data-testid=step-code]").unwrap().contains("docker run hello-world"));
    assert!(text_in(&root, "[data-testid=lab-check][data-result=failed]").is_some());

    store.sim_run("docker run hello-world", (100, 30));
    settle().await;
    assert_eq!(step_state_in(&root, "hello").as_deref(), Some("passed"));
    assert_eq!(step_state_in(&root, "alpine").as_deref(), Some("current"));
    assert_eq!(attr_in(&root, "[data-testid=step-detail]", "data-step").as_deref(), Some("alpine"), "the panel moves on with the learner");
    assert!(text_in(&root, "[data-testid=lab-progress]").unwrap().starts_with("2 / "));

    // Publish a port, then delete its DNAT rule by hand: the publish step
    // fails with its code, and the port is flagged in the diagram.
    for cmd in ["docker pull alpine", "docker run alpine", "docker run --name nginx-public -d --rm -p 80:80 nginx:alpine"] {
        store.sim_run(cmd, (100, 30));
    }
    settle().await;
    assert_eq!(step_state_in(&root, "publish").as_deref(), Some("passed"));
    let dnat = store.live.with_untracked(|s| s.rules.iter().find(|(t, r)| t == "nat" && r.contains("DNAT")).cloned()).unwrap();
    let seen_before = store.events.with_untracked(|v| v.len());
    store.sim_run(&format!("iptables -t nat -D {}", dnat.1.trim_start_matches("-A ")), (100, 30));
    settle().await;
    assert_eq!(step_state_in(&root, "publish").as_deref(), Some("failed"));
    let failing = root.query_selector("[data-testid=lab-step][data-step=publish]").unwrap().unwrap();
    failing.unchecked_ref::<web_sys::HtmlElement>().click();
    settle().await;
    let code = attr_in(&root, "[data-testid=step-detail] [data-testid=lab-check][data-result=failed]", "data-code").unwrap_or_default();
    assert!(code.starts_with("port."), "{code}");
    assert_eq!(
        attr_in(&root, "[data-testid=step-detail] [data-testid=lab-check][data-result=failed]", "data-element"),
        Some(format!("rule:nat:{}", dnat.1))
    );
    let flagged = text_in(&root, "[data-testid=rules] li.flagged").unwrap_or_default();
    assert!(flagged.contains("DNAT"), "the rule the diagnosis names is highlighted: {flagged:?}");

    // The timeline before the deletion: progress as it was then.
    store.cursor.set(Some(seen_before));
    settle().await;
    assert_eq!(step_state_in(&root, "publish").as_deref(), Some("passed"));
    store.cursor.set(None);
    settle().await;
    assert_eq!(step_state_in(&root, "publish").as_deref(), Some("failed"));
    drop(handle);
}

#[wasm_bindgen_test]
async fn run_in_terminal_types_the_steps_command_with_its_placeholders_filled() {
    let store = Store::new();
    let typed = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
    let sink = typed.clone();
    store.keys.set_value(Some(std::rc::Rc::new(move |s: String| sink.borrow_mut().push_str(&s))));
    let doc = web_sys::window().unwrap().document().unwrap();
    let root = doc.create_element("div").unwrap();
    doc.body().unwrap().append_child(&root).unwrap();
    let handle = leptos::mount::mount_to(root.clone().unchecked_into(), move || {
        provide_context(store);
        view! { <StepsPanel/> }
    });
    store.start_sim();
    settle().await;
    let publish = root.query_selector("[data-testid=lab-step][data-step=publish]").unwrap().unwrap();
    publish.unchecked_ref::<web_sys::HtmlElement>().click();
    settle().await;
    // The block with `curl http://A.B.C.D/`: node1's own address is filled in.
    let blocks = root.query_selector_all("[data-testid=step-detail] [data-testid=step-code]").unwrap();
    let mut clicked = false;
    for i in 0..blocks.length() {
        let b: web_sys::Element = blocks.item(i).unwrap().unchecked_into();
        if b.text_content().unwrap_or_default().contains("curl http://") {
            assert!(b.text_content().unwrap().contains("curl http://192.168.1.10/"), "{:?}", b.text_content());
            let run = b.query_selector("[data-testid=run-in-terminal]").unwrap().unwrap();
            run.unchecked_ref::<web_sys::HtmlElement>().click();
            clicked = true;
        }
    }
    assert!(clicked);
    assert_eq!(typed.borrow().as_str(), "curl http://192.168.1.10/\r");
    // In the past, there is nothing to type into.
    store.cursor.set(Some(0));
    settle().await;
    assert!(!store.type_keys("ls\r"));
    drop(handle);
}

// The instructor's dashboard, fed the hub's feed frames by hand: learners'
// node1s as the simulator makes them (the same events a live node streams).

/// The feed's frames for a learner who ran `cmds` on a simulated node1:
/// their snapshot, then their events in one burst (as the hub tags them).
fn feed_frames(learner: &str, name: &str, cmds: &[&str]) -> Vec<String> {
    let store = Store::new();
    store.start_sim();
    let base = store.base.get_untracked();
    let seq = store.base_seq.get_untracked();
    let before = store.events.with_untracked(Vec::len);
    for c in cmds {
        store.sim_run(c, (100, 30));
    }
    let tag = |msg: serde_json::Value| {
        serde_json::json!({ "learner": learner, "name": name, "class": "c1", "node": format!("n-{learner}"), "hub_ms": crate::store::now_ms(), "msg": msg })
            .to_string()
    };
    let mut out = vec![tag(serde_json::to_value(StreamMsg::Snapshot { seq, state: base }).unwrap())];
    let evs = store.events.with_untracked(|v| v.clone());
    if !evs.is_empty() {
        let burst: Vec<StreamMsg> = evs.into_iter().map(StreamMsg::Event).collect();
        out.push(tag(serde_json::to_value(burst).unwrap()));
    }
    let _ = before;
    out
}

fn dnat_delete(frames: &[String]) -> String {
    // The DNAT rule the learner's node1 holds, as `iptables -t nat -D …`.
    let mut m = crate::components::dashboard::model::Model::new(berth_shared::lab::deploy_docker());
    for f in frames {
        m.take(f);
    }
    let rule = m.learners.values().next().unwrap().state.rules.iter().find(|(t, r)| t == "nat" && r.contains("DNAT")).cloned().unwrap();
    format!("iptables -t nat -D {}", rule.1.trim_start_matches("-A "))
}

#[wasm_bindgen_test]
fn the_dashboards_model_keeps_each_learners_state_from_frames_and_rolls_up_why_they_are_stuck() {
    use crate::components::dashboard::model::{heatmap, order, Filter, Model, Sort};
    let publish = [
        "docker run hello-world",
        "docker pull alpine",
        "docker run alpine",
        "docker run --name nginx-public -d --rm -p 80:80 nginx:alpine",
    ];
    let mut m = Model::new(berth_shared::lab::deploy_docker());
    let roster = serde_json::json!({ "roster": [
        { "id": "la", "name": "ada", "class": "c1", "last_activity_ms": 1000, "hand_ms": null, "node": { "id": "n-la" } },
        { "id": "lb", "name": "bob", "class": "c1", "last_activity_ms": 1000, "hand_ms": null, "node": { "id": "n-lb" } },
        { "id": "lc", "name": "cy", "class": "c1", "last_activity_ms": 1000, "hand_ms": 5, "node": { "id": "n-lc" } },
    ]});
    assert_eq!(m.take(&roster.to_string()), vec!["la", "lb", "lc"]);
    for f in feed_frames("la", "ada", &["docker run hello-world"]) {
        m.take(&f);
    }
    let mut bob = feed_frames("lb", "bob", &publish);
    let del = dnat_delete(&bob);
    let mut cmds = publish.to_vec();
    cmds.push(&del);
    bob = feed_frames("lb", "bob", &cmds);
    for f in &bob {
        m.take(f);
    }
    let tiles = m.tiles();
    let ada = tiles.iter().find(|t| t.id == "la").unwrap();
    assert!(ada.containers.iter().any(|c| !c.running), "hello-world ran and exited: {:?}", ada.containers);
    assert_eq!(ada.bridges, vec!["docker0 172.17.0.1/16".to_string()]);
    let (_, _, st) = ada.step.clone().expect("ada is on a step");
    assert_eq!(st, berth_shared::lab::StepState::Current);
    assert!(ada.done.0 >= 1 && ada.step_id.as_deref() != Some("hello"), "hello-world's step is done: {:?}", ada.step);
    let bob_t = tiles.iter().find(|t| t.id == "lb").unwrap();
    let web = bob_t.containers.iter().find(|c| c.name == "nginx-public").unwrap();
    assert!(web.running && web.ports == vec!["80→80/tcp".to_string()], "{web:?}");
    assert_eq!(bob_t.step.as_ref().map(|s| s.2), Some(berth_shared::lab::StepState::Failed));
    // The heatmap: bob under publish × port.dnat_missing, alone.
    let cells = heatmap(&m.lab, &tiles);
    let dnat = cells.iter().find(|c| c.code == "port.dnat_missing").unwrap_or_else(|| panic!("{cells:?}"));
    assert_eq!((dnat.step.as_str(), dnat.learners.clone()), ("publish", vec!["bob".to_string()]));
    assert!(cells.iter().all(|c| c.code != "port.dnat_missing" || c.learners.len() == 1));
    // Raised hands: from the roster, and from the feed.
    assert_eq!(order(&tiles, Sort::Name, &Filter::HandRaised), vec!["lc"]);
    m.take(&serde_json::json!({ "hand": { "learner": "la", "raised": true }, "hub_ms": 9 }).to_string());
    m.take(&serde_json::json!({ "hand": { "learner": "lc", "raised": false }, "hub_ms": 9 }).to_string());
    let tiles = m.tiles();
    assert_eq!(order(&tiles, Sort::Name, &Filter::HandRaised), vec!["la"]);
    assert_eq!(order(&tiles, Sort::StuckLongest, &Filter::All)[0], "la", "a raised hand first");
    assert_eq!(order(&tiles, Sort::Name, &Filter::Code("port.dnat_missing".into())), vec!["lb"]);
    assert_eq!(order(&tiles, Sort::Name, &Filter::Step("publish".into())), vec!["lb"]);

    // The last command line (a ShellCommand event from the node), a takeover, a broadcast.
    assert!(m.tile("la").unwrap().last_command.is_none());
    let cmd = berth_shared::Envelope::new(
        9_000,
        1,
        berth_shared::Event::ShellCommand { shell: "t1".into(), command: "dokcer ps".into(), exit_code: 127 },
    );
    m.take(&serde_json::json!({ "learner": "la", "hub_ms": 10, "msg": StreamMsg::Event(cmd) }).to_string());
    assert_eq!(m.tile("la").unwrap().last_command, Some(("dokcer ps".to_string(), 127)));
    let over = |active: bool| serde_json::json!({ "takeover": { "learner": "lb", "class": "c1", "state": { "active": active, "by": "instructor 3f9a1c" } }, "hub_ms": 11 });
    assert_eq!(m.take(&over(true).to_string()), vec!["lb".to_string()]);
    assert_eq!(m.tile("lb").unwrap().takeover.as_deref(), Some("instructor 3f9a1c"));
    m.take(&over(false).to_string());
    assert_eq!(m.tile("lb").unwrap().takeover, None);
    let b = serde_json::json!({ "broadcast": { "id": "b1", "class": "c1", "text": "Look at DOCKER", "command": "iptables -t nat -S DOCKER", "at_ms": 12 }, "hub_ms": 12 });
    assert!(m.take(&b.to_string()).is_empty(), "a broadcast changes no tile");
    m.take(&b.to_string());
    assert_eq!(m.sent.len(), 1, "the same broadcast twice is one");
    assert_eq!(m.sent[0].command.as_deref(), Some("iptables -t nat -S DOCKER"));
}

#[wasm_bindgen_test]
fn a_snapshot_fetched_late_takes_the_events_that_came_after_it() {
    use crate::components::dashboard::model::Model;
    let frames = feed_frames("la", "ada", &["docker run --name nginx-demo -d --rm nginx:alpine"]);
    let snap: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
    let StreamMsg::Snapshot { seq, state } = serde_json::from_value(snap["msg"].clone()).unwrap() else { panic!() };
    let burst: serde_json::Value = serde_json::from_str(&frames[1]).unwrap();
    let evs: Vec<StreamMsg> = serde_json::from_value(burst["msg"].clone()).unwrap();
    let mut m = Model::new(berth_shared::lab::deploy_docker());
    // The dashboard opened mid-stream: the first half of the events is in
    // the node's snapshot, the feed brings the second half (and some of the first).
    let half = evs.len() / 2;
    let mut at_half = state.clone();
    for e in &evs[..half] {
        let StreamMsg::Event(env) = e else { panic!() };
        berth_shared::apply(&mut at_half, &env.event);
    }
    let half_seq = match &evs[half - 1] {
        StreamMsg::Event(e) => e.seq,
        _ => seq,
    };
    let late = serde_json::json!({ "learner": "la", "name": "ada", "node": "n-la", "hub_ms": 1, "msg": serde_json::to_value(&evs[half - 2..]).unwrap() });
    m.take(&late.to_string());
    assert!(!m.learners["la"].whole);
    assert!(m.take_snapshot("la", half_seq, at_half, 2.0));
    let mut want = state;
    for e in &evs {
        let StreamMsg::Event(env) = e else { panic!() };
        berth_shared::apply(&mut want, &env.event);
    }
    assert_eq!(m.learners["la"].state, want, "no event lost or applied twice");
    assert!(!m.take_snapshot("la", 0, Default::default(), 3.0), "once whole, a snapshot fetched late is ignored");
}

#[wasm_bindgen_test]
async fn the_dashboard_draws_a_tile_per_learner_the_heatmap_and_hands_and_redraws_only_the_tile_that_changed() {
    use crate::components::dashboard::{Dash, DashboardView};
    let doc = web_sys::window().unwrap().document().unwrap();
    let root = doc.create_element("div").unwrap();
    doc.body().unwrap().append_child(&root).unwrap();
    let dash = Dash::new();
    let handle = leptos::mount::mount_to(root.clone().unchecked_into(), move || view! { <DashboardView dash/> });
    let publish = [
        "docker run hello-world",
        "docker pull alpine",
        "docker run alpine",
        "docker run --name nginx-public -d --rm -p 80:80 nginx:alpine",
    ];
    dash.take(&feed_frames("la", "ada", &[]));
    dash.take(&feed_frames("lb", "bob", &["docker run hello-world"]));
    dash.take(&feed_frames("lc", "cy", &publish));
    settle().await;
    assert_eq!(root.query_selector_all("[data-testid=tile]").unwrap().length(), 3);
    let cy = "[data-testid=tile][data-learner=lc]";
    assert_eq!(
        attr_in(&root, &format!("{cy} [data-testid=mini-container][data-name=nginx-public]"), "data-status").as_deref(),
        Some("running")
    );
    assert_eq!(text_in(&root, &format!("{cy} [data-testid=mini-port]")).as_deref(), Some("80→80/tcp"));
    assert!(root.query_selector("[data-testid=heat-cell][data-code=port\\.dnat_missing]").unwrap().is_none());
    // Mark ada's tile: a change of cy's must not redraw it.
    let ada = root.query_selector("[data-testid=tile][data-learner=la] [data-testid=tile-name]").unwrap().unwrap();
    ada.set_attribute("data-mark", "kept").unwrap();
    let mut cmds = publish.to_vec();
    let del = dnat_delete(&feed_frames("lc", "cy", &publish));
    cmds.push(&del);
    dash.take(&feed_frames("lc", "cy", &cmds));
    settle().await;
    let cell = root
        .query_selector("[data-testid=heat-cell][data-code=port\\.dnat_missing]")
        .unwrap()
        .expect("a heat cell for the deleted DNAT rule");
    assert_eq!(cell.get_attribute("data-step").as_deref(), Some("publish"));
    assert_eq!(cell.get_attribute("data-count").as_deref(), Some("1"));
    assert!(cell.text_content().unwrap().contains("cy"));
    assert_eq!(attr_in(&root, &format!("{cy} [data-testid=tile-step]"), "data-state").as_deref(), Some("failed"));
    assert_eq!(attr_in(&root, "[data-testid=tile][data-learner=la] [data-testid=tile-name]", "data-mark").as_deref(), Some("kept"));
    // A raised hand shows, and the filter keeps only that tile.
    dash.take(&[serde_json::json!({ "hand": { "learner": "lb", "raised": true }, "hub_ms": 1 }).to_string()]);
    settle().await;
    assert!(root.query_selector("[data-testid=tile][data-learner=lb] [data-testid=hand]").unwrap().is_some());
    assert!(root.query_selector("[data-testid=tile][data-learner=la] [data-testid=hand]").unwrap().is_none());
    dash.filter.set(crate::components::dashboard::model::Filter::HandRaised);
    settle().await;
    let shown = root.query_selector_all("[data-testid=tile]").unwrap();
    assert_eq!(shown.length(), 1);
    // A click on a heat cell filters the grid by its code.
    cell.unchecked_ref::<web_sys::HtmlElement>().click();
    settle().await;
    let tiles = root.query_selector_all("[data-testid=tile]").unwrap();
    assert_eq!(tiles.length(), 1);
    assert_eq!(tiles.item(0).unwrap().unchecked_into::<web_sys::Element>().get_attribute("data-learner").as_deref(), Some("lc"));
    drop(handle);
}
