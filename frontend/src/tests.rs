//! Component tests, in headless Chromium (wasm-bindgen-test-runner with
//! Debian's chromedriver; `frontend/webdriver.json` has the flags): the
//! diagrams render State as events arrive, and the timeline's cursor shows
//! an earlier state.

use berth_shared::{Envelope, Event, StreamMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

use crate::fs::FilesystemDiagram;
use crate::net::{NetworkDiagram, RulesPanel};
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
        view! { <NetworkDiagram store=store/> <RulesPanel store=store/> <FilesystemDiagram store=store/> }
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
    let lines: Vec<String> = events().iter().map(crate::app::describe).collect();
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
