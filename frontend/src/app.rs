//! The page: a terminal on node1 beside live diagrams of its network and
//! filesystem, the evidence for whatever is clicked, and a timeline of every
//! event to scrub, play, or replay a recording with no backend.

use berth_shared::{EngineMode, Envelope, Event, State};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api;
use crate::fs::FilesystemDiagram;
use crate::net::{rule_matches, NetworkDiagram, RulesPanel};
use crate::store::{Selection, Source, Store};
use crate::term::Terminal;

/// One line describing an event, for the timeline and the evidence panel.
pub fn describe(e: &Event) -> String {
    let s = |id: &str| id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    match e {
        Event::DaemonStarted { version, .. } => format!("berthd {version} started"),
        Event::DaemonStopping => "berthd stopping".into(),
        Event::LayerAdded { chain_id, size, .. } => format!("layer {} unpacked ({size} B)", s(chain_id)),
        Event::LayerRemoved { chain_id } => format!("layer {} removed", s(chain_id)),
        Event::ImageAdded { repo_tags, id, .. } => format!("image {} ({})", repo_tags.first().cloned().unwrap_or_default(), s(id)),
        Event::ImageTagged { tag, .. } => format!("tagged {tag}"),
        Event::ImageUntagged { tag, .. } => format!("untagged {tag}"),
        Event::ImageRemoved { id } => format!("image {} removed", s(id)),
        Event::ContainerCreated { name, image, .. } => format!("container {name} created from {image}"),
        Event::OverlayMounted { merged, .. } => format!("overlay mounted at {merged}"),
        Event::OverlayUnmounted { merged, .. } => format!("overlay unmounted from {merged}"),
        Event::NamespacesCreated { kinds, pid, .. } => format!("namespaces {} for pid {pid}", kinds.join(", ")),
        Event::ContainerStarted { pid, id } => format!("container {} started (pid {pid})", s(id)),
        Event::ProcessExecd { command, .. } => format!("exec {}", command.join(" ")),
        Event::ProcessExited { exit_code, .. } => format!("exec exited ({exit_code})"),
        Event::ContainerExited { id, exit_code } => format!("container {} exited ({exit_code})", s(id)),
        Event::ContainerRemoved { id } => format!("container {} removed", s(id)),
        Event::BridgeUp { name, address, prefix, .. } => format!("bridge {name} {address}/{prefix} up"),
        Event::BridgeDown { name } => format!("bridge {name} deleted"),
        Event::NetworkCreated { name, subnet, .. } => format!("network {name} ({subnet}) created"),
        Event::NetworkRemoved { name, .. } => format!("network {name} removed"),
        Event::EndpointAttached { host_if, ifname, ip, prefix, bridge, .. } => {
            format!("veth {host_if} ⇄ {ifname} {ip}/{prefix} on {bridge}")
        }
        Event::EndpointDetached { host_if, .. } => format!("veth {host_if} deleted"),
        Event::RuleAdded { table, rule } => format!("iptables -t {table} {rule}"),
        Event::RuleRemoved { table, rule } => format!("iptables -t {table} -D {}", rule.trim_start_matches("-A ")),
        Event::PortPublished { host_ip, host_port, container_ip, container_port, proto, .. } => {
            format!("port {host_ip}:{host_port} → {container_ip}:{container_port}/{proto}")
        }
        Event::PortUnpublished { host_port, proto, .. } => format!("port {host_port}/{proto} closed"),
        Event::VolumeCreated { name, .. } => format!("volume {} created", s(name)),
        Event::VolumePopulated { name, path, files, .. } => format!("volume {} filled from {path} ({files} entries)", s(name)),
        Event::VolumeRemoved { name } => format!("volume {} removed", s(name)),
        Event::BuildStarted { tags, steps, .. } => format!("build {} started ({steps} steps)", tags.join(", ")),
        Event::BuildStep { step, instruction, cached, .. } => {
            format!("step {step}: {instruction}{}", if *cached { " (cache)" } else { "" })
        }
        Event::BuildLayer { diff_id, size, .. } => format!("layer {} committed ({size} B)", s(diff_id)),
        Event::LinkObserved { name, kind, up, .. } => format!("kernel: link {name} ({kind}) {}", if *up { "up" } else { "down" }),
        Event::LinkGone { name, .. } => format!("kernel: link {name} gone"),
        Event::AddressObserved { link, address, prefix } => format!("kernel: {address}/{prefix} on {link}"),
        Event::AddressGone { link, address, prefix } => format!("kernel: {address}/{prefix} removed from {link}"),
        Event::RouteObserved { dst, gateway, dev } => format!(
            "kernel: route {dst}{}{}",
            gateway.as_ref().map(|g| format!(" via {g}")).unwrap_or_default(),
            dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default()
        ),
        Event::RouteGone { dst, .. } => format!("kernel: route {dst} removed"),
        Event::MountObserved { target, fstype, .. } => format!("kernel: {fstype} mounted on {target}"),
        Event::MountGone { target } => format!("kernel: {target} unmounted"),
        Event::KernelRuleObserved { table, rule } => format!("kernel: -t {table} {rule}"),
        Event::KernelRuleGone { table, rule } => format!("kernel: -t {table} {rule} gone"),
        Event::FileChanged { dir, path, change } => format!(
            "file {path} {} in {dir}",
            match change {
                berth_shared::event::FileChangeKind::Added => "added",
                berth_shared::event::FileChangeKind::Modified => "modified",
                berth_shared::event::FileChangeKind::Deleted => "deleted",
            }
        ),
        Event::LabProgress { step, change, .. } => match change {
            berth_shared::lab::LabChange::StepStarted => format!("lab: step {step} started"),
            berth_shared::lab::LabChange::StepFailed => format!("lab: step {step} failed"),
            berth_shared::lab::LabChange::StepCompleted => format!("lab: step {step} completed"),
            berth_shared::lab::LabChange::CheckPassed { kind, .. } => format!("lab: {step}: {kind} passed"),
            berth_shared::lab::LabChange::CheckFailed { diagnosis, .. } => format!("lab: {step}: {}", diagnosis.code),
        },
        Event::BuildFinished { image, error, .. } => match (image, error) {
            (Some(i), _) => format!("build finished: {}", s(i)),
            (_, Some(e)) => format!("build failed: {e}"),
            _ => "build finished".into(),
        },
    }
}

