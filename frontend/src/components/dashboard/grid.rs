//! The grid: a tile per learner (keyed, each redrawn only when its own
//! learner changes), sorted and filtered.

use berth_shared::lab::StepState;
use leptos::prelude::*;

use super::model::{idle_text, order, Filter, Sort, Tile};
use super::use_dash;

#[component]
pub fn Grid() -> impl IntoView {
    let dash = use_dash();
    let ids = Memo::new(move |_| {
        let (sort, filter) = (dash.sort.get(), dash.filter.get());
        dash.tiles.with(|t| order(&t.values().cloned().collect::<Vec<_>>(), sort, &filter))
    });
    let steps: Vec<(String, String)> =
        dash.model.with_value(|m| m.lab.steps.iter().enumerate().map(|(i, s)| (s.id.clone(), format!("{}. {}", i + 1, s.title))).collect());
    let on_sort = move |ev: leptos::ev::Event| {
        dash.sort.set(match event_target_value(&ev).as_str() {
            "step" => Sort::Step,
            "name" => Sort::Name,
            _ => Sort::StuckLongest,
        })
    };
    let on_filter = move |ev: leptos::ev::Event| {
        let v = event_target_value(&ev);
        dash.filter.set(match v.as_str() {
            "" => Filter::All,
            "hand" => Filter::HandRaised,
            s => match s.strip_prefix("step:") {
                Some(step) => Filter::Step(step.to_string()),
                None => Filter::Code(s.strip_prefix("code:").unwrap_or(s).to_string()),
            },
        })
    };
    let filter_value = move || match dash.filter.get() {
        Filter::All => String::new(),
        Filter::HandRaised => "hand".into(),
        Filter::Step(s) => format!("step:{s}"),
        Filter::Code(c) => format!("code:{c}"),
    };
    let code_filter = move || match dash.filter.get() {
        Filter::Code(c) => Some(view! { <option value=format!("code:{c}")>{format!("failing with {c}")}</option> }),
        _ => None,
    };
    view! {
        <section class="pane grid-pane">
            <div class="grid-bar">
                <h2>"the class"</h2>
                <label>"sort "
                    <select data-testid="sort" on:change=on_sort>
                        <option value="stuck">"stuck longest"</option>
                        <option value="step">"step (furthest behind first)"</option>
                        <option value="name">"name"</option>
                    </select>
                </label>
                <label>"show "
                    <select data-testid="filter" on:change=on_filter prop:value=filter_value>
                        <option value="">"everyone"</option>
                        <option value="hand">"hand raised"</option>
                        {steps.into_iter().map(|(id, t)| view! { <option value=format!("step:{id}")>{format!("on {t}")}</option> }).collect_view()}
                        {code_filter}
                    </select>
                </label>
                <span class="muted" data-testid="shown">{move || format!("{} shown", ids.with(Vec::len))}</span>
            </div>
            <div class="tiles">
                <For each=move || ids.get() key=|id| id.clone() let:id>
                    <LearnerTile id/>
                </For>
            </div>
        </section>
    }
}

/// One learner's tile.
#[component]
fn LearnerTile(id: String) -> impl IntoView {
    let dash = use_dash();
    let key = id.clone();
    let tile = Memo::new(move |_| dash.tiles.with(|t| t.get(&key).cloned()));
    move || {
        tile.get()
            .map(|t| view! { <TileBody t/> })
            .map(|v| view! { <article class="tile" data-testid="tile" data-learner=id.clone()>{v}</article> })
    }
}

#[component]
fn TileBody(t: Tile) -> impl IntoView {
    let dash = use_dash();
    let last = t.last_ms;
    let idle = move || if last > 0.0 { idle_text(dash.now.get() - last) } else { "—".into() };
    let (state, step_text) = match &t.step {
        Some((n, title, st)) => (st.as_str(), format!("{n}. {title}")),
        None if t.done.0 == t.done.1 && t.done.1 > 0 => ("passed", "all steps done".to_string()),
        None => ("pending", "not started".to_string()),
    };
    let stuck = matches!(t.step, Some((_, _, StepState::Failed)));
    // Why the step it shows is stuck (a failed step's, before the current one's).
    let failing = t.failing.iter().find(|f| t.step_id.as_ref() == Some(&f.0)).or(t.failing.first()).cloned();
    let view_link = t.node.as_ref().map(|n| format!("/n/{n}/"));
    let containers = t.containers.clone();
    view! {
        <header class="tile-head">
            <span class="tile-name" data-testid="tile-name">{t.name.clone()}</span>
            {t.hand.then(|| view! { <span class="hand" data-testid="hand" title="asks for help">"hand raised"</span> })}
            <span class="tile-idle" title="since their node's last event" data-testid="idle">{idle}</span>
        </header>
        {t.takeover.clone().map(|by| view! { <div class="tile-takeover" data-testid="tile-takeover">{format!("{by} is typing in this terminal")}</div> })}
        <div class="tile-step" data-testid="tile-step" data-state=state class:stuck=stuck>
            <span class="dot"></span>
            <span>{step_text}</span>
            <span class="muted">{format!(" ({}/{})", t.done.0, t.done.1)}</span>
        </div>
        {failing.map(|(_, code, msg)| {
            let shown = code.clone();
            view! { <div class="tile-why" data-testid="tile-why" data-code=code title=msg><code>{shown}</code></div> }
        })}
        {t.last_command.clone().map(|(cmd, code)| {
            let title = if code == 0 { "their last command".to_string() } else { format!("their last command: exit status {code}") };
            view! {
                <div class="tile-cmd" data-testid="tile-cmd" data-exit=code.to_string() class:failed=code != 0 title=title>
                    <code>{format!("$ {cmd}")}</code>
                </div>
            }
        })}
        <div class="mini">
            {t.bridges.iter().map(|b| view! { <div class="mini-bridge">{b.clone()}</div> }).collect_view()}
            <ul class="mini-containers">
                {containers.into_iter().map(|c| {
                    let st = if c.running { "running" } else { "stopped" };
                    view! {
                        <li data-testid="mini-container" data-name=c.name.clone() data-status=st class=st>
                            <span class="dot"></span>{c.name.clone()}
                            {c.ports.iter().map(|p| view! { <span class="mini-port" data-testid="mini-port">{p.clone()}</span> }).collect_view()}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {(!t.volumes.is_empty()).then(|| view! { <div class="mini-volumes">{format!("volumes: {}", t.volumes.join(", "))}</div> })}
        </div>
        {view_link.map(|href| view! { <a class="drill" href=href target="_blank" data-testid="drill">"watch (read-only) ↗"</a> })}
    }
}
