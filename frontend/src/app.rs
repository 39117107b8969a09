//! The page: the lab's steps beside a terminal on node1, live diagrams of
//! its network and filesystem, the evidence for whatever is clicked, and a
//! timeline of every event to scrub, play, or replay a recording with no
//! backend. Every panel is a component under `components/`; they share the
//! one [`Store`](crate::store::Store) through Leptos' context.
//!
//! Served by a classroom hub at `/hub/` (to the instructor), the same page
//! is the class's dashboard instead ([`crate::components::dashboard`]).

use berth_shared::EngineMode;
use leptos::prelude::*;

use crate::api;
use crate::components::{Evidence, FilesystemDiagram, NetworkDiagram, Recordings, RulesPanel, StepsPanel, Terminal, Timeline};
use crate::store::{provide_store, Source};

#[component]
pub fn App() -> impl IntoView {
    if crate::components::dashboard::is_dashboard() {
        view! { <crate::components::dashboard::Dashboard/> }.into_any()
    } else {
        view! { <LabPage/> }.into_any()
    }
}

/// The lab: one learner's node1.
#[component]
fn LabPage() -> impl IntoView {
    let store = provide_store();
    crate::components::steps::provide_lab_view(store);
    let hub = crate::components::classroom::provide_hub();
    let engine = LocalResource::new(api::health);
    // `?sim` in the address asks for the simulated node1 even when a live one answers.
    let want_sim = web_sys::window().and_then(|w| w.location().search().ok()).is_some_and(|q| q.contains("sim"));
    Effect::new(move |_| match engine.get() {
        Some(Ok(h)) if h.engine == EngineMode::Live && !want_sim => {
            store.source.set(Source::Live { connected: false });
            store.connect_live();
        }
        Some(_) => store.start_sim(),
        None => {}
    });
    let badge = move || {
        match (store.source.get(), engine.get()) {
        (Source::Replay { name }, _) => view! { <span class="badge replay" data-testid="mode">{format!("replay: {name}")}</span> }.into_any(),
        (Source::Simulated, Some(Ok(h))) if h.engine == EngineMode::Live => view! { <span class="badge sim" data-testid="mode" title="chosen with ?sim: a live node1 is also there">"simulated node1"</span> }.into_any(),
        (_, Some(Ok(h))) if h.engine == EngineMode::Live => match store.source.get() {
            Source::Live { connected: true } => view! { <span class="badge live" data-testid="mode">"live node1"</span> }.into_any(),
            _ => view! { <span class="badge" data-testid="mode">"connecting…"</span> }.into_any(),
        },
        (_, Some(Ok(h))) => view! { <span class="badge sim" data-testid="mode" title=format!("berthd cannot run containers here: {}", h.reason.unwrap_or_default())>"simulated node1"</span> }.into_any(),
        (_, Some(Err(e))) => view! { <span class="badge sim" data-testid="mode" title=format!("no berthd answered: {e}")>"simulated node1"</span> }.into_any(),
        (_, None) => view! { <span class="badge" data-testid="mode">"connecting…"</span> }.into_any(),
    }
    };
    view! {
        <header class="topbar">
            <h1>"berth"</h1>
            <span class="subtitle">"Deploy a service in a Docker container — what each command does to node1"</span>
            {badge}
            // The switch: a live node1 can be swapped for the simulator, and
            // back (not in the instructor's view of a learner's node1).
            {move || match (engine.get(), store.source.get()) {
                _ if hub.instructor_view() => None,
                (Some(Ok(h)), Source::Simulated) if h.engine == EngineMode::Live => Some(view! { <a class="switch" href="?" data-testid="to-live">"use the live node1"</a> }.into_any()),
                (Some(Ok(h)), Source::Live { .. }) if h.engine == EngineMode::Live => Some(view! { <a class="switch" href="?sim" data-testid="to-sim">"try the simulated node1"</a> }.into_any()),
                _ => None,
            }}
            <crate::components::classroom::HubBar/>
        </header>
        <crate::components::classroom::HubBanners/>
        <main class="lab">
            <StepsPanel/>
            <section class="pane terminal-pane">
                <h2>"node1 $ — a real shell; docker talks to berthd"</h2>
                <Terminal/>
                <Recordings/>
            </section>
            <section class="pane net-pane">
                <h2>"network: bridges, namespaces, veth pairs, published ports"</h2>
                <NetworkDiagram/>
                <details class="rules-box" open>
                    <summary>"netfilter rules berth added (iptables -S)"</summary>
                    <RulesPanel/>
                </details>
            </section>
            <section class="pane fs-pane">
                <h2>"filesystem: image layers, overlays, volumes"</h2>
                <FilesystemDiagram/>
            </section>
            <section class="pane evidence">
                <h2>"evidence"</h2>
                <Evidence/>
            </section>
        </main>
        <footer class="bottom">
            <Timeline/>
        </footer>
    }
}
