//! The lab shell's command marks. At each prompt, bash (through the lab's
//! rc file, [`BASHRC`]) prints the command line it just ran and its exit
//! status as an OSC escape sequence, as terminals' shell integrations do
//! (VS Code's OSC 633, iTerm's OSC 133):
//!
//! `ESC ] 777 ; berth-command ; <exit status> ; <history line> BEL`
//!
//! [`Marks`] takes them out of the PTY output (terminals ignore unknown OSC
//! sequences, but the scrollback and the recording should not carry them)
//! and returns the commands, which the shell's task emits as
//! `ShellCommand` events: the instructor's dashboard shows each learner's
//! last command. A mark split across reads is held until its end comes.

/// What bash runs at each prompt, after the usual startup files. The
/// history line is compared with the one last reported, so an empty line
/// (or Ctrl-C at the prompt) reports nothing. BEL and ESC are taken out of
/// the line: the mark ends at the first BEL.
pub const BASHRC: &str = r#"__berth_mark() {
  local s=$? h
  h=$(HISTTIMEFORMAT= builtin history 1)
  if [[ -n $__berth_seen && $h != "$__berth_seen" ]]; then
    builtin printf '\e]777;berth-command;%s;%s\a' "$s" "${h//[$'\a\e']/}"
  fi
  __berth_seen=${h:- }
}
PROMPT_COMMAND="__berth_mark${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
"#;

const START: &[u8] = b"\x1b]777;berth-command;";
/// A mark longer than this is not ours (or is broken): passed through.
const MAX_MARK: usize = 8 * 1024;
/// The longest command line a mark reports (characters).
const MAX_COMMAND: usize = 1000;

/// A command a mark reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    pub exit_code: i32,
    pub command: String,
}

/// Takes marks out of a shell's output, across reads.
#[derive(Debug, Default)]
pub struct Marks {
    held: Vec<u8>,
}

impl Marks {
    /// The output with the marks taken out (bytes that may begin a mark are
    /// held for the next call), and the commands the marks carried.
    pub fn scan(&mut self, chunk: &[u8]) -> (Vec<u8>, Vec<Marked>) {
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(data.len());
        let mut found = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let Some(off) = data[i..].iter().position(|&b| b == 0x1b) else {
                out.extend_from_slice(&data[i..]);
                break;
            };
            out.extend_from_slice(&data[i..i + off]);
            i += off;
            let rest = &data[i..];
            if rest.len() < START.len() {
                if START.starts_with(rest) {
                    self.held = rest.to_vec();
                    return (out, found);
                }
            } else if rest.starts_with(START) {
                let body = &rest[START.len()..];
                match terminator(body) {
                    Some((end, len)) => {
                        if let Some(m) = parse(&body[..end]) {
                            found.push(m);
                        }
                        i += START.len() + end + len;
                        continue;
                    }
                    None if rest.len() <= MAX_MARK => {
                        self.held = rest.to_vec();
                        return (out, found);
                    }
                    None => {}
                }
            }
            out.push(0x1b);
            i += 1;
        }
        (out, found)
    }
}

/// Where a mark's body ends: BEL, or ST (`ESC \`); `None` if not yet.
fn terminator(body: &[u8]) -> Option<(usize, usize)> {
    for (j, &b) in body.iter().enumerate() {
        if b == 0x07 {
            return Some((j, 1));
        }
        if b == 0x1b && body.get(j + 1) == Some(&b'\\') {
            return Some((j, 2));
        }
    }
    None
}

/// `<status>;<history line>`, the line as `history 1` prints it
/// (`  42  docker ps`, or `  42* …` for an edited entry).
fn parse(body: &[u8]) -> Option<Marked> {
    let text = String::from_utf8_lossy(body);
    let (status, line) = text.split_once(';')?;
    let exit_code = status.trim().parse().ok()?;
    let line = line.trim_start();
    let line = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let line = line.strip_prefix('*').unwrap_or(line);
    let command: String = line.trim().chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_COMMAND).collect();
    (!command.is_empty()).then_some(Marked { exit_code, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(status: &str, line: &str) -> Vec<u8> {
        format!("\x1b]777;berth-command;{status};{line}\x07").into_bytes()
    }

    #[test]
    fn marks_are_taken_out_and_their_commands_returned() {
        let mut m = Marks::default();
        let mut input = b"hello\r\n".to_vec();
        input.extend(mark("0", "   12  docker ps -a"));
        input.extend(b"\x1b[1;32mroot@node1\x1b[0m:~# ");
        let (out, found) = m.scan(&input);
        assert_eq!(out, b"hello\r\n\x1b[1;32mroot@node1\x1b[0m:~# ".to_vec());
        assert_eq!(found, vec![Marked { exit_code: 0, command: "docker ps -a".into() }]);
        // Edited history entries (`*`), ST as the end, a failed command.
        let mut input = mark("127", "  13* dokcer ps");
        input.extend(b"\x1b]777;berth-command;1;  14  false\x1b\\$ ");
        let (out, found) = m.scan(&input);
        assert_eq!(out, b"$ ".to_vec());
        assert_eq!(found, vec![Marked { exit_code: 127, command: "dokcer ps".into() }, Marked { exit_code: 1, command: "false".into() }]);
    }

    #[test]
    fn a_mark_split_across_reads_is_held_until_it_ends_at_any_byte() {
        let mut whole = b"out ".to_vec();
        whole.extend(mark("0", "    7  curl http://localhost:8080"));
        whole.extend(b" prompt");
        for cut in 0..whole.len() {
            let mut m = Marks::default();
            let (mut out, mut found) = m.scan(&whole[..cut]);
            let (o2, f2) = m.scan(&whole[cut..]);
            out.extend(o2);
            found.extend(f2);
            assert_eq!(out, b"out  prompt".to_vec(), "cut at {cut}");
            assert_eq!(found.len(), 1, "cut at {cut}");
            assert_eq!(found[0].command, "curl http://localhost:8080");
        }
    }

    #[test]
    fn other_escapes_pass_through_and_an_endless_mark_is_not_held_for_ever() {
        let mut m = Marks::default();
        // Other OSC sequences (a window title) and a lone ESC at the end of output.
        let (out, found) = m.scan(b"\x1b]0;title\x07\x1b[K\x1b");
        assert!(found.is_empty());
        assert_eq!(out, b"\x1b]0;title\x07\x1b[K".to_vec());
        let (out, _) = m.scan(b"[0m");
        assert_eq!(out, b"\x1b[0m".to_vec());
        // A mark that never ends: held up to MAX_MARK, then passed through.
        let mut endless = START.to_vec();
        endless.extend(vec![b'x'; MAX_MARK + 10]);
        let (out, found) = m.scan(&endless);
        assert!(found.is_empty());
        assert_eq!(out, endless);
        // Malformed marks (no status) are dropped from the output, not reported.
        let (out, found) = m.scan(b"\x1b]777;berth-command;oops\x07ok");
        assert!(found.is_empty());
        assert_eq!(out, b"ok".to_vec());
    }
}
