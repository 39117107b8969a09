//! Variable expansion in Dockerfile instructions, as Docker's shell lexer
//! does it for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME
//! and WORKDIR: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
//! `${VAR:+word}`, `${VAR+word}`; single quotes keep text literal, double
//! quotes still expand, a backslash escapes the next character; quotes are
//! removed. RUN, CMD and ENTRYPOINT are left to the shell.

/// Expands one word with `lookup` (None: unset).
pub fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_double = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' if !in_double => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '\'')
                    .ok_or("unexpected end of statement while looking for matching single-quote")?;
                out.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                in_double = !in_double;
                i += 1;
            }
            '\\' if i + 1 < chars.len() => {
                // Inside double quotes only \" \\ \$ are escapes.
                if in_double && !matches!(chars[i + 1], '"' | '\\' | '$') {
                    out.push('\\');
                }
                out.push(chars[i + 1]);
                i += 2;
            }
            '$' => {
                let (value, used) = variable(&chars[i + 1..], lookup)?;
                out.push_str(&value);
                i += 1 + used;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if in_double {
        return Err("unexpected end of statement while looking for matching double-quote".into());
    }
    Ok(out)
}

/// After a `$`: the value and how many characters were used.
fn variable(rest: &[char], lookup: &dyn Fn(&str) -> Option<String>) -> Result<(String, usize), String> {
    let name_len = |s: &[char]| s.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
    match rest.first() {
        Some('{') => {
            let close = rest.iter().position(|c| *c == '}').ok_or("missing '}'")?;
            let inner: String = rest[1..close].iter().collect();
            let n = name_len(&rest[1..close]);
            if n == 0 {
                return Err(format!("bad substitution: ${{{inner}}}"));
            }
            let (name, op) = inner.split_at(n);
            let value = lookup(name);
            let result = match op {
                "" => value.unwrap_or_default(),
                _ if op.starts_with(":-") => value.filter(|v| !v.is_empty()).map(Ok).unwrap_or_else(|| expand(&op[2..], lookup))?,
                _ if op.starts_with('-') => value.map(Ok).unwrap_or_else(|| expand(&op[1..], lookup))?,
                _ if op.starts_with(":+") => match value.filter(|v| !v.is_empty()) {
                    Some(_) => expand(&op[2..], lookup)?,
                    None => String::new(),
                },
                _ if op.starts_with('+') => match value {
                    Some(_) => expand(&op[1..], lookup)?,
                    None => String::new(),
                },
                _ => return Err(format!("unsupported modifier ({op}) in substitution: ${{{inner}}}")),
            };
            Ok((result, close + 1))
        }
        _ => {
            let n = name_len(rest);
            if n == 0 {
                return Ok(("$".into(), 0));
            }
            let name: String = rest[..n].iter().collect();
            Ok((lookup(&name).unwrap_or_default(), n))
        }
    }
}

/// Splits on whitespace outside quotes (quotes stay in the words).
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match (c, quote) {
            ('\\', _) => {
                cur.push(c);
                escaped = true;
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                cur.push(c);
            }
            (q, Some(open)) if q == open => {
                quote = None;
                cur.push(c);
            }
            (w, None) if w.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "APP" => Some("/app".into()),
            "EMPTY" => Some(String::new()),
            "VER" => Some("1.2".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_with_dockers_modifiers() {
        let x = |s: &str| expand(s, &env).unwrap();
        assert_eq!(x("$APP/bin"), "/app/bin");
        assert_eq!(x("${APP}_x"), "/app_x");
        assert_eq!(x("${NOPE:-fallback}"), "fallback");
        assert_eq!(x("${EMPTY:-fallback}"), "fallback");
        assert_eq!(x("${EMPTY-fallback}"), "");
        assert_eq!(x("${VER:+v$VER}"), "v1.2");
        assert_eq!(x("${NOPE:+set}"), "");
        assert_eq!(x("$NOPE"), "");
        assert_eq!(x("cost: 5$"), "cost: 5$");
    }

    #[test]
    fn quotes_and_escapes_behave_as_in_a_dockerfile() {
        let x = |s: &str| expand(s, &env).unwrap();
        assert_eq!(x("'$APP'"), "$APP");
        assert_eq!(x("\"$APP dir\""), "/app dir");
        assert_eq!(x("\\$APP"), "$APP");
        assert_eq!(x("\"a\\\"b\""), "a\"b");
        assert!(expand("\"open", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn words_split_outside_quotes() {
        assert_eq!(split_words("A=1 B=\"two words\" C='x y'"), vec!["A=1", "B=\"two words\"", "C='x y'"]);
        assert_eq!(split_words("  80/tcp   53/udp "), vec!["80/tcp", "53/udp"]);
    }
}
