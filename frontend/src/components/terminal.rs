//! The terminal: xterm.js (shipped by Trunk from npm) bound from Rust, fed
//! by a real shell on node1 over `/api/terminal`, or by a recording. Its
//! output is also kept in the store with times, so scrubbing the timeline
//! redraws the terminal as it was.

use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::store::{gloo_net_sleep, now_ms, use_store, ws_url, Source, Store};

#[wasm_bindgen]
extern "C" {
    /// xterm.js's `Terminal` class (a global from its UMD bundle).
    #[wasm_bindgen(js_name = Terminal)]
    pub type XTerm;
    #[wasm_bindgen(constructor, js_class = "Terminal")]
    fn new(options: &JsValue) -> XTerm;
    #[wasm_bindgen(method)]
    fn open(this: &XTerm, parent: &web_sys::HtmlElement);
    #[wasm_bindgen(method)]
    fn write(this: &XTerm, data: &str);
    /// Writes, then calls `done` once xterm has processed the data.
    #[wasm_bindgen(method, js_name = write)]
    fn write_then(this: &XTerm, data: &str, done: &js_sys::Function);
    #[wasm_bindgen(method)]
    fn resize(this: &XTerm, cols: u32, rows: u32);
    #[wasm_bindgen(method)]
    fn focus(this: &XTerm);
    #[wasm_bindgen(method, js_name = onData)]
    fn on_data(this: &XTerm, callback: &Closure<dyn FnMut(String)>);
}

fn options() -> JsValue {
    let o = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v);
    };
    set("cursorBlink", true.into());
    set("fontSize", 14.into());
    set("fontFamily", "'DejaVu Sans Mono', ui-monospace, monospace".into());
    set("scrollback", 5000.into());
    set("convertEol", false.into());
    set("cols", 100.into());
    set("rows", 30.into());
    let theme = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&theme, &"background".into(), &"#0b0f14".into());
    set("theme", theme.into());
    o.into()
}

/// Columns and rows that fit the terminal's box (14px DejaVu Sans Mono).
fn fit(el: &web_sys::HtmlElement) -> (u32, u32) {
    let w = el.client_width().max(300) as f64;
    let h = el.client_height().max(200) as f64;
    (((w - 12.0) / 8.43).floor().clamp(40.0, 400.0) as u32, ((h - 8.0) / 17.0).floor().clamp(10.0, 120.0) as u32)
}

/// Redraws (replayed output, a reattached shell's scrollback) hold terminal
/// queries (cursor position, colours…) that xterm answers through onData:
/// while `quiet` counts writes in flight, those answers are not keystrokes
/// and never reach the shell.
fn quiet_write(t: &XTerm, quiet: StoredValue<u32>, data: &str) {
    quiet.update_value(|q| *q += 1);
    let done = Closure::once_into_js(move || quiet.update_value(|q| *q = q.saturating_sub(1)));
    t.write_then(data, done.unchecked_ref());
}

