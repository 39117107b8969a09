//! The lab page under a classroom hub: what the hub adds to a learner's
//! page, and to the instructor's view of it (`/n/<node>/`). A lone berthd
//! answers none of `api/hub/*`, and the page then shows none of this.
//!
//! - The learner: "ask for help" (their raised hand, on the instructor's
//!   dashboard), a banner while the instructor types in their terminal, and
//!   the instructor's broadcasts (a message, and a command to run or copy).
//! - The instructor: whose node1 this is, "take over the terminal" (their
//!   keystrokes then reach the learner's shell; the learner sees the
//!   banner) and "hand back", and the way back to the dashboard.
//!
//! Both hear the hub on `api/hub/notices` (a WebSocket; see berth-hub's
//! `teach`).

use futures::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::store::{gloo_net_sleep, use_store, ws_url};

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Named {
    id: String,
    name: String,
}

/// `GET api/hub/view`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct HubView {
    role: String,
    learner: Named,
    #[serde(default)]
    takeover: Option<Takeover>,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Takeover {
    by: String,
    #[serde(default)]
    mine: bool,
}

/// A broadcast, as the notices carry it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Broadcast {
    id: String,
    text: String,
    command: Option<String>,
}

/// What the hub's notices left: the takeover (who) and the broadcasts.
#[derive(Clone, Copy)]
struct Notices {
    takeover: RwSignal<Option<String>>,
    broadcasts: RwSignal<Vec<Broadcast>>,
}

async fn get_json<T: serde::de::DeserializeOwned>(path: &str) -> Option<T> {
    let r = gloo_net::http::Request::get(&crate::api::url(path)).send().await.ok()?;
    if !r.ok() {
        return None;
    }
    r.json::<T>().await.ok()
}

async fn post_json<T: serde::de::DeserializeOwned>(path: &str, body: serde_json::Value) -> Result<T, String> {
    crate::api::post_json(&crate::api::url(path), body).await
}

impl Notices {
    /// Follows `api/hub/notices`, reconnecting after a drop.
    fn follow(self) {
        spawn_local(async move {
            loop {
                if let Ok(ws) = WebSocket::open(&ws_url("api/hub/notices")) {
                    let (_, mut rx) = ws.split();
                    while let Some(Ok(Message::Text(t))) = rx.next().await {
                        self.take(&t);
                    }
                }
                gloo_net_sleep(2000).await;
            }
        });
    }

    fn take(&self, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return };
        if let Some(t) = v.get("takeover") {
            let by = (t["active"].as_bool() == Some(true)).then(|| t["by"].as_str().unwrap_or("your instructor").to_string());
            self.takeover.set(by);
        }
        if let Some(b) = v.get("broadcast").and_then(|b| serde_json::from_value::<Broadcast>(b.clone()).ok()) {
            self.broadcasts.update(|all| {
                if !all.iter().any(|x| x.id == b.id) {
                    all.push(b);
                }
            });
        }
    }
}

/// What the page knows of the hub: whose page this is (None: no hub), and
/// the notices; shared by the topbar's part and the banners.
#[derive(Clone, Copy)]
pub struct Hub {
    view: RwSignal<Option<HubView>>,
    notices: Notices,
}

/// Asks the hub (if any) whose page this is, then follows its notices.
pub fn provide_hub() -> Hub {
    let hub = Hub { view: RwSignal::new(None), notices: Notices { takeover: RwSignal::new(None), broadcasts: RwSignal::new(Vec::new()) } };
    spawn_local(async move {
        if let Some(v) = get_json::<HubView>("/api/hub/view").await {
            hub.notices.takeover.set(v.takeover.as_ref().map(|t| t.by.clone()));
            hub.view.set(Some(v));
            hub.notices.follow();
        }
    });
    provide_context(hub);
    hub
}

impl Hub {
    /// This page is the instructor's view of a learner's node1.
    pub fn instructor_view(&self) -> bool {
        self.view.with(|v| v.as_ref().is_some_and(|v| v.role == "instructor"))
    }
}

fn use_hub() -> Hub {
    use_context::<Hub>().expect("provide_hub() comes first")
}

/// The topbar's part: the learner's help button, or the instructor's view
/// and takeover buttons.
#[component]
pub fn HubBar() -> impl IntoView {
    let hub = use_hub();
    move || {
        hub.view.get().map(|v| {
            if v.role == "instructor" {
                view! { <InstructorBar v notices=hub.notices/> }.into_any()
            } else {
                view! { <HandButton/> }.into_any()
            }
        })
    }
}

