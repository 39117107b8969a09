//! The filesystem diagram: image layers (each drawn once, however many
//! containers share it), volumes (which outlive containers: drawn whether
//! or not one uses them), and for each container its overlay — LowerDir
//! (cables to the layers), UpperDir (with the files it changed, as berthd's
//! file events tell them), WorkDir, MergedDir — and its volumes and bind
//! mounts at their paths.

use std::collections::BTreeMap;

use berth_shared::event::FileChangeKind;
use leptos::prelude::*;

use berth_shared::lab::Element;

use crate::components::steps::{flagged, LabView};
use crate::store::{use_shown, use_store, Selection};

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

/// The changes in an upper dir worth showing, as `docker diff` letters:
/// files first (a dir that only holds changed files says nothing more),
/// at most `max`, and how many more there are.
pub fn upper_changes(files: Option<&BTreeMap<String, FileChangeKind>>, max: usize) -> (Vec<String>, usize) {
    let Some(files) = files else { return (Vec::new(), 0) };
    let leaves: Vec<(&String, &FileChangeKind)> = files
        .iter()
        .filter(|(p, _)| !files.keys().any(|q| q.len() > p.len() && q.starts_with(p.as_str()) && q.as_bytes()[p.len()] == b'/'))
        .collect();
    let letter = |k: &FileChangeKind| match k {
        FileChangeKind::Added => "A",
        FileChangeKind::Deleted => "D",
        FileChangeKind::Modified => "C",
    };
    let shown = leaves.iter().take(max).map(|(p, k)| format!("{} {p}", letter(k))).collect();
    (shown, leaves.len().saturating_sub(max))
}