/// Does this event concern the selection?
fn concerns(e: &Event, sel: &Selection, state: &State) -> bool {
    let json = serde_json::to_string(e).unwrap_or_default();
    match sel {
        Selection::Container(id) => json.contains(id.as_str()),
        Selection::Bridge(b) => json.contains(&format!("\"{b}\"")) || json.contains(&format!(" {b} ")),
        Selection::Port(_, p) => {
            matches!(e, Event::PortPublished { host_port, .. } | Event::PortUnpublished { host_port, .. } if host_port == p)
                || matches!(e, Event::RuleAdded { rule, .. } | Event::RuleRemoved { rule, .. } if rule_matches(rule, &Some(sel.clone()), state))
        }
        Selection::Layer(c) => json.contains(c.as_str()),
        Selection::Rule(_, r) => matches!(e, Event::RuleAdded { rule, .. } | Event::RuleRemoved { rule, .. } if rule == r),
        Selection::Volume(v) => json.contains(v.as_str()),
    }
}

#[component]
fn Evidence(store: Store) -> impl IntoView {
    move || {
        let Some(sel) = store.selected.get() else {
            return view! { <p class="muted">"Click a container, bridge, port, layer or rule to see the evidence for it: its facts, and the events that made it."</p> }.into_any();
        };
        let state = store.shown();
        let facts = match &sel {
            Selection::Container(id) => state.containers.get(id).map(|c| {
                // What the kernel shows of it: its overlay in mountinfo, its veths.
                let mut kernel = Vec::new();
                if let Some(m) = state.mounts.get(&c.layer.merged) {
                    kernel.push(format!("mountinfo: {} {} on {}", m.fstype, m.source, c.layer.merged));
                }
                for e in c.endpoints.values() {
                    if let Some(l) = state.links.get(&e.host_if) {
                        kernel.push(format!(
                            "ip -d link: {}: {} master {} {}{}",
                            e.host_if,
                            l.kind,
                            l.master.clone().unwrap_or_default(),
                            if l.up { "UP" } else { "DOWN" },
                            l.link_netnsid.map(|n| format!(" link-netnsid {n}")).unwrap_or_default()
                        ));
                    }
                }
                format!("{}\n\n{}", kernel.join("\n"), serde_json::to_string_pretty(c).unwrap_or_default())
            }),
            Selection::Bridge(b) => state.bridges.get(b).map(|x| {
                let ports: Vec<&String> =
                    state.links.iter().filter(|(_, l)| l.master.as_deref() == Some(b.as_str())).map(|(n, _)| n).collect();
                let routes: Vec<String> = state
                    .routes
                    .iter()
                    .filter(|(_, _, d)| d.as_deref() == Some(b.as_str()))
                    .map(|(dst, g, _)| format!("{dst}{} dev {b}", g.as_ref().map(|g| format!(" via {g}")).unwrap_or_default()))
                    .collect();
                format!(
                    "ports (ip link show master {b}): {}\nroutes: {}\n\n{}",
                    ports.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    routes.join("; "),
                    serde_json::to_string_pretty(x).unwrap_or_default()
                )
            }),
            Selection::Port(id, p) => state
                .containers
                .get(id)
                .and_then(|c| c.ports.iter().find(|x| x.host_port == *p))
                .map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
            Selection::Layer(c) => state.layers.get(c).map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
            Selection::Rule(t, r) => Some(format!("iptables -t {t} -S\n{r}")),
            Selection::Volume(v) => state.volumes.get(v).map(|x| serde_json::to_string_pretty(x).unwrap_or_default()),
        }
        .unwrap_or_else(|| "(not in the state at this point of the timeline)".into());
        let upto = store.cursor.get().unwrap_or(usize::MAX);
        let related: Vec<Envelope> =
            store.events.with(|evs| evs.iter().take(upto).filter(|e| concerns(&e.event, &sel, &state)).cloned().collect());
        view! {
            <div data-testid="evidence">
                <pre class="facts-json">{facts}</pre>
                <h3>"events"</h3>
                <ol class="event-list">
                    {related.iter().rev().take(40).map(|e| view! {
                        <li><span class="seq">{format!("#{}", e.seq)}</span>" "{describe(&e.event)}</li>
                    }).collect_view()}
                </ol>
            </div>
        }
        .into_any()
    }
}

