//! The guided lab beside the terminal: its steps, the one being read with
//! its commands (copy, or run in the terminal), its checks judged against
//! node1's state as it is (live and simulated) or as it was (a replay, the
//! timeline in the past), the diagnosis of a failing check with the diagram
//! element it names highlighted, and hints.
//!
//! Every step's element carries `data-testid="lab-step"`, `data-step` and
//! `data-state` (pending, current, passed, failed): the page's progress can
//! be read from it by tests, and by anyone.

use std::collections::BTreeSet;

use berth_shared::lab::{CodeBlock, Element, Severity, Step, StepState, StepStatus};
use berth_shared::State;
use leptos::prelude::*;

use crate::store::{use_store, Selection, Store};

const COLLAPSED_KEY: &str = "berth.steps.collapsed";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

fn completed_key(lab: &str) -> String {
    format!("berth.lab.{lab}.completed")
}

/// The steps this browser saw completed (kept for the simulated node1,
/// which starts anew on every load).
pub fn saved_completed(lab: &str) -> Vec<String> {
    storage().and_then(|s| s.get_item(&completed_key(lab)).ok().flatten()).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// The lab's progress as the page shows it, shared by the steps panel and
/// the diagrams (which highlight what a failing check names).
#[derive(Clone, Copy, Debug)]
pub struct LabView {
    /// Every step's status: judged now (live or simulated, at the end of the
    /// timeline), or as recorded then (a replay, the timeline in the past).
    pub statuses: Memo<Vec<StepStatus>>,
    /// Elements named by the failing checks of the current step and of any
    /// failed step.
    pub flagged: Memo<BTreeSet<Element>>,
}

/// Makes the lab's view from the store and provides it to the components below.
pub fn provide_lab_view(store: Store) -> LabView {
    let shown = use_context::<crate::store::Shown>().map(|s| s.0);
    let statuses = Memo::new(move |_| {
        let state = match shown {
            Some(m) => m.get(),
            None => store.shown(),
        };
        let now = store.cursor.get().is_none() && store.source.get().follows();
        store.lab.with_value(|lab| if now { lab.evaluate(&state) } else { lab.recorded(&state) })
    });
    let flagged = Memo::new(move |_| {
        statuses.with(|all| {
            all.iter()
                .filter(|s| matches!(s.state, StepState::Current | StepState::Failed))
                .flat_map(|s| s.checks.iter())
                .filter_map(|c| c.diagnosis.as_ref().and_then(|d| d.element.clone()))
                .collect()
        })
    });
    let view = LabView { statuses, flagged };
    provide_context(view);
    view
}

/// Is this element named by a failing check? (False where no lab view is
/// provided, as in component tests of a diagram alone.)
pub fn flagged(view: Option<LabView>, e: &Element) -> bool {
    view.is_some_and(|v| v.flagged.with(|f| f.contains(e)))
}

/// What a diagnosis' element is, as something the diagrams can select.
fn selection_for(e: &Element, state: &State) -> Option<Selection> {
    let by_name = |n: &str| state.containers.values().find(|c| c.name == n).map(|c| c.id.clone());
    match e {
        Element::Container(n) | Element::Overlay(n) => by_name(n).map(Selection::Container),
        Element::Port(p) => {
            state.containers.values().find(|c| c.ports.iter().any(|x| x.host_port == *p)).map(|c| Selection::Port(c.id.clone(), *p))
        }
        Element::Bridge(b) => Some(Selection::Bridge(b.clone())),
        Element::Rule { table, rule } => Some(Selection::Rule(table.clone(), rule.clone())),
        Element::Volume(v) => Some(Selection::Volume(v.clone())),
        Element::Layer(d) => state.layers.values().find(|l| l.dir == *d || l.chain_id == *d).map(|l| Selection::Layer(l.chain_id.clone())),
        _ => None,
    }
}

fn state_icon(s: StepState) -> &'static str {
    match s {
        StepState::Passed => "✓",
        StepState::Failed => "✗",
        StepState::Current => "▸",
        StepState::Pending => "·",
    }
}

