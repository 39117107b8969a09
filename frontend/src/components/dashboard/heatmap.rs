//! Why the class is stuck: failing checks by step × diagnosis code, each
//! cell with its count and the learners in it; a click filters the grid.

use leptos::prelude::*;

use super::model::{heatmap, Filter, Tile};
use super::use_dash;

#[component]
pub fn Heatmap() -> impl IntoView {
    let dash = use_dash();
    let cells = Memo::new(move |_| {
        let tiles: Vec<Tile> = dash.tiles.with(|t| t.values().cloned().collect());
        dash.model.with_value(|m| heatmap(&m.lab, &tiles))
    });
    let total = move || dash.tiles.with(|t| t.len()).max(1);
    view! {
        <section class="pane heat-pane">
            <h2>"why the class is stuck: failing checks by step and code"</h2>
            <Show when=move || cells.with(|c| !c.is_empty()) fallback=|| view! { <p class="muted" data-testid="heat-empty">"no failing checks"</p> }>
                <div class="heat">
                    <For each=move || cells.get() key=|c| (c.step.clone(), c.code.clone(), c.learners.clone()) let:c>
                        {
                            let n = c.learners.len();
                            let heat = (n as f64 / total() as f64).clamp(0.0, 1.0);
                            let code = c.code.clone();
                            let click = move |_| dash.filter.set(Filter::Code(code.clone()));
                            view! {
                                <button class="heat-cell" data-testid="heat-cell" data-code=c.code.clone() data-step=c.step.clone()
                                    data-count=n style=format!("--heat: {heat:.2}") on:click=click
                                    title=format!("{n} of {} at {}. {}: {}", total(), c.step_no, c.step_title, c.learners.join(", "))>
                                    <span class="heat-step">{format!("{}. {}", c.step_no, c.step_title)}</span>
                                    <code class="heat-code">{c.code.clone()}</code>
                                    <span class="heat-count" data-testid="heat-count">{n}</span>
                                    <span class="heat-who" data-testid="heat-who">{c.learners.join(", ")}</span>
                                </button>
                            }
                        }
                    </For>
                </div>
            </Show>
        </section>
    }
}
