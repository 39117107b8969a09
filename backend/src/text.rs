//! Text from requests on its way into berthd's own log, bounded.
//!
//! An error message may carry what a client sent (a malformed
//! `.dockerignore`, a 20 MB JSON body): logged whole, one request once wrote
//! ~100 MB into the daemon's log. [`clip`] keeps the first few KiB, says how
//! much was left out, and escapes line breaks and control characters so a
//! message cannot forge log lines.

use std::fmt;

/// What [`clip`] keeps of a text, in bytes.
pub const LOG_TEXT_MAX: usize = 4096;

/// A text shown at most `max` bytes long (cut on a character boundary),
/// then "…(N bytes more)".
#[derive(Clone, Copy, Debug)]
pub struct Clipped<'a> {
    text: &'a str,
    max: usize,
}

/// For tracing fields: `tracing::warn!(error = %clip(&msg), "…")`.
pub fn clip(text: &str) -> Clipped<'_> {
    Clipped { text, max: LOG_TEXT_MAX }
}

pub fn clip_to(text: &str, max: usize) -> Clipped<'_> {
    Clipped { text, max }
}

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cut = self.max.min(self.text.len());
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        for c in self.text[..cut].chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c if c.is_control() && c != '\t' => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        if cut < self.text.len() {
            write!(f, "…({} bytes more)", self.text.len() - cut)?;
        }
        Ok(())
    }
}

/// A bounded excerpt of untrusted text for an error message: at most `max`
/// characters, control characters escaped, `…` where it was cut.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_says_how_much_was_left_out() {
        let big = "é".repeat(10_000); // 20,000 bytes
        let shown = clip(&big).to_string();
        assert!(shown.len() < LOG_TEXT_MAX + 40, "{}", shown.len());
        assert!(shown.ends_with(&format!("…({} bytes more)", 20_000 - LOG_TEXT_MAX)), "{}", &shown[shown.len() - 30..]);
        assert_eq!(clip("short").to_string(), "short");
    }

    #[test]
    fn line_breaks_cannot_forge_log_lines() {
        assert_eq!(clip_to("a\nb\r\x1b[31m", 100).to_string(), "a\\nb\\r\\u{1b}[31m");
    }
}