#[component]
pub fn FilesystemDiagram() -> impl IntoView {
    let store = use_store();
    let lab = use_context::<LabView>();
    let view_state = use_shown();
    move || {
        let state = view_state.get();
        let sel = store.selected.get();
        let containers: Vec<_> = state.containers.values().cloned().collect();
        // Layers bottom first, each once: those containers use, then the
        // rest of the images' (pulled, not run yet).
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
        for img in state.images.values() {
            for id in &img.layers {
                let l = state.layers.get(id).or_else(|| state.layers.values().find(|l| &l.diff_id == id));
                if let Some(l) = l {
                    if !order.contains(&l.chain_id) {
                        order.push(l.chain_id.clone());
                    }
                }
            }
        }
        const MAX_LAYERS: usize = 14;
        let hidden_layers = order.len().saturating_sub(MAX_LAYERS);
        order.truncate(MAX_LAYERS);
        let row = 30.0;
        let layer_y = |i: usize| 44.0 + row * (order.len() - 1 - i) as f64;
        let volumes: Vec<_> = state.volumes.values().cloned().collect();
        let vol_top = 44.0 + row * order.len() as f64 + if hidden_layers > 0 { 18.0 } else { 0.0 } + 34.0;
        let vol_y = |i: usize| vol_top + 20.0 + 40.0 * i as f64;
        let card_h = |c: &berth_shared::Container| 150.0 + 14.0 * c.mounts.len() as f64;
        let mut card_y = Vec::new();
        let mut y = 40.0;
        for c in &containers {
            card_y.push(y);
            y += card_h(c) + 16.0;
        }
        let left_h = if volumes.is_empty() { 44.0 + row * order.len() as f64 } else { vol_y(volumes.len()) };
        let height = left_h.max(y).max(90.0) + 24.0;
        view! {
            <svg class="diagram" viewBox=format!("0 0 720 {height}") data-testid="fs-diagram" role="img" aria-label="layers, overlays and volumes">
                <text class="host-label" x="12" y="24">"image layers (shared, read-only)"</text>
                <text class="host-label" x="330" y="24">"containers: overlay = LowerDir + UpperDir → MergedDir"</text>
                {order.is_empty().then(|| view! { <text class="muted" x="12" y="60">"No images yet."</text> })}
                {order.iter().enumerate().map(|(i, chain)| {
                    let l = state.layers.get(chain).cloned();
                    let y = layer_y(i);
                    let users = containers.iter().filter(|c| l.as_ref().is_some_and(|l| c.layer.lower.contains(&l.dir))).count();
                    let selected = sel == Some(Selection::Layer(chain.clone()));
                    let named = l.as_ref().is_some_and(|l| flagged(lab, &Element::Layer(l.dir.clone())) || flagged(lab, &Element::Layer(chain.clone())));
                    let key = chain.clone();
                    view! {
                        <g class="layer" class:selected=selected class:flagged=named data-testid="layer"
                            on:click=move |_| store.selected.set(Some(Selection::Layer(key.clone())))>
                            <rect x="12" y=y width="270" height=row - 6.0 rx="4"/>
                            <text x="20" y=y + 16.0>{format!("{}  {}  ×{users}", short(chain), human(l.as_ref().map(|l| l.size).unwrap_or(0)))}</text>
                        </g>
                    }
                }).collect_view()}
                {(hidden_layers > 0).then(|| view! {
                    <text class="muted" x="20" y=44.0 + row * order.len() as f64 + 8.0>{format!("+{hidden_layers} more layers")}</text>
                })}
                {(!volumes.is_empty()).then(|| view! {
                    <text class="host-label" x="12" y=vol_top>"volumes (outlive their containers)"</text>
                })}
                {volumes.iter().enumerate().map(|(i, v)| {
                    let y = vol_y(i);
                    let users: Vec<String> = containers.iter().filter(|c| c.mounts.iter().any(|m| m.kind == "volume" && m.name == v.name)).map(|c| c.name.clone()).collect();
                    let changed = state.files.get(&v.mountpoint).map(|f| f.len()).unwrap_or(0);
                    let selected = sel == Some(Selection::Volume(v.name.clone()));
                    let name = v.name.clone();
                    let label = if v.anonymous { short(&v.name) } else { v.name.clone() };
                    let used = if users.is_empty() { "not mounted".to_string() } else { format!("in {}", users.join(", ")) };
                    let cables = containers.iter().enumerate().flat_map(|(ci, c)| {
                        c.mounts.iter().enumerate().filter(|(_, m)| m.kind == "volume" && m.name == v.name).map(move |(k, _)| (ci, k))
                    }).map(|(ci, k)| {
                        let ty = card_y[ci] + 126.0 + 14.0 * k as f64 - 4.0;
                        view! { <path class="cable vol" d=format!("M 282 {} C 306 {}, 306 {ty}, 336 {ty}", y + 15.0, y + 15.0)/> }
                    }).collect_view();
                    view! {
                        <g class="volume" class:selected=selected class:flagged=flagged(lab, &Element::Volume(v.name.clone())) class:orphan=users.is_empty()
                            data-testid=format!("volume-{}", v.name) on:click=move |_| store.selected.set(Some(Selection::Volume(name.clone())))>
                            {cables}
                            <rect x="12" y=y width="270" height="34" rx="6"/>
                            <text x="20" y=y + 14.0>{label}</text>
                            <text class="k" x="20" y=y + 28.0>{format!("{}{}", used, if changed > 0 { format!(" · {changed} file(s) changed") } else { String::new() })}</text>
                        </g>
                    }
                }).collect_view()}
                {containers.iter().enumerate().map(|(i, c)| {
                    let y = card_y[i];
                    let h = card_h(c);
                    let id = c.id.clone();
                    let selected = sel == Some(Selection::Container(c.id.clone()));
                    let named = flagged(lab, &Element::Overlay(c.name.clone()));
                    let cables = c.layer.lower.iter().filter_map(|dir| {
                        let l = by_dir.get(dir.as_str())?;
                        let li = order.iter().position(|x| *x == l.chain_id)?;
                        let ly = layer_y(li) + row / 2.0 - 3.0;
                        Some(view! { <path class="cable" d=format!("M 282 {ly} C 310 {ly}, 310 {}, 330 {}", y + 100.0, y + 100.0)/> })
                    }).collect_view();
                    let (changes, more) = upper_changes(state.files.get(&c.layer.upper), 3);
                    let changes_text = match (changes.is_empty(), more) {
                        (true, _) => "(no changes yet)".to_string(),
                        (false, 0) => changes.join("   "),
                        (false, n) => format!("{}   +{n} more", changes.join("   ")),
                    };
                    view! {
                        <g class="overlay" class:selected=selected class:flagged=named class:stopped=!c.mounted data-testid=format!("overlay-{}", c.name)
                            on:click=move |_| store.selected.set(Some(Selection::Container(id.clone())))>
                            {cables}
                            <rect x="330" y=y width="378" height=h rx="8"/>
                            <text class="title" x="342" y=y + 18.0>{format!("{} ({})", c.name, if c.mounted { "mounted" } else { "not mounted" })}</text>
                            <text class="k" x="342" y=y + 38.0>"MergedDir"</text><text x="420" y=y + 38.0>{dir_tail(&c.layer.merged)}</text>
                            <text class="k" x="342" y=y + 56.0>"UpperDir"</text><text x="420" y=y + 56.0>{dir_tail(&c.layer.upper)}</text>
                            <text class="changes" x="352" y=y + 72.0 data-testid="upper-changes">{changes_text}</text>
                            <text class="k" x="342" y=y + 90.0>"WorkDir"</text><text x="420" y=y + 90.0>{dir_tail(&c.layer.work)}</text>
                            <text class="k" x="342" y=y + 108.0>"LowerDir"</text><text x="420" y=y + 108.0>{format!("{} layer(s) ←", c.layer.lower.len())}</text>
                            {c.mounts.iter().enumerate().map(|(k, m)| {
                                let vol = (m.kind == "volume").then(|| m.name.clone());
                                view! {
                                <text class="mount" x="342" y=y + 126.0 + 14.0 * k as f64 data-testid="mount"
                                    on:click=move |ev| if let Some(v) = vol.clone() { ev.stop_propagation(); store.selected.set(Some(Selection::Volume(v))) }>
                                    {format!("{} {} → {}{}", m.kind, if m.name.is_empty() { m.source.clone() } else { short_vol(&m.name) }, m.destination, if m.readonly { " (ro)" } else { "" })}
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

/// A volume's name as drawn: anonymous ones (64 hex digits) shortened.
fn short_vol(name: &str) -> String {
    if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        short(name)
    } else {
        name.to_string()
    }
}
