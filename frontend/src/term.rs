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

use crate::store::{now_ms, ws_url, Source, Store};

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

#[component]
pub fn Terminal(store: Store) -> impl IntoView {
    let host = NodeRef::<Div>::new();
    let started = StoredValue::new(false);
    let (tx_input, rx_input) = futures::channel::mpsc::unbounded::<Vec<u8>>();
    let tx_input = StoredValue::new(tx_input);
    let rx_input = StoredValue::new(Some(rx_input));
    let term: StoredValue<Option<XTerm>, LocalStorage> = StoredValue::new_local(None);
    let size = StoredValue::new((100u32, 30u32));
    let shell_started = StoredValue::new(false);
    let line = StoredValue::new(String::new());

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
        let on_data = Closure::<dyn FnMut(String)>::new(move |data: String| {
            // Typing goes to node1 (not while replaying or scrubbing): the live
            // shell, or the simulator's line editor.
            if store.cursor.get_untracked().is_some() {
                return;
            }
            match store.source.get_untracked() {
                Source::Live { .. } => {
                    let _ = tx_input.with_value(|tx| tx.unbounded_send(data.into_bytes()));
                }
                Source::Simulated => {
                    if let Some(screen) = store.editor_keys(&data) {
                        store.term.update(|v| v.push((now_ms(), screen.clone())));
                        term.with_value(|t| if let Some(t) = t { t.write(&screen) });
                        return;
                    }
                    let echo = sim_keys(store, line, size.get_value(), &data);
                    store.term.update(|v| v.push((now_ms(), echo.clone())));
                    term.with_value(|t| if let Some(t) = t { t.write(&echo) });
                }
                _ => {}
            }
        });
        t.on_data(&on_data);
        on_data.forget();
        t.focus();
        term.set_value(Some(t));
        size.set_value((cols, rows));
        // If where node1 is was decided before the terminal was up, act on it now.
        store.source.update(|_| {});
        // Follow the window's size: xterm's grid, and the PTY's (a control frame).
        let el2 = el.clone();
        let on_resize = Closure::<dyn FnMut()>::new(move || {
            let (cols, rows) = fit(&el2);
            term.with_value(|t| if let Some(t) = t { t.resize(cols, rows) });
            if matches!(store.source.get_untracked(), Source::Live { .. }) {
                let _ = tx_input.with_value(|tx| tx.unbounded_send(format!("\u{0}resize {cols} {rows}").into_bytes()));
            }
        });
        if let Some(w) = web_sys::window() {
            let _ = w.add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref());
        }
        on_resize.forget();
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
                if let Some(rx) = rx_input.try_update_value(|r| r.take()).flatten() {
                    connect_shell(store, term, rx, cols, rows);
                }
            }
            Source::Simulated => {
                shell_started.set_value(true);
                let banner = format!(
                    "\x1b[33mThis is a simulated node1\x1b[0m: no berthd answered (or it cannot run containers here).\r\nThe lab's commands work as on the real engine and draw the same diagrams. Type `help`.\r\n\r\n{}",
                    store.sim_prompt()
                );
                store.term.update(|v| v.push((now_ms(), banner.clone())));
                term.with_value(|t| if let Some(t) = t { t.write(&banner) });
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
            t.write(&all);
        });
    });
    // A recording plays at the size it was recorded at.
    Effect::new(move |_| {
        let (cols, rows) = store.term_size.get();
        if matches!(store.source.get(), Source::Replay { .. }) {
            term.with_value(|t| if let Some(t) = t { t.resize(cols as u32, rows as u32) });
        }
    });
    Effect::new(move |prev: Option<Option<usize>>| {
        let c = store.cursor.get();
        if prev.is_some() && prev != Some(c) {
            store.redraw.update(|r| *r += 1);
        }
        c
    });

    view! {
        <div class="term" node_ref=host data-testid="terminal"
            on:click=move |_| term.with_value(|t| if let Some(t) = t { t.focus() })></div>
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

/// The live shell: output into xterm and the store, keystrokes to the PTY.
fn connect_shell(
    store: Store,
    term: StoredValue<Option<XTerm>, LocalStorage>,
    mut input: futures::channel::mpsc::UnboundedReceiver<Vec<u8>>,
    cols: u32,
    rows: u32,
) {
    spawn_local(async move {
        let say = move |msg: String| term.with_value(|t| if let Some(t) = t { t.write(&format!("\r\n[no shell on node1: {msg}]\r\n")) });
        // The socket opens a shell only with a one-time ticket as its first
        // message, fetched by this page's own (same-origin) request.
        let ticket = match crate::api::terminal_ticket().await {
            Ok(t) => t,
            Err(e) => return say(e),
        };
        let url = ws_url(&format!("/api/terminal?cols={cols}&rows={rows}"));
        let ws = match WebSocket::open(&url) {
            Ok(ws) => ws,
            Err(e) => return say(e.to_string()),
        };
        let (mut tx, mut rx) = ws.split();
        if let Err(e) = tx.send(Message::Text(serde_json::json!({ "ticket": ticket }).to_string())).await {
            return say(e.to_string());
        }
        spawn_local(async move {
            while let Some(bytes) = input.next().await {
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
                    break;
                }
            }
        });
        let mut decoder = Utf8Stream::default();
        while let Some(msg) = rx.next().await {
            let text = match msg {
                Ok(Message::Bytes(b)) => decoder.push(&b),
                Ok(Message::Text(t)) => t,
                Err(_) => break,
            };
            store.term.update(|v| v.push((now_ms(), text.clone())));
            if store.cursor.get_untracked().is_none() && matches!(store.source.get_untracked(), Source::Live { .. }) {
                term.with_value(|t| if let Some(t) = t { t.write(&text) });
            }
        }
        term.with_value(|t| if let Some(t) = t { t.write("\r\n[the shell on node1 ended; reload the page for a new one]\r\n") });
    });
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