/// Copies text to the clipboard (the page's origin is a secure one:
/// localhost, or the hub's TLS).
pub fn copy(text: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}

/// A command block: the command (placeholders filled from node1's state),
/// "copy", and for shell blocks "run" (typed into the terminal).
#[component]
fn Command(code: String, runnable: bool) -> impl IntoView {
    let store = use_store();
    let at_now = move || store.cursor.get().is_none() && store.source.get().follows();
    let to_copy = code.clone();
    let to_run = code.clone();
    view! {
        <div class="cmd" data-testid="step-code">
            <div class="cmd-buttons">
                <button class="copy" title="copy to the clipboard" on:click=move |_| copy(to_copy.trim_end())>"copy"</button>
                {runnable.then(|| view! {
                    <button class="run" data-testid="run-in-terminal" prop:disabled=move || !at_now()
                        title=move || if at_now() { "type it into node1's terminal" } else { "the terminal shows the past: go back to now first" }
                        on:click=move |_| {
                            // Enter after each line, as if typed.
                            let keys: String = to_run.trim_end().lines().map(|l| format!("{l}\r")).collect();
                            store.type_keys(&keys);
                        }>"run ▶"</button>
                })}
            </div>
            <pre><code>{code.trim_end().to_string()}</code></pre>
        </div>
    }
}

/// A step's Markdown: prose as HTML (raw HTML in it is shown as text, never
/// parsed), fenced code as [`Command`]s.
fn body_view(step: &Step, state: &State) -> Vec<AnyView> {
    use pulldown_cmark::{CodeBlockKind, Event as Md, Parser, Tag, TagEnd};
    let mut parts: Vec<AnyView> = Vec::new();
    let mut prose: Vec<Md> = Vec::new();
    let mut code: Option<(String, String)> = None;
    let flush = |prose: &mut Vec<Md>, parts: &mut Vec<AnyView>| {
        if !prose.is_empty() {
            let mut html = String::new();
            pulldown_cmark::html::push_html(&mut html, prose.drain(..));
            parts.push(view! { <div class="md" inner_html=html></div> }.into_any());
        }
    };
    for ev in Parser::new(&step.body) {
        match (code.as_mut(), ev) {
            (None, Md::Start(Tag::CodeBlock(kind))) => {
                flush(&mut prose, &mut parts);
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or("").to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
            }
            (Some((_, text)), Md::Text(t)) => text.push_str(&t),
            (Some(_), Md::End(TagEnd::CodeBlock)) => {
                if let Some((lang, text)) = code.take() {
                    let block = CodeBlock { lang, code: text };
                    let filled = step.fill(&block.code, state);
                    parts.push(view! { <Command code=filled runnable=block.runnable()/> }.into_any());
                }
            }
            (Some(_), _) => {}
            (None, Md::Html(h) | Md::InlineHtml(h)) => prose.push(Md::Text(h)),
            (None, e) => prose.push(e),
        }
    }
    flush(&mut prose, &mut parts);
    parts
}

