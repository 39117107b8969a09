//! The page: which node1 it shows (live or simulated) and the daemon's facts.

use berth_shared::EngineMode;
use leptos::prelude::*;

use crate::api;

/// Where the page's node1 comes from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Live(api::Health),
    /// No berthd answered, or it cannot run containers: the page runs the lab
    /// as a simulation.
    Simulated(String),
}

#[component]
pub fn App() -> impl IntoView {
    let source = LocalResource::new(|| async {
        match api::health().await {
            Ok(h) if h.engine == EngineMode::Live => Source::Live(h),
            Ok(h) => Source::Simulated(
                h.reason.unwrap_or_else(|| "berthd cannot run containers here".into()),
            ),
            Err(e) => Source::Simulated(format!("no berthd answered ({e})")),
        }
    });
    let snapshot = LocalResource::new(api::snapshot);

    view! {
        <header class="topbar">
            <h1>"berth"</h1>
            <span class="subtitle">"Deploy a service in a Docker container"</span>
            <Suspense fallback=|| view! { <span class="badge" data-testid="mode">"connecting…"</span> }>
                {move || source.get().map(|s| match s {
                    Source::Live(_) => view! {
                        <span class="badge live" data-testid="mode">"live node1"</span>
                    }.into_any(),
                    Source::Simulated(why) => view! {
                        <span class="badge sim" data-testid="mode" title=why>"simulated node1"</span>
                    }.into_any(),
                })}
            </Suspense>
        </header>
        <main class="panes">
            <section class="pane" data-testid="daemon">
                <h2>"node1's engine"</h2>
                <Suspense fallback=|| view! { <p>"…"</p> }>
                    {move || snapshot.get().map(|s| match s {
                        Ok(snap) => match snap.state.daemon {
                            Some(d) => view! {
                                <dl class="facts">
                                    <dt>"berthd"</dt><dd data-testid="version">{d.version}</dd>
                                    <dt>"Engine API"</dt><dd>{d.api_version}</dd>
                                    <dt>"socket"</dt><dd><code>{d.socket}</code></dd>
                                    <dt>"data root"</dt><dd><code>{d.root}</code></dd>
                                    <dt>"events so far"</dt><dd>{snap.seq}</dd>
                                </dl>
                            }.into_any(),
                            None => view! { <p>"The daemon has not reported yet."</p> }.into_any(),
                        },
                        Err(e) => view! {
                            <p class="muted">"No live daemon: " {e}</p>
                        }.into_any(),
                    })}
                </Suspense>
            </section>
        </main>
    }
}
