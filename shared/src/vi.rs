//! A small vi for the simulated node1: enough for the lab's edit of
//! nginx's index.html — cursor keys (and h j k l), `i`/`a`/`o` to insert,
//! typing, Backspace, Esc, `x`, `dd`, and `:w`, `:wq`, `:x`, `:q`, `:q!`.
//! Pure: keys in, screen (ANSI) out.

/// What the terminal should do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep editing: redraw with this.
    Draw(String),
    /// Leave the editor; `save` holds the text when it was written.
    Quit { save: Option<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Insert,
    Command,
}

#[derive(Clone, Debug)]
pub struct Editor {
    pub path: String,
    lines: Vec<String>,
    row: usize,
    col: usize,
    mode: Mode,
    cmd: String,
    pending_d: bool,
    message: String,
    dirty: bool,
    written: Option<String>,
    pub rows: usize,
    pub cols: usize,
}

impl Editor {
    pub fn new(path: &str, text: &str, cols: usize, rows: usize) -> Self {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        let message = format!("\"{path}\" {}L, {}C", lines.len(), text.len());
        Editor {
            path: path.into(),
            lines,
            row: 0,
            col: 0,
            mode: Mode::Normal,
            cmd: String::new(),
            pending_d: false,
            message,
            dirty: false,
            written: None,
            rows: rows.max(3),
            cols: cols.max(20),
        }
    }

    pub fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        t.push('\n');
        t
    }

    fn clamp(&mut self) {
        self.row = self.row.min(self.lines.len().saturating_sub(1));
        let len = self.lines[self.row].chars().count();
        let max = if self.mode == Mode::Insert { len } else { len.saturating_sub(1) };
        self.col = self.col.min(max);
    }

    fn byte(&self, col: usize) -> usize {
        self.lines[self.row].char_indices().nth(col).map(|(i, _)| i).unwrap_or(self.lines[self.row].len())
    }

    /// The whole screen: the text, `~` past its end, the status line.
    pub fn render(&self) -> String {
        let body = self.rows - 1;
        let top = self.row.saturating_sub(body - 1);
        let mut s = String::from("\x1b[?1049h\x1b[H\x1b[2J");
        for i in 0..body {
            match self.lines.get(top + i) {
                Some(l) => s.push_str(&l.chars().take(self.cols).collect::<String>()),
                None => s.push_str("\x1b[34m~\x1b[0m"),
            }
            s.push_str("\r\n");
        }
        let status = match self.mode {
            Mode::Command => format!(":{}", self.cmd),
            Mode::Insert => "-- INSERT --".into(),
            Mode::Normal => self.message.clone(),
        };
        s.push_str(&status);
        if self.mode != Mode::Command {
            s.push_str(&format!("\x1b[{};{}H", self.row - top + 1, self.col + 1));
        }
        s
    }

    /// One key as the terminal sends it (a character or an escape sequence).
    pub fn key(&mut self, k: &str) -> Action {
        match self.mode {
            Mode::Command => match k {
                "\r" | "\n" => {
                    let cmd = std::mem::take(&mut self.cmd);
                    self.mode = Mode::Normal;
                    match cmd.as_str() {
                        "w" => {
                            self.written = Some(self.text());
                            self.dirty = false;
                            self.message = format!("\"{}\" {}L written", self.path, self.lines.len());
                        }
                        "wq" | "x" => return Action::Quit { save: Some(self.text()) },
                        "q" if self.dirty => self.message = "E37: No write since last change (add ! to override)".into(),
                        "q" => return Action::Quit { save: self.written.take() },
                        "q!" => return Action::Quit { save: self.written.take() },
                        other => self.message = format!("E492: Not an editor command: {other}"),
                    }
                }
                "\x1b" => {
                    self.cmd.clear();
                    self.mode = Mode::Normal;
                }
                "\x7f" | "\x08" if self.cmd.pop().is_none() => self.mode = Mode::Normal,
                "\x7f" | "\x08" => {}
                c if c.chars().all(|c| !c.is_control()) => self.cmd.push_str(c),
                _ => {}
            },
            Mode::Insert => match k {
                "\x1b" => {
                    self.mode = Mode::Normal;
                    self.col = self.col.saturating_sub(1);
                }
                "\r" | "\n" => {
                    let at = self.byte(self.col);
                    let rest = self.lines[self.row].split_off(at);
                    self.lines.insert(self.row + 1, rest);
                    self.row += 1;
                    self.col = 0;
                    self.dirty = true;
                }
                "\x7f" | "\x08" => {
                    if self.col > 0 {
                        self.col -= 1;
                        let at = self.byte(self.col);
                        self.lines[self.row].remove(at);
                        self.dirty = true;
                    } else if self.row > 0 {
                        let line = self.lines.remove(self.row);
                        self.row -= 1;
                        self.col = self.lines[self.row].chars().count();
                        self.lines[self.row].push_str(&line);
                        self.dirty = true;
                    }
                }
                k if k.starts_with('\x1b') => self.arrow(k),
                c => {
                    for ch in c.chars().filter(|c| !c.is_control()) {
                        let at = self.byte(self.col);
                        self.lines[self.row].insert(at, ch);
                        self.col += 1;
                        self.dirty = true;
                    }
                }
            },
            Mode::Normal => {
                let was_d = std::mem::take(&mut self.pending_d);
                match k {
                    "i" => self.mode = Mode::Insert,
                    "a" => {
                        self.mode = Mode::Insert;
                        self.col = (self.col + 1).min(self.lines[self.row].chars().count());
                    }
                    "A" => {
                        self.mode = Mode::Insert;
                        self.col = self.lines[self.row].chars().count();
                    }
                    "o" => {
                        self.lines.insert(self.row + 1, String::new());
                        self.row += 1;
                        self.col = 0;
                        self.mode = Mode::Insert;
                        self.dirty = true;
                    }
                    "x" if !self.lines[self.row].is_empty() => {
                        let at = self.byte(self.col);
                        self.lines[self.row].remove(at);
                        self.dirty = true;
                    }
                    "d" if was_d => {
                        if self.lines.len() > 1 {
                            self.lines.remove(self.row);
                        } else {
                            self.lines[0].clear();
                        }
                        self.dirty = true;
                    }
                    "d" => self.pending_d = true,
                    ":" => {
                        self.mode = Mode::Command;
                        self.cmd.clear();
                    }
                    "h" => self.col = self.col.saturating_sub(1),
                    "l" => self.col += 1,
                    "j" => self.row += 1,
                    "k" => self.row = self.row.saturating_sub(1),
                    "0" => self.col = 0,
                    "$" => self.col = usize::MAX,
                    k if k.starts_with('\x1b') => self.arrow(k),
                    _ => {}
                }
            }
        }
        self.clamp();
        Action::Draw(self.render())
    }

    fn arrow(&mut self, k: &str) {
        match k {
            "\x1b[A" | "\x1bOA" => self.row = self.row.saturating_sub(1),
            "\x1b[B" | "\x1bOB" => self.row += 1,
            "\x1b[C" | "\x1bOC" => self.col += 1,
            "\x1b[D" | "\x1bOD" => self.col = self.col.saturating_sub(1),
            _ => {}
        }
    }
}

