//! The timeline: scrub, play or step through every event; "now" follows the
//! live node1 again.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::describe::describe;
use crate::store::use_store;

#[component]
pub fn Timeline() -> impl IntoView {
    let store = use_store();
    let playing = RwSignal::new(false);
    let speed = RwSignal::new(1.0f64);
    let count = Memo::new(move |_| store.events.with(|v| v.len()));
    let position = Memo::new(move |_| store.cursor.get().unwrap_or_else(|| count.get()));
    // Playback: step the cursor along the recorded gaps (capped at 2 s).
    // Each start of playback is a new run; a loop whose run is over ends at
    // its next wake-up, so a quick pause and play never leaves two running.
    let run = StoredValue::new(0u64);
    Effect::new(move |_| {
        if !playing.get() {
            run.update_value(|r| *r += 1);
            return;
        }
        run.update_value(|r| *r += 1);
        let mine = run.get_value();
        let current = move || playing.get_untracked() && run.get_value() == mine;
        spawn_local(async move {
            while current() {
                let n = store.cursor.get_untracked().unwrap_or(0);
                let total = store.events.with_untracked(|v| v.len());
                if n >= total {
                    playing.set(false);
                    break;
                }
                let gap = store.events.with_untracked(|v| match n {
                    0 => 200.0,
                    n => (v[n].time_ms as f64 - v[n - 1].time_ms as f64).clamp(30.0, 2000.0),
                });
                crate::store::gloo_net_sleep((gap / speed.get_untracked()) as i32).await;
                if current() {
                    store.cursor.set(Some(n + 1));
                }
            }
        });
    });
    let current = move || {
        let n = position.get();
        store.events.with(|v| {
            if n == 0 {
                "the start".to_string()
            } else {
                v.get(n - 1).map(|e| format!("#{} {}", e.seq, describe(&e.event))).unwrap_or_default()
            }
        })
    };
    view! {
        <div class="timeline" data-testid="timeline">
            <button data-testid="play" on:click=move |_| {
                if !playing.get() && store.cursor.get().is_none_or(|c| c >= count.get()) {
                    store.cursor.set(Some(0));
                }
                playing.update(|p| *p = !*p);
            }>{move || if playing.get() { "❚❚ pause" } else { "▶ play" }}</button>
            <select on:change=move |ev| speed.set(event_target_value(&ev).parse().unwrap_or(1.0))>
                <option value="1">"1×"</option><option value="2">"2×"</option><option value="4">"4×"</option>
            </select>
            <input type="range" min="0" data-testid="scrub" prop:max=move || count.get().to_string() prop:value=move || position.get().to_string()
                on:input=move |ev| {
                    playing.set(false);
                    let v: usize = event_target_value(&ev).parse().unwrap_or(0);
                    let live = store.source.get().follows();
                    store.cursor.set(if live && v >= count.get() { None } else { Some(v) });
                }/>
            <span class="pos" data-testid="position">{move || format!("{}/{}", position.get(), count.get())}</span>
            <button data-testid="now" class:on=move || store.cursor.get().is_none() && store.source.get().follows()
                on:click=move |_| { playing.set(false); if store.source.get().follows() { store.cursor.set(None) } else { store.cursor.set(Some(count.get())) } }>"● now"</button>
            <span class="current">{current}</span>
        </div>
    }
}
