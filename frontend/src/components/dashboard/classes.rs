//! The dashboard's classes: for each, its join link, a message (and a
//! command to try) to broadcast to its learners' pages, what was sent, and
//! the exports (progress as CSV or JSON; everything kept of the class, with
//! every learner's events and recordings, as one tar).

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::use_dash;

/// A class as `GET /hub/api/classes` lists it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct ClassInfo {
    pub id: String,
    pub name: String,
    pub join_url: String,
    pub expired: bool,
    #[serde(default)]
    pub learners: Vec<serde_json::Value>,
}

async fn fetch_classes() -> Option<Vec<ClassInfo>> {
    let r = gloo_net::http::Request::get("/hub/api/classes").send().await.ok()?;
    if !r.ok() {
        return None;
    }
    r.json().await.ok()
}

/// Sends a broadcast; the hub's error message when it refuses.
async fn send(class: &str, text: &str, command: &str) -> Result<(), String> {
    let body = serde_json::json!({
        "text": text,
        "command": if command.trim().is_empty() { None } else { Some(command) },
    });
    crate::api::post_json::<serde_json::Value>(&format!("/hub/api/classes/{class}/broadcasts"), body).await.map(|_| ())
}

#[component]
pub fn Classes() -> impl IntoView {
    let dash = use_dash();
    let classes = RwSignal::new(Vec::<ClassInfo>::new());
    // Listed at start, and again when the class's learners change.
    let count = Memo::new(move |_| dash.tiles.with(|t| t.len()));
    Effect::new(move |_| {
        count.track();
        spawn_local(async move {
            if let Some(c) = fetch_classes().await {
                classes.set(c);
            }
        });
    });
    view! {
        <section class="pane classes-pane" data-testid="classes-pane">
            <For each=move || classes.get() key=|c| (c.id.clone(), c.learners.len(), c.expired) let:c>
                <ClassBox c/>
            </For>
        </section>
    }
}

#[component]
fn ClassBox(c: ClassInfo) -> impl IntoView {
    let dash = use_dash();
    let text = RwSignal::new(String::new());
    let command = RwSignal::new(String::new());
    let status = RwSignal::new(None::<Result<(), String>>);
    let id = c.id.clone();
    let on_send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (id, t, cmd) = (id.clone(), text.get_untracked(), command.get_untracked());
        spawn_local(async move {
            let r = send(&id, &t, &cmd).await;
            if r.is_ok() {
                text.set(String::new());
                command.set(String::new());
            }
            status.set(Some(r));
        });
    };
    let class_id = c.id.clone();
    let sent = move || dash.sent.with(|s| s.iter().filter(|b| b.class == class_id).rev().take(3).cloned().collect::<Vec<_>>());
    let export = |file: &str| format!("/hub/api/classes/{}/{file}", c.id);
    view! {
        <div class="class-box" data-testid="class" data-class=c.id.clone()>
            <div class="class-head">
                <strong>{c.name.clone()}</strong>
                <span class="muted">{format!(" {} learners{}", c.learners.len(), if c.expired { ", ended" } else { "" })}</span>
                <span class="exports">
                    "export: "
                    <a href=export("progress.csv") download data-testid="export-csv">"progress.csv"</a>" · "
                    <a href=export("progress.json") download data-testid="export-json">"progress.json"</a>" · "
                    <a href=export("export.tar") download data-testid="export-tar" title="progress, and every learner's events and terminal recordings">"everything (.tar)"</a>
                </span>
            </div>
            <div class="muted join">"join link: "<code data-testid="join-url">{c.join_url.clone()}</code></div>
            <form class="broadcast" data-testid="broadcast" on:submit=on_send>
                <input type="text" placeholder="a message to every learner's page" maxlength="500" data-testid="broadcast-text"
                    prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))/>
                <input type="text" placeholder="a command for them to try (optional)" maxlength="500" data-testid="broadcast-command" class="cmd"
                    prop:value=move || command.get() on:input=move |ev| command.set(event_target_value(&ev))/>
                <button type="submit" data-testid="broadcast-send">"send to the class"</button>
                {move || match status.get() {
                    Some(Err(e)) => Some(view! { <span class="err" role="alert">{e}</span> }.into_any()),
                    Some(Ok(())) => Some(view! { <span class="muted" data-testid="broadcast-ok">"sent"</span> }.into_any()),
                    None => None,
                }}
            </form>
            <ul class="sent">
                {move || sent().into_iter().map(|b| view! {
                    <li data-testid="sent">{b.text.clone()}{b.command.map(|c| view! { " " <code>{c}</code> })}</li>
                }).collect_view()}
            </ul>
        </div>
    }
}