/// The learner's banners, between the topbar and the lab (never over the
/// terminal): the takeover, and the instructor's last broadcast not dismissed.
#[component]
pub fn HubBanners() -> impl IntoView {
    let hub = use_hub();
    move || hub.view.get().filter(|v| v.role == "learner").map(|_| view! { <LearnerBanners notices=hub.notices/> })
}

/// The instructor's view of a learner's page.
#[component]
fn InstructorBar(v: HubView, notices: Notices) -> impl IntoView {
    let mine = RwSignal::new(v.takeover.as_ref().is_some_and(|t| t.mine));
    let error = RwSignal::new(None::<String>);
    // Another instructor's takeover ends: so does "mine" (it was not).
    Effect::new(move |_| {
        if notices.takeover.get().is_none() {
            mine.set(false);
        }
    });
    let toggle = move |_| {
        let active = !mine.get_untracked();
        spawn_local(async move {
            match post_json::<serde_json::Value>("/api/hub/takeover", serde_json::json!({ "active": active })).await {
                Ok(r) => {
                    mine.set(r["active"].as_bool() == Some(true));
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let name = v.learner.name.clone();
    view! {
        <span class="watching" data-testid="watching" data-learner=v.learner.id.clone()>
            {format!("{name}'s node1")}
            {move || if mine.get() { " — you are typing in their terminal" } else { " — read-only" }}
        </span>
        <button class="takeover-button" class:active=move || mine.get() data-testid="takeover" data-active=move || mine.get().to_string() on:click=toggle
            title=move || if mine.get() { "stop typing in their terminal" } else { "type in their terminal: they see a banner while you do" }>
            {move || if mine.get() { "hand back the terminal" } else { "take over the terminal" }}
        </button>
        {move || notices.takeover.get().filter(|_| !mine.get()).map(|by| view! { <span class="muted">{format!("{by} has taken over")}</span> })}
        {move || error.get().map(|e| view! { <span class="err" role="alert">{e}</span> })}
        <a class="switch" href="/hub/" data-testid="to-dashboard">"the class's dashboard"</a>
    }
}

#[component]
fn LearnerBanners(notices: Notices) -> impl IntoView {
    let store = use_store();
    let dismissed = RwSignal::new(Vec::<String>::new());
    let shown = move || {
        let gone = dismissed.get();
        notices.broadcasts.with(|all| all.iter().rev().find(|b| !gone.contains(&b.id)).cloned())
    };
    view! {
        <div class="hub-banners">
            {move || notices.takeover.get().map(|by| view! {
                <div class="banner takeover-banner" role="status" data-testid="takeover-banner">
                    {format!("{by} is typing in your terminal")}
                </div>
            })}
            {move || shown().map(|b| {
                let id = b.id.clone();
                let cmd = b.command.clone();
                view! {
                    <div class="banner broadcast-banner" role="status" data-testid="broadcast-banner" data-id=b.id.clone()>
                        <span class="from">"from your instructor: "</span>
                        <span data-testid="broadcast-text">{b.text.clone()}</span>
                        {cmd.map(|c| {
                            let (run, copy) = (c.clone(), c.clone());
                            view! {
                                " " <code data-testid="broadcast-command">{c}</code>
                                <button data-testid="broadcast-run" title="type it into your terminal"
                                    on:click=move |_| { let _ = store.type_keys(&format!("{run}\r")); }>"run ▶"</button>
                                <button title="copy to the clipboard" on:click=move |_| super::steps::copy(&copy)>"copy"</button>
                            }
                        })}
                        <button class="dismiss" data-testid="broadcast-dismiss" title="dismiss" on:click=move |_| dismissed.update(|d| d.push(id.clone()))>"×"</button>
                    </div>
                }
            })}
        </div>
    }
}

#[derive(serde::Deserialize)]
struct Hand {
    raised: bool,
}

/// "ask for help": the learner's raised hand, on the instructor's dashboard.
#[component]
pub fn HandButton() -> impl IntoView {
    let raised = RwSignal::new(None::<bool>);
    spawn_local(async move { raised.set(get_json::<Hand>("/api/hub/hand").await.map(|h| h.raised)) });
    let toggle = move |_| {
        let Some(now) = raised.get_untracked() else { return };
        spawn_local(async move {
            if let Ok(h) = post_json::<Hand>("/api/hub/hand", serde_json::json!({ "raised": !now })).await {
                raised.set(Some(h.raised));
            }
        });
    };
    move || {
        raised.get().map(|r| {
            view! {
                <button class="hand-button" class:raised=r data-testid="hand-button" data-raised=r.to_string() on:click=toggle
                    title=if r { "your instructor sees your raised hand: click to lower it" } else { "ask your instructor for help" }>
                    {if r { "hand raised: lower it" } else { "ask for help" }}
                </button>
            }
        })
    }
}