#[component]
fn Timeline(store: Store) -> impl IntoView {
    let playing = RwSignal::new(false);
    let speed = RwSignal::new(1.0f64);
    let count = Memo::new(move |_| store.events.with(|v| v.len()));
    let position = Memo::new(move |_| store.cursor.get().unwrap_or_else(|| count.get()));
    // Playback: step the cursor along the recorded gaps (capped at 2 s).
    Effect::new(move |_| {
        if !playing.get() {
            return;
        }
        spawn_local(async move {
            while playing.get_untracked() {
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
                if playing.get_untracked() {
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

#[component]
fn Recordings(store: Store) -> impl IntoView {
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
                                        <a href=r.url.clone() download=r.name.clone()>{r.name.clone()}</a>
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

#[component]
pub fn App() -> impl IntoView {
    let store = Store::new();
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
            // The switch: a live node1 can be swapped for the simulator, and back.
            {move || match (engine.get(), store.source.get()) {
                (Some(Ok(h)), Source::Simulated) if h.engine == EngineMode::Live => Some(view! { <a class="switch" href="?" data-testid="to-live">"use the live node1"</a> }.into_any()),
                (Some(Ok(h)), Source::Live { .. }) if h.engine == EngineMode::Live => Some(view! { <a class="switch" href="?sim" data-testid="to-sim">"try the simulated node1"</a> }.into_any()),
                _ => None,
            }}
        </header>
        <main class="lab">
            <section class="pane terminal-pane">
                <h2>"node1 $ — a real shell; docker talks to berthd"</h2>
                <Terminal store=store/>
                <Recordings store=store/>
            </section>
            <section class="pane">
                <h2>"network: bridges, namespaces, veth pairs, published ports"</h2>
                <NetworkDiagram store=store/>
                <details class="rules-box" open>
                    <summary>"netfilter rules berth added (iptables -S)"</summary>
                    <RulesPanel store=store/>
                </details>
            </section>
            <section class="pane">
                <h2>"filesystem: image layers, overlays, volumes"</h2>
                <FilesystemDiagram store=store/>
            </section>
            <section class="pane evidence">
                <h2>"evidence"</h2>
                <Evidence store=store/>
            </section>
        </main>
        <footer class="bottom">
            <Timeline store=store/>
        </footer>
    }
}
