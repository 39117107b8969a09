//! Recordings: berthd's (replay one in the page), a file opened from disk,
//! and this session saved as one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api;
use crate::store::use_store;

#[component]
pub fn Recordings() -> impl IntoView {
    let store = use_store();
    let list = LocalResource::new(api::recordings);
    let error = RwSignal::new(String::new());
    let load = move |name: String, text: String| match berth_shared::parse_cast(&text) {
        Ok(rec) => {
            error.set(String::new());
            store.load_recording(name, &rec);
        }
        Err(e) => error.set(format!("cannot replay {name}: {e}")),
    };
    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        spawn_local(async move {
            let name = file.name();
            match wasm_bindgen_futures::JsFuture::from(file.text()).await {
                Ok(t) => load(name, t.as_string().unwrap_or_default()),
                Err(_) => error.set(format!("cannot read {name}")),
            }
        });
    };
    // This session, downloaded as a recording (live or simulated alike).
    let save = move |_| {
        let text = store.session_cast();
        let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(&text));
        let Ok(blob) = web_sys::Blob::new_with_str_sequence(&parts) else { return };
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
        let doc = web_sys::window().and_then(|w| w.document());
        if let Some(a) = doc.and_then(|d| d.create_element("a").ok()).and_then(|a| a.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = a.set_attribute("href", &url);
            let _ = a.set_attribute("download", &format!("berth-session-{}.cast", (crate::store::now_ms() / 1000.0) as u64));
            a.click();
        }
        let _ = web_sys::Url::revoke_object_url(&url);
    };
    view! {
        <div class="recordings">
            <label class="file">"open a recording… "<input type="file" accept=".cast" data-testid="open-recording" on:change=on_file/></label>
            " "<button data-testid="save-session" on:click=save>"save this session"</button>
            <Suspense fallback=|| ()>
                {move || list.get().map(|r| match r {
                    Ok(items) if !items.is_empty() => view! {
                        <ul data-testid="recordings">
                            {items.into_iter().take(8).map(|r| {
                                let (name, url) = (r.name.clone(), r.url.clone());
                                view! {
                                    <li>
                                        <a href=crate::api::url(&r.url) download=r.name.clone()>{r.name.clone()}</a>
                                        " "<button data-testid="replay" on:click=move |_| {
                                            let (name, url) = (name.clone(), url.clone());
                                            spawn_local(async move {
                                                match api::text(&url).await {
                                                    Ok(t) => load(name, t),
                                                    Err(e) => error.set(e),
                                                }
                                            });
                                        }>"replay"</button>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    _ => ().into_any(),
                })}
            </Suspense>
            <span class="error">{move || error.get()}</span>
        </div>
    }
}
