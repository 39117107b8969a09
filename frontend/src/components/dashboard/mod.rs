//! The instructor's dashboard: the page shows it instead of the lab when it
//! is served as the classroom hub's `/hub/` (see [`is_dashboard`]). It follows
//! the hub's feed (`/hub/api/feed`: the roster, then every learner's node
//! frames), keeps each learner's node1 state with the same `apply` as the
//! lab page, and draws:
//!
//! - the grid ([`grid`]): a tile per learner, live — their containers,
//!   bridge, published ports and volumes, the step they are on and its
//!   check state, idle time, a raised hand, a link to their page (read-only);
//!   sorted and filtered;
//! - why the class is stuck ([`heatmap`]): failing checks by step × code;
//! - each class ([`classes`]): its join link, a broadcast to its learners'
//!   pages, and its exports.
//!
//! The learner's side (a raised hand, the instructor's notices) and the
//! instructor's view of one learner's page are in [`crate::components::classroom`].

pub mod classes;
pub mod grid;
pub mod heatmap;
pub mod model;

use std::collections::BTreeMap;

use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::store::{gloo_net_sleep, now_ms, ws_url};
use model::{Filter, Model, Sent, Sort, Tile};

/// Is this page the hub's dashboard? The hub serves the page's own
/// index.html at `/hub/` (to the instructor only); anywhere else it is the lab.
pub fn is_dashboard() -> bool {
    web_sys::window().and_then(|w| w.location().pathname().ok()).is_some_and(|p| p == "/hub/" || p.starts_with("/hub/"))
}

/// The dashboard's state, shared with its parts through context.
#[derive(Clone, Copy)]
pub struct Dash {
    pub model: StoredValue<Model>,
    /// Every learner's tile, by id (a tile's memo redraws it only when it changes).
    pub tiles: RwSignal<BTreeMap<String, Tile>>,
    pub sort: RwSignal<Sort>,
    pub filter: RwSignal<Filter>,
    /// Now (Unix ms), ticking every second for idle times.
    pub now: RwSignal<f64>,
    pub connected: RwSignal<bool>,
    /// Broadcasts sent while the dashboard is open.
    pub sent: RwSignal<Vec<Sent>>,
}

impl Dash {
    pub fn new() -> Self {
        Dash {
            model: StoredValue::new(Model::new(berth_shared::lab::deploy_docker())),
            tiles: RwSignal::new(BTreeMap::new()),
            sort: RwSignal::new(Sort::StuckLongest),
            filter: RwSignal::new(Filter::All),
            now: RwSignal::new(now_ms()),
            connected: RwSignal::new(false),
            sent: RwSignal::new(Vec::new()),
        }
    }

    /// Takes a burst of feed frames: one update of the tiles.
    pub fn take(&self, frames: &[String]) {
        let (changed, tiles, sent) = self
            .model
            .try_update_value(|m| {
                let before = m.sent.len();
                let mut changed: Vec<String> = frames.iter().flat_map(|f| m.take(f)).collect();
                changed.sort();
                changed.dedup();
                let tiles: Vec<Tile> = changed.iter().filter_map(|id| m.tile(id)).collect();
                (changed, tiles, (m.sent.len() != before).then(|| m.sent.clone()))
            })
            .unwrap_or_default();
        if let Some(sent) = sent {
            self.sent.set(sent);
        }
        if changed.is_empty() {
            return;
        }
        self.tiles.update(|map| {
            for t in tiles {
                map.insert(t.id.clone(), t);
            }
        });
        // Learners whose stream began before this dashboard: their state, once.
        for id in changed {
            let node = self.model.with_value(|m| m.learners.get(&id).filter(|l| !l.whole).and_then(|l| l.node.clone()));
            if let Some(node) = node {
                let dash = *self;
                spawn_local(async move { dash.fetch_snapshot(id, node).await });
            }
        }
    }

    async fn fetch_snapshot(self, id: String, node: String) {
        #[derive(serde::Deserialize)]
        struct Snap {
            seq: u64,
            state: berth_shared::State,
        }
        let Ok(r) = gloo_net::http::Request::get(&format!("/n/{node}/api/state")).send().await else { return };
        let Ok(s) = r.json::<Snap>().await else { return };
        let tile = self.model.try_update_value(|m| m.take_snapshot(&id, s.seq, s.state, now_ms()).then(|| m.tile(&id)).flatten()).flatten();
        if let Some(t) = tile {
            self.tiles.update(|map| {
                map.insert(t.id.clone(), t);
            });
        }
    }

    /// Follows the hub's feed, reconnecting after a drop.
    fn follow(self) {
        spawn_local(async move {
            loop {
                match WebSocket::open(&ws_url("api/feed")) {
                    Ok(ws) => {
                        let (_, mut rx) = ws.split();
                        while let Some(Ok(m)) = rx.next().await {
                            if let Message::Text(t) = m {
                                self.connected.set(true);
                                self.take(&[t]);
                            }
                        }
                    }
                    Err(e) => leptos::logging::warn!("the feed: {e}"),
                }
                self.connected.set(false);
                gloo_net_sleep(1000).await;
            }
        });
    }
}

impl Default for Dash {
    fn default() -> Self {
        Self::new()
    }
}

pub fn use_dash() -> Dash {
    use_context::<Dash>().expect("the dashboard's state is provided by <Dashboard/>")
}

/// The whole dashboard, following the hub's feed.
#[component]
pub fn Dashboard() -> impl IntoView {
    let dash = Dash::new();
    dash.follow();
    view! { <DashboardView dash/> }
}

/// The dashboard over a given state (tests feed it frames by hand).
#[component]
pub fn DashboardView(dash: Dash) -> impl IntoView {
    provide_context(dash);
    let tick = set_interval_with_handle(move || dash.now.set(now_ms()), std::time::Duration::from_secs(1)).ok();
    on_cleanup(move || {
        if let Some(t) = tick {
            t.clear();
        }
    });
    let count = move || dash.tiles.with(|t| t.len());
    view! {
        <header class="topbar">
            <h1>"berth"</h1>
            <span class="subtitle">"the class, live: every learner's node1, their step, and why they are stuck"</span>
            <span class="badge" data-testid="learners">{move || format!("{} learners", count())}</span>
            {move || if dash.connected.get() {
                view! { <span class="badge live" data-testid="feed">"live"</span> }.into_any()
            } else {
                view! { <span class="badge" data-testid="feed">"connecting…"</span> }.into_any()
            }}
            <a class="switch" href="/hub/classes" data-testid="classes">"classes and join links"</a>
        </header>
        <main class="dashboard">
            <classes::Classes/>
            <heatmap::Heatmap/>
            <grid::Grid/>
        </main>
    }
}
