//! The network diagram: node1, its bridges with their gateway addresses,
//! each running container's namespace with its interfaces, the veth cables
//! into the bridges, and published ports as arrows from the host's port to
//! the container's; beside it the netfilter rules berth added, the selected
//! element's rules highlighted.

use berth_shared::State;
use leptos::prelude::*;

use berth_shared::lab::Element;

use crate::components::steps::{flagged, LabView};
use crate::store::{use_shown, use_store, Selection};

const W: f64 = 720.0;

/// A container on the diagram: where its box is.
struct Placed {
    id: String,
    name: String,
    /// Frozen by `docker pause`.
    paused: bool,
    /// Its healthcheck's verdict.
    health: Option<String>,
    x: f64,
    ifaces: Vec<(String, String, String, String)>,  // (ifname, ip/prefix, bridge, host_if)
    ports: Vec<(String, u16, String, u16, String)>, // (host ip, host port, container ip, port, proto)
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Does this rule concern the selection?
pub fn rule_matches(rule: &str, sel: &Option<Selection>, state: &State) -> bool {
    match sel {
        Some(Selection::Container(id)) => state
            .containers
            .get(id)
            .is_some_and(|c| c.endpoints.values().any(|e| rule.contains(&format!("{}/32", e.ip)) || rule.contains(&format!("{}:", e.ip)))),
        Some(Selection::Port(_, port)) => rule.contains(&format!("--dport {port} ")) || rule.ends_with(&format!("--dport {port}")),
        Some(Selection::Bridge(b)) => rule.split_whitespace().any(|w| w == b),
        Some(Selection::Rule(_, r)) => r == rule,
        _ => false,
    }
}

#[component]
pub fn NetworkDiagram() -> impl IntoView {
    let store = use_store();
    let lab = use_context::<LabView>();
    let view_state = use_shown();
    move || {
        let state = view_state.get();
        let sel = store.selected.get();
        let bridges: Vec<_> = state.bridges.values().cloned().collect();
        // The host's own interfaces (not bridges, not container cables), as
        // the kernel shows them: lo, the uplink, anything made by hand.
        let host_links: Vec<(String, String)> = state
            .links
            .iter()
            .filter(|(name, l)| l.kind != "bridge" && l.master.is_none() && !state.bridges.contains_key(*name))
            .take(3)
            .map(|(name, l)| {
                (
                    name.clone(),
                    format!(
                        "{name} {}{}",
                        l.addresses.iter().find(|a| a.contains('.')).cloned().unwrap_or_default(),
                        if l.up { "" } else { " (down)" }
                    ),
                )
            })
            .collect();
        let running: Vec<_> = state.containers.values().filter(|c| !c.endpoints.is_empty()).cloned().collect();
        let n = running.len().max(1) as f64;
        let col = (W - 20.0) / n;
        let placed: Vec<Placed> = running
            .iter()
            .enumerate()
            .map(|(i, c)| Placed {
                id: c.id.clone(),
                name: c.name.clone(),
                paused: c.paused,
                health: c.health.clone(),
                x: 10.0 + col * i as f64,
                ifaces: c
                    .endpoints
                    .values()
                    .map(|e| (e.ifname.clone(), format!("{}/{}", e.ip, e.prefix), e.bridge.clone(), e.host_if.clone()))
                    .collect(),
                ports: c
                    .ports
                    .iter()
                    .map(|p| (p.host_ip.clone(), p.host_port, p.container_ip.clone(), p.container_port, p.proto.clone()))
                    .collect(),
            })
            .collect();
        let bridge_y = |i: usize| 118.0 + 34.0 * i as f64;
        let box_y = bridge_y(bridges.len().max(1)) + 40.0;
        let height = box_y + 110.0;
        let bridge_index = |name: &str| bridges.iter().position(|b| b.name == name);
        let box_w = (col - 12.0).min(220.0);
        let ports: Vec<_> = placed.iter().flat_map(|p| p.ports.iter().map(move |port| (p.x, p.id.clone(), port.clone()))).collect();
        let nports = ports.len().max(1) as f64;
        view! {
            <svg class="diagram" viewBox=format!("0 0 {W} {height}") data-testid="network-diagram" role="img" aria-label="node1's network">
                <defs>
                    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/>
                    </marker>
                </defs>
                <rect class="host" x="4" y="4" width=W - 8.0 height=height - 8.0 rx="10"/>
                <text class="host-label" x="16" y="24">"node1 — the host's network namespace"</text>
                {host_links.iter().enumerate().map(|(i, (name, text))| {
                    let x = W - 14.0 - 190.0 * (i as f64 + 1.0);
                    view! {
                        <g class="hostlink" class:flagged=flagged(lab, &Element::Link(name.clone())) data-testid=format!("link-{name}")>
                            <rect x=x y="12" width="184" height="18" rx="4"/>
                            <text x=x + 6.0 y="25">{text.clone()}</text>
                        </g>
                    }
                }).collect_view()}
                {ports.iter().enumerate().map(|(i, (cx, id, (hip, hport, cip, cport, proto)))| {
                    let label = format!("{hip}:{hport} → {cip}:{cport}/{proto}");
                    let px = 16.0 + (W - 32.0) / nports * i as f64;
                    let pw = ((W - 32.0) / nports - 8.0).min(label.chars().count() as f64 * 6.7 + 20.0);
                    let selected = sel == Some(Selection::Port(id.clone(), *hport));
                    let (hport, cid) = (*hport, id.clone());
                    let tx = cx + box_w / 2.0;
                    view! {
                        <g class="port" class:selected=selected class:flagged=flagged(lab, &Element::Port(hport)) data-testid=format!("port-{hport}")
                            on:click=move |_| store.selected.set(Some(Selection::Port(cid.clone(), hport)))>
                            <rect x=px y="36" width=pw height="24" rx="12"/>
                            <text x=px + 10.0 y="52">{label}</text>
                            <path class="flow" d=format!("M {} 60 C {} 90, {} {}, {} {}", px + pw / 2.0, px + pw / 2.0, tx, box_y - 30.0, tx, box_y) marker-end="url(#arrow)"/>
                        </g>
                    }
                }).collect_view()}
                {bridges.iter().enumerate().map(|(i, b)| {
                    let y = bridge_y(i);
                    let name = b.name.clone();
                    let selected = sel == Some(Selection::Bridge(b.name.clone()));
                    view! {
                        <g class="bridge" class:selected=selected class:flagged=flagged(lab, &Element::Bridge(b.name.clone())) data-testid=format!("bridge-{}", b.name)
                            on:click=move |_| store.selected.set(Some(Selection::Bridge(name.clone())))>
                            <rect x="16" y=y width=W - 32.0 height="22" rx="4"/>
                            <text x="26" y=y + 15.0>{format!("{}  {}/{}  (bridge)", b.name, b.address, b.prefix)}</text>
                        </g>
                    }
                }).collect_view()}
                {placed.iter().map(|p| {
                    let id = p.id.clone();
                    let selected = sel == Some(Selection::Container(p.id.clone()));
                    let cables = p.ifaces.iter().enumerate().map(|(k, (_, _, bridge, host_if))| {
                        let by = bridge_index(bridge).map(bridge_y).unwrap_or(bridge_y(0)) + 22.0;
                        let x = p.x + 20.0 + 40.0 * k as f64;
                        view! {
                            <g class="veth">
                                <line x1=x y1=by x2=x y2=box_y/>
                                <text x=x + 5.0 y=by + 14.0>{host_if.clone()}</text>
                            </g>
                        }
                    }).collect_view();
                    view! {
                        <g class="netns" class:selected=selected class:paused=p.paused class:unhealthy=p.health.as_deref() == Some("unhealthy") class:flagged=flagged(lab, &Element::Container(p.name.clone())) data-testid=format!("container-{}", p.name)
                            on:click=move |_| store.selected.set(Some(Selection::Container(id.clone())))>
                            {cables}
                            <rect x=p.x y=box_y width=box_w height=96.0 rx="8"/>
                            <text class="title" x=p.x + 10.0 y=box_y + 18.0>{p.name.clone()}{p.paused.then_some("  (paused)")}{p.health.clone().map(|h| format!("  ({h})"))}</text>
                            <text class="muted" x=p.x + 10.0 y=box_y + 34.0>{format!("netns of {}", short(&p.id))}</text>
                            {p.ifaces.iter().enumerate().map(|(k, (ifname, ip, _, _))| view! {
                                <text class="iface" x=p.x + 10.0 y=box_y + 54.0 + 16.0 * k as f64 data-testid="iface">{format!("{ifname}  {ip}")}</text>
                            }).collect_view()}
                        </g>
                    }
                }).collect_view()}
                {running.is_empty().then(|| view! {
                    <text class="muted" x="16" y=box_y + 30.0>"No container is attached to a bridge. Try: docker run --name nginx-demo -d --rm -p 80:80 nginx:alpine"</text>
                })}
            </svg>
        }
    }
}

#[component]
pub fn RulesPanel() -> impl IntoView {
    let store = use_store();
    let lab = use_context::<LabView>();
    let view_state = use_shown();
    move || {
        let state = view_state.get();
        let sel = store.selected.get();
        let tables: Vec<(String, Vec<String>)> = ["filter", "nat"]
            .iter()
            .map(|t| {
                (
                    t.to_string(),
                    state.in_listing_order(t, state.rules.iter().filter(|(table, _)| table == t).map(|(_, r)| r.clone()).collect()),
                )
            })
            .filter(|(_, rules)| !rules.is_empty())
            .collect();
        let missing = state.rules_missing_from_kernel();
        let others = state.rules_by_others();
        view! {
            <div class="rules" data-testid="rules">
                {(!others.is_empty()).then(|| view! {
                    <h3>"in the kernel, not added by berth"</h3>
                    <ul>{others.iter().map(|(t, r)| view! { <li class="other" data-testid="rule-other"><code>{format!("-t {t} {r}")}</code></li> }).collect_view()}</ul>
                })}
                {tables.into_iter().map(|(table, rules)| view! {
                    <h3>{format!("iptables -t {table}")}</h3>
                    <ul>
                        {rules.into_iter().map(|r| {
                            let hit = rule_matches(&r, &sel, &state);
                            let gone = missing.contains(&(table.clone(), r.clone()));
                            let named = flagged(lab, &Element::Rule { table: table.clone(), rule: r.clone() });
                            let (t2, r2) = (table.clone(), r.clone());
                            view! {
                                <li class:hit=hit class:gone=gone class:flagged=named title=if gone { "berth added this rule but the kernel no longer has it (deleted by hand?)" } else { "" } data-testid="rule" on:click=move |_| store.selected.set(Some(Selection::Rule(t2.clone(), r2.clone())))>
                                    <code>{r}</code>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }).collect_view()}
            </div>
        }
    }
}