#[component]
pub fn Terminal() -> impl IntoView {
    let store = use_store();
    let host = NodeRef::<Div>::new();
    let started = StoredValue::new(false);
    let (tx_input, rx_input) = futures::channel::mpsc::unbounded::<Vec<u8>>();
    let tx_input = StoredValue::new(tx_input);
    let rx_input = StoredValue::new(Some(rx_input));
    let term: StoredValue<Option<XTerm>, LocalStorage> = StoredValue::new_local(None);
    let size = StoredValue::new((100u32, 30u32));
    let shell_started = StoredValue::new(false);
    let line = StoredValue::new(String::new());
    let quiet = StoredValue::new(0u32);
    // Keys typed while the timeline shows the past go nowhere: say so.
    let typed_in_past = RwSignal::new(false);
    // The size observer and its callback, released with the component.
    let observer: StoredValue<Option<(web_sys::ResizeObserver, Closure<dyn FnMut()>)>, LocalStorage> = StoredValue::new_local(None);
    on_cleanup(move || {
        if let Some((obs, _)) = observer.try_update_value(|o| o.take()).flatten() {
            obs.disconnect();
        }
    });

    Effect::new(move |_| {
        let Some(el) = host.get() else { return };
        if started.get_value() {
            return;
        }
        started.set_value(true);
        let t = XTerm::new(&options());
        t.open(&el);
        let (cols, rows) = fit(&el);
        t.resize(cols, rows);
        // Typing goes to node1 (not while replaying or scrubbing): the live
        // shell, or the simulator's line editor. The steps panel's "run"
        // types through the same path.
        let keys: std::rc::Rc<dyn Fn(String)> = std::rc::Rc::new(move |data: String| {
            if store.cursor.get_untracked().is_some() {
                if matches!(store.source.get_untracked(), Source::Live { .. }) {
                    typed_in_past.set(true);
                }
                return;
            }
            match store.source.get_untracked() {
                Source::Live { .. } => {
                    let _ = tx_input.with_value(|tx| tx.unbounded_send(data.into_bytes()));
                }
                Source::Simulated => {
                    if let Some(screen) = store.editor_keys(&data) {
                        store.term.update(|v| v.push((now_ms(), screen.clone())));
                        term.with_value(|t| {
                            if let Some(t) = t {
                                t.write(&screen)
                            }
                        });
                        return;
                    }
                    let echo = sim_keys(store, line, size.get_value(), &data);
                    store.term.update(|v| v.push((now_ms(), echo.clone())));
                    term.with_value(|t| {
                        if let Some(t) = t {
                            t.write(&echo)
                        }
                    });
                }
                _ => {}
            }
        });
        store.keys.set_value(Some(keys.clone()));
        let on_data = Closure::<dyn FnMut(String)>::new(move |data: String| {
            if quiet.get_value() > 0 {
                return; // xterm answering a redraw's queries, not the learner
            }
            keys(data)
        });
        t.on_data(&on_data);
        // xterm keeps the callback as long as the terminal lives, which is
        // the page's life: handing it to JS for good is not a leak.
        on_data.forget();
        t.focus();
        term.set_value(Some(t));
        size.set_value((cols, rows));
        // If where node1 is was decided before the terminal was up, act on it now.
        store.source.update(|_| {});
        // Follow the terminal's own size (the window's, or the steps panel
        // folding): xterm's grid, and the PTY's (a control frame).
        let el2 = el.clone();
        let on_resize = Closure::<dyn FnMut()>::new(move || {
            let (cols, rows) = fit(&el2);
            if size.get_value() == (cols, rows) {
                return;
            }
            size.set_value((cols, rows));
            term.with_value(|t| {
                if let Some(t) = t {
                    t.resize(cols, rows)
                }
            });
            if matches!(store.source.get_untracked(), Source::Live { .. }) {
                let _ = tx_input.with_value(|tx| tx.unbounded_send(format!("\u{0}resize {cols} {rows}").into_bytes()));
            }
        });
        if let Ok(obs) = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()) {
            obs.observe(&el);
            observer.set_value(Some((obs, on_resize)));
        }
    });

    // Once it is known where node1 is: the live shell, or the simulator's banner.
    Effect::new(move |_| {
        let source = store.source.get();
        if !started.get_value() || shell_started.get_value() {
            return;
        }
        match source {
            Source::Live { .. } => {
                shell_started.set_value(true);
                let (cols, rows) = size.get_value();
                let _ = (cols, rows);
                if let Some(rx) = rx_input.try_update_value(|r| r.take()).flatten() {
                    connect_shell(store, term, rx, size, quiet);
                }
            }
            Source::Simulated => {
                shell_started.set_value(true);
                let banner = format!(
                    "\x1b[33mThis is a simulated node1\x1b[0m: no berthd answered (or it cannot run containers here).\r\nThe lab's commands work as on the real engine and draw the same diagrams. Type `help`.\r\n\r\n{}",
                    store.sim_prompt()
                );
                store.term.update(|v| v.push((now_ms(), banner.clone())));
                term.with_value(|t| {
                    if let Some(t) = t {
                        t.write(&banner)
                    }
                });
            }
            _ => {}
        }
    });

    // Redraw from the kept output when scrubbing or loading a recording.
    Effect::new(move |_| {
        let _ = store.redraw.get();
        let until = store.shown_time();
        term.with_value(|t| {
            let Some(t) = t else { return };
            // One write, starting with a full reset (ESC c): xterm queues
            // writes, so a separate reset() could land between older ones.
            let mut all = String::from("\x1bc");
            store.term.with_untracked(|frames| {
                for (_, s) in frames.iter().filter(|(ts, _)| until.is_none_or(|u| *ts <= u)) {
                    all.push_str(s);
                }
            });
            quiet_write(t, quiet, &all);
        });
    });
    // A recording plays at the size it was recorded at.
    Effect::new(move |_| {
        let (cols, rows) = store.term_size.get();
        if matches!(store.source.get(), Source::Replay { .. }) {
            term.with_value(|t| {
                if let Some(t) = t {
                    t.resize(cols as u32, rows as u32)
                }
            });
        }
    });
    Effect::new(move |prev: Option<Option<usize>>| {
        let c = store.cursor.get();
        if prev.is_some() && prev != Some(c) {
            store.redraw.update(|r| *r += 1);
        }
        if c.is_none() {
            typed_in_past.set(false);
        }
        c
    });

    view! {
        <div class="term-wrap">
            <div class="term" node_ref=host data-testid="terminal"
                on:click=move |_| term.with_value(|t| if let Some(t) = t { t.focus() })></div>
            <Show when=move || typed_in_past.get()>
                <div class="term-notice" data-testid="term-notice" role="status">
                    "You are looking at the past: what you type goes nowhere. "
                    <button on:click=move |_| store.cursor.set(None)>"Back to now"</button>
                </div>
            </Show>
        </div>
    }
}