#[component]
pub fn StepsPanel() -> impl IntoView {
    let store = use_store();
    let shown = crate::store::use_shown();
    let view = use_context::<LabView>().unwrap_or_else(|| provide_lab_view(store));
    let lab = store.lab;
    let lab_id = lab.with_value(|l| l.id.clone());
    let collapsed = RwSignal::new(storage().and_then(|s| s.get_item(COLLAPSED_KEY).ok().flatten()).is_some_and(|v| v == "1"));
    // The step being read: None follows the current one.
    let viewing = RwSignal::new(None::<String>);
    let hints_shown = RwSignal::new(0usize);

    // Completed steps kept for the next load (the simulator starts anew).
    let key = completed_key(&lab_id);
    Effect::new(move |_| {
        let done: Vec<String> = view.statuses.with(|all| all.iter().filter(|s| s.completed).map(|s| s.step.clone()).collect());
        if !done.is_empty() && store.source.get_untracked().follows() {
            if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(&done)) {
                let _ = s.set_item(&key, &text);
            }
        }
    });

    let current = Memo::new(move |_| {
        view.statuses.with(|all| all.iter().find(|s| matches!(s.state, StepState::Current | StepState::Failed)).map(|s| s.step.clone()))
    });
    let shown_id =
        Memo::new(move |_| viewing.get().or_else(|| current.get()).or_else(|| lab.with_value(|l| l.steps.last().map(|s| s.id.clone()))));
    // A new step to read starts with its hints folded.
    Effect::new(move |_| {
        let _ = shown_id.get();
        hints_shown.set(0);
    });
    // The body only changes with the step, or with what fills its commands.
    let body_key = Memo::new(move |_| {
        let id = shown_id.get()?;
        let state = shown.get();
        lab.with_value(|l| {
            let step = l.step(&id)?;
            Some((id.clone(), step.code_blocks().iter().map(|b| step.fill(&b.code, &state)).collect::<Vec<_>>()))
        })
    });
    let done_count = move || view.statuses.with(|all| all.iter().filter(|s| s.completed).count());
    let total = lab.with_value(|l| l.steps.len());
    let toggle = move |_| {
        let c = !collapsed.get();
        collapsed.set(c);
        if let Some(s) = storage() {
            let _ = s.set_item(COLLAPSED_KEY, if c { "1" } else { "0" });
        }
    };
    let title = lab.with_value(|l| l.title.clone());

    let list = move || {
        let shown = shown_id.get();
        view.statuses.with(|all| {
            all.iter()
                .enumerate()
                .map(|(i, s)| {
                    let id = s.step.clone();
                    let step_title = lab.with_value(|l| l.step(&id).map(|x| x.title.clone()).unwrap_or_default());
                    let is_current = current.get().as_deref() == Some(id.as_str());
                    let reading = shown.as_deref() == Some(id.as_str());
                    let pick = id.clone();
                    view! {
                        <li data-testid="lab-step" data-step=id.clone() data-state=s.state.as_str() class=format!("step {}", s.state.as_str())
                            class:reading=reading aria-current=is_current.then_some("step")
                            on:click=move |_| viewing.set(if is_current { None } else { Some(pick.clone()) })>
                            <span class="icon">{state_icon(s.state)}</span>
                            <span class="num">{format!("{}.", i + 1)}</span>
                            " "<span class="title">{step_title}</span>
                        </li>
                    }
                })
                .collect_view()
        })
    };

    let detail = move || {
        let Some(id) = shown_id.get() else { return ().into_any() };
        let Some(step) = lab.with_value(|l| l.step(&id).cloned()) else { return ().into_any() };
        let index = lab.with_value(|l| l.steps.iter().position(|s| s.id == id).unwrap_or(0));
        let body = {
            let _ = body_key.get();
            body_view(&step, &store.shown_untracked())
        };
        let sid = step.id.clone();
        let status = Memo::new(move |_| view.statuses.with(|all| all.iter().find(|s| s.step == sid).cloned()));
        let step2 = step.clone();
        let checks = move || {
            let Some(st) = status.get() else { return ().into_any() };
            let state = shown.get();
            view! {
                <ul class="checks" data-testid="lab-checks">
                    {st.checks.iter().enumerate().map(|(n, c)| {
                        let what = step2.checks.get(n).map(|k| k.describe()).unwrap_or_else(|| c.kind.clone());
                        match &c.diagnosis {
                            None => view! {
                                <li class="check ok" data-testid="lab-check" data-kind=c.kind.clone() data-result="passed">
                                    <span class="icon">"✓"</span>" "{what}
                                </li>
                            }.into_any(),
                            Some(d) => {
                                let broken = d.severity == Severity::Broken;
                                let sel = d.element.as_ref().and_then(|e| selection_for(e, &state));
                                view! {
                                    <li class="check" class:broken=broken class:todo=!broken data-testid="lab-check" data-kind=c.kind.clone()
                                        data-result="failed" data-code=d.code.clone() data-element=d.element.as_ref().map(|e| e.id())>
                                        <span class="icon">{if broken { "✗" } else { "○" }}</span>" "{what}
                                        <div class="diagnosis" data-testid="diagnosis">
                                            {d.message.clone()}" "<code class="code">{d.code.clone()}</code>
                                            {sel.map(|sel| view! {
                                                " "<button class="show" on:click=move |_| store.selected.set(Some(sel.clone()))>"show"</button>
                                            })}
                                        </div>
                                    </li>
                                }.into_any()
                            }
                        }
                    }).collect_view()}
                </ul>
            }
            .into_any()
        };
        let state_now = Memo::new(move |_| status.with(|s| s.as_ref().map(|s| s.state).unwrap_or_default()));
        let hints = step.hints.clone();
        let n_hints = hints.len();
        let prev = lab.with_value(|l| index.checked_sub(1).and_then(|i| l.steps.get(i)).map(|s| s.id.clone()));
        let next = lab.with_value(|l| l.steps.get(index + 1).map(|s| s.id.clone()));
        view! {
            <article class="step-detail" data-testid="step-detail" data-step=step.id.clone() data-state=move || state_now.get().as_str()>
                <h3>
                    <span class=move || format!("state {}", state_now.get().as_str())>{move || state_icon(state_now.get())}</span>
                    {format!(" {}. {}", index + 1, step.title)}
                </h3>
                <h4>"done when"</h4>
                {checks}
                <div class="body">{body}</div>
                {(n_hints > 0).then(|| view! {
                    <div class="hints">
                        <ol>
                            {move || hints.iter().take(hints_shown.get()).map(|h| view! { <li data-testid="hint">{h.clone()}</li> }).collect_view()}
                        </ol>
                        <Show when=move || { hints_shown.get() < n_hints }>
                            <button data-testid="show-hint" on:click=move |_| hints_shown.update(|n| *n += 1)>
                                {move || if hints_shown.get() == 0 { "stuck? a hint".to_string() } else { "another hint".to_string() }}
                            </button>
                        </Show>
                    </div>
                })}
                <nav class="step-nav">
                    {prev.map(|p| view! { <button data-testid="prev-step" on:click=move |_| viewing.set(Some(p.clone()))>"← previous"</button> })}
                    <Show when=move || viewing.get().is_some() && current.get().is_some()>
                        <button data-testid="to-current" on:click=move |_| viewing.set(None)>"current step"</button>
                    </Show>
                    {next.map(|n| view! { <button data-testid="next-step" on:click=move |_| viewing.set(Some(n.clone()))>"next →"</button> })}
                </nav>
            </article>
        }
        .into_any()
    };

    view! {
        <section class="pane steps-pane" class:collapsed=move || collapsed.get() data-testid="steps">
            <header class="steps-head">
                <button class="fold" data-testid="fold-steps" title=move || if collapsed.get() { "show the lab's steps" } else { "hide the steps (the diagrams get the room)" }
                    on:click=toggle>{move || if collapsed.get() { "▸" } else { "◂" }}</button>
                <h2>{title}</h2>
                <span class="progress" data-testid="lab-progress">{move || format!("{} / {total} done", done_count())}</span>
            </header>
            <div class="steps-body">
                <progress max=total value=done_count></progress>
                <Show when=move || { done_count() == total }>
                    <p class="all-done" data-testid="lab-done">"Every step is done: you deployed a service in a container, and saw what it is made of."</p>
                </Show>
                <ol class="step-list">{list}</ol>
                {detail}
            </div>
        </section>
    }
}
