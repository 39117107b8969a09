//! The evidence panel: the facts of whatever is clicked in a diagram, as
//! the kernel and berthd's state tell them, and the events that made it.

use berth_shared::{Envelope, Event, State};
use leptos::prelude::*;

use crate::components::network::rule_matches;
use crate::describe::describe;
use crate::store::{use_shown, use_store, Selection};

/// The container an event is about, when it is about one (by its id, or by
/// what the state knows of it: its overlay's dirs, its veths).
fn container_of<'a>(e: &'a Event, state: &'a State) -> Option<&'a str> {
    let by_dir = |dir: &str| state.containers.values().find(|c| c.layer.merged == dir || c.layer.upper == dir).map(|c| c.id.as_str());
    let by_link = |name: &str| state.containers.values().find(|c| c.endpoints.values().any(|ep| ep.host_if == name)).map(|c| c.id.as_str());
    match e {
        Event::ContainerCreated { id, .. }
        | Event::OverlayMounted { id, .. }
        | Event::OverlayUnmounted { id, .. }
        | Event::NamespacesCreated { id, .. }
        | Event::ContainerStarted { id, .. }
        | Event::ProcessExecd { id, .. }
        | Event::ProcessExited { id, .. }
        | Event::ContainerExited { id, .. }
        | Event::ContainerRemoved { id }
        | Event::ContainerRenamed { id, .. }
        | Event::ContainerPaused { id }
        | Event::ContainerUnpaused { id }
        | Event::ContainerHealth { id, .. }
        | Event::EndpointAttached { id, .. }
        | Event::EndpointDetached { id, .. }
        | Event::PortPublished { id, .. }
        | Event::PortUnpublished { id, .. } => Some(id),
        Event::VolumePopulated { container, .. } => Some(container),
        Event::MountObserved { target, .. } | Event::MountGone { target } => by_dir(target),
        Event::FileChanged { dir, .. } => by_dir(dir),
        Event::LinkObserved { name, .. } | Event::LinkGone { name, .. } => by_link(name),
        _ => None,
    }
}

/// Does this event concern the selection? Matched on the event's fields,
/// never on its text.
fn concerns(e: &Event, sel: &Selection, state: &State) -> bool {
    let rule_hit = |rule: &str| rule_matches(rule, &Some(sel.clone()), state);
    match (sel, e) {
        (_, Event::RuleAdded { rule, .. } | Event::RuleRemoved { rule, .. }) => rule_hit(rule),
        (Selection::Container(id), e) => container_of(e, state) == Some(id.as_str()),
        (
            Selection::Bridge(b),
            Event::BridgeUp { name, .. }
            | Event::BridgeDown { name }
            | Event::LinkGone { name, .. }
            | Event::NetworkCreated { bridge: name, .. },
        ) => name == b,
        (Selection::Bridge(b), Event::LinkObserved { name, master, .. }) => name == b || master.as_deref() == Some(b.as_str()),
        (Selection::Bridge(b), Event::AddressObserved { link, .. } | Event::AddressGone { link, .. }) => link == b,
        (Selection::Bridge(b), Event::RouteObserved { dev, .. } | Event::RouteGone { dev, .. }) => dev.as_deref() == Some(b.as_str()),
        (Selection::Bridge(b), Event::EndpointAttached { bridge, .. }) => bridge == b,
        (Selection::Port(id, p), Event::PortPublished { id: c, host_port, .. } | Event::PortUnpublished { id: c, host_port, .. }) => {
            c == id && host_port == p
        }
        (Selection::Layer(chain), Event::LayerAdded { chain_id, .. } | Event::LayerRemoved { chain_id }) => chain_id == chain,
        (Selection::Layer(chain), Event::BuildLayer { chain_id, .. }) => chain_id == chain,
        (Selection::Layer(chain), Event::ImageAdded { layers, .. }) => layers.contains(chain),
        (Selection::Layer(chain), Event::FileChanged { dir, .. }) => state.layers.get(chain).is_some_and(|l| &l.dir == dir),
        (Selection::Volume(v), Event::VolumeCreated { name, .. } | Event::VolumeRemoved { name } | Event::VolumePopulated { name, .. }) => {
            name == v
        }
        (Selection::Volume(v), Event::FileChanged { dir, .. }) => state.volumes.get(v).is_some_and(|vol| &vol.mountpoint == dir),
        (Selection::Volume(v), Event::ContainerCreated { mounts, .. }) => mounts.iter().any(|m| &m.name == v),
        _ => false,
    }
}