/// The simulator's line editor: printable keys echo, Backspace erases,
/// Enter runs the line, Ctrl-C abandons it. Returns what to draw.
fn sim_keys(store: Store, line: StoredValue<String>, size: (u32, u32), data: &str) -> String {
    let mut out = String::new();
    let mut chars = data.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                let cmd = line.try_update_value(std::mem::take).unwrap_or_default();
                out.push_str("\r\n");
                let text = store.sim_run(&cmd, size);
                if store.editor.with_value(|e| e.is_some()) {
                    // vi took the screen; the rest of this input is its keys.
                    out.push_str(&text);
                    let rest: String = chars.collect();
                    if let Some(screen) = store.editor_keys(&rest) {
                        out.push_str(&screen);
                    }
                    return out;
                }
                out.push_str(&text.replace('\n', "\r\n"));
                out.push_str(&store.sim_prompt());
            }
            '\u{7f}' | '\u{8}' if line.try_update_value(|l| l.pop()).flatten().is_some() => {
                out.push_str("\u{8} \u{8}");
            }
            '\u{3}' => {
                line.set_value(String::new());
                out.push_str("^C\r\n");
                out.push_str(&store.sim_prompt());
            }
            '\u{1b}' => {
                // Cursor keys and other escape sequences: not edited here.
                while chars.peek().is_some_and(|c| !c.is_ascii_alphabetic() && *c != '~') {
                    chars.next();
                }
                chars.next();
            }
            c if !c.is_control() => {
                line.update_value(|l| l.push(c));
                out.push(c);
            }
            _ => {}
        }
    }
    out
}

/// This tab's name for its shell, kept across reloads (sessionStorage is
/// per tab): a reload reattaches to the same shell.
fn shell_id() -> String {
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(id) = storage.as_ref().and_then(|s| s.get_item("berth-shell").ok().flatten()) {
        return id;
    }
    let id: String = (0..4).map(|_| format!("{:04x}", (js_sys::Math::random() * 65536.0) as u32)).collect();
    if let Some(s) = storage {
        let _ = s.set_item("berth-shell", &id);
    }
    id
}

/// How one connection to the shell ended.
enum Ended {
    /// The shell exited (the learner typed `exit`).
    ShellExited,
    /// berthd said no: signed out, no ticket, too many shells.
    Refused(String),
    /// The connection dropped (berthd restarting, network).
    Lost,
}

enum Ev {
    Key(Vec<u8>),
    Ws(Result<Message, gloo_net::websocket::WebSocketError>),
    WsEnd,
}

/// The live shell: output into xterm and the store, keystrokes to the PTY.
/// A dropped connection is retried (and reattaches to the same shell); a
/// shell that exited is replaced when the learner presses a key.
fn connect_shell(
    store: Store,
    term: StoredValue<Option<XTerm>, LocalStorage>,
    mut input: futures::channel::mpsc::UnboundedReceiver<Vec<u8>>,
    size: StoredValue<(u32, u32)>,
    quiet: StoredValue<u32>,
) {
    let say = move |msg: &str| {
        term.with_value(|t| {
            if let Some(t) = t {
                t.write(&format!("\r\n\x1b[33m[{msg}]\x1b[0m\r\n"))
            }
        })
    };
    spawn_local(async move {
        let id = shell_id();
        let mut attached_before = false;
        let mut lost_since: Option<f64> = None;
        loop {
            let (cols, rows) = size.get_value();
            match attach_once(store, term, &mut input, &id, cols, rows, quiet, &mut attached_before).await {
                Ended::ShellExited => {
                    say("the shell on node1 exited: press any key for a new one");
                    if input.next().await.is_none() {
                        return;
                    }
                }
                Ended::Refused(why) => {
                    say(&format!("no shell on node1: {why}"));
                    return;
                }
                Ended::Lost => {
                    let now = now_ms();
                    if lost_since.is_none() {
                        say("the connection to node1 was lost: reconnecting…");
                        lost_since = Some(now);
                    }
                    gloo_net_sleep(1000).await;
                    continue;
                }
            }
            lost_since = None;
        }
    });
}

