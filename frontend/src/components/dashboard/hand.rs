//! The learner's side of a raised hand: a "help" button on their lab page,
//! shown only when the page is a learner's under a classroom hub (the hub
//! answers `GET api/hub/hand`; a lone berthd does not, so no button).

use leptos::prelude::*;
use leptos::task::spawn_local;

#[derive(serde::Deserialize)]
struct Hand {
    raised: bool,
}

async fn get_hand() -> Option<bool> {
    let r = gloo_net::http::Request::get(&crate::api::url("/api/hub/hand")).send().await.ok()?;
    if !r.ok() {
        return None;
    }
    r.json::<Hand>().await.ok().map(|h| h.raised)
}

async fn post_hand(raised: bool) -> Option<bool> {
    let body = serde_json::json!({ "raised": raised }).to_string();
    let r = gloo_net::http::Request::post(&crate::api::url("/api/hub/hand"))
        .header("content-type", "application/json")
        .body(body)
        .ok()?
        .send()
        .await
        .ok()?;
    if !r.ok() {
        return None;
    }
    r.json::<Hand>().await.ok().map(|h| h.raised)
}

/// "ask for help" for a learner under a hub; nothing elsewhere.
#[component]
pub fn HandButton() -> impl IntoView {
    // None: no hub here (or the instructor's read-only view).
    let raised = RwSignal::new(None::<bool>);
    spawn_local(async move { raised.set(get_hand().await) });
    let toggle = move |_| {
        let Some(now) = raised.get_untracked() else { return };
        spawn_local(async move {
            if let Some(r) = post_hand(!now).await {
                raised.set(Some(r));
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