/// Splits what a terminal sent into keys: escape sequences stay whole.
pub fn keys(data: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = data.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek().is_some_and(|n| *n == '[' || *n == 'O') {
            let mut seq = String::from(c);
            if let Some(n) = chars.next() {
                seq.push(n);
            }
            for n in chars.by_ref() {
                seq.push(n);
                if n.is_ascii_alphabetic() || n == '~' {
                    break;
                }
            }
            out.push(seq);
        } else {
            out.push(c.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(e: &mut Editor, data: &str) -> Action {
        let mut last = Action::Draw(String::new());
        for k in keys(data) {
            last = e.key(&k);
        }
        last
    }

    #[test]
    fn the_labs_edit_insert_a_line_and_write_quit() {
        let mut e = Editor::new("/usr/share/nginx/html/index.html", "<h1>Welcome to nginx!</h1>\n<p>hi</p>\n", 80, 24);
        press(&mut e, "\x1b[B"); // down to <p>
        press(&mut e, "o<p>Edited by a learner</p>\x1b");
        let a = press(&mut e, ":wq\r");
        assert_eq!(a, Action::Quit { save: Some("<h1>Welcome to nginx!</h1>\n<p>hi</p>\n<p>Edited by a learner</p>\n".into()) });
    }

    #[test]
    fn backspace_arrows_and_quit_without_saving() {
        let mut e = Editor::new("f", "abc\n", 80, 24);
        press(&mut e, "A\x7fX\x1b[D\x1b[DY\x1b");
        assert_eq!(e.text(), "aYbX\n");
        assert!(matches!(press(&mut e, ":q\r"), Action::Draw(s) if s.contains("E37")));
        assert_eq!(press(&mut e, ":q!\r"), Action::Quit { save: None });
        let mut e = Editor::new("f", "one\ntwo\n", 80, 24);
        press(&mut e, "dd");
        assert_eq!(e.text(), "two\n");
        assert!(matches!(press(&mut e, ":nope\r"), Action::Draw(s) if s.contains("Not an editor command")));
    }
}