/// One connection: a ticket, the socket, then output and keys until it ends.
#[allow(clippy::too_many_arguments)]
async fn attach_once(
    store: Store,
    term: StoredValue<Option<XTerm>, LocalStorage>,
    input: &mut futures::channel::mpsc::UnboundedReceiver<Vec<u8>>,
    id: &str,
    cols: u32,
    rows: u32,
    quiet: StoredValue<u32>,
    attached_before: &mut bool,
) -> Ended {
    // The socket opens a shell only with a one-time ticket as its first
    // message, fetched by this page's own (same-origin) request.
    let ticket = match crate::api::terminal_ticket().await {
        Ok(t) => t,
        Err(crate::api::TicketError::SignedOut(e)) => return Ended::Refused(e),
        Err(crate::api::TicketError::Unreachable) => return Ended::Lost,
    };
    let url = ws_url(&format!("/api/terminal?id={id}&cols={cols}&rows={rows}"));
    let Ok(ws) = WebSocket::open(&url) else { return Ended::Lost };
    let (mut tx, rx) = ws.split();
    if tx.send(Message::Text(serde_json::json!({ "ticket": ticket }).to_string())).await.is_err() {
        return Ended::Lost;
    }
    let live_now = move || store.cursor.get_untracked().is_none() && matches!(store.source.get_untracked(), Source::Live { .. });
    let keys = input.by_ref().map(Ev::Key);
    let frames = rx.map(Ev::Ws).chain(futures::stream::iter([Ev::WsEnd]));
    let mut events = futures::stream::select(keys, frames);
    let mut decoder = Utf8Stream::default();
    while let Some(ev) = events.next().await {
        let text = match ev {
            Ev::Key(bytes) => {
                // A resize travels as a text frame; keystrokes as bytes.
                let msg = match bytes.strip_prefix(b"\0resize ") {
                    Some(rest) => {
                        let s = String::from_utf8_lossy(rest).into_owned();
                        let mut it = s.split(' ').filter_map(|n| n.parse::<u32>().ok());
                        Message::Text(format!("{{\"resize\": [{}, {}]}}", it.next().unwrap_or(100), it.next().unwrap_or(30)))
                    }
                    None => Message::Bytes(bytes),
                };
                if tx.send(msg).await.is_err() {
                    return Ended::Lost;
                }
                continue;
            }
            Ev::Ws(Ok(Message::Bytes(b))) => decoder.push(&b),
            Ev::Ws(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                if let Some(new) = v["attached"]["new"].as_bool() {
                    if new && *attached_before {
                        let note =
                            "\r\n\x1b[33m[a new shell on node1: the one before has ended (berthd restarted?)]\x1b[0m\r\n".to_string();
                        store.term.update(|f| f.push((now_ms(), note.clone())));
                        if live_now() {
                            term.with_value(|t| {
                                if let Some(t) = t {
                                    t.write(&note)
                                }
                            });
                        }
                    }
                    *attached_before = true;
                } else if let Some(back) = v["scrollback"].as_str() {
                    // What the shell printed before this page came: keep it
                    // once, and draw it (its queries answered quietly).
                    if store.term.with_untracked(|f| f.is_empty()) {
                        store.term.update(|f| f.push((now_ms(), back.to_string())));
                    }
                    if live_now() {
                        term.with_value(|t| {
                            if let Some(t) = t {
                                quiet_write(t, quiet, &format!("\x1bc{back}"))
                            }
                        });
                    }
                }
                continue;
            }
            Ev::Ws(Err(gloo_net::websocket::WebSocketError::ConnectionClose(e))) => {
                return match e.code {
                    4000 => Ended::ShellExited,
                    4401 | 4429 => Ended::Refused(e.reason),
                    _ => Ended::Lost,
                };
            }
            Ev::Ws(Err(_)) | Ev::WsEnd => return Ended::Lost,
        };
        store.term.update(|v| v.push((now_ms(), text.clone())));
        if live_now() {
            term.with_value(|t| {
                if let Some(t) = t {
                    t.write(&text)
                }
            });
        }
    }
    Ended::Lost
}

/// Turns byte chunks into text without splitting a UTF-8 character.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let chunk: Vec<u8> = self.pending.drain(..valid).collect();
        String::from_utf8_lossy(&chunk).into_owned()
    }
}