#[component]
pub fn Evidence() -> impl IntoView {
    let store = use_store();
    let shown = use_shown();
    move || {
        let Some(sel) = store.selected.get() else {
            return view! { <p class="muted">"Click a container, bridge, port, layer or rule to see the evidence for it: its facts, and the events that made it."</p> }.into_any();
        };
        let state = shown.get();
        let facts = match &sel {
            Selection::Container(id) => state.containers.get(id).map(|c| {
                // What the kernel shows of it: its overlay in mountinfo, its veths.
                let mut kernel = Vec::new();
                if let Some(m) = state.mounts.get(&c.layer.merged) {
                    kernel.push(format!("mountinfo: {} {} on {}", m.fstype, m.source, c.layer.merged));
                }
                for e in c.endpoints.values() {
                    if let Some(l) = state.links.get(&e.host_if) {
                        kernel.push(format!(
                            "ip -d link: {}: {} master {} {}{}",
                            e.host_if,
                            l.kind,
                            l.master.clone().unwrap_or_default(),
                            if l.up { "UP" } else { "DOWN" },
                            l.link_netnsid.map(|n| format!(" link-netnsid {n}")).unwrap_or_default()
                        ));
                    }
                }
                format!("{}\n\n{}", kernel.join("\n"), serde_json::to_string_pretty(c).unwrap_or_default())
            }),
            Selection::Bridge(b) => state.bridges.get(b).map(|x| {
                let ports: Vec<&String> =
                    state.links.iter().filter(|(_, l)| l.master.as_deref() == Some(b.as_str())).map(|(n, _)| n).collect();
                let routes: Vec<String> = state
                    .routes
                    .iter()
                    .filter(|(_, _, d)| d.as_deref() == Some(b.as_str()))
                    .map(|(dst, g, _)| format!("{dst}{} dev {b}", g.as_ref().map(|g| format!(" via {g}")).unwrap_or_default()))
                    .collect();
                format!(
                    "ports (ip link show master {b}): {}\nroutes: {}\n\n{}",
                    ports.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    routes.join("; "),
                    serde_json::to_string_pretty(x).unwrap_or_default()
                )
            }),
            Selection::Port(id, p) => state
                .containers
                .get(id)
                .and_then(|c| c.ports.iter().find(|x| x.host_port == *p))
                .map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
            Selection::Layer(c) => state.layers.get(c).map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
            Selection::Rule(t, r) => Some(format!("iptables -t {t} -S\n{r}")),
            Selection::Volume(v) => state.volumes.get(v).map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
        }
        .unwrap_or_else(|| "(not in the state at this point of the timeline)".into());
        let upto = store.cursor.get().unwrap_or(usize::MAX);
        let related: Vec<Envelope> =
            store.events.with(|evs| evs.iter().take(upto).filter(|e| concerns(&e.event, &sel, &state)).cloned().collect());
        view! {
            <div data-testid="evidence">
                <pre class="facts-json">{facts}</pre>
                <h3>"events"</h3>
                <ol class="event-list">
                    {related.iter().rev().take(40).map(|e| view! {
                        <li><span class="seq">{format!("#{}", e.seq)}</span>" "{describe(&e.event)}</li>
                    }).collect_view()}
                </ol>
            </div>
        }
        .into_any()
    }
}
