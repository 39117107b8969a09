//! The filesystem diagram: image layers (each drawn once, however many
//! containers share it), and for each container its overlay — LowerDir
//! (cables to the layers), UpperDir (with the files it changed), WorkDir,
//! MergedDir — and its volumes and bind mounts at their paths.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::store::{Selection, Store};

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}kB", n as f64 / 1e3),
        n => format!("{n}B"),
    }
}

/// The last part of a dir path that names it (overlay2/<id>/diff → <id>).
fn dir_tail(p: &str) -> String {
    let parts: Vec<&str> = p.rsplit('/').collect();
    match parts.as_slice() {
        [leaf, id, ..] => format!("…/{}/{leaf}", short(id)),
        _ => p.to_string(),
    }
}

#[component]
pub fn FilesystemDiagram(store: Store) -> impl IntoView {
    let view_state = Memo::new(move |_| store.shown());
    // The selected container's changes (Docker's `docker diff`), fetched live.
    let changes = RwSignal::new(BTreeMap::<String, Vec<(String, u8)>>::new());
    Effect::new(move |_| {
        let Some(Selection::Container(id)) = store.selected.get() else { return };
        let _ = store.live.get(); // refresh as events arrive
        if !matches!(store.source.get_untracked(), crate::store::Source::Live { .. }) {
            return;
        }
        spawn_local(async move {
            if let Ok(list) = crate::api::changes(&id).await {
                changes.update(|m| {
                    m.insert(id, list);
                });
            }
        });
    });
    move || {
        let state = view_state.get();
        let sel = store.selected.get();
        let containers: Vec<_> = state.containers.values().cloned().collect();
        // Layers used by some container, bottom first, each once.
        let by_dir: BTreeMap<&str, &berth_shared::Layer> = state.layers.values().map(|l| (l.dir.as_str(), l)).collect();
        let mut order: Vec<String> = Vec::new();
        for c in &containers {
            for dir in c.layer.lower.iter().rev() {
                if let Some(l) = by_dir.get(dir.as_str()) {
                    if !order.contains(&l.chain_id) {
                        order.push(l.chain_id.clone());
                    }
                }
            }
        }
        let row = 30.0;
        let layer_y = |i: usize| 44.0 + row * (order.len() - 1 - i) as f64;
        let card_h = 150.0;
        let height = (54.0 + row * order.len() as f64).max(40.0 + (card_h + 16.0) * containers.len() as f64) + 40.0;
        let changes_now = changes.get();
        view! {
            <svg class="diagram" viewBox=format!("0 0 720 {height}") data-testid="fs-diagram" role="img" aria-label="layers and overlays">
                <text class="host-label" x="12" y="24">"image layers (shared, read-only)"</text>
                <text class="host-label" x="330" y="24">"containers: overlay = LowerDir + UpperDir → MergedDir"</text>
                {order.iter().enumerate().map(|(i, chain)| {
                    let l = state.layers.get(chain).cloned();
                    let y = layer_y(i);
                    let users = containers.iter().filter(|c| l.as_ref().is_some_and(|l| c.layer.lower.contains(&l.dir))).count();
                    let selected = sel == Some(Selection::Layer(chain.clone()));
                    let key = chain.clone();
                    view! {
                        <g class="layer" class:selected=selected data-testid="layer"
                            on:click=move |_| store.selected.set(Some(Selection::Layer(key.clone())))>
                            <rect x="12" y=y width="270" height=row - 6.0 rx="4"/>
                            <text x="20" y=y + 16.0>{format!("{}  {}  ×{users}", short(chain), human(l.as_ref().map(|l| l.size).unwrap_or(0)))}</text>
                        </g>
                    }
                }).collect_view()}
                {containers.iter().enumerate().map(|(i, c)| {
                    let y = 40.0 + (card_h + 16.0) * i as f64;
                    let id = c.id.clone();
                    let selected = sel == Some(Selection::Container(c.id.clone()));
                    let cables = c.layer.lower.iter().filter_map(|dir| {
                        let l = by_dir.get(dir.as_str())?;
                        let li = order.iter().position(|x| *x == l.chain_id)?;
                        let ly = layer_y(li) + row / 2.0 - 3.0;
                        Some(view! { <path class="cable" d=format!("M 282 {ly} C 310 {ly}, 310 {}, 330 {}", y + 100.0, y + 100.0)/> })
                    }).collect_view();
                    let changed = changes_now.get(&c.id).cloned().unwrap_or_default();
                    let shown_changes: Vec<String> = changed.iter().take(4).map(|(p, k)| format!("{} {p}", match k { 1 => "A", 2 => "D", _ => "C" })).collect();
                    view! {
                        <g class="overlay" class:selected=selected class:stopped=!c.mounted data-testid=format!("overlay-{}", c.name)
                            on:click=move |_| store.selected.set(Some(Selection::Container(id.clone())))>
                            {cables}
                            <rect x="330" y=y width="378" height=card_h rx="8"/>
                            <text class="title" x="342" y=y + 18.0>{format!("{} ({})", c.name, if c.mounted { "mounted" } else { "not mounted" })}</text>
                            <text class="k" x="342" y=y + 38.0>"MergedDir"</text><text x="420" y=y + 38.0>{dir_tail(&c.layer.merged)}</text>
                            <text class="k" x="342" y=y + 56.0>"UpperDir"</text><text x="420" y=y + 56.0>{dir_tail(&c.layer.upper)}</text>
                            <text class="changes" x="352" y=y + 72.0 data-testid="upper-changes">
                                {if shown_changes.is_empty() { "(no changes yet)".to_string() } else { shown_changes.join("   ") }}
                            </text>
                            <text class="k" x="342" y=y + 90.0>"WorkDir"</text><text x="420" y=y + 90.0>{dir_tail(&c.layer.work)}</text>
                            <text class="k" x="342" y=y + 108.0>"LowerDir"</text><text x="420" y=y + 108.0>{format!("{} layer(s) ←", c.layer.lower.len())}</text>
                            {c.mounts.iter().enumerate().map(|(k, m)| {
                                let vol = (m.kind == "volume").then(|| m.name.clone());
                                view! {
                                <text class="mount" x="342" y=y + 126.0 + 14.0 * k as f64 data-testid="mount"
                                    on:click=move |ev| if let Some(v) = vol.clone() { ev.stop_propagation(); store.selected.set(Some(Selection::Volume(v))) }>
                                    {format!("{} {} → {}{}", m.kind, if m.name.is_empty() { m.source.clone() } else { m.name.clone() }, m.destination, if m.readonly { " (ro)" } else { "" })}
                                </text>
                            }}).collect_view()}
                        </g>
                    }
                }).collect_view()}
                {containers.is_empty().then(|| view! {
                    <text class="muted" x="330" y="60">"No containers yet."</text>
                })}
            </svg>
        }
    }
}
